// clip_grad_norm over a set of gradient tensors, in place (mlx-semantics.md §5).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "capi/guard.h"
#include "common/dtype.h"
#include "kernels/clip_kernel.h"
#include "schedules/builtin_schedules.h"

using descent::DType;
using descent::Error;
using descent::capi::guarded;
using descent::capi::require;
namespace kernels = descent::kernels;

namespace {

struct Tensor {
  DType dtype;
  int64_t numel;
  void* data;
};

std::string at(std::size_t i) { return "grads[" + std::to_string(i) + "]"; }

// Validates every argument before any buffer is read or written.
std::vector<Tensor> checked_tensors(std::size_t count, const descent_dtype* dtypes,
                                    const int64_t* numels, void* const* grads, double max_norm) {
  if (count > 0) {
    require(dtypes, "dtypes");
    require(numels, "numels");
    require(grads, "grads");
  }
  if (!(max_norm >= 0.0))
    throw Error(DESCENT_ERR_OUT_OF_RANGE, "max_norm must be >= 0 (got " +
                                              descent::schedules::json_number(max_norm) + ")");
  std::vector<Tensor> tensors;
  tensors.reserve(count);
  struct Range {
    std::uintptr_t begin, end;
    std::size_t index;
  };
  std::vector<Range> ranges;
  for (std::size_t i = 0; i < count; ++i) {
    const DType dt = descent::parameter_dtype(dtypes[i], at(i));
    if (numels[i] < 0)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  at(i) + ": numels[" + std::to_string(i) + "] = " + std::to_string(numels[i]) +
                      " is negative");
    if (numels[i] > PTRDIFF_MAX / 8)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  at(i) + ": numels[" + std::to_string(i) + "] = " + std::to_string(numels[i]) +
                      " is too large");
    if (numels[i] > 0 && !grads[i]) throw Error(DESCENT_ERR_NULL_ARGUMENT, at(i) + " is NULL");
    tensors.push_back(Tensor{dt, numels[i], grads[i]});
    if (numels[i] > 0) {
      const auto b = reinterpret_cast<std::uintptr_t>(grads[i]);
      ranges.push_back(Range{b, b + static_cast<std::uintptr_t>(numels[i]) * descent::dtype_size(dt), i});
    }
  }
  // Scaling in place twice through aliased buffers would be wrong: reject any overlap.
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (std::size_t k = 1; k < ranges.size(); ++k)
    if (ranges[k].begin < ranges[k - 1].end)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  at(std::min(ranges[k - 1].index, ranges[k].index)) + " and " +
                      at(std::max(ranges[k - 1].index, ranges[k].index)) + " overlap");
  return tensors;
}

double sum_squares(const std::vector<Tensor>& tensors, int exponent) {
  double sum = 0.0;
  for (const Tensor& t : tensors)
    sum += t.dtype == DType::Float32
               ? kernels::sum_squares(static_cast<const float*>(t.data), t.numel, exponent)
               : kernels::sum_squares(static_cast<const double*>(t.data), t.numel, exponent);
  return sum;
}

// sqrt(sum of squares of every element), accurate and free of overflow and underflow.
double global_norm(const std::vector<Tensor>& tensors, bool any_float64) {
  const double sum = sum_squares(tensors, 0);
  // float32 squares cannot overflow or underflow in double; float64 ones can. Then rescale
  // every element by a power of two (exact) so that the largest is in [1, 2), and sum again.
  if (any_float64 && (sum > DBL_MAX || sum < 0x1p-900)) {
    double m = 0.0;
    for (const Tensor& t : tensors) {
      const double a = t.dtype == DType::Float32
                           ? kernels::max_abs(static_cast<const float*>(t.data), t.numel)
                           : kernels::max_abs(static_cast<const double*>(t.data), t.numel);
      if (a > m || a != a) m = a;
    }
    if (std::isfinite(m) && m > 0.0) {
      const int exponent = -std::ilogb(m);
      return std::ldexp(std::sqrt(sum_squares(tensors, exponent)), -exponent);
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

extern "C" {

DESCENT_API descent_status descent_clip_grad_norm(size_t count, const descent_dtype* dtypes,
                                                  const int64_t* numels, void* const* grads,
                                                  double max_norm, double* total_norm,
                                                  char* error, size_t error_capacity) {
  return descent::capi::guarded_to(error, error_capacity, [&] {
    const std::vector<Tensor> tensors = checked_tensors(count, dtypes, numels, grads, max_norm);
    // Nothing below can fail.
    bool any_float64 = false;
    for (const Tensor& t : tensors) any_float64 = any_float64 || t.dtype == DType::Float64;
    const double total = global_norm(tensors, any_float64);
    double reported = total;
    if (!any_float64 && !(total > FLT_MAX)) {
      // All float32: MLX's total_norm, normalizer and product are float32 (weak scalars).
      const float total32 = static_cast<float>(total);
      const float max32 = max_norm > FLT_MAX ? INFINITY : static_cast<float>(max_norm);
      const float scale = min_one(max32 / (total32 + 1e-6f));
      reported = total32;
      if (scale != 1.0f)
        for (const Tensor& t : tensors)
          kernels::scale_in_place(static_cast<float*>(t.data), t.numel, scale);
    } else {
      // float64 anywhere (MLX promotes the norm to float64), or a float32 norm beyond the
      // float32 range (MLX would give inf and zero every gradient): the factor is float64 and
      // float32 tensors get x * scale rounded once to float32.
      const double scale = min_one(max_norm / (total + 1e-6));
      if (scale != 1.0)
        for (const Tensor& t : tensors) {
          if (t.dtype == DType::Float64)
            kernels::scale_in_place(static_cast<double*>(t.data), t.numel, scale);
          else
            kernels::scale_in_place_wide(static_cast<float*>(t.data), t.numel, scale);
        }
    }
    if (total_norm) *total_norm = reported;
  });
}

}  // extern "C"
