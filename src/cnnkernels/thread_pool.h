// The kernels' threads: a fork-join pool in which the calling thread never waits for a worker to wake.
//
// Why not OpenMP: a parallel region ends in a barrier that every thread of the team must reach. On the VMs
// we run on, a worker that sat idle for a while (a process between requests, a first call) takes 4-8 ms to
// be scheduled again (the scheduler tick), and the caller waits for it at the barrier: a 64->64 56x56
// convolution that takes 0.56 ms at 2 threads took 4-8 ms after a 0.2 s pause, PyTorch's 12-16 ms. Here the
// work of a job is split in one contiguous part per thread; each thread takes pieces of its own part first
// and then of the others', and the caller returns when every piece is done, so a late worker finds nothing
// left and the call costs what one thread takes. Items run exactly once; which thread runs one must not
// change its result (per-thread memory is indexed by the running thread's `tid`).
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

namespace cnnkernels {

struct PoolJob;

// The pieces one thread takes from a job.
class PoolClaims {
public:
    PoolClaims(PoolJob& job, int tid) : job_(job), tid_(tid) {}
    // The next piece [begin, end) for this thread; false when none is left (the thread's finished
    // pieces are then counted as done).
    bool next(int64_t& begin, int64_t& end);
    int tid() const { return tid_; }

private:
    PoolJob& job_;
    int tid_;
    int64_t finished_ = 0;   // items of the thread's last piece, counted at its next claim
};

using PoolBody = void (*)(void* ctx, PoolClaims& claims);

// Runs body(ctx, claims) on up to `threads` threads (the caller is tid 0) until all n items are claimed
// and done. steal = false: thread t runs exactly its own part and the caller waits for every thread (only
// for measuring how promptly the threads meet, parallel_probe.cpp). Runs on the caller alone when
// threads <= 1, when called from a pool worker, or when another thread's job holds the pool.
// Preconditions: n >= 0, threads >= 1.
void pool_run(int threads, int64_t n, bool steal, PoolBody body, void* ctx);

// How long an idle worker keeps looking for work every 50 us before it sleeps (default 1 s): a sleeping
// one takes milliseconds to wake on a VM (thread_pool.cpp). 0: sleep after the 2 ms spin.
void set_worker_doze_us(int64_t us);

// Starts the workers a job of `threads` threads needs, now (they then spin, doze and sleep as after a job).
void start_pool_workers(int threads);

// Test hook: a job of n items on `threads` threads, each item spinning `item_us` microseconds; item `throw_at`
// (none when negative) throws std::runtime_error. Returns the sum of the indices of the items run.
int64_t pool_selftest(int threads, int64_t n, int64_t throw_at, int item_us);

// f(begin, end, tid) for pieces [begin, end) covering [0, n) once.
template <class F>
void parallel_ranges(int threads, int64_t n, F&& f) {
    if (n <= 0) return;
    using Fn = std::remove_reference_t<F>;
    PoolBody body = [](void* ctx, PoolClaims& c) {
        int64_t b, e;
        while (c.next(b, e)) (*static_cast<Fn*>(ctx))(b, e, c.tid());
    };
    pool_run(threads, n, true, body, const_cast<void*>(static_cast<const void*>(&f)));
}

// f(i, tid) for every i in [0, n).
template <class F>
void parallel_for(int threads, int64_t n, F&& f) {
    parallel_ranges(threads, n, [&f](int64_t b, int64_t e, int tid) {
        for (int64_t i = b; i < e; ++i) f(i, tid);
    });
}

// f(state, begin, end) for pieces covering [0, n) once, with state = make_state() made once per thread
// that takes a piece.
template <class Make, class F>
void parallel_ranges_state(int threads, int64_t n, Make&& make_state, F&& f) {
    if (n <= 0) return;
    struct Ctx {
        Make& make;
        F& f;
    } ctx{make_state, f};
    PoolBody body = [](void* p, PoolClaims& c) {
        Ctx& x = *static_cast<Ctx*>(p);
        int64_t b, e;
        if (!c.next(b, e)) return;
        auto state = x.make();
        do
            x.f(state, b, e);
        while (c.next(b, e));
    };
    pool_run(threads, n, true, body, &ctx);
}

// f(state, i) for every i in [0, n), with state = make_state() made once per thread that takes an item.
template <class Make, class F>
void parallel_for_state(int threads, int64_t n, Make&& make_state, F&& f) {
    parallel_ranges_state(threads, n, make_state, [&f](auto& state, int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) f(state, i);
    });
}

}  // namespace cnnkernels
