/* Tests of the Hessian-free optimizer (MOM_OPTIM_HF, lib/hf.c): the pieces of Martens' algorithm
 * (iterate grid, stopping rule, lambda rule, CG-backtracking), CG on quadratics with known minima
 * through the callback model, preconditioned vs plain CG, the network path against the model path,
 * structural damping on a recurrent net, HF against SGD per data pass on a small autoencoder, the
 * divergence guard, allocation behaviour and failure paths. */
#include <float.h>

#include "testutil.h"
#include "../lib/hf_internal.h"

/* ---- a quadratic model f(x) = 1/2 x^T A x - b^T x with A symmetric positive definite --------- */

typedef struct quad {
    size_t n;
    double *a;  /* n x n */
    double *b;  /* n */
    double *xs; /* the minimizer A^-1 b */
    /* counters */
    long n_loss_grad, n_loss, n_begin, n_gv, n_curv_loss, n_fisher;
    /* the curvature loss: 0 = f, 1 = (|x - center| - radius)^2, 2 = f * curv_scale; loss_kind:
     * the same choice for the loss-only callback on the gradient data (trial points) */
    int curv_kind, loss_kind;
    double radius, curv_scale;
    const float *center;
    /* fault injection: make the given callback return NaN (or status `fail_rc` if nonzero) at
     * its call number `fail_call` (1-based, counted within the current step) */
    int fail_cb; /* 0 none, 1 loss value, 2 gradient entry, 3 fisher, 4 gv, 5 curv_loss at
                    theta, 6 loss at trial points (all calls) */
    long fail_call;
    int fail_rc;
    long step_gv, step_curv;
    /* log of struct_damping arguments */
    double sd_log[512];
    size_t n_sd;
} quad;

static double quad_f(const quad *q, const float *x)
{
    double f = 0.0;
    for (size_t i = 0; i < q->n; i++) {
        double ax = 0.0;
        for (size_t j = 0; j < q->n; j++)
            ax += q->a[i * q->n + j] * x[j];
        f += 0.5 * x[i] * ax - q->b[i] * x[i];
    }
    return f;
}

static int q_loss_grad(double *loss, float *grad, const float *x, void *u)
{
    quad *q = u;
    q->n_loss_grad++;
    if (q->fail_cb == 1 && q->fail_rc)
        return q->fail_rc;
    for (size_t i = 0; i < q->n; i++) {
        double s = -q->b[i];
        for (size_t j = 0; j < q->n; j++)
            s += q->a[i * q->n + j] * x[j];
        grad[i] = (float)s;
    }
    *loss = quad_f(q, x);
    if (q->fail_cb == 1)
        *loss = NAN;
    if (q->fail_cb == 2)
        grad[q->n / 2] = NAN;
    return 0;
}

/* The loss of kind `kind` (quad.curv_kind) at x. */
static double quad_kind(const quad *q, const float *x, int kind)
{
    if (kind == 1) {
        double s = 0.0;
        for (size_t i = 0; i < q->n; i++) {
            double dlt = (double)x[i] - q->center[i];
            s += dlt * dlt;
        }
        double e = sqrt(s) - q->radius;
        return e * e;
    }
    return kind == 2 ? quad_f(q, x) * q->curv_scale : quad_f(q, x);
}

static int q_loss(double *loss, const float *x, void *u)
{
    quad *q = u;
    q->n_loss++;
    *loss = q->fail_cb == 6 ? NAN : quad_kind(q, x, q->loss_kind);
    return 0;
}

static int q_begin(const float *x, void *u)
{
    (void)x;
    quad *q = u;
    q->n_begin++;
    q->step_gv = 0;
    q->step_curv = 0;
    return 0;
}

static int q_gv(float *out, const float *v, double sd, void *u)
{
    quad *q = u;
    q->n_gv++;
    q->step_gv++;
    if (q->n_sd < sizeof q->sd_log / sizeof q->sd_log[0])
        q->sd_log[q->n_sd++] = sd;
    if (q->fail_cb == 4 && q->step_gv == q->fail_call && q->fail_rc)
        return q->fail_rc;
    for (size_t i = 0; i < q->n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < q->n; j++)
            s += q->a[i * q->n + j] * v[j];
        out[i] = (float)s;
    }
    if (q->fail_cb == 4 && q->step_gv == q->fail_call)
        out[0] = NAN;
    return 0;
}

static int q_curv_loss(double *loss, const float *x, void *u)
{
    quad *q = u;
    q->n_curv_loss++;
    q->step_curv++;
    if (q->fail_cb == 5 && q->step_curv == q->fail_call) {
        *loss = NAN;
        return 0;
    }
    *loss = quad_kind(q, x, q->curv_kind);
    return 0;
}

static int q_fisher(float *out, const float *x, void *u)
{
    (void)x;
    quad *q = u;
    q->n_fisher++;
    for (size_t i = 0; i < q->n; i++)
        out[i] = (float)q->a[i * q->n + i]; /* the diagonal of A: Jacobi with exponent 1 */
    if (q->fail_cb == 3)
        out[1] = NAN;
    return 0;
}

static mom_hf_model quad_model(quad *q, int with_fisher)
{
    mom_hf_model m = {q_loss_grad, q_loss, q_begin, q_gv, q_curv_loss,
                      with_fisher ? q_fisher : NULL, q};
    return m;
}

/* A = Q diag(ev) Q^T with Q orthogonal (Gram-Schmidt of Gaussian vectors), eigenvalues spaced
 * geometrically in [ev_lo, ev_hi]; a random minimizer xs; b = A xs. */
static void quad_make(quad *q, size_t n, double ev_lo, double ev_hi, uint64_t seed)
{
    memset(q, 0, sizeof *q);
    q->n = n;
    q->a = calloc(n * n, sizeof *q->a);
    q->b = calloc(n, sizeof *q->b);
    q->xs = calloc(n, sizeof *q->xs);
    double *qm = calloc(n * n, sizeof *qm);
    assert_non_null(q->a);
    assert_non_null(q->b);
    assert_non_null(q->xs);
    assert_non_null(qm);
    mom_rng *r;
    assert_ok(mom_rng_create(&r, seed, 0, NULL));
    for (size_t k = 0; k < n; k++) {
        double *v = qm + k * n;
        for (size_t i = 0; i < n; i++)
            v[i] = mom_rng_normal(r);
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j < k; j++) {
                double dp = 0.0;
                for (size_t i = 0; i < n; i++)
                    dp += v[i] * qm[j * n + i];
                for (size_t i = 0; i < n; i++)
                    v[i] -= dp * qm[j * n + i];
            }
        double nr = 0.0;
        for (size_t i = 0; i < n; i++)
            nr += v[i] * v[i];
        nr = sqrt(nr);
        for (size_t i = 0; i < n; i++)
            v[i] /= nr;
    }
    for (size_t k = 0; k < n; k++) {
        double ev = n > 1 ? ev_lo * pow(ev_hi / ev_lo, (double)k / (double)(n - 1)) : ev_lo;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                q->a[i * n + j] += ev * qm[k * n + i] * qm[k * n + j];
    }
    for (size_t i = 0; i < n; i++)
        q->xs[i] = mom_rng_uniform(r) * 2.0 - 1.0;
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
            s += q->a[i * n + j] * q->xs[j];
        q->b[i] = s;
    }
    mom_rng_destroy(r);
    free(qm);
}

static void quad_free(quad *q)
{
    free(q->a);
    free(q->b);
    free(q->xs);
}

static double get(const mom_optim *opt, int option)
{
    double v = -12345.0;
    assert_ok(mom_optim_get(&v, opt, option));
    return v;
}

static mom_optim *make_hf(size_t n, const mom_allocator *alloc)
{
    mom_optim *opt = NULL;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_HF, n, alloc));
    assert_non_null(opt);
    return opt;
}

/* Plain HF for quadratics: lambda 0, no adaptation, no line search (step 1), no weight decay. */
static void set_plain(mom_optim *opt)
{
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_LAMBDA, 0.0));
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_ADAPT_LAMBDA, 0.0));
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_LINE_SEARCH, 0.0));
}

static double max_rel_err_to(const float *x, const double *ref, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)x[i] - ref[i]));
        den = fmax(den, fabs(ref[i]));
    }
    return num / den;
}

/* ---- creation, defaults, options ------------------------------------------------------------- */

static void test_create_defaults(void **state)
{
    (void)state;
    mom_optim *opt = make_hf(9, NULL);
    assert_int_equal(mom_optim_kind_of(opt), MOM_OPTIM_HF);
    assert_int_equal(mom_optim_num_params(opt), 9);
    assert_int_equal(mom_optim_steps(opt), 0);
    assert_true(mom_optim_lr(opt) == 1.0);
    assert_true(mom_optim_momentum(opt) == 0.95);
    const float *v = mom_optim_velocity(opt);
    assert_non_null(v);
    for (int i = 0; i < 9; i++)
        assert_true(v[i] == 0.0f);
    assert_true(get(opt, MOM_OPTIM_HF_LAMBDA) == 1.0);
    assert_true(get(opt, MOM_OPTIM_HF_MAX_CG) == 250.0);
    assert_true(get(opt, MOM_OPTIM_HF_MIN_CG) == 1.0);
    assert_true(get(opt, MOM_OPTIM_HF_FIXED_CG) == 0.0);
    assert_true(get(opt, MOM_OPTIM_HF_PRECOND) == -1.0);
    assert_true(get(opt, MOM_OPTIM_HF_PRECOND_EXP) == 0.75);
    assert_true(get(opt, MOM_OPTIM_HF_LINE_SEARCH) == 1.0);
    assert_true(get(opt, MOM_OPTIM_HF_CG_BACKTRACK) == 1.0);
    assert_true(get(opt, MOM_OPTIM_HF_ADAPT_LAMBDA) == 1.0);
    assert_true(get(opt, MOM_OPTIM_HF_STRUCT_DAMPING) == 0.03);
    assert_true(get(opt, MOM_OPTIM_HF_CG_DECAY) == 0.95);
    assert_true(get(opt, MOM_OPTIM_WEIGHT_DECAY) == 0.0);
    for (int k = MOM_OPTIM_HF_LAST_CG_ITERS; k <= MOM_OPTIM_HF_LAST_LOSS_EVALS; k++)
        assert_true(isnan(get(opt, k)));
    assert_string_equal(mom_optim_errmsg(opt), "");
    mom_optim_destroy(opt);
}

