#include "cnnkernels/elementwise.h"

#include <algorithm>
#include <cstring>

namespace cnnkernels {

template <class T>
void add_clamp_inplace(T* y, const T* r, int64_t n, bool clamp, T lo, T hi, int threads) {
    // Below ~64K elements a second thread costs more than it saves.
    const int workers = n >= (int64_t(1) << 16) ? threads : 1;
#pragma omp parallel for schedule(static) num_threads(workers) if (workers > 1)
    for (int64_t i = 0; i < n; ++i) {
        T v = y[i] + r[i];
        if (clamp) {
            v = lo > v ? lo : v;  // comparisons with NaN are false: NaN stays NaN
            v = hi < v ? hi : v;
        }
        y[i] = v;
    }
}

template void add_clamp_inplace<float>(float*, const float*, int64_t, bool, float, float, int);
template void add_clamp_inplace<double>(double*, const double*, int64_t, bool, double, double, int);

bool bytes_equal(const void* a, const void* b, int64_t n, int threads) {
    constexpr int64_t kPiece = int64_t(1) << 20;
    const int64_t pieces = (n + kPiece - 1) / kPiece;
    const char* pa = static_cast<const char*>(a);
    const char* pb = static_cast<const char*>(b);
    int differ = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(| : differ) if (threads > 1 && pieces > 1)
    for (int64_t i = 0; i < pieces; ++i) {
        const int64_t off = i * kPiece, len = std::min(kPiece, n - off);
        differ |= std::memcmp(pa + off, pb + off, size_t(len)) != 0;
    }
    return differ == 0;
}

}  // namespace cnnkernels
