#include "cnnkernels/parallel_probe.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "cnnkernels/thread_pool.h"

namespace cnnkernels {

double parallel_region_seconds(int threads, int rounds) {
    std::vector<double> seconds(static_cast<size_t>(rounds));
    for (int r = 0; r < rounds; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        // One item per thread, no stealing: the caller waits until every thread has run its own.
        pool_run(threads, threads, false, [](void*, PoolClaims& c) {
            int64_t b, e;
            while (c.next(b, e)) {
            }
        }, nullptr);
        seconds[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::nth_element(seconds.begin(), seconds.begin() + rounds / 2, seconds.end());
    return seconds[rounds / 2];
}

}  // namespace cnnkernels
