#include "cnnkernels/depthwise.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "cnnkernels/pool_kernels.h"
#include "cnnkernels/pool_windows.h"
#include "cnnkernels/transpose.h"
#include "cnnkernels/thread_pool.h"

namespace cnnkernels {
namespace {

template <class T>
bool all_finite(const T* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(p[i])) return false;
    return true;
}

// Valid (tap, input index) pairs of one output index along D or H.
inline void valid_taps(int64_t o, int64_t stride, int64_t pad, int64_t dil, int64_t kernel, int64_t in, int64_t& lo,
                       int64_t& hi) {
    detail::valid_out_range(kernel, dil, o * stride - pad, in, lo, hi);
}

// Output rows of a band whose padded input rows (row_bytes each) fit in `bytes`, rounded down to
// whole 4-row kernel blocks (0 when not even 4 fit).
inline int64_t band_rows(int64_t bytes, int64_t row_bytes, int64_t KH, int64_t s) {
    return std::max<int64_t>(0, (bytes / row_bytes - KH) / s + 1) / 4 * 4;
}

// The first 64-byte aligned element at or after p (the buffer holding p has room for it).
template <class T>
T* align64(T* p) {
    return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

// The generic row kernels' fields shared by every row of one column chunk (OW outputs, W padding `pad`
// shifted to the chunk's start, cols its window table): the W geometry, the clamp range, the table.
template <class T>
DwRow<T> dw_row_proto(const ConvGeometry& g, int64_t OW, int64_t pad, const ColTable& cols, T lo, T hi) {
    DwRow<T> r{};
    r.W = g.in[2];
    r.OW = OW;
    r.KW = g.kernel[2];
    r.stride = g.stride[2];
    r.pad = pad;
    r.dil = g.dilation[2];
    r.lo = lo;
    r.hi = hi;
    r.wtab = cols.t.data();
    r.olo = cols.olo;
    r.ohi = cols.ohi;
    return r;
}

// Channels-last pixels [p0, p1) (pixel stride K) of an output plane whose input depth lies in the
// padding: channels [0, cw) from y on hold clamp(bias[c]) (bias nullable: 0).
template <class T>
void fill_clamped_bias_cl(T* y, int64_t p0, int64_t p1, int64_t K, int64_t cw, const T* bias, T lo, T hi) {
    for (int64_t p = p0; p < p1; ++p)
        for (int64_t c = 0; c < cw; ++c) {
            const T v = bias ? bias[c] : T(0);
            y[p * K + c] = v < lo ? lo : (v > hi ? hi : v);
        }
}

// The fast paths' outer loop: each output plane (image n, channel k, output depth od) on one
// thread. A plane whose input depth lies in the padding gets clamp(bias); any other is
// plane(state, input plane, y plane, k, bias), with one state per thread from make_state().
template <class T, class MakeState, class Plane>
void for_output_planes(const ConvGeometry& g, const T* x, const T* bias, T* y, T lo, T hi, int threads,
                       MakeState make_state, Plane plane) {
    const int64_t C = g.C, K = g.K, mult = K / C, D = g.in[0], OD = g.out[0];
    const int64_t in_plane = g.in[1] * g.in[2], out_plane = g.out[1] * g.out[2];
    const int64_t jobs = g.N * K * OD;
    parallel_for_state(threads, jobs, make_state, [&](auto& state, int64_t job) {
        const int64_t od = job % OD, k = (job / OD) % K, n = job / (OD * K);
        T* yp = y + job * out_plane;
        const T b = bias ? bias[k] : T(0);
        const int64_t id = od * g.stride[0] - g.pad[0];
        if (id < 0 || id >= D) {
            std::fill(yp, yp + out_plane, b < lo ? lo : (b > hi ? hi : b));
            return;
        }
        plane(state, x + ((n * C + k / mult) * D + id) * in_plane, yp, k, b);
    });
}

// Widest plane (in vectors) that runs flattened with column masks; wider ones run row by row
// (measured: 512x14x14 3x3 0.094 -> 0.085 ms at 1 thread flattened, 240x28x28 5x5 0.18 -> 0.23 ms).
constexpr int64_t kFlatMaxVectors = 1;

// Channels-last 3x3 / 5x5 stride 1 / 2 (multiplier 1, dilation 1, finite weights): a job is
// a band of output rows of one block of channels; it copies each input row it needs once,
// zero-padded and with the block's channels contiguous, into a ring of KK rows, and runs
// DwPaddedRowCL per output row. The copy is what makes it fast for wide channel counts:
// in place, a pixel stride of 2 KiB (512 channels) put every pixel of a channel vector in
// the same two L1 sets, so the rows the next output row reuses were gone (measured 1.8x
// slower per channel at 512 channels than at 496 or 528); the padding also removes the
// border columns' slower path.
template <class T>
void depthwise_ndhwc_padded(const ConvGeometry& g, const PoolFns<T>& f, const T* x, const T* taps, const T* bias,
                            T* y, T lo, T hi, int threads) {
    const int64_t N = g.N, K = g.K, D = g.in[0], H = g.in[1], W = g.in[2];
    const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2], KK = g.kernel[1], s = g.stride[1];
    const int64_t ph = g.pad[1], pw = g.pad[2];
    const int64_t Wp = (OW - 1) * s + KK;
    // Channel blocks of up to 256 bytes (measured: 128-byte blocks 0.6-0.8x on 32-96 channel 112x112 maps,
    // where a block no longer covers whole pixels), K's nv vectors split evenly so that jobs weigh the
    // same (64+64+112 channels left one thread a third more work); block b holds vectors
    // [b * nv / nbk, (b + 1) * nv / nbk), the last one partial when L does not divide K (with 2+
    // blocks each has 2+ vectors, so cw >= L).
    const int64_t L = f.lanes, per_block = std::max<int64_t>(1, 256 / (L * int64_t(sizeof(T))));
    const int64_t nv = (K + L - 1) / L, nbk = (nv + per_block - 1) / per_block;
    const int64_t max_cw = (nv + nbk - 1) / nbk * L;
    // Bands only to give each thread 4 jobs or more (each band copies KK - s rows twice).
    const int64_t per_band = std::max<int64_t>(1, (4 * int64_t(threads) + N * OD * nbk - 1) / (N * OD * nbk));
    const int64_t BR = (OH + std::min(OH, per_band) - 1) / std::min(OH, per_band);
    const int64_t nbands = (OH + BR - 1) / BR, jobs = N * OD * nbk * nbands;
    // Column tiles of whole 8-pixel kernel blocks when the ring of whole rows would pass 24 KiB, so it
    // stays in L1 (32 KiB): 32 channels x 112 columns took a 43 KiB ring, read from L2 three times per
    // output row (tiles: 0.137 -> 0.124 ms at 1 thread, 1.02-1.05x at 2; 240 channels x 28 5x5 neutral).
    // Each tile copies its KK - s halo columns again. This also bounds the ring for rows of any length.
    constexpr int64_t kRingBytes = 24 << 10;
    const int64_t whole = KK * Wp * max_cw * int64_t(sizeof(T));
    int64_t TW = OW;
    if (whole > kRingBytes) {
        const int64_t slot_pixels = kRingBytes / KK / (max_cw * int64_t(sizeof(T)));
        const int64_t tw_max = std::max<int64_t>(8, (slot_pixels - KK) / s + 1);
        const int64_t ntiles = (OW + tw_max - 1) / tw_max;
        TW = std::min(OW, ((OW + ntiles - 1) / ntiles + 7) / 8 * 8);
    }
    const int64_t Wt = (TW - 1) * s + KK;                 // padded pixels of a tile's rows
    const int64_t ldp = (Wt * max_cw + 15) / 16 * 16;  // ring slot stride, whole 64-byte lines
    const auto kern = f.dw_padded_row_cl[(KK == 5) * 2 + (s == 2)];
    struct Ring {   // per thread: the ring of padded rows, and the rows of one output row
        std::vector<T> storage;
        const T* rows[5];
    };
    auto make_ring = [&] { return Ring{std::vector<T>(static_cast<size_t>(KK * ldp + 64 / int64_t(sizeof(T)))), {}}; };
    parallel_for_state(threads, jobs, make_ring, [&](Ring& state, int64_t job) {
        T* const ring = align64(state.storage.data());
        const T** const rows = state.rows;
        // Channel blocks innermost: a thread's run of jobs covers whole pixels, so it reads
        // x contiguously (split by blocks, each thread's prefetchers also pulled in the
        // other's channels: no gain from the second thread at 128 channels).
        const int64_t b = job % nbk, band = (job / nbk) % nbands;
        const int64_t od = (job / (nbands * nbk)) % OD, n = job / (nbands * nbk * OD);
        const int64_t c0 = b * nv / nbk * L, cw = std::min(K, (b + 1) * nv / nbk * L) - c0;
        const int64_t oh0 = band * BR, oh1 = std::min(OH, oh0 + BR);
        T* const yb = y + (n * OD + od) * OH * OW * K + c0;
        const int64_t id = od * g.stride[0] - g.pad[0];
        if (id < 0 || id >= D) {  // the whole plane reads depth padding: clamp(bias)
            fill_clamped_bias_cl(yb, oh0 * OW, oh1 * OW, K, cw, bias ? bias + c0 : nullptr, lo, hi);
            return;
        }
        const T* const xp = x + (n * D + id) * H * W * K + c0;
        for (int64_t ow0 = 0; ow0 < OW; ow0 += TW) {
            // The tile's padded columns [pc0, pc0 + wt); input columns [c_lo, c_hi) - pw + pc0.
            const int64_t tw = std::min(TW, OW - ow0), pc0 = ow0 * s, wt = (tw - 1) * s + KK;
            const int64_t c_lo = std::min(wt, std::max<int64_t>(0, pw - pc0));
            const int64_t c_hi = std::max(c_lo, std::min(wt, pw + W - pc0));
            // Padded row r (input row r - ph) lives in slot r % KK; next_row: the first not yet copied.
            int64_t next_row = oh0 * s;
            for (int64_t oh = oh0; oh < oh1; ++oh) {
                for (; next_row < oh * s + KK; ++next_row) {
                    const int64_t ih = next_row - ph;
                    T* const d = ring + (next_row % KK) * ldp;
                    if (ih < 0 || ih >= H) {
                        std::fill(d, d + wt * cw, T(0));
                        continue;
                    }
                    std::fill(d, d + c_lo * cw, T(0));
                    f.copy_rows(xp + (ih * W + pc0 + c_lo - pw) * K, K, d + c_lo * cw, cw, c_hi - c_lo, cw);
                    std::fill(d + c_hi * cw, d + wt * cw, T(0));
                }
                for (int64_t r = 0; r < KK; ++r) rows[r] = ring + ((oh * s + r) % KK) * ldp;
                kern(DwPaddedRowCL<T>{rows, cw, tw, taps + c0, K, bias ? bias + c0 : nullptr, lo, hi,
                                      yb + (oh * OW + ow0) * K});
            }
        }
    });
}

// Depthwise NCHW 3x3 / 5x5, stride 2, dilation 1, output rows of a vector or more, finite weights
// (the taps on zero padding then add w * 0 = 0, which equals skipping them).
template <class T>
void depthwise_nchw_s2_split(const ConvGeometry& g, const PoolFns<T>& f, const T* x, const T* w, const T* bias,
                             T* y, T lo, T hi, int threads) {
    const int64_t N = g.N, C = g.C, D = g.in[0], H = g.in[1], W = g.in[2], OH = g.out[1], OW = g.out[2];
    const int64_t KH = g.kernel[1], Hp = (OH - 1) * 2 + KH, Wp = (OW - 1) * 2 + KH;
    const int64_t ph = g.pad[1], pw = g.pad[2];
    // Padded row r (input row r - ph) is split into its even and odd padded columns (see
    // DwPlane) once per plane, so that the kernel's taps are plain loads instead of two loads
    // and a permute each (measured 1.15-1.3x faster on 40-112 wide maps, 1 and 2 threads;
    // narrower rows lost, 0.85-0.97x). The split runs in whole vectors: the row's E and O have
    // room for its overrun, which covers only columns past the input's (rezeroed where they are
    // right padding) or past the padded row (never read for outputs below OW). Rows whose
    // overrun would read past x's end go through a zero-extended copy.
    const int64_t L = f.lanes, L2 = 2 * L;
    const int64_t half = (Wp + 1) / 2 / L * L + 2 * L, ldp = 2 * half;
    const int64_t c_lo = std::min(Wp, pw), c_hi = std::max(c_lo, std::min(Wp, pw + W));
    const int64_t r_lo = std::min(Hp, ph), r_hi = std::max(r_lo, std::min(Hp, ph + H));
    const int64_t n = c_hi - c_lo, m = (n + L2 - 1) / L2 * L2;
    const T* const x_end = x + N * C * D * H * W;
    // Bounded workspace: a plane over 8 MiB runs in bands of output rows from ~1 MiB of split rows.
    const int64_t row_bytes = ldp * int64_t(sizeof(T));
    const int64_t BR = Hp * row_bytes <= (8 << 20)
                           ? OH
                           : std::min(OH, std::max<int64_t>(4, band_rows(1 << 20, row_bytes, KH, 2)));
    struct Buffers {
        std::vector<T> padded, row;
    };
    for_output_planes(
        g, x, bias, y, lo, hi, threads,
        [&] {
            return Buffers{std::vector<T>(size_t(((BR - 1) * 2 + KH) * ldp + 64 / sizeof(T)), T(0)),
                           std::vector<T>(size_t(m))};
        },
        [&](Buffers& bufs, const T* xp, T* yp, int64_t k, T b) {
            T* const P = align64(bufs.padded.data());
            for (int64_t oh0 = 0; oh0 < OH; oh0 += BR) {
                // Buffer row i holds padded row p0 + i.
                const int64_t bh = std::min(BR, OH - oh0), p0 = 2 * oh0, nbuf = (bh - 1) * 2 + KH;
                if (BR < OH)  // rows of padding in this band (earlier bands may have written them)
                    for (int64_t i = 0; i < nbuf; ++i)
                        if (p0 + i < r_lo || p0 + i >= r_hi) std::fill(P + i * ldp, P + (i + 1) * ldp, T(0));
                const int64_t a = std::max(r_lo, p0), e = std::min(r_hi, p0 + nbuf);
                if (n > 0 && e > a) {
                    // Padded column c goes to E[c / 2] (even c) or O[c / 2] (odd c).
                    T* const E = P + (a - p0) * ldp + (c_lo % 2 ? half + c_lo / 2 : c_lo / 2);
                    T* const O = P + (a - p0) * ldp + (c_lo % 2 ? (c_lo + 1) / 2 : half + c_lo / 2);
                    const T* const src = xp + (a - ph) * W + (c_lo - pw);
                    // Rows whose whole-vector reads stay inside x, then the others through a copy.
                    const int64_t rows = e - a;
                    const int64_t room = x_end - src - m;  // row r is safe when r * W <= room
                    const int64_t safe = room < 0 ? 0 : std::min(rows, room / W + 1);
                    f.split_even_odd(src, W, safe, n, E, O, ldp);
                    for (int64_t r = safe; r < rows; ++r) {
                        std::copy(src + r * W, src + r * W + n, bufs.row.data());
                        f.split_even_odd(bufs.row.data(), 0, 1, n, E + r * ldp, O + r * ldp, 0);
                    }
                    for (int64_t i = a - p0; i < e - p0; ++i)  // right padding the overrun wrote
                        for (int64_t c = c_hi; c < Wp; ++c) P[i * ldp + (c % 2) * half + c / 2] = T(0);
                }
                f.dw_plane_s2d[KH == 5](
                    DwPlane<T>{P, ldp, bh, OW, w + k * KH * KH, b, lo, hi, yp + oh0 * OW, OW, half});
            }
        });
}

}  // namespace

