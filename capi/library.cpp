// Library-wide entry points: versions, names of codes, and the per-thread error message.
#include <cstring>
#include <string>

#include "capi/guard.h"
#include "common/dtype.h"
#include "core/thread_pool.h"
#include "optimizers/registry.h"

namespace {
// A fixed buffer: thread_locals with constructors misbehave in threads that predate a dlopen.
thread_local char thread_error[1024];
}  // namespace

namespace descent::capi {

void record_error(const descent_optimizer* handle, const char* message) noexcept {
  std::strncpy(thread_error, message, sizeof thread_error - 1);
  thread_error[sizeof thread_error - 1] = '\0';
  if (!handle) return;
  try {
    const_cast<descent_optimizer*>(handle)->last_error = message;
  } catch (...) {
    const_cast<descent_optimizer*>(handle)->last_error.clear();
  }
}

void copy_error(char* error, std::size_t capacity) noexcept {
  if (!error || capacity == 0) return;
  std::strncpy(error, thread_error, capacity - 1);
  error[capacity - 1] = '\0';
}

}  // namespace descent::capi

extern "C" {

DESCENT_API unsigned descent_version_number(void) {
  return DESCENT_VERSION_NUMBER;
}

#define DESCENT_STR2(x) #x
#define DESCENT_STR(x) DESCENT_STR2(x)
DESCENT_API const char* descent_version_string(void) {
  return DESCENT_STR(DESCENT_VERSION_MAJOR) "." DESCENT_STR(DESCENT_VERSION_MINOR) "." DESCENT_STR(
      DESCENT_VERSION_PATCH);
}

DESCENT_API const char* descent_status_name(descent_status status) {
  switch (status) {
    case DESCENT_OK:
      return "DESCENT_OK";
    case DESCENT_ERR_NULL_ARGUMENT:
      return "DESCENT_ERR_NULL_ARGUMENT";
    case DESCENT_ERR_INVALID_ARGUMENT:
      return "DESCENT_ERR_INVALID_ARGUMENT";
    case DESCENT_ERR_UNKNOWN_KIND:
      return "DESCENT_ERR_UNKNOWN_KIND";
    case DESCENT_ERR_UNKNOWN_KEY:
      return "DESCENT_ERR_UNKNOWN_KEY";
    case DESCENT_ERR_WRONG_TYPE:
      return "DESCENT_ERR_WRONG_TYPE";
    case DESCENT_ERR_OUT_OF_RANGE:
      return "DESCENT_ERR_OUT_OF_RANGE";
    case DESCENT_ERR_DTYPE_MISMATCH:
      return "DESCENT_ERR_DTYPE_MISMATCH";
    case DESCENT_ERR_SHAPE_MISMATCH:
      return "DESCENT_ERR_SHAPE_MISMATCH";
    case DESCENT_ERR_INVALID_STATE:
      return "DESCENT_ERR_INVALID_STATE";
    case DESCENT_ERR_PARSE:
      return "DESCENT_ERR_PARSE";
    case DESCENT_ERR_BUFFER_TOO_SMALL:
      return "DESCENT_ERR_BUFFER_TOO_SMALL";
    case DESCENT_ERR_IO:
      return "DESCENT_ERR_IO";
    case DESCENT_ERR_CORRUPT:
      return "DESCENT_ERR_CORRUPT";
    case DESCENT_ERR_OUT_OF_MEMORY:
      return "DESCENT_ERR_OUT_OF_MEMORY";
    case DESCENT_ERR_UNSUPPORTED:
      return "DESCENT_ERR_UNSUPPORTED";
    case DESCENT_ERR_DUPLICATE:
      return "DESCENT_ERR_DUPLICATE";
    case DESCENT_ERR_CALLBACK:
      return "DESCENT_ERR_CALLBACK";
    case DESCENT_ERR_INTERNAL:
      return "DESCENT_ERR_INTERNAL";
    case DESCENT_STATUS_FORCE_32BIT:
      break;
  }
  return "DESCENT_ERR_UNKNOWN_STATUS";
}

DESCENT_API const char* descent_dtype_name(descent_dtype dtype) {
  return descent::dtype_name(dtype);
}

DESCENT_API size_t descent_kind_count(void) {
  return descent::kind_count();
}

DESCENT_API const char* descent_kind_name(size_t index) {
  return descent::kind_name(index);
}

DESCENT_API const char* descent_last_error(void) {
  return thread_error;
}

DESCENT_API descent_status descent_set_num_threads(size_t n, char* error, size_t error_capacity) {
  return descent::capi::guarded_to(error, error_capacity, [&] {
    if (n > descent::parallel::kMaxThreads)
      throw descent::Error(DESCENT_ERR_OUT_OF_RANGE,
                           "num_threads: at most " +
                               std::to_string(descent::parallel::kMaxThreads) + " (got " +
                               std::to_string(n) + ")");
    descent::parallel::set_default_threads(n);
  });
}

DESCENT_API descent_status descent_get_num_threads(size_t* out, char* error,
                                                   size_t error_capacity) {
  return descent::capi::guarded_to(error, error_capacity, [&] {
    descent::capi::require(out, "out");
    *out = descent::parallel::default_threads();
  });
}

}  // extern "C"
