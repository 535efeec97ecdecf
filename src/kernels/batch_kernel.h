// Many tensors in one call: the kernel body of an elementwise rule run over a list of float32 or
// float64 tensors, with the coefficients computed once and the instruction set chosen once
// (kernels/isa.h), so that 10,000 small tensors cost little more than one large one.
//
// On AVX2 and AVX-512 the last partial vector of each tensor (n % W elements, W = 32 or 64 bytes
// of elements) does not fall to the scalar loop the compiler emits: it is copied with masked
// loads into a W-element block on the stack, padded with copies of the tensor's last element (so
// no lane computes on a value the tensor does not hold, and no floating-point exception can
// arise that the last element would not raise itself), the body runs once on the block, and the
// first n % W lanes are written back with masked stores. Every element goes through the same
// IEEE operations as in the scalar loop (no FMA, kernels/isa.h), so the bits are the same at
// every width; only fewer instructions run.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/isa.h"

#if DESCENT_HAVE_ISA_CLONES
#include <immintrin.h>
#endif

namespace descent::kernels {

// The most state slots an elementwise rule has (Adam's m and v).
inline constexpr std::size_t kMaxBatchSlots = 2;

// One tensor (or a range of one) of a batch: n elements of the parameter, gradient and slots.
struct BatchItem {
  int64_t n;
  void* p;
  const void* g;
  void* s[kMaxBatchSlots];
};

// Body(n, p, g, s_0, ..., s_{K-1}, c) on item `it` (K = 1 or 2 slots), from element `at`.
template <auto Body, class T, std::size_t K, class C>
DESCENT_KERNEL_BODY void run_body(int64_t n, const BatchItem& it, int64_t at, const C& c) {
  static_assert(K == 1 || K == 2, "elementwise rules have one or two slots");
  T* p = static_cast<T*>(it.p) + at;
  const T* g = static_cast<const T*>(it.g) + at;
  if constexpr (K == 1)
    Body(n, p, g, static_cast<T*>(it.s[0]) + at, c);
  else
    Body(n, p, g, static_cast<T*>(it.s[0]) + at, static_cast<T*>(it.s[1]) + at, c);
}

template <auto Body, class T, std::size_t K, class C>
DESCENT_KERNEL_BODY void batch_scalar_tail(const BatchItem* items, std::size_t count, const C& c) {
  for (std::size_t i = 0; i < count; ++i) run_body<Body, T, K>(items[i].n, items[i], 0, c);
}

#if DESCENT_HAVE_ISA_CLONES

// ---- the masked copies of a tail: rem in [1, W) elements ------------------------------------

// Not always_inline: GCC refuses to force an AVX-512 function into the (generic) template that
// calls it, before that template is itself inlined into batch_avx512; plain inline suffices.
#define DESCENT_AVX512 __attribute__((target("avx512f"))) inline
DESCENT_AVX512 void tail_in(float* dst, const float* src, unsigned rem, int /*avx512*/) {
  const __mmask16 m = static_cast<__mmask16>((1u << rem) - 1);
  _mm512_store_ps(dst, _mm512_mask_loadu_ps(_mm512_set1_ps(src[rem - 1]), m, src));
}
DESCENT_AVX512 void tail_in(double* dst, const double* src, unsigned rem, int /*avx512*/) {
  const __mmask8 m = static_cast<__mmask8>((1u << rem) - 1);
  _mm512_store_pd(dst, _mm512_mask_loadu_pd(_mm512_set1_pd(src[rem - 1]), m, src));
}
DESCENT_AVX512 void tail_out(float* dst, const float* src, unsigned rem, int /*avx512*/) {
  _mm512_mask_storeu_ps(dst, static_cast<__mmask16>((1u << rem) - 1), _mm512_load_ps(src));
}
DESCENT_AVX512 void tail_out(double* dst, const double* src, unsigned rem, int /*avx512*/) {
  _mm512_mask_storeu_pd(dst, static_cast<__mmask8>((1u << rem) - 1), _mm512_load_pd(src));
}
#undef DESCENT_AVX512

// AVX2: lane masks from a sliding window over a table of all-ones then all-zeros.
alignas(64) inline constexpr int32_t kLaneMask32[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                        0,  0,  0,  0,  0,  0,  0,  0};
alignas(64) inline constexpr int64_t kLaneMask64[8] = {-1, -1, -1, -1, 0, 0, 0, 0};
#define DESCENT_AVX2 __attribute__((target("avx2"))) inline
DESCENT_AVX2 __m256i lane_mask(unsigned rem, float*) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask32 + 8 - rem));
}
DESCENT_AVX2 __m256i lane_mask(unsigned rem, double*) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask64 + 4 - rem));
}
DESCENT_AVX2 void tail_in(float* dst, const float* src, unsigned rem, long /*avx2*/) {
  const __m256i m = lane_mask(rem, dst);
  _mm256_store_ps(dst, _mm256_blendv_ps(_mm256_set1_ps(src[rem - 1]), _mm256_maskload_ps(src, m),
                                        _mm256_castsi256_ps(m)));
}
DESCENT_AVX2 void tail_in(double* dst, const double* src, unsigned rem, long /*avx2*/) {
  const __m256i m = lane_mask(rem, dst);
  _mm256_store_pd(dst, _mm256_blendv_pd(_mm256_set1_pd(src[rem - 1]), _mm256_maskload_pd(src, m),
                                        _mm256_castsi256_pd(m)));
}
DESCENT_AVX2 void tail_out(float* dst, const float* src, unsigned rem, long /*avx2*/) {
  _mm256_maskstore_ps(dst, lane_mask(rem, dst), _mm256_load_ps(src));
}
DESCENT_AVX2 void tail_out(double* dst, const double* src, unsigned rem, long /*avx2*/) {
  _mm256_maskstore_pd(dst, lane_mask(rem, dst), _mm256_load_pd(src));
}
#undef DESCENT_AVX2

