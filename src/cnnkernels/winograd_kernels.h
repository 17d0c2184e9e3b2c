// Winograd transform kernels shared by the ISA-specific translation units
// (winograd_avx512.cpp, winograd_avx2.cpp, winograd_baseline.cpp) and the
// portable driver (winograd.cpp). Plain types only, like gemm_kernels.h: nothing
// here instantiates code, so including it in an ISA translation unit cannot leak
// ISA instructions into shared symbols.
#pragma once
#include <cstdint>

namespace cnnkernels {

// A small matrix (at most 8 x 8) stored by rows as its nonzero entries:
// row r is sum over s < cnt[r] of coef[r][s] * (column idx[r][s]).
template <class T>
struct WinoMatrix {
    int rows, cols;
    int cnt[8];
    int idx[8][8];
    T coef[8][8];
};

// Input transform of `count` consecutive tiles of one tile row, for one chunk of
// L channels (L = the ISA's lane count; lanes are channels):
//   V[tile k][point a*n+b] = (BT d BT^T)[a][b], d = the n x n patch of tile k.
// band: n rows x band_cols columns of L-lane vectors, (row i, column q) at
// band + (i * band_cols + q) * L; tile k's patch starts at column k * m
// (band_cols >= (count - 1) * m + n). Output vector of tile k, point e at
// V + k * v_t_stride + e * v_e_stride (L contiguous elements).
template <class T>
struct WinoInputJob {
    const T* band;
    int64_t band_cols;
    int64_t count;
    int m;
    T* V;
    int64_t v_e_stride, v_t_stride;
    const WinoMatrix<T>* BT;  // n x n
    bool* nonfinite;          // set to true (never cleared) when some stored value of V is NaN or infinite
};

// Output transform of `count` consecutive tiles of one tile row, for one chunk
// of L output channels: out = clamp(AT Mt AT^T + bias), Mt the n x n transformed
// tile (point e of tile k at M + k * m_t_stride + e * m_e_stride, L lanes).
// Lane l (< lanes) of output (a, b) of tile k goes to
// y[l * plane + a * OW + k * m + b] for a < rows, b < min(m, ow_left - k * m).
template <class T>
struct WinoOutputJob {
    const T* M;
    int64_t m_e_stride, m_t_stride;
    int64_t count;
    int m;
    const WinoMatrix<T>* AT;  // m x n
    const T* bias;            // L entries (zero beyond the valid lanes) or null
    bool clamp;
    T lo, hi;
    T* y;
    int64_t plane, OW, ow_left;
    int lanes, rows;
    bool* nonfinite;          // set to true (never cleared) when some value before the clamp is NaN or infinite
};

// Band fill: rows ih0 .. ih0 + n - 1, columns iw0 .. iw0 + cols - 1 of `lanes`
// (<= L) channel planes (channel l's plane at x + l * HW, row stride W) copied
// to band with channels innermost: (row i, column q, lane l) at
// band + (i * cols + q) * L + l; zero outside the plane and for lanes >= `lanes`.
template <class T>
struct WinoFillJob {
    const T* x;
    int64_t H, W, HW;
    int64_t ih0, iw0;
    int64_t cols;
    int n, lanes;
    T* band;
};

// Weight transform of one panel of filters for `channels` consecutive input channels, in
// T's precision: U = G g G^T (G: n x 3, row-major) for filters kk < live (filter kk's 3 x 3 taps
// for channel ci at w + kk * w_stride + ci * 9, contiguous), zero for kk in [live, nr);
// channel ci's point e's nr values go to dst + e * dst_stride + ci * nr, contiguous.
// Preconditions: nr is the ISA's f32/f64 GEMM nr, n in {4, 6, 8}, live <= nr, 1 <= channels <= kWinoWeightChannels.
constexpr int kWinoWeightChannels = 16;
template <class T>
struct WinoWeightJob {
    const T* w;
    int64_t w_stride;
    int live, nr, n, channels;
    const double* G;
    T* dst;
    int64_t dst_stride;
    // Write U with non-temporal stores (dst and dst_stride whole 64-byte lines; see winograd_transform_weights).
    bool stream;
    // G equals wino_mats::g<n> (winograd_matrices.h): the kernel may use its compile-time copy.
    bool baked_g;
};

template <class T>
using WinoFillFn = void (*)(const WinoFillJob<T>&);
template <class T>
using WinoWeightFn = void (*)(const WinoWeightJob<T>&);
template <class T>
using WinoInputFn = void (*)(const WinoInputJob<T>&);
template <class T>
using WinoOutputFn = void (*)(const WinoOutputJob<T>&);

// Per ISA: lane counts and the transforms for n = 4, 6, 8 (index n / 2 - 2):
// [0] generic (the job's sparse matrices), [1] specialised for the matrices of
// winograd_matrices.h (fully unrolled, zeros skipped at compile time; valid
// only when the job's matrices equal those).
struct WinoKernels {
    const char* isa;
    int lanes_f32, lanes_f64;
    WinoInputFn<float> input_f32[2][3];
    WinoOutputFn<float> output_f32[2][3];
    WinoInputFn<double> input_f64[2][3];
    WinoOutputFn<double> output_f64[2][3];
    WinoFillFn<float> fill_f32;
    WinoFillFn<double> fill_f64;
    WinoWeightFn<float> weights_f32;
    WinoWeightFn<double> weights_f64;
    // The panel width the weight functions are compiled for (a second statement of the GEMM tables' nr,
    // which winograd_transform_weights checks it against).
    int weights_nr_f32, weights_nr_f64;
};

// Tables of each ISA; nullptr when not compiled in. Use the one whose name
// matches active_isa_kernels().isa (the CPU has been checked for it).
const WinoKernels* wino_kernels_avx512();
const WinoKernels* wino_kernels_avx2();
const WinoKernels* wino_kernels_baseline();

}  // namespace cnnkernels
