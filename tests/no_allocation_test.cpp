// A steady-state update must not allocate: this binary replaces the global operator new (which
// the shared library's calls resolve to as well) and counts calls during updates.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "descent/descent.h"
#include "test_support.h"

namespace {
std::atomic<long> g_allocations{0};
}

// GCC flags malloc/free inside replaced global operators as mismatched once they are inlined;
// the pairing here is consistent by construction.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
// Every form that pairs with the ones above, so that no allocation made through the sanitizer's
// own operator new (e.g. std::stable_sort's nothrow temporary buffer) is freed by this free().
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  ++g_allocations;
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n) {
  return operator new(n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
  return operator new(n, t);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace {

class NoAllocation : public testing::TestWithParam<std::string> {};

TEST_P(NoAllocation, SteadyStateUpdate) {
  descent_optimizer* opt = nullptr;
  ASSERT_EQ(descent_optimizer_create(GetParam().c_str(), &opt, nullptr, 0), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_set_double(opt, "learning_rate", 0.01), DESCENT_OK);
  // Long names defeat the small-string optimisation, so a lookup that built a std::string
  // would show up here.
  const std::string w = "model.layers.0.attention.query.weight",
                    b = "model.layers.0.attention.query.bias";
  const int64_t ws[] = {16, 8}, bs[] = {8};
  ASSERT_EQ(descent_optimizer_add_parameter(opt, w.c_str(), DESCENT_FLOAT32, 2, ws), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(opt, b.c_str(), DESCENT_FLOAT64, 1, bs), DESCENT_OK);
  std::vector<float> wp(128, 0.5f), wg(128, 0.25f);
  std::vector<double> bp(8, 0.5), bg(8, -0.25);
  const char* names[] = {w.c_str(), b.c_str()};
  const descent_dtype dtypes[] = {DESCENT_FLOAT32, DESCENT_FLOAT64};
  const int64_t numels[] = {128, 8};
  void* params[] = {wp.data(), bp.data()};
  const void* grads[] = {wg.data(), bg.data()};
  // The first update initialises the state (allocates); later ones must not.
  ASSERT_EQ(descent_optimizer_update(opt, 2, names, dtypes, numels, params, grads), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  const long before = g_allocations.load();
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(descent_optimizer_update(opt, 2, names, dtypes, numels, params, grads), DESCENT_OK);
  EXPECT_EQ(g_allocations.load() - before, 0)
      << GetParam() << " allocated during a steady-state step";
  // Changing a hyperparameter between steps is still allocation-free for the step itself.
  ASSERT_EQ(descent_optimizer_set_double(opt, "learning_rate", 0.02), DESCENT_OK);
  const long before_lr = g_allocations.load();
  ASSERT_EQ(descent_optimizer_update(opt, 2, names, dtypes, numels, params, grads), DESCENT_OK);
  EXPECT_EQ(g_allocations.load() - before_lr, 0);
  descent_optimizer_free(opt);
}

TEST(NoAllocation, MuonAdamwGroups) {
  descent_optimizer* opt = nullptr;
  ASSERT_EQ(
      descent_multi_create_muon_adamw("{\"learning_rate\": 0.02}", "{\"learning_rate\": 0.001}",
                                      nullptr, &opt, nullptr, 0),
      DESCENT_OK)
      << descent_last_error();
  const int64_t hidden[] = {32, 16}, embed[] = {10, 16}, bias[] = {16};
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "layers.0.weight", DESCENT_FLOAT32, 2, hidden),
            DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "embed.weight", DESCENT_FLOAT32, 2, embed),
            DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "layers.0.bias", DESCENT_FLOAT32, 1, bias),
            DESCENT_OK);
  std::vector<float> hp(512, 0.1f), hg(512, 0.01f), ep(160, 0.1f), eg(160, 0.01f), bp(16),
      bg(16, 1.0f);
  const char* names[] = {"layers.0.weight", "embed.weight", "layers.0.bias"};
  void* params[] = {hp.data(), ep.data(), bp.data()};
  const void* grads[] = {hg.data(), eg.data(), bg.data()};
  ASSERT_EQ(descent_optimizer_update(opt, 3, names, nullptr, nullptr, params, grads), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  const long before = g_allocations.load();
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(descent_optimizer_update(opt, 3, names, nullptr, nullptr, params, grads), DESCENT_OK);
  EXPECT_EQ(g_allocations.load() - before, 0);
  descent_optimizer_free(opt);
}

TEST(NoAllocation, MuonGramNewtonSchulz) {
  // ns_impl "gram" set after init: its larger workspace is allocated when the value changes,
  // before the next step; the steps after allocate nothing (float32 and float64, wide and tall).
  descent_optimizer* opt = nullptr;
  ASSERT_EQ(descent_optimizer_create("muon", &opt, nullptr, 0), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_set_double(opt, "learning_rate", 0.02), DESCENT_OK);
  const int64_t wide[] = {12, 40}, tall[] = {30, 7};
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "a", DESCENT_FLOAT32, 2, wide), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "b", DESCENT_FLOAT64, 2, tall), DESCENT_OK);
  std::vector<float> ap(480), ag(480);
  std::vector<double> bp(210), bg(210);
  for (size_t i = 0; i < ag.size(); ++i) ag[i] = static_cast<float>((i * 37 % 101) - 50) * 0.01f;
  for (size_t i = 0; i < bg.size(); ++i) bg[i] = static_cast<double>((i * 53 % 97) - 48) * 0.01;
  const char* names[] = {"a", "b"};
  void* params[] = {ap.data(), bp.data()};
  const void* grads[] = {ag.data(), bg.data()};
  ASSERT_EQ(descent_optimizer_update(opt, 2, names, nullptr, nullptr, params, grads), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  ASSERT_EQ(descent_optimizer_set_string(opt, "ns_impl", "gram"), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_update(opt, 2, names, nullptr, nullptr, params, grads), DESCENT_OK);
  const long before = g_allocations.load();
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(descent_optimizer_update(opt, 2, names, nullptr, nullptr, params, grads), DESCENT_OK);
  EXPECT_EQ(g_allocations.load() - before, 0);
  descent_optimizer_free(opt);
}

