/* Tests of the recurrent network (lib/rnn.c) against a double-precision reference RNN written
 * here from the definitions in net.h: loss, BPTT gradient, Gauss-Newton products (with and
 * without structural damping), forward passes, metrics, workspace reuse and failure paths. */
#include "testutil.h"
#include "../lib/net_internal.h"

/* ---------------------------------------------------------------------------------------------
 * Reference network in double */

typedef struct tnet {
    size_t I, H, O;
    int act, out, h0;
    size_t P, o_vh, o_hh, o_bh, o_ho, o_bo, o_h0;
} tnet;

static void tnet_init(tnet *t, size_t I, size_t H, size_t O, int act, int out, int h0)
{
    t->I = I;
    t->H = H;
    t->O = O;
    t->act = act;
    t->out = out;
    t->h0 = h0;
    t->o_vh = 0;
    t->o_hh = t->o_vh + H * I;
    t->o_bh = t->o_hh + H * H;
    t->o_ho = t->o_bh + H;
    t->o_bo = t->o_ho + O * H;
    t->o_h0 = t->o_bo + O;
    t->P = t->o_h0 + (h0 ? H : 0);
}

static double ref_act(int act, double x)
{
    switch (act) {
    case MOM_ACT_LOGISTIC: return 1.0 / (1.0 + exp(-x));
    case MOM_ACT_TANH: return tanh(x);
    case MOM_ACT_RELU: return x > 0 ? x : 0;
    default: return x;
    }
}

/* derivative of act at pre-activation x */
static double ref_dact(int act, double x)
{
    switch (act) {
    case MOM_ACT_LOGISTIC: { double y = ref_act(act, x); return y * (1 - y); }
    case MOM_ACT_TANH: { double y = tanh(x); return 1 - y * y; }
    case MOM_ACT_RELU: return x > 0 ? 1 : 0;
    default: return 1;
    }
}

/* structural-damping D'' through h (rnn.c documents these) */
static double ref_dpp(int act, double h)
{
    switch (act) {
    case MOM_ACT_LOGISTIC: return h * (1 - h);
    case MOM_ACT_TANH: return 0.25 * (1 - h * h);
    case MOM_ACT_RELU: return h > 0 ? 1 : 0;
    default: return 1;
    }
}

static size_t ref_len(const mom_batch *b, size_t s) { return b->lengths ? b->lengths[s] : b->steps; }

static double ref_weight(const mom_batch *b, size_t t, size_t s)
{
    size_t len = ref_len(b, s);
    if (t >= len)
        return 0;
    if (b->mask)
        return b->mask[t * b->n + s];
    return t + 1 == len ? 1 : 0;
}

/* per-row loss of pre-activations z against targets tg; y receives the outputs */
static double ref_row_loss(int out, const double *z, const float *tg, double *y, size_t O)
{
    double l = 0;
    if (out == MOM_OUT_LINEAR_SQUARED) {
        for (size_t k = 0; k < O; k++) {
            y[k] = z[k];
            if (tg) l += 0.5 * (z[k] - tg[k]) * (z[k] - tg[k]);
        }
    } else if (out == MOM_OUT_LOGISTIC_XENT) {
        for (size_t k = 0; k < O; k++) {
            y[k] = 1 / (1 + exp(-z[k]));
            /* -(t log y + (1-t) log(1-y)) written without cancellation */
            if (tg) l += (z[k] > 0 ? z[k] : 0) - z[k] * tg[k] + log1p(exp(-fabs(z[k])));
        }
    } else {
        double mx = z[0], sum = 0;
        for (size_t k = 1; k < O; k++) mx = z[k] > mx ? z[k] : mx;
        for (size_t k = 0; k < O; k++) sum += exp(z[k] - mx);
        for (size_t k = 0; k < O; k++) {
            y[k] = exp(z[k] - mx) / sum;
            if (tg) l += tg[k] * (mx + log(sum) - z[k]);
        }
    }
    return l;
}

/* Forward pass of the reference. Returns the mean loss (targets needed unless NULL). Optional
 * outputs (T x n x width, 0 past a sequence's length): S hidden pre-activations, Hh hidden
 * states, Z output pre-activations, Y outputs. */
static double ref_forward(const tnet *R, const double *th, const mom_batch *b, double *S,
                          double *Hh, double *Z, double *Y)
{
    const size_t n = b->n, T = b->steps, I = R->I, H = R->H, O = R->O;
    double hp[64], h[64], s[64], z[64], y[64];
    assert_true(H <= 64 && O <= 64);
    double total = 0;
    for (size_t q = 0; q < n; q++) {
        for (size_t j = 0; j < H; j++)
            hp[j] = R->h0 ? th[R->o_h0 + j] : 0;
        size_t len = ref_len(b, q);
        for (size_t t = 0; t < T; t++) {
            size_t row = t * n + q;
            if (t >= len) {
                if (S) memset(S + row * H, 0, H * sizeof *S);
                if (Hh) memset(Hh + row * H, 0, H * sizeof *Hh);
                if (Z) memset(Z + row * O, 0, O * sizeof *Z);
                if (Y) memset(Y + row * O, 0, O * sizeof *Y);
                continue;
            }
            const float *x = b->inputs + row * I;
            for (size_t j = 0; j < H; j++) {
                double a = th[R->o_bh + j];
                for (size_t i = 0; i < I; i++) a += th[R->o_vh + j * I + i] * x[i];
                for (size_t i = 0; i < H; i++) a += th[R->o_hh + j * H + i] * hp[i];
                s[j] = a;
                h[j] = ref_act(R->act, a);
            }
            for (size_t k = 0; k < O; k++) {
                double a = th[R->o_bo + k];
                for (size_t j = 0; j < H; j++) a += th[R->o_ho + k * H + j] * h[j];
                z[k] = a;
            }
            const float *tg = b->targets ? b->targets + row * O : NULL;
            double l = ref_row_loss(R->out, z, tg, y, O);
            double w = ref_weight(b, t, q);
            if (w != 0) total += w * l;
            if (S) memcpy(S + row * H, s, H * sizeof *S);
            if (Hh) memcpy(Hh + row * H, h, H * sizeof *Hh);
            if (Z) memcpy(Z + row * O, z, O * sizeof *Z);
            if (Y) memcpy(Y + row * O, y, O * sizeof *Y);
            memcpy(hp, h, H * sizeof *hp);
        }
    }
    return total / (double)n;
}

/* Reference BPTT in double (the gradient of ref_forward's loss). */
static void ref_grad(const tnet *R, const double *th, const mom_batch *b, double *g)
{
    const size_t n = b->n, T = b->steps, I = R->I, H = R->H, O = R->O;
    double *S = calloc(T * n * H, sizeof *S), *Hh = calloc(T * n * H, sizeof *Hh);
    double *Y = calloc(T * n * O, sizeof *Y);
    ref_forward(R, th, b, S, Hh, NULL, Y);
    memset(g, 0, R->P * sizeof *g);
    for (size_t q = 0; q < n; q++) {
        double dsn[64] = {0}, dh[64], ds[64], dz[64];
        size_t len = ref_len(b, q);
        for (size_t t = len; t-- > 0;) {
            size_t row = t * n + q;
            double w = ref_weight(b, t, q) / (double)n;
            for (size_t k = 0; k < O; k++) {
                dz[k] = w * (Y[row * O + k] - b->targets[row * O + k]);
                g[R->o_bo + k] += dz[k];
                for (size_t j = 0; j < H; j++) g[R->o_ho + k * H + j] += dz[k] * Hh[row * H + j];
            }
            for (size_t j = 0; j < H; j++) {
                double a = 0;
                for (size_t k = 0; k < O; k++) a += th[R->o_ho + k * H + j] * dz[k];
                for (size_t i = 0; i < H; i++) a += th[R->o_hh + i * H + j] * dsn[i];
                dh[j] = a;
            }
            for (size_t j = 0; j < H; j++) {
                ds[j] = dh[j] * ref_dact(R->act, S[row * H + j]);
                g[R->o_bh + j] += ds[j];
                for (size_t i = 0; i < I; i++) g[R->o_vh + j * I + i] += ds[j] * b->inputs[row * I + i];
                for (size_t i = 0; i < H; i++) {
                    double hp = t > 0 ? Hh[(row - n) * H + i] : (R->h0 ? th[R->o_h0 + i] : 0);
                    g[R->o_hh + j * H + i] += ds[j] * hp;
                }
            }
            memcpy(dsn, ds, sizeof ds);
        }
        if (R->h0)
            for (size_t i = 0; i < H; i++) {
                double a = 0;
                for (size_t j = 0; j < H; j++) a += th[R->o_hh + j * H + i] * dsn[j];
                g[R->o_h0 + i] += a;
            }
    }
    free(S);
    free(Hh);
    free(Y);
}

/* ---------------------------------------------------------------------------------------------
 * Test data */

typedef struct tdata {
    size_t n, T, I, O;
    float *x, *t, *mask;
    size_t *len;
    mom_batch b;
} tdata;

enum { MASK_LAST = 0, MASK_ALL = 1, MASK_SPARSE = 2 };

/* Random batch: mask_mode MASK_LAST (mask NULL), MASK_ALL (random positive weight at every step),
 * MASK_SPARSE (about a third of the steps weighted, some weights > 1); unequal: random lengths. */
