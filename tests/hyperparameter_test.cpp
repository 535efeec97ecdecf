// Hyperparameters through the public C API: MLX's defaults per kind, enumeration, typed and JSON
// configuration, int-for-double conversion, and learning_rate held as float32.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"

namespace {

using api_test::Handle;

struct Default {
  std::string name;
  descent_value_type type;
  double number = 0;            // DOUBLE
  bool flag = false;            // BOOL
  std::vector<double> array{};  // DOUBLE_ARRAY
};

Default dbl(const char* n, double v) {
  return {n, DESCENT_VALUE_DOUBLE, v, false, {}};
}
Default boolean(const char* n, bool v) {
  return {n, DESCENT_VALUE_BOOL, 0, v, {}};
}
Default arr(const char* n, std::vector<double> v) {
  return {n, DESCENT_VALUE_DOUBLE_ARRAY, 0, false, std::move(v)};
}

// MLX's constructor signatures, in order, learning_rate (no default) excluded.
std::vector<Default> mlx_defaults(const std::string& kind) {
  if (kind == "sgd")
    return {dbl("momentum", 0.0), dbl("weight_decay", 0.0), dbl("dampening", 0.0),
            boolean("nesterov", false)};
  if (kind == "rmsprop") return {dbl("alpha", 0.99), dbl("eps", 1e-8)};
  if (kind == "adagrad") return {dbl("eps", 1e-8)};
  if (kind == "adadelta") return {dbl("rho", 0.9), dbl("eps", 1e-6)};
  if (kind == "adam")
    return {arr("betas", {0.9, 0.999}), dbl("eps", 1e-8), boolean("bias_correction", false)};
  if (kind == "adamw")
    return {arr("betas", {0.9, 0.999}), dbl("eps", 1e-8), dbl("weight_decay", 0.01),
            boolean("bias_correction", false)};
  if (kind == "adamax") return {arr("betas", {0.9, 0.999}), dbl("eps", 1e-8)};
  if (kind == "lion") return {arr("betas", {0.9, 0.99}), dbl("weight_decay", 0.0)};
  // Their defaults (with optional and descent-only keys) are checked in adafactor_test.cpp
  // (Adafactor.Defaults) and muon_test.cpp (MuonHyperparameters).
  if (kind == "adafactor" || kind == "muon") return {};
  ADD_FAILURE() << "no defaults for " << kind;
  return {};
}

class Hyperparameters : public ::testing::TestWithParam<std::string> {};

TEST_P(Hyperparameters, DefaultsMatchMlx) {
  const std::string kind = GetParam();
  Handle h(kind.c_str());
  for (const Default& d : mlx_defaults(kind)) {
    SCOPED_TRACE(d.name);
    descent_value_type type = DESCENT_VALUE_NONE;
    DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_type(h, d.name.c_str(), &type));
    ASSERT_EQ(type, d.type);
    switch (d.type) {
      case DESCENT_VALUE_DOUBLE: {
        double v = -12345;
        DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, d.name.c_str(), &v));
        EXPECT_EQ(v, d.number);  // exactly the double MLX uses
        break;
      }
      case DESCENT_VALUE_BOOL: {
        bool v = !d.flag;
        DESCENT_ASSERT_OK(h, descent_optimizer_get_bool(h, d.name.c_str(), &v));
        EXPECT_EQ(v, d.flag);
        break;
      }
      case DESCENT_VALUE_DOUBLE_ARRAY: {
        double v[4] = {-1, -1, -1, -1};
        size_t n = 0;
        DESCENT_ASSERT_OK(h, descent_optimizer_get_doubles(h, d.name.c_str(), v, 4, &n));
        ASSERT_EQ(n, d.array.size());
        for (size_t i = 0; i < n; ++i) EXPECT_EQ(v[i], d.array[i]) << "element " << i;
        break;
      }
      default:
        FAIL() << "unexpected type";
    }
  }
  // MLX has no default learning rate: it is unset until given.
  descent_value_type type = DESCENT_VALUE_DOUBLE;
  DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_type(h, "learning_rate", &type));
  EXPECT_EQ(type, DESCENT_VALUE_NONE);
}

