// MLX's clip_grad_norm over a set of gradient tensors, in place (mlx-semantics.md §5).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/half.h"
#include "descent/descent.h"

namespace descent {

// Calls f with grads[i] as a typed pointer: float, double, bfloat16 or float16 (common/half.h).
template <class F>
auto with_grad_type(descent_dtype dtype, void* data, F&& f) {
  switch (dtype) {
    case DESCENT_FLOAT64:
      return f(static_cast<double*>(data));
    case DESCENT_BFLOAT16:
      return f(static_cast<bfloat16*>(data));
    case DESCENT_FLOAT16:
      return f(static_cast<float16*>(data));
    default:
      return f(static_cast<float*>(data));
  }
}

// grads[i] holds numels[i] elements of dtypes[i], which the caller has checked: float32 or
// float64, numels >= 0, data present when numels > 0, no two buffers overlapping, max_norm >= 0.
// Scales every tensor by min(1, max_norm / (total + 1e-6)) in MLX's precision and returns the
// norm before clipping as MLX reports it. Neither allocates nor throws.
double clip_grad_norm(std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                      void* const* grads, double max_norm) noexcept;

// The second half of clip_grad_norm: scales by min(max_norm / (total + 1e-6), 1) given the global
// norm `total` (as global_norm computes it), in MLX's precision; returns the norm to report. For
// the sharded clip (src/distributed), which computes the norm from per-tensor sums.
double clip_by_norm(std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                    void* const* grads, double max_norm, double total) noexcept;

}  // namespace descent
