#include "cnnkernels/elementwise.h"

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

}  // namespace cnnkernels
