"""Loading libdescent and declaring its C functions (ctypes).

Where the library comes from, first match wins:
  1. DESCENT_LIBRARY: the path of libdescent.so.1 itself;
  2. DESCENT_PREFIX: an install prefix (its lib/ or lib64/ holds libdescent.so.1);
  3. the copy packaged inside this package (the wheel built by `pip install bindings/python`);
  4. ctypes.util.find_library("descent") (the system's linker path).
"""
import ctypes
import ctypes.util
import os

from ctypes import (POINTER, c_bool, c_char_p, c_double, c_int64, c_size_t, c_uint, c_uint64,
                    c_void_p)

# descent_status / descent_dtype / descent_value_type are 32-bit enums (unsigned under GCC):
# bound as c_uint, never as a closed Python enum, so unknown future codes come through.
status_t = c_uint
dtype_t = c_uint

OK = 0
ERR_NULL_ARGUMENT = 1
ERR_INVALID_ARGUMENT = 2
ERR_UNKNOWN_KIND = 3
ERR_UNKNOWN_KEY = 4
ERR_WRONG_TYPE = 5
ERR_OUT_OF_RANGE = 6
ERR_DTYPE_MISMATCH = 7
ERR_SHAPE_MISMATCH = 8
ERR_INVALID_STATE = 9
ERR_PARSE = 10
ERR_BUFFER_TOO_SMALL = 11
ERR_IO = 12
ERR_CORRUPT = 13
ERR_OUT_OF_MEMORY = 14
ERR_UNSUPPORTED = 15
ERR_DUPLICATE = 16
ERR_CALLBACK = 17
ERR_INTERNAL = 99

FLOAT32 = 1
FLOAT64 = 2
BFLOAT16 = 3
FLOAT16 = 4
UINT64 = 5

ERROR_CAPACITY = 1024
MAX_NDIM = 16

VALUE_NONE, VALUE_DOUBLE, VALUE_INT, VALUE_BOOL, VALUE_DOUBLE_ARRAY, VALUE_STRING = range(6)

SCHEDULE_FN = ctypes.CFUNCTYPE(status_t, c_uint64, c_void_p, POINTER(c_double), c_void_p, c_size_t)
FILTER_FN = ctypes.CFUNCTYPE(status_t, c_char_p, c_size_t, POINTER(c_int64), c_void_p,
                             POINTER(c_bool), c_void_p, c_size_t)

_SONAME = "libdescent.so.1"


def _candidates():
    path = os.environ.get("DESCENT_LIBRARY")
    if path:
        yield path, "DESCENT_LIBRARY"
        return
    prefix = os.environ.get("DESCENT_PREFIX")
    if prefix:
        for sub in ("lib", "lib64", os.path.join("lib", "x86_64-linux-gnu")):
            p = os.path.join(prefix, sub, _SONAME)
            if os.path.exists(p):
                yield p, "DESCENT_PREFIX"
                return
    here = os.path.dirname(os.path.abspath(__file__))
    for sub in ("lib", "lib64", ""):
        p = os.path.join(here, sub, _SONAME)
        if os.path.exists(p):
            yield p, "the copy packaged with descent"
            return
    found = ctypes.util.find_library("descent")
    if found:
        yield found, "ctypes.util.find_library"
    else:
        yield _SONAME, "the dynamic linker's search path"


def _load():
    errors = []
    for path, origin in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(f"{path} (from {origin}): {e}")
    raise ImportError("descent: cannot load libdescent.so.1: " + "; ".join(errors) +
                      ". Set DESCENT_LIBRARY to the library's path or DESCENT_PREFIX to its "
                      "install prefix, or install the descent wheel.")


lib, path = _load()

