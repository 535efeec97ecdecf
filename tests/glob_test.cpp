// Name globs of multi-optimizer filters and excludes: '*' (any run) and '?' (one character)
// are wildcards wherever they appear in the pattern, also against names that contain '*' or
// '?' themselves. Checked against a reference matcher over every short pattern and name.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"

namespace {

using api_test::Handle;

// Reference: dynamic programming over prefixes, obviously correct.
bool reference_match(const std::string& p, const std::string& t) {
  std::vector<std::vector<bool>> m(p.size() + 1, std::vector<bool>(t.size() + 1, false));
  m[0][0] = true;
  for (std::size_t i = 1; i <= p.size(); ++i) {
    for (std::size_t j = 0; j <= t.size(); ++j) {
      if (p[i - 1] == '*')
        m[i][j] = m[i - 1][j] || (j > 0 && m[i][j - 1]);
      else
        m[i][j] = j > 0 && m[i - 1][j - 1] && (p[i - 1] == '?' || p[i - 1] == t[j - 1]);
    }
  }
  return m[p.size()][t.size()];
}

// Every string over `alphabet` of length lo..hi.
std::vector<std::string> strings(const std::string& alphabet, std::size_t lo, std::size_t hi) {
  std::vector<std::string> out, level{""};
  for (std::size_t len = 0; len <= hi; ++len) {
    if (len >= lo) out.insert(out.end(), level.begin(), level.end());
    std::vector<std::string> next;
    for (const auto& s : level)
      for (char c : alphabet) next.push_back(s + c);
    level.swap(next);
  }
  return out;
}

std::size_t group_of(descent_optimizer* multi, const std::string& name) {
  std::size_t g = 99;
  EXPECT_EQ(descent_multi_parameter_group(multi, name.c_str(), &g), DESCENT_OK)
      << descent_optimizer_last_error(multi);
  return g;
}

// One multi whose group 0 has `glob` as its only include (or only exclude), with every name
// declared; returns the group of each name.
std::vector<std::size_t> groups(const std::string& glob, bool exclude,
                                const std::vector<std::string>& names) {
  Handle multi("multi");
  EXPECT_EQ(descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.1})", nullptr),
            DESCENT_OK);
  EXPECT_EQ(descent_multi_add_group(multi, "sgd", R"({"learning_rate": 0.1})", nullptr),
            DESCENT_OK);
  EXPECT_EQ(exclude ? descent_multi_exclude_name(multi, 0, glob.c_str())
                    : descent_multi_filter_name(multi, 0, glob.c_str()),
            DESCENT_OK)
      << descent_optimizer_last_error(multi);
  const int64_t shape[] = {2};
  for (const auto& n : names)
    EXPECT_EQ(descent_optimizer_add_parameter(multi, n.c_str(), DESCENT_FLOAT32, 1, shape),
              DESCENT_OK)
        << n;
  std::vector<std::size_t> out;
  for (const auto& n : names) out.push_back(group_of(multi, n));
  return out;
}

TEST(Glob, StarMatchesNamesContainingStar) {
  const std::vector<std::pair<std::string, std::vector<std::pair<std::string, bool>>>> cases = {
      {"*", {{"*x", true}, {"*", true}, {"x*", true}, {"**", true}, {"?", true}}},
      {"layer*", {{"layer*x", true}, {"layer*", true}, {"layer", true}, {"layex", false}}},
      {"*x", {{"*x", true}, {"**x", true}, {"x", true}, {"*y", false}}},
      {"a*b", {{"a*b", true}, {"a**b", true}, {"a*bb", true}, {"a*c", false}}},
      {"?", {{"*", true}, {"?", true}, {"**", false}}},
      {"??", {{"*?", true}, {"?*", true}, {"*", false}}},
      {"*?*", {{"*", true}, {"?", true}, {"a?b", true}}},
      {"a?c", {{"a*c", true}, {"a?c", true}, {"a**c", false}}},
      {"*.bias", {{"*.bias", true}, {"x*.bias", true}, {"*.bias*", false}}},
      {"a*a*a", {{"aaa", true}, {"a*a", false}, {"a**a*a", true}, {"aaaa", true}}},
  };
  for (const auto& [glob, names] : cases) {
    std::vector<std::string> ns;
    for (const auto& [n, m] : names) ns.push_back(n);
    for (bool exclude : {false, true}) {
      const auto got = groups(glob, exclude, ns);
      for (std::size_t i = 0; i < ns.size(); ++i) {
        const bool matched = names[i].second;
        // Include: a match goes to group 0. Exclude-only group: a match goes to the fallback.
        const std::size_t want = exclude ? (matched ? 1u : 0u) : (matched ? 0u : 1u);
        EXPECT_EQ(got[i], want) << (exclude ? "exclude '" : "filter '") << glob << "' vs '" << ns[i]
                                << "'";
      }
    }
  }
}

TEST(Glob, AgreesWithReferenceOnEveryShortPatternAndName) {
  // Patterns up to 4 and names up to 4 characters over {a, b, *, ?}: the names contain the
  // wildcard characters too.
  const auto patterns = strings("ab*?", 1, 4);
  const auto names = strings("ab*?", 1, 4);
  std::size_t checked = 0;
  for (const auto& glob : patterns) {
    const auto got = groups(glob, false, names);
    for (std::size_t i = 0; i < names.size(); ++i, ++checked) {
      const std::size_t want = reference_match(glob, names[i]) ? 0u : 1u;
      ASSERT_EQ(got[i], want) << "filter '" << glob << "' vs '" << names[i] << "'";
    }
  }
  EXPECT_GT(checked, 100000u);
}

TEST(Glob, LongInputsWithManyStars) {
  // Backtracking to the last star only: a pathological pattern still answers (and correctly).
  const std::string name(2000, 'a');
  std::string glob;
  for (int i = 0; i < 200; ++i) glob += "*a";
  const auto got = groups(glob + "*b", false, {name, name + "b", std::string(199, 'a') + "b"});
  EXPECT_EQ(got, (std::vector<std::size_t>{1, 0, 1}));
  const auto got2 = groups(glob, false, {name, std::string(199, 'a')});
  EXPECT_EQ(got2, (std::vector<std::size_t>{0, 1}));
}

}  // namespace
