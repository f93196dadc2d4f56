#!/bin/sh
# Reproduce the first-order columns of the paper's autoencoder table (Table 1: SGD, and NAG and CM
# at each mu_max) with mominit-ae on generated CURVES and on Fashion-MNIST (the MNIST stand-in),
# then rewrite docs/results.md. Not run here: the HF columns and the FACES row (no data set).
# Finished runs are kept in the output folder and skipped when the script is run again.
# The final phase is the paper's last 1000 updates at mu <= 0.9; a budget below 1000 updates runs
# without one (the trainer itself would put every update in it).
#
# usage: scripts/repro-ae.sh [--steps N] [--data "curves fashion"] [--seeds "1"]
#            [--lrs "0.05 0.01 0.005 0.001 0.0005 0.0001"]
#            [--configs "sgd:0 nag:0.9 nag:0.99 nag:0.995 nag:0.999 cm:0.9 cm:0.99 cm:0.995 cm:0.999"]
#            [--jobs 2] [--out DIR]
#            [--grid FILE]   (write the runs to FILE for scripts/grid.sh instead of running them)
# The paper trains 750,000 updates; the default here is that budget, far beyond a 2-core machine.
# docs/results.md states the budget behind every number.
set -eu
cd "$(dirname "$0")/.."
grid=""
steps=750000 data="curves fashion" seeds=1 lrs="0.05 0.01 0.005 0.001 0.0005 0.0001"
configs="sgd:0 nag:0.9 nag:0.99 nag:0.995 nag:0.999 cm:0.9 cm:0.99 cm:0.995 cm:0.999"
jobs=2 out=out/repro-ae
while [ $# -gt 0 ]; do
    case $1 in
    --steps) steps=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --lrs) lrs=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --grid) grid=$2; shift 2 ;;
    *) echo "repro-ae.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
# job lines are split on blanks (no shell quoting, docs/distributed.md): paths relative to the
# repository root, where the jobs run, and an output folder without blanks
case $out in *[[:space:]]*) echo "repro-ae.sh: --out must not contain blanks: $out" >&2; exit 2 ;; esac
sh scripts/build.sh
mkdir -p "$out"
bin=build/examples/mominit-ae
fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
list=$(mktemp "$out/jobs.XXXXXX") # one per invocation (several may share OUT); repro-run.sh removes it
for d in $data; do
    case $d in
    curves) src=curves ;;
    fashion)
        if [ ! -f "$fmnist" ]; then
            echo "repro-ae: $fmnist missing (apt-get install dataset-fashion-mnist); skipping" >&2
            continue
        fi
        src="idx:$fmnist" ;;
    *) echo "repro-ae: unknown data set $d" >&2; exit 2 ;;
    esac
    for cfg in $configs; do
        opt=${cfg%%:*} mu=${cfg#*:}
        for lr in $lrs; do
            for seed in $seeds; do
                name="$d-$opt$mu-lr$lr-s$seed-n$steps"
                [ -f "$out/$name.done" ] && continue
                final=1000
                [ "$opt" = sgd ] && final=0
                [ "$final" -gt "$steps" ] && final=0 # no final phase in a run shorter than it
                echo "$name $bin --data $src --optim $opt --mu-max $mu --lr $lr --steps $steps --seed $seed --final-phase $final:0.9 --eval-every 500 --eval-size 2000 --log $out/$name.csv" >> "$list"
            done
        done
    done
done
exec sh scripts/repro-run.sh repro-ae "$list" "$out" "$jobs" "$grid"
