/* Tests of the first-order optimizers (optim.h): SGD, CM and NAG against update rules written
 * here in double, NAG's exactness under a time-varying momentum, the paper's effective-momentum
 * identity, the divergence guard, the call-order state machine, allocation behaviour, and the
 * network path. */
#include <float.h>

#include "testutil.h"
#include "../lib/internal.h"
#include "../lib/optim_internal.h"

/* ---- helpers ----------------------------------------------------------------------------------- */

/* f(x) = 1/2 sum_i a_i x_i^2 in float (what a caller would hand to mom_optim_end). */
static double quad_loss_grad(const float *a, const float *x, size_t n, float *g)
{
    double f = 0.0;
    for (size_t i = 0; i < n; i++) {
        g[i] = a[i] * x[i];
        f += 0.5 * (double)a[i] * (double)x[i] * (double)x[i];
    }
    return f;
}

/* One begin/end step of the optimizer on the quadratic. */
static void quad_step(mom_optim *opt, float *x, const float *a, size_t n)
{
    const float *p;
    float g[64];
    assert_true(n <= 64);
    assert_ok(mom_optim_begin(&p, opt, x));
    double f = quad_loss_grad(a, p, n, g);
    assert_ok(mom_optim_end(opt, x, f, g));
}

static mom_optim *make_optim(int kind, size_t n, mom_sched *lr, mom_sched *mu,
                             const mom_allocator *alloc)
{
    mom_optim *opt;
    assert_ok(mom_optim_create(&opt, kind, n, alloc));
    if (lr)
        assert_ok(mom_optim_set_lr(opt, lr));
    if (mu)
        assert_ok(mom_optim_set_momentum(opt, mu));
    return opt;
}

static mom_optim *make_optim_const(int kind, size_t n, double lr, double mu)
{
    mom_sched *l, *m;
    assert_ok(mom_sched_create_const(&l, lr, NULL));
    assert_ok(mom_sched_create_const(&m, mu, NULL));
    mom_optim *opt = make_optim(kind, n, l, m, NULL);
    mom_sched_destroy(l);
    mom_sched_destroy(m);
    return opt;
}

/* Reference step in double, straight from paper.md section 1 (SGD: mu = 0, v is the step). */
static void ref_step(int kind, double *x, double *v, const double *a, size_t n, double mu,
                     double eps)
{
    for (size_t i = 0; i < n; i++) {
        double m = kind == MOM_OPTIM_SGD ? 0.0 : mu;
        double at = kind == MOM_OPTIM_NAG ? x[i] + m * v[i] : x[i];
        v[i] = m * v[i] - eps * a[i] * at;
        x[i] += v[i];
    }
}

static void assert_close(double got, double want, double rel, double abs_tol, const char *what,
                         int step, size_t i)
{
    if (fabs(got - want) > abs_tol + rel * fabs(want))
        fail_msg("%s at step %d, index %zu: got %.9g, want %.9g", what, step, i, got, want);
}

/* ---- creation and queries ---------------------------------------------------------------------- */

static void test_create_and_defaults(void **state)
{
    (void)state;
    const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG};
    for (int k = 0; k < 3; k++) {
        mom_optim *opt;
        assert_ok(mom_optim_create(&opt, kinds[k], 7, NULL));
        assert_int_equal(mom_optim_kind_of(opt), kinds[k]);
        assert_int_equal(mom_optim_num_params(opt), 7);
        assert_int_equal(mom_optim_steps(opt), 0);
        assert_true(mom_optim_lr(opt) == 0.01);
        assert_true(mom_optim_momentum(opt) == (kinds[k] == MOM_OPTIM_SGD ? 0.0 : 0.9));
        const float *v = mom_optim_velocity(opt);
        assert_non_null(v);
        for (int i = 0; i < 7; i++)
            assert_true(v[i] == 0.0f);
        double w = -1;
        assert_ok(mom_optim_get(&w, opt, MOM_OPTIM_WEIGHT_DECAY));
        assert_true(w == 0.0);
        assert_ok(mom_optim_get(&w, opt, MOM_OPTIM_CLIP_NORM));
        assert_true(w == 0.0);
        assert_string_equal(mom_optim_errmsg(opt), "");
        mom_optim_destroy(opt);
    }
    mom_optim *opt = (mom_optim *)&opt;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_HF, 7, NULL)); /* HF: tests/test_hf.c */
    assert_int_equal(mom_optim_kind_of(opt), MOM_OPTIM_HF);
    mom_optim_destroy(opt);
    opt = (mom_optim *)&opt;
    assert_status(mom_optim_create(&opt, 0, 7, NULL), MOM_E_INVALID);
    assert_null(opt);
    assert_status(mom_optim_create(&opt, 99, 7, NULL), MOM_E_INVALID);
    assert_status(mom_optim_create(&opt, MOM_OPTIM_CM, 0, NULL), MOM_E_INVALID);
    assert_status(mom_optim_create(NULL, MOM_OPTIM_CM, 3, NULL), MOM_E_INVALID);
    assert_status(mom_optim_create(&opt, MOM_OPTIM_CM, SIZE_MAX / 2, NULL), MOM_E_NOMEM);
    assert_null(opt);
    mom_allocator half = {0};
    assert_status(mom_optim_create(&opt, MOM_OPTIM_CM, 3, &half), MOM_E_INVALID);
    assert_null(opt);

    /* NULL handles */
    mom_optim_destroy(NULL);
    assert_non_null(mom_optim_errmsg(NULL));
    assert_int_equal(mom_optim_kind_of(NULL), 0);
    assert_int_equal(mom_optim_steps(NULL), 0);
    assert_int_equal(mom_optim_num_params(NULL), 0);
    assert_null(mom_optim_velocity(NULL));
    assert_true(isnan(mom_optim_lr(NULL)));
    assert_true(isnan(mom_optim_momentum(NULL)));
    assert_status(mom_optim_reset(NULL), MOM_E_INVALID);
    assert_status(mom_optim_cancel(NULL), MOM_E_INVALID);
    assert_status(mom_optim_set(NULL, MOM_OPTIM_CLIP_NORM, 1), MOM_E_INVALID);
    double w;
    assert_status(mom_optim_get(&w, NULL, MOM_OPTIM_CLIP_NORM), MOM_E_INVALID);
    assert_status(mom_optim_set_lr(NULL, NULL), MOM_E_INVALID);
    assert_status(mom_optim_set_momentum(NULL, NULL), MOM_E_INVALID);
    const float *p;
    float x[1] = {0}, g[1] = {0};
    assert_status(mom_optim_begin(&p, NULL, x), MOM_E_INVALID);
    assert_status(mom_optim_end(NULL, x, 0, g), MOM_E_INVALID);
}

/* An allocator whose blocks start 16 bytes past a 64-byte boundary (malloc's alignment, but
 * never a cache line's). */
static void *off_alloc(void *user, size_t size)
{
    (void)user;
    char *p = aligned_alloc(64, (size + 16 + 63) / 64 * 64);
    return p ? p + 16 : NULL;
}

static void *off_realloc(void *user, void *ptr, size_t size)
{
    (void)user;
    char *p = realloc(ptr ? (char *)ptr - 16 : NULL, size + 16);
    return p ? p + 16 : NULL;
}

static void off_free(void *user, void *ptr)
{
    (void)user;
    if (ptr)
        free((char *)ptr - 16);
}

/* Every vector of the optimizers and the network's parameters starts on a 64-byte boundary, for
 * any parameter count and allocator (mom__vectors_alloc(): a product reading parameters off a
 * 16-byte boundary was measurably slower). */
static void test_buffers_aligned(void **state)
{
    (void)state;
    const mom_allocator off = {off_alloc, off_realloc, off_free, NULL};
    const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG, MOM_OPTIM_HF};
    const size_t counts[] = {1, 7, 13, 10401};
    for (int use_off = 0; use_off < 2; use_off++)
        for (size_t k = 0; k < 4; k++)
            for (size_t c = 0; c < 4; c++) {
                mom_optim *opt;
                assert_ok(mom_optim_create(&opt, kinds[k], counts[c], use_off ? &off : NULL));
                assert_int_equal((uintptr_t)mom_optim_velocity(opt) % 64, 0);
                const float *v = mom_optim_velocity(opt);
                for (size_t i = 0; i < counts[c]; i++)
                    assert_true(v[i] == 0.0f);
                if (kinds[k] == MOM_OPTIM_NAG) {
                    float *x = calloc(counts[c], sizeof *x);
                    const float *pt;
                    assert_ok(mom_optim_begin(&pt, opt, x));
                    assert_int_equal((uintptr_t)pt % 64, 0);
                    assert_ok(mom_optim_cancel(opt));
                    free(x);
                }
                mom_optim_destroy(opt);
            }
    mom_net *net;
    assert_ok(mom_net_create_rnn(&net, 2, 100, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, &off));
    assert_int_equal(mom_net_num_params(net), 10401);
    assert_int_equal((uintptr_t)mom_net_params(net) % 64, 0);
    mom_net_destroy(net);
}

static void test_create_nomem(void **state)
{
    (void)state;
    const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG};
    for (int k = 0; k < 3; k++) {
        long fail_at = 1;
        for (;; fail_at++) {
            test_alloc ta;
            test_alloc_init(&ta, fail_at);
            mom_optim *opt = (mom_optim *)&ta;
            int rc = mom_optim_create(&opt, kinds[k], 100, &ta.a);
            if (rc == MOM_OK) {
                assert_int_equal(ta.failed, 0);
                mom_optim_destroy(opt);
                assert_int_equal(ta.live, 0);
                break;
            }
            assert_status(rc, MOM_E_NOMEM);
            assert_null(opt);
            assert_int_equal(ta.failed, 1);
            assert_int_equal(ta.live, 0);
        }
        assert_true(fail_at > 1); /* at least one allocation was failed and survived */
    }
}

