// Target b: a configuration JSON for every kind (three per input)
// (descent_optimizer_configure_json; for "multi", descent_multi_add_group's config), then init,
// update, save and load. Every failed call changes nothing; whatever configures continues
// identically after a save/load round trip.
#include <string>

#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> kinds = fuzz::kinds();
  const std::string json(reinterpret_cast<const char*>(data), size);  // may hold NULs: cut there
  const auto& model = fuzz::models()[0];
  // Three kinds per input, depending on its length: mutations reach every kind, runs stay cheap.
  const size_t n = kinds.size(), first = size % n;
  const std::vector<std::string> chosen = {kinds[first], kinds[(first + 4) % n],
                                           kinds[(first + 8) % n]};
  for (const std::string& kind : chosen) {
    fuzz::Rig rig(kind, model);
    rig.build();
    const descent_status s = rig.checked("configure_json", [&] {
      return descent_optimizer_configure_json(rig.opt(), json.c_str());
    });
    if (s == DESCENT_OK) rig.record(fuzz::Setup::Json, json.c_str());
    if (rig.checked("init", [&] { return descent_optimizer_init(rig.opt()); }) != DESCENT_OK)
      continue;
    rig.step(0);
    fuzz::check_roundtrip(rig);
  }
  // A group configured by the input, in a multi optimizer built group by group.
  for (const std::string& kind : chosen) {
    if (kind == "multi") continue;
    descent_optimizer* multi = nullptr;
    if (descent_optimizer_create("multi", &multi, nullptr, 0) != DESCENT_OK)
      fuzz::die("creating a multi optimizer fails");
    size_t index = 99;
    const descent_status a = descent_multi_add_group(multi, kind.c_str(), json.c_str(), &index);
    fuzz::no_internal(a, "multi_add_group(" + kind + ")", descent_optimizer_last_error(multi));
    size_t groups = 7;
    descent_multi_group_count(multi, &groups);
    if (a != DESCENT_OK && (groups != 0 || index != 99))
      fuzz::die("a failed multi_add_group added a group or wrote *index");
    if (a == DESCENT_OK && (groups != 1 || index != 0)) fuzz::die("multi_add_group: wrong index");
    if (a == DESCENT_OK) {
      descent_multi_add_group(multi, "sgd", "{\"learning_rate\": 0.5}", nullptr);
      const int64_t shape[2] = {3, 2};
      descent_optimizer_add_parameter(multi, "w", DESCENT_FLOAT32, 2, shape);
      const descent_status i = descent_optimizer_init(multi);
      fuzz::no_internal(i, "multi init", descent_optimizer_last_error(multi));
    }
    descent_optimizer_free(multi);
  }
  return 0;
}
