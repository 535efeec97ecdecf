#include "common/dtype.h"

namespace descent {

const char* dtype_name(descent_dtype d) noexcept {
  switch (d) {
    case DESCENT_FLOAT32:
      return "float32";
    case DESCENT_FLOAT64:
      return "float64";
    case DESCENT_BFLOAT16:
      return "bfloat16";
    case DESCENT_FLOAT16:
      return "float16";
    case DESCENT_UINT64:
      return "uint64";
    case DESCENT_DTYPE_FORCE_32BIT:
      break;
  }
  return "unknown";
}

DType parameter_dtype(descent_dtype d, const std::string& what) {
  switch (d) {
    case DESCENT_FLOAT32:
      return DType::Float32;
    case DESCENT_FLOAT64:
      return DType::Float64;
    case DESCENT_BFLOAT16:
      return DType::BFloat16;
    case DESCENT_FLOAT16:
      return DType::Float16;
    case DESCENT_UINT64:
    case DESCENT_DTYPE_FORCE_32BIT:
      break;
  }
  throw Error(DESCENT_ERR_INVALID_ARGUMENT, what + ": dtype " +
                                                std::to_string(static_cast<int>(d)) +
                                                " is not a floating-point parameter dtype");
}

}  // namespace descent
