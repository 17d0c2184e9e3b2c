// A measure of how promptly the kernels' threads meet.
#pragma once

namespace cnnkernels {

// Median seconds of `rounds` empty jobs of `threads` threads in which every
// thread must take part (thread_pool.h, no stealing). About a microsecond when every thread has a
// core; milliseconds when another process holds a core, which is when timing
// multi-threaded kernels says little about them. Preconditions: threads >= 1,
// rounds >= 1.
double parallel_region_seconds(int threads, int rounds);

}  // namespace cnnkernels
