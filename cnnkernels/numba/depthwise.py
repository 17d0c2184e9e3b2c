"""Numba depthwise convolution (groups == C, K = C * multiplier) in NCDHW and NDHWC layouts.

Preconditions (checked by cnnkernels.functional and the registry's ``supports``): w
(K, 1, KD, KH, KW) in PyTorch order, K a multiple of C; bias (K,) or (0,); x and y
C-contiguous, one float dtype; stride, dilation >= 1; pad (before) >= 0. Input reads are
bounds-checked, so any y shape is safe.
"""
import numpy as np
from numba import njit, prange

from .conv import _clamp, _valid_range


@njit(parallel=True, cache=True)
def depthwise_ncdhw(x, w, bias, y, stride, pad, dilation, act_min, act_max):
    """Per output row: every tap of the 1-channel filter on the row, accumulated in a row buffer."""
    N, C, D, H, W = x.shape
    K, _, KD, KH, KW = w.shape
    OD, OH, OW = y.shape[2], y.shape[3], y.shape[4]
    mult = K // C
    sd, sh, sw = stride
    pd, ph, pw = pad
    dd, dh, dw = dilation
    has_bias = bias.shape[0] > 0
    for job in prange(N * K * OD):
        od = job % OD
        k = (job // OD) % K
        n = job // (OD * K)
        xc = x[n, k // mult]
        b = bias[k] if has_bias else 0.0
        acc = np.empty(OW, dtype=y.dtype)
        for oh in range(OH):
            acc[:] = b
            for kd in range(KD):
                i_d = od * sd - pd + kd * dd
                if i_d < 0 or i_d >= D:
                    continue
                for kh in range(KH):
                    i_h = oh * sh - ph + kh * dh
                    if i_h < 0 or i_h >= H:
                        continue
                    row = xc[i_d, i_h]
                    for kw in range(KW):
                        wv = w[k, 0, kd, kh, kw]
                        off = kw * dw - pw
                        lo, hi = _valid_range(OW, W, sw, off)
                        if sw == 1:   # unit stride: a contiguous loop LLVM vectorises
                            for ow in range(lo, hi):
                                acc[ow] += wv * row[ow + off]
                        else:
                            for ow in range(lo, hi):
                                acc[ow] += wv * row[ow * sw + off]
            out = y[n, k, od, oh]
            for ow in range(OW):
                out[ow] = _clamp(acc[ow], act_min, act_max)


@njit(parallel=True, cache=True)
def depthwise_ndhwc(x, w, bias, y, stride, pad, dilation, act_min, act_max):
    """Channels last: the innermost loop runs over contiguous output channels, one tap at a time."""
    N, D, H, W, C = x.shape
    K, _, KD, KH, KW = w.shape
    OD, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    mult = K // C
    sd, sh, sw = stride
    pd, ph, pw = pad
    dd, dh, dw = dilation
    has_bias = bias.shape[0] > 0
    taps = np.empty((KD, KH, KW, K), dtype=y.dtype)   # weights with channels innermost
    for k in range(K):
        for kd in range(KD):
            for kh in range(KH):
                for kw in range(KW):
                    taps[kd, kh, kw, k] = w[k, 0, kd, kh, kw]
    for job in prange(N * OD * OH):
        oh = job % OH
        od = (job // OH) % OD
        n = job // (OH * OD)
        acc = np.empty(K, dtype=y.dtype)
        for ow in range(OW):
            for k in range(K):
                acc[k] = bias[k] if has_bias else 0.0
            for kd in range(KD):
                i_d = od * sd - pd + kd * dd
                if i_d < 0 or i_d >= D:
                    continue
                for kh in range(KH):
                    i_h = oh * sh - ph + kh * dh
                    if i_h < 0 or i_h >= H:
                        continue
                    for kw in range(KW):
                        i_w = ow * sw - pw + kw * dw
                        if i_w < 0 or i_w >= W:
                            continue
                        px = x[n, i_d, i_h, i_w]
                        t = taps[kd, kh, kw]
                        if mult == 1:
                            for k in range(K):
                                acc[k] += t[k] * px[k]
                        else:
                            for k in range(K):
                                acc[k] += t[k] * px[k // mult]
            out = y[n, od, oh, ow]
            for k in range(K):
                out[k] = _clamp(acc[k], act_min, act_max)


@njit(parallel=True, cache=True)
def pointwise_ndhwc(x, w, bias, y, act_min, act_max):
    """1x1, stride 1, no padding, groups 1, channels last: (positions x C) by (C x K) GEMMs over row chunks."""
    N, D, H, W, C = x.shape
    K = w.shape[0]
    rows = N * D * H * W
    xr = x.reshape(rows, C)
    wt = np.ascontiguousarray(w.reshape(K, C).T)
    yr = y.reshape(rows, K)
    has_bias = bias.shape[0] > 0
    step = max(16, (1 << 16) // max(1, C))   # rows per chunk: the chunk of x stays in L2
    for ch in prange((rows + step - 1) // step):
        r0 = ch * step
        r1 = min(rows, r0 + step)
        res = np.dot(xr[r0:r1], wt)
        for r in range(r1 - r0):
            for k in range(K):
                yr[r0 + r, k] = _clamp(res[r, k] + (bias[k] if has_bias else 0.0), act_min, act_max)
