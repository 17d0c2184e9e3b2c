// Driver-side helpers shared by pool.cpp and depthwise.cpp (portable code only; never
// included by the ISA translation units): per-column window tables for the row
// kernels of pool_kernels.h and a row loop that avoids per-row divisions.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cnnkernels/geometry.h"
#include "cnnkernels/thread_pool.h"

namespace cnnkernels {

// 3 entries per output column plus the contiguous range [olo, ohi) of full windows.
struct ColTable {
    std::vector<int64_t> t;
    int64_t olo = 0, ohi = 0;
};

inline void finish_full_range(ColTable& c, const std::vector<char>& full, int64_t OW) {
    c.olo = c.ohi = OW;
    for (int64_t o = 0; o < OW; ++o)
        if (full[size_t(o)]) {
            if (c.olo == OW) c.olo = o;
            c.ohi = o + 1;
        }
    if (c.olo == OW) c.ohi = OW;
}

// Rows are run in chunks of at most kColumnChunk output columns, each with its own window table
// (25 bytes per column), so that a 1-D signal of millions of samples does not build a table of
// hundreds of MB. Chunk [c0, c1) is a row of c1 - c0 columns whose padding is pad - c0 * stride:
// its column o has the window of column c0 + o (every use of the padding is base = o * stride - pad).
constexpr int64_t kColumnChunk = int64_t(1) << 16;

// Calls f(c0, c1, chunk_pad) per chunk; `chunk` (columns per chunk, >= 1) for windows that are not a
// function of o * stride - pad (adaptive pooling: one chunk of the whole row).
template <class F>
inline void for_column_chunks(int64_t OW, int64_t stride, int64_t pad, F f, int64_t chunk = kColumnChunk) {
    for (int64_t c0 = 0; c0 < OW; c0 += chunk) f(c0, std::min(OW, c0 + chunk), pad - c0 * stride);
}

// Sliding windows with dilation (max pooling, depthwise): kw range [lo, hi) of taps
// inside [0, W) and the first position >= 0 on the window's grid.
inline ColTable tap_columns(int64_t OW, int64_t W, int64_t KW, int64_t s, int64_t pad, int64_t dil) {
    ColTable c;
    OW = std::max<int64_t>(OW, 0);
    c.t.resize(size_t(3 * OW));
    std::vector<char> full(static_cast<size_t>(OW));
    for (int64_t o = 0; o < OW; ++o) {
        const int64_t base = o * s - pad;
        int64_t lo, hi;
        detail::valid_out_range(KW, dil, base, W, lo, hi);
        c.t[size_t(3 * o)] = lo;
        c.t[size_t(3 * o + 1)] = hi;
        c.t[size_t(3 * o + 2)] = base >= 0 ? base : base + ((-base + dil - 1) / dil) * dil;
        full[size_t(o)] = lo == 0 && hi == KW;
    }
    finish_full_range(c, full, OW);
    return c;
}

// Average pooling windows: clipped [lo, hi) and the pool extent end - start with
// end = min(start + KW, W + pad_after).
inline ColTable avg_columns(int64_t OW, int64_t W, int64_t KW, int64_t s, int64_t pad, int64_t pad_after) {
    ColTable c;
    OW = std::max<int64_t>(OW, 0);
    c.t.resize(size_t(3 * OW));
    std::vector<char> full(static_cast<size_t>(OW));
    for (int64_t o = 0; o < OW; ++o) {
        const int64_t start = o * s - pad;
        const int64_t end = std::min(start + KW, W + pad_after);
        const int64_t lo = std::max<int64_t>(start, 0);
        const int64_t hi = std::max(lo, std::min(end, W));
        c.t[size_t(3 * o)] = lo;
        c.t[size_t(3 * o + 1)] = hi;
        c.t[size_t(3 * o + 2)] = end - start;
        full[size_t(o)] = start >= 0 && start + KW <= W;
    }
    finish_full_range(c, full, OW);
    return c;
}

// PyTorch's adaptive window of output o of `out` along an input of `in`: [floor(o*in/out),
// ceil((o+1)*in/out)).
inline void adaptive_bounds(int64_t o, int64_t in, int64_t out, int64_t& start, int64_t& end) {
    start = (o * in) / out;
    end = ((o + 1) * in + out - 1) / out;
}

// Adaptive windows of outputs o in [o0, o1) (entry o - o0: absolute input positions, so a chunk's
// table needs no shift); no fast interior.
inline ColTable adaptive_columns(int64_t o0, int64_t o1, int64_t OW, int64_t W) {
    ColTable c;
    const int64_t n = std::max<int64_t>(o1 - o0, 0);
    c.t.resize(size_t(3 * n));
    for (int64_t i = 0; i < n; ++i) {
        int64_t s, e;
        adaptive_bounds(o0 + i, W, OW, s, e);
        c.t[size_t(3 * i)] = s;
        c.t[size_t(3 * i + 1)] = std::max(s, e);
        c.t[size_t(3 * i + 2)] = e - s;
    }
    c.olo = c.ohi = n;
    return c;
}

// Calls f(state, plane, od, oh, blk, row) for every job of planes x OD x OH rows x nb
// channel blocks (row = (plane*OD + od)*OH + oh), in pieces over the threads (thread_pool.h);
// state = make_state() once per thread; each piece decomposes its first job once and
// then counts.
template <class S, class F>
void for_rows(int64_t planes, int64_t OD, int64_t OH, int64_t nb, int threads, S&& make_state, F&& f) {
    const int64_t jobs = planes * OD * OH * nb;
    if (jobs <= 0) return;
    parallel_ranges_state(threads, jobs, make_state, [&](auto& state, int64_t j0, int64_t j1) {
        int64_t blk = j0 % nb, row = j0 / nb;
        int64_t oh = row % OH, od = (row / OH) % OD, plane = row / (OH * OD);
        for (int64_t j = j0; j < j1; ++j) {
            f(state, plane, od, oh, blk, row);
            if (++blk == nb) {
                blk = 0;
                ++row;
                if (++oh == OH) {
                    oh = 0;
                    if (++od == OD) {
                        od = 0;
                        ++plane;
                    }
                }
            }
        }
    });
}

}  // namespace cnnkernels
