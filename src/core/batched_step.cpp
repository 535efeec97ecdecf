#include "core/batched_step.h"

#include <algorithm>

#include "core/thread_pool.h"

namespace descent {
namespace {

// Items handed to the rule at once: enough to amortise its call, small enough for the stack.
constexpr std::size_t kBatch = 64;

// Collects consecutive float32/float64 items of one dtype and hands them to the rule.
class Batcher {
 public:
  explicit Batcher(const BatchedUpdate& u) : u_(u) {}
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Elements [begin, end) of tensor t. The hot path of an update of many small tensors: a few
  // loads and one 40-byte item per tensor.
  void add(std::size_t t, int64_t begin, int64_t end) noexcept {
    const std::size_t index = u_.indices[t];
    const StepTarget& target = u_.targets[index];
    void* param = u_.flat_offsets ? u_.flat_params + u_.flat_offsets[t] : u_.params[t];
    const void* grad = u_.flat_offsets ? u_.flat_grads + u_.flat_offsets[t] : u_.grads[t];
    if (is_half(target.dtype)) {
      flush();  // keeps the order of the tensors (not needed for the bits; cheap)
      return u_.step_half(u_.owner, *u_.ctx, index, param, grad, begin, end);
    }
    if (target.dtype != dtype_) {
      flush();
      dtype_ = target.dtype;
    }
    kernels::BatchItem& item = items_[n_++];
    item.n = end - begin;
    item.p = param;
    item.g = grad;
    for (std::size_t s = 0; s < kernels::kMaxBatchSlots; ++s) item.s[s] = target.slots[s];
    if (begin != 0) {  // a range of a large tensor: rare, so the hot path stays branch-free
      const std::size_t skip = static_cast<std::size_t>(begin) * dtype_size(target.dtype);
      item.p = static_cast<unsigned char*>(param) + skip;
      item.g = static_cast<const unsigned char*>(grad) + skip;
      for (void*& slot : item.s)
        if (slot) slot = static_cast<unsigned char*>(slot) + skip;  // a null second slot stays
    }
    if (n_ == kBatch) flush();
  }
  void flush() noexcept {
    if (n_) u_.rule->apply_batch(*u_.ctx, dtype_, items_, n_);
    n_ = 0;
  }

 private:
  const BatchedUpdate& u_;
  kernels::BatchItem items_[kBatch];
  std::size_t n_ = 0;
  DType dtype_ = DType::Float32;
};

struct Partition {
  const BatchedUpdate* u;
  const int64_t* prefix;  // count + 1 cumulative element counts
  int64_t total;

  std::size_t tensor_at(int64_t pos) const {  // the (non-empty) tensor holding element pos
    return static_cast<std::size_t>(std::upper_bound(prefix, prefix + u->count + 1, pos) - prefix) -
           1;
  }
  int64_t cut(std::size_t k, std::size_t workers) const {
    if (k == 0) return 0;
    if (k >= workers) return total;
    const int64_t per = total / static_cast<int64_t>(workers);
    const int64_t extra = total % static_cast<int64_t>(workers);
    const int64_t pos =
        per * static_cast<int64_t>(k) + std::min<int64_t>(static_cast<int64_t>(k), extra);
    const std::size_t t = tensor_at(pos);
    const int64_t align = 64 / static_cast<int64_t>(dtype_size(u->targets[u->indices[t]].dtype));
    return prefix[t] + (pos - prefix[t]) / align * align;
  }
  static void run(void* self, std::size_t k, std::size_t workers) {
    const auto& job = *static_cast<const Partition*>(self);
    const int64_t lo = job.cut(k, workers), hi = job.cut(k + 1, workers);
    if (lo >= hi) return;
    Batcher batch(*job.u);
    for (std::size_t t = job.tensor_at(lo); t < job.u->count && job.prefix[t] < hi; ++t) {
      const int64_t b = std::max(lo, job.prefix[t]) - job.prefix[t];
      const int64_t e = std::min(hi, job.prefix[t + 1]) - job.prefix[t];
      if (b < e) batch.add(t, b, e);
    }
    batch.flush();
  }
};

}  // namespace

int64_t fill_prefix(const BatchedUpdate& u, int64_t* prefix) noexcept {
  prefix[0] = 0;
  for (std::size_t t = 0; t < u.count; ++t)
    prefix[t + 1] = prefix[t] + u.targets[u.indices[t]].numel;
  return prefix[u.count];
}

void run_batched_step(const BatchedUpdate& u, std::size_t workers, const int64_t* prefix) noexcept {
  if (workers <= 1) {
    Batcher batch(u);
    for (std::size_t t = 0; t < u.count; ++t) {
      const int64_t n = u.targets[u.indices[t]].numel;
      if (n > 0) batch.add(t, 0, n);
    }
    return batch.flush();
  }
  Partition job{&u, prefix, prefix[u.count]};
  parallel::run(workers, &Partition::run, &job);
}

}  // namespace descent
