// A zero-initialised, 64-byte aligned block of memory holding one state slot.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace descent {

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes == 0) return;
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    data_.reset(static_cast<unsigned char*>(p));
  }
  Buffer(const Buffer& other) : Buffer(other.bytes_) {
    if (bytes_) std::memcpy(data_.get(), other.data_.get(), bytes_);
  }
  Buffer& operator=(const Buffer& other) {
    if (this != &other) *this = Buffer(other);
    return *this;
  }
  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;

  void* data() noexcept { return data_.get(); }
  const void* data() const noexcept { return data_.get(); }
  std::size_t bytes() const noexcept { return bytes_; }
  template <class T>
  T* as() noexcept { return static_cast<T*>(data()); }
  template <class T>
  const T* as() const noexcept { return static_cast<const T*>(data()); }

 private:
  struct Free {
    void operator()(unsigned char* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<unsigned char, Free> data_;
  std::size_t bytes_ = 0;
};

}  // namespace descent
