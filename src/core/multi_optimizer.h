// Parameter groups (MLX's MultiOptimizer): several RuleOptimizers, each with a filter. At init
// every declared parameter goes to the first group whose filter accepts it; the last group is the
// fallback and takes whatever no earlier group took. Each group keeps its own step, learning rate,
// schedule and state; an update steps every group (even one that gets no tensor), so the steps
// advance together as in MLX. State keys are "states.<i>.<group key>". See docs/multi.md.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/optimizer.h"
#include "core/rule_optimizer.h"

namespace descent {

// A caller's filter callback and its user data; user data is released once, when the last copy
// of the filter (clones share it) goes away.
struct FilterCallback {
  using Fn = descent_filter_fn;
  Fn fn = nullptr;
  void* user_data = nullptr;
  void (*free_user_data)(void*) = nullptr;

  FilterCallback(Fn f, void* data, void (*free_fn)(void*))
      : fn(f), user_data(data), free_user_data(free_fn) {}
  FilterCallback(const FilterCallback&) = delete;
  FilterCallback& operator=(const FilterCallback&) = delete;
  ~FilterCallback() {
    if (free_user_data) free_user_data(user_data);
  }
};

// '*' matches any run of characters (dots included), '?' exactly one; everything else itself.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

class MultiOptimizer final : public Optimizer {
 public:
  // One include clause of a group's filter.
  struct Clause {
    enum class Kind { Name, Ndim, Callback };
    Kind kind;
    std::string glob;                          // Name
    int64_t min_ndim = 0, max_ndim = -1;       // Ndim (max < 0: unbounded)
    std::shared_ptr<FilterCallback> callback;  // Callback
    bool operator==(const Clause& o) const;
  };
  // Accepts a parameter when any include clause matches (or there is none) and no exclude glob
  // does.
  struct Filter {
    std::vector<Clause> include;
    std::vector<std::string> exclude;
    bool empty() const { return include.empty() && exclude.empty(); }
    bool accepts(const std::string& name, const Shape& shape) const;
    bool operator==(const Filter& o) const { return include == o.include && exclude == o.exclude; }
  };

  MultiOptimizer() = default;
  MultiOptimizer(const MultiOptimizer& other);
  MultiOptimizer& operator=(const MultiOptimizer&) = delete;

  const std::string& kind() const override;
  std::unique_ptr<Optimizer> clone() const override;
  void adopt(Optimizer& other) noexcept override;

  // Only "learning_rate": the getter reads group 0's, the setter sets every group's (MLX).
  void set_hyperparameter(std::string_view key, const Value& value) override;
  Value hyperparameter(std::string_view key) const override;
  std::size_t hyperparameter_count() const override { return 1; }
  const std::string& hyperparameter_name(std::size_t index) const override;
  // {"groups": [{"kind", "config", "include", "exclude"}, ...], "learning_rate": ...}; see
  // docs/multi.md. All or nothing.
  void configure_json(std::string_view json) override;
  std::string config_json() const override;
  // Attaches the schedule to every group (each evaluates it at its own step).
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

  // Sets every group's thread count (groups added later get it too); a group's own handle may
  // then set its own.
  void set_num_threads(std::size_t n) noexcept override;
  std::size_t num_threads() const noexcept override { return num_threads_; }

  std::size_t state_count() const override;
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

  // ---- groups ------------------------------------------------------------------------------
  // Adds a group with a new optimizer of `kind` ("multi" is not allowed), configured by
  // config_json when not null. Returns its index.
  std::size_t add_group(std::string_view kind, const char* config_json);
  std::size_t group_count() const { return groups_.size(); }
  RuleOptimizer& group(std::size_t index);
  const RuleOptimizer& group(std::size_t index) const;
  void add_filter_name(std::size_t index, std::string_view glob);
  void add_filter_ndim(std::size_t index, int64_t min_ndim, int64_t max_ndim);
  void add_filter_callback(std::size_t index, std::shared_ptr<FilterCallback> callback);
  void add_exclude_name(std::size_t index, std::string_view glob);
  // The group of a declared parameter: decided at init; before, the filters are evaluated now.
  std::size_t parameter_group(std::string_view name) const;

 private:
  struct Parameter {
    std::string name;
    DType dtype;
    Shape shape;
    int64_t numel;
    std::size_t group = 0;        // after init
    std::size_t local = 0;        // index among the group's parameters, after init
    OwnedRange owned;             // when sharded
    std::size_t shard_group = 0;  // when sharded: the group the ranges were planned for
  };
  // update_indexed() after its checks of the tensors: readiness, lazy init, then the step.
  void step_checked(std::size_t count, const std::size_t* indices, void* const* params,
                    const void* const* grads);

  // Throws unless group `index` exists and may still get filters.
  Filter& filter_for_change(std::size_t index);
  std::size_t group_index_of(std::string_view key, std::string_view* rest) const;
  void check_groups() const;  // at least one group; the last one has no filter
  std::size_t assign(const Parameter& p) const;
  // Clones of the groups with their parameters declared and their state initialised, plus each
  // parameter's group; nothing is changed. commit_init() then installs them (cannot fail).
  struct Plan {
    std::vector<std::unique_ptr<RuleOptimizer>> groups;
    std::vector<std::size_t> group_of;
    std::vector<std::size_t> local_of;
  };
  // `has_key`: initialise the groups for a load (init_for_keys), else as init().
  Plan plan_init(const std::function<bool(std::string_view)>* has_key = nullptr) const;
  void commit_init(Plan& plan) noexcept;
  // `has_key` for group g's own keys (the multi's "states.<g>.<key>").
  static std::function<bool(std::string_view)> group_keys(
      std::size_t g, const std::function<bool(std::string_view)>& has_key);
  // Runs `change` on every group; if it throws for one, every group gets its settings back.
  template <class Change>
  void change_all_groups(Change&& change);

  std::vector<std::unique_ptr<RuleOptimizer>>
      groups_;  // never reallocated objects: handles borrow them
  std::vector<Filter> filters_;
  std::vector<Parameter> params_;
  std::map<std::string, std::size_t, std::less<>> param_index_;
  bool initialized_ = false;
  bool sharded_ = false;
  std::size_t num_threads_ = 0;  // 0: the process-wide setting

  // Scratch reused by update() so that a steady-state step does not allocate. Sized by
  // add_parameter and add_group.
  std::vector<unsigned char> scratch_seen_;  // per parameter: named in this update
  std::vector<std::size_t> scratch_index_;   // per named tensor: its parameter (reserved)
  std::vector<std::size_t> scratch_offset_;  // per group + 1: start of its tensors below
  std::vector<std::size_t> scratch_cursor_;  // per group
  std::vector<std::size_t> scratch_local_;   // per tensor, grouped: index within its group
  std::vector<void*> scratch_params_;        // per tensor, grouped
  std::vector<const void*> scratch_grads_;   // per tensor, grouped
  std::vector<float> scratch_lr_;            // per group: the learning rate of this step

  mutable std::deque<std::string> key_cache_;  // state keys handed out; references stay valid
};

}  // namespace descent
