// An optimizer instance: hyperparameters, declared parameters, the step counter, the learning
// rate and the per-parameter state slots, plus the update protocol around a Rule.
// Every mutating method validates everything first and only then changes anything, so an
// exception leaves the object exactly as it was.
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
#include "optimizers/rule.h"

namespace descent {

struct SlotInfo {
  DType dtype;
  Shape shape;
};

class Optimizer {
 public:
  explicit Optimizer(std::string_view kind);

  const std::string& kind() const { return kind_; }

  // Hyperparameters, "learning_rate" included.
  void set_hyperparameter(std::string_view key, const Value& value);
  Value hyperparameter(std::string_view key) const;
  std::size_t hyperparameter_count() const { return 1 + hyper_.schema().specs.size(); }
  const std::string& hyperparameter_name(std::size_t index) const;
  // Applies a JSON object of hyperparameters, all or nothing.
  void configure_json(std::string_view json);

  // Parameters.
  void add_parameter(std::string_view name, DType dtype, Shape shape);
  std::size_t parameter_count() const { return params_.size(); }
  void init();
  // One step on the named tensors (see descent_optimizer_update).
  void update(std::size_t count, const char* const* names, const descent_dtype* dtypes,
              const int64_t* numels, void* const* params, const void* const* grads);

  // State, by MLX's tree_flatten keys.
  std::size_t state_count() const { return state_keys_.size(); }
  const std::string& state_key(std::size_t index) const;
  SlotInfo state_info(std::string_view key) const;
  void state_get(std::string_view key, DType dtype, void* out, std::size_t count) const;
  void state_set(std::string_view key, DType dtype, const void* data, std::size_t count);

  uint64_t step() const { return step_; }

 private:
  struct Parameter {
    std::string name;
    DType dtype;
    Shape shape;
    int64_t numel;
    std::vector<SlotSpec> slot_specs;
    std::vector<Buffer> slots;         // empty until initialised
    std::vector<Buffer*> slot_ptrs;    // stable pointers handed to the rule
  };
  struct SlotRef {
    std::size_t param;
    std::size_t slot;
  };

  void check_ready() const;  // learning rate present, constraints between keys hold
  void rebuild_state_keys();
  std::optional<SlotRef> find_slot(std::string_view key) const;

  std::string kind_;
  std::unique_ptr<Rule> rule_;
  Hyperparameters hyper_;
  bool rule_configured_ = false;
  std::optional<float> learning_rate_;  // float32, as MLX stores it
  uint64_t step_ = 0;
  bool initialized_ = false;
  std::vector<Parameter> params_;
  std::map<std::string, std::size_t, std::less<>> param_index_;
  std::map<std::string, SlotRef, std::less<>> slot_index_;  // "<param>.<slot>"
  std::vector<std::string> state_keys_;
  // Scratch reused by update() so that a steady-state step does not allocate.
  std::vector<std::size_t> scratch_index_;
  std::vector<unsigned char> scratch_seen_;
};

}  // namespace descent
