// Kind name -> optimizer object.
#include "core/rule_optimizer.h"

namespace descent {

std::unique_ptr<Optimizer> make_optimizer(std::string_view kind) {
  return std::make_unique<RuleOptimizer>(kind);
}

}  // namespace descent
