// Helpers for the saving/loading tests: an owning optimizer handle, bitwise snapshots of the state
// and hyperparameters through the public C API, files and temporary directories, and a minimal
// independent safetensors builder for crafting files (nlohmann only, no descent code).
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "descent/descent.h"
#include "test_support.h"

namespace state_test {

using Bytes = std::vector<unsigned char>;

// ---- handles -------------------------------------------------------------------------------------

struct Free {
  void operator()(descent_optimizer* o) const { descent_optimizer_free(o); }
};
using Opt = std::unique_ptr<descent_optimizer, Free>;

inline Opt create(const char* kind, const char* config = nullptr) {
  descent_optimizer* o = nullptr;
  EXPECT_EQ(descent_optimizer_create(kind, &o, nullptr, 0), DESCENT_OK) << kind << ": " << descent_last_error();
  if (o && config) {
    EXPECT_EQ(descent_optimizer_configure_json(o, config), DESCENT_OK)
        << config << ": " << descent_optimizer_last_error(o);
  }
  return Opt(o);
}

#define STATE_ASSERT_OK(opt, expr)                                                           \
  do {                                                                                       \
    const descent_status s_ = (expr);                                                        \
    ASSERT_EQ(s_, DESCENT_OK) << #expr << " -> " << descent_status_name(s_) << ": "          \
                              << ((opt) ? descent_optimizer_last_error(opt) : descent_last_error()); \
  } while (0)

inline std::size_t dtype_size(descent_dtype d) { return d == DESCENT_FLOAT32 ? 4 : 8; }

// ---- models: named tensors with deterministic contents ---------------------------------------------

inline double uniform(uint64_t seed) {  // splitmix64 -> [-1, 1)
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

struct Tensor {
  std::string name;
  descent_dtype dtype;
  std::vector<int64_t> shape;
  int64_t numel = 1;
  Bytes param, grad;

  Tensor(std::string n, descent_dtype d, std::vector<int64_t> s)
      : name(std::move(n)), dtype(d), shape(std::move(s)) {
    for (int64_t x : shape) numel *= x;
    param.assign(static_cast<std::size_t>(numel) * dtype_size(dtype), 0);
    grad = param;
  }
  void set(Bytes& b, int64_t i, double v) const {
    if (dtype == DESCENT_FLOAT32) {
      const float f = static_cast<float>(v);
      std::memcpy(b.data() + i * 4, &f, 4);
    } else {
      std::memcpy(b.data() + i * 8, &v, 8);
    }
  }
};

struct Model {
  std::vector<Tensor> tensors;

  Model& add(const std::string& name, descent_dtype dtype, std::vector<int64_t> shape) {
    tensors.emplace_back(name, dtype, std::move(shape));
    return *this;
  }
  void declare(descent_optimizer* opt) const {
    for (const auto& t : tensors)
      EXPECT_EQ(descent_optimizer_add_parameter(opt, t.name.c_str(), t.dtype, t.shape.size(),
                                                t.shape.empty() ? nullptr : t.shape.data()),
                DESCENT_OK)
          << t.name << ": " << descent_optimizer_last_error(opt);
  }
  void fill_params(uint64_t seed) {
    for (std::size_t k = 0; k < tensors.size(); ++k)
      for (int64_t i = 0; i < tensors[k].numel; ++i)
        tensors[k].set(tensors[k].param, i, uniform(seed * 7919 + k * 104729 + i));
  }
  void fill_grads(uint64_t seed) {
    for (std::size_t k = 0; k < tensors.size(); ++k)
      for (int64_t i = 0; i < tensors[k].numel; ++i)
        tensors[k].set(tensors[k].grad, i, uniform(seed * 6997 + k * 130363 + i + 17));
  }
  descent_status update(descent_optimizer* opt) {
    std::vector<const char*> names;
    std::vector<void*> params;
    std::vector<const void*> grads;
    for (auto& t : tensors) {
      names.push_back(t.name.c_str());
      params.push_back(t.param.empty() ? nullptr : t.param.data());
      grads.push_back(t.grad.empty() ? nullptr : t.grad.data());
    }
    return descent_optimizer_update(opt, names.size(), names.data(), nullptr, nullptr,
                                    params.data(), grads.data());
  }
  std::vector<Bytes> params() const {
    std::vector<Bytes> out;
    for (const auto& t : tensors) out.push_back(t.param);
    return out;
  }
};

// ---- snapshots -----------------------------------------------------------------------------------

struct Slot {
  std::string key;
  descent_dtype dtype;
  std::vector<int64_t> shape;
  Bytes bytes;
  bool operator==(const Slot& o) const {
    return key == o.key && dtype == o.dtype && shape == o.shape && bytes == o.bytes;
  }
};
inline std::ostream& operator<<(std::ostream& os, const Slot& s) {
  return os << s.key << " (dtype " << s.dtype << ", " << s.shape.size() << " dims, "
            << s.bytes.size() << " bytes)";
}

inline std::vector<Slot> state_of(const descent_optimizer* opt) {
  std::vector<Slot> out;
  std::size_t n = 0;
  EXPECT_EQ(descent_optimizer_state_count(opt, &n), DESCENT_OK);
  for (std::size_t i = 0; i < n; ++i) {
    const char* key = nullptr;
    EXPECT_EQ(descent_optimizer_state_key(opt, i, &key), DESCENT_OK);
    if (!key) break;
    Slot s{key, DESCENT_FLOAT32, {}, {}};
    std::size_t ndim = 0;
    int64_t shape[DESCENT_MAX_NDIM];
    EXPECT_EQ(descent_optimizer_state_info(opt, key, &s.dtype, &ndim, shape, DESCENT_MAX_NDIM),
              DESCENT_OK);
    s.shape.assign(shape, shape + ndim);
    int64_t count = 1;
    for (auto d : s.shape) count *= d;
    s.bytes.assign(static_cast<std::size_t>(count) * dtype_size(s.dtype), 0);
    EXPECT_EQ(descent_optimizer_state_get(opt, s.key.c_str(), s.dtype,
                                          s.bytes.empty() ? nullptr : s.bytes.data(),
                                          static_cast<std::size_t>(count)),
              DESCENT_OK)
        << s.key << ": " << descent_optimizer_last_error(opt);
    out.push_back(std::move(s));
  }
  return out;
}

// Every hyperparameter as "name=<type>:<value bits>".
inline std::vector<std::string> hyper_of(const descent_optimizer* opt) {
  std::vector<std::string> out;
  std::size_t n = 0;
  EXPECT_EQ(descent_optimizer_hyperparameter_count(opt, &n), DESCENT_OK);
  for (std::size_t i = 0; i < n; ++i) {
    const char* name = nullptr;
    EXPECT_EQ(descent_optimizer_hyperparameter_name(opt, i, &name), DESCENT_OK);
    if (!name) break;
    descent_value_type type = DESCENT_VALUE_NONE;
    EXPECT_EQ(descent_optimizer_hyperparameter_type(opt, name, &type), DESCENT_OK);
    std::string entry = std::string(name) + "=" + std::to_string(static_cast<int>(type)) + ":";
    if (type == DESCENT_VALUE_DOUBLE) {
      double d = 0;
      descent_optimizer_get_double(opt, name, &d);
      uint64_t bits;
      std::memcpy(&bits, &d, 8);
      entry += std::to_string(bits);
    } else if (type == DESCENT_VALUE_INT) {
      int64_t v = 0;
      descent_optimizer_get_int(opt, name, &v);
      entry += std::to_string(v);
    } else if (type == DESCENT_VALUE_BOOL) {
      bool b = false;
      descent_optimizer_get_bool(opt, name, &b);
      entry += b ? "true" : "false";
    } else if (type == DESCENT_VALUE_DOUBLE_ARRAY) {
      double v[64];
      std::size_t count = 0;
      descent_optimizer_get_doubles(opt, name, v, 64, &count);
      for (std::size_t k = 0; k < count && k < 64; ++k) {
        uint64_t bits;
        std::memcpy(&bits, &v[k], 8);
        entry += std::to_string(bits) + ",";
      }
    }
    out.push_back(entry);
  }
  return out;
}

inline uint64_t step_of(const descent_optimizer* opt) {
  uint64_t step = ~0ull;
  EXPECT_EQ(descent_optimizer_state_get(opt, "step", DESCENT_UINT64, &step, 1), DESCENT_OK);
  return step;
}

inline Bytes save_buffer(const descent_optimizer* opt) {
  std::size_t size = 0;
  EXPECT_EQ(descent_optimizer_save_to_buffer(opt, nullptr, 0, &size), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  Bytes out(size);
  std::size_t written = 0;
  EXPECT_EQ(descent_optimizer_save_to_buffer(opt, out.data(), out.size(), &written), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  EXPECT_EQ(written, size);
  return out;
}

// ---- files ---------------------------------------------------------------------------------------

inline std::string data_dir() { return DESCENT_TEST_DATA_DIR; }

inline Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  return out;
}

// A fresh directory under $TMPDIR (or /tmp), removed with its files at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/descent-state-XXXXXX";
    if (!mkdtemp(tmpl.data())) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    for (const auto& n : list_dir(path_)) {
      const std::string p = path_ + "/" + n;
      chmod(p.c_str(), 0700);
      if (unlink(p.c_str()) != 0) {
        for (const auto& m : list_dir(p)) unlink((p + "/" + m).c_str());
        rmdir(p.c_str());
      }
    }
    chmod(path_.c_str(), 0700);
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// ---- a minimal independent safetensors builder ---------------------------------------------------

struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "U64", ...
  std::vector<int64_t> shape;
  Bytes data;
};

template <class T>
Bytes bytes_of(const std::vector<T>& values) {
  Bytes out(values.size() * sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// `metadata`: nullptr for MLX's "__metadata__": null, else an object of strings.
inline Bytes build_safetensors(const std::vector<StTensor>& tensors,
                               const nlohmann::ordered_json& metadata = nullptr) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  const std::string text = header.dump();
  // Sized once and filled with memcpy: GCC 12 reports a false array-bounds error at -O3 for
  // vector::insert after a small initial size.
  Bytes out(8 + text.size() + offset);
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i, n >>= 8) out[i] = static_cast<unsigned char>(n & 0xff);
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::size_t at = 8 + text.size();
  for (const auto& t : tensors) {
    if (!t.data.empty()) std::memcpy(out.data() + at, t.data.data(), t.data.size());
    at += t.data.size();
  }
  return out;
}

// Parses a safetensors buffer independently of descent: the header and each tensor's bytes.
struct ParsedFile {
  nlohmann::ordered_json header;
  std::size_t data_start = 0;
};

inline ParsedFile parse_independently(const Bytes& file) {
  ParsedFile out;
  if (file.size() < 8) {
    ADD_FAILURE() << "file shorter than 8 bytes";
    return out;
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[i];
  if (n > file.size() - 8) {
    ADD_FAILURE() << "header length past the end";
    return out;
  }
  out.header = nlohmann::ordered_json::parse(file.begin() + 8, file.begin() + 8 + static_cast<long>(n));
  out.data_start = 8 + n;
  return out;
}

}  // namespace state_test
