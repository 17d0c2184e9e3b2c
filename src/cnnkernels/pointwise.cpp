#include "cnnkernels/pointwise.h"

#include "cnnkernels/gemm.h"

namespace cnnkernels {

template <class T>
void pointwise_ndhwc(int64_t P, int64_t C, int64_t K, const T* x, const T* w, const T* bias, T* y, bool clamp, T lo,
                     T hi, int threads, int64_t workspace_bytes) {
    GemmEpilogue<T> ep;
    ep.col_bias = bias;  // output channels are the GEMM's columns here
    ep.clamp = clamp;
    ep.lo = lo;
    ep.hi = hi;
    gemm_nt_ex<T>(P, K, C, x, C, w, C, y, K, ep, threads, workspace_bytes);  // w (K x C) is B transposed
}

template void pointwise_ndhwc<float>(int64_t, int64_t, int64_t, const float*, const float*, const float*, float*,
                                     bool, float, float, int, int64_t);
template void pointwise_ndhwc<double>(int64_t, int64_t, int64_t, const double*, const double*, const double*,
                                      double*, bool, double, double, int, int64_t);

}  // namespace cnnkernels
