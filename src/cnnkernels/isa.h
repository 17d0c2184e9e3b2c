// Runtime ISA dispatch for the GEMM micro-kernels.
#pragma once
#include <string>
#include <vector>

#include "cnnkernels/gemm_kernels.h"

namespace cnnkernels {

// The kernel table in use, chosen once (thread-safe) at first call: the best
// ISA the CPU supports ("avx512" > "avx2" > "baseline"), or the one named by the
// environment variable CNNKERNELS_ISA=avx512|avx2|baseline when the CPU can run
// it. A value the CPU cannot run (or an unknown value) falls back to the best
// available ISA below it, never to one the CPU lacks.
const IsaKernels& active_isa_kernels();

// ISAs this build contains AND this CPU can run, best first.
std::vector<std::string> available_isas();

// The raw CNNKERNELS_ISA value seen at selection ("" if unset).
std::string requested_isa();

}  // namespace cnnkernels
