// Muon benchmark: one Newton–Schulz orthogonalisation (5 steps, Keller Jordan's coefficients,
// float32) per matrix size, for each implementation of the step:
//   syrk       SYRK (A = X Xᵀ) + SYRK (B = bA + cA²) + SYMM ((aI + B) X)   3m²n + m³ flops/step
//   syrk_gemm  the same with B mirrored and a GEMM for the last product     3m²n + m³
//   gemm       MLX's three GEMMs                                           4m²n + 2m³
//   gram       Gram Newton–Schulz (restart at step 2)      6m²n + (5 + 9(1 + 128/m))m³ (5 steps)
// with the time, the flops each executes, the achieved GFLOP/s, and as the roof a plain sgemm of
// the step's main product shape ((m x m)·(m x n)) measured in the same run. Also one whole Muon
// update through the C API (momentum, NS, parameter update) per size.
//
// usage: muon_bench [--sizes 1024x4096,4096x4096,768x3072|none] [--steps 5] [--budget SECONDS]
//                   [--rounds N] [--smoke] [--concurrent RxC,RxC,...]...
// --concurrent: the matrices of one update orthogonalised one after another with OpenBLAS's
// threads, against one matrix per thread at once with OpenBLAS at 1 thread (before the sizes).
// Per size, rounds of (roof, gemm, syrk, syrk_gemm) run interleaved until the budget (default
// 60 s per size) is spent, at least --rounds (3) rounds; best and median are reported.
// Threads: OpenBLAS's own setting (OPENBLAS_NUM_THREADS, default: all cores). Not a ctest.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "descent/descent.h"
#include "kernels/orthogonalize.h"

using descent::kernels::NsImpl;
using descent::kernels::NsParams;

namespace {

const double kJordan[] = {3.4445, -4.7750, static_cast<double>(2.0315f)};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void fill(std::vector<float>& x, unsigned seed) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& v : x) {
    z ^= z << 13;
    z ^= z >> 7;
    z ^= z << 17;
    v = static_cast<float>(static_cast<double>(z >> 11) * (2.0 / 9007199254740992.0) - 1.0);
  }
}

struct Timing {
  std::vector<double> runs;
  double best() const { return *std::min_element(runs.begin(), runs.end()); }
  double median() const {
    std::vector<double> r = runs;
    std::sort(r.begin(), r.end());
    return r.size() % 2 ? r[r.size() / 2] : 0.5 * (r[r.size() / 2 - 1] + r[r.size() / 2]);
  }
};

template <class Body>
double time_once(Body body) {
  const double t0 = now();
  body();
  return now() - t0;
}

const char* name(NsImpl impl) {
  return impl == NsImpl::Syrk       ? "syrk"
         : impl == NsImpl::SyrkGemm ? "syrk_gemm"
         : impl == NsImpl::Gram     ? "gram"
                                    : "gemm";
}

// One update of a rows x cols float32 parameter through the public API (default Muon).
Timing api_update(int64_t rows, int64_t cols, int64_t steps, double budget, const char* ns_impl) {
  descent_optimizer* opt = nullptr;
  descent_optimizer_create("muon", &opt, nullptr, 0);
  descent_optimizer_set_double(opt, "learning_rate", 0.02);
  descent_optimizer_set_int(opt, "ns_steps", steps);
  descent_optimizer_set_string(opt, "ns_impl", ns_impl);
  const int64_t shape[] = {rows, cols};
  descent_optimizer_add_parameter(opt, "w", DESCENT_FLOAT32, 2, shape);
  std::vector<float> p(static_cast<size_t>(rows * cols)), g(p.size());
  fill(p, 7);
  fill(g, 8);
  const char* names[] = {"w"};
  void* params[] = {p.data()};
  const void* grads[] = {g.data()};
  if (descent_optimizer_init(opt) != DESCENT_OK) {
    std::fprintf(stderr, "init: %s\n", descent_optimizer_last_error(opt));
    std::exit(1);
  }
  Timing t;
  double total = 0;
  for (int i = 0; i < 10 && (i < 2 || total < budget); ++i) {
    const double dt = time_once([&] {
      if (descent_optimizer_update(opt, 1, names, nullptr, nullptr, params, grads) != DESCENT_OK) {
        std::fprintf(stderr, "update: %s\n", descent_optimizer_last_error(opt));
        std::exit(1);
      }
    });
    t.runs.push_back(dt);
    total += dt;
  }
  descent_optimizer_free(opt);
  return t;
}

