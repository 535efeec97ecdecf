#include "distributed/checkpoint.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "common/utf8.h"
#include "config/json_parse.h"
#include "state_io/atomic_file.h"
#include "state_io/checkpoint.h"
#include "state_io/read_file.h"
#include "state_io/safetensors_format.h"
#include "state_io/safetensors_writer.h"

namespace descent::dist {

namespace {

using state_io::ByteSink;
using state_io::ElementType;
using state_io::SafetensorsView;
using state_io::TensorHeader;
using state_io::TensorView;

constexpr const char* kIndexFormat = "descent-sharded-checkpoint";
constexpr int kIndexVersion = 1;
constexpr const char* kShardPrefix = "shard-g";

descent_status status_of(double code) {
  return static_cast<descent_status>(static_cast<int>(code));
}

// ---- sinks ---------------------------------------------------------------------------------

class VectorSink final : public ByteSink {
 public:
  explicit VectorSink(std::vector<unsigned char>& out) : out_(out) {}
  void write(const void* data, std::size_t n) override {
    const auto* p = static_cast<const unsigned char*>(data);
    out_.insert(out_.end(), p, p + n);
  }

 private:
  std::vector<unsigned char>& out_;
};

// Forwards to another sink, counting the bytes and their FNV-1a 64 checksum.
class HashingSink final : public ByteSink {
 public:
  explicit HashingSink(ByteSink& to) : to_(to) {}
  void write(const void* data, std::size_t n) override {
    to_.write(data, n);
    hash_ = fnv1a(hash_, data, n);
    bytes_ += n;
  }
  uint64_t hash() const { return hash_; }
  uint64_t bytes() const { return bytes_; }

 private:
  ByteSink& to_;
  uint64_t hash_ = kFnvBasis;
  uint64_t bytes_ = 0;
};

std::vector<unsigned char> serialise(const Optimizer& opt) {
  const state_io::CheckpointWriter writer(opt);
  std::vector<unsigned char> out;
  out.reserve(writer.size());
  VectorSink sink(out);
  writer.write(sink);
  return out;
}

std::string hex64(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string shard_name(uint64_t generation, std::size_t rank, std::size_t world) {
  return kShardPrefix + std::to_string(generation) + "-r" + std::to_string(rank) + "-of-" +
         std::to_string(world) + ".safetensors";
}

// The generation in a file name this code writes ("shard-g<gen>-r..."), or 0.
uint64_t generation_in_name(const std::string& name) {
  if (name.compare(0, std::strlen(kShardPrefix), kShardPrefix) != 0) return 0;
  uint64_t g = 0;
  std::size_t i = std::strlen(kShardPrefix);
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return 0;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && g < (uint64_t{1} << 50); ++i)
    g = g * 10 + static_cast<uint64_t>(name[i] - '0');
  return name.compare(i, 2, "-r") == 0 ? g : 0;
}

void check_path(const char* path, const char* what) {
  if (!path) throw Error(DESCENT_ERR_NULL_ARGUMENT, std::string(what) + " is NULL");
  if (!*path) throw Error(DESCENT_ERR_INVALID_ARGUMENT, std::string(what) + " is empty");
  check_utf8(path, what);
}

// A collective protocol in stages. Every rank makes the same sequence of collective calls
// whatever happens locally, so that a failure on one rank never leaves its peers waiting:
//  - local(f): work without communication, skipped once this rank has failed;
//  - exchange(f): a collective call, made unless the ranks have agreed to abort;
//  - vote(): one all-reduce of every rank's outcome. A failure reported by the vote is known to
//    every rank alike (aborted: the remaining stages are skipped everywhere). A vote whose own
//    callback fails on this rank only makes this rank fail; it keeps taking part in the
//    exchanges that follow and votes its failure at the next vote.
class Protocol {
 public:
  Protocol(Collectives& c, const char* what) : c_(c), what_(what) {}
  template <class F>
  void local(F&& f) {
    if (status_ == DESCENT_OK) fold(capture(message_, std::forward<F>(f)));
  }
  template <class F>
  void exchange(F&& f) {
    if (aborted_) return;
    std::string m;
    const descent_status s = capture(m, std::forward<F>(f));
    if (status_ == DESCENT_OK && s != DESCENT_OK) {
      status_ = s;
      message_ = std::move(m);
    }
  }
  // `h`: a value every rank must hold alike (compared as max(h) == -max(-h)); `m`: a value
  // reduced by max, returned through *m.
  bool vote(double h = 0, double* m = nullptr, const char* differ = nullptr) {
    if (aborted_) return false;
    double v[5] = {static_cast<double>(status_), status_ != DESCENT_OK ? c_.rank() + 1.0 : 0.0, h,
                   -h, m ? *m : 0.0};
    std::string vm;
    const descent_status s = capture(vm, [&] { c_.allreduce(v, 5, DESCENT_REDUCE_MAX); });
    if (s != DESCENT_OK) {
      if (status_ == DESCENT_OK) {
        status_ = s;
        message_ = vm;
      }
      return false;
    }
    if (v[0] > 0) {
      aborted_ = true;
      if (status_ == DESCENT_OK) {
        status_ = status_of(v[0]);
        message_ = std::string(what_) + " failed on rank " +
                   std::to_string(static_cast<long long>(v[1]) - 1) + " (" +
                   descent_status_name(status_) + "); nothing was changed on this rank";
      }
      return false;
    }
    if (v[2] != -v[3]) {
      aborted_ = true;
      status_ = DESCENT_ERR_INVALID_ARGUMENT;
      message_ = differ ? differ : "the ranks disagree";
      return false;
    }
    if (m) *m = v[4];
    return true;
  }
  bool ok() const { return status_ == DESCENT_OK; }
  bool aborted() const { return aborted_; }
  void finish() const {
    if (status_ != DESCENT_OK) throw Error(status_, message_);
  }

