"""Optimizers shaped like mlx.optimizers, over libdescent's C ABI (ctypes + numpy)."""
import ctypes
import json
import math
import numbers
import operator
import os
import threading
import weakref

import numpy as np

from . import _lib
from ._errors import DescentError
from .schedules import Schedule

_C = _lib.lib
# bfloat16: numpy has no such dtype. `bfloat16_bits` is a zero-dependency stand-in, a one-field
# structured dtype over the raw uint16 bits (`a.view(descent.bfloat16_bits)` marks a uint16 array
# as bfloat16; `.view(np.uint16)` reads the bits back). With ml_dtypes installed, its bfloat16 is
# accepted too and is what `descent.bfloat16` names (and what the state comes back as).
bfloat16_bits = np.dtype([("bfloat16", "<u2")])
try:
    import ml_dtypes as _ml_dtypes
    bfloat16 = np.dtype(_ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - depends on the environment
    bfloat16 = bfloat16_bits
_DTYPES = {np.dtype(np.float32): _lib.FLOAT32, np.dtype(np.float64): _lib.FLOAT64,
           np.dtype(np.float16): _lib.FLOAT16, bfloat16_bits: _lib.BFLOAT16,
           bfloat16: _lib.BFLOAT16}
_NP_OF = {_lib.FLOAT32: np.float32, _lib.FLOAT64: np.float64, _lib.UINT64: np.uint64,
          _lib.FLOAT16: np.float16, _lib.BFLOAT16: bfloat16}
_SUPPORTED = "float32, float64, float16 or bfloat16"

# Exceptions raised by Python callbacks, per OS thread. Callbacks run synchronously on the thread
# that made the C call, so the trampoline parks the exception here, returns DESCENT_ERR_CALLBACK,
# and the binding re-raises it (with its traceback) once the C call has failed.
_pending = threading.local()


def _take_pending():
    exc = getattr(_pending, "exc", None)
    _pending.exc = None
    return exc


def _write_message(buf, capacity, text):
    if buf and capacity:
        data = text.encode("utf-8", errors="replace")[: capacity - 1]
        ctypes.memmove(buf, data + b"\0", len(data) + 1)


def _callback_failed(exc, what):
    # The first exception wins if a callback runs again before the C call returns.
    if getattr(_pending, "exc", None) is None:
        _pending.exc = exc
    return f"{what} raised {type(exc).__name__}: {exc}"


def _raise_status(status, message):
    exc = _take_pending()
    if exc is not None:
        raise exc
    raise DescentError(status, message)


def _json_value(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json_value(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, Schedule):
        return dict(v)
    if v is None or isinstance(v, (str, dict)):
        return v
    raise TypeError(f"cannot pass {type(v).__name__} {v!r} as a hyperparameter value")


# ---- trees (MLX's tree_flatten naming) ------------------------------------------------------------

def tree_flatten(tree, prefix=""):
    """[(name, leaf)] in MLX's tree_flatten order and naming ("layers.0.weight")."""
    out = []

    def walk(t, path):
        if isinstance(t, dict):
            for k, v in t.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(t, (list, tuple)):
            for i, v in enumerate(t):
                walk(v, f"{path}.{i}" if path else str(i))
        else:
            out.append((path, t))

    walk(tree, prefix)
    return out


def _pair(grads, params, gl, pl):
    """Walks the gradient tree and the parameter tree together (no names): appends the gradient
    leaves to gl and the matching parameter leaves to pl. Returns False if params lacks a path.
    (The hot path of every update: array leaves are handled inline, without a call.)"""
    ndarray = np.ndarray
    if isinstance(grads, dict):
        if not isinstance(params, dict):
            return False
        items = grads.items()
        get = params.get
        is_dict = True
    elif isinstance(grads, (list, tuple)):
        if not isinstance(params, (list, tuple)) or len(params) < len(grads):
            return False
        items = zip(range(len(grads)), grads)
        get = params.__getitem__
        is_dict = False
    else:
        gl.append(grads)
        pl.append(params)
        return True
    for k, g in items:
        p = get(k, _MISSING) if is_dict else get(k)
        if type(g) is ndarray:
            if p is _MISSING:
                return False
            gl.append(g)
            pl.append(p)
        elif p is _MISSING or not _pair(g, p, gl, pl):
            return False
    return True


_MISSING = object()


def _describe(a):
    if isinstance(a, np.ndarray):
        return f"a {a.dtype} array of shape {a.shape}"
    return f"a {type(a).__name__}"


def _check_param(name, p):
    if not isinstance(p, np.ndarray):
        raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                           f"parameter '{name}': expected a numpy array, got {_describe(p)}")
    if p.dtype not in _DTYPES:
        raise DescentError(_lib.ERR_DTYPE_MISMATCH,
                           f"parameter '{name}': dtype {p.dtype} is not supported "
                           f"({_SUPPORTED})")
    if not p.flags.c_contiguous:
        raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                           f"parameter '{name}': the array is not C-contiguous (updates happen "
                           "in place, so a copy would not be updated; pass a contiguous array)")
    if not p.flags.writeable:
        raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                           f"parameter '{name}': the array is read-only (updates happen in place)")
    if p.ndim > _lib.MAX_NDIM:
        raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                           f"parameter '{name}': {p.ndim} dimensions (at most {_lib.MAX_NDIM})")


