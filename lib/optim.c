/* First-order optimizers with momentum: SGD, classical momentum (CM) and Nesterov's accelerated
 * gradient (NAG) in look-ahead form (optim.h, paper.md section 1).
 *
 * A step is begin (read mu_t and eps_t, form the gradient point) then end (check, then update).
 * A divergent step must change nothing, with no scratch memory. SGD and CM therefore update in
 * two passes over the vectors: a checking pass that computes every new velocity and parameter
 * without storing them and accumulates (x - x), which is 0 for a finite x and NaN otherwise;
 * then, only if everything was finite, a writing pass that recomputes the same values (same
 * expressions, so the same bits) and stores them. NAG needs no checking pass in the common case:
 * begin's pass (which forms the look-ahead point) also finds the largest magnitudes of the
 * parameters, the velocity and the point, the network reports the largest gradient entry (or
 * end reads the gradient once), and when these bounds rule out overflow the writing pass runs
 * alone (update_surely_finite()); otherwise the checking pass decides as for SGD and CM. Every
 * pass is one vectorized loop (see the kernels below).
 *
 * Floating-point mode: the public step functions run with subnormals flushed to zero when
 * MOM_OPTIM_FLUSH_SUBNORMALS is on (fpenv.h) and restore the caller's mode before returning.
 *
 * HF (MOM_OPTIM_HF) is another kind of this handle, implemented in hf.c: this file only dispatches
 * to it (creation, destruction, reset, the HF option keys, mom_optim_step_net()). HF needs
 * Gauss-Newton products, so it has no begin/end path; its state hangs off opt->hf. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "blas.h"
#include "fpenv.h"
#include "hf_internal.h"
#include "net_internal.h"
#include "optim_internal.h"

static const char null_optim_msg[] = "optimizer handle is NULL";

#define DEFAULT_LR 0.01
#define DEFAULT_MOMENTUM 0.9
#define DEFAULT_HF_STEP 1.0      /* HF: fixed step size (used with the line search off) */
#define DEFAULT_HF_CG_DECAY 0.95 /* HF: the momentum slot holds the CG start decay */

#define ENTER(opt)                                                                             \
    do {                                                                                       \
        if ((opt) == NULL)                                                                     \
            return MOM_E_INVALID;                                                              \
        mom__clear(&(opt)->base);                                                              \
    } while (0)

static const char *kind_name(int kind)
{
    switch (kind) {
    case MOM_OPTIM_SGD: return "SGD";
    case MOM_OPTIM_CM: return "CM";
    case MOM_OPTIM_NAG: return "NAG";
    case MOM_OPTIM_HF: return "HF";
    default: return "?";
    }
}

void mom_optim_destroy(mom_optim *opt)
{
    if (opt == NULL)
        return;
    mom_allocator a = opt->base.alloc;
    mom__sched_release(opt->lr);
    mom__sched_release(opt->momentum);
    if (opt->kind == MOM_OPTIM_HF)
        mom__hf_destroy(opt); /* velocity points into HF's buffers */
    else
        mom__free(&a, opt->mem); /* the one buffer allocation */
    mom__free(&a, opt);
}

int mom_optim_create(mom_optim **out, int kind, size_t n_params, const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    switch (kind) {
    case MOM_OPTIM_SGD:
    case MOM_OPTIM_CM:
    case MOM_OPTIM_NAG:
    case MOM_OPTIM_HF:
        break;
    default:
        return MOM_E_INVALID;
    }
    if (n_params == 0)
        return MOM_E_INVALID;
    mom_allocator a;
    if (mom__alloc_init(&a, alloc) != MOM_OK)
        return MOM_E_INVALID;
    const size_t n_bufs = kind == MOM_OPTIM_NAG ? 3 : 2, stride = mom__vec_stride(n_params);

    mom_optim *o = mom__calloc(&a, 1, sizeof *o);
    if (o == NULL)
        return MOM_E_NOMEM;
    o->base.alloc = a;
    o->kind = kind;
    o->n = n_params;
    o->flush = 1;
    if (kind == MOM_OPTIM_HF) {
        if (mom__hf_create(o) != MOM_OK ||
            mom_sched_create_const(&o->lr, DEFAULT_HF_STEP, &a) != MOM_OK ||
            mom_sched_create_const(&o->momentum, DEFAULT_HF_CG_DECAY, &a) != MOM_OK) {
            mom_optim_destroy(o);
            return MOM_E_NOMEM;
        }
        *out = o;
        return MOM_OK;
    }
    o->velocity = mom__vectors_alloc(&a, n_params, n_bufs, &o->mem);
    if (o->velocity == NULL || mom_sched_create_const(&o->lr, DEFAULT_LR, &a) != MOM_OK ||
        mom_sched_create_const(&o->momentum, DEFAULT_MOMENTUM, &a) != MOM_OK) {
        mom_optim_destroy(o);
        return MOM_E_NOMEM;
    }
    o->grad = o->velocity + stride;
    o->point = kind == MOM_OPTIM_NAG ? o->grad + stride : NULL;
    *out = o;
    return MOM_OK;
}

const char *mom_optim_errmsg(const mom_optim *opt)
{
    return opt ? opt->base.errmsg : null_optim_msg;
}

int mom_optim_kind_of(const mom_optim *opt) { return opt ? opt->kind : 0; }

static int set_sched(mom_optim *opt, mom_sched **slot, mom_sched *sched, const char *what)
{
    ENTER(opt);
    if (sched == NULL)
        return mom__fail(&opt->base, MOM_E_INVALID, "%s schedule is NULL", what);
    if (opt->begun)
        return mom__fail(&opt->base, MOM_E_STATE,
                         "cannot change the %s schedule between mom_optim_begin() and "
                         "mom_optim_end()", what);
    mom__sched_retain(sched); /* before the release: sched may be the current one */
    mom__sched_release(*slot);
    *slot = sched;
    return MOM_OK;
}

int mom_optim_set_lr(mom_optim *opt, mom_sched *sched)
{
    return set_sched(opt, opt ? &opt->lr : NULL, sched, "learning-rate");
}

int mom_optim_set_momentum(mom_optim *opt, mom_sched *sched)
{
    return set_sched(opt, opt ? &opt->momentum : NULL, sched, "momentum");
}

int mom_optim_set_cg_decay(mom_optim *opt, mom_sched *sched)
{
    ENTER(opt);
    if (opt->kind != MOM_OPTIM_HF)
        return mom__fail(&opt->base, MOM_E_UNSUPPORTED,
                         "the CG decay is an HF setting; this is a %s optimizer",
                         kind_name(opt->kind));
    return set_sched(opt, &opt->momentum, sched, "CG-decay");
}

