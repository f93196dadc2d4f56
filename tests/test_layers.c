/* Tests of the shared elementwise layer math (lib/layers.c): activations and derivatives, the
 * fused loops, and the matched output/loss pairs with their gradients and Hessians. */
#include "testutil.h"
#include "../lib/internal.h"
#include "../lib/layers.h"

static double act_ref(int act, double x)
{
    switch (act) {
    case MOM_ACT_LOGISTIC: return 1.0 / (1.0 + exp(-x));
    case MOM_ACT_TANH: return tanh(x);
    case MOM_ACT_RELU: return x > 0 ? x : 0;
    default: return x;
    }
}

static double dact_ref(int act, double x) /* derivative at pre-activation x */
{
    switch (act) {
    case MOM_ACT_LOGISTIC: {
        double s = 1.0 / (1.0 + exp(-x));
        return s * (1 - s);
    }
    case MOM_ACT_TANH: return 1 - tanh(x) * tanh(x);
    case MOM_ACT_RELU: return x > 0 ? 1 : 0;
    default: return 1;
    }
}

#define NR 3
#define NK 5

static const float X[NR * NK] = {-3.0f, -0.5f, 0.0f, 0.25f, 2.0f,  /* row 0 */
                                 7.5f,  -9.0f, 1.0f, -1.5f, 0.1f,  /* row 1 */
                                 -0.2f, 0.6f, -4.0f, 3.0f, -0.01f}; /* row 2 */
static const float B[NK] = {0.1f, -0.2f, 0.3f, -0.4f, 0.5f};

static void test_activations(void **state)
{
    (void)state;
    for (int act = MOM_ACT_LINEAR; act <= MOM_ACT_RELU; act++) {
        float a[NR * NK], d[NR * NK], f[NR * NK], r[NR * NK], sums[NK], sums2[NK];
        memcpy(a, X, sizeof a);
        mom__act_apply(act, a, NR * NK);
        for (int i = 0; i < NR * NK; i++)
            assert_true(fabs(a[i] - act_ref(act, X[i])) < 1e-6);
        /* derivative through the activation value */
        for (int i = 0; i < NR * NK; i++)
            d[i] = 2.0f;
        mom__act_deriv_mul(act, d, a, NR * NK);
        for (int i = 0; i < NR * NK; i++)
            assert_true(fabs(d[i] - 2 * dact_ref(act, X[i])) < 1e-5);

        /* fused bias + activation equals the two separate passes */
        memcpy(f, X, sizeof f);
        mom__bias_act(act, f, B, NR, NK);
        memcpy(r, X, sizeof r);
        mom__add_bias_rows(r, B, NR, NK);
        mom__act_apply(act, r, NR * NK);
        for (int i = 0; i < NR * NK; i++)
            assert_true(fabs(f[i] - r[i]) < 1e-6);

        /* fused R-pass step: (x + b) * act'(a) */
        float x2[NR * NK];
        for (int i = 0; i < NR * NK; i++)
            x2[i] = 0.5f * (float)i - 3.0f;
        memcpy(f, x2, sizeof f);
        mom__bias_deriv_mul(act, f, B, a, NR, NK);
        for (int rr = 0; rr < NR; rr++)
            for (int j = 0; j < NK; j++) {
                int i = rr * NK + j;
                assert_true(fabs(f[i] - (x2[i] + B[j]) * dact_ref(act, X[i])) < 1e-5);
            }
        memcpy(f, x2, sizeof f);
        mom__bias_deriv_mul(act, f, NULL, a, NR, NK);
        for (int i = 0; i < NR * NK; i++)
            assert_true(fabs(f[i] - x2[i] * dact_ref(act, X[i])) < 1e-5);

        /* fused derivative + column sums */
        memcpy(f, x2, sizeof f);
        for (int j = 0; j < NK; j++)
            sums[j] = 99.0f; /* overwritten, not accumulated */
        mom__act_deriv_mul_colsum(act, f, a, sums, NR, NK);
        memcpy(r, x2, sizeof r);
        mom__act_deriv_mul(act, r, a, NR * NK);
        mom__col_sums(sums2, r, NR, NK);
        for (int i = 0; i < NR * NK; i++)
            assert_true(f[i] == r[i]);
        for (int j = 0; j < NK; j++)
            assert_true(fabs(sums[j] - sums2[j]) < 1e-5);
    }
    /* relu at exactly 0 has derivative 0 (through a = 0) */
    float a0 = 0.0f, d0 = 1.0f;
    mom__act_deriv_mul(MOM_ACT_RELU, &d0, &a0, 1);
    assert_true(d0 == 0.0f);
}

