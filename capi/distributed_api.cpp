// The distributed part of the C API (since 1.1): collectives handles, sharding, the sharded
// clip and state sizes. The work is in src/distributed/.
#include <string>
#include <vector>

#include "capi/guard.h"
#include "distributed/clip_sharded.h"
#include "distributed/collectives.h"
#include "distributed/sharding.h"

using descent::Error;
using descent::capi::guarded;
using descent::capi::guarded_mutation;
using descent::capi::guarded_to;
using descent::capi::require;
using descent::dist::Collectives;

namespace descent::capi {
void check_clip_arguments(std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                          void* const* grads, double max_norm);
}

namespace {

Collectives& collectives_for_change(descent_collectives* coll) {
  require(coll, "coll");
  if (coll->impl->running())
    throw Error(DESCENT_ERR_INVALID_STATE,
                "one of the collectives handle's callbacks is running: it cannot be changed now");
  return *coll->impl;
}

template <class Fn>
void set_callback(descent::dist::Callback<Fn>& slot, Fn fn, void* user_data,
                  void (*free_user_data)(void*)) {
  if (!fn) throw Error(DESCENT_ERR_NULL_ARGUMENT, "fn is NULL");
  slot.release();
  slot.fn = fn;
  slot.user_data = user_data;
  slot.free_user_data = free_user_data;
}

}  // namespace

extern "C" {

DESCENT_API descent_status descent_collectives_create(size_t rank, size_t world_size,
                                                      descent_collectives** out, char* error,
                                                      size_t error_capacity) {
  return guarded_to(error, error_capacity, [&] {
    require(out, "out");
    if (world_size == 0) throw Error(DESCENT_ERR_INVALID_ARGUMENT, "world_size must be at least 1");
    if (rank >= world_size)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT, "rank " + std::to_string(rank) +
                                                    " is not below world_size " +
                                                    std::to_string(world_size));
    if (world_size > (size_t{1} << 24))
      throw Error(DESCENT_ERR_OUT_OF_RANGE, "world_size must be at most 2^24");
    auto handle = std::make_unique<descent_collectives>();
    handle->impl = std::make_shared<Collectives>(rank, world_size);
    *out = handle.release();
  });
}

DESCENT_API void descent_collectives_free(descent_collectives* coll) {
  delete coll;
}

DESCENT_API descent_status descent_collectives_rank(const descent_collectives* coll, size_t* rank,
                                                    size_t* world_size, char* error,
                                                    size_t error_capacity) {
  return descent::capi::guarded_to(error, error_capacity, [&] {
    require(coll, "coll");
    if (rank) *rank = coll->impl->rank();
    if (world_size) *world_size = coll->impl->world();
  });
}

DESCENT_API descent_status descent_collectives_set_allgatherv(descent_collectives* coll,
                                                              descent_allgatherv_fn fn,
                                                              void* user_data,
                                                              void (*free_user_data)(void*),
                                                              char* error, size_t error_capacity) {
  return descent::capi::guarded_to(error, error_capacity, [&] {
    set_callback(collectives_for_change(coll).gather(), fn, user_data, free_user_data);
  });
}

DESCENT_API descent_status descent_collectives_set_allreduce(descent_collectives* coll,
                                                             descent_allreduce_fn fn,
                                                             void* user_data,
                                                             void (*free_user_data)(void*),
                                                             char* error, size_t error_capacity) {
  return descent::capi::guarded_to(error, error_capacity, [&] {
    set_callback(collectives_for_change(coll).reduce(), fn, user_data, free_user_data);
  });
}

DESCENT_API descent_status descent_collectives_clip_grad_norm(
    descent_collectives* coll, size_t count, const descent_dtype* dtypes, const int64_t* numels,
    void* const* grads, double max_norm, double* total_norm, char* error, size_t error_capacity) {
  return guarded_to(error, error_capacity, [&] {
    require(coll, "coll");
    Collectives& c = *coll->impl;
    c.check_ready();
    if (c.running())
      throw Error(DESCENT_ERR_INVALID_STATE, "called from one of the handle's own callbacks");
    std::string message;
    const descent_status local = descent::dist::capture(message, [&] {
      descent::capi::check_clip_arguments(count, dtypes, numels, grads, max_norm);
    });
    const double total = descent::dist::clip_grad_norm_sharded(c, local, message, count, dtypes,
                                                               numels, grads, max_norm);
    if (total_norm) *total_norm = total;
  });
}

DESCENT_API descent_status descent_optimizer_shard(descent_optimizer* opt,
                                                   descent_collectives* coll) {
  return guarded_mutation(opt, "opt", [&] {
    require(coll, "coll");
    if (opt->owner)
      throw Error(DESCENT_ERR_INVALID_STATE,
                  "this handle is a group of a multi optimizer: shard the multi optimizer");
    if (opt->sharding) throw Error(DESCENT_ERR_INVALID_STATE, "the optimizer is already sharded");
    if (coll->impl->running())
      throw Error(DESCENT_ERR_INVALID_STATE, "called from one of the handle's own callbacks");
    opt->sharding = std::make_shared<descent::dist::Sharding>(coll->impl, *opt->impl);
  });
}

DESCENT_API descent_status descent_optimizer_shard_info(const descent_optimizer* opt, bool* sharded,
                                                        size_t* rank, size_t* world_size) {
  return guarded(opt, [&] {
    require(opt, "opt");
    const auto& s = opt->root()->sharding;
    if (sharded) *sharded = s != nullptr;
    if (rank) *rank = s ? s->rank() : 0;
    if (world_size) *world_size = s ? s->world() : 0;
  });
}

DESCENT_API descent_status descent_optimizer_state_bytes(const descent_optimizer* opt,
                                                         size_t* state_bytes,
                                                         size_t* scratch_bytes) {
  return guarded(opt, [&] {
    require(opt, "opt");
    const std::size_t state = opt->impl->state_bytes();
    std::size_t scratch = 0;
    if (!opt->owner && opt->sharding) scratch = opt->sharding->scratch_bytes(*opt->impl);
    if (state_bytes) *state_bytes = state;
    if (scratch_bytes) *scratch_bytes = scratch;
  });
}

}  // extern "C"
