// MLX's CPU cosine for float32 (mlx/backend/cpu/simd/math.h, sincos<false>): the Cephes
// polynomial evaluated in float32 with fused multiply-adds, which cosine_decay uses. glibc's cosf
// differs from it by one ulp for some arguments, so the schedules use this one
// (mlx-semantics.md §4a).
#pragma once

#include <cmath>
#include <cstdint>

namespace descent::schedules {

inline float mlx_cos(float in) {
  float x = std::fabs(in);
  if (!(x <= 8388608.0f)) return std::cos(in);  // |x| > 2^23 (or NaN): MLX falls back to std::cos
  float y = x * 1.27323954473516f;              // scale by 4/pi
  uint32_t e = static_cast<uint32_t>(y);
  e = (e + 1u) & ~1u;
  y = static_cast<float>(e);
  // Extended-precision modular arithmetic: x - y * pi/4 in three parts.
  x = std::fmaf(y, -0.78515625f, x);
  x = std::fmaf(y, -2.4187564849853515625e-4f, x);
  x = std::fmaf(y, -3.77489497744594108e-8f, x);
  const bool keep_sign = ((e - 2u) & 4u) != 0;  // uint32 wrap-around, as MLX
  const float z = x * x;
  float y1 = std::fmaf(z, 2.443315711809948e-5f, -1.388731625493765e-3f);
  float y2 = std::fmaf(z, -1.9515295891e-4f, 8.3321608736e-3f);
  y1 = std::fmaf(y1, z, 4.166664568298827e-2f);
  y2 = std::fmaf(y2, z, -1.6666654611e-1f);
  y1 = y1 * z;
  y2 = y2 * z;
  y1 = y1 * z;
  y2 = std::fmaf(x, y2, x);
  y1 = std::fmaf(z, -0.5f, y1);
  y1 = y1 + 1.0f;
  const float c = (e & 2u) ? y2 : y1;
  return keep_sign ? c : -c;
}

}  // namespace descent::schedules