def _check_grad(name, g, p):
    if not isinstance(g, np.ndarray):
        raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                           f"gradient '{name}': expected a numpy array, got {_describe(g)}")
    if g.dtype != p.dtype:
        raise DescentError(_lib.ERR_DTYPE_MISMATCH,
                           f"gradient '{name}': dtype {g.dtype}, the parameter is {p.dtype}")
    if g.shape != p.shape:
        raise DescentError(_lib.ERR_SHAPE_MISMATCH,
                           f"gradient '{name}': shape {g.shape}, the parameter is {p.shape}")
    if not g.flags.c_contiguous:
        raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                           f"gradient '{name}': the array is not C-contiguous "
                           "(np.ascontiguousarray makes a contiguous copy)")


def _addr(a):
    return a.__array_interface__["data"][0]


class _UpdateCache:
    """The ctypes arguments of the last update, reused while the same arrays come back."""
    __slots__ = ("params", "grads", "n", "indices", "dtypes", "numels", "pptr", "gptr", "args")

    def __init__(self, params, grads, indices, dtypes, numels):
        self.params = params                                  # strong refs (the model's arrays)
        self.grads = [weakref.ref(g) for g in grads]          # weak: gradients come and go
        self.n = len(params)
        self.indices = np.asarray(indices, dtype=np.uintp)
        self.dtypes = np.asarray(dtypes, dtype=np.uint32)
        self.numels = np.asarray(numels, dtype=np.int64)
        self.pptr = np.fromiter((_addr(p) for p in params), dtype=np.uintp, count=self.n)
        self.gptr = np.fromiter((_addr(g) for g in grads), dtype=np.uintp, count=self.n)
        self.args = (self.n, self.indices.ctypes.data, self.dtypes.ctypes.data,
                     self.numels.ctypes.data, self.pptr.ctypes.data, self.gptr.ctypes.data)

    def same_grads(self, gl):
        for w, g in zip(self.grads, gl):
            if w() is not g:
                return False
        return True


