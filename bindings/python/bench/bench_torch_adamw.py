"""descent.torch AdamW vs torch.optim.AdamW(foreach=True), side by side (not a test).

    python bench/bench_torch_adamw.py [million parameters, default 50]

Same parameters (float32, 8 matrices), same gradients, same hyperparameters (descent with
bias_correction=True, which is torch's AdamW); ms per step, min and median of 10 steps after 2
warm-up steps, alternating the two optimizers."""
import os
import platform
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import descent.torch as dt  # noqa: E402

MILLIONS = float(sys.argv[1]) if len(sys.argv) > 1 else 50
rows = int((MILLIONS * 1e6 / 8) ** 0.5)


def params():
    torch.manual_seed(0)
    ps = [torch.randn(rows, rows, requires_grad=True) for _ in range(8)]
    for p in ps:
        p.grad = torch.randn(rows, rows) * 1e-3
    return ps


hp = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
a, b = params(), params()
opts = {"torch.optim.AdamW(foreach=True)": torch.optim.AdamW(a, foreach=True, **hp),
        "descent.torch.AdamW": dt.AdamW(b, bias_correction=True, **hp)}
times = {k: [] for k in opts}
for i in range(12):
    for name, o in opts.items():
        t0 = time.perf_counter()
        o.step()
        if i >= 2:
            times[name].append((time.perf_counter() - t0) * 1e3)
diff = max((x - y).abs().max().item() for x, y in zip(a, b))
try:
    cpu = next(line.split(":", 1)[1].strip() for line in
               subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
               if line.startswith("Model name"))
except (OSError, StopIteration):
    cpu = platform.processor()
n = sum(p.numel() for p in a)
print(f"AdamW step, {n / 1e6:.1f}M float32 parameters (8 x {rows}x{rows}); {cpu}; "
      f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads")
for name, ts in times.items():
    ts.sort()
    print(f"  {name:34s} min {ts[0]:8.1f} ms  median {ts[len(ts) // 2]:8.1f} ms  "
          f"({ts[0] * 1e6 / n:.2f} ns/param)")
print(f"  max |difference| of the parameters after 12 steps: {diff:.3g}")
