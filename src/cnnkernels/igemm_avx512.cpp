// AVX-512 implicit-GEMM convolution micro-kernels (avx512f+vl+bw+dq, fma).
// Same compilation rules as gemm_avx512.cpp (headers before the target pragma,
// kernels in an anonymous namespace, accessor after `pop_options`; checked by
// src/check_isa_symbols.py). The vector traits are gemm's (vec_traits_avx512.inc),
// included inside this translation unit's anonymous namespace.
#include <cstdint>

#include "cnnkernels/igemm_kernels.h"

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

// One output channel's 8 pixels: + y (accumulating), clamp (NaN kept: max/min
// return their second operand when either is NaN), store.
inline __attribute__((always_inline)) void store_channel_row(float* dst, __m256 v, const IgemmEpilogue<float>& e,
                                                             __m256 lo, __m256 hi) {
    if (e.load_y) v = _mm256_add_ps(v, _mm256_loadu_ps(dst));
    if (e.clamp) v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
    _mm256_storeu_ps(dst, v);
}

// f32, 8 pixels: an in-register 8x16 transpose per channel vector (8 unpacks,
// 8 shuffles, 8 two-source permutes) then 16 row stores of 8 pixels, instead
// of 128 scalar stores through a scratch tile (10-15% of a 7x7 s2 layer's time).
template <class VT, int MR, int NV>
inline __attribute__((always_inline)) bool igemm_store_fast(typename VT::V (&acc)[MR][NV], typename VT::T* y,
                                                            int64_t ldy, const IgemmEpilogue<typename VT::T>& e) {
    if constexpr (sizeof(typename VT::T) == 4 && MR == 8) {
        const __m256 lo = _mm256_set1_ps(e.lo), hi = _mm256_set1_ps(e.hi);
        // Lanes (128 bits) of the result: a.lane0, b.lane0, a.lane1, b.lane1 / a.lane2, b.lane2, a.lane3, b.lane3.
        const __m512i idx_lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
        const __m512i idx_hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) {
            // t: pairs of pixels interleaved per 128-bit lane l (channels 4l..4l+3).
            __m512 t[8];
#pragma GCC unroll 4
            for (int p = 0; p < 4; ++p) {
                t[2 * p] = _mm512_unpacklo_ps(acc[2 * p][j], acc[2 * p + 1][j]);
                t[2 * p + 1] = _mm512_unpackhi_ps(acc[2 * p][j], acc[2 * p + 1][j]);
            }
            // u[q] (u[q + 4]): lane l holds pixels 0-3 (4-7) of channel 4l + q.
            __m512 u[8];
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
                u[4 * h + 0] = _mm512_shuffle_ps(t[4 * h + 0], t[4 * h + 2], 0x44);
                u[4 * h + 1] = _mm512_shuffle_ps(t[4 * h + 0], t[4 * h + 2], 0xEE);
                u[4 * h + 2] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
                u[4 * h + 3] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
            }
            float* yj = y + int64_t(j) * 16 * ldy;
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q) {
                const __m512 a = _mm512_permutex2var_ps(u[q], idx_lo, u[q + 4]);  // channels q, 4 + q
                const __m512 b = _mm512_permutex2var_ps(u[q], idx_hi, u[q + 4]);  // channels 8 + q, 12 + q
                store_channel_row(yj + q * ldy, _mm512_castps512_ps256(a), e, lo, hi);
                store_channel_row(yj + (4 + q) * ldy, _mm512_extractf32x8_ps(a, 1), e, lo, hi);
                store_channel_row(yj + (8 + q) * ldy, _mm512_castps512_ps256(b), e, lo, hi);
                store_channel_row(yj + (12 + q) * ldy, _mm512_extractf32x8_ps(b, 1), e, lo, hi);
            }
        }
        return true;
    }
    return false;
}

#include "cnnkernels/igemm_ukernel.inc"

#include "cnnkernels/transpose16_avx512.inc"

#include "cnnkernels/panel_columns.inc"

// Panels of 32 floats (16 filters x 16 weights at a time: each filter's run read as one vector, masked at
// its end, each packed row written as one) and of 16 doubles (8 x 8). The portable loop moves one value at
// a time (1 thread, Zen 4, float32, median of 30): 1024->256 1x1 (1 MB) 150 -> 86 us, 256->256 3x3
// (2.25 MB) 340 -> 72 us, 512->512 3x3 (9 MB) 2940 -> 544 us.
void pack_panel_f32(const float* w, int64_t R, int live, float* dst) {
    panel_columns<float, 16, transpose_rows16, false>(w, R, R, live, 32, dst);
}
void pack_panel_f64(const double* w, int64_t R, int live, double* dst) {
    panel_columns<double, 8, transpose_rows8d, false>(w, R, R, live, 16, dst);
}

template <class VT, int MR, int NV>
void tile(const IgemmReduction& r, const typename VT::T* const* a, const typename VT::T* Bp, typename VT::T* y,
          int64_t ldy, int n, const IgemmEpilogue<typename VT::T>& e, const char* pf, int64_t pf_lines) {
    igemm_tile<VT, MR, NV>(r, a, Bp, y, ldy, n, e, pf, pf_lines);
}

// f32: 8 pixels x 32 channels (16 zmm accumulators, as the GEMM's 8x32);
// f64: 8 pixels x 16 channels. Constant-initialised: no code runs here.
// Reduction chunks of 128 KiB (from L2): this tile needs 128 bytes of weights per
// 16 FMA cycles; the AVX2 tile (64 per 6 on Zen 4) lost 2-5% with them at 64 and
// 128 channels, so it keeps 16 KiB chunks in L1.
const IgemmIsaKernels kTable = {
    "avx512",
    {{&tile<F32x16, 1, 2>, &tile<F32x16, 2, 2>, &tile<F32x16, 3, 2>, &tile<F32x16, 4, 2>, &tile<F32x16, 5, 2>,
      &tile<F32x16, 6, 2>, &tile<F32x16, 7, 2>, &tile<F32x16, 8, 2>},
     8, 32, "f32_igemm_8x32_avx512", 128 << 10, &pack_panel_f32},
    {{&tile<F64x8, 1, 2>, &tile<F64x8, 2, 2>, &tile<F64x8, 3, 2>, &tile<F64x8, 4, 2>, &tile<F64x8, 5, 2>,
      &tile<F64x8, 6, 2>, &tile<F64x8, 7, 2>, &tile<F64x8, 8, 2>},
     8, 16, "f64_igemm_8x16_avx512", 128 << 10, &pack_panel_f64},
};

}  // namespace
}  // namespace isa_avx512
}  // namespace cnnkernels

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace cnnkernels {
const IgemmIsaKernels* igemm_kernels_avx512() { return &isa_avx512::kTable; }
}  // namespace cnnkernels

#else  // not x86 / not GCC-compatible: no AVX-512 kernels
namespace cnnkernels {
const IgemmIsaKernels* igemm_kernels_avx512() { return nullptr; }
}  // namespace cnnkernels
#endif
