/* Hessian-free optimization (Martens 2010; Martens & Sutskever 2011), as described in paper.md
 * section 7 and docs/hf.md: one step is a gradient, a preconditioned CG run on the damped
 * Gauss-Newton system, CG-backtracking, the Levenberg-Marquardt update of lambda and a line search
 * (or a fixed step, for momentum-HF).
 *
 * Everything the step computes goes into scratch vectors of the optimizer; the state that survives
 * a step (the caller's parameters, the warm start, lambda, t and the report) is written only at
 * the end, after every check has passed, so a failed step changes nothing. Vectors are float; CG
 * scalars, dot products and norms are accumulated in double.
 *
 * The network path wraps a mom_net in the same callback model the caller can give
 * (mom_hf_model), so there is one implementation of the algorithm. The one difference: on a
 * feedforward net (and with no reduction hook) CG uses the network's accumulating product, which
 * adds alpha G d to the residual inside its own gemms (mom__net_gv_acc); the result is the same up
 * to float rounding. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "blas.h"
#include "fpenv.h"
#include "hf_internal.h"
#include "net_internal.h"

#define DEFAULT_LAMBDA 1.0
#define DEFAULT_MAX_CG 250
#define DEFAULT_MIN_CG 1
#define DEFAULT_PRECOND_EXP 0.75
#define DEFAULT_STRUCT_DAMPING 0.03

enum { N_VECTORS = 7 }; /* g, minv, x, r, d, ad, warm */

/* ---- pieces of the algorithm ----------------------------------------------------------------- */

size_t mom__hf_grid_point(unsigned j)
{
    double v = ceil(MOM__HF_GRID_BASE * pow(MOM__HF_GRID_RATIO, (double)j));
    if (!(v < 0x1p63))
        return SIZE_MAX;
    uint64_t u = (uint64_t)v;
    return u > SIZE_MAX ? SIZE_MAX : (size_t)u;
}

size_t mom__hf_grid_count(size_t max_iter)
{
    size_t c = 0;
    while (mom__hf_grid_point((unsigned)c) <= max_iter && c < 200)
        c++;
    return c;
}

int mom__hf_cg_should_stop(const double *phi, size_t i)
{
    size_t k = i / 10 + (i % 10 != 0); /* ceil(i / 10) in integers */
    if (k < MOM__HF_STOP_MIN_GAP)
        k = MOM__HF_STOP_MIN_GAP;
    if (i <= k)
        return 0;
    const double pi = phi[i];
    if (!(pi < 0.0))
        return 0;
    return (pi - phi[i - k]) / pi < (double)k * MOM__HF_STOP_TOL;
}

double mom__hf_update_lambda(double lambda, double rho)
{
    double l = lambda;
    if (isnan(rho) || rho < 0.25)
        l = lambda * MOM__HF_LAMBDA_FACTOR;
    else if (rho > 0.75)
        l = lambda / MOM__HF_LAMBDA_FACTOR;
    return l > FLT_MAX ? FLT_MAX : l; /* stays a valid MOM_OPTIM_HF_LAMBDA */
}

/* a <= b with NaN counted as +infinity */
static int le_nan_inf(double a, double b)
{
    if (isnan(a))
        a = INFINITY;
    if (isnan(b))
        b = INFINITY;
    return a <= b;
}

int mom__hf_backtrack(size_t *chosen, double *f_chosen, size_t *n_evals, size_t count,
                      mom__hf_eval_fn eval, void *ctx)
{
    *n_evals = 0;
    if (count == 0)
        return MOM_E_INTERNAL;
    size_t j = count - 1;
    double fj;
    int rc = eval(&fj, j, ctx);
    ++*n_evals;
    if (rc != MOM_OK)
        return rc;
    while (j > 0) {
        double fp;
        rc = eval(&fp, j - 1, ctx);
        ++*n_evals;
        if (rc != MOM_OK)
            return rc;
        if (!le_nan_inf(fp, fj))
            break;
        j--;
        fj = fp;
    }
    *chosen = j;
    *f_chosen = fj;
    return MOM_OK;
}

/* ---- creation, options ----------------------------------------------------------------------- */

static void report_clear(mom__hf_report *r)
{
    r->cg_iters = r->cg_chosen = r->rho = r->lambda = r->alpha = NAN;
    r->loss_before = r->loss_after = r->ls_tries = r->products = r->loss_evals = NAN;
}

int mom__hf_create(mom_optim *o)
{
    const mom_allocator *a = &o->base.alloc;
    mom__hf *h = mom__calloc(a, 1, sizeof *h);
    if (h == NULL)
        return MOM_E_NOMEM;
    o->hf = h;
    h->g = mom__vectors_alloc(a, o->n, N_VECTORS, &h->mem);
    if (h->g == NULL)
        return MOM_E_NOMEM; /* the caller destroys o, which frees h */
    const size_t stride = mom__vec_stride(o->n);
    h->minv = h->g + stride;
    h->x = h->minv + stride;
    h->r = h->x + stride;
    h->d = h->r + stride;
    h->ad = h->d + stride;
    h->warm = h->ad + stride;
    h->lambda = DEFAULT_LAMBDA;
    h->max_cg = DEFAULT_MAX_CG;
    h->min_cg = DEFAULT_MIN_CG;
    h->fixed_cg = 0;
    h->precond = -1;
    h->precond_exp = DEFAULT_PRECOND_EXP;
    h->line_search = 1;
    h->backtrack = 1;
    h->adapt = 1;
    h->struct_damping = DEFAULT_STRUCT_DAMPING;
    report_clear(&h->last);
    o->velocity = h->warm;
    o->grad = h->g;
    o->point = NULL;
    return MOM_OK;
}

void mom__hf_destroy(mom_optim *o)
{
    mom__hf *h = o->hf;
    if (h == NULL)
        return;
    const mom_allocator *a = &o->base.alloc;
    mom__free(a, h->mem);
    mom__free(a, h->phi);
    mom__free(a, h->slots);
    mom__free(a, h->slot_iter);
    mom__free(a, h);
    o->hf = NULL;
    o->velocity = o->grad = o->point = NULL;
}

