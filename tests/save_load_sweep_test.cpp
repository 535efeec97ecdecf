// Every state that saves loads back into an optimizer configured and declared the same way, and
// both continue bit for bit: every kind and a multi, with and without each hyperparameter that
// decides a slot (Adafactor's beta_1) or changes a rule's arithmetic (SGD's momentum 0 <-> 0.9,
// ...), changed before init, after init, and after init and back, saved before and after init,
// loaded into a fresh and into an initialised optimizer.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"
#include "state_file_support.h"

namespace {

using api_test::Handle;
using api_test::Model;

struct Case {
  std::string name;
  std::string kind;                  // a rule kind, or "multi"
  std::string base;                  // configure_json before anything else
  std::vector<std::string> toggles;  // configure_json calls, in order
};

std::vector<Case> cases() {
  std::vector<Case> out;
  // Slots decided by a hyperparameter: Adafactor's exp_avg exists when beta_1 is set at init.
  for (const char* base : {"{}", R"({"beta_1": 0.9})", R"({"beta_1": 0.0, "weight_decay": 0.1})",
                           R"({"relative_step": false, "learning_rate": 0.01})"}) {
    out.push_back({"adafactor set", "adafactor", base, {R"({"beta_1": 0.9})"}});
    out.push_back({"adafactor unset", "adafactor", base, {R"({"beta_1": null})"}});
    out.push_back(
        {"adafactor set, unset", "adafactor", base, {R"({"beta_1": 0.5})", R"({"beta_1": null})"}});
    out.push_back(
        {"adafactor unset, set", "adafactor", base, {R"({"beta_1": null})", R"({"beta_1": 0.8})"}});
  }
  // SGD's momentum 0 <-> > 0 (and the other branches of its kernel).
  out.push_back({"sgd momentum on", "sgd", R"({"learning_rate": 0.1})", {R"({"momentum": 0.9})"}});
  out.push_back({"sgd momentum off",
                 "sgd",
                 R"({"learning_rate": 0.1, "momentum": 0.9})",
                 {R"({"momentum": 0})"}});
  out.push_back({"sgd nesterov",
                 "sgd",
                 R"({"learning_rate": 0.1})",
                 {R"({"momentum": 0.9, "nesterov": true, "weight_decay": 0.01})"}});
  out.push_back({"sgd on, off",
                 "sgd",
                 R"({"learning_rate": 0.1})",
                 {R"({"momentum": 0.9})", R"({"momentum": 0})"}});
  // Every other kind, with a change of its hyperparameters.
  out.push_back({"rmsprop", "rmsprop", R"({"learning_rate": 0.01})", {R"({"alpha": 0.9})"}});
  out.push_back({"adagrad", "adagrad", R"({"learning_rate": 0.01})", {R"({"eps": 1e-6})"}});
  out.push_back({"adadelta", "adadelta", R"({"learning_rate": 0.5})", {R"({"rho": 0.8})"}});
  out.push_back({"adam", "adam", R"({"learning_rate": 0.01})", {R"({"bias_correction": true})"}});
  out.push_back({"adamw",
                 "adamw",
                 R"({"learning_rate": 0.01})",
                 {R"({"weight_decay": 0.1, "betas": [0.8, 0.9]})"}});
  out.push_back({"adamax", "adamax", R"({"learning_rate": 0.01})", {R"({"betas": [0.8, 0.9]})"}});
  out.push_back({"lion", "lion", R"({"learning_rate": 0.01})", {R"({"weight_decay": 0.1})"}});
  out.push_back(
      {"muon", "muon", R"({"learning_rate": 0.02})", {R"({"nesterov": false, "ns_steps": 3})"}});
  out.push_back({"muon polar", "muon", R"({"learning_rate": 0.02})", {R"({"method": "polar"})"}});
  // A multi: Adafactor for matrices, SGD for the rest; the toggles reach both groups.
  const std::string groups =
      R"({"groups": [{"kind": "adafactor", "include": [{"ndim": [2, -1]}]},
                     {"kind": "sgd", "config": {"learning_rate": 0.1}}]})";
  out.push_back({"multi set",
                 "multi",
                 groups,
                 {R"({"groups": [{"config": {"beta_1": 0.9}}, {"config": {"momentum": 0.9}}]})"}});
  out.push_back({"multi set, unset",
                 "multi",
                 groups,
                 {R"({"groups": [{"config": {"beta_1": 0.9}}, {"config": {"momentum": 0.9}}]})",
                  R"({"groups": [{"config": {"beta_1": null}}, {"config": {"momentum": 0}}]})"}});
  out.push_back(
      {"multi muon+adamw",
       "multi",
       R"({"groups": [{"kind": "muon", "config": {"learning_rate": 0.02}, "include": [{"ndim": [2, -1]}]},
                                {"kind": "adamw", "config": {"learning_rate": 0.001}}]})",
       {R"({"learning_rate": 0.005})"}});
  return out;
}

