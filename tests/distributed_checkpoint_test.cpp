// Checkpoints of sharded optimizers over the in-process fake collectives: gathered and sharded
// saves, loads that reshard (4 -> 2 -> 1, 1 -> 3), continuing bit for bit; the gathered file is
// the single-process save byte for byte; a save that fails on one rank (I/O, a collective) leaves
// the previous checkpoint loadable; bad input fails every rank and changes nothing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "descent/descent.h"
#include "distributed_support.h"
#include "fake_collectives.h"

namespace {

using namespace distributed_support;

std::string temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/descent-ckpt-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  EXPECT_NE(mkdtemp(buf.data()), nullptr);
  return buf.data();
}

std::vector<unsigned char> bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// The single-process run: `steps` steps from the initial parameters; optionally its save.
Tensors single(const std::string& kind, int steps, const std::string& save_to = "") {
  const auto m = model();
  Tensors t(m);
  descent_optimizer* opt = make_optimizer(kind, m);
  for (int s = 0; s < steps; ++s) {
    t.grads_for(m, static_cast<uint64_t>(s));
    EXPECT_EQ(update(opt, m, t, s % 3), DESCENT_OK) << descent_optimizer_last_error(opt);
  }
  if (!save_to.empty()) {
    EXPECT_EQ(descent_optimizer_save(opt, save_to.c_str()), DESCENT_OK);
  }
  descent_optimizer_free(opt);
  return t;
}

using RankFn = std::function<void(std::size_t rank, descent_optimizer* opt)>;

// `world` ranks: shard, optionally load (load(rank, opt)), run steps [first, first + steps) from
// the parameters `start`, then after(rank, opt). Returns rank 0's parameters (checked equal on
// every rank).
Tensors phase(const std::string& kind, std::size_t world, const Tensors& start, int first,
              int steps, const RankFn& load, const RankFn& after) {
  const auto m = model();
  fake::World w(world);
  std::vector<Tensors> out(world, start);
  fake::run(world, [&](std::size_t r) {
    descent_collectives* c = w.make(r);
    descent_optimizer* opt = make_optimizer(kind, m);
    EXPECT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK) << descent_optimizer_last_error(opt);
    descent_collectives_free(c);
    if (load) load(r, opt);
    for (int s = first; s < first + steps; ++s) {
      out[r].grads_for(m, static_cast<uint64_t>(s));
      EXPECT_EQ(update(opt, m, out[r], s % 3), DESCENT_OK) << descent_optimizer_last_error(opt);
    }
    if (after) after(r, opt);
    descent_optimizer_free(opt);
  });
  for (std::size_t r = 1; r < world; ++r)
    for (std::size_t k = 0; k < m.size(); ++k) EXPECT_EQ(out[r].p[k], out[0].p[k]) << "rank " << r;
  return out[0];
}

void expect_equal(const Tensors& a, const Tensors& b, const std::string& what) {
  const auto m = model();
  for (std::size_t k = 0; k < m.size(); ++k) EXPECT_EQ(a.p[k], b.p[k]) << what << ": " << m[k].name;
}

RankFn save_both(const std::string& file, const std::string& dir) {
  return [=](std::size_t, descent_optimizer* opt) {
    EXPECT_EQ(descent_optimizer_save_gathered(opt, file.c_str()), DESCENT_OK)
        << descent_optimizer_last_error(opt);
    EXPECT_EQ(descent_optimizer_save_sharded(opt, dir.c_str()), DESCENT_OK)
        << descent_optimizer_last_error(opt);
  };
}
RankFn load_sharded(const std::string& dir) {
  return [=](std::size_t, descent_optimizer* opt) {
    EXPECT_EQ(descent_optimizer_load_sharded(opt, dir.c_str()), DESCENT_OK)
        << descent_optimizer_last_error(opt);
  };
}
RankFn load_gathered(const std::string& file) {
  return [=](std::size_t, descent_optimizer* opt) {
    EXPECT_EQ(descent_optimizer_load_gathered(opt, file.c_str()), DESCENT_OK)
        << descent_optimizer_last_error(opt);
  };
}