void mom__hf_reset(mom_optim *o)
{
    mom__hf *h = o->hf;
    memset(h->warm, 0, o->n * sizeof *h->warm);
    h->have_warm = 0;
    report_clear(&h->last);
}

static size_t iter_limit(size_t max_cg, size_t fixed_cg) { return fixed_cg ? fixed_cg : max_cg; }

/* Make room for CG runs of up to `iters` iterations, storing iterates if `backtrack`. Only grows;
 * on failure nothing changes. */
static int ensure_room(mom_optim *o, size_t iters, int backtrack)
{
    mom__hf *h = o->hf;
    const mom_allocator *a = &o->base.alloc;
    if (h->phi == NULL || iters > h->iter_cap) {
        double *phi = mom__malloc(a, (iters + 1) * sizeof *phi);
        if (phi == NULL)
            return mom__fail(&o->base, MOM_E_NOMEM, "cannot allocate the CG history (%zu values)",
                             iters + 1);
        mom__free(a, h->phi);
        h->phi = phi;
        h->iter_cap = iters;
    }
    size_t ns = backtrack ? mom__hf_grid_count(iters) : 0, n_floats, bytes;
    if (ns > h->slot_cap) {
        if (!mom__mul_size(&n_floats, ns, o->n) ||
            !mom__mul_size(&bytes, n_floats, sizeof(float)))
            return mom__fail(&o->base, MOM_E_NOMEM, "room for %zu stored CG iterates overflows",
                             ns);
        float *slots = mom__malloc(a, bytes);
        size_t *it = mom__malloc(a, ns * sizeof *it);
        if (slots == NULL || it == NULL) {
            if (slots != NULL)
                mom__free(a, slots);
            if (it != NULL)
                mom__free(a, it);
            return mom__fail(&o->base, MOM_E_NOMEM,
                             "cannot allocate %zu stored CG iterates (%zu bytes)", ns, bytes);
        }
        mom__free(a, h->slots);
        mom__free(a, h->slot_iter);
        h->slots = slots;
        h->slot_iter = it;
        h->slot_cap = ns;
    }
    h->sized = 1;
    return MOM_OK;
}

int mom__hf_is_option(int option)
{
    return (option >= MOM_OPTIM_HF_LAMBDA && option <= MOM_OPTIM_HF_CG_DECAY) ||
           (option >= MOM_OPTIM_HF_LAST_CG_ITERS && option <= MOM_OPTIM_HF_LAST_LOSS_EVALS);
}

static int is_count(double v)
{
    return v >= 0.0 && v <= (double)MOM__HF_ITER_LIMIT && v == floor(v);
}

static int set_count(mom_optim *o, size_t *slot, int option, double value, size_t lo,
                     const char *name)
{
    mom__hf *h = o->hf;
    if (!is_count(value) || value < (double)lo)
        return mom__fail(&o->base, MOM_E_INVALID, "%s must be an integer in [%zu, %u] (got %g)",
                         name, lo, MOM__HF_ITER_LIMIT, value);
    size_t v = (size_t)value;
    if (h->sized) {
        size_t max_cg = option == MOM_OPTIM_HF_MAX_CG ? v : h->max_cg;
        size_t fixed = option == MOM_OPTIM_HF_FIXED_CG ? v : h->fixed_cg;
        int rc = ensure_room(o, iter_limit(max_cg, fixed), h->backtrack);
        if (rc != MOM_OK)
            return rc;
    }
    *slot = v;
    return MOM_OK;
}

static int set_switch(mom_optim *o, int *slot, double value, const char *name)
{
    if (value != 0.0 && value != 1.0)
        return mom__fail(&o->base, MOM_E_INVALID, "%s must be 0 or 1 (got %g)", name, value);
    *slot = (int)value;
    return MOM_OK;
}

int mom__hf_set(mom_optim *o, int option, double value)
{
    mom__hf *h = o->hf;
    switch (option) {
    case MOM_OPTIM_HF_LAMBDA:
        if (!(value >= 0.0 && value <= FLT_MAX))
            return mom__fail(&o->base, MOM_E_INVALID,
                             "lambda must be finite and >= 0 (got %g)", value);
        h->lambda = value;
        return MOM_OK;
    case MOM_OPTIM_HF_MAX_CG:
        return set_count(o, &h->max_cg, option, value, 1, "maximum CG iterations");
    case MOM_OPTIM_HF_MIN_CG:
        return set_count(o, &h->min_cg, option, value, 0, "minimum CG iterations");
    case MOM_OPTIM_HF_FIXED_CG:
        return set_count(o, &h->fixed_cg, option, value, 0, "fixed CG iterations");
    case MOM_OPTIM_HF_PRECOND:
        if (value != -1.0 && value != 0.0 && value != 1.0)
            return mom__fail(&o->base, MOM_E_INVALID,
                             "preconditioner mode must be -1 (auto), 0 or 1 (got %g)", value);
        h->precond = (int)value;
        return MOM_OK;
    case MOM_OPTIM_HF_PRECOND_EXP:
        if (!(value >= 0.0 && value <= 1.0))
            return mom__fail(&o->base, MOM_E_INVALID,
                             "preconditioner exponent must be in [0, 1] (got %g)", value);
        h->precond_exp = value;
        return MOM_OK;
    case MOM_OPTIM_HF_LINE_SEARCH:
        return set_switch(o, &h->line_search, value, "line search");
    case MOM_OPTIM_HF_CG_BACKTRACK:
        if (value == 1.0 && h->sized) {
            int rc = ensure_room(o, iter_limit(h->max_cg, h->fixed_cg), 1);
            if (rc != MOM_OK)
                return rc;
        }
        return set_switch(o, &h->backtrack, value, "CG-backtracking");
    case MOM_OPTIM_HF_ADAPT_LAMBDA:
        return set_switch(o, &h->adapt, value, "lambda adaptation");
    case MOM_OPTIM_HF_STRUCT_DAMPING:
        if (!(value >= 0.0 && value <= FLT_MAX))
            return mom__fail(&o->base, MOM_E_INVALID,
                             "structural damping must be finite and >= 0 (got %g)", value);
        h->struct_damping = value;
        return MOM_OK;
    case MOM_OPTIM_HF_CG_DECAY: {
        if (!(value >= 0.0 && value <= 1.0))
            return mom__fail(&o->base, MOM_E_INVALID, "CG decay must be in [0, 1] (got %g)",
                             value);
        mom_sched *s;
        if (mom_sched_create_const(&s, value, &o->base.alloc) != MOM_OK)
            return mom__fail(&o->base, MOM_E_NOMEM, "cannot allocate the CG-decay schedule");
        mom__sched_release(o->momentum);
        o->momentum = s; /* the creator's reference becomes the optimizer's */
        return MOM_OK;
    }
    default:
        if (mom__hf_is_option(option))
            return mom__fail(&o->base, MOM_E_INVALID, "HF option %d is read-only (a report)",
                             option);
        return mom__fail(&o->base, MOM_E_INVALID, "unknown optimizer option %d", option);
    }
}

