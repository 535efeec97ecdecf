// A persistent pool of worker threads for the elementwise update kernels (docs/performance.md).
//
// - Started lazily, on the first step that is big enough to share; grown (never shrunk) when a
//   larger thread count is asked for. A steady-state step allocates nothing.
// - run(workers, fn, ctx) calls fn(ctx, k, workers) once for every k in [0, workers): k == 0 on
//   the calling thread, the others on pool threads. The caller partitions the work statically by
//   k, so results never depend on which thread ran which part.
// - When the pool is busy (another thread is stepping an optimizer at the same time) or cannot
//   start its threads, the calling thread runs every k itself: same results, no parallelism.
// - Settings: DESCENT_NUM_THREADS (read once) or set_default_threads() give the process-wide
//   thread count (default: the CPUs this process may run on); an optimizer may override it.
//   DESCENT_MIN_ELEMENTS_PER_THREAD (read once, default 65536) is the least work given to one
//   thread: a step of fewer elements than twice that runs on the calling thread alone.
#pragma once

#include <cstddef>
#include <cstdint>

#include "descent/descent.h"

namespace descent::parallel {

using TaskFn = void (*)(void* ctx, std::size_t k, std::size_t workers);

// Runs fn(ctx, k, workers) for k in [0, workers). Does not throw; fn must not throw.
void run(std::size_t workers, TaskFn fn, void* ctx) noexcept;

// The process-wide thread count (>= 1).
std::size_t default_threads() noexcept;
// 0 restores the default (DESCENT_NUM_THREADS, else the CPUs available).
void set_default_threads(std::size_t n) noexcept;
// The least number of elements worth giving one thread (>= 1).
int64_t min_elements_per_thread() noexcept;

// How many workers a step of `elements` should use with `threads` allowed.
inline std::size_t workers_for(int64_t elements, std::size_t threads) noexcept {
  if (threads <= 1 || elements <= 0) return 1;
  const int64_t by_size = elements / min_elements_per_thread();
  if (by_size <= 1) return 1;
  return static_cast<uint64_t>(by_size) < threads ? static_cast<std::size_t>(by_size) : threads;
}

// The upper bound on any thread count (requests above it are clamped).
constexpr std::size_t kMaxThreads = DESCENT_MAX_THREADS;

}  // namespace descent::parallel
