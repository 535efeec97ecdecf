// Every bad input gets its documented status code and a fresh, non-empty message (per handle and
// per thread), and leaves hyperparameters, state (every slot, bitwise), the parameter count and
// the caller's buffers exactly as they were. Driven through the public C API only.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"

namespace {

using api_test::Handle;
using api_test::Model;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// An Adam optimizer with two tensors (float32 (4,5) and float64 (3,)) that has taken two steps,
// so that every state slot holds something non-zero.
class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    opt_ = Handle("adam");
    DESCENT_ASSERT_OK(opt_, descent_optimizer_set_double(opt_, "learning_rate", 0.01));
    DESCENT_ASSERT_OK(opt_, descent_optimizer_set_bool(opt_, "bias_correction", true));
    model_.add("layer.w", DESCENT_FLOAT32, {4, 5}).add("layer.b", DESCENT_FLOAT64, {3});
    DESCENT_ASSERT_OK(opt_, model_.declare(opt_));
    model_.fill_params(1);
    for (uint64_t k = 0; k < 2; ++k) {
      model_.fill_grads(10 + k);
      DESCENT_ASSERT_OK(opt_, model_.update(opt_));
    }
    model_.fill_grads(20);
    ASSERT_EQ(api_test::step_of(opt_), 2u);
  }

  // The update arrays for both tensors, which tests then spoil one entry of.
  struct UpdateArgs {
    std::vector<const char*> names;
    std::vector<descent_dtype> dtypes;
    std::vector<int64_t> numels;
    std::vector<void*> params;
    std::vector<const void*> grads;
    descent_status run(descent_optimizer* opt) const {
      return descent_optimizer_update(opt, names.size(), names.data(), dtypes.data(), numels.data(),
                                      params.data(), grads.data());
    }
  };
  UpdateArgs args() {
    UpdateArgs a;
    for (auto& t : model_.tensors) {
      a.names.push_back(t.name.c_str());
      a.dtypes.push_back(t.dtype);
      a.numels.push_back(t.numel);
      a.params.push_back(t.param_ptr());
      a.grads.push_back(t.grad_ptr());
    }
    return a;
  }

  Handle opt_;
  Model model_;
};

// ---- library-level functions ------------------------------------------------------------------

TEST(BadInputLibrary, StatusNames) {
  const std::pair<descent_status, const char*> names[] = {
      {DESCENT_OK, "DESCENT_OK"},
      {DESCENT_ERR_NULL_ARGUMENT, "DESCENT_ERR_NULL_ARGUMENT"},
      {DESCENT_ERR_INVALID_ARGUMENT, "DESCENT_ERR_INVALID_ARGUMENT"},
      {DESCENT_ERR_UNKNOWN_KIND, "DESCENT_ERR_UNKNOWN_KIND"},
      {DESCENT_ERR_UNKNOWN_KEY, "DESCENT_ERR_UNKNOWN_KEY"},
      {DESCENT_ERR_WRONG_TYPE, "DESCENT_ERR_WRONG_TYPE"},
      {DESCENT_ERR_OUT_OF_RANGE, "DESCENT_ERR_OUT_OF_RANGE"},
      {DESCENT_ERR_DTYPE_MISMATCH, "DESCENT_ERR_DTYPE_MISMATCH"},
      {DESCENT_ERR_SHAPE_MISMATCH, "DESCENT_ERR_SHAPE_MISMATCH"},
      {DESCENT_ERR_INVALID_STATE, "DESCENT_ERR_INVALID_STATE"},
      {DESCENT_ERR_PARSE, "DESCENT_ERR_PARSE"},
      {DESCENT_ERR_BUFFER_TOO_SMALL, "DESCENT_ERR_BUFFER_TOO_SMALL"},
      {DESCENT_ERR_IO, "DESCENT_ERR_IO"},
      {DESCENT_ERR_CORRUPT, "DESCENT_ERR_CORRUPT"},
      {DESCENT_ERR_OUT_OF_MEMORY, "DESCENT_ERR_OUT_OF_MEMORY"},
      {DESCENT_ERR_UNSUPPORTED, "DESCENT_ERR_UNSUPPORTED"},
      {DESCENT_ERR_DUPLICATE, "DESCENT_ERR_DUPLICATE"},
      {DESCENT_ERR_INTERNAL, "DESCENT_ERR_INTERNAL"},
  };
  for (const auto& [code, name] : names) EXPECT_STREQ(descent_status_name(code), name);
  // The numeric values are frozen.
  EXPECT_EQ(DESCENT_ERR_NULL_ARGUMENT, 1);
  EXPECT_EQ(DESCENT_ERR_DUPLICATE, 16);
  EXPECT_EQ(DESCENT_ERR_INTERNAL, 99);
  // A value that is no status still gets a string.
  const char* unknown = descent_status_name(static_cast<descent_status>(1234));
  ASSERT_NE(unknown, nullptr);
  EXPECT_STRNE(unknown, "");
}

TEST(BadInputLibrary, DtypeNamesAndVersion) {
  EXPECT_STREQ(descent_dtype_name(DESCENT_FLOAT32), "float32");
  EXPECT_STREQ(descent_dtype_name(DESCENT_FLOAT64), "float64");
  EXPECT_STREQ(descent_dtype_name(DESCENT_BFLOAT16), "bfloat16");
  EXPECT_STREQ(descent_dtype_name(DESCENT_FLOAT16), "float16");
  EXPECT_STREQ(descent_dtype_name(DESCENT_UINT64), "uint64");
  EXPECT_EQ(descent_version_number(), static_cast<unsigned>(DESCENT_VERSION_NUMBER));
  const std::string v = std::to_string(DESCENT_VERSION_MAJOR) + "." +
                        std::to_string(DESCENT_VERSION_MINOR) + "." +
                        std::to_string(DESCENT_VERSION_PATCH);
  EXPECT_EQ(std::string(descent_version_string()), v);
}

TEST(BadInputLibrary, FreeNullIsFine) {
  descent_optimizer_free(nullptr);
  descent_optimizer_free(nullptr);
}

TEST(BadInputLibrary, CreateNullArguments) {
  descent_optimizer* const sentinel = reinterpret_cast<descent_optimizer*>(0x1234);
  descent_optimizer* out = sentinel;
  EXPECT_FAILS(nullptr, nullptr, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_create(nullptr, &out, nullptr, 0));
  EXPECT_EQ(out, sentinel);
  EXPECT_FAILS(nullptr, nullptr, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_create("adam", nullptr, nullptr, 0));
}

TEST(BadInputLibrary, CreateUnknownKind) {
  descent_optimizer* const sentinel = reinterpret_cast<descent_optimizer*>(0x1234);
  for (const char* kind : {"nope", "", "adam ", "sgd2", "adamw\n"}) {
    SCOPED_TRACE(kind);
    descent_optimizer* out = sentinel;
    EXPECT_FAILS(nullptr, nullptr, DESCENT_ERR_UNKNOWN_KIND, nullptr,
                 descent_optimizer_create(kind, &out, nullptr, 0));
    EXPECT_EQ(out, sentinel) << "*out was written on failure";
  }
  descent_optimizer* out = sentinel;
  EXPECT_FAILS(nullptr, nullptr, DESCENT_ERR_UNKNOWN_KIND, "nope",
               descent_optimizer_create("nope", &out, nullptr, 0));
  EXPECT_EQ(out, sentinel);
}

TEST(BadInputLibrary, EveryKindCreatesAndReportsItsName) {
  for (const std::string& kind : api_test::all_kinds()) {
    Handle h(kind.c_str());
    ASSERT_NE(h.get(), nullptr);
    EXPECT_STREQ(descent_optimizer_kind(h), kind.c_str());
    EXPECT_STREQ(descent_optimizer_last_error(h), "");
  }
}

