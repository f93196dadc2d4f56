/* Tests of the performance machinery: the floating-point mode around library calls (fpenv.h),
 * the flushing of tiny values, the chunked BPTT of rnn.c, the NAG update without a checking pass,
 * and allocation-free steps on the benchmark-sized recurrent net. */
#include <float.h>

#include "testutil.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__SSE__)
#include <xmmintrin.h>
#define HAVE_MXCSR 1
#define MXCSR_CONTROL 0xFFC0u /* everything but the six sticky exception flags */
#else
#define HAVE_MXCSR 0
#endif

/* Valgrind does not emulate flush-to-zero (it warns and computes with subnormals): the test that
 * observes the flushing returns early under it. Not skip(): CMocka 1.1.5 reports a skipped test
 * in a way meson's TAP parser counts as a failure. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND)
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

static mom_net *make_ff(void)
{
    static const size_t sizes[] = {12, 9, 4, 9, 12};
    static const int acts[] = {MOM_ACT_LOGISTIC, MOM_ACT_LINEAR, MOM_ACT_LOGISTIC};
    mom_net *net = NULL;
    assert_ok(mom_net_create_ff(&net, 4, sizes, acts, MOM_OUT_LOGISTIC_XENT, NULL));
    assert_ok(mom_init_preset_ff(net, 3));
    return net;
}

static mom_net *make_rnn(size_t I, size_t H, size_t O, uint32_t flags)
{
    mom_net *net = NULL;
    assert_ok(mom_net_create_rnn(&net, I, H, O, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, flags,
                                 NULL));
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 5, 0, NULL));
    assert_ok(mom_rng_fill_normal(rng, mom_net_params(net), mom_net_num_params(net), 0, 0.15));
    mom_rng_destroy(rng);
    return net;
}

typedef struct data {
    float *x, *t, *m;
    size_t *len;
} data;

static mom_batch make_batch(data *d, size_t n, size_t T, size_t I, size_t O, int ff, int masked)
{
    size_t cells = n * (T ? T : 1);
    d->x = malloc(cells * I * sizeof *d->x);
    d->t = malloc(cells * O * sizeof *d->t);
    d->m = malloc(cells * sizeof *d->m);
    d->len = malloc(n * sizeof *d->len);
    assert_non_null(d->x);
    assert_non_null(d->t);
    assert_non_null(d->m);
    assert_non_null(d->len);
    mom_rng *rng;
    assert_ok(mom_rng_create(&rng, 9, 0, NULL));
    if (ff) {
        assert_ok(mom_rng_fill_uniform(rng, d->x, cells * I, 0, 1));
        memcpy(d->t, d->x, cells * I * sizeof *d->t); /* autoencoder: O == I */
    } else {
        assert_ok(mom_rng_fill_normal(rng, d->x, cells * I, 0, 1));
        assert_ok(mom_rng_fill_normal(rng, d->t, cells * O, 0, 1));
    }
    for (size_t i = 0; i < cells; i++)
        d->m[i] = (i % 3) ? 1.0f : 0.5f;
    for (size_t s = 0; s < n; s++)
        d->len[s] = T > 7 ? T - s % 7 : T;
    mom_rng_destroy(rng);
    mom_batch b = {n, ff ? 1 : T, d->x, d->t, masked ? d->m : NULL, masked ? d->len : NULL};
    return b;
}

static void free_data(data *d)
{
    free(d->x);
    free(d->t);
    free(d->m);
    free(d->len);
}

#if HAVE_MXCSR
/* Every compute entry point of a network and of the optimizers, each checked to return with the
 * control bits of MXCSR exactly as it found them. */