static void tdata_make(tdata *d, mom_rng *rng, size_t n, size_t T, size_t I, size_t O, int out,
                       int mask_mode, int unequal)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->T = T;
    d->I = I;
    d->O = O;
    d->x = malloc(T * n * I * sizeof *d->x);
    d->t = malloc(T * n * O * sizeof *d->t);
    for (size_t i = 0; i < T * n * I; i++)
        d->x[i] = (float)mom_rng_normal(rng);
    for (size_t r = 0; r < T * n; r++) {
        float *tg = d->t + r * O;
        if (out == MOM_OUT_LINEAR_SQUARED) {
            for (size_t k = 0; k < O; k++) tg[k] = (float)mom_rng_normal(rng);
        } else if (out == MOM_OUT_LOGISTIC_XENT) {
            for (size_t k = 0; k < O; k++) tg[k] = mom_rng_uniformf(rng);
        } else {
            /* a distribution (the matched softmax loss assumes sum t = 1) */
            double sum = 0;
            for (size_t k = 0; k < O; k++) { tg[k] = mom_rng_uniformf(rng) + 0.05f; sum += tg[k]; }
            for (size_t k = 0; k < O; k++) tg[k] = (float)(tg[k] / sum);
        }
    }
    if (mask_mode != MASK_LAST) {
        d->mask = malloc(T * n * sizeof *d->mask);
        for (size_t r = 0; r < T * n; r++) {
            if (mask_mode == MASK_ALL)
                d->mask[r] = 0.25f + mom_rng_uniformf(rng);
            else
                d->mask[r] = mom_rng_uniformf(rng) < 0.33f ? 0.5f + 1.5f * mom_rng_uniformf(rng) : 0.0f;
        }
    }
    if (unequal) {
        d->len = malloc(n * sizeof *d->len);
        for (size_t s = 0; s < n; s++)
            d->len[s] = 1 + (size_t)mom_rng_below(rng, T);
        d->len[0] = T;
        if (n > 1) d->len[1] = 1;
    }
    d->b = (mom_batch){n, T, d->x, d->t, d->mask, d->len};
}

static void tdata_free(tdata *d)
{
    free(d->x);
    free(d->t);
    free(d->mask);
    free(d->len);
}

static void fill_params(mom_net *net, mom_rng *rng, double scale)
{
    float *p = mom_net_params(net);
    for (size_t i = 0; i < mom_net_num_params(net); i++)
        p[i] = (float)(scale * mom_rng_normal(rng));
}

static double *params_double(mom_net *net)
{
    size_t P = mom_net_num_params(net);
    double *th = malloc(P * sizeof *th);
    for (size_t i = 0; i < P; i++)
        th[i] = mom_net_params(net)[i];
    return th;
}

static const int all_outputs[3] = {MOM_OUT_LINEAR_SQUARED, MOM_OUT_LOGISTIC_XENT,
                                   MOM_OUT_SOFTMAX_XENT};
static const int all_acts[4] = {MOM_ACT_TANH, MOM_ACT_LOGISTIC, MOM_ACT_LINEAR, MOM_ACT_RELU};

/* max_i |a_i - b_i| / max(|a_i| + |b_i|, 1e-3 * max_j |b_j|) */
static double max_rel_err(const double *a, const double *b, size_t n)
{
    double mx = 0, err = 0;
    for (size_t i = 0; i < n; i++)
        mx = fabs(b[i]) > mx ? fabs(b[i]) : mx;
    double floor = 1e-3 * mx;
    if (floor < 1e-12) floor = 1e-12;
    for (size_t i = 0; i < n; i++) {
        double den = fabs(a[i]) + fabs(b[i]);
        if (den < floor) den = floor;
        double e = fabs(a[i] - b[i]) / den;
        err = e > err ? e : err;
    }
    return err;
}

/* ---------------------------------------------------------------------------------------------
 * Creation and layout */

static void test_create_blocks(void **state)
{
    (void)state;
    for (int h0 = 0; h0 < 2; h0++) {
        mom_net *net;
        assert_ok(mom_net_create_rnn(&net, 3, 7, 2, MOM_ACT_TANH, MOM_OUT_SOFTMAX_XENT,
                                     h0 ? MOM_RNN_LEARN_H0 : 0, NULL));
        tnet R;
        tnet_init(&R, 3, 7, 2, MOM_ACT_TANH, MOM_OUT_SOFTMAX_XENT, h0);
        assert_int_equal(mom_net_kind_of(net), MOM_NET_RECURRENT);
        assert_int_equal(mom_net_num_params(net), R.P);
        assert_int_equal(mom_net_num_inputs(net), 3);
        assert_int_equal(mom_net_num_outputs(net), 2);
        assert_int_equal(mom_net_output(net), MOM_OUT_SOFTMAX_XENT);
        assert_int_equal(mom_net_num_layers(net), 3);
        assert_int_equal(mom_net_layer_size(net, 0), 3);
        assert_int_equal(mom_net_layer_size(net, 1), 7);
        assert_int_equal(mom_net_layer_size(net, 2), 2);
        assert_int_equal(mom_net_layer_size(net, 3), 0);
        assert_int_equal(mom_net_layer_act(net, 0), MOM_ACT_LINEAR);
        assert_int_equal(mom_net_layer_act(net, 1), MOM_ACT_TANH);
        assert_int_equal(mom_net_layer_act(net, 2), MOM_ACT_SOFTMAX);
        assert_int_equal(mom_net_layer_act(net, 3), -1);
        assert_int_equal(mom_net_num_blocks(net), h0 ? 6 : 5);
        const int kinds[6] = {MOM_BLOCK_W_VH, MOM_BLOCK_W_HH, MOM_BLOCK_B_H,
                              MOM_BLOCK_W_HO, MOM_BLOCK_B_O, MOM_BLOCK_H0};
        const size_t rows[6] = {7, 7, 7, 2, 2, 7}, cols[6] = {3, 7, 1, 7, 1, 1};
        const size_t offs[6] = {R.o_vh, R.o_hh, R.o_bh, R.o_ho, R.o_bo, R.o_h0};
        for (size_t i = 0; i < mom_net_num_blocks(net); i++) {
            int kind;
            size_t layer, r, c, off, found;
            assert_ok(mom_net_block(net, i, &kind, &layer, &r, &c, &off));
            assert_int_equal(kind, kinds[i]);
            assert_int_equal(layer, 0);
            assert_int_equal(r, rows[i]);
            assert_int_equal(c, cols[i]);
            assert_int_equal(off, offs[i]);
            assert_ok(mom_net_find_block(&found, net, kinds[i], 0));
            assert_int_equal(found, i);
        }
        size_t idx;
        assert_status(mom_net_block(net, mom_net_num_blocks(net), NULL, NULL, NULL, NULL, NULL),
                      MOM_E_INVALID);
        if (!h0)
            assert_status(mom_net_find_block(&idx, net, MOM_BLOCK_H0, 0), MOM_E_INVALID);
        for (size_t i = 0; i < R.P; i++)
            assert_true(mom_net_params(net)[i] == 0.0f);
        mom_net_destroy(net);
    }
    mom_net_destroy(NULL);
}

