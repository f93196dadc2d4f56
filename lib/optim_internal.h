/* Internal structure of mom_optim, shared by optim.c and the modules that extend it: the
 * checkpoint module (which saves and restores t, the velocity, the options and the schedules) and
 * HF (hf.c, another kind of the same handle). Not installed. */
#ifndef MOM_OPTIM_INTERNAL_H
#define MOM_OPTIM_INTERNAL_H

#include "internal.h"
#include "sched_internal.h"

/* The largest step count a step may leave: one short of the counter's end, UINT64_MAX, which a
 * checkpoint cannot hold (its reader refuses it), so that every state a step leaves can be saved.
 * A step at this count is refused with MOM_E_STATE. */
#define MOM__STEPS_LAST (UINT64_MAX - 1)

struct mom_optim {
    mom__base base;
    int kind;             /* mom_optim_kind */
    size_t n;             /* parameters */
    uint64_t t;           /* steps completed */
    mom_sched *lr;        /* learning-rate schedule (a reference is held; never NULL) */
    mom_sched *momentum;  /* momentum schedule (a reference is held; never NULL; unused by SGD) */
    double weight_decay;  /* L2 coefficient w >= 0 */
    double clip_norm;     /* gradient norm bound, 0 = none */

    /* Buffers, all in one allocation `mem` made at creation (so that steps never allocate),
     * each starting on a 64-byte boundary (mom__vectors_alloc()):
     * velocity  n floats: v (SGD: the last update -eps g, i.e. CM with mu = 0);
     * grad      n floats: the gradient buffer of mom_optim_step_net();
     * point     n floats: NAG's look-ahead theta + mu_t v (NULL for SGD and CM, whose gradient
     *           point is the parameter vector itself). */
    void *mem;
    float *velocity;
    float *grad;
    float *point;

    /* The step in progress between mom_optim_begin() and mom_optim_end(). */
    int begun;
    float *begun_params; /* the caller's vector given to begin */
    float step_mu;       /* mu_t used by this step (0 for SGD) */
    float step_lr;       /* eps_t used by this step */
    /* NAG: largest magnitudes (as |x| bit patterns, >= 0x7f800000 for inf/NaN) of params,
     * velocity and point, measured by begin's pass for the overflow guard of end */
    uint32_t max_th, max_v, max_pt;
    /* NAG in look-ahead form (mom_optim_set_lookahead()): the caller's vector holds
     * phi = theta + la_mu v between steps instead of theta. la_mu is the momentum phi was formed
     * with (the last step's mu_t). When the schedule gives another mu, begin forms that step's
     * point phi + (mu_t - la_mu) v in `point` (la_rebase) and end writes the new phi from it.
     * la_vmax: largest abs_bits of the velocity, kept by every pass that writes it, valid when
     * la_vmax_ok (else measured by the next step). */
    int la;
    float la_mu;
    int la_rebase; /* this step's point was re-formed into `point` (mu_t != la_mu) */
    int la_vmax_ok;
    uint32_t la_vmax, la_vmax_next;
    uint64_t fused_steps; /* NAG steps of mom_optim_step_net() updated inside the network's passes
                           * (optim.c, mom__nag_fuse): a statistic the tests read */

    /* MOM_OPTIM_FLUSH_SUBNORMALS: run steps with flush-to-zero set (fpenv.h); default 1 */
    int flush;

    /* mom_optim_set_reduce(): the caller's reduction hook across workers (NULL = none) */
    mom_reduce_fn reduce;
    void *reduce_ud;

    /* MOM_OPTIM_HF only (NULL for the other kinds): settings, report and buffers, defined in
     * hf_internal.h. For HF, `velocity` points to the warm start inside hf's buffers (not a
     * separate allocation), `grad` to its gradient buffer, `point` is NULL, `lr` is the fixed step
     * size and `momentum` the CG-decay schedule. A checkpoint of an HF optimizer needs t, the warm
     * start, lambda and the settings. */
    struct mom__hf *hf;
};

/* Hand `count` values of `type` (mom_reduce_type) to the reduction hook as `what`; MOM_OK when
 * no hook is installed. A failing hook sets the optimizer's message and returns its status
 * (MOM_E_INVALID for a positive return). */
int mom__optim_reduce(mom_optim *o, void *values, size_t count, int type, int what);

/* mom__optim_reduce() of a mean loss (double) or of an n-float vector. */
static inline int mom__optim_reduce_loss(mom_optim *o, double *loss, int what)
{
    return o->reduce ? mom__optim_reduce(o, loss, 1, MOM_REDUCE_DOUBLE, what) : MOM_OK;
}
static inline int mom__optim_reduce_vec(mom_optim *o, float *v, int what)
{
    return o->reduce ? mom__optim_reduce(o, v, o->n, MOM_REDUCE_FLOAT, what) : MOM_OK;
}

#endif
