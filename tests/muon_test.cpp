// Muon through the public C API: hyperparameters (MLX's defaults, the string options), the
// orthogonalisation (Newton–Schulz closed forms on diagonal inputs, singular-value bands of every
// coefficient preset, SYRK path against the three-GEMM reference, the exact polar factor), the
// learning-rate scales, decoupled decay, the 0-D/1-D momentum path, zero and tiny gradients, and
// MLX's golden trajectories once more through the three-GEMM path. Singular values and reference
// factors come from LAPACKE.
//
// Most checks read the orthogonalised update directly: with learning_rate 1, momentum 0, no
// weight decay, no Nesterov and lr_scale "none", one update of a zero parameter leaves exactly
// -O(g) in it (v = 0*v + 1*g = g, p = 0 - 1*O).
#include <gtest/gtest.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "descent/descent.h"
#include "golden_support.h"

namespace {

using Mat = std::vector<double>;  // row-major

// ---- helpers -----------------------------------------------------------------------------------

struct Opt {
  descent_optimizer* h = nullptr;
  explicit Opt(const std::string& config_json = "") {
    EXPECT_EQ(descent_optimizer_create("muon", &h, nullptr, 0), DESCENT_OK) << descent_last_error();
    if (!config_json.empty()) {
      EXPECT_EQ(descent_optimizer_configure_json(h, config_json.c_str()), DESCENT_OK)
          << config_json << ": " << descent_optimizer_last_error(h);
    }
  }
  ~Opt() { descent_optimizer_free(h); }
  Opt(const Opt&) = delete;
  Opt& operator=(const Opt&) = delete;
  operator descent_optimizer*() const { return h; }  // NOLINT
  std::string error() const { return descent_optimizer_last_error(h); }
};

double uniform(uint64_t seed) {  // splitmix64 -> [0, 1)
  uint64_t z = seed + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

Mat gaussian(int64_t rows, int64_t cols, uint64_t seed) {
  Mat m(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < m.size(); ++i) {
    const double u1 = uniform(seed * 1000003 + 2 * i) + 1e-300,
                 u2 = uniform(seed * 1000003 + 2 * i + 1);
    m[i] = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }
  return m;
}

Mat transpose(const Mat& a, int64_t rows, int64_t cols) {
  Mat t(a.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = a[i * cols + j];
  return t;
}

Mat matmul(const Mat& a, const Mat& b, int64_t m, int64_t k, int64_t n) {
  Mat c(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}

// Q of the QR factorisation of a Gaussian matrix: a random orthogonal n x n matrix.
Mat random_orthogonal(int64_t n, uint64_t seed) {
  Mat a = gaussian(n, n, seed);
  std::vector<double> tau(static_cast<size_t>(n));
  EXPECT_EQ(LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n, n, a.data(), n, tau.data()), 0);
  EXPECT_EQ(LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n, n, n, a.data(), n, tau.data()), 0);
  return a;
}

std::vector<double> singular_values(Mat a, int64_t rows, int64_t cols) {
  const int64_t k = std::min(rows, cols);
  std::vector<double> s(static_cast<size_t>(k));
  double dummy = 0;
  // Row-major rows x cols is column-major cols x rows: the same singular values.
  EXPECT_EQ(LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', cols, rows, a.data(), cols, s.data(), &dummy, 1,
                           &dummy, 1),
            0);
  return s;
}

// U Vᵀ of the thin SVD.
Mat polar_reference(Mat a, int64_t rows, int64_t cols) {
  const int64_t k = std::min(rows, cols);
  std::vector<double> s(static_cast<size_t>(k));
  Mat u(static_cast<size_t>(rows * k)), vt(static_cast<size_t>(k * cols));
  EXPECT_EQ(LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', rows, cols, a.data(), cols, s.data(), u.data(), k,
                           vt.data(), cols),
            0);
  return matmul(u, vt, rows, k, cols);
}

