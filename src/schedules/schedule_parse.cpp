#include "schedules/schedule_parse.h"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "common/error.h"
#include "schedules/builtin_schedules.h"
#include "schedules/schedule_forms.h"

namespace descent {

namespace {

// A learning rate must be a finite float32: a value that is not (exponential_decay overflowing
// float32, say) is an error at the step where it happens, not an infinite learning rate.
class FiniteSchedule final : public Schedule {
 public:
  explicit FiniteSchedule(SchedulePtr inner) : inner_(std::move(inner)) {}
  double value(uint64_t step) const override {
    const double v = inner_->value(step);
    if (!(std::fabs(v) <= FLT_MAX))
      throw Error(DESCENT_ERR_OUT_OF_RANGE,
                  "learning_rate: the schedule's value at step " + std::to_string(step) + " is " +
                      schedules::json_number(v) + ", not a finite float32");
    return v;
  }
  std::string to_json() const override { return inner_->to_json(); }

 private:
  SchedulePtr inner_;
};

}  // namespace

SchedulePtr parse_schedule(std::string_view spec, std::optional<double> init_lr) {
  const auto first = spec.find_first_not_of(" \t\r\n");
  SchedulePtr schedule = first != std::string_view::npos && spec[first] == '{'
                             ? schedules::parse_json_schedule(spec)
                             : schedules::parse_string_schedule(spec, init_lr);
  return std::make_shared<FiniteSchedule>(std::move(schedule));
}

SchedulePtr parse_schedule(std::string_view spec, double init_lr) {
  return parse_schedule(spec, std::optional<double>(init_lr));
}

double shortest_decimal(float value) {
  // The shortest decimal that rounds to `value` (at most 9 significant digits), read as a
  // double: 0.1f gives 0.1, not 0.100000001490116.
  char buf[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(value));
    if (std::strtof(buf, nullptr) == value) return std::strtod(buf, nullptr);
  }
  return static_cast<double>(value);
}

}  // namespace descent
