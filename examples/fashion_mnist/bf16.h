/* bfloat16 storage for --dtype bf16: the parameters descent updates are bfloat16; the forward and
 * backward pass (CBLAS sgemm) run on their float32 widening, and the float32 gradients are
 * rounded to bfloat16 before the update, as a bfloat16 training loop does. Round to nearest even;
 * NaN stays NaN. */
#ifndef FASHION_MNIST_BF16_H
#define FASHION_MNIST_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t bf16_from_float(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
  return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

static inline float bf16_to_float(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline void bf16_round_array(const float* in, uint16_t* out, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) out[i] = bf16_from_float(in[i]);
}

static inline void bf16_widen_array(const uint16_t* in, float* out, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
}

#endif
