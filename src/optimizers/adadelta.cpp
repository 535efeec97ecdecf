// AdaDelta (MLX): eps inside both square roots.
#include "kernels/adadelta_kernel.h"
#include "optimizers/rule.h"

namespace descent {
namespace {

const Schema& adadelta_schema() {
  static const Schema schema{
      {double_spec("rho", 0.9, checks::non_negative), double_spec("eps", 1e-6, checks::positive)},
      nullptr};
  return schema;
}

class Adadelta final : public ElementwiseRule<Adadelta> {
 public:
  const Schema& schema() const override { return adadelta_schema(); }
  std::vector<SlotSpec> slots(const Shape& s) const override { return same_shape(s, {"v", "u"}); }
  void configure(const Hyperparameters& h) override {
    rho_ = h.get_double("rho");
    eps_ = h.get_double("eps");
  }
  static constexpr std::size_t kSlots = 2;
  template <class T, class P>
  static constexpr auto body() {
    return &kernels::adadelta_step_body<T, P>;
  }
  template <class T>
  kernels::AdadeltaCoefficients<T> coefficients(const StepContext& ctx) const {
    return {lr<T>(ctx), static_cast<T>(rho_), static_cast<T>(1.0 - rho_), static_cast<T>(eps_)};
  }

 private:
  double rho_ = 0.9, eps_ = 1e-6;
};

}  // namespace

std::unique_ptr<Rule> make_adadelta() {
  return std::make_unique<Adadelta>();
}

}  // namespace descent
