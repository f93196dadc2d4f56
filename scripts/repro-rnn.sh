#!/bin/sh
# Reproduce the RNN table of the paper (Table 5) with mominit-rnn, then rewrite docs/results.md.
# Every run is one line of a job list; finished runs are kept in the output folder and skipped when
# the script is run again, so the budget can be raised step by step.
#
# usage: scripts/repro-rnn.sh [--steps N] [--seeds "1 2"] [--lrs "3e-4 1e-4"]
#            [--tasks "addition multiplication mem5 mem20"]  (also multiplication-nocenter:
#            multiplication without the centering that mominit-rnn applies to it by default)
#            [--configs "nag:0.995 nag:0.9 cm:0.995 cm:0.9 nag:0 bias"] [--jobs 2] [--out DIR]
#            [--grid FILE]   (write the runs to FILE for scripts/grid.sh instead of running them)
#            [--eval-size N]
# Defaults run the full paper budget (50,000 updates), which takes days on 2 cores; docs/results.md
# says which budget produced each number.
set -eu
cd "$(dirname "$0")/.."
grid=""
steps=50000 seeds="1 2 3 4" lrs="3e-4 1e-4" tasks="addition multiplication mem5 mem20"
configs="nag:0.995 nag:0.9 cm:0.995 cm:0.9 nag:0 bias" jobs=2 out=out/repro-rnn evalsize=10000
while [ $# -gt 0 ]; do
    case $1 in
    --steps) steps=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --lrs) lrs=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --grid) grid=$2; shift 2 ;;
    --eval-size) evalsize=$2; shift 2 ;;
    *) echo "repro-rnn.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
# job lines are split on blanks (no shell quoting, docs/distributed.md): paths relative to the
# repository root, where the jobs run, and an output folder without blanks
case $out in *[[:space:]]*) echo "repro-rnn.sh: --out must not contain blanks: $out" >&2; exit 2 ;; esac
sh scripts/build.sh
mkdir -p "$out"
bin=build/examples/mominit-rnn
list=$(mktemp "$out/jobs.XXXXXX") # one per invocation (several may share OUT); repro-run.sh removes it
for task in $tasks; do
    case $task in mem5) T=200 ;; *) T=80 ;; esac
    case $task in
    multiplication-nocenter) taskargs="--task multiplication --no-center" ;;
    *) taskargs="--task $task" ;;
    esac
    for cfg in $configs; do
        for lr in $lrs; do
            for seed in $seeds; do
                if [ "$cfg" = bias ]; then
                    # A network that learns nothing but its output biases (set to the mean target):
                    # the initialized network evaluated without training.
                    [ "$lr" = "$(echo $lrs | cut -d' ' -f1)" ] || continue
                    name="$task-bias-s$seed"
                    args="--bias-only"
                else
                    opt=${cfg%%:*} mu=${cfg#*:}
                    name="$task-$opt$mu-lr$lr-s$seed-n$steps"
                    args="--optim $opt --mu0 $mu --lr $lr --steps $steps"
                fi
                [ -f "$out/$name.done" ] && continue
                echo "$name $bin $taskargs --T $T --seed $seed --eval-size $evalsize --eval-every 1000 $args --log $out/$name.csv" >> "$list"
            done
        done
    done
done
exec sh scripts/repro-run.sh repro-rnn "$list" "$out" "$jobs" "$grid"
