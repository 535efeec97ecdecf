// Checks the tensor list of one update against the declared parameters, without allocating:
// shared by every optimizer's update paths (by name, by index, flat).
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

// The array arguments themselves; checked first, before an optimizer's readiness. `keys` is the
// names or the indices array, named `keys_name` in the message.
inline void check_tensor_list_arrays(std::size_t count, const void* keys, const char* keys_name,
                                     void* const* params, const void* const* grads) {
  if (count > 0 && (!keys || !params || !grads))
    throw Error(DESCENT_ERR_NULL_ARGUMENT, std::string(!keys     ? keys_name
                                                       : !params ? "params"
                                                                 : "grads") +
                                               " is NULL");
}

// Resolves names[i] to its parameter index into `out` (capacity reserved by the caller, so no
// allocation). Throws naming the tensor.
inline void resolve_names(std::size_t count, const char* const* names,
                          const std::map<std::string, std::size_t, std::less<>>& index,
                          std::vector<std::size_t>& out) {
  out.clear();
  for (std::size_t i = 0; i < count; ++i) {
    if (!names[i])
      throw Error(DESCENT_ERR_NULL_ARGUMENT, "names[" + std::to_string(i) + "] is NULL");
    const std::string_view name(names[i]);
    auto it = index.find(name);
    if (it == index.end())
      throw Error(DESCENT_ERR_UNKNOWN_KEY, "names[" + std::to_string(i) + "] = '" +
                                               std::string(name) + "': no parameter of that name");
    out.push_back(it->second);
  }
}

// Checks tensor i, the parameter declared at indices[i]: index in range, given once, dtype and
// element count (when given), buffers present and not overlapping. `declared[k]` has name,
// dtype, shape and numel; `hot[k]` (the same vector by default) has dtype and numel, and may be a
// compact copy that keeps the check of 10,000 small tensors in cache; `seen` has one zero byte
// per parameter and is left all zero. Throws descent::Error naming the tensor.
template <class Declared, class Hot = Declared>
void check_tensor_list(std::size_t count, const std::size_t* indices, const descent_dtype* dtypes,
                       const int64_t* numels, void* const* params, const void* const* grads,
                       const std::vector<Declared>& declared, std::vector<unsigned char>& seen,
                       const std::vector<Hot>* hot = nullptr) {
  std::size_t marked = 0;
  struct Unmark {  // leaves `seen` all zero whatever happens
    std::vector<unsigned char>& seen;
    const std::size_t* indices;
    std::size_t& marked;
    ~Unmark() {
      for (std::size_t i = 0; i < marked; ++i) seen[indices[i]] = 0;
    }
  } unmark{seen, indices, marked};
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t k = indices[i];
    if (k >= declared.size())
      throw Error(DESCENT_ERR_UNKNOWN_KEY, "indices[" + std::to_string(i) +
                                               "] = " + std::to_string(k) +
                                               ": no parameter of that index (" +
                                               std::to_string(declared.size()) + " declared)");
    const int64_t numel = hot ? (*hot)[k].numel : declared[k].numel;
    const DType dtype = hot ? (*hot)[k].dtype : declared[k].dtype;
    const auto name = [&] { return "'" + declared[k].name + "'"; };
    if (seen[k]) throw Error(DESCENT_ERR_DUPLICATE, name() + ": given twice in one update");
    if (dtypes && dtypes[i] != static_cast<descent_dtype>(dtype))
      throw Error(DESCENT_ERR_DTYPE_MISMATCH, name() + ": dtype " + dtype_name(dtypes[i]) +
                                                  " given, declared " + dtype_name(dtype));
    if (numels && numels[i] != numel)
      throw Error(DESCENT_ERR_SHAPE_MISMATCH,
                  name() + ": " + std::to_string(numels[i]) + " elements given, declared " +
                      shape_string(declared[k].shape) + " has " + std::to_string(numel));
    if (numel > 0 && (!params[i] || !grads[i]))
      throw Error(DESCENT_ERR_NULL_ARGUMENT, name() + ": " + (!params[i] ? "params" : "grads") +
                                                 "[" + std::to_string(i) + "] is NULL");
    const auto* pb = static_cast<const unsigned char*>(params[i]);
    const auto* gb = static_cast<const unsigned char*>(grads[i]);
    const std::size_t bytes = static_cast<std::size_t>(numel) * dtype_size(dtype);
    if (numel > 0 && pb < gb + bytes && gb < pb + bytes)
      throw Error(DESCENT_ERR_INVALID_ARGUMENT,
                  name() + ": the parameter and gradient buffers overlap");
    seen[k] = 1;
    marked = i + 1;
  }
}

}  // namespace descent
