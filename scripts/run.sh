#!/bin/sh
# The README's main job: install what is missing, build, and train a recurrent network on the
# addition problem (Hochreiter & Schmidhuber; paper section 4) with the paper's initialization and
# Nesterov momentum. Takes well under three minutes on a 2-core machine. Extra arguments are passed
# to mominit-rnn (try --help).
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh gnuplot-nox
sh scripts/build.sh
mkdir -p out
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} ./build/examples/mominit-rnn \
    --task addition --T 15 --steps 6000 --lr 1e-3 --eval-every 250 --eval-size 2000 --seed 1 \
    --log out/addition.csv --plot out/addition.png "$@"
echo "log: out/addition.csv  plot: out/addition.png" >&2
