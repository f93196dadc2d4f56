"""Checkpoints: bit-exact resume through files, bytes and streams, into new and existing
objects; user data; errors with their detail messages; lifetimes of restored objects; calls from
callbacks; copies and pickles."""
import copy
import gc
import io
import os
import pickle
import shutil
import tempfile
import threading
import types
import unittest

import numpy as np

from helpers import addition_batch, mi

f32 = np.float32


# -- a small training run whose data comes from an mi.Rng (the stream the checkpoint saves) -----

def ff_batch(rng, n=16):
    """x uniform in [-1, 1)^4 drawn from `rng`, target x0 * x1 + x2."""
    x = rng.uniform_array((n, 4), -1.0, 1.0)
    t = (x[:, 0:1] * x[:, 1:2] + x[:, 2:3]).astype(f32)
    return x, t


def rnn_batch(rng, n=8, T=6):
    """The addition problem with a numpy generator seeded from `rng` (so it follows the saved
    stream too)."""
    gen = np.random.default_rng(rng.u64())
    return addition_batch(gen, n, T)


SETUPS = {
    # name: (make net, make batch, optimizer arguments; a function is called for each run)
    "ff_nag": (lambda: mi.Net.feedforward([4, 12, 1], "tanh"), ff_batch,
               dict(kind="nag", lr=lambda: mi.Sched.piecewise([0, 7], [0.05, 0.02]),
                    momentum=lambda: mi.Sched.final_phase(mi.Sched.paper_momentum(0.99, 3),
                                                          total=20, final_steps=4, value=0.9))),
    "ff_cm": (lambda: mi.Net.feedforward([4, 6, 5, 1], ["relu", "tanh"]), ff_batch,
              dict(kind="cm", lr=lambda: mi.Sched.anneal(0.05, 0.5, 3.0), momentum=0.8,
                   weight_decay=1e-3, clip_norm=5.0)),
    "ff_sgd": (lambda: mi.Net.feedforward([4, 3, 1], "logistic"), ff_batch,
               dict(kind="sgd", lr=0.1)),
    "rnn_nag": (lambda: mi.Net.recurrent(2, 10, 1, learn_h0=True), rnn_batch,
                dict(kind="nag", lr=0.01, momentum=lambda: mi.Sched.paper_momentum(0.95, 4),
                     clip_norm=10.0)),
}


def make_run(setup, seed=1):
    """(net, opt, data rng) of a setup, freshly initialized."""
    make_net, _, args = SETUPS[setup]
    args = dict(args)
    kind = args.pop("kind")
    args = {k: (v() if isinstance(v, types.FunctionType) else v) for k, v in args.items()}
    net = make_net()
    if net.is_recurrent:
        mi.preset_rnn(net, 0.01, seed=seed)
    else:
        mi.preset_ff(net, seed=seed)
    opt = mi.Optimizer(kind, net, **args)
    return net, opt, mi.Rng(100 + seed, 3)


def train(setup, net, opt, rng, steps):
    batch = SETUPS[setup][1]
    return [opt.step_net(net, batch(rng)) for _ in range(steps)]


def state(net, opt, rng):
    """Everything that must be equal bit for bit."""
    return (net.params.tobytes(), opt.velocity.tobytes(), opt.steps, opt.lr, opt.momentum,
            opt.weight_decay, opt.clip_norm, rng.get_state().tobytes())


def close_all(*objs):
    for o in objs:
        if o is not None:
            o.close()


class Tmp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mominit-ckpt-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name="run.ckpt"):
        return os.path.join(self.dir, name)


