// Parses a JSON object of hyperparameters ({"learning_rate": 1e-3, "betas": [0.9, 0.999]})
// into (key, value) pairs. Only the JSON shape is checked here; names and ranges are checked by
// the optimizer's schema.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/value.h"

namespace descent {

struct HyperparameterEntries : std::vector<std::pair<std::string, Value>> {
  // Set when "learning_rate" is an object: a schedule, as JSON text. The entry for
  // "learning_rate" is then present with no value.
  std::optional<std::string> schedule_json;
};

HyperparameterEntries parse_hyperparameter_json(std::string_view json);

}  // namespace descent
