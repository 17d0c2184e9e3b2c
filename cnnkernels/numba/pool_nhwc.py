"""Numba pooling kernels for channels-last (NDHWC) arrays: the innermost loop runs over contiguous channels.

Preconditions as cnnkernels.numba.pool, with x (N, D, H, W, C), y and indices (N, OD, OH, OW, C).
Indices are flat positions within the (D, H, W) input volume, as in the NCDHW kernels and PyTorch.
"""
import numpy as np
from numba import njit, prange

from .pool import first_position


@njit(parallel=True, cache=True)
def max_pool_ndhwc(x, y, indices, kernel, stride, pad, dilation, want_indices):
    """Max over each window (padding -inf); NaN wins and the last NaN is reported, as in the NCDHW kernel."""
    N, D, H, W, C = x.shape
    OD, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    KD, KH, KW = kernel
    sd, sh, sw = stride
    pd, ph, pw = pad
    dd, dh, dw = dilation
    for job in prange(N * OD * OH):
        oh = job % OH
        od = (job // OH) % OD
        n = job // (OH * OD)
        best = np.empty(C, dtype=y.dtype)
        where = np.empty(C, dtype=np.int64)
        for ow in range(OW):
            fd = first_position(od * sd - pd, dd)
            fh = first_position(oh * sh - ph, dh)
            fw = first_position(ow * sw - pw, dw)
            best[:] = -np.inf
            where[:] = (fd * H + fh) * W + fw
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
                        pos = (i_d * H + i_h) * W + i_w
                        for c in range(C):
                            v = px[c]
                            if v > best[c] or np.isnan(v):
                                best[c] = v
                                where[c] = pos
            y[n, od, oh, ow] = best
            if want_indices:
                indices[n, od, oh, ow] = where


@njit(parallel=True, cache=True)
def avg_pool_ndhwc(x, y, kernel, stride, pad_before, pad_after, count_include_pad, divisor_override):
    """Mean with PyTorch's divisor rules (the NCDHW kernel's), summed over contiguous channels."""
    N, D, H, W, C = x.shape
    OD, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    KD, KH, KW = kernel
    sd, sh, sw = stride
    pd, ph, pw = pad_before
    ad, ah, aw = pad_after
    for job in prange(N * OD * OH):
        oh = job % OH
        od = (job // OH) % OD
        n = job // (OH * OD)
        total = np.empty(C, dtype=np.float64)
        d0 = od * sd - pd
        d1 = min(d0 + KD, D + ad)
        span_d = d1 - d0
        d0 = max(d0, 0)
        d1 = min(d1, D)
        h0 = oh * sh - ph
        h1 = min(h0 + KH, H + ah)
        span_h = h1 - h0
        h0 = max(h0, 0)
        h1 = min(h1, H)
        for ow in range(OW):
            w0 = ow * sw - pw
            w1 = min(w0 + KW, W + aw)
            span_w = w1 - w0
            w0 = max(w0, 0)
            w1 = min(w1, W)
            total[:] = 0.0
            for i_d in range(d0, d1):
                for i_h in range(h0, h1):
                    for i_w in range(w0, w1):
                        px = x[n, i_d, i_h, i_w]
                        for c in range(C):
                            total[c] += px[c]
            if divisor_override != 0:
                divisor = divisor_override
            elif count_include_pad:
                divisor = span_d * span_h * span_w
            else:
                divisor = max(0, d1 - d0) * max(0, h1 - h0) * max(0, w1 - w0)
            out = y[n, od, oh, ow]
            for c in range(C):
                out[c] = total[c] / divisor if divisor != 0 else np.nan


@njit(parallel=True, cache=True)
def adaptive_avg_pool_ndhwc(x, y):
    """Mean over PyTorch's adaptive windows, summed over contiguous channels."""
    N, D, H, W, C = x.shape
    OD, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    for job in prange(N * OD * OH):
        oh = job % OH
        od = (job // OH) % OD
        n = job // (OH * OD)
        d0, d1 = (od * D) // OD, ((od + 1) * D + OD - 1) // OD
        h0, h1 = (oh * H) // OH, ((oh + 1) * H + OH - 1) // OH
        total = np.empty(C, dtype=np.float64)
        for ow in range(OW):
            w0, w1 = (ow * W) // OW, ((ow + 1) * W + OW - 1) // OW
            total[:] = 0.0
            for i_d in range(d0, d1):
                for i_h in range(h0, h1):
                    for i_w in range(w0, w1):
                        px = x[n, i_d, i_h, i_w]
                        for c in range(C):
                            total[c] += px[c]
            count = (d1 - d0) * (h1 - h0) * (w1 - w0)
            out = y[n, od, oh, ow]
            for c in range(C):
                out[c] = total[c] / count if count > 0 else np.nan
