#!/bin/sh
# Learning-curve figures of docs/results.md from the logs of the reproduction runs (gnuplot).
set -eu
cd "$(dirname "$0")/.."
command -v gnuplot >/dev/null || { echo "plot-results: gnuplot is not installed" >&2; exit 1; }
mkdir -p docs/img
ae=out/repro-ae rnn=out/repro-rnn
if [ -f "$ae/curves-sgd0-lr0.05-s1-n4000.csv" ]; then
gnuplot <<GP
set terminal pngcairo size 800,480 noenhanced
set output 'docs/img/curves-4000.png'
set datafile separator ','
set title 'CURVES autoencoder, 4000 updates, seed 1 (error on 2000 training images)'
set xlabel 'update'; set ylabel 'training squared error'; set grid; set key top right
plot '$ae/curves-sgd0-lr0.05-s1-n4000.csv' every ::1 using 1:5 with linespoints title 'SGD lr 0.05 (best of grid)', \
     '$ae/curves-nag0.99-lr0.01-s1-n4000.csv' every ::1 using 1:5 with linespoints title 'NAG mu_max 0.99 lr 0.01', \
     '$ae/curves-cm0.99-lr0.01-s1-n4000.csv' every ::1 using 1:5 with linespoints title 'CM mu_max 0.99 lr 0.01'
GP
fi
if [ -f "$rnn/addition-nag0.995-lr3e-4-s1-n50000.csv" ]; then
gnuplot <<GP
set terminal pngcairo size 800,480 noenhanced
set output 'docs/img/addition-80.png'
set datafile separator ','
set title 'addition T=80, NAG mu0 0.995 (test error on 10000 sequences)'
set xlabel 'update'; set ylabel 'test error'; set grid; set key bottom left; set logscale y
plot '$rnn/addition-nag0.995-lr3e-4-s1-n50000.csv' every ::1 using 1:5 with lines lw 2 title 'seed 1, lr 3e-4', \
     '$rnn/addition-nag0.995-lr3e-4-s2-n50000.csv' every ::1 using 1:5 with lines lw 2 title 'seed 2, lr 3e-4', \
     '$rnn/addition-nag0.995-lr1e-3-s1-n50000.csv' every ::1 using 1:5 with lines lw 2 title 'seed 1, lr 1e-3'
GP
fi
ls -l docs/img
