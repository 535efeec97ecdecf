#include "distributed/sharding.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/multi_optimizer.h"
#include "core/tensor_list.h"

namespace descent::dist {

namespace {

constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash_string(uint64_t h, const std::string& s) {
  return fnv1a(h, s.c_str(), s.size() + 1);
}

template <class T>
uint64_t hash_value(uint64_t h, T v) {
  return fnv1a(h, &v, sizeof v);
}

std::string status_text(double code) {
  return descent_status_name(static_cast<descent_status>(static_cast<int>(code)));
}

descent_status status_of(double code) {
  return static_cast<descent_status>(static_cast<int>(code));
}

}  // namespace

void Sharding::agree(Collectives& coll, descent_status local, const std::string& local_message,
                     const char* what) {
  double v[2] = {static_cast<double>(local),
                 local != DESCENT_OK ? static_cast<double>(coll.rank()) + 1 : 0.0};
  coll.allreduce(v, 2, DESCENT_REDUCE_MAX);  // a failing callback throws here, on this rank
  if (local != DESCENT_OK) throw Error(local, local_message);
  if (v[0] > 0)
    throw Error(status_of(v[0]), std::string(what) + " failed on rank " +
                                     std::to_string(static_cast<long long>(v[1]) - 1) + " (" +
                                     status_text(v[0]) + "); nothing was changed on this rank");
}

Sharding::Sharding(std::shared_ptr<Collectives> coll, Optimizer& opt) : coll_(std::move(coll)) {
  Collectives& c = *coll_;
  c.check_ready();
  const std::size_t world = c.world();
  std::vector<OwnedRange> mine;
  uint64_t h_names = kFnvBasis, h_all = kFnvBasis;
  std::size_t n = 0;
  std::string message;
  const descent_status local = capture(message, [&] {
    if (opt.sharded()) throw Error(DESCENT_ERR_INVALID_STATE, "the optimizer is already sharded");
    if (opt.initialized())
      throw Error(DESCENT_ERR_INVALID_STATE,
                  "the state is already initialised: shard after declaring the parameters and "
                  "before init or the first update");
    n = opt.parameter_count();
    declared_.clear();
    for (std::size_t i = 0; i < n; ++i)
      declared_.push_back({opt.parameter_name(i), opt.parameter_dtype(i), opt.parameter_shape(i),
                           opt.parameter_numel(i)});
    // Groups: one per rule (a multi optimizer's groups as its filters assign them now).
    std::vector<std::size_t> group(n, 0);
    std::vector<std::string> kinds{opt.kind()};
    if (auto* m = dynamic_cast<MultiOptimizer*>(&opt)) {
      kinds.clear();
      for (std::size_t g = 0; g < m->group_count(); ++g) kinds.push_back(m->group(g).kind());
      for (std::size_t i = 0; i < n; ++i) group[i] = m->parameter_group(declared_[i].name);
    }
    group_ = group;
    kinds_ = kinds;
    multi_ = dynamic_cast<MultiOptimizer*>(&opt) != nullptr;
    pieces_ = plan(world);
    template_ = opt.clone();  // unsharded and uninitialised: checked above
    mine.assign(n, OwnedRange{0, 0, false});
    for (const Piece& p : pieces_)
      if (p.rank == c.rank()) mine[p.param] = OwnedRange{p.begin, p.end, true};
    // What every rank must agree on.
    h_all = hash_string(h_all, opt.kind());
    for (const std::string& k : kinds) h_all = hash_string(h_all, k);
    for (std::size_t i = 0; i < n; ++i) {
      const Declared& d = declared_[i];
      h_names = hash_string(h_names, d.name);
      h_all = hash_value(h_all, static_cast<int>(d.dtype));
      h_all = hash_value(h_all, d.shape.size());
      for (int64_t x : d.shape) h_all = hash_value(h_all, x);
      h_all = hash_value(h_all, group[i]);
    }
  });
  // Ranks distinct and the world size agreed (a sum), then the declarations (a max).
  double sums[2] = {1.0, static_cast<double>(c.rank())};
  c.allreduce(sums, 2, DESCENT_REDUCE_SUM);
  const double w = static_cast<double>(world);
  const bool ranks_ok = sums[0] == w && sums[1] == w * (w - 1) / 2;
  const double hn = hash_to_double(h_names), ha = hash_to_double(h_all);
  const double nn = static_cast<double>(n);
  double v[10] = {static_cast<double>(local),
                  local != DESCENT_OK ? c.rank() + 1.0 : 0.0,
                  nn,
                  -nn,
                  hn,
                  -hn,
                  ha,
                  -ha,
                  ranks_ok ? 0.0 : 1.0,
                  0.0};
  c.allreduce(v, 10, DESCENT_REDUCE_MAX);
  if (local != DESCENT_OK) throw Error(local, message);
  if (v[0] > 0)
    throw Error(status_of(v[0]), "descent_optimizer_shard failed on rank " +
                                     std::to_string(static_cast<long long>(v[1]) - 1) + " (" +
                                     status_text(v[0]) + ")");
  if (v[8] > 0)
    throw Error(
        DESCENT_ERR_INVALID_ARGUMENT,
        "the collectives handles disagree: " + std::to_string(static_cast<long long>(sums[0])) +
            " ranks called with world_size " + std::to_string(world) +
            ", or two ranks have the same rank");
  if (v[2] != -v[3])
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                "the ranks declared different numbers of parameters (between " +
                    std::to_string(static_cast<long long>(-v[3])) + " and " +
                    std::to_string(static_cast<long long>(v[2])) + "; this rank " +
                    std::to_string(n) + ")");
  if (v[4] != -v[5])
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                "the ranks declared parameters with different names or in a different order");
  if (v[6] != -v[7])
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                "the ranks declared parameters with different dtypes, shapes or groups, or "
                "optimizers of different kinds");
  // Everyone agreed: lay out the gather buffer and restrict the optimizer.
  piece_offset_.resize(pieces_.size());
  rank_bytes_.assign(world, 0);
  gather_bytes_ = 0;
  for (std::size_t k = 0; k < pieces_.size(); ++k) {
    const Piece& p = pieces_[k];
    // Padded to 8 bytes, so that every piece (float64 ones after an odd float32 one included)
    // is aligned for its element type.
    const std::size_t bytes =
        (static_cast<std::size_t>(p.end - p.begin) * dtype_size(declared_[p.param].dtype) + 7) / 8 *
        8;
    piece_offset_[k] = gather_bytes_;
    gather_bytes_ += bytes;
    rank_bytes_[p.rank] += bytes;
  }
  param_first_.assign(n + 1, 0);
  for (const Piece& p : pieces_) ++param_first_[p.param + 1];
  for (std::size_t i = 0; i < n; ++i) param_first_[i + 1] += param_first_[i];
  param_pieces_.assign(pieces_.size(), 0);
  std::vector<std::size_t> cursor(param_first_.begin(), param_first_.end() - 1);
  my_piece_.assign(n, kNone);
  for (std::size_t k = 0; k < pieces_.size(); ++k) {
    param_pieces_[cursor[pieces_[k].param]++] = k;
    if (pieces_[k].rank == c.rank()) my_piece_[pieces_[k].param] = k;
  }
  gather_ = Buffer(gather_bytes_);
  index_.reserve(n);
  seen_.assign(n, 0);
  shard_ptrs_.assign(n, nullptr);
  flat_indices_.resize(n);
  for (std::size_t i = 0; i < n; ++i) flat_indices_[i] = i;
  flat_params_.assign(n, nullptr);
  flat_grads_.assign(n, nullptr);
  opt.set_owned_ranges(mine);
}

