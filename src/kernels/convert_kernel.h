// Conversions between float32 and the half-precision parameter dtypes, over arrays: widening
// (exact), rounding to nearest even, and stochastic rounding. Compiled per ISA like the other
// kernels (kernels/isa.h); the bodies are integer and float32 arithmetic without reductions, so
// every width gives the same bits.
#pragma once

#include <cstdint>

#include "common/dtype.h"
#include "common/half.h"
#include "kernels/isa.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace descent::kernels {

template <float (*ToFloat)(uint16_t)>
DESCENT_KERNEL_BODY void widen_body(int64_t n, const uint16_t* __restrict in,
                                    float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = ToFloat(in[i]);
}

template <uint16_t (*FromFloat)(float)>
DESCENT_KERNEL_BODY void narrow_body(int64_t n, const float* __restrict in,
                                     uint16_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = FromFloat(in[i]);
}

// The key of one tensor's stochastic rounding in one step; element i of the tensor draws
// bits(key, i). A counter-based hash (MurmurHash3's finaliser, twice): no state, so any split of
// the tensor (threads, blocks, shards) draws the same bits.
struct RoundingKey {
  uint32_t k0, k1;
};
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x85EBCA6Bu;
  x ^= x >> 13;
  x *= 0xC2B2AE35u;
  x ^= x >> 16;
  return x;
}
inline RoundingKey rounding_key(uint64_t seed, uint64_t step, uint64_t tensor) {
  const uint32_t a = mix32(static_cast<uint32_t>(seed) ^ 0x9E3779B9u);
  const uint32_t b = mix32(a ^ static_cast<uint32_t>(seed >> 32) ^ static_cast<uint32_t>(step));
  const uint32_t c = mix32(b ^ static_cast<uint32_t>(step >> 32) ^ static_cast<uint32_t>(tensor));
  return {c, mix32(c ^ static_cast<uint32_t>(tensor >> 32) ^ 0x7F4A7C15u)};
}
inline uint32_t random_bits(RoundingKey k, uint64_t i) {
  return mix32(mix32(static_cast<uint32_t>(i) ^ k.k0) + (static_cast<uint32_t>(i >> 32) ^ k.k1));
}

// bfloat16: add 16 random bits below the kept ones and truncate, so that x rounds up with
// probability equal to its distance from the value below. NaN as float_to_bf16; magnitudes from
// bfloat16's largest finite value up round to nearest even.
inline uint16_t float_to_bf16_stochastic(float f, uint32_t r) {
  const uint32_t u = float_bits(f);
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t sr = (u + (r >> 16)) >> 16;
  return a >= 0x7F7F0000u ? float_to_bf16(f) : static_cast<uint16_t>(sr);
}

// float16: the same in the normal range (13 dropped bits); below 2^-14 the value counted in units
// of 2^-24 (exact) rounds up with probability equal to its fraction; from the largest finite
// value (65504) up, round to nearest even.
inline uint16_t float_to_f16_stochastic(float f, uint32_t r) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  const uint32_t norm = (a - (112u << 23) + (r & 0x1FFFu)) >> 13;
  const float units = (a < 0x38800000u ? bits_float(a) : 0.0f) * 0x1p24f;  // < 1024: exact
  const uint32_t whole = static_cast<uint32_t>(static_cast<int32_t>(units));
  const float fraction = units - static_cast<float>(static_cast<int32_t>(units));
  const float draw = static_cast<float>(static_cast<int32_t>(r >> 8)) * 0x1p-24f;
  const uint32_t sub = whole + (draw < fraction ? 1u : 0u);
  const uint32_t r16 = sign | (a < 0x38800000u ? sub : norm);
  return a >= 0x477FE000u ? float_to_f16(f) : static_cast<uint16_t>(r16);
}

template <uint16_t (*Round)(float, uint32_t)>
DESCENT_KERNEL_BODY void narrow_stochastic_body(int64_t n, const float* __restrict in,
                                                uint16_t* __restrict out, RoundingKey key,
                                                uint64_t first) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = Round(in[i], random_bits(key, first + static_cast<uint64_t>(i)));
}

