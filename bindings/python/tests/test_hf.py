"""The Hessian-free optimizer: training a feedforward and a recurrent net, determinism, the
batch the step leaves in the net (lifetime), options and report, step_net on HF, checkpoints."""
import gc
import unittest

import numpy as np

from helpers import addition_batch, classification_batch, mi

f32 = np.float32
O = mi.OptimOption

# small CG budgets: the tests run on a busy machine
FF_HF = dict(max_cg=30)
RNN_HF = dict(max_cg=20, struct_damping=0.3)


def ff_run(steps, seed=3, **hf):
    net = mi.Net.feedforward([6, 10, 3], "tanh", output="softmax_xent")
    mi.preset_ff(net, seed=seed)
    opt = mi.Optimizer("hf", net, hf=dict(FF_HF, **hf))
    x, t = classification_batch(np.random.default_rng(seed), 48, 6, 3)
    b = mi.Batch(x, t)
    losses = [opt.step_hf(net, b) for _ in range(steps)]
    return net, opt, b, losses


def rnn_data(seed, n=16, T=6):
    return mi.Batch(*addition_batch(np.random.default_rng(seed), n, T))


class TestTraining(unittest.TestCase):
    def test_feedforward_loss_falls(self):
        net, opt, b, losses = ff_run(5)
        with net, opt:
            final = net.loss(b)
            self.assertLess(final, 0.8 * losses[0])
            self.assertTrue(all(l1 <= l0 for l0, l1 in zip(losses, losses[1:])), losses)
            self.assertEqual(opt.steps, 5)
            self.assertEqual(opt.kind, mi.OptimKind.HF)
            rep = opt.hf_report()
            self.assertEqual(rep["loss_before"], losses[-1])
            self.assertEqual(rep["loss_after"], final)
            self.assertTrue(1 <= rep["cg_iters"] <= 30)
            self.assertIsInstance(rep["cg_iters"], int)
            self.assertEqual(rep["lambda"], opt.get(O.HF_LAMBDA))
            self.assertTrue(np.any(opt.velocity != 0))  # the warm start

    def test_recurrent_with_structural_damping(self):
        net = mi.Net.recurrent(2, 8, 1)
        mi.preset_rnn(net, 0.01, seed=5)
        with net, mi.Optimizer("hf", net, hf=RNN_HF) as opt:
            self.assertEqual(opt.get("hf_struct_damping"), 0.3)
            grad_b, curv_b = rnn_data(1, n=24), rnn_data(2, n=12)
            before = net.loss(grad_b)
            for _ in range(4):
                opt.step_hf(net, grad_b, curv_b)
            self.assertLess(net.loss(grad_b), before)
            self.assertEqual(opt.steps, 4)

    def test_deterministic(self):
        outs = []
        for _ in range(2):
            net, opt, _b, losses = ff_run(3)
            outs.append((net.params.tobytes(), opt.velocity.tobytes(), losses,
                         opt.get(O.HF_LAMBDA)))
            net.close()
            opt.close()
        self.assertEqual(outs[0], outs[1])

    def test_step_net_is_step_hf_with_one_batch(self):
        outs = []
        for use_step_net in (False, True):
            net = mi.Net.feedforward([6, 10, 3], "tanh", output="softmax_xent")
            mi.preset_ff(net, seed=3)
            x, t = classification_batch(np.random.default_rng(3), 48, 6, 3)
            with net, mi.Optimizer("hf", net, hf=FF_HF) as opt:
                for _ in range(2):
                    if use_step_net:
                        opt.step_net(net, (x, t))
                    else:
                        opt.step_hf(net, (x, t), None)
                outs.append((net.params.tobytes(), opt.velocity.tobytes(), opt.hf_report()))
        self.assertEqual(outs[0][:2], outs[1][:2])
        self.assertEqual(str(outs[0][2]), str(outs[1][2]))  # NaN-safe comparison

    def test_identity_reduction_hook(self):
        """A one-worker hook sees every HF reduction and changes nothing but the last bits
        (with a hook, HF on a feedforward net uses the plain Gauss-Newton product:
        docs/distributed.md)."""
        outs, seen = [], set()
        for hook in (False, True):
            net = mi.Net.feedforward([6, 10, 3], "tanh", output="softmax_xent")
            mi.preset_ff(net, seed=3)
            x, t = classification_batch(np.random.default_rng(3), 48, 6, 3)
            with net, mi.Optimizer("hf", net, hf=FF_HF) as opt:
                if hook:
                    opt.set_reduce(lambda values, what: seen.add(what))
                for _ in range(2):  # a curvature batch of its own: CURV_LOSS is reduced too
                    opt.step_hf(net, (x, t), (x[:24].copy(), t[:24].copy()))
                outs.append(np.array(net.params))
        np.testing.assert_allclose(outs[1], outs[0], rtol=1e-3, atol=1e-5)
        self.assertEqual(seen, set(mi.ReduceWhat))


