// Parses a JSON object of hyperparameters ({"learning_rate": 1e-3, "betas": [0.9, 0.999]})
// into (key, value) pairs. Only the JSON shape is checked here; names and ranges are checked by
// the optimizer's schema.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/value.h"

namespace descent {

std::vector<std::pair<std::string, Value>> parse_hyperparameter_json(std::string_view json);

}  // namespace descent