static void test_create_nomem(void **state)
{
    (void)state;
    long fail_at = 1;
    for (;; fail_at++) {
        test_alloc ta;
        test_alloc_init(&ta, fail_at);
        mom_optim *opt = (mom_optim *)&ta;
        int rc = mom_optim_create(&opt, MOM_OPTIM_HF, 50, &ta.a);
        if (rc == MOM_OK) {
            assert_int_equal(ta.failed, 0);
            mom_optim_destroy(opt);
            assert_int_equal(ta.live, 0);
            break;
        }
        assert_status(rc, MOM_E_NOMEM);
        assert_null(opt);
        assert_int_equal(ta.live, 0);
    }
    assert_true(fail_at > 3);
    mom_optim *opt = (mom_optim *)&opt;
    assert_status(mom_optim_create(&opt, MOM_OPTIM_HF, SIZE_MAX / 4, NULL), MOM_E_NOMEM);
    assert_null(opt);
    assert_status(mom_optim_create(&opt, MOM_OPTIM_HF, 0, NULL), MOM_E_INVALID);
}

static void test_options(void **state)
{
    (void)state;
    mom_optim *opt = make_hf(4, NULL);
    struct {
        int key;
        double good, bad[4];
        int n_bad;
    } cases[] = {
        {MOM_OPTIM_HF_LAMBDA, 45.0, {-1.0, NAN, INFINITY, 1e300}, 4},
        {MOM_OPTIM_HF_MAX_CG, 100.0, {0.0, 2.5, -1.0, 100001.0}, 4},
        {MOM_OPTIM_HF_MIN_CG, 0.0, {-1.0, 1.5, NAN, 1e9}, 4},
        {MOM_OPTIM_HF_FIXED_CG, 50.0, {-1.0, 0.5, INFINITY, 100001.0}, 4},
        {MOM_OPTIM_HF_PRECOND, 1.0, {2.0, -2.0, 0.5, NAN}, 4},
        {MOM_OPTIM_HF_PRECOND_EXP, 1.0, {-0.1, 1.1, NAN, INFINITY}, 4},
        {MOM_OPTIM_HF_LINE_SEARCH, 0.0, {2.0, -1.0, 0.5, NAN}, 4},
        {MOM_OPTIM_HF_CG_BACKTRACK, 0.0, {2.0, -1.0, 0.5, NAN}, 4},
        {MOM_OPTIM_HF_ADAPT_LAMBDA, 0.0, {2.0, -1.0, 0.5, NAN}, 4},
        {MOM_OPTIM_HF_STRUCT_DAMPING, 0.3, {-0.1, NAN, INFINITY, 1e39}, 4},
        {MOM_OPTIM_HF_CG_DECAY, 0.99, {-0.1, 1.01, NAN, INFINITY}, 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_ok(mom_optim_set(opt, cases[c].key, cases[c].good));
        assert_true(get(opt, cases[c].key) == cases[c].good);
        for (int b = 0; b < cases[c].n_bad; b++) {
            assert_status(mom_optim_set(opt, cases[c].key, cases[c].bad[b]), MOM_E_INVALID);
            assert_true(strlen(mom_optim_errmsg(opt)) > 0);
            assert_true(get(opt, cases[c].key) == cases[c].good); /* unchanged */
        }
    }
    assert_true(mom_optim_momentum(opt) == 0.99); /* the CG decay is HF's momentum */
    /* read-only report keys, unknown keys, HF-only and non-HF options */
    for (int k = MOM_OPTIM_HF_LAST_CG_ITERS; k <= MOM_OPTIM_HF_LAST_LOSS_EVALS; k++)
        assert_status(mom_optim_set(opt, k, 1.0), MOM_E_INVALID);
    assert_status(mom_optim_set(opt, 111, 1.0), MOM_E_INVALID);
    assert_status(mom_optim_set(opt, 210, 1.0), MOM_E_INVALID);
    double v;
    assert_status(mom_optim_get(&v, opt, 111), MOM_E_INVALID);
    assert_status(mom_optim_get(NULL, opt, MOM_OPTIM_HF_LAMBDA), MOM_E_INVALID);
    assert_status(mom_optim_set(opt, MOM_OPTIM_CLIP_NORM, 1.0), MOM_E_UNSUPPORTED);
    assert_ok(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, 2e-5));
    assert_true(get(opt, MOM_OPTIM_WEIGHT_DECAY) == 2e-5);

    /* CG-decay schedules: set_cg_decay and set_momentum are the same slot on HF */
    mom_sched *s;
    assert_ok(mom_sched_create_piecewise(&s, 2, (uint64_t[]){0, 3}, (double[]){0.5, 0.999},
                                         NULL));
    assert_ok(mom_optim_set_cg_decay(opt, s));
    assert_true(get(opt, MOM_OPTIM_HF_CG_DECAY) == 0.5);
    assert_true(mom_optim_momentum(opt) == 0.5);
    assert_status(mom_optim_set_cg_decay(opt, NULL), MOM_E_INVALID);
    assert_status(mom_optim_set_cg_decay(NULL, s), MOM_E_INVALID);
    mom_sched *c7;
    assert_ok(mom_sched_create_const(&c7, 0.7, NULL));
    assert_ok(mom_optim_set_momentum(opt, c7));
    assert_true(get(opt, MOM_OPTIM_HF_CG_DECAY) == 0.7);
    mom_sched_destroy(c7);

    /* HF keys and functions on a first-order optimizer */
    mom_optim *cm;
    assert_ok(mom_optim_create(&cm, MOM_OPTIM_CM, 4, NULL));
    assert_status(mom_optim_set(cm, MOM_OPTIM_HF_LAMBDA, 1.0), MOM_E_UNSUPPORTED);
    assert_status(mom_optim_get(&v, cm, MOM_OPTIM_HF_LAST_RHO), MOM_E_UNSUPPORTED);
    assert_status(mom_optim_set_cg_decay(cm, s), MOM_E_UNSUPPORTED);
    float x[4] = {0};
    quad q;
    quad_make(&q, 4, 1.0, 2.0, 1);
    mom_hf_model m = quad_model(&q, 0);
    assert_status(mom_optim_step_hf_model(NULL, cm, x, &m), MOM_E_UNSUPPORTED);
    assert_status(mom_optim_set(cm, MOM_OPTIM_CLIP_NORM, 1.0), MOM_OK); /* unchanged behaviour */
    mom_optim_destroy(cm);
    mom_sched_destroy(s);
    quad_free(&q);
    mom_optim_destroy(opt);
}

/* ---- pieces of the algorithm ----------------------------------------------------------------- */

static void test_iterate_grid(void **state)
{
    (void)state;
    /* ceil(5 * 1.3^j), from the real-number values (5, 6.5, 8.45, 10.985, 14.28, 18.56, 24.13,
     * 31.37, 40.79, 53.02, 68.93, 89.61, 116.49, 151.43, 196.87, 255.93) */
    const size_t want[] = {5, 7, 9, 11, 15, 19, 25, 32, 41, 54, 69, 90, 117, 152, 197, 256};
    for (unsigned j = 0; j < sizeof want / sizeof want[0]; j++)
        assert_int_equal(mom__hf_grid_point(j), want[j]);
    assert_int_equal(mom__hf_grid_count(4), 0);
    assert_int_equal(mom__hf_grid_count(5), 1);
    assert_int_equal(mom__hf_grid_count(6), 1);
    assert_int_equal(mom__hf_grid_count(50), 9);
    assert_int_equal(mom__hf_grid_count(250), 15);
    assert_int_equal(mom__hf_grid_count(256), 16);
    assert_int_equal(mom__hf_grid_point(1000), SIZE_MAX);
}

static void test_stop_rule(void **state)
{
    (void)state;
    double phi[400];
    /* geometric progress phi_i = -(1 - 0.7^i): relative progress over the last k = 10 steps is
     * 0.7^(i-10) (1 - 0.7^10) / (1 - 0.7^i), first below 10 * 5e-4 at i = 25 */
    for (int i = 0; i < 400; i++)
        phi[i] = -(1.0 - pow(0.7, i));
    for (size_t i = 1; i < 25; i++)
        assert_false(mom__hf_cg_should_stop(phi, i));
    assert_true(mom__hf_cg_should_stop(phi, 25));

    /* k = max(10, ceil(i / 10)): strong progress (phi_i = -(1 + i)) until i = 139, then flat.
     * The rule compares with phi[i - k]: it fires once i - k >= 140, first at i = 156
     * (ceil: k = 16; floor would fire at 155) */
    for (int i = 0; i < 400; i++)
        phi[i] = i < 140 ? -(1.0 + i) : -1000.0;
    for (size_t i = 1; i < 156; i++)
        if (mom__hf_cg_should_stop(phi, i))
            fail_msg("stopped at %zu", i);
    assert_true(mom__hf_cg_should_stop(phi, 156));

    /* constant negative phi: no progress, but never before i > k = 10 */
    for (int i = 0; i < 400; i++)
        phi[i] = -3.0;
    assert_false(mom__hf_cg_should_stop(phi, 10));
    assert_true(mom__hf_cg_should_stop(phi, 11));
    /* phi >= 0 (no reduction of the quadratic yet): never */
    for (int i = 0; i < 400; i++)
        phi[i] = i == 0 ? 1.0 : 0.0;
    for (size_t i = 1; i < 400; i++)
        assert_false(mom__hf_cg_should_stop(phi, i));
    /* the threshold: progress exactly around k * 5e-4 = 5e-3 at i = 20 (k = 10) */
    for (int i = 0; i < 400; i++)
        phi[i] = -1.0;
    phi[20] = -1.0 / (1.0 - 0.0049); /* (phi20 - phi10)/phi20 = 0.0049 < 0.005 */
    assert_true(mom__hf_cg_should_stop(phi, 20));
    phi[20] = -1.0 / (1.0 - 0.0051);
    assert_false(mom__hf_cg_should_stop(phi, 20));
}

