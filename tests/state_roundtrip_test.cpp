// State layout and round trips through the public C API: keys follow MLX's tree_flatten order,
// copying every slot into a fresh optimizer continues the trajectory bit for bit, init and lazy
// init agree, and learning-rate changes take effect at the next update.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"

namespace {

using api_test::Handle;
using api_test::Model;
using api_test::Slot;

// A configuration per kind that exercises its options (MLX's names).
const char* config_json(const std::string& kind) {
  if (kind == "sgd")
    return R"({"learning_rate": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 0.01})";
  if (kind == "rmsprop") return R"({"learning_rate": 0.01, "alpha": 0.9})";
  if (kind == "adagrad") return R"({"learning_rate": 0.1})";
  if (kind == "adadelta") return R"({"learning_rate": 1.0, "rho": 0.95})";
  if (kind == "adam") return R"({"learning_rate": 0.01, "bias_correction": true})";
  if (kind == "adamw") return R"({"learning_rate": 0.01, "weight_decay": 0.05})";
  if (kind == "adamax") return R"({"learning_rate": 0.01})";
  if (kind == "lion") return R"({"learning_rate": 0.001, "weight_decay": 0.1})";
  if (kind == "adafactor")
    return R"({"learning_rate": 0.01, "relative_step": false, "weight_decay": 0.01})";
  if (kind == "muon") return R"({"learning_rate": 0.02, "momentum": 0.9, "weight_decay": 0.01})";
  ADD_FAILURE() << "no configuration for kind " << kind;
  return "{}";
}

// MLX's slot names per kind for a parameter of rank `rank`, in MLX's order (Adafactor without
// beta_1, which would add "exp_avg"; checkpoint_test.cpp sets it).
std::vector<std::string> slot_names(const std::string& kind, std::size_t rank) {
  if (kind == "adafactor")
    return rank >= 2 ? std::vector<std::string>{"exp_avg_sq_row", "exp_avg_sq_col"}
                     : std::vector<std::string>{"exp_avg_sq"};
  if (kind == "sgd" || kind == "rmsprop" || kind == "adagrad" || kind == "muon") return {"v"};
  if (kind == "adadelta") return {"v", "u"};
  if (kind == "lion") return {"m"};
  return {"m", "v"};  // adam, adamw, adamax
}

std::size_t slot_count(const std::string& kind, const Model& m) {
  std::size_t n = 0;
  for (const auto& t : m.tensors) n += slot_names(kind, t.shape.size()).size();
  return n;
}

Model make_model(descent_dtype dtype) {
  Model m;
  m.add("w1", dtype, {7})
      .add("layers.0.weight", dtype, {4, 5})
      .add("layers.0.kernel", dtype, {2, 3, 4})
      .add("scale", dtype, {});
  return m;
}

void configure(descent_optimizer* opt, const std::string& kind) {
  DESCENT_ASSERT_OK(opt, descent_optimizer_configure_json(opt, config_json(kind)));
}

// Copies every slot of `from` into `to`, using state_info for dtype and shape.
void copy_state(const descent_optimizer* from, descent_optimizer* to) {
  std::size_t count = 0;
  DESCENT_ASSERT_OK(from, descent_optimizer_state_count(from, &count));
  for (std::size_t i = 0; i < count; ++i) {
    const char* key_ptr = nullptr;
    DESCENT_ASSERT_OK(from, descent_optimizer_state_key(from, i, &key_ptr));
    const std::string key = key_ptr;
    descent_dtype dtype;
    std::size_t ndim = 0;
    int64_t shape[DESCENT_MAX_NDIM];
    DESCENT_ASSERT_OK(from, descent_optimizer_state_info(from, key.c_str(), &dtype, &ndim, shape,
                                                         DESCENT_MAX_NDIM));
    const int64_t n = api_test::numel_of(std::vector<int64_t>(shape, shape + ndim));
    std::vector<unsigned char> bytes(static_cast<std::size_t>(n) * api_test::dtype_size(dtype));
    void* data = bytes.empty() ? nullptr : bytes.data();
    DESCENT_ASSERT_OK(from, descent_optimizer_state_get(from, key.c_str(), dtype, data,
                                                        static_cast<std::size_t>(n)));
    DESCENT_ASSERT_OK(
        to, descent_optimizer_state_set(to, key.c_str(), dtype, data, static_cast<std::size_t>(n)));
  }
}

// ---- round trip, per kind and dtype -----------------------------------------------------------

class RoundTrip : public ::testing::TestWithParam<std::tuple<std::string, descent_dtype>> {};

TEST_P(RoundTrip, ContinuesBitForBit) {
  const std::string kind = std::get<0>(GetParam());
  const descent_dtype dtype = std::get<1>(GetParam());
  constexpr int kBefore = 4, kAfter = 5;

  Handle a(kind.c_str());
  configure(a, kind);
  Model ma = make_model(dtype);
  DESCENT_ASSERT_OK(a, ma.declare(a));
  ma.fill_params(42);
  for (int s = 1; s <= kBefore; ++s) {
    ma.fill_grads(100 + s);
    // The second step names only some tensors: the others keep their state.
    if (s == 2)
      DESCENT_ASSERT_OK(a, ma.update(a, {0, 2}));
    else
      DESCENT_ASSERT_OK(a, ma.update(a));
  }
  ASSERT_EQ(api_test::step_of(a), static_cast<uint64_t>(kBefore));
  // A learning rate changed after construction travels with the state (MLX saves it there).
  double lr = 0;
  DESCENT_ASSERT_OK(a, descent_optimizer_get_double(a, "learning_rate", &lr));
  DESCENT_ASSERT_OK(a, descent_optimizer_set_double(a, "learning_rate", lr * 0.75));

  // A fresh optimizer with the constructor's configuration and the same parameters.
  Handle b(kind.c_str());
  configure(b, kind);
  Model mb = ma;
  DESCENT_ASSERT_OK(b, mb.declare(b));
  DESCENT_ASSERT_OK(b, descent_optimizer_init(b));
  copy_state(a, b);
  if (HasFatalFailure()) return;

  const std::vector<Slot> state_a = api_test::state_snapshot(a);
  ASSERT_EQ(api_test::state_snapshot(b), state_a);
  ASSERT_EQ(api_test::hyper_snapshot(b), api_test::hyper_snapshot(a));
  // Every slot was non-trivial to copy: moments are non-zero after 4 steps.
  for (const Slot& s : state_a) {
    bool nonzero = false;
    for (unsigned char c : s.bytes) nonzero |= c != 0;
    EXPECT_TRUE(nonzero) << s.key << " is all zero";
  }

  for (int s = 1; s <= kAfter; ++s) {
    SCOPED_TRACE("step " + std::to_string(kBefore + s));
    ma.fill_grads(200 + s);
    mb.fill_grads(200 + s);
    DESCENT_ASSERT_OK(a, ma.update(a));
    DESCENT_ASSERT_OK(b, mb.update(b));
    for (std::size_t t = 0; t < ma.tensors.size(); ++t) {
      ASSERT_EQ(ma[t].param.size(), mb[t].param.size());
      EXPECT_EQ(std::memcmp(ma[t].param.data(), mb[t].param.data(), ma[t].param.size()), 0)
          << ma[t].name << " diverged";
    }
    EXPECT_EQ(api_test::state_snapshot(b), api_test::state_snapshot(a));
  }
  EXPECT_EQ(api_test::step_of(b), static_cast<uint64_t>(kBefore + kAfter));
}

// Without the copied learning rate and step the continuation differs, so the comparison above
// does detect a state that did not arrive.
TEST_P(RoundTrip, MissingStateIsDetected) {
  const std::string kind = std::get<0>(GetParam());
  const descent_dtype dtype = std::get<1>(GetParam());
  Handle a(kind.c_str());
  configure(a, kind);
  Model ma = make_model(dtype);
  DESCENT_ASSERT_OK(a, ma.declare(a));
  ma.fill_params(42);
  for (int s = 1; s <= 3; ++s) {
    ma.fill_grads(100 + s);
    DESCENT_ASSERT_OK(a, ma.update(a));
  }
  Handle b(kind.c_str());
  configure(b, kind);
  Model mb = ma;
  DESCENT_ASSERT_OK(b, mb.declare(b));
  ma.fill_grads(300);
  mb.fill_grads(300);
  DESCENT_ASSERT_OK(a, ma.update(a));
  DESCENT_ASSERT_OK(b, mb.update(b));  // fresh state
  EXPECT_NE(ma.params(), mb.params()) << "a fresh state gave the same step as a used one";
}

std::string round_trip_name(
    const ::testing::TestParamInfo<std::tuple<std::string, descent_dtype>>& info) {
  return std::get<0>(info.param) + "_" + descent_test::dtype_suffix(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllKinds, RoundTrip,
                         ::testing::Combine(::testing::ValuesIn(api_test::rule_kinds()),
                                            ::testing::Values(DESCENT_FLOAT32, DESCENT_FLOAT64)),
                         round_trip_name);

// Mixed dtypes in one optimizer: each slot has its parameter's dtype, and the round trip holds.
TEST(StateRoundTrip, MixedDtypes) {
  for (const std::string& kind : api_test::rule_kinds()) {
    SCOPED_TRACE(kind);
    Handle a(kind.c_str());
    configure(a, kind);
    Model ma;
    ma.add("f", DESCENT_FLOAT32, {3, 2}).add("d", DESCENT_FLOAT64, {5});
    DESCENT_ASSERT_OK(a, ma.declare(a));
    ma.fill_params(1);
    for (int s = 0; s < 3; ++s) {
      ma.fill_grads(10 + s);
      DESCENT_ASSERT_OK(a, ma.update(a));
    }
    for (const Slot& s : api_test::state_snapshot(a)) {
      if (s.key == "step")
        EXPECT_EQ(s.dtype, DESCENT_UINT64);
      else if (s.key == "learning_rate")
        EXPECT_EQ(s.dtype, DESCENT_FLOAT32);
      else
        EXPECT_EQ(s.dtype, s.key[0] == 'f' ? DESCENT_FLOAT32 : DESCENT_FLOAT64) << s.key;
    }
    Handle b(kind.c_str());
    configure(b, kind);
    Model mb = ma;
    DESCENT_ASSERT_OK(b, mb.declare(b));
    DESCENT_ASSERT_OK(b, descent_optimizer_init(b));
    copy_state(a, b);
    for (int s = 0; s < 3; ++s) {
      ma.fill_grads(20 + s);
      mb.fill_grads(20 + s);
      DESCENT_ASSERT_OK(a, ma.update(a));
      DESCENT_ASSERT_OK(b, mb.update(b));
    }
    EXPECT_TRUE(ma.params() == mb.params());
    EXPECT_EQ(api_test::state_snapshot(a), api_test::state_snapshot(b));
  }
}

// ---- keys and layout --------------------------------------------------------------------------

TEST(StateLayout, KeysFollowTreeFlatten) {
  for (const std::string& kind : api_test::rule_kinds()) {
    SCOPED_TRACE(kind);
    Handle h(kind.c_str());
    EXPECT_EQ(api_test::state_keys(h), std::vector<std::string>{"step"});
    DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.01));
    EXPECT_EQ(api_test::state_keys(h), (std::vector<std::string>{"step", "learning_rate"}));
    // Declaration order, deliberately not alphabetical.
    Model m;
    m.add("zeta", DESCENT_FLOAT64, {2})
        .add("layers.1.bias", DESCENT_FLOAT32, {3})
        .add("alpha", DESCENT_FLOAT32, {})
        .add("layers.0.weight", DESCENT_FLOAT64, {2, 1, 3});
    DESCENT_ASSERT_OK(h, m.declare(h));
    // Per-parameter slots appear only once the state is initialised.
    EXPECT_EQ(api_test::state_keys(h), (std::vector<std::string>{"step", "learning_rate"}));
    DESCENT_ASSERT_OK(h, descent_optimizer_init(h));
    std::vector<std::string> expected{"step", "learning_rate"};
    for (const auto& t : m.tensors)
      for (const auto& s : slot_names(kind, t.shape.size())) expected.push_back(t.name + "." + s);
    EXPECT_EQ(api_test::state_keys(h), expected);

    // dtype and shape of every key.
    for (const Slot& s : api_test::state_snapshot(h)) {
      SCOPED_TRACE(s.key);
      if (s.key == "step") {
        EXPECT_EQ(s.dtype, DESCENT_UINT64);
        EXPECT_TRUE(s.shape.empty());
        continue;
      }
      if (s.key == "learning_rate") {
        EXPECT_EQ(s.dtype, DESCENT_FLOAT32);
        EXPECT_TRUE(s.shape.empty());
        float lr;
        std::memcpy(&lr, s.bytes.data(), 4);
        EXPECT_EQ(lr, 0.01f);
        continue;
      }
      bool found = false;
      for (const auto& t : m.tensors) {
        if (s.key.rfind(t.name + ".", 0) != 0) continue;
        const std::string slot = s.key.substr(t.name.size() + 1);
        if (slot.find('.') != std::string::npos) continue;
        found = true;
        EXPECT_EQ(s.dtype, t.dtype);
        // Factored slots have their own shapes (adafactor_test.cpp, StateSlotsByRank).
        if (slot.rfind("exp_avg_sq_", 0) != 0) {
          EXPECT_EQ(s.shape, t.shape);
        }
      }
      EXPECT_TRUE(found);
    }
    // Keys are stable across updates.
    m.fill_params(1);
    m.fill_grads(2);
    DESCENT_ASSERT_OK(h, m.update(h));
    EXPECT_EQ(api_test::state_keys(h), expected);
  }
}

