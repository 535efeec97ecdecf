// SGD with momentum, dampening, Nesterov and coupled weight decay (MLX's SGD).
#include "common/error.h"
#include "kernels/sgd_kernel.h"
#include "optimizers/rule.h"

namespace descent {
namespace {

const Schema& sgd_schema() {
  static const Schema schema{
      {double_spec("momentum", 0.0), double_spec("weight_decay", 0.0),
       double_spec("dampening", 0.0), bool_spec("nesterov", false)},
      [](const Hyperparameters& h) {
        if (h.get_bool("nesterov") &&
            (h.get_double("momentum") <= 0.0 || h.get_double("dampening") != 0.0))
          throw Error(DESCENT_ERR_OUT_OF_RANGE,
                      "nesterov: Nesterov momentum requires a momentum and zero dampening");
      }};
  return schema;
}

class Sgd final : public ElementwiseRule<Sgd> {
 public:
  const Schema& schema() const override { return sgd_schema(); }
  // MLX allocates v even without momentum; it then stays zero.
  std::vector<SlotSpec> slots(const Shape& s) const override { return same_shape(s, {"v"}); }
  void configure(const Hyperparameters& h) override {
    momentum_ = h.get_double("momentum");
    weight_decay_ = h.get_double("weight_decay");
    dampening_ = h.get_double("dampening");
    nesterov_ = h.get_bool("nesterov");
  }
  static constexpr std::size_t kSlots = 1;
  template <class T, class P>
  static constexpr auto body() {
    return &kernels::sgd_step_body<T, P>;
  }
  template <class T>
  kernels::SgdCoefficients<T> coefficients(const StepContext& ctx) const {
    kernels::SgdCoefficients<T> c{};
    c.lr = lr<T>(ctx);
    c.weight_decay = static_cast<T>(weight_decay_);
    c.momentum = static_cast<T>(momentum_);
    c.one_minus_dampening = static_cast<T>(1.0 - dampening_);
    c.has_weight_decay = weight_decay_ != 0.0;
    c.has_momentum = momentum_ > 0.0;
    c.dampened = dampening_ > 0.0;
    c.nesterov = nesterov_;
    return c;
  }

 private:
  double momentum_ = 0, weight_decay_ = 0, dampening_ = 0;
  bool nesterov_ = false;
};

}  // namespace

std::unique_ptr<Rule> make_sgd() {
  return std::make_unique<Sgd>();
}

}  // namespace descent
