// bfloat16 and float16 parameters under the three state-precision policies (docs/precision.md),
// checked against independent references: the float32 optimizer run on the same rounded inputs,
// and half-precision rounding computed here in double arithmetic (not the library's bit code).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "api_test_support.h"
#include "descent/descent.h"

namespace {

using api_test::Handle;

// ---- an independent model of the two formats -------------------------------------------------

struct Format {
  descent_dtype dtype;
  int precision;  // significand bits, the implicit one included
  int min_exp;    // exponent of the smallest normal
  double max;     // largest finite
};
const Format kBf16{DESCENT_BFLOAT16, 8, -126, 0x1.FEp127};
const Format kF16{DESCENT_FLOAT16, 11, -14, 65504.0};

// Round to nearest even in `f`, by scaling to an integer count of the spacing at x (exact in
// double) and std::nearbyint (round half to even in the default mode).
double round_to(const Format& f, double x) {
  if (std::isnan(x) || std::isinf(x) || x == 0.0) return x;
  int e;
  std::frexp(x, &e);  // |x| in [2^(e-1), 2^e)
  const int exp = std::max(e - 1, f.min_exp);
  const double spacing = std::ldexp(1.0, exp - (f.precision - 1));
  const double r = std::nearbyint(x / spacing) * spacing;
  // Beyond the largest finite value plus half its spacing, round to nearest even overflows.
  const int max_exp = f.dtype == DESCENT_BFLOAT16 ? 127 : 15;
  const double overflow = f.max + std::ldexp(1.0, max_exp - (f.precision - 1) - 1);
  if (std::fabs(x) >= overflow) return std::copysign(INFINITY, x);
  return r;
}

// Decodes the 2-byte pattern (sign, exponent, fraction) with ldexp.
double decode(const Format& f, uint16_t h) {
  const int frac_bits = f.precision - 1;
  const int exp_bits = 15 - frac_bits;
  const int bias = (1 << (exp_bits - 1)) - 1;
  const int e = (h >> frac_bits) & ((1 << exp_bits) - 1);
  const int m = h & ((1 << frac_bits) - 1);
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (e == (1 << exp_bits) - 1) return m ? NAN : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(m, 1 - bias - frac_bits);
  return sign * std::ldexp(m + (1 << frac_bits), e - bias - frac_bits);
}

// Encodes a value exactly representable in `f` (as round_to returns).
uint16_t encode(const Format& f, double v) {
  const int frac_bits = f.precision - 1;
  const int exp_bits = 15 - frac_bits;
  const int bias = (1 << (exp_bits - 1)) - 1;
  const uint16_t sign = std::signbit(v) ? 0x8000 : 0;
  const double a = std::fabs(v);
  if (std::isnan(v)) return 0x7FFF;
  if (std::isinf(v)) return sign | static_cast<uint16_t>(((1 << exp_bits) - 1) << frac_bits);
  if (a == 0.0) return sign;
  int e;
  std::frexp(a, &e);
  int exp = e - 1;
  if (exp < f.min_exp) {  // subnormal
    const double m = a / std::ldexp(1.0, f.min_exp - frac_bits);
    return sign | static_cast<uint16_t>(m);
  }
  const double m = a / std::ldexp(1.0, exp - frac_bits) - (1 << frac_bits);
  return sign | static_cast<uint16_t>(((exp + bias) << frac_bits) | static_cast<int>(m));
}

// ---- helpers -------------------------------------------------------------------------------

void configure(descent_optimizer* h, const std::string& kind, const char* policy) {
  ASSERT_EQ(descent_optimizer_set_double(h, "learning_rate", kind == "muon" ? 0.02 : 0.01),
            DESCENT_OK);
  ASSERT_EQ(descent_optimizer_set_string(h, "state_precision", policy), DESCENT_OK)
      << descent_optimizer_last_error(h);
  if (kind == "sgd") {
    ASSERT_EQ(descent_optimizer_set_double(h, "momentum", 0.9), DESCENT_OK);
  }
  if (kind == "adamw" || kind == "adam") {
    ASSERT_EQ(descent_optimizer_set_bool(h, "bias_correction", true), DESCENT_OK);
  }
}

std::vector<float> state_floats(descent_optimizer* h, const std::string& key) {
  std::size_t ndim = 0;
  int64_t shape[DESCENT_MAX_NDIM];
  descent_dtype dt = DESCENT_FLOAT64;
  EXPECT_EQ(descent_optimizer_state_info(h, key.c_str(), &dt, &ndim, shape, DESCENT_MAX_NDIM),
            DESCENT_OK)
      << key << ": " << descent_optimizer_last_error(h);
  EXPECT_EQ(dt, DESCENT_FLOAT32) << key;
  int64_t n = 1;
  for (std::size_t i = 0; i < ndim; ++i) n *= shape[i];
  std::vector<float> out(static_cast<std::size_t>(n));
  EXPECT_EQ(descent_optimizer_state_get(h, key.c_str(), DESCENT_FLOAT32, out.data(), out.size()),
            DESCENT_OK);
  return out;
}

std::vector<std::string> slot_keys(descent_optimizer* h) {
  std::vector<std::string> out;
  for (const auto& k : api_test::state_keys(h))
    if (k != "step" && k != "learning_rate") out.push_back(k);
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

const std::vector<int64_t> kShape{6, 10};
constexpr int64_t kNumel = 60;

struct HalfCase {
  std::string kind;
  Format format;
};

void PrintTo(const HalfCase& c, std::ostream* os) {
  *os << c.kind << (c.format.dtype == DESCENT_BFLOAT16 ? " bfloat16" : " float16");
}

std::string case_name(const testing::TestParamInfo<HalfCase>& info) {
  return info.param.kind + (info.param.format.dtype == DESCENT_BFLOAT16 ? "_bf16" : "_f16");
}

std::vector<HalfCase> all_cases() {
  std::vector<HalfCase> out;
  for (const auto& k : api_test::rule_kinds())
    for (const Format& f : {kBf16, kF16}) out.push_back({k, f});
  return out;
}

class HalfPrecision : public testing::TestWithParam<HalfCase> {};

// float32 policy: each step equals the float32 optimizer's step from the widened parameter and
// gradient, with the parameter then rounded to nearest even; the state slots bit for bit.
// master policy: the master copy follows the float32 trajectory exactly (never rounded) and the
// parameter is its rounding.
TEST_P(HalfPrecision, Float32AndMasterPoliciesFollowTheFloat32Optimizer) {
  const HalfCase c = GetParam();
  for (const char* policy : {"float32", "master"}) {
    SCOPED_TRACE(policy);
    const bool master = std::string(policy) == "master";
    Handle half(c.kind.c_str()), ref(c.kind.c_str());
    configure(half, c.kind, policy);
    configure(ref, c.kind, "float32");
    DESCENT_ASSERT_OK(half,
                      descent_optimizer_add_parameter(half, "w", c.format.dtype, 2, kShape.data()));
    DESCENT_ASSERT_OK(ref,
                      descent_optimizer_add_parameter(ref, "w", DESCENT_FLOAT32, 2, kShape.data()));
    std::vector<uint16_t> p(kNumel), g(kNumel);
    std::vector<float> p32(kNumel), g32(kNumel);
    for (int64_t i = 0; i < kNumel; ++i) {
      const double v = round_to(c.format, api_test::uniform(17 + i));
      p[i] = encode(c.format, v);
      p32[i] = static_cast<float>(v);
    }
    for (int step = 0; step < 6; ++step) {
      for (int64_t i = 0; i < kNumel; ++i) {
        const double v = round_to(c.format, 0.3 * api_test::uniform(1000 * step + i));
        g[i] = encode(c.format, v);
        g32[i] = static_cast<float>(v);
      }
      const descent_dtype hd = c.format.dtype, fd = DESCENT_FLOAT32;
      const int64_t n = kNumel;
      const char* name = "w";
      void* hp = p.data();
      const void* hg = g.data();
      void* rp = p32.data();
      const void* rg = g32.data();
      DESCENT_ASSERT_OK(half, descent_optimizer_update(half, 1, &name, &hd, &n, &hp, &hg));
      DESCENT_ASSERT_OK(ref, descent_optimizer_update(ref, 1, &name, &fd, &n, &rp, &rg));
      // The reference parameter after the step, rounded once (float32 policy: the next step
      // starts from the rounded value; master: from the unrounded one).
      for (int64_t i = 0; i < kNumel; ++i) {
        const double want = round_to(c.format, p32[i]);
        const double got = decode(c.format, p[i]);
        ASSERT_TRUE(got == want || (std::isnan(got) && std::isnan(want)))
            << "step " << step << " element " << i << ": " << got << " vs " << want << " (from "
            << p32[i] << ")";
        if (!master) p32[i] = static_cast<float>(want);
      }
      for (const auto& key : slot_keys(ref))
        ASSERT_TRUE(same_bits(state_floats(half, key), state_floats(ref, key)))
            << key << " at step " << step;
      if (master) {
        ASSERT_TRUE(same_bits(state_floats(half, "w.master"), p32)) << "step " << step;
      }
    }
    const auto keys = slot_keys(half);
    EXPECT_EQ(keys.size(), slot_keys(ref).size() + (master ? 1 : 0));
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, HalfPrecision, testing::ValuesIn(all_cases()), case_name);

// ---- the "param" policy: MLX's per-operation rounding, its failures included ------------------

struct OneTensor {
  Format format;
  std::vector<uint16_t> p, g;
  explicit OneTensor(const Format& f, int64_t n, double p0, double g0)
      : format(f), p(n, encode(f, round_to(f, p0))), g(n, encode(f, round_to(f, g0))) {}
  descent_status step(descent_optimizer* h) {
    const descent_dtype d = format.dtype;
    const int64_t n = static_cast<int64_t>(p.size());
    const char* name = "w";
    void* pp = p.data();
    const void* gp = g.data();
    return descent_optimizer_update(h, 1, &name, &d, &n, &pp, &gp);
  }
  double param(std::size_t i = 0) const { return decode(format, p[i]); }
};

Handle adam_on(const Format& f, const char* kind, const char* policy, double lr) {
  Handle h(kind);
  EXPECT_EQ(descent_optimizer_set_double(h, "learning_rate", lr), DESCENT_OK);
  EXPECT_EQ(descent_optimizer_set_string(h, "state_precision", policy), DESCENT_OK);
  const int64_t n = 4;
  EXPECT_EQ(descent_optimizer_add_parameter(h, "w", f.dtype, 1, &n), DESCENT_OK);
  return h;
}

std::vector<double> half_state(descent_optimizer* h, const char* key, const Format& f) {
  std::vector<uint16_t> raw(4);
  EXPECT_EQ(descent_optimizer_state_get(h, key, f.dtype, raw.data(), raw.size()), DESCENT_OK)
      << descent_optimizer_last_error(h);
  std::vector<double> out;
  for (uint16_t r : raw) out.push_back(decode(f, r));
  return out;
}

// Adam's second moment in bfloat16 under "param": beta2 = 0.999 rounds to 1.0, so v never decays:
// v_t = round(round(1.0 * v) + round(round(1 - 0.999) * round(g * g))).
TEST(HalfPrecisionParam, Bf16Beta2RoundsToOneAndTheSecondMomentNeverDecays) {
  Handle h = adam_on(kBf16, "adam", "param", 0.001);
  OneTensor t(kBf16, 4, 1.0, 1.0);
  const double c = round_to(kBf16, round_to(kBf16, 1.0 - 0.999) * 1.0);
  double v = 0.0;
  for (int s = 0; s < 3; ++s) {
    DESCENT_ASSERT_OK(h, t.step(h));
    v = round_to(kBf16, round_to(kBf16, round_to(kBf16, 0.999) * v) + c);
    EXPECT_EQ(half_state(h, "w.v", kBf16)[0], v) << "step " << s;
  }
  EXPECT_EQ(round_to(kBf16, 0.999), 1.0);
  EXPECT_EQ(v, round_to(kBf16, round_to(kBf16, c + c) + c));  // no decay at all
  // The same run under "float32": beta2 stays 0.999 (float32), the state is float32.
  Handle f = adam_on(kBf16, "adam", "float32", 0.001);
  OneTensor u(kBf16, 4, 1.0, 1.0);
  for (int s = 0; s < 3; ++s) DESCENT_ASSERT_OK(f, u.step(f));
  const float v32 = state_floats(f, "w.v")[0];
  float want = 0.0f;
  for (int s = 0; s < 3; ++s) want = 0.999f * want + 0.001f * (1.0f * 1.0f);
  EXPECT_EQ(v32, want);
}

// AdamW in bfloat16 with a small lr * wd: 1 - lr*wd rounds to 1 and weight decay vanishes under
// "param" (and "float32" rounds the decayed weight back to 1 each step); "master" accumulates it.
TEST(HalfPrecisionParam, Bf16WeightDecayVanishesUnlessMaster) {
  const double lr = 1e-3, wd = 0.01;
  double expect_master = 1.0;
  for (const char* policy : {"param", "float32", "master"}) {
    Handle h = adam_on(kBf16, "adamw", policy, lr);
    DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "weight_decay", wd));
    OneTensor t(kBf16, 4, 1.0, 0.0);
    float master = 1.0f;
    const float decay = 1.0f - static_cast<float>(lr) * static_cast<float>(wd);
    for (int s = 0; s < 2000; ++s) {
      ASSERT_EQ(t.step(h), DESCENT_OK);
      master = master * decay;  // zero gradient: m = v = 0, the step adds 0 / eps = 0
    }
    if (std::string(policy) == "master") {
      EXPECT_EQ(state_floats(h, "w.master")[0], master);
      EXPECT_EQ(t.param(), round_to(kBf16, master));
      EXPECT_LT(t.param(), 0.99);
      expect_master = master;
    } else {
      EXPECT_EQ(t.param(), 1.0) << policy;
    }
  }
  EXPECT_LT(expect_master, 0.99);
}

// float16 under "param": eps = 1e-8 rounds to 0, so an element that has only seen zero gradients
// gets 0 / 0 = NaN on the first step; a gradient of 1e-3 makes (1 - beta2) * g^2 underflow to 0
// and m / 0 sends the weight to -inf. MLX's behaviour, kept in this mode; "float32" and "master"
// keep both finite.
TEST(HalfPrecisionParam, F16EpsUnderflowAndSmallGradientOverflow) {
  for (const char* policy : {"param", "float32", "master"}) {
    SCOPED_TRACE(policy);
    const bool param = std::string(policy) == "param";
    {
      Handle h = adam_on(kF16, "adamw", policy, 1e-3);
      OneTensor t(kF16, 4, 0.5, 0.0);
      DESCENT_ASSERT_OK(h, t.step(h));
      if (param)
        EXPECT_TRUE(std::isnan(t.param()));
      else
        EXPECT_EQ(t.param(), round_to(kF16, 0.5f * (1.0f - 1e-3f * 0.01f)));
    }
    {
      Handle h = adam_on(kF16, "adamw", policy, 1e-3);
      OneTensor t(kF16, 4, 0.5, 1e-3);
      DESCENT_ASSERT_OK(h, t.step(h));
      if (param) {
        EXPECT_EQ(half_state(h, "w.v", kF16)[0], 0.0);  // 0.001 * 1e-6 underflows
        EXPECT_EQ(t.param(), -INFINITY);
      } else {
        EXPECT_TRUE(std::isfinite(t.param()));
        EXPECT_GT(state_floats(h, "w.v")[0], 0.0f);
      }
    }
  }
}

// The "param" policy keeps the state in the parameter's dtype, and a state saved in it loads
// back and continues bit for bit (BF16/F16 safetensors).
TEST(HalfPrecisionParam, StateInTheParameterDtypeSavesAndResumes) {
  for (const Format& f : {kBf16, kF16}) {
    for (const char* policy : {"param", "float32", "master"}) {
      SCOPED_TRACE(policy);
      Handle a = adam_on(f, "adam", policy, 0.01);
      OneTensor t(f, 4, 0.75, 0.125);
      for (int s = 0; s < 3; ++s) DESCENT_ASSERT_OK(a, t.step(a));
      std::size_t size = 0;
      DESCENT_ASSERT_OK(a, descent_optimizer_save_to_buffer(a, nullptr, 0, &size));
      std::vector<unsigned char> file(size);
      DESCENT_ASSERT_OK(a, descent_optimizer_save_to_buffer(a, file.data(), size, &size));
      const std::string text(file.begin(), file.end());
      const bool param = std::string(policy) == "param";
      const char* tag = f.dtype == DESCENT_BFLOAT16 ? "\"BF16\"" : "\"F16\"";
      EXPECT_EQ(text.find(tag) != std::string::npos, param);
      EXPECT_EQ(text.find("w.master") != std::string::npos, std::string(policy) == "master");

      Handle b("adam");  // configured by the file
      const int64_t n = 4;
      DESCENT_ASSERT_OK(b, descent_optimizer_add_parameter(b, "w", f.dtype, 1, &n));
      DESCENT_ASSERT_OK(b, descent_optimizer_load_from_buffer(b, file.data(), file.size()));
      OneTensor u = t;
      for (int s = 0; s < 2; ++s) {
        DESCENT_ASSERT_OK(a, t.step(a));
        DESCENT_ASSERT_OK(b, u.step(b));
      }
      EXPECT_EQ(t.p, u.p);
      EXPECT_EQ(api_test::state_snapshot(a), api_test::state_snapshot(b));
      char value[16];
      std::size_t len = 0;
      DESCENT_ASSERT_OK(b, descent_optimizer_get_string(b, "state_precision", value, 16, &len));
      EXPECT_STREQ(value, policy);
    }
  }
}

// A state file as MLX writes it for a bfloat16 parameter ("__metadata__": null; the moments in
// BF16) loads into a float32-policy optimizer by widening exactly, and into a "param" one as is.
std::vector<unsigned char> mlx_style_file(const std::vector<uint16_t>& m,
                                          const std::vector<uint16_t>& v) {
  const std::string header =
      "{\"__metadata__\":null,"
      "\"learning_rate\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
      "\"step\":{\"dtype\":\"U64\",\"shape\":[],\"data_offsets\":[4,12]},"
      "\"w.m\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[12,20]},"
      "\"w.v\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[20,28]}}";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  std::string out;
  const uint64_t len = padded.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(len >> (8 * i)));
  out += padded;
  const float lr = 0.01f;
  const uint64_t step = 2;
  out.append(reinterpret_cast<const char*>(&lr), 4);
  out.append(reinterpret_cast<const char*>(&step), 8);
  out.append(reinterpret_cast<const char*>(m.data()), 8);
  out.append(reinterpret_cast<const char*>(v.data()), 8);
  return std::vector<unsigned char>(out.begin(), out.end());
}

