"""Schedules: documented values, reference counting across Python and C, callbacks."""
import gc
import unittest

from helpers import mi


class TestValues(unittest.TestCase):
    def test_paper_momentum_exact(self):
        with mi.Sched.paper_momentum(0.999, 250) as s:
            self.assertEqual(s.kind, mi.SchedKind.PAPER_MOMENTUM)
            self.assertEqual(s(0), 0.5)
            self.assertEqual(s(249), 0.5)
            self.assertEqual(s(250), 0.75)
            for t, mu in ((1000, 0.9), (2250, 0.95), (12250, 0.99), (24750, 0.995),
                          (124750, 0.999), (10 ** 9, 0.999)):
                self.assertEqual(s.value(t), mu)  # the same double as the literal
        with mi.Sched.paper_momentum(0.9) as s:
            self.assertEqual(s(10 ** 6), 0.9)

    def test_const_piecewise_anneal(self):
        with mi.Sched.const(0.25) as c:
            self.assertEqual(c.kind, mi.SchedKind.CONST)
            self.assertEqual(c(12345), 0.25)
        with mi.Sched.piecewise([0, 1000], [0.9, 0.99]) as p:
            self.assertEqual(list(p.values([0, 999, 1000, 5000])), [0.9, 0.9, 0.99, 0.99])
        with mi.Sched.anneal(1.0, 500.0, 4000.0) as a:
            self.assertEqual(a(4000), 1.0)
            self.assertEqual(a(5000), 0.5)

    def test_final_phase_keeps_base_alive(self):
        base = mi.Sched.paper_momentum(0.999, 250)
        fin = mi.Sched.final_phase(base, total=3000, final_steps=1000, value=0.9,
                                   mode=mi.FinalMode.MIN)
        base.close()  # the wrapper holds its own C reference
        gc.collect()
        self.assertEqual(fin.kind, mi.SchedKind.FINAL_PHASE)
        self.assertEqual(fin(0), 0.5)         # min(0.5, .) is not reached: before the phase
        self.assertEqual(fin(1999), 1 - 1 / (2 * (1999 // 250 + 1)))
        self.assertEqual(fin(2000), 0.9)      # min(0.9444.., 0.9)
        with mi.Sched.const(0.2) as low, \
                mi.Sched.final_phase(low, 100, 10, 0.9, mode="min") as f2, \
                mi.Sched.final_phase(low, 100, 10, 0.9, mode="replace") as f3:
            self.assertEqual(f2(95), 0.2)     # MIN never raises
            self.assertEqual(f3(95), 0.9)
        fin.close()

    def test_invalid_arguments(self):
        cases = [lambda: mi.Sched.const(float("nan")),
                 lambda: mi.Sched.paper_momentum(1.5),
                 lambda: mi.Sched.paper_momentum(0.9, 0),
                 lambda: mi.Sched.piecewise([1, 2], [0.1, 0.2]),
                 lambda: mi.Sched.piecewise([0, 5, 5], [0.1, 0.2, 0.3]),
                 lambda: mi.Sched.anneal(1.0, 0.0)]
        for i, make in enumerate(cases):
            with self.subTest(case=i), self.assertRaises(mi.InvalidError) as cm:
                make()
            # schedules have no detail message: the binding names the arguments
            self.assertIn("=", cm.exception.detail)
        with self.assertRaises(ValueError):
            mi.Sched.piecewise([0, 1], [0.5])
        with self.assertRaises(TypeError):
            mi.Sched.final_phase(0.5, 10, 1, 0.1)
        with self.assertRaises(TypeError):
            mi.Sched(0.5)


class TestPiecewiseStarts(unittest.TestCase):
    def test_starts_must_be_non_negative_integers(self):
        for bad in ([0, 2.9], [0, -1]):
            with self.assertRaises(ValueError):
                mi.Sched.piecewise(bad, [1.0, 2.0])
        with mi.Sched.piecewise([0, 2], [1.0, 2.0]) as s:
            self.assertEqual(list(s.values(range(4))), [1.0, 1.0, 2.0, 2.0])

    def test_starts_above_2_63_in_a_list(self):
        # a list mixing values below and above 2^63 (numpy alone would make it float64)
        big = 2**63 + 5
        with mi.Sched.piecewise([0, big], [0.1, 0.2]) as s:
            self.assertEqual(s(big - 1), 0.1)
            self.assertEqual(s(big), 0.2)
        for bad in ([0, 2**64], [0, True], [0, "3"]):
            with self.assertRaises(ValueError):
                mi.Sched.piecewise(bad, [1.0, 2.0])


class TestCallback(unittest.TestCase):
    def test_callback_values_and_exceptions(self):
        calls = []

        def fn(t):
            calls.append(t)
            if t == 13:
                raise KeyError("unlucky")
            return 1.0 / (t + 1)

        with mi.Sched.callback(fn) as s:
            self.assertEqual(s.kind, mi.SchedKind.CALLBACK)
            self.assertEqual(s(3), 0.25)
            with self.assertRaises(KeyError):
                s(13)
            self.assertEqual(s(1), 0.5)  # the error does not stick
            self.assertEqual(calls, [3, 13, 1])

    def test_optimizer_keeps_callback_alive(self):
        calls = []

        def lr(t):
            calls.append(t)
            return 0.125

        s = mi.Sched.callback(lr)
        opt = mi.Optimizer("sgd", 4, lr=s)
        s.close()
        del s, lr
        gc.collect()
        self.assertEqual(opt.lr, 0.125)  # the C schedule calls back into a live function
        self.assertTrue(calls)
        opt.close()

    def test_lr_callback_failure_in_step(self):
        import numpy as np

        def bad(t):
            raise ZeroDivisionError("boom")

        with mi.Optimizer("cm", 3, lr=mi.Sched.callback(bad)) as opt:
            p = np.ones(3, np.float32)
            with self.assertRaises(mi.InvalidError) as cm:
                opt.begin(p)
            self.assertIsInstance(cm.exception.__cause__, ZeroDivisionError)
            self.assertIn("learning rate", cm.exception.detail)
            self.assertFalse(opt.begun)
            np.testing.assert_array_equal(p, 1.0)


if __name__ == "__main__":
    unittest.main()
