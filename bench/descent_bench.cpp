// The performance record of the elementwise optimizers (docs/performance.md).
//
// For every elementwise kind, float32 and float64, and each size (default 256K, 4M, 32M
// parameters), measured interleaved in one run, several rounds:
//   descent  one step through the C API (descent_optimizer_update_indexed, one tensor), with the
//            library's thread count (DESCENT_NUM_THREADS / all CPUs) and ISA (DESCENT_ISA)
//   stream   the same bytes per parameter as the kind ((3 + 2*slots) * element size: p and each
//            slot read and written, g read) with trivial arithmetic, OpenMP on all cores,
//            -march=native: the memory roof of the kind
//   peer     the same fused loop compiled with -march=native -ffp-contract=fast, OpenMP on all
//            cores: a stand-in for DeepSpeed's CPU Adam (not available here)
// and reports Gparam/s (best round; median in the JSON) and the ratios descent/stream and
// descent/peer (from the best rounds and from the medians).
// Then half-precision parameters (bfloat16/float16 params and gradients, float32 state) against
// float32 for AdamW, Lion and SGD, interleaved. Then many small tensors: 10,000 tensors of 100
// float32 (AdamW) through the flat buffer and through indexed updates, against one tensor of
// 1,000,000.
//
// usage: descent_bench [--json FILE] [--sizes 256K,4M,32M] [--kinds adamw,lion,...]
//                      [--dtypes float32,float64] [--half-sizes 4M,32M] [--rounds N] [--quick]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "descent/descent.h"
#include "peer_kernels.h"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Aligned {
  void* ptr = nullptr;
  explicit Aligned(std::size_t bytes) {
    ptr = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!ptr) {
      std::fprintf(stderr, "out of memory\n");
      std::exit(1);
    }
  }
  ~Aligned() { std::free(ptr); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
};

void fill(void* buf, bool dbl, int64_t n, double base, double step) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = base + step * static_cast<double>((i * 7919) % 1000) / 1000.0;
    if (dbl)
      static_cast<double*>(buf)[i] = v;
    else
      static_cast<float*>(buf)[i] = static_cast<float>(v);
  }
}

void check(descent_status s, descent_optimizer* opt, const char* what) {
  if (s != DESCENT_OK) {
    std::fprintf(stderr, "%s: %s (%s)\n", what, descent_status_name(s),
                 opt ? descent_optimizer_last_error(opt) : descent_last_error());
    std::exit(1);
  }
}

descent_optimizer* make(const std::string& kind) {
  descent_optimizer* opt = nullptr;
  check(descent_optimizer_create(kind.c_str(), &opt, nullptr, 0), nullptr, "create");
  check(descent_optimizer_set_double(opt, "learning_rate", 1e-3), opt, "learning_rate");
  if (kind == "sgd") check(descent_optimizer_set_double(opt, "momentum", 0.9), opt, "momentum");
  return opt;
}

int slots_of(const std::string& kind) {
  return (kind == "adam" || kind == "adamw" || kind == "adamax" || kind == "adadelta") ? 2 : 1;
}

struct Stats {
  double best = 0, median = 0;  // seconds per step
};
Stats stats(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  return {t.front(), t[t.size() / 2]};
}

