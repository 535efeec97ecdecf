// An optimizer with one update rule: hyperparameters, declared parameters, the step counter, the
// learning rate (or its schedule) and the per-parameter state slots, plus the update protocol
// around the Rule.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/buffer.h"
#include "common/dtype.h"
#include "common/shape.h"
#include "config/hyperparameters.h"
#include "core/batched_step.h"
#include "core/half_step.h"
#include "core/optimizer.h"
#include "core/precision.h"
#include "optimizers/rule.h"

namespace descent {

class RuleOptimizer final : public Optimizer {
 public:
  explicit RuleOptimizer(std::string_view kind);
  RuleOptimizer(const RuleOptimizer& other);
  RuleOptimizer(RuleOptimizer&&) noexcept = default;
  RuleOptimizer& operator=(RuleOptimizer&&) noexcept = default;
  RuleOptimizer& operator=(const RuleOptimizer&) = delete;

  const std::string& kind() const override { return kind_; }
  std::unique_ptr<Optimizer> clone() const override;
  void adopt(Optimizer& other) noexcept override;

  void set_hyperparameter(std::string_view key, const Value& value) override;
  Value hyperparameter(std::string_view key) const override;
  std::size_t hyperparameter_count() const override { return 1 + hyper_.schema().specs.size(); }
  const std::string& hyperparameter_name(std::size_t index) const override;
  void configure_json(std::string_view json) override;
  std::string config_json() const override;
  void set_schedule(SchedulePtr schedule) override;

  void add_parameter(std::string_view name, DType dtype, Shape shape) override;
  std::size_t parameter_count() const override { return params_.size(); }
  std::size_t parameter_index(std::string_view name) const override;
  const std::string& parameter_name(std::size_t index) const override {
    return params_[index].name;
  }
  DType parameter_dtype(std::size_t index) const override { return params_[index].dtype; }
  const Shape& parameter_shape(std::size_t index) const override { return params_[index].shape; }
  int64_t parameter_numel(std::size_t index) const override { return params_[index].numel; }
  void init() override;
  void init_for_keys(const std::function<bool(std::string_view)>& has_key) override;
  void update(std::size_t count, const char* const* names, const descent_dtype* dtypes,
              const int64_t* numels, void* const* params, const void* const* grads) override;
  void update_indexed(std::size_t count, const std::size_t* indices, const descent_dtype* dtypes,
                      const int64_t* numels, void* const* params,
                      const void* const* grads) override;

  void set_num_threads(std::size_t n) noexcept override { num_threads_ = n; }
  std::size_t num_threads() const noexcept override { return num_threads_; }

  std::size_t state_count() const override { return state_keys_.size(); }
  const std::string& state_key(std::size_t index) const override;
  SlotInfo state_info(std::string_view key) const override;
  void state_get(std::string_view key, DType dtype, void* out, std::size_t count) const override;
  void state_set(std::string_view key, DType dtype, const void* data, std::size_t count) override;

  void set_owned_ranges(const std::vector<OwnedRange>& ranges) override;
  bool sharded() const override { return sharded_; }
  bool initialized() const override { return initialized_; }
  void step_sharded(std::size_t count, const std::size_t* indices, void* const* shard_params,
                    const void* const* grads) override;
  void for_each_state_block(const std::function<void(void*, std::size_t)>& fn) override;
  std::size_t state_bytes() const override;

  // ---- for MultiOptimizer, which must check every group before changing any ----------------
  // The configuration (hyperparameters, learning rate, schedule) without the state. A call that
  // configures several groups and fails part-way restores each group's copy; cheap, since no
  // state slot is copied.
  struct Settings {
    Hyperparameters hyper;
    std::optional<float> learning_rate;
    SchedulePtr schedule;
    std::vector<std::string> state_keys;
  };
  Settings settings() const { return Settings{hyper_, learning_rate_, schedule_, state_keys_}; }
  void restore_settings(Settings&& s) noexcept;
  // update() in two halves. prepare_step() makes update()'s checks that do not involve tensors
  // (learning rate present, constraints between keys) and evaluates the schedule once; it changes
  // nothing observable and returns the learning rate for commit_step(). commit_step() steps the
  // initialised optimizer: the counter advances and tensor i, the parameter declared at index
  // indices[i], is updated from params[i] and grads[i] (already validated). It cannot fail.
  // When sharded, params[i] points at the owned part only (see Optimizer::step_sharded).
  float prepare_step();
  void commit_step(float learning_rate, std::size_t count, const std::size_t* indices,
                   void* const* params, const void* const* grads) noexcept;

