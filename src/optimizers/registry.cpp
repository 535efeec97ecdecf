// Kind name -> rule factory. Kind names are MLX's class names in lower case.
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
std::unique_ptr<Rule> make_muon();
std::unique_ptr<Rule> make_adafactor();

std::unique_ptr<Rule> make_rule(std::string_view kind) {
  struct Entry {
    const char* name;
    std::unique_ptr<Rule> (*make)();
  };
  static const Entry kinds[] = {{"sgd", make_sgd},       {"rmsprop", make_rmsprop},
                                {"adagrad", make_adagrad}, {"adadelta", make_adadelta},
                                {"adam", make_adam},     {"adamw", make_adamw},
                                {"adamax", make_adamax}, {"lion", make_lion}, {"muon", make_muon},
                                {"adafactor", make_adafactor}};
  for (const auto& e : kinds)
    if (kind == e.name) return e.make();
  std::string known;
  for (const auto& e : kinds) known += std::string(known.empty() ? "" : ", ") + e.name;
  throw Error(DESCENT_ERR_UNKNOWN_KIND,
              "unknown optimizer kind '" + std::string(kind) + "' (known: " + known + ")");
}

}  // namespace descent