static void test_lambda_rule(void **state)
{
    (void)state;
    assert_true(mom__hf_update_lambda(2.0, 0.1) == 3.0);
    assert_true(mom__hf_update_lambda(2.0, -5.0) == 3.0);
    assert_true(mom__hf_update_lambda(2.0, -INFINITY) == 3.0);
    assert_true(mom__hf_update_lambda(2.0, NAN) == 3.0);
    assert_true(mom__hf_update_lambda(2.0, 0.2499) == 3.0);
    assert_true(mom__hf_update_lambda(2.0, 0.25) == 2.0);
    assert_true(mom__hf_update_lambda(2.0, 0.5) == 2.0);
    assert_true(mom__hf_update_lambda(2.0, 0.75) == 2.0);
    assert_true(mom__hf_update_lambda(3.0, 0.7501) == 2.0);
    assert_true(mom__hf_update_lambda(3.0, 1.0) == 2.0);
    assert_true(mom__hf_update_lambda(3.0, INFINITY) == 2.0);
    assert_true(mom__hf_update_lambda(45.0, 0.9) == 45.0 / 1.5);
    assert_true(mom__hf_update_lambda(0.0, 0.0) == 0.0);
    assert_true(mom__hf_update_lambda(FLT_MAX, 0.0) == FLT_MAX); /* stays a valid setting */

    /* In a step: on the exact quadratic the model is the objective, so rho = 1 and lambda
     * drops; when the curvature objective changes 10x less than predicted, rho = 0.1 and it
     * grows. */
    quad q;
    quad_make(&q, 12, 1.0, 10.0, 3);
    mom_hf_model m = quad_model(&q, 0);
    for (int scaled = 0; scaled < 2; scaled++) {
        mom_optim *opt = make_hf(12, NULL);
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_LAMBDA, 2.0));
        q.curv_kind = scaled ? 2 : 0;
        q.curv_scale = 0.1;
        float x[12] = {0};
        assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m));
        double rho = get(opt, MOM_OPTIM_HF_LAST_RHO);
        if (scaled) {
            assert_true(fabs(rho - 0.1) < 1e-4);
            assert_true(get(opt, MOM_OPTIM_HF_LAMBDA) == 3.0);
        } else {
            assert_true(fabs(rho - 1.0) < 1e-4);
            assert_true(get(opt, MOM_OPTIM_HF_LAMBDA) == 2.0 / 1.5);
        }
        assert_true(get(opt, MOM_OPTIM_HF_LAST_LAMBDA) == get(opt, MOM_OPTIM_HF_LAMBDA));
        mom_optim_destroy(opt);
    }
    quad_free(&q);
}

typedef struct arr_ctx {
    const double *f;
    size_t evals[16];
    size_t n;
} arr_ctx;

static int arr_eval(double *f, size_t j, void *ctx)
{
    arr_ctx *c = ctx;
    c->evals[c->n++] = j;
    *f = c->f[j];
    return MOM_OK;
}

static int failing_eval(double *f, size_t j, void *ctx)
{
    (void)ctx;
    *f = 0.0;
    return j == 1 ? MOM_E_IO : MOM_OK;
}

static void test_backtrack_rule(void **state)
{
    (void)state;
    struct {
        double f[6];
        size_t count, chosen, n_evals;
    } cases[] = {
        {{5, 4, 3, 2, 1}, 5, 4, 2},           /* the last is best: one look back */
        {{1, 2, 3}, 3, 0, 3},                 /* walk back to the first */
        {{3, 1, 2, 2}, 4, 1, 4},              /* equal values: keep walking (does not increase) */
        {{1, 3, 2, 4}, 4, 2, 3},              /* stops at the first local minimum from the end */
        {{2, NAN, 1}, 3, 2, 2},               /* NaN counts as +infinity */
        {{2, 1, NAN}, 3, 1, 3},
        {{7}, 1, 0, 1},                       /* one candidate */
        {{INFINITY, INFINITY}, 2, 0, 2},      /* both infinite: walks back */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        arr_ctx ctx = {cases[c].f, {0}, 0};
        size_t chosen = 99, n_evals = 99;
        double fc = -1;
        assert_ok(mom__hf_backtrack(&chosen, &fc, &n_evals, cases[c].count, arr_eval, &ctx));
        if (chosen != cases[c].chosen || n_evals != cases[c].n_evals)
            fail_msg("case %zu: chosen %zu (want %zu), evals %zu (want %zu)", c, chosen,
                     cases[c].chosen, n_evals, cases[c].n_evals);
        assert_memory_equal(&fc, &cases[c].f[chosen], sizeof fc);
        /* evaluated from the last backwards, each once */
        for (size_t e = 0; e < ctx.n; e++)
            assert_int_equal(ctx.evals[e], cases[c].count - 1 - e);
    }
    size_t chosen, n_evals;
    double fc;
    assert_status(mom__hf_backtrack(&chosen, &fc, &n_evals, 3, failing_eval, NULL), MOM_E_IO);
    assert_int_equal(n_evals, 2);
    assert_status(mom__hf_backtrack(&chosen, &fc, &n_evals, 0, failing_eval, NULL),
                  MOM_E_INTERNAL);
}

/* Reference CG in double from x0 = 0 on A x = b, iterates x_1..x_maxit into xs (rows). */
static void ref_cg(const quad *q, size_t maxit, double *xs)
{
    const size_t n = q->n;
    double *x = calloc(n, sizeof *x), *r = calloc(n, sizeof *r), *d = calloc(n, sizeof *d),
           *ad = calloc(n, sizeof *ad);
    assert_non_null(x);
    assert_non_null(r);
    assert_non_null(d);
    assert_non_null(ad);
    double rr = 0.0;
    for (size_t i = 0; i < n; i++) {
        r[i] = q->b[i];
        d[i] = r[i];
        rr += r[i] * r[i];
    }
    for (size_t it = 1; it <= maxit; it++) {
        double dad = 0.0;
        for (size_t i = 0; i < n; i++) {
            double s = 0.0;
            for (size_t j = 0; j < n; j++)
                s += q->a[i * n + j] * d[j];
            ad[i] = s;
            dad += d[i] * s;
        }
        double al = rr / dad, rr2 = 0.0;
        for (size_t i = 0; i < n; i++) {
            x[i] += al * d[i];
            r[i] -= al * ad[i];
            rr2 += r[i] * r[i];
        }
        for (size_t i = 0; i < n; i++)
            d[i] = r[i] + rr2 / rr * d[i];
        rr = rr2;
        memcpy(xs + (it - 1) * n, x, n * sizeof *x);
    }
    free(x);
    free(r);
    free(d);
    free(ad);
}

static double norm_d(const double *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return sqrt(s);
}

/* CG-backtracking inside a step: 40 CG iterations store iterates 5, 7, 9, 11, 15, 19, 25, 32 and
 * keep the last (40). It judges them by the objective on the gradient data, as Martens' code
 * does (on the whole training set there), not on the curvature data: here the gradient data's
 * loss at trial points is (|theta - theta0| - R)^2 with R = |x_15|, smallest at x_15 (CG iterates
 * from 0 grow in norm), so walking back from 40 evaluates 40, 32, 25, 19, 15 and 11 and picks
 * iteration 15; the curvature data's loss, the quadratic itself, would pick the last. */
static void test_backtrack_in_step(void **state)
{
    (void)state;
    const size_t n = 60;
    quad q;
    quad_make(&q, n, 1.0, 1000.0, 7);
    double *xs = calloc(40 * n, sizeof *xs);
    assert_non_null(xs);
    ref_cg(&q, 40, xs);
    for (size_t i = 1; i < 40; i++)
        if (!(norm_d(xs + i * n, n) > norm_d(xs + (i - 1) * n, n)))
            fail_msg("reference iterate norms: |x_%zu| = %.17g, |x_%zu| = %.17g", i + 1,
                     norm_d(xs + i * n, n), i, norm_d(xs + (i - 1) * n, n));
    float *theta0 = calloc(n, sizeof *theta0), *x = calloc(n, sizeof *x);
    assert_non_null(theta0);
    assert_non_null(x);
    q.loss_kind = 1;
    q.center = theta0;
    q.radius = norm_d(xs + 14 * n, n);
    mom_hf_model m = quad_model(&q, 0);
    mom_optim *opt = make_hf(n, NULL);
    set_plain(opt);
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_FIXED_CG, 40));
    assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m));
    assert_true(get(opt, MOM_OPTIM_HF_LAST_CG_ITERS) == 40.0);
    assert_true(get(opt, MOM_OPTIM_HF_LAST_CG_CHOSEN) == 15.0);
    assert_int_equal(q.n_loss, 7); /* 6 candidates + the fixed step's check */
    assert_int_equal(q.n_curv_loss, 0); /* lambda is not adapted: no rho */
    assert_true(get(opt, MOM_OPTIM_HF_LAST_LOSS_EVALS) == 7.0);
    assert_true(get(opt, MOM_OPTIM_HF_LAST_GV_PRODUCTS) == 40.0);
    assert_true(get(opt, MOM_OPTIM_HF_LAST_ALPHA) == 1.0);
    assert_true(get(opt, MOM_OPTIM_HF_LAST_LS_TRIES) == 0.0);
    /* float CG follows the double reference closely this early (at kappa = 1000 they part
     * later, as finite-precision CG does) */
    double err = max_rel_err_to(x, xs + 14 * n, n);
    if (err > 1e-3)
        fail_msg("step differs from the reference iterate 15 by %g", err);
    float *warm = malloc(n * sizeof *warm);
    assert_non_null(warm);
    memcpy(warm, mom_optim_velocity(opt), n * sizeof *warm);

    /* backtracking off: the last iterate, and no curvature losses; CG itself is unchanged, so
     * this step is the first one's warm start: the final iterate, not the chosen one */
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_CG_BACKTRACK, 0));
    assert_ok(mom_optim_reset(opt));
    memset(x, 0, n * sizeof *x);
    q.n_loss = 0;
    assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m));
    assert_true(get(opt, MOM_OPTIM_HF_LAST_CG_CHOSEN) == 40.0);
    assert_int_equal(q.n_loss, 1); /* the fixed step's check alone */
    assert_memory_equal(x, warm, n * sizeof *x);
    assert_memory_equal(mom_optim_velocity(opt), warm, n * sizeof *x);
    free(warm);

    free(xs);
    free(theta0);
    free(x);
    mom_optim_destroy(opt);
    quad_free(&q);
}

