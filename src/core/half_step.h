// Stepping a bfloat16/float16 parameter with a rule that computes in float32 (the "float32" and
// "master" state-precision policies, and Adafactor/Muon under every policy): the parameter and
// gradient are widened to float32 (exact), the rule runs its float32 code unchanged, and the
// result is rounded to the parameter's dtype once. So a half-precision run is, bit for bit, the
// float32 run on the same (rounded) inputs, with the parameter rounded after each step
// (docs/precision.md).
#pragma once

#include <cstdint>
#include <vector>

#include "common/buffer.h"
#include "core/precision.h"
#include "kernels/convert_kernel.h"
#include "optimizers/rule.h"

namespace descent {

struct HalfTensorStep {
  TensorStep t;     // dtype: the half dtype; param/grad at element t.offset of the slots
  float* master;    // the master slot at element t.offset (master policy), else null
  bool stochastic;  // round the parameter stochastically
  kernels::RoundingKey key;
  uint64_t first;  // the parameter-wide index of the element at t.param (stochastic draws)
};

// An elementwise rule: the tensor goes through the rule in blocks that fit in L1, via stack
// buffers. Allocates nothing; safe to run on several threads for disjoint element ranges.
void step_half_blocks(Rule& rule, const StepContext& ctx, const HalfTensorStep& s) noexcept;

// Float32 copies of one whole tensor for a rule that needs the whole tensor (Adafactor, Muon):
// sized at init for the largest half-precision parameter, used by one step at a time.
class HalfWorkspace {
 public:
  HalfWorkspace() = default;
  // A copy has room of the same size (the contents are scratch).
  HalfWorkspace(const HalfWorkspace& o)
      : floats_(o.floats_.bytes()), views_(o.views_.size()), ptrs_(o.ptrs_.size()) {}
  HalfWorkspace(HalfWorkspace&&) noexcept = default;
  HalfWorkspace& operator=(HalfWorkspace&&) noexcept = default;
  HalfWorkspace& operator=(const HalfWorkspace&) = delete;

  // Room for a parameter, its gradient and, when `slot_counts` > 0, that many slot elements.
  void reserve(int64_t numel, int64_t slot_elements, std::size_t slot_count);
  // Widens (param unless master, grad, and half slots under the "param" policy), runs the rule on
  // float32 buffers, rounds the results back. `slot_dtype` is the dtype of t's slots.
  void step(Rule& rule, const StepContext& ctx, const HalfTensorStep& s, DType slot_dtype,
            std::size_t slot_count) noexcept;

 private:
  Buffer floats_;
  std::vector<Buffer> views_;  // float32 views standing in for half slots
  std::vector<Buffer*> ptrs_;  // what the rule gets as its slots
};

}  // namespace descent
