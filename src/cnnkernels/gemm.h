// Dense matrix multiply used by the im2col convolution: packed, register-blocked
// micro-kernels (gemm_kernels.h) chosen at run time for the CPU (isa.h).
#pragma once
#include <cstdint>

namespace cnnkernels {

// Applied to each element of C = A*B (+ C) before it is stored, while the tile
// is still in registers: v (+ bias[row]) (+ col_bias[column]) then, if clamp, min(hi, max(lo, v)),
// NaN propagating (a NaN v stays NaN; see TileEpilogue in gemm_kernels.h).
template <class T>
struct GemmEpilogue {
    bool accumulate = false;  // C = C + A*B instead of C = A*B
    const T* bias = nullptr;  // M entries, one per row of C, or null
    const T* col_bias = nullptr;  // N entries, one per column of C, or null (added after bias)
    bool clamp = false;
    T lo = T(0), hi = T(0);
};

// Packing-buffer bytes gemm_nn_ex (prepacked_a: gemm_prepacked) allocates at
// most with `threads` threads when given budget pack_budget_bytes (>= the floor
// of a few KiB per thread).
int64_t gemm_pack_bytes(int64_t M, int64_t N, int64_t K, int elem_size, int threads, int64_t pack_budget_bytes,
                        bool prepacked_a = false);

// C = epilogue(A * B), all row-major with leading dimensions lda/ldb/ldc (in
// elements). A is read in place (no copy); B is packed into one kc x nc block
// per thread (64-byte aligned, on the heap for the duration of the call), at
// most gemm_pack_bytes(M, N, K, sizeof(T), threads, budget, true) bytes: the
// ISA's default blocking (kc x nc = 256 x 512 f32 = 512 KiB per thread for
// AVX-512), nc shrunk to fit pack_budget_bytes, floor nr * kc per thread.
// The result does not depend on `threads` (every element sums its K products in
// the same order). A few columns (N <= kGemvMaxCols) go to the ISA's narrow-product
// kernel instead (no packing; a different, equally thread-independent order).
// Preconditions: M, N, K >= 0; A is M x K, B is K x N, C is M x N; C must not
// overlap A, B or bias; threads >= 1. Any of M, N, K may be 0 (K == 0 gives
// C = epilogue(0 or C)).
// scratch: optional caller-owned packing buffer of scratch_elems elements,
// 64-byte aligned (saves an allocation per call when the caller runs many
// GEMMs); used when large enough (gemm_pack_bytes(M, N, K, sizeof(T), threads,
// pack_budget_bytes, true) bytes suffice), else the GEMM allocates its own.
template <class T>
void gemm_nn_ex(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                int64_t ldc, const GemmEpilogue<T>& ep, int threads, int64_t pack_budget_bytes,
                T* scratch = nullptr, int64_t scratch_elems = 0);

// gemm_nn_ex with B given transposed: Bt is N x K row-major (leading dimension ldbt), C = epilogue(A Bt^T).
// For weights stored (outputs, inputs), as PyTorch's 1x1 convolutions and linear layers keep them: no
// transposed copy (its packing reads each column of B as a contiguous row of Bt). No caller scratch.
// Preconditions: as gemm_nn_ex, with Bt N x K.
template <class T>
void gemm_nt_ex(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* Bt, int64_t ldbt, T* C,
                int64_t ldc, const GemmEpilogue<T>& ep, int threads, int64_t pack_budget_bytes);

// A packed once for many products with the same A (convolution weights over
// many column slices): packed_a_elems(M, K) elements (M rounded up to the
// micro-kernel's mr, times K), filled by pack_a_full from the row-major
// A (lda), valid for the ISA kernels active at the time (never changes).
template <class T>
int64_t packed_a_elems(int64_t M, int64_t K);
template <class T>
void pack_a_full(int64_t M, int64_t K, const T* A, int64_t lda, T* dst);

// gemm_nn_ex with A given packed by pack_a_full (same M, K): allocates only the
// B packing buffers (kc x nc per thread).
template <class T>
void gemm_prepacked(int64_t M, int64_t N, int64_t K, const T* Apacked, const T* B, int64_t ldb, T* C, int64_t ldc,
                    const GemmEpilogue<T>& ep, int threads, int64_t pack_budget_bytes);

// C = (accumulate ? C : 0) + A * B with the default packing budget (64 MiB).
// Preconditions: as gemm_nn_ex.
template <class T>
void gemm_nn(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
             T* C, int64_t ldc, bool accumulate, int threads);

}  // namespace cnnkernels
