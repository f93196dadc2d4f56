/* Tests of the Philox4x32-10 streams and the distributions built on them. */
#include "testutil.h"
#include "../lib/internal.h"

void mom__philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);
double mom__log(double x);

/* Known-answer vectors of Philox4x32-10 published with Random123 (kat_vectors). */
static void test_philox_known_answers(void **state)
{
    (void)state;
    uint32_t out[4];
    const uint32_t c0[4] = {0, 0, 0, 0}, k0[2] = {0, 0};
    mom__philox4x32_10(out, c0, k0);
    assert_int_equal(out[0], 0x6627e8d5);
    assert_int_equal(out[1], 0xe169c58d);
    assert_int_equal(out[2], 0xbc57ac4c);
    assert_int_equal(out[3], 0x9b00dbd8);

    const uint32_t c1[4] = {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
    const uint32_t k1[2] = {0xffffffff, 0xffffffff};
    mom__philox4x32_10(out, c1, k1);
    assert_int_equal(out[0], 0x408f276d);
    assert_int_equal(out[1], 0x41c83b0e);
    assert_int_equal(out[2], 0xa20bc7c6);
    assert_int_equal(out[3], 0x6d5451fd);

    const uint32_t c2[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
    const uint32_t k2[2] = {0xa4093822, 0x299f31d0};
    mom__philox4x32_10(out, c2, k2);
    assert_int_equal(out[0], 0xd16cfe09);
    assert_int_equal(out[1], 0x94fdcceb);
    assert_int_equal(out[2], 0x5001e420);
    assert_int_equal(out[3], 0x24126ea1);
}

/* The stream maps (seed, stream, block) onto (key, counter) as documented in rng.h. */
static void test_stream_layout(void **state)
{
    (void)state;
    mom_rng *r;
    assert_ok(mom_rng_create(&r, UINT64_C(0x299f31d0a4093822), UINT64_C(0x0370734413198a2e), NULL));
    uint32_t out[4];
    const uint32_t key[2] = {0xa4093822, 0x299f31d0};
    for (uint32_t block = 0; block < 3; block++) {
        const uint32_t ctr[4] = {block, 0, 0x13198a2e, 0x03707344};
        mom__philox4x32_10(out, ctr, key);
        for (int i = 0; i < 4; i++)
            assert_int_equal(mom_rng_u32(r), out[i]);
    }
    mom_rng_destroy(r);
}

/* Golden values pin the derived sequences (uniform, normal, below, sample) forever. */
static void test_golden_sequence(void **state)
{
    (void)state;
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 42, 7, NULL));
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over all derived outputs */
#define MIX(x)                                                                                 \
    do {                                                                                       \
        uint64_t v_ = (x);                                                                     \
        for (int b_ = 0; b_ < 8; b_++) {                                                       \
            h ^= (v_ >> (8 * b_)) & 0xff;                                                      \
            h *= 1099511628211ULL;                                                             \
        }                                                                                      \
    } while (0)
    for (int i = 0; i < 1000; i++) {
        double u = mom_rng_uniform(r), z = mom_rng_normal(r);
        float f = mom_rng_uniformf(r);
        uint64_t ub, zb;
        uint32_t fb;
        memcpy(&ub, &u, 8);
        memcpy(&zb, &z, 8);
        memcpy(&fb, &f, 4);
        MIX(ub);
        MIX(zb);
        MIX(fb);
        MIX(mom_rng_below(r, 1000003));
    }
    size_t idx[15];
    assert_ok(mom_rng_sample(r, idx, 15, 784));
    for (int i = 0; i < 15; i++)
        MIX(idx[i]);
#undef MIX
    /* Recorded from this implementation; any change to a derivation changes it. */
    assert_int_equal(h, UINT64_C(0x15407518b6c2d643));
    mom_rng_destroy(r);
}