template <class T>
void depthwise_ncdhw(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, T lo, T hi, int threads) {
    const int64_t N = g.N, C = g.C, K = g.K, mult = K / C;
    const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
    const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
    const int64_t KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
    if (N <= 0 || K <= 0 || OD <= 0 || OH <= 0 || OW <= 0) return;
    const PoolFns<T>& f = pool_fns<T>(active_pool_kernels());
    const int64_t s = g.stride[1];
    const int64_t ph = g.pad[1], pw = g.pad[2];
    // "Same"-size stride-1 rows of whole vectors run in place, without the padded copy (same process,
    // 1 thread, AVX-512: 32x112x112 3x3 1.17x, 96x112x112 1.35x, 32x224x224 1.47x, 16x112x112 5x5
    // 1.23x, 64x64x64 1.27x; 2 threads 1.14-1.23x; AVX2 on 56- and 112-wide planes 1.02-1.05x).
    // Where lane shifts are dear (AVX2), only planes that fit in L1 run in place: larger ones ran
    // faster from the L1-sized padded bands below (1 thread, same process: 32x112x112 1.13x,
    // 96x112x112 1.22x; 128x56x56 in place 1.08x faster than padded).
    const bool in_place = s == 1 && OH == H && OW == W && 2 * ph == KH - 1 && 2 * pw == KW - 1 && W % f.lanes == 0 &&
                          (f.cheap_lane_shift || H * W * int64_t(sizeof(T)) <= 32768);
    // Bounded workspace: the other fast paths hold whole padded (or split) input rows, so rows over 1 MiB
    // go to the generic path, whose window tables go by column chunks (a 1 x 10^7 plane at stride 2 grew
    // peak memory by 324 MB).
    const bool long_rows = ((OW - 1) * s + KW) * int64_t(sizeof(T)) > (int64_t(1) << 20);
    const bool fast = KD == 1 && KH == KW && (KH == 3 || KH == 5) && g.stride[2] == s && (s == 1 || s == 2) &&
                      g.dilation[1] == 1 && g.dilation[2] == 1 && (in_place || !long_rows) &&
                      all_finite(w, K * KH * KW);
    if (fast) {
        // Zero-padded copy of the plane; padding taps then add w * 0 = 0 (finite weights),
        // which equals skipping them.
        const int64_t Hp = (OH - 1) * s + KH, Wp = (OW - 1) * s + KW;
        if (s == 2 && OW >= f.lanes) {
            depthwise_nchw_s2_split(g, f, x, w, bias, y, lo, hi, threads);
            return;
        }
        if (in_place) {
            for_output_planes(
                g, x, bias, y, lo, hi, threads, [] { return 0; },
                [&](int&, const T* xp, T* yp, int64_t k, T b) {
                    f.dw_plane_s1i[KH == 5](DwPlane<T>{xp, W, H, W, w + k * KH * KW, b, lo, hi, yp, W});
                });
            return;
        }
        // "Same"-size stride-1 planes narrower than kFlatMaxVectors vectors: one flattened run
        // over the plane with per-lane column masks (DwFlat), no per-row padding.
        const int L = f.lanes;
        // Stride-1 rows that fit one vector with their padding: one aligned vector per padded row.
        // (measured 1.2x faster than the masked flattened run on 512x14x14 3x3, 1 and 2 threads).
        const bool one_vector = s == 1 && OW + KW - 1 <= L && 2 * OW >= L;
        // "Same"-size planes of one vector per padded row, under AVX-512: read in place by masked loads
        // (dw_plane_s1m), without the padded copy (alternating processes, 512x14x14 3x3: 1.41x at 1 thread,
        // 1.30x at 2).
        if (one_vector && f.dw_plane_s1m[0] && OH == H && OW == W && 2 * ph == KH - 1 && 2 * pw == KW - 1) {
            for_output_planes(
                g, x, bias, y, lo, hi, threads, [] { return 0; },
                [&](int&, const T* xp, T* yp, int64_t k, T b) {
                    f.dw_plane_s1m[KH == 5](DwPlane<T>{xp, W, H, W, w + k * KH * KW, b, lo, hi, yp, W});
                });
            return;
        }
        const bool masked_flat = !one_vector && s == 1 && OH == H && OW == W && ph <= KH - 1 && pw <= KW - 1 &&
                                 H * W >= L && W < kFlatMaxVectors * L;
        if (masked_flat) {
            const int64_t n = H * W, lead = ph * W + pw, tail = (KH - 1 - ph) * W + (KW - 1 - pw) + L;
            // Lane masks (integers as wide as T) for every vector start, shared by all planes and threads.
            std::vector<T> masks(static_cast<size_t>((n + L - 1) / L * KW * L));
            f.dw_flat_masks(n, W, pw, int(KW), masks.data());
            for_output_planes(
                g, x, bias, y, lo, hi, threads, [&] { return std::vector<T>(size_t(lead + n + tail), T(0)); },
                [&](std::vector<T>& buf, const T* xp, T* yp, int64_t k, T b) {
                    std::memcpy(buf.data() + lead, xp, size_t(n) * sizeof(T));
                    DwFlat<T> fl{buf.data(), lead, n, W, ph, pw, masks.data(), w + k * KH * KW, b, lo, hi, yp};
                    f.dw_flat[KH == 5](fl);
                });
            return;
        }
        // Stride 1 (taps within one vector, rows of at least one vector; narrower ones
        // measured faster flattened): rows padded to whole aligned vectors plus
        // one, so the kernel reads only aligned vectors and shifts them (see dw_plane_s1a).
        // Where lane shifts are dear (AVX2), rows of 16 or more take unaligned tap loads (dw_plane) instead
        // (1 thread: 240x28x28 5x5 1.05x, 32x112x112 5x5 1.06x).
        const bool aligned = s == 1 && KH - 1 <= L && OW >= L && (f.cheap_lane_shift || OW < 16);
        const int64_t nv = (OW + L - 1) / L;
        const int64_t ldp = one_vector ? L : aligned ? (nv + 1) * L : Wp;
        const auto kern = one_vector ? f.dw_plane_s1v[KH == 5]
                          : aligned  ? f.dw_plane_s1a[KH == 5]
                                     : f.dw_plane[(KH == 5) * 2 + (s == 2)];
        // Unaligned stride-1 rows of at least 16 outputs (or stride 2) go straight into y;
        // narrower ones go through a scratch output with the padded row stride (see DwPlane).
        const bool flat = !aligned && !one_vector && s == 1 && OW < 16;
        // Columns [c_lo, c_hi) of padded row r in [r_lo, r_hi) hold input row r - ph; every
        // other position is padding, zeroed once when the buffer was allocated and never written.
        const int64_t c_lo = std::min(Wp, pw), c_hi = std::max(c_lo, std::min(Wp, pw + W));
        const int64_t r_lo = std::min(Hp, ph), r_hi = std::max(r_lo, std::min(Hp, ph + H));
        // Planes whose padded copy would not fit in L1 (112x112: 58 KB) run in bands of output
        // rows, each from a copy of just its input rows, when a band of about 12 KB holds 8 rows
        // or more (measured 1.05-1.11x faster on 32 and 96 x 112x112 3x3, 1 and 2 threads; on
        // 56x56 planes, which fit, 0.94-0.99x, and on 500-wide 5x5 rows, 4-row bands, 0.91x).
        const int64_t row_bytes = ldp * int64_t(sizeof(T)), plane_bytes = Hp * row_bytes;
        const int64_t band = band_rows(12288, row_bytes, KH, s);
        int64_t BR = !flat && plane_bytes > 32768 && band >= 8 ? std::min(OH, band) : OH;
        // Bounded workspace: a plane over 8 MiB runs in bands of about 1 MiB (4 rows or more) whatever
        // their speed, so a thread's buffers stay near that size rather than the plane's.
        if (BR == OH && plane_bytes > (8 << 20))
            BR = std::min(OH, std::max<int64_t>(4, band_rows(1 << 20, row_bytes, KH, s)));
        const int64_t Hb = (BR - 1) * s + KH;  // buffer rows
        struct Buffers {
            // Slack: the scratch-output mode computes whole padded rows (reads up to Wp + KW
            // past the plane), rows narrower than a vector read 2 * L more, all zeros; and room
            // to align the start to 64 bytes.
            std::vector<T> padded, out;
        };
        for_output_planes(
            g, x, bias, y, lo, hi, threads,
            [&] {
                return Buffers{std::vector<T>(size_t(Hb * ldp + ldp + KW + 2 * L + 128 / sizeof(T)), T(0)),
                               std::vector<T>(size_t(flat ? BR * Wp : 0))};
            },
            [&](Buffers& bufs, const T* xp, T* yp, int64_t k, T b) {
                T* const P = align64(bufs.padded.data());
                for (int64_t oh0 = 0; oh0 < OH; oh0 += BR) {
                    const int64_t bh = std::min(BR, OH - oh0), p0 = oh0 * s;  // buffer row i: padded row p0 + i
                    if (BR < OH) {  // rows of padding in this band (earlier bands may have written them)
                        for (int64_t i = 0; i < (bh - 1) * s + KH; ++i)
                            if (p0 + i < r_lo || p0 + i >= r_hi) std::fill(P + i * ldp + c_lo, P + i * ldp + c_hi, T(0));
                    }
                    const int64_t a = std::max(r_lo, p0), e = std::min(r_hi, p0 + (bh - 1) * s + KH);
                    if (c_hi > c_lo && e > a)
                        f.copy_rows(xp + (a - ph) * W, W, P + (a - p0) * ldp + c_lo, ldp, e - a, c_hi - c_lo);
                    T* const out = flat ? bufs.out.data() : yp + oh0 * OW;
                    kern(DwPlane<T>{P, ldp, bh, OW, w + k * KH * KW, b, lo, hi, out, flat ? Wp : OW});
                    if (flat) f.copy_rows(bufs.out.data(), Wp, yp + oh0 * OW, OW, bh, OW);
                }
            });
        return;
    }
    const int64_t maxr = std::max<int64_t>(1, std::min(KD, D) * std::min(KH, H));
    for_column_chunks(OW, g.stride[2], g.pad[2], [&](int64_t c0, int64_t c1, int64_t pad) {
        const ColTable cols = tap_columns(c1 - c0, W, KW, g.stride[2], pad, g.dilation[2]);
        const DwRow<T> proto = dw_row_proto(g, c1 - c0, pad, cols, lo, hi);
        using Scratch = std::pair<std::vector<const T*>, std::vector<const T*>>;
        // Rows of (n, k) planes: "plane" = n*K + k.
        for_rows(
            N * K, OD, OH, 1, threads, [&] { return Scratch(std::vector<const T*>(size_t(maxr)), std::vector<const T*>(size_t(maxr))); },
            [&](Scratch& sc, int64_t plane, int64_t od, int64_t oh, int64_t, int64_t row) {
                const int64_t k = plane % K, n = plane / K;
                int64_t dlo, dhi, hlo, hhi;
                valid_taps(od, g.stride[0], g.pad[0], g.dilation[0], KD, D, dlo, dhi);
                valid_taps(oh, g.stride[1], g.pad[1], g.dilation[1], KH, H, hlo, hhi);
                const T* xc = x + (n * C + k / mult) * D * H * W;
                int nr = 0;
                for (int64_t kd = dlo; kd < dhi; ++kd)
                    for (int64_t kh = hlo; kh < hhi; ++kh) {
                        const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dilation[0];
                        const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dilation[1];
                        sc.first[size_t(nr)] = xc + (id * H + ih) * W;
                        sc.second[size_t(nr)] = w + ((k * KD + kd) * KH + kh) * KW;
                        ++nr;
                    }
                DwRow<T> r = proto;
                r.rows = sc.first.data();
                r.wrows = sc.second.data();
                r.nrows = nr;
                r.bias = bias ? bias[k] : T(0);
                r.y = y + row * OW + c0;
                f.dw_row(r);
            });
    });
}

