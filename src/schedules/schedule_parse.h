// Builds a Schedule from its text forms (docs/schedules.md):
//  - JSON, recognised by a leading '{': {"schedule": "cosine_decay", "init": 0.1,
//    "decay_steps": 1000, "end": 0.0}, join_schedules with nested schedules, or mlx-lm's
//    {"name": "cosine_decay", "arguments": [...], "warmup": N, "warmup_init": x};
//  - strings: the shorthands "cosine:<iters>:<min_lr>" and "warmup_cosine:<warmup>:<iters>:
//    <min_lr>", whose initial value is init_lr, and spelled-out forms with every argument
//    ("exponential_decay:0.1:0.9", "step_decay:0.1:0.9:1000", "cosine_decay:0.1:1000[:0.0]",
//    "linear_schedule:0:0.1:100", "constant:0.1").
// Throws descent::Error naming the bad field: DESCENT_ERR_PARSE for malformed text,
// DESCENT_ERR_OUT_OF_RANGE for a bad value, DESCENT_ERR_INVALID_STATE when a shorthand needs
// init_lr and it is absent. Every schedule's to_json() parses back to the same schedule. The
// schedule's value() throws DESCENT_ERR_OUT_OF_RANGE, naming the step, where the value is not a
// finite float32 (e.g. exponential_decay overflowing).
#pragma once

#include <optional>
#include <string_view>

#include "schedules/schedule.h"

namespace descent {

SchedulePtr parse_schedule(std::string_view spec, std::optional<double> init_lr);
// init_lr is always present (configure_json passes 0.0: its JSON forms never use it).
SchedulePtr parse_schedule(std::string_view spec, double init_lr);

// The shortest decimal that rounds to `value`, as a double. The optimizer holds its learning
// rate as float32; a shorthand takes the decimal the user most likely wrote (0.1f -> 0.1), so
// that "cosine:..." on an optimizer with learning_rate 0.1 equals cosine_decay(0.1, ...) in MLX.
double shortest_decimal(float value);

}  // namespace descent
