#include "state_io/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "config/json_parse.h"
#include "kernels/convert_kernel.h"
#include "state_io/safetensors_format.h"

namespace descent::state_io {

namespace {

constexpr const char* kStep = "step";
constexpr const char* kLearningRate = "learning_rate";

const ElementType& element_type_of(DType d) {
  switch (d) {
    case DType::Float32:
      return element_type_f32();
    case DType::Float64:
      return element_type_f64();
    case DType::UInt64:
      return element_type_u64();
    case DType::BFloat16:
      return *find_element_type("BF16");
    case DType::Float16:
      return *find_element_type("F16");
  }
  throw Error(DESCENT_ERR_INTERNAL, "state slot of an unknown dtype");
}

std::string version_string() {
  return std::to_string(DESCENT_VERSION_MAJOR) + "." + std::to_string(DESCENT_VERSION_MINOR) + "." +
         std::to_string(DESCENT_VERSION_PATCH);
}

bool is_learning_rate_key(std::string_view key) {
  const std::string_view lr = kLearningRate;
  return key == lr ||
         (key.size() > lr.size() && key.compare(key.size() - lr.size(), lr.size(), lr) == 0 &&
          key[key.size() - lr.size() - 1] == '.');
}

// step and learning_rate, also a multi's "states.<i>.step": the keys that exist before init.
// No slot is named either.
bool is_counter_key(std::string_view key) {
  const std::string_view step = kStep;
  return key == step || is_learning_rate_key(key) ||
         (key.size() > step.size() &&
          key.compare(key.size() - step.size(), step.size(), step) == 0 &&
          key[key.size() - step.size() - 1] == '.');
}

// ---- descent's metadata ------------------------------------------------------------------

const std::string& required(const Metadata& meta, const char* key) {
  const std::string* v = meta.find(key);
  if (!v) throw Error(DESCENT_ERR_CORRUPT, std::string("descent metadata lacks \"") + key + "\"");
  return *v;
}

// Checks the format version and kind, then configures `work` from the file's "config" (and
// unsets the learning rate when the saved optimizer had none but `work` has one).
void apply_descent_metadata(Optimizer& work, const Metadata& meta, bool file_has_learning_rate) {
  const std::string& version = required(meta, "format_version");
  if (version != kFormatVersion) {
    const bool numeric =
        !version.empty() && version.size() < 10 &&
        std::all_of(version.begin(), version.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!numeric)
      throw Error(DESCENT_ERR_CORRUPT, "descent metadata: format_version " + quote_name(version) +
                                           " is not a version number");
    throw Error(DESCENT_ERR_UNSUPPORTED, "descent metadata: format_version " + version +
                                             " is not supported by descent " + version_string() +
                                             ", which reads version " + kFormatVersion);
  }
  const std::string& kind = required(meta, "kind");
  if (kind != work.kind())
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, "the file holds the state of a " + quote_name(kind) +
                                                  " optimizer; this optimizer is '" + work.kind() +
                                                  "'");
  const std::string& config = required(meta, "config");

