#include "core/multi_optimizer.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "common/callback_failure.h"
#include "common/error.h"
#include "config/json_parse.h"
#include "core/tensor_list.h"

namespace descent {

namespace {

const std::string kMulti = "multi";
const std::string kLearningRate = "learning_rate";
const std::string kStatesPrefix = "states.";
constexpr std::size_t kMaxGroups = 1024;

std::string group_label(std::size_t index, const std::string& kind) {
  return "group " + std::to_string(index) + " (" + kind + ")";
}

// The same error, its message prefixed with the group it happened in.
Error in_group(std::size_t index, const std::string& kind, const Error& e) {
  return Error(e.status(), group_label(index, kind) + ": " + e.what());
}

std::string json_string(std::string_view s) {
  return nlohmann::json(std::string(s)).dump();
}

void check_glob(std::string_view glob, const char* what) {
  if (glob.empty())
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, std::string(what) + ": the glob is empty");
}

void check_ndim_range(int64_t min_ndim, int64_t max_ndim, const std::string& what) {
  if (min_ndim < 0)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                what + ": min_ndim " + std::to_string(min_ndim) + " is negative");
  if (max_ndim >= 0 && max_ndim < min_ndim)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, what + ": max_ndim " + std::to_string(max_ndim) +
                                                  " is below min_ndim " + std::to_string(min_ndim) +
                                                  " (use a negative max_ndim for no bound)");
}

}  // namespace

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
  // Iterative matching, backtracking to the last '*' only (an earlier '*' never needs to
  // retry): O(|pattern| * |text|) time, O(1) memory. A '*' in the pattern is always the
  // wildcard, so it is tested before the literal comparison (a name may contain '*').
  std::size_t p = 0, t = 0;
  std::size_t star = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_t = t;
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// ---- filters -------------------------------------------------------------------------------

bool MultiOptimizer::Clause::operator==(const Clause& o) const {
  if (kind != o.kind) return false;
  switch (kind) {
    case Kind::Name:
      return glob == o.glob;
    case Kind::Ndim:
      return min_ndim == o.min_ndim && max_ndim == o.max_ndim;
    case Kind::Callback:
      return callback == o.callback;
  }
  return false;
}

bool MultiOptimizer::Filter::accepts(const std::string& name, const Shape& shape) const {
  bool included = include.empty();
  for (const Clause& c : include) {
    switch (c.kind) {
      case Clause::Kind::Name:
        included = glob_match(c.glob, name);
        break;
      case Clause::Kind::Ndim: {
        const auto ndim = static_cast<int64_t>(shape.size());
        included = ndim >= c.min_ndim && (c.max_ndim < 0 || ndim <= c.max_ndim);
        break;
      }
      case Clause::Kind::Callback: {
        bool accept = false;
        CallbackMessage message;
        const descent_status status =
            c.callback->fn(name.c_str(), shape.size(), shape.empty() ? nullptr : shape.data(),
                           c.callback->user_data, &accept, message.text, sizeof message.text);
        if (status != DESCENT_OK)
          throw_callback_failure(status, message,
                                 "parameter '" + name + "': the filter callback failed");
        included = accept;
        break;
      }
    }
    if (included) break;
  }
  if (!included) return false;
  for (const std::string& glob : exclude)
    if (glob_match(glob, name)) return false;
  return true;
}

// ---- construction, cloning -------------------------------------------------------------------

MultiOptimizer::MultiOptimizer(const MultiOptimizer& o)
    : Optimizer(o),
      filters_(o.filters_),
      params_(o.params_),
      param_index_(o.param_index_),
      initialized_(o.initialized_),
      sharded_(o.sharded_),
      num_threads_(o.num_threads_),
      scratch_seen_(o.scratch_seen_),
      scratch_index_(o.scratch_index_),
      scratch_offset_(o.scratch_offset_),
      scratch_cursor_(o.scratch_cursor_),
      scratch_local_(o.scratch_local_),
      scratch_params_(o.scratch_params_),
      scratch_grads_(o.scratch_grads_),
      scratch_lr_(o.scratch_lr_) {
  scratch_index_.reserve(o.scratch_index_.capacity());
  groups_.reserve(o.groups_.size());
  for (const auto& g : o.groups_) groups_.push_back(std::make_unique<RuleOptimizer>(*g));
}

const std::string& MultiOptimizer::kind() const {
  return kMulti;
}

std::unique_ptr<Optimizer> MultiOptimizer::clone() const {
  return std::make_unique<MultiOptimizer>(*this);
}