/* The vectorizable exp/log-based activations are accurate to a few ulp over the whole range,
 * saturate cleanly, and propagate NaN (divergence must stay visible). */
static void test_activation_accuracy(void **state)
{
    (void)state;
    enum { N = 200001 };
    float *a = malloc(N * sizeof *a), *x = malloc(N * sizeof *x);
    assert_non_null(a);
    assert_non_null(x);
    for (int i = 0; i < N; i++)
        x[i] = (float)(-100.0 + 200.0 * i / (N - 1));
    for (int act = MOM_ACT_LOGISTIC; act <= MOM_ACT_TANH; act++) {
        memcpy(a, x, N * sizeof *a);
        mom__act_apply(act, a, N);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double want = act_ref(act, x[i]);
            assert_true(a[i] >= -1.0f && a[i] <= 1.0f);
            if (fabs(want) < 1e-37)
                assert_true(fabs(a[i]) < 1e-37);
            else
                worst = fmax(worst, fabs(a[i] - want) / fabs(want));
        }
        if (worst > 4 * 5.96e-8)
            fail_msg("act %d: relative error %.3g", act, worst);
        /* tiny arguments keep full relative accuracy; saturation is exact */
        const float tiny[] = {1e-6f, -3e-20f, 0.0f, 50.0f, -50.0f};
        memcpy(a, tiny, sizeof tiny);
        mom__act_apply(act, a, 5);
        for (int i = 0; i < 5; i++) {
            double want = act_ref(act, tiny[i]);
            assert_true(fabs(a[i] - want) <= 2 * 5.96e-8 * fabs(want));
        }
        float nan_in[3] = {NAN, 1.0f, -INFINITY};
        mom__act_apply(act, nan_in, 3);
        assert_true(isnan(nan_in[0]));
        assert_true(nan_in[2] == (act == MOM_ACT_TANH ? -1.0f : 0.0f));
        float nb[2] = {NAN, 0.5f}, zb[2] = {0, 0};
        mom__bias_act(act, nb, zb, 1, 2);
        assert_true(isnan(nb[0]));
    }
    /* the logistic cross-entropy over a sweep of z, at hard and at soft targets (an image's gray
     * levels; large |z| against t near 0 or 1 is where a naive max(z,0) - z t cancels): a few
     * ulp of the loss */
    const float targets[] = {0.0f, 1.0f, 0.25f, 0.7f, 0.999f, 1e-3f};
    for (int i = 0; i <= 6000; i++) {
        float z = (float)(-30.0 + 0.01 * i), y;
        for (int tt = 0; tt < (int)(sizeof targets / sizeof targets[0]); tt++) {
            float t = targets[tt];
            double l = mom__out_forward(MOM_OUT_LOGISTIC_XENT, &z, &y, &t, NULL, 1, 1);
            double zd = z, want = fmax(zd, 0) - zd * t + log1p(exp(-fabs(zd)));
            if (fabs(l - want) > 2e-7 * fmax(want, 1e-30) + 1e-45)
                fail_msg("logistic loss at z = %.9g, t = %.9g: %.12g vs %.12g", z, t, l, want);
        }
        double ywant = 1 / (1 + exp(-(double)z));
        assert_true(fabs(y - ywant) <= 4 * 5.96e-8 * ywant);
    }
    /* NaN pre-activations give a NaN loss for every output */
    for (int out = 0; out < 3; out++) {
        const float z[3] = {0.5f, NAN, -1.0f}, t[3] = {0, 1, 0};
        float y[3];
        assert_true(isnan(mom__out_forward(out, z, y, t, NULL, 1, 3)));
        assert_true(isnan(y[1]));
    }
    free(a);
    free(x);
}

static void test_row_helpers(void **state)
{
    (void)state;
    float s[NK], sq[NR * NK];
    mom__col_sums(s, X, NR, NK);
    for (int j = 0; j < NK; j++)
        assert_true(fabs(s[j] - (X[j] + X[NK + j] + X[2 * NK + j])) < 1e-6);
    mom__col_sums_add(s, X, 1, NK);
    for (int j = 0; j < NK; j++)
        assert_true(fabs(s[j] - (2 * X[j] + X[NK + j] + X[2 * NK + j])) < 1e-6);
    mom__square(sq, X, NR * NK);
    for (int i = 0; i < NR * NK; i++)
        assert_true(sq[i] == X[i] * X[i]);
    memcpy(sq, X, sizeof sq);
    mom__square(sq, sq, NR * NK); /* in place */
    for (int i = 0; i < NR * NK; i++)
        assert_true(sq[i] == X[i] * X[i]);
    const float ties[] = {1, 3, 3, -1};
    assert_int_equal(mom__argmax(ties, 4), 1);
    assert_int_equal(mom__argmax(X, NK), 4);
    assert_int_equal(mom__argmax(X + NK, NK), 0);
}

