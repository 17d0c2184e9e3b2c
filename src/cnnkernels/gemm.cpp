// Portable GEMM driver (BLIS-style loop nest) around the ISA micro-kernels.
// Compiled with the default flags: no ISA-specific code in this file.
#include "cnnkernels/gemm.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "cnnkernels/gemm_kernels.h"
#include "cnnkernels/isa.h"
#include "cnnkernels/scratch.h"
#include "cnnkernels/thread_pool.h"

namespace cnnkernels {
namespace {

template <class T>
const MicroKernelDesc<T>& kernel_desc();
template <>
const MicroKernelDesc<float>& kernel_desc<float>() { return active_isa_kernels().f32; }
template <>
const MicroKernelDesc<double>& kernel_desc<double>() { return active_isa_kernels().f64; }

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Cache blocking of one call, in units of micro-panels.
struct Blocking {
    int64_t kc;         // depth of a K block
    int64_t mc_panels;  // max MR-row panels per tile (A block mc x kc)
    int64_t nc_panels;  // max NR-col panels per tile (B block kc x nc)
    int64_t per_thread_elems;
};

// Balanced K blocks: K = 576 with kc0 = 256 gives 3 x 192, not 256+256+64.
int64_t balanced_kc(int64_t K, int64_t kc0) {
    const int64_t kblocks = cdiv(std::max<int64_t>(K, 1), kc0);
    return cdiv(std::max<int64_t>(K, 1), kblocks);
}

// prepacked: A is already packed (no A buffer, kc fixed).
Blocking choose_blocking(int64_t M, int64_t N, int64_t K, int mr, int nr, int64_t kc0, int64_t mc0, int64_t nc0,
                         int elem, int threads, int64_t budget, bool prepacked = false) {
    Blocking b;
    b.kc = balanced_kc(K, kc0);
    b.mc_panels = std::min(mc0 / mr, cdiv(std::max<int64_t>(M, 1), mr));
    b.nc_panels = std::min(nc0 / nr, cdiv(std::max<int64_t>(N, 1), nr));
    const int64_t per_thread_budget = std::max<int64_t>(budget / std::max(threads, 1), 0) / elem;
    auto need = [&] { return ((prepacked ? 0 : b.mc_panels * mr) + b.nc_panels * nr) * b.kc; };
    while (need() > per_thread_budget) {
        if (b.nc_panels > 1) b.nc_panels = cdiv(b.nc_panels, 2);
        else if (b.mc_panels > 1 && !prepacked) b.mc_panels = cdiv(b.mc_panels, 2);
        else if (b.kc > 8 && !prepacked) b.kc = cdiv(b.kc, 2);
        else break;  // floor: (mr + nr) * 8 elements per thread (nr * kc with packed A)
    }
    b.per_thread_elems = need();
    return b;
}

// Packs rows [0, m) x columns [0, kc) of A (row stride lda) into MR-row panels:
// panel p holds rows p*MR.., column k at dst + p*MR*kc + k*MR; missing rows are 0.
template <class T>
void pack_a(int64_t m, int64_t kc, const T* A, int64_t lda, int mr, T* dst) {
    for (int64_t i0 = 0; i0 < m; i0 += mr) {
        const int64_t rows = std::min<int64_t>(mr, m - i0);
        for (int64_t r = 0; r < rows; ++r) {
            const T* src = A + (i0 + r) * lda;
            for (int64_t k = 0; k < kc; ++k) dst[k * mr + r] = src[k];
        }
        for (int64_t r = rows; r < mr; ++r)
            for (int64_t k = 0; k < kc; ++k) dst[k * mr + r] = T(0);
        dst += mr * kc;
    }
}

// Packs rows [0, kc) x columns [0, n) of B (row stride ldb) into NR-col panels:
// row k of panel p at dst + p*NR*kc + k*NR; missing columns are 0. NR is a
// compile-time constant so the row copies are inline vector moves.
template <class T, int NR>
void pack_b_fixed(int64_t kc, int64_t n, const T* __restrict B, int64_t ldb, T* __restrict dst) {
    for (int64_t j0 = 0; j0 < n; j0 += NR) {
        const int64_t cols = std::min<int64_t>(NR, n - j0);
        const T* __restrict src = B + j0;
        if (cols == NR) {
            for (int64_t k = 0; k < kc; ++k)
                for (int c = 0; c < NR; ++c) dst[k * NR + c] = src[k * ldb + c];
        } else {
            for (int64_t k = 0; k < kc; ++k) {
                for (int64_t c = 0; c < cols; ++c) dst[k * NR + c] = src[k * ldb + c];
                for (int64_t c = cols; c < NR; ++c) dst[k * NR + c] = T(0);
            }
        }
        dst += NR * kc;
    }
}

// pack_b from B given transposed: element (k, j) at Bt[j * ldb + k] (each column a contiguous row of Bt).
template <class T>
void pack_bt(int64_t kc, int64_t n, const T* __restrict Bt, int64_t ldb, int nr, T* __restrict dst) {
    for (int64_t j0 = 0; j0 < n; j0 += nr) {
        const int64_t cols = std::min<int64_t>(nr, n - j0);
        for (int64_t c = 0; c < nr; ++c) {
            const T* __restrict src = Bt + (j0 + c) * ldb;
            if (c < cols)
                for (int64_t k = 0; k < kc; ++k) dst[k * nr + c] = src[k];
            else
                for (int64_t k = 0; k < kc; ++k) dst[k * nr + c] = T(0);
        }
        dst += nr * kc;
    }
}

template <class T>
void pack_b(int64_t kc, int64_t n, const T* B, int64_t ldb, int nr, T* dst) {
    switch (nr) {
        case 32: return pack_b_fixed<T, 32>(kc, n, B, ldb, dst);
        case 16: return pack_b_fixed<T, 16>(kc, n, B, ldb, dst);
        case 8: return pack_b_fixed<T, 8>(kc, n, B, ldb, dst);
        case 4: return pack_b_fixed<T, 4>(kc, n, B, ldb, dst);
        default:
            for (int64_t j0 = 0; j0 < n; j0 += nr) {
                const int64_t cols = std::min<int64_t>(nr, n - j0);
                for (int64_t k = 0; k < kc; ++k)
                    for (int64_t c = 0; c < nr; ++c) dst[k * nr + c] = c < cols ? B[k * ldb + j0 + c] : T(0);
                dst += nr * kc;
            }
    }
}

template <class T>
T apply_scalar(T v, const GemmEpilogue<T>& ep) {
    if (ep.clamp) {
        v = ep.lo > v ? ep.lo : v;  // NaN v stays NaN
        v = ep.hi < v ? ep.hi : v;
    }
    return v;
}


}  // namespace

int64_t gemm_pack_bytes(int64_t M, int64_t N, int64_t K, int elem_size, int threads, int64_t pack_budget_bytes,
                        bool prepacked_a) {
    const IsaKernels& k = active_isa_kernels();
    Blocking b = elem_size == 4 ? choose_blocking(M, N, K, k.f32.mr, k.f32.nr, k.f32.kc, k.f32.mc, k.f32.nc, 4,
                                                  threads, pack_budget_bytes, prepacked_a)
                                : choose_blocking(M, N, K, k.f64.mr, k.f64.nr, k.f64.kc, k.f64.mc, k.f64.nc, 8,
                                                  threads, pack_budget_bytes, prepacked_a);
    return b.per_thread_elems * elem_size * threads;
}

namespace {

// The loop nest of gemm_nn_ex / gemm_prepacked. A is read in place by the
// strided-A micro-kernels (strided_a: no copy; measured faster than packing on
// every conv-shaped product here, e.g. 256x3136x64: 100 vs 60 GFLOP/s, since
// the 8 rows of a panel are 8 sequential streams and A is not reused enough to
// amortise a packing pass), or packed per tile, or, when Apk is not null, read
// from the full packed copy Apk (layout of pack_a_full: K block p0 at
// Apk + p0 * Mpad, Mpad = M rounded up to mr, then MR-row panels of that
// block's depth). B is always packed, per tile and K block, into NR-column
// panels (kc x nc per thread).
template <class T>
void gemm_core(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* Apk, const T* B, int64_t ldb,
               bool b_trans, T* C, int64_t ldc, const GemmEpilogue<T>& ep, int threads, int64_t pack_budget_bytes,
               bool strided_a, T* scratch, int64_t scratch_elems) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                T v = ep.accumulate ? C[i * ldc + j] : T(0);
                if (ep.bias) v += ep.bias[i];
                if (ep.col_bias) v += ep.col_bias[j];
                C[i * ldc + j] = apply_scalar(v, ep);
            }
        return;
    }
    const MicroKernelDesc<T>& uk = kernel_desc<T>();
    const int mr = uk.mr, nr = uk.nr;
    const int64_t panels_m = cdiv(M, mr), panels_n = cdiv(N, nr);
    const Blocking blk = choose_blocking(M, N, K, mr, nr, uk.kc, uk.mc, uk.nc, int(sizeof(T)), threads,
                                         pack_budget_bytes, Apk != nullptr || strided_a);
    const int64_t Mpad = panels_m * mr;

    // Tiles of C (at most mc_panels x nc_panels micro-panels each) are the
    // unit of parallel work. Their number is rounded up to a multiple of the
    // thread count and panels are dealt out evenly, so threads get equal work.
    int64_t tiles_m = cdiv(panels_m, blk.mc_panels), tiles_n = cdiv(panels_n, blk.nc_panels);
    if (threads > 1) {
        // Among slightly finer splits whose tile count is a multiple of the
        // thread count, take the one with the least work on the busiest thread
        // (in micro-tiles; each extra tile adds a little packing).
        const int64_t tm0 = tiles_m, tn0 = tiles_n;
        double best = 1e300;
        for (int64_t tm = tm0; tm <= std::min(panels_m, tm0 + 2 * int64_t(threads)); ++tm)
            for (int64_t tn = tn0; tn <= std::min(panels_n, tn0 + 2 * int64_t(threads)); ++tn) {
                const int64_t t = tm * tn;
                const double per_thread = double(cdiv(t, threads)) * double(cdiv(panels_m, tm)) *
                                          double(cdiv(panels_n, tn));
                const double cost = per_thread * (1.0 + 0.01 * double(t));
                if (cost < best) best = cost, tiles_m = tm, tiles_n = tn;
            }
    }
    const int64_t tiles = tiles_m * tiles_n;
    const int workers = int(std::min<int64_t>(threads, tiles));
    // Per-thread panel sizes: the largest tile of the even split.
    const int64_t tile_mp = cdiv(panels_m, tiles_m), tile_np = cdiv(panels_n, tiles_n);
    const int64_t a_elems = (Apk || strided_a) ? 0 : tile_mp * mr * blk.kc, b_elems = tile_np * nr * blk.kc;
    const int64_t per_thread = a_elems + b_elems;
    // The caller's scratch when it is large enough, else our own allocation.
    if (scratch && per_thread * workers > scratch_elems) scratch = nullptr;
    T* const pack_base =
        scratch ? scratch : thread_scratch_of<T>(ScratchSlot::kGemmPack, size_t(per_thread) * size_t(workers));
    // Column bias padded to whole NR panels: the micro-kernels add it with vector loads.
    std::vector<T> col_bias_pad(ep.col_bias ? size_t(panels_n * nr) : 0, T(0));
    if (ep.col_bias) std::copy(ep.col_bias, ep.col_bias + N, col_bias_pad.begin());

    parallel_for(workers, tiles, [&](int64_t t, int me) {
        T* const Ap = pack_base + size_t(me) * size_t(per_thread);
        T* const Bp = Ap + a_elems;
        const int64_t tm = t / tiles_n, tn = t % tiles_n;
        const int64_t i0 = (tm * panels_m / tiles_m) * mr, i1 = std::min(M, ((tm + 1) * panels_m / tiles_m) * mr);
        const int64_t j0 = (tn * panels_n / tiles_n) * nr, j1 = std::min(N, ((tn + 1) * panels_n / tiles_n) * nr);
        if (i0 >= i1 || j0 >= j1) return;
        for (int64_t p0 = 0; p0 < K; p0 += blk.kc) {
            const int64_t kc = std::min(blk.kc, K - p0);
            TileEpilogue<T> te;
            te.load_c = p0 > 0 || ep.accumulate;
            te.clamp = ep.clamp && p0 + kc >= K;
            te.lo = ep.lo;
            te.hi = ep.hi;
            if (b_trans)
                pack_bt<T>(kc, j1 - j0, B + j0 * ldb + p0, ldb, nr, Bp);
            else
                pack_b<T>(kc, j1 - j0, B + p0 * ldb + j0, ldb, nr, Bp);
            // A panels of this tile and K block: packed now, or from Apk.
            const T* at = Apk ? Apk + p0 * Mpad + i0 * kc : strided_a ? A + i0 * lda + p0 : Ap;
            if (!Apk && !strided_a) pack_a<T>(i1 - i0, kc, A + i0 * lda + p0, lda, mr, Ap);
            // B micro-panel (kc x nr) stays in L1 across the A panels.
            for (int64_t j = j0; j < j1; j += nr) {
                const T* bp = Bp + ((j - j0) / nr) * nr * kc;
                const int n = int(std::min<int64_t>(nr, j1 - j));
                for (int64_t i = i0; i < i1; i += mr) {
                    const int m = int(std::min<int64_t>(mr, i1 - i));
                    te.bias = (p0 == 0 && ep.bias) ? ep.bias + i : nullptr;
                    te.col_bias = (p0 == 0 && ep.col_bias) ? col_bias_pad.data() + j : nullptr;
                    if (strided_a)
                        uk.fn_sa(kc, at + (i - i0) * lda, lda, bp, C + i * ldc + j, ldc, m, n, te);
                    else
                        uk.fn(kc, at + ((i - i0) / mr) * mr * kc, 0, bp, C + i * ldc + j, ldc, m, n, te);
                }
            }
        }
    });
}

