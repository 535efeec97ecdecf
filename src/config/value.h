// A hyperparameter value as it crosses the API: nothing (MLX's None), double, int, bool, a
// list of doubles or a string (a choice among named options).
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "descent/descent.h"

namespace descent {

using Value = std::variant<std::monostate, double, int64_t, bool, std::vector<double>, std::string>;

inline descent_value_type value_type(const Value& v) {
  switch (v.index()) {
    case 1:
      return DESCENT_VALUE_DOUBLE;
    case 2:
      return DESCENT_VALUE_INT;
    case 3:
      return DESCENT_VALUE_BOOL;
    case 4:
      return DESCENT_VALUE_DOUBLE_ARRAY;
    case 5:
      return DESCENT_VALUE_STRING;
    default:
      return DESCENT_VALUE_NONE;
  }
}

const char* value_type_name(descent_value_type t);
// For messages; a string is shown quoted, as JSON.
std::string value_string(const Value& v);
// The value as JSON text that parses back to the same value (doubles with 17 digits).
std::string value_json(const Value& v);

}  // namespace descent
