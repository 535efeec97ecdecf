"""Learning-rate schedules, shaped like mlx.optimizers.schedulers.

Each function returns a :class:`Schedule`: the library's JSON specification (a dict, see
docs/schedules.md) that an optimizer takes as its ``learning_rate`` and the library evaluates.
Like MLX's schedules it is also callable: ``schedule(step)`` evaluates it through the library.
Any Python callable ``f(step) -> float`` is a schedule too (it runs as a callback).
"""
import ctypes
import json
import numbers

from . import _lib
from ._errors import DescentError


class Schedule(dict):
    """A schedule specification the library evaluates (a dict in descent's JSON form)."""

    def to_json(self):
        return json.dumps(self)

    def __call__(self, step):
        out = ctypes.c_double()
        err = ctypes.create_string_buffer(_lib.ERROR_CAPACITY)
        status = _lib.lib.descent_schedule_value(self.to_json().encode(), 0.0, int(step),
                                                 ctypes.byref(out), err, len(err))
        if status != _lib.OK:
            raise DescentError(status, err.value.decode(errors="replace"))
        return out.value


def _count(v):
    """A step count or boundary as the library's JSON wants it: an int when the value is integral;
    otherwise the value itself, which the library refuses with a message naming the field (a
    silent int() would turn MLX's valid 2.5 into 2)."""
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real) and float(v).is_integer():
        return int(v)
    return v


def exponential_decay(init, decay_rate):
    return Schedule(schedule="exponential_decay", init=float(init), decay_rate=float(decay_rate))


def step_decay(init, decay_rate, step_size):
    return Schedule(schedule="step_decay", init=float(init), decay_rate=float(decay_rate),
                    step_size=_count(step_size))


def cosine_decay(init, decay_steps, end=0.0):
    return Schedule(schedule="cosine_decay", init=float(init), decay_steps=_count(decay_steps),
                    end=float(end))


def linear_schedule(init, end, steps):
    return Schedule(schedule="linear_schedule", init=float(init), end=float(end),
                    steps=_count(steps))


def join_schedules(schedules, boundaries):
    specs = []
    for s in schedules:
        if not isinstance(s, Schedule):
            raise TypeError("join_schedules: every schedule must be one of descent.schedules' "
                            f"(a Python callable cannot be joined by the library), got {s!r}")
        specs.append(dict(s))
    return Schedule(schedule="join_schedules", schedules=specs,
                    boundaries=[_count(b) for b in boundaries])


def constant(value):
    return Schedule(schedule="constant", value=float(value))
