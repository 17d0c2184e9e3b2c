// Dense matrix multiply used by the im2col convolution.
#pragma once
#include <cstdint>

namespace cnnkernels {

// C = (accumulate ? C : 0) + A * B, all row-major with leading dimensions
// lda/ldb/ldc (in elements).
// Preconditions: M, N, K >= 0; A is M x K, B is K x N, C is M x N; C must not
// overlap A or B; threads >= 1. Any of M, N, K may be 0 (K == 0 with
// accumulate == false zeroes C).
template <class T>
void gemm_nn(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
             T* C, int64_t ldc, bool accumulate, int threads);

}  // namespace cnnkernels
