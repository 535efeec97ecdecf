// Learning-rate schedules through the C API: MLX's values (golden files, the upstream unit tests,
// the docstring examples), the string and JSON forms, errors that name the field, callbacks, and
// the step at which an optimizer evaluates its schedule.
#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <memory>
#include <string>
#include <vector>

#include "descent/descent.h"
#include "golden_support.h"

namespace {

using golden::Json;

double f32(double x) {
  return static_cast<double>(static_cast<float>(x));
}

// The schedule's value at `step`; fails the test on error.
double value_at(const std::string& spec, uint64_t step, double init_lr = 0.0) {
  double out = -1.0;
  const descent_status s = descent_schedule_value(spec.c_str(), init_lr, step, &out, nullptr, 0);
  EXPECT_EQ(s, DESCENT_OK) << spec << " at " << step << ": " << descent_last_error();
  return out;
}

struct OptimizerDeleter {
  void operator()(descent_optimizer* o) const { descent_optimizer_free(o); }
};
using OptimizerPtr = std::unique_ptr<descent_optimizer, OptimizerDeleter>;

OptimizerPtr make(const char* kind, const char* config = nullptr) {
  descent_optimizer* opt = nullptr;
  EXPECT_EQ(descent_optimizer_create(kind, &opt, nullptr, 0), DESCENT_OK) << descent_last_error();
  if (opt && config) {
    EXPECT_EQ(descent_optimizer_configure_json(opt, config), DESCENT_OK)
        << descent_optimizer_last_error(opt);
  }
  return OptimizerPtr(opt);
}

double learning_rate(descent_optimizer* opt) {
  double lr = -1;
  EXPECT_EQ(descent_optimizer_get_double(opt, "learning_rate", &lr), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  return lr;
}

uint64_t step_of(descent_optimizer* opt) {
  uint64_t step = 0;
  EXPECT_EQ(descent_optimizer_state_get(opt, "step", DESCENT_UINT64, &step, 1), DESCENT_OK);
  return step;
}

// An update with no tensors: advances the step and the schedule (MLX's update({}, {})).
void empty_update(descent_optimizer* opt) {
  ASSERT_EQ(descent_optimizer_update(opt, 0, nullptr, nullptr, nullptr, nullptr, nullptr),
            DESCENT_OK)
      << descent_optimizer_last_error(opt);
}

std::string lr_config(const std::string& schedule_json) {
  return "{\"learning_rate\": " + schedule_json + "}";
}

std::vector<std::string> golden_files(const std::string& prefix) {
  std::vector<std::string> out;
  DIR* dir = opendir((golden::data_dir() + "/golden").c_str());
  if (!dir) return out;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.rfind(prefix, 0) == 0 && name.size() > 5 &&
        name.compare(name.size() - 5, 5, ".json") == 0)
      out.push_back(name);
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

// ---- golden values ---------------------------------------------------------------------------

TEST(ScheduleGolden, ValuesMatchMlxExactly) {
  const auto files = golden_files("schedvals_");
  ASSERT_GE(files.size(), 7u);
  for (const auto& file : files) {
    const Json c = golden::load(golden::data_dir() + "/golden/" + file);
    ASSERT_EQ(c.at("kind"), "schedule") << file;
    const std::string spec = c.at("schedule").dump();
    const auto values = c.at("values").get<std::vector<double>>();
    const double rtol = c.at("tolerance").at("rtol").get<double>();
    const double atol = c.at("tolerance").at("atol").get<double>();
    ASSERT_GE(values.size(), 10u) << file;
    for (size_t step = 0; step < values.size(); ++step) {
      const double got = value_at(spec, step);
      EXPECT_LE(std::fabs(got - values[step]), atol + rtol * std::fabs(values[step]))
          << file << " step " << step;
      // descent reproduces MLX's float32 arithmetic, Cephes cosine included: bit for bit.
      EXPECT_EQ(got, values[step]) << std::setprecision(17) << file << " step " << step;
    }
  }
}

TEST(ScheduleGolden, OptimizerUsesValueBeforeTheIncrement) {
  for (const auto& file : golden_files("schedvals_")) {
    const Json c = golden::load(golden::data_dir() + "/golden/" + file);
    const auto values = c.at("values").get<std::vector<double>>();
    OptimizerPtr opt = make("sgd", lr_config(c.at("schedule").dump()).c_str());
    ASSERT_TRUE(opt);
    // MLX stores schedule(0) when the schedule is attached.
    EXPECT_EQ(learning_rate(opt.get()), values[0]) << file;
    for (size_t k = 1; k < values.size(); ++k) {
      empty_update(opt.get());
      EXPECT_EQ(step_of(opt.get()), k);
      EXPECT_EQ(learning_rate(opt.get()), values[k - 1]) << file << " after update " << k;
    }
  }
}

// ---- mlx-semantics.md §4: the docstring table (k = number of updates, lr = schedule(k - 1)) ----

struct DocExample {
  const char* json;
  int updates;
  double expected;  // MLX 0.32.2 on the CPU
};

TEST(ScheduleMlx, DocstringTable) {
  const DocExample examples[] = {
      {R"({"schedule": "exponential_decay", "init": 0.1, "decay_rate": 0.9})", 5,
       0.06560999155044556},
      {R"({"schedule": "step_decay", "init": 0.1, "decay_rate": 0.9, "step_size": 10})", 21,
       0.08099999278783798},
      {R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 1000})", 5, 0.09999605268239975},
      {R"({"schedule": "join_schedules", "schedules": [
            {"schedule": "linear_schedule", "init": 0, "end": 0.1, "steps": 10},
            {"schedule": "cosine_decay", "init": 0.1, "decay_steps": 200}], "boundaries": [10]})",
       12, 0.09999383240938187},
      {R"({"schedule": "linear_schedule", "init": 0, "end": 0.1, "steps": 100})", 101,
       0.10000000149011612},
  };
  for (const auto& e : examples) {
    EXPECT_EQ(value_at(e.json, e.updates - 1), e.expected) << e.json;
    OptimizerPtr opt = make("sgd", lr_config(e.json).c_str());
    for (int k = 0; k < e.updates; ++k) empty_update(opt.get());
    EXPECT_EQ(learning_rate(opt.get()), e.expected) << e.json;
  }
  // Called with a step, cosine_decay(0.1, 10)(4) is float32 0.06545084714889526.
  EXPECT_EQ(value_at(R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 10})", 4),
            0.06545084714889526);
  // join with boundaries [4, 2] (not sorted): the last boundary reached wins: 1, 3, 3.
  const std::string unsorted = R"({"schedule": "join_schedules", "schedules": [
      {"schedule": "constant", "value": 1}, {"schedule": "constant", "value": 2},
      {"schedule": "constant", "value": 3}], "boundaries": [4, 2]})";
  EXPECT_EQ(value_at(unsorted, 1), 1.0);
  EXPECT_EQ(value_at(unsorted, 3), 3.0);
  EXPECT_EQ(value_at(unsorted, 5), 3.0);
}

