/*
 * libmominit: first-order optimizers with momentum, stepped by the caller.
 *
 * Update rules (Sutskever et al. 2013, section 2), with mu_t and eps_t read from schedules at the step count t:
 *   SGD:  theta <- theta - eps_t g(theta)
 *   CM:   v <- mu_t v - eps_t g(theta);          theta <- theta + v
 *   NAG:  v <- mu_t v - eps_t g(theta + mu_t v); theta <- theta + v
 * By default the parameter vector holds the true theta (what to evaluate and save), and the
 * optimizer computes the point theta + mu_t v where NAG's gradient must be taken into its own
 * buffer. This is exact under any time-varying mu. Since 0.6.0 a NAG optimizer may instead keep
 * the vector in the look-ahead form, holding theta + mu v itself (mom_optim_set_lookahead()):
 * one pass over the parameters per step instead of two, also exact under a changing mu.
 * Optional L2 weight decay w adds w * theta(point) to the gradient; optional clipping rescales the
 * gradient (after decay) to norm at most `clip`. In full, with p the gradient point (theta for SGD
 * and CM, theta + mu_t v for NAG) and g the gradient there:
 *   d = g + w p;  s = min(1, clip / |d|) (s = 1 when clipping is off; |d| accumulated in double);
 *   v <- mu_t v - eps_t s d;  theta <- theta + v        (SGD: mu_t = 0, so v is the last step)
 * in float arithmetic, mu_t and eps_t rounded to float once per step.
 *
 * Two ways to drive a step:
 *  1. any model: mom_optim_begin() returns the point where the gradient is needed; the caller
 *     computes loss and gradient there and hands them to mom_optim_end(), which updates.
 *  2. a mom_net: mom_optim_step_net() does both on a minibatch.
 * A non-finite loss, gradient or update returns MOM_E_DIVERGED and leaves parameters, velocity and
 * step count exactly as they were before the step.
 *
 * Call order: create, optionally set schedules and options, then any number of steps (begin/end
 * pairs, or mom_optim_step_net()), then destroy. Between mom_optim_begin() and mom_optim_end() (or
 * mom_optim_cancel()) a step is "begun": setters, mom_optim_reset() and mom_optim_step_net()
 * return MOM_E_STATE, and the parameter vector must not be modified. Between steps the caller may
 * read and write the parameters freely (the next begin reads them afresh).
 *
 * Memory: all buffers (velocity, NAG's look-ahead point, the gradient of the network path) are
 * allocated by mom_optim_create(); no other optimizer call allocates. HF (below) also allocates at
 * its first step, and in the setters that enlarge its CG storage or replace its CG decay.
 *
 * Threads: an optimizer is used by one thread at a time; schedules may be shared between
 * optimizers running in different threads (sched.h).
 *
 * Hessian-free optimization (MOM_OPTIM_HF, Martens 2010; Martens & Sutskever 2011) is another kind
 * of the same handle. It needs curvature products, so it has no begin/end path: it is stepped by
 * mom_optim_step_hf() on a network (with separate gradient and curvature batches),
 * mom_optim_step_net() (one batch for both), or mom_optim_step_hf_model() on any objective given
 * as callbacks. Its settings are the HF options below; the learning-rate schedule is its fixed step
 * size when the line search is off, and the momentum schedule is its CG start decay (the momentum
 * of momentum-HF; mom_optim_set_cg_decay()). HF makes its large allocations at creation and the
 * rest (the stored CG iterates) at its first step; later steps never allocate.
 *
 * docs/optim.md has a complete program for each way of driving a step; docs/hf.md describes HF and
 * gives complete recipes (Martens' HF, momentum-HF, RNNs with structural damping).
 */
#ifndef MOMINIT_OPTIM_H
#define MOMINIT_OPTIM_H

#include "mominit/common.h"
#include "mominit/net.h"
#include "mominit/sched.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Optimizer kinds. Pinned values. @since 0.1.0 */
typedef enum mom_optim_kind {
    MOM_OPTIM_SGD = 1,
    MOM_OPTIM_CM = 2,
    MOM_OPTIM_NAG = 3,
    MOM_OPTIM_HF = 4
} mom_optim_kind;