TEST(HalfPrecisionParam, MlxHalfStateLoadsIntoFloat32AndParamSlots) {
  const std::vector<uint16_t> m{0x3F80, 0xBE00, 0x0001, 0x4049}, v{0x3C23, 0x0000, 0x7F7F, 0x3A83};
  const auto file = mlx_style_file(m, v);
  Handle wide = adam_on(kBf16, "adam", "float32", 0.5);
  DESCENT_ASSERT_OK(wide, descent_optimizer_load_from_buffer(wide, file.data(), file.size()));
  const auto m32 = state_floats(wide, "w.m"), v32 = state_floats(wide, "w.v");
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(static_cast<double>(m32[i]), decode(kBf16, m[i]));
    EXPECT_EQ(static_cast<double>(v32[i]), decode(kBf16, v[i]));
  }
  EXPECT_EQ(api_test::step_of(wide), 2u);
  Handle same = adam_on(kBf16, "adam", "param", 0.5);
  DESCENT_ASSERT_OK(same, descent_optimizer_load_from_buffer(same, file.data(), file.size()));
  std::vector<uint16_t> raw(4);
  DESCENT_ASSERT_OK(same,
                    descent_optimizer_state_get(same, "w.v", DESCENT_BFLOAT16, raw.data(), 4));
  EXPECT_EQ(raw, v);
  // A master-policy optimizer needs its master slots: the file lacks them.
  Handle master = adam_on(kBf16, "adam", "master", 0.5);
  EXPECT_FAILS(master, nullptr, DESCENT_ERR_UNKNOWN_KEY, "w.master",
               descent_optimizer_load_from_buffer(master, file.data(), file.size()));
}

