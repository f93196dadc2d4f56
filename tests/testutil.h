/* Shared helpers for the CMocka test programs: a counting allocator that can fail the N-th
 * allocation, and a few numeric helpers. Header-only so each test stays one executable. */
#ifndef MOM_TESTUTIL_H
#define MOM_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "mominit/mominit.h"

/* Counting allocator: counts live blocks and calls; fails the fail_at-th allocation (1-based;
 * 0 = never). realloc counts as an allocation for failure injection. */
typedef struct test_alloc {
    mom_allocator a;
    long calls;   /* alloc + realloc calls so far */
    long live;    /* blocks currently allocated */
    long fail_at; /* 0: never fail */
    long failed;  /* allocations refused */
} test_alloc;

static void *ta_alloc(void *user, size_t size)
{
    test_alloc *t = user;
    t->calls++;
    if (t->fail_at > 0 && t->calls == t->fail_at) {
        t->failed++;
        return NULL;
    }
    void *p = malloc(size);
    if (p)
        t->live++;
    return p;
}

static void *ta_realloc(void *user, void *ptr, size_t size)
{
    test_alloc *t = user;
    t->calls++;
    if (t->fail_at > 0 && t->calls == t->fail_at) {
        t->failed++;
        return NULL;
    }
    return realloc(ptr, size);
}

static void ta_free(void *user, void *ptr)
{
    test_alloc *t = user;
    t->live--;
    free(ptr);
}

static inline void test_alloc_init(test_alloc *t, long fail_at)
{
    memset(t, 0, sizeof *t);
    t->a.alloc = ta_alloc;
    t->a.realloc = ta_realloc;
    t->a.free = ta_free;
    t->a.user = t;
    t->fail_at = fail_at;
}

/* Relative difference |a-b| / max(|a|, |b|, floor). */
static inline double rel_diff(double a, double b, double floor)
{
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    if (m < floor)
        m = floor;
    return fabs(a - b) / m;
}

/* Assert a status with a readable message. */
#define assert_status(expr, expected)                                                          \
    do {                                                                                       \
        int st_ = (expr);                                                                      \
        if (st_ != (expected))                                                                 \
            fail_msg("%s returned %s (%d), expected %s", #expr, mom_status_name(st_), st_,     \
                     mom_status_name(expected));                                               \
    } while (0)

#define assert_ok(expr) assert_status((expr), MOM_OK)

#endif
