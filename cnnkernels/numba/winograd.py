"""Numba Winograd convolution F(m x m, 3 x 3): stride 1, dilation 1, 2-D, any padding, groups.

Preconditions (checked by cnnkernels.functional and the registry's ``supports``):
x (N, C, 1, H, W), y (N, K, 1, OH, OW) C-contiguous of one float dtype; U the transformed
weights (groups, n*n, K // groups, C // groups) with n = m + 2 (see ``transform_weights``);
AT (m, n) and BT (n, n) the transforms of cnnkernels.winograd in the same dtype;
pad = (top, left) padding before, >= 0. Input reads are bounds-checked (padding is zero)
and output writes stay inside y, so any y shape is safe.
"""
import numpy as np
from numba import njit, prange

from .conv import _clamp


@njit(cache=True)
def transform_weights(w, G, groups):
    """U[g, a*n + b, k, c] = (G w[g*Kg + k, c] G^T)[a, b], computed in float64."""
    K, Cg = w.shape[0], w.shape[1]
    Kg = K // groups
    n = G.shape[0]
    U = np.empty((groups, n * n, Kg, Cg), dtype=np.float64)
    tmp = np.empty((n, 3))
    for kk in range(K):
        g = kk // Kg
        k = kk % Kg
        for c in range(Cg):
            f = w[kk, c, 0]
            for a in range(n):
                for j in range(3):
                    s = 0.0
                    for i in range(3):
                        s += G[a, i] * f[i, j]
                    tmp[a, j] = s
            for a in range(n):
                for b in range(n):
                    s = 0.0
                    for j in range(3):
                        s += tmp[a, j] * G[b, j]
                    U[g, a * n + b, k, c] = s
    return U


@njit(parallel=True, cache=True)
def _input_transform(x, img, c0, Cg, pad_t, pad_l, m, tiles_w, t0, count, BT, V):
    """V[a*n + b, c, t] = (BT d BT^T)[a, b] for the n x n input patch d of tile t0 + t of image img."""
    H, W = x.shape[3], x.shape[4]
    n = BT.shape[0]
    for c in prange(Cg):
        xc = x[img, c0 + c, 0]
        d = np.empty((n, n), dtype=x.dtype)
        tmp = np.empty((n, n), dtype=x.dtype)
        for t in range(count):
            tile = t0 + t
            r0 = (tile // tiles_w) * m - pad_t
            q0 = (tile % tiles_w) * m - pad_l
            for i in range(n):
                ih = r0 + i
                for j in range(n):
                    iw = q0 + j
                    d[i, j] = xc[ih, iw] if 0 <= ih < H and 0 <= iw < W else 0.0
            for a in range(n):
                for j in range(n):
                    s = 0.0
                    for i in range(n):
                        s += BT[a, i] * d[i, j]
                    tmp[a, j] = s
            for a in range(n):
                for b in range(n):
                    s = 0.0
                    for j in range(n):
                        s += tmp[a, j] * BT[b, j]
                    V[a * n + b, c, t] = s


@njit(parallel=True, cache=True)
def _output_transform(M, img, k0, Kg, bias, m, tiles_w, t0, count, AT, y, act_min, act_max):
    """y tile = AT M AT^T (+ bias), clipped to y's bounds."""
    OH, OW = y.shape[3], y.shape[4]
    n = AT.shape[1]
    has_bias = bias.shape[0] > 0
    for k in prange(Kg):
        out = y[img, k0 + k, 0]
        b = bias[k0 + k] if has_bias else 0.0
        mm = np.empty((n, n), dtype=y.dtype)
        tmp = np.empty((m, n), dtype=y.dtype)
        for t in range(count):
            tile = t0 + t
            r0 = (tile // tiles_w) * m
            q0 = (tile % tiles_w) * m
            for i in range(n):
                for j in range(n):
                    mm[i, j] = M[i * n + j, k, t]
            for a in range(m):
                for j in range(n):
                    s = 0.0
                    for i in range(n):
                        s += AT[a, i] * mm[i, j]
                    tmp[a, j] = s
            for a in range(m):
                oh = r0 + a
                if oh >= OH:
                    break
                for c in range(m):
                    ow = q0 + c
                    if ow >= OW:
                        break
                    s = 0.0
                    for j in range(n):
                        s += tmp[a, j] * AT[c, j]
                    out[oh, ow] = _clamp(s + b, act_min, act_max)


@njit(parallel=True, cache=True)
def _batched_dot(U, V, M):
    """M[e] = U[e] V[e] for every transform point e, one BLAS call per parallel iteration."""
    for e in prange(U.shape[0]):
        np.dot(U[e], V[e], M[e])


@njit(cache=True)
def conv_winograd(x, U, bias, y, pad, m, AT, BT, workspace_bytes, act_min=-np.inf, act_max=np.inf):
    """Winograd convolution over blocks of tiles; V and M (the transformed tiles) stay under workspace_bytes."""
    N = x.shape[0]
    groups, nn, Kg, Cg = U.shape
    OH, OW = y.shape[3], y.shape[4]
    tiles_h = (OH + m - 1) // m
    tiles_w = (OW + m - 1) // m
    tiles = tiles_h * tiles_w
    if tiles == 0 or Kg == 0:
        return
    block = max(1, min(tiles, workspace_bytes // max(1, nn * (Cg + Kg) * x.itemsize)))
    V = np.empty((nn, Cg, block), dtype=x.dtype)
    M = np.empty((nn, Kg, block), dtype=x.dtype)
    for img in range(N):
        for g in range(groups):
            for t0 in range(0, tiles, block):
                count = min(block, tiles - t0)
                # A short last block uses the front of V and M as contiguous (nn, *, count) arrays: no copies,
                # so the workspace stays V + M.
                Vb = V.ravel()[:nn * Cg * count].reshape((nn, Cg, count))
                _input_transform(x, img, g * Cg, Cg, pad[1], pad[2], m, tiles_w, t0, count, BT, Vb)
                Mb = M.ravel()[:nn * Kg * count].reshape((nn, Kg, count))
                _batched_dot(U[g], Vb, Mb)
                _output_transform(Mb, img, g * Kg, Kg, bias, m, tiles_w, t0, count, AT, y, act_min, act_max)