/**
 * Options for mom_optim_set() / mom_optim_get(). Pinned values. @since 0.1.0
 *
 * Values 1..99 apply to every kind (except MOM_OPTIM_CLIP_NORM, which HF does not support: setting
 * it on HF returns MOM_E_UNSUPPORTED, reading it gives 0).
 * Values 100..199 are HF settings and 200..299 HF's read-only report of its last step; on an SGD,
 * CM or NAG optimizer the HF keys below return MOM_E_UNSUPPORTED. Integer-valued settings (iteration
 * counts, switches, modes) must be given as exact integers.
 *
 * HF settings (defaults in brackets; see docs/hf.md for the algorithm and paper values):
 *  - MOM_OPTIM_HF_LAMBDA: the damping lambda, in [0, FLT_MAX] [1]. Setting it sets the current
 *    value; each step adapts it (when MOM_OPTIM_HF_ADAPT_LAMBDA is on) and reading it gives the
 *    value the next step will use. Martens' CURVES demo starts at 45.
 *  - MOM_OPTIM_HF_MAX_CG: most CG iterations per step, in [1, 100000] [250].
 *  - MOM_OPTIM_HF_MIN_CG: CG iterations before the stopping rule may end CG, in [0, 100000] [1];
 *    a value above MAX_CG acts as MAX_CG.
 *  - MOM_OPTIM_HF_FIXED_CG: 0 = Martens' relative-progress stopping rule between MIN_CG and
 *    MAX_CG; k in [1, 100000] = exactly k iterations (momentum-HF uses 50) [0]. Either way CG also
 *    ends early when the search direction has no positive curvature (d^T A d <= 0, e.g. an exact
 *    solution was reached).
 *  - MOM_OPTIM_HF_PRECOND: -1 auto (on for feedforward nets and for models with a Fisher
 *    callback; off for recurrent nets and for models without one), 0 off, 1 on [-1].
 *    With 1, a model without a Fisher callback makes steps fail with MOM_E_INVALID.
 *  - MOM_OPTIM_HF_PRECOND_EXP: exponent e of the preconditioner
 *    M = (Fisher diagonal + lambda + w)^e, in [0, 1] [0.75].
 *  - MOM_OPTIM_HF_LINE_SEARCH: 1 = Armijo backtracking line search from alpha = 1 (c = 0.01,
 *    alpha *= 0.8, at most 60 tries) on the gradient data's objective; 0 = a fixed step alpha
 *    from the learning-rate schedule (momentum-HF) [1].
 *  - MOM_OPTIM_HF_CG_BACKTRACK: 1 = choose among the stored CG iterates by the objective on the
 *    gradient data (Martens' CG-backtracking, as in his code; before libmominit 0.5.2, on the
 *    curvature data); 0 = use the last iterate [1].
 *  - MOM_OPTIM_HF_ADAPT_LAMBDA: 1 = Levenberg-Marquardt rule lambda *= 1.5 if rho < 1/4 (or rho
 *    is NaN), lambda /= 1.5 if rho > 3/4; 0 = lambda stays as set (rho is then not computed) [1].
 *  - MOM_OPTIM_HF_STRUCT_DAMPING: mu_s in [0, FLT_MAX]; Gauss-Newton products during CG get the
 *    structural-damping coefficient mu_s * lambda [0.03]. Recurrent nets use it; feedforward nets
 *    ignore it; a model receives mu_s * lambda in its gv callback (and may ignore it).
 *  - MOM_OPTIM_HF_CG_DECAY: the CG start decay (CG starts from decay * the previous final CG
 *    solution), in [0, 1] [0.95]. Setting it replaces the CG-decay schedule by a constant one
 *    (this allocates: MOM_E_NOMEM is possible); reading it gives the schedule's value at the
 *    current step t. mom_optim_set_cg_decay() sets a schedule.
 *
 * HF report (read-only: mom_optim_set() returns MOM_E_INVALID). Each value describes the last
 * step that succeeded (MOM_OK); a failed step leaves them as they were. All are NaN before the
 * first step and after mom_optim_reset().
 *  - MOM_OPTIM_HF_LAST_CG_ITERS: CG iterations run (each one Gauss-Newton product).
 *  - MOM_OPTIM_HF_LAST_CG_CHOSEN: CG iteration number of the iterate p that was used (by
 *    CG-backtracking, or the last one); 0 means the warm start itself.
 *  - MOM_OPTIM_HF_LAST_RHO: reduction ratio rho on the curvature data; NaN when not computed
 *    (lambda adaptation off) or undefined (the model's predicted reduction is not negative).
 *  - MOM_OPTIM_HF_LAST_LAMBDA: lambda after the step's update.
 *  - MOM_OPTIM_HF_LAST_ALPHA: step size accepted (0 if the line search rejected every try: the
 *    parameters did not move).
 *  - MOM_OPTIM_HF_LAST_LOSS_BEFORE / MOM_OPTIM_HF_LAST_LOSS_AFTER: the objective
 *    f = mean loss + (w/2)|theta|^2 on the gradient data before and after the step.
 *  - MOM_OPTIM_HF_LAST_LS_TRIES: step sizes the line search tested (0 when it is off); with the
 *    same batch for gradient and curvature data, the first test reuses the objective that rho
 *    evaluated at the full step, so it costs no evaluation.
 *  - MOM_OPTIM_HF_LAST_GV_PRODUCTS: Gauss-Newton products made: CG iterations, plus one for a warm
 *    start, plus one for rho, plus one when CG stops on a direction without positive curvature
 *    (d = 0 at an exact solution), whose product is not an iteration.
 *  - MOM_OPTIM_HF_LAST_LOSS_EVALS: loss-only evaluations on either data set (CG-backtracking, rho,
 *    line search or the fixed step's check), not counting the one loss-and-gradient evaluation.
 */
