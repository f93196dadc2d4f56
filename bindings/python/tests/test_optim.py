"""Optimizers: the any-model begin/end path (bit-exact update rules), step_net, state errors,
divergence, options and zero-copy views."""
import threading
import unittest

import numpy as np

from helpers import classification_batch, mi

f32 = np.float32


def quadratic(a, b):
    """f(x) = 1/2 |A x - b|^2 and its gradient, in float32."""
    def fn(x):
        r = a @ x - b
        return float(0.5 * r @ r), (a.T @ r).astype(f32)
    return fn


class TestAnyModel(unittest.TestCase):
    def setUp(self):
        gen = np.random.default_rng(0)
        self.a = gen.normal(size=(8, 5)).astype(f32)
        self.b = gen.normal(size=8).astype(f32)
        self.fn = quadratic(self.a, self.b)

    def test_point_is_params_for_sgd_and_cm(self):
        for kind in ("sgd", "cm"):
            with self.subTest(kind=kind), mi.Optimizer(kind, 5) as opt:
                x = np.zeros(5, f32)
                point = opt.begin(x)
                self.assertIs(point, x)
                self.assertTrue(opt.begun)
                opt.cancel()
                self.assertFalse(opt.begun)

    def test_cm_and_nag_update_rules_bit_exact(self):
        for kind in ("cm", "nag"):
            with self.subTest(kind=kind), \
                    mi.Optimizer(kind, 5, lr=0.05, momentum=mi.Sched.paper_momentum(0.99, 3)) \
                    as opt:
                x = np.ones(5, f32)
                xr = x.copy()  # the reference computation, in numpy float32
                v = np.zeros(5, f32)
                with mi.Sched.paper_momentum(0.99, 3) as mom:
                    for t in range(10):
                        mu, eps = f32(mom(t)), f32(0.05)
                        self.assertEqual(opt.momentum, mom(t))
                        point = opt.begin(x)
                        if kind == "nag":
                            self.assertIsNot(point, x)
                            self.assertFalse(point.flags.writeable)
                            np.testing.assert_array_equal(point, xr + mu * v)
                        loss, g = self.fn(point)
                        opt.end(x, loss, g)
                        v = mu * v - eps * g
                        xr = xr + v
                        np.testing.assert_array_equal(opt.velocity, v)
                        np.testing.assert_array_equal(x, xr)
                self.assertEqual(opt.steps, 10)

    def test_step_helper_lowers_loss(self):
        with mi.Optimizer("nag", 5, lr=0.02, momentum=0.9) as opt:
            x = np.zeros(5, f32)
            first = self.fn(x)[0]
            best = np.linalg.lstsq(self.a.astype(np.float64), self.b, rcond=None)[0]
            fmin = self.fn(best.astype(f32))[0]
            for _ in range(300):
                opt.step(x, self.fn)
            self.assertLess(self.fn(x)[0] - fmin, 1e-3 * (first - fmin))
            np.testing.assert_allclose(x, best, atol=2e-2)

    def test_step_helper_cancels_on_error(self):
        with mi.Optimizer("nag", 5) as opt:
            x = np.ones(5, f32)

            def broken(point):
                raise RuntimeError("model failed")
            with self.assertRaises(RuntimeError):
                opt.step(x, broken)
            self.assertFalse(opt.begun)
            self.assertEqual(opt.steps, 0)
            np.testing.assert_array_equal(x, 1.0)
            opt.step(x, self.fn)  # usable afterwards
            self.assertEqual(opt.steps, 1)

    def test_state_errors(self):
        with mi.Optimizer("cm", 5) as opt:
            x = np.zeros(5, f32)
            with self.assertRaises(mi.StateError) as cm:
                opt.end(x, 0.0, np.zeros(5, f32))
            self.assertIn("no step", cm.exception.detail)
            opt.begin(x)
            with self.assertRaises(mi.StateError):
                opt.begin(x)
            with self.assertRaises(mi.StateError):
                opt.set_lr(0.1)
            with self.assertRaises(mi.StateError):
                opt.reset()
            other = np.zeros(5, f32)
            with self.assertRaises(mi.StateError):
                opt.end(other, 0.0, np.zeros(5, f32))  # not the vector given to begin
            opt.cancel()
            with self.assertRaises(mi.StateError):
                opt.cancel()

    def test_diverged_step_changes_nothing(self):
        with mi.Optimizer("nag", 5, lr=0.1) as opt:
            x = np.ones(5, f32)
            opt.step(x, self.fn)
            x0, v0 = x.copy(), opt.velocity.copy()
            opt.begin(x)
            g = np.ones(5, f32)
            g[3] = np.inf
            with self.assertRaises(mi.DivergedError) as cm:
                opt.end(x, 1.0, g)
            self.assertIn("gradient[3]", cm.exception.detail)
            self.assertIsInstance(cm.exception, ArithmeticError)
            np.testing.assert_array_equal(x, x0)
            np.testing.assert_array_equal(opt.velocity, v0)
            self.assertEqual(opt.steps, 1)
            self.assertTrue(opt.begun)  # still begun: end again or cancel
            with self.assertRaises(mi.DivergedError):
                opt.end(x, float("nan"), np.ones(5, f32))
            opt.end(x, 1.0, np.zeros(5, f32))
            self.assertEqual(opt.steps, 2)

    def test_argument_validation(self):
        with mi.Optimizer("sgd", 5) as opt:
            with self.assertRaises(TypeError):
                opt.begin(np.zeros(5))
            with self.assertRaisesRegex(ValueError, "elements"):
                opt.begin(np.zeros(4, f32))
            x = np.zeros(5, f32)
            opt.begin(x)
            with self.assertRaisesRegex(ValueError, "overlap"):
                opt.end(x, 0.0, x)
            opt.cancel()
            with self.assertRaises(ValueError):
                mi.Optimizer("sgd", 0)


