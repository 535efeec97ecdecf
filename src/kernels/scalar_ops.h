// Elementwise primitives with MLX's CPU semantics (mlx-semantics.md §0.5).
#pragma once

namespace descent::kernels {

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
