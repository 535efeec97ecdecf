// Target a: a state file (safetensors) from a buffer into optimizers of every kind, fresh and
// initialised (after one update), on the models the input can be meant for. A failed load changes
// nothing; a successful one saves, loads back into a fresh optimizer and continues identically.
#include <map>
#include <string>
#include <tuple>

#include "fuzz_support.h"

namespace {

// Models whose parameter names all appear in the input as "<name>." (the harness's own model
// always): mutated MLX state files keep reaching the deep checks.
bool meant_for(const fuzz::Model& m, const std::string& text) {
  for (const fuzz::Param& p : m)
    if (text.find(std::string("\"") + p.name + ".") == std::string::npos &&
        text.find(std::string("\"states.0.") + p.name + ".") == std::string::npos &&
        text.find(std::string("\"states.1.") + p.name + ".") == std::string::npos)
      return false;
  return true;
}

// The kinds to try: the one a descent file names (and "sgd" or "adam", which it is not, for the
// wrong-kind path); for files without descent's metadata (MLX's, damaged ones) three kinds that
// depend on the input's size, so that mutations reach every kind while each run stays cheap.
std::vector<std::string> kinds_for(const std::string& text, const std::vector<std::string>& all) {
  for (const std::string& k : all)
    if (text.find("\"kind\":\"" + k + "\"") != std::string::npos)
      return {k, k == "sgd" ? "adam" : "sgd"};
  const size_t n = all.size(), first = text.size() % n;
  return {all[first], all[(first + 4) % n], all[(first + 8) % n]};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> all_kinds = fuzz::kinds();
  // A fresh or once-updated rig is always the same: its snapshot is computed once.
  static std::map<std::tuple<size_t, std::string, int>, fuzz::Snapshot> baseline;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto& models = fuzz::models();
  for (size_t m = 0; m < models.size(); ++m) {
    if (m != 0 && !meant_for(models[m], text)) continue;
    for (const std::string& kind : kinds_for(text, all_kinds)) {
      for (int initialised = 0; initialised < 2; ++initialised) {
        fuzz::Rig rig(kind, models[m]);
        rig.build();
        if (initialised && rig.step(0) != DESCENT_OK)
          fuzz::die(kind + ": the first update fails: " + rig.last_error());
        const auto key = std::make_tuple(m, kind, initialised);
        auto it = baseline.find(key);
        if (it == baseline.end()) it = baseline.emplace(key, rig.snapshot()).first;
        const descent_status s = rig.checked(
            "load_from_buffer",
            [&] { return descent_optimizer_load_from_buffer(rig.opt(), data, size); }, &it->second);
        if (s == DESCENT_OK) fuzz::check_roundtrip(rig);
      }
    }
  }
  return 0;
}