// ---- NULL arguments --------------------------------------------------------------------------

TEST(BadInputLibrary, NullHandleEverywhere) {
  const double betas[2] = {0.9, 0.999};
  double d = 42;
  int64_t i = 42;
  bool b = true;
  size_t n = 42;
  const char* s = "untouched";
  descent_value_type vt = DESCENT_VALUE_INT;
  descent_dtype dt = DESCENT_FLOAT16;
  int64_t shape[4] = {9, 9, 9, 9};
  const int64_t dims[1] = {3};
  float buf[3] = {1, 2, 3};
  const char* names[1] = {"w"};
  void* params[1] = {buf};
  const void* grads[1] = {buf};
  const auto code = DESCENT_ERR_NULL_ARGUMENT;
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_set_double(nullptr, "eps", 1.0));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_set_int(nullptr, "eps", 1));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_set_bool(nullptr, "b", true));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_set_doubles(nullptr, "betas", betas, 2));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_unset(nullptr, "eps"));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_get_double(nullptr, "eps", &d));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_get_int(nullptr, "eps", &i));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_get_bool(nullptr, "b", &b));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_get_doubles(nullptr, "betas", &d, 1, &n));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_hyperparameter_count(nullptr, &n));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_hyperparameter_name(nullptr, 0, &s));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_hyperparameter_type(nullptr, "eps", &vt));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_configure_json(nullptr, "{}"));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_add_parameter(nullptr, "w", DESCENT_FLOAT32, 1, dims));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_parameter_count(nullptr, &n));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_init(nullptr));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_update(nullptr, 1, names, nullptr, nullptr, params, grads));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_update(nullptr, 0, nullptr, nullptr, nullptr, nullptr, nullptr));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_state_count(nullptr, &n));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr, descent_optimizer_state_key(nullptr, 0, &s));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_state_info(nullptr, "step", &dt, &n, shape, 4));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_state_get(nullptr, "step", DESCENT_UINT64, &i, 1));
  EXPECT_FAILS(nullptr, nullptr, code, nullptr,
               descent_optimizer_state_set(nullptr, "step", DESCENT_UINT64, &i, 1));
  // Out-parameters untouched.
  EXPECT_EQ(d, 42);
  EXPECT_EQ(i, 42);
  EXPECT_TRUE(b);
  EXPECT_EQ(n, 42u);
  EXPECT_STREQ(s, "untouched");
  EXPECT_EQ(vt, DESCENT_VALUE_INT);
  EXPECT_EQ(dt, DESCENT_FLOAT16);
  EXPECT_EQ(shape[0], 9);
  EXPECT_EQ(buf[0], 1.0f);
}

TEST_F(BadInput, NullKeysAndOutputs) {
  const double betas[2] = {0.5, 0.5};
  double d = 42;
  int64_t i = 42;
  bool b = false;
  size_t n = 42;
  const char* s = "untouched";
  descent_value_type vt = DESCENT_VALUE_INT;
  const auto code = DESCENT_ERR_NULL_ARGUMENT;
  const Model* m = &model_;
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_set_double(opt_, nullptr, 1.0));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_set_int(opt_, nullptr, 1));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_set_bool(opt_, nullptr, true));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_set_doubles(opt_, nullptr, betas, 2));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_set_doubles(opt_, "betas", nullptr, 2));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_unset(opt_, nullptr));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_get_double(opt_, nullptr, &d));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_get_double(opt_, "eps", nullptr));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_get_int(opt_, nullptr, &i));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_get_int(opt_, "eps", nullptr));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_get_bool(opt_, nullptr, &b));
  EXPECT_FAILS(opt_, m, code, nullptr,
               descent_optimizer_get_bool(opt_, "bias_correction", nullptr));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_get_doubles(opt_, nullptr, &d, 1, &n));
  EXPECT_FAILS(opt_, m, code, nullptr,
               descent_optimizer_get_doubles(opt_, "betas", nullptr, 0, nullptr));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_hyperparameter_count(opt_, nullptr));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_hyperparameter_name(opt_, 0, nullptr));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_hyperparameter_type(opt_, nullptr, &vt));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_hyperparameter_type(opt_, "eps", nullptr));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_configure_json(opt_, nullptr));
  EXPECT_FAILS(opt_, m, code, nullptr, descent_optimizer_parameter_count(opt_, nullptr));
  EXPECT_EQ(d, 42);
  EXPECT_EQ(i, 42);
  EXPECT_FALSE(b);
  EXPECT_EQ(n, 42u);
  EXPECT_STREQ(s, "untouched");
  EXPECT_EQ(vt, DESCENT_VALUE_INT);
}

TEST_F(BadInput, NullParameterDeclaration) {
  // A fresh optimizer: parameters can still be declared.
  Handle h("sgd");
  const int64_t dims[2] = {2, 2};
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_add_parameter(h, nullptr, DESCENT_FLOAT32, 2, dims));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_add_parameter(h, "w", DESCENT_FLOAT32, 2, nullptr));
  // ndim 0 with a NULL shape is a scalar, and fine.
  DESCENT_EXPECT_OK(h, descent_optimizer_add_parameter(h, "w", DESCENT_FLOAT32, 0, nullptr));
  size_t n = 0;
  DESCENT_EXPECT_OK(h, descent_optimizer_parameter_count(h, &n));
  EXPECT_EQ(n, 1u);
}

TEST_F(BadInput, NullUpdateBuffers) {
  const Model* m = &model_;
  auto a = args();
  EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_update(opt_, 2, nullptr, a.dtypes.data(), a.numels.data(),
                                        a.params.data(), a.grads.data()));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_update(opt_, 2, a.names.data(), a.dtypes.data(), a.numels.data(),
                                        nullptr, a.grads.data()));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_update(opt_, 2, a.names.data(), a.dtypes.data(), a.numels.data(),
                                        a.params.data(), nullptr));
  for (std::size_t k = 0; k < 2; ++k) {
    SCOPED_TRACE("tensor " + std::to_string(k));
    auto b = args();
    b.names[k] = nullptr;
    EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr, b.run(opt_));
    b = args();
    b.params[k] = nullptr;
    EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr, b.run(opt_));
    b = args();
    b.grads[k] = nullptr;
    EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr, b.run(opt_));
  }
  // The handle is still usable.
  DESCENT_EXPECT_OK(opt_, args().run(opt_));
  EXPECT_EQ(api_test::step_of(opt_), 3u);
}

TEST_F(BadInput, NullStateArguments) {
  const Model* m = &model_;
  size_t n = 42;
  const char* s = "untouched";
  float v[20];
  std::memset(v, 0x5a, sizeof v);
  EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_state_count(opt_, nullptr));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_state_key(opt_, 0, nullptr));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_state_info(opt_, nullptr, nullptr, &n, nullptr, 0));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_state_get(opt_, nullptr, DESCENT_FLOAT32, v, 20));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_state_get(opt_, "layer.w.m", DESCENT_FLOAT32, nullptr, 20));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_state_set(opt_, nullptr, DESCENT_FLOAT32, v, 20));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_NULL_ARGUMENT, nullptr,
               descent_optimizer_state_set(opt_, "layer.w.m", DESCENT_FLOAT32, nullptr, 20));
  EXPECT_EQ(n, 42u);
  EXPECT_STREQ(s, "untouched");
}

// ---- unknown keys and wrong types -------------------------------------------------------------

