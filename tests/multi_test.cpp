// MultiOptimizer (kind "multi") through the public C API: MLX's test_multi_optimizer expectations,
// filters (first match wins, globs, ndim, callbacks, excludes), empty groups, borrowed group
// handles, all-or-nothing errors, steps that advance together, state round trips through
// "states.<i>.<key>", JSON configuration and the Muon + AdamW one-liner.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"

namespace {

using api_test::Handle;
using api_test::Model;

std::size_t group_of(descent_optimizer* multi, const char* name) {
  std::size_t g = 99;
  EXPECT_EQ(descent_multi_parameter_group(multi, name, &g), DESCENT_OK)
      << name << ": " << descent_optimizer_last_error(multi);
  return g;
}

descent_optimizer* group_handle(descent_optimizer* multi, std::size_t index) {
  descent_optimizer* g = nullptr;
  EXPECT_EQ(descent_multi_group(multi, index, &g), DESCENT_OK)
      << descent_optimizer_last_error(multi);
  return g;
}

uint64_t step_at(const descent_optimizer* opt, const char* key) {
  uint64_t step = ~0ull;
  EXPECT_EQ(descent_optimizer_state_get(opt, key, DESCENT_UINT64, &step, 1), DESCENT_OK)
      << key << ": " << descent_optimizer_last_error(opt);
  return step;
}

double learning_rate_of(const descent_optimizer* opt) {
  double lr = NAN;
  EXPECT_EQ(descent_optimizer_get_double(opt, "learning_rate", &lr), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  return lr;
}

// Keys of group `g`, without the "states.<g>." prefix.
std::vector<std::string> group_keys(const descent_optimizer* multi, std::size_t g) {
  const std::string prefix = "states." + std::to_string(g) + ".";
  std::vector<std::string> out;
  for (const auto& k : api_test::state_keys(multi))
    if (k.rfind(prefix, 0) == 0) out.push_back(k.substr(prefix.size()));
  return out;
}

bool any_contains(const std::vector<std::string>& keys, const std::string& part) {
  for (const auto& k : keys)
    if (k.find(part) != std::string::npos) return true;
  return false;
}

// MLX's test model: l1, drop (no parameters), l2, vals = [Linear, ReLU, ReLU].
Model mlx_test_model() {
  Model m;
  m.add("l1.weight", DESCENT_FLOAT32, {2, 2})
      .add("l1.bias", DESCENT_FLOAT32, {2})
      .add("l2.weight", DESCENT_FLOAT32, {2, 2})
      .add("l2.bias", DESCENT_FLOAT32, {2})
      .add("vals.0.weight", DESCENT_FLOAT32, {2, 2})
      .add("vals.0.bias", DESCENT_FLOAT32, {2});
  m.fill_params(1);
  m.fill_grads(2);
  return m;
}

// [Adam(1e-3), SGD(0.1)] with Adam taking weights of ndim > 1, as in MLX's test.
Handle adam_sgd_multi() {
  Handle multi("multi");
  std::size_t index = 99;
  EXPECT_EQ(descent_multi_add_group(multi, "adam", R"({"learning_rate": 1e-3})", &index),
            DESCENT_OK)
      << descent_optimizer_last_error(multi);
  EXPECT_EQ(index, 0u);
  EXPECT_EQ(descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.1})", &index), DESCENT_OK)
      << descent_optimizer_last_error(multi);
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(descent_multi_filter_ndim(multi, 0, 2, -1), DESCENT_OK)
      << descent_optimizer_last_error(multi);
  return multi;
}

// ---- MLX's expectations ------------------------------------------------------------------------

TEST(Multi, MlxTestMultiOptimizer) {
  Handle multi = adam_sgd_multi();
  Model model = mlx_test_model();
  DESCENT_ASSERT_OK(multi, model.declare(multi));
  DESCENT_ASSERT_OK(multi, descent_optimizer_init(multi));
  std::size_t groups = 0;
  DESCENT_ASSERT_OK(multi, descent_multi_group_count(multi, &groups));
  EXPECT_EQ(groups, 2u);  // len(state["states"]) == 2
  const auto adam = group_keys(multi, 0), sgd = group_keys(multi, 1);
  EXPECT_EQ(adam.size(), 8u);
  EXPECT_EQ(sgd.size(), 5u);
  EXPECT_EQ((sgd.size() - 2) * 2, adam.size() - 2);
  EXPECT_FALSE(any_contains(adam, "bias"));
  EXPECT_FALSE(any_contains(sgd, "weight"));
  EXPECT_EQ(api_test::state_keys(multi).size(), 13u);
  // The key order is MLX's: group by group, step and learning_rate first, then the parameters in
  // declaration order.
  const std::vector<std::string> expected_adam = {
      "step",        "learning_rate", "l1.weight.m",     "l1.weight.v",
      "l2.weight.m", "l2.weight.v",   "vals.0.weight.m", "vals.0.weight.v"};
  EXPECT_EQ(adam, expected_adam);
  const std::vector<std::string> expected_sgd = {"step", "learning_rate", "l1.bias.v", "l2.bias.v",
                                                 "vals.0.bias.v"};
  EXPECT_EQ(sgd, expected_sgd);
  DESCENT_ASSERT_OK(multi, model.update(multi));
  EXPECT_EQ(step_at(multi, "states.0.step"), 1u);
  EXPECT_EQ(step_at(multi, "states.1.step"), 1u);
}

TEST(Multi, MlxParameterlessLayersMuonAdamw) {
  // Sequential(Linear(4,4), ReLU(), Linear(4,4)) with [Muon(0.01), AdamW(0.01)], filter ndim >= 2.
  Handle multi("multi");
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "muon", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "adamw", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi, descent_multi_filter_ndim(multi, 0, 2, -1));
  Model model;
  model.add("layers.0.weight", DESCENT_FLOAT32, {4, 4})
      .add("layers.0.bias", DESCENT_FLOAT32, {4})
      .add("layers.2.weight", DESCENT_FLOAT32, {4, 4})
      .add("layers.2.bias", DESCENT_FLOAT32, {4});
  model.fill_params(3);
  DESCENT_ASSERT_OK(multi, model.declare(multi));
  const auto before = model.params();
  for (int step = 0; step < 2; ++step) {
    model.fill_grads(10 + step);
    DESCENT_ASSERT_OK(multi, model.update(multi));
  }
  EXPECT_NE(model.tensors[0].param, before[0]) << "layers.0.weight did not change";
  EXPECT_NE(model.tensors[1].param, before[1]) << "layers.0.bias did not change";
  EXPECT_EQ(group_of(multi, "layers.0.weight"), 0u);
  EXPECT_EQ(group_of(multi, "layers.0.bias"), 1u);
}

// ---- filters -----------------------------------------------------------------------------------