static void test_options(void **state)
{
    (void)state;
    mom_optim *opt;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_CM, 3, NULL));
    double v;
    assert_ok(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, 2e-5));
    assert_ok(mom_optim_get(&v, opt, MOM_OPTIM_WEIGHT_DECAY));
    assert_true(v == 2e-5);
    assert_ok(mom_optim_set(opt, MOM_OPTIM_CLIP_NORM, 5.0));
    assert_ok(mom_optim_get(&v, opt, MOM_OPTIM_CLIP_NORM));
    assert_true(v == 5.0);
    /* bad values leave the option alone */
    assert_status(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, -1.0), MOM_E_INVALID);
    assert_true(strlen(mom_optim_errmsg(opt)) > 0);
    assert_status(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, NAN), MOM_E_INVALID);
    assert_status(mom_optim_set(opt, MOM_OPTIM_CLIP_NORM, INFINITY), MOM_E_INVALID);
    assert_status(mom_optim_set(opt, MOM_OPTIM_CLIP_NORM, -2.0), MOM_E_INVALID);
    assert_status(mom_optim_set(opt, 42, 1.0), MOM_E_INVALID);
    assert_status(mom_optim_get(&v, opt, 42), MOM_E_INVALID);
    assert_status(mom_optim_get(NULL, opt, MOM_OPTIM_CLIP_NORM), MOM_E_INVALID);
    assert_ok(mom_optim_get(&v, opt, MOM_OPTIM_WEIGHT_DECAY));
    assert_true(v == 2e-5);
    assert_ok(mom_optim_get(&v, opt, MOM_OPTIM_CLIP_NORM));
    assert_true(v == 5.0);
    assert_ok(mom_optim_set(opt, MOM_OPTIM_CLIP_NORM, 0.0)); /* off again */
    assert_status(mom_optim_set_lr(opt, NULL), MOM_E_INVALID);
    assert_status(mom_optim_set_momentum(opt, NULL), MOM_E_INVALID);
    assert_true(mom_optim_lr(opt) == 0.01);
    mom_optim_destroy(opt);
}

/* ---- update rules ------------------------------------------------------------------------------ */

/* The first two steps of each method in 1-D (a = 1, x0 = 1, eps = 0.1, mu = 0.9) by hand:
 *   SGD: x1 = 0.9, x2 = 0.81
 *   CM:  v1 = -0.1, x1 = 0.9;  v2 = 0.9(-0.1) - 0.1(0.9) = -0.18, x2 = 0.72
 *   NAG: v1 = -0.1, x1 = 0.9;  point 0.9 + 0.9(-0.1) = 0.81, v2 = -0.09 - 0.081 = -0.171,
 *        x2 = 0.729 */
static void test_first_steps_by_hand(void **state)
{
    (void)state;
    const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG};
    const double x1[] = {0.9, 0.9, 0.9}, x2[] = {0.81, 0.72, 0.729};
    const double v2[] = {-0.09, -0.18, -0.171}, p2[] = {0.9, 0.9, 0.81};
    for (int k = 0; k < 3; k++) {
        mom_optim *opt = make_optim_const(kinds[k], 1, 0.1, 0.9);
        float x[1] = {1.0f};
        const float a[1] = {1.0f};
        quad_step(opt, x, a, 1);
        assert_true(fabs(x[0] - x1[k]) < 1e-7);
        const float *p;
        float g[1];
        assert_ok(mom_optim_begin(&p, opt, x));
        assert_true(fabs(p[0] - p2[k]) < 1e-7);
        assert_true((p == x) == (kinds[k] != MOM_OPTIM_NAG)); /* NAG uses its own buffer */
        double f = quad_loss_grad(a, p, 1, g);
        assert_ok(mom_optim_end(opt, x, f, g));
        assert_true(fabs(x[0] - x2[k]) < 1e-7);
        assert_true(fabs(mom_optim_velocity(opt)[0] - v2[k]) < 1e-7);
        assert_int_equal(mom_optim_steps(opt), 2);
        mom_optim_destroy(opt);
    }
}

/* Several steps on a 5-D quadratic against the double reference, with constant and with
 * time-varying momentum and learning rate. */
static void test_quadratic_vs_reference(void **state)
{
    (void)state;
    enum { N = 5, STEPS = 40 };
    const float af[N] = {0.5f, 1.0f, 2.0f, 4.0f, 8.0f};
    const double ad[N] = {0.5, 1.0, 2.0, 4.0, 8.0};
    const float x0[N] = {1.0f, -2.0f, 0.5f, 3.0f, -0.25f};
    const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG};
    for (int varying = 0; varying < 2; varying++) {
        mom_sched *lr, *mu;
        if (varying) {
            /* momentum changes every 3 steps; the learning rate at steps 10 and 25 */
            assert_ok(mom_sched_create_paper_momentum(&mu, 0.95, 3, NULL));
            const uint64_t st[] = {0, 10, 25};
            const double lv[] = {0.05, 0.1, 0.02};
            assert_ok(mom_sched_create_piecewise(&lr, 3, st, lv, NULL));
        } else {
            assert_ok(mom_sched_create_const(&mu, 0.8, NULL));
            assert_ok(mom_sched_create_const(&lr, 0.05, NULL));
        }
        for (int k = 0; k < 3; k++) {
            mom_optim *opt = make_optim(kinds[k], N, lr, mu, NULL);
            float x[N];
            double xr[N], vr[N] = {0};
            for (int i = 0; i < N; i++) {
                x[i] = x0[i];
                xr[i] = x0[i];
            }
            for (int t = 0; t < STEPS; t++) {
                double mut = mom_sched_value(mu, (uint64_t)t), eps = mom_sched_value(lr, (uint64_t)t);
                assert_true(mom_optim_momentum(opt) == (kinds[k] == MOM_OPTIM_SGD ? 0.0 : mut));
                assert_true(mom_optim_lr(opt) == eps);
                quad_step(opt, x, af, N);
                ref_step(kinds[k], xr, vr, ad, N, mut, eps);
                const float *v = mom_optim_velocity(opt);
                for (size_t i = 0; i < N; i++) {
                    assert_close(x[i], xr[i], 1e-5, 1e-6, "theta", t, i);
                    assert_close(v[i], vr[i], 1e-5, 1e-6, "velocity", t, i);
                }
            }
            assert_int_equal(mom_optim_steps(opt), STEPS);
            /* reset: zero velocity and step count, parameters untouched */
            assert_ok(mom_optim_reset(opt));
            assert_int_equal(mom_optim_steps(opt), 0);
            for (size_t i = 0; i < N; i++)
                assert_true(mom_optim_velocity(opt)[i] == 0.0f);
            mom_optim_destroy(opt);
        }
        mom_sched_destroy(lr);
        mom_sched_destroy(mu);
    }
}

/* The library's look-ahead NAG and the reparameterized form of paper.md section 1,
 *   v[t+1] = mu[t] v[t] - eps grad f(Theta[t]),
 *   Theta[t+1] = Theta[t] - mu[t] v[t] + (1 + mu[t+1]) v[t+1],   theta = Theta - mu v,
 * give the same theta sequence under the paper's schedule. The one-mu version
 * (Theta[t+1] = Theta[t] - mu[t] v[t] + (1 + mu[t]) v[t+1], as in PyTorch) does not, which shows
 * the comparison can tell them apart. */
static void test_nag_matches_reparameterization(void **state)
{
    (void)state;
    enum { N = 4, STEPS = 1300 };
    const float af[N] = {0.05f, 0.2f, 1.0f, 3.0f};
    const double eps = 0.05;
    mom_sched *mu, *lr;
    assert_ok(mom_sched_create_paper_momentum(&mu, 0.99, 250, NULL));
    assert_ok(mom_sched_create_const(&lr, eps, NULL));
    mom_optim *opt = make_optim(MOM_OPTIM_NAG, N, lr, mu, NULL);
    float x[N] = {1.0f, -1.0f, 0.5f, 2.0f};
    double Th[N], v[N] = {0}, Tn[N], vn[N] = {0}; /* exact and one-mu reparameterizations */
    for (int i = 0; i < N; i++)
        Th[i] = Tn[i] = x[i]; /* Theta[0] = theta[0] + mu[0] v[0] = theta[0] */
    double max_err = 0.0, max_naive = 0.0;
    for (int t = 0; t < STEPS; t++) {
        double m0 = mom_sched_value(mu, (uint64_t)t), m1 = mom_sched_value(mu, (uint64_t)t + 1);
        const float *p;
        float g[N];
        assert_ok(mom_optim_begin(&p, opt, x));
        /* the point where the library asks for the gradient is Theta[t] */
        for (int i = 0; i < N; i++)
            max_err = fmax(max_err, fabs(p[i] - Th[i]));
        double f = quad_loss_grad(af, p, N, g);
        assert_ok(mom_optim_end(opt, x, f, g));
        for (int i = 0; i < N; i++) {
            double vnew = m0 * v[i] - eps * af[i] * Th[i];
            Th[i] = Th[i] - m0 * v[i] + (1.0 + m1) * vnew;
            v[i] = vnew;
            double theta = Th[i] - m1 * v[i];
            max_err = fmax(max_err, fabs(x[i] - theta));

            double vnn = m0 * vn[i] - eps * af[i] * Tn[i];
            Tn[i] = Tn[i] - m0 * vn[i] + (1.0 + m0) * vnn;
            vn[i] = vnn;
            max_naive = fmax(max_naive, fabs(Tn[i] - m1 * vn[i] - theta));
        }
    }
    assert_true(max_err < 2e-6);
    assert_true(max_naive > 100 * max_err);
    mom_optim_destroy(opt);
    mom_sched_destroy(mu);
    mom_sched_destroy(lr);
}

/* Paper section 2.1: on a quadratic, one NAG step equals one CM step with momentum
 * mu (1 - lambda eps) along each eigendirection (curvature lambda). A diagonal quadratic, NAG on
 * all coordinates at once against one 1-D CM optimizer per coordinate with its effective momentum,
 * from the same start: the theta and velocity sequences agree. */
