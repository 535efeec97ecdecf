// Helpers for tests that drive descent through its public C API only: an owning handle, tensors
// with deterministic pseudo-random contents, bitwise snapshots of everything a call may change
// (hyperparameters, state slots, parameter buffers), and a checker for failing calls.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "descent/descent.h"
#include "test_support.h"

namespace api_test {

using descent_test::all_kinds;
using descent_test::precision_keys;
using descent_test::rule_kinds;

// ---- owning handle -----------------------------------------------------------------------------

class Handle {
 public:
  Handle() = default;
  explicit Handle(const char* kind) {
    const descent_status s = descent_optimizer_create(kind, &opt_, nullptr, 0);
    EXPECT_EQ(s, DESCENT_OK) << kind << ": " << descent_last_error();
  }
  ~Handle() { descent_optimizer_free(opt_); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : opt_(std::exchange(o.opt_, nullptr)) {}
  Handle& operator=(Handle&& o) noexcept {
    std::swap(opt_, o.opt_);
    return *this;
  }
  descent_optimizer* get() const { return opt_; }
  operator descent_optimizer*() const { return opt_; }  // NOLINT: convenience in C calls

 private:
  descent_optimizer* opt_ = nullptr;
};

inline std::string last_error(const descent_optimizer* opt) {
  return opt ? descent_optimizer_last_error(opt) : descent_last_error();
}

#define DESCENT_ASSERT_OK(opt, expr)                                                \
  do {                                                                              \
    const descent_status s_ = (expr);                                               \
    ASSERT_EQ(s_, DESCENT_OK) << #expr << " -> " << descent_status_name(s_) << ": " \
                              << ::api_test::last_error(opt);                       \
  } while (0)

#define DESCENT_EXPECT_OK(opt, expr)                                                \
  do {                                                                              \
    const descent_status s_ = (expr);                                               \
    EXPECT_EQ(s_, DESCENT_OK) << #expr << " -> " << descent_status_name(s_) << ": " \
                              << ::api_test::last_error(opt);                       \
  } while (0)

inline std::size_t dtype_size(descent_dtype d) {
  if (d == DESCENT_BFLOAT16 || d == DESCENT_FLOAT16) return 2;
  return d == DESCENT_FLOAT32 ? 4 : 8;
}

// ---- deterministic pseudo-random numbers
// ---------------------------------------------------------

// splitmix64: a value in [-1, 1) from a seed.
inline double uniform(uint64_t seed) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

// ---- tensors
// -------------------------------------------------------------------------------------

struct Tensor {
  std::string name;
  descent_dtype dtype;
  std::vector<int64_t> shape;
  int64_t numel = 1;
  std::vector<unsigned char> param, grad;

  Tensor(std::string n, descent_dtype dt, std::vector<int64_t> s)
      : name(std::move(n)), dtype(dt), shape(std::move(s)) {
    for (int64_t d : shape) numel *= d;
    param.assign(static_cast<std::size_t>(numel) * dtype_size(dtype), 0);
    grad.assign(param.size(), 0);
  }
  void set(std::vector<unsigned char>& buf, int64_t i, double v) {
    if (dtype == DESCENT_FLOAT32) {
      const float f = static_cast<float>(v);
      std::memcpy(buf.data() + i * 4, &f, 4);
    } else {
      std::memcpy(buf.data() + i * 8, &v, 8);
    }
  }
  double get(const std::vector<unsigned char>& buf, int64_t i) const {
    if (dtype == DESCENT_FLOAT32) {
      float f;
      std::memcpy(&f, buf.data() + i * 4, 4);
      return f;
    }
    double d;
    std::memcpy(&d, buf.data() + i * 8, 8);
    return d;
  }
  void fill_param(uint64_t seed, double scale = 1.0) {
    for (int64_t i = 0; i < numel; ++i) set(param, i, scale * uniform(seed * 1000003u + i));
  }
  void fill_grad(uint64_t seed, double scale = 1.0) {
    for (int64_t i = 0; i < numel; ++i) set(grad, i, scale * uniform(seed * 1000033u + i + 7));
  }
  void* param_ptr() { return param.empty() ? nullptr : param.data(); }
  const void* grad_ptr() const { return grad.empty() ? nullptr : grad.data(); }
};

// A set of named tensors declared on an optimizer, updated together.
struct Model {
  std::vector<Tensor> tensors;

