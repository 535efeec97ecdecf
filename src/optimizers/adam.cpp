// Adam and AdamW (MLX): no bias correction unless asked; AdamW decays p by (1 - lr*wd) before
// the Adam step. Bias-correction terms are float32 powf of the step, as in MLX.
#include <cmath>

#include "kernels/adam_kernel.h"
#include "optimizers/rule.h"

namespace descent {
namespace {

const Schema& adam_schema() {
  static const Schema schema{
      {betas_spec(0.9, 0.999), double_spec("eps", 1e-8, checks::non_negative),
       bool_spec("bias_correction", false)},
      nullptr};
  return schema;
}

const Schema& adamw_schema() {
  static const Schema schema{
      {betas_spec(0.9, 0.999), double_spec("eps", 1e-8, checks::non_negative),
       double_spec("weight_decay", 0.01), bool_spec("bias_correction", false)},
      nullptr};
  return schema;
}

class Adam final : public ElementwiseRule<Adam> {
 public:
  explicit Adam(bool decoupled_decay) : decoupled_(decoupled_decay) {}
  const Schema& schema() const override { return decoupled_ ? adamw_schema() : adam_schema(); }
  std::vector<SlotSpec> slots(const Shape& s) const override { return same_shape(s, {"m", "v"}); }
  void configure(const Hyperparameters& h) override {
    const auto& betas = h.get_doubles("betas");
    b1_ = betas[0];
    b2_ = betas[1];
    eps_ = h.get_double("eps");
    bias_correction_ = h.get_bool("bias_correction");
    weight_decay_ = decoupled_ ? h.get_double("weight_decay") : 0.0;
  }
  static constexpr std::size_t kSlots = 2;
  template <class T, class P>
  static constexpr auto body() {
    return &kernels::adam_step_body<T, P>;
  }
  template <class T>
  kernels::AdamCoefficients<T> coefficients(const StepContext& ctx) const {
    const T lr_t = lr<T>(ctx);
    kernels::AdamCoefficients<T> c{};
    c.apply_decay = decoupled_;  // MLX multiplies even when wd == 0 (by exactly 1)
    c.decay = T(1) - lr_t * static_cast<T>(weight_decay_);
    c.b1 = static_cast<T>(b1_);
    c.one_minus_b1 = static_cast<T>(1.0 - b1_);
    c.b2 = static_cast<T>(b2_);
    c.one_minus_b2 = static_cast<T>(1.0 - b2_);
    c.eps = static_cast<T>(eps_);
    c.bias_correction = bias_correction_;
    c.step_scale = lr_t;
    if (bias_correction_) {
      const float t_f = static_cast<float>(ctx.step);
      const float bc1 = 1.0f - std::pow(static_cast<float>(b1_), t_f);
      const float bc2 = 1.0f - std::pow(static_cast<float>(b2_), t_f);
      // lr / bc1 is computed in promote(T, float32): float for float32, double for float64.
      using Wide = PromotedWithFloat<T>;
      c.step_scale = static_cast<T>(static_cast<Wide>(lr_t) / static_cast<Wide>(bc1));
      c.c2 = static_cast<T>(1.0f / std::sqrt(bc2));
    }
    return c;
  }

 private:
  bool decoupled_;
  double b1_ = 0.9, b2_ = 0.999, eps_ = 1e-8, weight_decay_ = 0.0;
  bool bias_correction_ = false;
};

}  // namespace

std::unique_ptr<Rule> make_adam() {
  return std::make_unique<Adam>(false);
}
std::unique_ptr<Rule> make_adamw() {
  return std::make_unique<Adam>(true);
}

}  // namespace descent
