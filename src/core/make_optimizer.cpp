// Kind name -> optimizer object.
#include "core/multi_optimizer.h"
#include "core/rule_optimizer.h"

namespace descent {

std::unique_ptr<Optimizer> make_optimizer(std::string_view kind) {
  if (kind == "multi") return std::make_unique<MultiOptimizer>();
  return std::make_unique<RuleOptimizer>(kind);
}

}  // namespace descent
