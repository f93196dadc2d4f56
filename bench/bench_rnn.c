/*
 * Benchmark of the recurrent network on the paper's addition configuration: 2 inputs, 100 tanh
 * hidden units, 1 linear output counted at the last step only, T = 80, minibatches of 100.
 *
 * Times (median of `reps` runs, default 50): one loss+gradient, one Gauss-Newton product, one
 * full NAG training step (loss+gradient + update through mom_optim_step_net), and, in the same
 * run, the bare matrix products those computations cannot avoid, through mom__gemm with the same
 * shapes: the input projection, the per-step recurrent products forward and backward, the output
 * layer on the counted rows and the weight-gradient products. The ratio loss+grad / bare products
 * is compared with the goal of 1.25x.
 *
 * Usage: bench_rnn [reps]. Prints one "key value" line per measurement (times in ms) so scripts
 * can parse it (scripts/bench_rnn.sh). MOM_BENCH_CLOCK=cpu measures process CPU time instead of
 * wall-clock time.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mominit/mominit.h"
#include "lib/blas.h"

enum { I_ = 2, H_ = 100, O_ = 1, T_ = 80, N_ = 100 };
static const double goal = 1.25;

/* Wall-clock time, or the process's CPU time when MOM_BENCH_CLOCK=cpu (a steadier measure on a
 * busy machine for single-threaded runs; it adds up the time of all threads). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Bare products of one loss+gradient (gv = 0) or one Gauss-Newton product (gv = 1), with the
 * shapes and transposes rnn.c uses (the forward recurrence multiplies by a transposed copy wt of
 * W_hh, made outside the timed region here). */
