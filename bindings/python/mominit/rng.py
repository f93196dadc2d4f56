"""Random number streams (rng.h): Philox4x32-10, identified by (seed, stream)."""
import ctypes

import numpy as np

from ._base import Handle, L, check_size, check_u64, f32_address, make_error, u64_array
from .allocator import c_allocator
from .enums import RNG_STATE_WORDS


class Rng(Handle):
    """A random stream positioned at the beginning of (seed, stream).

    >>> with Rng(42) as r:
    ...     x = r.normal_array(5)
    """

    _destroy_fn = L.mom_rng_destroy
    _errmsg_fn = L.mom_rng_errmsg

    def __init__(self, seed=0, stream=0, allocator=None):
        seed = check_u64(seed, "seed")
        stream = check_u64(stream, "stream")
        out = ctypes.c_void_p()
        rc = L.mom_rng_create(ctypes.byref(out), seed, stream, c_allocator(allocator))
        if rc:
            raise make_error(rc, "mom_rng_create", detail=f"seed={seed}, stream={stream}")
        super().__init__(out.value, keep=(allocator,))

    @classmethod
    def _wrap(cls, ptr, allocator):
        """Adopt a C stream made by the library (Checkpoint.restore_new)."""
        self = cls.__new__(cls)
        Handle.__init__(self, ptr, keep=(allocator,))
        return self

    def reseed(self, seed, stream=0):
        seed = check_u64(seed, "seed")
        stream = check_u64(stream, "stream")
        with self._lock:
            L.mom_rng_reseed(self._ptr, seed, stream)

    def u32(self):
        with self._lock:
            return int(L.mom_rng_u32(self._ptr))

    def u64(self):
        with self._lock:
            return int(L.mom_rng_u64(self._ptr))

    def below(self, n):
        """Uniform integer in [0, n) (0 for n == 0)."""
        n = check_u64(n, "n")
        with self._lock:
            return int(L.mom_rng_below(self._ptr, n))

    def uniform(self):
        """Uniform float (Python float, from a C double) in [0, 1)."""
        with self._lock:
            return float(L.mom_rng_uniform(self._ptr))

    def uniformf(self):
        """Uniform C float in [0, 1), returned as a numpy.float32."""
        with self._lock:
            return np.float32(L.mom_rng_uniformf(self._ptr))

    def normal(self):
        with self._lock:
            return float(L.mom_rng_normal(self._ptr))

    def fill_normal(self, out, mean=0.0, stddev=1.0):
        """Fill the float32 array `out` in place (no copy) with mean + stddev * normal();
        returns out."""
        addr = f32_address(out, "out", writable=True)
        with self._lock:
            self._check(L.mom_rng_fill_normal(self._ptr, addr, out.size, float(mean),
                                              float(stddev)), "mom_rng_fill_normal")
        return out

    def fill_uniform(self, out, lo=0.0, hi=1.0):
        """Fill the float32 array `out` in place with lo + (hi - lo) * uniform(); returns out."""
        addr = f32_address(out, "out", writable=True)
        with self._lock:
            self._check(L.mom_rng_fill_uniform(self._ptr, addr, out.size, float(lo), float(hi)),
                        "mom_rng_fill_uniform")
        return out

    def normal_array(self, shape, mean=0.0, stddev=1.0):
        """A new float32 array of `shape` filled by fill_normal()."""
        return self.fill_normal(np.empty(shape, dtype=np.float32), mean, stddev)

    def uniform_array(self, shape, lo=0.0, hi=1.0):
        """A new float32 array of `shape` filled by fill_uniform()."""
        return self.fill_uniform(np.empty(shape, dtype=np.float32), lo, hi)

    def sample(self, k, n):
        """k distinct integers from [0, n) in increasing order, as a numpy.uintp array."""
        k = check_size(k, "k")
        n = check_size(n, "n")
        out = np.empty(k, dtype=np.uintp)
        with self._lock:
            self._check(L.mom_rng_sample(self._ptr, out.ctypes.data, k, n), "mom_rng_sample")
        return out

    def get_state(self):
        """The complete state: a numpy.uint64 array of RNG_STATE_WORDS words."""
        st = np.zeros(RNG_STATE_WORDS, dtype=np.uint64)
        with self._lock:
            L.mom_rng_get_state(self._ptr, st.ctypes.data)
        return st

    def set_state(self, state):
        """Restore a state from get_state() (any sequence of RNG_STATE_WORDS integers; copied)."""
        if isinstance(state, np.ndarray) and state.dtype == np.uint64:
            st = np.array(state)
        else:
            st = u64_array(state, "state")
        if st.shape != (RNG_STATE_WORDS,):
            raise ValueError(f"state must have {RNG_STATE_WORDS} words, got shape {st.shape}")
        with self._lock:
            self._check(L.mom_rng_set_state(self._ptr, st.ctypes.data), "mom_rng_set_state")
