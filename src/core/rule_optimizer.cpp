#include "core/rule_optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "config/json_config.h"
#include "core/tensor_list.h"
#include "core/thread_pool.h"
#include "schedules/schedule_parse.h"

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
    throw Error(
        DESCENT_ERR_OUT_OF_RANGE,
        "learning_rate: must be finite and representable as float32 (got " + value_string(v) + ")");
  return static_cast<float>(d);
}

std::string join_key(const std::string& a, const std::string& b) {
  return a + "." + b;
}

// What a master slot holds until the parameter's first update seeds it (a quiet NaN; saved and
// loaded like any value, so a state saved before that update still seeds after a load).
const float kUnseededMaster = bits_float(0x7FC0FFEEu);

}  // namespace

RuleOptimizer::RuleOptimizer(std::string_view kind)
    : kind_(kind), rule_(make_rule(kind)), hyper_(schema_with_precision(rule_->schema())) {
  rebuild_state_keys();
  reserve_scratch();
}

RuleOptimizer::RuleOptimizer(const RuleOptimizer& o)
    : Optimizer(o),
      kind_(o.kind_),
      rule_(o.rule_->clone()),
      hyper_(o.hyper_),
      rule_configured_(o.rule_configured_),
      learning_rate_(o.learning_rate_),
      schedule_(o.schedule_),
      step_(o.step_),
      initialized_(o.initialized_),
      sharded_(o.sharded_),
      params_(o.params_),
      param_index_(o.param_index_),
      slot_index_(o.slot_index_),
      state_keys_(o.state_keys_),
      scratch_index_(o.scratch_index_),
      scratch_seen_(o.scratch_seen_),
      num_threads_(o.num_threads_),
      precision_(o.precision_),
      half_workspace_(o.half_workspace_) {
  // params_ copied every slot into an owning Buffer: lay them out in an arena of our own.
  std::vector<std::vector<std::size_t>> bytes(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (const auto& b : params_[i].slots) bytes[i].push_back(b.bytes());
  std::vector<std::vector<Buffer>> views;
  Buffer arena = make_arena(bytes, views);
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (std::size_t k = 0; k < views[i].size(); ++k) {
      if (views[i][k].bytes())
        std::memcpy(views[i][k].data(), params_[i].slots[k].data(), views[i][k].bytes());
      params_[i].slots[k] = std::move(views[i][k]);
    }
  arena_ = std::move(arena);
  for (auto& p : params_) {
    p.slot_ptrs.clear();
    for (auto& b : p.slots) p.slot_ptrs.push_back(&b);
  }
  rebuild_targets();
  reserve_scratch();  // a copied vector keeps its size, not its capacity
}

Buffer RuleOptimizer::make_arena(const std::vector<std::vector<std::size_t>>& bytes,
                                 std::vector<std::vector<Buffer>>& views) const {
  const auto round = [](std::size_t b) { return (b + 63) / 64 * 64; };
  std::size_t slots = 0, total = 0;
  for (const auto& b : bytes) slots = std::max(slots, b.size());
  for (std::size_t k = 0; k < slots; ++k)
    for (const auto& b : bytes)
      if (k < b.size()) total += round(b[k]);
  Buffer arena(total);
  views.assign(bytes.size(), {});
  for (std::size_t i = 0; i < bytes.size(); ++i) views[i].resize(bytes[i].size());
  auto* base = static_cast<unsigned char*>(arena.data());
  std::size_t at = 0;
  for (std::size_t k = 0; k < slots; ++k)
    for (std::size_t i = 0; i < bytes.size(); ++i)
      if (k < bytes[i].size() && bytes[i][k]) {
        views[i][k] = Buffer::view(base + at, bytes[i][k]);
        at += round(bytes[i][k]);
      }
  return arena;
}

void RuleOptimizer::reserve_scratch() {
  scratch_index_.reserve(params_.size());
  scratch_prefix_.resize(params_.size() + 1);
}

void RuleOptimizer::rebuild_targets() {
  targets_.assign(params_.size(), StepTarget{0, DType::Float32, {}});
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = params_[i];
    StepTarget& t = targets_[i];
    t.numel = p.numel;
    t.dtype = p.dtype;
    for (std::size_t s = 0; s < kernels::kMaxBatchSlots && s < p.slots.size(); ++s)
      t.slots[s] = p.slots[s].bytes() ? p.slots[s].data() : nullptr;
  }
  declared_prefix_.assign(params_.size() + 1, 0);
  for (std::size_t i = 0; i < params_.size(); ++i)
    declared_prefix_[i + 1] = declared_prefix_[i] + targets_[i].numel;
}