// Several matrices of one update: Newton–Schulz on each (SYRK path) one after another with
// OpenBLAS's threads (`blas_threads`), against `workers` threads each running whole matrices
// with OpenBLAS at 1 thread (matrices assigned longest first to the least loaded worker).
void concurrent(const std::string& list, int64_t steps, int rounds, int blas_threads) {
  struct M {
    int64_t rows, cols;
    std::vector<float> input, x, work;
  };
  std::vector<M> ms;
  size_t pos = 0;
  while (pos < list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    long long r = 0, c = 0;
    if (std::sscanf(list.substr(pos, end - pos).c_str(), "%lldx%lld", &r, &c) != 2) std::exit(2);
    M m{r, c, std::vector<float>(static_cast<size_t>(r * c)), {}, {}};
    fill(m.input, static_cast<unsigned>(ms.size() + 11));
    m.x = m.input;
    m.work.resize(descent::kernels::ns_workspace_elements(r, c));
    ms.push_back(std::move(m));
    pos = end + 1;
  }
  NsParams p;
  p.steps = steps;
  p.table = kJordan;
  p.triples = 1;
  const auto one = [&](M& m) {
    std::memcpy(m.x.data(), m.input.data(), m.input.size() * sizeof(float));
    descent::kernels::newton_schulz(m.rows, m.cols, m.x.data(), m.work.data(), p);
  };
  // Longest first onto the least loaded of `workers`.
  const int workers = blas_threads;
  std::vector<std::vector<size_t>> plan(static_cast<size_t>(workers));
  {
    std::vector<size_t> order(ms.size());
    for (size_t i = 0; i < ms.size(); ++i) order[i] = i;
    const auto flops = [&](size_t i) {
      return descent::kernels::ns_flops(ms[i].rows, ms[i].cols, steps, NsImpl::Syrk);
    };
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return flops(a) > flops(b); });
    std::vector<double> load(static_cast<size_t>(workers), 0.0);
    for (size_t i : order) {
      const size_t w =
          static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
      plan[w].push_back(i);
      load[w] += flops(i);
    }
  }
  Timing seq, conc;
  for (int round = 0; round < rounds; ++round) {
    openblas_set_num_threads(blas_threads);
    seq.runs.push_back(time_once([&] {
      for (M& m : ms) one(m);
    }));
    openblas_set_num_threads(1);
    conc.runs.push_back(time_once([&] {
      std::vector<std::thread> pool;
      for (int w = 1; w < workers; ++w)
        pool.emplace_back([&, w] {
          for (size_t i : plan[static_cast<size_t>(w)]) one(ms[i]);
        });
      for (size_t i : plan[0]) one(ms[i]);
      for (auto& t : pool) t.join();
    }));
  }
  openblas_set_num_threads(blas_threads);
  std::printf("%s: sequential, BLAS %d threads: best %.4f s, median %.4f s\n", list.c_str(),
              blas_threads, seq.best(), seq.median());
  std::printf("%s: %d matrices at once, BLAS 1 thread: best %.4f s, median %.4f s (%.2fx)\n\n",
              list.c_str(), workers, conc.best(), conc.median(), seq.best() / conc.best());
}

}  // namespace