int mom_optim_set(mom_optim *opt, int option, double value)
{
    ENTER(opt);
    if (mom__hf_is_option(option)) {
        if (opt->kind != MOM_OPTIM_HF)
            return mom__fail(&opt->base, MOM_E_UNSUPPORTED,
                             "option %d is an HF option; this is a %s optimizer", option,
                             kind_name(opt->kind));
        return mom__hf_set(opt, option, value);
    }
    if (option == MOM_OPTIM_FLUSH_SUBNORMALS) {
        if (!isfinite(value))
            return mom__fail(&opt->base, MOM_E_INVALID, "option value must be finite");
        if (opt->begun)
            return mom__fail(&opt->base, MOM_E_STATE,
                             "cannot change options between mom_optim_begin() and "
                             "mom_optim_end()");
        opt->flush = value != 0.0;
        return MOM_OK;
    }
    if (option == MOM_OPTIM_LOOKAHEAD)
        return mom__fail(&opt->base, MOM_E_INVALID,
                         "the look-ahead form is switched by mom_optim_set_lookahead(), which "
                         "converts the parameters");
    if (option == MOM_OPTIM_CLIP_NORM && opt->kind == MOM_OPTIM_HF)
        return mom__fail(&opt->base, MOM_E_UNSUPPORTED, "HF does not clip gradients");
    if (option != MOM_OPTIM_WEIGHT_DECAY && option != MOM_OPTIM_CLIP_NORM)
        return mom__fail(&opt->base, MOM_E_INVALID, "unknown optimizer option %d", option);
    if (!(value >= 0.0) || !(value <= FLT_MAX))
        return mom__fail(&opt->base, MOM_E_INVALID,
                         "%s must be finite and >= 0 (got %g)",
                         option == MOM_OPTIM_WEIGHT_DECAY ? "weight decay" : "clip norm", value);
    if (opt->begun)
        return mom__fail(&opt->base, MOM_E_STATE,
                         "cannot change options between mom_optim_begin() and mom_optim_end()");
    if (option == MOM_OPTIM_WEIGHT_DECAY)
        opt->weight_decay = value;
    else
        opt->clip_norm = value;
    return MOM_OK;
}

int mom_optim_get(double *value, const mom_optim *opt, int option)
{
    if (opt == NULL)
        return MOM_E_INVALID;
    /* A query: the detail message is written only on failure, so that concurrent successful
     * queries never write to the handle. */
    mom__base *b = (mom__base *)&opt->base;
    if (value == NULL)
        return mom__fail(b, MOM_E_INVALID, "value output pointer is NULL");
    if (mom__hf_is_option(option)) {
        if (opt->kind != MOM_OPTIM_HF)
            return mom__fail(b, MOM_E_UNSUPPORTED,
                             "option %d is an HF option; this is a %s optimizer", option,
                             kind_name(opt->kind));
        return mom__hf_get(value, opt, option);
    }
    switch (option) {
    case MOM_OPTIM_WEIGHT_DECAY:
        *value = opt->weight_decay;
        return MOM_OK;
    case MOM_OPTIM_CLIP_NORM:
        *value = opt->clip_norm;
        return MOM_OK;
    case MOM_OPTIM_FLUSH_SUBNORMALS:
        *value = opt->flush;
        return MOM_OK;
    case MOM_OPTIM_LOOKAHEAD:
        *value = opt->la ? 1.0 : 0.0;
        return MOM_OK;
    default:
        return mom__fail(b, MOM_E_INVALID, "unknown optimizer option %d", option);
    }
}

/* ---- the first-order step --------------------------------------------------------------------
 *
 * Kernels. Each is one plain contiguous loop, compiled for AVX-512, AVX2 and the baseline ISA
 * (MOM__CLONES; the clones compute the same IEEE operations in the same order, no FMA
 * contraction, so the results do not depend on which one runs). At -O2 GCC vectorizes only loops
 * that need no runtime checks or epilogue, so these functions ask for its dynamic cost model and
 * (values are not affected: nothing here reads floating-point exception flags) no trapping math.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math", "vect-cost-model=dynamic")
#endif

/* |x| as its bit pattern: ordered like |x| for finite values, and >= 0x7f800000 exactly for
 * infinities and NaNs, so an integer max over a vector finds both its largest magnitude and any
 * non-finite entry (order-free: the loops vectorize). */
static inline uint32_t abs_bits(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b & 0x7fffffffu;
}

#define NONFINITE_BITS 0x7f800000u

/* NAG's look-ahead point pt = th + mu v, with the magnitude maxima of th, v and pt (abs_bits). */
MOM__CLONES static void nag_point_kernel(size_t n, float *restrict pt, const float *restrict th,
                                         const float *restrict v, float mu, uint32_t *max_th,
                                         uint32_t *max_v, uint32_t *max_pt)
{
    uint32_t mt = 0, mv = 0, mp = 0;
    for (size_t i = 0; i < n; i++) {
        float a = th[i], b = v[i];
        float p = a + mu * b;
        pt[i] = p;
        uint32_t xa = abs_bits(a), xb = abs_bits(b), xp = abs_bits(p);
        mt = xa > mt ? xa : mt;
        mv = xb > mv ? xb : mv;
        mp = xp > mp ? xp : mp;
    }
    *max_th = mt;
    *max_v = mv;
    *max_pt = mp;
}

/* Largest abs_bits of a vector. */
MOM__CLONES static uint32_t max_bits_kernel(size_t n, const float *restrict x)
{
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = abs_bits(x[i]);
        m = b > m ? b : m;
    }
    return m;
}

/* The gradient the update uses: s * (g + w p), with w the weight decay, p the gradient point and
 * s the clipping scale. Written with the flags as arguments so that each caller below, passing
 * constants, gets a loop without the unused terms. */
static inline float eff_grad(const float *g, const float *p, size_t i, float wd, float sc,
                             int has_wd, int has_sc)
{
    float gi = g[i];
    if (has_wd)
        gi += wd * p[i];
    if (has_sc)
        gi *= sc;
    return gi;
}

/* Bits of x - x: +0 (all bits clear) for a finite x, a NaN (some bits set) otherwise. */
static inline uint32_t nonfinite_bits(float x)
{
    float z = x - x;
    uint32_t b;
    memcpy(&b, &z, sizeof b);
    return b;
}

/* Checking pass: nonzero if any new velocity or parameter would be non-finite. An integer OR
 * keeps the reduction order-free, so the loop vectorizes. */