static void test_same_seed_same_numbers(void **state)
{
    (void)state;
    mom_rng *a, *b, *c;
    assert_ok(mom_rng_create(&a, 123, 0, NULL));
    assert_ok(mom_rng_create(&b, 123, 0, NULL));
    assert_ok(mom_rng_create(&c, 123, 1, NULL));
    int same_as_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint32_t x = mom_rng_u32(a), y = mom_rng_u32(b), z = mom_rng_u32(c);
        assert_int_equal(x, y);
        same_as_c += x == z;
    }
    assert_true(same_as_c < 5); /* another stream is a different sequence */
    mom_rng_reseed(a, 123, 0);
    mom_rng_reseed(b, 123, 0);
    assert_int_equal(mom_rng_u64(a), mom_rng_u64(b));
    mom_rng_destroy(a);
    mom_rng_destroy(b);
    mom_rng_destroy(c);
    mom_rng_destroy(NULL);
}

static void test_uniform_properties(void **state)
{
    (void)state;
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 5, 0, NULL));
    const int n = 200000;
    double sum = 0, sum2 = 0, fsum = 0;
    int bins[10] = {0};
    for (int i = 0; i < n; i++) {
        double u = mom_rng_uniform(r);
        float f = mom_rng_uniformf(r);
        assert_true(u >= 0.0 && u < 1.0);
        assert_true(f >= 0.0f && f < 1.0f);
        sum += u;
        sum2 += u * u;
        fsum += f;
        bins[(int)(u * 10)]++;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    /* mean 1/2 (sd of the estimate 0.00065), variance 1/12 */
    assert_true(fabs(mean - 0.5) < 0.004);
    assert_true(fabs(fsum / n - 0.5) < 0.004);
    assert_true(fabs(var - 1.0 / 12) < 0.002);
    /* chi-square over 10 bins, 9 dof: 99.99th percentile is about 33.7 */
    double chi = 0;
    for (int b = 0; b < 10; b++)
        chi += (bins[b] - n / 10.0) * (bins[b] - n / 10.0) / (n / 10.0);
    assert_true(chi < 33.7);
    mom_rng_destroy(r);
}

static void test_normal_properties(void **state)
{
    (void)state;
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 9, 3, NULL));
    const int n = 200000;
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    int within1 = 0;
    for (int i = 0; i < n; i++) {
        double z = mom_rng_normal(r);
        assert_true(isfinite(z));
        s1 += z;
        s2 += z * z;
        s3 += z * z * z;
        s4 += z * z * z * z;
        within1 += fabs(z) < 1.0;
    }
    double mean = s1 / n, var = s2 / n - mean * mean;
    assert_true(fabs(mean) < 0.012);       /* 5 sd of the estimate */
    assert_true(fabs(var - 1.0) < 0.016);
    assert_true(fabs(s3 / n) < 0.03);      /* skewness 0 */
    assert_true(fabs(s4 / n - 3.0) < 0.08); /* kurtosis 3 */
    assert_true(fabs((double)within1 / n - 0.682689) < 0.006);

    float buf[1000];
    assert_ok(mom_rng_fill_normal(r, buf, 1000, 2.0, 0.5));
    double m = 0;
    for (int i = 0; i < 1000; i++)
        m += buf[i];
    assert_true(fabs(m / 1000 - 2.0) < 0.1);
    assert_status(mom_rng_fill_normal(r, buf, 10, NAN, 1.0), MOM_E_INVALID);
    assert_non_null(strstr(mom_rng_errmsg(r), "finite"));
    assert_status(mom_rng_fill_normal(r, NULL, 10, 0.0, 1.0), MOM_E_INVALID);
    assert_non_null(strstr(mom_rng_errmsg(r), "out is NULL"));
    assert_ok(mom_rng_fill_normal(r, NULL, 0, 0.0, 1.0));
    assert_string_equal(mom_rng_errmsg(r), ""); /* cleared by the next call */
    assert_ok(mom_rng_fill_uniform(r, buf, 1000, -3.0, -1.0));
    for (int i = 0; i < 1000; i++)
        assert_true(buf[i] >= -3.0f && buf[i] <= -1.0f);
    assert_status(mom_rng_fill_uniform(r, buf, 10, 1.0, 0.0), MOM_E_INVALID);
    assert_non_null(strstr(mom_rng_errmsg(r), "[1, 0)"));
    mom_rng_destroy(r);
}

