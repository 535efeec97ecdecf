// Distinct handles are independent and may be used concurrently (descent.h, "Threading"): threads
// each drive their own optimizers of every kind (updates, state get/set, save/load through
// buffers and files, schedules as strings, JSON and callbacks) while other threads make failing
// calls (unknown kinds, malformed JSON, unknown keys, bad schedules). Every thread's results equal
// a sequential run bit for bit, and every message (caller buffer, per-handle, per-thread) is the
// one of the call that made it. Also run under ThreadSanitizer (scripts/test-sanitizers.sh tsan).
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "reliability_support.h"
#include "test_support.h"

// OpenBLAS's own thread pool, shared by every thread that calls it, turns four threads running
// small Muon updates at once into minutes of waiting on a loaded 2-core machine; one BLAS thread
// per caller keeps this test fast (descent's results do not depend on it: docs/reliability.md).
extern "C" void openblas_set_num_threads(int);

namespace {

using reliability::Bytes;
using reliability::Training;

constexpr int kSteps = 12;

// One worker's whole job; returns its fingerprint (parameters + saved state) and its errors.
struct Outcome {
  Bytes fingerprint;
  std::vector<std::string> errors;
};

Outcome train(const std::string& kind, uint64_t seed, const std::string& dir) {
  const int schedule_form = int(seed % 4);
  Training run(kind, seed, schedule_form);
  const std::string path = dir + "/" + kind + "-" + std::to_string(seed) + ".safetensors";
  for (int k = 0; k < kSteps; ++k) {
    run.step();
    if (k % 4 == 1)
      run.state_roundtrip(kind == "multi" ? "states.1.learning_rate" : "learning_rate");
    if (k % 4 == 2) run.reload_from_buffer(run.save(), schedule_form);
    if (k % 4 == 3) run.reload_from_file(path, schedule_form);
    if (k == 5) {  // a failing call on the worker's own handle: its own message
      const std::string key = "no_such_key_" + kind + "_" + std::to_string(seed);
      double v = 0;
      if (descent_optimizer_get_double(run.opt(), key.c_str(), &v) != DESCENT_ERR_UNKNOWN_KEY)
        run.fail("get_double(" + key + ") did not fail with DESCENT_ERR_UNKNOWN_KEY");
      else if (std::string(descent_optimizer_last_error(run.opt())).find(key) == std::string::npos)
        run.fail("handle message is not this call's: " +
                 std::string(descent_optimizer_last_error(run.opt())));
      else if (std::string(descent_last_error()).find(key) == std::string::npos)
        run.fail("thread message is not this call's: " + std::string(descent_last_error()));
    }
  }
  return {run.fingerprint(), run.errors()};
}

// Failing calls whose messages name something only this thread and iteration use.
std::vector<std::string> fail_repeatedly(int id, int iterations, const std::atomic<bool>& stop) {
  std::vector<std::string> errors;
  descent_optimizer* own = nullptr;
  descent_optimizer_create("adam", &own, nullptr, 0);
  for (int i = 0; (i < iterations || !stop.load()) && errors.empty(); ++i) {
    const std::string tag = std::to_string(id) + "_" + std::to_string(i);
    char err[DESCENT_ERROR_CAPACITY];

    const std::string kind = "no_such_kind_" + tag;
    descent_optimizer* out = nullptr;
    if (descent_optimizer_create(kind.c_str(), &out, err, sizeof err) != DESCENT_ERR_UNKNOWN_KIND ||
        out != nullptr)
      errors.push_back("create(" + kind + ") did not fail cleanly");
    else if (std::string(err).find(kind) == std::string::npos)
      errors.push_back("create: caller buffer holds another message: " + std::string(err));
    else if (std::string(descent_last_error()).find(kind) == std::string::npos)
      errors.push_back("create: thread message is another: " + std::string(descent_last_error()));

    const std::string json = "{\"bad_key_" + tag + "\": 1}";
    if (descent_optimizer_configure_json(own, json.c_str()) != DESCENT_ERR_UNKNOWN_KEY)
      errors.push_back("configure_json(" + json + ") did not fail with UNKNOWN_KEY");
    else if (std::string(descent_optimizer_last_error(own)).find("bad_key_" + tag) ==
             std::string::npos)
      errors.push_back("handle message is another: " +
                       std::string(descent_optimizer_last_error(own)));

    if (descent_optimizer_configure_json(own, "{\"learning_rate\": ") != DESCENT_ERR_PARSE)
      errors.push_back("malformed JSON did not fail with DESCENT_ERR_PARSE");

    const std::string key = "w_" + tag + ".m";
    float x = 0;
    if (descent_optimizer_state_get(own, key.c_str(), DESCENT_FLOAT32, &x, 1) == DESCENT_OK)
      errors.push_back("state_get(" + key + ") worked");
    else if (std::string(descent_optimizer_last_error(own)).find(key) == std::string::npos)
      errors.push_back("state_get: handle message is another: " +
                       std::string(descent_optimizer_last_error(own)));

    const std::string spec = "cosine:" + tag + "x:0";
    double v = 0;
    if (descent_schedule_value(spec.c_str(), 0.1, 3, &v, err, sizeof err) == DESCENT_OK)
      errors.push_back("schedule_value(" + spec + ") worked");
    else if (std::string(err).find(tag + "x") == std::string::npos)
      errors.push_back("schedule_value: caller buffer holds another message: " + std::string(err));
  }
  descent_optimizer_free(own);
  return errors;
}

TEST(Concurrency, ThreadsEqualASequentialRunAndKeepTheirOwnMessages) {
  openblas_set_num_threads(1);
  const std::vector<std::string> kinds = descent_test::all_kinds();
  reliability::TempDir dir;
  ASSERT_FALSE(dir.path().empty());

  // Two optimizers of every kind, different seeds (so different schedule forms).
  struct Job {
    std::string kind;
    uint64_t seed;
  };
  std::vector<Job> jobs;
  for (std::size_t i = 0; i < kinds.size(); ++i)
    for (uint64_t s = 0; s < 2; ++s) jobs.push_back({kinds[i], 10 * i + s + 1});

  std::vector<Outcome> sequential;
  for (const Job& j : jobs) sequential.push_back(train(j.kind, j.seed, dir.path()));

  // Concurrently: the jobs spread over 4 threads, and 2 threads failing all the time.
  constexpr int kWorkers = 4;
  std::vector<Outcome> concurrent(jobs.size());
  std::atomic<bool> stop{false};
  std::vector<std::vector<std::string>> failer_errors(2);
  std::vector<std::thread> failers;
  for (int f = 0; f < 2; ++f)
    failers.emplace_back([&, f] { failer_errors[f] = fail_repeatedly(f, 20, stop); });
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w)
    workers.emplace_back([&, w] {
      for (std::size_t j = std::size_t(w); j < jobs.size(); j += kWorkers)
        concurrent[j] = train(jobs[j].kind, jobs[j].seed, dir.path());
    });
  for (auto& t : workers) t.join();
  stop = true;
  for (auto& t : failers) t.join();

  for (std::size_t j = 0; j < jobs.size(); ++j) {
    SCOPED_TRACE(jobs[j].kind + " seed " + std::to_string(jobs[j].seed));
    EXPECT_TRUE(sequential[j].errors.empty()) << sequential[j].errors.front();
    EXPECT_TRUE(concurrent[j].errors.empty()) << concurrent[j].errors.front();
    EXPECT_FALSE(sequential[j].fingerprint.empty());
    EXPECT_TRUE(concurrent[j].fingerprint == sequential[j].fingerprint)
        << "the concurrent run differs from the sequential one";
  }
  for (const auto& e : failer_errors) EXPECT_TRUE(e.empty()) << e.front();
}

}  // namespace
