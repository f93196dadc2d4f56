/* Tests of feedforward networks (lib/ffnet.c) and the built-in checks (lib/netcheck.c).
 *
 * A plain double-precision reference network written here (one case at a time, no BLAS) is the
 * yardstick: its gradient is itself checked against double finite differences, and the library's
 * float results are compared with it. */
#include "testutil.h"
#include "../lib/internal.h"
#include "../lib/net_internal.h"
#include "../lib/blas.h"

int mom__ff_check_args(mom__base *b, size_t *n_params, size_t n_layers, const size_t *sizes,
                       const int *hidden_act, int output);

/* ---- double reference ------------------------------------------------------------------------ */

#define REF_MAXL 6
#define REF_MAXW 16

typedef struct ref_net {
    size_t L;
    size_t sizes[REF_MAXL + 1];
    int act[REF_MAXL + 1]; /* act[l] for hidden unit layers l = 1..L-1 */
    int output;
    size_t n_params;
    size_t w_off[REF_MAXL + 1], b_off[REF_MAXL + 1]; /* of weight layer l = 1..L */
} ref_net;

static void ref_setup(ref_net *r, size_t L, const size_t *sizes, const int *hidden, int output)
{
    memset(r, 0, sizeof *r);
    r->L = L;
    r->output = output;
    size_t off = 0;
    for (size_t l = 0; l <= L; l++) {
        assert_true(sizes[l] <= REF_MAXW);
        r->sizes[l] = sizes[l];
    }
    for (size_t l = 1; l < L; l++)
        r->act[l] = hidden[l - 1];
    for (size_t l = 1; l <= L; l++) {
        r->w_off[l] = off;
        off += sizes[l] * sizes[l - 1];
        r->b_off[l] = off;
        off += sizes[l];
    }
    r->n_params = off;
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

static double ref_dact(int act, double a) /* derivative through the activation value */
{
    switch (act) {
    case MOM_ACT_LOGISTIC: return a * (1 - a);
    case MOM_ACT_TANH: return 1 - a * a;
    case MOM_ACT_RELU: return a > 0 ? 1 : 0;
    default: return 1;
    }
}

/* Activations of one case: a[l][j]; z receives the output pre-activations, y the outputs.
 * Returns the loss against t (t NULL: 0). */
static double ref_case(const ref_net *r, const double *p, const float *x,
                       double a[REF_MAXL + 1][REF_MAXW], double *z, const float *t)
{
    for (size_t i = 0; i < r->sizes[0]; i++)
        a[0][i] = x[i];
    size_t L = r->L, k = r->sizes[L];
    for (size_t l = 1; l <= L; l++) {
        for (size_t j = 0; j < r->sizes[l]; j++) {
            double s = p[r->b_off[l] + j];
            for (size_t i = 0; i < r->sizes[l - 1]; i++)
                s += p[r->w_off[l] + j * r->sizes[l - 1] + i] * a[l - 1][i];
            if (l < L)
                a[l][j] = ref_act(r->act[l], s);
            else
                z[j] = s;
        }
    }
    double loss = 0;
    double *y = a[L];
    if (r->output == MOM_OUT_SOFTMAX_XENT) {
        double m = z[0], s = 0;
        for (size_t j = 1; j < k; j++)
            m = z[j] > m ? z[j] : m;
        for (size_t j = 0; j < k; j++)
            s += exp(z[j] - m);
        for (size_t j = 0; j < k; j++) {
            y[j] = exp(z[j] - m) / s;
            if (t)
                loss -= t[j] * (z[j] - m - log(s));
        }
    } else if (r->output == MOM_OUT_LOGISTIC_XENT) {
        for (size_t j = 0; j < k; j++) {
            y[j] = 1.0 / (1.0 + exp(-z[j]));
            if (t)
                loss -= t[j] * log(y[j]) + (1 - t[j]) * log(1 - y[j]);
        }
    } else {
        for (size_t j = 0; j < k; j++) {
            y[j] = z[j];
            if (t)
                loss += 0.5 * (y[j] - t[j]) * (y[j] - t[j]);
        }
    }
    return loss;
}

/* Backpropagate dz (dLoss/dz of one case) through the activations a, adding into g. */
static void ref_backprop(const ref_net *r, const double *p, double a[REF_MAXL + 1][REF_MAXW],
                         const double *dz, double *g)
{
    double d[REF_MAXW], dp[REF_MAXW];
    size_t L = r->L;
    for (size_t j = 0; j < r->sizes[L]; j++)
        d[j] = dz[j];
    for (size_t l = L; l >= 1; l--) {
        size_t si = r->sizes[l - 1], so = r->sizes[l];
        for (size_t j = 0; j < so; j++) {
            g[r->b_off[l] + j] += d[j];
            for (size_t i = 0; i < si; i++)
                g[r->w_off[l] + j * si + i] += d[j] * a[l - 1][i];
        }
        if (l == 1)
            break;
        for (size_t i = 0; i < si; i++) {
            double s = 0;
            for (size_t j = 0; j < so; j++)
                s += d[j] * p[r->w_off[l] + j * si + i];
            dp[i] = s * ref_dact(r->act[l - 1], a[l - 1][i]);
        }
        for (size_t i = 0; i < si; i++)
            d[i] = dp[i];
    }
}

/* Mean loss over n cases and, if g != NULL, its gradient (zeroed first). */
static double ref_loss_grad(const ref_net *r, const double *p, const float *x, const float *t,
                            size_t n, double *g)
{
    double a[REF_MAXL + 1][REF_MAXW], z[REF_MAXW], dz[REF_MAXW];
    size_t k = r->sizes[r->L], ni = r->sizes[0];
    if (g)
        memset(g, 0, r->n_params * sizeof *g);
    double total = 0;
    for (size_t c = 0; c < n; c++) {
        total += ref_case(r, p, x + c * ni, a, z, t + c * k);
        if (g) {
            for (size_t j = 0; j < k; j++)
                dz[j] = (a[r->L][j] - t[c * k + j]) / (double)n;
            ref_backprop(r, p, a, dz, g);
        }
    }
    return total / (double)n;
}

/* H u for one case (Hessian of the loss with respect to z). */
static void ref_hess(int output, const double *y, const double *u, double *out, size_t k)
{
    double yu = 0;
    for (size_t j = 0; j < k; j++)
        yu += y[j] * u[j];
    for (size_t j = 0; j < k; j++) {
        if (output == MOM_OUT_LOGISTIC_XENT)
            out[j] = y[j] * (1 - y[j]) * u[j];
        else if (output == MOM_OUT_SOFTMAX_XENT)
            out[j] = y[j] * (u[j] - yu);
        else
            out[j] = u[j];
    }
}

/* The Gauss-Newton matrix G (n_params^2, row-major) formed explicitly: J of each case by
 * backpropagating unit vectors e_k from z, then mean of J^T H J. */
static void ref_gn_matrix(const ref_net *r, const double *p, const float *x, size_t n, double *G)
{
    size_t P = r->n_params, k = r->sizes[r->L], ni = r->sizes[0];
    double a[REF_MAXL + 1][REF_MAXW], z[REF_MAXW], e[REF_MAXW], hcol[REF_MAXW];
    double *J = calloc(k * P, sizeof *J), *HJ = calloc(k * P, sizeof *HJ);
    assert_non_null(J);
    assert_non_null(HJ);
    memset(G, 0, P * P * sizeof *G);
    for (size_t c = 0; c < n; c++) {
        (void)ref_case(r, p, x + c * ni, a, z, NULL);
        memset(J, 0, k * P * sizeof *J);
        for (size_t o = 0; o < k; o++) {
            for (size_t j = 0; j < k; j++)
                e[j] = j == o;
            ref_backprop(r, p, a, e, J + o * P);
        }
        /* HJ = H J, column by column of J */
        for (size_t q = 0; q < P; q++) {
            for (size_t j = 0; j < k; j++)
                e[j] = J[j * P + q];
            ref_hess(r->output, a[r->L], e, hcol, k);
            for (size_t j = 0; j < k; j++)
                HJ[j * P + q] = hcol[j];
        }
        for (size_t i = 0; i < P; i++)
            for (size_t q = 0; q < P; q++) {
                double s = 0;
                for (size_t j = 0; j < k; j++)
                    s += J[j * P + i] * HJ[j * P + q];
                G[i * P + q] += s / (double)n;
            }
    }
    free(J);
    free(HJ);
}

/* ---- helpers --------------------------------------------------------------------------------- */

static void fill_normal(float *x, size_t n, uint64_t seed, double sd)
{
    mom_rng *r;
    assert_ok(mom_rng_create(&r, seed, 0, NULL));
    assert_ok(mom_rng_fill_normal(r, x, n, 0.0, sd));
    mom_rng_destroy(r);
}

static void fill_uniform(float *x, size_t n, uint64_t seed)
{
    mom_rng *r;
    assert_ok(mom_rng_create(&r, seed, 1, NULL));
    assert_ok(mom_rng_fill_uniform(r, x, n, 0.0, 1.0));
    mom_rng_destroy(r);
}

/* Targets appropriate for the output: one-hot rows for softmax, values in [0,1] otherwise. */
static void fill_targets(float *t, size_t n, size_t k, int output, uint64_t seed)
{
    fill_uniform(t, n * k, seed);
    if (output == MOM_OUT_SOFTMAX_XENT) {
        for (size_t c = 0; c < n; c++) {
            size_t hot = (size_t)(t[c * k] * (float)k) % k;
            for (size_t j = 0; j < k; j++)
                t[c * k + j] = j == hot ? 1.0f : 0.0f;
        }
    }
}

static double *to_double(const float *x, size_t n)
{
    double *d = malloc(n * sizeof *d);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* A small random problem: network, reference, parameters, batch. */
typedef struct problem {
    mom_net *net;
    ref_net ref;
    size_t n;
    float *x, *t;
    mom_batch batch;
} problem;

static void problem_init(problem *pb, size_t L, const size_t *sizes, const int *hidden, int output,
                         size_t n, uint64_t seed, const mom_allocator *alloc)
{
    memset(pb, 0, sizeof *pb);
    assert_ok(mom_net_create_ff(&pb->net, L, sizes, hidden, output, alloc));
    ref_setup(&pb->ref, L, sizes, hidden, output);
    assert_int_equal(mom_net_num_params(pb->net), pb->ref.n_params);
    fill_normal(mom_net_params(pb->net), pb->ref.n_params, seed, 0.7);
    pb->n = n;
    pb->x = malloc(n * sizes[0] * sizeof(float));
    pb->t = malloc(n * sizes[L] * sizeof(float));
    assert_non_null(pb->x);
    assert_non_null(pb->t);
    fill_normal(pb->x, n * sizes[0], seed + 1, 1.0);
    fill_targets(pb->t, n, sizes[L], output, seed + 2);
    pb->batch = (mom_batch){n, 1, pb->x, pb->t, NULL, NULL};
}

static void problem_free(problem *pb)
{
    mom_net_destroy(pb->net);
    free(pb->x);
    free(pb->t);
}

/* ---- creation -------------------------------------------------------------------------------- */

static void test_create_layout(void **state)
{
    (void)state;
    const size_t sizes[] = {5, 4, 3, 2};
    const int acts[] = {MOM_ACT_TANH, MOM_ACT_RELU};
    mom_net *net;
    assert_ok(mom_net_create_ff(&net, 3, sizes, acts, MOM_OUT_SOFTMAX_XENT, NULL));
    assert_int_equal(mom_net_kind_of(net), MOM_NET_FEEDFORWARD);
    assert_int_equal(mom_net_num_params(net), 5 * 4 + 4 + 4 * 3 + 3 + 3 * 2 + 2);
    assert_int_equal(mom_net_num_inputs(net), 5);
    assert_int_equal(mom_net_num_outputs(net), 2);
    assert_int_equal(mom_net_output(net), MOM_OUT_SOFTMAX_XENT);
    assert_int_equal(mom_net_num_layers(net), 4);
    assert_int_equal(mom_net_num_blocks(net), 6);
    const int want_act[] = {MOM_ACT_LINEAR, MOM_ACT_TANH, MOM_ACT_RELU, MOM_ACT_SOFTMAX};
    for (size_t l = 0; l < 4; l++) {
        assert_int_equal(mom_net_layer_size(net, l), sizes[l]);
        assert_int_equal(mom_net_layer_act(net, l), want_act[l]);
    }
    assert_int_equal(mom_net_layer_size(net, 4), 0);
    assert_int_equal(mom_net_layer_act(net, 4), -1);
    size_t expect_off = 0;
    for (size_t i = 0; i < 6; i++) {
        int kind;
        size_t layer, rows, cols, offset;
        assert_ok(mom_net_block(net, i, &kind, &layer, &rows, &cols, &offset));
        assert_int_equal(layer, i / 2);
        assert_int_equal(offset, expect_off);
        assert_int_equal(rows, sizes[i / 2 + 1]);
        if (i % 2 == 0) {
            assert_int_equal(kind, MOM_BLOCK_WEIGHTS);
            assert_int_equal(cols, sizes[i / 2]);
        } else {
            assert_int_equal(kind, MOM_BLOCK_BIASES);
            assert_int_equal(cols, 1);
        }
        expect_off += rows * cols;
        size_t idx;
        assert_ok(mom_net_find_block(&idx, net, kind, layer));
        assert_int_equal(idx, i);
    }
    assert_int_equal(expect_off, mom_net_num_params(net));
    assert_status(mom_net_block(net, 6, NULL, NULL, NULL, NULL, NULL), MOM_E_INVALID);
    /* parameters start at zero */
    const float *p = mom_net_params(net);
    for (size_t i = 0; i < mom_net_num_params(net); i++)
        assert_true(p[i] == 0.0f);
    assert_int_equal(mom_net_workspace_bytes(net), 0);
    mom_net_destroy(net);
    mom_net_destroy(NULL);

    /* single layer, hidden_act may be NULL */
    const size_t s1[] = {3, 1};
    assert_ok(mom_net_create_ff(&net, 1, s1, NULL, MOM_OUT_LOGISTIC_XENT, NULL));
    assert_int_equal(mom_net_num_params(net), 4);
    assert_int_equal(mom_net_layer_act(net, 1), MOM_ACT_LOGISTIC);
    mom_net_destroy(net);
}

/* The paper's parameter counts (section 3). */
static void test_paper_param_counts(void **state)
{
    (void)state;
    const size_t curves[] = {784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784};
    const size_t mnist[] = {784, 1000, 500, 250, 30, 250, 500, 1000, 784};
    int acts[11];
    for (int i = 0; i < 11; i++)
        acts[i] = MOM_ACT_LOGISTIC;
    acts[5] = MOM_ACT_LINEAR;
    mom_net *net;
    assert_ok(mom_net_create_ff(&net, 12, curves, acts, MOM_OUT_LOGISTIC_XENT, NULL));
    assert_int_equal(mom_net_num_params(net), 842340);
    assert_int_equal(mom_net_layer_act(net, 6), MOM_ACT_LINEAR);
    mom_net_destroy(net);
    acts[5] = MOM_ACT_LOGISTIC;
    acts[3] = MOM_ACT_LINEAR;
    assert_ok(mom_net_create_ff(&net, 8, mnist, acts, MOM_OUT_LOGISTIC_XENT, NULL));
    assert_int_equal(mom_net_num_params(net), 2837314);
    mom_net_destroy(net);
}

static void expect_bad_args(size_t L, const size_t *sizes, const int *acts, int output,
                            const char *fragment)
{
    mom_net *net = (mom_net *)&net; /* must be reset to NULL */
    assert_status(mom_net_create_ff(&net, L, sizes, acts, output, NULL), MOM_E_INVALID);
    assert_null(net);
    mom__base b;
    b.errmsg[0] = '\0';
    size_t np = 12345;
    assert_status(mom__ff_check_args(&b, &np, L, sizes, acts, output), MOM_E_INVALID);
    assert_int_equal(np, 12345);
    if (strstr(b.errmsg, fragment) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\"", b.errmsg, fragment);
}

static void test_create_invalid(void **state)
{
    (void)state;
    const size_t good[] = {3, 4, 2};
    const int acts[] = {MOM_ACT_TANH};
    mom_net *net;
    assert_status(mom_net_create_ff(NULL, 2, good, acts, 0, NULL), MOM_E_INVALID);
    expect_bad_args(0, good, acts, 0, "n_layers");
    expect_bad_args(2, NULL, acts, 0, "sizes");
    expect_bad_args(2, good, NULL, 0, "hidden_act");
    expect_bad_args(2, good, acts, 3, "output");
    expect_bad_args(2, good, acts, -1, "output");
    const size_t zero[] = {3, 0, 2};
    expect_bad_args(2, zero, acts, 0, "sizes[1]");
    const size_t huge[] = {3, (size_t)mom__blas_max_dim() + 1, 2};
    expect_bad_args(2, huge, acts, 0, "sizes[1]");
    const int bad_act[] = {MOM_ACT_SOFTMAX};
    expect_bad_args(2, good, bad_act, 0, "hidden_act[0]");
    const int neg_act[] = {-1};
    expect_bad_args(2, good, neg_act, 0, "hidden_act[0]");
    const size_t one_out[] = {3, 4, 1};
    expect_bad_args(2, one_out, acts, MOM_OUT_SOFTMAX_XENT, "softmax");
    const size_t ovf[] = {(size_t)1 << 30, (size_t)1 << 30, (size_t)1 << 30, (size_t)1 << 30,
                          (size_t)1 << 30};
    const int acts4[] = {0, 0, 0};
    if (sizeof(size_t) == 8) {
        /* 2^60 weights per layer: the byte count overflows */
        expect_bad_args(4, ovf, acts4, 0, "parameter");
    }
    /* an incomplete allocator */
    mom_allocator bad = {NULL, NULL, NULL, NULL};
    assert_status(mom_net_create_ff(&net, 2, good, acts, 0, &bad), MOM_E_INVALID);
    /* softmax with 2 outputs is fine */
    assert_ok(mom_net_create_ff(&net, 2, good, acts, MOM_OUT_SOFTMAX_XENT, NULL));
    mom_net_destroy(net);
}

/* Every allocation failure in the constructor returns MOM_E_NOMEM and leaks nothing. */
static void test_create_nomem(void **state)
{
    (void)state;
    const size_t sizes[] = {3, 4, 5, 2};
    const int acts[] = {MOM_ACT_TANH, MOM_ACT_LOGISTIC};
    int succeeded = 0;
    long fail_at;
    for (fail_at = 1; fail_at < 100 && !succeeded; fail_at++) {
        test_alloc ta;
        test_alloc_init(&ta, fail_at);
        mom_net *net = (mom_net *)&ta;
        int rc = mom_net_create_ff(&net, 3, sizes, acts, MOM_OUT_SOFTMAX_XENT, &ta.a);
        if (rc == MOM_OK) {
            succeeded = 1;
            assert_int_equal(ta.failed, 0);
            mom_net_destroy(net);
        } else {
            assert_int_equal(rc, MOM_E_NOMEM);
            assert_null(net);
            assert_int_equal(ta.failed, 1);
        }
        assert_int_equal(ta.live, 0);
    }
    assert_true(succeeded);
    assert_true(fail_at > 3); /* at least a few allocations were exercised */
}

/* ---- loss and gradient ----------------------------------------------------------------------- */

/* Library loss/gradient vs the double reference, and the reference gradient vs double central
 * differences, for every hidden activation and every output. */
static void test_grad_all_acts_outputs(void **state)
{
    (void)state;
    for (int act = MOM_ACT_LINEAR; act <= MOM_ACT_RELU; act++) {
        for (int out = MOM_OUT_LINEAR_SQUARED; out <= MOM_OUT_SOFTMAX_XENT; out++) {
            const size_t sizes[] = {5, 6, 4, 3};
            const int acts[] = {act, act};
            problem pb;
            problem_init(&pb, 3, sizes, acts, out, 7, 100 + (uint64_t)(act * 3 + out), NULL);
            size_t P = pb.ref.n_params;
            float *g = malloc(P * sizeof *g);
            double *gr = malloc(P * sizeof *gr);
            double *p = to_double(mom_net_params(pb.net), P);
            double loss;
            assert_ok(mom_net_loss_grad(&loss, g, pb.net, &pb.batch, NULL));
            double lref = ref_loss_grad(&pb.ref, p, pb.x, pb.t, pb.n, gr);
            assert_true(rel_diff(loss, lref, 1e-12) < 1e-5);
            double l2;
            assert_ok(mom_net_loss(&l2, pb.net, &pb.batch, NULL));
            assert_true(l2 == loss);
            double gmax = 0;
            for (size_t i = 0; i < P; i++)
                gmax = fmax(gmax, fabs(gr[i]));
            assert_true(gmax > 1e-3);
            double worst_lib = 0, worst_fd = 0, worst_ref = 0;
            for (size_t i = 0; i < P; i++) {
                double keep = p[i], h = 1e-6 * fmax(1.0, fabs(keep));
                p[i] = keep + h;
                double lp = ref_loss_grad(&pb.ref, p, pb.x, pb.t, pb.n, NULL);
                p[i] = keep - h;
                double lm = ref_loss_grad(&pb.ref, p, pb.x, pb.t, pb.n, NULL);
                p[i] = keep;
                double fd = (lp - lm) / (2 * h);
                worst_fd = fmax(worst_fd, rel_diff(g[i], fd, 1e-3 * gmax));
                worst_ref = fmax(worst_ref, rel_diff(gr[i], fd, 1e-3 * gmax));
                worst_lib = fmax(worst_lib, rel_diff(g[i], gr[i], 1e-3 * gmax));
            }
            if (worst_fd >= 1e-3 || worst_ref >= 1e-5 || worst_lib >= 1e-4)
                fail_msg("act %d output %d: lib vs fd %.3g, ref vs fd %.3g, lib vs ref %.3g", act,
                         out, worst_fd, worst_ref, worst_lib);
            free(g);
            free(gr);
            free(p);
            problem_free(&pb);
        }
    }
}


/* ---- Gauss-Newton products ------------------------------------------------------------------- */

static double max_abs_d(const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* G v from the library vs G formed explicitly in double, on tiny nets of every output. */
static void test_gv_explicit(void **state)
{
    (void)state;
    static const struct {
        size_t L;
        size_t sizes[4];
        int acts[2];
        int output;
    } cases[] = {
        {2, {3, 4, 2}, {MOM_ACT_TANH}, MOM_OUT_LINEAR_SQUARED},
        {2, {3, 4, 2}, {MOM_ACT_LOGISTIC}, MOM_OUT_LOGISTIC_XENT},
        {2, {3, 4, 3}, {MOM_ACT_RELU}, MOM_OUT_SOFTMAX_XENT},
        {3, {3, 4, 3, 2}, {MOM_ACT_LOGISTIC, MOM_ACT_TANH}, MOM_OUT_LINEAR_SQUARED},
        {3, {3, 4, 3, 3}, {MOM_ACT_TANH, MOM_ACT_LINEAR}, MOM_OUT_SOFTMAX_XENT},
        {3, {2, 3, 4, 3}, {MOM_ACT_RELU, MOM_ACT_LOGISTIC}, MOM_OUT_LOGISTIC_XENT},
        {1, {4, 3}, {0}, MOM_OUT_SOFTMAX_XENT},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        problem pb;
        problem_init(&pb, cases[ci].L, cases[ci].sizes, cases[ci].acts, cases[ci].output, 5,
                     300 + ci, NULL);
        size_t P = pb.ref.n_params;
        double *p = to_double(mom_net_params(pb.net), P);
        double *G = malloc(P * P * sizeof *G), *ref = malloc(P * sizeof *ref);
        float *v = malloc(P * sizeof *v), *gv = malloc(P * sizeof *gv);
        ref_gn_matrix(&pb.ref, p, pb.x, pb.n, G);
        assert_ok(mom_net_gv_begin(pb.net, &pb.batch, NULL));
        for (int rep = 0; rep < 3; rep++) {
            fill_normal(v, P, 400 + ci * 10 + (uint64_t)rep, 1.0);
            assert_ok(mom_net_gv(gv, pb.net, v, 0.0));
            for (size_t i = 0; i < P; i++) {
                double s = 0;
                for (size_t j = 0; j < P; j++)
                    s += G[i * P + j] * v[j];
                ref[i] = s;
            }
            double scale = max_abs_d(ref, P), worst = 0;
            assert_true(scale > 1e-3);
            for (size_t i = 0; i < P; i++)
                worst = fmax(worst, fabs(gv[i] - ref[i]) / scale);
            if (worst > 1e-5)
                fail_msg("case %zu: |Gv - ref|_inf / |ref|_inf = %.3g", ci, worst);
        }
        free(p);
        free(G);
        free(ref);
        free(v);
        free(gv);
        problem_free(&pb);
    }
}

/* u^T G v = v^T G u and v^T G v >= 0 on random vectors, for every output. */
static void test_gv_symmetric_psd(void **state)
{
    (void)state;
    for (int out = 0; out < 3; out++) {
        const size_t sizes[] = {6, 9, 7, 4};
        const int acts[] = {MOM_ACT_TANH, MOM_ACT_LOGISTIC};
        problem pb;
        problem_init(&pb, 3, sizes, acts, out, 20, 500 + (uint64_t)out, NULL);
        size_t P = pb.ref.n_params;
        float *u = malloc(P * sizeof *u), *v = malloc(P * sizeof *v);
        float *gu = malloc(P * sizeof *gu), *gv = malloc(P * sizeof *gv);
        assert_ok(mom_net_gv_begin(pb.net, &pb.batch, NULL));
        for (int rep = 0; rep < 5; rep++) {
            fill_normal(u, P, 600 + (uint64_t)(rep * 2), 1.0);
            fill_normal(v, P, 601 + (uint64_t)(rep * 2), 1.0);
            assert_ok(mom_net_gv(gu, pb.net, u, 0.0));
            assert_ok(mom_net_gv(gv, pb.net, v, 0.0));
            double ugv = 0, vgu = 0, vgv = 0, ugu = 0;
            for (size_t i = 0; i < P; i++) {
                ugv += (double)u[i] * gv[i];
                vgu += (double)v[i] * gu[i];
                vgv += (double)v[i] * gv[i];
                ugu += (double)u[i] * gu[i];
            }
            assert_true(vgv > 0 && ugu > 0);
            if (rel_diff(ugv, vgu, 1e-3 * sqrt(ugu * vgv)) > 1e-4)
                fail_msg("output %d: u'Gv = %.9g, v'Gu = %.9g", out, ugv, vgu);
        }
        free(u);
        free(v);
        free(gu);
        free(gv);
        problem_free(&pb);
    }
}

/* Products reuse the cache of gv_begin: loss/gradient calls on other batches in between change
 * nothing, and a fresh gv_begin on the same batch gives bit-identical products. */
static void test_gv_cache(void **state)
{
    (void)state;
    const size_t sizes[] = {5, 7, 6, 3};
    const int acts[] = {MOM_ACT_LOGISTIC, MOM_ACT_TANH};
    problem a, b;
    problem_init(&a, 3, sizes, acts, MOM_OUT_SOFTMAX_XENT, 10, 700, NULL);
    problem_init(&b, 3, sizes, acts, MOM_OUT_SOFTMAX_XENT, 25, 701, NULL);
    size_t P = a.ref.n_params;
    float *v = malloc(P * sizeof *v), *r1 = malloc(P * sizeof *r1), *r2 = malloc(P * sizeof *r2);
    float *r3 = malloc(P * sizeof *r3), *g = malloc(P * sizeof *g);
    float *other_p = malloc(P * sizeof *other_p);
    fill_normal(v, P, 702, 1.0);
    fill_normal(other_p, P, 703, 0.5);
    assert_ok(mom_net_gv_begin(a.net, &a.batch, NULL));
    assert_ok(mom_net_gv(r1, a.net, v, 0.0));
    double loss;
    /* a larger batch (the workspace grows) and other parameters in between */
    assert_ok(mom_net_loss_grad(&loss, g, a.net, &b.batch, other_p));
    assert_ok(mom_net_fisher_diag(g, a.net, &b.batch, NULL));
    float *fw = malloc(25 * 7 * sizeof *fw);
    assert_ok(mom_net_forward(fw, a.net, &b.batch, other_p, 1));
    free(fw);
    assert_ok(mom_net_gv(r2, a.net, v, 0.0));
    assert_memory_equal(r1, r2, P * sizeof *r1);
    assert_ok(mom_net_gv_begin(a.net, &a.batch, NULL));
    assert_ok(mom_net_gv(r3, a.net, v, 0.0));
    assert_memory_equal(r1, r3, P * sizeof *r1);
    /* with another parameter vector the products differ */
    assert_ok(mom_net_gv_begin(a.net, &a.batch, other_p));
    assert_ok(mom_net_gv(r3, a.net, v, 0.0));
    assert_true(memcmp(r1, r3, P * sizeof *r1) != 0);
    free(v);
    free(r1);
    free(r2);
    free(r3);
    free(g);
    free(other_p);
    problem_free(&a);
    problem_free(&b);
}

/* ---- Fisher diagonal ------------------------------------------------------------------------- */

static void test_fisher_diag(void **state)
{
    (void)state;
    for (int out = 0; out < 3; out++) {
        const size_t sizes[] = {4, 6, 5, 3};
        const int acts[] = {MOM_ACT_RELU, MOM_ACT_TANH};
        problem pb;
        problem_init(&pb, 3, sizes, acts, out, 9, 800 + (uint64_t)out, NULL);
        size_t P = pb.ref.n_params;
        float *f = malloc(P * sizeof *f), *g = malloc(P * sizeof *g);
        double *ref = calloc(P, sizeof *ref);
        assert_ok(mom_net_fisher_diag(f, pb.net, &pb.batch, NULL));
        for (size_t c = 0; c < pb.n; c++) {
            mom_batch one = {1, 1, pb.x + c * sizes[0], pb.t + c * sizes[3], NULL, NULL};
            double loss;
            assert_ok(mom_net_loss_grad(&loss, g, pb.net, &one, NULL));
            for (size_t i = 0; i < P; i++)
                ref[i] += (double)g[i] * g[i] / (double)pb.n;
        }
        double scale = max_abs_d(ref, P), worst = 0;
        assert_true(scale > 1e-4);
        for (size_t i = 0; i < P; i++) {
            assert_true(f[i] >= 0.0f);
            worst = fmax(worst, rel_diff(f[i], ref[i], 1e-4 * scale));
        }
        if (worst > 1e-4)
            fail_msg("output %d: Fisher diagonal vs per-case loop: %.3g", out, worst);
        /* the net's own activations must not have been clobbered for the next call */
        float *f2 = malloc(P * sizeof *f2);
        assert_ok(mom_net_fisher_diag(f2, pb.net, &pb.batch, NULL));
        assert_memory_equal(f, f2, P * sizeof *f);
        free(f2);
        free(f);
        free(g);
        free(ref);
        problem_free(&pb);
    }
}

/* ---- forward --------------------------------------------------------------------------------- */

static void test_forward_layers(void **state)
{
    (void)state;
    const size_t sizes[] = {4, 6, 5, 3};
    const int acts[] = {MOM_ACT_TANH, MOM_ACT_RELU};
    problem pb;
    problem_init(&pb, 3, sizes, acts, MOM_OUT_SOFTMAX_XENT, 6, 900, NULL);
    double *p = to_double(mom_net_params(pb.net), pb.ref.n_params);
    float buf[6 * 6];
    double a[REF_MAXL + 1][REF_MAXW], z[REF_MAXW];
    for (size_t l = 0; l <= 3; l++) {
        assert_ok(mom_net_forward(buf, pb.net, &pb.batch, NULL, l));
        for (size_t c = 0; c < pb.n; c++) {
            (void)ref_case(&pb.ref, p, pb.x + c * 4, a, z, NULL);
            for (size_t j = 0; j < sizes[l]; j++)
                assert_true(fabs(buf[c * sizes[l] + j] - a[l][j]) < 1e-5 * fmax(1, fabs(a[l][j])));
        }
    }
    /* the output pre-activations, through the internal pseudo layer */
    assert_ok(pb.net->ops->forward(pb.net, &pb.batch, mom_net_params(pb.net), MOM__LAYER_Z, buf));
    for (size_t c = 0; c < pb.n; c++) {
        (void)ref_case(&pb.ref, p, pb.x + c * 4, a, z, NULL);
        for (size_t j = 0; j < 3; j++)
            assert_true(fabs(buf[c * 3 + j] - z[j]) < 1e-5 * fmax(1, fabs(z[j])));
    }
    /* the public entry point does not accept the pseudo layer, nor any layer past the output */
    assert_status(mom_net_forward(buf, pb.net, &pb.batch, NULL, MOM__LAYER_Z), MOM_E_INVALID);
    assert_status(mom_net_forward(buf, pb.net, &pb.batch, NULL, 4), MOM_E_INVALID);
    /* targets are not needed */
    mom_batch nt = pb.batch;
    nt.targets = NULL;
    assert_ok(mom_net_forward(buf, pb.net, &nt, NULL, 3));
    free(p);
    problem_free(&pb);
}

/* ---- metrics --------------------------------------------------------------------------------- */

static void test_metrics_by_hand(void **state)
{
    (void)state;
    /* y = W x + b with W = [1 0; 0 1; 1 1], b = (0, 0, 0.5) */
    const size_t sizes[] = {2, 3};
    mom_net *net;
    assert_ok(mom_net_create_ff(&net, 1, sizes, NULL, MOM_OUT_LINEAR_SQUARED, NULL));
    const float p[] = {1, 0, 0, 1, 1, 1, 0, 0, 0.5f};
    memcpy(mom_net_params(net), p, sizeof p);
    const float x[] = {1, 2, 0.5f, -1};
    /* case 0: y = (1, 2, 3.5), off by 0.03 in the last unit; case 1: y = (0.5, -1, 0) */
    const float t[] = {1, 2, 3.53f, 0, 1, 0};
    mom_batch b = {2, 0, x, t, NULL, NULL};
    double e0 = 3.5 - (double)3.53f;
    double sq = (e0 * e0 + 0.25 + 4.0) / 2.0, v;
    assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_SQUARED_ERROR, 0));
    assert_true(fabs(v - sq) < 1e-9);
    assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_LOSS, 0));
    assert_true(fabs(v - sq / 2) < 1e-9);
    assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_CLASS_ERROR, 0));
    assert_true(v == 0.5); /* case 0 right (unit 2), case 1 wrong (0 vs 1) */
    assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_WRONG_SYMBOLS, 0));
    assert_true(v == 0.5);
    assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, 0)); /* 0.04 */
    assert_true(v == 0.5);
    assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, -1)); /* 0.04 */
    assert_true(v == 0.5);
    assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, 0.01));
    assert_true(v == 1.0);
    assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, 3.0));
    assert_true(v == 0.0);
    /* evaluated at another parameter vector: W = 0, b = 0 gives y = 0 */
    const float zero[9] = {0};
    assert_ok(mom_net_metric(&v, net, &b, zero, MOM_METRIC_SQUARED_ERROR, 0));
    assert_true(fabs(v - (1 + 4 + (double)3.53f * 3.53f + 1) / 2) < 1e-6);
    assert_status(mom_net_metric(&v, net, &b, NULL, 99, 0), MOM_E_INVALID);
    assert_status(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, NAN),
                  MOM_E_INVALID);
    assert_status(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_THRESHOLD_ERROR, INFINITY),
                  MOM_E_INVALID);
    /* the parameter of the other metrics is ignored, whatever its value */
    assert_ok(mom_net_metric(&v, net, &b, NULL, MOM_METRIC_LOSS, NAN));
    assert_true(fabs(v - sq / 2) < 1e-9);
    /* a NaN output is off by more than any threshold (as on a recurrent net) */
    float pn[9];
    memcpy(pn, p, sizeof pn);
    pn[6] = NAN; /* the first output's bias */
    assert_ok(mom_net_set(net, MOM_NET_CHECK_FINITE, 0));
    assert_ok(mom_net_metric(&v, net, &b, pn, MOM_METRIC_THRESHOLD_ERROR, 100.0));
    assert_true(v == 1.0);
    mom_net_destroy(net);

    /* softmax: W = 0, b = (0, ln 2) gives y = (1/3, 2/3) for every input */
    const size_t s2[] = {2, 2};
    assert_ok(mom_net_create_ff(&net, 1, s2, NULL, MOM_OUT_SOFTMAX_XENT, NULL));
    float *q = mom_net_params(net);
    q[4] = 0;
    q[5] = (float)log(2.0);
    const float t2[] = {1, 0, 0, 1, 0, 1};
    const float x2[6] = {0.3f, -2, 5, 1, 0, 0};
    mom_batch b2 = {3, 1, x2, t2, NULL, NULL};
    assert_ok(mom_net_metric(&v, net, &b2, NULL, MOM_METRIC_LOSS, 0));
    assert_true(fabs(v - (log(3.0) + 2 * log(1.5)) / 3) < 1e-6);
    assert_ok(mom_net_metric(&v, net, &b2, NULL, MOM_METRIC_CLASS_ERROR, 0));
    assert_true(fabs(v - 1.0 / 3) < 1e-12);
    assert_ok(mom_net_metric(&v, net, &b2, NULL, MOM_METRIC_SQUARED_ERROR, 0));
    assert_true(fabs(v - (2 * (4.0 / 9) + 2 * 2 * (1.0 / 9)) / 3) < 1e-6);
    /* NaN outputs name no class: every case is wrong, also the first, whose class is 0 */
    q[4] = NAN;
    assert_ok(mom_net_metric(&v, net, &b2, NULL, MOM_METRIC_CLASS_ERROR, 0));
    assert_true(v == 1.0);
    assert_ok(mom_net_metric(&v, net, &b2, NULL, MOM_METRIC_WRONG_SYMBOLS, 0));
    assert_true(v == 1.0);
    mom_net_destroy(net);

    /* class metrics need two outputs */
    const size_t s3[] = {2, 1};
    assert_ok(mom_net_create_ff(&net, 1, s3, NULL, MOM_OUT_LOGISTIC_XENT, NULL));
    mom_batch b3 = {2, 1, x, t, NULL, NULL};
    assert_status(mom_net_metric(&v, net, &b3, NULL, MOM_METRIC_CLASS_ERROR, 0), MOM_E_INVALID);
    assert_ok(mom_net_metric(&v, net, &b3, NULL, MOM_METRIC_THRESHOLD_ERROR, 0));
    mom_net_destroy(net);
}