typedef enum mom_optim_option {
    MOM_OPTIM_WEIGHT_DECAY = 1, /**< L2 coefficient w >= 0; default 0 (HF: eta of docs/hf.md) */
    MOM_OPTIM_CLIP_NORM = 2,    /**< gradient norm bound > 0, or 0 for none; default 0 */
    /** nonzero (the default, 1): run steps with subnormal floats flushed to zero (x86: MXCSR
     *  FTZ and DAZ; AArch64: FPCR.FZ) for the calling thread, and restore the caller's mode
     *  before returning; 0: run in the caller's floating-point mode. Applies to
     *  mom_optim_begin(), mom_optim_end(), mom_optim_step_net() and mom_optim_step_hf() (not to
     *  mom_optim_step_hf_model(), which runs the caller's callbacks). Values change only where
     *  subnormals arise (they become 0); docs/performance.md explains why. The network's
     *  MOM_NET_FLUSH_SUBNORMALS governs the network's own work, also inside these steps: the
     *  network computes in the mode it would have if the caller called it. @since 0.1.0 */
    MOM_OPTIM_FLUSH_SUBNORMALS = 3,
    /** read-only here: 1 when a NAG optimizer is in the look-ahead form, else 0. Switch it with
     *  mom_optim_set_lookahead(), which converts the parameters (mom_optim_set() returns
     *  MOM_E_INVALID for this key). @since 0.6.0 */
    MOM_OPTIM_LOOKAHEAD = 4,

    MOM_OPTIM_HF_LAMBDA = 100,          /**< HF damping lambda (current value) */
    MOM_OPTIM_HF_MAX_CG = 101,          /**< HF maximum CG iterations */
    MOM_OPTIM_HF_MIN_CG = 102,          /**< HF minimum CG iterations */
    MOM_OPTIM_HF_FIXED_CG = 103,        /**< HF fixed CG iterations (0 = stopping rule) */
    MOM_OPTIM_HF_PRECOND = 104,         /**< HF preconditioner mode -1 / 0 / 1 */
    MOM_OPTIM_HF_PRECOND_EXP = 105,     /**< HF preconditioner exponent */
    MOM_OPTIM_HF_LINE_SEARCH = 106,     /**< HF line search on / off */
    MOM_OPTIM_HF_CG_BACKTRACK = 107,    /**< HF CG-backtracking on / off */
    MOM_OPTIM_HF_ADAPT_LAMBDA = 108,    /**< HF lambda adaptation on / off */
    MOM_OPTIM_HF_STRUCT_DAMPING = 109,  /**< HF structural damping coefficient mu_s */
    MOM_OPTIM_HF_CG_DECAY = 110,        /**< HF CG start decay (constant) */

    MOM_OPTIM_HF_LAST_CG_ITERS = 200,     /**< read-only: CG iterations of the last step */
    MOM_OPTIM_HF_LAST_CG_CHOSEN = 201,    /**< read-only: iteration number of the chosen iterate */
    MOM_OPTIM_HF_LAST_RHO = 202,          /**< read-only: reduction ratio */
    MOM_OPTIM_HF_LAST_LAMBDA = 203,       /**< read-only: lambda after the update */
    MOM_OPTIM_HF_LAST_ALPHA = 204,        /**< read-only: accepted step size */
    MOM_OPTIM_HF_LAST_LOSS_BEFORE = 205,  /**< read-only: objective before the step */
    MOM_OPTIM_HF_LAST_LOSS_AFTER = 206,   /**< read-only: objective after the step */
    MOM_OPTIM_HF_LAST_LS_TRIES = 207,     /**< read-only: line-search evaluations */
    MOM_OPTIM_HF_LAST_GV_PRODUCTS = 208,  /**< read-only: Gauss-Newton products */
    MOM_OPTIM_HF_LAST_LOSS_EVALS = 209    /**< read-only: loss-only evaluations */
} mom_optim_option;

