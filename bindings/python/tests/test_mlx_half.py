"""Half-precision parameters against live MLX (mlx[cpu] 0.32.4): the "param" state precision.

MLX keeps an optimizer's state in the parameter's dtype and evaluates every elementwise operation
in float32, rounding its result to that dtype (Python-float hyperparameters are rounded to it
first, through float32). descent's state_precision="param" does the same, so for the eight
elementwise kinds the parameters and the state must be equal to MLX's bit for bit after every
step, in bfloat16 and in float16: compared as uint16 bit patterns, a NaN matching only a NaN (any
payload: MLX and descent may pick different NaN bits). That includes MLX's known half-precision
failures (bf16 beta2 rounding to 1, f16 eps rounding to 0, f16 small gradients overflowing),
which this policy reproduces on purpose (docs/mlx-semantics.md).

Adafactor and Muon under "param" keep half-precision state but compute in float32 (rounding
once per step), which is not MLX's per-operation rounding: they are compared with a tolerance of
a few units in the last place of the half dtype (see test_whole_tensor_kinds_close_to_mlx).
"""
import numpy as np
import pytest

pytest.importorskip("ml_dtypes")    # descent.bfloat16 as a numpy dtype with float conversions
mx = pytest.importorskip("mlx.core")
mlx_optim = pytest.importorskip("mlx.optimizers")
from mlx.utils import tree_flatten as mlx_tree_flatten  # noqa: E402

import descent  # noqa: E402

DTYPES = {"bfloat16": (mx.bfloat16, descent.bfloat16), "float16": (mx.float16, np.float16)}
CLASS = {"sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adadelta": "AdaDelta",
         "adam": "Adam", "adamw": "AdamW", "adamax": "Adamax", "lion": "Lion",
         "adafactor": "Adafactor", "muon": "Muon"}
ELEMENTWISE = ["sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamw", "adamax", "lion"]
SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4), (33,), (6, 17)]
STEPS = 6


# ---- bits ----------------------------------------------------------------------------------

def half_bits(f32, dtype):
    """The half-precision bits (uint16) of float32 values, rounded by MLX itself."""
    return np.array(mx.array(np.asarray(f32, np.float32)).astype(DTYPES[dtype][0])
                    .view(mx.uint16))


def mx_of(bits, dtype):
    return mx.array(np.asarray(bits, np.uint16)).view(DTYPES[dtype][0])


def np_of(bits, dtype):
    return np.array(bits, np.uint16).view(DTYPES[dtype][1])


def bits_of(a):
    """uint16 bits of an MLX or numpy half-precision array."""
    if isinstance(a, mx.array):
        return np.array(a.view(mx.uint16))
    a = np.asarray(a)
    assert a.dtype.itemsize == 2, a.dtype
    return a.view(np.uint16)


def is_nan_bits(b, dtype):
    b = b.astype(np.uint32) & 0x7FFF
    return b > (0x7F80 if dtype == "bfloat16" else 0x7C00)


def assert_same_bits(d, m, dtype, what):
    d, m = bits_of(d), bits_of(m)
    assert d.shape == m.shape, f"{what}: shape {d.shape} vs {m.shape}"
    dn, mn = is_nan_bits(d, dtype), is_nan_bits(m, dtype)
    bad = (dn != mn) | (~dn & (d != m))
    if bad.any():
        i = np.flatnonzero(bad.reshape(-1))[:4]
        df = np_of(d.reshape(-1)[i], dtype).astype(np.float32)
        mf = np_of(m.reshape(-1)[i], dtype).astype(np.float32)
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} elements differ; "
                             f"at {i.tolist()}: descent {d.reshape(-1)[i]} = {df}, "
                             f"MLX {m.reshape(-1)[i]} = {mf}")


# ---- one run in both libraries ---------------------------------------------------------------

