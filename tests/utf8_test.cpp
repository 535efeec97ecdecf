// Every string that enters the C API (kind names, keys, parameter names, globs, schedule specs,
// JSON text, string values; file paths excepted) must be UTF-8: anything else is
// DESCENT_ERR_INVALID_ARGUMENT (DESCENT_ERR_PARSE for JSON text) naming the argument, and
// changes nothing. So nothing the library
// holds can make a later save fail (a multi with a non-UTF-8 glob could never be saved).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"

namespace {

using api_test::Handle;
using api_test::Model;

// Ill-formed sequences: overlong forms, surrogates, truncated sequences, bytes never valid.
const std::vector<std::string>& bad_sequences() {
  static const std::vector<std::string> v = {
      "\xC0\xAF",          // overlong '/'
      "\xC1\xBF",          // overlong
      "\xE0\x80\xAF",      // overlong, 3 bytes
      "\xF0\x80\x80\xAF",  // overlong, 4 bytes
      "\xED\xA0\x80",      // surrogate U+D800
      "\xED\xBF\xBF",      // surrogate U+DFFF
      "\xE2\x82",          // truncated 3-byte sequence
      "\xF0\x9F\x98",      // truncated 4-byte sequence
      "\xC3",              // truncated 2-byte sequence
      "\x80",              // stray continuation byte
      "\xFF",              // never valid
      "\xFE",              // never valid
      "\xF4\x90\x80\x80",  // above U+10FFFF
      "\xF5\x80\x80\x80",  // above U+10FFFF
      "\xE2\x28\xA1",      // bad continuation
  };
  return v;
}

// `base` spoiled by each bad sequence, at the end and in the middle.
std::vector<std::string> spoiled(const std::string& base) {
  std::vector<std::string> out;
  for (const auto& b : bad_sequences()) {
    out.push_back(base + b);
    out.push_back(base.substr(0, base.size() / 2) + b + base.substr(base.size() / 2));
  }
  return out;
}

// JSON text that is not UTF-8 is malformed JSON: DESCENT_ERR_PARSE, as it always was.
#define EXPECT_UTF8_REFUSED(opt, model, arg, expr) \
  EXPECT_UTF8_REFUSED_AS(opt, model, DESCENT_ERR_INVALID_ARGUMENT, arg, expr)
#define EXPECT_JSON_UTF8_REFUSED(opt, model, arg, expr) \
  EXPECT_UTF8_REFUSED_AS(opt, model, DESCENT_ERR_PARSE, arg, expr)
#define EXPECT_UTF8_REFUSED_AS(opt, model, code, arg, expr)                                 \
  do {                                                                                      \
    EXPECT_FAILS(opt, model, code, arg, expr);                                              \
    EXPECT_NE(std::string(descent_last_error()).find("not valid UTF-8"), std::string::npos) \
        << descent_last_error();                                                            \
  } while (0)

// An Adam optimizer with two parameters that has stepped twice (every slot non-zero).
struct Stepped {
  Handle opt{"adam"};
  Model model;
  Stepped() {
    EXPECT_EQ(descent_optimizer_set_double(opt, "learning_rate", 0.01), DESCENT_OK);
    model.add("layer.w", DESCENT_FLOAT32, {4, 5}).add("layer.b", DESCENT_FLOAT64, {3});
    EXPECT_EQ(model.declare(opt), DESCENT_OK);
    model.fill_params(1);
    for (uint64_t k = 0; k < 2; ++k) {
      model.fill_grads(10 + k);
      EXPECT_EQ(model.update(opt), DESCENT_OK);
    }
  }
};

// A multi (adam for matrices, sgd for the rest) with parameters declared and stepped once.
struct SteppedMulti {
  Handle opt{"multi"};
  Model model;
  SteppedMulti() {
    EXPECT_EQ(descent_multi_add_group(opt, "adam", R"({"learning_rate": 0.01})", nullptr),
              DESCENT_OK);
    EXPECT_EQ(descent_multi_add_group(opt, "sgd", R"({"learning_rate": 0.1})", nullptr),
              DESCENT_OK);
    EXPECT_EQ(descent_multi_filter_ndim(opt, 0, 2, -1), DESCENT_OK);
    model.add("l.w", DESCENT_FLOAT32, {2, 3}).add("l.b", DESCENT_FLOAT32, {3});
    EXPECT_EQ(model.declare(opt), DESCENT_OK);
  }
};

TEST(Utf8, CreateRefusesKind) {
  for (const auto& kind : spoiled("adam")) {
    descent_optimizer* out = reinterpret_cast<descent_optimizer*>(0x1);
    EXPECT_UTF8_REFUSED(nullptr, nullptr, "kind",
                        descent_optimizer_create(kind.c_str(), &out, nullptr, 0));
    EXPECT_EQ(out, reinterpret_cast<descent_optimizer*>(0x1)) << "out was written";
  }
}

TEST(Utf8, HyperparameterKeysAndValues) {
  Stepped s;
  for (const auto& key : spoiled("learning_rate")) {
    const char* k = key.c_str();
    double d = 7;
    int64_t i = 7;
    bool b = true;
    std::size_t n = 7;
    char text[16] = "unchanged";
    descent_value_type t = DESCENT_VALUE_BOOL;
    const double two[] = {0.9, 0.99};
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key", descent_optimizer_set_double(s.opt, k, 0.5));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key", descent_optimizer_set_int(s.opt, k, 1));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key", descent_optimizer_set_bool(s.opt, k, true));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key", descent_optimizer_set_doubles(s.opt, k, two, 2));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key", descent_optimizer_set_string(s.opt, k, "x"));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key", descent_optimizer_unset(s.opt, k));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key", descent_optimizer_get_double(s.opt, k, &d));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key", descent_optimizer_get_int(s.opt, k, &i));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key", descent_optimizer_get_bool(s.opt, k, &b));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key",
                        descent_optimizer_get_doubles(s.opt, k, nullptr, 0, &n));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key",
                        descent_optimizer_get_string(s.opt, k, text, sizeof text, &n));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key",
                        descent_optimizer_hyperparameter_type(s.opt, k, &t));
    EXPECT_EQ(d, 7);
    EXPECT_EQ(i, 7);
    EXPECT_TRUE(b);
    EXPECT_EQ(n, 7u);
    EXPECT_STREQ(text, "unchanged");
    EXPECT_EQ(t, DESCENT_VALUE_BOOL);
  }
  // A string value (Muon's coefficients) is checked too, before its key is looked at.
  Handle muon("muon");
  for (const auto& value : spoiled("polar_express"))
    EXPECT_UTF8_REFUSED(muon, nullptr, "value",
                        descent_optimizer_set_string(muon, "coefficients", value.c_str()));
}