static void test_nag_effective_momentum(void **state)
{
    (void)state;
    enum { N = 5, STEPS = 60 };
    const float lam[N] = {0.1f, 1.0f, 3.0f, 5.0f, 9.0f};
    const double eps = 0.1, mu = 0.9;
    const float x0[N] = {1.0f, -1.0f, 2.0f, 0.5f, -3.0f};
    mom_optim *nag = make_optim_const(MOM_OPTIM_NAG, N, eps, mu);
    mom_optim *cm[N], *plain[N];
    float x[N], xc[N], xp[N];
    for (int i = 0; i < N; i++) {
        cm[i] = make_optim_const(MOM_OPTIM_CM, 1, eps, mu * (1.0 - (double)lam[i] * eps));
        plain[i] = make_optim_const(MOM_OPTIM_CM, 1, eps, mu);
        x[i] = xc[i] = xp[i] = x0[i];
    }
    double max_diff_plain = 0.0;
    for (int t = 0; t < STEPS; t++) {
        quad_step(nag, x, lam, N);
        for (int i = 0; i < N; i++) {
            quad_step(cm[i], &xc[i], &lam[i], 1);
            quad_step(plain[i], &xp[i], &lam[i], 1);
            double scale = fabs(x0[i]);
            assert_close(x[i], xc[i], 0, 2e-6 * scale, "theta", t, (size_t)i);
            assert_close(mom_optim_velocity(nag)[i], mom_optim_velocity(cm[i])[0], 0,
                         2e-6 * scale, "velocity", t, (size_t)i);
            max_diff_plain = fmax(max_diff_plain, fabs(x[i] - xp[i]) / scale);
        }
    }
    assert_true(max_diff_plain > 0.1); /* CM at the same mu is a different method */
    mom_optim_destroy(nag);
    for (int i = 0; i < N; i++) {
        mom_optim_destroy(cm[i]);
        mom_optim_destroy(plain[i]);
    }
}

/* The oblong quadratic of paper section 2.1, curvatures 1 and 100, at the same mu and eps: NAG
 * damps the oscillation of the steep coordinate much faster than CM. A sign change counts while
 * the oscillation is still visible (|x| above 1e-6 of its start). */
static int count_sign_changes(int kind, double mu, double eps, int steps, float *shallow_end)
{
    const float a[2] = {1.0f, 100.0f};
    float x[2] = {1.0f, 1.0f};
    mom_optim *opt = make_optim_const(kind, 2, eps, mu);
    int changes = 0;
    float prev = x[1];
    for (int t = 0; t < steps; t++) {
        quad_step(opt, x, a, 2);
        if (fabsf(x[1]) > 1e-6f && fabsf(prev) > 1e-6f && (x[1] > 0) != (prev > 0))
            changes++;
        if (fabsf(x[1]) > 1e-6f)
            prev = x[1];
    }
    *shallow_end = x[0];
    mom_optim_destroy(opt);
    return changes;
}

static void test_oblong_nag_oscillates_less(void **state)
{
    (void)state;
    const double mus[] = {0.9, 0.99};
    const double epss[] = {0.002, 0.005, 0.0099};
    for (int m = 0; m < 2; m++) {
        for (int e = 0; e < 3; e++) {
            float s_cm, s_nag;
            int cm = count_sign_changes(MOM_OPTIM_CM, mus[m], epss[e], 400, &s_cm);
            int nag = count_sign_changes(MOM_OPTIM_NAG, mus[m], epss[e], 400, &s_nag);
            if (!(nag < cm))
                fail_msg("mu %g eps %g: NAG %d sign changes, CM %d", mus[m], epss[e], nag, cm);
            assert_true(cm >= 10); /* CM really oscillates here */
            assert_true(fabsf(s_nag) < 1.0f); /* and NAG still makes progress on x[0] */
        }
    }
}

/* Weight decay w and clipping c, by hand: the gradient used is s (g + w p), where p is the
 * gradient point and s = min(1, c / |g + w p|). */
static void test_weight_decay_and_clipping(void **state)
{
    (void)state;
    enum { N = 3, STEPS = 6 };
    const float gseq[STEPS][N] = {{3, -4, 0},   {0.1f, 0.2f, -0.2f}, {10, 10, 10},
                                  {-1, 0, 2},   {0, 0, 0},           {-6, 8, 1}};
    const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG};
    const double ws[] = {0.0, 0.05, 0.3};
    const double cs[] = {0.0, 1.0, 2.5};
    for (int k = 0; k < 3; k++) {
        for (int wi = 0; wi < 3; wi++) {
            for (int ci = 0; ci < 3; ci++) {
                const double eps = 0.1, mu = 0.7, w = ws[wi], c = cs[ci];
                mom_optim *opt = make_optim_const(kinds[k], N, eps, mu);
                assert_ok(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, w));
                assert_ok(mom_optim_set(opt, MOM_OPTIM_CLIP_NORM, c));
                float x[N] = {1.0f, -2.0f, 0.5f};
                double xr[N] = {1.0, -2.0, 0.5}, vr[N] = {0};
                for (int t = 0; t < STEPS; t++) {
                    const float *p;
                    assert_ok(mom_optim_begin(&p, opt, x));
                    assert_ok(mom_optim_end(opt, x, 1.0, gseq[t]));
                    double m = kinds[k] == MOM_OPTIM_SGD ? 0.0 : mu, ge[N], norm = 0.0;
                    for (int i = 0; i < N; i++) {
                        double pt = kinds[k] == MOM_OPTIM_NAG ? xr[i] + m * vr[i] : xr[i];
                        ge[i] = gseq[t][i] + w * pt;
                        norm += ge[i] * ge[i];
                    }
                    norm = sqrt(norm);
                    double s = (c > 0 && norm > c) ? c / norm : 1.0;
                    for (int i = 0; i < N; i++) {
                        vr[i] = m * vr[i] - eps * s * ge[i];
                        xr[i] += vr[i];
                    }
                    for (size_t i = 0; i < N; i++) {
                        assert_close(x[i], xr[i], 1e-5, 1e-6, "theta", t, i);
                        assert_close(mom_optim_velocity(opt)[i], vr[i], 1e-5, 1e-6, "velocity",
                                     t, i);
                    }
                }
                mom_optim_destroy(opt);
            }
        }
    }
}

/* ---- divergence guard -------------------------------------------------------------------------- */

typedef struct snapshot {
    float x[6], v[6];
    uint64_t t;
} snapshot;

static void take(snapshot *s, const mom_optim *opt, const float *x)
{
    memcpy(s->x, x, sizeof s->x);
    memcpy(s->v, mom_optim_velocity(opt), sizeof s->v);
    s->t = mom_optim_steps(opt);
}

static void assert_unchanged(const snapshot *s, const mom_optim *opt, const float *x)
{
    assert_memory_equal(s->x, x, sizeof s->x);
    assert_memory_equal(s->v, mom_optim_velocity(opt), sizeof s->v);
    assert_int_equal(s->t, mom_optim_steps(opt));
}

/* Begin a step, end it with (loss, grad): must diverge and leave everything bit-identical; the
 * step stays begun (begin again is a state error) and is then cancelled. */
static void expect_diverged(mom_optim *opt, float *x, double loss, const float *g)
{
    snapshot before;
    take(&before, opt, x);
    const float *p;
    assert_ok(mom_optim_begin(&p, opt, x));
    assert_status(mom_optim_end(opt, x, loss, g), MOM_E_DIVERGED);
    assert_true(strlen(mom_optim_errmsg(opt)) > 0);
    assert_unchanged(&before, opt, x);
    assert_status(mom_optim_begin(&p, opt, x), MOM_E_STATE);
    assert_status(mom_optim_end(opt, x, loss, g), MOM_E_DIVERGED); /* still begun */
    assert_unchanged(&before, opt, x);
    assert_ok(mom_optim_cancel(opt));
    assert_unchanged(&before, opt, x);
}

static void test_divergence_guard(void **state)
{
    (void)state;
    enum { N = 6 };
    const float a[N] = {1, 2, 3, 4, 5, 6};
    const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG};
    for (int k = 0; k < 3; k++) {
        for (int clip = 0; clip < 2; clip++) {
            mom_optim *opt = make_optim_const(kinds[k], N, 0.05, 0.9);
            if (clip) {
                assert_ok(mom_optim_set(opt, MOM_OPTIM_CLIP_NORM, 1.0));
                assert_ok(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, 0.01));
            }
            float x[N] = {1, -1, 2, -2, 0.5f, 3};
            for (int t = 0; t < 5; t++) /* nonzero velocity first */
                quad_step(opt, x, a, N);
            float g[N] = {0.1f, -0.2f, 0.3f, 0.1f, 0.0f, 0.2f};

            expect_diverged(opt, x, NAN, g);               /* NaN loss */
            expect_diverged(opt, x, INFINITY, g);          /* infinite loss */
            float gi[N];
            memcpy(gi, g, sizeof g);
            gi[3] = INFINITY;
            expect_diverged(opt, x, 1.0, gi);              /* Inf gradient */
            gi[3] = -INFINITY;
            expect_diverged(opt, x, 1.0, gi);
            gi[3] = NAN;
            expect_diverged(opt, x, 1.0, gi);              /* NaN gradient */

            if (!clip) {
                /* finite gradient whose update overflows: eps g = 1e3 * 1e36 */
                mom_sched *big;
                assert_ok(mom_sched_create_const(&big, 1e3, NULL));
                assert_ok(mom_optim_set_lr(opt, big));
                mom_sched_destroy(big);
                float gb[N];
                memcpy(gb, g, sizeof g);
                gb[5] = 1e36f;
                expect_diverged(opt, x, 1.0, gb);
                mom_sched *small;
                assert_ok(mom_sched_create_const(&small, 0.05, NULL));
                assert_ok(mom_optim_set_lr(opt, small));
                mom_sched_destroy(small);
            }
            /* A parameter at FLT_MAX (the caller may edit params between steps). Without
             * clipping, a finite update pushes it past FLT_MAX; with clipping and weight decay,
             * the decayed gradient g + w p itself overflows. */
            float saved = x[2];
            x[2] = FLT_MAX;
            float gp[N];
            memcpy(gp, g, sizeof g);
            gp[2] = clip ? FLT_MAX : -1e34f;
            expect_diverged(opt, x, 1.0, gp);
            x[2] = saved;

            /* after all that, a normal step still works, and a divergent step ended again with
             * good values succeeds */
            snapshot s0;
            take(&s0, opt, x);
            const float *p;
            assert_ok(mom_optim_begin(&p, opt, x));
            assert_status(mom_optim_end(opt, x, NAN, g), MOM_E_DIVERGED);
            assert_ok(mom_optim_end(opt, x, 1.0, g));
            assert_int_equal(mom_optim_steps(opt), s0.t + 1);
            assert_true(memcmp(s0.x, x, sizeof s0.x) != 0);
            mom_optim_destroy(opt);
        }
    }
}

