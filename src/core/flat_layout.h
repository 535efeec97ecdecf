// The flat layout of an optimizer's parameters (descent_optimizer_flat_offset): declared
// parameters one after another, each at a multiple of DESCENT_FLAT_ALIGNMENT bytes. Holds the
// offsets and the pointer arrays a flat update hands to the indexed path, sized once per
// parameter count so that a steady-state flat update does not allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace descent {

class FlatLayout {
 public:
  FlatLayout() = default;
  // A cache: copies start empty and are rebuilt on first use.
  FlatLayout(const FlatLayout&) noexcept {}
  FlatLayout& operator=(const FlatLayout&) noexcept {
    clear();
    return *this;
  }
  FlatLayout(FlatLayout&&) noexcept = default;
  FlatLayout& operator=(FlatLayout&&) noexcept = default;

  bool built_for(std::size_t count) const { return built_ && offsets_.size() == count + 1; }
  void clear() noexcept {
    built_ = false;
    offsets_.clear();
  }
  // offsets_[i] for parameter i, offsets_[count] the total size; bytes[i] each parameter's size.
  void build(const std::vector<std::size_t>& bytes);

  std::size_t offset(std::size_t index) const { return offsets_[index]; }
  const std::size_t* offsets() const { return offsets_.data(); }
  // Points params[i] and grads[i] at parameter i in the two buffers.
  void point_into(void* params_buffer, const void* grads_buffer);
  std::size_t size() const { return offsets_.back(); }
  std::size_t count() const { return offsets_.size() - 1; }
  std::size_t max_element_size = 1;  // alignment the buffers need

  std::vector<std::size_t> indices;  // 0, 1, ..., count - 1
  std::vector<void*> params;
  std::vector<const void*> grads;

 private:
  bool built_ = false;
  std::vector<std::size_t> offsets_;
};

}  // namespace descent