// C = epilogue(A B) for B of N <= kGemvMaxCols columns (stride ldb) with the ISA's narrow-product
// kernel: the tile micro-kernels would compute NR columns for them (a 4096 x 9216 fully connected layer
// at batch 1 took 23.7 ms instead of 6 ms). B's columns are gathered one after another (K x N values);
// threads take blocks of rows; an element's sum does not depend on the thread count.
template <class T>
void gemm_narrow(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, bool b_trans,
                 T* C, int64_t ldc, const GemmEpilogue<T>& ep, int threads) {
    const GemvKernel<T> gemv = kernel_desc<T>().gemv;
    const T* X = B;   // B's columns one after another: B itself when it is given transposed, rows K apart
    if (b_trans ? (N > 1 && ldb != K) : (N > 1 || ldb != 1)) {   // the packing arena: this path packs nothing else
        T* const columns = thread_scratch_of<T>(ScratchSlot::kGemmPack, size_t(N * K));
        for (int64_t k = 0; k < K; ++k)
            for (int64_t j = 0; j < N; ++j) columns[j * K + k] = b_trans ? B[j * ldb + k] : B[k * ldb + j];
        X = columns;
    }
    constexpr int64_t kRows = 64;  // rows per block, their sums kept on the stack for the epilogue
    const int64_t blocks = cdiv(M, kRows);
    if (double(M) * double(K) * double(N) < double(1 << 16)) threads = 1;  // waking the others costs more
    parallel_for(threads, blocks, [&](int64_t b, int) {
        const int64_t i0 = b * kRows, m = std::min(kRows, M - i0);
        T sums[kRows * kGemvMaxCols];
        gemv(m, N, K, A + i0 * lda, lda, X, sums, N);
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < N; ++j) {
                T v = sums[i * N + j];
                if (ep.accumulate) v += C[(i0 + i) * ldc + j];
                if (ep.bias) v += ep.bias[i0 + i];
                if (ep.col_bias) v += ep.col_bias[j];
                C[(i0 + i) * ldc + j] = apply_scalar(v, ep);
            }
    });
}

}  // namespace