// ---- stochastic rounding -------------------------------------------------------------------

TEST(HalfPrecisionStochastic, MeanConvergesAndBitsAreReproducible) {
  // SGD on a bfloat16 parameter p = 1 with g = -(2^-10) and lr = 1: the float32 result
  // 1 + 2^-10 lies 1/8 of the way from 1 to the next bfloat16 (1 + 2^-7).
  for (const Format& f : {kBf16, kF16}) {
    SCOPED_TRACE(f.dtype);
    const int64_t n = 200000;
    const double step = f.dtype == DESCENT_BFLOAT16 ? 0x1p-7 : 0x1p-10;
    const double target = 1.0 + step / 8;
    auto run = [&](int64_t seed, std::size_t threads) {
      Handle h("sgd");
      EXPECT_EQ(descent_optimizer_set_double(h, "learning_rate", 1.0), DESCENT_OK);
      EXPECT_EQ(descent_optimizer_set_bool(h, "stochastic_rounding", true), DESCENT_OK);
      EXPECT_EQ(descent_optimizer_set_int(h, "rounding_seed", seed), DESCENT_OK);
      EXPECT_EQ(descent_optimizer_set_num_threads(h, threads), DESCENT_OK);
      EXPECT_EQ(descent_optimizer_add_parameter(h, "w", f.dtype, 1, &n), DESCENT_OK);
      OneTensor t(f, n, 1.0, 0.0);
      for (auto& x : t.g) x = encode(f, -(step / 8));  // a power of two: exact in both formats
      EXPECT_EQ(t.step(h), DESCENT_OK) << descent_optimizer_last_error(h);
      return t.p;
    };
    const auto a = run(7, 1);
    double sum = 0.0;
    std::size_t up = 0;
    for (uint16_t x : a) {
      const double v = decode(f, x);
      ASSERT_TRUE(v == 1.0 || v == 1.0 + step) << v;
      up += v != 1.0;
      sum += v;
    }
    const double mean = sum / static_cast<double>(n);
    // Binomial(n, 1/8): the mean's standard deviation is step * sqrt(7/64 / n) ~ 7.4e-4 * step.
    EXPECT_NEAR(mean, target, 6 * step * std::sqrt(7.0 / 64.0 / static_cast<double>(n)));
    EXPECT_GT(up, 0u);
    EXPECT_EQ(run(7, 1), a) << "same seed, same bits";
    EXPECT_EQ(run(7, 3), a) << "the thread count changes nothing";
    EXPECT_NE(run(8, 1), a) << "another seed draws other bits";
  }
}