/* ---- call order -------------------------------------------------------------------------------- */

static void test_state_errors(void **state)
{
    (void)state;
    mom_optim *opt = make_optim_const(MOM_OPTIM_NAG, 3, 0.1, 0.5);
    float x[3] = {1, 2, 3}, y[3] = {1, 2, 3}, g[3] = {1, 1, 1};
    const float *p = NULL;
    mom_sched *s;
    assert_ok(mom_sched_create_const(&s, 0.2, NULL));

    assert_status(mom_optim_end(opt, x, 0.0, g), MOM_E_STATE); /* end without begin */
    assert_true(strlen(mom_optim_errmsg(opt)) > 0);
    assert_status(mom_optim_cancel(opt), MOM_E_STATE);
    assert_status(mom_optim_begin(NULL, opt, x), MOM_E_INVALID);
    assert_status(mom_optim_begin(&p, opt, NULL), MOM_E_INVALID);
    assert_int_equal(mom_optim_steps(opt), 0);

    assert_ok(mom_optim_begin(&p, opt, x));
    assert_string_equal(mom_optim_errmsg(opt), "");
    assert_status(mom_optim_begin(&p, opt, x), MOM_E_STATE);  /* begin twice */
    assert_status(mom_optim_begin(&p, opt, y), MOM_E_STATE);
    assert_status(mom_optim_end(opt, y, 0.0, g), MOM_E_STATE); /* another params vector */
    assert_status(mom_optim_end(opt, NULL, 0.0, g), MOM_E_STATE);
    assert_status(mom_optim_end(opt, x, 0.0, NULL), MOM_E_INVALID);
    assert_status(mom_optim_end(opt, x, 0.0, x), MOM_E_INVALID); /* grad aliases params */
    assert_status(mom_optim_set_lr(opt, s), MOM_E_STATE);
    assert_status(mom_optim_set_momentum(opt, s), MOM_E_STATE);
    assert_status(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, 0.1), MOM_E_STATE);
    assert_status(mom_optim_reset(opt), MOM_E_STATE);
    assert_true(mom_optim_lr(opt) == 0.1); /* nothing changed */
    double w;
    assert_ok(mom_optim_get(&w, opt, MOM_OPTIM_WEIGHT_DECAY));
    assert_true(w == 0.0);
    assert_true(memcmp(x, y, sizeof x) == 0);
    assert_int_equal(mom_optim_steps(opt), 0);
    /* the step is still begun and ends normally */
    assert_ok(mom_optim_end(opt, x, 0.0, g));
    assert_int_equal(mom_optim_steps(opt), 1);
    assert_status(mom_optim_end(opt, x, 0.0, g), MOM_E_STATE); /* ended already */

    /* cancel: nothing changes, and a new step can begin */
    float xs[3], vs[3];
    memcpy(xs, x, sizeof x);
    memcpy(vs, mom_optim_velocity(opt), sizeof vs);
    assert_ok(mom_optim_begin(&p, opt, x));
    assert_ok(mom_optim_cancel(opt));
    assert_status(mom_optim_cancel(opt), MOM_E_STATE);
    assert_int_equal(mom_optim_steps(opt), 1);
    assert_memory_equal(xs, x, sizeof x);
    assert_memory_equal(vs, mom_optim_velocity(opt), sizeof vs);
    assert_ok(mom_optim_set_lr(opt, s));
    assert_ok(mom_optim_begin(&p, opt, y)); /* another vector is fine for a new step */
    assert_ok(mom_optim_end(opt, y, 0.0, g));
    mom_sched_destroy(s);
    mom_optim_destroy(opt);

    /* destroying an optimizer with a step begun is fine */
    opt = make_optim_const(MOM_OPTIM_CM, 3, 0.1, 0.5);
    assert_ok(mom_optim_begin(&p, opt, x));
    mom_optim_destroy(opt);
}

static double nan_sched(uint64_t t, void *user_data)
{
    (void)t;
    (void)user_data;
    return NAN;
}

static void test_bad_schedule_values(void **state)
{
    (void)state;
    float x[2] = {1, 2};
    const float *p;
    mom_sched *bad_mu, *neg_lr, *nan_cb, *huge_lr;
    assert_ok(mom_sched_create_const(&bad_mu, 1.5, NULL));
    assert_ok(mom_sched_create_const(&neg_lr, -0.1, NULL));
    assert_ok(mom_sched_create_const(&huge_lr, 1e300, NULL));
    assert_ok(mom_sched_create_callback(&nan_cb, nan_sched, NULL, NULL));
    mom_sched *mus[] = {bad_mu, nan_cb}, *lrs[] = {neg_lr, nan_cb, huge_lr};
    for (int i = 0; i < 2; i++) {
        mom_optim *opt = make_optim(MOM_OPTIM_CM, 2, NULL, mus[i], NULL);
        assert_status(mom_optim_begin(&p, opt, x), MOM_E_INVALID);
        assert_true(strlen(mom_optim_errmsg(opt)) > 0);
        assert_status(mom_optim_cancel(opt), MOM_E_STATE); /* not begun */
        mom_optim_destroy(opt);
        /* SGD ignores the momentum schedule */
        opt = make_optim(MOM_OPTIM_SGD, 2, NULL, mus[i], NULL);
        assert_true(mom_optim_momentum(opt) == 0.0);
        assert_ok(mom_optim_begin(&p, opt, x));
        assert_ok(mom_optim_cancel(opt));
        mom_optim_destroy(opt);
    }
    for (int i = 0; i < 3; i++) {
        mom_optim *opt = make_optim(MOM_OPTIM_NAG, 2, lrs[i], NULL, NULL);
        assert_status(mom_optim_begin(&p, opt, x), MOM_E_INVALID);
        mom_optim_destroy(opt);
    }
    /* mu = 0 and mu = 1 and eps = 0 are allowed */
    mom_sched *zero, *one;
    assert_ok(mom_sched_create_const(&zero, 0.0, NULL));
    assert_ok(mom_sched_create_const(&one, 1.0, NULL));
    mom_optim *opt = make_optim(MOM_OPTIM_NAG, 2, zero, one, NULL);
    float g[2] = {1, 1};
    assert_ok(mom_optim_begin(&p, opt, x));
    assert_ok(mom_optim_end(opt, x, 0.0, g));
    assert_true(x[0] == 1.0f && x[1] == 2.0f);
    mom_optim_destroy(opt);
    mom_sched_destroy(zero);
    mom_sched_destroy(one);
    mom_sched_destroy(bad_mu);
    mom_sched_destroy(neg_lr);
    mom_sched_destroy(huge_lr);
    mom_sched_destroy(nan_cb);
}

/* The any-model path allocates nothing at all after creation. */
static void test_no_allocation_in_steps(void **state)
{
    (void)state;
    const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG};
    const float a[4] = {1, 2, 3, 4};
    for (int k = 0; k < 3; k++) {
        test_alloc ta;
        test_alloc_init(&ta, 0);
        mom_optim *opt;
        assert_ok(mom_optim_create(&opt, kinds[k], 4, &ta.a));
        assert_ok(mom_optim_set(opt, MOM_OPTIM_CLIP_NORM, 1.0));
        long calls = ta.calls;
        float x[4] = {1, 1, 1, 1};
        for (int t = 0; t < 100; t++)
            quad_step(opt, x, a, 4);
        assert_int_equal(ta.calls, calls);
        mom_optim_destroy(opt);
        assert_int_equal(ta.live, 0);
    }
}

/* ---- network path ------------------------------------------------------------------------------ */

#define NET_IN 5
#define NET_HID 7
#define NET_OUT 3
#define NET_CASES 12

typedef struct net_fixture {
    float inputs[NET_CASES * NET_IN];
    float targets[NET_CASES * NET_OUT];
    mom_batch batch;
} net_fixture;

static mom_net *make_net(const mom_allocator *alloc, uint64_t seed)
{
    const size_t sizes[3] = {NET_IN, NET_HID, NET_OUT};
    const int act[1] = {MOM_ACT_TANH};
    mom_net *net;
    assert_ok(mom_net_create_ff(&net, 2, sizes, act, MOM_OUT_LINEAR_SQUARED, alloc));
    mom_rng *r;
    assert_ok(mom_rng_create(&r, seed, 0, NULL));
    assert_ok(mom_rng_fill_normal(r, mom_net_params(net), mom_net_num_params(net), 0.0, 0.3));
    mom_rng_destroy(r);
    return net;
}

static void make_data(net_fixture *fx)
{
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 99, 1, NULL));
    assert_ok(mom_rng_fill_uniform(r, fx->inputs, NET_CASES * NET_IN, -1.0, 1.0));
    assert_ok(mom_rng_fill_uniform(r, fx->targets, NET_CASES * NET_OUT, -0.5, 0.5));
    mom_rng_destroy(r);
    memset(&fx->batch, 0, sizeof fx->batch);
    fx->batch.n = NET_CASES;
    fx->batch.inputs = fx->inputs;
    fx->batch.targets = fx->targets;
}

