// RMSprop (MLX): eps outside the square root, no momentum or centering.
#include "kernels/rmsprop_kernel.h"
#include "optimizers/rule.h"

namespace descent {
namespace {

const Schema& rmsprop_schema() {
  static const Schema schema{{double_spec("alpha", 0.99, checks::non_negative),
                              double_spec("eps", 1e-8, checks::positive)},
                             nullptr};
  return schema;
}

class Rmsprop final : public ElementwiseRule<Rmsprop> {
 public:
  const Schema& schema() const override { return rmsprop_schema(); }
  std::vector<SlotSpec> slots(const Shape& s) const override { return same_shape(s, {"v"}); }
  void configure(const Hyperparameters& h) override {
    alpha_ = h.get_double("alpha");
    eps_ = h.get_double("eps");
  }
  static constexpr std::size_t kSlots = 1;
  template <class T, class P>
  static constexpr auto body() {
    return &kernels::rmsprop_step_body<T, P>;
  }
  template <class T>
  kernels::RmspropCoefficients<T> coefficients(const StepContext& ctx) const {
    return {lr<T>(ctx), static_cast<T>(alpha_), static_cast<T>(1.0 - alpha_), static_cast<T>(eps_)};
  }

 private:
  double alpha_ = 0.99, eps_ = 1e-8;
};

}  // namespace

std::unique_ptr<Rule> make_rmsprop() {
  return std::make_unique<Rmsprop>();
}

}  // namespace descent