std::unique_ptr<Optimizer> RuleOptimizer::clone() const {
  return std::make_unique<RuleOptimizer>(*this);
}

void RuleOptimizer::adopt(Optimizer& other) noexcept {
  // Moving the vectors keeps every Buffer (and so every slot pointer) where it is.
  *this = std::move(static_cast<RuleOptimizer&>(other));
}

// ---- hyperparameters ---------------------------------------------------------------------

void RuleOptimizer::set_hyperparameter(std::string_view key, const Value& value) {
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
  if (initialized_ && key == kStatePrecision) {
    Hyperparameters next = hyper_;
    next.set(key, value);
    check_precision_unchanged(next);
  }
  hyper_.set(key, value);
  rule_configured_ = false;
}

void RuleOptimizer::check_precision_unchanged(const Hyperparameters& next) const {
  if (!initialized_) return;
  const StatePrecision now = read_precision(hyper_).policy;
  const StatePrecision want = read_precision(next).policy;
  if (now != want)
    throw Error(DESCENT_ERR_INVALID_STATE,
                std::string(kStatePrecision) + ": is \"" + precision_name(now) +
                    "\" and fixed once the state is initialised (it decides the state's layout); "
                    "cannot change it to \"" +
                    precision_name(want) + "\"");
}

Value RuleOptimizer::hyperparameter(std::string_view key) const {
  if (key == kLearningRate) {
    if (!learning_rate_) return std::monostate{};
    return static_cast<double>(*learning_rate_);
  }
  return hyper_.get(key);
}

const std::string& RuleOptimizer::hyperparameter_name(std::size_t index) const {
  if (index == 0) return kLearningRate;
  if (index > hyper_.schema().specs.size())
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                "index " + std::to_string(index) + " is past the last hyperparameter (" +
                    std::to_string(hyperparameter_count()) + " in all)");
  return hyper_.schema().specs[index - 1].name;
}

void RuleOptimizer::configure_json(std::string_view json) {
  const auto entries = parse_hyperparameter_json(json);
  // Apply to copies, validate as a whole, then commit.
  Hyperparameters hyper = hyper_;
  std::optional<float> lr = learning_rate_;
  SchedulePtr schedule = schedule_;
  for (const auto& [key, value] : entries) {
    if (key == kLearningRate && entries.schedule_json) {
      schedule = parse_schedule(*entries.schedule_json, lr ? static_cast<double>(*lr) : 0.0);
      lr = static_cast<float>(schedule->value(step_));
    } else if (key == kLearningRate) {
      schedule.reset();
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
  check_precision_unchanged(hyper);
  hyper_ = std::move(hyper);
  learning_rate_ = lr;
  schedule_ = std::move(schedule);
  rule_configured_ = false;
  rebuild_state_keys();
}

std::string RuleOptimizer::config_json() const {
  std::string out = "{";
  auto add = [&](const std::string& key, const std::string& value) {
    out += (out.size() > 1 ? ", \"" : "\"") + key + "\": " + value;
  };
  if (schedule_ && !schedule_->to_json().empty())
    add(kLearningRate, schedule_->to_json());
  else if (learning_rate_)
    add(kLearningRate, value_json(static_cast<double>(*learning_rate_)));
  for (const auto& spec : hyper_.schema().specs) add(spec.name, value_json(hyper_.get(spec.name)));
  return out + "}";
}

void RuleOptimizer::set_schedule(SchedulePtr schedule) {
  if (schedule) {
    // MLX stores schedule(step) as the learning rate when the schedule is attached.
    const float lr = static_cast<float>(schedule->value(step_));
    learning_rate_ = lr;
  }
  schedule_ = std::move(schedule);
  rebuild_state_keys();
}

void RuleOptimizer::check_ready() const {
  if (rule_->needs_learning_rate(hyper_) && !learning_rate_)
    throw Error(DESCENT_ERR_INVALID_STATE,
                "learning_rate: " + kind_ + " needs a learning rate and none was set");
  hyper_.validate_together();
}

// ---- parameters --------------------------------------------------------------------------

void RuleOptimizer::add_parameter(std::string_view name, DType dtype, Shape shape) {
  const std::string what = "parameter '" + std::string(name) + "'";
  if (name.empty()) throw Error(DESCENT_ERR_INVALID_ARGUMENT, "parameter name is empty");
  if (initialized_)
    throw Error(DESCENT_ERR_INVALID_STATE,
                what + ": parameters must be declared before the state is initialised");
  if (sharded_)
    throw Error(DESCENT_ERR_INVALID_STATE,
                what + ": parameters are fixed once the optimizer is sharded");
  if (param_index_.count(name)) throw Error(DESCENT_ERR_DUPLICATE, what + ": declared twice");
  if (name == kStep || name == kLearningRate)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                what + ": the name collides with the state key of the same name");
  if (shape.size() > DESCENT_MAX_NDIM)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                what + ": more than " + std::to_string(DESCENT_MAX_NDIM) + " dimensions");
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  what + ": negative dimension in shape " + shape_string(shape));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 8 / d)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  what + ": shape " + shape_string(shape) + " is too large");
    n *= d;
  }
  // Everything validated: commit.
  params_.push_back(
      Parameter{std::string(name), dtype, std::move(shape), n, {}, {}, {}, {0, n, true}, {}});
  param_index_.emplace(params_.back().name, params_.size() - 1);
  reserve_scratch();
  scratch_seen_.assign(params_.size(), 0);
}

