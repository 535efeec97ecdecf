#!/usr/bin/env bash
# Installs the dependencies (apt), builds descent and its examples, and runs one:
#
#   scripts/run-example.sh
#       Fashion-MNIST: trains the same MLP with AdamW and with Muon+AdamW (same seed, same
#       budget), writes the curves (CSV) and a plot (PNG) to fashion-mnist-out/ (or
#       $DESCENT_EXAMPLE_OUT) and prints the final test accuracies. docs/fashion-mnist.md.
#   scripts/run-example.sh --optimizer lion --epochs 3 ...
#       examples/fashion_mnist with these arguments instead (see --help)
#   scripts/run-example.sh linear [kind [json-config [steps]]]
#       the linear-regression example, e.g.
#       scripts/run-example.sh linear sgd '{"learning_rate": 0.1, "momentum": 0.9}'
#
# The build directory is build/ in the repository, or $DESCENT_BUILD_DIR.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${DESCENT_BUILD_DIR:-$root/build}
jobs=$(nproc 2>/dev/null || echo 2)

"$root/scripts/install-deps.sh"

target=fashion_mnist
if [[ ${1:-} == linear ]]; then
  target=linear_regression
  shift
fi

echo "run-example.sh: building descent and $target in $build_dir" >&2
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DDESCENT_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build_dir" -j"$jobs" --target "$target" >/dev/null

if [[ $target == linear_regression ]]; then
  exec "$build_dir/examples/linear_regression" "$@"
fi
if [[ $# -gt 0 ]]; then
  exec "$build_dir/examples/fashion_mnist/fashion_mnist" "$@"
fi

# The comparison of docs/fashion-mnist.md: both optimizers from the same initialisation and
# data order, the same number of steps, each with a cosine decay of its own learning rate over
# the whole run; test accuracy measured every 10 steps (not counted in the seconds of training).
exec "$build_dir/examples/fashion_mnist/fashion_mnist" \
  --compare adamw,muon+adamw \
  --epochs 6 --batch 256 --seed 0 --schedule cosine --eval-every 10 \
  --out "${DESCENT_EXAMPLE_OUT:-fashion-mnist-out}"
