/*
 * bench_step: the per-step costs of one benchmark configuration (benchutil.h: curves, mnist, rnn)
 * at the BLAS thread count of the environment (OPENBLAS_NUM_THREADS), against the bound measured
 * in the same process: the bare matrix products the computation cannot avoid, with the same
 * shapes, through the same BLAS.
 *
 * Measured, interleaved round by round (so that a change of machine load hits all alike), each on
 * the monotonic wall clock and on the process CPU-time clock, reported as medians:
 *   step      one full NAG step, mom_optim_step_net() (gradient at the look-ahead point + update)
 *   step_la   the same step in the look-ahead form (mom_optim_set_lookahead(): the network holds
 *             theta + mu v, and a step reads and writes each parameter once), on a second copy
 *             of the same network and optimizer
 *   lg        one loss + gradient, mom_net_loss_grad()
 *   gv        one Gauss-Newton product, mom_net_gv() after mom_net_gv_begin()
 *   bare_lg   the bare products of one loss + gradient (the bound of step and lg)
 *   bare_gv   the bare products of one Gauss-Newton product (the bound of gv)
 *   floor     bare_lg plus the two streaming passes over the parameters that a NAG step keeping
 *             the true theta must make (the look-ahead point theta + mu v into its own buffer;
 *             then v <- mu v - eps g, theta <- theta + v), as plain loops on the calling thread:
 *             what a step would cost if nothing but those passes came on top of the products
 *   floor1    the one-pass floor: bare_lg whose weights are read from the parameters themselves,
 *             each layer's v <- mu v - eps g, theta <- theta + v run as soon as the layer's
 *             backward products are done (its gradient still in cache): the least any momentum
 *             step adds to the products, in any parameterization (PyTorch's look-ahead form
 *             included)
 *
 * Usage: bench_step MODEL [--reps N] [--warmup N]      timings (default 30 rounds, 3 warm-up)
 *        bench_step MODEL --mem                         peak memory of NAG training (40 steps)
 *        bench_step MODEL --mem-bare                    memory the BLAS itself takes for the
 *                                                       bare products (its internal buffers;
 *                                                       the same starting point as --mem)
 *        bench_step MODEL --dump FILE                   write the initial parameters and batch 0
 *                                                       (float32, native order) for the PyTorch
 *                                                       comparison (scripts/bench_torch.py)
 * Output: one "key value" line per result (times in ms, memory in KiB), for scripts/bench.sh.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"

/* ---- modes ----------------------------------------------------------------------------------- */

