// Sharded optimizer state over the in-process fake collectives (tests/fake_collectives.h): every
// kind on 1-4 ranks bitwise equal to the single-process optimizer, failures on one rank failing
// every rank with nothing changed, mismatched declarations, the sharded clip, bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "descent/descent.h"
#include "distributed_support.h"
#include "fake_collectives.h"

namespace {

using namespace distributed_support;

class Exactness : public ::testing::TestWithParam<std::tuple<const char*, int>> {};

TEST_P(Exactness, BitwiseEqualToSingleProcess) {
  const std::string kind = std::get<0>(GetParam());
  const std::size_t world = static_cast<std::size_t>(std::get<1>(GetParam()));
  const auto m = model();
  std::size_t ref_state = 0;
  const Tensors ref = reference(kind, m, kSteps, &ref_state);
  fake::World w(world);
  std::vector<Tensors> out(world, Tensors(m));
  std::vector<std::size_t> state(world), scratch(world);
  fake::run(world, [&](std::size_t r) {
    descent_collectives* c = w.make(r);
    descent_optimizer* opt = make_optimizer(kind, m);
    EXPECT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK) << descent_optimizer_last_error(opt);
    descent_collectives_free(c);  // the optimizer keeps its reference
    Tensors& t = out[r];
    for (int s = 0; s < kSteps; ++s) {
      t.grads_for(m, s);
      EXPECT_EQ(update(opt, m, t, s % 3), DESCENT_OK) << descent_optimizer_last_error(opt);
    }
    descent_optimizer_state_bytes(opt, &state[r], &scratch[r]);
    descent_optimizer_free(opt);
  });
  std::size_t total_state = 0;
  for (std::size_t r = 0; r < world; ++r) {
    total_state += state[r];
    for (std::size_t k = 0; k < m.size(); ++k)
      EXPECT_TRUE(out[r].p[k] == ref.p[k])
          << kind << " world " << world << " rank " << r << " parameter " << m[k].name;
  }
  EXPECT_EQ(total_state, ref_state) << "the shards together hold exactly the state";
}

INSTANTIATE_TEST_SUITE_P(Kinds, Exactness,
                         ::testing::Combine(::testing::ValuesIn(kKinds),
                                            ::testing::Values(1, 2, 3, 4)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" +
                                  std::to_string(std::get<1>(info.param)) + "ranks";
                         });

TEST(Distributed, StateIsDividedAmongRanks) {
  // A larger elementwise model: each rank holds about 1/world of the state.
  std::vector<Param> m{{"a", DESCENT_FLOAT32, {1000, 100}}, {"b", DESCENT_FLOAT32, {333}}};
  const std::size_t world = 4;
  fake::World w(world);
  std::vector<std::size_t> state(world);
  fake::run(world, [&](std::size_t r) {
    descent_collectives* c = w.make(r);
    descent_optimizer* opt = make_optimizer("adamw", m);
    ASSERT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK);
    descent_optimizer_state_bytes(opt, &state[r], nullptr);  // before init: what init allocates
    descent_optimizer_free(opt);
    descent_collectives_free(c);
  });
  const double per_rank = 2.0 * 4 * (100000 + 333) / world;
  for (std::size_t r = 0; r < world; ++r) EXPECT_NEAR(state[r], per_rank, 2 * 4 * 16.0);
}

// Runs `steps` sharded steps on `world` ranks of adam; `fail` injects faults; returns per rank
// the statuses and final tensors.
struct Outcome {
  std::vector<std::vector<descent_status>> status;
  std::vector<Tensors> tensors;
  std::vector<std::string> messages;
};

