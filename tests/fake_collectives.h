// An in-process implementation of descent's collectives for tests: one thread per rank, the
// operations done through shared memory between barriers. Faults can be injected per rank and
// call (the failing rank still takes part in the exchange, as the callback contract asks).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "descent/descent.h"

namespace fake {

class World {
 public:
  explicit World(std::size_t n) : n_(n), slots_(n, nullptr), calls_(n, 0), bytes_(n, 0) {}

  std::size_t size() const { return n_; }

  // A collectives handle for `rank`, wired to this world (free it with descent_collectives_free).
  descent_collectives* make(std::size_t rank) {
    descent_collectives* c = nullptr;
    if (descent_collectives_create(rank, n_, &c, nullptr, 0) != DESCENT_OK) return nullptr;
    auto* ep = new Endpoint{this, rank};
    descent_collectives_set_allgatherv(c, &World::gather_cb, ep, &World::free_ep, nullptr, 0);
    descent_collectives_set_allreduce(c, &World::reduce_cb, new Endpoint{this, rank},
                                      &World::free_ep, nullptr, 0);
    return c;
  }

  // fail(rank, call index on that rank, is_gather) -> non-OK status to make that call fail.
  std::function<descent_status(std::size_t, std::size_t, bool)> fail;
  // Per rank: collective calls made and bytes received by all-gathers.
  std::size_t calls(std::size_t rank) const { return calls_[rank]; }
  std::size_t gathered_bytes(std::size_t rank) const { return bytes_[rank]; }

 private:
  struct Endpoint {
    World* world;
    std::size_t rank;
  };
  static void free_ep(void* p) { delete static_cast<Endpoint*>(p); }

  void barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const std::size_t gen = generation_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
  }

  descent_status finish(std::size_t rank, bool gather, char* message, std::size_t cap) {
    const std::size_t call = calls_[rank]++;
    if (fail) {
      const descent_status s = fail(rank, call, gather);
      if (s != DESCENT_OK) {
        std::snprintf(message, cap, "injected failure on rank %zu, call %zu", rank, call);
        return s;
      }
    }
    return DESCENT_OK;
  }

  static descent_status gather_cb(void* buffer, const std::size_t* bytes, void* user_data,
                                  char* message, std::size_t cap) {
    auto* ep = static_cast<Endpoint*>(user_data);
    World& w = *ep->world;
    w.slots_[ep->rank] = buffer;
    w.barrier();
    std::size_t off = 0;
    for (std::size_t r = 0; r < w.n_; ++r) {
      if (r != ep->rank && bytes[r])
        std::memcpy(static_cast<char*>(buffer) + off, static_cast<const char*>(w.slots_[r]) + off,
                    bytes[r]);
      off += bytes[r];
    }
    w.bytes_[ep->rank] += off - bytes[ep->rank];
    w.barrier();
    return w.finish(ep->rank, true, message, cap);
  }

  static descent_status reduce_cb(double* values, std::size_t count, descent_reduce_op op,
                                  void* user_data, char* message, std::size_t cap) {
    auto* ep = static_cast<Endpoint*>(user_data);
    World& w = *ep->world;
    w.slots_[ep->rank] = values;
    w.barrier();
    std::vector<double> out(count);
    for (std::size_t i = 0; i < count; ++i) {
      double acc = static_cast<const double*>(w.slots_[0])[i];
      for (std::size_t r = 1; r < w.n_; ++r) {
        const double x = static_cast<const double*>(w.slots_[r])[i];
        acc = op == DESCENT_REDUCE_SUM ? acc + x : (x > acc ? x : acc);
      }
      out[i] = acc;
    }
    w.barrier();
    std::memcpy(values, out.data(), count * sizeof(double));
    return w.finish(ep->rank, false, message, cap);
  }

  std::size_t n_;
  std::vector<void*> slots_;
  std::vector<std::size_t> calls_, bytes_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t arrived_ = 0, generation_ = 0;
};

// Runs body(rank) on one thread per rank and waits for all.
inline void run(std::size_t n, const std::function<void(std::size_t)>& body) {
  std::vector<std::thread> threads;
  for (std::size_t r = 0; r < n; ++r) threads.emplace_back(body, r);
  for (auto& t : threads) t.join();
}

}  // namespace fake
