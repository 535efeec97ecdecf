#include "state_io/safetensors_format.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "common/error.h"

namespace descent::state_io {

namespace {

constexpr ElementType kElementTypes[] = {
    {"BOOL", 1, ElementKind::Bool},    {"U8", 1, ElementKind::Unsigned},
    {"I8", 1, ElementKind::Signed},    {"U16", 2, ElementKind::Unsigned},
    {"I16", 2, ElementKind::Signed},   {"F16", 2, ElementKind::Float},
    {"BF16", 2, ElementKind::Float},   {"U32", 4, ElementKind::Unsigned},
    {"I32", 4, ElementKind::Signed},   {"F32", 4, ElementKind::Float},
    {"U64", 8, ElementKind::Unsigned}, {"I64", 8, ElementKind::Signed},
    {"F64", 8, ElementKind::Float},    {"C64", 8, ElementKind::Complex},
};

[[noreturn]] void corrupt(const std::string& message) {
  throw Error(DESCENT_ERR_CORRUPT, message);
}

// The header as the SAX pass reads it, before any cross-checking.
struct RawTensor {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  std::vector<uint64_t> offsets;
};

// Reads the header with nlohmann's SAX interface into RawTensors and Metadata, accepting exactly
// the safetensors structure: {name: {"dtype": str, "shape": [uint...], "data_offsets": [uint,
// uint]}, "__metadata__": {str: str} | null}. Anything else stops the parse at once, so the depth
// never exceeds three levels and nothing is built for input that does not fit.
class HeaderReader final : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::vector<RawTensor> tensors;
  Metadata metadata;
  std::string error;  // why the parse stopped ("" after a success)

  bool null() override {
    if (where_ == Where::MetadataValue && !metadata.present) {  // "__metadata__": null (MLX)
      where_ = Where::Top;
      return true;
    }
    return unexpected("null");
  }
  bool boolean(bool) override { return unexpected("a boolean"); }
  bool number_integer(number_integer_t v) override {
    if (v < 0 && (where_ == Where::Shape || where_ == Where::Offsets))
      return fail(field_context() + " holds a negative number (" + std::to_string(v) + ")");
    return unsigned_number(static_cast<uint64_t>(v));
  }
  bool number_unsigned(number_unsigned_t v) override { return unsigned_number(v); }
  bool number_float(number_float_t, const string_t&) override {
    if (where_ == Where::Shape || where_ == Where::Offsets)
      return fail(field_context() + " must hold integers, found a non-integer number");
    return unexpected("a number");
  }
  bool string(string_t& v) override {
    if (where_ == Where::MetadataValue && metadata.present) {
      metadata.entries.emplace_back(std::move(key_), std::move(v));
      where_ = Where::Metadata;
      return true;
    }
    if (where_ == Where::FieldValue && field_ == Field::Dtype) {
      tensors.back().dtype = std::move(v);
      where_ = Where::Tensor;
      return true;
    }
    return unexpected("a string");
  }
  bool binary(binary_t&) override { return unexpected("a binary value"); }
  bool start_object(std::size_t) override {
    switch (where_) {
      case Where::Start:
        where_ = Where::Top;
        return true;
      case Where::MetadataValue:
        if (metadata.present) return unexpected("an object");
        metadata.present = true;
        where_ = Where::Metadata;
        return true;
      case Where::TensorValue:
        where_ = Where::Tensor;
        fields_ = 0;
        return true;
      default:
        return unexpected("an object");
    }
  }
  bool key(string_t& k) override {
    switch (where_) {
      case Where::Top:
        if (!top_keys_.insert(k).second)
          return fail("key " + quote_name(k) + " appears twice in the header");
        if (k == "__metadata__") {
          where_ = Where::MetadataValue;
        } else {
          tensors.push_back(RawTensor{k, {}, {}, {}});
          where_ = Where::TensorValue;
        }
        return true;
      case Where::Metadata:
        if (!metadata_keys_.insert(k).second)
          return fail("\"__metadata__\" key " + quote_name(k) + " appears twice");
        key_ = std::move(k);
        where_ = Where::MetadataValue;
        return true;
      case Where::Tensor: {
        unsigned bit;
        if (k == "dtype") {
          field_ = Field::Dtype;
          bit = 1;
        } else if (k == "shape") {
          field_ = Field::Shape;
          bit = 2;
        } else if (k == "data_offsets") {
          field_ = Field::Offsets;
          bit = 4;
        } else {
          return fail(tensor_context() + ": unknown field " + quote_name(k) +
                      " (expected dtype, shape and data_offsets)");
        }
        if (fields_ & bit)
          return fail(tensor_context() + ": field " + quote_name(k) + " given twice");
        fields_ |= bit;
        where_ = Where::FieldValue;
        return true;
      }
      default:
        return unexpected("a key");  // not reachable: keys only occur in objects
    }
  }
  bool end_object() override {
    switch (where_) {
      case Where::Top:
        where_ = Where::Done;
        return true;
      case Where::Metadata:
        where_ = Where::Top;
        return true;
      case Where::Tensor:
        if (fields_ != 7)
          return fail(tensor_context() + ": missing field \"" +
                      ((fields_ & 1) == 0   ? "dtype"
                       : (fields_ & 2) == 0 ? "shape"
                                            : "data_offsets") +
                      "\"");
        where_ = Where::Top;
        return true;
      default:
        return unexpected("the end of an object");
    }
  }
  bool start_array(std::size_t) override {
    if (where_ == Where::FieldValue && field_ == Field::Shape) {
      where_ = Where::Shape;
      return true;
    }
    if (where_ == Where::FieldValue && field_ == Field::Offsets) {
      where_ = Where::Offsets;
      return true;
    }
    return unexpected("an array");
  }
  bool end_array() override {
    if (where_ == Where::Shape) {
      where_ = Where::Tensor;
      return true;
    }
    if (where_ == Where::Offsets) {
      if (tensors.back().offsets.size() != 2)
        return fail(tensor_context() + ": data_offsets must hold exactly two numbers, found " +
                    std::to_string(tensors.back().offsets.size()));
      where_ = Where::Tensor;
      return true;
    }
    return unexpected("the end of an array");
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    if (error.empty()) error = std::string("the header is not valid JSON: ") + e.what();
    return false;
  }