TEST(Multi, FirstMatchingGroupWinsAndTheLastIsTheFallback) {
  Handle multi("multi");
  for (const char* kind : {"adam", "lion", "sgd"})
    DESCENT_ASSERT_OK(multi,
                      descent_multi_add_group(multi, kind, R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi, descent_multi_filter_name(multi, 0, "*.weight"));
  DESCENT_ASSERT_OK(multi, descent_multi_filter_name(multi, 1, "layers.*"));
  Model model;
  model
      .add("layers.0.weight", DESCENT_FLOAT32, {3, 2})  // both 0 and 1 match: 0
      .add("layers.0.bias", DESCENT_FLOAT32, {3})       // 1
      .add("head.bias", DESCENT_FLOAT64, {2})           // neither: the fallback
      .add("head.weight", DESCENT_FLOAT64, {2, 3});     // 0
  DESCENT_ASSERT_OK(multi, model.declare(multi));
  // Before init the filters are evaluated on request ...
  EXPECT_EQ(group_of(multi, "layers.0.weight"), 0u);
  EXPECT_EQ(group_of(multi, "layers.0.bias"), 1u);
  EXPECT_EQ(group_of(multi, "head.bias"), 2u);
  EXPECT_EQ(group_of(multi, "head.weight"), 0u);
  DESCENT_ASSERT_OK(multi, descent_optimizer_init(multi));
  // ... and after it the assignment is fixed and shows in the state.
  EXPECT_EQ(group_of(multi, "head.bias"), 2u);
  EXPECT_EQ(group_keys(multi, 0),
            (std::vector<std::string>{"step", "learning_rate", "layers.0.weight.m",
                                      "layers.0.weight.v", "head.weight.m", "head.weight.v"}));
  EXPECT_EQ(group_keys(multi, 1),
            (std::vector<std::string>{"step", "learning_rate", "layers.0.bias.m"}));
  EXPECT_EQ(group_keys(multi, 2),
            (std::vector<std::string>{"step", "learning_rate", "head.bias.v"}));
  std::size_t count = 0;
  DESCENT_ASSERT_OK(group_handle(multi, 0),
                    descent_optimizer_parameter_count(group_handle(multi, 0), &count));
  EXPECT_EQ(count, 2u);
  DESCENT_ASSERT_OK(multi, descent_optimizer_parameter_count(multi, &count));
  EXPECT_EQ(count, 4u);
}

TEST(Multi, GlobFilters) {
  Handle multi("multi");
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "adam", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi, descent_multi_filter_name(multi, 0, "blocks.*"));    // prefix
  DESCENT_ASSERT_OK(multi, descent_multi_filter_name(multi, 0, "*.scale"));     // suffix
  DESCENT_ASSERT_OK(multi, descent_multi_filter_name(multi, 0, "layer?.w"));    // one character
  DESCENT_ASSERT_OK(multi, descent_multi_filter_name(multi, 0, "exact.name"));  // exact
  DESCENT_ASSERT_OK(multi, descent_multi_filter_name(multi, 0, "a*b*c"));       // several stars
  const int64_t shape[] = {2};
  const std::vector<std::pair<const char*, std::size_t>> cases = {{"blocks.0.attn.weight", 0},
                                                                  {"blocks", 1},
                                                                  {"xblocks.0", 1},
                                                                  {"norm.scale", 0},
                                                                  {"scale", 1},
                                                                  {"layer1.w", 0},
                                                                  {"layer10.w", 1},
                                                                  {"layer.w", 1},
                                                                  {"exact.name", 0},
                                                                  {"exact.names", 1},
                                                                  {"xexact.name", 1},
                                                                  {"abc", 0},
                                                                  {"a.b.c", 0},
                                                                  {"aXbYbZc", 0},
                                                                  {"acb", 1},
                                                                  {"a*b", 1}};
  for (const auto& [name, group] : cases)
    DESCENT_ASSERT_OK(multi,
                      descent_optimizer_add_parameter(multi, name, DESCENT_FLOAT32, 1, shape));
  for (const auto& [name, group] : cases) EXPECT_EQ(group_of(multi, name), group) << name;
}

TEST(Multi, NdimFilters) {
  Handle multi("multi");
  for (const char* kind : {"adam", "adamw", "sgd"})
    DESCENT_ASSERT_OK(multi,
                      descent_multi_add_group(multi, kind, R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi, descent_multi_filter_ndim(multi, 0, 0, 0));  // scalars
  DESCENT_ASSERT_OK(multi, descent_multi_filter_ndim(multi, 1, 2, 3));  // 2-D and 3-D
  const int64_t shape[] = {2, 2, 2, 2};
  for (std::size_t ndim = 0; ndim <= 4; ++ndim) {
    const std::string name = "p" + std::to_string(ndim);
    DESCENT_ASSERT_OK(multi, descent_optimizer_add_parameter(multi, name.c_str(), DESCENT_FLOAT32,
                                                             ndim, ndim ? shape : nullptr));
  }
  EXPECT_EQ(group_of(multi, "p0"), 0u);
  EXPECT_EQ(group_of(multi, "p1"), 2u);
  EXPECT_EQ(group_of(multi, "p2"), 1u);
  EXPECT_EQ(group_of(multi, "p3"), 1u);
  EXPECT_EQ(group_of(multi, "p4"), 2u);
}

TEST(Multi, ExcludeRejectsWhatTheIncludesAccept) {
  Handle multi("multi");
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "adam", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "lion", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi, descent_multi_filter_ndim(multi, 0, 2, -1));
  DESCENT_ASSERT_OK(multi, descent_multi_exclude_name(multi, 0, "*embed*"));
  DESCENT_ASSERT_OK(multi, descent_multi_exclude_name(multi, 0, "head.*"));
  // A group with excludes only includes everything else.
  DESCENT_ASSERT_OK(multi, descent_multi_exclude_name(multi, 1, "*.bias"));
  const int64_t mat[] = {3, 4}, vec[] = {4};
  DESCENT_ASSERT_OK(
      multi, descent_optimizer_add_parameter(multi, "tok_embed.weight", DESCENT_FLOAT32, 2, mat));
  DESCENT_ASSERT_OK(multi,
                    descent_optimizer_add_parameter(multi, "head.weight", DESCENT_FLOAT32, 2, mat));
  DESCENT_ASSERT_OK(multi,
                    descent_optimizer_add_parameter(multi, "fc.weight", DESCENT_FLOAT32, 2, mat));
  DESCENT_ASSERT_OK(multi,
                    descent_optimizer_add_parameter(multi, "fc.bias", DESCENT_FLOAT32, 1, vec));
  DESCENT_ASSERT_OK(multi,
                    descent_optimizer_add_parameter(multi, "norm.scale", DESCENT_FLOAT32, 1, vec));
  EXPECT_EQ(group_of(multi, "tok_embed.weight"), 1u);
  EXPECT_EQ(group_of(multi, "head.weight"), 1u);
  EXPECT_EQ(group_of(multi, "fc.weight"), 0u);
  EXPECT_EQ(group_of(multi, "fc.bias"), 2u);
  EXPECT_EQ(group_of(multi, "norm.scale"), 1u);
}

struct CallbackData {
  std::string needle;
  int calls = 0;
  int frees = 0;
};

descent_status contains_needle(const char* name, size_t ndim, const int64_t* shape, void* user_data,
                               bool* accept, char*, size_t) {
  auto* d = static_cast<CallbackData*>(user_data);
  ++d->calls;
  *accept = !(ndim > 0 && !shape) && std::string(name).find(d->needle) != std::string::npos;
  return DESCENT_OK;
}

void count_free(void* user_data) {
  ++static_cast<CallbackData*>(user_data)->frees;
}