/**
 * An objective for HF given by the caller (mom_optim_step_hf_model()), so that HF can minimize
 * anything that provides Gauss-Newton (or any positive semidefinite curvature) products.
 * Two data sets are involved: the "gradient data" (loss, gradient, Fisher diagonal, line search)
 * and the "curvature data" (curvature products, CG-backtracking, rho); they may be the same.
 * All losses are means over the data; HF adds the weight-decay term (w/2)|theta|^2 itself.
 *
 * Every callback returns 0 on success or a negative mom_status, which makes the step fail with
 * that status (a positive value counts as MOM_E_INVALID); the optimizer is then unchanged.
 * `params` pointers are n_params floats, valid during the call only, except that curv_begin's
 * `params` (the caller's parameter vector) stays valid and unchanged until the step returns.
 * Non-finite values returned at the current parameters (loss, gradient, Fisher diagonal, products)
 * make the step return MOM_E_DIVERGED; a non-finite loss at a trial point is treated as +infinity
 * (that trial is rejected).
 *
 * Order of calls in one step: loss_grad(theta); fisher_diag(theta) if preconditioning; curv_begin
 * (theta); gv (once per CG iteration, plus once for a warm start); curv_loss at theta and at the
 * candidate points theta + x_j (CG-backtracking, rho); gv once more for rho; then loss (or
 * loss_grad) at theta + alpha p for the line search or the fixed step.
 *
 * This struct is frozen: it will never change; a richer model would get a new type. @since 0.1.0
 */
typedef struct mom_hf_model {
    /** Required: mean loss on the gradient data at params, and its gradient (n_params floats). */
    int (*loss_grad)(double *loss, float *grad, const float *params, void *user_data);
    /** Optional: mean loss on the gradient data at params (NULL: loss_grad is called instead and
     *  its gradient discarded). */
    int (*loss)(double *loss, const float *params, void *user_data);
    /** Required: prepare curvature products on the curvature data at params. */
    int (*curv_begin)(const float *params, void *user_data);
    /** Required: out = G v on the curvature data at the point of the last curv_begin (n_params
     *  floats each; out never aliases v); struct_damping is mu_s * lambda during CG and 0 for the
     *  product that computes rho (a model without structural damping ignores it). G must be
     *  symmetric positive semidefinite; HF adds (lambda + w) v itself. */
    int (*gv)(float *out, const float *v, double struct_damping, void *user_data);
    /** Required: mean loss on the curvature data at params. */
    int (*curv_loss)(double *loss, const float *params, void *user_data);
    /** Optional: the diagonal of the empirical Fisher matrix (mean over cases of the squared
     *  per-case gradient, each entry >= 0) on the gradient data at params; NULL = no
     *  preconditioner. */
    int (*fisher_diag)(float *out, const float *params, void *user_data);
    /** Passed back to every callback; borrowed. */
    void *user_data;
} mom_hf_model;

/**
 * Create an optimizer for a parameter vector of n_params floats. Its learning rate defaults to a
 * constant 0.01 and its momentum to a constant 0.9 (ignored by SGD); set schedules with
 * mom_optim_set_lr() / mom_optim_set_momentum(). The velocity starts at zero and t at 0.
 * Weight decay and clipping start off. Makes all the allocations the optimizer will ever need.
 * MOM_OPTIM_HF: the learning rate (HF's fixed step size, used only with the line search off)
 * defaults to a constant 1 and the momentum (HF's CG decay) to a constant 0.95; the HF options
 * start at the defaults listed with mom_optim_option; 7 * n_params floats are allocated
 * here and the stored CG iterates at the first step (see mom_optim_step_hf()).
 * @return MOM_OK, MOM_E_INVALID (unknown kind, n_params 0, out NULL, incomplete allocator),
 *         MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_create(mom_optim **out, int kind, size_t n_params,
                                           const mom_allocator *alloc);

/** Destroy an optimizer and release its schedules. Accepts NULL. @since 0.1.0 */
MOM_API void mom_optim_destroy(mom_optim *opt);

/** Detail message about the last failed call ("" if none). @since 0.1.0 */
MOM_API const char *mom_optim_errmsg(const mom_optim *opt);

/** mom_optim_kind, 0 for NULL. @since 0.1.0 */
MOM_API int mom_optim_kind_of(const mom_optim *opt);

