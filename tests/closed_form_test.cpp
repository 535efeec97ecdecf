// Closed-form checks of each optimizer on tiny inputs, worked out by hand from MLX's update rules
// (mlx-semantics.md §2), independent of the library's kernels. Values are chosen to be exact in
// binary floating point where the rule allows, so most checks are exact equalities.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"

namespace {

using api_test::Handle;

template <class T>
constexpr descent_dtype dtype_of() {
  return sizeof(T) == 4 ? DESCENT_FLOAT32 : DESCENT_FLOAT64;
}

// One tensor "w" of element type T under one optimizer.
template <class T>
class One {
 public:
  One(const char* kind, const char* json, std::vector<T> p0) : h_(kind), p_(std::move(p0)) {
    EXPECT_EQ(descent_optimizer_configure_json(h_, json), DESCENT_OK) << descent_last_error();
    const int64_t n = static_cast<int64_t>(p_.size());
    EXPECT_EQ(descent_optimizer_add_parameter(h_, "w", dtype_of<T>(), 1, &n), DESCENT_OK)
        << descent_last_error();
  }
  // One update with gradient g; returns the parameters after it.
  const std::vector<T>& step(std::vector<T> g) {
    EXPECT_EQ(g.size(), p_.size());
    g_ = std::move(g);
    const auto g_before = g_;
    const char* names[1] = {"w"};
    const descent_dtype dtypes[1] = {dtype_of<T>()};
    const int64_t numels[1] = {static_cast<int64_t>(p_.size())};
    void* params[1] = {p_.data()};
    const void* grads[1] = {g_.data()};
    EXPECT_EQ(descent_optimizer_update(h_, 1, names, dtypes, numels, params, grads), DESCENT_OK)
        << descent_optimizer_last_error(h_);
    EXPECT_EQ(g_, g_before) << "the caller's gradient was modified";
    return p_;
  }
  std::vector<T> slot(const char* name) const {
    std::vector<T> out(p_.size(), T(-999));
    const std::string key = std::string("w.") + name;
    EXPECT_EQ(descent_optimizer_state_get(h_, key.c_str(), dtype_of<T>(), out.data(), out.size()),
              DESCENT_OK)
        << descent_optimizer_last_error(h_);
    return out;
  }
  const std::vector<T>& p() const { return p_; }
  descent_optimizer* handle() const { return h_; }

 private:
  Handle h_;
  std::vector<T> p_, g_;
};

template <class T>
class ClosedForm : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
class TypeNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return sizeof(T) == 4 ? "float32" : "float64";
  }
};
TYPED_TEST_SUITE(ClosedForm, Types, TypeNames);

// ---- SGD (all dyadic: exact in both dtypes) -----------------------------------------------------

DESCENT_CLOSED_FORM_KIND("sgd");
TYPED_TEST(ClosedForm, SgdPlain) {
  using T = TypeParam;
  One<T> o("sgd", R"({"learning_rate": 0.5})", {1, -2});
  EXPECT_EQ(o.step({0.5, 1}), (std::vector<T>{0.75, -2.5}));
  // MLX allocates v even without momentum and never touches it.
  EXPECT_EQ(o.slot("v"), (std::vector<T>{0, 0}));
}

TYPED_TEST(ClosedForm, SgdMomentumTwoSteps) {
  using T = TypeParam;
  One<T> o("sgd", R"({"learning_rate": 0.5, "momentum": 0.5})", {1});
  EXPECT_EQ(o.step({1}), std::vector<T>{0.5});  // v = 1;             p = 1 - 0.5*1
  EXPECT_EQ(o.slot("v"), std::vector<T>{1});
  EXPECT_EQ(o.step({1}), std::vector<T>{-0.25});  // v = 0.5*1 + 1 = 1.5; p = 0.5 - 0.75
  EXPECT_EQ(o.slot("v"), std::vector<T>{1.5});
}

TYPED_TEST(ClosedForm, SgdDampeningAppliesFromTheFirstStep) {
  using T = TypeParam;
  // MLX dampens the first step too (torch does not): v1 = (1-0.5)*g.
  One<T> o("sgd", R"({"learning_rate": 0.5, "momentum": 0.5, "dampening": 0.5})", {1});
  EXPECT_EQ(o.step({1}), std::vector<T>{0.75});   // v = 0.5;  p = 1 - 0.25
  EXPECT_EQ(o.step({1}), std::vector<T>{0.375});  // v = 0.25 + 0.5 = 0.75; p = 0.75 - 0.375
  EXPECT_EQ(o.slot("v"), std::vector<T>{0.75});
}

