// The cost of one update per tensor, by update form (docs/api.md "Updates"): AdamW float32 over
// 1000 tensors of 10 floats through descent_optimizer_update (names), _update_indexed and
// _update_flat, against one tensor of 10,000 floats (the same arithmetic). Reports the best and
// median time per update of interleaved rounds and the cost per tensor beyond the one-tensor
// time. Not a ctest (timings vary; no assertion).
//
// usage: update_forms_bench [--tensors 1000] [--size 10] [--rounds 31] [--reps 200]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "descent/descent.h"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void check(descent_optimizer* opt, descent_status s, const char* what) {
  if (s != DESCENT_OK) {
    std::fprintf(stderr, "%s: %s\n", what, descent_optimizer_last_error(opt));
    std::exit(1);
  }
}

descent_optimizer* adamw() {
  descent_optimizer* opt = nullptr;
  char error[DESCENT_ERROR_CAPACITY];
  if (descent_optimizer_create("adamw", &opt, error, sizeof error) != DESCENT_OK) {
    std::fprintf(stderr, "%s\n", error);
    std::exit(1);
  }
  check(opt, descent_optimizer_configure_json(opt, "{\"learning_rate\": 1e-3}"), "configure");
  return opt;
}

struct Case {
  const char* label;
  descent_optimizer* opt;
  std::vector<std::vector<float>> p, g;  // per tensor (by name / by index)
  std::vector<float> flat_p, flat_g;     // flat layout
  std::vector<std::string> names;
  std::vector<const char*> name_ptrs;
  std::vector<size_t> indices;
  std::vector<void*> pp;
  std::vector<const void*> gp;
  enum { ByName, ByIndex, Flat } form;
  size_t flat_bytes = 0;
  std::vector<double> times;

  void run() {
    switch (form) {
      case ByName:
        check(opt,
              descent_optimizer_update(opt, names.size(), name_ptrs.data(), nullptr, nullptr,
                                       pp.data(), gp.data()),
              label);
        break;
      case ByIndex:
        check(opt,
              descent_optimizer_update_indexed(opt, indices.size(), indices.data(), nullptr,
                                               nullptr, pp.data(), gp.data()),
              label);
        break;
      case Flat:
        check(opt, descent_optimizer_update_flat(opt, flat_p.data(), flat_g.data(), flat_bytes),
              label);
        break;
    }
  }
};

void setup(Case& c, size_t tensors, size_t size) {
  c.opt = adamw();
  const int64_t shape[1] = {static_cast<int64_t>(size)};
  for (size_t i = 0; i < tensors; ++i) {
    c.names.push_back("layers." + std::to_string(i) + ".w");
    check(c.opt,
          descent_optimizer_add_parameter(c.opt, c.names.back().c_str(), DESCENT_FLOAT32, 1, shape),
          "add_parameter");
  }
  for (size_t i = 0; i < tensors; ++i) {
    c.name_ptrs.push_back(c.names[i].c_str());
    c.indices.push_back(i);
    c.p.emplace_back(size, 0.5f);
    c.g.emplace_back(size, 0.001f);
  }
  for (size_t i = 0; i < tensors; ++i) {
    c.pp.push_back(c.p[i].data());
    c.gp.push_back(c.g[i].data());
  }
  check(c.opt, descent_optimizer_flat_size(c.opt, &c.flat_bytes), "flat_size");
  c.flat_p.assign(c.flat_bytes / 4, 0.5f);  // std::vector<float>: 16-byte aligned, enough
  c.flat_g.assign(c.flat_bytes / 4, 0.001f);
  c.run();  // initialise the state: steady state from here on
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  size_t tensors = 1000, size = 10, rounds = 31, reps = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const size_t v = std::strtoul(argv[i + 1], nullptr, 10);
    if (a == "--tensors")
      tensors = v;
    else if (a == "--size")
      size = v;
    else if (a == "--rounds")
      rounds = v;
    else if (a == "--reps")
      reps = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  Case cases[4];
  cases[0].label = "one tensor (by name)";
  cases[0].form = Case::ByName;
  setup(cases[0], 1, tensors * size);
  const char* labels[3] = {"by name", "by index", "flat"};
  for (int k = 0; k < 3; ++k) {
    cases[k + 1].label = labels[k];
    cases[k + 1].form = k == 0 ? Case::ByName : k == 1 ? Case::ByIndex : Case::Flat;
    setup(cases[k + 1], tensors, size);
  }
  for (size_t r = 0; r < rounds; ++r)
    for (Case& c : cases) {
      const double t0 = now();
      for (size_t i = 0; i < reps; ++i) c.run();
      c.times.push_back((now() - t0) / static_cast<double>(reps));
    }
  const double one = *std::min_element(cases[0].times.begin(), cases[0].times.end());
  std::printf(
      "AdamW float32: %zu tensors x %zu floats vs one tensor of %zu floats; %zu rounds x %zu "
      "updates\n",
      tensors, size, tensors * size, rounds, reps);
  std::printf("%-22s %12s %12s %16s %14s\n", "form", "best us", "median us", "ns/tensor extra",
              "rate vs one");
  for (Case& c : cases) {
    const double best = *std::min_element(c.times.begin(), c.times.end());
    const double extra = c.form == Case::ByName && &c == &cases[0]
                             ? 0.0
                             : (best - one) / static_cast<double>(tensors) * 1e9;
    std::printf("%-22s %12.2f %12.2f %16.1f %14.2f\n", c.label, best * 1e6, median(c.times) * 1e6,
                extra, one / best);
    descent_optimizer_free(c.opt);
  }
  return 0;
}
