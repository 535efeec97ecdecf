// Adagrad: v += g^2; p -= (lr*g) / (sqrt(v) + eps). One fused pass.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/isa.h"
#include "kernels/scalar_ops.h"

namespace descent::kernels {

template <class T>
struct AdagradCoefficients {
  T lr, eps;
};

template <class T, class P = T>
DESCENT_KERNEL_BODY void adagrad_step_body(int64_t n, P* __restrict p, const P* __restrict g,
                                           T* __restrict v, const AdagradCoefficients<T>& c) {
  for (int64_t i = 0; i < n; ++i) {
    const T gi = load(g[i]);
    const T vi = v[i] + gi * gi;
    v[i] = vi;
    p[i] = store<P>(load(p[i]) - (c.lr * gi) / (sqrt_of(vi) + c.eps));
  }
}

}  // namespace descent::kernels