// ---- mlx-semantics.md §6: python/tests/test_optimizers.py, TestSchedulers -----------------------

TEST(ScheduleMlx, DecayLrEveryOptimizer) {
  const char* kinds[] = {"sgd",   "rmsprop", "adagrad", "adadelta",  "adam",
                         "adamw", "adamax",  "lion",    "adafactor", "muon"};
  const char* config =
      R"({"learning_rate": {"schedule": "step_decay", "init": 0.1, "decay_rate": 0.9, "step_size": 1}})";
  for (const char* kind : kinds) {
    descent_optimizer* raw = nullptr;
    if (descent_optimizer_create(kind, &raw, nullptr, 0) != DESCENT_OK) continue;  // not built yet
    OptimizerPtr opt(raw);
    ASSERT_EQ(descent_optimizer_configure_json(opt.get(), config), DESCENT_OK)
        << kind << ": " << descent_optimizer_last_error(opt.get());
    const int64_t shape[] = {5, 5};
    ASSERT_EQ(descent_optimizer_add_parameter(opt.get(), "w", DESCENT_FLOAT32, 2, shape),
              DESCENT_OK);
    std::vector<float> w(25, 1.0f), g(25, 1.0f);
    const char* names[] = {"w"};
    void* params[] = {w.data()};
    const void* grads[] = {g.data()};
    for (int it = 0; it < 10; ++it) {
      ASSERT_EQ(descent_optimizer_update(opt.get(), 1, names, nullptr, nullptr, params, grads),
                DESCENT_OK)
          << kind << ": " << descent_optimizer_last_error(opt.get());
      EXPECT_NEAR(learning_rate(opt.get()), 0.1 * std::pow(0.9, it), 1e-7) << kind << " " << it;
    }
  }
}

TEST(ScheduleMlx, StepExponentialCosine) {
  EXPECT_NEAR(
      value_at(R"({"schedule": "step_decay", "init": 0.1, "decay_rate": 0.9, "step_size": 1000})",
               2500),
      0.081, 1e-7);
  EXPECT_NEAR(value_at(R"({"schedule": "exponential_decay", "init": 0.1, "decay_rate": 0.99})", 10),
              0.1 * std::pow(0.99, 10), 1e-7);
  const double pi = 3.141592653589793;
  EXPECT_NEAR(value_at(R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 10})", 4),
              0.1 * 0.5 * (1.0 + std::cos(pi * 4 / 10)), 1e-7);
  const std::string with_end =
      R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 10, "end": 0.05})";
  EXPECT_GT(value_at(with_end, 9), 0.05);
  EXPECT_EQ(value_at(with_end, 20), f32(0.05));  // float32 end exactly: cos(pi) is -1
}