double max_abs_diff(const Mat& a, const Mat& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

// Raw bytes of a tensor in a dtype, and back.
std::vector<unsigned char> to_bytes(const Mat& m, descent_dtype dt) {
  std::vector<unsigned char> out(m.size() * (dt == DESCENT_FLOAT64 ? 8 : 4));
  for (size_t i = 0; i < m.size(); ++i) {
    if (dt == DESCENT_FLOAT64) {
      std::memcpy(out.data() + 8 * i, &m[i], 8);
    } else {
      const float f = static_cast<float>(m[i]);
      std::memcpy(out.data() + 4 * i, &f, 4);
    }
  }
  return out;
}
Mat from_bytes(const std::vector<unsigned char>& b, descent_dtype dt) {
  const size_t n = b.size() / (dt == DESCENT_FLOAT64 ? 8 : 4);
  Mat out(n);
  for (size_t i = 0; i < n; ++i) {
    if (dt == DESCENT_FLOAT64) {
      std::memcpy(&out[i], b.data() + 8 * i, 8);
    } else {
      float f;
      std::memcpy(&f, b.data() + 4 * i, 4);
      out[i] = f;
    }
  }
  return out;
}

// Parameters of one optimizer, updated together.
struct Params {
  descent_dtype dtype;
  std::vector<std::string> names;
  std::vector<std::vector<unsigned char>> p;

  void add(descent_optimizer* opt, const std::string& name, const std::vector<int64_t>& shape,
           const Mat& init) {
    ASSERT_EQ(descent_optimizer_add_parameter(opt, name.c_str(), dtype, shape.size(), shape.data()),
              DESCENT_OK)
        << descent_optimizer_last_error(opt);
    names.push_back(name);
    p.push_back(to_bytes(init, dtype));
  }
  descent_status update(descent_optimizer* opt, const std::vector<Mat>& grads) {
    std::vector<std::vector<unsigned char>> g;
    std::vector<const char*> n;
    std::vector<void*> pp;
    std::vector<const void*> gp;
    for (size_t i = 0; i < names.size(); ++i) g.push_back(to_bytes(grads[i], dtype));
    for (size_t i = 0; i < names.size(); ++i) {
      n.push_back(names[i].c_str());
      pp.push_back(p[i].data());
      gp.push_back(g[i].data());
    }
    return descent_optimizer_update(opt, n.size(), n.data(), nullptr, nullptr, pp.data(),
                                    gp.data());
  }
  Mat value(size_t i) const { return from_bytes(p[i], dtype); }
};

const char* kReadUpdate =
    R"("learning_rate": 1, "momentum": 0, "weight_decay": 0, "nesterov": false, "lr_scale": "none")";

// O(g) for a rows x cols gradient, through one update of a zero parameter.
Mat orthogonalize(const Mat& g, int64_t rows, int64_t cols, descent_dtype dt,
                  const std::string& extra = "") {
  Opt opt(std::string("{") + kReadUpdate + (extra.empty() ? "" : ", " + extra) + "}");
  Params ps{dt, {}, {}};
  ps.add(opt, "w", {rows, cols}, Mat(g.size(), 0.0));
  EXPECT_EQ(ps.update(opt, {g}), DESCENT_OK) << opt.error();
  Mat o = ps.value(0);
  for (double& x : o) x = -x;
  return o;
}

Mat diag(int64_t rows, int64_t cols, const std::vector<double>& d) {
  Mat m(static_cast<size_t>(rows * cols), 0.0);
  for (size_t i = 0; i < d.size(); ++i) m[i * cols + i] = d[i];
  return m;
}

// Newton–Schulz on singular values: the exact reference for diagonal inputs.
struct Table {
  std::vector<double> abc;
  double scale = 1.0, eps = 1e-7;
};
const double kC32 = static_cast<double>(2.0315f);  // MLX's addmm alpha is a float
const Table kJordan{{3.4445, -4.7750, kC32}};
const Table kYou{{4.0848, -6.8946, 2.9270, 3.9505, -6.3029, 2.6377, 3.7418, -5.5913, 2.3037, 2.8769,
                  -3.1427, 1.2046, 2.8366, -3.0525, 1.2012}};
const Table kPolarExpress{
    {8.156554524902461, -22.48329292557795, 15.878769915207462, 4.042929935166739,
     -2.808917465908714, 0.5000178451051316, 3.8916678022926607, -2.772484153217685,
     0.5060648178503393, 3.285753657755655, -2.3681294933425376, 0.46449024233003106,
     2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
    1.02,
    1e-6};

std::vector<double> ns_scalar(const std::vector<double>& s, const Table& t, int steps,
                              bool repeat_last = false, bool guard = false) {
  double norm = 0;
  for (double v : s) norm += v * v;
  norm = t.scale * std::sqrt(norm);
  std::vector<double> x(s);
  for (double& v : x) v = guard ? (norm > 0 ? v / norm : 0.0) : v / (norm + t.eps);
  const size_t triples = t.abc.size() / 3;
  for (int k = 0; k < steps; ++k) {
    const size_t i = repeat_last ? std::min<size_t>(k, triples - 1) : k % triples;
    const double a = t.abc[3 * i], b = t.abc[3 * i + 1], c = t.abc[3 * i + 2];
    for (double& v : x) v = a * v + (b * v * v + c * v * v * v * v) * v;
  }
  return x;
}

std::string get_string(descent_optimizer* opt, const char* key) {
  size_t len = 0;
  EXPECT_EQ(descent_optimizer_get_string(opt, key, nullptr, 0, &len), DESCENT_OK)
      << descent_optimizer_last_error(opt);
  std::string s(len + 1, '\0');
  EXPECT_EQ(descent_optimizer_get_string(opt, key, s.data(), s.size(), &len), DESCENT_OK);
  s.resize(len);
  return s;
}

// ---- hyperparameters -------------------------------------------------------------------------

TEST(MuonHyperparameters, MlxDefaultsAndOptionsOffByDefault) {
  Opt opt;
  double d = 0;
  bool b = false;
  int64_t i = 0;
  ASSERT_EQ(descent_optimizer_get_double(opt, "momentum", &d), DESCENT_OK);
  EXPECT_EQ(d, 0.95);
  ASSERT_EQ(descent_optimizer_get_double(opt, "weight_decay", &d), DESCENT_OK);
  EXPECT_EQ(d, 0.01);
  ASSERT_EQ(descent_optimizer_get_bool(opt, "nesterov", &b), DESCENT_OK);
  EXPECT_TRUE(b);
  ASSERT_EQ(descent_optimizer_get_int(opt, "ns_steps", &i), DESCENT_OK);
  EXPECT_EQ(i, 5);
  EXPECT_EQ(get_string(opt, "coefficients"), "jordan");
  EXPECT_EQ(get_string(opt, "lr_scale"), "mlx");
  EXPECT_EQ(get_string(opt, "weight_decay_mode"), "coupled");
  EXPECT_EQ(get_string(opt, "norm_eps_mode"), "additive");
  EXPECT_EQ(get_string(opt, "method"), "newton_schulz");
  EXPECT_EQ(get_string(opt, "ns_impl"), "syrk");
  ASSERT_EQ(descent_optimizer_get_bool(opt, "lr_scale_flattened", &b), DESCENT_OK);
  EXPECT_FALSE(b);
  ASSERT_EQ(descent_optimizer_get_bool(opt, "coefficients_repeat_last", &b), DESCENT_OK);
  EXPECT_FALSE(b);
  descent_value_type t = DESCENT_VALUE_DOUBLE;
  ASSERT_EQ(descent_optimizer_hyperparameter_type(opt, "custom_coefficients", &t), DESCENT_OK);
  EXPECT_EQ(t, DESCENT_VALUE_NONE);
  ASSERT_EQ(descent_optimizer_hyperparameter_type(opt, "coefficients", &t), DESCENT_OK);
  EXPECT_EQ(t, DESCENT_VALUE_STRING);
  ASSERT_EQ(descent_optimizer_hyperparameter_type(opt, "learning_rate", &t), DESCENT_OK);
  EXPECT_EQ(t, DESCENT_VALUE_NONE);  // required, no default (MLX)

  // Enumeration: learning_rate, then MLX's signature order, then the options.
  const std::vector<std::string> expected{"learning_rate",
                                          "momentum",
                                          "weight_decay",
                                          "nesterov",
                                          "ns_steps",
                                          "coefficients",
                                          "custom_coefficients",
                                          "coefficients_repeat_last",
                                          "lr_scale",
                                          "lr_scale_flattened",
                                          "weight_decay_mode",
                                          "norm_eps_mode",
                                          "method",
                                          "ns_impl",
                                          "state_precision",
                                          "stochastic_rounding",
                                          "rounding_seed"};
  size_t count = 0;
  ASSERT_EQ(descent_optimizer_hyperparameter_count(opt, &count), DESCENT_OK);
  std::vector<std::string> names;
  for (size_t k = 0; k < count; ++k) {
    const char* name = nullptr;
    ASSERT_EQ(descent_optimizer_hyperparameter_name(opt, k, &name), DESCENT_OK);
    names.emplace_back(name);
  }
  EXPECT_EQ(names, expected);
}

TEST(MuonHyperparameters, LearningRateIsRequired) {
  Opt opt;
  const int64_t shape[] = {2, 3};
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "w", DESCENT_FLOAT32, 2, shape), DESCENT_OK);
  EXPECT_EQ(descent_optimizer_init(opt), DESCENT_ERR_INVALID_STATE);
}

