// 1x1 convolution (stride 1, no padding, groups 1) in channels-last layout: one GEMM with no
// copy of the input, since x's rows of C channels are already the GEMM's rows.
#pragma once
#include <cstdint>

namespace cnnkernels {

// y[p, k] = clamp(bias[k] + sum_c x[p, c] * w[k, c]) for p < P positions (x: P x C, y: P x K,
// w: K x C as PyTorch stores it, all row-major); bias (K) or null.
// clamp(v) = min(hi, max(lo, v)) when `clamp`, NaN kept.
// Preconditions: P, C, K >= 0; y overlaps neither x, w nor bias; threads >= 1;
// workspace_bytes >= 1 (the GEMM's packing budget).
template <class T>
void pointwise_ndhwc(int64_t P, int64_t C, int64_t K, const T* x, const T* w, const T* bias, T* y, bool clamp, T lo,
                     T hi, int threads, int64_t workspace_bytes);

}  // namespace cnnkernels
