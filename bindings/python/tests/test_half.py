"""bfloat16 and float16 through the Python binding: dtypes accepted, state dtypes per policy, the
two bfloat16 representations, bad input, clip, flat form, and descent.torch.

References: the float32 policy is, by definition, the float32 step on the widened values with the
parameter rounded once (docs/precision.md); the expected bits here come from a float32 optimizer
run on the same values and rounded with numpy/ml_dtypes' round-to-nearest-even, independent of
descent's own conversion code.
"""
import numpy as np
import pytest

import descent
from descent import DescentError
from descent import _lib

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
HALF = {"bfloat16": BF16, "float16": np.dtype(np.float16)}


def rounded_float32_run(kind, options, dtype, p0, grads):
    """The float32 policy's definition: a float32 optimizer on the widened values, the parameter
    rounded to `dtype` after each step and widened again."""
    f = getattr(descent, kind)(**options)
    p = p0.astype(np.float32)
    for g in grads:
        f.update({"w": p}, {"w": g.astype(np.float32)})
        p[...] = p.astype(dtype).astype(np.float32)
    return p.astype(dtype), f


@pytest.mark.parametrize("dtype", list(HALF))
@pytest.mark.parametrize("kind", ["SGD", "Adam", "AdamW", "Lion", "RMSprop"])
def test_float32_policy_is_the_rounded_float32_run(kind, dtype):
    rng = np.random.default_rng(3)
    dt = HALF[dtype]
    p0 = rng.standard_normal((5, 7)).astype(dt)
    grads = [rng.standard_normal((5, 7)).astype(dt) for _ in range(4)]
    options = {"learning_rate": 0.01}
    h = getattr(descent, kind)(**options)
    p = p0.copy()
    for g in grads:
        h.update({"w": p}, {"w": g})
    want, f = rounded_float32_run(kind, options, dt, p0, grads)
    assert p.dtype == dt
    assert (p.view(np.uint16) == want.view(np.uint16)).all()
    assert (p.view(np.uint16) != p0.view(np.uint16)).any()        # it moved
    for k, v in f.state.items():
        if k.startswith("w."):
            assert h.state[k].dtype == np.float32
            assert (h.state[k].view(np.uint32) == v.view(np.uint32)).all()


@pytest.mark.parametrize("dtype", list(HALF))
def test_state_dtypes_per_policy(dtype):
    dt = HALF[dtype]
    p = {"w": np.ones((2, 3), dt)}
    g = {"w": np.full((2, 3), 0.5, dt)}
    expect = {"float32": ({"w.m": np.float32, "w.v": np.float32}),
              "master": ({"w.m": np.float32, "w.v": np.float32, "w.master": np.float32}),
              "param": ({"w.m": dt, "w.v": dt})}
    for policy, slots in expect.items():
        opt = descent.Adam(learning_rate=0.1, state_precision=policy)
        opt.update({"w": p["w"].copy()}, g)
        st = opt.state
        assert {k: v.dtype for k, v in st.items() if k.startswith("w.")} == \
            {k: np.dtype(v) for k, v in slots.items()}, policy
        assert opt.hyperparameters["state_precision"] == policy


def test_bfloat16_bits_representation_equals_ml_dtypes():
    """descent.bfloat16_bits (no ml_dtypes needed) carries the same bits through the same step."""
    rng = np.random.default_rng(4)
    p0 = rng.standard_normal(9).astype(BF16)
    g = rng.standard_normal(9).astype(BF16)
    a, b = p0.copy(), p0.view(np.uint16).copy().view(descent.bfloat16_bits)
    gb = g.view(np.uint16).view(descent.bfloat16_bits)
    oa = descent.AdamW(learning_rate=0.01, state_precision="param")
    ob = descent.AdamW(learning_rate=0.01, state_precision="param")
    for _ in range(3):
        oa.update({"w": a}, {"w": g})
        ob.update({"w": b}, {"w": gb})
    assert (a.view(np.uint16) == b.view(np.uint16)).all()
    assert descent.bfloat16 == BF16                      # ml_dtypes is installed here
    assert ob.state["w.m"].dtype == BF16
    # state assignment takes either representation (same bits) and refuses other dtypes
    m = oa.state["w.m"]
    ob.state = {"w.m": m.view(np.uint16).view(descent.bfloat16_bits)}
    assert (ob.state["w.m"].view(np.uint16) == m.view(np.uint16)).all()
    with pytest.raises(DescentError) as e:
        ob.state = {"w.m": m.astype(np.float16)}
    assert e.value.status == _lib.ERR_DTYPE_MISMATCH


