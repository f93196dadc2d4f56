#!/bin/sh
# Experiment grids across many processes: spread the independent trials of a grid over the ranks
# of an MPI job, over the tasks of a job-array scheduler, or run them one after another; then merge
# their summaries into one table (docs/distributed.md).
#
#   scripts/grid.sh run   GRID OUT [--worker K --workers N]   run this worker's trials
#   scripts/grid.sh merge GRID OUT [--no-time] [--tsv]        print the table of all trials
#   scripts/grid.sh count GRID                                 number of trials
#
# GRID is a job list, one trial per line: NAME COMMAND [ARGS...] (blank lines and lines starting
# with # are ignored). scripts/repro-rnn.sh and scripts/repro-ae.sh write theirs with --grid FILE.
# Trial i (0-based, in file order) belongs to worker i mod N. The worker K of N comes from, in
# order: --worker/--workers; an MPI launcher (Open MPI's OMPI_COMM_WORLD_RANK/_SIZE, MPICH and
# Intel MPI's PMI_RANK/PMI_SIZE); a job array (Slurm's SLURM_ARRAY_TASK_ID minus
# SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT, SGE's SGE_TASK_ID of SGE_TASK_LAST); else 0 of 1,
# i.e. every trial, one after another. So, for example:
#
#   mpirun -np 16 sh scripts/grid.sh run grid.txt out/grid     # 16 ranks, any number of nodes
#   sbatch --array=0-15 --wrap 'sh scripts/grid.sh run grid.txt out/grid'
#   sh scripts/grid.sh merge grid.txt out/grid > table.md
#
# Each trial runs through scripts/run-job.sh: OUT/NAME.out, .err, and on success .done (the
# trial's last output line, the command, its wall time and the worker). A trial whose .done exists
# is skipped, so a grid can be re-run to finish what a failed or interrupted job left. OUT must be
# a directory every worker can write (a shared file system on a cluster). The trials themselves
# run as single processes (one BLAS thread each unless OPENBLAS_NUM_THREADS says otherwise).
#
# merge reads the summary line "final k=v k=v ..." of each trial and prints a Markdown table (or
# tab-separated values with --tsv) with one row per trial in grid order and one column per key;
# --no-time leaves out the seconds, the only column that differs between runs of the same trial.
# A trial without .done is listed as "missing". Exit status: 0, or 1 when a trial of this worker
# failed (run) or a trial is missing (merge), 2 on a usage error.
set -u
here=$(cd "$(dirname "$0")" && pwd)
usage() {
    echo "usage: grid.sh run GRID OUT [--worker K --workers N] | merge GRID OUT [--no-time] [--tsv] | count GRID" >&2
    exit 2
}
[ $# -ge 2 ] || usage
cmd=$1 grid=$2
shift 2
[ -f "$grid" ] || { echo "grid.sh: no grid file $grid" >&2; exit 2; }

trials() { grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$grid"; }

case $cmd in
count)
    trials | wc -l | tr -d ' '
    exit 0
    ;;
run | merge) [ $# -ge 1 ] || usage; out=$1; shift ;;
*) usage ;;
esac

if [ "$cmd" = run ]; then
    worker="" workers=""
    while [ $# -gt 0 ]; do
        case $1 in
        --worker) [ $# -ge 2 ] || usage; worker=$2; shift 2 ;;
        --workers) [ $# -ge 2 ] || usage; workers=$2; shift 2 ;;
        *) usage ;;
        esac
    done
    if [ -z "$worker$workers" ]; then
        if [ -n "${OMPI_COMM_WORLD_RANK:-}" ]; then
            worker=$OMPI_COMM_WORLD_RANK workers=${OMPI_COMM_WORLD_SIZE:-1}
        elif [ -n "${PMI_RANK:-}" ]; then
            worker=$PMI_RANK workers=${PMI_SIZE:-1}
        elif [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
            worker=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
            workers=${SLURM_ARRAY_TASK_COUNT:-1}
        elif [ -n "${SGE_TASK_ID:-}" ] && [ "${SGE_TASK_ID}" != undefined ]; then
            worker=$((SGE_TASK_ID - 1)) workers=${SGE_TASK_LAST:-1}
        else
            worker=0 workers=1
        fi
    fi
    case "$worker:$workers" in
    *[!0-9:]* | :* | *:) echo "grid.sh: worker '$worker' of '$workers' is not a number" >&2; exit 2 ;;
    esac
    if [ "$workers" -lt 1 ] || [ "$worker" -ge "$workers" ]; then
        echo "grid.sh: worker $worker of $workers is out of range" >&2
        exit 2
    fi
    mkdir -p "$out" || exit 1
    status=0 i=0
    # read the list first, so the trials cannot consume it as their standard input
    list=$(trials)
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        if [ $((i % workers)) -eq "$worker" ]; then
            name=${line%%[[:space:]]*}
            if [ -f "$out/$name.done" ]; then
                echo "skip $name (done)" >&2
            else
                # shellcheck disable=SC2086  # the line is a command with its arguments
                sh "$here/run-job.sh" "$out" "$worker/$workers" $line < /dev/null || status=1
            fi
        fi
        i=$((i + 1))
    done <<EOF
$list
EOF
    exit $status
fi

# merge
notime=0 tsv=0
while [ $# -gt 0 ]; do
    case $1 in
    --no-time) notime=1; shift ;;
    --tsv) tsv=1; shift ;;
    *) usage ;;
    esac
done
trials | awk -v out="$out" -v notime="$notime" -v tsv="$tsv" '
{
    name = $1
    order[++n] = name
    file = out "/" name ".done"
    line = ""
    if ((getline line < file) > 0) {
        close(file)
        m = split(line, kv, " ")
        for (j = 2; j <= m; j++) {
            eq = index(kv[j], "=")
            if (eq == 0) continue
            k = substr(kv[j], 1, eq - 1)
            if (notime && k == "seconds") continue
            if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
            val[name, k] = substr(kv[j], eq + 1)
        }
        have[name] = 1
    } else {
        missing++
    }
}
END {
    sep = tsv ? "\t" : " | "
    head = "trial"
    for (j = 1; j <= nk; j++) head = head sep keys[j]
    if (tsv) print head
    else {
        print "| " head " |"
        rule = "|---"
        for (j = 1; j <= nk; j++) rule = rule "|---"
        print rule "|"
    }
    for (i = 1; i <= n; i++) {
        name = order[i]
        row = name
        for (j = 1; j <= nk; j++) {
            v = (name in have) ? (((name, keys[j]) in val) ? val[name, keys[j]] : "-") : "missing"
            row = row sep v
        }
        print tsv ? row : "| " row " |"
    }
    exit missing > 0
}'
