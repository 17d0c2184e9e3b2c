#include "cnnkernels/im2col.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "cnnkernels/gemm.h"
#include "cnnkernels/scratch.h"
#include "cnnkernels/thread_pool.h"


namespace cnnkernels {

// Short runs (a few dozen elements) are copied/zeroed inline: a memcpy or
// memset call per run costs more than the copy.
#if defined(__GNUC__) && !defined(__clang__)
#define CNNK_INLINE_COPIES __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define CNNK_INLINE_COPIES
#endif

template <class T>
CNNK_INLINE_COPIES void im2col_slice(const ConvGeometry& g, const T* x_group, int64_t p0, int64_t P, int64_t r0,
                                     int64_t r1, T* col) {
    const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
    const int64_t OH = g.out[1], OW = g.out[2];
    const int64_t KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
    const int64_t sd = g.stride[0], sh = g.stride[1], sw = g.stride[2];
    const int64_t dd = g.dilation[0], dh = g.dilation[1], dw = g.dilation[2];
    const int64_t pd = g.pad[0], ph = g.pad[1], pw = g.pad[2];
    if (P <= 0 || OW <= 0 || OH <= 0) return;

    // "Same"-size stride-1 convolutions (all 3x3 s1 p1 layers, dilated ones
    // with matching padding): a tap's row is the input shifted by a constant
    // flat offset, so it is one memcpy over the whole slice, clipped to the
    // input, followed by zeroing the few columns/rows that fall in the padding.
    if (sd == 1 && sh == 1 && sw == 1 && g.out[0] == D && OH == H && OW == W) {
        const int64_t DHW = D * H * W;
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t kw = r % KW, kh = (r / KW) % KH, kd = (r / (KW * KH)) % KD;
            const int64_t c = r / (KW * KH * KD);
            const T* __restrict xc = x_group + c * DHW;
            T* __restrict dst = col + (r - r0) * P;
            const int64_t woff = kw * dw - pw, hoff = kh * dh - ph, doff = kd * dd - pd;
            const int64_t shift = (doff * H + hoff) * W + woff;
            const int64_t a = std::min(p0 + P, std::max(p0, -shift));
            const int64_t b = std::max(a, std::min(p0 + P, DHW - shift));
            for (int64_t i = p0; i < a; ++i) dst[i - p0] = T(0);
            if (b > a) std::memcpy(dst + (a - p0), xc + a + shift, size_t(b - a) * sizeof(T));
            for (int64_t i = b; i < p0 + P; ++i) dst[i - p0] = T(0);
            // Padding: whole output rows whose input row/plane is outside, and
            // the columns [0, lo) and [hi, OW) of the others.
            int64_t lo, hi;
            detail::valid_out_range(OW, 1, woff, W, lo, hi);
            int64_t p = p0;
            const int64_t p_end = p0 + P;
            int64_t ow = p % OW, oh = (p / OW) % OH, od = p / (OW * OH);
            while (p < p_end) {
                const int64_t seg = std::min(OW - ow, p_end - p);
                T* __restrict out = dst + (p - p0);
                const int64_t id = od + doff, ih = oh + hoff;
                if (id < 0 || id >= D || ih < 0 || ih >= H) {
                    for (int64_t i = 0; i < seg; ++i) out[i] = T(0);
                } else {
                    for (int64_t o = ow; o < std::min(lo, ow + seg); ++o) out[o - ow] = T(0);
                    for (int64_t o = std::max(hi, ow); o < ow + seg; ++o) out[o - ow] = T(0);
                }
                p += seg;
                ow = 0;
                if (++oh == OH) { oh = 0; ++od; }
            }
        }
        return;
    }

    // Strided rows: the input row is split once into its sw phases
    // (phase q holds x[q], x[q + sw], ...), after which every kw tap of the
    // row is a contiguous copy instead of a strided gather.
    const int64_t Wq = (W + sw - 1) / sw;
    std::vector<T> phases(sw > 1 && KW >= 2 * sw ? size_t(Wq * sw) : 0);
    // Valid ow range [lo, hi) of each kw tap.
    std::vector<int64_t> lo_(static_cast<size_t>(KW)), hi_(static_cast<size_t>(KW));
    for (int64_t kw = 0; kw < KW; ++kw) detail::valid_out_range(OW, sw, kw * dw - pw, W, lo_[kw], hi_[kw]);
    const int64_t* __restrict lov = lo_.data();
    const int64_t* __restrict hiv = hi_.data();