TEST(Multi, CallbackFilterUserDataIsFreedOnce) {
  CallbackData data{"attn", 0, 0};
  CallbackData rejected{"never", 0, 0};
  {
    Handle multi("multi");
    DESCENT_ASSERT_OK(
        multi, descent_multi_add_group(multi, "adam", R"({"learning_rate": 0.01})", nullptr));
    DESCENT_ASSERT_OK(multi,
                      descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.01})", nullptr));
    // A failed call leaves user_data with the caller: not freed, now or later.
    EXPECT_EQ(descent_multi_filter_callback(multi, 5, contains_needle, &rejected, count_free),
              DESCENT_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(descent_multi_filter_callback(multi, 0, nullptr, &rejected, count_free),
              DESCENT_ERR_NULL_ARGUMENT);
    DESCENT_ASSERT_OK(multi,
                      descent_multi_filter_callback(multi, 0, contains_needle, &data, count_free));
    Model model;
    model.add("blocks.0.attn.q", DESCENT_FLOAT32, {2, 2})
        .add("blocks.0.mlp", DESCENT_FLOAT32, {2, 2});
    model.fill_params(4);
    model.fill_grads(5);
    DESCENT_ASSERT_OK(multi, model.declare(multi));
    EXPECT_EQ(group_of(multi, "blocks.0.attn.q"), 0u);
    EXPECT_EQ(group_of(multi, "blocks.0.mlp"), 1u);
    EXPECT_GT(data.calls, 0);
    // Operations that copy the optimizer internally (JSON configuration, init, state loads) share
    // the callback rather than copying user_data.
    DESCENT_ASSERT_OK(multi, descent_optimizer_configure_json(
                                 multi, R"({"groups": [{"include": [{"callback": true}]}, {}]})"));
    DESCENT_ASSERT_OK(multi, model.update(multi));
    const int calls_after_init = data.calls;
    DESCENT_ASSERT_OK(multi, model.update(multi));
    EXPECT_EQ(data.calls, calls_after_init) << "filters run at init only";
    EXPECT_EQ(group_of(multi, "blocks.0.attn.q"), 0u);
    // Filters are fixed after init; the failed call does not take user_data.
    EXPECT_EQ(descent_multi_filter_callback(multi, 0, contains_needle, &rejected, count_free),
              DESCENT_ERR_INVALID_STATE);
    EXPECT_EQ(data.frees, 0);
  }
  EXPECT_EQ(data.frees, 1);
  EXPECT_EQ(rejected.frees, 0);
  EXPECT_EQ(rejected.calls, 0);
}

TEST(Multi, CallbackFilterWithoutFreeFunction) {
  CallbackData data{"w", 0, 0};
  Handle multi("multi");
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "adam", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi,
                    descent_multi_filter_callback(multi, 0, contains_needle, &data, nullptr));
  const int64_t shape[] = {2};
  DESCENT_ASSERT_OK(multi, descent_optimizer_add_parameter(multi, "w", DESCENT_FLOAT32, 1, shape));
  DESCENT_ASSERT_OK(multi, descent_optimizer_add_parameter(multi, "b", DESCENT_FLOAT32, 1, shape));
  EXPECT_EQ(group_of(multi, "w"), 0u);
  EXPECT_EQ(group_of(multi, "b"), 1u);
}

// ---- groups that get nothing, steps ------------------------------------------------------------

TEST(Multi, EmptyGroupIsFineAndStillSteps) {
  // MLX raises IndexError when a filter matches nothing; descent accepts the empty group.
  Handle multi("multi");
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "adam", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(multi, descent_multi_filter_name(multi, 0, "no_such_parameter*"));
  Model model = mlx_test_model();
  DESCENT_ASSERT_OK(multi, model.declare(multi));
  for (int i = 0; i < 3; ++i) DESCENT_ASSERT_OK(multi, model.update(multi));
  EXPECT_EQ(group_keys(multi, 0), (std::vector<std::string>{"step", "learning_rate"}));
  EXPECT_EQ(group_keys(multi, 1).size(), 2u + 6u);
  EXPECT_EQ(step_at(multi, "states.0.step"), 3u);
  EXPECT_EQ(step_at(multi, "states.1.step"), 3u);
  std::size_t count = 99;
  DESCENT_ASSERT_OK(multi, descent_optimizer_parameter_count(group_handle(multi, 0), &count));
  EXPECT_EQ(count, 0u);

  // A multi with a single group is a plain optimizer with prefixed keys.
  Handle single("multi");
  DESCENT_ASSERT_OK(single,
                    descent_multi_add_group(single, "adam", R"({"learning_rate": 0.01})", nullptr));
  DESCENT_ASSERT_OK(single, model.declare(single));
  DESCENT_ASSERT_OK(single, model.update(single));
  EXPECT_EQ(group_keys(single, 0).size(), 2u + 12u);
}

TEST(Multi, StepsAdvanceTogetherWhateverIsNamed) {
  Handle multi = adam_sgd_multi();
  Model model = mlx_test_model();
  DESCENT_ASSERT_OK(multi, model.declare(multi));
  DESCENT_ASSERT_OK(multi, model.update(multi, {0}));  // only an Adam tensor
  EXPECT_EQ(step_at(multi, "states.0.step"), 1u);
  EXPECT_EQ(step_at(multi, "states.1.step"), 1u);
  DESCENT_ASSERT_OK(multi, model.update(multi, {1, 3}));  // only SGD tensors
  EXPECT_EQ(step_at(multi, "states.0.step"), 2u);
  EXPECT_EQ(step_at(multi, "states.1.step"), 2u);
  // Nothing named at all: MLX's update({}, {}) still advances every step.
  DESCENT_ASSERT_OK(
      multi, descent_optimizer_update(multi, 0, nullptr, nullptr, nullptr, nullptr, nullptr));
  EXPECT_EQ(step_at(multi, "states.0.step"), 3u);
  EXPECT_EQ(step_at(multi, "states.1.step"), 3u);
  // Each group has its own step: setting one leaves the other.
  const uint64_t ten = 10;
  DESCENT_ASSERT_OK(multi,
                    descent_optimizer_state_set(multi, "states.1.step", DESCENT_UINT64, &ten, 1));
  DESCENT_ASSERT_OK(multi, model.update(multi));
  EXPECT_EQ(step_at(multi, "states.0.step"), 4u);
  EXPECT_EQ(step_at(multi, "states.1.step"), 11u);
}

