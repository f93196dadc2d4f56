"""Optimizers: the any-model begin/end path (bit-exact update rules), step_net, state errors,
divergence, options, zero-copy views and NAG's look-ahead form."""
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


class TestLookahead(unittest.TestCase):
    """NAG in the look-ahead form: set_lookahead() converts the vector, get_theta() reads theta,
    the lookahead property reports the form."""

    def setUp(self):
        gen = np.random.default_rng(7)
        self.a = gen.normal(size=(8, 5)).astype(f32)
        self.b = gen.normal(size=8).astype(f32)
        self.fn = quadratic(self.a, self.b)

    def test_training_tracks_default_form(self):
        """Two identical runs on a network, one switched to the look-ahead form after 3 steps:
        its get_theta() follows the other's parameters to float rounding over 40 steps whose
        momentum changes (paper schedule, period 4), its vector holding another point."""
        gen = np.random.default_rng(11)
        batches = [classification_batch(gen, 16, 4, 3) for _ in range(40)]
        with mi.Net.feedforward([4, 8, 3], "tanh", "softmax_xent") as n1, \
                mi.Net.feedforward([4, 8, 3], "tanh", "softmax_xent") as n2, \
                mi.Optimizer("nag", n1, lr=0.05,
                             momentum=mi.Sched.paper_momentum(0.99, 4)) as o1, \
                mi.Optimizer("nag", n2, lr=0.05,
                             momentum=mi.Sched.paper_momentum(0.99, 4)) as o2:
            mi.preset_ff(n1, 5)
            mi.preset_ff(n2, 5)
            p0 = n1.params.copy()
            gap = 0.0
            for i, (x, t) in enumerate(batches):
                if i == 3:
                    self.assertFalse(o2.lookahead)
                    o2.set_lookahead(n2)
                    self.assertTrue(o2.lookahead)
                    self.assertFalse(o1.lookahead)
                l1 = o1.step_net(n1, (x, t))
                l2 = o2.step_net(n2, (x, t))
                self.assertAlmostEqual(l1, l2, delta=1e-4 * abs(l1))
                theta = o2.get_theta(n2)
                self.assertEqual(theta.dtype, f32)
                scale = np.max(np.abs(n1.params))
                np.testing.assert_allclose(theta, n1.params, rtol=0, atol=2e-5 * scale)
                np.testing.assert_allclose(o2.velocity, o1.velocity, rtol=0, atol=2e-5 * scale)
                if i >= 3:
                    gap = max(gap, float(np.max(np.abs(n2.params - theta))))
            self.assertGreater(gap, 1e-3)  # the vector held the look-ahead point, not theta
            self.assertGreater(np.max(np.abs(n1.params - p0)), 1e-2)  # and it trained
            # theta through an array and into `out`; the net's vector is left as it was
            phi = n2.params.copy()
            out = np.full(n2.num_params, np.nan, f32)
            self.assertIs(o2.get_theta(phi, out=out), out)
            np.testing.assert_array_equal(out, o2.get_theta(n2))
            np.testing.assert_array_equal(n2.params, phi)
            self.assertAlmostEqual(n2.loss(batches[0], params=out), n1.loss(batches[0]),
                                   delta=1e-5)
            self.assertGreater(abs(n2.loss(batches[0]) - n1.loss(batches[0])), 1e-5)

    def test_any_model_point_is_params(self):
        """begin/end in the look-ahead form: with a constant momentum the point is the vector
        itself, and theta follows the default form's."""
        with mi.Optimizer("nag", 5, lr=0.02, momentum=0.9) as o1, \
                mi.Optimizer("nag", 5, lr=0.02, momentum=0.9) as o2:
            x1 = np.zeros(5, f32)
            x2 = np.zeros(5, f32)
            o2.set_lookahead(x2)
            np.testing.assert_array_equal(x2, 0.0)  # v = 0: the same vector
            for _ in range(50):
                o1.step(x1, self.fn)
                point = o2.begin(x2)
                self.assertIs(point, x2)
                loss, g = self.fn(point)
                o2.end(x2, loss, g)
            np.testing.assert_allclose(o2.get_theta(x2), x1, rtol=0, atol=1e-5)
            self.assertGreater(np.max(np.abs(x2 - x1)), 1e-3)

    def test_round_trip(self):
        with mi.Optimizer("nag", 5, lr=0.05, momentum=0.9) as opt:
            x = np.ones(5, f32)
            for _ in range(5):
                opt.step(x, self.fn)
            v = opt.velocity.copy()
            self.assertGreater(np.max(np.abs(v)), 1e-2)
            theta = x.copy()
            # in the default form get_theta() is an exact copy, in new memory
            got = opt.get_theta(x)
            np.testing.assert_array_equal(got, theta)
            self.assertFalse(np.may_share_memory(got, x))
            opt.set_lookahead(x)
            self.assertTrue(opt.lookahead)
            np.testing.assert_allclose(x, theta + f32(0.9) * v, rtol=1e-6, atol=1e-7)
            ulp = 4 * np.spacing(np.max(np.abs(x)))
            np.testing.assert_allclose(opt.get_theta(x), theta, rtol=0, atol=ulp)
            phi = x.copy()
            opt.set_lookahead(x, on=True)  # already in that form: nothing changes
            np.testing.assert_array_equal(x, phi)
            self.assertTrue(opt.lookahead)
            opt.set_lookahead(x, False)
            self.assertFalse(opt.lookahead)
            np.testing.assert_allclose(x, theta, rtol=0, atol=ulp)
            np.testing.assert_array_equal(opt.get_theta(x), x)
            np.testing.assert_array_equal(opt.velocity, v)  # the velocity is not touched
            self.assertEqual(opt.steps, 5)
        # a Net's vector is converted in place (views see it)
        with mi.Net.feedforward([3, 4, 2], "tanh") as net, \
                mi.Optimizer("nag", net, lr=0.1, momentum=0.5) as opt:
            mi.preset_ff(net, 2)
            x, t = classification_batch(np.random.default_rng(4), 8, 3, 2)
            opt.step_net(net, (x, t))
            view = net.params
            theta = view.copy()
            opt.set_lookahead(net)
            np.testing.assert_allclose(view, theta + f32(0.5) * opt.velocity, rtol=1e-6,
                                       atol=1e-7)
            self.assertGreater(np.max(np.abs(view - theta)), 1e-4)
            opt.set_lookahead(net, on=False)
            np.testing.assert_allclose(view, theta, rtol=0,
                                       atol=4 * np.spacing(np.max(np.abs(theta))))

    def test_errors(self):
        for kind in ("sgd", "cm", "hf"):
            with self.subTest(kind=kind), mi.Optimizer(kind, 5) as opt:
                x = np.ones(5, f32)
                with self.assertRaises(mi.UnsupportedError) as cm:
                    opt.set_lookahead(x)
                self.assertIn("NAG", cm.exception.detail)
                self.assertFalse(opt.lookahead)
                np.testing.assert_array_equal(x, 1.0)
                np.testing.assert_array_equal(opt.get_theta(x), x)  # a copy on any kind
        with mi.Optimizer("nag", 5, momentum=0.9) as opt:
            x = np.ones(5, f32)
            for bad in (np.ones(5), np.ones(5, np.float16), [1.0] * 5):
                with self.assertRaises(TypeError):
                    opt.set_lookahead(bad)
                with self.assertRaises(TypeError):
                    opt.get_theta(bad)
            with self.assertRaisesRegex(ValueError, "elements"):
                opt.set_lookahead(np.ones(4, f32))
            with self.assertRaisesRegex(ValueError, "elements"):
                opt.get_theta(np.ones(6, f32))
            with self.assertRaisesRegex(ValueError, "writable"):
                ro = np.ones(5, f32)
                ro.flags.writeable = False
                opt.set_lookahead(ro)
            with self.assertRaisesRegex(ValueError, "contiguous"):
                opt.set_lookahead(np.ones(10, f32)[::2])
            with self.assertRaisesRegex(ValueError, "elements"):
                opt.get_theta(x, out=np.empty(4, f32))
            with self.assertRaises(TypeError):
                opt.get_theta(x, out=np.empty(5))
            with self.assertRaisesRegex(ValueError, "overlap"):
                opt.get_theta(x, out=x)
            with mi.Net.feedforward([2, 3, 1]) as other:  # 13 parameters, not 5
                with self.assertRaisesRegex(ValueError, "elements"):
                    opt.set_lookahead(other)
            self.assertFalse(opt.lookahead)
            # the option is read-only: the generic setter is refused, the property has no setter
            for key in (mi.OptimOption.LOOKAHEAD, 4, "lookahead"):
                with self.assertRaises(mi.InvalidError) as cm:
                    opt.set(key, 1)
                self.assertIn("mom_optim_set_lookahead", cm.exception.detail)
            with self.assertRaises(AttributeError):
                opt.lookahead = True
            self.assertFalse(opt.lookahead)
            self.assertEqual(opt.get(mi.OptimOption.LOOKAHEAD), 0.0)
            # not between begin and end
            opt.begin(x)
            with self.assertRaises(mi.StateError):
                opt.set_lookahead(x)
            opt.cancel()
            opt.set_lookahead(x)
            self.assertEqual(opt.get("lookahead"), 1.0)
        # a converted value that would overflow: DivergedError, nothing changed
        with mi.Optimizer("nag", 2, lr=1.0, momentum=0.9) as opt:
            x = np.zeros(2, f32)
            opt.begin(x)
            opt.end(x, 0.0, np.array([-3e38, 1.0], f32))  # v = x = (3e38, -1)
            x0, v0 = x.copy(), opt.velocity.copy()
            with self.assertRaises(mi.DivergedError) as cm:
                opt.set_lookahead(x)  # 3e38 + 0.9 * 3e38 is not a float
            self.assertTrue(cm.exception.detail)
            np.testing.assert_array_equal(x, x0)
            np.testing.assert_array_equal(opt.velocity, v0)
            self.assertFalse(opt.lookahead)
        # a momentum outside [0, 1], and a callback schedule that raises (chained)
        with mi.Optimizer("nag", 3, momentum=mi.Sched.const(1.5)) as opt:
            with self.assertRaises(mi.InvalidError):
                opt.set_lookahead(np.ones(3, f32))
            self.assertFalse(opt.lookahead)

        def broken(t):
            raise KeyError("no momentum")

        with mi.Optimizer("nag", 3, momentum=mi.Sched.callback(broken)) as opt:
            x = np.ones(3, f32)
            with self.assertRaises(mi.MomError) as cm:
                opt.set_lookahead(x)
            self.assertIsInstance(cm.exception.__cause__, KeyError)
            np.testing.assert_array_equal(x, 1.0)
            self.assertFalse(opt.lookahead)

    def test_checkpoint_keeps_the_form(self):
        """A checkpoint of a run in the look-ahead form restores an optimizer in that form whose
        continuation equals the uninterrupted run bit for bit; restore() into an optimizer in the
        default form switches it."""
        gen = np.random.default_rng(12)
        batches = [classification_batch(gen, 16, 4, 3) for _ in range(12)]

        def start():
            net = mi.Net.feedforward([4, 6, 3], "tanh", "softmax_xent")
            mi.preset_ff(net, 9)
            return net, mi.Optimizer("nag", net, lr=0.05,
                                     momentum=mi.Sched.paper_momentum(0.99, 3))

        net, opt = start()
        try:
            for x, t in batches[:4]:
                opt.step_net(net, (x, t))
            opt.set_lookahead(net)
            for x, t in batches[4:6]:
                opt.step_net(net, (x, t))
            with mi.Checkpoint() as ck:
                blob = ck.capture(net, opt).to_bytes()
            with mi.Checkpoint.from_bytes(blob) as ck:
                net2, opt2, _ = ck.restore_new()
            net3, opt3 = start()  # default form, restored into
            self.assertFalse(opt3.lookahead)
            with mi.Checkpoint.from_bytes(blob) as ck:
                ck.restore(net3, opt3)
            for n, o in ((net2, opt2), (net3, opt3)):
                self.assertTrue(o.lookahead)
                self.assertEqual(o.steps, 6)
                np.testing.assert_array_equal(n.params, net.params)
                np.testing.assert_array_equal(o.get_theta(n), opt.get_theta(net))
            for x, t in batches[6:]:
                for n, o in ((net, opt), (net2, opt2), (net3, opt3)):
                    o.step_net(n, (x, t))
            np.testing.assert_array_equal(net2.params, net.params)
            np.testing.assert_array_equal(net3.params, net.params)
            np.testing.assert_array_equal(opt2.velocity, opt.velocity)
            # and back: a default-form image switches an optimizer in the look-ahead form back
            opt.set_lookahead(net, on=False)
            with mi.Checkpoint() as ck:
                ck.capture(net, opt).restore(net2, opt2)
            self.assertFalse(opt2.lookahead)
            np.testing.assert_array_equal(net2.params, net.params)
            for obj in (net2, opt2, net3, opt3):
                obj.close()
        finally:
            opt.close()
            net.close()


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
