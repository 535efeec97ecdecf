// What a caller's callback (schedule, filter) returned, as the core's exception.
#pragma once

#include <cstring>
#include <string>

#include "common/error.h"

namespace descent {

// The library's buffer for a callback's message: one per call, zeroed, never retained.
struct CallbackMessage {
  char text[DESCENT_ERROR_CAPACITY] = {};
};

inline bool is_known_status(descent_status s) noexcept {
  return (s >= DESCENT_ERR_NULL_ARGUMENT && s <= DESCENT_ERR_CALLBACK) || s == DESCENT_ERR_INTERNAL;
}

// Throws the failure a callback reported: its own status when it is one of the header's codes
// (else DESCENT_ERR_CALLBACK), and `context` followed by its message (a missing NUL is supplied).
[[noreturn]] inline void throw_callback_failure(descent_status status, CallbackMessage& message,
                                                const std::string& context) {
  message.text[sizeof message.text - 1] = '\0';
  const descent_status s = is_known_status(status) ? status : DESCENT_ERR_CALLBACK;
  std::string text = context;
  if (!is_known_status(status))
    text += " (status " + std::to_string(static_cast<long long>(status)) + ")";
  text += message.text[0] ? std::string(": ") + message.text : std::string(" (no message)");
  throw Error(s, text);
}

}  // namespace descent