/* ---- CG on quadratics ------------------------------------------------------------------------ */

/* lambda = 0, no line search, step 1: one step reaches the minimizer in at most n iterations. */
static void test_quadratic_minimum(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 7, 30};
    for (size_t c = 0; c < 3; c++) {
        const size_t n = sizes[c];
        quad q;
        quad_make(&q, n, 1.0, 10.0, 11 + c);
        mom_hf_model m = quad_model(&q, 0);
        mom_optim *opt = make_hf(n, NULL);
        set_plain(opt);
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_MAX_CG, (double)n));
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_MIN_CG, (double)n));
        float *x = calloc(n, sizeof *x);
        assert_non_null(x);
        double loss = -1;
        assert_ok(mom_optim_step_hf_model(&loss, opt, x, &m));
        assert_true(loss == 0.0); /* f(0) */
        double iters = get(opt, MOM_OPTIM_HF_LAST_CG_ITERS);
        assert_true(iters >= 1 && iters <= (double)n);
        double err = max_rel_err_to(x, q.xs, n);
        if (err > 1e-5)
            fail_msg("n = %zu: relative error %g after %g CG iterations", n, err, iters);
        assert_true(get(opt, MOM_OPTIM_HF_LAST_ALPHA) == 1.0);
        assert_true(isnan(get(opt, MOM_OPTIM_HF_LAST_RHO))); /* adaptation off */
        assert_true(get(opt, MOM_OPTIM_HF_LAMBDA) == 0.0);
        assert_int_equal(mom_optim_steps(opt), 1);
        assert_true(get(opt, MOM_OPTIM_HF_LAST_LOSS_AFTER) <
                    get(opt, MOM_OPTIM_HF_LAST_LOSS_BEFORE));
        free(x);
        mom_optim_destroy(opt);
        quad_free(&q);
    }
}

/* Martens' stopping rule on a slowly converging quadratic stops well before the maximum; the
 * default HF (lambda adapted, line search, backtracking) decreases the objective every step and
 * approaches the minimum. */
static void test_quadratic_default_settings(void **state)
{
    (void)state;
    const size_t n = 80;
    quad q;
    quad_make(&q, n, 1e-2, 1e2, 5);
    mom_hf_model m = quad_model(&q, 0);
    mom_optim *opt = make_hf(n, NULL);
    float x[80] = {0};
    double prev = 0.0;
    for (int t = 0; t < 12; t++) {
        assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m));
        double after = get(opt, MOM_OPTIM_HF_LAST_LOSS_AFTER);
        assert_true(after < prev);
        assert_true(get(opt, MOM_OPTIM_HF_LAST_LOSS_BEFORE) == prev);
        prev = after;
        double it = get(opt, MOM_OPTIM_HF_LAST_CG_ITERS);
        assert_true(it >= 1 && it <= 250);
        assert_true(get(opt, MOM_OPTIM_HF_LAST_GV_PRODUCTS) == it + (t > 0) + 1);
    }
    double fmin = 0.0;
    for (size_t i = 0; i < n; i++)
        fmin -= 0.5 * q.b[i] * q.xs[i];
    assert_true(rel_diff(prev, fmin, 1e-12) < 1e-3);
    assert_true(get(opt, MOM_OPTIM_HF_LAMBDA) < 1.0); /* the model was good: lambda fell */
    mom_optim_destroy(opt);
    quad_free(&q);
}

/* Preconditioned CG (Jacobi: Fisher callback = diag(A), exponent 1) and plain CG reach the same
 * solution of a badly scaled SPD system. */
static void test_pcg_equals_cg(void **state)
{
    (void)state;
    const size_t n = 16;
    quad q;
    quad_make(&q, n, 1.0, 4.0, 21);
    /* badly scaled: A <- S A S with S = diag(10^(i/15)), xs kept, b recomputed */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            q.a[i * n + j] *= pow(10.0, (double)i / 15.0) * pow(10.0, (double)j / 15.0);
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
            s += q.a[i * n + j] * q.xs[j];
        q.b[i] = s;
    }
    float sol[2][16];
    double iters[2];
    for (int pc = 0; pc < 2; pc++) {
        mom_hf_model m = quad_model(&q, 1);
        mom_optim *opt = make_hf(n, NULL);
        set_plain(opt);
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_PRECOND, pc));
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_PRECOND_EXP, 1.0));
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_FIXED_CG, 3.0 * n));
        long fisher_before = q.n_fisher;
        memset(sol[pc], 0, sizeof sol[pc]);
        assert_ok(mom_optim_step_hf_model(NULL, opt, sol[pc], &m));
        assert_int_equal(q.n_fisher - fisher_before, pc);
        iters[pc] = get(opt, MOM_OPTIM_HF_LAST_CG_ITERS);
        mom_optim_destroy(opt);
    }
    double diff = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)sol[0][i] - sol[1][i]));
        ref = fmax(ref, fabs((double)sol[1][i]));
    }
    if (diff > 1e-4 * ref)
        fail_msg("PCG and CG solutions differ by %g (scale %g); iterations %g / %g", diff, ref,
                 iters[0], iters[1]);
    assert_true(max_rel_err_to(sol[1], q.xs, n) < 1e-3);
    quad_free(&q);
}

/* Momentum-HF settings: fixed CG count, no line search, step from the lr schedule, CG started from
 * decay * the previous solution (one extra product). */
static void test_momentum_hf_mode(void **state)
{
    (void)state;
    const size_t n = 20;
    quad q;
    quad_make(&q, n, 0.1, 10.0, 31);
    mom_hf_model m = quad_model(&q, 0);
    mom_optim *opt = make_hf(n, NULL);
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_FIXED_CG, 3));
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_LINE_SEARCH, 0));
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_CG_BACKTRACK, 0));
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_LAMBDA, 0.1));
    mom_sched *lr, *dec;
    assert_ok(mom_sched_create_piecewise(&lr, 2, (uint64_t[]){0, 2}, (double[]){1.0, 0.5}, NULL));
    assert_ok(mom_sched_create_piecewise(&dec, 2, (uint64_t[]){0, 3}, (double[]){0.0, 0.9}, NULL));
    assert_ok(mom_optim_set_lr(opt, lr));
    assert_ok(mom_optim_set_cg_decay(opt, dec));
    mom_sched_destroy(lr);
    mom_sched_destroy(dec);
    float x[20] = {0};
    float prev[20];
    for (int t = 0; t < 6; t++) {
        memcpy(prev, x, sizeof x);
        assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m));
        assert_true(get(opt, MOM_OPTIM_HF_LAST_CG_ITERS) == 3.0);
        /* warm start product only when the decay is positive (t >= 3) */
        assert_true(get(opt, MOM_OPTIM_HF_LAST_GV_PRODUCTS) == 3.0 + (t >= 3) + 1.0);
        assert_true(get(opt, MOM_OPTIM_HF_LAST_ALPHA) == (t < 2 ? 1.0 : 0.5));
        assert_true(get(opt, MOM_OPTIM_HF_LAST_LS_TRIES) == 0.0);
        /* theta moved by alpha * the final CG iterate (backtracking off) */
        const float *v = mom_optim_velocity(opt);
        float a = t < 2 ? 1.0f : 0.5f;
        for (size_t i = 0; i < n; i++)
            assert_true(x[i] == prev[i] + a * v[i]);
    }
    assert_int_equal(mom_optim_steps(opt), 6);
    /* a negative step size is rejected before anything happens */
    mom_sched *neg;
    assert_ok(mom_sched_create_const(&neg, -1.0, NULL));
    assert_ok(mom_optim_set_lr(opt, neg));
    mom_sched_destroy(neg);
    assert_status(mom_optim_step_hf_model(NULL, opt, x, &m), MOM_E_INVALID);
    /* ... but ignored with the line search on */
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_LINE_SEARCH, 1));
    assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m));
    mom_optim_destroy(opt);
    quad_free(&q);
}

/* The line search rejects every try: parameters stay, alpha = 0, lambda grows, t and the warm
 * start advance. */
