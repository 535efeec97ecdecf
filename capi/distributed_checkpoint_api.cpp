// Checkpoints of sharded optimizers (since 1.1): gathered and sharded saves, and loads that
// reshard to this world size. The protocols are in src/distributed/checkpoint.cpp.
#include <string>
#include <vector>

#include "capi/guard.h"
#include "distributed/checkpoint.h"
#include "distributed/sharding.h"
#include "state_io/atomic_file.h"
#include "state_io/checkpoint.h"
#include "state_io/read_file.h"
#include "state_io/safetensors_format.h"

using descent::Error;
using descent::capi::guarded;
using descent::capi::guarded_mutation;
using descent::capi::require;

namespace {

// The handle's sharding, after the checks every rank makes alike (before any collective).
descent::dist::Sharding* sharding_of(const descent_optimizer* opt, bool required) {
  if (opt->owner)
    throw Error(DESCENT_ERR_INVALID_STATE,
                "this handle is a group of a multi optimizer: checkpoint the multi optimizer");
  descent::dist::Sharding* s = opt->sharding.get();
  if (!s) {
    if (required)
      throw Error(DESCENT_ERR_INVALID_STATE,
                  "the optimizer is not sharded: sharded checkpoints are for sharded optimizers "
                  "(shard it, over a 1-rank collectives handle for a single process)");
    return nullptr;
  }
  if (s->collectives().running())
    throw Error(DESCENT_ERR_INVALID_STATE, "called from one of the collectives' callbacks");
  return s;
}

}  // namespace

extern "C" {

DESCENT_API descent_status descent_optimizer_save_gathered(const descent_optimizer* opt,
                                                           const char* path) {
  return guarded(opt, [&] {
    require(opt, "opt");
    if (auto* s = sharding_of(opt, false)) {
      descent::dist::save_gathered(*s, *opt->impl, path);
      return;
    }
    require(path, "path");
    const descent::state_io::CheckpointWriter writer(*opt->impl);
    descent::state_io::write_file_atomically(
        path, [&](descent::state_io::ByteSink& sink) { writer.write(sink); });
  });
}

DESCENT_API descent_status descent_optimizer_load_gathered(descent_optimizer* opt,
                                                           const char* path) {
  return guarded_mutation(opt, "opt", [&] {
    if (auto* s = sharding_of(opt, false)) {
      descent::dist::load_gathered(*s, *opt->impl, path);
      return;
    }
    require(path, "path");
    if (!*path) throw Error(DESCENT_ERR_INVALID_ARGUMENT, "path is empty");
    const std::vector<unsigned char> bytes = descent::state_io::read_file(path);
    try {
      descent::state_io::load_checkpoint(*opt->impl, bytes.data(), bytes.size());
    } catch (const Error& e) {
      throw Error(e.status(), descent::state_io::quote_path(path) + ": " + e.what());
    }
  });
}

DESCENT_API descent_status descent_optimizer_save_sharded(const descent_optimizer* opt,
                                                          const char* dir) {
  return guarded(opt, [&] {
    require(opt, "opt");
    descent::dist::save_sharded(*sharding_of(opt, true), *opt->impl, dir);
  });
}

DESCENT_API descent_status descent_optimizer_load_sharded(descent_optimizer* opt, const char* dir) {
  return guarded_mutation(
      opt, "opt", [&] { descent::dist::load_sharded(*sharding_of(opt, true), *opt->impl, dir); });
}

}  // extern "C"