class Reshard : public ::testing::TestWithParam<const char*> {};

TEST_P(Reshard, FourToTwoToOneAndOneToThreeContinueBitForBit) {
  const std::string kind = GetParam();
  const std::string d = temp_dir();
  const auto m = model();
  const Tensors init(m);
  // 4 ranks: steps 0-2, both saves; the gathered file is the single-process save, byte for byte.
  const Tensors a = phase(kind, 4, init, 0, 3, nullptr, save_both(d + "/a.safetensors", d + "/a"));
  single(kind, 3, d + "/ref3.safetensors");
  EXPECT_EQ(bytes_of(d + "/a.safetensors"), bytes_of(d + "/ref3.safetensors"));
  expect_equal(a, single(kind, 3), "4 ranks, 3 steps");
  // 4 -> 2 (sharded), steps 3-4, save; 4 -> 2 (gathered) as well.
  const Tensors b =
      phase(kind, 2, a, 3, 2, load_sharded(d + "/a"), save_both(d + "/b.safetensors", d + "/b"));
  const Tensors ref5 = single(kind, 5, d + "/ref5.safetensors");
  expect_equal(b, ref5, "4 -> 2 ranks (sharded), 5 steps");
  EXPECT_EQ(bytes_of(d + "/b.safetensors"), bytes_of(d + "/ref5.safetensors"));
  expect_equal(phase(kind, 2, a, 3, 2, load_gathered(d + "/a.safetensors"), nullptr), ref5,
               "4 -> 2 ranks (gathered), 5 steps");
  // 2 -> 1 (sharded), steps 5-6, save (a 1-rank checkpoint).
  const Tensors c =
      phase(kind, 1, b, 5, 2, load_sharded(d + "/b"), save_both(d + "/c.safetensors", d + "/c"));
  const Tensors ref7 = single(kind, 7, d + "/ref7.safetensors");
  expect_equal(c, ref7, "2 -> 1 rank (sharded), 7 steps");
  EXPECT_EQ(bytes_of(d + "/c.safetensors"), bytes_of(d + "/ref7.safetensors"));
  expect_equal(phase(kind, 1, b, 5, 2, load_gathered(d + "/b.safetensors"), nullptr), ref7,
               "2 -> 1 rank (gathered), 7 steps");
  // 1 -> 3, both forms, steps 7-8.
  const Tensors ref9 = single(kind, 9);
  expect_equal(phase(kind, 3, c, 7, 2, load_sharded(d + "/c"), nullptr), ref9,
               "1 -> 3 ranks (sharded)");
  expect_equal(phase(kind, 3, c, 7, 2, load_gathered(d + "/c.safetensors"), nullptr), ref9,
               "1 -> 3 ranks (gathered)");
  // The single-process save loads into 3 ranks too, and a 4-rank sharded save into 3.
  expect_equal(phase(kind, 3, c, 7, 2, load_gathered(d + "/ref7.safetensors"), nullptr), ref9,
               "single-process file -> 3 ranks");
  expect_equal(phase(kind, 3, a, 3, 2, load_sharded(d + "/a"), nullptr), ref5,
               "4 -> 3 ranks (sharded)");
}

INSTANTIATE_TEST_SUITE_P(Kinds, Reshard,
                         ::testing::Values("adamw", "adafactor", "muon", "multi", "sgd", "lion"),
                         [](const auto& info) { return std::string(info.param); });

