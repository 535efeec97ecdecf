// Fallible callbacks and re-entrancy: a schedule or filter callback that fails makes the call
// that ran it fail with the callback's status and message, and that call changes nothing; inside
// a callback, read-only calls on the optimizer work and changing calls (clearing or replacing the
// running schedule included) are refused with DESCENT_ERR_INVALID_STATE.
#include <cstring>
#include <string>
#include <vector>

#include "api_test_support.h"

namespace {

using api_test::Handle;
using api_test::Model;

struct Script {
  uint64_t fail_at = UINT64_MAX;  // fail from this step on
  descent_status status = DESCENT_ERR_CALLBACK;
  const char* message = "host exception: ValueError('boom')";
  descent_optimizer* self = nullptr;  // for re-entrant calls
  descent_status reentrant = DESCENT_OK;
  std::string reentrant_message;
  int calls = 0, frees = 0;
  double read_lr = 0.0;
};

descent_status scripted(uint64_t step, void* user_data, double* value, char* message,
                        size_t capacity) {
  auto* s = static_cast<Script*>(user_data);
  ++s->calls;
  if (step >= s->fail_at) {
    if (s->message) std::snprintf(message, capacity, "%s", s->message);
    return s->status;
  }
  *value = 0.01 / static_cast<double>(step + 1);
  return DESCENT_OK;
}

void count_free(void* user_data) {
  ++static_cast<Script*>(user_data)->frees;
}

Model small_model() {
  Model m;
  m.add("w", DESCENT_FLOAT32, {3, 2});
  m.add("b", DESCENT_FLOAT64, {2});
  m.fill_params(3);
  m.fill_grads(4);
  return m;
}

TEST(FallibleCallbacks, ScheduleFailureBecomesTheUpdatesStatusAndChangesNothing) {
  for (descent_status status : {DESCENT_ERR_CALLBACK, DESCENT_ERR_OUT_OF_RANGE, DESCENT_ERR_IO}) {
    Script script;
    script.fail_at = 2;
    script.status = status;
    {
      Handle h("adam");
      Model m = small_model();
      DESCENT_ASSERT_OK(h, m.declare(h));
      DESCENT_ASSERT_OK(h,
                        descent_optimizer_set_schedule_callback(h, scripted, &script, count_free));
      DESCENT_ASSERT_OK(h, m.update(h));
      DESCENT_ASSERT_OK(h, m.update(h));
      EXPECT_FAILS(h, &m, status,
                   "learning_rate: the schedule callback failed at step 2: host exception: "
                   "ValueError('boom')",
                   m.update(h));
    }
    EXPECT_EQ(script.frees, 1);
  }
}

TEST(FallibleCallbacks, UnknownStatusIsCallbackErrorAndMissingMessageIsSaid) {
  Script script;
  script.fail_at = 0;
  script.status = static_cast<descent_status>(12345);
  script.message = nullptr;
  Handle h("sgd");
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.5));
  // The first evaluation happens on attach: the attach fails and user_data stays with the caller.
  EXPECT_EQ(descent_optimizer_set_schedule_callback(h, scripted, &script, count_free),
            DESCENT_ERR_CALLBACK);
  EXPECT_NE(std::string(descent_optimizer_last_error(h)).find("status 12345"), std::string::npos)
      << descent_optimizer_last_error(h);
  EXPECT_NE(std::string(descent_optimizer_last_error(h)).find("(no message)"), std::string::npos);
  EXPECT_EQ(script.frees, 0);
  double lr = 0;
  DESCENT_ASSERT_OK(h, descent_optimizer_get_double(h, "learning_rate", &lr));
  EXPECT_EQ(lr, 0.5);
}

TEST(FallibleCallbacks, MessageWithoutNulIsCutAtTheBuffer) {
  struct Long {
    static descent_status fn(uint64_t, void*, double*, char* message, size_t capacity) {
      std::memset(message, 'x', capacity);  // no NUL at all
      return DESCENT_ERR_CALLBACK;
    }
  };
  Handle h("sgd");
  DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.5));
  EXPECT_EQ(descent_optimizer_set_schedule_callback(h, Long::fn, nullptr, nullptr),
            DESCENT_ERR_CALLBACK);
  EXPECT_NE(std::string(descent_optimizer_last_error(h)).find(std::string(100, 'x')),
            std::string::npos);
}

struct FilterScript {
  const char* fail_on = nullptr;
  int frees = 0;
};

descent_status matrices_only(const char* name, size_t ndim, const int64_t*, void* user_data,
                             bool* accept, char* message, size_t capacity) {
  auto* s = static_cast<FilterScript*>(user_data);
  if (s->fail_on && std::strcmp(name, s->fail_on) == 0) {
    std::snprintf(message, capacity, "cannot classify %s", name);
    return DESCENT_ERR_INVALID_ARGUMENT;
  }
  *accept = ndim >= 2;
  return DESCENT_OK;
}

void free_filter(void* user_data) {
  ++static_cast<FilterScript*>(user_data)->frees;
}

