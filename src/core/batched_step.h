// One step of an elementwise rule over the tensors of an update, on one or several threads:
// float32 and float64 tensors go to the rule in batches (Rule::apply_batch, so the coefficients
// and the instruction set are chosen once per batch, not once per tensor), the half-precision
// ones one at a time through a callback (they need the optimizer's precision policy).
//
// With several workers, the update's elements, tensor after tensor, form one range [0, total)
// cut into `workers` nearly equal contiguous parts; a cut inside a tensor moves down to a
// multiple of 64 bytes from the tensor's start. Worker k updates part k: whole tensors (many
// small ones) or a range of one (a large one). Every element is computed by the same code
// whatever the cut, so the results do not depend on the thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "kernels/batch_kernel.h"
#include "optimizers/rule.h"

namespace descent {

// What a step needs of a declared parameter, kept in one compact array by parameter index so
// that an update of 10,000 small tensors reads 32 bytes per tensor of bookkeeping.
struct StepTarget {
  int64_t numel;
  DType dtype;
  void* slots[kernels::kMaxBatchSlots];  // the first state slots' data (the rule's, in order)
};

struct BatchedUpdate {
  Rule* rule;
  const StepContext* ctx;
  const StepTarget* targets;  // by parameter index
  std::size_t count;          // tensors in the update; tensor t is parameter indices[t]
  const std::size_t* indices;
  // The tensors' buffers: params[t] and grads[t], or, for a flat update (flat_offsets set),
  // flat_params + flat_offsets[t] and flat_grads + flat_offsets[t].
  void* const* params;
  const void* const* grads;
  unsigned char* flat_params;
  const unsigned char* flat_grads;
  const std::size_t* flat_offsets;
  // Steps elements [begin, end) of a half-precision tensor (parameter `index`; param and grad
  // point at its element 0).
  void (*step_half)(void* owner, const StepContext& ctx, std::size_t index, void* param,
                    const void* grad, int64_t begin, int64_t end) noexcept;
  void* owner;
};

// prefix[t] = the elements of tensors [0, t) of the update, for t in [0, count]; returns the total.
int64_t fill_prefix(const BatchedUpdate& u, int64_t* prefix) noexcept;

// Steps every tensor of `u` with `workers` threads (1: on the caller, `prefix` unused; else
// `prefix` as fill_prefix leaves it). Does not allocate.
void run_batched_step(const BatchedUpdate& u, std::size_t workers, const int64_t* prefix) noexcept;

}  // namespace descent