// The weights w (K, ntaps) as taps (ntaps, K), remembered per calling thread for the last few weights seen
// (compared in full each call, so edited weights are transposed again): rewritten every call, the taps' lines
// were written by the calling thread while the other core still held them from the previous call's reads, and
// each write waited for that copy to be invalidated (512 channels 3x3, 2 threads: 5-16 us of a 17-28 us call;
// with the taps reused, 12-13 us). Weights over 256 KiB (a suite's largest: 18 KB) are transposed into `own`
// instead, so the cache holds at most 4 MiB per thread.
template <class T>
const T* channels_last_taps(const T* w, int64_t K, int64_t ntaps, std::vector<T>& own) {
    const size_t n = size_t(K * ntaps);
    if (n * sizeof(T) > (size_t(256) << 10)) {
        own.resize(n);
        swap_last_axes<int(sizeof(T))>(w, own.data(), 1, K, ntaps, 1);
        return own.data();
    }
    struct Entry {
        const T* src;
        std::vector<T> copy, taps;
    };
    thread_local std::vector<Entry> recent;  // most recently used first
    constexpr size_t kKeep = 8;
    for (size_t i = 0; i < recent.size(); ++i) {
        const Entry& e = recent[i];
        if (e.src == w && e.copy.size() == n && std::memcmp(e.copy.data(), w, n * sizeof(T)) == 0) {
            std::rotate(recent.begin(), recent.begin() + std::ptrdiff_t(i), recent.begin() + std::ptrdiff_t(i) + 1);
            return recent.front().taps.data();
        }
    }
    Entry e{w, std::vector<T>(w, w + n), std::vector<T>(n)};
    swap_last_axes<int(sizeof(T))>(w, e.taps.data(), 1, K, ntaps, 1);
    recent.insert(recent.begin(), std::move(e));
    if (recent.size() > kKeep) recent.pop_back();
    return recent.front().taps.data();
}

