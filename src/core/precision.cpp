#include "core/precision.h"

#include <map>
#include <memory>
#include <mutex>

#include "common/error.h"

namespace descent {

const char* const kStatePrecision = "state_precision";
namespace {
const char* const kStochasticRounding = "stochastic_rounding";
const char* const kRoundingSeed = "rounding_seed";

std::string check_seed(const Value& v) {
  const auto* i = std::get_if<int64_t>(&v);
  return i && *i < 0 ? "must be >= 0" : "";
}

std::vector<HyperparameterSpec> precision_specs() {
  return {
      {kStatePrecision, DESCENT_VALUE_STRING, std::string("float32"), false, 0,
       checks::one_of({"float32", "master", "param"})},
      {kStochasticRounding, DESCENT_VALUE_BOOL, false, false, 0, nullptr},
      {kRoundingSeed, DESCENT_VALUE_INT, int64_t{0}, false, 0, check_seed},
  };
}

void check_precision_together(const Hyperparameters& h) {
  if (h.get_bool(kStochasticRounding) && h.get_string(kStatePrecision) != "float32")
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                std::string(kStochasticRounding) +
                    ": applies to state_precision \"float32\" only (the parameter is rounded "
                    "from its float32 value), not \"" +
                    h.get_string(kStatePrecision) + "\"");
}
}  // namespace

const Schema& schema_with_precision(const Schema& rule_schema) {
  static std::mutex mutex;
  static std::map<const Schema*, std::unique_ptr<Schema>> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  auto& entry = cache[&rule_schema];
  if (!entry) {
    auto schema = std::make_unique<Schema>(rule_schema);
    for (auto& spec : precision_specs()) schema->specs.push_back(std::move(spec));
    schema->validate_together = [rule = rule_schema.validate_together](const Hyperparameters& h) {
      if (rule) rule(h);
      check_precision_together(h);
    };
    entry = std::move(schema);
  }
  return *entry;
}

PrecisionSettings read_precision(const Hyperparameters& h) {
  PrecisionSettings s;
  const std::string& p = h.get_string(kStatePrecision);
  s.policy = p == "master" ? StatePrecision::Master
                           : (p == "param" ? StatePrecision::Param : StatePrecision::Float32);
  s.stochastic = h.get_bool(kStochasticRounding);
  s.seed = static_cast<uint64_t>(h.get_int(kRoundingSeed));
  return s;
}

const char* precision_name(StatePrecision p) noexcept {
  switch (p) {
    case StatePrecision::Master:
      return "master";
    case StatePrecision::Param:
      return "param";
    case StatePrecision::Float32:
      break;
  }
  return "float32";
}

}  // namespace descent