#define CHECK(expr)                                                                            \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (rc_ != MOM_OK) {                                                                   \
            fprintf(stderr, "bench_step: %s failed: %s\n", #expr, mom_strerror(rc_));          \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

enum { M_STEP, M_LG, M_GV, M_BARE_LG, M_BARE_GV, M_FLOOR, M_FLOOR1, M_STEP_LA, M_COUNT };
static const char *const m_name[M_COUNT] = {"step",    "lg",    "gv",     "bare_lg",
                                            "bare_gv", "floor", "floor1", "step_la"};
#define N_RATIOS 6 /* step, lg, gv, floor, floor1, step_la */

/* The floor's passes, vectorized as the library's are (GCC's -O2 cost model would leave loops
 * with a remainder scalar). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
static void floor_point(size_t n, float *restrict pt, const float *restrict th,
                        const float *restrict v, float mu)
{
    for (size_t i = 0; i < n; i++)
        pt[i] = th[i] + mu * v[i];
}

static void floor_update(size_t n, float *restrict th, float *restrict v,
                         const float *restrict g, float mu, float eps)
{
    for (size_t i = 0; i < n; i++) {
        float vn = mu * v[i] - eps * g[i];
        v[i] = vn;
        th[i] = th[i] + vn;
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* Vectors of the floor: its own theta, velocity and point (the gradient is the bare products'). */
typedef struct floor_vecs {
    float *th, *v, *pt;
} floor_vecs;

/* b: bare products that read their weights from f->pt, as a step's products read the point. */
static void floor_run(const floor_vecs *f, const bu_bare *b, size_t n)
{
    floor_point(n, f->pt, f->th, f->v, 0.99f);
    bu_bare_run(b, 0);
    floor_update(n, f->th, f->v, b->g, 0.99f, 1e-3f);
}

/* The one-pass floor: the least that any momentum step must add to the products, whatever the
 * parameterization (the look-ahead form that keeps Theta = theta + mu v, as PyTorch's does,
 * included): one read and one write of the parameters and the velocity. The products read their
 * weights straight from the parameters (no look-ahead pass), and each layer's update runs as
 * soon as its backward products are done, while its gradient is in cache (bu_bare's after_grad
 * hook). The RNN's products are per step and chunk, its parameters few: one pass
 * after the products. */
static void floor1_layer(void *ctx, size_t off, size_t len)
{
    const floor_vecs *f = ctx;
    floor_update(len, f->th + off, f->v + off, f->pt + off, 0.99f, 1e-3f);
}

static void floor1_run(const floor_vecs *f, const bu_bare *b, size_t n, int recurrent)
{
    bu_bare_run(b, 0);
    if (recurrent)
        floor_update(n, f->th, f->v, b->g, 0.99f, 1e-3f);
}

static void header(const bu_setup *s)
{
    printf("config %s\n", s->cfg.name);
    printf("data %s\n", s->data_source);
    printf("params %zu\n", mom_net_num_params(s->net));
    printf("blas_threads %s\n", bu_blas_threads());
}

static int run_timing(bu_setup *s, bu_setup *sla, int reps, int warmup)
{
    const size_t P = mom_net_num_params(s->net);
    bu_bare b;
    float *g = malloc(P * sizeof *g), *gvout = malloc(P * sizeof *gvout),
          *gvp = malloc(P * sizeof *gvp);
    double *tw[M_COUNT], *tc[M_COUNT];
    /* per-round ratios step/bare_lg, lg/bare_lg, gv/bare_gv, floor/bare_lg (wall, cpu): measured
     * a few milliseconds apart, they cancel most of the load changes that medians of times keep */
    double *rw[N_RATIOS], *rc[N_RATIOS];
    floor_vecs fv = {calloc(P, sizeof(float)), calloc(P, sizeof(float)),
                     calloc(P, sizeof(float))};
    /* the one-pass floor's own parameters and velocity; pt: the gradient its updates read */
    floor_vecs f1 = {calloc(P, sizeof(float)), calloc(P, sizeof(float)), NULL};
    for (int k = 0; k < N_RATIOS; k++) {
        rw[k] = malloc((size_t)reps * sizeof(double));
        rc[k] = malloc((size_t)reps * sizeof(double));
        if (!rw[k] || !rc[k])
            return 1;
    }
    if (!g || !gvout || !gvp || !fv.th || !fv.v || !fv.pt || !f1.th || !f1.v ||
        bu_bare_init(&b, s) != 0) {
        fprintf(stderr, "bench_step: out of memory\n");
        return 1;
    }
    memcpy(fv.th, mom_net_params(s->net), P * sizeof *fv.th);
    bu_bare bf = b; /* the same buffers, weights read from the floor's point */
    bf.p = fv.pt;
    memcpy(f1.th, mom_net_params(s->net), P * sizeof *f1.th);
    f1.pt = b.g;
    bu_bare b1 = b; /* the same buffers, weights read from the one-pass floor's parameters */
    b1.p = f1.th;
    b1.after_grad = floor1_layer;
    b1.ctx = &f1;
    for (int k = 0; k < M_COUNT; k++) {
        tw[k] = malloc((size_t)reps * sizeof(double));
        tc[k] = malloc((size_t)reps * sizeof(double));
        if (!tw[k] || !tc[k])
            return 1;
    }
    /* Gauss-Newton products on a frozen copy of the initial parameters and batch 0 (the steps
     * below move the network's own vector) */
    memcpy(gvp, mom_net_params(s->net), P * sizeof *gvp);
    mom_batch b0 = bu_batch(s, 0);
    double loss0;
    CHECK(mom_net_loss(&loss0, s->net, &b0, NULL));
    CHECK(mom_net_gv_begin(s->net, &b0, gvp));
    header(s);
    printf("loss0 %.9g\n", loss0);
    printf("reps %d\n", reps);
    size_t batch_k = 0;
    for (int r = -warmup; r < reps; r++) {
        double w[M_COUNT], c[M_COUNT];
        for (int k = 0; k < M_COUNT; k++) {
            double w0 = bu_wall_ms(), c0 = bu_cpu_ms();
            double loss;
            mom_batch bt = bu_batch(s, batch_k);
            switch (k) {
            case M_STEP:
                CHECK(mom_optim_step_net(&loss, s->opt, s->net, &bt));
                break;
            case M_STEP_LA:
                CHECK(mom_optim_step_net(&loss, sla->opt, sla->net, &bt));
                batch_k++; /* the last mode of the round */
                break;
            case M_LG:
                CHECK(mom_net_loss_grad(&loss, g, s->net, &bt, NULL));
                break;
            case M_GV:
                CHECK(mom_net_gv(gvout, s->net, b.v, 0.0));
                break;
            case M_FLOOR:
                floor_run(&fv, &bf, P);
                break;
            case M_FLOOR1:
                floor1_run(&f1, &b1, P, s->cfg.recurrent);
                break;
            default:
                bu_bare_run(&b, k == M_BARE_GV);
                break;
            }
            w[k] = bu_wall_ms() - w0;
            c[k] = bu_cpu_ms() - c0;
        }
        if (r >= 0) {
            for (int k = 0; k < M_COUNT; k++) {
                tw[k][r] = w[k];
                tc[k][r] = c[k];
            }
            rw[0][r] = w[M_STEP] / w[M_BARE_LG];
            rc[0][r] = c[M_STEP] / c[M_BARE_LG];
            rw[1][r] = w[M_LG] / w[M_BARE_LG];
            rc[1][r] = c[M_LG] / c[M_BARE_LG];
            rw[2][r] = w[M_GV] / w[M_BARE_GV];
            rc[2][r] = c[M_GV] / c[M_BARE_GV];
            rw[3][r] = w[M_FLOOR] / w[M_BARE_LG];
            rc[3][r] = c[M_FLOOR] / c[M_BARE_LG];
            rw[4][r] = w[M_FLOOR1] / w[M_BARE_LG];
            rc[4][r] = c[M_FLOOR1] / c[M_BARE_LG];
            rw[5][r] = w[M_STEP_LA] / w[M_BARE_LG];
            rc[5][r] = c[M_STEP_LA] / c[M_BARE_LG];
        }
    }
    static const char *const r_name[N_RATIOS] = {"step",  "lg",     "gv",
                                                 "floor", "floor1", "step_la"};
    for (int k = 0; k < N_RATIOS; k++) {
        printf("%s_ratio_wall %.4f\n", r_name[k], bu_median(rw[k], (size_t)reps));
        printf("%s_ratio_cpu %.4f\n", r_name[k], bu_median(rc[k], (size_t)reps));
        free(rw[k]);
        free(rc[k]);
    }
    for (int k = 0; k < M_COUNT; k++) {
        printf("%s_wall_ms %.4f\n", m_name[k], bu_median(tw[k], (size_t)reps));
        printf("%s_cpu_ms %.4f\n", m_name[k], bu_median(tc[k], (size_t)reps));
        printf("%s_wall_min_ms %.4f\n", m_name[k], tw[k][0]); /* sorted by bu_median */
        free(tw[k]);
        free(tc[k]);
    }
    bu_bare_free(&b);
    free(g);
    free(gvout);
    free(gvp);
    free(fv.th);
    free(fv.v);
    free(fv.pt);
    free(f1.th);
    free(f1.v);
    return 0;
}

/* Peak memory of NAG training. The network, its paper's initialization and the optimizer are
 * set up first; their parameters and optimizer state are counted by size (the initialization's
 * scratch memory and whatever LAPACK/BLAS buffers it leaves resident are not part of a step).
 * Then the peak is reset and 40 steps run (the first allocates the workspace): the growth of the
 * resident set is the workspace, the BLAS's buffers and anything else a step touches. */
static int run_mem(const char *model)
{
    bu_setup s;
    if (bu_setup_create(&s, model, 1, 2013) != 0)
        return 1;
    long r0 = bu_rss_kb();
    if (bu_reset_peak() != 0 || r0 < 0) {
        fprintf(stderr, "bench_step: cannot read or reset the peak resident set (/proc)\n");
        return 1;
    }
    for (int i = 0; i < 40; i++) {
        mom_batch bt = bu_batch(&s, 0);
        CHECK(mom_optim_step_net(NULL, s.opt, s.net, &bt));
    }
    long r1 = bu_peak_rss_kb();
    size_t pb, ob, ab, bb, need = bu_need_bytes(&s, &pb, &ob, &ab, &bb);
    header(&s);
    printf("mem_peak_kb %ld\n", (long)((pb + ob) / 1024) + (r1 - r0));
    printf("mem_need_kb %zu\n", need / 1024);
    printf("mem_params_kb %zu\n", pb / 1024);
    printf("mem_optim_kb %zu\n", ob / 1024);
    printf("mem_acts_kb %zu\n", ab / 1024);
    printf("mem_batch_kb %zu\n", bb / 1024);
    printf("mem_workspace_kb %zu\n", mom_net_workspace_bytes(s.net) / 1024);
    bu_setup_destroy(&s);
    return 0;
}

/* Memory the BLAS takes for the bare products beyond their operands (its internal buffers): the
 * growth of the resident set while the operands are filled and the products run, from the same
 * starting point as run_mem, minus the operands' bytes. */
static int run_mem_bare(const char *model)
{
    bu_setup s;
    bu_bare b;
    if (bu_setup_create(&s, model, 1, 2013) != 0)
        return 1;
    long r0 = bu_rss_kb();
    if (bu_reset_peak() != 0 || r0 < 0) {
        fprintf(stderr, "bench_step: cannot read or reset the peak resident set (/proc)\n");
        return 1;
    }
    if (bu_bare_init(&b, &s) != 0)
        return 1;
    for (int i = 0; i < 5; i++)
        bu_bare_run(&b, 0);
    long r1 = bu_peak_rss_kb();
    header(&s);
    printf("mem_blas_kb %ld\n", r1 - r0 - (long)(b.bytes / 1024));
    bu_bare_free(&b);
    bu_setup_destroy(&s);
    return 0;
}

static int run_dump(const char *model, const char *path)
{
    bu_setup s;
    if (bu_setup_create(&s, model, 1, 2013) != 0)
        return 1;
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    const size_t P = mom_net_num_params(s.net);
    int ok = fwrite(mom_net_params(s.net), sizeof(float), P, f) == P &&
             fwrite(s.inputs, sizeof(float), s.in_per_batch, f) == s.in_per_batch;
    if (s.targets)
        ok = ok && fwrite(s.targets, sizeof(float), s.tg_per_batch, f) == s.tg_per_batch;
    ok = fclose(f) == 0 && ok;
    mom_batch b0 = bu_batch(&s, 0);
    double loss0;
    CHECK(mom_net_loss(&loss0, s.net, &b0, NULL));
    header(&s);
    printf("loss0 %.9g\n", loss0);
    bu_setup_destroy(&s);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_step curves|mnist|rnn [--reps N] [--warmup N] | --mem | "
                        "--mem-bare | --dump FILE\n");
        return 2;
    }
    const char *model = argv[1];
    int reps = 30, warmup = 3;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--mem") == 0)
            return run_mem(model);
        if (strcmp(argv[i], "--mem-bare") == 0)
            return run_mem_bare(model);
        if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
            return run_dump(model, argv[i + 1]);
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_step: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    if (warmup < 0)
        warmup = 0;
    bu_setup s, sla;
    if (bu_setup_create(&s, model, 8, 2013) != 0)
        return 1;
    if (bu_setup_create(&sla, model, 8, 2013) != 0) {
        bu_setup_destroy(&s);
        return 1;
    }
    int rc = mom_optim_set_lookahead(sla.opt, mom_net_params(sla.net), 1);
    if (rc != MOM_OK)
        fprintf(stderr, "bench_step: mom_optim_set_lookahead failed: %s\n", mom_strerror(rc));
    else
        rc = run_timing(&s, &sla, reps, warmup);
    bu_setup_destroy(&sla);
    bu_setup_destroy(&s);
    return rc != 0;
}
