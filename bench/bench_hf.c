/*
 * Benchmark of HF's inner loop: the time of one CG iteration (one Gauss-Newton product G v plus
 * the CG vector updates, inside a real HF step) relative to one loss+gradient evaluation on the
 * same batch, for
 *   the CURVES autoencoder 784-400-200-100-50-25-6-25-50-100-200-400-784 (logistic hidden units,
 *     linear code layer, logistic outputs with cross-entropy; sparse initialization), gradient and
 *     curvature batches of 200 random images in [0, 1];
 *   the addition RNN 2-100-1 (tanh hidden units, linear output, squared error at the last step;
 *     the paper's initialization), T = 80, 100 sequences, structural damping on.
 * Goal: one CG iteration <= 1.5 x one loss+gradient.
 *
 * The CG iteration is measured honestly in situ: HF steps with exactly K1 and K2 CG iterations
 * (MOM_OPTIM_HF_FIXED_CG; line search, CG-backtracking and lambda adaptation off, so a step is
 * gradient + preconditioner + gv_begin + K products + one loss) are timed from the same starting
 * point, and (T(K2) - T(K1)) / (K2 - K1) is the cost of one iteration. The bare product
 * (mom_net_gv() alone) is printed too, so the CG vector work is visible as the difference.
 * Medians of repeated runs; the fastest are printed too (other processes only ever add time).
 * Run with OPENBLAS_NUM_THREADS set to the thread count to measure.
 * Usage: bench_hf [repetitions]   (default 7)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mominit/mominit.h"

#define K1 5
#define K2 45

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

static double minimum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

#define CHECK(expr)                                                                            \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (rc_ != MOM_OK) {                                                                   \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,               \
                    mom_strerror(rc_));                                                        \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

/* One HF step with exactly k CG iterations from the saved parameters; returns its time. */
static double timed_step(mom_optim *opt, mom_net *net, const mom_batch *b, const float *start,
                         size_t n, int k, int *ok)
{
    memcpy(mom_net_params(net), start, n * sizeof *start);
    *ok = mom_optim_reset(opt) == MOM_OK && mom_optim_set(opt, MOM_OPTIM_HF_FIXED_CG, k) == MOM_OK;
    double t0 = now_ms();
    int rc = mom_optim_step_hf(NULL, opt, net, b, NULL);
    double t = now_ms() - t0;
    if (rc != MOM_OK) {
        fprintf(stderr, "HF step failed: %s (%s)\n", mom_strerror(rc), mom_optim_errmsg(opt));
        *ok = 0;
    }
    double it = -1;
    if (mom_optim_get(&it, opt, MOM_OPTIM_HF_LAST_CG_ITERS) != MOM_OK || it != (double)k) {
        fprintf(stderr, "expected %d CG iterations, got %g\n", k, it);
        *ok = 0;
    }
    return t;
}

/* Times loss+gradient, the bare product and one CG iteration on `net` with batch `b`. */
static int measure(const char *name, mom_net *net, const mom_batch *b, int reps)
{
    const size_t n = mom_net_num_params(net);
    float *grad = malloc(n * sizeof *grad), *v = malloc(n * sizeof *v),
          *out = malloc(n * sizeof *out), *start = malloc(n * sizeof *start);
    const size_t nr = (size_t)reps;
    double *t_lg = malloc(sizeof(double) * nr), *t_gv = malloc(sizeof(double) * nr),
           *t_cg = malloc(sizeof(double) * nr), *t_cgv = malloc(sizeof(double) * nr);
    mom_optim *opt = NULL;
    mom_rng *rng = NULL;
    int status = 1;
    if (!grad || !v || !out || !start || !t_lg || !t_gv || !t_cg || !t_cgv)
        goto fail;
    memcpy(start, mom_net_params(net), n * sizeof *start);
    CHECK(mom_rng_create(&rng, 3, 0, NULL));
    CHECK(mom_rng_fill_normal(rng, v, n, 0.0, 1e-3));
    const int rnn = mom_net_kind_of(net) == MOM_NET_RECURRENT;
    const double sd = rnn ? 0.03 : 0.0; /* mu_s * lambda with the defaults */

    CHECK(mom_optim_create(&opt, MOM_OPTIM_HF, n, NULL));
    CHECK(mom_optim_set(opt, MOM_OPTIM_HF_LINE_SEARCH, 0));
    CHECK(mom_optim_set(opt, MOM_OPTIM_HF_CG_BACKTRACK, 0));
    CHECK(mom_optim_set(opt, MOM_OPTIM_HF_ADAPT_LAMBDA, 0));
    CHECK(mom_optim_set(opt, MOM_OPTIM_HF_MAX_CG, K2));

    /* warm up: workspaces, first-step allocations, caches */
    double loss;
    int ok;
    CHECK(mom_net_loss_grad(&loss, grad, net, b, NULL));
    (void)timed_step(opt, net, b, start, n, K1, &ok);
    if (!ok)
        goto fail;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        CHECK(mom_net_loss_grad(&loss, grad, net, b, NULL));
        t_lg[r] = now_ms() - t0;
        CHECK(mom_net_gv_begin(net, b, NULL));
        t0 = now_ms();
        CHECK(mom_net_gv(out, net, v, sd));
        t_gv[r] = now_ms() - t0;
        double a = timed_step(opt, net, b, start, n, K1, &ok);
        if (!ok)
            goto fail;
        double c = timed_step(opt, net, b, start, n, K2, &ok);
        if (!ok)
            goto fail;
        t_cg[r] = (c - a) / (K2 - K1);
    }
    /* the bare product on a CG direction of the real run (its scale differs from v's) */
    double t_gvx = 0;
    {
        (void)timed_step(opt, net, b, start, n, K2, &ok);
        if (!ok)
            goto fail;
        memcpy(v, mom_optim_velocity(opt), n * sizeof *v);
        memcpy(mom_net_params(net), start, n * sizeof *start);
        CHECK(mom_net_gv_begin(net, b, NULL));
        for (int r = 0; r < reps; r++) {
            double t0 = now_ms();
            CHECK(mom_net_gv(out, net, v, sd));
            t_cgv[r] = now_ms() - t0;
        }
        t_gvx = median(t_cgv, reps);
    }
    memcpy(mom_net_params(net), start, n * sizeof *start);
    double f_lg = minimum(t_lg, reps), f_gv = minimum(t_gv, reps), f_cg = minimum(t_cg, reps);
    double m_lg = median(t_lg, reps), m_gv = median(t_gv, reps), m_cg = median(t_cg, reps);
    double ratio = m_cg / m_lg;
    printf("%s P=%zu\n", name, n);
    printf("  loss+grad         %9.3f ms\n", m_lg);
    printf("  G v (bare)        %9.3f ms  ratio to loss+grad %.3f\n", m_gv, m_gv / m_lg);
    printf("  G v (bare, on the CG solution) %.3f ms\n", t_gvx);
    printf("  CG iteration      %9.3f ms  ratio to loss+grad %.3f  (goal <= 1.50: %s)\n", m_cg,
           ratio, ratio <= 1.5 ? "met" : "MISSED");
    printf("  fastest runs: loss+grad %.3f, G v %.3f, CG iteration %.3f ms (ratio %.3f)\n", f_lg,
           f_gv, f_cg, f_cg / f_lg);
    status = 0;