/* step_net lowers the loss and matches begin / mom_net_loss_grad / end bit for bit. */
static void test_step_net_matches_any_model_path(void **state)
{
    (void)state;
    net_fixture fx;
    make_data(&fx);
    const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG};
    for (int k = 0; k < 3; k++) {
        mom_net *na = make_net(NULL, 5), *nb = make_net(NULL, 5);
        const size_t n = mom_net_num_params(na);
        mom_sched *lr, *mu;
        assert_ok(mom_sched_create_const(&lr, 0.05, NULL));
        assert_ok(mom_sched_create_paper_momentum(&mu, 0.99, 5, NULL)); /* varies quickly */
        mom_optim *oa = make_optim(kinds[k], n, lr, mu, NULL);
        mom_optim *ob = make_optim(kinds[k], n, lr, mu, NULL);
        mom_sched_destroy(lr);
        mom_sched_destroy(mu);
        assert_ok(mom_optim_set(oa, MOM_OPTIM_WEIGHT_DECAY, 1e-3));
        assert_ok(mom_optim_set(ob, MOM_OPTIM_WEIGHT_DECAY, 1e-3));
        assert_ok(mom_optim_set(oa, MOM_OPTIM_CLIP_NORM, 2.0));
        assert_ok(mom_optim_set(ob, MOM_OPTIM_CLIP_NORM, 2.0));
        float *grad = calloc(n, sizeof *grad);
        assert_non_null(grad);

        double loss0;
        assert_ok(mom_net_loss(&loss0, na, &fx.batch, NULL));
        for (int t = 0; t < 60; t++) {
            double la = -1, lb = -2;
            assert_ok(mom_optim_step_net(&la, oa, na, &fx.batch));
            const float *p;
            assert_ok(mom_optim_begin(&p, ob, mom_net_params(nb)));
            assert_ok(mom_net_loss_grad(&lb, grad, nb, &fx.batch, p));
            assert_ok(mom_optim_end(ob, mom_net_params(nb), lb, grad));
            assert_memory_equal(&la, &lb, sizeof la);
            assert_memory_equal(mom_net_params(na), mom_net_params(nb), n * sizeof(float));
            assert_memory_equal(mom_optim_velocity(oa), mom_optim_velocity(ob),
                                n * sizeof(float));
        }
        assert_int_equal(mom_optim_steps(oa), 60);
        double loss1;
        assert_ok(mom_net_loss(&loss1, na, &fx.batch, NULL));
        if (!(loss1 < 0.5 * loss0))
            fail_msg("kind %d: loss %g -> %g", kinds[k], loss0, loss1);
        /* loss may be NULL */
        assert_ok(mom_optim_step_net(NULL, oa, na, &fx.batch));
        free(grad);
        mom_optim_destroy(oa);
        mom_optim_destroy(ob);
        mom_net_destroy(na);
        mom_net_destroy(nb);
    }
}

/* No allocation after the first step, counted through one allocator given to both objects. */
static void test_step_net_no_allocation(void **state)
{
    (void)state;
    net_fixture fx;
    make_data(&fx);
    const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG};
    for (int k = 0; k < 3; k++) {
        test_alloc ta;
        test_alloc_init(&ta, 0);
        mom_net *net = make_net(&ta.a, 8);
        mom_optim *opt;
        assert_ok(mom_optim_create(&opt, kinds[k], mom_net_num_params(net), &ta.a));
        assert_ok(mom_optim_set(opt, MOM_OPTIM_CLIP_NORM, 1.0));
        assert_ok(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, 1e-4));
        double loss;
        assert_ok(mom_optim_step_net(&loss, opt, net, &fx.batch));
        long calls = ta.calls;
        for (int t = 0; t < 200; t++)
            assert_ok(mom_optim_step_net(&loss, opt, net, &fx.batch));
        /* a smaller batch needs no new workspace either */
        mom_batch half = fx.batch;
        half.n = NET_CASES / 2;
        assert_ok(mom_optim_step_net(&loss, opt, net, &half));
        assert_int_equal(ta.calls, calls);
        mom_optim_destroy(opt);
        mom_net_destroy(net);
        assert_int_equal(ta.live, 0);
    }
}

/* ---- NAG fused into a feedforward network's passes (optim.c, mom__nag_fuse) ----------------
 * mom_optim_step_net() forms a feedforward network's look-ahead point layer by layer during the
 * forward pass and updates each block as soon as its gradient is final, when the network's
 * bound rules out overflow; otherwise it finishes as begin + loss_grad + end. Either way the
 * results must be the bits of the unfused step, and a divergent step must change nothing. */

#define FUSE_IN 40
#define FUSE_H1 300
#define FUSE_H2 240 /* 300 x 240: large enough for the update to be shared among helpers */
#define FUSE_OUT 6
#define FUSE_CASES 16

typedef struct fuse_case {
    int act, output;
    double wd;
    double threads;
} fuse_case;

static mom_net *fuse_net(const fuse_case *c, uint64_t seed)
{
    const size_t sizes[4] = {FUSE_IN, FUSE_H1, FUSE_H2, FUSE_OUT};
    const int act[2] = {c->act, c->act};
    mom_net *net;
    assert_ok(mom_net_create_ff(&net, 3, sizes, act, c->output, NULL));
    assert_ok(mom_net_set(net, MOM_NET_THREADS, c->threads));
    mom_rng *r;
    assert_ok(mom_rng_create(&r, seed, 0, NULL));
    assert_ok(mom_rng_fill_normal(r, mom_net_params(net), mom_net_num_params(net), 0.0, 0.1));
    mom_rng_destroy(r);
    return net;
}

/* Inputs in [-1, 1]; targets in [0, 1], each row a distribution for the softmax. */
static mom_batch fuse_batch(float *x, float *t, int output)
{
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 5, 1, NULL));
    assert_ok(mom_rng_fill_uniform(r, x, FUSE_CASES * FUSE_IN, -1.0, 1.0));
    assert_ok(mom_rng_fill_uniform(r, t, FUSE_CASES * FUSE_OUT, 0.0, 1.0));
    mom_rng_destroy(r);
    for (size_t i = 0; output == MOM_OUT_SOFTMAX_XENT && i < FUSE_CASES; i++) {
        float sum = 0.0f;
        for (size_t k = 0; k < FUSE_OUT; k++)
            sum += t[i * FUSE_OUT + k];
        for (size_t k = 0; k < FUSE_OUT; k++)
            t[i * FUSE_OUT + k] /= sum;
    }
    mom_batch b = {0};
    b.n = FUSE_CASES;
    b.inputs = x;
    b.targets = t;
    return b;
}

static mom_optim *fuse_optim(size_t n, double wd)
{
    mom_sched *lr, *mu;
    assert_ok(mom_sched_create_const(&lr, 0.01, NULL));
    assert_ok(mom_sched_create_paper_momentum(&mu, 0.99, 2, NULL)); /* changes every 2 steps */
    mom_optim *opt = make_optim(MOM_OPTIM_NAG, n, lr, mu, NULL);
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);
    assert_ok(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, wd));
    return opt;
}

/* One step each: a by mom_optim_step_net(), b by begin + mom_net_loss_grad + end; the same bits
 * (loss, parameters, velocity). */
static void fuse_step_both(mom_optim *oa, mom_net *na, mom_optim *ob, mom_net *nb,
                           const mom_batch *b, float *grad)
{
    const size_t n = mom_net_num_params(na);
    double la = -1, lb = -2;
    assert_ok(mom_optim_step_net(&la, oa, na, b));
    const float *p;
    assert_ok(mom_optim_begin(&p, ob, mom_net_params(nb)));
    assert_ok(mom_net_loss_grad(&lb, grad, nb, b, p));
    assert_ok(mom_optim_end(ob, mom_net_params(nb), lb, grad));
    assert_memory_equal(&la, &lb, sizeof la);
    assert_memory_equal(mom_net_params(na), mom_net_params(nb), n * sizeof(float));
    assert_memory_equal(mom_optim_velocity(oa), mom_optim_velocity(ob), n * sizeof(float));
}

/* Two identical networks and optimizers: a is driven by mom_optim_step_net(), b by the begin /
 * loss_grad / end path (fuse_step_both()). */
typedef struct fuse_pair {
    mom_net *na, *nb;
    mom_optim *oa, *ob;
    float *grad;
    size_t n;
} fuse_pair;

static void fuse_pair_open(fuse_pair *p, const fuse_case *c, uint64_t seed)
{
    p->na = fuse_net(c, seed);
    p->nb = fuse_net(c, seed);
    p->n = mom_net_num_params(p->na);
    p->oa = fuse_optim(p->n, c->wd);
    p->ob = fuse_optim(p->n, c->wd);
    p->grad = malloc(p->n * sizeof *p->grad);
    assert_non_null(p->grad);
}

static void fuse_pair_steps(fuse_pair *p, const mom_batch *b, int steps)
{
    for (int k = 0; k < steps; k++)
        fuse_step_both(p->oa, p->na, p->ob, p->nb, b, p->grad);
}

static void fuse_pair_close(fuse_pair *p)
{
    free(p->grad);
    mom_optim_destroy(p->oa);
    mom_optim_destroy(p->ob);
    mom_net_destroy(p->na);
    mom_net_destroy(p->nb);
}

static void test_step_net_fused_nag(void **state)
{
    (void)state;
    const fuse_case cases[] = {
        {MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0.0, 1},
        {MOM_ACT_LOGISTIC, MOM_OUT_LOGISTIC_XENT, 1e-3, 4},
        {MOM_ACT_RELU, MOM_OUT_SOFTMAX_XENT, 0.0, 4},
        {MOM_ACT_LINEAR, MOM_OUT_LINEAR_SQUARED, 1e-3, 1},
    };
    static float x[FUSE_CASES * FUSE_IN], t[FUSE_CASES * FUSE_OUT];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mom_batch b = fuse_batch(x, t, cases[c].output);
        fuse_pair p;
        fuse_pair_open(&p, &cases[c], 11 + c);
        double loss0, loss1;
        assert_ok(mom_net_loss(&loss0, p.na, &b, NULL));
        fuse_pair_steps(&p, &b, 8);
        assert_ok(mom_net_loss(&loss1, p.na, &b, NULL));
        if (!(loss1 < loss0))
            fail_msg("case %zu: loss %g -> %g", c, loss0, loss1);
        /* every step of a ran fused, in place; b never did */
        assert_int_equal(p.oa->fused_steps, 8);
        assert_int_equal(p.ob->fused_steps, 0);
        assert_int_equal(mom_optim_steps(p.oa), 8);
        fuse_pair_close(&p);
    }
}

