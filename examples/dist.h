/* Data-parallel training of the example trainers over MPI (--mpi; docs/distributed.md).
 *
 * Every rank holds the whole model and computes on its own contiguous block of each global
 * minibatch; the optimizer's reduction hook (mom_optim_set_reduce) combines losses, gradients and
 * HF's curvature quantities into the global means, so every rank takes the same step. Rank 0 alone
 * logs, draws progress, writes checkpoints and prints the summary line.
 *
 * Built with MPI when meson finds it (feature option `mpi`); otherwise every function works for a
 * single process and --mpi is refused with a usage error. Example code, not part of the library
 * (which never depends on MPI). */
#ifndef MOMEX_DIST_H
#define MOMEX_DIST_H

#include <stddef.h>
#include <stdint.h>
#include <mominit/mominit.h>

typedef struct dist {
    int on;          /* running as ranks of an MPI job (--mpi) */
    int rank, size;  /* 0 and 1 when not distributed */
    double w_grad;   /* this rank's share of the gradient minibatch (local cases / all cases) */
    double w_curv;   /* this rank's share of the curvature minibatch */
    double *buf;     /* reduction scratch, n_params doubles */
    size_t cap;
} dist;

/* 1 when the trainers were built with MPI. */
int dist_available(void);

/* Start: with want == 0 a single process; with want == 1, MPI_Init and the rank and size (a usage
 * error, exit 2, when built without MPI). */
void dist_start(dist *d, const char *prog, int *argc, char ***argv, int want);

/* The contiguous block [*lo, *hi) of `total` cases that this rank computes on. The blocks of all
 * ranks, in rank order, are 0..total-1. A usage error when total < size (a rank would be idle). */
void dist_block(const dist *d, const char *prog, const char *what, size_t total, size_t *lo,
                size_t *hi);

/* Install the reduction hook on opt, weighting this rank's means by its shares of the gradient
 * and curvature batches (local cases / global cases; curvature 0/0 = no curvature batch). Does
 * nothing when not distributed. Exits 1 on failure. */
void dist_attach(dist *d, const char *prog, mom_optim *opt, size_t g_local, size_t g_total,
                 size_t c_local, size_t c_total);

/* Whether this rank writes output (rank 0, or a single process). */
int dist_root(const dist *d);

/* Check that every rank holds the same n parameters (bit for bit) after update `step`; on a
 * mismatch print a message and abort the job (exit status 1). Collective: all ranks call it at the
 * same points. Does nothing when not distributed. */
void dist_check_agree(const dist *d, const char *prog, const float *params, size_t n,
                      uint64_t step);

/* Check that every rank computed the same 64-bit value (for example a hash of the checkpoint it
 * resumed from); on a mismatch print "PROG: rank R: the ranks WHAT" and abort the job (exit
 * status 1). Collective. Does nothing when not distributed. */
void dist_check_same(const dist *d, const char *prog, uint64_t value, const char *what);

/* Before the run starts (and before a --resume file is read): check that every rank was given
 * the same flags and data (conf_hash: train_conf_hash() of the run's settings, data sets by
 * their contents) and, when resuming, reads the same bytes from `resume`; otherwise the ranks
 * would wait for each other in different places, combine minibatches that make no single one, or
 * refuse a checkpoint on one rank only. On a mismatch: a message and the job is aborted.
 * Collective. Does nothing when not distributed. */
void dist_check_run(const dist *d, const char *prog, uint64_t conf_hash, const char *resume);

/* A barrier (collective; nothing when not distributed). */
void dist_barrier(const dist *d);

/* Stop: MPI_Finalize when distributed; frees the scratch. */
void dist_finish(dist *d);

#endif
