// A zero-initialised, 64-byte aligned block of memory holding one state slot.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace descent {

namespace detail {
// Frees an owning Buffer's block; does nothing for a view.
struct BufferFree {
  bool owned = true;
  void operator()(unsigned char* p) const noexcept {
    if (owned) std::free(p);
  }
};
}  // namespace detail

class Buffer {
  using Free = detail::BufferFree;

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
  // A view of `bytes` at `data` inside another Buffer that outlives it (the optimizer's slot
  // arena): not freed with it. Copying a view copies the bytes into a new owning Buffer.
  static Buffer view(void* data, std::size_t bytes) noexcept {
    Buffer b;
    b.bytes_ = bytes;
    b.data_ = std::unique_ptr<unsigned char, Free>(static_cast<unsigned char*>(data), Free{false});
    return b;
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
  T* as() noexcept {
    return static_cast<T*>(data());
  }
  template <class T>
  const T* as() const noexcept {
    return static_cast<const T*>(data());
  }

 private:
  std::unique_ptr<unsigned char, Free> data_;
  std::size_t bytes_ = 0;
};

}  // namespace descent
