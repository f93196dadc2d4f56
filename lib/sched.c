/* Schedules: immutable, reference-counted values of the step number t (sched.h). */
#include <math.h>
#include <string.h>

#include "sched_internal.h"

/* Allocate a schedule of `kind` with `extra` bytes after the struct (8-aligned, since the struct
 * size is a multiple of its alignment, which is at least that of uint64_t and double). */
static int sched_new(mom_sched **out, int kind, size_t extra, const mom_allocator *alloc)
{
    mom_allocator a;
    if (mom__alloc_init(&a, alloc) != MOM_OK)
        return MOM_E_INVALID;
    size_t bytes;
    if (!mom__add_size(&bytes, sizeof(mom_sched), extra))
        return MOM_E_NOMEM;
    mom_sched *s = mom__malloc(&a, bytes);
    if (s == NULL)
        return MOM_E_NOMEM;
    memset(s, 0, sizeof *s);
    s->alloc = a;
    atomic_init(&s->refs, 1);
    s->kind = kind;
    *out = s;
    return MOM_OK;
}

mom_sched *mom__sched_retain(mom_sched *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void mom__sched_release(mom_sched *s)
{
    /* Iterative, so that a long chain of wrappers cannot exhaust the stack. */
    while (s != NULL) {
        if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_release) != 1)
            return;
        atomic_thread_fence(memory_order_acquire);
        mom_sched *next = s->kind == MOM_SCHED_FINAL_PHASE ? s->u.fin.base : NULL;
        mom_allocator a = s->alloc;
        mom__free(&a, s);
        s = next;
    }
}

size_t mom__sched_refcount(const mom_sched *s)
{
    return s ? atomic_load_explicit(&((mom_sched *)s)->refs, memory_order_relaxed) : 0;
}

void mom_sched_destroy(mom_sched *sched) { mom__sched_release(sched); }

int mom_sched_kind_of(const mom_sched *sched) { return sched ? sched->kind : 0; }

int mom_sched_create_const(mom_sched **out, double value, const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    if (!isfinite(value))
        return MOM_E_INVALID;
    int rc = sched_new(out, MOM_SCHED_CONST, 0, alloc);
    if (rc == MOM_OK)
        (*out)->u.cst.value = value;
    return rc;
}

int mom_sched_create_paper_momentum(mom_sched **out, double mu_max, uint64_t period,
                                    const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    if (!(mu_max >= 0.0 && mu_max <= 1.0) || period == 0)
        return MOM_E_INVALID;
    int rc = sched_new(out, MOM_SCHED_PAPER_MOMENTUM, 0, alloc);
    if (rc == MOM_OK) {
        (*out)->u.paper.mu_max = mu_max;
        (*out)->u.paper.period = period;
    }
    return rc;
}

int mom_sched_create_piecewise(mom_sched **out, size_t n, const uint64_t *starts,
                               const double *values, const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    if (n == 0 || starts == NULL || values == NULL || starts[0] != 0)
        return MOM_E_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(values[i]) || (i > 0 && starts[i] <= starts[i - 1]))
            return MOM_E_INVALID;
    }
    size_t per, extra;
    if (!mom__add_size(&per, sizeof(uint64_t), sizeof(double)) || !mom__mul_size(&extra, n, per))
        return MOM_E_NOMEM;
    int rc = sched_new(out, MOM_SCHED_PIECEWISE, extra, alloc);
    if (rc != MOM_OK)
        return rc;
    mom_sched *s = *out;
    s->u.pw.n = n;
    s->u.pw.starts = (uint64_t *)(void *)(s + 1);
    s->u.pw.values = (double *)(void *)(s->u.pw.starts + n);
    memcpy(s->u.pw.starts, starts, n * sizeof *starts);
    memcpy(s->u.pw.values, values, n * sizeof *values);
    return MOM_OK;
}

