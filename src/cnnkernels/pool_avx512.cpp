// Pooling and depthwise row kernels (pool_kernels.inc) for AVX-512 (avx512f+vl+bw+dq, fma).
// Compiled without -march; the same rules as gemm_avx512.cpp keep ISA code out
// of shared symbols (headers before the target pragma, kernels in an anonymous
// namespace inside cnnkernels::isa_avx512, no std templates); checked by
// src/check_isa_symbols.py. The table is built only when this ISA is active.
#include <immintrin.h>

#include <cstdint>

#include "cnnkernels/pool_kernels.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
// GCC 12 false positive inside _mm512_max_ps/_mm512_min_ps (_mm512_undefined_ps), as in gemm_avx512.cpp: it
// printed ~5500 warnings per build, hiding any real one.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CK_VEC_BYTES 64
#define CK_BLOCK_BYTES 256

namespace cnnkernels {
namespace isa_avx512 {
namespace {
#include "cnnkernels/pool_kernels.inc"
#include "cnnkernels/digest_kernel.inc"
}  // namespace
// Instantiated here, under this file's target options.
PoolFns<float> pool_fns_f32() { return make_pool_fns<float>(); }
PoolFns<double> pool_fns_f64() { return make_pool_fns<double>(); }
auto digest_fn() { return &digest_blocks; }
}  // namespace isa_avx512
}  // namespace cnnkernels
#undef CK_VEC_BYTES
#undef CK_BLOCK_BYTES
#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace cnnkernels {
const PoolKernels* pool_kernels_avx512() {
    static const PoolKernels k = {"avx512", isa_avx512::pool_fns_f32(), isa_avx512::pool_fns_f64(),
                                     isa_avx512::digest_fn()};
    return &k;
}
}  // namespace cnnkernels

#else  // not x86 / not GCC-compatible
namespace cnnkernels {
const PoolKernels* pool_kernels_avx512() { return nullptr; }
}  // namespace cnnkernels
#endif
