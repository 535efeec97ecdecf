// The argument layout of every schedule form, shared by the three ways of writing a schedule
// (JSON objects, mlx-lm's {name, arguments}, "name:arg:arg" strings), and the helpers that read
// and check one argument so that every error names the field it is about.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schedules/schedule.h"

namespace descent::schedules {

enum class FieldKind {
  Real,         // any finite number float32 can hold
  Count,        // an integer >= 1 (step_size, decay_steps, steps, iters)
  NonNegative,  // an integer >= 0 (warmup)
};

struct FieldSpec {
  const char* name;
  FieldKind kind;
  bool optional = false;  // only trailing fields; then `fallback` is used
  double fallback = 0.0;
};

// One argument, already checked against its FieldSpec.
struct Arg {
  double real = 0.0;
  uint64_t integer = 0;
};

struct Form {
  const char* name;
  std::vector<FieldSpec> fields;
  // Builds the schedule from checked arguments (one per field, fallbacks filled in); `init` is
  // the optimizer's learning rate, used by the forms that take it (needs_init).
  SchedulePtr (*make)(const std::vector<Arg>& args, double init);
  bool needs_init = false;
  bool mlx_function = false;  // a function of mlx.optimizers (usable in mlx-lm's form)
};

// The JSON / spelled-out forms: exponential_decay, step_decay, cosine_decay, linear_schedule,
// constant. nullptr if `name` is none of them.
const Form* builtin_form(std::string_view name);
// The config-file shorthands: cosine, warmup_cosine (init from the optimizer).
const Form* shorthand_form(std::string_view name);
// "exponential_decay, step_decay, ..." for error messages.
std::string builtin_names();

// mlx-lm's build_schedule: main when warmup == 0, else
// join([linear_schedule(warmup_init, peak, warmup), main], [warmup + 1]).
SchedulePtr with_mlx_lm_warmup(SchedulePtr main, double peak, uint64_t warmup, double warmup_init);

// Checks a number against a field; `what` names the field in messages, e.g.
// "cosine: field 2 (iters)". Reals: finite and float32 (DESCENT_ERR_OUT_OF_RANGE). Integer kinds
// take `integer` (DESCENT_ERR_OUT_OF_RANGE below the kind's minimum).
Arg real_arg(const std::string& what, double value);
Arg integer_arg(const std::string& what, FieldKind kind, int64_t value);

// The forms of a schedule text.
SchedulePtr parse_json_schedule(std::string_view json);
SchedulePtr parse_string_schedule(std::string_view spec, std::optional<double> init_lr);

}  // namespace descent::schedules