int mom__hf_get(double *value, const mom_optim *o, int option)
{
    const mom__hf *h = o->hf;
    const mom__hf_report *r = &h->last;
    switch (option) {
    case MOM_OPTIM_HF_LAMBDA: *value = h->lambda; return MOM_OK;
    case MOM_OPTIM_HF_MAX_CG: *value = (double)h->max_cg; return MOM_OK;
    case MOM_OPTIM_HF_MIN_CG: *value = (double)h->min_cg; return MOM_OK;
    case MOM_OPTIM_HF_FIXED_CG: *value = (double)h->fixed_cg; return MOM_OK;
    case MOM_OPTIM_HF_PRECOND: *value = h->precond; return MOM_OK;
    case MOM_OPTIM_HF_PRECOND_EXP: *value = h->precond_exp; return MOM_OK;
    case MOM_OPTIM_HF_LINE_SEARCH: *value = h->line_search; return MOM_OK;
    case MOM_OPTIM_HF_CG_BACKTRACK: *value = h->backtrack; return MOM_OK;
    case MOM_OPTIM_HF_ADAPT_LAMBDA: *value = h->adapt; return MOM_OK;
    case MOM_OPTIM_HF_STRUCT_DAMPING: *value = h->struct_damping; return MOM_OK;
    case MOM_OPTIM_HF_CG_DECAY: *value = mom_sched_value(o->momentum, o->t); return MOM_OK;
    case MOM_OPTIM_HF_LAST_CG_ITERS: *value = r->cg_iters; return MOM_OK;
    case MOM_OPTIM_HF_LAST_CG_CHOSEN: *value = r->cg_chosen; return MOM_OK;
    case MOM_OPTIM_HF_LAST_RHO: *value = r->rho; return MOM_OK;
    case MOM_OPTIM_HF_LAST_LAMBDA: *value = r->lambda; return MOM_OK;
    case MOM_OPTIM_HF_LAST_ALPHA: *value = r->alpha; return MOM_OK;
    case MOM_OPTIM_HF_LAST_LOSS_BEFORE: *value = r->loss_before; return MOM_OK;
    case MOM_OPTIM_HF_LAST_LOSS_AFTER: *value = r->loss_after; return MOM_OK;
    case MOM_OPTIM_HF_LAST_LS_TRIES: *value = r->ls_tries; return MOM_OK;
    case MOM_OPTIM_HF_LAST_GV_PRODUCTS: *value = r->products; return MOM_OK;
    case MOM_OPTIM_HF_LAST_LOSS_EVALS: *value = r->loss_evals; return MOM_OK;
    default:
        return mom__fail((mom__base *)&o->base, MOM_E_INVALID, "unknown optimizer option %d",
                         option);
    }
}

/* ---- the step -------------------------------------------------------------------------------- */

/* Where the step's data comes from: a model (the caller's, or the wrapper of a network). */
typedef struct hf_src {
    const mom_hf_model *m;
    mom_net *net;  /* network path (its detail messages are copied), NULL for models */
    /* feedforward nets: the accumulating product r += alpha G d (mom__net_gv_acc()), which saves
     * CG the product's vector and the pass for d^T G d; NULL otherwise */
    int (*gv_acc)(float *out, const float *v, const mom__gv_acc *acc, void *u);
    int same_data; /* curvature data == gradient data: losses at equal points are reused */
    int pc_auto;   /* preconditioner on in auto mode */
    int use_sd;    /* products take the structural-damping coefficient */
    mom__fpenv *fe; /* the mode entered for this step (schedules run in the caller's), or NULL */
} hf_src;

enum { CB_LOSS_GRAD, CB_LOSS, CB_CURV_BEGIN, CB_GV, CB_CURV_LOSS, CB_FISHER };

static const char *const cb_model_name[] = {"loss_grad", "loss", "curv_begin", "gv",
                                            "curv_loss", "fisher_diag"};
static const char *const cb_net_name[] = {"mom_net_loss_grad", "mom_net_loss",
                                          "mom_net_gv_begin", "mom_net_gv", "mom_net_loss",
                                          "mom_net_fisher_diag"};

/* Turn a failed callback into the step's status and message. */
static int cb_failed(mom_optim *o, const hf_src *s, int rc, int which)
{
    if (s->net != NULL)
        return mom__fail(&o->base, rc, "%s failed: %s", cb_net_name[which],
                         mom_net_errmsg(s->net));
    return mom__fail(&o->base, rc < 0 ? rc : MOM_E_INVALID,
                     "model callback %s returned %d", cb_model_name[which], rc);
}

/* The work of one step, with counters for the report. */
typedef struct hf_run {
    mom_optim *o;
    const hf_src *s;
    const float *theta;
    double eta;
    size_t n_stored;     /* stored iterates before the last one */
    size_t products, loss_evals;
} hf_run;

