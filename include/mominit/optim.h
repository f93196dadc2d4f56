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
 * allocated by mom_optim_create(); no other optimizer call allocates.
 *
 * Threads: an optimizer is used by one thread at a time; schedules may be shared between
 * optimizers running in different threads (sched.h).
 *
 * docs/optim.md has a complete program for each way of driving a step.
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
 * Weight decay and clipping start off. Makes all the allocations the optimizer will ever need.
 * @return MOM_OK, MOM_E_INVALID (unknown kind, n_params 0, out NULL, incomplete allocator),
 *         MOM_E_UNSUPPORTED (a kind this function does not create: MOM_OPTIM_HF in this version),
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
 *  held). Each step rejects a value that is negative, NaN or beyond FLT_MAX.
 *  @return MOM_OK, MOM_E_INVALID (opt or sched NULL), MOM_E_STATE (inside begin/end).
 *  @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_set_lr(mom_optim *opt, mom_sched *sched);

/** Use `sched` for the momentum (the optimizer takes a reference and releases the one it held).
 *  SGD keeps it but ignores it. Each CM or NAG step rejects a value outside [0, 1].
 *  @return MOM_OK, MOM_E_INVALID (opt or sched NULL), MOM_E_STATE (inside begin/end).
 *  @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_set_momentum(mom_optim *opt, mom_sched *sched);

/** Set an option (mom_optim_option). Both take values in [0, FLT_MAX].
 *  @return MOM_OK, MOM_E_INVALID (unknown option, negative or non-finite value: the option keeps
 *          its value), MOM_E_STATE (inside begin/end). @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_set(mom_optim *opt, int option, double value);

/** Read an option. @return MOM_OK, MOM_E_INVALID. @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_get(double *value, const mom_optim *opt, int option);

/**
 * Start a step on a caller-owned parameter vector (n_params floats holding the true theta).
 * Reads mu_t and eps_t from the schedules at t = mom_optim_steps(); they are used by this step.
 * @param point receives where the gradient must be evaluated: params itself for SGD and CM, the
 *              optimizer's look-ahead buffer theta + mu_t v for NAG (valid until mom_optim_end()).
 * @param params the caller's vector, borrowed until the step ends or is cancelled; do not modify
 *              it in between.
 * @return MOM_OK, MOM_E_INVALID (a NULL pointer; a learning rate or momentum out of range at this
 *         t: no step is begun), MOM_E_STATE (a step already begun).
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
 *         so it may be ended again or cancelled with mom_optim_cancel()).
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
 * @param loss receives the batch loss at the point (may be NULL); set whenever the gradient was
 *             computed, so also on MOM_E_DIVERGED.
 * @return MOM_OK, MOM_E_INVALID (a NULL pointer, a schedule value out of range),
 *         MOM_E_SHAPE (net size differs from n_params), MOM_E_STATE (a step begun with
 *         mom_optim_begin()), MOM_E_DIVERGED (state restored), or any status of
 *         mom_net_loss_grad() (whose detail message is copied into the optimizer's). On any failure
 *         parameters, velocity and t are unchanged and no step is left begun.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_optim_step_net(double *loss, mom_optim *opt, mom_net *net,
                                             const mom_batch *batch);

/** Steps completed (t), 0 for NULL. @since 0.1.0 */
MOM_API uint64_t mom_optim_steps(const mom_optim *opt);

/** Momentum mu_t the next step will use (0 for SGD, NaN for NULL). @since 0.1.0 */
MOM_API double mom_optim_momentum(const mom_optim *opt);

/** Learning rate eps_t the next step will use (NaN for NULL). @since 0.1.0 */
MOM_API double mom_optim_lr(const mom_optim *opt);

/** The velocity vector (n_params floats), owned by the optimizer and valid until it is
 *  destroyed; read-only. For SGD it holds the last step taken. NULL for NULL. @since 0.1.0 */
MOM_API const float *mom_optim_velocity(const mom_optim *opt);

/** Number of parameters the optimizer was created for, 0 for NULL. @since 0.1.0 */
MOM_API size_t mom_optim_num_params(const mom_optim *opt);

/** Zero the velocity and the step count (schedules, options and parameters are kept).
 *  @return MOM_OK, MOM_E_INVALID, MOM_E_STATE. @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_optim_reset(mom_optim *opt);

#ifdef __cplusplus
}
#endif

#endif
