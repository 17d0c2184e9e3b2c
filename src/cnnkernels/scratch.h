// Reusable scratch memory for kernel workspaces.
#pragma once
#include <cstddef>

namespace cnnkernels {

// Independent arenas, so a driver's workspace and the GEMM it calls never share one.
enum class ScratchSlot { kDriver = 0, kGemmPack = 1 };

// A 64-byte aligned block of at least `bytes`, owned by the calling thread and
// valid until that thread's next thread_scratch call for the same slot (its
// contents are then undefined). Grow-only: the memory stays with the thread.
// Why: a fresh multi-MiB allocation per call is served by mmap and first-touched
// by the OpenMP workers, and those page faults cost more than the kernel
// (64->64 56x56 Winograd F4, 2 threads, Zen 4: 1.65 ms per call vs 0.50 ms with
// the memory reused). Per calling thread, so concurrent calls from several
// Python threads (the GIL is released) never share a block.
void* thread_scratch(ScratchSlot slot, size_t bytes);

template <class T>
T* thread_scratch_of(ScratchSlot slot, size_t elems) {
    return static_cast<T*>(thread_scratch(slot, elems * sizeof(T)));
}

}  // namespace cnnkernels