/* When the network cannot bound the gradient below overflow, the fused step finishes as the
 * unfused one: here one weight of 1e37 saturates a hidden unit (so its delta, and every actual
 * gradient entry, stays finite), but it puts the bound past FLT_MAX. Same bits, not in place. */
static void test_step_net_fused_nag_fallback(void **state)
{
    (void)state;
    const fuse_case c = {MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0.0, 4};
    static float x[FUSE_CASES * FUSE_IN], t[FUSE_CASES * FUSE_OUT];
    mom_batch b = fuse_batch(x, t, c.output);
    fuse_pair p;
    fuse_pair_open(&p, &c, 3);
    fuse_pair_steps(&p, &b, 2);
    assert_int_equal(p.oa->fused_steps, 2);
    size_t layer, rows, cols, off;
    int bk;
    assert_ok(mom_net_block(p.na, 2, &bk, &layer, &rows, &cols, &off)); /* W_2: 240 x 300 */
    assert_int_equal(rows * cols, FUSE_H2 * FUSE_H1);
    mom_net_params(p.na)[off] = 1e37f;
    mom_net_params(p.nb)[off] = 1e37f;
    fuse_pair_steps(&p, &b, 3);
    assert_int_equal(p.oa->fused_steps, 2); /* the last three were not in place */
    assert_int_equal(mom_optim_steps(p.oa), 5);
    fuse_pair_close(&p);
}

/* A step whose lower layers' gradient overflows while the output layer's is finite: a fused
 * step that updated blocks as their gradients came would have changed the output layer before
 * meeting the overflow. It must diverge with parameters, velocity and step count unchanged, in
 * both forms; so must the public begin/end path on a non-finite gradient entry. */
static void test_step_net_fused_nag_diverges_atomically(void **state)
{
    (void)state;
    const fuse_case c = {MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0.0, 1};
    static float x[FUSE_CASES * FUSE_IN], t[FUSE_CASES * FUSE_OUT];
    mom_batch b = fuse_batch(x, t, c.output);
    for (int la = 0; la < 2; la++) {
        mom_net *net = fuse_net(&c, 4);
        const size_t n = mom_net_num_params(net);
        mom_optim *opt = fuse_optim(n, 0.0);
        if (la)
            assert_ok(mom_optim_set_lookahead(opt, mom_net_params(net), 1));
        /* three steps: the momentum changes at step 2 (in the look-ahead form that step re-forms
         * the point and runs unfused), and the fourth, step 3, is fused again */
        for (int k = 0; k < 3; k++)
            assert_ok(mom_optim_step_net(NULL, opt, net, &b));
        assert_int_equal(opt->fused_steps, la ? 2 : 3);
        /* output weights of 1e30: outputs near 1e32 (a finite loss, summed in double, and
         * finite output deltas and output-layer gradient), but the deltas passed down overflow */
        int bk;
        size_t layer, rows, cols, off;
        assert_ok(mom_net_block(net, 4, &bk, &layer, &rows, &cols, &off)); /* W_3: 6 x 240 */
        assert_int_equal(rows * cols, FUSE_OUT * FUSE_H2);
        float *th = mom_net_params(net);
        for (size_t i = 0; i < rows * cols; i++)
            th[off + i] = i % 2 ? 1e30f : -1e30f;
        float *sx = malloc(n * sizeof *sx), *sv = malloc(n * sizeof *sv),
              *g = malloc(n * sizeof *g);
        assert_non_null(sx);
        assert_non_null(sv);
        assert_non_null(g);
        memcpy(sx, th, n * sizeof *sx);
        memcpy(sv, mom_optim_velocity(opt), n * sizeof *sv);
        double loss = 0;
        assert_status(mom_optim_step_net(&loss, opt, net, &b), MOM_E_DIVERGED);
        assert_true(isfinite(loss) && loss > 1e40);
        assert_memory_equal(sx, th, n * sizeof *sx);
        assert_memory_equal(sv, mom_optim_velocity(opt), n * sizeof *sv);
        assert_int_equal(mom_optim_steps(opt), 3);
        assert_int_equal(opt->fused_steps, la ? 2 : 3);
        /* the public path: a non-finite gradient entry */
        const float *p;
        double l;
        assert_ok(mom_optim_begin(&p, opt, th));
        assert_ok(mom_net_loss_grad(&l, g, net, &b, p));
        g[n - 1] = INFINITY;
        assert_status(mom_optim_end(opt, th, 1.0, g), MOM_E_DIVERGED);
        assert_memory_equal(sx, th, n * sizeof *sx);
        assert_memory_equal(sv, mom_optim_velocity(opt), n * sizeof *sv);
        assert_ok(mom_optim_cancel(opt));
        free(sx);
        free(sv);
        free(g);
        mom_optim_destroy(opt);
        mom_net_destroy(net);
    }
}

/* Each handle's flush option governs its own work: mom_optim_step_net() gives the bits of
 * begin + mom_net_loss_grad() + end for every combination of the two options. Two small nets
 * whose results depend on flushing: a subnormal weight from an input that is always 0 (its
 * gradient is 0, so only the mode decides whether it survives a step), and a subnormal input
 * times a huge weight (a loss of 5e-19 with denormals read as they are, 0 when flushed). */
static void test_step_net_flush_options(void **state)
{
    (void)state;
    const size_t sz_a[3] = {2, 2, 1}, sz_b[3] = {1, 1, 1};
    const int act_a[1] = {MOM_ACT_LOGISTIC}, act_b[1] = {MOM_ACT_LINEAR};
    const float init_a[9] = {0.3f, 1e-39f, -0.2f, 0.1f, 0.05f, -0.05f, 0.4f, -0.3f, 0.1f};
    const float init_b[4] = {1.0f, 0.0f, 1e30f, 0.0f};
    static float xa[4] = {1.0f, 0.0f, -1.0f, 0.0f}, ya[2] = {0.5f, -0.5f};
    static float xb[1] = {1e-39f}, yb[1] = {0.0f};
    const int kinds[2] = {MOM_OPTIM_CM, MOM_OPTIM_NAG};
    for (int net_case = 0; net_case < 2; net_case++)
        for (int k = 0; k < 2; k++)
            for (int flags = 0; flags < 4; flags++) {
                const size_t *sz = net_case ? sz_b : sz_a;
                const float *init = net_case ? init_b : init_a;
                const size_t n = net_case ? 4 : 9;
                mom_batch b = {0};
                b.n = net_case ? 1 : 2;
                b.inputs = net_case ? xb : xa;
                b.targets = net_case ? yb : ya;
                mom_net *na, *nb;
                mom_optim *oa, *ob;
                assert_ok(mom_net_create_ff(&na, 2, sz, net_case ? act_b : act_a,
                                            MOM_OUT_LINEAR_SQUARED, NULL));
                assert_ok(mom_net_create_ff(&nb, 2, sz, net_case ? act_b : act_a,
                                            MOM_OUT_LINEAR_SQUARED, NULL));
                assert_int_equal(mom_net_num_params(na), n);
                memcpy(mom_net_params(na), init, n * sizeof *init);
                memcpy(mom_net_params(nb), init, n * sizeof *init);
                assert_ok(mom_net_set(na, MOM_NET_FLUSH_SUBNORMALS, flags & 1));
                assert_ok(mom_net_set(nb, MOM_NET_FLUSH_SUBNORMALS, flags & 1));
                oa = make_optim_const(kinds[k], n, 0.1, 0.9);
                ob = make_optim_const(kinds[k], n, 0.1, 0.9);
                assert_ok(mom_optim_set(oa, MOM_OPTIM_FLUSH_SUBNORMALS, flags >> 1));
                assert_ok(mom_optim_set(ob, MOM_OPTIM_FLUSH_SUBNORMALS, flags >> 1));
                float grad[9];
                for (int step = 0; step < (net_case ? 1 : 3); step++) { /* b: then overflow */
                    double la = -1.0, lb = -2.0;
                    const float *pt;
                    assert_ok(mom_optim_step_net(&la, oa, na, &b));
                    assert_ok(mom_optim_begin(&pt, ob, mom_net_params(nb)));
                    assert_ok(mom_net_loss_grad(&lb, grad, nb, &b, pt));
                    assert_ok(mom_optim_end(ob, mom_net_params(nb), lb, grad));
                    if (memcmp(&la, &lb, sizeof la) != 0)
                        fail_msg("net %d kind %d flush net %d optim %d step %d: loss %g vs %g",
                                 net_case, kinds[k], flags & 1, flags >> 1, step, la, lb);
                }
                if (memcmp(mom_net_params(na), mom_net_params(nb), n * sizeof(float)) != 0 ||
                    memcmp(mom_optim_velocity(oa), mom_optim_velocity(ob), n * sizeof(float)))
                    fail_msg("net %d kind %d flush net %d optim %d: the two paths differ",
                             net_case, kinds[k], flags & 1, flags >> 1);
                mom_optim_destroy(oa);
                mom_optim_destroy(ob);
                mom_net_destroy(na);
                mom_net_destroy(nb);
            }
}

