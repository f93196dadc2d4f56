"""Python binding of libmominit (ctypes; nothing to compile).

Train deep and recurrent networks with sparse / echo-state initialization and momentum
(Sutskever, Martens, Dahl & Hinton, ICML 2013). The C headers in include/mominit/ are the
reference; docs/python.md describes the binding's rules (arrays, errors, lifetimes).

    import numpy as np, mominit as mi
    with mi.Net.recurrent(2, 100, 1) as net, mi.Optimizer("nag", net, lr=1e-3,
                                                          momentum=0.9) as opt:
        mi.preset_rnn(net, 0.001, seed=1)
        loss = opt.step_net(net, mi.Batch(x, t))   # x: (T, n, 2) float32, t: (T, n, 1)
        mi.Checkpoint().capture(net, opt).save("run.ckpt")   # resume: mominit.ckpt

The library is found through MOMINIT_LIBRARY, else the meson build tree, else the system loader
(see mominit._lib).
"""
import numpy as _np  # noqa: F401 - fail early and clearly without numpy

from . import _lib
from ._base import live_handles
from .allocator import Allocator, CountingAllocator
from .ckpt import Checkpoint
from .enums import (Act, BlockKind, FinalMode, InitKind, InitOption, Metric, NetKind, NetOption,
                    OptimKind, OptimOption, Output, ReduceWhat, RNG_STATE_WORDS, SchedKind,
                    Status)
from .errors import (DivergedError, FormatError, InternalError, InvalidError, MomError,
                     MomIOError, NoMemError, ShapeError, StateError, UnsupportedError, ERRORS)
from .init import Initializer, output_bias, preset_ff, preset_rnn, spectral_radius
from .net import Batch, Block, Net
from .optim import Optimizer
from .rng import Rng
from .sched import Sched

#: version of the loaded C library ("0.6.0") and as a number (MAJOR*10000 + MINOR*100 + PATCH)
version = _lib.version_string
version_number = _lib.version_number
#: path or name the library was loaded from
library_path = _lib.path
__version__ = version


def strerror(status):
    """mom_strerror(): static text for a status code."""
    return _lib.lib.mom_strerror(int(status)).decode()


def status_name(status):
    """mom_status_name(): "MOM_E_SHAPE" for -3."""
    return _lib.lib.mom_status_name(int(status)).decode()


__all__ = [
    "Act", "Allocator", "Batch", "Block", "BlockKind", "Checkpoint", "CountingAllocator",
    "DivergedError",
    "ERRORS", "FinalMode", "FormatError", "Initializer", "InitKind", "InitOption",
    "InternalError", "InvalidError", "Metric", "MomError", "MomIOError", "Net", "NetKind",
    "NetOption", "NoMemError", "Optimizer", "OptimKind", "OptimOption", "Output",
    "ReduceWhat", "RNG_STATE_WORDS", "Rng", "Sched", "SchedKind", "ShapeError", "StateError", "Status",
    "UnsupportedError", "library_path", "live_handles", "output_bias", "preset_ff",
    "preset_rnn", "spectral_radius", "status_name", "strerror", "version", "version_number",
]
