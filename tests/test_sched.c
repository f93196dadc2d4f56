/* Tests of the schedules (sched.h): values, argument checks and reference counting. */
#include "testutil.h"
#include "../lib/sched_internal.h"

/* The paper's formula, written independently of the library: 1 - 2^(-1 - log2(k + 1)). */
static double paper_formula(uint64_t t, uint64_t period, double mu_max)
{
    double k = (double)(t / period);
    double mu = 1.0 - pow(2.0, -1.0 - log2(k + 1.0));
    return mu < mu_max ? mu : mu_max;
}

static void test_const(void **state)
{
    (void)state;
    mom_sched *s;
    assert_ok(mom_sched_create_const(&s, 0.25, NULL));
    assert_int_equal(mom_sched_kind_of(s), MOM_SCHED_CONST);
    assert_true(mom_sched_value(s, 0) == 0.25);
    assert_true(mom_sched_value(s, UINT64_MAX) == 0.25);
    mom_sched_destroy(s);
}

static void test_paper_momentum_values(void **state)
{
    (void)state;
    mom_sched *s;
    assert_ok(mom_sched_create_paper_momentum(&s, 1.0, 250, NULL));
    assert_int_equal(mom_sched_kind_of(s), MOM_SCHED_PAPER_MOMENTUM);
    /* The exact values listed in paper.md section 2 (the C literals are the nearest doubles). */
    const uint64_t ts[] = {0, 1, 249, 250, 499, 1000, 2250, 12250, 24750, 124750};
    const double want[] = {0.5, 0.5, 0.5, 0.75, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        double v = mom_sched_value(s, ts[i]);
        if (v != want[i])
            fail_msg("t=%llu: got %.17g, want %.17g", (unsigned long long)ts[i], v, want[i]);
        /* and the paper's formula, to rounding */
        assert_true(fabs(v - paper_formula(ts[i], 250, 1.0)) <= 2e-16);
    }
    /* every step of the first 130,000 agrees with the formula and never decreases */
    double prev = 0.0;
    for (uint64_t t = 0; t < 130000; t++) {
        double v = mom_sched_value(s, t);
        assert_true(fabs(v - paper_formula(t, 250, 1.0)) <= 2e-16);
        assert_true(v >= prev && v < 1.0);
        prev = v;
    }
    /* far away it approaches 1 and stays in range */
    assert_true(mom_sched_value(s, UINT64_MAX) <= 1.0);
    assert_true(mom_sched_value(s, UINT64_MAX) > 0.999999);
    mom_sched_destroy(s);
}

static void test_paper_momentum_mu_max_and_period(void **state)
{
    (void)state;
    const double grid[] = {0.999, 0.995, 0.99, 0.9, 0.0};
    for (size_t g = 0; g < 5; g++) {
        mom_sched *s;
        assert_ok(mom_sched_create_paper_momentum(&s, grid[g], 250, NULL));
        for (uint64_t t = 0; t < 300000; t += 97) {
            double v = mom_sched_value(s, t);
            assert_true(v <= grid[g]);
            assert_true(fabs(v - paper_formula(t, 250, grid[g])) <= 2e-16);
        }
        /* reached and held */
        assert_true(mom_sched_value(s, 10000000) == grid[g]);
        mom_sched_destroy(s);
    }
    /* period 1: the value changes at every step */
    mom_sched *s;
    assert_ok(mom_sched_create_paper_momentum(&s, 1.0, 1, NULL));
    assert_true(mom_sched_value(s, 0) == 0.5);
    assert_true(mom_sched_value(s, 1) == 0.75);
    assert_true(mom_sched_value(s, 4) == 0.9);
    mom_sched_destroy(s);
    assert_ok(mom_sched_create_paper_momentum(&s, 0.95, 100, NULL));
    assert_true(mom_sched_value(s, 99) == 0.5);
    assert_true(mom_sched_value(s, 100) == 0.75);
    assert_true(mom_sched_value(s, 400) == 0.9);
    assert_true(mom_sched_value(s, 900) == 0.95);
    assert_true(mom_sched_value(s, 4900) == 0.95); /* 0.99 capped */
    mom_sched_destroy(s);
}

