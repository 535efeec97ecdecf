// Shared by distributed_test.cpp (fake collectives) and mpi/mpi_test.cpp (MPI): a small model
// with every kind of tensor, deterministic gradients, and the update forms.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "descent/descent.h"

namespace distributed_support {

struct Param {
  std::string name;
  descent_dtype dtype;
  std::vector<int64_t> shape;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  std::size_t bytes() const {
    return static_cast<std::size_t>(numel()) * (dtype == DESCENT_FLOAT64 ? 8 : 4);
  }
};

inline std::vector<Param> model() {
  return {{"embed.weight", DESCENT_FLOAT32, {37, 8}},
          {"layers.0.weight", DESCENT_FLOAT32, {16, 24}},
          {"layers.0.bias", DESCENT_FLOAT32, {24}},
          {"layers.1.weight", DESCENT_FLOAT64, {10, 7}},
          {"scale", DESCENT_FLOAT32, {}},
          {"empty", DESCENT_FLOAT32, {0, 3}},
          {"layers.2.weight", DESCENT_FLOAT32, {9, 5, 3}},
          {"head.weight", DESCENT_FLOAT32, {5, 33}}};
}

inline double value(uint64_t seed, uint64_t i) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull + 1;
  x ^= x >> 31;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 29;
  return static_cast<double>(x % 20001) / 10000.0 - 1.0;
}

struct Tensors {
  std::vector<std::vector<unsigned char>> p, g;
  explicit Tensors(const std::vector<Param>& m) {
    for (std::size_t k = 0; k < m.size(); ++k) {
      p.emplace_back(m[k].bytes());
      g.emplace_back(m[k].bytes());
      fill(p[k], m[k].dtype, 1000 + k, 1.0);
    }
  }
  static void fill(std::vector<unsigned char>& b, descent_dtype dt, uint64_t seed, double scale) {
    const std::size_t es = dt == DESCENT_FLOAT64 ? 8 : 4;
    for (std::size_t i = 0; i < b.size() / es; ++i) {
      const double v = value(seed, i) * scale;
      if (dt == DESCENT_FLOAT64)
        std::memcpy(b.data() + i * 8, &v, 8);
      else {
        const float f = static_cast<float>(v);
        std::memcpy(b.data() + i * 4, &f, 4);
      }
    }
  }
  void grads_for(const std::vector<Param>& m, uint64_t step) {
    for (std::size_t k = 0; k < m.size(); ++k) fill(g[k], m[k].dtype, step * 100 + k, 0.5);
  }
};

inline descent_optimizer* make_optimizer(const std::string& kind, const std::vector<Param>& m) {
  descent_optimizer* opt = nullptr;
  if (kind == "multi") {
    EXPECT_EQ(
        descent_multi_create_muon_adamw(R"({"learning_rate": 0.02})", R"({"learning_rate": 0.001})",
                                        nullptr, &opt, nullptr, 0),
        DESCENT_OK);
  } else {
    EXPECT_EQ(descent_optimizer_create(kind.c_str(), &opt, nullptr, 0), DESCENT_OK);
    const char* config = kind == "sgd"
                             ? R"({"learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.01})"
                         : kind == "adafactor" ? "{}"
                         : kind == "muon"      ? R"({"learning_rate": 0.02})"
                                               : R"({"learning_rate": 0.01})";
    EXPECT_EQ(descent_optimizer_configure_json(opt, config), DESCENT_OK) << kind;
  }
  for (const Param& p : m)
    EXPECT_EQ(descent_optimizer_add_parameter(opt, p.name.c_str(), p.dtype, p.shape.size(),
                                              p.shape.data()),
              DESCENT_OK);
  return opt;
}

// One update through the form `step % 3` selects: by name, by index, flat.
inline descent_status update(descent_optimizer* opt, const std::vector<Param>& m, Tensors& t,
                             int form) {
  const std::size_t n = m.size();
  std::vector<void*> params(n);
  std::vector<const void*> grads(n);
  for (std::size_t k = 0; k < n; ++k) {
    params[k] = t.p[k].data();
    grads[k] = t.g[k].data();
  }
  if (form == 0) {
    std::vector<const char*> names(n);
    for (std::size_t k = 0; k < n; ++k) names[k] = m[k].name.c_str();
    return descent_optimizer_update(opt, n, names.data(), nullptr, nullptr, params.data(),
                                    grads.data());
  }
  if (form == 1) {
    std::vector<std::size_t> idx(n);
    for (std::size_t k = 0; k < n; ++k) idx[k] = n - 1 - k;  // any order
    std::vector<void*> rp(params.rbegin(), params.rend());
    std::vector<const void*> rg(grads.rbegin(), grads.rend());
    return descent_optimizer_update_indexed(opt, n, idx.data(), nullptr, nullptr, rp.data(),
                                            rg.data());
  }
  std::size_t size = 0;
  descent_optimizer_flat_size(opt, &size);
  std::vector<double> fp(size / 8 + 1), fg(size / 8 + 1);
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t off = 0;
    descent_optimizer_flat_offset(opt, k, &off);
    if (t.p[k].empty()) continue;  // an empty tensor's data() may be NULL (memcpy's UB)
    std::memcpy(reinterpret_cast<char*>(fp.data()) + off, t.p[k].data(), t.p[k].size());
    std::memcpy(reinterpret_cast<char*>(fg.data()) + off, t.g[k].data(), t.g[k].size());
  }
  const descent_status s = descent_optimizer_update_flat(opt, fp.data(), fg.data(), size);
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t off = 0;
    descent_optimizer_flat_offset(opt, k, &off);
    if (!t.p[k].empty())
      std::memcpy(t.p[k].data(), reinterpret_cast<char*>(fp.data()) + off, t.p[k].size());
  }
  return s;
}

constexpr int kSteps = 4;

inline Tensors reference(const std::string& kind, const std::vector<Param>& m, int steps,
                         std::size_t* state_bytes = nullptr) {
  Tensors t(m);
  descent_optimizer* opt = make_optimizer(kind, m);
  for (int s = 0; s < steps; ++s) {
    t.grads_for(m, s);
    EXPECT_EQ(update(opt, m, t, s % 3), DESCENT_OK) << descent_optimizer_last_error(opt);
  }
  if (state_bytes) descent_optimizer_state_bytes(opt, state_bytes, nullptr);
  descent_optimizer_free(opt);
  return t;
}

inline const char* const kKinds[] = {"sgd",    "rmsprop", "adagrad",   "adadelta", "adam", "adamw",
                                     "adamax", "lion",    "adafactor", "muon",     "multi"};

}  // namespace distributed_support
