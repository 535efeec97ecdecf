// Errors of calls without a handle come back through the call itself (a caller buffer), so a
// language whose calls hop between OS threads (goroutines, Julia tasks) never reads another
// call's message: 16 threads failing at once each get their own message.
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "api_test_support.h"

namespace {

TEST(ErrorBuffer, CreateWritesTheMessageOnlyOnFailure) {
  char error[DESCENT_ERROR_CAPACITY];
  std::strcpy(error, "untouched");
  descent_optimizer* opt = nullptr;
  ASSERT_EQ(descent_optimizer_create("adam", &opt, error, sizeof error), DESCENT_OK);
  EXPECT_STREQ(error, "untouched");
  descent_optimizer_free(opt);
  opt = nullptr;
  EXPECT_EQ(descent_optimizer_create("adamz", &opt, error, sizeof error), DESCENT_ERR_UNKNOWN_KIND);
  EXPECT_EQ(opt, nullptr);
  EXPECT_NE(std::string(error).find("'adamz'"), std::string::npos) << error;
  EXPECT_STREQ(error, descent_last_error());  // the thread-local convenience agrees
  EXPECT_EQ(descent_optimizer_create(nullptr, &opt, error, sizeof error),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_STREQ(error, "kind is NULL");
  EXPECT_EQ(descent_optimizer_create("adamz", &opt, nullptr, 0),
            DESCENT_ERR_UNKNOWN_KIND);  // no buffer: fine
}

TEST(ErrorBuffer, TruncatedToCapacityAndAlwaysTerminated) {
  char small[8];
  std::memset(small, '#', sizeof small);
  descent_optimizer* opt = nullptr;
  EXPECT_EQ(descent_optimizer_create("adamz", &opt, small, sizeof small), DESCENT_ERR_UNKNOWN_KIND);
  EXPECT_EQ(std::string(small), std::string(descent_last_error()).substr(0, 7));
  char one[1] = {'#'};
  EXPECT_EQ(descent_optimizer_create("adamz", &opt, one, 1), DESCENT_ERR_UNKNOWN_KIND);
  EXPECT_EQ(one[0], '\0');
  char zero[1] = {'#'};
  EXPECT_EQ(descent_optimizer_create("adamz", &opt, zero, 0), DESCENT_ERR_UNKNOWN_KIND);
  EXPECT_EQ(zero[0], '#');  // capacity 0: nothing written
}

TEST(ErrorBuffer, EveryHandlelessFunction) {
  char error[DESCENT_ERROR_CAPACITY] = "";
  descent_optimizer* opt = nullptr;
  EXPECT_EQ(descent_multi_create_muon_adamw("{\"momentum\": \"x\"}", nullptr, nullptr, &opt, error,
                                            sizeof error),
            DESCENT_ERR_WRONG_TYPE);
  EXPECT_NE(std::string(error).find("momentum"), std::string::npos) << error;
  EXPECT_EQ(opt, nullptr);
  double v = 42;
  EXPECT_EQ(descent_schedule_value("cosine_decay:0.1", 0.0, 3, &v, error, sizeof error),
            DESCENT_ERR_PARSE);
  EXPECT_NE(std::string(error).find("cosine_decay"), std::string::npos) << error;
  EXPECT_EQ(v, 42);
  float g[2] = {3, 4};
  void* grads[1] = {g};
  const descent_dtype dtypes[1] = {DESCENT_FLOAT32};
  const int64_t numels[1] = {2};
  double norm = 7;
  EXPECT_EQ(descent_clip_grad_norm(1, dtypes, numels, grads, -1.0, &norm, error, sizeof error),
            DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_NE(std::string(error).find("max_norm"), std::string::npos) << error;
  EXPECT_EQ(norm, 7);
  EXPECT_EQ(g[0], 3);
}

TEST(ErrorBuffer, SixteenThreadsFailingAtOnceEachGetTheirOwnMessage) {
  constexpr int kThreads = 16, kRounds = 300;
  std::atomic<int> wrong{0}, calls{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      char error[DESCENT_ERROR_CAPACITY];
      for (int r = 0; r < kRounds; ++r) {
        const std::string tag = "t" + std::to_string(t) + "r" + std::to_string(r);
        descent_optimizer* opt = nullptr;
        if (descent_optimizer_create(("bad_" + tag).c_str(), &opt, error, sizeof error) !=
                DESCENT_ERR_UNKNOWN_KIND ||
            std::string(error).find("'bad_" + tag + "'") == std::string::npos)
          ++wrong;
        const std::string json = "{\"no_key_" + tag + "\": 1}";
        if (descent_multi_create_muon_adamw(json.c_str(), nullptr, nullptr, &opt, error,
                                            sizeof error) != DESCENT_ERR_UNKNOWN_KEY ||
            std::string(error).find("no_key_" + tag) == std::string::npos)
          ++wrong;
        const std::string spec = "{\"schedule\": \"" + tag + "\"}";
        double v = 0;
        if (descent_schedule_value(spec.c_str(), 0.1, 0, &v, error, sizeof error) == DESCENT_OK ||
            std::string(error).find(tag) == std::string::npos)
          ++wrong;
        calls += 3;
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(calls.load(), kThreads * kRounds * 3);
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
