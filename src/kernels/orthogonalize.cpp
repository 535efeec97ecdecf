#include "kernels/orthogonalize.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "common/error.h"

namespace descent::kernels {
namespace {

// ---- BLAS by element type --------------------------------------------------------------------

inline void syrk(CBLAS_TRANSPOSE t, int n, int k, float alpha, const float* a, int lda, float beta,
                 float* c, int ldc) {
  cblas_ssyrk(CblasRowMajor, CblasUpper, t, n, k, alpha, a, lda, beta, c, ldc);
}
inline void syrk(CBLAS_TRANSPOSE t, int n, int k, double alpha, const double* a, int lda,
                 double beta, double* c, int ldc) {
  cblas_dsyrk(CblasRowMajor, CblasUpper, t, n, k, alpha, a, lda, beta, c, ldc);
}
inline void symm(CBLAS_SIDE side, int m, int n, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_ssymm(CblasRowMajor, side, CblasUpper, m, n, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void symm(CBLAS_SIDE side, int m, int n, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dsymm(CblasRowMajor, side, CblasUpper, m, n, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                 float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                 float* c, int ldc) {
  cblas_sgemm(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                 double alpha, const double* a, int lda, const double* b, int ldb, double beta,
                 double* c, int ldc) {
  cblas_dgemm(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline float nrm2_blas(int n, const float* x) {
  return cblas_snrm2(n, x, 1);
}
inline double nrm2_blas(int n, const double* x) {
  return cblas_dnrm2(n, x, 1);
}

// ?NRM2 (overflow- and underflow-safe) over any length: chunks of at most INT_MAX elements are
// combined with hypot.
template <class T>
T frobenius(int64_t n, const T* x) {
  T total = 0;
  for (int64_t done = 0; done < n;) {
    const int64_t len = std::min<int64_t>(n - done, INT_MAX);
    const T part = nrm2_blas(static_cast<int>(len), x + done);
    total = done == 0 ? part : std::hypot(total, part);
    done += len;
  }
  return total;
}

// Copies the upper triangle of the row-major m x m matrix a into its lower triangle, in 16 x 16
// tiles, each read row by row (contiguous) and written column by column (4x faster at m = 512
// than 64-tiles read by columns). Copies only: the values, hence the results, are the same.
template <class T>
void mirror_upper(int64_t m, T* a) {
  constexpr int64_t tile = 16;
  for (int64_t i0 = 0; i0 < m; i0 += tile)
    for (int64_t j0 = 0; j0 <= i0; j0 += tile) {
      const int64_t i1 = std::min(i0 + tile, m), j1 = std::min(j0 + tile, m);
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = std::max(i0, j + 1); i < i1; ++i) a[i * m + j] = a[j * m + i];
    }
}

template <class T>
void normalize(int64_t n, T* x, const NsParams& p) {
  const T norm = static_cast<T>(p.norm_scale) * frobenius(n, x);
  if (p.norm == NormMode::Additive) {
    const T d = norm + static_cast<T>(p.norm_eps);
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] / d;
  } else if (norm > T(0)) {
    for (int64_t i = 0; i < n; ++i) x[i] = x[i] / norm;
  }
}

// Gram Newton–Schulz (Dao-AILab/gram-newton-schulz): the same polynomial as ns_impl, iterated
// on the m x m Gram matrix R = X Xᵀ instead of on X. Every matrix of the loop (R, Z, Q and R·Z)
// is a polynomial in the Gram matrix of the last restart, hence symmetric: each is kept
// symmetric by computing (or keeping) its upper triangle and mirroring it.
//   R = X Xᵀ;  per step k:  Z = b R + c R²;  Q = (k starts a segment) ? Z + aI : a Q + Q Z;
//   unless the next step starts a segment or k is last:  RZ = a R + R Z;  R = a RZ + Z RZ
//   (that is R <- (aI + Z) R (aI + Z) = X' X'ᵀ for X' = (aI + Z) X);
//   a restart at step k (gram_restart(k)): X <- Q X; R = X Xᵀ; then the step; at the end X <- Q X.
// Product shapes: two SYRK/SYMM with the m x n matrix per segment (R and Q X: 3m²n), the rest on
// m x m matrices (SYRK for R², GEMM for Q·Z, R·Z and Z·RZ).
constexpr int kGramPanel = 128;

template <class T>
T* gram_impl(int64_t rows, int64_t cols, T* x, T* work, const NsParams& p) {
  const bool tall = rows > cols;
  const int m = static_cast<int>(tall ? cols : rows);
  const int r = static_cast<int>(rows), c = static_cast<int>(cols);
  const int64_t mm = static_cast<int64_t>(m) * m;
  const std::size_t mm_bytes = static_cast<std::size_t>(mm) * sizeof(T);
  T* R = work;
  T* Z = work + mm;
  T* Q = work + 2 * mm;
  T* S = work + 3 * mm;
  T* U = work + 4 * mm;
  T* X = x;
  T* Y = work + 5 * mm;
  const auto gram = [&](const T* from) {  // R = X Xᵀ (wide) or XᵀX (tall), mirrored
    if (tall)
      syrk(CblasTrans, m, r, T(1), from, c, T(0), R, m);
    else
      syrk(CblasNoTrans, m, c, T(1), from, c, T(0), R, m);
    mirror_upper<T>(m, R);
  };
  const auto apply_q = [&] {  // Y = Q X (wide) or X Q (tall); then X and Y swap
    if (tall)                 // Q is kept mirrored: a GEMM (faster than SYMM in OpenBLAS)
      gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, c, c, T(1), X, c, Q, m, T(0), Y, c);
    else
      gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, c, r, T(1), Q, m, X, c, T(0), Y, c);
    std::swap(X, Y);
  };
  // out = beta·beta_of + lhs·rhs for a product known to be symmetric: only the upper triangle is
  // computed, one GEMM per panel of kGramPanel rows (row panel i from its diagonal block to the
  // right), then mirrored. About (1 + panel/m)·m³ flops instead of 2m³ (BLAS has no ?GEMMT here).
  const auto mul_add = [&](const T* lhs, const T* rhs, T beta, const T* beta_of, T* out) {
    std::memcpy(out, beta_of, mm_bytes);
    for (int i0 = 0; i0 < m; i0 += kGramPanel) {
      const int h = std::min(kGramPanel, m - i0);
      gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, h, m - i0, m, T(1),
           lhs + static_cast<int64_t>(i0) * m, m, rhs + i0, m, beta,
           out + static_cast<int64_t>(i0) * m + i0, m);
    }
    mirror_upper<T>(m, out);
  };
  gram(X);
  for (int64_t k = 0; k < p.steps; ++k) {
    const double* abc = ns_triple(p, k);
    const T a = static_cast<T>(abc[0]), b = static_cast<T>(abc[1]), cc = static_cast<T>(abc[2]);
    const bool fresh = k == 0 || gram_restart(k);
    if (k > 0 && fresh) {
      apply_q();
      gram(X);
    }
    // Z = b R + c R R (R symmetric: SYRK of R with beta = b on a copy).
    std::memcpy(Z, R, mm_bytes);
    syrk(CblasNoTrans, m, m, cc, R, m, b, Z, m);
    mirror_upper<T>(m, Z);
    if (fresh) {
      std::memcpy(Q, Z, mm_bytes);
      for (int64_t i = 0; i < m; ++i) Q[i * m + i] += a;
    } else {
      mul_add(Q, Z, a, Q, S);  // S = a Q + Q Z
      std::swap(Q, S);
    }
    if (k + 1 < p.steps && !gram_restart(k + 1)) {
      mul_add(R, Z, a, R, S);  // S = RZ = a R + R Z
      mul_add(Z, S, a, S, U);  // U = a RZ + Z RZ
      std::swap(R, U);
    }
  }
  apply_q();
  return X;
}

template <class T>
T* ns_impl(int64_t rows, int64_t cols, T* x, T* work, const NsParams& p) {
  const int64_t numel = rows * cols;
  normalize(numel, x, p);
  if (p.steps <= 0 || p.triples == 0) return x;
  if (p.impl == NsImpl::Gram && rows != cols) return gram_impl(rows, cols, x, work, p);
  const bool tall = rows > cols;
  const int m = static_cast<int>(tall ? cols : rows);  // the small side
  const int r = static_cast<int>(rows), c = static_cast<int>(cols);
  const int64_t mm = static_cast<int64_t>(m) * m;
  T* A = work;
  T* B = work + mm;
  T* X = x;
  T* Y = work + 2 * mm;
  for (int64_t k = 0; k < p.steps; ++k) {
    const double* abc = ns_triple(p, k);
    const T a = static_cast<T>(abc[0]), b = static_cast<T>(abc[1]), cc = static_cast<T>(abc[2]);
    if (p.impl == NsImpl::Gemm) {
      // MLX: A = X@X.T; B = addmm(b*A, A, A, alpha=c); X = addmm(a*X, B, X), on the wide form.
      if (tall)
        gemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, m, r, T(1), X, c, X, c, T(0), A, m);
      else
        gemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, c, T(1), X, c, X, c, T(0), A, m);
      for (int64_t i = 0; i < mm; ++i) B[i] = b * A[i];
      gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, cc, A, m, A, m, T(1), B, m);
      for (int64_t i = 0; i < numel; ++i) Y[i] = a * X[i];
      if (tall)  // (B Xᵀ)ᵀ = X Bᵀ
        gemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, c, c, T(1), X, c, B, m, T(1), Y, c);
      else
        gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, c, r, T(1), B, m, X, c, T(1), Y, c);
    } else {
      // A = X Xᵀ (wide) or XᵀX (tall), upper triangle.
      if (tall)
        syrk(CblasTrans, m, r, T(1), X, c, T(0), A, m);
      else
        syrk(CblasNoTrans, m, c, T(1), X, c, T(0), A, m);
      mirror_upper<T>(m, A);  // SYRK reads its A operand as a full matrix
      // B = b A + c A Aᵀ (A is symmetric): SYRK on a copy of A with beta = b.
      std::memcpy(B, A, static_cast<std::size_t>(mm) * sizeof(T));
      syrk(CblasNoTrans, m, m, cc, A, m, b, B, m);
      for (int64_t i = 0; i < m; ++i) B[i * m + i] += a;  // aI + B
      if (p.impl == NsImpl::SyrkGemm) {
        mirror_upper<T>(m, B);
        if (tall)
          gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, c, c, T(1), X, c, B, m, T(0), Y, c);
        else
          gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, c, r, T(1), B, m, X, c, T(0), Y, c);
      } else {
        symm(tall ? CblasRight : CblasLeft, r, c, T(1), B, m, X, c, T(0), Y, c);
      }
    }
    std::swap(X, Y);
  }
  return X;
}

