/* Shared benchmark helpers; see benchutil.h. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "benchutil.h"
#include "lib/blas.h"
#include "lib/net_internal.h" /* mom__rnn_groups(), the thread team */

#ifdef MOM_BENCH_HAVE_DATA
#include "data.h" /* examples/data.h: the CURVES generator and the IDX reader */
#endif

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

double bu_wall_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
double bu_cpu_ms(void) { return clock_ms(CLOCK_PROCESS_CPUTIME_ID); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bu_median(double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A "Vm...:" line of /proc/self/status in KiB, or -1. */
static long proc_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

long bu_rss_kb(void) { return proc_status_kb("VmRSS"); }

long bu_peak_rss_kb(void)
{
    long v = proc_status_kb("VmHWM");
    if (v >= 0)
        return v;
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0)
        return -1;
    return u.ru_maxrss;
}

int bu_reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f == NULL)
        return -1;
    int ok = fputs("5", f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

const char *bu_blas_threads(void)
{
    const char *t = getenv("OPENBLAS_NUM_THREADS");
    return t && *t ? t : "unset";
}

int bu_config_get(bu_config *c, const char *name)
{
    memset(c, 0, sizeof *c);
    if (strcmp(name, "curves") == 0 || strcmp(name, "mnist") == 0) {
        static const size_t curves[] = {784, 400, 200, 100, 50, 25, 6};
        static const size_t mnist[] = {784, 1000, 500, 250, 30};
        const int is_curves = name[0] == 'c';
        const size_t *enc = is_curves ? curves : mnist;
        const size_t depth = is_curves ? 6 : 4; /* encoder weight layers */
        c->name = is_curves ? "curves" : "mnist";
        c->n_layers = 2 * depth;
        for (size_t l = 0; l <= depth; l++) {
            c->sizes[l] = enc[l];
            c->sizes[2 * depth - l] = enc[l];
        }
        /* hidden unit layers 1..2*depth-1: logistic, except the code layer `depth` (linear) */
        for (size_t l = 1; l < 2 * depth; l++)
            c->acts[l - 1] = l == depth ? MOM_ACT_LINEAR : MOM_ACT_LOGISTIC;
        c->batch = 200;
        c->lr = 0.005;
        c->mu_max = 0.99;
        return 0;
    }
    if (strcmp(name, "rnn") == 0) {
        c->name = "rnn";
        c->recurrent = 1;
        c->I = 2;
        c->H = 100;
        c->O = 1;
        c->T = 80;
        c->batch = 100;
        c->lr = 1e-4;
        c->mu_max = 0.995;
        return 0;
    }
    return -1;
}

/* Addition task with fixed length T (paper.md section 6): channel 0 ~ U[0,1), channel 1 marks
 * one step in [0, T/10) and one in [T/10, T/2); the target at the last step is the mean of the
 * two marked values. Time-major. */
static void addition_batch(float *x, float *tg, size_t T, size_t n, mom_rng *rng)
{
    memset(x, 0, T * n * 2 * sizeof *x);
    memset(tg, 0, T * n * sizeof *tg);
    for (size_t s = 0; s < n; s++) {
        size_t a = (size_t)mom_rng_below(rng, T / 10);
        size_t b = T / 10 + (size_t)mom_rng_below(rng, T / 2 - T / 10);
        for (size_t t = 0; t < T; t++)
            x[(t * n + s) * 2] = mom_rng_uniformf(rng);
        x[(a * n + s) * 2 + 1] = 1.0f;
        x[(b * n + s) * 2 + 1] = 1.0f;
        tg[(T - 1) * n + s] = 0.5f * (x[(a * n + s) * 2] + x[(b * n + s) * 2]);
    }
}

/* Images for the autoencoders: count * 784 floats in [0, 1]. */
static int ae_images(float *x, size_t count, const char *name, mom_rng *rng, const char **source)
{
#ifdef MOM_BENCH_HAVE_DATA
    dataset d;
    if (strcmp(name, "mnist") == 0) {
        char err[256];
        if (idx_read_images(&d, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                            count, err, sizeof err) == 0) {
            if (d.n == count && d.d == 784) {
                memcpy(x, d.x, count * 784 * sizeof *x);
                dataset_free(&d);
                *source = "fashion-mnist";
                return 0;
            }
            dataset_free(&d);
        }
    }
    if (curves_generate(&d, count, rng) != 0)
        return -1;
    memcpy(x, d.x, count * 784 * sizeof *x);
    dataset_free(&d);
    *source = "curves";
    return 0;
#else
    (void)name;
    *source = "uniform";
    return mom_rng_fill_uniform(rng, x, count * 784, 0.0, 1.0) == MOM_OK ? 0 : -1;
#endif
}

#define TRY(expr)                                                                              \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (rc_ != MOM_OK) {                                                                   \
            fprintf(stderr, "bench: %s failed: %s\n", #expr, mom_strerror(rc_));               \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

int bu_setup_data(bu_setup *s, const char *name, size_t n_batches, unsigned long long seed)
{
    memset(s, 0, sizeof *s);
    if (bu_config_get(&s->cfg, name) != 0) {
        fprintf(stderr, "bench: unknown configuration '%s' (curves, mnist, rnn)\n", name);
        return -1;
    }
    const bu_config *c = &s->cfg;
    mom_rng *rng = NULL;
    s->n_batches = n_batches;
    TRY(mom_rng_create(&rng, seed, 7, NULL));
    if (c->recurrent) {
        s->in_per_batch = c->T * c->batch * c->I;
        s->tg_per_batch = c->T * c->batch * c->O;
        s->inputs = malloc(n_batches * s->in_per_batch * sizeof *s->inputs);
        s->targets = malloc(n_batches * s->tg_per_batch * sizeof *s->targets);
        if (s->inputs == NULL || s->targets == NULL)
            goto nomem;
        for (size_t k = 0; k < n_batches; k++)
            addition_batch(s->inputs + k * s->in_per_batch, s->targets + k * s->tg_per_batch,
                           c->T, c->batch, rng);
        s->data_source = "addition";
    } else {
        s->in_per_batch = c->batch * c->sizes[0];
        s->inputs = malloc(n_batches * s->in_per_batch * sizeof *s->inputs);
        if (s->inputs == NULL)
            goto nomem;
        if (ae_images(s->inputs, n_batches * c->batch, c->name, rng, &s->data_source) != 0)
            goto nomem;
    }
    mom_rng_destroy(rng);
    return 0;
nomem:
    fprintf(stderr, "bench: out of memory\n");
fail:
    mom_rng_destroy(rng);
    bu_setup_destroy(s);
    return -1;
}

int bu_setup_model(bu_setup *s, unsigned long long seed)
{
    const bu_config *c = &s->cfg;
    mom_sched *lr = NULL, *mu = NULL;
    if (c->recurrent) {
        TRY(mom_net_create_rnn(&s->net, c->I, c->H, c->O, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0,
                               NULL));
        mom_batch b0 = bu_batch(s, 0);
        TRY(mom_init_preset_rnn(s->net, 0.001, seed, &b0));
    } else {
        TRY(mom_net_create_ff(&s->net, c->n_layers, c->sizes, c->acts, MOM_OUT_LOGISTIC_XENT,
                              NULL));
        TRY(mom_init_preset_ff(s->net, seed));
    }
    TRY(mom_optim_create(&s->opt, MOM_OPTIM_NAG, mom_net_num_params(s->net), NULL));
    TRY(mom_sched_create_const(&lr, c->lr, NULL));
    TRY(mom_sched_create_paper_momentum(&mu, c->mu_max, 250, NULL));
    TRY(mom_optim_set_lr(s->opt, lr));
    TRY(mom_optim_set_momentum(s->opt, mu));
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);
    return 0;
fail:
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);
    bu_setup_destroy(s);
    return -1;
}

