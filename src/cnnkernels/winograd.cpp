// Winograd convolution driver (portable; the SIMD transforms and GEMM
// micro-kernels are reached through the ISA tables).
//
// Per (image, group), tiles (m x m outputs, row-major over the output plane)
// are processed in blocks of Tb tiles, three phases per block (all threads
// sharing each phase, or each thread its own blocks: see "Scheduling" below):
//   A. input: per (channel chunk of L lanes, tile row of the block): the n
//      input rows of the tile row are copied into a per-thread band with
//      channels innermost (zero outside x), then transformed:
//      V[e][t][c] (n*n x Tb x Cpad), channels contiguous;
//   B. GEMM per (point e, NR-panel of K): M[e] (Tb x Kg) = V[e] (Tb x Cg, read
//      in place by the strided-A micro-kernel) x U[g][e] (Cg x Kg, prepacked);
//   C. output: per (chunk of L output channels, tile row): AT M AT^T + bias,
//      clamp, scattered to y.
#include "cnnkernels/winograd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "cnnkernels/gemm_kernels.h"
#include "cnnkernels/isa.h"
#include "cnnkernels/scratch.h"
#include "cnnkernels/winograd_kernels.h"
#include "cnnkernels/winograd_matrices.h"
#include "cnnkernels/thread_pool.h"


