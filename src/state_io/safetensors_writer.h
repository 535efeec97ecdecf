// The safetensors container: writing the header for a list of tensors laid out back to back.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "common/shape.h"
#include "state_io/safetensors_format.h"

namespace descent::state_io {

struct TensorHeader {
  std::string name;
  const ElementType* type;
  Shape shape;
  std::size_t bytes;  // numel(shape) * type->size
};

// The 8-byte little-endian length followed by the JSON header: "__metadata__" first (its
// entries in the given order; null when there are none, as MLX writes), then the tensors in the
// given order with data_offsets laying them out back to back from 0. The JSON is padded with
// spaces so that the data starts at a multiple of 8 bytes. Throws DESCENT_ERR_INVALID_ARGUMENT
// when a name or value is not valid UTF-8 (JSON cannot hold it).
std::string encode_safetensors_header(
    const std::vector<TensorHeader>& tensors,
    const std::vector<std::pair<std::string, std::string>>& metadata);

}  // namespace descent::state_io
