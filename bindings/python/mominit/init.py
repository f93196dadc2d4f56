"""Parameter initializers (init.h): sparse, Gaussian, Glorot, echo-state; the paper's presets."""
import ctypes

import numpy as np

from ._base import Handle, L, check_size, check_u64, f32_address, locked, make_error
from .allocator import c_allocator
from .enums import InitKind, InitOption, coerce
from .net import Net, as_batch
from .rng import Rng

_OPTION_NAMES = {
    "k": InitOption.K, "scale": InitOption.SCALE, "replacement": InitOption.REPLACEMENT,
    "tanh_rule": InitOption.TANH_RULE, "radius": InitOption.RADIUS, "bias": InitOption.BIAS,
}


def _need(obj, cls, name):
    if not isinstance(obj, cls):
        raise TypeError(f"{name} must be a mominit.{cls.__name__}, got {type(obj).__name__}")
    return obj


class Initializer(Handle):
    """An initializer of a given InitKind, configured by options.

    >>> init = Initializer("sparse", k=15, tanh_rule=True)
    >>> init.apply(net, Rng(1))

    Keyword options: k, scale, replacement, tanh_rule, radius, bias (see init.h); they are also
    properties. reached_radius is read-only (radius reached by the last ECHO_STATE apply)."""

    _destroy_fn = L.mom_init_destroy
    _errmsg_fn = L.mom_init_errmsg

    def __init__(self, kind, allocator=None, **options):
        out = ctypes.c_void_p()
        k = coerce(InitKind, kind, "kind")
        for name in options:
            if name not in _OPTION_NAMES:
                raise TypeError(f"unknown initializer option {name!r} "
                                f"(one of: {', '.join(_OPTION_NAMES)})")
        rc = L.mom_init_create(ctypes.byref(out), k, c_allocator(allocator))
        if rc:
            raise make_error(rc, "mom_init_create", detail=f"kind={kind!r}")
        super().__init__(out.value, keep=(allocator,))
        self._kind = InitKind(k)
        try:
            for name, value in options.items():
                self.set(_OPTION_NAMES[name], value)
        except BaseException:
            self.close()
            raise

    @property
    def kind(self):
        # The C API has no kind query for initializers; remember it Python-side.
        return self._kind

    def set(self, option, value):
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        with self._lock:
            self._check(L.mom_init_set(self._ptr, coerce(InitOption, option, "option"),
                                       float(value)), "mom_init_set")

    def get(self, option):
        v = ctypes.c_double()
        with self._lock:
            self._check(L.mom_init_get(ctypes.byref(v), self._ptr,
                                       coerce(InitOption, option, "option")), "mom_init_get")
        return v.value

    def apply(self, net, rng):
        """Apply to every block of `net` it applies to, drawing from `rng` (an Rng; None for
        "zero", which draws nothing)."""
        _need(net, Net, "net")
        if rng is not None:
            _need(rng, Rng, "rng")
        with locked(self, net, rng):
            self._check(L.mom_init_apply(self._ptr, net._ptr, None if rng is None else rng._ptr),
                        "mom_init_apply", net, rng)

    def apply_block(self, net, block, rng):
        """Apply to block index `block` of `net` only (rng None: as for apply())."""
        _need(net, Net, "net")
        if rng is not None:
            _need(rng, Rng, "rng")
        with locked(self, net, rng):
            self._check(L.mom_init_apply_block(self._ptr, net._ptr, check_size(block, "block"),
                                               None if rng is None else rng._ptr),
                        "mom_init_apply_block", net, rng)


def _option_property(opt, doc, is_flag=False):
    def fget(self):
        v = self.get(opt)
        return v != 0 if is_flag else v

    def fset(self, value):
        self.set(opt, value)
    return property(fget, fset, doc=doc)


Initializer.k = _option_property(InitOption.K, "nonzeros per unit (SPARSE, ECHO_STATE)")
Initializer.scale = _option_property(InitOption.SCALE, "weight multiplier")
Initializer.replacement = _option_property(InitOption.REPLACEMENT, "sparse sources with "
                                           "replacement", True)
Initializer.tanh_rule = _option_property(InitOption.TANH_RULE, "the SI tanh rule", True)
Initializer.radius = _option_property(InitOption.RADIUS, "ECHO_STATE target spectral radius")
Initializer.bias = _option_property(InitOption.BIAS, "value of bias blocks")
Initializer.reached_radius = property(lambda self: self.get(InitOption.REACHED_RADIUS),
                                      doc="radius reached by the last ECHO_STATE apply")


def output_bias(net, batch):
    """Set the output biases of `net` to the mean target over `batch` (init.h)."""
    _need(net, Net, "net")
    b = net._batch(as_batch(batch))
    with net._lock:
        net._check(L.mom_init_output_bias(net._ptr, ctypes.byref(b._c)), "mom_init_output_bias")


def preset_ff(net, seed):
    """The paper's feedforward initialization (SI, K = 15) from stream (seed, 0)."""
    _need(net, Net, "net")
    with net._lock:
        net._check(L.mom_init_preset_ff(net._ptr, check_u64(seed, "seed")), "mom_init_preset_ff")


def preset_rnn(net, input_scale, seed, data=None):
    """The paper's recurrent initialization (Table 4); output biases from `data` if given."""
    _need(net, Net, "net")
    b = None if data is None else net._batch(as_batch(data))
    with net._lock:
        net._check(L.mom_init_preset_rnn(net._ptr, float(input_scale), check_u64(seed, "seed"),
                                         None if b is None else ctypes.byref(b._c)),
                   "mom_init_preset_rnn")


def spectral_radius(a, allocator=None):
    """Spectral radius of a square float32 matrix (C-contiguous, read without copying)."""
    if isinstance(a, np.ndarray) and a.ndim == 2 and a.shape[0] != a.shape[1]:
        raise ValueError(f"matrix must be square, got shape {a.shape}")
    addr = f32_address(a, "a")
    if a.ndim != 2:
        raise ValueError(f"a must be a 2-d square matrix, got shape {a.shape}")
    out = ctypes.c_double()
    rc = L.mom_spectral_radius(ctypes.byref(out), addr, a.shape[0], c_allocator(allocator))
    if rc:
        raise make_error(rc, "mom_spectral_radius", detail=f"n={a.shape[0]}")
    return out.value
