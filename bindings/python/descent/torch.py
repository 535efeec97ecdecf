"""descent.torch: libdescent as a torch.optim.Optimizer, zero-copy, for CPU float32, float64,
bfloat16 and float16 tensors (half precision: `state_precision="float32"` (default), "master" or
"param", as every descent optimizer; docs/precision.md).

    import descent.torch
    opt = descent.torch.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss.backward(); opt.step(); opt.zero_grad()

Options are MLX's keyword names (betas, eps, weight_decay, bias_correction, momentum, ...);
`lr` is the learning rate (`learning_rate` is accepted too) and is mirrored in every param
group's "lr", so torch.optim.lr_scheduler works; a descent schedule or a Python callable may be
given instead (then "lr" reports the schedule's value after each step).

Param groups map to descent groups: one group is one optimizer; several groups become a descent
MultiOptimizer with one group each (a group may name its own "kind"). muon_adamw() is the
Muon+AdamW split (descent_multi_create_muon_adamw). Parameters may be given with names
(model.named_parameters()): state keys and the muon_adamw name globs then use them.

descent writes the new values straight into each tensor's storage (tensor.data_ptr(), no
copies). As with any in-place optimizer step, do not step between a forward pass and its
backward pass (descent's raw writes do not bump autograd's version counters).
"""
import ctypes
import numbers

import numpy as np
import torch

from . import _core, _lib
from ._core import MultiOptimizer, _CLASSES, muon_adamw as _muon_adamw
from ._errors import DescentError
from .schedules import Schedule

_C = _lib.lib
_CODES = {torch.float32: _lib.FLOAT32, torch.float64: _lib.FLOAT64,
          torch.bfloat16: _lib.BFLOAT16, torch.float16: _lib.FLOAT16}
_RESERVED = ("params", "lr", "learning_rate", "kind", "names")


