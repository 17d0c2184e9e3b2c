// Pooling and depthwise row kernels (pool_kernels.inc) for the portable baseline (SSE2 on x86-64).
// Compiled without -march; the same rules as gemm_avx512.cpp keep ISA code out
// of shared symbols (headers before the target pragma, kernels in an anonymous
// namespace inside cnnkernels::isa_baseline, no std templates); checked by
// src/check_isa_symbols.py. The table is built only when this ISA is active.
#include <cstdint>

#include "cnnkernels/pool_kernels.h"

#define CK_VEC_BYTES 16
#define CK_BLOCK_BYTES 64

namespace cnnkernels {
namespace isa_baseline {
namespace {
#include "cnnkernels/pool_kernels.inc"
#include "cnnkernels/digest_kernel.inc"
}  // namespace
// Instantiated here, under this file's target options.
PoolFns<float> pool_fns_f32() { return make_pool_fns<float>(); }
PoolFns<double> pool_fns_f64() { return make_pool_fns<double>(); }
auto digest_fn() { return &digest_blocks; }
}  // namespace isa_baseline
}  // namespace cnnkernels
#undef CK_VEC_BYTES
#undef CK_BLOCK_BYTES

namespace cnnkernels {
const PoolKernels* pool_kernels_baseline() {
    static const PoolKernels k = {"baseline", isa_baseline::pool_fns_f32(), isa_baseline::pool_fns_f64(),
                                     isa_baseline::digest_fn()};
    return &k;
}
}  // namespace cnnkernels