TYPED_TEST(ClosedForm, SgdNesterov) {
  using T = TypeParam;
  One<T> o("sgd", R"({"learning_rate": 0.5, "momentum": 0.5, "nesterov": true})", {1});
  EXPECT_EQ(o.step({1}), std::vector<T>{0.25});    // v = 1; upd = 1 + 0.5*1 = 1.5
  EXPECT_EQ(o.step({1}), std::vector<T>{-0.625});  // v = 1.5; upd = 1 + 0.75 = 1.75
  EXPECT_EQ(o.slot("v"), std::vector<T>{1.5});
}

TYPED_TEST(ClosedForm, SgdCoupledWeightDecay) {
  using T = TypeParam;
  One<T> o("sgd", R"({"learning_rate": 0.5, "momentum": 0.5, "weight_decay": 0.5})", {2});
  EXPECT_EQ(o.step({1}), std::vector<T>{1});      // g' = 1 + 0.5*2 = 2; v = 2; p = 2 - 1
  EXPECT_EQ(o.step({1}), std::vector<T>{-0.25});  // g' = 1.5; v = 1 + 1.5 = 2.5; p = 1 - 1.25
  EXPECT_EQ(o.slot("v"), std::vector<T>{2.5});
}

// ---- RMSprop, Adagrad, AdaDelta ---------------------------------------------------------------

DESCENT_CLOSED_FORM_KIND("rmsprop");
TYPED_TEST(ClosedForm, Rmsprop) {
  using T = TypeParam;
  // alpha = 0.75 so that 1 - alpha = 0.25 exactly; v stays a perfect square.
  One<T> o("rmsprop", R"({"learning_rate": 0.5, "alpha": 0.75})", {3});
  const double eps = 1e-8;
  o.step({4});  // v = 0.25*16 = 4; p = 3 - (0.5*4)/(2 + eps)
  EXPECT_EQ(o.slot("v"), std::vector<T>{4});
  double p = 3 - 2.0 / (2 + eps);
  EXPECT_NEAR(o.p()[0], p, 4 * std::abs(p) * std::numeric_limits<T>::epsilon());
  o.step({2});  // v = 0.75*4 + 0.25*4 = 4; p -= (0.5*2)/(2 + eps)
  EXPECT_EQ(o.slot("v"), std::vector<T>{4});
  p -= 1.0 / (2 + eps);
  EXPECT_NEAR(o.p()[0], p, 8 * std::abs(p) * std::numeric_limits<T>::epsilon());
  // eps is outside the square root: with eps = 2 the first step is exactly (lr*g)/(|g|+2).
  One<T> big("rmsprop", R"({"learning_rate": 0.5, "alpha": 0, "eps": 2})", {1});
  EXPECT_EQ(big.step({2}), std::vector<T>{0.75});  // v = 4; 1 - (0.5*2)/(2+2)
}

DESCENT_CLOSED_FORM_KIND("adagrad");
TYPED_TEST(ClosedForm, Adagrad) {
  using T = TypeParam;
  One<T> o("adagrad", R"({"learning_rate": 0.5})", {1, 1});
  const double eps = 1e-8;  // MLX's default
  o.step({3, -4});
  EXPECT_EQ(o.slot("v"), (std::vector<T>{9, 16}));
  double p0 = 1 - 1.5 / (3 + eps), p1 = 1 + 2.0 / (4 + eps);
  const double tol = 4 * std::numeric_limits<T>::epsilon();
  EXPECT_NEAR(o.p()[0], p0, tol);
  EXPECT_NEAR(o.p()[1], p1, tol);
  o.step({4, 3});
  EXPECT_EQ(o.slot("v"), (std::vector<T>{25, 25}));
  p0 -= 2.0 / (5 + eps);
  p1 -= 1.5 / (5 + eps);
  EXPECT_NEAR(o.p()[0], p0, 2 * tol);
  EXPECT_NEAR(o.p()[1], p1, 2 * tol);
}

