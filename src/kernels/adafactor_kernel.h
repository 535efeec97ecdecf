// Adafactor (MLX): second moments factored over the last two axes for ndim >= 2 (leading axes
// are a batch), unfactored for 0-D and 1-D; the update is clipped by its RMS, scaled by the
// learning rate, optionally averaged (first moment), and weight decay uses the same lr.
//
// Every op is rounded to T in MLX's order (mlx-semantics.md §0, §2 Adafactor):
//   mean(x)   = sum(x) * T(1.0/N), the sum accumulated in T in increasing index order
//   rsqrt(x)  = T(1) / sqrt(x)
//   u         = g*g + eps0
//   factored:   row = beta2*row + omb2*mean(u, -1);  col = beta2*col + omb2*mean(u, -2)
//               u   = (rsqrt(row / mean(row, -1))[..., :, None] * rsqrt(col)[..., None, :]) * g
//   unfactored: sq  = beta2*sq + omb2*u;  u = rsqrt(sq) * g
//   u = lr * (u / maximum(1, rms(u) / clip))
//   ea = b1*ea + (1-b1)*u; u = ea                       (first moment, when enabled)
//   p = p + p*decay                                     (decay = T(-wd)*lr, when wd != 0)
//   p = p - u
// The update u is never stored: the kernels compute it once to get rms(u) and again, the same
// way and so to the same bits, to apply it. The factored kernel keeps rsqrt(row/mean) and
// rsqrt(col) in caller-provided workspace (one value per row-state and col-state element).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/scalar_ops.h"

namespace descent::kernels {

template <class T>
struct AdafactorCoefficients {
  T lr;  // parameter scale * relative step (or the stored learning rate)
  T beta2, one_minus_beta2;
  T eps0;  // eps[0], added to g*g
  T clip_threshold;
  bool first_moment;  // beta_1 set
  T b1, one_minus_b1;
  bool apply_decay;  // weight_decay != 0
  T decay;           // T(-wd) * lr
};

// sqrt(mean(x*x)) over all n elements, as MLX's Adafactor._compute_rms.
template <class T>
T rms(int64_t n, const T* __restrict x) {
  T s = T(0);
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return std::sqrt(s * static_cast<T>(1.0 / static_cast<double>(n)));
}

namespace detail {

// maximum(1, rms / clip): the divisor of the update.
template <class T>
T clip_divisor(T sum_sq, int64_t n, T clip_threshold) {
  const T r = std::sqrt(sum_sq * static_cast<T>(1.0 / static_cast<double>(n)));
  return maximum_nan(T(1), r / clip_threshold);
}

// Everything after the clipped-and-scaled update u is known, for element i.
template <class T>
inline void finish(T* __restrict p, T* __restrict ea, int64_t i, T u, T divisor,
                   const AdafactorCoefficients<T>& c) {
  u = c.lr * (u / divisor);
  if (c.first_moment) {
    u = c.b1 * ea[i] + c.one_minus_b1 * u;
    ea[i] = u;
  }
  T pi = p[i];
  if (c.apply_decay) pi = pi + pi * c.decay;
  p[i] = pi - u;
}

}  // namespace detail

// 0-D and 1-D parameters (any n >= 1): sq has n elements; ea (n elements) only if first_moment.
template <class T>
void adafactor_unfactored_step(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict sq,
                               T* __restrict ea, const AdafactorCoefficients<T>& c) {
  T sum_sq = T(0);
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T s = c.beta2 * sq[i] + c.one_minus_beta2 * (gi * gi + c.eps0);
    sq[i] = s;
    const T u = (T(1) / std::sqrt(s)) * gi;
    sum_sq += u * u;
  }
  const T divisor = detail::clip_divisor(sum_sq, n, c.clip_threshold);
  for (int64_t i = 0; i < n; ++i)
    detail::finish(p, ea, i, (T(1) / std::sqrt(sq[i])) * g[i], divisor, c);
}

// ndim >= 2 parameters viewed as (batches, rows, cols) = (prod(shape[:-2]), shape[-2], shape[-1]),
// all three > 0. row: (batches, rows) state; col: (batches, cols) state; r_ws and c_ws:
// workspace of the same sizes; ea: (batches*rows*cols) only if first_moment.
template <class T>
void adafactor_factored_step(int64_t batches, int64_t rows, int64_t cols, T* __restrict p,
                             const T* __restrict g, T* __restrict row, T* __restrict col,
                             T* __restrict r_ws, T* __restrict c_ws, T* __restrict ea,
                             const AdafactorCoefficients<T>& c) {
  const T inv_cols = static_cast<T>(1.0 / static_cast<double>(cols));
  const T inv_rows = static_cast<T>(1.0 / static_cast<double>(rows));
  T sum_sq = T(0);
  for (int64_t b = 0; b < batches; ++b) {
    const T* gb = g + b * rows * cols;
    T* rowb = row + b * rows;
    T* colb = col + b * cols;
    T* rb = r_ws + b * rows;
    T* cb = c_ws + b * cols;
    // Second moments: mean(u, -1) per row, mean(u, -2) per column (cb holds the column sums).
    for (int64_t j = 0; j < cols; ++j) cb[j] = T(0);
    for (int64_t i = 0; i < rows; ++i) {
      const T* gr = gb + i * cols;
      T s = T(0);
      for (int64_t j = 0; j < cols; ++j) {
        const T u = gr[j] * gr[j] + c.eps0;
        s += u;
        cb[j] += u;
      }
      rowb[i] = c.beta2 * rowb[i] + c.one_minus_beta2 * (s * inv_cols);
    }
    for (int64_t j = 0; j < cols; ++j) {
      const T v = c.beta2 * colb[j] + c.one_minus_beta2 * (cb[j] * inv_rows);
      colb[j] = v;
      cb[j] = T(1) / std::sqrt(v);
    }
    // r = rsqrt(row / mean(row, -1, keepdims=True)).
    T s = T(0);
    for (int64_t i = 0; i < rows; ++i) s += rowb[i];
    const T mean = s * inv_rows;
    for (int64_t i = 0; i < rows; ++i) rb[i] = T(1) / std::sqrt(rowb[i] / mean);
    // sum(u*u) in the flat order of the tensor.
    for (int64_t i = 0; i < rows; ++i) {
      const T* gr = gb + i * cols;
      const T ri = rb[i];
      for (int64_t j = 0; j < cols; ++j) {
        const T u = (ri * cb[j]) * gr[j];
        sum_sq += u * u;
      }
    }
  }
  const T divisor = detail::clip_divisor(sum_sq, batches * rows * cols, c.clip_threshold);
  for (int64_t b = 0; b < batches; ++b) {
    const T* rb = r_ws + b * rows;
    const T* cb = c_ws + b * cols;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t base = (b * rows + i) * cols;
      const T ri = rb[i];
      for (int64_t j = 0; j < cols; ++j)
        detail::finish(p, ea, base + j, (ri * cb[j]) * g[base + j], divisor, c);
    }
  }
}

}  // namespace descent::kernels
