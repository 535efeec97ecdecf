#!/usr/bin/env bash
# Runs the whole test suite from a fresh Debian 12 machine: installs the dependencies (the
# library's, the bindings' toolchains and packages), configures and builds once (shared + static
# library, tests, examples, -Werror, debug info for the ABI check), checks the formatting, then
# runs ctest: the C/C++ tests, the ABI check, the install consumers, the examples, MPI, and the
# Rust, Go, Python and Julia bindings with the cross-language conformance digests; then every
# library source built for aarch64 (scripts/cross-check.sh, the portable path). Then the
# hardening stages (docs/reliability.md): the suite under ASan+UBSan, the concurrency test under
# TSan, and each fuzz target for a short fixed time from its committed corpus.
# Extra arguments go to ctest, e.g.  scripts/test.sh -R install  (they also skip the aarch64 check
# and the hardening stages; DESCENT_SKIP_HARDENING=1 skips the hardening stages too).
# The build directory is build/ in the repository, or $DESCENT_BUILD_DIR.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${DESCENT_BUILD_DIR:-$root/build}
jobs=$(nproc 2>/dev/null || echo 2)
# ccache hits across checkouts (CI clones afresh): objects do not depend on the directory.
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

"$root/scripts/install-deps.sh" --bindings

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$root" -B "$build_dir" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DDESCENT_BUILD_SHARED=ON \
  -DDESCENT_BUILD_STATIC=ON \
  -DDESCENT_BUILD_TESTS=ON \
  -DDESCENT_BUILD_EXAMPLES=ON \
  -DDESCENT_WERROR=ON \
  -DDESCENT_DEBUG_INFO=ON \
  -DDESCENT_TEST_BINDINGS=ON
cmake --build "$build_dir" -j"$jobs"

"$root/scripts/check-format.sh"

(cd "$build_dir" && ctest --output-on-failure -j"$jobs" "$@")

# The portable path builds off x86-64: every source for aarch64, warnings as errors.
if [[ $# -eq 0 ]]; then "$root/scripts/cross-check.sh" "$jobs"; fi

if [[ $# -eq 0 && -z ${DESCENT_SKIP_HARDENING:-} ]]; then
  DESCENT_CTEST_ARGS="-E mpi_np" "$root/scripts/test-sanitizers.sh" all
  DESCENT_FUZZ_CI_SECONDS=${DESCENT_FUZZ_CI_SECONDS:-15} "$root/scripts/fuzz.sh" --ci
fi
