// What every fuzz target shares: optimizers of every kind on a few small models, deterministic
// gradients, bitwise snapshots (saved state + parameter bytes), and the checks of the API's
// promises (docs/reliability.md):
//  - a failed call changes nothing (state, hyperparameters and parameters byte-identical) and
//    leaves a message on the handle;
//  - no input reaches DESCENT_ERR_INTERNAL;
//  - whatever saves loads back into a fresh, identically configured optimizer, saves to the same
//    bytes, and continues identically (bitwise) for a couple of steps.
// A broken promise aborts with a message, which libFuzzer reports as a crash.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "descent/descent.h"

namespace fuzz {

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "\nFUZZ PROMISE BROKEN: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void no_internal(descent_status s, const std::string& what, const char* message) {
  if (s == DESCENT_ERR_INTERNAL) die(what + " returned DESCENT_ERR_INTERNAL: " + message);
}

// Reads the fuzz input front to back; past the end everything reads as zero.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(byte()) << (8 * i);
    return v;
  }
  double f64() {
    const uint64_t bits = u64();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  // A string of at most `max` bytes, ended early by a 0 byte.
  std::string text(size_t max) {
    std::string s;
    while (s.size() < max && p_ < end_) {
      const char c = static_cast<char>(*p_++);
      if (c == 0) break;
      s.push_back(c);
    }
    return s;
  }
  std::string rest() {
    std::string s(reinterpret_cast<const char*>(p_), reinterpret_cast<const char*>(end_));
    p_ = end_;
    return s;
  }
  size_t left() const { return static_cast<size_t>(end_ - p_); }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// ---- models
// ---------------------------------------------------------------------------------------

struct Param {
  const char* name;
  descent_dtype dtype;
  std::vector<int64_t> shape;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t bytes() const { return size_t(numel()) * (dtype == DESCENT_FLOAT64 ? 8 : 4); }
};
using Model = std::vector<Param>;

// Model 0 is the harness's own (mixed dtypes, 0-D to 3-D); 1 to 4 are those of the MLX state
// files in tests/data/mlx-state (adamw, adafactor, muon, sgd), so that their seeds load.
inline const std::vector<Model>& models() {
  static const std::vector<Model> m = {
      {{"layers.0.weight", DESCENT_FLOAT32, {4, 3}},
       {"layers.0.bias", DESCENT_FLOAT32, {3}},
       {"head.w", DESCENT_FLOAT64, {2, 3}},
       {"conv", DESCENT_FLOAT32, {2, 2, 2}},
       {"scale", DESCENT_FLOAT64, {}}},
      {{"w", DESCENT_FLOAT32, {4, 6}}, {"b", DESCENT_FLOAT32, {6}}},
      {{"w", DESCENT_FLOAT32, {5, 7}}, {"b", DESCENT_FLOAT32, {7}}},
      {{"w", DESCENT_FLOAT32, {8, 12}}},
      {{"layers.0.w", DESCENT_FLOAT32, {3, 3}}, {"layers.1.w", DESCENT_FLOAT32, {3, 2}}},
  };
  return m;
}

inline std::vector<std::string> kinds() {
  std::vector<std::string> out;
  for (size_t i = 0; i < descent_kind_count(); ++i) out.emplace_back(descent_kind_name(i));
  if (descent_kind_name(descent_kind_count()) != nullptr) die("descent_kind_name past the end");
  return out;
}

// A deterministic value in [-1, 1) from a few integers (splitmix64).
inline double noise(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b * 0xBF58476D1CE4E5B9ull + c + 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return double(z >> 11) / double(1ull << 52) - 1.0;
}

inline void fill(std::vector<unsigned char>& buf, const Param& p, uint64_t seed, uint64_t which) {
  buf.assign(p.bytes(), 0);
  for (int64_t i = 0; i < p.numel(); ++i) {
    const double v = noise(seed, which, uint64_t(i));
    if (p.dtype == DESCENT_FLOAT64) {
      std::memcpy(buf.data() + i * 8, &v, 8);
    } else {
      const float f = float(v);
      std::memcpy(buf.data() + i * 4, &f, 4);
    }
  }
}

// ---- an optimizer with its parameters
// ---------------------------------------------------------------

struct Snapshot {
  descent_status save_status = DESCENT_OK;
  std::vector<unsigned char> state;
  std::vector<std::vector<unsigned char>> params;
  bool operator==(const Snapshot& o) const {
    return save_status == o.save_status && state == o.state && params == o.params;
  }
};

inline descent_status save_bytes(const descent_optimizer* opt, std::vector<unsigned char>& out) {
  // One call into a large reused buffer (the size query would serialise everything twice).
  static thread_local std::vector<unsigned char> scratch(1 << 20);
  size_t size = 0;
  descent_status s = descent_optimizer_save_to_buffer(opt, scratch.data(), scratch.size(), &size);
  if (s == DESCENT_ERR_BUFFER_TOO_SMALL) {
    s = descent_optimizer_save_to_buffer(opt, nullptr, 0, &size);
    no_internal(s, "save_to_buffer (size)", descent_optimizer_last_error(opt));
    if (s != DESCENT_OK) return s;
    scratch.resize(size);
    size_t written = 0;
    s = descent_optimizer_save_to_buffer(opt, scratch.data(), scratch.size(), &written);
    if (s == DESCENT_OK && written != size)
      die("save_to_buffer wrote another size than it announced");
  }
  no_internal(s, "save_to_buffer", descent_optimizer_last_error(opt));
  if (s == DESCENT_OK)
    out.assign(scratch.begin(), scratch.begin() + std::ptrdiff_t(size));
  else
    out.clear();
  return s;
}

// A configuration step replayed on an identically configured fresh optimizer.
struct Setup {
  enum Kind { Json, Schedule } kind;
  std::string text;
};

class Rig {
 public:
  Rig(std::string kind, const Model& model, std::string base_config = "{\"learning_rate\": 0.01}")
      : kind_(std::move(kind)), model_(&model), base_(std::move(base_config)) {}
  ~Rig() { descent_optimizer_free(opt_); }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  // Creates the optimizer (multi: the Muon+AdamW split, base config on both groups), applies the
  // base config and declares the model. False when any of it fails (then nothing to fuzz).
  bool build(uint64_t seed = 1) {
    char err[DESCENT_ERROR_CAPACITY];
    descent_status s;
    if (kind_ == "multi") {
      s = descent_multi_create_muon_adamw(base_.c_str(), base_.c_str(), nullptr, &opt_, err,
                                          sizeof err);
      no_internal(s, "multi_create_muon_adamw", err);
    } else {
      s = descent_optimizer_create(kind_.c_str(), &opt_, err, sizeof err);
      no_internal(s, "create", err);
      if (s == DESCENT_OK) s = descent_optimizer_configure_json(opt_, base_.c_str());
    }
    if (s != DESCENT_OK) die("building a " + kind_ + " rig failed: " + err);
    params_.resize(model_->size());
    for (size_t i = 0; i < model_->size(); ++i) {
      const Param& p = (*model_)[i];
      s = descent_optimizer_add_parameter(opt_, p.name, p.dtype, p.shape.size(), p.shape.data());
      if (s != DESCENT_OK) die(kind_ + ": declaring " + p.name + ": " + last_error());
      fill(params_[i], p, seed, i);
    }
    return true;
  }

  descent_optimizer* opt() const { return opt_; }
  const std::string& kind() const { return kind_; }
  const Model& model() const { return *model_; }
  std::vector<std::vector<unsigned char>>& params() { return params_; }
  std::string last_error() const { return opt_ ? descent_optimizer_last_error(opt_) : ""; }

  Snapshot snapshot() const {
    Snapshot s;
    s.save_status = save_bytes(opt_, s.state);
    s.params = params_;
    return s;
  }

  // Runs a call that may fail: DESCENT_ERR_INTERNAL aborts; a failure must change nothing and
  // leave a message on the handle.
  // `known_before`, when given, is the snapshot the rig is known to have now (saves the work).
  template <class F>
  descent_status checked(const std::string& what, F&& f, const Snapshot* known_before = nullptr) {
    const Snapshot before = known_before ? *known_before : snapshot();
    const descent_status s = f();
    no_internal(s, kind_ + ": " + what, last_error().c_str());
    if (s != DESCENT_OK) {
      if (!(snapshot() == before))
        die(kind_ + ": " + what + " failed with " + descent_status_name(s) +
            " but changed the optimizer or its parameters (" + last_error() + ")");
      if (last_error().empty()) die(kind_ + ": " + what + " failed without a message");
    }
    return s;
  }

  void record(Setup::Kind k, const std::string& text) { setups_.push_back({k, text}); }
  const std::vector<Setup>& setups() const { return setups_; }
  void replay(const std::vector<Setup>& setups) {
    for (const Setup& st : setups) {
      const descent_status s = st.kind == Setup::Json
                                   ? descent_optimizer_configure_json(opt_, st.text.c_str())
                                   : descent_optimizer_set_schedule(opt_, st.text.c_str());
      if (s != DESCENT_OK) die(kind_ + ": replaying a setup that worked fails: " + last_error());
      setups_.push_back(st);
    }
  }

  // One update of every parameter with gradients for step `tick` (by index, all parameters).
  descent_status step(uint64_t tick) {
    const size_t n = model_->size();
    std::vector<std::vector<unsigned char>> grads(n);
    std::vector<size_t> idx(n);
    std::vector<void*> ps(n);
    std::vector<const void*> gs(n);
    for (size_t i = 0; i < n; ++i) {
      fill(grads[i], (*model_)[i], 1000 + tick, i);
      idx[i] = i;
      ps[i] = params_[i].data();
      gs[i] = grads[i].data();
    }
    return checked("update", [&] {
      return descent_optimizer_update_indexed(opt_, n, idx.data(), nullptr, nullptr, ps.data(),
                                              gs.data());
    });
  }

 private:
  std::string kind_;
  const Model* model_;
  std::string base_;
  descent_optimizer* opt_ = nullptr;
  std::vector<std::vector<unsigned char>> params_;
  std::vector<Setup> setups_;
};

// Whatever `rig` saves loads into a fresh rig built and configured the same way, saves back to
// the same bytes, and both continue identically for `steps` updates. Steps `rig` too.
inline void check_roundtrip(Rig& rig, const std::string& base_config = "{\"learning_rate\": 0.01}",
                            int steps = 2) {
  std::vector<unsigned char> bytes;
  if (save_bytes(rig.opt(), bytes) != DESCENT_OK) return;
  Rig fresh(rig.kind(), rig.model(), base_config);
  fresh.build();
  fresh.replay(rig.setups());
  fresh.params() = rig.params();
  descent_status s = descent_optimizer_load_from_buffer(fresh.opt(), bytes.data(), bytes.size());
  if (s != DESCENT_OK)
    die(rig.kind() + ": a saved state does not load into an identical optimizer: " +
        descent_status_name(s) + ": " + fresh.last_error());
  std::vector<unsigned char> again;
  if (save_bytes(fresh.opt(), again) != DESCENT_OK || again != bytes)
    die(rig.kind() + ": save -> load -> save does not give the same bytes");
  for (int k = 0; k < steps; ++k) {
    const descent_status a = rig.step(50 + k);
    const descent_status b = fresh.step(50 + k);
    if (a != b)
      die(rig.kind() + ": after a round trip an update gives " + descent_status_name(b) +
          " where the original gives " + descent_status_name(a));
    if (!(rig.snapshot() == fresh.snapshot()))
      die(rig.kind() + ": after a round trip, update " + std::to_string(k) +
          " differs bitwise from the original's");
  }
}

}  // namespace fuzz