/* Loss of one row in double, straight from the definitions in net.h. */
static double loss_ref(int output, const float *z, const float *t, size_t k)
{
    double l = 0;
    if (output == MOM_OUT_SOFTMAX_XENT) {
        double m = z[0], s = 0;
        for (size_t j = 1; j < k; j++)
            m = fmax(m, z[j]);
        for (size_t j = 0; j < k; j++)
            s += exp(z[j] - m);
        for (size_t j = 0; j < k; j++)
            l -= t[j] * (z[j] - m - log(s));
    } else if (output == MOM_OUT_LOGISTIC_XENT) {
        for (size_t j = 0; j < k; j++) {
            double y = 1 / (1 + exp(-(double)z[j]));
            l -= t[j] * log(y) + (1.0 - t[j]) * log(1.0 - y);
        }
    } else {
        for (size_t j = 0; j < k; j++)
            l += 0.5 * ((double)z[j] - t[j]) * ((double)z[j] - t[j]);
    }
    return l;
}

static const float T[NR * NK] = {0.2f, 0.9f, 0.0f, 1.0f, 0.5f,  /* */
                                 1.0f, 0.0f, 0.3f, 0.7f, 0.1f,  /* */
                                 0.6f, 0.4f, 0.8f, 0.0f, 1.0f};
static const float W[NR] = {1.0f, 0.0f, 2.5f};

static void test_output_losses(void **state)
{
    (void)state;
    float y[NR * NK];
    for (int out = 0; out < 3; out++) {
        double total = mom__out_forward(out, X, y, T, NULL, NR, NK);
        double weighted = mom__out_forward(out, X, y, T, W, NR, NK);
        double want = 0, want_w = 0;
        for (int r = 0; r < NR; r++) {
            double l = loss_ref(out, X + r * NK, T + r * NK, NK);
            want += l;
            want_w += W[r] * l;
        }
        /* the terms are float computations (a few ulp), summed in double */
        if (fabs(total - want) > 3e-7 * NR * NK || fabs(weighted - want_w) > 1e-6 * NR * NK)
            fail_msg("output %d: %.17g vs %.17g, weighted %.17g vs %.17g", out, total, want,
                     weighted, want_w);
        /* no targets: outputs only */
        float y2[NR * NK];
        assert_true(mom__out_forward(out, X, y2, NULL, NULL, NR, NK) == 0.0);
        assert_memory_equal(y, y2, sizeof y);
        for (int r = 0; r < NR; r++) {
            double s = 0;
            for (int j = 0; j < NK; j++) {
                double yj = y[r * NK + j];
                if (out == MOM_OUT_LINEAR_SQUARED)
                    assert_true(yj == X[r * NK + j]);
                else if (out == MOM_OUT_LOGISTIC_XENT)
                    assert_true(fabs(yj - 1 / (1 + exp(-(double)X[r * NK + j]))) < 1e-7);
                s += yj;
            }
            if (out == MOM_OUT_SOFTMAX_XENT)
                assert_true(fabs(s - 1) < 1e-6);
        }
    }
}