TEST_F(BadInput, UnknownHyperparameterKey) {
  const Model* m = &model_;
  const double two[2] = {0.5, 0.5};
  double d = 42;
  bool b = false;
  size_t n = 42;
  descent_value_type vt = DESCENT_VALUE_INT;
  const auto code = DESCENT_ERR_UNKNOWN_KEY;
  EXPECT_FAILS(opt_, m, code, "foo", descent_optimizer_set_double(opt_, "foo", 1.0));
  EXPECT_FAILS(opt_, m, code, "foo", descent_optimizer_set_int(opt_, "foo", 1));
  EXPECT_FAILS(opt_, m, code, "foo", descent_optimizer_set_bool(opt_, "foo", true));
  EXPECT_FAILS(opt_, m, code, "foo", descent_optimizer_set_doubles(opt_, "foo", two, 2));
  EXPECT_FAILS(opt_, m, code, "foo", descent_optimizer_unset(opt_, "foo"));
  EXPECT_FAILS(opt_, m, code, "foo", descent_optimizer_get_double(opt_, "foo", &d));
  EXPECT_FAILS(opt_, m, code, "foo", descent_optimizer_get_bool(opt_, "foo", &b));
  EXPECT_FAILS(opt_, m, code, "foo", descent_optimizer_get_doubles(opt_, "foo", &d, 1, &n));
  EXPECT_FAILS(opt_, m, code, "foo", descent_optimizer_hyperparameter_type(opt_, "foo", &vt));
  EXPECT_FAILS(opt_, m, code, "foo", descent_optimizer_configure_json(opt_, R"({"foo": 1})"));
  // Keys of other kinds, and near misses.
  EXPECT_FAILS(opt_, m, code, "momentum", descent_optimizer_set_double(opt_, "momentum", 0.9));
  EXPECT_FAILS(opt_, m, code, "weight_decay",
               descent_optimizer_set_double(opt_, "weight_decay", 0.1));
  EXPECT_FAILS(opt_, m, code, "Eps", descent_optimizer_set_double(opt_, "Eps", 0.1));
  EXPECT_FAILS(opt_, m, code, "step", descent_optimizer_set_int(opt_, "step", 1));
  EXPECT_EQ(d, 42);
  EXPECT_FALSE(b);
  EXPECT_EQ(n, 42u);
  EXPECT_EQ(vt, DESCENT_VALUE_INT);

  // Adamax cannot take bias_correction (MLX); SGD has no betas; Lion has no eps.
  Handle adamax("adamax"), sgd("sgd"), lion("lion");
  EXPECT_FAILS(adamax, nullptr, code, "bias_correction",
               descent_optimizer_set_bool(adamax, "bias_correction", true));
  EXPECT_FAILS(sgd, nullptr, code, "betas", descent_optimizer_set_doubles(sgd, "betas", two, 2));
  EXPECT_FAILS(lion, nullptr, code, "eps", descent_optimizer_set_double(lion, "eps", 1e-8));
}

TEST_F(BadInput, WrongTypes) {
  const Model* m = &model_;
  const double one[1] = {0.9};
  const double three[3] = {0.9, 0.99, 0.999};
  double d = 42;
  bool b = false;
  size_t n = 42;
  const auto code = DESCENT_ERR_WRONG_TYPE;
  EXPECT_FAILS(opt_, m, code, "eps", descent_optimizer_set_bool(opt_, "eps", true));
  EXPECT_FAILS(opt_, m, code, "eps", descent_optimizer_set_doubles(opt_, "eps", one, 1));
  EXPECT_FAILS(opt_, m, code, "bias_correction",
               descent_optimizer_set_double(opt_, "bias_correction", 1.0));
  EXPECT_FAILS(opt_, m, code, "bias_correction",
               descent_optimizer_set_int(opt_, "bias_correction", 1));
  EXPECT_FAILS(opt_, m, code, "betas", descent_optimizer_set_double(opt_, "betas", 0.9));
  EXPECT_FAILS(opt_, m, code, "betas", descent_optimizer_set_doubles(opt_, "betas", one, 1));
  EXPECT_FAILS(opt_, m, code, "betas", descent_optimizer_set_doubles(opt_, "betas", three, 3));
  EXPECT_FAILS(opt_, m, code, "betas", descent_optimizer_set_doubles(opt_, "betas", nullptr, 0));
  EXPECT_FAILS(opt_, m, code, "learning_rate",
               descent_optimizer_set_bool(opt_, "learning_rate", true));
  EXPECT_FAILS(opt_, m, code, "learning_rate",
               descent_optimizer_set_doubles(opt_, "learning_rate", one, 1));
  // Getters of the wrong type.
  EXPECT_FAILS(opt_, m, code, "eps", descent_optimizer_get_bool(opt_, "eps", &b));
  EXPECT_FAILS(opt_, m, code, "betas", descent_optimizer_get_double(opt_, "betas", &d));
  EXPECT_FAILS(opt_, m, code, "eps", descent_optimizer_get_doubles(opt_, "eps", &d, 1, &n));
  EXPECT_FAILS(opt_, m, code, "bias_correction",
               descent_optimizer_get_double(opt_, "bias_correction", &d));
  EXPECT_EQ(d, 42);
  EXPECT_FALSE(b);
  EXPECT_EQ(n, 42u);
  // The same through JSON.
  EXPECT_FAILS(opt_, m, code, "bias_correction",
               descent_optimizer_configure_json(opt_, R"({"bias_correction": 1})"));
  EXPECT_FAILS(opt_, m, code, "eps", descent_optimizer_configure_json(opt_, R"({"eps": true})"));
  EXPECT_FAILS(opt_, m, code, "eps", descent_optimizer_configure_json(opt_, R"({"eps": "1e-8"})"));
  EXPECT_FAILS(opt_, m, code, "eps", descent_optimizer_configure_json(opt_, R"({"eps": [1e-8]})"));
  EXPECT_FAILS(opt_, m, code, "eps", descent_optimizer_configure_json(opt_, R"({"eps": {}})"));
  EXPECT_FAILS(opt_, m, code, "betas",
               descent_optimizer_configure_json(opt_, R"({"betas": [0.9]})"));
  EXPECT_FAILS(opt_, m, code, "betas",
               descent_optimizer_configure_json(opt_, R"({"betas": [0.9, 0.99, 0.999]})"));
  EXPECT_FAILS(opt_, m, code, "betas",
               descent_optimizer_configure_json(opt_, R"({"betas": [0.9, "0.99"]})"));
  EXPECT_FAILS(opt_, m, code, "betas", descent_optimizer_configure_json(opt_, R"({"betas": 0.9})"));
  EXPECT_FAILS(opt_, m, code, "learning_rate",
               descent_optimizer_configure_json(opt_, R"({"learning_rate": false})"));

  Handle sgd("sgd");
  EXPECT_FAILS(sgd, nullptr, code, "nesterov", descent_optimizer_set_double(sgd, "nesterov", 0.0));
  EXPECT_FAILS(sgd, nullptr, code, "momentum", descent_optimizer_set_bool(sgd, "momentum", true));
}

TEST_F(BadInput, RequiredKeysCannotBeUnset) {
  const Model* m = &model_;
  // Nothing in these kinds is optional (MLX's None): unsetting must fail and change nothing.
  for (const char* key : {"learning_rate", "eps", "betas", "bias_correction"}) {
    SCOPED_TRACE(key);
    api_test::prime_messages(opt_);
    const auto before = api_test::snapshot(opt_, m);
    const descent_status s = descent_optimizer_unset(opt_, key);
    EXPECT_NE(s, DESCENT_OK);
    EXPECT_NE(std::string(descent_optimizer_last_error(opt_)).find(key), std::string::npos)
        << descent_optimizer_last_error(opt_);
    EXPECT_TRUE(api_test::snapshot(opt_, m) == before);
    const std::string json = std::string("{\"") + key + "\": null}";
    EXPECT_NE(descent_optimizer_configure_json(opt_, json.c_str()), DESCENT_OK);
    EXPECT_TRUE(api_test::snapshot(opt_, m) == before);
  }
}