/* trial = theta + alpha p; returns |trial|^2 (in double, only if want_sq) and sets *bad when an
 * entry is not finite. */
static double form_trial(float *restrict trial, const float *theta, const float *p, float alpha,
                         size_t n, int want_sq, int *bad)
{
    double sq = 0.0;
    float chk = 0.0f;
    for (size_t k = 0; k < n; k++) {
        float v = theta[k] + alpha * p[k];
        trial[k] = v;
        chk += v - v; /* 0 for finite entries, NaN otherwise */
        if (want_sq)
            sq += (double)v * (double)v;
    }
    *bad = chk != 0.0f;
    return sq;
}

/* The objective f = loss + (eta/2)|.|^2 at theta + alpha p on the curvature data (curv) or the
 * gradient data. A non-finite trial point gives +infinity without calling the model. */
static int eval_at(double *f, hf_run *run, const float *p, float alpha, int curv)
{
    mom_optim *o = run->o;
    mom__hf *h = o->hf;
    const mom_hf_model *m = run->s->m;
    float *trial = h->r; /* free once CG is done */
    int bad;
    double sq = form_trial(trial, run->theta, p, alpha, o->n, run->eta != 0.0, &bad);
    if (bad) {
        *f = INFINITY;
        return MOM_OK;
    }
    double l = 0.0;
    int rc, which;
    if (curv) {
        which = CB_CURV_LOSS;
        rc = m->curv_loss(&l, trial, m->user_data);
    } else if (m->loss != NULL) {
        which = CB_LOSS;
        rc = m->loss(&l, trial, m->user_data);
    } else {
        which = CB_LOSS_GRAD;
        rc = m->loss_grad(&l, h->d, trial, m->user_data); /* d is free once CG is done */
    }
    run->loss_evals++;
    if (rc != MOM_OK)
        return cb_failed(o, run->s, rc, which);
    rc = mom__optim_reduce_loss(o, &l, curv ? MOM_REDUCE_CURV_LOSS : MOM_REDUCE_LOSS);
    if (rc != MOM_OK)
        return rc;
    *f = l + 0.5 * run->eta * sq;
    return MOM_OK;
}

/* CG-backtracking candidate j: a stored iterate, or (j == n_stored) the last iterate x. */
static const float *candidate(const hf_run *run, size_t j)
{
    const mom__hf *h = run->o->hf;
    return j < run->n_stored ? h->slots + j * run->o->n : h->x;
}

/* On the gradient data, as in Martens' code (whose gradient data is the whole training set):
 * the candidates are judged by the objective the step is meant to lower. */
static int eval_candidate(double *f, size_t j, void *ctx)
{
    hf_run *run = ctx;
    return eval_at(f, run, candidate(run, j), 1.0f, 0);
}

/* out = G v (with structural damping sd) through the model, counted, then reduced across
 * workers when a hook is set. */
static int plain_product(hf_run *run, float *out, const float *v, double sd)
{
    const mom_hf_model *m = run->s->m;
    int rc = m->gv(out, v, sd, m->user_data);
    run->products++;
    if (rc != MOM_OK)
        return cb_failed(run->o, run->s, rc, CB_GV);
    return mom__optim_reduce_vec(run->o, out, MOM_REDUCE_GV);
}

/* The CG vector loops. Per iteration there are three passes over the vectors: the curvature
 * d^T (G d + damp d) of the new direction; the update of the iterate and the residual with the
 * preconditioned norm r^T M^-1 r; the new direction d = beta d - M^-1 r with d^T r and d^T d for
 * the next iteration. The preconditioned residual M^-1 r is formed where it is used and never
 * stored. With the accumulating product (feedforward nets) the first pass is not needed and the
 * second adds only alpha damp d to r: the product has added alpha G d already.
 *
 * Each double sum is split over MOM__LANES accumulators with vector extensions (internal.h), so
 * the loops are vectorized whatever the optimization level and the summation order is fixed;
 * MOM__CLONES compiles them for AVX-512 and AVX2 too, and every version (the scalar fallback
 * included) gives the same bits. */

/* Pass 1 (after the product gd = G d): d^T (Gd + damp d), the curvature along d of the damped
 * system. Gd is left as the product returned it; pass 2 recomputes Gd + damp d with the same float
 * expression. */
MOM__CLONES static double damped_curvature(size_t n, float damp, const float *restrict d,
                                           const float *restrict gd)
{
    double s[MOM__LANES] = {0};
    size_t k = 0;
#if MOM__VEC
    mom__vd acc = {0};
    for (; k + MOM__LANES <= n; k += MOM__LANES) {
        mom__vf dv, gv;
        MOM__VLOAD(dv, d + k);
        MOM__VLOAD(gv, gd + k);
        acc += MOM__VWIDEN(dv) * MOM__VWIDEN(gv + damp * dv);
    }
    MOM__VSPILL(acc, s);
#endif
    for (; k < n; k++)
        s[k % MOM__LANES] += (double)d[k] * (double)(gd[k] + damp * d[k]);
    return MOM__LANES_SUM(s);
}

/* Pass 2: x += alpha d, r += alpha (Gd + damp d), or r += alpha damp d when gd is NULL (the
 * product has added alpha G d to r already); returns the new r^T M^-1 r (minv NULL: no
 * preconditioner). */
