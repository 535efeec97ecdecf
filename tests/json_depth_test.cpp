// Deeply nested JSON from a caller is refused with DESCENT_ERR_PARSE instead of exhausting the
// stack in a recursive walk of the document.
#include <gtest/gtest.h>

#include <string>

#include "descent/descent.h"

namespace {

std::string nested_learning_rate(int depth) {
  return "{\"learning_rate\": " + std::string(depth, '[') + std::string(depth, ']') + "}";
}

TEST(JsonDepth, ConfigureJsonRefusesDeepNesting) {
  for (const char* kind : {"adam", "multi"}) {
    descent_optimizer* opt = nullptr;
    ASSERT_EQ(descent_optimizer_create(kind, &opt, nullptr, 0), DESCENT_OK);
    if (std::string(kind) == "multi") {
      ASSERT_EQ(descent_multi_add_group(opt, "adam", nullptr, nullptr), DESCENT_OK);
    }
    ASSERT_EQ(descent_optimizer_configure_json(opt, "{\"learning_rate\": 0.5}"), DESCENT_OK)
        << descent_optimizer_last_error(opt);
    // An object at depth 2 goes to the schedule parser, an array to the value parser.
    EXPECT_EQ(descent_optimizer_configure_json(opt, nested_learning_rate(100000).c_str()),
              DESCENT_ERR_PARSE)
        << kind;
    EXPECT_NE(std::string(descent_optimizer_last_error(opt)).find("nested deeper"),
              std::string::npos)
        << descent_optimizer_last_error(opt);
    std::string objects = "{\"learning_rate\": ";
    for (int i = 0; i < 100000; ++i) objects += "{\"a\": ";
    objects += "1" + std::string(100000, '}') + "}";
    EXPECT_EQ(descent_optimizer_configure_json(opt, objects.c_str()), DESCENT_ERR_PARSE) << kind;
    double lr = 0;
    ASSERT_EQ(descent_optimizer_get_double(opt, "learning_rate", &lr), DESCENT_OK);
    EXPECT_EQ(lr, 0.5) << "a refused configuration changed the learning rate";
    descent_optimizer_free(opt);
  }
}

TEST(JsonDepth, ScheduleValueRefusesDeepNesting) {
  std::string spec;
  for (int i = 0; i < 100000; ++i) spec += "{\"schedule\": ";
  spec += "1" + std::string(100000, '}');
  double out = -1;
  EXPECT_EQ(descent_schedule_value(spec.c_str(), 0.1, 0, &out, nullptr, 0), DESCENT_ERR_PARSE);
  EXPECT_EQ(out, -1) << "output written on error";
}

}  // namespace
