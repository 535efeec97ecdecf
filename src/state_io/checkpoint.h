// An optimizer's state as safetensors, by MLX's tree_flatten keys (see docs/state-format.md).
//
// Saving writes every state slot (step, learning_rate, "<param>.<slot>", ...) with descent's
// metadata: format, format_version, kind, config (Optimizer::config_json) and descent_version.
// Loading accepts descent's files and files MLX writes (no metadata: state only), checks every
// tensor against the optimizer, and applies everything to a clone that is adopted only when all
// of it succeeded.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/optimizer.h"
#include "state_io/byte_sink.h"
#include "state_io/safetensors_writer.h"

namespace descent::state_io {

// Values of the metadata keys descent writes.
constexpr const char* kFormatName = "descent";
constexpr const char* kFormatVersion = "1";

// Everything a save needs, gathered (and validated) before the first byte is written.
class CheckpointWriter {
 public:
  explicit CheckpointWriter(const Optimizer& optimizer);
  // Total bytes write() produces.
  std::size_t size() const { return size_; }
  // The header, then every slot's bytes.
  void write(ByteSink& sink) const;

 private:
  const Optimizer& optimizer_;
  std::vector<TensorHeader> tensors_;
  std::vector<DType> dtypes_;
  std::string header_;
  std::size_t size_ = 0;
  std::size_t largest_ = 0;
};

// Loads `size` bytes of safetensors into `optimizer`, all or nothing. Throws descent::Error:
// DESCENT_ERR_CORRUPT (malformed container or descent metadata), DESCENT_ERR_INVALID_ARGUMENT
// (a descent file of another kind), DESCENT_ERR_UNSUPPORTED (a newer format_version),
// DESCENT_ERR_UNKNOWN_KEY (the key sets differ), DESCENT_ERR_DTYPE_MISMATCH,
// DESCENT_ERR_SHAPE_MISMATCH, or what configuring the optimizer from the file throws.
void load_checkpoint(Optimizer& optimizer, const unsigned char* data, std::size_t size);

}  // namespace descent::state_io
