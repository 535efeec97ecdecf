// Parses JSON text that comes from a caller or a file. Nesting deeper than kMaxJsonDepth is
// refused while parsing, so no later recursive walk of the document (dump, destruction) can
// exhaust the stack.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace descent {

constexpr int kMaxJsonDepth = 64;

// Throws descent::Error(DESCENT_ERR_PARSE, "<what> is not valid JSON: ..." or "... nested deeper
// than 64 levels").
nlohmann::json parse_json(std::string_view text, const std::string& what);

}  // namespace descent
