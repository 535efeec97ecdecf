// Runs a C API body, turning every exception into a status code and a message recorded on the
// handle (if any) and on the calling thread. Nothing throws across the ABI.
#pragma once

#include <new>
#include <string>
#include <utility>

#include "capi/handle.h"
#include "common/error.h"
#include "common/utf8.h"

namespace descent::capi {

// Records `message` as the last error of this thread and, when given, of the handle.
void record_error(const descent_optimizer* handle, const char* message) noexcept;

template <class Body>
descent_status guarded(const descent_optimizer* handle, Body&& body) noexcept {
  try {
    body();
    return DESCENT_OK;
  } catch (const Error& e) {
    record_error(handle, e.what());
    return e.status();
  } catch (const std::bad_alloc&) {
    record_error(handle, "out of memory");
    return DESCENT_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    record_error(handle, e.what());
    return DESCENT_ERR_INTERNAL;
  } catch (...) {
    record_error(handle, "unknown internal error");
    return DESCENT_ERR_INTERNAL;
  }
}

// Throws DESCENT_ERR_NULL_ARGUMENT naming the argument.
inline void require(const void* p, const char* name) {
  if (!p) throw Error(DESCENT_ERR_NULL_ARGUMENT, std::string(name) + " is NULL");
}

// require() for a string argument, which must also be UTF-8 (DESCENT_ERR_INVALID_ARGUMENT).
inline void require_text(const char* s, const char* name) {
  require(s, name);
  check_utf8(s, name);
}

// JSON text that may be NULL; when given, it must be UTF-8 (DESCENT_ERR_PARSE, as malformed JSON).
inline void check_json_text(const char* s, const char* name) {
  if (s) check_utf8(s, name, DESCENT_ERR_PARSE);
}

// Copies this thread's last message into a caller's error buffer (NUL-terminated, truncated).
void copy_error(char* error, std::size_t capacity) noexcept;

// guarded() for functions without a handle: the message also goes to the caller's buffer.
template <class Body>
descent_status guarded_to(char* error, std::size_t capacity, Body&& body) noexcept {
  const descent_status status = guarded(nullptr, std::forward<Body>(body));
  if (status != DESCENT_OK) copy_error(error, capacity);
  return status;
}

// guarded() for read-only calls that may run the optimizer's callbacks (filters evaluated by
// descent_multi_parameter_group): marks it busy meanwhile, so that a callback cannot change it,
// and leaves the mark as it was (the call itself is allowed from inside a callback).
template <class Body>
descent_status guarded_callbacks(const descent_optimizer* handle, const char* handle_name,
                                 Body&& body) noexcept {
  return guarded(handle, [&] {
    require(handle, handle_name);
    descent_optimizer* root = handle->root();
    struct Restore {
      descent_optimizer* root;
      bool was;
      ~Restore() { root->busy = was; }
    } restore{root, root->busy};
    root->busy = true;
    body();
  });
}

// guarded() for calls that change an optimizer. Refuses them while one of its callbacks runs
// (re-entrancy: a callback clearing its own schedule would free what is running); the busy flag
// lives on the handle that owns the callbacks, the multi optimizer for a group handle.
template <class Body>
descent_status guarded_mutation(descent_optimizer* handle, const char* handle_name,
                                Body&& body) noexcept {
  return guarded(handle, [&] {
    require(handle, handle_name);
    descent_optimizer* root = handle->root();
    if (root->busy)
      throw Error(DESCENT_ERR_INVALID_STATE,
                  "the optimizer is running one of its own callbacks, which may only make "
                  "read-only calls on it");
    root->busy = true;
    struct Release {
      descent_optimizer* root;
      ~Release() { root->busy = false; }
    } release{root};
    body();
  });
}

}  // namespace descent::capi
