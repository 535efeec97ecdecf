// Adafactor through the C API: the factored second-moment approximation against its closed form
// (MLX's test_optimizers.py case), state slots by rank, the optional first moment and learning
// rate, the learning rate that relative_step=false needs, and batching over leading axes.
// The MLX trajectories themselves are replayed by golden_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "descent/descent.h"
#include "test_support.h"

namespace {

using Handle = std::unique_ptr<descent_optimizer, void (*)(descent_optimizer*)>;

Handle make(const char* json = "{}") {
  descent_optimizer* opt = nullptr;
  EXPECT_EQ(descent_optimizer_create("adafactor", &opt, nullptr, 0), DESCENT_OK)
      << descent_last_error();
  Handle h(opt, descent_optimizer_free);
  if (opt) {
    EXPECT_EQ(descent_optimizer_configure_json(opt, json), DESCENT_OK)
        << descent_optimizer_last_error(opt);
  }
  return h;
}

template <class T>
constexpr descent_dtype dtype_of() {
  return sizeof(T) == 4 ? DESCENT_FLOAT32 : DESCENT_FLOAT64;
}

std::vector<std::string> state_keys(descent_optimizer* opt) {
  size_t n = 0;
  EXPECT_EQ(descent_optimizer_state_count(opt, &n), DESCENT_OK);
  std::vector<std::string> keys;
  for (size_t i = 0; i < n; ++i) {
    const char* k = nullptr;
    EXPECT_EQ(descent_optimizer_state_key(opt, i, &k), DESCENT_OK);
    keys.emplace_back(k);
  }
  return keys;
}

bool has_key(descent_optimizer* opt, const std::string& key) {
  for (const auto& k : state_keys(opt))
    if (k == key) return true;
  return false;
}

std::vector<int64_t> slot_shape(descent_optimizer* opt, const char* key) {
  size_t ndim = 0;
  int64_t shape[8] = {};
  EXPECT_EQ(descent_optimizer_state_info(opt, key, nullptr, &ndim, shape, 8), DESCENT_OK)
      << key << ": " << descent_optimizer_last_error(opt);
  return std::vector<int64_t>(shape, shape + ndim);
}

template <class T>
std::vector<T> slot(descent_optimizer* opt, const char* key, size_t n) {
  std::vector<T> out(n);
  EXPECT_EQ(descent_optimizer_state_get(opt, key, dtype_of<T>(), out.data(), n), DESCENT_OK)
      << key << ": " << descent_optimizer_last_error(opt);
  return out;
}

template <class T>
descent_status step(descent_optimizer* opt, const char* name, std::vector<T>& p,
                    const std::vector<T>& g) {
  const char* names[] = {name};
  void* params[] = {p.data()};
  const void* grads[] = {g.data()};
  return descent_optimizer_update(opt, 1, names, nullptr, nullptr, params, grads);
}

// MLX's test_adafactor: row = [[1,4,9],[16,25,36]], col = [[1,4,9,16],[25,36,49,64]] give
// rsqrt(row / mean(row, -1))[..., :, None] * rsqrt(col)[..., None, :], a (2, 3, 4) tensor.
// Through the API: load row and col into the state of a zero (2,3,4) parameter, make the step
// keep them (beta2 = 1 - 1000^-10 is exactly 1), disable clipping and parameter scaling, use
// lr = 1 and unit gradients: the step subtracts exactly the factored approximation.
template <class T>
void check_factored_closed_form(double rtol) {
  Handle h = make(
      R"({"relative_step": false, "learning_rate": 1.0, "scale_parameter": false,
          "clip_threshold": 1e30, "decay_rate": -10.0})");
  descent_optimizer* opt = h.get();
  const int64_t shape[] = {2, 3, 4};
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "w", dtype_of<T>(), 3, shape), DESCENT_OK);
  const std::vector<T> row = {1, 4, 9, 16, 25, 36};
  const std::vector<T> col = {1, 4, 9, 16, 25, 36, 49, 64};
  ASSERT_EQ(descent_optimizer_state_set(opt, "w.exp_avg_sq_row", dtype_of<T>(), row.data(), 6),
            DESCENT_OK)
      << descent_optimizer_last_error(opt);
  ASSERT_EQ(descent_optimizer_state_set(opt, "w.exp_avg_sq_col", dtype_of<T>(), col.data(), 8),
            DESCENT_OK);
  const uint64_t step_before = 999;  // the update runs with step 1000
  ASSERT_EQ(descent_optimizer_state_set(opt, "step", DESCENT_UINT64, &step_before, 1), DESCENT_OK);

  std::vector<T> p(24, T(0)), g(24, T(1));
  ASSERT_EQ(step(opt, "w", p, g), DESCENT_OK) << descent_optimizer_last_error(opt);

  // The moments are unchanged (beta2 == 1, 1 - beta2 == 0).
  EXPECT_EQ(slot<T>(opt, "w.exp_avg_sq_row", 6), row);
  EXPECT_EQ(slot<T>(opt, "w.exp_avg_sq_col", 8), col);
  // Closed form, computed independently in double.
  for (int b = 0; b < 2; ++b) {
    double mean = 0;
    for (int i = 0; i < 3; ++i) mean += row[b * 3 + i];
    mean /= 3;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) {
        const double expected =
            std::sqrt(mean / row[b * 3 + i]) / std::sqrt(double(col[b * 4 + j]));
        const double got = -double(p[(b * 3 + i) * 4 + j]);
        EXPECT_NEAR(got, expected, rtol * expected) << "b=" << b << " i=" << i << " j=" << j;
      }
  }
  // Spot values: batch 0 pairs row [1,4,9] (mean 14/3) with col [1,4,9,16], batch 1 pairs
  // row [16,25,36] (mean 77/3) with col [25,...,64].
  EXPECT_NEAR(-double(p[0]), std::sqrt(14.0 / 3.0), rtol * 3);
  EXPECT_NEAR(-double(p[23]), std::sqrt(77.0 / 3.0 / 36.0) / 8.0, rtol);
}

