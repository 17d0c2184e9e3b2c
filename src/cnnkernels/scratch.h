// Reusable scratch memory for kernel workspaces.
#pragma once
#include <cstddef>

namespace cnnkernels {

// Independent arenas, so a driver's workspace and the GEMM it calls never share one.
enum class ScratchSlot { kDriver = 0, kGemmPack = 1, kTileSums = 2 };

// A 64-byte aligned block of at least `bytes`, owned by the calling thread and
// valid until that thread's next thread_scratch call for the same slot (its
// contents are then undefined). Grow-only: the memory stays with the thread.
// Why: a fresh multi-MiB allocation per call is served by mmap and first-touched
// by the pool's workers, and those page faults cost more than the kernel
// (64->64 56x56 Winograd F4, 2 threads, Zen 4: 1.65 ms per call vs 0.50 ms with
// the memory reused). Per calling thread, so concurrent calls from several
// Python threads (the GIL is released) never share a block.
void* thread_scratch(ScratchSlot slot, size_t bytes);

template <class T>
T* thread_scratch_of(ScratchSlot slot, size_t elems) {
    return static_cast<T*>(thread_scratch(slot, elems * sizeof(T)));
}

// Touch `bytes` of the process heap once and give them back to malloc, so the first
// kernel call of a process does not pay for fresh memory. Why: a first touch costs
// ~2 us per 4 KiB page on the VMs we measured (0.56 ms per MB); a first call's output
// and workspace were mostly page faults (1x1 64->256 on 56x56: 3.7 ms first vs 0.6 ms
// steady). glibc serves a block above its mmap threshold by mmap and, when it is freed,
// raises the threshold to the block's size (up to 32 MiB) and the trim threshold to
// twice that; the second block of that size then comes from the heap and stays there
// when freed. Costs: `bytes` of resident memory kept by malloc, glibc's thresholds
// raised for the process, and no effect where the thresholds are fixed
// (MALLOC_MMAP_THRESHOLD_, mallopt) or another allocator is used.
void prewarm_heap(size_t bytes);

// Whether every page of [p, p + bytes) is resident, i.e. written before by this process (Linux: mincore;
// false elsewhere or on error). Why: streaming stores win on such memory and lose on fresh pages, which the
// kernel zeroes through the cache at the first touch (winograd_transform_weights).
bool pages_resident(const void* p, size_t bytes);

}  // namespace cnnkernels
