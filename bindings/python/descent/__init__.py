"""descent: neural-network optimizers with MLX semantics (libdescent through ctypes + numpy).

    import descent
    opt = descent.AdamW(learning_rate=1e-3, weight_decay=0.01)
    opt.update(params, grads)     # nested dicts/lists of numpy arrays, updated in place
"""
from . import schedules
from ._core import (AdaDelta, Adafactor, Adagrad, Adam, Adamax, AdamW, Lion, MultiOptimizer, Muon,
                    Optimizer, RMSprop, SGD, clip_grad_norm, get_num_threads, muon_adamw,
                    set_num_threads, tree_flatten, bfloat16, bfloat16_bits)
from ._errors import DescentError
from ._lib import kind_names

from . import _lib as _l

__version__ = _l.lib.descent_version_string().decode()
library_path = _l.path
kinds = kind_names()

__all__ = ["AdaDelta", "Adafactor", "Adagrad", "Adam", "Adamax", "AdamW", "Lion",
           "MultiOptimizer", "Muon", "Optimizer", "RMSprop", "SGD", "clip_grad_norm",
           "muon_adamw", "tree_flatten", "set_num_threads", "get_num_threads", "schedules",
           "DescentError", "kinds", "library_path", "bfloat16", "bfloat16_bits"]