static void test_create_invalid(void **state)
{
    (void)state;
    mom_net *net = (mom_net *)&net;
    assert_status(mom_net_create_rnn(NULL, 1, 1, 1, MOM_ACT_TANH, 0, 0, NULL), MOM_E_INVALID);
    const struct { size_t i, h, o; int act, out; uint32_t flags; } bad[] = {
        {0, 4, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0},
        {2, 0, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0},
        {2, 4, 0, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0},
        {2, 4, 1, MOM_ACT_SOFTMAX, MOM_OUT_LINEAR_SQUARED, 0},
        {2, 4, 1, -1, MOM_OUT_LINEAR_SQUARED, 0},
        {2, 4, 1, 99, MOM_OUT_LINEAR_SQUARED, 0},
        {2, 4, 1, MOM_ACT_TANH, 3, 0},
        {2, 4, 1, MOM_ACT_TANH, -1, 0},
        {2, 4, 1, MOM_ACT_TANH, MOM_OUT_SOFTMAX_XENT, 0},
        {2, 4, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0x2},
        {(size_t)1 << 40, 4, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0},
        {2, (size_t)1 << 33, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0},
        {2, 4, SIZE_MAX, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0},
        /* widths that BLAS can index but whose product overflows */
        {(size_t)1 << 31 >> 1, (size_t)1 << 30, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        net = (mom_net *)&net;
        int rc = mom_net_create_rnn(&net, bad[i].i, bad[i].h, bad[i].o, bad[i].act, bad[i].out,
                                    bad[i].flags, NULL);
        if (rc != MOM_E_INVALID && rc != MOM_E_NOMEM)
            fail_msg("case %zu returned %d", i, rc);
        assert_null(net);
    }
    /* incomplete allocator */
    test_alloc ta;
    test_alloc_init(&ta, 0);
    ta.a.realloc = NULL;
    net = (mom_net *)&net;
    assert_status(mom_net_create_rnn(&net, 2, 3, 1, MOM_ACT_TANH, 0, 0, &ta.a), MOM_E_INVALID);
    assert_null(net);
    assert_int_equal(ta.live, 0);
}

/* Every allocation failure in creation returns MOM_E_NOMEM and leaks nothing. */
static void test_create_nomem(void **state)
{
    (void)state;
    for (int h0 = 0; h0 < 2; h0++) {
        test_alloc ta;
        test_alloc_init(&ta, 0);
        mom_net *net;
        assert_ok(mom_net_create_rnn(&net, 2, 5, 3, MOM_ACT_TANH, MOM_OUT_SOFTMAX_XENT,
                                     h0 ? MOM_RNN_LEARN_H0 : 0, &ta.a));
        long total = ta.calls;
        assert_true(total >= 2);
        mom_net_destroy(net);
        assert_int_equal(ta.live, 0);
        for (long k = 1; k <= total; k++) {
            test_alloc_init(&ta, k);
            net = (mom_net *)&net;
            assert_status(mom_net_create_rnn(&net, 2, 5, 3, MOM_ACT_TANH, MOM_OUT_SOFTMAX_XENT,
                                             h0 ? MOM_RNN_LEARN_H0 : 0, &ta.a),
                          MOM_E_NOMEM);
            assert_null(net);
            assert_int_equal(ta.failed, 1);
            assert_int_equal(ta.live, 0);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Loss and gradient */

/* Loss vs the reference; gradient vs double central differences of the reference loss (and the
 * reference BPTT vs the same differences), for every activation, output, mask mode, unequal
 * lengths and learned h0. */
static void test_grad_fd(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 11, 0, NULL));
    const size_t I = 3, H = 5, O = 3, n = 4, T = 6;
    double worst = 0, worst_ref = 0;
    int cases = 0;
    for (int oi = 0; oi < 3; oi++)
        for (int ai = 0; ai < 4; ai++)
            for (int mm = 0; mm < 3; mm++)
                for (int uneq = 0; uneq < 2; uneq++)
                    for (int h0 = 0; h0 < 2; h0++) {
                        int out = all_outputs[oi], act = all_acts[ai];
                        tnet R;
                        tnet_init(&R, I, H, O, act, out, h0);
                        mom_net *net;
                        assert_ok(mom_net_create_rnn(&net, I, H, O, act, out,
                                                     h0 ? MOM_RNN_LEARN_H0 : 0, NULL));
                        fill_params(net, rng, 0.6);
                        tdata d;
                        tdata_make(&d, rng, n, T, I, O, out, mm, uneq);
                        double *th = params_double(net);
                        double *fd = malloc(R.P * sizeof *fd), *rg = malloc(R.P * sizeof *rg);
                        double *g = malloc(R.P * sizeof *g);
                        float *gf = malloc(R.P * sizeof *gf);
                        double loss;
                        assert_ok(mom_net_loss_grad(&loss, gf, net, &d.b, NULL));
                        double ref = ref_forward(&R, th, &d.b, NULL, NULL, NULL, NULL);
                        if (rel_diff(loss, ref, 1e-6) > 1e-5)
                            fail_msg("loss %g vs ref %g (out %d act %d mask %d uneq %d h0 %d)",
                                     loss, ref, out, act, mm, uneq, h0);
                        double l2;
                        assert_ok(mom_net_loss(&l2, net, &d.b, NULL));
                        assert_true(l2 == loss);
                        for (size_t i = 0; i < R.P; i++) {
                            double keep = th[i], e = 1e-6;
                            th[i] = keep + e;
                            double lp = ref_forward(&R, th, &d.b, NULL, NULL, NULL, NULL);
                            th[i] = keep - e;
                            double lm = ref_forward(&R, th, &d.b, NULL, NULL, NULL, NULL);
                            th[i] = keep;
                            fd[i] = (lp - lm) / (2 * e);
                            g[i] = gf[i];
                        }
                        ref_grad(&R, th, &d.b, rg);
                        double err = max_rel_err(g, fd, R.P), eref = max_rel_err(rg, fd, R.P);
                        if (err >= 1e-3 || eref >= 1e-4)
                            fail_msg("gradient error %g (reference BPTT %g) for out %d act %d "
                                     "mask %d unequal %d h0 %d", err, eref, out, act, mm, uneq, h0);
                        worst = err > worst ? err : worst;
                        worst_ref = eref > worst_ref ? eref : worst_ref;
                        cases++;
                        free(th);
                        free(fd);
                        free(rg);
                        free(g);
                        free(gf);
                        tdata_free(&d);
                        mom_net_destroy(net);
                    }
    print_message("# %d gradient cases, worst relative error %.2e (reference BPTT %.2e)\n", cases,
                  worst, worst_ref);
    mom_rng_destroy(rng);
}


/* ---------------------------------------------------------------------------------------------
 * Gauss-Newton products */

/* G v (+ c J_s^T D'' J_s v) formed explicitly in double: J by central differences of the
 * reference's z and s, H the output loss Hessian times the step weight, averaged over sequences. */
static void ref_gv_matrix(const tnet *R, const double *th0, const mom_batch *b, double c,
                          double *G)
{
    const size_t n = b->n, T = b->steps, H = R->H, O = R->O, P = R->P, rows = T * n;
    double *th = malloc(P * sizeof *th);
    memcpy(th, th0, P * sizeof *th);
    double *Jz = calloc(rows * O * P, sizeof *Jz), *Js = calloc(rows * H * P, sizeof *Js);
    double *zp = malloc(rows * O * sizeof *zp), *zm = malloc(rows * O * sizeof *zm);
    double *sp = malloc(rows * H * sizeof *sp), *sm = malloc(rows * H * sizeof *sm);
    double *Y = malloc(rows * O * sizeof *Y), *Hh = malloc(rows * H * sizeof *Hh);
    ref_forward(R, th, b, NULL, Hh, NULL, Y);
    for (size_t i = 0; i < P; i++) {
        const double e = 1e-6, keep = th[i];
        th[i] = keep + e;
        ref_forward(R, th, b, sp, NULL, zp, NULL);
        th[i] = keep - e;
        ref_forward(R, th, b, sm, NULL, zm, NULL);
        th[i] = keep;
        for (size_t q = 0; q < rows * O; q++) Jz[q * P + i] = (zp[q] - zm[q]) / (2 * e);
        for (size_t q = 0; q < rows * H; q++) Js[q * P + i] = (sp[q] - sm[q]) / (2 * e);
    }
    memset(G, 0, P * P * sizeof *G);
    double *hj = malloc(O * P * sizeof *hj);
    for (size_t t = 0; t < T; t++)
        for (size_t q = 0; q < n; q++) {
            size_t row = t * n + q;
            double w = ref_weight(b, t, q) / (double)n;
            const double *y = Y + row * O, *J = Jz + row * O * P;
            if (w != 0) {
                /* hj = H J (O x P) */
                for (size_t k = 0; k < O; k++)
                    for (size_t i = 0; i < P; i++) {
                        double a;
                        if (R->out == MOM_OUT_LINEAR_SQUARED) a = J[k * P + i];
                        else if (R->out == MOM_OUT_LOGISTIC_XENT) a = y[k] * (1 - y[k]) * J[k * P + i];
                        else {
                            a = y[k] * J[k * P + i];
                            for (size_t l = 0; l < O; l++) a -= y[k] * y[l] * J[l * P + i];
                        }
                        hj[k * P + i] = w * a;
                    }
                for (size_t i = 0; i < P; i++)
                    for (size_t j = 0; j < P; j++) {
                        double a = 0;
                        for (size_t k = 0; k < O; k++) a += J[k * P + i] * hj[k * P + j];
                        G[i * P + j] += a;
                    }
            }
            if (c > 0 && t < ref_len(b, q)) {
                const double *js = Js + row * H * P;
                for (size_t u = 0; u < H; u++) {
                    double dpp = c / (double)n * ref_dpp(R->act, Hh[row * H + u]);
                    for (size_t i = 0; i < P; i++)
                        for (size_t j = 0; j < P; j++)
                            G[i * P + j] += dpp * js[u * P + i] * js[u * P + j];
                }
            }
        }
    free(hj);
    free(th);
    free(Jz);
    free(Js);
    free(zp);
    free(zm);
    free(sp);
    free(sm);
    free(Y);
    free(Hh);
}

static double inf_norm_err(const float *a, const double *ref, size_t n)
{
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]);
        e = d > e ? d : e;
        m = fabs(ref[i]) > m ? fabs(ref[i]) : m;
    }
    return e / (m > 1e-30 ? m : 1e-30);
}