MOM__CLONES static double cg_update(size_t n, float alpha, float damp, float *restrict x,
                                    float *restrict r, const float *restrict d,
                                    const float *restrict gd, const float *restrict minv)
{
    double s[MOM__LANES] = {0};
    size_t k = 0;
#if MOM__VEC
    mom__vd acc = {0};
    for (; k + MOM__LANES <= n; k += MOM__LANES) {
        mom__vf xv, rv, dv, gv, yv;
        MOM__VLOAD(xv, x + k);
        MOM__VLOAD(rv, r + k);
        MOM__VLOAD(dv, d + k);
        xv = xv + alpha * dv;
        if (gd) {
            MOM__VLOAD(gv, gd + k);
            rv = rv + alpha * (gv + damp * dv);
        } else {
            rv = rv + alpha * (damp * dv);
        }
        MOM__VSTORE(x + k, xv);
        MOM__VSTORE(r + k, rv);
        if (minv) {
            MOM__VLOAD(yv, minv + k);
            yv = rv * yv;
        } else {
            yv = rv;
        }
        acc += MOM__VWIDEN(rv) * MOM__VWIDEN(yv);
    }
    MOM__VSPILL(acc, s);
#endif
    for (; k < n; k++) {
        x[k] = x[k] + alpha * d[k];
        float rk = gd ? r[k] + alpha * (gd[k] + damp * d[k]) : r[k] + alpha * (damp * d[k]);
        r[k] = rk;
        float yk = minv ? rk * minv[k] : rk;
        s[k % MOM__LANES] += (double)rk * (double)yk;
    }
    return MOM__LANES_SUM(s);
}

/* Pass 3: the new direction d = beta d - M^-1 r, or d = -M^-1 r for the first direction (`first`:
 * the old d, scratch from an earlier step, is not read); returns d^T r and, in *dd, d^T d (for the
 * curvature when the product comes with d^T G d). */
MOM__CLONES static double cg_direction(size_t n, float beta, float *restrict d,
                                       const float *restrict r, const float *restrict minv,
                                       int first, double *dd)
{
    double s[MOM__LANES] = {0}, q[MOM__LANES] = {0};
    size_t k = 0;
#if MOM__VEC
    mom__vd acc = {0}, acc2 = {0};
    for (; k + MOM__LANES <= n; k += MOM__LANES) {
        mom__vf dv, rv, yv;
        MOM__VLOAD(rv, r + k);
        if (minv) {
            MOM__VLOAD(yv, minv + k);
            yv = rv * yv;
        } else {
            yv = rv;
        }
        if (first) {
            dv = -yv;
        } else {
            MOM__VLOAD(dv, d + k);
            dv = beta * dv - yv;
        }
        MOM__VSTORE(d + k, dv);
        const mom__vd dw = MOM__VWIDEN(dv);
        acc += dw * MOM__VWIDEN(rv);
        acc2 += dw * dw;
    }
    MOM__VSPILL(acc, s);
    MOM__VSPILL(acc2, q);
#endif
    for (; k < n; k++) {
        float yk = minv ? r[k] * minv[k] : r[k];
        float dk = first ? -yk : beta * d[k] - yk;
        d[k] = dk;
        s[k % MOM__LANES] += (double)dk * (double)r[k];
        q[k % MOM__LANES] += (double)dk * (double)dk;
    }
    *dd = MOM__LANES_SUM(q);
    return MOM__LANES_SUM(s);
}

/* The CG step length along d: r^T M^-1 r / d^T A d. */
static float cg_alpha(double ry, double dad) { return (float)(ry / dad); }

/* The accumulating product's choice of alpha: d^T A d = d^T G d + damp d^T d once the product
 * has d^T G d; 0 (r left alone) when that is not a positive finite number, which the loop then
 * treats as the other path does. */
typedef struct cg_scale_ctx {
    double ry, dd;
    float damp;
    double dad;
} cg_scale_ctx;

static float cg_scale(double quad, void *u)
{
    cg_scale_ctx *c = u;
    c->dad = quad + (double)c->damp * c->dd;
    return isfinite(c->dad) && c->dad > 0.0 ? cg_alpha(c->ry, c->dad) : 0.0f;
}

/* The initial residual r = A x + g (ad holds G x, or x is zero and ad is unused), returning
 * r^T M^-1 r (minv NULL: no preconditioner) and x^T (r + g) (twice phi(x)). */
static void cg_start(size_t n, float damp, const float *x, const float *ad, const float *g,
                     const float *minv, float *r, int x_zero, double *ry_out, double *xrg_out)
{
    double ry = 0.0, xrg = 0.0;
    for (size_t k = 0; k < n; k++) {
        float rk = x_zero ? g[k] : ad[k] + damp * x[k] + g[k];
        r[k] = rk;
        float yk = minv ? rk * minv[k] : rk;
        ry += (double)rk * (double)yk;
        if (!x_zero)
            xrg += (double)x[k] * ((double)rk + (double)g[k]);
    }
    *ry_out = ry;
    *xrg_out = xrg;
}

static int diverged(mom_optim *o, const char *what, size_t iter)
{
    return mom__fail(&o->base, MOM_E_DIVERGED,
                     "%s is not finite (CG iteration %zu); state unchanged", what, iter);
}