template <class T>
void depthwise_ndhwc(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, T lo, T hi, int threads) {
    const int64_t N = g.N, C = g.C, K = g.K, mult = K / C;
    const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
    const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
    const int64_t KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
    if (N <= 0 || K <= 0 || OD <= 0 || OH <= 0 || OW <= 0) return;
    const PoolFns<T>& f = pool_fns<T>(active_pool_kernels());
    // Weights with channels innermost: taps[((kd*KH + kh)*KW + kw)*K + k].
    const int64_t ntaps = KD * KH * KW;
    std::vector<T> own;
    const T* const taps = channels_last_taps(w, K, ntaps, own);
    // Otherwise stride 1 runs from padded copies (1.0-1.7x faster at 1 thread than the generic rows); stride 2
    // reads each input row for fewer outputs, so the copy pays only where the pixel stride aliases
    // (2 KiB: 1.8x faster at 512 channels; at 1 KiB, 256 channels, 0.8x, at 64-144 channels 0.7-0.9x).
    const int64_t s = g.stride[1];
    // Each thread's ring holds KH padded rows of a column tile (under ~27 KiB whatever the row length).
    const bool aliasing = K * int64_t(sizeof(T)) % 2048 == 0;
    // 3x3 stride-1 "same" planes read in place in column strips (dw_strips_cl): each input row is loaded once
    // per strip for the three output rows it feeds. Against the two-rows-per-pass in-place kernel it replaced
    // (same process, interleaved, 1 thread, as ratios to our NCHW): 32x112x112 0.85 -> 0.98x, 64x56x56 1.07 ->
    // 1.19-1.33x, 96x112x112 1.00 -> 1.37x, 384x14x14 0.82 -> 0.91-1.22x; and against the padded-row ring it
    // also replaces at pixel strides of 1-4 KiB (with the output placed by empty_apart): 512x14x14 0.72 -> 0.94x,
    // 1024x7x7 0.69 -> 1.36x, 256x28x28 0.79 -> 1.17x. AVX-512 only (64-byte vectors, 32 registers).
    // 5x5 likewise, except at aliasing strides (one vector per pass: see dw_strips_cl_cl). Against the padded
    // rows below (same process, interleaved, medians of 15 rounds, ratio to our NCHW): 1 thread 240x28x28
    // 1.08 -> 1.24x, 144x56x56 1.02 -> 1.20x, 672x14x14 1.67 -> 2.00x, 32x112x112 0.89 -> 0.99x; 2 threads
    // 240x28x28 1.01 -> 1.13x, 144x56x56 0.90 -> 1.21x.
    const bool strips5 = KH == 5 && !aliasing;
    if (KD == 1 && KH == KW && (KH == 3 || strips5) && s == 1 && g.stride[2] == 1 && g.dilation[1] == 1 &&
        g.dilation[2] == 1 && g.pad[1] == KH / 2 && g.pad[2] == KH / 2 && OH == H && OW == W && mult == 1 &&
        K >= f.lanes && f.dw_strips_cl[KH == 5]) {
        // When the planes do not share out evenly, each is split between the threads: 3x3 by columns where it
        // has over 16 rows (and 2+ columns per thread), else by rows. Rows on such planes (each thread walking
        // half of the plane down) ran, for seconds at a time on this VM, no faster than one thread (32x112x112,
        // 2 threads: 0.112 ms against 0.059, and 0.086 at 1 thread, in a quarter of the samples of a 2-minute
        // monitor; by columns 0.054-0.059 throughout); columns against rows, 2 threads, in-process: 28x28 and larger planes
        // 1.15-2.6x, 14x14 and 7x7 planes 0.88-1.03x. Not by channels: two threads writing the same misaligned
        // cache lines of each pixel ran 0.4x.
        const int64_t planes = N * OD;
        const bool split = planes % threads != 0 && planes < 4 * threads;
        // 5x5 by columns whatever the rows (rows re-read 4 halo rows per band: 2 threads, against rows,
        // 672x14x14 1.42x, 240x14x14 1.26x, 960x7x7 1.27x, 96x14x14 1.11x, 160x7x7 1.07x). Columns need
        // KK / 2 + 1 or more per thread (see dw_strips_cl_cl).
        const bool by_columns = split && (OH > 16 || KH == 5) && W >= (KH / 2 + 1) * threads;
        const int64_t pieces = !split ? 1 : by_columns ? threads : std::min<int64_t>(OH, threads);
        const int64_t BR = by_columns ? OH : (OH + pieces - 1) / pieces, jobs = planes * pieces;
        parallel_for(threads, jobs, [&](int64_t job, int) {
            const int64_t piece = job % pieces, od = (job / pieces) % OD, n = job / (pieces * OD);
            const int64_t id = od * g.stride[0] - g.pad[0];
            T* const yp = y + (n * OD + od) * OH * OW * K;
            const int64_t oh0 = by_columns ? 0 : piece * BR, oh1 = std::min(OH, oh0 + BR);
            if (oh0 >= oh1) return;
            if (id < 0 || id >= D) {  // the whole plane reads depth padding: clamp(bias)
                if (!by_columns || piece == 0) fill_clamped_bias_cl(yp, oh0 * OW, oh1 * OW, K, K, bias, lo, hi);
                return;
            }
            f.dw_strips_cl[KH == 5](DwInPlaceCL<T>{x + (n * D + id) * H * W * K, H, W, K, taps, bias, lo, hi, yp,
                                                   oh0, oh1, by_columns ? piece : 0, by_columns ? pieces : 1});
        });
        return;
    }
    if (KD == 1 && KH == KW && (KH == 3 || KH == 5) && g.stride[2] == s && (s == 1 || (s == 2 && aliasing)) &&
        g.dilation[1] == 1 && g.dilation[2] == 1 && mult == 1 && K >= f.lanes &&
        all_finite(w, K * KH * KW)) {
        depthwise_ndhwc_padded(g, f, x, taps, bias, y, lo, hi, threads);
        return;
    }
    const int64_t rows = N * OD * OH;
    int64_t nb = 1;
    while (rows * nb < 4 * int64_t(threads) && K / (nb * 2) >= 64) nb *= 2;
    int64_t bs = (K + nb - 1) / nb;
    bs = (bs + 63) / 64 * 64;
    nb = (K + bs - 1) / bs;
    const int64_t maxr = std::max<int64_t>(1, std::min(KD, D) * std::min(KH, H));
    for_column_chunks(OW, g.stride[2], g.pad[2], [&](int64_t c0, int64_t c1, int64_t pad) {
        const ColTable cols = tap_columns(c1 - c0, W, KW, g.stride[2], pad, g.dilation[2]);
        DwRow<T> proto = dw_row_proto(g, c1 - c0, pad, cols, lo, hi);
        proto.C = C;
        proto.K = K;
        proto.mult = mult;
        proto.bias_vec = bias;
        using Scratch = std::pair<std::vector<const T*>, std::vector<const T*>>;
        for_rows(
            N, OD, OH, nb, threads, [&] { return Scratch(std::vector<const T*>(size_t(maxr)), std::vector<const T*>(size_t(maxr))); },
            [&](Scratch& sc, int64_t n, int64_t od, int64_t oh, int64_t blk, int64_t row) {
                int64_t dlo, dhi, hlo, hhi;
                valid_taps(od, g.stride[0], g.pad[0], g.dilation[0], KD, D, dlo, dhi);
                valid_taps(oh, g.stride[1], g.pad[1], g.dilation[1], KH, H, hlo, hhi);
                int nr = 0;
                for (int64_t kd = dlo; kd < dhi; ++kd)
                    for (int64_t kh = hlo; kh < hhi; ++kh) {
                        const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dilation[0];
                        const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dilation[1];
                        sc.first[size_t(nr)] = x + ((n * D + id) * H + ih) * W * C;
                        sc.second[size_t(nr)] = taps + ((kd * KH + kh) * KW) * K;
                        ++nr;
                    }
                DwRow<T> r = proto;
                r.rows = sc.first.data();
                r.wrows = sc.second.data();
                r.nrows = nr;
                r.c0 = blk * bs;
                r.c1 = std::min(K, r.c0 + bs);
                r.y = y + (row * OW + c0) * K;
                f.dw_row_cl(r);
            });
    });
}

template void depthwise_ncdhw<float>(const ConvGeometry&, const float*, const float*, const float*, float*, float, float, int);
template void depthwise_ncdhw<double>(const ConvGeometry&, const double*, const double*, const double*, double*, double,
                                      double, int);
template void depthwise_ndhwc<float>(const ConvGeometry&, const float*, const float*, const float*, float*, float, float, int);
template void depthwise_ndhwc<double>(const ConvGeometry&, const double*, const double*, const double*, double*, double,
                                      double, int);

}  // namespace cnnkernels
