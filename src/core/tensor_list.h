// Checks the tensor list of one update against the declared parameters and resolves each name
// to its parameter index, without allocating: shared by every optimizer's update().
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/error.h"
#include "common/shape.h"

namespace descent {

// The array arguments themselves; checked first, before an optimizer's readiness.
inline void check_tensor_list_arrays(std::size_t count, const char* const* names,
                                     void* const* params, const void* const* grads) {
  if (count > 0 && (!names || !params || !grads))
    throw Error(DESCENT_ERR_NULL_ARGUMENT,
                std::string(!names ? "names" : !params ? "params" : "grads") + " is NULL");
}

// `declared[k]` has name, dtype, shape and numel; `seen` has one zero byte per parameter and is
// left all zero; `out` receives the index of tensor i (capacity reserved by the caller). Throws
// descent::Error naming the tensor; `out` is then meaningless.
template <class Declared>
void resolve_tensor_list(std::size_t count, const char* const* names, const descent_dtype* dtypes,
                         const int64_t* numels, void* const* params, const void* const* grads,
                         const std::map<std::string, std::size_t, std::less<>>& index,
                         const std::vector<Declared>& declared, std::vector<unsigned char>& seen,
                         std::vector<std::size_t>& out) {
  check_tensor_list_arrays(count, names, params, grads);
  out.clear();
  struct Unmark {  // leaves `seen` all zero whatever happens
    std::vector<unsigned char>& seen;
    std::vector<std::size_t>& index;
    ~Unmark() {
      for (std::size_t i : index) seen[i] = 0;
    }
  } unmark{seen, out};
  for (std::size_t i = 0; i < count; ++i) {
    if (!names[i]) throw Error(DESCENT_ERR_NULL_ARGUMENT, "names[" + std::to_string(i) + "] is NULL");
    const std::string_view name(names[i]);
    auto it = index.find(name);
    if (it == index.end())
      throw Error(DESCENT_ERR_UNKNOWN_KEY, "names[" + std::to_string(i) + "] = '" +
                                               std::string(name) + "': no parameter of that name");
    const std::size_t k = it->second;
    if (seen[k])
      throw Error(DESCENT_ERR_DUPLICATE, "'" + std::string(name) + "': given twice in one update");
    const Declared& p = declared[k];
    if (dtypes && dtypes[i] != static_cast<descent_dtype>(p.dtype))
      throw Error(DESCENT_ERR_DTYPE_MISMATCH, "'" + p.name + "': dtype " + dtype_name(dtypes[i]) +
                                                  " given, declared " + dtype_name(p.dtype));
    if (numels && numels[i] != p.numel)
      throw Error(DESCENT_ERR_SHAPE_MISMATCH,
                  "'" + p.name + "': " + std::to_string(numels[i]) + " elements given, declared " +
                      shape_string(p.shape) + " has " + std::to_string(p.numel));
    if (p.numel > 0 && (!params[i] || !grads[i]))
      throw Error(DESCENT_ERR_NULL_ARGUMENT, "'" + p.name + "': " + (!params[i] ? "params" : "grads") +
                                                 "[" + std::to_string(i) + "] is NULL");
    const auto* pb = static_cast<const unsigned char*>(params[i]);
    const auto* gb = static_cast<const unsigned char*>(grads[i]);
    const std::size_t bytes = static_cast<std::size_t>(p.numel) * dtype_size(p.dtype);
    if (p.numel > 0 && pb < gb + bytes && gb < pb + bytes)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  "'" + p.name + "': the parameter and gradient buffers overlap");
    seen[k] = 1;
    out.push_back(k);  // capacity reserved when parameters are declared: no allocation
  }
}

}  // namespace descent
