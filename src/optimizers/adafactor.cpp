// Adafactor (MLX): relative step or a given learning rate, scaled by max(eps[1], rms(p));
// beta2 = 1 - t^decay_rate; second moments factored over the last two axes for ndim >= 2
// (leading axes are a batch), unfactored for 0-D and 1-D; RMS clipping; optional first moment
// (beta_1 set, 0.0 included); weight decay with the same lr. The step-dependent scalars are
// float32, as in MLX, and then cast to the parameter's dtype. Loops: kernels/adafactor_kernel.h.
#include <algorithm>
#include <cmath>
#include <optional>
#include <variant>

#include "kernels/adafactor_kernel.h"
#include "optimizers/rule.h"

namespace descent {
namespace {

const Schema& adafactor_schema() {
  static const Schema schema{
      {{"eps", DESCENT_VALUE_DOUBLE_ARRAY, std::vector<double>{1e-30, 1e-3}, false, 2, nullptr},
       double_spec("clip_threshold", 1.0),
       double_spec("decay_rate", -0.8),
       {"beta_1", DESCENT_VALUE_DOUBLE, std::monostate{}, true, 0, nullptr},
       double_spec("weight_decay", 0.0),
       bool_spec("scale_parameter", true),
       bool_spec("relative_step", true),
       bool_spec("warmup_init", false)},
      nullptr};
  return schema;
}

// Row and column state shapes of a factored (ndim >= 2) parameter.
Shape row_shape(const Shape& s) {
  return Shape(s.begin(), s.end() - 1);
}
Shape col_shape(const Shape& s) {
  Shape c(s.begin(), s.end() - 2);
  c.push_back(s.back());
  return c;
}

class Adafactor final : public Rule {
 public:
  std::unique_ptr<Rule> clone() const override { return std::make_unique<Adafactor>(*this); }
  const Schema& schema() const override { return adafactor_schema(); }
  bool requires_learning_rate() const override { return false; }
  // MLX reads state["learning_rate"] only without the relative step (a KeyError if None).
  bool needs_learning_rate(const Hyperparameters& h) const override {
    return !h.get_bool("relative_step");
  }

  std::vector<SlotSpec> slots(const Shape& s) const override {
    std::vector<SlotSpec> out;
    if (s.size() >= 2) {
      out.push_back({"exp_avg_sq_row", row_shape(s)});
      out.push_back({"exp_avg_sq_col", col_shape(s)});
    } else {
      out.push_back({"exp_avg_sq", s});
    }
    if (forced_exp_avg_.value_or(first_moment_)) out.push_back({"exp_avg", s});
    return out;
  }
  std::vector<std::string> optional_slots() const override { return {"exp_avg"}; }
  void force_optional_slots(std::optional<bool> present) override { forced_exp_avg_ = present; }

  // Workspace for rsqrt(row/mean) and rsqrt(col): one buffer, sized for the largest parameter
  // (apply() runs one tensor at a time). Also records whether init gave the tensors an exp_avg
  // slot: beta_1 set after init must not make apply() read a slot that does not exist (MLX
  // raises KeyError there; descent then runs without the first moment).
  void prepare(DType dtype, const Shape& s) override {
    has_exp_avg_ = forced_exp_avg_.value_or(first_moment_);
    if (s.size() < 2) return;
    const std::size_t bytes =
        static_cast<std::size_t>(numel(row_shape(s)) + numel(col_shape(s))) * dtype_size(dtype);
    if (bytes > workspace_.bytes()) workspace_ = Buffer(bytes);
  }

  void configure(const Hyperparameters& h) override {
    const auto& eps = h.get_doubles("eps");
    eps0_ = eps[0];
    eps1_ = eps[1];
    clip_threshold_ = h.get_double("clip_threshold");
    decay_rate_ = h.get_double("decay_rate");
    first_moment_ = h.is_set("beta_1");
    beta_1_ = first_moment_ ? h.get_double("beta_1") : 0.0;
    weight_decay_ = h.get_double("weight_decay");
    scale_parameter_ = h.get_bool("scale_parameter");
    relative_step_ = h.get_bool("relative_step");
    warmup_init_ = h.get_bool("warmup_init");
  }