// A multi optimizer steps exactly as separate optimizers on the parts would, bit for bit, with
// group hyperparameters changed through borrowed handles between steps.
DESCENT_CLOSED_FORM_KIND("multi");
TEST(Multi, MatchesSeparateOptimizersBitForBit) {
  Handle multi = adam_sgd_multi();
  Handle adam("adam"), sgd("sgd");
  DESCENT_ASSERT_OK(adam, descent_optimizer_configure_json(adam, R"({"learning_rate": 1e-3})"));
  DESCENT_ASSERT_OK(sgd, descent_optimizer_configure_json(sgd, R"({"learning_rate": 0.1})"));
  Model model = mlx_test_model();
  model.add("scalar", DESCENT_FLOAT64, {});
  model.tensors.back().fill_param(7);
  Model weights, biases;
  for (const auto& t : model.tensors) (t.shape.size() >= 2 ? weights : biases).tensors.push_back(t);
  DESCENT_ASSERT_OK(multi, model.declare(multi));
  DESCENT_ASSERT_OK(adam, weights.declare(adam));
  DESCENT_ASSERT_OK(sgd, biases.declare(sgd));
  descent_optimizer* g1 = group_handle(multi, 1);
  for (int step = 0; step < 4; ++step) {
    if (step == 2) {
      DESCENT_ASSERT_OK(g1, descent_optimizer_set_double(g1, "momentum", 0.9));
      DESCENT_ASSERT_OK(sgd, descent_optimizer_set_double(sgd, "momentum", 0.9));
      DESCENT_ASSERT_OK(multi, descent_optimizer_set_double(multi, "learning_rate", 0.25));
      DESCENT_ASSERT_OK(adam, descent_optimizer_set_double(adam, "learning_rate", 0.25));
      DESCENT_ASSERT_OK(sgd, descent_optimizer_set_double(sgd, "learning_rate", 0.25));
    }
    model.fill_grads(20 + step);
    for (auto& t : weights.tensors)
      for (const auto& m : model.tensors)
        if (m.name == t.name) t.grad = m.grad;
    for (auto& t : biases.tensors)
      for (const auto& m : model.tensors)
        if (m.name == t.name) t.grad = m.grad;
    DESCENT_ASSERT_OK(multi, model.update(multi));
    DESCENT_ASSERT_OK(adam, weights.update(adam));
    DESCENT_ASSERT_OK(sgd, biases.update(sgd));
  }
  for (const auto& t : model.tensors) {
    const Model& part = t.shape.size() >= 2 ? weights : biases;
    for (const auto& p : part.tensors) {
      if (p.name == t.name) {
        EXPECT_EQ(p.param, t.param) << t.name;
      }
    }
  }
  const auto check_state = [&](const descent_optimizer* single, std::size_t g) {
    for (const auto& slot : api_test::state_snapshot(single)) {
      const std::string key = "states." + std::to_string(g) + "." + slot.key;
      std::vector<unsigned char> got(slot.bytes.size());
      ASSERT_EQ(descent_optimizer_state_get(
                    multi, key.c_str(), slot.dtype, got.empty() ? nullptr : got.data(),
                    static_cast<std::size_t>(api_test::numel_of(slot.shape))),
                DESCENT_OK)
          << key << ": " << descent_optimizer_last_error(multi);
      EXPECT_EQ(got, slot.bytes) << key;
    }
  };
  check_state(adam, 0);
  check_state(sgd, 1);
}

// ---- hyperparameters and borrowed handles
// --------------------------------------------------------

TEST(Multi, LearningRateReadsGroupZeroAndSetsEveryGroup) {
  Handle multi = adam_sgd_multi();
  std::size_t count = 0;
  DESCENT_ASSERT_OK(multi, descent_optimizer_hyperparameter_count(multi, &count));
  EXPECT_EQ(count, 1u);
  const char* name = nullptr;
  DESCENT_ASSERT_OK(multi, descent_optimizer_hyperparameter_name(multi, 0, &name));
  EXPECT_STREQ(name, "learning_rate");
  EXPECT_EQ(learning_rate_of(multi), static_cast<double>(1e-3f));
  DESCENT_ASSERT_OK(multi, descent_optimizer_set_double(multi, "learning_rate", 0.5));
  EXPECT_EQ(learning_rate_of(group_handle(multi, 0)), 0.5);
  EXPECT_EQ(learning_rate_of(group_handle(multi, 1)), 0.5);
  DESCENT_ASSERT_OK(multi, descent_optimizer_configure_json(multi, R"({"learning_rate": 0.25})"));
  EXPECT_EQ(learning_rate_of(group_handle(multi, 1)), 0.25);
  // A group's own learning rate, through its handle; the multi reads group 0's.
  DESCENT_ASSERT_OK(multi,
                    descent_optimizer_set_double(group_handle(multi, 1), "learning_rate", 0.125));
  EXPECT_EQ(learning_rate_of(multi), 0.25);
  EXPECT_EQ(learning_rate_of(group_handle(multi, 1)), 0.125);
  // Other hyperparameters belong to the groups.
  EXPECT_FAILS(multi, nullptr, DESCENT_ERR_UNKNOWN_KEY, "betas",
               descent_optimizer_set_double(multi, "betas", 0.5));
  double v = 0;
  EXPECT_EQ(descent_optimizer_get_double(multi, "momentum", &v), DESCENT_ERR_UNKNOWN_KEY);
  // An empty multi has no learning rate yet.
  Handle empty("multi");
  EXPECT_EQ(descent_optimizer_get_double(empty, "learning_rate", &v), DESCENT_ERR_INVALID_STATE);
  EXPECT_FAILS(empty, nullptr, DESCENT_ERR_INVALID_STATE, "learning_rate",
               descent_optimizer_set_double(empty, "learning_rate", 0.1));
}

// Everything observable about a multi optimizer: its state, every group's hyperparameters, and
// the caller's buffers.
struct MultiSnapshot {
  api_test::Snapshot multi;
  std::vector<std::vector<std::string>> groups;
  bool operator==(const MultiSnapshot& o) const { return multi == o.multi && groups == o.groups; }
};

MultiSnapshot multi_snapshot(descent_optimizer* multi, const Model* model) {
  MultiSnapshot s{api_test::snapshot(multi, model), {}};
  std::size_t n = 0;
  EXPECT_EQ(descent_multi_group_count(multi, &n), DESCENT_OK);
  for (std::size_t g = 0; g < n; ++g)
    s.groups.push_back(api_test::hyper_snapshot(group_handle(multi, g)));
  return s;
}

#define EXPECT_MULTI_FAILS(multi, model, code, mention, expr)                      \
  do {                                                                             \
    const MultiSnapshot before_ = multi_snapshot((multi), (model));                \
    EXPECT_FAILS((multi), (model), (code), (mention), (expr));                     \
    EXPECT_TRUE(multi_snapshot((multi), (model)) == before_) << "a group changed"; \
  } while (0)

struct ScheduleData {
  int calls = 0;
  int frees = 0;
};

descent_status nan_at_five(uint64_t step, void* user_data, double* value, char*, size_t) {
  ++static_cast<ScheduleData*>(user_data)->calls;
  *value = step == 5 ? NAN : 0.125 * static_cast<double>(step + 1);
  return DESCENT_OK;
}

void free_schedule_data(void* user_data) {
  ++static_cast<ScheduleData*>(user_data)->frees;
}

TEST(Multi, ScheduleAttachesToEveryGroupAllOrNothing) {
  ScheduleData failed, attached;
  {
    Handle multi = adam_sgd_multi();
    descent_optimizer* g0 = group_handle(multi, 0);
    descent_optimizer* g1 = group_handle(multi, 1);
    // Group 1 is at step 5, where the callback fails: group 0 keeps its learning rate and gets no
    // schedule, and user_data stays with the caller.
    const uint64_t five = 5, zero = 0;
    DESCENT_ASSERT_OK(
        multi, descent_optimizer_state_set(multi, "states.1.step", DESCENT_UINT64, &five, 1));
    EXPECT_MULTI_FAILS(
        multi, nullptr, DESCENT_ERR_OUT_OF_RANGE, "group 1 (sgd): learning_rate",
        descent_optimizer_set_schedule_callback(multi, nan_at_five, &failed, free_schedule_data));
    EXPECT_EQ(learning_rate_of(g0), static_cast<double>(1e-3f));
    EXPECT_EQ(failed.frees, 0);
    // Attached to both groups, each evaluates it at its own step; user_data is freed once.
    DESCENT_ASSERT_OK(
        multi, descent_optimizer_state_set(multi, "states.1.step", DESCENT_UINT64, &zero, 1));
    DESCENT_ASSERT_OK(multi, descent_optimizer_set_schedule_callback(multi, nan_at_five, &attached,
                                                                     free_schedule_data));
    EXPECT_EQ(learning_rate_of(g0), 0.125);
    EXPECT_EQ(learning_rate_of(g1), 0.125);
    Model model = mlx_test_model();
    DESCENT_ASSERT_OK(multi, model.declare(multi));
    DESCENT_ASSERT_OK(multi, model.update(multi));
    DESCENT_ASSERT_OK(multi, model.update(multi));
    EXPECT_EQ(learning_rate_of(g1), 0.25);  // update k uses schedule(k - 1)
    // Clearing the schedule clears it everywhere; the learning rates keep their last values.
    DESCENT_ASSERT_OK(multi, descent_optimizer_clear_schedule(multi));
    EXPECT_EQ(attached.frees, 1);
    DESCENT_ASSERT_OK(multi, model.update(multi));
    EXPECT_EQ(learning_rate_of(g0), 0.25);
    EXPECT_EQ(learning_rate_of(g1), 0.25);
    // A schedule on one group only, through its handle.
    DESCENT_ASSERT_OK(g1,
                      descent_optimizer_set_schedule_callback(g1, nan_at_five, &attached, nullptr));
    DESCENT_ASSERT_OK(multi, model.update(multi));  // evaluated at step 3
    EXPECT_EQ(learning_rate_of(g0), 0.25);
    EXPECT_EQ(learning_rate_of(g1), 0.5);
    DESCENT_ASSERT_OK(multi, model.update(multi));  // step 4
    EXPECT_FAILS(multi, &model, DESCENT_ERR_OUT_OF_RANGE, "group 1 (sgd): ", model.update(multi));
    EXPECT_EQ(step_at(multi, "states.0.step"), 5u);
  }
  EXPECT_EQ(failed.frees, 0);
  EXPECT_EQ(attached.frees, 1);
}

