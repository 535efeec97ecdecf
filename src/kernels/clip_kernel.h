// clip_grad_norm's two passes: the sum of squares (accumulated in double, pairwise over blocks,
// so that it is accurate for very large tensors and cannot overflow for float32 data) and the
// in-place scaling.
#pragma once

#include <cmath>
#include <cstdint>

namespace descent::kernels {

// Blocks of this many elements are summed with 8 independent double accumulators; blocks are
// combined pairwise. The rounding error is then about (kSumSquaresBlock / 8 + log2(n / block))
// ulps of the result, against n ulps for one running sum.
constexpr int64_t kSumSquaresBlock = 1024;

// Sum of (x[i] * 2^exponent)^2 over one block. exponent is 0 except on the rescaled pass that
// protects float64 data from overflow and underflow (ldexp is exact there).
template <class T>
double sum_squares_block(const T* x, int64_t n, int exponent) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  if (exponent == 0) {
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 8; ++k) {
        const double v = static_cast<double>(x[i + k]);  // a float32 square is exact in double
        acc[k] += v * v;
      }
    for (; i < n; ++i) {
      const double v = static_cast<double>(x[i]);
      acc[i & 7] += v * v;
    }
  } else {
    for (; i < n; ++i) {
      const double v = std::ldexp(static_cast<double>(x[i]), exponent);
      acc[i & 7] += v * v;
    }
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Pairwise (recursive halving) sum of squares; the recursion depth is log2(n / block).
template <class T>
double sum_squares(const T* x, int64_t n, int exponent = 0) {
  if (n <= kSumSquaresBlock) return sum_squares_block(x, n, exponent);
  int64_t half = n / 2;
  half -= half % 8;
  return sum_squares(x, half, exponent) + sum_squares(x + half, n - half, exponent);
}

// Largest |x[i]|, NaN if any element is NaN.
template <class T>
double max_abs(const T* x, int64_t n) {
  double m = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double a = std::fabs(static_cast<double>(x[i]));
    if (a > m || a != a) m = a;
    if (m != m) break;
  }
  return m;
}

// x[i] = x[i] * s, rounded to T (MLX's g * normalizer in the gradient's dtype).
template <class T>
void scale_in_place(T* x, int64_t n, T s) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] * s;
}

// Half-precision data (common/half.h) times a float32 factor, computed in float32 and rounded once
// to the half dtype.
template <class H>
void scale_half_in_place(H* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] = H(static_cast<float>(x[i]) * s);
}

// float32 data times a float64 factor, computed in double and rounded once to float32.
inline void scale_in_place_wide(float* x, int64_t n, double s) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(static_cast<double>(x[i]) * s);
}

}  // namespace descent::kernels
