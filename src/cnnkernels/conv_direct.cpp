#include "cnnkernels/conv_direct.h"

#include <algorithm>
#include <vector>

#include "cnnkernels/thread_pool.h"

namespace cnnkernels {

namespace {

// y_row[ow] += sum_kw w[kw] * x_row[ow*sw + kw*dw - pw] over the valid ow of
// each tap ([lo[kw], hi[kw])). The row stays in L1 while all taps are applied.
// For the common stride-1, 3-tap case the interior [fused_lo, fused_hi), where
// every tap is valid, is done in one pass so y is loaded and stored once
// instead of three times.
template <class T>
inline void accumulate_row(T* __restrict yr, const T* __restrict xr, const T* __restrict wt, int64_t KW,
                           int64_t sw, int64_t dw, int64_t pw, const int64_t* lo, const int64_t* hi,
                           int64_t fused_lo, int64_t fused_hi) {
    if (sw == 1 && KW == 3 && fused_lo < fused_hi) {
        const T w0 = wt[0], w1 = wt[1], w2 = wt[2];
        // Pointers start at the first element they read, so no out-of-range
        // pointer is formed.
        const T* __restrict x0 = xr + (fused_lo - pw);
        const T* __restrict x1 = xr + (fused_lo + dw - pw);
        const T* __restrict x2 = xr + (fused_lo + 2 * dw - pw);
        T* __restrict ys = yr + fused_lo;
        const int64_t len = fused_hi - fused_lo;
        for (int64_t i = 0; i < len; ++i) ys[i] += w0 * x0[i] + w1 * x1[i] + w2 * x2[i];
        for (int64_t kw = 0; kw < 3; ++kw) {
            const T wv = wt[kw];
            const int64_t off = kw * dw - pw;
            for (int64_t ow = lo[kw]; ow < std::min(hi[kw], fused_lo); ++ow) yr[ow] += wv * xr[ow + off];
            for (int64_t ow = std::max(lo[kw], fused_hi); ow < hi[kw]; ++ow) yr[ow] += wv * xr[ow + off];
        }
        return;
    }
    for (int64_t kw = 0; kw < KW; ++kw) {
        const T wv = wt[kw];
        const int64_t off = kw * dw - pw;
        const int64_t l = lo[kw], h = hi[kw];
        if (sw == 1) {
            const T* __restrict xs = xr + (l + off);
            T* __restrict ys = yr + l;
            const int64_t len = h - l;
            for (int64_t i = 0; i < len; ++i) ys[i] += wv * xs[i];
        } else {
            for (int64_t ow = l; ow < h; ++ow) yr[ow] += wv * xr[ow * sw + off];
        }
    }
}

}  // namespace

template <class T>
void conv_direct(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, int threads, double act_min,
                 double act_max) {
    const int64_t N = g.N, C = g.C, K = g.K;
    const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
    const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
    const int64_t KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
    const int64_t sd = g.stride[0], sh = g.stride[1], sw = g.stride[2];
    const int64_t dd = g.dilation[0], dh = g.dilation[1], dw = g.dilation[2];
    const int64_t pd = g.pad[0], ph = g.pad[1], pw = g.pad[2];
    const int64_t Cg = g.groups > 0 ? C / g.groups : 0;
    const int64_t Kg = g.groups > 0 ? K / g.groups : 0;
    const int64_t in_plane = D * H * W;
    const int64_t out_vol = OD * OH * OW;
    if (N <= 0 || K <= 0 || out_vol <= 0) return;
    const bool clamp = act_min > -kInf || act_max < kInf;
    const T lo = T(act_min), hi = T(act_max);

    // The valid output ranges depend only on the kernel tap, not on (n, k, c):
    // compute them once so the hot loops have no bounds checks.
    std::vector<int64_t> d_lo(KD), d_hi(KD), h_lo(KH), h_hi(KH), w_lo(KW), w_hi(KW);
    for (int64_t kd = 0; kd < KD; ++kd) detail::valid_out_range(OD, sd, kd * dd - pd, D, d_lo[kd], d_hi[kd]);
    for (int64_t kh = 0; kh < KH; ++kh) detail::valid_out_range(OH, sh, kh * dh - ph, H, h_lo[kh], h_hi[kh]);
    for (int64_t kw = 0; kw < KW; ++kw) detail::valid_out_range(OW, sw, kw * dw - pw, W, w_lo[kw], w_hi[kw]);
    const int64_t* __restrict dlo = d_lo.data(); const int64_t* __restrict dhi = d_hi.data();
    const int64_t* __restrict hlo = h_lo.data(); const int64_t* __restrict hhi = h_hi.data();
    const int64_t* __restrict wlo = w_lo.data(); const int64_t* __restrict whi = w_hi.data();
    int64_t fused_lo = 0, fused_hi = OW;
    for (int64_t kw = 0; kw < KW; ++kw) {
        fused_lo = std::max(fused_lo, w_lo[kw]);
        fused_hi = std::min(fused_hi, w_hi[kw]);
    }

    // One (n, k) output volume per task: tasks write disjoint memory, and the
    // volume is revisited for every (c, tap) so it should stay cache-resident.
    parallel_for(threads, N * K, [&](int64_t task, int) {
        const int64_t n = task / K, k = task % K;
        T* __restrict yv = y + (n * K + k) * out_vol;
        const T b0 = bias ? bias[k] : T(0);
        std::fill(yv, yv + out_vol, b0);
        const int64_t grp = k / Kg;
        const T* __restrict wk = w + k * Cg * KD * KH * KW;
        for (int64_t c = 0; c < Cg; ++c) {
            const T* __restrict xc = x + (n * C + grp * Cg + c) * in_plane;
            for (int64_t kd = 0; kd < KD; ++kd) {
                for (int64_t od = dlo[kd]; od < dhi[kd]; ++od) {
                    const int64_t id = od * sd - pd + kd * dd;
                    for (int64_t kh = 0; kh < KH; ++kh) {
                        const T* __restrict wt = wk + ((c * KD + kd) * KH + kh) * KW;
                        for (int64_t oh = hlo[kh]; oh < hhi[kh]; ++oh) {
                            const int64_t ih = oh * sh - ph + kh * dh;
                            const T* __restrict xr = xc + (id * H + ih) * W;
                            T* __restrict yr = yv + (od * OH + oh) * OW;
                            accumulate_row<T>(yr, xr, wt, KW, sw, dw, pw, wlo, whi, fused_lo, fused_hi);
                        }
                    }
                }
            }
        }
        // Activation while the volume is still in cache; comparisons that
        // are false for NaN keep NaN.
        if (clamp)
            for (int64_t i = 0; i < out_vol; ++i) {
                T v = yv[i];
                v = lo > v ? lo : v;
                yv[i] = hi < v ? hi : v;
            }
    });
}

template void conv_direct<float>(const ConvGeometry&, const float*, const float*, const float*, float*, int, double, double);
template void conv_direct<double>(const ConvGeometry&, const double*, const double*, const double*, double*, int, double, double);

}  // namespace cnnkernels
