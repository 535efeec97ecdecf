// A schedule computed by the caller's C function (descent_optimizer_set_schedule_callback).
// The object owns user_data: its destructor calls free_user_data(user_data) once. SchedulePtr is
// a shared_ptr and optimizers are cloned internally (all-or-nothing operations), so the function
// runs exactly once, when the last optimizer that holds the schedule lets it go.
#pragma once

#include <cstdint>
#include <string>

#include "descent/descent.h"
#include "schedules/schedule.h"

namespace descent {

class CallbackSchedule final : public Schedule {
 public:
  CallbackSchedule(descent_schedule_fn fn, void* user_data, void (*free_user_data)(void*)) noexcept
      : fn_(fn), user_data_(user_data), free_user_data_(free_user_data) {}
  ~CallbackSchedule() override;
  CallbackSchedule(const CallbackSchedule&) = delete;
  CallbackSchedule& operator=(const CallbackSchedule&) = delete;

  // fn(step, user_data, &value, ...). Throws the callback's failure, or DESCENT_ERR_OUT_OF_RANGE
  // when the value is not finite or does not fit float32 (the learning rate is held as float32).
  double value(uint64_t step) const override;
  // Callbacks cannot be written down: "".
  std::string to_json() const override { return {}; }

  // Gives user_data back to the caller: the destructor will not free it. Used when attaching the
  // schedule failed, so that a failed call leaves the caller owning what it passed.
  void release_user_data() noexcept { free_user_data_ = nullptr; }

 private:
  descent_schedule_fn fn_;
  void* user_data_;
  void (*free_user_data_)(void*);
};

}  // namespace descent