static void calls_keep_mxcsr(unsigned start)
{
    mom_net *ff = make_ff(), *rnn = make_rnn(3, 8, 2, 0);
    data dff, drnn;
    mom_batch bff = make_batch(&dff, 6, 0, 12, 12, 1, 0);
    mom_batch brnn = make_batch(&drnn, 5, 9, 3, 2, 0, 1);
    mom_net *nets[2] = {ff, rnn};
    const mom_batch *batches[2] = {&bff, &brnn};
    for (int k = 0; k < 2; k++) {
        mom_net *net = nets[k];
        const mom_batch *b = batches[k];
        size_t P = mom_net_num_params(net);
        float *g = malloc(P * sizeof *g), *v = malloc(P * sizeof *v), *o = malloc(P * sizeof *o);
        float *y = malloc(6 * 12 * 9 * sizeof *y);
        assert_non_null(g);
        assert_non_null(v);
        assert_non_null(o);
        assert_non_null(y);
        for (size_t i = 0; i < P; i++)
            v[i] = (float)(i % 7) * 1e-3f;
        double loss, value;
        _mm_setcsr(start);
        unsigned before = _mm_getcsr() & MXCSR_CONTROL; /* as the CPU (or emulator) holds it */
#define KEEPS(call)                                                                            \
    do {                                                                                       \
        assert_ok(call);                                                                       \
        if ((_mm_getcsr() & MXCSR_CONTROL) != before)                                          \
            fail_msg("%s changed MXCSR from %#x to %#x", #call, before,                        \
                     _mm_getcsr() & MXCSR_CONTROL);                                            \
    } while (0)
        KEEPS(mom_net_loss(&loss, net, b, NULL));
        KEEPS(mom_net_loss_grad(&loss, g, net, b, NULL));
        KEEPS(mom_net_fisher_diag(o, net, b, NULL));
        KEEPS(mom_net_gv_begin(net, b, NULL));
        KEEPS(mom_net_gv(o, net, v, 0.0));
        KEEPS(mom_net_forward(y, net, b, NULL, 1));
        KEEPS(mom_net_metric(&value, net, b, NULL, MOM_METRIC_SQUARED_ERROR, 0.0));
        KEEPS(mom_net_check_grad(&value, net, b, 5, 0.0));
        KEEPS(mom_net_check_gv(&value, net, b, 1, 3));
        static const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG, MOM_OPTIM_HF};
        for (int q = 0; q < 4; q++) {
            mom_optim *opt;
            assert_ok(mom_optim_create(&opt, kinds[q], P, NULL));
            KEEPS(mom_optim_step_net(&loss, opt, net, b));
            if (kinds[q] == MOM_OPTIM_HF) {
                KEEPS(mom_optim_step_hf(&loss, opt, net, b, NULL));
            } else {
                const float *point;
                float *theta = mom_net_params(net);
                KEEPS(mom_optim_begin(&point, opt, theta));
                assert_ok(mom_net_loss_grad(&loss, g, net, b, point));
                KEEPS(mom_optim_end(opt, theta, loss, g));
            }
            mom_optim_destroy(opt);
        }
#undef KEEPS
        free(g);
        free(v);
        free(o);
        free(y);
    }
    free_data(&dff);
    free_data(&drnn);
    mom_net_destroy(ff);
    mom_net_destroy(rnn);
}
#endif

#if HAVE_MXCSR
/* A user schedule that records the control bits it was called in and returns a constant. */
static double record_mxcsr(uint64_t t, void *user_data)
{
    (void)t;
    unsigned *seen = user_data;
    unsigned now = _mm_getcsr() & MXCSR_CONTROL;
    if (*seen == 0xffffffffu)
        *seen = now;
    else if (*seen != now)
        *seen = 0xfffffffeu; /* called in two different modes */
    return 0.01;
}
#endif

/* User schedules are user code: they run in the caller's floating-point mode, not in the mode
 * the library computes in, through every kind of step (x86 only). */
