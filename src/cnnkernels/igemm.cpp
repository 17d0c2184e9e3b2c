#include "cnnkernels/igemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "cnnkernels/isa.h"
#include "cnnkernels/scratch.h"
#include "cnnkernels/thread_pool.h"


namespace cnnkernels {

const IgemmIsaKernels& active_igemm_kernels() {
    // Follow the GEMM dispatch, which has already checked the CPU (and CNNKERNELS_ISA).
    static const IgemmIsaKernels* const table = [] {
        const std::string isa = active_isa_kernels().isa;
        const IgemmIsaKernels* t = nullptr;
        if (isa == "avx512") t = igemm_kernels_avx512();
        else if (isa == "avx2") t = igemm_kernels_avx2();
        return t ? t : igemm_kernels_baseline();
    }();
    return *table;
}

namespace {

template <class T>
const IgemmKernelDesc<T>& kernels();
template <>
const IgemmKernelDesc<float>& kernels<float>() { return active_igemm_kernels().f32; }
template <>
const IgemmKernelDesc<double>& kernels<double>() { return active_igemm_kernels().f64; }

// Weights of one (image, group) unit bigger than this are streamed once per
// thread (tasks ordered panel-major: 512->512 3x3 at 7x7 has 9 MiB of weights
// for a 166 KiB input); smaller ones are reused across panels of a pixel block.
constexpr int64_t kWeightMajorBytes = int64_t(1) << 20;
// Output pixel tiles per task: 32 tiles of 8 pixels keep the block's input
// rows in L1/L2 while all panels of the block run.
constexpr int64_t kTilesPerBlock = 32;
// Padded slabs up to this size are copied by every thread for itself when all threads read all of it (one
// image): split between the threads, each thread's writes waited for the other core to give up the lines it
// had read in the previous call, and half of every read came from the other core's cache (2 threads, Zen 4
// VM, in-process against the shared slab: 3x3 layers 64x56x56 1.25x, 128x28x28 1.18x, 256x14x14 1.27x, 512x7x7
// 1.08x, 3x3 s2 on 128x56x56 (1.7 MB) 1.30x, 11x11 s4 on RGB 224 1.20x; a 6.6 MB slab, VGG 128x112x112, 0.98x).
constexpr int64_t kPrivateSlabBytes = int64_t(2) << 20;
// Products per reduction chunk, whole channels (the weights per chunk are the kernel's chunk_bytes,
// igemm_kernels.h): each chunk's sums leave the registers for a per-thread buffer and come back, so few
// chunks keep the tile at the FMAs, while a bounded chunk keeps the summation blocked (a 4608-term reduction,
// 512 channels 3x3, rounds as a few serial sums added, as in im2col's kc-blocked GEMM). 256 -> 1152 with the
// AVX-512 tile's chunks 16 -> 128 KiB (from L2; 3x3 s1 layers 64-512 channels, Zen 4, in-process A/B:
// 1.02-1.04x at 1 and 2 threads; 7x7 s2, 3x3 s2, dilated 1.03x): error vs float64 of 256->256 14x14
// 3e-7 -> 1.2e-6 x max|y| (unchunked 1.3e-6, all-positive data 3.3e-6).
constexpr int64_t kChunkProducts = 1152;

// How a call is cut up: padded input extents, slabs and tasks.
struct Plan {
    int64_t taps, R, Cg, Kg, OSP, ISP;
    int64_t ext[3];       // padded extents (or the input's, read in place)
    int64_t plane;        // ext[0]*ext[1]*ext[2]
    bool in_place;        // no padding needed: read x directly
    int64_t units;        // N * groups
    int64_t units_per_slab, cc, chunks;  // slab = units_per_slab units x cc channels
    int64_t slab_elems;   // one slab's elements (0 when in place)
    int threads;          // threads the call uses
    bool private_slab;    // each thread pads its own copy of the slab (kPrivateSlabBytes)
};

Plan make_plan(const ConvGeometry& g, int elem, int64_t workspace_bytes, int threads) {
    Plan p{};
    p.taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
    p.Cg = g.C / g.groups;
    p.Kg = g.K / g.groups;
    p.R = p.Cg * p.taps;
    p.OSP = g.out[0] * g.out[1] * g.out[2];
    p.ISP = g.in[0] * g.in[1] * g.in[2];
    p.units = g.N * g.groups;
    p.units_per_slab = std::max<int64_t>(1, p.units);
    // Tiny problems (LeNet-size) run faster on one thread than it takes to wake the others.
    p.threads = double(g.N) * double(g.K) * double(p.OSP) * double(p.R) < double(1 << 20) ? 1 : threads;
    p.cc = p.Cg;
    p.chunks = 1;
    p.in_place = true;
    if (p.R == 0 || p.OSP == 0) return p;  // nothing is read
    for (int d = 0; d < 3; ++d) {
        // Extent the windows of all outputs reach, in padded coordinates.
        const int64_t reach = (g.out[d] - 1) * g.stride[d] + (g.kernel[d] - 1) * g.dilation[d] + 1;
        p.in_place = p.in_place && g.pad[d] == 0 && reach <= g.in[d];
        p.ext[d] = reach;
    }
    if (p.in_place)
        for (int d = 0; d < 3; ++d) p.ext[d] = g.in[d];
    p.plane = p.ext[0] * p.ext[1] * p.ext[2];
    if (p.in_place) return p;
    // Padded planes a multiple of 1 KiB apart put the same rows of every 4th channel in the same
    // L1 sets (a 16x16 plane: 14x14 maps, padding 1), and a reduction chunk reads 26 channels:
    // one line of slack between planes. In-process A/B, 1 thread: 128, 256, 512 channels at
    // 14x14 1.02-1.04x.
    if ((p.plane * elem) % 1024 == 0) p.plane += 64 / elem;
    const int64_t budget = std::max<int64_t>(p.plane, workspace_bytes / elem);
    const int64_t unit = p.Cg * p.plane;
    if (unit <= budget) {
        p.units_per_slab = std::min(p.units, budget / unit);
    } else {
        p.units_per_slab = 1;
        p.cc = std::max<int64_t>(1, budget / p.plane);
        p.chunks = (p.Cg + p.cc - 1) / p.cc;
    }
    p.slab_elems = p.units_per_slab * p.cc * p.plane;
    // Fewer units in a slab than threads: every thread's tasks read all of the slab (with more, each reads the
    // units it padded itself).
    const int64_t bytes = p.slab_elems * elem;
    p.private_slab = p.threads > 1 && p.units_per_slab < p.threads && bytes <= kPrivateSlabBytes &&
                     bytes * p.threads <= workspace_bytes;
    return p;
}

// Channel plane of x (in[] extents) into a zero-padded plane (ext[] extents,
// x placed at offset pad[]). Only the border is zeroed.
template <class T>
void pad_plane(const ConvGeometry& g, const Plan& p, const T* __restrict src, T* __restrict dst) {
    const int64_t E1 = p.ext[1], E2 = p.ext[2];
    const int64_t left = std::min(g.pad[2], E2);
    const int64_t len = std::max<int64_t>(0, std::min(g.in[2], E2 - left));
    for (int64_t d = 0; d < p.ext[0]; ++d) {
        const int64_t id = d - g.pad[0];
        for (int64_t h = 0; h < E1; ++h) {
            T* __restrict row = dst + (d * E1 + h) * E2;
            const int64_t ih = h - g.pad[1];
            if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
                std::memset(row, 0, size_t(E2) * sizeof(T));
                continue;
            }
            const T* __restrict xr = src + (id * g.in[1] + ih) * g.in[2];
            for (int64_t i = 0; i < left; ++i) row[i] = T(0);
            std::memcpy(row + left, xr, size_t(len) * sizeof(T));
            for (int64_t i = left + len; i < E2; ++i) row[i] = T(0);
        }
    }
}

}  // namespace

