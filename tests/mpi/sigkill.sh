#!/usr/bin/env bash
# ctest mpi_np_sigkill: a rank killed by a real SIGKILL in the middle of a sharded save leaves a
# complete checkpoint (tests/mpi/mpi_test.cpp, Mpi.SigkillDuringShardedSave;
# docs/distributed.md "Sharded save protocol and durability").
#   - the last of 3 ranks kills itself on entering each of the save's all-reduces 1-4 (before
#     rank 0 renames index.json): the previous checkpoint (step 3) loads, on 3 ranks and on 2;
#   - it kills itself after the 5th (after the rename): the new one (step 4) loads;
#   - a rank is killed from outside (kill -9) at a random moment of a loop of saves: whatever
#     the directory holds loads and continues bit for bit from its step.
# usage: sigkill.sh <mpirun> <descent_mpi_tests>
set -uo pipefail
mpirun=$1
binary=$2
root=$(mktemp -d "${TMPDIR:-/tmp}/descent-sigkill-XXXXXX")
trap 'rm -rf "$root"' EXIT
run() {  # run <np> <phase> [env...]
  local np=$1 phase=$2
  shift 2
  env "$@" DESCENT_KILL_PHASE="$phase" "$mpirun" --allow-run-as-root --oversubscribe -np "$np" \
    "$binary" --gtest_filter=Mpi.SigkillDuringShardedSave
}
fail=0
for case in adamw:1 adamw:2 adamw:3 adamw:4 adamw:end muon:2 muon:end; do
  kind=${case%:*}
  at=${case#*:}
  dir=$root/$kind-$at
  mkdir -p "$dir"
  expect=3
  [[ $at == end ]] && expect=4
  echo "== $kind: kill the last of 3 ranks at all-reduce $at of a save"
  if run 3 kill DESCENT_KILL_KIND="$kind" DESCENT_KILL_DIR="$dir" DESCENT_KILL_AT="$at" \
      >"$dir.log" 2>&1; then
    echo "FAIL: the job was not killed"; tail -20 "$dir.log"; fail=1
  elif ! grep -q "signal 9" "$dir.log"; then
    echo "FAIL: the job failed without a SIGKILL"; tail -20 "$dir.log"; fail=1
  fi
  echo "   left: $(ls -A "$dir/$kind" | tr '\n' ' ')"
  for np in 3 2; do
    run "$np" check DESCENT_KILL_KIND="$kind" DESCENT_KILL_DIR="$dir" \
      DESCENT_KILL_EXPECT="$expect" >"$dir.check$np.log" 2>&1 \
      || { echo "FAIL: check on $np ranks"; cat "$dir.check$np.log"; fail=1; }
    echo "   on $np ranks: $(grep -h "holds step" "$dir.check$np.log")"
  done
done
echo "== kill -9 of rank 1 at a random moment of a loop of saves"
dir=$root/loop
mkdir -p "$dir"
run 3 kill DESCENT_KILL_KIND=adamw DESCENT_KILL_DIR="$dir" DESCENT_KILL_AT=loop >"$dir.log" 2>&1 &
job=$!
sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 1.5 + 2.5 * rand() }')"
descendants() {
  local p
  for p in $(pgrep -P "$1"); do
    echo "$p"
    descendants "$p"
  done
}
# one of this job's own ranks (comm is cut to 15 characters)
victim=$(for p in $(descendants "$job"); do
  [[ $(cat "/proc/$p/comm" 2>/dev/null) == descent_mpi_tes* ]] && echo "$p"
done | sed -n 2p)
if [[ -n $victim ]] && kill -9 "$victim" 2>/dev/null; then
  echo "killed pid $victim"
else
  echo "(the loop ended before the kill)"
fi
wait "$job"
echo "   left: $(ls -A "$dir/adamw" | tr '\n' ' ')"
run 3 check DESCENT_KILL_KIND=adamw DESCENT_KILL_DIR="$dir" >"$dir.check.log" 2>&1 \
  || { echo "FAIL: check after kill -9"; cat "$dir.check.log"; fail=1; }
echo "   $(grep -h "holds step" "$dir.check.log")"
exit $fail