DESCENT_CLOSED_FORM_KIND("adafactor");
TEST(Adafactor, FactoredApproximationClosedFormFloat32) {
  check_factored_closed_form<float>(2e-7);
}
TEST(Adafactor, FactoredApproximationClosedFormFloat64) {
  check_factored_closed_form<double>(1e-15);
}

TEST(Adafactor, StateSlotsByRank) {
  Handle h = make();
  descent_optimizer* opt = h.get();
  const int64_t s55[] = {5, 5}, s234[] = {2, 3, 4}, s7[] = {7};
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "m", DESCENT_FLOAT32, 2, s55), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "t", DESCENT_FLOAT32, 3, s234), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "v", DESCENT_FLOAT64, 1, s7), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "s", DESCENT_FLOAT64, 0, nullptr), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_init(opt), DESCENT_OK) << descent_optimizer_last_error(opt);

  EXPECT_EQ(state_keys(opt), (std::vector<std::string>{
                                 "step", "m.exp_avg_sq_row", "m.exp_avg_sq_col", "t.exp_avg_sq_row",
                                 "t.exp_avg_sq_col", "v.exp_avg_sq", "s.exp_avg_sq"}));
  EXPECT_EQ(slot_shape(opt, "m.exp_avg_sq_row"), (std::vector<int64_t>{5}));
  EXPECT_EQ(slot_shape(opt, "m.exp_avg_sq_col"), (std::vector<int64_t>{5}));
  EXPECT_EQ(slot_shape(opt, "t.exp_avg_sq_row"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(slot_shape(opt, "t.exp_avg_sq_col"), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(slot_shape(opt, "v.exp_avg_sq"), (std::vector<int64_t>{7}));
  EXPECT_EQ(slot_shape(opt, "s.exp_avg_sq"), (std::vector<int64_t>{}));
  descent_dtype dt = DESCENT_FLOAT32;
  ASSERT_EQ(descent_optimizer_state_info(opt, "v.exp_avg_sq", &dt, nullptr, nullptr, 0),
            DESCENT_OK);
  EXPECT_EQ(dt, DESCENT_FLOAT64);
}

TEST(Adafactor, Defaults) {
  Handle h = make();
  descent_optimizer* opt = h.get();
  double eps[2] = {};
  size_t n = 0;
  ASSERT_EQ(descent_optimizer_get_doubles(opt, "eps", eps, 2, &n), DESCENT_OK);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(eps[0], 1e-30);
  EXPECT_EQ(eps[1], 1e-3);
  double d = 0;
  ASSERT_EQ(descent_optimizer_get_double(opt, "clip_threshold", &d), DESCENT_OK);
  EXPECT_EQ(d, 1.0);
  ASSERT_EQ(descent_optimizer_get_double(opt, "decay_rate", &d), DESCENT_OK);
  EXPECT_EQ(d, -0.8);
  ASSERT_EQ(descent_optimizer_get_double(opt, "weight_decay", &d), DESCENT_OK);
  EXPECT_EQ(d, 0.0);
  bool b = false;
  ASSERT_EQ(descent_optimizer_get_bool(opt, "scale_parameter", &b), DESCENT_OK);
  EXPECT_TRUE(b);
  ASSERT_EQ(descent_optimizer_get_bool(opt, "relative_step", &b), DESCENT_OK);
  EXPECT_TRUE(b);
  ASSERT_EQ(descent_optimizer_get_bool(opt, "warmup_init", &b), DESCENT_OK);
  EXPECT_FALSE(b);
  descent_value_type type = DESCENT_VALUE_DOUBLE;
  ASSERT_EQ(descent_optimizer_hyperparameter_type(opt, "beta_1", &type), DESCENT_OK);
  EXPECT_EQ(type, DESCENT_VALUE_NONE);
  ASSERT_EQ(descent_optimizer_hyperparameter_type(opt, "learning_rate", &type), DESCENT_OK);
  EXPECT_EQ(type, DESCENT_VALUE_NONE);
}

TEST(Adafactor, Beta1ZeroEnablesFirstMoment) {
  for (const char* json : {R"({"beta_1": 0.0})", R"({"beta_1": 0.9})"}) {
    Handle h = make(json);
    const int64_t s[] = {3, 2};
    ASSERT_EQ(descent_optimizer_add_parameter(h.get(), "w", DESCENT_FLOAT32, 2, s), DESCENT_OK);
    ASSERT_EQ(descent_optimizer_add_parameter(h.get(), "b", DESCENT_FLOAT32, 1, s), DESCENT_OK);
    ASSERT_EQ(descent_optimizer_init(h.get()), DESCENT_OK);
    EXPECT_TRUE(has_key(h.get(), "w.exp_avg")) << json;
    EXPECT_TRUE(has_key(h.get(), "b.exp_avg")) << json;
    EXPECT_EQ(slot_shape(h.get(), "w.exp_avg"), (std::vector<int64_t>{3, 2}));
  }
  // Unset (the default, JSON null, or descent_optimizer_unset): no first moment.
  Handle h = make(R"({"beta_1": 0.5})");
  ASSERT_EQ(descent_optimizer_configure_json(h.get(), R"({"beta_1": null})"), DESCENT_OK);
  Handle u = make(R"({"beta_1": 0.5})");
  ASSERT_EQ(descent_optimizer_unset(u.get(), "beta_1"), DESCENT_OK);
  for (descent_optimizer* opt : {h.get(), u.get()}) {
    const int64_t s[] = {4};
    ASSERT_EQ(descent_optimizer_add_parameter(opt, "b", DESCENT_FLOAT32, 1, s), DESCENT_OK);
    ASSERT_EQ(descent_optimizer_init(opt), DESCENT_OK);
    EXPECT_EQ(state_keys(opt), (std::vector<std::string>{"step", "b.exp_avg_sq"}));
  }
}

TEST(Adafactor, Beta1ZeroFirstMomentHoldsTheUpdate) {
  // With beta_1 = 0, exp_avg = 0*exp_avg + 1*u: the last update itself.
  Handle h = make(R"({"beta_1": 0.0})");
  const int64_t s[] = {3};
  ASSERT_EQ(descent_optimizer_add_parameter(h.get(), "b", DESCENT_FLOAT64, 1, s), DESCENT_OK);
  std::vector<double> p = {1.0, -2.0, 0.5}, g = {0.3, -0.1, 2.0};
  const std::vector<double> p0 = p;
  ASSERT_EQ(step(h.get(), "b", p, g), DESCENT_OK) << descent_optimizer_last_error(h.get());
  const auto ea = slot<double>(h.get(), "b.exp_avg", 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(p[i], p0[i] - ea[i]);
}

TEST(Adafactor, Beta1SetAfterInitAddsNoSlot) {
  // The slots are fixed at init; a first moment without its slot is not applied (MLX raises a
  // KeyError here). The step must neither crash nor touch memory it does not own.
  Handle h = make();
  const int64_t s2[] = {2, 3}, s1[] = {3};
  ASSERT_EQ(descent_optimizer_add_parameter(h.get(), "w", DESCENT_FLOAT32, 2, s2), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(h.get(), "b", DESCENT_FLOAT32, 1, s1), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_init(h.get()), DESCENT_OK);
  Handle ref = make();  // never has beta_1
  ASSERT_EQ(descent_optimizer_add_parameter(ref.get(), "w", DESCENT_FLOAT32, 2, s2), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(ref.get(), "b", DESCENT_FLOAT32, 1, s1), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_set_double(h.get(), "beta_1", 0.9), DESCENT_OK);
  std::vector<float> w = {1, 2, 3, 4, 5, 6}, b = {1, -1, 2}, gw(6, 0.5f), gb = {0.1f, 0.2f, 0.3f};
  std::vector<float> w2 = w, b2 = b;
  for (descent_optimizer* opt : {h.get(), ref.get()}) {
    std::vector<float>& pw = opt == h.get() ? w : w2;
    std::vector<float>& pb = opt == h.get() ? b : b2;
    const char* names[] = {"w", "b"};
    void* params[] = {pw.data(), pb.data()};
    const void* grads[] = {gw.data(), gb.data()};
    ASSERT_EQ(descent_optimizer_update(opt, 2, names, nullptr, nullptr, params, grads), DESCENT_OK);
  }
  EXPECT_EQ(w, w2);
  EXPECT_EQ(b, b2);
  EXPECT_FALSE(has_key(h.get(), "w.exp_avg"));
}

TEST(Adafactor, LearningRateKeyOnlyWhenGiven) {
  Handle h = make();
  const int64_t s[] = {2, 2};
  ASSERT_EQ(descent_optimizer_add_parameter(h.get(), "w", DESCENT_FLOAT32, 2, s), DESCENT_OK);
  std::vector<float> p(4, 1.0f), g(4, 0.5f);
  ASSERT_EQ(step(h.get(), "w", p, g), DESCENT_OK) << descent_optimizer_last_error(h.get());
  EXPECT_FALSE(has_key(h.get(), "learning_rate"));
  EXPECT_EQ(descent_optimizer_state_info(h.get(), "learning_rate", nullptr, nullptr, nullptr, 0),
            DESCENT_ERR_UNKNOWN_KEY);

  Handle l = make(R"({"learning_rate": 0.25})");
  ASSERT_EQ(descent_optimizer_add_parameter(l.get(), "w", DESCENT_FLOAT32, 2, s), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_init(l.get()), DESCENT_OK);
  EXPECT_TRUE(has_key(l.get(), "learning_rate"));
  // relative_step (the default) ignores the given learning rate: same step as without it.
  std::vector<float> q(4, 1.0f);
  ASSERT_EQ(step(l.get(), "w", q, g), DESCENT_OK);
  EXPECT_EQ(p, q);
}

TEST(Adafactor, NoRelativeStepNeedsLearningRate) {
  Handle h = make(R"({"relative_step": false})");
  descent_optimizer* opt = h.get();
  const int64_t s[] = {2, 3};
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "w", DESCENT_FLOAT32, 2, s), DESCENT_OK);
  std::vector<float> p = {1, 2, 3, 4, 5, 6}, g(6, 0.5f);
  const std::vector<float> p0 = p;

  EXPECT_EQ(step(opt, "w", p, g), DESCENT_ERR_INVALID_STATE);
  EXPECT_NE(std::string(descent_optimizer_last_error(opt)).find("learning_rate"), std::string::npos)
      << descent_optimizer_last_error(opt);
  EXPECT_EQ(p, p0);
  EXPECT_EQ(state_keys(opt), (std::vector<std::string>{"step"}));  // not initialised
  uint64_t st = 7;
  ASSERT_EQ(descent_optimizer_state_get(opt, "step", DESCENT_UINT64, &st, 1), DESCENT_OK);
  EXPECT_EQ(st, 0u);
  EXPECT_EQ(descent_optimizer_init(opt), DESCENT_ERR_INVALID_STATE);

  // Giving one makes it work; unsetting it again fails again, still changing nothing.
  ASSERT_EQ(descent_optimizer_set_double(opt, "learning_rate", 0.125), DESCENT_OK);
  ASSERT_EQ(step(opt, "w", p, g), DESCENT_OK) << descent_optimizer_last_error(opt);
  EXPECT_NE(p, p0);
  ASSERT_EQ(descent_optimizer_unset(opt, "learning_rate"), DESCENT_OK);
  const std::vector<float> p1 = p;
  const auto row1 = slot<float>(opt, "w.exp_avg_sq_row", 2);
  EXPECT_EQ(step(opt, "w", p, g), DESCENT_ERR_INVALID_STATE);
  EXPECT_EQ(p, p1);
  EXPECT_EQ(slot<float>(opt, "w.exp_avg_sq_row", 2), row1);
  ASSERT_EQ(descent_optimizer_state_get(opt, "step", DESCENT_UINT64, &st, 1), DESCENT_OK);
  EXPECT_EQ(st, 1u);
  // With relative_step back on, no learning rate is needed.
  ASSERT_EQ(descent_optimizer_set_bool(opt, "relative_step", true), DESCENT_OK);
  EXPECT_EQ(step(opt, "w", p, g), DESCENT_OK) << descent_optimizer_last_error(opt);
}

TEST(Adafactor, TwoStepsOnZerosAreFinite) {
  Handle h = make();
  const int64_t s[] = {2, 3, 4};
  ASSERT_EQ(descent_optimizer_add_parameter(h.get(), "w", DESCENT_FLOAT32, 3, s), DESCENT_OK);
  std::vector<float> p(24, 0.0f), g(24, 1.0f);
  for (int k = 0; k < 2; ++k) ASSERT_EQ(step(h.get(), "w", p, g), DESCENT_OK);
  // lr = max(eps[1], rms(p)) * min(1e-2, 1/sqrt(t)) = 1e-3 * 1e-2 both times, and with equal
  // gradients the factored update is exactly 1 before scaling.
  for (float v : p) {
    EXPECT_TRUE(std::isfinite(v));
    EXPECT_NEAR(v, -2e-5f, 1e-10f);
  }
  for (const char* key : {"w.exp_avg_sq_row", "w.exp_avg_sq_col"})
    for (float v : slot<float>(h.get(), key, key[13] == 'r' ? 6 : 8)) {
      EXPECT_TRUE(std::isfinite(v));
      EXPECT_NEAR(v, 1.0f, 1e-6f);
    }
}

// Leading axes are one batch: (2,2,3,4) behaves exactly as (4,3,4) on the same data, and each
// batch's row/col moments come from that batch only.
TEST(Adafactor, LeadingAxesAreABatch) {
  const int n = 48;
  std::vector<double> p0(n), g(n);
  for (int i = 0; i < n; ++i) {
    p0[i] = std::sin(0.37 * i + 0.1);
    g[i] = std::cos(1.3 * i) * (1 + i % 5);
  }
  const int64_t s4[] = {2, 2, 3, 4}, s3[] = {4, 3, 4};
  Handle a = make(R"({"beta_1": 0.9, "weight_decay": 0.1})");
  Handle b = make(R"({"beta_1": 0.9, "weight_decay": 0.1})");
  ASSERT_EQ(descent_optimizer_add_parameter(a.get(), "w", DESCENT_FLOAT64, 4, s4), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(b.get(), "w", DESCENT_FLOAT64, 3, s3), DESCENT_OK);
  std::vector<double> pa = p0, pb = p0;
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ(step(a.get(), "w", pa, g), DESCENT_OK);
    ASSERT_EQ(step(b.get(), "w", pb, g), DESCENT_OK);
  }
  EXPECT_EQ(pa, pb);
  EXPECT_EQ(slot_shape(a.get(), "w.exp_avg_sq_row"), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(slot_shape(a.get(), "w.exp_avg_sq_col"), (std::vector<int64_t>{2, 2, 4}));
  EXPECT_EQ(slot<double>(a.get(), "w.exp_avg_sq_row", 12),
            slot<double>(b.get(), "w.exp_avg_sq_row", 12));
  EXPECT_EQ(slot<double>(a.get(), "w.exp_avg_sq_col", 16),
            slot<double>(b.get(), "w.exp_avg_sq_col", 16));

  // After one step (beta2 = 0) the moments of batch k are mean(g*g + eps0) over that batch's
  // rows and columns alone.
  Handle c = make();
  ASSERT_EQ(descent_optimizer_add_parameter(c.get(), "w", DESCENT_FLOAT64, 3, s3), DESCENT_OK);
  std::vector<double> pc = p0;
  ASSERT_EQ(step(c.get(), "w", pc, g), DESCENT_OK);
  const auto row = slot<double>(c.get(), "w.exp_avg_sq_row", 12);
  const auto col = slot<double>(c.get(), "w.exp_avg_sq_col", 16);
  for (int k = 0; k < 4; ++k) {
    for (int i = 0; i < 3; ++i) {
      double s = 0;
      for (int j = 0; j < 4; ++j) s += g[(k * 3 + i) * 4 + j] * g[(k * 3 + i) * 4 + j] + 1e-30;
      EXPECT_NEAR(row[k * 3 + i], s / 4, 1e-14 * s) << k << "," << i;
    }
    for (int j = 0; j < 4; ++j) {
      double s = 0;
      for (int i = 0; i < 3; ++i) s += g[(k * 3 + i) * 4 + j] * g[(k * 3 + i) * 4 + j] + 1e-30;
      EXPECT_NEAR(col[k * 4 + j], s / 3, 1e-14 * s) << k << "," << j;
    }
  }
}

TEST(Adafactor, ResumesFromCopiedState) {
  // State copied key by key into a fresh optimizer (its init then happens inside state_set)
  // continues exactly: the factored workspace is prepared on that path too.
  const int64_t s[] = {2, 3, 5};
  std::vector<double> p(30), g(30);
  for (int i = 0; i < 30; ++i) {
    p[i] = 0.1 * i - 0.7;
    g[i] = 0.05 * (i % 4) - 0.1;
  }
  Handle a = make(R"({"beta_1": 0.8})");
  ASSERT_EQ(descent_optimizer_add_parameter(a.get(), "w", DESCENT_FLOAT64, 3, s), DESCENT_OK);
  for (int k = 0; k < 2; ++k) ASSERT_EQ(step(a.get(), "w", p, g), DESCENT_OK);
  Handle b = make(R"({"beta_1": 0.8})");
  ASSERT_EQ(descent_optimizer_add_parameter(b.get(), "w", DESCENT_FLOAT64, 3, s), DESCENT_OK);
  for (const auto& key : state_keys(a.get())) {
    descent_dtype dt = DESCENT_FLOAT64;
    size_t ndim = 0;
    int64_t shape[8] = {};
    ASSERT_EQ(descent_optimizer_state_info(a.get(), key.c_str(), &dt, &ndim, shape, 8), DESCENT_OK);
    size_t n = 1;
    for (size_t d = 0; d < ndim; ++d) n *= static_cast<size_t>(shape[d]);
    std::vector<unsigned char> bytes(n * 8);
    ASSERT_EQ(descent_optimizer_state_get(a.get(), key.c_str(), dt, bytes.data(), n), DESCENT_OK);
    ASSERT_EQ(descent_optimizer_state_set(b.get(), key.c_str(), dt, bytes.data(), n), DESCENT_OK)
        << key << ": " << descent_optimizer_last_error(b.get());
  }
  std::vector<double> q = p;
  ASSERT_EQ(step(a.get(), "w", p, g), DESCENT_OK);
  ASSERT_EQ(step(b.get(), "w", q, g), DESCENT_OK) << descent_optimizer_last_error(b.get());
  EXPECT_EQ(p, q);
  EXPECT_EQ(slot<double>(a.get(), "w.exp_avg", 30), slot<double>(b.get(), "w.exp_avg", 30));
}

}  // namespace