TEST(ScheduleMlx, Joiner) {
  auto constants = [](const std::string& boundaries) {
    return R"({"schedule": "join_schedules", "schedules": [{"schedule": "constant", "value": 3},
        {"schedule": "constant", "value": 4}, {"schedule": "constant", "value": 5}],
        "boundaries": )" +
           boundaries + "}";
  };
  double out = 0;
  EXPECT_EQ(descent_schedule_value(constants("[2, 3, 4]").c_str(), 0, 0, &out, nullptr, 0),
            DESCENT_ERR_PARSE);
  EXPECT_NE(std::string(descent_last_error()).find("boundaries"), std::string::npos)
      << descent_last_error();
  const std::string ok = constants("[2, 4]");
  const std::pair<uint64_t, double> expected[] = {{0, 3}, {1, 3}, {2, 4}, {3, 4}, {5, 5}, {7, 5}};
  for (const auto& [step, v] : expected) EXPECT_EQ(value_at(ok, step), v) << step;
}

TEST(ScheduleMlx, LinearWarmupWithCosineDecay) {
  const std::string s = R"({"schedule": "join_schedules", "schedules": [
      {"schedule": "linear_schedule", "init": 0, "end": 1e-5, "steps": 100},
      {"schedule": "cosine_decay", "init": 1e-5, "decay_steps": 100}], "boundaries": [101]})";
  EXPECT_EQ(value_at(s, 0), 0.0);
  EXPECT_EQ(value_at(s, 100), f32(100.0f * static_cast<float>(1e-5 / 100)));
  EXPECT_EQ(value_at(s, 101), f32(1e-5));  // cosine's local step 0
}

TEST(ScheduleMlx, CompileWithSchedule) {
  // SGD(exponential_decay(0.1, 0.9)) and update({}, {}): after update step + 1, lr =
  // schedule(step).
  const std::string s = R"({"schedule": "exponential_decay", "init": 0.1, "decay_rate": 0.9})";
  OptimizerPtr opt = make("sgd", lr_config(s).c_str());
  for (uint64_t step = 0; step < 5; ++step) {
    empty_update(opt.get());
    EXPECT_NEAR(learning_rate(opt.get()), 0.1 * std::pow(0.9, static_cast<double>(step)), 1e-7);
    EXPECT_EQ(learning_rate(opt.get()), value_at(s, step));
  }
}

// ---- string forms ------------------------------------------------------------------------------

const uint64_t kSteps[] = {
    0,   1,   2,   3,    4,    5,    7,    9,    10,   11,   50,     99,       100,
    101, 102, 999, 1000, 1001, 1234, 2500, 4999, 5000, 5001, 100000, 10000000, 4294967296ull};

void expect_same_schedule(const std::string& a, const std::string& b, double init_a = 0.0,
                          double init_b = 0.0) {
  for (uint64_t step : kSteps)
    EXPECT_EQ(value_at(a, step, init_a), value_at(b, step, init_b))
        << a << " vs " << b << " at " << step;
}

TEST(ScheduleString, SpelledOutFormsEqualJson) {
  expect_same_schedule("exponential_decay:0.1:0.999",
                       R"({"schedule": "exponential_decay", "init": 0.1, "decay_rate": 0.999})");
  expect_same_schedule(
      "step_decay:0.1:0.9:1000",
      R"({"schedule": "step_decay", "init": 0.1, "decay_rate": 0.9, "step_size": 1000})");
  expect_same_schedule(
      "cosine_decay:0.1:1000:0.001",
      R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 1000, "end": 0.001})");
  expect_same_schedule(
      "cosine_decay:0.1:1000",
      R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 1000, "end": 0.0})");
  expect_same_schedule("linear_schedule:0:0.1:100",
                       R"({"schedule": "linear_schedule", "init": 0.0, "end": 0.1, "steps": 100})");
  expect_same_schedule("constant:0.125", R"({"schedule": "constant", "value": 0.125})");
  // Whitespace around fields, a leading '+' and integers written as 1e3 are accepted.
  expect_same_schedule(" cosine_decay : 0.1 : 1e3 : +0.001 ", "cosine_decay:0.1:1000:0.001");
}

