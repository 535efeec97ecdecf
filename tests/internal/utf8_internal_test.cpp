// The UTF-8 validator at its boundaries: the first and last code point of each encoding length,
// around the surrogates and U+10FFFF.
#include <gtest/gtest.h>

#include <string>

#include "common/utf8.h"

namespace {

using descent::invalid_utf8_offset;
constexpr auto npos = std::string_view::npos;

TEST(Utf8Validator, AcceptsEveryBoundaryCodePoint) {
  for (const char* s : {"", "a", "\x7F", "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF",
                        "\xEE\x80\x80", "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF",
                        "x\xC3\xA9y\xE2\x82\xACz\xF0\x9F\x98\x80"})
    EXPECT_EQ(invalid_utf8_offset(s), npos) << s;
}

TEST(Utf8Validator, RefusesAndLocates) {
  const std::pair<std::string, std::size_t> cases[] = {{"\x80", 0},
                                                       {"ab\xBF", 2},
                                                       {"\xC0\x80", 0},
                                                       {"\xC1\xBF", 0},
                                                       {"a\xC2", 1},
                                                       {"\xC2\x7F", 0},
                                                       {"\xE0\x9F\xBF", 0},
                                                       {"\xED\xA0\x80", 0},
                                                       {"\xED\xBF\xBF", 0},
                                                       {"\xE1\x80", 0},
                                                       {"\xE1\x80\xC0", 0},
                                                       {"\xF0\x8F\xBF\xBF", 0},
                                                       {"\xF4\x90\x80\x80", 0},
                                                       {"\xF5\x80\x80\x80", 0},
                                                       {"\xF0\x90\x80", 0},
                                                       {"ok\xFF", 2},
                                                       {"\xFE", 0},
                                                       {"\xC3\xA9\xFF", 2}};
  for (const auto& [s, at] : cases)
    EXPECT_EQ(invalid_utf8_offset(s), at) << testing::PrintToString(s);
}

TEST(Utf8Validator, CheckNamesTheArgument) {
  try {
    descent::check_utf8("ab\xFF", "glob");
    FAIL() << "no error";
  } catch (const descent::Error& e) {
    EXPECT_EQ(e.status(), DESCENT_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(std::string(e.what()), "glob: is not valid UTF-8 (byte 0xFF at offset 2)");
  }
}

}  // namespace
