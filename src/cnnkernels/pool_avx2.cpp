// Pooling and depthwise row kernels (pool_kernels.inc) for AVX2 + FMA.
// Compiled without -march; the same rules as gemm_avx512.cpp keep ISA code out
// of shared symbols (headers before the target pragma, kernels in an anonymous
// namespace inside cnnkernels::isa_avx2, no std templates); checked by
// src/check_isa_symbols.py. The table is built only when this ISA is active.
// <immintrin.h>: the AVX2 even/odd split (ck_load_even_odd) uses 128-bit loads and in-lane shuffles.
#include <immintrin.h>

#include <cstdint>

#include "cnnkernels/pool_kernels.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define CK_VEC_BYTES 32
#define CK_BLOCK_BYTES 128

namespace cnnkernels {
namespace isa_avx2 {
namespace {
#include "cnnkernels/pool_kernels.inc"
#include "cnnkernels/digest_kernel.inc"
}  // namespace
// Instantiated here, under this file's target options.
PoolFns<float> pool_fns_f32() { return make_pool_fns<float>(); }
PoolFns<double> pool_fns_f64() { return make_pool_fns<double>(); }
auto digest_fn() { return &digest_blocks; }
}  // namespace isa_avx2
}  // namespace cnnkernels
#undef CK_VEC_BYTES
#undef CK_BLOCK_BYTES
#pragma GCC pop_options

namespace cnnkernels {
const PoolKernels* pool_kernels_avx2() {
    static const PoolKernels k = {"avx2", isa_avx2::pool_fns_f32(), isa_avx2::pool_fns_f64(),
                                     isa_avx2::digest_fn()};
    return &k;
}
}  // namespace cnnkernels

#else  // not x86 / not GCC-compatible
namespace cnnkernels {
const PoolKernels* pool_kernels_avx2() { return nullptr; }
}  // namespace cnnkernels
#endif