class TestBatchLifetime(unittest.TestCase):
    """The step leaves pointers into the curvature batch in the C net (mom_net_gv_begin()):
    Net.gv() reads them after the step. The net must keep the batch alive."""

    def check(self, net, opt, make_grad, make_curv, struct_damping):
        v = np.random.default_rng(9).standard_normal(net.num_params).astype(f32)
        grad_b = make_grad()
        # arrays of their own, referenced only by the Batch: its last reference goes below
        curv = make_curv()
        curv_b = mi.Batch(np.array(curv.inputs), np.array(curv.targets))
        del curv
        opt.step_hf(net, grad_b, curv_b)
        expected = net.gv(v, struct_damping)
        shapes = [curv_b.inputs.shape, curv_b.targets.shape]
        del curv_b, grad_b
        gc.collect()
        # reuse freed memory (numpy caches small blocks by size): garbage of the same sizes
        junk = [np.full(s, 7.0e3, f32) for s in shapes * 64]
        got = net.gv(v, struct_damping)
        del junk
        np.testing.assert_array_equal(got, expected)
        # a second step with new batches replaces the held one; gv still reads valid data
        curv2 = make_curv()
        opt.step_hf(net, make_grad(), curv2)
        expected2 = net.gv(v, struct_damping)
        del curv2
        gc.collect()
        junk = [np.full(s, -3.0e3, f32) for s in shapes * 64]
        np.testing.assert_array_equal(net.gv(v, struct_damping), expected2)
        del junk

    def test_feedforward(self):
        net = mi.Net.feedforward([6, 10, 3], "tanh", output="softmax_xent")
        mi.preset_ff(net, seed=3)
        gen = np.random.default_rng(11)
        make = lambda: mi.Batch(*classification_batch(gen, 20, 6, 3))  # noqa: E731
        with net, mi.Optimizer("hf", net, hf=dict(max_cg=5)) as opt:
            self.check(net, opt, make, make, 0.0)

    def test_recurrent(self):
        net = mi.Net.recurrent(2, 6, 1)
        mi.preset_rnn(net, 0.01, seed=4)
        seeds = iter(range(100))
        make = lambda: rnn_data(next(seeds), n=8, T=5)  # noqa: E731
        with net, mi.Optimizer("hf", net, hf=dict(max_cg=5, struct_damping=0.3)) as opt:
            self.check(net, opt, make, make, 0.3 * opt.get(O.HF_LAMBDA))

    def test_step_net_keeps_its_batch(self):
        net = mi.Net.feedforward([6, 10, 3], "tanh", output="softmax_xent")
        mi.preset_ff(net, seed=3)
        v = np.ones(net.num_params, f32)
        x, t = classification_batch(np.random.default_rng(2), 20, 6, 3)
        with net, mi.Optimizer("hf", net, hf=dict(max_cg=5)) as opt:
            opt.step_net(net, mi.Batch(x.copy(), t.copy()))
            expected = net.gv(v)
            gc.collect()
            junk = [np.full(s, 5.0e3, f32) for s in (x.shape, t.shape) * 64]
            np.testing.assert_array_equal(net.gv(v), expected)
            del junk

    def test_failed_step_keeps_both_batches(self):
        net = mi.Net.feedforward([6, 10, 3], "tanh", output="softmax_xent")
        mi.preset_ff(net, seed=3)
        gen = np.random.default_rng(12)
        with net, mi.Optimizer("hf", net, hf=dict(max_cg=5)) as opt:
            first = mi.Batch(*classification_batch(gen, 20, 6, 3))
            opt.step_hf(net, first)
            x, t = classification_batch(gen, 20, 6, 3)
            x[0, 0] = np.nan
            bad = mi.Batch(x, t)
            with self.assertRaises(mi.MomError):
                opt.step_hf(net, bad)
            # whether or not the C step reached gv_begin, what it may point into is alive
            self.assertTrue(any(o is first for o in net._gv_keep))
            self.assertTrue(any(o is bad for o in net._gv_keep))
            opt.step_hf(net, first)
            self.assertIs(net._gv_keep[0], first)
            self.assertEqual(len([o for o in net._gv_keep if o is not None]), 1)

    def test_hook_may_not_touch_the_net_of_the_step(self):
        # a reduction hook that calls gv_begin() on the step's net would leave the C net
        # pointing into a batch nothing keeps alive: such calls are refused, the step fails
        # (chained from the refusal), and the net's products still read valid data
        net = mi.Net.feedforward([6, 10, 3], "tanh", output="softmax_xent")
        mi.preset_ff(net, seed=3)
        x, t = classification_batch(np.random.default_rng(2), 20, 6, 3)
        v = np.ones(net.num_params, f32)
        with net, mi.Optimizer("hf", net, hf=dict(max_cg=5)) as opt:
            opt.step_hf(net, (x, t))
            p0 = net.params.copy()

            def hook(values, what):
                if what == mi.ReduceWhat.GV:
                    net.gv_begin(mi.Batch(np.full((40, 6), 7.0, f32), np.zeros((40, 3), f32)))

            opt.set_reduce(hook)
            with self.assertRaises(mi.MomError) as cm:
                opt.step_hf(net, (x, t))
            self.assertIsInstance(cm.exception.__cause__, RuntimeError)
            self.assertIn("network of the step", str(cm.exception.__cause__))
            opt.set_reduce(None)
            np.testing.assert_array_equal(net.params, p0)
            expected = net.gv(v)  # on the batch the failed step gave gv_begin
            gc.collect()
            junk = [np.full((40, 6), -1e30, f32) for _ in range(50)]
            np.testing.assert_array_equal(net.gv(v), expected)
            del junk
            # outside a step the same call is fine
            net.gv_begin((x, t))

    def test_closing_the_net_drops_the_batch(self):
        import weakref
        net = mi.Net.feedforward([6, 10, 3], "tanh", output="softmax_xent")
        mi.preset_ff(net, seed=3)
        b = mi.Batch(*classification_batch(np.random.default_rng(2), 20, 6, 3))
        ref = weakref.ref(b)
        with mi.Optimizer("hf", net, hf=dict(max_cg=5)) as opt:
            opt.step_hf(net, b)
        del b
        gc.collect()
        self.assertIsNotNone(ref())
        net.close()
        gc.collect()
        self.assertIsNone(ref())


