"""Fashion-MNIST with torch autograd and descent.torch's Muon+AdamW.

    python examples/fashion_mnist_torch.py [epochs=2] [data dir=/usr/share/datasets/fashion-mnist]

The 784-512-256-10 MLP of the C example (examples/fashion_mnist): the hidden weight matrices go
to Muon, the biases and the output layer ("head.*") to AdamW. Debian's dataset-fashion-mnist
package provides the gzipped IDX files. Prints the loss and test accuracy after each epoch."""
import collections
import gzip
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import descent.torch  # noqa: E402


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(root, split):
    x = idx(os.path.join(root, f"{split}-images-idx3-ubyte.gz")).reshape(-1, 784)
    y = idx(os.path.join(root, f"{split}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def main():
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    root = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    if not os.path.exists(os.path.join(root, "train-images-idx3-ubyte.gz")):
        sys.exit(f"no Fashion-MNIST in {root} (apt-get install dataset-fashion-mnist)")
    xtr, ytr = load(root, "train")
    xte, yte = load(root, "t10k")
    torch.manual_seed(0)
    model = torch.nn.Sequential(collections.OrderedDict([
        ("fc1", torch.nn.Linear(784, 512)), ("act1", torch.nn.ReLU()),
        ("fc2", torch.nn.Linear(512, 256)), ("act2", torch.nn.ReLU()),
        ("head", torch.nn.Linear(256, 10))]))
    opt = descent.torch.muon_adamw(model.named_parameters(),
                                   muon={"learning_rate": 0.02, "weight_decay": 0.0},
                                   adamw={"learning_rate": 1e-3, "weight_decay": 0.0})
    batch = 128
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        perm = torch.randperm(len(xtr))
        total = 0.0
        for i in range(0, len(xtr), batch):
            sel = perm[i:i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xtr[sel]), ytr[sel])
            loss.backward()
            opt.step()
            total += loss.item() * len(sel)
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        print(f"epoch {epoch}: train loss {total / len(xtr):.4f}, test accuracy {100 * acc:.2f}% "
              f"({time.time() - t0:.1f} s)")
    groups = opt.descent
    print("groups:", {n: ("muon", "adamw")[groups.parameter_group(n)]
                      for n, _ in model.named_parameters()})


if __name__ == "__main__":
    main()