TEST(MuonHyperparameters, StringValuesRoundTripAndAreChecked) {
  Opt opt;
  ASSERT_EQ(descent_optimizer_set_string(opt, "coefficients", "polar_express"), DESCENT_OK);
  EXPECT_EQ(get_string(opt, "coefficients"), "polar_express");

  // Not a choice: OUT_OF_RANGE naming the key and the choices; the old value stays.
  EXPECT_EQ(descent_optimizer_set_string(opt, "coefficients", "newton"), DESCENT_ERR_OUT_OF_RANGE);
  const std::string msg = opt.error();
  EXPECT_NE(msg.find("coefficients"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"jordan\""), std::string::npos) << msg;
  EXPECT_EQ(get_string(opt, "coefficients"), "polar_express");

  // Wrong types both ways.
  EXPECT_EQ(descent_optimizer_set_double(opt, "lr_scale", 1.0), DESCENT_ERR_WRONG_TYPE);
  EXPECT_EQ(descent_optimizer_set_string(opt, "momentum", "0.9"), DESCENT_ERR_WRONG_TYPE);
  double d = 0;
  EXPECT_EQ(descent_optimizer_get_double(opt, "method", &d), DESCENT_ERR_WRONG_TYPE);
  size_t len = 0;
  char buf[64];
  EXPECT_EQ(descent_optimizer_get_string(opt, "momentum", buf, sizeof buf, &len),
            DESCENT_ERR_WRONG_TYPE);
  EXPECT_EQ(descent_optimizer_get_string(opt, "nope", buf, sizeof buf, &len),
            DESCENT_ERR_UNKNOWN_KEY);
  EXPECT_EQ(descent_optimizer_set_string(opt, "nope", "x"), DESCENT_ERR_UNKNOWN_KEY);

  // Buffer handling: exact fit needs room for the NUL.
  ASSERT_EQ(descent_optimizer_get_string(opt, "method", nullptr, 0, &len), DESCENT_OK);
  EXPECT_EQ(len, std::strlen("newton_schulz"));
  EXPECT_EQ(descent_optimizer_get_string(opt, "method", buf, len, &len),
            DESCENT_ERR_BUFFER_TOO_SMALL);
  ASSERT_EQ(descent_optimizer_get_string(opt, "method", buf, len + 1, &len), DESCENT_OK);
  EXPECT_STREQ(buf, "newton_schulz");
  EXPECT_EQ(descent_optimizer_get_string(opt, "method", buf, sizeof buf, nullptr),
            DESCENT_ERR_NULL_ARGUMENT);
  EXPECT_EQ(descent_optimizer_set_string(opt, "method", nullptr), DESCENT_ERR_NULL_ARGUMENT);
}