def test_bad_half_input_changes_nothing():
    opt = descent.Adam(learning_rate=0.1)
    p = {"w": np.ones(4, np.float16)}
    opt.update(p, {"w": np.ones(4, np.float16)})
    before = (p["w"].copy(), opt.to_bytes())
    for bad in (np.ones(4, BF16), np.ones(4, np.float32), np.ones(4, np.int16)):
        with pytest.raises(DescentError) as e:
            opt.update(p, {"w": bad})
        assert e.value.status == _lib.ERR_DTYPE_MISMATCH
    with pytest.raises(DescentError) as e:
        opt.update({"w": np.ones(4, np.uint16)}, {"w": np.ones(4, np.uint16)})
    assert e.value.status == _lib.ERR_DTYPE_MISMATCH and "bfloat16" in e.value.message
    with pytest.raises(DescentError) as e:                     # unknown policy
        descent.Adam(learning_rate=0.1, state_precision="bfloat16")
    with pytest.raises(DescentError) as e:                     # policy fixed after init
        opt.set(state_precision="param")
    assert (p["w"] == before[0]).all() and opt.to_bytes() == before[1]
    assert opt.hyperparameters["state_precision"] == "float32"


def test_clip_grad_norm_and_flat_form_in_half_precision():
    g = {"a": np.array([3.0, 4.0], np.float16), "b": np.array([0.0, 12.0], BF16)}
    g, norm = descent.clip_grad_norm(g, max_norm=6.5)
    assert norm == 13.0
    assert g["a"].tolist() == [1.5, 2.0] and g["b"].tolist() == [0.0, 6.0]
    opt = descent.SGD(learning_rate=0.5)
    opt.init({"x": np.zeros(3, BF16), "y": np.zeros(2, np.float16)})
    params, grads = opt.flat_buffer(), opt.flat_buffer()
    pv, gv = opt.flat_views(params), opt.flat_views(grads)
    assert pv["x"].dtype == BF16 and pv["y"].dtype == np.float16
    gv["x"][:] = [1, 2, 4]
    gv["y"][:] = [-2, 0.25]
    opt.update_flat(params, grads)
    assert pv["x"].tolist() == [-0.5, -1.0, -2.0] and pv["y"].tolist() == [1.0, -0.125]


# ---- descent.torch ----------------------------------------------------------------------------

torch = pytest.importorskip("torch")
import descent.torch as dtorch  # noqa: E402

TORCH = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@pytest.mark.parametrize("policy", ["float32", "master", "param"])
@pytest.mark.parametrize("dtype", list(TORCH))
def test_torch_half_parameters_equal_the_numpy_binding(dtype, policy):
    rng = np.random.default_rng(8)
    p0 = rng.standard_normal((4, 6)).astype(HALF[dtype])
    grads = [rng.standard_normal((4, 6)).astype(HALF[dtype]) for _ in range(3)]

    def t_of(a):   # a torch tensor with the same bits
        return torch.from_numpy(a.view(np.int16).copy()).view(TORCH[dtype])

    w = torch.nn.Parameter(t_of(p0))
    opt = dtorch.AdamW([w], lr=0.01, weight_decay=0.1, state_precision=policy)
    ref = descent.AdamW(learning_rate=0.01, weight_decay=0.1, state_precision=policy)
    p = p0.copy()
    for g in grads:
        w.grad = t_of(g)
        opt.step()
        ref.update({"w": p}, {"w": g})
    got = w.detach().view(torch.int16).numpy().view(np.uint16)
    assert (got == p.view(np.uint16)).all()
    assert (got != p0.view(np.uint16)).any()
    st = opt.descent_state()
    assert st["0.0.m"].dtype == (np.dtype(np.float32) if policy != "param" else HALF[dtype])
    assert ("0.0.master" in st) == (policy == "master")
    # state_dict round trip
    sd = opt.state_dict()
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = dtorch.AdamW([w2], lr=0.01, weight_decay=0.1, state_precision=policy)
    opt2.load_state_dict(sd)
    w.grad = w2.grad = t_of(grads[0])
    opt.step()
    opt2.step()
    assert torch.equal(w.detach().view(torch.int16), w2.detach().view(torch.int16))

