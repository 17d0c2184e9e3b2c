// Implicit-GEMM convolution micro-kernel interface shared by the ISA-specific
// translation units (igemm_avx512.cpp, igemm_avx2.cpp, igemm_baseline.cpp) and
// the portable driver (igemm.cpp). Plain types only, like gemm_kernels.h: nothing
// here instantiates code, so including it in an ISA unit leaks no ISA code.
#pragma once
#include <cstdint>

namespace cnnkernels {

// What a tile does before storing, per output channel j of the tile and pixel i:
//   v = acc (+ bias[j] if bias) (+ y if load_y) ; if clamp: v = min(hi, max(lo, v)), NaN kept.
// bias, when not null, has NR readable entries (the panel's, zero-padded).
// A reduction split into chunks (so each chunk's weights stay in L1 across the
// tiles of a block) carries the tile's running sums between chunks in a
// tile-shaped buffer of MR * NR values: sum_in, when not null, is added to the
// chunk's sums; sum_out, when not null, receives them raw (no bias, no store to
// y: the tile returns right after).
template <class T>
struct IgemmEpilogue {
    const T* bias;
    T lo, hi;
    bool load_y;
    bool clamp;
    const T* sum_in = nullptr;
    T* sum_out = nullptr;
};

// The reduction of a tile: `channels` input channels `plane` elements apart,
// each with `taps` kernel taps at offsets tap_off[t] from a window origin.
// Reduction index k = c * taps + t (the order of PyTorch's weights).
struct IgemmReduction {
    int64_t channels, plane, taps;
    const int64_t* tap_off;
};

// Tile function for exactly m output pixels (m is fixed per function) and n
// output channels (1 <= n <= NR), kc = r.channels * r.taps:
//   y[j*ldy + i] = epilogue(sum_{c,t} a[i][c*plane + tap_off[t]] * Bp[(c*taps + t)*NR + j]),  i < m, j < n
// a[i] points at the padded input at pixel i's window origin; Bp is a weight
// panel packed as kc rows of NR values (channels >= n are zero).
// While it runs, the tile also prefetches pf_lines 64-byte lines from pf into
// L2 (ceil(taps/2) per input channel, so at most channels * ceil(taps/2) lines;
// pf may be null): the driver streams the next weight panel in while this one
// computes. With e.sum_out set, the sums go there instead of to y (IgemmEpilogue).
// The kc products of an output are summed serially: the driver keeps kc small
// (reduction chunks carried through sum_in / sum_out) for blocked rounding.
// Preconditions: kc >= 1; every a[i][c*plane + tap_off[t]] readable; Bp has
// kc*NR elements (no alignment needed); y[j*ldy + i] writable (readable if
// load_y) for i < m, j < n.
template <class T>
using IgemmTile = void (*)(const IgemmReduction& r, const T* const* a, const T* Bp, T* y, int64_t ldy, int n,
                           const IgemmEpilogue<T>& e, const char* pf, int64_t pf_lines);

constexpr int kIgemmMaxMR = 8;

// fn[m - 1] handles tiles of m pixels, 1 <= m <= mr (mr <= kIgemmMaxMR).
// chunk_bytes: weights per reduction chunk (the driver runs a chunk over all
// tiles of a block before the next): what this tile reads well from where
// they sit, L1 for 16 KiB, L2 beyond (igemm.cpp: kChunkProducts also bounds it).
// pack_panel (may be null: the driver's portable loop packs): one panel of
// igemm_pack_weights (igemm.h), dst[r * nr + j] = w[j * R + r] for j < live and 0
// for live <= j < nr, r < R. Preconditions: 1 <= live <= nr; w readable for
// live filters of R elements, R apart; dst writable for R * nr elements.
template <class T>
using IgemmPackPanel = void (*)(const T* w, int64_t R, int live, T* dst);

template <class T>
struct IgemmKernelDesc {
    IgemmTile<T> fn[kIgemmMaxMR];
    int mr, nr;
    const char* name;
    int64_t chunk_bytes;
    IgemmPackPanel<T> pack_panel;
};

struct IgemmIsaKernels {
    const char* isa;  // "avx512", "avx2" or "baseline", as in IsaKernels
    IgemmKernelDesc<float> f32;
    IgemmKernelDesc<double> f64;
};

// Kernel tables of each ISA (nullptr when not compiled in). Call them only
// through active_igemm_kernels() (igemm.h), which follows the ISA the GEMM
// dispatch (isa.h) checked against the CPU.
const IgemmIsaKernels* igemm_kernels_avx512();
const IgemmIsaKernels* igemm_kernels_avx2();
const IgemmIsaKernels* igemm_kernels_baseline();

}  // namespace cnnkernels