int main(int argc, char** argv) {
  std::string sizes = "1024x4096,4096x4096,768x3072";
  int64_t steps = 5;
  double budget = 60.0;
  int min_rounds = 3;
  std::vector<std::string> concurrent_list;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--sizes" && i + 1 < argc) {
      sizes = argv[++i];
      if (sizes == "none") sizes.clear();
    } else if (a == "--steps" && i + 1 < argc) {
      steps = std::atoll(argv[++i]);
    } else if (a == "--budget" && i + 1 < argc) {
      budget = std::atof(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      min_rounds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--concurrent" && i + 1 < argc) {
      concurrent_list.push_back(argv[++i]);
    } else if (a == "--smoke") {
      sizes = "64x256,256x64";
      budget = 0.0;
      min_rounds = 1;
    } else {
      std::fprintf(
          stderr,
          "usage: %s [--sizes RxC,...|none] [--steps N] [--budget SECONDS] [--rounds N] [--smoke] "
          "[--concurrent RxC,...]\n",
          argv[0]);
      return 2;
    }
  }

  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line, also into a file
  std::printf("OpenBLAS: %s; threads %d\n", openblas_get_config(), openblas_get_num_threads());
  std::printf(
      "Newton-Schulz, float32, %lld steps, Keller Jordan's coefficients; GFLOP/s from the best "
      "run\n\n",
      static_cast<long long>(steps));
  // Warm up the BLAS thread pool.
  {
    std::vector<float> a(256 * 256, 1.0f), c(256 * 256);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 256, 256, 256, 1.0f, a.data(), 256,
                a.data(), 256, 0.0f, c.data(), 256);
  }

  for (const std::string& list : concurrent_list)
    concurrent(list, steps, std::max(min_rounds, 5), std::max(1, openblas_get_num_threads()));
  if (!concurrent_list.empty() && sizes.empty()) return 0;

  std::printf("%-11s %-10s %10s %10s %6s %10s %10s\n", "size", "impl", "best s", "median s", "runs",
              "GFLOP", "GFLOP/s");
  size_t pos = 0;
  while (pos < sizes.size()) {
    size_t end = sizes.find(',', pos);
    if (end == std::string::npos) end = sizes.size();
    const std::string item = sizes.substr(pos, end - pos);
    pos = end + 1;
    long long r = 0, c = 0;
    if (std::sscanf(item.c_str(), "%lldx%lld", &r, &c) != 2 || r <= 0 || c <= 0) {
      std::fprintf(stderr, "bad size '%s'\n", item.c_str());
      return 2;
    }
    const int64_t rows = r, cols = c, m = std::min(rows, cols), n = std::max(rows, cols);
    std::vector<float> input(static_cast<size_t>(rows * cols)), x(input.size());
    std::vector<float> work(descent::kernels::ns_workspace_elements(rows, cols, NsImpl::Gram));
    fill(input, 1);

    // Rounds: the roof and each implementation once per round, interleaved so that a change in
    // the machine's load affects all of them alike; at least min_rounds, more while within budget.
    std::vector<float> a(static_cast<size_t>(m * m)), b(static_cast<size_t>(m * n)), out(b.size());
    fill(a, 2);
    fill(b, 3);
    const NsImpl impls[] = {NsImpl::Gemm, NsImpl::Syrk, NsImpl::SyrkGemm, NsImpl::Gram};
    constexpr int kImpls = 4;
    Timing roof, ns[kImpls];
    double total = 0;
    for (int round = 0; round < 20 && (round < min_rounds || total < budget); ++round) {
      total += time_once([&] {
        const double dt = time_once([&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m),
                      static_cast<int>(n), static_cast<int>(m), 1.0f, a.data(), static_cast<int>(m),
                      b.data(), static_cast<int>(n), 0.0f, out.data(), static_cast<int>(n));
        });
        roof.runs.push_back(dt);
        for (int k = 0; k < kImpls; ++k) {
          NsParams p;
          p.steps = steps;
          p.table = kJordan;
          p.triples = 1;
          p.impl = impls[k];
          std::memcpy(x.data(), input.data(), input.size() * sizeof(float));
          ns[k].runs.push_back(time_once(
              [&] { descent::kernels::newton_schulz(rows, cols, x.data(), work.data(), p); }));
        }
      });
    }
    const double roof_flops = 2.0 * m * m * n;
    std::printf("%-11s %-10s %10.4f %10.4f %6zu %10.2f %10.1f\n", item.c_str(), "sgemm-roof",
                roof.best(), roof.median(), roof.runs.size(), roof_flops / 1e9,
                roof_flops / roof.best() / 1e9);
    for (int k = 0; k < kImpls; ++k) {
      const double flops = descent::kernels::ns_flops(rows, cols, steps, impls[k]);
      std::printf("%-11s %-10s %10.4f %10.4f %6zu %10.2f %10.1f\n", item.c_str(), name(impls[k]),
                  ns[k].best(), ns[k].median(), ns[k].runs.size(), flops / 1e9,
                  flops / ns[k].best() / 1e9);
    }
    const double best_gemm = ns[0].best(), best_syrk = ns[1].best();
    const double med_gemm = ns[0].median(), med_syrk = ns[1].median();
    // The C-API step against its flop floor: the default (SYRK) Newton–Schulz flops at the
    // sgemm roof's rate of this run.
    const double roof_rate = roof_flops / roof.best();
    const double floor_syrk =
        descent::kernels::ns_flops(rows, cols, steps, NsImpl::Syrk) / roof_rate;
    const double floor_gram =
        descent::kernels::ns_flops(rows, cols, steps, NsImpl::Gram) / roof_rate;
    const Timing u = api_update(rows, cols, steps, budget / 4, "syrk");
    std::printf("%-11s %-10s %10.4f %10.4f %6zu   flop floor %.4f s: %.2f of it (best)\n",
                item.c_str(), "C-API step", u.best(), u.median(), u.runs.size(), floor_syrk,
                floor_syrk / u.best());
    const Timing ug = api_update(rows, cols, steps, budget / 4, "gram");
    std::printf("%-11s %-10s %10.4f %10.4f %6zu   flop floor %.4f s: %.2f of it (best)\n",
                item.c_str(), "C-API gram", ug.best(), ug.median(), ug.runs.size(), floor_gram,
                floor_gram / ug.best());
    std::printf("%-11s syrk over gemm: %.2fx (best), %.2fx (median)\n", item.c_str(),
                best_gemm / best_syrk, med_gemm / med_syrk);
    std::printf("%-11s gram over syrk: %.2fx (best), %.2fx (median)\n\n", item.c_str(),
                best_syrk / ns[3].best(), med_syrk / ns[3].median());
  }
  return 0;
}
