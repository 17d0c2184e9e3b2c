// Winograd transform matrices baked at compile time for the specialised
// transforms (winograd_transforms.inc): exactly the float64 values of
// cnnkernels.winograd.transforms(m) (A^T and B^T for m = 2, 4, 6: all dyadic
// rationals, exact in float64; G: Python's shortest round-trip repr of each
// float64, so the same doubles). winograd_conv / winograd_transform_weights use
// the specialised code only when the matrices they are given are equal to
// these, else generic loops. Namespace-scope constexpr: internal linkage, no
// shared symbols.
#pragma once

namespace cnnkernels {
namespace wino_mats {

constexpr double kAT2[2][4] = {{1.0, 1.0, 1.0, 0.0}, {0.0, 1.0, -1.0, 1.0}};
constexpr double kBT2[4][4] = {{-1.0, 0.0, 1.0, 0.0}, {0.0, 1.0, 1.0, 0.0}, {0.0, -1.0, 1.0, 0.0}, {0.0, -1.0, 0.0, 1.0}};
constexpr double kAT4[4][6] = {{1.0, 1.0, 1.0, 1.0, 1.0, 0.0}, {0.0, 1.0, -1.0, 0.5, -2.0, 0.0}, {0.0, 1.0, 1.0, 0.25, 4.0, 0.0}, {0.0, 1.0, -1.0, 0.125, -8.0, 1.0}};
constexpr double kBT4[6][6] = {{1.0, -1.5, -2.0, 1.5, 1.0, 0.0}, {0.0, -1.0, 0.5, 2.5, 1.0, 0.0}, {0.0, 1.0, -2.5, 0.5, 1.0, 0.0}, {0.0, -2.0, -1.0, 2.0, 1.0, 0.0}, {0.0, 0.5, -1.0, -0.5, 1.0, 0.0}, {0.0, 1.0, -1.5, -2.0, 1.5, 1.0}};
constexpr double kAT6[6][8] = {{1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0}, {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.0}, {0.0, 1.0, 1.0, 4.0, 4.0, 0.25, 0.25, 0.0}, {0.0, 1.0, -1.0, 8.0, -8.0, 0.125, -0.125, 0.0}, {0.0, 1.0, 1.0, 16.0, 16.0, 0.0625, 0.0625, 0.0}, {0.0, 1.0, -1.0, 32.0, -32.0, 0.03125, -0.03125, 1.0}};
constexpr double kBT6[8][8] = {{-1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0, 0.0}, {0.0, 1.0, 1.0, -4.25, -4.25, 1.0, 1.0, 0.0}, {0.0, -1.0, 1.0, 4.25, -4.25, -1.0, 1.0, 0.0}, {0.0, 0.5, 0.25, -2.5, -1.25, 2.0, 1.0, 0.0}, {0.0, -0.5, 0.25, 2.5, -1.25, -2.0, 1.0, 0.0}, {0.0, 2.0, 4.0, -2.5, -5.0, 0.5, 1.0, 0.0}, {0.0, -2.0, 4.0, 2.5, -5.0, -0.5, 1.0, 0.0}, {0.0, -1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0}};
constexpr double kG2[4][3] = {{-1.0, 0.0, 0.0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0.0, 0.0, 1.0}};
constexpr double kG4[6][3] = {{1.0, 0.0, 0.0}, {0.3333333333333333, 0.3333333333333333, 0.3333333333333333}, {-0.3333333333333333, 0.3333333333333333, -0.3333333333333333}, {-1.0666666666666667, -0.5333333333333333, -0.26666666666666666}, {0.06666666666666667, -0.13333333333333333, 0.26666666666666666}, {0.0, 0.0, 1.0}};
constexpr double kG6[8][3] = {{-1.0, 0.0, 0.0}, {-0.2222222222222222, -0.2222222222222222, -0.2222222222222222}, {-0.2222222222222222, 0.2222222222222222, -0.2222222222222222}, {0.011111111111111112, 0.022222222222222223, 0.044444444444444446}, {0.011111111111111112, -0.022222222222222223, 0.044444444444444446}, {0.7111111111111111, 0.35555555555555557, 0.17777777777777778}, {0.7111111111111111, -0.35555555555555557, 0.17777777777777778}, {0.0, 0.0, 1.0}};

// Entry (r, c) of A^T / B^T / G for n = m + 2 (n = 4, 6, 8).
template <int N>
static constexpr double at(int r, int c) {
    return N == 4 ? kAT2[r][c] : N == 6 ? kAT4[r][c] : kAT6[r][c];
}
template <int N>
static constexpr double bt(int r, int c) {
    return N == 4 ? kBT2[r][c] : N == 6 ? kBT4[r][c] : kBT6[r][c];
}
template <int N>
static constexpr double g(int r, int c) {
    return N == 4 ? kG2[r][c] : N == 6 ? kG4[r][c] : kG6[r][c];
}

}  // namespace wino_mats
}  // namespace cnnkernels