void RuleOptimizer::configure_rule() {
  if (rule_configured_) return;
  rule_->configure(hyper_);
  precision_ = read_precision(hyper_);
  rule_configured_ = true;
}

std::vector<SlotSpec> RuleOptimizer::slot_specs_of(const Rule& r, const Parameter& p,
                                                   const Shape& shape, StatePrecision policy) {
  std::vector<SlotSpec> specs = r.slots(shape);
  if (has_master(p.dtype, policy)) specs.push_back({kMasterSlot, shape});
  return specs;
}

DType RuleOptimizer::slot_dtype_at(const Parameter& p, std::size_t slot, std::size_t slot_count,
                                   StatePrecision policy) {
  if (has_master(p.dtype, policy) && slot + 1 == slot_count) return DType::Float32;
  return slot_dtype(p.dtype, policy);
}

void RuleOptimizer::init() {
  if (initialized_) return;
  check_ready();
  configure_rule();
  // Decide and allocate everything before committing anything.
  const StatePrecision policy = precision_.policy;
  HalfWorkspace workspace = half_workspace_;
  std::vector<std::vector<SlotSpec>> specs(params_.size());
  std::vector<std::vector<std::size_t>> bytes(params_.size());
  std::map<std::string, SlotRef, std::less<>> index;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    if (!owns(p)) continue;
    specs[i] = slot_specs_of(*rule_, p, slot_shape(p), policy);
    for (std::size_t s = 0; s < specs[i].size(); ++s) {
      const std::string key = join_key(p.name, specs[i][s].name);
      if (!index.emplace(key, SlotRef{i, s}).second || param_index_.count(key))
        throw Error(DESCENT_ERR_DUPLICATE, "parameter '" + p.name + "': state key '" + key +
                                               "' collides with one of another parameter");
      bytes[i].push_back(static_cast<std::size_t>(numel(specs[i][s].shape)) *
                         dtype_size(slot_dtype_at(p, s, specs[i].size(), policy)));
    }
    // A half-precision parameter reaches the rule as float32 (core/half_step.h).
    rule_->prepare(is_half(p.dtype) ? DType::Float32 : p.dtype, slot_shape(p));
    if (is_half(p.dtype) && !rule_->elementwise()) {
      int64_t slot_elements = 0;
      for (const SlotSpec& spec : specs[i]) slot_elements += numel(spec.shape);
      workspace.reserve(numel(slot_shape(p)), policy == StatePrecision::Param ? slot_elements : 0,
                        specs[i].size());
    }
  }
  std::vector<std::vector<Buffer>> buffers;
  Buffer arena = make_arena(bytes, buffers);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = params_[i];
    p.slot_specs = std::move(specs[i]);
    p.slots = std::move(buffers[i]);
    p.slot_ptrs.clear();
    for (auto& b : p.slots) p.slot_ptrs.push_back(&b);
    if (has_master(p.dtype, policy)) {  // unseeded until the parameter's first update
      float* master = p.slots.back().as<float>();
      std::fill(master, master + numel(p.slot_specs.back().shape), kUnseededMaster);
    }
  }
  arena_ = std::move(arena);
  half_workspace_ = std::move(workspace);
  slot_index_ = std::move(index);
  initialized_ = true;
  rebuild_targets();
  rebuild_state_keys();
}

