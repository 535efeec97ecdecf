// Run-time choice of the instruction set the elementwise kernels are compiled for.
//
// The library is built for baseline x86-64 (SSE2); each kernel entry point is additionally
// compiled for AVX2 and AVX-512F (GCC/Clang target attributes on a wrapper that inlines the
// kernel body) and dispatch() picks one per call from active_isa(): the widest the CPU (and OS)
// supports, lowered by DESCENT_ISA=sse2|avx2|avx512 (read once; a value above what the CPU
// supports, or an unknown one, means the widest supported). Every width gives the same bits: the
// kernels are elementwise, without reductions, and the library is compiled with
// -ffp-contract=off, so vectorising changes no operation and no rounding (no FMA is formed, even
// on AVX2/AVX-512 machines that have FMA). Off x86-64 there is one (scalar or autovectorised
// baseline) path.
// Every translation unit that includes a kernel header must be compiled with the library's
// DESCENT_NUMERIC_FLAGS (-ffp-contract=off): GCC's avx512f/avx2 targets have FMA available and
// would otherwise contract a*b + c.
#pragma once

namespace descent::kernels {

enum class Isa : int { Sse2 = 0, Avx2 = 1, Avx512 = 2 };

// The path dispatch() takes (cached after the first call).
Isa active_isa() noexcept;
// The widest path this CPU supports.
Isa best_isa() noexcept;
const char* isa_name(Isa isa) noexcept;

// A kernel body: forced inline into each ISA wrapper, which vectorises it for its target.
#define DESCENT_KERNEL_BODY __attribute__((always_inline)) inline

#if defined(__x86_64__) && defined(__GNUC__)
#define DESCENT_HAVE_ISA_CLONES 1
template <auto F, class... A>
__attribute__((target("avx512f"))) void run_avx512(A... a) {
  F(a...);
}
template <auto F, class... A>
__attribute__((target("avx2"))) void run_avx2(A... a) {
  F(a...);
}
#else
#define DESCENT_HAVE_ISA_CLONES 0
#endif

// Calls the kernel body F with the widest active instruction set.
template <auto F, class... A>
inline void dispatch(A... a) {
#if DESCENT_HAVE_ISA_CLONES
  switch (active_isa()) {
    case Isa::Avx512:
      return run_avx512<F>(a...);
    case Isa::Avx2:
      return run_avx2<F>(a...);
    case Isa::Sse2:
      break;
  }
#endif
  F(a...);
}

}  // namespace descent::kernels