TEST(StateLayout, InitGivesZeroSlotsAndStepZero) {
  for (const std::string& kind : api_test::rule_kinds()) {
    SCOPED_TRACE(kind);
    Handle h(kind.c_str());
    configure(h, kind);
    Model m = make_model(DESCENT_FLOAT32);
    m.add("d", DESCENT_FLOAT64, {3, 3});
    DESCENT_ASSERT_OK(h, m.declare(h));
    DESCENT_ASSERT_OK(h, descent_optimizer_init(h));
    const auto state = api_test::state_snapshot(h);
    ASSERT_EQ(state.size(), 2 + slot_count(kind, m));
    for (const Slot& s : state) {
      if (s.key == "learning_rate") continue;
      for (unsigned char c : s.bytes) ASSERT_EQ(c, 0) << s.key << " is not all zero";
    }
    // A second init changes nothing.
    DESCENT_ASSERT_OK(h, descent_optimizer_init(h));
    EXPECT_EQ(api_test::state_snapshot(h), state);
  }
}

TEST(StateLayout, LazyInitMatchesExplicitInit) {
  for (const std::string& kind : api_test::rule_kinds()) {
    for (descent_dtype dtype : {DESCENT_FLOAT32, DESCENT_FLOAT64}) {
      SCOPED_TRACE(kind + " " + descent_dtype_name(dtype));
      Handle lazy(kind.c_str()), eager(kind.c_str());
      configure(lazy, kind);
      configure(eager, kind);
      Model ml = make_model(dtype);
      DESCENT_ASSERT_OK(lazy, ml.declare(lazy));
      DESCENT_ASSERT_OK(eager, ml.declare(eager));
      DESCENT_ASSERT_OK(eager, descent_optimizer_init(eager));
      ml.fill_params(5);
      Model me = ml;
      for (int s = 0; s < 3; ++s) {
        ml.fill_grads(50 + s);
        me.fill_grads(50 + s);
        DESCENT_ASSERT_OK(lazy, ml.update(lazy));
        DESCENT_ASSERT_OK(eager, me.update(eager));
        EXPECT_TRUE(ml.params() == me.params());
        EXPECT_EQ(api_test::state_snapshot(lazy), api_test::state_snapshot(eager));
      }
      EXPECT_EQ(api_test::step_of(lazy), 3u);
    }
  }
}

