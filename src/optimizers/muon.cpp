// Muon (MLX's mlx.optimizers.Muon by default; docs/muon.md): EMA momentum with Nesterov, coupled
// weight decay, and for parameters of two or more dimensions the update orthogonalised by
// Newton–Schulz and scaled by sqrt(max(1, rows/cols)). Parameters of zero or one dimension get the
// momentum update alone. Options beyond MLX (coefficient tables, lr scales, decoupled decay, a
// pure divide-by-zero guard in the normalisation, the exact polar factor) are off by default.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/orthogonalize.h"
#include "optimizers/rule.h"

namespace descent {
namespace {

// ---- coefficient tables (docs/muon.md; reference/muon.md §2) ----------------------------------

// Keller Jordan's triple. c is (double)2.0315f: MLX passes it as addmm's alpha, a C++ float, so
// a float64 Newton–Schulz uses the float-rounded value (a and b are exact).
const double kJordan[] = {3.4445, -4.7750, static_cast<double>(2.0315f)};
// @YouJiacheng's 5-step table.
const double kYou[] = {4.0848, -6.8946, 2.9270,  //
                       3.9505, -6.3029, 2.6377,  //
                       3.7418, -5.5913, 2.3037,  //
                       2.8769, -3.1427, 1.2046,  //
                       2.8366, -3.0525, 1.2012};
// Polar Express (arXiv:2505.16932), the 5-step table of modded-nanogpt and microsoft/dion
// (num_iters=5, safety factor 2e-2, cushion 2e-2); used with X / (1.02 ||X||_F + 1e-6).
const double kPolarExpress[] = {8.156554524902461,  -22.48329292557795,  15.878769915207462,   //
                                4.042929935166739,  -2.808917465908714,  0.5000178451051316,   //
                                3.8916678022926607, -2.772484153217685,  0.5060648178503393,   //
                                3.285753657755655,  -2.3681294933425376, 0.46449024233003106,  //
                                2.3465413258596377, -1.7097828382687081, 0.42323551169305323};

HyperparameterSpec string_spec(std::string name, const char* def,
                               std::vector<std::string> choices) {
  return {std::move(name),
          DESCENT_VALUE_STRING,
          std::string(def),
          false,
          0,
          checks::one_of(std::move(choices))};
}

// Bounds on what scales the work of a step, so that no configuration (a state file's included)
// can make an update run for ever (docs/muon.md).
constexpr int64_t kMaxNsSteps = 100;
constexpr std::size_t kMaxTriples = 100;

std::string check_ns_steps(const Value& v) {
  const auto* i = std::get_if<int64_t>(&v);
  if (i && *i < 0) return "must be >= 0";
  return i && *i > kMaxNsSteps ? "must be <= " + std::to_string(kMaxNsSteps) : "";
}

std::string check_table(const Value& v) {
  const auto* a = std::get_if<std::vector<double>>(&v);
  if (!a) return "";
  if (a->empty() || a->size() % 3 != 0) return "must hold (a, b, c) triples: 3k values, k >= 1";
  return a->size() > 3 * kMaxTriples
             ? "must hold at most " + std::to_string(kMaxTriples) + " triples (" +
                   std::to_string(3 * kMaxTriples) + " values)"
             : "";
}

void validate_muon(const Hyperparameters& h) {
  if (h.get_string("coefficients") == "custom" && !h.is_set("custom_coefficients"))
    throw Error(DESCENT_ERR_OUT_OF_RANGE,
                "custom_coefficients: must be set when coefficients is \"custom\"");
}

const Schema& muon_schema() {
  static const Schema schema{
      {// MLX's signature: Muon(learning_rate, momentum=0.95, weight_decay=0.01, nesterov=True,
       // ns_steps=5)
       double_spec("momentum", 0.95),
       double_spec("weight_decay", 0.01),
       bool_spec("nesterov", true),
       {"ns_steps", DESCENT_VALUE_INT, int64_t{5}, false, 0, check_ns_steps},
       // Beyond MLX; the defaults are MLX's behaviour.
       string_spec("coefficients", "jordan", {"jordan", "you", "polar_express", "custom"}),
       {"custom_coefficients", DESCENT_VALUE_DOUBLE_ARRAY, std::monostate{}, true, 0, check_table},
       bool_spec("coefficients_repeat_last", false),
       string_spec("lr_scale", "mlx", {"mlx", "moonlight", "spectral", "none"}),
       bool_spec("lr_scale_flattened", false),
       string_spec("weight_decay_mode", "coupled", {"coupled", "decoupled"}),
       string_spec("norm_eps_mode", "additive", {"additive", "guard"}),
       string_spec("method", "newton_schulz", {"newton_schulz", "polar"}),
       // "gram": Gram Newton–Schulz (float32 and float64); only when asked for.
       string_spec("ns_impl", "syrk", {"syrk", "gemm", "gram"})},
      validate_muon};
  return schema;
}

// The matrix a parameter is orthogonalised as: (shape[0], prod(rest)) for ndim >= 2.
struct MatrixShape {
  int64_t rows = 0, cols = 0;
};
MatrixShape matrix_of(const Shape& s) {
  if (s.size() < 2) return {};
  int64_t rest = 1;
  for (std::size_t i = 1; i < s.size(); ++i) rest *= s[i];
  return {s[0], rest};
}

struct Prepared {
  bool is_double;
  int64_t rows, cols;
};

class Muon final : public Rule {
 public:
  std::unique_ptr<Rule> clone() const override { return std::make_unique<Muon>(*this); }
  const Schema& schema() const override { return muon_schema(); }
  std::vector<SlotSpec> slots(const Shape& s) const override { return {{"v", s}}; }