    int64_t r = r0;
    while (r < r1) {
        // Rows [r, re) share (c, kd, kh) and differ in kw.
        const int64_t re = std::min(r1, (r / KW + 1) * KW);
        const int64_t kh = (r / KW) % KH, kd = (r / (KW * KH)) % KD;
        const int64_t c = r / (KW * KH * KD);
        const T* __restrict xc = x_group + c * D * H * W;
        const bool split = !phases.empty() && re - r > 1;

        int64_t p = p0;
        const int64_t p_end = p0 + P;
        int64_t ow = p % OW, oh = (p / OW) % OH, od = p / (OW * OH);
        while (p < p_end) {
            // One output row at a time: a contiguous run of columns.
            const int64_t seg = std::min(OW - ow, p_end - p);
            const int64_t id = od * sd - pd + kd * dd;
            const int64_t ih = oh * sh - ph + kh * dh;
            const bool inside = !(id < 0 || id >= D || ih < 0 || ih >= H);
            const T* __restrict xr = xc + (id * H + ih) * W;
            if (inside && split) {
                T* __restrict ph_ = phases.data();
                for (int64_t q = 0; q < sw; ++q)
                    for (int64_t t = 0, iw = q; iw < W; ++t, iw += sw) ph_[q * Wq + t] = xr[iw];
            }
            for (int64_t rr = r; rr < re; ++rr) {
                T* __restrict out = col + (rr - r0) * P + (p - p0);
                if (!inside) {
                    for (int64_t i = 0; i < seg; ++i) out[i] = T(0);
                    continue;
                }
                const int64_t kw = rr % KW;
                const int64_t woff = kw * dw - pw;
                const int64_t lo = lov[kw], hi = hiv[kw];
                // [a, b): part of this segment whose input column is inside the row.
                const int64_t a = std::min(std::max(ow, lo), ow + seg);
                const int64_t b = std::max(a, std::min(ow + seg, hi));
                for (int64_t i = 0; i < a - ow; ++i) out[i] = T(0);
                T* __restrict mid = out + (a - ow);
                const int64_t len = b - a;
                if (sw == 1) {
                    const T* __restrict xs = xr + (a + woff);
                    if (len >= 16) std::memcpy(mid, xs, size_t(len) * sizeof(T));
                    else for (int64_t i = 0; i < len; ++i) mid[i] = xs[i];
                } else if (split) {
                    // x[a*sw + woff + i*sw] = phase q at index a + (woff - q)/sw + i
                    const int64_t q = ((woff % sw) + sw) % sw;
                    if (len > 0) {
                        const T* __restrict xs = phases.data() + q * Wq + (a + (woff - q) / sw);
                        for (int64_t i = 0; i < len; ++i) mid[i] = xs[i];
                    }
                } else {
                    const T* __restrict xs = xr + (a * sw + woff);
                    for (int64_t i = 0; i < len; ++i) mid[i] = xs[i * sw];
                }
                for (int64_t i = b - ow; i < seg; ++i) out[i] = T(0);
            }
            p += seg;
            ow = 0;
            if (++oh == OH) { oh = 0; ++od; }
        }
        r = re;
    }
}

