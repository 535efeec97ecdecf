#include "config/json_config.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "config/json_parse.h"

namespace descent {

namespace {

Value to_value(const std::string& key, const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return std::monostate{};
    case nlohmann::json::value_t::boolean:
      return j.get<bool>();
    case nlohmann::json::value_t::number_integer:
      return j.get<int64_t>();
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX))
        throw Error(DESCENT_ERR_OUT_OF_RANGE, key + ": integer too large");
      return static_cast<int64_t>(u);
    }
    case nlohmann::json::value_t::number_float:
      return j.get<double>();
    case nlohmann::json::value_t::string:
      return j.get<std::string>();
    case nlohmann::json::value_t::array: {
      std::vector<double> values;
      for (const auto& e : j) {
        if (!e.is_number())
          throw Error(DESCENT_ERR_WRONG_TYPE,
                      key + ": array elements must be numbers, got " + std::string(e.type_name()));
        values.push_back(e.get<double>());
      }
      return values;
    }
    default:
      throw Error(DESCENT_ERR_WRONG_TYPE,
                  key + ": a " + std::string(j.type_name()) + " is not a hyperparameter value");
  }
}

}  // namespace

HyperparameterEntries parse_hyperparameter_json(std::string_view json) {
  const nlohmann::json doc = parse_json(json, "configuration");
  if (!doc.is_object())
    throw Error(DESCENT_ERR_PARSE,
                std::string("configuration must be a JSON object, got ") + doc.type_name());
  HyperparameterEntries out;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() == "learning_rate" && it.value().is_object()) {
      out.schedule_json = it.value().dump();
      out.emplace_back(it.key(), std::monostate{});
      continue;
    }
    out.emplace_back(it.key(), to_value(it.key(), it.value()));
  }
  return out;
}

}  // namespace descent
