#!/bin/sh
# Run one job of a job list: OUT/NAME.out gets stdout, OUT/NAME.err stderr, and OUT/NAME.done
# (written only when the command succeeded, atomically) its last stdout line, the command, the wall
# time in seconds and the worker that ran it. BLAS runs single-threaded (jobs run side by side).
# usage: scripts/run-job.sh OUT WORKER NAME COMMAND [ARGS...]
# Exit status: the command's.
set -u
out=$1 worker=$2 name=$3
shift 3
start=$(date +%s)
if OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} "$@" > "$out/$name.out" 2> "$out/$name.err"; then
    { tail -n 1 "$out/$name.out"; echo "command: $*"
      echo "wall: $(( $(date +%s) - start ))"; echo "worker: $worker"; } > "$out/$name.done.tmp" &&
        mv "$out/$name.done.tmp" "$out/$name.done"
    echo "done $name: $(tail -n 1 "$out/$name.out")" >&2
else
    rc=$?
    echo "FAILED $name (status $rc; see $out/$name.err)" >&2
    exit $rc
fi
