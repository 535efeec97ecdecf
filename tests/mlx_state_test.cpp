// State files written by MLX itself (tests/data/mlx-state, see tests/data/README.md): each is
// mx.save_safetensors(path, tree_flatten(optimizer.state)) after 3 steps. Loading one into a
// descent optimizer configured like MLX's and applying the recorded gradients reproduces MLX's
// continuation (parameters and every state slot) within the case's tolerance.
#include <dirent.h>

#include <algorithm>
#include <map>

#include "golden_support.h"

namespace {

using golden::Json;

std::vector<std::string> mlx_state_cases() {
  std::vector<std::string> out;
  DIR* dir = opendir((golden::data_dir() + "/mlx-state").c_str());
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

class MlxState : public testing::TestWithParam<std::string> {};

TEST_P(MlxState, LoadsAndContinuesLikeMlx) {
  const std::string dir = golden::data_dir() + "/mlx-state/";
  const Json c = golden::load(dir + GetParam() + ".json");
  const std::string kind = c.at("optimizer");
  const descent_dtype dtype = golden::dtype_of(c);
  const golden::Tolerance tol{c.at("tolerance").at("rtol").get<double>(),
                              c.at("tolerance").at("atol").get<double>()};

  descent_optimizer* raw = nullptr;
  const descent_status created = descent_optimizer_create(kind.c_str(), &raw, nullptr, 0);
  ASSERT_EQ(created, DESCENT_OK) << descent_last_error();
  std::unique_ptr<descent_optimizer, void (*)(descent_optimizer*)> guard(raw,
                                                                         descent_optimizer_free);
  descent_optimizer* opt = raw;
  ASSERT_EQ(descent_optimizer_configure_json(opt, c.at("config").dump().c_str()), DESCENT_OK)
      << descent_optimizer_last_error(opt);

  std::map<std::string, golden::CaseTensor> params;
  std::vector<std::string> names;
  for (const auto& [name, t] : c.at("params_at_save").items()) {
    params.emplace(name, golden::tensor_from(t, dtype));
    const auto& p = params.at(name);
    ASSERT_EQ(
        descent_optimizer_add_parameter(opt, name.c_str(), dtype, p.shape.size(), p.shape.data()),
        DESCENT_OK)
        << descent_optimizer_last_error(opt);
    names.push_back(name);
  }
  const std::string state_file = dir + c.at("state_file").get<std::string>();
  ASSERT_EQ(descent_optimizer_load(opt, state_file.c_str()), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  EXPECT_EQ(golden::read_state(opt, "step").at(0), c.at("steps_before_save").get<double>());

  const auto& continuation = c.at("continuation");
  ASSERT_EQ(continuation.size(), 3u);
  for (std::size_t step = 0; step < continuation.size(); ++step) {
    const auto& s = continuation[step];
    std::vector<golden::CaseTensor> g;
    std::vector<const char*> n;
    std::vector<void*> pp;
    std::vector<const void*> gp;
    for (const auto& [name, t] : s.at("grads").items()) g.push_back(golden::tensor_from(t, dtype));
    std::size_t i = 0;
    for (const auto& [name, t] : s.at("grads").items()) {
      n.push_back(std::find(names.begin(), names.end(), name)->c_str());
      pp.push_back(params.at(name).bytes.data());
      gp.push_back(g[i++].bytes.data());
    }
    ASSERT_EQ(
        descent_optimizer_update(opt, n.size(), n.data(), nullptr, nullptr, pp.data(), gp.data()),
        DESCENT_OK)
        << descent_optimizer_last_error(opt);

    const std::string where = GetParam() + " continuation step " + std::to_string(step + 1);
    for (const auto& [name, t] : s.at("params").items()) {
      const golden::CaseTensor& got = params.at(name);
      std::vector<double> v(static_cast<std::size_t>(got.numel()));
      for (int64_t k = 0; k < got.numel(); ++k) v[static_cast<std::size_t>(k)] = got.at(k);
      golden::expect_close(where, "params." + name, v, t.at("data").get<std::vector<double>>(),
                           tol);
    }
    const std::vector<std::string> keys = golden::state_keys(opt);
    for (const auto& [key, value] : s.at("state").items()) {
      ASSERT_NE(std::find(keys.begin(), keys.end(), key), keys.end())
          << where << ": no state " << key;
      const std::vector<double> got = golden::read_state(opt, key);
      if (key == "step")
        EXPECT_EQ(got.at(0), value.get<double>()) << where;
      else if (value.is_number())
        golden::expect_close(where, key, got, {value.get<double>()}, tol);
      else
        golden::expect_close(where, key, got, value.at("data").get<std::vector<double>>(), tol);
    }
    for (const auto& k : keys)
      EXPECT_TRUE(s.at("state").contains(k))
          << where << ": descent has state " << k << " that MLX does not";
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Mlx, MlxState, testing::ValuesIn(mlx_state_cases()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(MlxStateCases, AllPresent) {
  EXPECT_EQ(mlx_state_cases().size(), 4u);
}

}  // namespace
