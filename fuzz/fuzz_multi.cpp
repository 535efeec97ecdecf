// Target d: multi optimizers driven by a small program read from the input: groups of any kind,
// name/ndim filters and excludes with fuzz-chosen globs, parameters with fuzz-chosen names and
// shapes, then init, update, save and load. Every failed call changes nothing; every parameter
// lands in the group a reference implementation of the documented rule picks (first group whose
// filter accepts it: an include clause matches or there is none, and no exclude matches; the last
// group takes everything); whatever saves continues identically after a round trip.
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.h"

namespace {

// '*' any run, '?' one byte, anything else itself.
bool glob(const char* p, const char* t) {
  if (*p == 0) return *t == 0;
  if (*p == '*') return glob(p + 1, t) || (*t && glob(p, t + 1));
  return *t && (*p == '?' || *p == *t) && glob(p + 1, t + 1);
}

struct Clause {
  bool is_name;
  std::string glob;
  int64_t lo, hi;
};
struct Group {
  std::vector<Clause> include;
  std::vector<std::string> exclude;
};

// Names and globs over a small alphabet (so that they match each other often), or raw bytes.
std::string word(fuzz::Input& in, bool is_glob) {
  const uint8_t head = in.byte();
  const size_t n = head % 8;
  if (head >= 0xF0) return in.text(n + 1);  // raw bytes: invalid UTF-8, control characters...
  static const char name_alphabet[] = "ab.0_";
  static const char glob_alphabet[] = "ab.0*?";
  std::string s;
  for (size_t i = 0; i < n + 1; ++i) {
    const uint8_t c = in.byte();
    s.push_back(is_glob ? glob_alphabet[c % 6] : name_alphabet[c % 5]);
  }
  return s;
}

struct Declared {
  std::string name;
  std::vector<int64_t> shape;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> kinds = fuzz::kinds();
  fuzz::Input in(data, size);
  descent_optimizer* multi = nullptr;
  if (descent_optimizer_create("multi", &multi, nullptr, 0) != DESCENT_OK) fuzz::die("create");
  std::vector<Group> groups;
  std::vector<Declared> params;
  bool initialised = false;

  auto check_failure = [&](descent_status s, const std::string& what,
                           const std::vector<unsigned char>& before) {
    fuzz::no_internal(s, "multi: " + what, descent_optimizer_last_error(multi));
    if (s == DESCENT_OK) return;
    std::vector<unsigned char> after;
    fuzz::save_bytes(multi, after);
    if (after != before) fuzz::die("multi: a failed " + what + " changed the state");
    if (!*descent_optimizer_last_error(multi)) fuzz::die("multi: " + what + ": no message");
  };

  for (int op = 0; op < 24 && in.left() > 0; ++op) {
    std::vector<unsigned char> before;
    fuzz::save_bytes(multi, before);
    const uint8_t code = in.byte();
    const size_t g = groups.empty() ? in.byte() % 2 : in.byte() % (groups.size() + 1);
    switch (code % 7) {
      case 0: {  // a group
        const std::string& kind = kinds[in.byte() % kinds.size()];
        size_t index = 99;
        const descent_status s =
            descent_multi_add_group(multi, kind.c_str(), "{\"learning_rate\": 0.01}", &index);
        check_failure(s, "add_group(" + kind + ")", before);
        if (s == DESCENT_OK) {
          if (index != groups.size()) fuzz::die("add_group: wrong index");
          groups.emplace_back();
        }
        break;
      }
      case 1:
      case 2: {  // an include name clause / an exclude
        const std::string glob_text = word(in, true);
        const bool exclude = code % 7 == 2;
        const descent_status s = exclude ? descent_multi_exclude_name(multi, g, glob_text.c_str())
                                         : descent_multi_filter_name(multi, g, glob_text.c_str());
        check_failure(s, exclude ? "exclude_name" : "filter_name", before);
        if (s == DESCENT_OK) {
          if (exclude)
            groups[g].exclude.push_back(glob_text);
          else
            groups[g].include.push_back({true, glob_text, 0, 0});
        }
        break;
      }
      case 3: {  // an ndim clause
        const int64_t lo = int64_t(int8_t(in.byte())) % 6, hi = int64_t(int8_t(in.byte())) % 6;
        const descent_status s = descent_multi_filter_ndim(multi, g, lo, hi);
        check_failure(s, "filter_ndim", before);
        if (s == DESCENT_OK) groups[g].include.push_back({false, "", lo, hi});
        break;
      }
      case 4: {  // a parameter
        Declared d{word(in, false), {}};
        const size_t ndim = in.byte() % 5;
        for (size_t i = 0; i < ndim; ++i) d.shape.push_back(int64_t(in.byte() % 4));
        const descent_status s = descent_optimizer_add_parameter(
            multi, d.name.c_str(), DESCENT_FLOAT32, ndim, d.shape.data());
        check_failure(s, "add_parameter", before);
        if (s == DESCENT_OK) params.push_back(d);
        break;
      }
      case 5: {  // init
        const descent_status s = descent_optimizer_init(multi);
        check_failure(s, "init", before);
        if (s == DESCENT_OK) initialised = true;
        break;
      }
      default: {  // which group a name is in
        const std::string name = word(in, false);
        size_t out = 77;
        const descent_status s = descent_multi_parameter_group(multi, name.c_str(), &out);
        fuzz::no_internal(s, "multi: parameter_group", descent_optimizer_last_error(multi));
        if (s != DESCENT_OK && out != 77) fuzz::die("a failed parameter_group wrote *out");
        break;
      }
    }
  }

