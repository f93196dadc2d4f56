/*
 * libmominit: schedules, values that depend on the step number t = 0, 1, 2, ...
 *
 * Used for momentum (mu_t), learning rates (eps_t) and HF's CG decay. A schedule is immutable after
 * creation and may be shared by several optimizers; each user holds a reference. An optimizer given
 * a schedule keeps it alive, so the caller may mom_sched_destroy() its own reference at once.
 * Reference counts are atomic: a shared schedule may be queried from several threads.
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
 * The arrays are copied.
 * @return MOM_OK, MOM_E_INVALID, MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_sched_create_piecewise(mom_sched **out, size_t n,
                                                     const uint64_t *starts, const double *values,
                                                     const mom_allocator *alloc);

/**
 * Final-phase wrapper: base(t) for t < total - final_steps, and for the last final_steps steps of
 * a run of `total` steps `value` (MOM_FINAL_REPLACE) or min(base(t), value) (MOM_FINAL_MIN).
 * The paper's low-momentum fine-tuning is (total, 1000, 0.9, MOM_FINAL_MIN). Keeps a reference to
 * base.
 * @return MOM_OK, MOM_E_INVALID (final_steps > total, unknown mode, base NULL), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_sched_create_final_phase(mom_sched **out, mom_sched *base,
                                                       uint64_t total, uint64_t final_steps,
                                                       double value, int mode,
                                                       const mom_allocator *alloc);

/**
 * Annealing: v0 for t <= t0, then min(v0, a / (t - t0)). Momentum-HF on CURVES uses v0 = 1,
 * a = 500, t0 = 4000.
 * @return MOM_OK, MOM_E_INVALID (non-finite values, a <= 0), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_sched_create_anneal(mom_sched **out, double v0, double a,
                                                  double t0, const mom_allocator *alloc);

/**
 * A schedule computed by the caller's function. fn must be deterministic and safe to call from
 * whichever thread queries the schedule; user_data is borrowed and must outlive the schedule.
 * Callback schedules cannot be saved in checkpoints.
 * @return MOM_OK, MOM_E_INVALID (fn NULL), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_sched_create_callback(mom_sched **out, mom_sched_fn fn,
                                                    void *user_data, const mom_allocator *alloc);

/** Release the caller's reference. The schedule is freed when no optimizer or wrapper holds it.
 *  Accepts NULL. @since 0.1.0 */
MOM_API void mom_sched_destroy(mom_sched *sched);

/** Value at step t (NaN for a NULL schedule). @since 0.1.0 */
MOM_API double mom_sched_value(const mom_sched *sched, uint64_t t);

/** mom_sched_kind of the schedule, 0 for NULL. @since 0.1.0 */
MOM_API int mom_sched_kind_of(const mom_sched *sched);

#ifdef __cplusplus
}
#endif

#endif
