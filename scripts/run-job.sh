#!/bin/sh
# Run one job of a job list: OUT/NAME.out gets stdout, OUT/NAME.err stderr, and OUT/NAME.done
# (written only when the command succeeded, atomically) its last stdout line, the command, the wall
# time in seconds and the worker that ran it. BLAS runs single-threaded (jobs run side by side).
# A job is claimed by creating the directory OUT/NAME.lock (atomic), removed when it ends, so that
# two runners sharing OUT (two invocations of a reproduction script, say) never run the same job at
# once; a job already done or claimed is skipped. A runner killed with SIGKILL leaves its lock
# behind: remove it by hand.
# usage: scripts/run-job.sh OUT WORKER NAME COMMAND [ARGS...]
# Exit status: the command's (0 for a skipped job).
set -u
out=$1 worker=$2 name=$3
shift 3
lock="$out/$name.lock"
if [ ! -d "$out" ]; then
    echo "FAILED $name: the output folder $out does not exist" >&2
    exit 1
fi
if ! mkdir "$lock" 2>/dev/null; then
    echo "skip $name: another runner has it ($lock)" >&2
    exit 0
fi
trap 'rmdir "$lock" 2>/dev/null' EXIT
trap 'exit 130' INT TERM HUP
if [ -f "$out/$name.done" ]; then
    echo "skip $name: done already" >&2
    exit 0
fi
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
