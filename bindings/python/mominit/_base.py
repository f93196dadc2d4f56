"""Handle ownership, locking, status checking and numpy array validation shared by all modules."""
import ctypes
import threading
import weakref

import numpy as np

from . import _lib
from .errors import error_for

L = _lib.lib

# Live C handles created by this binding, by class name; the tests use it (with a counting
# allocator) to check that every handle is destroyed exactly once.
_live = {}
_live_lock = threading.Lock()


def live_handles():
    """A dict {class name: number of C handles not yet destroyed} (diagnostics)."""
    with _live_lock:
        return {k: v for k, v in _live.items() if v}


def _count(kind, delta):
    with _live_lock:
        _live[kind] = _live.get(kind, 0) + delta


def _destroy(destroy, ptr, kind, keep):
    # Runs exactly once per handle: weakref.finalize guarantees it (explicit close, garbage
    # collection or interpreter exit, whichever comes first). `keep` holds what the C object
    # needs until it is destroyed (its allocator), so it is released only after this call.
    destroy(ptr)
    _count(kind, -1)
    del keep


class _Owner:
    """Owns one C handle pointer. Numpy views of memory inside the handle (Net.params,
    Optimizer.velocity) reference the owner, so the C object outlives every view."""

    __slots__ = ("ptr", "finalizer", "views", "keep", "__weakref__")

    def __init__(self, ptr, destroy, kind, keep):
        self.ptr = ptr
        self.views = weakref.WeakSet()
        # keep: {name: objects} that the C object needs until it is destroyed. The finalizer
        # references this same dict, so entries added later (an optimizer's schedules' needs)
        # also live until the C destroy function has run.
        self.keep = {"base": keep}
        self.finalizer = weakref.finalize(self, _destroy, destroy, ptr, kind, self.keep)
        # Not at interpreter exit: a numpy view may still be read by a later exit handler, and
        # the process is ending anyway.
        self.finalizer.atexit = False
        _count(kind, +1)

    def release(self):
        """Destroy now if no view is alive; else when the last view is garbage collected."""
        if not len(self.views):
            self.finalizer()


class _Anchor:
    """Attached to the ctypes buffer under a numpy view: keeps the owner alive, and lets the
    owner know (weakly) that a view exists."""

    __slots__ = ("owner", "__weakref__")

    def __init__(self, owner):
        self.owner = owner


class _HandleLock:
    """A re-entrant lock that knows how deep the holding thread is in it: close() refuses to run
    inside a call on the same handle (from a callback the library makes during that call), where
    destroying the C object would pull memory from under the library."""

    __slots__ = ("_rl", "depth", "barred")

    def __init__(self):
        self._rl = threading.RLock()
        self.depth = 0  # changed only by the holder
        self.barred = None  # set by the holder: why it may not re-enter now (a callback's rule)

    def acquire(self):
        self._rl.acquire()
        if self.barred is not None and self.depth > 0:  # the holder itself, from a callback
            why = self.barred
            self._rl.release()
            raise RuntimeError(why)
        self.depth += 1

    def release(self):
        self.depth -= 1
        self._rl.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False


class Handle:
    """Base of every wrapper of a C handle.

    Handles are freed deterministically by close() or by leaving a ``with`` block, and otherwise
    when the object is garbage collected; never twice. After close(), every method raises
    ValueError. A handle may be used from several Python threads: calls on one handle are
    serialized by a lock (the C library requires one thread at a time per handle)."""

    _destroy_fn = None   # C destroy function
    _errmsg_fn = None    # C errmsg function or None

    def __init__(self, ptr, keep=()):
        self._lock = _HandleLock()
        self._owner = _Owner(ptr, type(self)._destroy_fn, type(self).__name__, tuple(keep))

    # -- lifetime -------------------------------------------------------------------------------
    @property
    def closed(self):
        return self._owner is None

    def close(self):
        """Release the C handle. Idempotent. Memory viewed by live numpy views (Net.params,
        Optimizer.velocity) stays valid until those views are gone."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before the handle existed
            return
        with lock:
            if lock.depth > 1:
                raise RuntimeError(f"cannot close a mominit.{type(self).__name__} from inside a "
                                   "call on it (a callback of that call)")
            owner, self._owner = self._owner, None
            if owner is not None:
                self._on_close()
                owner.release()

    def _on_close(self):
        """Drop what the Python side keeps for the C object (subclasses); runs under the lock,
        once, just before the C handle is released."""

    def __enter__(self):
        return self

    # A copy would share the C handle and free it twice: refuse (there is no C copy function).
    def __copy__(self):
        raise TypeError(f"a mominit.{type(self).__name__} cannot be copied")

    def __deepcopy__(self, memo):
        raise TypeError(f"a mominit.{type(self).__name__} cannot be copied")

    def __reduce_ex__(self, protocol):
        raise TypeError(f"a mominit.{type(self).__name__} cannot be pickled")

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def _ptr(self):
        owner = self._owner
        if owner is None:
            raise ValueError(f"operation on a closed {type(self).__name__}")
        return owner.ptr

    @property
    def _as_parameter_(self):  # lets a handle be passed straight to a ctypes function
        return self._ptr

    def __repr__(self):
        state = "closed" if self.closed else f"at 0x{self._owner.ptr:x}"
        return f"<mominit.{type(self).__name__} {state}>"

    # -- errors ---------------------------------------------------------------------------------
    def _errmsg(self):
        fn = type(self)._errmsg_fn
        if fn is None or self._owner is None:
            return ""
        msg = fn(self._owner.ptr)
        return msg.decode(errors="replace") if msg else ""

    def _check(self, status, function, *others):
        """Raise the exception for `status` with the detail message of self (or, when empty,
        of the first other handle that has one). Call it right after the C call, under the
        lock, before anything else touches the handle."""
        if status == 0:
            return
        raise make_error(status, function, self, *others)

    # -- views ----------------------------------------------------------------------------------
    def _view(self, address, count, shape=None, readonly=False):
        """A float32 numpy array over `count` floats at `address` inside this handle; it keeps
        the handle's C object alive."""
        owner = self._owner
        carr = (ctypes.c_float * count).from_address(address)
        anchor = _Anchor(owner)
        carr._mominit_anchor = anchor  # lives exactly as long as the buffer and its views
        owner.views.add(anchor)
        # read-only views sit on a read-only buffer: numpy then refuses to make them writable
        arr = np.frombuffer(memoryview(carr).toreadonly() if readonly else carr, dtype=np.float32)
        if shape is not None:
            arr = arr.reshape(shape)
        return arr


