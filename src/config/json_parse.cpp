#include "config/json_parse.h"

#include "common/error.h"

namespace descent {

nlohmann::json parse_json(std::string_view text, const std::string& what) {
  struct TooDeep {};
  try {
    return nlohmann::json::parse(text.begin(), text.end(),
                                 [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
                                   if (depth > kMaxJsonDepth) throw TooDeep{};
                                   return true;
                                 });
  } catch (const TooDeep&) {
    throw Error(DESCENT_ERR_PARSE,
                what + " is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  } catch (const nlohmann::json::exception& e) {
    throw Error(DESCENT_ERR_PARSE, what + " is not valid JSON: " + e.what());
  }
}

}  // namespace descent
