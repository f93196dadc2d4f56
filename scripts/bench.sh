#!/bin/sh
# Performance benchmark of libmominit (issue 10; docs/performance.md): in ONE run, for the CURVES
# and MNIST autoencoders and the addition RNN, at 1 and 2 BLAS threads,
#   - a full NAG step (mom_optim_step_net), in the default true-theta form and in the look-ahead
#     form (mom_optim_set_lookahead), a loss+gradient and a Gauss-Newton product, each against
#     the bare matrix products of the same shapes through the same BLAS in the same process
#     (bench/bench_step),
#   - the same step and loss+gradient in PyTorch on the very same parameters and batch
#     (scripts/bench_torch.py; skipped with a note when no interpreter can import torch),
#   - the peak memory of NAG training in a separate process per configuration, against what the
#     parameters, the optimizer state and the activations need (plus the BLAS's own buffers),
# and prints ONE table (scripts/bench_table.py). The measurements are interleaved: each round
# runs every configuration once, so a change of machine load hits all of them alike; each figure
# is the median over rounds of per-process medians, and ratios are medians of ratios taken within
# each round of each process. Nothing here asserts absolute times.
#
# Usage: scripts/bench.sh [build-dir] [rounds] [reps]      (defaults: build, 3, 15)
#   MOM_BENCH_OUT=DIR   keep the raw outputs in DIR (default: a temporary directory)
#   MOM_BENCH_LONG=FILE the output of bench/bench_long to quote under the table
#   MOM_BENCH_MODELS="curves mnist rnn"  MOM_BENCH_THREADS="1 2"  subsets
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-build}
rounds=${2:-3}
reps=${3:-15}
case $build in /*) ;; *) build=$root/$build ;; esac
bench=$build/bench/bench_step
if [ ! -x "$bench" ]; then
    echo "bench.sh: $bench not found; build first: meson setup $build && ninja -C $build" >&2
    exit 1
fi
models=${MOM_BENCH_MODELS:-curves mnist rnn}
threads=${MOM_BENCH_THREADS:-1 2}

if [ -n "${MOM_BENCH_OUT:-}" ]; then
    out=$MOM_BENCH_OUT
    mkdir -p "$out" || exit 1
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT INT TERM
fi

python=${PYTHON:-python3}
command -v "$python" > /dev/null 2>&1 || python=/usr/bin/python3

# ---- machine and load -------------------------------------------------------------------------
{
    echo "date $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
    echo "cores $(nproc 2>/dev/null)"
    ver=$(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null ||
          dpkg-query -W -f='${Version}' libopenblas0 2>/dev/null)
    echo "openblas ${ver:-unknown}"
    blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null)
    echo "blas_library ${blas:-unknown}"
    echo "load_before $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
    echo "rounds $rounds"
    echo "reps $reps"
} > "$out/meta.txt"

# ---- PyTorch inputs: the initial parameters and batch 0 of each configuration ------------------
torch_ok=1
for m in $models; do
    if ! "$bench" "$m" --dump "$out/dump_$m.bin" > "$out/dump_$m.txt"; then
        echo "bench.sh: bench_step $m --dump failed" >&2
        exit 1
    fi
done

# ---- interleaved rounds -----------------------------------------------------------------------
r=1
while [ "$r" -le "$rounds" ]; do
    for m in $models; do
        for th in $threads; do
            echo "round $r/$rounds: $m, $th thread(s)" >&2
            if ! OPENBLAS_NUM_THREADS=$th OMP_NUM_THREADS=$th "$bench" "$m" --reps "$reps" \
                    > "$out/ours_${m}_${th}_$r.txt"; then
                echo "bench.sh: bench_step $m failed" >&2
                exit 1
            fi
            if [ $torch_ok -eq 1 ]; then
                OPENBLAS_NUM_THREADS=$th OMP_NUM_THREADS=$th "$python" "$here/bench_torch.py" \
                    "$m" "$out/dump_$m.bin" "$th" "$reps" > "$out/torch_${m}_${th}_$r.txt"
                rc=$?
                if [ $rc -eq 77 ]; then
                    torch_ok=0
                    cp "$out/torch_${m}_${th}_$r.txt" "$out/torch_skip.txt"
                    rm -f "$out"/torch_*_*_*.txt
                elif [ $rc -ne 0 ]; then
                    echo "bench.sh: bench_torch.py $m failed ($rc)" >&2
                    exit 1
                fi
            fi
        done
    done
    r=$((r + 1))
done

# ---- peak memory: one process per configuration and thread count -------------------------------
for m in $models; do
    for th in $threads; do
        OPENBLAS_NUM_THREADS=$th "$bench" "$m" --mem > "$out/mem_${m}_$th.txt" &&
            OPENBLAS_NUM_THREADS=$th "$bench" "$m" --mem-bare > "$out/membare_${m}_$th.txt" || {
            echo "bench.sh: memory measurement of $m failed" >&2
            exit 1
        }
    done
done
echo "load_after $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" >> "$out/meta.txt"

"$python" "$here/bench_table.py" "$out" ${MOM_BENCH_LONG:+--long "$MOM_BENCH_LONG"}
