#include "core/optimizer.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "config/json_config.h"

namespace descent {

namespace {

const std::string kLearningRate = "learning_rate";
const std::string kStep = "step";

// Learning rates are stored as float32 (MLX's mx.array(lr)); reject what float32 cannot hold.
float to_learning_rate(const Value& v) {
  double d;
  if (const auto* x = std::get_if<double>(&v))
    d = *x;
  else if (const auto* i = std::get_if<int64_t>(&v))
    d = static_cast<double>(*i);
  else
    throw Error(DESCENT_ERR_WRONG_TYPE, "learning_rate: expected double, got " +
                                            std::string(value_type_name(value_type(v))));
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
    throw Error(DESCENT_ERR_OUT_OF_RANGE,
                "learning_rate: must be finite and representable as float32 (got " +
                    value_string(v) + ")");
  return static_cast<float>(d);
}

std::string join_key(const std::string& a, const std::string& b) { return a + "." + b; }

}  // namespace

Optimizer::Optimizer(std::string_view kind)
    : kind_(kind), rule_(make_rule(kind)), hyper_(rule_->schema()) {
  rebuild_state_keys();
}

// ---- hyperparameters ---------------------------------------------------------------------

void Optimizer::set_hyperparameter(std::string_view key, const Value& value) {
  if (key == kLearningRate) {
    if (value.index() == 0) {
      if (rule_->requires_learning_rate())
        throw Error(DESCENT_ERR_WRONG_TYPE, "learning_rate: is required and cannot be unset");
      learning_rate_.reset();
    } else {
      learning_rate_ = to_learning_rate(value);
    }
    rebuild_state_keys();
    return;
  }
  hyper_.set(key, value);
  rule_configured_ = false;
}

Value Optimizer::hyperparameter(std::string_view key) const {
  if (key == kLearningRate) {
    if (!learning_rate_) return std::monostate{};
    return static_cast<double>(*learning_rate_);
  }
  return hyper_.get(key);
}

const std::string& Optimizer::hyperparameter_name(std::size_t index) const {
  if (index == 0) return kLearningRate;
  if (index > hyper_.schema().specs.size())
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                "index " + std::to_string(index) + " is past the last hyperparameter (" +
                    std::to_string(hyperparameter_count()) + " in all)");
  return hyper_.schema().specs[index - 1].name;
}

void Optimizer::configure_json(std::string_view json) {
  const auto entries = parse_hyperparameter_json(json);
  // Apply to copies, validate as a whole, then commit.
  Hyperparameters hyper = hyper_;
  std::optional<float> lr = learning_rate_;
  for (const auto& [key, value] : entries) {
    if (key == kLearningRate) {
      if (value.index() == 0) {
        if (rule_->requires_learning_rate())
          throw Error(DESCENT_ERR_WRONG_TYPE, "learning_rate: is required and cannot be null");
        lr.reset();
      } else {
        lr = to_learning_rate(value);
      }
    } else {
      hyper.set(key, value);
    }
  }
  hyper.validate_together();
  hyper_ = std::move(hyper);
  learning_rate_ = lr;
  rule_configured_ = false;
  rebuild_state_keys();
}

void Optimizer::check_ready() const {
  if (rule_->requires_learning_rate() && !learning_rate_)
    throw Error(DESCENT_ERR_INVALID_STATE,
                "learning_rate: " + kind_ + " needs a learning rate and none was set");
  hyper_.validate_together();
}

// ---- parameters --------------------------------------------------------------------------