TEST(Multi, BorrowedGroupHandles) {
  Handle multi = adam_sgd_multi();
  descent_optimizer* g0 = group_handle(multi, 0);
  descent_optimizer* g1 = group_handle(multi, 1);
  ASSERT_NE(g0, nullptr);
  ASSERT_NE(g1, nullptr);
  EXPECT_EQ(group_handle(multi, 1), g1) << "the same handle every time";
  EXPECT_STREQ(descent_optimizer_kind(g0), "adam");
  EXPECT_STREQ(descent_optimizer_kind(g1), "sgd");
  EXPECT_STREQ(descent_optimizer_kind(multi), "multi");
  // Configuring through the handle configures the group.
  const double betas[] = {0.8, 0.9};
  DESCENT_ASSERT_OK(g0, descent_optimizer_set_doubles(g0, "betas", betas, 2));
  DESCENT_ASSERT_OK(g1,
                    descent_optimizer_configure_json(g1, R"({"momentum": 0.5, "nesterov": true})"));
  bool nesterov = false;
  DESCENT_ASSERT_OK(g1, descent_optimizer_get_bool(g1, "nesterov", &nesterov));
  EXPECT_TRUE(nesterov);
  // Freeing a borrowed handle does nothing; it stays valid as long as the multi optimizer.
  descent_optimizer_free(g1);
  EXPECT_STREQ(descent_optimizer_kind(g1), "sgd");
  // Parameters, init and updates go through the multi optimizer.
  const int64_t shape[] = {2};
  EXPECT_FAILS(g0, nullptr, DESCENT_ERR_INVALID_STATE, "multi optimizer",
               descent_optimizer_add_parameter(g0, "x", DESCENT_FLOAT32, 1, shape));
  EXPECT_FAILS(g0, nullptr, DESCENT_ERR_INVALID_STATE, "multi optimizer",
               descent_optimizer_init(g0));
  EXPECT_FAILS(g0, nullptr, DESCENT_ERR_INVALID_STATE, "multi optimizer",
               descent_optimizer_update(g0, 0, nullptr, nullptr, nullptr, nullptr, nullptr));
  // Group errors are recorded on the group handle.
  EXPECT_EQ(descent_optimizer_set_double(g0, "no_such_key", 1.0), DESCENT_ERR_UNKNOWN_KEY);
  EXPECT_NE(std::string(descent_optimizer_last_error(g0)).find("no_such_key"), std::string::npos);
  // The group's state is readable through its handle too.
  Model model = mlx_test_model();
  DESCENT_ASSERT_OK(multi, model.declare(multi));
  DESCENT_ASSERT_OK(multi, model.update(multi));
  EXPECT_EQ(step_at(g0, "step"), 1u);
  EXPECT_EQ(api_test::state_keys(g1).size(), 5u);
  // Multi-only functions reject other kinds and bad indices.
  descent_optimizer* none = nullptr;
  EXPECT_FAILS(multi, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "group 2",
               descent_multi_group(multi, 2, &none));
  EXPECT_EQ(none, nullptr);
  EXPECT_FAILS(g0, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "not 'multi'",
               descent_multi_group(g0, 0, &none));
  Handle adam("adam");
  std::size_t n = 0;
  EXPECT_FAILS(adam, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "not 'multi'",
               descent_multi_group_count(adam, &n));
  EXPECT_EQ(descent_multi_group_count(nullptr, &n), DESCENT_ERR_NULL_ARGUMENT);
}

// ---- errors change nothing
// -----------------------------------------------------------------------

