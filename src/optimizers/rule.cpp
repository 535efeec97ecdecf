#include "optimizers/rule.h"

#include <cstdlib>

#include "common/error.h"

namespace descent {

void Rule::apply_batch(const StepContext& /*ctx*/, DType /*dtype*/,
                       const kernels::BatchItem* /*items*/, std::size_t /*count*/) noexcept {
  std::abort();  // RuleOptimizer batches elementwise() rules only, which override this
}

HyperparameterSpec double_spec(std::string name, double def,
                               std::function<std::string(const Value&)> check) {
  return {std::move(name), DESCENT_VALUE_DOUBLE, def, false, 0, std::move(check)};
}

HyperparameterSpec bool_spec(std::string name, bool def) {
  return {std::move(name), DESCENT_VALUE_BOOL, def, false, 0, nullptr};
}

HyperparameterSpec betas_spec(double b1, double b2) {
  return {"betas", DESCENT_VALUE_DOUBLE_ARRAY, std::vector<double>{b1, b2}, false,
          2,       checks::unit_interval_open};
}

}  // namespace descent