// ---- LAPACK ----------------------------------------------------------------------------------

inline lapack_int gesdd(lapack_int m, lapack_int n, float* a, float* s, float* u, float* vt,
                        float* work, lapack_int lwork, lapack_int* iwork) {
  return LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, 'S', m, n, a, m, s, u, m, vt, std::min(m, n), work,
                             lwork, iwork);
}
inline lapack_int gesdd(lapack_int m, lapack_int n, double* a, double* s, double* u, double* vt,
                        double* work, lapack_int lwork, lapack_int* iwork) {
  return LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'S', m, n, a, m, s, u, m, vt, std::min(m, n), work,
                             lwork, iwork);
}

constexpr std::size_t kAlign = 64;
inline std::size_t aligned(std::size_t bytes) {
  return (bytes + kAlign - 1) / kAlign * kAlign;
}

// The row-major rows x cols x is, read column-major, Z = xᵀ (cols x rows); polar(x) = polar(Z)ᵀ,
// which read back row-major is polar(Z) written column-major. So LAPACK runs on Z in place.
struct PolarLayout {
  lapack_int M, N, K;  // Z is M x N; K = min
  lapack_int lwork;
  std::size_t s, u, vt, work, iwork, total;  // byte offsets and total
};

template <class T>
lapack_int query_lwork(lapack_int M, lapack_int N) {
  T a = 0, s = 0, u = 0, vt = 0, w = 0;
  lapack_int iw = 0;
  const lapack_int info = gesdd(M, N, &a, &s, &u, &vt, &w, -1, &iw);
  if (info != 0) return -1;
  // LAPACK returns the size as a floating-point number; round up with a margin for float32.
  const double q = std::ceil(static_cast<double>(w) * (1.0 + 1e-6)) + 1.0;
  if (!(q < static_cast<double>(std::numeric_limits<lapack_int>::max()))) return -1;
  return static_cast<lapack_int>(q);
}