static void test_step_net_errors(void **state)
{
    (void)state;
    net_fixture fx;
    make_data(&fx);
    mom_net *net = make_net(NULL, 3);
    const size_t n = mom_net_num_params(net);
    double loss;

    mom_optim *wrong = make_optim_const(MOM_OPTIM_NAG, n + 1, 0.1, 0.9);
    assert_status(mom_optim_step_net(&loss, wrong, net, &fx.batch), MOM_E_SHAPE);
    assert_true(strlen(mom_optim_errmsg(wrong)) > 0);
    mom_optim_destroy(wrong);

    mom_optim *opt = make_optim_const(MOM_OPTIM_NAG, n, 0.1, 0.9);
    assert_status(mom_optim_step_net(&loss, NULL, net, &fx.batch), MOM_E_INVALID);
    assert_status(mom_optim_step_net(&loss, opt, NULL, &fx.batch), MOM_E_INVALID);
    assert_status(mom_optim_step_net(&loss, opt, net, NULL), MOM_E_INVALID);
    for (int t = 0; t < 3; t++)
        assert_ok(mom_optim_step_net(&loss, opt, net, &fx.batch));

    /* inside a begun step */
    const float *p;
    assert_ok(mom_optim_begin(&p, opt, mom_net_params(net)));
    assert_status(mom_optim_step_net(&loss, opt, net, &fx.batch), MOM_E_STATE);
    assert_ok(mom_optim_cancel(opt));

    float *x = mom_net_params(net);
    float *sx = malloc(n * sizeof *sx), *sv = malloc(n * sizeof *sv);
    assert_non_null(sx);
    assert_non_null(sv);
    memcpy(sx, x, n * sizeof *sx);
    memcpy(sv, mom_optim_velocity(opt), n * sizeof *sv);

    /* a status of the network is passed on; nothing changes and no step stays begun */
    mom_batch bad = fx.batch;
    bad.targets = NULL;
    assert_status(mom_optim_step_net(&loss, opt, net, &bad), MOM_E_INVALID);
    assert_true(strlen(mom_optim_errmsg(opt)) > 0);
    bad = fx.batch;
    bad.steps = 3;
    assert_status(mom_optim_step_net(&loss, opt, net, &bad), MOM_E_SHAPE);
    assert_memory_equal(sx, x, n * sizeof *sx);
    assert_memory_equal(sv, mom_optim_velocity(opt), n * sizeof *sv);
    assert_int_equal(mom_optim_steps(opt), 3);

    /* a NaN in the data: the loss is NaN, the step diverges, state is bit-identical */
    float inputs[NET_CASES * NET_IN];
    memcpy(inputs, fx.inputs, sizeof inputs);
    inputs[7] = NAN;
    bad = fx.batch;
    bad.inputs = inputs;
    loss = 0;
    assert_status(mom_optim_step_net(&loss, opt, net, &bad), MOM_E_DIVERGED);
    assert_true(isnan(loss)); /* the loss at the point is still reported */
    assert_memory_equal(sx, x, n * sizeof *sx);
    assert_memory_equal(sv, mom_optim_velocity(opt), n * sizeof *sv);
    assert_int_equal(mom_optim_steps(opt), 3);
    assert_ok(mom_optim_step_net(&loss, opt, net, &fx.batch)); /* not left begun */
    assert_int_equal(mom_optim_steps(opt), 4);

    free(sx);
    free(sv);
    mom_optim_destroy(opt);
    mom_net_destroy(net);
}


/* ---- NAG in look-ahead form (mom_optim_set_lookahead()) --------------------------------------
 * The caller's vector holds phi = theta + mu v. The iterates are the true-theta form's up to float
 * rounding; the fused and unfused paths give the same bits; divergence changes nothing. */

/* Like fuse_pair_open(), with both optimizers switched to the look-ahead form. */
static void la_pair_open(fuse_pair *p, const fuse_case *c, uint64_t seed)
{
    fuse_pair_open(p, c, seed);
    assert_ok(mom_optim_set_lookahead(p->oa, mom_net_params(p->na), 1));
    assert_ok(mom_optim_set_lookahead(p->ob, mom_net_params(p->nb), 1));
}

static void test_lookahead_fused_matches_unfused(void **state)
{
    (void)state;
    const fuse_case cases[] = {
        {MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0.0, 1},
        {MOM_ACT_LOGISTIC, MOM_OUT_LOGISTIC_XENT, 1e-3, 4},
        {MOM_ACT_RELU, MOM_OUT_SOFTMAX_XENT, 0.0, 4},
    };
    static float x[FUSE_CASES * FUSE_IN], t[FUSE_CASES * FUSE_OUT];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mom_batch b = fuse_batch(x, t, cases[c].output);
        fuse_pair p;
        la_pair_open(&p, &cases[c], 21 + c);
        double v;
        assert_ok(mom_optim_get(&v, p.oa, MOM_OPTIM_LOOKAHEAD));
        assert_true(v == 1.0);
        /* the momentum changes every 2 steps: steps 2, 4, 6 and 8 re-form the point and run
         * unfused (the same bits either way) */
        fuse_pair_steps(&p, &b, 9);
        assert_int_equal(p.oa->fused_steps, 5);
        assert_int_equal(p.ob->fused_steps, 0);
        fuse_pair_close(&p);
    }
}

/* The look-ahead iterates follow the true-theta ones: theta = phi - mu v within float rounding
 * over 40 steps whose momentum changes every 2 steps, with weight decay. */
static void test_lookahead_tracks_true_theta(void **state)
{
    (void)state;
    const fuse_case c = {MOM_ACT_LOGISTIC, MOM_OUT_LOGISTIC_XENT, 1e-3, 1};
    static float x[FUSE_CASES * FUSE_IN], t[FUSE_CASES * FUSE_OUT];
    mom_batch b = fuse_batch(x, t, c.output);
    mom_net *na = fuse_net(&c, 7), *nb = fuse_net(&c, 7);
    const size_t n = mom_net_num_params(na);
    mom_optim *oa = fuse_optim(n, c.wd), *ob = fuse_optim(n, c.wd);
    assert_ok(mom_optim_set_lookahead(oa, mom_net_params(na), 1));
    float *th = malloc(n * sizeof *th);
    assert_non_null(th);
    for (int k = 0; k < 40; k++) {
        assert_ok(mom_optim_step_net(NULL, oa, na, &b));
        assert_ok(mom_optim_step_net(NULL, ob, nb, &b));
    }
    assert_ok(mom_optim_get_theta(th, oa, mom_net_params(na)));
    const float *tb = mom_net_params(nb), *va = mom_optim_velocity(oa),
                *vb = mom_optim_velocity(ob);
    double dmax = 0.0, vmax = 0.0, moved = 0.0;
    for (size_t i = 0; i < n; i++) {
        dmax = fmax(dmax, fabs((double)th[i] - tb[i]));
        vmax = fmax(vmax, fabs((double)va[i] - vb[i]));
        moved = fmax(moved, fabs((double)vb[i]));
    }
    assert_true(moved > 1e-4); /* the run did move */
    if (dmax > 2e-6 || vmax > 1e-3 * moved)
        fail_msg("theta differs by %g, velocity by %g (largest velocity %g)", dmax, vmax, moved);
    /* switching back gives theta in the network */
    assert_ok(mom_optim_set_lookahead(oa, mom_net_params(na), 0));
    assert_memory_equal(th, mom_net_params(na), n * sizeof *th);
    free(th);
    mom_optim_destroy(oa);
    mom_optim_destroy(ob);
    mom_net_destroy(na);
    mom_net_destroy(nb);
}

/* The update of one step by hand: phi' = phi + (mu v' - eps g), v' = mu v - eps g. */
static void test_lookahead_by_hand(void **state)
{
    (void)state;
    mom_sched *lr, *mu;
    assert_ok(mom_sched_create_const(&lr, 0.5, NULL));
    assert_ok(mom_sched_create_const(&mu, 0.75, NULL));
    mom_optim *opt = make_optim(MOM_OPTIM_NAG, 2, lr, mu, NULL);
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);
    float th[2] = {1.0f, -2.0f};
    const float *p;
    const float g1[2] = {1.0f, 2.0f}, g2[2] = {-4.0f, 0.5f};
    assert_ok(mom_optim_set_lookahead(opt, th, 1)); /* v = 0: phi = theta */
    assert_true(th[0] == 1.0f && th[1] == -2.0f);
    assert_ok(mom_optim_begin(&p, opt, th));
    assert_ptr_equal(p, th);
    assert_ok(mom_optim_end(opt, th, 0.0, g1));
    /* v = -0.5 g1 = (-0.5, -1); theta = (0.5, -3); phi = theta + 0.75 v = (0.125, -3.75) */
    assert_true(mom_optim_velocity(opt)[0] == -0.5f && mom_optim_velocity(opt)[1] == -1.0f);
    assert_true(th[0] == 0.125f && th[1] == -3.75f);
    assert_ok(mom_optim_begin(&p, opt, th));
    assert_ok(mom_optim_end(opt, th, 0.0, g2));
    /* v = 0.75 (-0.5, -1) - 0.5 (-4, 0.5) = (1.625, -1); theta = (2.125, -4);
     * phi = (2.125 + 1.21875, -4 - 0.75) */
    assert_true(mom_optim_velocity(opt)[0] == 1.625f && mom_optim_velocity(opt)[1] == -1.0f);
    assert_true(th[0] == 3.34375f && th[1] == -4.75f);
    float out[2];
    assert_ok(mom_optim_get_theta(out, opt, th));
    assert_true(out[0] == 2.125f && out[1] == -4.0f);
    mom_optim_destroy(opt);
}

/* A momentum schedule replaced between steps: the next begin re-forms the point for the new
 * momentum, theta stays (up to rounding). */
static void test_lookahead_momentum_change(void **state)
{
    (void)state;
    mom_sched *lr, *mu, *mu2;
    assert_ok(mom_sched_create_const(&lr, 0.5, NULL));
    assert_ok(mom_sched_create_const(&mu, 0.5, NULL));
    assert_ok(mom_sched_create_const(&mu2, 0.25, NULL));
    mom_optim *opt = make_optim(MOM_OPTIM_NAG, 1, lr, mu, NULL);
    float th[1] = {1.0f};
    const float g[1] = {1.0f};
    const float *p;
    assert_ok(mom_optim_set_lookahead(opt, th, 1));
    assert_ok(mom_optim_begin(&p, opt, th));
    assert_ok(mom_optim_end(opt, th, 0.0, g)); /* v = -0.5, theta = 0.5, phi = 0.25 */
    assert_true(th[0] == 0.25f);
    assert_ok(mom_optim_set_momentum(opt, mu2));
    /* the point is re-formed for the new momentum in the optimizer's buffer:
     * 0.5 + 0.25 (-0.5) = 0.375; the caller's vector changes only when the step ends */
    assert_ok(mom_optim_begin(&p, opt, th));
    assert_true(p != th && p[0] == 0.375f && th[0] == 0.25f);
    assert_ok(mom_optim_cancel(opt));
    assert_true(th[0] == 0.25f);
    float out[1];
    assert_ok(mom_optim_get_theta(out, opt, th));
    assert_true(out[0] == 0.5f);
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);
    mom_sched_destroy(mu2);
    mom_optim_destroy(opt);
}

