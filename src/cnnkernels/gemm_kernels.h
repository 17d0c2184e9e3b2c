// GEMM micro-kernel interface shared by the ISA-specific translation units
// (gemm_avx512.cpp, gemm_avx2.cpp, gemm_baseline.cpp) and the portable driver
// (gemm.cpp). Plain types only: nothing here instantiates code, so including it
// in an ISA translation unit cannot leak ISA instructions into shared symbols.
#pragma once
#include <cstdint>

namespace cnnkernels {

// What a micro-kernel does with its MR x NR tile of accumulators before storing:
//   v = acc (+ C if load_c) (+ bias[row] if bias) (+ col_bias[column] if col_bias) ; if clamp: v = min(hi, max(lo, v))
// The clamp keeps NaN (like torch.relu): max/min are written so that a NaN
// value passes through instead of being replaced by lo/hi (x86 max_ps/min_ps
// return their SECOND operand when either is NaN, and are called as
// max(lo, v), min(hi, v); the portable kernels use (lo > v ? lo : v)).
// bias, when not null, points at the bias of the tile's first row (m entries).
template <class T>
struct TileEpilogue {
    const T* bias = nullptr;
    const T* col_bias = nullptr;  // NR entries, one per column of the tile (zero-padded), or null
    T lo = T(0), hi = T(0);
    bool load_c = false;
    bool clamp = false;
};

// Micro-kernel: C[0:m, 0:n] (row stride ldc) = epilogue(Ap * Bp) where Ap is a
// packed MR x kc panel of A (column k at Ap + k*MR, rows >= m zero) and Bp a
// packed kc x NR panel of B (row k at Bp + k*NR, columns >= n zero).
// Preconditions: kc >= 1, 1 <= m <= MR, 1 <= n <= NR, Ap and Bp 64-byte aligned,
// C rows [0, m) x columns [0, n) writable (and readable if load_c).
// The `_sa` ("strided A") variant reads A in place instead: row i (< m) at
// Ap + i*lda, kc contiguous elements each (no packing copy of A).
template <class T>
using MicroKernel = void (*)(int64_t kc, const T* Ap, int64_t lda, const T* Bp, T* C, int64_t ldc, int m, int n,
                             const TileEpilogue<T>& e);

// Narrow product, 1 <= n <= kGemvMaxCols columns: Y[i * ldy + j] = sum_{p < k} A[i * lda + p] *
// X[j * k + p] for i < m, j < n (X holds the columns of B one after another). For GEMMs whose B
// has a few columns (fully connected layers at small batch, 1x1 convolutions of a few positions),
// where the tile micro-kernels would compute NR columns for them; each A element is loaded once.
// Preconditions: m >= 0, k >= 1; Y overlaps neither A nor X.
constexpr int kGemvMaxCols = 16;  // measured faster than the tiles up to here (A is read n / 4 times)
template <class T>
using GemvKernel = void (*)(int64_t m, int64_t n, int64_t k, const T* A, int64_t lda, const T* X, T* Y, int64_t ldy);

// A micro-kernel and the cache blocking the driver should use with it:
// kc (depth of a packed panel), mc (rows of A packed per block, a multiple of
// mr) and nc (columns of B packed per block, a multiple of nr).
template <class T>
struct MicroKernelDesc {
    MicroKernel<T> fn;      // packed A (lda ignored)
    MicroKernel<T> fn_sa;   // strided A
    int mr, nr;
    int64_t kc, mc, nc;
    const char* name;
    GemvKernel<T> gemv;
};

struct IsaKernels {
    const char* isa;  // "avx512", "avx2" or "baseline"
    MicroKernelDesc<float> f32;
    MicroKernelDesc<double> f64;
};

// Kernel tables of each ISA; nullptr when that ISA was not compiled in (non-x86
// build). Calling a table's kernels on a CPU without the ISA is undefined: go
// through active_isa_kernels() (isa.h), which checks the CPU.
const IsaKernels* isa_kernels_avx512();
const IsaKernels* isa_kernels_avx2();
const IsaKernels* isa_kernels_baseline();

}  // namespace cnnkernels
