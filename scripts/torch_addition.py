#!/usr/bin/env python3
"""Cross-check of mominit-rnn's addition runs: the same training in PyTorch, from the same
initial network.

It builds libmominit's initial network for a seed (mom_init_preset_rnn through the Python
bindings: the paper's Table 4 initialization, exactly the weights `mominit-rnn --task addition
--seed N` starts from, with the output bias set to the expected target 0.5), then trains it with
an implementation that shares no code with the library: torch's tanh RNN kernel for the
recurrence, autograd for the gradient, and the paper's NAG written out in look-ahead form
(gradient at theta + mu v; mu = 0.9 for the first 1000 updates, then --mu0). The data are the
addition task of paper.md section 6 (value channel U[0,1), markers in [0, 0.1 T') and
[0.1 T', 0.5 T'), T' uniform in [T, 1.1 T), target the mean of the two marked values), drawn by
numpy's generator, so the data stream is not libmominit's. Loss: 1/2 squared error at the last
step, averaged over the batch. Every --eval-every updates it prints the test error (fraction of
fresh sequences whose output is off by more than 0.04), the training loss and the spectral
radius of W_hh.

docs/results.md uses it to tell whether a seed that does not learn in mominit-rnn fails because
of the library or because of its initial network.

Needs python3-torch and python3-numpy (Debian's load only in /usr/bin/python3; the script finds
such an interpreter, or set MOM_TORCH_PYTHON) and the library (MOMINIT_LIBRARY=path of
libmominit.so.0, or an installed one). About 25 s per 1000 updates on one core of the project's
machine.

Usage: torch_addition.py [--seed N] [--steps N] [--lr X] [--mu0 X] [--T N] [--batch N]
                         [--eval-every N] [--eval-size N] [--data-seed N] [--double]
"""
import argparse
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from torch_python import require_torch  # noqa: E402

torch = require_torch(__file__)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(here), "bindings", "python"))
from mominit import Net, init  # noqa: E402

H = 100


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1, help="libmominit init seed (mominit-rnn --seed)")
    ap.add_argument("--steps", type=int, default=50000)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--mu0", type=float, default=0.995)
    ap.add_argument("--T", type=int, default=80)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--eval-size", type=int, default=1000)
    ap.add_argument("--input-scale", type=float, default=0.001)
    ap.add_argument("--data-seed", type=int, default=None,
                    help="numpy seed of the data stream (default 1000 + seed)")
    ap.add_argument("--double", action="store_true", help="train in float64")
    return ap.parse_args()


def initial_network(seed, input_scale):
    """W_vh, W_hh, b_h, W_ho, b_o of libmominit's initial addition network, as float64 arrays."""
    net = Net.recurrent(2, H, 1)
    init.preset_rnn(net, input_scale, seed)
    p = np.array(net.params, dtype=np.float64)
    out = []
    for b in net.blocks():
        out.append(p[b.offset:b.offset + b.rows * b.cols].reshape(b.rows, b.cols))
    net.close()
    w_vh, w_hh, b_h, w_ho, _ = out
    return [w_vh, w_hh, b_h.reshape(-1), w_ho, np.array([0.5])]


class Addition:
    def __init__(self, T, seed, dtype):
        self.T, self.rng, self.dtype = T, np.random.default_rng(seed), dtype

    def batch(self, n):
        """Inputs (L, n, 2) padded with zeros past each length, index of each last step, targets."""
        rng, T = self.rng, self.T
        lens = rng.integers(T, int(1.1 * T), size=n)
        L = int(lens.max())
        x = np.zeros((L, n, 2))
        x[:, :, 0] = rng.random((L, n))
        lo, mid, hi = np.zeros(n), np.floor(0.1 * lens), np.floor(0.5 * lens)
        a = (lo + rng.random(n) * (mid - lo)).astype(int)
        b = (mid + rng.random(n) * (hi - mid)).astype(int)
        cols = np.arange(n)
        x[a, cols, 1] = 1.0
        x[b, cols, 1] = 1.0
        x[np.arange(L)[:, None] >= lens[None, :]] = 0.0
        t = (x[a, cols, 0] + x[b, cols, 0]) / 2
        return (torch.tensor(x, dtype=self.dtype), torch.tensor(lens - 1),
                torch.tensor(t, dtype=self.dtype))


def outputs(params, x, last):
    w_vh, w_hh, b_h, w_ho, b_o = params
    h0 = torch.zeros(1, x.shape[1], H, dtype=x.dtype)
    zero = torch.zeros(H, dtype=x.dtype)
    # torch's own tanh RNN kernel: h[t] = tanh(W_vh x[t] + b_h + W_hh h[t-1])
    hs, _ = torch._VF.rnn_tanh(x, h0, [w_vh, w_hh, b_h, zero], True, 1, 0.0, False, False, False)
    h_last = hs[last, torch.arange(x.shape[1])]
    return (h_last @ w_ho.T + b_o).reshape(-1)


def main():
    a = parse()
    torch.set_num_threads(1)
    dtype = torch.float64 if a.double else torch.float32
    theta = [torch.tensor(w, dtype=dtype) for w in initial_network(a.seed, a.input_scale)]
    vel = [torch.zeros_like(w) for w in theta]
    data_seed = 1000 + a.seed if a.data_seed is None else a.data_seed
    train = Addition(a.T, data_seed, dtype)
    test = Addition(a.T, 10**6 + data_seed, dtype)
    print("step,test_error,train_loss,rho_hh,seconds", flush=True)
    t0, loss_sum, loss_n = time.time(), 0.0, 0
    for step in range(a.steps + 1):
        if step % a.eval_every == 0 or step == a.steps:
            with torch.no_grad():
                x, last, t = test.batch(a.eval_size)
                err = (torch.abs(outputs(theta, x, last) - t) > 0.04).double().mean().item()
            rho = float(np.max(np.abs(np.linalg.eigvals(theta[1].double().numpy()))))
            loss = loss_sum / loss_n if loss_n else float("nan")
            print(f"{step},{err:.4f},{loss:.6g},{rho:.4f},{time.time() - t0:.0f}", flush=True)
            loss_sum, loss_n = 0.0, 0
        if step == a.steps:
            break
        mu = 0.9 if step < 1000 else a.mu0
        point = [(w + mu * v).requires_grad_(True) for w, v in zip(theta, vel)]
        x, last, t = train.batch(a.batch)
        loss = 0.5 * ((outputs(point, x, last) - t) ** 2).mean()
        grads = torch.autograd.grad(loss, point)
        loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
        with torch.no_grad():
            for w, v, g in zip(theta, vel, grads):
                v.mul_(mu).sub_(a.lr * g)
                w.add_(v)
    print(f"final steps={a.steps} test_error={err:.4f} rho_hh={rho:.4f} "
          f"seconds={time.time() - t0:.0f}", flush=True)


if __name__ == "__main__":
    main()
