/* Data-parallel training over MPI for the example trainers; see dist.h. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dist.h"

#ifdef MOMEX_MPI
#include <mpi.h>
#endif

int dist_available(void)
{
#ifdef MOMEX_MPI
    return 1;
#else
    return 0;
#endif
}

void dist_start(dist *d, const char *prog, int *argc, char ***argv, int want)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    d->w_grad = d->w_curv = 1.0;
    if (!want)
        return;
#ifdef MOMEX_MPI
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "%s: MPI_Init failed\n", prog);
        exit(1);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->on = 1;
#else
    (void)argc;
    (void)argv;
    cli_usage_error(prog, "--mpi: this build has no MPI (install an MPI, e.g. Debian's "
                          "libopenmpi-dev, and reconfigure with -Dmpi=enabled)");
#endif
}

void dist_block(const dist *d, const char *prog, const char *what, size_t total, size_t *lo,
                size_t *hi)
{
    if (total < (size_t)d->size)
        cli_usage_error(prog, "the %s of %zu cases is smaller than the %d ranks", what, total,
                        d->size);
    /* block r is [floor(total r / size), floor(total (r+1) / size)) */
    *lo = (size_t)((unsigned long long)total * (unsigned)d->rank / (unsigned)d->size);
    *hi = (size_t)((unsigned long long)total * (unsigned)(d->rank + 1) / (unsigned)d->size);
}

int dist_root(const dist *d) { return d->rank == 0; }

#ifdef MOMEX_MPI
/* The reduction hook: weight this rank's mean by its share, sum over ranks in double at rank 0,
 * round once, and broadcast the result, so that every rank receives the same bits (an
 * MPI_Allreduce does not promise that for more than two ranks). */
static int dist_reduce(void *values, size_t count, int type, int what, void *user_data)
{
    dist *d = user_data;
    if (count > d->cap || count > (size_t)0x7fffffff)
        return MOM_E_SHAPE;
    const double w =
        (what == MOM_REDUCE_GV || what == MOM_REDUCE_CURV_LOSS) ? d->w_curv : d->w_grad;
    double *buf = d->buf;
    if (type == MOM_REDUCE_FLOAT) {
        const float *v = values;
        for (size_t k = 0; k < count; k++)
            buf[k] = w * (double)v[k];
    } else {
        const double *v = values;
        for (size_t k = 0; k < count; k++)
            buf[k] = w * v[k];
    }
    int n = (int)count;
    if (MPI_Reduce(d->rank == 0 ? MPI_IN_PLACE : buf, buf, n, MPI_DOUBLE, MPI_SUM, 0,
                   MPI_COMM_WORLD) != MPI_SUCCESS)
        return MOM_E_IO;
    if (type == MOM_REDUCE_FLOAT) {
        float *v = values;
        if (d->rank == 0)
            for (size_t k = 0; k < count; k++)
                v[k] = (float)buf[k];
        if (MPI_Bcast(v, n, MPI_FLOAT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
            return MOM_E_IO;
    } else {
        double *v = values;
        if (d->rank == 0)
            memcpy(v, buf, count * sizeof *v);
        if (MPI_Bcast(v, n, MPI_DOUBLE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
            return MOM_E_IO;
    }
    return 0;
}
#endif

void dist_attach(dist *d, const char *prog, mom_optim *opt, size_t g_local, size_t g_total,
                 size_t c_local, size_t c_total)
{
    if (!d->on)
        return;
#ifdef MOMEX_MPI
    d->w_grad = (double)g_local / (double)g_total;
    d->w_curv = c_total ? (double)c_local / (double)c_total : d->w_grad;
    size_t n = mom_optim_num_params(opt);
    free(d->buf);
    d->buf = malloc((n ? n : 1) * sizeof *d->buf);
    d->cap = n;
    int rc = d->buf ? mom_optim_set_reduce(opt, dist_reduce, d) : MOM_E_NOMEM;
    if (rc != MOM_OK) {
        fprintf(stderr, "%s: installing the MPI reduction failed: %s\n", prog, mom_strerror(rc));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
#else
    (void)prog;
    (void)opt;
    (void)g_local;
    (void)g_total;
    (void)c_local;
    (void)c_total;
#endif
}

void dist_check_agree(const dist *d, const char *prog, const float *params, size_t n,
                      uint64_t step)
{
    if (!d->on)
        return;
#ifdef MOMEX_MPI
    /* a 64-bit hash of the bits of the parameters; equal vectors give equal hashes */
    unsigned long long mine = cli_hash_floats(0x9e3779b97f4a7c15ull, params, n), lo = 0, hi = 0;
    MPI_Allreduce(&mine, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&mine, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (lo != hi) {
        fprintf(stderr, "%s: rank %d: the ranks hold different parameters after update %llu\n",
                prog, d->rank, (unsigned long long)step);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
#else
    (void)prog;
    (void)params;
    (void)n;
    (void)step;
#endif
}

void dist_check_same(const dist *d, const char *prog, uint64_t value, const char *what)
{
    if (!d->on)
        return;
#ifdef MOMEX_MPI
    unsigned long long mine = value, lo = 0, hi = 0;
    MPI_Allreduce(&mine, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&mine, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (lo != hi) {
        fprintf(stderr, "%s: rank %d: the ranks %s\n", prog, d->rank, what);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
#else
    (void)prog;
    (void)value;
    (void)what;
#endif
}

/* A 64-bit hash (FNV-1a) of the file at path, its size folded in; UINT64_MAX, after a message
 * naming the rank, when it cannot be read. */
static uint64_t file_hash(const char *prog, int rank, const char *path)
{
    FILE *f = fopen(path, "rb");
    uint64_t h = 0xcbf29ce484222325ull, size = 0;
    unsigned char buf[65536];
    size_t k;
    if (f != NULL)
        while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
            for (size_t i = 0; i < k; i++)
                h = (h ^ buf[i]) * 0x100000001b3ull;
            size += k;
        }
    if (f == NULL || ferror(f)) {
        fprintf(stderr, "%s (rank %d): cannot read %s: %s\n", prog, rank, path,
                f == NULL ? strerror(errno) : "read error");
        if (f != NULL)
            fclose(f);
        return UINT64_MAX;
    }
    fclose(f);
    return (h ^ size) * 0x100000001b3ull;
}

void dist_check_run(const dist *d, const char *prog, uint64_t conf_hash, const char *resume)
{
    if (!d->on)
        return;
    dist_check_same(d, prog, conf_hash,
                    "were given different flags or data (every rank must run the same command "
                    "on the same data)");
    if (resume != NULL)
        dist_check_same(d, prog, file_hash(prog, d->rank, resume),
                        "read different checkpoints (is --resume the same file on every node?)");
}

void dist_barrier(const dist *d)
{
#ifdef MOMEX_MPI
    if (d->on)
        MPI_Barrier(MPI_COMM_WORLD);
#else
    (void)d;
#endif
}

void dist_finish(dist *d)
{
#ifdef MOMEX_MPI
    if (d->on)
        MPI_Finalize();
#endif
    free(d->buf);
    d->buf = NULL;
    d->on = 0;
}
