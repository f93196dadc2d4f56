#!/bin/sh
# Learning-curve figures of docs/results.md from the logs of the reproduction runs (gnuplot).
set -eu
cd "$(dirname "$0")/.."
command -v gnuplot >/dev/null || { echo "plot-results: gnuplot is not installed" >&2; exit 1; }
mkdir -p docs/img
ae=out/repro-ae rnn=out/repro-rnn
# ae_curves DATA LABEL: SGD (lr 0.05, its best rate among those run on both data sets) against NAG and CM
# at mu_max 0.99 (lr 0.01), 4000 updates, seed 1, into docs/img/DATA-4000.png
ae_curves() {
    [ -f "$ae/$1-sgd0-lr0.05-s1-n4000.csv" ] || return 0
    gnuplot <<GP
set terminal pngcairo size 800,480 noenhanced
set output 'docs/img/$1-4000.png'
set datafile separator ','
set title '$2 autoencoder, 4000 updates, seed 1 (error on 2000 training images)'
set xlabel 'update'; set ylabel 'training squared error'; set grid; set key top right
plot '$ae/$1-sgd0-lr0.05-s1-n4000.csv' every ::1 using 1:5 with linespoints title 'SGD lr 0.05 (its best rate here)', \
     '$ae/$1-nag0.99-lr0.01-s1-n4000.csv' every ::1 using 1:5 with linespoints title 'NAG mu_max 0.99 lr 0.01', \
     '$ae/$1-cm0.99-lr0.01-s1-n4000.csv' every ::1 using 1:5 with linespoints title 'CM mu_max 0.99 lr 0.01'
GP
}
ae_curves curves CURVES
ae_curves fashion Fashion-MNIST
# curve PNG TITLE SETTINGS: plot the log curves collected in $plots (test error, column 5, against
# the update) into docs/img/PNG; nothing when $plots is empty
curve() {
    [ -n "$plots" ] || return 0
    gnuplot <<GP
set terminal pngcairo size 900,520 noenhanced
set output 'docs/img/$1'
set datafile separator ','
set title '$2'
set xlabel 'update'; set ylabel 'test error'; set grid; set xtics 10000
$3
plot ${plots%,}
GP
}
# add FILE:TITLE STYLE...: one more curve when the log exists
add() {
    f=${1%%:*} t=${1#*:}
    shift
    [ -f "$f" ] && plots="$plots '$f' every ::1 using 1:5 with lines $* title '$t',"
    return 0
}

# addition: every seed at the default learning rate, seed 1 at 1e-3, and seed 1's data with another
# initial network (--init-seed, out/explore)
plots=""
set -- '#1f77b4' '#ff7f0e' '#2ca02c' '#d62728' '#9467bd' '#8c564b' '#e377c2' '#7f7f7f' '#bcbd22' \
    '#17becf' '#000000' '#aec7e8'
for s in $(ls "$rnn" | sed -n 's/^addition-nag0\.995-lr3e-4-s\([0-9]*\)-n50000\.csv$/\1/p' | sort -n); do
    add "$rnn/addition-nag0.995-lr3e-4-s$s-n50000.csv:seed $s, lr 3e-4" lw 2 lc rgb "'$1'"
    [ $# -gt 1 ] && shift
done
add "$rnn/addition-nag0.995-lr1e-3-s1-n50000.csv:seed 1, lr 1e-3" dt 2 lw 2
add "out/explore/addition-s1-init1001.csv:seed 1 data, --init-seed 1001, lr 3e-4" dt 2 lw 2
curve addition-80.png \
    'addition T=80, NAG mu0 0.995: test error (10000 sequences; the init-seed run: 1000)' \
    "set key bottom left font ',9'; set logscale y"

# multiplication: centered (the default) against uncentered, NAG mu0 0.995, lr 3e-4, seeds 1-4
plots=""
set -- '#1f77b4' '#ff7f0e' '#2ca02c' '#d62728'
for s in 1 2 3 4; do
    add "$rnn/multiplication-nag0.995-lr3e-4-s$s-n50000.csv:seed $s, centered" lw 2 lc rgb "'$1'"
    add "$rnn/multiplication-nocenter-nag0.995-lr3e-4-s$s-n50000.csv:seed $s, not centered" dt 2 lw 2 \
        lc rgb "'$1'"
    shift
done
curve multiplication-80.png \
    'multiplication T=80, NAG mu0 0.995, lr 3e-4: test error (10000 sequences)' \
    "set key bottom left font ',9'; set logscale y"

# mem20: the loss over every step against the recall steps only
plots=""
add "$rnn/mem20-nag0.995-lr3e-5-s1-n50000.csv:every step, lr 3e-5" lw 2
add "out/explore/mem20-all-lr1e-5-s1.csv:every step, lr 1e-5" lw 2
add "out/explore/mem20-recall-lr3e-5-s1.csv:recall steps, lr 3e-5" lw 2
add "out/explore/mem20-recall-lr1e-5-s1.csv:recall steps, lr 1e-5" lw 2
for s in 1 2 3; do
    add "out/explore/mem20-recall-lr3e-5-clip10-s$s.csv:recall steps, lr 3e-5, clip 10, seed $s" dt 2 lw 2
done
add "out/explore/mem20-allclip10-s1.csv:every step, lr 3e-5, clip 10" dt 3 lw 2
curve mem20-80.png 'mem20 T=80, NAG mu0 0.995, seed 1 unless stated: wrong symbols per sequence (chance 8)' \
    "set key at graph 0.98, 0.7 font ',9'; set logscale y; set yrange [0.0003:10]"
# mem5: the loss over every step against the recall steps with clipping (errors reach 0: linear axis)
plots=""
add "$rnn/mem5-nag0.995-lr3e-5-s1-n50000.csv:every step, lr 3e-5, seed 1" lw 2
for s in 1 2 3; do
    add "out/explore/mem5-recall-lr3e-5-clip10-s$s.csv:recall steps, lr 3e-5, clip 10, seed $s" lw 2
done
curve mem5-200.png 'mem5 T=200, NAG mu0 0.995: wrong symbols per sequence (chance 2.5)' \
    "set key top right font ',9'; set yrange [0:3]"
ls -l docs/img
