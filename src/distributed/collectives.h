// The host's collective operations (descent_collectives in the C API): two callbacks, called
// through wrappers that turn a failure into descent::Error. Never linked against MPI.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "common/callback_failure.h"
#include "common/error.h"
#include "descent/descent.h"

namespace descent::dist {

template <class Fn>
struct Callback {
  Fn fn = nullptr;
  void* user_data = nullptr;
  void (*free_user_data)(void*) = nullptr;
  void release() noexcept {
    if (free_user_data) free_user_data(user_data);
    fn = nullptr;
    user_data = nullptr;
    free_user_data = nullptr;
  }
};

class Collectives {
 public:
  Collectives(std::size_t rank, std::size_t world) : rank_(rank), world_(world), counts_(world) {}
  ~Collectives() {
    gather_.release();
    reduce_.release();
  }
  Collectives(const Collectives&) = delete;
  Collectives& operator=(const Collectives&) = delete;

  std::size_t rank() const { return rank_; }
  std::size_t world() const { return world_; }
  Callback<descent_allgatherv_fn>& gather() { return gather_; }
  Callback<descent_allreduce_fn>& reduce() { return reduce_; }
  // Throws DESCENT_ERR_INVALID_STATE unless both operations are set.
  void check_ready() const {
    if (!gather_.fn || !reduce_.fn)
      throw Error(DESCENT_ERR_INVALID_STATE, std::string("the collectives handle has no ") +
                                                 (!gather_.fn ? "all-gatherv" : "all-reduce") +
                                                 " operation set");
  }
  bool running() const { return running_; }

  // In place; bytes has world() entries. Throws the callback's failure.
  void allgatherv(void* buffer, const std::size_t* bytes) {
    CallbackMessage message;
    Running r{running_};
    const descent_status s =
        gather_.fn(buffer, bytes, gather_.user_data, message.text, sizeof message.text);
    if (s != DESCENT_OK) throw_callback_failure(s, message, "the all-gatherv callback failed");
  }
  void allreduce(double* values, std::size_t count, descent_reduce_op op) {
    CallbackMessage message;
    Running r{running_};
    const descent_status s =
        reduce_.fn(values, count, op, reduce_.user_data, message.text, sizeof message.text);
    if (s != DESCENT_OK) throw_callback_failure(s, message, "the all-reduce callback failed");
  }

  // Scratch reused by the sharded clip (one thread at a time per handle).
  std::vector<double> clip_sums;
  std::vector<double> clip_owner_load;

 private:
  struct Running {
    bool& flag;
    explicit Running(bool& f) : flag(f) { flag = true; }
    ~Running() { flag = false; }
  };
  std::size_t rank_, world_;
  std::vector<std::size_t> counts_;
  Callback<descent_allgatherv_fn> gather_;
  Callback<descent_allreduce_fn> reduce_;
  bool running_ = false;
};

// Runs `body`, turning any exception into a status and message (for votes: a rank that fails
// locally must still take part in the collectives that follow).
template <class Body>
descent_status capture(std::string& message, Body&& body) noexcept {
  try {
    body();
    return DESCENT_OK;
  } catch (const Error& e) {
    message = e.what();
    return e.status();
  } catch (const std::bad_alloc&) {
    message = "out of memory";
    return DESCENT_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    message = e.what();
    return DESCENT_ERR_INTERNAL;
  } catch (...) {
    message = "unknown internal error";
    return DESCENT_ERR_INTERNAL;
  }
}

// A 52-bit hash, exact as a double: ranks compare values by an all-reduce max of (h, -h).
inline double hash_to_double(uint64_t h) {
  return static_cast<double>(h & ((uint64_t{1} << 52) - 1));
}

inline uint64_t fnv1a(uint64_t h, const void* data, std::size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}
constexpr uint64_t kFnvBasis = 14695981039346656037ull;

}  // namespace descent::dist

struct descent_collectives {
  std::shared_ptr<descent::dist::Collectives> impl;
};
