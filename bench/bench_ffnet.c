/*
 * Benchmark of the feedforward kernels on the paper's deep autoencoders (batch 200):
 *   CURVES 784-400-200-100-50-25-6-25-50-100-200-400-784 (code layer of 6 linear)
 *   MNIST  784-1000-500-250-30-250-500-1000-784          (code layer of 30 linear)
 * logistic hidden units, logistic outputs with cross-entropy.
 *
 * For each it times (median of repeated runs) one loss+gradient, one Gauss-Newton product after
 * gv_begin, and the bare matrix products a loss+gradient needs (the same gemm shapes through
 * mom__gemm, in this process), and prints the ratios against the goals:
 *   loss+grad <= 1.10 x bare gemms,   G v <= 1.5 x loss+grad.
 * The ratios use the medians; the fastest run of each is printed too (on a shared machine other
 * processes only ever add time). Run with OPENBLAS_NUM_THREADS set to the thread count to measure.
 * Usage: bench_ffnet [repetitions]   (default 31)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mominit/mominit.h"
#include "../lib/blas.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct bench_result {
    double lg, gv, bare, fwd_bare;
} bench_result;

static int run(const char *name, size_t L, const size_t *sizes, size_t code_layer, int reps)
{
    const size_t n = 200;
    int acts[16];
    for (size_t l = 0; l + 1 < L; l++)
        acts[l] = (l + 1 == code_layer) ? MOM_ACT_LINEAR : MOM_ACT_LOGISTIC;
    mom_net *net;
    mom_rng *rng;
    if (mom_net_create_ff(&net, L, sizes, acts, MOM_OUT_LOGISTIC_XENT, NULL) != MOM_OK ||
        mom_rng_create(&rng, 2013, 0, NULL) != MOM_OK) {
        fprintf(stderr, "%s: cannot create the network\n", name);
        return 1;
    }
    size_t P = mom_net_num_params(net);
    float *x = malloc(n * sizes[0] * sizeof *x);
    float *g = malloc(P * sizeof *g), *v = malloc(P * sizeof *v), *gv = malloc(P * sizeof *gv);
    size_t maxw = 0;
    for (size_t l = 0; l <= L; l++)
        maxw = sizes[l] > maxw ? sizes[l] : maxw;
    /* buffers for the bare gemms: activations per layer and two delta buffers */
    float **act = malloc((L + 1) * sizeof *act);
    float *d0 = malloc(n * maxw * sizeof *d0), *d1 = malloc(n * maxw * sizeof *d1);
    float *gw = malloc(P * sizeof *gw);
    if (!x || !g || !v || !gv || !act || !d0 || !d1 || !gw ||
        mom_init_preset_ff(net, 2013) != MOM_OK) {
        fprintf(stderr, "%s: out of memory\n", name);
        return 1;
    }
    /* pixel-like inputs in [0,1), the autoencoder target is the input itself */
    if (mom_rng_fill_uniform(rng, x, n * sizes[0], 0.0, 1.0) != MOM_OK ||
        mom_rng_fill_normal(rng, v, P, 0.0, 1e-2) != MOM_OK)
        return 1;
    act[0] = x;
    for (size_t l = 1; l <= L; l++) {
        act[l] = malloc(n * sizes[l] * sizeof(float));
        if (!act[l])
            return 1;
        for (size_t i = 0; i < n * sizes[l]; i++)
            act[l][i] = 0.5f;
    }
    for (size_t i = 0; i < n * maxw; i++)
        d0[i] = d1[i] = 1e-3f;
    mom_batch batch = {n, 1, x, x, NULL, NULL};
    const float *p = mom_net_params(net);

    double *t_lg = malloc((size_t)reps * sizeof(double));
    double *t_gv = malloc((size_t)reps * sizeof(double));
    double *t_bare = malloc((size_t)reps * sizeof(double));
    double *t_fwd = malloc((size_t)reps * sizeof(double));
    double loss = 0;
    if (mom_net_loss_grad(&loss, g, net, &batch, NULL) != MOM_OK ||
        mom_net_gv_begin(net, &batch, NULL) != MOM_OK || mom_net_gv(gv, net, v, 0) != MOM_OK) {
        fprintf(stderr, "%s: %s\n", name, mom_net_errmsg(net));
        return 1;
    }
    /* interleave the three measurements so that drifts in clock speed hit them alike */
    for (int r = 0; r < reps + 2; r++) {
        double t0 = now_ms();
        if (mom_net_loss_grad(&loss, g, net, &batch, NULL) != MOM_OK)
            return 1;
        double t1 = now_ms();
        if (mom_net_gv(gv, net, v, 0) != MOM_OK)
            return 1;
        double t2 = now_ms();
        /* the gemms of one loss+gradient: forward, then dW and the propagated deltas */
        size_t off = 0;
        for (size_t l = 1; l <= L; l++) {
            mom__gemm(0, 1, n, sizes[l], sizes[l - 1], 1.0f, act[l - 1], sizes[l - 1], p + off,
                      sizes[l - 1], 0.0f, act[l], sizes[l]);
            off += sizes[l] * sizes[l - 1] + sizes[l];
        }
        double t3 = now_ms();
        for (size_t l = L; l >= 1; l--) {
            off -= sizes[l] * sizes[l - 1] + sizes[l];
            mom__gemm(1, 0, sizes[l], sizes[l - 1], n, 1.0f, d0, sizes[l], act[l - 1],
                      sizes[l - 1], 0.0f, gw + off, sizes[l - 1]);
            if (l > 1)
                mom__gemm(0, 0, n, sizes[l - 1], sizes[l], 1.0f, d0, sizes[l], p + off,
                          sizes[l - 1], 0.0f, d1, sizes[l - 1]);
        }
        double t4 = now_ms();
        if (r >= 2) { /* two warm-up rounds */
            t_lg[r - 2] = t1 - t0;
            t_gv[r - 2] = t2 - t1;
            t_bare[r - 2] = t4 - t2;
            t_fwd[r - 2] = t3 - t2;
        }
    }
    double lg = median(t_lg, reps), gvm = median(t_gv, reps), bare = median(t_bare, reps);
    double fwd = median(t_fwd, reps);
    /* after median() sorted them, element 0 is the fastest run: a load-free estimate on a
     * shared machine, where other processes only ever add time */
    double lg_min = t_lg[0], gv_min = t_gv[0], bare_min = t_bare[0];
    printf("%-6s P=%zu batch=%zu loss=%.3f\n", name, P, n, loss);
    printf("  bare gemms      %8.3f ms  (forward %.3f ms)\n", bare, fwd);
    printf("  loss+grad       %8.3f ms  ratio to bare gemms %.3f  (goal <= 1.10: %s)\n", lg,
           lg / bare, lg / bare <= 1.10 ? "met" : "MISSED");
    printf("  G v             %8.3f ms  ratio to loss+grad  %.3f  (goal <= 1.50: %s)\n", gvm,
           gvm / lg, gvm / lg <= 1.5 ? "met" : "MISSED");
    printf("  fastest runs: bare %.3f, loss+grad %.3f (ratio %.3f), G v %.3f ms (ratio %.3f)\n",
           bare_min, lg_min, lg_min / bare_min, gv_min, gv_min / lg_min);
    for (size_t l = 1; l <= L; l++)
        free(act[l]);
    free(act);
    free(t_lg);
    free(t_gv);
    free(t_bare);
    free(t_fwd);
    free(x);
    free(g);
    free(v);
    free(gv);
    free(d0);
    free(d1);
    free(gw);
    mom_rng_destroy(rng);
    mom_net_destroy(net);
    return 0;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 31;
    if (reps < 1)
        reps = 1;
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    printf("bench_ffnet: median of %d runs, OPENBLAS_NUM_THREADS=%s\n", reps,
           threads ? threads : "(unset)");
    static const size_t curves[] = {784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784};
    static const size_t mnist[] = {784, 1000, 500, 250, 30, 250, 500, 1000, 784};
    int rc = run("CURVES", 12, curves, 6, reps);
    rc |= run("MNIST", 8, mnist, 4, reps);
    return rc;
}
