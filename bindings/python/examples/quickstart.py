"""The README's example: AdamW with a cosine schedule and gradient clipping on a numpy tree."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import descent  # noqa: E402

params = {"layers": [{"weight": np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32),
                      "bias": np.zeros(3, np.float32)}]}
opt = descent.AdamW(learning_rate=descent.schedules.cosine_decay(1e-2, 1000), weight_decay=0.01)
for step in range(100):
    grads = {"layers": [{"weight": params["layers"][0]["weight"] - 1.0,
                         "bias": params["layers"][0]["bias"] + 0.5}]}
    grads, norm = descent.clip_grad_norm(grads, max_norm=1.0)
    opt.update(params, grads)            # the arrays in `params` change in place
print(opt.step, opt.learning_rate, sorted(opt.state))
try:
    opt.update(params, {"layers": [{"weight": np.zeros((3, 4), np.float32)}]})
except descent.DescentError as e:
    print("refused:", e.status_name, e.message)