std::size_t RuleOptimizer::parameter_index(std::string_view name) const {
  auto it = param_index_.find(name);
  if (it == param_index_.end())
    throw Error(DESCENT_ERR_UNKNOWN_KEY, "'" + std::string(name) + "': no parameter of that name");
  return it->second;
}

void RuleOptimizer::init_for_keys(const std::function<bool(std::string_view)>& has_key) {
  const std::vector<std::string> optional = rule_->optional_slots();
  if (optional.empty() || params_.empty()) return init();
  // The saved layout: the optional slots exist for every parameter or for none (a file with
  // some is refused later, by the key comparison).
  bool present = false;
  for (const Parameter& p : params_)
    for (const std::string& slot : optional) present = present || has_key(join_key(p.name, slot));
  if (initialized_ && (slot_index_.count(join_key(params_[0].name, optional[0])) != 0) == present)
    return;
  const bool was_initialized = initialized_;
  rule_->force_optional_slots(present);
  initialized_ = false;
  try {
    init();
  } catch (...) {
    initialized_ = was_initialized;
    rule_->force_optional_slots(std::nullopt);
    throw;
  }
  rule_->force_optional_slots(std::nullopt);
}

void RuleOptimizer::update(std::size_t count, const char* const* names, const descent_dtype* dtypes,
                           const int64_t* numels, void* const* params, const void* const* grads) {
  check_tensor_list_arrays(count, names, "names", params, grads);
  check_ready();
  resolve_names(count, names, param_index_, scratch_index_);
  update_indexed(count, scratch_index_.data(), dtypes, numels, params, grads);
}

void RuleOptimizer::update_indexed(std::size_t count, const std::size_t* indices,
                                   const descent_dtype* dtypes, const int64_t* numels,
                                   void* const* params, const void* const* grads) {
  check_tensor_list_arrays(count, indices, "indices", params, grads);
  check_ready();
  check_tensor_list(count, indices, dtypes, numels, params, grads, params_, scratch_seen_,
                    initialized_ ? &targets_ : nullptr);
  const float lr = next_learning_rate();
  if (!initialized_) init();  // MLX initialises lazily on the first update
  configure_rule();
  commit_step(lr, count, indices, params, grads);
}

void RuleOptimizer::step_flat(FlatLayout& flat, void* params, const void* grads) {
  check_ready();
  const float lr = next_learning_rate();
  if (!initialized_) init();
  configure_rule();
  if (sharded_ || !rule_->elementwise() || precision_.policy == StatePrecision::Master) {
    flat.point_into(params, grads);
    return commit_step(lr, flat.count(), flat.indices.data(), flat.params.data(),
                       flat.grads.data());
  }
  // Every declared parameter, in order, at the layout's offsets in two buffers that
  // update_flat checked: no tensor is left to check, and no pointer array to fill.
  const StepContext ctx = advance(lr);
  BatchedUpdate u{rule_.get(),
                  &ctx,
                  targets_.data(),
                  flat.count(),
                  flat.indices.data(),
                  nullptr,
                  nullptr,
                  static_cast<unsigned char*>(params),
                  static_cast<const unsigned char*>(grads),
                  flat.offsets(),
                  &RuleOptimizer::step_half_range,
                  this};
  run_batched(u, true);
}

