#include "kernels/isa.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

namespace descent::kernels {

Isa best_isa() noexcept {
#if DESCENT_HAVE_ISA_CLONES
  // libgcc's checks include the OS's support for the AVX / AVX-512 register state (XCR0).
  __builtin_cpu_init();
  // F16C comes with every AVX2 CPU; required here because the float16 conversions use it
  // (CPUID leaf 1, ECX bit 29; not every compiler's __builtin_cpu_supports knows "f16c").
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
  if (__builtin_cpu_supports("avx512f") && f16c) return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && f16c) return Isa::Avx2;
#endif
  return Isa::Sse2;
}

Isa active_isa() noexcept {
  static const Isa isa = [] {
    const Isa best = best_isa();
    const char* env = std::getenv("DESCENT_ISA");
    Isa want = best;
    if (env) {
      if (std::strcmp(env, "sse2") == 0)
        want = Isa::Sse2;
      else if (std::strcmp(env, "avx2") == 0)
        want = Isa::Avx2;
      else if (std::strcmp(env, "avx512") == 0)
        want = Isa::Avx512;
    }
    return static_cast<int>(want) < static_cast<int>(best) ? want : best;
  }();
  return isa;
}

const char* isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx2:
      return "avx2";
    case Isa::Sse2:
      break;
  }
  return "sse2";
}

}  // namespace descent::kernels