static void test_lookahead_errors(void **state)
{
    (void)state;
    float th[3] = {1, 2, 3}, out[3];
    mom_optim *sgd, *nag;
    assert_ok(mom_optim_create(&sgd, MOM_OPTIM_SGD, 3, NULL));
    assert_ok(mom_optim_create(&nag, MOM_OPTIM_NAG, 3, NULL));
    assert_status(mom_optim_set_lookahead(NULL, th, 1), MOM_E_INVALID);
    assert_status(mom_optim_set_lookahead(sgd, th, 1), MOM_E_UNSUPPORTED);
    assert_non_null(strstr(mom_optim_errmsg(sgd), "NAG"));
    assert_status(mom_optim_set_lookahead(nag, NULL, 1), MOM_E_INVALID);
    assert_status(mom_optim_set(nag, MOM_OPTIM_LOOKAHEAD, 1.0), MOM_E_INVALID);
    assert_non_null(strstr(mom_optim_errmsg(nag), "mom_optim_set_lookahead"));
    double v = -1;
    assert_ok(mom_optim_get(&v, sgd, MOM_OPTIM_LOOKAHEAD));
    assert_true(v == 0.0);
    /* get_theta: a copy when not in the look-ahead form; NULLs and overlap refused */
    assert_ok(mom_optim_get_theta(out, sgd, th));
    assert_memory_equal(out, th, sizeof th);
    assert_status(mom_optim_get_theta(NULL, nag, th), MOM_E_INVALID);
    assert_status(mom_optim_get_theta(out, nag, NULL), MOM_E_INVALID);
    assert_status(mom_optim_get_theta(th + 1, nag, th), MOM_E_INVALID);
    assert_status(mom_optim_get_theta(out, NULL, th), MOM_E_INVALID);
    /* inside begin/end */
    const float *p;
    assert_ok(mom_optim_begin(&p, nag, th));
    assert_status(mom_optim_set_lookahead(nag, th, 1), MOM_E_STATE);
    assert_ok(mom_optim_cancel(nag));
    /* a conversion that would overflow changes nothing */
    const float g[3] = {-1e38f, 0, 0};
    assert_ok(mom_optim_begin(&p, nag, th));
    assert_ok(mom_optim_end(nag, th, 0.0, g)); /* v[0] = 1e36 (lr 0.01) */
    th[0] = FLT_MAX;
    float keep[3];
    memcpy(keep, th, sizeof th);
    assert_status(mom_optim_set_lookahead(nag, th, 1), MOM_E_DIVERGED);
    assert_memory_equal(keep, th, sizeof th);
    assert_ok(mom_optim_get(&v, nag, MOM_OPTIM_LOOKAHEAD));
    assert_true(v == 0.0);
    mom_optim_destroy(sgd);
    mom_optim_destroy(nag);
}

/* The float intermediate g + w p can overflow while the bound on the new values is tiny (eps
 * tiny): the step must diverge with nothing changed, in both forms, through begin/end and the
 * fused network step (a review found both writing -inf and returning MOM_OK). */
static void test_overflow_bound_intermediate(void **state)
{
    (void)state;
    const struct { float g, th; double wd, lr; } cases[] = {
        {3e38f, 1e38f, 1.0, 1e-30}, /* g + w p > FLT_MAX */
        {0.0f, 1e10f, 1e30, 1e-30}, /* w p > FLT_MAX */
    };
    for (int la = 0; la < 2; la++) {
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            mom_optim *opt = make_optim_const(MOM_OPTIM_NAG, 1, cases[c].lr, 0.9);
            assert_ok(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, cases[c].wd));
            float th[1] = {cases[c].th};
            const float g[1] = {cases[c].g};
            if (la)
                assert_ok(mom_optim_set_lookahead(opt, th, 1));
            const float *p;
            assert_ok(mom_optim_begin(&p, opt, th));
            assert_status(mom_optim_end(opt, th, 0.0, g), MOM_E_DIVERGED);
            assert_true(th[0] == cases[c].th && mom_optim_velocity(opt)[0] == 0.0f);
            assert_int_equal(mom_optim_steps(opt), 0);
            mom_optim_destroy(opt);
        }
        /* the fused step: one huge first-layer weight and a huge weight decay */
        const fuse_case fc = {MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 1e30, 1};
        static float x[FUSE_CASES * FUSE_IN], t[FUSE_CASES * FUSE_OUT];
        mom_batch b = fuse_batch(x, t, fc.output);
        mom_net *net = fuse_net(&fc, 9);
        const size_t n = mom_net_num_params(net);
        mom_optim *opt = make_optim_const(MOM_OPTIM_NAG, n, 1e-32, 0.9);
        assert_ok(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, fc.wd));
        mom_net_params(net)[0] = 1e10f;
        if (la)
            assert_ok(mom_optim_set_lookahead(opt, mom_net_params(net), 1));
        float *keep = malloc(n * sizeof *keep);
        assert_non_null(keep);
        memcpy(keep, mom_net_params(net), n * sizeof *keep);
        assert_status(mom_optim_step_net(NULL, opt, net, &b), MOM_E_DIVERGED);
        assert_memory_equal(keep, mom_net_params(net), n * sizeof *keep);
        assert_int_equal(mom_optim_steps(opt), 0);
        free(keep);
        mom_optim_destroy(opt);
        mom_net_destroy(net);
    }
}

/* reset in the look-ahead form would make the point the model: refused, nothing changed; after
 * switching back it works as always. */
static void test_lookahead_reset_refused(void **state)
{
    (void)state;
    mom_optim *opt;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_NAG, 2, NULL));
    float th[2] = {1.0f, 2.0f};
    const float g[2] = {1.0f, -1.0f};
    const float *p;
    assert_ok(mom_optim_set_lookahead(opt, th, 1));
    assert_ok(mom_optim_begin(&p, opt, th));
    assert_ok(mom_optim_end(opt, th, 0.0, g));
    float v[2] = {mom_optim_velocity(opt)[0], mom_optim_velocity(opt)[1]};
    assert_status(mom_optim_reset(opt), MOM_E_STATE);
    assert_non_null(strstr(mom_optim_errmsg(opt), "look-ahead"));
    assert_true(mom_optim_velocity(opt)[0] == v[0] && mom_optim_velocity(opt)[1] == v[1]);
    assert_int_equal(mom_optim_steps(opt), 1);
    float theta[2];
    assert_ok(mom_optim_get_theta(theta, opt, th));
    assert_ok(mom_optim_set_lookahead(opt, th, 0));
    assert_ok(mom_optim_reset(opt));
    assert_true(fabsf(th[0] - theta[0]) <= 1e-6f && fabsf(th[1] - theta[1]) <= 1e-6f);
    assert_int_equal(mom_optim_steps(opt), 0);
    mom_optim_destroy(opt);
}

/* A step whose re-formed point overflows names that point, not the caller's vector. */
static void test_lookahead_rebase_overflow_message(void **state)
{
    (void)state;
    mom_sched *lr, *mu;
    const uint64_t starts[2] = {0, 1};
    const double values[2] = {0.0, 0.5};
    assert_ok(mom_sched_create_const(&lr, 1.0, NULL));
    assert_ok(mom_sched_create_piecewise(&mu, 2, starts, values, NULL));
    mom_optim *opt = make_optim(MOM_OPTIM_NAG, 1, lr, mu, NULL);
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);
    float th[1] = {0.0f};
    const float g[1] = {-3e38f};
    const float *p;
    assert_ok(mom_optim_set_lookahead(opt, th, 1));
    assert_ok(mom_optim_begin(&p, opt, th));
    assert_ok(mom_optim_end(opt, th, 0.0, g)); /* mu 0: v = 3e38, phi = 3e38 */
    assert_true(th[0] == 3e38f);
    assert_ok(mom_optim_begin(&p, opt, th)); /* mu 0.5: the point 3e38 + 0.5 * 3e38 = inf */
    const float g2[1] = {0.0f};
    assert_status(mom_optim_end(opt, th, 0.0, g2), MOM_E_DIVERGED);
    assert_non_null(strstr(mom_optim_errmsg(opt), "re-formed"));
    assert_true(th[0] == 3e38f);
    assert_ok(mom_optim_cancel(opt));
    mom_optim_destroy(opt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_defaults),
        cmocka_unit_test(test_create_nomem),
        cmocka_unit_test(test_buffers_aligned),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_first_steps_by_hand),
        cmocka_unit_test(test_quadratic_vs_reference),
        cmocka_unit_test(test_nag_matches_reparameterization),
        cmocka_unit_test(test_nag_effective_momentum),
        cmocka_unit_test(test_oblong_nag_oscillates_less),
        cmocka_unit_test(test_weight_decay_and_clipping),
        cmocka_unit_test(test_divergence_guard),
        cmocka_unit_test(test_state_errors),
        cmocka_unit_test(test_bad_schedule_values),
        cmocka_unit_test(test_no_allocation_in_steps),
        cmocka_unit_test(test_step_net_matches_any_model_path),
        cmocka_unit_test(test_step_net_no_allocation),
        cmocka_unit_test(test_step_net_errors),
        cmocka_unit_test(test_step_net_fused_nag),
        cmocka_unit_test(test_step_net_fused_nag_fallback),
        cmocka_unit_test(test_step_net_fused_nag_diverges_atomically),
        cmocka_unit_test(test_step_net_flush_options),
        cmocka_unit_test(test_lookahead_fused_matches_unfused),
        cmocka_unit_test(test_lookahead_tracks_true_theta),
        cmocka_unit_test(test_lookahead_by_hand),
        cmocka_unit_test(test_lookahead_momentum_change),
        cmocka_unit_test(test_lookahead_errors),
        cmocka_unit_test(test_overflow_bound_intermediate),
        cmocka_unit_test(test_lookahead_reset_refused),
        cmocka_unit_test(test_lookahead_rebase_overflow_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
