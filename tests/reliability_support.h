// What the concurrency, determinism and soak tests share (docs/reliability.md): a small training
// run of one optimizer (any kind; "multi" is the Muon+AdamW split) with deterministic gradients,
// written without gtest assertions so that it can run on any thread. Failures are collected as
// text and checked by the test on the main thread.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "descent/descent.h"

namespace reliability {

using Bytes = std::vector<unsigned char>;

// splitmix64: a value in [-1, 1).
inline double noise(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b * 0xBF58476D1CE4E5B9ull + c + 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return double(z >> 11) / double(1ull << 52) - 1.0;
}

struct Tensor {
  std::string name;
  descent_dtype dtype;
  std::vector<int64_t> shape;
  Bytes param;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  std::size_t element() const { return dtype == DESCENT_FLOAT64 ? 8 : 4; }
};

// A small transformer-like model: Muon takes the 2-D (and 3-D) weights, AdamW the embedding, head,
// norms and biases. `scale` multiplies the matrix sizes.
inline std::vector<Tensor> small_model(uint64_t seed, int64_t scale = 1) {
  std::vector<Tensor> t = {
      {"embed.weight", DESCENT_FLOAT32, {16 * scale, 8 * scale}, {}},
      {"layers.0.attn.weight", DESCENT_FLOAT32, {8 * scale, 8 * scale}, {}},
      {"layers.0.mlp.weight", DESCENT_FLOAT32, {16 * scale, 8 * scale}, {}},
      {"layers.0.mlp.bias", DESCENT_FLOAT32, {16 * scale}, {}},
      {"layers.0.norm.weight", DESCENT_FLOAT32, {8 * scale}, {}},
      {"layers.1.conv", DESCENT_FLOAT64, {4, 3, 2 * scale}, {}},
      {"lm_head.weight", DESCENT_FLOAT32, {10, 8 * scale}, {}},
      {"scale", DESCENT_FLOAT64, {}, {}},
  };
  for (std::size_t i = 0; i < t.size(); ++i) {
    t[i].param.resize(std::size_t(t[i].numel()) * t[i].element());
    for (int64_t k = 0; k < t[i].numel(); ++k) {
      const double v = 0.5 * noise(seed, i, uint64_t(k));
      if (t[i].dtype == DESCENT_FLOAT64) {
        std::memcpy(t[i].param.data() + k * 8, &v, 8);
      } else {
        const float f = float(v);
        std::memcpy(t[i].param.data() + k * 4, &f, 4);
      }
    }
  }
  return t;
}

// Gradients for step `step` (same shapes as the model).
inline std::vector<Bytes> gradients(const std::vector<Tensor>& model, uint64_t seed,
                                    uint64_t step) {
  std::vector<Bytes> g(model.size());
  for (std::size_t i = 0; i < model.size(); ++i) {
    g[i].resize(model[i].param.size());
    for (int64_t k = 0; k < model[i].numel(); ++k) {
      const double v = noise(seed * 7919 + step, i, uint64_t(k));
      if (model[i].dtype == DESCENT_FLOAT64) {
        std::memcpy(g[i].data() + k * 8, &v, 8);
      } else {
        const float f = float(v);
        std::memcpy(g[i].data() + k * 4, &f, 4);
      }
    }
  }
  return g;
}

// A learning-rate schedule callback: base / (1 + step / 8). user_data is a heap double.
inline descent_status inverse_schedule(uint64_t step, void* user_data, double* value, char*,
                                       std::size_t) {
  *value = *static_cast<double*>(user_data) / (1.0 + double(step) / 8.0);
  return DESCENT_OK;
}
inline void free_double(void* p) {
  delete static_cast<double*>(p);
}

// An optimizer of `kind` on a model, with errors collected as text.
class Training {
 public:
  Training(std::string kind, uint64_t seed, int schedule_form, int64_t scale = 1)
      : kind_(std::move(kind)), seed_(seed), model_(small_model(seed, scale)) {
    opt_ = make(schedule_form);
  }
  ~Training() { descent_optimizer_free(opt_); }
  Training(const Training&) = delete;
  Training& operator=(const Training&) = delete;

