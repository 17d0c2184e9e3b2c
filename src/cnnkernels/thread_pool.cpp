#include "cnnkernels/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <new>
#include <mutex>
#include <string>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

// Spin-waits re-read memory without the x86 `pause` instruction: on a VM, a run of pauses makes the hypervisor
// take the CPU away (pause-loop exiting), and a spinning worker then answered a new job 2 ms late instead of
// in 0.6 us (wake.py in the session notes).
#if defined(__GNUC__)
#define CK_SPIN_WAIT() asm volatile("" ::: "memory")
#else
#define CK_SPIN_WAIT() std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define CK_HAVE_ATFORK 1
#endif
#if defined(__linux__)
#include <sched.h>
#endif

namespace cnnkernels {

namespace {

// How long a worker spins for the next job before it dozes: back-to-back calls (the layers of a network,
// a benchmark loop) then find it awake. (libgomp spins for a similar while.)
constexpr auto kSpin = std::chrono::microseconds(2000);

// Then it dozes: it looks again every kDozeStep for up to the doze time (set_worker_doze_us). Why: a thread
// that sleeps longer than ~0.2 ms leaves its virtual CPU halted, and on the VMs we run on a halted CPU is
// resumed at the host's next tick: a sleeping worker took 1.4-4 ms to start on a new job, one looking every
// 50 us 0.01-0.12 ms (wake.cpp in the session notes). Looks 100 us apart already left a 3.9 ms tail.
// Cost: ~15% of one core while dozing (measured here).
constexpr auto kDozeStep = std::chrono::microseconds(50);
std::atomic<int64_t> g_doze_us{1000000};

// Cores this process may run on. Workers past that count (tid >= cores) do not spin when idle: they would take
// the cores the working threads need (libgomp throttles its spinning likewise); they doze at once.
int usable_cores() {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
    return std::max(1, int(std::thread::hardware_concurrency()));
}

// The caller's waits (on threads that are awake): spin, then yield the core if it takes long.
template <class Done>
void spin_until(Done done) {
    for (int spins = 0; !done(); ++spins) {
        CK_SPIN_WAIT();
        if (spins > 4096) std::this_thread::yield();
    }
}

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
    uint64_t id = 0;         // the epoch that announced it: a worker runs a job once
    alignas(64) std::atomic<int64_t> done{0};
    std::atomic<bool> failed{false};   // a piece threw: no more pieces are handed out
    std::mutex error_mutex;
    std::exception_ptr error;          // the first exception, rethrown by the caller

    // Runs the body for thread `tid`; an exception stops the job (the other threads find no pieces left).
    void run_body(int tid) noexcept {
        try {
            PoolClaims claims(*this, tid);
            body(ctx, claims);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
            failed.store(true);
            for (int t = 0; t < threads; ++t) parts[t].next.store(parts[t].end);
        }
    }
};

namespace {

// A pool worker, or a caller inside its job: a job started from there runs inline (the pool is taken).
thread_local bool t_in_job = false;

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
    const int cores = usable_cores();

