#include "schedules/schedule_parse.h"

#include <string>

#include "common/error.h"

namespace descent {

// Placeholder until the schedules land (issue 4): every schedule is rejected clearly.
SchedulePtr parse_schedule(std::string_view spec, double /*init_lr*/) {
  throw Error(DESCENT_ERR_UNSUPPORTED, "learning_rate: schedules are not implemented yet ('" +
                                           std::string(spec) + "')");
}

}  // namespace descent
