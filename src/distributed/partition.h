// The partition plan of sharded optimizer state (docs/distributed.md): a pure function of the
// optimizer kind, the parameters' shapes and the world size, so that every rank computes the
// same plan and a checkpoint can be resharded by recomputing it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/shape.h"

namespace descent::dist {

enum class ShardStyle {
  Elements,       // contiguous element ranges of the concatenation (elementwise kinds)
  TensorsBySize,  // whole tensors, balanced by element count (adafactor)
  TensorsByFlops  // whole tensors, balanced by Newton-Schulz flops (muon)
};
ShardStyle shard_style(std::string_view kind);

// Element ranges are cut at multiples of this many elements of the concatenation.
constexpr int64_t kShardAlign = 16;

// One piece of one parameter, owned by one rank.
struct Piece {
  std::size_t param;  // index among the parameters given to partition()
  std::size_t rank;
  int64_t begin, end;  // elements of the parameter
};

// The pieces of the parameters of one update rule (numel and shape per parameter) over `world`
// ranks; a parameter without elements is one empty piece (rank 0 for element ranges).
// Deterministic.
std::vector<Piece> partition(ShardStyle style, const std::vector<Shape>& shapes, std::size_t world);

}  // namespace descent::dist
