// Problem descriptions shared by all kernels. Plain data, no Python types, so the
// library can be reused from any front end.
#pragma once
#include <cstdint>
#include <limits>

namespace cnnkernels {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Spatial dims are always (D, H, W); 1-D / 2-D problems use size-1 leading dims.
// pad is the padding BEFORE each dim; the padding after is implied by out[].
struct ConvGeometry {
    int64_t N, C, K, groups;
    int64_t in[3], out[3], kernel[3], stride[3], pad[3], dilation[3];
};

// planes = N * C: pooling never mixes channels, so each plane is independent.
struct PoolGeometry {
    int64_t planes;
    int64_t in[3], out[3], kernel[3], stride[3], pad_before[3], pad_after[3], dilation[3];
};

namespace detail {

// Ceil division that is also right for negative numerators (b > 0).
inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

// Output positions o in [0, out) whose input index o*stride + offset lies in [0, in).
// Returns an empty range (lo == hi) when there are none. Lets inner loops run
// without per-element bounds checks.
inline void valid_out_range(int64_t out, int64_t stride, int64_t offset, int64_t in,
                            int64_t& lo, int64_t& hi) {
    lo = ceil_div(-offset, stride);
    hi = ceil_div(in - offset, stride);
    if (lo < 0) lo = 0;
    if (hi > out) hi = out;
    if (hi < lo) hi = lo;
}

}  // namespace detail
}  // namespace cnnkernels
