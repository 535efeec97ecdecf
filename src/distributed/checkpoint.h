// Checkpoints of a sharded optimizer (docs/distributed.md, "Checkpoints"): a gathered save to one
// file that is byte for byte the single-process optimizer's save, a sharded save (one file per
// rank plus an index written last), and loads of either that reshard to this world size. Every
// function is collective and all or nothing across ranks: a failure on any rank fails every rank
// and changes nothing (a load leaves the state as it was; a save leaves the previous checkpoint).
#pragma once

#include <string>

#include "core/optimizer.h"
#include "distributed/sharding.h"

namespace descent::dist {

// The name of the index file of a sharded checkpoint directory.
constexpr const char* kIndexName = "index.json";

void save_gathered(Sharding& sharding, const Optimizer& opt, const char* path);
void load_gathered(Sharding& sharding, Optimizer& opt, const char* path);
void save_sharded(Sharding& sharding, const Optimizer& opt, const char* dir);
void load_sharded(Sharding& sharding, Optimizer& opt, const char* dir);

}  // namespace descent::dist
