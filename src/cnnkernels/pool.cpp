#include "cnnkernels/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace cnnkernels {
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

std::vector<Window> adaptive_windows(int64_t out, int64_t in) {
    std::vector<Window> v(size_t(std::max<int64_t>(out, 0)));
    for (int64_t o = 0; o < out; ++o) {
        const int64_t s = (o * in) / out, e = ((o + 1) * in + out - 1) / out;
        v[size_t(o)] = {s, 1, 0, std::max<int64_t>(e - s, 0), s};
    }
    return v;
}

// Shared max scan for the sliding and adaptive variants. Work is split over
// output rows (plane, od, oh) so few-plane problems still use every thread.
template <class T>
void max_scan(int64_t planes, const int64_t in[3], const int64_t out[3], const std::vector<Window>& wd,
              const std::vector<Window>& wh, const std::vector<Window>& ww, const T* x, T* y,
              int64_t* indices, int threads) {
    const int64_t H = in[1], W = in[2];
    const int64_t OD = out[0], OH = out[1], OW = out[2];
    const int64_t in_plane = in[0] * H * W;
    const int64_t rows = planes * OD * OH;
    if (rows <= 0 || OW <= 0) return;
    const T neg_inf = -std::numeric_limits<T>::infinity();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t oh = row % OH, od = (row / OH) % OD, plane = row / (OH * OD);
        const T* __restrict xp = x + plane * in_plane;
        T* __restrict yr = y + row * OW;
        int64_t* __restrict ir = indices ? indices + row * OW : nullptr;
        const Window& a = wd[size_t(od)];
        const Window& b = wh[size_t(oh)];
        for (int64_t ow = 0; ow < OW; ++ow) {
            const Window& c = ww[size_t(ow)];
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
    }
}

}  // namespace

template <class T>
void max_pool(const PoolGeometry& g, const T* x, T* y, int64_t* indices, int threads) {
    const auto wd = sliding_windows(g.out[0], g.in[0], g.kernel[0], g.stride[0], g.pad_before[0], g.dilation[0]);
    const auto wh = sliding_windows(g.out[1], g.in[1], g.kernel[1], g.stride[1], g.pad_before[1], g.dilation[1]);
    const auto ww = sliding_windows(g.out[2], g.in[2], g.kernel[2], g.stride[2], g.pad_before[2], g.dilation[2]);
    max_scan<T>(g.planes, g.in, g.out, wd, wh, ww, x, y, indices, threads);
}

template <class T>
void adaptive_max_pool(int64_t planes, const int64_t in[3], const int64_t out[3], const T* x, T* y,
                       int64_t* indices, int threads) {
    const auto wd = adaptive_windows(out[0], in[0]);
    const auto wh = adaptive_windows(out[1], in[1]);
    const auto ww = adaptive_windows(out[2], in[2]);
    max_scan<T>(planes, in, out, wd, wh, ww, x, y, indices, threads);
}

namespace {

// Clipped [lo, hi) ranges plus the divisor factor for each output index of one dim.
struct AvgRange {
    int64_t lo, hi, pool_extent;
};

// Sums the clipped window and divides by the per-dim-product divisor, which the
// caller supplies through `divisor_of` (it differs between avg and adaptive avg).
template <class T, class Divisor>
void avg_scan(int64_t planes, const int64_t in[3], const int64_t out[3], const std::vector<AvgRange>& rd,
              const std::vector<AvgRange>& rh, const std::vector<AvgRange>& rw, Divisor divisor_of,
              const T* x, T* y, int threads) {
    const int64_t H = in[1], W = in[2];
    const int64_t OD = out[0], OH = out[1], OW = out[2];
    const int64_t in_plane = in[0] * H * W;
    const int64_t rows = planes * OD * OH;
    if (rows <= 0 || OW <= 0) return;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t oh = row % OH, od = (row / OH) % OD, plane = row / (OH * OD);
        const T* __restrict xp = x + plane * in_plane;
        T* __restrict yr = y + row * OW;
        const AvgRange& a = rd[size_t(od)];
        const AvgRange& b = rh[size_t(oh)];
        for (int64_t ow = 0; ow < OW; ++ow) {
            const AvgRange& c = rw[size_t(ow)];
            T sum = T(0);
            for (int64_t id = a.lo; id < a.hi; ++id)
                for (int64_t ih = b.lo; ih < b.hi; ++ih) {
                    const T* __restrict xr = xp + (id * H + ih) * W;
                    for (int64_t iw = c.lo; iw < c.hi; ++iw) sum += xr[iw];
                }
            const T div = divisor_of(a, b, c);
            // Explicit NaN instead of dividing by zero: same value as 0/0 but no
            // reliance on the FP environment.
            yr[ow] = div == T(0) ? std::numeric_limits<T>::quiet_NaN() : sum / div;
        }
    }
}

}  // namespace