template <class T>
void gemm_nn_ex(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                int64_t ldc, const GemmEpilogue<T>& ep, int threads, int64_t pack_budget_bytes, T* scratch,
                int64_t scratch_elems) {
    if (N >= 1 && N <= kGemvMaxCols && M > 0 && K > 0) {
        gemm_narrow<T>(M, N, K, A, lda, B, ldb, false, C, ldc, ep, threads);
        return;
    }
    gemm_core<T>(M, N, K, A, lda, nullptr, B, ldb, false, C, ldc, ep, threads, pack_budget_bytes, true, scratch,
                 scratch_elems);
}

template <class T>
void gemm_nt_ex(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* Bt, int64_t ldbt, T* C,
                int64_t ldc, const GemmEpilogue<T>& ep, int threads, int64_t pack_budget_bytes) {
    if (N >= 1 && N <= kGemvMaxCols && M > 0 && K > 0) {
        gemm_narrow<T>(M, N, K, A, lda, Bt, ldbt, true, C, ldc, ep, threads);
        return;
    }
    gemm_core<T>(M, N, K, A, lda, nullptr, Bt, ldbt, true, C, ldc, ep, threads, pack_budget_bytes, true, nullptr, 0);
}

template <class T>
int64_t packed_a_elems(int64_t M, int64_t K) {
    const MicroKernelDesc<T>& uk = kernel_desc<T>();
    return cdiv(std::max<int64_t>(M, 0), uk.mr) * uk.mr * std::max<int64_t>(K, 0);
}