  // The config comes from an untrusted file: bound its nesting before anything walks it.
  nlohmann::json doc;
  try {
    doc = parse_json(config, "descent metadata: config");
  } catch (const Error& e) {
    throw Error(DESCENT_ERR_CORRUPT, e.what());  // a damaged file, not a caller's typo
  }
  if (!doc.is_object())
    throw Error(
        DESCENT_ERR_CORRUPT,
        std::string("descent metadata: config must be a JSON object, found ") + doc.type_name());
  std::string text = config;
  bool work_has_learning_rate = false;
  for (std::size_t i = 0; i < work.state_count(); ++i)
    work_has_learning_rate |= work.state_key(i) == kLearningRate;
  if (!file_has_learning_rate && work_has_learning_rate && !doc.contains(kLearningRate)) {
    doc[kLearningRate] = nullptr;  // saved without a learning rate (Adafactor's None)
    text = doc.dump();
  }
  try {
    work.configure_json(text);
  } catch (const Error& e) {
    throw Error(e.status() == DESCENT_ERR_PARSE ? DESCENT_ERR_CORRUPT : e.status(),
                std::string("descent metadata: config: ") + e.what());
  }
}

// ---- tensors -> slots ----------------------------------------------------------------------

template <class T>
T read_element(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Element i of an integer tensor, widened; `negative` is set for a negative value.
uint64_t read_integer(const TensorView& t, uint64_t i, bool* negative) {
  const unsigned char* p = t.data + i * t.type->size;
  int64_t s = 0;
  *negative = false;
  if (t.type->kind == ElementKind::Unsigned) {
    switch (t.type->size) {
      case 1:
        return read_element<uint8_t>(p);
      case 2:
        return read_element<uint16_t>(p);
      case 4:
        return read_element<uint32_t>(p);
      default:
        return read_element<uint64_t>(p);
    }
  }
  switch (t.type->size) {
    case 1:
      s = read_element<int8_t>(p);
      break;  // NOLINT(bugprone-signed-char-misuse): int8 is signed
    case 2:
      s = read_element<int16_t>(p);
      break;
    case 4:
      s = read_element<int32_t>(p);
      break;
    default:
      s = read_element<int64_t>(p);
      break;
  }
  *negative = s < 0;
  return static_cast<uint64_t>(s);
}

std::string keys_summary(const Optimizer& work) {
  std::string out;
  const std::size_t n = work.state_count();
  for (std::size_t i = 0; i < n && i < 8; ++i) out += (i ? ", " : "") + work.state_key(i);
  if (n > 8) out += ", ... (" + std::to_string(n) + " in all)";
  return out;
}

using KeySet = std::set<std::string, std::less<>>;

KeySet state_keys(const Optimizer& work) {
  KeySet keys;
  for (std::size_t i = 0; i < work.state_count(); ++i) keys.insert(work.state_key(i));
  return keys;
}

// Copies one tensor into the slot of the same name. Exact dtype and shape, except for two
// lossless conversions MLX files may need: any integer dtype into a uint64 slot (the step
// counter) when no value is negative, and float64 or integer values into a float32
// learning_rate when float32 holds them exactly.
void assign(Optimizer& work, const KeySet& known, const TensorView& t) {
  SlotInfo info;
  if (t.name == kLearningRate && !known.count(kLearningRate))
    info = {DType::Float32, {}};  // the optimizer has no learning rate yet: the file sets it
  else
    info = work.state_info(t.name);
  const std::string what = "state " + quote_name(t.name);
  if (t.shape != info.shape)
    throw Error(DESCENT_ERR_SHAPE_MISMATCH, what + ": the file has shape " + shape_string(t.shape) +
                                                ", this optimizer's slot has shape " +
                                                shape_string(info.shape));
  const ElementType& want = element_type_of(info.dtype);
  if (t.type == &want) {
    work.state_set(t.name, info.dtype, t.data, static_cast<std::size_t>(t.numel));
    return;
  }
  const bool integer = t.type->kind == ElementKind::Unsigned || t.type->kind == ElementKind::Signed;
  if (info.dtype == DType::UInt64 && integer) {
    std::vector<uint64_t> values(static_cast<std::size_t>(t.numel));
    for (uint64_t i = 0; i < t.numel; ++i) {
      bool negative;
      values[i] = read_integer(t, i, &negative);
      if (negative)
        throw Error(DESCENT_ERR_OUT_OF_RANGE, what + ": holds the negative value " +
                                                  std::to_string(static_cast<int64_t>(values[i])) +
                                                  " (" + t.type->name +
                                                  "); a step count cannot be negative");
    }
    work.state_set(t.name, info.dtype, values.data(), values.size());
    return;
  }
  if (info.dtype == DType::Float32 && is_learning_rate_key(t.name) &&
      (integer || t.type == &element_type_f64())) {
    std::vector<float> values(static_cast<std::size_t>(t.numel));
    for (uint64_t i = 0; i < t.numel; ++i) {
      double d;
      if (integer) {
        bool negative;
        const uint64_t u = read_integer(t, i, &negative);
        d = negative ? static_cast<double>(static_cast<int64_t>(u)) : static_cast<double>(u);
      } else {
        d = read_element<double>(t.data + i * 8);
      }
      const float f = static_cast<float>(d);
      if (std::isfinite(d) && static_cast<double>(f) != d)
        throw Error(DESCENT_ERR_DTYPE_MISMATCH,
                    what + ": the " + t.type->name + " value " + std::to_string(d) +
                        " is not exactly representable as float32, in which descent holds the "
                        "learning rate; save it as float32");
      values[i] = f;
    }
    work.state_set(t.name, info.dtype, values.data(), values.size());
    return;
  }
  // bfloat16/float16 values into a float32 slot widen exactly: MLX keeps the state of a
  // half-precision parameter in its dtype, descent's default policy in float32.
  if (info.dtype == DType::Float32 && !is_learning_rate_key(t.name) &&
      (t.type == find_element_type("BF16") || t.type == find_element_type("F16"))) {
    std::vector<uint16_t> half(static_cast<std::size_t>(t.numel));  // aligned copy
    if (t.numel) std::memcpy(half.data(), t.data, half.size() * sizeof(uint16_t));
    std::vector<float> values(half.size());
    kernels::widen(t.type == find_element_type("BF16") ? DType::BFloat16 : DType::Float16,
                   static_cast<int64_t>(t.numel), half.data(), values.data());
    work.state_set(t.name, info.dtype, values.data(), values.size());
    return;
  }
  throw Error(DESCENT_ERR_DTYPE_MISMATCH, what + ": the file holds " + t.type->name +
                                              ", this optimizer's slot is " + want.name + " (" +
                                              dtype_name(info.dtype) + ")");
}

}  // namespace

// ---- saving --------------------------------------------------------------------------------

CheckpointWriter::CheckpointWriter(const Optimizer& optimizer) : optimizer_(optimizer) {
  const std::size_t n = optimizer.state_count();
  tensors_.reserve(n);
  dtypes_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& key = optimizer.state_key(i);
    const SlotInfo info = optimizer.state_info(key);
    const std::size_t bytes = static_cast<std::size_t>(numel(info.shape)) * dtype_size(info.dtype);
    tensors_.push_back(TensorHeader{key, &element_type_of(info.dtype), info.shape, bytes});
    dtypes_.push_back(info.dtype);
    size_ += bytes;
    largest_ = std::max(largest_, bytes);
  }
  const std::vector<std::pair<std::string, std::string>> metadata{
      {"format", kFormatName},
      {"format_version", kFormatVersion},
      {"kind", optimizer.kind()},
      {"config", optimizer.config_json()},
      {"descent_version", version_string()},
  };
  header_ = encode_safetensors_header(tensors_, metadata);
  size_ += header_.size();
}

