#!/bin/sh
# mpi suite (issue 12): scripts/grid.sh spreads a small grid of mominit-rnn trials over the 2 ranks
# of an MPI job, and over the 2 tasks of a job array, and merges the same table (without the
# timing column) as running the trials one after another; each of the two workers ran trials; a
# second run skips finished trials; a missing trial makes merge fail.
# Skipped (TAP plan 1..0 # SKIP, status 0) with a message when mpirun is missing (the job-array half needs no MPI, but the
# suite is about MPI).
# usage: check-grid.sh MPI_FOUND(0|1) MOMINIT_RNN GRID_SH
set -u
found=$1 rnn=$2 grid=$3
if ! command -v mpirun >/dev/null 2>&1; then
    echo "1..0 # SKIP mpirun not found: install an MPI launcher (Debian: openmpi-bin)"
    exit 0
fi
: "$found" # the grid runner does not need an MPI build of the trainers, only a launcher
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; sed 's/^/# /' "$2" 2>/dev/null; }

# 2 learning rates x 3 seeds of the addition task at T = 8, plus a comment and a blank line
{
    echo "# a small grid"
    for lr in 1e-3 3e-4; do
        for seed in 1 2 3; do
            echo "add-lr$lr-s$seed $rnn --task addition --T 10 --steps 150 --eval-every 50 --eval-size 200 --lr $lr --seed $seed"
        done
        echo
    done
} > "$tmp/grid.txt"
[ "$(sh "$grid" count "$tmp/grid.txt")" = 6 ] && ok "count: 6 trials" ||
    notok "count is not 6" /dev/null

# one after another
sh "$grid" run "$tmp/grid.txt" "$tmp/seq" 2> "$tmp/seq.log" && ok "sequential run" ||
    notok "sequential run failed" "$tmp/seq.log"
sh "$grid" merge "$tmp/grid.txt" "$tmp/seq" --no-time > "$tmp/seq.md" 2>&1 ||
    notok "merge of the sequential run failed" "$tmp/seq.md"

# over the 2 ranks of an MPI job
if mpirun --version 2>/dev/null | grep -q "Open MPI"; then
    launch="mpirun --oversubscribe -np 2"
else
    launch="mpirun -np 2"
fi
$launch sh "$grid" run "$tmp/grid.txt" "$tmp/mpi" > "$tmp/mpi.log" 2>&1 && ok "2-rank MPI run" ||
    notok "2-rank MPI run failed" "$tmp/mpi.log"
sh "$grid" merge "$tmp/grid.txt" "$tmp/mpi" --no-time > "$tmp/mpi.md" 2>&1 ||
    notok "merge of the 2-rank run failed" "$tmp/mpi.md"
if cmp -s "$tmp/seq.md" "$tmp/mpi.md"; then
    ok "the 2-rank table equals the sequential one"
else
    diff "$tmp/seq.md" "$tmp/mpi.md" > "$tmp/d1" 2>&1
    notok "the 2-rank table differs" "$tmp/d1"
fi
w0=$(grep -l '^worker: 0/2' "$tmp"/mpi/*.done 2>/dev/null | wc -l)
w1=$(grep -l '^worker: 1/2' "$tmp"/mpi/*.done 2>/dev/null | wc -l)
[ "$w0" = 3 ] && [ "$w1" = 3 ] && ok "each rank ran 3 trials" ||
    notok "ranks ran $w0 and $w1 trials" "$tmp/mpi.log"

# as the 2 tasks of a job array (Slurm's variables)
for id in 0 1; do
    SLURM_ARRAY_TASK_ID=$id SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=2 \
        sh "$grid" run "$tmp/grid.txt" "$tmp/arr" 2>> "$tmp/arr.log" || notok "array task $id failed" "$tmp/arr.log"
done
sh "$grid" merge "$tmp/grid.txt" "$tmp/arr" --no-time > "$tmp/arr.md" 2>&1 ||
    notok "merge of the job-array run failed" "$tmp/arr.md"
cmp -s "$tmp/seq.md" "$tmp/arr.md" && ok "the job-array table equals the sequential one" ||
    notok "the job-array table differs" "$tmp/arr.md"

# finished trials are skipped; the full table has the timing column
sh "$grid" run "$tmp/grid.txt" "$tmp/seq" 2> "$tmp/again.log"
[ "$(grep -c '^skip ' "$tmp/again.log")" = 6 ] && ok "a second run skips the 6 finished trials" ||
    notok "finished trials were run again" "$tmp/again.log"
sh "$grid" merge "$tmp/grid.txt" "$tmp/seq" > "$tmp/full.md"
head -1 "$tmp/full.md" | grep -q "seconds" && [ "$(wc -l < "$tmp/full.md")" = 8 ] &&
    ok "merge: header, rule and 6 rows with the seconds" || notok "merge table malformed" "$tmp/full.md"

# a missing trial
rm "$tmp/seq/add-lr3e-4-s2.done"
if sh "$grid" merge "$tmp/grid.txt" "$tmp/seq" --no-time > "$tmp/miss.md"; then
    notok "merge succeeded with a missing trial" "$tmp/miss.md"
else
    grep -q "add-lr3e-4-s2 | missing" "$tmp/miss.md" && ok "a missing trial is listed and fails merge" ||
        notok "the missing trial is not listed" "$tmp/miss.md"
fi
sh "$grid" run "$tmp/grid.txt" "$tmp/x" --worker 2 --workers 2 2> "$tmp/bad.log"
[ $? = 2 ] && ok "worker 2 of 2 is a usage error" || notok "worker 2 of 2 accepted" "$tmp/bad.log"

echo "1..$n"
[ "$fails" -eq 0 ]
