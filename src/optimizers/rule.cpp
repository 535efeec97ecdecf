#include "optimizers/rule.h"

#include "common/error.h"

namespace descent {

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
