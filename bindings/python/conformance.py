"""The conformance scenario (tests/conformance/README.md) through the Python binding.

usage: python conformance.py <output-dir>"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import descent  # noqa: E402


def lr(step):
    return 0.01 / (float(step) + 1.0)


def make(name):
    if name == "adamw":
        opt = descent.AdamW(learning_rate=0.01, weight_decay=0.01)
    elif name == "muon":
        opt = descent.Muon(learning_rate=0.02, momentum=0.95)
    else:
        opt = descent.muon_adamw({"learning_rate": 0.02}, {"learning_rate": 0.01})
    return opt


def steps(opt, params, targets, count):
    for _ in range(count):
        grads = {"layer": {k: params["layer"][k] - targets[k] for k in ("weight", "bias")}}
        opt.update(params, grads)


def run(out, name):
    i = np.arange(48, dtype=np.float32)
    weight = (np.float32(0.125) * (np.arange(48) % 17).astype(np.float32) - np.float32(1.0))
    bias = np.float32(0.25) * np.arange(6, dtype=np.float32)
    targets = {"weight": (np.float32(0.25) * (np.arange(48) % 7).astype(np.float32)).reshape(8, 6),
               "bias": np.full(6, -0.5, np.float32)}
    params = {"layer": {"weight": weight.reshape(8, 6).copy(), "bias": bias.copy()}}
    del i
    path = os.path.join(out, f"{name}.state.safetensors")

    first = make(name)
    first.init(params)                 # declares layer.weight then layer.bias
    first.learning_rate = lr           # the host-language schedule callback
    steps(first, params, targets, 25)
    first.save(path)

    second = make(name)
    second.init(params)
    second.learning_rate = lr
    second.load(path)
    steps(second, params, targets, 25)

    with open(os.path.join(out, f"{name}.params.bin"), "wb") as f:
        f.write(params["layer"]["weight"].astype("<f4").tobytes())
        f.write(params["layer"]["bias"].astype("<f4").tobytes())


def main():
    if len(sys.argv) != 2:
        print("usage: conformance.py <output-dir>", file=sys.stderr)
        return 2
    for name in ("adamw", "muon", "muon+adamw"):
        run(sys.argv[1], name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
