// MLX's built-in schedules (mlx.optimizers.schedulers), computed in float32 exactly as MLX does
// on the CPU and returned as doubles that hold the float32 value (mlx-semantics.md §4). Each
// factory validates its arguments as MLX does (plus finiteness) and throws descent::Error
// (DESCENT_ERR_OUT_OF_RANGE for a bad value, DESCENT_ERR_PARSE for a malformed join).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "schedules/schedule.h"

namespace descent {

// init * decay_rate ** step
SchedulePtr exponential_decay(double init, double decay_rate);
// init * decay_rate ** (step // step_size); step_size >= 1
SchedulePtr step_decay(double init, double decay_rate, uint64_t step_size);
// end + 0.5 * (1 + cos(pi / decay_steps * min(step, decay_steps))) * (init - end); decay_steps >= 1
SchedulePtr cosine_decay(double init, uint64_t decay_steps, double end = 0.0);
// min(step, steps) * ((end - init) / steps) + init; steps >= 1
SchedulePtr linear_schedule(double init, double end, uint64_t steps);
// float32(value) at every step (descent's; MLX users write a lambda).
SchedulePtr constant_schedule(double value);
// schedules[0] before boundaries[0]; at step >= boundaries[i] schedules[i + 1] evaluated at the
// local step (step - boundaries[i]); the last boundary in the list that the step has reached
// wins. Needs schedules.size() == boundaries.size() + 1 >= 1, at most kMaxJoinedSchedules
// (a step scans the boundaries; DESCENT_ERR_OUT_OF_RANGE beyond), and no null schedule.
constexpr std::size_t kMaxJoinedSchedules = 1024;
SchedulePtr join_schedules(std::vector<SchedulePtr> schedules, std::vector<uint64_t> boundaries);

namespace schedules {
// Throws DESCENT_ERR_OUT_OF_RANGE "<what> <value> is not finite" / "... outside the float32
// range" unless value is a finite double that float32 can hold (every real argument of a
// schedule is converted to float32 by MLX).
void check_real(const std::string& what, double value);
// Throws DESCENT_ERR_OUT_OF_RANGE "<what> must be >= 1 (got 0)" when value < 1.
void check_count(const std::string& what, uint64_t value);
// A double as the shortest JSON text that parses back to it.
std::string json_number(double value);
}  // namespace schedules

}  // namespace descent