/* Cross-entropies stay finite and exact at extreme pre-activations. */
static void test_xent_extremes(void **state)
{
    (void)state;
    const float z[] = {100.0f, -100.0f, 100.0f, -100.0f, 0.0f};
    const float t[] = {0.0f, 1.0f, 1.0f, 0.0f, 1.0f};
    float y[5];
    for (int i = 0; i < 5; i++) {
        double l = mom__out_forward(MOM_OUT_LOGISTIC_XENT, z + i, y + i, t + i, NULL, 1, 1);
        double want = i < 2 ? 100.0 : (i < 4 ? log1p(exp(-100.0)) : log(2.0));
        assert_true(isfinite(l));
        assert_true(fabs(l - want) <= 2e-7 * fmax(1.0, want));
        assert_true(y[i] >= 0.0f && y[i] <= 1.0f);
    }
    assert_true(y[0] == 1.0f && y[1] < 1e-40f && y[4] == 0.5f);

    /* softmax with huge logits: shifted by the max, no overflow */
    const float zs[] = {1000.0f, 999.0f, -1000.0f};
    const float ts[] = {0.0f, 1.0f, 0.0f};
    float ys[3];
    double l = mom__out_forward(MOM_OUT_SOFTMAX_XENT, zs, ys, ts, NULL, 1, 3);
    assert_true(fabs(l - (1.0 + log1p(exp(-1.0)))) < 1e-7); /* float exponentials */
    assert_true(fabs(ys[0] - 1 / (1 + exp(-1.0))) < 1e-7);
    assert_true(fabs(ys[1] - exp(-1.0) / (1 + exp(-1.0))) < 1e-7);
    assert_true(ys[2] == 0.0f);
    const float zm[] = {3e38f, -3e38f};
    const float tm[] = {0.0f, 1.0f};
    float ym[2];
    l = mom__out_forward(MOM_OUT_SOFTMAX_XENT, zm, ym, tm, NULL, 1, 2);
    assert_true(isfinite(l) && rel_diff(l, 6e38, 1e-9) < 1e-6);
    assert_true(ym[0] == 1.0f && ym[1] == 0.0f);
    const float zn[] = {-1e4f, -1e4f, -1e4f, -1e4f};
    const float tn[] = {0.25f, 0.25f, 0.25f, 0.25f};
    float yn[4];
    l = mom__out_forward(MOM_OUT_SOFTMAX_XENT, zn, yn, tn, NULL, 1, 4);
    assert_true(fabs(l - log(4.0)) < 1e-7);
    for (int j = 0; j < 4; j++)
        assert_true(fabs(yn[j] - 0.25f) < 1e-7);
}

/* dLoss/dz = y - t for every pair (central differences in double of the float-input loss), and
 * mom__out_delta applies the weight and scale. For softmax this needs targets summing to 1. */
static void test_output_deltas(void **state)
{
    (void)state;
    float y[NR * NK], d[NR * NK], zp[NR * NK], tn[NR * NK];
    for (int out = 0; out < 3; out++) {
        memcpy(tn, T, sizeof tn);
        if (out == MOM_OUT_SOFTMAX_XENT)
            for (int r = 0; r < NR; r++) {
                float s = 0;
                for (int j = 0; j < NK; j++)
                    s += tn[r * NK + j];
                for (int j = 0; j < NK; j++)
                    tn[r * NK + j] /= s;
            }
        (void)mom__out_forward(out, X, y, tn, NULL, NR, NK);
        mom__out_delta(d, y, tn, W, 0.5f, NR, NK);
        for (int r = 0; r < NR; r++)
            for (int j = 0; j < NK; j++) {
                int i = r * NK + j;
                memcpy(zp, X, sizeof zp);
                double h = 1.0 / 1024;
                zp[i] = (float)(X[i] + h);
                double lp = mom__out_forward(out, zp, y, tn, NULL, NR, NK);
                zp[i] = (float)(X[i] - h);
                double lm = mom__out_forward(out, zp, y, tn, NULL, NR, NK);
                double fd = (lp - lm) / (2 * h);
                assert_true(fabs(d[i] - 0.5 * W[r] * fd) < 1e-4 * (1 + fabs(fd)));
            }
    }
}

