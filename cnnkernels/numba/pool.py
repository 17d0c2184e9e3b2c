"""Numba pooling kernels on 5-D NCDHW arrays; every (n, c) plane is independent.

Preconditions (checked by ``cnnkernels.functional``): x (N, C, D, H, W) and
y (N, C, OD, OH, OW) C-contiguous, one float dtype; indices int64 of y's shape
when wanted (else any int64 5-D array and want_indices False); kernel, stride,
dilation >= 1; pads >= 0. Input indices are bounds-checked, so any y shape is safe.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def first_position(start, dilation):
    """The first window position >= 0 (PyTorch reports it as the index of a window of only -inf/padding)."""
    if start < 0:
        start += ((-start + dilation - 1) // dilation) * dilation
    return start


@njit(parallel=True, cache=True)
def max_pool(x, y, indices, kernel, stride, pad, dilation, want_indices):
    """Max over each window, padding as -inf; NaN wins, and the last NaN is the one reported (PyTorch's rule)."""
    N, C, D, H, W = x.shape
    OD, OH, OW = y.shape[2], y.shape[3], y.shape[4]
    KD, KH, KW = kernel
    sd, sh, sw = stride
    pd, ph, pw = pad
    dd, dh, dw = dilation
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        xp = x[n, c]
        for od in range(OD):
            for oh in range(OH):
                for ow in range(OW):
                    # PyTorch's rule: start from -inf at the first in-range-or-later window position, so a
                    # window of only -inf (or only padding) reports that position.
                    fd = first_position(od * sd - pd, dd)
                    fh = first_position(oh * sh - ph, dh)
                    fw = first_position(ow * sw - pw, dw)
                    best = -np.inf
                    where = (fd * H + fh) * W + fw
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
                                v = xp[i_d, i_h, i_w]
                                if v > best or np.isnan(v):
                                    best = v
                                    where = (i_d * H + i_h) * W + i_w
                    y[n, c, od, oh, ow] = best
                    if want_indices:
                        indices[n, c, od, oh, ow] = where


@njit(parallel=True, cache=True)
def avg_pool(x, y, kernel, stride, pad_before, pad_after, count_include_pad, divisor_override):
    """Mean over each window with PyTorch's divisor rules; divisor_override 0 means none."""
    N, C, D, H, W = x.shape
    OD, OH, OW = y.shape[2], y.shape[3], y.shape[4]
    KD, KH, KW = kernel
    sd, sh, sw = stride
    pd, ph, pw = pad_before
    ad, ah, aw = pad_after
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        xp = x[n, c]
        for od in range(OD):
            d0 = od * sd - pd
            d1 = min(d0 + KD, D + ad)
            span_d = d1 - d0
            d0 = max(d0, 0)
            d1 = min(d1, D)
            for oh in range(OH):
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
                    total = 0.0
                    for i_d in range(d0, d1):
                        for i_h in range(h0, h1):
                            for i_w in range(w0, w1):
                                total += xp[i_d, i_h, i_w]
                    if divisor_override != 0:
                        divisor = divisor_override
                    elif count_include_pad:
                        divisor = span_d * span_h * span_w
                    else:
                        divisor = max(0, d1 - d0) * max(0, h1 - h0) * max(0, w1 - w0)
                    y[n, c, od, oh, ow] = total / divisor if divisor != 0 else np.nan


@njit(cache=True, inline="always")
def _adaptive_window(o, size, out_size):
    return (o * size) // out_size, ((o + 1) * size + out_size - 1) // out_size


@njit(parallel=True, cache=True)
def adaptive_avg_pool(x, y):
    """Mean over PyTorch's adaptive windows [floor(o*I/O), ceil((o+1)*I/O))."""
    N, C, D, H, W = x.shape
    OD, OH, OW = y.shape[2], y.shape[3], y.shape[4]
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        xp = x[n, c]
        for od in range(OD):
            d0, d1 = _adaptive_window(od, D, OD)
            for oh in range(OH):
                h0, h1 = _adaptive_window(oh, H, OH)
                for ow in range(OW):
                    w0, w1 = _adaptive_window(ow, W, OW)
                    total = 0.0
                    for i_d in range(d0, d1):
                        for i_h in range(h0, h1):
                            for i_w in range(w0, w1):
                                total += xp[i_d, i_h, i_w]
                    count = (d1 - d0) * (h1 - h0) * (w1 - w0)
                    y[n, c, od, oh, ow] = total / count if count > 0 else np.nan


@njit(parallel=True, cache=True)
def adaptive_max_pool(x, y, indices, want_indices):
    """Max over PyTorch's adaptive windows, NaN rule and flat indices as in max_pool."""
    N, C, D, H, W = x.shape
    OD, OH, OW = y.shape[2], y.shape[3], y.shape[4]
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        xp = x[n, c]
        for od in range(OD):
            d0, d1 = _adaptive_window(od, D, OD)
            for oh in range(OH):
                h0, h1 = _adaptive_window(oh, H, OH)
                for ow in range(OW):
                    w0, w1 = _adaptive_window(ow, W, OW)
                    best = -np.inf
                    where = (d0 * H + h0) * W + w0
                    for i_d in range(d0, d1):
                        for i_h in range(h0, h1):
                            for i_w in range(w0, w1):
                                v = xp[i_d, i_h, i_w]
                                if v > best or np.isnan(v):
                                    best = v
                                    where = (i_d * H + i_h) * W + i_w
                    y[n, c, od, oh, ow] = best
                    if want_indices:
                        indices[n, c, od, oh, ow] = where