  bool finished() const { return where_ == Where::Done; }

 private:
  enum class Where {
    Start,          // before the top-level value
    Top,            // inside the top-level object, expecting a key
    MetadataValue,  // after the "__metadata__" key, or after a key inside it
    Metadata,       // inside "__metadata__", expecting a key
    TensorValue,    // after a tensor's name
    Tensor,         // inside a tensor's object, expecting a field name
    FieldValue,     // after a field name
    Shape,          // inside "shape"
    Offsets,        // inside "data_offsets"
    Done,
  };
  enum class Field { Dtype, Shape, Offsets };

  bool fail(std::string message) {
    if (error.empty()) error = std::move(message);
    return false;
  }
  std::string tensor_context() const { return "tensor " + quote_name(tensors.back().name); }
  std::string field_context() const {
    return tensor_context() + ": " + (where_ == Where::Shape ? "shape" : "data_offsets");
  }
  bool unsigned_number(uint64_t v) {
    if (where_ == Where::Shape) {
      auto& shape = tensors.back().shape;
      if (shape.size() == kMaxDimensions)
        return fail(tensor_context() + ": shape has more than " + std::to_string(kMaxDimensions) +
                    " dimensions");
      shape.push_back(v);
      return true;
    }
    if (where_ == Where::Offsets) {
      auto& offsets = tensors.back().offsets;
      if (offsets.size() == 2)
        return fail(tensor_context() + ": data_offsets must hold exactly two numbers, found more");
      offsets.push_back(v);
      return true;
    }
    return unexpected("a number");
  }
  // A value or token of type `what` where the structure does not allow it.
  bool unexpected(const char* what) {
    const std::string got = std::string("found ") + what;
    switch (where_) {
      case Where::Start:
        return fail("the header must be a JSON object, " + got);
      case Where::MetadataValue:
        if (!metadata.present)
          return fail("\"__metadata__\" must be an object of strings or null, " + got);
        return fail("\"__metadata__\" value of " + quote_name(key_) + " must be a string, " + got);
      case Where::TensorValue:
        return fail(tensor_context() + ": must be an object {dtype, shape, data_offsets}, " + got);
      case Where::FieldValue:
        switch (field_) {
          case Field::Dtype:
            return fail(tensor_context() + ": dtype must be a string, " + got);
          case Field::Shape:
            return fail(tensor_context() + ": shape must be an array of integers, " + got);
          case Field::Offsets:
            return fail(tensor_context() + ": data_offsets must be an array of two integers, " +
                        got);
        }
        break;
      case Where::Shape:
      case Where::Offsets:
        return fail(field_context() + " must hold integers only, " + got);
      default:
        break;
    }
    return fail(got + " where the header does not allow it");
  }