int mom_sched_create_final_phase(mom_sched **out, mom_sched *base, uint64_t total,
                                 uint64_t final_steps, double value, int mode,
                                 const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    if (base == NULL || final_steps > total || !isfinite(value) ||
        (mode != MOM_FINAL_REPLACE && mode != MOM_FINAL_MIN))
        return MOM_E_INVALID;
    int rc = sched_new(out, MOM_SCHED_FINAL_PHASE, 0, alloc);
    if (rc != MOM_OK)
        return rc;
    mom_sched *s = *out;
    s->u.fin.base = mom__sched_retain(base);
    s->u.fin.total = total;
    s->u.fin.final_steps = final_steps;
    s->u.fin.value = value;
    s->u.fin.mode = mode;
    return MOM_OK;
}

int mom_sched_create_anneal(mom_sched **out, double v0, double a, double t0,
                            const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    if (!isfinite(v0) || !isfinite(a) || !(a > 0.0) || !isfinite(t0))
        return MOM_E_INVALID;
    int rc = sched_new(out, MOM_SCHED_ANNEAL, 0, alloc);
    if (rc == MOM_OK) {
        (*out)->u.ann.v0 = v0;
        (*out)->u.ann.a = a;
        (*out)->u.ann.t0 = t0;
    }
    return rc;
}

int mom_sched_create_callback(mom_sched **out, mom_sched_fn fn, void *user_data,
                              const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    if (fn == NULL)
        return MOM_E_INVALID;
    int rc = sched_new(out, MOM_SCHED_CALLBACK, 0, alloc);
    if (rc == MOM_OK) {
        (*out)->u.cb.fn = fn;
        (*out)->u.cb.user_data = user_data;
    }
    return rc;
}

/* 1 - 1/(2(k+1)) = (2k+1)/(2k+2), correctly rounded: for k < 2^52 both integers are exact in
 * double and IEEE division rounds once. Beyond that the value is within 2^-54 of 1 and rounds to
 * 1. */
static double paper_mu(uint64_t k)
{
    if (k >= (UINT64_C(1) << 52))
        return 1.0;
    double two_k = 2.0 * (double)k;
    return (two_k + 1.0) / (two_k + 2.0);
}

double mom_sched_value(const mom_sched *sched, uint64_t t)
{
    /* Final-phase wrappers are unwrapped in a loop (no recursion on long chains); MIN wrappers
     * accumulate a cap applied to the value found below them. A NaN (from a callback) is passed
     * through, never hidden by a cap. */
    double cap = INFINITY, r = NAN;
    while (sched != NULL) {
        switch (sched->kind) {
        case MOM_SCHED_CONST:
            r = sched->u.cst.value;
            goto done;
        case MOM_SCHED_PAPER_MOMENTUM: {
            double mu = paper_mu(t / sched->u.paper.period);
            r = mu < sched->u.paper.mu_max ? mu : sched->u.paper.mu_max;
            goto done;
        }
        case MOM_SCHED_PIECEWISE: {
            /* last i with starts[i] <= t (starts[0] == 0, so it exists) */
            size_t lo = 0, hi = sched->u.pw.n;
            while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (sched->u.pw.starts[mid] <= t)
                    lo = mid;
                else
                    hi = mid;
            }
            r = sched->u.pw.values[lo];
            goto done;
        }
        case MOM_SCHED_FINAL_PHASE: {
            const mom_sched *f = sched;
            sched = f->u.fin.base;
            if (f->u.fin.final_steps == 0 || t < f->u.fin.total - f->u.fin.final_steps)
                continue;
            if (f->u.fin.mode == MOM_FINAL_REPLACE) {
                r = f->u.fin.value;
                goto done;
            }
            if (f->u.fin.value < cap)
                cap = f->u.fin.value;
            continue;
        }
        case MOM_SCHED_ANNEAL: {
            double dt = (double)t - sched->u.ann.t0;
            r = sched->u.ann.v0;
            if (dt > 0.0 && sched->u.ann.a / dt < r)
                r = sched->u.ann.a / dt;
            goto done;
        }
        case MOM_SCHED_CALLBACK:
            r = sched->u.cb.fn(t, sched->u.cb.user_data);
            goto done;
        default:
            return NAN;
        }
    }
    return NAN;
done:
    return (isnan(r) || r < cap) ? r : cap;
}