/** Use `sched` for the learning rate (the optimizer takes a reference and releases the one it
 *  held). Each step rejects a value that is negative, NaN or beyond FLT_MAX. For HF this is the
 *  fixed step size used when the line search is off (checked only then).
 *  @return MOM_OK, MOM_E_INVALID (opt or sched NULL), MOM_E_STATE (inside begin/end).
 *  @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_set_lr(mom_optim *opt, mom_sched *sched);

/** Use `sched` for the momentum (the optimizer takes a reference and releases the one it held).
 *  SGD keeps it but ignores it. Each CM or NAG step rejects a value outside [0, 1]. For HF the
 *  momentum is the CG start decay: this call is the same as mom_optim_set_cg_decay().
 *  @return MOM_OK, MOM_E_INVALID (opt or sched NULL), MOM_E_STATE (inside begin/end).
 *  @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_set_momentum(mom_optim *opt, mom_sched *sched);

/** Set an option (mom_optim_option). MOM_OPTIM_WEIGHT_DECAY and MOM_OPTIM_CLIP_NORM take values
 *  in [0, FLT_MAX]; MOM_OPTIM_FLUSH_SUBNORMALS any finite value (0 = off, else on); the HF
 *  options take the ranges listed with mom_optim_option.
 *  On an HF optimizer that has made its first step, a setting that raises the iteration limit
 *  (FIXED_CG when set, else MAX_CG) beyond every earlier one, or turns CG-backtracking on,
 *  allocates room for the stored CG iterates here (so that steps never allocate);
 *  MOM_OPTIM_HF_CG_DECAY allocates a constant schedule.
 *  @return MOM_OK, MOM_E_INVALID (unknown option, value out of range or not finite, a read-only
 *          HF report key: the option keeps its value), MOM_E_UNSUPPORTED (an HF option on
 *          another kind, MOM_OPTIM_CLIP_NORM on HF), MOM_E_STATE (inside begin/end), MOM_E_NOMEM
 *          (the option keeps its value). @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_set(mom_optim *opt, int option, double value);

/** Read an option, or an HF report value (mom_optim_option).
 *  @return MOM_OK, MOM_E_INVALID (NULL, unknown option), MOM_E_UNSUPPORTED (an HF key on another
 *          kind). @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_get(double *value, const mom_optim *opt, int option);

/**
 * Start a step on a caller-owned parameter vector (n_params floats holding the true theta, or,
 * for NAG in the look-ahead form, theta + mu v: mom_optim_set_lookahead()).
 * Reads mu_t and eps_t from the schedules at t = mom_optim_steps(); they are used by this step.
 * @param point receives where the gradient must be evaluated: params itself for SGD and CM, the
 *              optimizer's look-ahead buffer theta + mu_t v for NAG (valid until mom_optim_end());
 *              in the look-ahead form params itself, or that buffer when mu_t differs from the
 *              momentum the vector was formed with.
 * @param params the caller's vector, borrowed until the step ends or is cancelled; do not modify
 *              it in between.
 * @return MOM_OK, MOM_E_INVALID (a NULL pointer; a learning rate or momentum out of range at this
 *         t: no step is begun), MOM_E_STATE (a step already begun, or t = UINT64_MAX - 1, the
 *         counter's last value: steps stop one short of its end, so that every state they leave
 *         can be checkpointed), MOM_E_UNSUPPORTED (an
 *         HF optimizer: use mom_optim_step_hf() or mom_optim_step_hf_model()).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_begin(const float **point, mom_optim *opt, float *params);

/**
 * Finish the step begun on `params` with the loss and gradient at the point: update the
 * velocity and params, and advance t by one.
 * @param loss the loss at the point; only checked for finiteness.
 * @param grad n_params floats, the gradient at the point; must not overlap params.
 * @return MOM_OK; MOM_E_STATE (no step begun, or params is not the vector given to begin);
 *         MOM_E_INVALID (grad NULL or equal to params); MOM_E_DIVERGED (non-finite loss, gradient
 *         or update: params, velocity and t are bit-for-bit unchanged and the step stays begun,
 *         so it may be ended again or cancelled with mom_optim_cancel()); MOM_E_UNSUPPORTED (an
 *         HF optimizer).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_end(mom_optim *opt, float *params, double loss,
                                        const float *grad);

/** Abandon a begun step; nothing changes. @return MOM_OK, MOM_E_INVALID (opt NULL), MOM_E_STATE
 *  (no step begun). @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_cancel(mom_optim *opt);

/**
 * One full step on a network: gradient of the batch loss at the point the method needs, then the
 * update of mom_net_params(net). Equivalent, bit for bit, to mom_optim_begin() on
 * mom_net_params(net), mom_net_loss_grad() at the point into a buffer of the optimizer, and
 * mom_optim_end(). The optimizer allocates nothing; the network may allocate workspace the first
 * time it sees a batch larger than any before (see mom_net_reserve()).
 * With NAG on a feedforward network (no reduction hook, no gradient clipping, the network's
 * MOM_NET_CHECK_FINITE off, the same MOM_OPTIM_FLUSH_SUBNORMALS and MOM_NET_FLUSH_SUBNORMALS
 * setting) the step's passes run inside the network's: each layer's look-ahead
 * point is formed just before the forward product that reads it, and each block is updated as
 * soon as its gradient is final, while it is in cache, when a bound on the gradient taken after
 * the forward pass rules out overflow (otherwise the update waits for the whole gradient, as in
 * the other cases). The results are the same bits either way.
 * @param loss receives the batch loss at the point (may be NULL); set whenever the gradient was
 *             computed, so also on MOM_E_DIVERGED.
 * @return MOM_OK, MOM_E_INVALID (a NULL pointer, a schedule value out of range),
 *         MOM_E_SHAPE (net size differs from n_params), MOM_E_STATE (a step begun with
 *         mom_optim_begin(), or t = UINT64_MAX - 1), MOM_E_DIVERGED (state restored), or any status of
 *         mom_net_loss_grad() (whose detail message is copied into the optimizer's). On any failure
 *         parameters, velocity and t are unchanged and no step is left begun.
 * On an HF optimizer this is mom_optim_step_hf(loss, opt, net, batch, NULL): one HF iteration with
 * `batch` as both the gradient and the curvature data.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_step_net(double *loss, mom_optim *opt, mom_net *net,
                                             const mom_batch *batch);

/**
 * Use `sched` for HF's CG start decay (the optimizer takes a reference and releases the one it
 * held): CG starts from decay_t * (the previous step's final CG solution). Each step rejects a
 * value outside [0, 1]. HF's momentum schedule is the CG decay, so this is the same as
 * mom_optim_set_momentum() on an HF optimizer. Momentum-HF raises it on a schedule, e.g.
 * mom_sched_create_piecewise() from 0.95 towards 0.999 (docs/hf.md).
 * @return MOM_OK, MOM_E_INVALID (opt or sched NULL), MOM_E_UNSUPPORTED (not an HF optimizer).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_set_cg_decay(mom_optim *opt, mom_sched *sched);

/**
 * One Hessian-free iteration on a network (docs/hf.md; Martens 2010):
 *  1. loss and gradient g of f(theta) = mean loss + (w/2)|theta|^2 on grad_batch (w the weight
 *     decay); the Fisher diagonal on grad_batch for the preconditioner
 *     M = (diag + lambda + w)^e when preconditioning is on;
 *  2. mom_net_gv_begin() on curv_batch at theta;
 *  3. preconditioned CG on (G + (w + lambda) I) p = -g (recurrent nets: plus structural damping
 *     with coefficient mu_s * lambda), starting from decay_t * (the previous final CG solution),
 *     stopped by Martens' rule or after a fixed count, storing the iterates of iterations
 *     ceil(5 * 1.3^j) and the last one;
 *  4. CG-backtracking over the stored iterates by f on curv_batch;
 *  5. rho = (f(theta + p) - f(theta)) / (g^T p + 1/2 p^T (G + w I) p) on curv_batch and the
 *     lambda update;
 *  6. Armijo line search on grad_batch (or the fixed step eps_t); theta += alpha p.
 * The next step's warm start is the final CG iterate of this one (not the backtracked p), as in
 * Martens' code; it is what mom_optim_velocity() returns. t advances by one per successful step,
 * also when the line search rejects every try (then alpha = 0 and theta does not move, but lambda
 * and the warm start are updated, as in Martens' code).
 * @param loss       receives the mean loss on grad_batch at theta before the step, without the
 *                   weight-decay term (may be NULL); set whenever it was computed, so also on
 *                   some failures.
 * @param grad_batch gradient data; @param curv_batch curvature data (NULL = grad_batch). Both
 *                   must stay unchanged during the call.
 * Allocation: the first step allocates the stored CG iterates (up to 15 vectors for 250
 * iterations; none when CG-backtracking is off); later steps allocate nothing in the optimizer
 * (the network may allocate workspace for a batch larger than any before, see mom_net_reserve()).
 * @return MOM_OK; MOM_E_INVALID (a NULL pointer, a schedule value out of range, preconditioning
 *         forced on without a Fisher diagonal, a negative Fisher entry); MOM_E_UNSUPPORTED (not an
 *         HF optimizer); MOM_E_SHAPE (net size differs from n_params); MOM_E_NOMEM (first step);
 *         MOM_E_STATE (t = UINT64_MAX - 1); MOM_E_DIVERGED (a non-finite loss, gradient, Fisher diagonal, curvature product, CG
 *         quantity or fixed-step result); or any status of the network's calls, with its detail
 *         message copied. On any failure the parameters, the warm start, lambda, t and the report
 *         are bit-for-bit as before.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_step_hf(double *loss, mom_optim *opt, mom_net *net,
                                            const mom_batch *grad_batch,
                                            const mom_batch *curv_batch);

/**
 * One Hessian-free iteration (as mom_optim_step_hf()) on a caller's objective given by `model`,
 * updating `params` (n_params floats) in place.
 * @param loss   receives the mean loss at params before the step (model->loss_grad's value),
 *               may be NULL.
 * @param params borrowed for the call; the model's curv_begin receives this pointer.
 * @param model  borrowed for the call; loss_grad, curv_begin, gv and curv_loss are required.
 * Preconditioning in auto mode is on exactly when model->fisher_diag is set.
 * @return as mom_optim_step_hf(), with the callbacks' statuses in place of the network's.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_step_hf_model(double *loss, mom_optim *opt, float *params,
                                                  const mom_hf_model *model);

/** Steps completed (t), 0 for NULL. @since 0.1.0 */
MOM_API uint64_t mom_optim_steps(const mom_optim *opt);