  Where where_ = Where::Start;
  Field field_ = Field::Dtype;
  unsigned fields_ = 0;  // bit set of the fields seen in the current tensor
  std::string key_;      // the current "__metadata__" key
  std::unordered_set<std::string> top_keys_, metadata_keys_;
};

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

const ElementType* find_element_type(std::string_view name) {
  for (const auto& t : kElementTypes)
    if (name == t.name) return &t;
  return nullptr;
}
const ElementType& element_type_f32() {
  return *find_element_type("F32");
}
const ElementType& element_type_f64() {
  return *find_element_type("F64");
}
const ElementType& element_type_u64() {
  return *find_element_type("U64");
}

const std::string* Metadata::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

std::string quote_name(std::string_view name, std::size_t limit) {
  std::string out = "'";
  for (std::size_t i = 0; i < name.size() && i < limit; ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f || c == '\\' || c == '\'') {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (name.size() > limit) out += "...(" + std::to_string(name.size()) + " bytes)";
  return out + "'";
}

SafetensorsView parse_safetensors(const unsigned char* buf, std::size_t size) {
  if (size < 8)
    corrupt("not a safetensors file: " + std::to_string(size) +
            " bytes, too short for the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | buf[i];
  const uint64_t after = size - 8;
  if (header_len == 0) corrupt("the header length is 0");
  if (header_len > after)
    corrupt("the header length " + std::to_string(header_len) + " runs past the end (" +
            std::to_string(after) +
            " bytes follow the length field): truncated or not safetensors");
  if (header_len > kMaxHeaderBytes)
    corrupt("the header length " + std::to_string(header_len) + " exceeds the limit of " +
            std::to_string(kMaxHeaderBytes) + " bytes");

  const char* header = reinterpret_cast<const char*>(buf + 8);
  // JSON text never holds a raw NUL, and nlohmann's lexer would take one for the end of the
  // input, silently ignoring whatever follows it within the header.
  if (const void* nul = std::memchr(header, 0, header_len))
    corrupt("the header is not valid JSON: a NUL byte at header offset " +
            std::to_string(static_cast<const char*>(nul) - header));
  HeaderReader reader;
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(header, header + header_len, &reader,
                                   nlohmann::json::input_format_t::json, /*strict=*/true);
  } catch (const nlohmann::json::exception& e) {
    if (reader.error.empty())
      reader.error = std::string("the header is not valid JSON: ") + e.what();
  }
  if (!ok || !reader.finished())
    corrupt(reader.error.empty() ? "the header is not a complete JSON object" : reader.error);

  const unsigned char* blob = buf + 8 + header_len;
  const uint64_t blob_size = after - header_len;
  SafetensorsView view;
  view.metadata = std::move(reader.metadata);
  view.tensors.reserve(reader.tensors.size());
  for (auto& raw : reader.tensors) {
    const std::string what = "tensor " + quote_name(raw.name);
    const ElementType* type = find_element_type(raw.dtype);
    if (!type) corrupt(what + ": unknown dtype " + quote_name(raw.dtype));
    uint64_t numel = 1;
    Shape shape;
    shape.reserve(raw.shape.size());
    for (uint64_t d : raw.shape) {
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          !checked_mul(numel, d, &numel))
        corrupt(what + ": shape " + shape_text(raw.shape) + " has too many elements");
      shape.push_back(static_cast<int64_t>(d));
    }
    uint64_t bytes = 0;
    if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        !checked_mul(numel, type->size, &bytes))
      corrupt(what + ": shape " + shape_text(raw.shape) + " has too many elements");
    const uint64_t begin = raw.offsets[0], end = raw.offsets[1];
    if (begin > end)
      corrupt(what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
              "] end before they begin");
    if (end > blob_size)
      corrupt(what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
              "] run past the end of the data (" + std::to_string(blob_size) +
              " bytes): truncated?");
    if (end - begin != bytes)
      corrupt(what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
              "] hold " + std::to_string(end - begin) + " bytes, but " + raw.dtype + " of shape " +
              shape_text(raw.shape) + " needs " + std::to_string(bytes));
    view.tensors.push_back(
        TensorView{std::move(raw.name), type, std::move(shape), numel, begin, end, blob + begin});
  }

  // The tensors must tile the data exactly: no overlap, no gap, nothing after the last one.
  std::vector<const TensorView*> order;
  order.reserve(view.tensors.size());
  for (const auto& t : view.tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorView* a, const TensorView* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const TensorView* previous = nullptr;
  for (const TensorView* t : order) {
    if (t->begin < cursor)
      corrupt("tensors " + quote_name(previous->name) + " and " + quote_name(t->name) +
              " overlap in the data (bytes " + std::to_string(t->begin) + " to " +
              std::to_string(cursor) + ")");
    if (t->begin > cursor)
      corrupt("data bytes " + std::to_string(cursor) + " to " + std::to_string(t->begin) +
              " belong to no tensor");
    cursor = t->end;
    previous = t;
  }
  if (cursor != blob_size)
    corrupt("data bytes " + std::to_string(cursor) + " to " + std::to_string(blob_size) +
            " belong to no tensor (trailing bytes)");
  return view;
}

}  // namespace descent::state_io