/* ---- built-in checks ------------------------------------------------------------------------- */

/* Wrappers that corrupt one entry of the gradient / G v, to show that the checks catch it. */
static mom__net_ops broken_ops;
static const mom__net_ops *real_ops;
static size_t broken_index;

static float max_abs_f(const float *x, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

static int broken_loss_grad(mom_net *net, const mom_batch *b, const float *p, double *loss,
                            float *grad)
{
    int rc = real_ops->loss_grad(net, b, p, loss, grad);
    if (grad)
        grad[broken_index] += 0.05f * max_abs_f(grad, net->n_params);
    return rc;
}

static int broken_gv(mom_net *net, const float *v, double damping, float *out,
                     const mom__gv_acc *acc)
{
    int rc = real_ops->gv(net, v, damping, out, acc);
    out[broken_index] += 0.05f * max_abs_f(out, net->n_params);
    return rc;
}

/* The accumulating product of HF's CG (mom__net_gv_acc): the scale callback sees v^T G v from
 * the R-pass, and out += alpha G v with the alpha it returns; alpha = 0 leaves out alone; only
 * feedforward nets have it, and it needs mom_net_gv_begin() like mom_net_gv(). */
typedef struct acc_probe {
    double quad;
    float alpha;
    int calls;
} acc_probe;

static float probe_scale(double quad, void *ctx)
{
    acc_probe *pr = ctx;
    pr->quad = quad;
    pr->calls++;
    return pr->alpha;
}

static void test_accumulating_product(void **state)
{
    (void)state;
    for (int out = 0; out < 3; out++) {
        const size_t sizes[] = {5, 6, 3, 4};
        const int acts[] = {MOM_ACT_LOGISTIC, MOM_ACT_TANH};
        problem pb;
        problem_init(&pb, 3, sizes, acts, out, 9, 2000 + (uint64_t)out, NULL);
        const size_t P = pb.ref.n_params;
        float *v = malloc(P * sizeof *v), *gv = malloc(P * sizeof *gv),
              *r0 = malloc(P * sizeof *r0), *r = malloc(P * sizeof *r);
        mom_rng *rng;
        assert_ok(mom_rng_create(&rng, 77, 0, NULL));
        assert_ok(mom_rng_fill_normal(rng, v, P, 0.0, 1.0));
        assert_ok(mom_rng_fill_normal(rng, r0, P, 0.0, 1.0));
        mom_rng_destroy(rng);
        acc_probe pr = {NAN, 0.37f, 0};
        const mom__gv_acc acc = {probe_scale, &pr};
        memcpy(r, r0, P * sizeof *r);
        /* no scale: refused (it would overwrite r) */
        const mom__gv_acc no_scale = {NULL, &pr};
        assert_status(mom__net_gv_acc(r, pb.net, v, NULL), MOM_E_INVALID);
        assert_status(mom__net_gv_acc(r, pb.net, v, &no_scale), MOM_E_INVALID);
        assert_non_null(strstr(mom_net_errmsg(pb.net), "acc->scale"));
        /* no Gauss-Newton state yet */
        assert_status(mom__net_gv_acc(r, pb.net, v, &acc), MOM_E_STATE);
        assert_int_equal(pr.calls, 0);
        assert_ok(mom_net_gv_begin(pb.net, &pb.batch, NULL));
        assert_ok(mom_net_gv(gv, pb.net, v, 0.0));
        assert_ok(mom__net_gv_acc(r, pb.net, v, &acc));
        assert_int_equal(pr.calls, 1);
        double vgv = 0, gmax = 0, err = 0;
        for (size_t i = 0; i < P; i++) {
            vgv += (double)v[i] * gv[i];
            gmax = fmax(gmax, fabs((double)gv[i]));
            err = fmax(err, fabs((double)r[i] - ((double)r0[i] + 0.37 * (double)gv[i])));
        }
        assert_true(vgv > 0);
        if (!(fabs(pr.quad - vgv) <= 1e-5 * vgv))
            fail_msg("output %d: v^T G v %.9g from the R-pass, %.9g from the product", out,
                     pr.quad, vgv);
        if (!(err <= 1e-5 * (gmax + 1.0)))
            fail_msg("output %d: r + alpha G v off by %.3g", out, err);
        /* alpha = 0: untouched */
        pr.alpha = 0.0f;
        memcpy(r, r0, P * sizeof *r);
        assert_ok(mom__net_gv_acc(r, pb.net, v, &acc));
        assert_int_equal(pr.calls, 2);
        assert_memory_equal(r, r0, P * sizeof *r);
        free(v);
        free(gv);
        free(r0);
        free(r);
        problem_free(&pb);
    }
    /* recurrent nets: refused, nothing touched */
    mom_net *rn;
    assert_ok(mom_net_create_rnn(&rn, 2, 3, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, NULL));
    const size_t P = mom_net_num_params(rn);
    float *r = calloc(P, sizeof *r), *v = calloc(P, sizeof *v);
    acc_probe pr = {NAN, 1.0f, 0};
    const mom__gv_acc acc = {probe_scale, &pr};
    assert_status(mom__net_gv_acc(r, rn, v, &acc), MOM_E_UNSUPPORTED);
    assert_int_equal(pr.calls, 0);
    assert_non_null(strstr(mom_net_errmsg(rn), "feedforward"));
    free(r);
    free(v);
    mom_net_destroy(rn);
}

static void test_builtin_checks(void **state)
{
    (void)state;
    for (int out = 0; out < 3; out++) {
        const size_t sizes[] = {4, 5, 4, 3};
        const int acts[] = {MOM_ACT_TANH, MOM_ACT_LOGISTIC};
        problem pb;
        problem_init(&pb, 3, sizes, acts, out, 8, 1000 + (uint64_t)out, NULL);
        size_t P = pb.ref.n_params;
        float *keep = malloc(P * sizeof *keep);
        memcpy(keep, mom_net_params(pb.net), P * sizeof *keep);
        double err = -1;
        /* float losses: with the default step the rounding noise of small components is a few
         * percent of the floor; a wrong gradient gives errors of order 1 (below) */
        assert_ok(mom_net_check_grad(&err, pb.net, &pb.batch, 0, 0));
        if (!(err >= 0 && err < 5e-2))
            fail_msg("output %d: check_grad error %.3g", out, err);
        err = -1;
        assert_ok(mom_net_check_grad(&err, pb.net, &pb.batch, 7, 1e-2));
        if (!(err >= 0 && err < 1e-2))
            fail_msg("output %d: check_grad (eps 1e-2) error %.3g", out, err);
        err = -1;
        assert_ok(mom_net_check_gv(&err, pb.net, &pb.batch, 3, 42));
        if (!(err >= 0 && err < 1e-3))
            fail_msg("output %d: check_gv error %.3g", out, err);
        assert_memory_equal(keep, mom_net_params(pb.net), P * sizeof *keep);
        /* the check leaves no Gauss-Newton cache behind */
        assert_status(mom_net_gv(keep, pb.net, mom_net_params(pb.net), 0), MOM_E_STATE);

        /* broken operations are detected: a gradient and a G v with one entry off
         * by 5% of the largest entry */
        const mom__net_ops *good = pb.net->ops;
        broken_ops = *good;
        real_ops = good;
        broken_ops.loss_grad = broken_loss_grad;
        broken_ops.gv = broken_gv;
        broken_index = P / 2;
        pb.net->ops = &broken_ops;
        assert_ok(mom_net_check_grad(&err, pb.net, &pb.batch, 0, 0));
        assert_true(err > 0.02);
        assert_ok(mom_net_check_gv(&err, pb.net, &pb.batch, 1, 42));
        assert_true(err > 1e-2);
        pb.net->ops = good;
        /* tiny weights (gradients far below the loss's rounding over the step) and the point
         * where every parameter is 0 (for a softmax net with uniform targets, a zero gradient):
         * a correct gradient passes; the broken one is still caught */
        for (int z = 0; z < 2; z++) {
            float *p = mom_net_params(pb.net);
            for (size_t i = 0; i < P; i++)
                p[i] = z ? 0.0f : keep[i] * 1e-3f;
            assert_ok(mom_net_check_grad(&err, pb.net, &pb.batch, 0, 0));
            if (!(err >= 0 && err < 5e-2))
                fail_msg("output %d, %s: check_grad error %.3g", out,
                         z ? "all zero" : "weights x 1e-3", err);
            pb.net->ops = &broken_ops;
            assert_ok(mom_net_check_grad(&err, pb.net, &pb.batch, 0, 0));
            pb.net->ops = good;
            if (!z)
                assert_true(err > 0.02);
        }
        memcpy(mom_net_params(pb.net), keep, P * sizeof *keep);
        free(keep);
        problem_free(&pb);
    }
    /* near a minimum the gradient is small beside the loss: logistic outputs, targets 0.5, tiny
     * weights (gradient ~1e-4, loss ~2); the differences of float losses cannot resolve such
     * entries, and the check must not call the gradient wrong for that */
    {
        const size_t sizes[] = {4, 5, 3};
        const int acts[] = {MOM_ACT_TANH};
        mom_net *net;
        assert_ok(mom_net_create_ff(&net, 2, sizes, acts, MOM_OUT_LOGISTIC_XENT, NULL));
        mom_rng *r;
        assert_ok(mom_rng_create(&r, 7, 0, NULL));
        float x[8 * 4], t[8 * 3];
        assert_ok(mom_rng_fill_uniform(r, mom_net_params(net), mom_net_num_params(net), -5e-4,
                                       5e-4));
        assert_ok(mom_rng_fill_uniform(r, x, 32, -0.5, 0.5));
        for (int i = 0; i < 24; i++)
            t[i] = 0.5f;
        mom_batch b = {8, 1, x, t, NULL, NULL};
        double err = -1;
        assert_ok(mom_net_check_grad(&err, net, &b, 0, 0));
        if (!(err >= 0 && err < 5e-2))
            fail_msg("near a minimum: check_grad error %.3g", err);
        mom_rng_destroy(r);
        mom_net_destroy(net);
    }
    /* invalid arguments */
    const size_t sizes[] = {3, 2};
    problem pb;
    problem_init(&pb, 1, sizes, NULL, 0, 4, 1100, NULL);
    double err = 7;
    assert_status(mom_net_check_grad(NULL, pb.net, &pb.batch, 0, 0), MOM_E_INVALID);
    assert_status(mom_net_check_grad(&err, NULL, &pb.batch, 0, 0), MOM_E_INVALID);
    assert_status(mom_net_check_grad(&err, pb.net, NULL, 0, 0), MOM_E_INVALID);
    assert_status(mom_net_check_grad(&err, pb.net, &pb.batch, 0, -1), MOM_E_INVALID);
    assert_status(mom_net_check_grad(&err, pb.net, &pb.batch, 0, NAN), MOM_E_INVALID);
    assert_status(mom_net_check_gv(NULL, pb.net, &pb.batch, 1, 0), MOM_E_INVALID);
    assert_status(mom_net_check_gv(&err, NULL, &pb.batch, 1, 0), MOM_E_INVALID);
    mom_batch bad = pb.batch;
    bad.n = 0;
    assert_status(mom_net_check_gv(&err, pb.net, &bad, 1, 0), MOM_E_INVALID);
    assert_true(err == 7);
    problem_free(&pb);
}

/* Every allocation failure inside the checks returns MOM_E_NOMEM, leaks nothing and leaves the
 * parameters and the workspace alone. */
static void test_checks_nomem(void **state)
{
    (void)state;
    const size_t sizes[] = {3, 4, 2};
    const int acts[] = {MOM_ACT_TANH};
    for (int which = 0; which < 2; which++) {
        int succeeded = 0;
        for (long fail_at = 1; fail_at < 60 && !succeeded; fail_at++) {
            test_alloc ta;
            test_alloc_init(&ta, 0);
            problem pb;
            problem_init(&pb, 2, sizes, acts, MOM_OUT_LOGISTIC_XENT, 5, 1200, &ta.a);
            size_t P = pb.ref.n_params;
            float keep[64];
            memcpy(keep, mom_net_params(pb.net), P * sizeof *keep);
            const size_t ws0 = mom_net_workspace_bytes(pb.net);
            ta.fail_at = ta.calls + fail_at;
            double err = 5;
            int rc = which == 0 ? mom_net_check_grad(&err, pb.net, &pb.batch, 0, 0)
                                : mom_net_check_gv(&err, pb.net, &pb.batch, 2, 1);
            if (rc == MOM_OK) {
                succeeded = 1;
                assert_true(err < 2e-2);
            } else {
                assert_int_equal(rc, MOM_E_NOMEM);
                assert_true(err == 5);
                assert_int_equal(mom_net_workspace_bytes(pb.net), ws0); /* nothing grown */
            }
            assert_memory_equal(keep, mom_net_params(pb.net), P * sizeof *keep);
            problem_free(&pb);
            assert_int_equal(ta.live, 0);
        }
        assert_true(succeeded);
    }
}

/* ---- memory ---------------------------------------------------------------------------------- */

/* After the first call with a batch size, calls with the same or smaller batches never allocate;
 * a reserve() makes even the first call allocation-free. */
static void test_no_allocation_after_first(void **state)
{
    (void)state;
    test_alloc ta;
    test_alloc_init(&ta, 0);
    const size_t sizes[] = {5, 8, 6, 4};
    const int acts[] = {MOM_ACT_LOGISTIC, MOM_ACT_RELU};
    problem pb;
    problem_init(&pb, 3, sizes, acts, MOM_OUT_SOFTMAX_XENT, 16, 1300, &ta.a);
    size_t P = pb.ref.n_params;
    float *g = malloc(P * sizeof *g), *v = malloc(P * sizeof *v);
    float *buf = malloc(16 * 8 * sizeof *buf);
    fill_normal(v, P, 1301, 1.0);
    mom_batch small = pb.batch;
    small.n = 5;
    double loss;
    assert_ok(mom_net_loss_grad(&loss, g, pb.net, &pb.batch, NULL));
    assert_ok(mom_net_gv_begin(pb.net, &pb.batch, NULL));
    long calls = ta.calls;
    size_t ws = mom_net_workspace_bytes(pb.net);
    assert_true(ws > 0);
    for (int rep = 0; rep < 2; rep++) {
        const mom_batch *bb = rep == 0 ? &pb.batch : &small;
        assert_ok(mom_net_loss_grad(&loss, g, pb.net, bb, NULL));
        assert_ok(mom_net_loss(&loss, pb.net, bb, NULL));
        assert_ok(mom_net_fisher_diag(g, pb.net, bb, NULL));
        for (size_t l = 0; l < 4; l++)
            assert_ok(mom_net_forward(buf, pb.net, bb, NULL, l));
        for (int m = 0; m <= MOM_METRIC_WRONG_SYMBOLS; m++)
            assert_ok(mom_net_metric(&loss, pb.net, bb, NULL, m, 0));
        assert_ok(mom_net_gv_begin(pb.net, bb, NULL));
        assert_ok(mom_net_gv(g, pb.net, v, 0));
    }
    assert_int_equal(ta.calls, calls);
    assert_int_equal(mom_net_workspace_bytes(pb.net), ws);
    problem_free(&pb);
    assert_int_equal(ta.live, 0);

    /* reserve first: no allocation at all in the calls */
    test_alloc_init(&ta, 0);
    problem_init(&pb, 3, sizes, acts, MOM_OUT_SOFTMAX_XENT, 16, 1300, &ta.a);
    assert_ok(mom_net_reserve(pb.net, 16, 0));
    calls = ta.calls;
    assert_ok(mom_net_loss_grad(&loss, g, pb.net, &pb.batch, NULL));
    assert_ok(mom_net_gv_begin(pb.net, &pb.batch, NULL));
    assert_ok(mom_net_gv(g, pb.net, v, 0));
    assert_int_equal(ta.calls, calls);
    /* reserving less changes nothing; a larger batch grows the workspace */
    assert_ok(mom_net_reserve(pb.net, 3, 7));
    assert_int_equal(ta.calls, calls);
    assert_status(mom_net_reserve(pb.net, 0, 0), MOM_E_INVALID);
    problem_free(&pb);
    assert_int_equal(ta.live, 0);
    /* ... also with helper threads, whose state the first shared pass would otherwise allocate:
     * passes of 256 x 256 values are shared */
    {
        const size_t big[] = {256, 256, 256};
        const int tanh_act[] = {MOM_ACT_TANH};
        test_alloc_init(&ta, 0);
        mom_net *net;
        assert_ok(mom_net_create_ff(&net, 2, big, tanh_act, MOM_OUT_LINEAR_SQUARED, &ta.a));
        assert_ok(mom_net_set(net, MOM_NET_THREADS, 2));
        const size_t n = 256, P2 = mom_net_num_params(net);
        float *x = calloc(n * 256, sizeof *x), *t = calloc(n * 256, sizeof *t);
        float *g2 = malloc(P2 * sizeof *g2);
        assert_non_null(x);
        assert_non_null(t);
        assert_non_null(g2);
        fill_normal(mom_net_params(net), P2, 1310, 0.05);
        fill_normal(x, n * 256, 1311, 1.0);
        mom_batch b = {n, 1, x, t, NULL, NULL};
        assert_ok(mom_net_reserve(net, n, 0));
        calls = ta.calls;
        assert_ok(mom_net_loss_grad(&loss, g2, net, &b, NULL));
        assert_ok(mom_net_loss_grad(&loss, g2, net, &b, NULL));
        assert_int_equal(ta.calls, calls);
        mom_net_destroy(net);
        assert_int_equal(ta.live, 0);
        free(x);
        free(t);
        free(g2);
    }
    free(g);
    free(v);
    free(buf);
}

/* Allocation failures when a workspace grows: MOM_E_NOMEM, outputs untouched, the old workspace
 * kept and still usable. */
static void test_workspace_nomem(void **state)
{
    (void)state;
    test_alloc ta;
    test_alloc_init(&ta, 0);
    const size_t sizes[] = {4, 6, 3};
    const int acts[] = {MOM_ACT_TANH};
    problem pb;
    problem_init(&pb, 2, sizes, acts, MOM_OUT_LINEAR_SQUARED, 12, 1400, &ta.a);
    size_t P = pb.ref.n_params;
    float *g = malloc(P * sizeof *g), *v = malloc(P * sizeof *v);
    fill_normal(v, P, 1401, 1.0);
    mom_batch small = pb.batch;
    small.n = 4;
    double loss = 0, ref_small;
    assert_ok(mom_net_loss(&ref_small, pb.net, &small, NULL));
    size_t ws = mom_net_workspace_bytes(pb.net);

    ta.fail_at = ta.calls + 1;
    loss = 123;
    assert_status(mom_net_loss_grad(&loss, g, pb.net, &pb.batch, NULL), MOM_E_NOMEM);
    assert_true(loss == 123);
    assert_true(strlen(mom_net_errmsg(pb.net)) > 0);
    ta.fail_at = ta.calls + 1;
    assert_status(mom_net_reserve(pb.net, 100, 0), MOM_E_NOMEM);
    assert_int_equal(mom_net_workspace_bytes(pb.net), ws);
    /* the second of the two workspaces fails: the first is not grown either, nor leaked */
    long live = ta.live;
    ta.fail_at = ta.calls + 2;
    assert_status(mom_net_reserve(pb.net, 100, 0), MOM_E_NOMEM);
    assert_int_equal(mom_net_workspace_bytes(pb.net), ws);
    assert_int_equal(ta.live, live);
    ta.fail_at = 0;
    assert_ok(mom_net_loss(&loss, pb.net, &small, NULL));
    assert_true(loss == ref_small);

    /* a failed gv_begin leaves no usable cache */
    assert_ok(mom_net_gv_begin(pb.net, &small, NULL));
    ta.fail_at = ta.calls + 1;
    assert_status(mom_net_gv_begin(pb.net, &pb.batch, NULL), MOM_E_NOMEM);
    assert_status(mom_net_gv(g, pb.net, v, 0), MOM_E_STATE);
    ta.fail_at = 0;
    assert_ok(mom_net_gv_begin(pb.net, &pb.batch, NULL));
    assert_ok(mom_net_gv(g, pb.net, v, 0));

    /* mom_net_reserve() that keeps the Gauss-Newton workspace keeps its cache; one that grows it
     * drops it (the cached activations went with the old memory) */
    assert_ok(mom_net_reserve(pb.net, 12, 0));
    assert_ok(mom_net_gv(g, pb.net, v, 0));
    assert_ok(mom_net_reserve(pb.net, 500, 0));
    assert_status(mom_net_gv(g, pb.net, v, 0), MOM_E_STATE);
    free(g);
    free(v);
    problem_free(&pb);
    assert_int_equal(ta.live, 0);
}

/* ---- failure paths --------------------------------------------------------------------------- */

static void expect_msg(const mom_net *net, const char *fragment)
{
    if (strstr(mom_net_errmsg(net), fragment) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\"", mom_net_errmsg(net), fragment);
}

static void test_failures(void **state)
{
    (void)state;
    const size_t sizes[] = {3, 4, 2};
    const int acts[] = {MOM_ACT_LOGISTIC};
    problem pb;
    problem_init(&pb, 2, sizes, acts, MOM_OUT_SOFTMAX_XENT, 6, 1500, NULL);
    mom_net *net = pb.net;
    size_t P = pb.ref.n_params;
    float *keep = malloc(P * sizeof *keep), *g = malloc(P * sizeof *g);
    float *v = malloc(P * sizeof *v), *buf = malloc(6 * 4 * sizeof *buf);
    memcpy(keep, mom_net_params(net), P * sizeof *keep);
    fill_normal(v, P, 1501, 1.0);
    double loss = 42;

    /* NULL arguments */
    assert_status(mom_net_loss(&loss, NULL, &pb.batch, NULL), MOM_E_INVALID);
    assert_status(mom_net_loss(NULL, net, &pb.batch, NULL), MOM_E_INVALID);
    assert_status(mom_net_loss_grad(&loss, NULL, net, &pb.batch, NULL), MOM_E_INVALID);
    expect_msg(net, "grad");
    assert_status(mom_net_loss_grad(&loss, g, net, NULL, NULL), MOM_E_INVALID);
    expect_msg(net, "batch");
    assert_status(mom_net_fisher_diag(NULL, net, &pb.batch, NULL), MOM_E_INVALID);
    assert_status(mom_net_forward(NULL, net, &pb.batch, NULL, 0), MOM_E_INVALID);
    assert_status(mom_net_metric(NULL, net, &pb.batch, NULL, 0, 0), MOM_E_INVALID);
    assert_status(mom_net_gv_begin(net, NULL, NULL), MOM_E_INVALID);
    assert_status(mom_net_gv_begin(NULL, &pb.batch, NULL), MOM_E_INVALID);
    /* aliasing */
    assert_status(mom_net_loss_grad(&loss, g, net, &pb.batch, g), MOM_E_INVALID);
    assert_status(mom_net_loss_grad(&loss, mom_net_params(net), net, &pb.batch, NULL),
                  MOM_E_INVALID);

    /* empty batch, missing arrays, shape mismatch */
    mom_batch b = pb.batch;
    b.n = 0;
    assert_status(mom_net_loss(&loss, net, &b, NULL), MOM_E_INVALID);
    expect_msg(net, "batch.n");
    b = pb.batch;
    b.inputs = NULL;
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    expect_msg(net, "batch.inputs");
    b = pb.batch;
    b.targets = NULL;
    assert_status(mom_net_loss(&loss, net, &b, NULL), MOM_E_INVALID);
    expect_msg(net, "batch.targets");
    assert_status(mom_net_fisher_diag(g, net, &b, NULL), MOM_E_INVALID);
    assert_status(mom_net_metric(&loss, net, &b, NULL, 0, 0), MOM_E_INVALID);
    b = pb.batch;
    b.steps = 2;
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_SHAPE);
    expect_msg(net, "steps");
    assert_status(mom_net_gv_begin(net, &b, NULL), MOM_E_SHAPE);
    assert_status(mom_net_forward(buf, net, &b, NULL, 1), MOM_E_SHAPE);
    b = pb.batch;
    float mask[6] = {1, 1, 1, 1, 1, 1};
    b.mask = mask;
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    expect_msg(net, "mask");
    b = pb.batch;
    size_t lengths[6] = {1, 1, 1, 1, 1, 1};
    b.lengths = lengths;
    assert_status(mom_net_loss(&loss, net, &b, NULL), MOM_E_INVALID);

    /* Gauss-Newton state and arguments */
    assert_status(mom_net_gv(g, net, v, 0), MOM_E_STATE);
    expect_msg(net, "gv_begin");
    assert_ok(mom_net_gv_begin(net, &pb.batch, NULL));
    assert_status(mom_net_gv(g, net, v, 0.5), MOM_E_UNSUPPORTED);
    assert_status(mom_net_gv(g, net, v, -1), MOM_E_INVALID);
    assert_status(mom_net_gv(v, net, v, 0), MOM_E_INVALID);
    assert_status(mom_net_gv(NULL, net, v, 0), MOM_E_INVALID);
    assert_status(mom_net_gv(g, net, NULL, 0), MOM_E_INVALID);
    assert_ok(mom_net_gv(g, net, v, 0));
    assert_true(strcmp(mom_net_errmsg(net), "") == 0);

    /* non-finite data, only rejected when checking is on */
    float *x = malloc(6 * 3 * sizeof *x), *t = malloc(6 * 2 * sizeof *t);
    memcpy(x, pb.x, 6 * 3 * sizeof *x);
    memcpy(t, pb.t, 6 * 2 * sizeof *t);
    x[7] = NAN;
    b = (mom_batch){6, 1, x, pb.t, NULL, NULL};
    assert_ok(mom_net_loss(&loss, net, &b, NULL));
    assert_ok(mom_net_set(net, MOM_NET_CHECK_FINITE, 1));
    double on;
    assert_ok(mom_net_get(&on, net, MOM_NET_CHECK_FINITE));
    assert_true(on == 1);
    loss = 42;
    assert_status(mom_net_loss(&loss, net, &b, NULL), MOM_E_INVALID);
    expect_msg(net, "batch.inputs[7]");
    assert_true(loss == 42);
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    assert_status(mom_net_gv_begin(net, &b, NULL), MOM_E_INVALID);
    assert_status(mom_net_gv(g, net, v, 0), MOM_E_STATE); /* a failed begin drops the cache */
    assert_status(mom_net_forward(buf, net, &b, NULL, 2), MOM_E_INVALID);
    assert_status(mom_net_metric(&loss, net, &b, NULL, 0, 0), MOM_E_INVALID);
    assert_status(mom_net_fisher_diag(g, net, &b, NULL), MOM_E_INVALID);
    assert_status(mom_net_check_grad(&loss, net, &b, 0, 0), MOM_E_INVALID);
    assert_status(mom_net_check_gv(&loss, net, &b, 1, 0), MOM_E_INVALID);
    t[3] = INFINITY;
    b = (mom_batch){6, 1, pb.x, t, NULL, NULL};
    assert_status(mom_net_loss_grad(&loss, g, net, &b, NULL), MOM_E_INVALID);
    expect_msg(net, "batch.targets[3]");
    float *bad_p = malloc(P * sizeof *bad_p);
    memcpy(bad_p, keep, P * sizeof *bad_p);
    bad_p[P - 1] = -INFINITY;
    assert_status(mom_net_loss_grad(&loss, g, net, &pb.batch, bad_p), MOM_E_INVALID);
    expect_msg(net, "params[");
    /* the net's own vector is checked too */
    mom_net_params(net)[2] = NAN;
    assert_status(mom_net_loss(&loss, net, &pb.batch, NULL), MOM_E_INVALID);
    expect_msg(net, "params[2]");
    mom_net_params(net)[2] = keep[2];
    assert_ok(mom_net_set(net, MOM_NET_CHECK_FINITE, 0));
    assert_ok(mom_net_loss(&loss, net, &pb.batch, NULL));

    /* none of the failures touched the parameters */
    assert_memory_equal(keep, mom_net_params(net), P * sizeof *keep);
    free(bad_p);
    free(x);
    free(t);
    free(keep);
    free(g);
    free(v);
    free(buf);
    problem_free(&pb);
}

