// Optimizer lifecycle, parameter declaration and the update step.
#include <algorithm>
#include <vector>

#include "capi/guard.h"
#include "core/thread_pool.h"
#include "distributed/sharding.h"

using descent::capi::guarded;
using descent::capi::guarded_mutation;
using descent::capi::require;

namespace {

// Parameters are declared on, and updates go through, the multi optimizer that owns a group.
void require_not_group(const descent_optimizer* opt, const char* what) {
  if (opt->owner)
    throw descent::Error(DESCENT_ERR_INVALID_STATE,
                         "this handle is group " + std::to_string(opt->group_index) +
                             " of a multi optimizer: " + what + " on the multi optimizer");
}

}  // namespace

extern "C" {

DESCENT_API descent_status descent_optimizer_create(const char* kind, descent_optimizer** out,
                                                    char* error, size_t error_capacity) {
  return descent::capi::guarded_to(error, error_capacity, [&] {
    descent::capi::require_text(kind, "kind");
    require(out, "out");
    auto handle = std::make_unique<descent_optimizer>();
    handle->owned = descent::make_optimizer(kind);
    handle->impl = handle->owned.get();
    *out = handle.release();
  });
}

// A group handle borrowed from a multi optimizer is owned by it: freeing it does nothing.
DESCENT_API void descent_optimizer_free(descent_optimizer* opt) {
  if (opt && !opt->owner) delete opt;
}

DESCENT_API const char* descent_optimizer_kind(const descent_optimizer* opt) {
  return opt ? opt->impl->kind().c_str() : "";
}

DESCENT_API const char* descent_optimizer_last_error(const descent_optimizer* opt) {
  return opt ? opt->last_error.c_str() : "";
}

DESCENT_API descent_status descent_optimizer_add_parameter(descent_optimizer* opt, const char* name,
                                                           descent_dtype dtype, size_t ndim,
                                                           const int64_t* shape) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    descent::capi::require_text(name, "name");
    if (ndim > 0) require(shape, "shape");
    require_not_group(opt, "declare parameters");
    if (ndim > DESCENT_MAX_NDIM)
      throw descent::Error(DESCENT_ERR_INVALID_ARGUMENT, std::string("parameter '") + name +
                                                             "': ndim " + std::to_string(ndim) +
                                                             " exceeds DESCENT_MAX_NDIM");
    const descent::DType dt =
        descent::parameter_dtype(dtype, std::string("parameter '") + name + "'");
    opt->impl->add_parameter(name, dt, descent::Shape(shape, shape + ndim));
  });
}

DESCENT_API descent_status descent_optimizer_parameter_count(const descent_optimizer* opt,
                                                             size_t* out) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require(out, "out");
    *out = opt->impl->parameter_count();
  });
}

DESCENT_API descent_status descent_optimizer_parameter_info(const descent_optimizer* opt,
                                                            size_t index, const char** name,
                                                            descent_dtype* dtype, size_t* ndim,
                                                            int64_t* shape, size_t capacity) {
  return guarded(opt, [&] {
    require(opt, "opt");
    opt->impl->check_parameter_index(index);
    const descent::Shape& dims = opt->impl->parameter_shape(index);
    if (shape && capacity < dims.size())
      throw descent::Error(DESCENT_ERR_BUFFER_TOO_SMALL,
                           "parameter '" + opt->impl->parameter_name(index) + "': has " +
                               std::to_string(dims.size()) + " dimensions, capacity is " +
                               std::to_string(capacity));
    if (name) *name = opt->impl->parameter_name(index).c_str();
    if (dtype) *dtype = static_cast<descent_dtype>(opt->impl->parameter_dtype(index));
    if (ndim) *ndim = dims.size();
    if (shape) std::copy(dims.begin(), dims.end(), shape);
  });
}

DESCENT_API descent_status descent_optimizer_parameter_index(const descent_optimizer* opt,
                                                             const char* name, size_t* out) {
  return guarded(opt, [&] {
    require(opt, "opt");
    descent::capi::require_text(name, "name");
    require(out, "out");
    *out = opt->impl->parameter_index(name);
  });
}

DESCENT_API descent_status descent_optimizer_init(descent_optimizer* opt) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    require_not_group(opt, "initialise the state");
    opt->impl->init();
  });
}

DESCENT_API descent_status descent_optimizer_update(descent_optimizer* opt, size_t count,
                                                    const char* const* names,
                                                    const descent_dtype* dtypes,
                                                    const int64_t* numels, void* const* params,
                                                    const void* const* grads) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    require_not_group(opt, "update");
    if (opt->sharding)
      opt->sharding->update(*opt->impl, count, names, dtypes, numels, params, grads);
    else
      opt->impl->update(count, names, dtypes, numels, params, grads);
  });
}

DESCENT_API descent_status descent_optimizer_update_indexed(
    descent_optimizer* opt, size_t count, const size_t* indices, const descent_dtype* dtypes,
    const int64_t* numels, void* const* params, const void* const* grads) {
  return guarded_mutation(opt, "opt", [&] {
    require_not_group(opt, "update");
    if (opt->sharding)
      opt->sharding->update_indexed(*opt->impl, count, indices, dtypes, numels, params, grads);
    else
      opt->impl->update_indexed(count, indices, dtypes, numels, params, grads);
  });
}

DESCENT_API descent_status descent_optimizer_flat_offset(const descent_optimizer* opt, size_t index,
                                                         size_t* byte_offset) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require(byte_offset, "byte_offset");
    *byte_offset = opt->impl->flat_offset(index);
  });
}

DESCENT_API descent_status descent_optimizer_flat_size(const descent_optimizer* opt,
                                                       size_t* bytes) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require(bytes, "bytes");
    *bytes = opt->impl->flat_size();
  });
}

DESCENT_API descent_status descent_optimizer_update_flat(descent_optimizer* opt, void* params,
                                                         const void* grads, size_t size) {
  return guarded_mutation(opt, "opt", [&] {
    require_not_group(opt, "update");
    if (opt->sharding)
      opt->sharding->update_flat(*opt->impl, params, grads, size);
    else
      opt->impl->update_flat(params, grads, size);
  });
}

DESCENT_API descent_status descent_optimizer_set_num_threads(descent_optimizer* opt, size_t n) {
  return guarded_mutation(opt, "opt", [&] {
    if (n > descent::parallel::kMaxThreads)
      throw descent::Error(DESCENT_ERR_OUT_OF_RANGE,
                           "num_threads: at most " +
                               std::to_string(descent::parallel::kMaxThreads) + " (got " +
                               std::to_string(n) + ")");
    opt->impl->set_num_threads(n);
  });
}

DESCENT_API descent_status descent_optimizer_get_num_threads(const descent_optimizer* opt,
                                                             size_t* out) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require(out, "out");
    *out = opt->impl->num_threads();
  });
}

}  // extern "C"