class TestResume(Tmp):
    N = 20

    def straight(self, setup):
        net, opt, rng = make_run(setup)
        losses = train(setup, net, opt, rng, self.N)
        out = state(net, opt, rng)
        close_all(net, opt, rng)
        return losses, out

    def resumed(self, setup, through):
        """N/2 steps, capture, write out, drop everything, read back, restore_new, N/2 more."""
        half = self.N // 2
        net, opt, rng = make_run(setup)
        losses = train(setup, net, opt, rng, half)
        ck = mi.Checkpoint()
        ck.capture(net, opt, [rng])
        if through == "file":
            ck.save(self.path())
        elif through == "bytes":
            data = ck.to_bytes()
            self.assertEqual(len(data), ck.size)
        else:
            stream = io.BytesIO()
            ck.save_stream(stream)
            stream.write(b"trailing data of the caller")
            stream.seek(0)
        close_all(ck, net, opt, rng)
        del ck, net, opt, rng
        gc.collect()

        if through == "file":
            ck = mi.Checkpoint.from_file(self.path())
        elif through == "bytes":
            ck = mi.Checkpoint.from_bytes(data)
        else:
            ck = mi.Checkpoint()
            ck.load_stream(stream)
            self.assertEqual(stream.read(), b"trailing data of the caller")
        self.assertEqual(ck.num_rngs, 1)
        net, opt, rngs = ck.restore_new()
        ck.close()  # the restored objects do not depend on the checkpoint
        del ck
        gc.collect()
        self.assertIsInstance(net, mi.Net)
        self.assertIsInstance(opt, mi.Optimizer)
        self.assertEqual(len(rngs), 1)
        self.assertIsInstance(rngs[0], mi.Rng)
        self.assertEqual(opt.steps, half)
        losses += train(setup, net, opt, rngs[0], self.N - half)
        out = state(net, opt, rngs[0])
        close_all(net, opt, rngs[0])
        return losses, out

    def test_resume_is_bit_exact(self):
        for setup in SETUPS:
            want = self.straight(setup)
            for through in ("file", "bytes", "stream"):
                with self.subTest(setup=setup, through=through):
                    got = self.resumed(setup, through)
                    self.assertEqual(got[0], want[0])  # the same losses, step by step
                    self.assertEqual(got[1], want[1])  # params, velocity, t, options, stream

    def test_restore_into_existing_objects(self):
        for setup in SETUPS:
            with self.subTest(setup=setup):
                want = self.straight(setup)
                half = self.N // 2
                net, opt, rng = make_run(setup)
                losses = train(setup, net, opt, rng, half)
                with mi.Checkpoint() as ck:
                    ck.capture(net, opt, rng)
                    data = ck.to_bytes()
                close_all(net, opt, rng)

                # other objects of the same architecture, in another state: other parameters,
                # a callback schedule (the restore replaces it), another stream position
                net, opt, rng = make_run(setup, seed=2)
                cb_calls = []
                opt.set_lr(mi.Sched.callback(lambda t: cb_calls.append(t) or 0.5))
                if opt.kind != mi.OptimKind.SGD:
                    opt.set_momentum(0.3)
                opt.weight_decay = 0.25
                train(setup, net, opt, rng, 3)
                params, velocity = net.params, opt.velocity  # views taken before the restore
                self.assertIn("lr", opt._owner.keep)
                with mi.Checkpoint.from_bytes(data) as ck:
                    ck.restore(net, opt, [rng])
                # the callback's needs are released with the C schedule; the views see the
                # restored values (the library writes in place)
                self.assertNotIn("lr", opt._owner.keep)
                self.assertEqual(opt.steps, half)
                n_calls = len(cb_calls)
                np.testing.assert_array_equal(params, net.params)
                np.testing.assert_array_equal(velocity, opt.velocity)
                losses += train(setup, net, opt, rng, self.N - half)
                self.assertEqual(len(cb_calls), n_calls)  # the old schedule is gone
                self.assertEqual((losses, state(net, opt, rng)), want)
                close_all(net, opt, rng)

    def test_network_alone_and_parts(self):
        net, opt, rng = make_run("ff_nag")
        train("ff_nag", net, opt, rng, 3)
        with mi.Checkpoint() as ck:
            ck.capture(net)
            self.assertEqual(ck.net_kind, mi.NetKind.FEEDFORWARD)
            self.assertIsNone(ck.optim_kind)
            self.assertEqual((ck.num_params, ck.num_rngs), (net.num_params, 0))
            n2, o2, r2 = ck.restore_new()
            self.assertIsNone(o2)
            self.assertEqual(r2, [])
            self.assertEqual(n2.params.tobytes(), net.params.tobytes())
            self.assertEqual([n2.layer_size(i) for i in range(3)], [4, 12, 1])
            n2.close()
            # an optimizer alone (a model whose parameters the caller saves itself)
            ck.capture(optim=opt, rngs=[rng, rng])
            self.assertIsNone(ck.net_kind)
            self.assertEqual(ck.optim_kind, mi.OptimKind.NAG)
            self.assertEqual(ck.num_rngs, 2)
            n2, o2, r2 = ck.restore_new(rngs=1)
            self.assertIsNone(n2)
            self.assertEqual(len(r2), 1)
            self.assertEqual(o2.velocity.tobytes(), opt.velocity.tobytes())
            self.assertEqual((o2.steps, o2.lr, o2.momentum), (opt.steps, opt.lr, opt.momentum))
            close_all(o2, *r2)
            # everything, then parts of it
            ck.capture(net, opt, rng)
            n2, o2, r2 = ck.restore_new(optim=False, rngs=0)
            self.assertIsNone(o2)
            self.assertEqual(r2, [])
            n2.close()
            self.assertIn("NAG optimizer", repr(ck))
        self.assertIn("closed", repr(ck))
        close_all(net, opt, rng)

    def test_restored_objects_are_full_objects(self):
        net, opt, rng = make_run("ff_nag")
        with mi.Checkpoint() as ck:
            ck.capture(net, opt, rng)
            n2, o2, (r2,) = ck.restore_new()
        # every kind of use: views, options, new schedules, the begin/end path, closing
        w = n2.block_view(0)
        w[0, 0] = 0.5
        self.assertEqual(n2.params[0], f32(0.5))
        n2.check_finite = True
        self.assertTrue(n2.check_finite)
        o2.set_momentum(mi.Sched.const(0.5))
        self.assertEqual(o2.momentum, 0.5)
        params = n2.params.copy()
        o2.step(params, lambda p: n2.loss_grad(ff_batch(r2), params=p))
        self.assertEqual(o2.steps, 1)
        with self.assertRaises(TypeError):
            copy.copy(n2)
        close_all(n2, o2, r2, net, opt, rng)
        self.assertTrue(n2.closed and o2.closed and r2.closed)
        with self.assertRaises(ValueError):
            n2.num_params