int bu_setup_create(bu_setup *s, const char *name, size_t n_batches, unsigned long long seed)
{
    if (bu_setup_data(s, name, n_batches, seed) != 0)
        return -1;
    return bu_setup_model(s, seed);
}

void bu_setup_destroy(bu_setup *s)
{
    mom_optim_destroy(s->opt);
    mom_net_destroy(s->net);
    free(s->inputs);
    free(s->targets);
    memset(s, 0, sizeof *s);
}

mom_batch bu_batch(const bu_setup *s, size_t k)
{
    k %= s->n_batches;
    const float *x = s->inputs + k * s->in_per_batch;
    if (s->cfg.recurrent) {
        mom_batch b = {s->cfg.batch, s->cfg.T, x, s->targets + k * s->tg_per_batch, NULL, NULL};
        return b;
    }
    mom_batch b = {s->cfg.batch, 1, x, x, NULL, NULL};
    return b;
}

size_t bu_need_bytes(const bu_setup *s, size_t *params, size_t *optim, size_t *acts,
                     size_t *batch)
{
    const bu_config *c = &s->cfg;
    const size_t P = mom_net_num_params(s->net), f = sizeof(float);
    size_t a = 0, bt;
    if (c->recurrent) {
        a = c->T * c->batch * c->H;        /* hidden states of every step */
        bt = s->in_per_batch + s->tg_per_batch;
    } else {
        for (size_t l = 1; l <= c->n_layers; l++)
            a += c->batch * c->sizes[l];   /* every layer's outputs */
        bt = s->in_per_batch;              /* autoencoder: the targets are the inputs */
    }
    if (params)
        *params = P * f;
    if (optim)
        *optim = 3 * P * f;
    if (acts)
        *acts = a * f;
    if (batch)
        *batch = bt * f;
    return (4 * P + a) * f;
}

