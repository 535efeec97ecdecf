// descent_clip_grad_norm: checks the arguments, then core/clip.h does the work.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "capi/guard.h"
#include "common/dtype.h"
#include "core/clip.h"
#include "schedules/builtin_schedules.h"

using descent::DType;
using descent::Error;
using descent::capi::guarded;
using descent::capi::require;

namespace {

std::string at(std::size_t i) {
  return "grads[" + std::to_string(i) + "]";
}

struct Range {
  std::uintptr_t begin, end;
  std::size_t index;
};

// Up to this many tensors the overlap check sorts on the stack: no allocation per call.
constexpr std::size_t kStackRanges = 64;

// Validates every argument before any buffer is read or written.
void check_arguments(std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                     void* const* grads, double max_norm) {
  if (count > 0) {
    require(dtypes, "dtypes");
    require(numels, "numels");
    require(grads, "grads");
  }
  if (!(max_norm >= 0.0))
    throw Error(DESCENT_ERR_OUT_OF_RANGE,
                "max_norm must be >= 0 (got " + descent::schedules::json_number(max_norm) + ")");
  Range stack[kStackRanges];
  std::vector<Range> heap;
  if (count > kStackRanges) heap.resize(count);
  Range* const ranges = count > kStackRanges ? heap.data() : stack;
  std::size_t n = 0;
  for (std::size_t i = 0; i < count; ++i) {
    DType dt = DType::Float32;
    if (dtypes[i] == DESCENT_FLOAT64)
      dt = DType::Float64;
    else if (dtypes[i] != DESCENT_FLOAT32)
      dt = descent::parameter_dtype(dtypes[i], at(i));  // throws the message
    if (numels[i] < 0)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT, at(i) + ": numels[" + std::to_string(i) + "] = " +
                                                    std::to_string(numels[i]) + " is negative");
    if (numels[i] > PTRDIFF_MAX / 8)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT, at(i) + ": numels[" + std::to_string(i) + "] = " +
                                                    std::to_string(numels[i]) + " is too large");
    if (numels[i] > 0 && !grads[i]) throw Error(DESCENT_ERR_NULL_ARGUMENT, at(i) + " is NULL");
    if (numels[i] > 0) {
      const auto b = reinterpret_cast<std::uintptr_t>(grads[i]);
      ranges[n++] =
          Range{b, b + static_cast<std::uintptr_t>(numels[i]) * descent::dtype_size(dt), i};
    }
  }
  // Scaling in place twice through aliased buffers would be wrong: reject any overlap.
  std::sort(ranges, ranges + n, [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (std::size_t k = 1; k < n; ++k)
    if (ranges[k].begin < ranges[k - 1].end)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  at(std::min(ranges[k - 1].index, ranges[k].index)) + " and " +
                      at(std::max(ranges[k - 1].index, ranges[k].index)) + " overlap");
}

}  // namespace

// For descent_collectives_clip_grad_norm (capi/distributed_api.cpp): the same checks.
namespace descent::capi {
void check_clip_arguments(std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                          void* const* grads, double max_norm) {
  check_arguments(count, dtypes, numels, grads, max_norm);
}
}  // namespace descent::capi

extern "C" {

DESCENT_API descent_status descent_clip_grad_norm(size_t count, const descent_dtype* dtypes,
                                                  const int64_t* numels, void* const* grads,
                                                  double max_norm, double* total_norm, char* error,
                                                  size_t error_capacity) {
  return descent::capi::guarded_to(error, error_capacity, [&] {
    check_arguments(count, dtypes, numels, grads, max_norm);
    const double reported = descent::clip_grad_norm(count, dtypes, numels, grads, max_norm);
    if (total_norm) *total_norm = reported;
  });
}

}  // extern "C"