Model model_for() {
  Model m;
  m.add("w", DESCENT_FLOAT32, {3, 4}).add("b", DESCENT_FLOAT64, {4}).add("s", DESCENT_FLOAT32, {});
  m.add("t", DESCENT_FLOAT64, {2, 2, 3});
  return m;
}

enum class When { Never, BeforeInit, AfterInit };

std::vector<unsigned char> save(descent_optimizer* opt) {
  std::size_t size = 0;
  EXPECT_EQ(descent_optimizer_save_to_buffer(opt, nullptr, 0, &size), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  std::vector<unsigned char> buf(size);
  EXPECT_EQ(descent_optimizer_save_to_buffer(opt, buf.data(), size, &size), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  return buf;
}

void configure(descent_optimizer* opt, const std::string& json) {
  ASSERT_EQ(descent_optimizer_configure_json(opt, json.c_str()), DESCENT_OK)
      << json << ": " << descent_optimizer_last_error(opt);
}

void run(const Case& c, int steps_before_save, When toggle_at, bool init_target) {
  SCOPED_TRACE(c.name + " / base " + c.base + " / steps " + std::to_string(steps_before_save) +
               " / toggle " + std::to_string(static_cast<int>(toggle_at)) +
               (init_target ? " / into an initialised optimizer" : " / into a fresh optimizer"));
  Handle a(c.kind.c_str());
  configure(a, c.base);
  Model ma = model_for();
  ASSERT_EQ(ma.declare(a), DESCENT_OK);
  ma.fill_params(1);
  if (toggle_at == When::BeforeInit)
    for (const auto& t : c.toggles) configure(a, t);
  for (int k = 0; k < steps_before_save; ++k) {
    ma.fill_grads(10 + k);
    DESCENT_ASSERT_OK(a, ma.update(a));
  }
  if (toggle_at == When::AfterInit)
    for (const auto& t : c.toggles) configure(a, t);
  const auto file = save(a);

  // The same configuration calls and declarations, no step.
  Handle b(c.kind.c_str());
  configure(b, c.base);
  Model mb = model_for();
  ASSERT_EQ(mb.declare(b), DESCENT_OK);
  if (toggle_at != When::Never)
    for (const auto& t : c.toggles) configure(b, t);
  if (init_target) DESCENT_ASSERT_OK(b, descent_optimizer_init(b));
  DESCENT_ASSERT_OK(b, descent_optimizer_load_from_buffer(b, file.data(), file.size()));
  EXPECT_EQ(api_test::state_snapshot(b), api_test::state_snapshot(a));
  EXPECT_EQ(api_test::hyper_snapshot(b), api_test::hyper_snapshot(a));
  EXPECT_EQ(save(b), file) << "the loaded optimizer does not save the same bytes";

  // Both continue from the same parameters, bit for bit.
  mb.tensors = ma.tensors;
  for (int k = 0; k < 3; ++k) {
    ma.fill_grads(100 + k);
    mb.fill_grads(100 + k);
    DESCENT_ASSERT_OK(a, ma.update(a));
    DESCENT_ASSERT_OK(b, mb.update(b));
    ASSERT_TRUE(ma.params() == mb.params()) << "parameters differ after step " << k + 1;
    ASSERT_EQ(api_test::state_snapshot(b), api_test::state_snapshot(a)) << "after step " << k + 1;
  }
}

TEST(SaveLoadSweep, EverySavedStateLoadsAndContinues) {
  for (const Case& c : cases()) {
    for (int steps : {0, 2}) {
      for (When at : {When::Never, When::BeforeInit, When::AfterInit}) {
        if (at == When::AfterInit && steps == 0) continue;
        run(c, steps, at, false);
        // An initialised target holds every slot, so only a state with slots fits it.
        if (steps > 0) run(c, steps, at, true);
      }
    }
  }
}

TEST(SaveLoadSweep, ExplicitInitThenToggle) {
  // init() without a step, then beta_1 set: the file has no exp_avg; it loads, and continues.
  for (const char* toggle : {R"({"beta_1": 0.9})", R"({"beta_1": null})"}) {
    SCOPED_TRACE(toggle);
    Handle a("adafactor");
    configure(a, toggle[11] == 'n' ? R"({"beta_1": 0.9})" : "{}");
    Model ma = model_for();
    ASSERT_EQ(ma.declare(a), DESCENT_OK);
    DESCENT_ASSERT_OK(a, descent_optimizer_init(a));
    configure(a, toggle);
    const auto file = save(a);
    Handle b("adafactor");
    configure(b, toggle);
    Model mb = model_for();
    ASSERT_EQ(mb.declare(b), DESCENT_OK);
    DESCENT_ASSERT_OK(b, descent_optimizer_load_from_buffer(b, file.data(), file.size()));
    EXPECT_EQ(api_test::state_snapshot(b), api_test::state_snapshot(a));
    ma.fill_params(3);
    mb.tensors = ma.tensors;
    for (int k = 0; k < 3; ++k) {
      ma.fill_grads(7 + k);
      mb.fill_grads(7 + k);
      DESCENT_ASSERT_OK(a, ma.update(a));
      DESCENT_ASSERT_OK(b, mb.update(b));
    }
    EXPECT_TRUE(ma.params() == mb.params());
    EXPECT_EQ(api_test::state_snapshot(b), api_test::state_snapshot(a));
  }
}

TEST(SaveLoadSweep, AMixedLayoutIsRefused) {
  // exp_avg for 'b' but not for 'w': no optimizer saves that. Refused whatever beta_1 says.
  Handle a("adafactor");
  configure(a, R"({"beta_1": 0.9})");
  Model ma = model_for();
  ASSERT_EQ(ma.declare(a), DESCENT_OK);
  DESCENT_ASSERT_OK(a, descent_optimizer_init(a));
  std::vector<state_test::StTensor> tensors;
  for (const auto& slot : api_test::state_snapshot(a)) {
    if (slot.key == "w.exp_avg") continue;
    const char* dt = slot.dtype == DESCENT_UINT64    ? "U64"
                     : slot.dtype == DESCENT_FLOAT32 ? "F32"
                                                     : "F64";
    tensors.push_back({slot.key, dt, slot.shape, slot.bytes});
  }
  const auto file = state_test::build_safetensors(tensors);
  for (const char* config : {R"({"beta_1": 0.9})", "{}"}) {
    Handle b("adafactor");
    configure(b, config);
    Model mb = model_for();
    ASSERT_EQ(mb.declare(b), DESCENT_OK);
    EXPECT_FAILS(b, &mb, DESCENT_ERR_UNKNOWN_KEY, "w.exp_avg",
                 descent_optimizer_load_from_buffer(b, file.data(), file.size()));
  }
}

}  // namespace