std::vector<Piece> Sharding::plan(std::size_t world) const {
  const std::size_t n = declared_.size();
  std::vector<Piece> all;
  for (std::size_t g = 0; g < kinds_.size(); ++g) {
    std::vector<std::size_t> members;
    std::vector<Shape> shapes;
    for (std::size_t i = 0; i < n; ++i)
      if (group_[i] == g) {
        members.push_back(i);
        shapes.push_back(declared_[i].shape);
      }
    for (Piece p : partition(shard_style(kinds_[g]), shapes, world)) {
      p.param = members[p.param];
      all.push_back(p);
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const Piece& a, const Piece& b) {
    return a.rank != b.rank ? a.rank < b.rank : a.param < b.param;
  });
  return all;
}

uint64_t Sharding::plan_fingerprint(std::size_t world) const {
  uint64_t h = kFnvBasis;
  h = hash_value(h, world);
  for (const std::string& k : kinds_) h = hash_string(h, k);
  for (std::size_t i = 0; i < declared_.size(); ++i) {
    const Declared& d = declared_[i];
    h = hash_string(h, d.name);
    h = hash_value(h, static_cast<int>(d.dtype));
    h = hash_value(h, d.shape.size());
    for (int64_t x : d.shape) h = hash_value(h, x);
    h = hash_value(h, group_[i]);
  }
  for (const Piece& p : plan(world)) {
    h = hash_value(h, p.param);
    h = hash_value(h, p.rank);
    h = hash_value(h, p.begin);
    h = hash_value(h, p.end);
  }
  return h;
}

