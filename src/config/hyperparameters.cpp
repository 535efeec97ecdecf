#include "config/hyperparameters.h"

#include <cmath>
#include <sstream>

#include "common/error.h"

namespace descent {

const char* value_type_name(descent_value_type t) {
  switch (t) {
    case DESCENT_VALUE_NONE:
      return "none";
    case DESCENT_VALUE_DOUBLE:
      return "double";
    case DESCENT_VALUE_INT:
      return "int";
    case DESCENT_VALUE_BOOL:
      return "bool";
    case DESCENT_VALUE_DOUBLE_ARRAY:
      return "array of double";
    case DESCENT_VALUE_STRING:
      return "string";
    case DESCENT_VALUE_TYPE_FORCE_32BIT:
      break;
  }
  return "unknown";
}

namespace {
// A JSON string literal.
std::string quoted(const std::string& s) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}
}  // namespace

std::string value_string(const Value& v) {
  std::ostringstream out;
  out.precision(17);
  switch (v.index()) {
    case 1:
      out << std::get<double>(v);
      break;
    case 2:
      out << std::get<int64_t>(v);
      break;
    case 3:
      out << (std::get<bool>(v) ? "true" : "false");
      break;
    case 4: {
      out << "[";
      const auto& a = std::get<std::vector<double>>(v);
      for (std::size_t i = 0; i < a.size(); ++i) out << (i ? ", " : "") << a[i];
      out << "]";
      break;
    }
    case 5:
      out << quoted(std::get<std::string>(v));
      break;
    default:
      out << "none";
  }
  return out.str();
}

std::string value_json(const Value& v) {
  if (v.index() == 0) return "null";
  return value_string(v);  // already JSON: numbers, true/false, [a, b], "text"
}

const HyperparameterSpec* Schema::find(std::string_view name) const {
  for (const auto& s : specs)
    if (s.name == name) return &s;
  return nullptr;
}

Hyperparameters::Hyperparameters(const Schema& schema) : schema_(&schema) {
  for (const auto& s : schema.specs) values_.emplace(s.name, s.default_value);
}

namespace {

// Converts `v` to the spec's type where that loses nothing; throws DESCENT_ERR_WRONG_TYPE.
Value coerce(const HyperparameterSpec& spec, const Value& v) {
  const descent_value_type got = value_type(v);
  auto wrong = [&]() -> Error {
    return Error(DESCENT_ERR_WRONG_TYPE, spec.name + ": expected " + value_type_name(spec.type) +
                                             ", got " + value_type_name(got));
  };
  if (got == DESCENT_VALUE_NONE) {
    if (!spec.optional)
      throw Error(DESCENT_ERR_WRONG_TYPE, spec.name + ": is required and cannot be unset");
    return v;
  }
  switch (spec.type) {
    case DESCENT_VALUE_DOUBLE:
      if (got == DESCENT_VALUE_DOUBLE) return v;
      if (got == DESCENT_VALUE_INT) return static_cast<double>(std::get<int64_t>(v));
      throw wrong();
    case DESCENT_VALUE_INT:
      if (got == DESCENT_VALUE_INT) return v;
      if (got == DESCENT_VALUE_DOUBLE) {
        const double d = std::get<double>(v);
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15)
          return static_cast<int64_t>(d);
      }
      throw wrong();
    case DESCENT_VALUE_BOOL:
      if (got == DESCENT_VALUE_BOOL) return v;
      throw wrong();
    case DESCENT_VALUE_DOUBLE_ARRAY: {
      if (got != DESCENT_VALUE_DOUBLE_ARRAY) throw wrong();
      const auto& a = std::get<std::vector<double>>(v);
      if (spec.array_length && a.size() != spec.array_length)
        throw Error(DESCENT_ERR_WRONG_TYPE, spec.name + ": expected " +
                                                std::to_string(spec.array_length) +
                                                " values, got " + std::to_string(a.size()));
      return v;
    }
    case DESCENT_VALUE_STRING:
      if (got == DESCENT_VALUE_STRING) return v;
      throw wrong();
    case DESCENT_VALUE_NONE:
    case DESCENT_VALUE_TYPE_FORCE_32BIT:
      break;
  }
  throw wrong();
}