float RuleOptimizer::next_learning_rate() const {
  // MLX evaluates the schedule at the step before the increment.
  const float lr =
      schedule_ ? static_cast<float>(schedule_->value(step_)) : learning_rate_.value_or(0.0f);
  if (schedule_ && !std::isfinite(lr))
    throw Error(
        DESCENT_ERR_OUT_OF_RANGE,
        "learning_rate: the schedule returned a non-finite value at step " + std::to_string(step_));
  return lr;
}

float RuleOptimizer::prepare_step() {
  check_ready();
  configure_rule();  // a cache of hyper_: not observable
  return next_learning_rate();
}

StepContext RuleOptimizer::advance(float lr) noexcept {
  if (schedule_) learning_rate_ = lr;
  ++step_;
  return StepContext{step_, learning_rate_.value_or(0.0f), learning_rate_.has_value()};
}

void RuleOptimizer::commit_step(float lr, std::size_t count, const std::size_t* indices,
                                void* const* params, const void* const* grads) noexcept {
  const StepContext ctx = advance(lr);
  if (precision_.policy == StatePrecision::Master) seed_masters(count, indices, params);
  if (!sharded_ && rule_->elementwise()) {  // a shard steps on the caller, one tensor at a time
    BatchedUpdate u{rule_.get(),
                    &ctx,
                    targets_.data(),
                    count,
                    indices,
                    params,
                    grads,
                    nullptr,
                    nullptr,
                    nullptr,
                    &RuleOptimizer::step_half_range,
                    this};
    return run_batched(u, false);
  }
  for (std::size_t i = 0; i < count; ++i) {
    Parameter& p = params_[indices[i]];
    if (p.numel == 0) continue;
    if (sharded_) {
      if (!p.owned.owned) continue;
      const auto* grad = static_cast<const unsigned char*>(grads[i]) +
                         static_cast<std::size_t>(p.owned.begin) * dtype_size(p.dtype);
      apply_tensor(ctx, TensorStep{p.dtype, &p.own_shape, p.owned.end - p.owned.begin, params[i],
                                   grad, p.slot_ptrs.data(), 0, indices[i]});
      continue;
    }
    apply_tensor(ctx, TensorStep{p.dtype, &p.shape, p.numel, params[i], grads[i],
                                 p.slot_ptrs.data(), 0, indices[i]});
  }
}

void RuleOptimizer::apply_tensor(const StepContext& ctx, const TensorStep& t) noexcept {
  if (!is_half(t.dtype) || (precision_.policy == StatePrecision::Param && rule_->elementwise()))
    return rule_->apply(ctx, t);
  if (t.dtype == DType::BFloat16 && precision_.policy == StatePrecision::Float32 &&
      !precision_.stochastic && rule_->fused_bfloat16()) {
    // One fused pass reading and writing bfloat16 directly: the same float32 operations and the
    // same single rounding as the blocked path below, with less memory traffic.
    TensorStep fused = t;
    fused.float32_compute = true;
    return rule_->apply(ctx, fused);
  }
  Parameter& p = params_[t.tensor];
  const bool master = has_master(p.dtype, precision_.policy);
  HalfTensorStep s{t, nullptr, precision_.stochastic, {}, 0};
  if (master) s.master = p.slots.back().as<float>() + t.offset;
  if (s.stochastic) {
    s.key = kernels::rounding_key(precision_.seed, ctx.step, t.tensor);
    s.first = static_cast<uint64_t>((sharded_ ? p.owned.begin : 0) + t.offset);
  }
  if (rule_->elementwise()) return step_half_blocks(*rule_, ctx, s);
  const std::size_t rule_slots = p.slot_specs.size() - (master ? 1 : 0);
  half_workspace_.step(*rule_, ctx, s, slot_dtype(p.dtype, precision_.policy), rule_slots);
}

void RuleOptimizer::step_half_range(void* self, const StepContext& ctx, std::size_t index,
                                    void* param, const void* grad, int64_t begin,
                                    int64_t end) noexcept {
  auto& o = *static_cast<RuleOptimizer*>(self);
  Parameter& p = o.params_[index];
  const std::size_t skip = static_cast<std::size_t>(begin) * dtype_size(p.dtype);
  o.apply_tensor(
      ctx,
      TensorStep{p.dtype, &p.shape, end - begin, static_cast<unsigned char*>(param) + skip,
                 static_cast<const unsigned char*>(grad) + skip, p.slot_ptrs.data(), begin, index});
}

