/* Internal interface of the Hessian-free optimizer (hf.c): its state hanging off struct mom_optim,
 * the hooks optim.c dispatches to, and the pieces of the algorithm exposed for the unit tests.
 * Not installed. */
#ifndef MOM_HF_INTERNAL_H
#define MOM_HF_INTERNAL_H

#include "optim_internal.h"

/* Constants of Martens' algorithm (paper.md section 7). */
#define MOM__HF_ITER_LIMIT 100000u  /* bound of MAX_CG / MIN_CG / FIXED_CG */
#define MOM__HF_GRID_BASE 5.0       /* stored iterates at ceil(5 * 1.3^j) */
#define MOM__HF_GRID_RATIO 1.3
#define MOM__HF_STOP_TOL 5e-4       /* stopping rule: relative progress < k * 5e-4 */
#define MOM__HF_STOP_MIN_GAP 10u    /* k = max(10, ceil(i / 10)) */
#define MOM__HF_LAMBDA_FACTOR 1.5   /* lambda *= 1.5 if rho < 1/4, /= 1.5 if rho > 3/4 */
#define MOM__HF_ARMIJO_C 0.01
#define MOM__HF_LS_SHRINK 0.8
#define MOM__HF_LS_MAX_TRIES 60

/* Report of the last successful step (NaN = none yet). */
typedef struct mom__hf_report {
    double cg_iters, cg_chosen, rho, lambda, alpha, loss_before, loss_after, ls_tries, products,
        loss_evals;
} mom__hf_report;

typedef struct mom__hf {
    /* settings (mom_optim_option 100..110; the CG decay is opt->momentum) */
    double lambda;         /* current damping, >= 0 */
    size_t max_cg, min_cg; /* iteration bounds of the stopping rule */
    size_t fixed_cg;       /* 0 = stopping rule, else exactly this many iterations */
    int precond;           /* -1 auto, 0 off, 1 on */
    double precond_exp;    /* in [0, 1] */
    int line_search, backtrack, adapt;
    double struct_damping; /* mu_s >= 0 */

    mom__hf_report last;
    int have_warm; /* warm holds a CG solution (else it is zero and the first product is skipped) */

    /* n-float vectors, one allocation made at creation: gradient, inverse preconditioner, CG
     * iterate, residual, direction, G * direction, warm start. After CG the residual serves as
     * the trial point and the direction as scratch. */
    void *mem;
    float *g, *minv, *x, *r, *d, *ad, *warm;

    /* Growable scratch, sized at the first step (and by setters after it, never by later steps):
     * phi[0..iter_cap] values of the CG quadratic; slot_cap stored iterates of n floats each. */
    int sized;
    size_t iter_cap;
    double *phi;
    size_t slot_cap;
    float *slots;
    size_t *slot_iter;
} mom__hf;

/* Hooks for optim.c. create allocates o->hf and its vectors (o->n is set) and points
 * o->velocity / o->grad at the warm start / gradient; destroy frees what create and the first step
 * allocated (accepts o->hf NULL); reset zeroes the warm start and the report. */
int mom__hf_create(mom_optim *o);
void mom__hf_destroy(mom_optim *o);
void mom__hf_reset(mom_optim *o);

/* Options in the HF ranges (100..199 settings, 200..299 report). */
int mom__hf_is_option(int option);
int mom__hf_set(mom_optim *o, int option, double value);
int mom__hf_get(double *value, const mom_optim *o, int option);

/* ---- pieces of the algorithm, exposed for tests ---------------------------------------------- */

/* ceil(5 * 1.3^j): the CG iteration of the j-th stored iterate (j = 0, 1, ...: 5, 7, 9, 11, 15,
 * 19, 25, 32, 41, ...). Saturates at SIZE_MAX. */
size_t mom__hf_grid_point(unsigned j);

/* Number of grid points <= max_iter. */
size_t mom__hf_grid_count(size_t max_iter);

/* Martens' stopping rule at CG iteration i >= 1 given phi[0..i] (phi[j] = phi(x_j)): with
 * k = max(10, ceil(i / 10)), stop when i > k, phi[i] < 0 and
 * (phi[i] - phi[i-k]) / phi[i] < k * 5e-4.
 * Returns 1 to stop. */
int mom__hf_cg_should_stop(const double *phi, size_t i);

/* Levenberg-Marquardt update: lambda * 1.5 if rho < 1/4 or rho is NaN, lambda / 1.5 if rho > 3/4,
 * else lambda. */
double mom__hf_update_lambda(double lambda, double rho);

/* CG-backtracking over `count` >= 1 candidates in CG order (0 = earliest, count-1 = the last
 * iterate). eval(f, j, ctx) computes the objective of candidate j (lazily, each at most once, from
 * the last backwards). Starting at the last, step back to j-1 while f(j-1) <= f(j) (the objective
 * does not increase), where NaN counts as +infinity. On success *chosen and *f_chosen describe the
 * result and *n_evals counts the evaluations; an eval status other than MOM_OK is returned as
 * is. */
typedef int (*mom__hf_eval_fn)(double *f, size_t j, void *ctx);
int mom__hf_backtrack(size_t *chosen, double *f_chosen, size_t *n_evals, size_t count,
                      mom__hf_eval_fn eval, void *ctx);

#endif