// ---- ranges (MLX's validation) -----------------------------------------------------------------

TEST(BadInputRange, BetasOutsideUnitInterval) {
  for (const char* kind : {"adam", "adamw", "adamax", "lion"}) {
    SCOPED_TRACE(kind);
    Handle h(kind);
    const double bad[][2] = {{1.0, 0.999}, {0.9, 1.0},      {-0.1, 0.999}, {0.9, -1e-12},
                             {1.5, 0.5},   {kNaN, 0.9},     {0.9, kNaN},   {0.9, kInf},
                             {-kInf, 0.9}, {0.9, 1.0000001}};
    for (const auto& b : bad) {
      EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "betas",
                   descent_optimizer_set_doubles(h, "betas", b, 2));
    }
    EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "betas",
                 descent_optimizer_configure_json(h, R"({"betas": [0.9, 1]})"));
    EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "betas",
                 descent_optimizer_configure_json(h, R"({"betas": [-0.5, 0.5]})"));
    // The edges of [0, 1) are accepted.
    const double zero[2] = {0.0, 0.0};
    const double near_one[2] = {0.9999999, 0.9999999999};
    DESCENT_EXPECT_OK(h, descent_optimizer_set_doubles(h, "betas", zero, 2));
    DESCENT_EXPECT_OK(h, descent_optimizer_set_doubles(h, "betas", near_one, 2));
  }
}

TEST(BadInputRange, Epsilon) {
  // RMSprop, Adagrad, AdaDelta: eps > 0 (MLX raises for 0 and negatives).
  for (const char* kind : {"rmsprop", "adagrad", "adadelta"}) {
    SCOPED_TRACE(kind);
    Handle h(kind);
    for (double eps : {0.0, -0.0, -1.0, -1e-300}) {
      EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "eps",
                   descent_optimizer_set_double(h, "eps", eps));
    }
    EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "eps",
                 descent_optimizer_set_int(h, "eps", 0));
    EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "eps",
                 descent_optimizer_configure_json(h, R"({"eps": 0})"));
    DESCENT_EXPECT_OK(h, descent_optimizer_set_double(h, "eps", 1e-300));
  }
  // Adam, AdamW, Adamax: eps >= 0, so 0 is allowed.
  for (const char* kind : {"adam", "adamw", "adamax"}) {
    SCOPED_TRACE(kind);
    Handle h(kind);
    for (double eps : {-1e-12, -1.0}) {
      EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "eps",
                   descent_optimizer_set_double(h, "eps", eps));
    }
    EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "eps",
                 descent_optimizer_configure_json(h, R"({"eps": -1e-8})"));
    DESCENT_EXPECT_OK(h, descent_optimizer_set_double(h, "eps", 0.0));
    double eps = -1;
    DESCENT_EXPECT_OK(h, descent_optimizer_get_double(h, "eps", &eps));
    EXPECT_EQ(eps, 0.0);
  }
}

TEST(BadInputRange, AlphaAndRho) {
  Handle rms("rmsprop"), ada("adadelta");
  EXPECT_FAILS(rms, nullptr, DESCENT_ERR_OUT_OF_RANGE, "alpha",
               descent_optimizer_set_double(rms, "alpha", -0.01));
  EXPECT_FAILS(rms, nullptr, DESCENT_ERR_OUT_OF_RANGE, "alpha",
               descent_optimizer_set_int(rms, "alpha", -1));
  DESCENT_EXPECT_OK(rms, descent_optimizer_set_double(rms, "alpha", 0.0));
  EXPECT_FAILS(ada, nullptr, DESCENT_ERR_OUT_OF_RANGE, "rho",
               descent_optimizer_set_double(ada, "rho", -0.01));
  EXPECT_FAILS(ada, nullptr, DESCENT_ERR_OUT_OF_RANGE, "rho",
               descent_optimizer_configure_json(ada, R"({"rho": -1})"));
  DESCENT_EXPECT_OK(ada, descent_optimizer_set_double(ada, "rho", 0.0));
}

// NaN and +-inf are rejected for every double hyperparameter of every kind (and every element
// of an array), found by enumeration; learning_rate must also fit in float32.
TEST(BadInputRange, NonFiniteEverywhere) {
  for (const std::string& kind : api_test::rule_kinds()) {
    SCOPED_TRACE(kind);
    Handle h(kind.c_str());
    size_t count = 0;
    DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_count(h, &count));
    int checked = 0;
    for (size_t i = 0; i < count; ++i) {
      const char* name = nullptr;
      DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_name(h, i, &name));
      const std::string key = name;
      descent_value_type type;
      DESCENT_ASSERT_OK(h, descent_optimizer_hyperparameter_type(h, key.c_str(), &type));
      if (key == "learning_rate") type = DESCENT_VALUE_DOUBLE;  // unset until given
      for (double bad : {kNaN, kInf, -kInf}) {
        SCOPED_TRACE(key + " = " + std::to_string(bad));
        if (type == DESCENT_VALUE_DOUBLE) {
          EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, key.c_str(),
                       descent_optimizer_set_double(h, key.c_str(), bad));
          ++checked;
        } else if (type == DESCENT_VALUE_DOUBLE_ARRAY) {
          double values[2] = {0.5, 0.5};
          size_t n = 0;
          DESCENT_ASSERT_OK(h, descent_optimizer_get_doubles(h, key.c_str(), values, 2, &n));
          for (size_t k = 0; k < n; ++k) {
            double spoiled[2] = {values[0], values[1]};
            spoiled[k] = bad;
            EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, key.c_str(),
                         descent_optimizer_set_doubles(h, key.c_str(), spoiled, n));
            ++checked;
          }
        }
      }
    }
    EXPECT_GE(checked, 6);
    EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "learning_rate",
                 descent_optimizer_set_double(h, "learning_rate", 1e39));
    EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "learning_rate",
                 descent_optimizer_configure_json(h, R"({"learning_rate": -1e39})"));
  }
}

// A rejected value leaves the previous one in place.
TEST(BadInputRange, RejectedValueKeepsThePreviousOne) {
  Handle h("rmsprop");
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "eps", 1e-5));
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.25));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "eps",
               descent_optimizer_set_double(h, "eps", 0));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "learning_rate",
               descent_optimizer_set_double(h, "learning_rate", kNaN));
  double eps = 0, lr = 0;
  DESCENT_EXPECT_OK(h, descent_optimizer_get_double(h, "eps", &eps));
  DESCENT_EXPECT_OK(h, descent_optimizer_get_double(h, "learning_rate", &lr));
  EXPECT_EQ(eps, 1e-5);
  EXPECT_EQ(lr, 0.25);
}

// ---- Nesterov: a constraint between keys ------------------------------------------------------

