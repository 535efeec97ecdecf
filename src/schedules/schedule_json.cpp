// JSON schedules: descent's (and the golden files') {"schedule": "<name>", <field>: ...} objects,
// join_schedules with nested schedules, and mlx-lm's {"name", "arguments", "warmup",
// "warmup_init"}. Structure errors are DESCENT_ERR_PARSE, bad values DESCENT_ERR_OUT_OF_RANGE;
// every message names the field.
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "config/json_parse.h"
#include "schedules/builtin_schedules.h"
#include "schedules/schedule_forms.h"

namespace descent::schedules {

namespace {

using Json = nlohmann::json;

std::string describe(const Json& j) {
  std::string text = j.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return std::string(j.type_name()) + " " + text;
}

// An integer field from a JSON number (an integral float such as 1000.0 is accepted).
int64_t json_integer(const std::string& what, const Json& j) {
  if (j.is_number_unsigned()) {
    const uint64_t u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw Error(DESCENT_ERR_OUT_OF_RANGE, what + " " + std::to_string(u) + " is too large");
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number_float()) {
    const double d = j.get<double>();
    if (d != std::floor(d))
      throw Error(DESCENT_ERR_PARSE, what + " must be an integer, got " + j.dump());
    if (!(std::fabs(d) < 9.2e18))
      throw Error(DESCENT_ERR_OUT_OF_RANGE, what + " " + j.dump() + " is too large");
    return static_cast<int64_t>(d);
  }
  throw Error(DESCENT_ERR_PARSE, what + " must be an integer, got " + describe(j));
}

Arg json_arg(const std::string& what, const FieldSpec& field, const Json& j) {
  if (field.kind == FieldKind::Real) {
    if (!j.is_number())
      throw Error(DESCENT_ERR_PARSE, what + " must be a number, got " + describe(j));
    return real_arg(what, j.get<double>());
  }
  return integer_arg(what, field.kind, json_integer(what, j));
}

void reject_unknown_keys(const std::string& prefix, const Json& j,
                         const std::vector<std::string>& known) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const auto& k : known) ok = ok || it.key() == k;
    if (!ok) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "'" : ", '") + k + "'";
      throw Error(DESCENT_ERR_PARSE,
                  prefix + "unknown field '" + it.key() + "' (expected " + list + ")");
    }
  }
}

SchedulePtr from_json(const Json& j, const std::string& context);

// {"schedule": "<builtin>", <fields>}
SchedulePtr builtin_from_json(const Form& form, const Json& j, const std::string& context) {
  const std::string prefix = context + form.name + ": ";
  std::vector<std::string> known{"schedule"};
  for (const auto& f : form.fields) known.emplace_back(f.name);
  reject_unknown_keys(prefix, j, known);
  std::vector<Arg> args;
  for (const auto& f : form.fields) {
    const auto it = j.find(f.name);
    if (it == j.end()) {
      if (!f.optional) throw Error(DESCENT_ERR_PARSE, prefix + "missing field '" + f.name + "'");
      args.push_back(Arg{f.fallback, 0});
      continue;
    }
    args.push_back(json_arg(prefix + "field '" + f.name + "'", f, *it));
  }
  return form.make(args, 0.0);
}

// {"schedule": "join_schedules", "schedules": [...], "boundaries": [...]}
SchedulePtr join_from_json(const Json& j, const std::string& context) {
  const std::string prefix = context + "join_schedules: ";
  reject_unknown_keys(prefix, j, {"schedule", "schedules", "boundaries"});
  for (const char* key : {"schedules", "boundaries"}) {
    const auto it = j.find(key);
    if (it == j.end()) throw Error(DESCENT_ERR_PARSE, prefix + "missing field '" + key + "'");
    if (!it->is_array())
      throw Error(DESCENT_ERR_PARSE,
                  prefix + "field '" + key + "' must be an array, got " + describe(*it));
  }
  const Json& list = j.at("schedules");
  const Json& bounds = j.at("boundaries");
  if (list.empty()) throw Error(DESCENT_ERR_PARSE, prefix + "needs at least one schedule");
  if (list.size() > kMaxJoinedSchedules)  // before parsing them
    throw Error(DESCENT_ERR_OUT_OF_RANGE, prefix + std::to_string(list.size()) +
                                              " schedules, at most " +
                                              std::to_string(kMaxJoinedSchedules) + " are allowed");
  if (bounds.size() + 1 != list.size())
    throw Error(DESCENT_ERR_PARSE, prefix + std::to_string(list.size()) + " schedules need " +
                                       std::to_string(list.size() - 1) + " boundaries, got " +
                                       std::to_string(bounds.size()));
  std::vector<SchedulePtr> parts;
  for (std::size_t i = 0; i < list.size(); ++i)
    parts.push_back(from_json(list[i], prefix + "schedules[" + std::to_string(i) + "]: "));
  std::vector<uint64_t> boundaries;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    const std::string what = prefix + "boundaries[" + std::to_string(i) + "]";
    boundaries.push_back(
        integer_arg(what, FieldKind::NonNegative, json_integer(what, bounds[i])).integer);
  }
  return join_schedules(std::move(parts), std::move(boundaries));
}

