// Where serialised state goes: a caller's buffer or a file being written.
#pragma once

#include <cstddef>

namespace descent::state_io {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Appends n bytes. Throws descent::Error on failure.
  virtual void write(const void* data, std::size_t n) = 0;
  // Where the next n bytes may be produced in place (then call advance(n)), or nullptr when the
  // sink has no such memory and write() must be used.
  virtual void* direct(std::size_t /*n*/) { return nullptr; }
  virtual void advance(std::size_t /*n*/) {}
};

}  // namespace descent::state_io