static inline uint32_t check_kernel(size_t n, const float *th, const float *v, const float *g,
                                    const float *p, float mu, float eps, float wd, float sc,
                                    int has_wd, int has_sc)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float vn = mu * v[i] - eps * eff_grad(g, p, i, wd, sc, has_wd, has_sc);
        float tn = th[i] + vn;
        bad |= nonfinite_bits(vn) | nonfinite_bits(tn);
    }
    return bad;
}

/* Writing pass: the same values as check_kernel, stored. p may equal th (SGD, CM): element i of p
 * is read before element i of th is written, and no other element is involved. */
static inline void write_kernel(size_t n, float *th, float *restrict v, const float *g,
                                const float *p, float mu, float eps, float wd, float sc,
                                int has_wd, int has_sc)
{
    for (size_t i = 0; i < n; i++) {
        float vn = mu * v[i] - eps * eff_grad(g, p, i, wd, sc, has_wd, has_sc);
        v[i] = vn;
        th[i] = th[i] + vn;
    }
}

MOM__CLONES static uint32_t check_pass(size_t n, const float *th, const float *v, const float *g,
                                       const float *p, float mu, float eps, float wd, float sc)
{
    if (wd == 0.0f)
        return sc == 1.0f ? check_kernel(n, th, v, g, p, mu, eps, wd, sc, 0, 0)
                          : check_kernel(n, th, v, g, p, mu, eps, wd, sc, 0, 1);
    return sc == 1.0f ? check_kernel(n, th, v, g, p, mu, eps, wd, sc, 1, 0)
                      : check_kernel(n, th, v, g, p, mu, eps, wd, sc, 1, 1);
}

/* th and p are distinct here (NAG): the write pass then needs no care about their overlap. */
MOM__CLONES static void write_pass_nag(size_t n, float *restrict th, float *restrict v,
                                       const float *restrict g, const float *restrict p, float mu,
                                       float eps, float wd, float sc)
{
    if (wd == 0.0f) {
        if (sc == 1.0f)
            write_kernel(n, th, v, g, p, mu, eps, wd, sc, 0, 0);
        else
            write_kernel(n, th, v, g, p, mu, eps, wd, sc, 0, 1);
    } else {
        if (sc == 1.0f)
            write_kernel(n, th, v, g, p, mu, eps, wd, sc, 1, 0);
        else
            write_kernel(n, th, v, g, p, mu, eps, wd, sc, 1, 1);
    }
}

/* SGD and CM: p is th itself. */
MOM__CLONES static void write_pass_same(size_t n, float *restrict th, float *restrict v,
                                        const float *restrict g, float mu, float eps, float wd,
                                        float sc)
{
    if (wd == 0.0f) {
        if (sc == 1.0f)
            write_kernel(n, th, v, g, th, mu, eps, wd, sc, 0, 0);
        else
            write_kernel(n, th, v, g, th, mu, eps, wd, sc, 0, 1);
    } else {
        if (sc == 1.0f)
            write_kernel(n, th, v, g, th, mu, eps, wd, sc, 1, 0);
        else
            write_kernel(n, th, v, g, th, mu, eps, wd, sc, 1, 1);
    }
}

/* ---- NAG in look-ahead form (mom_optim_set_lookahead()) --------------------------------------
 * The vector phi holds theta + mu v, where the gradient is taken. With mu = mu_t (phi was
 * formed with it) and the effective gradient ge = s (g + w phi):
 *     v'   = mu v - eps ge                     (the same expression as the true-theta form)
 *     phi' = phi + (mu v' - eps ge)            (= theta' + mu v', theta' = theta + v')
 * so phi is read and written once per step, with no look-ahead buffer. The write kernel also
 * returns the largest abs_bits of v', which the next step's overflow guard uses. */
static inline uint32_t la_check_kernel(size_t n, const float *phi, const float *v, const float *g,
                                       float mu, float eps, float wd, float sc, int has_wd,
                                       int has_sc)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float ge = eff_grad(g, phi, i, wd, sc, has_wd, has_sc);
        float vn = mu * v[i] - eps * ge;
        float pn = phi[i] + (mu * vn - eps * ge);
        bad |= nonfinite_bits(vn) | nonfinite_bits(pn);
    }
    return bad;
}

/* out may equal phi (the common case) or be another vector (a step whose point was re-formed
 * into the look-ahead buffer: phi is then that buffer and out the caller's vector). */
static inline uint32_t la_write_kernel(size_t n, float *out, const float *phi,
                                       float *restrict v, const float *restrict g, float mu,
                                       float eps, float wd, float sc, int has_wd, int has_sc)
{
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        float ge = eff_grad(g, phi, i, wd, sc, has_wd, has_sc);
        float vn = mu * v[i] - eps * ge;
        v[i] = vn;
        out[i] = phi[i] + (mu * vn - eps * ge);
        uint32_t b = abs_bits(vn);
        m = b > m ? b : m;
    }
    return m;
}

MOM__CLONES static uint32_t la_check_pass(size_t n, const float *phi, const float *v,
                                          const float *g, float mu, float eps, float wd, float sc)
{
    if (wd == 0.0f)
        return sc == 1.0f ? la_check_kernel(n, phi, v, g, mu, eps, wd, sc, 0, 0)
                          : la_check_kernel(n, phi, v, g, mu, eps, wd, sc, 0, 1);
    return sc == 1.0f ? la_check_kernel(n, phi, v, g, mu, eps, wd, sc, 1, 0)
                      : la_check_kernel(n, phi, v, g, mu, eps, wd, sc, 1, 1);
}

MOM__CLONES static uint32_t la_write_pass(size_t n, float *restrict phi, float *restrict v,
                                          const float *restrict g, float mu, float eps, float wd,
                                          float sc)
{
    if (wd == 0.0f)
        return sc == 1.0f ? la_write_kernel(n, phi, phi, v, g, mu, eps, wd, sc, 0, 0)
                          : la_write_kernel(n, phi, phi, v, g, mu, eps, wd, sc, 0, 1);
    return sc == 1.0f ? la_write_kernel(n, phi, phi, v, g, mu, eps, wd, sc, 1, 0)
                      : la_write_kernel(n, phi, phi, v, g, mu, eps, wd, sc, 1, 1);
}

