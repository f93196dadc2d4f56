"""Checkpoints (ckpt.h): save a training state and resume it bit-exactly, or save a network for
inference.

A Checkpoint holds one image of a state, in two phases like the C API:

    saving:  ck.capture(net, opt, rngs)   a snapshot of the network, the optimizer (step count,
                                          velocity, options, schedules) and the data streams;
             ck.save(path) / ck.to_bytes() / ck.save_stream(f)   write the image out;
    loading: ck.load(path) / ck.load_bytes(b) / ck.load_stream(f)   read one in (all checked);
             ck.restore_new()             new Net, Optimizer and Rng objects from it, or
             ck.restore(net, opt, rngs)   into existing ones of the same architecture.

    with mi.Checkpoint() as ck:
        ck.capture(net, opt, [data_rng])
        ck.save("run.ckpt")                              # atomic: old file or new, never a mix
    with mi.Checkpoint.from_file("run.ckpt") as ck:
        net, opt, (data_rng,) = ck.restore_new()         # they outlive the checkpoint
"""
import ctypes
import io
import operator
import os

import numpy as np

from . import _lib
from ._base import Handle, L, check_size, locked, make_error
from .allocator import c_allocator
from .enums import NetKind, OptimKind
from .net import Net
from .optim import Optimizer
from .rng import Rng

#: the checkpoint format version the library writes (MAJOR * 65536 + MINOR)
FORMAT_VERSION = int(L.mom_ckpt_format_version())
#: the most bytes of user data a checkpoint holds (MOM_CKPT_USER_DATA_MAX, 16 MiB)
USER_DATA_MAX = 16777216


def _path(path):
    """A file name as the bytes C receives (str, bytes or os.PathLike)."""
    p = os.fsencode(path)
    if b"\0" in p:
        raise ValueError(f"path contains a NUL character: {path!r}")
    return p


def _bytes_arg(data, name):
    """A uint8 numpy view (no copy) of a bytes-like object, for a `const void *, size_t` pair."""
    if isinstance(data, str):
        raise TypeError(f"{name} must be bytes-like, not str (encode it first)")
    try:
        mv = memoryview(data)
    except TypeError:
        raise TypeError(f"{name} must be bytes-like (bytes, bytearray, memoryview, a numpy "
                        f"array), got {type(data).__name__}") from None
    if not mv.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    return np.frombuffer(mv, dtype=np.uint8)


def _optional(obj, cls, name):
    if obj is not None and not isinstance(obj, cls):
        raise TypeError(f"{name} must be a mominit.{cls.__name__} or None, got "
                        f"{type(obj).__name__}")
    return obj


def _rng_list(rngs):
    if rngs is None:
        return []
    if isinstance(rngs, Rng):
        return [rngs]
    try:
        out = list(rngs)
    except TypeError:
        raise TypeError(f"rngs must be a sequence of mominit.Rng, got "
                        f"{type(rngs).__name__}") from None
    for i, r in enumerate(out):
        if not isinstance(r, Rng):
            raise TypeError(f"rngs[{i}] must be a mominit.Rng, got {type(r).__name__}")
    return out


def _state_handles(net, optim, rngs):
    """The (net, optim, rngs) of capture() and restore(), checked: a Net or None, an Optimizer
    or None, a list of Rng."""
    return _optional(net, Net, "net"), _optional(optim, Optimizer, "optim"), _rng_list(rngs)


def _ptr_array(handles):
    """A C array of the handles' pointers (None when empty); call under their locks."""
    if not handles:
        return None
    return (ctypes.c_void_p * len(handles))(*[h._ptr for h in handles])


def _ptr(h):
    return None if h is None else h._ptr


def _kind(cls, value):
    if not value:
        return None
    try:
        return cls(value)
    except ValueError:  # a kind newer than this binding
        return int(value)


