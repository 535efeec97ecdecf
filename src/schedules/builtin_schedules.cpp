#include "schedules/builtin_schedules.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "common/error.h"
#include "schedules/mlx_cos.h"

namespace descent {

namespace schedules {

void check_real(const std::string& what, double value) {
  if (!std::isfinite(value))
    throw Error(DESCENT_ERR_OUT_OF_RANGE, what + " " + json_number(value) + " is not finite");
  if (std::fabs(value) > FLT_MAX)
    throw Error(DESCENT_ERR_OUT_OF_RANGE,
                what + " " + json_number(value) + " is outside the float32 range");
}

void check_count(const std::string& what, uint64_t value) {
  if (value < 1)
    throw Error(DESCENT_ERR_OUT_OF_RANGE,
                what + " must be >= 1 (got " + std::to_string(value) + ")");
}

std::string json_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return nlohmann::json(value).dump();
}

}  // namespace schedules

namespace {

using schedules::check_count;
using schedules::check_real;
using schedules::json_number;

constexpr double kPi = 3.141592653589793;  // Python's math.pi

float f32(double x) {
  return static_cast<float>(x);
}

// Every op below is one eager MLX float32 op; -ffp-contract=off keeps them unfused.
class ExponentialDecay final : public Schedule {
 public:
  ExponentialDecay(double init, double rate) : init_(init), rate_(rate) {}
  double value(uint64_t step) const override {
    // init * decay_rate ** step: the step (uint64) promotes to float32, powf in float32.
    return f32(init_) * std::pow(f32(rate_), static_cast<float>(step));
  }
  std::string to_json() const override {
    return "{\"schedule\": \"exponential_decay\", \"init\": " + json_number(init_) +
           ", \"decay_rate\": " + json_number(rate_) + "}";
  }

 private:
  double init_, rate_;
};

class StepDecay final : public Schedule {
 public:
  StepDecay(double init, double rate, uint64_t step_size)
      : init_(init), rate_(rate), step_size_(step_size) {}
  double value(uint64_t step) const override {
    // step // step_size is a uint64 floor division; the power is float32.
    return f32(init_) *
           std::pow(f32(rate_),
                    static_cast<float>(step / step_size_));  // NOLINT(bugprone-integer-division)
  }
  std::string to_json() const override {
    return "{\"schedule\": \"step_decay\", \"init\": " + json_number(init_) +
           ", \"decay_rate\": " + json_number(rate_) +
           ", \"step_size\": " + std::to_string(step_size_) + "}";
  }

 private:
  double init_, rate_;
  uint64_t step_size_;
};

class CosineDecay final : public Schedule {
 public:
  CosineDecay(double init, uint64_t decay_steps, double end)
      : init_(init), decay_steps_(decay_steps), end_(end) {}
  double value(uint64_t step) const override {
    const uint64_t s = std::min(step, decay_steps_);  // integer minimum
    const float arg = f32(kPi / static_cast<double>(decay_steps_)) * static_cast<float>(s);
    const float decay = 0.5f * (1.0f + schedules::mlx_cos(arg));
    return f32(end_) + decay * f32(init_ - end_);  // init - end in double, rounded once
  }
  std::string to_json() const override {
    return "{\"schedule\": \"cosine_decay\", \"init\": " + json_number(init_) +
           ", \"decay_steps\": " + std::to_string(decay_steps_) +
           ", \"end\": " + json_number(end_) + "}";
  }

 private:
  double init_;
  uint64_t decay_steps_;
  double end_;
};

class LinearSchedule final : public Schedule {
 public:
  LinearSchedule(double init, double end, uint64_t steps) : init_(init), end_(end), steps_(steps) {}
  double value(uint64_t step) const override {
    const uint64_t s = std::min(step, steps_);
    // The slope (end - init) / steps is computed in double and rounded once.
    return static_cast<float>(s) * f32((end_ - init_) / static_cast<double>(steps_)) + f32(init_);
  }
  std::string to_json() const override {
    return "{\"schedule\": \"linear_schedule\", \"init\": " + json_number(init_) +
           ", \"end\": " + json_number(end_) + ", \"steps\": " + std::to_string(steps_) + "}";
  }

