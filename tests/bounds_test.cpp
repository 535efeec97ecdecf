// Every hyperparameter that scales the work of a step has a bound (docs/muon.md, docs/api.md):
// Muon's ns_steps <= 100 and custom_coefficients <= 100 triples, join_schedules <= 1024
// schedules, a multi optimizer <= 1024 groups. Each is checked on every way in: setters,
// configure_json (also through a multi's groups), and a state file's configuration loaded from a
// buffer or a path. A refusal leaves everything as it was, so a hostile file cannot make the next
// update run for ever.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"
#include "state_file_support.h"

namespace {

using api_test::Handle;
using api_test::Model;
using Json = nlohmann::json;

// `file` with its descent metadata "config" rewritten by `edit`.
state_test::Bytes with_config(const state_test::Bytes& file,
                              const std::function<void(Json&)>& edit) {
  const state_test::ParsedFile parsed = state_test::parse_independently(file);
  nlohmann::ordered_json header = parsed.header;
  Json config = Json::parse(header["__metadata__"]["config"].get<std::string>());
  edit(config);
  header["__metadata__"]["config"] = config.dump();
  const std::string text = header.dump();
  // One allocation and memcpy (GCC 12 -O3 reports a false array-bounds error for insert).
  const std::size_t data = file.size() - parsed.data_start;
  state_test::Bytes out(8 + text.size() + data);
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i, n >>= 8) out[i] = static_cast<unsigned char>(n & 0xff);
  std::memcpy(out.data() + 8, text.data(), text.size());
  if (data) std::memcpy(out.data() + 8 + text.size(), file.data() + parsed.data_start, data);
  return out;
}

// Loads `file` from a buffer and from a path into `opt`; both must fail with `code` naming
// `mention` and change nothing.
void expect_load_refused(descent_optimizer* opt, const Model* model, const state_test::Bytes& file,
                         descent_status code, const char* mention) {
  EXPECT_FAILS(opt, model, code, mention,
               descent_optimizer_load_from_buffer(opt, file.data(), file.size()));
  state_test::TempDir dir;
  const std::string path = dir / "state.safetensors";
  state_test::write_bytes(path, file);
  EXPECT_FAILS(opt, model, code, mention, descent_optimizer_load(opt, path.c_str()));
}

// A Muon optimizer with a (3, 4) and a (4,) parameter, stepped once.
struct SteppedMuon {
  Handle opt{"muon"};
  Model model;
  explicit SteppedMuon(bool step = true) {
    EXPECT_EQ(descent_optimizer_set_double(opt, "learning_rate", 0.02), DESCENT_OK);
    model.add("w", DESCENT_FLOAT32, {3, 4}).add("b", DESCENT_FLOAT32, {4});
    EXPECT_EQ(model.declare(opt), DESCENT_OK);
    model.fill_params(1);
    model.fill_grads(2);
    if (step) {
      EXPECT_EQ(model.update(opt), DESCENT_OK) << descent_optimizer_last_error(opt);
    }
  }
};

TEST(Bounds, MuonNsSteps) {
  SteppedMuon m;
  for (int64_t bad : {int64_t{101}, int64_t{1000000000000}, INT64_MAX}) {
    EXPECT_FAILS(m.opt, &m.model, DESCENT_ERR_OUT_OF_RANGE, "ns_steps",
                 descent_optimizer_set_int(m.opt, "ns_steps", bad));
    const std::string json = "{\"ns_steps\": " + std::to_string(bad) + "}";
    EXPECT_FAILS(m.opt, &m.model, DESCENT_ERR_OUT_OF_RANGE, "ns_steps",
                 descent_optimizer_configure_json(m.opt, json.c_str()));
  }
  // The bound itself is allowed and steps.
  SteppedMuon at(false);
  DESCENT_ASSERT_OK(at.opt, descent_optimizer_set_int(at.opt, "ns_steps", 100));
  DESCENT_ASSERT_OK(at.opt, at.model.update(at.opt));

  // A state file that sets it: refused from a buffer and from a path, into a fresh optimizer
  // and into the stepped one.
  const auto file = with_config(state_test::save_buffer(m.opt),
                                [](Json& c) { c["ns_steps"] = int64_t{1000000000000}; });
  expect_load_refused(m.opt, &m.model, file, DESCENT_ERR_OUT_OF_RANGE, "ns_steps");
  SteppedMuon fresh(false);
  expect_load_refused(fresh.opt, &fresh.model, file, DESCENT_ERR_OUT_OF_RANGE, "ns_steps");
  // Unpatched, the file loads.
  const auto good = state_test::save_buffer(m.opt);
  DESCENT_EXPECT_OK(fresh.opt,
                    descent_optimizer_load_from_buffer(fresh.opt, good.data(), good.size()));
}