def _as_numpy(t):
    """A numpy view of a CPU tensor's storage (torch.bfloat16, which numpy lacks, as
    descent.bfloat16 over the same bits)."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(_core.bfloat16)
    return t.numpy()


def _split_named(params):
    """(names or None, tensors) of a list that is either tensors or (name, tensor) pairs."""
    params = list(params)
    if params and isinstance(params[0], tuple):
        return [n for n, _ in params], [t for _, t in params]
    return None, params


class DescentOptimizer(torch.optim.Optimizer):
    """A torch optimizer running descent's `kind` ("sgd", ..., "muon", or "muon+adamw", which
    takes muon={...}, adamw={...}, adamw_names=...)."""

    def __init__(self, params, kind="adamw", lr=None, learning_rate=None, **options):
        if lr is not None and learning_rate is not None:
            raise TypeError("give lr or learning_rate, not both")
        lr = lr if lr is not None else learning_rate
        kinds = set(_CLASSES) | {"muon+adamw"}
        if kind not in kinds:
            raise DescentError(_lib.ERR_UNKNOWN_KIND,
                               f"unknown optimizer kind '{kind}' (known: {', '.join(sorted(kinds))})")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self._explicit = []
        torch_groups = []
        for g in groups:
            g = dict(g)
            names, tensors = _split_named(g["params"])
            g["params"] = tensors
            g["names"] = names
            self._explicit.append({k: v for k, v in g.items() if k not in ("params", "names")})
            torch_groups.append(g)
        self._kind = kind
        self._lr = lr
        self._options = options
        defaults = {"lr": float(lr) if isinstance(lr, numbers.Real) else None, "kind": kind}
        super().__init__(torch_groups, defaults)
        self._opt = None
        self._pushed_lr = None

    # ---- building the descent optimizer on the first step ----
    def _group_lr(self, gi, group):
        explicit = self._explicit[gi]
        if "lr" in explicit or "learning_rate" in explicit:
            return explicit.get("lr", explicit.get("learning_rate"))
        return self._lr

    def _names(self):
        out = []
        for gi, group in enumerate(self.param_groups):
            names = group.get("names")
            for i, p in enumerate(group["params"]):
                out.append(names[i] if names else f"{gi}.{i}")
        if len(set(out)) != len(out):
            raise DescentError(_lib.ERR_DUPLICATE, "two parameters have the same name")
        return out

    def _build(self):
        self._params = [p for g in self.param_groups for p in g["params"]]
        if len({id(p) for p in self._params}) != len(self._params):
            raise DescentError(_lib.ERR_DUPLICATE, "a parameter appears twice")
        names = self._names()
        for n, p in zip(names, self._params):
            self._check_param(n, p)
        if self._kind == "muon+adamw":
            if len(self.param_groups) != 1:
                raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                                   "muon+adamw takes one param group (the split is by name/ndim)")
            opts = dict(self._options)
            muon = dict(opts.pop("muon", {}) or {})
            adamw = dict(opts.pop("adamw", {}) or {})
            names_globs = opts.pop("adamw_names", None)
            if opts:
                raise TypeError(f"muon+adamw: unknown options {sorted(opts)} (use muon=..., "
                                "adamw=..., adamw_names=...)")
            lr = self._lr
            if lr is not None:
                muon.setdefault("learning_rate", lr)
                adamw.setdefault("learning_rate", lr)
            opt = _muon_adamw(muon, adamw, names_globs)
        elif len(self.param_groups) == 1:
            opt = _CLASSES[self._kind](self._lr, **self._options)
        else:
            subs, filters = [], []
            for gi, group in enumerate(self.param_groups):
                explicit = self._explicit[gi]
                kind = explicit.get("kind", self._kind)
                if kind not in _CLASSES:
                    raise DescentError(_lib.ERR_UNKNOWN_KIND, f"param group {gi}: kind '{kind}'")
                opts = dict(self._options) if kind == self._kind else {}
                opts.update({k: v for k, v in explicit.items() if k not in _RESERVED})
                subs.append(_CLASSES[kind](self._group_lr(gi, group), **opts))
            offset = 0
            for gi, group in enumerate(self.param_groups[:-1]):
                n = len(group["params"])
                filters.append(names[offset:offset + n] or ["\x01no parameter\x01"])
                offset += n
            opt = MultiOptimizer(subs, filters)
        for n, p in zip(names, self._params):
            opt._declare(n, _as_numpy(p.detach()))
        opt._arrays = {}
        self._opt = opt
        self._group_handles = (opt.optimizers if isinstance(opt, MultiOptimizer) else [opt])
        if self._kind == "muon+adamw":
            self._group_handles = [opt]     # lr changes apply to both groups
        self._names_list = names
        self._key = None
        self._pushed_lr = [self._group_lr(gi, g) for gi, g in enumerate(self.param_groups)]
        for g, lr in zip(self.param_groups, self._pushed_lr):
            if isinstance(lr, numbers.Real):
                g["lr"] = float(lr)

    @staticmethod
    def _check_param(name, p):
        if not isinstance(p, torch.Tensor) or p.device.type != "cpu" or p.is_sparse:
            raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                               f"parameter '{name}': descent.torch takes dense CPU tensors")
        if p.dtype not in _CODES:
            raise DescentError(_lib.ERR_DTYPE_MISMATCH,
                               f"parameter '{name}': dtype {p.dtype} is not supported "
                               "(float32, float64, bfloat16 or float16)")
        if not p.is_contiguous():
            raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                               f"parameter '{name}': not contiguous (descent updates in place)")

    def _sync_lr(self):
        """Pushes group["lr"] values changed from outside (torch lr schedulers) to descent."""
        for gi, g in enumerate(self.param_groups):
            lr = g.get("lr")
            if isinstance(lr, numbers.Real) and lr != self._pushed_lr[gi] and \
                    isinstance(self._pushed_lr[gi], (numbers.Real, type(None))):
                target = self._opt if self._kind == "muon+adamw" else self._group_handles[gi]
                target._check(_C.descent_optimizer_set_double(target._h, b"learning_rate",
                                                              float(lr)))
                self._pushed_lr[gi] = lr

    def _arguments(self):
        present = [i for i, p in enumerate(self._params) if p.grad is not None]
        pptr = [self._params[i].data_ptr() for i in present]
        gptr = [self._params[i].grad.data_ptr() for i in present]
        key = (present, pptr, gptr)
        if key == self._key:
            return self._args
        for i in present:
            p, g, n = self._params[i], self._params[i].grad, self._names_list[i]
            self._check_param(n, p)
            if g.is_sparse or g.device.type != "cpu":
                raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                                   f"gradient of '{n}': descent.torch takes dense CPU gradients")
            if g.dtype != p.dtype:
                raise DescentError(_lib.ERR_DTYPE_MISMATCH,
                                   f"gradient of '{n}': dtype {g.dtype}, parameter {p.dtype}")
            if g.shape != p.shape:
                raise DescentError(_lib.ERR_SHAPE_MISMATCH,
                                   f"gradient of '{n}': shape {tuple(g.shape)}, parameter "
                                   f"{tuple(p.shape)}")
            if not g.is_contiguous():
                raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                                   f"gradient of '{n}': not contiguous")
        self._arr = (np.asarray(present, dtype=np.uintp),
                     np.asarray([_CODES[self._params[i].dtype] for i in present], np.uint32),
                     np.asarray([self._params[i].numel() for i in present], np.int64),
                     np.asarray(pptr, dtype=np.uintp), np.asarray(gptr, dtype=np.uintp))
        self._args = (len(present),) + tuple(a.ctypes.data for a in self._arr)
        self._key = key
        return self._args

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._opt is None:
            self._build()
        self._sync_lr()
        args = self._arguments()
        _core._take_pending()
        status = _C.descent_optimizer_update_indexed(self._opt._h, *args)
        if status != _lib.OK:
            self._opt._check(status)
        self._report_lr()
        return loss

    def _report_lr(self):
        for gi, g in enumerate(self.param_groups):
            pushed = self._pushed_lr[gi]
            if pushed is not None and not isinstance(pushed, numbers.Real):   # a schedule
                h = self._group_handles[0 if self._kind == "muon+adamw" else gi]
                if not isinstance(h, MultiOptimizer):
                    g["lr"] = h.learning_rate
                else:
                    g["lr"] = h.optimizers[0].learning_rate

    # ---- state ----
    @property
    def descent(self):
        """The underlying descent optimizer (built on the first step or state load)."""
        if self._opt is None:
            self._build()
        return self._opt

    def descent_state(self):
        """descent's state as {MLX tree_flatten key: numpy array} (a copy)."""
        return self.descent.state

    def state_dict(self):
        groups = []
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k not in ("params", "names")}
            d["params"] = list(range(len(g["params"])))
            groups.append(d)
        blob = self.descent.to_bytes()
        return {"state": {"descent": torch.frombuffer(bytearray(blob), dtype=torch.uint8)},
                "param_groups": groups}

    def load_state_dict(self, state_dict):
        blob = state_dict["state"]["descent"]
        if isinstance(blob, torch.Tensor):
            blob = blob.numpy().tobytes()
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("loaded state dict has a different parameter layout")
        self.descent.from_bytes(blob)
        for g, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    g[k] = v
        self._pushed_lr = [g.get("lr") if isinstance(p, numbers.Real) or p is None else p
                           for g, p in zip(self.param_groups, self._pushed_lr)]

    def zero_grad(self, set_to_none=False):
        super().zero_grad(set_to_none=set_to_none)