def run_both(kind, config, lr, dtype, params, grads_seq, precision="param"):
    """params: {name: uint16 bits}; grads_seq: [{name: uint16 bits}]; lr: a float or a pair
    (MLX's, descent's) of schedules. Yields per step (descent optimizer, descent params, MLX
    optimizer, MLX params)."""
    m_lr, d_lr = lr if isinstance(lr, tuple) else (lr, lr)
    m_opt = getattr(mlx_optim, CLASS[kind])(learning_rate=m_lr, **config)
    d_opt = getattr(descent, CLASS[kind])(learning_rate=d_lr, state_precision=precision, **config)
    d_params = {k: np_of(v, dtype).copy() for k, v in params.items()}
    m_params = {k: mx_of(v, dtype) for k, v in params.items()}
    for grads in grads_seq:
        d_opt.update(d_params, {k: np_of(v, dtype) for k, v in grads.items()})
        m_params = m_opt.apply_gradients({k: mx_of(v, dtype) for k, v in grads.items()},
                                         m_params)
        mx.eval(m_params, m_opt.state)
        yield d_opt, d_params, m_opt, m_params


def compare_bits(kind, config, lr, dtype, params, grads_seq, what=None):
    """Runs both and asserts equal bits of parameters and state after every step."""
    what = what or f"{kind} {dtype} {config} lr={lr}"
    for step, (d_opt, dp, m_opt, mp) in enumerate(
            run_both(kind, config, lr, dtype, params, grads_seq), 1):
        for k in mp:
            assert_same_bits(dp[k], mp[k], dtype, f"{what}: step {step}: parameter {k}")
        ds = d_opt.state
        ms = dict(mlx_tree_flatten(m_opt.state))
        assert set(ds) == set(ms), f"{what}: state keys {sorted(ds)} vs {sorted(ms)}"
        for k, mv in ms.items():
            if k == "step":
                assert int(ds[k]) == int(np.array(mv)) == step, f"{what}: step {step}: {k}"
            elif k == "learning_rate":
                assert ds[k].dtype == np.float32 and mv.dtype == mx.float32
                assert ds[k].view(np.uint32) == np.array(mv).view(np.uint32), \
                    f"{what}: step {step}: learning rate"
            else:
                assert ds[k].dtype == np.dtype(DTYPES[dtype][1]), f"{what}: {k} {ds[k].dtype}"
                assert mv.dtype == DTYPES[dtype][0], f"{what}: MLX {k} {mv.dtype}"
                assert_same_bits(ds[k], mv, dtype, f"{what}: step {step}: state {k}")
    return d_opt, dp, m_opt, mp


# ---- random cases ----------------------------------------------------------------------------