TEST(Utf8, ConfigureJson) {
  Stepped s;
  for (const auto& json : spoiled(R"({"learning_rate": 0.5, "eps": 1e-6})"))
    EXPECT_JSON_UTF8_REFUSED(s.opt, &s.model, "json",
                             descent_optimizer_configure_json(s.opt, json.c_str()));
  for (const auto& text : spoiled("cosine_decay"))
    EXPECT_JSON_UTF8_REFUSED(
        s.opt, &s.model, "json",
        descent_optimizer_configure_json(
            s.opt, (R"({"learning_rate": {"schedule": ")" + text + R"("}})").c_str()));
}

TEST(Utf8, ParameterNames) {
  Handle opt("adam");
  DESCENT_ASSERT_OK(opt, descent_optimizer_set_double(opt, "learning_rate", 0.01));
  const int64_t shape[] = {2};
  for (const auto& name : spoiled("layer.weight"))
    EXPECT_UTF8_REFUSED(
        opt, nullptr, "name",
        descent_optimizer_add_parameter(opt, name.c_str(), DESCENT_FLOAT32, 1, shape));
  // Well-formed UTF-8 is fine, and saves.
  DESCENT_ASSERT_OK(
      opt, descent_optimizer_add_parameter(opt, "couche.poids\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80",
                                           DESCENT_FLOAT32, 1, shape));
  DESCENT_ASSERT_OK(opt, descent_optimizer_init(opt));
  std::size_t size = 0;
  DESCENT_EXPECT_OK(opt, descent_optimizer_save_to_buffer(opt, nullptr, 0, &size));
}

TEST(Utf8, StateKeys) {
  Stepped s;
  for (const auto& key : spoiled("layer.w.m")) {
    const char* k = key.c_str();
    float buf[20] = {};
    descent_dtype dt = DESCENT_UINT64;
    std::size_t ndim = 9;
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key",
                        descent_optimizer_state_info(s.opt, k, &dt, &ndim, nullptr, 0));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key",
                        descent_optimizer_state_get(s.opt, k, DESCENT_FLOAT32, buf, 20));
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "key",
                        descent_optimizer_state_set(s.opt, k, DESCENT_FLOAT32, buf, 20));
    EXPECT_EQ(dt, DESCENT_UINT64);
    EXPECT_EQ(ndim, 9u);
    for (float f : buf) EXPECT_EQ(f, 0.0f);
  }
}

TEST(Utf8, Schedules) {
  Stepped s;
  for (const auto& spec : spoiled("cosine_decay(0.1, 100)")) {
    EXPECT_UTF8_REFUSED(s.opt, &s.model, "spec",
                        descent_optimizer_set_schedule(s.opt, spec.c_str()));
    double v = 7;
    EXPECT_UTF8_REFUSED(nullptr, nullptr, "spec",
                        descent_schedule_value(spec.c_str(), 0.1, 3, &v, nullptr, 0));
    EXPECT_EQ(v, 7);
  }
}

