// Portable Winograd transforms: GCC/Clang generic 16-byte vectors, default
// flags (SSE2 on x86-64, NEON on AArch64), same source as the ISA versions.
#include <cstdint>

#include "cnnkernels/winograd_kernels.h"
#include "cnnkernels/winograd_matrices.h"

namespace cnnkernels {
namespace isa_baseline {
namespace {

typedef float wf32x4 __attribute__((vector_size(16)));
typedef double wf64x2 __attribute__((vector_size(16)));

struct WF32 {
    using T = float;
    using V = wf32x4;
    static constexpr int W = 4;
    static V zero() { return V{0, 0, 0, 0}; }
    static V load(const T* p) { V v; __builtin_memcpy(&v, p, sizeof v); return v; }
    static void store(T* p, V v) { __builtin_memcpy(p, &v, sizeof v); }
    static void stream(T* p, V v) { store(p, v); }
    static void fence() {}
    static V bcast(T x) { return V{x, x, x, x}; }
    static V fma(V a, V b, V c) { return a * b + c; }
    static V add(V a, V b) { return a + b; }
    static V max(V lo, V v) { for (int i = 0; i < W; ++i) v[i] = lo[i] > v[i] ? lo[i] : v[i]; return v; }
    static V min(V hi, V v) { for (int i = 0; i < W; ++i) v[i] = hi[i] < v[i] ? hi[i] : v[i]; return v; }
};

struct WF64 {
    using T = double;
    using V = wf64x2;
    static constexpr int W = 2;
    static V zero() { return V{0, 0}; }
    static V load(const T* p) { V v; __builtin_memcpy(&v, p, sizeof v); return v; }
    static void store(T* p, V v) { __builtin_memcpy(p, &v, sizeof v); }
    static void stream(T* p, V v) { store(p, v); }
    static void fence() {}
    static V bcast(T x) { return V{x, x}; }
    static V fma(V a, V b, V c) { return a * b + c; }
    static V add(V a, V b) { return a + b; }
    static V max(V lo, V v) { for (int i = 0; i < W; ++i) v[i] = lo[i] > v[i] ? lo[i] : v[i]; return v; }
    static V min(V hi, V v) { for (int i = 0; i < W; ++i) v[i] = hi[i] < v[i] ? hi[i] : v[i]; return v; }
};

#include "cnnkernels/winograd_transforms.inc"

void fill_f32(const WinoFillJob<float>& j) { wino_fill_scalar<float, 4>(j); }
void fill_f64(const WinoFillJob<double>& j) { wino_fill_scalar<double, 2>(j); }
// Panel widths: the GEMM micro-kernels' nr for this ISA (the table states them for the driver's check).
constexpr int kWeightsNrF32 = 8, kWeightsNrF64 = 4;
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

const WinoKernels kWinoBaseline = {
    "baseline", 4, 2,
    {{&in_f32_4_0, &in_f32_6_0, &in_f32_8_0}, {&in_f32_4_1, &in_f32_6_1, &in_f32_8_1}},
    {{&out_f32_4_0, &out_f32_6_0, &out_f32_8_0}, {&out_f32_4_1, &out_f32_6_1, &out_f32_8_1}},
    {{&in_f64_4_0, &in_f64_6_0, &in_f64_8_0}, {&in_f64_4_1, &in_f64_6_1, &in_f64_8_1}},
    {{&out_f64_4_0, &out_f64_6_0, &out_f64_8_0}, {&out_f64_4_1, &out_f64_6_1, &out_f64_8_1}},
    &fill_f32, &fill_f64, &weights_f32, &weights_f64, kWeightsNrF32, kWeightsNrF64,
};

}  // namespace
}  // namespace isa_baseline

const WinoKernels* wino_kernels_baseline() { return &isa_baseline::kWinoBaseline; }

}  // namespace cnnkernels