def make_error(status, function, *handles, detail=""):
    if not detail:
        for h in handles:
            if h is not None and isinstance(h, Handle):
                detail = h._errmsg()
                if detail:
                    break
    return error_for(status, function, detail)


class locked:
    """Hold the locks of several handles at once (in a fixed order, so no deadlock)."""

    def __init__(self, *handles):
        seen = {}
        for h in handles:
            if h is not None:
                seen[id(h)] = h
        self.locks = [seen[k]._lock for k in sorted(seen)]

    def __enter__(self):
        held = []
        try:
            for lk in self.locks:
                lk.acquire()
                held.append(lk)
        except BaseException:
            # a lock that refuses (a callback's rule, _HandleLock.barred) must not leave the
            # ones taken before it held: __exit__ does not run when __enter__ raises
            for lk in reversed(held):
                lk.release()
            raise
        return self

    def __exit__(self, *exc):
        for lk in reversed(self.locks):
            lk.release()
        return False

    def refuse_nested(self, what):
        """RuntimeError if one of the handles is in the middle of another call on this thread
        (the caller is a callback of that call, which the library must not be re-entered
        from). Call it inside the ``with``."""
        for lk in self.locks:
            if lk.depth > 1:
                raise RuntimeError(f"cannot {what} from inside a call on one of its handles "
                                   "(a callback of that call)")


# ---- numpy arrays ---------------------------------------------------------------------------------

def f32_address(a, name, size=None, shape=None, writable=False):
    """Validate a float32 array that the library reads or writes in place (no copy) and return
    the address of its first element.

    TypeError: not a numpy.ndarray, or dtype not native float32.
    ValueError: not C-contiguous or not aligned, read-only when writable is needed, wrong size or
    shape."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise TypeError(f"{name} must have dtype float32 (native byte order), got {a.dtype}; "
                        "convert with numpy.asarray(x, dtype=numpy.float32)")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; use numpy.ascontiguousarray()")
    if not a.flags.aligned:
        raise ValueError(f"{name} must be aligned")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    if size is not None and a.size != size:
        raise ValueError(f"{name} has {a.size} elements, expected {size}")
    return a.ctypes.data


def out_f32(out, name, shape):
    """(array, address) for an output buffer: a new array when out is None, else `out` after
    validation (float32, C-contiguous, writable, exactly prod(shape) elements)."""
    if out is None:
        out = np.empty(shape, dtype=np.float32)
        return out, out.ctypes.data
    size = 1
    for s in shape:
        size *= s
    return out, f32_address(out, name, size=size, writable=True)


def no_overlap(a, b, name_a, name_b):
    if a is not None and b is not None and np.may_share_memory(a, b):
        raise ValueError(f"{name_a} must not overlap {name_b}")


def check_index(value, name, lo=0):
    """An int >= lo from an int-like value (TypeError / ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return value


def check_u64(value, name):
    value = check_index(value, name)
    if value >= 1 << 64:
        raise ValueError(f"{name} must fit in 64 bits, got {value}")
    return value


def u64_array(items, name):
    """A numpy uint64 array of the integers in `items`, each in 0..2^64-1 (ValueError otherwise:
    no float is truncated, no negative wrapped, and numpy's float64 for a list mixing values
    below and above 2^63 is avoided)."""
    items = list(items)
    if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) and
               0 <= int(x) < 2**64 for x in items):
        raise ValueError(f"{name} must hold integers in 0..2^64-1, got {items}")
    return np.array([int(x) for x in items], dtype=np.uint64)


def check_size(value, name, lo=0):
    value = check_index(value, name, lo)
    if value > ctypes.c_size_t(-1).value:
        raise ValueError(f"{name} does not fit in size_t: {value}")
    return value
