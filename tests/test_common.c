/* Tests of status codes, version queries and the allocator plumbing. */
#include "testutil.h"
#include "../lib/internal.h"

static void test_status_codes_pinned(void **state)
{
    (void)state;
    /* These values are part of the ABI and must never change. */
    assert_int_equal(MOM_OK, 0);
    assert_int_equal(MOM_E_INVALID, -1);
    assert_int_equal(MOM_E_NOMEM, -2);
    assert_int_equal(MOM_E_SHAPE, -3);
    assert_int_equal(MOM_E_STATE, -4);
    assert_int_equal(MOM_E_IO, -5);
    assert_int_equal(MOM_E_FORMAT, -6);
    assert_int_equal(MOM_E_DIVERGED, -7);
    assert_int_equal(MOM_E_UNSUPPORTED, -8);
    assert_int_equal(MOM_E_INTERNAL, -9);
}

static void test_strerror(void **state)
{
    (void)state;
    for (int s = 0; s >= -9; s--) {
        const char *msg = mom_strerror(s);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        assert_string_not_equal(msg, "unknown status");
        assert_string_not_equal(mom_status_name(s), "MOM_E_UNKNOWN");
        /* every code has its own text */
        for (int u = s + 1; u <= 0; u++)
            assert_string_not_equal(msg, mom_strerror(u));
    }
    assert_string_equal(mom_strerror(-10), "unknown status");
    assert_string_equal(mom_strerror(1), "unknown status");
    assert_string_equal(mom_status_name(-1000), "MOM_E_UNKNOWN");
    assert_string_equal(mom_status_name(MOM_E_SHAPE), "MOM_E_SHAPE");
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(mom_version_number(), MOM_VERSION_NUMBER);
    assert_string_equal(mom_version_string(), MOM_VERSION_STRING);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", MOM_VERSION_MAJOR, MOM_VERSION_MINOR, MOM_VERSION_PATCH);
    assert_string_equal(buf, mom_version_string());
    assert_int_equal(MOM_VERSION_NUMBER,
                     MOM_VERSION_MAJOR * 10000 + MOM_VERSION_MINOR * 100 + MOM_VERSION_PATCH);
}

static void test_size_arithmetic(void **state)
{
    (void)state;
    size_t r;
    assert_true(mom__mul_size(&r, 3, 7));
    assert_int_equal(r, 21);
    assert_false(mom__mul_size(&r, SIZE_MAX / 2 + 1, 2));
    assert_true(mom__add_size(&r, SIZE_MAX - 1, 1));
    assert_false(mom__add_size(&r, SIZE_MAX, 1));
}

static void test_allocator_rules(void **state)
{
    (void)state;
    mom_allocator dst;
    assert_int_equal(mom__alloc_init(&dst, NULL), MOM_OK);
    void *p = mom__malloc(&dst, 16);
    assert_non_null(p);
    p = mom__realloc(&dst, p, 64);
    assert_non_null(p);
    mom__free(&dst, p);
    mom__free(&dst, NULL);
    assert_null(mom__calloc(&dst, SIZE_MAX / 4, 8)); /* overflow refused, not wrapped */

    mom_allocator partial = {ta_alloc, NULL, ta_free, NULL};
    assert_int_equal(mom__alloc_init(&dst, &partial), MOM_E_INVALID);

    test_alloc ta;
    test_alloc_init(&ta, 0);
    mom_rng *rng = NULL;
    assert_ok(mom_rng_create(&rng, 1, 0, &ta.a));
    assert_int_equal(ta.live, 1);
    mom_rng_destroy(rng);
    assert_int_equal(ta.live, 0);

    /* An incomplete allocator is refused by constructors, with *out cleared. */
    rng = (mom_rng *)&ta;
    assert_status(mom_rng_create(&rng, 1, 0, &partial), MOM_E_INVALID);
    assert_null(rng);
}

static void test_fail_message(void **state)
{
    (void)state;
    mom__base b;
    mom__clear(&b);
    assert_string_equal(b.errmsg, "");
    assert_int_equal(mom__fail(&b, MOM_E_SHAPE, "x has %d rows", 3), MOM_E_SHAPE);
    assert_string_equal(b.errmsg, "x has 3 rows");
    /* long messages are truncated, never overflow */
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mom__fail(&b, MOM_E_INVALID, "%s", big);
    assert_int_equal(strlen(b.errmsg), MOM_ERRMSG_SIZE - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_codes_pinned),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_size_arithmetic),
        cmocka_unit_test(test_allocator_rules),
        cmocka_unit_test(test_fail_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