/* mom__out_hess against the Hessian formed explicitly, and against differences of y - t. */
static void test_output_hessians(void **state)
{
    (void)state;
    const float u[NR * NK] = {1, -2, 0.5f, 3, -1, 0.25f, 0.5f, -0.75f, 2, 1, -1, -1, 4, 0, 0.1f};
    float y[NR * NK], hu[NR * NK], yp[NR * NK], ym[NR * NK], zp[NR * NK];
    for (int out = 0; out < 3; out++) {
        (void)mom__out_forward(out, X, y, NULL, NULL, NR, NK);
        mom__out_hess(out, hu, y, u, W, 0.25f, NR, NK);
        for (int r = 0; r < NR; r++) {
            const float *yr = y + r * NK;
            double H[NK][NK];
            for (int i = 0; i < NK; i++)
                for (int j = 0; j < NK; j++) {
                    if (out == MOM_OUT_LINEAR_SQUARED)
                        H[i][j] = i == j;
                    else if (out == MOM_OUT_LOGISTIC_XENT)
                        H[i][j] = i == j ? (double)yr[i] * (1 - yr[i]) : 0;
                    else
                        H[i][j] = (i == j ? (double)yr[i] : 0) - (double)yr[i] * yr[j];
                }
            /* H is the derivative of y with respect to z (central differences) */
            for (int j = 0; j < NK; j++) {
                double h = 1.0 / 1024;
                memcpy(zp, X, sizeof zp);
                zp[r * NK + j] = (float)(X[r * NK + j] + h);
                (void)mom__out_forward(out, zp, yp, NULL, NULL, NR, NK);
                zp[r * NK + j] = (float)(X[r * NK + j] - h);
                (void)mom__out_forward(out, zp, ym, NULL, NULL, NR, NK);
                for (int i = 0; i < NK; i++) {
                    double fd = ((double)yp[r * NK + i] - ym[r * NK + i]) / (2 * h);
                    assert_true(fabs(fd - H[i][j]) < 1e-4);
                }
            }
            for (int i = 0; i < NK; i++) {
                double s = 0;
                for (int j = 0; j < NK; j++)
                    s += H[i][j] * u[r * NK + j];
                assert_true(fabs(hu[r * NK + i] - 0.25 * W[r] * s) < 1e-5 * (1 + fabs(s)));
            }
        }
        /* out may alias u */
        float inplace[NR * NK];
        memcpy(inplace, u, sizeof inplace);
        mom__out_hess(out, inplace, y, inplace, W, 0.25f, NR, NK);
        assert_memory_equal(inplace, hu, sizeof hu);
        /* no weights means weight 1 */
        mom__out_hess(out, inplace, y, u, NULL, 1.0f, NR, NK);
        for (int i = 0; i < NK; i++)
            assert_true(fabs(inplace[i] - 4 * hu[i]) < 1e-5 * (1 + fabs(hu[i]))); /* W[0] = 1 */
    }
}

/* The fused output pass equals bias add + out_forward + out_delta + column sums. */
static void test_output_fused(void **state)
{
    (void)state;
    for (int out = 0; out < 3; out++) {
        float z1[NR * NK], z2[NR * NK], y1[NR * NK], y2[NR * NK], d[NR * NK];
        float s1[NK], s2[NK];
        memcpy(z1, X, sizeof z1);
        memcpy(z2, X, sizeof z2);
        mom__add_bias_rows(z1, B, NR, NK);
        double l1 = mom__out_forward(out, z1, y1, T, NULL, NR, NK);
        mom__out_delta(d, y1, T, NULL, 0.25f, NR, NK);
        mom__col_sums(s1, d, NR, NK);
        for (int j = 0; j < NK; j++)
            s2[j] = 123.0f;
        double l2 = mom__out_forward_fused(out, z2, B, y2, T, 0.25f, s2, NR, NK);
        assert_true(l1 == l2);
        assert_memory_equal(y1, y2, sizeof y1);
        assert_memory_equal(d, z2, sizeof d);
        for (int j = 0; j < NK; j++)
            assert_true(fabs(s1[j] - s2[j]) < 1e-6);
        /* without deltas: z keeps the biased pre-activations; without targets: loss 0 */
        memcpy(z2, X, sizeof z2);
        assert_true(mom__out_forward_fused(out, z2, B, y2, NULL, 1.0f, NULL, NR, NK) == 0.0);
        assert_memory_equal(z1, z2, sizeof z1);
        assert_memory_equal(y1, y2, sizeof y1);
        memcpy(z2, z1, sizeof z2);
        assert_true(mom__out_forward_fused(out, z2, NULL, y2, T, 1.0f, NULL, NR, NK) == l1);
    }
}

static void test_squared_error(void **state)
{
    (void)state;
    double want = 0, want_w = 0;
    for (int r = 0; r < NR; r++) {
        double s = 0;
        for (int j = 0; j < NK; j++)
            s += ((double)X[r * NK + j] - T[r * NK + j]) * ((double)X[r * NK + j] - T[r * NK + j]);
        want += s;
        want_w += W[r] * s;
    }
    assert_true(rel_diff(mom__out_sqerr(X, T, NULL, NR, NK), want, 1e-12) < 1e-12);
    assert_true(rel_diff(mom__out_sqerr(X, T, W, NR, NK), want_w, 1e-12) < 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_activation_accuracy),
        cmocka_unit_test(test_row_helpers),
        cmocka_unit_test(test_output_losses),
        cmocka_unit_test(test_xent_extremes),
        cmocka_unit_test(test_output_deltas),
        cmocka_unit_test(test_output_hessians),
        cmocka_unit_test(test_output_fused),
        cmocka_unit_test(test_squared_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