int igemm_nr(int elem_size) {
    return elem_size == 8 ? active_igemm_kernels().f64.nr : active_igemm_kernels().f32.nr;
}

int64_t igemm_panels(int64_t K, int64_t groups, int elem_size) {
    const int64_t nr = igemm_nr(elem_size);
    return (K / groups + nr - 1) / nr;
}

template <class T>
void igemm_pack_weights(int64_t K, int64_t R, int64_t groups, const T* w, T* packed) {
    const IgemmKernelDesc<T>& kd = kernels<T>();
    const int64_t NR = kd.nr, Kg = K / groups;
    const int64_t panels = igemm_panels(K, groups, int(sizeof(T)));
    if (kd.pack_panel) {  // the ISA's packer (igemm_kernels.h); R == 0 reads and writes nothing
        for (int64_t grp = 0; grp < groups; ++grp)
            for (int64_t pn = 0; pn < panels; ++pn)
                kd.pack_panel(w + (grp * Kg + pn * NR) * R, R, int(std::min(NR, Kg - pn * NR)),
                              packed + (grp * panels + pn) * R * NR);
        return;
    }
    // The portable loops.
    // Weight r of the NR filters of a panel, read together, are R apart: where that is a multiple of
    // 2 KiB they fall in one or two L1 sets, and each read missed (a 1024->256 1x1 layer's 1 MB took 0.55 ms,
    // a third of its first call). There each filter's run of 64 weights is read contiguously instead
    // (0.17 ms; 512->256 0.145 -> 0.075 ms). Elsewhere (3x3 layers, 9 KiB apart) that order, which stores one
    // float at a time, was slower, and on 18 KiB filters (512-channel 3x3) no faster: only filters up to 8 KiB.
    // (Two loop nests, not one with blocks of 1 or 64 weights: as one nest the r-outer order lost its vector
    // stores, 256->256 3x3 0.35 -> 0.55 ms.)
    const bool filter_major = R * int64_t(sizeof(T)) % 2048 == 0 && R * int64_t(sizeof(T)) <= 8192;
    for (int64_t grp = 0; grp < groups; ++grp)
        for (int64_t pn = 0; pn < panels; ++pn) {
            T* dst = packed + (grp * panels + pn) * R * NR;
            if (filter_major) {
                for (int64_t r0 = 0; r0 < R; r0 += 64) {
                    const int64_t r1 = std::min(R, r0 + 64);
                    for (int64_t j = 0; j < NR; ++j) {
                        const int64_t k = pn * NR + j;
                        const T* src = k < Kg ? w + (grp * Kg + k) * R : nullptr;
                        for (int64_t r = r0; r < r1; ++r) dst[r * NR + j] = src ? src[r] : T(0);
                    }
                }
                continue;
            }
            for (int64_t r = 0; r < R; ++r)
                for (int64_t j = 0; j < NR; ++j) {
                    const int64_t k = pn * NR + j;
                    dst[r * NR + j] = k < Kg ? w[(grp * Kg + k) * R + r] : T(0);
                }
        }
}

