// Portable GEMM micro-kernels: GCC/Clang generic vectors (16 bytes), compiled
// with the default flags (SSE2 on x86-64, NEON on AArch64), so they run on any
// CPU this package builds for. Same source as the ISA kernels
// (gemm_ukernel.inc), same internal-linkage rules.
#include <cstdint>
#include <cstring>

#include "cnnkernels/gemm_kernels.h"

namespace cnnkernels {
namespace isa_baseline {
namespace {

#include "cnnkernels/vec_traits_baseline.inc"
}
    static V load(const T* p) { V v; __builtin_memcpy(&v, p, sizeof v); return v; }
    static void store(T* p, V v) { __builtin_memcpy(p, &v, sizeof v); }
    static V bcast(T x) { return V{x, x}; }
    static V fma(V a, V b, V c) { return a * b + c; }
    static V add(V a, V b) { return a + b; }
    static V max(V lo, V v) { for (int i = 0; i < W; ++i) v[i] = lo[i] > v[i] ? lo[i] : v[i]; return v; }
    static V min(V hi, V v) { for (int i = 0; i < W; ++i) v[i] = hi[i] < v[i] ? hi[i] : v[i]; return v; }
};

#include "cnnkernels/gemm_ukernel.inc"

// f32_gemm_4x8_baseline: MR = 4, NR = 8 (8 xmm accumulators: fits 16 SSE
// registers). Preconditions: MicroKernel in gemm_kernels.h.
void f32_gemm_4x8_baseline(int64_t kc, const float* Ap, int64_t lda, const float* Bp, float* C, int64_t ldc, int m, int n,
        const TileEpilogue<float>& e) {
    gemm_tile<F32x4, 4, 2, false>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}
// f32_gemm_4x8_baseline_sa: the same with A read in place (row stride lda). Same preconditions.
void f32_gemm_4x8_baseline_sa(int64_t kc, const float* Ap, int64_t lda, const float* Bp, float* C, int64_t ldc, int m, int n,
        const TileEpilogue<float>& e) {
    gemm_tile<F32x4, 4, 2, true>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}

// f64_gemm_4x4_baseline: MR = 4, NR = 4. Preconditions: MicroKernel in gemm_kernels.h.
void f64_gemm_4x4_baseline(int64_t kc, const double* Ap, int64_t lda, const double* Bp, double* C, int64_t ldc, int m, int n,
        const TileEpilogue<double>& e) {
    gemm_tile<F64x2, 4, 2, false>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}
// f64_gemm_4x4_baseline_sa: the same with A read in place (row stride lda). Same preconditions.
void f64_gemm_4x4_baseline_sa(int64_t kc, const double* Ap, int64_t lda, const double* Bp, double* C, int64_t ldc, int m, int n,
        const TileEpilogue<double>& e) {
    gemm_tile<F64x2, 4, 2, true>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}

// f32_gemv_baseline / f64_gemv_baseline: GemvKernel (gemm_kernels.h), 4/2-lane vectors, row blocks x all columns at a time.
void f32_gemv_baseline(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* X, float* Y, int64_t ldy) {
    gemv<F32x4>(m, n, k, A, lda, X, Y, ldy);
}
void f64_gemv_baseline(int64_t m, int64_t n, int64_t k, const double* A, int64_t lda, const double* X, double* Y, int64_t ldy) {
    gemv<F64x2>(m, n, k, A, lda, X, Y, ldy);
}

const IsaKernels kBaseline = {
    "baseline",
    {&f32_gemm_4x8_baseline, &f32_gemm_4x8_baseline_sa, 4, 8, 256, 128, 512, "f32_gemm_4x8_baseline", &f32_gemv_baseline},
    {&f64_gemm_4x4_baseline, &f64_gemm_4x4_baseline_sa, 4, 4, 256, 64, 256, "f64_gemm_4x4_baseline", &f64_gemv_baseline},
};

}  // namespace
}  // namespace isa_baseline

const IsaKernels* isa_kernels_baseline() { return &isa_baseline::kBaseline; }

}  // namespace cnnkernels
