// An update rule: the part of an optimizer that differs between kinds. It declares its
// hyperparameter schema and per-parameter state slots, and applies one step to one tensor.
// Step counting, learning-rate storage, parameter bookkeeping and validation of buffers are
// the Optimizer's job (core/optimizer.h), so a rule only does arithmetic.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/buffer.h"
#include "common/dtype.h"
#include "common/half.h"
#include "common/shape.h"
#include "config/hyperparameters.h"
#include "kernels/batch_kernel.h"
#include "kernels/isa.h"

namespace descent {

struct SlotSpec {
  std::string name;  // "m", "v", ...
  Shape shape;
};

struct StepContext {
  uint64_t step;        // already incremented: 1 on the first update
  float learning_rate;  // as MLX stores it (float32)
  bool has_learning_rate;
};

struct TensorStep {
  DType dtype;
  const Shape* shape;
  int64_t numel;
  void* param;
  const void* grad;
  Buffer* const* slots;  // in the order of Rule::slots()
  // Elementwise rules only (Rule::elementwise()): param and grad point at element `offset` of
  // the tensor and numel counts from there; the slots are indexed from the same element.
  int64_t offset = 0;
  std::size_t tensor = 0;  // the parameter's index in its optimizer (the optimizer's bookkeeping)
  // A bfloat16 tensor whose step computes in float32 from float32 slots and rounds the parameter
  // once (the "float32" state precision without stochastic rounding); else MLX's rounding.
  bool float32_compute = false;
};

// MLX's promote(T, float32): float32 for float32 and the half types, float64 for float64.
template <class T>
using PromotedWithFloat = std::conditional_t<std::is_same_v<T, double>, double, float>;

class Rule {
 public:
  virtual ~Rule() = default;
  virtual std::unique_ptr<Rule> clone() const = 0;
  virtual const Schema& schema() const = 0;
  // False for rules (Adafactor) whose learning rate may be absent.
  virtual bool requires_learning_rate() const { return true; }
  // Whether a step needs a learning rate under these hyperparameters (checked at init and
  // update: DESCENT_ERR_INVALID_STATE when it is missing). Adafactor needs one only when
  // relative_step is false.
  virtual bool needs_learning_rate(const Hyperparameters& /*h*/) const {
    return requires_learning_rate();
  }
  // The state slots of a parameter, given the configured hyperparameters.
  virtual std::vector<SlotSpec> slots(const Shape& param_shape) const = 0;
  // Slots that exist or not depending on a hyperparameter read at init (Adafactor's exp_avg).
  virtual std::vector<std::string> optional_slots() const { return {}; }
  // Makes the next init create the optional slots (true), or not (false), whatever the
  // configuration says; nullopt: as configured. For loading a saved layout.
  virtual void force_optional_slots(std::optional<bool> /*present*/) {}
  // Called at init for every parameter, after configure(): allocate per-shape workspace here so
  // that apply() never allocates. May throw.
  virtual void prepare(DType /*dtype*/, const Shape& /*param_shape*/) {}
  // Reads the hyperparameters into typed fields; called before a step whenever they changed.
  virtual void configure(const Hyperparameters& h) = 0;
  // One step on one tensor. Must not allocate or throw.
  virtual void apply(const StepContext& ctx, const TensorStep& t) noexcept = 0;
  // True when every element is updated independently of the others from the rule's configured
  // fields only (apply() keeps no mutable workspace): the optimizer may then split a tensor into
  // element ranges (TensorStep::offset) and run ranges and tensors on several threads at once.
  virtual bool elementwise() const { return false; }
  // Elementwise rules: whether a bfloat16 step under the "float32" state precision runs as one
  // fused pass (TensorStep::float32_compute) rather than in blocks through float32 buffers; both
  // give the same bits, this is about speed only (docs/precision.md).
  virtual bool fused_bfloat16() const { return elementwise(); }
  // Elementwise rules only: steps items[0, count), float32 or float64 tensors (or ranges of them,
  // TensorStep::offset already applied) whose parameter, gradient and slots all have `dtype`,
  // with the coefficients computed once for the batch. The same bits as apply() on each tensor.
  // The optimizer calls it for elementwise() rules only; any other rule aborts.
  virtual void apply_batch(const StepContext& ctx, DType dtype, const kernels::BatchItem* items,
                           std::size_t count) noexcept;
};

// Creates the rule of an optimizer kind ("sgd", "adam", ...); throws DESCENT_ERR_UNKNOWN_KIND.
std::unique_ptr<Rule> make_rule(std::string_view kind);

// The elementwise rules. Derived provides
//   static constexpr std::size_t kSlots;                        1 or 2 state slots
//   template <class T, class P> static constexpr auto body();   &kernels::x_step_body<T, P>
//   template <class T> Coefficients<T> coefficients(const StepContext&) const;
// and this class runs the body: float32 and float64 tensors in batches (kernels/batch_kernel.h),
// the half types one tensor at a time (MLX's per-operation rounding, or float32 arithmetic on
// bfloat16 storage).
template <class Derived>
class ElementwiseRule : public Rule {
 public:
  std::unique_ptr<Rule> clone() const override {
    return std::make_unique<Derived>(static_cast<const Derived&>(*this));
  }
  void apply(const StepContext& ctx, const TensorStep& t) noexcept override {
    switch (t.dtype) {
      case DType::Float32:
      case DType::Float64:
      case DType::UInt64: {
        const DType dtype = t.dtype == DType::Float32 ? DType::Float32 : DType::Float64;
        const int64_t skip = t.offset * static_cast<int64_t>(dtype_size(dtype));
        kernels::BatchItem item{t.numel, t.param, t.grad, {}};
        for (std::size_t s = 0; s < Derived::kSlots; ++s)
          item.s[s] = static_cast<unsigned char*>(t.slots[s]->data()) + skip;
        return apply_batch(ctx, dtype, &item, 1);
      }
      case DType::BFloat16:
        if (t.float32_compute)  // the "float32" state precision, fused: float32 arithmetic
          return step<float, Bf16Storage>(ctx, t);
        // the "param" state precision: MLX's per-operation rounding
        return step<bfloat16>(ctx, t);
      case DType::Float16:
        return step<float16>(ctx, t);
    }
  }
  void apply_batch(const StepContext& ctx, DType dtype, const kernels::BatchItem* items,
                   std::size_t count) noexcept override {
    if (dtype == DType::Float32) return batch<float>(ctx, items, count);
    batch<double>(ctx, items, count);
  }
  bool elementwise() const override { return true; }

