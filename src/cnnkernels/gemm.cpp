#include "cnnkernels/gemm.h"

#include <algorithm>

namespace cnnkernels {
namespace {

// Block sizes: a KB x NB panel of B (256 KiB for float) stays in L2 while every
// row block of A streams over it; MB x NB tiles are the unit of parallel work.
constexpr int64_t MB = 64;
constexpr int64_t NB = 256;
constexpr int64_t KB = 256;

// Micro-tile: MR rows x NR columns of C held in local accumulators for a whole
// K block, so the inner loop does only loads of A/B and multiply-adds. Sized to
// fit the 16 SSE registers (4 x 2 vectors), the only ISA guaranteed without
// -march; the fixed sizes let GCC unroll and keep the accumulators in registers.
constexpr int MR = 4;
template <class T>
constexpr int NR = 32 / int(sizeof(T));

// GCC would otherwise vectorise the p loop (strided A loads, accumulators
// spilled to the stack); keeping it scalar leaves the fully unrolled j loops to
// the SLP vectoriser, which keeps acc in registers.
#if defined(__GNUC__) && !defined(__clang__)
#define CNNK_NO_LOOP_VECTORIZE __attribute__((optimize("no-tree-loop-vectorize")))
#else
#define CNNK_NO_LOOP_VECTORIZE
#endif

template <class T>
CNNK_NO_LOOP_VECTORIZE inline void micro_kernel(int64_t kc, const T* __restrict A, int64_t lda, const T* __restrict B,
                         int64_t ldb, T* __restrict C, int64_t ldc) {
    constexpr int nr = NR<T>;
    T acc[MR][nr];
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < nr; ++j) acc[r][j] = C[r * ldc + j];
    for (int64_t p = 0; p < kc; ++p) {
        const T* __restrict b = B + p * ldb;
        for (int r = 0; r < MR; ++r) {
            const T a = A[r * lda + p];
            for (int j = 0; j < nr; ++j) acc[r][j] += a * b[j];
        }
    }
    for (int r = 0; r < MR; ++r)
        for (int j = 0; j < nr; ++j) C[r * ldc + j] = acc[r][j];
}

// Edge tiles (fewer than MR rows or NR columns): rank-1 row updates, still
// contiguous in j so they vectorise.
template <class T>
inline void edge_kernel(int64_t m, int64_t n, int64_t kc, const T* __restrict A, int64_t lda,
                        const T* __restrict B, int64_t ldb, T* __restrict C, int64_t ldc) {
    for (int64_t r = 0; r < m; ++r) {
        T* __restrict c = C + r * ldc;
        for (int64_t p = 0; p < kc; ++p) {
            const T a = A[r * lda + p];
            const T* __restrict b = B + p * ldb;
            for (int64_t j = 0; j < n; ++j) c[j] += a * b[j];
        }
    }
}

}  // namespace

template <class T>
void gemm_nn(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
             T* C, int64_t ldc, bool accumulate, int threads) {
    if (M <= 0 || N <= 0) return;
    constexpr int64_t nr = NR<T>;
    const int64_t tiles_m = (M + MB - 1) / MB;
    const int64_t tiles_n = (N + NB - 1) / NB;
    const int64_t tiles = tiles_m * tiles_n;

    // Each tile owns a disjoint block of C and runs the whole K loop itself, so
    // tiles need no synchronisation and the result does not depend on threads.
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && tiles > 1)
    for (int64_t t = 0; t < tiles; ++t) {
        const int64_t i0 = (t / tiles_n) * MB, i1 = std::min(M, i0 + MB);
        const int64_t j0 = (t % tiles_n) * NB, j1 = std::min(N, j0 + NB);
        if (!accumulate)
            for (int64_t i = i0; i < i1; ++i) std::fill(C + i * ldc + j0, C + i * ldc + j1, T(0));
        for (int64_t p0 = 0; p0 < K; p0 += KB) {
            const int64_t kc = std::min(KB, K - p0);
            int64_t i = i0;
            for (; i + MR <= i1; i += MR) {
                const T* a = A + i * lda + p0;
                int64_t j = j0;
                for (; j + nr <= j1; j += nr)
                    micro_kernel<T>(kc, a, lda, B + p0 * ldb + j, ldb, C + i * ldc + j, ldc);
                if (j < j1)
                    edge_kernel<T>(MR, j1 - j, kc, a, lda, B + p0 * ldb + j, ldb, C + i * ldc + j, ldc);
            }
            if (i < i1)
                edge_kernel<T>(i1 - i, j1 - j0, kc, A + i * lda + p0, lda, B + p0 * ldb + j0, ldb,
                               C + i * ldc + j0, ldc);
        }
    }
}

template void gemm_nn<float>(int64_t, int64_t, int64_t, const float*, int64_t, const float*,
                             int64_t, float*, int64_t, bool, int);
template void gemm_nn<double>(int64_t, int64_t, int64_t, const double*, int64_t, const double*,
                              int64_t, double*, int64_t, bool, int);

}  // namespace cnnkernels