TEST(BadInputNesterov, ConfigureJsonRejectsAndChangesNothing) {
  Handle h("sgd");
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.1));
  const auto code = DESCENT_ERR_OUT_OF_RANGE;
  EXPECT_FAILS(h, nullptr, code, "nesterov",
               descent_optimizer_configure_json(h, R"({"nesterov": true})"));
  EXPECT_FAILS(h, nullptr, code, "nesterov",
               descent_optimizer_configure_json(h, R"({"nesterov": true, "momentum": 0})"));
  EXPECT_FAILS(h, nullptr, code, "nesterov",
               descent_optimizer_configure_json(h, R"({"nesterov": true, "momentum": -0.5})"));
  EXPECT_FAILS(h, nullptr, code, "nesterov",
               descent_optimizer_configure_json(
                   h, R"({"nesterov": true, "momentum": 0.9, "dampening": 0.1})"));
  EXPECT_FAILS(
      h, nullptr, code, "nesterov",
      descent_optimizer_configure_json(
          h, R"({"learning_rate": 0.5, "nesterov": true, "momentum": 0.9, "dampening": -0.1})"));
  bool nesterov = true;
  double momentum = -1;
  DESCENT_EXPECT_OK(h, descent_optimizer_get_bool(h, "nesterov", &nesterov));
  DESCENT_EXPECT_OK(h, descent_optimizer_get_double(h, "momentum", &momentum));
  EXPECT_FALSE(nesterov);
  EXPECT_EQ(momentum, 0.0);
  DESCENT_EXPECT_OK(h,
                    descent_optimizer_configure_json(h, R"({"nesterov": true, "momentum": 0.9})"));
  DESCENT_EXPECT_OK(h, descent_optimizer_get_bool(h, "nesterov", &nesterov));
  EXPECT_TRUE(nesterov);
}

TEST(BadInputNesterov, InitAndUpdateRejectAndChangeNothing) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "momentum 0" : "dampening 0.5");
    Handle h("sgd");
    DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.1));
    Model model;
    model.add("w", DESCENT_FLOAT32, {3}).add("b", DESCENT_FLOAT64, {});
    DESCENT_ASSERT_OK(h, model.declare(h));
    model.fill_params(3);
    model.fill_grads(4);
    if (variant == 1) {
      // A valid Nesterov configuration that has already taken a step.
      DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "momentum", 0.9));
      DESCENT_ASSERT_OK(h, descent_optimizer_set_bool(h, "nesterov", true));
      DESCENT_ASSERT_OK(h, model.update(h));
      // Individual setters validate only their own key; the pair is checked at update.
      DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "dampening", 0.5));
    } else {
      DESCENT_ASSERT_OK(h, descent_optimizer_set_bool(h, "nesterov", true));
      EXPECT_FAILS(h, &model, DESCENT_ERR_OUT_OF_RANGE, "nesterov", descent_optimizer_init(h));
      EXPECT_EQ(api_test::state_keys(h), (std::vector<std::string>{"step", "learning_rate"}));
    }
    const uint64_t step = api_test::step_of(h);
    EXPECT_FAILS(h, &model, DESCENT_ERR_OUT_OF_RANGE, "nesterov", model.update(h));
    EXPECT_FAILS(h, &model, DESCENT_ERR_OUT_OF_RANGE, "nesterov",
                 descent_optimizer_update(h, 0, nullptr, nullptr, nullptr, nullptr, nullptr));
    EXPECT_EQ(api_test::step_of(h), step);
    // Repairing the configuration makes updates work again.
    if (variant == 0)
      DESCENT_EXPECT_OK(h, descent_optimizer_set_double(h, "momentum", 0.5));
    else
      DESCENT_EXPECT_OK(h, descent_optimizer_set_double(h, "dampening", 0.0));
    DESCENT_EXPECT_OK(h, model.update(h));
    EXPECT_EQ(api_test::step_of(h), step + 1);
  }
}

// ---- JSON: syntax and all-or-nothing ----------------------------------------------------------

TEST_F(BadInput, MalformedJson) {
  const Model* m = &model_;
  for (const char* json :
       {"", " ", "{", "}", R"({"learning_rate": })", R"({"learning_rate": 0.1,})",
        R"({'learning_rate': 0.1})", R"({learning_rate: 0.1})", R"({"eps": NaN})",
        R"({"eps": Infinity})", R"({"eps": 1e400})", R"({"learning_rate": 0.1} x)",
        R"({"learning_rate": 0.1}{})", "/* comment */ {}", "{\"eps\": 1e-8", "\xff\xfe"}) {
    EXPECT_FAILS(opt_, m, DESCENT_ERR_PARSE, nullptr, descent_optimizer_configure_json(opt_, json));
  }
  // Well-formed JSON that is not an object.
  for (const char* json : {"[]", R"([{"eps": 1e-3}])", "1", "null", "true", R"("eps")"}) {
    EXPECT_FAILS(opt_, m, DESCENT_ERR_PARSE, nullptr, descent_optimizer_configure_json(opt_, json));
  }
  // An empty object is a valid no-op.
  const auto before = api_test::snapshot(opt_, m);
  DESCENT_EXPECT_OK(opt_, descent_optimizer_configure_json(opt_, "{}"));
  DESCENT_EXPECT_OK(opt_, descent_optimizer_configure_json(opt_, " \n{ }\t"));
  EXPECT_TRUE(api_test::snapshot(opt_, m) == before);
}

TEST_F(BadInput, JsonIsAllOrNothing) {
  const Model* m = &model_;
  // Good keys that would change everything, with one bad key placed before, among and after
  // them (by name, since objects need not keep their order).
  const std::string good =
      R"("learning_rate": 0.5, "eps": 0.001, "betas": [0.5, 0.6], "bias_correction": false)";
  struct Case {
    std::string json;
    descent_status code;
    const char* mention;
  };
  const Case cases[] = {
      {"{" + good + R"(, "aaa": 1})", DESCENT_ERR_UNKNOWN_KEY, "aaa"},
      {"{" + good + R"(, "zzz": 1})", DESCENT_ERR_UNKNOWN_KEY, "zzz"},
      {"{" + good + R"(, "momentum": 0.9})", DESCENT_ERR_UNKNOWN_KEY, "momentum"},
      {R"({"learning_rate": 0.5, "eps": -1, "betas": [0.5, 0.6]})", DESCENT_ERR_OUT_OF_RANGE,
       "eps"},
      {R"({"learning_rate": 0.5, "eps": 0.001, "betas": [0.5, 1.5]})", DESCENT_ERR_OUT_OF_RANGE,
       "betas"},
      {R"({"learning_rate": 1e39, "eps": 0.001, "betas": [0.5, 0.6]})", DESCENT_ERR_OUT_OF_RANGE,
       "learning_rate"},
      {R"({"learning_rate": 0.5, "eps": 0.001, "bias_correction": 0})", DESCENT_ERR_WRONG_TYPE,
       "bias_correction"},
      {R"({"learning_rate": 0.5, "betas": [0.5], "eps": 0.001})", DESCENT_ERR_WRONG_TYPE, "betas"},
      {R"({"learning_rate": "fast", "betas": [0.5, 0.6], "eps": 0.001})", DESCENT_ERR_WRONG_TYPE,
       "learning_rate"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.json);
    EXPECT_FAILS(opt_, m, c.code, c.mention,
                 descent_optimizer_configure_json(opt_, c.json.c_str()));
  }
  // Read back through the getters: the constructor's configuration is still in place.
  double lr = 0, eps = 0, betas[2] = {0, 0};
  size_t n = 0;
  bool bc = false;
  DESCENT_EXPECT_OK(opt_, descent_optimizer_get_double(opt_, "learning_rate", &lr));
  DESCENT_EXPECT_OK(opt_, descent_optimizer_get_double(opt_, "eps", &eps));
  DESCENT_EXPECT_OK(opt_, descent_optimizer_get_doubles(opt_, "betas", betas, 2, &n));
  DESCENT_EXPECT_OK(opt_, descent_optimizer_get_bool(opt_, "bias_correction", &bc));
  EXPECT_EQ(lr, static_cast<double>(0.01f));
  EXPECT_EQ(eps, 1e-8);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(betas[0], 0.9);
  EXPECT_EQ(betas[1], 0.999);
  EXPECT_TRUE(bc);
  float state_lr = 0;
  DESCENT_EXPECT_OK(
      opt_, descent_optimizer_state_get(opt_, "learning_rate", DESCENT_FLOAT32, &state_lr, 1));
  EXPECT_EQ(state_lr, 0.01f);
  // And the good part alone applies.
  DESCENT_EXPECT_OK(opt_, descent_optimizer_configure_json(opt_, ("{" + good + "}").c_str()));
  DESCENT_EXPECT_OK(opt_, descent_optimizer_get_double(opt_, "learning_rate", &lr));
  DESCENT_EXPECT_OK(opt_, descent_optimizer_get_bool(opt_, "bias_correction", &bc));
  EXPECT_EQ(lr, 0.5);
  EXPECT_FALSE(bc);
}

