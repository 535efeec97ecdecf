// Adagrad: v += g^2; p -= (lr*g) / (sqrt(v) + eps). One fused pass.
#pragma once

#include <cmath>
#include <cstdint>

namespace descent::kernels {

template <class T>
struct AdagradCoefficients {
  T lr, eps;
};

template <class T>
void adagrad_step(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict v,
                  const AdagradCoefficients<T>& c) {
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T vi = v[i] + gi * gi;
    v[i] = vi;
    p[i] = p[i] - (c.lr * gi) / (std::sqrt(vi) + c.eps);
  }
}

}  // namespace descent::kernels