static int hf_step(double *loss_out, mom_optim *o, float *theta, const hf_src *s)
{
    mom__hf *h = o->hf;
    const mom_hf_model *m = s->m;
    void *ud = m->user_data;
    const size_t n = o->n;
    const double eta = o->weight_decay;
    const double lambda = h->lambda;

    if (o->t >= MOM__STEPS_LAST)
        return mom__fail(&o->base, MOM_E_STATE, "the step counter is at its last value, 2^64 - 2");
    /* settings of this step; the schedules (a user's callback among them) run in the caller's
     * floating-point mode */
    mom__fpenv_pause(s->fe);
    const double decay = mom_sched_value(o->momentum, o->t);
    const double eps_sched = h->line_search ? 1.0 : mom_sched_value(o->lr, o->t);
    mom__fpenv_resume(s->fe);
    if (!(decay >= 0.0 && decay <= 1.0))
        return mom__fail(&o->base, MOM_E_INVALID, "CG decay %g at step %llu is outside [0, 1]",
                         decay, (unsigned long long)o->t);
    double eps = eps_sched;
    if (!h->line_search) {
        if (!(eps >= 0.0 && eps <= FLT_MAX))
            return mom__fail(&o->base, MOM_E_INVALID,
                             "step size (learning rate) %g at step %llu is negative or not a "
                             "finite float", eps, (unsigned long long)o->t);
    }
    const int pc = h->precond == 1 || (h->precond == -1 && s->pc_auto);
    if (pc && m->fisher_diag == NULL)
        return mom__fail(&o->base, MOM_E_INVALID,
                         "the preconditioner is forced on but the model has no Fisher diagonal");
    const size_t iters = iter_limit(h->max_cg, h->fixed_cg);
    const size_t min_iters = h->min_cg < h->max_cg ? h->min_cg : h->max_cg;
    int rc = ensure_room(o, iters, h->backtrack);
    if (rc != MOM_OK)
        return rc;

    hf_run run = {o, s, theta, eta, 0, 0, 0};

    /* 1. loss and gradient of f = loss + (eta/2)|theta|^2 */
    size_t bad = mom__first_nonfinite(theta, n);
    if (bad < n)
        return mom__fail(&o->base, MOM_E_DIVERGED, "params[%zu] = %g is not finite", bad,
                         (double)theta[bad]);
    double l0 = 0.0;
    float *g = h->g;
    rc = m->loss_grad(&l0, g, theta, ud);
    if (rc != MOM_OK)
        return cb_failed(o, s, rc, CB_LOSS_GRAD);
    if ((rc = mom__optim_reduce_loss(o, &l0, MOM_REDUCE_LOSS)) != MOM_OK ||
        (rc = mom__optim_reduce_vec(o, g, MOM_REDUCE_GRADIENT)) != MOM_OK)
        return rc;
    if (loss_out != NULL)
        *loss_out = l0;
    if (!isfinite(l0))
        return mom__fail(&o->base, MOM_E_DIVERGED, "loss %g at the parameters is not finite",
                         l0);
    double th_sq = 0.0;
    if (eta != 0.0) {
        const float etaf = (float)eta;
        for (size_t k = 0; k < n; k++) {
            g[k] += etaf * theta[k];
            th_sq += (double)theta[k] * (double)theta[k];
        }
    }
    bad = mom__first_nonfinite(g, n);
    if (bad < n)
        return mom__fail(&o->base, MOM_E_DIVERGED, "gradient[%zu] = %g is not finite", bad,
                         (double)g[bad]);
    const double f0 = l0 + 0.5 * eta * th_sq;
    if (!isfinite(f0))
        return mom__fail(&o->base, MOM_E_DIVERGED, "objective %g is not finite", f0);

    /* 2. preconditioner M^-1 = (Fisher diagonal + lambda + eta)^-e; 0 where that is not a
     *    positive float-representable scale (a zero diagonal with no damping) */
    float *minv = h->minv;
    if (pc) {
        rc = m->fisher_diag(minv, theta, ud);
        if (rc != MOM_OK)
            return cb_failed(o, s, rc, CB_FISHER);
        if ((rc = mom__optim_reduce_vec(o, minv, MOM_REDUCE_FISHER)) != MOM_OK)
            return rc;
        const double shift = lambda + eta, e = h->precond_exp;
        for (size_t k = 0; k < n; k++) {
            double b = minv[k];
            if (!isfinite(b))
                return mom__fail(&o->base, MOM_E_DIVERGED,
                                 "Fisher diagonal[%zu] = %g is not finite", k, b);
            if (b < 0.0)
                return mom__fail(&o->base, MOM_E_INVALID,
                                 "Fisher diagonal[%zu] = %g is negative", k, b);
            double mk = pow(b + shift, e);
            double inv = mk > 0.0 ? 1.0 / mk : 0.0;
            minv[k] = inv <= FLT_MAX ? (float)inv : 0.0f;
        }
    }

    /* 3. curvature products at theta */
    rc = m->curv_begin(theta, ud);
    if (rc != MOM_OK)
        return cb_failed(o, s, rc, CB_CURV_BEGIN);

    /* 4. preconditioned CG on A x = -g, A = G (+ structural damping) + (lambda + eta) I */
    const double sd = s->use_sd ? h->struct_damping * lambda : 0.0;
    const float damp = (float)(lambda + eta);
    float *x = h->x, *r = h->r, *d = h->d, *ad = h->ad;
    const int x_zero = !(h->have_warm && decay > 0.0);
    double ry, xrg;
    if (x_zero) {
        memset(x, 0, n * sizeof *x);
    } else {
        const float dec = (float)decay;
        for (size_t k = 0; k < n; k++)
            x[k] = dec * h->warm[k];
        if ((rc = plain_product(&run, ad, x, sd)) != MOM_OK)
            return rc;
    }
    const float *mv = pc ? minv : NULL; /* NULL: no preconditioner */
    cg_start(n, damp, x, ad, g, mv, r, x_zero, &ry, &xrg);
    double dd;
    double dr = cg_direction(n, 0.0f, d, r, mv, 1, &dd);
    if (!isfinite(ry) || !isfinite(xrg) || !isfinite(dr))
        return diverged(o, "the residual at the warm start", 0);
    h->phi[0] = 0.5 * xrg;

    const size_t n_slots = h->backtrack ? mom__hf_grid_count(iters) : 0;
    size_t next_slot = 0, next_save = n_slots > 0 ? mom__hf_grid_point(0) : 0;
    size_t last = 0;
    /* The accumulating product adds alpha G d to r itself, unless the product has to be reduced
     * across workers (the hook sees whole vectors). */
    const int use_acc = s->gv_acc != NULL && o->reduce == NULL;
    for (size_t i = 1; i <= iters; i++) {
        double dad;
        const float *gd = NULL; /* G d, when the product did not go into r */
        if (use_acc) {
            cg_scale_ctx c = {ry, dd, damp, NAN};
            const mom__gv_acc acc = {cg_scale, &c};
            rc = s->gv_acc(r, d, &acc, ud);
            run.products++;
            if (rc != MOM_OK)
                return cb_failed(o, s, rc, CB_GV);
            dad = c.dad;
        } else {
            if ((rc = plain_product(&run, ad, d, sd)) != MOM_OK)
                return rc;
            dad = damped_curvature(n, damp, d, ad);
            gd = ad;
        }
        if (!isfinite(dad))
            return diverged(o, "the curvature product", i);
        if (!(dad > 0.0))
            break; /* no positive curvature along d (d = 0 at an exact solution) */
        const float alpha = cg_alpha(ry, dad);
        const double ry_new = cg_update(n, alpha, damp, x, r, d, gd, mv);
        /* phi(x + alpha d) = phi(x) + alpha d^T (A x + g) + alpha^2 / 2 d^T A d, with the step
         * alpha actually applied and r = A x + g before the update (phi_0 is computed directly
         * from x_0) */
        const double af = alpha;
        const double phi_i = h->phi[i - 1] + af * dr + 0.5 * af * af * dad;
        if (!isfinite(ry_new) || !isfinite(phi_i))
            return diverged(o, "a CG quantity", i);
        h->phi[i] = phi_i;
        last = i;
        if (next_slot < n_slots && i == next_save) {
            memcpy(h->slots + next_slot * n, x, n * sizeof *x);
            h->slot_iter[next_slot] = i;
            next_slot++;
            next_save = next_slot < n_slots ? mom__hf_grid_point((unsigned)next_slot) : 0;
        }
        if (i == iters || ry_new == 0.0)
            break;
        if (h->fixed_cg == 0 && i >= min_iters && mom__hf_cg_should_stop(h->phi, i))
            break;
        const float beta = (float)(ry_new / ry);
        dr = cg_direction(n, beta, d, r, mv, 0, &dd);
        if (!isfinite(dr))
            return diverged(o, "a CG quantity", i);
        ry = ry_new;
    }

    /* 5. the objective on the curvature data at theta (for rho; the gradient data's value when
     *    the data are the same), then CG-backtracking over the stored iterates (those before the
     *    last) and the last one, by the objective on the gradient data (Martens' code) */
    double fc0 = f0;
    if (h->adapt && !s->same_data) {
        double lc = 0.0;
        rc = m->curv_loss(&lc, theta, ud);
        run.loss_evals++;
        if (rc != MOM_OK)
            return cb_failed(o, s, rc, CB_CURV_LOSS);
        if ((rc = mom__optim_reduce_loss(o, &lc, MOM_REDUCE_CURV_LOSS)) != MOM_OK)
            return rc;
        fc0 = lc + 0.5 * eta * th_sq;
        if (!isfinite(fc0))
            return mom__fail(&o->base, MOM_E_DIVERGED,
                             "loss %g on the curvature data at the parameters is not finite", lc);
    }
    size_t n_stored = 0;
    while (n_stored < next_slot && h->slot_iter[n_stored] < last)
        n_stored++;
    run.n_stored = n_stored;
    const float *p = x;
    size_t chosen_iter = last;
    double fg_p = NAN; /* the objective at theta + p on the gradient data, once known */
    int have_fg_p = 0;
    if (h->backtrack) {
        size_t chosen, n_evals;
        rc = mom__hf_backtrack(&chosen, &fg_p, &n_evals, n_stored + 1, eval_candidate, &run);
        if (rc != MOM_OK)
            return rc;
        p = candidate(&run, chosen);
        chosen_iter = chosen < n_stored ? h->slot_iter[chosen] : last;
        have_fg_p = 1;
    }

    /* 6. reduction ratio on the curvature data and the lambda update */
    const double gp = mom__dot(n, g, p);
    double rho = NAN, new_lambda = lambda;
    if (h->adapt) {
        double fc_p;
        if (s->same_data && have_fg_p) {
            fc_p = fg_p; /* the same point on the same data */
        } else {
            rc = eval_at(&fc_p, &run, p, 1.0f, 1);
            if (rc != MOM_OK)
                return rc;
            if (s->same_data) { /* and the line search's first try (backtracking off) */
                fg_p = fc_p;
                have_fg_p = 1;
            }
        }
        if ((rc = plain_product(&run, ad, p, 0.0)) != MOM_OK)
            return rc;
        const double pgp = mom__dot(n, p, ad);
        if (!isfinite(pgp) || !isfinite(gp))
            return diverged(o, "the product for rho", last);
        const double pp = mom__dot(n, p, p);
        const double den = gp + 0.5 * (pgp + eta * pp);
        const double num = (isfinite(fc_p) ? fc_p : INFINITY) - fc0;
        rho = den < 0.0 ? num / den : NAN;
        new_lambda = mom__hf_update_lambda(lambda, rho);
    }

    /* 7. line search (Armijo) or the fixed step, on the gradient data */
    double f_after = f0;
    float alpha = 0.0f;
    size_t tries = 0;
    if (h->line_search) {
        double a = 1.0;
        for (size_t t = 1; t <= MOM__HF_LS_MAX_TRIES; t++) {
            const float af = (float)a;
            double f;
            tries = t;
            if (t == 1 && have_fg_p) {
                f = fg_p; /* CG-backtracking's value: the same point on the same data */
            } else {
                rc = eval_at(&f, &run, p, af, 0);
                if (rc != MOM_OK)
                    return rc;
            }
            if (isfinite(f) && f <= f0 + MOM__HF_ARMIJO_C * a * gp) {
                alpha = af;
                f_after = f;
                break;
            }
            a *= MOM__HF_LS_SHRINK;
        }
    } else {
        const float af = (float)eps;
        double f;
        rc = eval_at(&f, &run, p, af, 0);
        if (rc != MOM_OK)
            return rc;
        if (!isfinite(f))
            return mom__fail(&o->base, MOM_E_DIVERGED,
                             "objective %g after the fixed step %g is not finite; state unchanged",
                             f, eps);
        alpha = af;
        f_after = f;
    }

    /* 8. commit: theta += alpha p (the same expression as the evaluated trial point), the warm
     *    start, lambda, t, the report */
    if (alpha != 0.0f)
        for (size_t k = 0; k < n; k++)
            theta[k] = theta[k] + alpha * p[k];
    memcpy(h->warm, x, n * sizeof *x);
    h->have_warm = 1;
    h->lambda = new_lambda;
    o->t++;
    mom__hf_report *rep = &h->last;
    rep->cg_iters = (double)last;
    rep->cg_chosen = (double)chosen_iter;
    rep->rho = rho;
    rep->lambda = new_lambda;
    rep->alpha = alpha;
    rep->loss_before = f0;
    rep->loss_after = f_after;
    rep->ls_tries = (double)tries;
    rep->products = (double)run.products;
    rep->loss_evals = (double)run.loss_evals;
    return MOM_OK;
}

