/*
 * A handle's helper threads for the elementwise passes (docs/performance.md, "Threads").
 *
 * With a multithreaded BLAS the matrix products of a step run on every core, while the passes
 * between them (activations, output loss and deltas, derivatives and bias sums) would run on the
 * calling thread alone. A team lets helper threads share such a pass: the pass is cut into a
 * number of parts that depends only on its shape (never on the thread count), the caller and the
 * helpers claim parts until none is left, and the caller combines per-part results (sums) in part
 * order. So a computation gives the same bits with any number of threads.
 *
 * Helpers sleep on a condition variable between jobs: they never spin while the BLAS runs. A
 * late wake-up costs nothing but the wake itself: the caller claims every part no helper has
 * started, so a job never takes longer than running it alone (plus a signal). In a child process
 * after fork(), where the helpers do not exist, jobs run on the caller. Helpers block the
 * asynchronous signals (the synchronous ones, faults and traps, stay open) and run each job in the caller's floating-point control mode. On Linux they are kept
 * off the CPU the caller ran on when they were started, when the process may use other CPUs.
 *
 * Not thread-safe by itself: one thread drives a team at a time (the handle's contract).
 */
#ifndef MOM_TEAM_H
#define MOM_TEAM_H

#include <stddef.h>

#include "mominit/mominit.h"

/* Most parts a job may have, and most threads a team uses (the caller and its helpers). */
#define MOM__TEAM_MAX_PARTS 8

/* One part of a job: rows [part * n / parts, (part + 1) * n / parts) or the like. */
typedef void (*mom__team_fn)(void *arg, size_t part, size_t parts);

typedef struct mom__team_state mom__team_state;

typedef struct mom__team {
    mom_allocator alloc;     /* the owner's allocator (for the state) */
    int threads;             /* wanted: 0 = the BLAS's thread count, 1 = serial, k = k threads */
    int failed;              /* the helpers could not be started: stay serial */
    mom__team_state *st;     /* NULL until the helpers are started */
} mom__team;

/* A serial team: no helper until a job wants one. */
void mom__team_init(mom__team *t, const mom_allocator *a, int threads);

/* Stop and join the helpers, free the state; the team is serial afterwards (init to reuse). */
void mom__team_stop(mom__team *t);

/* Run fn(arg, p, parts) for p = 0..parts-1, shared with the helpers: min(threads, MAX_PARTS) - 1
 * of them, started on the first job with 2 or more parts (if they cannot be started the team
 * stays serial, which gives the same results). Returns when every part is done. */
void mom__team_run(mom__team *t, mom__team_fn fn, void *arg, size_t parts);

/* Start the helpers now if the team has any to use (as the first shared job would), so that no
 * later job allocates: what mom_net_reserve() promises. A failure leaves the team serial. */
void mom__team_prepare(mom__team *t);

/* Parts for a pass over `count` values: 1 below `least` (too small to be worth a wake-up), else
 * count / grain, at least 2, at most MOM__TEAM_MAX_PARTS and at most `rows` (parts split rows). A
 * function of the shape only. Parts finer than one per thread let the caller take over the parts
 * of a helper that wakes late. */
size_t mom__team_parts(size_t count, size_t rows, size_t least, size_t grain);

/* The BLAS's own thread count when the library can learn it (OpenBLAS), else 0. */
int mom__blas_threads(void);

#endif
