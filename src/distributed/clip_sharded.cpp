#include "distributed/clip_sharded.h"

#include <cfloat>
#include <cmath>

#include "core/clip.h"
#include "distributed/sharding.h"
#include "kernels/clip_kernel.h"

namespace descent::dist {

namespace {

// Tensor i is summed by the rank whose share of the elements its first element falls in.
std::size_t owner_of(int64_t start, int64_t total, std::size_t world) {
  if (total <= 0) return 0;
  __extension__ typedef unsigned __int128 wide;
  const auto r =
      static_cast<std::size_t>(static_cast<wide>(start) * world / static_cast<wide>(total));
  return r < world ? r : world - 1;
}

// One round: every rank fills the values of the tensors it owns (zero elsewhere) with `per`,
// and an all-reduce sum gives every rank every value (exact: one non-zero term per element).
template <class Per>
descent_status share(Collectives& c, std::vector<double>& out, std::size_t count,
                     const int64_t* numels, bool ok, std::string& message, Per&& per) {
  out.assign(count, 0.0);
  if (ok) {
    int64_t total = 0;
    for (std::size_t i = 0; i < count; ++i) total += numels[i];
    int64_t start = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (owner_of(start, total, c.world()) == c.rank()) out[i] = per(i);
      start += numels[i];
    }
  }
  return capture(message, [&] { c.allreduce(out.data(), count, DESCENT_REDUCE_SUM); });
}

double squares(const descent_dtype* dtypes, const int64_t* numels, void* const* grads,
               std::size_t i, int exponent) {
  return with_grad_type(dtypes[i], grads[i], [&](const auto* x) {
    return kernels::sum_squares(x, numels[i], exponent);
  });
}

}  // namespace

double clip_grad_norm_sharded(Collectives& c, descent_status local, const std::string& message,
                              std::size_t count, const descent_dtype* dtypes, const int64_t* numels,
                              void* const* grads, double max_norm) {
  std::vector<double>& sums = c.clip_sums;
  std::string round_message;
  // Round 1: the per-tensor sums of squares (the arguments are read only if they passed).
  descent_status status = local;
  std::string status_message = message;
  const descent_status r1 =
      share(c, sums, count, numels, local == DESCENT_OK, round_message,
            [&](std::size_t i) { return squares(dtypes, numels, grads, i, 0); });
  if (status == DESCENT_OK && r1 != DESCENT_OK) {
    status = r1;
    status_message = round_message;
  }
  // Combined in tensor order, as clip_grad_norm's single pass does.
  double sum = 0.0;
  bool any_float64 = false;
  if (status == DESCENT_OK)
    for (std::size_t i = 0; i < count; ++i) {
      sum += sums[i];
      any_float64 = any_float64 || dtypes[i] == DESCENT_FLOAT64;
    }
  const bool rescale = status == DESCENT_OK && any_float64 && (sum > DBL_MAX || sum < 0x1p-900);
  // The vote (and whether the rare float64 rescaling round follows).
  double v[3] = {static_cast<double>(status), status != DESCENT_OK ? c.rank() + 1.0 : 0.0,
                 rescale ? 1.0 : 0.0};
  c.allreduce(v, 3, DESCENT_REDUCE_MAX);
  if (status != DESCENT_OK) throw Error(status, status_message);
  if (v[0] > 0)
    throw Error(static_cast<descent_status>(static_cast<int>(v[0])),
                "clipping failed on rank " + std::to_string(static_cast<long long>(v[1]) - 1) +
                    " (" +
                    descent_status_name(static_cast<descent_status>(static_cast<int>(v[0]))) +
                    "); no gradient was changed");
  double total = std::sqrt(sum);
  if (v[2] > 0) {
    // float64 squares overflowed or underflowed: rescale by a power of two (clip.cpp).
    std::vector<double> maxima;
    descent_status s2 = share(c, maxima, count, numels, true, round_message, [&](std::size_t i) {
      return with_grad_type(dtypes[i], grads[i],
                            [&](const auto* x) { return kernels::max_abs(x, numels[i]); });
    });
    double m = 0.0;
    for (std::size_t i = 0; i < count; ++i)
      if (maxima[i] > m || maxima[i] != maxima[i]) m = maxima[i];
    const bool finite = std::isfinite(m) && m > 0.0;
    const int exponent = finite ? -std::ilogb(m) : 0;
    std::vector<double> scaled;
    descent_status s3 = DESCENT_OK;
    if (s2 == DESCENT_OK && finite)
      s3 = share(c, scaled, count, numels, true, round_message,
                 [&](std::size_t i) { return squares(dtypes, numels, grads, i, exponent); });
    // (A failure in these rounds is agreed on like round 1's.)
    Sharding::agree(c, s2 != DESCENT_OK ? s2 : s3, round_message, "clipping");
    if (finite) {
      double sum2 = 0.0;
      for (std::size_t i = 0; i < count; ++i) sum2 += scaled[i];
      total = std::ldexp(std::sqrt(sum2), -exponent);
    }
  }
  return clip_by_norm(count, dtypes, numels, grads, max_norm, total);
}

}  // namespace descent::dist