void Optimizer::add_parameter(std::string_view name, DType dtype, Shape shape) {
  const std::string what = "parameter '" + std::string(name) + "'";
  if (name.empty()) throw Error(DESCENT_ERR_INVALID_ARGUMENT, "parameter name is empty");
  if (initialized_)
    throw Error(DESCENT_ERR_INVALID_STATE,
                what + ": parameters must be declared before the state is initialised");
  if (param_index_.count(name)) throw Error(DESCENT_ERR_DUPLICATE, what + ": declared twice");
  if (name == kStep || name == kLearningRate)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                what + ": the name collides with the state key of the same name");
  if (shape.size() > DESCENT_MAX_NDIM)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, what + ": more than " +
                                                  std::to_string(DESCENT_MAX_NDIM) + " dimensions");
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error(DESCENT_ERR_INVALID_ARGUMENT, what + ": negative dimension in shape " +
                                                             shape_string(shape));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 8 / d)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT, what + ": shape " + shape_string(shape) +
                                                    " is too large");
    n *= d;
  }
  Parameter p{std::string(name), dtype, std::move(shape), n, {}, {}, {}};
  p.slot_specs = rule_->slots(p.shape);
  for (const auto& s : p.slot_specs) {
    const std::string key = join_key(p.name, s.name);
    if (slot_index_.count(key) || param_index_.count(key))
      throw Error(DESCENT_ERR_DUPLICATE, what + ": state key '" + key +
                                             "' collides with one of another parameter");
  }
  // Everything validated: commit.
  const std::size_t index = params_.size();
  params_.push_back(std::move(p));
  param_index_.emplace(params_.back().name, index);
  const Parameter& added = params_.back();
  for (std::size_t s = 0; s < added.slot_specs.size(); ++s)
    slot_index_.emplace(join_key(added.name, added.slot_specs[s].name), SlotRef{index, s});
  scratch_index_.reserve(params_.size());
  scratch_seen_.assign(params_.size(), 0);
}

void Optimizer::init() {
  if (initialized_) return;
  check_ready();
  // Allocate everything before committing anything.
  std::vector<std::vector<Buffer>> all(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    for (const auto& s : p.slot_specs)
      all[i].emplace_back(static_cast<std::size_t>(numel(s.shape)) * dtype_size(p.dtype));
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = params_[i];
    p.slots = std::move(all[i]);
    p.slot_ptrs.clear();
    for (auto& b : p.slots) p.slot_ptrs.push_back(&b);
  }
  initialized_ = true;
  rebuild_state_keys();
}

void Optimizer::update(std::size_t count, const char* const* names, const descent_dtype* dtypes,
                       const int64_t* numels, void* const* params, const void* const* grads) {
  if (count > 0 && (!names || !params || !grads))
    throw Error(DESCENT_ERR_NULL_ARGUMENT, std::string(!names ? "names" : !params ? "params" : "grads") +
                                               " is NULL");
  check_ready();
  scratch_index_.clear();
  struct Unmark {  // leaves scratch_seen_ all zero whatever happens
    std::vector<unsigned char>& seen;
    std::vector<std::size_t>& index;
    ~Unmark() {
      for (std::size_t i : index) seen[i] = 0;
    }
  } unmark{scratch_seen_, scratch_index_};
  for (std::size_t i = 0; i < count; ++i) {
    if (!names[i]) throw Error(DESCENT_ERR_NULL_ARGUMENT, "names[" + std::to_string(i) + "] is NULL");
    const std::string_view name(names[i]);
    auto it = param_index_.find(name);
    if (it == param_index_.end())
      throw Error(DESCENT_ERR_UNKNOWN_KEY, "names[" + std::to_string(i) + "] = '" +
                                               std::string(name) + "': no parameter of that name");
    const std::size_t k = it->second;
    if (scratch_seen_[k])
      throw Error(DESCENT_ERR_DUPLICATE, "'" + std::string(name) + "': given twice in one update");
    const Parameter& p = params_[k];
    if (dtypes && dtypes[i] != static_cast<descent_dtype>(p.dtype))
      throw Error(DESCENT_ERR_DTYPE_MISMATCH,
                  "'" + p.name + "': dtype " + dtype_name(dtypes[i]) + " given, declared " +
                      dtype_name(p.dtype));
    if (numels && numels[i] != p.numel)
      throw Error(DESCENT_ERR_SHAPE_MISMATCH,
                  "'" + p.name + "': " + std::to_string(numels[i]) + " elements given, declared " +
                      shape_string(p.shape) + " has " + std::to_string(p.numel));
    if (p.numel > 0 && (!params[i] || !grads[i]))
      throw Error(DESCENT_ERR_NULL_ARGUMENT,
                  "'" + p.name + "': " + (!params[i] ? "params" : "grads") + "[" +
                      std::to_string(i) + "] is NULL");
    const auto* pb = static_cast<const unsigned char*>(params[i]);
    const auto* gb = static_cast<const unsigned char*>(grads[i]);
    const std::size_t bytes = static_cast<std::size_t>(p.numel) * dtype_size(p.dtype);
    if (p.numel > 0 && pb < gb + bytes && gb < pb + bytes)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  "'" + p.name + "': the parameter and gradient buffers overlap");
    scratch_seen_[k] = 1;
    scratch_index_.push_back(k);
  }
  if (!initialized_) init();  // MLX initialises lazily on the first update
  if (!rule_configured_) {
    rule_->configure(hyper_);
    rule_configured_ = true;
  }
  // Nothing below can fail.
  ++step_;
  const StepContext ctx{step_, learning_rate_.value_or(0.0f), learning_rate_.has_value()};
  for (std::size_t i = 0; i < count; ++i) {
    Parameter& p = params_[scratch_index_[i]];
    if (p.numel == 0) continue;
    rule_->apply(ctx, TensorStep{p.dtype, &p.shape, p.numel, params[i], grads[i], p.slot_ptrs.data()});
  }
}