class Optimizer:
    """Base class: one libdescent optimizer handle, configured by MLX's keyword names."""

    kind = None

    def __init__(self, learning_rate=None, **options):
        if self.kind is None:
            raise TypeError("use one of descent's optimizer classes (AdamW, SGD, ...)")
        self._h = None
        self._owner = None          # the MultiOptimizer whose group this is (borrowed handle)
        self._schedule_thunk = None
        self._lr = learning_rate
        self._options = dict(options)
        self._cache = None
        self._declared = {}         # name -> (index, dtype code, shape) of declared parameters
        self._arrays = {}           # name -> array, until init (filters may look at it)
        handle = ctypes.c_void_p()
        err = ctypes.create_string_buffer(_lib.ERROR_CAPACITY)
        status = _C.descent_optimizer_create(self.kind.encode(), ctypes.byref(handle), err,
                                             len(err))
        if status != _lib.OK:
            raise DescentError(status, err.value.decode(errors="replace"))
        self._h = handle
        self._configure(learning_rate, self._options)

    # ---- plumbing ----
    def _check(self, status):
        if status != _lib.OK:
            msg = _C.descent_optimizer_last_error(self._h)
            _raise_status(status, msg.decode(errors="replace") if msg else "")

    def __del__(self):
        h = getattr(self, "_h", None)
        if h and getattr(self, "_owner", None) is None:
            self._h = None
            _C.descent_optimizer_free(h)

    def _configure(self, learning_rate, options):
        cfg = {k: _json_value(v) for k, v in options.items()}
        if isinstance(learning_rate, (numbers.Real, Schedule)):
            cfg["learning_rate"] = _json_value(learning_rate)
        if cfg:
            self._check(_C.descent_optimizer_configure_json(self._h, json.dumps(cfg).encode()))
        if isinstance(learning_rate, str):
            self._check(_C.descent_optimizer_set_schedule(self._h, learning_rate.encode()))
        elif learning_rate is not None and callable(learning_rate) and \
                not isinstance(learning_rate, Schedule):
            self._set_schedule_callback(learning_rate)
        elif learning_rate is not None and not isinstance(learning_rate, (numbers.Real, Schedule)):
            raise TypeError("learning_rate must be a number, a descent.schedules schedule, a "
                            f"schedule string or a callable, got {learning_rate!r}")

    def _set_schedule_callback(self, fn):
        def trampoline(step, _user_data, value, message, capacity):
            try:
                v = fn(step)
                value[0] = float(v)
                return _lib.OK
            except BaseException as e:  # noqa: B902 - must never cross into C
                _write_message(message, capacity, _callback_failed(e, "learning-rate schedule"))
                return _lib.ERR_CALLBACK

        thunk = _lib.SCHEDULE_FN(trampoline)
        _take_pending()
        self._check(_C.descent_optimizer_set_schedule_callback(self._h, thunk, None, None))
        # The library holds the thunk now (and released the previous one): keep it alive with
        # the handle. free_user_data is not needed: user_data is NULL.
        self._schedule_thunk = thunk

    def _config_json(self):
        cfg = {k: _json_value(v) for k, v in self._options.items()}
        if isinstance(self._lr, (numbers.Real, Schedule)):
            cfg["learning_rate"] = _json_value(self._lr)
        return json.dumps(cfg)

    def _rebind(self, handle, owner):
        """Makes this object a view of a group handle owned by a MultiOptimizer."""
        old = self._h
        self._h = handle
        self._owner = owner
        self._schedule_thunk = None
        lr = self._lr
        if isinstance(lr, str) or (callable(lr) and not isinstance(lr, Schedule)):
            self._configure(lr, {})
        if old:
            _C.descent_optimizer_free(old)

    # ---- hyperparameters ----
    @property
    def learning_rate(self):
        v = ctypes.c_double()
        self._check(_C.descent_optimizer_get_double(self._h, b"learning_rate", ctypes.byref(v)))
        return v.value

    @learning_rate.setter
    def learning_rate(self, value):
        """A number sets the rate (an attached schedule overwrites it at the next update, as in
        MLX); a schedule or a callable replaces the schedule."""
        if isinstance(value, numbers.Real):
            self._check(_C.descent_optimizer_set_double(self._h, b"learning_rate", float(value)))
        else:
            self._configure(value, {})
        self._lr = value

    @property
    def num_threads(self):
        """This optimizer's thread count (libdescent 1.1): 0, the default, follows the
        process-wide count (descent.set_num_threads). Not a hyperparameter: not saved in
        checkpoints. On a MultiOptimizer, setting it sets every group. A negative count or one
        above the library's maximum raises DescentError and changes nothing."""
        out = ctypes.c_size_t()
        self._check(_lib.since_1_1("descent_optimizer_get_num_threads")(self._h,
                                                                        ctypes.byref(out)))
        return out.value

    @num_threads.setter
    def num_threads(self, n):
        n = _thread_count(n)
        self._check(_lib.since_1_1("descent_optimizer_set_num_threads")(self._h, n))

    def set(self, **options):
        """Sets hyperparameters by MLX's names, all or nothing (e.g. opt.set(weight_decay=0.1))."""
        cfg = {k: _json_value(v) for k, v in options.items()}
        self._check(_C.descent_optimizer_configure_json(self._h, json.dumps(cfg).encode()))
        self._options.update(options)

    @property
    def hyperparameters(self):
        """{name: value} of every hyperparameter this kind knows (None for unset ones)."""
        n = ctypes.c_size_t()
        self._check(_C.descent_optimizer_hyperparameter_count(self._h, ctypes.byref(n)))
        out = {}
        for i in range(n.value):
            name = ctypes.c_char_p()
            self._check(_C.descent_optimizer_hyperparameter_name(self._h, i, ctypes.byref(name)))
            out[name.value.decode()] = self._get(name.value)
        return out

    def _get(self, key):
        t = ctypes.c_uint()
        self._check(_C.descent_optimizer_hyperparameter_type(self._h, key, ctypes.byref(t)))
        t = t.value
        if t == _lib.VALUE_DOUBLE:
            v = ctypes.c_double()
            self._check(_C.descent_optimizer_get_double(self._h, key, ctypes.byref(v)))
            return v.value
        if t == _lib.VALUE_INT:
            v = ctypes.c_int64()
            self._check(_C.descent_optimizer_get_int(self._h, key, ctypes.byref(v)))
            return v.value
        if t == _lib.VALUE_BOOL:
            v = ctypes.c_bool()
            self._check(_C.descent_optimizer_get_bool(self._h, key, ctypes.byref(v)))
            return v.value
        if t == _lib.VALUE_DOUBLE_ARRAY:
            n = ctypes.c_size_t()
            self._check(_C.descent_optimizer_get_doubles(self._h, key, None, 0, ctypes.byref(n)))
            arr = (ctypes.c_double * n.value)()
            self._check(_C.descent_optimizer_get_doubles(self._h, key, arr, n.value,
                                                         ctypes.byref(n)))
            return list(arr)
        if t == _lib.VALUE_STRING:
            n = ctypes.c_size_t()
            self._check(_C.descent_optimizer_get_string(self._h, key, None, 0, ctypes.byref(n)))
            buf = ctypes.create_string_buffer(n.value + 1)
            self._check(_C.descent_optimizer_get_string(self._h, key, buf, len(buf),
                                                        ctypes.byref(n)))
            return buf.value.decode()
        return None

    # ---- parameters ----
    def _declare(self, name, p):
        _check_param(name, p)
        shape = (ctypes.c_int64 * max(p.ndim, 1))(*p.shape)
        code = _DTYPES[p.dtype]
        _take_pending()
        self._check(_C.descent_optimizer_add_parameter(self._h, name.encode(), code, p.ndim,
                                                       shape))
        self._declared[name] = (len(self._declared), code, p.shape)
        self._arrays[name] = p

    def init(self, parameters):
        """Declares every array of the tree (MLX's tree_flatten names) and allocates the state,
        as MLX's Optimizer.init. Needed before load() when no update has run yet."""
        leaves = tree_flatten(parameters)
        for name, p in leaves:                 # check everything before declaring anything
            _check_param(name, p)
        for name, p in leaves:
            if name not in self._declared:
                self._declare(name, p)
        _take_pending()
        self._check(_C.descent_optimizer_init(self._h))
        self._arrays = {}

    def update(self, parameters, gradients):
        """One step (MLX's apply_gradients): updates the arrays of `parameters` in place from
        the same-named arrays of `gradients`. On the first update the gradients' names are
        declared (as MLX initialises its state from the gradient tree)."""
        if self._owner is not None:
            raise DescentError(_lib.ERR_INVALID_STATE,
                               "this optimizer is a group of a MultiOptimizer: update that one")
        gl, pl = [], []
        c = self._cache
        if not _pair(gradients, parameters, gl, pl):
            self._slow_pairs(parameters, gradients)  # raises with the path
        if c is not None and len(pl) == c.n and all(map(operator.is_, pl, c.params)):
            if not c.same_grads(gl):
                for i, (g, p) in enumerate(zip(gl, pl)):
                    if type(g) is not np.ndarray or g.dtype is not p.dtype or \
                            g.shape != p.shape or not g.flags.c_contiguous:
                        names = [n for n, _ in tree_flatten(gradients)]
                        _check_grad(names[i], g, p)
                c.gptr[:] = [_addr(g) for g in gl]
                c.grads = [weakref.ref(g) for g in gl]
        else:
            c = self._build_cache(parameters, gradients)
        _take_pending()
        status = _C.descent_optimizer_update_indexed(self._h, *c.args)
        if status != _lib.OK:
            self._check(status)
        if self._arrays:
            self._arrays = {}
        return parameters

    apply_gradients = None  # set below (MLX's name: apply_gradients(gradients, parameters))

    def _slow_pairs(self, parameters, gradients):
        flat_p = dict(tree_flatten(parameters))
        for name, _ in tree_flatten(gradients):
            if name not in flat_p:
                raise DescentError(_lib.ERR_UNKNOWN_KEY,
                                   f"gradient '{name}' has no parameter of that name")
        raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                           "the gradient tree does not have the parameter tree's structure")

    def _build_cache(self, parameters, gradients):
        flat_p = dict(tree_flatten(parameters))
        names, gl, pl = [], [], []
        for name, g in tree_flatten(gradients):
            p = flat_p.get(name, _MISSING)
            if p is _MISSING:
                raise DescentError(_lib.ERR_UNKNOWN_KEY,
                                   f"gradient '{name}' has no parameter of that name")
            _check_param(name, p)
            _check_grad(name, g, p)
            names.append(name)
            gl.append(g)
            pl.append(p)
        if len(set(map(id, pl))) != len(pl):
            raise DescentError(_lib.ERR_DUPLICATE, "the same array is given for two parameters")
        new = [(n, p) for n, p in zip(names, pl) if n not in self._declared]
        for n, p in new:
            self._declare(n, p)
        indices, dtypes, numels = [], [], []
        for n, p in zip(names, pl):
            idx, code, shape = self._declared[n]
            if shape != p.shape or code != _DTYPES[p.dtype]:
                raise DescentError(_lib.ERR_SHAPE_MISMATCH if shape != p.shape
                                   else _lib.ERR_DTYPE_MISMATCH,
                                   f"parameter '{n}': {p.dtype} {p.shape} given, declared "
                                   f"{np.dtype(_NP_OF[code])} {shape}")
            indices.append(idx)
            dtypes.append(code)
            numels.append(p.size)
        self._cache = _UpdateCache(pl, gl, indices, dtypes, numels)
        return self._cache

    def _initialized(self):
        n = ctypes.c_size_t()
        self._check(_C.descent_optimizer_state_count(self._h, ctypes.byref(n)))
        return n.value > 2

    # ---- the flat form ----
    def flat_layout(self):
        """[(name, byte offset)] of the declared parameters and the total size in bytes of the
        flat layout (descent_optimizer_flat_offset / flat_size)."""
        out = []
        for name, (idx, _, _) in self._declared.items():
            off = ctypes.c_size_t()
            self._check(_C.descent_optimizer_flat_offset(self._h, idx, ctypes.byref(off)))
            out.append((name, off.value))
        size = ctypes.c_size_t()
        self._check(_C.descent_optimizer_flat_size(self._h, ctypes.byref(size)))
        return out, size.value

    def flat_views(self, buffer):
        """{name: array view} of each declared parameter inside a flat buffer (a uint8 array of
        flat_layout()'s size, e.g. from flat_buffer())."""
        layout, size = self.flat_layout()
        if not isinstance(buffer, np.ndarray) or buffer.nbytes != size or \
                not buffer.flags.c_contiguous:
            raise DescentError(_lib.ERR_SHAPE_MISMATCH,
                               f"flat buffer: a contiguous array of {size} bytes is needed")
        raw = buffer.view(np.uint8).reshape(-1)
        views = {}
        for name, off in layout:
            _, code, shape = self._declared[name]
            dt = np.dtype(_NP_OF[code])
            n = int(np.prod(shape, dtype=np.int64))
            views[name] = raw[off:off + n * dt.itemsize].view(dt).reshape(shape)
        return views

    def flat_buffer(self):
        """A zeroed, 64-byte aligned uint8 array of the flat layout's size."""
        _, size = self.flat_layout()
        raw = np.zeros(size + 64, dtype=np.uint8)
        start = (-raw.ctypes.data) % 64
        return raw[start:start + size]

    def update_flat(self, params, grads):
        """Updates every declared parameter from two flat buffers (descent_optimizer_update_flat):
        one C call, two pointers."""
        for what, b, writeable in (("params", params, True), ("grads", grads, False)):
            if not isinstance(b, np.ndarray) or not b.flags.c_contiguous or \
                    (writeable and not b.flags.writeable):
                raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                                   f"update_flat: {what} must be a C-contiguous"
                                   f"{' writeable' if writeable else ''} numpy array")
        if params.nbytes != grads.nbytes:
            raise DescentError(_lib.ERR_SHAPE_MISMATCH,
                               f"update_flat: params has {params.nbytes} bytes, grads "
                               f"{grads.nbytes}")
        _take_pending()
        self._check(_C.descent_optimizer_update_flat(self._h, _addr(params), _addr(grads),
                                                     params.nbytes))

    # ---- state ----
    @property
    def step(self):
        return int(self.state_value("step"))

    def state_keys(self):
        n = ctypes.c_size_t()
        self._check(_C.descent_optimizer_state_count(self._h, ctypes.byref(n)))
        keys = []
        for i in range(n.value):
            k = ctypes.c_char_p()
            self._check(_C.descent_optimizer_state_key(self._h, i, ctypes.byref(k)))
            keys.append(k.value.decode())
        return keys

    def state_value(self, key):
        kb = key.encode()
        dt = ctypes.c_uint()
        nd = ctypes.c_size_t()
        shape = (ctypes.c_int64 * _lib.MAX_NDIM)()
        self._check(_C.descent_optimizer_state_info(self._h, kb, ctypes.byref(dt),
                                                    ctypes.byref(nd), shape, _lib.MAX_NDIM))
        if dt.value not in _NP_OF:
            raise DescentError(_lib.ERR_UNSUPPORTED,
                               f"state '{key}': dtype code {dt.value} unknown to this binding")
        out = np.empty(tuple(shape[:nd.value]), dtype=_NP_OF[dt.value])
        self._check(_C.descent_optimizer_state_get(self._h, kb, dt.value, out.ctypes.data,
                                                   out.size))
        return out

    @property
    def state(self):
        """A copy of the state: {MLX tree_flatten key: numpy array} ("step" is uint64 of shape
        (), "learning_rate" float32 of shape (), "w.m" in the parameter's dtype...)."""
        return {k: self.state_value(k) for k in self.state_keys()}

    @state.setter
    def state(self, values):
        """Copies state in, all or nothing (dtypes and sizes must match the slots)."""
        backup = self.to_bytes()
        try:
            for key, v in values.items():
                kb = key.encode()
                dt = ctypes.c_uint()
                self._check(_C.descent_optimizer_state_info(self._h, kb, ctypes.byref(dt),
                                                            None, None, 0))
                if dt.value not in _NP_OF:
                    raise DescentError(_lib.ERR_UNSUPPORTED, f"state '{key}': unknown dtype")
                want = np.dtype(_NP_OF[dt.value])
                a = np.asarray(v)
                if a.dtype != want and _DTYPES.get(a.dtype) == dt.value == _lib.BFLOAT16:
                    a = a.view(want)       # the other bfloat16 representation: same bits
                if a.dtype != want:
                    if a.ndim == 0 and key in ("step", "learning_rate"):
                        a = a.astype(want)
                    else:
                        raise DescentError(_lib.ERR_DTYPE_MISMATCH,
                                           f"state '{key}': dtype {a.dtype} given, the slot "
                                           f"holds {want}")
                a = np.ascontiguousarray(a)
                self._check(_C.descent_optimizer_state_set(self._h, kb, dt.value,
                                                           a.ctypes.data, a.size))
        except BaseException:
            self.from_bytes(backup)
            raise

    def save(self, path):
        """Writes the state as safetensors (MLX's tree_flatten keys; crash-safe replacement)."""
        self._check(_C.descent_optimizer_save(self._h, os.fsencode(path)))

    def load(self, path):
        """Loads a state file written by save() or by MLX (parameters must be declared: after
        an update or init()). A failed load changes nothing."""
        self._check(_C.descent_optimizer_load(self._h, os.fsencode(path)))

    def to_bytes(self):
        size = ctypes.c_size_t()
        self._check(_C.descent_optimizer_save_to_buffer(self._h, None, 0, ctypes.byref(size)))
        buf = ctypes.create_string_buffer(size.value)
        self._check(_C.descent_optimizer_save_to_buffer(self._h, buf, size.value,
                                                        ctypes.byref(size)))
        return buf.raw[:size.value]

    def from_bytes(self, data):
        data = bytes(data)
        self._check(_C.descent_optimizer_load_from_buffer(self._h, data, len(data)))

    def __repr__(self):
        return f"descent.{type(self).__name__}({self.hyperparameters})"