namespace cnnkernels {
namespace {

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return cdiv(a, b) * b; }

// V + M bytes of one tile block per thread. Measured (Zen 4, 1 MiB L2/core,
// F4, ms at 384/768/1536/3072 KiB): 64x56x56 1t 1.05/0.92/0.92/0.93,
// 128x28x28 1t 0.90/0.88/0.78/0.79, 128x112x112 2t 7.5/7.0/6.5/6.7.
constexpr int64_t kBlockTargetBytes = int64_t(1536) << 10;

const WinoKernels& wino_kernels() {
    static const WinoKernels* k = [] {
        const char* isa = active_isa_kernels().isa;
        const WinoKernels* t = nullptr;
        if (std::strcmp(isa, "avx512") == 0) t = wino_kernels_avx512();
        else if (std::strcmp(isa, "avx2") == 0) t = wino_kernels_avx2();
        return t ? t : wino_kernels_baseline();
    }();
    return *k;
}

template <class T>
const MicroKernelDesc<T>& kernel_desc();
template <>
const MicroKernelDesc<float>& kernel_desc<float>() { return active_isa_kernels().f32; }
template <>
const MicroKernelDesc<double>& kernel_desc<double>() { return active_isa_kernels().f64; }

template <class T>
struct Funcs;
template <>
struct Funcs<float> {
    static int lanes() { return wino_kernels().lanes_f32; }
    static WinoInputFn<float> in(int n, bool fx) { return wino_kernels().input_f32[fx][n / 2 - 2]; }
    static WinoOutputFn<float> out(int n, bool fx) { return wino_kernels().output_f32[fx][n / 2 - 2]; }
    static WinoFillFn<float> fill() { return wino_kernels().fill_f32; }
    static WinoWeightFn<float> weights() { return wino_kernels().weights_f32; }
    static int weights_nr() { return wino_kernels().weights_nr_f32; }
};
template <>
struct Funcs<double> {
    static int lanes() { return wino_kernels().lanes_f64; }
    static WinoInputFn<double> in(int n, bool fx) { return wino_kernels().input_f64[fx][n / 2 - 2]; }
    static WinoOutputFn<double> out(int n, bool fx) { return wino_kernels().output_f64[fx][n / 2 - 2]; }
    static WinoFillFn<double> fill() { return wino_kernels().fill_f64; }
    static WinoWeightFn<double> weights() { return wino_kernels().weights_f64; }
    static int weights_nr() { return wino_kernels().weights_nr_f64; }
};

double baked_at(int n, int r, int c) {
    return n == 4 ? wino_mats::at<4>(r, c) : n == 6 ? wino_mats::at<6>(r, c) : wino_mats::at<8>(r, c);
}
double baked_bt(int n, int r, int c) {
    return n == 4 ? wino_mats::bt<4>(r, c) : n == 6 ? wino_mats::bt<6>(r, c) : wino_mats::bt<8>(r, c);
}
double baked_g(int n, int r, int c) {
    return n == 4 ? wino_mats::g<4>(r, c) : n == 6 ? wino_mats::g<6>(r, c) : wino_mats::g<8>(r, c);
}
// Whether the rows x cols matrix a (row-major) is entry for entry baked(n, r, c): the specialised code may run.
bool equals_baked(const double* a, int rows, int cols, int n, double (*baked)(int, int, int)) {
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
            if (a[r * cols + c] != baked(n, r, c)) return false;
    return true;
}

template <class T>
WinoMatrix<T> sparse(const double* a, int rows, int cols) {
    WinoMatrix<T> s{};
    s.rows = rows;
    s.cols = cols;
    for (int r = 0; r < rows; ++r) {
        int c = 0;
        for (int j = 0; j < cols; ++j)
            if (a[r * cols + j] != 0.0) {
                s.idx[r][c] = j;
                s.coef[r][c] = T(a[r * cols + j]);
                ++c;
            }
        s.cnt[r] = c;
    }
    return s;
}


// Tile blocking and scratch layout of a winograd_conv call (shared with
// winograd_workspace_bytes, so callers can see the floor before calling).
struct BlockPlan {
    int64_t Cpad, Kpad;     // channels rounded up to whole vectors
    int64_t band_elems;     // one thread's input band
    int64_t Tb, nblocks;    // tiles per block, blocks per (image, group) plane
    bool priv;              // each thread runs whole blocks on its own V/M
    int nbuf;               // V/M buffer pairs
    size_t v_elems, m_elems, v_all, m_all, band_all, bias_all;
    size_t scratch_elems() const { return v_all + m_all + band_all + bias_all; }
};

template <class T>
// block_bytes: V + M of a block per thread (0: kBlockTargetBytes).
BlockPlan plan_blocks(const WinogradGeometry& g, int threads, int64_t workspace_bytes, bool bias,
                      int64_t block_bytes) {
    BlockPlan p{};
    const int m = g.m, n = m + 2, nn = n * n;
    const int64_t groups = g.groups, Cg = g.C / groups, Kg = g.K / groups;
    const int64_t tw = cdiv(g.OW, m), tiles = cdiv(g.OH, m) * tw;
    const int L = Funcs<T>::lanes(), MR = kernel_desc<T>().mr;
    const int64_t s = int64_t(sizeof(T));
    p.Cpad = std::max<int64_t>(round_up(Cg, L), L);
    p.Kpad = round_up(Kg, L);
    p.band_elems = n * ((tw - 1) * m + n) * L;
    const int64_t per_tile = nn * (p.Cpad + p.Kpad) * s;
    const int64_t jobs_per_plane_min = g.N * groups;
    // Scheduling. "shared": all threads work on each block, phase by phase
    // (input: channel chunks x tile rows; GEMM: transform points x K panels;
    // output: channel chunks x tile rows), so every U panel is read by one
    // thread per block and small tile counts (7x7 maps) still split evenly.
    // Measured on Zen 4 (2 threads) as fast as or faster than private blocks
    // on most dense layers (128x28x28 F4: 0.46 vs 0.73 ms in an earlier
    // session; 0.41 vs 0.43 ms in this one). "private": each thread runs
    // whole blocks (input, GEMM, output) on its own V/M buffers with no
    // barriers; used for many small (image, group) planes (grouped and
    // depthwise convolutions), where the shared mode's three barriers per
    // block would dominate and U of a group is small enough to read twice;
    // and where every thread reading U costs less than the plane's V + M
    // (which the shared mode passes between the cores). On this VM the
    // shared mode's barriers run at one of two speeds for minutes at a time;
    // alternating processes, 2 threads, F4 64x56x56 (U 0.6 MB, V + M 3.6 MB):
    // private 0.45 ms in both states, shared 0.47-0.48 or 0.93 ms; F4 VGG
    // 128x112x112 (U 2.4 MB, V + M 29 MB): private 6.8-7.4 / 7.4-7.8 ms,
    // shared 7.1-7.7 / 10.3 ms. (128x28x28, U 2.4 MB against V + M 1.8 MB,
    // stays shared: 0.41 vs 0.43 ms, though 0.62 vs 0.46 in the slow state.)
    const int64_t min_tiles = 2 * MR;
    const int64_t u_group_bytes = nn * winograd_kpad(Kg) * Cg * s;
    p.priv = threads == 1 || (jobs_per_plane_min >= 2 * int64_t(threads) && u_group_bytes <= (256 << 10)) ||
             u_group_bytes * threads <= tiles * per_tile;
    p.nbuf = p.priv ? threads : 1;
    const int64_t fixed = (threads * p.band_elems + (bias ? groups * p.Kpad : 0)) * s;
    // V + M of a block block_bytes per thread, never above the
    // workspace (floor: one tile per block).
    const int64_t target = (p.priv ? 1 : threads) * (block_bytes > 0 ? block_bytes : kBlockTargetBytes);
    int64_t Tb = std::max<int64_t>(1, (workspace_bytes - fixed) / (per_tile * p.nbuf));
    Tb = std::min(Tb, std::max<int64_t>(min_tiles, target / per_tile));
    Tb = std::max<int64_t>(1, std::min(Tb, tiles));
    int64_t nblocks = cdiv(tiles, Tb);
    if (p.priv && threads > 1) {
        // Enough blocks to keep every thread busy: the total block count a
        // multiple of the thread count when that costs no more than a few
        // extra blocks.
        while ((jobs_per_plane_min * nblocks) % threads != 0 && nblocks < tiles &&
               cdiv(tiles, nblocks + 1) >= std::min<int64_t>(tiles, min_tiles))
            ++nblocks;
    }
    p.Tb = cdiv(tiles, nblocks);
    p.nblocks = cdiv(tiles, p.Tb);
    // Each part a multiple of 16 elements, so every part stays 64-byte aligned.
    auto align16 = [](size_t e) { return (e + 15) / 16 * 16; };
    p.v_elems = size_t(nn * p.Tb * p.Cpad);
    p.m_elems = size_t(nn * p.Tb * p.Kpad);
    p.v_all = align16(p.nbuf * p.v_elems);
    p.m_all = align16(p.nbuf * p.m_elems);
    p.band_all = align16(size_t(threads * p.band_elems));
    p.bias_all = bias ? size_t(groups * p.Kpad) : 0;
    return p;
}

}  // namespace

