// Same inputs, same bits (docs/reliability.md, "Determinism"): a Muon+AdamW model trained twice in
// the same process from the same seed, through every update form and with save/load in between,
// ends with bit-identical parameters and state; so does every other kind. (Muon's matrix products
// go through BLAS, whose results may depend on the BLAS library and its thread count,
// OPENBLAS_NUM_THREADS: they are fixed within a process. Nothing else in descent depends on
// threads.)
#include <gtest/gtest.h>

#include <string>

#include "reliability_support.h"
#include "test_support.h"

namespace {

using reliability::Bytes;
using reliability::Training;

Bytes train_muon_adamw(uint64_t seed, int steps, bool reload) {
  Training run("multi", seed, 1, 2);
  for (int k = 0; k < steps; ++k) {
    run.step();
    if (reload && k % 5 == 4) run.reload_from_buffer(run.save(), 1);
  }
  EXPECT_TRUE(run.errors().empty()) << run.errors().front();
  return run.fingerprint();
}

TEST(Determinism, MuonAdamWTwiceFromTheSameSeedGivesTheSameBits) {
  const Bytes a = train_muon_adamw(42, 30, false);
  const Bytes b = train_muon_adamw(42, 30, false);
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b);
  // Saving and loading along the way changes nothing either.
  EXPECT_TRUE(train_muon_adamw(42, 30, true) == a);
  // And another seed gives other bits (the comparison above is not vacuous).
  EXPECT_FALSE(train_muon_adamw(43, 30, false) == a);
}

TEST(Determinism, EveryKindTwiceFromTheSameSeedGivesTheSameBits) {
  for (const std::string& kind : descent_test::all_kinds()) {
    SCOPED_TRACE(kind);
    Bytes first;
    for (int round = 0; round < 2; ++round) {
      Training run(kind, 7, 2);
      for (int k = 0; k < 8; ++k) run.step();
      EXPECT_TRUE(run.errors().empty()) << run.errors().front();
      const Bytes f = run.fingerprint();
      if (round == 0)
        first = f;
      else
        EXPECT_TRUE(f == first);
    }
  }
}

}  // namespace
