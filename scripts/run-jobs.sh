#!/bin/sh
# Run the jobs of a list file on this machine, JOBS at a time. Each line: NAME COMMAND ARGS...
# Each job is run by scripts/run-job.sh (outputs OUT/NAME.out, .err, and .done on success).
# For many machines or the ranks of an MPI job, scripts/grid.sh runs the same lists.
# usage: scripts/run-jobs.sh LIST OUT JOBS
# Exit status: 0 when every job succeeded (or was skipped), 1 when any failed (all are run).
set -eu
list=$1 out=$2 jobs=$3
runner="$(cd "$(dirname "$0")" && pwd)/run-job.sh"
export MOMEX_OUT="$out" MOMEX_RUNNER="$runner"
rc=0
# a failed job makes its sh exit 1 (never 255, which would stop xargs): xargs runs the rest and
# exits 123
grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$list" | xargs -P "$jobs" -L 1 sh -c '
    sh "$MOMEX_RUNNER" "$MOMEX_OUT" local "$@" || exit 1' sh || rc=1
[ "$rc" = 0 ] || echo "run-jobs: some jobs failed (FAILED lines above)" >&2
exit $rc
