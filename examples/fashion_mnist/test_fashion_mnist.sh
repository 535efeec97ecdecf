#!/usr/bin/env bash
# ctest driver for examples/fashion_mnist (registered from CMakeLists.txt beside it).
#
#   test_fashion_mnist.sh train   BIN WORKDIR OPTIMIZER [SCHEDULE [IMAGES]]
#       a short fixed-seed run (2 epochs of the first IMAGES training images, default 9600, at
#       batch 64: 300 steps): the training loss must fall below half its initial value and the
#       test accuracy (all 10000 images) must exceed 70%
#   test_fashion_mnist.sh resume  BIN WORKDIR OPTIMIZER [SCHEDULE]
#       2 short epochs straight through, against the same run stopped mid-epoch (--steps), at
#       the epoch boundary and mid-epoch again, resumed from its checkpoint each time:
#       bit-identical parameters and optimizer state (and state file), identical curves
#   test_fashion_mnist.sh baddata BIN WORKDIR
#       a missing and a truncated data file: exit status 2 and a message naming the file and
#       how to install the data
#
# FM_EXTRA_ARGS (words) are passed to every training run, e.g. "--dtype bf16".
# A missing dataset fails the train and resume tests with the program's message (exit 2).
set -euo pipefail

mode=$1 bin=$2 work=$3
optimizer=${4:-adamw}
schedule=${5:-none}
images=${6:-9600}
read -r -a extra <<< "${FM_EXTRA_ARGS:-}"
rm -rf "$work"
mkdir -p "$work"
cd "$work"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

case "$mode" in
train)
  "$bin" --optimizer "$optimizer" --schedule "$schedule" --seed 1 --batch 64 --epochs 2 \
    --train-subset "$images" --csv train.csv ${extra[@]+"${extra[@]}"} | tee train.log
  # step,epoch,train_loss,test_acc,lr,elapsed: row 1 is step 0 (loss of the first batch before
  # any update), the last row the end of epoch 2.
  awk -F, -v opt="$optimizer" -v expected=$((2 * images / 64)) '
    NR == 2 { initial = $3 }
    NR > 1  { last_loss = $3; if ($4 != "") last_acc = $4; steps = $1 }
    END {
      printf "%s: initial loss %.4f, final train loss %.4f (%.2f x), test accuracy %.2f%% after %d steps\n",
             opt, initial, last_loss, last_loss / initial, 100 * last_acc, steps
      if (steps != expected) { print "FAIL: expected " expected " steps"; exit 1 }
      if (!(last_loss < 0.5 * initial)) { print "FAIL: the loss did not fall below half its initial value"; exit 1 }
      if (!(last_acc > 0.70)) { print "FAIL: test accuracy not above 70%"; exit 1 }
    }' train.csv
  ;;

resume)
  common=(--optimizer "$optimizer" --schedule "$schedule" --seed 3 --batch 64 --epochs 2
          --train-subset 2048 --test-subset 1000 --eval-every 8 --log-every 5
          ${extra[@]+"${extra[@]}"})
  checksums() { grep -E '^[^ ]+: checksums ' "$1" | tail -1 | sed 's/^[^ ]*: //'; }
  curves() { cut -d, -f1-5 "$1"; } # all but elapsed

  "$bin" "${common[@]}" --checkpoint straight.ckpt --csv straight.csv > straight.log
  reference=$(checksums straight.log)
  [[ -n "$reference" ]] || fail "no checksums line in the uninterrupted run's output"
  echo "uninterrupted: $reference"

  # 32 steps per epoch: stop mid-epoch 1 (step 21), then at the epoch boundary (step 32), then
  # mid-epoch 2 (step 45), resuming each time; then finish.
  for stop in 21 32 45; do
    "$bin" "${common[@]}" --checkpoint resumed.ckpt --csv resumed.csv --resume --steps "$stop" \
      > "stop-$stop.log"
    grep -q "at step $stop of 64" "stop-$stop.log" || fail "the run did not stop at step $stop"
  done
  "$bin" "${common[@]}" --checkpoint resumed.ckpt --csv resumed.csv --resume > resumed.log
  grep -q "resuming from resumed.ckpt at step 45" resumed.log || fail "the last run did not resume"
  got=$(checksums resumed.log)
  echo "resumed:       $got"
  [[ "$got" == "$reference" ]] || fail "resumed run ends with other parameters or optimizer state"
  diff <(curves straight.csv) <(curves resumed.csv) || fail "resumed run has other curves"
  # descent's state files of the two runs, saved at the same step, are the same bytes (the model
  # files differ in the elapsed times they record; the parameters are in the checksums).
  cmp straight.ckpt resumed.ckpt || fail "the final optimizer state files differ"
  echo "resume equivalence: OK"
  ;;

baddata)
  expect_failure() { # description, data dir
    local out status=0
    out=$("$bin" --data "$2" --steps 1 2>&1) || status=$?
    head -3 <<<"$out"
    [[ $status -eq 2 ]] || fail "$1: exit status $status, expected 2"
    grep -q "$3" <<<"$out" || fail "$1: the message does not name $3"
    grep -q "apt-get install" <<<"$out" || fail "$1: the message does not say how to install"
  }
  expect_failure "missing directory" "$work/none" "$work/none/train-images-idx3-ubyte.gz: missing"
  src=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
  mkdir truncated
  for f in train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    printf '\x00\x00\x08\x01\x00\x00\x00\x00' | gzip > "truncated/$f.gz" # never read
  done
  # A gzip stream cut short: the first 64 KiB of a real one, or of a made-up one.
  if [[ -r "$src/train-images-idx3-ubyte.gz" ]]; then
    head -c 65536 "$src/train-images-idx3-ubyte.gz" > truncated/train-images-idx3-ubyte.gz
  else
    # Through a file: `gzip | head -c` fails under pipefail when gzip gets SIGPIPE.
    head -c 1000000 /dev/zero | gzip > truncated/whole.gz
    head -c 500 truncated/whole.gz > truncated/train-images-idx3-ubyte.gz
    rm truncated/whole.gz
  fi
  expect_failure "truncated file" truncated "truncated/train-images-idx3-ubyte.gz: damaged or truncated"
  echo "bad data: OK"
  ;;

*)
  fail "unknown mode $mode"
  ;;
esac