TEST(ScheduleString, ShorthandsTakeTheInitialValue) {
  // cosine:<iters>:<min_lr> is cosine_decay(init, iters, min_lr).
  expect_same_schedule("cosine:1000:1e-5", "cosine_decay:3e-4:1000:1e-5", 3e-4, 0.0);
  // warmup_cosine:<warmup>:<iters>:<min_lr> is mlx-lm's warm-up: linear from 0 to init over
  // `warmup` steps, joined at warmup + 1 with cosine_decay(init, iters, min_lr).
  expect_same_schedule(
      "warmup_cosine:100:1000:1e-5",
      R"({"name": "cosine_decay", "arguments": [3e-4, 1000, 1e-5], "warmup": 100})", 3e-4, 0.0);
  expect_same_schedule("warmup_cosine:100:1000:1e-5",
                       R"({"schedule": "join_schedules", "schedules": [
                           {"schedule": "linear_schedule", "init": 0, "end": 3e-4, "steps": 100},
                           {"schedule": "cosine_decay", "init": 3e-4, "decay_steps": 1000, "end": 1e-5}],
                           "boundaries": [101]})",
                       3e-4, 0.0);
  EXPECT_EQ(value_at("warmup_cosine:100:1000:1e-5", 0, 3e-4), 0.0);
  EXPECT_EQ(value_at("warmup_cosine:100:1000:1e-5", 100, 3e-4), f32(3e-4));
  // Step 101 is cosine's local step 0: f32(end) + 1 * f32(init - end), about init.
  EXPECT_EQ(value_at("warmup_cosine:100:1000:1e-5", 101, 3e-4),
            value_at("cosine_decay:3e-4:1000:1e-5", 0));
  EXPECT_NEAR(value_at("warmup_cosine:100:1000:1e-5", 101, 3e-4), 3e-4, 1e-10);
  EXPECT_LT(value_at("warmup_cosine:100:1000:1e-5", 102, 3e-4), f32(3e-4));
  EXPECT_EQ(value_at("warmup_cosine:100:1000:1e-5", 1101, 3e-4),
            value_at("cosine_decay:3e-4:1000:1e-5", 1000));
  // No warm-up: plain cosine (mlx-lm: warmup 0 means none).
  expect_same_schedule("warmup_cosine:0:1000:1e-5", "cosine:1000:1e-5", 3e-4, 3e-4);
}

TEST(ScheduleString, ShorthandOnOptimizerUsesItsLearningRate) {
  OptimizerPtr opt = make("adamw", R"({"learning_rate": 0.001})");
  ASSERT_EQ(descent_optimizer_set_schedule(opt.get(), "warmup_cosine:10:100:1e-5"), DESCENT_OK)
      << descent_optimizer_last_error(opt.get());
  // The float32 learning rate 0.001f stands for the decimal 0.001, as in MLX's config.
  const std::string same =
      R"({"name": "cosine_decay", "arguments": [0.001, 100, 1e-5], "warmup": 10})";
  EXPECT_EQ(learning_rate(opt.get()), value_at(same, 0));
  for (uint64_t k = 1; k <= 130; ++k) {
    empty_update(opt.get());
    ASSERT_EQ(learning_rate(opt.get()), value_at(same, k - 1)) << k;
  }
  // Attached after 130 steps, a schedule starts at schedule(130) (MLX stores schedule(step)).
  ASSERT_EQ(descent_optimizer_set_schedule(opt.get(), "exponential_decay:0.5:0.5"), DESCENT_OK);
  EXPECT_EQ(learning_rate(opt.get()), value_at("exponential_decay:0.5:0.5", 130));
}

TEST(ScheduleString, ShorthandNeedsALearningRate) {
  OptimizerPtr opt = make("sgd");  // MLX's SGD has no default learning rate
  EXPECT_EQ(descent_optimizer_set_schedule(opt.get(), "cosine:100:0"), DESCENT_ERR_INVALID_STATE);
  EXPECT_NE(std::string(descent_optimizer_last_error(opt.get())).find("learning_rate"),
            std::string::npos);
  // A spelled-out form needs none.
  EXPECT_EQ(descent_optimizer_set_schedule(opt.get(), "cosine_decay:0.1:100:0"), DESCENT_OK);
  EXPECT_EQ(learning_rate(opt.get()), f32(0.1));
}

struct BadSpec {
  const char* spec;
  descent_status status;
  const char* mentions;  // the message names the field
};

