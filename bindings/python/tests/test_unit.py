import copy
import gc
import threading

import numpy as np
import pytest

import descent
from descent import DescentError


def tree(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {"layers": [{"weight": rng.standard_normal((4, 3)).astype(dtype),
                        "bias": rng.standard_normal(3).astype(dtype)}],
            "scale": np.array(0.5, dtype=dtype)}


def grads_like(t, seed=1):
    rng = np.random.default_rng(seed)
    return {"layers": [{"weight": rng.standard_normal((4, 3)).astype(t["layers"][0]["weight"].dtype),
                        "bias": rng.standard_normal(3).astype(t["layers"][0]["bias"].dtype)}],
            "scale": np.array(0.25, dtype=t["scale"].dtype)}


def snapshot(t):
    return copy.deepcopy(t)


def same(a, b):
    fa, fb = descent.tree_flatten(a), descent.tree_flatten(b)
    return [n for n, _ in fa] == [n for n, _ in fb] and all(
        np.array_equal(x, y) for (_, x), (_, y) in zip(fa, fb))


def test_version_and_kinds():
    assert descent.__version__.startswith("1.")
    assert descent.kinds[:3] == ("sgd", "rmsprop", "adagrad") and "multi" in descent.kinds


def test_update_in_place_and_names():
    p = tree()
    w = p["layers"][0]["weight"]
    before = w.copy()
    opt = descent.AdamW(learning_rate=0.01)
    out = opt.update(p, grads_like(p))
    assert out is p and p["layers"][0]["weight"] is w and not np.array_equal(w, before)
    assert set(opt.state) == {"step", "learning_rate", "layers.0.weight.m", "layers.0.weight.v",
                              "layers.0.bias.m", "layers.0.bias.v", "scale.m", "scale.v"}
    assert opt.state["step"].dtype == np.uint64 and opt.step == 1
    assert opt.state["learning_rate"].dtype == np.float32
    assert opt.state["layers.0.weight.m"].shape == (4, 3)


def test_matches_numpy_sgd():
    p = tree()
    g = grads_like(p)
    ref = p["layers"][0]["weight"] - np.float32(0.1) * g["layers"][0]["weight"]
    descent.SGD(learning_rate=0.1).update(p, g)
    np.testing.assert_array_equal(p["layers"][0]["weight"], ref)


def test_gradient_subset_updates_only_those():
    p = tree()
    s = snapshot(p)
    opt = descent.SGD(learning_rate=0.1)
    opt.update(p, {"layers": [{"bias": np.ones(3, np.float32)}]})
    np.testing.assert_array_equal(p["layers"][0]["weight"], s["layers"][0]["weight"])
    assert not np.array_equal(p["layers"][0]["bias"], s["layers"][0]["bias"])
    assert set(opt.state) >= {"layers.0.bias.v"} and "layers.0.weight.v" not in opt.state


def test_cached_path_follows_new_gradient_arrays():
    p1, p2 = tree(), tree()
    o1, o2 = descent.Adam(learning_rate=0.01), descent.Adam(learning_rate=0.01)
    g_same = grads_like(p1, 5)
    for i in range(4):
        o1.update(p1, grads_like(p1, 10 + i))          # new gradient arrays every step
        g = grads_like(p2, 10 + i)                      # same arrays, new contents
        for (_, dst), (_, src) in zip(descent.tree_flatten(g_same), descent.tree_flatten(g)):
            dst[...] = src
        o2.update(p2, g_same)
    assert same(p1, p2)


def test_unknown_kind_keyword_and_range_errors():
    with pytest.raises(DescentError) as e:
        descent.AdamW(learning_rate=0.1, no_such_option=1)
    assert e.value.status == 4 and "no_such_option" in str(e.value)
    assert e.value.status_name == "DESCENT_ERR_UNKNOWN_KEY"
    with pytest.raises(DescentError) as e:
        descent.Adam(learning_rate=0.1, betas=[1.5, 0.9])
    assert e.value.status == 6 and "betas" in e.value.message
    with pytest.raises(DescentError) as e:
        descent.SGD(learning_rate=0.1, nesterov="yes")
    assert e.value.status == 5


def bad_input_cases():
    p = tree()
    g = grads_like(p)
    cases = {}
    g1 = grads_like(p); g1["layers"][0]["weight"] = g1["layers"][0]["weight"].astype(np.float64)
    cases["dtype"] = (g1, 7, "dtype")
    g2 = grads_like(p); g2["layers"][0]["weight"] = np.zeros((3, 4), np.float32)
    cases["shape"] = (g2, 8, "shape")
    g3 = grads_like(p); g3["layers"][0]["weight"] = np.asfortranarray(np.zeros((4, 3), np.float32))
    cases["fortran"] = (g3, 2, "contiguous")
    g4 = grads_like(p); g4["scale"] = 0.5
    cases["list"] = (g4, 2, "numpy array")
    g5 = grads_like(p); g5["nope"] = np.zeros(3, np.float32)
    cases["unknown"] = (g5, 4, "nope")
    return cases


@pytest.mark.parametrize("case", ["dtype", "shape", "fortran", "list", "unknown"])
@pytest.mark.parametrize("warm", [False, True])
def test_bad_gradients_change_nothing(case, warm):
    p = tree()
    opt = descent.AdamW(learning_rate=0.01)
    if warm:
        opt.update(p, grads_like(p))
    g, status, word = bad_input_cases()[case]
    before, state = snapshot(p), opt.state if warm else None
    with pytest.raises(DescentError) as e:
        opt.update(p, g)
    assert e.value.status == status, e.value
    if word:
        assert word in str(e.value)
    assert same(p, before)
    if warm:
        assert opt.step == 1 and all(np.array_equal(v, opt.state[k]) for k, v in state.items())
    else:
        assert opt.step == 0


def test_bad_parameters_refused():
    p = tree()
    p["layers"][0]["weight"].flags.writeable = False
    with pytest.raises(DescentError, match="read-only"):
        descent.SGD(learning_rate=0.1).update(p, grads_like(p))
    p = tree(dtype=np.int16)
    with pytest.raises(DescentError, match="int16"):
        descent.SGD(learning_rate=0.1).update(p, grads_like(p))
    p = tree()
    p["layers"][0]["weight"] = np.zeros((3, 4), np.float32).T
    with pytest.raises(DescentError, match="C-contiguous"):
        descent.SGD(learning_rate=0.1).update(p, grads_like(tree()))


def test_update_after_state_initialised_with_new_name_changes_nothing():
    p = tree()
    opt = descent.Adam(learning_rate=0.01)
    opt.update(p, grads_like(p))
    p["extra"] = np.ones(2, np.float32)
    g = grads_like(p)
    g["extra"] = np.ones(2, np.float32)
    before = snapshot(p)
    with pytest.raises(DescentError) as e:
        opt.update(p, g)
    assert e.value.status == 9
    assert same(p, before) and opt.step == 1


def test_learning_rate_required():
    p = tree()
    opt = descent.Adam()
    with pytest.raises(DescentError) as e:
        opt.update(p, grads_like(p))
    assert e.value.status == 9 and "learning_rate" in e.value.message
    opt.learning_rate = 0.5
    opt.update(p, grads_like(p))
    assert opt.learning_rate == 0.5


def test_state_round_trip_continues_identically():
    p1 = tree()
    o1 = descent.AdamW(learning_rate=0.01, bias_correction=True)
    for i in range(3):
        o1.update(p1, grads_like(p1, i))
    p2 = snapshot(p1)
    o2 = descent.AdamW(learning_rate=0.01, bias_correction=True)
    o2.init(p2)
    o2.state = o1.state
    assert o2.step == 3
    for i in range(3, 6):
        o1.update(p1, grads_like(p1, i))
        o2.update(p2, grads_like(p2, i))
    assert same(p1, p2)


def test_state_setter_all_or_nothing():
    p = tree()
    opt = descent.Adam(learning_rate=0.01)
    opt.update(p, grads_like(p))
    before = opt.state
    bad = {"layers.0.bias.m": np.full(3, 7, np.float32), "layers.0.bias.v": np.zeros(3, np.float64)}
    with pytest.raises(DescentError) as e:
        opt.state = bad
    assert e.value.status == 7
    after = opt.state
    assert all(np.array_equal(before[k], after[k]) for k in before)
    with pytest.raises(DescentError) as e:
        opt.state = {"no.such.key": np.zeros(1, np.float32)}
    assert e.value.status == 4


def test_save_load(tmp_path):
    p1 = tree()
    o1 = descent.Lion(learning_rate=0.01, weight_decay=0.1)
    for i in range(2):
        o1.update(p1, grads_like(p1, i))
    path = tmp_path / "opt.safetensors"
    o1.save(path)
    assert path.stat().st_size > 0
    p2 = snapshot(p1)
    o2 = descent.Lion(learning_rate=0.01, weight_decay=0.1)
    with pytest.raises(DescentError):       # nothing declared yet
        o2.load(path)
    o2.init(p2)
    o2.load(str(path))
    for i in range(2, 4):
        o1.update(p1, grads_like(p1, i))
        o2.update(p2, grads_like(p2, i))
    assert same(p1, p2)
    # a damaged file is refused and changes nothing
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data[: len(data) // 2]))
    before = o2.state
    with pytest.raises(DescentError) as e:
        o2.load(bad)
    assert e.value.status in (10, 13)
    assert all(np.array_equal(before[k], v) for k, v in o2.state.items())
    with pytest.raises(DescentError) as e:
        o2.load(tmp_path / "missing.safetensors")
    assert e.value.status == 12
    # bytes round trip
    o3 = descent.Lion(learning_rate=0.01, weight_decay=0.1)
    o3.init(snapshot(p2))
    o3.from_bytes(o2.to_bytes())
    assert all(np.array_equal(o3.state[k], v) for k, v in o2.state.items())


def test_schedule_counts_must_be_integral():
    """MLX accepts decay_steps=2.5 and computes with it; descent refuses a non-integer count
    (docs/mlx-semantics.md) with an error naming the field, never by truncating it to 2."""
    s = descent.schedules
    assert s.cosine_decay(1.0, 4.0)(1) == s.cosine_decay(1.0, 4)(1)
    for sched, field in ((s.cosine_decay(1.0, 2.5), "decay_steps"),
                         (s.step_decay(1.0, 0.5, 1.5), "step_size"),
                         (s.linear_schedule(0.0, 1.0, 2.5), "steps"),
                         (s.join_schedules([s.constant(1.0), s.constant(0.5)], [1.5]),
                          "boundaries")):
        with pytest.raises(descent.DescentError, match=field):
            sched(1)
        with pytest.raises(descent.DescentError, match=field):
            descent.SGD(learning_rate=sched)


def test_schedules_match_mlx_docstrings():
    s = descent.schedules
    assert s.exponential_decay(0.1, 0.9)(4) == 0.06560999155044556
    assert s.step_decay(0.1, 0.9, 10)(20) == 0.08099999278783798
    assert s.cosine_decay(0.1, 1000)(4) == 0.09999605268239975
    j = s.join_schedules([s.linear_schedule(0, 0.1, 10), s.cosine_decay(0.1, 200)], [10])
    assert j(11) == 0.09999383240938187
    with pytest.raises(DescentError) as e:
        s.step_decay(0.1, 0.9, 0)(1)
    assert e.value.status == 6
    with pytest.raises(TypeError):
        s.join_schedules([lambda t: 0.1], [])


def test_schedule_in_optimizer_follows_mlx_timing():
    p = tree()
    sched = descent.schedules.exponential_decay(0.1, 0.5)
    opt = descent.SGD(learning_rate=sched)
    assert opt.learning_rate == pytest.approx(0.1)
    for k in range(1, 4):
        opt.update(p, grads_like(p))
        assert opt.learning_rate == sched(k - 1)
    opt2 = descent.SGD(learning_rate="exponential_decay:0.1:0.5")
    opt2.update(tree(), grads_like(p))
    assert opt2.learning_rate == sched(0)


def test_callable_schedule():
    calls = []

    def lr(step):
        calls.append(step)
        return 0.1 / (step + 1)

    p = tree()
    opt = descent.SGD(learning_rate=lr)
    for _ in range(3):
        opt.update(p, grads_like(p))
    assert calls == [0, 0, 1, 2]
    assert opt.learning_rate == np.float32(0.1 / 3)


class Boom(Exception):
    pass


def test_schedule_exception_propagates_and_changes_nothing():
    def lr(step):
        if step == 2:
            raise Boom(f"no rate at step {step}")
        return 0.1

    p = tree()
    opt = descent.SGD(learning_rate=lr)
    opt.update(p, grads_like(p))
    opt.update(p, grads_like(p))
    before, state = snapshot(p), opt.state
    with pytest.raises(Boom, match="no rate at step 2") as e:
        opt.update(p, grads_like(p))
    assert any(f.name == "lr" for f in e.traceback)     # the callback's own frame is there
    assert same(p, before)
    assert all(np.array_equal(v, opt.state[k]) for k, v in state.items())
    # the failure is not sticky: a later error is a DescentError again
    with pytest.raises(DescentError):
        opt.update(p, {"zzz": np.zeros(1, np.float32)})


def test_schedule_exception_at_attach_and_bad_values():
    with pytest.raises(ZeroDivisionError):
        descent.SGD(learning_rate=lambda s: 1 / 0)
    with pytest.raises(DescentError) as e:
        descent.SGD(learning_rate=lambda s: float("nan"))
    assert e.value.status == 6
    with pytest.raises(TypeError):                  # float("x") inside the trampoline
        descent.SGD(learning_rate=lambda s: "x" * 0 or None)


def test_multi_optimizer_groups_and_filters():
    p = tree()
    seen = []

    def is_matrix(name, a):
        seen.append((name, a.shape))
        return a.ndim == 2

    sgd, adam = descent.SGD(learning_rate=0.1), descent.Adam(learning_rate=lambda s: 0.01)
    m = descent.MultiOptimizer([sgd, adam], [is_matrix])
    m.update(p, grads_like(p))
    assert m.parameter_group("layers.0.weight") == 0 and m.parameter_group("scale") == 1
    assert ("layers.0.weight", (4, 3)) in seen
    keys = set(m.state)
    assert "states.1.layers.0.bias.m" in keys and "states.0.step" in keys
    assert adam.learning_rate == pytest.approx(0.01) and adam.step == 1
    with pytest.raises(DescentError):
        adam.update(p, grads_like(p))               # a group is updated through its multi
    with pytest.raises(ValueError):
        descent.MultiOptimizer([descent.SGD(learning_rate=0.1)], [is_matrix])
    with pytest.raises(DescentError):
        descent.MultiOptimizer([sgd, descent.Adam(learning_rate=0.1)], ["*"])   # already used


def test_multi_glob_filter_and_filter_exception():
    p = tree()
    m = descent.MultiOptimizer([descent.SGD(learning_rate=0.1), descent.SGD(learning_rate=0.2)],
                               ["*.bias"])
    m.update(p, grads_like(p))
    assert m.parameter_group("layers.0.bias") == 0 and m.parameter_group("scale") == 1

    def broken(name, a):
        raise KeyError("filter broke on " + name)

    p = tree()
    before = snapshot(p)
    m = descent.MultiOptimizer([descent.SGD(learning_rate=0.1), descent.SGD(learning_rate=0.2)],
                               [broken])
    with pytest.raises(KeyError, match="filter broke"):
        m.update(p, grads_like(p))
    assert same(p, before)


def test_muon_adamw():
    p = tree()
    m = descent.muon_adamw({"learning_rate": 0.02}, {"learning_rate": 0.01, "weight_decay": 0.0})
    m.update(p, grads_like(p))
    assert m.parameter_group("layers.0.weight") == 0 and m.parameter_group("layers.0.bias") == 1
    assert isinstance(m.optimizers[0], descent.Muon) and m.optimizers[1].learning_rate == \
        pytest.approx(0.01)
    m2 = descent.muon_adamw(descent.Muon(learning_rate=0.02),
                            descent.AdamW(learning_rate=lambda s: 0.01), adamw_names=["layers.*"])
    p2 = tree()
    m2.update(p2, grads_like(p2))
    assert m2.parameter_group("layers.0.weight") == 1
    with pytest.raises(DescentError) as e:
        descent.muon_adamw({"learning_rate": 0.02, "bogus": 5})
    assert e.value.status == 4 and "bogus" in e.value.message


def test_clip_grad_norm():
    g = {"a": np.array([3.0, 0.0], np.float32), "b": [np.array([[4.0]], np.float64)]}
    out, norm = descent.clip_grad_norm(g, 1.0)
    assert out is g and norm == pytest.approx(5.0)
    np.testing.assert_allclose(g["a"], [3 / (5 + 1e-6), 0], rtol=1e-6)
    np.testing.assert_allclose(g["b"][0], [[4 / (5 + 1e-6)]], rtol=1e-12)
    g2 = {"a": np.array([0.3, 0.4], np.float32)}
    _, n2 = descent.clip_grad_norm(g2, 1.0)
    assert n2 == pytest.approx(0.5) and np.array_equal(g2["a"], np.array([0.3, 0.4], np.float32))
    with pytest.raises(DescentError) as e:
        descent.clip_grad_norm(g2, -1.0)
    assert e.value.status == 6 and np.array_equal(g2["a"], np.array([0.3, 0.4], np.float32))
    ro = np.ones(2, np.float32)
    ro.flags.writeable = False
    with pytest.raises(DescentError, match="writeable"):
        descent.clip_grad_norm({"x": ro}, 1.0)


def test_flat_update_matches_tree_update():
    p1, p2 = tree(), tree()
    o1 = descent.AdamW(learning_rate=0.01)
    o1.init(p1)
    o2 = descent.AdamW(learning_rate=0.01)
    o2.init(p2)
    pb, gb = o2.flat_buffer(), o2.flat_buffer()
    pv, gv = o2.flat_views(pb), o2.flat_views(gb)
    for n, a in descent.tree_flatten(p2):
        pv[n][...] = a
    for i in range(3):
        g = grads_like(p1, i)
        o1.update(p1, g)
        for n, a in descent.tree_flatten(g):
            gv[n][...] = a
        o2.update_flat(pb, gb)
    for n, a in descent.tree_flatten(p1):
        np.testing.assert_array_equal(pv[n], a)
    with pytest.raises(DescentError):
        o2.update_flat(pb, gb[:-64])


def test_threads_on_own_handles():
    def run(out, i):
        p = tree()
        opt = descent.AdamW(learning_rate=lambda s: 0.01 / (s + 1))
        for k in range(200):
            opt.update(p, grads_like(p, k % 5))
        out[i] = p

    ref = {}
    run(ref, 0)
    out = {}
    ts = [threading.Thread(target=run, args=(out, i)) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert all(same(out[i], ref[0]) for i in range(4))


def test_handles_are_freed():
    import weakref
    opt = descent.SGD(learning_rate=lambda s: 0.1)
    r = weakref.ref(opt)
    del opt
    gc.collect()
    assert r() is None


def test_float64_parameters():
    p = tree(dtype=np.float64)
    opt = descent.Adamax(learning_rate=0.5)
    opt.update(p, grads_like(p))
    assert opt.state["layers.0.weight.m"].dtype == np.float64