void MultiOptimizer::adopt(Optimizer& other_base) noexcept {
  auto& other = static_cast<MultiOptimizer&>(other_base);
  // Keep this object's group objects (borrowed handles point at them): each takes over the
  // contents of its counterpart. Groups the other has beyond ours (it cannot have fewer: groups
  // are never removed) are taken over as they are.
  const std::size_t shared = std::min(groups_.size(), other.groups_.size());
  for (std::size_t i = 0; i < shared; ++i) groups_[i]->adopt(*other.groups_[i]);
  if (other.groups_.size() > groups_.size()) {
    for (std::size_t i = 0; i < shared; ++i) std::swap(groups_[i], other.groups_[i]);
    groups_.swap(other.groups_);
  }
  filters_ = std::move(other.filters_);
  params_ = std::move(other.params_);
  param_index_ = std::move(other.param_index_);
  initialized_ = other.initialized_;
  sharded_ = other.sharded_;
  num_threads_ = other.num_threads_;
  scratch_seen_ = std::move(other.scratch_seen_);
  scratch_index_ = std::move(other.scratch_index_);
  scratch_offset_ = std::move(other.scratch_offset_);
  scratch_cursor_ = std::move(other.scratch_cursor_);
  scratch_local_ = std::move(other.scratch_local_);
  scratch_params_ = std::move(other.scratch_params_);
  scratch_grads_ = std::move(other.scratch_grads_);
  scratch_lr_ = std::move(other.scratch_lr_);
}

// ---- groups ----------------------------------------------------------------------------------

std::size_t MultiOptimizer::add_group(std::string_view kind, const char* config_json) {
  const std::size_t index = groups_.size();
  if (initialized_)
    throw Error(DESCENT_ERR_INVALID_STATE, "groups are fixed once the state is initialised");
  if (sharded_)
    throw Error(DESCENT_ERR_INVALID_STATE, "groups are fixed once the optimizer is sharded");
  if (kind == kMulti)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, "a group cannot be a multi optimizer");
  if (index >= kMaxGroups)  // every update steps every group
    throw Error(DESCENT_ERR_OUT_OF_RANGE,
                "a multi optimizer has at most " + std::to_string(kMaxGroups) + " groups");
  auto group = std::make_unique<RuleOptimizer>(kind);
  if (config_json) {
    try {
      group->configure_json(config_json);
    } catch (const Error& e) {
      throw in_group(index, group->kind(), e);
    }
  }
  // Allocate first; the pushes below then cannot fail.
  groups_.reserve(index + 1);
  filters_.reserve(index + 1);
  scratch_offset_.resize(index + 2, 0);
  scratch_cursor_.resize(index + 1, 0);
  scratch_lr_.resize(index + 1, 0.0f);
  group->set_num_threads(num_threads_);
  groups_.push_back(std::move(group));
  filters_.emplace_back();
  return index;
}

void MultiOptimizer::set_num_threads(std::size_t n) noexcept {
  num_threads_ = n;
  for (auto& g : groups_) g->set_num_threads(n);
}

RuleOptimizer& MultiOptimizer::group(std::size_t index) {
  return const_cast<RuleOptimizer&>(static_cast<const MultiOptimizer&>(*this).group(index));
}

const RuleOptimizer& MultiOptimizer::group(std::size_t index) const {
  if (index >= groups_.size())
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, "group " + std::to_string(index) +
                                                  " does not exist (" +
                                                  std::to_string(groups_.size()) + " groups)");
  return *groups_[index];
}

MultiOptimizer::Filter& MultiOptimizer::filter_for_change(std::size_t index) {
  const RuleOptimizer& g = group(index);
  if (initialized_ || sharded_)
    throw Error(DESCENT_ERR_INVALID_STATE, group_label(index, g.kind()) +
                                               ": filters are fixed once the state is " +
                                               (initialized_ ? "initialised" : "sharded"));
  return filters_[index];
}

void MultiOptimizer::add_filter_name(std::size_t index, std::string_view glob) {
  check_glob(glob, "filter");
  Filter& f = filter_for_change(index);
  Clause c{Clause::Kind::Name, std::string(glob), 0, -1, nullptr};
  f.include.push_back(std::move(c));
}

void MultiOptimizer::add_filter_ndim(std::size_t index, int64_t min_ndim, int64_t max_ndim) {
  check_ndim_range(min_ndim, max_ndim, "filter");
  Filter& f = filter_for_change(index);
  f.include.push_back(Clause{Clause::Kind::Ndim, {}, min_ndim, max_ndim, nullptr});
}