// ---- lifecycle ----------------------------------------------------------------------------------

TEST(BadInputLifecycle, UpdateBeforeLearningRate) {
  for (const std::string& kind : api_test::rule_kinds()) {
    // Adafactor's default relative_step needs no learning rate (adafactor_test.cpp).
    if (kind == "adafactor") continue;
    SCOPED_TRACE(kind);
    Handle h(kind.c_str());
    Model model;
    model.add("w", DESCENT_FLOAT32, {2, 3});
    DESCENT_ASSERT_OK(h, model.declare(h));
    model.fill_params(5);
    model.fill_grads(6);
    EXPECT_FAILS(h, &model, DESCENT_ERR_INVALID_STATE, nullptr, model.update(h));
    EXPECT_FAILS(h, &model, DESCENT_ERR_INVALID_STATE, nullptr,
                 descent_optimizer_update(h, 0, nullptr, nullptr, nullptr, nullptr, nullptr));
    EXPECT_EQ(api_test::state_keys(h), std::vector<std::string>{"step"});
    EXPECT_EQ(api_test::step_of(h), 0u);
    // learning_rate is not in the state until set.
    float lr = 7;
    EXPECT_FAILS(h, &model, DESCENT_ERR_UNKNOWN_KEY, nullptr,
                 descent_optimizer_state_get(h, "learning_rate", DESCENT_FLOAT32, &lr, 1));
    EXPECT_EQ(lr, 7.0f);
    DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.01));
    DESCENT_EXPECT_OK(h, model.update(h));
    EXPECT_EQ(api_test::step_of(h), 1u);
  }
}

TEST_F(BadInput, UpdateDtypeMismatch) {
  const Model* m = &model_;
  for (std::size_t k = 0; k < 2; ++k) {
    SCOPED_TRACE("tensor " + std::to_string(k));
    for (descent_dtype bad :
         {DESCENT_FLOAT32, DESCENT_FLOAT64, DESCENT_BFLOAT16, DESCENT_FLOAT16, DESCENT_UINT64,
          static_cast<descent_dtype>(0), static_cast<descent_dtype>(77)}) {
      auto a = args();
      if (bad == a.dtypes[k]) continue;
      a.dtypes[k] = bad;
      EXPECT_FAILS(opt_, m, DESCENT_ERR_DTYPE_MISMATCH, model_[k].name.c_str(), a.run(opt_));
    }
  }
}

TEST_F(BadInput, UpdateShapeMismatch) {
  const Model* m = &model_;
  for (std::size_t k = 0; k < 2; ++k) {
    SCOPED_TRACE("tensor " + std::to_string(k));
    for (int64_t delta : {-1, 1, -100}) {
      auto a = args();
      a.numels[k] += delta;
      EXPECT_FAILS(opt_, m, DESCENT_ERR_SHAPE_MISMATCH, model_[k].name.c_str(), a.run(opt_));
    }
  }
}

TEST_F(BadInput, UpdateUnknownAndDuplicateNames) {
  const Model* m = &model_;
  auto a = args();
  a.names[1] = "layer.c";
  EXPECT_FAILS(opt_, m, DESCENT_ERR_UNKNOWN_KEY, "layer.c", a.run(opt_));
  a = args();
  a.names[0] = "layer";  // a prefix of declared names is no tensor
  EXPECT_FAILS(opt_, m, DESCENT_ERR_UNKNOWN_KEY, "layer", a.run(opt_));
  a = args();
  a.names[0] = "layer.w.m";  // a state key is no tensor
  EXPECT_FAILS(opt_, m, DESCENT_ERR_UNKNOWN_KEY, "layer.w.m", a.run(opt_));
  a = args();
  a.names[0] = "";
  {
    const auto before = api_test::snapshot(opt_, m);
    EXPECT_NE(a.run(opt_), DESCENT_OK);
    EXPECT_TRUE(api_test::snapshot(opt_, m) == before);
  }
  // The same name twice, with otherwise valid buffers (a second copy of the data).
  auto w2 = model_[0].param;
  auto g2 = model_[0].grad;
  a = args();
  a.names.push_back(a.names[0]);
  a.dtypes.push_back(a.dtypes[0]);
  a.numels.push_back(a.numels[0]);
  a.params.push_back(w2.data());
  a.grads.push_back(g2.data());
  const auto w2_before = w2;
  EXPECT_FAILS(opt_, m, DESCENT_ERR_DUPLICATE, "layer.w", a.run(opt_));
  EXPECT_EQ(w2, w2_before);
}

TEST_F(BadInput, UpdateOverlappingParamAndGrad) {
  const Model* m = &model_;
  // The parameter buffer passed as its own gradient.
  auto a = args();
  a.grads[0] = a.params[0];
  EXPECT_FAILS(opt_, m, DESCENT_ERR_INVALID_ARGUMENT, "layer.w", a.run(opt_));
  // Partial overlaps, both ways, in a scratch buffer large enough for both.
  std::vector<double> scratch(8, 0.25);
  const auto scratch_before = scratch;
  a = args();
  a.params[1] = scratch.data();
  a.grads[1] = scratch.data() + 2;
  EXPECT_FAILS(opt_, m, DESCENT_ERR_INVALID_ARGUMENT, "layer.b", a.run(opt_));
  a.params[1] = scratch.data() + 2;
  a.grads[1] = scratch.data();
  EXPECT_FAILS(opt_, m, DESCENT_ERR_INVALID_ARGUMENT, "layer.b", a.run(opt_));
  EXPECT_EQ(scratch, scratch_before);
  // Adjacent (touching, not overlapping) buffers are fine.
  std::vector<double> adjacent(6, 0.5);
  a = args();
  a.params[1] = adjacent.data();
  a.grads[1] = adjacent.data() + 3;
  DESCENT_EXPECT_OK(opt_, a.run(opt_));
}

TEST_F(BadInput, FailedUpdateDoesNotAdvanceStepOrInitialise) {
  // A fresh optimizer whose first update fails must not even initialise its state.
  Handle h("adamw");
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.01));
  Model model;
  model.add("a", DESCENT_FLOAT32, {4}).add("b", DESCENT_FLOAT32, {2, 2});
  DESCENT_ASSERT_OK(h, model.declare(h));
  model.fill_params(7);
  model.fill_grads(8);
  std::vector<int64_t> numels{4, 5};
  std::vector<const char*> names{"a", "b"};
  std::vector<void*> params{model[0].param_ptr(), model[1].param_ptr()};
  std::vector<const void*> grads{model[0].grad_ptr(), model[1].grad_ptr()};
  EXPECT_FAILS(h, &model, DESCENT_ERR_SHAPE_MISMATCH, "b",
               descent_optimizer_update(h, 2, names.data(), nullptr, numels.data(), params.data(),
                                        grads.data()));
  EXPECT_EQ(api_test::state_keys(h), (std::vector<std::string>{"step", "learning_rate"}));
  EXPECT_EQ(api_test::step_of(h), 0u);
  // Parameters can therefore still be declared.
  const int64_t three[1] = {3};
  DESCENT_EXPECT_OK(h, descent_optimizer_add_parameter(h, "c", DESCENT_FLOAT64, 1, three));
}

// ---- parameter declaration -----------------------------------------------------------------