 protected:
  static std::vector<SlotSpec> same_shape(const Shape& s,
                                          std::initializer_list<const char*> names) {
    std::vector<SlotSpec> out;
    for (const char* n : names) out.push_back({n, s});
    return out;
  }
  // MLX casts the float32 learning rate to the gradient's dtype.
  template <class T>
  static T lr(const StepContext& ctx) {
    return static_cast<T>(ctx.learning_rate);
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
  template <class T>
  void batch(const StepContext& ctx, const kernels::BatchItem* items, std::size_t count) {
    const auto c = self().template coefficients<T>(ctx);
    kernels::step_batch<Derived::template body<T, T>(), T, Derived::kSlots>(items, count, c);
  }
  // One half-precision tensor: T is the arithmetic type, P the parameter's storage.
  template <class T, class P = T>
  void step(const StepContext& ctx, const TensorStep& t) {
    const auto c = self().template coefficients<T>(ctx);
    constexpr auto body = Derived::template body<T, P>();
    auto* p = static_cast<P*>(t.param);
    const auto* g = static_cast<const P*>(t.grad);
    T* s0 = t.slots[0]->template as<T>() + t.offset;
    if constexpr (Derived::kSlots == 1)
      kernels::dispatch<body>(t.numel, p, g, s0, c);
    else
      kernels::dispatch<body>(t.numel, p, g, s0, t.slots[1]->template as<T>() + t.offset, c);
  }
};

// Schema entries shared by several rules.
HyperparameterSpec double_spec(std::string name, double def,
                               std::function<std::string(const Value&)> check = nullptr);
HyperparameterSpec bool_spec(std::string name, bool def);
HyperparameterSpec betas_spec(double b1, double b2);

}  // namespace descent