void MultiOptimizer::add_filter_callback(std::size_t index,
                                         std::shared_ptr<FilterCallback> callback) {
  if (!callback || !callback->fn) throw Error(DESCENT_ERR_NULL_ARGUMENT, "fn is NULL");
  Filter& f = filter_for_change(index);
  f.include.push_back(Clause{Clause::Kind::Callback, {}, 0, -1, std::move(callback)});
}

void MultiOptimizer::add_exclude_name(std::size_t index, std::string_view glob) {
  check_glob(glob, "exclude");
  Filter& f = filter_for_change(index);
  f.exclude.emplace_back(glob);
}

void MultiOptimizer::check_groups() const {
  if (groups_.empty())
    throw Error(DESCENT_ERR_INVALID_STATE,
                "the multi optimizer has no groups (add them with descent_multi_add_group)");
  if (!filters_.back().empty())
    throw Error(DESCENT_ERR_INVALID_STATE,
                group_label(groups_.size() - 1, groups_.back()->kind()) +
                    ": the last group is the fallback that takes every parameter no earlier group "
                    "takes, so it cannot have a filter (add another group after it)");
}

std::size_t MultiOptimizer::assign(const Parameter& p) const {
  for (std::size_t g = 0; g + 1 < groups_.size(); ++g) {
    try {
      if (filters_[g].accepts(p.name, p.shape)) return g;
    } catch (const Error& e) {  // a failing filter callback
      throw in_group(g, groups_[g]->kind(), e);
    }
  }
  return groups_.size() - 1;
}

std::size_t MultiOptimizer::parameter_group(std::string_view name) const {
  auto it = param_index_.find(name);
  if (it == param_index_.end())
    throw Error(DESCENT_ERR_UNKNOWN_KEY, "parameter '" + std::string(name) + "' is not declared");
  const Parameter& p = params_[it->second];
  if (initialized_) return p.group;
  check_groups();
  return assign(p);
}

template <class Change>
void MultiOptimizer::change_all_groups(Change&& change) {
  std::vector<RuleOptimizer::Settings> saved;
  saved.reserve(groups_.size());
  for (const auto& g : groups_) saved.push_back(g->settings());
  std::size_t i = 0;
  try {
    for (; i < groups_.size(); ++i) {
      try {
        change(i, *groups_[i]);
      } catch (const Error& e) {
        throw in_group(i, groups_[i]->kind(), e);
      }
    }
  } catch (...) {
    for (std::size_t j = 0; j <= i && j < groups_.size(); ++j)
      groups_[j]->restore_settings(std::move(saved[j]));
    throw;
  }
}

// ---- hyperparameters ---------------------------------------------------------------------------

namespace {
Error not_a_multi_hyperparameter(std::string_view key) {
  return Error(DESCENT_ERR_UNKNOWN_KEY,
               "'" + std::string(key) +
                   "' is not a hyperparameter of a multi optimizer, which has only learning_rate "
                   "(group 0's; setting it sets every group's): configure a group through "
                   "descent_multi_group or configure_json's \"groups\"");
}
}  // namespace

void MultiOptimizer::set_hyperparameter(std::string_view key, const Value& value) {
  if (key != kLearningRate) throw not_a_multi_hyperparameter(key);
  if (groups_.empty())
    throw Error(DESCENT_ERR_INVALID_STATE,
                "learning_rate: the multi optimizer has no groups to set it on");
  change_all_groups([&](std::size_t, RuleOptimizer& g) { g.set_hyperparameter(key, value); });
}

Value MultiOptimizer::hyperparameter(std::string_view key) const {
  if (key != kLearningRate) throw not_a_multi_hyperparameter(key);
  if (groups_.empty()) return std::monostate{};
  return groups_[0]->hyperparameter(key);
}

const std::string& MultiOptimizer::hyperparameter_name(std::size_t index) const {
  if (index != 0)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                "index " + std::to_string(index) + " is past the last hyperparameter (1 in all)");
  return kLearningRate;
}

void MultiOptimizer::set_schedule(SchedulePtr schedule) {
  if (groups_.empty()) {
    if (!schedule) return;
    throw Error(DESCENT_ERR_INVALID_STATE,
                "learning_rate: the multi optimizer has no groups to attach a schedule to");
  }
  change_all_groups([&](std::size_t, RuleOptimizer& g) { g.set_schedule(schedule); });
}

// ---- configuration as JSON ---------------------------------------------------------------------

