#include "core/flat_layout.h"

#include <string>

#include "common/error.h"
#include "core/optimizer.h"

namespace descent {

namespace {
constexpr std::size_t kAlign = DESCENT_FLAT_ALIGNMENT;
std::size_t round_up(std::size_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}

const FlatLayout& layout_of(const Optimizer& opt, FlatLayout& flat) {
  const std::size_t n = opt.parameter_count();
  if (flat.built_for(n)) return flat;
  std::vector<std::size_t> bytes(n);
  std::size_t widest = 1;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t elem = dtype_size(opt.parameter_dtype(i));
    bytes[i] = static_cast<std::size_t>(opt.parameter_numel(i)) * elem;
    if (elem > widest) widest = elem;
  }
  flat.build(bytes);
  flat.max_element_size = widest;
  return flat;
}
}  // namespace

void FlatLayout::build(const std::vector<std::size_t>& bytes) {
  // Everything allocated before anything is replaced.
  std::vector<std::size_t> offsets(bytes.size() + 1);
  std::vector<std::size_t> idx(bytes.size());
  std::vector<void*> p(bytes.size());
  std::vector<const void*> g(bytes.size());
  std::size_t at = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    offsets[i] = at;
    idx[i] = i;
    // Shapes are bounded at declaration (numel * 8 fits int64_t), so sums of a few fit size_t;
    // guard anyway against a layout that would wrap.
    if (bytes[i] > SIZE_MAX - at - kAlign)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  "the flat layout of these parameters exceeds the address space");
    at = round_up(at + bytes[i]);
  }
  offsets[bytes.size()] = at;
  offsets_ = std::move(offsets);
  indices = std::move(idx);
  params = std::move(p);
  grads = std::move(g);
  built_ = true;
}

void Optimizer::check_parameter_index(std::size_t index) const {
  if (index >= parameter_count())
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, "index " + std::to_string(index) +
                                                  " is past the last parameter (" +
                                                  std::to_string(parameter_count()) + " declared)");
}

std::size_t Optimizer::flat_offset(std::size_t index) const {
  check_parameter_index(index);
  return layout_of(*this, flat_).offset(index);
}

std::size_t Optimizer::flat_size() const {
  return layout_of(*this, flat_).size();
}

void Optimizer::update_flat(void* params, const void* grads, std::size_t size) {
  FlatLayout& flat = const_cast<FlatLayout&>(layout_of(*this, flat_));
  if (size != flat.size())
    throw Error(DESCENT_ERR_SHAPE_MISMATCH,
                "size is " + std::to_string(size) + " bytes, the flat layout of the " +
                    std::to_string(flat.count()) + " declared parameters has " +
                    std::to_string(flat.size()));
  if (size > 0 && (!params || !grads))
    throw Error(DESCENT_ERR_NULL_ARGUMENT, std::string(!params ? "params" : "grads") + " is NULL");
  const auto p = reinterpret_cast<std::uintptr_t>(params);
  const auto g = reinterpret_cast<std::uintptr_t>(grads);
  if (p % flat.max_element_size || g % flat.max_element_size)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                std::string(p % flat.max_element_size ? "params" : "grads") +
                    " is not aligned to " + std::to_string(flat.max_element_size) +
                    " bytes (the largest element size declared)");
  if (size > 0 && p < g + size && g < p + size)
    throw Error(DESCENT_ERR_INVALID_ARGUMENT, "the params and grads buffers overlap");
  step_flat(flat, params, grads);
}

void Optimizer::step_flat(FlatLayout& flat, void* params, const void* grads) {
  flat.point_into(params, grads);
  update_indexed(flat.count(), flat.indices.data(), nullptr, nullptr, flat.params.data(),
                 flat.grads.data());
}

void FlatLayout::point_into(void* params_buffer, const void* grads_buffer) {
  for (std::size_t i = 0; i < count(); ++i) {
    params[i] = static_cast<unsigned char*>(params_buffer) + offsets_[i];
    grads[i] = static_cast<const unsigned char*>(grads_buffer) + offsets_[i];
  }
}

}  // namespace descent