  void configure(const Hyperparameters& h) override {
    // Everything that can throw first (the polar workspace, Gram's larger one), then commit.
    const bool polar = h.get_string("method") == "polar";
    const std::string& impl = h.get_string("ns_impl");
    const kernels::NsImpl ns_impl = impl == "gemm"   ? kernels::NsImpl::Gemm
                                    : impl == "gram" ? kernels::NsImpl::Gram
                                                     : kernels::NsImpl::Syrk;
    std::size_t polar_bytes = polar_bytes_;
    if (polar)
      for (const auto& p : prepared_)
        polar_bytes =
            std::max(polar_bytes, kernels::polar_workspace_bytes(p.is_double, p.rows, p.cols));
    std::size_t work_bytes = 0;
    for (const auto& p : prepared_) work_bytes = std::max(work_bytes, work_bytes_for(p, ns_impl));
    Buffer grown_work = work_bytes > work_.bytes() ? Buffer(work_bytes) : Buffer();
    if (polar_bytes > polar_work_.bytes()) {
      Buffer grown(polar_bytes);
      polar_work_ = std::move(grown);
    }
    if (grown_work.bytes()) work_ = std::move(grown_work);
    polar_bytes_ = polar_bytes;
    polar_ = polar;

    momentum_ = h.get_double("momentum");
    weight_decay_ = h.get_double("weight_decay");
    nesterov_ = h.get_bool("nesterov");
    decoupled_ = h.get_string("weight_decay_mode") == "decoupled";
    const std::string& lr_scale = h.get_string("lr_scale");
    lr_scale_ = lr_scale == "mlx"         ? LrScale::Mlx
                : lr_scale == "moonlight" ? LrScale::Moonlight
                : lr_scale == "spectral"  ? LrScale::Spectral
                                          : LrScale::None;
    lr_scale_flattened_ = h.get_bool("lr_scale_flattened");

    const std::string& coefficients = h.get_string("coefficients");
    ns_ = kernels::NsParams{};
    ns_.steps = h.get_int("ns_steps");
    ns_.repeat_last = h.get_bool("coefficients_repeat_last");
    ns_.norm = h.get_string("norm_eps_mode") == "guard" ? kernels::NormMode::Guard
                                                        : kernels::NormMode::Additive;
    ns_.impl = ns_impl;
    if (coefficients == "custom") {
      // Unset only in a configuration that init and update reject (validate_muon); a planning
      // copy (slot lookup before init) may still be configured with it.
      if (h.is_set("custom_coefficients"))
        table_ = h.get_doubles("custom_coefficients");
      else
        table_.clear();
    } else {
      const double* t = kJordan;
      std::size_t n = 3;
      if (coefficients == "you") {
        t = kYou;
        n = 15;
      } else if (coefficients == "polar_express") {
        t = kPolarExpress;
        n = 15;
        ns_.norm_scale = 1.02;
        ns_.norm_eps = 1e-6;
      }
      table_.assign(t, t + n);
    }
    ns_.triples = table_.size() / 3;  // ns_.table is set at each use
  }