class TestUserData(Tmp):
    def test_round_trip(self):
        net = mi.Net.feedforward([2, 1])
        blob = bytes(range(256)) * 3 + b"\0 end"
        with mi.Checkpoint() as ck:
            self.assertEqual(ck.user_data, b"")
            ck.user_data = blob
            # set for the next capture: the image held does not change until then
            self.assertEqual(ck.user_data, b"")
            ck.capture(net)
            self.assertEqual(ck.user_data, blob)
            ck.save(self.path())
            data = ck.to_bytes()
            # stays set for later captures
            ck.capture(net)
            self.assertEqual(ck.user_data, blob)
            ck.set_user_data(None)
            ck.capture(net)
            self.assertEqual(ck.user_data, b"")
        for ck in (mi.Checkpoint.from_file(self.path()), mi.Checkpoint.from_bytes(data)):
            with ck:
                got = ck.user_data
                self.assertIsInstance(got, bytes)
                self.assertEqual(got, blob)
        net.close()

    def test_copies_in_and_out(self):
        net = mi.Net.feedforward([2, 1])
        with mi.Checkpoint() as ck:
            buf = bytearray(b"abc")
            arr = np.arange(4, dtype=np.uint32)  # any buffer: its bytes
            for data, want in ((buf, b"abc"), (memoryview(b"xyz"), b"xyz"),
                               (arr, arr.tobytes()), (b"", b"")):
                ck.set_user_data(data)
                if isinstance(data, bytearray):
                    data[0] = ord("Z")  # copied when set
                ck.capture(net)
                out = ck.user_data
                self.assertEqual(out, want)
            ck.user_data = b"kept"
            ck.capture(net)
            first = ck.user_data  # a copy: loading another image cannot change it
            ck.load_bytes(mi.Checkpoint().capture(net).to_bytes())
            self.assertEqual(first, b"kept")
            self.assertEqual(ck.user_data, b"")  # the loaded image's
            ck.capture(net)  # loading did not change the bytes set for captures
            self.assertEqual(ck.user_data, b"kept")
            with self.assertRaises(TypeError):
                ck.user_data = "text"
            with self.assertRaises(TypeError):
                ck.user_data = 5
            with self.assertRaises(mi.InvalidError) as cm:
                ck.user_data = bytes(mi.Checkpoint.USER_DATA_MAX + 1)
            self.assertTrue(cm.exception.detail)
            ck.user_data = bytes(mi.Checkpoint.USER_DATA_MAX)  # the limit itself is fine
            ck.capture(net)
            self.assertEqual(len(ck.user_data), mi.Checkpoint.USER_DATA_MAX)
        net.close()


