// The float32 <-> bfloat16/float16 conversions (common/half.h, kernels/convert_kernel.h) against
// a reference computed in double arithmetic: every half value widens exactly; rounding is to
// nearest even at every midpoint, next to it, in the subnormal range and at overflow; the array
// kernels agree with the scalar functions at every ISA width the CPU has; stochastic rounding
// only ever picks one of the two neighbours, and exact values stay exact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/half.h"
#include "kernels/convert_kernel.h"

namespace descent {
namespace {

struct Format {
  int precision, min_exp, max_exp;
  uint16_t (*round)(float);
  float (*widen)(uint16_t);
  uint16_t (*stochastic)(float, uint32_t);
  DType dtype;
};
const Format kBf16{8,
                   -126,
                   127,
                   &float_to_bf16,
                   &bf16_to_float,
                   &kernels::float_to_bf16_stochastic,
                   DType::BFloat16};
const Format kF16{
    11, -14, 15, &float_to_f16, &f16_to_float, &kernels::float_to_f16_stochastic, DType::Float16};

// The value of a 2-byte pattern, decoded with ldexp.
double decode(const Format& f, uint16_t h) {
  const int frac = f.precision - 1, expb = 15 - frac, bias = (1 << (expb - 1)) - 1;
  const int e = (h >> frac) & ((1 << expb) - 1), m = h & ((1 << frac) - 1);
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (e == (1 << expb) - 1) return m ? NAN : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(m, 1 - bias - frac);
  return sign * std::ldexp(m + (1 << frac), e - bias - frac);
}

// Round to nearest even, by counting the spacing at x in double (exact) with std::nearbyint.
double reference_round(const Format& f, double x) {
  if (std::isnan(x) || std::isinf(x) || x == 0.0) return x;
  int e;
  std::frexp(x, &e);
  const double spacing = std::ldexp(1.0, std::max(e - 1, f.min_exp) - (f.precision - 1));
  const double overflow = std::ldexp(2.0, f.max_exp) - std::ldexp(1.0, f.max_exp - f.precision);
  if (std::fabs(x) >= overflow) return std::copysign(INFINITY, x);
  return std::nearbyint(x / spacing) * spacing;
}

std::vector<float> hard_inputs(const Format& f) {
  std::vector<float> out;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const double v = decode(f, static_cast<uint16_t>(h));
    if (!std::isfinite(v)) continue;
    const double next = decode(f, static_cast<uint16_t>(h + 1));
    const auto fv = static_cast<float>(v);
    out.push_back(fv);
    out.push_back(std::nextafter(fv, INFINITY));
    out.push_back(std::nextafter(fv, -INFINITY));
    if (std::isfinite(next) && std::fabs(next) > std::fabs(v)) {
      const auto mid = static_cast<float>((v + next) / 2);  // exact in float32
      out.push_back(mid);
      out.push_back(std::nextafter(mid, INFINITY));
      out.push_back(std::nextafter(mid, -INFINITY));
    }
  }
  std::mt19937 rng(11);
  for (int i = 0; i < 2000000; ++i) out.push_back(bits_float(rng()));
  out.push_back(INFINITY);
  out.push_back(-INFINITY);
  out.push_back(NAN);
  out.push_back(std::ldexp(1.0f, f.max_exp) * 2.0f * 0.99999f);
  return out;
}

void PrintTo(const Format& f, std::ostream* os) {
  *os << (f.dtype == DType::BFloat16 ? "bfloat16" : "float16");
}

class HalfConvert : public testing::TestWithParam<Format> {};

TEST_P(HalfConvert, EveryHalfValueWidensExactly) {
  const Format f = GetParam();
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const double want = decode(f, static_cast<uint16_t>(h));
    const float got = f.widen(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << h;
      ASSERT_EQ(std::signbit(got), (h & 0x8000) != 0) << h;
    }
  }
}

TEST_P(HalfConvert, RoundsToNearestEvenEverywhere) {
  const Format f = GetParam();
  for (const float x : hard_inputs(f)) {
    const uint16_t h = f.round(x);
    const double want = reference_round(f, x);
    const double got = decode(f, h);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << x;
      continue;
    }
    ASSERT_EQ(got, want) << std::hexfloat << x;
    ASSERT_EQ(std::signbit(got), std::signbit(x)) << x;
  }
}

