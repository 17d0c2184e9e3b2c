// Winograd transform matrices baked at compile time for the specialised
// transforms (winograd_transforms.inc): exactly the float64 values of
// cnnkernels.winograd.transforms(m) (A^T and B^T for m = 2, 4, 6; all dyadic
// rationals, exact in float64). winograd_conv uses the specialised code only
// when the matrices it is given are equal to these, else the generic sparse
// loops. Namespace-scope constexpr: internal linkage, no shared symbols.
#pragma once

namespace cnnkernels {
namespace wino_mats {

constexpr double kAT2[2][4] = {{1.0, 1.0, 1.0, 0.0}, {0.0, 1.0, -1.0, 1.0}};
constexpr double kBT2[4][4] = {{-1.0, 0.0, 1.0, 0.0}, {0.0, 1.0, 1.0, 0.0}, {0.0, -1.0, 1.0, 0.0}, {0.0, -1.0, 0.0, 1.0}};
constexpr double kAT4[4][6] = {{1.0, 1.0, 1.0, 1.0, 1.0, 0.0}, {0.0, 1.0, -1.0, 0.5, -2.0, 0.0}, {0.0, 1.0, 1.0, 0.25, 4.0, 0.0}, {0.0, 1.0, -1.0, 0.125, -8.0, 1.0}};
constexpr double kBT4[6][6] = {{1.0, -1.5, -2.0, 1.5, 1.0, 0.0}, {0.0, -1.0, 0.5, 2.5, 1.0, 0.0}, {0.0, 1.0, -2.5, 0.5, 1.0, 0.0}, {0.0, -2.0, -1.0, 2.0, 1.0, 0.0}, {0.0, 0.5, -1.0, -0.5, 1.0, 0.0}, {0.0, 1.0, -1.5, -2.0, 1.5, 1.0}};
constexpr double kAT6[6][8] = {{1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0}, {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.0}, {0.0, 1.0, 1.0, 4.0, 4.0, 0.25, 0.25, 0.0}, {0.0, 1.0, -1.0, 8.0, -8.0, 0.125, -0.125, 0.0}, {0.0, 1.0, 1.0, 16.0, 16.0, 0.0625, 0.0625, 0.0}, {0.0, 1.0, -1.0, 32.0, -32.0, 0.03125, -0.03125, 1.0}};
constexpr double kBT6[8][8] = {{-1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0, 0.0}, {0.0, 1.0, 1.0, -4.25, -4.25, 1.0, 1.0, 0.0}, {0.0, -1.0, 1.0, 4.25, -4.25, -1.0, 1.0, 0.0}, {0.0, 0.5, 0.25, -2.5, -1.25, 2.0, 1.0, 0.0}, {0.0, -0.5, 0.25, 2.5, -1.25, -2.0, 1.0, 0.0}, {0.0, 2.0, 4.0, -2.5, -5.0, 0.5, 1.0, 0.0}, {0.0, -2.0, 4.0, 2.5, -5.0, -0.5, 1.0, 0.0}, {0.0, -1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0}};

// Entry (r, c) of A^T / B^T for n = m + 2 (n = 4, 6, 8).
template <int N>
static constexpr double at(int r, int c) {
    return N == 4 ? kAT2[r][c] : N == 6 ? kAT4[r][c] : kAT6[r][c];
}
template <int N>
static constexpr double bt(int r, int c) {
    return N == 4 ? kBT2[r][c] : N == 6 ? kBT4[r][c] : kBT6[r][c];
}

}  // namespace wino_mats
}  // namespace cnnkernels