/** Momentum mu_t the next step will use (0 for SGD; for HF its CG decay; NaN for NULL).
 *  @since 0.1.0 */
MOM_API double mom_optim_momentum(const mom_optim *opt);

/** Learning rate eps_t the next step will use (NaN for NULL). @since 0.1.0 */
MOM_API double mom_optim_lr(const mom_optim *opt);

/** The velocity vector (n_params floats), owned by the optimizer and valid until it is
 *  destroyed; read-only. For SGD it holds the last step taken; for HF the warm start, i.e. the
 *  final CG solution of the last step (before the decay). NULL for NULL. @since 0.1.0 */
MOM_API const float *mom_optim_velocity(const mom_optim *opt);

/** Number of parameters the optimizer was created for, 0 for NULL. @since 0.1.0 */
MOM_API size_t mom_optim_num_params(const mom_optim *opt);

/**
 * Switch a NAG optimizer between the true-theta form (the default) and the look-ahead form, and
 * convert `params` (the caller's parameter vector, n_params floats) to match.
 *
 * In the look-ahead form the caller's vector holds phi = theta + mu_t v, the point where NAG
 * takes its gradient, instead of theta (this is how PyTorch's SGD(nesterov=True) keeps its
 * parameters). A step then reads and writes each parameter once: no look-ahead buffer is formed,
 * and mom_optim_begin() returns params itself as the point. The iterates are those of the
 * true-theta form up to float rounding (not bit for bit): theta_t = phi_t - mu_t v_t, with
 *     v' = mu_t v - eps_t g(phi),   phi' = phi + (mu_t v' - eps_t g(phi)).
 * phi is formed with the momentum of the step about to run; when the schedule gives a different
 * mu at a later step (a schedule change, or a call of mom_optim_set_momentum()), that step's
 * begin forms the point phi + (mu_new - mu_old) v in the optimizer's look-ahead buffer (one extra
 * pass; mom_optim_begin() then returns that buffer as the point) and its end writes the new phi
 * into the caller's vector, so a failed or cancelled step leaves the vector as it was. Such a
 * step runs unfused. Weight decay applies at the gradient point, as in the true-theta form. A
 * vector given to a step in this form must be the one the optimizer converted (or a copy of it):
 * values the caller writes into it are taken as look-ahead points. Steps in this form also fuse
 * into a feedforward network's passes (mom_optim_step_net()); divergence still changes nothing.
 * Checkpoints record the form (format 1.3): the saved network parameters are then phi.
 * Use mom_optim_get_theta() for theta (to evaluate or export a model), or switch back.
 *
 * @param on nonzero: convert params from theta to theta + mu_t v (mu_t at t =
 *           mom_optim_steps()); 0: convert params back to theta. Switching to the form the
 *           optimizer is already in changes nothing.
 * @return MOM_OK; MOM_E_UNSUPPORTED (not NAG); MOM_E_INVALID (a NULL pointer, mu_t outside
 *         [0, 1]); MOM_E_STATE (inside begin/end); MOM_E_DIVERGED (a converted value would not
 *         be finite: params and the optimizer are unchanged).
 * @since 0.6.0
 */