// mlx-lm: {"name": "cosine_decay", "arguments": [init, decay_steps, end], "warmup": N,
// "warmup_init": x}
SchedulePtr mlx_lm_from_json(const Json& j, const std::string& context) {
  const Json& name = j.at("name");
  if (!name.is_string())
    throw Error(DESCENT_ERR_PARSE,
                context + "field 'name' must be a string, got " + describe(name));
  const std::string fn = name.get<std::string>();
  const Form* form = builtin_form(fn);
  if (!form || !form->mlx_function)
    throw Error(DESCENT_ERR_PARSE,
                context + "unknown schedule function '" + fn +
                    "' (mlx-lm's \"name\" is one of exponential_decay, step_decay, "
                    "cosine_decay, linear_schedule)");
  const std::string prefix = context + fn + ": ";
  reject_unknown_keys(prefix, j, {"name", "arguments", "warmup", "warmup_init"});
  const auto it = j.find("arguments");
  if (it == j.end()) throw Error(DESCENT_ERR_PARSE, prefix + "missing field 'arguments'");
  if (!it->is_array())
    throw Error(DESCENT_ERR_PARSE,
                prefix + "field 'arguments' must be an array, got " + describe(*it));
  std::size_t required = 0;
  for (const auto& f : form->fields) required += f.optional ? 0 : 1;
  if (it->size() < required || it->size() > form->fields.size()) {
    std::string names;
    for (const auto& f : form->fields)
      names += (names.empty() ? "" : ", ") + std::string(f.optional ? "[" : "") + f.name +
               (f.optional ? "]" : "");
    throw Error(DESCENT_ERR_PARSE, prefix + "'arguments' must be [" + names + "], got " +
                                       std::to_string(it->size()) + " values");
  }
  std::vector<Arg> args;
  for (std::size_t i = 0; i < form->fields.size(); ++i) {
    const FieldSpec& f = form->fields[i];
    if (i >= it->size()) {
      args.push_back(Arg{f.fallback, 0});
      continue;
    }
    args.push_back(
        json_arg(prefix + "arguments[" + std::to_string(i) + "] (" + f.name + ")", f, (*it)[i]));
  }
  uint64_t warmup = 0;
  double warmup_init = 0.0;
  if (const auto w = j.find("warmup"); w != j.end() && !w->is_null()) {
    const std::string what = prefix + "field 'warmup'";
    warmup = integer_arg(what, FieldKind::NonNegative, json_integer(what, *w)).integer;
  }
  if (const auto w = j.find("warmup_init"); w != j.end() && !w->is_null())
    warmup_init =
        json_arg(prefix + "field 'warmup_init'", FieldSpec{"warmup_init", FieldKind::Real}, *w)
            .real;
  return with_mlx_lm_warmup(form->make(args, 0.0), args[0].real, warmup, warmup_init);
}

SchedulePtr from_json(const Json& j, const std::string& context) {
  if (!j.is_object())
    throw Error(DESCENT_ERR_PARSE,
                context + "a schedule must be a JSON object, got " + describe(j));
  const bool descent_form = j.contains("schedule");
  const bool mlx_lm_form = j.contains("name");
  if (descent_form && mlx_lm_form)
    throw Error(DESCENT_ERR_PARSE, context +
                                       "a schedule object has either \"schedule\" or "
                                       "mlx-lm's \"name\", not both");
  if (mlx_lm_form) return mlx_lm_from_json(j, context);
  if (!descent_form)
    throw Error(DESCENT_ERR_PARSE,
                context +
                    "a schedule object needs \"schedule\" (e.g. {\"schedule\": "
                    "\"cosine_decay\", \"init\": 0.1, \"decay_steps\": 1000}) or mlx-lm's "
                    "\"name\" and \"arguments\"");
  const Json& kind = j.at("schedule");
  if (!kind.is_string())
    throw Error(DESCENT_ERR_PARSE,
                context + "field 'schedule' must be a string, got " + describe(kind));
  const std::string name = kind.get<std::string>();
  if (name == "join_schedules") return join_from_json(j, context);
  const Form* form = builtin_form(name);
  if (!form)
    throw Error(DESCENT_ERR_PARSE, context + "unknown schedule '" + name +
                                       "' (known: " + builtin_names() + ", join_schedules)");
  return builtin_from_json(*form, j, context);
}

}  // namespace

SchedulePtr parse_json_schedule(std::string_view text) {
  return from_json(parse_json(text, "schedule"), "");
}

}  // namespace descent::schedules
