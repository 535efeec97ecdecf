import numpy as np
import pytest

torch = pytest.importorskip("torch")
import descent  # noqa: E402
import descent.torch as dt  # noqa: E402
from descent import DescentError  # noqa: E402


def mlp(dtype=torch.float32):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(),
                               torch.nn.Linear(32, 3)).to(dtype)


def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(64, 10, generator=g), torch.randint(0, 3, (64,), generator=g)


def train(model, opt, steps=100, dtype=torch.float32):
    X, y = data()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X.to(dtype)), y).backward()
        opt.step()
    return [p.detach().double().clone() for p in model.parameters()]


def maxdiff(a, b):
    return max((x - y).abs().max().item() for x, y in zip(a, b))


HP = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05)


def test_adamw_matches_torch_adamw():
    """descent's adamw with bias_correction=True is torch.optim.AdamW: both apply the decoupled
    weight decay first (p *= 1 - lr*wd), then p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
    (eps after the bias-corrected sqrt(v)). MLX's default bias_correction=False puts eps on the
    uncorrected sqrt(v) and has no 1/(1-b^t) factors: far from torch (checked below).

    Within float32 rounding over 100 steps: descent's float32 run may differ from torch's float32
    run by at most twice as much as torch's own float32 run differs from its float64 run."""
    m32 = mlp()
    ref32 = train(m32, torch.optim.AdamW(m32.parameters(), **HP))
    m64 = mlp(torch.float64)
    ref64 = train(m64, torch.optim.AdamW(m64.parameters(), **HP), dtype=torch.float64)
    md = mlp()
    got = train(md, dt.AdamW(md.named_parameters(), bias_correction=True, **HP))
    rounding = maxdiff(ref32, ref64)
    assert 0 < rounding < 1e-4
    assert maxdiff(got, ref32) <= 2 * rounding, (maxdiff(got, ref32), rounding)
    # the comparison can fail: MLX's default (no bias correction) is not torch's AdamW
    mn = mlp()
    other = train(mn, dt.AdamW(mn.parameters(), bias_correction=False, **HP))
    assert maxdiff(other, ref32) > 100 * rounding


KIND_OPTIONS = {
    "sgd": dict(lr=0.1, momentum=0.9, weight_decay=0.01), "rmsprop": dict(lr=0.01),
    "adagrad": dict(lr=0.1), "adadelta": dict(lr=1.0), "adam": dict(lr=0.01),
    "adamw": dict(lr=0.01), "adamax": dict(lr=0.01), "lion": dict(lr=0.001),
    "adafactor": dict(), "muon": dict(lr=0.02)}


@pytest.mark.parametrize("kind", list(KIND_OPTIONS))
def test_every_kind_equals_the_numpy_binding(kind):
    """Zero-copy path == the numpy path, bit for bit, for each kind."""
    model = mlp()
    opts = dict(KIND_OPTIONS[kind])
    lr = opts.pop("lr", None)
    topt = dt.DescentOptimizer(model.named_parameters(), kind, lr=lr, **opts)
    params = {n: p.detach().numpy().copy() for n, p in mlp().named_parameters()}
    nopt = getattr(descent, {"sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad",
                             "adadelta": "AdaDelta", "adam": "Adam", "adamw": "AdamW",
                             "adamax": "Adamax", "lion": "Lion", "adafactor": "Adafactor",
                             "muon": "Muon"}[kind])(lr, **opts)
    X, y = data()
    for _ in range(5):
        topt.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
        topt.step()
        nopt.update(params, grads)
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.detach().numpy(), params[n])
    assert set(topt.descent_state()) == set(nopt.state)


def test_muon_adamw_groups_by_name_and_ndim():
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3))
    named = list(model.named_parameters())
    opt = dt.muon_adamw(named, muon={"learning_rate": 0.02}, adamw={"learning_rate": 1e-3},
                        adamw_names=["2.*"])
    train(model, opt, steps=3)
    multi = opt.descent
    assert multi.parameter_group("0.weight") == 0
    assert multi.parameter_group("0.bias") == 1 and multi.parameter_group("2.weight") == 1
    assert "states.0.0.weight.v" in opt.descent_state()


def test_param_groups_map_to_descent_groups():
    m1, m2 = mlp(), mlp()
    p1 = list(m1.parameters())
    opt = dt.DescentOptimizer([{"params": p1[:2], "lr": 0.1, "kind": "sgd"},
                               {"params": p1[2:], "lr": 0.01}], "adam")
    train(m1, opt, steps=4)
    p2 = list(m2.parameters())
    o_a, o_b = dt.SGD(p2[:2], lr=0.1), dt.Adam(p2[2:], lr=0.01)
    X, y = data()
    for _ in range(4):
        o_a.zero_grad()
        o_b.zero_grad()
        torch.nn.functional.cross_entropy(m2(X), y).backward()
        o_a.step()
        o_b.step()
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.01


def test_state_dict_round_trip(tmp_path):
    m1 = mlp()
    o1 = dt.AdamW(m1.parameters(), lr=0.01, bias_correction=True)
    train(m1, o1, steps=5)
    path = tmp_path / "opt.pt"
    torch.save(o1.state_dict(), path)
    m2 = mlp()
    m2.load_state_dict(m1.state_dict())
    o2 = dt.AdamW(m2.parameters(), lr=0.01, bias_correction=True)
    o2.load_state_dict(torch.load(path))
    a = train(m1, o1, steps=5)
    b = train(m2, o2, steps=5)
    assert maxdiff(a, b) == 0
    assert int(o2.descent_state()["step"]) == 10


def test_torch_lr_scheduler_drives_descent():
    m = mlp()
    opt = dt.SGD(m.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    X, y = data()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(X), y).backward()
        opt.step()
        sched.step()
    assert opt.descent.learning_rate == pytest.approx(0.1 * 0.5 ** 2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 3)


def test_descent_schedule_and_callable():
    m = mlp()
    opt = dt.SGD(m.parameters(), lr=descent.schedules.exponential_decay(0.1, 0.5))
    train(m, opt, steps=3)
    assert opt.param_groups[0]["lr"] == descent.schedules.exponential_decay(0.1, 0.5)(2)

    def lr(step):
        if step == 2:
            raise RuntimeError("schedule failed at 2")
        return 0.1

    m = mlp()
    opt = dt.SGD(m.parameters(), lr=lr)
    train(m, opt, steps=2)
    before = [p.detach().clone() for p in m.parameters()]
    with pytest.raises(RuntimeError, match="schedule failed at 2"):
        train(m, opt, steps=1)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))


def test_bad_tensors_refused_and_nothing_changes():
    m = mlp()
    opt = dt.Adam(m.parameters(), lr=0.01)
    train(m, opt, steps=1)
    before = [p.detach().clone() for p in m.parameters()]
    ps = list(m.parameters())
    ps[0].grad = torch.zeros(ps[0].shape[1], ps[0].shape[0]).t()
    with pytest.raises(DescentError, match="contiguous"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))
    with pytest.raises(DescentError, match="complex64"):
        dt.SGD([torch.zeros(3, dtype=torch.complex64, requires_grad=True)], lr=0.1).step()
    with pytest.raises(DescentError) as e:
        dt.DescentOptimizer(m.parameters(), "adamz")
    assert e.value.status == 3