TEST(StateLayout, UpdateWithNoTensorsAdvancesStep) {
  for (const std::string& kind : api_test::rule_kinds()) {
    SCOPED_TRACE(kind);
    Handle h(kind.c_str());
    configure(h, kind);
    Model m = make_model(DESCENT_FLOAT32);
    DESCENT_ASSERT_OK(h, m.declare(h));
    m.fill_params(9);
    const auto params = m.params();
    DESCENT_ASSERT_OK(h,
                      descent_optimizer_update(h, 0, nullptr, nullptr, nullptr, nullptr, nullptr));
    EXPECT_EQ(api_test::step_of(h), 1u);
    EXPECT_TRUE(m.params() == params);
    // The state exists now (the first update initialises it) and is still zero.
    const auto state = api_test::state_snapshot(h);
    EXPECT_EQ(state.size(), 2 + slot_count(kind, m));
    for (const Slot& s : state) {
      if (s.key == "step" || s.key == "learning_rate") continue;
      for (unsigned char c : s.bytes) ASSERT_EQ(c, 0) << s.key;
    }
    m.fill_grads(10);
    DESCENT_ASSERT_OK(h, m.update(h, {}));  // all tensors
    const auto after_one = m.params();
    const char* const names[1] = {"w1"};
    DESCENT_ASSERT_OK(h, descent_optimizer_update(h, 0, names, nullptr, nullptr, nullptr, nullptr));
    EXPECT_EQ(api_test::step_of(h), 3u);
    EXPECT_TRUE(m.params() == after_one);
  }
}

