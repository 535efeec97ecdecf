// Adamax (MLX): infinity-norm second moment, eps outside the max, no bias correction.
#include "kernels/adamax_kernel.h"
#include "optimizers/rule.h"

namespace descent {
namespace {

const Schema& adamax_schema() {
  static const Schema schema{
      {betas_spec(0.9, 0.999), double_spec("eps", 1e-8, checks::non_negative)}, nullptr};
  return schema;
}

class Adamax final : public ElementwiseRule<Adamax> {
 public:
  const Schema& schema() const override { return adamax_schema(); }
  std::vector<SlotSpec> slots(const Shape& s) const override { return same_shape(s, {"m", "v"}); }
  void configure(const Hyperparameters& h) override {
    const auto& betas = h.get_doubles("betas");
    b1_ = betas[0];
    b2_ = betas[1];
    eps_ = h.get_double("eps");
  }
  static constexpr std::size_t kSlots = 2;
  template <class T, class P>
  static constexpr auto body() {
    return &kernels::adamax_step_body<T, P>;
  }
  template <class T>
  kernels::AdamaxCoefficients<T> coefficients(const StepContext& ctx) const {
    return {lr<T>(ctx), static_cast<T>(b1_), static_cast<T>(1.0 - b1_), static_cast<T>(b2_),
            static_cast<T>(eps_)};
  }

 private:
  double b1_ = 0.9, b2_ = 0.999, eps_ = 1e-8;
};

}  // namespace

std::unique_ptr<Rule> make_adamax() {
  return std::make_unique<Adamax>();
}

}  // namespace descent
