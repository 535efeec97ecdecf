// AdaDelta: eps inside both square roots, the old u in the step. One fused pass over (p,g,v,u).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/isa.h"
#include "kernels/scalar_ops.h"

namespace descent::kernels {

template <class T>
struct AdadeltaCoefficients {
  T lr, rho, one_minus_rho, eps;
};

template <class T, class P = T>
DESCENT_KERNEL_BODY void adadelta_step_body(int64_t n, P* __restrict p, const P* __restrict g,
                                            T* __restrict v, T* __restrict u,
                                            const AdadeltaCoefficients<T>& c) {
  for (int64_t i = 0; i < n; ++i) {
    const T gi = load(g[i]);
    const T ui = u[i];
    const T vi = c.rho * v[i] + c.one_minus_rho * (gi * gi);
    const T d = (sqrt_of(ui + c.eps) / sqrt_of(vi + c.eps)) * gi;
    v[i] = vi;
    u[i] = c.rho * ui + c.one_minus_rho * (d * d);
    p[i] = store<P>(load(p[i]) - c.lr * d);
  }
}

}  // namespace descent::kernels
