#!/usr/bin/env bash
# ctest example_fashion_mnist_mpi: fashion_mnist_mpi for 300 AdamW steps on 1 and on 2 ranks
# (mpirun on loopback). Both must reach 75% test accuracy and agree within 1.5 points (the
# rounding order of the gradient sum differs between them; docs/distributed.md).
set -euo pipefail
program=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
  OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 DESCENT_NUM_THREADS=1
acc() {
  local out
  out=$(mpirun -np "$1" "$program" --steps 300 --seed 0 2>&1) || { echo "$out"; exit 1; }
  echo "$out" >&2
  sed -n 's/^final test accuracy: \([0-9.]*\).*/\1/p' <<<"$out"
}
a1=$(acc 1)
a2=$(acc 2)
echo "test accuracy after 300 steps: 1 rank $a1, 2 ranks $a2"
python3 - "$a1" "$a2" <<'PY'
import sys
a1, a2 = map(float, sys.argv[1:])
assert a1 > 0.75 and a2 > 0.75, (a1, a2)
assert abs(a1 - a2) < 0.015, (a1, a2)
PY
