// SGD: one fused pass over (p, g, v). Every coefficient arrives already rounded to T.
#pragma once

#include <cstdint>

#include "kernels/isa.h"
#include "kernels/scalar_ops.h"

namespace descent::kernels {

template <class T>
struct SgdCoefficients {
  T lr;
  T weight_decay;  // applied as g + wd * p when has_weight_decay
  T momentum;
  T one_minus_dampening;  // used when dampened
  bool has_weight_decay, has_momentum, dampened, nesterov;
};

template <class T, class P = T>
DESCENT_KERNEL_BODY void sgd_step_body(int64_t n, P* __restrict p, const P* __restrict g,
                                       T* __restrict v, const SgdCoefficients<T>& c) {
  for (int64_t i = 0; i < n; ++i) {
    T grad = c.has_weight_decay ? load(g[i]) + c.weight_decay * load(p[i]) : load(g[i]);
    if (!c.has_momentum) {
      p[i] = store<P>(load(p[i]) - c.lr * grad);
      continue;
    }
    T vel = c.momentum * v[i];
    vel = vel + (c.dampened ? c.one_minus_dampening * grad : grad);
    v[i] = vel;
    const T upd = c.nesterov ? grad + c.momentum * vel : vel;
    p[i] = store<P>(load(p[i]) - c.lr * upd);
  }
}

}  // namespace descent::kernels