  // A new optimizer of this run's kind and configuration with the model declared (no state).
  descent_optimizer* make(int schedule_form) {
    descent_optimizer* opt = nullptr;
    char err[DESCENT_ERROR_CAPACITY] = "";
    const char* config = "{\"learning_rate\": 0.02, \"weight_decay\": 0.01}";
    descent_status s;
    if (kind_ == "multi") {
      s = descent_multi_create_muon_adamw("{\"learning_rate\": 0.02}", config, nullptr, &opt, err,
                                          sizeof err);
    } else {
      s = descent_optimizer_create(kind_.c_str(), &opt, err, sizeof err);
      if (s == DESCENT_OK) {
        s = descent_optimizer_configure_json(opt, "{\"learning_rate\": 0.02}");
        if (s != DESCENT_OK) std::strncpy(err, descent_optimizer_last_error(opt), sizeof err - 1);
      }
    }
    if (s != DESCENT_OK) return fail("create " + kind_ + ": " + err), opt;
    for (const Tensor& t : model_)
      check(opt,
            descent_optimizer_add_parameter(opt, t.name.c_str(), t.dtype, t.shape.size(),
                                            t.shape.data()),
            "add_parameter");
    // Schedules: 0 none, 1 a string, 2 JSON, 3 a callback (not on "multi", whose groups would
    // each need one: a string there).
    if (kind_ != "adafactor") {
      if (schedule_form == 1 || (schedule_form == 3 && kind_ == "multi"))
        check(opt, descent_optimizer_set_schedule(opt, "warmup_cosine:3:40:0.001"), "schedule");
      else if (schedule_form == 2)
        check(
            opt,
            descent_optimizer_set_schedule(
                opt, "{\"schedule\": \"exponential_decay\", \"init\": 0.02, \"decay_rate\": 0.97}"),
            "schedule");
      else if (schedule_form == 3)
        check(opt,
              descent_optimizer_set_schedule_callback(opt, inverse_schedule, new double(0.02),
                                                      free_double),
              "schedule callback");
    }
    return opt;
  }

  descent_optimizer* opt() const { return opt_; }
  const std::vector<Tensor>& model() const { return model_; }
  const std::vector<std::string>& errors() const { return errors_; }
  uint64_t steps() const { return step_; }

  void step() {
    const std::vector<Bytes> g = gradients(model_, seed_, step_++);
    std::vector<const char*> names;
    std::vector<void*> ps;
    std::vector<const void*> gs;
    for (std::size_t i = 0; i < model_.size(); ++i) {
      names.push_back(model_[i].name.c_str());
      ps.push_back(model_[i].param.data());
      gs.push_back(g[i].data());
    }
    check(opt_,
          descent_optimizer_update(opt_, names.size(), names.data(), nullptr, nullptr, ps.data(),
                                   gs.data()),
          "update");
  }

  Bytes save() {
    std::size_t size = 0;
    check(opt_, descent_optimizer_save_to_buffer(opt_, nullptr, 0, &size), "save size");
    Bytes b(size);
    check(opt_, descent_optimizer_save_to_buffer(opt_, b.data(), b.size(), &size), "save");
    return b;
  }

  // Reads a slot and writes it back (a no-op that exercises state_get/state_set).
  void state_roundtrip(const char* key) {
    descent_dtype dtype;
    std::size_t ndim = 0;
    int64_t shape[DESCENT_MAX_NDIM];
    if (!check(opt_,
               descent_optimizer_state_info(opt_, key, &dtype, &ndim, shape, DESCENT_MAX_NDIM),
               std::string("state_info ") + key))
      return;
    int64_t n = 1;
    for (std::size_t i = 0; i < ndim; ++i) n *= shape[i];
    Bytes buf(std::size_t(n) * (dtype == DESCENT_FLOAT32 ? 4 : 8));
    check(opt_, descent_optimizer_state_get(opt_, key, dtype, buf.data(), n), "state_get");
    check(opt_, descent_optimizer_state_set(opt_, key, dtype, buf.data(), n), "state_set");
  }

  // Replaces the optimizer by a fresh one (same configuration) loaded from `bytes`.
  void reload_from_buffer(const Bytes& bytes, int schedule_form) {
    descent_optimizer_free(opt_);
    opt_ = make(schedule_form);
    check(opt_, descent_optimizer_load_from_buffer(opt_, bytes.data(), bytes.size()),
          "load buffer");
  }
  void reload_from_file(const std::string& path, int schedule_form) {
    check(opt_, descent_optimizer_save(opt_, path.c_str()), "save file");
    descent_optimizer_free(opt_);
    opt_ = make(schedule_form);
    check(opt_, descent_optimizer_load(opt_, path.c_str()), "load file");
  }

  // The parameters and the saved state, for bitwise comparisons.
  Bytes fingerprint() {
    Bytes out = save();
    for (const Tensor& t : model_) out.insert(out.end(), t.param.begin(), t.param.end());
    return out;
  }

  bool check(descent_optimizer* opt, descent_status s, const std::string& what) {
    if (s == DESCENT_OK) return true;
    fail(kind_ + ": " + what + ": " + descent_status_name(s) + ": " +
         (opt ? descent_optimizer_last_error(opt) : ""));
    return false;
  }
  void fail(const std::string& e) { errors_.push_back(e); }

 private:
  std::string kind_;
  uint64_t seed_;
  std::vector<Tensor> model_;
  descent_optimizer* opt_ = nullptr;
  uint64_t step_ = 0;
  std::vector<std::string> errors_;
};

// A fresh directory under $TMPDIR (or /tmp); removed (with its files) by the destructor.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string t = std::string(base && *base ? base : "/tmp") + "/descent-rel-XXXXXX";
    if (mkdtemp(t.data())) path_ = t;
  }
  ~TempDir() {
    if (path_.empty()) return;
    if (DIR* d = opendir(path_.c_str())) {
      while (dirent* e = readdir(d))
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
          unlink((path_ + "/" + e->d_name).c_str());
      closedir(d);
    }
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace reliability
