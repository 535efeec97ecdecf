// The sharded optimizer over MPI (libdescent_mpi), run by ctest under
// mpirun -np {1,2,3,4}: exactness per kind against the single-process optimizer computed on
// each rank, the sharded clip, a rank's failing collective, mismatched declarations.
#include <gtest/gtest.h>
#include <mpi.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "descent/descent_mpi.h"
#include "distributed_support.h"

using namespace distributed_support;

namespace {

int rank_of() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int size_of() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

descent_collectives* mpi_collectives() {
  descent_collectives* c = nullptr;
  char err[DESCENT_ERROR_CAPACITY] = {};
  EXPECT_EQ(descent_mpi_collectives_create(MPI_COMM_WORLD, &c, err, sizeof err), DESCENT_OK) << err;
  return c;
}

class MpiExactness : public ::testing::TestWithParam<const char*> {};

TEST_P(MpiExactness, BitwiseEqualToSingleProcess) {
  const std::string kind = GetParam();
  const auto m = model();
  const Tensors ref = reference(kind, m, kSteps);
  descent_collectives* c = mpi_collectives();
  descent_optimizer* opt = make_optimizer(kind, m);
  ASSERT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK) << descent_optimizer_last_error(opt);
  Tensors t(m);
  for (int s = 0; s < kSteps; ++s) {
    t.grads_for(m, static_cast<uint64_t>(s));
    ASSERT_EQ(update(opt, m, t, s % 3), DESCENT_OK) << descent_optimizer_last_error(opt);
  }
  for (std::size_t k = 0; k < m.size(); ++k)
    EXPECT_EQ(t.p[k], ref.p[k]) << kind << " " << m[k].name;
  descent_optimizer_free(opt);
  descent_collectives_free(c);
}

INSTANTIATE_TEST_SUITE_P(Kinds, MpiExactness, ::testing::ValuesIn(kKinds),
                         [](const auto& info) { return std::string(info.param); });

TEST(Mpi, ShardedClipIsBitwiseTheSingleProcessClip) {
  const auto m = model();
  Tensors ref(m), t(m);
  ref.grads_for(m, 3);
  t.grads_for(m, 3);
  std::vector<descent_dtype> dt;
  std::vector<int64_t> nu;
  std::vector<void*> g, gg;
  for (std::size_t k = 0; k < m.size(); ++k) {
    dt.push_back(m[k].dtype);
    nu.push_back(m[k].numel());
    g.push_back(ref.g[k].data());
    gg.push_back(t.g[k].data());
  }
  double a = 0, b = 0;
  ASSERT_EQ(descent_clip_grad_norm(m.size(), dt.data(), nu.data(), g.data(), 0.25, &a, nullptr, 0),
            DESCENT_OK);
  descent_collectives* c = mpi_collectives();
  ASSERT_EQ(descent_collectives_clip_grad_norm(c, m.size(), dt.data(), nu.data(), gg.data(), 0.25,
                                               &b, nullptr, 0),
            DESCENT_OK);
  EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0);
  EXPECT_EQ(t.g, ref.g);
  descent_collectives_free(c);
}

// Collectives over MPI whose all-gatherv fails (after taking part) on the last rank at its
// `fail_at`-th call.
struct Faulty {
  int calls = 0;
  int fail_at = -1;
};
descent_status faulty_gather(void* buffer, const size_t* bytes, void* user_data, char* message,
                             size_t cap) {
  auto* f = static_cast<Faulty*>(user_data);
  const int n = size_of();
  std::vector<int> counts(n), displs(n);
  size_t at = 0;
  for (int r = 0; r < n; ++r) {
    counts[r] = static_cast<int>(bytes[r]);
    displs[r] = static_cast<int>(at);
    at += bytes[r];
  }
  MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, counts.data(), displs.data(), MPI_BYTE,
                 MPI_COMM_WORLD);
  if (f->calls++ == f->fail_at) {
    std::snprintf(message, cap, "injected");
    return DESCENT_ERR_IO;
  }
  return DESCENT_OK;
}
descent_status plain_reduce(double* v, size_t n, descent_reduce_op op, void*, char*, size_t) {
  MPI_Allreduce(MPI_IN_PLACE, v, static_cast<int>(n), MPI_DOUBLE,
                op == DESCENT_REDUCE_MAX ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD);
  return DESCENT_OK;
}

