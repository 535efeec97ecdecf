// The hyperparameters of one optimizer: a schema per kind (names, types, defaults, MLX's range
// checks) and the current values. Validation happens here so that every entry point (typed
// setters, JSON) applies the same rules and names the offending key.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/value.h"

namespace descent {

class Hyperparameters;

struct HyperparameterSpec {
  std::string name;
  descent_value_type type;
  Value default_value;           // std::monostate: optional and unset by default
  bool optional = false;         // may be unset (MLX's None)
  std::size_t array_length = 0;  // for DESCENT_VALUE_DOUBLE_ARRAY
  // Returns "" when the value is acceptable, otherwise why not (e.g. "must be > 0").
  std::function<std::string(const Value&)> check;
};

struct Schema {
  std::vector<HyperparameterSpec> specs;
  // Constraints between keys; throws descent::Error naming the key.
  std::function<void(const Hyperparameters&)> validate_together;

  const HyperparameterSpec* find(std::string_view name) const;
};

class Hyperparameters {
 public:
  explicit Hyperparameters(const Schema& schema);

  const Schema& schema() const { return *schema_; }
  // Checks type and range, converts int <-> double where lossless, then stores. Throws.
  void set(std::string_view key, const Value& value);
  const Value& get(std::string_view key) const;  // throws DESCENT_ERR_UNKNOWN_KEY

  double get_double(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::vector<double>& get_doubles(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  bool is_set(std::string_view key) const;

  void validate_together() const {
    if (schema_->validate_together) schema_->validate_together(*this);
  }

 private:
  const Schema* schema_;
  std::map<std::string, Value, std::less<>> values_;
};

// Range-check helpers used by the schemas.
namespace checks {
std::string finite(const Value& v);
std::string positive(const Value& v);            // > 0
std::string non_negative(const Value& v);        // >= 0
std::string unit_interval_open(const Value& v);  // every element in [0, 1)
// For a string key: the value must be one of `choices`.
std::function<std::string(const Value&)> one_of(std::vector<std::string> choices);
}  // namespace checks

}  // namespace descent
