#!/usr/bin/env python3
"""PyTorch reference timing for bench/bench_rnn.c: the paper's addition configuration.

2 inputs, 100 tanh hidden units (torch.nn.RNN), a Linear(100, 1) output read at the last step
only, T = 80, minibatches of 100, loss 1/2 * squared error averaged over the batch (the same
loss as libmominit's MOM_OUT_LINEAR_SQUARED), torch.optim.SGD(nesterov=True, momentum=0.9).
A full training step is zero_grad + forward + loss + backward + optimizer step, in float32.
It prints the median time of a step at 1 and 2 threads (torch.set_num_threads) as
"torch_step_ms_<threads> <ms>" lines, and "torch_step_ms_best <ms>".

PyTorch often lives in another interpreter than the first python3 on PATH (Debian's
python3-torch loads only in /usr/bin/python3). When `import torch` fails here, the script looks
for an interpreter that can import it ($MOM_TORCH_PYTHON, /usr/bin/python3, python3 on PATH,
/usr/local/bin/python3) and re-runs itself there; when none can, it prints a SKIP message and
exits with status 77.

Usage: bench_rnn_torch.py [reps]   (default 50)
MOM_BENCH_CLOCK=cpu measures process CPU time instead of wall-clock time (as bench_rnn does).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_python import require_torch  # noqa: E402

torch = require_torch(__file__)

import statistics  # noqa: E402
import time  # noqa: E402

I, H, O, T, N = 2, 100, 1, 80, 100


def addition_batch(gen):
    """Addition task: value channel U[0,1), two markers, target the mean of the marked values."""
    x = torch.zeros(T, N, I)
    x[:, :, 0] = torch.rand(T, N, generator=gen)
    a = torch.randint(0, T // 10, (N,), generator=gen)
    b = torch.randint(T // 10, T // 2, (N,), generator=gen)
    cols = torch.arange(N)
    x[a, cols, 1] = 1.0
    x[b, cols, 1] = 1.0
    target = 0.5 * (x[a, cols, 0] + x[b, cols, 0])
    return x, target.unsqueeze(1)


class AdditionRNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(I, H, nonlinearity="tanh")  # time-major (T, N, I)
        self.out = torch.nn.Linear(H, O)

    def forward(self, x):
        hs, _ = self.rnn(x)
        return self.out(hs[-1])  # last step only


def time_steps(threads, reps):
    torch.set_num_threads(threads)
    torch.manual_seed(2013)
    gen = torch.Generator().manual_seed(2013)
    model = AdditionRNN()
    opt = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9, nesterov=True)
    x, t = addition_batch(gen)

    def step():
        opt.zero_grad(set_to_none=True)
        y = model(x)
        loss = 0.5 * ((y - t) ** 2).sum() / N  # 1/2 squared error, mean over sequences
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        step()
    clock = time.process_time if os.environ.get("MOM_BENCH_CLOCK") == "cpu" else time.perf_counter
    times = []
    for _ in range(reps):
        t0 = clock()
        step()
        times.append((clock() - t0) * 1e3)
    return statistics.median(times)


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    reps = max(reps, 3)
    torch.set_num_interop_threads(1)
    print("# PyTorch %s (%s): addition, %d inputs, %d tanh hidden, %d linear output (last step), "
          "T = %d, n = %d, SGD nesterov momentum 0.9, median of %d, %s time"
          % (torch.__version__, sys.executable, I, H, O, T, N, reps,
             "process CPU" if os.environ.get("MOM_BENCH_CLOCK") == "cpu" else "wall-clock"))
    best = None
    for threads in (1, 2):
        ms = time_steps(threads, reps)
        print("torch_step_ms_%d %.3f" % (threads, ms))
        best = ms if best is None else min(best, ms)
    print("torch_step_ms_best %.3f" % best)


if __name__ == "__main__":
    main()