static void test_line_search_rejects(void **state)
{
    (void)state;
    const size_t n = 10;
    quad q;
    quad_make(&q, n, 1.0, 3.0, 41);
    q.fail_cb = 6; /* loss at trial points is NaN: every try fails */
    mom_hf_model m = quad_model(&q, 0);
    mom_optim *opt = make_hf(n, NULL);
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_CG_BACKTRACK, 0));
    q.curv_kind = 2;
    q.curv_scale = -1.0; /* the curvature objective goes up: rho < 0 */
    float x[10] = {0.5f, -0.5f, 0.25f};
    float x0[10];
    memcpy(x0, x, sizeof x);
    assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m));
    assert_memory_equal(x, x0, sizeof x);
    assert_true(get(opt, MOM_OPTIM_HF_LAST_ALPHA) == 0.0);
    assert_true(get(opt, MOM_OPTIM_HF_LAST_LS_TRIES) == 60.0);
    assert_int_equal(q.n_loss, 60);
    assert_true(get(opt, MOM_OPTIM_HF_LAST_LOSS_AFTER) == get(opt, MOM_OPTIM_HF_LAST_LOSS_BEFORE));
    assert_true(get(opt, MOM_OPTIM_HF_LAMBDA) == 1.5);
    assert_true(get(opt, MOM_OPTIM_HF_LAST_RHO) < 0.0);
    assert_int_equal(mom_optim_steps(opt), 1);
    int nonzero = 0;
    for (size_t i = 0; i < n; i++)
        nonzero |= mom_optim_velocity(opt)[i] != 0.0f;
    assert_true(nonzero);
    /* with a model without `loss`, the line search calls loss_grad */
    m.loss = NULL;
    q.fail_cb = 0;
    q.curv_kind = 0;
    long lg = q.n_loss_grad;
    assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m));
    assert_int_equal(q.n_loss_grad - lg, 1 + (long)get(opt, MOM_OPTIM_HF_LAST_LS_TRIES));
    mom_optim_destroy(opt);
    quad_free(&q);
}

/* ---- networks -------------------------------------------------------------------------------- */

/* A model over a mom_net that counts the cases each callback processes (for data passes) and
 * logs structural-damping arguments. */
typedef struct net_model {
    mom_net *net;
    const mom_batch *gb, *cb;
    double cases; /* cases processed by every call (a pass = the training set's size) */
    long gv_calls;
    double sd_log[1024];
    size_t n_sd;
} net_model;

static int nm_loss_grad(double *loss, float *grad, const float *p, void *u)
{
    net_model *c = u;
    c->cases += (double)c->gb->n;
    return mom_net_loss_grad(loss, grad, c->net, c->gb, p);
}

static int nm_loss(double *loss, const float *p, void *u)
{
    net_model *c = u;
    c->cases += (double)c->gb->n;
    return mom_net_loss(loss, c->net, c->gb, p);
}

static int nm_begin(const float *p, void *u)
{
    net_model *c = u;
    c->cases += (double)c->cb->n;
    return mom_net_gv_begin(c->net, c->cb, p);
}

static int nm_gv(float *out, const float *v, double sd, void *u)
{
    net_model *c = u;
    c->cases += (double)c->cb->n;
    c->gv_calls++;
    if (c->n_sd < sizeof c->sd_log / sizeof c->sd_log[0])
        c->sd_log[c->n_sd++] = sd;
    /* as the library's own network path: structural damping for recurrent nets only */
    return mom_net_gv(out, c->net, v, mom_net_kind_of(c->net) == MOM_NET_RECURRENT ? sd : 0.0);
}

static int nm_curv_loss(double *loss, const float *p, void *u)
{
    net_model *c = u;
    c->cases += (double)c->cb->n;
    return mom_net_loss(loss, c->net, c->cb, p);
}

static int nm_fisher(float *out, const float *p, void *u)
{
    net_model *c = u;
    c->cases += (double)c->gb->n;
    return mom_net_fisher_diag(out, c->net, c->gb, p);
}

static mom_hf_model net_hf_model(net_model *c, int fisher)
{
    mom_hf_model m = {nm_loss_grad, nm_loss, nm_begin, nm_gv, nm_curv_loss,
                      fisher ? nm_fisher : NULL, c};
    return m;
}

#define FF_IN 6
#define FF_CASES 40

typedef struct ff_fixture {
    float x[FF_CASES * FF_IN];
    mom_batch all, half;
} ff_fixture;

static void ff_data(ff_fixture *fx, uint64_t seed)
{
    mom_rng *r;
    assert_ok(mom_rng_create(&r, seed, 0, NULL));
    assert_ok(mom_rng_fill_uniform(r, fx->x, FF_CASES * FF_IN, 0.0, 1.0));
    mom_rng_destroy(r);
    memset(&fx->all, 0, sizeof fx->all);
    fx->all.n = FF_CASES;
    fx->all.inputs = fx->x;
    fx->all.targets = fx->x;
    fx->half = fx->all;
    fx->half.n = FF_CASES / 2;
}

/* A 6-4-2-4-6 autoencoder (logistic, linear code, logistic output). */
static mom_net *ff_net(const mom_allocator *alloc, uint64_t seed)
{
    const size_t sizes[] = {FF_IN, 4, 2, 4, FF_IN};
    const int act[] = {MOM_ACT_LOGISTIC, MOM_ACT_LINEAR, MOM_ACT_LOGISTIC};
    mom_net *net;
    assert_ok(mom_net_create_ff(&net, 4, sizes, act, MOM_OUT_LOGISTIC_XENT, alloc));
    mom_rng *r;
    assert_ok(mom_rng_create(&r, seed, 0, NULL));
    assert_ok(mom_rng_fill_normal(r, mom_net_params(net), mom_net_num_params(net), 0.0, 0.5));
    mom_rng_destroy(r);
    return net;
}

#define RNN_T 8
#define RNN_N 12

typedef struct rnn_fixture {
    float x[RNN_T * RNN_N * 2], y[RNN_T * RNN_N];
    size_t len[RNN_N];
    mom_batch b;
} rnn_fixture;

static void rnn_data(rnn_fixture *fx)
{
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 77, 0, NULL));
    assert_ok(mom_rng_fill_uniform(r, fx->x, RNN_T * RNN_N * 2, 0.0, 1.0));
    assert_ok(mom_rng_fill_uniform(r, fx->y, RNN_T * RNN_N, 0.0, 1.0));
    for (size_t s = 0; s < RNN_N; s++)
        fx->len[s] = RNN_T - s % 3;
    mom_rng_destroy(r);
    memset(&fx->b, 0, sizeof fx->b);
    fx->b.n = RNN_N;
    fx->b.steps = RNN_T;
    fx->b.inputs = fx->x;
    fx->b.targets = fx->y;
    fx->b.lengths = fx->len;
}

static mom_net *rnn_net(const mom_allocator *alloc)
{
    mom_net *net;
    assert_ok(mom_net_create_rnn(&net, 2, 6, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, alloc));
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 5, 0, NULL));
    assert_ok(mom_rng_fill_normal(r, mom_net_params(net), mom_net_num_params(net), 0.0, 0.4));
    mom_rng_destroy(r);
    return net;
}

/* A reduction hook that leaves every value as it is: it turns off the accumulating product of the
 * feedforward network path, which the hook could not see. */
static int identity_reduce(void *values, size_t count, int type, int what, void *user_data)
{
    (void)values, (void)count, (void)type, (void)what, (void)user_data;
    return 0;
}

/* mom_optim_step_hf with the plain products (an identity reduction hook) and
 * mom_optim_step_hf_model over the same network calls give bit-identical trajectories (the network
 * path reuses the losses it may reuse; the values are the same). mom_optim_step_net and
 * mom_optim_step_hf without a hook are bit-identical to each other; they let the product add
 * alpha G d to the CG residual inside its gemms and take d^T G d from the R-pass (compared with
 * the plain products in test_accumulating_products). */
static void test_net_paths_agree(void **state)
{
    (void)state;
    ff_fixture fx;
    ff_data(&fx, 3);
    mom_net *na = ff_net(NULL, 9), *nb = ff_net(NULL, 9), *nc = ff_net(NULL, 9),
            *nd = ff_net(NULL, 9);
    const size_t n = mom_net_num_params(na);
    mom_optim *oa = make_hf(n, NULL), *ob = make_hf(n, NULL), *oc = make_hf(n, NULL),
              *od = make_hf(n, NULL);
    mom_optim *all[4] = {oa, ob, oc, od};
    for (int k = 0; k < 4; k++) {
        assert_ok(mom_optim_set(all[k], MOM_OPTIM_WEIGHT_DECAY, 1e-3));
        assert_ok(mom_optim_set(all[k], MOM_OPTIM_HF_MAX_CG, 30));
    }
    net_model ctx = {nc, &fx.all, &fx.all, 0, 0, {0}, 0};
    mom_hf_model m = net_hf_model(&ctx, 1);
    assert_ok(mom_optim_set_reduce(ob, identity_reduce, NULL));
    double l0;
    assert_ok(mom_net_loss(&l0, na, &fx.all, NULL));
    for (int t = 0; t < 8; t++) {
        double la = 1, lb = 2, lc = 3, ld = 4;
        assert_ok(mom_optim_step_net(&la, oa, na, &fx.all));
        assert_ok(mom_optim_step_hf(&lb, ob, nb, &fx.all, NULL));
        assert_ok(mom_optim_step_hf_model(&lc, oc, mom_net_params(nc), &m));
        assert_ok(mom_optim_step_hf(&ld, od, nd, &fx.all, NULL));
        /* plain products: the net path is the model path */
        assert_memory_equal(&lb, &lc, sizeof lb);
        assert_memory_equal(mom_net_params(nb), mom_net_params(nc), n * sizeof(float));
        assert_memory_equal(mom_optim_velocity(ob), mom_optim_velocity(oc), n * sizeof(float));
        /* accumulating products: both entry points agree exactly */
        assert_memory_equal(&la, &ld, sizeof la);
        assert_memory_equal(mom_net_params(na), mom_net_params(nd), n * sizeof(float));
        assert_memory_equal(mom_optim_velocity(oa), mom_optim_velocity(od), n * sizeof(float));
        const int keys[] = {MOM_OPTIM_HF_LAMBDA, MOM_OPTIM_HF_LAST_RHO,
                            MOM_OPTIM_HF_LAST_CG_ITERS, MOM_OPTIM_HF_LAST_CG_CHOSEN,
                            MOM_OPTIM_HF_LAST_ALPHA, MOM_OPTIM_HF_LAST_LOSS_AFTER,
                            MOM_OPTIM_HF_LAST_LS_TRIES, MOM_OPTIM_HF_LAST_GV_PRODUCTS};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            double va = get(oa, keys[k]), vb = get(ob, keys[k]), vc = get(oc, keys[k]),
                   vd = get(od, keys[k]);
            assert_memory_equal(&vb, &vc, sizeof vb);
            assert_memory_equal(&va, &vd, sizeof va);
        }
        /* the model path evaluates f(theta) and f(theta + p) on the curvature data itself: two
         * more than the network path, whose data are shared; the network path's evaluations are
         * CG-backtracking's and the line search's tries after its first (backtracking's value) */
        assert_true(get(oc, MOM_OPTIM_HF_LAST_LOSS_EVALS) == get(ob, MOM_OPTIM_HF_LAST_LOSS_EVALS) + 2.0);
    }
    /* with backtracking off, rho's loss at theta + p on the shared data is also the line
     * search's first try: every evaluation is one try */
    assert_ok(mom_optim_set(oa, MOM_OPTIM_HF_CG_BACKTRACK, 0));
    for (int t = 0; t < 3; t++) {
        assert_ok(mom_optim_step_net(NULL, oa, na, &fx.all));
        assert_true(get(oa, MOM_OPTIM_HF_LAST_LOSS_EVALS) == get(oa, MOM_OPTIM_HF_LAST_LS_TRIES));
    }
    /* the loss went down */
    double l1;
    assert_ok(mom_net_loss(&l1, na, &fx.all, NULL));
    assert_true(l1 < l0);
    /* a separate curvature batch */
    assert_ok(mom_optim_step_hf(NULL, ob, nb, &fx.all, &fx.half));
    assert_int_equal(mom_optim_steps(ob), 9);
    for (int k = 0; k < 4; k++)
        mom_optim_destroy(all[k]);
    mom_net_destroy(na);
    mom_net_destroy(nb);
    mom_net_destroy(nc);
    mom_net_destroy(nd);
}