class TestOptions(unittest.TestCase):
    SETTINGS = {O.HF_LAMBDA: 0.5, O.HF_MAX_CG: 40, O.HF_MIN_CG: 3, O.HF_FIXED_CG: 7,
                O.HF_PRECOND: 0, O.HF_PRECOND_EXP: 0.75, O.HF_LINE_SEARCH: 0,
                O.HF_CG_BACKTRACK: 0, O.HF_ADAPT_LAMBDA: 0, O.HF_STRUCT_DAMPING: 0.25,
                O.HF_CG_DECAY: 0.9, O.WEIGHT_DECAY: 1e-3}

    def test_round_trip(self):
        with mi.Optimizer("hf", 20) as opt:
            for key, value in self.SETTINGS.items():
                opt.set(key, value)
            for key, value in self.SETTINGS.items():
                self.assertEqual(opt.get(key), value, key)
            self.assertEqual(opt.momentum, 0.9)  # HF's momentum is the CG decay
            opt.set_cg_decay(0.8)
            self.assertEqual(opt.get("hf_cg_decay"), 0.8)
            self.assertEqual(opt.momentum, 0.8)
        # not HF: there is no CG decay, and the momentum stays what it was (optim.h)
        with mi.Optimizer("nag", 10, lr=0.1, momentum=0.9) as nag:
            with self.assertRaises(mi.UnsupportedError):
                nag.set_cg_decay(0.5)
            self.assertEqual(nag.momentum, 0.9)

    def test_get_raises_a_decay_callbacks_exception(self):
        calls = {"n": 0}

        def decay(t):
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyError("from get")
            return 0.5

        with mi.Optimizer("hf", 20, momentum=mi.Sched.callback(decay)) as opt:
            with self.assertRaises(KeyError):
                opt.get("hf_cg_decay")
            # nothing left pending for the next call
            self.assertEqual(opt.get("hf_cg_decay"), 0.5)
            self.assertEqual(opt.momentum, 0.5)

    def test_constructor_keywords(self):
        with mi.Optimizer("hf", 20, lr=0.5, weight_decay=1e-4,
                          hf={"lambda": 3.0, "HF_MAX_CG": 12, O.HF_LINE_SEARCH: 0}) as opt:
            self.assertEqual(opt.get(O.HF_LAMBDA), 3.0)
            self.assertEqual(opt.get(O.HF_MAX_CG), 12)
            self.assertEqual(opt.get(O.HF_LINE_SEARCH), 0)
            self.assertEqual(opt.lr, 0.5)
            self.assertEqual(opt.weight_decay, 1e-4)
        with self.assertRaises(ValueError):
            mi.Optimizer("cm", 20, hf={"lambda": 1.0})

    def test_defaults_and_report_before_a_step(self):
        with mi.Optimizer("hf", 20) as opt:
            self.assertEqual(opt.get(O.HF_LAMBDA), 1.0)
            self.assertEqual(opt.get(O.HF_MAX_CG), 250)
            self.assertEqual(opt.lr, 1.0)
            self.assertEqual(opt.momentum, 0.95)
            self.assertEqual(opt.clip_norm, 0.0)
            self.assertEqual(set(opt.hf_report()), set(mi.Optimizer._HF_REPORT))

    def test_refusals(self):
        with mi.Optimizer("hf", 20) as opt:
            with self.assertRaises(mi.InvalidError):
                opt.set(O.HF_LAST_RHO, 1.0)  # the report is read-only
            with self.assertRaises(mi.InvalidError):
                opt.set(O.HF_MAX_CG, 0)
            self.assertEqual(opt.get(O.HF_MAX_CG), 250)
            with self.assertRaises(mi.UnsupportedError):
                opt.clip_norm = 1.0
            with self.assertRaises(mi.UnsupportedError):
                opt.begin(np.zeros(20, f32))
        net = mi.Net.feedforward([6, 10, 3], "tanh", output="softmax_xent")
        x, t = classification_batch(np.random.default_rng(2), 20, 6, 3)
        with net, mi.Optimizer("cm", net) as opt:
            with self.assertRaises(mi.UnsupportedError):
                opt.get(O.HF_LAMBDA)
            with self.assertRaises(mi.UnsupportedError):
                opt.hf_report()
            with self.assertRaises(mi.UnsupportedError):
                opt.step_hf(net, (x, t))
            self.assertIsNone(net._gv_keep)  # refused before any use of the batch
        with mi.Optimizer("hf", 7) as opt, mi.Net.feedforward([6, 10, 3]) as net2:
            with self.assertRaises(mi.ShapeError):
                opt.step_hf(net2, (x, t))


