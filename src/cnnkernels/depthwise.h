// Depthwise convolution (groups == C, K = C * multiplier) in NCDHW and NDHWC layouts.
#pragma once
#include <cstdint>

#include "cnnkernels/geometry.h"

namespace cnnkernels {

// y[n, k, o] = clamp(bias[k] + sum_taps w[k, 0, kd, kh, kw] * x[n, k / mult, o*stride - pad + tap*dilation]),
// mult = K / C, taps outside the input skipped, summed in (kd, kh, kw) order;
// clamp(v) = v < lo ? lo : (v > hi ? hi : v) (NaN stays NaN).
// ncdhw: x (N, C, D, H, W), y (N, K, OD, OH, OW). ndhwc: x (N, D, H, W, C), y (N, OD, OH, OW, K).
// w (K, 1, KD, KH, KW) (PyTorch order) in both; bias (K) or null.
// Preconditions: g.groups == g.C, g.K % g.C == 0, C >= 1; stride, dilation, kernel >= 1;
// pad >= 0; arrays C-contiguous and not overlapping y; threads >= 1; index arithmetic
// fits in int64. g.out may be any size >= 0 (reads are bounds-checked).
// 2-D 3x3 / 5x5, stride 1 or 2, dilation 1 with finite weights take fast paths. NCDHW:
// "same"-size stride-1 planes narrower than a vector run flattened with per-lane column
// masks (DwFlat); other planes run on a zero-padded copy, stride-1 rows of at least a
// vector from aligned vectors and lane shifts (dw_plane_s1a). NDHWC: channel vectors in
// register blocks of several pixels per kernel row (dw_row_cl).
template <class T>
void depthwise_ncdhw(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, T lo, T hi, int threads);
template <class T>
void depthwise_ndhwc(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, T lo, T hi, int threads);

}  // namespace cnnkernels