/* ---- bare products (see benchutil.h) --------------------------------------------------------- */

static float *alloc_fill(bu_bare *b, size_t count, mom_rng *rng, double lo, double hi, int normal)
{
    float *a = malloc(count * sizeof *a);
    if (a == NULL)
        return NULL;
    int rc = normal ? mom_rng_fill_normal(rng, a, count, lo, hi)
                    : mom_rng_fill_uniform(rng, a, count, lo, hi);
    if (rc != MOM_OK) {
        free(a);
        return NULL;
    }
    b->bytes += count * sizeof *a;
    return a;
}

int bu_bare_init(bu_bare *b, const bu_setup *s)
{
    memset(b, 0, sizeof *b);
    const bu_config *c = &s->cfg;
    const size_t P = mom_net_num_params(s->net), n = c->batch;
    mom_rng *rng;
    if (mom_rng_create(&rng, 99, 0, NULL) != MOM_OK)
        return -1;
    b->c = c;
    b->p = mom_net_params(s->net);
    /* the network's own helper threads: a second team would keep a second helper spinning
     * beside the network's between jobs, and each would slow the other down */
    b->team = &s->net->team;
    b->x = s->inputs;
    b->v = alloc_fill(b, P, rng, 0.0, 1e-3, 1);
    b->g = alloc_fill(b, P, rng, 0.0, 1e-3, 1);
    int ok = b->v && b->g;
    if (c->recurrent) {
        const size_t cells = c->T * n;
        b->hs = alloc_fill(b, cells * c->H, rng, -0.5, 0.5, 0);
        b->ds = alloc_fill(b, (cells + n) * c->H, rng, 0.0, 1e-3, 1);
        b->z = alloc_fill(b, n * c->O, rng, 0.0, 1e-3, 1);
        b->wt = alloc_fill(b, c->H * c->H, rng, 0.0, 0.1, 1);
        ok = ok && b->hs && b->ds && b->z && b->wt;
    } else {
        size_t maxw = 0, off = 0;
        for (size_t l = 1; l <= c->n_layers; l++) {
            b->act[l] = alloc_fill(b, n * c->sizes[l], rng, 0.0, 1.0, 0);
            ok = ok && b->act[l];
            b->off[l] = off;
            off += c->sizes[l] * c->sizes[l - 1] + c->sizes[l];
            maxw = c->sizes[l] > maxw ? c->sizes[l] : maxw;
        }
        b->d0 = alloc_fill(b, n * maxw, rng, 0.0, 1e-3, 1);
        b->d1 = alloc_fill(b, n * maxw, rng, 0.0, 1e-3, 1);
        ok = ok && b->d0 && b->d1;
    }
    mom_rng_destroy(rng);
    return ok ? 0 : -1;
}