static void test_portable_log(void **state)
{
    (void)state;
    const double xs[] = {1e-300, 1e-10, 0.001, 0.1, 0.5, 0.7071, 0.99999, 1.0, 1.5, 2.0, 10.0, 1e10};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        double want = log(xs[i]), got = mom__log(xs[i]);
        assert_true(fabs(got - want) <= 4e-16 * fmax(1.0, fabs(want)));
    }
}

static void test_below_unbiased(void **state)
{
    (void)state;
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 77, 0, NULL));
    assert_int_equal(mom_rng_below(r, 0), 0);
    assert_int_equal(mom_rng_below(r, 1), 0);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t v = mom_rng_below(r, 7);
        assert_true(v < 7);
        counts[v]++;
    }
    for (int k = 0; k < 7; k++)
        assert_true(abs(counts[k] - 10000) < 500);
    /* 64-bit range path */
    uint64_t big = (UINT64_C(1) << 40) + 12345;
    int upper = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t v = mom_rng_below(r, big);
        assert_true(v < big);
        upper += v >= big / 2;
    }
    assert_true(abs(upper - 5000) < 300);
    mom_rng_destroy(r);
}

static void test_sample_without_replacement(void **state)
{
    (void)state;
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 11, 0, NULL));
    size_t idx[20];
    int hits[30] = {0};
    for (int rep = 0; rep < 3000; rep++) {
        assert_ok(mom_rng_sample(r, idx, 15, 30));
        for (int i = 0; i < 15; i++) {
            assert_true(idx[i] < 30);
            if (i > 0)
                assert_true(idx[i] > idx[i - 1]); /* sorted and distinct */
            hits[idx[i]]++;
        }
    }
    /* each index is chosen with probability 1/2: 1500 expected, sd about 27 */
    for (int j = 0; j < 30; j++)
        assert_true(abs(hits[j] - 1500) < 150);
    assert_ok(mom_rng_sample(r, idx, 5, 5));
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(idx[i], i);
    assert_status(mom_rng_sample(r, idx, 6, 5), MOM_E_INVALID);
    assert_non_null(strstr(mom_rng_errmsg(r), "6 distinct values of 5"));
    assert_status(mom_rng_sample(r, NULL, 1, 5), MOM_E_INVALID);
    assert_ok(mom_rng_sample(r, NULL, 0, 5));
    assert_string_equal(mom_rng_errmsg(r), "");
    mom_rng_destroy(r);
}

