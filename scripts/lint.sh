#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy: bugprone-*, performance-*) on every .cpp under src/ and capi/,
# using the compile_commands.json of a configured build. Not part of CI; run it by hand:
#   scripts/lint.sh [build dir]        (default: build/, or $DESCENT_BUILD_DIR)
# Needs clang-tidy (Debian: apt-get install clang-tidy). Exits non-zero on any warning.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-${DESCENT_BUILD_DIR:-$root/build}}
tidy=${CLANG_TIDY:-clang-tidy}
jobs=$(nproc 2>/dev/null || echo 2)

if [[ ! -f "$build_dir/compile_commands.json" ]]; then
  echo "no $build_dir/compile_commands.json: configure a build first (cmake -S . -B build)" >&2
  exit 2
fi

cd "$root"
find src capi -name '*.cpp' -print0 | sort -z |
  xargs -0 -n 1 -P "$jobs" "$tidy" -p "$build_dir" --quiet
echo "clang-tidy: no warnings in src/ and capi/"
