#include "cnnkernels/scratch.h"

#include <cstdlib>
#include <cstdint>
#include <new>
#include <vector>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif


namespace cnnkernels {
namespace {

// Plain 64-byte aligned blocks. (Tried: 2 MiB aligned blocks with
// madvise(MADV_HUGEPAGE); with this machine's THP defrag=madvise the first
// touch could stall in compaction, 4-26 ms instead of 1-7 ms.)

struct Arena {
    void* p = nullptr;
    size_t capacity = 0;
    ~Arena() { release(); }
    void release() {
        std::free(p);
        p = nullptr;
        capacity = 0;
    }
    void allocate(size_t bytes) {
        bytes = (bytes + 63) / 64 * 64;
        void* q = nullptr;
        if (posix_memalign(&q, 64, bytes) != 0) throw std::bad_alloc();
        p = q;
        capacity = bytes;
    }
};

constexpr int kSlots = 3;
thread_local Arena arenas[kSlots];

}  // namespace

void* thread_scratch(ScratchSlot slot, size_t bytes) {
    Arena& a = arenas[static_cast<int>(slot)];
    if (bytes > a.capacity) {
        // Grow by at least a quarter so a slowly growing sequence of shapes
        // does not reallocate on every call.
        const size_t want = bytes > a.capacity + a.capacity / 4 ? bytes : a.capacity + a.capacity / 4;
        a.release();
        a.allocate(want);
    }
    return a.p;
}

void prewarm_heap(size_t bytes) {
    if (bytes == 0) return;
    // The compiler may drop a malloc/free pair whose memory is unused: the first block escapes through an
    // empty asm, the second is written through a volatile pointer (one byte per page faults the page in).
    void* first = std::malloc(bytes);  // mmap'd; raises the mmap threshold when freed
    asm volatile("" : : "r"(first) : "memory");
    std::free(first);
    volatile char* p = static_cast<volatile char*>(std::malloc(bytes));
    if (p == nullptr) return;
    // On the calling thread only: this heap (the main arena) is the one the caller's np.empty draws from.
    for (size_t i = 0; i < bytes; i += 4096) p[i] = 0;
    std::free(const_cast<char*>(p));
}

bool pages_resident(const void* p, size_t bytes) {
#if defined(__linux__)
    const long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || bytes == 0) return false;
    const uintptr_t first = reinterpret_cast<uintptr_t>(p) / uintptr_t(page) * uintptr_t(page);
    const uintptr_t end = reinterpret_cast<uintptr_t>(p) + bytes;
    std::vector<unsigned char> resident((end - first + page - 1) / page);
    if (mincore(reinterpret_cast<void*>(first), end - first, resident.data()) != 0) return false;
    for (unsigned char r : resident)
        if (!(r & 1)) return false;
    return true;
#else
    (void)p;
    (void)bytes;
    return false;
#endif
}

}  // namespace cnnkernels