static void test_callbacks_in_caller_mode(void **state)
{
    (void)state;
#if HAVE_MXCSR
    unsigned saved = _mm_getcsr();
    _mm_setcsr(0x1F80u); /* the default: no FTZ/DAZ, while the library computes with them */
    const unsigned want = _mm_getcsr() & MXCSR_CONTROL;
    mom_net *net = make_ff();
    data d;
    mom_batch b = make_batch(&d, 6, 0, 12, 12, 1, 0);
    size_t P = mom_net_num_params(net);
    float *g = malloc(P * sizeof *g);
    assert_non_null(g);
    static const int kinds[] = {MOM_OPTIM_SGD, MOM_OPTIM_CM, MOM_OPTIM_NAG, MOM_OPTIM_HF};
    for (int q = 0; q < 4; q++) {
        unsigned seen = 0xffffffffu;
        mom_sched *s;
        assert_ok(mom_sched_create_callback(&s, record_mxcsr, &seen, NULL));
        mom_optim *opt;
        assert_ok(mom_optim_create(&opt, kinds[q], P, NULL));
        if (kinds[q] == MOM_OPTIM_HF) {
            assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_LINE_SEARCH, 0));
            assert_ok(mom_optim_set_lr(opt, s));
        } else {
            assert_ok(mom_optim_set_lr(opt, s));
            if (kinds[q] != MOM_OPTIM_SGD)
                assert_ok(mom_optim_set_momentum(opt, s));
        }
        double loss;
        if (kinds[q] == MOM_OPTIM_HF) {
            assert_ok(mom_optim_step_hf(&loss, opt, net, &b, NULL));
        } else {
            assert_ok(mom_optim_step_net(&loss, opt, net, &b));
            const float *point;
            float *theta = mom_net_params(net);
            assert_ok(mom_optim_begin(&point, opt, theta));
            assert_ok(mom_net_loss_grad(&loss, g, net, &b, point));
            assert_ok(mom_optim_end(opt, theta, loss, g));
        }
        if (seen != want)
            fail_msg("optimizer kind %d: the schedule ran with MXCSR %#x, the caller's is %#x",
                     kinds[q], seen, want);
        mom_optim_destroy(opt);
        mom_sched_destroy(s);
    }
    free(g);
    free_data(&d);
    mom_net_destroy(net);
    _mm_setcsr(saved);
#else
    print_message("# not x86: MXCSR test not applicable\n");
#endif
}

/* The caller's MXCSR (control bits: rounding, exception masks, FTZ, DAZ) is the same after every
 * call as before it, whatever it was: the default, FTZ and DAZ already set, another rounding mode
 * with an exception unmasked... (x86 only). */
static void test_mxcsr_unchanged(void **state)
{
    (void)state;
#if HAVE_MXCSR
    unsigned saved = _mm_getcsr();
    static const unsigned starts[] = {
        0x1F80u,          /* the default: all exceptions masked, round to nearest */
        0x1F80u | 0x8040u, /* FTZ and DAZ already on */
        0x1F80u | 0x8000u, /* FTZ only */
        0x1F80u | 0x6000u, /* round toward zero */
        0x1F80u & ~0x0400u /* divide-by-zero unmasked (the library never divides by zero) */
    };
    for (size_t i = 0; i < sizeof starts / sizeof *starts; i++)
        calls_keep_mxcsr(starts[i]);
    _mm_setcsr(saved);
#else
    print_message("# not x86: MXCSR test not applicable\n");
#endif
}

/* The options round-trip, default to on and reject non-finite values. */
static void test_options(void **state)
{
    (void)state;
    mom_net *net = make_ff();
    double v = -1;
    assert_ok(mom_net_get(&v, net, MOM_NET_FLUSH_SUBNORMALS));
    assert_true(v == 1.0);
    assert_ok(mom_net_set(net, MOM_NET_FLUSH_SUBNORMALS, 0));
    assert_ok(mom_net_get(&v, net, MOM_NET_FLUSH_SUBNORMALS));
    assert_true(v == 0.0);
    assert_status(mom_net_set(net, MOM_NET_FLUSH_SUBNORMALS, NAN), MOM_E_INVALID);
    mom_optim *opt;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_NAG, 10, NULL));
    assert_ok(mom_optim_get(&v, opt, MOM_OPTIM_FLUSH_SUBNORMALS));
    assert_true(v == 1.0);
    assert_ok(mom_optim_set(opt, MOM_OPTIM_FLUSH_SUBNORMALS, 0));
    assert_ok(mom_optim_get(&v, opt, MOM_OPTIM_FLUSH_SUBNORMALS));
    assert_true(v == 0.0);
    assert_status(mom_optim_set(opt, MOM_OPTIM_FLUSH_SUBNORMALS, INFINITY), MOM_E_INVALID);
    mom_optim_destroy(opt);
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_HF, 10, NULL));
    assert_ok(mom_optim_set(opt, MOM_OPTIM_FLUSH_SUBNORMALS, 0));
    mom_optim_destroy(opt);
    mom_net_destroy(net);
}

