// Element-wise epilogues that run after a kernel (residual connections).
#pragma once
#include <cstdint>

namespace cnnkernels {

// y[i] = clamp(y[i] + r[i], lo, hi) for i < n (NaN stays NaN; no clamp when
// clamp is false), threads splitting the range. One pass instead of numpy's
// two single-threaded ones (add, then maximum) for a residual block's
// out = relu(out + identity). Preconditions: y and r hold n elements and do
// not overlap unless r == y; threads >= 1.
template <class T>
void add_clamp_inplace(T* y, const T* r, int64_t n, bool clamp, T lo, T hi, int threads);

}  // namespace cnnkernels