// The indexed and flat forms too, for every kind and for Muon+AdamW groups (the flat layout's
// pointer arrays are built on the first flat update, then reused).
void indexed_and_flat(descent_optimizer* opt, const std::string& label) {
  const int64_t ws[] = {16, 8}, bs[] = {8};
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "layers.0.weight", DESCENT_FLOAT32, 2, ws),
            DESCENT_OK);
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "layers.0.bias", DESCENT_FLOAT32, 1, bs),
            DESCENT_OK);
  size_t size = 0, bias_at = 0;
  ASSERT_EQ(descent_optimizer_flat_size(opt, &size), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_flat_offset(opt, 1, &bias_at), DESCENT_OK);
  std::vector<float> p(size / 4, 0.5f), g(size / 4, 0.25f);
  const size_t indices[] = {1, 0};
  void* params[] = {p.data() + bias_at / 4, p.data()};
  const void* grads[] = {g.data() + bias_at / 4, g.data()};
  ASSERT_EQ(descent_optimizer_update_indexed(opt, 2, indices, nullptr, nullptr, params, grads),
            DESCENT_OK)
      << descent_optimizer_last_error(opt);
  ASSERT_EQ(descent_optimizer_update_flat(opt, p.data(), g.data(), size), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  const long before = g_allocations.load();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(descent_optimizer_update_indexed(opt, 2, indices, nullptr, nullptr, params, grads),
              DESCENT_OK);
    ASSERT_EQ(descent_optimizer_update_flat(opt, p.data(), g.data(), size), DESCENT_OK);
  }
  EXPECT_EQ(g_allocations.load() - before, 0) << label << " allocated during a steady-state step";
}

TEST_P(NoAllocation, SteadyStateIndexedAndFlat) {
  descent_optimizer* opt = nullptr;
  ASSERT_EQ(descent_optimizer_create(GetParam().c_str(), &opt, nullptr, 0), DESCENT_OK);
  ASSERT_EQ(descent_optimizer_set_double(opt, "learning_rate", 0.01), DESCENT_OK);
  indexed_and_flat(opt, GetParam());
  descent_optimizer_free(opt);
}

TEST(NoAllocation, MuonAdamwGroupsIndexedAndFlat) {
  descent_optimizer* opt = nullptr;
  ASSERT_EQ(
      descent_multi_create_muon_adamw("{\"learning_rate\": 0.02}", "{\"learning_rate\": 0.001}",
                                      nullptr, &opt, nullptr, 0),
      DESCENT_OK);
  indexed_and_flat(opt, "muon+adamw");
  descent_optimizer_free(opt);
}

TEST(NoAllocation, CounterSeesAllocations) {
  // Guards the test itself: the replaced operator new is really in use.
  const long before = g_allocations.load();
  static std::vector<int>* volatile sink;  // volatile: the compiler may not elide the allocation
  sink = new std::vector<int>(100);
  delete sink;
  EXPECT_GE(g_allocations.load() - before, 2);
}

// "multi" is covered by MuonAdamwGroups above.
INSTANTIATE_TEST_SUITE_P(Kinds, NoAllocation, testing::ValuesIn(descent_test::rule_kinds()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