// ---- threads and bad input -----------------------------------------------------------------

TEST(HalfPrecisionThreads, EveryPolicyGivesTheSameBitsOnOneAndThreeThreads) {
  for (const char* policy : {"float32", "master", "param"}) {
    SCOPED_TRACE(policy);
    std::vector<std::vector<api_test::Slot>> states;
    std::vector<std::vector<uint16_t>> params;
    for (std::size_t threads : {1u, 3u}) {
      Handle h("adamw");
      DESCENT_ASSERT_OK(h, descent_optimizer_set_double(h, "learning_rate", 0.01));
      DESCENT_ASSERT_OK(h, descent_optimizer_set_string(h, "state_precision", policy));
      DESCENT_ASSERT_OK(h, descent_optimizer_set_num_threads(h, threads));
      const int64_t n = 300007;
      DESCENT_ASSERT_OK(h, descent_optimizer_add_parameter(h, "w", DESCENT_BFLOAT16, 1, &n));
      OneTensor t(kBf16, n, 0.0, 0.0);
      for (int64_t i = 0; i < n; ++i) {
        t.p[i] = encode(kBf16, round_to(kBf16, api_test::uniform(i)));
        t.g[i] = encode(kBf16, round_to(kBf16, 0.1 * api_test::uniform(i + n)));
      }
      for (int s = 0; s < 3; ++s) DESCENT_ASSERT_OK(h, t.step(h));
      params.push_back(t.p);
      states.push_back(api_test::state_snapshot(h));
    }
    EXPECT_EQ(params[0], params[1]);
    EXPECT_EQ(states[0], states[1]);
  }
}