template <class T>
bool polar_layout(int64_t rows, int64_t cols, PolarLayout& l) {
  l.M = static_cast<lapack_int>(cols);
  l.N = static_cast<lapack_int>(rows);
  l.K = std::min(l.M, l.N);
  l.lwork = query_lwork<T>(l.M, l.N);
  if (l.lwork < 0) return false;
  const std::size_t t = sizeof(T);
  const auto M = static_cast<std::size_t>(l.M), N = static_cast<std::size_t>(l.N),
             K = static_cast<std::size_t>(l.K);
  l.s = 0;
  l.u = l.s + aligned(K * t);
  l.vt = l.u + aligned(M * K * t);
  l.work = l.vt + aligned(K * N * t);
  l.iwork = l.work + aligned(static_cast<std::size_t>(l.lwork) * t);
  l.total = l.iwork + aligned(8 * K * sizeof(lapack_int));
  return true;
}

template <class T>
bool polar_impl(int64_t rows, int64_t cols, T* x, void* work, std::size_t work_bytes) {
  if (!std::isfinite(frobenius(rows * cols, x))) return false;
  PolarLayout l;
  if (!polar_layout<T>(rows, cols, l) || l.total > work_bytes) return false;
  auto* base = static_cast<unsigned char*>(work);
  T* s = reinterpret_cast<T*>(base + l.s);
  T* u = reinterpret_cast<T*>(base + l.u);
  T* vt = reinterpret_cast<T*>(base + l.vt);
  T* w = reinterpret_cast<T*>(base + l.work);
  auto* iw = reinterpret_cast<lapack_int*>(base + l.iwork);
  if (gesdd(l.M, l.N, x, s, u, vt, w, l.lwork, iw) != 0) return false;
  // Numerical rank, as a pseudo-inverse would take it; s is in decreasing order.
  const T tol = static_cast<T>(std::max(l.M, l.N)) * std::numeric_limits<T>::epsilon() * s[0];
  lapack_int rank = 0;
  while (rank < l.K && s[rank] > tol) ++rank;
  if (rank == 0) {
    std::fill(x, x + rows * cols, T(0));
    return true;
  }
  gemm(CblasColMajor, CblasNoTrans, CblasNoTrans, l.M, l.N, rank, T(1), u, l.M, vt, l.K, T(0), x,
       l.M);
  return true;
}

}  // namespace

