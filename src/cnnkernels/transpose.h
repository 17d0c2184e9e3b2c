// Layout conversion between channels-first and channels-last arrays.
#pragma once
#include <cstdint>

namespace cnnkernels {

// dst[b][c][r] = src[b][r][c] for b < B, r < R, c < C: the last two axes of a (B, R, C) array swapped,
// for elements of E bytes (E = 4 or 8: float32, float64, int64 indices). Tiles of 16 x 16 elements, so
// that both sides are read and written in whole cache lines; threads over (b, row tile) pairs.
// Why: NumPy's strided copy for the same swap took 245 us on a 512 x 196 float32 plane (writing the
// channels-first side; this: 32 us), while the channels-last pooling it serves took 30 us.
// Preconditions: src and dst hold B * R * C elements each and do not overlap; threads >= 1.
template <int E>
void swap_last_axes(const void* src, void* dst, int64_t B, int64_t R, int64_t C, int threads);

}  // namespace cnnkernels
