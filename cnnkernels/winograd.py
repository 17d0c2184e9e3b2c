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

Points: 0, +-1 (F(2)); 0, +-1, 1/2, -2 (F(4): in float32 about 3x more accurate than the usual
0, +-1, +-2 on 64-512 channels, 1.2e-05 -> 4.0e-06 at 256, for a denser B^T, 26 non-zeros instead of 22);
0, +-1, +-2, +-1/2 (F(6)).
"""
import numpy as np

# Finite interpolation points per m; (p, q) is the fraction p/q.
POINTS = {
    2: (0, 1, -1),
    4: (0, 1, -1, (1, 2), -2),
    6: (0, 1, -1, 2, -2, (1, 2), (-1, 2)),
}


def _fraction(p):
    from fractions import Fraction
    return Fraction(*p) if isinstance(p, tuple) else Fraction(p)


def _vandermonde(points, cols):
    """Rows [p^0 .. p^(cols-1)] for each finite point, then the infinity row [0 .. 0 1]."""
    from fractions import Fraction
    rows = [[_fraction(p) ** k for k in range(cols)] for p in points]
    rows.append([Fraction(0)] * (cols - 1) + [Fraction(1)])
    return rows


def _inverse(matrix):
    """Exact Gauss-Jordan inverse of a square matrix of Fractions."""
    from fractions import Fraction
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
    from fractions import Fraction
    points = [_fraction(p) for p in POINTS[m]]
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
                scale *= p - q
        BT[j] = [v * scale for v in BT[j]]
        G[j] = [v / scale for v in G[j]]
    return AT, G, BT


# (A^T, G, B^T) per m as float64, each value exact_transforms(m) rounded once. Kept here so that a process
# does not pay for importing `fractions` and the derivation (~4 ms) on its first Winograd call;
# tests/test_conv.py checks them against the derivation.
_ROUNDED = {
    2: (
        [
            [1.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, -1.0, 1.0],
        ],
        [
            [-1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ],
        [
            [-1.0, 0.0, 1.0, 0.0],
            [0.0, 1.0, 1.0, 0.0],
            [0.0, -1.0, 1.0, 0.0],
            [0.0, -1.0, 0.0, 1.0],
        ],
    ),
    4: (
        [
            [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, -1.0, 0.5, -2.0, 0.0],
            [0.0, 1.0, 1.0, 0.25, 4.0, 0.0],
            [0.0, 1.0, -1.0, 0.125, -8.0, 1.0],
        ],
        [
            [1.0, 0.0, 0.0],
            [0.3333333333333333, 0.3333333333333333, 0.3333333333333333],
            [-0.3333333333333333, 0.3333333333333333, -0.3333333333333333],
            [-1.0666666666666667, -0.5333333333333333, -0.26666666666666666],
            [0.06666666666666667, -0.13333333333333333, 0.26666666666666666],
            [0.0, 0.0, 1.0],
        ],
        [
            [1.0, -1.5, -2.0, 1.5, 1.0, 0.0],
            [0.0, -1.0, 0.5, 2.5, 1.0, 0.0],
            [0.0, 1.0, -2.5, 0.5, 1.0, 0.0],
            [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
            [0.0, 0.5, -1.0, -0.5, 1.0, 0.0],
            [0.0, 1.0, -1.5, -2.0, 1.5, 1.0],
        ],
    ),
    6: (
        [
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.0],
            [0.0, 1.0, 1.0, 4.0, 4.0, 0.25, 0.25, 0.0],
            [0.0, 1.0, -1.0, 8.0, -8.0, 0.125, -0.125, 0.0],
            [0.0, 1.0, 1.0, 16.0, 16.0, 0.0625, 0.0625, 0.0],
            [0.0, 1.0, -1.0, 32.0, -32.0, 0.03125, -0.03125, 1.0],
        ],
        [
            [-1.0, 0.0, 0.0],
            [-0.2222222222222222, -0.2222222222222222, -0.2222222222222222],
            [-0.2222222222222222, 0.2222222222222222, -0.2222222222222222],
            [0.011111111111111112, 0.022222222222222223, 0.044444444444444446],
            [0.011111111111111112, -0.022222222222222223, 0.044444444444444446],
            [0.7111111111111111, 0.35555555555555557, 0.17777777777777778],
            [0.7111111111111111, -0.35555555555555557, 0.17777777777777778],
            [0.0, 0.0, 1.0],
        ],
        [
            [-1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0, 0.0],
            [0.0, 1.0, 1.0, -4.25, -4.25, 1.0, 1.0, 0.0],
            [0.0, -1.0, 1.0, 4.25, -4.25, -1.0, 1.0, 0.0],
            [0.0, 0.5, 0.25, -2.5, -1.25, 2.0, 1.0, 0.0],
            [0.0, -0.5, 0.25, 2.5, -1.25, -2.0, 1.0, 0.0],
            [0.0, 2.0, 4.0, -2.5, -5.0, 0.5, 1.0, 0.0],
            [0.0, -2.0, 4.0, 2.5, -5.0, -0.5, 1.0, 0.0],
            [0.0, -1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0],
        ],
    ),
}

_cache = {}


def transforms(m, r=3):
    """(A^T, G, B^T) as float64 arrays: exact_transforms(m, r) rounded to float64, built once per variant."""
    if (m, r) not in _cache:
        mats = _ROUNDED[m] if r == 3 and m in _ROUNDED else exact_transforms(m, r)
        _cache[(m, r)] = tuple(np.array([[float(v) for v in row] for row in mat]) for mat in mats)
    return _cache[(m, r)]
