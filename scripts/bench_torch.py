#!/usr/bin/env python3
"""PyTorch reference timings for scripts/bench.sh: the benchmark configurations of
bench/bench_step.c in PyTorch, on the very same parameters and batch.

  curves  784-400-200-100-50-25-6 autoencoder, mirrored (torch.nn.Linear layers), logistic
          hidden units except the linear code layer, logistic outputs with cross-entropy
          (binary_cross_entropy_with_logits, summed over pixels, averaged over cases), batch 200
  mnist   784-1000-500-250-30 autoencoder, same conventions
  rnn     torch.nn.RNN(2, 100, tanh), a Linear(100, 1) output read at the last step only,
          1/2 squared error averaged over the sequences, T = 80, batch 100

`bench_step MODEL --dump FILE` writes the initial parameters (the paper's initialization, in
libmominit's block order) and batch 0; this script loads them into the torch modules, checks that
the loss at that point equals libmominit's (printed as torch_loss0, to compare with loss0), and
times, in float32 at the given thread count (torch.set_num_threads):
  step  zero_grad + forward + loss + backward + torch.optim.SGD(momentum, nesterov=True).step()
  lg    zero_grad + forward + loss + backward
as medians over `reps` runs after 3 warm-up runs, on the wall clock (time.perf_counter) and on
the process CPU clock (time.process_time). Output: "key value" lines.

PyTorch often lives in another interpreter than the first python3 on PATH (Debian's
python3-torch loads only in /usr/bin/python3). When `import torch` fails here, the script looks
for an interpreter that can import it ($MOM_TORCH_PYTHON, /usr/bin/python3, python3 on PATH,
/usr/local/bin/python3) and re-runs itself there; when none can, it prints a SKIP message and
exits with status 77.

Usage: bench_torch.py MODEL DUMPFILE THREADS [REPS]      (REPS default 30)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_python import require_torch  # noqa: E402

torch = require_torch(__file__)

import array  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

AE = {
    "curves": [784, 400, 200, 100, 50, 25, 6],
    "mnist": [784, 1000, 500, 250, 30],
}
RNN = dict(I=2, H=100, O=1, T=80, N=100)
BATCH_AE = 200
LR = {"curves": 0.005, "mnist": 0.005, "rnn": 1e-4}


def read_floats(path):
    a = array.array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    return torch.tensor(a, dtype=torch.float32)


class Take:
    """Consecutive slices of a flat tensor."""

    def __init__(self, flat):
        self.flat, self.at = flat, 0

    def __call__(self, *shape):
        n = 1
        for s in shape:
            n *= s
        out = self.flat[self.at:self.at + n].reshape(*shape).clone()
        self.at += n
        return out


def build_ae(name, take):
    enc = AE[name]
    sizes = enc + enc[-2::-1]
    depth = len(enc) - 1
    layers = []
    for l in range(1, len(sizes)):
        lin = torch.nn.Linear(sizes[l - 1], sizes[l])
        with torch.no_grad():
            lin.weight.copy_(take(sizes[l], sizes[l - 1]))
            lin.bias.copy_(take(sizes[l]))
        layers.append(lin)
        if l < len(sizes) - 1 and l != depth:
            layers.append(torch.nn.Sigmoid())
    model = torch.nn.Sequential(*layers)  # ends with the output pre-activations z
    x = take(BATCH_AE, sizes[0])

    def loss_fn():
        z = model(x)
        return torch.nn.functional.binary_cross_entropy_with_logits(z, x, reduction="sum") / \
            BATCH_AE

    return model, loss_fn


class AdditionRNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(RNN["I"], RNN["H"], nonlinearity="tanh")  # time-major (T, N, I)
        self.out = torch.nn.Linear(RNN["H"], RNN["O"])

    def forward(self, x):
        hs, _ = self.rnn(x)
        return self.out(hs[-1])  # last step only


def build_rnn(take):
    I, H, O, T, N = (RNN[k] for k in ("I", "H", "O", "T", "N"))
    model = AdditionRNN()
    with torch.no_grad():
        model.rnn.weight_ih_l0.copy_(take(H, I))
        model.rnn.weight_hh_l0.copy_(take(H, H))
        model.rnn.bias_ih_l0.copy_(take(H))
        model.rnn.bias_hh_l0.zero_()
        model.out.weight.copy_(take(O, H))
        model.out.bias.copy_(take(O))
    x = take(T, N, I)
    t = take(T, N, O)[-1]

    def loss_fn():
        y = model(x)
        return 0.5 * ((y - t) ** 2).sum() / N

    return model, loss_fn


def timed(fn, reps):
    for _ in range(3):
        fn()
    wall, cpu = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        w1, c1 = time.perf_counter(), time.process_time()
        wall.append((w1 - w0) * 1e3)
        cpu.append((c1 - c0) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    name, dump, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    reps = max(3, int(sys.argv[4]) if len(sys.argv) > 4 else 30)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    take = Take(read_floats(dump))
    model, loss_fn = build_rnn(take) if name == "rnn" else build_ae(name, take)
    if take.at != take.flat.numel():
        print("bench_torch.py: %s holds %d floats, the %s configuration %d" %
              (dump, take.flat.numel(), name, take.at), file=sys.stderr)
        sys.exit(1)
    with torch.no_grad():
        print("torch_version %s" % torch.__version__)
        print("torch_threads %d" % torch.get_num_threads())
        print("torch_loss0 %.9g" % float(loss_fn()))
    opt = torch.optim.SGD(model.parameters(), lr=LR[name], momentum=0.9, nesterov=True)

    def lg():
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()

    def step():
        lg()
        opt.step()

    for key, fn in (("lg", lg), ("step", step)):
        w, c = timed(fn, reps)
        print("torch_%s_wall_ms %.4f" % (key, w))
        print("torch_%s_cpu_ms %.4f" % (key, c))


if __name__ == "__main__":
    main()
