/*
 * libmominit: first-order optimizers with momentum, stepped by the caller.
 *
 * Update rules (paper.md section 1), with mu_t and eps_t read from schedules at the step count t:
 *   SGD:  theta <- theta - eps_t g(theta)
 *   CM:   v <- mu_t v - eps_t g(theta);          theta <- theta + v
 *   NAG:  v <- mu_t v - eps_t g(theta + mu_t v); theta <- theta + v
 * NAG is stored in its look-ahead form: the parameter vector always holds the true theta (what to
 * evaluate and save), and the optimizer computes the point theta + mu_t v where the gradient must
 * be taken into its own buffer. This is exact under any time-varying mu.
 * Optional L2 weight decay w adds w * theta(point) to the gradient; optional clipping rescales the
 * gradient (after decay) to norm at most `clip`.
 *
 * Two ways to drive a step:
 *  1. any model: mom_optim_begin() returns the point where the gradient is needed; the caller
 *     computes loss and gradient there and hands them to mom_optim_end(), which updates.
 *  2. a mom_net: mom_optim_step_net() does both on a minibatch.
 * A non-finite loss, gradient or update returns MOM_E_DIVERGED and leaves parameters, velocity and
 * step count exactly as they were before the step.
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

/** Options for mom_optim_set() / mom_optim_get(). Pinned values. @since 0.1.0 */
typedef enum mom_optim_option {
    MOM_OPTIM_WEIGHT_DECAY = 1, /**< L2 coefficient w >= 0; default 0 */
    MOM_OPTIM_CLIP_NORM = 2     /**< gradient norm bound > 0, or 0 for none; default 0 */
} mom_optim_option;

/**
 * Create an optimizer for a parameter vector of n_params floats. Its learning rate defaults to a
 * constant 0.01 and its momentum to a constant 0.9 (ignored by SGD); set schedules with
 * mom_optim_set_lr() / mom_optim_set_momentum(). The velocity starts at zero and t at 0.
 * @return MOM_OK, MOM_E_INVALID (unknown kind, n_params 0, out NULL), MOM_E_UNSUPPORTED (a kind
 *         this function does not create), MOM_E_NOMEM.
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

/** Use `sched` for the learning rate (the optimizer takes a reference).
 *  @return MOM_OK, MOM_E_INVALID, MOM_E_STATE (inside begin/end). @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_set_lr(mom_optim *opt, mom_sched *sched);

/** Use `sched` for the momentum (the optimizer takes a reference).
 *  @return MOM_OK, MOM_E_INVALID, MOM_E_STATE (inside begin/end). @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_set_momentum(mom_optim *opt, mom_sched *sched);

/** Set an option (mom_optim_option). @return MOM_OK, MOM_E_INVALID, MOM_E_STATE. @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_set(mom_optim *opt, int option, double value);

/** Read an option. @return MOM_OK, MOM_E_INVALID. @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_get(double *value, const mom_optim *opt, int option);

/**
 * Start a step on a caller-owned parameter vector (n_params floats holding the true theta).
 * @param point receives where the gradient must be evaluated: params itself for SGD and CM, the
 *              optimizer's look-ahead buffer theta + mu_t v for NAG (valid until mom_optim_end()).
 * @return MOM_OK, MOM_E_INVALID, MOM_E_STATE (a step already begun).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_begin(const float **point, mom_optim *opt, float *params);

/**
 * Finish the step begun on `params` with the loss and gradient at the point.
 * @return MOM_OK; MOM_E_STATE (no step begun, or params is not the vector given to begin);
 *         MOM_E_INVALID (grad NULL); MOM_E_DIVERGED (non-finite loss, gradient or update: params,
 *         velocity and t are unchanged and the step stays begun, so it may be ended again or
 *         cancelled with mom_optim_cancel()).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_end(mom_optim *opt, float *params, double loss,
                                        const float *grad);

/** Abandon a begun step; nothing changes. @return MOM_OK, MOM_E_STATE. @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_cancel(mom_optim *opt);

/**
 * One full step on a network: gradient of the batch loss at the point the method needs, then the
 * update of mom_net_params(net). No allocation after the first call.
 * @param loss receives the batch loss at the point (may be NULL).
 * @return MOM_OK, MOM_E_INVALID, MOM_E_SHAPE (net size differs from n_params), MOM_E_STATE,
 *         MOM_E_DIVERGED (state restored), MOM_E_NOMEM, or any status of mom_net_loss_grad().
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_step_net(double *loss, mom_optim *opt, mom_net *net,
                                             const mom_batch *batch);

/** Steps completed (t). @since 0.1.0 */
MOM_API uint64_t mom_optim_steps(const mom_optim *opt);

/** Momentum mu_t the next step will use (0 for SGD). @since 0.1.0 */
MOM_API double mom_optim_momentum(const mom_optim *opt);

/** Learning rate eps_t the next step will use. @since 0.1.0 */
MOM_API double mom_optim_lr(const mom_optim *opt);

/** The velocity vector (n_params floats), owned by the optimizer; read-only. @since 0.1.0 */
MOM_API const float *mom_optim_velocity(const mom_optim *opt);

/** Number of parameters the optimizer was created for. @since 0.1.0 */
MOM_API size_t mom_optim_num_params(const mom_optim *opt);

/** Zero the velocity and the step count. @return MOM_OK, MOM_E_INVALID, MOM_E_STATE. @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_reset(mom_optim *opt);

#ifdef __cplusplus
}
#endif

#endif