TEST_P(HalfConvert, ArrayKernelsMatchTheScalarFunctions) {
  const Format f = GetParam();
  const std::vector<float> in = hard_inputs(f);
  const auto n = static_cast<int64_t>(in.size());
  std::vector<uint16_t> out(in.size());
  kernels::narrow(f.dtype, n, in.data(), out.data());
  for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(out[i], f.round(in[i])) << i;
  std::vector<float> back(in.size());
  kernels::widen(f.dtype, n, out.data(), back.data());
  for (std::size_t i = 0; i < in.size(); ++i)
    ASSERT_EQ(float_bits(back[i]), float_bits(f.widen(out[i]))) << i;
#if DESCENT_HAVE_ISA_CLONES
  // The same through each wider clone the CPU has.
  std::vector<uint16_t> wide(in.size());
  if (kernels::best_isa() >= kernels::Isa::Avx2) {
    if (f.dtype == DType::BFloat16)
      kernels::run_avx2<&kernels::narrow_body<&float_to_bf16>>(n, in.data(), wide.data());
    else
      kernels::run_avx2<&kernels::narrow_body<&float_to_f16>>(n, in.data(), wide.data());
    ASSERT_EQ(wide, out) << "avx2";
    if (f.dtype == DType::BFloat16) {  // the AVX2 integer path, both ways
      std::vector<uint16_t> hw(in.size());
      kernels::narrow_bf16_avx2(n, in.data(), hw.data());
      for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(hw[i], f.round(in[i])) << i;
      std::vector<float> fw(in.size());
      kernels::widen_bf16_avx2(n, hw.data(), fw.data());
      for (std::size_t i = 0; i < in.size(); ++i)
        ASSERT_EQ(float_bits(fw[i]), float_bits(f.widen(hw[i]))) << i;
    }
    if (f.dtype == DType::Float16) {  // the F16C path, both ways
      std::vector<uint16_t> hw(in.size());
      kernels::narrow_f16_f16c(n, in.data(), hw.data());
      for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(hw[i], f.round(in[i])) << i;
      std::vector<float> fw(in.size());
      kernels::widen_f16_f16c(n, hw.data(), fw.data());
      for (std::size_t i = 0; i < in.size(); ++i)
        ASSERT_EQ(float_bits(fw[i]), float_bits(f.widen(hw[i]))) << i;
      std::vector<uint16_t> all(0x10000);
      for (uint32_t h = 0; h < 0x10000; ++h) all[h] = static_cast<uint16_t>(h);
      std::vector<float> every(all.size());
      kernels::widen_f16_f16c(0x10000, all.data(), every.data());
      for (uint32_t h = 0; h < 0x10000; ++h)
        ASSERT_EQ(float_bits(every[h]), float_bits(f16_to_float(static_cast<uint16_t>(h)))) << h;
    }
  }
  if (kernels::best_isa() >= kernels::Isa::Avx512) {
    if (f.dtype == DType::BFloat16)
      kernels::run_avx512<&kernels::narrow_body<&float_to_bf16>>(n, in.data(), wide.data());
    else
      kernels::run_avx512<&kernels::narrow_body<&float_to_f16>>(n, in.data(), wide.data());
    ASSERT_EQ(wide, out) << "avx512";
  }
#endif
}

TEST_P(HalfConvert, StochasticRoundingPicksANeighbourAndKeepsExactValues) {
  const Format f = GetParam();
  std::mt19937 rng(5);
  for (const float x : hard_inputs(f)) {
    if (!std::isfinite(x)) continue;
    const uint32_t r = rng();
    const double got = decode(f, f.stochastic(x, r));
    const double nearest = reference_round(f, x);
    if (std::fabs(x) >= decode(f, f.dtype == DType::BFloat16 ? 0x7F7F : 0x7BFF)) {
      ASSERT_EQ(got, nearest) << x;  // from the largest finite value up: to nearest
      continue;
    }
    if (static_cast<double>(x) == nearest) {
      ASSERT_EQ(got, nearest) << std::hexfloat << x;
      continue;
    }
    // One of the two neighbours of x.
    int e;
    std::frexp(static_cast<double>(x), &e);
    const double spacing = std::ldexp(1.0, std::max(e - 1, f.min_exp) - (f.precision - 1));
    const double down = std::trunc(static_cast<double>(x) / spacing) * spacing;
    const double up = down + std::copysign(spacing, static_cast<double>(x));
    ASSERT_TRUE(got == down || got == up) << std::hexfloat << x << " -> " << got;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, HalfConvert, testing::Values(kBf16, kF16),
                         [](const testing::TestParamInfo<Format>& info) {
                           return info.param.dtype == DType::BFloat16 ? "bf16" : "f16";
                         });

}  // namespace
}  // namespace descent
