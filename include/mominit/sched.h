/*
 * libmominit: schedules, values that depend on the step number t = 0, 1, 2, ...
 *
 * Used for momentum (mu_t), learning rates (eps_t) and HF's CG decay. A schedule is immutable after
 * creation and may be shared by several optimizers; each user holds a reference. An optimizer given
 * a schedule keeps it alive, so the caller may mom_sched_destroy() its own reference at once.
 * Reference counts are atomic: a shared schedule may be queried from several threads.
 *
 * Ownership: every constructor gives the caller one reference, released with mom_sched_destroy().
 * mom_optim_set_lr(), mom_optim_set_momentum() and mom_sched_create_final_phase() take their own
 * reference, released when the optimizer (or the wrapper) is destroyed or given another schedule.
 * A schedule is freed, through the allocator it was created with, when its last reference is
 * released; that allocator must stay usable until then.
 *
 * Schedules have no detail message (they are shared and immutable): constructors report failures
 * by status only, and always set *out to NULL on failure (when out is not NULL).
 */
#ifndef MOMINIT_SCHED_H
#define MOMINIT_SCHED_H

#include "mominit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Schedule kinds. Pinned values. @since 0.1.0 */
typedef enum mom_sched_kind {
    MOM_SCHED_CONST = 1,
    MOM_SCHED_PAPER_MOMENTUM = 2,
    MOM_SCHED_PIECEWISE = 3,
    MOM_SCHED_FINAL_PHASE = 4,
    MOM_SCHED_ANNEAL = 5,
    MOM_SCHED_CALLBACK = 6
} mom_sched_kind;

/** Modes of mom_sched_create_final_phase(). @since 0.1.0 */
typedef enum mom_final_mode {
    MOM_FINAL_REPLACE = 0, /**< use `value` in the final phase */
    MOM_FINAL_MIN = 1      /**< use min(base, value): lowers, never raises (the paper's rule) */
} mom_final_mode;

/** User schedule callback: returns the value for step t. */
typedef double (*mom_sched_fn)(uint64_t t, void *user_data);

/**
 * Constant value.
 * @return MOM_OK, MOM_E_INVALID (out NULL, value non-finite), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_sched_create_const(mom_sched **out, double value,
                                                 const mom_allocator *alloc);

/**
 * The paper's momentum schedule: mu_t = min(1 - 2^(-1 - log2(floor(t / period) + 1)), mu_max)
 * = min(1 - 1 / (2 (floor(t / period) + 1)), mu_max). The paper uses period 250.
 * The value is computed as (2k + 1) / (2k + 2) with k = floor(t / period), one correctly rounded
 * division, so that with period 250: t = 0..249 gives exactly 0.5, 250 gives 0.75, and 1000, 2250,
 * 12250, 24750, 124750 give the doubles nearest to 0.9, 0.95, 0.99, 0.995, 0.999 (the same as
 * those literals in C). For k >= 2^52 the value is 1 (before the min with mu_max).
 * @param mu_max in [0, 1]; @param period >= 1.
 * @return MOM_OK, MOM_E_INVALID, MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_sched_create_paper_momentum(mom_sched **out, double mu_max,
                                                          uint64_t period,
                                                          const mom_allocator *alloc);

/**
 * Piecewise constant: value[i] for starts[i] <= t < starts[i+1]. starts[0] must be 0 and starts
 * strictly increasing. The RNN schedule of the paper is starts {0, 1000}, values {0.9, mu0}.
 * The arrays are copied. The last value holds for every t >= starts[n-1].
 * @return MOM_OK, MOM_E_INVALID (out, starts or values NULL, n 0, starts[0] != 0, starts not
 *         strictly increasing, a value non-finite), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_sched_create_piecewise(mom_sched **out, size_t n,
                                                     const uint64_t *starts, const double *values,
                                                     const mom_allocator *alloc);

/**
 * Final-phase wrapper: base(t) for t < total - final_steps, and for the last final_steps steps of
 * a run of `total` steps `value` (MOM_FINAL_REPLACE) or min(base(t), value) (MOM_FINAL_MIN).
 * The paper's low-momentum fine-tuning is (total, 1000, 0.9, MOM_FINAL_MIN). Keeps a reference to
 * base. The final phase is total - final_steps <= t, including any step past the end of the run
 * (t >= total); final_steps 0 means no final phase. In MOM_FINAL_MIN mode a NaN from base (a
 * callback) is passed through, not replaced by `value`.
 * @return MOM_OK, MOM_E_INVALID (out or base NULL, final_steps > total, value non-finite, unknown
 *         mode), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_sched_create_final_phase(mom_sched **out, mom_sched *base,
                                                       uint64_t total, uint64_t final_steps,
                                                       double value, int mode,
                                                       const mom_allocator *alloc);

/**
 * Annealing: v0 for t <= t0, then min(v0, a / (t - t0)), in double. Momentum-HF on CURVES uses
 * v0 = 1, a = 500, t0 = 4000; MNIST's 250/t is (v0, 250, 0) with v0 the value at t = 0.
 * @return MOM_OK, MOM_E_INVALID (out NULL, non-finite values, a <= 0), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_sched_create_anneal(mom_sched **out, double v0, double a,
                                                  double t0, const mom_allocator *alloc);

/**
 * A schedule computed by the caller's function. fn must be deterministic and safe to call from
 * whichever thread queries the schedule; user_data is borrowed and must outlive the schedule.
 * Callback schedules cannot be saved in checkpoints. fn is called on the thread that queries
 * the value; whatever it returns (even NaN) is the value. An optimizer rejects a momentum outside
 * [0, 1] or a learning rate that is negative or not finite when it starts a step.
 * @return MOM_OK, MOM_E_INVALID (out or fn NULL), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_sched_create_callback(mom_sched **out, mom_sched_fn fn,
                                                    void *user_data, const mom_allocator *alloc);

/** Release the caller's reference. The schedule is freed when no optimizer or wrapper holds it.
 *  Accepts NULL. @since 0.1.0 */
MOM_API void mom_sched_destroy(mom_sched *sched);

/** Value at step t (NaN for a NULL schedule). Thread-safe; allocation-free. @since 0.1.0 */
MOM_API double mom_sched_value(const mom_sched *sched, uint64_t t);

/** mom_sched_kind of the schedule, 0 for NULL. @since 0.1.0 */
MOM_API int mom_sched_kind_of(const mom_sched *sched);

#ifdef __cplusplus
}
#endif

#endif