 private:
  void fold(descent_status s) {
    if (s != DESCENT_OK) status_ = s;
  }
  Collectives& c_;
  const char* what_;
  descent_status status_ = DESCENT_OK;
  std::string message_;
  bool aborted_ = false;
};

// ---- resharding ----------------------------------------------------------------------------

// Which parameter a state key is a slot of ("<param>.<slot>", "states.<g>.<param>.<slot>" in a
// multi optimizer, the parameter in group g), or SIZE_MAX for the counters and unknown keys.
class KeyMap {
 public:
  explicit KeyMap(const Sharding& s) : s_(s) {
    for (std::size_t i = 0; i < s.parameter_count(); ++i) index_.emplace(s.parameter_name(i), i);
  }
  std::size_t param_of(std::string_view key) const {
    std::size_t group = 0;
    if (s_.multi()) {
      constexpr std::string_view states = "states.";
      if (key.substr(0, states.size()) != states) return kNone;
      key.remove_prefix(states.size());
      const std::size_t dot = key.find('.');
      if (dot == 0 || dot == std::string_view::npos || dot > 9) return kNone;
      for (char ch : key.substr(0, dot)) {
        if (ch < '0' || ch > '9') return kNone;
        group = group * 10 + static_cast<std::size_t>(ch - '0');
      }
      key.remove_prefix(dot + 1);
    }
    const std::size_t dot = key.rfind('.');
    if (dot == std::string_view::npos) return kNone;
    const auto it = index_.find(std::string(key.substr(0, dot)));
    if (it == index_.end() || s_.parameter_group(it->second) != group) return kNone;
    return it->second;
  }
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

