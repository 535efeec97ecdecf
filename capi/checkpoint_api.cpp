// Saving and resuming: the whole optimizer state as safetensors (docs/state-format.md).
#include <cstring>
#include <string>

#include "capi/guard.h"
#include "state_io/atomic_file.h"
#include "state_io/checkpoint.h"
#include "state_io/read_file.h"
#include "state_io/safetensors_format.h"

using descent::Error;
using descent::capi::guarded;
using descent::capi::guarded_mutation;
using descent::capi::require;
using descent::state_io::ByteSink;
using descent::state_io::CheckpointWriter;

namespace {

// Writes into a caller's buffer already checked to be large enough.
class BufferSink final : public ByteSink {
 public:
  explicit BufferSink(unsigned char* out) : out_(out) {}
  void write(const void* data, std::size_t n) override {
    if (n) std::memcpy(out_, data, n);
    out_ += n;
  }
  void* direct(std::size_t) override { return out_; }
  void advance(std::size_t n) override { out_ += n; }

 private:
  unsigned char* out_;
};

// Names the file in the message of an error that happened while loading it.
[[noreturn]] void rethrow_for(const char* path, const Error& e) {
  throw Error(e.status(), descent::state_io::quote_path(path) + ": " + e.what());
}

// A sharded optimizer holds only its shard: saving or loading it as one file would be wrong.
void refuse_sharded(const descent_optimizer* opt) {
  if (opt->root()->sharding)
    throw Error(DESCENT_ERR_INVALID_STATE,
                "the optimizer is sharded: each rank holds only its shard of the state, which "
                "descent_optimizer_save and _load cannot write or read as one file");
}

}  // namespace

extern "C" {

DESCENT_API descent_status descent_optimizer_save(const descent_optimizer* opt, const char* path) {
  return guarded(opt, [&] {
    require(opt, "opt");
    refuse_sharded(opt);
    require(path, "path");
    const CheckpointWriter writer(*opt->impl);
    descent::state_io::write_file_atomically(path, [&](ByteSink& sink) { writer.write(sink); });
  });
}

DESCENT_API descent_status descent_optimizer_load(descent_optimizer* opt, const char* path) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    refuse_sharded(opt);
    require(path, "path");
    if (!*path) throw Error(DESCENT_ERR_INVALID_ARGUMENT, "path is empty");
    const std::vector<unsigned char> bytes = descent::state_io::read_file(path);
    try {
      descent::state_io::load_checkpoint(*opt->impl, bytes.data(), bytes.size());
    } catch (const Error& e) {
      rethrow_for(path, e);
    }
  });
}

DESCENT_API descent_status descent_optimizer_save_to_buffer(const descent_optimizer* opt, void* buf,
                                                            size_t capacity, size_t* size) {
  return guarded(opt, [&] {
    require(opt, "opt");
    refuse_sharded(opt);
    require(size, "size");
    const CheckpointWriter writer(*opt->impl);
    if (buf) {
      if (capacity < writer.size())
        throw Error(DESCENT_ERR_BUFFER_TOO_SMALL,
                    "the state needs " + std::to_string(writer.size()) + " bytes, capacity is " +
                        std::to_string(capacity));
      BufferSink sink(static_cast<unsigned char*>(buf));
      writer.write(sink);
    }
    *size = writer.size();
  });
}

DESCENT_API descent_status descent_optimizer_load_from_buffer(descent_optimizer* opt,
                                                              const void* buf, size_t size) {
  return guarded_mutation(opt, "opt", [&] {
    require(opt, "opt");
    refuse_sharded(opt);
    if (size > 0) require(buf, "buf");
    descent::state_io::load_checkpoint(*opt->impl, static_cast<const unsigned char*>(buf), size);
  });
}

}  // extern "C"
