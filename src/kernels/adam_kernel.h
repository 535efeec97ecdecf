// Adam and AdamW: one fused pass over (p, g, m, v).
// AdamW's decoupled decay p * (1 - lr*wd) happens before the Adam step (decay == 1 for Adam).
// Without bias correction: p -= (lr*m) / (sqrt(v) + eps)
// With bias correction:    p -= (c1*m) / (sqrt(v)*c2 + eps), c1 = lr/bc1, c2 = 1/sqrt(bc2)
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/isa.h"
#include "kernels/scalar_ops.h"

namespace descent::kernels {

template <class T>
struct AdamCoefficients {
  T decay;  // multiplier applied to p first (AdamW), exactly 1 for Adam
  bool apply_decay;
  T b1, one_minus_b1, b2, one_minus_b2, eps;
  T step_scale;  // lr, or c1 with bias correction
  T c2;          // 1/sqrt(1 - b2^t) with bias correction
  bool bias_correction;
};

template <class T, class P = T>
DESCENT_KERNEL_BODY void adam_step_body(int64_t n, P* __restrict p, const P* __restrict g,
                                        T* __restrict m, T* __restrict v,
                                        const AdamCoefficients<T>& c) {
  for (int64_t i = 0; i < n; ++i) {
    const T gi = load(g[i]);
    const T mi = c.b1 * m[i] + c.one_minus_b1 * gi;
    const T vi = c.b2 * v[i] + c.one_minus_b2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    const T pi = c.apply_decay ? load(p[i]) * c.decay : load(p[i]);
    const T denom = c.bias_correction ? sqrt_of(vi) * c.c2 + c.eps : sqrt_of(vi) + c.eps;
    p[i] = store<P>(pi - (c.step_scale * mi) / denom);
  }
}

}  // namespace descent::kernels
