#include "cnnkernels/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cnnkernels/isa.h"
#include "cnnkernels/pool_kernels.h"
#include "cnnkernels/pool_windows.h"
#include "cnnkernels/thread_pool.h"

namespace cnnkernels {

const PoolKernels& active_pool_kernels() {
    static const PoolKernels* k = [] {
        const char* isa = active_isa_kernels().isa;
        const PoolKernels* t = nullptr;
        if (std::strcmp(isa, "avx512") == 0) t = pool_kernels_avx512();
        else if (std::strcmp(isa, "avx2") == 0) t = pool_kernels_avx2();
        return t ? t : pool_kernels_baseline();
    }();
    return *k;
}

namespace {

// Per-dim window description for one output index: input positions are
// base + k*step for k in [k_lo, k_hi), all inside [0, in). `first` is the first
// window position >= 0: PyTorch reports it as the index of a window whose values
// are all -inf (or which holds no input position at all).
struct Window {
    int64_t base, step, k_lo, k_hi, first;
};

std::vector<Window> sliding_windows(int64_t out, int64_t in, int64_t kernel, int64_t stride,
                                    int64_t pad, int64_t dil) {
    std::vector<Window> v(size_t(std::max<int64_t>(out, 0)));
    for (int64_t o = 0; o < out; ++o) {
        const int64_t base = o * stride - pad;
        // k*dil + base in [0, in)  <=>  k in [ceil(-base/dil), ceil((in-base)/dil)).
        int64_t lo, hi;
        detail::valid_out_range(kernel, dil, base, in, lo, hi);
        const int64_t first = base >= 0 ? base : base + ((-base + dil - 1) / dil) * dil;
        v[size_t(o)] = {base, dil, lo, hi, first};
    }
    return v;
}

// Windows of outputs [o0, o1) of `out` (entry o - o0).
std::vector<Window> adaptive_windows(int64_t out, int64_t in, int64_t o0, int64_t o1) {
    std::vector<Window> v(size_t(std::max<int64_t>(o1 - o0, 0)));
    for (int64_t o = o0; o < o1; ++o) {
        int64_t s, e;
        adaptive_bounds(o, in, out, s, e);
        v[size_t(o - o0)] = {s, 1, 0, std::max<int64_t>(e - s, 0), s};
    }
    return v;
}

// Shared max scan for the sliding and adaptive variants, output columns [c0, c1) (ww: their windows,
// entry ow - c0). Work is split over output rows (plane, od, oh) so few-plane problems still use every thread.
template <class T>
void max_scan(int64_t planes, const int64_t in[3], const int64_t out[3], const std::vector<Window>& wd,
              const std::vector<Window>& wh, const std::vector<Window>& ww, int64_t c0, int64_t c1, const T* x,
              T* y, int64_t* indices, int threads) {
    const int64_t H = in[1], W = in[2];
    const int64_t OD = out[0], OH = out[1], OW = out[2];
    const int64_t in_plane = in[0] * H * W;
    const int64_t rows = planes * OD * OH;
    if (rows <= 0 || OW <= 0) return;
    const T neg_inf = -std::numeric_limits<T>::infinity();
    parallel_for(threads, rows, [&](int64_t row, int) {
        const int64_t oh = row % OH, od = (row / OH) % OD, plane = row / (OH * OD);
        const T* __restrict xp = x + plane * in_plane;
        T* __restrict yr = y + row * OW;
        int64_t* __restrict ir = indices ? indices + row * OW : nullptr;
        const Window& a = wd[size_t(od)];
        const Window& b = wh[size_t(oh)];
        for (int64_t ow = c0; ow < c1; ++ow) {
            const Window& c = ww[size_t(ow - c0)];
            T best = neg_inf;
            int64_t idx = (a.first * H + b.first) * W + c.first;
            if (a.k_lo < a.k_hi && b.k_lo < b.k_hi && c.k_lo < c.k_hi) {
                for (int64_t kd = a.k_lo; kd < a.k_hi; ++kd) {
                    const int64_t id = a.base + kd * a.step;
                    for (int64_t kh = b.k_lo; kh < b.k_hi; ++kh) {
                        const int64_t rowpos = (id * H + b.base + kh * b.step) * W;
                        for (int64_t kw = c.k_lo; kw < c.k_hi; ++kw) {
                            const int64_t pos = rowpos + c.base + kw * c.step;
                            const T v = xp[pos];
                            if (v > best || std::isnan(v)) {
                                best = v;
                                idx = pos;
                            }
                        }
                    }
                }
            }
            yr[ow] = best;
            if (ir) ir[ow] = idx;
        }
    });
}

}  // namespace

namespace {

int64_t max_valid(const std::vector<Window>& v) {
    int64_t m = 1;
    for (const Window& w : v) m = std::max(m, w.k_hi - w.k_lo);
    return m;
}

// Fast path: each output row (plane, od, oh) is one call of the ISA row kernel,
// which vectorizes across W; the window's valid (d, h) rows are listed in scan order.
// Channel blocks per output row for the channels-last kernels: enough jobs for
// every thread when there are few rows, blocks of at least 64 channels.
struct ChannelBlocks {
    int64_t n, size;
};
ChannelBlocks channel_blocks(int64_t rows, int64_t C, int threads) {
    if (C <= 0) return {1, 1};  // NCDHW (C = 0): one "channel", element stride 1
    int64_t n = 1;
    while (rows * n < 4 * int64_t(threads) && C / (n * 2) >= 64) n *= 2;
    int64_t size = (C + n - 1) / n;
    size = (size + 63) / 64 * 64;
    return {(C + size - 1) / size, size};
}

template <class T>
struct RowScratch {
    std::vector<const T*> rows;
    std::vector<int64_t> pos;
};

// Fast path: each output row (plane, od, oh) is one call of the ISA row kernel,
// which vectorizes across W (NCDHW) or C (NDHWC); the window's valid (d, h) rows
// are listed in scan order.
// channels == 0: NCDHW planes (g.planes = N*C). channels > 0: NDHWC with
// g.planes = N and `channels` contiguous channels per position.
template <class T>
void max_rows(const PoolGeometry& g, const T* x, T* y, int64_t* indices, int threads, int64_t channels = 0) {
    const int64_t H = g.in[1], W = g.in[2];
    const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
    const int64_t rows = g.planes * OD * OH;
    if (rows <= 0 || OW <= 0) return;
    const int64_t CS = channels > 0 ? channels : 1;
    const ChannelBlocks cb = channel_blocks(rows, channels, threads);
    const auto wd = sliding_windows(OD, g.in[0], g.kernel[0], g.stride[0], g.pad_before[0], g.dilation[0]);
    const auto wh = sliding_windows(OH, H, g.kernel[1], g.stride[1], g.pad_before[1], g.dilation[1]);
    const size_t maxr = size_t(max_valid(wd) * max_valid(wh));
    const int64_t in_plane = g.in[0] * H * W;
    const auto fn = channels > 0 ? pool_fns<T>(active_pool_kernels()).max_row_cl : pool_fns<T>(active_pool_kernels()).max_row;
    for_column_chunks(OW, g.stride[2], g.pad_before[2], [&](int64_t c0, int64_t c1, int64_t pad) {
        const ColTable cols = tap_columns(c1 - c0, W, g.kernel[2], g.stride[2], pad, g.dilation[2]);
        PoolRow<T> proto{};
        proto.W = W;
        proto.OW = c1 - c0;
        proto.KW = g.kernel[2];
        proto.stride = g.stride[2];
        proto.pad = pad;
        proto.dil = g.dilation[2];
        proto.C = CS;
        proto.wtab = cols.t.data();
        proto.olo = cols.olo;
        proto.ohi = cols.ohi;
        for_rows(
            g.planes, OD, OH, cb.n, threads,
            [&] { return RowScratch<T>{std::vector<const T*>(maxr), std::vector<int64_t>(maxr)}; },
            [&](RowScratch<T>& sc, int64_t plane, int64_t od, int64_t oh, int64_t blk, int64_t row) {
                const Window& a = wd[size_t(od)];
                const Window& b = wh[size_t(oh)];
                int n = 0;
                for (int64_t kd = a.k_lo; kd < a.k_hi; ++kd)
                    for (int64_t kh = b.k_lo; kh < b.k_hi; ++kh) {
                        const int64_t p = ((a.base + kd * a.step) * H + b.base + kh * b.step) * W;
                        sc.rows[size_t(n)] = x + (plane * in_plane + p) * CS;
                        sc.pos[size_t(n)] = p;
                        ++n;
                    }
                PoolRow<T> r = proto;
                r.rows = sc.rows.data();
                r.row_pos = sc.pos.data();
                r.nrows = n;
                r.first_pos = (a.first * H + b.first) * W;
                r.c0 = channels > 0 ? blk * cb.size : 0;
                r.c1 = channels > 0 ? std::min(channels, r.c0 + cb.size) : 1;
                r.y = y + (row * OW + c0) * CS;
                r.idx = indices ? indices + (row * OW + c0) * CS : nullptr;
                fn(r);
            });
    });
}

}  // namespace

namespace {

// The separable plane kernel takes 2-D NCHW windows (depth 1, no indices, no dilation) with
// horizontal stride 1 or 2, at least one vector (of any ISA) of outputs per row and at
// least one plane per thread; it reduces each input row once instead of once per window row.
template <class T>
bool sep_plane_ok(const PoolGeometry& g, int threads) {
    return g.in[0] == 1 && g.out[0] == 1 && g.kernel[0] == 1 && g.pad_before[0] == 0 && g.dilation[1] == 1 &&
           g.dilation[2] == 1 && (g.stride[2] == 1 || g.stride[2] == 2) && g.kernel[1] <= 16 && g.kernel[2] <= 16 &&
           g.out[1] > 0 && g.out[2] >= int64_t(64 / sizeof(T)) && g.planes >= threads &&
           // bounded workspace: rows of a few thousand columns take KBs; a 1-D signal of millions of samples
           // would take hundreds of MB per thread here, and runs in the row kernels' column chunks instead
           sep_plane_scratch(g.kernel[1], g.kernel[2], g.in[2], g.out[2], g.stride[2], g.pad_before[2]) *
                   int64_t(sizeof(T)) <= (int64_t(4) << 20);
}

// One sep_plane call per plane, split over the threads; rows: valid input rows per output row.
template <class T>
void sep_planes(const PoolGeometry& g, bool is_max, const std::vector<int64_t>& rows, const std::vector<T>& row_inv,
                const std::vector<T>& col_inv, const T* x, T* y, int threads) {
    const int64_t H = g.in[1], W = g.in[2], OH = g.out[1], OW = g.out[2];
    SepPlane<T> proto{};
    proto.H = H;
    proto.W = W;
    proto.OH = OH;
    proto.OW = OW;
    proto.KH = g.kernel[1];
    proto.KW = g.kernel[2];
    proto.sh = g.stride[1];
    proto.sw = g.stride[2];
    proto.pad_w = g.pad_before[2];
    proto.rows = rows.data();
    proto.row_inv = row_inv.data();
    proto.col_inv = col_inv.data();
    proto.is_max = is_max;
    const auto fn = pool_fns<T>(active_pool_kernels()).sep_plane;
    const size_t scratch = size_t(sep_plane_scratch(proto.KH, proto.KW, W, OW, proto.sw, proto.pad_w));
    parallel_for_state(threads, g.planes, [&] { return std::vector<T>(scratch); }, [&](std::vector<T>& buf, int64_t p) {
        SepPlane<T> a = proto;
        a.x = x + p * H * W;
        a.y = y + p * OH * OW;
        a.scratch = buf.data();
        fn(a);
    });
}

template <class T>
void max_sep_planes(const PoolGeometry& g, const T* x, T* y, int threads) {
    const auto wh = sliding_windows(g.out[1], g.in[1], g.kernel[1], g.stride[1], g.pad_before[1], 1);
    std::vector<int64_t> rows;
    for (const Window& w : wh) {
        rows.push_back(w.base + w.k_lo);
        rows.push_back(w.base + std::max(w.k_lo, w.k_hi));
    }
    const std::vector<T> unused(size_t(g.out[2]) + 64, T(1));
    sep_planes<T>(g, true, rows, unused, unused, x, y, threads);
}

}  // namespace

template <class T>
void max_pool(const PoolGeometry& g, const T* x, T* y, int64_t* indices, int threads) {
    if (!indices && sep_plane_ok<T>(g, threads)) {
        max_sep_planes<T>(g, x, y, threads);
        return;
    }
    max_rows<T>(g, x, y, indices, threads);
}

template <class T>
void adaptive_max_pool(int64_t planes, const int64_t in[3], const int64_t out[3], const T* x, T* y,
                       int64_t* indices, int threads) {
    bool divisible = true;
    for (int d = 0; d < 3; ++d) divisible = divisible && out[d] > 0 && in[d] > 0 && in[d] % out[d] == 0;
    if (divisible) {  // the adaptive windows are then plain kernel = stride = in / out windows
        PoolGeometry g{};
        g.planes = planes;
        for (int d = 0; d < 3; ++d) {
            g.in[d] = in[d];
            g.out[d] = out[d];
            g.kernel[d] = g.stride[d] = in[d] / out[d];
            g.dilation[d] = 1;
        }
        max_rows<T>(g, x, y, indices, threads);
        return;
    }
    const auto wd = adaptive_windows(out[0], in[0], 0, out[0]);
    const auto wh = adaptive_windows(out[1], in[1], 0, out[1]);
    // W windows per chunk of columns (bounded workspace: 40 bytes per output column).
    for_column_chunks(out[2], 0, 0, [&](int64_t c0, int64_t c1, int64_t) {
        max_scan<T>(planes, in, out, wd, wh, adaptive_windows(out[2], in[2], c0, c1), c0, c1, x, y, indices, threads);
    });
}

namespace {

// Clipped [lo, hi) ranges plus the divisor factor for each output index of one dim.
struct AvgRange {
    int64_t lo, hi, pool_extent;
};

// Adaptive windows of outputs [o0, o1) along one dim (entry o - o0), pool_extent their size.
std::vector<AvgRange> adaptive_ranges(int64_t out, int64_t in, int64_t o0, int64_t o1) {
    std::vector<AvgRange> r(size_t(std::max<int64_t>(o1 - o0, 0)));
    for (int64_t o = o0; o < o1; ++o) {
        int64_t s, e;
        adaptive_bounds(o, in, out, s, e);
        r[size_t(o - o0)] = {s, std::max(s, e), e - s};
    }
    return r;
}

// Adaptive average, output columns [c0, c1) (rw: their ranges, entry ow - c0): sums the window and
// divides by its size, formed in T as (d * h) * w like the row kernels' divisors.
template <class T>
void avg_scan(int64_t planes, const int64_t in[3], const int64_t out[3], const std::vector<AvgRange>& rd,
              const std::vector<AvgRange>& rh, const std::vector<AvgRange>& rw, int64_t c0, int64_t c1, const T* x,
              T* y, int threads) {
    const int64_t H = in[1], W = in[2];
    const int64_t OD = out[0], OH = out[1], OW = out[2];
    const int64_t in_plane = in[0] * H * W;
    const int64_t rows = planes * OD * OH;
    if (rows <= 0 || OW <= 0) return;
    parallel_for(threads, rows, [&](int64_t row, int) {
        const int64_t oh = row % OH, od = (row / OH) % OD, plane = row / (OH * OD);
        const T* __restrict xp = x + plane * in_plane;
        T* __restrict yr = y + row * OW;
        const AvgRange& a = rd[size_t(od)];
        const AvgRange& b = rh[size_t(oh)];
        for (int64_t ow = c0; ow < c1; ++ow) {
            const AvgRange& c = rw[size_t(ow - c0)];
            T sum = T(0);
            for (int64_t id = a.lo; id < a.hi; ++id)
                for (int64_t ih = b.lo; ih < b.hi; ++ih) {
                    const T* __restrict xr = xp + (id * H + ih) * W;
                    for (int64_t iw = c.lo; iw < c.hi; ++iw) sum += xr[iw];
                }
            const T div = T(a.hi - a.lo) * T(b.hi - b.lo) * T(c.hi - c.lo);
            // Explicit NaN instead of dividing by zero: same value as 0/0 but no
            // reliance on the FP environment.
            yr[ow] = div == T(0) ? std::numeric_limits<T>::quiet_NaN() : sum / div;
        }
    });
}

// Fast path: one ISA row-kernel call per output row (plane, od, oh), vectorized
// across W (NCDHW) or C (NDHWC). Products of the divisor are formed in T in (d, h, w)
// order: exact for any realistic window, no int64 overflow for absurd ones. adaptive:
// rd / rh are adaptive ranges and W uses adaptive windows (per column chunk, as all W windows).
template <class T>
void avg_rows(const PoolGeometry& g, const std::vector<AvgRange>& rd, const std::vector<AvgRange>& rh,
              bool count_include_pad, int64_t divisor_override, bool adaptive, const T* x, T* y, int threads,
              int64_t channels = 0) {
    const int64_t H = g.in[1], W = g.in[2];
    const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
    const int64_t rows = g.planes * OD * OH;
    if (rows <= 0 || OW <= 0) return;
    const int64_t CS = channels > 0 ? channels : 1;
    int64_t md = 1, mh = 1;
    for (const AvgRange& a : rd) md = std::max(md, a.hi - a.lo);
    for (const AvgRange& a : rh) mh = std::max(mh, a.hi - a.lo);
    const size_t maxr = size_t(md * mh);
    const int64_t in_plane = g.in[0] * H * W;
    const PoolFns<T>& f = pool_fns<T>(active_pool_kernels());
    const auto fn = channels > 0 ? f.avg_row_cl : f.avg_row;
    // Channels last, 3-row windows at stride 1 (avg 3x3 s1): a job is a pair of output rows, which share two
    // input rows (avg_row2_cl; alternating processes, 1 thread, 64x56x56: 1.58x, with the NV 4 blocks of
    // ck_cl_s1k3_block; in-process against our NCHW 0.77x -> 1.06x at 1 thread, 0.89x -> 1.08x at 2).
    const int64_t per_job = channels > 0 && !adaptive && md == 1 && g.kernel[1] == 3 && g.stride[1] == 1 && OH >= 2
                                ? 2 : 1;
    const int64_t OHJ = (OH + per_job - 1) / per_job;
    const ChannelBlocks cb = channel_blocks(g.planes * OD * OHJ, channels, threads);
    for_column_chunks(OW, g.stride[2], g.pad_before[2], [&](int64_t c0, int64_t c1, int64_t pad) {
        const ColTable cols = adaptive ? adaptive_columns(c0, c1, OW, W)
                                       : avg_columns(c1 - c0, W, g.kernel[2], g.stride[2], pad, g.pad_after[2]);
        PoolRow<T> proto{};
        proto.W = W;
        proto.OW = c1 - c0;
        proto.KW = g.kernel[2];
        proto.stride = g.stride[2];
        proto.pad = pad;
        proto.dil = 1;
        proto.pad_after = g.pad_after[2];
        proto.C = CS;
        proto.div_override = adaptive ? T(0) : T(divisor_override);
        proto.count_include_pad = adaptive ? false : count_include_pad;
        proto.wtab = cols.t.data();
        proto.olo = cols.olo;
        proto.ohi = cols.ohi;
        // Output row (plane, od, oh), channel block blk, its window rows listed in rp.
        auto row_of = [&](std::vector<const T*>& rp, int64_t plane, int64_t od, int64_t oh, int64_t blk) {
            const AvgRange& a = rd[size_t(od)];
            const AvgRange& b = rh[size_t(oh)];
            int n = 0;
            for (int64_t id = a.lo; id < a.hi; ++id)
                for (int64_t ih = b.lo; ih < b.hi; ++ih) rp[size_t(n++)] = x + (plane * in_plane + (id * H + ih) * W) * CS;
            PoolRow<T> r = proto;
            r.rows = rp.data();
            r.nrows = n;
            r.c0 = channels > 0 ? blk * cb.size : 0;
            r.c1 = channels > 0 ? std::min(channels, r.c0 + cb.size) : 1;
            r.div_incl = T(a.pool_extent) * T(b.pool_extent);
            r.div_excl = T(a.hi - a.lo) * T(b.hi - b.lo);
            r.y = y + (((plane * OD + od) * OH + oh) * OW + c0) * CS;
            return r;
        };
        for_rows(
            g.planes, OD, OHJ, cb.n, threads, [&] { return std::vector<const T*>(maxr); },
            [&](std::vector<const T*>& rp, int64_t plane, int64_t od, int64_t j, int64_t blk, int64_t) {
                const int64_t oh = j * per_job;
                const PoolRow<T> r = row_of(rp, plane, od, oh, blk);
                if (per_job == 2 && oh + 1 < OH) {
                    const AvgRange &a = rd[size_t(od)], &b = rh[size_t(oh)], &b2 = rh[size_t(oh + 1)];
                    if (a.hi - a.lo == 1 && b.hi - b.lo == 3 && b2.lo == b.lo + 1 && b2.hi == b.hi + 1 &&
                        b2.pool_extent == b.pool_extent &&
                        f.avg_row2_cl(r, r.rows[2] + W * CS, r.y + OW * CS))  // next: the input row after rows[2]
                        return;
                }
                fn(r);
                if (per_job == 2 && oh + 1 < OH) fn(row_of(rp, plane, od, oh + 1, blk));
            });
    });
}

}  // namespace

// Windows of each output index along dimensions [0, dims) (the W ones only for the separable path:
// the row kernels take W windows from their per-chunk tables).
static void avg_ranges(const PoolGeometry& g, std::vector<AvgRange> r[3], int dims = 3) {
    for (int d = 0; d < dims; ++d) {
        r[d].resize(size_t(std::max<int64_t>(g.out[d], 0)));
        for (int64_t o = 0; o < g.out[d]; ++o) {
            const int64_t start = o * g.stride[d] - g.pad_before[d];
            const int64_t end = std::min(start + g.kernel[d], g.in[d] + g.pad_after[d]);
            const int64_t lo = std::max<int64_t>(start, 0);
            const int64_t hi = std::max(lo, std::min(end, g.in[d]));
            r[d][size_t(o)] = {lo, hi, end - start};
        }
    }
}

template <class T>
void avg_pool(const PoolGeometry& g, bool count_include_pad, int64_t divisor_override, const T* x,
              T* y, int threads) {
    std::vector<AvgRange> r[3];
    const bool sep = sep_plane_ok<T>(g, threads);
    avg_ranges(g, r, sep ? 3 : 2);
    if (sep) {
        // divisor = row factor * column factor, the products avg_rows forms: (d * h) * w; the
        // kernel multiplies by their reciprocals (NaN for zero: a zero divisor gives NaN).
        const auto inverse = [](T d) { return d == T(0) ? std::numeric_limits<T>::quiet_NaN() : T(1) / d; };
        std::vector<int64_t> rows;
        std::vector<T> row_inv, col_inv;
        const AvgRange& d = r[0][0];
        for (const AvgRange& h : r[1]) {
            rows.push_back(h.lo);
            rows.push_back(h.hi);
            row_inv.push_back(inverse(divisor_override ? T(divisor_override)
                                      : count_include_pad ? T(d.pool_extent) * T(h.pool_extent)
                                                          : T(d.hi - d.lo) * T(h.hi - h.lo)));
        }
        for (const AvgRange& w : r[2])
            col_inv.push_back(inverse(divisor_override ? T(1) : count_include_pad ? T(w.pool_extent) : T(w.hi - w.lo)));
        sep_planes<T>(g, false, rows, row_inv, col_inv, x, y, threads);
        return;
    }
    avg_rows<T>(g, r[0], r[1], count_include_pad, divisor_override, false, x, y, threads);
}

template <class T>
void adaptive_avg_pool(int64_t planes, const int64_t in[3], const int64_t out[3], const T* x, T* y,
                       int threads) {
    if (planes <= 0 || out[0] <= 0 || out[1] <= 0 || out[2] <= 0) return;
    if (out[0] == 1 && out[1] == 1 && out[2] == 1) {  // global average: one contiguous sum per plane
        const int64_t n = in[0] * in[1] * in[2];
        const T div = T(in[0]) * T(in[1]) * T(in[2]);
        const auto fn = pool_fns<T>(active_pool_kernels()).plane_mean;
        const int64_t chunk = 64;
        const int64_t jobs = (planes + chunk - 1) / chunk;
        parallel_for(threads, jobs, [&](int64_t j, int) {
            const int64_t p0 = j * chunk, p1 = std::min(planes, p0 + chunk);
            fn(x + p0 * n, n, p1 - p0, div, y + p0);
        });
        return;
    }
    bool divisible = true;
    for (int d = 0; d < 3; ++d) divisible = divisible && in[d] > 0 && in[d] % out[d] == 0;
    if (divisible) {  // kernel = stride = in / out, no padding: the same divisor products
        PoolGeometry g{};
        g.planes = planes;
        for (int d = 0; d < 3; ++d) {
            g.in[d] = in[d];
            g.out[d] = out[d];
            g.kernel[d] = g.stride[d] = in[d] / out[d];
            g.dilation[d] = 1;
        }
        avg_pool<T>(g, false, 0, x, y, threads);
        return;
    }
    const auto rd = adaptive_ranges(out[0], in[0], 0, out[0]), rh = adaptive_ranges(out[1], in[1], 0, out[1]);
    // W ranges per chunk of columns (bounded workspace: 24 bytes per output column). (Through avg_rows'
    // row kernels, as channels-last does, this ran 0.64-0.78x as fast.)
    for_column_chunks(out[2], 0, 0, [&](int64_t c0, int64_t c1, int64_t) {
        avg_scan<T>(planes, in, out, rd, rh, adaptive_ranges(out[2], in[2], c0, c1), c0, c1, x, y, threads);
    });
}

template <class T>
void max_pool_ndhwc(const PoolGeometry& g, int64_t C, const T* x, T* y, int64_t* indices, int threads) {
    if (C <= 0) return;
    max_rows<T>(g, x, y, indices, threads, C);
}

template <class T>
void avg_pool_ndhwc(const PoolGeometry& g, int64_t C, bool count_include_pad, int64_t divisor_override, const T* x,
                    T* y, int threads) {
    if (C <= 0) return;
    std::vector<AvgRange> r[3];
    avg_ranges(g, r, 2);
    avg_rows<T>(g, r[0], r[1], count_include_pad, divisor_override, false, x, y, threads, C);
}

template <class T>
void adaptive_avg_pool_ndhwc(int64_t N, const int64_t in[3], const int64_t out[3], int64_t C, const T* x, T* y,
                             int threads) {
    if (C <= 0) return;
    if (N > 0 && out[0] == 1 && out[1] == 1 && out[2] == 1) {  // global average: stream the positions per image
        const int64_t n = in[0] * in[1] * in[2];
        const T div = T(in[0]) * T(in[1]) * T(in[2]);
        const auto fn = pool_fns<T>(active_pool_kernels()).channel_mean;
        // Channel chunks of 256 (whole register blocks), enough of them to feed every thread.
        const int64_t chunk = std::min<int64_t>(C, 256), per_image = (C + chunk - 1) / chunk;
        parallel_for(threads, N * per_image, [&](int64_t j, int) {
            const int64_t img = j / per_image, c0 = (j % per_image) * chunk;
            fn(x + img * n * C, n, C, c0, std::min(C, c0 + chunk), div, y + img * C);
        });
        return;
    }
    PoolGeometry g{};
    g.planes = N;
    for (int d = 0; d < 3; ++d) {
        g.in[d] = in[d];
        g.out[d] = out[d];
        g.kernel[d] = g.stride[d] = g.dilation[d] = 1;
    }
    // D and H ranges; avg_rows takes the W windows per column chunk.
    avg_rows<T>(g, adaptive_ranges(out[0], in[0], 0, out[0]), adaptive_ranges(out[1], in[1], 0, out[1]), false, 0,
                true, x, y, threads, C);
}

template void max_pool_ndhwc<float>(const PoolGeometry&, int64_t, const float*, float*, int64_t*, int);
template void max_pool_ndhwc<double>(const PoolGeometry&, int64_t, const double*, double*, int64_t*, int);
template void avg_pool_ndhwc<float>(const PoolGeometry&, int64_t, bool, int64_t, const float*, float*, int);
template void avg_pool_ndhwc<double>(const PoolGeometry&, int64_t, bool, int64_t, const double*, double*, int);
template void adaptive_avg_pool_ndhwc<float>(int64_t, const int64_t[3], const int64_t[3], int64_t, const float*, float*, int);
template void adaptive_avg_pool_ndhwc<double>(int64_t, const int64_t[3], const int64_t[3], int64_t, const double*, double*,
                                              int);

template void max_pool<float>(const PoolGeometry&, const float*, float*, int64_t*, int);
template void max_pool<double>(const PoolGeometry&, const double*, double*, int64_t*, int);
template void avg_pool<float>(const PoolGeometry&, bool, int64_t, const float*, float*, int);
template void avg_pool<double>(const PoolGeometry&, bool, int64_t, const double*, double*, int);
template void adaptive_avg_pool<float>(int64_t, const int64_t[3], const int64_t[3], const float*, float*, int);
template void adaptive_avg_pool<double>(int64_t, const int64_t[3], const int64_t[3], const double*, double*, int);
template void adaptive_max_pool<float>(int64_t, const int64_t[3], const int64_t[3], const float*, float*, int64_t*, int);
template void adaptive_max_pool<double>(int64_t, const int64_t[3], const int64_t[3], const double*, double*, int64_t*, int);

}  // namespace cnnkernels
