"""How much the Python binding adds to one update of many small tensors (not a test).

    python bench/bench_update.py [N tensors] [M floats each]

Times, per update (min and median of 31 batches), adamw float32, state initialised:
  C            the same update_indexed call from a C program (bench/c_update.c, built here
               with cc against DESCENT_PREFIX) - the floor
  ctypes raw   update_indexed through ctypes with argument arrays built once
  update/same  opt.update(params, grads) with the same gradient arrays every step (cached)
  update/new   opt.update(params, grads) with new gradient arrays every step
  update_flat  opt.update_flat(params_buf, grads_buf)
  torch        descent.torch step() (if torch is installed), grads kept between steps
"""
import ctypes
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import descent  # noqa: E402
from descent import _lib  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
M = int(sys.argv[2]) if len(sys.argv) > 2 else 10
BATCHES, CALLS = 31, 100


def timeit(fn):
    fn()
    ts = []
    for _ in range(BATCHES):
        t0 = time.perf_counter()
        for _ in range(CALLS):
            fn()
        ts.append((time.perf_counter() - t0) / CALLS * 1e6)
    ts.sort()
    return ts[0], ts[len(ts) // 2]


def c_floor():
    prefix = os.environ.get("DESCENT_PREFIX")
    if not prefix:
        return None
    here = os.path.dirname(os.path.abspath(__file__))
    exe = os.path.join(tempfile.mkdtemp(), "c_update")
    try:
        subprocess.run(["cc", "-O2", "-o", exe, os.path.join(here, "c_update.c"),
                        f"-I{prefix}/include", f"-L{prefix}/lib", "-ldescent",
                        f"-Wl,-rpath,{prefix}/lib"], check=True)
        out = subprocess.run([exe, str(N), str(M)], check=True, capture_output=True, text=True)
        return tuple(float(x) for x in out.stdout.split())
    except (OSError, subprocess.CalledProcessError) as e:
        print("C harness not run:", e, file=sys.stderr)
        return None


def main():
    rng = np.random.default_rng(0)
    params = {"layers": [{"weight": rng.standard_normal(M).astype(np.float32)} for _ in range(N)]}
    grads = {"layers": [{"weight": np.full(M, 1e-3, np.float32)} for _ in range(N)]}
    results = {}
    results["C"] = c_floor()

    opt = descent.AdamW(learning_rate=1e-3)
    opt.update(params, grads)
    c = opt._cache
    f = _lib.lib.descent_optimizer_update_indexed
    h = opt._h
    results["ctypes raw"] = timeit(lambda: f(h, *c.args))
    results["update/same"] = timeit(lambda: opt.update(params, grads))
    leaves = [g["weight"] for g in grads["layers"]]

    def fresh():
        return {"layers": [{"weight": g.copy()} for g in leaves]}
    pool = [fresh() for _ in range(4)]
    k = [0]

    def new_grads():
        k[0] += 1
        opt.update(params, pool[k[0] % 4])
    results["update/new"] = timeit(new_grads)

    fopt = descent.AdamW(learning_rate=1e-3)
    fopt.init(params)
    pb, gb = fopt.flat_buffer(), fopt.flat_buffer()
    results["update_flat"] = timeit(lambda: fopt.update_flat(pb, gb))
    try:
        import torch
        import descent.torch as dt
        ts = [torch.zeros(M, requires_grad=True) for _ in range(N)]
        for t in ts:
            t.grad = torch.full((M,), 1e-3)
        topt = dt.AdamW(ts, lr=1e-3)
        results["torch step"] = timeit(topt.step)
        tref = torch.optim.AdamW([torch.zeros(M, requires_grad=True) for _ in range(N)], lr=1e-3,
                                 foreach=True)
        for t in tref.param_groups[0]["params"]:
            t.grad = torch.full((M,), 1e-3)
        results["torch.optim.AdamW foreach (reference)"] = timeit(tref.step)
    except ImportError:
        pass

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                   if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    print(f"adamw float32, {N} tensors x {M} floats, state initialised; {cpu}, {os.cpu_count()} "
          "CPUs; us per update, min (median) of 31 x 100")
    floor = results["C"][0] if results["C"] else None
    for name, r in results.items():
        if r is None:
            print(f"  {name:40s} (not measured)")
            continue
        ratio = f"  {r[0] / floor:5.2f}x C" if floor else ""
        print(f"  {name:40s} {r[0]:9.1f} ({r[1]:.1f}){ratio}")


if __name__ == "__main__":
    main()