// Tensors left out of an update keep their parameters and state, while the step advances once.
TEST(StateLayout, TensorsNotNamedAreLeftAlone) {
  for (const std::string& kind : api_test::rule_kinds()) {
    SCOPED_TRACE(kind);
    Handle h(kind.c_str());
    configure(h, kind);
    Model m = make_model(DESCENT_FLOAT64);
    DESCENT_ASSERT_OK(h, m.declare(h));
    m.fill_params(3);
    m.fill_grads(4);
    DESCENT_ASSERT_OK(h, m.update(h));
    const auto state_before = api_test::state_snapshot(h);
    const auto params_before = m.params();
    m.fill_grads(5);
    DESCENT_ASSERT_OK(h, m.update(h, {1}));
    const auto state_after = api_test::state_snapshot(h);
    EXPECT_EQ(api_test::step_of(h), 2u);
    for (std::size_t t = 0; t < m.tensors.size(); ++t) {
      if (t == 1) continue;
      EXPECT_EQ(m[t].param, params_before[t]) << m[t].name;
    }
    EXPECT_NE(m[1].param, params_before[1]);
    ASSERT_EQ(state_after.size(), state_before.size());
    for (std::size_t i = 0; i < state_after.size(); ++i) {
      const std::string& key = state_after[i].key;
      if (key == "step") continue;
      if (key.rfind("layers.0.weight.", 0) == 0) continue;
      EXPECT_EQ(state_after[i], state_before[i]) << key;
    }
  }
}