TEST(MuonHyperparameters, JsonStringsAllOrNothing) {
  Opt opt;
  ASSERT_EQ(descent_optimizer_configure_json(
                opt, R"({"learning_rate": 0.02, "lr_scale": "moonlight", "method": "polar"})"),
            DESCENT_OK)
      << opt.error();
  EXPECT_EQ(get_string(opt, "lr_scale"), "moonlight");
  EXPECT_EQ(get_string(opt, "method"), "polar");
  // One bad value: nothing changes.
  EXPECT_EQ(descent_optimizer_configure_json(opt, R"({"lr_scale": "spectral", "method": "svd"})"),
            DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_NE(opt.error().find("method"), std::string::npos) << opt.error();
  EXPECT_EQ(get_string(opt, "lr_scale"), "moonlight");
  EXPECT_EQ(descent_optimizer_configure_json(opt, R"({"ns_steps": "5"})"), DESCENT_ERR_WRONG_TYPE);
  EXPECT_EQ(descent_optimizer_configure_json(opt, R"({"coefficients": 1})"),
            DESCENT_ERR_WRONG_TYPE);
}

TEST(MuonHyperparameters, CustomTableAndStepCountAreValidated) {
  Opt opt(R"({"learning_rate": 0.02})");
  EXPECT_EQ(descent_optimizer_set_int(opt, "ns_steps", -1), DESCENT_ERR_OUT_OF_RANGE);
  ASSERT_EQ(descent_optimizer_set_int(opt, "ns_steps", 0), DESCENT_OK);
  const double five[] = {1, 2, 3, 4, 5};
  EXPECT_EQ(descent_optimizer_set_doubles(opt, "custom_coefficients", five, 5),
            DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_EQ(descent_optimizer_set_doubles(opt, "custom_coefficients", five, 0),
            DESCENT_ERR_OUT_OF_RANGE);
  // "custom" without a table is rejected when the keys are checked together.
  EXPECT_EQ(descent_optimizer_configure_json(opt, R"({"coefficients": "custom"})"),
            DESCENT_ERR_OUT_OF_RANGE);
  EXPECT_NE(opt.error().find("custom_coefficients"), std::string::npos) << opt.error();
  ASSERT_EQ(descent_optimizer_set_string(opt, "coefficients", "custom"), DESCENT_OK);
  const int64_t shape[] = {2, 3};
  ASSERT_EQ(descent_optimizer_add_parameter(opt, "w", DESCENT_FLOAT32, 2, shape), DESCENT_OK);
  EXPECT_EQ(descent_optimizer_init(opt), DESCENT_ERR_OUT_OF_RANGE);
  const float zeros[6] = {};
  EXPECT_EQ(descent_optimizer_state_set(opt, "w.v", DESCENT_FLOAT32, zeros, 6),
            DESCENT_ERR_OUT_OF_RANGE);
  ASSERT_EQ(descent_optimizer_set_doubles(opt, "custom_coefficients", five, 3), DESCENT_OK);
  EXPECT_EQ(descent_optimizer_init(opt), DESCENT_OK) << opt.error();
}

// ---- Newton–Schulz closed forms (reference/muon.md §7) -----------------------------------------

struct DiagCase {
  const char* config;
  const Table* table;
  std::vector<double> published;  // muon.md §7, evaluated with the exact coefficients
  double published_tol;
};

TEST(MuonNewtonSchulz, DiagonalInputsMatchTheScalarMap) {
  const std::vector<double> g{1, 0.5, 0.1, 0.01, 0.001};
  const std::vector<DiagCase> cases{
      // jordan's c is (double)2.0315f as in MLX, which moves the values by up to 3e-7 from the
      // published exact-coefficient ones.
      {R"("coefficients": "jordan")",
       &kJordan,
       {0.6989646552, 1.1187815553, 0.7120101291, 0.6865608031, 0.4217815778},
       5e-7},
      {R"("coefficients": "you")",
       &kYou,
       {1.0268280746, 1.0068317678, 0.9878354323, 0.9920118211, 0.4263395431},
       1e-9},
      {R"("coefficients": "polar_express")",
       &kPolarExpress,
       {1.0047089268, 1.0215224633, 1.1399352844, 0.8661855905, 0.7756152170},
       1e-9}};
  for (const auto& c : cases) {
    for (const char* impl : {"syrk", "gemm"}) {
      for (descent_dtype dt : {DESCENT_FLOAT64, DESCENT_FLOAT32}) {
        SCOPED_TRACE(std::string(c.config) + " ns_impl " + impl + " " + descent_dtype_name(dt));
        const Mat o = orthogonalize(diag(5, 5, g), 5, 5, dt,
                                    std::string(c.config) + R"(, "ns_impl": ")" + impl + "\"");
        const std::vector<double> ref = ns_scalar(g, *c.table, 5);
        const double tol = dt == DESCENT_FLOAT64 ? 1e-12 : 2e-5;
        for (int64_t i = 0; i < 5; ++i)
          for (int64_t j = 0; j < 5; ++j) {
            const double got = o[i * 5 + j];
            if (i == j) {
              EXPECT_NEAR(got, ref[i], tol) << "diagonal " << i;
              EXPECT_NEAR(got, c.published[i], c.published_tol + (tol > 1e-9 ? tol : 0)) << i;
            } else {
              EXPECT_EQ(got, 0.0) << i << "," << j;
            }
          }
      }
    }
  }
}

TEST(MuonNewtonSchulz, RectangularDiagonalAndItsTransposeAgree) {
  // G = [diag(3,2,1) | 0] (3x5): published [1.1219694074, 0.6845800210, 0.6982618978] with the
  // exact c; the transpose gives the same (transpose rule).
  const std::vector<double> d{3, 2, 1};
  const std::vector<double> ref = ns_scalar(d, kJordan, 5);
  const std::vector<double> published{1.1219694074, 0.6845800210, 0.6982618978};
  for (const char* impl : {"syrk", "gemm"}) {
    SCOPED_TRACE(impl);
    const std::string cfg = std::string(R"("ns_impl": ")") + impl + "\"";
    const Mat wide = orthogonalize(diag(3, 5, d), 3, 5, DESCENT_FLOAT64, cfg);
    const Mat tall = orthogonalize(diag(5, 3, d), 5, 3, DESCENT_FLOAT64, cfg);
    for (int i = 0; i < 3; ++i) {
      EXPECT_NEAR(wide[i * 5 + i], ref[i], 1e-12);
      EXPECT_NEAR(tall[i * 3 + i], ref[i], 1e-12);
      EXPECT_NEAR(wide[i * 5 + i], published[i], 3e-7);
    }
    EXPECT_LE(max_abs_diff(transpose(wide, 3, 5), tall), 1e-14);
  }
}

TEST(MuonNewtonSchulz, RotatedDiagonalGivesRotatedMap) {
  // G = U diag(s) Vᵀ  ->  O = U diag(p(s)) Vᵀ, for a wide, a tall and a square shape.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{6, 9}, {9, 6}, {7, 7}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    const int64_t k = std::min(rows, cols);
    std::vector<double> s(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) s[i] = std::pow(0.5, static_cast<double>(i));
    const Mat u = random_orthogonal(rows, 11), v = random_orthogonal(cols, 12);
    const Mat g = matmul(matmul(u, diag(rows, cols, s), rows, rows, cols), transpose(v, cols, cols),
                         rows, cols, cols);
    for (const Table* t : {&kJordan, &kYou, &kPolarExpress}) {
      const char* name = t == &kJordan ? "jordan" : t == &kYou ? "you" : "polar_express";
      const Mat o = orthogonalize(g, rows, cols, DESCENT_FLOAT64,
                                  std::string(R"("coefficients": ")") + name + "\"");
      const Mat expected =
          matmul(matmul(u, diag(rows, cols, ns_scalar(s, *t, 5)), rows, rows, cols),
                 transpose(v, cols, cols), rows, cols, cols);
      EXPECT_LE(max_abs_diff(o, expected), 1e-12) << name;
    }
  }
}

TEST(MuonNewtonSchulz, StepCountAndTableSchedule) {
  const std::vector<double> g{1, 0.3, 0.02};
  // ns_steps 0: only the normalisation X / (||X||_F + 1e-7).
  {
    const Mat o = orthogonalize(diag(3, 4, g), 3, 4, DESCENT_FLOAT64, R"("ns_steps": 0)");
    const std::vector<double> ref = ns_scalar(g, kJordan, 0);
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(o[i * 4 + i], ref[i], 1e-15);
  }
  // A custom table of two triples over 5 steps, cycled and repeat-last; More steps than the
  // You table has also cycle it.
  const Table custom{{3.0, -3.2, 1.2, 2.0, -1.5, 0.5}};
  for (bool repeat_last : {false, true}) {
    const std::string cfg = std::string(R"("coefficients": "custom", "custom_coefficients": )") +
                            "[3.0, -3.2, 1.2, 2.0, -1.5, 0.5], \"coefficients_repeat_last\": " +
                            (repeat_last ? "true" : "false");
    const Mat o = orthogonalize(diag(3, 4, g), 3, 4, DESCENT_FLOAT64, cfg);
    const std::vector<double> ref = ns_scalar(g, custom, 5, repeat_last);
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(o[i * 4 + i], ref[i], 1e-13) << repeat_last;
  }
  const std::vector<double> cycled = ns_scalar(g, custom, 5, false);
  const std::vector<double> last = ns_scalar(g, custom, 5, true);
  EXPECT_GT(std::fabs(cycled[2] - last[2]), 0.1);  // the two schedules really differ here
  const Mat o = orthogonalize(diag(3, 4, g), 3, 4, DESCENT_FLOAT64,
                              R"("coefficients": "you", "ns_steps": 7)");
  const std::vector<double> ref = ns_scalar(g, kYou, 7);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(o[i * 4 + i], ref[i], 1e-13);
}

// ---- orthogonality bands on random matrices ---------------------------------------------------

struct Band {
  const char* name;
  const Table* table;
  // reference/muon.md §2 and §7: the scalar map on normalised inputs in [0.01, 1], published to
  // three decimals (so checked with a slack of 5e-4: jordan's maximum is 1.13426).
  double lo, hi;
};
const Band kBands[] = {{"jordan", &kJordan, 0.682, 1.134},
                       {"you", &kYou, 0.978, 1.032},
                       {"polar_express", &kPolarExpress, 0.859, 1.141}};