void RuleOptimizer::seed_masters(std::size_t count, const std::size_t* indices,
                                 void* const* params) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    Parameter& p = params_[indices[i]];
    if (!is_half(p.dtype) || !owns(p) || p.slots.empty()) continue;  // only halves have one
    Buffer& m = p.slots.back();
    const int64_t n = static_cast<int64_t>(m.bytes() / sizeof(float));
    if (n == 0 || float_bits(m.as<float>()[0]) != float_bits(kUnseededMaster)) continue;
    kernels::widen(p.dtype, n, params[i], m.as<float>());
  }
}

// ---- sharded state (src/distributed) -------------------------------------------------------

void RuleOptimizer::set_owned_ranges(const std::vector<OwnedRange>& ranges) {
  if (initialized_)
    throw Error(DESCENT_ERR_INVALID_STATE, "the state is already initialised: shard before init");
  if (ranges.size() != params_.size())
    throw Error(DESCENT_ERR_INTERNAL, "set_owned_ranges: one range per parameter expected");
  std::vector<Shape> shapes(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    const OwnedRange r = ranges[i];
    if (r.begin < 0 || r.end < r.begin || r.end > p.numel ||
        (r.owned && r.begin == r.end && p.numel))
      throw Error(DESCENT_ERR_INTERNAL, "set_owned_ranges: range outside '" + p.name + "'");
    shapes[i] = (r.begin == 0 && r.end == p.numel) ? p.shape : Shape{r.end - r.begin};
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {
    params_[i].owned = ranges[i];
    params_[i].own_shape = std::move(shapes[i]);
  }
  sharded_ = true;
}

void RuleOptimizer::step_sharded(std::size_t count, const std::size_t* indices,
                                 void* const* shard_params, const void* const* grads) {
  const float lr = prepare_step();
  if (!initialized_) init();
  commit_step(lr, count, indices, shard_params, grads);
}

void RuleOptimizer::for_each_state_block(const std::function<void(void*, std::size_t)>& fn) {
  fn(&step_, sizeof step_);
  fn(&learning_rate_, sizeof learning_rate_);
  for (Parameter& p : params_)
    for (Buffer& b : p.slots)
      if (b.bytes()) fn(b.data(), b.bytes());
}

std::size_t RuleOptimizer::state_bytes() const {
  std::size_t total = 0;
  if (initialized_) {
    for (const Parameter& p : params_)
      for (const Buffer& b : p.slots) total += b.bytes();
    return total;
  }
  std::unique_ptr<Rule> planner = rule_->clone();
  planner->configure(hyper_);
  const StatePrecision policy = read_precision(hyper_).policy;
  for (const Parameter& p : params_) {
    if (!owns(p)) continue;
    const auto specs = slot_specs_of(*planner, p, slot_shape(p), policy);
    for (std::size_t s = 0; s < specs.size(); ++s)
      total += static_cast<std::size_t>(numel(specs[s].shape)) *
               dtype_size(slot_dtype_at(p, s, specs.size(), policy));
  }
  return total;
}

void RuleOptimizer::run_batched(const BatchedUpdate& u, bool declared_order) noexcept {
  const std::size_t threads = num_threads_ ? num_threads_ : parallel::default_threads();
  if (threads <= 1 || u.count == 0) return run_batched_step(u, 1, nullptr);
  // Every parameter in declaration order (a flat update): the prefix sums are kept.
  const int64_t* prefix = declared_order ? declared_prefix_.data() : scratch_prefix_.data();
  const int64_t total =
      declared_order ? declared_prefix_.back() : fill_prefix(u, scratch_prefix_.data());
  run_batched_step(u, parallel::workers_for(total, threads), prefix);
}

void RuleOptimizer::restore_settings(Settings&& s) noexcept {
  hyper_ = std::move(s.hyper);
  learning_rate_ = s.learning_rate;
  schedule_ = std::move(s.schedule);
  state_keys_ = std::move(s.state_keys);
  rule_configured_ = false;
}

// ---- state -------------------------------------------------------------------------------

void RuleOptimizer::rebuild_state_keys() {
  std::vector<std::string> keys{kStep};
  if (learning_rate_) keys.push_back(kLearningRate);
  if (initialized_)
    for (const auto& p : params_)
      for (const auto& s : p.slot_specs) keys.push_back(join_key(p.name, s.name));
  state_keys_ = std::move(keys);
}

const std::string& RuleOptimizer::state_key(std::size_t index) const {
  if (index >= state_keys_.size())
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, "index " + std::to_string(index) +
                                                  " is past the last state key (" +
                                                  std::to_string(state_keys_.size()) + " in all)");
  return state_keys_[index];
}