TEST(HalfPrecisionBadInput, ClearErrorsAndNothingChanged) {
  Handle h = adam_on(kBf16, "adam", "float32", 0.01);
  OneTensor t(kBf16, 4, 0.5, 0.25);
  // A dtype other than the declared one.
  {
    const descent_dtype d = DESCENT_FLOAT32;
    const int64_t n = 4;
    const char* name = "w";
    std::vector<float> p(4, 1.0f), g(4, 1.0f);
    void* pp = p.data();
    const void* gp = g.data();
    EXPECT_FAILS(h, nullptr, DESCENT_ERR_DTYPE_MISMATCH, "bfloat16",
                 descent_optimizer_update(h, 1, &name, &d, &n, &pp, &gp));
  }
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "state_precision",
               descent_optimizer_set_string(h, "state_precision", "float8"));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_ARGUMENT, "stochastic_rounding",
               descent_optimizer_configure_json(
                   h, "{\"state_precision\": \"master\", \"stochastic_rounding\": true}"));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_OUT_OF_RANGE, "rounding_seed",
               descent_optimizer_set_int(h, "rounding_seed", -1));
  DESCENT_ASSERT_OK(h, t.step(h));
  // Fixed once the state exists.
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_STATE, "state_precision",
               descent_optimizer_set_string(h, "state_precision", "master"));
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_INVALID_STATE, "state_precision",
               descent_optimizer_configure_json(h, "{\"state_precision\": \"param\"}"));
  DESCENT_EXPECT_OK(h, descent_optimizer_set_string(h, "state_precision", "float32"));
  // A half slot read as float32 (and the reverse) is a dtype mismatch.
  std::vector<uint16_t> raw(4);
  EXPECT_FAILS(h, nullptr, DESCENT_ERR_DTYPE_MISMATCH, "w.m",
               descent_optimizer_state_get(h, "w.m", DESCENT_BFLOAT16, raw.data(), 4));
}

