/*
 * bench_long: does a long NAG run of the CURVES autoencoder stay at full speed? Trains the
 * paper's CURVES setup (benchutil.h: 784-400-200-100-50-25-6 mirrored, the paper's
 * initialization, NAG with the paper's momentum schedule capped at 0.99, learning rate 0.005,
 * minibatches of 200 taken in order from 20,000 generated CURVES images) for N steps (default
 * 20,000) and compares the median step time of the last 1,000 steps with that of steps 100 to
 * 1,100. Subnormal floats, which on x86 can make every operation on them ~100 times slower, are
 * the usual reason for a late slowdown (docs/performance.md).
 *
 * The machine may be shared, and its load can change over a run of many minutes, so every 10th
 * step is followed by a reference workload: the bare products of one CURVES loss+gradient on
 * fixed operands (bu_bare_run; no subnormals, its cost only follows the machine). Besides the
 * raw ratio of medians, the load-normalized ratio compares the medians of step / reference
 * (each step divided by the nearest reference) in the two windows.
 *
 * Usage: bench_long [--steps N] [--no-flush] [--census K] [--seed S]
 *   --no-flush   turn MOM_NET_FLUSH_SUBNORMALS and MOM_OPTIM_FLUSH_SUBNORMALS off (to measure
 *                what the flushing is worth)
 *   --census K   every K steps, count subnormal and tiny (< 2^-63) values in the parameters,
 *                the velocity, the gradient and every layer's activations on the current batch
 * Output: "key value" lines (times in ms); a per-1000-step profile as "profile" lines.
 * Threads: OPENBLAS_NUM_THREADS, as for every benchmark.
 */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"

#define CHECK(expr)                                                                            \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (rc_ != MOM_OK) {                                                                   \
            fprintf(stderr, "bench_long: %s failed: %s\n", #expr, mom_strerror(rc_));          \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

#define REF_EVERY 10
#define TINY 1.08420217e-19f /* 2^-63 */

static void count(const float *x, size_t n, size_t *sub, size_t *tiny)
{
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        *sub += a > 0.0f && a < FLT_MIN;
        *tiny += a > 0.0f && a < TINY;
    }
}

/* Median of v[lo, hi) (copied, the input keeps its order). */
static double window_median(const double *v, size_t lo, size_t hi, double *scratch)
{
    memcpy(scratch, v + lo, (hi - lo) * sizeof *v);
    return bu_median(scratch, hi - lo);
}

