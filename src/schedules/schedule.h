// A learning-rate schedule: a function of the step count (evaluated before the increment).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace descent {

class Schedule {
 public:
  virtual ~Schedule() = default;
  // The learning rate at `step`, as MLX computes it (float32 for MLX's built-in schedules).
  // May throw descent::Error (e.g. a callback returning a non-finite value).
  virtual double value(uint64_t step) const = 0;
  // JSON describing the schedule (for saving), or "" when it cannot be described (callbacks).
  virtual std::string to_json() const = 0;
};

using SchedulePtr = std::shared_ptr<const Schedule>;

}  // namespace descent