TEST(Multi, ErrorsChangeNothing) {
  Handle multi = adam_sgd_multi();
  Model model = mlx_test_model();
  DESCENT_ASSERT_OK(multi, model.declare(multi));
  descent_optimizer* g1 = group_handle(multi, 1);

  // Before the first update: group 1 cannot step, so group 0 must not either (and nothing is
  // initialised).
  DESCENT_ASSERT_OK(g1, descent_optimizer_set_bool(g1, "nesterov", true));  // needs momentum > 0
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_OUT_OF_RANGE,
                     "group 1 (sgd): ", model.update(multi));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_OUT_OF_RANGE,
                     "group 1 (sgd): ", descent_optimizer_init(multi));
  EXPECT_EQ(group_keys(multi, 0).size(), 2u);
  DESCENT_ASSERT_OK(g1, descent_optimizer_set_bool(g1, "nesterov", false));
  DESCENT_ASSERT_OK(multi, model.update(multi));

  // After it.
  DESCENT_ASSERT_OK(g1, descent_optimizer_set_bool(g1, "nesterov", true));
  model.fill_grads(3);
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_OUT_OF_RANGE,
                     "group 1 (sgd): ", model.update(multi));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_OUT_OF_RANGE,
                     "group 1 (sgd): ", model.update(multi, {0}));
  DESCENT_ASSERT_OK(g1, descent_optimizer_set_bool(g1, "nesterov", false));

  // Bad tensors, wherever they are in the list.
  const char* names[] = {"l1.weight", "l1.bias", "nope"};
  const descent_dtype dtypes[] = {DESCENT_FLOAT32, DESCENT_FLOAT64, DESCENT_FLOAT32};
  const int64_t numels[] = {4, 3, 2};
  void* params[] = {model[0].param_ptr(), model[1].param_ptr(), model[3].param_ptr()};
  const void* grads[] = {model[0].grad_ptr(), model[1].grad_ptr(), model[3].grad_ptr()};
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_UNKNOWN_KEY, "nope",
                     descent_optimizer_update(multi, 3, names, nullptr, nullptr, params, grads));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_DTYPE_MISMATCH, "l1.bias",
                     descent_optimizer_update(multi, 2, names, dtypes, nullptr, params, grads));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_SHAPE_MISMATCH, "l1.bias",
                     descent_optimizer_update(multi, 2, names, nullptr, numels, params, grads));
  const char* twice[] = {"l2.bias", "l1.weight", "l2.bias"};
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_DUPLICATE, "l2.bias",
                     descent_optimizer_update(multi, 3, twice, nullptr, nullptr, params, grads));
  void* null_params[] = {model[0].param_ptr(), nullptr};
  EXPECT_MULTI_FAILS(
      multi, &model, DESCENT_ERR_NULL_ARGUMENT, "l1.bias",
      descent_optimizer_update(multi, 2, names, nullptr, nullptr, null_params, grads));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_NULL_ARGUMENT, "names",
                     descent_optimizer_update(multi, 1, nullptr, nullptr, nullptr, params, grads));
  void* overlap[] = {model[0].param_ptr()};
  const void* overlap_g[] = {model[0].param_ptr()};
  EXPECT_MULTI_FAILS(
      multi, &model, DESCENT_ERR_INVALID_ARGUMENT, "overlap",
      descent_optimizer_update(multi, 1, names, nullptr, nullptr, overlap, overlap_g));

  // Configuration that fails in group 1 after group 0 accepted its part is rolled back.
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_OUT_OF_RANGE, "group 1 (sgd): ",
                     descent_optimizer_configure_json(
                         multi, R"({"groups": [{"config": {"learning_rate": 0.5, "eps": 1e-3}},
                                                {"config": {"momentum": 0.5, "dampening": 0.5, "nesterov": true}}]})"));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_OUT_OF_RANGE, "learning_rate",
                     descent_optimizer_set_double(multi, "learning_rate", NAN));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_WRONG_TYPE, "learning_rate",
                     descent_optimizer_unset(multi, "learning_rate"));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_PARSE, nullptr,
                     descent_optimizer_configure_json(multi, "{\"groups\": ["));
  EXPECT_MULTI_FAILS(
      multi, &model, DESCENT_ERR_UNKNOWN_KEY, "momentum",
      descent_optimizer_configure_json(multi, R"({"learning_rate": 0.5, "momentum": 0.1})"));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_INVALID_ARGUMENT, "groups",
                     descent_optimizer_configure_json(multi, R"({"groups": [{}]})"));
  EXPECT_MULTI_FAILS(
      multi, &model, DESCENT_ERR_INVALID_ARGUMENT, "kind",
      descent_optimizer_configure_json(multi, R"({"groups": [{"kind": "sgd"}, {}]})"));
  EXPECT_MULTI_FAILS(
      multi, &model, DESCENT_ERR_INVALID_STATE, "fixed",
      descent_optimizer_configure_json(multi, R"({"groups": [{"include": [{"name": "*"}]}, {}]})"));
  EXPECT_MULTI_FAILS(
      multi, &model, DESCENT_ERR_UNKNOWN_KEY, "filters",
      descent_optimizer_configure_json(multi, R"({"groups": [{"filters": []}, {}]})"));

  // Groups and filters are fixed once the state exists; parameters too.
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, nullptr,
                     descent_multi_add_group(multi, "adam", nullptr, nullptr));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, nullptr,
                     descent_multi_filter_name(multi, 0, "*"));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, nullptr,
                     descent_multi_filter_ndim(multi, 0, 1, 1));
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, nullptr,
                     descent_multi_exclude_name(multi, 0, "*"));
  const int64_t shape[] = {2};
  EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, "late",
                     descent_optimizer_add_parameter(multi, "late", DESCENT_FLOAT32, 1, shape));

  // State keys that do not exist.
  float f = 0;
  for (const char* key :
       {"step", "states.2.step", "states.01.step", "states.0.", "states.x.step", "states.0.nope",
        "states.1.l1.weight.m", "states.99999999999999999999.step"}) {
    EXPECT_MULTI_FAILS(multi, &model, DESCENT_ERR_UNKNOWN_KEY, nullptr,
                       descent_optimizer_state_set(multi, key, DESCENT_FLOAT32, &f, 1));
  }
  const double d = 0;
  EXPECT_MULTI_FAILS(
      multi, &model, DESCENT_ERR_DTYPE_MISMATCH, "group 0 (adam): ",
      descent_optimizer_state_set(multi, "states.0.learning_rate", DESCENT_FLOAT64, &d, 1));

  // What succeeded afterwards still works.
  DESCENT_ASSERT_OK(multi, model.update(multi));
  EXPECT_EQ(step_at(multi, "states.0.step"), 2u);
  EXPECT_EQ(step_at(multi, "states.1.step"), 2u);
}

TEST(Multi, ConstructionErrors) {
  Handle multi("multi");
  Model model = mlx_test_model();
  DESCENT_ASSERT_OK(multi, model.declare(multi));  // parameters may come before the groups
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, "no groups", model.update(multi));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, "no groups",
               descent_optimizer_init(multi));
  std::size_t g = 0;
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, "no groups",
               descent_multi_parameter_group(multi, "l1.weight", &g));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_UNKNOWN_KIND, "nope",
               descent_multi_add_group(multi, "nope", nullptr, nullptr));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_ARGUMENT, "multi",
               descent_multi_add_group(multi, "multi", nullptr, nullptr));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_UNKNOWN_KEY, "group 0 (adam): ",
               descent_multi_add_group(multi, "adam", R"({"momentum": 0.9})", nullptr));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_OUT_OF_RANGE, "group 0 (adam): ",
               descent_multi_add_group(multi, "adam", R"({"eps": -1})", nullptr));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_NULL_ARGUMENT, "kind",
               descent_multi_add_group(multi, nullptr, nullptr, nullptr));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_ARGUMENT, "group 0",
               descent_multi_filter_name(multi, 0, "*"));

  DESCENT_ASSERT_OK(
      multi, descent_multi_add_group(multi, "adam", nullptr, nullptr));  // no learning rate yet
  DESCENT_ASSERT_OK(multi, descent_multi_filter_ndim(multi, 0, 2, -1));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_ARGUMENT, nullptr,
               descent_multi_filter_name(multi, 0, ""));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_NULL_ARGUMENT, "glob",
               descent_multi_filter_name(multi, 0, nullptr));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_ARGUMENT, "min_ndim",
               descent_multi_filter_ndim(multi, 0, -1, 2));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_ARGUMENT, "max_ndim",
               descent_multi_filter_ndim(multi, 0, 3, 2));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_ARGUMENT, nullptr,
               descent_multi_exclude_name(multi, 0, ""));
  // The last group is the fallback: a filter on it is an error at init (MLX wants one filter
  // fewer than optimizers).
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, "group 0 (adam): the last group",
               model.update(multi));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, "the last group",
               descent_multi_parameter_group(multi, "l1.weight", &g));
  DESCENT_ASSERT_OK(multi, descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.1})", &g));
  EXPECT_EQ(g, 1u);
  // Group 0 has no learning rate: no group steps.
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_STATE, "group 0 (adam): learning_rate",
               model.update(multi));
  EXPECT_EQ(descent_multi_parameter_group(multi, "nope", &g), DESCENT_ERR_UNKNOWN_KEY);
  const int64_t shape[] = {2};
  EXPECT_FAILS(multi, &model, DESCENT_ERR_DUPLICATE, "l1.weight",
               descent_optimizer_add_parameter(multi, "l1.weight", DESCENT_FLOAT32, 1, shape));
  EXPECT_FAILS(multi, &model, DESCENT_ERR_INVALID_ARGUMENT, "step",
               descent_optimizer_add_parameter(multi, "step", DESCENT_FLOAT32, 1, shape));
  DESCENT_ASSERT_OK(multi,
                    descent_optimizer_set_double(group_handle(multi, 0), "learning_rate", 0.01));
  DESCENT_ASSERT_OK(multi, model.update(multi));
}