MOM_API MOM_NODISCARD int mom_optim_set_lookahead(mom_optim *opt, float *params, int on);

/**
 * Write the true parameters theta of `params` into `theta` (n_params floats each, not
 * overlapping): params - mu v in the look-ahead form, a copy of params otherwise. Does not
 * change the optimizer (writes its detail message only on failure, so concurrent calls on one
 * handle are safe when they all succeed).
 * @return MOM_OK, MOM_E_INVALID (a NULL pointer, the vectors overlap).
 * @since 0.6.0
 */
MOM_API MOM_NODISCARD int mom_optim_get_theta(float *theta, const mom_optim *opt,
                                              const float *params);

/** Zero the velocity and the step count (schedules, options and parameters are kept). For HF:
 *  zeroes the warm start and t, and sets the report to NaN; lambda and the other settings are
 *  kept. A NAG optimizer in the look-ahead form refuses (MOM_E_STATE): its vector holds
 *  theta + mu v, and zeroing v would silently make that point the model; switch back with
 *  mom_optim_set_lookahead(opt, params, 0) first (and on again after, if wanted).
 *  @return MOM_OK, MOM_E_INVALID, MOM_E_STATE (inside begin/end; the look-ahead form).
 *  @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_reset(mom_optim *opt);

/* ---- Reduction across workers (data-parallel training) ------------------------------------ */