_P = c_void_p
_S = c_char_p
_sig = {
    "descent_version_number": (c_uint, []),
    "descent_version_string": (c_char_p, []),
    "descent_status_name": (c_char_p, [status_t]),
    "descent_dtype_name": (c_char_p, [dtype_t]),
    # thread-local; used only by set_num_threads (its C function has no error buffer)
    "descent_last_error": (c_char_p, []),
    "descent_optimizer_create": (status_t, [_S, POINTER(c_void_p), _P, c_size_t]),
    "descent_optimizer_free": (None, [_P]),
    "descent_optimizer_kind": (c_char_p, [_P]),
    "descent_optimizer_last_error": (c_char_p, [_P]),
    "descent_optimizer_set_double": (status_t, [_P, _S, c_double]),
    "descent_optimizer_set_int": (status_t, [_P, _S, c_int64]),
    "descent_optimizer_set_bool": (status_t, [_P, _S, c_bool]),
    "descent_optimizer_set_doubles": (status_t, [_P, _S, POINTER(c_double), c_size_t]),
    "descent_optimizer_set_string": (status_t, [_P, _S, _S]),
    "descent_optimizer_unset": (status_t, [_P, _S]),
    "descent_optimizer_get_double": (status_t, [_P, _S, POINTER(c_double)]),
    "descent_optimizer_get_int": (status_t, [_P, _S, POINTER(c_int64)]),
    "descent_optimizer_get_bool": (status_t, [_P, _S, POINTER(c_bool)]),
    "descent_optimizer_get_doubles": (status_t, [_P, _S, POINTER(c_double), c_size_t,
                                                 POINTER(c_size_t)]),
    "descent_optimizer_get_string": (status_t, [_P, _S, _P, c_size_t, POINTER(c_size_t)]),
    "descent_optimizer_hyperparameter_count": (status_t, [_P, POINTER(c_size_t)]),
    "descent_optimizer_hyperparameter_name": (status_t, [_P, c_size_t, POINTER(c_char_p)]),
    "descent_optimizer_hyperparameter_type": (status_t, [_P, _S, POINTER(c_uint)]),
    "descent_optimizer_configure_json": (status_t, [_P, _S]),
    "descent_optimizer_add_parameter": (status_t, [_P, _S, dtype_t, c_size_t, POINTER(c_int64)]),
    "descent_optimizer_parameter_count": (status_t, [_P, POINTER(c_size_t)]),
    "descent_optimizer_parameter_index": (status_t, [_P, _S, POINTER(c_size_t)]),
    "descent_optimizer_init": (status_t, [_P]),
    "descent_optimizer_update": (status_t, [_P, c_size_t, _P, _P, _P, _P, _P]),
    "descent_optimizer_update_indexed": (status_t, [_P, c_size_t, _P, _P, _P, _P, _P]),
    "descent_optimizer_flat_offset": (status_t, [_P, c_size_t, POINTER(c_size_t)]),
    "descent_optimizer_flat_size": (status_t, [_P, POINTER(c_size_t)]),
    "descent_optimizer_update_flat": (status_t, [_P, _P, _P, c_size_t]),
    "descent_optimizer_state_count": (status_t, [_P, POINTER(c_size_t)]),
    "descent_optimizer_state_key": (status_t, [_P, c_size_t, POINTER(c_char_p)]),
    "descent_optimizer_state_info": (status_t, [_P, _S, POINTER(c_uint), POINTER(c_size_t),
                                                POINTER(c_int64), c_size_t]),
    "descent_optimizer_state_get": (status_t, [_P, _S, dtype_t, _P, c_int64]),
    "descent_optimizer_state_set": (status_t, [_P, _S, dtype_t, _P, c_int64]),
    "descent_optimizer_set_schedule": (status_t, [_P, _S]),
    "descent_optimizer_set_schedule_callback": (status_t, [_P, SCHEDULE_FN, _P, _P]),
    "descent_optimizer_clear_schedule": (status_t, [_P]),
    "descent_schedule_value": (status_t, [_S, c_double, c_uint64, POINTER(c_double), _P,
                                          c_size_t]),
    "descent_clip_grad_norm": (status_t, [c_size_t, _P, _P, _P, c_double, POINTER(c_double), _P,
                                          c_size_t]),
    "descent_optimizer_save": (status_t, [_P, _S]),
    "descent_optimizer_load": (status_t, [_P, _S]),
    "descent_optimizer_save_to_buffer": (status_t, [_P, _P, c_size_t, POINTER(c_size_t)]),
    "descent_optimizer_load_from_buffer": (status_t, [_P, _P, c_size_t]),
    "descent_multi_add_group": (status_t, [_P, _S, _S, POINTER(c_size_t)]),
    "descent_multi_group_count": (status_t, [_P, POINTER(c_size_t)]),
    "descent_multi_group": (status_t, [_P, c_size_t, POINTER(c_void_p)]),
    "descent_multi_filter_name": (status_t, [_P, c_size_t, _S]),
    "descent_multi_filter_ndim": (status_t, [_P, c_size_t, c_int64, c_int64]),
    "descent_multi_filter_callback": (status_t, [_P, c_size_t, FILTER_FN, _P, _P]),
    "descent_multi_exclude_name": (status_t, [_P, c_size_t, _S]),
    "descent_multi_parameter_group": (status_t, [_P, _S, POINTER(c_size_t)]),
    "descent_multi_create_muon_adamw": (status_t, [_S, _S, _S, POINTER(c_void_p), _P, c_size_t]),
}
for _name, (_res, _args) in _sig.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args

# Since C ABI 1.1 (symbol version DESCENT_1.1): declared when the loaded library has them, so that
# the package still imports against a 1.0 library; since_1_1() raises for those that are missing.
_sig_1_1 = {
    "descent_set_num_threads": (status_t, [c_size_t, c_char_p, c_size_t]),
    "descent_get_num_threads": (status_t, [POINTER(c_size_t), c_char_p, c_size_t]),
    "descent_optimizer_set_num_threads": (status_t, [_P, c_size_t]),
    "descent_optimizer_get_num_threads": (status_t, [_P, POINTER(c_size_t)]),
}
for _name, (_res, _args) in _sig_1_1.items():
    _f = getattr(lib, _name, None)
    if _f is not None:
        _f.restype = _res
        _f.argtypes = _args


def since_1_1(name):
    """The 1.1 function `name` of the loaded library, or DescentError(UNSUPPORTED) on 1.0."""
    f = getattr(lib, name, None)
    if f is None:
        from ._errors import DescentError
        raise DescentError(ERR_UNSUPPORTED, f"{name} needs libdescent 1.1; {path} is "
                           f"{lib.descent_version_string().decode()}")
    return f


def kind_names():
    """The optimizer kinds the library knows, in its order (descent_kind_count/_name)."""
    lib.descent_kind_count.restype = c_size_t
    lib.descent_kind_count.argtypes = []
    lib.descent_kind_name.restype = c_char_p
    lib.descent_kind_name.argtypes = [c_size_t]
    return tuple(lib.descent_kind_name(i).decode() for i in range(lib.descent_kind_count()))