TEST(DistributedCheckpoint, SaveBeforeInitAndUnshardedForms) {
  const std::string d = temp_dir();
  const auto m = model();
  // Before the first step: only step and learning_rate, as the single-process save.
  phase("adamw", 3, Tensors(m), 0, 0, nullptr, save_both(d + "/u.safetensors", d + "/u"));
  single("adamw", 0, d + "/ref0.safetensors");
  EXPECT_EQ(bytes_of(d + "/u.safetensors"), bytes_of(d + "/ref0.safetensors"));
  expect_equal(phase("adamw", 2, Tensors(m), 0, 3, load_sharded(d + "/u"), nullptr),
               single("adamw", 3), "uninitialised checkpoint");
  // Not sharded: the gathered forms are save and load; the sharded forms refuse.
  descent_optimizer* opt = make_optimizer("adamw", m);
  Tensors t(m);
  for (int s = 0; s < 2; ++s) {
    t.grads_for(m, static_cast<uint64_t>(s));
    ASSERT_EQ(update(opt, m, t, s % 3), DESCENT_OK);
  }
  ASSERT_EQ(descent_optimizer_save_gathered(opt, (d + "/g.safetensors").c_str()), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_save(opt, (d + "/s.safetensors").c_str()), DESCENT_OK);
  EXPECT_EQ(bytes_of(d + "/g.safetensors"), bytes_of(d + "/s.safetensors"));
  EXPECT_EQ(descent_optimizer_load_gathered(opt, (d + "/g.safetensors").c_str()), DESCENT_OK);
  EXPECT_EQ(descent_optimizer_save_sharded(opt, (d + "/x").c_str()), DESCENT_ERR_INVALID_STATE);
  EXPECT_EQ(descent_optimizer_load_sharded(opt, (d + "/x").c_str()), DESCENT_ERR_INVALID_STATE);
  EXPECT_FALSE(exists(d + "/x"));
  EXPECT_EQ(descent_optimizer_save_gathered(nullptr, "p"), DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_load_sharded(nullptr, "p"), DESCENT_ERR_NULL_ARGUMENT);
  descent_optimizer_free(opt);
  // A group handle of a multi optimizer is refused.
  descent_optimizer* multi = make_optimizer("multi", m);
  descent_optimizer* group = nullptr;
  ASSERT_EQ(descent_multi_group(multi, 0, &group), DESCENT_OK);
  EXPECT_EQ(descent_optimizer_save_gathered(group, "p"), DESCENT_ERR_INVALID_STATE);
  EXPECT_EQ(descent_optimizer_load_sharded(group, "p"), DESCENT_ERR_INVALID_STATE);
  descent_optimizer_free(multi);
}

// Runs `world` ranks of adamw for `steps` steps, then body(rank, opt, world) on each.
void with_ranks(std::size_t world, int steps, fake::World& w,
                const std::function<void(std::size_t, descent_optimizer*)>& body,
                const std::vector<Param>& m = model()) {
  fake::run(world, [&](std::size_t r) {
    descent_collectives* c = w.make(r);
    descent_optimizer* opt = make_optimizer("adamw", m);
    EXPECT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK);
    descent_collectives_free(c);
    Tensors t(m);
    for (int s = 0; s < steps; ++s) {
      t.grads_for(m, static_cast<uint64_t>(s));
      EXPECT_EQ(update(opt, m, t, s % 3), DESCENT_OK);
    }
    body(r, opt);
    descent_optimizer_free(opt);
  });
}