  Model& add(const std::string& name, descent_dtype dtype, std::vector<int64_t> shape) {
    tensors.emplace_back(name, dtype, std::move(shape));
    return *this;
  }
  Tensor& operator[](std::size_t i) { return tensors[i]; }

  // Declares every tensor; returns the first failure.
  descent_status declare(descent_optimizer* opt) const {
    for (const auto& t : tensors) {
      const descent_status s = descent_optimizer_add_parameter(
          opt, t.name.c_str(), t.dtype, t.shape.size(), t.shape.empty() ? nullptr : t.shape.data());
      if (s != DESCENT_OK) return s;
    }
    return DESCENT_OK;
  }
  void fill_params(uint64_t seed) {
    for (std::size_t i = 0; i < tensors.size(); ++i) tensors[i].fill_param(seed * 31 + i);
  }
  void fill_grads(uint64_t seed, double scale = 1.0) {
    for (std::size_t i = 0; i < tensors.size(); ++i) tensors[i].fill_grad(seed * 37 + i, scale);
  }
  // One update naming the tensors at `which` (all when empty), with dtype and numel checks.
  descent_status update(descent_optimizer* opt, std::vector<std::size_t> which = {}) {
    if (which.empty())
      for (std::size_t i = 0; i < tensors.size(); ++i) which.push_back(i);
    std::vector<const char*> names;
    std::vector<descent_dtype> dtypes;
    std::vector<int64_t> numels;
    std::vector<void*> params;
    std::vector<const void*> grads;
    for (std::size_t i : which) {
      names.push_back(tensors[i].name.c_str());
      dtypes.push_back(tensors[i].dtype);
      numels.push_back(tensors[i].numel);
      params.push_back(tensors[i].param_ptr());
      grads.push_back(tensors[i].grad_ptr());
    }
    return descent_optimizer_update(opt, which.size(), names.data(), dtypes.data(), numels.data(),
                                    params.data(), grads.data());
  }
  std::vector<std::vector<unsigned char>> params() const {
    std::vector<std::vector<unsigned char>> out;
    for (const auto& t : tensors) out.push_back(t.param);
    return out;
  }
  std::vector<std::vector<unsigned char>> grads() const {
    std::vector<std::vector<unsigned char>> out;
    for (const auto& t : tensors) out.push_back(t.grad);
    return out;
  }
};

// ---- snapshots
// -----------------------------------------------------------------------------------

struct Slot {
  std::string key;
  descent_dtype dtype = DESCENT_FLOAT32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;
  bool operator==(const Slot& o) const {
    return key == o.key && dtype == o.dtype && shape == o.shape && bytes == o.bytes;
  }
};

inline std::ostream& operator<<(std::ostream& os, const Slot& s) {
  os << s.key << "(dtype " << s.dtype << ", ndim " << s.shape.size() << ", " << s.bytes.size()
     << " bytes)";
  return os;
}

inline int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Every state slot, enumerated by index, with its dtype, shape and raw bytes.
inline std::vector<Slot> state_snapshot(const descent_optimizer* opt) {
  std::vector<Slot> out;
  std::size_t count = 0;
  EXPECT_EQ(descent_optimizer_state_count(opt, &count), DESCENT_OK) << last_error(opt);
  for (std::size_t i = 0; i < count; ++i) {
    Slot s;
    const char* key = nullptr;
    EXPECT_EQ(descent_optimizer_state_key(opt, i, &key), DESCENT_OK) << last_error(opt);
    if (!key) return out;
    s.key = key;
    std::size_t ndim = 0;
    int64_t shape[DESCENT_MAX_NDIM];
    EXPECT_EQ(
        descent_optimizer_state_info(opt, s.key.c_str(), &s.dtype, &ndim, shape, DESCENT_MAX_NDIM),
        DESCENT_OK)
        << last_error(opt);
    s.shape.assign(shape, shape + ndim);
    const int64_t n = numel_of(s.shape);
    s.bytes.assign(static_cast<std::size_t>(n) * dtype_size(s.dtype), 0);
    EXPECT_EQ(descent_optimizer_state_get(opt, s.key.c_str(), s.dtype,
                                          s.bytes.empty() ? nullptr : s.bytes.data(),
                                          static_cast<std::size_t>(n)),
              DESCENT_OK)
        << s.key << ": " << last_error(opt);
    out.push_back(std::move(s));
  }
  return out;
}

inline std::vector<std::string> state_keys(const descent_optimizer* opt) {
  std::vector<std::string> out;
  std::size_t count = 0;
  EXPECT_EQ(descent_optimizer_state_count(opt, &count), DESCENT_OK) << last_error(opt);
  for (std::size_t i = 0; i < count; ++i) {
    const char* key = nullptr;
    EXPECT_EQ(descent_optimizer_state_key(opt, i, &key), DESCENT_OK) << last_error(opt);
    out.push_back(key ? key : "<null>");
  }
  return out;
}

inline uint64_t step_of(const descent_optimizer* opt) {
  uint64_t step = ~0ull;
  EXPECT_EQ(descent_optimizer_state_get(opt, "step", DESCENT_UINT64, &step, 1), DESCENT_OK)
      << last_error(opt);
  return step;
}

// Every hyperparameter: name, type and the value's bits, as a printable string.
inline std::vector<std::string> hyper_snapshot(const descent_optimizer* opt) {
  std::vector<std::string> out;
  std::size_t count = 0;
  EXPECT_EQ(descent_optimizer_hyperparameter_count(opt, &count), DESCENT_OK) << last_error(opt);
  auto bits = [](double d) {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    return std::to_string(u);
  };
  for (std::size_t i = 0; i < count; ++i) {
    const char* name = nullptr;
    EXPECT_EQ(descent_optimizer_hyperparameter_name(opt, i, &name), DESCENT_OK) << last_error(opt);
    if (!name) continue;
    descent_value_type type = DESCENT_VALUE_NONE;
    EXPECT_EQ(descent_optimizer_hyperparameter_type(opt, name, &type), DESCENT_OK)
        << last_error(opt);
    std::string entry = std::string(name) + ":" + std::to_string(type) + "=";
    switch (type) {
      case DESCENT_VALUE_DOUBLE: {
        double d = 0;
        EXPECT_EQ(descent_optimizer_get_double(opt, name, &d), DESCENT_OK);
        entry += bits(d);
        break;
      }
      case DESCENT_VALUE_INT: {
        int64_t v = 0;
        EXPECT_EQ(descent_optimizer_get_int(opt, name, &v), DESCENT_OK);
        entry += std::to_string(v);
        break;
      }
      case DESCENT_VALUE_BOOL: {
        bool b = false;
        EXPECT_EQ(descent_optimizer_get_bool(opt, name, &b), DESCENT_OK);
        entry += b ? "true" : "false";
        break;
      }
      case DESCENT_VALUE_DOUBLE_ARRAY: {
        double v[16];
        std::size_t n = 0;
        EXPECT_EQ(descent_optimizer_get_doubles(opt, name, v, 16, &n), DESCENT_OK);
        for (std::size_t k = 0; k < n && k < 16; ++k) entry += bits(v[k]) + ",";
        break;
      }
      case DESCENT_VALUE_NONE:
        entry += "none";
        break;
      case DESCENT_VALUE_STRING: {
        char v[256] = {0};
        std::size_t n = 0;
        EXPECT_EQ(descent_optimizer_get_string(opt, name, v, sizeof v, &n), DESCENT_OK);
        entry += v;
        break;
      }
      default:
        entry += "(not compared)";
        break;
    }
    out.push_back(entry);
  }
  return out;
}

// Everything observable about an optimizer and the caller's buffers.
struct Snapshot {
  std::vector<std::string> hyper;
  std::vector<Slot> state;
  std::size_t parameter_count = 0;
  std::vector<std::vector<unsigned char>> params, grads;
  bool operator==(const Snapshot& o) const {
    return hyper == o.hyper && state == o.state && parameter_count == o.parameter_count &&
           params == o.params && grads == o.grads;
  }
};

inline Snapshot snapshot(const descent_optimizer* opt, const Model* model) {
  Snapshot s;
  if (opt) {
    s.hyper = hyper_snapshot(opt);
    s.state = state_snapshot(opt);
    EXPECT_EQ(descent_optimizer_parameter_count(opt, &s.parameter_count), DESCENT_OK);
  }
  if (model) {
    s.params = model->params();
    s.grads = model->grads();
  }
  return s;
}

// ---- failing calls
// -------------------------------------------------------------------------------

constexpr const char* kPrimer = "__primer_key__";

// Leaves a known message behind so that the next failing call must replace it.
inline void prime_messages(descent_optimizer* opt) {
  if (opt) {
    EXPECT_EQ(descent_optimizer_set_double(opt, kPrimer, 0.0), DESCENT_ERR_UNKNOWN_KEY);
  } else {
    descent_optimizer* none = nullptr;
    EXPECT_EQ(descent_optimizer_create(kPrimer, &none, nullptr, 0), DESCENT_ERR_UNKNOWN_KIND);
  }
  EXPECT_NE(std::string(descent_last_error()).find(kPrimer), std::string::npos);
}

// Runs `call`, which must fail with `expected` and a fresh, non-empty message (naming `mention`
// when given) both per thread and, when `opt` is the handle it ran on, per handle; and must leave
// the optimizer and the model's buffers bitwise as they were.
inline void expect_failure(descent_optimizer* opt, const Model* model, descent_status expected,
                           const char* mention, const std::function<descent_status()>& call) {
  prime_messages(opt);
  const Snapshot before = snapshot(opt, model);
  const descent_status got = call();
  EXPECT_EQ(got, expected) << "got " << descent_status_name(got) << ", expected "
                           << descent_status_name(expected)
                           << "; message: " << descent_last_error();
  const std::string thread_msg = descent_last_error();
  EXPECT_FALSE(thread_msg.empty()) << "descent_last_error() is empty";
  EXPECT_EQ(thread_msg.find(kPrimer), std::string::npos)
      << "descent_last_error() was not replaced: " << thread_msg;
  if (mention) {
    EXPECT_NE(thread_msg.find(mention), std::string::npos)
        << "message does not name '" << mention << "': " << thread_msg;
  }
  if (opt) {
    const std::string handle_msg = descent_optimizer_last_error(opt);
    EXPECT_FALSE(handle_msg.empty()) << "descent_optimizer_last_error() is empty";
    EXPECT_EQ(handle_msg, thread_msg);
  }
  const Snapshot after = snapshot(opt, model);
  EXPECT_EQ(after.hyper, before.hyper) << "hyperparameters changed";
  EXPECT_EQ(after.state, before.state) << "state changed";
  EXPECT_EQ(after.parameter_count, before.parameter_count) << "parameter count changed";
  EXPECT_TRUE(after.params == before.params) << "parameter buffers changed";
  EXPECT_TRUE(after.grads == before.grads) << "gradient buffers changed";
}

// EXPECT_FAILS(opt, model_ptr_or_nullptr, DESCENT_ERR_X, "key" or nullptr, call expression)
#define EXPECT_FAILS(opt, model, code, mention, expr)                       \
  do {                                                                      \
    SCOPED_TRACE(#expr);                                                    \
    ::api_test::expect_failure((opt), (model), (code), (mention),           \
                               [&]() -> descent_status { return (expr); }); \
  } while (0)

}  // namespace api_test
