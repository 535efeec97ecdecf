// Threaded steps give the same bits as one thread: every kind, float32 and float64, a large
// tensor split into ranges, medium ones, and many small ones spread over threads, through the
// indexed, flat and by-name forms, with 1, 2 and 3 threads (and the process-wide setting).
// Plus the thread-count API (since 1.1). No timing is asserted anywhere.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "descent/descent.h"
#include "test_support.h"

namespace {

struct Result {
  std::vector<unsigned char> params;              // flat buffer after the steps
  std::vector<std::vector<unsigned char>> state;  // every state slot, in key order
  std::vector<std::string> keys;
};

uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
double value(uint64_t seed) {
  return static_cast<double>(mix(seed) >> 11) * 0x1p-53 * 2.0 - 1.0;
}

// Shapes: one large (split across threads at a ragged length), three medium, 300 small ones.
std::vector<std::vector<int64_t>> shapes() {
  std::vector<std::vector<int64_t>> s = {{613, 509}, {97, 131}, {3, 1001}, {1, 4099}};
  for (int i = 0; i < 300; ++i) s.push_back({1 + i % 5, 7 + (i * 13) % 61});
  return s;
}

Result run(const std::string& kind, descent_dtype dtype, size_t threads, bool process_wide) {
  Result r;
  descent_optimizer* opt = nullptr;
  EXPECT_EQ(descent_optimizer_create(kind.c_str(), &opt, nullptr, 0), DESCENT_OK);
  if (!opt) return r;
  if (kind != "adafactor") {
    EXPECT_EQ(descent_optimizer_set_double(opt, "learning_rate", 0.01), DESCENT_OK);
  }
  if (kind == "adam" || kind == "adamw") {
    EXPECT_EQ(descent_optimizer_configure_json(opt, "{\"bias_correction\": true}"), DESCENT_OK);
  }
  if (kind == "sgd") {
    EXPECT_EQ(descent_optimizer_configure_json(
                  opt, "{\"momentum\": 0.9, \"nesterov\": true, \"weight_decay\": 0.01}"),
              DESCENT_OK);
  }
  if (process_wide) {
    EXPECT_EQ(descent_set_num_threads(threads, nullptr, 0), DESCENT_OK);
  } else {
    EXPECT_EQ(descent_optimizer_set_num_threads(opt, threads), DESCENT_OK);
  }
  const auto sh = shapes();
  std::vector<std::string> names;
  for (size_t i = 0; i < sh.size(); ++i) {
    names.push_back("layer." + std::to_string(i) + ".weight");
    EXPECT_EQ(descent_optimizer_add_parameter(opt, names.back().c_str(), dtype, sh[i].size(),
                                              sh[i].data()),
              DESCENT_OK);
  }
  size_t total = 0;
  EXPECT_EQ(descent_optimizer_flat_size(opt, &total), DESCENT_OK);
  const size_t es = dtype == DESCENT_FLOAT32 ? 4 : 8;
  std::vector<double> pstore(total / 8 + 8), gstore(total / 8 + 8);  // 8-byte aligned
  auto* p = reinterpret_cast<unsigned char*>(pstore.data());
  auto* g = reinterpret_cast<unsigned char*>(gstore.data());
  std::vector<size_t> offsets(sh.size()), numels(sh.size());
  for (size_t i = 0; i < sh.size(); ++i) {
    EXPECT_EQ(descent_optimizer_flat_offset(opt, i, &offsets[i]), DESCENT_OK);
    numels[i] = 1;
    for (int64_t d : sh[i]) numels[i] *= static_cast<size_t>(d);
  }
  auto fill = [&](unsigned char* buf, uint64_t seed, double scale) {
    for (size_t i = 0; i < sh.size(); ++i)
      for (size_t k = 0; k < numels[i]; ++k) {
        const double v = scale * value(seed * 1000003 + i * 7919 + k);
        if (es == 4) {
          const float f = static_cast<float>(v);
          std::memcpy(buf + offsets[i] + k * 4, &f, 4);
        } else {
          std::memcpy(buf + offsets[i] + k * 8, &v, 8);
        }
      }
  };
  fill(p, 1, 1.0);
  std::vector<size_t> idx(sh.size());
  std::vector<void*> pp(sh.size());
  std::vector<const void*> gp(sh.size());
  std::vector<const char*> np(sh.size());
  for (size_t i = 0; i < sh.size(); ++i) {
    idx[i] = i;
    pp[i] = p + offsets[i];
    gp[i] = g + offsets[i];
    np[i] = names[i].c_str();
  }
  for (int step = 0; step < 3; ++step) {
    fill(g, 100 + step, 0.1);
    descent_status s;
    if (step == 0)
      s = descent_optimizer_update_indexed(opt, idx.size(), idx.data(), nullptr, nullptr, pp.data(),
                                           gp.data());
    else if (step == 1)
      s = descent_optimizer_update_flat(opt, p, g, total);
    else
      s = descent_optimizer_update(opt, np.size(), np.data(), nullptr, nullptr, pp.data(),
                                   gp.data());
    EXPECT_EQ(s, DESCENT_OK) << descent_optimizer_last_error(opt);
  }
  // Only the parameters' bytes (padding between them is never written).
  for (size_t i = 0; i < sh.size(); ++i)
    r.params.insert(r.params.end(), p + offsets[i], p + offsets[i] + numels[i] * es);
  size_t count = 0;
  EXPECT_EQ(descent_optimizer_state_count(opt, &count), DESCENT_OK);
  for (size_t i = 0; i < count; ++i) {
    const char* key = nullptr;
    EXPECT_EQ(descent_optimizer_state_key(opt, i, &key), DESCENT_OK);
    r.keys.push_back(key);
  }
  for (const auto& key : r.keys) {
    descent_dtype dt;
    size_t ndim = 0;
    int64_t dims[DESCENT_MAX_NDIM];
    EXPECT_EQ(descent_optimizer_state_info(opt, key.c_str(), &dt, &ndim, dims, DESCENT_MAX_NDIM),
              DESCENT_OK);
    int64_t n = 1;
    for (size_t d = 0; d < ndim; ++d) n *= dims[d];
    const size_t bytes = static_cast<size_t>(n) * (dt == DESCENT_FLOAT32 ? 4 : 8);
    std::vector<unsigned char> out(bytes);
    EXPECT_EQ(descent_optimizer_state_get(opt, key.c_str(), dt, out.data(), n), DESCENT_OK) << key;
    r.state.push_back(std::move(out));
  }
  descent_optimizer_free(opt);
  if (process_wide) descent_set_num_threads(0, nullptr, 0);
  return r;
}

struct Case {
  std::string kind;
  descent_dtype dtype;
};

class Threads : public testing::TestWithParam<Case> {};

TEST_P(Threads, SameBitsForEveryThreadCount) {
  const auto [kind, dtype] = GetParam();
  const Result one = run(kind, dtype, 1, false);
  ASSERT_FALSE(one.params.empty());
  for (size_t threads : {2, 3}) {
    for (bool process_wide : {false, true}) {
      SCOPED_TRACE(std::to_string(threads) +
                   (process_wide ? " threads (process-wide)" : " threads"));
      const Result r = run(kind, dtype, threads, process_wide);
      ASSERT_EQ(r.params.size(), one.params.size());
      EXPECT_EQ(std::memcmp(r.params.data(), one.params.data(), one.params.size()), 0)
          << "parameters differ";
      ASSERT_EQ(r.keys, one.keys);
      for (size_t i = 0; i < r.state.size(); ++i)
        EXPECT_TRUE(r.state[i] == one.state[i]) << "state " << r.keys[i] << " differs";
    }
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const auto& k : descent_test::rule_kinds())
    for (descent_dtype d : {DESCENT_FLOAT32, DESCENT_FLOAT64}) out.push_back({k, d});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Kinds, Threads, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           return info.param.kind + "_" +
                                  descent_test::dtype_suffix(info.param.dtype);
                         });