TEST_P(Hyperparameters, EnumerationListsEveryKeyLearningRateFirst) {
  const std::string kind = GetParam();
  Handle h(kind.c_str());
  // Adafactor's and Muon's full key lists (optional and descent-only keys included) are checked in
  // adafactor_test.cpp and muon_test.cpp; here every kind lists learning_rate first, once.
  const bool full_list = kind != "adafactor" && kind != "muon";
  const auto defaults = mlx_defaults(kind);
  size_t count = 0;
  DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_count(h, &count));
  if (full_list) {
    ASSERT_EQ(count, defaults.size() + 1 + descent_test::precision_keys().size());
  } else {
    ASSERT_GT(count, 1u);
  }
  std::vector<std::string> names;
  for (size_t i = 0; i < count; ++i) {
    const char* name = nullptr;
    DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_name(h, i, &name));
    ASSERT_NE(name, nullptr);
    names.push_back(name);
  }
  std::vector<std::string> expected{"learning_rate"};
  for (const auto& d : defaults) expected.push_back(d.name);
  for (const auto& k : descent_test::precision_keys()) expected.push_back(k);
  if (full_list) {
    EXPECT_EQ(names, expected);
  } else {
    EXPECT_EQ(names.front(), "learning_rate");
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size())
        << "a key twice";
  }
  // Names are owned by the library and stay valid across calls on the handle.
  const char* first = nullptr;
  DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_name(h, 0, &first));
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.1));
  EXPECT_STREQ(first, "learning_rate");
  descent_value_type type = DESCENT_VALUE_NONE;
  DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_type(h, "learning_rate", &type));
  EXPECT_EQ(type, DESCENT_VALUE_DOUBLE);
}

TEST_P(Hyperparameters, EveryKeyRoundTripsThroughItsSetter) {
  const std::string kind = GetParam();
  Handle h(kind.c_str());
  for (const Default& d : mlx_defaults(kind)) {
    SCOPED_TRACE(d.name);
    switch (d.type) {
      case DESCENT_VALUE_DOUBLE: {
        const double value = d.number == 0.5 ? 0.25 : 0.5;
        DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, d.name.c_str(), value));
        double v = 0;
        DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, d.name.c_str(), &v));
        EXPECT_EQ(v, value);
        break;
      }
      case DESCENT_VALUE_BOOL: {
        if (d.name == "nesterov") {  // needs momentum, which is checked at update
          DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "momentum", 0.5));
        }
        DESCENT_ASSERT_OK(h, descent_optimizer_set_bool(h, d.name.c_str(), !d.flag));
        bool v = d.flag;
        DESCENT_ASSERT_OK(h, descent_optimizer_get_bool(h, d.name.c_str(), &v));
        EXPECT_EQ(v, !d.flag);
        break;
      }
      case DESCENT_VALUE_DOUBLE_ARRAY: {
        const double value[2] = {0.25, 0.75};
        DESCENT_ASSERT_OK(h, descent_optimizer_set_doubles(h, d.name.c_str(), value, 2));
        double v[2] = {0, 0};
        size_t n = 0;
        DESCENT_ASSERT_OK(h, descent_optimizer_get_doubles(h, d.name.c_str(), v, 2, &n));
        EXPECT_EQ(n, 2u);
        EXPECT_EQ(v[0], 0.25);
        EXPECT_EQ(v[1], 0.75);
        break;
      }
      default:
        FAIL();
    }
    // The type does not change by setting.
    descent_value_type type = DESCENT_VALUE_NONE;
    DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_type(h, d.name.c_str(), &type));
    EXPECT_EQ(type, d.type);
  }
}

