// Adagrad (MLX): eps outside the square root, default 1e-8.
#include "kernels/adagrad_kernel.h"
#include "optimizers/rule.h"

namespace descent {
namespace {

const Schema& adagrad_schema() {
  static const Schema schema{{double_spec("eps", 1e-8, checks::positive)}, nullptr};
  return schema;
}

class Adagrad final : public ElementwiseRule<Adagrad> {
 public:
  const Schema& schema() const override { return adagrad_schema(); }
  std::vector<SlotSpec> slots(const Shape& s) const override { return same_shape(s, {"v"}); }
  void configure(const Hyperparameters& h) override { eps_ = h.get_double("eps"); }
  static constexpr std::size_t kSlots = 1;
  template <class T, class P>
  static constexpr auto body() {
    return &kernels::adagrad_step_body<T, P>;
  }
  template <class T>
  kernels::AdagradCoefficients<T> coefficients(const StepContext& ctx) const {
    return {lr<T>(ctx), static_cast<T>(eps_)};
  }

 private:
  double eps_ = 1e-8;
};

}  // namespace

std::unique_ptr<Rule> make_adagrad() {
  return std::make_unique<Adagrad>();
}

}  // namespace descent
