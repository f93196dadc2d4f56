/* Internal structure of mom_sched, shared by sched.c (the schedules), optim.c (which holds
 * references) and the checkpoint module (which serializes the parameters of each kind). Not
 * installed. */
#ifndef MOM_SCHED_INTERNAL_H
#define MOM_SCHED_INTERNAL_H

#include <stdatomic.h>

#include "internal.h"

/* A schedule is immutable after creation except for its reference count. The parameters below are
 * exactly what the constructor was given (after validation), so a serializer can write them and a
 * loader can rebuild the same schedule with the public constructor of the same kind. */
struct mom_sched {
    mom_allocator alloc; /* the allocator it was created with; frees it */
    atomic_size_t refs;  /* references held: the creator's plus one per user */
    int kind;            /* mom_sched_kind */
    union {
        struct { /* MOM_SCHED_CONST */
            double value;
        } cst;
        struct { /* MOM_SCHED_PAPER_MOMENTUM */
            double mu_max;
            uint64_t period;
        } paper;
        struct { /* MOM_SCHED_PIECEWISE: n >= 1, starts[0] == 0, strictly increasing */
            size_t n;
            uint64_t *starts; /* n entries, in the same allocation as the struct */
            double *values;   /* n entries, in the same allocation as the struct */
        } pw;
        struct { /* MOM_SCHED_FINAL_PHASE: holds a reference to base */
            struct mom_sched *base;
            uint64_t total, final_steps;
            double value;
            int mode; /* mom_final_mode */
        } fin;
        struct { /* MOM_SCHED_ANNEAL */
            double v0, a, t0;
        } ann;
        struct { /* MOM_SCHED_CALLBACK: not serializable */
            mom_sched_fn fn;
            void *user_data;
        } cb;
    } u;
};

/* Take a reference (thread-safe). Returns s; NULL is passed through. */
mom_sched *mom__sched_retain(mom_sched *s);

/* Drop a reference (thread-safe); the last one frees the schedule and releases the reference a
 * final-phase wrapper holds on its base. Accepts NULL. mom_sched_destroy() is this function. */
void mom__sched_release(mom_sched *s);

/* Current number of references (for tests and diagnostics; racy by nature if shared). */
size_t mom__sched_refcount(const mom_sched *s);

#endif
