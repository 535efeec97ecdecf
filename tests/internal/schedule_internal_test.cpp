// Internals of schedules and clipping that the C API cannot reach: every schedule's to_json()
// parses back to the same schedule (optimizers save it through config_json), MLX's Cephes cosine,
// the factories' validation, and the pairwise sum of squares.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/clip_kernel.h"
#include "schedules/builtin_schedules.h"
#include "schedules/mlx_cos.h"
#include "schedules/schedule_parse.h"

namespace {

using descent::SchedulePtr;

const uint64_t kSteps[] = {0,  1,   2,   3,   4,   5,    6,    9,    10,        11,
                           99, 100, 101, 102, 999, 1000, 1001, 5000, 123456789, 1ull << 40};

TEST(ScheduleToJson, RoundTripsThroughParse) {
  const char* specs[] = {
      R"({"schedule": "exponential_decay", "init": 0.1, "decay_rate": 0.9})",
      R"({"schedule": "step_decay", "init": 0.1, "decay_rate": 0.5, "step_size": 3})",
      R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 8, "end": 0.01})",
      R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 1000})",
      R"({"schedule": "linear_schedule", "init": 0.0, "end": 0.1, "steps": 5})",
      R"({"schedule": "constant", "value": 0.3})",
      R"({"schedule": "join_schedules", "schedules": [
          {"schedule": "linear_schedule", "init": 0.0, "end": 0.1, "steps": 4},
          {"schedule": "join_schedules", "schedules": [
              {"schedule": "cosine_decay", "init": 0.1, "decay_steps": 6, "end": 0.001},
              {"schedule": "constant", "value": 1e-4}], "boundaries": [50]}],
          "boundaries": [4]})",
      R"({"name": "cosine_decay", "arguments": [0.001, 20, 1e-05], "warmup": 5, "warmup_init": 1e-06})",
      R"({"name": "exponential_decay", "arguments": [0.01, 0.95]})",
      "cosine:1000:1e-5",
      "warmup_cosine:100:1000:1e-7",
      "warmup_cosine:0:10:0",
      "exponential_decay:0.1:0.999",
      "step_decay:0.1:0.9:1000",
      "cosine_decay:0.1:1000",
      "linear_schedule:0:0.1:100",
      "constant:0.3",
      "cosine_decay:0.123456789012345:77:1.0000000000000002e-7",  // 17 significant digits survive
  };
  for (const char* spec : specs) {
    const SchedulePtr a = descent::parse_schedule(spec, 3e-4);
    const std::string json = a->to_json();
    ASSERT_FALSE(json.empty()) << spec;
    ASSERT_EQ(json.front(), '{') << spec;
    const SchedulePtr b = descent::parse_schedule(json, std::nullopt);
    EXPECT_EQ(b->to_json(), json) << spec;
    for (uint64_t s : kSteps) EXPECT_EQ(a->value(s), b->value(s)) << spec << " at " << s;
  }
  // A shorthand is saved with its initial value written out.
  EXPECT_EQ(descent::parse_schedule("cosine:1000:1e-5", 3e-4)->to_json(),
            R"({"schedule": "cosine_decay", "init": 0.0003, "decay_steps": 1000, "end": 1e-05})");
}

TEST(ScheduleToJson, ShortestDecimal) {
  EXPECT_EQ(descent::shortest_decimal(0.1f), 0.1);
  EXPECT_EQ(descent::shortest_decimal(3e-4f), 3e-4);
  EXPECT_EQ(descent::shortest_decimal(1.0f), 1.0);
  EXPECT_EQ(descent::shortest_decimal(0.123456789f), 0.12345679);
  for (float f : {1e-30f, 0.3f, 7.1e-5f, 123456.7f, 3.4e38f})
    EXPECT_EQ(static_cast<float>(descent::shortest_decimal(f)), f) << f;
}

TEST(MlxCos, CloseToCosAndExactAtTheEnds) {
  using descent::schedules::mlx_cos;
  EXPECT_EQ(mlx_cos(0.0f), 1.0f);
  EXPECT_EQ(mlx_cos(3.14159265358979f), -1.0f);  // so cosine_decay ends at f32(end) exactly
  int differs_from_cosf = 0;
  for (int i = 0; i <= 100000; ++i) {
    const float x = static_cast<float>(i) * (3.2f / 100000.0f);
    const float c = mlx_cos(x);
    EXPECT_NEAR(c, std::cos(static_cast<double>(x)), 2e-7) << x;
    EXPECT_EQ(mlx_cos(-x), c);
    differs_from_cosf += c != std::cos(x);
  }
  // Not libm: the two disagree in the last bit somewhere (mlx-semantics.md §4a).
  EXPECT_GT(differs_from_cosf, 0);
}

TEST(BuiltinSchedules, ValidateLikeMlx) {
  auto status_of = [](auto&& make) {
    try {
      make();
    } catch (const descent::Error& e) {
      return e.status();
    }
    return DESCENT_OK;
  };
  EXPECT_EQ(status_of([] { descent::step_decay(0.1, 0.9, 0); }), DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_EQ(status_of([] { descent::cosine_decay(0.1, 0); }), DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_EQ(status_of([] { descent::linear_schedule(0, 0.1, 0); }), DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_EQ(status_of([] { descent::exponential_decay(NAN, 0.9); }), DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_EQ(status_of([] { descent::join_schedules({}, {}); }), DESCENT_ERR_PARSE);
  EXPECT_EQ(
      status_of([] {
        descent::join_schedules({descent::constant_schedule(1), descent::constant_schedule(2)}, {});
      }),
      DESCENT_ERR_PARSE);
  EXPECT_EQ(status_of([] { descent::join_schedules({nullptr}, {}); }), DESCENT_ERR_NULL_ARGUMENT);
  // Join: absolute boundaries, local steps.
  const SchedulePtr j = descent::join_schedules(
      {descent::constant_schedule(7), descent::linear_schedule(0, 10, 10)}, {5});
  EXPECT_EQ(j->value(4), 7.0);
  EXPECT_EQ(j->value(5), 0.0);
  EXPECT_EQ(j->value(6), 1.0);
  EXPECT_EQ(j->value(100), 10.0);
}

TEST(ClipKernel, PairwiseSumOfSquares) {
  using descent::kernels::sum_squares;
  // Odd sizes around the block size, against a long-double reference.
  for (int64_t n : {0, 1, 7, 8, 9, 1023, 1024, 1025, 4097, 100003}) {
    std::vector<double> x(static_cast<size_t>(n));
    long double ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      x[static_cast<size_t>(i)] = std::sin(static_cast<double>(i) * 0.37) * 1e3;
      ref += static_cast<long double>(x[static_cast<size_t>(i)]) * x[static_cast<size_t>(i)];
    }
    const double got = sum_squares(x.data(), n);
    EXPECT_NEAR(got, static_cast<double>(ref), static_cast<double>(ref) * 1e-14 + 1e-300) << n;
  }
  // Rescaled pass: exact powers of two.
  const double big[] = {0x1p600, 0x1p600};
  EXPECT_EQ(sum_squares(big, 2, -600), 2.0);
  EXPECT_EQ(descent::kernels::max_abs(big, 2), 0x1p600);
  const float with_nan[] = {1.0f, NAN, 2.0f};
  EXPECT_TRUE(std::isnan(descent::kernels::max_abs(with_nan, 3)));
}

}  // namespace