/* ---- the network path: a model over mom_net calls -------------------------------------------- */

typedef struct net_ctx {
    mom_net *net;
    const mom_batch *gb, *cb;
    mom__fpenv *fe; /* the step's mode, paused for each network call (NULL: options agree) */
} net_ctx;

/* A network call in the floating-point mode the network's own option gives (the caller's mode,
 * flushed or not), not in the optimizer's. */
#define NET_CALL(c, call)                                                                      \
    do {                                                                                       \
        mom__fpenv_pause((c)->fe);                                                             \
        int net_rc_ = (call);                                                                  \
        mom__fpenv_resume((c)->fe);                                                            \
        return net_rc_;                                                                        \
    } while (0)

static int net_loss_grad(double *loss, float *grad, const float *params, void *u)
{
    net_ctx *c = u;
    NET_CALL(c, mom_net_loss_grad(loss, grad, c->net, c->gb, params));
}

static int net_loss(double *loss, const float *params, void *u)
{
    net_ctx *c = u;
    NET_CALL(c, mom_net_loss(loss, c->net, c->gb, params));
}

static int net_curv_begin(const float *params, void *u)
{
    net_ctx *c = u;
    NET_CALL(c, mom_net_gv_begin(c->net, c->cb, params));
}

static int net_gv(float *out, const float *v, double struct_damping, void *u)
{
    net_ctx *c = u;
    NET_CALL(c, mom_net_gv(out, c->net, v, struct_damping));
}