def _apply_gradients(self, gradients, parameters):
    return self.update(parameters, gradients)


Optimizer.apply_gradients = _apply_gradients


class SGD(Optimizer):
    """MLX's SGD: learning_rate, momentum, weight_decay, dampening, nesterov."""
    kind = "sgd"


class RMSprop(Optimizer):
    """MLX's RMSprop: learning_rate, alpha, eps."""
    kind = "rmsprop"


class Adagrad(Optimizer):
    """MLX's Adagrad: learning_rate, eps."""
    kind = "adagrad"


class AdaDelta(Optimizer):
    """MLX's AdaDelta: learning_rate, rho, eps."""
    kind = "adadelta"


class Adam(Optimizer):
    """MLX's Adam: learning_rate, betas, eps, bias_correction."""
    kind = "adam"


class AdamW(Optimizer):
    """MLX's AdamW: learning_rate, betas, eps, weight_decay, bias_correction."""
    kind = "adamw"


class Adamax(Optimizer):
    """MLX's Adamax: learning_rate, betas, eps."""
    kind = "adamax"


class Lion(Optimizer):
    """MLX's Lion: learning_rate, betas, weight_decay."""
    kind = "lion"


class Adafactor(Optimizer):
    """MLX's Adafactor: learning_rate (optional), eps, clip_threshold, decay_rate, beta_1,
    weight_decay, scale_parameter, relative_step, warmup_init."""
    kind = "adafactor"


