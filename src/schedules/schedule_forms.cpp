#include "schedules/schedule_forms.h"

#include <limits>

#include "common/error.h"
#include "schedules/builtin_schedules.h"

namespace descent::schedules {

namespace {

SchedulePtr make_exponential(const std::vector<Arg>& a, double) {
  return exponential_decay(a[0].real, a[1].real);
}
SchedulePtr make_step(const std::vector<Arg>& a, double) {
  return step_decay(a[0].real, a[1].real, a[2].integer);
}
SchedulePtr make_cosine(const std::vector<Arg>& a, double) {
  return cosine_decay(a[0].real, a[1].integer, a[2].real);
}
SchedulePtr make_linear(const std::vector<Arg>& a, double) {
  return linear_schedule(a[0].real, a[1].real, a[2].integer);
}
SchedulePtr make_constant(const std::vector<Arg>& a, double) {
  return constant_schedule(a[0].real);
}

// cosine:<iters>:<min_lr> = cosine_decay(init, iters, min_lr)
SchedulePtr make_cosine_shorthand(const std::vector<Arg>& a, double init) {
  return cosine_decay(init, a[0].integer, a[1].real);
}
// warmup_cosine:<warmup>:<iters>:<min_lr> = mlx-lm's
// {name: cosine_decay, arguments: [init, iters, min_lr], warmup: warmup, warmup_init: 0}
SchedulePtr make_warmup_cosine(const std::vector<Arg>& a, double init) {
  return with_mlx_lm_warmup(cosine_decay(init, a[1].integer, a[2].real), init, a[0].integer, 0.0);
}

const std::vector<Form>& builtins() {
  static const std::vector<Form> forms = {
      {"exponential_decay",
       {{"init", FieldKind::Real}, {"decay_rate", FieldKind::Real}},
       make_exponential,
       false,
       true},
      {"step_decay",
       {{"init", FieldKind::Real},
        {"decay_rate", FieldKind::Real},
        {"step_size", FieldKind::Count}},
       make_step,
       false,
       true},
      {"cosine_decay",
       {{"init", FieldKind::Real},
        {"decay_steps", FieldKind::Count},
        {"end", FieldKind::Real, true, 0.0}},
       make_cosine,
       false,
       true},
      {"linear_schedule",
       {{"init", FieldKind::Real}, {"end", FieldKind::Real}, {"steps", FieldKind::Count}},
       make_linear,
       false,
       true},
      {"constant", {{"value", FieldKind::Real}}, make_constant, false, false},
  };
  return forms;
}

const std::vector<Form>& shorthands() {
  static const std::vector<Form> forms = {
      {"cosine",
       {{"iters", FieldKind::Count}, {"min_lr", FieldKind::Real}},
       make_cosine_shorthand,
       true,
       false},
      {"warmup_cosine",
       {{"warmup", FieldKind::NonNegative},
        {"iters", FieldKind::Count},
        {"min_lr", FieldKind::Real}},
       make_warmup_cosine,
       true,
       false},
  };
  return forms;
}

const Form* find(const std::vector<Form>& forms, std::string_view name) {
  for (const auto& f : forms)
    if (name == f.name) return &f;
  return nullptr;
}

}  // namespace

const Form* builtin_form(std::string_view name) {
  return find(builtins(), name);
}
const Form* shorthand_form(std::string_view name) {
  return find(shorthands(), name);
}

std::string builtin_names() {
  std::string out;
  for (const auto& f : builtins()) out += (out.empty() ? "" : ", ") + std::string(f.name);
  return out;
}

SchedulePtr with_mlx_lm_warmup(SchedulePtr main, double peak, uint64_t warmup, double warmup_init) {
  if (warmup == 0) return main;
  // mlx-lm joins at warmup + 1: the warm-up reaches `peak` at step `warmup`, and the main
  // schedule starts (local step 0) at step warmup + 1.
  return join_schedules({linear_schedule(warmup_init, peak, warmup), std::move(main)},
                        {warmup + 1});
}

Arg real_arg(const std::string& what, double value) {
  check_real(what, value);
  return Arg{value, 0};
}

Arg integer_arg(const std::string& what, FieldKind kind, int64_t value) {
  const int64_t minimum = kind == FieldKind::Count ? 1 : 0;
  if (value < minimum)
    throw Error(DESCENT_ERR_OUT_OF_RANGE, what + " must be >= " + std::to_string(minimum) +
                                              " (got " + std::to_string(value) + ")");
  // Headroom so that warmup + 1 and similar sums cannot wrap.
  if (value == std::numeric_limits<int64_t>::max())
    throw Error(DESCENT_ERR_OUT_OF_RANGE, what + " " + std::to_string(value) + " is too large");
  return Arg{0.0, static_cast<uint64_t>(value)};
}

}  // namespace descent::schedules
