// Muon's orthogonalisation of one matrix: Newton–Schulz iterations on BLAS, and the exact polar
// factor U·Vᵀ from LAPACK's SVD. Matrices are row-major rows x cols, as descent's tensors are.
//
// Newton–Schulz (on the wide orientation, m = min(rows, cols), n = max(rows, cols)):
//   X <- X / (norm_scale * ||X||_F + norm_eps)        (or X / (norm_scale*||X||_F) if > 0: Guard)
//   repeat steps:  A = X Xᵀ;  B = b A + c A A;  X <- a X + B X
// for a tall matrix the same on Xᵀ, i.e. A = XᵀX and X <- X (aI + B), without a transpose.
//
// Three implementations of one step (docs/muon.md has the flop counts and timings):
//   Syrk     A = SYRK(X) (one triangle, m²n flops); mirror A; B = SYRK(A, alpha=c, beta=b) on a
//            copy of A (m³); B_ii += a; X_new = SYMM(B, X) into the other buffer (2m²n).
//            3m²n + m³ flops per step.
//   SyrkGemm as Syrk, but B is mirrored and the last product is a GEMM (same flops; benchmark).
//   Gemm     MLX's op sequence: A = X Xᵀ; B = b·A; B += c·A·A; Y = a·X; Y += B·X, three GEMMs,
//            4m²n + 2m³ flops per step. The reference the Syrk form is tested against.
// and one that computes the same polynomial in another order:
//   Gram     Gram Newton–Schulz (Dao-AILab/gram-newton-schulz): iterate on the m x m Gram matrix
//            R = X Xᵀ and accumulate the product Q of the steps' factors (aI + bR + cR²), with a
//            restart (X <- Q X, R = X Xᵀ) at every step gram_restart(k) (2, 5, 8, ...: GNS's [2]
//            for 5 steps), finishing with X <- Q X. The m x m products with a symmetric result
//            compute only their upper triangle (GEMMs on row panels of 128), so 5 steps cost
//            6m²n + (5 + 9(1 + 128/m))m³ flops (≈ 6m²n + 15m³ for large m) instead of
//            15m²n + 5m³: 1.66x fewer at 1024 x 4096. Equal to Syrk in exact arithmetic, not in
//            float (it is never chosen implicitly). A square matrix takes the Syrk path (no
//            saving there, as in GNS).
// None of them allocates: every buffer is in the caller's workspace.
#pragma once

#include <cstddef>
#include <cstdint>

namespace descent::kernels {

enum class NsImpl { Syrk, SyrkGemm, Gemm, Gram };

// Whether Gram Newton–Schulz restarts from X at step k (0-based, k >= 1): steps 2, 5, 8, ...
inline bool gram_restart(int64_t k) {
  return k >= 2 && (k - 2) % 3 == 0;
}
enum class NormMode {
  Additive,  // X / (norm_scale*||X||_F + norm_eps): Keller Jordan's and MLX's (eps 1e-7)
  Guard      // X / (norm_scale*||X||_F) when that is > 0; a zero matrix stays zero
};

struct NsParams {
  int64_t steps = 5;
  const double* table = nullptr;  // coefficient triples (a, b, c), row after row
  std::size_t triples = 0;
  bool repeat_last = false;  // past the end of the table: repeat the last triple (else cycle)
  double norm_scale = 1.0;   // 1.02 for Polar Express
  double norm_eps = 1e-7;    // 1e-6 for Polar Express
  NormMode norm = NormMode::Additive;
  NsImpl impl = NsImpl::Syrk;
};

// The (a, b, c) used at step k (0-based).
inline const double* ns_triple(const NsParams& p, int64_t k) {
  const std::size_t n = p.triples;
  const std::size_t i =
      p.repeat_last ? (static_cast<std::size_t>(k) < n ? static_cast<std::size_t>(k) : n - 1)
                    : static_cast<std::size_t>(k) % n;
  return p.table + 3 * i;
}

// Elements of T that newton_schulz needs as workspace for a rows x cols matrix: A and B (m² each)
// and the ping-pong buffer (rows*cols); Gram on a non-square matrix: five m x m matrices and the
// ping-pong buffer.
std::size_t ns_workspace_elements(int64_t rows, int64_t cols, NsImpl impl = NsImpl::Syrk);

// Orthogonalises x (row-major rows x cols, overwritten). `work` holds ns_workspace_elements(...)
// elements of T. Returns x or a pointer into work, whichever holds the result. Dimensions must
// fit a BLAS int (checked by the caller at prepare time).
float* newton_schulz(int64_t rows, int64_t cols, float* x, float* work, const NsParams& p) noexcept;
double* newton_schulz(int64_t rows, int64_t cols, double* x, double* work,
                      const NsParams& p) noexcept;

// Leading-order flops one call executes (for benchmarks): per step 3m²n + m³ for Syrk and
// SyrkGemm (SYRK counted as m(m+1)n), 4m²n + 2m³ for Gemm; Gram counts its loop as run (SYRK as
// m(m+1)k, GEMM/SYMM as 2mnk).
double ns_flops(int64_t rows, int64_t cols, int64_t steps, NsImpl impl);

// Exact polar factor of x: with x = U S Vᵀ (thin SVD, LAPACK ?gesdd), U·diag(s_i > tol)·Vᵀ where
// tol = max(rows, cols) * epsilon(T) * s_max, so singular directions that are numerically zero
// map to zero as they do under Newton–Schulz (a zero matrix gives zero).
// polar_workspace_bytes() is the workspace in bytes, LAPACK's optimal size included (a failed
// workspace query throws descent::Error). polar_factor() overwrites x with the result and returns
// true; it returns false, x unspecified, if x is not finite, the SVD did not converge or the
// workspace is too small.
std::size_t polar_workspace_bytes(bool is_double, int64_t rows, int64_t cols);
bool polar_factor(int64_t rows, int64_t cols, float* x, void* work,
                  std::size_t work_bytes) noexcept;
bool polar_factor(int64_t rows, int64_t cols, double* x, void* work,
                  std::size_t work_bytes) noexcept;

}  // namespace descent::kernels
