"""MLX as a live oracle: descent is shaped like mlx.optimizers, so one test body drives both.

For every kind, random configurations (only options MLX has), random shapes and gradients, five
steps; descent's parameters, state and learning rate must match MLX's after every step.

Tolerance: |d - m| <= 1e-5 * max(1, |m|) per element (float32, at most 5 steps). The golden rule of
shared/golden/README.md allows 8x the difference between MLX's own float32 and float64 results;
for these kinds, inputs of size O(1) and 5 steps that difference is a few float32 ulps of values of
size <= O(1) (~1e-7 relative, Newton-Schulz matmuls summed in another order included), so 1e-5 is
~100x above what float32 rounding can produce yet far below any semantic difference (a wrong eps
placement, bias correction or weight-decay order changes values by >= 1e-4 relative here, which
test_oracle_detects_a_semantic_difference checks).
"""
import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
mlx_optim = pytest.importorskip("mlx.optimizers")
from mlx.utils import tree_flatten as mlx_tree_flatten  # noqa: E402

import descent  # noqa: E402

CLASS = {"sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "AdaDelta",
         "adam": "Adam", "adamw": "AdamW", "adamax": "Adamax", "lion": "Lion",
         "adafactor": "Adafactor", "muon": "Muon"}
SHAPES = [(), (5,), (3, 4), (7, 3), (2, 3, 4), (4, 6)]
STEPS = 5


