// Adamax: v = max(b2*v, |g|) (NaN-propagating, eps outside the max), p -= (lr*m) / (v + eps).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/isa.h"

#include "kernels/scalar_ops.h"

namespace descent::kernels {

template <class T>
struct AdamaxCoefficients {
  T lr, b1, one_minus_b1, b2, eps;
};

template <class T, class P = T>
DESCENT_KERNEL_BODY void adamax_step_body(int64_t n, P* __restrict p, const P* __restrict g,
                                          T* __restrict m, T* __restrict v,
                                          const AdamaxCoefficients<T>& c) {
  for (int64_t i = 0; i < n; ++i) {
    const T gi = load(g[i]);
    const T mi = c.b1 * m[i] + c.one_minus_b1 * gi;
    const T vi = maximum_nan(c.b2 * v[i], abs_of(gi));
    m[i] = mi;
    v[i] = vi;
    p[i] = store<P>(load(p[i]) - (c.lr * mi) / (vi + c.eps));
  }
}

}  // namespace descent::kernels
