// The one exception type of the core. The C API turns it into a status code and a message.
#pragma once

#include <stdexcept>
#include <string>

#include "descent/descent.h"

namespace descent {

class Error : public std::runtime_error {
 public:
  Error(descent_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  descent_status status() const noexcept { return status_; }

 private:
  descent_status status_;
};

}  // namespace descent
