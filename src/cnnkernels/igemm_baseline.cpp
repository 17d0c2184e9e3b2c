// Portable implicit-GEMM convolution micro-kernels: GCC/Clang generic vectors
// (16 bytes), default flags, like gemm_baseline.cpp (shared traits: vec_traits_baseline.inc).
#include <cstdint>

#include "cnnkernels/igemm_kernels.h"

namespace cnnkernels {
namespace isa_baseline {
namespace {

#include "cnnkernels/vec_traits_baseline.inc"
}
    static V load(const T* p) { V v; __builtin_memcpy(&v, p, sizeof v); return v; }
    static void store(T* p, V v) { __builtin_memcpy(p, &v, sizeof v); }
    static V bcast(T x) { return V{x, x}; }
    static V fma(V a, V b, V c) { return a * b + c; }
    static V add(V a, V b) { return a + b; }
};

template <class VT, int MR, int NV>
inline bool igemm_store_fast(typename VT::V (&)[MR][NV], typename VT::T*, int64_t, const IgemmEpilogue<typename VT::T>&) {
    return false;
}

#include "cnnkernels/igemm_ukernel.inc"

template <class VT, int MR, int NV>
void tile(const IgemmReduction& r, const typename VT::T* const* a, const typename VT::T* Bp, typename VT::T* y,
          int64_t ldy, int n, const IgemmEpilogue<typename VT::T>& e, const char* pf, int64_t pf_lines) {
    igemm_tile<VT, MR, NV>(r, a, Bp, y, ldy, n, e, pf, pf_lines);
}

// 4 pixels x 8 channels (8 xmm accumulators: fits 16 SSE registers); f64 4 x 4.
const IgemmIsaKernels kTable = {
    "baseline",
    {{&tile<F32x4, 1, 2>, &tile<F32x4, 2, 2>, &tile<F32x4, 3, 2>, &tile<F32x4, 4, 2>, nullptr, nullptr, nullptr,
      nullptr},
     4, 8, "f32_igemm_4x8_baseline", 16 << 10, nullptr},
    {{&tile<F64x2, 1, 2>, &tile<F64x2, 2, 2>, &tile<F64x2, 3, 2>, &tile<F64x2, 4, 2>, nullptr, nullptr, nullptr,
      nullptr},
     4, 4, "f64_igemm_4x4_baseline", 16 << 10, nullptr},
};

}  // namespace
}  // namespace isa_baseline

const IgemmIsaKernels* igemm_kernels_baseline() { return &isa_baseline::kTable; }

}  // namespace cnnkernels