static void test_gv_explicit(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 12, 0, NULL));
    const size_t I = 2, H = 4, O = 3, n = 3, T = 5;
    double worst = 0;
    int cases = 0;
    for (int oi = 0; oi < 3; oi++)
        for (int ai = 0; ai < 4; ai++)
            for (int mm = 0; mm < 3; mm++)
                for (int uneq = 0; uneq < 2; uneq++)
                    for (int h0 = 0; h0 < 2; h0++) {
                        int out = all_outputs[oi], act = all_acts[ai];
                        tnet R;
                        tnet_init(&R, I, H, O, act, out, h0);
                        const size_t P = R.P;
                        mom_net *net;
                        assert_ok(mom_net_create_rnn(&net, I, H, O, act, out,
                                                     h0 ? MOM_RNN_LEARN_H0 : 0, NULL));
                        fill_params(net, rng, 0.6);
                        tdata d;
                        tdata_make(&d, rng, n, T, I, O, out, mm, uneq);
                        double *th = params_double(net);
                        double *G = malloc(P * P * sizeof *G), *Gd = malloc(P * P * sizeof *Gd);
                        const double c = 0.7;
                        ref_gv_matrix(&R, th, &d.b, 0.0, G);
                        ref_gv_matrix(&R, th, &d.b, c, Gd);
                        float *v = malloc(P * sizeof *v), *gv = malloc(P * sizeof *gv);
                        double *ref = malloc(P * sizeof *ref);
                        assert_ok(mom_net_gv_begin(net, &d.b, NULL));
                        for (int rep = 0; rep < 2; rep++) {
                            for (size_t i = 0; i < P; i++) v[i] = (float)mom_rng_normal(rng);
                            for (int damp = 0; damp < 2; damp++) {
                                const double *M = damp ? Gd : G;
                                for (size_t i = 0; i < P; i++) {
                                    double a = 0;
                                    for (size_t j = 0; j < P; j++) a += M[i * P + j] * v[j];
                                    ref[i] = a;
                                }
                                assert_ok(mom_net_gv(gv, net, v, damp ? c : 0.0));
                                double err = inf_norm_err(gv, ref, P);
                                if (err >= 1e-4)
                                    fail_msg("Gv error %g: out %d act %d mask %d unequal %d h0 %d "
                                             "damping %d", err, out, act, mm, uneq, h0, damp);
                                worst = err > worst ? err : worst;
                                cases++;
                            }
                        }
                        free(v);
                        free(gv);
                        free(ref);
                        free(G);
                        free(Gd);
                        free(th);
                        tdata_free(&d);
                        mom_net_destroy(net);
                    }
    print_message("# %d G v products vs explicit J^T H J, worst relative error %.2e\n", cases, worst);
    mom_rng_destroy(rng);
}

/* u^T G v = v^T G u, v^T G v >= 0 (with and without damping), on a larger net. */
static void test_gv_symmetric_psd(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 13, 0, NULL));
    for (int oi = 0; oi < 3; oi++) {
        int out = all_outputs[oi];
        mom_net *net;
        assert_ok(mom_net_create_rnn(&net, 4, 20, 3, MOM_ACT_TANH, out, MOM_RNN_LEARN_H0, NULL));
        fill_params(net, rng, 0.3);
        tdata d;
        tdata_make(&d, rng, 7, 12, 4, 3, out, oi == 1 ? MASK_ALL : MASK_SPARSE, 1);
        size_t P = mom_net_num_params(net);
        float *u = malloc(P * sizeof *u), *v = malloc(P * sizeof *v);
        float *gu = malloc(P * sizeof *gu), *gv = malloc(P * sizeof *gv);
        assert_ok(mom_net_gv_begin(net, &d.b, NULL));
        for (int rep = 0; rep < 5; rep++) {
            for (size_t i = 0; i < P; i++) {
                u[i] = (float)mom_rng_normal(rng);
                v[i] = (float)mom_rng_normal(rng);
            }
            for (int damp = 0; damp < 2; damp++) {
                double c = damp ? 0.3 : 0.0;
                assert_ok(mom_net_gv(gu, net, u, c));
                assert_ok(mom_net_gv(gv, net, v, c));
                double a = 0, b = 0, vgv = 0, na = 0;
                for (size_t i = 0; i < P; i++) {
                    a += (double)u[i] * gv[i];
                    b += (double)v[i] * gu[i];
                    vgv += (double)v[i] * gv[i];
                    na += fabs((double)u[i] * gv[i]);
                }
                if (fabs(a - b) > 1e-5 * na)
                    fail_msg("asymmetric: u'Gv %g vs v'Gu %g", a, b);
                assert_true(vgv >= -1e-6 * na);
            }
        }
        free(u);
        free(v);
        free(gu);
        free(gv);
        tdata_free(&d);
        mom_net_destroy(net);
    }
    mom_rng_destroy(rng);
}

/* Products reuse gv_begin's cache: loss/gradient/forward/metric calls in between (even on a
 * bigger batch, which grows the other workspace) do not change them, and they equal the products
 * after a fresh gv_begin bit for bit. gv before any gv_begin is a state error. */
static void test_gv_cache(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 14, 0, NULL));
    mom_net *net;
    assert_ok(mom_net_create_rnn(&net, 3, 10, 2, MOM_ACT_TANH, MOM_OUT_LOGISTIC_XENT, 0, NULL));
    fill_params(net, rng, 0.5);
    size_t P = mom_net_num_params(net);
    float *v = malloc(P * sizeof *v), *a = malloc(P * sizeof *a), *b = malloc(P * sizeof *b);
    float *g = malloc(P * sizeof *g);
    for (size_t i = 0; i < P; i++) v[i] = (float)mom_rng_normal(rng);
    assert_status(mom_net_gv(a, net, v, 0.0), MOM_E_STATE);
    tdata d, big;
    tdata_make(&d, rng, 5, 8, 3, 2, MOM_OUT_LOGISTIC_XENT, MASK_SPARSE, 1);
    tdata_make(&big, rng, 9, 15, 3, 2, MOM_OUT_LOGISTIC_XENT, MASK_ALL, 0);
    for (int damp = 0; damp < 2; damp++) {
        assert_ok(mom_net_gv_begin(net, &d.b, NULL));
        assert_ok(mom_net_gv(a, net, v, damp * 0.5));
        double loss;
        assert_ok(mom_net_loss_grad(&loss, g, net, &big.b, NULL));
        float *y = malloc(9 * 15 * 2 * sizeof *y);
        assert_ok(mom_net_forward(y, net, &big.b, NULL, 2));
        free(y);
        assert_ok(mom_net_metric(&loss, net, &big.b, NULL, MOM_METRIC_CLASS_ERROR, 0));
        assert_ok(mom_net_gv(b, net, v, damp * 0.5));
        assert_memory_equal(a, b, P * sizeof *a);
        assert_ok(mom_net_gv_begin(net, &big.b, NULL));
        assert_ok(mom_net_gv_begin(net, &d.b, NULL));
        assert_ok(mom_net_gv(b, net, v, damp * 0.5));
        assert_memory_equal(a, b, P * sizeof *a);
    }
    /* mom_net_reserve() that keeps the workspace keeps the cache; one that grows it drops it */
    assert_ok(mom_net_gv_begin(net, &d.b, NULL));
    assert_ok(mom_net_reserve(net, 2, 3));
    assert_ok(mom_net_gv(b, net, v, 0.0));
    assert_ok(mom_net_reserve(net, 50, 50));
    assert_status(mom_net_gv(b, net, v, 0.0), MOM_E_STATE);
    /* a failed gv_begin invalidates the cache */
    mom_batch bad = d.b;
    bad.steps = 0;
    assert_status(mom_net_gv_begin(net, &bad, NULL), MOM_E_INVALID);
    assert_status(mom_net_gv(a, net, v, 0.0), MOM_E_STATE);
    free(v);
    free(a);
    free(b);
    free(g);
    tdata_free(&d);
    tdata_free(&big);
    mom_net_destroy(net);
    mom_rng_destroy(rng);
}

/* ---------------------------------------------------------------------------------------------
 * Fisher diagonal, forward passes, metrics */

static void test_fisher(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 15, 0, NULL));
    for (int mm = 0; mm < 3; mm++)
        for (int uneq = 0; uneq < 2; uneq++) {
            int out = all_outputs[(mm + uneq) % 3];
            tnet R;
            tnet_init(&R, 3, 6, 2, MOM_ACT_TANH, out, uneq);
            mom_net *net;
            assert_ok(mom_net_create_rnn(&net, 3, 6, 2, MOM_ACT_TANH, out,
                                         uneq ? MOM_RNN_LEARN_H0 : 0, NULL));
            fill_params(net, rng, 0.5);
            tdata d;
            tdata_make(&d, rng, 5, 7, 3, 2, out, mm, uneq);
            const size_t n = d.n, T = d.T, P = R.P;
            double *th = params_double(net), *g = malloc(P * sizeof *g);
            double *ref = calloc(P, sizeof *ref);
            float *mask = malloc(T * n * sizeof *mask), *f = malloc(P * sizeof *f);
            for (size_t s = 0; s < n; s++) {
                /* per-sequence gradient: keep only sequence s's weights, undo the 1/n */
                for (size_t t = 0; t < T; t++)
                    for (size_t q = 0; q < n; q++)
                        mask[t * n + q] = q == s ? (float)ref_weight(&d.b, t, q) : 0.0f;
                mom_batch one = d.b;
                one.mask = mask;
                ref_grad(&R, th, &one, g);
                for (size_t i = 0; i < P; i++)
                    ref[i] += (double)n * g[i] * (double)n * g[i] / (double)n;
            }
            assert_ok(mom_net_fisher_diag(f, net, &d.b, NULL));
            double *fd = malloc(P * sizeof *fd);
            for (size_t i = 0; i < P; i++) fd[i] = f[i];
            double err = max_rel_err(fd, ref, P);
            if (err > 1e-4)
                fail_msg("Fisher diagonal error %g (mask %d unequal %d)", err, mm, uneq);
            free(fd);
            free(th);
            free(g);
            free(ref);
            free(mask);
            free(f);
            tdata_free(&d);
            mom_net_destroy(net);
        }
    mom_rng_destroy(rng);
}