#if DESCENT_HAVE_ISA_CLONES
// float16 on AVX2/AVX-512 machines: the F16C instructions (every AVX2 CPU has them) convert 8
// values at once, rounding to nearest even with the same NaN rule as float_to_f16/f16_to_float
// (quiet, sign and top payload bits kept); the tail goes through the scalar functions.
// tests/internal/half_convert_test.cpp checks them against the scalar code.
__attribute__((target("avx2,f16c"))) inline void widen_f16_f16c(int64_t n, const uint16_t* in,
                                                                float* out) {
  const int64_t body = n - n % 8;
  for (int64_t i = 0; i < body; i += 8)
    _mm256_storeu_ps(out + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  for (int64_t i = body; i < n; ++i) out[i] = f16_to_float(in[i]);
}
__attribute__((target("avx2,f16c"))) inline void narrow_f16_f16c(int64_t n, const float* in,
                                                                 uint16_t* out) {
  const int64_t body = n - n % 8;
  for (int64_t i = 0; i < body; i += 8)
    _mm_storeu_si128(
        reinterpret_cast<__m128i*>(out + i),
        _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (int64_t i = body; i < n; ++i) out[i] = float_to_f16(in[i]);
}
// bfloat16 with AVX2 integer operations (the compiler's AVX-512F clone lacks 16-bit vector
// operations): the same rounding and NaN rule as float_to_bf16/bf16_to_float.
__attribute__((target("avx2"))) inline void widen_bf16_avx2(int64_t n, const uint16_t* in,
                                                            float* out) {
  const int64_t body = n - n % 8;
  for (int64_t i = 0; i < body; i += 8) {
    const __m256i h =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
  }
  for (int64_t i = body; i < n; ++i) out[i] = bf16_to_float(in[i]);
}
__attribute__((target("avx2"))) inline void narrow_bf16_avx2(int64_t n, const float* in,
                                                             uint16_t* out) {
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7FFF);
  const __m256i nan = _mm256_set1_epi32(0x7FC0);
  const int64_t body = n - n % 8;
  for (int64_t i = 0; i < body; i += 8) {
    const __m256 x = _mm256_loadu_ps(in + i);
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), lsb), 16);
    r = _mm256_blendv_epi8(r, nan, _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)));
    // 8 x 32 -> 8 x 16 (every value fits): pack within lanes, then bring the halves together.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xD8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(packed));
  }
  for (int64_t i = body; i < n; ++i) out[i] = float_to_bf16(in[i]);
}
#endif

// Entry points: the dtype picks the format.
inline void widen(DType dtype, int64_t n, const void* in, float* out) {
  const auto* h = static_cast<const uint16_t*>(in);
#if DESCENT_HAVE_ISA_CLONES
  if (active_isa() != Isa::Sse2)
    return dtype == DType::BFloat16 ? widen_bf16_avx2(n, h, out) : widen_f16_f16c(n, h, out);
#endif
  if (dtype == DType::BFloat16) return dispatch<&widen_body<&bf16_to_float>>(n, h, out);
  dispatch<&widen_body<&f16_to_float>>(n, h, out);
}
inline void narrow(DType dtype, int64_t n, const float* in, void* out) {
  auto* h = static_cast<uint16_t*>(out);
#if DESCENT_HAVE_ISA_CLONES
  if (active_isa() != Isa::Sse2)
    return dtype == DType::BFloat16 ? narrow_bf16_avx2(n, in, h) : narrow_f16_f16c(n, in, h);
#endif
  if (dtype == DType::BFloat16) return dispatch<&narrow_body<&float_to_bf16>>(n, in, h);
  dispatch<&narrow_body<&float_to_f16>>(n, in, h);
}
inline void narrow_stochastic(DType dtype, int64_t n, const float* in, void* out, RoundingKey key,
                              uint64_t first) {
  auto* h = static_cast<uint16_t*>(out);
  if (dtype == DType::BFloat16)
    dispatch<&narrow_stochastic_body<&float_to_bf16_stochastic>>(n, in, h, key, first);
  else
    dispatch<&narrow_stochastic_body<&float_to_f16_stochastic>>(n, in, h, key, first);
}

}  // namespace descent::kernels