int64_t winograd_workspace_bytes(const WinogradGeometry& g, int elem_size, int threads, int64_t workspace_bytes,
                                 bool bias) {
    if (g.N <= 0 || g.K <= 0 || g.OH <= 0 || g.OW <= 0) return 0;
    return elem_size == 4 ? int64_t(plan_blocks<float>(g, threads, workspace_bytes, bias, 0).scratch_elems() * 4)
                          : int64_t(plan_blocks<double>(g, threads, workspace_bytes, bias, 0).scratch_elems() * 8);
}

int winograd_nr(int elem_size) {
    return elem_size == 4 ? active_isa_kernels().f32.nr : active_isa_kernels().f64.nr;
}

template <class T>
void winograd_transform_weights(int64_t K, int64_t Cg, int64_t groups, int n, const T* w, const double* G, T* U,
                                int threads) {
    const int64_t Kg = K / groups, Kp = winograd_kpad(Kg), nn = int64_t(n) * n;
    const int NR = kernel_desc<T>().nr;
    // Per (group, NR-panel of filters, channel), in that order: the n*n transformed values
    // of the panel's filters are built together (wino_weights), then each point's NR values
    // are written as one contiguous run, so the n*n output streams advance sequentially
    // (channel after channel) and every line is written once. (Writing filter by filter
    // touches n*n lines Kp*Cg apart - the same cache sets for power-of-two sizes - once per
    // filter.)
    const int64_t panels = Kp / NR, chunks = cdiv(Cg, int64_t(kWinoWeightChannels));
    const WinoWeightFn<T> fn = Funcs<T>::weights();
    // The weight kernels write panels of a compile-time width: one that differs from the GEMM's would lay U
    // out wrongly for every Winograd call, so refuse it loudly.
    if (Funcs<T>::weights_nr() != NR)
        throw std::logic_error("Winograd weight transform compiled for panels of " +
                               std::to_string(Funcs<T>::weights_nr()) + " filters, GEMM uses " + std::to_string(NR));
    // Streaming stores where U is over 1 MiB, its panels' runs are whole 64-byte lines and its memory was written
    // before: each line is then written without being read first. 1 thread, Zen 4: 256->256 F4 (9.4 MB)
    // 1.74 -> 0.89 ms, 128->128 F4 0.37 -> 0.17 ms, 512->512 F4 4.98 -> 3.13 ms. On fresh pages, which the
    // kernel zeroes through the cache at the first touch, they lose (5.6 -> 6.3 ms, 19.6 -> 25.9 ms), hence
    // pages_resident; up to 1 MiB, U stays in L2 for the call that made it.
    const int64_t u_bytes = groups * nn * Kp * Cg * int64_t(sizeof(T));
    const bool baked = equals_baked(G, n, 3, n, baked_g);
    const bool stream = reinterpret_cast<uintptr_t>(U) % 64 == 0 && NR * int64_t(sizeof(T)) % 64 == 0 &&
                        u_bytes > (int64_t(1) << 20) && pages_resident(U, size_t(u_bytes));
    parallel_for(threads, groups * chunks * panels, [&](int64_t item, int) {
        const int64_t g = item / (chunks * panels), jp = (item / chunks) % panels;
        const int64_t c = item % chunks * kWinoWeightChannels, nc = std::min<int64_t>(kWinoWeightChannels, Cg - c);
        const int live = int(std::max<int64_t>(0, std::min<int64_t>(NR, Kg - jp * NR)));
        // (a panel past the group's filters, live == 0, reads nothing: no pointer past w is formed for it)
        const WinoWeightJob<T> job{live ? w + ((g * Kg + jp * NR) * Cg + c) * 9 : w, Cg * 9, live, NR, n, int(nc), G,
                                   U + g * nn * Kp * Cg + jp * NR * Cg + c * NR, Kp * Cg, stream, baked};
        fn(job);
    });
}