class Muon(Optimizer):
    """MLX's Muon: learning_rate, momentum, weight_decay, nesterov, ns_steps (and descent's
    extensions, see docs/muon.md)."""
    kind = "muon"


_CLASSES = {c.kind: c for c in (SGD, RMSprop, Adagrad, AdaDelta, Adam, AdamW, Adamax, Lion,
                                Adafactor, Muon)}


class MultiOptimizer(Optimizer):
    """MLX's MultiOptimizer(optimizers, filters): each parameter goes to the first optimizer
    whose filter accepts it; the last optimizer takes the rest. A filter is a callable
    ``f(name, array) -> bool`` (MLX's), a name glob string ("blocks.*", "*.bias"), or a list of
    globs. The given optimizers become views of the groups (their state, learning_rate...)."""
    kind = "multi"

    def __init__(self, optimizers, filters=()):
        optimizers = list(optimizers)
        filters = list(filters)
        if not optimizers:
            raise ValueError("MultiOptimizer needs at least one optimizer")
        if len(filters) != len(optimizers) - 1:
            raise ValueError(f"Given {len(filters)} filters but {len(optimizers) - 1} needed.")
        for o in optimizers:
            if not isinstance(o, Optimizer) or isinstance(o, MultiOptimizer) or \
                    type(o).kind not in _CLASSES:
                raise TypeError(f"MultiOptimizer: {o!r} is not one of descent's optimizers")
            if o._owner is not None or o._declared:
                raise DescentError(_lib.ERR_INVALID_STATE,
                                   f"MultiOptimizer: {type(o).__name__} is already in use")
        for f in filters:
            if not (callable(f) or isinstance(f, str) or
                    (isinstance(f, (list, tuple)) and all(isinstance(x, str) for x in f))):
                raise TypeError(f"MultiOptimizer: filter {f!r} is not a callable or glob(s)")
        super().__init__()
        self._filter_thunks = []
        self.optimizers = optimizers
        for i, o in enumerate(optimizers):
            self._check(_C.descent_multi_add_group(self._h, o.kind.encode(),
                                                   o._config_json().encode(), None))
            gh = ctypes.c_void_p()
            self._check(_C.descent_multi_group(self._h, i, ctypes.byref(gh)))
            o._rebind(gh, self)
        for i, f in enumerate(filters):
            if isinstance(f, str):
                f = [f]
            if isinstance(f, (list, tuple)):
                for glob in f:
                    self._check(_C.descent_multi_filter_name(self._h, i, glob.encode()))
            else:
                self._add_filter_callback(i, f)

    @classmethod
    def _adopt(cls, handle, optimizers):
        self = cls.__new__(cls)
        self._h = handle
        self._owner = None
        self._schedule_thunk = None
        self._lr = None
        self._options = {}
        self._cache = None
        self._declared = {}
        self._arrays = {}
        self._filter_thunks = []
        self.optimizers = optimizers
        return self

    def _add_filter_callback(self, index, fn):
        arrays = weakref.ref(self)

        def trampoline(name, ndim, shape, _user_data, accept, message, capacity):
            try:
                n = name.decode()
                me = arrays()
                a = me._arrays.get(n) if me is not None else None
                if a is None:   # not at hand: a zero-strided stand-in with the right shape
                    dims = tuple(shape[i] for i in range(ndim))
                    a = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), dims,
                                                        (0,) * ndim)
                accept[0] = bool(fn(n, a))
                return _lib.OK
            except BaseException as e:  # noqa: B902
                _write_message(message, capacity, _callback_failed(e, f"filter {index}"))
                return _lib.ERR_CALLBACK

        thunk = _lib.FILTER_FN(trampoline)
        self._check(_C.descent_multi_filter_callback(self._h, index, thunk, None, None))
        self._filter_thunks.append(thunk)

    def parameter_group(self, name):
        """The index of the group (optimizer) a declared parameter belongs to."""
        out = ctypes.c_size_t()
        _take_pending()
        self._check(_C.descent_multi_parameter_group(self._h, name.encode(), ctypes.byref(out)))
        return out.value

    @property
    def learning_rate(self):
        """Group 0's learning rate (as MLX's MultiOptimizer); setting it (a number, a schedule
        or a callable) sets every group's, each evaluating a schedule at its own step."""
        return self.optimizers[0].learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        Optimizer.learning_rate.fset(self, value)