TEST(ScheduleString, ErrorsNameTheField) {
  const BadSpec bad[] = {
      {"cosine:abc:0", DESCENT_ERR_PARSE, "cosine: field 2 (iters) 'abc' is not a number"},
      {"cosine:100:x", DESCENT_ERR_PARSE, "field 3 (min_lr) 'x' is not a number"},
      {"cosine:1.5:0", DESCENT_ERR_PARSE, "field 2 (iters) '1.5' is not an integer"},
      {"cosine:0:0", DESCENT_ERR_OUT_OF_RANGE, "field 2 (iters) must be >= 1"},
      {"cosine:-5:0", DESCENT_ERR_OUT_OF_RANGE, "field 2 (iters) must be >= 1"},
      {"cosine:100", DESCENT_ERR_PARSE, "cosine:<iters>:<min_lr>"},
      {"cosine:100:0:7", DESCENT_ERR_PARSE, "got 3 arguments"},
      {"cosine::0", DESCENT_ERR_PARSE, "field 2 (iters) is empty"},
      {"warmup_cosine:-1:100:0", DESCENT_ERR_OUT_OF_RANGE, "field 2 (warmup) must be >= 0"},
      {"warmup_cosine:10:0:0", DESCENT_ERR_OUT_OF_RANGE, "field 3 (iters) must be >= 1"},
      {"exponential_decay:0.1", DESCENT_ERR_PARSE, "exponential_decay:<init>:<decay_rate>"},
      {"exponential_decay:0.1:nan", DESCENT_ERR_OUT_OF_RANGE, "field 3 (decay_rate)"},
      {"exponential_decay:1e39:0.9", DESCENT_ERR_OUT_OF_RANGE, "field 2 (init)"},
      {"step_decay:0.1:0.9:0", DESCENT_ERR_OUT_OF_RANGE, "field 4 (step_size) must be >= 1"},
      {"cosine_decay:0.1:0", DESCENT_ERR_OUT_OF_RANGE, "field 3 (decay_steps) must be >= 1"},
      {"linear_schedule:0:0.1:0", DESCENT_ERR_OUT_OF_RANGE, "field 4 (steps) must be >= 1"},
      {"linear_schedule:0:0.1:1e30", DESCENT_ERR_OUT_OF_RANGE, "field 4 (steps)"},
      {"cosinus:100:0", DESCENT_ERR_PARSE, "unknown schedule 'cosinus'"},
      {"", DESCENT_ERR_PARSE, "empty"},
      {"{\"schedule\": \"cosine_decay\"", DESCENT_ERR_PARSE, "not valid JSON"},
  };
  for (const auto& b : bad) {
    double out = 12345.0;
    EXPECT_EQ(descent_schedule_value(b.spec, 0.1, 0, &out, nullptr, 0), b.status) << b.spec;
    EXPECT_NE(std::string(descent_last_error()).find(b.mentions), std::string::npos)
        << b.spec << " -> " << descent_last_error();
    EXPECT_EQ(out, 12345.0) << "out written on error for " << b.spec;
  }
}

TEST(ScheduleJson, ErrorsNameTheField) {
  const BadSpec bad[] = {
      {R"({"schedule": "cosine_decay", "init": 0.1})", DESCENT_ERR_PARSE,
       "cosine_decay: missing field 'decay_steps'"},
      {R"({"schedule": "cosine_decay", "init": "0.1", "decay_steps": 10})", DESCENT_ERR_PARSE,
       "field 'init' must be a number"},
      {R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 0})", DESCENT_ERR_OUT_OF_RANGE,
       "field 'decay_steps' must be >= 1"},
      {R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 2.5})", DESCENT_ERR_PARSE,
       "field 'decay_steps' must be an integer"},
      {R"({"schedule": "cosine_decay", "init": 0.1, "decay_steps": 10, "ned": 0})",
       DESCENT_ERR_PARSE, "unknown field 'ned'"},
      {R"({"schedule": "step_decay", "init": 0.1, "decay_rate": 0.9, "step_size": 0})",
       DESCENT_ERR_OUT_OF_RANGE, "step_decay: field 'step_size' must be >= 1 (got 0)"},
      {R"({"schedule": "linear_schedule", "init": 0, "end": 1, "steps": -3})",
       DESCENT_ERR_OUT_OF_RANGE, "field 'steps' must be >= 1 (got -3)"},
      {R"({"schedule": "join_schedules", "schedules": [], "boundaries": []})", DESCENT_ERR_PARSE,
       "at least one schedule"},
      {R"({"schedule": "join_schedules", "schedules": [{"schedule": "constant", "value": 1}],
           "boundaries": [3]})",
       DESCENT_ERR_PARSE, "1 schedules need 0 boundaries, got 1"},
      {R"({"schedule": "join_schedules", "schedules": [{"schedule": "constant", "value": 1},
           {"schedule": "cosine_decay", "init": 0.1, "decay_steps": 0}], "boundaries": [3]})",
       DESCENT_ERR_OUT_OF_RANGE, "schedules[1]: cosine_decay: field 'decay_steps' must be >= 1"},
      {R"({"schedule": "join_schedules", "schedules": [{"schedule": "constant", "value": 1},
           {"schedule": "constant", "value": 2}], "boundaries": [-1]})",
       DESCENT_ERR_OUT_OF_RANGE, "boundaries[0] must be >= 0"},
      {R"({"schedule": "polynomial_decay"})", DESCENT_ERR_PARSE,
       "unknown schedule 'polynomial_decay'"},
      {R"({"init": 0.1})", DESCENT_ERR_PARSE, "needs \"schedule\""},
      {R"({"name": "cosine_decay", "arguments": [0.1]})", DESCENT_ERR_PARSE,
       "'arguments' must be [init, decay_steps, [end]], got 1 values"},
      {R"({"name": "cosine_decay", "arguments": [0.1, "x"]})", DESCENT_ERR_PARSE,
       "arguments[1] (decay_steps) must be an integer"},
      {R"({"name": "cosine_decay", "arguments": [0.1, 100], "warmup": -2})",
       DESCENT_ERR_OUT_OF_RANGE, "field 'warmup' must be >= 0"},
      {R"({"name": "join_schedules", "arguments": []})", DESCENT_ERR_PARSE,
       "unknown schedule function 'join_schedules'"},
      {R"({"name": "cosine_decay", "arguments": [0.1, 100], "schedule": "cosine_decay"})",
       DESCENT_ERR_PARSE, "not both"},
      {"[1, 2]", DESCENT_ERR_PARSE, "unknown schedule"},  // not an object: read as a string form
  };
  for (const auto& b : bad) {
    double out = 12345.0;
    EXPECT_EQ(descent_schedule_value(b.spec, 0.1, 0, &out, nullptr, 0), b.status) << b.spec;
    EXPECT_NE(std::string(descent_last_error()).find(b.mentions), std::string::npos)
        << b.spec << " -> " << descent_last_error();
    EXPECT_EQ(out, 12345.0);
  }
}

