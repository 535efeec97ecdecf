// Hostile state files (tests/data/hostile, see its README.md and manifest.json): every damaged,
// malicious or mismatched file is refused with its listed status and a message naming the
// problem, without a crash and without any change to the optimizer, whether it is loaded from a
// path or a buffer, into an initialised optimizer or a fresh one. Also: every truncation of a
// valid file and every single-byte corruption of one either loads or fails cleanly.
#include <set>

#include "state_file_support.h"

namespace {

using namespace state_test;

std::string hostile_dir() {
  return data_dir() + "/hostile";
}

// The optimizer every corpus file targets: Adam, learning_rate 0.01, float32 "w" (2, 3) and "b"
// (3,).
Opt target(bool initialised) {
  Opt opt = create("adam", R"({"learning_rate": 0.01})");
  Model m;
  m.add("w", DESCENT_FLOAT32, {2, 3}).add("b", DESCENT_FLOAT32, {3});
  EXPECT_EQ(m.declare(opt.get()), DESCENT_OK);
  if (initialised) {
    m.fill_params(3);
    for (int s = 0; s < 2; ++s) {
      m.fill_grads(40 + s);
      EXPECT_EQ(m.update(opt.get()), DESCENT_OK) << descent_optimizer_last_error(opt.get());
    }
  }
  return opt;
}

struct Entry {
  std::string file, status, mention, about;
};
// Printed by file name in gtest's messages, not as a byte dump.
void PrintTo(const Entry& e, std::ostream* os) {
  *os << e.file;
}

std::vector<Entry> manifest() {
  std::vector<Entry> out;
  const auto j = nlohmann::json::parse(read_bytes(hostile_dir() + "/manifest.json"));
  for (const auto& e : j)
    out.push_back({e.at("file"), e.at("status"), e.at("mention"), e.at("about")});
  return out;
}

// Loads `bytes` (or the file at `path` when given) into `opt`, expecting `status` by name; on a
// failure also a fresh message mentioning `mention` and no change at all.
void check_load(descent_optimizer* opt, const Bytes& bytes, const std::string* path,
                const std::string& status, const std::string& mention) {
  const auto state = state_snapshot(opt);
  const auto hyper = hyper_snapshot(opt);
  descent_optimizer_set_double(opt, "__no_such_key__", 0);  // leaves a message to be replaced
  const descent_status got =
      path ? descent_optimizer_load(opt, path->c_str())
           : descent_optimizer_load_from_buffer(opt, bytes.data(), bytes.size());
  EXPECT_EQ(descent_status_name(got), status) << descent_optimizer_last_error(opt);
  if (got == DESCENT_OK) {
    EXPECT_EQ(step_of(opt), 7u);
    return;
  }
  const std::string message = descent_optimizer_last_error(opt);
  EXPECT_EQ(message.find("__no_such_key__"), std::string::npos) << "stale message: " << message;
  EXPECT_NE(message.find(mention), std::string::npos)
      << "message does not mention \"" << mention << "\": " << message;
  if (path) {
    EXPECT_NE(message.find(*path), std::string::npos)
        << "message does not name the file: " << message;
  }
  EXPECT_EQ(message, descent_last_error());
  EXPECT_EQ(state_snapshot(opt), state) << "state changed";
  EXPECT_EQ(hyper_snapshot(opt), hyper) << "hyperparameters changed";
}

class HostileState : public testing::TestWithParam<Entry> {};

TEST_P(HostileState, RefusedCleanly) {
  const Entry& e = GetParam();
  SCOPED_TRACE(e.file + ": " + e.about);
  const std::string path = hostile_dir() + "/" + e.file;
  const Bytes bytes = read_bytes(path);
  for (const bool initialised : {true, false}) {
    SCOPED_TRACE(initialised ? "initialised optimizer" : "fresh optimizer");
    Opt from_buffer = target(initialised);
    check_load(from_buffer.get(), bytes, nullptr, e.status, e.mention);
    Opt from_file = target(initialised);
    check_load(from_file.get(), bytes, &path, e.status, e.mention);
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, HostileState, testing::ValuesIn(manifest()),
                         [](const testing::TestParamInfo<Entry>& info) {
                           return info.param.file.substr(0, info.param.file.find('.'));
                         });

TEST(HostileStateCorpus, EveryFileIsListedAndDocumented) {
  std::set<std::string> listed;
  for (const auto& e : manifest()) listed.insert(e.file);
  std::set<std::string> present;
  for (const auto& n : list_dir(hostile_dir()))
    if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) present.insert(n);
  EXPECT_EQ(listed, present);
  EXPECT_GE(listed.size(), 90u);
  const Bytes readme = read_bytes(hostile_dir() + "/README.md");
  const std::string text(readme.begin(), readme.end());
  for (const auto& f : listed)
    EXPECT_NE(text.find(f), std::string::npos) << f << " not in README.md";
}

// Every proper prefix of a valid file is refused (CORRUPT) and changes nothing.
TEST(HostileStateCorpus, EveryTruncationIsRefused) {
  for (const char* name : {"valid_mlx.safetensors", "valid_descent.safetensors"}) {
    const Bytes full = read_bytes(hostile_dir() + "/" + name);
    Opt opt = target(true);
    const auto state = state_snapshot(opt.get());
    for (std::size_t n = 0; n < full.size(); ++n) {
      const Bytes cut(full.begin(), full.begin() + static_cast<long>(n));
      const descent_status s =
          descent_optimizer_load_from_buffer(opt.get(), cut.data(), cut.size());
      ASSERT_EQ(s, DESCENT_ERR_CORRUPT)
          << name << " cut to " << n << " bytes: " << descent_status_name(s);
    }
    EXPECT_EQ(state_snapshot(opt.get()), state);
  }
}

// Every byte of a valid file replaced by a few values: the load succeeds or fails without a
// change (no crash, no partial load).
TEST(HostileStateCorpus, SingleByteCorruptionsLoadOrFailCleanly) {
  for (const char* name : {"valid_mlx.safetensors", "valid_descent.safetensors"}) {
    const Bytes full = read_bytes(hostile_dir() + "/" + name);
    std::size_t refused = 0, loaded = 0;
    for (std::size_t i = 0; i < full.size(); ++i) {
      for (const unsigned char v :
           {0x00, 0x22, 0x5b, 0x7b, 0xff, static_cast<int>(full[i] ^ 0x01)}) {
        if (v == full[i]) continue;
        Bytes bad = full;
        bad[i] = v;
        Opt opt = target(true);
        const auto state = state_snapshot(opt.get());
        const descent_status s =
            descent_optimizer_load_from_buffer(opt.get(), bad.data(), bad.size());
        if (s == DESCENT_OK) {
          ++loaded;  // e.g. a changed data byte: still a valid file
        } else {
          ++refused;
          ASSERT_EQ(state_snapshot(opt.get()), state) << name << " byte " << i << " = " << int(v);
          ASSERT_STRNE(descent_optimizer_last_error(opt.get()), "");
        }
      }
    }
    EXPECT_GT(refused, 0u);
    EXPECT_GT(loaded, 0u);
  }
}

// A header larger than the 100 MB limit is refused before it is parsed.
TEST(HostileStateCorpus, HeaderOverTheSizeLimit) {
  const uint64_t n = 100'000'001;
  Bytes big(8 + n, ' ');
  for (int i = 0; i < 8; ++i) big[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  big[8] = '{';
  big[8 + n - 1] = '}';
  Opt opt = target(true);
  const auto state = state_snapshot(opt.get());
  EXPECT_EQ(descent_optimizer_load_from_buffer(opt.get(), big.data(), big.size()),
            DESCENT_ERR_CORRUPT);
  EXPECT_NE(std::string(descent_optimizer_last_error(opt.get())).find("limit"), std::string::npos)
      << descent_optimizer_last_error(opt.get());
  EXPECT_EQ(state_snapshot(opt.get()), state);
}

}  // namespace