def _sub_config(kind, spec):
    """(config json, learning-rate to attach afterwards or None, python object) for muon_adamw."""
    if spec is None:
        return None, None
    if isinstance(spec, Optimizer):
        if spec.kind != kind:
            raise TypeError(f"muon_adamw: expected a {_CLASSES[kind].__name__}, got "
                            f"{type(spec).__name__}")
        return spec._config_json(), spec
    if isinstance(spec, dict):
        return spec, None
    raise TypeError(f"muon_adamw: {kind} settings must be a dict of MLX keyword names or a "
                    f"descent.{_CLASSES[kind].__name__}")


def muon_adamw(muon=None, adamw=None, adamw_names=None):
    """The usual split in one call (descent_multi_create_muon_adamw): group 0 is Muon for
    parameters with ndim >= 2 whose names match none of the globs in adamw_names (a list or a
    comma-separated string; default "*embed*,*lm_head*,*head*,*norm*"), group 1 AdamW for the
    rest. muon and adamw are dicts of MLX keyword names (learning_rate may be a number, a
    schedule or a callable) or Muon / AdamW objects."""
    objs = []
    jsons = []
    for kind, spec in (("muon", muon), ("adamw", adamw)):
        if isinstance(spec, Optimizer):
            if spec.kind != kind:
                raise TypeError(f"muon_adamw: expected a {_CLASSES[kind].__name__}, got "
                                f"{type(spec).__name__}")
            if spec._owner is not None or spec._declared:
                raise DescentError(_lib.ERR_INVALID_STATE,
                                   f"muon_adamw: the {type(spec).__name__} is already in use")
            objs.append(spec)
            jsons.append(spec._config_json())
        elif spec is None or isinstance(spec, dict):
            spec = dict(spec or {})
            lr = spec.pop("learning_rate", None)
            o = _CLASSES[kind].__new__(_CLASSES[kind])
            o._h = None
            o._owner = None
            o._schedule_thunk = None
            o._lr = lr
            o._options = spec
            o._cache = None
            o._declared = {}
            o._arrays = {}
            objs.append(o)
            jsons.append(o._config_json())
        else:
            raise TypeError(f"muon_adamw: {kind} settings must be a dict of MLX keyword names "
                            f"or a descent.{_CLASSES[kind].__name__}")
    if isinstance(adamw_names, (list, tuple)):
        adamw_names = ",".join(adamw_names)
    handle = ctypes.c_void_p()
    err = ctypes.create_string_buffer(_lib.ERROR_CAPACITY)
    status = _C.descent_multi_create_muon_adamw(
        jsons[0].encode(), jsons[1].encode(),
        adamw_names.encode() if adamw_names is not None else None, ctypes.byref(handle), err,
        len(err))
    if status != _lib.OK:
        raise DescentError(status, err.value.decode(errors="replace"))
    multi = MultiOptimizer._adopt(handle, objs)
    for i, o in enumerate(objs):
        gh = ctypes.c_void_p()
        multi._check(_C.descent_multi_group(handle, i, ctypes.byref(gh)))
        o._rebind(gh, multi)
    return multi