/* The same from a re-formed point pt into the caller's vector out (distinct vectors). */
MOM__CLONES static uint32_t la_write_pass_from(size_t n, float *restrict out,
                                               const float *restrict pt, float *restrict v,
                                               const float *restrict g, float mu, float eps,
                                               float wd, float sc)
{
    if (wd == 0.0f)
        return sc == 1.0f ? la_write_kernel(n, out, pt, v, g, mu, eps, wd, sc, 0, 0)
                          : la_write_kernel(n, out, pt, v, g, mu, eps, wd, sc, 0, 1);
    return sc == 1.0f ? la_write_kernel(n, out, pt, v, g, mu, eps, wd, sc, 1, 0)
                      : la_write_kernel(n, out, pt, v, g, mu, eps, wd, sc, 1, 1);
}

/* x + c v in place: forming (c = mu) or undoing (c = -mu) the look-ahead point (a copy into
 * another vector is nag_point_kernel()). shift_check() is nonzero if any result would be
 * non-finite. */
MOM__CLONES static uint32_t shift_check(size_t n, const float *restrict x, const float *restrict v,
                                        float c)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= nonfinite_bits(x[i] + c * v[i]);
    return bad;
}

MOM__CLONES static void shift_inplace(size_t n, float *restrict x, const float *restrict v,
                                      float c)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] + c * v[i];
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

