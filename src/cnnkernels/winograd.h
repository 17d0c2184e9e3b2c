// Winograd convolution F(m x m, 3 x 3), m = 2, 4, 6: 2-D, stride 1, dilation 1,
// any padding and groups. Input transform -> batched GEMM over the n*n
// transform points (n = m + 2) with the ISA micro-kernels (gemm_kernels.h) ->
// output transform fused with bias and clamp.
#pragma once
#include <cstdint>

#include "cnnkernels/geometry.h"

namespace cnnkernels {

struct WinogradGeometry {
    int64_t N, C, K, groups;  // C and K divisible by groups
    int64_t H, W, OH, OW;     // input and output plane sizes (any OH, OW >= 0)
    int64_t pad_top, pad_left;  // padding before (>= 0); padding after is implied by OH, OW
    int m;                      // 2, 4 or 6
};

// Rows of the transformed-weight matrix per (group, point): Kg rounded up to 32
// (a multiple of every micro-kernel's NR).
inline int64_t winograd_kpad(int64_t Kg) { return (Kg + 31) / 32 * 32; }

// Transformed weights U: shape (groups, n*n, Kp, Cg), Kp = winograd_kpad(K / groups),
// Cg = C / groups; element block (g, e) is the Cg x Kg matrix (G w G^T)[e] of the
// group (transposed, c major) packed in NR-column panels for the GEMM micro-kernel
// of the ISA active in this process (active_isa_kernels(): fixed at first use):
// (k, c) at (k / NR) * NR * Cg + c * NR + k % NR, entries with k >= Kg zero.
// w (K, Cg, 1, 3, 3) row-major; G the n x 3 float64 matrix (n = m + 2), rounded to T;
// U is computed in T.
template <class T>
void winograd_transform_weights(int64_t K, int64_t Cg, int64_t groups, int n, const T* w, const double* G, T* U,
                                int threads);

// y (N, K, OH, OW) = clamp(conv(x, w) + bias) with x (N, C, H, W), U from
// winograd_transform_weights, AT (m x n) and BT (n x n) float64 row-major,
// bias (K) or null. Reads outside x are zero; writes stay inside y.
// Scratch (heap, this call): the transformed input V and products M of one tile
// block (n*n x tiles x channels each; one block per thread when threads run
// separate blocks) plus one input band (n rows, channels innermost) per thread;
// at most workspace_bytes except for a floor of one tile per block.
// Returns false when a transformed input tile held a NaN or an infinity (a non-finite input, or an overflow):
// the transform mixes a tile's inputs, so y may then be NaN where the convolution is not, and the caller
// must compute y another way. (Checked on the transform's own results: no extra pass over x.) Also false when
// an output before the clamp was not finite: finite inputs near the float range's end can overflow in the
// products or the output transform (x = 1e38 gave NaN in outputs whose window does not hold it).
// block_bytes: V + M of a tile block per thread (a tuning variant; 0: the measured default, 1.5 MiB).
// Preconditions: shapes consistent, y does not overlap x/U/bias, threads >= 1.
template <class T>
bool winograd_conv(const WinogradGeometry& g, const T* x, const T* U, const T* bias, T* y, const double* AT,
                   const double* BT, int threads, int64_t workspace_bytes, double act_min = -kInf,
                   double act_max = kInf, int64_t block_bytes = 0);

// Bytes of scratch winograd_conv allocates for g with elements of elem_size
// bytes and this thread count, bias or not: at most workspace_bytes unless
// even one tile per block does not fit (the floor), then the floor. 0 when
// there is nothing to compute.
int64_t winograd_workspace_bytes(const WinogradGeometry& g, int elem_size, int threads, int64_t workspace_bytes,
                                 bool bias);

// NR of the active micro-kernel for this element size (4 or 8 bytes).
int winograd_nr(int elem_size);

}  // namespace cnnkernels
