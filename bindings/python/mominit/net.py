"""Networks (net.h): feedforward and recurrent nets, minibatch views, losses, gradients,
Gauss-Newton products, forward passes, metrics and derivative checks."""
import ctypes
from collections import namedtuple

import numpy as np

from ._base import Handle, L, check_size, check_u64, f32_address, make_error, no_overlap, out_f32
from .allocator import c_allocator
from .enums import Act, BlockKind, Metric, NetKind, NetOption, Output, RNN_LEARN_H0, coerce
from . import _lib

Block = namedtuple("Block", "index kind layer rows cols offset")
Block.__doc__ = """One parameter block: kind (BlockKind), feedforward layer, shape rows x cols,
offset of its first float in the parameter vector."""


def _f32_input(a, name, copy):
    if a is None:
        return None
    if copy:
        c = np.ascontiguousarray(a, dtype=np.float32)  # no copy when a already fits...
        if not c.flags.aligned:  # ...but a misaligned float32 array would pass as it is
            c = np.array(c, order="C", copy=True)  # fresh memory is aligned
        return c
    f32_address(a, name)
    return a


def _fresh_view(a):
    return None if a is None else a.view()


class Batch:
    """A view of a minibatch in numpy memory (struct mom_batch). Nothing is copied by default.

    Feedforward: ``inputs`` has shape (n, n_in) and ``targets`` (n, n_out).
    Recurrent:   time-major ``inputs`` (T, n, n_in), ``targets`` (T, n, n_out), optional step
                 weights ``mask`` (T, n) and sequence ``lengths`` (n,), each in 1..T.
    ``targets`` may be None for forward passes.

    Float arrays must be numpy float32 and C-contiguous (TypeError / ValueError otherwise); the
    batch holds references to them, so they stay alive while it exists. With ``copy=True`` any
    array-like is converted instead (a float32 C-contiguous copy when needed; numpy.asarray
    semantics: arrays that already fit are still not copied). ``lengths`` is the documented
    exception: any integer sequence is accepted and converted to a size_t (numpy.uintp) array,
    copied unless it already is one.

    The library never keeps the pointers beyond a call, except Net.gv_begin() and the HF steps
    (Optimizer.step_hf(), Optimizer.step_net() on HF), which leave the curvature batch in the
    network for Gauss-Newton products: the Net then references that Batch until the next call
    that replaces it (gv_begin(), check_gv(), an HF step) or close().
    """

    __slots__ = ("_inputs", "_targets", "_mask", "_lengths_arr", "_bases", "_c", "__weakref__")

    # Read-only: the C view holds the arrays' addresses and sizes, so replacing one would leave
    # the library reading memory that may be freed. Build a new Batch instead. The batch keeps
    # views of its own (they own no memory, so nothing can resize them) and the arrays themselves
    # (two references besides the caller's: numpy's resize() refuses an array referenced so), and
    # hands out fresh views: reshaping what the properties return, or the caller's own arrays,
    # cannot change the shapes checked here.
    inputs = property(lambda self: _fresh_view(self._inputs))
    targets = property(lambda self: _fresh_view(self._targets))
    mask = property(lambda self: _fresh_view(self._mask))
    lengths = property(lambda self: _fresh_view(self._lengths_arr))

    def __init__(self, inputs, targets=None, mask=None, lengths=None, copy=False):
        inputs = _f32_input(inputs, "inputs", copy)
        targets = _f32_input(targets, "targets", copy)
        mask = _f32_input(mask, "mask", copy)
        if inputs is None:
            raise TypeError("inputs is required")
        if inputs.ndim == 2:
            n, steps = inputs.shape[0], 0
            if mask is not None or lengths is not None:
                raise ValueError("mask and lengths are for recurrent batches (3-d inputs)")
            if targets is not None and (targets.ndim != 2 or targets.shape[0] != n):
                raise ValueError(f"targets must have shape (n={n}, n_out), got {targets.shape}")
        elif inputs.ndim == 3:
            steps, n = inputs.shape[0], inputs.shape[1]
            if targets is not None and (targets.ndim != 3 or targets.shape[:2] != (steps, n)):
                raise ValueError(f"targets must have shape (T={steps}, n={n}, n_out), "
                                 f"got {targets.shape}")
            if mask is not None and mask.shape != (steps, n):
                raise ValueError(f"mask must have shape (T={steps}, n={n}), got {mask.shape}")
            if lengths is not None:
                lengths = self._lengths(lengths, n)
        else:
            raise ValueError("inputs must be 2-d (n, n_in) for a feedforward batch or 3-d "
                             f"(T, n, n_in) for a recurrent one, got shape {inputs.shape}")
        self._bases = (inputs, targets, mask, lengths)
        inputs, targets, mask, lengths = (_fresh_view(a) for a in self._bases)
        self._inputs, self._targets, self._mask, self._lengths_arr = inputs, targets, mask, lengths
        addr = lambda a: None if a is None else a.ctypes.data  # noqa: E731
        self._c = _lib.mom_batch(n, steps, addr(inputs), addr(targets), addr(mask), addr(lengths))

    @staticmethod
    def _lengths(lengths, n):
        if isinstance(lengths, np.ndarray) and lengths.dtype == np.uintp and \
                lengths.flags.c_contiguous and lengths.flags.aligned:
            arr = lengths
        else:
            src = np.asarray(lengths)
            if src.dtype.kind not in "iu":
                raise TypeError(f"lengths must be integers, got dtype {src.dtype}")
            if src.size and src.min() < 0:
                raise ValueError("lengths must not be negative")
            arr = np.ascontiguousarray(src, dtype=np.uintp)
        if arr.shape != (n,):
            raise ValueError(f"lengths must have shape (n={n},), got {arr.shape}")
        return arr

    @property
    def n(self):
        return self._c.n

    @property
    def steps(self):
        return self._c.steps

    @property
    def recurrent(self):
        return self._inputs.ndim == 3

    @property
    def n_in(self):
        return self._inputs.shape[-1]

    @property
    def n_out(self):
        return None if self._targets is None else self._targets.shape[-1]

    def __repr__(self):
        kind = f"T={self.steps}, " if self.recurrent else ""
        return f"<mominit.Batch {kind}n={self.n}, n_in={self.n_in}, n_out={self.n_out}>"


