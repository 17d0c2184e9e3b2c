#include "cnnkernels/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_SPIN_PAUSE() _mm_pause()
#else
#define CK_SPIN_PAUSE() std::this_thread::yield()
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define CK_HAVE_ATFORK 1
#endif

namespace cnnkernels {

namespace {

// How long a worker watches for the next job before it sleeps: back-to-back calls (the layers of a network,
// a benchmark loop) then find it awake; after that it costs nothing. (libgomp spins for a similar while.)
constexpr auto kSpin = std::chrono::microseconds(2000);

struct alignas(64) Part {
    std::atomic<int64_t> next{0};
    int64_t end = 0;
    int64_t grain = 1;
};

}  // namespace

// One job's description. Written by the caller only while it is closed and no worker is inside; a worker
// reads it only after announcing itself (inside) and seeing it open (see Pool::run and worker_loop).
struct PoolJob {
    PoolBody body = nullptr;
    void* ctx = nullptr;
    int threads = 1;
    bool steal = true;
    Part* parts = nullptr;   // one per thread
    alignas(64) std::atomic<int64_t> done{0};
};

namespace {

thread_local bool t_in_worker = false;

struct Pool {
    std::mutex run_mutex;   // one job at a time; a caller finding it held runs alone
    PoolJob job;
    std::unique_ptr<Part[]> parts;   // job.parts
    int capacity = 0;
    alignas(64) std::atomic<uint64_t> epoch{0};   // bumped per job: what sleeping or spinning workers watch
    std::atomic<bool> open{false};
    alignas(64) std::atomic<int> inside{0};       // workers between announcing themselves and leaving a job
    std::mutex sleep_mutex;
    std::condition_variable wake;
    std::atomic<int> sleepers{0};
    int workers = 0;   // started (tids 1..workers); guarded by run_mutex

    int start_workers(int wanted);
    void worker_loop(int tid);
    void run(int threads, int64_t n, bool steal, PoolBody body, void* ctx);
};

std::atomic<Pool*> g_pool{nullptr};
std::mutex g_pool_create;

#ifdef CK_HAVE_ATFORK
// A forked child has none of the parent's workers: it starts with a new, empty pool (the old one is left
// behind, as its mutexes may be held by threads that do not exist here).
void reset_pool_in_child() { g_pool.store(new Pool(), std::memory_order_relaxed); }
#endif

Pool& pool() {
    Pool* p = g_pool.load(std::memory_order_acquire);
    if (p) return *p;
    std::lock_guard<std::mutex> lock(g_pool_create);
    p = g_pool.load(std::memory_order_relaxed);
    if (!p) {
        p = new Pool();   // never freed: workers block on its members until the process ends
#ifdef CK_HAVE_ATFORK
        pthread_atfork(nullptr, nullptr, reset_pool_in_child);
#endif
        g_pool.store(p, std::memory_order_release);
    }
    return *p;
}

// Workers started so far, at most `wanted` (fewer when the system refuses a thread).
int Pool::start_workers(int wanted) {
    try {
        for (; workers < wanted; ++workers) {
            const int tid = workers + 1;
            std::thread([this, tid] { worker_loop(tid); }).detach();
        }
    } catch (const std::system_error&) {
    }
    return std::min(workers, wanted);
}

void Pool::worker_loop(int tid) {
    t_in_worker = true;
    uint64_t seen = 0;
    for (;;) {
        // Wait for a job newer than the last one seen: spin a while, then sleep.
        const auto until = std::chrono::steady_clock::now() + kSpin;
        int spins = 0;
        while (epoch.load(std::memory_order_acquire) == seen) {
            CK_SPIN_PAUSE();
            if (++spins % 256 == 0 && std::chrono::steady_clock::now() > until) {
                std::unique_lock<std::mutex> lock(sleep_mutex);
                sleepers.fetch_add(1);
                wake.wait(lock, [&] { return epoch.load() != seen; });
                sleepers.fetch_sub(1);
                break;
            }
        }
        seen = epoch.load(std::memory_order_acquire);
        inside.fetch_add(1);   // seq_cst with `open` below and in run(): Dekker's handshake
        if (open.load() && tid < job.threads) {
            PoolClaims claims(job, tid);
            job.body(job.ctx, claims);
        }
        inside.fetch_sub(1);
    }
}

void Pool::run(int threads, int64_t n, bool steal, PoolBody body, void* ctx) {
    threads = 1 + start_workers(threads - 1);
    if (threads > capacity) {
        parts.reset(new Part[size_t(threads)]);
        capacity = threads;
    }
    job.parts = parts.get();
    for (int t = 0; t < threads; ++t) {
        Part& p = job.parts[size_t(t)];
        const int64_t b = n * t / threads, e = n * (t + 1) / threads;
        p.next.store(b, std::memory_order_relaxed);
        p.end = e;
        // Own part in ~8 pieces: few claims, yet a thread that finishes early (or the caller, when a worker
        // is late) takes over the rest in pieces small enough to balance.
        p.grain = steal ? std::max<int64_t>(1, (e - b) / 8) : std::max<int64_t>(1, e - b);
    }
    job.body = body;
    job.ctx = ctx;
    job.threads = threads;
    job.steal = steal;
    job.done.store(0, std::memory_order_relaxed);
    open.store(true);
    epoch.fetch_add(1);
    if (sleepers.load() > 0) {
        { std::lock_guard<std::mutex> lock(sleep_mutex); }   // a worker between its check and its wait gets the notify
        wake.notify_all();
    }
    PoolClaims mine(job, 0);
    body(ctx, mine);
    // Pieces other threads took are in progress on awake threads: a short wait. (steal = false: each
    // thread's whole part, however late it wakes.)
    for (int spins = 0; job.done.load(std::memory_order_acquire) < n; ++spins) {
        CK_SPIN_PAUSE();
        if (spins > 4096) std::this_thread::yield();
    }
    open.store(false);
    while (inside.load() != 0) CK_SPIN_PAUSE();   // a worker that came late leaves without reading the job
}

}  // namespace

bool PoolClaims::next(int64_t& begin, int64_t& end) {
    if (finished_) {
        job_.done.fetch_add(finished_, std::memory_order_acq_rel);
        finished_ = 0;
    }
    const int parts = job_.threads;
    for (int k = 0; k < parts && (k == 0 || job_.steal); ++k) {
        Part& p = job_.parts[size_t((tid_ + k) % parts)];
        if (p.next.load(std::memory_order_relaxed) >= p.end) continue;
        const int64_t b = p.next.fetch_add(p.grain, std::memory_order_relaxed);
        if (b >= p.end) continue;
        begin = b;
        end = std::min(p.end, b + p.grain);
        finished_ = end - begin;
        return true;
    }
    return false;
}

void pool_run(int threads, int64_t n, bool steal, PoolBody body, void* ctx) {
    if (n <= 0) return;
    threads = int(std::min<int64_t>(threads, n));
    if (threads > 1 && !t_in_worker) {
        Pool& p = pool();
        std::unique_lock<std::mutex> lock(p.run_mutex, std::try_to_lock);
        if (lock.owns_lock()) {
            p.run(threads, n, steal, body, ctx);
            return;
        }
    }
    // Alone: one part holding every item.
    Part all;
    all.end = n;
    all.grain = n;
    PoolJob solo;
    solo.parts = &all;
    PoolClaims claims(solo, 0);
    body(ctx, claims);
}

}  // namespace cnnkernels
