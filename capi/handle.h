// What a descent_optimizer* points to: the C++ optimizer plus the handle's last error message.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/optimizer.h"

namespace descent::dist {
class Sharding;
}

struct descent_optimizer {
  // The optimizer this handle drives (use as opt->impl->...). A handle from
  // descent_optimizer_create owns it (`owned`); a group handle from descent_multi_group borrows a
  // group of a multi optimizer, which owns both the group and the handle.
  descent::Optimizer* impl = nullptr;
  std::unique_ptr<descent::Optimizer> owned;
  // Borrowed group handles: the multi handle they belong to and the group's index.
  const descent_optimizer* owner = nullptr;
  std::size_t group_index = 0;
  // A multi handle's group handles, created on first request; freed with it.
  std::vector<std::unique_ptr<descent_optimizer>> group_handles;
  std::string last_error;
  // Set while a call that may run this optimizer's callbacks is in progress (see guard.h).
  bool busy = false;
  // Set by descent_optimizer_shard (src/distributed): updates go through it.
  std::shared_ptr<descent::dist::Sharding> sharding;

  descent_optimizer* root() const { return const_cast<descent_optimizer*>(owner ? owner : this); }
};
