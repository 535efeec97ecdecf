// Reading and writing optimizer state by MLX's tree_flatten keys.
#include <algorithm>
#include <string>

#include "capi/guard.h"

using descent::Error;
using descent::capi::guarded;
using descent::capi::guarded_mutation;
using descent::capi::require;
using descent::capi::require_text;

namespace {

descent::DType state_dtype(descent_dtype d) {
  switch (d) {
    case DESCENT_FLOAT32:
      return descent::DType::Float32;
    case DESCENT_FLOAT64:
      return descent::DType::Float64;
    case DESCENT_BFLOAT16:
      return descent::DType::BFloat16;
    case DESCENT_FLOAT16:
      return descent::DType::Float16;
    case DESCENT_UINT64:
      return descent::DType::UInt64;
    default:
      throw Error(DESCENT_ERR_DTYPE_MISMATCH,
                  std::string("dtype ") + descent::dtype_name(d) + " is not a state dtype");
  }
}

std::size_t element_count(const char* key, int64_t numel) {
  if (numel < 0)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, std::string("state '") + key + "': numel " +
                                                  std::to_string(numel) + " is negative");
  return static_cast<std::size_t>(numel);
}

}  // namespace

extern "C" {

DESCENT_API descent_status descent_optimizer_state_count(const descent_optimizer* opt,
                                                         size_t* out) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require(out, "out");
    *out = opt->impl->state_count();
  });
}

DESCENT_API descent_status descent_optimizer_state_key(const descent_optimizer* opt, size_t index,
                                                       const char** out) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require(out, "out");
    *out = opt->impl->state_key(index).c_str();
  });
}

DESCENT_API descent_status descent_optimizer_state_info(const descent_optimizer* opt,
                                                        const char* key, descent_dtype* dtype,
                                                        size_t* ndim, int64_t* shape,
                                                        size_t capacity) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require_text(key, "key");
    const descent::SlotInfo info = opt->impl->state_info(key);
    if (shape && capacity < info.shape.size())
      throw Error(DESCENT_ERR_BUFFER_TOO_SMALL,
                  std::string("state '") + key + "': has " + std::to_string(info.shape.size()) +
                      " dimensions, capacity is " + std::to_string(capacity));
    if (dtype) *dtype = static_cast<descent_dtype>(info.dtype);
    if (ndim) *ndim = info.shape.size();
    if (shape) std::copy(info.shape.begin(), info.shape.end(), shape);
  });
}

DESCENT_API descent_status descent_optimizer_state_get(const descent_optimizer* opt,
                                                       const char* key, descent_dtype dtype,
                                                       void* out, int64_t numel) {
  return guarded(opt, [&] {
    require(opt, "opt");
    require_text(key, "key");
    const std::size_t count = element_count(key, numel);
    if (count > 0) require(out, "out");
    opt->impl->state_get(key, state_dtype(dtype), out, count);
  });
}

DESCENT_API descent_status descent_optimizer_state_set(descent_optimizer* opt, const char* key,
                                                       descent_dtype dtype, const void* data,
                                                       int64_t numel) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    require_text(key, "key");
    const std::size_t count = element_count(key, numel);
    if (count > 0) require(data, "data");
    opt->impl->state_set(key, state_dtype(dtype), data, count);
  });
}

}  // extern "C"
