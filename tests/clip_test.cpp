// descent_clip_grad_norm: MLX's golden cases and unit test, accuracy on large tensors against
// closed forms, overflow and underflow, and argument checks that leave every buffer untouched.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "descent/descent.h"
#include "golden_support.h"

namespace {

using golden::Json;

struct Grads {
  std::vector<descent_dtype> dtypes;
  std::vector<int64_t> numels;
  std::vector<void*> ptrs;

  void add(std::vector<float>& v) {
    dtypes.push_back(DESCENT_FLOAT32);
    numels.push_back(static_cast<int64_t>(v.size()));
    ptrs.push_back(v.data());
  }
  void add(std::vector<double>& v) {
    dtypes.push_back(DESCENT_FLOAT64);
    numels.push_back(static_cast<int64_t>(v.size()));
    ptrs.push_back(v.data());
  }
  descent_status clip(double max_norm, double* total) {
    return descent_clip_grad_norm(ptrs.size(), dtypes.data(), numels.data(), ptrs.data(), max_norm,
                                  total, nullptr, 0);
  }
};

double f32(double x) {
  return static_cast<double>(static_cast<float>(x));
}

TEST(ClipGolden, MatchesMlx) {
  int files = 0;
  for (const char* name : {"clip_v0", "clip_v1", "clip_v2"}) {
    const Json c = golden::load(golden::data_dir() + "/golden/" + name + ".json");
    ASSERT_EQ(c.at("kind"), "clip_grad_norm");
    ASSERT_EQ(c.at("dtype"), "float32");
    ++files;
    const golden::Tolerance tol{c.at("tolerance").at("rtol").get<double>(),
                                c.at("tolerance").at("atol").get<double>()};
    std::vector<std::vector<float>> data;
    std::vector<std::string> names;
    for (const auto& [key, t] : c.at("grads").items()) {
      const auto d = t.at("data").get<std::vector<double>>();
      data.emplace_back(d.begin(), d.end());
      names.push_back(key);
    }
    Grads g;
    for (auto& d : data) g.add(d);
    double total = -1;
    ASSERT_EQ(g.clip(c.at("max_norm").get<double>(), &total), DESCENT_OK) << descent_last_error();
    const double expected_total = c.at("expected").at("total_norm").get<double>();
    golden::expect_close(name, "total_norm", {total}, {expected_total}, tol);
    EXPECT_EQ(total, f32(total)) << "a float32 norm for float32 gradients, as MLX";
    for (size_t i = 0; i < names.size(); ++i) {
      const auto exp =
          c.at("expected").at("grads").at(names[i]).at("data").get<std::vector<double>>();
      golden::expect_close(name, names[i], std::vector<double>(data[i].begin(), data[i].end()), exp,
                           tol);
    }
  }
  EXPECT_EQ(files, 3);
}

// mlx-semantics.md §6, test_clip_grad_norm.
TEST(ClipMlx, UnitTest) {
  {
    std::vector<float> a{0.1f, 0.2f}, b{0.1f}, c{0.3f};
    const auto a0 = a, b0 = b, c0 = c;
    Grads g;
    g.add(a);
    g.add(b);
    g.add(c);
    double total = 0;
    ASSERT_EQ(g.clip(10.0, &total), DESCENT_OK);
    EXPECT_EQ(a, a0);  // not clipped: exactly unchanged
    EXPECT_EQ(b, b0);
    EXPECT_EQ(c, c0);
    EXPECT_NEAR(total, std::sqrt(0.01 + 0.04 + 0.01 + 0.09), 1e-7);
  }
  {
    // MLX's integer grads become float32; here they are float32 from the start.
    std::vector<float> a{10, 20}, b{10}, c{30};
    Grads g;
    g.add(a);
    g.add(b);
    g.add(c);
    double total = 0;
    ASSERT_EQ(g.clip(1.0, &total), DESCENT_OK);
    const double norm = std::sqrt(100.0 + 400 + 100 + 900);
    EXPECT_NEAR(total, norm, 1e-4);
    const double clipped = std::sqrt(double(a[0]) * a[0] + double(a[1]) * a[1] +
                                     double(b[0]) * b[0] + double(c[0]) * c[0]);
    EXPECT_NEAR(clipped, 1.0, 1e-6);
    EXPECT_NEAR(a[0], 10 / norm, 1e-6);
    EXPECT_NEAR(a[1], 20 / norm, 1e-6);
    EXPECT_NEAR(b[0], 10 / norm, 1e-6);
    EXPECT_NEAR(c[0], 30 / norm, 1e-6);
  }
  {
    std::vector<float> a{1, 2};
    Grads g;
    g.add(a);
    double total = 42;
    EXPECT_EQ(g.clip(-1.0, &total), DESCENT_ERR_OUT_OF_RANGE);
    EXPECT_NE(std::string(descent_last_error()).find("max_norm"), std::string::npos);
    EXPECT_EQ(a, (std::vector<float>{1, 2}));
    EXPECT_EQ(total, 42);
  }
}

TEST(ClipFormula, ScaleIsFloat32ForFloat32Gradients) {
  // total = 5; scale = f32(2) / (f32(5) + f32(1e-6)), applied in float32.
  std::vector<float> a{3, 4};
  Grads g;
  g.add(a);
  double total = 0;
  ASSERT_EQ(g.clip(2.0, &total), DESCENT_OK);
  EXPECT_EQ(total, 5.0);
  const float scale = 2.0f / (5.0f + static_cast<float>(1e-6));
  EXPECT_EQ(a[0], 3.0f * scale);
  EXPECT_EQ(a[1], 4.0f * scale);
  // float64: everything in double.
  std::vector<double> d{3, 4};
  Grads h;
  h.add(d);
  ASSERT_EQ(h.clip(2.0, &total), DESCENT_OK);
  EXPECT_EQ(total, 5.0);
  EXPECT_EQ(d[0], 3.0 * (2.0 / (5.0 + 1e-6)));
  EXPECT_EQ(d[1], 4.0 * (2.0 / (5.0 + 1e-6)));
}

TEST(ClipAccuracy, TenMillionSmallFloat32) {
  // A float32 running sum would drift far from the truth; the double, pairwise sum does not.
  const int64_t n = 10'000'000;
  std::vector<float> a(static_cast<size_t>(n), 1e-3f);
  const double closed = std::sqrt(static_cast<double>(n)) * static_cast<double>(1e-3f);
  Grads g;
  g.add(a);
  double total = 0;
  ASSERT_EQ(g.clip(1.0, &total), DESCENT_OK);
  EXPECT_EQ(total, f32(closed));
  const float scale = 1.0f / (static_cast<float>(closed) + static_cast<float>(1e-6));
  EXPECT_EQ(a.front(), 1e-3f * scale);
  EXPECT_EQ(a.back(), 1e-3f * scale);
}

TEST(ClipAccuracy, MixedMagnitudesFloat64) {
  // 10^6 values 0.1 and one 1000: sqrt(1e6 * 0.01 + 1e6) = sqrt(1010000).
  std::vector<double> a(1'000'000, 0.1);
  std::vector<double> b{1000.0};
  Grads g;
  g.add(a);
  g.add(b);
  double total = 0;
  ASSERT_EQ(g.clip(INFINITY, &total), DESCENT_OK);
  EXPECT_NEAR(total, std::sqrt(1010000.0), std::sqrt(1010000.0) * 1e-14);
  EXPECT_EQ(a[0], 0.1);  // max_norm = inf: never clipped
}

TEST(ClipAccuracy, Float32SquaresThatOverflowFloat32) {
  // (1e20)^2 = 1e40 overflows float32 (MLX's float32 sum gives inf and zeroes every gradient);
  // the norm itself, 1e20 * sqrt(1000), is a float32.
  std::vector<float> a(1000, 1e20f);
  const double closed = static_cast<double>(1e20f) * std::sqrt(1000.0);
  Grads g;
  g.add(a);
  double total = 0;
  ASSERT_EQ(g.clip(1.0, &total), DESCENT_OK);
  EXPECT_EQ(total, f32(closed));
  double clipped = 0;
  for (float x : a) clipped += static_cast<double>(x) * x;
  EXPECT_NEAR(std::sqrt(clipped), 1.0, 1e-6);
  // A norm beyond float32 itself (values near FLT_MAX) is reported in double.
  std::vector<float> big(100, 3e38f);
  Grads h;
  h.add(big);
  ASSERT_EQ(h.clip(1.0, &total), DESCENT_OK);
  EXPECT_NEAR(total, static_cast<double>(3e38f) * 10.0, 1e26);
  EXPECT_NEAR(big[0], 0.1, 1e-7);
}

TEST(ClipAccuracy, Float64OverflowAndUnderflow) {
  double total = 0;
  std::vector<double> huge(1000, 1e200);  // squares overflow double
  Grads g;
  g.add(huge);
  ASSERT_EQ(g.clip(1.0, &total), DESCENT_OK);
  EXPECT_NEAR(total / (1e200 * std::sqrt(1000.0)), 1.0, 1e-14);
  EXPECT_NEAR(huge[0], 1.0 / std::sqrt(1000.0), 1e-14);
  std::vector<double> tiny(1000, 1e-200);  // squares underflow to zero
  Grads h;
  h.add(tiny);
  ASSERT_EQ(h.clip(1.0, &total), DESCENT_OK);
  EXPECT_NEAR(total / (1e-200 * std::sqrt(1000.0)), 1.0, 1e-14);
  EXPECT_EQ(tiny[0], 1e-200);  // far below max_norm: unchanged
  std::vector<double> zeros(10, 0.0);
  Grads z;
  z.add(zeros);
  ASSERT_EQ(z.clip(1.0, &total), DESCENT_OK);
  EXPECT_EQ(total, 0.0);
}

TEST(ClipFormula, MaxNormZeroZeroesEverything) {
  std::vector<float> a{1, -2, 3};
  std::vector<double> b{-4};
  Grads g;
  g.add(a);
  g.add(b);
  double total = 0;
  ASSERT_EQ(g.clip(0.0, &total), DESCENT_OK);
  EXPECT_EQ(total, std::sqrt(30.0));
  for (float x : a) EXPECT_EQ(x, 0.0f);
  EXPECT_EQ(b[0], 0.0);
  EXPECT_TRUE(std::signbit(a[1]));  // -2 * 0 = -0, as MLX
}

TEST(ClipFormula, MixedDtypesUseADoubleFactor) {
  // With any float64 gradient MLX's norm is float64; float32 tensors get x * scale rounded once.
  std::vector<float> a{3};
  std::vector<double> b{4};
  Grads g;
  g.add(a);
  g.add(b);
  double total = 0;
  ASSERT_EQ(g.clip(1.0, &total), DESCENT_OK);
  const double scale = 1.0 / (5.0 + 1e-6);
  EXPECT_EQ(total, 5.0);
  EXPECT_EQ(a[0], static_cast<float>(3.0 * scale));
  EXPECT_EQ(b[0], 4.0 * scale);
}

TEST(ClipFormula, NanPropagatesAsInMlx) {
  std::vector<float> a{1, NAN, 2};
  Grads g;
  g.add(a);
  double total = 0;
  ASSERT_EQ(g.clip(1.0, &total), DESCENT_OK);
  EXPECT_TRUE(std::isnan(total));
  for (float x : a) EXPECT_TRUE(std::isnan(x));  // minimum(NaN, 1) is NaN in MLX
}

TEST(ClipArguments, ValidatedBeforeAnyBufferIsTouched) {
  std::vector<float> a{30, 40};
  std::vector<double> b{50};
  const std::vector<float> a0 = a;
  auto expect_untouched = [&](const char* what) {
    EXPECT_EQ(a, a0) << what;
    EXPECT_EQ(b[0], 50.0) << what;
  };
  double total = 7;
  {
    Grads g;
    g.add(a);
    g.add(b);
    EXPECT_EQ(g.clip(NAN, &total), DESCENT_ERR_OUT_OF_RANGE);
    EXPECT_EQ(g.clip(-1e-30, &total), DESCENT_ERR_OUT_OF_RANGE);
    expect_untouched("max_norm");
  }
  {
    Grads g;
    g.add(a);
    g.add(b);
    g.dtypes[1] = DESCENT_UINT64;
    EXPECT_EQ(g.clip(1.0, &total), DESCENT_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(descent_last_error()).find("grads[1]"), std::string::npos);
    g.dtypes[1] = static_cast<descent_dtype>(77);
    EXPECT_EQ(g.clip(1.0, &total), DESCENT_ERR_INVALID_ARGUMENT);
    expect_untouched("dtype");
  }
  {
    Grads g;
    g.add(a);
    g.add(b);
    g.numels[1] = -1;
    EXPECT_EQ(g.clip(1.0, &total), DESCENT_ERR_INVALID_ARGUMENT);
    g.numels[1] = 1;
    g.ptrs[1] = nullptr;
    EXPECT_EQ(g.clip(1.0, &total), DESCENT_ERR_NULL_ARGUMENT);
    expect_untouched("numel/pointer");
  }
  {
    Grads g;
    g.add(a);
    g.add(a);  // the same buffer twice would be scaled twice
    EXPECT_EQ(g.clip(1.0, &total), DESCENT_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(descent_last_error()).find("overlap"), std::string::npos);
    Grads h;
    h.add(a);
    h.dtypes.push_back(DESCENT_FLOAT32);  // a[1..1] overlaps a[0..1]
    h.numels.push_back(1);
    h.ptrs.push_back(a.data() + 1);
    EXPECT_EQ(h.clip(1.0, &total), DESCENT_ERR_INVALID_ARGUMENT);
    expect_untouched("overlap");
  }
  const descent_dtype dt = DESCENT_FLOAT32;
  const int64_t n = 2;
  void* p = a.data();
  EXPECT_EQ(descent_clip_grad_norm(1, nullptr, &n, &p, 1.0, &total, nullptr, 0),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_clip_grad_norm(1, &dt, nullptr, &p, 1.0, &total, nullptr, 0),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_clip_grad_norm(1, &dt, &n, nullptr, 1.0, &total, nullptr, 0),
            DESCENT_ERR_NULL_ARGUMENT);
  expect_untouched("null arrays");
  EXPECT_EQ(total, 7.0);  // never written on error
  // Nothing to clip; a zero-length tensor may have a NULL pointer; total_norm may be NULL.
  EXPECT_EQ(descent_clip_grad_norm(0, nullptr, nullptr, nullptr, 1.0, &total, nullptr, 0),
            DESCENT_OK);
  EXPECT_EQ(total, 0.0);
  const int64_t zero = 0;
  void* null_ptr = nullptr;
  EXPECT_EQ(descent_clip_grad_norm(1, &dt, &zero, &null_ptr, 1.0, nullptr, nullptr, 0), DESCENT_OK);
  EXPECT_EQ(descent_clip_grad_norm(1, &dt, &n, &p, 1.0, nullptr, nullptr, 0), DESCENT_OK);
  EXPECT_NEAR(a[0], 0.6, 1e-6);
}

}  // namespace