std::string each_double(const Value& v, bool (*ok)(double), const char* why) {
  if (const auto* d = std::get_if<double>(&v)) return ok(*d) ? "" : why;
  if (const auto* a = std::get_if<std::vector<double>>(&v)) {
    for (double d : *a)
      if (!ok(d)) return why;
  }
  return "";
}

}  // namespace

namespace {
// A value for a message: long arrays are cut, so that the message stays readable and short.
std::string short_value_string(const Value& v) {
  const auto* a = std::get_if<std::vector<double>>(&v);
  if (!a || a->size() <= 8) return value_string(v);
  const std::vector<double> head(a->begin(), a->begin() + 6);
  std::string out = value_string(head);
  out.pop_back();
  return out + ", ... (" + std::to_string(a->size()) + " values)]";
}
}  // namespace

void Hyperparameters::set(std::string_view key, const Value& value) {
  const HyperparameterSpec* spec = schema_->find(key);
  if (!spec)
    throw Error(DESCENT_ERR_UNKNOWN_KEY,
                std::string(key) + ": not a hyperparameter of this optimizer");
  Value converted = coerce(*spec, value);
  if (value_type(converted) != DESCENT_VALUE_NONE) {
    std::string why = checks::finite(converted);
    if (why.empty() && spec->check) why = spec->check(converted);
    if (!why.empty())
      throw Error(DESCENT_ERR_OUT_OF_RANGE,
                  spec->name + ": " + why + " (got " + short_value_string(converted) + ")");
  }
  values_.find(key)->second = std::move(converted);
}

const Value& Hyperparameters::get(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end())
    throw Error(DESCENT_ERR_UNKNOWN_KEY,
                std::string(key) + ": not a hyperparameter of this optimizer");
  return it->second;
}

bool Hyperparameters::is_set(std::string_view key) const {
  return get(key).index() != 0;
}

namespace {
Error not_of_type(std::string_view key, const Value& v, const char* wanted) {
  return Error(DESCENT_ERR_WRONG_TYPE,
               std::string(key) + ": is " + value_type_name(value_type(v)) + ", not " + wanted);
}
}  // namespace

double Hyperparameters::get_double(std::string_view key) const {
  const Value& v = get(key);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  throw not_of_type(key, v, "double");
}

int64_t Hyperparameters::get_int(std::string_view key) const {
  const Value& v = get(key);
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  throw not_of_type(key, v, "int");
}

bool Hyperparameters::get_bool(std::string_view key) const {
  const Value& v = get(key);
  if (const auto* b = std::get_if<bool>(&v)) return *b;
  throw not_of_type(key, v, "bool");
}

const std::vector<double>& Hyperparameters::get_doubles(std::string_view key) const {
  const Value& v = get(key);
  if (const auto* a = std::get_if<std::vector<double>>(&v)) return *a;
  throw not_of_type(key, v, "array of double");
}

const std::string& Hyperparameters::get_string(std::string_view key) const {
  const Value& v = get(key);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  throw not_of_type(key, v, "string");
}

namespace checks {
std::string finite(const Value& v) {
  return each_double(
      v, [](double d) { return std::isfinite(d); }, "must be finite");
}
std::string positive(const Value& v) {
  return each_double(
      v, [](double d) { return d > 0.0; }, "must be > 0");
}
std::string non_negative(const Value& v) {
  return each_double(
      v, [](double d) { return d >= 0.0; }, "must be >= 0");
}
std::string unit_interval_open(const Value& v) {
  return each_double(
      v, [](double d) { return d >= 0.0 && d < 1.0; }, "must be in [0, 1)");
}
std::function<std::string(const Value&)> one_of(std::vector<std::string> choices) {
  return [choices = std::move(choices)](const Value& v) -> std::string {
    const auto* s = std::get_if<std::string>(&v);
    if (!s) return "";
    for (const auto& c : choices)
      if (*s == c) return "";
    std::string why = "must be one of";
    for (std::size_t i = 0; i < choices.size(); ++i)
      why += (i ? ", \"" : " \"") + choices[i] + "\"";
    return why;
  };
}
}  // namespace checks

}  // namespace descent
