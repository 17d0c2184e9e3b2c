// Max / average / adaptive pooling over independent (N*C) planes.
#pragma once
#include <cstdint>

#include "cnnkernels/geometry.h"

namespace cnnkernels {

// Window of output o (per dim): o*stride - pad_before + k*dilation, k in [0, kernel),
// positions outside [0, in) skipped. Windows are scanned in (kd, kh, kw) order with
// `v > best || isnan(v)` (so NaN propagates and the last NaN wins); the index starts
// at the first valid position (as PyTorch does, so an all -inf window reports
// that position). Empty window: y = -inf, index = -1.
// indices (nullable) receive the flat position (id*H + ih)*W + iw within the plane.
// Preconditions: x (planes, in), y and indices (planes, out) C-contiguous; kernel,
// stride, dilation >= 1; pad_before >= 0; pad_after unused; threads >= 1; index
// arithmetic fits in int64; out[] may be any size >= 0.
template <class T>
void max_pool(const PoolGeometry& g, const T* x, T* y, int64_t* indices, int threads);

// Per dim: start = o*stride - pad_before, end = min(start + kernel, in + pad_after),
// pool_size = prod(end - start); the window is then clipped to [0, in).
// y = sum / divisor, divisor = divisor_override if nonzero, else pool_size if
// count_include_pad, else the clipped element count; a zero divisor gives NaN.
// Preconditions: as max_pool, plus pad_after >= 0; dilation is ignored (must be 1).
template <class T>
void avg_pool(const PoolGeometry& g, bool count_include_pad, int64_t divisor_override, const T* x,
              T* y, int threads);

// Per dim: start = floor(o*in/out), end = ceil((o+1)*in/out). Empty windows (in == 0)
// give NaN for the average and -inf / index -1 for the max.
// Preconditions: in, out >= 0; (out + 1) * in fits in int64; x (planes, in) and
// y / indices (planes, out) C-contiguous; threads >= 1.
template <class T>
void adaptive_avg_pool(int64_t planes, const int64_t in[3], const int64_t out[3], const T* x, T* y,
                       int threads);
template <class T>
void adaptive_max_pool(int64_t planes, const int64_t in[3], const int64_t out[3], const T* x, T* y,
                       int64_t* indices, int threads);

// Channels-last variants: x (N, D, H, W, C), y / indices (N, OD, OH, OW, C), g.planes = N,
// SIMD across C. Same windows, scan order, NaN / index rules and divisors as the NCDHW
// kernels above (indices are flat (d*H + h)*W + w positions). C >= 0.
template <class T>
void max_pool_ndhwc(const PoolGeometry& g, int64_t C, const T* x, T* y, int64_t* indices, int threads);
template <class T>
void avg_pool_ndhwc(const PoolGeometry& g, int64_t C, bool count_include_pad, int64_t divisor_override, const T* x,
                    T* y, int threads);
template <class T>
void adaptive_avg_pool_ndhwc(int64_t N, const int64_t in[3], const int64_t out[3], int64_t C, const T* x, T* y,
                             int threads);

}  // namespace cnnkernels