TEST_P(Hyperparameters, IntAcceptedForDouble) {
  const std::string kind = GetParam();
  Handle h(kind.c_str());
  DESCENT_ASSERT_OK(h, descent_optimizer_set_int(h, "learning_rate", 2));
  double lr = 0;
  DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, "learning_rate", &lr));
  EXPECT_EQ(lr, 2.0);
  for (const Default& d : mlx_defaults(kind)) {
    if (d.type != DESCENT_VALUE_DOUBLE) continue;
    SCOPED_TRACE(d.name);
    DESCENT_ASSERT_OK(h, descent_optimizer_set_int(h, d.name.c_str(), 1));
    double v = 0;
    DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, d.name.c_str(), &v));
    EXPECT_EQ(v, 1.0);
    descent_value_type type = DESCENT_VALUE_NONE;
    DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_type(h, d.name.c_str(), &type));
    EXPECT_EQ(type, DESCENT_VALUE_DOUBLE);
    // The same through JSON, an integer literal for a double key.
    const std::string json = "{\"" + d.name + "\": 0}";
    if (d.name != "eps") {  // eps = 0 is out of range for some kinds
      DESCENT_ASSERT_OK(h, descent_optimizer_configure_json(h, json.c_str()));
      DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, d.name.c_str(), &v));
      EXPECT_EQ(v, 0.0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllKinds, Hyperparameters, ::testing::ValuesIn(api_test::rule_kinds()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// ---- JSON ---------------------------------------------------------------------------------------

TEST(HyperparameterJson, HeaderExampleApplies) {
  Handle h("adamw");
  DESCENT_ASSERT_OK(
      h, descent_optimizer_configure_json(
             h, R"({"learning_rate": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.01})"));
  double lr = 0, wd = 0, betas[2] = {0, 0};
  size_t n = 0;
  DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, "learning_rate", &lr));
  DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, "weight_decay", &wd));
  DESCENT_ASSERT_OK(h, descent_optimizer_get_doubles(h, "betas", betas, 2, &n));
  EXPECT_EQ(lr, static_cast<double>(1e-3f));
  EXPECT_EQ(wd, 0.01);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(betas[0], 0.9);
  EXPECT_EQ(betas[1], 0.999);
}

TEST(HyperparameterJson, EveryTypeAndIntegerArrays) {
  Handle h("adam");
  DESCENT_ASSERT_OK(
      h, descent_optimizer_configure_json(h, R"({"learning_rate": 1, "betas": [0, 0.5], "eps": 0,
                                 "bias_correction": true})"));
  double lr = 0, eps = 1, betas[2] = {1, 1};
  size_t n = 0;
  bool bc = false;
  DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, "learning_rate", &lr));
  DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, "eps", &eps));
  DESCENT_ASSERT_OK(h, descent_optimizer_get_doubles(h, "betas", betas, 2, &n));
  DESCENT_ASSERT_OK(h, descent_optimizer_get_bool(h, "bias_correction", &bc));
  EXPECT_EQ(lr, 1.0);
  EXPECT_EQ(eps, 0.0);
  EXPECT_EQ(betas[0], 0.0);
  EXPECT_EQ(betas[1], 0.5);
  EXPECT_TRUE(bc);
  // Later calls only change the keys they name.
  DESCENT_ASSERT_OK(h, descent_optimizer_configure_json(h, R"({"eps": 1e-7})"));
  DESCENT_ASSERT_OK(h, descent_optimizer_get_doubles(h, "betas", betas, 2, &n));
  DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, "eps", &eps));
  EXPECT_EQ(betas[1], 0.5);
  EXPECT_EQ(eps, 1e-7);
}

// ---- learning_rate as float32 -----------------------------------------------------------------

