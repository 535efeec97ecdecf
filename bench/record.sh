#!/usr/bin/env bash
# Runs the performance record (docs/performance.md) and writes its outputs into DIR:
#   bench.json / bench.txt         descent_bench, default threads (all CPUs) and ISA
#   bench_1thread.txt              the same on one thread (many-small tensors and 256K/4M only)
#   bench_before.txt               SSE2 on one thread: the kernels as they were before (1.0.0)
#   muon.txt                       muon_bench (sgemm roof and a Muon step), short budget
#   torch_adamw.txt                torch.optim.AdamW(foreach) against descent.torch, 32M params
#                                  (when the Python binding's venv has torch)
# usage: bench/record.sh DIR [BIN_DIR]   (BIN_DIR: where descent_bench and muon_bench are;
#                                          default build/bench)
set -uo pipefail
out=${1:?usage: record.sh DIR [BIN_DIR]}
bin=${2:-build/bench}
mkdir -p "$out"
{ lscpu; nproc; date -u; } >"$out/machine.txt" 2>&1
"$bin/descent_bench" --json "$out/bench.json" 2>&1 | tee "$out/bench.txt"
DESCENT_NUM_THREADS=1 "$bin/descent_bench" --sizes 256K,4M --rounds 3 --json "$out/bench_1thread.json" \
  >"$out/bench_1thread.txt" 2>&1
DESCENT_ISA=sse2 DESCENT_NUM_THREADS=1 "$bin/descent_bench" --sizes 4M --rounds 3 \
  --json "$out/bench_before.json" >"$out/bench_before.txt" 2>&1
"$bin/muon_bench" --sizes 1024x4096,4096x4096 --budget 15 --rounds 3 >"$out/muon.txt" 2>&1
# torch's AdamW (foreach) against descent.torch, when the Python binding's environment has torch
# (bindings/python/install-deps.sh); the library is the one next to the benchmarks.
py=${DESCENT_PY_VENV:-$HOME/.cache/descent-py-venv}/bin/python
lib=$(dirname "$bin")/libdescent.so.1
if [[ -x $py && -e $lib ]] && "$py" -c "import torch" 2>/dev/null; then
  DESCENT_LIBRARY=$lib "$py" "$(dirname "${BASH_SOURCE[0]}")/../bindings/python/bench/bench_torch_adamw.py" 32 \
    >"$out/torch_adamw.txt" 2>&1
fi
echo "done"