    int start_workers(int wanted);
    void worker_loop(int tid);
    void run(int threads, int64_t n, bool steal, PoolBody body, void* ctx);
};

std::atomic<Pool*> g_pool{nullptr};
std::mutex g_pool_create;

#ifdef CK_HAVE_ATFORK
// A forked child has none of the parent's workers: it starts with no pool and makes a new one at its first
// threaded call (the old one is left behind, as its mutexes may be held by threads that do not exist here).
void reset_pool_in_child() {
    g_pool.store(nullptr, std::memory_order_relaxed);
    new (&g_pool_create) std::mutex();   // could have been held by another thread at the fork
}
// Registered when the library loads, so no fork can come between a pool's creation and the registration.
const int g_atfork_registered = pthread_atfork(nullptr, nullptr, reset_pool_in_child);
#endif

Pool& pool() {
    Pool* p = g_pool.load(std::memory_order_acquire);
    if (p) return *p;
    std::lock_guard<std::mutex> lock(g_pool_create);
    p = g_pool.load(std::memory_order_relaxed);
    if (!p) {
        p = new Pool();   // never freed: workers block on its members until the process ends
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
    t_in_job = true;
    uint64_t seen = 0, served = 0;
    const bool may_spin = tid < cores;
    for (;;) {
        // Wait for a job newer than the last one seen: spin a while, doze a while, then sleep.
        const auto idle_from = std::chrono::steady_clock::now();
        const auto doze_until = idle_from + std::chrono::microseconds(g_doze_us.load(std::memory_order_relaxed));
        int spins = 0;
        while (epoch.load(std::memory_order_acquire) == seen) {
            CK_SPIN_WAIT();
            if (++spins % 256 == 0 && (!may_spin || std::chrono::steady_clock::now() > idle_from + kSpin)) break;
        }
        while (epoch.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < doze_until)
            std::this_thread::sleep_for(kDozeStep);
        if (epoch.load(std::memory_order_acquire) == seen) {
            std::unique_lock<std::mutex> lock(sleep_mutex);
            sleepers.fetch_add(1);
            wake.wait(lock, [&] { return epoch.load() != seen; });
            sleepers.fetch_sub(1);
        }
        seen = epoch.load(std::memory_order_acquire);
        inside.fetch_add(1);   // seq_cst with `open` below and in run(): Dekker's handshake
        // (A worker may meet a job before its epoch is bumped, under the previous `seen`: `served` keeps it
        // from entering the same job twice.)
        if (open.load() && job.id != served && tid < job.threads) {
            served = job.id;
            job.run_body(tid);
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
    job.failed.store(false, std::memory_order_relaxed);
    job.error = nullptr;
    job.id = epoch.load(std::memory_order_relaxed) + 1;   // only this thread bumps epoch (run_mutex)
    open.store(true);
    epoch.fetch_add(1);
    if (sleepers.load() > 0) {
        { std::lock_guard<std::mutex> lock(sleep_mutex); }   // a worker between its check and its wait gets the notify
        wake.notify_all();
    }
    job.run_body(0);
    // Pieces other threads took are in progress on awake threads: a short wait. (steal = false: each
    // thread's whole part, however late it wakes.)
    spin_until([&] { return job.done.load(std::memory_order_acquire) >= n || job.failed.load(); });
    open.store(false);
    // A worker that came late leaves without reading the job; after a failure, others finish their piece.
    spin_until([&] { return inside.load() == 0; });
    if (job.error) std::rethrow_exception(job.error);
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

int64_t pool_selftest(int threads, int64_t n, int64_t throw_at, int item_us) {
    std::atomic<int64_t> sum{0};
    parallel_for(threads, n, [&](int64_t i, int) {
        if (i == throw_at) throw std::runtime_error("pool self-test: item " + std::to_string(i) + " threw");
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(item_us);
        while (std::chrono::steady_clock::now() < until) CK_SPIN_WAIT();
        sum.fetch_add(i);
    });
    return sum.load();
}

void set_worker_doze_us(int64_t us) { g_doze_us.store(std::max<int64_t>(0, us), std::memory_order_relaxed); }

void start_pool_workers(int threads) {
    if (threads <= 1 || t_in_job) return;
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.run_mutex);
    p.start_workers(threads - 1);
}

void pool_run(int threads, int64_t n, bool steal, PoolBody body, void* ctx) {
    if (n <= 0) return;
    threads = int(std::min<int64_t>(threads, n));
    if (threads > 1 && !t_in_job) {
        Pool& p = pool();
        std::unique_lock<std::mutex> lock(p.run_mutex, std::try_to_lock);
        if (lock.owns_lock()) {
            struct InJob {   // (reset however run() ends)
                InJob() { t_in_job = true; }
                ~InJob() { t_in_job = false; }
            } in_job;
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
