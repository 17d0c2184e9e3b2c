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

// A 128-bit digest of n bytes and whether they hold only finite floats of the
// given kind, in one read (threads digesting 256 KiB pieces; the result does not
// depend on threads).
// Why: prepared weights are trusted while the weights are unchanged. Keeping a
// copy to compare against cost a weight-sized allocation on the first call
// (fresh memory: ~0.6 ms per MiB on this VM) and two reads on every later one;
// the digest needs one read and 16 bytes. Every word feeds a lane whose update
// is a bijection (digest_kernel.inc), and the folds are injective per lane, so a
// change of any single 32-bit word always changes the digest; other changes go
// unnoticed with probability about 2^-64.
// float_kind: 0 none (finite is true; the read is faster), 1 float32, 2 float64 (little-endian).
// Preconditions: p readable for n bytes, 4-byte aligned, n a multiple of 4;
// threads >= 1.
struct Digest {
    uint64_t h0, h1;
    bool finite;
};
Digest bytes_digest(const void* p, int64_t n, int float_kind, int threads);

}  // namespace cnnkernels
