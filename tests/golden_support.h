// Reading the MLX golden files (tests/data/golden, format in tests/data/README.md) and
// comparing descent's parameters and state against them through the public C API.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"
#include "test_support.h"

namespace golden {

using descent_test::all_kinds;

using Json = nlohmann::ordered_json;  // keeps the files' key order (MLX's tree order)

inline std::string data_dir() {
  return DESCENT_TEST_DATA_DIR;
}

inline Json load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return Json::parse(in);
}

inline descent_dtype dtype_of(const Json& c) {
  return c.at("dtype").get<std::string>() == "float64" ? DESCENT_FLOAT64 : DESCENT_FLOAT32;
}

// A tensor held as bytes in the case's dtype.
struct CaseTensor {
  descent_dtype dtype;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;

  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  double at(int64_t i) const {
    if (dtype == DESCENT_FLOAT64) {
      double v;
      std::memcpy(&v, bytes.data() + i * 8, 8);
      return v;
    }
    float v;
    std::memcpy(&v, bytes.data() + i * 4, 4);
    return v;
  }
};

inline CaseTensor tensor_from(const Json& t, descent_dtype dtype) {
  CaseTensor out{dtype, t.at("shape").get<std::vector<int64_t>>(), {}};
  const auto data = t.at("data").get<std::vector<double>>();
  out.bytes.resize(data.size() * (dtype == DESCENT_FLOAT64 ? 8 : 4));
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (dtype == DESCENT_FLOAT64) {
      std::memcpy(out.bytes.data() + i * 8, &data[i], 8);
    } else {
      const float f = static_cast<float>(data[i]);
      std::memcpy(out.bytes.data() + i * 4, &f, 4);
    }
  }
  return out;
}

// Reads a state slot of any dtype as doubles.
inline std::vector<double> read_state(descent_optimizer* opt, const std::string& key) {
  descent_dtype dt;
  size_t ndim = 0;
  int64_t shape[DESCENT_MAX_NDIM];
  if (descent_optimizer_state_info(opt, key.c_str(), &dt, &ndim, shape, DESCENT_MAX_NDIM) !=
      DESCENT_OK)
    throw std::runtime_error("state_info(" + key + "): " + descent_optimizer_last_error(opt));
  int64_t n = 1;
  for (size_t i = 0; i < ndim; ++i) n *= shape[i];
  std::vector<double> out(static_cast<size_t>(n));
  if (dt == DESCENT_UINT64) {
    std::vector<uint64_t> v(static_cast<size_t>(n));
    descent_optimizer_state_get(opt, key.c_str(), dt, v.data(), v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<double>(v[i]);
  } else if (dt == DESCENT_FLOAT32) {
    std::vector<float> v(static_cast<size_t>(n));
    descent_optimizer_state_get(opt, key.c_str(), dt, v.data(), v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = v[i];
  } else {
    descent_optimizer_state_get(opt, key.c_str(), dt, out.data(), out.size());
  }
  return out;
}

using api_test::state_keys;  // the shared one (api_test_support.h)

struct Tolerance {
  double rtol, atol;
};

// Compares got against expected element by element; reports the first few mismatches with the
// case, step, key, index, got and expected.
inline void expect_close(const std::string& where, const std::string& key,
                         const std::vector<double>& got, const std::vector<double>& expected,
                         Tolerance tol) {
  ASSERT_EQ(got.size(), expected.size()) << where << " key " << key << ": size differs";
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = expected[i];
    const bool ok = std::fabs(got[i] - e) <= tol.atol + tol.rtol * std::fabs(e) ||
                    (std::isnan(e) && std::isnan(got[i]));
    if (!ok && reported++ < 5) {
      ADD_FAILURE() << std::setprecision(17) << where << " key " << key << " index " << i
                    << ": got " << got[i] << ", expected " << e << " (|diff| "
                    << std::fabs(got[i] - e) << " > atol " << tol.atol << " + rtol " << tol.rtol
                    << " * |expected|)";
    }
  }
}

// Creates and configures the optimizer a case describes; on failure reports and returns NULL.
inline descent_optimizer* create_for_case(const Json& c) {
  descent_optimizer* opt = nullptr;
  if (descent_optimizer_create(c.at("optimizer").get<std::string>().c_str(), &opt, nullptr, 0) !=
      DESCENT_OK) {
    ADD_FAILURE() << "create " << c.at("optimizer") << ": " << descent_last_error();
    return nullptr;
  }
  if (descent_optimizer_configure_json(opt, c.at("config").dump().c_str()) != DESCENT_OK) {
    ADD_FAILURE() << "configure " << c.at("config").dump() << ": "
                  << descent_optimizer_last_error(opt);
    descent_optimizer_free(opt);
    return nullptr;
  }
  if (c.contains("optimizers")) {  // multi: one group per sub-optimizer, exact-name filters
    const auto& subs = c.at("optimizers");
    for (const auto& sub : subs) {
      const std::string kind = sub.at("optimizer").get<std::string>();
      if (descent_multi_add_group(opt, kind.c_str(), sub.at("config").dump().c_str(), nullptr) !=
          DESCENT_OK) {
        ADD_FAILURE() << "add group " << kind << " " << sub.at("config").dump() << ": "
                      << descent_optimizer_last_error(opt);
        descent_optimizer_free(opt);
        return nullptr;
      }
    }
    for (const auto& [name, group] : c.at("assignment").items()) {
      const auto g = group.get<size_t>();
      if (g + 1 == subs.size()) continue;  // the last group is the fallback
      if (name.find_first_of("*?") != std::string::npos ||
          descent_multi_filter_name(opt, g, name.c_str()) != DESCENT_OK) {
        ADD_FAILURE() << "filter " << name << " -> group " << g << ": "
                      << descent_optimizer_last_error(opt);
        descent_optimizer_free(opt);
        return nullptr;
      }
    }
  }
  return opt;
}

}  // namespace golden