static int net_gv_acc(float *out, const float *v, const mom__gv_acc *acc, void *u)
{
    net_ctx *c = u;
    NET_CALL(c, mom__net_gv_acc(out, c->net, v, acc));
}

static int net_curv_loss(double *loss, const float *params, void *u)
{
    net_ctx *c = u;
    NET_CALL(c, mom_net_loss(loss, c->net, c->cb, params));
}

static int net_fisher(float *out, const float *params, void *u)
{
    net_ctx *c = u;
    NET_CALL(c, mom_net_fisher_diag(out, c->net, c->gb, params));
}

static int same_batch(const mom_batch *a, const mom_batch *b)
{
    return a == b || (a->n == b->n && a->steps == b->steps && a->inputs == b->inputs &&
                      a->targets == b->targets && a->mask == b->mask && a->lengths == b->lengths);
}

#define ENTER_HF(opt)                                                                          \
    do {                                                                                       \
        if ((opt) == NULL)                                                                     \
            return MOM_E_INVALID;                                                              \
        mom__clear(&(opt)->base);                                                              \
        if ((opt)->kind != MOM_OPTIM_HF)                                                       \
            return mom__fail(&(opt)->base, MOM_E_UNSUPPORTED,                                  \
                             "not an HF optimizer (kind %d)", (opt)->kind);                    \
    } while (0)

int mom_optim_step_hf(double *loss, mom_optim *opt, mom_net *net, const mom_batch *grad_batch,
                      const mom_batch *curv_batch)
{
    ENTER_HF(opt);
    if (net == NULL || grad_batch == NULL)
        return mom__fail(&opt->base, MOM_E_INVALID, "%s is NULL",
                         net == NULL ? "net" : "grad_batch");
    if (mom_net_num_params(net) != opt->n)
        return mom__fail(&opt->base, MOM_E_SHAPE,
                         "the network has %zu parameters, the HF optimizer %zu",
                         mom_net_num_params(net), opt->n);
    if (curv_batch == NULL)
        curv_batch = grad_batch;
    mom__fpenv fe;
    net_ctx ctx = {net, grad_batch, curv_batch, opt->flush != net->flush ? &fe : NULL};
    const mom_hf_model model = {net_loss_grad, net_loss,      net_curv_begin, net_gv,
                                net_curv_loss, net_fisher,    &ctx};
    const int kind = mom_net_kind_of(net);
    /* the accumulating product does CG's vector work inside the network's call, so in the
     * network's mode: used when that is the optimizer's too */
    hf_src src = {&model, net,
                  kind == MOM_NET_FEEDFORWARD && opt->flush == net->flush ? net_gv_acc : NULL,
                  same_batch(grad_batch, curv_batch),
                  kind == MOM_NET_FEEDFORWARD, kind == MOM_NET_RECURRENT, &fe};
    /* subnormals flushed for HF's own vector work as the optimizer's option says; the network's
     * calls run in the caller's mode under the network's option (NET_CALL);
     * mom_optim_step_hf_model() runs the caller's callbacks, so it leaves the caller's mode
     * alone */
    mom__fpenv_enter(&fe, opt->flush);
    int rc = hf_step(loss, opt, mom_net_params(net), &src);
    mom__fpenv_leave(&fe);
    return rc;
}

int mom_optim_step_hf_model(double *loss, mom_optim *opt, float *params,
                            const mom_hf_model *model)
{
    ENTER_HF(opt);
    if (params == NULL || model == NULL)
        return mom__fail(&opt->base, MOM_E_INVALID, "%s is NULL",
                         params == NULL ? "params" : "model");
    const char *missing = model->loss_grad == NULL    ? "loss_grad"
                          : model->curv_begin == NULL ? "curv_begin"
                          : model->gv == NULL         ? "gv"
                          : model->curv_loss == NULL  ? "curv_loss"
                                                      : NULL;
    if (missing != NULL)
        return mom__fail(&opt->base, MOM_E_INVALID, "model callback %s is NULL (required)",
                         missing);
    hf_src src = {model, NULL, NULL, 0, model->fisher_diag != NULL, 1, NULL};
    return hf_step(loss, opt, params, &src);
}