static void test_piecewise(void **state)
{
    (void)state;
    /* The paper's RNN schedule: 0.9 for the first 1000 updates, then mu0. */
    const double mu0s[] = {0.0, 0.9, 0.98, 0.995};
    for (size_t i = 0; i < 4; i++) {
        const uint64_t starts[] = {0, 1000};
        const double values[] = {0.9, mu0s[i]};
        mom_sched *s;
        assert_ok(mom_sched_create_piecewise(&s, 2, starts, values, NULL));
        assert_int_equal(mom_sched_kind_of(s), MOM_SCHED_PIECEWISE);
        assert_true(mom_sched_value(s, 0) == 0.9);
        assert_true(mom_sched_value(s, 999) == 0.9);
        assert_true(mom_sched_value(s, 1000) == mu0s[i]);
        assert_true(mom_sched_value(s, 49999) == mu0s[i]);
        assert_true(mom_sched_value(s, UINT64_MAX) == mu0s[i]);
        mom_sched_destroy(s);
    }
    /* many pieces: every t against a linear scan; the arrays are copied */
    uint64_t starts[37];
    double values[37];
    for (size_t i = 0; i < 37; i++) {
        starts[i] = i * i * 3 + (i > 0);
        values[i] = (double)i * 0.5 - 3.0;
    }
    starts[0] = 0;
    mom_sched *s;
    assert_ok(mom_sched_create_piecewise(&s, 37, starts, values, NULL));
    for (size_t i = 0; i < 37; i++)
        values[i] = NAN; /* the schedule keeps its own copy */
    for (uint64_t t = 0; t < 4500; t++) {
        size_t j = 0;
        while (j + 1 < 37 && starts[j + 1] <= t)
            j++;
        assert_true(mom_sched_value(s, t) == (double)j * 0.5 - 3.0);
    }
    mom_sched_destroy(s);
    /* one piece */
    const uint64_t z[] = {0};
    const double one[] = {0.7};
    assert_ok(mom_sched_create_piecewise(&s, 1, z, one, NULL));
    assert_true(mom_sched_value(s, 123456) == 0.7);
    mom_sched_destroy(s);
}

