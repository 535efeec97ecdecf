// descent_clip_grad_norm over ranks that each hold the full gradients: each rank sums the
// squares of the tensors it is assigned, one all-reduce shares the per-tensor sums, and every
// rank combines them in the single-process order: bitwise the single-process result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "distributed/collectives.h"

namespace descent::dist {

// `local`/`message`: the outcome of this rank's argument checks (the arguments are only read
// when every rank's checks passed). Collective; throws on every rank when any rank failed.
double clip_grad_norm_sharded(Collectives& coll, descent_status local, const std::string& message,
                              std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                              void* const* grads, double max_norm);

}  // namespace descent::dist
