// Elementwise primitives with MLX's CPU semantics (mlx-semantics.md §0.5).
#pragma once

#include <cmath>

#include "common/half.h"

namespace descent::kernels {

// sqrt and |x| of float, double and the half types of common/half.h (found by ADL), so that one
// kernel body serves every element type.
// Reading and writing a parameter or gradient element: as it is, or bfloat16 storage widened to
// float32 and rounded back to nearest even once (common/half.h).
template <class T>
inline T load(T x) {
  return x;
}
inline float load(Bf16Storage x) {
  return bf16_to_float(x.bits);
}
template <class P, class T>
inline P store(T x) {
  return x;
}
template <>
inline Bf16Storage store<Bf16Storage, float>(float x) {
  return Bf16Storage{float_to_bf16(x)};
}

template <class T>
inline T sqrt_of(T x) {
  using std::sqrt;
  return sqrt(x);
}
template <class T>
inline T abs_of(T x) {
  using std::abs;
  return abs(x);
}

// sign(NaN) = 0 and sign(-0) = +0, as MLX.
template <class T>
inline T sign(T x) {
  return x < T(0) ? T(-1) : (x > T(0) ? T(1) : T(0));
}

// maximum that propagates NaN from either side, as MLX.
template <class T>
inline T maximum_nan(T a, T b) {
  return (a > b || a != a) ? a : b;
}

}  // namespace descent::kernels