constexpr double kBandSlack = 5e-4;

// Square Gaussian matrices have singular values near zero that no 5-step map lifts into a band;
// the square case uses U diag(s) Vᵀ with s uniform in [0.1, 1], so s/||s|| >= 0.01.
Mat conditioned_square(int64_t n, uint64_t seed) {
  std::vector<double> s(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) s[i] = 0.1 + 0.9 * uniform(seed * 7919 + i);
  const Mat u = random_orthogonal(n, seed + 1), v = random_orthogonal(n, seed + 2);
  return matmul(matmul(u, diag(n, n, s), n, n, n), v, n, n, n);
}

TEST(MuonOrthogonality, SingularValuesInEachPresetsBand) {
  struct Shape {
    int64_t rows, cols;
    Mat g;
  };
  const std::vector<Shape> shapes{{64, 256, gaussian(64, 256, 1)},
                                  {256, 64, gaussian(256, 64, 2)},
                                  {96, 200, gaussian(96, 200, 3)},
                                  {128, 128, conditioned_square(128, 4)}};
  for (const auto& sh : shapes)
    for (const Band& b : kBands)
      for (descent_dtype dt : {DESCENT_FLOAT64, DESCENT_FLOAT32})
        for (const char* impl : {"syrk", "gram"}) {
          SCOPED_TRACE(std::to_string(sh.rows) + "x" + std::to_string(sh.cols) + " " + b.name +
                       " " + descent_dtype_name(dt) + " " + impl);
          const Mat o = orthogonalize(
              sh.g, sh.rows, sh.cols, dt,
              std::string(R"("coefficients": ")") + b.name + R"(", "ns_impl": ")" + impl + "\"");
          std::vector<double> s = singular_values(o, sh.rows, sh.cols);
          EXPECT_GE(*std::min_element(s.begin(), s.end()), b.lo - kBandSlack);
          EXPECT_LE(*std::max_element(s.begin(), s.end()), b.hi + kBandSlack);
          // Exactly: the output's singular values are the scalar map of the input's.
          std::vector<double> mapped =
              ns_scalar(singular_values(sh.g, sh.rows, sh.cols), *b.table, 5);
          std::sort(s.begin(), s.end());
          std::sort(mapped.begin(), mapped.end());
          EXPECT_LE(max_abs_diff(s, mapped), dt == DESCENT_FLOAT64 ? 1e-12 : 2e-5);
        }
}

TEST(MuonOrthogonality, DistanceToPolarFactorAsPublished) {
  // muon.md §7: Gaussian 64x256 in fp64, ||O - UVᵀ||_F / sqrt(64) ≈ 0.21 / 0.017 / 0.096.
  const Mat g = gaussian(64, 256, 5);
  const Mat uv = polar_reference(g, 64, 256);
  const std::map<std::string, double> published{
      {"jordan", 0.21}, {"you", 0.017}, {"polar_express", 0.096}};
  for (const auto& [name, value] : published) {
    const Mat o = orthogonalize(g, 64, 256, DESCENT_FLOAT64, R"("coefficients": ")" + name + "\"");
    double f = 0;
    for (size_t i = 0; i < o.size(); ++i) f += (o[i] - uv[i]) * (o[i] - uv[i]);
    EXPECT_NEAR(std::sqrt(f) / 8.0, value, 0.25 * value) << name;
  }
}

// ---- SYRK path against the three-GEMM reference -----------------------------------------------

TEST(MuonSyrk, EqualsThreeGemmReference) {
  for (auto [rows, cols] :
       {std::pair<int64_t, int64_t>{64, 256}, {256, 64}, {100, 100}, {1, 17}, {17, 1}, {33, 65}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    const Mat g = gaussian(rows, cols, 40 + rows + cols);
    // float64: the same polynomial in a different order, equal to double rounding.
    const Mat ref = orthogonalize(g, rows, cols, DESCENT_FLOAT64, R"("ns_impl": "gemm")");
    const Mat syrk64 = orthogonalize(g, rows, cols, DESCENT_FLOAT64, R"("ns_impl": "syrk")");
    EXPECT_LE(max_abs_diff(syrk64, ref), 1e-13);
    // float32: both within float32 rounding of the float64 result (observed <= 8e-7 for entries
    // of size ~0.1), and of each other.
    const Mat syrk32 = orthogonalize(g, rows, cols, DESCENT_FLOAT32, R"("ns_impl": "syrk")");
    const Mat gemm32 = orthogonalize(g, rows, cols, DESCENT_FLOAT32, R"("ns_impl": "gemm")");
    EXPECT_LE(max_abs_diff(syrk32, ref), 4e-6);
    EXPECT_LE(max_abs_diff(gemm32, ref), 4e-6);
    EXPECT_LE(max_abs_diff(syrk32, gemm32), 4e-6);
  }
}

// ---- Gram Newton–Schulz ----------------------------------------------------------------------

TEST(MuonGram, EqualsThreeGemmReference) {
  // Wide, tall, one row/column, several 128-row panels of the symmetric products.
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{64, 256},
                            {256, 64},
                            {1, 17},
                            {17, 1},
                            {33, 65},
                            {150, 400},
                            {300, 140}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    const Mat g = gaussian(rows, cols, 60 + rows + cols);
    for (const char* coefficients : {"jordan", "you", "polar_express"}) {
      SCOPED_TRACE(coefficients);
      const std::string c = std::string(R"("coefficients": ")") + coefficients + "\"";
      const Mat ref = orthogonalize(g, rows, cols, DESCENT_FLOAT64, c + R"(, "ns_impl": "gemm")");
      const Mat gram64 =
          orthogonalize(g, rows, cols, DESCENT_FLOAT64, c + R"(, "ns_impl": "gram")");
      EXPECT_LE(max_abs_diff(gram64, ref), 1e-12);
      // float32: the Gram matrix squares the condition number, so the error is larger than the
      // SYRK path's.
      const Mat gram32 =
          orthogonalize(g, rows, cols, DESCENT_FLOAT32, c + R"(, "ns_impl": "gram")");
      EXPECT_LE(max_abs_diff(gram32, ref), 2e-5);
    }
  }
}