def close(d, m):
    d = np.asarray(d, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    assert d.shape == m.shape
    return np.abs(d - m) <= 1e-5 * np.maximum(1.0, np.abs(m))


def betas(rng, lo1=0.5, lo2=0.9):
    return [float(rng.uniform(lo1, 0.95)), float(rng.uniform(lo2, 0.999))]


def random_config(kind, rng):
    """(config, learning-rate spec) using only MLX's keyword arguments."""
    c = {}
    if kind == "sgd":
        c["momentum"] = float(rng.choice([0.0, rng.uniform(0.1, 0.95)]))
        c["weight_decay"] = float(rng.choice([0.0, rng.uniform(0, 0.1)]))
        if c["momentum"] > 0 and rng.random() < 0.4:
            c["nesterov"] = True
        else:
            c["dampening"] = float(rng.choice([0.0, rng.uniform(0, 0.5)]))
    elif kind == "rmsprop":
        c["alpha"] = float(rng.uniform(0.5, 0.999))
        c["eps"] = float(rng.choice([1e-8, 1e-6, 1e-3]))
    elif kind == "adagrad":
        c["eps"] = float(rng.choice([1e-8, 1e-6, 1e-3]))
    elif kind == "adadelta":
        c["rho"] = float(rng.uniform(0.5, 0.99))
        c["eps"] = float(rng.choice([1e-6, 1e-3]))
    elif kind in ("adam", "adamw", "adamax", "lion"):
        c["betas"] = betas(rng)
        if kind != "lion":
            c["eps"] = float(rng.choice([1e-8, 1e-6, 1e-3]))
        if kind in ("adam", "adamw"):
            c["bias_correction"] = bool(rng.random() < 0.5)
        if kind in ("adamw", "lion"):
            c["weight_decay"] = float(rng.choice([0.0, rng.uniform(0, 0.1)]))
    elif kind == "adafactor":
        c["relative_step"] = bool(rng.random() < 0.5)
        c["scale_parameter"] = bool(rng.random() < 0.5)
        c["warmup_init"] = bool(rng.random() < 0.3)
        c["clip_threshold"] = float(rng.uniform(0.5, 2.0))
        c["decay_rate"] = float(rng.uniform(-0.9, -0.5))
        c["weight_decay"] = float(rng.choice([0.0, rng.uniform(0, 0.1)]))
        if rng.random() < 0.5:
            c["beta_1"] = float(rng.uniform(0.5, 0.95))
        if c["relative_step"] and rng.random() < 0.5:
            return c, None
    elif kind == "muon":
        c["momentum"] = float(rng.uniform(0.5, 0.99))
        c["weight_decay"] = float(rng.choice([0.0, rng.uniform(0, 0.1)]))
        c["nesterov"] = bool(rng.random() < 0.5)
        c["ns_steps"] = int(rng.integers(1, 7))
    return c, random_lr(rng)


def random_lr(rng):
    r = rng.random()
    lr = float(rng.uniform(1e-3, 0.1))
    if r < 0.55:
        return ("const", lr)
    if r < 0.7:
        return ("exponential_decay", lr, float(rng.uniform(0.5, 0.99)))
    if r < 0.8:
        return ("cosine_decay", lr, int(rng.integers(2, 10)), float(rng.uniform(0, lr / 2)))
    if r < 0.9:
        return ("linear_schedule", 0.0, lr, int(rng.integers(1, 6)))
    return ("callable", lr)


def make_lr(spec, sched):
    """The same learning rate for either library: sched is descent.schedules or
    mlx.optimizers (both name their schedules alike)."""
    if spec is None:
        return {}
    if spec[0] == "const":
        return {"learning_rate": spec[1]}
    if spec[0] == "callable":
        base = spec[1]
        return {"learning_rate": lambda step: base / (step + 1)}
    return {"learning_rate": getattr(sched, spec[0])(*spec[1:])}


def random_tree(rng, kind, nparams):
    shapes = [SHAPES[i] for i in rng.choice(len(SHAPES), nparams, replace=False)]
    names = ["embed.weight", "blocks.0.weight", "blocks.0.bias", "head.weight", "norm", "x"]
    tree = {}
    for i, s in enumerate(shapes):
        a = rng.standard_normal(s).astype(np.float32)
        parts = names[i].split(".")
        if len(parts) == 1:
            tree[parts[0]] = a
        else:
            tree.setdefault(parts[0], {})
            if parts[1].isdigit():
                tree[parts[0]] = tree[parts[0]] if isinstance(tree[parts[0]], list) else [{}]
                tree[parts[0]][0][parts[2]] = a
            else:
                tree[parts[0]][parts[1]] = a
    return tree


def tree_map(f, t):
    if isinstance(t, dict):
        return {k: tree_map(f, v) for k, v in t.items()}
    if isinstance(t, list):
        return [tree_map(f, v) for v in t]
    return f(t)


def run_both(make, params0, grads_seq):
    """Runs the same optimizer construction in descent (numpy, in place) and MLX; yields, per
    step, (descent params, descent state, MLX params, MLX state) flattened."""
    d_opt = make(descent, descent.schedules)
    m_opt = make(mlx_optim, mlx_optim)
    d_params = tree_map(np.copy, params0)
    m_params = tree_map(mx.array, params0)
    for grads in grads_seq:
        d_opt.update(d_params, tree_map(np.copy, grads))
        m_params = m_opt.apply_gradients(tree_map(mx.array, grads), m_params)
        mx.eval(m_params, m_opt.state)
        yield (dict(descent.tree_flatten(d_params)), d_opt.state,
               {k: np.array(v) for k, v in mlx_tree_flatten(m_params)},
               {k: np.array(v) for k, v in mlx_tree_flatten(m_opt.state)})


def compare(step_results, what):
    for step, (dp, ds, mp, ms) in enumerate(step_results, 1):
        assert dp.keys() == mp.keys()
        for k in mp:
            ok = close(dp[k], mp[k])
            assert ok.all(), (f"{what}: step {step}: parameter {k}: max |d-m| = "
                              f"{np.max(np.abs(dp[k] - mp[k]))}")
        assert set(ds) <= set(ms), f"{what}: state keys MLX lacks: {set(ds) - set(ms)}"
        for k in ms:
            if k not in ds:   # a slot MLX allocates but never uses (omissible): zeros
                assert not np.any(ms[k]), f"{what}: step {step}: descent lacks state {k}"
                continue
            assert ds[k].shape == np.shape(ms[k]), f"{what}: {k} shape"
            if k.endswith("step"):
                assert int(ds[k]) == int(ms[k]), f"{what}: step {step}: {k}"
            else:
                assert close(ds[k], ms[k]).all(), (f"{what}: step {step}: state {k}: "
                                                   f"max |d-m| = "
                                                   f"{np.max(np.abs(ds[k] - ms[k]))}")


def gradient_sequence(rng, params):
    scale = float(rng.choice([1e-3, 1.0, 10.0]))
    return [tree_map(lambda a: (scale * rng.standard_normal(a.shape)).astype(np.float32), params)
            for _ in range(STEPS)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", list(CLASS))
def test_trajectory_matches_mlx(kind, seed):
    rng = np.random.default_rng(1000 * seed + sum(map(ord, kind)))
    config, lr = random_config(kind, rng)
    params = random_tree(rng, kind, int(rng.integers(1, 5)))
    grads = gradient_sequence(rng, params)

    def make(mod, sched):
        return getattr(mod, CLASS[kind])(**make_lr(lr, sched), **config)

    compare(run_both(make, params, grads), f"{kind} {config} lr={lr}")


@pytest.mark.parametrize("seed", range(4))
def test_multi_optimizer_matches_mlx(seed):
    rng = np.random.default_rng(77 + seed)
    kinds = [str(k) for k in rng.choice(list(CLASS), 2, replace=False)]
    configs = [random_config(k, rng) for k in kinds]
    params = random_tree(rng, "multi", 4)
    grads = gradient_sequence(rng, params)

    def make(mod, sched):
        opts = [getattr(mod, CLASS[k])(**make_lr(lr, sched), **c)
                for k, (c, lr) in zip(kinds, configs)]
        return mod.MultiOptimizer(opts, [lambda name, w: w.ndim >= 2])

    compare(run_both(make, params, grads), f"multi {kinds} {configs}")


@pytest.mark.parametrize("seed", range(3))
def test_muon_adamw_matches_mlx_multi(seed):
    rng = np.random.default_rng(500 + seed)
    muon_c, muon_lr = random_config("muon", rng)
    adamw_c, adamw_lr = random_config("adamw", rng)
    params = random_tree(rng, "multi", 5)
    grads = gradient_sequence(rng, params)
    excluded = ("embed", "lm_head", "head", "norm")

    def make(mod, sched):
        muon = {**make_lr(muon_lr, sched), **muon_c}
        adamw = {**make_lr(adamw_lr, sched), **adamw_c}
        if mod is descent:
            return descent.muon_adamw(muon, adamw)
        return mod.MultiOptimizer(
            [mod.Muon(**muon), mod.AdamW(**adamw)],
            [lambda name, w: w.ndim >= 2 and not any(e in name for e in excluded)])

    compare(run_both(make, params, grads), "muon+adamw")


def test_oracle_detects_a_semantic_difference():
    """The comparison can fail: Adam with and without bias correction differ beyond it."""
    rng = np.random.default_rng(3)
    params = {"w": rng.standard_normal((3, 4)).astype(np.float32)}
    grads = gradient_sequence(rng, params)

    def make(mod, sched):
        return mod.Adam(learning_rate=0.01, bias_correction=(mod is descent))

    with pytest.raises(AssertionError):
        compare(run_both(make, params, grads), "adam, different bias_correction")