std::size_t ns_workspace_elements(int64_t rows, int64_t cols, NsImpl impl) {
  const auto m = static_cast<std::size_t>(std::min(rows, cols));
  const std::size_t squares = impl == NsImpl::Gram && rows != cols ? 5 : 2;
  return squares * m * m + static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
}

float* newton_schulz(int64_t rows, int64_t cols, float* x, float* work,
                     const NsParams& p) noexcept {
  return ns_impl(rows, cols, x, work, p);
}
double* newton_schulz(int64_t rows, int64_t cols, double* x, double* work,
                      const NsParams& p) noexcept {
  return ns_impl(rows, cols, x, work, p);
}

double ns_flops(int64_t rows, int64_t cols, int64_t steps, NsImpl impl) {
  const double m = static_cast<double>(std::min(rows, cols));
  const double n = static_cast<double>(std::max(rows, cols));
  if (impl == NsImpl::Gram && rows != cols) {
    if (steps <= 0) return 0;
    const double gram = m * (m + 1) * n, apply = 2 * m * m * n;
    // The symmetric m x m products: row panels of kGramPanel rows, each from its diagonal on.
    double square_gemm = 0;
    for (double i0 = 0; i0 < m; i0 += kGramPanel)
      square_gemm += 2 * std::min<double>(kGramPanel, m - i0) * (m - i0) * m;
    const double square_syrk = m * (m + 1) * m;
    double f = gram + apply;  // the first R and the final Q X
    for (int64_t k = 0; k < steps; ++k) {
      const bool fresh = k == 0 || gram_restart(k);
      if (k > 0 && fresh) f += apply + gram;
      f += square_syrk + (fresh ? 0 : square_gemm);
      if (k + 1 < steps && !gram_restart(k + 1)) f += 2 * square_gemm;
    }
    return f;
  }
  if (impl == NsImpl::Gram) impl = NsImpl::Syrk;
  const double per_step = impl == NsImpl::Gemm ? 4 * m * m * n + 2 * m * m * m
                                               : m * (m + 1) * n + m * (m + 1) * m + 2 * m * m * n;
  return per_step * static_cast<double>(steps);
}

std::size_t polar_workspace_bytes(bool is_double, int64_t rows, int64_t cols) {
  PolarLayout l;
  const bool ok =
      is_double ? polar_layout<double>(rows, cols, l) : polar_layout<float>(rows, cols, l);
  if (!ok)
    throw Error(DESCENT_ERR_INTERNAL, "LAPACK ?gesdd workspace query failed for a " +
                                          std::to_string(rows) + "x" + std::to_string(cols) +
                                          " matrix");
  return l.total;
}

bool polar_factor(int64_t rows, int64_t cols, float* x, void* work,
                  std::size_t work_bytes) noexcept {
  return polar_impl(rows, cols, x, work, work_bytes);
}
bool polar_factor(int64_t rows, int64_t cols, double* x, void* work,
                  std::size_t work_bytes) noexcept {
  return polar_impl(rows, cols, x, work, work_bytes);
}

}  // namespace descent::kernels
