// Lion: c = b1*m + (1-b1)*g with the old m; m = b2*m + (1-b2)*g; optional decay (1 - lr*wd)*p;
// p -= lr * sign(c). One fused pass over (p, g, m).
#pragma once

#include <cstdint>

#include "kernels/isa.h"

#include "kernels/scalar_ops.h"

namespace descent::kernels {

template <class T>
struct LionCoefficients {
  T lr, b1, one_minus_b1, b2, one_minus_b2;
  T decay;  // (1 - lr*wd), applied when apply_decay
  bool apply_decay;
};

template <class T, class P = T>
DESCENT_KERNEL_BODY void lion_step_body(int64_t n, P* __restrict p, const P* __restrict g,
                                        T* __restrict m, const LionCoefficients<T>& c) {
  for (int64_t i = 0; i < n; ++i) {
    const T gi = load(g[i]);
    const T mi = m[i];
    const T dir = c.b1 * mi + c.one_minus_b1 * gi;
    m[i] = c.b2 * mi + c.one_minus_b2 * gi;
    const T pi = c.apply_decay ? c.decay * load(p[i]) : load(p[i]);
    p[i] = store<P>(pi - c.lr * sign(dir));
  }
}

}  // namespace descent::kernels