// ---- clip_grad_norm over half-precision gradients ------------------------------------------

TEST(HalfPrecisionClip, NormInDoubleAndScaledThroughFloat32) {
  std::vector<uint16_t> a(5), b(3);
  double sum = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double v = round_to(kBf16, 3.0 * api_test::uniform(i));
    a[i] = encode(kBf16, v);
    sum += v * v;
  }
  for (std::size_t i = 0; i < b.size(); ++i) {
    const double v = round_to(kF16, 2.0 * api_test::uniform(i + 50));
    b[i] = encode(kF16, v);
    sum += v * v;
  }
  const std::vector<uint16_t> a0 = a, b0 = b;
  const descent_dtype dtypes[2] = {DESCENT_BFLOAT16, DESCENT_FLOAT16};
  const int64_t numels[2] = {5, 3};
  void* grads[2] = {a.data(), b.data()};
  double total = 0.0;
  ASSERT_EQ(descent_clip_grad_norm(2, dtypes, numels, grads, 1.0, &total, nullptr, 0), DESCENT_OK)
      << descent_last_error();
  EXPECT_EQ(total, static_cast<double>(static_cast<float>(std::sqrt(sum))));
  const float scale = 1.0f / (static_cast<float>(total) + 1e-6f);
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(decode(kBf16, a[i]),
              round_to(kBf16, static_cast<float>(decode(kBf16, a0[i])) * scale));
  for (std::size_t i = 0; i < b.size(); ++i)
    EXPECT_EQ(decode(kF16, b[i]), round_to(kF16, static_cast<float>(decode(kF16, b0[i])) * scale));
}

// ---- the reference model itself ---------------------------------------------------------------

TEST(HalfPrecisionReference, RoundingModelMatchesKnownValues) {
  EXPECT_EQ(round_to(kBf16, 0.999), 1.0);
  EXPECT_EQ(round_to(kF16, 1e-8), 0.0);
  EXPECT_EQ(round_to(kF16, 65519.0), 65504.0);
  EXPECT_EQ(round_to(kF16, 65520.0), INFINITY);
  EXPECT_EQ(round_to(kF16, 0x1p-25), 0.0);        // a tie with 0: even
  EXPECT_EQ(round_to(kF16, 0x1.8p-25), 0x1p-24);  // above the tie
  EXPECT_EQ(encode(kBf16, 1.0), 0x3F80);
  EXPECT_EQ(encode(kF16, 1.0), 0x3C00);
  EXPECT_EQ(encode(kF16, 0x1p-24), 0x0001);
  EXPECT_EQ(decode(kF16, 0x7BFF), 65504.0);
  EXPECT_EQ(decode(kBf16, 0x7F7F), kBf16.max);
}

}  // namespace
