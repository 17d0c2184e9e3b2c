// AVX-512 Winograd transforms (avx512f+vl+bw+dq, fma), same rules as
// gemm_avx512.cpp: headers before the target pragma, kernels in an anonymous
// namespace inside cnnkernels::isa_avx512, table defined after pop_options.
#include <cstdint>

#include "cnnkernels/winograd_kernels.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cnnkernels {
namespace isa_avx512 {
namespace {

struct WF32 {
    using T = float;
    using V = __m512;
    static constexpr int W = 16;
    static V zero() { return _mm512_setzero_ps(); }
    static V load(const T* p) { return _mm512_loadu_ps(p); }
    static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
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
    static V zero() { return _mm512_setzero_pd(); }
    static V load(const T* p) { return _mm512_loadu_pd(p); }
    static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
    static V bcast(T x) { return _mm512_set1_pd(x); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
    static V add(V a, V b) { return _mm512_add_pd(a, b); }
    static V max(V lo, V v) { return _mm512_max_pd(lo, v); }
    static V min(V hi, V v) { return _mm512_min_pd(hi, v); }
};

#include "cnnkernels/winograd_transforms.inc"

void in_f32_4(const WinoInputJob<float>& j) { wino_input<WF32, 4>(j); }
void in_f32_6(const WinoInputJob<float>& j) { wino_input<WF32, 6>(j); }
void in_f32_8(const WinoInputJob<float>& j) { wino_input<WF32, 8>(j); }
void out_f32_4(const WinoOutputJob<float>& j) { wino_output<WF32, 4>(j); }
void out_f32_6(const WinoOutputJob<float>& j) { wino_output<WF32, 6>(j); }
void out_f32_8(const WinoOutputJob<float>& j) { wino_output<WF32, 8>(j); }
void in_f64_4(const WinoInputJob<double>& j) { wino_input<WF64, 4>(j); }
void in_f64_6(const WinoInputJob<double>& j) { wino_input<WF64, 6>(j); }
void in_f64_8(const WinoInputJob<double>& j) { wino_input<WF64, 8>(j); }
void out_f64_4(const WinoOutputJob<double>& j) { wino_output<WF64, 4>(j); }
void out_f64_6(const WinoOutputJob<double>& j) { wino_output<WF64, 6>(j); }
void out_f64_8(const WinoOutputJob<double>& j) { wino_output<WF64, 8>(j); }

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
    {&k::in_f32_4, &k::in_f32_6, &k::in_f32_8}, {&k::out_f32_4, &k::out_f32_6, &k::out_f32_8},
    {&k::in_f64_4, &k::in_f64_6, &k::in_f64_8}, {&k::out_f64_4, &k::out_f64_6, &k::out_f64_8},
};
}  // namespace
const WinoKernels* wino_kernels_avx512() { return &kWinoAvx512; }
}  // namespace cnnkernels

#else
namespace cnnkernels {
const WinoKernels* wino_kernels_avx512() { return nullptr; }
}  // namespace cnnkernels
#endif
