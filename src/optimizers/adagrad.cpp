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
  template <class T, class P = T>
  void step(const StepContext& ctx, const TensorStep& t) {
    const kernels::AdagradCoefficients<T> c{lr<T>(ctx), static_cast<T>(eps_)};
    kernels::adagrad_step<T, P>(t.numel, static_cast<P*>(t.param), static_cast<const P*>(t.grad),
                                slot<T>(t, 0), c);
  }

 private:
  double eps_ = 1e-8;
};

}  // namespace

std::unique_ptr<Rule> make_adagrad() {
  return std::make_unique<Adagrad>();
}

}  // namespace descent
