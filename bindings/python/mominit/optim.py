"""Optimizers (optim.h): SGD, CM and NAG with momentum, and Hessian-free (HF).

Ways to drive a step:
  1. any model (SGD, CM, NAG): ``point = opt.begin(params)``; compute loss and gradient at
     `point`; ``opt.end(params, loss, grad)``; or ``opt.step(params, fn)``, which does the three;
  2. a Net: ``loss = opt.step_net(net, batch)`` (any kind; on HF one batch for both data sets);
  3. HF on a Net: ``loss = opt.step_hf(net, grad_batch, curv_batch)``.

NAG may keep the parameter vector in the look-ahead form (``opt.set_lookahead(net)``): the vector
then holds theta + mu v, and ``opt.get_theta(net)`` gives theta.
"""
import ctypes
import math

from ._base import (Handle, L, check_size, f32_address, locked, make_error, no_overlap,
                    out_f32)
from .allocator import c_allocator
from ._lib import REDUCE_FN
from .enums import OptimKind, OptimOption, ReduceWhat, coerce
from .errors import DivergedError
from .net import Net
from .sched import as_sched, pop_pending


class Optimizer(Handle):
    """An optimizer of kind SGD, CM, NAG or HF for a vector of n_params floats.

    n_params may be given as a Net (its num_params). lr and momentum accept a Sched or a number
    (then a constant schedule is made); weight_decay and clip_norm are options (also
    properties). Defaults: lr 0.01, momentum 0.9 (constant), no decay, no clipping.

    HF (docs/hf.md): lr is its fixed step size (used only with the line search off, default 1),
    momentum its CG start decay (default 0.95; set_cg_decay() is the same call); its settings
    are the OptimOption.HF_* options (get()/set(), also as keyword arguments
    ``hf={"lambda": 1.0, "max_cg": 250, ...}``) and its report of the last step is
    hf_report(). clip_norm is not supported on HF (UnsupportedError).

    The optimizer holds a C reference to each schedule it is given, so the Sched objects may be
    closed at once. It keeps referenced only the Python objects those schedules need while they
    live (callback functions, allocators), and only until the C optimizer is destroyed or given
    another schedule."""

    _destroy_fn = L.mom_optim_destroy
    _errmsg_fn = L.mom_optim_errmsg
    _step_locks = None  # during step_net()/step_hf(): the locks the reduction hook may not take

    def __init__(self, kind, n_params, lr=None, momentum=None, weight_decay=None,
                 clip_norm=None, allocator=None, hf=None):
        self._begun = None  # the params array of a begun step (borrowed by the C side)
        if isinstance(n_params, Net):
            n_params = n_params.num_params
        n = check_size(n_params, "n_params", 1)
        k = coerce(OptimKind, kind, "kind")
        if hf is not None and k != OptimKind.HF:
            raise ValueError("hf options are for an HF optimizer")
        out = ctypes.c_void_p()
        rc = L.mom_optim_create(ctypes.byref(out), k, n, c_allocator(allocator))
        if rc:
            raise make_error(rc, "mom_optim_create", detail=f"kind={kind!r}, n_params={n}")
        super().__init__(out.value, keep=(allocator,))
        self._n = n
        try:
            if lr is not None:
                self.set_lr(lr)
            if momentum is not None:
                self.set_momentum(momentum)
            if weight_decay is not None:
                self.weight_decay = weight_decay
            if clip_norm is not None:
                self.clip_norm = clip_norm
            for key, value in (hf or {}).items():
                self.set("HF_" + key if isinstance(key, str) and
                         not key.strip().upper().startswith("HF_") else key, value)
        except BaseException:
            self.close()
            raise

    @classmethod
    def _wrap(cls, ptr, allocator):
        """Adopt a C optimizer made by the library (Checkpoint.restore_new): the object owns it
        as if created here. Its schedules were made with `allocator`, which the base keeps."""
        self = cls.__new__(cls)
        self._begun = None
        Handle.__init__(self, ptr, keep=(allocator,))
        self._n = int(L.mom_optim_num_params(ptr))
        return self

    def _on_close(self):
        self._begun = None

    def _schedules_replaced(self):
        """The C optimizer released its schedules and holds new ones made with its own allocator
        (Checkpoint.restore): what the old ones needed from Python is no longer needed. Call
        under the lock."""
        self._owner.keep.pop("lr", None)
        self._owner.keep.pop("momentum", None)

    # -- schedules and options ------------------------------------------------------------------
    def _set_sched(self, slot, cfn, fname, value):
        sched, created = as_sched(value, slot)
        try:
            with locked(self, sched):
                self._check(cfn(self._ptr, sched._ptr), fname)
                # The C optimizer now holds the schedule (and released the previous one): keep
                # what it needs for as long as the C optimizer exists.
                self._owner.keep[slot] = sched.needs
        finally:
            if created:
                sched.close()

    def set_lr(self, sched):
        """Use `sched` (a Sched or a number) for the learning rate."""
        self._set_sched("lr", L.mom_optim_set_lr, "mom_optim_set_lr", sched)

    def set_momentum(self, sched):
        """Use `sched` (a Sched or a number) for the momentum."""
        self._set_sched("momentum", L.mom_optim_set_momentum, "mom_optim_set_momentum", sched)

    def set(self, option, value):
        with self._lock:
            self._check(L.mom_optim_set(self._ptr, coerce(OptimOption, option, "option"),
                                        float(value)), "mom_optim_set")

    def get(self, option):
        v = ctypes.c_double()
        with self._lock:
            # HF_CG_DECAY reads the decay schedule: a callback's exception is raised here, not
            # left pending for the next call that looks
            self._raise(L.mom_optim_get(ctypes.byref(v), self._ptr,
                                        coerce(OptimOption, option, "option")), "mom_optim_get")
        return v.value

    def set_cg_decay(self, sched):
        """HF: use `sched` (a Sched or a number) for the CG start decay; on HF the same as
        set_momentum() (HF's momentum schedule is its CG decay). UnsupportedError on the other
        optimizers, whose momentum it is not."""
        self._set_sched("momentum", L.mom_optim_set_cg_decay, "mom_optim_set_cg_decay", sched)

    _HF_REPORT = ("cg_iters", "cg_chosen", "rho", "lambda", "alpha", "loss_before",
                  "loss_after", "ls_tries", "gv_products", "loss_evals")

    def hf_report(self):
        """HF: the report of the last step, a dict {cg_iters, cg_chosen, rho, lambda, alpha,
        loss_before, loss_after, ls_tries, gv_products, loss_evals} (OptimOption.HF_LAST_*;
        counts as ints; NaN values before the first step or after reset()).
        UnsupportedError on another kind."""
        out = {}
        for i, name in enumerate(self._HF_REPORT):
            v = self.get(OptimOption.HF_LAST_CG_ITERS + i)
            if name in ("cg_iters", "cg_chosen", "ls_tries", "gv_products", "loss_evals") and \
                    math.isfinite(v):
                v = int(v)
            out[name] = v
        return out

    weight_decay = property(lambda self: self.get(OptimOption.WEIGHT_DECAY),
                            lambda self, v: self.set(OptimOption.WEIGHT_DECAY, v),
                            doc="L2 coefficient w >= 0")
    clip_norm = property(lambda self: self.get(OptimOption.CLIP_NORM),
                         lambda self, v: self.set(OptimOption.CLIP_NORM, v),
                         doc="gradient norm bound, 0 for none")
    lookahead = property(lambda self: self.get(OptimOption.LOOKAHEAD) != 0.0,
                         doc="True when NAG is in the look-ahead form (read-only: "
                             "set_lookahead() switches it, converting the parameters)")

    # -- several workers ------------------------------------------------------------------------
    def set_reduce(self, fn):
        """Install a reduction hook for data-parallel training (docs/distributed.md), or remove
        it with None. step_net() then calls ``fn(values, what)`` with this worker's loss (a
        float64 array of 1) and gradient (a float32 array of num_params), what being a
        ReduceWhat, before using them (an HF step also passes its Fisher diagonal, its
        curvature-data losses and its Gauss-Newton products: FISHER, CURV_LOSS, GV); fn must
        overwrite ``values`` in place with the mean over all workers' cases, the same on every
        worker. With mpi4py and equal shares::

            def mean(values, what):
                comm.Allreduce(MPI.IN_PLACE, values)
                values /= comm.size

        If fn raises, the step fails (nothing changes) and step_net() raises a MomError
        chained from fn's exception. The arrays are copies, written back when fn returns: fn
        may keep them, but writes to them after it returns are not seen."""
        if fn is not None and not callable(fn):
            raise TypeError(f"fn must be callable or None, got {type(fn).__name__}")
        if fn is None:
            with self._lock:
                self._check(L.mom_optim_set_reduce(self._ptr, REDUCE_FN(), None),
                            "mom_optim_set_reduce")
                self._owner.keep.pop("reduce", None)
                self._reduce_exc = None
            return
        import weakref
        import numpy as np
        # weak: the C object keeps the trampoline alive, and a strong reference back to this
        # Optimizer would keep it from ever being collected
        owner_ref = weakref.ref(self)

        def trampoline(values, count, ctype, what, _user):
            owner = owner_ref()
            lock = owner._lock if owner is not None else None
            try:
                dtype = np.float32 if ctype == 1 else np.float64
                buf = (ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(values)
                view = np.frombuffer(buf, dtype=dtype, count=count)
                # a copy: fn may keep what it gets, but not the library's memory behind it
                arr = view.copy()
                # optim.h: the hook must not call its optimizer, nor the network of the step
                # (whose Gauss-Newton state an HF step is using, on batches it keeps alive)
                locks = ([] if owner is None else
                         owner._step_locks if owner._step_locks else [lock])
                for lk in locks:
                    lk.barred = ("the reduction hook must not call its own optimizer or the "
                                 "network of the step")
                try:
                    fn(arr, ReduceWhat(what))
                finally:
                    for lk in locks:
                        lk.barred = None
                view[...] = arr
                return 0
            except BaseException as e:  # reported by the step that called the hook
                if owner is not None:
                    owner._reduce_exc = e
                return -1  # MOM_E_INVALID

        cfn = REDUCE_FN(trampoline)
        with self._lock:
            self._check(L.mom_optim_set_reduce(self._ptr, cfn, None), "mom_optim_set_reduce")
            # the C optimizer calls cfn from now on: keep it alive as long as the C object
            self._owner.keep["reduce"] = (cfn, fn)
            self._reduce_exc = None

    # -- queries --------------------------------------------------------------------------------
    def _sched_needs(self):
        keep = self._owner.keep if self._owner is not None else {}
        return tuple(keep.get("lr", ())) + tuple(keep.get("momentum", ()))

    def _q(self, fn):
        with self._lock:
            v = fn(self._ptr)
            e = pop_pending(self._sched_needs())
        if e is not None:
            raise e
        return v

    @property
    def kind(self):
        return OptimKind(self._q(L.mom_optim_kind_of))

    @property
    def steps(self):
        return int(self._q(L.mom_optim_steps))

    @property
    def momentum(self):
        """mu_t of the next step (0 for SGD)."""
        return self._q(L.mom_optim_momentum)

    @property
    def lr(self):
        """eps_t of the next step."""
        return self._q(L.mom_optim_lr)

    @property
    def num_params(self):
        return int(self._q(L.mom_optim_num_params))

    @property
    def velocity(self):
        """The velocity (read-only float32 view, no copy; for SGD the last step). The view keeps
        the C optimizer alive."""
        with self._lock:
            return self._view(L.mom_optim_velocity(self._ptr), self._n, readonly=True)

    @property
    def begun(self):
        """True between begin() and end()/cancel()."""
        return self._begun is not None

    def reset(self):
        """Zero the velocity and the step count. StateError in NAG's look-ahead form (the
        vector holds theta + mu v; switch back with set_lookahead(params, False) first)."""
        with self._lock:
            self._check(L.mom_optim_reset(self._ptr), "mom_optim_reset")

    # -- the look-ahead form (NAG) --------------------------------------------------------------
    def _params_arg(self, params, writable=False):
        """(array, address, net or None) of a parameter vector given as a Net (its parameter
        vector) or as a float32 array of num_params elements."""
        net = params if isinstance(params, Net) else None
        arr = net.params if net is not None else params
        return arr, f32_address(arr, "params", size=self._n, writable=writable), net

    def set_lookahead(self, params, on=True):
        """NAG: switch to the look-ahead form (on=True) or back to the true-theta form (False),
        converting `params` in place: theta -> theta + mu_t v, or back. params is a Net (its
        parameter vector) or a writable float32 array of num_params elements: the vector the
        steps update. In the look-ahead form that vector holds the point where NAG takes its
        gradient (as PyTorch's nesterov=True), a step reads and writes it once, and begin()
        returns it as the point; the iterates are the true-theta form's up to float rounding.
        Read theta with get_theta() (to evaluate or export), or switch back. Switching to the
        current form changes nothing. UnsupportedError (not NAG), StateError (between begin()
        and end()), InvalidError (the momentum schedule gives a value outside [0, 1] at this
        step), DivergedError (a converted value would overflow: nothing changed)."""
        arr, addr, net = self._params_arg(params, writable=True)
        with locked(self, net):
            self._raise(L.mom_optim_set_lookahead(self._ptr, addr, 1 if on else 0),
                        "mom_optim_set_lookahead")

    def get_theta(self, params, out=None):
        """The true parameters theta of `params` (a Net or a float32 array of num_params
        elements): params - mu v in the look-ahead form, else a copy of params. Returns a new
        float32 array of params' shape, or fills `out` (float32, num_params elements, not
        overlapping params). The optimizer is not changed."""
        arr, addr, net = self._params_arg(params)
        out, o = out_f32(out, "out", arr.shape)
        no_overlap(out, arr, "out", "params")
        with locked(self, net):
            self._check(L.mom_optim_get_theta(o, self._ptr, addr), "mom_optim_get_theta")
        return out

    # -- steps ----------------------------------------------------------------------------------
    def _raise(self, rc, fname, *others, loss=None):
        """Raise for rc (chained from a callback schedule's exception, if one is pending), or
        the pending exception alone when rc is 0."""
        pending = pop_pending(self._sched_needs())
        hook_exc, self._reduce_exc = getattr(self, "_reduce_exc", None), None
        if pending is None:
            pending = hook_exc
        if rc:
            exc = make_error(rc, fname, self, *others)
            if isinstance(exc, DivergedError):
                exc.loss = loss
            if pending is not None:
                raise exc from pending
            raise exc
        if pending is not None:
            raise pending

    def begin(self, params):
        """Start a step on `params` (float32, C-contiguous, writable, num_params elements; used
        in place and referenced until the step ends). Returns the point where the gradient is
        needed: `params` itself for SGD and CM, a read-only view of the optimizer's look-ahead
        buffer for NAG (valid until end()); for NAG in the look-ahead form `params` itself, or
        that view when the momentum changed since the vector's point was formed."""
        addr = f32_address(params, "params", size=self._n, writable=True)
        pt = ctypes.c_void_p()
        with self._lock:
            rc = L.mom_optim_begin(ctypes.byref(pt), self._ptr, addr)
            if rc == 0:
                self._begun = params
            try:
                self._raise(rc, "mom_optim_begin")
            except BaseException:
                if rc == 0:  # a callback schedule failed although the step began
                    L.mom_optim_cancel(self._ptr)
                    self._begun = None
                raise
            if pt.value == addr:
                return params
            return self._view(pt.value, self._n, shape=params.shape, readonly=True)

    def end(self, params, loss, grad):
        """Finish the step with the loss and gradient (float32, num_params elements, not
        overlapping params) at the point. On DivergedError nothing changed and the step stays
        begun (end() again or cancel())."""
        addr = f32_address(params, "params", size=self._n, writable=True)
        g = f32_address(grad, "grad", size=self._n)
        no_overlap(grad, params, "grad", "params")
        with self._lock:
            rc = L.mom_optim_end(self._ptr, addr, float(loss), g)
            if rc == 0:
                self._begun = None
            self._raise(rc, "mom_optim_end")

    def cancel(self):
        """Abandon a begun step."""
        with self._lock:
            rc = L.mom_optim_cancel(self._ptr)
            if rc == 0:
                self._begun = None
            self._check(rc, "mom_optim_cancel")

    def step(self, params, fn):
        """One step on any model: point = begin(params); loss, grad = fn(point);
        end(params, loss, grad). Returns the loss. If fn raises or end() fails, the step is
        cancelled (nothing changes) and the exception propagates."""
        point = self.begin(params)
        try:
            loss, grad = fn(point)
            self.end(params, loss, grad)
        except BaseException:
            with self._lock:
                if self._begun is not None and self._owner is not None:
                    L.mom_optim_cancel(self._ptr)
                    self._begun = None
            raise
        return loss

    def step_net(self, net, batch):
        """One step on `net` with a minibatch (Batch or tuple); returns the loss at the point.
        A DivergedError carries that loss in its ``loss`` attribute. On an HF optimizer this is
        step_hf(net, batch): the net then keeps the batch referenced (see step_hf())."""
        if not isinstance(net, Net):
            raise TypeError(f"net must be a mominit.Net, got {type(net).__name__}")
        b = net._batch(batch)
        loss = ctypes.c_double(math.nan)
        with locked(self, net) as held:
            hf = L.mom_optim_kind_of(self._ptr) == OptimKind.HF
            self._step_locks = held.locks  # barred while the reduction hook runs
            try:
                rc = L.mom_optim_step_net(ctypes.byref(loss), self._ptr, net._ptr,
                                          ctypes.byref(b._c))
            finally:
                self._step_locks = None
            if hf:  # the step ran mom_net_gv_begin() on b (or may have, if it failed)
                net._gv_hold(b, rc == 0)
            self._raise(rc, "mom_optim_step_net", net, loss=loss.value)
        return loss.value

    def step_hf(self, net, grad_batch, curv_batch=None):
        """One Hessian-free iteration on `net` (HF only; docs/hf.md): gradient (and Fisher
        diagonal) on grad_batch, Gauss-Newton products and rho on curv_batch (None: grad_batch),
        line search on grad_batch. Returns the mean loss on grad_batch before the step (without
        the weight-decay term); a DivergedError carries it in ``loss`` when it was computed. On
        any failure the parameters and the optimizer state are unchanged.

        The step leaves the curvature batch in the net (mom_net_gv_begin(): the C net keeps
        pointers into its arrays), so the Net keeps that Batch referenced until the next call
        that replaces it (Net.gv_begin(), Net.check_gv(), another HF step) or close(): deleting
        your references to it is safe, but do not modify its arrays while the net may still
        use them (Net.gv())."""
        if not isinstance(net, Net):
            raise TypeError(f"net must be a mominit.Net, got {type(net).__name__}")
        gb = net._batch(grad_batch)
        cb = gb if curv_batch is None else net._batch(curv_batch)
        loss = ctypes.c_double(math.nan)
        with locked(self, net) as held:
            self._step_locks = held.locks  # barred while the reduction hook runs
            try:
                rc = L.mom_optim_step_hf(ctypes.byref(loss), self._ptr, net._ptr,
                                         ctypes.byref(gb._c),
                                         None if curv_batch is None else ctypes.byref(cb._c))
            finally:
                self._step_locks = None
            if L.mom_optim_kind_of(self._ptr) == OptimKind.HF:  # else refused before any use
                net._gv_hold(cb, rc == 0)
            self._raise(rc, "mom_optim_step_hf", net, loss=loss.value)
        return loss.value

    def train(self, net, batches):
        """step_net() over an iterable of batches; returns the list of losses."""
        return [self.step_net(net, b) for b in batches]