TEST(DistributedCheckpoint, FailedShardedSaveLeavesThePreviousCheckpoint) {
  const std::string d = temp_dir(), dir = d + "/ckpt";
  const auto m = model();
  const Tensors start2 = single("adamw", 2);
  const Tensors ref4 = single("adamw", 4);
  fake::World w(4);
  std::vector<std::size_t> base(4);
  std::atomic<int> mode{0};
  w.fail = [&](std::size_t rank, std::size_t call, bool) {
    // mode 1: rank 1's table all-reduce (the third collective of the save) fails.
    return mode == 1 && rank == 1 && call == base[rank] + 2 ? DESCENT_ERR_CALLBACK : DESCENT_OK;
  };
  with_ranks(4, 2, w, [&](std::size_t r, descent_optimizer* opt) {
    ASSERT_EQ(descent_optimizer_save_sharded(opt, dir.c_str()), DESCENT_OK)
        << descent_optimizer_last_error(opt);  // generation 1: the checkpoint to keep
    // A crash during an earlier save left files of generation 5 and no index naming them.
    if (r == 0) write_bytes(dir + "/shard-g5-r0-of-4.safetensors", {1, 2, 3});
    // An I/O failure on rank 2 after the other ranks wrote their shards: rank 2's file name is
    // taken by a directory, so its rename fails.
    if (r == 0) {
      ASSERT_EQ(::mkdir((dir + "/shard-g6-r2-of-4.safetensors").c_str(), 0777), 0);
    }
  });
  const std::vector<unsigned char> index1 = bytes_of(dir + "/index.json");
  // Run two more steps, then the failing saves.
  fake::World w2(4);
  w2.fail = w.fail;
  std::vector<descent_status> io(4), coll(4);
  std::vector<std::string> io_msg(4);
  with_ranks(4, 3, w2, [&](std::size_t r, descent_optimizer* opt) {
    io[r] = descent_optimizer_save_sharded(opt, dir.c_str());
    io_msg[r] = descent_optimizer_last_error(opt);
    base[r] = w2.calls(r);
    if (r == 0) {  // before any rank can write its shard of the next save (after its first vote)
      ::rmdir((dir + "/shard-g6-r2-of-4.safetensors").c_str());
      mode = 1;
    }
    coll[r] = descent_optimizer_save_sharded(opt, dir.c_str());
  });
  for (std::size_t r = 0; r < 4; ++r) {
    EXPECT_EQ(io[r], DESCENT_ERR_IO) << r << ": " << io_msg[r];
    EXPECT_EQ(coll[r], DESCENT_ERR_CALLBACK) << r;
  }
  EXPECT_NE(io_msg[2].find("shard-g6-r2-of-4"), std::string::npos) << io_msg[2];
  EXPECT_NE(io_msg[0].find("failed on rank 2"), std::string::npos) << io_msg[0];
  EXPECT_EQ(bytes_of(dir + "/index.json"), index1) << "the index still names generation 1";
  EXPECT_FALSE(exists(dir + "/shard-g6-r0-of-4.safetensors")) << "failed saves clean up";
  EXPECT_FALSE(exists(dir + "/shard-g7-r0-of-4.safetensors"));
  // The previous checkpoint (after step 2) loads on 2 ranks and continues bit for bit.
  expect_equal(phase("adamw", 2, start2, 2, 2, load_sharded(dir), nullptr), ref4,
               "after failed saves");
  // The next successful save skips every generation seen (g5) and removes the older files.
  phase("adamw", 2, start2, 2, 0, load_sharded(dir), [&](std::size_t, descent_optimizer* opt) {
    EXPECT_EQ(descent_optimizer_save_sharded(opt, dir.c_str()), DESCENT_OK)
        << descent_optimizer_last_error(opt);
  });
  EXPECT_TRUE(exists(dir + "/shard-g6-r1-of-2.safetensors"));
  EXPECT_FALSE(exists(dir + "/shard-g1-r0-of-4.safetensors"));
  EXPECT_FALSE(exists(dir + "/shard-g5-r0-of-4.safetensors"));
  expect_equal(phase("adamw", 3, start2, 2, 2, load_sharded(dir), nullptr), ref4, "generation 6");
}