TEST(Mpi, FailingCollectiveOnOneRankFailsEveryRankAndChangesNothing) {
  const auto m = model();
  Faulty f;
  if (rank_of() == size_of() - 1) f.fail_at = 1;  // the second step's all-gather
  descent_collectives* c = nullptr;
  ASSERT_EQ(descent_collectives_create(static_cast<size_t>(rank_of()),
                                       static_cast<size_t>(size_of()), &c, nullptr, 0),
            DESCENT_OK);
  descent_collectives_set_allgatherv(c, faulty_gather, &f, nullptr, nullptr, 0);
  descent_collectives_set_allreduce(c, plain_reduce, nullptr, nullptr, nullptr, 0);
  descent_optimizer* opt = make_optimizer("adamw", m);
  ASSERT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK);
  Tensors t(m);
  t.grads_for(m, 0);
  ASSERT_EQ(update(opt, m, t, 0), DESCENT_OK);
  const Tensors after_one = t;
  t.grads_for(m, 1);
  EXPECT_EQ(update(opt, m, t, 1), DESCENT_ERR_IO) << descent_optimizer_last_error(opt);
  EXPECT_EQ(t.p, after_one.p);
  t.grads_for(m, 2);
  EXPECT_EQ(update(opt, m, t, 2), DESCENT_OK);
  // The same as two clean steps on the gradients of steps 0 and 2.
  descent_optimizer* single = make_optimizer("adamw", m);
  Tensors r(m);
  for (uint64_t s : {0, 2}) {
    r.grads_for(m, s);
    ASSERT_EQ(update(single, m, r, 0), DESCENT_OK);
  }
  EXPECT_EQ(t.p, r.p);
  descent_optimizer_free(single);
  descent_optimizer_free(opt);
  descent_collectives_free(c);
}

TEST(Mpi, MismatchedDeclarationsFailEveryRank) {
  auto m = model();
  if (rank_of() == size_of() - 1 && size_of() > 1) m[2].shape = {25};
  descent_collectives* c = mpi_collectives();
  descent_optimizer* opt = make_optimizer("adam", m);
  if (size_of() > 1) {
    EXPECT_EQ(descent_optimizer_shard(opt, c), DESCENT_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(descent_optimizer_last_error(opt)).find("shapes"), std::string::npos);
  } else {
    EXPECT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK);
  }
  descent_optimizer_free(opt);
  descent_collectives_free(c);
}

