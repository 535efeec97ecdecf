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

#include "api_test_support.h"
#include "descent/descent.h"
#include "test_support.h"

namespace state_test {

using Bytes = std::vector<unsigned char>;

// ---- handles
// -------------------------------------------------------------------------------------

struct Free {
  void operator()(descent_optimizer* o) const { descent_optimizer_free(o); }
};
using Opt = std::unique_ptr<descent_optimizer, Free>;

inline Opt create(const char* kind, const char* config = nullptr) {
  descent_optimizer* o = nullptr;
  EXPECT_EQ(descent_optimizer_create(kind, &o, nullptr, 0), DESCENT_OK)
      << kind << ": " << descent_last_error();
  if (o && config) {
    EXPECT_EQ(descent_optimizer_configure_json(o, config), DESCENT_OK)
        << config << ": " << descent_optimizer_last_error(o);
  }
  return Opt(o);
}

// Tensors, models and snapshots are the shared ones (api_test_support.h).
using api_test::dtype_size;
using api_test::hyper_snapshot;
using api_test::Model;
using api_test::Slot;
using api_test::state_snapshot;
using api_test::step_of;
using api_test::Tensor;
using api_test::uniform;

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

// ---- files
// ---------------------------------------------------------------------------------------

inline std::string data_dir() {
  return DESCENT_TEST_DATA_DIR;
}

inline Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
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

// ---- a minimal independent safetensors builder
// ---------------------------------------------------

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
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.data.size()}}};
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
  out.header =
      nlohmann::ordered_json::parse(file.begin() + 8, file.begin() + 8 + static_cast<long>(n));
  out.data_start = 8 + n;
  return out;
}

}  // namespace state_test