def _make(kind, doc):
    def __init__(self, params, lr=None, **options):
        DescentOptimizer.__init__(self, params, kind, lr=lr, **options)
    cls = type(_CLASSES[kind].__name__, (DescentOptimizer,), {"__init__": __init__,
                                                                "__doc__": doc})
    return cls


SGD = _make("sgd", "descent's SGD (MLX semantics) as a torch optimizer.")
RMSprop = _make("rmsprop", "descent's RMSprop (MLX semantics) as a torch optimizer.")
Adagrad = _make("adagrad", "descent's Adagrad (MLX semantics) as a torch optimizer.")
AdaDelta = _make("adadelta", "descent's AdaDelta (MLX semantics) as a torch optimizer.")
Adam = _make("adam", "descent's Adam (MLX semantics) as a torch optimizer.")
AdamW = _make("adamw", "descent's AdamW (MLX semantics) as a torch optimizer. To match "
              "torch.optim.AdamW: bias_correction=True (see the README).")
Adamax = _make("adamax", "descent's Adamax (MLX semantics) as a torch optimizer.")
Lion = _make("lion", "descent's Lion (MLX semantics) as a torch optimizer.")
Adafactor = _make("adafactor", "descent's Adafactor (MLX semantics) as a torch optimizer.")
Muon = _make("muon", "descent's Muon (MLX semantics) as a torch optimizer.")


def muon_adamw(params, muon=None, adamw=None, adamw_names=None, lr=None):
    """Muon for matrices, AdamW for the rest (names from named_parameters() decide what
    adamw_names excludes; default "*embed*,*lm_head*,*head*,*norm*")."""
    return DescentOptimizer(params, "muon+adamw", lr=lr, muon=muon or {}, adamw=adamw or {},
                            adamw_names=adamw_names)


__all__ = ["DescentOptimizer", "SGD", "RMSprop", "Adagrad", "AdaDelta", "Adam", "AdamW", "Adamax",
           "Lion", "Adafactor", "Muon", "muon_adamw"]
del ctypes, Schedule