TEST(Utf8, MultiGroupsAndGlobs) {
  SteppedMulti m;
  for (const auto& kind : spoiled("adamw"))
    EXPECT_UTF8_REFUSED(m.opt, &m.model, "kind",
                        descent_multi_add_group(m.opt, kind.c_str(), nullptr, nullptr));
  for (const auto& json : spoiled(R"({"learning_rate": 0.01})"))
    EXPECT_JSON_UTF8_REFUSED(m.opt, &m.model, "config_json",
                             descent_multi_add_group(m.opt, "adamw", json.c_str(), nullptr));
  for (const auto& glob : spoiled("*embed*")) {
    EXPECT_UTF8_REFUSED(m.opt, &m.model, "glob", descent_multi_filter_name(m.opt, 0, glob.c_str()));
    EXPECT_UTF8_REFUSED(m.opt, &m.model, "glob",
                        descent_multi_exclude_name(m.opt, 0, glob.c_str()));
    std::size_t g = 7;
    EXPECT_UTF8_REFUSED(m.opt, &m.model, "name",
                        descent_multi_parameter_group(m.opt, glob.c_str(), &g));
    EXPECT_EQ(g, 7u);
    // Globs inside a JSON description are refused by the JSON check.
    const std::string json = R"({"groups": [{"exclude": [")" + glob + R"("]}, {}]})";
    EXPECT_JSON_UTF8_REFUSED(m.opt, &m.model, "json",
                             descent_optimizer_configure_json(m.opt, json.c_str()));
  }
  // What is left saves, steps, and the save loads.
  m.model.fill_params(3);
  m.model.fill_grads(4);
  DESCENT_ASSERT_OK(m.opt, m.model.update(m.opt));
  std::size_t size = 0;
  DESCENT_ASSERT_OK(m.opt, descent_optimizer_save_to_buffer(m.opt, nullptr, 0, &size));
  std::vector<unsigned char> buf(size);
  DESCENT_ASSERT_OK(m.opt, descent_optimizer_save_to_buffer(m.opt, buf.data(), size, &size));
  DESCENT_ASSERT_OK(m.opt, descent_optimizer_load_from_buffer(m.opt, buf.data(), size));
}

TEST(Utf8, MuonAdamwPreset) {
  for (const auto& bad : spoiled("*embed*,*head*")) {
    descent_optimizer* out = reinterpret_cast<descent_optimizer*>(0x1);
    EXPECT_UTF8_REFUSED(
        nullptr, nullptr, "adamw_names",
        descent_multi_create_muon_adamw(nullptr, nullptr, bad.c_str(), &out, nullptr, 0));
    EXPECT_EQ(out, reinterpret_cast<descent_optimizer*>(0x1));
  }
  for (const auto& bad : spoiled(R"({"learning_rate": 0.02})")) {
    descent_optimizer* out = reinterpret_cast<descent_optimizer*>(0x1);
    EXPECT_JSON_UTF8_REFUSED(
        nullptr, nullptr, "muon_config_json",
        descent_multi_create_muon_adamw(bad.c_str(), nullptr, nullptr, &out, nullptr, 0));
    EXPECT_JSON_UTF8_REFUSED(
        nullptr, nullptr, "adamw_config_json",
        descent_multi_create_muon_adamw(nullptr, bad.c_str(), nullptr, &out, nullptr, 0));
    EXPECT_EQ(out, reinterpret_cast<descent_optimizer*>(0x1));
  }
  // Well-formed non-ASCII globs work and save.
  descent_optimizer* out = nullptr;
  ASSERT_EQ(
      descent_multi_create_muon_adamw(R"({"learning_rate": 0.02})", R"({"learning_rate": 0.001})",
                                      "*\xC3\xA9mbed*, *t\xC3\xAAte*", &out, nullptr, 0),
      DESCENT_OK)
      << descent_last_error();
  const int64_t shape[] = {2, 2};
  DESCENT_EXPECT_OK(
      out, descent_optimizer_add_parameter(out, "x.\xC3\xA9mbed.w", DESCENT_FLOAT32, 2, shape));
  DESCENT_EXPECT_OK(out, descent_optimizer_add_parameter(out, "x.w", DESCENT_FLOAT32, 2, shape));
  std::size_t g = 9;
  DESCENT_EXPECT_OK(out, descent_multi_parameter_group(out, "x.\xC3\xA9mbed.w", &g));
  EXPECT_EQ(g, 1u);
  DESCENT_EXPECT_OK(out, descent_multi_parameter_group(out, "x.w", &g));
  EXPECT_EQ(g, 0u);
  std::size_t size = 0;
  DESCENT_EXPECT_OK(out, descent_optimizer_save_to_buffer(out, nullptr, 0, &size));
  descent_optimizer_free(out);
}

}  // namespace