DESCENT_CLOSED_FORM_KIND("adadelta");
TYPED_TEST(ClosedForm, AdaDeltaFirstTwoSteps) {
  using T = TypeParam;
  One<T> o("adadelta", R"({"learning_rate": 1.0})", {1});  // rho 0.9, eps 1e-6
  // Step 1: v = 0.1; d = sqrt(0 + eps)/sqrt(0.1 + eps) * 1; u = 0.1*d^2; p = 1 - d.
  const double eps = 1e-6;
  const double d1 = std::sqrt(eps) / std::sqrt(0.1 + eps);
  EXPECT_NEAR(d1, 0.0031622618, 1e-10);  // worked by hand: 1e-3 / 0.3162293
  o.step({1});
  const double tol = 16 * std::numeric_limits<T>::epsilon();
  EXPECT_NEAR(o.slot("v")[0], 0.1, tol);
  EXPECT_NEAR(o.slot("u")[0], 0.1 * d1 * d1, 0.1 * d1 * d1 * tol);
  EXPECT_NEAR(o.p()[0], 1 - d1, tol);
  // Step 2 uses the OLD u in the numerator: d = sqrt(u1 + eps)/sqrt(v2 + eps) * g.
  const double u1 = 0.1 * d1 * d1, v2 = 0.9 * 0.1 + 0.1;
  const double d2 = std::sqrt(u1 + eps) / std::sqrt(v2 + eps);
  o.step({1});
  EXPECT_NEAR(o.slot("v")[0], v2, tol);
  EXPECT_NEAR(o.slot("u")[0], 0.9 * u1 + 0.1 * d2 * d2, (0.9 * u1 + 0.1 * d2 * d2) * tol);
  EXPECT_NEAR(o.p()[0], 1 - d1 - d2, tol);
}

// ---- Adam family ------------------------------------------------------------------------------

DESCENT_CLOSED_FORM_KIND("adam");
TYPED_TEST(ClosedForm, AdamFirstStepWithoutBiasCorrection) {
  using T = TypeParam;
  // MLX's default: no bias correction, so the first step is lr*(1-b1)/sqrt(1-b2) ~ 3.16*lr.
  One<T> o("adam", R"({"learning_rate": 0.001})", {1, 1, 1});
  o.step({0.5, -0.5, 100});
  const double lr = static_cast<double>(0.001f);  // learning_rate lives in float32
  const double expected = lr * 0.1 / std::sqrt(0.001);
  EXPECT_NEAR(expected, 0.001 * 3.16227766, 1e-9);
  // eps/sqrt(v) ~ 6e-7 relative, plus rounding of p near 1.
  const double tol = 2e-6 * expected + 2 * std::numeric_limits<T>::epsilon();
  EXPECT_NEAR(1 - o.p()[0], expected, tol);
  EXPECT_NEAR(o.p()[1] - 1, expected, tol);
  EXPECT_NEAR(1 - o.p()[2], expected, tol);  // scale-free
  const auto m = o.slot("m"), v = o.slot("v");
  EXPECT_NEAR(m[0], 0.05, 1e-7);
  EXPECT_NEAR(v[0], 0.00025, 1e-10);
  EXPECT_NEAR(m[2], 10, 1e-5);
  EXPECT_NEAR(v[2], 10, 1e-5);
}

TYPED_TEST(ClosedForm, AdamWithBiasCorrectionStepsByLr) {
  using T = TypeParam;
  One<T> o("adam", R"({"learning_rate": 0.001, "bias_correction": true})", {1, 1});
  const double lr = static_cast<double>(0.001f);
  // With a constant gradient m_hat = g and v_hat = g^2 at every step, so each step is ~lr.
  double expected0 = 1, expected1 = 1;
  for (int k = 0; k < 3; ++k) {
    o.step({0.5, -2});
    expected0 -= lr;
    expected1 += lr;
    // The correction terms are float32 powf of f32(b), as in MLX: ~1e-5 relative.
    const double tol = (k + 1) * (3e-5 * lr + 2 * std::numeric_limits<T>::epsilon());
    EXPECT_NEAR(o.p()[0], expected0, tol) << "step " << k + 1;
    EXPECT_NEAR(o.p()[1], expected1, tol) << "step " << k + 1;
  }
}

DESCENT_CLOSED_FORM_KIND("adamw");
TYPED_TEST(ClosedForm, AdamWDecayIsDecoupledAndFirst) {
  using T = TypeParam;
  // A zero gradient makes the Adam part exactly 0/(0+eps) = 0: only p*(1 - lr*wd) remains.
  One<T> o("adamw", R"({"learning_rate": 0.5, "weight_decay": 0.25})", {2, -4});
  EXPECT_EQ(o.step({0, 0}), (std::vector<T>{1.75, -3.5}));  // factor 1 - 0.125
  EXPECT_EQ(o.step({0, 0}), (std::vector<T>{1.53125, -3.0625}));
  // weight_decay 0: the factor is exactly 1.
  One<T> none("adamw", R"({"learning_rate": 0.5, "weight_decay": 0})", {2});
  EXPECT_EQ(none.step({0}), std::vector<T>{2});
  // Default weight_decay (0.01) with a gradient: p*(1 - lr*0.01) minus ~lr*(1-b1)/sqrt(1-b2).
  One<T> g("adamw", R"({"learning_rate": 0.001})", {1});
  g.step({0.5});
  const double lr = static_cast<double>(0.001f);
  const double expected = 1 * (1 - lr * 0.01) - lr * 0.1 / std::sqrt(0.001);
  EXPECT_NEAR(g.p()[0], expected, 1e-8 + 2 * std::numeric_limits<T>::epsilon());
}

