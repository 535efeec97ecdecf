#!/usr/bin/env bash
# ctest mpi_np_reshard: a sharded run saved on 4 ranks resumes on 2, then on 1, through files in one
# temporary directory (tests/mpi/mpi_test.cpp, Mpi.ReshardingResumeThroughFiles).
# usage: reshard.sh <mpirun> <descent_mpi_tests>
set -euo pipefail
mpirun=$1
binary=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/descent-reshard-XXXXXX")
trap 'rm -rf "$dir"' EXIT
export DESCENT_RESHARD_DIR=$dir
for step in "4 save" "2 load2" "1 load1"; do
  set -- $step
  echo "== mpirun -np $1 ($2)"
  DESCENT_RESHARD_PHASE=$2 "$mpirun" --allow-run-as-root --oversubscribe -np "$1" "$binary" \
    --gtest_filter=Mpi.ReshardingResumeThroughFiles
done
ls "$dir"