// A tensor with no elements needs no buffers and has empty slots.
TEST(StateLayout, ZeroElementTensor) {
  for (const std::string& kind : api_test::rule_kinds()) {
    SCOPED_TRACE(kind);
    Handle h(kind.c_str());
    configure(h, kind);
    Model m;
    m.add("empty", DESCENT_FLOAT32, {3, 0}).add("w", DESCENT_FLOAT32, {2});
    DESCENT_ASSERT_OK(h, m.declare(h));
    m.fill_params(1);
    m.fill_grads(2);
    DESCENT_ASSERT_OK(h, m.update(h));  // NULL buffers for "empty"
    // Adafactor factors a (3, 0) tensor: its slots are (3,) and (0,) (adafactor_test.cpp).
    if (kind == "adafactor") continue;
    const std::string key = "empty." + slot_names(kind, 2)[0];
    descent_dtype dt;
    size_t ndim = 0;
    int64_t shape[2] = {-1, -1};
    DESCENT_ASSERT_OK(h, descent_optimizer_state_info(h, key.c_str(), &dt, &ndim, shape, 2));
    EXPECT_EQ(ndim, 2u);
    EXPECT_EQ(shape[0], 3);
    EXPECT_EQ(shape[1], 0);
    DESCENT_EXPECT_OK(h, descent_optimizer_state_get(h, key.c_str(), DESCENT_FLOAT32, nullptr, 0));
    DESCENT_EXPECT_OK(h, descent_optimizer_state_set(h, key.c_str(), DESCENT_FLOAT32, nullptr, 0));
  }
}

// ---- learning rate ------------------------------------------------------------------------------

