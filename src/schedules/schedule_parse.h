// Builds a Schedule from its text forms: the config-file strings ("cosine:<iters>:<min_lr>",
// "exponential_decay:0.1:0.9", ...) or JSON ({"schedule": "cosine_decay", "init": ...} and
// mlx-lm's {"name": ..., "arguments": [...], "warmup": N}). Strings that omit the initial value
// take init_lr. Throws descent::Error naming the bad field.
#pragma once

#include <string_view>

#include "schedules/schedule.h"

namespace descent {

SchedulePtr parse_schedule(std::string_view spec, double init_lr);

}  // namespace descent