 private:
  const Sharding& s_;
  std::unordered_map<std::string, std::size_t> index_;
};

// The files of a saved set, by the rank that wrote it under `plan` (nullptr: not read).
struct SavedSet {
  std::size_t world = 1;
  std::vector<Piece> plan;
  std::vector<const SafetensorsView*> files;
  std::vector<std::string> labels;  // for messages: the file names
};

// The old ranks whose files hold a part of what `mine` owns (at least one: every file holds the
// counters and the metadata).
std::vector<std::size_t> needed_ranks(const Sharding& s, const std::vector<Piece>& plan,
                                      std::size_t world, const std::vector<OwnedRange>& mine) {
  std::vector<unsigned char> need(world, 0);
  for (const Piece& p : plan) {
    const OwnedRange& r = mine[p.param];
    if (!r.owned) continue;
    const bool empty = s.parameter_numel(p.param) == 0;
    if (empty || std::max(p.begin, r.begin) < std::min(p.end, r.end)) need[p.rank] = 1;
  }
  std::vector<std::size_t> out;
  for (std::size_t r = 0; r < world; ++r)
    if (need[r]) out.push_back(r);
  if (out.empty()) out.push_back(0);
  return out;
}

// The safetensors bytes of the shard `mine` (this rank's owned ranges under the new plan) built
// from a saved set: counters and descent metadata as the first file holds them, every slot of
// an owned parameter cut from or assembled out of the saved pieces. Keys that are no parameter's
// slot pass through, so that loading the result refuses them as a single-process load would.
std::vector<unsigned char> reshard(const Sharding& s, const SavedSet& set,
                                   const std::vector<OwnedRange>& mine) {
  const KeyMap keys(s);
  const std::size_t n = s.parameter_count();
  std::vector<std::vector<const Piece*>> old_piece(n,
                                                   std::vector<const Piece*>(set.world, nullptr));
  for (const Piece& p : set.plan) old_piece[p.param][p.rank] = &p;

  struct Out {
    TensorHeader header;
    std::vector<unsigned char> data;
    int64_t covered = 0, wanted = 0;
  };
  std::vector<Out> out;
  std::map<std::string, std::size_t, std::less<>> where;
  const SafetensorsView* first = nullptr;
  for (std::size_t r = 0; r < set.world; ++r) {
    const SafetensorsView* file = set.files[r];
    if (!file) continue;
    const std::string& label = set.labels[r];
    const bool is_first = first == nullptr;
    if (is_first) first = file;
    for (const TensorView& t : file->tensors) {
      const std::size_t p = keys.param_of(t.name);
      if (p == KeyMap::kNone) {  // counters (the same in every file) and unknown keys
        if (is_first) {
          where.emplace(t.name, out.size());
          out.push_back(
              Out{TensorHeader{t.name, t.type, t.shape, static_cast<std::size_t>(t.end - t.begin)},
                  std::vector<unsigned char>(t.data, t.data + (t.end - t.begin)), 0, 0});
        }
        continue;
      }
      const OwnedRange nr = mine[p];
      if (!nr.owned) continue;
      const Piece* op = old_piece[p][r];
      if (!op)
        throw Error(DESCENT_ERR_CORRUPT, label + ": state " + state_io::quote_name(t.name) +
                                             " belongs to a parameter that rank " +
                                             std::to_string(r) + " did not hold");
      const int64_t numel = s.parameter_numel(p);
      const bool old_whole = op->begin == 0 && op->end == numel;
      const bool new_whole = nr.begin == 0 && nr.end == numel;
      const std::size_t es = t.type->size;
      auto found = where.find(t.name);
      if (old_whole && new_whole) {  // the slot as saved, whatever its shape
        if (found != where.end())
          throw Error(DESCENT_ERR_CORRUPT, label + ": state " + state_io::quote_name(t.name) +
                                               " is held by more than one shard file");
        where.emplace(t.name, out.size());
        out.push_back(
            Out{TensorHeader{t.name, t.type, t.shape, static_cast<std::size_t>(t.end - t.begin)},
                std::vector<unsigned char>(t.data, t.data + (t.end - t.begin)), 1, 1});
        continue;
      }
      // Element ranges: the slot has the parameter's shape (the elementwise kinds).
      if (old_whole ? t.shape != s.parameter_shape(p)
                    : (t.shape.size() != 1 || t.shape[0] != op->end - op->begin))
        throw Error(DESCENT_ERR_SHAPE_MISMATCH,
                    label + ": state " + state_io::quote_name(t.name) + " has shape " +
                        shape_string(t.shape) + ", resharding needs " +
                        (old_whole ? shape_string(s.parameter_shape(p))
                                   : "(" + std::to_string(op->end - op->begin) + ",)") +
                        " (the parameter's elements " + std::to_string(op->begin) + " to " +
                        std::to_string(op->end) + ")");
      const int64_t lo = std::max(op->begin, nr.begin), hi = std::min(op->end, nr.end);
      if (lo >= hi) continue;
      if (found == where.end()) {
        const Shape shape = new_whole ? s.parameter_shape(p) : Shape{nr.end - nr.begin};
        const std::size_t bytes = static_cast<std::size_t>(nr.end - nr.begin) * es;
        found = where.emplace(t.name, out.size()).first;
        out.push_back(Out{TensorHeader{t.name, t.type, shape, bytes},
                          std::vector<unsigned char>(bytes), 0, nr.end - nr.begin});
      }
      Out& o = out[found->second];
      if (o.header.type != t.type)
        throw Error(DESCENT_ERR_CORRUPT, label + ": state " + state_io::quote_name(t.name) +
                                             " has dtype " + t.type->name +
                                             " in one shard file and " + o.header.type->name +
                                             " in another");
      std::memcpy(o.data.data() + static_cast<std::size_t>(lo - nr.begin) * es,
                  t.data + static_cast<std::size_t>(lo - op->begin) * es,
                  static_cast<std::size_t>(hi - lo) * es);
      o.covered += hi - lo;
    }
  }
  for (const Out& o : out)
    if (o.covered != o.wanted)
      throw Error(DESCENT_ERR_CORRUPT, "state " + state_io::quote_name(o.header.name) +
                                           " is incomplete in the saved files (" +
                                           std::to_string(o.covered) + " of the " +
                                           std::to_string(o.wanted) + " elements needed)");
  std::vector<TensorHeader> headers;
  headers.reserve(out.size());
  std::size_t total = 0;
  for (const Out& o : out) {
    headers.push_back(o.header);
    total += o.data.size();
  }
  std::vector<std::pair<std::string, std::string>> metadata;
  if (first && first->metadata.present) metadata = first->metadata.entries;
  const std::string header = state_io::encode_safetensors_header(headers, metadata);
  std::vector<unsigned char> blob;
  blob.reserve(header.size() + total);
  blob.insert(blob.end(), header.begin(), header.end());
  for (const Out& o : out) blob.insert(blob.end(), o.data.begin(), o.data.end());
  return blob;
}

// Loads `blob` (this rank's shard) into a clone of opt; the caller adopts it after the vote.
std::unique_ptr<Optimizer> prepared(const Optimizer& opt, const std::vector<unsigned char>& blob) {
  std::unique_ptr<Optimizer> work = opt.clone();
  state_io::load_checkpoint(*work, blob.data(), blob.size());
  return work;
}

// The identity of a file's contents for the agreement that every rank read the same one: a
// 64-bit hash of every byte, eight at a time (a few GB/s), and the size.
double content_hash(const std::vector<unsigned char>& bytes) {
  uint64_t h = kFnvBasis ^ bytes.size();
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  h = fnv1a(h, bytes.data() + i, bytes.size() - i);
  return hash_to_double(h);
}

void commit(Sharding& s, Optimizer& opt, std::unique_ptr<Optimizer>& work) {
  opt.adopt(*work);
  s.reset_steps();
}

// ---- the sharded save's directory ----------------------------------------------------------

// The largest generation in the directory: the index's and any shard file's (a save that
// crashed may have left files of a generation its index never named).
uint64_t latest_generation(const std::string& dir) {
  uint64_t g = 0;
  DIR* d = opendir(dir.c_str());
  if (!d)
    throw Error(DESCENT_ERR_IO,
                state_io::quote_path(dir) + ": cannot open the directory: " + std::strerror(errno));
  while (const dirent* e = readdir(d))
    if (e->d_type != DT_DIR) g = std::max(g, generation_in_name(e->d_name));
  closedir(d);
  try {
    const std::vector<unsigned char> bytes = state_io::read_file(join(dir, kIndexName));
    const nlohmann::json doc = parse_json(std::string(bytes.begin(), bytes.end()), "index");
    if (doc.is_object() && doc.contains("generation") && doc["generation"].is_number_unsigned())
      g = std::max(g, doc["generation"].get<uint64_t>());
  } catch (const Error&) {
    // No index yet (or an unreadable one, which this save replaces).
  }
  return g;
}

// Removes shard files of generations before `keep` (after the index naming `keep` is durable).
void remove_older(const std::string& dir, uint64_t keep) noexcept {
  try {
    std::vector<std::string> stale;
    if (DIR* d = opendir(dir.c_str())) {
      while (const dirent* e = readdir(d)) {
        const uint64_t g = e->d_type == DT_DIR ? 0 : generation_in_name(e->d_name);
        if (g && g < keep) stale.emplace_back(e->d_name);
      }
      closedir(d);
    }
    for (const std::string& name : stale) ::unlink(join(dir, name).c_str());
  } catch (...) {
  }
}

struct Index {
  std::string kind;
  std::size_t world = 0;
  uint64_t generation = 0;
  std::string plan;
  struct Shard {
    std::string file;
    uint64_t bytes = 0;
    std::string checksum;
  };
  std::vector<Shard> shards;
};

Index parse_index(const std::vector<unsigned char>& bytes, const std::string& label) {
  const std::string text(bytes.begin(), bytes.end());
  nlohmann::json doc;
  try {
    doc = parse_json(text, label);
  } catch (const Error& e) {
    throw Error(DESCENT_ERR_CORRUPT, e.what());
  }
  auto bad = [&](const std::string& what) -> Error {
    return Error(DESCENT_ERR_CORRUPT, label + ": " + what);
  };
  if (!doc.is_object()) throw bad("not a JSON object");
  auto field = [&](const nlohmann::json& o, const char* key) -> const nlohmann::json& {
    const auto it = o.find(key);
    if (it == o.end()) throw bad(std::string("lacks \"") + key + "\"");
    return *it;
  };
  const auto& format = field(doc, "format");
  if (!format.is_string() || format.get<std::string>() != kIndexFormat)
    throw bad(std::string("\"format\" is not \"") + kIndexFormat + "\"");
  const auto& version = field(doc, "format_version");
  if (!version.is_number_unsigned()) throw bad("\"format_version\" is not a version number");
  if (version.get<uint64_t>() != kIndexVersion)
    throw Error(DESCENT_ERR_UNSUPPORTED, label + ": format_version " +
                                             std::to_string(version.get<uint64_t>()) +
                                             " is not supported (this library reads version 1)");
  Index ix;
  const auto& kind = field(doc, "kind");
  const auto& world = field(doc, "world_size");
  const auto& gen = field(doc, "generation");
  const auto& plan = field(doc, "plan");
  const auto& shards = field(doc, "shards");
  if (!kind.is_string()) throw bad("\"kind\" is not a string");
  if (!world.is_number_unsigned() || world.get<uint64_t>() < 1 ||
      world.get<uint64_t>() > (1u << 24))
    throw bad("\"world_size\" is not an integer in [1, 2^24]");
  if (!gen.is_number_unsigned()) throw bad("\"generation\" is not an unsigned integer");
  if (!plan.is_string() || plan.get<std::string>().size() != 16)
    throw bad("\"plan\" is not 16 hex digits");
  ix.kind = kind.get<std::string>();
  ix.world = static_cast<std::size_t>(world.get<uint64_t>());
  ix.generation = gen.get<uint64_t>();
  ix.plan = plan.get<std::string>();
  if (!shards.is_array() || shards.size() != ix.world)
    throw bad("\"shards\" is not an array of world_size entries");
  for (std::size_t r = 0; r < ix.world; ++r) {
    const auto& e = shards[r];
    if (!e.is_object()) throw bad("shards[" + std::to_string(r) + "] is not an object");
    const auto& rank = field(e, "rank");
    const auto& file = field(e, "file");
    const auto& size = field(e, "bytes");
    const auto& sum = field(e, "fnv1a64");
    if (!rank.is_number_unsigned() || rank.get<uint64_t>() != r)
      throw bad("shards[" + std::to_string(r) + "].rank is not " + std::to_string(r));
    if (!file.is_string() || file.get<std::string>().empty() ||
        file.get<std::string>().find('/') != std::string::npos || file.get<std::string>() == "." ||
        file.get<std::string>() == "..")
      throw bad("shards[" + std::to_string(r) + "].file is not a file name in the directory");
    if (!size.is_number_unsigned())
      throw bad("shards[" + std::to_string(r) + "].bytes is not a size");
    if (!sum.is_string() || sum.get<std::string>().size() != 16)
      throw bad("shards[" + std::to_string(r) + "].fnv1a64 is not 16 hex digits");
    ix.shards.push_back({file.get<std::string>(), size.get<uint64_t>(), sum.get<std::string>()});
  }
  return ix;
}

}  // namespace

// ---- gathered ------------------------------------------------------------------------------

void save_gathered(Sharding& s, const Optimizer& opt, const char* path) {
  Collectives& c = s.collectives();
  const std::size_t world = c.world(), rank = c.rank();
  Protocol run(c, "descent_optimizer_save_gathered");
  std::vector<unsigned char> mine;
  run.local([&] {
    check_path(path, "path");
    mine = serialise(opt);  // this rank's shard, as safetensors
  });
  run.vote();
  // Sizes (a sum: one non-zero per entry), then one all-gatherv of every shard.
  std::vector<double> sizes(world, 0.0);
  sizes[rank] = static_cast<double>(mine.size());
  std::vector<std::size_t> bytes(world, 0);
  std::vector<unsigned char> all;
  run.exchange([&] {
    c.allreduce(sizes.data(), world, DESCENT_REDUCE_SUM);
    std::size_t total = 0;
    for (std::size_t r = 0; r < world; ++r) total += bytes[r] = static_cast<std::size_t>(sizes[r]);
    all.resize(total);
  });
  run.vote();
  run.exchange([&] {
    std::size_t offset = 0;
    for (std::size_t r = 0; r < rank; ++r) offset += bytes[r];
    if (bytes[rank] != mine.size() || all.size() < offset + mine.size())
      throw Error(DESCENT_ERR_INTERNAL, "the gathered sizes are inconsistent");
    if (!mine.empty()) std::memcpy(all.data() + offset, mine.data(), mine.size());
    c.allgatherv(all.data(), bytes.data());
  });
  run.vote();
  // Rank 0 assembles the whole state in an unsharded optimizer and saves that.
  run.local([&] {
    if (rank != 0) return;
    std::vector<unsigned char> full;
    {
      std::vector<SafetensorsView> views;
      views.reserve(world);
      SavedSet set;
      set.world = world;
      set.plan = s.pieces();
      std::size_t off = 0;
      for (std::size_t r = 0; r < world; ++r) {
        views.push_back(state_io::parse_safetensors(all.data() + off, bytes[r]));
        off += bytes[r];
        set.labels.push_back("the shard of rank " + std::to_string(r));
      }
      for (const SafetensorsView& v : views) set.files.push_back(&v);
      full = reshard(s, set, Sharding::ranges_of(s.plan(1), s.parameter_count(), 0));
    }
    std::vector<unsigned char>().swap(all);
    const std::unique_ptr<Optimizer> single = prepared(s.unsharded_template(), full);
    const state_io::CheckpointWriter writer(*single);
    state_io::write_file_atomically(path, [&](ByteSink& sink) { writer.write(sink); });
  });
  run.vote();
  run.finish();
}

void load_gathered(Sharding& s, Optimizer& opt, const char* path) {
  Protocol run(s.collectives(), "descent_optimizer_load_gathered");
  std::unique_ptr<Optimizer> work;
  double h = 0;
  run.local([&] {
    check_path(path, "path");
    const std::vector<unsigned char> bytes = state_io::read_file(path);
    h = content_hash(bytes);
    try {
      const SafetensorsView view = state_io::parse_safetensors(bytes.data(), bytes.size());
      SavedSet set;
      set.plan = s.plan(1);
      set.files = {&view};
      set.labels = {"the file"};
      work = prepared(
          opt, reshard(s, set, Sharding::ranges_of(s.pieces(), s.parameter_count(), s.rank())));
    } catch (const Error& e) {
      throw Error(e.status(), state_io::quote_path(path) + ": " + e.what());
    }
  });
  if (run.vote(h, nullptr, "the ranks read different files; nothing was changed"))
    commit(s, opt, work);
  run.finish();
}

// ---- sharded -------------------------------------------------------------------------------

void save_sharded(Sharding& s, const Optimizer& opt, const char* dir_arg) {
  Collectives& c = s.collectives();
  const std::size_t world = c.world(), rank = c.rank();
  Protocol run(c, "descent_optimizer_save_sharded");
  std::string dir;
  double generation = 0;
  run.local([&] {
    check_path(dir_arg, "dir");
    dir = dir_arg;
    if (::mkdir(dir.c_str(), 0777) != 0 && errno != EEXIST)
      throw Error(DESCENT_ERR_IO, state_io::quote_path(dir) +
                                      ": cannot create the directory: " + std::strerror(errno));
    generation = static_cast<double>(latest_generation(dir));
  });
  // The next generation: the largest any rank saw, plus one (new names: the previous set stays).
  run.vote(0, &generation);
  const uint64_t gen = static_cast<uint64_t>(generation) + 1;
  const std::string path = join(dir, shard_name(gen, rank, world));
  uint64_t hash = 0, size = 0;
  bool written = false;
  run.local([&] {
    const state_io::CheckpointWriter writer(opt);
    state_io::write_file_atomically(path, [&](ByteSink& sink) {
      HashingSink hashing(sink);
      writer.write(hashing);
      hash = hashing.hash();
      size = hashing.bytes();
    });
    written = true;
  });
  // Every shard durable: then the table of sizes and checksums (a sum: one rank per entry).
  run.vote();
  std::vector<double> table(3 * world, 0.0);
  table[3 * rank] = static_cast<double>(size);
  table[3 * rank + 1] = static_cast<double>(hash >> 32);
  table[3 * rank + 2] = static_cast<double>(hash & 0xffffffffu);
  run.exchange([&] { c.allreduce(table.data(), table.size(), DESCENT_REDUCE_SUM); });
  const bool failed_before = !run.ok();
  run.vote();
  // Known not to be committed (this rank failed before the vote, or the vote said so on every
  // rank): remove this rank's new file. Otherwise rank 0 may name it in the index: keep it.
  if (written && (failed_before || run.aborted())) ::unlink(path.c_str());
  // Rank 0 writes the index: the commit point.
  run.local([&] {
    if (rank != 0) return;
    nlohmann::json shards = nlohmann::json::array();
    for (std::size_t r = 0; r < world; ++r) {
      const uint64_t h =
          (static_cast<uint64_t>(table[3 * r + 1]) << 32) | static_cast<uint64_t>(table[3 * r + 2]);
      shards.push_back({{"rank", r},
                        {"file", shard_name(gen, r, world)},
                        {"bytes", static_cast<uint64_t>(table[3 * r])},
                        {"fnv1a64", hex64(h)}});
    }
    const nlohmann::json doc = {
        {"format", kIndexFormat}, {"format_version", kIndexVersion},
        {"kind", opt.kind()},     {"world_size", world},
        {"generation", gen},      {"plan", hex64(s.plan_fingerprint(world))},
        {"shards", shards}};
    const std::string text = doc.dump(1) + "\n";
    state_io::write_file_atomically(join(dir, kIndexName),
                                    [&](ByteSink& sink) { sink.write(text.data(), text.size()); });
  });
  if (run.vote() && rank == 0) remove_older(dir, gen);
  run.finish();
}

void load_sharded(Sharding& s, Optimizer& opt, const char* dir_arg) {
  Protocol run(s.collectives(), "descent_optimizer_load_sharded");
  std::unique_ptr<Optimizer> work;
  double h = 0;
  run.local([&] {
    check_path(dir_arg, "dir");
    const std::string dir = dir_arg;
    const std::string index_path = join(dir, kIndexName);
    const std::vector<unsigned char> index_bytes = state_io::read_file(index_path);
    h = content_hash(index_bytes);
    const Index ix = parse_index(index_bytes, state_io::quote_path(index_path));
    if (ix.kind != opt.kind())
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  state_io::quote_path(index_path) + ": the checkpoint holds the state of a " +
                      state_io::quote_name(ix.kind) + " optimizer; this optimizer is '" +
                      opt.kind() + "'");
    const std::string expected = hex64(s.plan_fingerprint(ix.world));
    if (ix.plan != expected)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  state_io::quote_path(index_path) + ": the checkpoint's partition plan over " +
                      std::to_string(ix.world) + " ranks (" + ix.plan +
                      ") is not this optimizer's (" + expected +
                      "): the declared parameters, their dtypes, shapes or groups differ");
    SavedSet set;
    set.world = ix.world;
    set.plan = s.plan(ix.world);
    set.files.assign(ix.world, nullptr);
    for (const auto& shard : ix.shards)
      set.labels.push_back(state_io::quote_path(join(dir, shard.file)));
    const std::vector<OwnedRange> mine =
        Sharding::ranges_of(s.pieces(), s.parameter_count(), s.rank());
    std::vector<std::vector<unsigned char>> bytes;
    std::vector<std::unique_ptr<SafetensorsView>> views;
    for (std::size_t r : needed_ranks(s, set.plan, ix.world, mine)) {
      const std::string& label = set.labels[r];
      bytes.push_back(state_io::read_file(join(dir, ix.shards[r].file)));
      const std::vector<unsigned char>& b = bytes.back();
      if (b.size() != ix.shards[r].bytes)
        throw Error(DESCENT_ERR_CORRUPT, label + ": " + std::to_string(b.size()) +
                                             " bytes, the index says " +
                                             std::to_string(ix.shards[r].bytes));
      if (hex64(fnv1a(kFnvBasis, b.data(), b.size())) != ix.shards[r].checksum)
        throw Error(DESCENT_ERR_CORRUPT, label + ": the checksum differs from the index's");
      try {
        views.push_back(
            std::make_unique<SafetensorsView>(state_io::parse_safetensors(b.data(), b.size())));
      } catch (const Error& e) {
        throw Error(e.status(), label + ": " + e.what());
      }
      set.files[r] = views.back().get();
    }
    work = prepared(opt, reshard(s, set, mine));
  });
  if (run.vote(h, nullptr, "the ranks read different index files; nothing was changed"))
    commit(s, opt, work);
  run.finish();
}

}  // namespace descent::dist
