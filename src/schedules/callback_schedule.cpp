#include "schedules/callback_schedule.h"

#include <cfloat>
#include <cmath>

#include "common/callback_failure.h"
#include "common/error.h"
#include "schedules/builtin_schedules.h"

namespace descent {

CallbackSchedule::~CallbackSchedule() {
  if (free_user_data_) free_user_data_(user_data_);
}

double CallbackSchedule::value(uint64_t step) const {
  double v = 0.0;
  CallbackMessage message;
  const descent_status status = fn_(step, user_data_, &v, message.text, sizeof message.text);
  if (status != DESCENT_OK)
    throw_callback_failure(
        status, message,
        "learning_rate: the schedule callback failed at step " + std::to_string(step));
  if (!(std::fabs(v) <= FLT_MAX))
    throw Error(DESCENT_ERR_OUT_OF_RANGE,
                "learning_rate: the schedule callback returned " + schedules::json_number(v) +
                    " at step " + std::to_string(step) +
                    " (it must return a finite value that float32 can hold)");
  return v;
}

}  // namespace descent