fail:
    mom_optim_destroy(opt);
    mom_rng_destroy(rng);
    free(grad);
    free(v);
    free(out);
    free(start);
    free(t_lg);
    free(t_gv);
    free(t_cg);
    free(t_cgv);
    return status;
}

static int bench_curves(int reps)
{
    const size_t sizes[] = {784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784};
    const size_t L = 12, batch = 200;
    int acts[11];
    for (size_t l = 0; l + 1 < L; l++)
        acts[l] = l + 1 == 6 ? MOM_ACT_LINEAR : MOM_ACT_LOGISTIC;
    mom_net *net = NULL;
    mom_rng *rng = NULL;
    float *x = malloc(sizeof(float) * batch * 784);
    int status = 1;
    if (x == NULL)
        goto fail;
    CHECK(mom_net_create_ff(&net, L, sizes, acts, MOM_OUT_LOGISTIC_XENT, NULL));
    CHECK(mom_rng_create(&rng, 1, 0, NULL));
    if (mom_init_preset_ff(net, 1) != MOM_OK)
        goto fail;
    CHECK(mom_rng_fill_uniform(rng, x, batch * 784, 0.0, 1.0));
    mom_batch b = {0};
    b.n = batch;
    b.inputs = x;
    b.targets = x;
    status = measure("CURVES autoencoder, batch 200 (gradient and curvature)", net, &b, reps);
fail:
    mom_net_destroy(net);
    mom_rng_destroy(rng);
    free(x);
    return status;
}

static int bench_addition(int reps)
{
    const size_t T = 80, n = 100;
    mom_net *net = NULL;
    mom_rng *rng = NULL;
    float *x = calloc(T * n * 2, sizeof *x), *y = calloc(T * n, sizeof *y);
    int status = 1;
    if (x == NULL || y == NULL)
        goto fail;
    CHECK(mom_rng_create(&rng, 2, 0, NULL));
    /* addition task: values in channel 0, two markers in channel 1, target the mean at the end */
    for (size_t s = 0; s < n; s++) {
        size_t a = (size_t)mom_rng_below(rng, T / 10);
        size_t c = T / 10 + (size_t)mom_rng_below(rng, T * 4 / 10);
        double va = 0, vc = 0;
        for (size_t t = 0; t < T; t++) {
            float u = mom_rng_uniformf(rng);
            x[(t * n + s) * 2] = u;
            if (t == a || t == c) {
                x[(t * n + s) * 2 + 1] = 1.0f;
                if (t == a)
                    va = u;
                else
                    vc = u;
            }
        }
        y[(T - 1) * n + s] = (float)(0.5 * (va + vc));
    }
    CHECK(mom_net_create_rnn(&net, 2, 100, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, NULL));
    mom_batch b = {0};
    b.n = n;
    b.steps = T;
    b.inputs = x;
    b.targets = y;
    CHECK(mom_init_preset_rnn(net, 0.001, 7, &b));
    status = measure("addition RNN 2-100-1, T = 80, 100 sequences, structural damping", net, &b,
                     reps);
fail:
    mom_net_destroy(net);
    mom_rng_destroy(rng);
    free(x);
    free(y);
    return status;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    if (reps < 1)
        reps = 1;
    const char *th = getenv("OPENBLAS_NUM_THREADS");
    printf("bench_hf: median of %d runs, CG iteration from HF steps of %d and %d iterations, "
           "OPENBLAS_NUM_THREADS=%s\n", reps, K1, K2, th ? th : "(unset)");
    int s1 = bench_curves(reps);
    int s2 = bench_addition(reps);
    return s1 || s2;
}
