#include "cnnkernels/im2col.h"

#include <algorithm>
#include <vector>

#include "cnnkernels/gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnkernels {

template <class T>
void im2col_slice(const ConvGeometry& g, const T* x_group, int64_t p0, int64_t P, int64_t r0,
                  int64_t r1, T* col) {
    const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
    const int64_t OH = g.out[1], OW = g.out[2];
    const int64_t KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
    const int64_t sd = g.stride[0], sh = g.stride[1], sw = g.stride[2];
    const int64_t dd = g.dilation[0], dh = g.dilation[1], dw = g.dilation[2];
    const int64_t pd = g.pad[0], ph = g.pad[1], pw = g.pad[2];
    if (P <= 0 || OW <= 0 || OH <= 0) return;

    for (int64_t r = r0; r < r1; ++r) {
        const int64_t kw = r % KW, kh = (r / KW) % KH, kd = (r / (KW * KH)) % KD;
        const int64_t c = r / (KW * KH * KD);
        const T* __restrict xc = x_group + c * D * H * W;
        T* __restrict dst = col + (r - r0) * P;
        // Valid ow range for this tap, shared by every output row of the slice.
        int64_t lo, hi;
        const int64_t woff = kw * dw - pw;
        detail::valid_out_range(OW, sw, woff, W, lo, hi);

        int64_t p = p0;
        const int64_t p_end = p0 + P;
        int64_t ow = p % OW, oh = (p / OW) % OH, od = p / (OW * OH);
        while (p < p_end) {
            // One output row at a time: a contiguous run of columns.
            const int64_t seg = std::min(OW - ow, p_end - p);
            const int64_t id = od * sd - pd + kd * dd;
            const int64_t ih = oh * sh - ph + kh * dh;
            T* __restrict out = dst + (p - p0);
            if (id < 0 || id >= D || ih < 0 || ih >= H) {
                std::fill(out, out + seg, T(0));
            } else {
                // [a, b): part of this segment whose input column is inside the row.
                const int64_t a = std::min(std::max(ow, lo), ow + seg);
                const int64_t b = std::max(a, std::min(ow + seg, hi));
                const T* __restrict xr = xc + (id * H + ih) * W;
                std::fill(out, out + (a - ow), T(0));
                T* __restrict mid = out + (a - ow);
                const int64_t len = b - a;
                if (sw == 1) {
                    const T* __restrict xs = xr + (a + woff);
                    for (int64_t i = 0; i < len; ++i) mid[i] = xs[i];
                } else {
                    const T* __restrict xs = xr + (a * sw + woff);
                    for (int64_t i = 0; i < len; ++i) mid[i] = xs[i * sw];
                }
                std::fill(out + (b - ow), out + seg, T(0));
            }
            p += seg;
            ow = 0;
            if (++oh == OH) { oh = 0; ++od; }
        }
    }
}

namespace {

// Convolution of one (image, group) pair. col has room for cap_cols columns.
// `threads` is used inside (im2col build and gemm); pass 1 when the caller
// already parallelises over (image, group). Bias and activation are applied
// by the GEMM epilogue (no separate pass over y).
template <class T>
void conv_one_group(const ConvGeometry& g, const T* xg, const T* wg, const T* bg, T* yg, T* col,
                    int64_t cap_cols, bool direct_gemm, int threads, const GemmEpilogue<T>& ep_base,
                    int64_t pack_budget) {
    const int64_t Kg = g.K / g.groups;
    const int64_t R = (g.C / g.groups) * g.kernel[0] * g.kernel[1] * g.kernel[2];
    const int64_t OSP = g.out[0] * g.out[1] * g.out[2];
    GemmEpilogue<T> ep = ep_base;
    ep.bias = bg;
    if (direct_gemm) {
        // 1x1, stride 1, no padding, out == in: x itself is the column matrix.
        gemm_nn_ex<T>(Kg, OSP, R, wg, R, xg, OSP, yg, OSP, ep, threads, pack_budget);
        return;
    }
    for (int64_t p0 = 0; p0 < OSP; p0 += cap_cols) {
        const int64_t P = std::min(cap_cols, OSP - p0);
        if (threads > 1 && R > 1) {
#pragma omp parallel for schedule(static) num_threads(threads)
            for (int64_t r = 0; r < R; ++r) im2col_slice<T>(g, xg, p0, P, r, r + 1, col + r * P);
        } else {
            im2col_slice<T>(g, xg, p0, P, 0, R, col);
        }
        gemm_nn_ex<T>(Kg, P, R, wg, R, col, P, yg + p0, OSP, ep, threads, pack_budget);
    }
}

}  // namespace

