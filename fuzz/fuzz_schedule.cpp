// Target c: schedule specs, string and JSON forms. Input: 8 bytes of step, 8 bytes of init_lr,
// then the spec. descent_schedule_value never reaches DESCENT_ERR_INTERNAL, writes *out only on
// success and the error buffer only on failure, and gives the same bits twice; set_schedule on
// optimizers either fails changing nothing or works, and the first update then stores the
// schedule's value at step 0 (as float32) as "learning_rate"; save/load continues identically.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fuzz_support.h"

namespace {

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint64_t step = in.u64() % 100000;  // large steps are cheap, but keep numbers readable
  double init_lr = in.f64();
  const std::string spec = in.rest();

  char err[DESCENT_ERROR_CAPACITY];
  std::memset(err, 'x', sizeof err);
  double out = 12345.0;
  const descent_status s =
      descent_schedule_value(spec.c_str(), init_lr, step, &out, err, sizeof err);
  fuzz::no_internal(s, "schedule_value(\"" + spec + "\")", err);
  if (s == DESCENT_OK) {
    if (err[0] != 'x') fuzz::die("schedule_value succeeded but wrote the error buffer");
    double again = 0;
    if (descent_schedule_value(spec.c_str(), init_lr, step, &again, nullptr, 0) != DESCENT_OK ||
        !same_bits(out, again))
      fuzz::die("schedule_value is not deterministic");
  } else {
    if (out != 12345.0) fuzz::die("a failed schedule_value wrote *out");
    if (std::memchr(err, 0, sizeof err) == nullptr || err[0] == 0)
      fuzz::die("a failed schedule_value left no NUL-terminated message");
  }

  // On optimizers: the learning rate is init_lr when that is a valid one.
  if (!(std::isfinite(init_lr) && init_lr >= 0 && init_lr < 1e30)) init_lr = 0.01;
  char base[128];
  std::snprintf(base, sizeof base, "{\"learning_rate\": %.17g}", init_lr);
  static const char* const kinds[] = {"sgd", "adamw", "adafactor", "muon", "multi"};
  for (const char* kind : kinds) {
    fuzz::Rig rig(kind, fuzz::models()[0], base);
    rig.build();
    const descent_status t = rig.checked(
        "set_schedule", [&] { return descent_optimizer_set_schedule(rig.opt(), spec.c_str()); });
    if (t != DESCENT_OK) continue;
    rig.record(fuzz::Setup::Schedule, spec.c_str());
    if (rig.step(0) != DESCENT_OK) continue;
    double first = 0;
    float lr = 0;
    const bool plain = std::strcmp(kind, "multi") != 0 && std::strcmp(kind, "adafactor") != 0;
    // The optimizer holds its learning rate as float32; the shorthands start from the shortest
    // decimal that rounds to that float32 (docs/schedules.md).
    const float lr32 = float(init_lr);
    double held = double(lr32);
    for (int digits = 1; digits <= 9; ++digits) {
      char text[64];
      std::snprintf(text, sizeof text, "%.*g", digits, double(lr32));
      if (std::strtof(text, nullptr) == lr32) {
        held = std::strtod(text, nullptr);
        break;
      }
    }
    if (plain && descent_schedule_value(spec.c_str(), held, 0, &first, nullptr, 0) == DESCENT_OK &&
        descent_optimizer_state_get(rig.opt(), "learning_rate", DESCENT_FLOAT32, &lr, 1) ==
            DESCENT_OK) {
      const float expected = float(first);
      if (std::memcmp(&lr, &expected, 4) != 0 && !(std::isnan(lr) && std::isnan(expected)))
        fuzz::die(std::string(kind) + ": the first update's learning_rate " + std::to_string(lr) +
                  " differs from descent_schedule_value(spec, lr, 0) = " + std::to_string(first));
    }
    fuzz::check_roundtrip(rig, base);
  }
  return 0;
}