Outcome run_with(
    std::size_t world, int steps, fake::World& w,
    const std::function<void(std::size_t, int, Tensors&, descent_optimizer*)>& before = nullptr,
    const std::string& kind = "adam") {
  const auto m = model();
  Outcome o{std::vector<std::vector<descent_status>>(world),
            std::vector<Tensors>(world, Tensors(m)), std::vector<std::string>(world)};
  fake::run(world, [&](std::size_t r) {
    descent_collectives* c = w.make(r);
    descent_optimizer* opt = make_optimizer(kind, m);
    EXPECT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK);
    for (int s = 0; s < steps; ++s) {
      o.tensors[r].grads_for(m, static_cast<uint64_t>(s));
      if (before) before(r, s, o.tensors[r], opt);
      o.status[r].push_back(update(opt, m, o.tensors[r], 0));
      if (o.status[r].back() != DESCENT_OK) o.messages[r] = descent_optimizer_last_error(opt);
    }
    descent_optimizer_free(opt);
    descent_collectives_free(c);
  });
  return o;
}

TEST(Distributed, FailingGatherOnOneRankFailsEveryRankAndChangesNothing) {
  const std::size_t world = 3;
  fake::World w(world);
  // Calls per rank: shard makes 2 all-reduces; each step an all-gather then an all-reduce.
  // Fail rank 1's all-gather of the second step (call 2 + 2 = 4).
  w.fail = [](std::size_t rank, std::size_t call, bool) {
    return rank == 1 && call == 4 ? DESCENT_ERR_IO : DESCENT_OK;
  };
  const Outcome o = run_with(world, 4, w);
  const auto m = model();
  // Step 1 failed everywhere; steps 0, 2, 3 succeeded: the same as 3 clean steps on gradients
  // of steps 0, 2, 3.
  Tensors ref(m);
  descent_optimizer* opt = make_optimizer("adam", m);
  for (int s : {0, 2, 3}) {
    ref.grads_for(m, static_cast<uint64_t>(s));
    ASSERT_EQ(update(opt, m, ref, 0), DESCENT_OK);
  }
  descent_optimizer_free(opt);
  for (std::size_t r = 0; r < world; ++r) {
    EXPECT_EQ(o.status[r][0], DESCENT_OK);
    EXPECT_EQ(o.status[r][1], DESCENT_ERR_IO) << "rank " << r;
    EXPECT_EQ(o.status[r][2], DESCENT_OK);
    EXPECT_EQ(o.status[r][3], DESCENT_OK);
    if (r == 1)
      EXPECT_NE(o.messages[r].find("injected failure"), std::string::npos) << o.messages[r];
    else
      EXPECT_NE(o.messages[r].find("failed on rank 1"), std::string::npos) << o.messages[r];
    for (std::size_t k = 0; k < m.size(); ++k)
      EXPECT_EQ(o.tensors[r].p[k], ref.p[k]) << "rank " << r << " " << m[k].name;
  }
}

TEST(Distributed, BadInputOnOneRankFailsEveryRank) {
  const std::size_t world = 2;
  fake::World w(world);
  const auto m = model();
  std::vector<descent_status> st(world);
  std::vector<std::string> msg(world);
  std::vector<Tensors> t(world, Tensors(m));
  fake::run(world, [&](std::size_t r) {
    descent_collectives* c = w.make(r);
    descent_optimizer* opt = make_optimizer("lion", m);
    ASSERT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK);
    t[r].grads_for(m, 0);
    const char* names[] = {r == 1 ? "no_such" : "scale"};
    void* p[] = {t[r].p[4].data()};
    const void* g[] = {t[r].g[4].data()};
    st[r] = descent_optimizer_update(opt, 1, names, nullptr, nullptr, p, g);
    msg[r] = descent_optimizer_last_error(opt);
    std::size_t count = 0;
    descent_optimizer_state_count(opt, &count);
    descent_optimizer_free(opt);
    descent_collectives_free(c);
  });
  EXPECT_EQ(st[1], DESCENT_ERR_UNKNOWN_KEY);
  EXPECT_NE(msg[1].find("no_such"), std::string::npos);
  EXPECT_EQ(st[0], DESCENT_ERR_UNKNOWN_KEY);
  EXPECT_NE(msg[0].find("failed on rank 1"), std::string::npos) << msg[0];
  EXPECT_EQ(t[0].p[4], Tensors(m).p[4]);
}

