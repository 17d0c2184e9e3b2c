"""Numba convolution kernels on 5-D NCDHW arrays.

Shared preconditions (checked by ``cnnkernels.functional`` before any call):
x (N, C, D, H, W), w (K, C // groups, KD, KH, KW), bias (K,) or (0,) for none,
y (N, K, OD, OH, OW), all C-contiguous and of one float dtype; stride and
dilation >= 1, pad (padding before) >= 0. y's shape encodes the padding after:
every input index is bounds-checked, so any y shape is safe.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _valid_range(out_size, in_size, stride, offset):
    """Output positions o, as [lo, hi), whose input position o*stride + offset lies in [0, in_size)."""
    lo = min(out_size, 0 if offset >= 0 else (-offset + stride - 1) // stride)
    last = in_size - 1 - offset
    hi = min(out_size, last // stride + 1) if last >= 0 else 0
    return lo, max(lo, hi)   # 0 <= lo <= hi <= out_size


@njit(parallel=True, cache=True)
def conv_direct(x, w, bias, y, stride, pad, dilation, groups, act_min=-np.inf, act_max=np.inf):
    """Direct convolution: each (n, k) output volume accumulates one weight at a time over a contiguous row.

    The result is clamped to [act_min, act_max] (ReLU: act_min=0) while the volume is still in cache;
    NaN stays NaN.
    """
    N, C, D, H, W = x.shape
    K, Cg, KD, KH, KW = w.shape
    OD, OH, OW = y.shape[2], y.shape[3], y.shape[4]
    Kg = K // groups
    sd, sh, sw = stride
    pd, ph, pw = pad
    dd, dh, dw = dilation
    has_bias = bias.shape[0] > 0
    for nk in prange(N * K):
        n = nk // K
        k = nk % K
        g = k // Kg
        out = y[n, k]
        b = bias[k] if has_bias else 0.0
        out[:] = b
        for c in range(Cg):
            xc = x[n, g * Cg + c]
            for kd in range(KD):
                for kh in range(KH):
                    for kw in range(KW):
                        wv = w[k, c, kd, kh, kw]
                        off_w = kw * dw - pw
                        ow_lo, ow_hi = _valid_range(OW, W, sw, off_w)
                        for od in range(OD):
                            i_d = od * sd - pd + kd * dd
                            if i_d < 0 or i_d >= D:
                                continue
                            for oh in range(OH):
                                i_h = oh * sh - ph + kh * dh
                                if i_h < 0 or i_h >= H:
                                    continue
                                row = xc[i_d, i_h]
                                orow = out[od, oh]
                                for ow in range(ow_lo, ow_hi):
                                    orow[ow] += wv * row[ow * sw + off_w]
        if act_min > -np.inf or act_max < np.inf:
            _clamp_volume(out, act_min, act_max)


@njit(cache=True, inline="always")
def _clamp(v, lo, hi):
    """min/max that keep NaN (like torch's relu and clamp)."""
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


@njit(cache=True)
def _clamp_volume(out, lo, hi):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            row = out[i, j]
            for k in range(out.shape[2]):
                row[k] = _clamp(row[k], lo, hi)


@njit(cache=True)
def _im2col_chunk(x, n, c0, Cg, ksize, stride, pad, dilation, out_sizes, p0, col):
    """Fill col (Cg*KD*KH*KW, width) with the input patches of output positions [p0, p0 + width); 0 for padding.

    Works in segments of one output row (fixed od, oh): per patch row the valid part of a segment
    is one contiguous (stride 1) or strided copy, the rest zeros, so there is no per-element test.
    """
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    KD, KH, KW = ksize
    OH, OW = out_sizes[1], out_sizes[2]
    sd, sh, sw = stride
    pd, ph, pw = pad
    dd, dh, dw = dilation
    rows, width = col.shape
    j = 0
    while j < width:
        p = p0 + j
        ow0 = p % OW
        oh = (p // OW) % OH
        od = p // (OW * OH)
        seg = min(OW - ow0, width - j)
        for r in range(rows):
            kw = r % KW
            kh = (r // KW) % KH
            kd = (r // (KW * KH)) % KD
            c = r // (KW * KH * KD)
            crow = col[r]
            i_d = od * sd - pd + kd * dd
            i_h = oh * sh - ph + kh * dh
            if i_d < 0 or i_d >= D or i_h < 0 or i_h >= H:
                for t in range(seg):
                    crow[j + t] = 0.0
                continue
            src = x[n, c0 + c, i_d, i_h]
            off = kw * dw - pw
            end = ow0 + seg
            lo, hi = _valid_range(end, W, sw, off)
            lo = min(max(lo, ow0), end)   # _valid_range's lo can exceed the segment: clamp both ends into it
            hi = min(max(hi, lo), end)
            for ow in range(ow0, lo):
                crow[j + ow - ow0] = 0.0
            if sw == 1:
                for ow in range(lo, hi):
                    crow[j + ow - ow0] = src[ow + off]
            else:
                for ow in range(lo, hi):
                    crow[j + ow - ow0] = src[ow * sw + off]
            for ow in range(hi, end):
                crow[j + ow - ow0] = 0.0
        j += seg


@njit(parallel=True, cache=True)
def conv_im2col(x, w, bias, y, stride, pad, dilation, groups, chunk_bytes, act_min=-np.inf, act_max=np.inf):
    """im2col + GEMM (np.dot, i.e. BLAS) over chunks of output positions, one chunk per parallel iteration.

    A chunk holds its column matrix and its product (rows + Kg values per position) in at most chunk_bytes
    (the caller's workspace limit over the threads, one chunk in flight each; floor: one position) and at
    most half of L2. Parallelism comes from the chunks, so BLAS should run
    single-threaded (the caller arranges it): its worker threads would otherwise fight ours.
    """
    N, C = x.shape[0], x.shape[1]
    K, Cg, KD, KH, KW = w.shape
    OD, OH, OW = y.shape[2], y.shape[3], y.shape[4]
    Kg = K // groups
    rows = Cg * KD * KH * KW
    npos = OD * OH * OW
    if npos == 0 or K == 0:
        return
    has_bias = bias.shape[0] > 0
    wmat = w.reshape(K, rows)
    yr = y.reshape(N, K, npos)
    pointwise = (KD == 1 and KH == 1 and KW == 1 and stride == (1, 1, 1) and pad == (0, 0, 0)
                 and x.shape[2] == OD and x.shape[3] == OH and x.shape[4] == OW)
    xr = x.reshape(N * C, x.shape[2] * x.shape[3] * x.shape[4])
    budget = min(chunk_bytes, 1 << 19)
    P = max(1, min(npos, budget // ((rows + Kg) * x.itemsize)))
    chunks = (npos + P - 1) // P
    for n in range(N):
        for g in range(groups):
            wg = np.ascontiguousarray(wmat[g * Kg:(g + 1) * Kg])
            for ch in prange(chunks):
                p0 = ch * P
                width = min(P, npos - p0)
                if pointwise:
                    col = np.ascontiguousarray(xr[n * C + g * Cg:n * C + (g + 1) * Cg, p0:p0 + width])
                else:
                    col = np.empty((rows, width), dtype=x.dtype)
                    _im2col_chunk(x, n, g * Cg, Cg, (KD, KH, KW), stride, pad, dilation, (OD, OH, OW), p0, col)
                res = np.dot(wg, col)
                for i in range(Kg):
                    b = bias[g * Kg + i] if has_bias else 0.0
                    dst = yr[n, g * Kg + i]
                    for j in range(width):
                        dst[p0 + j] = _clamp(res[i, j] + b, act_min, act_max)