  void prepare(DType dtype, const Shape& shape) override {
    const MatrixShape m = matrix_of(shape);
    if (m.rows == 0 || m.cols == 0) return;  // 0-D/1-D, or no elements
    if (m.rows > INT_MAX || m.cols > INT_MAX)
      throw Error(DESCENT_ERR_UNSUPPORTED,
                  "muon: a parameter of shape " + shape_string(shape) + " is orthogonalised as a " +
                      std::to_string(m.rows) + "x" + std::to_string(m.cols) +
                      " matrix; a dimension exceeds the BLAS's 32-bit integer");
    const bool is_double = dtype == DType::Float64;
    const std::size_t ns_bytes = work_bytes_for({is_double, m.rows, m.cols}, ns_.impl);
    std::size_t polar_bytes = polar_bytes_;
    if (polar_)
      polar_bytes =
          std::max(polar_bytes, kernels::polar_workspace_bytes(is_double, m.rows, m.cols));
    std::vector<Prepared> prepared = prepared_;
    if (std::none_of(prepared.begin(), prepared.end(), [&](const Prepared& p) {
          return p.is_double == is_double && p.rows == m.rows && p.cols == m.cols;
        }))
      prepared.push_back({is_double, m.rows, m.cols});
    Buffer work = ns_bytes > work_.bytes() ? Buffer(ns_bytes) : Buffer();
    Buffer polar_work = polar_bytes > polar_work_.bytes() ? Buffer(polar_bytes) : Buffer();
    // Commit.
    if (work.bytes()) work_ = std::move(work);
    if (polar_work.bytes()) polar_work_ = std::move(polar_work);
    polar_bytes_ = polar_bytes;
    prepared_ = std::move(prepared);
  }

  void apply(const StepContext& ctx, const TensorStep& t) noexcept override {
    if (t.dtype == DType::Float32)
      step<float>(ctx, t);
    else
      step<double>(ctx, t);
  }

 private:
  enum class LrScale { Mlx, Moonlight, Spectral, None };

  // The update itself plus the Newton–Schulz buffers of one matrix.
  static std::size_t work_bytes_for(const Prepared& p, kernels::NsImpl impl) {
    const auto numel = static_cast<std::size_t>(p.rows) * static_cast<std::size_t>(p.cols);
    return (numel + kernels::ns_workspace_elements(p.rows, p.cols, impl)) *
           (p.is_double ? sizeof(double) : sizeof(float));
  }

  // The factor MLX multiplies the learning rate by (computed in double, rounded once to T).
  double lr_scale(const Shape& s) const {
    double r, c;
    if (lr_scale_flattened_) {
      const MatrixShape m = matrix_of(s);
      r = static_cast<double>(m.rows);
      c = static_cast<double>(m.cols);
    } else {  // MLX: the original last two dimensions (a conv filter (O,I,kh,kw) gives kh/kw)
      r = static_cast<double>(s[s.size() - 2]);
      c = static_cast<double>(s[s.size() - 1]);
    }
    switch (lr_scale_) {
      case LrScale::Mlx:
        return std::sqrt(std::max(1.0, r / c));
      case LrScale::Moonlight:
        return 0.2 * std::sqrt(std::max(r, c));
      case LrScale::Spectral:
        return std::sqrt(r / c);
      case LrScale::None:
        break;
    }
    return 1.0;
  }

