// What every test that drives the public C API shares: the optimizer kinds the library lists.
// A new kind in the library is swept by every per-kind test without editing a list here.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "descent/descent.h"

namespace descent_test {

// Every kind descent_kind_name lists, "multi" included.
// The state-precision keys every kind lists after its own (docs/precision.md).
inline std::vector<std::string> precision_keys() {
  return {"state_precision", "stochastic_rounding", "rounding_seed"};
}

inline std::vector<std::string> all_kinds() {
  std::vector<std::string> out;
  for (size_t i = 0; i < descent_kind_count(); ++i) out.emplace_back(descent_kind_name(i));
  return out;
}

// Every kind but "multi", which holds groups of the other kinds and has no update rule itself.
inline std::vector<std::string> rule_kinds() {
  std::vector<std::string> out;
  for (const auto& k : all_kinds())
    if (k != "multi") out.push_back(k);
  return out;
}

// A gtest name for a float dtype: "float32", "float64".
inline std::string dtype_suffix(descent_dtype d) {
  return descent_dtype_name(d);
}

}  // namespace descent_test

// ---- coverage registries ------------------------------------------------------------------------

namespace descent_test {

// Kinds that have closed-form tests (hand-derived expected values). Registered at static
// initialisation by the file holding the tests, so that every test process sees all of them.
inline std::set<std::string>& closed_form_kinds() {
  static std::set<std::string> kinds;
  return kinds;
}
struct ClosedFormKind {
  explicit ClosedFormKind(const char* kind) { closed_form_kinds().insert(kind); }
};

}  // namespace descent_test

#define DESCENT_TEST_CAT2(a, b) a##b
#define DESCENT_TEST_CAT(a, b) DESCENT_TEST_CAT2(a, b)
// DESCENT_CLOSED_FORM_KIND("sgd"); at namespace scope, next to the kind's closed-form tests.
#define DESCENT_CLOSED_FORM_KIND(kind)                                                        \
  static const ::descent_test::ClosedFormKind DESCENT_TEST_CAT(closed_form_kind_, __LINE__) { \
    kind                                                                                      \
  }