/* Inside a step the mode really flushes: a velocity that decays into the subnormal range
 * becomes 0 with MOM_OPTIM_FLUSH_SUBNORMALS on and keeps its subnormal value with it off (x86
 * and AArch64, where the library can set the mode). */
static void test_flush_observable(void **state)
{
    (void)state;
#if HAVE_MXCSR || defined(__aarch64__)
    if (UNDER_VALGRIND()) {
        print_message("# valgrind does not emulate flush-to-zero\n");
        return;
    }
    for (int flush = 0; flush < 2; flush++) {
        mom_optim *opt;
        mom_sched *lr, *mu;
        assert_ok(mom_optim_create(&opt, MOM_OPTIM_CM, 1, NULL));
        assert_ok(mom_sched_create_const(&lr, 1.0, NULL));
        assert_ok(mom_sched_create_const(&mu, 0.5, NULL));
        assert_ok(mom_optim_set_lr(opt, lr));
        assert_ok(mom_optim_set_momentum(opt, mu));
        mom_sched_destroy(lr);
        mom_sched_destroy(mu);
        assert_ok(mom_optim_set(opt, MOM_OPTIM_FLUSH_SUBNORMALS, flush));
        float theta[1] = {0.0f}, g1[1] = {-FLT_MIN}, g0[1] = {0.0f};
        const float *point;
        assert_ok(mom_optim_begin(&point, opt, theta));
        assert_ok(mom_optim_end(opt, theta, 0.0, g1)); /* v = FLT_MIN */
        assert_true(mom_optim_velocity(opt)[0] == FLT_MIN);
        assert_ok(mom_optim_begin(&point, opt, theta));
        assert_ok(mom_optim_end(opt, theta, 0.0, g0)); /* v = FLT_MIN / 2: subnormal */
        if (flush)
            assert_true(mom_optim_velocity(opt)[0] == 0.0f);
        else
            assert_true(mom_optim_velocity(opt)[0] == FLT_MIN / 2);
        mom_optim_destroy(opt);
    }
#else
    print_message("# no flush-to-zero mode the library sets on this architecture\n");
#endif
}

/* Loss and gradient of a net with flushing on and off. */
static void lg_both(mom_net *net, const mom_batch *b, double *l_on, float *g_on, double *l_off,
                    float *g_off)
{
    assert_ok(mom_net_set(net, MOM_NET_FLUSH_SUBNORMALS, 1));
    assert_ok(mom_net_loss_grad(l_on, g_on, net, b, NULL));
    assert_ok(mom_net_set(net, MOM_NET_FLUSH_SUBNORMALS, 0));
    assert_ok(mom_net_loss_grad(l_off, g_off, net, b, NULL));
    assert_ok(mom_net_set(net, MOM_NET_FLUSH_SUBNORMALS, 1));
}

/* Ordinary nets never meet values below 2^-63: flushing changes no bit. */
static void test_flush_changes_nothing_normally(void **state)
{
    (void)state;
    mom_net *nets[2] = {make_ff(), make_rnn(3, 8, 2, MOM_RNN_LEARN_H0)};
    data d[2];
    mom_batch b[2] = {make_batch(&d[0], 6, 0, 12, 12, 1, 0), make_batch(&d[1], 5, 9, 3, 2, 0, 1)};
    for (int k = 0; k < 2; k++) {
        size_t P = mom_net_num_params(nets[k]);
        float *g1 = malloc(P * sizeof *g1), *g2 = malloc(P * sizeof *g2);
        assert_non_null(g1);
        assert_non_null(g2);
        double l1, l2;
        lg_both(nets[k], &b[k], &l1, g1, &l2, g2);
        assert_true(l1 == l2);
        assert_memory_equal(g1, g2, P * sizeof *g1);
        free(g1);
        free(g2);
        free_data(&d[k]);
        mom_net_destroy(nets[k]);
    }
}