/* The feedforward network path lets each Gauss-Newton product add alpha G d to the CG residual
 * inside its gemms, with d^T G d from the R-pass; an identity reduction hook turns that off. One HF
 * step from the same point with a fixed number of CG iterations and no backtracking (so no
 * decision can flip on rounding) lands on the same parameters up to float rounding, with and
 * without the preconditioner and with weight decay in the damping. */
static void test_accumulating_products(void **state)
{
    (void)state;
    ff_fixture fx;
    ff_data(&fx, 4);
    for (int pc = 0; pc < 2; pc++) {
        mom_net *na = ff_net(NULL, 11), *nb = ff_net(NULL, 11);
        const size_t n = mom_net_num_params(na);
        float *start = malloc(n * sizeof *start);
        memcpy(start, mom_net_params(na), n * sizeof *start);
        mom_optim *o[2] = {make_hf(n, NULL), make_hf(n, NULL)};
        for (int k = 0; k < 2; k++) {
            assert_ok(mom_optim_set(o[k], MOM_OPTIM_HF_FIXED_CG, 12));
            assert_ok(mom_optim_set(o[k], MOM_OPTIM_HF_CG_BACKTRACK, 0));
            assert_ok(mom_optim_set(o[k], MOM_OPTIM_HF_LINE_SEARCH, 0));
            assert_ok(mom_optim_set(o[k], MOM_OPTIM_HF_PRECOND, pc));
            assert_ok(mom_optim_set(o[k], MOM_OPTIM_HF_LAMBDA, 0.1));
            assert_ok(mom_optim_set(o[k], MOM_OPTIM_WEIGHT_DECAY, 1e-3));
        }
        assert_ok(mom_optim_set_reduce(o[1], identity_reduce, NULL));
        /* two steps: the second starts CG from the decayed first solution */
        for (int t = 0; t < 2; t++) {
            double la, lb;
            assert_ok(mom_optim_step_hf(&la, o[0], na, &fx.all, NULL));
            assert_ok(mom_optim_step_hf(&lb, o[1], nb, &fx.all, NULL));
            assert_true(get(o[0], MOM_OPTIM_HF_LAST_CG_ITERS) == 12);
            assert_true(get(o[1], MOM_OPTIM_HF_LAST_CG_ITERS) == 12);
            double dmax = 0, smax = 0;
            for (size_t i = 0; i < n; i++) {
                const double a = mom_net_params(na)[i], b = mom_net_params(nb)[i];
                dmax = fmax(dmax, fabs(a - b));
                smax = fmax(smax, fabs(b - start[i]));
            }
            if (!(smax > 1e-3 && dmax <= 1e-4 * smax))
                fail_msg("pc %d, step %d: parameters differ by %.3g, the steps are %.3g", pc, t,
                         dmax, smax);
            const double ra = get(o[0], MOM_OPTIM_HF_LAST_RHO),
                         rb = get(o[1], MOM_OPTIM_HF_LAST_RHO);
            if (!(fabs(ra - rb) <= 1e-3 * fabs(rb)))
                fail_msg("pc %d, step %d: rho %.9g and %.9g", pc, t, ra, rb);
            memcpy(start, mom_net_params(nb), n * sizeof *start);
        }
        mom_optim_destroy(o[0]);
        mom_optim_destroy(o[1]);
        mom_net_destroy(na);
        mom_net_destroy(nb);
        free(start);
    }
}

/* A recurrent net: no preconditioner in auto mode, structural damping mu_s * lambda during CG and
 * 0 for rho; the net path equals the model path; training lowers the loss. */
static void test_rnn_structural_damping(void **state)
{
    (void)state;
    rnn_fixture fx;
    rnn_data(&fx);
    mom_net *na = rnn_net(NULL), *nb = rnn_net(NULL);
    const size_t n = mom_net_num_params(na);
    mom_optim *oa = make_hf(n, NULL), *ob = make_hf(n, NULL);
    net_model ctx = {nb, &fx.b, &fx.b, 0, 0, {0}, 0};
    mom_hf_model m = net_hf_model(&ctx, 1);
    /* the model has a Fisher callback, so auto would precondition: force it off as for the net */
    assert_ok(mom_optim_set(ob, MOM_OPTIM_HF_PRECOND, 0));
    double l0;
    assert_ok(mom_net_loss(&l0, na, &fx.b, NULL));
    for (int t = 0; t < 6; t++) {
        double lambda = get(oa, MOM_OPTIM_HF_LAMBDA);
        ctx.n_sd = 0;
        assert_ok(mom_optim_step_net(NULL, oa, na, &fx.b));
        assert_ok(mom_optim_step_hf_model(NULL, ob, mom_net_params(nb), &m));
        assert_memory_equal(mom_net_params(na), mom_net_params(nb), n * sizeof(float));
        assert_true(ctx.n_sd >= 2);
        for (size_t i = 0; i + 1 < ctx.n_sd; i++)
            assert_true(ctx.sd_log[i] == 0.03 * lambda);
        assert_true(ctx.sd_log[ctx.n_sd - 1] == 0.0); /* the product for rho */
    }
    double l1;
    assert_ok(mom_net_loss(&l1, na, &fx.b, NULL));
    assert_true(l1 < l0);
    /* mu_s = 0: plain Gauss-Newton products */
    assert_ok(mom_optim_set(ob, MOM_OPTIM_HF_STRUCT_DAMPING, 0.0));
    ctx.n_sd = 0;
    assert_ok(mom_optim_step_hf_model(NULL, ob, mom_net_params(nb), &m));
    for (size_t i = 0; i < ctx.n_sd; i++)
        assert_true(ctx.sd_log[i] == 0.0);
    mom_optim_destroy(oa);
    mom_optim_destroy(ob);
    mom_net_destroy(na);
    mom_net_destroy(nb);
}

/* ---- HF vs SGD per data pass on a small deep autoencoder ------------------------------------- */

/* The paper's setting in miniature: a deep, narrow autoencoder with sparse initialization, whose
 * pathological curvature keeps plain SGD on the plateau where the output is the mean image, while
 * HF's curvature-scaled steps leave it. 16 weight layers 24-20-16-12-10-8-6-4-2-4-...-24,
 * logistic hidden units except the linear 2-unit code, logistic outputs with cross-entropy; data
 * of intrinsic dimension 2 (smooth bumps of random position and width).
 * Measured when this test was written (initialization seeds 1-8, 300 passes): HF reached 8.8-10.8
 * on every seed, SGD's best learning rate 13.75 (the plateau) on seven and 11.6 on one. On
 * shallower toy autoencoders (6-8 layers) the best SGD learning rate of the grid matched or beat
 * HF per pass: HF's advantage is the deep, badly conditioned case, as in the paper. */
#define AE_DIM 24
#define AE_CASES 400
#define AE_PASSES 300.0
#define AE_LAYERS 16

#define AE_SEED 1

static void ae_data(float *x)
{
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 2024, 0, NULL));
    for (size_t c = 0; c < AE_CASES; c++) {
        double mu = mom_rng_uniform(r) * AE_DIM, w = 1.0 + 3.0 * mom_rng_uniform(r);
        for (size_t i = 0; i < AE_DIM; i++) {
            double d = ((double)i - mu) / w;
            x[c * AE_DIM + i] = (float)(0.05 + 0.9 * exp(-0.5 * d * d));
        }
    }
    mom_rng_destroy(r);
}

/* Sparse initialization (paper.md section 4): 15 incoming N(0, 1) weights per unit from distinct
 * sources (all of them when the fan-in is smaller), zero biases; written here with the rng so the
 * test does not depend on the init module. */
