"""Slow, obviously-correct float64 references for every operation (batched N, C, *spatial arrays).

Padding is always given as one (before, after) pair per spatial dim. Written from the
definitions in PyTorch's documentation, independently of cnnkernels' kernels.
"""
import itertools

import numpy as np


def conv(x, w, b, stride, pads, dilation, groups):
    """y[n, k, o] = b[k] + sum_{c in group(k), j} xpad[n, c, o*stride + j*dilation] * w[k, c, j]."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    nd = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads])
    K, Cg = w.shape[:2]
    Kg = K // groups
    ksize = w.shape[2:]
    out = [(xp.shape[2 + i] - dilation[i] * (ksize[i] - 1) - 1) // stride[i] + 1 for i in range(nd)]
    y = np.zeros((x.shape[0], K) + tuple(out))
    for j in itertools.product(*(range(k) for k in ksize)):
        window = tuple(slice(j[i] * dilation[i], j[i] * dilation[i] + (out[i] - 1) * stride[i] + 1, stride[i])
                       for i in range(nd))
        xs = xp[(slice(None), slice(None)) + window]
        for g in range(groups):
            wj = w[(slice(g * Kg, (g + 1) * Kg), slice(None)) + j]
            y[:, g * Kg:(g + 1) * Kg] += np.einsum("nc...,kc->nk...", xs[:, g * Cg:(g + 1) * Cg], wj)
    if b is not None:
        y += np.asarray(b, np.float64).reshape((1, K) + (1,) * nd)
    return y


def conv_transpose(x, w, b, stride, pads, output_padding, groups, dilation):
    """Scatter: every input element adds x * w[c, o, j] at output position i*stride + j*dilation - pad_before."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    nd = x.ndim - 2
    N, C = x.shape[:2]
    Cg = C // groups
    Kg = w.shape[1]
    K = Kg * groups
    ksize = w.shape[2:]
    full = [(x.shape[2 + i] - 1) * stride[i] + dilation[i] * (ksize[i] - 1) + 1 + output_padding[i]
            for i in range(nd)]
    buf = np.zeros((N, K) + tuple(full))
    for i_pos in itertools.product(*(range(s) for s in x.shape[2:])):
        for j in itertools.product(*(range(k) for k in ksize)):
            o = tuple(i_pos[d] * stride[d] + j[d] * dilation[d] for d in range(nd))
            for g in range(groups):
                xv = x[(slice(None), slice(g * Cg, (g + 1) * Cg)) + i_pos]          # (N, Cg)
                wv = w[(slice(g * Cg, (g + 1) * Cg), slice(None)) + j]               # (Cg, Kg)
                buf[(slice(None), slice(g * Kg, (g + 1) * Kg)) + o] += xv @ wv
    out = [full[i] - pads[i][0] - pads[i][1] for i in range(nd)]
    y = buf[(slice(None), slice(None)) + tuple(slice(pads[i][0], pads[i][0] + out[i]) for i in range(nd))]
    if b is not None:
        y = y + np.asarray(b, np.float64).reshape((1, K) + (1,) * nd)
    return y


def pool_out(size, k, s, d, before, after, ceil_mode):
    """PyTorch's pooling output size (pooling_output_shape in ATen)."""
    num = size + before + after - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= size + before:
        out -= 1
    return out


def _windows(x, out):
    for n, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for o in itertools.product(*(range(s) for s in out)):
            yield n, c, o


def _flat(pos, spatial):
    """Row-major flat index, also for positions past the end (no bounds check, as PyTorch)."""
    flat = 0
    for p, s in zip(pos, spatial):
        flat = flat * s + p
    return flat


def max_pool(x, kernel, stride, pads, dilation, ceil_mode):
    """Max over window positions inside the input (padding is -inf); a NaN wins, the last NaN's index is kept."""
    x = np.asarray(x, np.float64)
    nd = x.ndim - 2
    spatial = x.shape[2:]
    out = [pool_out(spatial[i], kernel[i], stride[i], dilation[i], pads[i][0], pads[i][1], ceil_mode)
           for i in range(nd)]
    y = np.empty(x.shape[:2] + tuple(out))
    idx = np.empty(y.shape, np.int64)
    for n, c, o in _windows(x, out):
        # PyTorch starts from -inf at the first window position at or after 0 in each dim, so a
        # window of only -inf (or only padding) reports that position.
        first = []
        for d in range(nd):
            start = o[d] * stride[d] - pads[d][0]
            while start < 0:
                start += dilation[d]
            first.append(start)
        best, where = -np.inf, _flat(first, spatial)
        for j in itertools.product(*(range(k) for k in kernel)):
            pos = tuple(o[d] * stride[d] - pads[d][0] + j[d] * dilation[d] for d in range(nd))
            if all(0 <= pos[d] < spatial[d] for d in range(nd)):
                v = x[(n, c) + pos]
                if v > best or np.isnan(v):
                    best, where = v, int(np.ravel_multi_index(pos, spatial))
        y[(n, c) + o] = best
        idx[(n, c) + o] = where
    return y, idx


def avg_pool(x, kernel, stride, pads, ceil_mode, count_include_pad, divisor_override):
    """Mean with PyTorch's divisor: the window clipped to the padded input, or to the input without count_include_pad."""
    x = np.asarray(x, np.float64)
    nd = x.ndim - 2
    spatial = x.shape[2:]
    out = [pool_out(spatial[i], kernel[i], stride[i], 1, pads[i][0], pads[i][1], ceil_mode) for i in range(nd)]
    y = np.empty(x.shape[:2] + tuple(out))
    for n, c, o in _windows(x, out):
        lo = [o[d] * stride[d] - pads[d][0] for d in range(nd)]
        hi = [min(lo[d] + kernel[d], spatial[d] + pads[d][1]) for d in range(nd)]
        padded_count = int(np.prod([hi[d] - lo[d] for d in range(nd)]))
        lo = [max(v, 0) for v in lo]
        hi = [min(hi[d], spatial[d]) for d in range(nd)]
        window = x[(n, c) + tuple(slice(lo[d], hi[d]) for d in range(nd))]
        if divisor_override:
            divisor = divisor_override
        else:
            divisor = padded_count if count_include_pad else window.size
        y[(n, c) + o] = window.sum() / divisor
    return y


def _adaptive_bounds(o, size, out):
    return (o * size) // out, -(-((o + 1) * size) // out)


def adaptive_pool(x, out, kind):
    """Windows [floor(o*I/O), ceil((o+1)*I/O)); kind 'avg' or 'max' (max also returns flat indices)."""
    x = np.asarray(x, np.float64)
    nd = x.ndim - 2
    spatial = x.shape[2:]
    y = np.empty(x.shape[:2] + tuple(out))
    idx = np.empty(y.shape, np.int64)
    for n, c, o in _windows(x, out):
        bounds = [_adaptive_bounds(o[d], spatial[d], out[d]) for d in range(nd)]
        window = x[(n, c) + tuple(slice(lo, hi) for lo, hi in bounds)]
        if kind == "avg":
            y[(n, c) + o] = window.mean()
            continue
        flat = window.ravel()
        nans = np.flatnonzero(np.isnan(flat))
        if nans.size:
            local = nans[-1]
        else:  # first strict maximum above the -inf start value; index of the start if none
            above = np.flatnonzero(flat > -np.inf)
            local = int(np.argmax(flat)) if above.size else 0
        y[(n, c) + o] = flat[local]
        pos = tuple(bounds[d][0] + v for d, v in enumerate(np.unravel_index(local, window.shape)))
        idx[(n, c) + o] = np.ravel_multi_index(pos, spatial)
    return y, idx