// ---- state
// ---------------------------------------------------------------------------------------

TEST(Multi, StateRoundTripThroughPrefixedKeys) {
  auto make = [] {
    Handle multi("multi");
    EXPECT_EQ(descent_optimizer_configure_json(multi, R"({"groups": [
        {"kind": "adamw", "config": {"learning_rate": 0.01, "weight_decay": 0.1},
         "include": [{"ndim": [2, -1]}], "exclude": ["vals.*"]},
        {"kind": "lion", "config": {"learning_rate": 0.001}, "include": [{"name": "vals.*"}]},
        {"kind": "sgd", "config": {"learning_rate": 0.1, "momentum": 0.9}}]})"),
              DESCENT_OK)
        << descent_optimizer_last_error(multi);
    return multi;
  };
  Handle a = make(), b = make();
  Model ma = mlx_test_model();
  DESCENT_ASSERT_OK(a, ma.declare(a));
  EXPECT_EQ(group_of(a, "l1.weight"), 0u);
  EXPECT_EQ(group_of(a, "vals.0.weight"), 1u);
  EXPECT_EQ(group_of(a, "vals.0.bias"), 1u);
  EXPECT_EQ(group_of(a, "l2.bias"), 2u);
  for (int step = 0; step < 3; ++step) {
    ma.fill_grads(30 + step);
    DESCENT_ASSERT_OK(a, ma.update(a));
  }
  Model mb = ma;
  DESCENT_ASSERT_OK(b, mb.declare(b));
  // Copy every slot; b is not initialised yet, so the first per-parameter key initialises it.
  const auto slots = api_test::state_snapshot(a);
  // adamw: l1.weight, l2.weight (m, v); lion: vals.0.* (m); sgd: l1.bias, l2.bias (v).
  ASSERT_EQ(slots.size(), (2u + 4u) + (2u + 2u) + (2u + 2u));
  for (const auto& s : slots)
    DESCENT_ASSERT_OK(
        b, descent_optimizer_state_set(b, s.key.c_str(), s.dtype, s.bytes.data(),
                                       static_cast<std::size_t>(api_test::numel_of(s.shape))));
  EXPECT_EQ(api_test::state_snapshot(b), slots);
  for (int step = 0; step < 2; ++step) {
    ma.fill_grads(40 + step);
    mb.fill_grads(40 + step);
    DESCENT_ASSERT_OK(a, ma.update(a));
    DESCENT_ASSERT_OK(b, mb.update(b));
  }
  EXPECT_EQ(api_test::state_snapshot(b), api_test::state_snapshot(a));
  for (std::size_t i = 0; i < ma.tensors.size(); ++i)
    EXPECT_EQ(mb[i].param, ma[i].param) << ma[i].name;
  EXPECT_EQ(step_at(b, "states.2.step"), 5u);
}

TEST(Multi, StateInfoAndKeysBeforeInit) {
  Handle multi = adam_sgd_multi();
  Model model = mlx_test_model();
  DESCENT_ASSERT_OK(multi, model.declare(multi));
  EXPECT_EQ(api_test::state_keys(multi),
            (std::vector<std::string>{"states.0.step", "states.0.learning_rate", "states.1.step",
                                      "states.1.learning_rate"}));
  descent_dtype dt = DESCENT_FLOAT64;
  std::size_t ndim = 9;
  DESCENT_ASSERT_OK(
      multi, descent_optimizer_state_info(multi, "states.1.learning_rate", &dt, &ndim, nullptr, 0));
  EXPECT_EQ(dt, DESCENT_FLOAT32);
  EXPECT_EQ(ndim, 0u);
  EXPECT_EQ(descent_optimizer_state_info(multi, "states.0.l1.weight.m", &dt, &ndim, nullptr, 0),
            DESCENT_ERR_UNKNOWN_KEY);  // as in MLX: no slots before init
  // A wrong-sized slot before init changes nothing (and initialises nothing).
  std::vector<float> m(3, 1.0f);
  EXPECT_FAILS(
      multi, &model, DESCENT_ERR_SHAPE_MISMATCH, "group 0 (adam): ",
      descent_optimizer_state_set(multi, "states.0.l1.weight.m", DESCENT_FLOAT32, m.data(), 3));
  // A bias slot does not exist in the Adam group.
  EXPECT_FAILS(
      multi, &model, DESCENT_ERR_UNKNOWN_KEY, nullptr,
      descent_optimizer_state_set(multi, "states.0.l1.bias.m", DESCENT_FLOAT32, m.data(), 2));
  m.assign(4, 0.5f);
  DESCENT_ASSERT_OK(multi, descent_optimizer_state_set(multi, "states.0.l1.weight.m",
                                                       DESCENT_FLOAT32, m.data(), 4));
  EXPECT_EQ(api_test::state_keys(multi).size(), 13u) << "every group was initialised";
  std::vector<float> got(4);
  DESCENT_ASSERT_OK(multi, descent_optimizer_state_get(multi, "states.0.l1.weight.m",
                                                       DESCENT_FLOAT32, got.data(), 4));
  EXPECT_EQ(got, m);
  // Key pointers stay valid while the keys do not change.
  const char* k0 = nullptr;
  const char* k5 = nullptr;
  DESCENT_ASSERT_OK(multi, descent_optimizer_state_key(multi, 0, &k0));
  DESCENT_ASSERT_OK(multi, descent_optimizer_state_key(multi, 5, &k5));
  EXPECT_STREQ(k0, "states.0.step");
  EXPECT_STREQ(k5, "states.0.l2.weight.v");
  const char* k12 = nullptr;
  DESCENT_ASSERT_OK(multi, descent_optimizer_state_key(multi, 12, &k12));
  EXPECT_STREQ(k0, "states.0.step");
  EXPECT_STREQ(k12, "states.1.vals.0.bias.v");
  EXPECT_EQ(descent_optimizer_state_key(multi, 13, &k0), DESCENT_ERR_INVALID_ARGUMENT);
}

// ---- JSON configuration
// ----------------------------------------------------------------------------