DESCENT_CLOSED_FORM_KIND("adamax");
TYPED_TEST(ClosedForm, AdamaxMaxRule) {
  using T = TypeParam;
  // b2 = 0.5 makes the max visible: v = max(0.5*v, |g|), eps outside the max.
  One<T> o("adamax", R"({"learning_rate": 0.5, "betas": [0.5, 0.5]})", {1});
  const double eps = 1e-8;
  double p = 1, m = 0;
  const struct { double g, v; } steps[] = {{4, 4}, {1, 2}, {-3, 3}, {0.5, 1.5}, {0, 0.75}};
  for (const auto& s : steps) {
    SCOPED_TRACE("g = " + std::to_string(s.g));
    o.step({static_cast<T>(s.g)});
    m = 0.5 * m + 0.5 * s.g;  // dyadic: exact
    p -= 0.5 * m / (s.v + eps);
    EXPECT_EQ(o.slot("v"), std::vector<T>{static_cast<T>(s.v)});
    EXPECT_EQ(o.slot("m"), std::vector<T>{static_cast<T>(m)});
    EXPECT_NEAR(o.p()[0], p, 1e-6);
  }
}

// ---- Lion ---------------------------------------------------------------------------------------

DESCENT_CLOSED_FORM_KIND("lion");
TYPED_TEST(ClosedForm, LionSign) {
  using T = TypeParam;
  One<T> o("lion", R"({"learning_rate": 0.5})", {1, 1, 1});  // betas 0.9, 0.99
  // c = 0.1*g with m = 0: only the sign matters, sign(0) = 0.
  EXPECT_EQ(o.step({2, static_cast<T>(-1e-3), 0}), (std::vector<T>{0.5, 1.5, 1}));
  const auto m1 = o.slot("m");
  EXPECT_NEAR(m1[0], 0.02, 1e-8);
  EXPECT_NEAR(m1[1], -1e-5, 1e-11);
  EXPECT_EQ(m1[2], 0);
  // c uses the OLD m: c = 0.9*0.02 + 0.1*(-0.1) = 0.008 > 0, so the step follows the momentum
  // against the gradient; m becomes 0.99*0.02 + 0.01*(-0.1) = 0.0188.
  EXPECT_EQ(o.step({static_cast<T>(-0.1), 0, 0}), (std::vector<T>{0, 2, 1}));
  const auto m2 = o.slot("m");
  EXPECT_NEAR(m2[0], 0.0188, 1e-8);
  EXPECT_NEAR(m2[1], -0.99e-5, 1e-11);
  // A tiny gradient moves by the full learning rate.
  One<T> tiny("lion", R"({"learning_rate": 0.25})", {0});
  EXPECT_EQ(tiny.step({static_cast<T>(1e-30)}), std::vector<T>{-0.25});
}

TYPED_TEST(ClosedForm, LionDecayOnlyForPositiveWeightDecay) {
  using T = TypeParam;
  One<T> pos("lion", R"({"learning_rate": 0.5, "weight_decay": 0.5})", {2});
  EXPECT_EQ(pos.step({1}), std::vector<T>{1});  // (1 - 0.25)*2 - 0.5
  One<T> zero("lion", R"({"learning_rate": 0.5, "weight_decay": 0})", {2});
  EXPECT_EQ(zero.step({1}), std::vector<T>{1.5});
  // MLX tests weight_decay > 0: a negative one is ignored rather than growing p.
  One<T> neg("lion", R"({"learning_rate": 0.5, "weight_decay": -0.5})", {2});
  EXPECT_EQ(neg.step({1}), std::vector<T>{1.5});
}

// ---- float64 parameters use the float32 learning rate -------------------------------------------

TEST(ClosedFormLearningRate, Float64UsesFloat32LearningRate) {
  One<double> o("sgd", R"({"learning_rate": 0.1})", {1});
  o.step({1});
  EXPECT_EQ(o.p()[0], 1.0 - static_cast<double>(0.1f));
  EXPECT_NE(o.p()[0], 0.9);
}

// Every kind the library lists has closed-form tests: here, or in adafactor_test.cpp,
// muon_test.cpp and multi_test.cpp, each registered with DESCENT_CLOSED_FORM_KIND.
TEST(ClosedFormCoverage, EveryKindHasClosedFormTests) {
  for (const std::string& kind : descent_test::all_kinds())
    EXPECT_EQ(descent_test::closed_form_kinds().count(kind), 1u)
        << "kind " << kind << " has no closed-form test (DESCENT_CLOSED_FORM_KIND)";
}

}  // namespace