class TestOptions(unittest.TestCase):
    def test_options(self):
        with mi.Optimizer("cm", 3, weight_decay=1e-4, clip_norm=5.0) as opt:
            self.assertEqual(opt.kind, mi.OptimKind.CM)
            self.assertEqual(opt.num_params, 3)
            self.assertAlmostEqual(opt.weight_decay, 1e-4)
            self.assertEqual(opt.clip_norm, 5.0)
            self.assertEqual(opt.lr, 0.01)        # defaults
            self.assertEqual(opt.momentum, 0.9)
            with self.assertRaises(mi.InvalidError) as cm:
                opt.weight_decay = -1.0
            self.assertTrue(cm.exception.detail)
            self.assertAlmostEqual(opt.weight_decay, 1e-4)  # kept
            with self.assertRaises(mi.InvalidError):
                opt.set(42, 1.0)
        with mi.Optimizer("sgd", 3) as sgd:
            self.assertEqual(sgd.momentum, 0.0)

    def test_clipping(self):
        with mi.Optimizer("sgd", 4, lr=1.0, clip_norm=1.0) as opt:
            x = np.zeros(4, f32)
            opt.begin(x)
            opt.end(x, 0.0, np.array([3, 4, 0, 0], f32))  # |g| = 5 -> scaled to norm 1
            np.testing.assert_allclose(x, [-0.6, -0.8, 0, 0], rtol=1e-6)

    def test_velocity_view_is_live_and_read_only(self):
        with mi.Optimizer("cm", 3, lr=1.0, momentum=0.5) as opt:
            vel = opt.velocity
            x = np.zeros(3, f32)
            opt.step(x, lambda p: (0.0, np.ones(3, f32)))
            np.testing.assert_array_equal(vel, -1.0)  # the same memory, updated by the step
            with self.assertRaises(ValueError):
                vel[0] = 1.0
            with self.assertRaises(ValueError):  # nor can it be made writable
                vel.flags.writeable = True
            opt.reset()
            np.testing.assert_array_equal(vel, 0.0)
            self.assertEqual(opt.steps, 0)


