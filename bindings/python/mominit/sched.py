"""Schedules (sched.h): immutable, reference-counted values of the step number t.

A Sched object holds one C reference. An optimizer (or a final-phase wrapper) given a schedule
takes its own C reference, so a Sched may be closed right after it was handed over. The Python
objects a C schedule needs while it lives (a callback function, a custom allocator) are passed
along with it: the optimizer or wrapper keeps them referenced (Sched.needs), not the Sched.
"""
import ctypes
import math
import threading

import numpy as np

from . import _lib
from ._base import Handle, L, check_u64, make_error, u64_array
from .allocator import c_allocator
from .enums import FinalMode, SchedKind, coerce


class _Callback:
    """The C-callable wrapper of a Python schedule function. An exception in the function
    cannot cross into C: the value becomes NaN and the exception is kept (pending) until the
    binding call that triggered it re-raises it."""

    def __init__(self, fn):
        self.fn = fn
        self._tls = threading.local()
        self.cfunc = _lib.SCHED_FN(self._call)

    def _call(self, t, user_data):
        try:
            return float(self.fn(t))
        except BaseException as e:  # noqa: B902 - nothing may propagate into C
            if getattr(self._tls, "error", None) is None:
                self._tls.error = e
            return math.nan

    def pop_error(self):
        e = getattr(self._tls, "error", None)
        self._tls.error = None
        return e


def pop_pending(needs):
    """The exception a callback schedule among `needs` stored on this thread (cleared), or
    None."""
    found = None
    for obj in needs:
        if isinstance(obj, _Callback):
            e = obj.pop_error()
            if found is None:
                found = e
    return found


class Sched(Handle):
    """A schedule. Create with the class methods const(), paper_momentum(), piecewise(),
    final_phase(), anneal(), callback(). ``s(t)`` is ``s.value(t)``."""

    _destroy_fn = L.mom_sched_destroy
    _errmsg_fn = None  # schedules have no detail message

    def __init__(self, *args, **kwargs):
        raise TypeError("use a Sched class method: const(), paper_momentum(), piecewise(), "
                        "final_phase(), anneal() or callback()")

    @classmethod
    def _create(cls, fname, fn, args, needs, detail):
        out = ctypes.c_void_p()
        rc = fn(ctypes.byref(out), *args)
        if rc:
            raise make_error(rc, fname, detail=detail)
        self = cls.__new__(cls)
        self.needs = tuple(n for n in needs if n is not None)
        Handle.__init__(self, out.value, keep=self.needs)
        return self

    @classmethod
    def const(cls, value, allocator=None):
        return cls._create("mom_sched_create_const", L.mom_sched_create_const,
                           (float(value), c_allocator(allocator)), (allocator,),
                           f"value={value!r} (must be finite)")

    @classmethod
    def paper_momentum(cls, mu_max=0.999, period=250, allocator=None):
        """mu_t = min(1 - 1 / (2 (floor(t / period) + 1)), mu_max)."""
        return cls._create("mom_sched_create_paper_momentum", L.mom_sched_create_paper_momentum,
                           (float(mu_max), check_u64(period, "period"), c_allocator(allocator)),
                           (allocator,), f"mu_max={mu_max!r} (in [0, 1]), period={period!r} "
                           "(>= 1)")

    @classmethod
    def piecewise(cls, starts, values, allocator=None):
        """values[i] for starts[i] <= t < starts[i+1]; starts[0] == 0, strictly increasing.
        The sequences are copied."""
        if not isinstance(starts, np.ndarray):
            starts = u64_array(starts, "starts")
        st = np.asarray(starts)
        if st.size and (st.dtype.kind not in "iu" or (st.dtype.kind == "i" and (st < 0).any())):
            raise ValueError(f"starts must be non-negative integers, got {st.tolist()}")
        st = np.array(st, dtype=np.uint64)
        va = np.array(values, dtype=np.float64)
        if st.ndim != 1 or va.shape != st.shape:
            raise ValueError(f"starts and values must be 1-d of equal length, got {st.shape} and "
                             f"{va.shape}")
        return cls._create("mom_sched_create_piecewise", L.mom_sched_create_piecewise,
                           (st.size, st.ctypes.data, va.ctypes.data, c_allocator(allocator)),
                           (allocator,), f"starts={st.tolist()}, values={va.tolist()}")

    @classmethod
    def final_phase(cls, base, total, final_steps, value, mode=FinalMode.MIN, allocator=None):
        """base(t) before the last `final_steps` steps of a run of `total`, then `value`
        (REPLACE) or min(base(t), value) (MIN). Keeps a reference to base."""
        if not isinstance(base, Sched):
            raise TypeError(f"base must be a mominit.Sched, got {type(base).__name__}")
        with base._lock:
            return cls._create("mom_sched_create_final_phase", L.mom_sched_create_final_phase,
                               (base._ptr, check_u64(total, "total"),
                                check_u64(final_steps, "final_steps"), float(value),
                                coerce(FinalMode, mode, "mode"), c_allocator(allocator)),
                               (allocator,) + base.needs,
                               f"total={total}, final_steps={final_steps}, value={value!r}")

    @classmethod
    def anneal(cls, v0, a, t0=0.0, allocator=None):
        """v0 for t <= t0, then min(v0, a / (t - t0))."""
        return cls._create("mom_sched_create_anneal", L.mom_sched_create_anneal,
                           (float(v0), float(a), float(t0), c_allocator(allocator)), (allocator,),
                           f"v0={v0!r}, a={a!r} (> 0), t0={t0!r}")

    @classmethod
    def callback(cls, fn, allocator=None):
        """A schedule computed by fn(t) -> float. fn runs on the thread that queries the value
        (with the GIL). If fn raises, the value is NaN and the exception is re-raised by the
        binding call that queried it (Sched.value, Optimizer steps)."""
        if not callable(fn):
            raise TypeError("fn must be callable")
        cb = _Callback(fn)
        return cls._create("mom_sched_create_callback", L.mom_sched_create_callback,
                           (cb.cfunc, None, c_allocator(allocator)), (cb, allocator), "")

    def value(self, t):
        """The value at step t."""
        t = check_u64(t, "t")
        with self._lock:
            v = L.mom_sched_value(self._ptr, t)
            e = pop_pending(self.needs)
        if e is not None:
            raise e
        return v

    __call__ = value

    def values(self, ts):
        """value(t) for each t of an iterable, as a float64 numpy array."""
        return np.array([self.value(t) for t in ts], dtype=np.float64)

    @property
    def kind(self):
        with self._lock:
            return SchedKind(L.mom_sched_kind_of(self._ptr))


def as_sched(value, what):
    """(Sched, created): a Sched as given, or a new constant schedule for a number."""
    if isinstance(value, Sched):
        return value, False
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        return Sched.const(float(value)), True
    raise TypeError(f"{what} must be a mominit.Sched or a number, got {type(value).__name__}")
