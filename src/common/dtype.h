// Element types of tensors and state slots.
#pragma once

#include <cstddef>
#include <string>

#include "common/error.h"

namespace descent {

enum class DType {
  Float32 = DESCENT_FLOAT32,
  Float64 = DESCENT_FLOAT64,
  BFloat16 = DESCENT_BFLOAT16,
  Float16 = DESCENT_FLOAT16,
  UInt64 = DESCENT_UINT64
};

inline std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::Float32:
      return 4;
    case DType::BFloat16:
    case DType::Float16:
      return 2;
    case DType::Float64:
    case DType::UInt64:
      break;
  }
  return 8;
}

inline bool is_half(DType d) {
  return d == DType::BFloat16 || d == DType::Float16;
}

const char* dtype_name(descent_dtype d) noexcept;
inline const char* dtype_name(DType d) noexcept {
  return dtype_name(static_cast<descent_dtype>(d));
}

// Converts a caller's dtype for a parameter tensor; reserved or unknown values throw.
DType parameter_dtype(descent_dtype d, const std::string& what);

}  // namespace descent
