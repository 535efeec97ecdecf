// Kernel-level tests of Muon's orthogonalisation (src/kernels/orthogonalize.h), linked against the
// library's object files: the three Newton–Schulz implementations (SYRK+SYMM, SYRK+GEMM, the
// three-GEMM reference) agree on every orientation, the coefficient schedule, the flop counts
// the benchmark reports, and the polar factor's failure paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/orthogonalize.h"

namespace {

using descent::kernels::NsImpl;
using descent::kernels::NsParams;

const double kJordan[] = {3.4445, -4.7750, 2.0315};

double uniform(uint64_t seed) {  // splitmix64 -> [-1, 1)
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

template <class T>
std::vector<T> run(int64_t rows, int64_t cols, NsImpl impl, uint64_t seed, int64_t steps = 5) {
  std::vector<T> x(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(uniform(seed * 100003 + i));
  std::vector<T> work(descent::kernels::ns_workspace_elements(rows, cols, impl));
  NsParams p;
  p.steps = steps;
  p.table = kJordan;
  p.triples = 1;
  p.impl = impl;
  const T* out = descent::kernels::newton_schulz(rows, cols, x.data(), work.data(), p);
  return std::vector<T>(out, out + rows * cols);
}

template <class T>
double max_diff(const std::vector<T>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i)
    d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
  return d;
}

TEST(MuonKernel, ImplementationsAgree) {
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1},    {1, 9},    {9, 1},   {8, 8},
                                                {37, 100}, {100, 37}, {64, 64}, {130, 70}};
  for (auto [r, c] : shapes) {
    SCOPED_TRACE(std::to_string(r) + "x" + std::to_string(c));
    const auto ref = run<double>(r, c, NsImpl::Gemm, r * 1000 + c);
    EXPECT_LE(max_diff(run<double>(r, c, NsImpl::Syrk, r * 1000 + c), ref), 1e-12);
    EXPECT_LE(max_diff(run<double>(r, c, NsImpl::SyrkGemm, r * 1000 + c), ref), 1e-12);
    for (NsImpl impl : {NsImpl::Gemm, NsImpl::Syrk, NsImpl::SyrkGemm})
      EXPECT_LE(max_diff(run<float>(r, c, impl, r * 1000 + c), ref), 4e-6);
    // Gram Newton–Schulz: the same polynomial through the Gram matrix (squared condition).
    EXPECT_LE(max_diff(run<double>(r, c, NsImpl::Gram, r * 1000 + c), ref), 1e-12);
    EXPECT_LE(max_diff(run<float>(r, c, NsImpl::Gram, r * 1000 + c), ref), 2e-5);
  }
}

TEST(MuonKernel, GramRestartsAndLongSchedules) {
  using descent::kernels::gram_restart;
  EXPECT_FALSE(gram_restart(1));
  EXPECT_TRUE(gram_restart(2));  // GNS's default [2] for 5 steps
  EXPECT_FALSE(gram_restart(3));
  EXPECT_FALSE(gram_restart(4));
  EXPECT_TRUE(gram_restart(5));
  EXPECT_TRUE(gram_restart(8));
  // Every step count, through segments of 1, 2 and 3 steps, equals the Gemm reference; 300 x 120
  // spans several panels of the symmetric products (128 rows) with a ragged last one.
  for (int64_t steps : {1, 2, 3, 4, 5, 6, 7, 9}) {
    SCOPED_TRACE(steps);
    for (auto [r, c] : {std::pair<int64_t, int64_t>{37, 100}, {300, 130}}) {
      const auto ref = run<double>(r, c, NsImpl::Gemm, 5 + r, steps);
      EXPECT_LE(max_diff(run<double>(r, c, NsImpl::Gram, 5 + r, steps), ref), 1e-11);
    }
  }
}

TEST(MuonKernel, GramOnSquareMatricesIsTheSyrkPath) {
  const auto syrk = run<float>(40, 40, NsImpl::Syrk, 3);
  const auto gram = run<float>(40, 40, NsImpl::Gram, 3);
  EXPECT_EQ(syrk, gram);
  EXPECT_EQ(descent::kernels::ns_workspace_elements(40, 40, NsImpl::Gram),
            descent::kernels::ns_workspace_elements(40, 40, NsImpl::Syrk));
}

