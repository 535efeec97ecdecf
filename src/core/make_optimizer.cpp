// Kind name -> optimizer object.
#include "common/error.h"
#include "core/multi_optimizer.h"
#include "core/rule_optimizer.h"
#include "optimizers/registry.h"

namespace descent {

std::unique_ptr<Optimizer> make_optimizer(std::string_view kind) {
  if (!is_kind(kind)) throw Error(DESCENT_ERR_UNKNOWN_KIND, unknown_kind_message(kind));
  if (kind == "multi") return std::make_unique<MultiOptimizer>();
  return std::make_unique<RuleOptimizer>(kind);
}

}  // namespace descent
