#!/bin/sh
# Compare libmominit's recurrent-net training step with PyTorch's on the paper's addition
# configuration (2 inputs, 100 tanh hidden, 1 linear output at the last step, T = 80, n = 100).
#
# Runs bench/bench_rnn (loss+grad, G.v and a full NAG step, each against the bare matrix
# products) with OpenBLAS at 1 and 2 threads, then scripts/bench_rnn_torch.py (a full
# SGD(nesterov) step at 1 and 2 torch threads), and prints the ratios of our step to PyTorch's.
# The PyTorch part is skipped (with a message) when no interpreter can import torch.
#
# Usage: scripts/bench_rnn.sh [build-dir] [reps]     (defaults: build, 50)
# On a busy machine, MOM_BENCH_CLOCK=cpu makes both sides measure process CPU time instead of
# wall-clock time (meaningful for the 1-thread figures only: CPU time adds up all threads).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-build}
reps=${2:-50}
case $build in /*) ;; *) build=$root/$build ;; esac
bench=$build/bench/bench_rnn
if [ ! -x "$bench" ]; then
    echo "bench_rnn.sh: $bench not found; build first: meson setup $build && ninja -C $build" >&2
    exit 1
fi

value() { # value KEY FILE: the number after KEY at the start of a line
    awk -v k="$1" '$1 == k { print $2; exit }' "$2"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

for th in 1 2; do
    echo "== libmominit, OPENBLAS_NUM_THREADS=$th"
    if ! OPENBLAS_NUM_THREADS=$th OMP_NUM_THREADS=$th "$bench" "$reps" > "$tmp/c$th"; then
        echo "bench_rnn.sh: bench_rnn failed" >&2
        exit 1
    fi
    cat "$tmp/c$th"
done

echo "== PyTorch"
python=${PYTHON:-python3}
command -v "$python" > /dev/null 2>&1 || python=/usr/bin/python3
"$python" "$here/bench_rnn_torch.py" "$reps" > "$tmp/t"
rc=$?
cat "$tmp/t"
if [ $rc -eq 77 ]; then
    echo "(PyTorch comparison skipped)"
    exit 0
elif [ $rc -ne 0 ]; then
    echo "bench_rnn.sh: bench_rnn_torch.py failed ($rc)" >&2
    exit 1
fi

c1=$(value rnn_step_ms "$tmp/c1")
c2=$(value rnn_step_ms "$tmp/c2")
t1=$(value torch_step_ms_1 "$tmp/t")
t2=$(value torch_step_ms_2 "$tmp/t")
tb=$(value torch_step_ms_best "$tmp/t")
echo "== training step (loss+grad+NAG update), ms"
awk -v c1="$c1" -v c2="$c2" -v t1="$t1" -v t2="$t2" -v tb="$tb" 'BEGIN {
    cb = c1 < c2 ? c1 : c2
    printf "1 thread:  libmominit %.3f  PyTorch %.3f  ratio %.2f\n", c1, t1, c1 / t1
    printf "2 threads: libmominit %.3f  PyTorch %.3f  ratio %.2f\n", c2, t2, c2 / t2
    printf "ours (best of 1, 2 threads) / PyTorch best: %.3f / %.3f = %.2f\n", cb, tb, cb / tb
    printf "ours at 1 thread / PyTorch best: %.2f\n", c1 / tb
}'
