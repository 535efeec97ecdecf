#include "state_io/safetensors_writer.h"

#include <cstdint>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace descent::state_io {

std::string encode_safetensors_header(
    const std::vector<TensorHeader>& tensors,
    const std::vector<std::pair<std::string, std::string>>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (metadata.empty()) {
    header["__metadata__"] = nullptr;
  } else {
    auto& meta = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (header.contains(t.name))
      throw Error(DESCENT_ERR_INTERNAL, "state key " + quote_name(t.name) + " occurs twice");
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = t.type->name;
    entry["shape"] = t.shape;
    entry["data_offsets"] = {offset, offset + t.bytes};
    header[t.name] = std::move(entry);
    offset += t.bytes;
  }
  std::string json;
  try {
    json = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
  } catch (const nlohmann::json::exception&) {
    for (const auto& t : tensors) {
      try {
        (void)nlohmann::json(t.name).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
      } catch (const nlohmann::json::exception&) {
        throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                    "state key " + quote_name(t.name) + " is not valid UTF-8 and cannot be saved");
      }
    }
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, "a metadata value is not valid UTF-8");
  }
  json.append((8 - (8 + json.size()) % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i, n >>= 8) out[i] = static_cast<char>(n & 0xff);
  return out + json;
}

}  // namespace descent::state_io