namespace {

struct GroupSpec {
  std::optional<std::string> kind;
  std::optional<std::string> config;  // JSON object text
  bool has_include = false, has_exclude = false;
  std::vector<MultiOptimizer::Clause> include;  // callback clauses: callback left null
  std::vector<std::string> exclude;
};

using Json = nlohmann::json;

GroupSpec parse_group_spec(const Json& j, const std::string& where) {
  if (!j.is_object())
    throw Error(DESCENT_ERR_PARSE,
                where + ": must be an object, got " + std::string(j.type_name()));
  GroupSpec s;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    const std::string at = where + "." + key;
    if (key == "kind") {
      if (!v.is_string()) throw Error(DESCENT_ERR_WRONG_TYPE, at + ": must be a string");
      s.kind = v.get<std::string>();
    } else if (key == "config") {
      if (!v.is_object()) throw Error(DESCENT_ERR_WRONG_TYPE, at + ": must be an object");
      s.config = v.dump(-1, ' ', false, Json::error_handler_t::strict);
    } else if (key == "include") {
      if (!v.is_array()) throw Error(DESCENT_ERR_WRONG_TYPE, at + ": must be an array");
      s.has_include = true;
      for (std::size_t k = 0; k < v.size(); ++k) {
        const Json& c = v[k];
        const std::string ck = at + "[" + std::to_string(k) + "]";
        if (!c.is_object() || c.size() != 1)
          throw Error(DESCENT_ERR_PARSE, ck + ": must be an object with one key: \"name\", "
                                              "\"ndim\" or \"callback\"");
        const auto only = c.begin();
        const std::string& ckey = only.key();
        const Json& cval = only.value();
        MultiOptimizer::Clause clause{MultiOptimizer::Clause::Kind::Name, {}, 0, -1, nullptr};
        if (ckey == "name") {
          if (!cval.is_string())
            throw Error(DESCENT_ERR_WRONG_TYPE, ck + ".name: must be a string");
          clause.glob = cval.get<std::string>();
          check_glob(clause.glob, (ck + ".name").c_str());
        } else if (ckey == "ndim") {
          if (!cval.is_array() || cval.size() != 2 || !cval[0].is_number_integer() ||
              !cval[1].is_number_integer())
            throw Error(DESCENT_ERR_WRONG_TYPE, ck + ".ndim: must be [min, max] (integers)");
          clause.kind = MultiOptimizer::Clause::Kind::Ndim;
          clause.min_ndim = cval[0].get<int64_t>();
          clause.max_ndim = cval[1].get<int64_t>();
          check_ndim_range(clause.min_ndim, clause.max_ndim, ck + ".ndim");
        } else if (ckey == "callback") {
          if (!cval.is_boolean() || !cval.get<bool>())
            throw Error(DESCENT_ERR_WRONG_TYPE, ck + ".callback: must be true");
          clause.kind = MultiOptimizer::Clause::Kind::Callback;
        } else {
          throw Error(DESCENT_ERR_UNKNOWN_KEY,
                      ck + ": unknown clause '" + ckey + "' (\"name\", \"ndim\" or \"callback\")");
        }
        s.include.push_back(std::move(clause));
      }
    } else if (key == "exclude") {
      if (!v.is_array()) throw Error(DESCENT_ERR_WRONG_TYPE, at + ": must be an array of globs");
      s.has_exclude = true;
      for (std::size_t k = 0; k < v.size(); ++k) {
        const std::string ck = at + "[" + std::to_string(k) + "]";
        if (!v[k].is_string()) throw Error(DESCENT_ERR_WRONG_TYPE, ck + ": must be a string");
        s.exclude.push_back(v[k].get<std::string>());
        check_glob(s.exclude.back(), ck.c_str());
      }
    } else {
      throw Error(DESCENT_ERR_UNKNOWN_KEY, at + ": unknown key (a group has \"kind\", \"config\", "
                                                "\"include\" and \"exclude\")");
    }
  }
  return s;
}

// The filter a spec describes, given the group's current one: callback clauses cannot be created
// from JSON, so {"callback": true} must stand where the current filter has a callback.
MultiOptimizer::Filter filter_from_spec(GroupSpec& s, const MultiOptimizer::Filter* current,
                                        const std::string& where) {
  MultiOptimizer::Filter f = current ? *current : MultiOptimizer::Filter{};
  if (s.has_include) {
    for (std::size_t k = 0; k < s.include.size(); ++k) {
      auto& c = s.include[k];
      if (c.kind != MultiOptimizer::Clause::Kind::Callback) continue;
      if (current && k < current->include.size() &&
          current->include[k].kind == MultiOptimizer::Clause::Kind::Callback) {
        c.callback = current->include[k].callback;
      } else {
        throw Error(DESCENT_ERR_UNSUPPORTED,
                    where + ".include[" + std::to_string(k) +
                        "]: a callback filter cannot be created from JSON (add it with "
                        "descent_multi_filter_callback)");
      }
    }
    f.include = std::move(s.include);
  }
  if (s.has_exclude) f.exclude = std::move(s.exclude);
  return f;
}

}  // namespace