class Checkpoint(Handle):
    """A checkpoint handle (mom_ckpt): one image of a training state, or of a network alone.

    Checkpoint(allocator=None) is empty; Checkpoint.from_file(path) and
    Checkpoint.from_bytes(data) load one. The image is a value: unlike the other handles, a
    Checkpoint can be copied and pickled (as its bytes, plus the user data set for the next
    capture; the allocator is not kept by a pickle). bytes(ck) is ck.to_bytes().

    Every failure of the library raises the MomError subclass of its status with the
    checkpoint's detail message: FormatError (damaged or truncated data, naming the section and
    byte offset; an architecture that does not match in restore()), UnsupportedError (a newer
    format; a callback schedule in capture()), MomIOError (files), StateError (no image; a step
    begun), ShapeError, InvalidError, NoMemError. A failed call changes nothing.

    A method that uses the net or optimizer whose call is running a callback (the reduction hook
    or a schedule function of a step on it, an allocator), and any method called from this
    checkpoint's own stream function, raises RuntimeError."""

    _destroy_fn = L.mom_ckpt_destroy
    _errmsg_fn = L.mom_ckpt_errmsg
    FORMAT_VERSION = FORMAT_VERSION
    USER_DATA_MAX = USER_DATA_MAX

    def __init__(self, allocator=None):
        out = ctypes.c_void_p()
        rc = L.mom_ckpt_create(ctypes.byref(out), c_allocator(allocator))
        if rc:
            raise make_error(rc, "mom_ckpt_create")
        super().__init__(out.value, keep=(allocator,))
        # the library creates restore_new()'s handles with it: they keep it too
        self._allocator = allocator
        # a copy of what set_user_data() set, for copies and pickles (C has no getter for it)
        self._next_user_data = b""

    @classmethod
    def _new_loaded(cls, load, source, allocator):
        self = cls(allocator)
        try:
            load(self, source)
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def from_file(cls, path, allocator=None):
        """A new Checkpoint holding the image of file `path` (load())."""
        return cls._new_loaded(cls.load, path, allocator)

    @classmethod
    def from_bytes(cls, data, allocator=None):
        """A new Checkpoint holding the image in `data` (load_bytes())."""
        return cls._new_loaded(cls.load_bytes, data, allocator)

    # -- saving ---------------------------------------------------------------------------------
    def capture(self, net=None, optim=None, rngs=()):
        """Take a snapshot of a Net, an Optimizer (step count, options, velocity, schedules) and
        the states of `rngs` (an Rng or a sequence of them, in this order: the streams your
        data comes from), replacing the image held. At least one of net and optim. The user
        data set with set_user_data() goes in too. Nothing is kept referenced. Returns self.

        ShapeError: net and optim differ in parameter count; StateError: optim has a step begun
        (capture between steps); UnsupportedError: a schedule of optim is a Sched.callback()
        (its function cannot be saved)."""
        net, optim, rngs = _state_handles(net, optim, rngs)
        with locked(self, net, optim, *rngs) as lk:
            lk.refuse_nested("capture a checkpoint")
            rc = L.mom_ckpt_capture(self._ptr, _ptr(net), _ptr(optim), _ptr_array(rngs),
                                    len(rngs))
            self._check(rc, "mom_ckpt_capture")
        return self

    def save(self, path):
        """Write the image to file `path`, atomically (a temporary file in the same directory,
        synced and renamed over `path`): readers see the old file or the complete new one."""
        p = _path(path)
        with locked(self) as lk:
            lk.refuse_nested("save a checkpoint")
            self._check(L.mom_ckpt_save_file(self._ptr, p), "mom_ckpt_save_file")

    def _to_bytes_locked(self):
        n = L.mom_ckpt_size(self._ptr)
        # one byte at least: with no image the call then fails with its own message
        buf = ctypes.create_string_buffer(max(n, 1))
        self._check(L.mom_ckpt_save_buffer(ctypes.addressof(buf), len(buf), self._ptr),
                    "mom_ckpt_save_buffer")
        return buf.raw[:n]

    def to_bytes(self):
        """The image as bytes (StateError when the checkpoint holds none)."""
        with locked(self) as lk:
            lk.refuse_nested("save a checkpoint")
            return self._to_bytes_locked()

    __bytes__ = to_bytes

    def save_stream(self, f):
        """Write the image to a binary file object (anything with write(bytes)), in one or more
        write() calls; returns nothing. A write() returning a count smaller than what it was
        given is called again with the rest. None counts as everything written only from a
        buffered or text-like object (io.BufferedWriter, BytesIO, most file-likes return the
        count or None after writing it all); from a raw stream (io.RawIOBase) None means
        nothing was written (a non-blocking stream that would block), and the save fails. If
        write() raises, a MomIOError chained from that exception is raised."""
        write = getattr(f, "write", None)
        if not callable(write):
            raise TypeError(f"f must have a write() method, got {type(f).__name__}")
        errors = []
        raw = isinstance(f, io.RawIOBase)

        def on_write(data, size, _user):
            try:
                chunk = ctypes.string_at(data, size)  # data is valid during the call only
                done = 0
                while done < size:
                    n = write(chunk if done == 0 else chunk[done:])
                    if n is None:
                        if raw:
                            raise BlockingIOError("write() returned None: the raw stream would "
                                                  "block and wrote nothing")
                        break
                    n = operator.index(n)
                    if not 0 < n <= size - done:
                        raise OSError(f"write() returned {n} for {size - done} bytes")
                    done += n
                return 0
            except BaseException as e:  # noqa: B902 - nothing may propagate into C
                errors.append(e)
                return 1

        self._stream("mom_ckpt_save_stream", L.mom_ckpt_save_stream,
                     _lib.CKPT_WRITE_FN(on_write), errors)

    # -- loading --------------------------------------------------------------------------------
    def load(self, path):
        """Read file `path` (exactly one image) into the checkpoint and check all of it.
        MomIOError: cannot open or read; FormatError: not a checkpoint, damaged or truncated
        (the message names the section and byte offset); UnsupportedError: a newer format.
        On failure the checkpoint keeps the image it held."""
        p = _path(path)
        with locked(self) as lk:
            lk.refuse_nested("load a checkpoint")
            self._check(L.mom_ckpt_load_file(self._ptr, p), "mom_ckpt_load_file")

    def load_bytes(self, data):
        """As load(), from a bytes-like object (bytes, bytearray, memoryview, a numpy array)
        holding exactly one image. It is read during the call only (the library copies it)."""
        arr = _bytes_arg(data, "data")
        with locked(self) as lk:
            lk.refuse_nested("load a checkpoint")
            self._check(L.mom_ckpt_load_buffer(self._ptr, arr.ctypes.data, arr.size),
                        "mom_ckpt_load_buffer")

    def load_stream(self, f):
        """As load(), from a binary file object (anything with read(n) returning at most n
        bytes, b"" at the end). Exactly the bytes of one image are read, so what follows it in
        the stream is left there. If read() raises, a MomIOError chained from that exception is
        raised."""
        read = getattr(f, "read", None)
        if not callable(read):
            raise TypeError(f"f must have a read() method, got {type(f).__name__}")
        errors = []

        def on_read(buf, size, got, _user):
            try:
                chunk = read(size)
                if chunk is None:
                    raise OSError("read() returned None (a non-blocking stream without data)")
                if not isinstance(chunk, bytes):
                    chunk = _bytes_arg(chunk, "the result of read()").tobytes()
                if len(chunk) > size:
                    raise OSError(f"read({size}) returned {len(chunk)} bytes")
                ctypes.memmove(buf, chunk, len(chunk))
                got[0] = len(chunk)
                return 0
            except BaseException as e:  # noqa: B902 - nothing may propagate into C
                errors.append(e)
                return 1

        self._stream("mom_ckpt_load_stream", L.mom_ckpt_load_stream,
                     _lib.CKPT_READ_FN(on_read), errors)

    def _stream(self, fname, fn, cfunc, errors):
        with locked(self) as lk:
            lk.refuse_nested("use a checkpoint")
            self._lock.barred = "a stream function must not call its own Checkpoint"
            try:
                rc = fn(self._ptr, cfunc, None)
            finally:
                self._lock.barred = None
            if rc:
                exc = make_error(rc, fname, self)
                if errors:
                    raise exc from errors[0]
                raise exc

    # -- what the image holds -------------------------------------------------------------------
    def _q(self, fn):
        with self._lock:
            return fn(self._ptr)

    @property
    def size(self):
        """Size in bytes of the image (what save() writes), 0 when there is none."""
        return int(self._q(L.mom_ckpt_size))

    @property
    def net_kind(self):
        """NetKind of the network in the image, None if it holds none."""
        return _kind(NetKind, self._q(L.mom_ckpt_net_kind))

    @property
    def optim_kind(self):
        """OptimKind of the optimizer in the image, None if it holds none (a network file)."""
        return _kind(OptimKind, self._q(L.mom_ckpt_optim_kind))

    @property
    def num_params(self):
        """Parameter count of the network (or optimizer) in the image, 0 if none."""
        return int(self._q(L.mom_ckpt_num_params))

    @property
    def num_rngs(self):
        """Number of random stream states in the image."""
        return int(self._q(L.mom_ckpt_num_rngs))

    # -- user data ------------------------------------------------------------------------------
    @property
    def user_data(self):
        """The user data of the image held (bytes, a copy; b"" when it has none): after a load,
        the file's; after a capture, what was set then.

        Assigning sets the bytes that the following captures store (set_user_data()); it does
        not change the image held, so reading user_data gives the new bytes only after the next
        capture."""
        p = ctypes.c_void_p()
        n = ctypes.c_size_t()
        with self._lock:
            self._check(L.mom_ckpt_user_data(ctypes.byref(p), ctypes.byref(n), self._ptr),
                        "mom_ckpt_user_data")
            # borrowed from the handle until its next load, capture or set: copy now
            return ctypes.string_at(p.value, n.value) if n.value else b""

    @user_data.setter
    def user_data(self, data):
        self.set_user_data(data)

    def set_user_data(self, data):
        """Set your own bytes (bytes-like; copied) that every following capture() stores with
        the state, until set again; b"" or None clears them. At most USER_DATA_MAX bytes
        (InvalidError). Loading does not change them. The library never interprets them:
        encode them portably (text, fixed little-endian fields)."""
        arr = _bytes_arg(b"" if data is None else data, "data")
        copy = arr.tobytes()  # the copy kept for pickling, made before C changes anything
        with locked(self) as lk:
            lk.refuse_nested("set the user data of a checkpoint")
            self._check(L.mom_ckpt_set_user_data(self._ptr, arr.ctypes.data if arr.size else None,
                                                 arr.size), "mom_ckpt_set_user_data")
            self._next_user_data = copy

    # -- restoring ------------------------------------------------------------------------------
    def restore_new(self, net=None, optim=None, rngs=None):
        """New objects from the image: (net, optim, rngs), a Net or None, an Optimizer or None,
        and a list of Rng. They are ordinary objects of the binding, independent of the
        checkpoint (closing it changes nothing for them), made with its allocator.

        net, optim: None (default) restores the one the image holds, if any; True requires it
        (FormatError if the image lacks it); False skips it. rngs: how many streams (the first
        ones), None for all the image holds.

        The optimizer gets the saved schedules (rebuilt in C), step count, options and
        velocity; the network its architecture, options and parameters, with the default
        thread count (Net.threads). An HF optimizer comes back as an HF Optimizer
        (with the settings and state the image holds, docs/checkpoints.md)."""
        for flag, name in ((net, "net"), (optim, "optim")):
            if flag is not None and not isinstance(flag, bool):
                raise TypeError(f"{name} must be None, True or False, got {type(flag).__name__}")
        with locked(self) as lk:
            lk.refuse_nested("restore a checkpoint")
            ptr = self._ptr
            want_net = (L.mom_ckpt_net_kind(ptr) != 0) if net is None else net
            okind = L.mom_ckpt_optim_kind(ptr)
            want_opt = (okind != 0) if optim is None else optim
            n = int(L.mom_ckpt_num_rngs(ptr)) if rngs is None else check_size(rngs, "rngs")
            c_net = ctypes.c_void_p()
            c_opt = ctypes.c_void_p()
            c_rngs = (ctypes.c_void_p * max(n, 1))()
            rc = L.mom_ckpt_restore_new(ctypes.byref(c_net) if want_net else None,
                                        ctypes.byref(c_opt) if want_opt else None,
                                        c_rngs if n else None, n, ptr)
            self._check(rc, "mom_ckpt_restore_new")
            return self._adopt(c_net.value, c_opt.value, [c_rngs[i] for i in range(n)])

    def _adopt(self, net_ptr, opt_ptr, rng_ptrs):
        """Wrap what restore_new() made; if wrapping fails, destroy what is not wrapped yet
        (the wrapped ones are freed by their finalizers)."""
        todo = [(Net, L.mom_net_destroy, net_ptr), (Optimizer, L.mom_optim_destroy, opt_ptr)]
        todo += [(Rng, L.mom_rng_destroy, p) for p in rng_ptrs]
        made = []
        try:
            for cls, _destroy, p in todo:
                made.append(cls._wrap(p, self._allocator) if p else None)
        except BaseException:
            for _cls, destroy, p in todo[len(made):]:
                if p:
                    destroy(p)
            raise
        return made[0], made[1], made[2:]

    def restore(self, net=None, optim=None, rngs=()):
        """Restore the image into existing objects (each may be omitted): a Net of exactly the
        saved architecture gets its parameters and options (in place: views of net.params see
        the new values), an Optimizer of the saved kind and size its step count, options,
        velocity and schedules (it releases its old schedules, and what they needed from
        Python), each Rng of `rngs` the saved state of the same position.

        FormatError: the image does not match (another architecture, kind or size, or a part
        it lacks; the message names the field); StateError: optim has a step begun. On failure
        nothing is changed."""
        net, optim, rngs = _state_handles(net, optim, rngs)
        with locked(self, net, optim, *rngs) as lk:
            lk.refuse_nested("restore a checkpoint")
            rc = L.mom_ckpt_restore(self._ptr, _ptr(net), _ptr(optim), _ptr_array(rngs),
                                    len(rngs))
            self._check(rc, "mom_ckpt_restore")
            if optim is not None:
                optim._schedules_replaced()

    # -- copies ---------------------------------------------------------------------------------
    def _state(self):
        with locked(self) as lk:
            lk.refuse_nested("copy a checkpoint")
            image = self._to_bytes_locked() if L.mom_ckpt_size(self._ptr) else None
            return image, self._next_user_data

    def __reduce_ex__(self, protocol):
        return (_rebuild, self._state())

    def __copy__(self):
        return _rebuild(*self._state(), allocator=self._allocator)

    def __deepcopy__(self, memo):
        return self.__copy__()

    def __repr__(self):
        if self.closed:
            return "<mominit.Checkpoint closed>"
        try:
            with self._lock:
                ptr = self._ptr
                size = L.mom_ckpt_size(ptr)
                nk = _kind(NetKind, L.mom_ckpt_net_kind(ptr))
                ok = _kind(OptimKind, L.mom_ckpt_optim_kind(ptr))
                nr = L.mom_ckpt_num_rngs(ptr)
                npar = L.mom_ckpt_num_params(ptr)
        except (RuntimeError, ValueError):  # from a stream function, or closed meanwhile
            return super().__repr__()
        if not size:
            return "<mominit.Checkpoint empty>"
        what = []
        if nk is not None:
            what.append(f"{getattr(nk, 'name', nk)} net")
        if ok is not None:
            what.append(f"{getattr(ok, 'name', ok)} optimizer")
        what.append(f"{nr} rng{'' if nr == 1 else 's'}")
        return f"<mominit.Checkpoint {size} bytes: {', '.join(what)}, {npar} params>"


def _rebuild(image, next_user_data, allocator=None):
    """A Checkpoint from what __reduce_ex__ saved (pickle) or a copy."""
    ck = Checkpoint(allocator)
    try:
        if image is not None:
            ck.load_bytes(image)
        if next_user_data:
            ck.set_user_data(next_user_data)
    except BaseException:
        ck.close()
        raise
    return ck
