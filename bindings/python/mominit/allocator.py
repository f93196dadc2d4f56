"""Custom allocators (struct mom_allocator) written in Python.

Every constructor of the binding takes ``allocator=None`` (malloc) or an Allocator. The handle
keeps the Allocator object alive until the C object is destroyed (a schedule held by an optimizer
keeps it alive through the optimizer), as the C API requires.

Allocator is a base class: override alloc(size), realloc(ptr, size) and free(ptr), which deal in
integer addresses (0 = failure). CountingAllocator is a ready-made one on top of the C library's
malloc that counts live blocks and can fail the N-th allocation; the tests use it to prove that
handles are freed exactly once and that MOM_E_NOMEM becomes NoMemError. Calls go through Python,
so a custom allocator is slow: use it for testing and accounting, not for speed.
"""
import ctypes
import operator
import threading

from . import _lib

_libc = ctypes.CDLL(None)
_malloc = _libc.malloc
_malloc.restype = ctypes.c_void_p
_malloc.argtypes = [ctypes.c_size_t]
_realloc = _libc.realloc
_realloc.restype = ctypes.c_void_p
_realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_free = _libc.free
_free.restype = None
_free.argtypes = [ctypes.c_void_p]


class Allocator:
    """Base class of Python allocators. Subclasses override alloc, realloc and free.

    An exception raised by an override is swallowed (it cannot cross into C): alloc and realloc
    then report failure (NULL) and the exception is stored in ``last_exception``."""

    def __init__(self):
        self.last_exception = None
        # The CFUNCTYPE objects must live as long as any C object that may call them: they are
        # attributes of self, and every handle created with this allocator keeps self alive.
        self._c_alloc = _lib.ALLOC_FN(self._on_alloc)
        self._c_realloc = _lib.REALLOC_FN(self._on_realloc)
        self._c_free = _lib.FREE_FN(self._on_free)
        self._struct = _lib.mom_allocator(self._c_alloc, self._c_realloc, self._c_free, None)

    def alloc(self, size):
        raise NotImplementedError

    def realloc(self, ptr, size):
        raise NotImplementedError

    def free(self, ptr):
        raise NotImplementedError

    @staticmethod
    def _address(p):
        """An override's result as what the C side receives: an int address or None. Anything
        else (a float, a numpy integer is fine) raises here, inside the callback's try, rather
        than in ctypes' conversion of the return value, which would hand C garbage."""
        if p is None:
            return None
        p = operator.index(p)
        if not 0 <= p < 1 << (8 * ctypes.sizeof(ctypes.c_void_p)):
            raise ValueError(f"allocator returned {p}, not an address")
        return p or None

    def _on_alloc(self, user, size):
        try:
            return self._address(self.alloc(size))
        except BaseException as e:  # noqa: B902 - nothing may propagate into C
            self.last_exception = e
            return None

    def _on_realloc(self, user, ptr, size):
        try:
            return self._address(self.realloc(ptr, size))
        except BaseException as e:  # noqa: B902
            self.last_exception = e
            return None

    def _on_free(self, user, ptr):
        try:
            self.free(ptr)
        except BaseException as e:  # noqa: B902
            self.last_exception = e

    @property
    def _as_parameter_(self):
        return ctypes.byref(self._struct)


def c_allocator(allocator):
    """The ctypes argument for a `const mom_allocator *` parameter."""
    if allocator is None:
        return None
    if not isinstance(allocator, Allocator):
        raise TypeError(f"allocator must be a mominit.Allocator or None, got "
                        f"{type(allocator).__name__}")
    return ctypes.byref(allocator._struct)


class CountingAllocator(Allocator):
    """malloc-based allocator that counts. Thread-safe.

    Attributes: live (number of blocks not yet freed), live_bytes, allocs, reallocs, frees,
    failures. fail_at=N makes the N-th allocation (1-based; counting alloc and realloc calls)
    fail, once; fail_from=N makes every allocation from the N-th on fail.
    Freeing an address it did not hand out is recorded in ``bad_frees`` (a double free, for
    example) instead of being passed to free()."""

    def __init__(self, fail_at=None, fail_from=None):
        super().__init__()
        # re-entrant: a garbage collection inside alloc() may finalize a handle made with this
        # allocator, whose free() then takes the lock again on the same thread
        self._mutex = threading.RLock()
        self.blocks = {}
        self.allocs = self.reallocs = self.frees = self.failures = 0
        self.calls = 0
        self.bad_frees = []
        self.fail_at = fail_at
        self.fail_from = fail_from

    @property
    def live(self):
        return len(self.blocks)

    @property
    def live_bytes(self):
        return sum(self.blocks.values())

    def _should_fail(self):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            return True
        return self.fail_from is not None and self.calls >= self.fail_from

    def alloc(self, size):
        with self._mutex:
            if self._should_fail():
                self.failures += 1
                return 0
            p = _malloc(size)
            if p:
                self.allocs += 1
                self.blocks[p] = size
            return p or 0

    def realloc(self, ptr, size):
        with self._mutex:
            if ptr not in self.blocks:
                self.bad_frees.append(ptr)
                return 0
            if self._should_fail():
                self.failures += 1
                return 0
            p = _realloc(ptr, size)
            if p:
                self.reallocs += 1
                del self.blocks[ptr]
                self.blocks[p] = size
            return p or 0

    def free(self, ptr):
        with self._mutex:
            if ptr not in self.blocks:
                self.bad_frees.append(ptr)
                return
            del self.blocks[ptr]
            self.frees += 1
            _free(ptr)
