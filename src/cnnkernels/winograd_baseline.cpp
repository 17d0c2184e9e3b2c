// Portable Winograd transforms: GCC/Clang generic 16-byte vectors, default
// flags (SSE2 on x86-64, NEON on AArch64), same source as the ISA versions.
#include <cstdint>

#include "cnnkernels/winograd_kernels.h"

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
    static V bcast(T x) { return V{x, x}; }
    static V fma(V a, V b, V c) { return a * b + c; }
    static V add(V a, V b) { return a + b; }
    static V max(V lo, V v) { for (int i = 0; i < W; ++i) v[i] = lo[i] > v[i] ? lo[i] : v[i]; return v; }
    static V min(V hi, V v) { for (int i = 0; i < W; ++i) v[i] = hi[i] < v[i] ? hi[i] : v[i]; return v; }
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

const WinoKernels kWinoBaseline = {
    "baseline", 4, 2,
    {&in_f32_4, &in_f32_6, &in_f32_8}, {&out_f32_4, &out_f32_6, &out_f32_8},
    {&in_f64_4, &in_f64_6, &in_f64_8}, {&out_f64_4, &out_f64_6, &out_f64_8},
};

}  // namespace
}  // namespace isa_baseline

const WinoKernels* wino_kernels_baseline() { return &isa_baseline::kWinoBaseline; }

}  // namespace cnnkernels
