// The bench's reference loops, compiled for this machine (-march=native -O3 -ffp-contract=fast,
// OpenMP over all cores, static schedule), as DeepSpeed's CPU Adam is built: the "peer" (the
// same fused per-element arithmetic, free to use FMA and every vector extension of this CPU) and
// the "stream" (the same memory traffic per element as a kind, trivial arithmetic: the memory
// roof). Not part of the library, which stays portable and bitwise MLX-exact.
#include "peer_kernels.h"

#include <omp.h>

#include <cmath>
#include <cstring>

#include "kernels/adadelta_kernel.h"
#include "kernels/adagrad_kernel.h"
#include "kernels/adam_kernel.h"
#include "kernels/adamax_kernel.h"
#include "kernels/lion_kernel.h"
#include "kernels/rmsprop_kernel.h"
#include "kernels/sgd_kernel.h"

namespace peer {
namespace {

using namespace descent::kernels;

// Calls body(begin, count) on each thread's contiguous, 64-byte aligned share of [0, n).
template <class Body>
void parallel(int64_t n, int64_t align, Body&& body) {
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t lo = n * t / nt / align * align,
            hi = t + 1 == nt ? n : n * (t + 1) / nt / align * align;
    if (hi > lo) body(lo, hi - lo);
  }
}

template <class T>
void step_t(const std::string& kind, int64_t n, T* p, const T* g, T** s) {
  const int64_t al = 64 / sizeof(T);
  if (kind == "adam" || kind == "adamw") {
    AdamCoefficients<T> c{};
    c.apply_decay = kind == "adamw";
    c.decay = T(1) - T(1e-3) * T(0.01);
    c.b1 = T(0.9), c.one_minus_b1 = T(0.1), c.b2 = T(0.999), c.one_minus_b2 = T(0.001);
    c.eps = T(1e-8), c.step_scale = T(1e-3);
    parallel(n, al, [&](int64_t b, int64_t k) {
      adam_step_body<T>(k, p + b, g + b, s[0] + b, s[1] + b, c);
    });
  } else if (kind == "sgd") {
    SgdCoefficients<T> c{T(1e-3), T(0), T(0.9), T(1), false, true, false, false};
    parallel(n, al, [&](int64_t b, int64_t k) { sgd_step_body<T>(k, p + b, g + b, s[0] + b, c); });
  } else if (kind == "lion") {
    LionCoefficients<T> c{T(1e-3), T(0.9), T(0.1), T(0.99), T(0.01), T(1), false};
    parallel(n, al, [&](int64_t b, int64_t k) { lion_step_body<T>(k, p + b, g + b, s[0] + b, c); });
  } else if (kind == "rmsprop") {
    RmspropCoefficients<T> c{T(1e-3), T(0.99), T(0.01), T(1e-8)};
    parallel(n, al,
             [&](int64_t b, int64_t k) { rmsprop_step_body<T>(k, p + b, g + b, s[0] + b, c); });
  } else if (kind == "adagrad") {
    AdagradCoefficients<T> c{T(1e-3), T(1e-8)};
    parallel(n, al,
             [&](int64_t b, int64_t k) { adagrad_step_body<T>(k, p + b, g + b, s[0] + b, c); });
  } else if (kind == "adadelta") {
    AdadeltaCoefficients<T> c{T(1e-3), T(0.9), T(0.1), T(1e-6)};
    parallel(n, al, [&](int64_t b, int64_t k) {
      adadelta_step_body<T>(k, p + b, g + b, s[0] + b, s[1] + b, c);
    });
  } else if (kind == "adamax") {
    AdamaxCoefficients<T> c{T(1e-3), T(0.9), T(0.1), T(0.999), T(1e-8)};
    parallel(n, al, [&](int64_t b, int64_t k) {
      adamax_step_body<T>(k, p + b, g + b, s[0] + b, s[1] + b, c);
    });
  }
}

template <class T>
void stream_t(int slots, int64_t n, T* __restrict p, const T* __restrict g, T** s) {
  T* __restrict s0 = slots > 0 ? s[0] : nullptr;
  T* __restrict s1 = slots > 1 ? s[1] : nullptr;
  parallel(n, 64 / sizeof(T), [&](int64_t b, int64_t k) {
    T* __restrict pp = p + b;
    const T* __restrict gg = g + b;
    if (slots == 0) {
      for (int64_t i = 0; i < k; ++i) pp[i] = pp[i] + T(1e-3) * gg[i];
    } else if (slots == 1) {
      T* __restrict a = s0 + b;
      for (int64_t i = 0; i < k; ++i) {
        a[i] = T(0.5) * a[i] + gg[i];
        pp[i] = pp[i] + T(1e-3) * gg[i];
      }
    } else {
      T* __restrict a = s0 + b;
      T* __restrict c = s1 + b;
      for (int64_t i = 0; i < k; ++i) {
        a[i] = T(0.5) * a[i] + gg[i];
        c[i] = T(0.5) * c[i] + gg[i];
        pp[i] = pp[i] + T(1e-3) * gg[i];
      }
    }
  });
}

}  // namespace

int threads() {
  return omp_get_max_threads();
}

void step(const std::string& kind, bool dbl, int64_t n, void* p, const void* g, void** s) {
  if (dbl)
    step_t<double>(kind, n, static_cast<double*>(p), static_cast<const double*>(g),
                   reinterpret_cast<double**>(s));
  else
    step_t<float>(kind, n, static_cast<float*>(p), static_cast<const float*>(g),
                  reinterpret_cast<float**>(s));
}

void stream(int slots, bool dbl, int64_t n, void* p, const void* g, void** s) {
  if (dbl)
    stream_t<double>(slots, n, static_cast<double*>(p), static_cast<const double*>(g),
                     reinterpret_cast<double**>(s));
  else
    stream_t<float>(slots, n, static_cast<float*>(p), static_cast<const float*>(g),
                    reinterpret_cast<float**>(s));
}

}  // namespace peer
