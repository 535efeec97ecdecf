// Hyperparameters by name: typed setters and getters, enumeration, and JSON configuration.
#include <string>

#include "capi/guard.h"

using descent::Error;
using descent::Value;
using descent::capi::guarded;
using descent::capi::guarded_mutation;
using descent::capi::require;
using descent::capi::require_text;

namespace {

Value get_value(const descent_optimizer* opt, const char* key) {
  require(opt, "opt");
  require_text(key, "key");
  Value v = opt->impl->hyperparameter(key);
  if (v.index() == 0) throw Error(DESCENT_ERR_INVALID_STATE, std::string(key) + ": is not set");
  return v;
}

Error wrong_type(const char* key, const Value& v, const char* wanted) {
  return Error(DESCENT_ERR_WRONG_TYPE, std::string(key) + ": is " +
                                           descent::value_type_name(descent::value_type(v)) +
                                           ", not " + wanted);
}

descent_status set_value(descent_optimizer* opt, const char* key, const Value& v) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    require_text(key, "key");
    opt->impl->set_hyperparameter(key, v);
  });
}

}  // namespace

extern "C" {

DESCENT_API descent_status descent_optimizer_set_double(descent_optimizer* opt, const char* key,
                                                        double value) {
  return set_value(opt, key, value);
}

DESCENT_API descent_status descent_optimizer_set_int(descent_optimizer* opt, const char* key,
                                                     int64_t value) {
  return set_value(opt, key, value);
}

DESCENT_API descent_status descent_optimizer_set_bool(descent_optimizer* opt, const char* key,
                                                      bool value) {
  return set_value(opt, key, value);
}

DESCENT_API descent_status descent_optimizer_set_doubles(descent_optimizer* opt, const char* key,
                                                         const double* values, size_t count) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    require_text(key, "key");
    if (count > 0) require(values, "values");
    opt->impl->set_hyperparameter(key, std::vector<double>(values, values + count));
  });
}

DESCENT_API descent_status descent_optimizer_set_string(descent_optimizer* opt, const char* key,
                                                        const char* value) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    require_text(key, "key");
    require_text(value, "value");
    opt->impl->set_hyperparameter(key, std::string(value));
  });
}

DESCENT_API descent_status descent_optimizer_unset(descent_optimizer* opt, const char* key) {
  return set_value(opt, key, std::monostate{});
}

DESCENT_API descent_status descent_optimizer_get_double(const descent_optimizer* opt,
                                                        const char* key, double* out) {
  return guarded(opt, [&] {
    require(out, "out");
    const Value v = get_value(opt, key);
    if (const auto* d = std::get_if<double>(&v))
      *out = *d;
    else if (const auto* i = std::get_if<int64_t>(&v))
      *out = static_cast<double>(*i);
    else
      throw wrong_type(key, v, "double");
  });
}

DESCENT_API descent_status descent_optimizer_get_int(const descent_optimizer* opt, const char* key,
                                                     int64_t* out) {
  return guarded(opt, [&] {
    require(out, "out");
    const Value v = get_value(opt, key);
    const auto* i = std::get_if<int64_t>(&v);
    if (!i) throw wrong_type(key, v, "int");
    *out = *i;
  });
}

DESCENT_API descent_status descent_optimizer_get_bool(const descent_optimizer* opt, const char* key,
                                                      bool* out) {
  return guarded(opt, [&] {
    require(out, "out");
    const Value v = get_value(opt, key);
    const auto* b = std::get_if<bool>(&v);
    if (!b) throw wrong_type(key, v, "bool");
    *out = *b;
  });
}

DESCENT_API descent_status descent_optimizer_get_doubles(const descent_optimizer* opt,
                                                         const char* key, double* out,
                                                         size_t capacity, size_t* count) {
  return guarded(opt, [&] {
    require(count, "count");
    const Value v = get_value(opt, key);
    const auto* a = std::get_if<std::vector<double>>(&v);
    if (!a) throw wrong_type(key, v, "array of double");
    if (out && capacity < a->size())
      throw Error(DESCENT_ERR_BUFFER_TOO_SMALL,
                  std::string(key) + ": holds " + std::to_string(a->size()) +
                      " values, capacity is " + std::to_string(capacity));
    if (out) std::copy(a->begin(), a->end(), out);
    *count = a->size();
  });
}

DESCENT_API descent_status descent_optimizer_get_string(const descent_optimizer* opt,
                                                        const char* key, char* out, size_t capacity,
                                                        size_t* length) {
  return guarded(opt, [&] {
    require(length, "length");
    const Value v = get_value(opt, key);
    const auto* s = std::get_if<std::string>(&v);
    if (!s) throw wrong_type(key, v, "string");
    if (out && capacity < s->size() + 1)
      throw Error(DESCENT_ERR_BUFFER_TOO_SMALL,
                  std::string(key) + ": needs " + std::to_string(s->size() + 1) +
                      " bytes with the NUL, capacity is " + std::to_string(capacity));
    if (out) std::copy(s->c_str(), s->c_str() + s->size() + 1, out);
    *length = s->size();
  });
}

DESCENT_API descent_status descent_optimizer_hyperparameter_count(const descent_optimizer* opt,
                                                                  size_t* out) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require(out, "out");
    *out = opt->impl->hyperparameter_count();
  });
}

DESCENT_API descent_status descent_optimizer_hyperparameter_name(const descent_optimizer* opt,
                                                                 size_t index, const char** out) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require(out, "out");
    *out = opt->impl->hyperparameter_name(index).c_str();
  });
}

DESCENT_API descent_status descent_optimizer_hyperparameter_type(const descent_optimizer* opt,
                                                                 const char* key,
                                                                 descent_value_type* out) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require_text(key, "key");
    require(out, "out");
    *out = descent::value_type(opt->impl->hyperparameter(key));
  });
}

DESCENT_API descent_status descent_optimizer_configure_json(descent_optimizer* opt,
                                                            const char* json) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    require(json, "json");
    descent::capi::check_json_text(json, "json");
    opt->impl->configure_json(json);
  });
}

}  // extern "C"
