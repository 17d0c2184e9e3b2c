#include "cnnkernels/parallel_probe.h"

#include <algorithm>
#include <chrono>
#include <vector>

namespace cnnkernels {

double parallel_region_seconds(int threads, int rounds) {
    std::vector<double> seconds(static_cast<size_t>(rounds));
    for (int r = 0; r < rounds; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        volatile int sink = 0;
#pragma omp parallel num_threads(threads)
        {
            sink = 1;  // every thread does something, so none is optimised away
        }
        (void)sink;
        seconds[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::nth_element(seconds.begin(), seconds.begin() + rounds / 2, seconds.end());
    return seconds[rounds / 2];
}

}  // namespace cnnkernels