def random_config(kind, rng, variant):
    """MLX keyword arguments; `variant` (an int) walks the option combinations that matter."""
    c = {}
    if kind == "sgd":
        momentum = [0.0, 0.9, float(rng.uniform(0.1, 0.95))][variant % 3]
        c["momentum"] = momentum
        c["weight_decay"] = [0.0, float(rng.uniform(1e-3, 0.1))][(variant // 3) % 2]
        if momentum > 0 and variant % 2 == 0:
            c["nesterov"] = True
        elif momentum > 0:
            c["dampening"] = 0.0 if variant == 1 else float(rng.uniform(0.05, 0.5))
    elif kind == "rmsprop":
        c["alpha"] = float(rng.uniform(0.5, 0.999))
        c["eps"] = float(rng.choice([1e-8, 1e-6, 1e-3]))
    elif kind == "adagrad":
        c["eps"] = float(rng.choice([1e-8, 1e-6, 1e-3]))
    elif kind == "adadelta":
        c["rho"] = float(rng.uniform(0.5, 0.99))
        c["eps"] = float(rng.choice([1e-6, 1e-3, 1e-2]))
    elif kind in ("adam", "adamw", "adamax", "lion"):
        c["betas"] = [float(rng.uniform(0.5, 0.95)), float(rng.uniform(0.9, 0.999))]
        if kind != "lion":
            c["eps"] = float(rng.choice([1e-8, 1e-6, 1e-3]))
        if kind in ("adam", "adamw"):
            c["bias_correction"] = variant % 2 == 1
        if kind in ("adamw", "lion"):
            c["weight_decay"] = [float(rng.uniform(1e-3, 0.2)), 0.0, 0.01][variant % 3]
    return c


def random_case(rng, dtype, nparams=3):
    shapes = [SHAPES[i] for i in rng.choice(len(SHAPES), nparams, replace=False)]
    names = ["w", "b", "emb.weight", "x"][:nparams]
    params = {n: half_bits(rng.standard_normal(s), dtype) for n, s in zip(names, shapes)}
    scale = float(rng.choice([1e-2, 1.0, 10.0]))
    grads = []
    for _ in range(STEPS):
        g = {}
        for n, s in zip(names, shapes):
            v = np.asarray(scale * rng.standard_normal(s))
            v[np.asarray(rng.random(s)) < 0.1] = 0.0     # some exact zeros
            g[n] = half_bits(v, dtype)
        grads.append(g)
    return params, grads


@pytest.mark.parametrize("variant", range(8))
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("kind", ELEMENTWISE)
def test_param_policy_is_bit_exact_with_mlx(kind, dtype, variant):
    rng = np.random.default_rng(7919 * variant + sum(map(ord, kind + dtype)))
    config = random_config(kind, rng, variant)
    lr_value = float(rng.uniform(1e-3, 0.1))
    if variant % 4 == 3:   # a schedule: the float32 learning rate comes from MLX's arithmetic
        decay = float(rng.uniform(0.5, 0.99))
        m_lr, d_lr = (mlx_optim.exponential_decay(lr_value, decay),
                      descent.schedules.exponential_decay(lr_value, decay))
    else:
        m_lr = d_lr = lr_value
    params, grads = random_case(rng, dtype)
    compare_bits(kind, config, (m_lr, d_lr), dtype, params, grads,
                 f"{kind} {dtype} {config} lr={lr_value}")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("kind", ["adamw", "sgd", "lion"])
def test_param_policy_bit_exact_on_a_large_tensor(kind, dtype):
    """77,100 elements: the vectorised kernels and the split over threads give MLX's bits too."""
    rng = np.random.default_rng(11)
    shape = (300, 257)
    params = {"w": half_bits(rng.standard_normal(shape), dtype)}
    grads = [{"w": half_bits(rng.standard_normal(shape), dtype)} for _ in range(3)]
    config = {"adamw": {"bias_correction": True},
              "sgd": {"momentum": 0.9, "weight_decay": 0.01, "dampening": 0.1},
              "lion": {"weight_decay": 0.1}}[kind]
    compare_bits(kind, config, 0.01, dtype, params, grads)


# ---- MLX's half-precision failures, reproduced under "param" -----------------------------------

def test_bf16_beta2_rounds_to_one():
    """bf16(0.999) == 1.0: Adam's second moment never decays. After a zero gradient v keeps its
    value exactly, in MLX and in descent; under the float32 policy it decays."""
    dtype = "bfloat16"
    assert half_bits([0.999], dtype)[0] == half_bits([1.0], dtype)[0]
    params = {"w": half_bits([0.5, -0.25, 1.0], dtype)}
    g = half_bits([1.0, -2.0, 0.5], dtype)
    zero = half_bits([0.0, 0.0, 0.0], dtype)
    grads = [{"w": g}, {"w": zero}, {"w": zero}]
    d_opt, _, _, _ = compare_bits("adam", {"betas": [0.9, 0.999]}, 1e-2, dtype, params, grads)
    v = d_opt.state["w.v"]
    v1 = np_of(half_bits(np.float32(1e-3) * np.square(np_of(g, dtype).astype(np.float32)),
                         dtype), dtype)
    assert (bits_of(v) == bits_of(v1)).all(), "v did not decay: it is still (1-b2)*g^2"
    # float32 policy: v decays by 0.999 per step
    f = descent.Adam(learning_rate=1e-2, betas=[0.9, 0.999])
    p = np_of(params["w"], dtype).copy()
    for gg in grads:
        f.update({"w": p}, {"w": np_of(gg["w"], dtype)})
    assert (f.state["w.v"] < np.float32(1e-3) * np.square(np_of(g, dtype).astype(np.float32))).all()


def test_f16_eps_rounds_to_zero_and_a_zero_gradient_gives_nan():
    """f16(1e-8) == 0: an element that has only seen zero gradients gets 0/0 = NaN on the first
    step (MLX and descent alike); under the float32 policy it stays where it is."""
    dtype = "float16"
    assert half_bits([1e-8], dtype)[0] == 0
    params = {"w": half_bits([0.5, -0.25, 1.0, 2.0], dtype)}
    grads = [{"w": half_bits([0.0, 0.0, 0.5, -1.0], dtype)}] * 2
    d_opt, dp, _, mp = compare_bits("adamw", {}, 1e-3, dtype, params, grads)
    assert is_nan_bits(bits_of(dp["w"]), dtype).tolist() == [True, True, False, False]
    f = descent.AdamW(learning_rate=1e-3)
    p = np_of(params["w"], dtype).copy()
    for gg in grads:
        f.update({"w": p}, {"w": np_of(gg["w"], dtype)})
    assert np.isfinite(p.astype(np.float32)).all()
    assert p[0] == np.float16(0.5 * (1 - 1e-3 * 0.01) ** 2)


def test_f16_small_gradient_overflows_to_infinity():
    """A gradient of 1e-3: (1-b2)*g^2 = 1e-9 underflows to 0 in float16, the update divides by
    eps = 0 and the weight becomes infinite, in MLX and in descent; float32 policy: finite."""
    dtype = "float16"
    params = {"w": half_bits([0.5, -0.5], dtype)}
    grads = [{"w": half_bits([1e-3, -1e-3], dtype)}]
    d_opt, dp, _, mp = compare_bits("adamw", {}, 1e-3, dtype, params, grads)
    w = np_of(bits_of(dp["w"]), dtype)
    assert np.isinf(w).all() and (np.sign(w) == [-1, 1]).all()
    assert (bits_of(d_opt.state["w.v"]) == 0).all()
    f = descent.AdamW(learning_rate=1e-3)
    p = np_of(params["w"], dtype).copy()
    f.update({"w": p}, {"w": np_of(grads[0]["w"], dtype)})
    assert np.isfinite(p).all()


def test_bf16_adamw_decay_vanishes():
    """bf16: 1 - lr*wd = 1 - 1e-5 rounds to 1, so AdamW's weight decay does nothing under
    "param" (as in MLX) but does under float32 with a master copy."""
    dtype = "bfloat16"
    params = {"w": half_bits([1.0, -2.0], dtype)}
    zero = {"w": half_bits([0.0, 0.0], dtype)}
    cfg = {"weight_decay": 1e-2, "eps": 1e-3}
    _, dp, _, _ = compare_bits("adamw", cfg, 1e-3, dtype, params, [zero] * 4)
    assert (bits_of(dp["w"]) == params["w"]).all()
    m = descent.AdamW(learning_rate=1e-3, state_precision="master", **cfg)
    p = np_of(params["w"], dtype).copy()
    for _ in range(4):
        m.update({"w": p}, {"w": np_of(zero["w"], dtype)})
    master = m.state["w.master"]
    assert master.dtype == np.float32
    assert 0.9999 < master[0] < 1.0 and -2.0 < master[1] < -1.9998   # decayed by (1 - 1e-5)^4


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_the_bit_comparison_can_fail(dtype):
    """The float32 policy (arithmetic in float32, one rounding per step) is not MLX's per-operation
    rounding: over a few Adam steps the bits differ, and assert_same_bits says so."""
    rng = np.random.default_rng(5)
    params, grads = random_case(rng, dtype)
    with pytest.raises(AssertionError, match="differ"):
        for step, (d_opt, dp, m_opt, mp) in enumerate(run_both(
                "adam", {"bias_correction": True}, 0.01, dtype, params, grads,
                precision="float32"), 1):
            for k in mp:
                assert_same_bits(dp[k], mp[k], dtype, f"step {step}: {k}")


# ---- Adafactor and Muon: half-precision state, float32 arithmetic (not MLX-exact) -----------------
# Under "param" descent keeps their state in the parameter's dtype but computes each step in
# float32 from the widened values and float64 hyperparameters, rounding once; MLX rounds every
# operation and the hyperparameters (bf16(0.97) = 0.96875), and runs Newton-Schulz in the half
# dtype. Measured over 60 random cases x 5 steps (gradients |g| >= 0.05), the largest
# |d - m| / (|m| + rms(m) [+ lr for parameters]): parameters 0.020 (Adafactor bf16), 0.0024
# (Adafactor f16), 0.011 (Muon bf16), 0.0029 (Muon f16); state 0.082, 0.0087, 0.57, 0.044. Muon's
# momentum differs most: MLX decays it with the rounded beta (bf16(0.97) = 0.96875) and rounds
# `gradient + wd*parameter` before the sum, and cancellation in v magnifies that. The bounds below
# are about 2-2.5x the measured ones; the Muon bf16 state bound only says "same magnitude".
# MLX's own float16 failures (Adafactor's eps 1e-30 -> 0: NaN after gradients whose square
# underflows) are not reproduced: descent stays finite, so such gradients are left out here.
TOLERANCE = {("adafactor", "bfloat16", "param"): 0.05, ("adafactor", "float16", "param"): 0.006,
             ("muon", "bfloat16", "param"): 0.03, ("muon", "float16", "param"): 0.008,
             ("adafactor", "bfloat16", "state"): 0.2, ("adafactor", "float16", "state"): 0.02,
             ("muon", "bfloat16", "state"): 1.2, ("muon", "float16", "state"): 0.1}


def assert_close_half(d, m, dtype, tol, what, floor=0.0):
    """|d - m| <= tol * (|m| + rms(m) + floor) elementwise (floor: the learning rate for
    parameters, whose differences come from the step, not from their size)."""
    df = np_of(bits_of(d), dtype).astype(np.float64)
    mf = np_of(bits_of(m), dtype).astype(np.float64)
    assert np.isfinite(df).all() and np.isfinite(mf).all(), what
    scale = np.sqrt(np.mean(mf ** 2)) + floor + 1e-30
    err = np.abs(df - mf) / (np.abs(mf) + scale)
    assert err.max() <= tol, f"{what}: max relative difference {err.max():.4g} > {tol}"


def whole_tensor_case(kind, dtype, seed):
    import test_mlx_oracle as oracle
    rng = np.random.default_rng(100 * seed + len(kind) + len(dtype))
    config, lr = oracle.random_config(kind, rng)
    lr = lr[1] if lr is not None and lr[0] == "const" else 0.01
    if kind == "adafactor":
        config["relative_step"] = False
    shapes = [SHAPES[i] for i in rng.choice(len(SHAPES), 3, replace=False)]
    params = {n: half_bits(rng.standard_normal(s), dtype) for n, s in zip("abc", shapes)}

    def grad(s):
        v = np.asarray(rng.standard_normal(s))
        return half_bits(np.sign(v) * np.maximum(np.abs(v), 0.05), dtype)
    grads = [{n: grad(s) for n, s in zip("abc", shapes)} for _ in range(5)]
    return config, lr, params, grads


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("kind", ["adafactor", "muon"])
def test_whole_tensor_kinds_close_to_mlx(kind, dtype, seed):
    config, lr, params, grads = whole_tensor_case(kind, dtype, seed)
    what = f"{kind} {dtype} {config} lr={lr}"
    for step, (d_opt, dp, m_opt, mp) in enumerate(
            run_both(kind, config, lr, dtype, params, grads), 1):
        for k in mp:
            assert_close_half(dp[k], mp[k], dtype, TOLERANCE[kind, dtype, "param"],
                              f"{what}: step {step}: param {k}", floor=lr)
        ds, ms = d_opt.state, dict(mlx_tree_flatten(m_opt.state))
        assert set(ds) == set(ms)
        for k, mv in ms.items():
            if k not in ("step", "learning_rate"):
                assert ds[k].dtype == np.dtype(DTYPES[dtype][1])
                assert_close_half(ds[k], mv, dtype, TOLERANCE[kind, dtype, "state"],
                                  f"{what}: step {step}: state {k}")


def test_whole_tensor_tolerance_can_fail():
    """A semantic difference (Muon's weight decay left out on one side) exceeds the bound."""
    dtype = "bfloat16"
    config, lr, params, grads = whole_tensor_case("muon", dtype, 0)
    config = {**config, "weight_decay": 0.0}
    d_opt = descent.Muon(learning_rate=0.05, state_precision="param", **config)
    m_opt = mlx_optim.Muon(learning_rate=0.05, **{**config, "weight_decay": 0.5})
    dp = {k: np_of(v, dtype).copy() for k, v in params.items()}
    mp = {k: mx_of(v, dtype) for k, v in params.items()}
    with pytest.raises(AssertionError, match="relative difference"):
        for g in grads:
            d_opt.update(dp, {k: np_of(v, dtype) for k, v in g.items()})
            mp = m_opt.apply_gradients({k: mx_of(v, dtype) for k, v in g.items()}, mp)
            mx.eval(mp)
            for k in mp:
                assert_close_half(dp[k], mp[k], dtype, TOLERANCE["muon", dtype, "param"], k, floor=0.05)


# ---- a state file MLX wrote (bf16 Adam), loaded and continued ------------------------------------

def mlx_bf16_adam_file(tmp_path, config, lr, params, grads_before):
    """Runs MLX's Adam on bf16 parameters and saves its state as MLX users do:
    mx.save_safetensors(path, dict(tree_flatten(optimizer.state))). Returns (path, optimizer,
    parameters) to continue from."""
    m_opt = mlx_optim.Adam(learning_rate=lr, **config)
    mp = {k: mx_of(v, "bfloat16") for k, v in params.items()}
    for g in grads_before:
        mp = m_opt.apply_gradients({k: mx_of(v, "bfloat16") for k, v in g.items()}, mp)
        mx.eval(mp, m_opt.state)
    path = str(tmp_path / "mlx_adam_bf16.safetensors")
    mx.save_safetensors(path, dict(mlx_tree_flatten(m_opt.state)))
    return path, m_opt, mp


def test_mlx_bf16_state_file_param_policy_continues_bit_exact(tmp_path):
    rng = np.random.default_rng(21)
    dtype = "bfloat16"
    params = {"w": half_bits(rng.standard_normal((4, 5)), dtype),
              "b": half_bits(rng.standard_normal(5), dtype)}
    grads = [{k: half_bits(rng.standard_normal(np.shape(v)), dtype) for k, v in params.items()}
             for _ in range(6)]
    config = {"betas": [0.8, 0.95], "eps": 1e-6, "bias_correction": True}
    path, m_opt, mp = mlx_bf16_adam_file(tmp_path, config, 0.01, params, grads[:3])
    raw = mx.load(path)
    assert raw["w.m"].dtype == mx.bfloat16 and raw["step"].dtype == mx.uint64

    d_opt = descent.Adam(learning_rate=0.01, state_precision="param", **config)
    dp = {k: np_of(bits_of(v), dtype).copy() for k, v in mp.items()}
    d_opt.init(dp)
    d_opt.load(path)
    assert d_opt.step == 3
    for k in ("w.m", "w.v", "b.m", "b.v"):
        assert d_opt.state[k].dtype == np.dtype(descent.bfloat16)
        assert_same_bits(d_opt.state[k], raw[k], dtype, f"loaded {k}")
    for step, g in enumerate(grads[3:], 4):
        d_opt.update(dp, {k: np_of(v, dtype) for k, v in g.items()})
        mp = m_opt.apply_gradients({k: mx_of(v, dtype) for k, v in g.items()}, mp)
        mx.eval(mp, m_opt.state)
        ms = dict(mlx_tree_flatten(m_opt.state))
        for k in mp:
            assert_same_bits(dp[k], mp[k], dtype, f"step {step}: param {k}")
            for s in ("m", "v"):
                assert_same_bits(d_opt.state[f"{k}.{s}"], ms[f"{k}.{s}"], dtype,
                                 f"step {step}: {k}.{s}")
    # and descent's own save of that state is read back by MLX with the same bits
    out = str(tmp_path / "descent.safetensors")
    d_opt.save(out)
    back = mx.load(out)
    for k, v in dict(mlx_tree_flatten(m_opt.state)).items():
        assert back[k].dtype == v.dtype, k
        if v.dtype == mx.bfloat16:
            assert_same_bits(back[k], v, dtype, f"saved {k}")


def test_mlx_bf16_state_file_float32_policy_widens_exactly(tmp_path):
    """Under the float32 policy the bf16 slots load as their exact float32 values, and the run
    continues as the float32 run from those values (parameter rounded to bf16 after each step),
    close to MLX's own bf16 continuation."""
    rng = np.random.default_rng(22)
    dtype = "bfloat16"
    params = {"w": half_bits(rng.standard_normal((3, 7)), dtype)}
    grads = [{"w": half_bits(rng.standard_normal((3, 7)), dtype)} for _ in range(6)]
    config = {"betas": [0.9, 0.99], "eps": 1e-3}
    path, m_opt, mp = mlx_bf16_adam_file(tmp_path, config, 0.01, params, grads[:3])
    raw = mx.load(path)

    d_opt = descent.Adam(learning_rate=0.01, **config)          # float32 policy (the default)
    f_opt = descent.Adam(learning_rate=0.01, **config)          # the float32 reference
    dp = {"w": np_of(bits_of(mp["w"]), dtype).copy()}
    fp = {"w": dp["w"].astype(np.float32)}
    d_opt.init(dp)
    f_opt.init(fp)
    d_opt.load(path)
    f_opt.load(path)
    for k in ("w.m", "w.v"):
        widened = np_of(bits_of(raw[k]), dtype).astype(np.float32)
        assert d_opt.state[k].dtype == np.float32
        assert (d_opt.state[k].view(np.uint32) == widened.view(np.uint32)).all(), k
    for step, g in enumerate(grads[3:], 4):
        d_opt.update(dp, {"w": np_of(g["w"], dtype)})
        f_opt.update(fp, {"w": np_of(g["w"], dtype).astype(np.float32)})
        want = half_bits(fp["w"], dtype)
        assert (bits_of(dp["w"]) == want).all(), f"step {step}: not the rounded float32 step"
        fp["w"] = dp["w"].astype(np.float32)      # the float32 run goes on from the rounding
        for k in ("w.m", "w.v"):
            assert (d_opt.state[k].view(np.uint32) == f_opt.state[k].view(np.uint32)).all()
        mp = m_opt.apply_gradients({"w": mx_of(g["w"], dtype)}, mp)
        mx.eval(mp)
        assert_close_half(dp["w"], mp["w"], dtype, 0.05, f"step {step} vs MLX", floor=0.01)