TEST(Bounds, MuonNsStepsThroughMultiGroups) {
  descent_optimizer* raw = nullptr;
  ASSERT_EQ(
      descent_multi_create_muon_adamw(R"({"learning_rate": 0.02})", R"({"learning_rate": 0.001})",
                                      nullptr, &raw, nullptr, 0),
      DESCENT_OK);
  std::unique_ptr<descent_optimizer, void (*)(descent_optimizer*)> owner(raw,
                                                                         descent_optimizer_free);
  Model model;
  model.add("w", DESCENT_FLOAT32, {3, 4}).add("b", DESCENT_FLOAT32, {4});
  ASSERT_EQ(model.declare(raw), DESCENT_OK);
  model.fill_params(1);
  model.fill_grads(2);
  DESCENT_ASSERT_OK(raw, model.update(raw));
  descent_optimizer* g0 = nullptr;
  DESCENT_ASSERT_OK(raw, descent_multi_group(raw, 0, &g0));
  EXPECT_FAILS(g0, &model, DESCENT_ERR_OUT_OF_RANGE, "ns_steps",
               descent_optimizer_set_int(g0, "ns_steps", 101));
  EXPECT_FAILS(
      raw, &model, DESCENT_ERR_OUT_OF_RANGE, "ns_steps",
      descent_optimizer_configure_json(raw, R"({"groups": [{"config": {"ns_steps": 101}}, {}]})"));
  EXPECT_FAILS(nullptr, &model, DESCENT_ERR_OUT_OF_RANGE, "ns_steps",
               descent_multi_create_muon_adamw(R"({"learning_rate": 0.02, "ns_steps": 101})",
                                               nullptr, nullptr, &g0, nullptr, 0));
  const auto file = with_config(state_test::save_buffer(raw), [](Json& c) {
    c["groups"][0]["config"]["ns_steps"] = int64_t{1000000000000};
  });
  expect_load_refused(raw, &model, file, DESCENT_ERR_OUT_OF_RANGE, "ns_steps");
}

TEST(Bounds, MuonCustomCoefficients) {
  SteppedMuon m;
  std::vector<double> table;
  for (int i = 0; i < 101; ++i) table.insert(table.end(), {3.4445, -4.775, 2.0315});
  EXPECT_FAILS(
      m.opt, &m.model, DESCENT_ERR_OUT_OF_RANGE, "custom_coefficients",
      descent_optimizer_set_doubles(m.opt, "custom_coefficients", table.data(), table.size()));
  const std::string json =
      "{\"coefficients\": \"custom\", \"custom_coefficients\": " + Json(table).dump() + "}";
  EXPECT_FAILS(m.opt, &m.model, DESCENT_ERR_OUT_OF_RANGE, "custom_coefficients",
               descent_optimizer_configure_json(m.opt, json.c_str()));
  table.resize(300);  // 100 triples: allowed
  DESCENT_EXPECT_OK(m.opt, descent_optimizer_set_doubles(m.opt, "custom_coefficients", table.data(),
                                                         table.size()));
  DESCENT_EXPECT_OK(m.opt,
                    descent_optimizer_set_doubles(m.opt, "custom_coefficients", table.data(), 3));
  table.resize(303);
  for (std::size_t i = 300; i < 303; ++i) table[i] = table[i - 3];
  const auto file = with_config(state_test::save_buffer(m.opt), [&](Json& c) {
    c["coefficients"] = "custom";
    c["custom_coefficients"] = table;
  });
  expect_load_refused(m.opt, &m.model, file, DESCENT_ERR_OUT_OF_RANGE, "custom_coefficients");
}