namespace {

// Bytes of one column chunk in the chunked schedule: written by im2col_slice
// and immediately packed by the GEMM on the same core, so it should stay in
// that core's L2/L3 (1 MiB L2 per core on Zen 4). Measured on Zen 4, 1 thread
// (resnet_3x3_56 / vgg_3x3_112 / alexnet_c1 ms): 128 KiB 3.70/45.8/2.11,
// 256 KiB 2.77/46.1/1.85, 512 KiB 2.60/40.1/1.83, 1 MiB 2.52/38.0/1.79,
// 2 MiB 2.73/39.8/1.82, 4 MiB 2.83/39.0/1.83.
constexpr int64_t kChunkBytes = int64_t(1) << 20;
// Elements per worker lost to rounding the column and packing parts up to 16
// (64-byte alignment), kept out of the column budget.
constexpr int64_t kAlignSlack = 32;

// Schedule and scratch layout of a conv_im2col call (shared with
// im2col_workspace_bytes, so callers can see the floor before calling).
struct Im2colPlan {
    int threads;          // after the tiny-problem rule
    bool direct_gemm;     // x is the column matrix
    int64_t P, chunks, tasks;
    bool outer;           // threads over tasks (else inside each GEMM)
    int workers, gemm_threads;
    int64_t pack_budget, col_elems_w, pack_elems_w;
    int64_t per_worker() const { return col_elems_w + pack_elems_w; }
};

Im2colPlan plan_im2col(const ConvGeometry& g, int elem_size, int threads, int64_t workspace_bytes) {
    const int64_t N = g.N, K = g.K, G = g.groups, Kg = K / G;
    const int64_t OSP = g.out[0] * g.out[1] * g.out[2];
    const int64_t R = (g.C / G) * g.kernel[0] * g.kernel[1] * g.kernel[2];
    const int64_t elem = elem_size;
    // Tiny problems (LeNet-size) run faster on one thread than it takes to
    // wake the others.
    if (double(N) * double(K) * double(OSP) * double(R) < double(1 << 20)) threads = 1;

    bool direct_gemm = true;
    for (int d = 0; d < 3; ++d)
        direct_gemm = direct_gemm && g.kernel[d] == 1 && g.stride[d] == 1 && g.pad[d] == 0 &&
                      g.out[d] == g.in[d];

    // Workspace, all on the heap for the duration of the call, per worker:
    // one column chunk of R x P elements (not for 1x1 stride-1 convolutions,
    // where x is the column matrix) and the GEMM's B packing block
    // (gemm_pack_bytes; the weights are read in place). Their sum stays within
    // workspace_bytes except for the floors (one column and nr * kc packing
    // elements per worker).
    const int64_t rest = workspace_bytes;

    // Schedule. Work is cut into tasks (image, group, chunk of P output
    // positions). With enough tasks each thread builds its own chunks and runs
    // single-threaded GEMMs on them (no barriers, the chunk never leaves the
    // core); otherwise tasks run one after another with the threads inside
    // (parallel column build, GEMM parallel over its tiles).
    // Chunks of about kChunkBytes, whole multiples of 32 columns, their
    // number rounded up to a multiple of the thread count so threads get equal
    // work; the chunked schedule is used when it balances (or there are many
    // tasks), else the threads work inside each GEMM (e.g. 7x7 maps, where the
    // M split is even).
    int64_t P = OSP, chunks = 1;
    if (!direct_gemm && R > 0) {
        const int64_t target = std::max<int64_t>(32, (kChunkBytes / (R * elem)) / 32 * 32);
        chunks = (OSP + target - 1) / target;
        if (threads > 1 && OSP >= 32 * int64_t(threads)) chunks = (chunks + threads - 1) / threads * threads;
        P = std::min(OSP, ((OSP + chunks - 1) / chunks + 31) / 32 * 32);
        chunks = (OSP + P - 1) / P;
    }
    int64_t tasks = N * G * chunks;
    const bool outer = threads == 1 || (tasks >= threads && tasks % threads == 0 && (OSP % P == 0 || P >= 256)) ||
                       tasks >= 8 * int64_t(threads);
    const int workers = outer ? threads : 1;
    const int gemm_threads = outer ? 1 : threads;
    const int64_t pack_budget = gemm_pack_bytes(Kg, std::min(P, OSP), R, int(elem), gemm_threads,
                                                std::max<int64_t>(0, direct_gemm ? rest : rest / 2) / workers,
                                                true);
    if (!outer && !direct_gemm && R > 0) {
        // One task at a time: the column slice may use the whole remaining
        // workspace (fewer, larger GEMMs).
        const int64_t col_elems = std::max<int64_t>(0, rest - pack_budget) / elem - kAlignSlack;
        P = std::min(OSP, std::max<int64_t>(1, col_elems / R));
        chunks = (OSP + P - 1) / P;
        tasks = N * G * chunks;
    } else if (outer && !direct_gemm && R > 0) {
        const int64_t col_elems = std::max<int64_t>(0, rest - pack_budget * workers) / elem / workers - kAlignSlack;
        if (P * R > col_elems) {
            P = std::max<int64_t>(1, col_elems / R);
            chunks = (OSP + P - 1) / P;
            tasks = N * G * chunks;
        }
    }
    // Per worker: column chunk, then the GEMM packing block (64-byte aligned,
    // uninitialised: every element is written before it is read).
    const int64_t col_elems_w = direct_gemm ? 0 : (P * R + 15) / 16 * 16;
    const int64_t pack_elems_w = (gemm_pack_bytes(Kg, std::min(P, OSP), R, int(elem), gemm_threads, pack_budget, true) /
                                  elem + 15) / 16 * 16;
    return {threads, direct_gemm, P, chunks, tasks, outer, workers, gemm_threads, pack_budget, col_elems_w, pack_elems_w};
}

}  // namespace

