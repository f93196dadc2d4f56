"""Shared helpers of the binding's tests: small data sets and finite differences."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import mominit as mi  # noqa: E402


def addition_batch(gen, n, T):
    """The addition problem (docs/tasks.md), generated with numpy: inputs (T, n, 2) time-major,
    channel 0 a value U[0, 1), channel 1 a marker at the two relevant steps (the first in
    [0, 0.1 T), the second in [0.1 T, 0.5 T)); target at the last step the mean of the two
    marked values (float32, (T, n, 1), zero elsewhere; the default mask weighs the last step)."""
    x = np.zeros((T, n, 2), dtype=np.float32)
    x[:, :, 0] = gen.random((T, n), dtype=np.float32)
    lo1, hi1 = 0, max(1, int(np.ceil(0.1 * T)))
    lo2, hi2 = hi1, max(hi1 + 1, int(np.ceil(0.5 * T)))
    p1 = gen.integers(lo1, hi1, size=n)
    p2 = gen.integers(lo2, hi2, size=n)
    cols = np.arange(n)
    x[p1, cols, 1] = 1.0
    x[p2, cols, 1] = 1.0
    t = np.zeros((T, n, 1), dtype=np.float32)
    t[T - 1, :, 0] = 0.5 * (x[p1, cols, 0] + x[p2, cols, 0])
    return x, t


def classification_batch(gen, n, n_in, n_out):
    """Random inputs with one-hot targets from a fixed random linear rule."""
    x = gen.standard_normal((n, n_in)).astype(np.float32)
    w = np.random.default_rng(1234).standard_normal((n_in, n_out))
    labels = np.argmax(x @ w, axis=1)
    t = np.zeros((n, n_out), dtype=np.float32)
    t[np.arange(n), labels] = 1.0
    return x, t


def finite_difference_grad(net, batch, h=1e-2):
    """Central differences of net.loss() for every parameter, in float64 from float32 losses
    (the loss is accumulated in double by the library)."""
    base = np.array(net.params, dtype=np.float32)
    fd = np.empty(base.size, dtype=np.float64)
    p = base.copy()
    for i in range(base.size):
        step = h * max(1.0, abs(float(base[i])))
        p[i] = base[i] + step
        up = net.loss(batch, params=p)
        p[i] = base[i] - step
        down = net.loss(batch, params=p)
        p[i] = base[i]
        # the step actually taken in float32
        actual = float(np.float32(base[i] + step)) - float(np.float32(base[i] - step))
        fd[i] = (up - down) / actual
    return fd


def relative_error(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    floor = 1e-3 * max(np.max(np.abs(a)), 1e-12)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))
