#!/usr/bin/env python3
"""Train a recurrent net on the addition problem from Python (the paper's setup).

Task (docs/tasks.md): sequences of T steps with 2 inputs, a value U[0, 1) and a marker that is 1
at two steps (the first in [0, 0.1 T), the second in [0.1 T, 0.5 T)); the target, at the last
step only, is the mean of the two marked values. A sequence counts as an error when the output
is off by more than 0.04.

Network and training as in Sutskever et al. (2013), section 4 / Table 4: 100 tanh hidden units,
a linear output read at the last step; W_hh echo-state (15 nonzeros per unit, spectral radius
1.1), W_vh N(0, 0.001^2), W_ho N(0, 0.1^2), output bias at the mean target; Nesterov momentum
0.9 for the first 1000 steps, then mu_max; fresh minibatches of 100 sequences every step. The
data are generated here with numpy; the library only trains.

    MOMINIT_LIBRARY=build/lib/libmominit.so.0 PYTHONPATH=bindings/python \\
        python3 bindings/python/examples/train_addition.py --steps 3000 --T 30
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mominit as mi  # noqa: E402


def addition_batch(gen, n, T):
    """inputs (T, n, 2) and targets (T, n, 1), float32, time-major."""
    x = np.zeros((T, n, 2), dtype=np.float32)
    x[:, :, 0] = gen.random((T, n), dtype=np.float32)
    hi1 = max(1, int(np.ceil(0.1 * T)))
    hi2 = max(hi1 + 1, int(np.ceil(0.5 * T)))
    p1 = gen.integers(0, hi1, size=n)
    p2 = gen.integers(hi1, hi2, size=n)
    cols = np.arange(n)
    x[p1, cols, 1] = 1.0
    x[p2, cols, 1] = 1.0
    t = np.zeros((T, n, 1), dtype=np.float32)
    t[T - 1, :, 0] = 0.5 * (x[p1, cols, 0] + x[p2, cols, 0])
    return x, t


def train(steps=3000, T=30, batch=100, lr=0.01, mu_max=0.99, seed=1, hidden=100,
          report=200, out=sys.stdout):
    """Train and return (initial test loss, final test loss, final test error)."""
    gen = np.random.default_rng(seed)
    test = mi.Batch(*addition_batch(gen, 1000, T))
    with mi.Net.recurrent(2, hidden, 1, hidden_act="tanh", output="linear_squared") as net, \
            mi.Sched.piecewise([0, 1000], [0.9, mu_max]) as momentum, \
            mi.Optimizer("nag", net, lr=lr, momentum=momentum, clip_norm=10.0) as opt:
        mi.preset_rnn(net, input_scale=0.001, seed=seed, data=test)
        net.reserve(batch, T)  # no allocation during training
        first = net.loss(test)
        print(f"libmominit {mi.version}: {net.num_params} parameters, T = {T}, "
              f"test loss {first:.5f}", file=out)
        start = time.monotonic()
        for step in range(1, steps + 1):
            loss = opt.step_net(net, addition_batch(gen, batch, T))
            if step % report == 0 or step == steps:
                err = net.metric(test, mi.Metric.THRESHOLD_ERROR, 0.04)
                print(f"step {step:6d}  mu {opt.momentum:.3f}  train loss {loss:.5f}  "
                      f"test loss {net.loss(test):.5f}  error {100 * err:5.1f}%  "
                      f"({time.monotonic() - start:.1f}s)", file=out)
        return first, net.loss(test), net.metric(test, mi.Metric.THRESHOLD_ERROR, 0.04)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--T", type=int, default=30, help="sequence length")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--mu-max", type=float, default=0.99)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--report", type=int, default=200)
    a = ap.parse_args()
    first, last, err = train(a.steps, a.T, a.batch, a.lr, a.mu_max, a.seed, a.hidden, a.report)
    print(f"test loss {first:.5f} -> {last:.5f}, error {100 * err:.1f}%")
    return 0 if last < first else 1


if __name__ == "__main__":
    sys.exit(main())