Json join_of(std::size_t count) {
  Json j = {
      {"schedule", "join_schedules"}, {"schedules", Json::array()}, {"boundaries", Json::array()}};
  for (std::size_t i = 0; i < count; ++i) {
    j["schedules"].push_back({{"schedule", "constant"}, {"value", 0.01}});
    if (i) j["boundaries"].push_back(i * 10);
  }
  return j;
}

TEST(Bounds, JoinSchedules) {
  Handle opt("adam");
  DESCENT_ASSERT_OK(opt, descent_optimizer_set_double(opt, "learning_rate", 0.01));
  Model model;
  model.add("w", DESCENT_FLOAT32, {2, 3});
  ASSERT_EQ(model.declare(opt), DESCENT_OK);
  model.fill_params(1);
  model.fill_grads(2);
  DESCENT_ASSERT_OK(opt, model.update(opt));

  const std::string too_many = join_of(1025).dump();
  const std::string config = "{\"learning_rate\": " + too_many + "}";
  EXPECT_FAILS(opt, &model, DESCENT_ERR_OUT_OF_RANGE, "join_schedules",
               descent_optimizer_configure_json(opt, config.c_str()));
  EXPECT_FAILS(opt, &model, DESCENT_ERR_OUT_OF_RANGE, "join_schedules",
               descent_optimizer_set_schedule(opt, too_many.c_str()));
  double v = 7;
  EXPECT_FAILS(nullptr, nullptr, DESCENT_ERR_OUT_OF_RANGE, "join_schedules",
               descent_schedule_value(too_many.c_str(), 0.1, 3, &v, nullptr, 0));
  EXPECT_EQ(v, 7);
  // Nested joins are bounded per level, and the nesting by the JSON depth limit.
  Json nested = join_of(2);
  nested["schedules"][1] = join_of(1025);
  EXPECT_FAILS(opt, &model, DESCENT_ERR_OUT_OF_RANGE, "join_schedules",
               descent_optimizer_set_schedule(opt, nested.dump().c_str()));

  const auto file = with_config(state_test::save_buffer(opt),
                                [](Json& c) { c["learning_rate"] = join_of(1025); });
  expect_load_refused(opt, &model, file, DESCENT_ERR_OUT_OF_RANGE, "join_schedules");

  // At the bound: accepted, evaluated, saved and loaded.
  DESCENT_ASSERT_OK(opt, descent_optimizer_set_schedule(opt, join_of(1024).dump().c_str()));
  DESCENT_ASSERT_OK(opt, model.update(opt));
  const auto ok = state_test::save_buffer(opt);
  DESCENT_EXPECT_OK(opt, descent_optimizer_load_from_buffer(opt, ok.data(), ok.size()));
}

TEST(Bounds, MultiGroups) {
  Handle multi("multi");
  for (int i = 0; i < 1024; ++i)
    DESCENT_ASSERT_OK(multi,
                      descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.1})", nullptr));
  Model model;
  model.add("w", DESCENT_FLOAT32, {2});
  ASSERT_EQ(model.declare(multi), DESCENT_OK);
  EXPECT_FAILS(multi, &model, DESCENT_ERR_OUT_OF_RANGE, "1024 groups",
               descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.1})", nullptr));

  Json groups = Json::array();
  for (int i = 0; i < 1025; ++i)
    groups.push_back({{"kind", "sgd"}, {"config", {{"learning_rate", 0.1}}}});
  const std::string config = Json({{"groups", groups}}).dump();
  Handle empty("multi");
  EXPECT_FAILS(empty, nullptr, DESCENT_ERR_OUT_OF_RANGE, "groups",
               descent_optimizer_configure_json(empty, config.c_str()));

  // A file describing 1025 groups, into a fresh multi (which would create them).
  Handle small("multi");
  DESCENT_ASSERT_OK(small,
                    descent_multi_add_group(small, "sgd", R"({"learning_rate": 0.1})", nullptr));
  const auto file =
      with_config(state_test::save_buffer(small), [&](Json& c) { c["groups"] = groups; });
  Handle fresh("multi");
  expect_load_refused(fresh, nullptr, file, DESCENT_ERR_OUT_OF_RANGE, "groups");
}

}  // namespace