TEST(MuonKernel, ZeroStepsOnlyNormalises) {
  const auto x = run<double>(3, 4, NsImpl::Syrk, 7, 0);
  double n = 0;
  for (double v : x) n += v * v;
  EXPECT_NEAR(std::sqrt(n), 1.0, 1e-6);  // ||X|| / (||X|| + 1e-7)
}

TEST(MuonKernel, TableSchedule) {
  const double table[] = {1, 0, 0, 2, 0, 0, 3, 0, 0};
  NsParams p;
  p.table = table;
  p.triples = 3;
  EXPECT_EQ(descent::kernels::ns_triple(p, 0)[0], 1);
  EXPECT_EQ(descent::kernels::ns_triple(p, 4)[0], 2);  // cycles
  p.repeat_last = true;
  EXPECT_EQ(descent::kernels::ns_triple(p, 4)[0], 3);
  EXPECT_EQ(descent::kernels::ns_triple(p, 1)[0], 2);
}

TEST(MuonKernel, FlopCountsMatchTheSurvey) {
  // reference/muon.md §5, 5 steps, GFLOP: 1024x4096 96.6 vs 69.8; 4096² 2061.6 vs 1374.4.
  EXPECT_NEAR(descent::kernels::ns_flops(1024, 4096, 5, NsImpl::Gemm) / 1e9, 96.6, 0.05);
  EXPECT_NEAR(descent::kernels::ns_flops(1024, 4096, 5, NsImpl::Syrk) / 1e9, 69.8, 0.1);
  EXPECT_NEAR(descent::kernels::ns_flops(4096, 1024, 5, NsImpl::Syrk) / 1e9, 69.8, 0.1);
  EXPECT_NEAR(descent::kernels::ns_flops(4096, 4096, 5, NsImpl::Gemm) / 1e9, 2061.6, 0.1);
  EXPECT_NEAR(descent::kernels::ns_flops(4096, 4096, 5, NsImpl::Syrk) / 1e9, 1374.4, 0.5);
  EXPECT_EQ(descent::kernels::ns_flops(768, 3072, 5, NsImpl::SyrkGemm),
            descent::kernels::ns_flops(768, 3072, 5, NsImpl::Syrk));
  // Gram, 5 steps, restart at 2, m = 1024 (8 panels of 128: (1 + 1/8) m³ per symmetric
  // product): R twice m(m+1)n, Q X twice 2m²n; five SYRK R² m(m+1)m; six symmetric products
  // (steps 0, 2, 3: R·Z and Z·RZ) and three Q·Z (steps 1, 3, 4), 9 · 1.125 m³.
  const double m = 1024, n = 4096;
  const double gram =
      2 * m * (m + 1) * n + 2 * 2 * m * m * n + 5 * m * (m + 1) * m + 9 * 1.125 * m * m * m;
  EXPECT_NEAR(descent::kernels::ns_flops(1024, 4096, 5, NsImpl::Gram), gram, 1.0);
  EXPECT_EQ(descent::kernels::ns_flops(4096, 1024, 5, NsImpl::Gram), gram);
  EXPECT_EQ(descent::kernels::ns_flops(512, 512, 5, NsImpl::Gram),
            descent::kernels::ns_flops(512, 512, 5, NsImpl::Syrk));
}

TEST(MuonKernel, PolarFailurePaths) {
  const int64_t r = 6, c = 4;
  std::vector<double> x(r * c);
  for (size_t i = 0; i < x.size(); ++i) x[i] = uniform(i);
  const std::size_t bytes = descent::kernels::polar_workspace_bytes(true, r, c);
  std::vector<unsigned char> work(bytes);
  std::vector<double> y = x;
  EXPECT_FALSE(
      descent::kernels::polar_factor(r, c, y.data(), work.data(), bytes - 1));  // too small
  y = x;
  y[5] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(descent::kernels::polar_factor(r, c, y.data(), work.data(), bytes));  // not finite
  y = x;
  ASSERT_TRUE(descent::kernels::polar_factor(r, c, y.data(), work.data(), bytes));
  // yᵀy = I (6x4, orthonormal columns).
  for (int64_t i = 0; i < c; ++i)
    for (int64_t j = 0; j < c; ++j) {
      double s = 0;
      for (int64_t k = 0; k < r; ++k) s += y[k * c + i] * y[k * c + j];
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-13);
    }
}

}  // namespace