class TestCheckpoint(unittest.TestCase):
    def state(self, net, opt):
        return (net.params.tobytes(), opt.velocity.tobytes(), opt.steps,
                opt.get(O.HF_LAMBDA), opt.get(O.HF_MAX_CG), opt.get(O.HF_STRUCT_DAMPING),
                opt.momentum, opt.lr, opt.weight_decay)

    def make(self):
        net = mi.Net.recurrent(2, 6, 1)
        mi.preset_rnn(net, 0.01, seed=8)
        opt = mi.Optimizer("hf", net, weight_decay=1e-4, hf=dict(max_cg=10, struct_damping=0.3))
        return net, opt

    def steps(self, net, opt, first, count):
        return [opt.step_hf(net, rnn_data(100 + i, n=8, T=5), rnn_data(200 + i, n=6, T=5))
                for i in range(first, first + count)]

    def test_resume_is_bit_exact(self):
        net, opt = self.make()
        losses = self.steps(net, opt, 0, 4)
        straight = self.state(net, opt)
        net.close()
        opt.close()

        net, opt = self.make()
        resumed = self.steps(net, opt, 0, 2)
        ck = mi.Checkpoint()
        ck.capture(net, opt)
        data = ck.to_bytes()
        ck.close()
        net.close()
        opt.close()
        with mi.Checkpoint.from_bytes(data) as ck:
            self.assertEqual(ck.optim_kind, mi.OptimKind.HF)
            net, opt, _ = ck.restore_new()
        with net, opt:
            self.assertEqual(opt.kind, mi.OptimKind.HF)
            self.assertEqual(opt.steps, 2)
            resumed += self.steps(net, opt, 2, 2)
            self.assertEqual(resumed, losses)
            self.assertEqual(self.state(net, opt), straight)

    def test_restore_into_existing_hf_optimizer(self):
        net, opt = self.make()
        self.steps(net, opt, 0, 2)
        with mi.Checkpoint() as ck:
            ck.capture(net, opt)
            saved = self.state(net, opt)
            self.steps(net, opt, 2, 1)
            opt.set(O.HF_MAX_CG, 99)
            self.assertNotEqual(self.state(net, opt), saved)
            ck.restore(net, opt)
            self.assertEqual(self.state(net, opt), saved)
            with mi.Optimizer("nag", net) as other:
                with self.assertRaises(mi.FormatError):
                    ck.restore(optim=other)
        net.close()
        opt.close()


if __name__ == "__main__":
    unittest.main()