TEST(ScheduleJson, ConfigureJsonIsAllOrNothing) {
  OptimizerPtr opt = make("sgd", R"({"learning_rate": 0.5, "momentum": 0.9})");
  const char* bad =
      R"({"momentum": 0.1, "learning_rate": {"schedule": "cosine_decay", "init": 0.1, "decay_steps": 0}})";
  EXPECT_EQ(descent_optimizer_configure_json(opt.get(), bad), DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_NE(std::string(descent_optimizer_last_error(opt.get())).find("decay_steps"),
            std::string::npos);
  EXPECT_EQ(learning_rate(opt.get()), 0.5);
  double momentum = 0;
  EXPECT_EQ(descent_optimizer_get_double(opt.get(), "momentum", &momentum), DESCENT_OK);
  EXPECT_EQ(momentum, 0.9);
  empty_update(opt.get());
  EXPECT_EQ(learning_rate(opt.get()), 0.5);  // no schedule attached
}

TEST(ScheduleJson, MlxLmFormDefaultsAndIntegralFloats) {
  // warmup_init defaults to 0 and warmup to 0 (no warm-up); 1000.0 is read as the integer 1000.
  expect_same_schedule(R"({"name": "cosine_decay", "arguments": [0.1, 1000.0]})",
                       "cosine_decay:0.1:1000:0");
  expect_same_schedule(
      R"({"name": "linear_schedule", "arguments": [0, 0.1, 50], "warmup": 5, "warmup_init": 0.01})",
      R"({"schedule": "join_schedules", "schedules": [
                           {"schedule": "linear_schedule", "init": 0.01, "end": 0, "steps": 5},
                           {"schedule": "linear_schedule", "init": 0, "end": 0.1, "steps": 50}],
                           "boundaries": [6]})");
}

