// AVX2 Winograd transforms (avx2, fma), same rules as
// gemm_avx2.cpp: headers before the target pragma, kernels in an anonymous
// namespace inside cnnkernels::isa_avx2, table defined after pop_options.
#include <cstdint>

#include "cnnkernels/winograd_kernels.h"
#include "cnnkernels/winograd_matrices.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace cnnkernels {
namespace isa_avx2 {
namespace {

#include "cnnkernels/transpose8_avx2.inc"
#include "cnnkernels/panel_columns.inc"

struct WF32 {
    using T = float;
    using V = __m256;
    static constexpr int W = 8;
    // The weight transform's filters-to-lanes transpose (winograd_transforms.inc: has_columns).
    static void columns(const T* w, int64_t w_stride, int ncols, int live, T* out, int nr) {
        panel_columns<T, 8, transpose_rows8, true>(w, w_stride, ncols, live, nr, out);
    }
    static V zero() { return _mm256_setzero_ps(); }
    static V load(const T* p) { return _mm256_loadu_ps(p); }
    static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
    static void stream(T* p, V v) { _mm256_stream_ps(p, v); }  // p aligned to the vector
    static void fence() { _mm_sfence(); }  // orders stream()s before later stores (other threads read U)
    static V bcast(T x) { return _mm256_set1_ps(x); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V max(V lo, V v) { return _mm256_max_ps(lo, v); }
    static V min(V hi, V v) { return _mm256_min_ps(hi, v); }
};

struct WF64 {
    using T = double;
    using V = __m256d;
    static constexpr int W = 4;
    static V zero() { return _mm256_setzero_pd(); }
    static V load(const T* p) { return _mm256_loadu_pd(p); }
    static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
    static void stream(T* p, V v) { _mm256_stream_pd(p, v); }  // p aligned to the vector
    static void fence() { _mm_sfence(); }  // orders stream()s before later stores (other threads read U)
    static V bcast(T x) { return _mm256_set1_pd(x); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
    static V add(V a, V b) { return _mm256_add_pd(a, b); }
    static V max(V lo, V v) { return _mm256_max_pd(lo, v); }
    static V min(V hi, V v) { return _mm256_min_pd(hi, v); }
};

#include "cnnkernels/winograd_transforms.inc"

void fill_f32(const WinoFillJob<float>& j) { wino_fill_scalar<float, 8>(j); }
void fill_f64(const WinoFillJob<double>& j) { wino_fill_scalar<double, 4>(j); }
// Panel widths: the GEMM micro-kernels' nr for this ISA (the table states them for the driver's check).
constexpr int kWeightsNrF32 = 16, kWeightsNrF64 = 8;
void weights_f32(const WinoWeightJob<float>& j) { wino_weights<WF32, kWeightsNrF32>(j); }
void weights_f64(const WinoWeightJob<double>& j) { wino_weights<WF64, kWeightsNrF64>(j); }

void in_f32_4_0(const WinoInputJob<float>& j) { wino_input<WF32, 4, false>(j); }
void in_f32_6_0(const WinoInputJob<float>& j) { wino_input<WF32, 6, false>(j); }
void in_f32_8_0(const WinoInputJob<float>& j) { wino_input<WF32, 8, false>(j); }
void out_f32_4_0(const WinoOutputJob<float>& j) { wino_output<WF32, 4, false>(j); }
void out_f32_6_0(const WinoOutputJob<float>& j) { wino_output<WF32, 6, false>(j); }
void out_f32_8_0(const WinoOutputJob<float>& j) { wino_output<WF32, 8, false>(j); }
void in_f32_4_1(const WinoInputJob<float>& j) { wino_input<WF32, 4, true>(j); }
void in_f32_6_1(const WinoInputJob<float>& j) { wino_input<WF32, 6, true>(j); }
void in_f32_8_1(const WinoInputJob<float>& j) { wino_input<WF32, 8, true>(j); }
void out_f32_4_1(const WinoOutputJob<float>& j) { wino_output<WF32, 4, true>(j); }
void out_f32_6_1(const WinoOutputJob<float>& j) { wino_output<WF32, 6, true>(j); }
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
}  // namespace isa_avx2
}  // namespace cnnkernels

#pragma GCC pop_options

namespace cnnkernels {
namespace {
namespace k = isa_avx2;
const WinoKernels kWinoAvx2 = {
    "avx2", 8, 4,
    {{&k::in_f32_4_0, &k::in_f32_6_0, &k::in_f32_8_0}, {&k::in_f32_4_1, &k::in_f32_6_1, &k::in_f32_8_1}},
    {{&k::out_f32_4_0, &k::out_f32_6_0, &k::out_f32_8_0}, {&k::out_f32_4_1, &k::out_f32_6_1, &k::out_f32_8_1}},
    {{&k::in_f64_4_0, &k::in_f64_6_0, &k::in_f64_8_0}, {&k::in_f64_4_1, &k::in_f64_6_1, &k::in_f64_8_1}},
    {{&k::out_f64_4_0, &k::out_f64_6_0, &k::out_f64_8_0}, {&k::out_f64_4_1, &k::out_f64_6_1, &k::out_f64_8_1}},
    &k::fill_f32, &k::fill_f64, &k::weights_f32, &k::weights_f64, k::kWeightsNrF32, k::kWeightsNrF64,
};
}  // namespace
const WinoKernels* wino_kernels_avx2() { return &kWinoAvx2; }
}  // namespace cnnkernels

#else
namespace cnnkernels {
const WinoKernels* wino_kernels_avx2() { return nullptr; }
}  // namespace cnnkernels
#endif