TEST(MuonGram, DiagonalInputsMatchTheScalarMap) {
  // [diag(g) | 0] and its transpose (the square case is the SYRK path, checked bit for bit below).
  const std::vector<double> g{1, 0.5, 0.1, 0.01, 0.001};
  for (const Table* t : {&kJordan, &kYou, &kPolarExpress}) {
    const char* name = t == &kJordan ? "jordan" : t == &kYou ? "you" : "polar_express";
    const std::vector<double> ref = ns_scalar(g, *t, 5);
    for (descent_dtype dt : {DESCENT_FLOAT64, DESCENT_FLOAT32}) {
      SCOPED_TRACE(std::string(name) + " " + descent_dtype_name(dt));
      const std::string cfg = std::string(R"("ns_impl": "gram", "coefficients": ")") + name + "\"";
      const Mat wide = orthogonalize(diag(5, 9, g), 5, 9, dt, cfg);
      const Mat tall = orthogonalize(diag(9, 5, g), 9, 5, dt, cfg);
      const double tol = dt == DESCENT_FLOAT64 ? 1e-12 : 2e-5;
      for (int64_t i = 0; i < 5; ++i) {
        EXPECT_NEAR(wide[i * 9 + i], ref[i], tol) << i;
        EXPECT_NEAR(tall[i * 5 + i], ref[i], tol) << i;
      }
      double off = 0;
      for (int64_t i = 0; i < 5; ++i)
        for (int64_t j = 0; j < 9; ++j)
          if (i != j) off = std::max(off, std::fabs(wide[i * 9 + j]));
      EXPECT_EQ(off, 0.0);
    }
  }
}

TEST(MuonGram, SquareMatricesTakeTheSyrkPathBitForBit) {
  const Mat g = conditioned_square(48, 9);
  for (descent_dtype dt : {DESCENT_FLOAT32, DESCENT_FLOAT64}) {
    const Mat syrk = orthogonalize(g, 48, 48, dt);
    const Mat gram = orthogonalize(g, 48, 48, dt, R"("ns_impl": "gram")");
    EXPECT_EQ(syrk, gram) << descent_dtype_name(dt);
  }
}

TEST(MuonGram, SwitchingToGramAfterInitGrowsTheWorkspaceBeforeTheStep) {
  // Gram needs 5m² + rows·cols elements against the SYRK path's 2m² + rows·cols: configure()
  // grows the workspace for every shape seen at init before the next step runs.
  Opt opt(std::string("{") + kReadUpdate + "}");
  Params ps{DESCENT_FLOAT64, {}, {}};
  const Mat g1 = gaussian(40, 90, 130), g2 = gaussian(3, 30, 131);
  ps.add(opt, "a", {40, 90}, Mat(g1.size(), 0.0));
  ps.add(opt, "b", {3, 3, 10}, Mat(g2.size(), 0.0));
  ASSERT_EQ(ps.update(opt, {g1, g2}), DESCENT_OK) << opt.error();
  ASSERT_EQ(descent_optimizer_set_string(opt, "ns_impl", "gram"), DESCENT_OK);
  EXPECT_EQ(get_string(opt, "ns_impl"), "gram");
  const Mat before_a = ps.value(0), before_b = ps.value(1);
  ASSERT_EQ(ps.update(opt, {g1, g2}), DESCENT_OK) << opt.error();
  Mat da = ps.value(0), db = ps.value(1);
  for (size_t i = 0; i < da.size(); ++i) da[i] = before_a[i] - da[i];
  for (size_t i = 0; i < db.size(); ++i) db[i] = before_b[i] - db[i];
  EXPECT_LE(max_abs_diff(da, orthogonalize(g1, 40, 90, DESCENT_FLOAT64, R"("ns_impl": "gemm")")),
            1e-12);
  EXPECT_LE(max_abs_diff(db, orthogonalize(g2, 3, 30, DESCENT_FLOAT64, R"("ns_impl": "gemm")")),
            1e-12);
}

// ---- polar factor ----------------------------------------------------------------------------

TEST(MuonPolar, EqualsUVt) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{20, 50}, {50, 20}, {31, 31}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols));
    const Mat g = gaussian(rows, cols, 70 + rows);
    const Mat uv = polar_reference(g, rows, cols);
    EXPECT_LE(
        max_abs_diff(orthogonalize(g, rows, cols, DESCENT_FLOAT64, R"("method": "polar")"), uv),
        1e-12);
    EXPECT_LE(
        max_abs_diff(orthogonalize(g, rows, cols, DESCENT_FLOAT32, R"("method": "polar")"), uv),
        2e-5);
    const std::vector<double> s = singular_values(
        orthogonalize(g, rows, cols, DESCENT_FLOAT64, R"("method": "polar")"), rows, cols);
    for (double v : s) EXPECT_NEAR(v, 1.0, 1e-12);
  }
}

TEST(MuonPolar, RankDeficientInputMapsNullDirectionsToZero) {
  // Rank 2 in a 5x8 matrix: two singular values 1, the others 0 (the Newton–Schulz limit).
  const Mat a = gaussian(5, 2, 90), b = gaussian(2, 8, 91);
  const Mat g = matmul(a, b, 5, 2, 8);
  const std::vector<double> s =
      singular_values(orthogonalize(g, 5, 8, DESCENT_FLOAT64, R"("method": "polar")"), 5, 8);
  EXPECT_NEAR(s[0], 1.0, 1e-12);
  EXPECT_NEAR(s[1], 1.0, 1e-12);
  for (size_t i = 2; i < s.size(); ++i) EXPECT_NEAR(s[i], 0.0, 1e-12);
}

TEST(MuonPolar, SwitchingMethodAfterInitAllocatesBeforeTheStep) {
  // The SVD workspace is sized when the method changes, for every shape seen at init.
  Opt opt(std::string("{") + kReadUpdate + "}");
  Params ps{DESCENT_FLOAT64, {}, {}};
  const Mat g1 = gaussian(12, 7, 100), g2 = gaussian(3, 30, 101);
  ps.add(opt, "a", {12, 7}, Mat(g1.size(), 0.0));
  ps.add(opt, "b", {3, 3, 10}, Mat(g2.size(), 0.0));
  ASSERT_EQ(ps.update(opt, {g1, g2}), DESCENT_OK) << opt.error();
  ASSERT_EQ(descent_optimizer_set_string(opt, "method", "polar"), DESCENT_OK);
  const Mat before_a = ps.value(0), before_b = ps.value(1);
  ASSERT_EQ(ps.update(opt, {g1, g2}), DESCENT_OK) << opt.error();
  Mat da = ps.value(0), db = ps.value(1);
  for (size_t i = 0; i < da.size(); ++i) da[i] = before_a[i] - da[i];
  for (size_t i = 0; i < db.size(); ++i) db[i] = before_b[i] - db[i];
  EXPECT_LE(max_abs_diff(da, polar_reference(g1, 12, 7)), 1e-12);
  EXPECT_LE(max_abs_diff(db, polar_reference(g2, 3, 30)), 1e-12);  // (3,3,10) -> 3 x 30
}

// ---- zero and tiny gradients -----------------------------------------------------------------