TEST(Schedule, OverflowIsAnErrorAtItsStep) {
  // exponential_decay(1, 10): 1e38 at step 38, float32 overflow (inf) at step 39.
  double out = 0;
  EXPECT_EQ(descent_schedule_value("exponential_decay:1:10", 0, 38, &out, nullptr, 0), DESCENT_OK);
  EXPECT_EQ(out, f32(1e38));
  EXPECT_EQ(descent_schedule_value("exponential_decay:1:10", 0, 39, &out, nullptr, 0),
            DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_NE(std::string(descent_last_error()).find("step 39"), std::string::npos)
      << descent_last_error();
  OptimizerPtr opt = make("sgd", R"({"learning_rate": 1.0})");
  ASSERT_EQ(descent_optimizer_set_schedule(opt.get(), "exponential_decay:1:10"), DESCENT_OK);
  for (int k = 0; k < 39; ++k) empty_update(opt.get());
  EXPECT_EQ(descent_optimizer_update(opt.get(), 0, nullptr, nullptr, nullptr, nullptr, nullptr),
            DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_EQ(step_of(opt.get()), 39u);
  EXPECT_EQ(learning_rate(opt.get()), f32(1e38));
  // Attaching a schedule whose value at the current step overflows fails and keeps the old one.
  EXPECT_EQ(descent_optimizer_set_schedule(opt.get(), "exponential_decay:2:10"),
            DESCENT_ERR_OUT_OF_RANGE);
  ASSERT_EQ(descent_optimizer_set_schedule(opt.get(), "constant:0.5"), DESCENT_OK);
  empty_update(opt.get());
  EXPECT_EQ(learning_rate(opt.get()), 0.5);
}

// ---- clearing and replacing ----------------------------------------------------------------

TEST(Schedule, ClearKeepsTheLastValue) {
  OptimizerPtr opt = make("sgd", R"({"learning_rate": 1.0})");
  ASSERT_EQ(descent_optimizer_set_schedule(opt.get(), "exponential_decay:1:0.5"), DESCENT_OK);
  empty_update(opt.get());
  empty_update(opt.get());
  empty_update(opt.get());
  EXPECT_EQ(learning_rate(opt.get()), 0.25);  // schedule(2)
  ASSERT_EQ(descent_optimizer_clear_schedule(opt.get()), DESCENT_OK);
  EXPECT_EQ(learning_rate(opt.get()), 0.25);
  empty_update(opt.get());
  EXPECT_EQ(learning_rate(opt.get()), 0.25);
  // A plain learning_rate set while a schedule is attached is overwritten at the next update,
  // as in MLX.
  ASSERT_EQ(descent_optimizer_set_schedule(opt.get(), "constant:0.125"), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_set_double(opt.get(), "learning_rate", 3.0), DESCENT_OK);
  EXPECT_EQ(learning_rate(opt.get()), 3.0);
  empty_update(opt.get());
  EXPECT_EQ(learning_rate(opt.get()), 0.125);
}

TEST(Schedule, NullArguments) {
  double out = 0;
  EXPECT_EQ(descent_schedule_value(nullptr, 0, 0, &out, nullptr, 0), DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_schedule_value("constant:1", 0, 0, nullptr, nullptr, 0),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_set_schedule(nullptr, "constant:1"), DESCENT_ERR_NULL_ARGUMENT);
  OptimizerPtr opt = make("sgd", R"({"learning_rate": 1.0})");
  EXPECT_EQ(descent_optimizer_set_schedule(opt.get(), nullptr), DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_set_schedule_callback(opt.get(), nullptr, nullptr, nullptr),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_clear_schedule(nullptr), DESCENT_ERR_NULL_ARGUMENT);
  // init_lr is only read by the shorthands: NaN there is a range error naming it.
  EXPECT_EQ(descent_schedule_value("cosine:10:0", NAN, 0, &out, nullptr, 0),
            DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_NE(std::string(descent_last_error()).find("initial learning rate"), std::string::npos);
  EXPECT_EQ(descent_schedule_value("constant:1", NAN, 0, &out, nullptr, 0), DESCENT_OK);
}

// ---- callbacks -----------------------------------------------------------------------------

struct Probe {
  std::vector<uint64_t> calls;
  int frees = 0;
  uint64_t bad_step = UINT64_MAX;  // returns bad_value from this step on
  double bad_value = NAN;
};

descent_status probe_fn(uint64_t step, void* user_data, double* value, char*, size_t) {
  auto* p = static_cast<Probe*>(user_data);
  p->calls.push_back(step);
  *value = step >= p->bad_step ? p->bad_value : 0.01 * static_cast<double>(step + 1);
  return DESCENT_OK;
}

void probe_free(void* user_data) {
  static_cast<Probe*>(user_data)->frees++;
}

TEST(ScheduleCallback, CalledWithThePreIncrementStep) {
  Probe probe;
  OptimizerPtr opt = make("sgd", R"({"learning_rate": 1.0})");
  const int64_t shape[] = {3};
  ASSERT_EQ(descent_optimizer_add_parameter(opt.get(), "w", DESCENT_FLOAT32, 1, shape), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_set_schedule_callback(opt.get(), probe_fn, &probe, probe_free),
            DESCENT_OK);
  EXPECT_EQ(probe.calls, std::vector<uint64_t>{0});  // attached at step 0: schedule(0)
  EXPECT_EQ(learning_rate(opt.get()), f32(0.01));
  std::vector<float> w(3, 0.0f), g(3, 1.0f);
  const char* names[] = {"w"};
  void* params[] = {w.data()};
  const void* grads[] = {g.data()};
  for (int k = 1; k <= 3; ++k) {
    ASSERT_EQ(descent_optimizer_update(opt.get(), 1, names, nullptr, nullptr, params, grads),
              DESCENT_OK);
    EXPECT_EQ(probe.calls.back(), static_cast<uint64_t>(k - 1));  // update k uses schedule(k - 1)
    EXPECT_EQ(learning_rate(opt.get()), f32(0.01 * k));
  }
  EXPECT_EQ(probe.calls, (std::vector<uint64_t>{0, 0, 1, 2}));
  // SGD: w = -(lr0 + lr1 + lr2) * g, with float32 learning rates.
  const float expected =
      ((0.0f - static_cast<float>(0.01)) - static_cast<float>(0.02)) - static_cast<float>(0.03);
  EXPECT_EQ(w[0], expected);
  EXPECT_EQ(probe.frees, 0);
  opt.reset();
  EXPECT_EQ(probe.frees, 1);
}

TEST(ScheduleCallback, UserDataFreedExactlyOnce) {
  Probe a, b, c, d;
  OptimizerPtr opt = make("adam", R"({"learning_rate": 1e-3})");
  ASSERT_EQ(descent_optimizer_set_schedule_callback(opt.get(), probe_fn, &a, probe_free),
            DESCENT_OK);
  // Replaced by another callback: a is freed.
  ASSERT_EQ(descent_optimizer_set_schedule_callback(opt.get(), probe_fn, &b, probe_free),
            DESCENT_OK);
  EXPECT_EQ(a.frees, 1);
  EXPECT_EQ(b.frees, 0);
  // Replaced by a string schedule: b is freed.
  ASSERT_EQ(descent_optimizer_set_schedule(opt.get(), "constant:0.5"), DESCENT_OK);
  EXPECT_EQ(b.frees, 1);
  // Cleared.
  ASSERT_EQ(descent_optimizer_set_schedule_callback(opt.get(), probe_fn, &c, probe_free),
            DESCENT_OK);
  ASSERT_EQ(descent_optimizer_clear_schedule(opt.get()), DESCENT_OK);
  EXPECT_EQ(c.frees, 1);
  // A failed configure_json keeps it; a configure_json with a plain learning rate drops it.
  ASSERT_EQ(descent_optimizer_set_schedule_callback(opt.get(), probe_fn, &d, probe_free),
            DESCENT_OK);
  EXPECT_NE(
      descent_optimizer_configure_json(opt.get(), R"({"learning_rate": 0.1, "no_such_key": 1})"),
      DESCENT_OK);
  EXPECT_EQ(d.frees, 0);
  empty_update(opt.get());
  EXPECT_EQ(d.calls.size(), 2u);  // attach and one update: still attached
  ASSERT_EQ(descent_optimizer_configure_json(opt.get(), R"({"learning_rate": 0.1})"), DESCENT_OK);
  EXPECT_EQ(d.frees, 1);
  opt.reset();
  EXPECT_EQ(a.frees + b.frees + c.frees + d.frees, 4);
  // free_user_data may be NULL.
  Probe e;
  OptimizerPtr other = make("sgd", R"({"learning_rate": 1.0})");
  ASSERT_EQ(descent_optimizer_set_schedule_callback(other.get(), probe_fn, &e, nullptr),
            DESCENT_OK);
  other.reset();
  EXPECT_EQ(e.frees, 0);
}

TEST(ScheduleCallback, NonFiniteFailsTheUpdateAndChangesNothing) {
  for (double bad : {static_cast<double>(NAN), static_cast<double>(INFINITY), -1e300}) {
    Probe probe;
    probe.bad_step = 2;
    probe.bad_value = bad;
    OptimizerPtr opt = make("sgd", R"({"learning_rate": 1.0, "momentum": 0.9})");
    const int64_t shape[] = {2};
    ASSERT_EQ(descent_optimizer_add_parameter(opt.get(), "w", DESCENT_FLOAT32, 1, shape),
              DESCENT_OK);
    ASSERT_EQ(descent_optimizer_set_schedule_callback(opt.get(), probe_fn, &probe, probe_free),
              DESCENT_OK);
    std::vector<float> w{1.0f, 2.0f}, g{0.5f, -0.5f};
    const char* names[] = {"w"};
    void* params[] = {w.data()};
    const void* grads[] = {g.data()};
    for (int k = 0; k < 2; ++k)
      ASSERT_EQ(descent_optimizer_update(opt.get(), 1, names, nullptr, nullptr, params, grads),
                DESCENT_OK);
    const std::vector<float> w_before = w;
    float v_before[2];
    ASSERT_EQ(descent_optimizer_state_get(opt.get(), "w.v", DESCENT_FLOAT32, v_before, 2),
              DESCENT_OK);
    const double lr_before = learning_rate(opt.get());
    EXPECT_EQ(descent_optimizer_update(opt.get(), 1, names, nullptr, nullptr, params, grads),
              DESCENT_ERR_OUT_OF_RANGE);
    EXPECT_NE(std::string(descent_optimizer_last_error(opt.get())).find("step 2"),
              std::string::npos)
        << descent_optimizer_last_error(opt.get());
    EXPECT_EQ(step_of(opt.get()), 2u);
    EXPECT_EQ(w, w_before);
    float v_after[2];
    ASSERT_EQ(descent_optimizer_state_get(opt.get(), "w.v", DESCENT_FLOAT32, v_after, 2),
              DESCENT_OK);
    EXPECT_EQ(std::memcmp(v_before, v_after, sizeof v_before), 0);
    EXPECT_EQ(learning_rate(opt.get()), lr_before);
    opt.reset();
    EXPECT_EQ(probe.frees, 1);
  }
}

TEST(ScheduleCallback, FailingAttachLeavesUserDataWithTheCaller) {
  Probe good, bad;
  bad.bad_step = 0;  // non-finite at the current step: attaching fails
  OptimizerPtr opt = make("sgd", R"({"learning_rate": 1.0})");
  ASSERT_EQ(descent_optimizer_set_schedule_callback(opt.get(), probe_fn, &good, probe_free),
            DESCENT_OK);
  EXPECT_EQ(descent_optimizer_set_schedule_callback(opt.get(), probe_fn, &bad, probe_free),
            DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_EQ(bad.frees, 0);   // not taken: the caller still owns it
  EXPECT_EQ(good.frees, 0);  // the previous schedule is still attached
  empty_update(opt.get());
  EXPECT_EQ(good.calls.size(), 2u);
  opt.reset();
  EXPECT_EQ(good.frees, 1);
  EXPECT_EQ(bad.frees, 0);
}

}  // namespace
