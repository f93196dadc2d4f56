#!/bin/sh
# The common end of scripts/repro-rnn.sh and scripts/repro-ae.sh: run their job list on this
# machine, JOBS at a time, and rewrite docs/results.md; or, given a grid file, only write the list
# there for scripts/grid.sh to spread over MPI ranks or job-array tasks (docs/distributed.md).
# usage: scripts/repro-run.sh NAME LIST OUT JOBS [GRID-FILE]     (from the repository root)
# LIST is the caller's temporary job list: it is removed on exit.
set -eu
name=$1 list=$2 out=$3 jobs=$4 grid=${5:-}
trap 'rm -f "$list"' EXIT
n=$(wc -l < "$list")
if [ -n "$grid" ]; then
    cp "$list" "$grid"
    echo "$name: $n runs written to $grid; run them from $(pwd) with" >&2
    echo "  mpirun -np N sh scripts/grid.sh run $grid $out   (or a job array, docs/distributed.md)" >&2
    echo "then: python3 scripts/results.py --${name#repro-} $out" >&2
    exit 0
fi
echo "$name: $n runs to do, $jobs at a time, results in $out" >&2
rc=0
sh scripts/run-jobs.sh "$list" "$out" "$jobs" || rc=$? # a failed run: the table of the others
python3 scripts/results.py "--${name#repro-}" "$out"
exit $rc