/* A saturated net (sparse initialization scaled by 16, as in a run gone to large weights) has
 * deltas far below 2^-63 in its lower layers, and subnormal ones without flushing. Flushed, its
 * loss is the same, its gradient differs from the unflushed one only in entries far below any
 * that matter, and finite differences still agree with it. */
static void test_flush_saturated_net(void **state)
{
    (void)state;
    static const size_t sizes[] = {784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784};
    int acts[11];
    for (int i = 0; i < 11; i++)
        acts[i] = i == 5 ? MOM_ACT_LINEAR : MOM_ACT_LOGISTIC;
    mom_net *net;
    assert_ok(mom_net_create_ff(&net, 12, sizes, acts, MOM_OUT_LOGISTIC_XENT, NULL));
    assert_ok(mom_init_preset_ff(net, 1));
    size_t P = mom_net_num_params(net);
    float *p = mom_net_params(net);
    for (size_t i = 0; i < P; i++)
        p[i] *= 16.0f;
    data d;
    mom_batch b = make_batch(&d, 20, 0, 784, 784, 1, 0);
    float *g1 = malloc(P * sizeof *g1), *g2 = malloc(P * sizeof *g2);
    assert_non_null(g1);
    assert_non_null(g2);
    double l1, l2;
    lg_both(net, &b, &l1, g1, &l2, g2);
    assert_true(rel_diff(l1, l2, 1e-12) < 1e-12);
    double gmax = 0, dmax = 0;
    size_t tiny_off = 0;
    for (size_t i = 0; i < P; i++) {
        assert_true(isfinite(g1[i]));
        gmax = fmax(gmax, fabs(g1[i]));
        dmax = fmax(dmax, fabs((double)g1[i] - g2[i]));
        tiny_off += g2[i] != 0.0f && fabsf(g2[i]) < 1e-30f;
    }
    assert_true(tiny_off > 0); /* the stress really produces tiny gradient entries */
    assert_true(dmax <= 1e-6 * gmax);
    double err;
    assert_ok(mom_net_check_grad(&err, net, &b, 60, 0));
    assert_true(err < 0.05);
    free(g1);
    free(g2);
    free_data(&d);
    mom_net_destroy(net);
}

/* The loss-and-gradient workspace keeps the deltas of a few steps at a time (bptt()): with many
 * chunks (n H = 2560: 25 steps per chunk, T = 37), the gradient equals the mean of the
 * one-sequence gradients (each a single chunk), for compact and dense output rows, with and
 * without a learned h0. */
static void test_chunked_bptt(void **state)
{
    (void)state;
    const size_t I = 3, H = 64, O = 2, T = 37, n = 40;
    for (int variant = 0; variant < 4; variant++) {
        mom_net *net = make_rnn(I, H, O, (variant & 1) ? MOM_RNN_LEARN_H0 : 0);
        data d;
        mom_batch b = make_batch(&d, n, T, I, O, 0, variant & 2);
        size_t P = mom_net_num_params(net);
        float *g = malloc(P * sizeof *g), *g1 = malloc(P * sizeof *g1);
        double *sum = calloc(P, sizeof *sum);
        float *x1 = malloc(T * I * sizeof *x1), *t1 = malloc(T * O * sizeof *t1),
              *m1 = malloc(T * sizeof *m1);
        assert_true(g && g1 && sum && x1 && t1 && m1);
        double l, l1, lsum = 0;
        assert_ok(mom_net_loss_grad(&l, g, net, &b, NULL));
        for (size_t s = 0; s < n; s++) {
            for (size_t k = 0; k < T; k++) {
                memcpy(x1 + k * I, d.x + (k * n + s) * I, I * sizeof *x1);
                memcpy(t1 + k * O, d.t + (k * n + s) * O, O * sizeof *t1);
                m1[k] = d.m[k * n + s];
            }
            size_t len = d.len[s];
            mom_batch b1 = {1, T, x1, t1, b.mask ? m1 : NULL, b.lengths ? &len : NULL};
            assert_ok(mom_net_loss_grad(&l1, g1, net, &b1, NULL));
            lsum += l1 / (double)n;
            for (size_t i = 0; i < P; i++)
                sum[i] += (double)g1[i] / (double)n;
        }
        assert_true(rel_diff(l, lsum, 1e-9) < 1e-5);
        double gmax = 0, dmax = 0;
        for (size_t i = 0; i < P; i++) {
            gmax = fmax(gmax, fabs(sum[i]));
            dmax = fmax(dmax, fabs(g[i] - sum[i]));
        }
        if (dmax > 1e-5 * gmax)
            fail_msg("variant %d: max |g - mean of one-sequence g| = %g (max |g| %g)", variant,
                     dmax, gmax);
        free(g);
        free(g1);
        free(sum);
        free(x1);
        free(t1);
        free(m1);
        free_data(&d);
        mom_net_destroy(net);
    }
}

