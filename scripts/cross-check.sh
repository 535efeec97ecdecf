#!/usr/bin/env bash
# Compiles every library source for aarch64 with Debian's cross compiler (g++-aarch64-linux-gnu,
# installed by scripts/install-deps.sh) under the library's warnings as errors and numeric flags,
# and links the objects into a shared library with the version script: the portable path (no
# x86 instruction-set clones, kernels/isa.h) builds, and nothing is left undefined but the BLAS
# and LAPACKE functions and the C/C++ runtime. Nothing runs (no aarch64 machine or emulator).
#
# usage: scripts/cross-check.sh [JOBS]
# Without the cross compiler it says so and exits 0, unless CI=true (then it fails).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=${1:-$(nproc 2>/dev/null || echo 2)}
cxx=aarch64-linux-gnu-g++
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "cross-check.sh: $cxx not found (Debian: apt-get install -y g++-aarch64-linux-gnu)" >&2
  [[ ${CI:-} == true ]] && exit 1
  exit 0
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The CBLAS header comes from the host's OpenBLAS package; its declarations do not depend on
# the architecture.
cblas_dir=$(dirname "$(find /usr/include -name cblas.h -path '*openblas*' | head -n 1)")
flags=(-std=c++17 -O2 -fPIC -fvisibility=hidden -Wall -Wextra -Wpedantic -Werror
  -ffp-contract=off -fno-math-errno -I"$root/include" -I"$root/src" -I"$root" -I"$cblas_dir")

cd "$root"
sources=(src/*/*.cpp capi/*.cpp)
export OUT="$out"
printf '%s\n' "${sources[@]}" |
  xargs -P "$jobs" -I{} sh -c '"$0" "$@" -c "{}" -o "$OUT/$(echo {} | tr / _).o"' \
    "$cxx" "${flags[@]}" || { echo "cross-check.sh: an aarch64 compile failed" >&2; exit 1; }
[[ $(ls "$out"/*.o | wc -l) -eq ${#sources[@]} ]] || { echo "cross-check.sh: objects missing" >&2; exit 1; }

"$cxx" -shared -o "$out/libdescent.so" "$out"/*.o -Wl,--version-script="$root/capi/descent.map"
undefined=$(aarch64-linux-gnu-nm -D --undefined-only "$out/libdescent.so" | awk '{print $NF}' |
  grep -v -E '^(cblas_|LAPACKE_|_ITM_|__gmon_start__|__cxa_|_Unwind_)' |
  grep -v -E '@(GLIBC|GLIBCXX|CXXABI|GCC)_' || true)
if [[ -n $undefined ]]; then
  echo "cross-check.sh: undefined symbols in the aarch64 build:" >&2
  echo "$undefined" >&2
  exit 1
fi
echo "cross-check.sh: ${#sources[@]} sources compiled and linked for aarch64 ($("$cxx" -dumpversion))"
