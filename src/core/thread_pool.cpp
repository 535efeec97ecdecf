#include "core/thread_pool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace descent::parallel {
namespace {

long current_process() {
#if defined(__unix__) || defined(__APPLE__)
  return static_cast<long>(getpid());
#else
  return 0;
#endif
}

// A positive integer from the environment, or 0.
int64_t env_count(const char* name) {
  const char* s = std::getenv(name);
  if (!s || !*s) return 0;
  char* end = nullptr;
  const long long v = std::strtoll(s, &end, 10);
  if (*end != '\0' || v <= 0) return 0;
  return v;
}

std::size_t cpus_available() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<std::size_t>(n);
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

std::size_t clamp_threads(int64_t n) {
  if (n < 1) return 1;
  return static_cast<uint64_t>(n) > kMaxThreads ? kMaxThreads : static_cast<std::size_t>(n);
}

std::size_t initial_threads() {
  static const std::size_t n = [] {
    const int64_t env = env_count("DESCENT_NUM_THREADS");
    return clamp_threads(env ? env : static_cast<int64_t>(cpus_available()));
  }();
  return n;
}

std::atomic<std::size_t> g_threads{0};  // 0: initial_threads()

class Pool {
 public:
  Pool() : owner_(current_process()) {}
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  long owner() const { return owner_; }

  // Makes sure `count` worker threads exist; false when they cannot be started.
  bool reserve(std::size_t count) noexcept {
    if (threads_.size() >= count) return true;
    try {
      threads_.reserve(count);
      while (threads_.size() < count) {
        const std::size_t k = threads_.size() + 1;
        threads_.emplace_back([this, k] { work(k); });
      }
      return true;
    } catch (...) {
      return false;  // the threads that did start stay and serve
    }
  }
  std::size_t size() const { return threads_.size(); }

  // Called with the dispatch lock held; workers - 1 <= size().
  void run(std::size_t workers, TaskFn fn, void* ctx) noexcept {
    {
      std::lock_guard<std::mutex> lock(m_);
      fn_ = fn;
      ctx_ = ctx;
      workers_ = workers;
      remaining_.store(workers - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    fn(ctx, 0, workers);
    // Wait for the others: spin briefly (a step is short), then sleep.
    for (int i = 0; i < 4000; ++i) {
      if (remaining_.load(std::memory_order_acquire) == 0) return;
      pause();
    }
    std::unique_lock<std::mutex> lock(m_);
    done_.wait(lock, [this] { return remaining_.load(std::memory_order_acquire) == 0; });
  }

 private:
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }

  void work(std::size_t k) {
    uint64_t seen = 0;
    for (;;) {
      // Spin briefly for the next job, then sleep.
      for (int i = 0; i < 2000 && generation_.load(std::memory_order_acquire) == seen; ++i) pause();
      TaskFn fn;
      void* ctx;
      std::size_t workers;
      {
        std::unique_lock<std::mutex> lock(m_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_relaxed);
        fn = fn_;
        ctx = ctx_;
        workers = workers_;
      }
      if (k >= workers) continue;
      fn(ctx, k, workers);
      if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(m_);
        done_.notify_one();
      }
    }
  }

  const long owner_;
  std::mutex m_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<std::size_t> remaining_{0};
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  std::size_t workers_ = 0;
  bool stop_ = false;
};

std::mutex g_dispatch;   // one step at a time uses the pool
Pool* g_pool = nullptr;  // guarded by g_dispatch

// Joins the workers at exit, unless this is a forked child (whose copy of the pool has no
// threads: it is abandoned).
struct PoolOwner {
  ~PoolOwner() {
    std::lock_guard<std::mutex> lock(g_dispatch);
    if (g_pool && g_pool->owner() == current_process()) delete g_pool;
    g_pool = nullptr;
  }
} g_pool_owner;

void run_inline(std::size_t workers, TaskFn fn, void* ctx) noexcept {
  for (std::size_t k = 0; k < workers; ++k) fn(ctx, k, workers);
}

}  // namespace

std::size_t default_threads() noexcept {
  const std::size_t n = g_threads.load(std::memory_order_relaxed);
  return n ? n : initial_threads();
}

void set_default_threads(std::size_t n) noexcept {
  g_threads.store(n ? clamp_threads(static_cast<int64_t>(n)) : 0, std::memory_order_relaxed);
}

int64_t min_elements_per_thread() noexcept {
  static const int64_t n = [] {
    const int64_t env = env_count("DESCENT_MIN_ELEMENTS_PER_THREAD");
    return env ? env : int64_t{65536};
  }();
  return n;
}

void run(std::size_t workers, TaskFn fn, void* ctx) noexcept {
  if (workers <= 1) return run_inline(workers ? workers : 1, fn, ctx);
  std::unique_lock<std::mutex> lock(g_dispatch, std::try_to_lock);
  if (!lock.owns_lock()) return run_inline(workers, fn, ctx);
  if (g_pool && g_pool->owner() != current_process()) g_pool = nullptr;  // forked: abandon it
  if (!g_pool) {
    try {
      g_pool = new Pool();
    } catch (...) {
      return run_inline(workers, fn, ctx);
    }
  }
  if (!g_pool->reserve(workers - 1) && g_pool->size() + 1 < workers)
    return run_inline(workers, fn, ctx);
  g_pool->run(workers, fn, ctx);
}

}  // namespace descent::parallel