// SGD without momentum: p_{k+1} = p_k - lr_k * g_k, with lr_k the float32 rounding of what was set
// before update k (and, for float64, widened back).
TEST(LearningRate, ChangeTakesEffectAtNextUpdate) {
  for (descent_dtype dtype : {DESCENT_FLOAT32, DESCENT_FLOAT64}) {
    SCOPED_TRACE(descent_dtype_name(dtype));
    Handle h("sgd");
    Model m;
    m.add("w", dtype, {3});
    DESCENT_ASSERT_OK(h, m.declare(h));
    const double p0[3] = {1.0, -2.0, 0.375};
    const double g[3] = {0.5, 1.25, -3.0};
    for (int i = 0; i < 3; ++i) {
      m[0].set(m[0].param, i, p0[i]);
      m[0].set(m[0].grad, i, g[i]);
    }
    const double lrs[4] = {0.5, 0.25, 0.1, 1e-3};
    double expect32[3], expect64[3];
    for (int i = 0; i < 3; ++i) expect32[i] = expect64[i] = p0[i];
    for (int k = 0; k < 4; ++k) {
      DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", lrs[k]));
      DESCENT_ASSERT_OK(h, m.update(h));
      const float lr32 = static_cast<float>(lrs[k]);
      for (int i = 0; i < 3; ++i) {
        const float step32 = lr32 * static_cast<float>(g[i]);
        expect32[i] = static_cast<float>(static_cast<float>(expect32[i]) - step32);
        const double step64 = static_cast<double>(lr32) * g[i];
        expect64[i] = expect64[i] - step64;
        const double want = dtype == DESCENT_FLOAT32 ? expect32[i] : expect64[i];
        EXPECT_EQ(m[0].get(m[0].param, i), want) << "update " << k + 1 << " element " << i;
      }
    }
  }
}

TEST(LearningRate, StateSetLearningRateIsTheLearningRate) {
  Handle h("sgd");
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.5));
  Model m;
  m.add("w", DESCENT_FLOAT32, {1});
  DESCENT_ASSERT_OK(h, m.declare(h));
  m[0].set(m[0].param, 0, 1.0);
  m[0].set(m[0].grad, 0, 1.0);
  const float lr = 0.125f;
  DESCENT_ASSERT_OK(h, descent_optimizer_state_set(h, "learning_rate", DESCENT_FLOAT32, &lr, 1));
  double got = 0;
  DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, "learning_rate", &got));
  EXPECT_EQ(got, 0.125);
  DESCENT_ASSERT_OK(h, m.update(h));
  EXPECT_EQ(m[0].get(m[0].param, 0), 0.875);
  // And the step counter can be set too; the next update continues from it.
  const uint64_t step = 41;
  DESCENT_ASSERT_OK(h, descent_optimizer_state_set(h, "step", DESCENT_UINT64, &step, 1));
  DESCENT_ASSERT_OK(h, m.update(h));
  EXPECT_EQ(api_test::step_of(h), 42u);
}

// Adam with bias correction depends on the step: restoring "step" is what makes it continue.
TEST(LearningRate, RestoredStepDrivesBiasCorrection) {
  const char* config = R"({"learning_rate": 0.01, "bias_correction": true})";
  Handle a("adam");
  DESCENT_ASSERT_OK(a, descent_optimizer_configure_json(a, config));
  Model ma;
  ma.add("w", DESCENT_FLOAT32, {4});
  DESCENT_ASSERT_OK(a, ma.declare(a));
  ma.fill_params(1);
  for (int s = 0; s < 2; ++s) {
    ma.fill_grads(7 + s);
    DESCENT_ASSERT_OK(a, ma.update(a));
  }
  // b gets the moments only; c gets the moments and the step.
  Handle b("adam"), c("adam");
  Model mb = ma, mc = ma;
  for (descent_optimizer* h : {b.get(), c.get()}) {
    DESCENT_ASSERT_OK(h, descent_optimizer_configure_json(h, config));
    DESCENT_ASSERT_OK(h, mb.declare(h));
    DESCENT_ASSERT_OK(h, descent_optimizer_init(h));
    for (const char* key : {"w.m", "w.v"}) {
      float v[4];
      DESCENT_ASSERT_OK(a, descent_optimizer_state_get(a, key, DESCENT_FLOAT32, v, 4));
      DESCENT_ASSERT_OK(h, descent_optimizer_state_set(h, key, DESCENT_FLOAT32, v, 4));
    }
  }
  const uint64_t step = 2;
  DESCENT_ASSERT_OK(c, descent_optimizer_state_set(c, "step", DESCENT_UINT64, &step, 1));
  ma.fill_grads(20);
  mb.fill_grads(20);
  mc.fill_grads(20);
  DESCENT_ASSERT_OK(a, ma.update(a));
  DESCENT_ASSERT_OK(b, mb.update(b));
  DESCENT_ASSERT_OK(c, mc.update(c));
  EXPECT_NE(ma.params(), mb.params()) << "step 1 and step 3 gave the same bias correction";
  EXPECT_TRUE(ma.params() == mc.params());
  EXPECT_EQ(api_test::state_snapshot(a), api_test::state_snapshot(c));
}

}  // namespace
