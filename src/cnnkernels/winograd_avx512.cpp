// AVX-512 Winograd transforms (avx512f+vl+bw+dq, fma), same rules as
// gemm_avx512.cpp: headers before the target pragma, kernels in an anonymous
// namespace inside cnnkernels::isa_avx512, table defined after pop_options.
#include <cstdint>

#include "cnnkernels/winograd_kernels.h"
#include "cnnkernels/winograd_matrices.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cnnkernels {
namespace isa_avx512 {
namespace {

#include "cnnkernels/transpose16_avx512.inc"
#include "cnnkernels/panel_columns.inc"

struct WF32 {
    using T = float;
    using V = __m512;
    static constexpr int W = 16;
    // F(4x4) output tile: ov[a*4 + b] holds output (a, b) of 16 channels;
    // transposed, channel l's vector holds its 4 x 4 tile row by row, stored
    // as 4-float rows (masked for partial tiles).
    static void store_tile(const V* ov, T* y, int64_t plane, int64_t OW, int lanes, int rows, int cols) {
        __m512 v[16];
        transpose16(ov, v);
        const __mmask8 cm = __mmask8((1u << cols) - 1u);
#pragma GCC unroll 16
        for (int l = 0; l < 16; ++l) {
            if (l >= lanes) break;
            T* yl = y + l * plane;
            const __m128 r0 = _mm512_castps512_ps128(v[l]), r1 = _mm512_extractf32x4_ps(v[l], 1);
            const __m128 r2 = _mm512_extractf32x4_ps(v[l], 2), r3 = _mm512_extractf32x4_ps(v[l], 3);
            if (cols == 4 && rows == 4) {
                _mm_storeu_ps(yl, r0);
                _mm_storeu_ps(yl + OW, r1);
                _mm_storeu_ps(yl + 2 * OW, r2);
                _mm_storeu_ps(yl + 3 * OW, r3);
            } else {
                _mm_mask_storeu_ps(yl, cm, r0);
                if (rows > 1) _mm_mask_storeu_ps(yl + OW, cm, r1);
                if (rows > 2) _mm_mask_storeu_ps(yl + 2 * OW, cm, r2);
                if (rows > 3) _mm_mask_storeu_ps(yl + 3 * OW, cm, r3);
            }
        }
    }
    // The weight transform's filters-to-lanes transpose (winograd_transforms.inc: has_columns).
    static void columns(const T* w, int64_t w_stride, int ncols, int live, T* out, int nr) {
        panel_columns<T, 16, transpose_rows16, true>(w, w_stride, ncols, live, nr, out);
    }
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const T* p) { return _mm512_loadu_ps(p); }
    static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
    static void stream(T* p, V v) { _mm512_stream_ps(p, v); }  // p aligned to the vector
    static void fence() { _mm_sfence(); }  // orders stream()s before later stores (other threads read U)
    static V bcast(T x) { return _mm512_set1_ps(x); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V max(V lo, V v) { return _mm512_max_ps(lo, v); }
    static V min(V hi, V v) { return _mm512_min_ps(hi, v); }
};

struct WF64 {
    using T = double;
    using V = __m512d;
    static constexpr int W = 8;
    static void columns(const T* w, int64_t w_stride, int ncols, int live, T* out, int nr) {   // as WF32's
        panel_columns<T, 8, transpose_rows8d, true>(w, w_stride, ncols, live, nr, out);
    }
    static V zero() { return _mm512_setzero_pd(); }
    static V load(const T* p) { return _mm512_loadu_pd(p); }
    static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
    static void stream(T* p, V v) { _mm512_stream_pd(p, v); }  // p aligned to the vector
    static void fence() { _mm_sfence(); }  // orders stream()s before later stores (other threads read U)
    static V bcast(T x) { return _mm512_set1_pd(x); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static V add(V a, V b) { return _mm512_add_pd(a, b); }
    static V max(V lo, V v) { return _mm512_max_pd(lo, v); }
    static V min(V hi, V v) { return _mm512_min_pd(hi, v); }
};

#include "cnnkernels/winograd_transforms.inc"

// Band fill for 16 f32 lanes: per row, blocks of 16 columns of the 16
// channel rows are loaded with masks (columns outside the plane read as 0,
// masked-off elements are never accessed), transposed in registers
// (transpose16) and stored as 16 vectors of 16 channels.
void fill_f32(const WinoFillJob<float>& j) {
    const int64_t cols = j.cols;
    for (int i = 0; i < j.n; ++i) {
        const int64_t ih = j.ih0 + i;
        float* row = j.band + i * cols * 16;
        if (ih < 0 || ih >= j.H) {
            for (int64_t q = 0; q < cols; ++q) _mm512_storeu_ps(row + q * 16, _mm512_setzero_ps());
            continue;
        }
        const float* src = j.x + ih * j.W;
        for (int64_t q0 = 0; q0 < cols; q0 += 16) {
            // Valid columns of this block: iw = iw0 + q0 + c in [0, W).
            const int64_t iw = j.iw0 + q0;
            int64_t c_lo = -iw > 0 ? -iw : 0, c_hi = j.W - iw;
            if (c_lo > 16) c_lo = 16;
            if (c_hi > 16) c_hi = 16;
            __mmask16 mask = 0;
            if (c_hi > c_lo) mask = __mmask16(((1u << (c_hi - c_lo)) - 1u) << c_lo) & __mmask16(0xFFFF);
            if (c_hi - c_lo == 16) mask = 0xFFFF;
            __m512 r[16], o[16];
#pragma GCC unroll 16
            for (int l = 0; l < 16; ++l)
                r[l] = (l < j.lanes && mask) ? _mm512_maskz_loadu_ps(mask, src + l * j.HW + iw) : _mm512_setzero_ps();
            transpose16(r, o);
            const int64_t left = cols - q0;
            if (left >= 16) {
#pragma GCC unroll 16
                for (int c = 0; c < 16; ++c) _mm512_storeu_ps(row + (q0 + c) * 16, o[c]);
            } else {
                for (int c = 0; c < left; ++c) _mm512_storeu_ps(row + (q0 + c) * 16, o[c]);
            }
        }
    }
}
void fill_f64(const WinoFillJob<double>& j) { wino_fill_scalar<double, 8>(j); }
// Panel widths: the GEMM micro-kernels' nr for this ISA (the table states them for the driver's check).
constexpr int kWeightsNrF32 = 32, kWeightsNrF64 = 16;
void weights_f32(const WinoWeightJob<float>& j) { wino_weights<WF32, kWeightsNrF32>(j); }
void weights_f64(const WinoWeightJob<double>& j) { wino_weights<WF64, kWeightsNrF64>(j); }

void in_f32_4_0(const WinoInputJob<float>& j) { wino_input<WF32, 4, false>(j); }
void in_f32_6_0(const WinoInputJob<float>& j) { wino_input<WF32, 6, false>(j); }
void in_f32_8_0(const WinoInputJob<float>& j) { wino_input<WF32, 8, false>(j); }
void out_f32_4_0(const WinoOutputJob<float>& j) { wino_output<WF32, 4, false>(j); }
void out_f32_6_0(const WinoOutputJob<float>& j) { wino_output<WF32, 6, false, true>(j); }
void out_f32_8_0(const WinoOutputJob<float>& j) { wino_output<WF32, 8, false>(j); }
void in_f32_4_1(const WinoInputJob<float>& j) { wino_input<WF32, 4, true>(j); }
void in_f32_6_1(const WinoInputJob<float>& j) { wino_input<WF32, 6, true>(j); }
void in_f32_8_1(const WinoInputJob<float>& j) { wino_input<WF32, 8, true>(j); }
void out_f32_4_1(const WinoOutputJob<float>& j) { wino_output<WF32, 4, true>(j); }
void out_f32_6_1(const WinoOutputJob<float>& j) { wino_output<WF32, 6, true, true>(j); }
void out_f32_8_1(const WinoOutputJob<float>& j) { wino_output<WF32, 8, true>(j); }
void in_f64_4_0(const WinoInputJob<double>& j) { wino_input<WF64, 4, false>(j); }
void in_f64_6_0(const WinoInputJob<double>& j) { wino_input<WF64, 6, false>(j); }
void in_f64_8_0(const WinoInputJob<double>& j) { wino_input<WF64, 8, false>(j); }
void out_f64_4_0(const WinoOutputJob<double>& j) { wino_output<WF64, 4, false>(j); }
void out_f64_6_0(const WinoOutputJob<double>& j) { wino_output<WF64, 6, false>(j); }
void out_f64_8_0(const WinoOutputJob<double>& j) { wino_output<WF64, 8, false>(j); }
void in_f64_4_1(const WinoInputJob<double>& j) { wino_input<WF64, 4, true>(j); }
void in_f64_6_1(const WinoInputJob<double>& j) { wino_input<WF64, 6, true>(j); }
void in_f64_8_1(const WinoInputJob<double>& j) { wino_input<WF64, 8, true>(j); }
void out_f64_4_1(const WinoOutputJob<double>& j) { wino_output<WF64, 4, true>(j); }
void out_f64_6_1(const WinoOutputJob<double>& j) { wino_output<WF64, 6, true>(j); }
void out_f64_8_1(const WinoOutputJob<double>& j) { wino_output<WF64, 8, true>(j); }

}  // namespace
}  // namespace isa_avx512
}  // namespace cnnkernels

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace cnnkernels {
namespace {
namespace k = isa_avx512;
const WinoKernels kWinoAvx512 = {
    "avx512", 16, 8,
    {{&k::in_f32_4_0, &k::in_f32_6_0, &k::in_f32_8_0}, {&k::in_f32_4_1, &k::in_f32_6_1, &k::in_f32_8_1}},
    {{&k::out_f32_4_0, &k::out_f32_6_0, &k::out_f32_8_0}, {&k::out_f32_4_1, &k::out_f32_6_1, &k::out_f32_8_1}},
    {{&k::in_f64_4_0, &k::in_f64_6_0, &k::in_f64_8_0}, {&k::in_f64_4_1, &k::in_f64_6_1, &k::in_f64_8_1}},
    {{&k::out_f64_4_0, &k::out_f64_6_0, &k::out_f64_8_0}, {&k::out_f64_4_1, &k::out_f64_6_1, &k::out_f64_8_1}},
    &k::fill_f32, &k::fill_f64, &k::weights_f32, &k::weights_f64, k::kWeightsNrF32, k::kWeightsNrF64,
};
}  // namespace
const WinoKernels* wino_kernels_avx512() { return &kWinoAvx512; }
}  // namespace cnnkernels

#else
namespace cnnkernels {
const WinoKernels* wino_kernels_avx512() { return nullptr; }
}  // namespace cnnkernels
#endif