class TestStepNet(unittest.TestCase):
    def test_step_net_equals_begin_end_bit_for_bit(self):
        gen = np.random.default_rng(1)
        x, t = classification_batch(gen, 16, 4, 3)
        b = mi.Batch(x, t)
        with mi.Net.feedforward([4, 6, 3], "tanh", "softmax_xent") as n1, \
                mi.Net.feedforward([4, 6, 3], "tanh", "softmax_xent") as n2, \
                mi.Optimizer("nag", n1, lr=0.1, momentum=mi.Sched.paper_momentum()) as o1, \
                mi.Optimizer("nag", n2, lr=0.1, momentum=mi.Sched.paper_momentum()) as o2:
            mi.preset_ff(n1, 2)
            mi.preset_ff(n2, 2)
            params = n2.params
            for _ in range(5):
                l1 = o1.step_net(n1, b)
                l2 = o2.step(params, lambda p: n2.loss_grad(b, params=np.ascontiguousarray(p)))
                self.assertEqual(l1, l2)
            np.testing.assert_array_equal(n1.params, n2.params)
            np.testing.assert_array_equal(o1.velocity, o2.velocity)

    def test_step_net_divergence_restores(self):
        gen = np.random.default_rng(2)
        x, t = classification_batch(gen, 8, 3, 2)
        with mi.Net.feedforward([3, 4, 2], "tanh", "linear_squared") as net, \
                mi.Optimizer("cm", net, lr=0.1) as opt:
            mi.preset_ff(net, 1)
            opt.step_net(net, (x, t))
            p0 = net.params.copy()
            xbad = x.copy()
            xbad[0, 0] = np.inf
            with self.assertRaises(mi.MomError) as cm:
                opt.step_net(net, (xbad, t))
            self.assertTrue(cm.exception.detail)
            if isinstance(cm.exception, mi.DivergedError):
                self.assertIsNotNone(cm.exception.loss)
            np.testing.assert_array_equal(net.params, p0)
            self.assertEqual(opt.steps, 1)
            self.assertFalse(opt.begun)


