"""Training end to end: the addition problem with a recurrent net (the paper's setup, smaller),
a feedforward classifier, and the example program."""
import io
import os
import subprocess
import sys
import unittest

import numpy as np

from helpers import addition_batch, classification_batch, mi

HERE = os.path.dirname(os.path.abspath(__file__))


class TestTraining(unittest.TestCase):
    def test_addition_loss_falls(self):
        gen = np.random.default_rng(11)
        T = 20
        test = mi.Batch(*addition_batch(gen, 500, T))
        with mi.Net.recurrent(2, 100, 1, "tanh", "linear_squared") as net, \
                mi.Optimizer("nag", net, lr=0.01,
                             momentum=mi.Sched.piecewise([0, 1000], [0.9, 0.99]),
                             clip_norm=10.0) as opt:
            mi.preset_rnn(net, 0.001, seed=11, data=test)
            first = net.loss(test)
            # the initial prediction is the mean target: the loss is half its variance
            self.assertAlmostEqual(first, 0.5 * float(np.var(test.targets[-1])), delta=2e-3)
            for _ in range(400):
                loss = opt.step_net(net, addition_batch(gen, 100, T))
                self.assertTrue(np.isfinite(loss))
            last = net.loss(test)
            self.assertEqual(opt.steps, 400)
            self.assertLess(last, 0.85 * first, f"test loss {first:.5f} -> {last:.5f}")

    def test_feedforward_classifier_learns(self):
        gen = np.random.default_rng(12)
        train = mi.Batch(*classification_batch(gen, 200, 10, 4))
        test = mi.Batch(*classification_batch(gen, 200, 10, 4))
        with mi.Net.feedforward([10, 20, 4], "tanh", "softmax_xent") as net, \
                mi.Optimizer("nag", net, lr=0.05, momentum=mi.Sched.paper_momentum(0.99)) as opt:
            mi.preset_ff(net, 3)
            err0 = net.metric(test, mi.Metric.CLASS_ERROR)
            loss0 = net.loss(train)
            for _ in range(300):
                opt.step_net(net, train)
            self.assertLess(net.loss(train), 0.5 * loss0)
            self.assertLess(net.metric(test, mi.Metric.CLASS_ERROR), min(0.25, err0))

    def test_example_program(self):
        sys.path.insert(0, os.path.join(HERE, "..", "examples"))
        try:
            import train_addition
        finally:
            sys.path.pop(0)
        out = io.StringIO()
        first, last, err = train_addition.train(steps=150, T=15, batch=50, hidden=30,
                                                report=50, out=out)
        self.assertLess(last, first)
        self.assertIn("step    150", out.getvalue())
        self.assertTrue(0.0 <= err <= 1.0)
        # and as a program, with its command line
        r = subprocess.run([sys.executable, os.path.join(HERE, "..", "examples",
                                                         "train_addition.py"),
                            "--steps", "60", "--T", "10", "--batch", "20", "--hidden", "20",
                            "--report", "30"], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("test loss", r.stdout)


if __name__ == "__main__":
    unittest.main()