class TestErrors(Tmp):
    def setUp(self):
        super().setUp()
        self.net, self.opt, self.rng = make_run("ff_nag")
        train("ff_nag", self.net, self.opt, self.rng, 2)
        self.ck = mi.Checkpoint()
        self.ck.capture(self.net, self.opt, self.rng)
        self.data = self.ck.to_bytes()

    def tearDown(self):
        close_all(self.ck, self.net, self.opt, self.rng)
        super().tearDown()

    def assertMomError(self, cls, fn, *args, detail=None, **kwargs):
        with self.assertRaises(cls) as cm:
            fn(*args, **kwargs)
        e = cm.exception
        self.assertIsInstance(e, mi.MomError)
        self.assertTrue(e.function.startswith("mom_ckpt_"), e.function)
        self.assertTrue(e.detail, f"no detail message in {e}")
        if detail is not None:
            self.assertIn(detail, e.detail)
        self.assertIn(e.detail, str(e))
        return e

    def test_damaged_data(self):
        before = self.ck.to_bytes()
        for pos in (0, 8, 40, len(self.data) // 2, len(self.data) - 1):
            bad = bytearray(self.data)
            bad[pos] ^= 0x10
            with self.subTest(pos=pos):
                e = self.assertMomError(mi.FormatError, self.ck.load_bytes, bad,
                                        detail="offset")
                self.assertEqual(e.status, mi.Status.E_FORMAT)
                self.assertIsInstance(e, ValueError)
        self.assertMomError(mi.FormatError, self.ck.load_bytes, self.data[:-1])
        self.assertMomError(mi.FormatError, self.ck.load_bytes, self.data + b"\0")
        self.assertMomError(mi.FormatError, self.ck.load_bytes, b"")
        self.assertMomError(mi.FormatError, mi.Checkpoint.from_bytes, b"not a checkpoint")
        with open(self.path(), "wb") as f:
            f.write(self.data[: len(self.data) // 2])
        self.assertMomError(mi.FormatError, self.ck.load, self.path())
        self.assertMomError(mi.FormatError, self.ck.load_stream, io.BytesIO(self.data[:50]))
        # a failed load keeps the image held
        self.assertEqual(self.ck.to_bytes(), before)
        e = self.assertMomError(mi.MomIOError, self.ck.load, self.path("missing"),
                                detail="missing")
        self.assertIsInstance(e, OSError)
        self.assertMomError(mi.MomIOError, self.ck.save, os.path.join(self.dir, "no", "x"))
        self.assertMomError(mi.MomIOError, self.ck.save, self.dir)  # a directory
        self.assertMomError(mi.InvalidError, self.ck.save, "")
        with self.assertRaises(ValueError):
            self.ck.save("a\0b")
        with self.assertRaises(TypeError):
            self.ck.load_bytes("text")

    def test_mismatch_in_restore(self):
        p0, v0, s0 = self.net.params.copy(), self.opt.velocity.copy(), self.rng.get_state()
        with mi.Net.feedforward([4, 13, 1]) as other:
            self.assertMomError(mi.FormatError, self.ck.restore, other,
                                detail="12 units in the checkpoint, 13 in the network")
        with mi.Net.feedforward([4, 12, 1], "relu") as other:
            self.assertMomError(mi.FormatError, self.ck.restore, other)
        with mi.Net.recurrent(4, 12, 1) as other:
            self.assertMomError(mi.FormatError, self.ck.restore, other)
        with mi.Optimizer("cm", self.net) as other:
            self.assertMomError(mi.FormatError, self.ck.restore, optim=other, detail="NAG")
        with mi.Optimizer("nag", 5) as other:
            self.assertMomError(mi.FormatError, self.ck.restore, optim=other,
                                detail="parameters")
        with mi.Rng(1) as r1, mi.Rng(2) as r2:
            self.assertMomError(mi.FormatError, self.ck.restore, rngs=[r1, r2],
                                detail="stream states")
            # nothing is changed by a failed restore, even where the parts before matched
            with mi.Net.feedforward([4, 12, 1]) as same:
                same.params[:] = 1.0
                self.assertMomError(mi.FormatError, self.ck.restore, same, self.opt,
                                    [r1, r2])
                np.testing.assert_array_equal(same.params, 1.0)
        np.testing.assert_array_equal(self.net.params, p0)
        np.testing.assert_array_equal(self.opt.velocity, v0)
        np.testing.assert_array_equal(self.rng.get_state(), s0)
        self.assertMomError(mi.FormatError, self.ck.restore_new, rngs=2)
        with mi.Checkpoint() as netfile:
            netfile.capture(self.net)
            self.assertMomError(mi.FormatError, netfile.restore_new, optim=True,
                                detail="optimizer")
            with mi.Optimizer("nag", self.net) as other:
                self.assertMomError(mi.FormatError, netfile.restore, optim=other)

    def test_capture_errors(self):
        before = self.ck.to_bytes()
        with mi.Optimizer("nag", self.net, lr=mi.Sched.callback(lambda t: 0.01)) as cb:
            e = self.assertMomError(mi.UnsupportedError, self.ck.capture, self.net, cb,
                                    detail="callback")
            self.assertIsInstance(e, NotImplementedError)
        # inside a final-phase wrapper too
        wrapped = mi.Sched.final_phase(mi.Sched.callback(lambda t: 0.9), 10, 2, 0.5)
        with mi.Optimizer("nag", self.net, momentum=wrapped) as cb:
            self.assertMomError(mi.UnsupportedError, self.ck.capture, optim=cb)
        with mi.Optimizer("nag", 7) as small:
            self.assertMomError(mi.ShapeError, self.ck.capture, self.net, small)
        params = self.net.params.copy()
        self.opt.begin(params)
        self.assertMomError(mi.StateError, self.ck.capture, self.net, self.opt,
                            detail="begun")
        self.assertMomError(mi.StateError, self.ck.restore, optim=self.opt, detail="begun")
        self.opt.cancel()
        self.assertMomError(mi.InvalidError, self.ck.capture)  # nothing to capture
        self.assertEqual(self.ck.to_bytes(), before)  # failed captures changed nothing
        with self.assertRaises(TypeError):
            self.ck.capture(self.opt)
        with self.assertRaises(TypeError):
            self.ck.capture(self.net, rngs=[self.rng, None])
        with self.assertRaises(TypeError):
            self.ck.restore_new(net=1)

    def test_no_image(self):
        with mi.Checkpoint() as empty:
            self.assertEqual((empty.size, empty.net_kind, empty.optim_kind, empty.num_params,
                              empty.num_rngs), (0, None, None, 0, 0))
            self.assertIn("empty", repr(empty))
            self.assertMomError(mi.StateError, empty.to_bytes)
            self.assertMomError(mi.StateError, empty.save, self.path())
            self.assertFalse(os.path.exists(self.path()))
            self.assertMomError(mi.StateError, empty.restore_new)
            self.assertMomError(mi.StateError, empty.restore, self.net)
            self.assertMomError(mi.StateError, empty.save_stream, io.BytesIO())
            self.assertEqual(pickle.loads(pickle.dumps(empty)).size, 0)
        with self.assertRaises(ValueError):  # closed
            empty.capture(self.net)
        with self.assertRaises(ValueError):
            empty.size

    def test_stream_function_errors(self):
        class Failing(io.RawIOBase):
            def write(self, b):
                raise OSError("disk full")

            def read(self, n=-1):
                raise OSError("connection reset")

        e = self.assertMomError(mi.MomIOError, self.ck.save_stream, Failing())
        self.assertIsInstance(e.__cause__, OSError)
        self.assertIn("disk full", str(e.__cause__))
        e = self.assertMomError(mi.MomIOError, self.ck.load_stream, Failing())
        self.assertIn("connection reset", str(e.__cause__))

        class Partial:
            """Writes at most 7 bytes a call, reads at most 5."""
            def __init__(self, data=b""):
                self.out = bytearray()
                self.data, self.at = data, 0

            def write(self, b):
                self.out += bytes(b[:7])
                return min(7, len(b))

            def read(self, n):
                n = min(n, 5)
                chunk = self.data[self.at:self.at + n]
                self.at += len(chunk)
                return bytearray(chunk)  # not bytes: converted

        p = Partial()
        self.ck.save_stream(p)
        self.assertEqual(bytes(p.out), self.data)
        q = Partial(self.data + b"rest")
        with mi.Checkpoint() as other:
            other.load_stream(q)
            self.assertEqual(other.to_bytes(), self.data)
        self.assertEqual(q.at, len(self.data))
        with self.assertRaises(TypeError):
            self.ck.save_stream(b"bytes have no write")

        class WouldBlock(io.RawIOBase):
            """A raw non-blocking stream: takes 10 bytes, then None (nothing written)."""
            def __init__(self):
                self.out = bytearray()

            def writable(self):
                return True

            def write(self, b):
                if self.out:
                    return None
                self.out += bytes(b[:10])
                return min(10, len(b))

        e = self.assertMomError(mi.MomIOError, self.ck.save_stream, WouldBlock())
        self.assertIsInstance(e.__cause__, BlockingIOError)

        class Buffered:
            """Not a raw stream: None after writing everything (as some file-likes do)."""
            def __init__(self):
                self.out = bytearray()

            def write(self, b):
                self.out += bytes(b)

        b = Buffered()
        self.ck.save_stream(b)
        self.assertEqual(bytes(b.out), self.data)

        # the stream function may not call its own checkpoint (a callback of the same handle)
        calls = []

        def reenter(b):
            calls.append(self.ck.size)

        stream = type("W", (), {"write": staticmethod(reenter)})()
        e = self.assertMomError(mi.MomIOError, self.ck.save_stream, stream)
        self.assertIsInstance(e.__cause__, RuntimeError)
        self.assertEqual(calls, [])
        self.assertEqual(self.ck.to_bytes(), self.data)  # usable afterwards


class TestLifetimes(Tmp):
    def test_restored_objects_outlive_the_checkpoint(self):
        alloc = mi.CountingAllocator()
        net, opt, rng = make_run("ff_nag")
        train("ff_nag", net, opt, rng, 4)
        ck = mi.Checkpoint(allocator=alloc)
        ck.capture(net, opt, rng)
        n2, o2, (r2,) = ck.restore_new()
        view = n2.params
        ck.close()
        del ck
        gc.collect()
        self.assertGreater(alloc.live, 0)  # the restored handles use the checkpoint's allocator
        # usable, and equal to the originals
        self.assertEqual(state(n2, o2, r2), state(net, opt, rng))
        self.assertEqual(train("ff_nag", n2, o2, r2, 3), train("ff_nag", net, opt, rng, 3))
        # the params view keeps the restored network's memory after close()
        n2.close()
        o2.close()
        np.testing.assert_array_equal(view, net.params)
        r2_ref = r2
        del r2
        self.assertFalse(r2_ref.closed)
        del r2_ref, view
        gc.collect()
        self.assertEqual(alloc.live, 0)
        self.assertEqual(alloc.bad_frees, [])
        close_all(net, opt, rng)

    def test_garbage_collection_frees_everything_once(self):
        alloc = mi.CountingAllocator()
        before = mi.live_handles()
        net, opt, rng = make_run("rnn_nag")
        with mi.Checkpoint(alloc) as ck:
            ck.capture(net, opt, [rng, rng, rng])
            objs = ck.restore_new()
        close_all(net, opt, rng)
        counts = mi.live_handles()
        self.assertEqual(counts.get("Rng", 0), before.get("Rng", 0) + 3)
        self.assertEqual(counts.get("Checkpoint", 0), before.get("Checkpoint", 0))
        del objs
        gc.collect()
        self.assertEqual(mi.live_handles(), before)
        self.assertEqual(alloc.live, 0)
        self.assertEqual(alloc.frees, alloc.allocs)
        self.assertEqual(alloc.bad_frees, [])

    def test_allocation_failures_leak_nothing(self):
        net, opt, rng = make_run("ff_cm")
        with mi.Checkpoint() as ck:
            ck.capture(net, opt, rng)
            data = ck.to_bytes()
        n = 1
        while True:
            alloc = mi.CountingAllocator(fail_at=n)
            objs = None
            try:
                with mi.Checkpoint.from_bytes(data, allocator=alloc) as ck:
                    objs = ck.restore_new()
                    ck.restore(*objs[:2], objs[2])
                    ck.capture(*objs[:2], objs[2])
                    ck.set_user_data(b"x" * 100)
                    ck.capture(objs[0])
            except mi.NoMemError as e:
                # a detail message from every handle (a constructor has none)
                self.assertTrue(e.detail or e.function == "mom_ckpt_create", str(e))
                if objs is not None:
                    close_all(objs[0], objs[1], *objs[2])
                gc.collect()
                self.assertEqual(alloc.live, 0, f"leak after failing allocation {n}")
                self.assertEqual(alloc.bad_frees, [])
                n += 1
                continue
            self.assertEqual(alloc.failures, 0)
            close_all(objs[0], objs[1], *objs[2])
            gc.collect()
            self.assertEqual(alloc.live, 0)
            break
        self.assertGreater(n, 5)
        close_all(net, opt, rng)

    def test_copies_and_pickles(self):
        net = mi.Net.feedforward([3, 2])
        with mi.Checkpoint() as ck:
            ck.user_data = b"next"
            ck.capture(net)
            ck.user_data = b"after"  # only for the next capture
            for dup in (copy.copy(ck), copy.deepcopy(ck), pickle.loads(pickle.dumps(ck))):
                with dup:
                    self.assertIsNot(dup._ptr, ck._ptr)
                    self.assertEqual(bytes(dup), bytes(ck))
                    self.assertEqual(dup.user_data, b"next")
                    dup.capture(net)
                    self.assertEqual(dup.user_data, b"after")
        net.close()

    def test_calls_from_callbacks_are_refused(self):
        x, t = ff_batch(mi.Rng(5))
        net, opt, rng = make_run("ff_sgd")
        ck = mi.Checkpoint()
        ck.capture(net, opt, rng)
        p0 = net.params.copy()
        # from the reduction hook of a step on the same network and optimizer
        for act in (lambda: ck.capture(net), lambda: ck.capture(net, opt),
                    lambda: ck.restore(net), lambda: ck.restore(net, opt, rng)):
            opt.set_reduce(lambda values, what, act=act: act())
            with self.assertRaises(mi.MomError) as cm:
                opt.step_net(net, (x, t))
            self.assertIsInstance(cm.exception.__cause__, RuntimeError)
            np.testing.assert_array_equal(net.params, p0)
        opt.set_reduce(None)
        self.assertEqual((ck._lock.depth, net._lock.depth, opt._lock.depth), (0, 0, 0))
        # the refusals left no lock held: another thread can use both
        done = []
        th = threading.Thread(target=lambda: done.append(ck.capture(net, opt, rng)),
                              daemon=True)
        th.start()
        th.join(10)
        self.assertEqual(len(done), 1)
        # from a schedule function during a step of its optimizer
        with mi.Optimizer("sgd", net) as other:
            def lr(t):
                ck.restore(net, other)
                return 0.1
            other.set_lr(mi.Sched.callback(lr))
            with self.assertRaises(mi.MomError) as cm:
                other.step_net(net, (x, t))
            self.assertIsInstance(cm.exception.__cause__, RuntimeError)
        close_all(ck, net, opt, rng)


if __name__ == "__main__":
    unittest.main()
