#!/usr/bin/env bash
# Installs the build dependencies, builds the library and the example, and runs it:
# a linear model fitted by an optimizer from descent (default adamw).
# Arguments go to the example:  scripts/run-example.sh [kind [json-config [steps]]]
#   e.g.  scripts/run-example.sh sgd '{"learning_rate": 0.1, "momentum": 0.9}'
# The build directory is build/ in the repository, or $DESCENT_BUILD_DIR.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${DESCENT_BUILD_DIR:-$root/build}
jobs=$(nproc 2>/dev/null || echo 2)

"$root/scripts/install-deps.sh"

echo "run-example.sh: building descent and examples/linear_regression in $build_dir" >&2
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DDESCENT_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build_dir" -j"$jobs" --target linear_regression >/dev/null

exec "$build_dir/examples/linear_regression" "$@"
