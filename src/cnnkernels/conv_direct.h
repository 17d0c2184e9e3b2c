// Direct (loop-nest) convolution: no workspace, works for every geometry.
#pragma once
#include "cnnkernels/geometry.h"

namespace cnnkernels {

// y[n,k,:] = bias[k] + sum_{c,kd,kh,kw} x[n, g*Cg + c, shifted window] * w[k,c,kd,kh,kw].
// Preconditions: all arrays C-contiguous with the shapes of g (x: N,C,in; w:
// K, C/groups, kernel; bias: K or nullptr; y: N,K,out); groups >= 1 divides C and
// K; stride, dilation >= 1; pad >= 0; threads >= 1; y does not overlap the
// inputs; index arithmetic (out*stride + kernel*dilation + pad + in) fits in
// int64. out[] may be anything >= 0: every input read is bounds-checked.
// Activation: every output is then clamped to [act_min, act_max] (act_min <=
// act_max; the defaults clamp nothing; ReLU is act_min = 0), NaN propagating
// like torch.relu: a NaN output stays NaN.
template <class T>
void conv_direct(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, int threads,
                 double act_min = -kInf, double act_max = kInf);

}  // namespace cnnkernels