void bu_bare_free(bu_bare *b)
{
    free(b->v);
    free(b->g);
    for (size_t l = 0; l < 17; l++)
        free(b->act[l]);
    free(b->d0);
    free(b->d1);
    free(b->hs);
    free(b->ds);
    free(b->z);
    free(b->wt);
}

/* Feedforward: gv = 0, the products of one loss + gradient (forward A_l = A_{l-1} W_l^T, then
 * dW_l = D_l^T A_{l-1} and D_{l-1} = D_l W_l); gv = 1, those of one Gauss-Newton product (the
 * R-pass R_l = A_{l-1} V_l^T + R_{l-1} W_l^T on cached activations, then the same backward). */
static void bare_ff(const bu_bare *b, int gv)
{
    const bu_config *c = b->c;
    const size_t n = c->batch, L = c->n_layers;
    for (size_t l = 1; l <= L; l++) {
        size_t si = c->sizes[l - 1], so = c->sizes[l];
        const float *prev = l > 1 ? b->act[l - 1] : b->x;
        if (!gv) {
            mom__gemm(0, 1, n, so, si, 1.0f, prev, si, b->p + b->off[l], si, 0.0f, b->act[l], so);
        } else {
            mom__gemm(0, 1, n, so, si, 1.0f, prev, si, b->v + b->off[l], si, 0.0f, b->d1, so);
            if (l > 1)
                mom__gemm(0, 1, n, so, si, 1.0f, b->d0, si, b->p + b->off[l], si, 1.0f, b->d1,
                          so);
        }
    }
    for (size_t l = L; l >= 1; l--) {
        size_t si = c->sizes[l - 1], so = c->sizes[l];
        const float *prev = l > 1 ? b->act[l - 1] : b->x;
        mom__gemm(1, 0, so, si, n, 1.0f, b->d0, so, prev, si, 0.0f, b->g + b->off[l], si);
        if (l > 1)
            mom__gemm(0, 0, n, si, so, 1.0f, b->d0, so, b->p + b->off[l], si, 0.0f, b->d1, si);
        if (b->after_grad != NULL && !gv)
            b->after_grad(b->ctx, b->off[l], so * si + so);
    }
}

/* The per-step products of the recurrence, cut into rnn.c's groups of sequences and run as the
 * parts of a job of the library's own thread team (team.h), as rnn.c runs them: side by side on
 * the network's threads when the BLAS has several. */
typedef struct rnn_job {
    const bu_bare *b;
    size_t t0, t1, K; /* backward: the chunk [t0, t1) and the chunk length */
    float beta;       /* forward: 1 when the input projection was a product */
} rnn_job;

static void rnn_fwd_part(void *arg, size_t part, size_t parts)
{
    const rnn_job *j = arg;
    const bu_config *c = j->b->c;
    const size_t n = c->batch, H = c->H, nH = n * H;
    size_t s0, s1;
    mom__rnn_group_rows(n, part, parts, &s0, &s1);
    float *hs = j->b->hs + s0 * H;
    for (size_t t = 1; t < c->T; t++)
        mom__gemm(0, 0, s1 - s0, H, H, 1.0f, hs + (t - 1) * nH, H, j->b->wt, H, j->beta,
                  hs + t * nH, H);
}

static void rnn_bwd_part(void *arg, size_t part, size_t parts)
{
    const rnn_job *j = arg;
    const bu_config *c = j->b->c;
    const size_t n = c->batch, T = c->T, I = c->I, H = c->H, nH = n * H, K = j->K;
    const float *w_hh = j->b->p + H * I;
    size_t s0, s1;
    mom__rnn_group_rows(n, part, parts, &s0, &s1);
    float *ds = j->b->ds + s0 * H;
    for (size_t t = j->t1; t-- > j->t0;)
        if (t + 1 < j->t1)
            mom__gemm(0, 0, s1 - s0, H, H, 1.0f, ds + (t + 1 - j->t0) * nH, H, w_hh, H, 0.0f,
                      ds + (t - j->t0) * nH, H);
        else if (t + 1 < T)
            mom__gemm(0, 0, s1 - s0, H, H, 1.0f, ds + K * nH, H, w_hh, H, 0.0f,
                      ds + (t - j->t0) * nH, H);
}