static void test_state_roundtrip(void **state)
{
    (void)state;
    mom_rng *a, *b;
    assert_ok(mom_rng_create(&a, 2024, 5, NULL));
    assert_ok(mom_rng_create(&b, 1, 1, NULL));
    for (int skip = 0; skip < 9; skip++) {
        mom_rng_reseed(a, 2024, 5);
        for (int i = 0; i < skip; i++)
            (void)mom_rng_u32(a);
        (void)mom_rng_normal(a); /* leaves a cached normal */
        uint64_t st[MOM_RNG_STATE_WORDS];
        mom_rng_get_state(a, st);
        assert_ok(mom_rng_set_state(b, st));
        for (int i = 0; i < 50; i++) {
            double x = mom_rng_normal(a), y = mom_rng_normal(b);
            assert_memory_equal(&x, &y, sizeof x);
            assert_int_equal(mom_rng_u32(a), mom_rng_u32(b));
        }
    }
    uint64_t bad[MOM_RNG_STATE_WORDS] = {1, 2, 3, 9, 0, 0}; /* position 9 is impossible */
    uint32_t before = 0;
    {
        uint64_t st[MOM_RNG_STATE_WORDS];
        mom_rng_get_state(b, st);
        assert_status(mom_rng_set_state(b, bad), MOM_E_FORMAT);
        assert_true(strlen(mom_rng_errmsg(b)) > 0);
        before = mom_rng_u32(b);
        assert_ok(mom_rng_set_state(b, st));
        assert_string_equal(mom_rng_errmsg(b), "");
        assert_int_equal(mom_rng_u32(b), before); /* unchanged by the refused state */
        /* a cached-normal word without its flag is no state get_state writes */
        if ((st[3] >> 8) != 0)
            (void)mom_rng_normal(b); /* takes the cached normal */
        mom_rng_get_state(b, st);
        assert_true((st[3] >> 8) == 0);
        uint64_t odd[MOM_RNG_STATE_WORDS];
        memcpy(odd, st, sizeof odd);
        odd[4] = 0x4008000000000000u; /* the double 3.0 */
        assert_status(mom_rng_set_state(b, odd), MOM_E_FORMAT);
        uint64_t now[MOM_RNG_STATE_WORDS];
        mom_rng_get_state(b, now);
        assert_memory_equal(now, st, sizeof now);
    }
    assert_status(mom_rng_set_state(NULL, bad), MOM_E_INVALID);
    mom_rng_destroy(a);
    mom_rng_destroy(b);
}

/* A stream's block counter wraps after block 2^64 - 1 and the stream starts over; the state in
 * between (counter 0, outputs of the last block buffered) saves and restores like any other. */
static void test_state_counter_wrap(void **state)
{
    (void)state;
    mom_rng *a, *b, *fresh;
    assert_ok(mom_rng_create(&a, 77, 3, NULL));
    assert_ok(mom_rng_create(&b, 1, 1, NULL));
    assert_ok(mom_rng_create(&fresh, 77, 3, NULL));
    const uint64_t last[MOM_RNG_STATE_WORDS] = {77, 3, UINT64_MAX, 4, 0, 0};
    assert_ok(mom_rng_set_state(a, last));
    (void)mom_rng_u32(a); /* block 2^64 - 1 is drawn: the counter wraps to 0 */
    uint64_t st[MOM_RNG_STATE_WORDS];
    mom_rng_get_state(a, st);
    assert_true(st[2] == 0 && (st[3] & 0xff) == 1);
    assert_ok(mom_rng_set_state(b, st));
    for (int i = 0; i < 3; i++) /* the rest of the last block */
        assert_int_equal(mom_rng_u32(a), mom_rng_u32(b));
    for (int i = 0; i < 12; i++) { /* then the stream's first blocks again */
        uint32_t x = mom_rng_u32(fresh);
        assert_int_equal(mom_rng_u32(a), x);
        assert_int_equal(mom_rng_u32(b), x);
    }
    mom_rng_destroy(a);
    mom_rng_destroy(b);
    mom_rng_destroy(fresh);
}

static void test_create_failures(void **state)
{
    (void)state;
    assert_status(mom_rng_create(NULL, 1, 0, NULL), MOM_E_INVALID);
    for (long k = 1; k <= 1; k++) {
        test_alloc ta;
        test_alloc_init(&ta, k);
        mom_rng *r = (mom_rng *)&ta;
        assert_status(mom_rng_create(&r, 1, 0, &ta.a), MOM_E_NOMEM);
        assert_null(r);
        assert_int_equal(ta.live, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_stream_layout),
        cmocka_unit_test(test_golden_sequence),
        cmocka_unit_test(test_same_seed_same_numbers),
        cmocka_unit_test(test_uniform_properties),
        cmocka_unit_test(test_normal_properties),
        cmocka_unit_test(test_portable_log),
        cmocka_unit_test(test_below_unbiased),
        cmocka_unit_test(test_sample_without_replacement),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_state_counter_wrap),
        cmocka_unit_test(test_create_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