def as_batch(batch):
    """A Batch from a Batch or a tuple (inputs, targets[, mask[, lengths]]) of float32 arrays."""
    if isinstance(batch, Batch):
        return batch
    if isinstance(batch, tuple):
        return Batch(*batch)
    raise TypeError(f"expected a mominit.Batch or a tuple (inputs, targets, ...), got "
                    f"{type(batch).__name__}")


class Net(Handle):
    """A feedforward or recurrent network (mom_net). Create with Net.feedforward() or
    Net.recurrent(). Parameters start at zero: use an initializer (mominit.init)."""

    _destroy_fn = L.mom_net_destroy
    _errmsg_fn = L.mom_net_errmsg

    def __init__(self, *args, **kwargs):
        raise TypeError("use Net.feedforward() or Net.recurrent()")

    @classmethod
    def _wrap(cls, ptr, allocator):
        self = cls.__new__(cls)
        Handle.__init__(self, ptr, keep=(allocator,))
        self._gv_keep = None
        return self

    @classmethod
    def feedforward(cls, sizes, hidden_act=Act.TANH, output=Output.LINEAR_SQUARED,
                    allocator=None):
        """A feedforward net with len(sizes) - 1 weight layers.

        sizes: layer widths, inputs first. hidden_act: one activation for every hidden layer,
        or a sequence of len(sizes) - 2. output: an Output."""
        sizes = [check_size(s, "sizes[i]") for s in sizes]
        if len(sizes) < 2:
            raise ValueError("sizes needs at least 2 widths (inputs and outputs)")
        n_layers = len(sizes) - 1
        if isinstance(hidden_act, (list, tuple, np.ndarray)):
            acts = [coerce(Act, a, "hidden_act") for a in hidden_act]
            if len(acts) != n_layers - 1:
                raise ValueError(f"hidden_act needs {n_layers - 1} activations, got {len(acts)}")
        else:
            acts = [coerce(Act, hidden_act, "hidden_act")] * (n_layers - 1)
        c_sizes = (ctypes.c_size_t * len(sizes))(*sizes)
        c_acts = (ctypes.c_int * max(1, len(acts)))(*acts)
        out = ctypes.c_void_p()
        rc = L.mom_net_create_ff(ctypes.byref(out), n_layers, c_sizes, c_acts,
                                 coerce(Output, output, "output"), c_allocator(allocator))
        if rc:
            raise make_error(rc, "mom_net_create_ff",
                             detail=f"sizes={sizes}, hidden_act={acts}, output={output!r}")
        return cls._wrap(out.value, allocator)

    @classmethod
    def recurrent(cls, n_in, n_hidden, n_out, hidden_act=Act.TANH,
                  output=Output.LINEAR_SQUARED, learn_h0=False, allocator=None):
        """A recurrent net h[t] = act(W_hh h[t-1] + W_vh x[t] + b_h), y[t] = out(W_ho h[t] + b_o)."""
        out = ctypes.c_void_p()
        rc = L.mom_net_create_rnn(ctypes.byref(out), check_size(n_in, "n_in"),
                                  check_size(n_hidden, "n_hidden"), check_size(n_out, "n_out"),
                                  coerce(Act, hidden_act, "hidden_act"),
                                  coerce(Output, output, "output"),
                                  RNN_LEARN_H0 if learn_h0 else 0, c_allocator(allocator))
        if rc:
            raise make_error(rc, "mom_net_create_rnn",
                             detail=f"n_in={n_in}, n_hidden={n_hidden}, n_out={n_out}")
        return cls._wrap(out.value, allocator)

    def _on_close(self):
        self._gv_keep = None

    # -- queries --------------------------------------------------------------------------------
    def _q(self, fn, *args):
        with self._lock:
            return fn(self._ptr, *args)

    @property
    def kind(self):
        return NetKind(self._q(L.mom_net_kind_of))

    @property
    def is_recurrent(self):
        return self.kind == NetKind.RECURRENT

    @property
    def num_params(self):
        return int(self._q(L.mom_net_num_params))

    @property
    def num_inputs(self):
        return int(self._q(L.mom_net_num_inputs))

    @property
    def num_outputs(self):
        return int(self._q(L.mom_net_num_outputs))

    @property
    def output(self):
        return Output(self._q(L.mom_net_output))

    @property
    def num_layers(self):
        return int(self._q(L.mom_net_num_layers))

    def layer_size(self, layer):
        return int(self._q(L.mom_net_layer_size, check_size(layer, "layer")))

    def layer_act(self, layer):
        """The Act of unit layer `layer`; ValueError when out of range."""
        v = self._q(L.mom_net_layer_act, check_size(layer, "layer"))
        if v < 0:
            raise ValueError(f"layer {layer} out of range (net has {self.num_layers} unit layers)")
        return Act(v)

    @property
    def workspace_bytes(self):
        return int(self._q(L.mom_net_workspace_bytes))

    @property
    def params(self):
        """The parameter vector: a float32 numpy view of mom_net_params() (no copy). Writes go
        straight into the network. The view keeps the C network alive, even after close()."""
        with self._lock:
            addr = L.mom_net_params(self._ptr)
            n = L.mom_net_num_params(self._ptr)
            return self._view(addr, n)

    @params.setter
    def params(self, value):
        self.params[...] = value

    @property
    def num_blocks(self):
        return int(self._q(L.mom_net_num_blocks))

    def block(self, index):
        """Describe block `index` as a Block."""
        index = check_size(index, "index")
        kind = ctypes.c_int()
        layer, rows, cols, off = (ctypes.c_size_t() for _ in range(4))
        with self._lock:
            self._check(L.mom_net_block(self._ptr, index, ctypes.byref(kind), ctypes.byref(layer),
                                        ctypes.byref(rows), ctypes.byref(cols), ctypes.byref(off)),
                        "mom_net_block")
        return Block(index, BlockKind(kind.value), layer.value, rows.value, cols.value, off.value)

    def blocks(self):
        """Every Block in storage order."""
        return [self.block(i) for i in range(self.num_blocks)]

    def find_block(self, kind, layer=0):
        """Index of the first block of `kind` (a BlockKind) in `layer`."""
        idx = ctypes.c_size_t()
        with self._lock:
            self._check(L.mom_net_find_block(ctypes.byref(idx), self._ptr,
                                             coerce(BlockKind, kind, "kind"),
                                             check_size(layer, "layer")), "mom_net_find_block")
        return idx.value

    def block_view(self, index):
        """A (rows, cols) float32 view of block `index` inside params (no copy)."""
        b = self.block(index)
        return self.params[b.offset:b.offset + b.rows * b.cols].reshape(b.rows, b.cols)

    # -- options --------------------------------------------------------------------------------
    def set(self, option, value):
        with self._lock:
            self._check(L.mom_net_set(self._ptr, coerce(NetOption, option, "option"),
                                      float(value)), "mom_net_set")

    def get(self, option):
        v = ctypes.c_double()
        with self._lock:
            self._check(L.mom_net_get(ctypes.byref(v), self._ptr,
                                      coerce(NetOption, option, "option")), "mom_net_get")
        return v.value

    @property
    def check_finite(self):
        return self.get(NetOption.CHECK_FINITE) != 0

    @check_finite.setter
    def check_finite(self, on):
        self.set(NetOption.CHECK_FINITE, 1.0 if on else 0.0)

    @property
    def threads(self):
        """Helper threads of the work between products (MOM_NET_THREADS): 0 = as many as the BLAS
        uses, 1 = none, k = k threads in all."""
        return int(self.get(NetOption.THREADS))

    @threads.setter
    def threads(self, k):
        self.set(NetOption.THREADS, float(k))

    def reserve(self, n, steps=1):
        with self._lock:
            self._check(L.mom_net_reserve(self._ptr, check_size(n, "n"),
                                          check_size(steps, "steps")), "mom_net_reserve")

    # -- computations ---------------------------------------------------------------------------
    def _batch(self, batch, need_targets=True):
        b = as_batch(batch)
        if b.recurrent != self.is_recurrent:
            want = "3-d (T, n, n_in)" if self.is_recurrent else "2-d (n, n_in)"
            raise ValueError(f"a {self.kind.name.lower()} net needs {want} inputs, got shape "
                             f"{b.inputs.shape}")
        if b.n_in != self.num_inputs:
            raise ValueError(f"batch inputs have width {b.n_in}, the net takes "
                             f"{self.num_inputs}")
        if b.targets is not None and b.n_out != self.num_outputs:
            raise ValueError(f"batch targets have width {b.n_out}, the net has "
                             f"{self.num_outputs} outputs")
        if need_targets and b.targets is None:
            raise ValueError("this computation needs targets (batch.targets is None)")
        return b

    def _params_arg(self, params, name="params"):
        if params is None:
            return None
        return f32_address(params, name, size=self.num_params)

    def loss(self, batch, params=None):
        """Mean loss over a batch at `params` (None: the net's own vector)."""
        b = self._batch(batch)
        p = self._params_arg(params)
        out = ctypes.c_double()
        with self._lock:
            self._check(L.mom_net_loss(ctypes.byref(out), self._ptr, ctypes.byref(b._c), p),
                        "mom_net_loss")
        return out.value

    def loss_grad(self, batch, params=None, grad=None):
        """(loss, grad): the mean loss and its gradient. `grad` may be a float32 array of
        num_params elements to fill in place (it must not overlap params)."""
        b = self._batch(batch)
        p = self._params_arg(params)
        n = self.num_params
        given = grad is not None
        grad, g = out_f32(grad, "grad", (n,))
        if given:
            no_overlap(grad, params if params is not None else self.params, "grad", "params")
        out = ctypes.c_double()
        with self._lock:
            self._check(L.mom_net_loss_grad(ctypes.byref(out), g, self._ptr, ctypes.byref(b._c),
                                            p), "mom_net_loss_grad")
        return out.value, grad

    def fisher_diag(self, batch, params=None, out=None):
        """Diagonal of the empirical Fisher matrix (num_params floats)."""
        b = self._batch(batch)
        p = self._params_arg(params)
        out, o = out_f32(out, "out", (self.num_params,))
        with self._lock:
            self._check(L.mom_net_fisher_diag(o, self._ptr, ctypes.byref(b._c), p),
                        "mom_net_fisher_diag")
        return out

    def gv_begin(self, batch, params=None):
        """Prepare Gauss-Newton products on `batch` at `params`. The net keeps references to the
        batch (and params) until the next gv_begin() or close(): do not modify their contents
        until the products are done."""
        b = self._batch(batch)
        p = self._params_arg(params)
        with self._lock:
            rc = L.mom_net_gv_begin(self._ptr, ctypes.byref(b._c), p)
            # The C side may keep the pointers even when it failed halfway: keep the arrays.
            self._gv_keep = (b, params)
            self._check(rc, "mom_net_gv_begin")

    def _gv_hold(self, b, ok):
        """Keep `b` (a Batch) referenced after a call that ran, or may have run,
        mom_net_gv_begin() on it (an HF step; call under the net's lock). ok: the call
        succeeded, so the C net's Gauss-Newton state now points into b alone. On failure it is
        unknown whether gv_begin() was reached: the state may point into b or still into what
        an earlier call left, so both stay referenced until a later success replaces them."""
        if ok or self._gv_keep is None:
            self._gv_keep = (b, None)
        elif not any(x is b for x in self._gv_keep):
            self._gv_keep = self._gv_keep + (b,)

    def gv(self, v, struct_damping=0.0, out=None):
        """Gauss-Newton product G v (+ structural damping) on the batch of the last gv_begin()."""
        n = self.num_params
        va = f32_address(v, "v", size=n)
        out, o = out_f32(out, "out", (n,))
        no_overlap(out, v, "out", "v")
        with self._lock:
            self._check(L.mom_net_gv(o, self._ptr, va, float(struct_damping)), "mom_net_gv")
        return out

    def forward(self, batch, layer=None, params=None, out=None):
        """Activations of unit `layer` (default: the outputs y): shape (n, size) for a
        feedforward net, (T, n, size) for a recurrent one."""
        b = self._batch(batch, need_targets=False)
        p = self._params_arg(params)
        if layer is None:
            layer = self.num_layers - 1
        layer = check_size(layer, "layer")
        size = self.layer_size(layer)
        if size == 0:
            raise ValueError(f"layer {layer} out of range (net has {self.num_layers} unit layers)")
        shape = (b.steps, b.n, size) if b.recurrent else (b.n, size)
        out, o = out_f32(out, "out", shape)
        with self._lock:
            self._check(L.mom_net_forward(o, self._ptr, ctypes.byref(b._c), p, layer),
                        "mom_net_forward")
        return out

    def metric(self, batch, metric=Metric.LOSS, param=0.0, params=None):
        """An evaluation metric (a Metric) over a batch."""
        b = self._batch(batch)
        p = self._params_arg(params)
        out = ctypes.c_double()
        with self._lock:
            self._check(L.mom_net_metric(ctypes.byref(out), self._ptr, ctypes.byref(b._c), p,
                                         coerce(Metric, metric, "metric"), float(param)),
                        "mom_net_metric")
        return out.value

    def check_grad(self, batch, n_probe=0, eps=0.0):
        """Max relative error of the gradient against central finite differences."""
        b = self._batch(batch)
        out = ctypes.c_double()
        with self._lock:
            self._check(L.mom_net_check_grad(ctypes.byref(out), self._ptr, ctypes.byref(b._c),
                                             check_size(n_probe, "n_probe"), float(eps)),
                        "mom_net_check_grad")
        return out.value

    def check_gv(self, batch, n_vectors=1, seed=0):
        """Max relative error of gv() against J^T H J v formed explicitly. Leaves no
        Gauss-Newton state: call gv_begin() again before gv()."""
        b = self._batch(batch)
        out = ctypes.c_double()
        with self._lock:
            rc = L.mom_net_check_gv(ctypes.byref(out), self._ptr, ctypes.byref(b._c),
                                    check_size(n_vectors, "n_vectors"), check_u64(seed, "seed"))
            self._gv_keep = None
            self._check(rc, "mom_net_check_gv")
        return out.value