void CheckpointWriter::write(ByteSink& sink) const {
  sink.write(header_.data(), header_.size());
  std::vector<unsigned char> scratch;
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    const TensorHeader& t = tensors_[i];
    const std::size_t count = t.bytes / t.type->size;
    if (void* out = sink.direct(t.bytes)) {
      optimizer_.state_get(t.name, dtypes_[i], out, count);
      sink.advance(t.bytes);
    } else {
      if (scratch.size() < t.bytes) scratch.resize(largest_);
      optimizer_.state_get(t.name, dtypes_[i], scratch.data(), count);
      sink.write(scratch.data(), t.bytes);
    }
  }
}

// ---- loading -------------------------------------------------------------------------------

void load_checkpoint(Optimizer& optimizer, const unsigned char* data, std::size_t size) {
  const SafetensorsView file = parse_safetensors(data, size);
  bool file_has_learning_rate = false;
  for (const auto& t : file.tensors) file_has_learning_rate |= t.name == kLearningRate;

  std::unique_ptr<Optimizer> work = optimizer.clone();
  const std::string* format = file.metadata.find("format");
  if (format && *format == kFormatName)
    apply_descent_metadata(*work, file.metadata, file_has_learning_rate);
  // Otherwise (MLX writes "__metadata__": null) the file holds state only and the optimizer
  // keeps the configuration its caller gave it.

  // First the counters the optimizer has now (step and learning_rate) and the learning rate,
  // which the file may supply. Per-parameter slots come next: they exist once the state is
  // initialised, as after MLX's init, laid out as the saved optimizer's were.
  KeySet known = state_keys(*work);
  std::vector<const TensorView*> later;
  for (const auto& t : file.tensors) {
    if ((known.count(t.name) && is_counter_key(t.name)) || t.name == kLearningRate)
      assign(*work, known, t);
    else
      later.push_back(&t);
  }
  if (!later.empty()) {
    KeySet in_file;
    for (const auto& t : file.tensors) in_file.insert(t.name);
    work->init_for_keys([&](std::string_view key) { return in_file.count(key) != 0; });
    known = state_keys(*work);
    for (const TensorView* t : later) {
      if (!known.count(t->name))
        throw Error(DESCENT_ERR_UNKNOWN_KEY,
                    "state " + quote_name(t->name) + " in the file does not exist in this '" +
                        work->kind() + "' optimizer (its state: " + keys_summary(*work) + ")");
      assign(*work, known, *t);
    }
  }
  // Every slot the optimizer has must come from the file.
  std::set<std::string_view> in_file;
  for (const auto& t : file.tensors) in_file.insert(t.name);
  for (std::size_t i = 0; i < work->state_count(); ++i)
    if (!in_file.count(work->state_key(i)))
      throw Error(DESCENT_ERR_UNKNOWN_KEY,
                  "state '" + work->state_key(i) + "' of this optimizer is missing from the file");
  optimizer.adopt(*work);
}

}  // namespace descent::state_io