static void test_final_phase(void **state)
{
    (void)state;
    mom_sched *base, *f;
    /* MIN: the paper's low-momentum fine-tuning, 0.9 for the last 1000 of 750,000 updates. */
    assert_ok(mom_sched_create_paper_momentum(&base, 0.999, 250, NULL));
    assert_ok(mom_sched_create_final_phase(&f, base, 750000, 1000, 0.9, MOM_FINAL_MIN, NULL));
    assert_int_equal(mom_sched_kind_of(f), MOM_SCHED_FINAL_PHASE);
    assert_true(mom_sched_value(f, 0) == 0.5);
    assert_true(mom_sched_value(f, 1000) == 0.9);
    assert_true(mom_sched_value(f, 748999) == 0.999);
    assert_true(mom_sched_value(f, 749000) == 0.9);
    assert_true(mom_sched_value(f, 749999) == 0.9);
    assert_true(mom_sched_value(f, 750000) == 0.9); /* past the end: still final */
    mom_sched_destroy(f);
    mom_sched_destroy(base);

    /* MIN leaves a lower base alone; REPLACE raises it. */
    mom_sched *low;
    assert_ok(mom_sched_create_paper_momentum(&low, 0.5, 250, NULL));
    assert_ok(mom_sched_create_final_phase(&f, low, 100, 10, 0.9, MOM_FINAL_MIN, NULL));
    assert_true(mom_sched_value(f, 95) == 0.5);
    mom_sched_destroy(f);
    assert_ok(mom_sched_create_final_phase(&f, low, 100, 10, 0.9, MOM_FINAL_REPLACE, NULL));
    assert_true(mom_sched_value(f, 89) == 0.5);
    assert_true(mom_sched_value(f, 90) == 0.9);
    assert_true(mom_sched_value(f, 99) == 0.9);
    mom_sched_destroy(f);

    /* final_steps == total: the whole run; final_steps == 0: never */
    assert_ok(mom_sched_create_final_phase(&f, low, 100, 100, 0.1, MOM_FINAL_MIN, NULL));
    assert_true(mom_sched_value(f, 0) == 0.1);
    mom_sched_destroy(f);
    assert_ok(mom_sched_create_final_phase(&f, low, 100, 0, 0.1, MOM_FINAL_REPLACE, NULL));
    assert_true(mom_sched_value(f, 99) == 0.5);
    assert_true(mom_sched_value(f, 1000) == 0.5);
    mom_sched_destroy(f);

    /* wrappers nest: the inner MIN cap and the outer REPLACE */
    mom_sched *inner, *outer;
    mom_sched *c;
    assert_ok(mom_sched_create_const(&c, 0.99, NULL));
    assert_ok(mom_sched_create_final_phase(&inner, c, 100, 50, 0.7, MOM_FINAL_MIN, NULL));
    assert_ok(mom_sched_create_final_phase(&outer, inner, 100, 10, 0.2, MOM_FINAL_REPLACE, NULL));
    assert_true(mom_sched_value(outer, 10) == 0.99);
    assert_true(mom_sched_value(outer, 60) == 0.7);
    assert_true(mom_sched_value(outer, 95) == 0.2);
    mom_sched_destroy(outer);
    assert_ok(mom_sched_create_final_phase(&outer, inner, 100, 30, 0.8, MOM_FINAL_MIN, NULL));
    assert_true(mom_sched_value(outer, 60) == 0.7);
    assert_true(mom_sched_value(outer, 75) == 0.7);
    mom_sched_destroy(outer);
    assert_ok(mom_sched_create_final_phase(&outer, inner, 100, 30, 0.6, MOM_FINAL_MIN, NULL));
    assert_true(mom_sched_value(outer, 60) == 0.7);
    assert_true(mom_sched_value(outer, 75) == 0.6);
    mom_sched_destroy(outer);
    mom_sched_destroy(inner);
    mom_sched_destroy(c);
    mom_sched_destroy(low);
}

static void test_anneal(void **state)
{
    (void)state;
    mom_sched *s;
    /* Momentum-HF on CURVES: 1 until t0 = 4000, then min(1, 500 / (t - 4000)). */
    assert_ok(mom_sched_create_anneal(&s, 1.0, 500.0, 4000.0, NULL));
    assert_int_equal(mom_sched_kind_of(s), MOM_SCHED_ANNEAL);
    assert_true(mom_sched_value(s, 0) == 1.0);
    assert_true(mom_sched_value(s, 4000) == 1.0);
    assert_true(mom_sched_value(s, 4001) == 1.0);
    assert_true(mom_sched_value(s, 4500) == 1.0);
    assert_true(mom_sched_value(s, 5000) == 0.5);
    assert_true(mom_sched_value(s, 9000) == 0.1);
    assert_true(mom_sched_value(s, 504000) == 0.001);
    mom_sched_destroy(s);
    /* MNIST: 250 / t */
    assert_ok(mom_sched_create_anneal(&s, 1.0, 250.0, 0.0, NULL));
    assert_true(mom_sched_value(s, 0) == 1.0);
    assert_true(mom_sched_value(s, 250) == 1.0);
    assert_true(mom_sched_value(s, 1000) == 0.25);
    mom_sched_destroy(s);
    /* fractional t0 */
    assert_ok(mom_sched_create_anneal(&s, 2.0, 1.0, 0.5, NULL));
    assert_true(mom_sched_value(s, 0) == 2.0);
    assert_true(mom_sched_value(s, 1) == 2.0);
    assert_true(mom_sched_value(s, 3) == 1.0 / 2.5);
    mom_sched_destroy(s);
}

typedef struct cb_data {
    double scale;
    long calls;
} cb_data;

static double my_schedule(uint64_t t, void *user_data)
{
    cb_data *d = user_data;
    d->calls++;
    return d->scale / (double)(t + 1);
}

static double nan_schedule(uint64_t t, void *user_data)
{
    (void)t;
    (void)user_data;
    return NAN;
}