static int census(bu_setup *s, const mom_batch *b, size_t step, float *g, float *act)
{
    const size_t P = mom_net_num_params(s->net);
    size_t sp = 0, tp = 0, sv = 0, tv = 0, sg = 0, tg = 0, sa = 0, ta = 0;
    double loss;
    count(mom_net_params(s->net), P, &sp, &tp);
    count(mom_optim_velocity(s->opt), P, &sv, &tv);
    CHECK(mom_net_loss_grad(&loss, g, s->net, b, NULL));
    count(g, P, &sg, &tg);
    for (size_t l = 1; l < mom_net_num_layers(s->net); l++) {
        CHECK(mom_net_forward(act, s->net, b, NULL, l));
        count(act, b->n * mom_net_layer_size(s->net, l), &sa, &ta);
    }
    printf("census step %zu loss %.4f subnormal/tiny: params %zu/%zu velocity %zu/%zu "
           "gradient %zu/%zu activations %zu/%zu\n",
           step, loss, sp, tp, sv, tv, sg, tg, sa, ta);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    size_t steps = 20000, census_every = 0;
    unsigned long long seed = 2013;
    int flush = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--census") == 0 && i + 1 < argc)
            census_every = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--no-flush") == 0)
            flush = 0;
        else {
            fprintf(stderr, "usage: bench_long [--steps N] [--no-flush] [--census K] "
                            "[--seed S]\n");
            return 2;
        }
    }
    if (steps < 2200) {
        fprintf(stderr, "bench_long: --steps must be at least 2200 (two windows of 1000)\n");
        return 2;
    }
    bu_setup s;
    if (bu_setup_create(&s, "curves", 100, seed) != 0) /* 100 batches of 200 = 20,000 images */
        return 1;
    CHECK(mom_net_set(s.net, MOM_NET_FLUSH_SUBNORMALS, flush));
    CHECK(mom_optim_set(s.opt, MOM_OPTIM_FLUSH_SUBNORMALS, flush));
    bu_bare ref;
    const size_t P = mom_net_num_params(s.net);
    double *tw = malloc(steps * sizeof *tw), *tc = malloc(steps * sizeof *tc);
    double *rw = malloc(steps * sizeof *rw), *rc = malloc(steps * sizeof *rc);
    double *scratch = malloc(steps * sizeof *scratch);
    float *g = malloc(P * sizeof *g), *act = malloc(200 * 784 * sizeof *act);
    float *ref_p = malloc(P * sizeof *ref_p); /* the reference's operands: fixed, not the net's */
    if (!tw || !tc || !rw || !rc || !scratch || !g || !act || !ref_p ||
        bu_bare_init(&ref, &s) != 0) {
        fprintf(stderr, "bench_long: out of memory\n");
        return 1;
    }
    memcpy(ref_p, mom_net_params(s.net), P * sizeof *ref_p);
    ref.p = ref_p;
    printf("config curves\nsteps %zu\nflush %d\nblas_threads %s\nseed %llu\n", steps, flush,
           bu_blas_threads(), seed);
    fflush(stdout);
    double ref_w = 0.0, ref_c = 0.0, loss = 0.0;
    const double t_start = bu_wall_ms();
    for (size_t k = 0; k < steps; k++) {
        mom_batch b = bu_batch(&s, k);
        double w0 = bu_wall_ms(), c0 = bu_cpu_ms();
        int rc_step = mom_optim_step_net(&loss, s.opt, s.net, &b);
        tw[k] = bu_wall_ms() - w0;
        tc[k] = bu_cpu_ms() - c0;
        if (rc_step != MOM_OK) {
            fprintf(stderr, "bench_long: step %zu failed: %s (%s)\n", k, mom_strerror(rc_step),
                    mom_optim_errmsg(s.opt));
            return 1;
        }
        if (k % REF_EVERY == 0) {
            w0 = bu_wall_ms();
            c0 = bu_cpu_ms();
            bu_bare_run(&ref, 0);
            ref_w = bu_wall_ms() - w0;
            ref_c = bu_cpu_ms() - c0;
        }
        rw[k] = tw[k] / ref_w;
        rc[k] = tc[k] / ref_c;
        if ((k + 1) % 1000 == 0) {
            size_t lo = k + 1 - 1000;
            printf("profile steps %zu-%zu wall_ms %.3f cpu_ms %.3f per_ref %.3f loss %.4f\n", lo,
                   k, window_median(tw, lo, k + 1, scratch), window_median(tc, lo, k + 1, scratch),
                   window_median(rw, lo, k + 1, scratch), loss);
            fflush(stdout);
        }
        if (census_every && (k + 1) % census_every == 0 && census(&s, &b, k + 1, g, act) != 0)
            return 1;
    }
    const size_t e0 = 100, e1 = 1100, l0 = steps - 1000, l1 = steps;
    double ew = window_median(tw, e0, e1, scratch), lw = window_median(tw, l0, l1, scratch);
    double ec = window_median(tc, e0, e1, scratch), lc = window_median(tc, l0, l1, scratch);
    double er = window_median(rw, e0, e1, scratch), lr = window_median(rw, l0, l1, scratch);
    double erc = window_median(rc, e0, e1, scratch), lrc = window_median(rc, l0, l1, scratch);
    printf("minutes %.1f\n", (bu_wall_ms() - t_start) / 60000.0);
    printf("final_loss %.6f\n", loss);
    printf("early_wall_ms %.4f\nlate_wall_ms %.4f\n", ew, lw);
    printf("early_cpu_ms %.4f\nlate_cpu_ms %.4f\n", ec, lc);
    printf("raw_ratio_wall %.4f\nraw_ratio_cpu %.4f\n", lw / ew, lc / ec);
    printf("steady_ratio_wall %.4f\nsteady_ratio_cpu %.4f\n", lr / er, lrc / erc);
    mom_batch last = bu_batch(&s, steps - 1);
    if (census(&s, &last, steps, g, act) != 0)
        return 1;
    bu_bare_free(&ref);
    free(ref_p);
    bu_setup_destroy(&s);
    free(tw);
    free(tc);
    free(rw);
    free(rc);
    free(scratch);
    free(g);
    free(act);
    return 0;
}