/* A bigger batch than the last one (the workspace grows) and odd sizes give the same results as
 * fresh networks: nothing depends on stale workspace contents. */
static void test_batch_size_changes(void **state)
{
    (void)state;
    const size_t sizes[] = {7, 5, 9, 4};
    const int acts[] = {MOM_ACT_TANH, MOM_ACT_RELU};
    problem pb;
    problem_init(&pb, 3, sizes, acts, MOM_OUT_LOGISTIC_XENT, 33, 1600, NULL);
    size_t P = pb.ref.n_params;
    double *p = to_double(mom_net_params(pb.net), P);
    float *g = malloc(P * sizeof *g);
    double *gr = malloc(P * sizeof *gr);
    const size_t ns[] = {1, 33, 2, 17, 33, 1};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        mom_batch b = {ns[i], 1, pb.x, pb.t, NULL, NULL};
        double loss;
        assert_ok(mom_net_loss_grad(&loss, g, pb.net, &b, NULL));
        double lr = ref_loss_grad(&pb.ref, p, pb.x, pb.t, ns[i], gr);
        assert_true(rel_diff(loss, lr, 1e-9) < 1e-5);
        double s = max_abs_d(gr, P);
        for (size_t j = 0; j < P; j++)
            assert_true(fabs(g[j] - gr[j]) < 1e-4 * s);
    }
    free(p);
    free(g);
    free(gr);
    problem_free(&pb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_layout),
        cmocka_unit_test(test_paper_param_counts),
        cmocka_unit_test(test_create_invalid),
        cmocka_unit_test(test_create_nomem),
        cmocka_unit_test(test_grad_all_acts_outputs),
        cmocka_unit_test(test_batch_size_changes),
        cmocka_unit_test(test_gv_explicit),
        cmocka_unit_test(test_gv_symmetric_psd),
        cmocka_unit_test(test_gv_cache),
        cmocka_unit_test(test_fisher_diag),
        cmocka_unit_test(test_forward_layers),
        cmocka_unit_test(test_metrics_by_hand),
        cmocka_unit_test(test_accumulating_product),
        cmocka_unit_test(test_builtin_checks),
        cmocka_unit_test(test_checks_nomem),
        cmocka_unit_test(test_no_allocation_after_first),
        cmocka_unit_test(test_workspace_nomem),
        cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