// Resharding resume through files (ctest mpi_np_reshard runs tests/mpi/reshard.sh: mpirun -np 4
// with DESCENT_RESHARD_PHASE=save, then -np 2 with "load2", then -np 1 with "load1", all with
// DESCENT_RESHARD_DIR set to one temporary directory). Skipped when those are not set. The
// parameters at each phase's start are the single-process run's (bitwise those of the sharded
// run, as MpiExactness checks).
TEST(Mpi, ReshardingResumeThroughFiles) {
  const char* phase_env = std::getenv("DESCENT_RESHARD_PHASE");
  const char* dir_env = std::getenv("DESCENT_RESHARD_DIR");
  if (!phase_env || !dir_env) GTEST_SKIP() << "DESCENT_RESHARD_PHASE/DIR not set";
  const std::string phase = phase_env, dir = dir_env;
  const auto m = model();
  for (const char* kind : {"adamw", "adafactor", "muon", "multi"}) {
    const std::string k = kind;
    // save: steps 0-2 on 4 ranks; load2: steps 3-4 on 2; load1: steps 5-6 on 1.
    const int first = phase == "save" ? 0 : phase == "load2" ? 3 : 5;
    const int steps = phase == "save" ? 3 : 2;
    descent_collectives* c = mpi_collectives();
    descent_optimizer* opt = make_optimizer(k, m);
    ASSERT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK) << descent_optimizer_last_error(opt);
    if (phase == "load2") {
      ASSERT_EQ(descent_optimizer_load_sharded(opt, (dir + "/" + k + "-4").c_str()), DESCENT_OK)
          << descent_optimizer_last_error(opt);
    }
    if (phase == "load1") {
      ASSERT_EQ(descent_optimizer_load_sharded(opt, (dir + "/" + k + "-2").c_str()), DESCENT_OK)
          << descent_optimizer_last_error(opt);
    }
    Tensors t = reference(k, m, first);
    for (int s = first; s < first + steps; ++s) {
      t.grads_for(m, static_cast<uint64_t>(s));
      ASSERT_EQ(update(opt, m, t, s % 3), DESCENT_OK) << descent_optimizer_last_error(opt);
    }
    const Tensors ref = reference(k, m, first + steps);
    for (std::size_t i = 0; i < m.size(); ++i) EXPECT_EQ(t.p[i], ref.p[i]) << k << " " << m[i].name;
    const std::string out = dir + "/" + k + "-" + std::to_string(size_of());
    EXPECT_EQ(descent_optimizer_save_sharded(opt, out.c_str()), DESCENT_OK)
        << descent_optimizer_last_error(opt);
    EXPECT_EQ(descent_optimizer_save_gathered(opt, (out + ".safetensors").c_str()), DESCENT_OK)
        << descent_optimizer_last_error(opt);
    if (phase == "load1") {  // the gathered files of the earlier phases load here too
      descent_optimizer* again = make_optimizer(k, m);
      ASSERT_EQ(descent_optimizer_shard(again, c), DESCENT_OK);
      ASSERT_EQ(descent_optimizer_load_gathered(again, (dir + "/" + k + "-4.safetensors").c_str()),
                DESCENT_OK)
          << descent_optimizer_last_error(again);
      Tensors u = reference(k, m, 3);
      for (int s = 3; s < 7; ++s) {
        u.grads_for(m, static_cast<uint64_t>(s));
        ASSERT_EQ(update(again, m, u, s % 3), DESCENT_OK) << descent_optimizer_last_error(again);
      }
      for (std::size_t i = 0; i < m.size(); ++i)
        EXPECT_EQ(u.p[i], ref.p[i]) << k << " gathered " << m[i].name;
      descent_optimizer_free(again);
    }
    descent_optimizer_free(opt);
    descent_collectives_free(c);
  }
}

// A rank killed by SIGKILL during a sharded save (ctest mpi_np_sigkill, tests/mpi/sigkill.sh;
// docs/distributed.md "Sharded save protocol and durability").
//
// Phase "kill": for adamw and muon (or DESCENT_KILL_KIND) in DESCENT_KILL_DIR/<kind>, a save after
// every step.
// With DESCENT_KILL_AT = N (1-5) the last rank raises SIGKILL on entering the N-th all-reduce of
// the save after step 3 (the save has 5: outcome and generation, shards durable, size/checksum
// table, agreement, final outcome; rank 0 renames index.json between the 4th and the 5th), or
// with "end" after the 5th returns; mpirun then ends every rank. With DESCENT_KILL_AT = "loop" it
// saves after each of 400 steps and the script kills a rank from outside at a random moment.
// Phase "check" (any number of ranks): a fresh optimizer loads the directory and must hold a
// complete checkpoint: the state after some k steps (k read from the loaded "step"; with
// DESCENT_KILL_EXPECT set, k must be that), which continues bit for bit as the uninterrupted
// run from step k.
struct Killer {
  int calls = 0;
  int kill_before = -1;  // SIGKILL on entering this all-reduce (1-based), on the last rank
  int kill_after = -1;   // SIGKILL after this all-reduce returns
};
descent_status killing_reduce(double* v, size_t n, descent_reduce_op op, void* user, char*,
                              size_t) {
  auto* k = static_cast<Killer*>(user);
  ++k->calls;
  if (k->calls == k->kill_before) std::raise(SIGKILL);
  MPI_Allreduce(MPI_IN_PLACE, v, static_cast<int>(n), MPI_DOUBLE,
                op == DESCENT_REDUCE_MAX ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD);
  if (k->calls == k->kill_after) std::raise(SIGKILL);
  return DESCENT_OK;
}

