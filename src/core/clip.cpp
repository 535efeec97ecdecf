// MLX's clip_grad_norm (mlx-semantics.md §5): the global norm, accurate and free of overflow,
// and the scaling in MLX's precision.
#include "core/clip.h"

#include <cfloat>
#include <cmath>

#include "common/half.h"
#include "kernels/clip_kernel.h"

namespace descent {

namespace {

bool is_float64(descent_dtype d) {
  return d == DESCENT_FLOAT64;
}

double sum_squares(std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                   void* const* grads, int exponent) {
  double sum = 0.0;
  for (std::size_t i = 0; i < count; ++i)
    sum += with_grad_type(dtypes[i], grads[i], [&](const auto* x) {
      return kernels::sum_squares(x, numels[i], exponent);
    });
  return sum;
}

// sqrt(sum of squares of every element), accurate and free of overflow and underflow.
double global_norm(std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                   void* const* grads, bool any_float64) {
  const double sum = sum_squares(count, dtypes, numels, grads, 0);
  // float32 squares cannot overflow or underflow in double; float64 ones can. Then rescale
  // every element by a power of two (exact) so that the largest is in [1, 2), and sum again.
  if (any_float64 && (sum > DBL_MAX || sum < 0x1p-900)) {
    double m = 0.0;
    for (std::size_t i = 0; i < count; ++i) {
      const double a = with_grad_type(
          dtypes[i], grads[i], [&](const auto* x) { return kernels::max_abs(x, numels[i]); });
      if (a > m || a != a) m = a;
    }
    if (std::isfinite(m) && m > 0.0) {
      const int exponent = -std::ilogb(m);
      return std::ldexp(std::sqrt(sum_squares(count, dtypes, numels, grads, exponent)), -exponent);
    }
  }
  return std::sqrt(sum);
}

// min(x, 1) propagating NaN, as MLX's minimum.
template <class T>
T min_one(T x) {
  return (x < T(1) || x != x) ? x : T(1);
}

}  // namespace

double clip_grad_norm(std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                      void* const* grads, double max_norm) noexcept {
  bool any_float64 = false;
  for (std::size_t i = 0; i < count; ++i) any_float64 = any_float64 || is_float64(dtypes[i]);
  const double total = global_norm(count, dtypes, numels, grads, any_float64);
  return clip_by_norm(count, dtypes, numels, grads, max_norm, total);
}

double clip_by_norm(std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                    void* const* grads, double max_norm, double total) noexcept {
  bool any_float64 = false;
  for (std::size_t i = 0; i < count; ++i) any_float64 = any_float64 || is_float64(dtypes[i]);
  if (!any_float64 && !(total > FLT_MAX)) {
    // All float32: MLX's total_norm, normalizer and product are float32 (weak scalars).
    const float total32 = static_cast<float>(total);
    const float max32 = max_norm > FLT_MAX ? INFINITY : static_cast<float>(max_norm);
    const float scale = min_one(max32 / (total32 + 1e-6f));
    if (scale != 1.0f)
      for (std::size_t i = 0; i < count; ++i) {
        if (dtypes[i] == DESCENT_BFLOAT16)
          kernels::scale_half_in_place(static_cast<bfloat16*>(grads[i]), numels[i], scale);
        else if (dtypes[i] == DESCENT_FLOAT16)
          kernels::scale_half_in_place(static_cast<float16*>(grads[i]), numels[i], scale);
        else
          kernels::scale_in_place(static_cast<float*>(grads[i]), numels[i], scale);
      }
    return total32;
  }
  // float64 anywhere (MLX promotes the norm to float64), or a float32 norm beyond the float32
  // range (MLX would give inf and zero every gradient): the factor is float64 and float32
  // tensors get x * scale rounded once to float32.
  const double scale = min_one(max_norm / (total + 1e-6));
  if (scale != 1.0)
    for (std::size_t i = 0; i < count; ++i) {
      if (is_float64(dtypes[i]))
        kernels::scale_in_place(static_cast<double*>(grads[i]), numels[i], scale);
      else if (dtypes[i] == DESCENT_BFLOAT16)  // through float32, as the float32 tensors
        kernels::scale_half_in_place(static_cast<bfloat16*>(grads[i]), numels[i],
                                     static_cast<float>(scale));
      else if (dtypes[i] == DESCENT_FLOAT16)
        kernels::scale_half_in_place(static_cast<float16*>(grads[i]), numels[i],
                                     static_cast<float>(scale));
      else
        kernels::scale_in_place_wide(static_cast<float*>(grads[i]), numels[i], scale);
    }
  return total;
}

}  // namespace descent