template <class T>
void pack_a_full(int64_t M, int64_t K, const T* A, int64_t lda, T* dst) {
    const MicroKernelDesc<T>& uk = kernel_desc<T>();
    if (M <= 0 || K <= 0) return;
    const int64_t kc0 = balanced_kc(K, uk.kc), Mpad = cdiv(M, uk.mr) * uk.mr;
    for (int64_t p0 = 0; p0 < K; p0 += kc0) pack_a<T>(M, std::min(kc0, K - p0), A + p0, lda, uk.mr, dst + p0 * Mpad);
}

template <class T>
void gemm_prepacked(int64_t M, int64_t N, int64_t K, const T* Apacked, const T* B, int64_t ldb, T* C, int64_t ldc,
                    const GemmEpilogue<T>& ep, int threads, int64_t pack_budget_bytes) {
    gemm_core<T>(M, N, K, nullptr, 0, Apacked, B, ldb, false, C, ldc, ep, threads, pack_budget_bytes, false, nullptr,
                 0);
}

template <class T>
void gemm_nn(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
             bool accumulate, int threads) {
    GemmEpilogue<T> ep;
    ep.accumulate = accumulate;
    gemm_nn_ex<T>(M, N, K, A, lda, B, ldb, C, ldc, ep, threads, int64_t(64) << 20);
}