bool all_finite(const Mat& m) {
  return std::all_of(m.begin(), m.end(), [](double x) { return std::isfinite(x); });
}

TEST(MuonEdgeCases, ZeroGradientGivesZeroUpdateAndNoNaN) {
  for (const char* extra : {R"("method": "newton_schulz")", R"("norm_eps_mode": "guard")",
                            R"("ns_impl": "gemm")", R"("ns_impl": "gram")", R"("method": "polar")",
                            R"("coefficients": "polar_express", "norm_eps_mode": "guard")"})
    for (descent_dtype dt : {DESCENT_FLOAT32, DESCENT_FLOAT64})
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{4, 9}, {9, 4}}) {
        SCOPED_TRACE(std::string(extra) + " " + descent_dtype_name(dt));
        const Mat o =
            orthogonalize(Mat(static_cast<size_t>(rows * cols), 0.0), rows, cols, dt, extra);
        for (double x : o) EXPECT_EQ(x, 0.0);
      }
}

TEST(MuonEdgeCases, TinyGradients) {
  // MLX's additive eps shrinks the update of a gradient far below 1e-7 (output scaled by
  // ||G|| / (||G|| + 1e-7)); the guard keeps it orthogonal. No NaN either way.
  const Mat base = gaussian(16, 40, 120);
  for (descent_dtype dt : {DESCENT_FLOAT32, DESCENT_FLOAT64}) {
    SCOPED_TRACE(descent_dtype_name(dt));
    const double scale = dt == DESCENT_FLOAT32 ? 1e-30 : 1e-300;
    Mat g = base;
    for (double& x : g) x *= scale;
    const Mat additive = orthogonalize(g, 16, 40, dt);
    EXPECT_TRUE(all_finite(additive));
    EXPECT_LT(*std::max_element(additive.begin(), additive.end()), 1e-6);
    for (const char* extra : {R"("norm_eps_mode": "guard")", R"("method": "polar")"}) {
      const Mat o = orthogonalize(g, 16, 40, dt, extra);
      ASSERT_TRUE(all_finite(o)) << extra;
      const std::vector<double> s = singular_values(o, 16, 40);
      EXPECT_GE(*std::min_element(s.begin(), s.end()), kBands[0].lo - kBandSlack) << extra;
      EXPECT_LE(*std::max_element(s.begin(), s.end()), kBands[0].hi + kBandSlack) << extra;
    }
  }
}

// ---- the optimizer step ----------------------------------------------------------------------

// The update the optimizer applies to parameters of several shapes for a config (one step from
// zero, momentum 0, no decay), divided by the update of lr_scale "none".
std::vector<double> observed_scales(const std::string& extra,
                                    const std::vector<std::vector<int64_t>>& shapes) {
  std::vector<double> out;
  for (const auto& shape : shapes) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    const Mat g = gaussian(1, n, 200 + n);
    Mat upd[2];
    for (int k = 0; k < 2; ++k) {
      const std::string cfg =
          std::string(
              R"({"learning_rate": 1, "momentum": 0, "weight_decay": 0, "nesterov": false)") +
          (k == 0 ? std::string(R"(, "lr_scale": "none")") : ", " + extra) + "}";
      Opt opt(cfg);
      Params ps{DESCENT_FLOAT64, {}, {}};
      ps.add(opt, "w", shape, Mat(static_cast<size_t>(n), 0.0));
      EXPECT_EQ(ps.update(opt, {g}), DESCENT_OK) << opt.error();
      upd[k] = ps.value(0);
    }
    double ratio = 0;
    for (size_t i = 0; i < upd[0].size(); ++i)
      if (std::fabs(upd[0][i]) > 1e-3) {
        ratio = upd[1][i] / upd[0][i];
        break;
      }
    out.push_back(ratio);
  }
  return out;
}

DESCENT_CLOSED_FORM_KIND("muon");
TEST(MuonStep, LearningRateScales) {
  // (10,5), (5,10), a conv filter (16,8,3,3) -> 16x72, a conv (64,2,3,1) -> 64x6, a 3-D (3,4,2).
  const std::vector<std::vector<int64_t>> shapes{
      {10, 5}, {5, 10}, {16, 8, 3, 3}, {64, 2, 3, 1}, {3, 4, 2}};
  auto expect = [&](const std::string& extra, const std::vector<double>& want) {
    const std::vector<double> got = observed_scales(extra, shapes);
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-12) << extra << " shape " << i;
  };
  const double s2 = std::sqrt(2.0);
  // MLX: the original last two dims (kh/kw for a conv: the known bug, kept by default).
  expect(R"("lr_scale": "mlx")", {s2, 1, 1, std::sqrt(3.0), std::sqrt(2.0)});
  expect(R"("lr_scale": "mlx", "lr_scale_flattened": true)", {s2, 1, 1, std::sqrt(64.0 / 6.0), 1});
  expect(R"("lr_scale": "moonlight")", {0.2 * std::sqrt(10.0), 0.2 * std::sqrt(10.0),
                                        0.2 * std::sqrt(3.0), 0.2 * std::sqrt(3.0), 0.2 * 2});
  expect(R"("lr_scale": "moonlight", "lr_scale_flattened": true)",
         {0.2 * std::sqrt(10.0), 0.2 * std::sqrt(10.0), 0.2 * std::sqrt(72.0), 0.2 * 8,
          0.2 * std::sqrt(8.0)});
  expect(R"("lr_scale": "spectral")", {s2, 1 / s2, 1, std::sqrt(3.0), s2});
  expect(R"("lr_scale": "spectral", "lr_scale_flattened": true)",
         {s2, 1 / s2, std::sqrt(16.0 / 72), std::sqrt(64.0 / 6), std::sqrt(3.0 / 8)});
}

TEST(MuonStep, DecoupledWeightDecayUsesTheUnscaledLearningRate) {
  // p <- p (1 - lr wd) - lr scale O(g), for a tall matrix (scale sqrt(2)) and a vector.
  const double lr = 0.25, wd = 0.5;
  const Mat p0 = gaussian(10, 5, 300), g = gaussian(10, 5, 301);
  const Mat pv = gaussian(1, 6, 302), gv = gaussian(1, 6, 303);
  Opt opt(R"({"learning_rate": 0.25, "momentum": 0, "weight_decay": 0.5, "nesterov": false,
              "weight_decay_mode": "decoupled"})");
  Params ps{DESCENT_FLOAT64, {}, {}};
  ps.add(opt, "w", {10, 5}, p0);
  ps.add(opt, "b", {6}, pv);
  ASSERT_EQ(ps.update(opt, {g, gv}), DESCENT_OK) << opt.error();
  const Mat o = orthogonalize(g, 10, 5, DESCENT_FLOAT64);
  const Mat w = ps.value(0), b = ps.value(1);
  const double lr_scaled = lr * std::sqrt(2.0);
  for (size_t i = 0; i < w.size(); ++i)
    EXPECT_NEAR(w[i], p0[i] * (1 - lr * wd) - lr_scaled * o[i], 1e-14);
  for (size_t i = 0; i < b.size(); ++i)
    EXPECT_NEAR(b[i], pv[i] * (1 - lr * wd) - lr * gv[i], 1e-15);
}