std::optional<RuleOptimizer::SlotRef> RuleOptimizer::find_slot(std::string_view key) const {
  if (initialized_) {
    auto it = slot_index_.find(key);
    if (it == slot_index_.end()) return std::nullopt;
    return it->second;
  }
  // Before init: the slot init would create, from a configured copy of the rule.
  std::unique_ptr<Rule> planner = rule_->clone();
  planner->configure(hyper_);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    if (key.size() <= p.name.size() + 1 || key.compare(0, p.name.size(), p.name) != 0 ||
        key[p.name.size()] != '.')
      continue;
    if (!owns(p)) continue;
    const auto specs = slot_specs_of(*planner, p, slot_shape(p), read_precision(hyper_).policy);
    for (std::size_t s = 0; s < specs.size(); ++s)
      if (key.substr(p.name.size() + 1) == specs[s].name) return SlotRef{i, s};
  }
  return std::nullopt;
}

SlotInfo RuleOptimizer::state_info(std::string_view key) const {
  if (key == kStep) return {DType::UInt64, {}};
  if (key == kLearningRate && learning_rate_) return {DType::Float32, {}};
  const auto ref = initialized_ ? find_slot(key) : std::nullopt;  // MLX: no slots before init
  if (!ref)
    throw Error(DESCENT_ERR_UNKNOWN_KEY, "state key '" + std::string(key) + "' does not exist");
  const Parameter& p = params_[ref->param];
  return {slot_dtype_at(p, ref->slot, p.slot_specs.size(), precision_.policy),
          p.slot_specs[ref->slot].shape};
}

namespace {
void check_slot_request(std::string_view key, const SlotInfo& info, DType dtype,
                        std::size_t count) {
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

void RuleOptimizer::state_get(std::string_view key, DType dtype, void* out,
                              std::size_t count) const {
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

void RuleOptimizer::state_set(std::string_view key, DType dtype, const void* data,
                              std::size_t count) {
  if (key == kStep || key == kLearningRate) {
    check_slot_request(key,
                       key == kStep ? SlotInfo{DType::UInt64, {}} : SlotInfo{DType::Float32, {}},
                       dtype, count);
    if (key == kStep) {
      std::memcpy(&step_, data, sizeof step_);
    } else {
      float lr;
      std::memcpy(&lr, data, sizeof lr);
      if (!std::isfinite(lr))
        throw Error(DESCENT_ERR_OUT_OF_RANGE, "state 'learning_rate': must be finite");
      learning_rate_ = lr;
      rebuild_state_keys();
    }
    return;
  }
  if (!initialized_) {
    // Setting a slot implies the state exists, as after MLX's init: validate against the slot
    // init would create, then initialise.
    const auto planned = find_slot(key);
    if (!planned)
      throw Error(DESCENT_ERR_UNKNOWN_KEY, "state key '" + std::string(key) + "' does not exist");
    std::unique_ptr<Rule> planner = rule_->clone();
    planner->configure(hyper_);
    const Parameter& p = params_[planned->param];
    const StatePrecision policy = read_precision(hyper_).policy;
    const auto specs = slot_specs_of(*planner, p, slot_shape(p), policy);
    check_slot_request(
        key,
        SlotInfo{slot_dtype_at(p, planned->slot, specs.size(), policy), specs[planned->slot].shape},
        dtype, count);
    init();
  }
  const auto ref = find_slot(key);
  if (!ref)
    throw Error(DESCENT_ERR_UNKNOWN_KEY, "state key '" + std::string(key) + "' does not exist");
  check_slot_request(key, state_info(key), dtype, count);
  Buffer& b = params_[ref->param].slots[ref->slot];
  if (b.bytes()) std::memcpy(b.data(), data, b.bytes());
}

}  // namespace descent
