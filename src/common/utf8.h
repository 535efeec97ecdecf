// UTF-8 validation of every string that enters the library (kind names, keys, parameter names,
// globs, schedule specs, JSON text, string values): what enters must be writable into a JSON
// header or description later, so it is refused where it enters, not when a save fails.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/error.h"

namespace descent {

// The offset of the first byte that is not part of a well-formed UTF-8 sequence (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequence), or npos.
inline std::size_t invalid_utf8_offset(std::string_view s) noexcept {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = b[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;  // a continuation byte, C0/C1 (overlong) or F5..FF
    }
    if (i + len > n) return i;  // truncated
    if (b[i + 1] < lo || b[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k)
      if (b[i + k] < 0x80 || b[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Throws `status` naming `what` (the argument) when `s` is not UTF-8. The message gives the
// offset and the byte, never the bytes themselves. JSON text uses DESCENT_ERR_PARSE: JSON that
// is not UTF-8 is malformed JSON (RFC 8259), as it always was.
inline void check_utf8(std::string_view s, const char* what,
                       descent_status status = DESCENT_ERR_INVALID_ARGUMENT) {
  const std::size_t at = invalid_utf8_offset(s);
  if (at == std::string_view::npos) return;
  static const char hex[] = "0123456789ABCDEF";
  const auto byte = static_cast<unsigned char>(s[at]);
  throw Error(status, std::string(what) + ": is not valid UTF-8 (byte 0x" + hex[byte >> 4] +
                          hex[byte & 15] + " at offset " + std::to_string(at) + ")");
}

}  // namespace descent
