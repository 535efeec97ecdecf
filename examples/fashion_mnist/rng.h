/* SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state, so that a checkpoint can store it and a
 * resumed run draws the same numbers. */
#ifndef FASHION_MNIST_RNG_H
#define FASHION_MNIST_RNG_H

#include <stddef.h>
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

/* perm = a uniformly random permutation of 0..n-1 (Fisher-Yates from the top): the data order
 * of an epoch, the same for every program and rank that draws from the same state. */
static inline void rng_shuffle(uint32_t* perm, size_t n, uint64_t* state) {
  size_t i;
  for (i = 0; i < n; ++i) perm[i] = (uint32_t)i;
  for (i = n - 1; i > 0; --i) {
    const size_t j = (size_t)rng_below(state, (uint64_t)i + 1);
    const uint32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

#endif