std::vector<OwnedRange> Sharding::ranges_of(const std::vector<Piece>& plan, std::size_t nparams,
                                            std::size_t rank) {
  std::vector<OwnedRange> out(nparams, OwnedRange{0, 0, false});
  for (const Piece& p : plan)
    if (p.rank == rank) out[p.param] = OwnedRange{p.begin, p.end, true};
  return out;
}

std::size_t Sharding::scratch_bytes(const Optimizer& opt) const {
  // The copy holds the state plus a few counters.
  std::size_t copy = 0;
  if (copy_sized_)
    for (const Buffer& b : copy_) copy += b.bytes();
  else
    copy = opt.state_bytes();
  return gather_bytes_ + copy;
}

void Sharding::take_copy(Optimizer& opt) {
  std::size_t k = 0;
  bool fits = copy_sized_;
  opt.for_each_state_block([&](void*, std::size_t bytes) {
    fits = fits && k < copy_.size() && copy_[k].bytes() == bytes;
    ++k;
  });
  if (!fits || k != copy_.size()) {  // the first step (or after a load): allocate once
    std::vector<Buffer> fresh;
    fresh.reserve(k);
    opt.for_each_state_block([&](void*, std::size_t bytes) { fresh.emplace_back(bytes); });
    copy_ = std::move(fresh);
    copy_sized_ = true;
  }
  k = 0;
  opt.for_each_state_block(
      [&](void* data, std::size_t bytes) { std::memcpy(copy_[k++].data(), data, bytes); });
  copy_taken_ = true;
}

void Sharding::restore_copy(Optimizer& opt) noexcept {
  if (!copy_taken_) return;
  std::size_t k = 0;
  opt.for_each_state_block([&](void* data, std::size_t bytes) {
    if (k < copy_.size() && copy_[k].bytes() == bytes) std::memcpy(data, copy_[k].data(), bytes);
    ++k;
  });
  copy_taken_ = false;
}

void Sharding::local_step(Optimizer& opt, std::size_t count, const std::size_t* indices,
                          const descent_dtype* dtypes, const int64_t* numels, void* const* params,
                          const void* const* grads) {
  check_tensor_list_arrays(count, indices, "indices", params, grads);
  check_tensor_list(count, indices, dtypes, numels, params, grads, declared_, seen_);
  opt.init();  // lazily, as MLX; throws (changing nothing) when not ready
  take_copy(opt);
  auto* gather = static_cast<unsigned char*>(gather_.data());
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t k = my_piece_[indices[i]];
    if (k == kNone) {
      shard_ptrs_[i] = nullptr;
      continue;
    }
    const Piece& p = pieces_[k];
    const std::size_t es = dtype_size(declared_[p.param].dtype);
    unsigned char* dst = gather + piece_offset_[k];
    const std::size_t bytes = static_cast<std::size_t>(p.end - p.begin) * es;
    if (bytes)  // an empty tensor's buffer may be NULL
      std::memcpy(
          dst,
          static_cast<const unsigned char*>(params[i]) + static_cast<std::size_t>(p.begin) * es,
          bytes);
    shard_ptrs_[i] = dst;
  }
  opt.step_sharded(count, indices, shard_ptrs_.data(), grads);
}