template <class T>
bool winograd_conv(const WinogradGeometry& g, const T* x, const T* U, const T* bias, T* y, const double* AT,
                   const double* BT, int threads, int64_t workspace_bytes, double act_min, double act_max,
                   int64_t block_bytes) {
    const int m = g.m, n = m + 2, nn = n * n;
    const int64_t N = g.N, groups = g.groups, Cg = g.C / groups, Kg = g.K / groups;
    const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW;
    const int64_t th = cdiv(OH, m), tw = cdiv(OW, m), tiles = th * tw;
    if (N <= 0 || Kg <= 0 || tiles <= 0) return true;

    const int L = Funcs<T>::lanes();
    // The unrolled transforms when AT, BT are the matrices baked into them.
    const bool fixed_mats = equals_baked(AT, m, n, n, baked_at) && equals_baked(BT, n, n, n, baked_bt);
    const WinoInputFn<T> in_fn = Funcs<T>::in(n, fixed_mats);
    const WinoOutputFn<T> out_fn = Funcs<T>::out(n, fixed_mats);
    const WinoFillFn<T> fill_fn = Funcs<T>::fill();
    const MicroKernelDesc<T>& uk = kernel_desc<T>();
    const int MR = uk.mr, NR = uk.nr;
    const WinoMatrix<T> bt = sparse<T>(BT, n, n), at = sparse<T>(AT, m, n);
    const bool clamp = !(std::isinf(act_min) && act_min < 0 && std::isinf(act_max) && act_max > 0);
    const T lo = T(act_min), hi = T(act_max);

    const BlockPlan plan = plan_blocks<T>(g, threads, workspace_bytes, bias != nullptr, block_bytes);
    const int64_t Cpad = plan.Cpad, Kpad = plan.Kpad, Tb = plan.Tb, nblocks = plan.nblocks;
    const int64_t cchunks = Cpad / L, kchunks = Kpad / L, Kp = winograd_kpad(Kg);
    const int64_t band_elems = plan.band_elems;
    const bool priv = plan.priv;
    const int nbuf = plan.nbuf;
    const size_t v_elems = plan.v_elems, m_elems = plan.m_elems, v_all = plan.v_all, m_all = plan.m_all;
    const size_t band_all = plan.band_all;
    // One scratch block, carved into V, M, the bands and the padded bias.
    T* const scratch = thread_scratch_of<T>(ScratchSlot::kDriver, plan.scratch_elems());
    T* const vbase = scratch;
    T* const mbase = vbase + v_all;
    T* const bandbase = mbase + m_all;
    T* const bias_pad = bandbase + band_all;
    // Lanes of M beyond Kg are read (never stored) by the output transform.
    if (Kpad != Kg) std::memset(static_cast<void*>(mbase), 0, nbuf * m_elems * sizeof(T));
    if (bias) {
        std::memset(static_cast<void*>(bias_pad), 0, size_t(groups * Kpad) * sizeof(T));
        for (int64_t gi = 0; gi < groups; ++gi)
            for (int64_t k = 0; k < Kg; ++k) bias_pad[gi * Kpad + k] = bias[gi * Kg + k];
    }
    const int64_t kc0 = std::max<int64_t>(1, cdiv(std::max<int64_t>(Cg, 1), cdiv(std::max<int64_t>(Cg, 1), uk.kc)));
    const int64_t npanels = cdiv(Kg, NR);
    const int64_t gemm_items = nn * npanels;
    const int64_t plane = OH * OW;

    // One block: tiles [t0, t1) of image img, group gi, with buffers V, M.
    struct Block {
        int64_t img, gi, t0, t1, r_a, nseg;
        T *V, *M;
    };
    auto make_block = [&](int64_t img, int64_t gi, int64_t b, T* V, T* M) {
        Block k;
        k.img = img;
        k.gi = gi;
        k.t0 = b * Tb;
        k.t1 = std::min(tiles, k.t0 + Tb);
        k.r_a = k.t0 / tw;
        k.nseg = (k.t1 - 1) / tw - k.r_a + 1;
        k.V = V;
        k.M = M;
        return k;
    };
    // A: input transform of item it in [0, cchunks * nseg): channel chunk, tile row.
    auto phase_a = [&](const Block& k, int64_t it, T* band, bool* nonfinite) {
        const int64_t ch = it / k.nseg, r = k.r_a + it % k.nseg;
        const int64_t ta = std::max(k.t0, r * tw), tb = std::min(k.t1, (r + 1) * tw);
        const int64_t tc0 = ta - r * tw, count = tb - ta;
        const int64_t cols = (count - 1) * m + n;
        const int lanes = int(std::max<int64_t>(0, std::min<int64_t>(L, Cg - ch * L)));
        WinoFillJob<T> f;
        f.x = x + (k.img * g.C + k.gi * Cg + ch * L) * H * W;
        f.H = H;
        f.W = W;
        f.HW = H * W;
        f.ih0 = r * m - g.pad_top;
        f.iw0 = tc0 * m - g.pad_left;
        f.cols = cols;
        f.n = n;
        f.lanes = lanes;
        f.band = band;
        fill_fn(f);
        WinoInputJob<T> j;
        j.band = band;
        j.band_cols = cols;
        j.count = count;
        j.m = m;
        j.V = k.V + (ta - k.t0) * Cpad + ch * L;
        j.v_e_stride = Tb * Cpad;
        j.v_t_stride = Cpad;
        j.BT = &bt;
        j.nonfinite = nonfinite;
        in_fn(j);
    };
    // B: GEMM of item it in [0, gemm_items): transform point e, NR-panel of K.
    auto phase_b = [&](const Block& k, int64_t it) {
        const int64_t cnt = k.t1 - k.t0;
        const int64_t e = it / npanels, jp = it % npanels;
        const int nc = int(std::min<int64_t>(NR, Kg - jp * NR));
        const T* Ue = U + (k.gi * nn + e) * Kp * Cg + jp * NR * Cg;
        const T* Ve = k.V + e * Tb * Cpad;
        T* Me = k.M + e * Tb * Kpad + jp * NR;
        if (Cg == 0) {
            for (int64_t t = 0; t < cnt; ++t)
                for (int c = 0; c < nc; ++c) Me[t * Kpad + c] = T(0);
            return;
        }
        for (int64_t p0 = 0; p0 < Cg; p0 += kc0) {
            const int64_t kc = std::min(kc0, Cg - p0);
            TileEpilogue<T> te;
            te.bias = nullptr;
            te.lo = te.hi = T(0);
            te.load_c = p0 > 0;
            te.clamp = false;
            for (int64_t i = 0; i < cnt; i += MR) {
                const int mr = int(std::min<int64_t>(MR, cnt - i));
                uk.fn_sa(kc, Ve + i * Cpad + p0, Cpad, Ue + p0 * NR, Me + i * Kpad, Kpad, mr, nc, te);
            }
        }
    };
    // C: output transform of item it in [0, kchunks * nseg): channel chunk, tile row.
    auto phase_c = [&](const Block& k, int64_t it, bool* nonfinite) {
        const int64_t kk = it / k.nseg, r = k.r_a + it % k.nseg;
        const int64_t ta = std::max(k.t0, r * tw), tb = std::min(k.t1, (r + 1) * tw);
        const int64_t tc0 = ta - r * tw;
        WinoOutputJob<T> j;
        j.M = k.M + (ta - k.t0) * Kpad + kk * L;
        j.m_e_stride = Tb * Kpad;
        j.m_t_stride = Kpad;
        j.count = tb - ta;
        j.m = m;
        j.AT = &at;
        j.bias = bias ? bias_pad + k.gi * Kpad + kk * L : nullptr;
        j.clamp = clamp;
        j.lo = lo;
        j.hi = hi;
        j.y = y + (k.img * g.K + k.gi * Kg + kk * L) * plane + (r * m) * OW + tc0 * m;
        j.plane = plane;
        j.OW = OW;
        j.ow_left = OW - tc0 * m;
        j.lanes = int(std::min<int64_t>(L, Kg - kk * L));
        j.rows = int(std::min<int64_t>(m, OH - r * m));
        j.nonfinite = nonfinite;
        out_fn(j);
    };

    const int64_t total_blocks = N * groups * nblocks;
    // Per thread (set by its input and output transforms, read after the region): whether a transformed input
    // tile or an output before the clamp was not finite.
    const std::unique_ptr<bool[]> nonfinite_of(new bool[size_t(threads)]());
    if (priv) {   // a block per item, on the thread's own V and M
        parallel_for(threads, total_blocks, [&](int64_t bi, int me) {
            const Block k = make_block(bi / (groups * nblocks), (bi / nblocks) % groups, bi % nblocks,
                                       vbase + me * v_elems, mbase + me * m_elems);
            T* const band = bandbase + me * band_elems;
            bool* const nonfinite = &nonfinite_of[size_t(me)];
            for (int64_t it = 0; it < cchunks * k.nseg; ++it) phase_a(k, it, band, nonfinite);
            for (int64_t it = 0; it < gemm_items; ++it) phase_b(k, it);
            for (int64_t it = 0; it < kchunks * k.nseg; ++it) phase_c(k, it, nonfinite);
        });
    } else {   // block by block, each phase over all threads on the shared V and M
        for (int64_t bi = 0; bi < total_blocks; ++bi) {
            const Block k = make_block(bi / (groups * nblocks), (bi / nblocks) % groups, bi % nblocks, vbase, mbase);
            parallel_for(threads, cchunks * k.nseg, [&](int64_t it, int me) {
                phase_a(k, it, bandbase + me * band_elems, &nonfinite_of[size_t(me)]);
            });
            parallel_for(threads, gemm_items, [&](int64_t it, int) { phase_b(k, it); });
            parallel_for(threads, kchunks * k.nseg, [&](int64_t it, int me) {
                phase_c(k, it, &nonfinite_of[size_t(me)]);
            });
        }
    }
    for (int t = 0; t < threads; ++t)
        if (nonfinite_of[size_t(t)]) return false;
    return true;
}

template void winograd_transform_weights<float>(int64_t, int64_t, int64_t, int, const float*, const double*, float*,
                                                int);
template void winograd_transform_weights<double>(int64_t, int64_t, int64_t, int, const double*, const double*,
                                                 double*, int);
template bool winograd_conv<float>(const WinogradGeometry&, const float*, const float*, const float*, float*,
                                   const double*, const double*, int, int64_t, double, double, int64_t);
template bool winograd_conv<double>(const WinogradGeometry&, const double*, const double*, const double*, double*,
                                    const double*, const double*, int, int64_t, double, double, int64_t);

}  // namespace cnnkernels