 private:
  struct Parameter {
    std::string name;
    DType dtype;
    Shape shape;
    int64_t numel;
    std::vector<SlotSpec> slot_specs;  // decided at init, from the configured rule
    std::vector<Buffer> slots;         // empty until initialised
    std::vector<Buffer*> slot_ptrs;    // stable pointers handed to the rule
    // Sharded state (set_owned_ranges): the owned elements; own_shape is the slots' shape.
    OwnedRange owned{0, 0, true};
    Shape own_shape;
  };
  // Whether a parameter has state on this process, and the shape of its slots.
  bool owns(const Parameter& p) const { return !sharded_ || p.owned.owned; }
  const Shape& slot_shape(const Parameter& p) const { return sharded_ ? p.own_shape : p.shape; }
  struct SlotRef {
    std::size_t param;
    std::size_t slot;
  };

  // The state slots of a parameter under the rule `r` and `policy`: the rule's, then "master".
  static std::vector<SlotSpec> slot_specs_of(const Rule& r, const Parameter& p, const Shape& shape,
                                             StatePrecision policy);
  // The dtype of slot `slot` of a parameter (its own, float32, or the master's float32).
  static DType slot_dtype_at(const Parameter& p, std::size_t slot, std::size_t slot_count,
                             StatePrecision policy);
  // Refuses a change of state_precision once the state is initialised (it fixes the layout).
  void check_precision_unchanged(const Hyperparameters& next) const;
  // Steps one tensor (or a range of one): directly, or through float32 for half precision.
  void apply_tensor(const StepContext& ctx, const TensorStep& t) noexcept;
  // Seeds the master copies that have not been seeded (the slot starts as a NaN marker).
  void seed_masters(std::size_t count, const std::size_t* indices, void* const* params) noexcept;
  // The batched step's callback for a half-precision tensor (BatchedUpdate::step_half).
  static void step_half_range(void* self, const StepContext& ctx, std::size_t index, void* param,
                              const void* grad, int64_t begin, int64_t end) noexcept;

  void check_ready() const;          // learning rate present, constraints between keys hold
  float next_learning_rate() const;  // the schedule's value for the coming step, checked
  void configure_rule();             // hands changed hyperparameters to the rule
  void rebuild_state_keys();
  // The slot a key names; before init, the slot init would create.
  std::optional<SlotRef> find_slot(std::string_view key) const;

  std::string kind_;
  std::unique_ptr<Rule> rule_;
  Hyperparameters hyper_;
  bool rule_configured_ = false;
  std::optional<float> learning_rate_;  // float32, as MLX stores it
  SchedulePtr schedule_;                // when set, overwrites learning_rate_ before each step
  uint64_t step_ = 0;
  bool initialized_ = false;
  bool sharded_ = false;
  std::vector<Parameter> params_;
  // Every parameter's state slots live in one zeroed block, slot by slot (all "m", then all
  // "v", ...), each at a multiple of 64 bytes: many small tensors then stream through memory as
  // one large one would. Parameter::slots are views into it.
  Buffer arena_;
  std::map<std::string, std::size_t, std::less<>> param_index_;
  std::map<std::string, SlotRef, std::less<>> slot_index_;  // "<param>.<slot>", after init
  std::vector<std::string> state_keys_;
  // Scratch reused by update() so that a steady-state step does not allocate.
  std::vector<std::size_t> scratch_index_;  // per named tensor: its parameter (reserved)
  std::vector<unsigned char> scratch_seen_;
  // Scratch of a threaded step (reserved with the parameters): cumulative element counts.
  std::vector<int64_t> scratch_prefix_;
  // Per parameter, what an elementwise step reads (core/batched_step.h); set with the slots.
  // Per parameter, what an elementwise step reads (core/batched_step.h), and the cumulative
  // element counts in declaration order; set with the slots.
  std::vector<StepTarget> targets_;
  std::vector<int64_t> declared_prefix_;
  void rebuild_targets();
  std::size_t num_threads_ = 0;   // 0: the process-wide setting
  PrecisionSettings precision_;   // read from hyper_ with the rule's configuration
  HalfWorkspace half_workspace_;  // Adafactor/Muon on half-precision parameters

  void reserve_scratch();
  // Lays out the slots of `specs` (per parameter) in one new arena: returns it and fills `views`.
  // Allocates (may throw) before anything is changed.
  Buffer make_arena(const std::vector<std::vector<std::size_t>>& bytes,
                    std::vector<std::vector<Buffer>>& views) const;
  // Counts the step (and stores a scheduled learning rate): the context of the step.
  StepContext advance(float lr) noexcept;
  // Steps an elementwise rule's update (core/batched_step.h) on this optimizer's threads;
  // `declared_order`: the update is every parameter in declaration order.
  void run_batched(const BatchedUpdate& u, bool declared_order) noexcept;
  void step_flat(FlatLayout& flat, void* params, const void* grads) override;
};

}  // namespace descent