// The vector part of every item, then its tail through a W-element block. `Tag` picks the
// tail_in/tail_out overloads of the instruction set (int: AVX-512, long: AVX2); it is called
// only from a function compiled for that set.
template <auto Body, class T, std::size_t K, std::size_t Bytes, class Tag, class C>
DESCENT_KERNEL_BODY void batch_vector_tail(const BatchItem* items, std::size_t count, const C& c) {
  constexpr int64_t W = static_cast<int64_t>(Bytes / sizeof(T));
  for (std::size_t i = 0; i < count; ++i) {
    const BatchItem& it = items[i];
    const int64_t whole = it.n / W * W;
    run_body<Body, T, K>(whole, it, 0, c);
    const auto rem = static_cast<unsigned>(it.n - whole);
    if (rem == 0) continue;
    alignas(64) T block[2 + K][W];
    tail_in(block[0], static_cast<T*>(it.p) + whole, rem, Tag{});
    tail_in(block[1], static_cast<const T*>(it.g) + whole, rem, Tag{});
    for (std::size_t s = 0; s < K; ++s)
      tail_in(block[2 + s], static_cast<T*>(it.s[s]) + whole, rem, Tag{});
    BatchItem local{W, block[0], block[1], {block[2], block[1 + K]}};
    run_body<Body, T, K>(W, local, 0, c);
    tail_out(static_cast<T*>(it.p) + whole, block[0], rem, Tag{});
    for (std::size_t s = 0; s < K; ++s)
      tail_out(static_cast<T*>(it.s[s]) + whole, block[2 + s], rem, Tag{});
  }
}

// The coefficients arrive by value: a local copy that no store through the tensors' pointers
// can alias, so the compiler keeps them in registers and vectorises every body (by reference,
// SGD's loop stayed scalar).
template <auto Body, class T, std::size_t K, class C>
__attribute__((target("avx512f"))) void batch_avx512(const BatchItem* items, std::size_t count,
                                                     C c) {
  batch_vector_tail<Body, T, K, 64, int>(items, count, c);
}
template <auto Body, class T, std::size_t K, class C>
__attribute__((target("avx2"))) void batch_avx2(const BatchItem* items, std::size_t count, C c) {
  batch_vector_tail<Body, T, K, 32, long>(items, count, c);
}
#endif

// Steps every item with Body (T = float or double, the parameter's type too) and coefficients c.
template <auto Body, class T, std::size_t K, class C>
void step_batch(const BatchItem* items, std::size_t count, const C& c) {
#if DESCENT_HAVE_ISA_CLONES
  switch (active_isa()) {
    case Isa::Avx512:
      return batch_avx512<Body, T, K>(items, count, c);
    case Isa::Avx2:
      return batch_avx2<Body, T, K>(items, count, c);
    case Isa::Sse2:
      break;
  }
#endif
  const C local = c;
  batch_scalar_tail<Body, T, K>(items, count, local);
}

}  // namespace descent::kernels