void MultiOptimizer::configure_json(std::string_view json) {
  const Json doc = parse_json(json, "configuration");
  if (!doc.is_object())
    throw Error(DESCENT_ERR_PARSE,
                std::string("configuration must be a JSON object, got ") + doc.type_name());
  std::optional<std::string> lr_json;  // {"learning_rate": ...} for every group
  std::vector<GroupSpec> specs;
  bool has_groups = false;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() == kLearningRate) {
      lr_json = "{\"learning_rate\": " + it.value().dump() + "}";
    } else if (it.key() == "groups") {
      if (!it.value().is_array()) throw Error(DESCENT_ERR_WRONG_TYPE, "groups: must be an array");
      has_groups = true;
      if (it.value().size() > kMaxGroups)  // before parsing them
        throw Error(DESCENT_ERR_OUT_OF_RANGE, "groups: " + std::to_string(it.value().size()) +
                                                  " described, a multi optimizer has at most " +
                                                  std::to_string(kMaxGroups));
      for (std::size_t i = 0; i < it.value().size(); ++i)
        specs.push_back(parse_group_spec(it.value()[i], "groups[" + std::to_string(i) + "]"));
    } else {
      throw not_a_multi_hyperparameter(it.key());
    }
  }

  if (has_groups && groups_.empty()) {
    // Create the groups the description lists, then commit them all at once.
    MultiOptimizer built;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      const std::string where = "groups[" + std::to_string(i) + "]";
      if (!specs[i].kind)
        throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                    where + ": \"kind\" is required to create a group");
      built.add_group(*specs[i].kind, specs[i].config ? specs[i].config->c_str() : nullptr);
      built.filters_[i] = filter_from_spec(specs[i], nullptr, where);
      if (lr_json) {
        try {
          built.groups_[i]->configure_json(*lr_json);
        } catch (const Error& e) {
          throw in_group(i, built.groups_[i]->kind(), e);
        }
      }
    }
    // Parameters may have been declared already: keep them, take the groups.
    groups_ = std::move(built.groups_);
    filters_ = std::move(built.filters_);
    scratch_offset_ = std::move(built.scratch_offset_);
    scratch_cursor_ = std::move(built.scratch_cursor_);
    scratch_lr_ = std::move(built.scratch_lr_);
    return;
  }

  if (groups_.empty()) {
    if (lr_json)
      throw Error(DESCENT_ERR_INVALID_STATE,
                  "learning_rate: the multi optimizer has no groups to set it on");
    return;
  }
  std::vector<Filter> filters = filters_;
  if (has_groups) {
    if (specs.size() != groups_.size())
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  "groups: " + std::to_string(specs.size()) + " described, the optimizer has " +
                      std::to_string(groups_.size()) +
                      " (groups are created only when there is none)");
    for (std::size_t i = 0; i < specs.size(); ++i) {
      const std::string where = "groups[" + std::to_string(i) + "]";
      if (specs[i].kind && *specs[i].kind != groups_[i]->kind())
        throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                    where + ": kind '" + *specs[i].kind + "' given, " +
                        group_label(i, groups_[i]->kind()) + " is not");
      filters[i] = filter_from_spec(specs[i], &filters_[i], where);
      if (initialized_ && !(filters[i] == filters_[i]))
        throw Error(DESCENT_ERR_INVALID_STATE,
                    where + ": filters are fixed once the state is initialised");
    }
  }
  change_all_groups([&](std::size_t i, RuleOptimizer& g) {
    if (has_groups && specs[i].config) g.configure_json(*specs[i].config);
    if (lr_json) g.configure_json(*lr_json);
  });
  filters_.swap(filters);
}

std::string MultiOptimizer::config_json() const {
  std::string out = "{\"groups\": [";
  for (std::size_t i = 0; i < groups_.size(); ++i) {
    if (i) out += ", ";
    out += "{\"kind\": " + json_string(groups_[i]->kind()) +
           ", \"config\": " + groups_[i]->config_json() + ", \"include\": [";
    const Filter& f = filters_[i];
    for (std::size_t k = 0; k < f.include.size(); ++k) {
      if (k) out += ", ";
      const Clause& c = f.include[k];
      switch (c.kind) {
        case Clause::Kind::Name:
          out += "{\"name\": " + json_string(c.glob) + "}";
          break;
        case Clause::Kind::Ndim:
          out += "{\"ndim\": [" + std::to_string(c.min_ndim) + ", " + std::to_string(c.max_ndim) +
                 "]}";
          break;
        case Clause::Kind::Callback:
          out += "{\"callback\": true}";
          break;
      }
    }
    out += "], \"exclude\": [";
    for (std::size_t k = 0; k < f.exclude.size(); ++k)
      out += (k ? ", " : "") + json_string(f.exclude[k]);
    out += "]}";
  }
  return out + "]}";
}

