// Sharded optimizer state (ZeRO-1) over host-provided collectives: the partition plan of a
// handle's optimizer, the step protocol (local step into a gather buffer, all-gatherv, one vote,
// then commit) and its scratch. docs/distributed.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/buffer.h"
#include "common/dtype.h"
#include "common/shape.h"
#include "core/optimizer.h"
#include "distributed/collectives.h"
#include "distributed/partition.h"

namespace descent::dist {

class Sharding {
 public:
  // Collective: plans, checks that every rank declared the same (one vote) and restricts
  // `opt` to this rank's shard. Throws on every rank when any rank fails.
  Sharding(std::shared_ptr<Collectives> coll, Optimizer& opt);

  // The update forms of the C API on a sharded optimizer. Collective.
  void update(Optimizer& opt, std::size_t count, const char* const* names,
              const descent_dtype* dtypes, const int64_t* numels, void* const* params,
              const void* const* grads);
  void update_indexed(Optimizer& opt, std::size_t count, const std::size_t* indices,
                      const descent_dtype* dtypes, const int64_t* numels, void* const* params,
                      const void* const* grads);
  void update_flat(Optimizer& opt, void* params, const void* grads, std::size_t size);

  Collectives& collectives() { return *coll_; }
  const std::shared_ptr<Collectives>& collectives_ptr() const { return coll_; }
  std::size_t rank() const { return coll_->rank(); }
  std::size_t world() const { return coll_->world(); }
  // Scratch bytes: the gather buffer plus the state copy (once allocated, else planned).
  std::size_t scratch_bytes(const Optimizer& opt) const;

  // The plan, for checkpoints: every piece of every parameter (sorted by rank, then parameter).
  const std::vector<Piece>& pieces() const { return pieces_; }
  // Agreement across ranks on a local outcome: every rank learns whether any failed. Returns
  // normally on every rank when all succeeded; otherwise throws on every rank (the local error
  // where this rank failed). Collective (one all-reduce).
  static void agree(Collectives& coll, descent_status local, const std::string& local_message,
                    const char* what);
  // Resets the count of completed steps (after a collective load).
  void reset_steps() { steps_ = 0; }

  // ---- for checkpoints (src/distributed/checkpoint.cpp) -------------------------------------
  // The plan of these declarations over any number of ranks (pieces sorted by rank, then
  // parameter): plan(world()) is pieces(). Deterministic, so a checkpoint saved on W ranks is
  // resharded by recomputing plan(W).
  std::vector<Piece> plan(std::size_t world) const;
  // A 64-bit fingerprint of plan(world) and of what it is computed from (kinds, names, dtypes,
  // shapes, groups): two optimizers with equal fingerprints lay out their shards alike.
  uint64_t plan_fingerprint(std::size_t world) const;
  // This rank's owned range of every parameter under a plan for `world` ranks.
  static std::vector<OwnedRange> ranges_of(const std::vector<Piece>& plan, std::size_t nparams,
                                           std::size_t rank);
  std::size_t parameter_count() const { return declared_.size(); }
  const std::string& parameter_name(std::size_t i) const { return declared_[i].name; }
  const Shape& parameter_shape(std::size_t i) const { return declared_[i].shape; }
  int64_t parameter_numel(std::size_t i) const { return declared_[i].numel; }
  std::size_t parameter_group(std::size_t i) const { return group_[i]; }
  bool multi() const { return multi_; }
  // An unsharded, uninitialised copy of the optimizer taken when it was sharded (same kind,
  // declarations, groups and filters): a gathered save loads the whole state into a clone of it
  // and writes that exactly as the single-process optimizer would.
  const Optimizer& unsharded_template() const { return *template_; }

 private:
  struct Declared {  // for check_tensor_list
    std::string name;
    DType dtype;
    Shape shape;
    int64_t numel;
  };
  void step(Optimizer& opt, std::size_t count, const std::size_t* indices, void* const* params,
            const void* const* grads, descent_status early, std::string early_message);
  void local_step(Optimizer& opt, std::size_t count, const std::size_t* indices,
                  const descent_dtype* dtypes, const int64_t* numels, void* const* params,
                  const void* const* grads);
  void take_copy(Optimizer& opt);
  void restore_copy(Optimizer& opt) noexcept;

  std::shared_ptr<Collectives> coll_;
  std::vector<Declared> declared_;
  std::vector<std::size_t> group_;  // per parameter: its group (0 unless multi)
  std::vector<std::string> kinds_;  // per group: its kind
  bool multi_ = false;
  std::unique_ptr<Optimizer> template_;
  std::vector<Piece> pieces_;              // sorted by rank, then parameter
  std::vector<std::size_t> piece_offset_;  // per piece: byte offset in the gather buffer
  std::vector<std::size_t> param_pieces_;  // piece ids grouped by parameter
  std::vector<std::size_t> param_first_;   // per parameter + 1: start in param_pieces_
  std::vector<std::size_t> my_piece_;      // per parameter: this rank's piece id or SIZE_MAX
  std::vector<std::size_t> rank_bytes_;    // per rank: bytes of its segment
  std::size_t gather_bytes_ = 0;
  Buffer gather_;
  // The copy of the state taken before each step (restored if the step is voted down).
  std::vector<Buffer> copy_;
  bool copy_sized_ = false;
  bool copy_taken_ = false;
  uint64_t steps_ = 0;  // completed steps, compared across ranks in each vote
  // Per-step scratch (sized at construction: a step does not allocate).
  std::vector<std::size_t> index_;
  std::vector<unsigned char> seen_;
  std::vector<void*> shard_ptrs_;
  std::vector<std::size_t> flat_indices_;
  std::vector<void*> flat_params_;
  std::vector<const void*> flat_grads_;
};

}  // namespace descent::dist