template <class T>
void conv_im2col(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, int threads,
                 int64_t workspace_bytes, double act_min, double act_max) {
    const int64_t N = g.N, C = g.C, K = g.K, G = g.groups;
    const int64_t OSP = g.out[0] * g.out[1] * g.out[2];
    const int64_t ISP = g.in[0] * g.in[1] * g.in[2];
    if (N <= 0 || K <= 0 || OSP <= 0) return;
    const int64_t Cg = C / G, Kg = K / G;
    const int64_t R = Cg * g.kernel[0] * g.kernel[1] * g.kernel[2];

    bool direct_gemm = true;
    for (int d = 0; d < 3; ++d)
        direct_gemm = direct_gemm && g.kernel[d] == 1 && g.stride[d] == 1 && g.pad[d] == 0 &&
                      g.out[d] == g.in[d];

    // Many small (image, group) problems (batches, depthwise) parallelise best
    // across problems with single-threaded gemms; one big problem parallelises
    // inside the gemm. Either way the workspace is split among the workers.
    const int64_t tasks = N * G;
    const bool outer = threads > 1 && tasks >= threads;
    const int workers = outer ? threads : 1;
    const int gemm_threads = outer ? 1 : threads;
    // Workspace split: first the GEMM packing buffers of every worker (at most
    // half of the workspace when there is a column buffer too), then the
    // column buffers get the rest.
    const int64_t pack_budget = gemm_pack_bytes(Kg, OSP, R, int(sizeof(T)), gemm_threads,
                                                (direct_gemm ? workspace_bytes : workspace_bytes / 2) / workers);
    const int64_t col_bytes = std::max<int64_t>(0, workspace_bytes - pack_budget * workers);
    const int64_t elems = std::max<int64_t>(1, col_bytes / int64_t(sizeof(T)) / workers);
    const int64_t cap_cols = R > 0 ? std::min(OSP, std::max<int64_t>(1, elems / R)) : OSP;
    std::vector<T> workspace(direct_gemm ? 0 : size_t(workers) * size_t(cap_cols * R));
    GemmEpilogue<T> ep;
    ep.clamp = act_min > -kInf || act_max < kInf;
    ep.lo = T(act_min);
    ep.hi = T(act_max);

    auto run = [&](int64_t t, int worker, int inner_threads) {
        const int64_t n = t / G, grp = t % G;
        conv_one_group<T>(g, x + (n * C + grp * Cg) * ISP, w + grp * Kg * R,
                          bias ? bias + grp * Kg : nullptr, y + (n * K + grp * Kg) * OSP,
                          workspace.data() + size_t(worker) * size_t(cap_cols * R), cap_cols,
                          direct_gemm, inner_threads, ep, pack_budget);
    };
    if (outer) {
#pragma omp parallel num_threads(threads)
        {
            int me = 0;
#ifdef _OPENMP
            me = omp_get_thread_num();
#endif
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < tasks; ++t) run(t, me, 1);
        }
    } else {
        for (int64_t t = 0; t < tasks; ++t) run(t, 0, threads);
    }
}

template void im2col_slice<float>(const ConvGeometry&, const float*, int64_t, int64_t, int64_t, int64_t, float*);
template void im2col_slice<double>(const ConvGeometry&, const double*, int64_t, int64_t, int64_t, int64_t, double*);
template void conv_im2col<float>(const ConvGeometry&, const float*, const float*, const float*, float*, int, int64_t, double, double);
template void conv_im2col<double>(const ConvGeometry&, const double*, const double*, const double*, double*, int, int64_t, double, double);

}  // namespace cnnkernels