TEST(BadInputDeclare, DuplicateReservedAndMalformed) {
  Handle h("adam");
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.01));
  const int64_t dims[2] = {2, 3};
  DESCENT_ASSERT_OK(h, descent_optimizer_add_parameter(h, "w", DESCENT_FLOAT32, 2, dims));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_DUPLICATE, "w",
               descent_optimizer_add_parameter(h, "w", DESCENT_FLOAT32, 2, dims));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_DUPLICATE, "w",
               descent_optimizer_add_parameter(h, "w", DESCENT_FLOAT64, 1, dims));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_DUPLICATE, "w",
               descent_optimizer_add_parameter(h, "w", DESCENT_BFLOAT16, 2, dims));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, nullptr,
               descent_optimizer_add_parameter(h, "x", DESCENT_UINT64, 2, dims));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, nullptr,
               descent_optimizer_add_parameter(h, "x", static_cast<descent_dtype>(0), 2, dims));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, nullptr,
               descent_optimizer_add_parameter(h, "x", static_cast<descent_dtype>(42), 2, dims));
  const int64_t negative[3] = {2, -1, 3};
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "x",
               descent_optimizer_add_parameter(h, "x", DESCENT_FLOAT32, 3, negative));
  const int64_t most_negative[1] = {INT64_MIN};
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "x",
               descent_optimizer_add_parameter(h, "x", DESCENT_FLOAT32, 1, most_negative));
  const int64_t huge[2] = {INT64_MAX / 2, 4};
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "x",
               descent_optimizer_add_parameter(h, "x", DESCENT_FLOAT32, 2, huge));
  std::vector<int64_t> too_many(DESCENT_MAX_NDIM + 1, 1);
  EXPECT_FAILS(
      h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "x",
      descent_optimizer_add_parameter(h, "x", DESCENT_FLOAT32, too_many.size(), too_many.data()));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, nullptr,
               descent_optimizer_add_parameter(h, "", DESCENT_FLOAT32, 2, dims));
  // MLX's top-level state keys.
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "step",
               descent_optimizer_add_parameter(h, "step", DESCENT_FLOAT32, 2, dims));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "learning_rate",
               descent_optimizer_add_parameter(h, "learning_rate", DESCENT_FLOAT32, 2, dims));
  // None of the failures registered a name: "x" and the maximum rank can be declared now.
  std::vector<int64_t> max_rank(DESCENT_MAX_NDIM, 1);
  DESCENT_EXPECT_OK(h, descent_optimizer_add_parameter(h, "x", DESCENT_FLOAT32, max_rank.size(),
                                                       max_rank.data()));
  size_t n = 0;
  DESCENT_EXPECT_OK(h, descent_optimizer_parameter_count(h, &n));
  EXPECT_EQ(n, 2u);
}

TEST(BadInputDeclare, AfterInitialisation) {
  const int64_t dims[1] = {3};
  for (int via_update = 0; via_update < 2; ++via_update) {
    SCOPED_TRACE(via_update ? "after the first update" : "after init");
    Handle h("sgd");
    DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.1));
    Model model;
    model.add("w", DESCENT_FLOAT32, {3});
    DESCENT_ASSERT_OK(h, model.declare(h));
    model.fill_params(1);
    model.fill_grads(2);
    if (via_update)
      DESCENT_ASSERT_OK(h, model.update(h));
    else
      DESCENT_ASSERT_OK(h, descent_optimizer_init(h));
    EXPECT_FAILS(h, &model, DESCENT_ERR_INVALID_STATE, "v2",
                 descent_optimizer_add_parameter(h, "v2", DESCENT_FLOAT32, 1, dims));
    // A duplicate after init is reported as one or the other, and still changes nothing.
    api_test::prime_messages(h);
    const auto before = api_test::snapshot(h, &model);
    const descent_status s = descent_optimizer_add_parameter(h, "w", DESCENT_FLOAT32, 1, dims);
    EXPECT_TRUE(s == DESCENT_ERR_INVALID_STATE || s == DESCENT_ERR_DUPLICATE)
        << descent_status_name(s);
    EXPECT_TRUE(api_test::snapshot(h, &model) == before);
    // init again is a no-op.
    DESCENT_EXPECT_OK(h, descent_optimizer_init(h));
    EXPECT_TRUE(api_test::snapshot(h, &model) == before);
  }
}

// ---- state access ---------------------------------------------------------------------------

TEST_F(BadInput, StateSetWrongSizeDtypeOrKey) {
  const Model* m = &model_;
  std::vector<unsigned char> buf(1024, 0x7f);
  void* p = buf.data();
  // layer.w.m is float32 (4,5); layer.b.v is float64 (3,).
  EXPECT_FAILS(opt_, m, DESCENT_ERR_SHAPE_MISMATCH, "layer.w.m",
               descent_optimizer_state_set(opt_, "layer.w.m", DESCENT_FLOAT32, p, 19));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_SHAPE_MISMATCH, "layer.w.m",
               descent_optimizer_state_set(opt_, "layer.w.m", DESCENT_FLOAT32, p, 21));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_SHAPE_MISMATCH, "layer.w.m",
               descent_optimizer_state_set(opt_, "layer.w.m", DESCENT_FLOAT32, nullptr, 0));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_DTYPE_MISMATCH, "layer.w.m",
               descent_optimizer_state_set(opt_, "layer.w.m", DESCENT_FLOAT64, p, 20));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_DTYPE_MISMATCH, "layer.b.v",
               descent_optimizer_state_set(opt_, "layer.b.v", DESCENT_FLOAT32, p, 3));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_DTYPE_MISMATCH, nullptr,
               descent_optimizer_state_set(opt_, "layer.b.v", DESCENT_UINT64, p, 3));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_DTYPE_MISMATCH, nullptr,
               descent_optimizer_state_set(opt_, "layer.b.v", DESCENT_BFLOAT16, p, 3));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_SHAPE_MISMATCH, "step",
               descent_optimizer_state_set(opt_, "step", DESCENT_UINT64, p, 2));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_DTYPE_MISMATCH, "step",
               descent_optimizer_state_set(opt_, "step", DESCENT_FLOAT64, p, 1));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_DTYPE_MISMATCH, "learning_rate",
               descent_optimizer_state_set(opt_, "learning_rate", DESCENT_FLOAT64, p, 1));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_SHAPE_MISMATCH, "learning_rate",
               descent_optimizer_state_set(opt_, "learning_rate", DESCENT_FLOAT32, p, 0));
  // A learning rate in the state must be finite, like one given through the setters.
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    EXPECT_FAILS(opt_, m, DESCENT_ERR_OUT_OF_RANGE, "learning_rate",
                 descent_optimizer_state_set(opt_, "learning_rate", DESCENT_FLOAT32, &bad, 1));
  }
  for (const char* key :
       {"layer.w.x", "layer.w", "layer", "layer.w.m.m", "w.m", "", "STEP", "layer.w.u"}) {
    EXPECT_FAILS(opt_, m, DESCENT_ERR_UNKNOWN_KEY, nullptr,
                 descent_optimizer_state_set(opt_, key, DESCENT_FLOAT32, p, 20));
  }
}