TEST(ThreadsApi, Settings) {
  size_t n = 0;
  ASSERT_EQ(descent_get_num_threads(&n, nullptr, 0), DESCENT_OK);
  EXPECT_GE(n, 1u);
  ASSERT_EQ(descent_set_num_threads(5, nullptr, 0), DESCENT_OK);
  ASSERT_EQ(descent_get_num_threads(&n, nullptr, 0), DESCENT_OK);
  EXPECT_EQ(n, 5u);
  ASSERT_EQ(descent_set_num_threads(0, nullptr, 0), DESCENT_OK);  // back to the default
  ASSERT_EQ(descent_get_num_threads(&n, nullptr, 0), DESCENT_OK);
  EXPECT_GE(n, 1u);
  EXPECT_EQ(descent_set_num_threads(size_t{1} << 40, nullptr, 0), DESCENT_ERR_OUT_OF_RANGE);
  char error[DESCENT_ERROR_CAPACITY] = "";
  EXPECT_EQ(descent_set_num_threads(DESCENT_MAX_THREADS + 1, error, sizeof error),
            DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_NE(std::string(error).find("at most 1024"), std::string::npos) << error;
  EXPECT_EQ(descent_set_num_threads(DESCENT_MAX_THREADS, nullptr, 0), DESCENT_OK);
  EXPECT_EQ(descent_set_num_threads(0, nullptr, 0), DESCENT_OK);
  EXPECT_EQ(descent_get_num_threads(nullptr, nullptr, 0), DESCENT_ERR_NULL_ARGUMENT);

  descent_optimizer* multi = nullptr;
  ASSERT_EQ(descent_multi_create_muon_adamw(nullptr, nullptr, nullptr, &multi, nullptr, 0),
            DESCENT_OK);
  ASSERT_EQ(descent_optimizer_get_num_threads(multi, &n), DESCENT_OK);
  EXPECT_EQ(n, 0u);
  ASSERT_EQ(descent_optimizer_set_num_threads(multi, 3), DESCENT_OK);
  descent_optimizer* group = nullptr;
  ASSERT_EQ(descent_multi_group(multi, 1, &group), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_get_num_threads(group, &n), DESCENT_OK);
  EXPECT_EQ(n, 3u);  // the multi's setting reaches its groups
  ASSERT_EQ(descent_optimizer_set_num_threads(group, 2), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_get_num_threads(group, &n), DESCENT_OK);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(descent_optimizer_set_num_threads(nullptr, 2), DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_set_num_threads(multi, size_t{1} << 40), DESCENT_ERR_OUT_OF_RANGE);
  descent_optimizer_free(multi);
}

}  // namespace