 private:
  double init_, end_;
  uint64_t steps_;
};

class ConstantSchedule final : public Schedule {
 public:
  explicit ConstantSchedule(double value) : value_(value) {}
  double value(uint64_t) const override { return f32(value_); }
  std::string to_json() const override {
    return "{\"schedule\": \"constant\", \"value\": " + json_number(value_) + "}";
  }

 private:
  double value_;
};

class JoinSchedules final : public Schedule {
 public:
  JoinSchedules(std::vector<SchedulePtr> schedules, std::vector<uint64_t> boundaries)
      : schedules_(std::move(schedules)), boundaries_(std::move(boundaries)) {}
  double value(uint64_t step) const override {
    // MLX: out = where(step < b, out, schedule(step - b)) for each boundary in order, so the
    // last boundary the step has reached selects the schedule. Only that one is evaluated (MLX
    // evaluates all and discards the others, whose local step wrapped around).
    std::size_t pick = 0;
    uint64_t origin = 0;
    for (std::size_t i = 0; i < boundaries_.size(); ++i)
      if (step >= boundaries_[i]) {
        pick = i + 1;
        origin = boundaries_[i];
      }
    return schedules_[pick]->value(step - origin);
  }
  std::string to_json() const override {
    std::string out = "{\"schedule\": \"join_schedules\", \"schedules\": [";
    for (std::size_t i = 0; i < schedules_.size(); ++i) {
      const std::string child = schedules_[i]->to_json();
      if (child.empty()) return "";  // a part that cannot be described (a callback)
      out += (i ? ", " : "") + child;
    }
    out += "], \"boundaries\": [";
    for (std::size_t i = 0; i < boundaries_.size(); ++i)
      out += (i ? ", " : "") + std::to_string(boundaries_[i]);
    return out + "]}";
  }

 private:
  std::vector<SchedulePtr> schedules_;
  std::vector<uint64_t> boundaries_;
};

}  // namespace

SchedulePtr exponential_decay(double init, double decay_rate) {
  check_real("exponential_decay: init", init);
  check_real("exponential_decay: decay_rate", decay_rate);
  return std::make_shared<ExponentialDecay>(init, decay_rate);
}

SchedulePtr step_decay(double init, double decay_rate, uint64_t step_size) {
  check_real("step_decay: init", init);
  check_real("step_decay: decay_rate", decay_rate);
  check_count("step_decay: step_size", step_size);
  return std::make_shared<StepDecay>(init, decay_rate, step_size);
}

SchedulePtr cosine_decay(double init, uint64_t decay_steps, double end) {
  check_real("cosine_decay: init", init);
  check_count("cosine_decay: decay_steps", decay_steps);
  check_real("cosine_decay: end", end);
  return std::make_shared<CosineDecay>(init, decay_steps, end);
}

SchedulePtr linear_schedule(double init, double end, uint64_t steps) {
  check_real("linear_schedule: init", init);
  check_real("linear_schedule: end", end);
  check_count("linear_schedule: steps", steps);
  return std::make_shared<LinearSchedule>(init, end, steps);
}

SchedulePtr constant_schedule(double value) {
  check_real("constant: value", value);
  return std::make_shared<ConstantSchedule>(value);
}

SchedulePtr join_schedules(std::vector<SchedulePtr> schedules, std::vector<uint64_t> boundaries) {
  if (schedules.empty())
    throw Error(DESCENT_ERR_PARSE, "join_schedules: needs at least one schedule");
  if (schedules.size() > kMaxJoinedSchedules)
    throw Error(DESCENT_ERR_OUT_OF_RANGE, "join_schedules: " + std::to_string(schedules.size()) +
                                              " schedules, at most " +
                                              std::to_string(kMaxJoinedSchedules) + " are allowed");
  if (schedules.size() != boundaries.size() + 1)
    throw Error(DESCENT_ERR_PARSE, "join_schedules: " + std::to_string(schedules.size()) +
                                       " schedules need " + std::to_string(schedules.size() - 1) +
                                       " boundaries, got " + std::to_string(boundaries.size()));
  for (std::size_t i = 0; i < schedules.size(); ++i)
    if (!schedules[i])
      throw Error(DESCENT_ERR_NULL_ARGUMENT,
                  "join_schedules: schedules[" + std::to_string(i) + "] is null");
  return std::make_shared<JoinSchedules>(std::move(schedules), std::move(boundaries));
}

}  // namespace descent
