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

// Same result as conv_direct (incl. the act_min/act_max clamp, applied by the
// GEMM micro-kernel while the output tile is in registers).
// Preconditions: those of conv_direct, plus workspace_bytes >= 1.
// Workspace: the column buffer plus the GEMM packing buffers (see gemm.h) of
// all threads total at most workspace_bytes, except for a floor of one column
// and (mr + nr) * 8 packing elements per thread; larger problems are processed
// in slices of output positions. 1x1 stride-1 unpadded convolutions use x
// itself as the column matrix (only the packing buffers are allocated).
template <class T>
void conv_im2col(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, int threads,
                 int64_t workspace_bytes, double act_min = -kInf, double act_max = kInf);

// Bytes of scratch conv_im2col allocates for g (elements of elem_size bytes)
// with this thread count: at most workspace_bytes unless the floor above is
// larger, then the floor. 0 when there is nothing to compute.
int64_t im2col_workspace_bytes(const ConvGeometry& g, int elem_size, int threads, int64_t workspace_bytes);

}  // namespace cnnkernels