TEST(FallibleCallbacks, FilterFailureFailsInitAndUpdateAndChangesNothing) {
  FilterScript script;
  script.fail_on = "b";
  {
    Handle multi("multi");
    DESCENT_ASSERT_OK(multi,
                      descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.1})", nullptr));
    DESCENT_ASSERT_OK(multi,
                      descent_multi_add_group(multi, "adam", R"({"learning_rate": 0.1})", nullptr));
    DESCENT_ASSERT_OK(multi,
                      descent_multi_filter_callback(multi, 0, matrices_only, &script, free_filter));
    Model m = small_model();
    DESCENT_ASSERT_OK(multi, m.declare(multi));
    size_t group = 99;
    EXPECT_EQ(descent_multi_parameter_group(multi, "b", &group), DESCENT_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(group, 99u);
    EXPECT_FAILS(multi, &m, DESCENT_ERR_INVALID_ARGUMENT,
                 "group 0 (sgd): parameter 'b': the filter callback failed: cannot classify b",
                 descent_optimizer_init(multi));
    EXPECT_FAILS(multi, &m, DESCENT_ERR_INVALID_ARGUMENT, "cannot classify b", m.update(multi));
    script.fail_on = nullptr;
    DESCENT_ASSERT_OK(multi, m.update(multi));
    DESCENT_ASSERT_OK(multi, descent_multi_parameter_group(multi, "w", &group));
    EXPECT_EQ(group, 0u);
  }
  EXPECT_EQ(script.frees, 1);
}

// ---- re-entrancy ------------------------------------------------------------------------------

descent_status clears_itself(uint64_t step, void* user_data, double* value, char*, size_t) {
  auto* s = static_cast<Script*>(user_data);
  ++s->calls;
  if (step >= 1) {
    s->reentrant = descent_optimizer_clear_schedule(s->self);
    s->reentrant_message = descent_optimizer_last_error(s->self);
    // Read-only calls are fine.
    EXPECT_EQ(descent_optimizer_get_double(s->self, "learning_rate", &s->read_lr), DESCENT_OK);
    size_t size = 0;
    EXPECT_EQ(descent_optimizer_save_to_buffer(s->self, nullptr, 0, &size), DESCENT_OK);
    EXPECT_GT(size, 0u);
  }
  *value = 0.25;
  return DESCENT_OK;
}

TEST(Reentrancy, ClearingItsOwnScheduleFromInsideIsRefusedAndTheStepCompletes) {
  Script script;
  {
    Handle h("sgd");
    script.self = h;
    Model m = small_model();
    DESCENT_ASSERT_OK(h, m.declare(h));
    DESCENT_ASSERT_OK(
        h, descent_optimizer_set_schedule_callback(h, clears_itself, &script, count_free));
    DESCENT_ASSERT_OK(h, m.update(h));
    EXPECT_EQ(script.reentrant, DESCENT_OK) << "not yet called re-entrantly";
    DESCENT_ASSERT_OK(h, m.update(h));
    EXPECT_EQ(script.reentrant, DESCENT_ERR_INVALID_STATE);
    EXPECT_NE(script.reentrant_message.find("own callbacks"), std::string::npos)
        << script.reentrant_message;
    EXPECT_EQ(script.read_lr, 0.25);
    DESCENT_ASSERT_OK(h, m.update(h));  // the schedule is still attached and the handle usable
    EXPECT_EQ(script.calls, 4);
    EXPECT_EQ(script.frees, 0);
    DESCENT_ASSERT_OK(h, descent_optimizer_clear_schedule(h));  // from outside: fine
    EXPECT_EQ(script.frees, 1);
  }
  EXPECT_EQ(script.frees, 1);
}

descent_status touches_multi(const char*, size_t ndim, const int64_t*, void* user_data,
                             bool* accept, char*, size_t) {
  auto* s = static_cast<Script*>(user_data);
  descent_optimizer* group = nullptr;
  s->reentrant = descent_multi_add_group(s->self, "sgd", nullptr, nullptr);
  if (descent_multi_group(s->self, 0, &group) == DESCENT_OK) s->calls = -1;  // must be refused
  *accept = ndim >= 2;
  return DESCENT_OK;
}

TEST(Reentrancy, FilterCannotChangeItsMultiOptimizer) {
  Script script;
  Handle multi("multi");
  script.self = multi;
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.1})", nullptr));
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "adam", R"({"learning_rate": 0.1})", nullptr));
  DESCENT_ASSERT_OK(multi,
                    descent_multi_filter_callback(multi, 0, touches_multi, &script, nullptr));
  Model m = small_model();
  DESCENT_ASSERT_OK(multi, m.declare(multi));
  DESCENT_ASSERT_OK(multi, m.update(multi));
  EXPECT_EQ(script.reentrant, DESCENT_ERR_INVALID_STATE);
  EXPECT_EQ(script.calls, 0);
  size_t groups = 0;
  DESCENT_ASSERT_OK(multi, descent_multi_group_count(multi, &groups));
  EXPECT_EQ(groups, 2u);
}

descent_status changes_multi_when_asked(const char*, size_t ndim, const int64_t*, void* user_data,
                                        bool* accept, char*, size_t) {
  auto* s = static_cast<Script*>(user_data);
  s->reentrant = descent_multi_exclude_name(s->self, 0, "*");
  *accept = ndim >= 2;
  return DESCENT_OK;
}

TEST(Reentrancy, FilterRunByParameterGroupCannotChangeItsMultiOptimizer) {
  Script script;
  Handle multi("multi");
  script.self = multi;
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.1})", nullptr));
  DESCENT_ASSERT_OK(multi,
                    descent_multi_add_group(multi, "adam", R"({"learning_rate": 0.1})", nullptr));
  DESCENT_ASSERT_OK(
      multi, descent_multi_filter_callback(multi, 0, changes_multi_when_asked, &script, nullptr));
  Model m = small_model();
  DESCENT_ASSERT_OK(multi, m.declare(multi));
  size_t group = 99;
  DESCENT_ASSERT_OK(
      multi, descent_multi_parameter_group(multi, "w", &group));  // read-only: runs the filter
  EXPECT_EQ(group, 0u);
  EXPECT_EQ(script.reentrant, DESCENT_ERR_INVALID_STATE);
  // After it, the multi optimizer is not left busy.
  DESCENT_EXPECT_OK(multi, descent_multi_exclude_name(multi, 0, "never*"));
}

}  // namespace