static void test_forward_layers(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 16, 0, NULL));
    for (int oi = 0; oi < 3; oi++) {
        int out = all_outputs[oi];
        tnet R;
        tnet_init(&R, 3, 6, 4, MOM_ACT_TANH, out, 1);
        mom_net *net;
        assert_ok(mom_net_create_rnn(&net, 3, 6, 4, MOM_ACT_TANH, out, MOM_RNN_LEARN_H0, NULL));
        fill_params(net, rng, 0.5);
        tdata d;
        tdata_make(&d, rng, 4, 6, 3, 4, out, MASK_LAST, 1);
        d.b.targets = NULL; /* not needed */
        const size_t rows = d.n * d.T;
        double *th = params_double(net);
        double *S = malloc(rows * 6 * sizeof *S), *Hh = malloc(rows * 6 * sizeof *Hh);
        double *Z = malloc(rows * 4 * sizeof *Z), *Y = malloc(rows * 4 * sizeof *Y);
        ref_forward(&R, th, &d.b, S, Hh, Z, Y);
        float *buf = malloc(rows * 6 * sizeof *buf);
        for (int layer = 0; layer < 4; layer++) {
            size_t lay = layer == 3 ? MOM__LAYER_Z : (size_t)layer;
            size_t w = layer == 0 ? 3 : layer == 1 ? 6 : 4;
            for (size_t i = 0; i < rows * w; i++) buf[i] = NAN;
            if (layer == 3)
                assert_ok(net->ops->forward(net, &d.b, mom_net_params(net), lay, buf));
            else
                assert_ok(mom_net_forward(buf, net, &d.b, NULL, lay));
            for (size_t t = 0; t < d.T; t++)
                for (size_t s = 0; s < d.n; s++)
                    for (size_t j = 0; j < w; j++) {
                        size_t i = (t * d.n + s) * w + j;
                        double ref = layer == 0 ? (t < d.len[s] ? d.x[i] : 0.0)
                                     : layer == 1 ? Hh[i] : layer == 2 ? Y[i] : Z[i];
                        if (fabs(buf[i] - ref) > 1e-5 * (1 + fabs(ref)))
                            fail_msg("layer %d (t %zu s %zu j %zu): %g vs %g", layer, t, s, j,
                                     buf[i], ref);
                    }
        }
        assert_status(mom_net_forward(buf, net, &d.b, NULL, 3), MOM_E_INVALID);
        free(buf);
        free(th);
        free(S);
        free(Hh);
        free(Z);
        free(Y);
        tdata_free(&d);
        mom_net_destroy(net);
    }
    mom_rng_destroy(rng);
}

/* Metrics computed by hand from the outputs y of forward() and from a constant-output net. */
static void test_metrics(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 17, 0, NULL));
    /* (1) a net whose output is its bias: y = b_o at every step */
    {
        mom_net *net;
        assert_ok(mom_net_create_rnn(&net, 1, 2, 2, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, NULL));
        size_t bo;
        assert_ok(mom_net_find_block(&bo, net, MOM_BLOCK_B_O, 0));
        size_t off;
        assert_ok(mom_net_block(net, bo, NULL, NULL, NULL, NULL, &off));
        mom_net_params(net)[off] = 0.5f;
        mom_net_params(net)[off + 1] = 0.25f;
        /* 3 sequences, T = 2, last step only; targets at the last step */
        float x[6] = {0};
        float t[12] = {9, 9, 9, 9, 9, 9, /* step 0: ignored */
                       0.5f, 0.25f,      /* exact */
                       0.53f, 0.2f,      /* off by 0.03 and 0.05 */
                       0.45f, 0.28f};    /* off by 0.05 and 0.03 */
        mom_batch b = {3, 2, x, t, NULL, NULL};
        double v;
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_SQUARED_ERROR, 0));
        double se = (0.03 * 0.03 + 0.05 * 0.05 + 0.05 * 0.05 + 0.03 * 0.03) / 3;
        assert_true(fabs(v - se) < 1e-6);
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_LOSS, 0));
        assert_true(fabs(v - se / 2) < 1e-6);
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, 0));
        assert_true(fabs(v - 2.0 / 3) < 1e-12); /* default threshold 0.04 */
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, 0.06));
        assert_true(v == 0.0);
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, 0.02));
        assert_true(fabs(v - 2.0 / 3) < 1e-12);
        /* with a mask: sequence 2's last weighted step is step 0 (target 9: off) */
        float mask[6] = {0, 0, 1, 1, 1, 0};
        b.mask = mask;
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, 0));
        assert_true(fabs(v - 2.0 / 3) < 1e-12); /* seq 1 (0.05 off) and seq 2 */
        /* a sequence with no weighted step counts as correct */
        float mask0[6] = {0, 0, 0, 1, 0, 0};
        b.mask = mask0;
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, 0));
        assert_true(v == 0.0);
        /* class metrics: argmax of y is always 0 */
        float tc[12] = {1, 0, 0, 1, 1, 0, /* step 0: wrong at seq 1 */
                        0, 1, 1, 0, 0, 1}; /* step 1: wrong at seqs 0 and 2 */
        b.targets = tc;
        b.mask = NULL;
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_CLASS_ERROR, 0));
        assert_true(fabs(v - 2.0 / 3) < 1e-12);
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_WRONG_SYMBOLS, 0));
        assert_true(fabs(v - 2.0 / 3) < 1e-12);
        float ones[6] = {1, 1, 1, 1, 1, 1};
        b.mask = ones;
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_CLASS_ERROR, 0));
        assert_true(fabs(v - 3.0 / 6) < 1e-12);
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_WRONG_SYMBOLS, 0));
        assert_true(fabs(v - 3.0 / 3) < 1e-12);
        size_t len[3] = {1, 2, 2}; /* seq 0 ends after step 0 (right there) */
        b.lengths = len;
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_CLASS_ERROR, 0));
        assert_true(fabs(v - 2.0 / 5) < 1e-12);
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_WRONG_SYMBOLS, 0));
        assert_true(fabs(v - 2.0 / 3) < 1e-12);
        b.mask = mask0; /* only (1,0) weighted and seq 0 has ended: nothing counted */
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_CLASS_ERROR, 0));
        assert_true(v == 0.0);
        /* a NaN output names no class: wrong even where argmax would land on the target's */
        mom_net_params(net)[off] = NAN;
        b.mask = NULL;
        b.lengths = NULL;
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_CLASS_ERROR, 0));
        assert_true(v == 1.0);
        assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_WRONG_SYMBOLS, 0));
        assert_true(v == 1.0);
        mom_net_destroy(net);
    }
    /* (2) softmax net, every step weighted, unequal lengths: metrics from forward()'s y */
    {
        const size_t n = 6, T = 9, O = 4;
        mom_net *net;
        assert_ok(mom_net_create_rnn(&net, 3, 8, O, MOM_ACT_TANH, MOM_OUT_SOFTMAX_XENT, 0, NULL));
        fill_params(net, rng, 0.8);
        for (int mm = 0; mm < 3; mm++) {
            tdata d;
            tdata_make(&d, rng, n, T, 3, O, MOM_OUT_SOFTMAX_XENT, mm, 1);
            float *y = malloc(n * T * O * sizeof *y);
            assert_ok(mom_net_forward(y, net, &d.b, NULL, 2));
            size_t counted = 0, wrong = 0, thr_err = 0;
            double se = 0;
            for (size_t s = 0; s < n; s++) {
                size_t last = SIZE_MAX;
                for (size_t t = 0; t < T; t++) {
                    double w = ref_weight(&d.b, t, s);
                    if (w == 0) continue;
                    const float *yr = y + (t * n + s) * O, *tr = d.t + (t * n + s) * O;
                    size_t ay = 0, at = 0;
                    for (size_t k = 1; k < O; k++) {
                        if (yr[k] > yr[ay]) ay = k;
                        if (tr[k] > tr[at]) at = k;
                    }
                    counted++;
                    wrong += ay != at;
                    for (size_t k = 0; k < O; k++) se += w * (yr[k] - tr[k]) * (yr[k] - tr[k]);
                    last = t;
                }
                if (last != SIZE_MAX) {
                    const float *yr = y + (last * n + s) * O, *tr = d.t + (last * n + s) * O;
                    for (size_t k = 0; k < O; k++)
                        if (fabs(yr[k] - tr[k]) > 0.1) { thr_err++; break; }
                }
            }
            double v;
            assert_ok(mom_net_metric(&v, net, &d.b, NULL, MOM_METRIC_CLASS_ERROR, 0));
            assert_true(fabs(v - (counted ? (double)wrong / counted : 0)) < 1e-12);
            assert_ok(mom_net_metric(&v, net, &d.b, NULL, MOM_METRIC_WRONG_SYMBOLS, 0));
            assert_true(fabs(v - (double)wrong / n) < 1e-12);
            assert_ok(mom_net_metric(&v, net, &d.b, NULL, MOM_METRIC_THRESHOLD_ERROR, 0.1));
            assert_true(fabs(v - (double)thr_err / n) < 1e-12);
            assert_ok(mom_net_metric(&v, net, &d.b, NULL, MOM_METRIC_SQUARED_ERROR, 0));
            assert_true(fabs(v - se / n) < 1e-5 * (1 + se / n));
            double loss;
            assert_ok(mom_net_loss(&loss, net, &d.b, NULL));
            assert_ok(mom_net_metric(&v, net, &d.b, NULL, MOM_METRIC_LOSS, 0));
            assert_true(v == loss);
            free(y);
            tdata_free(&d);
        }
        mom_net_destroy(net);
    }
    mom_rng_destroy(rng);
}