  template <class T>
  void step(const StepContext& ctx, const TensorStep& t) noexcept {
    const int64_t n = t.numel;
    T* __restrict p = static_cast<T*>(t.param);
    const T* __restrict g = static_cast<const T*>(t.grad);
    T* __restrict v = t.slots[0]->as<T>();
    const T lr = static_cast<T>(ctx.learning_rate);  // MLX: learning_rate.astype(T)
    const T mom = static_cast<T>(momentum_), one_minus_mom = static_cast<T>(1.0 - momentum_);
    const T wd = static_cast<T>(weight_decay_);
    const bool coupled = !decoupled_ && weight_decay_ != 0.0;
    const bool decay = decoupled_ && weight_decay_ != 0.0;
    const T decay_factor = T(1) - lr * wd;  // decoupled: p * (1 - lr*wd), the unscaled lr

    const Shape& shape = *t.shape;
    if (shape.size() < 2) {
      // MLX: EMA momentum, no orthogonalisation, no scaling.
      for (int64_t i = 0; i < n; ++i) {
        const T gi = coupled ? g[i] + wd * p[i] : g[i];
        const T vi = mom * v[i] + one_minus_mom * gi;
        v[i] = vi;
        const T upd = nesterov_ ? gi * one_minus_mom + vi * mom : vi;
        const T pi = decay ? p[i] * decay_factor : p[i];
        p[i] = pi - lr * upd;
      }
      return;
    }

    const MatrixShape m = matrix_of(shape);
    T* __restrict u = work_.as<T>();
    T* ns_work = u + n;
    for (int64_t i = 0; i < n; ++i) {
      const T gi = coupled ? g[i] + wd * p[i] : g[i];
      const T vi = mom * v[i] + one_minus_mom * gi;
      v[i] = vi;
      u[i] = nesterov_ ? gi * one_minus_mom + vi * mom : vi;
    }
    const T* o = nullptr;
    if (polar_) {
      // The SVD overwrites its input: keep u for the Newton–Schulz fallback.
      T* x = ns_work + 2 * std::min(m.rows, m.cols) * std::min(m.rows, m.cols);
      std::memcpy(x, u, static_cast<std::size_t>(n) * sizeof(T));
      if (kernels::polar_factor(m.rows, m.cols, x, polar_work_.data(), polar_work_.bytes())) o = x;
    }
    if (!o) {
      kernels::NsParams ns = ns_;
      ns.table = table_.data();  // not copied from another instance by clone()
      o = kernels::newton_schulz(m.rows, m.cols, u, ns_work, ns);
    }
    const T lr_eff = lr * static_cast<T>(lr_scale(shape));  // MLX: lr = lr * T(scale)
    for (int64_t i = 0; i < n; ++i) {
      const T pi = decay ? p[i] * decay_factor : p[i];
      p[i] = pi - lr_eff * o[i];
    }
  }

  double momentum_ = 0.95, weight_decay_ = 0.01;
  bool nesterov_ = true, decoupled_ = false, lr_scale_flattened_ = false, polar_ = false;
  LrScale lr_scale_ = LrScale::Mlx;
  std::vector<double> table_;
  kernels::NsParams ns_;
  // Workspace, sized at prepare() for the largest parameter and reused by every apply():
  // the update (numel) followed by the Newton–Schulz buffers; the SVD's, when method is polar.
  Buffer work_;
  Buffer polar_work_;
  std::size_t polar_bytes_ = 0;
  std::vector<Prepared> prepared_;  // distinct (dtype, rows, cols) seen by prepare()
};

}  // namespace

std::unique_ptr<Rule> make_muon() {
  return std::make_unique<Muon>();
}

}  // namespace descent
