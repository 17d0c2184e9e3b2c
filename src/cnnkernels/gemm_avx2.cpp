// AVX2 GEMM micro-kernels (avx2, fma). Compiled without -march:
// the target pragma below applies to this file's kernels only, and they are
// called only after active_isa_kernels() (isa.cpp) has checked the CPU.
//
// Rules that keep AVX2 code out of shared symbols (checked after every
// build by src/check_isa_symbols.py):
//   * every header is included BEFORE the target pragma;
//   * the kernels live in an anonymous namespace (internal linkage) and use no
//     std templates or header inline functions (only <immintrin.h> intrinsics,
//     which are always inlined and never emitted as functions);
//   * the table and its accessor are defined after `pop_options`.
#include <cstdint>

#include "cnnkernels/gemm_kernels.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace cnnkernels {
namespace isa_avx2 {
namespace {

#include "cnnkernels/vec_traits_avx2.inc"

#include "cnnkernels/gemm_ukernel.inc"

// f32_gemm_6x16_avx2: MR = 6, NR = 16 (12 ymm accumulators, 2 ymm of B, A
// broadcast). Preconditions: MicroKernel in gemm_kernels.h; CPU has avx2, fma.
void f32_gemm_6x16_avx2(int64_t kc, const float* Ap, int64_t lda, const float* Bp, float* C, int64_t ldc, int m, int n,
        const TileEpilogue<float>& e) {
    gemm_tile<F32x8, 6, 2, false>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}
// f32_gemm_6x16_avx2_sa: the same with A read in place (row stride lda). Same preconditions.
void f32_gemm_6x16_avx2_sa(int64_t kc, const float* Ap, int64_t lda, const float* Bp, float* C, int64_t ldc, int m, int n,
        const TileEpilogue<float>& e) {
    gemm_tile<F32x8, 6, 2, true>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}

// f64_gemm_6x8_avx2: MR = 6, NR = 8. Preconditions: as f32_gemm_6x16_avx2.
void f64_gemm_6x8_avx2(int64_t kc, const double* Ap, int64_t lda, const double* Bp, double* C, int64_t ldc, int m, int n,
        const TileEpilogue<double>& e) {
    gemm_tile<F64x4, 6, 2, false>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}
// f64_gemm_6x8_avx2_sa: the same with A read in place (row stride lda). Same preconditions.
void f64_gemm_6x8_avx2_sa(int64_t kc, const double* Ap, int64_t lda, const double* Bp, double* C, int64_t ldc, int m, int n,
        const TileEpilogue<double>& e) {
    gemm_tile<F64x4, 6, 2, true>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}

// f32_gemv_avx2 / f64_gemv_avx2: GemvKernel (gemm_kernels.h), 8/4-lane vectors, row blocks x all columns at a time.
void f32_gemv_avx2(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* X, float* Y, int64_t ldy) {
    gemv<F32x8>(m, n, k, A, lda, X, Y, ldy);
}
void f64_gemv_avx2(int64_t m, int64_t n, int64_t k, const double* A, int64_t lda, const double* X, double* Y, int64_t ldy) {
    gemv<F64x4>(m, n, k, A, lda, X, Y, ldy);
}

}  // namespace
}  // namespace isa_avx2
}  // namespace cnnkernels

#pragma GCC pop_options

namespace cnnkernels {
namespace {
// Blocking: kc x 16 B micro-panel (kc = 256: 16 KiB f32) in L1, A block
// (mc x kc = 252 x 256 f32, 252 KiB) in L2, B block kc x nc (512 KiB f32).
const IsaKernels kAvx2 = {
    "avx2",
    {&isa_avx2::f32_gemm_6x16_avx2, &isa_avx2::f32_gemm_6x16_avx2_sa, 6, 16, 256, 252, 512, "f32_gemm_6x16_avx2", &isa_avx2::f32_gemv_avx2},
    {&isa_avx2::f64_gemm_6x8_avx2, &isa_avx2::f64_gemm_6x8_avx2_sa, 6, 8, 256, 126, 256, "f64_gemm_6x8_avx2", &isa_avx2::f64_gemv_avx2},
};
}  // namespace
const IsaKernels* isa_kernels_avx2() { return &kAvx2; }
}  // namespace cnnkernels

#else  // not x86 / not GCC-compatible: no AVX2 kernels
namespace cnnkernels {
const IsaKernels* isa_kernels_avx2() { return nullptr; }
}  // namespace cnnkernels
#endif