  void apply(const StepContext& ctx, const TensorStep& t) noexcept override {
    if (t.dtype == DType::Float32)
      step<float>(ctx, t);
    else
      step<double>(ctx, t);
  }

 private:
  template <class T>
  void step(const StepContext& ctx, const TensorStep& t) noexcept {
    T* p = static_cast<T*>(t.param);
    const T* g = static_cast<const T*>(t.grad);
    const Shape& shape = *t.shape;
    const bool factored = shape.size() >= 2;
    const bool first_moment = first_moment_ && has_exp_avg_;

    // Learning rate: float32 relative step (or the stored float32 lr), cast to T, times the
    // parameter scale max(eps[1], rms(p)) computed from the parameter before any decay.
    float rel;
    if (relative_step_) {
      const float t_f = static_cast<float>(ctx.step);
      const float min_step = warmup_init_ ? 1e-6f * t_f : 1e-2f;
      rel = std::min(min_step, 1.0f / std::sqrt(t_f));
    } else {
      rel = ctx.learning_rate;  // present: checked by needs_learning_rate() before the step
    }
    T lr = static_cast<T>(rel);
    if (scale_parameter_)
      lr = kernels::maximum_nan(static_cast<T>(eps1_), kernels::rms<T>(t.numel, p)) * lr;

    kernels::AdafactorCoefficients<T> c{};
    c.lr = lr;
    const T beta2 = T(1) - static_cast<T>(std::pow(static_cast<float>(ctx.step),
                                                   static_cast<float>(decay_rate_)));
    c.beta2 = beta2;
    c.one_minus_beta2 = T(1) - beta2;  // in T, not t^decay_rate
    c.eps0 = static_cast<T>(eps0_);
    c.clip_threshold = static_cast<T>(clip_threshold_);
    c.first_moment = first_moment;
    c.b1 = static_cast<T>(beta_1_);
    c.one_minus_b1 = static_cast<T>(1.0 - beta_1_);
    c.apply_decay = weight_decay_ != 0.0;
    c.decay = static_cast<T>(-weight_decay_) * lr;

    if (!factored) {
      kernels::adafactor_unfactored_step<T>(t.numel, p, g, t.slots[0]->as<T>(),
                                            first_moment ? t.slots[1]->as<T>() : nullptr, c);
      return;
    }
    const int64_t rows = shape[shape.size() - 2];
    const int64_t cols = shape.back();
    const int64_t batches = t.numel / (rows * cols);  // numel > 0, so rows, cols > 0
    const std::size_t need = static_cast<std::size_t>(batches * (rows + cols)) * sizeof(T);
    if (workspace_.bytes() < need) return;  // unreachable: prepare() saw every shape
    T* r_ws = workspace_.as<T>();
    kernels::adafactor_factored_step<T>(batches, rows, cols, p, g, t.slots[0]->as<T>(),
                                        t.slots[1]->as<T>(), r_ws, r_ws + batches * rows,
                                        first_moment ? t.slots[2]->as<T>() : nullptr, c);
  }

  double eps0_ = 1e-30, eps1_ = 1e-3, clip_threshold_ = 1.0, decay_rate_ = -0.8;
  bool first_moment_ = false;           // beta_1 set now
  bool has_exp_avg_ = false;            // beta_1 was set at init: the tensors have an exp_avg slot
  std::optional<bool> forced_exp_avg_;  // a load's layout, overriding beta_1 at init
  double beta_1_ = 0.0, weight_decay_ = 0.0;
  bool scale_parameter_ = true, relative_step_ = true, warmup_init_ = false;
  Buffer workspace_;
};

}  // namespace

std::unique_ptr<Rule> make_adafactor() {
  return std::make_unique<Adafactor>();
}

}  // namespace descent