class TestReduceHook(unittest.TestCase):
    """Optimizer.set_reduce: two workers on halves of a batch, combined through the hook, take
    the steps of one optimizer on the whole batch."""

    def test_two_workers_equal_one_process(self):
        """Two threads, each with its own net and optimizer on its share of every batch (8 and
        12 of 20 cases), combining through the hook with a barrier, end where one optimizer on
        the whole batches ends (to float rounding), and equal to each other bit for bit."""
        gen = np.random.default_rng(5)
        batches = [classification_batch(gen, 20, 4, 3) for _ in range(30)]
        cuts = [(0, 8), (8, 20)]
        nets = [mi.Net.feedforward([4, 6, 3], "tanh", "softmax_xent") for _ in range(3)]
        opts = [mi.Optimizer("nag", n, lr=0.1, momentum=0.9) for n in nets]
        for n in nets:
            mi.preset_ff(n, 3)
        barrier = threading.Barrier(2, timeout=20)
        slots = [None, None]

        def hook(rank):
            share = (cuts[rank][1] - cuts[rank][0]) / 20

            def fn(values, what):
                slots[rank] = values.astype(np.float64) * share
                barrier.wait()
                total = slots[0] + slots[1]
                barrier.wait()  # both have read the slots
                values[:] = total.astype(values.dtype)
            return fn

        errors = []

        def worker(rank):
            try:
                lo, hi = cuts[rank]
                for x, t in batches:
                    opts[rank + 1].step_net(nets[rank + 1], (x[lo:hi], t[lo:hi]))
            except BaseException as e:  # reported below
                errors.append(e)
                barrier.abort()

        try:
            opts[1].set_reduce(hook(0))
            opts[2].set_reduce(hook(1))
            threads = [threading.Thread(target=worker, args=(r,)) for r in (0, 1)]
            for th in threads:
                th.start()
            for x, t in batches:
                opts[0].step_net(nets[0], (x, t))
            for th in threads:
                th.join()
            self.assertEqual(errors, [])
            np.testing.assert_array_equal(nets[1].params, nets[2].params)
            ref = nets[0].params
            rel = np.max(np.abs(nets[1].params - ref)) / np.max(np.abs(ref))
            self.assertLess(rel, 1e-5)
            with mi.Net.feedforward([4, 6, 3], "tanh", "softmax_xent") as fresh:
                mi.preset_ff(fresh, 3)
                self.assertGreater(np.max(np.abs(fresh.params - ref)), 1e-3)  # it trained
        finally:
            for o in opts:
                o.close()
            for n in nets:
                n.close()

    def test_hook_contract_and_values_are_used(self):
        gen = np.random.default_rng(6)
        x, t = classification_batch(gen, 12, 4, 3)
        with mi.Net.feedforward([4, 5, 3], "tanh", "softmax_xent") as a, \
                mi.Net.feedforward([4, 5, 3], "tanh", "softmax_xent") as b, \
                mi.Optimizer("nag", a, lr=0.05, momentum=0.9) as oa, \
                mi.Optimizer("nag", b, lr=0.1, momentum=0.9) as ob:
            mi.preset_ff(a, 4)
            mi.preset_ff(b, 4)
            calls = []

            def double(values, what):
                calls.append((what, values.dtype, values.size))
                if what == mi.ReduceWhat.GRADIENT:
                    values *= 2  # exact in float32: the same as a doubled learning rate

            oa.set_reduce(double)
            for _ in range(4):
                oa.step_net(a, (x, t))
                ob.step_net(b, (x, t))
            np.testing.assert_array_equal(a.params, b.params)
            self.assertEqual(calls[:2], [(mi.ReduceWhat.LOSS, np.float64, 1),
                                         (mi.ReduceWhat.GRADIENT, np.float32, a.num_params)])
            self.assertEqual(len(calls), 8)
            # a hook that raises fails the step, changes nothing, and is chained
            p0, v0, s0 = a.params.copy(), oa.velocity.copy(), oa.steps

            def broken(values, what):
                raise RuntimeError("allreduce failed")

            oa.set_reduce(broken)
            with self.assertRaises(mi.MomError) as cm:
                oa.step_net(a, (x, t))
            self.assertIsInstance(cm.exception.__cause__, RuntimeError)
            np.testing.assert_array_equal(a.params, p0)
            np.testing.assert_array_equal(oa.velocity, v0)
            self.assertEqual(oa.steps, s0)
            # removed: plain steps again
            oa.set_reduce(None)
            oa.step_net(a, (x, t))
            self.assertEqual(oa.steps, s0 + 1)
            with self.assertRaises(TypeError):
                oa.set_reduce(42)

    def test_hook_gets_copies_and_cannot_close_what_is_in_use(self):
        x, t = classification_batch(np.random.default_rng(3), 16, 6, 3)
        with mi.Net.feedforward([6, 5, 3], "tanh", "softmax_xent") as net, \
                mi.Optimizer("sgd", net, lr=0.05) as opt:
            mi.preset_ff(net, 4)
            kept = {}

            def keep(values, what):
                kept[what] = values
                values *= 1.0

            opt.set_reduce(keep)
            loss = opt.step_net(net, (x, t))
            # the hook's arrays are its own: they keep their values after the step, and writing
            # to them later reaches no memory of the library
            self.assertEqual(float(kept[mi.ReduceWhat.LOSS][0]), loss)
            g1 = kept[mi.ReduceWhat.GRADIENT].copy()
            opt.set_reduce(lambda values, what: None)
            opt.step_net(net, (x, t))
            np.testing.assert_array_equal(kept[mi.ReduceWhat.GRADIENT], g1)
            p1 = net.params.copy()
            kept[mi.ReduceWhat.GRADIENT][:] = 1e30
            kept[mi.ReduceWhat.LOSS][:] = np.nan
            np.testing.assert_array_equal(net.params, p1)

            # closing the network or the optimizer from the hook of a step that uses them is
            # refused (the step fails, chained from the refusal) and both stay usable; so is any
            # other call on the hook's own optimizer (optim.h), which leaves no step begun
            for act, victim in ((net.close, net), (opt.close, opt), (opt.cancel, opt)):
                def call_it(values, what, act=act):
                    act()

                opt.set_reduce(call_it)
                with self.assertRaises(mi.MomError) as cm:
                    opt.step_net(net, (x, t))
                cause = cm.exception.__cause__
                self.assertIsInstance(cause, RuntimeError)  # the binding's refusal ...
                self.assertNotIsInstance(cause, mi.MomError)  # ... before the library saw it
                self.assertFalse(victim.closed)
                self.assertFalse(opt.begun)
            opt.set_reduce(None)
            opt.step_net(net, (x, t))

    def test_optimizer_with_hook_is_collected(self):
        import gc
        before = mi.live_handles().get("Optimizer", 0)
        for _ in range(3):
            opt = mi.Optimizer("sgd", 10)
            opt.set_reduce(lambda values, what: None)
            del opt
            gc.collect()
        self.assertEqual(mi.live_handles().get("Optimizer", 0), before)


class TestRefused(unittest.TestCase):
    def test_hf_is_bound(self):  # its tests are in test_hf.py
        with mi.Optimizer("hf", 10) as opt:
            self.assertEqual(opt.kind, mi.OptimKind.HF)

    def test_enum_ints_beyond_c_int(self):
        with self.assertRaises(ValueError):
            mi.Optimizer(2**32 + 2, 10)  # would wrap to CM
        with self.assertRaises(ValueError):
            mi.Net.feedforward([1, 2, 1], output=2**32 + 1)

    def test_flush_option_by_name(self):
        with mi.Optimizer("nag", 4) as opt:
            opt.set("flush_subnormals", 0)
            self.assertEqual(opt.get(mi.OptimOption.FLUSH_SUBNORMALS), 0.0)


if __name__ == "__main__":
    unittest.main()