TEST(Distributed, DifferentTensorSetsAcrossRanksAreRefused) {
  const std::size_t world = 2;
  fake::World w(world);
  const auto m = model();
  std::vector<descent_status> st(world);
  fake::run(world, [&](std::size_t r) {
    descent_collectives* c = w.make(r);
    descent_optimizer* opt = make_optimizer("adam", m);
    ASSERT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK);
    Tensors t(m);
    t.grads_for(m, 0);
    const std::size_t idx[] = {r};
    void* p[] = {t.p[r].data()};
    const void* g[] = {t.g[r].data()};
    st[r] = descent_optimizer_update_indexed(opt, 1, idx, nullptr, nullptr, p, g);
    EXPECT_EQ(t.p[r], Tensors(m).p[r]);
    descent_optimizer_free(opt);
    descent_collectives_free(c);
  });
  EXPECT_EQ(st[0], DESCENT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(st[1], DESCENT_ERR_INVALID_ARGUMENT);
}

TEST(Distributed, FinalAgreementFailureIsDetectedAtTheNextStep) {
  const std::size_t world = 2;
  fake::World w(world);
  // Rank 0's vote of step 0 (call 2 + 1 = 3) fails after exchanging: rank 1 commits, rank 0
  // cannot know and restores; the next step fails on both (step counts differ).
  w.fail = [](std::size_t rank, std::size_t call, bool) {
    return rank == 0 && call == 3 ? DESCENT_ERR_CALLBACK : DESCENT_OK;
  };
  const Outcome o = run_with(world, 2, w);
  EXPECT_EQ(o.status[0][0], DESCENT_ERR_CALLBACK);
  EXPECT_EQ(o.status[1][0], DESCENT_OK);
  EXPECT_EQ(o.status[0][1], DESCENT_ERR_INVALID_STATE);
  EXPECT_EQ(o.status[1][1], DESCENT_ERR_INVALID_STATE);
  EXPECT_NE(o.messages[1].find("number of completed steps"), std::string::npos) << o.messages[1];
}

// Each rank declares through `declare(rank, opt)`; returns shard's status and message per rank.
std::vector<std::pair<descent_status, std::string>> shard_with(
    std::size_t world, const std::function<descent_optimizer*(std::size_t)>& make) {
  fake::World w(world);
  std::vector<std::pair<descent_status, std::string>> out(world);
  fake::run(world, [&](std::size_t r) {
    descent_collectives* c = w.make(r);
    descent_optimizer* opt = make(r);
    out[r].first = descent_optimizer_shard(opt, c);
    out[r].second = descent_optimizer_last_error(opt);
    bool sharded = true;
    descent_optimizer_shard_info(opt, &sharded, nullptr, nullptr);
    EXPECT_EQ(sharded, out[r].first == DESCENT_OK);
    descent_optimizer_free(opt);
    descent_collectives_free(c);
  });
  return out;
}

TEST(Distributed, MismatchedDeclarationsAreDetectedOnEveryRank) {
  const auto m = model();
  auto check = [](const std::vector<std::pair<descent_status, std::string>>& out,
                  const char* what) {
    for (const auto& [s, msg] : out) {
      EXPECT_EQ(s, DESCENT_ERR_INVALID_ARGUMENT) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
    }
  };
  check(shard_with(3,
                   [&](std::size_t r) {
                     auto mm = m;
                     if (r == 2) mm[1].shape = {16, 25};
                     return make_optimizer("adam", mm);
                   }),
        "shapes");
  check(shard_with(2,
                   [&](std::size_t r) {
                     auto mm = m;
                     if (r == 1) mm[0].name = "embedding.weight";
                     return make_optimizer("adam", mm);
                   }),
        "names");
  check(shard_with(2,
                   [&](std::size_t r) {
                     auto mm = m;
                     if (r == 0) mm.pop_back();
                     return make_optimizer("adam", mm);
                   }),
        "numbers of parameters");
  check(shard_with(2, [&](std::size_t r) { return make_optimizer(r ? "adam" : "adamw", m); }),
        "different kinds");
}

