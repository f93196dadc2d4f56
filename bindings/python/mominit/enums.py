"""The pinned enum values of the C headers, as IntEnums.

Every function that takes one of these accepts the IntEnum member, its integer value, or its name
as a case-insensitive string ("tanh", "TANH", "softmax_xent").
"""
import enum


class Status(enum.IntEnum):
    OK = 0
    E_INVALID = -1
    E_NOMEM = -2
    E_SHAPE = -3
    E_STATE = -4
    E_IO = -5
    E_FORMAT = -6
    E_DIVERGED = -7
    E_UNSUPPORTED = -8
    E_INTERNAL = -9


class NetKind(enum.IntEnum):
    FEEDFORWARD = 1
    RECURRENT = 2


class Act(enum.IntEnum):
    LINEAR = 0
    LOGISTIC = 1
    TANH = 2
    RELU = 3
    SOFTMAX = 4


class Output(enum.IntEnum):
    LINEAR_SQUARED = 0
    LOGISTIC_XENT = 1
    SOFTMAX_XENT = 2


class BlockKind(enum.IntEnum):
    WEIGHTS = 1
    BIASES = 2
    W_VH = 3
    W_HH = 4
    B_H = 5
    W_HO = 6
    B_O = 7
    H0 = 8


class Metric(enum.IntEnum):
    LOSS = 0
    SQUARED_ERROR = 1
    CLASS_ERROR = 2
    THRESHOLD_ERROR = 3
    WRONG_SYMBOLS = 4


class NetOption(enum.IntEnum):
    CHECK_FINITE = 1
    FLUSH_SUBNORMALS = 2
    THREADS = 3  # library 0.3.0 and later


class InitKind(enum.IntEnum):
    ZERO = 0
    SPARSE = 1
    GAUSSIAN = 2
    GLOROT_UNIFORM = 3
    GLOROT_NORMAL = 4
    ECHO_STATE = 5


class InitOption(enum.IntEnum):
    K = 1
    SCALE = 2
    REPLACEMENT = 3
    TANH_RULE = 4
    RADIUS = 5
    BIAS = 6
    REACHED_RADIUS = 7


class SchedKind(enum.IntEnum):
    CONST = 1
    PAPER_MOMENTUM = 2
    PIECEWISE = 3
    FINAL_PHASE = 4
    ANNEAL = 5
    CALLBACK = 6


class FinalMode(enum.IntEnum):
    REPLACE = 0
    MIN = 1


class OptimKind(enum.IntEnum):
    SGD = 1
    CM = 2
    NAG = 3
    HF = 4


class OptimOption(enum.IntEnum):
    WEIGHT_DECAY = 1
    CLIP_NORM = 2
    FLUSH_SUBNORMALS = 3
    LOOKAHEAD = 4  # read-only (1 / 0): NAG in the look-ahead form; switch with set_lookahead()
    # HF settings (an HF optimizer only; optim.h, docs/hf.md)
    HF_LAMBDA = 100
    HF_MAX_CG = 101
    HF_MIN_CG = 102
    HF_FIXED_CG = 103
    HF_PRECOND = 104
    HF_PRECOND_EXP = 105
    HF_LINE_SEARCH = 106
    HF_CG_BACKTRACK = 107
    HF_ADAPT_LAMBDA = 108
    HF_STRUCT_DAMPING = 109
    HF_CG_DECAY = 110
    # HF report of the last step (read-only)
    HF_LAST_CG_ITERS = 200
    HF_LAST_CG_CHOSEN = 201
    HF_LAST_RHO = 202
    HF_LAST_LAMBDA = 203
    HF_LAST_ALPHA = 204
    HF_LAST_LOSS_BEFORE = 205
    HF_LAST_LOSS_AFTER = 206
    HF_LAST_LS_TRIES = 207
    HF_LAST_GV_PRODUCTS = 208
    HF_LAST_LOSS_EVALS = 209


class ReduceWhat(enum.IntEnum):
    """What a reduction hook combines (Optimizer.set_reduce)."""
    LOSS = 1
    GRADIENT = 2
    FISHER = 3
    CURV_LOSS = 4
    GV = 5


#: flag of Net.recurrent(learn_h0=True)
RNN_LEARN_H0 = 0x1
#: words of a serialized RNG state
RNG_STATE_WORDS = 6


def coerce(cls, value, what):
    """An int for `value` given as a member of `cls`, its int value or its name (any case).

    An int outside the enum is passed through unchanged (the library then reports
    MOM_E_INVALID with its own message), if it fits a C int; a bad string or type, or an int
    beyond a C int (which ctypes would silently wrap into a valid value), raises here."""
    if isinstance(value, cls):
        return int(value)
    if isinstance(value, str):
        try:
            return int(cls[value.strip().upper()])
        except KeyError:
            names = ", ".join(m.name.lower() for m in cls)
            raise ValueError(f"{what}: unknown {cls.__name__} {value!r} (one of: {names})") from None
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np
            if isinstance(value, np.integer):
                return _c_int(int(value), cls, what)
        except ImportError:  # pragma: no cover
            pass
        raise TypeError(f"{what}: expected a {cls.__name__}, an int or a name, "
                        f"got {type(value).__name__}")
    return _c_int(int(value), cls, what)


def _c_int(value, cls, what):
    if not -2**31 <= value < 2**31:
        raise ValueError(f"{what}: {value} is not a {cls.__name__} (not even a C int)")
    return value
