// AVX2 implicit-GEMM convolution micro-kernels (avx2, fma). Same compilation
// rules as gemm_avx2.cpp (checked by src/check_isa_symbols.py); the vector
// traits are gemm's (vec_traits_avx2.inc, included inside the anonymous namespace).
#include <cstdint>

#include "cnnkernels/igemm_kernels.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace cnnkernels {
namespace isa_avx2 {
namespace {

#include "cnnkernels/vec_traits_avx2.inc"

// No transposing store here: every tile takes the portable store.
template <class VT, int MR, int NV>
inline bool igemm_store_fast(typename VT::V (&)[MR][NV], typename VT::T*, int64_t, const IgemmEpilogue<typename VT::T>&) {
    return false;
}

#include "cnnkernels/igemm_ukernel.inc"

#include "cnnkernels/transpose8_avx2.inc"

#include "cnnkernels/panel_columns.inc"

// Panels of 16 floats (8 filters x 8 weights at a time) and of 8 doubles (4 x 4).
void pack_panel_f32(const float* w, int64_t R, int live, float* dst) {
    panel_columns<float, 8, transpose_rows8, false>(w, R, R, live, 16, dst);
}
void pack_panel_f64(const double* w, int64_t R, int live, double* dst) {
    panel_columns<double, 4, transpose_rows4d, false>(w, R, R, live, 8, dst);
}

template <class VT, int MR, int NV>
void tile(const IgemmReduction& r, const typename VT::T* const* a, const typename VT::T* Bp, typename VT::T* y,
          int64_t ldy, int n, const IgemmEpilogue<typename VT::T>& e, const char* pf, int64_t pf_lines) {
    igemm_tile<VT, MR, NV>(r, a, Bp, y, ldy, n, e, pf, pf_lines);
}

// 6 pixels x 16 channels (12 ymm accumulators, as the GEMM's 6x16); f64 6 x 8.
const IgemmIsaKernels kTable = {
    "avx2",
    {{&tile<F32x8, 1, 2>, &tile<F32x8, 2, 2>, &tile<F32x8, 3, 2>, &tile<F32x8, 4, 2>, &tile<F32x8, 5, 2>,
      &tile<F32x8, 6, 2>, nullptr, nullptr},
     6, 16, "f32_igemm_6x16_avx2", 16 << 10, &pack_panel_f32},
    {{&tile<F64x4, 1, 2>, &tile<F64x4, 2, 2>, &tile<F64x4, 3, 2>, &tile<F64x4, 4, 2>, &tile<F64x4, 5, 2>,
      &tile<F64x4, 6, 2>, nullptr, nullptr},
     6, 8, "f64_igemm_6x8_avx2", 16 << 10, &pack_panel_f64},
};

}  // namespace
}  // namespace isa_avx2
}  // namespace cnnkernels

#pragma GCC pop_options

namespace cnnkernels {
const IgemmIsaKernels* igemm_kernels_avx2() { return &isa_avx2::kTable; }
}  // namespace cnnkernels

#else  // not x86 / not GCC-compatible: no AVX2 kernels
namespace cnnkernels {
const IgemmIsaKernels* igemm_kernels_avx2() { return nullptr; }
}  // namespace cnnkernels
#endif
