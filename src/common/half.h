// bfloat16 and float16: storage types, exact conversions, and arithmetic that rounds after every
// operation as MLX does on its CPU backend (each operation computed in float32, its result
// rounded to the half type). The conversions are plain integer and float32 arithmetic, written
// so that the compiler vectorises them in every ISA clone (kernels/isa.h) and gives the same bits
// at every width: float -> half rounds to nearest even (docs/precision.md).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace descent {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// ---- bfloat16 -------------------------------------------------------------------------------

inline float bf16_to_float(uint16_t h) {
  return bits_float(static_cast<uint32_t>(h) << 16);
}
// Round to nearest even; every NaN becomes 0x7FC0, as MLX's bfloat16.
inline uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? uint16_t{0x7FC0} : static_cast<uint16_t>(rounded);
}

// ---- float16 (IEEE binary16) ----------------------------------------------------------------

// Exact: every float16 is a float32. Subnormals are scaled by a float32 multiplication (exact).
inline float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  // Normal and zero/subnormal (exp == 0) share the shifted form; Inf/NaN get the top exponent.
  const uint32_t normal = ((exp + 112u) << 23) | (mant << 13);
  const float sub = static_cast<float>(mant) * 0x1p-24f;  // exact: mant < 2^10
  const uint32_t special = 0x7F800000u | (mant << 13) | (mant ? 0x400000u : 0u);
  const uint32_t magnitude = exp == 0x1Fu ? special : (exp == 0 ? float_bits(sub) : normal);
  return bits_float(sign | magnitude);
}

// Round to nearest even, subnormals and overflow to infinity included; NaN stays NaN (quiet,
// sign and top payload bits kept, as x86's F16C conversion).
inline uint16_t float_to_f16(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  // Values below 2^-14 (float16's smallest normal): add 0.5 so that the float32 addition rounds
  // the bits below 2^-24 to nearest even; the low mantissa bits are then the float16 subnormal.
  const float small = bits_float(a) + 0.5f;
  const uint32_t sub = float_bits(small) - float_bits(0.5f);
  // Normal range: rebias the exponent and round the 13 dropped bits to nearest even; a carry
  // moves into the exponent correctly, up to infinity (0x7C00).
  const uint32_t norm = (a - (112u << 23) + 0xFFFu + ((a >> 13) & 1u)) >> 13;
  const uint32_t nan = 0x7E00u | ((a >> 13) & 0x3FFu);
  uint32_t r = a < 0x38800000u ? sub : norm;
  r = a >= 0x477FF000u ? 0x7C00u : r;  // rounds to infinity (>= 65520)
  r = a > 0x7F800000u ? nan : r;
  return static_cast<uint16_t>(sign | r);
}

// A bfloat16 parameter or gradient read and written by a float32 computation (the fused path of
// the "float32" state precision): storage only, converted by kernels::load and kernels::store.
struct Bf16Storage {
  uint16_t bits;
};

// ---- arithmetic types for MLX's half-precision semantics --------------------------------------
// Each operation converts its operands to float32, computes, and rounds the result: MLX's CPU
// backend evaluates one primitive per operation and stores it in the array's dtype. Conversion
// from double goes through float32, as MLX turns a Python float into a weakly typed scalar.

template <uint16_t (*FromFloat)(float), float (*ToFloat)(uint16_t)>
struct RoundingHalf {
  uint16_t bits;

  RoundingHalf() = default;
  explicit RoundingHalf(float f) : bits(FromFloat(f)) {}
  explicit RoundingHalf(double d) : bits(FromFloat(static_cast<float>(d))) {}
  explicit RoundingHalf(int i) : bits(FromFloat(static_cast<float>(i))) {}
  explicit operator float() const { return ToFloat(bits); }
  explicit operator double() const { return ToFloat(bits); }
  float value() const { return ToFloat(bits); }

  friend RoundingHalf operator+(RoundingHalf a, RoundingHalf b) {
    return RoundingHalf(a.value() + b.value());
  }
  friend RoundingHalf operator-(RoundingHalf a, RoundingHalf b) {
    return RoundingHalf(a.value() - b.value());
  }
  friend RoundingHalf operator*(RoundingHalf a, RoundingHalf b) {
    return RoundingHalf(a.value() * b.value());
  }
  friend RoundingHalf operator/(RoundingHalf a, RoundingHalf b) {
    return RoundingHalf(a.value() / b.value());
  }
  friend RoundingHalf operator-(RoundingHalf a) { return RoundingHalf(-a.value()); }
  friend bool operator<(RoundingHalf a, RoundingHalf b) { return a.value() < b.value(); }
  friend bool operator>(RoundingHalf a, RoundingHalf b) { return a.value() > b.value(); }
  friend bool operator==(RoundingHalf a, RoundingHalf b) { return a.value() == b.value(); }
  friend bool operator!=(RoundingHalf a, RoundingHalf b) { return a.value() != b.value(); }
  friend RoundingHalf sqrt(RoundingHalf a) { return RoundingHalf(std::sqrt(a.value())); }
  friend RoundingHalf abs(RoundingHalf a) { return RoundingHalf(std::fabs(a.value())); }
};

using bfloat16 = RoundingHalf<&float_to_bf16, &bf16_to_float>;
using float16 = RoundingHalf<&float_to_f16, &f16_to_float>;
static_assert(sizeof(bfloat16) == 2 && sizeof(float16) == 2, "half types are 2 bytes");

}  // namespace descent