// Seconds per call of f, over `iters` calls.
template <class F>
double time_it(int iters, F&& f) {
  const double t0 = now();
  for (int i = 0; i < iters; ++i) f();
  return (now() - t0) / iters;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

int64_t parse_size(const std::string& s) {
  const char last = s.empty() ? '\0' : s.back();
  const int64_t mult = last == 'K' ? 1024 : last == 'M' ? 1024 * 1024 : 1;
  return std::atoll(s.c_str()) * mult;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string isa_in_effect() {
  std::string best = "sse2";
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) best = "avx2";
  if (__builtin_cpu_supports("avx512f")) best = "avx512";
#endif
  const char* env = std::getenv("DESCENT_ISA");
  if (!env) return best;
  const std::vector<std::string> order = {"sse2", "avx2", "avx512"};
  const auto rank = [&](const std::string& s) {
    return std::find(order.begin(), order.end(), s) - order.begin();
  };
  const std::string want = env;
  if (rank(want) >= 3) return best;
  return rank(want) < rank(best) ? want : best;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP's idle threads spin for a while after each parallel region (GOMP_SPINCOUNT) and would
  // take the cores from descent's own threads measured next: make them sleep. libgomp reads the
  // variable when it is loaded, so set it and start again.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
  }
  std::string json_path;
  std::vector<std::string> kinds = {"sgd",  "rmsprop", "adagrad", "adadelta",
                                    "adam", "adamw",   "adamax",  "lion"};
  std::vector<std::string> dtypes = {"float32", "float64"};
  std::vector<std::string> sizes = {"256K", "4M", "32M"};
  std::vector<std::string> half_sizes = {"4M", "32M"};
  int rounds = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--json")
      json_path = next();
    else if (a == "--sizes")
      sizes = split(next());
    else if (a == "--kinds")
      kinds = split(next());
    else if (a == "--dtypes")
      dtypes = split(next());
    else if (a == "--rounds")
      rounds = std::max(1, std::atoi(next().c_str()));
    else if (a == "--half-sizes")
      half_sizes = split(next());
    else if (a == "--quick")
      sizes = {"256K", "4M"}, half_sizes = {"4M"}, rounds = 3;
    else {
      std::fprintf(stderr,
                   "usage: %s [--json FILE] [--sizes 256K,4M,32M] [--kinds k,...] "
                   "[--dtypes float32,float64] [--half-sizes 4M,32M] [--rounds N] [--quick]\n",
                   argv[0]);
      return 2;
    }
  }
  size_t threads = 0;
  descent_get_num_threads(&threads, nullptr, 0);
  std::printf(
      "descent %s | CPU: %s | descent threads %zu, ISA %s | peer/stream OpenMP threads %d\n",
      descent_version_string(), cpu_name().c_str(), threads, isa_in_effect().c_str(),
      peer::threads());
  std::printf("%-9s %-7s %6s | %8s %8s %8s | %8s %8s | %8s %8s\n", "kind", "dtype", "params",
              "descent", "stream", "peer", "/stream", "/peer", "/stream", "/peer");
  std::printf("%-9s %-7s %6s | %26s | %17s | %17s\n", "", "", "", "Gparam/s (best round)",
              "ratio (best)", "ratio (median)");
  std::ostringstream js;
  js << "{\n  \"cpu\": \"" << cpu_name() << "\",\n  \"descent_version\": \""
     << descent_version_string() << "\",\n  \"threads\": " << threads << ",\n  \"isa\": \""
     << isa_in_effect() << "\",\n  \"peer_threads\": " << peer::threads()
     << ",\n  \"rounds\": " << rounds << ",\n  \"elementwise\": [";
  bool first = true;
  for (const auto& size_s : sizes) {
    const int64_t n = parse_size(size_s);
    const int iters = static_cast<int>(std::max<int64_t>(1, (int64_t{1} << 24) / n));
    for (const auto& dt : dtypes) {
      const bool dbl = dt == "float64";
      const std::size_t es = dbl ? 8 : 4;
      for (const auto& kind : kinds) {
        const int slots = slots_of(kind);
        Aligned p(n * es), g(n * es), s0(n * es), s1(n * es);
        fill(p.ptr, dbl, n, 0.5, 0.25);
        fill(g.ptr, dbl, n, -0.01, 0.02);
        std::memset(s0.ptr, 0, n * es);
        std::memset(s1.ptr, 0, n * es);
        void* sp[2] = {s0.ptr, s1.ptr};
        descent_optimizer* opt = make(kind);
        const int64_t shape[] = {n};
        check(descent_optimizer_add_parameter(opt, "w", dbl ? DESCENT_FLOAT64 : DESCENT_FLOAT32, 1,
                                              shape),
              opt, "add_parameter");
        const size_t idx[] = {0};
        void* params[] = {p.ptr};
        const void* grads[] = {g.ptr};
        auto descent_step = [&] {
          check(descent_optimizer_update_indexed(opt, 1, idx, nullptr, nullptr, params, grads), opt,
                "update");
        };
        descent_step();  // initialises the state
        peer::step(kind, dbl, n, p.ptr, g.ptr, sp);
        peer::stream(slots, dbl, n, p.ptr, g.ptr, sp);
        std::vector<double> td, ts, tp;
        for (int r = 0; r < rounds; ++r) {
          ts.push_back(time_it(iters, [&] { peer::stream(slots, dbl, n, p.ptr, g.ptr, sp); }));
          td.push_back(time_it(iters, descent_step));
          tp.push_back(time_it(iters, [&] { peer::step(kind, dbl, n, p.ptr, g.ptr, sp); }));
        }
        descent_optimizer_free(opt);
        const Stats d = stats(td), s = stats(ts), q = stats(tp);
        const double gd = n / d.best / 1e9, gs = n / s.best / 1e9, gp = n / q.best / 1e9;
        std::printf("%-9s %-7s %6s | %8.3f %8.3f %8.3f | %8.3f %8.3f | %8.3f %8.3f\n", kind.c_str(),
                    dt.c_str(), size_s.c_str(), gd, gs, gp, s.best / d.best, q.best / d.best,
                    s.median / d.median, q.median / d.median);
        std::fflush(stdout);
        js << (first ? "\n" : ",\n") << "    {\"kind\": \"" << kind << "\", \"dtype\": \"" << dt
           << "\", \"params\": " << n << ", \"bytes_per_param\": " << (3 + 2 * slots) * es
           << ", \"gparams_per_s\": {\"descent\": " << gd << ", \"stream\": " << gs
           << ", \"peer\": " << gp
           << "}, \"gparams_per_s_median\": {\"descent\": " << n / d.median / 1e9
           << ", \"stream\": " << n / s.median / 1e9 << ", \"peer\": " << n / q.median / 1e9
           << "}, \"ratio_to_stream\": " << s.best / d.best
           << ", \"ratio_to_peer\": " << q.best / d.best
           << ", \"ratio_to_stream_median\": " << s.median / d.median
           << ", \"ratio_to_peer_median\": " << q.median / d.median << "}";
        first = false;
      }
    }
  }
  js << "\n  ],\n";

  // ---- half-precision parameters: bfloat16/float16 params and grads, float32 state ------------
  // (state_precision "float32", the default). AdamW moves 22 bytes per parameter instead of
  // float32's 28: at DRAM sizes the ratio to float32 is bounded by 28/22 = 1.27.
  js << "  \"half\": [";
  std::printf(
      "\nhalf-precision parameters (float32 state), Gparam/s best (median), ratio to float32:\n");
  bool first_half = true;
  for (const auto& size_s : half_sizes) {
    const int64_t n = parse_size(size_s);
    const int iters = static_cast<int>(std::max<int64_t>(1, (int64_t{1} << 24) / n));
    for (const std::string kind : {"adamw", "lion", "sgd"}) {
      Aligned p32(n * 4), g32(n * 4), p16(n * 2), g16(n * 2), b16(n * 2), h16(n * 2);
      fill(p32.ptr, false, n, 0.5, 0.25);
      fill(g32.ptr, false, n, -0.01, 0.02);
      for (int64_t i = 0; i < n; ++i) {  // bfloat16 by truncation, float16 by the library later
        uint32_t u;
        std::memcpy(&u, static_cast<float*>(p32.ptr) + i, 4);
        static_cast<uint16_t*>(p16.ptr)[i] = static_cast<uint16_t>(u >> 16);
        std::memcpy(&u, static_cast<float*>(g32.ptr) + i, 4);
        static_cast<uint16_t*>(g16.ptr)[i] = static_cast<uint16_t>(u >> 16);
        static_cast<uint16_t*>(h16.ptr)[i] = 0x3800;  // 0.5 in float16
        static_cast<uint16_t*>(b16.ptr)[i] = 0x1E00;  // ~0.006 in float16
      }
      struct Run {
        descent_dtype dtype;
        void* p;
        const void* g;
        descent_optimizer* opt;
      };
      Run runs[3] = {{DESCENT_FLOAT32, p32.ptr, g32.ptr, make(kind)},
                     {DESCENT_BFLOAT16, p16.ptr, g16.ptr, make(kind)},
                     {DESCENT_FLOAT16, h16.ptr, b16.ptr, make(kind)}};
      std::vector<double> t[3];
      for (auto& r : runs)
        check(descent_optimizer_add_parameter(r.opt, "w", r.dtype, 1, &n), r.opt, "add_parameter");
      const size_t idx[] = {0};
      for (int round = -1; round < rounds; ++round)
        for (int k = 0; k < 3; ++k) {
          void* params[] = {runs[k].p};
          const void* grads[] = {runs[k].g};
          const double sec = time_it(round < 0 ? 1 : iters, [&] {
            check(descent_optimizer_update_indexed(runs[k].opt, 1, idx, nullptr, nullptr, params,
                                                   grads),
                  runs[k].opt, "half update");
          });
          if (round >= 0) t[k].push_back(sec);
        }
      for (auto& r : runs) descent_optimizer_free(r.opt);
      const Stats f = stats(t[0]), bf = stats(t[1]), h = stats(t[2]);
      std::printf(
          "  %-6s %5s | float32 %.3f (%.3f) | bfloat16 %.3f (%.3f) ratio %.3f (%.3f) | float16 "
          "%.3f (%.3f) ratio %.3f (%.3f)\n",
          kind.c_str(), size_s.c_str(), n / f.best / 1e9, n / f.median / 1e9, n / bf.best / 1e9,
          n / bf.median / 1e9, f.best / bf.best, f.median / bf.median, n / h.best / 1e9,
          n / h.median / 1e9, f.best / h.best, f.median / h.median);
      std::fflush(stdout);
      js << (first_half ? "\n" : ",\n") << "    {\"kind\": \"" << kind << "\", \"params\": " << n
         << ", \"gparams_per_s\": {\"float32\": " << n / f.best / 1e9
         << ", \"bfloat16\": " << n / bf.best / 1e9 << ", \"float16\": " << n / h.best / 1e9
         << "}, \"ratio_bfloat16\": " << f.best / bf.best
         << ", \"ratio_bfloat16_median\": " << f.median / bf.median
         << ", \"ratio_float16\": " << f.best / h.best
         << ", \"ratio_float16_median\": " << f.median / h.median << "}";
      first_half = false;
    }
  }
  js << "\n  ],\n";

  // ---- many small tensors: 10,000 x 100 float32, AdamW ----------------------------------------
  {
    const int64_t count = 10000, each = 100, total = count * each;
    descent_optimizer* many = make("adamw");
    descent_optimizer* one = make("adamw");
    std::vector<std::string> names;
    for (int64_t i = 0; i < count; ++i) {
      names.push_back("t" + std::to_string(i));
      check(descent_optimizer_add_parameter(many, names.back().c_str(), DESCENT_FLOAT32, 1, &each),
            many, "add");
    }
    check(descent_optimizer_add_parameter(one, "w", DESCENT_FLOAT32, 1, &total), one, "add");
    size_t flat = 0;
    check(descent_optimizer_flat_size(many, &flat), many, "flat_size");
    Aligned fp(flat), fg(flat), p1(total * 4), g1(total * 4);
    std::memset(fp.ptr, 0, flat);
    std::memset(fg.ptr, 0, flat);
    fill(p1.ptr, false, total, 0.5, 0.25);
    fill(g1.ptr, false, total, -0.01, 0.02);
    std::vector<size_t> idx(count);
    std::vector<void*> pp(count);
    std::vector<const void*> gp(count);
    for (int64_t i = 0; i < count; ++i) {
      size_t off = 0;
      descent_optimizer_flat_offset(many, i, &off);
      idx[i] = i;
      pp[i] = static_cast<char*>(fp.ptr) + off;
      gp[i] = static_cast<char*>(fg.ptr) + off;
      fill(pp[i], false, each, 0.5, 0.25);
      fill(const_cast<void*>(gp[i]), false, each, -0.01, 0.02);
    }
    const size_t one_idx[] = {0};
    void* one_p[] = {p1.ptr};
    const void* one_g[] = {g1.ptr};
    auto step_one = [&] {
      check(descent_optimizer_update_indexed(one, 1, one_idx, nullptr, nullptr, one_p, one_g), one,
            "one");
    };
    auto step_flat = [&] {
      check(descent_optimizer_update_flat(many, fp.ptr, fg.ptr, flat), many, "flat");
    };
    auto step_idx = [&] {
      check(descent_optimizer_update_indexed(many, count, idx.data(), nullptr, nullptr, pp.data(),
                                             gp.data()),
            many, "indexed");
    };
    step_one();
    step_flat();
    const int iters = 16;
    std::vector<double> to, tf, ti;
    for (int r = 0; r < std::max(rounds, 5); ++r) {
      to.push_back(time_it(iters, step_one));
      tf.push_back(time_it(iters, step_flat));
      ti.push_back(time_it(iters, step_idx));
    }
    descent_optimizer_free(many);
    descent_optimizer_free(one);
    const Stats o = stats(to), f = stats(tf), x = stats(ti);
    std::printf(
        "\nmany small tensors (AdamW float32, %lld x %lld vs one of %lld), Gparam/s best "
        "(median):\n  one tensor %.3f (%.3f) | flat %.3f (%.3f) ratio %.3f (%.3f) | indexed "
        "%.3f (%.3f) ratio %.3f (%.3f)\n",
        static_cast<long long>(count), static_cast<long long>(each), static_cast<long long>(total),
        total / o.best / 1e9, total / o.median / 1e9, total / f.best / 1e9, total / f.median / 1e9,
        o.best / f.best, o.median / f.median, total / x.best / 1e9, total / x.median / 1e9,
        o.best / x.best, o.median / x.median);
    js << "  \"many_small\": {\"kind\": \"adamw\", \"dtype\": \"float32\", \"tensors\": " << count
       << ", \"each\": " << each << ", \"gparams_per_s\": {\"one\": " << total / o.best / 1e9
       << ", \"flat\": " << total / f.best / 1e9 << ", \"indexed\": " << total / x.best / 1e9
       << "}, \"ratio_flat\": " << o.best / f.best << ", \"ratio_indexed\": " << o.best / x.best
       << ", \"ratio_flat_median\": " << o.median / f.median
       << ", \"ratio_indexed_median\": " << o.median / x.median << "}\n}\n";
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << js.str();
    std::printf("wrote %s\n", json_path.c_str());
  }
  return 0;
}
