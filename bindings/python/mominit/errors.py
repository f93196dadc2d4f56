"""Exceptions: a library status becomes an instance of a MomError subclass chosen by the status.

Each exception carries
  status    the negative mom_status code,
  name      its symbol ("MOM_E_SHAPE", from mom_status_name),
  strerror  the static text of mom_strerror(status),
  detail    the handle's detail message about the failure (mom_<object>_errmsg), read right after
            the failing call; "" when the library has none (schedule constructors, for example),
  function  the C function that failed.
str(exc) is "function: strerror [NAME]: detail".

Every class also derives from the closest built-in exception (InvalidError and ShapeError from
ValueError, NoMemError from MemoryError, ...), so ``except ValueError`` catches both the binding's
own argument checks and the library's MOM_E_INVALID / MOM_E_SHAPE.
"""
from . import _lib


class MomError(Exception):
    """A call into libmominit returned a non-zero status."""

    status = None

    def __init__(self, status, function="", detail=""):
        status = int(status)
        name = _lib.lib.mom_status_name(status).decode()
        text = _lib.lib.mom_strerror(status).decode()
        msg = f"{text} [{name}]"
        if function:
            msg = f"{function}: {msg}"
        if detail:
            msg = f"{msg}: {detail}"
        super().__init__(msg)
        # set after the base __init__: OSError's resets its own `strerror` slot
        self.status = status
        self.name = name
        self.strerror = text
        self.function = function
        self.detail = detail

    def __reduce__(self):
        return (type(self), (self.status, self.function, self.detail))


class InvalidError(MomError, ValueError):
    """MOM_E_INVALID: an argument is invalid."""


class NoMemError(MomError, MemoryError):
    """MOM_E_NOMEM: an allocation failed."""


class ShapeError(MomError, ValueError):
    """MOM_E_SHAPE: sizes do not match."""


class StateError(MomError, RuntimeError):
    """MOM_E_STATE: the call is not allowed in the handle's current state."""


class MomIOError(MomError, OSError):
    """MOM_E_IO: reading or writing a file or stream failed."""


class FormatError(MomError, ValueError):
    """MOM_E_FORMAT: malformed or damaged data."""


class DivergedError(MomError, ArithmeticError):
    """MOM_E_DIVERGED: a loss, gradient or update became non-finite; state was restored.

    ``loss`` holds the loss the library reported for the failed step when it has one
    (Optimizer.step_net), else None."""
    loss = None


class UnsupportedError(MomError, NotImplementedError):
    """MOM_E_UNSUPPORTED: not supported by this object or build."""


class InternalError(MomError, RuntimeError):
    """MOM_E_INTERNAL: an internal invariant failed (a library bug)."""


#: status code -> exception class
ERRORS = {
    -1: InvalidError,
    -2: NoMemError,
    -3: ShapeError,
    -4: StateError,
    -5: MomIOError,
    -6: FormatError,
    -7: DivergedError,
    -8: UnsupportedError,
    -9: InternalError,
}


def error_for(status, function="", detail=""):
    """The exception for a status (MomError itself for codes this binding does not know)."""
    return ERRORS.get(int(status), MomError)(status, function, detail)