  // The assignment follows the documented rule (checked once the groups are fixed, at init).
  if (initialised && !groups.empty()) {
    for (const Declared& d : params) {
      size_t expected = groups.size() - 1;
      for (size_t gi = 0; gi + 1 < groups.size(); ++gi) {
        const Group& G = groups[gi];
        bool inc = G.include.empty();
        for (const Clause& c : G.include) {
          const int64_t nd = int64_t(d.shape.size());
          if (c.is_name ? glob(c.glob.c_str(), d.name.c_str())
                        : (nd >= c.lo && (c.hi < 0 || nd <= c.hi)))
            inc = true;
        }
        for (const std::string& e : G.exclude)
          if (glob(e.c_str(), d.name.c_str())) inc = false;
        if (inc) {
          expected = gi;
          break;
        }
      }
      size_t got = 99;
      if (descent_multi_parameter_group(multi, d.name.c_str(), &got) != DESCENT_OK ||
          got != expected)
        fuzz::die("parameter '" + d.name + "' is in group " + std::to_string(got) +
                  ", the documented rule says " + std::to_string(expected));
    }
  }

  // Update, save, and a fresh multi built by the same calls loads it and continues identically.
  if (initialised && !params.empty()) {
    std::vector<std::vector<float>> p(params.size()), gr(params.size());
    std::vector<size_t> idx;
    std::vector<void*> ps;
    std::vector<const void*> gs;
    for (size_t i = 0; i < params.size(); ++i) {
      int64_t n = 1;
      for (int64_t d : params[i].shape) n *= d;
      p[i].resize(size_t(n));
      gr[i].resize(size_t(n));
      for (int64_t k = 0; k < n; ++k) {
        p[i][size_t(k)] = float(fuzz::noise(1, i, uint64_t(k)));
        gr[i][size_t(k)] = float(fuzz::noise(2, i, uint64_t(k)));
      }
      idx.push_back(i);
      ps.push_back(p[i].data());
      gs.push_back(gr[i].data());
    }
    const descent_status s = descent_optimizer_update_indexed(
        multi, idx.size(), idx.data(), nullptr, nullptr, ps.data(), gs.data());
    fuzz::no_internal(s, "multi: update", descent_optimizer_last_error(multi));
    std::vector<unsigned char> saved;
    if (fuzz::save_bytes(multi, saved) == DESCENT_OK) {
      // Rebuild by reading the same program again.
      descent_optimizer* copy = nullptr;
      descent_optimizer_create("multi", &copy, nullptr, 0);
      for (size_t gi = 0; gi < groups.size(); ++gi) {
        descent_optimizer* group = nullptr;
        descent_multi_group(multi, gi, &group);
        if (descent_multi_add_group(copy, descent_optimizer_kind(group),
                                    "{\"learning_rate\": 0.01}", nullptr) != DESCENT_OK)
          fuzz::die("rebuilding the groups fails");
        for (const Clause& c : groups[gi].include)
          if (c.is_name ? descent_multi_filter_name(copy, gi, c.glob.c_str())
                        : descent_multi_filter_ndim(copy, gi, c.lo, c.hi))
            fuzz::die("rebuilding a filter fails");
        for (const std::string& e : groups[gi].exclude)
          if (descent_multi_exclude_name(copy, gi, e.c_str()))
            fuzz::die("rebuilding an exclude fails");
      }
      for (const Declared& d : params)
        if (descent_optimizer_add_parameter(copy, d.name.c_str(), DESCENT_FLOAT32, d.shape.size(),
                                            d.shape.data()) != DESCENT_OK)
          fuzz::die("redeclaring a parameter fails");
      if (descent_optimizer_load_from_buffer(copy, saved.data(), saved.size()) != DESCENT_OK)
        fuzz::die(std::string("a saved multi state does not load: ") +
                  descent_optimizer_last_error(copy));
      std::vector<std::vector<float>> q = p;
      std::vector<void*> qs;
      for (auto& v : q) qs.push_back(v.data());
      for (int k = 0; k < 2; ++k) {
        const descent_status a = descent_optimizer_update_indexed(
            multi, idx.size(), idx.data(), nullptr, nullptr, ps.data(), gs.data());
        const descent_status b = descent_optimizer_update_indexed(
            copy, idx.size(), idx.data(), nullptr, nullptr, qs.data(), gs.data());
        std::vector<unsigned char> sa, sb;
        fuzz::save_bytes(multi, sa);
        fuzz::save_bytes(copy, sb);
        if (a != b || p != q || sa != sb)
          fuzz::die("multi: a loaded copy does not continue identically");
      }
      descent_optimizer_free(copy);
    }
  }
  descent_optimizer_free(multi);
  return 0;
}
