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

// Whether the n bytes at a and b are identical, threads comparing 1 MiB pieces.
// Why: prepared weights (Winograd U, packed panels) are trusted only while the
// weights still equal the copy taken when they were prepared; numpy's
// array_equal took 1.15 ms for 9 MiB (an element-wise bool array, then a
// reduction, one thread), a third of a 512->512 7x7 Winograd call.
// Preconditions: a and b readable for n bytes; threads >= 1.
bool bytes_equal(const void* a, const void* b, int64_t n, int threads);

}  // namespace cnnkernels