// Each rank's status and message of body(rank, opt), on 3 ranks of adamw after 2 steps; checks
// that the state is unchanged (a gathered save before and after is the same file).
struct Failure {
  std::vector<descent_status> status = std::vector<descent_status>(3);
  std::vector<std::string> message = std::vector<std::string>(3);
};
Failure fails_everywhere(const std::string& d,
                         const std::function<descent_status(std::size_t, descent_optimizer*)>& body,
                         const std::vector<Param>& m = model()) {
  Failure f;
  fake::World w(3);
  with_ranks(
      3, 2, w,
      [&](std::size_t r, descent_optimizer* opt) {
        EXPECT_EQ(descent_optimizer_save_gathered(opt, (d + "/before.safetensors").c_str()),
                  DESCENT_OK);
        f.status[r] = body(r, opt);
        f.message[r] = descent_optimizer_last_error(opt);
        EXPECT_EQ(descent_optimizer_save_gathered(opt, (d + "/after.safetensors").c_str()),
                  DESCENT_OK);
      },
      m);
  EXPECT_EQ(bytes_of(d + "/before.safetensors"), bytes_of(d + "/after.safetensors"))
      << "state changed";
  for (std::size_t r = 0; r < 3; ++r) EXPECT_NE(f.status[r], DESCENT_OK) << r;
  return f;
}