TEST(Mpi, SigkillDuringShardedSave) {
  const char* phase_env = std::getenv("DESCENT_KILL_PHASE");
  const char* dir_env = std::getenv("DESCENT_KILL_DIR");
  if (!phase_env || !dir_env) GTEST_SKIP() << "DESCENT_KILL_PHASE/DIR not set";
  const std::string phase = phase_env, dir = dir_env;
  const char* at_env = std::getenv("DESCENT_KILL_AT");
  const std::string at = at_env ? at_env : "";
  const auto m = model();
  const char* kinds_env = std::getenv("DESCENT_KILL_KIND");
  for (const char* kind : {"adamw", "muon"}) {
    if (kinds_env && std::string(kinds_env) != kind) continue;
    const std::string k = kind, path = dir + "/" + k;
    Faulty never;
    Killer killer;
    descent_collectives* c = nullptr;
    ASSERT_EQ(descent_collectives_create(static_cast<size_t>(rank_of()),
                                         static_cast<size_t>(size_of()), &c, nullptr, 0),
              DESCENT_OK);
    descent_collectives_set_allgatherv(c, faulty_gather, &never, nullptr, nullptr, 0);
    descent_collectives_set_allreduce(c, killing_reduce, &killer, nullptr, nullptr, 0);
    descent_optimizer* opt = make_optimizer(k, m);
    ASSERT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK) << descent_optimizer_last_error(opt);
    if (phase == "kill") {
      const int steps = at == "loop" ? 400 : 4;
      Tensors t(m);
      for (int s = 0; s < steps; ++s) {
        t.grads_for(m, static_cast<uint64_t>(s));
        ASSERT_EQ(update(opt, m, t, s % 3), DESCENT_OK) << descent_optimizer_last_error(opt);
        if (s == 3 && at != "loop" && rank_of() == size_of() - 1) {
          killer.calls = 0;
          if (at == "end")
            killer.kill_after = 5;
          else
            killer.kill_before = std::atoi(at.c_str());
        }
        ASSERT_EQ(descent_optimizer_save_sharded(opt, path.c_str()), DESCENT_OK)
            << descent_optimizer_last_error(opt);
        if (s == 3 && at != "loop") ADD_FAILURE() << "the save after step 4 was not killed";
      }
    } else {
      ASSERT_EQ(descent_optimizer_load_sharded(opt, path.c_str()), DESCENT_OK)
          << k << ": " << descent_optimizer_last_error(opt);
      uint64_t step = 0;
      ASSERT_EQ(descent_optimizer_state_get(opt, "step", DESCENT_UINT64, &step, 1), DESCENT_OK)
          << descent_optimizer_last_error(opt);
      if (const char* expect = std::getenv("DESCENT_KILL_EXPECT")) {
        EXPECT_EQ(step, std::strtoull(expect, nullptr, 10)) << k;
      }
      if (rank_of() == 0)
        std::printf("%s: the checkpoint loaded holds step %llu\n", kind,
                    static_cast<unsigned long long>(step));
      const int first = static_cast<int>(step);
      Tensors t = reference(k, m, first);
      for (int s = first; s < first + 2; ++s) {
        t.grads_for(m, static_cast<uint64_t>(s));
        ASSERT_EQ(update(opt, m, t, s % 3), DESCENT_OK) << descent_optimizer_last_error(opt);
      }
      const Tensors ref = reference(k, m, first + 2);
      for (std::size_t i = 0; i < m.size(); ++i)
        EXPECT_EQ(t.p[i], ref.p[i]) << k << " " << m[i].name;
    }
    descent_optimizer_free(opt);
    descent_collectives_free(c);
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (rank_of() != 0) {  // one rank reports; every rank's failures still fail the exit code
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0;
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}