/* ---------------------------------------------------------------------------------------------
 * Memory, robustness and failure paths */

/* After the first loss/gradient and the first gv_begin at (n, T), nothing allocates for batches
 * of the same or smaller n and T; mom_net_reserve() pre-sizes everything. */
/* Targets of steps that do not count enter no result: NaN and infinity there (past a sequence's
 * length, or at weight 0) give the bits of zeros there, with few weighted rows (the compact
 * output path) and with most rows weighted (the dense one). */
static void test_uncounted_targets(void **state)
{
    (void)state;
    enum { N = 3, T = 5, I = 2, O = 2 };
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 23, 0, NULL));
    mom_net *net;
    assert_ok(mom_net_create_rnn(&net, I, 6, O, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, NULL));
    fill_params(net, rng, 0.5);
    const size_t P = mom_net_num_params(net);
    float x[T * N * I], clean[T * N * O], dirty[T * N * O], most[T * N], last[T * N];
    assert_ok(mom_rng_fill_uniform(rng, x, T * N * I, -1.0, 1.0));
    assert_ok(mom_rng_fill_uniform(rng, clean, T * N * O, -1.0, 1.0));
    size_t len[N] = {5, 2, 4};
    for (size_t t = 0; t < T; t++)
        for (size_t s = 0; s < N; s++) {
            most[t * N + s] = (t == 1 && s == 0) ? 0.0f : 1.0f; /* 14 of 15 weighted: dense */
            last[t * N + s] = t + 1 == len[s] ? 1.0f : 0.0f;    /* 3 of 15: compact */
        }
    for (int which = 0; which < 2; which++) {
        const float *mask = which ? last : most;
        memcpy(dirty, clean, sizeof clean);
        for (size_t t = 0; t < T; t++)
            for (size_t s = 0; s < N; s++)
                if (t >= len[s] || mask[t * N + s] == 0.0f)
                    for (size_t k = 0; k < O; k++) {
                        clean[(t * N + s) * O + k] = 0.0f;
                        dirty[(t * N + s) * O + k] = k ? INFINITY : NAN;
                    }
        mom_batch bc = {N, T, x, clean, mask, len}, bd = {N, T, x, dirty, mask, len};
        double lc, ld, vc, vd;
        float *gc = malloc(P * sizeof *gc), *gd = malloc(P * sizeof *gd);
        assert_non_null(gc);
        assert_non_null(gd);
        assert_ok(mom_net_loss_grad(&lc, gc, net, &bc, NULL));
        assert_ok(mom_net_loss_grad(&ld, gd, net, &bd, NULL));
        assert_true(lc == ld && isfinite(lc));
        if (memcmp(gc, gd, P * sizeof *gc) != 0)
            fail_msg("mask %d: the gradient depends on targets that do not count", which);
        const int metrics[4] = {MOM_METRIC_SQUARED_ERROR, MOM_METRIC_THRESHOLD_ERROR,
                                MOM_METRIC_CLASS_ERROR, MOM_METRIC_WRONG_SYMBOLS};
        for (int m = 0; m < 4; m++) {
            assert_ok(mom_net_metric(&vc, net, &bc, NULL, metrics[m], 0));
            assert_ok(mom_net_metric(&vd, net, &bd, NULL, metrics[m], 0));
            assert_true(vc == vd);
        }
        free(gc);
        free(gd);
    }
    mom_net_destroy(net);
    mom_rng_destroy(rng);
}

static void test_no_alloc_after_first(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 18, 0, NULL));
    for (int use_reserve = 0; use_reserve < 2; use_reserve++) {
        test_alloc ta;
        test_alloc_init(&ta, 0);
        mom_net *net;
        assert_ok(mom_net_create_rnn(&net, 3, 9, 4, MOM_ACT_TANH, MOM_OUT_SOFTMAX_XENT,
                                     MOM_RNN_LEARN_H0, &ta.a));
        fill_params(net, rng, 0.4);
        const size_t P = mom_net_num_params(net);
        float *g = malloc(P * sizeof *g), *v = malloc(P * sizeof *v), *o = malloc(P * sizeof *o);
        for (size_t i = 0; i < P; i++) v[i] = (float)mom_rng_normal(rng);
        float *y = malloc(8 * 10 * 9 * sizeof *y);
        tdata full[3], small[3];
        for (int mm = 0; mm < 3; mm++) {
            tdata_make(&full[mm], rng, 8, 10, 3, 4, MOM_OUT_SOFTMAX_XENT, mm, mm == 1);
            tdata_make(&small[mm], rng, 3 + (size_t)mm, 10 - 3 * (size_t)mm, 3, 4,
                       MOM_OUT_SOFTMAX_XENT, 2 - mm, mm != 1);
        }
        double l;
        if (use_reserve) {
            assert_ok(mom_net_reserve(net, 8, 10));
            assert_true(mom_net_workspace_bytes(net) > 0);
        } else {
            assert_int_equal(mom_net_workspace_bytes(net), 0);
            assert_ok(mom_net_loss_grad(&l, g, net, &full[0].b, NULL));
            assert_ok(mom_net_gv_begin(net, &full[0].b, NULL));
        }
        size_t bytes = mom_net_workspace_bytes(net);
        long calls = ta.calls;
        for (int rep = 0; rep < 2; rep++)
            for (int mm = 0; mm < 3; mm++) {
                for (int which = 0; which < 2; which++) {
                    const mom_batch *b = which ? &small[mm].b : &full[mm].b;
                    assert_ok(mom_net_loss_grad(&l, g, net, b, NULL));
                    assert_ok(mom_net_loss(&l, net, b, NULL));
                    assert_ok(mom_net_fisher_diag(o, net, b, NULL));
                    for (size_t layer = 0; layer < 3; layer++)
                        assert_ok(mom_net_forward(y, net, b, NULL, layer));
                    for (int m = 0; m <= MOM_METRIC_WRONG_SYMBOLS; m++)
                        assert_ok(mom_net_metric(&l, net, b, NULL, m, 0));
                    assert_ok(mom_net_gv_begin(net, b, NULL));
                    assert_ok(mom_net_gv(o, net, v, 0.0));
                    assert_ok(mom_net_gv(o, net, v, 0.1));
                }
            }
        assert_int_equal(ta.calls, calls);
        assert_int_equal(mom_net_workspace_bytes(net), bytes);
        /* a bigger batch grows the workspace once */
        tdata big;
        tdata_make(&big, rng, 9, 10, 3, 4, MOM_OUT_SOFTMAX_XENT, MASK_LAST, 0);
        assert_ok(mom_net_loss_grad(&l, g, net, &big.b, NULL));
        assert_true(ta.calls > calls);
        assert_true(mom_net_workspace_bytes(net) > bytes);
        calls = ta.calls;
        assert_ok(mom_net_loss_grad(&l, g, net, &big.b, NULL));
        assert_ok(mom_net_loss_grad(&l, g, net, &full[0].b, NULL));
        assert_int_equal(ta.calls, calls);
        tdata_free(&big);
        for (int mm = 0; mm < 3; mm++) {
            tdata_free(&full[mm]);
            tdata_free(&small[mm]);
        }
        free(g);
        free(v);
        free(o);
        free(y);
        mom_net_destroy(net);
        assert_int_equal(ta.live, 0);
    }
    mom_rng_destroy(rng);
}

/* Long sequences with large weights: saturated tanh / logistic units and saturated outputs stay
 * finite in the loss, gradient, Fisher diagonal and G v. */
static void test_long_sequences_finite(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 19, 0, NULL));
    const int acts[2] = {MOM_ACT_TANH, MOM_ACT_LOGISTIC};
    for (int ai = 0; ai < 2; ai++)
        for (int oi = 0; oi < 3; oi++) {
            int out = all_outputs[oi];
            mom_net *net;
            assert_ok(mom_net_create_rnn(&net, 4, 30, 3, acts[ai], out, 0, NULL));
            fill_params(net, rng, 5.0);
            tdata d;
            tdata_make(&d, rng, 6, 200, 4, 3, out, oi == 0 ? MASK_LAST : MASK_ALL, oi == 2);
            for (size_t i = 0; i < 200 * 6 * 4; i++) d.x[i] *= 20.0f;
            const size_t P = mom_net_num_params(net);
            float *g = malloc(P * sizeof *g), *o = malloc(P * sizeof *o);
            double l;
            assert_ok(mom_net_loss_grad(&l, g, net, &d.b, NULL));
            assert_true(isfinite(l));
            for (size_t i = 0; i < P; i++) assert_true(isfinite(g[i]));
            assert_ok(mom_net_fisher_diag(o, net, &d.b, NULL));
            for (size_t i = 0; i < P; i++) assert_true(isfinite(o[i]));
            assert_ok(mom_net_gv_begin(net, &d.b, NULL));
            assert_ok(mom_net_gv(o, net, g, 0.3));
            for (size_t i = 0; i < P; i++) assert_true(isfinite(o[i]));
            for (int m = 0; m < 2; m++) {
                assert_ok(mom_net_metric(&l, net, &d.b, NULL, m, 0));
                assert_true(isfinite(l));
            }
            free(g);
            free(o);
            tdata_free(&d);
            mom_net_destroy(net);
        }
    mom_rng_destroy(rng);
}

/* Every call with bad arguments fails with the documented status and a detail message, leaves the
 * parameters and the outputs untouched, and the net keeps working afterwards. */
