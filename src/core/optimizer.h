// The interface every optimizer handle drives: a single update rule (RuleOptimizer) or
// parameter groups (MultiOptimizer). Every mutating method validates everything first and only
// then changes anything, so an exception leaves the object exactly as it was.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/shape.h"
#include "config/value.h"
#include "core/flat_layout.h"
#include "schedules/schedule.h"

namespace descent {

struct SlotInfo {
  DType dtype;
  Shape shape;
};

// The elements [begin, end) of a parameter this process owns when the state is sharded
// (src/distributed): begin == 0 and end == numel is the whole tensor. `owned` false: none of it
// (a tensor without elements is owned whole by one rank).
struct OwnedRange {
  int64_t begin = 0;
  int64_t end = 0;
  bool owned = false;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  virtual const std::string& kind() const = 0;
  virtual std::unique_ptr<Optimizer> clone() const = 0;
  // Takes over the contents of `other` (a modified clone of this optimizer), keeping the identity
  // of this object and of any sub-optimizers so that handles borrowed from it stay valid. All-or-
  // nothing operations (load) work on a clone and adopt it on success. Does not throw.
  virtual void adopt(Optimizer& other) noexcept = 0;

  // Hyperparameters, "learning_rate" included.
  virtual void set_hyperparameter(std::string_view key, const Value& value) = 0;
  virtual Value hyperparameter(std::string_view key) const = 0;
  virtual std::size_t hyperparameter_count() const = 0;
  virtual const std::string& hyperparameter_name(std::size_t index) const = 0;
  // Applies a JSON object of hyperparameters, all or nothing.
  virtual void configure_json(std::string_view json) = 0;
  // Every hyperparameter (and schedule) as a JSON object that configure_json accepts.
  virtual std::string config_json() const = 0;
  // Replaces the learning rate by a schedule (nullptr removes it).
  virtual void set_schedule(SchedulePtr schedule) = 0;

  // Parameters; the i-th declared has index i.
  virtual void add_parameter(std::string_view name, DType dtype, Shape shape) = 0;
  virtual std::size_t parameter_count() const = 0;
  virtual std::size_t parameter_index(std::string_view name) const = 0;  // throws UNKNOWN_KEY
  // By index in [0, parameter_count()) (callers check; parameter_info checks for the C API).
  virtual const std::string& parameter_name(std::size_t index) const = 0;
  virtual DType parameter_dtype(std::size_t index) const = 0;
  virtual const Shape& parameter_shape(std::size_t index) const = 0;
  virtual int64_t parameter_numel(std::size_t index) const = 0;
  // Throws DESCENT_ERR_INVALID_ARGUMENT unless a parameter has this index.
  void check_parameter_index(std::size_t index) const;
  virtual void init() = 0;
  // For a load: initialises the state as init() does, but lays out the slots whose presence a
  // hyperparameter decides at init (Adafactor's exp_avg, on beta_1) as the saved state has them
  // (`has_key` tells which keys it holds): a change of that hyperparameter after init does not
  // change the slots, so the saved configuration alone does not tell. An initialised optimizer
  // with another layout is laid out again, zero-filled. Only ever applied to a load's copy.
  virtual void init_for_keys(const std::function<bool(std::string_view)>& has_key) = 0;
  // One step on the named tensors (see descent_optimizer_update).
  virtual void update(std::size_t count, const char* const* names, const descent_dtype* dtypes,
                      const int64_t* numels, void* const* params, const void* const* grads) = 0;
  // One step on tensors given by parameter index (descent_optimizer_update_indexed).
  virtual void update_indexed(std::size_t count, const std::size_t* indices,
                              const descent_dtype* dtypes, const int64_t* numels,
                              void* const* params, const void* const* grads) = 0;

  // The flat layout (descent_optimizer_flat_offset/_size) and one step on every parameter from
  // two buffers in it (descent_optimizer_update_flat).
  std::size_t flat_offset(std::size_t index) const;
  std::size_t flat_size() const;
  void update_flat(void* params, const void* grads, std::size_t size);

  // Threads for this optimizer's steps; 0 (the default) follows the process-wide setting
  // (descent_set_num_threads). Not a hyperparameter: not saved, not in config_json.
  virtual void set_num_threads(std::size_t n) noexcept = 0;
  virtual std::size_t num_threads() const noexcept = 0;

  // State, by MLX's tree_flatten keys.
  virtual std::size_t state_count() const = 0;
  virtual const std::string& state_key(std::size_t index) const = 0;
  virtual SlotInfo state_info(std::string_view key) const = 0;
  virtual void state_get(std::string_view key, DType dtype, void* out, std::size_t count) const = 0;
  virtual void state_set(std::string_view key, DType dtype, const void* data,
                         std::size_t count) = 0;

  // ---- hooks for sharded state (src/distributed/sharding.h drives them) ---------------------
  // Restricts the state to the given ranges, one per declared parameter (checked by the caller:
  // one per parameter, within its element count). Before init only; declarations (and a multi
  // optimizer's groups and filters) are fixed from then on. Slots of a parameter owned whole keep
  // its shape, of a part are one-dimensional, of one not owned do not exist.
  virtual void set_owned_ranges(const std::vector<OwnedRange>& ranges) = 0;
  virtual bool sharded() const = 0;
  virtual bool initialized() const = 0;
  // One step on tensors already checked against the declarations (indices, dtypes, element
  // counts, buffers): readiness checks and the schedule may still throw, changing nothing.
  // shard_params[i] points at the owned elements of tensor indices[i] (the part [begin, end) of
  // the parameter, contiguous), grads[i] at the whole gradient. Initialises the state first.
  virtual void step_sharded(std::size_t count, const std::size_t* indices,
                            void* const* shard_params, const void* const* grads) = 0;
  // Every byte that a step changes (slots, step counters, stored learning rates), as blocks,
  // in a fixed order, for a copy taken before a step and restored if the step is voted down.
  virtual void for_each_state_block(
      const std::function<void(void* data, std::size_t bytes)>& fn) = 0;
  // Bytes of state slots held now (after init) or that init would allocate (before).
  virtual std::size_t state_bytes() const = 0;

 protected:
  // update_flat's step, once the two buffers are checked against the layout: every declared
  // parameter, in order, at its offset in each. By default an indexed update over pointers into
  // the buffers; RuleOptimizer steps the buffers directly.
  virtual void step_flat(FlatLayout& flat, void* params, const void* grads);

 private:
  // Offsets and per-step pointer arrays, rebuilt when the parameter count changes: a cache, so
  // copies of an optimizer need not share or copy it.
  mutable FlatLayout flat_;
};

// "multi" or a rule kind ("sgd", "adam", ...); throws DESCENT_ERR_UNKNOWN_KIND.
std::unique_ptr<Optimizer> make_optimizer(std::string_view kind);

}  // namespace descent
