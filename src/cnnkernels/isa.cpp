#include "cnnkernels/isa.h"

#include <cstdlib>
#include <cstring>

namespace cnnkernels {
namespace {

bool cpu_has(const char* isa) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (std::strcmp(isa, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (std::strcmp(isa, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return std::strcmp(isa, "baseline") == 0;
}

struct Candidate {
    const char* name;
    const IsaKernels* (*table)();
};
const Candidate kCandidates[] = {
    {"avx512", &isa_kernels_avx512}, {"avx2", &isa_kernels_avx2}, {"baseline", &isa_kernels_baseline}};

const IsaKernels* usable(const Candidate& c) { return cpu_has(c.name) ? c.table() : nullptr; }

struct Selection {
    const IsaKernels* kernels;
    std::string requested;
};

Selection select() {
    Selection s{nullptr, ""};
    const char* env = std::getenv("CNNKERNELS_ISA");
    if (env) s.requested = env;
    // Start at the requested ISA (or the best one) and take the first usable one.
    size_t start = 0;
    for (size_t i = 0; i < sizeof(kCandidates) / sizeof(kCandidates[0]); ++i)
        if (s.requested == kCandidates[i].name) start = i;
    for (size_t i = start; i < sizeof(kCandidates) / sizeof(kCandidates[0]) && !s.kernels; ++i)
        s.kernels = usable(kCandidates[i]);
    if (!s.kernels) s.kernels = isa_kernels_baseline();
    return s;
}

const Selection& selection() {
    static const Selection s = select();
    return s;
}

}  // namespace

const IsaKernels& active_isa_kernels() { return *selection().kernels; }

std::vector<std::string> available_isas() {
    std::vector<std::string> out;
    for (const Candidate& c : kCandidates)
        if (usable(c)) out.push_back(c.name);
    return out;
}

std::string requested_isa() { return selection().requested; }

}  // namespace cnnkernels
