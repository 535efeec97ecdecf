// Parameter groups (kind "multi"): groups, their filters, borrowed group handles, and the
// Muon + AdamW one-liner.
#include <memory>
#include <string>
#include <string_view>

#include "capi/guard.h"
#include "core/multi_optimizer.h"

using descent::Error;
using descent::MultiOptimizer;
using descent::capi::guarded;
using descent::capi::guarded_mutation;
using descent::capi::require;
using descent::capi::require_text;

namespace {

MultiOptimizer& multi_of(const descent_optimizer* opt) {
  require(opt, "multi");
  auto* m = dynamic_cast<MultiOptimizer*>(opt->impl);
  if (!m)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                "the optimizer is '" + opt->impl->kind() + "', not 'multi'");
  return *m;
}

constexpr const char* kDefaultAdamwNames = "*embed*,*lm_head*,*head*,*norm*";

}  // namespace

extern "C" {

DESCENT_API descent_status descent_multi_add_group(descent_optimizer* multi, const char* kind,
                                                   const char* config_json, size_t* index) {
  return guarded_mutation(multi, "multi", [&] {
    MultiOptimizer& m = multi_of(multi);
    require_text(kind, "kind");
    descent::capi::check_json_text(config_json, "config_json");
    const std::size_t i = m.add_group(kind, config_json);
    if (index) *index = i;
  });
}

DESCENT_API descent_status descent_multi_group_count(const descent_optimizer* multi, size_t* out) {
  return guarded(multi, [&] {
    const MultiOptimizer& m = multi_of(multi);
    require(out, "out");
    *out = m.group_count();
  });
}

DESCENT_API descent_status descent_multi_group(descent_optimizer* multi, size_t index,
                                               descent_optimizer** out) {
  return guarded_mutation(multi, "multi", [&] {
    MultiOptimizer& m = multi_of(multi);
    require(out, "out");
    descent::Optimizer* group = &m.group(index);  // throws for a bad index
    auto& handles = multi->group_handles;
    if (handles.size() <= index) handles.resize(index + 1);
    if (!handles[index]) {
      auto h = std::make_unique<descent_optimizer>();
      h->owner = multi;
      h->group_index = index;
      handles[index] = std::move(h);
    }
    handles[index]->impl = group;  // group objects keep their identity; refreshed all the same
    *out = handles[index].get();
  });
}

DESCENT_API descent_status descent_multi_filter_name(descent_optimizer* multi, size_t index,
                                                     const char* glob) {
  return guarded_mutation(multi, "multi", [&] {
    MultiOptimizer& m = multi_of(multi);
    require_text(glob, "glob");
    m.add_filter_name(index, glob);
  });
}

DESCENT_API descent_status descent_multi_filter_ndim(descent_optimizer* multi, size_t index,
                                                     int64_t min_ndim, int64_t max_ndim) {
  return guarded_mutation(multi, "multi",
                          [&] { multi_of(multi).add_filter_ndim(index, min_ndim, max_ndim); });
}

// On success the filter owns user_data (released through free_user_data exactly once, when the
// multi optimizer is freed); on failure it was not taken and the caller still owns it.
DESCENT_API descent_status descent_multi_filter_callback(descent_optimizer* multi, size_t index,
                                                         descent_filter_fn fn, void* user_data,
                                                         void (*free_user_data)(void*)) {
  return guarded_mutation(multi, "multi", [&] {
    MultiOptimizer& m = multi_of(multi);
    if (!fn) throw Error(DESCENT_ERR_NULL_ARGUMENT, "fn is NULL");
    m.group(index);  // validate before taking ownership
    auto callback = std::make_shared<descent::FilterCallback>(fn, user_data, nullptr);
    m.add_filter_callback(index, callback);  // on failure the callback frees nothing
    callback->free_user_data = free_user_data;
  });
}

DESCENT_API descent_status descent_multi_exclude_name(descent_optimizer* multi, size_t index,
                                                      const char* glob) {
  return guarded_mutation(multi, "multi", [&] {
    MultiOptimizer& m = multi_of(multi);
    require_text(glob, "glob");
    m.add_exclude_name(index, glob);
  });
}

DESCENT_API descent_status descent_multi_parameter_group(const descent_optimizer* multi,
                                                         const char* name, size_t* out) {
  return descent::capi::guarded_callbacks(multi, "multi", [&] {
    const MultiOptimizer& m = multi_of(multi);
    require_text(name, "name");
    require(out, "out");
    *out = m.parameter_group(name);
  });
}

DESCENT_API descent_status descent_multi_create_muon_adamw(const char* muon_config_json,
                                                           const char* adamw_config_json,
                                                           const char* adamw_names,
                                                           descent_optimizer** out, char* error,
                                                           size_t error_capacity) {
  return descent::capi::guarded_to(error, error_capacity, [&] {
    require(out, "out");
    descent::capi::check_json_text(muon_config_json, "muon_config_json");
    descent::capi::check_json_text(adamw_config_json, "adamw_config_json");
    if (adamw_names) descent::check_utf8(adamw_names, "adamw_names");
    auto handle = std::make_unique<descent_optimizer>();
    auto multi = std::make_unique<MultiOptimizer>();
    multi->add_group("muon", muon_config_json);
    multi->add_group("adamw", adamw_config_json);
    multi->add_filter_ndim(0, 2, -1);
    const std::string_view names = adamw_names ? adamw_names : kDefaultAdamwNames;
    std::size_t start = 0;
    while (start <= names.size()) {
      std::size_t end = names.find(',', start);
      if (end == std::string_view::npos) end = names.size();
      std::string_view glob = names.substr(start, end - start);
      while (!glob.empty() && (glob.front() == ' ' || glob.front() == '\t')) glob.remove_prefix(1);
      while (!glob.empty() && (glob.back() == ' ' || glob.back() == '\t')) glob.remove_suffix(1);
      if (!glob.empty()) multi->add_exclude_name(0, glob);
      start = end + 1;
    }
    handle->owned = std::move(multi);
    handle->impl = handle->owned.get();
    *out = handle.release();
  });
}

}  // extern "C"