template <class T>
void avg_pool(const PoolGeometry& g, bool count_include_pad, int64_t divisor_override, const T* x,
              T* y, int threads) {
    std::vector<AvgRange> r[3];
    for (int d = 0; d < 3; ++d) {
        r[d].resize(size_t(std::max<int64_t>(g.out[d], 0)));
        for (int64_t o = 0; o < g.out[d]; ++o) {
            const int64_t start = o * g.stride[d] - g.pad_before[d];
            const int64_t end = std::min(start + g.kernel[d], g.in[d] + g.pad_after[d]);
            const int64_t lo = std::max<int64_t>(start, 0);
            const int64_t hi = std::max(lo, std::min(end, g.in[d]));
            r[d][size_t(o)] = {lo, hi, end - start};
        }
    }
    // Products are formed in T: exact for any realistic window, and no int64
    // overflow for absurd geometries.
    auto divisor_of = [=](const AvgRange& a, const AvgRange& b, const AvgRange& c) -> T {
        if (divisor_override != 0) return T(divisor_override);
        if (count_include_pad) return T(a.pool_extent) * T(b.pool_extent) * T(c.pool_extent);
        return T(a.hi - a.lo) * T(b.hi - b.lo) * T(c.hi - c.lo);
    };
    avg_scan<T>(g.planes, g.in, g.out, r[0], r[1], r[2], divisor_of, x, y, threads);
}

template <class T>
void adaptive_avg_pool(int64_t planes, const int64_t in[3], const int64_t out[3], const T* x, T* y,
                       int threads) {
    std::vector<AvgRange> r[3];
    for (int d = 0; d < 3; ++d) {
        r[d].resize(size_t(std::max<int64_t>(out[d], 0)));
        for (int64_t o = 0; o < out[d]; ++o) {
            const int64_t s = (o * in[d]) / out[d], e = ((o + 1) * in[d] + out[d] - 1) / out[d];
            r[d][size_t(o)] = {s, std::max(s, e), e - s};
        }
    }
    auto divisor_of = [](const AvgRange& a, const AvgRange& b, const AvgRange& c) -> T {
        return T(a.hi - a.lo) * T(b.hi - b.lo) * T(c.hi - c.lo);
    };
    avg_scan<T>(planes, in, out, r[0], r[1], r[2], divisor_of, x, y, threads);
}

template void max_pool<float>(const PoolGeometry&, const float*, float*, int64_t*, int);
template void max_pool<double>(const PoolGeometry&, const double*, double*, int64_t*, int);
template void avg_pool<float>(const PoolGeometry&, bool, int64_t, const float*, float*, int);
template void avg_pool<double>(const PoolGeometry&, bool, int64_t, const double*, double*, int);
template void adaptive_avg_pool<float>(int64_t, const int64_t[3], const int64_t[3], const float*, float*, int);
template void adaptive_avg_pool<double>(int64_t, const int64_t[3], const int64_t[3], const double*, double*, int);
template void adaptive_max_pool<float>(int64_t, const int64_t[3], const int64_t[3], const float*, float*, int64_t*, int);
template void adaptive_max_pool<double>(int64_t, const int64_t[3], const int64_t[3], const double*, double*, int64_t*, int);

}  // namespace cnnkernels
