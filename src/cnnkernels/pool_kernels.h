// Per-ISA row kernels for pooling (NCDHW and NDHWC) and depthwise convolution.
// Plain types only (like gemm_kernels.h): including this in an ISA translation
// unit instantiates no code. The drivers (pool.cpp, pool_nhwc.cpp, depthwise.cpp)
// handle threading and window bookkeeping and call these through
// active_pool_kernels(), which follows the ISA chosen by isa.h.
#pragma once
#include <cstdint>

namespace cnnkernels {

// One output row of sliding-window pooling along W.
//   NCDHW: C = 1, c0 = 0, c1 = 1; element iw of input row r at rows[r][iw], output ow at y[ow].
//   NDHWC: element (iw, c) at rows[r][iw*C + c], output (ow, c) at y[ow*C + c]; channels [c0, c1).
// W window of output ow: base = ow*stride - pad, positions base + kw*dil (kw < KW)
// inside [0, W). rows: the window's valid (d, h) input rows in scan order.
// Max: the scan is (row, kw) with `v > best || isnan(v)`; idx (nullable) gets
// row_pos[r] + position, starting at first_pos + (first valid-or-later w position).
// Avg (dil must be 1): end = min(base + KW, W + pad_after); divisor = div_override
// if nonzero, else div_incl * (end - base) if count_include_pad, else
// div_excl * (clipped count); zero divisor -> NaN (adaptive pooling: count_include_pad
// false, div_override 0, windows from the table).
template <class T>
struct PoolRow {
    const T* const* rows;
    const int64_t* row_pos;
    int nrows;
    int64_t first_pos;
    int64_t W, OW, KW, stride, pad, dil, pad_after;
    int64_t C, c0, c1;
    T div_incl, div_excl, div_override;
    bool count_include_pad;
    // Per-output-column window table (3 entries per ow, computed once by the driver):
    //   max: kw range [lo, hi) of valid taps, first valid-or-later w position;
    //   avg: clipped positions [lo, hi), pool extent (end - start).
    // [olo, ohi): columns whose whole window is inside [0, W) (contiguous).
    const int64_t* wtab;
    int64_t olo, ohi;
    T* y;
    int64_t* idx;
};

// One output row of depthwise convolution.
//   NCDHW: rows[r] = input row, wrows[r] = its KW weights; y[ow] = clamp(bias + sum).
//   NDHWC: rows[r] = input row (element (iw, c) at iw*C + c), wrows[r] = KW x K
//          weights of that row (channels innermost); y[ow*K + k] for k in [c0, c1),
//          input channel k / mult; bias_vec (K entries, nullable).
// Taps are summed in (row, kw) order starting from the bias; reads are bounds-checked.
template <class T>
struct DwRow {
    const T* const* rows;
    const T* const* wrows;
    int nrows;
    int64_t W, OW, KW, stride, pad, dil;
    int64_t C, K, mult, c0, c1;
    T bias;
    const T* bias_vec;
    T lo, hi;
    // kw range [wtab[3*ow], wtab[3*ow+1]) of valid taps; [olo, ohi): full windows.
    const int64_t* wtab;
    int64_t olo, ohi;
    T* y;
};

// A zero-padded 2-D plane for the fast depthwise path: P (Hp x Wp), output
// (OH x OW) into out (row stride ldo) = clamp(bias + sum_{kh,kw} w[kh*KW+kw] * P[(oh*S+kh)*Wp + ow*S+kw]).
// Preconditions: Hp >= (OH-1)*S + KH, Wp >= (OW-1)*S + KW; out holds OH rows of ldo
// entries; P readable (any values) for 2 * lanes + KW elements past row Hp - 1's start plus Wp
// (rows narrower than a vector are computed as whole vectors). S == 1 and ldo == Wp: one flattened run over (OH-1)*Wp + OW outputs
// (columns OW..Wp-1 get garbage); otherwise row by row (ldo >= OW).
// Stride 2 split (dw_plane_s2d): each padded row (row stride Wp) holds its even columns E at its start
// and its odd columns O `half` elements later; tap kw of output ow is E[ow + kw/2] (kw even) or
// O[ow + kw/2] (kw odd). Preconditions there: OW >= lanes; P has (OH-1)*2 + KK rows; E and O of each
// row readable at [0, OW + KK/2).
template <class T>
struct DwPlane {
    const T* P;
    int64_t Wp, OH, OW;
    const T* w;
    T bias, lo, hi;
    T* out;
    int64_t ldo;
    int64_t half = 0;  // stride 2 split only
};

// One output row of channels-last depthwise convolution (multiplier 1, dilation 1) from
// zero-padded copies of its KK input rows for a block of cw channels (pixel stride cw,
// contiguous: in place, a pixel stride of a large power of two puts every pixel of a channel
// vector in the same few L1 sets). For ow < OW, c < cw: y[ow*K + c] = clamp(bias[c] +
// sum_{kh,kw} taps[(kh*KK + kw)*K + c] * rows[kh][(ow*S + kw)*cw + c]) (bias nullable: 0),
// taps summed in (kh, kw) order. Preconditions: cw >= lanes; each row holds
// (OW-1)*S + KK pixels.
template <class T>
struct DwPaddedRowCL {
    const T* const* rows;
    int64_t cw, OW;
    const T* taps;
    int64_t K;
    const T* bias;
    T lo, hi;
    T* y;
};
// Channels-last KK x KK (3 or 5) stride-1 depthwise with padding KK / 2 ("same"), multiplier 1, read in
// place (no padded copy): output rows [oh0, oh1) of one H x W x K plane, with p = KK / 2:
// y[(oh*W + ow)*K + c] = clamp(bias[c] + sum_{kh,kw} taps[(kh*KK + kw)*K + c] *
// x[((oh+kh-p)*W + ow+kw-p)*K + c]) over taps inside the plane (bias nullable: 0), taps summed
// in (kh, kw) order. Preconditions: K >= lanes, W >= 1; parts > 1 only with W >= (KK / 2 + 1) * parts.
template <class T>
struct DwInPlaceCL {
    const T* x;
    int64_t H, W, K;
    const T* taps;
    const T* bias;
    T lo, hi;
    T* y;
    int64_t oh0, oh1;
    int64_t part = 0, parts = 1;  // the columns [part * W / parts, (part + 1) * W / parts) only
};
// A "same"-size stride-1 plane (OH == H, OW == W), flattened: output o (of n = H*W) =
// clamp(bias + sum_{kh,kw} w[kh*KK+kw] * x[o + (kh-ph)*W + (kw-pw)]) where the column
// ow = o % W plus kw - pw lies in [0, W) (masked per lane; rows above and below read the
// zeros around the plane in buf). buf + base is the plane's first element, with at least
// ph*W + pw zeros before it and (KK-1-ph)*W + KK-1-pw + L after. masks: for each vector
// start (0, L, 2L, ... and n - L when L does not divide n), KK lane masks (all ones = tap
// inside the row). Needs n >= L.
template <class T>
struct DwFlat {
    const T* buf;
    int64_t base, n, W, ph, pw;
    const void* masks;  // CkV<T>::M elements: starts x KK x L
    const T* w;
    T bias, lo, hi;
    T* out;
};

// A 2-D NCHW plane pooled in separable passes (no indices, dilation 1, horizontal stride
// sw in {1, 2}): each input row a window needs is reduced along W once, into a ring of
// KH rows, through a copy padded with the identity (0 for avg, -inf for max); each output
// row then combines its valid rows [rows[2*oh], rows[2*oh+1]) in row order. Max keeps the
// (row, kw) scan rule `v > best || isnan(v)` (per row, then across rows: the same first
// maximum / NaN). Avg: y = sum * (row_inv[oh] * col_inv[ow]), the reciprocals of the
// divisor's row and column factors (NaN for a zero factor: a zero divisor gives NaN);
// within 3 ulp of sum / divisor.
// Preconditions: OW >= one vector; KH <= 32; rows inside [0, H), each output row's range
// at most KH rows long and ascending with oh; scratch holds sep_plane_scratch(...) elements.
template <class T>
struct SepPlane {
    const T* x;
    int64_t H, W, OH, OW, KH, KW, sh, sw, pad_w;
    const int64_t* rows;
    const T* row_inv;
    const T* col_inv;
    bool is_max;
    T* scratch;
    T* y;
};

inline int64_t sep_plane_scratch(int64_t KH, int64_t KW, int64_t W, int64_t OW, int64_t sw, int64_t pad_w) {
    return 2 * KH * (OW + 64) + 4 * (pad_w + W + OW * sw + KW + 64);
}

template <class T>
struct PoolFns {
    void (*max_row)(const PoolRow<T>&);
    void (*avg_row)(const PoolRow<T>&);
    void (*max_row_cl)(const PoolRow<T>&);
    void (*avg_row_cl)(const PoolRow<T>&);
    // Channels last, two output rows of 3-row windows at stride 1 (avg 3x3 s1): the first row's window is
    // a.rows[0..2], the second's a.rows[1], a.rows[2], next, with the same divisors; the second row goes to
    // y2. False (nothing written) where the 3-wide stride-1 form does not apply: run avg_row_cl per row.
    bool (*avg_row2_cl)(const PoolRow<T>& a, const T* next, T* y2);
    void (*sep_plane)(const SepPlane<T>&);
    // y[p] = sum(x[p*n : (p+1)*n]) / div for p < planes (div == 0 -> NaN).
    void (*plane_mean)(const T* x, int64_t n, int64_t planes, T div, T* y);
    // Channels last: y[c] = sum(x[p*C + c] for p < n) / div for c in [c0, c1) (div == 0 -> NaN).
    void (*channel_mean)(const T* x, int64_t n, int64_t C, int64_t c0, int64_t c1, T div, T* y);
    void (*dw_row)(const DwRow<T>&);
    void (*dw_row_cl)(const DwRow<T>&);
    // DwPaddedRowCL for (KK, S) in {(3,1),(3,2),(5,1),(5,2)}; index (KK == 5) * 2 + (S == 2).
    void (*dw_padded_row_cl[4])(const DwPaddedRowCL<T>&);
    // DwInPlaceCL in column strips for KK = 3 (index 0) and 5 (index 1) (AVX-512, null for other ISAs: its 32
    // registers hold a strip's sums, inputs and weights).
    void (*dw_strips_cl[2])(const DwInPlaceCL<T>&);
    // Fast 2-D depthwise plane for (KH, KW, S) in {(3,3,1),(3,3,2),(5,5,1),(5,5,2)}; index
    // (K == 5) * 2 + (S == 2).
    void (*dw_plane[4])(const DwPlane<T>&);
    // Stride 1, KK = 3 (index 0) or 5 (index 1), aligned form of DwPlane: P 64-byte
    // aligned, Wp a multiple of `lanes`, Wp >= (ceil(OW / lanes) + 1) * lanes, KK - 1 <= lanes;
    // reads P rows [0, OH + KK - 1), columns [0, ceil(OW / lanes) * lanes + lanes).
    void (*dw_plane_s1a[2])(const DwPlane<T>&);
    // Stride 1, KK = 3 (index 0) / 5 (index 1), in place: P is the unpadded plane (Wp == OW, OH x OW
    // the input's size, padding (KK - 1) / 2 on every side, OW a multiple of lanes, ldo >= OW).
    void (*dw_plane_s1i[2])(const DwPlane<T>&);
    // Stride 1, KK = 3 / 5, one vector per padded row (Wp == lanes, OW + KK - 1 <= lanes, P
    // 64-byte aligned, ldo == OW); reads P rows [0, OH + KK - 1).
    void (*dw_plane_s1v[2])(const DwPlane<T>&);
    // dw_plane_s1v reading the unpadded plane itself (AVX-512 masked loads and stores; null for other ISAs):
    // P the input plane, OH x OW its size (Wp == OW == ldo), padding (KK - 1) / 2 on every side,
    // OW + KK - 1 <= lanes.
    void (*dw_plane_s1m[2])(const DwPlane<T>&);
    // DwFlat for KK = 3 (index 0) or 5 (index 1).
    void (*dw_flat[2])(const DwFlat<T>&);
    // Fills the masks of DwFlat: ceil(n / L) starts x KK x L elements of sizeof(T) bytes.
    void (*dw_flat_masks)(int64_t n, int64_t W, int64_t pw, int KK, void* masks);
    // dst[r*ldd + i] = src[r*lds + i] for r < rows, i < n (no overlap): the depthwise padded
    // copy at this ISA's vector width (compiled for the baseline ISA, its 16-byte moves were
    // half the copy's cost).
    void (*copy_rows)(const T* src, int64_t lds, T* dst, int64_t ldd, int64_t rows, int64_t n);
    // For r < rows: even[r*ldd + j] = src[r*lds + 2j], odd[r*ldd + j] = src[r*lds + 2j + 1] for
    // the row's n elements, in whole vectors: reads src[r*lds + [0, m)], writes even and odd
    // [r*ldd + [0, m / 2)], m = n rounded up to 2 * lanes (elements past n: whatever src holds).
    void (*split_even_odd)(const T* src, int64_t lds, int64_t rows, int64_t n, T* even, T* odd, int64_t ldd);
    // The stride-2 split form of DwPlane for KK = 3 (index 0) or 5 (index 1).
    void (*dw_plane_s2d[2])(const DwPlane<T>&);
    int lanes;  // vector lanes of these kernels
    // Whether a lane shift across two vectors is cheap (ck_cheap_lane_shift); where it is not, the
    // depthwise planes prefer unaligned tap loads (see depthwise.cpp).
    bool cheap_lane_shift;
};

struct PoolKernels {
    const char* isa;
    PoolFns<float> f32;
    PoolFns<double> f64;
    // The vector loop of bytes_digest (elementwise.h; digest_kernel.inc): `blocks` 64-byte blocks
    // of 16 words into lanes a, b and flags bad, with masks `mask` (16 entries each; null: no flags).
    void (*digest_blocks)(const uint32_t* x, int64_t blocks, uint32_t* a, uint32_t* b, uint32_t* bad,
                          const uint32_t* mask);
};

const PoolKernels* pool_kernels_avx512();
const PoolKernels* pool_kernels_avx2();
const PoolKernels* pool_kernels_baseline();

// The table of the ISA active_isa_kernels() (isa.h) selected.
const PoolKernels& active_pool_kernels();

template <class T>
inline const PoolFns<T>& pool_fns(const PoolKernels& k);
template <>
inline const PoolFns<float>& pool_fns<float>(const PoolKernels& k) { return k.f32; }
template <>
inline const PoolFns<double>& pool_fns<double>(const PoolKernels& k) { return k.f64; }

}  // namespace cnnkernels