static mom_net *ae_net(void)
{
    const size_t sizes[AE_LAYERS + 1] = {AE_DIM, 20, 16, 12, 10, 8, 6, 4, 2,
                                         4,      6,  8,  10, 12, 16, 20, AE_DIM};
    int act[AE_LAYERS - 1];
    for (size_t l = 0; l + 1 < AE_LAYERS; l++)
        act[l] = sizes[l + 1] == 2 ? MOM_ACT_LINEAR : MOM_ACT_LOGISTIC;
    mom_net *net;
    assert_ok(mom_net_create_ff(&net, AE_LAYERS, sizes, act, MOM_OUT_LOGISTIC_XENT, NULL));
    mom_rng *r;
    assert_ok(mom_rng_create(&r, AE_SEED, 0, NULL));
    float *p = mom_net_params(net);
    size_t idx[15];
    for (size_t b = 0; b < mom_net_num_blocks(net); b++) {
        int kind;
        size_t rows, cols, off;
        assert_ok(mom_net_block(net, b, &kind, NULL, &rows, &cols, &off));
        if (kind != MOM_BLOCK_WEIGHTS)
            continue;
        size_t k = cols < 15 ? cols : 15;
        for (size_t row = 0; row < rows; row++) {
            assert_ok(mom_rng_sample(r, idx, k, cols));
            for (size_t i = 0; i < k; i++)
                p[off + row * cols + idx[i]] = (float)mom_rng_normal(r);
        }
    }
    mom_rng_destroy(r);
    return net;
}

/* Plain SGD, minibatches of 20 in a fixed cycle; a pass is AE_CASES cases of gradient. */
static double ae_sgd(const float *x, double lr, double passes)
{
    mom_net *net = ae_net();
    mom_optim *opt;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_SGD, mom_net_num_params(net), NULL));
    mom_sched *s;
    assert_ok(mom_sched_create_const(&s, lr, NULL));
    assert_ok(mom_optim_set_lr(opt, s));
    mom_sched_destroy(s);
    const size_t bs = 20;
    mom_batch b = {0}, all = {0};
    all.n = AE_CASES;
    all.inputs = all.targets = x;
    double cases = 0.0;
    for (size_t t = 0; cases < passes * AE_CASES; t++) {
        b.n = bs;
        b.inputs = b.targets = x + (t * bs) % AE_CASES * AE_DIM;
        int rc = mom_optim_step_net(NULL, opt, net, &b);
        assert_true(rc == MOM_OK || rc == MOM_E_DIVERGED);
        cases += (double)bs;
    }
    double loss;
    assert_ok(mom_net_loss(&loss, net, &all, NULL));
    mom_optim_destroy(opt);
    mom_net_destroy(net);
    return isfinite(loss) ? loss : INFINITY;
}

static void test_hf_beats_sgd_per_pass(void **state)
{
    (void)state;
    float *x = malloc(sizeof(float) * AE_CASES * AE_DIM);
    assert_non_null(x);
    ae_data(x);
    mom_batch all = {0}, grad = {0}, curv = {0};
    all.n = AE_CASES;
    all.inputs = all.targets = x;

    /* HF with its defaults except the data: the gradient on a quarter of the data and the
     * curvature on a quarter of that (the paper's hybrid uses 1/16 of CURVES for curvature),
     * cycling through the data. Every callback is counted in cases: gradient, Fisher diagonal,
     * curvature begin, products, curvature and line-search losses. */
    mom_net *net = ae_net();
    double loss0;
    assert_ok(mom_net_loss(&loss0, net, &all, NULL));
    mom_optim *opt = make_hf(mom_net_num_params(net), NULL);
    net_model ctx = {net, &grad, &curv, 0, 0, {0}, 0};
    mom_hf_model m = net_hf_model(&ctx, 1);
    const size_t gq = AE_CASES / 4, cq = gq / 4;
    int steps = 0;
    while (ctx.cases < AE_PASSES * AE_CASES) {
        grad.n = gq;
        grad.inputs = grad.targets = x + (size_t)(steps % 4) * gq * AE_DIM;
        curv.n = cq;
        curv.inputs = curv.targets = grad.inputs + (size_t)(steps / 4 % 4) * cq * AE_DIM;
        assert_ok(mom_optim_step_hf_model(NULL, opt, mom_net_params(net), &m));
        steps++;
    }
    double hf_passes = ctx.cases / AE_CASES, hf_loss;
    assert_ok(mom_net_loss(&hf_loss, net, &all, NULL));
    mom_optim_destroy(opt);
    mom_net_destroy(net);

    /* SGD from the same initialization with at least as many passes, the best learning rate of
     * a grid */
    double best = INFINITY, best_lr = 0;
    const double lrs[] = {1.0, 0.3, 0.1, 0.03, 0.01};
    for (size_t i = 0; i < sizeof lrs / sizeof lrs[0]; i++) {
        double l = ae_sgd(x, lrs[i], hf_passes);
        if (l < best) {
            best = l;
            best_lr = lrs[i];
        }
    }
    print_message("# HF: %d steps, %.1f passes, loss %.4f -> %.4f; SGD best (lr %g): %.4f\n",
                  steps, hf_passes, loss0, hf_loss, best_lr, best);
    if (!(hf_loss < 0.9 * best))
        fail_msg("HF loss %g is not clearly below SGD's best %g after %.1f passes", hf_loss, best,
                 hf_passes);
    free(x);
}

/* ---- divergence guard ------------------------------------------------------------------------ */

typedef struct snapshot {
    float x[24], v[24];
    double report[16];
    double lambda;
    uint64_t t;
} snapshot;

static void take(snapshot *s, const mom_optim *opt, const float *x, size_t n)
{
    memset(s, 0, sizeof *s);
    memcpy(s->x, x, n * sizeof *x);
    memcpy(s->v, mom_optim_velocity(opt), n * sizeof *x);
    for (int k = MOM_OPTIM_HF_LAST_CG_ITERS; k <= MOM_OPTIM_HF_LAST_LOSS_EVALS; k++)
        s->report[k - MOM_OPTIM_HF_LAST_CG_ITERS] = get(opt, k);
    s->lambda = get(opt, MOM_OPTIM_HF_LAMBDA);
    s->t = mom_optim_steps(opt);
}

static void test_divergence_guard(void **state)
{
    (void)state;
    const size_t n = 24;
    quad q;
    quad_make(&q, n, 0.5, 5.0, 51);
    mom_hf_model m = quad_model(&q, 1);
    struct {
        int cb;
        long call;
        int rc;
        int want;
        int line_search;
    } cases[] = {
        {1, 0, 0, MOM_E_DIVERGED, 1},       /* NaN loss */
        {2, 0, 0, MOM_E_DIVERGED, 1},       /* NaN in the gradient */
        {3, 0, 0, MOM_E_DIVERGED, 1},       /* NaN in the Fisher diagonal */
        {4, 1, 0, MOM_E_DIVERGED, 1},       /* NaN in the warm-start product */
        {4, 4, 0, MOM_E_DIVERGED, 1},       /* NaN in a CG product */
        {5, 1, 0, MOM_E_DIVERGED, 1},       /* NaN curvature loss at theta */
        {6, 0, 0, MOM_E_DIVERGED, 0},       /* NaN objective after a fixed step */
        {1, 0, MOM_E_IO, MOM_E_IO, 1},      /* a callback status is passed on */
        {4, 2, 7, MOM_E_INVALID, 1},        /* positive statuses count as MOM_E_INVALID */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mom_optim *opt = make_hf(n, NULL);
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_LINE_SEARCH, cases[c].line_search));
        float x[24] = {0};
        q.fail_cb = 0;
        assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m)); /* a warm start exists now */
        snapshot before, after;
        take(&before, opt, x, n);
        q.fail_cb = cases[c].cb;
        q.fail_call = cases[c].call;
        q.fail_rc = cases[c].rc;
        double loss = -7;
        assert_status(mom_optim_step_hf_model(&loss, opt, x, &m), cases[c].want);
        assert_true(strlen(mom_optim_errmsg(opt)) > 0);
        take(&after, opt, x, n);
        if (memcmp(&before, &after, sizeof before) != 0)
            fail_msg("case %zu: state changed by a failed step", c);
        q.fail_cb = 0;
        q.fail_rc = 0;
        assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m)); /* and it can go on */
        assert_int_equal(mom_optim_steps(opt), 2);
        mom_optim_destroy(opt);
    }
    /* non-finite parameters */
    mom_optim *opt = make_hf(n, NULL);
    float x[24] = {0};
    x[3] = INFINITY;
    long calls = q.n_loss_grad;
    assert_status(mom_optim_step_hf_model(NULL, opt, x, &m), MOM_E_DIVERGED);
    assert_int_equal(q.n_loss_grad, calls); /* refused before the model sees them */
    assert_int_equal(mom_optim_steps(opt), 0);
    assert_true(isinf(x[3]));
    mom_optim_destroy(opt);
    quad_free(&q);
}

/* ---- allocation ------------------------------------------------------------------------------ */

static void test_no_allocation_after_first_step(void **state)
{
    (void)state;
    ff_fixture fx;
    ff_data(&fx, 4);
    rnn_fixture rx;
    rnn_data(&rx);
    for (int kind = 0; kind < 3; kind++) {
        test_alloc ta;
        test_alloc_init(&ta, 0);
        mom_net *net = kind == 0 ? ff_net(&ta.a, 2) : kind == 1 ? rnn_net(&ta.a) : NULL;
        quad q;
        quad_make(&q, 20, 0.1, 10.0, 61);
        mom_hf_model qm = quad_model(&q, 1);
        float qx[20] = {0};
        const size_t n = net ? mom_net_num_params(net) : 20;
        mom_optim *opt = make_hf(n, &ta.a);
        assert_ok(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, 1e-4));
        const mom_batch *gb = kind == 0 ? &fx.all : &rx.b, *cb = kind == 0 ? &fx.half : &rx.b;
#define STEP()                                                                                 \
    (net ? mom_optim_step_hf(NULL, opt, net, gb, cb) : mom_optim_step_hf_model(NULL, opt, qx, &qm))
        assert_ok(STEP());
        long calls = ta.calls;
        for (int t = 0; t < 5; t++)
            assert_ok(STEP());
        /* other modes need no new room either */
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_LINE_SEARCH, 0));
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_FIXED_CG, 10));
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_PRECOND, net && kind == 1 ? 0 : 1));
        assert_ok(STEP());
        assert_int_equal(ta.calls, calls);
        /* raising the iteration limit allocates in the setter, not in the step */
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_FIXED_CG, 0));
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_MAX_CG, 400));
        assert_true(ta.calls > calls);
        calls = ta.calls;
        assert_ok(STEP());
        assert_int_equal(ta.calls, calls);
