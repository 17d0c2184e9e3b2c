"""Winograd (Toom-Cook) transform matrices for F(m x m, r x r), derived exactly with rational arithmetic.

Correlation of an n = m + r - 1 input tile d with an r-tap filter g gives m outputs:

    y = A^T [ (G g) * (B^T d) ]          (2-D: Y = A^T [ (G g G^T) * (B^T d B) ] A)

Derivation: linear convolution of an m-term and an r-term polynomial is computed by evaluating
both at n - 1 finite points and at infinity (the leading coefficient), multiplying point-wise
and interpolating: c = V^-1 [(Va a) * (Vb b)], with V, Va, Vb the Vandermonde matrices (plus the
infinity row) of sizes n x n, n x m, n x r. Correlation is the transpose of that bilinear
algorithm: A^T = Va^T, G = Vb, B^T = (V^-1)^T. Row j of B^T is then scaled by
N_j = prod_{l != j} (p_j - p_l) and row j of G by 1/N_j, which keeps B^T integral (or nearly)
and moves the fractions into the one-off weight transform.

Points: the well-conditioned choices 0, +-1 (F(2)); 0, +-1, +-2 (F(4)); 0, +-1, +-2, +-1/2 (F(6)).
"""
from fractions import Fraction

import numpy as np

POINTS = {
    2: (0, 1, -1),
    4: (0, 1, -1, 2, -2),
    6: (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)),
}


def _vandermonde(points, cols):
    """Rows [p^0 .. p^(cols-1)] for each finite point, then the infinity row [0 .. 0 1]."""
    rows = [[Fraction(p) ** k for k in range(cols)] for p in points]
    rows.append([Fraction(0)] * (cols - 1) + [Fraction(1)])
    return rows


def _inverse(matrix):
    """Exact Gauss-Jordan inverse of a square matrix of Fractions."""
    n = len(matrix)
    aug = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if aug[r][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        inv = 1 / aug[col][col]
        aug[col] = [v * inv for v in aug[col]]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                factor = aug[r][col]
                aug[r] = [a - factor * b for a, b in zip(aug[r], aug[col])]
    return [row[n:] for row in aug]


def exact_transforms(m, r=3):
    """(A^T, G, B^T) as lists of Fraction rows for F(m, r)."""
    points = POINTS[m]
    n = m + r - 1
    if len(points) != n - 1:
        raise ValueError(f"F({m},{r}) needs {n - 1} finite points, have {len(points)}")
    Va = _vandermonde(points, m)
    Vb = _vandermonde(points, r)
    Vinv = _inverse(_vandermonde(points, n))
    AT = [[Va[j][i] for j in range(n)] for i in range(m)]
    BT = [[Vinv[i][j] for i in range(n)] for j in range(n)]        # (V^-1)^T
    G = [list(row) for row in Vb]
    for j, p in enumerate(points):
        scale = Fraction(1)
        for q in points:
            if q != p:
                scale *= Fraction(p) - Fraction(q)
        BT[j] = [v * scale for v in BT[j]]
        G[j] = [v / scale for v in G[j]]
    return AT, G, BT


_cache = {}


def transforms(m, r=3):
    """(A^T, G, B^T) as float64 arrays, computed once per variant."""
    if (m, r) not in _cache:
        _cache[(m, r)] = tuple(np.array([[float(v) for v in row] for row in mat]) for mat in exact_transforms(m, r))
    return _cache[(m, r)]
