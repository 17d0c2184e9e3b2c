// AVX-512 GEMM micro-kernels (avx512f+vl+bw+dq, fma). Compiled without -march:
// the target pragma below applies to this file's kernels only, and they are
// called only after active_isa_kernels() (isa.cpp) has checked the CPU.
//
// Rules that keep AVX-512 code out of shared symbols (checked after every
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
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
// GCC 12 false positive inside _mm512_max_ps/_mm512_min_ps (_mm512_undefined_ps).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cnnkernels {
namespace isa_avx512 {
namespace {

#include "cnnkernels/vec_traits_avx512.inc"

#include "cnnkernels/gemm_ukernel.inc"

// f32_gemm_8x32_avx512: MR = 8, NR = 32 (16 zmm accumulators, 2 zmm of B,
// A broadcast from memory by the FMA). Measured on Zen 4 (256x3136x576, 1
// thread): 8x32 ~90 GFLOP/s, 6x64 ~85, 12x32 ~84, 14x32 ~82, 7x48 ~82; Zen 4
// splits each zmm FMA over its two 256-bit pipes, so 16 accumulators already
// cover the FMA latency, and layer channel counts (multiples of 8) leave no
// partial row panels. Preconditions: MicroKernel in gemm_kernels.h; CPU has
// avx512f/vl/bw/dq and fma.
void f32_gemm_8x32_avx512(int64_t kc, const float* Ap, int64_t lda, const float* Bp, float* C, int64_t ldc, int m, int n,
        const TileEpilogue<float>& e) {
    gemm_tile<F32x16, 8, 2, false>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}
// f32_gemm_8x32_avx512_sa: the same with A read in place (row stride lda). Same preconditions.
void f32_gemm_8x32_avx512_sa(int64_t kc, const float* Ap, int64_t lda, const float* Bp, float* C, int64_t ldc, int m, int n,
        const TileEpilogue<float>& e) {
    gemm_tile<F32x16, 8, 2, true>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}

// f64_gemm_8x16_avx512: MR = 8, NR = 16 (16 zmm accumulators).
// Preconditions: as f32_gemm_8x32_avx512.
void f64_gemm_8x16_avx512(int64_t kc, const double* Ap, int64_t lda, const double* Bp, double* C, int64_t ldc, int m, int n,
        const TileEpilogue<double>& e) {
    gemm_tile<F64x8, 8, 2, false>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}
// f64_gemm_8x16_avx512_sa: the same with A read in place (row stride lda). Same preconditions.
void f64_gemm_8x16_avx512_sa(int64_t kc, const double* Ap, int64_t lda, const double* Bp, double* C, int64_t ldc, int m, int n,
        const TileEpilogue<double>& e) {
    gemm_tile<F64x8, 8, 2, true>(kc, Ap, lda, Bp, C, ldc, m, n, e);
}

// f32_gemv_avx512 / f64_gemv_avx512: GemvKernel (gemm_kernels.h), 16/8-lane vectors, row blocks x all columns at a time.
void f32_gemv_avx512(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* X, float* Y, int64_t ldy) {
    gemv<F32x16>(m, n, k, A, lda, X, Y, ldy);
}
void f64_gemv_avx512(int64_t m, int64_t n, int64_t k, const double* A, int64_t lda, const double* X, double* Y, int64_t ldy) {
    gemv<F64x8>(m, n, k, A, lda, X, Y, ldy);
}

}  // namespace
}  // namespace isa_avx512
}  // namespace cnnkernels

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace cnnkernels {
namespace {
// Blocking (Zen 4: 48 KiB L1d, 1 MiB L2 per core): the kc x 32 B micro-panel
// (kc = 256: 32 KiB f32) stays in L1 while the A block (mc x kc = 256 x 256
// f32, 256 KiB) streams from L2; the B block (kc x nc = 256 x 512 f32, 512 KiB)
// is packed just before use. Packing buffers: 768 KiB per thread (f32 and f64).
const IsaKernels kAvx512 = {
    "avx512",
    {&isa_avx512::f32_gemm_8x32_avx512, &isa_avx512::f32_gemm_8x32_avx512_sa, 8, 32, 256, 256, 512, "f32_gemm_8x32_avx512", &isa_avx512::f32_gemv_avx512},
    {&isa_avx512::f64_gemm_8x16_avx512, &isa_avx512::f64_gemm_8x16_avx512_sa, 8, 16, 256, 128, 256, "f64_gemm_8x16_avx512", &isa_avx512::f64_gemv_avx512},
};
}  // namespace
const IsaKernels* isa_kernels_avx512() { return &kAvx512; }
}  // namespace cnnkernels

#else  // not x86 / not GCC-compatible: no AVX-512 kernels
namespace cnnkernels {
const IsaKernels* isa_kernels_avx512() { return nullptr; }
}  // namespace cnnkernels
#endif
