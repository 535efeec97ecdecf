// Every MLX golden trajectory of kind "optimizer" (every optimizer, schedules in the config
// included), replayed through the C API: parameters and every state slot after every step,
// within the file's tolerance.
#include <dirent.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>

#include "golden_support.h"

namespace {

using golden::Json;

// Every golden file, without ".json", sorted.
std::vector<std::string> golden_files() {
  std::vector<std::string> out;
  DIR* dir = opendir((golden::data_dir() + "/golden").c_str());
  if (!dir) return out;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0)
      out.push_back(name.substr(0, name.size() - 5));
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

// Whether a file holds an optimizer trajectory ("kind": "optimizer"), from its name alone: the
// gradient-clipping and schedule-value files are the others. Discovery runs in every test
// process, so it must not parse the 4 MB of JSON; GoldenData.FileNamesTellTheKind checks this.
bool is_optimizer_case(const std::string& name) {
  return name.rfind("clip_", 0) != 0 && name.rfind("schedvals_", 0) != 0;
}

std::vector<std::string> all_optimizer_cases() {
  std::vector<std::string> out;
  for (const auto& name : golden_files())
    if (is_optimizer_case(name)) out.push_back(name);
  return out;
}

class GoldenOptimizer : public testing::TestWithParam<std::string> {};

// The three update forms of the C API; each must follow the trajectory to the same bits.
enum class Form { ByName, ByIndex, Flat };
const char* form_name(Form f) {
  return f == Form::ByName ? "by name" : f == Form::ByIndex ? "by index" : "flat";
}

// 64-byte aligned zeroed bytes for the flat buffers.
struct FlatBuffer {
  std::vector<double> storage;
  unsigned char* data = nullptr;
  explicit FlatBuffer(size_t bytes) : storage(bytes / 8 + 16, 0.0) {
    auto a = reinterpret_cast<std::uintptr_t>(storage.data());
    data = reinterpret_cast<unsigned char*>((a + 63) / 64 * 64);
  }
};

void replay(const std::string& case_name, Form form);

TEST_P(GoldenOptimizer, MatchesMlxTrajectory) {
  for (Form form : {Form::ByName, Form::ByIndex, Form::Flat}) {
    SCOPED_TRACE(form_name(form));
    replay(GetParam(), form);
    if (HasFailure()) return;
  }
}

void replay(const std::string& case_name, Form form) {
  const Json c = golden::load(golden::data_dir() + "/golden/" + case_name + ".json");
  ASSERT_EQ(c.at("kind"), "optimizer");
  const descent_dtype dtype = golden::dtype_of(c);
  const golden::Tolerance tol{c.at("tolerance").at("rtol").get<double>(),
                              c.at("tolerance").at("atol").get<double>()};

  descent_optimizer* opt = golden::create_for_case(c);
  ASSERT_NE(opt, nullptr);
  std::unique_ptr<descent_optimizer, void (*)(descent_optimizer*)> guard(opt,
                                                                         descent_optimizer_free);

  std::vector<std::string> names;
  std::map<std::string, golden::CaseTensor> params;
  for (const auto& [name, t] : c.at("params").items()) {
    params.emplace(name, golden::tensor_from(t, dtype));
    const auto& p = params.at(name);
    ASSERT_EQ(
        descent_optimizer_add_parameter(opt, name.c_str(), dtype, p.shape.size(), p.shape.data()),
        DESCENT_OK)
        << descent_optimizer_last_error(opt);
    names.push_back(name);
  }

  const auto& grads = c.at("grads");
  const auto& expected = c.at("expected");
  ASSERT_EQ(grads.size(), expected.size());
  for (size_t step = 0; step < grads.size(); ++step) {
    std::vector<golden::CaseTensor> g;
    std::vector<const char*> n;
    std::vector<void*> pp;
    std::vector<const void*> gp;
    for (const auto& [name, t] : grads[step].items()) g.push_back(golden::tensor_from(t, dtype));
    size_t i = 0;
    for (const auto& [name, t] : grads[step].items()) {
      n.push_back(names[std::find(names.begin(), names.end(), name) - names.begin()].c_str());
      pp.push_back(params.at(name).bytes.data());
      gp.push_back(g[i++].bytes.data());
    }
    // The flat form updates every declared parameter: a step that gives only some of them goes
    // by name.
    const Form use = form == Form::Flat && n.size() != names.size() ? Form::ByName : form;
    if (use == Form::ByName) {
      ASSERT_EQ(
          descent_optimizer_update(opt, n.size(), n.data(), nullptr, nullptr, pp.data(), gp.data()),
          DESCENT_OK)
          << descent_optimizer_last_error(opt);
    } else if (use == Form::ByIndex) {
      std::vector<size_t> idx;
      for (const char* name : n) {
        idx.push_back(0);
        ASSERT_EQ(descent_optimizer_parameter_index(opt, name, &idx.back()), DESCENT_OK);
      }
      ASSERT_EQ(descent_optimizer_update_indexed(opt, idx.size(), idx.data(), nullptr, nullptr,
                                                 pp.data(), gp.data()),
                DESCENT_OK)
          << descent_optimizer_last_error(opt);
    } else {
      size_t total = 0;
      ASSERT_EQ(descent_optimizer_flat_size(opt, &total), DESCENT_OK);
      FlatBuffer fp(total), fg(total);
      for (size_t k = 0; k < names.size(); ++k) {
        size_t at = 0;
        ASSERT_EQ(descent_optimizer_flat_offset(opt, k, &at), DESCENT_OK);
        ASSERT_EQ(at % DESCENT_FLAT_ALIGNMENT, 0u);
        const auto& p = params.at(names[k]);
        const size_t j =
            static_cast<size_t>(std::find(n.begin(), n.end(), names[k].c_str()) - n.begin());
        ASSERT_LE(at + p.bytes.size(), total);
        std::memcpy(fp.data + at, p.bytes.data(), p.bytes.size());
        std::memcpy(fg.data + at, gp[j], p.bytes.size());
      }
      ASSERT_EQ(descent_optimizer_update_flat(opt, fp.data, fg.data, total), DESCENT_OK)
          << descent_optimizer_last_error(opt);
      for (size_t k = 0; k < names.size(); ++k) {
        size_t at = 0;
        ASSERT_EQ(descent_optimizer_flat_offset(opt, k, &at), DESCENT_OK);
        auto& p = params.at(names[k]);
        std::memcpy(p.bytes.data(), fp.data + at, p.bytes.size());
      }
    }

    const std::string where =
        case_name + " step " + std::to_string(step + 1) + " (" + form_name(form) + ")";
    const auto& exp = expected[step];
    for (const auto& [name, t] : exp.at("params").items()) {
      const golden::CaseTensor& got = params.at(name);
      std::vector<double> got_v(got.numel());
      for (int64_t k = 0; k < got.numel(); ++k) got_v[k] = got.at(k);
      golden::expect_close(where, "params." + name, got_v, t.at("data").get<std::vector<double>>(),
                           tol);
    }
    std::vector<std::string> keys = golden::state_keys(opt);
    for (const auto& [key, value] : exp.at("state").items()) {
      ASSERT_NE(std::find(keys.begin(), keys.end(), key), keys.end())
          << where << ": state key " << key << " missing";
      const std::vector<double> got = golden::read_state(opt, key);
      if (key == "step") {
        EXPECT_EQ(got.at(0), value.get<double>()) << where << ": step";
      } else if (value.is_number()) {
        golden::expect_close(where, key, got, {value.get<double>()}, tol);
      } else {
        golden::expect_close(where, key, got, value.at("data").get<std::vector<double>>(), tol);
      }
    }
    for (const auto& k : keys)
      EXPECT_TRUE(exp.at("state").contains(k))
          << where << ": descent has state key " << k << " that MLX does not";
    if (::testing::Test::HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Mlx, GoldenOptimizer, testing::ValuesIn(all_optimizer_cases()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(GoldenData, FileNamesTellTheKind) {
  const auto names = golden_files();
  ASSERT_FALSE(names.empty()) << "no golden data in " << golden::data_dir();
  for (const auto& name : names) {
    const Json c = golden::load(golden::data_dir() + "/golden/" + name + ".json");
    EXPECT_EQ(c.at("kind") == "optimizer", is_optimizer_case(name)) << name;
    // "<kind>_..." names the optimizer the file drives.
    if (c.at("kind") != "optimizer" || c.at("optimizer") == "multi") continue;
    for (const std::string& kind : golden::all_kinds()) {
      if (name.rfind(kind + "_", 0) == 0) {
        EXPECT_EQ(c.at("optimizer"), kind) << name;
      }
    }
  }
}

// Every kind the library lists has MLX trajectories in float32 and float64
// (files "<kind>_..._float32.json" and "..._float64.json").
TEST(GoldenData, EveryKindHasGoldenData) {
  const auto cases = all_optimizer_cases();
  for (const std::string& kind : golden::all_kinds()) {
    for (const char* dtype : {"_float32", "_float64"}) {
      const bool found = std::any_of(cases.begin(), cases.end(), [&](const std::string& c) {
        return c.rfind(kind + "_", 0) == 0 && c.find(dtype) != std::string::npos;
      });
      EXPECT_TRUE(found) << "no golden data for kind " << kind << dtype;
    }
  }
}

}  // namespace