TEST(Distributed, ShardBadInput) {
  descent_collectives* c = nullptr;
  char err[DESCENT_ERROR_CAPACITY];
  EXPECT_EQ(descent_collectives_create(0, 0, &c, err, sizeof err), DESCENT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("world_size"), std::string::npos);
  EXPECT_EQ(descent_collectives_create(2, 2, &c, err, sizeof err), DESCENT_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(descent_collectives_create(0, 1, nullptr, err, sizeof err), DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(c, nullptr);
  ASSERT_EQ(descent_collectives_create(0, 1, &c, err, sizeof err), DESCENT_OK);
  std::size_t rank = 9, world = 9;
  EXPECT_EQ(descent_collectives_rank(c, &rank, &world, nullptr, 0), DESCENT_OK);
  EXPECT_EQ(rank, 0u);
  EXPECT_EQ(world, 1u);
  EXPECT_EQ(descent_collectives_rank(nullptr, &rank, &world, nullptr, 0),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_collectives_set_allgatherv(c, nullptr, nullptr, nullptr, nullptr, 0),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_collectives_set_allreduce(c, nullptr, nullptr, nullptr, nullptr, 0),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_collectives_set_allreduce(nullptr, nullptr, nullptr, nullptr, nullptr, 0),
            DESCENT_ERR_NULL_ARGUMENT);
  const auto m = model();
  descent_optimizer* opt = make_optimizer("adam", m);
  // No operations set yet.
  EXPECT_EQ(descent_optimizer_shard(opt, c), DESCENT_ERR_INVALID_STATE);
  EXPECT_NE(std::string(descent_optimizer_last_error(opt)).find("all-gatherv"), std::string::npos);
  EXPECT_EQ(descent_optimizer_shard(opt, nullptr), DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_shard(nullptr, c), DESCENT_ERR_NULL_ARGUMENT);
  descent_collectives_free(c);
  fake::World w(1);
  c = w.make(0);
  // Already initialised.
  descent_optimizer* inited = make_optimizer("adam", m);
  ASSERT_EQ(descent_optimizer_init(inited), DESCENT_OK);
  EXPECT_EQ(descent_optimizer_shard(inited, c), DESCENT_ERR_INVALID_STATE);
  descent_optimizer_free(inited);
  // A group handle.
  descent_optimizer* multi = make_optimizer("multi", m);
  descent_optimizer* group = nullptr;
  ASSERT_EQ(descent_multi_group(multi, 0, &group), DESCENT_OK);
  EXPECT_EQ(descent_optimizer_shard(group, c), DESCENT_ERR_INVALID_STATE);
  ASSERT_EQ(descent_optimizer_shard(multi, c), DESCENT_OK);
  EXPECT_EQ(descent_multi_add_group(multi, "sgd", nullptr, nullptr), DESCENT_ERR_INVALID_STATE);
  EXPECT_EQ(descent_multi_filter_name(multi, 0, "x*"), DESCENT_ERR_INVALID_STATE);
  std::size_t gs = 0, gscratch = 1;
  EXPECT_EQ(descent_optimizer_state_bytes(group, &gs, &gscratch), DESCENT_OK);
  descent_optimizer_free(multi);
  // Sharded: declarations fixed, plain save/load refused, sharding twice refused.
  ASSERT_EQ(descent_optimizer_shard(opt, c), DESCENT_OK);
  EXPECT_EQ(descent_optimizer_shard(opt, c), DESCENT_ERR_INVALID_STATE);
  const int64_t shape[] = {2};
  EXPECT_EQ(descent_optimizer_add_parameter(opt, "late", DESCENT_FLOAT32, 1, shape),
            DESCENT_ERR_INVALID_STATE);
  EXPECT_EQ(descent_optimizer_save(opt, "/tmp/descent_sharded_refused.safetensors"),
            DESCENT_ERR_INVALID_STATE);
  std::size_t size = 0;
  EXPECT_EQ(descent_optimizer_save_to_buffer(opt, nullptr, 0, &size), DESCENT_ERR_INVALID_STATE);
  bool sharded = false;
  EXPECT_EQ(descent_optimizer_shard_info(opt, &sharded, &rank, &world), DESCENT_OK);
  EXPECT_TRUE(sharded);
  EXPECT_EQ(descent_optimizer_shard_info(nullptr, &sharded, &rank, &world),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_state_bytes(nullptr, &size, nullptr), DESCENT_ERR_NULL_ARGUMENT);
  // A bad update on one rank: the usual errors, nothing changed.
  EXPECT_EQ(descent_optimizer_update_flat(opt, nullptr, nullptr, 3), DESCENT_ERR_SHAPE_MISMATCH);
  EXPECT_EQ(descent_optimizer_update(opt, 1, nullptr, nullptr, nullptr, nullptr, nullptr),
            DESCENT_ERR_NULL_ARGUMENT);
  descent_optimizer_free(opt);
  descent_collectives_free(c);
}

TEST(Distributed, ShardedClipIsBitwiseTheSingleProcessClip) {
  const auto m = model();
  for (double max_norm : {0.5, 1e9}) {
    Tensors ref(m);
    ref.grads_for(m, 7);
    std::vector<descent_dtype> dt;
    std::vector<int64_t> nu;
    std::vector<void*> g;
    for (std::size_t k = 0; k < m.size(); ++k) {
      dt.push_back(m[k].dtype);
      nu.push_back(m[k].numel());
      g.push_back(ref.g[k].data());
    }
    double ref_total = 0;
    ASSERT_EQ(descent_clip_grad_norm(m.size(), dt.data(), nu.data(), g.data(), max_norm, &ref_total,
                                     nullptr, 0),
              DESCENT_OK);
    for (std::size_t world : {1, 2, 3, 4}) {
      fake::World w(world);
      fake::run(world, [&](std::size_t r) {
        descent_collectives* c = w.make(r);
        Tensors t(m);
        t.grads_for(m, 7);
        std::vector<void*> gg;
        for (std::size_t k = 0; k < m.size(); ++k) gg.push_back(t.g[k].data());
        double total = 0;
        EXPECT_EQ(descent_collectives_clip_grad_norm(c, m.size(), dt.data(), nu.data(), gg.data(),
                                                     max_norm, &total, nullptr, 0),
                  DESCENT_OK);
        EXPECT_EQ(std::memcmp(&total, &ref_total, sizeof total), 0) << world << " ranks";
        for (std::size_t k = 0; k < m.size(); ++k) EXPECT_EQ(t.g[k], ref.g[k]) << m[k].name;
        descent_collectives_free(c);
      });
    }
  }
}

TEST(Distributed, ShardedClipBadInputOnOneRankFailsEveryRank) {
  const auto m = model();
  const std::size_t world = 3;
  fake::World w(world);
  fake::run(world, [&](std::size_t r) {
    descent_collectives* c = w.make(r);
    Tensors t(m);
    t.grads_for(m, 1);
    const Tensors before = t;
    std::vector<descent_dtype> dt;
    std::vector<int64_t> nu;
    std::vector<void*> gg;
    for (std::size_t k = 0; k < m.size(); ++k) {
      dt.push_back(m[k].dtype);
      nu.push_back(m[k].numel());
      gg.push_back(t.g[k].data());
    }
    char err[DESCENT_ERROR_CAPACITY] = {};
    const double max_norm = r == 2 ? -1.0 : 1.0;
    EXPECT_EQ(descent_collectives_clip_grad_norm(c, m.size(), dt.data(), nu.data(), gg.data(),
                                                 max_norm, nullptr, err, sizeof err),
              DESCENT_ERR_OUT_OF_RANGE);
    EXPECT_NE(std::string(err).find(r == 2 ? "max_norm" : "rank 2"), std::string::npos) << err;
    EXPECT_EQ(t.g, before.g);
    descent_collectives_free(c);
  });
  descent_collectives* none = nullptr;
  EXPECT_EQ(descent_collectives_clip_grad_norm(none, 0, nullptr, nullptr, nullptr, 1.0, nullptr,
                                               nullptr, 0),
            DESCENT_ERR_NULL_ARGUMENT);
}

}  // namespace