_SIZE_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_size_t)) - 1


def _thread_count(n):
    """n as a C size_t: an int >= 0 (TypeError / DescentError(INVALID_ARGUMENT) otherwise)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"num_threads must be an int, not {type(n).__name__}")
    n = int(n)
    if n < 0:
        raise DescentError(_lib.ERR_INVALID_ARGUMENT, f"num_threads: must be >= 0 (got {n})")
    if n > _SIZE_MAX:
        raise DescentError(_lib.ERR_OUT_OF_RANGE, f"num_threads: {n} does not fit a size_t")
    return n


def set_num_threads(n):
    """Sets the process-wide number of threads the elementwise optimizers split a step over
    (libdescent 1.1); 0 restores the default (DESCENT_NUM_THREADS, else the CPUs available).
    Every count gives the same bits. A count above the library's maximum raises DescentError
    (DESCENT_ERR_OUT_OF_RANGE) and changes nothing."""
    n = _thread_count(n)
    err = ctypes.create_string_buffer(_lib.ERROR_CAPACITY)
    status = _lib.since_1_1("descent_set_num_threads")(n, err, len(err))
    if status != _lib.OK:
        raise DescentError(status, err.value.decode(errors="replace"))


def get_num_threads():
    """The process-wide thread count in effect (at least 1; libdescent 1.1)."""
    out = ctypes.c_size_t()
    err = ctypes.create_string_buffer(_lib.ERROR_CAPACITY)
    status = _lib.since_1_1("descent_get_num_threads")(ctypes.byref(out), err, len(err))
    if status != _lib.OK:
        raise DescentError(status, err.value.decode(errors="replace"))
    return out.value


def clip_grad_norm(grads, max_norm):
    """MLX's clip_grad_norm, in place: returns (grads, total_norm) with total_norm the norm
    before clipping (a float)."""
    leaves = tree_flatten(grads)
    for name, g in leaves:
        if not isinstance(g, np.ndarray) or g.dtype not in _DTYPES:
            raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                               f"gradient '{name}': expected a {_SUPPORTED} numpy array, "
                               f"got {_describe(g)}")
        if not g.flags.c_contiguous or not g.flags.writeable:
            raise DescentError(_lib.ERR_INVALID_ARGUMENT,
                               f"gradient '{name}': must be C-contiguous and writeable "
                               "(clipping happens in place)")
    n = len(leaves)
    dtypes = np.array([_DTYPES[g.dtype] for _, g in leaves], dtype=np.uint32)
    numels = np.array([g.size for _, g in leaves], dtype=np.int64)
    ptrs = np.array([_addr(g) for _, g in leaves], dtype=np.uintp)
    total = ctypes.c_double()
    err = ctypes.create_string_buffer(_lib.ERROR_CAPACITY)
    status = _C.descent_clip_grad_norm(n, dtypes.ctypes.data, numels.ctypes.data,
                                       ptrs.ctypes.data, float(max_norm), ctypes.byref(total),
                                       err, len(err))
    if status != _lib.OK:
        raise DescentError(status, err.value.decode(errors="replace"))
    return grads, total.value
