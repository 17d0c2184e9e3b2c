// Convolution lowered to matrix multiply: columns of input patches times the
// weight matrix, built in bounded slices of output positions.
#pragma once
#include <cstdint>

#include "cnnkernels/geometry.h"

namespace cnnkernels {

// Writes rows [r0, r1) (rows are (c, kd, kh, kw) taps of the Cg channels that
// start at x_group) and columns [p0, p0 + P) (flat output positions) of the
// patch matrix into col (row stride P). Padding positions become 0.
// Preconditions: as conv_im2col; x_group points at channel g*Cg of one image.
template <class T>
void im2col_slice(const ConvGeometry& g, const T* x_group, int64_t p0, int64_t P, int64_t r0,
                  int64_t r1, T* col);

// Same result as conv_direct.
// Preconditions: those of conv_direct, plus workspace_bytes >= 1. The column
// buffer (in total over all threads) holds at most
// max(workspace_bytes / sizeof(T), one column per thread) elements; larger
// problems are processed in slices of output positions.
template <class T>
void conv_im2col(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, int threads,
                 int64_t workspace_bytes);

}  // namespace cnnkernels