static void test_failures(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 20, 0, NULL));
    mom_net *net;
    assert_ok(mom_net_create_rnn(&net, 2, 5, 2, MOM_ACT_TANH, MOM_OUT_LOGISTIC_XENT, 0, NULL));
    fill_params(net, rng, 0.5);
    const size_t P = mom_net_num_params(net);
    float *snap = malloc(P * sizeof *snap), *g = malloc(P * sizeof *g);
    memcpy(snap, mom_net_params(net), P * sizeof *snap);
    tdata d;
    tdata_make(&d, rng, 4, 6, 2, 2, MOM_OUT_LOGISTIC_XENT, MASK_ALL, 1);
    double loss = 12345.0;
    for (size_t i = 0; i < P; i++) g[i] = 7.0f;

    /* NULL pointers */
    assert_status(mom_net_loss_grad(&loss, g, NULL, &d.b, NULL), MOM_E_INVALID);
    assert_status(mom_net_loss_grad(NULL, g, net, &d.b, NULL), MOM_E_INVALID);
    assert_true(strlen(mom_net_errmsg(net)) > 0);
    assert_status(mom_net_loss_grad(&loss, NULL, net, &d.b, NULL), MOM_E_INVALID);
    assert_status(mom_net_loss_grad(&loss, g, net, NULL, NULL), MOM_E_INVALID);
    assert_status(mom_net_loss_grad(&loss, mom_net_params(net), net, &d.b, NULL), MOM_E_INVALID);
    mom_batch b = d.b;
    b.inputs = NULL;
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    b = d.b;
    b.targets = NULL;
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    assert_status(mom_net_metric(&loss, net, &b, NULL, MOM_METRIC_LOSS, 0), MOM_E_INVALID);
    assert_status(mom_net_gv_begin(net, &b, NULL), MOM_E_INVALID);
    /* empty batch, zero steps */
    b = d.b;
    b.n = 0;
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    b = d.b;
    b.steps = 0;
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    assert_status(mom_net_forward(g, net, &b, NULL, 1), MOM_E_INVALID);
    assert_status(mom_net_reserve(net, 4, 0), MOM_E_INVALID);
    assert_status(mom_net_reserve(net, 0, 4), MOM_E_INVALID);
    /* lengths out of range */
    size_t bad_len[4] = {6, 0, 3, 3};
    b = d.b;
    b.lengths = bad_len;
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    assert_non_null(strstr(mom_net_errmsg(net), "lengths"));
    bad_len[1] = 7;
    assert_status(mom_net_fisher_diag(g, net, &b, NULL), MOM_E_INVALID);
    /* negative or non-finite mask */
    float *mask = malloc(6 * 4 * sizeof *mask);
    memcpy(mask, d.mask, 6 * 4 * sizeof *mask);
    b = d.b;
    b.mask = mask;
    mask[5] = -0.5f;
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    assert_non_null(strstr(mom_net_errmsg(net), "mask"));
    mask[5] = NAN;
    assert_status(mom_net_gv_begin(net, &b, NULL), MOM_E_INVALID);
    mask[5] = INFINITY;
    assert_status(mom_net_metric(&loss, net, &b, NULL, MOM_METRIC_LOSS, 0), MOM_E_INVALID);
    /* steps * n overflows size_t: refused before the mask (of 24 values here) is read at all */
    mask[5] = 1.0f;
    b.steps = SIZE_MAX;
    b.n = 2;
    assert_status(mom_net_loss(&loss, net, &b, NULL), MOM_E_INVALID);
    assert_non_null(strstr(mom_net_errmsg(net), "overflows"));
    /* queries with a NULL output say so (not some earlier failure's message) */
    double v;
    assert_status(mom_net_get(&v, net, 99), MOM_E_INVALID);
    assert_status(mom_net_get(NULL, net, MOM_NET_THREADS), MOM_E_INVALID);
    assert_non_null(strstr(mom_net_errmsg(net), "output pointer is NULL"));
    assert_status(mom_net_get(&v, net, 99), MOM_E_INVALID);
    assert_status(mom_net_find_block(NULL, net, MOM_BLOCK_W_HH, 0), MOM_E_INVALID);
    assert_non_null(strstr(mom_net_errmsg(net), "output pointer is NULL"));
    /* a batch too large for BLAS indexing (n*T > INT_MAX) is refused before touching data */
    b = d.b;
    b.n = (size_t)1 << 20;
    b.steps = (size_t)1 << 12;
    b.mask = NULL;
    b.lengths = NULL;
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    /* unknown metric, class metric on fine net is allowed, struct damping negative / NaN */
    assert_status(mom_net_metric(&loss, net, &d.b, NULL, 99, 0), MOM_E_INVALID);
    assert_status(mom_net_metric(&loss, net, &d.b, NULL, MOM_METRIC_THRESHOLD_ERROR, NAN),
                  MOM_E_INVALID);
    assert_ok(mom_net_gv_begin(net, &d.b, NULL));
    assert_status(mom_net_gv(g, net, snap, -1.0), MOM_E_INVALID);
    assert_status(mom_net_gv(g, net, snap, NAN), MOM_E_INVALID);
    assert_status(mom_net_gv(g, net, g, 0.0), MOM_E_INVALID);
    assert_status(mom_net_gv(NULL, net, snap, 0.0), MOM_E_INVALID);
    for (size_t i = 0; i < P; i++) g[i] = 7.0f;
    /* non-finite data and parameters with checking on (and off: no crash) */
    assert_ok(mom_net_set(net, MOM_NET_CHECK_FINITE, 1));
    float keep = d.x[3];
    d.x[3] = NAN;
    assert_status(mom_net_loss_grad(&loss, g, net, &d.b, NULL), MOM_E_INVALID);
    assert_non_null(strstr(mom_net_errmsg(net), "inputs"));
    assert_status(mom_net_forward(g, net, &d.b, NULL, 2), MOM_E_INVALID);
    d.x[3] = keep;
    keep = d.t[1];
    d.t[1] = INFINITY;
    assert_status(mom_net_loss(&loss, net, &d.b, NULL), MOM_E_INVALID);
    assert_non_null(strstr(mom_net_errmsg(net), "targets"));
    d.t[1] = keep;
    float *pbad = malloc(P * sizeof *pbad);
    memcpy(pbad, snap, P * sizeof *pbad);
    pbad[P - 1] = NAN;
    assert_status(mom_net_loss_grad(&loss, g, net, &d.b, pbad), MOM_E_INVALID);
    assert_non_null(strstr(mom_net_errmsg(net), "params"));
    assert_ok(mom_net_set(net, MOM_NET_CHECK_FINITE, 0));
    assert_ok(mom_net_loss_grad(&loss, g, net, &d.b, pbad)); /* unchecked: computes, no crash */
    free(pbad);
    loss = 12345.0;
    for (size_t i = 0; i < P; i++) g[i] = 7.0f;
    /* allocation failure while growing the workspace: NOMEM, then it works */
    {
        test_alloc ta;
        test_alloc_init(&ta, 0);
        mom_net *n2;
        assert_ok(mom_net_create_rnn(&n2, 2, 5, 2, MOM_ACT_TANH, MOM_OUT_LOGISTIC_XENT, 0, &ta.a));
        ta.fail_at = ta.calls + 1;
        double l2 = 5.0;
        assert_status(mom_net_loss_grad(&l2, g, n2, &d.b, NULL), MOM_E_NOMEM);
        assert_true(l2 == 5.0);
        ta.fail_at = ta.calls + 1;
        assert_status(mom_net_gv_begin(n2, &d.b, NULL), MOM_E_NOMEM);
        assert_status(mom_net_gv(g, n2, snap, 0.0), MOM_E_STATE);
        ta.fail_at = ta.calls + 1;
        assert_status(mom_net_reserve(n2, 4, 6), MOM_E_NOMEM);
        ta.fail_at = 0;
        assert_ok(mom_net_loss_grad(&l2, g, n2, &d.b, NULL));
        size_t bytes = mom_net_workspace_bytes(n2);
        ta.fail_at = ta.calls + 1;
        assert_status(mom_net_reserve(n2, 40, 60), MOM_E_NOMEM);
        assert_int_equal(mom_net_workspace_bytes(n2), bytes); /* previous workspace kept */
        ta.fail_at = ta.calls + 2; /* the second workspace fails: the first is not grown */
        assert_status(mom_net_reserve(n2, 40, 60), MOM_E_NOMEM);
        assert_int_equal(mom_net_workspace_bytes(n2), bytes);
        ta.fail_at = 0;
        assert_ok(mom_net_loss_grad(&l2, g, n2, &d.b, NULL));
        mom_net_destroy(n2);
        assert_int_equal(ta.live, 0);
        for (size_t i = 0; i < P; i++) g[i] = 7.0f;
    }
    /* nothing was modified by the failures */
    assert_memory_equal(snap, mom_net_params(net), P * sizeof *snap);
    assert_true(loss == 12345.0);
    for (size_t i = 0; i < P; i++) assert_true(g[i] == 7.0f);
    /* and the net still works */
    assert_ok(mom_net_loss_grad(&loss, g, net, &d.b, NULL));
    assert_true(isfinite(loss));
    free(mask);
    free(snap);
    free(g);
    tdata_free(&d);
    mom_net_destroy(net);
    mom_rng_destroy(rng);
}