TEST_F(BadInput, StateGetWrongSizeDtypeOrKey) {
  const Model* m = &model_;
  std::vector<unsigned char> buf(1024, 0x7f);
  const auto untouched = buf;
  void* p = buf.data();
  EXPECT_FAILS(opt_, m, DESCENT_ERR_SHAPE_MISMATCH, "layer.w.v",
               descent_optimizer_state_get(opt_, "layer.w.v", DESCENT_FLOAT32, p, 19));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_SHAPE_MISMATCH, "layer.w.v",
               descent_optimizer_state_get(opt_, "layer.w.v", DESCENT_FLOAT32, p, 100));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_DTYPE_MISMATCH, "layer.w.v",
               descent_optimizer_state_get(opt_, "layer.w.v", DESCENT_FLOAT64, p, 20));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_DTYPE_MISMATCH, "step",
               descent_optimizer_state_get(opt_, "step", DESCENT_FLOAT32, p, 1));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_SHAPE_MISMATCH, "step",
               descent_optimizer_state_get(opt_, "step", DESCENT_UINT64, p, 2));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_DTYPE_MISMATCH, "learning_rate",
               descent_optimizer_state_get(opt_, "learning_rate", DESCENT_FLOAT64, p, 1));
  for (const char* key : {"layer.w.x", "layer.w", "nope", ""}) {
    EXPECT_FAILS(opt_, m, DESCENT_ERR_UNKNOWN_KEY, nullptr,
                 descent_optimizer_state_get(opt_, key, DESCENT_FLOAT32, p, 20));
  }
  EXPECT_EQ(buf, untouched) << "the output buffer was written on failure";
}

TEST_F(BadInput, StateInfoAndKeyErrors) {
  const Model* m = &model_;
  descent_dtype dt = DESCENT_FLOAT16;
  size_t ndim = 42;
  int64_t shape[4] = {-7, -7, -7, -7};
  // layer.w.m has 2 dimensions.
  EXPECT_FAILS(opt_, m, DESCENT_ERR_BUFFER_TOO_SMALL, "layer.w.m",
               descent_optimizer_state_info(opt_, "layer.w.m", &dt, &ndim, shape, 1));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_BUFFER_TOO_SMALL, "layer.w.m",
               descent_optimizer_state_info(opt_, "layer.w.m", &dt, &ndim, shape, 0));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_UNKNOWN_KEY, "layer.w.q",
               descent_optimizer_state_info(opt_, "layer.w.q", &dt, &ndim, shape, 4));
  EXPECT_EQ(dt, DESCENT_FLOAT16);
  EXPECT_EQ(ndim, 42u);
  EXPECT_EQ(shape[0], -7);
  EXPECT_EQ(shape[1], -7);
  // With shape == NULL only ndim is asked for; the capacity does not matter.
  DESCENT_EXPECT_OK(opt_, descent_optimizer_state_info(opt_, "layer.w.m", &dt, &ndim, nullptr, 0));
  EXPECT_EQ(ndim, 2u);
  EXPECT_EQ(dt, DESCENT_FLOAT32);
  // Exact capacity is enough.
  DESCENT_EXPECT_OK(opt_, descent_optimizer_state_info(opt_, "layer.w.m", &dt, &ndim, shape, 2));
  EXPECT_EQ(shape[0], 4);
  EXPECT_EQ(shape[1], 5);
  EXPECT_EQ(shape[2], -7);
  // 0-d slots need no capacity at all.
  DESCENT_EXPECT_OK(opt_, descent_optimizer_state_info(opt_, "step", &dt, &ndim, shape, 0));
  EXPECT_EQ(ndim, 0u);
  EXPECT_EQ(dt, DESCENT_UINT64);

  size_t count = 0;
  DESCENT_ASSERT_OK(opt_, descent_optimizer_state_count(opt_, &count));
  EXPECT_EQ(count, 6u);
  const char* key = "untouched";
  EXPECT_FAILS(opt_, m, DESCENT_ERR_INVALID_ARGUMENT, nullptr,
               descent_optimizer_state_key(opt_, count, &key));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_INVALID_ARGUMENT, nullptr,
               descent_optimizer_state_key(opt_, static_cast<size_t>(-1), &key));
  EXPECT_STREQ(key, "untouched");

  size_t hcount = 0;
  DESCENT_ASSERT_OK(opt_, descent_optimizer_hyperparameter_count(opt_, &hcount));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_INVALID_ARGUMENT, nullptr,
               descent_optimizer_hyperparameter_name(opt_, hcount, &key));
  EXPECT_STREQ(key, "untouched");
}

TEST_F(BadInput, GetDoublesCapacityTooSmall) {
  const Model* m = &model_;
  double out[2] = {-1, -1};
  size_t count = 42;
  EXPECT_FAILS(opt_, m, DESCENT_ERR_BUFFER_TOO_SMALL, "betas",
               descent_optimizer_get_doubles(opt_, "betas", out, 1, &count));
  EXPECT_FAILS(opt_, m, DESCENT_ERR_BUFFER_TOO_SMALL, "betas",
               descent_optimizer_get_doubles(opt_, "betas", out, 0, &count));
  EXPECT_EQ(out[0], -1);
  EXPECT_EQ(out[1], -1);
  EXPECT_EQ(count, 42u);
}

TEST_F(BadInput, StateSlotsOfParametersExistOnlyAfterInit) {
  Handle h("adam");
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.01));
  const int64_t dims[1] = {3};
  DESCENT_ASSERT_OK(h, descent_optimizer_add_parameter(h, "w", DESCENT_FLOAT32, 1, dims));
  float v[3] = {5, 5, 5};
  descent_dtype dt = DESCENT_FLOAT16;
  size_t ndim = 9;
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_UNKNOWN_KEY, "w.m",
               descent_optimizer_state_get(h, "w.m", DESCENT_FLOAT32, v, 3));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_UNKNOWN_KEY, "w.m",
               descent_optimizer_state_info(h, "w.m", &dt, &ndim, nullptr, 0));
  EXPECT_EQ(v[0], 5.0f);
  EXPECT_EQ(dt, DESCENT_FLOAT16);
  EXPECT_EQ(ndim, 9u);
  DESCENT_ASSERT_OK(h, descent_optimizer_init(h));
  DESCENT_EXPECT_OK(h, descent_optimizer_state_get(h, "w.m", DESCENT_FLOAT32, v, 3));
  EXPECT_EQ(v[0], 0.0f);
}

// The thread message belongs to the calling thread.
TEST(BadInputMessages, ThreadMessagesAreIndependent) {
  Handle a("adam");
  EXPECT_EQ(descent_optimizer_set_double(a, "main_thread_key", 1.0), DESCENT_ERR_UNKNOWN_KEY);
  std::string seen_in_thread = "unset", after_error_in_thread;
  std::thread t([&] {
    seen_in_thread = descent_last_error();
    descent_optimizer* none = nullptr;
    EXPECT_EQ(descent_optimizer_create("other_thread_kind", &none, nullptr, 0),
              DESCENT_ERR_UNKNOWN_KIND);
    after_error_in_thread = descent_last_error();
  });
  t.join();
  EXPECT_EQ(seen_in_thread, "");
  EXPECT_NE(after_error_in_thread.find("other_thread_kind"), std::string::npos);
  EXPECT_NE(std::string(descent_last_error()).find("main_thread_key"), std::string::npos);
}

// A failed call on one handle leaves another handle's message alone.
TEST(BadInputMessages, PerHandleMessagesAreIndependent) {
  Handle a("adam"), b("sgd");
  EXPECT_STREQ(descent_optimizer_last_error(a), "");
  EXPECT_EQ(descent_optimizer_set_double(a, "alpha_key", 1.0), DESCENT_ERR_UNKNOWN_KEY);
  EXPECT_EQ(descent_optimizer_set_double(b, "beta_key", 1.0), DESCENT_ERR_UNKNOWN_KEY);
  EXPECT_NE(std::string(descent_optimizer_last_error(a)).find("alpha_key"), std::string::npos);
  EXPECT_NE(std::string(descent_optimizer_last_error(b)).find("beta_key"), std::string::npos);
  EXPECT_NE(std::string(descent_last_error()).find("beta_key"), std::string::npos);
}

}  // namespace