TEST(HyperparameterLearningRate, HeldAsFloat32) {
  for (const std::string& kind : api_test::rule_kinds()) {
    SCOPED_TRACE(kind);
    Handle h(kind.c_str());
    for (double v : {0.1, 1e-3, 3e-4, 0.7, 1.0 / 3.0, 123456.789, -0.05}) {
      DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", v));
      double got = 0;
      DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, "learning_rate", &got));
      EXPECT_EQ(got, static_cast<double>(static_cast<float>(v))) << v;
      float state = 0;
      DESCENT_ASSERT_OK(
          h, descent_optimizer_state_get(h, "learning_rate", DESCENT_FLOAT32, &state, 1));
      EXPECT_EQ(state, static_cast<float>(v));
    }
    DESCENT_ASSERT_OK(h, descent_optimizer_configure_json(h, R"({"learning_rate": 0.1})"));
    double got = 0;
    DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, "learning_rate", &got));
    EXPECT_EQ(got, static_cast<double>(0.1f));
    EXPECT_NE(got, 0.1);
  }
}

// ---- get_doubles ----------------------------------------------------------------------------

TEST(HyperparameterGetDoubles, NullOutputGivesTheCount) {
  for (const char* kind : {"adam", "adamw", "adamax", "lion"}) {
    SCOPED_TRACE(kind);
    Handle h(kind);
    size_t n = 0;
    DESCENT_ASSERT_OK(h, descent_optimizer_get_doubles(h, "betas", nullptr, 0, &n));
    EXPECT_EQ(n, 2u);
    n = 0;
    DESCENT_ASSERT_OK(h, descent_optimizer_get_doubles(h, "betas", nullptr, 1, &n));
    EXPECT_EQ(n, 2u);
    // Exactly enough, and more than enough (the rest is left alone).
    double v[4] = {-1, -1, -1, -1};
    DESCENT_ASSERT_OK(h, descent_optimizer_get_doubles(h, "betas", v, 2, &n));
    EXPECT_EQ(n, 2u);
    EXPECT_EQ(v[0], 0.9);
    n = 0;
    DESCENT_ASSERT_OK(h, descent_optimizer_get_doubles(h, "betas", v, 4, &n));
    EXPECT_EQ(n, 2u);
    EXPECT_EQ(v[2], -1);
    EXPECT_EQ(v[3], -1);
  }
}

// ---- setters take effect at the next update -----------------------------------------------------

TEST(HyperparameterEffect, ChangeAppliesAtNextUpdate) {
  // SGD: changing weight_decay and momentum between updates changes the next step only.
  Handle h("sgd");
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.5));
  const int64_t one[1] = {1};
  DESCENT_ASSERT_OK(h, descent_optimizer_add_parameter(h, "w", DESCENT_FLOAT64, 1, one));
  double p = 2.0, g = 1.0;
  const char* names[1] = {"w"};
  void* params[1] = {&p};
  const void* grads[1] = {&g};
  DESCENT_ASSERT_OK(h, descent_optimizer_update(h, 1, names, nullptr, nullptr, params, grads));
  EXPECT_EQ(p, 1.5);  // 2 - 0.5*1
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "weight_decay", 0.5));
  DESCENT_ASSERT_OK(h, descent_optimizer_update(h, 1, names, nullptr, nullptr, params, grads));
  EXPECT_EQ(p, 0.625);  // g' = 1 + 0.5*1.5 = 1.75; 1.5 - 0.875
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "weight_decay", 0.0));
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "momentum", 0.5));
  DESCENT_ASSERT_OK(h, descent_optimizer_update(h, 1, names, nullptr, nullptr, params, grads));
  EXPECT_EQ(p, 0.125);  // v was never touched without momentum: v = 0.5*0 + 1 = 1; 0.625 - 0.5
  DESCENT_ASSERT_OK(h, descent_optimizer_update(h, 1, names, nullptr, nullptr, params, grads));
  EXPECT_EQ(p, -0.625);  // v = 0.5*1 + 1 = 1.5; 0.125 - 0.75
}

}  // namespace