static float bits_float(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* ---- NAG's passes shared with a network's helper threads (team.h) ---------------------------
 * Inside mom_optim_step_net() the network's team may share the two streaming passes of a NAG
 * step (begin's look-ahead point, end's update) by ranges of parameters. Every element is
 * computed by the same expression wherever it runs, and the maxima of begin's pass combine
 * exactly, so the results are the bits of the serial passes (and of mom_optim_begin() / end()).
 * Ranges start at multiples of 16 floats (a cache line) so that no two threads write one line. */

#define UPD_LEAST 65536 /* parameters: below this the passes stay on the caller */
#define UPD_GRAIN 65536

typedef struct upd_job {
    size_t n;
    float *th, *v, *pt;
    const float *g;
    float mu, eps, wd, sc;
    uint32_t mt[MOM__TEAM_MAX_PARTS], mv[MOM__TEAM_MAX_PARTS], mp[MOM__TEAM_MAX_PARTS];
} upd_job;

static size_t upd_start(size_t n, size_t part, size_t parts)
{
    size_t i = n * part / parts;
    return part == parts ? n : i & ~(size_t)15;
}

static void job_point(void *arg, size_t part, size_t parts)
{
    upd_job *j = arg;
    size_t i0 = upd_start(j->n, part, parts), i1 = upd_start(j->n, part + 1, parts);
    nag_point_kernel(i1 - i0, j->pt + i0, j->th + i0, j->v + i0, j->mu, &j->mt[part],
                     &j->mv[part], &j->mp[part]);
}

static void job_write(void *arg, size_t part, size_t parts)
{
    upd_job *j = arg;
    size_t i0 = upd_start(j->n, part, parts), i1 = upd_start(j->n, part + 1, parts);
    write_pass_nag(i1 - i0, j->th + i0, j->v + i0, j->g + i0, j->pt + i0, j->mu, j->eps, j->wd,
                   j->sc);
}

static void job_la_write(void *arg, size_t part, size_t parts)
{
    upd_job *j = arg;
    size_t i0 = upd_start(j->n, part, parts), i1 = upd_start(j->n, part + 1, parts);
    j->mv[part] = j->pt == NULL
                      ? la_write_pass(i1 - i0, j->th + i0, j->v + i0, j->g + i0, j->mu, j->eps,
                                      j->wd, j->sc)
                      : la_write_pass_from(i1 - i0, j->th + i0, j->pt + i0, j->v + i0,
                                           j->g + i0, j->mu, j->eps, j->wd, j->sc);
}

static size_t upd_parts(const mom__team *team, size_t n)
{
    return team ? mom__team_parts(n, n / 16, UPD_LEAST, UPD_GRAIN) : 1;
}

/* begin's NAG pass over the range [off, off + len) of the vectors, on the team's threads when
 * given one: the look-ahead point of the range, its magnitude maxima merged into o->max_th,
 * max_v and max_pt (which the caller clears before the first range). Returns the largest
 * abs_bits of the range's point values. */
static uint32_t nag_point_range(mom_optim *o, mom__team *team, float *params, float mu, size_t off,
                                size_t len)
{
    size_t parts = upd_parts(team, len);
    uint32_t mt = 0, mv = 0, mp = 0;
    if (parts == 1) {
        nag_point_kernel(len, o->point + off, params + off, o->velocity + off, mu, &mt, &mv, &mp);
    } else {
        upd_job j = {.n = len, .th = params + off, .v = o->velocity + off, .pt = o->point + off,
                     .mu = mu};
        mom__team_run(team, job_point, &j, parts);
        for (size_t q = 0; q < parts; q++) {
            mt = j.mt[q] > mt ? j.mt[q] : mt;
            mv = j.mv[q] > mv ? j.mv[q] : mv;
            mp = j.mp[q] > mp ? j.mp[q] : mp;
        }
    }
    o->max_th = mt > o->max_th ? mt : o->max_th;
    o->max_v = mv > o->max_v ? mv : o->max_v;
    o->max_pt = mp > o->max_pt ? mp : o->max_pt;
    return mp;
}

static void nag_point(mom_optim *o, mom__team *team, float *params, float mu)
{
    o->max_th = o->max_v = o->max_pt = 0;
    (void)nag_point_range(o, team, params, mu, 0, o->n);
}

/* end's NAG writing pass over [off, off + len), on the team's threads when given one. */
static void nag_write_range(mom_optim *o, mom__team *team, float *params, const float *grad,
                            float wd, float sc, size_t off, size_t len)
{
    size_t parts = upd_parts(team, len);
    if (parts == 1) {
        write_pass_nag(len, params + off, o->velocity + off, grad + off, o->point + off,
                       o->step_mu, o->step_lr, wd, sc);
        return;
    }
    upd_job j = {.n = len, .th = params + off, .v = o->velocity + off, .pt = o->point + off,
                 .g = grad + off, .mu = o->step_mu, .eps = o->step_lr, .wd = wd, .sc = sc};
    mom__team_run(team, job_write, &j, parts);
}

static void nag_write(mom_optim *o, mom__team *team, float *params, const float *grad, float wd,
                      float sc)
{
    nag_write_range(o, team, params, grad, wd, sc, 0, o->n);
}

/* Look-ahead form: the largest abs_bits of phi over [off, off + len), merged into o->max_th and
 * o->max_pt (phi is both the parameter vector and the gradient point), and returned. On the
 * calling thread: a read of a layer just before its forward product reads it; sharing it cost a
 * helper's wake-up for more than it saved (CURVES at 2 threads: NAG step 1.119x of the products
 * with it shared, 1.095x without, medians of paired bench_step runs). */
static uint32_t la_max_range(mom_optim *o, const float *phi, size_t off, size_t len)
{
    uint32_t m = max_bits_kernel(len, phi + off);
    o->max_th = m > o->max_th ? m : o->max_th;
    o->max_pt = o->max_th;
    return m;
}

/* Look-ahead form: the writing pass over [off, off + len), from the caller's vector phi itself,
 * or (a step whose point was re-formed, o->la_rebase) from the look-ahead buffer into phi; the
 * largest |v'| goes into o->la_vmax_next. */
static void la_write_range(mom_optim *o, mom__team *team, float *phi, const float *grad, float wd,
                           float sc, size_t off, size_t len)
{
    size_t parts = upd_parts(team, len);
    const float *pt = o->la_rebase ? o->point + off : NULL;
    uint32_t m = 0;
    if (parts == 1) {
        m = pt == NULL ? la_write_pass(len, phi + off, o->velocity + off, grad + off, o->step_mu,
                                       o->step_lr, wd, sc)
                       : la_write_pass_from(len, phi + off, pt, o->velocity + off, grad + off,
                                            o->step_mu, o->step_lr, wd, sc);
    } else {
        upd_job j = {.n = len, .th = phi + off, .pt = (float *)pt, .v = o->velocity + off,
                     .g = grad + off, .mu = o->step_mu, .eps = o->step_lr, .wd = wd, .sc = sc};
        mom__team_run(team, job_la_write, &j, parts);
        for (size_t q = 0; q < parts; q++)
            m = j.mv[q] > m ? j.mv[q] : m;
    }
    o->la_vmax_next = m > o->la_vmax_next ? m : o->la_vmax_next;
}

/* NAG's overflow guard without a checking pass. With every |th| <= T, |v| <= V, |p| <= Pm and
 * |g| <= G (all finite), the float intermediate g + w p is at most G + w Pm, each new velocity at
 * most mu V + eps s (G + w Pm) and each new parameter at most T + that (the look-ahead form:
 * T + twice that), up to a relative rounding error below 2^-21 (a few float operations); when
 * these bounds are below FLT_MAX / 2 no intermediate or new value can be infinite or NaN, so the
 * step is safe without checking each one. Otherwise the caller runs the exact checking pass.
 * (The intermediate needs its own test: with a tiny eps, g + w p can overflow in float while the
 * bound on the new values is small.) */
static int update_surely_finite(const mom_optim *o, uint32_t max_g, float wd, float sc)
{
    if (o->max_th >= NONFINITE_BITS || o->max_v >= NONFINITE_BITS ||
        o->max_pt >= NONFINITE_BITS || max_g >= NONFINITE_BITS)
        return 0;
    double bd = (double)bits_float(max_g) + (double)wd * bits_float(o->max_pt);
    if (!(bd * 1.0001 < 0.5 * (double)FLT_MAX))
        return 0;
    double bv = (double)o->step_mu * bits_float(o->max_v) + (double)o->step_lr * (double)sc * bd;
    double bt = (double)bits_float(o->max_th) + bv;
    if (o->la) /* |phi'| <= |phi| + eps s |g + w phi| + mu |v'|, each of the last two <= bv */
        bt += bv;
    return bt * 1.0001 < 0.5 * (double)FLT_MAX;
}

/* begin without the public entry's floating-point setup (mom_optim_step_net() shares it, with
 * its network's team; NULL: no helpers). With defer_point set (NAG inside a fused step) the
 * look-ahead point is left to the network's hooks, range by range. */
static int begin_impl(const float **point, mom_optim *opt, float *params, mom__team *team,
                      int defer_point, mom__fpenv *fe)
{
    if (opt->kind == MOM_OPTIM_HF)
        return mom__fail(&opt->base, MOM_E_UNSUPPORTED,
                         "HF has no begin/end path: use mom_optim_step_hf() or "
                         "mom_optim_step_hf_model()");
    if (point == NULL || params == NULL)
        return mom__fail(&opt->base, MOM_E_INVALID, "%s is NULL",
                         point == NULL ? "point output pointer" : "params");
    if (opt->begun)
        return mom__fail(&opt->base, MOM_E_STATE,
                         "a step is already begun (call mom_optim_end() or mom_optim_cancel())");
    if (opt->t >= MOM__STEPS_LAST)
        return mom__fail(&opt->base, MOM_E_STATE,
                         "the step counter is at its last value, 2^64 - 2");
    /* the schedules (a user's callback among them) run in the caller's floating-point mode */
    mom__fpenv_pause(fe);
    double eps = mom_sched_value(opt->lr, opt->t);
    double mu = opt->kind != MOM_OPTIM_SGD ? mom_sched_value(opt->momentum, opt->t) : 0.0;
    mom__fpenv_resume(fe);
    if (!(eps >= 0.0 && eps <= FLT_MAX))
        return mom__fail(&opt->base, MOM_E_INVALID,
                         "learning rate %g at step %llu is negative or not a finite float", eps,
                         (unsigned long long)opt->t);
    if (opt->kind != MOM_OPTIM_SGD) {
        if (!(mu >= 0.0 && mu <= 1.0))
            return mom__fail(&opt->base, MOM_E_INVALID,
                             "momentum %g at step %llu is outside [0, 1]", mu,
                             (unsigned long long)opt->t);
    }
    const float muf = (float)mu;
    if (opt->kind == MOM_OPTIM_NAG && opt->la) {
        /* the caller's vector is the point already, unless the momentum changed since it was
         * formed: then this step takes its gradient at phi + (mu_t - mu_old) v, formed in the
         * look-ahead buffer, and end writes the new phi from there (so a failed step leaves
         * the caller's vector as it was) */
        if (!opt->la_vmax_ok) {
            opt->la_vmax = max_bits_kernel(opt->n, opt->velocity);
            opt->la_vmax_ok = 1;
        }
        opt->la_vmax_next = 0;
        opt->la_rebase = muf != opt->la_mu;
        if (opt->la_rebase) {
            nag_point(opt, team, params, (float)((double)muf - (double)opt->la_mu));
            opt->max_th = opt->max_pt; /* the bound's |phi| is the point's */
            *point = opt->point;
        } else {
            opt->max_th = opt->max_pt = 0; /* measured by the hooks or by end */
            *point = params;
        }
        opt->max_v = opt->la_vmax;
    } else if (opt->kind == MOM_OPTIM_NAG) {
        if (defer_point)
            opt->max_th = opt->max_v = opt->max_pt = 0;
        else
            nag_point(opt, team, params, muf);
        *point = opt->point;
    } else {
        *point = params;
    }
    opt->step_mu = muf;
    opt->step_lr = (float)eps;
    opt->begun_params = params;
    opt->begun = 1;
    return MOM_OK;
}

int mom_optim_begin(const float **point, mom_optim *opt, float *params)
{
    ENTER(opt);
    mom__fpenv fe;
    mom__fpenv_enter(&fe, opt->flush);
    int rc = begin_impl(point, opt, params, NULL, 0, &fe);
    mom__fpenv_leave(&fe);
    return rc;
}

int mom_optim_cancel(mom_optim *opt)
{
    ENTER(opt);
    if (!opt->begun)
        return mom__fail(&opt->base, MOM_E_STATE, "no step is begun");
    opt->la_rebase = 0;
    opt->begun = 0;
    opt->begun_params = NULL;
    return MOM_OK;
}

/* Explain a divergence found by the checking pass (slow path only). */
static int diverged(mom_optim *o, const float *th, const float *g, const float *p, float wd,
                    float sc)
{
    const size_t n = o->n;
    size_t i = mom__first_nonfinite(g, n);
    if (i < n)
        return mom__fail(&o->base, MOM_E_DIVERGED, "gradient[%zu] = %g is not finite", i,
                         (double)g[i]);
    i = mom__first_nonfinite(th, n);
    if (i < n && o->la && o->la_rebase) /* th is the point re-formed for a new momentum */
        return mom__fail(&o->base, MOM_E_DIVERGED,
                         "the look-ahead point re-formed for momentum %g is not finite at %zu "
                         "(%g: params + (mu_t - %g) v overflowed); state unchanged",
                         (double)o->step_mu, i, (double)th[i], (double)o->la_mu);
    if (i < n)
        return mom__fail(&o->base, MOM_E_DIVERGED, "params[%zu] = %g was not finite before the step",
                         i, (double)th[i]);
    for (i = 0; i < n; i++) {
        float gi = g[i];
        if (wd != 0.0f)
            gi += wd * p[i];
        if (sc != 1.0f)
            gi *= sc;
        float vn = o->step_mu * o->velocity[i] - o->step_lr * gi;
        float tn = o->la ? th[i] + (o->step_mu * vn - o->step_lr * gi) : th[i] + vn;
        if (!isfinite(vn) || !isfinite(tn))
            return mom__fail(&o->base, MOM_E_DIVERGED,
                             "the update of parameter %zu is not finite (velocity %g, parameter "
                             "%g); state unchanged",
                             i, (double)vn, (double)tn);
    }
    return mom__fail(&o->base, MOM_E_DIVERGED, "the update is not finite; state unchanged");
}

/* end without the public entry's floating-point setup. max_g: the largest abs_bits of grad when
 * the caller knows it (mom_optim_step_net() gets it from the network), else NO_MAX_G. team: the
 * network's helpers for the writing pass, or NULL. */
#define NO_MAX_G 0xffffffffu
static int end_impl(mom_optim *opt, float *params, double loss, const float *grad, uint32_t max_g,
                    mom__team *team)
{
    if (opt->kind == MOM_OPTIM_HF)
        return mom__fail(&opt->base, MOM_E_UNSUPPORTED,
                         "HF has no begin/end path: use mom_optim_step_hf() or "
                         "mom_optim_step_hf_model()");
    if (!opt->begun)
        return mom__fail(&opt->base, MOM_E_STATE, "no step is begun (call mom_optim_begin())");
    if (params != opt->begun_params)
        return mom__fail(&opt->base, MOM_E_STATE,
                         "params is not the vector given to mom_optim_begin()");
    if (grad == NULL)
        return mom__fail(&opt->base, MOM_E_INVALID, "grad is NULL");
    if (grad == params)
        return mom__fail(&opt->base, MOM_E_INVALID, "grad must not alias params");
    if (!isfinite(loss))
        return mom__fail(&opt->base, MOM_E_DIVERGED, "loss is %g; state unchanged", loss);

    const size_t n = opt->n;
    const int nag = opt->kind == MOM_OPTIM_NAG, la = nag && opt->la;
    /* the gradient point: NAG's buffer (and, in the look-ahead form, the caller's vector unless
     * this step re-formed the point) */
    const float *p = !nag || (la && !opt->la_rebase) ? params : opt->point;
    const float wd = (float)opt->weight_decay;
    float sc = 1.0f;
    if (opt->clip_norm > 0.0) {
        double norm;
        if (wd == 0.0f) {
            norm = mom__nrm2(n, grad);
        } else {
            double ss = 0.0;
            for (size_t i = 0; i < n; i++) {
                float gi = grad[i] + wd * p[i];
                ss += (double)gi * (double)gi;
            }
            norm = sqrt(ss);
        }
        if (!isfinite(norm))
            return diverged(opt, params, grad, p, wd, 1.0f);
        if (norm > opt->clip_norm)
            sc = (float)(opt->clip_norm / norm);
    }
    /* NAG: begin's pass measured params, velocity and point; one read of the gradient (or none,
     * when the network reported its maximum) is enough to rule out overflow, and then the update
     * is a single pass. Otherwise (SGD, CM, or values near overflow): check every new value
     * first, so that a divergent step changes nothing. */
    int safe = 0;
    if (nag) {
        if (max_g == NO_MAX_G)
            max_g = max_bits_kernel(n, grad);
        if (la && !opt->la_rebase) /* the bound needs |phi|, which no begin pass measured */
            opt->max_th = opt->max_pt = max_bits_kernel(n, params);
        safe = update_surely_finite(opt, max_g, wd, sc);
    }
    if (!safe &&
        (la ? la_check_pass(n, p, opt->velocity, grad, opt->step_mu, opt->step_lr, wd, sc)
            : check_pass(n, params, opt->velocity, grad, p, opt->step_mu, opt->step_lr, wd,
                         sc)) != 0)
        return diverged(opt, la ? p : params, grad, p, wd, sc);
    if (la) {
        opt->la_vmax_next = 0;
        la_write_range(opt, team, params, grad, wd, sc, 0, n);
        opt->la_vmax = opt->la_vmax_next;
        opt->la_mu = opt->step_mu; /* the new phi holds mu_t */
        opt->la_rebase = 0;
    } else if (nag)
        nag_write(opt, team, params, grad, wd, sc);
    else
        write_pass_same(n, params, opt->velocity, grad, opt->step_mu, opt->step_lr, wd, sc);
    opt->t++;
    opt->begun = 0;
    opt->begun_params = NULL;
    return MOM_OK;
}

int mom_optim_end(mom_optim *opt, float *params, double loss, const float *grad)
{
    ENTER(opt);
    mom__fpenv fe;
    mom__fpenv_enter(&fe, opt->flush);
    int rc = end_impl(opt, params, loss, grad, NO_MAX_G, NULL);
    mom__fpenv_leave(&fe);
    return rc;
}

/* ---- NAG fused into a feedforward loss and gradient (mom__nag_fuse, net_internal.h) --------
 * The same passes as begin + loss_grad + end, cut by parameter blocks and run where the network
 * reaches each block: the look-ahead point of a layer just before the forward product that
 * reads it, and the update of a block as soon as its gradient is final, while it is still in
 * cache. Every element gets the same expressions, so the results are the bits of the unfused
 * step. A divergent step must change nothing, and the first block is updated before the last
 * gradient exists: so the update runs in place only if, after the forward pass, the loss is
 * finite and the network's bound on every gradient entry rules out overflow (the test of
 * update_surely_finite()); otherwise the network finishes a plain gradient and end runs as
 * usual. */
typedef struct fused_nag {
    mom_optim *o;
    mom__team *team;
    float *th;
    float mu, wd;
    int in_place;
} fused_nag;

static uint32_t fused_point(void *ctx, size_t off, size_t len)
{
    fused_nag *f = ctx;
    if (f->o->la) /* the point is the parameter vector: measure it only */
        return la_max_range(f->o, f->th, off, len);
    return nag_point_range(f->o, f->team, f->th, f->mu, off, len);
}

static int fused_decide(void *ctx, double loss, double max_g)
{
    fused_nag *f = ctx;
    f->in_place = 0;
    if (!isfinite(loss) || !(max_g <= 0.5 * FLT_MAX))
        return 0;
    float g = (float)max_g;
    if ((double)g < max_g) /* round the bound up */
        g = nextafterf(g, INFINITY);
    f->in_place = update_surely_finite(f->o, abs_bits(g), f->wd, 1.0f);
    return f->in_place;
}

static void fused_update(void *ctx, size_t off, size_t len)
{
    fused_nag *f = ctx;
    if (f->o->la)
        la_write_range(f->o, f->team, f->th, f->o->grad, f->wd, 1.0f, off, len);
    else
        nag_write_range(f->o, f->team, f->th, f->o->grad, f->wd, 1.0f, off, len);
}

/* fe: the mode the public entry entered (the schedules run outside it, in the caller's) */
static int step_first_order(double *loss, mom_optim *opt, mom_net *net, const mom_batch *batch,
                            mom__fpenv *fe)
{
    /* equal options give equal modes: only differing ones need the network's mode restored */
    mom__fpenv *net_fe = opt->flush != net->flush ? fe : NULL;
    float *theta = mom_net_params(net);
    const float *point = NULL; /* set by begin_impl() when it succeeds */
    /* fused when nothing must see the whole gradient before the update (a reduction across
     * workers, the clipping norm), and when the fused passes, which run in the network's
     * floating-point mode, would run in the same mode outside it */
    int fuse = opt->kind == MOM_OPTIM_NAG && opt->reduce == NULL && !(opt->clip_norm > 0.0) &&
               opt->flush == net->flush && mom__net_can_fuse_nag(net);
    int rc = begin_impl(&point, opt, theta, &net->team, fuse, fe);
    if (rc != MOM_OK)
        return rc;
    /* a look-ahead step whose point begin re-formed (a new momentum) runs unfused: it reads the
     * buffer begin filled and writes the caller's vector in end */
    if (opt->la && opt->la_rebase)
        fuse = 0;
    double l = 0.0;
    uint32_t max_g = NO_MAX_G;
    fused_nag f = {.o = opt, .team = &net->team, .th = theta, .mu = opt->step_mu,
                   .wd = (float)opt->weight_decay};
    mom__fpenv_pause(net_fe); /* the network computes in the mode its own option gives */
    if (fuse) {
        /* in the look-ahead form the network reads the weights being updated: each weight
         * block is then updated after the backward product that reads it (late_weights) */
        mom__nag_fuse hooks = {fused_point, fused_decide, fused_update, &f, opt->la};
        rc = mom__net_loss_grad_nag(&l, opt->grad, net, batch, opt->la ? theta : opt->point,
                                    &hooks);
    } else {
        rc = mom__net_loss_grad_max(&l, opt->grad, &max_g, net, batch, point);
    }
    mom__fpenv_resume(net_fe);
    if (rc != MOM_OK) {
        opt->begun = 0;
        opt->begun_params = NULL;
        return mom__fail(&opt->base, rc, "mom_net_loss_grad failed: %s", mom_net_errmsg(net));
    }
    if (f.in_place) { /* the fused step has updated every block */
        if (loss != NULL)
            *loss = l;
        if (opt->la)
            opt->la_vmax = opt->la_vmax_next;
        opt->fused_steps++;
        opt->t++;
        opt->begun = 0;
        opt->begun_params = NULL;
        return MOM_OK;
    }
    if (opt->reduce != NULL) {
        /* combine across workers before anything looks at the values; the network's maximum
         * was of this worker's gradient only */
        max_g = NO_MAX_G;
        if ((rc = mom__optim_reduce_loss(opt, &l, MOM_REDUCE_LOSS)) != MOM_OK ||
            (rc = mom__optim_reduce_vec(opt, opt->grad, MOM_REDUCE_GRADIENT)) != MOM_OK) {
            if (loss != NULL)
                *loss = l;
            opt->begun = 0;
            opt->begun_params = NULL;
            return rc;
        }
    }
    if (loss != NULL)
        *loss = l;
    rc = end_impl(opt, theta, l, opt->grad, max_g, &net->team);
    if (rc != MOM_OK) {
        /* DIVERGED: parameters, velocity and t are unchanged; unlike the begin/end path no step
         * stays begun, since the caller has no gradient to retry with. */
        opt->begun = 0;
        opt->begun_params = NULL;
    }
    return rc;
}

int mom_optim_step_net(double *loss, mom_optim *opt, mom_net *net, const mom_batch *batch)
{
    ENTER(opt);
    if (net == NULL || batch == NULL)
        return mom__fail(&opt->base, MOM_E_INVALID, "%s is NULL", net == NULL ? "net" : "batch");
    if (opt->begun)
        return mom__fail(&opt->base, MOM_E_STATE,
                         "a step is begun with mom_optim_begin(); end or cancel it first");
    if (mom_net_num_params(net) != opt->n)
        return mom__fail(&opt->base, MOM_E_SHAPE,
                         "the network has %zu parameters, the %s optimizer %zu",
                         mom_net_num_params(net), kind_name(opt->kind), opt->n);
    if (opt->kind == MOM_OPTIM_HF)
        return mom_optim_step_hf(loss, opt, net, batch, NULL);
    mom__fpenv fe;
    mom__fpenv_enter(&fe, opt->flush);
    int rc = step_first_order(loss, opt, net, batch, &fe);
    mom__fpenv_leave(&fe);
    return rc;
}

static const char *reduce_what_name(int what)
{
    switch (what) {
    case MOM_REDUCE_LOSS: return "the loss";
    case MOM_REDUCE_GRADIENT: return "the gradient";
    case MOM_REDUCE_FISHER: return "the Fisher diagonal";
    case MOM_REDUCE_CURV_LOSS: return "the curvature-data loss";
    case MOM_REDUCE_GV: return "a Gauss-Newton product";
    default: return "a value";
    }
}

int mom__optim_reduce(mom_optim *o, void *values, size_t count, int type, int what)
{
    if (o->reduce == NULL)
        return MOM_OK;
    int rc = o->reduce(values, count, type, what, o->reduce_ud);
    if (rc == 0)
        return MOM_OK;
    return mom__fail(&o->base, rc < 0 ? rc : MOM_E_INVALID,
                     "the reduction hook failed on %s (returned %d); state unchanged",
                     reduce_what_name(what), rc);
}

int mom_optim_set_reduce(mom_optim *opt, mom_reduce_fn fn, void *user_data)
{
    ENTER(opt);
    if (opt->begun)
        return mom__fail(&opt->base, MOM_E_STATE,
                         "a step is begun; end or cancel it before changing the reduction hook");
    opt->reduce = fn;
    opt->reduce_ud = fn != NULL ? user_data : NULL;
    return MOM_OK;
}

uint64_t mom_optim_steps(const mom_optim *opt) { return opt ? opt->t : 0; }

double mom_optim_momentum(const mom_optim *opt)
{
    if (opt == NULL)
        return NAN;
    if (opt->kind == MOM_OPTIM_SGD)
        return 0.0;
    return mom_sched_value(opt->momentum, opt->t);
}

double mom_optim_lr(const mom_optim *opt)
{
    return opt ? mom_sched_value(opt->lr, opt->t) : NAN;
}

const float *mom_optim_velocity(const mom_optim *opt) { return opt ? opt->velocity : NULL; }

size_t mom_optim_num_params(const mom_optim *opt) { return opt ? opt->n : 0; }

int mom_optim_reset(mom_optim *opt)
{
    ENTER(opt);
    if (opt->begun)
        return mom__fail(&opt->base, MOM_E_STATE,
                         "cannot reset between mom_optim_begin() and mom_optim_end()");
    if (opt->kind == MOM_OPTIM_NAG && opt->la)
        return mom__fail(&opt->base, MOM_E_STATE,
                         "cannot reset in the look-ahead form (the vector holds theta + mu v: "
                         "zeroing v would make that point the model); switch back with "
                         "mom_optim_set_lookahead(opt, params, 0) first");
    memset(opt->velocity, 0, opt->n * sizeof *opt->velocity);
    opt->la_vmax = 0; /* with v = 0 the look-ahead point is theta itself */
    opt->la_vmax_ok = 1;
    if (opt->kind == MOM_OPTIM_HF)
        mom__hf_reset(opt);
    opt->t = 0;
    return MOM_OK;
}

/* ---- the look-ahead form: switching and reading theta ---------------------------------------- */

int mom_optim_set_lookahead(mom_optim *opt, float *params, int on)
{
    ENTER(opt);
    if (opt->kind != MOM_OPTIM_NAG)
        return mom__fail(&opt->base, MOM_E_UNSUPPORTED,
                         "the look-ahead form is a NAG setting; this is a %s optimizer",
                         kind_name(opt->kind));
    if (params == NULL)
        return mom__fail(&opt->base, MOM_E_INVALID, "params is NULL");
    if (opt->begun)
        return mom__fail(&opt->base, MOM_E_STATE,
                         "cannot switch the form between mom_optim_begin() and mom_optim_end()");
    on = on != 0;
    if (on == opt->la)
        return MOM_OK;
    float c;
    if (on) {
        /* the point of the next step: theta + mu_t v (the schedule runs in the caller's mode) */
        double mu = mom_sched_value(opt->momentum, opt->t);
        if (!(mu >= 0.0 && mu <= 1.0))
            return mom__fail(&opt->base, MOM_E_INVALID, "momentum %g at step %llu is outside [0, 1]",
                             mu, (unsigned long long)opt->t);
        c = (float)mu;
    } else {
        c = -opt->la_mu;
    }
    mom__fpenv fe;
    mom__fpenv_enter(&fe, opt->flush);
    int rc = MOM_OK;
    if (shift_check(opt->n, params, opt->velocity, c) != 0) {
        rc = mom__fail(&opt->base, MOM_E_DIVERGED,
                       "%s would overflow (a parameter or the velocity is too large or not "
                       "finite); state unchanged",
                       on ? "forming theta + mu v" : "recovering theta = point - mu v");
    } else {
        shift_inplace(opt->n, params, opt->velocity, c);
        opt->la = on;
        opt->la_mu = on ? c : 0.0f;
        opt->la_vmax = max_bits_kernel(opt->n, opt->velocity);
        opt->la_vmax_ok = 1;
    }
    mom__fpenv_leave(&fe);
    return rc;
}

int mom_optim_get_theta(float *theta, const mom_optim *opt, const float *params)
{
    if (opt == NULL)
        return MOM_E_INVALID;
    /* a query: the message is written only on failure (see mom_optim_get()) */
    mom__base *b = (mom__base *)&opt->base;
    if (theta == NULL || params == NULL)
        return mom__fail(b, MOM_E_INVALID, "%s is NULL", theta == NULL ? "theta" : "params");
    const size_t n = opt->n;
    if (theta < params + n && params < theta + n)
        return mom__fail(b, MOM_E_INVALID, "theta must not overlap params");
    if (!(opt->kind == MOM_OPTIM_NAG && opt->la)) {
        memcpy(theta, params, n * sizeof *theta);
        return MOM_OK;
    }
    mom__fpenv fe;
    mom__fpenv_enter(&fe, opt->flush);
    uint32_t mt, mv, mp; /* maxima the kernel also finds; not needed here */
    nag_point_kernel(n, theta, params, opt->velocity, -opt->la_mu, &mt, &mv, &mp);
    mom__fpenv_leave(&fe);
    return MOM_OK;
}
