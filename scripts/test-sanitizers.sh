#!/usr/bin/env bash
# Builds and tests descent under sanitizers (see docs/reliability.md):
#   asan  build-asan/: AddressSanitizer + UndefinedBehaviorSanitizer (leak checking on, every
#         report fatal), the whole ctest suite (examples and benchmarks are not built).
#   tsan  build-tsan/: ThreadSanitizer, the concurrency test only (descent_concurrency_test, the
#         library and tests/concurrency_test.cpp; nothing else is built).
# Usage: scripts/test-sanitizers.sh [asan|tsan|all]   (default: all). Extra ctest arguments can
# be given in $DESCENT_CTEST_ARGS. Build directories: $DESCENT_ASAN_BUILD_DIR,
# $DESCENT_TSAN_BUILD_DIR. ccache is used when installed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
which=${1:-all}

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

configure() {  # configure DIR SANITIZERS
  cmake -S "$root" -B "$1" "${generator[@]}" "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDESCENT_SANITIZE="$2" \
    -DDESCENT_BUILD_SHARED=ON \
    -DDESCENT_BUILD_STATIC=OFF \
    -DDESCENT_BUILD_TESTS=ON \
    -DDESCENT_BUILD_EXAMPLES=OFF \
    -DDESCENT_BUILD_BENCH=OFF \
    -DDESCENT_WERROR=ON >/dev/null
}

# Every sanitizer report is fatal. Leaks are checked at exit (LeakSanitizer).
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
# OpenBLAS is not instrumented: its own worker threads are invisible to TSan and would only add
# noise; descent's results do not depend on the count (docs/reliability.md).
export OPENBLAS_NUM_THREADS=1

run_asan() {
  local dir=${DESCENT_ASAN_BUILD_DIR:-$root/build-asan}
  local t0=$SECONDS
  configure "$dir" "address;undefined"
  cmake --build "$dir" -j"$jobs"
  echo "test-sanitizers.sh: asan build: $((SECONDS - t0)) s" >&2
  t0=$SECONDS
  (cd "$dir" && ctest --output-on-failure -j"$jobs" ${DESCENT_CTEST_ARGS:-})
  echo "test-sanitizers.sh: asan ctest: $((SECONDS - t0)) s" >&2
}

run_tsan() {
  local dir=${DESCENT_TSAN_BUILD_DIR:-$root/build-tsan}
  local t0=$SECONDS
  configure "$dir" "thread"
  cmake --build "$dir" -j"$jobs" --target descent_concurrency_test
  echo "test-sanitizers.sh: tsan build: $((SECONDS - t0)) s" >&2
  t0=$SECONDS
  "$dir/tests/descent_concurrency_test"
  echo "test-sanitizers.sh: tsan test: $((SECONDS - t0)) s" >&2
}

case "$which" in
  asan) run_asan ;;
  tsan) run_tsan ;;
  all) run_asan; run_tsan ;;
  *) echo "usage: $0 [asan|tsan|all]" >&2; exit 2 ;;
esac
