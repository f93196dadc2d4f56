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

/* ---- double reference -------------------------------------------------------------------------- */

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

/* ---- helpers ------------------------------------------------------------------------------------ */

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

/* ---- creation ----------------------------------------------------------------------------------- */

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

/* ---- loss and gradient ------------------------------------------------------------------------- */

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_layout),
        cmocka_unit_test(test_paper_param_counts),
        cmocka_unit_test(test_create_invalid),
        cmocka_unit_test(test_create_nomem),
        cmocka_unit_test(test_grad_all_acts_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