// ---- parameters ------------------------------------------------------------------------------

void MultiOptimizer::add_parameter(std::string_view name, DType dtype, Shape shape) {
  const std::string what = "parameter '" + std::string(name) + "'";
  if (name.empty()) throw Error(DESCENT_ERR_INVALID_ARGUMENT, "parameter name is empty");
  if (initialized_)
    throw Error(DESCENT_ERR_INVALID_STATE,
                what + ": parameters must be declared before the state is initialised");
  if (sharded_)
    throw Error(DESCENT_ERR_INVALID_STATE,
                what + ": parameters are fixed once the optimizer is sharded");
  if (param_index_.count(name)) throw Error(DESCENT_ERR_DUPLICATE, what + ": declared twice");
  if (name == "step" || name == kLearningRate)
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
  // Allocate first (larger scratch is harmless), then commit.
  const std::size_t count = params_.size() + 1;
  params_.reserve(count);
  scratch_index_.reserve(count);
  scratch_seen_.resize(count, 0);
  scratch_local_.resize(count, 0);
  scratch_params_.resize(count, nullptr);
  scratch_grads_.resize(count, nullptr);
  Parameter p{std::string(name), dtype, std::move(shape), n, 0, 0, {}, 0};
  auto node = param_index_.emplace(p.name, count - 1);
  try {
    params_.push_back(std::move(p));  // reserved: does not throw
  } catch (...) {
    param_index_.erase(node.first);
    throw;
  }
}

MultiOptimizer::Plan MultiOptimizer::plan_init(
    const std::function<bool(std::string_view)>* has_key) const {
  check_groups();
  Plan plan;
  plan.groups.reserve(groups_.size());
  for (const auto& g : groups_) plan.groups.push_back(std::make_unique<RuleOptimizer>(*g));
  plan.group_of.resize(params_.size());
  plan.local_of.resize(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Parameter& p = params_[i];
    const std::size_t g = assign(p);
    RuleOptimizer& group = *plan.groups[g];
    try {
      group.add_parameter(p.name, p.dtype, p.shape);
    } catch (const Error& e) {
      throw in_group(g, group.kind(), e);
    }
    plan.group_of[i] = g;
    plan.local_of[i] = group.parameter_count() - 1;
  }
  if (sharded_) {
    // The ranges were planned for the groups the filters gave when the optimizer was sharded.
    std::vector<std::vector<OwnedRange>> ranges(plan.groups.size());
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (plan.group_of[i] != params_[i].shard_group)
        throw Error(DESCENT_ERR_INVALID_STATE,
                    "parameter '" + params_[i].name + "': its group filter now gives group " +
                        std::to_string(plan.group_of[i]) + ", it gave group " +
                        std::to_string(params_[i].shard_group) +
                        " when the optimizer was sharded (filters must be deterministic)");
      ranges[plan.group_of[i]].push_back(params_[i].owned);
    }
    for (std::size_t g = 0; g < plan.groups.size(); ++g)
      plan.groups[g]->set_owned_ranges(ranges[g]);
  }
  for (std::size_t g = 0; g < plan.groups.size(); ++g) {
    try {
      if (has_key)
        plan.groups[g]->init_for_keys(group_keys(g, *has_key));
      else
        plan.groups[g]->init();
    } catch (const Error& e) {
      throw in_group(g, plan.groups[g]->kind(), e);
    }
  }
  return plan;
}

void MultiOptimizer::commit_init(Plan& plan) noexcept {
  for (std::size_t g = 0; g < groups_.size(); ++g) groups_[g]->adopt(*plan.groups[g]);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    params_[i].group = plan.group_of[i];
    params_[i].local = plan.local_of[i];
  }
  initialized_ = true;
}

void MultiOptimizer::init() {
  if (initialized_) return;
  Plan plan = plan_init();
  commit_init(plan);
}

std::size_t MultiOptimizer::parameter_index(std::string_view name) const {
  auto it = param_index_.find(name);
  if (it == param_index_.end())
    throw Error(DESCENT_ERR_UNKNOWN_KEY, "'" + std::string(name) + "': no parameter of that name");
  return it->second;
}

