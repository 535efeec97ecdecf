/* SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state, so that a checkpoint can store it and a
 * resumed run draws the same numbers. */
#ifndef FASHION_MNIST_RNG_H
#define FASHION_MNIST_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Uniform in [0, 1), 53 bits. */
static inline double rng_uniform(uint64_t* state) {
  return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n <= 2^32 (Lemire's multiply-shift on the top 32 bits). */
static inline uint64_t rng_below(uint64_t* state, uint64_t n) {
  return ((rng_next(state) >> 32) * n) >> 32;
}

#endif
