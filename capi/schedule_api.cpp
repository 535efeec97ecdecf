// Learning-rate schedules: string/JSON schedules, callbacks, and evaluating a schedule alone.
#include <memory>
#include <optional>

#include "capi/guard.h"
#include "schedules/callback_schedule.h"
#include "schedules/schedule_parse.h"

using descent::Error;
using descent::capi::guarded;
using descent::capi::guarded_mutation;
using descent::capi::require;

namespace {

// The optimizer's learning rate as the initial value of a shorthand schedule, if it has one.
std::optional<double> current_learning_rate(const descent::Optimizer& opt) {
  descent::Value lr;
  try {
    lr = opt.hyperparameter("learning_rate");
  } catch (const Error&) {
    return std::nullopt;  // an optimizer without a learning rate of its own
  }
  if (const auto* d = std::get_if<double>(&lr))
    return descent::shortest_decimal(static_cast<float>(*d));  // held as float32
  if (const auto* i = std::get_if<int64_t>(&lr))
    return descent::shortest_decimal(static_cast<float>(*i));
  return std::nullopt;
}

}  // namespace

extern "C" {

DESCENT_API descent_status descent_optimizer_set_schedule(descent_optimizer* opt,
                                                          const char* spec) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    descent::capi::require_text(spec, "spec");
    opt->impl->set_schedule(descent::parse_schedule(spec, current_learning_rate(*opt->impl)));
  });
}

DESCENT_API descent_status descent_optimizer_set_schedule_callback(descent_optimizer* opt,
                                                                   descent_schedule_fn fn,
                                                                   void* user_data,
                                                                   void (*free_user_data)(void*)) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    if (!fn) throw Error(DESCENT_ERR_NULL_ARGUMENT, "fn is NULL");
    auto schedule = std::make_shared<descent::CallbackSchedule>(fn, user_data, free_user_data);
    try {
      // Evaluates the callback at the current step (MLX stores schedule(step) on attach).
      opt->impl->set_schedule(schedule);
    } catch (...) {
      schedule->release_user_data();  // a failed call leaves user_data with the caller
      throw;
    }
  });
}

DESCENT_API descent_status descent_optimizer_clear_schedule(descent_optimizer* opt) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    opt->impl->set_schedule(nullptr);
  });
}

DESCENT_API descent_status descent_schedule_value(const char* spec, double init_lr, uint64_t step,
                                                  double* out, char* error, size_t error_capacity) {
  return descent::capi::guarded_to(error, error_capacity, [&] {
    descent::capi::require_text(spec, "spec");
    require(out, "out");
    const double v = descent::parse_schedule(spec, init_lr)->value(step);
    *out = v;
  });
}

}  // extern "C"