TEST(DistributedCheckpoint, BadInputFailsEveryRankAndChangesNothing) {
  const std::string d = temp_dir();
  const auto m = model();
  // A 2-step checkpoint of both forms from 4 ranks, and a file of another kind.
  phase("adamw", 4, Tensors(m), 0, 2, nullptr, save_both(d + "/good.safetensors", d + "/good"));
  phase("adam", 2, Tensors(m), 0, 1, nullptr, save_both(d + "/adam.safetensors", d + "/adam"));

  // NULL or empty path on one rank.
  Failure f = fails_everywhere(d, [&](std::size_t r, descent_optimizer* opt) {
    return descent_optimizer_save_gathered(opt, r == 1 ? nullptr : (d + "/x.safetensors").c_str());
  });
  EXPECT_EQ(f.status[1], DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(f.status[0], DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_NE(f.message[0].find("failed on rank 1"), std::string::npos) << f.message[0];
  EXPECT_FALSE(exists(d + "/x.safetensors"));
  f = fails_everywhere(d, [&](std::size_t r, descent_optimizer* opt) {
    return descent_optimizer_load_sharded(opt, r == 2 ? "" : (d + "/good").c_str());
  });
  EXPECT_EQ(f.status[2], DESCENT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(f.status[0], DESCENT_ERR_INVALID_ARGUMENT);
  f = fails_everywhere(d, [&](std::size_t r, descent_optimizer* opt) {
    return descent_optimizer_save_sharded(opt, r == 0 ? nullptr : (d + "/y").c_str());
  });
  EXPECT_EQ(f.status[2], DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_FALSE(exists(d + "/y/index.json"));

  // Missing files; another kind; different files on different ranks.
  f = fails_everywhere(d, [&](std::size_t, descent_optimizer* opt) {
    return descent_optimizer_load_gathered(opt, (d + "/missing.safetensors").c_str());
  });
  for (auto s : f.status) EXPECT_EQ(s, DESCENT_ERR_IO);
  EXPECT_NE(f.message[0].find("missing.safetensors"), std::string::npos) << f.message[0];
  f = fails_everywhere(d, [&](std::size_t, descent_optimizer* opt) {
    return descent_optimizer_load_sharded(opt, (d + "/nothing").c_str());
  });
  for (auto s : f.status) EXPECT_EQ(s, DESCENT_ERR_IO);
  f = fails_everywhere(d, [&](std::size_t, descent_optimizer* opt) {
    return descent_optimizer_load_gathered(opt, (d + "/adam.safetensors").c_str());
  });
  for (auto s : f.status) EXPECT_EQ(s, DESCENT_ERR_INVALID_ARGUMENT);
  f = fails_everywhere(d, [&](std::size_t, descent_optimizer* opt) {
    return descent_optimizer_load_sharded(opt, (d + "/adam").c_str());
  });
  for (auto s : f.status) EXPECT_EQ(s, DESCENT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(f.message[1].find("'adam'"), std::string::npos) << f.message[1];
  f = fails_everywhere(d, [&](std::size_t r, descent_optimizer* opt) {
    return descent_optimizer_load_gathered(
        opt, (d + (r == 1 ? "/ref.safetensors" : "/good.safetensors")).c_str());
  });
  single("adamw", 3, d + "/ref.safetensors");
  // (ref.safetensors did not exist yet: rank 1 failed with IO; now a real different file.)
  f = fails_everywhere(d, [&](std::size_t r, descent_optimizer* opt) {
    return descent_optimizer_load_gathered(
        opt, (d + (r == 1 ? "/ref.safetensors" : "/good.safetensors")).c_str());
  });
  for (auto s : f.status) EXPECT_EQ(s, DESCENT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(f.message[2].find("different files"), std::string::npos) << f.message[2];

  // Other declarations: the plan's fingerprint differs (sharded); the shapes differ (gathered).
  auto other = m;
  other[1].shape = {24, 16};
  f = fails_everywhere(
      d,
      [&](std::size_t, descent_optimizer* opt) {
        return descent_optimizer_load_sharded(opt, (d + "/good").c_str());
      },
      other);
  for (auto s : f.status) EXPECT_EQ(s, DESCENT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(f.message[0].find("partition plan"), std::string::npos) << f.message[0];
  f = fails_everywhere(
      d,
      [&](std::size_t, descent_optimizer* opt) {
        return descent_optimizer_load_gathered(opt, (d + "/good.safetensors").c_str());
      },
      other);
  for (auto s : f.status) EXPECT_EQ(s, DESCENT_ERR_SHAPE_MISMATCH);

  // Damaged files: a shard's byte flipped (its checksum), a truncated index, a truncated file.
  const std::string shard = d + "/good/shard-g1-r3-of-4.safetensors";
  std::vector<unsigned char> b = bytes_of(shard);
  ASSERT_FALSE(b.empty());
  b[b.size() - 1] ^= 1;
  write_bytes(shard, b);
  f = fails_everywhere(d, [&](std::size_t, descent_optimizer* opt) {
    return descent_optimizer_load_sharded(opt, (d + "/good").c_str());
  });
  for (auto s : f.status) EXPECT_EQ(s, DESCENT_ERR_CORRUPT);
  EXPECT_NE(f.message[2].find("checksum"), std::string::npos) << f.message[2];
  b[b.size() - 1] ^= 1;
  write_bytes(shard, b);
  const std::vector<unsigned char> index = bytes_of(d + "/good/index.json");
  write_bytes(d + "/good/index.json",
              std::vector<unsigned char>(index.begin(), index.begin() + 40));
  f = fails_everywhere(d, [&](std::size_t, descent_optimizer* opt) {
    return descent_optimizer_load_sharded(opt, (d + "/good").c_str());
  });
  for (auto s : f.status) EXPECT_EQ(s, DESCENT_ERR_CORRUPT);
  write_bytes(d + "/good/index.json", index);
  const std::vector<unsigned char> whole = bytes_of(d + "/good.safetensors");
  write_bytes(d + "/cut.safetensors", std::vector<unsigned char>(whole.begin(), whole.end() - 5));
  f = fails_everywhere(d, [&](std::size_t, descent_optimizer* opt) {
    return descent_optimizer_load_gathered(opt, (d + "/cut.safetensors").c_str());
  });
  for (auto s : f.status) EXPECT_EQ(s, DESCENT_ERR_CORRUPT);
  // The repaired checkpoint loads.
  expect_equal(phase("adamw", 3, single("adamw", 2), 2, 1, load_sharded(d + "/good"), nullptr),
               single("adamw", 3), "repaired");
}

TEST(DistributedCheckpoint, PlainSaveAndLoadStillRefuseASharedOptimizer) {
  fake::World w(2);
  with_ranks(2, 1, w, [&](std::size_t, descent_optimizer* opt) {
    EXPECT_EQ(descent_optimizer_save(opt, "/tmp/never"), DESCENT_ERR_INVALID_STATE);
    std::size_t size = 0;
    EXPECT_EQ(descent_optimizer_save_to_buffer(opt, nullptr, 0, &size), DESCENT_ERR_INVALID_STATE);
  });
}

}  // namespace
