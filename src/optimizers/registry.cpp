// Kind name -> rule factory. Kind names are MLX's class names in lower case.
#include "optimizers/registry.h"

#include <string>

#include "common/error.h"
#include "optimizers/rule.h"

namespace descent {

std::unique_ptr<Rule> make_sgd();
std::unique_ptr<Rule> make_rmsprop();
std::unique_ptr<Rule> make_adagrad();
std::unique_ptr<Rule> make_adadelta();
std::unique_ptr<Rule> make_adam();
std::unique_ptr<Rule> make_adamw();
std::unique_ptr<Rule> make_adamax();
std::unique_ptr<Rule> make_lion();
std::unique_ptr<Rule> make_adafactor();
std::unique_ptr<Rule> make_muon();

namespace {

struct Entry {
  const char* name;
  std::unique_ptr<Rule> (*make)();  // nullptr for "multi", which make_optimizer builds
};

// The public order of descent_kind_name; append new kinds before "multi".
constexpr Entry kKinds[] = {
    {"sgd", make_sgd},           {"rmsprop", make_rmsprop}, {"adagrad", make_adagrad},
    {"adadelta", make_adadelta}, {"adam", make_adam},       {"adamw", make_adamw},
    {"adamax", make_adamax},     {"lion", make_lion},       {"adafactor", make_adafactor},
    {"muon", make_muon},         {"multi", nullptr}};

constexpr std::size_t kKindCount = sizeof kKinds / sizeof kKinds[0];

}  // namespace

std::size_t kind_count() noexcept {
  return kKindCount;
}

const char* kind_name(std::size_t index) noexcept {
  return index < kKindCount ? kKinds[index].name : nullptr;
}

bool is_kind(std::string_view kind) noexcept {
  for (const auto& e : kKinds)
    if (kind == e.name) return true;
  return false;
}

std::string unknown_kind_message(std::string_view kind) {
  std::string known;
  for (const auto& e : kKinds) known += std::string(known.empty() ? "" : ", ") + e.name;
  return "unknown optimizer kind '" + std::string(kind) + "' (known: " + known + ")";
}

std::unique_ptr<Rule> make_rule(std::string_view kind) {
  for (const auto& e : kKinds)
    if (e.make && kind == e.name) return e.make();
  throw Error(DESCENT_ERR_UNKNOWN_KIND, unknown_kind_message(kind));
}

}  // namespace descent
