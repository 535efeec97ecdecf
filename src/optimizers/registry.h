// The optimizer kinds the library knows: one table (registry.cpp) behind descent_kind_count,
// descent_kind_name, make_rule and make_optimizer's unknown-kind message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace descent {

// Every kind in the public order, "multi" (parameter groups, no rule of its own) last.
std::size_t kind_count() noexcept;
const char* kind_name(std::size_t index) noexcept;  // nullptr past the end
bool is_kind(std::string_view kind) noexcept;
// "unknown optimizer kind 'x' (known: sgd, ..., multi)".
std::string unknown_kind_message(std::string_view kind);

}  // namespace descent