// ---- state -------------------------------------------------------------------------------

void Optimizer::rebuild_state_keys() {
  std::vector<std::string> keys{kStep};
  if (learning_rate_) keys.push_back(kLearningRate);
  if (initialized_)
    for (const auto& p : params_)
      for (const auto& s : p.slot_specs) keys.push_back(join_key(p.name, s.name));
  state_keys_ = std::move(keys);
}

const std::string& Optimizer::state_key(std::size_t index) const {
  if (index >= state_keys_.size())
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                "index " + std::to_string(index) + " is past the last state key (" +
                    std::to_string(state_keys_.size()) + " in all)");
  return state_keys_[index];
}

std::optional<Optimizer::SlotRef> Optimizer::find_slot(std::string_view key) const {
  auto it = slot_index_.find(key);
  if (it == slot_index_.end()) return std::nullopt;
  return it->second;
}

SlotInfo Optimizer::state_info(std::string_view key) const {
  if (key == kStep) return {DType::UInt64, {}};
  if (key == kLearningRate && learning_rate_) return {DType::Float32, {}};
  const auto ref = initialized_ ? find_slot(key) : std::nullopt;
  if (!ref) throw Error(DESCENT_ERR_UNKNOWN_KEY, "state key '" + std::string(key) + "' does not exist");
  const Parameter& p = params_[ref->param];
  return {p.dtype, p.slot_specs[ref->slot].shape};
}

namespace {
void check_slot_request(std::string_view key, const SlotInfo& info, DType dtype, std::size_t count) {
  if (dtype != info.dtype)
    throw Error(DESCENT_ERR_DTYPE_MISMATCH, "state '" + std::string(key) + "': dtype " +
                                                dtype_name(dtype) + " given, the slot holds " +
                                                dtype_name(info.dtype));
  if (static_cast<int64_t>(count) != numel(info.shape))
    throw Error(DESCENT_ERR_SHAPE_MISMATCH,
                "state '" + std::string(key) + "': " + std::to_string(count) +
                    " elements given, the slot has shape " + shape_string(info.shape) + " (" +
                    std::to_string(numel(info.shape)) + " elements)");
}
}  // namespace

void Optimizer::state_get(std::string_view key, DType dtype, void* out, std::size_t count) const {
  const SlotInfo info = state_info(key);
  check_slot_request(key, info, dtype, count);
  if (key == kStep) {
    std::memcpy(out, &step_, sizeof step_);
  } else if (key == kLearningRate) {
    const float lr = *learning_rate_;
    std::memcpy(out, &lr, sizeof lr);
  } else {
    const auto ref = *find_slot(key);
    const Buffer& b = params_[ref.param].slots[ref.slot];
    if (b.bytes()) std::memcpy(out, b.data(), b.bytes());
  }
}

void Optimizer::state_set(std::string_view key, DType dtype, const void* data, std::size_t count) {
  if (key == kStep || key == kLearningRate) {
    check_slot_request(key, key == kStep ? SlotInfo{DType::UInt64, {}} : SlotInfo{DType::Float32, {}},
                       dtype, count);
    if (key == kStep) {
      std::memcpy(&step_, data, sizeof step_);
    } else {
      float lr;
      std::memcpy(&lr, data, sizeof lr);
      learning_rate_ = lr;
      rebuild_state_keys();
    }
    return;
  }
  const auto ref = find_slot(key);
  if (!ref) throw Error(DESCENT_ERR_UNKNOWN_KEY, "state key '" + std::string(key) + "' does not exist");
  const Parameter& p = params_[ref->param];
  check_slot_request(key, SlotInfo{p.dtype, p.slot_specs[ref->slot].shape}, dtype, count);
  if (!initialized_) init();  // setting a slot implies the state exists, as after MLX's init
  Buffer& b = params_[ref->param].slots[ref->slot];
  if (b.bytes()) std::memcpy(b.data(), data, b.bytes());
}

}  // namespace descent