/* The loss at explicit params equals the loss after copying them into the net, and the
 * net's own vector is not modified by any computation. */
static void test_explicit_params(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 21, 0, NULL));
    mom_net *net;
    assert_ok(mom_net_create_rnn(&net, 3, 6, 2, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED,
                                 MOM_RNN_LEARN_H0, NULL));
    const size_t P = mom_net_num_params(net);
    float *q = malloc(P * sizeof *q), *g1 = malloc(P * sizeof *g1), *g2 = malloc(P * sizeof *g2);
    for (size_t i = 0; i < P; i++) q[i] = (float)(0.4 * mom_rng_normal(rng));
    tdata d;
    tdata_make(&d, rng, 5, 7, 3, 2, MOM_OUT_LINEAR_SQUARED, MASK_SPARSE, 1);
    double l1, l2;
    assert_ok(mom_net_loss_grad(&l1, g1, net, &d.b, q));
    for (size_t i = 0; i < P; i++) assert_true(mom_net_params(net)[i] == 0.0f);
    memcpy(mom_net_params(net), q, P * sizeof *q);
    assert_ok(mom_net_loss_grad(&l2, g2, net, &d.b, NULL));
    assert_true(l1 == l2);
    assert_memory_equal(g1, g2, P * sizeof *g1);
    free(q);
    free(g1);
    free(g2);
    tdata_free(&d);
    mom_net_destroy(net);
    mom_rng_destroy(rng);
}

/* The generic built-in checks of netcheck.c report small errors for recurrent nets too, and
 * large ones when the recurrent gradient or product is wrong. */
static const mom__net_ops *real_ops;
static mom__net_ops broken_ops;
static size_t broken_index;

static int broken_loss_grad(mom_net *net, const mom_batch *b, const float *p, double *loss,
                            float *grad)
{
    int rc = real_ops->loss_grad(net, b, p, loss, grad);
    if (rc == MOM_OK && grad != NULL) {
        double mx = 0;
        for (size_t i = 0; i < net->n_params; i++) mx = fmax(mx, fabs(grad[i]));
        grad[broken_index] += (float)(0.2 * mx);
    }
    return rc;
}

static int broken_gv(mom_net *net, const float *v, double c, float *out, const mom__gv_acc *acc)
{
    int rc = real_ops->gv(net, v, c, out, acc);
    if (rc == MOM_OK) {
        double mx = 0;
        for (size_t i = 0; i < net->n_params; i++) mx = fmax(mx, fabs(out[i]));
        out[broken_index] += (float)(0.2 * mx);
    }
    return rc;
}

static void test_builtin_checks(void **state)
{
    (void)state;
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 22, 0, NULL));
    double worst_g = 0, worst_g2 = 0, worst_gv = 0;
    for (int oi = 0; oi < 3; oi++)
        for (int mm = 0; mm < 3; mm++)
            for (int h0 = 0; h0 < 2; h0++) {
                int out = all_outputs[oi];
                mom_net *net;
                assert_ok(mom_net_create_rnn(&net, 3, 6, 3, MOM_ACT_TANH, out,
                                             h0 ? MOM_RNN_LEARN_H0 : 0, NULL));
                fill_params(net, rng, 0.5);
                tdata d;
                tdata_make(&d, rng, 4, 7, 3, 3, out, mm, h0);
                const size_t P = mom_net_num_params(net);
                float *snap = malloc(P * sizeof *snap);
                memcpy(snap, mom_net_params(net), P * sizeof *snap);
                /* float losses: with the default step (1e-3) the rounding noise of the loss
                 * reaches several percent of the check's floor on the smallest components (the
                 * gradient itself matches double differences to 3e-4, test_grad_fd); eps 1e-2
                 * brings it near 1e-2 */
                double eg = -1, eg2 = -1, egv = -1;
                assert_ok(mom_net_check_grad(&eg, net, &d.b, 0, 0.0));
                assert_ok(mom_net_check_grad(&eg2, net, &d.b, 0, 1e-2));
                assert_ok(mom_net_check_gv(&egv, net, &d.b, 3, 99));
                if (!(eg >= 0 && eg < 0.1) || !(eg2 >= 0 && eg2 < 3e-2) ||
                    !(egv >= 0 && egv < 1e-3))
                    fail_msg("built-in checks: gradient %g (eps 1e-2: %g), Gv %g (out %d mask %d "
                             "h0 %d)", eg, eg2, egv, out, mm, h0);
                assert_memory_equal(snap, mom_net_params(net), P * sizeof *snap);
                assert_status(mom_net_gv(snap, net, mom_net_params(net), 0.0), MOM_E_STATE);
                worst_g = eg > worst_g ? eg : worst_g;
                worst_g2 = eg2 > worst_g2 ? eg2 : worst_g2;
                worst_gv = egv > worst_gv ? egv : worst_gv;
                if (oi == 0 && mm == 0) {
                    /* one entry of W_hh's gradient / product off by 20% of the largest entry */
                    real_ops = net->ops;
                    broken_ops = *real_ops;
                    broken_ops.loss_grad = broken_loss_grad;
                    broken_ops.gv = broken_gv;
                    broken_index = 3 * 6 + 7;
                    net->ops = &broken_ops;
                    assert_ok(mom_net_check_grad(&eg, net, &d.b, 0, 1e-2));
                    assert_true(eg > 0.05);
                    assert_ok(mom_net_check_gv(&egv, net, &d.b, 1, 99));
                    assert_true(egv > 1e-2);
                    net->ops = real_ops;
                }
                free(snap);
                tdata_free(&d);
                mom_net_destroy(net);
            }
    print_message("# mom_net_check_grad worst %.2e (eps 1e-2: %.2e), mom_net_check_gv worst "
                  "%.2e\n", worst_g, worst_g2, worst_gv);
    mom_rng_destroy(rng);
}

/* The hidden tanh (rnn.c computes its own, vectorized) is within 4 ulp of tanh in double over
 * a dense sweep and keeps the special values: h = tanh(x) with W_vh = I, W_hh = 0, b_h = 0. */
static void test_tanh_accuracy(void **state)
{
    (void)state;
    const size_t H = 61, T = 1; /* 61: exercises the vector tails */
    size_t n = 4096;
    mom_net *net;
    assert_ok(mom_net_create_rnn(&net, H, H, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, NULL));
    for (size_t j = 0; j < H; j++)
        mom_net_params(net)[j * H + j] = 1.0f;
    float *x = malloc(n * H * sizeof *x), *h = malloc(n * H * sizeof *h);
    double worst = 0;
    float worst_x = 0;
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < n * H; i++) {
            double u = (double)(i + round * n * H) / (double)(4 * n * H); /* [0, 1) */
            switch (round) {
            case 0: x[i] = (float)(-12.0 + 24.0 * u); break;      /* the whole range */
            case 1: x[i] = (float)(-1.0 + 2.0 * (4 * u - 1)); break; /* around 0 */
            case 2: x[i] = (float)ldexp(1.0, -40 + (int)(i % 40)) * (float)(1 + u) *
                           (i % 2 ? 1.0f : -1.0f); break;             /* tiny to ~1 */
            default: x[i] = (float)(0.3 + 0.4 * (4 * u - 3)) * (i % 2 ? 20.0f : -0.05f); break;
            }
        }
        mom_batch b = {n, T, x, NULL, NULL, NULL};
        assert_ok(mom_net_forward(h, net, &b, NULL, 1));
        for (size_t i = 0; i < n * H; i++) {
            double ref = tanh((double)x[i]);
            float rf = (float)ref;
            double ulp = (double)nextafterf(fabsf(rf), 2.0f) - fabsf(rf);
            double e = fabs((double)h[i] - ref) / ulp;
            if (e > worst) { worst = e; worst_x = x[i]; }
        }
    }
    if (worst > 4.0)
        fail_msg("tanh error %.2f ulp at x = %.9g", worst, worst_x);
    print_message("# hidden tanh: worst error %.2f ulp (x = %.6g)\n", worst, worst_x);
    /* special values, through the bias (a product with inf would give NaN first) */
    for (size_t i = 0; i < n * H; i++) x[i] = 0.0f;
    float *bh = mom_net_params(net) + H * H + H * H;
    const float sp[5] = {INFINITY, -INFINITY, NAN, 1e30f, -9.0f};
    for (int i = 0; i < 5; i++) bh[i] = sp[i];
    mom_batch b = {1, T, x, NULL, NULL, NULL};
    assert_ok(mom_net_forward(h, net, &b, NULL, 1));
    assert_true(h[0] == 1.0f && h[1] == -1.0f && isnan(h[2]));
    assert_true(h[3] == 1.0f && fabsf(h[4] + 1.0f) <= 6e-8f);
    free(x);
    free(h);
    mom_net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_blocks),
        cmocka_unit_test(test_create_invalid),
        cmocka_unit_test(test_create_nomem),
        cmocka_unit_test(test_grad_fd),
        cmocka_unit_test(test_gv_explicit),
        cmocka_unit_test(test_gv_symmetric_psd),
        cmocka_unit_test(test_gv_cache),
        cmocka_unit_test(test_fisher),
        cmocka_unit_test(test_forward_layers),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_uncounted_targets),
        cmocka_unit_test(test_no_alloc_after_first),
        cmocka_unit_test(test_long_sequences_finite),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_explicit_params),
        cmocka_unit_test(test_builtin_checks),
        cmocka_unit_test(test_tanh_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