/* Recurrent (rnn.c's shapes): the input projection of all steps as one product (with more than 16
 * inputs), the recurrence
 * one product per step and group of sequences (forward with a transposed copy of W_hh), the
 * output layer on the counted rows (the last step), BPTT one product per step and group, and the
 * weight gradients of W_vh and W_hh one product each per chunk of K steps (K as rnn.c chooses
 * it: about 64 Ki floats of deltas, which stay in cache), or over all steps at once when gv = 1
 * (the Gauss-Newton product keeps every step's deltas). gv = 1 adds the R-pass's extra products.
 * The groups run on the library's thread team, as in rnn.c. */
static void bare_rnn(const bu_bare *b, int gv)
{
    const bu_config *c = b->c;
    const size_t n = c->batch, T = c->T, I = c->I, H = c->H, O = c->O, nH = n * H;
    const float *w_vh = b->p, *w_hh = w_vh + H * I, *w_ho = w_hh + H * H + H;
    float *g_vh = b->g, *g_hh = g_vh + H * I, *g_ho = g_hh + H * H + H;
    float *hs = b->hs, *ds = b->ds, *z = b->z;
    mom__team *team = b->team;
    const size_t parts = mom__rnn_groups(n, H, T);
    /* the input projection is a product only with many inputs (rnn.c adds x W_vh^T inside its
     * per-step pass when I <= 16: I multiply-adds per hidden value, elementwise work) */
    const int fuse = I <= 16;
    if (!fuse)
        mom__gemm(0, 1, T * n, H, I, 1.0f, b->x, I, w_vh, I, 0.0f, hs, H);
    if (gv)
        mom__gemm(0, 1, (T - 1) * n, H, H, 1.0f, hs, H, w_hh, H, fuse ? 0.0f : 1.0f, hs + nH, H);
    rnn_job j = {.b = b, .beta = fuse ? 0.0f : 1.0f};
    mom__team_run(team, rnn_fwd_part, &j, parts);
    const float *hl = hs + (T - 1) * nH;
    mom__gemm(0, 1, n, O, H, 1.0f, hl, H, w_ho, H, 0.0f, z, O);
    if (gv)
        mom__gemm(0, 1, n, O, H, 1.0f, hl, H, w_ho, H, 1.0f, z, O);
    mom__gemm(1, 0, O, H, n, 1.0f, z, O, hl, H, 0.0f, g_ho, H);
    size_t K = gv ? T : ((size_t)1 << 16) / nH;
    K = K < 1 ? 1 : (K > T ? T : K);
    /* deltas: chunk slot t - t0 of ds (gv: slot t); the last step's from the output layer */
    const size_t last0 = (T - 1) / K * K;
    mom__gemm(0, 0, n, H, O, 1.0f, z, O, w_ho, H, 0.0f, ds + (T - 1 - last0) * nH, H);
    for (size_t c0 = last0 + K; c0 >= K; c0 -= K) {
        const size_t t0 = c0 - K, t1 = t0 + K < T ? t0 + K : T;
        j.t0 = t0;
        j.t1 = t1;
        j.K = K;
        mom__team_run(team, rnn_bwd_part, &j, parts);
        const size_t nr = (t1 - t0) * n, skip = t0 == 0 ? n : 0;
        mom__gemm(1, 0, H, I, nr, 1.0f, ds, H, b->x + t0 * n * I, I, 0.0f, g_vh, I);
        mom__gemm(1, 0, H, H, nr - skip, 1.0f, ds + skip * H, H, hs + (t0 * n + skip - n) * H, H,
                  0.0f, g_hh, H);
    }
}

void bu_bare_run(const bu_bare *b, int gv)
{
    if (b->c->recurrent)
        bare_rnn(b, gv);
    else
        bare_ff(b, gv);
}