/**
 * What a reduction hook is asked to combine (the `what` argument of mom_reduce_fn). Each value is
 * this worker's mean over its own cases; the hook must replace it with the mean over the cases of
 * all workers. Pinned values. @since 0.2.0
 */
typedef enum mom_reduce_what {
    MOM_REDUCE_LOSS = 1,      /**< 1 double: mean loss on the gradient data */
    MOM_REDUCE_GRADIENT = 2,  /**< n_params floats: mean gradient on the gradient data */
    MOM_REDUCE_FISHER = 3,    /**< n_params floats: HF's Fisher diagonal on the gradient data */
    MOM_REDUCE_CURV_LOSS = 4, /**< 1 double: mean loss on HF's curvature data */
    MOM_REDUCE_GV = 5         /**< n_params floats: a Gauss-Newton product on the curvature data */
} mom_reduce_what;

/** Element type of the values handed to a reduction hook. Pinned values. @since 0.2.0 */
typedef enum mom_reduce_type {
    MOM_REDUCE_FLOAT = 1, /**< float (4 bytes) */
    MOM_REDUCE_DOUBLE = 2 /**< double (8 bytes) */
} mom_reduce_type;

/**
 * A reduction hook: combine `count` values of type `type` (mom_reduce_type) across the workers of
 * a data-parallel job, in place. On entry `values` holds this worker's value of `what`
 * (mom_reduce_what): a mean over the worker's share of the minibatch. On return it must hold the
 * same value on every worker: the mean over the union of the shares, i.e. the sum over workers of
 * (worker's cases / all cases) * (worker's value). With an MPI communicator this is one
 * MPI_Allreduce (or MPI_Reduce + MPI_Bcast, which guarantees bit-identical results on all ranks)
 * of the weighted values; docs/distributed.md has a complete hook.
 *
 * The hook runs synchronously inside the optimizer's step, on the calling thread, with the
 * library's floating-point mode (subnormals may be flushed). It must not call the optimizer, nor
 * the network the step works on (a Gauss-Newton product or gv_begin on it would replace the state
 * an HF step is using).
 * Return 0 on success, or a negative mom_status (a positive value counts as MOM_E_INVALID) to
 * make the step fail with that status: parameters, velocity, t and the HF state are then
 * unchanged, as for any failed step.
 * @since 0.2.0
 */
typedef int (*mom_reduce_fn)(void *values, size_t count, int type, int what, void *user_data);

/**
 * Install (or with fn NULL remove) a reduction hook, through which the optimizer combines what it
 * needs across workers before using it; with no hook (the default) nothing changes. The hook is
 * called, in this order, at these points:
 *  - mom_optim_step_net() (SGD, CM, NAG): MOM_REDUCE_LOSS, then MOM_REDUCE_GRADIENT, right after
 *    the gradient at the step's point is computed and before anything uses it (the finiteness
 *    checks and the update see the combined values, so every worker makes the same decision).
 *  - HF (mom_optim_step_hf(), mom_optim_step_hf_model(), mom_optim_step_net() on HF): LOSS and
 *    GRADIENT after the loss and gradient at theta; FISHER after the Fisher diagonal (when
 *    preconditioning); GV after every Gauss-Newton product (warm start, each CG iteration, the
 *    product for rho); CURV_LOSS after every loss on the curvature data (for rho: at theta and
 *    at theta + p; none when the curvature data are the gradient data, whose values serve);
 *    LOSS after every loss on the gradient data at a trial point (CG-backtracking candidates,
 *    line search, fixed step). A trial point with a non-finite entry is rejected without a model
 *    call and without a hook call.
 * mom_optim_end() does not call the hook: on the begin/end path the caller computes the gradient
 * and combines it itself before handing it over.
 * Given equal parameters and hook results, every worker makes the same calls in the same order
 * and computes the same update, bit for bit, so the workers' parameters stay equal.
 * The hook is not part of a checkpoint; mom_optim_reset() keeps it.
 * @param user_data passed back to every call; borrowed.
 * @return MOM_OK, MOM_E_INVALID (opt NULL), MOM_E_STATE (inside begin/end).
 * @since 0.2.0
 */
MOM_API MOM_NODISCARD int mom_optim_set_reduce(mom_optim *opt, mom_reduce_fn fn, void *user_data);

#ifdef __cplusplus
}
#endif

#endif