TEST(Multi, ConfigureJsonCreatesAndConfiguresGroups) {
  Handle multi("multi");
  DESCENT_ASSERT_OK(multi, descent_optimizer_configure_json(multi, R"({
      "groups": [{"kind": "adam", "config": {"betas": [0.8, 0.9]},
                  "include": [{"name": "*.weight"}, {"ndim": [0, 0]}], "exclude": ["l2.*"]},
                 {"kind": "sgd"}],
      "learning_rate": 0.5})"));
  std::size_t n = 0;
  DESCENT_ASSERT_OK(multi, descent_multi_group_count(multi, &n));
  ASSERT_EQ(n, 2u);
  EXPECT_STREQ(descent_optimizer_kind(group_handle(multi, 0)), "adam");
  EXPECT_EQ(learning_rate_of(group_handle(multi, 0)), 0.5);
  EXPECT_EQ(learning_rate_of(group_handle(multi, 1)), 0.5);
  double betas[2] = {0, 0};
  DESCENT_ASSERT_OK(multi,
                    descent_optimizer_get_doubles(group_handle(multi, 0), "betas", betas, 2, &n));
  EXPECT_EQ(betas[0], 0.8);
  Model model = mlx_test_model();
  model.add("s", DESCENT_FLOAT32, {});
  DESCENT_ASSERT_OK(multi, model.declare(multi));
  EXPECT_EQ(group_of(multi, "l1.weight"), 0u);
  EXPECT_EQ(group_of(multi, "l2.weight"), 1u);
  EXPECT_EQ(group_of(multi, "l1.bias"), 1u);
  EXPECT_EQ(group_of(multi, "s"), 0u);
  // Configuring existing groups: kinds may be left out; filters replace the old ones before init.
  DESCENT_ASSERT_OK(multi, descent_optimizer_configure_json(multi, R"({"groups": [
      {"include": [{"name": "l2.*"}], "exclude": []}, {"kind": "sgd", "config": {"momentum": 0.5}}]})"));
  EXPECT_EQ(group_of(multi, "l1.weight"), 1u);
  EXPECT_EQ(group_of(multi, "l2.bias"), 0u);
  double momentum = 0;
  DESCENT_ASSERT_OK(multi,
                    descent_optimizer_get_double(group_handle(multi, 1), "momentum", &momentum));
  EXPECT_EQ(momentum, 0.5);
  // A callback filter cannot be created from JSON.
  Handle fresh("multi");
  EXPECT_FAILS(
      fresh, nullptr, DESCENT_ERR_UNSUPPORTED, "callback",
      descent_optimizer_configure_json(
          fresh,
          R"({"groups": [{"kind": "adam", "include": [{"callback": true}]}, {"kind": "sgd"}]})"));
  EXPECT_FAILS(fresh, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "kind",
               descent_optimizer_configure_json(fresh, R"({"groups": [{"kind": "adam"}, {}]})"));
  EXPECT_FAILS(
      fresh, nullptr, DESCENT_ERR_OUT_OF_RANGE, "group 1 (sgd): ",
      descent_optimizer_configure_json(
          fresh,
          R"({"groups": [{"kind": "adam"}, {"kind": "sgd", "config": {"nesterov": true}}]})"));
  EXPECT_FAILS(
      fresh, nullptr, DESCENT_ERR_WRONG_TYPE, "ndim",
      descent_optimizer_configure_json(
          fresh, R"({"groups": [{"kind": "adam", "include": [{"ndim": 2}]}, {"kind": "sgd"}]})"));
  DESCENT_ASSERT_OK(fresh, descent_multi_group_count(fresh, &n));
  EXPECT_EQ(n, 0u);
}

// ---- the Muon + AdamW one-liner
// ------------------------------------------------------------------

TEST(Multi, MuonAdamwOneLinerAssignment) {
  descent_optimizer* raw = nullptr;
  ASSERT_EQ(
      descent_multi_create_muon_adamw(R"({"learning_rate": 0.02})", R"({"learning_rate": 3e-4})",
                                      nullptr, &raw, nullptr, 0),
      DESCENT_OK)
      << descent_last_error();
  struct Free {
    descent_optimizer* p;
    ~Free() { descent_optimizer_free(p); }
  } guard{raw};
  EXPECT_STREQ(descent_optimizer_kind(raw), "multi");
  std::size_t n = 0;
  DESCENT_ASSERT_OK(raw, descent_multi_group_count(raw, &n));
  ASSERT_EQ(n, 2u);
  EXPECT_STREQ(descent_optimizer_kind(group_handle(raw, 0)), "muon");
  EXPECT_STREQ(descent_optimizer_kind(group_handle(raw, 1)), "adamw");
  EXPECT_EQ(learning_rate_of(group_handle(raw, 0)), static_cast<double>(0.02f));
  EXPECT_EQ(learning_rate_of(group_handle(raw, 1)), static_cast<double>(3e-4f));
  Model model;
  model
      .add("model.embed_tokens.weight", DESCENT_FLOAT32, {32, 8})          // adamw: embedding
      .add("model.layers.0.input_layernorm.weight", DESCENT_FLOAT32, {8})  // adamw: 1-D (and norm)
      .add("model.layers.0.self_attn.q_proj.weight", DESCENT_FLOAT32, {8, 8})  // muon
      .add("model.layers.0.self_attn.q_proj.bias", DESCENT_FLOAT32, {8})       // adamw: bias
      .add("model.layers.0.mlp.up_proj.weight", DESCENT_FLOAT32, {16, 8})      // muon
      .add("model.layers.0.conv.weight", DESCENT_FLOAT32, {4, 2, 3, 3})        // muon: ndim 4
      .add("model.norm.weight", DESCENT_FLOAT32, {8})                          // adamw
      .add("model.final_norm.weight", DESCENT_FLOAT32, {8, 8})                 // adamw: *norm*
      .add("lm_head.weight", DESCENT_FLOAT32, {32, 8})                         // adamw: head
      .add("classifier.head.weight", DESCENT_FLOAT32, {4, 8})                  // adamw: *head*
      .add("scale", DESCENT_FLOAT32, {});                                      // adamw: scalar
  model.fill_params(8);
  model.fill_grads(9);
  DESCENT_ASSERT_OK(raw, model.declare(raw));
  const std::vector<std::size_t> expected = {1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1};
  for (std::size_t i = 0; i < model.tensors.size(); ++i)
    EXPECT_EQ(group_of(raw, model[i].name.c_str()), expected[i]) << model[i].name;
  DESCENT_ASSERT_OK(raw, model.update(raw));
  EXPECT_EQ(group_keys(raw, 0).size(), 2u + 3u);       // muon: v per matrix
  EXPECT_EQ(group_keys(raw, 1).size(), 2u + 2u * 8u);  // adamw: m, v

  // Custom names; NULL configs give MLX's defaults (a learning rate is still needed).
  descent_optimizer* custom = nullptr;
  ASSERT_EQ(
      descent_multi_create_muon_adamw(nullptr, nullptr, " *embed* , *proj*,", &custom, nullptr, 0),
      DESCENT_OK)
      << descent_last_error();
  Free guard2{custom};
  Model m2 = model;
  DESCENT_ASSERT_OK(custom, m2.declare(custom));
  EXPECT_EQ(group_of(custom, "model.layers.0.self_attn.q_proj.weight"), 1u);
  EXPECT_EQ(group_of(custom, "lm_head.weight"), 0u);
  EXPECT_EQ(group_of(custom, "model.layers.0.conv.weight"), 0u);
  EXPECT_FAILS(custom, &m2, DESCENT_ERR_INVALID_STATE, "group 0 (muon): learning_rate",
               m2.update(custom));
  // Empty list: only ndim decides.
  descent_optimizer* all = nullptr;
  ASSERT_EQ(descent_multi_create_muon_adamw(nullptr, nullptr, "", &all, nullptr, 0), DESCENT_OK);
  Free guard3{all};
  DESCENT_ASSERT_OK(all, m2.declare(all));
  EXPECT_EQ(group_of(all, "lm_head.weight"), 0u);
  EXPECT_EQ(group_of(all, "scale"), 1u);
  // Errors.
  descent_optimizer* bad = nullptr;
  EXPECT_EQ(descent_multi_create_muon_adamw(R"({"nope": 1})", nullptr, nullptr, &bad, nullptr, 0),
            DESCENT_ERR_UNKNOWN_KEY);
  EXPECT_NE(std::string(descent_last_error()).find("group 0 (muon): "), std::string::npos)
      << descent_last_error();
  EXPECT_EQ(bad, nullptr);
  EXPECT_EQ(descent_multi_create_muon_adamw(nullptr, R"({"eps": -1})", nullptr, &bad, nullptr, 0),
            DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_EQ(bad, nullptr);
  EXPECT_EQ(descent_multi_create_muon_adamw(nullptr, nullptr, nullptr, nullptr, nullptr, 0),
            DESCENT_ERR_NULL_ARGUMENT);
}

}  // namespace
