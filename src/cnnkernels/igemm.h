// Implicit-GEMM convolution: output pixels x output channels tiles computed
// straight from a zero-padded copy of the input (no column matrix, no packing
// of the input), with weights prepacked once into channel panels.
#pragma once
#include <cstdint>

#include "cnnkernels/geometry.h"
#include "cnnkernels/igemm_kernels.h"

namespace cnnkernels {

// The micro-kernel table in use: the one of the ISA active_isa_kernels() picked.
const IgemmIsaKernels& active_igemm_kernels();

// Output channels per packed weight panel (the micro-kernel's NR) in this
// process, for elements of elem_size bytes (4: float, 8: double).
int igemm_nr(int elem_size);

// Shape of the packed weights: (groups, panels, R, NR) with
// panels = ceil((K / groups) / NR) and R = C/groups * KD * KH * KW.
// Preconditions: K % groups == 0, groups >= 1.
int64_t igemm_panels(int64_t K, int64_t groups, int elem_size);

// packed[g][p][r][j] = w[(g*Kg + p*NR + j) * R + r], zero for channels
// p*NR + j >= Kg. w is (K, R) row-major (PyTorch's (K, C/groups, *kernel)).
// Preconditions: packed has groups * igemm_panels(K, groups) * R * NR elements,
// does not overlap w; K % groups == 0.
template <class T>
void igemm_pack_weights(int64_t K, int64_t R, int64_t groups, const T* w, T* packed);

// Same result as conv_direct (incl. the act_min/act_max clamp, applied in
// registers) from weights packed by igemm_pack_weights (R = C/groups * taps).
// Preconditions: those of conv_direct (valid geometry, x/y/bias sized by it,
// y not overlapping the inputs), packed as above, workspace_bytes >= 1.
// Workspace: zero-padded input slabs (one or more (image, group) units, or a
// channel slice of one unit) of at most workspace_bytes, floor one channel
// plane; none when no padding is needed (the input is read in place). Channel
// slices accumulate into y (bias on the first, clamp on the last).
// chunk_bytes: weights per reduction chunk (a tuning variant; 0: the ISA kernel's own, igemm_kernels.h).
template <class T>
void conv_igemm(const ConvGeometry& g, const T* x, const T* packed, const T* bias, T* y, int threads,
                int64_t workspace_bytes, double act_min = -kInf, double act_max = kInf, int64_t chunk_bytes = 0);

// Weights per reduction chunk of the active ISA's kernel (chunk_bytes = 0).
template <class T>
int64_t igemm_chunk_bytes();

// Bytes of workspace conv_igemm allocates for g (elements of elem_size bytes) on `threads` threads.
int64_t igemm_workspace_bytes(const ConvGeometry& g, int elem_size, int threads, int64_t workspace_bytes);

}  // namespace cnnkernels