#undef STEP
        mom_optim_destroy(opt);
        mom_net_destroy(net);
        quad_free(&q);
        assert_int_equal(ta.live, 0);
    }
}

/* Every allocation of the first step (and of a growing setter) fails in turn: NOMEM, no leak,
 * nothing changed. */
static void test_step_nomem(void **state)
{
    (void)state;
    quad q;
    quad_make(&q, 10, 1.0, 3.0, 71);
    mom_hf_model m = quad_model(&q, 0);
    long fail_at;
    for (fail_at = 1;; fail_at++) {
        test_alloc ta;
        test_alloc_init(&ta, 0);
        mom_optim *opt = make_hf(10, &ta.a);
        ta.fail_at = ta.calls + fail_at;
        float x[10] = {0};
        int rc = mom_optim_step_hf_model(NULL, opt, x, &m);
        if (rc == MOM_OK) {
            mom_optim_destroy(opt);
            assert_int_equal(ta.live, 0);
            break;
        }
        assert_status(rc, MOM_E_NOMEM);
        assert_int_equal(mom_optim_steps(opt), 0);
        for (int i = 0; i < 10; i++)
            assert_true(x[i] == 0.0f);
        mom_optim_destroy(opt);
        assert_int_equal(ta.live, 0);
    }
    assert_true(fail_at > 1);
    /* a growing setter that cannot allocate keeps the old value */
    test_alloc ta;
    test_alloc_init(&ta, 0);
    mom_optim *opt = make_hf(10, &ta.a);
    float x[10] = {0};
    assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m));
    ta.fail_at = ta.calls + 1;
    assert_status(mom_optim_set(opt, MOM_OPTIM_HF_MAX_CG, 1000), MOM_E_NOMEM);
    assert_true(get(opt, MOM_OPTIM_HF_MAX_CG) == 250.0);
    ta.fail_at = ta.calls + 1;
    assert_status(mom_optim_set(opt, MOM_OPTIM_HF_CG_DECAY, 0.5), MOM_E_NOMEM);
    assert_true(get(opt, MOM_OPTIM_HF_CG_DECAY) == 0.95);
    ta.fail_at = 0;
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_CG_BACKTRACK, 0));
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_MAX_CG, 1000)); /* no backtracking: phi only */
    ta.fail_at = ta.calls + 1;
    assert_status(mom_optim_set(opt, MOM_OPTIM_HF_CG_BACKTRACK, 1), MOM_E_NOMEM);
    assert_true(get(opt, MOM_OPTIM_HF_CG_BACKTRACK) == 0.0);
    ta.fail_at = 0;
    assert_ok(mom_optim_step_hf_model(NULL, opt, x, &m));
    mom_optim_destroy(opt);
    assert_int_equal(ta.live, 0);
    quad_free(&q);
}

/* ---- failure paths --------------------------------------------------------------------------- */

static void test_failures(void **state)
{
    (void)state;
    ff_fixture fx;
    ff_data(&fx, 5);
    mom_net *net = ff_net(NULL, 1);
    const size_t n = mom_net_num_params(net);
    mom_optim *opt = make_hf(n, NULL);
    double loss;

    /* NULLs and sizes */
    assert_status(mom_optim_step_hf(&loss, NULL, net, &fx.all, NULL), MOM_E_INVALID);
    assert_status(mom_optim_step_hf(&loss, opt, NULL, &fx.all, NULL), MOM_E_INVALID);
    assert_status(mom_optim_step_hf(&loss, opt, net, NULL, NULL), MOM_E_INVALID);
    assert_status(mom_optim_step_net(&loss, opt, net, NULL), MOM_E_INVALID);
    mom_optim *wrong = make_hf(n + 1, NULL);
    assert_status(mom_optim_step_hf(&loss, wrong, net, &fx.all, NULL), MOM_E_SHAPE);
    assert_status(mom_optim_step_net(&loss, wrong, net, &fx.all), MOM_E_SHAPE);
    mom_optim_destroy(wrong);

    /* begin / end refuse HF */
    const float *p;
    float g[64] = {0};
    assert_status(mom_optim_begin(&p, opt, mom_net_params(net)), MOM_E_UNSUPPORTED);
    assert_status(mom_optim_end(opt, mom_net_params(net), 0.0, g), MOM_E_UNSUPPORTED);
    assert_status(mom_optim_cancel(opt), MOM_E_STATE);

    /* a bad batch: the network's status and message are passed on, nothing changes */
    float *x0 = malloc(n * sizeof *x0);
    assert_non_null(x0);
    memcpy(x0, mom_net_params(net), n * sizeof *x0);
    mom_batch bad = fx.all;
    bad.targets = NULL;
    assert_status(mom_optim_step_hf(&loss, opt, net, &bad, NULL), MOM_E_INVALID);
    assert_non_null(strstr(mom_optim_errmsg(opt), "mom_net_loss_grad"));
    bad = fx.all;
    bad.steps = 2;
    assert_status(mom_optim_step_hf(&loss, opt, net, &fx.all, &bad), MOM_E_SHAPE);
    assert_non_null(strstr(mom_optim_errmsg(opt), "mom_net_gv_begin"));
    assert_memory_equal(x0, mom_net_params(net), n * sizeof *x0);
    assert_int_equal(mom_optim_steps(opt), 0);

    /* schedule values out of range at this t */
    mom_sched *s;
    assert_ok(mom_sched_create_const(&s, 1.5, NULL));
    assert_ok(mom_optim_set_cg_decay(opt, s));
    mom_sched_destroy(s);
    assert_status(mom_optim_step_hf(&loss, opt, net, &fx.all, NULL), MOM_E_INVALID);
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_CG_DECAY, 0.95));
    assert_ok(mom_optim_step_hf(&loss, opt, net, &fx.all, NULL));
    assert_int_equal(mom_optim_steps(opt), 1);

    /* models: missing callbacks, forced preconditioner without Fisher, negative Fisher */
    quad q;
    quad_make(&q, 6, 1.0, 2.0, 81);
    float qx[6] = {0};
    mom_optim *qo = make_hf(6, NULL);
    mom_hf_model m = quad_model(&q, 0);
    assert_status(mom_optim_step_hf_model(&loss, qo, NULL, &m), MOM_E_INVALID);
    assert_status(mom_optim_step_hf_model(&loss, qo, qx, NULL), MOM_E_INVALID);
    assert_status(mom_optim_step_hf_model(&loss, NULL, qx, &m), MOM_E_INVALID);
    for (int k = 0; k < 4; k++) {
        mom_hf_model mm = m;
        if (k == 0)
            mm.loss_grad = NULL;
        if (k == 1)
            mm.curv_begin = NULL;
        if (k == 2)
            mm.gv = NULL;
        if (k == 3)
            mm.curv_loss = NULL;
        assert_status(mom_optim_step_hf_model(&loss, qo, qx, &mm), MOM_E_INVALID);
    }
    assert_ok(mom_optim_set(qo, MOM_OPTIM_HF_PRECOND, 1));
    assert_status(mom_optim_step_hf_model(&loss, qo, qx, &m), MOM_E_INVALID);
    /* a negative Fisher diagonal: A with a negative diagonal entry is not SPD, but the Fisher
     * callback only reads the diagonal */
    q.a[0] = -q.a[0];
    mom_hf_model mf = quad_model(&q, 1);
    assert_status(mom_optim_step_hf_model(&loss, qo, qx, &mf), MOM_E_INVALID);
    assert_non_null(strstr(mom_optim_errmsg(qo), "negative"));
    assert_int_equal(mom_optim_steps(qo), 0);
    for (int i = 0; i < 6; i++)
        assert_true(qx[i] == 0.0f);
    mom_optim_destroy(qo);
    quad_free(&q);

    /* reset keeps lambda, zeroes the warm start, t and the report */
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_LAMBDA, 3.0));
    assert_ok(mom_optim_reset(opt));
    assert_int_equal(mom_optim_steps(opt), 0);
    assert_true(get(opt, MOM_OPTIM_HF_LAMBDA) == 3.0);
    assert_true(isnan(get(opt, MOM_OPTIM_HF_LAST_RHO)));
    for (size_t i = 0; i < n; i++)
        assert_true(mom_optim_velocity(opt)[i] == 0.0f);

    free(x0);
    mom_optim_destroy(opt);
    mom_net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_defaults),
        cmocka_unit_test(test_create_nomem),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_iterate_grid),
        cmocka_unit_test(test_stop_rule),
        cmocka_unit_test(test_lambda_rule),
        cmocka_unit_test(test_backtrack_rule),
        cmocka_unit_test(test_backtrack_in_step),
        cmocka_unit_test(test_quadratic_minimum),
        cmocka_unit_test(test_quadratic_default_settings),
        cmocka_unit_test(test_pcg_equals_cg),
        cmocka_unit_test(test_momentum_hf_mode),
        cmocka_unit_test(test_line_search_rejects),
        cmocka_unit_test(test_net_paths_agree),
        cmocka_unit_test(test_accumulating_products),
        cmocka_unit_test(test_rnn_structural_damping),
        cmocka_unit_test(test_hf_beats_sgd_per_pass),
        cmocka_unit_test(test_divergence_guard),
        cmocka_unit_test(test_no_allocation_after_first_step),
        cmocka_unit_test(test_step_nomem),
        cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