static void test_callback(void **state)
{
    (void)state;
    cb_data d = {3.0, 0};
    mom_sched *s;
    assert_ok(mom_sched_create_callback(&s, my_schedule, &d, NULL));
    assert_int_equal(mom_sched_kind_of(s), MOM_SCHED_CALLBACK);
    assert_true(mom_sched_value(s, 0) == 3.0);
    assert_true(mom_sched_value(s, 2) == 1.0);
    assert_int_equal(d.calls, 2);
    d.scale = 6.0; /* user_data is borrowed, not copied */
    assert_true(mom_sched_value(s, 2) == 2.0);
    mom_sched_destroy(s);

    /* NaN is passed through, even under a MIN wrapper */
    mom_sched *f;
    assert_ok(mom_sched_create_callback(&s, nan_schedule, NULL, NULL));
    assert_true(isnan(mom_sched_value(s, 5)));
    assert_ok(mom_sched_create_final_phase(&f, s, 10, 10, 0.5, MOM_FINAL_MIN, NULL));
    assert_true(isnan(mom_sched_value(f, 5)));
    mom_sched_destroy(f);
    mom_sched_destroy(s);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    mom_sched *s = (mom_sched *)&s; /* must be reset to NULL on failure */
    assert_status(mom_sched_create_const(NULL, 1.0, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_const(&s, NAN, NULL), MOM_E_INVALID);
    assert_null(s);
    s = (mom_sched *)&s;
    assert_status(mom_sched_create_const(&s, INFINITY, NULL), MOM_E_INVALID);
    assert_null(s);

    assert_status(mom_sched_create_paper_momentum(NULL, 0.9, 250, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_paper_momentum(&s, 1.5, 250, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_paper_momentum(&s, -0.1, 250, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_paper_momentum(&s, NAN, 250, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_paper_momentum(&s, 0.9, 0, NULL), MOM_E_INVALID);
    assert_null(s);

    const uint64_t good_starts[] = {0, 10}, not_zero[] = {1, 10}, equal[] = {0, 0},
                   decreasing[] = {0, 10, 5};
    const double vals[] = {0.1, 0.2, 0.3}, bad_vals[] = {0.1, NAN};
    assert_status(mom_sched_create_piecewise(NULL, 2, good_starts, vals, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_piecewise(&s, 0, good_starts, vals, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_piecewise(&s, 2, NULL, vals, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_piecewise(&s, 2, good_starts, NULL, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_piecewise(&s, 2, not_zero, vals, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_piecewise(&s, 2, equal, vals, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_piecewise(&s, 3, decreasing, vals, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_piecewise(&s, 2, good_starts, bad_vals, NULL), MOM_E_INVALID);
    assert_null(s);

    mom_sched *base;
    assert_ok(mom_sched_create_const(&base, 0.9, NULL));
    assert_status(mom_sched_create_final_phase(NULL, base, 10, 5, 0.5, MOM_FINAL_MIN, NULL),
                  MOM_E_INVALID);
    assert_status(mom_sched_create_final_phase(&s, NULL, 10, 5, 0.5, MOM_FINAL_MIN, NULL),
                  MOM_E_INVALID);
    assert_status(mom_sched_create_final_phase(&s, base, 10, 11, 0.5, MOM_FINAL_MIN, NULL),
                  MOM_E_INVALID);
    assert_status(mom_sched_create_final_phase(&s, base, 10, 5, NAN, MOM_FINAL_MIN, NULL),
                  MOM_E_INVALID);
    assert_status(mom_sched_create_final_phase(&s, base, 10, 5, 0.5, 7, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_final_phase(&s, base, 10, 5, 0.5, -1, NULL), MOM_E_INVALID);
    assert_null(s);
    assert_int_equal(mom__sched_refcount(base), 1); /* failed wrappers took no reference */
    mom_sched_destroy(base);

    assert_status(mom_sched_create_anneal(NULL, 1, 1, 0, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_anneal(&s, NAN, 1, 0, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_anneal(&s, 1, 0, 0, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_anneal(&s, 1, -2, 0, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_anneal(&s, 1, INFINITY, 0, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_anneal(&s, 1, 1, NAN, NULL), MOM_E_INVALID);
    assert_null(s);

    assert_status(mom_sched_create_callback(NULL, my_schedule, NULL, NULL), MOM_E_INVALID);
    assert_status(mom_sched_create_callback(&s, NULL, NULL, NULL), MOM_E_INVALID);
    assert_null(s);

    /* an incomplete allocator */
    mom_allocator half = {0};
    assert_status(mom_sched_create_const(&s, 1.0, &half), MOM_E_INVALID);
    assert_null(s);

    /* NULL handles */
    assert_true(isnan(mom_sched_value(NULL, 0)));
    assert_int_equal(mom_sched_kind_of(NULL), 0);
    mom_sched_destroy(NULL);
}

static void test_refcount_and_leaks(void **state)
{
    (void)state;
    test_alloc ta;
    test_alloc_init(&ta, 0);
    mom_sched *base, *f;
    assert_ok(mom_sched_create_paper_momentum(&base, 0.99, 250, &ta.a));
    assert_ok(mom_sched_create_final_phase(&f, base, 3000, 100, 0.9, MOM_FINAL_MIN, &ta.a));
    assert_int_equal(mom__sched_refcount(base), 2);
    assert_int_equal(ta.live, 2);
    /* drop the caller's reference to base: the wrapper keeps it alive */
    mom_sched_destroy(base);
    assert_int_equal(ta.live, 2);
    assert_true(mom_sched_value(f, 300) == 0.75);
    assert_true(mom_sched_value(f, 2899) == 23.0 / 24.0);
    assert_true(mom_sched_value(f, 2950) == 0.9);

    /* an optimizer takes its own reference: the caller may destroy its reference at once */
    mom_optim *opt;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_NAG, 4, &ta.a));
    long with_opt = ta.live;
    assert_ok(mom_optim_set_momentum(opt, f));
    assert_int_equal(mom__sched_refcount(f), 2);
    mom_sched_destroy(f);
    assert_int_equal(mom__sched_refcount(f), 1);
    assert_true(mom_optim_momentum(opt) == 0.5);
    float x[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1};
    for (int i = 0; i < 300; i++) {
        const float *p;
        assert_ok(mom_optim_begin(&p, opt, x));
        assert_ok(mom_optim_end(opt, x, 0.0, g));
    }
    assert_true(mom_optim_momentum(opt) == 0.75);
    /* replacing the schedule releases the old one: the wrapper and its base are freed */
    mom_sched *c;
    assert_ok(mom_sched_create_const(&c, 0.5, &ta.a));
    assert_ok(mom_optim_set_momentum(opt, c));
    mom_sched_destroy(c);
    /* gone: base, wrapper and the optimizer's default momentum; added: c */
    assert_int_equal(ta.live, with_opt - 3 + 1);
    mom_optim_destroy(opt);
    assert_int_equal(ta.live, 0);

    /* sharing one schedule between two optimizers, destroyed in either order */
    mom_optim *o1, *o2;
    assert_ok(mom_sched_create_const(&c, 0.3, &ta.a));
    assert_ok(mom_optim_create(&o1, MOM_OPTIM_CM, 2, &ta.a));
    assert_ok(mom_optim_create(&o2, MOM_OPTIM_CM, 2, &ta.a));
    assert_ok(mom_optim_set_lr(o1, c));
    assert_ok(mom_optim_set_lr(o2, c));
    mom_sched_destroy(c);
    assert_int_equal(mom__sched_refcount(c), 2);
    mom_optim_destroy(o1);
    assert_true(mom_optim_lr(o2) == 0.3);
    mom_optim_destroy(o2);
    assert_int_equal(ta.live, 0);
}

static void test_create_nomem(void **state)
{
    (void)state;
    const uint64_t starts[] = {0, 5};
    const double values[] = {1, 2};
    for (int kind = 0; kind < 6; kind++) {
        test_alloc ta;
        test_alloc_init(&ta, 1);
        mom_sched *base = NULL;
        if (kind == 3) /* the wrapper's base comes from another allocator */
            assert_ok(mom_sched_create_const(&base, 0.5, NULL));
        mom_sched *s = (mom_sched *)&ta;
        int rc;
        switch (kind) {
        case 0: rc = mom_sched_create_const(&s, 1.0, &ta.a); break;
        case 1: rc = mom_sched_create_paper_momentum(&s, 0.9, 250, &ta.a); break;
        case 2: rc = mom_sched_create_piecewise(&s, 2, starts, values, &ta.a); break;
        case 3: rc = mom_sched_create_final_phase(&s, base, 10, 1, 0.1, MOM_FINAL_MIN, &ta.a); break;
        case 4: rc = mom_sched_create_anneal(&s, 1, 1, 0, &ta.a); break;
        default: rc = mom_sched_create_callback(&s, my_schedule, NULL, &ta.a); break;
        }
        assert_status(rc, MOM_E_NOMEM);
        assert_null(s);
        assert_int_equal(ta.live, 0);
        if (base) {
            assert_int_equal(mom__sched_refcount(base), 1);
            mom_sched_destroy(base);
        }
    }
}

#if defined(__unix__)
#define HAVE_PTHREADS 1
/* POSIX threads rather than C11 <threads.h>: ThreadSanitizer (GCC 12) intercepts only these. */
#include <pthread.h>

/* Each thread builds optimizers around the shared schedules, steps them and destroys them, so
 * references are taken and dropped concurrently. */
typedef struct share_arg {
    mom_sched *mu, *lr;
    int ok;
} share_arg;

static void *share_worker(void *p)
{
    share_arg *arg = p;
    arg->ok = 1;
    for (int rep = 0; rep < 2000; rep++) {
        mom_optim *opt;
        if (mom_optim_create(&opt, MOM_OPTIM_NAG, 2, NULL) != MOM_OK ||
            mom_optim_set_momentum(opt, arg->mu) != MOM_OK ||
            mom_optim_set_lr(opt, arg->lr) != MOM_OK) {
            arg->ok = 0;
            mom_optim_destroy(opt);
            return NULL;
        }
        float x[2] = {1, -1}, g[2];
        for (int t = 0; t < 3; t++) {
            const float *pt;
            if (mom_optim_begin(&pt, opt, x) != MOM_OK)
                arg->ok = 0;
            g[0] = pt[0];
            g[1] = pt[1];
            if (mom_optim_end(opt, x, 0.0, g) != MOM_OK)
                arg->ok = 0;
        }
        if (mom_optim_momentum(opt) != 0.5 || mom_optim_lr(opt) != 0.125)
            arg->ok = 0;
        mom_optim_destroy(opt);
    }
    return NULL;
}

static void test_shared_between_threads(void **state)
{
    (void)state;
    test_alloc ta; /* not thread-safe itself, so only the schedules use it */
    test_alloc_init(&ta, 0);
    mom_sched *mu, *lr;
    assert_ok(mom_sched_create_paper_momentum(&mu, 0.99, 250, &ta.a));
    assert_ok(mom_sched_create_const(&lr, 0.125, &ta.a));
    enum { T = 4 };
    pthread_t th[T];
    share_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i].mu = mu;
        args[i].lr = lr;
        assert_int_equal(pthread_create(&th[i], NULL, share_worker, &args[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_true(args[i].ok);
    }
    assert_int_equal(mom__sched_refcount(mu), 1);
    assert_int_equal(mom__sched_refcount(lr), 1);
    mom_sched_destroy(mu);
    mom_sched_destroy(lr);
    assert_int_equal(ta.live, 0);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_const),
        cmocka_unit_test(test_paper_momentum_values),
        cmocka_unit_test(test_paper_momentum_mu_max_and_period),
        cmocka_unit_test(test_piecewise),
        cmocka_unit_test(test_final_phase),
        cmocka_unit_test(test_anneal),
        cmocka_unit_test(test_callback),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_refcount_and_leaks),
        cmocka_unit_test(test_create_nomem),
#ifdef HAVE_PTHREADS
        cmocka_unit_test(test_shared_between_threads),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