TEST(MuonStep, CoupledWeightDecayAndNesterovMomentumAsMlx) {
  // Two steps by hand for a matrix and a vector with MLX's formulas (float64, lr a power of 2).
  const double lr = 0.125, mom = 0.9, wd = 0.1;
  const Mat p0 = gaussian(6, 4, 310), vec0 = gaussian(1, 5, 311);
  const Mat g[2] = {gaussian(6, 4, 312), gaussian(6, 4, 313)};
  const Mat gv[2] = {gaussian(1, 5, 314), gaussian(1, 5, 315)};
  Opt opt(R"({"learning_rate": 0.125, "momentum": 0.9, "weight_decay": 0.1})");
  Params ps{DESCENT_FLOAT64, {}, {}};
  ps.add(opt, "w", {6, 4}, p0);
  ps.add(opt, "b", {5}, vec0);
  Mat p = p0, pb = vec0, v(p0.size(), 0.0), vb(vec0.size(), 0.0);
  for (int step = 0; step < 2; ++step) {
    ASSERT_EQ(ps.update(opt, {g[step], gv[step]}), DESCENT_OK) << opt.error();
    Mat u(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      const double gi = g[step][i] + wd * p[i];
      v[i] = mom * v[i] + (1 - mom) * gi;
      u[i] = gi * (1 - mom) + v[i] * mom;
    }
    const Mat o = orthogonalize(u, 6, 4, DESCENT_FLOAT64);
    for (size_t i = 0; i < p.size(); ++i) p[i] -= lr * std::sqrt(1.5) * o[i];
    for (size_t i = 0; i < pb.size(); ++i) {
      const double gi = gv[step][i] + wd * pb[i];
      vb[i] = mom * vb[i] + (1 - mom) * gi;
      pb[i] -= lr * (gi * (1 - mom) + vb[i] * mom);
    }
    EXPECT_LE(max_abs_diff(ps.value(0), p), 1e-13) << "step " << step;
    EXPECT_LE(max_abs_diff(ps.value(1), pb), 1e-15) << "step " << step;
  }
  // State slot "v" holds the momentum.
  std::vector<double> sv(v.size());
  ASSERT_EQ(descent_optimizer_state_get(opt, "w.v", DESCENT_FLOAT64, sv.data(), sv.size()),
            DESCENT_OK);
  EXPECT_LE(max_abs_diff(sv, v), 1e-15);
}

TEST(MuonStep, ScalarsAndVectorsAndEmptyTensors) {
  Opt opt(R"({"learning_rate": 0.5, "momentum": 0.5, "weight_decay": 0, "nesterov": false})");
  Params ps{DESCENT_FLOAT32, {}, {}};
  ps.add(opt, "s", {}, {2.0});
  ps.add(opt, "e", {0, 4}, {});
  ps.add(opt, "m", {1, 3}, {0, 0, 0});
  ASSERT_EQ(ps.update(opt, {{1.0}, {}, {3.0, 0.0, 4.0}}), DESCENT_OK) << opt.error();
  EXPECT_EQ(ps.value(0)[0], 2.0 - 0.5 * 0.5);  // v = 0.5*1; p -= lr*v
  // A 1x3 matrix has one singular value: the update points along g.
  const Mat m = ps.value(2);
  EXPECT_LT(m[0], 0);
  EXPECT_EQ(m[1], 0);
  EXPECT_NEAR(m[2] / m[0], 4.0 / 3.0, 1e-6);
}

// ---- golden trajectories through the three-GEMM path ------------------------------------------

TEST(MuonGolden, ThreeGemmPathAlsoMatchesMlx) {
  for (const char* name : {"muon_v0_float32", "muon_v0_float64", "muon_v1_float32",
                           "muon_v4_float64", "muon_large_float32"}) {
    SCOPED_TRACE(name);
    const golden::Json c = golden::load(golden::data_dir() + "/golden/" + name + ".json");
    const descent_dtype dtype = golden::dtype_of(c);
    const golden::Tolerance tol{c.at("tolerance").at("rtol").get<double>(),
                                c.at("tolerance").at("atol").get<double>()};
    descent_optimizer* raw = golden::create_for_case(c);
    ASSERT_NE(raw, nullptr);
    std::unique_ptr<descent_optimizer, void (*)(descent_optimizer*)> opt(raw,
                                                                         descent_optimizer_free);
    ASSERT_EQ(descent_optimizer_set_string(raw, "ns_impl", "gemm"), DESCENT_OK);
    std::vector<std::string> names;
    std::vector<golden::CaseTensor> params;
    for (const auto& [key, t] : c.at("params").items()) {
      params.push_back(golden::tensor_from(t, dtype));
      ASSERT_EQ(descent_optimizer_add_parameter(raw, key.c_str(), dtype, params.back().shape.size(),
                                                params.back().shape.data()),
                DESCENT_OK);
      names.push_back(key);
    }
    for (size_t step = 0; step < c.at("grads").size(); ++step) {
      std::vector<golden::CaseTensor> g;
      std::vector<const char*> n;
      std::vector<void*> pp;
      std::vector<const void*> gp;
      for (size_t i = 0; i < names.size(); ++i) {
        g.push_back(golden::tensor_from(c.at("grads")[step].at(names[i]), dtype));
        n.push_back(names[i].c_str());
        pp.push_back(params[i].bytes.data());
      }
      for (auto& t : g) gp.push_back(t.bytes.data());
      ASSERT_EQ(
          descent_optimizer_update(raw, n.size(), n.data(), nullptr, nullptr, pp.data(), gp.data()),
          DESCENT_OK)
          << descent_optimizer_last_error(raw);
      for (size_t i = 0; i < names.size(); ++i) {
        std::vector<double> got(static_cast<size_t>(params[i].numel()));
        for (int64_t k = 0; k < params[i].numel(); ++k) got[k] = params[i].at(k);
        golden::expect_close(
            std::string(name) + " step " + std::to_string(step + 1), names[i], got,
            c.at("expected")[step].at("params").at(names[i]).at("data").get<std::vector<double>>(),
            tol);
      }
    }
  }
}

}  // namespace
