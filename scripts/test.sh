#!/usr/bin/env bash
# Runs the whole test suite from a fresh Debian 12 machine: installs the build dependencies,
# configures and builds (shared + static library, tests, examples), then runs ctest.
# Extra arguments go to ctest, e.g.  scripts/test.sh -R install
# The build directory is build/ in the repository, or $DESCENT_BUILD_DIR.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${DESCENT_BUILD_DIR:-$root/build}
jobs=$(nproc 2>/dev/null || echo 2)

"$root/scripts/install-deps.sh"

cmake -S "$root" -B "$build_dir" \
  -DCMAKE_BUILD_TYPE=Release \
  -DDESCENT_BUILD_SHARED=ON \
  -DDESCENT_BUILD_STATIC=ON \
  -DDESCENT_BUILD_TESTS=ON \
  -DDESCENT_BUILD_EXAMPLES=ON \
  -DDESCENT_WERROR=ON
cmake --build "$build_dir" -j"$jobs"

cd "$build_dir"
ctest --output-on-failure -j"$jobs" "$@"
