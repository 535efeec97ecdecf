#include <gtest/gtest.h>

#include "descent/descent.h"

TEST(Smoke, SgdStep) {
  descent_optimizer* opt = nullptr;
  ASSERT_EQ(descent_optimizer_create("sgd", &opt, nullptr, 0), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_set_double(opt, "learning_rate", 0.5), DESCENT_OK);
  const int64_t shape[] = {2};
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "w", DESCENT_FLOAT32, 1, shape), DESCENT_OK);
  float w[2] = {1, 2}, g[2] = {1, -1};
  const char* names[] = {"w"};
  void* params[] = {w};
  const void* grads[] = {g};
  ASSERT_EQ(descent_optimizer_update(opt, 1, names, nullptr, nullptr, params, grads), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  EXPECT_FLOAT_EQ(w[0], 0.5f);
  EXPECT_FLOAT_EQ(w[1], 2.5f);
  descent_optimizer_free(opt);
}