int64_t igemm_workspace_bytes(const ConvGeometry& g, int elem_size, int threads, int64_t workspace_bytes) {
    const Plan p = make_plan(g, elem_size, workspace_bytes, threads);
    return p.slab_elems * elem_size * (p.private_slab ? p.threads : 1);
}

template <class T>
void conv_igemm(const ConvGeometry& g, const T* x, const T* packed, const T* bias, T* y, int threads,
                int64_t workspace_bytes, double act_min, double act_max, int64_t chunk_bytes) {
    if (g.N <= 0 || g.K <= 0) return;
    const Plan p = make_plan(g, int(sizeof(T)), workspace_bytes, threads);
    if (p.OSP <= 0) return;
    threads = p.threads;
    const IgemmKernelDesc<T>& kd = kernels<T>();
    const int64_t MR = kd.mr, NR = kd.nr, G = g.groups;
    const int64_t panels = (p.Kg + NR - 1) / NR;
    const bool clamp = act_min > -kInf || act_max < kInf;
    const int64_t chunk_weight_bytes = chunk_bytes > 0 ? chunk_bytes : kd.chunk_bytes;

    if (p.R == 0) {  // no input channels: y = epilogue(0)
        for (int64_t n = 0; n < g.N; ++n)
            for (int64_t k = 0; k < g.K; ++k) {
                T v = bias ? bias[k] : T(0);
                if (clamp) v = std::min(T(act_max), std::max(T(act_min), v));
                std::fill(y + (n * g.K + k) * p.OSP, y + (n * g.K + k + 1) * p.OSP, v);
            }
        return;
    }
    // Offsets from a window origin: tap_off of each kernel tap (channel
    // c adds c * plane); p_off of each output pixel's window origin.
    std::vector<int64_t> tap_off(size_t(p.taps)), p_off(size_t(p.OSP));
    const int64_t E12 = p.ext[1] * p.ext[2];
    for (int64_t a = 0, r = 0; a < g.kernel[0]; ++a)
        for (int64_t b = 0; b < g.kernel[1]; ++b)
            for (int64_t s = 0; s < g.kernel[2]; ++s, ++r)
                tap_off[size_t(r)] = a * g.dilation[0] * E12 + b * g.dilation[1] * p.ext[2] + s * g.dilation[2];
    for (int64_t od = 0, q = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
            for (int64_t ow = 0; ow < g.out[2]; ++ow, ++q)
                p_off[size_t(q)] = od * g.stride[0] * E12 + oh * g.stride[1] * p.ext[2] + ow * g.stride[2];
    // Bias padded to whole panels: the micro-kernel adds it with vector loads.
    std::vector<T> bias_pad(bias ? size_t(G * panels * NR) : 0, T(0));
    if (bias)
        for (int64_t grp = 0; grp < G; ++grp)
            for (int64_t k = 0; k < p.Kg; ++k) bias_pad[size_t((grp * panels) * NR + k)] = bias[grp * p.Kg + k];

    // The padded slab is reused across calls (see scratch.h: a fresh allocation
    // per call is page-faulted in again by the workers every time).
    T* const shared_slab = p.slab_elems && !p.private_slab
                               ? thread_scratch_of<T>(ScratchSlot::kDriver, size_t(p.slab_elems)) : nullptr;

    const int64_t tiles = (p.OSP + MR - 1) / MR;
    // Pixel blocks of about kTilesPerBlock tiles, their number raised until a
    // full slab's tasks split evenly over the threads (when there are enough tiles).
    int64_t blocks = (tiles + kTilesPerBlock - 1) / kTilesPerBlock;
    while ((p.units_per_slab * panels * blocks) % threads != 0 && blocks < tiles) ++blocks;
    const bool weight_major = p.Kg * p.R * int64_t(sizeof(T)) > kWeightMajorBytes;
    const int64_t slabs = (p.units + p.units_per_slab - 1) / p.units_per_slab;
    const int64_t* const poff = p_off.data();

    // One unit's tiles [t0, t1) for one panel and channel chunk.
    // prefetch_next: weight-major order, where the next panel is not in cache yet.
    auto run_tiles = [&](const T* base, int64_t unit, int64_t chunk, int64_t pn, int64_t t0, int64_t t1,
                         bool prefetch_next) {
        const int64_t grp = unit % G, n = unit / G;
        const int64_t c0 = chunk * p.cc, cc = std::min(p.cc, p.Cg - c0);
        const T* Bp = packed + ((grp * panels + pn) * p.R + c0 * p.taps) * NR;
        IgemmEpilogue<T> e;
        e.bias = bias && chunk == 0 ? bias_pad.data() + (grp * panels + pn) * NR : nullptr;
        e.lo = T(act_min);
        e.hi = T(act_max);
        e.load_y = chunk > 0;
        e.clamp = clamp && chunk == p.chunks - 1;
        const int nch = int(std::min(NR, p.Kg - pn * NR));
        T* yp = y + (n * g.K + grp * p.Kg + pn * NR) * p.OSP;
        // The reduction in chunks of about chunk_weight_bytes of weights and at most
        // kChunkProducts products (whole channels), each chunk run over all tiles
        // [t0, t1) while its weights stay in cache; the tiles' running sums wait
        // in a per-thread buffer between chunks.
        const int64_t ch_per_chunk = std::max<int64_t>(
            1, std::min(chunk_weight_bytes / (p.taps * NR * int64_t(sizeof(T))), kChunkProducts / p.taps));
        const int64_t nkc = (cc + ch_per_chunk - 1) / ch_per_chunk;
        const int64_t cb = (cc + nkc - 1) / nkc;  // balanced chunks
        T* const sums = nkc > 1 ? thread_scratch_of<T>(ScratchSlot::kTileSums, size_t((t1 - t0) * MR * NR)) : nullptr;
        // The next panel's weights, spread over this panel's tile calls.
        const char* pf = prefetch_next && pn + 1 < panels ? reinterpret_cast<const char*>(Bp + p.R * NR) : nullptr;
        const int64_t calls = nkc * (t1 - t0);
        const int64_t pf_total = cc * p.taps * NR * int64_t(sizeof(T)) / 64;
        const int64_t pf_per_call = (pf_total + calls - 1) / std::max<int64_t>(1, calls);
        const T* a[kIgemmMaxMR];
        for (int64_t kc = 0, call = 0; kc < nkc; ++kc) {
            const int64_t ch0 = kc * cb, chn = std::min(cb, cc - ch0);
            const IgemmReduction red{chn, p.plane, p.taps, tap_off.data()};
            const T* const Bk = Bp + ch0 * p.taps * NR;
            IgemmEpilogue<T> ek = e;
            for (int64_t t = t0; t < t1; ++t, ++call) {
                const int64_t q0 = t * MR;
                const int m = int(std::min(MR, p.OSP - q0));
                for (int i = 0; i < m; ++i) a[i] = base + poff[q0 + i] + ch0 * p.plane;
                if (sums) {
                    T* const s = sums + (t - t0) * MR * NR;
                    ek.sum_in = kc > 0 ? s : nullptr;
                    ek.sum_out = kc + 1 < nkc ? s : nullptr;
                }
                const int64_t pf_first = call * pf_per_call;
                const int64_t pf_lines = pf ? std::max<int64_t>(0, std::min(pf_per_call, pf_total - pf_first)) : 0;
                kd.fn[m - 1](red, a, Bk, yp + q0, p.OSP, nch, ek, pf_lines > 0 ? pf + pf_first * 64 : nullptr,
                             pf_lines);
            }
        }
    };

    for (int64_t s = 0; s < slabs; ++s)
        for (int64_t chunk = 0; chunk < p.chunks; ++chunk) {
            const int64_t u0 = s * p.units_per_slab, nu = std::min(p.units_per_slab, p.units - u0);
            const int64_t c0 = chunk * p.cc, cc = std::min(p.cc, p.Cg - c0);
            auto pad = [&](int64_t q, T* slab) {
                const int64_t u = u0 + q / cc, c = q % cc;
                const T* src = x + ((u / G) * g.C + (u % G) * p.Cg + c0 + c) * p.ISP;
                pad_plane<T>(g, p, src, slab + ((q / cc) * p.cc + c) * p.plane);
            };
            if (!p.private_slab && !p.in_place) parallel_for(threads, nu * cc, [&](int64_t q, int) { pad(q, shared_slab); });
            // The slab a thread's tiles read: with private slabs, its own, padded whole by it first.
            auto slab_of_thread = [&]() -> T* {
                if (!p.private_slab) return shared_slab;
                T* const own = thread_scratch_of<T>(ScratchSlot::kDriver, size_t(p.slab_elems));
                for (int64_t q = 0; q < nu * cc; ++q) pad(q, own);
                return own;
            };
            const int64_t tasks = nu * panels * blocks;
            parallel_for_state(threads, tasks, slab_of_thread, [&](T* slab, int64_t t) {
                int64_t pn, b;
                const int64_t u = u0 + t / (panels * blocks), r = t % (panels * blocks);
                if (weight_major) { pn = r / blocks; b = r % blocks; }
                else { b = r / panels; pn = r % panels; }
                const int64_t t0 = b * tiles / blocks, t1 = (b + 1) * tiles / blocks;
                // Input of unit u (channel c0 on) as the tiles read it.
                const T* const base = p.in_place ? x + ((u / G) * g.C + (u % G) * p.Cg + c0) * p.ISP
                                                 : slab + (u - u0) * p.cc * p.plane;
                run_tiles(base, u, chunk, pn, t0, t1, weight_major);
            });
        }
}

template void igemm_pack_weights<float>(int64_t, int64_t, int64_t, const float*, float*);
template void igemm_pack_weights<double>(int64_t, int64_t, int64_t, const double*, double*);
template <class T>
int64_t igemm_chunk_bytes() {
    return kernels<T>().chunk_bytes;
}
template int64_t igemm_chunk_bytes<float>();
template int64_t igemm_chunk_bytes<double>();

template void conv_igemm<float>(const ConvGeometry&, const float*, const float*, const float*, float*, int, int64_t,
                                double, double, int64_t);
template void conv_igemm<double>(const ConvGeometry&, const double*, const double*, const double*, double*, int,
                                 int64_t, double, double, int64_t);

}  // namespace cnnkernels
