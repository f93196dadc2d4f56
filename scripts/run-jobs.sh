#!/bin/sh
# Run the jobs of a list file, JOBS at a time. Each line: NAME COMMAND ARGS...
# For each job, OUT/NAME.out gets stdout, OUT/NAME.err stderr, and OUT/NAME.done (written only when
# the command succeeded) its last stdout line, the command and the wall time in seconds.
# usage: scripts/run-jobs.sh LIST OUT JOBS
set -eu
list=$1 out=$2 jobs=$3
export MOMEX_OUT="$out"
<"$list" xargs -P "$jobs" -L 1 sh -c '
    name=$0
    start=$(date +%s)
    if OPENBLAS_NUM_THREADS=1 "$@" > "$MOMEX_OUT/$name.out" 2> "$MOMEX_OUT/$name.err"; then
        { tail -n 1 "$MOMEX_OUT/$name.out"; echo "command: $*"
          echo "wall: $(( $(date +%s) - start ))"; } > "$MOMEX_OUT/$name.done"
        echo "done $name: $(tail -n 1 "$MOMEX_OUT/$name.out")" >&2
    else
        echo "FAILED $name (see $MOMEX_OUT/$name.err)" >&2
    fi' || true