std::function<bool(std::string_view)> MultiOptimizer::group_keys(
    std::size_t g, const std::function<bool(std::string_view)>& has_key) {
  std::string prefix = kStatesPrefix + std::to_string(g) + ".";
  return [prefix, &has_key](std::string_view key) {
    std::string full = prefix;
    full += key;
    return has_key(full);
  };
}

void MultiOptimizer::init_for_keys(const std::function<bool(std::string_view)>& has_key) {
  if (initialized_) {  // a load's copy: lay each group out again if needed
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      try {
        groups_[g]->init_for_keys(group_keys(g, has_key));
      } catch (const Error& e) {
        throw in_group(g, groups_[g]->kind(), e);
      }
    }
    return;
  }
  Plan plan = plan_init(&has_key);
  commit_init(plan);
}

void MultiOptimizer::update(std::size_t count, const char* const* names,
                            const descent_dtype* dtypes, const int64_t* numels, void* const* params,
                            const void* const* grads) {
  check_tensor_list_arrays(count, names, "names", params, grads);
  if (!initialized_) check_groups();
  resolve_names(count, names, param_index_, scratch_index_);
  update_indexed(count, scratch_index_.data(), dtypes, numels, params, grads);
}

void MultiOptimizer::update_indexed(std::size_t count, const std::size_t* indices,
                                    const descent_dtype* dtypes, const int64_t* numels,
                                    void* const* params, const void* const* grads) {
  check_tensor_list_arrays(count, indices, "indices", params, grads);
  if (!initialized_) check_groups();
  // 1. The tensors, against the declared parameters.
  check_tensor_list(count, indices, dtypes, numels, params, grads, params_, scratch_seen_);
  step_checked(count, indices, params, grads);
}

void MultiOptimizer::step_checked(std::size_t count, const std::size_t* indices,
                                  void* const* params, const void* const* grads) {
  // 2. Every group steps, so every group must be ready (learning rate, schedule value).
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    try {
      scratch_lr_[g] = groups_[g]->prepare_step();
    } catch (const Error& e) {
      throw in_group(g, groups_[g]->kind(), e);
    }
  }
  // 3. MLX initialises lazily on the first update (all groups or none).
  if (!initialized_) init();
  // Nothing below can fail. Sort the tensors by group (stable), then step every group.
  const std::size_t groups = groups_.size();
  std::fill(scratch_offset_.begin(), scratch_offset_.begin() + groups + 1, 0);
  for (std::size_t i = 0; i < count; ++i) ++scratch_offset_[params_[indices[i]].group + 1];
  for (std::size_t g = 0; g < groups; ++g) {
    scratch_offset_[g + 1] += scratch_offset_[g];
    scratch_cursor_[g] = scratch_offset_[g];
  }
  for (std::size_t i = 0; i < count; ++i) {
    const Parameter& p = params_[indices[i]];
    const std::size_t at = scratch_cursor_[p.group]++;
    scratch_local_[at] = p.local;
    scratch_params_[at] = params[i];
    scratch_grads_[at] = grads[i];
  }
  for (std::size_t g = 0; g < groups; ++g) {
    const std::size_t at = scratch_offset_[g];
    groups_[g]->commit_step(scratch_lr_[g], scratch_offset_[g + 1] - at, scratch_local_.data() + at,
                            scratch_params_.data() + at, scratch_grads_.data() + at);
  }
}

// ---- sharded state (src/distributed) ----------------------------------------------------------

void MultiOptimizer::set_owned_ranges(const std::vector<OwnedRange>& ranges) {
  if (initialized_)
    throw Error(DESCENT_ERR_INVALID_STATE, "the state is already initialised: shard before init");
  if (ranges.size() != params_.size())
    throw Error(DESCENT_ERR_INTERNAL, "set_owned_ranges: one range per parameter expected");
  check_groups();
  std::vector<std::size_t> groups(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) groups[i] = assign(params_[i]);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    params_[i].owned = ranges[i];
    params_[i].shard_group = groups[i];
  }
  sharded_ = true;
}

void MultiOptimizer::step_sharded(std::size_t count, const std::size_t* indices,
                                  void* const* shard_params, const void* const* grads) {
  if (!initialized_) check_groups();
  step_checked(count, indices, shard_params, grads);
}

void MultiOptimizer::for_each_state_block(const std::function<void(void*, std::size_t)>& fn) {
  for (auto& g : groups_) g->for_each_state_block(fn);
}