int64_t im2col_workspace_bytes(const ConvGeometry& g, int elem_size, int threads, int64_t workspace_bytes) {
    if (g.N <= 0 || g.K <= 0 || g.out[0] * g.out[1] * g.out[2] <= 0) return 0;
    const Im2colPlan pl = plan_im2col(g, elem_size, threads, workspace_bytes);
    return pl.per_worker() * pl.workers * elem_size;
}

template <class T>
void conv_im2col(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, int threads,
                 int64_t workspace_bytes, double act_min, double act_max) {
    const int64_t N = g.N, C = g.C, K = g.K, G = g.groups;
    const int64_t OSP = g.out[0] * g.out[1] * g.out[2];
    const int64_t ISP = g.in[0] * g.in[1] * g.in[2];
    if (N <= 0 || K <= 0 || OSP <= 0) return;
    const int64_t Cg = C / G, Kg = K / G;
    const int64_t R = Cg * g.kernel[0] * g.kernel[1] * g.kernel[2];
    const Im2colPlan pl = plan_im2col(g, int(sizeof(T)), threads, workspace_bytes);
    threads = pl.threads;
    const bool direct_gemm = pl.direct_gemm, outer = pl.outer;
    const int64_t P = pl.P, chunks = pl.chunks, tasks = pl.tasks, pack_budget = pl.pack_budget;
    const int64_t col_elems_w = pl.col_elems_w, pack_elems_w = pl.pack_elems_w, per_worker = pl.per_worker();
    const int workers = pl.workers;

    GemmEpilogue<T> ep;
    ep.clamp = act_min > -kInf || act_max < kInf;
    ep.lo = T(act_min);
    ep.hi = T(act_max);

    T* const scratch = thread_scratch_of<T>(ScratchSlot::kDriver, size_t(per_worker * workers));

    auto run = [&](int64_t t, int worker, int inner_threads) {
        const int64_t ch = t % chunks, grp = (t / chunks) % G, n = t / (chunks * G);
        const int64_t p0 = ch * P, np = std::min(P, OSP - p0);
        const T* xg = x + (n * C + grp * Cg) * ISP;
        T* yg = y + (n * K + grp * Kg) * OSP + p0;
        GemmEpilogue<T> e = ep;
        e.bias = bias ? bias + grp * Kg : nullptr;
        const T* B;
        int64_t ldb;
        if (direct_gemm) {
            B = xg + p0;  // 1x1, stride 1, no padding, out == in: x is the column matrix
            ldb = OSP;
        } else {
            T* col = scratch + size_t(worker) * size_t(per_worker);
            if (inner_threads > 1 && R > 1) {
                // Parallel over groups of kw rows (they share the phase split).
                const int64_t KWr = g.kernel[2], groups_r = R / KWr;
                parallel_for(inner_threads, groups_r, [&](int64_t q, int) {
                    im2col_slice<T>(g, xg, p0, np, q * KWr, (q + 1) * KWr, col + q * KWr * np);
                });
            } else {
                im2col_slice<T>(g, xg, p0, np, 0, R, col);
            }
            B = col;
            ldb = np;
        }
        gemm_nn_ex<T>(Kg, np, R, w + grp * Kg * R, R, B, ldb, yg, OSP, e, inner_threads, pack_budget,
                      scratch + size_t(worker) * size_t(per_worker) + size_t(col_elems_w), pack_elems_w);
    };
    if (outer) {
        parallel_for(threads, tasks, [&](int64_t t, int me) { run(t, me, 1); });
    } else {
        for (int64_t t = 0; t < tasks; ++t) run(t, 0, threads);
    }
}

template void im2col_slice<float>(const ConvGeometry&, const float*, int64_t, int64_t, int64_t, int64_t, float*);
template void im2col_slice<double>(const ConvGeometry&, const double*, int64_t, int64_t, int64_t, int64_t, double*);
template void conv_im2col<float>(const ConvGeometry&, const float*, const float*, const float*, float*, int, int64_t, double, double);
template void conv_im2col<double>(const ConvGeometry&, const double*, const double*, const double*, double*, int, int64_t, double, double);

}  // namespace cnnkernels