/* NAG near overflow: begin's bounds cannot rule it out, so end checks every value; a finite
 * update goes through exactly as computed, an infinite one changes nothing. */
static void test_nag_guard_near_overflow(void **state)
{
    (void)state;
    const size_t P = 4;
    mom_optim *opt;
    mom_sched *lr, *mu;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_NAG, P, NULL));
    assert_ok(mom_sched_create_const(&lr, 1.0, NULL));
    assert_ok(mom_sched_create_const(&mu, 0.5, NULL));
    assert_ok(mom_optim_set_lr(opt, lr));
    assert_ok(mom_optim_set_momentum(opt, mu));
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);
    float theta[4] = {3e38f, -3e38f, 1.0f, 0.0f};
    float g[4] = {1e30f, -1e30f, 2.0f, 0.0f};
    const float *point;
    assert_ok(mom_optim_begin(&point, opt, theta));
    assert_ok(mom_optim_end(opt, theta, 1.0, g));
    assert_true(theta[0] == 3e38f - 1e30f);
    assert_true(theta[1] == -3e38f + 1e30f);
    assert_true(theta[2] == -1.0f);
    float before[4], vbefore[4];
    memcpy(before, theta, sizeof before);
    memcpy(vbefore, mom_optim_velocity(opt), sizeof vbefore);
    float gbig[4] = {-1e38f, 0.0f, 0.0f, 0.0f}; /* pushes theta[0] past FLT_MAX */
    assert_ok(mom_optim_begin(&point, opt, theta));
    assert_status(mom_optim_end(opt, theta, 1.0, gbig), MOM_E_DIVERGED);
    assert_memory_equal(before, theta, sizeof before);
    assert_memory_equal(vbefore, mom_optim_velocity(opt), sizeof vbefore);
    assert_ok(mom_optim_cancel(opt));
    mom_optim_destroy(opt);
}

/* The benchmark's recurrent configuration (100 tanh units, 100 sequences of 80 steps, so many
 * BPTT chunks) allocates nothing after its first step; nor does the CURVES-shaped net. */
static void test_steps_do_not_allocate(void **state)
{
    (void)state;
    test_alloc ta;
    test_alloc_init(&ta, 0);
    mom_net *net;
    assert_ok(mom_net_create_rnn(&net, 2, 100, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0,
                                 &ta.a));
    data d;
    mom_batch b = make_batch(&d, 100, 80, 2, 1, 0, 0);
    mom_optim *opt;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_NAG, mom_net_num_params(net), &ta.a));
    assert_ok(mom_optim_step_net(NULL, opt, net, &b));
    long calls = ta.calls;
    for (int i = 0; i < 3; i++)
        assert_ok(mom_optim_step_net(NULL, opt, net, &b));
    assert_int_equal(ta.calls, calls);
    mom_optim_destroy(opt);
    mom_net_destroy(net);
    free_data(&d);
    assert_int_equal(ta.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mxcsr_unchanged),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_callbacks_in_caller_mode),
        cmocka_unit_test(test_flush_observable),
        cmocka_unit_test(test_flush_changes_nothing_normally),
        cmocka_unit_test(test_flush_saturated_net),
        cmocka_unit_test(test_chunked_bptt),
        cmocka_unit_test(test_nag_guard_near_overflow),
        cmocka_unit_test(test_steps_do_not_allocate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
