// The safetensors container: parsing and validating a serialised buffer.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON header, then the data blob.
// The header is an object mapping each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end]} (offsets relative to the blob), plus an optional "__metadata__" object of
// string values (MLX writes null). Everything in a buffer is untrusted: parse_safetensors checks
// every byte it relies on and throws descent::Error (DESCENT_ERR_CORRUPT) naming the first
// problem; it never reads outside the buffer, never recurses on the input, and keeps memory
// proportional to the header's size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/shape.h"

namespace descent::state_io {

enum class ElementKind { Bool, Unsigned, Signed, Float, Complex };

// A safetensors dtype ("F32", "U64", ...).
struct ElementType {
  const char* name;
  std::size_t size;  // bytes per element
  ElementKind kind;
};

// The dtypes descent recognises (those MLX reads and writes, plus F64); nullptr for any other.
const ElementType* find_element_type(std::string_view name);
const ElementType& element_type_f32();
const ElementType& element_type_f64();
const ElementType& element_type_u64();

struct TensorView {
  std::string name;
  const ElementType* type;
  Shape shape;
  uint64_t numel;
  uint64_t begin, end;        // data_offsets, relative to the blob
  const unsigned char* data;  // the tensor's bytes inside the parsed buffer (end - begin of them)
};

struct Metadata {
  bool present = false;  // false when "__metadata__" is absent or null (MLX)
  std::vector<std::pair<std::string, std::string>> entries;  // in header order

  const std::string* find(std::string_view key) const;
};

struct SafetensorsView {
  std::vector<TensorView> tensors;  // in header order; names are unique
  Metadata metadata;
};

// Limits on what parse_safetensors accepts (as the reference implementation and MLX do for the
// header size).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::size_t kMaxDimensions = 64;

// Parses and validates `size` bytes. The views point into `buf`, which must outlive them.
SafetensorsView parse_safetensors(const unsigned char* buf, std::size_t size);

// A name from an untrusted file, quoted and escaped for an error message, shortened past
// `limit` bytes.
std::string quote_name(std::string_view name, std::size_t limit = 120);
// A file path for an error message: quoted and escaped like a name, shortened only past 4096 bytes.
inline std::string quote_path(std::string_view path) {
  return quote_name(path, 4096);
}

}  // namespace descent::state_io
