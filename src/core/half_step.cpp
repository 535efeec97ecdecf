#include "core/half_step.h"

#include <algorithm>

namespace descent {

namespace {

// Rounds `n` float32 values into the half-precision parameter.
void write_param(const HalfTensorStep& s, int64_t at, int64_t n, const float* values) {
  auto* out = static_cast<unsigned char*>(s.t.param) + at * 2;
  if (s.stochastic)
    kernels::narrow_stochastic(s.t.dtype, n, values, out, s.key,
                               s.first + static_cast<uint64_t>(at));
  else
    kernels::narrow(s.t.dtype, n, values, out);
}

}  // namespace

void step_half_blocks(Rule& rule, const StepContext& ctx, const HalfTensorStep& s) noexcept {
  constexpr int64_t kBlock = 1024;  // 2 x 4 KiB of stack: stays in L1 with the slots' lines
  alignas(64) float param[kBlock];
  alignas(64) float grad[kBlock];
  const auto* g = static_cast<const unsigned char*>(s.t.grad);
  const auto* p = static_cast<const unsigned char*>(s.t.param);
  for (int64_t at = 0; at < s.t.numel; at += kBlock) {
    const int64_t n = std::min(kBlock, s.t.numel - at);
    float* p32 = s.master ? s.master + at : param;
    if (!s.master) kernels::widen(s.t.dtype, n, p + at * 2, param);
    kernels::widen(s.t.dtype, n, g + at * 2, grad);
    TensorStep block = s.t;
    block.dtype = DType::Float32;
    block.numel = n;
    block.param = p32;
    block.grad = grad;
    block.offset = s.t.offset + at;
    rule.apply(ctx, block);
    write_param(s, at, n, p32);
  }
}

void HalfWorkspace::reserve(int64_t numel, int64_t slot_elements, std::size_t slot_count) {
  const auto total = static_cast<std::size_t>(2 * numel + slot_elements);
  if (total * sizeof(float) > floats_.bytes()) floats_ = Buffer(total * sizeof(float));
  if (views_.size() < slot_count) {
    views_.resize(slot_count);
    ptrs_.resize(slot_count);
  }
}

void HalfWorkspace::step(Rule& rule, const StepContext& ctx, const HalfTensorStep& s,
                         DType slot_dtype, std::size_t slot_count) noexcept {
  const int64_t n = s.t.numel;
  float* param = floats_.as<float>();
  float* grad = param + n;
  float* p32 = s.master ? s.master : param;
  if (!s.master) kernels::widen(s.t.dtype, n, s.t.param, param);
  kernels::widen(s.t.dtype, n, s.t.grad, grad);
  TensorStep whole = s.t;
  whole.dtype = DType::Float32;
  whole.param = p32;
  whole.grad = grad;
  if (is_half(slot_dtype)) {
    // The "param" policy: the state is kept in the half dtype; the rule works on float32 copies.
    float* at = grad + n;
    for (std::size_t k = 0; k < slot_count; ++k) {
      Buffer* half = s.t.slots[k];
      const int64_t count = static_cast<int64_t>(half->bytes() / 2);
      kernels::widen(slot_dtype, count, half->data(), at);
      views_[k] = Buffer::view(at, static_cast<std::size_t>(count) * sizeof(float));
      ptrs_[k] = &views_[k];
      at += count;
    }
    whole.slots = ptrs_.data();
  }
  rule.apply(ctx, whole);
  if (is_half(slot_dtype))
    for (std::size_t k = 0; k < slot_count; ++k)
      kernels::narrow(slot_dtype, static_cast<int64_t>(views_[k].bytes() / sizeof(float)),
                      views_[k].as<float>(), s.t.slots[k]->data());
  write_param(s, 0, n, p32);
}

}  // namespace descent
