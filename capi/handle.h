// What a descent_optimizer* points to: the C++ optimizer plus the handle's last error message.
#pragma once

#include <memory>
#include <string>

#include "core/optimizer.h"

struct descent_optimizer {
  std::unique_ptr<descent::Optimizer> impl;
  std::string last_error;
};