std::size_t MultiOptimizer::state_bytes() const {
  if (initialized_) {
    std::size_t total = 0;
    for (const auto& g : groups_) total += g->state_bytes();
    return total;
  }
  if (params_.empty()) return 0;
  check_groups();
  // What init would allocate: the groups' copies with their parameters declared, not initialised.
  std::vector<std::unique_ptr<RuleOptimizer>> groups;
  std::vector<std::vector<OwnedRange>> ranges(groups_.size());
  for (const auto& g : groups_) groups.push_back(std::make_unique<RuleOptimizer>(*g));
  for (const Parameter& p : params_) {
    const std::size_t g = sharded_ ? p.shard_group : assign(p);
    groups[g]->add_parameter(p.name, p.dtype, p.shape);
    ranges[g].push_back(p.owned);
  }
  std::size_t total = 0;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (sharded_) groups[g]->set_owned_ranges(ranges[g]);
    total += groups[g]->state_bytes();
  }
  return total;
}

// ---- state -----------------------------------------------------------------------------------

std::size_t MultiOptimizer::state_count() const {
  std::size_t n = 0;
  for (const auto& g : groups_) n += g->state_count();
  return n;
}

const std::string& MultiOptimizer::state_key(std::size_t index) const {
  std::size_t g = 0, local = index;
  while (g < groups_.size() && local >= groups_[g]->state_count())
    local -= groups_[g++]->state_count();
  if (g == groups_.size())
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, "index " + std::to_string(index) +
                                                  " is past the last state key (" +
                                                  std::to_string(state_count()) + " in all)");
  const std::string& inner = groups_[g]->state_key(local);
  const std::string prefix = kStatesPrefix + std::to_string(g) + ".";
  if (key_cache_.size() <= index) key_cache_.resize(index + 1);  // references to others stay valid
  std::string& cached = key_cache_[index];
  if (cached.size() != prefix.size() + inner.size() ||
      cached.compare(0, prefix.size(), prefix) != 0 ||
      cached.compare(prefix.size(), std::string::npos, inner) != 0)
    cached = prefix + inner;
  return cached;
}

std::size_t MultiOptimizer::group_index_of(std::string_view key, std::string_view* rest) const {
  auto unknown = [&] {
    return Error(DESCENT_ERR_UNKNOWN_KEY, "state key '" + std::string(key) +
                                              "' does not exist (a multi optimizer's keys are "
                                              "states.<group>.<key>, with " +
                                              std::to_string(groups_.size()) + " groups)");
  };
  if (key.compare(0, kStatesPrefix.size(), kStatesPrefix) != 0) throw unknown();
  std::size_t pos = kStatesPrefix.size(), g = 0;
  const std::size_t digits_start = pos;
  while (pos < key.size() && key[pos] >= '0' && key[pos] <= '9') {
    if (g > groups_.size()) throw unknown();  // long digit runs: no overflow
    g = g * 10 + static_cast<std::size_t>(key[pos++] - '0');
  }
  const std::size_t digits = pos - digits_start;
  if (digits == 0 || (digits > 1 && key[digits_start] == '0') || pos + 1 >= key.size() ||
      key[pos] != '.' || g >= groups_.size())
    throw unknown();
  *rest = key.substr(pos + 1);
  return g;
}

SlotInfo MultiOptimizer::state_info(std::string_view key) const {
  std::string_view rest;
  const std::size_t g = group_index_of(key, &rest);
  try {
    return groups_[g]->state_info(rest);
  } catch (const Error& e) {
    throw in_group(g, groups_[g]->kind(), e);
  }
}

void MultiOptimizer::state_get(std::string_view key, DType dtype, void* out,
                               std::size_t count) const {
  std::string_view rest;
  const std::size_t g = group_index_of(key, &rest);
  try {
    groups_[g]->state_get(rest, dtype, out, count);
  } catch (const Error& e) {
    throw in_group(g, groups_[g]->kind(), e);
  }
}

void MultiOptimizer::state_set(std::string_view key, DType dtype, const void* data,
                               std::size_t count) {
  std::string_view rest;
  const std::size_t g = group_index_of(key, &rest);
  if (initialized_ || rest == "step" || rest == kLearningRate) {
    try {
      groups_[g]->state_set(rest, dtype, data, count);
    } catch (const Error& e) {
      throw in_group(g, groups_[g]->kind(), e);
    }
    return;
  }
  // A per-parameter slot before init: as for a single optimizer, setting it initialises the
  // state, here of every group; validate on the initialised clones, then commit.
  Plan plan = plan_init();
  try {
    plan.groups[g]->state_set(rest, dtype, data, count);
  } catch (const Error& e) {
    throw in_group(g, groups_[g]->kind(), e);
  }
  commit_init(plan);
}

}  // namespace descent
