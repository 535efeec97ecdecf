#include "distributed/partition.h"

#include <algorithm>
#include <numeric>

namespace descent::dist {

ShardStyle shard_style(std::string_view kind) {
  if (kind == "adafactor") return ShardStyle::TensorsBySize;
  if (kind == "muon") return ShardStyle::TensorsByFlops;
  return ShardStyle::Elements;
}

namespace {

int64_t count_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// floor(r * total / world) without overflow, rounded down to kShardAlign (the last is total).
int64_t boundary(std::size_t r, std::size_t world, int64_t total) {
  if (r >= world) return total;
  __extension__ typedef unsigned __int128 wide;
  const auto b = static_cast<int64_t>(static_cast<wide>(total) * r / world);
  return b / kShardAlign * kShardAlign;
}

double cost_of(ShardStyle style, const Shape& s) {
  const double n = static_cast<double>(count_of(s));
  if (style == ShardStyle::TensorsByFlops && s.size() >= 2) {
    const double rows = static_cast<double>(s[0]);
    const double cols = n / std::max(rows, 1.0);
    return rows * cols * std::min(rows, cols);  // ~ flops of one Newton-Schulz iteration
  }
  return n;
}

}  // namespace

std::vector<Piece> partition(ShardStyle style, const std::vector<Shape>& shapes,
                             std::size_t world) {
  std::vector<Piece> pieces;
  const std::size_t n = shapes.size();
  if (style == ShardStyle::Elements) {
    int64_t total = 0;
    std::vector<int64_t> start(n);
    for (std::size_t i = 0; i < n; ++i) {
      start[i] = total;
      total += count_of(shapes[i]);
    }
    for (std::size_t r = 0; r < world; ++r) {
      const int64_t lo = boundary(r, world, total), hi = boundary(r + 1, world, total);
      if (lo >= hi) continue;
      for (std::size_t i = 0; i < n; ++i) {
        const int64_t b = std::max(lo, start[i]), e = std::min(hi, start[i] + count_of(shapes[i]));
        if (b < e) pieces.push_back({i, r, b - start[i], e - start[i]});
      }
    }
    for (std::size_t i = 0; i < n; ++i)  // tensors without elements: rank 0
      if (count_of(shapes[i]) == 0) pieces.push_back({i, 0, 0, 0});
  } else {
    // Longest processing time first: the costliest tensor to the least loaded rank (ties: the
    // lower index, the lower rank).
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::vector<double> cost(n);
    for (std::size_t i = 0; i < n; ++i) cost[i] = cost_of(style, shapes[i]);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
    std::vector<double> load(world, 0.0);
    std::vector<std::size_t> owner(n);
    for (std::size_t i : order) {
      const std::size_t r =
          static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
      owner[i] = r;
      load[r] += std::max(cost[i], 1.0);
    }
    for (std::size_t i = 0; i < n; ++i) {
      pieces.push_back({i, owner[i], 0, count_of(shapes[i])});
    }
  }
  std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) {
    return a.rank != b.rank ? a.rank < b.rank : a.param < b.param;
  });
  return pieces;
}

}  // namespace descent::dist