template void gemm_nn_ex<float>(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*,
                                int64_t, const GemmEpilogue<float>&, int, int64_t, float*, int64_t);
template void gemm_nn_ex<double>(int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t, double*,
                                 int64_t, const GemmEpilogue<double>&, int, int64_t, double*, int64_t);
template void gemm_nt_ex<float>(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*,
                                int64_t, const GemmEpilogue<float>&, int, int64_t);
template void gemm_nt_ex<double>(int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t, double*,
                                 int64_t, const GemmEpilogue<double>&, int, int64_t);
template int64_t packed_a_elems<float>(int64_t, int64_t);
template int64_t packed_a_elems<double>(int64_t, int64_t);
template void pack_a_full<float>(int64_t, int64_t, const float*, int64_t, float*);
template void pack_a_full<double>(int64_t, int64_t, const double*, int64_t, double*);
template void gemm_prepacked<float>(int64_t, int64_t, int64_t, const float*, const float*, int64_t, float*, int64_t,
                                    const GemmEpilogue<float>&, int, int64_t);
template void gemm_prepacked<double>(int64_t, int64_t, int64_t, const double*, const double*, int64_t, double*,
                                     int64_t, const GemmEpilogue<double>&, int, int64_t);
template void gemm_nn<float>(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*,
                             int64_t, bool, int);
template void gemm_nn<double>(int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t, double*,
                              int64_t, bool, int);

}  // namespace cnnkernels
