// Every elementwise kernel gives the same bits at every instruction-set width (SSE2 baseline,
// AVX2, AVX-512F) the CPU supports, on inputs that include NaN, infinities, signed zeros,
// subnormals and odd lengths (vector tails). The baseline body is today's scalar code, so this
// also pins the vector paths to it. The same for the batched path the optimizers take
// (kernels/batch_kernel.h: the last partial vector through masked loads and stores), at every
// length from 1 to 40. Widths the CPU lacks are skipped (reported).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/adadelta_kernel.h"
#include "kernels/adagrad_kernel.h"
#include "kernels/adam_kernel.h"
#include "kernels/adamax_kernel.h"
#include "kernels/batch_kernel.h"
#include "kernels/isa.h"
#include "kernels/lion_kernel.h"
#include "kernels/rmsprop_kernel.h"
#include "kernels/sgd_kernel.h"

namespace descent::kernels {
namespace {

template <class T>
std::vector<T> inputs(std::size_t n, unsigned seed, bool positive) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  std::vector<T> out(n);
  for (auto& x : out) x = static_cast<T>(positive ? std::fabs(u(rng)) : u(rng));
  const T specials[] = {std::numeric_limits<T>::quiet_NaN(),
                        std::numeric_limits<T>::infinity(),
                        -std::numeric_limits<T>::infinity(),
                        T(0),
                        -T(0),
                        std::numeric_limits<T>::denorm_min(),
                        std::numeric_limits<T>::min() / T(3),
                        std::numeric_limits<T>::max()};
  for (std::size_t i = 0; i < n; i += 7) out[i] = specials[(i / 7 + seed) % 8];
  if (positive)
    for (auto& x : out) x = std::isnan(x) ? x : std::fabs(x);
  return out;
}

// Runs `run(width, arrays...)` for each width on copies of the same inputs and compares bits.
template <class T, class Run>
void compare_widths(std::size_t slots, Run&& run) {
  const std::vector<Isa> widths = {Isa::Sse2, Isa::Avx2, Isa::Avx512};
  for (std::size_t n : {std::size_t{1}, std::size_t{15}, std::size_t{67}, std::size_t{1031}}) {
    std::vector<std::vector<T>> ref;
    for (Isa isa : widths) {
      if (static_cast<int>(isa) > static_cast<int>(best_isa())) {
        std::printf("  (%s not supported by this CPU: skipped)\n", isa_name(isa));
        continue;
      }
      std::vector<std::vector<T>> a;
      a.push_back(inputs<T>(n, 1, false));  // p
      a.push_back(inputs<T>(n, 2, false));  // g
      for (std::size_t s = 0; s < slots; ++s) a.push_back(inputs<T>(n, 3 + unsigned(s), true));
      run(isa, n, a);
      if (ref.empty()) {
        ref = a;
        continue;
      }
      for (std::size_t k = 0; k < a.size(); ++k)
        for (std::size_t i = 0; i < n; ++i)
          ASSERT_EQ(std::memcmp(&a[k][i], &ref[k][i], sizeof(T)), 0)
              << isa_name(isa) << " differs from sse2 in array " << k << " at " << i << " of " << n
              << ": " << a[k][i] << " vs " << ref[k][i];
    }
  }
}

template <auto F, class... A>
void call(Isa isa, A... a) {
#if DESCENT_HAVE_ISA_CLONES
  if (isa == Isa::Avx512) return run_avx512<F>(a...);
  if (isa == Isa::Avx2) return run_avx2<F>(a...);
#endif
  (void)isa;
  F(a...);
}

template <class T>
class IsaKernels : public testing::Test {};
using Types = testing::Types<float, double>;
TYPED_TEST_SUITE(IsaKernels, Types);

TYPED_TEST(IsaKernels, Adam) {
  using T = TypeParam;
  for (int variant = 0; variant < 4; ++variant) {
    AdamCoefficients<T> c{};
    c.apply_decay = variant & 1;
    c.decay = T(0.999);
    c.b1 = T(0.9), c.one_minus_b1 = T(1 - 0.9), c.b2 = T(0.999), c.one_minus_b2 = T(1 - 0.999);
    c.eps = T(1e-8), c.step_scale = T(0.01), c.c2 = T(1.7), c.bias_correction = variant & 2;
    compare_widths<T>(2, [&](Isa isa, std::size_t n, auto& a) {
      call<&adam_step_body<T>>(isa, int64_t(n), a[0].data(), (const T*)a[1].data(), a[2].data(),
                               a[3].data(), c);
    });
  }
}

TYPED_TEST(IsaKernels, Sgd) {
  using T = TypeParam;
  for (int variant = 0; variant < 16; ++variant) {
    SgdCoefficients<T> c{
        T(0.01),           T(0.1),           T(0.9), T(0.75), bool(variant & 1), bool(variant & 2),
        bool(variant & 4), bool(variant & 8)};
    compare_widths<T>(1, [&](Isa isa, std::size_t n, auto& a) {
      call<&sgd_step_body<T>>(isa, int64_t(n), a[0].data(), (const T*)a[1].data(), a[2].data(), c);
    });
  }
}

TYPED_TEST(IsaKernels, Lion) {
  using T = TypeParam;
  for (bool decay : {false, true}) {
    LionCoefficients<T> c{T(0.01), T(0.9), T(0.1), T(0.99), T(0.01), T(0.999), decay};
    compare_widths<T>(1, [&](Isa isa, std::size_t n, auto& a) {
      call<&lion_step_body<T>>(isa, int64_t(n), a[0].data(), (const T*)a[1].data(), a[2].data(), c);
    });
  }
}

TYPED_TEST(IsaKernels, RmspropAdagradAdadeltaAdamax) {
  using T = TypeParam;
  const RmspropCoefficients<T> r{T(0.01), T(0.99), T(0.01), T(1e-8)};
  compare_widths<T>(1, [&](Isa isa, std::size_t n, auto& a) {
    call<&rmsprop_step_body<T>>(isa, int64_t(n), a[0].data(), (const T*)a[1].data(), a[2].data(),
                                r);
  });
  const AdagradCoefficients<T> ag{T(0.01), T(1e-8)};
  compare_widths<T>(1, [&](Isa isa, std::size_t n, auto& a) {
    call<&adagrad_step_body<T>>(isa, int64_t(n), a[0].data(), (const T*)a[1].data(), a[2].data(),
                                ag);
  });
  const AdadeltaCoefficients<T> ad{T(1.0), T(0.9), T(0.1), T(1e-6)};
  compare_widths<T>(2, [&](Isa isa, std::size_t n, auto& a) {
    call<&adadelta_step_body<T>>(isa, int64_t(n), a[0].data(), (const T*)a[1].data(), a[2].data(),
                                 a[3].data(), ad);
  });
  const AdamaxCoefficients<T> am{T(0.002), T(0.9), T(0.1), T(0.999), T(1e-8)};
  compare_widths<T>(2, [&](Isa isa, std::size_t n, auto& a) {
    call<&adamax_step_body<T>>(isa, int64_t(n), a[0].data(), (const T*)a[1].data(), a[2].data(),
                               a[3].data(), am);
  });
}

// Body F through step_batch's per-width loops (one item of n elements) against the plain
// baseline body, for n = 1..40 and 1031, on the inputs of compare_widths.
template <auto F, class T, std::size_t K, class C>
void compare_batched(const C& c) {
  std::vector<std::size_t> lengths;
  for (std::size_t n = 1; n <= 40; ++n) lengths.push_back(n);
  lengths.push_back(1031);
  for (std::size_t n : lengths) {
    std::vector<std::vector<T>> ref;
    ref.push_back(inputs<T>(n, 1, false));
    ref.push_back(inputs<T>(n, 2, false));
    for (std::size_t s = 0; s < K; ++s) ref.push_back(inputs<T>(n, 3 + unsigned(s), true));
    const std::vector<std::vector<T>> in = ref;
    if constexpr (K == 1)
      F(int64_t(n), ref[0].data(), (const T*)ref[1].data(), ref[2].data(), c);
    else
      F(int64_t(n), ref[0].data(), (const T*)ref[1].data(), ref[2].data(), ref[3].data(), c);
    for (Isa isa : {Isa::Sse2, Isa::Avx2, Isa::Avx512}) {
      if (static_cast<int>(isa) > static_cast<int>(best_isa())) continue;
      std::vector<std::vector<T>> a = in;
      BatchItem item{int64_t(n), a[0].data(), a[1].data(), {a[2].data(), a[K + 1].data()}};
#if DESCENT_HAVE_ISA_CLONES
      if (isa == Isa::Avx512) batch_avx512<F, T, K>(&item, 1, c);
      if (isa == Isa::Avx2) batch_avx2<F, T, K>(&item, 1, c);
#endif
      if (isa == Isa::Sse2) batch_scalar_tail<F, T, K>(&item, 1, c);
      for (std::size_t k = 0; k < a.size(); ++k)
        for (std::size_t i = 0; i < n; ++i)
          ASSERT_EQ(std::memcmp(&a[k][i], &ref[k][i], sizeof(T)), 0)
              << "batched " << isa_name(isa) << " differs from the baseline body in array " << k
              << " at " << i << " of " << n;
    }
  }
}

TYPED_TEST(IsaKernels, BatchedTails) {
  using T = TypeParam;
  AdamCoefficients<T> adam{};
  adam.apply_decay = true;
  adam.decay = T(0.999);
  adam.b1 = T(0.9), adam.one_minus_b1 = T(1 - 0.9), adam.b2 = T(0.999);
  adam.one_minus_b2 = T(1 - 0.999), adam.eps = T(1e-8), adam.step_scale = T(0.01);
  adam.c2 = T(1.7), adam.bias_correction = true;
  compare_batched<&adam_step_body<T>, T, 2>(adam);
  const SgdCoefficients<T> sgd{T(0.01), T(0.1), T(0.9), T(0.75), true, true, false, true};
  compare_batched<&sgd_step_body<T>, T, 1>(sgd);
  const LionCoefficients<T> lion{T(0.01), T(0.9), T(0.1), T(0.99), T(0.01), T(0.999), true};
  compare_batched<&lion_step_body<T>, T, 1>(lion);
  compare_batched<&rmsprop_step_body<T>, T, 1>(
      RmspropCoefficients<T>{T(0.01), T(0.99), T(0.01), T(1e-8)});
  compare_batched<&adagrad_step_body<T>, T, 1>(AdagradCoefficients<T>{T(0.01), T(1e-8)});
  compare_batched<&adadelta_step_body<T>, T, 2>(
      AdadeltaCoefficients<T>{T(1.0), T(0.9), T(0.1), T(1e-6)});
  compare_batched<&adamax_step_body<T>, T, 2>(
      AdamaxCoefficients<T>{T(0.002), T(0.9), T(0.1), T(0.999), T(1e-8)});
}

TEST(Isa, ActiveIsAtMostBest) {
  EXPECT_LE(static_cast<int>(active_isa()), static_cast<int>(best_isa()));
  std::printf("  best %s, active %s\n", isa_name(best_isa()), isa_name(active_isa()));
}

}  // namespace
}  // namespace descent::kernels