static void bare_products(int gv, const float *x, const float *w_vh, const float *w_hh,
                          const float *wt, const float *w_ho, float *hs, float *ds, float *z,
                          float *g)
{
    const size_t n = N_, T = T_, I = I_, H = H_, O = O_, nH = n * H;
    float *g_vh = g, *g_hh = g + H * I, *g_ho = g_hh + H * H;
    /* forward (gv: R-pass; the input and previous-state products as stacked gemms) */
    mom__gemm(0, 1, T * n, H, I, 1.0f, x, I, w_vh, I, 0.0f, hs, H);
    if (gv)
        mom__gemm(0, 1, (T - 1) * n, H, H, 1.0f, hs, H, w_hh, H, 1.0f, hs + nH, H);
    for (size_t t = 1; t < T; t++)
        mom__gemm(0, 0, n, H, H, 1.0f, hs + (t - 1) * nH, H, wt, H, 1.0f, hs + t * nH, H);
    const float *hl = hs + (T - 1) * nH;
    mom__gemm(0, 1, n, O, H, 1.0f, hl, H, w_ho, H, 0.0f, z, O);
    if (gv)
        mom__gemm(0, 1, n, O, H, 1.0f, hl, H, w_ho, H, 1.0f, z, O);
    /* backward */
    mom__gemm(1, 0, O, H, n, 1.0f, z, O, hl, H, 0.0f, g_ho, H);
    mom__gemm(0, 0, n, H, O, 1.0f, z, O, w_ho, H, 0.0f, ds + (T - 1) * nH, H);
    for (size_t t = T - 1; t-- > 0;)
        mom__gemm(0, 0, n, H, H, 1.0f, ds + (t + 1) * nH, H, w_hh, H, 0.0f, ds + t * nH, H);
    mom__gemm(1, 0, H, I, T * n, 1.0f, ds, H, x, I, 0.0f, g_vh, I);
    mom__gemm(1, 0, H, H, (T - 1) * n, 1.0f, ds + nH, H, hs, H, 0.0f, g_hh, H);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 50;
    const char *clk = getenv("MOM_BENCH_CLOCK");
    if (clk != NULL && strcmp(clk, "cpu") == 0)
        bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    if (reps < 3)
        reps = 3;
    const size_t n = N_, T = T_, I = I_, H = H_, O = O_;
    mom_net *net;
    mom_rng *rng;
    if (mom_net_create_rnn(&net, I, H, O, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, NULL) ||
        mom_rng_create(&rng, 2013, 0, NULL)) {
        fprintf(stderr, "bench_rnn: setup failed\n");
        return 1;
    }
    const size_t P = mom_net_num_params(net);
    /* parameters of the paper's scales (dense stand-ins: the timing does not depend on it) */
    float *p = mom_net_params(net);
    for (size_t i = 0; i < P; i++)
        p[i] = (float)(0.1 * mom_rng_normal(rng));

    /* addition task batch: value channel U[0,1), marker channel, mean target at the last step */
    float *x = calloc(T * n * I, sizeof *x), *tg = calloc(T * n * O, sizeof *tg);
    for (size_t s = 0; s < n; s++) {
        size_t a = (size_t)mom_rng_below(rng, T / 10), b = T / 10 + (size_t)mom_rng_below(rng, T * 4 / 10);
        for (size_t t = 0; t < T; t++)
            x[(t * n + s) * I] = mom_rng_uniformf(rng);
        x[(a * n + s) * I + 1] = 1.0f;
        x[(b * n + s) * I + 1] = 1.0f;
        tg[((T - 1) * n + s) * O] = 0.5f * (x[(a * n + s) * I] + x[(b * n + s) * I]);
    }
    mom_batch batch = {n, T, x, tg, NULL, NULL};

    float *g = malloc(P * sizeof *g), *v = malloc(P * sizeof *v), *gv = malloc(P * sizeof *gv);
    for (size_t i = 0; i < P; i++)
        v[i] = (float)mom_rng_normal(rng);
    int rc = 0;

    /* bare products with the same shapes */
    float *hs = calloc(T * n * H, sizeof *hs), *ds = calloc(T * n * H, sizeof *ds);
    float *z = calloc(n * O, sizeof *z), *gb = calloc(P, sizeof *gb);
    const float *w_vh = p, *w_hh = p + H * I, *w_ho = w_hh + H * H + H;
    float *wt = malloc(H * H * sizeof *wt);
    for (size_t i = 0; i < H; i++)
        for (size_t j = 0; j < H; j++)
            wt[i * H + j] = w_hh[j * H + i];

    /* full training step: loss+grad at the look-ahead point + NAG update */
    mom_optim *opt;
    mom_sched *lr, *mu;
    rc |= mom_optim_create(&opt, MOM_OPTIM_NAG, P, NULL);
    rc |= mom_sched_create_const(&lr, 1e-6, NULL);
    rc |= mom_sched_create_const(&mu, 0.9, NULL);
    rc |= mom_optim_set_lr(opt, lr);
    rc |= mom_optim_set_momentum(opt, mu);
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);

    /* The measurements are interleaved round by round so that a change of machine load affects
     * each of them alike; each is the median over the rounds. */
    enum { M_LG, M_BARE_LG, M_GV, M_GVD, M_BARE_GV, M_STEP, M_COUNT };
    double *tm[M_COUNT];
    for (int k = 0; k < M_COUNT; k++)
        tm[k] = malloc((size_t)reps * sizeof *tm[k]);
    double loss = 0;
    rc |= mom_net_gv_begin(net, &batch, NULL);
    for (int r = -3; r < reps; r++) { /* 3 warm-up rounds */
        double t0, d[M_COUNT];
        t0 = now_ms();
        rc |= mom_net_loss_grad(&loss, g, net, &batch, NULL);
        d[M_LG] = now_ms() - t0;
        t0 = now_ms();
        bare_products(0, x, w_vh, w_hh, wt, w_ho, hs, ds, z, gb);
        d[M_BARE_LG] = now_ms() - t0;
        t0 = now_ms();
        rc |= mom_net_gv(gv, net, v, 0.0);
        d[M_GV] = now_ms() - t0;
        t0 = now_ms();
        rc |= mom_net_gv(gv, net, v, 0.03);
        d[M_GVD] = now_ms() - t0;
        t0 = now_ms();
        bare_products(1, x, w_vh, w_hh, wt, w_ho, hs, ds, z, gb);
        d[M_BARE_GV] = now_ms() - t0;
        t0 = now_ms();
        rc |= mom_optim_step_net(&loss, opt, net, &batch);
        d[M_STEP] = now_ms() - t0;
        if (r >= 0)
            for (int k = 0; k < M_COUNT; k++)
                tm[k][r] = d[k];
    }
    double t_lg = median(tm[M_LG], reps), t_gv = median(tm[M_GV], reps);
    double t_gvd = median(tm[M_GVD], reps), t_step = median(tm[M_STEP], reps);
    double t_bare[2] = {median(tm[M_BARE_LG], reps), median(tm[M_BARE_GV], reps)};
    if (rc != 0) {
        fprintf(stderr, "bench_rnn: a call failed: %s\n", mom_net_errmsg(net));
        return 1;
    }

    printf("# addition: %zu inputs, %zu tanh hidden, %zu linear output (last step), T = %zu, "
           "n = %zu, median of %d, %s time\n", I, H, O, T, n, reps,
           bench_clock == CLOCK_MONOTONIC ? "wall-clock" : "process CPU");
    printf("rnn_loss_grad_ms %.3f\n", t_lg);
    printf("bare_loss_grad_ms %.3f\n", t_bare[0]);
    printf("rnn_loss_grad_ratio %.3f (goal %.2f: %s)\n", t_lg / t_bare[0], goal,
           t_lg / t_bare[0] <= goal ? "met" : "NOT met");
    printf("rnn_gv_ms %.3f\n", t_gv);
    printf("rnn_gv_damped_ms %.3f\n", t_gvd);
    printf("bare_gv_ms %.3f\n", t_bare[1]);
    printf("rnn_gv_ratio %.3f (goal %.2f: %s)\n", t_gv / t_bare[1], goal,
           t_gv / t_bare[1] <= goal ? "met" : "NOT met");
    printf("rnn_gv_over_loss_grad %.3f (paper: about 4/3)\n", t_gv / t_lg);
    printf("rnn_step_ms %.3f\n", t_step);

    mom_optim_destroy(opt);
    free(hs);
    free(wt);
    free(ds);
    free(z);
    free(gb);
    free(g);
    free(v);
    free(gv);
    for (int k = 0; k < M_COUNT; k++)
        free(tm[k]);
    free(x);
    free(tg);
    mom_rng_destroy(rng);
    mom_net_destroy(net);
    return 0;
}