void Sharding::step(Optimizer& opt, std::size_t count, const std::size_t* indices,
                    void* const* params, const void* const* /*grads*/, descent_status local,
                    std::string message) {
  Collectives& c = *coll_;
  std::string gather_message;
  const descent_status gathered =
      capture(gather_message, [&] { c.allgatherv(gather_.data(), rank_bytes_.data()); });
  if (local == DESCENT_OK && gathered != DESCENT_OK) {
    local = gathered;
    message = std::move(gather_message);
  }
  uint64_t h = 0;
  if (local == DESCENT_OK)
    for (std::size_t i = 0; i < count; ++i) h += mix(indices[i]);
  const double hd = hash_to_double(h), sd = static_cast<double>(steps_);
  double v[6] = {
      static_cast<double>(local), local != DESCENT_OK ? c.rank() + 1.0 : 0.0, hd, -hd, sd, -sd};
  std::string vote_message;
  const descent_status voted =
      capture(vote_message, [&] { c.allreduce(v, 6, DESCENT_REDUCE_MAX); });
  if (voted != DESCENT_OK) {
    restore_copy(opt);
    throw Error(voted, vote_message +
                           " (the step's final agreement; this rank changed nothing, "
                           "others may have completed the step)");
  }
  if (local != DESCENT_OK) {
    restore_copy(opt);
    throw Error(local, message);
  }
  if (v[0] > 0) {
    restore_copy(opt);
    throw Error(status_of(v[0]), "the step failed on rank " +
                                     std::to_string(static_cast<long long>(v[1]) - 1) + " (" +
                                     status_text(v[0]) + "); nothing was changed");
  }
  if (v[4] != -v[5]) {
    restore_copy(opt);
    throw Error(DESCENT_ERR_INVALID_STATE,
                "the ranks disagree on the number of completed steps (a rank failed an earlier "
                "step's final agreement): load a checkpoint on every rank");
  }
  if (v[2] != -v[3]) {
    restore_copy(opt);
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                "the ranks updated different sets of parameters in this step; nothing was changed");
  }
  // Agreed: write every updated parameter from the gathered pieces.
  const auto* gather = static_cast<const unsigned char*>(gather_.data());
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t param = indices[i];
    const std::size_t es = dtype_size(declared_[param].dtype);
    for (std::size_t j = param_first_[param]; j < param_first_[param + 1]; ++j) {
      const std::size_t k = param_pieces_[j];
      const Piece& p = pieces_[k];
      const std::size_t bytes = static_cast<std::size_t>(p.end - p.begin) * es;
      if (bytes)  // an empty tensor's buffer may be NULL
        std::memcpy(static_cast<unsigned char*>(params[i]) + static_cast<std::size_t>(p.begin) * es,
                    gather + piece_offset_[k], bytes);
    }
  }
  copy_taken_ = false;
  ++steps_;
}

void Sharding::update_indexed(Optimizer& opt, std::size_t count, const std::size_t* indices,
                              const descent_dtype* dtypes, const int64_t* numels,
                              void* const* params, const void* const* grads) {
  std::string message;
  const descent_status local =
      capture(message, [&] { local_step(opt, count, indices, dtypes, numels, params, grads); });
  step(opt, count, indices, params, grads, local, std::move(message));
}

void Sharding::update(Optimizer& opt, std::size_t count, const char* const* names,
                      const descent_dtype* dtypes, const int64_t* numels, void* const* params,
                      const void* const* grads) {
  std::string message;
  const descent_status local = capture(message, [&] {
    check_tensor_list_arrays(count, names, "names", params, grads);
    index_.clear();
    if (count > index_.capacity())  // more tensors than parameters: a duplicate, found below
      index_.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      if (!names[i])
        throw Error(DESCENT_ERR_NULL_ARGUMENT, "names[" + std::to_string(i) + "] is NULL");
      index_.push_back(opt.parameter_index(names[i]));
    }
    local_step(opt, count, index_.data(), dtypes, numels, params, grads);
  });
  step(opt, count, index_.data(), params, grads, local, std::move(message));
}

void Sharding::update_flat(Optimizer& opt, void* params, const void* grads, std::size_t size) {
  std::string message;
  const std::size_t n = declared_.size();
  const descent_status local = capture(message, [&] {
    const std::size_t expected = opt.flat_size();
    if (size != expected)
      throw Error(DESCENT_ERR_SHAPE_MISMATCH,
                  "size is " + std::to_string(size) + " bytes, the flat layout of the " +
                      std::to_string(n) + " declared parameters has " + std::to_string(expected));
    if (size > 0 && (!params || !grads))
      throw Error(DESCENT_ERR_NULL_ARGUMENT,
                  std::string(!params ? "params" : "grads") + " is NULL");
    std::size_t align = 1;
    for (const Declared& d : declared_) align = std::max(align, dtype_size(d.dtype));
    const auto p = reinterpret_cast<std::uintptr_t>(params);
    const auto g = reinterpret_cast<std::uintptr_t>(grads);
    if (p % align || g % align)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT, std::string(p % align ? "params" : "grads") +
                                                    " is not aligned to " + std::to_string(align) +
                                                    " bytes (the largest element size declared)");
    if (size > 0 && p < g + size && g < p + size)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT, "the params and grads buffers overlap");
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t off = opt.flat_offset(i);
      flat_params_[i] = static_cast<unsigned char*>(params) + off;
      flat_grads_[i] = static_cast<const unsigned char*>(grads) + off;
    }
    local_step(opt, n, flat_indices_.data(), nullptr, nullptr, flat_params_.data(),
               flat_grads_.data());
  });
  step(opt, n, flat_indices_.data(), flat_params_.data(), flat_grads_.data(), local,
       std::move(message));
}

}  // namespace descent::dist
