/* Internal structure of mom_net shared by net.c (public entry points, validation), ffnet.c and
 * rnn.c (the two kinds) and netcheck.c (built-in checks). */
#ifndef MOM_NET_INTERNAL_H
#define MOM_NET_INTERNAL_H

#include "internal.h"
#include "team.h"

/* Pseudo layer index for forward(): the output pre-activations z instead of a unit layer. */
#define MOM__LAYER_Z ((size_t)-1)

/* Kind-specific operations. Arguments have been validated by net.c (batch shape, pointers,
 * finiteness when enabled); `p` is never NULL (the net's own vector is substituted). Each returns a
 * status and sets the detail message on failure. */
/* How an accumulating product scales G v once v^T G v is known (see mom__net_ops.gv). */
typedef struct mom__gv_acc {
    float (*scale)(double quad, void *ctx);
    void *ctx;
} mom__gv_acc;

typedef struct mom__net_ops {
    void (*destroy_impl)(mom_net *net);
    int (*reserve)(mom_net *net, size_t n, size_t steps);
    size_t (*workspace_bytes)(const mom_net *net);
    /* loss (sum over cases divided by n) and, if grad != NULL, its gradient; a kind that finds
     * the largest |gradient entry| on the way may store it in net->grad_max_bits */
    int (*loss_grad)(mom_net *net, const mom_batch *b, const float *p, double *loss, float *grad);
    int (*fisher)(mom_net *net, const mom_batch *b, const float *p, float *out);
    int (*gv_begin)(mom_net *net, const mom_batch *b, const float *p);
    /* out = G v; with acc != NULL (feedforward only) out += alpha G v instead, where
     * alpha = acc->scale(v^T G v, acc->ctx) is chosen after the R-pass (v^T G v summed in double
     * from the output layer's R-pass) and alpha = 0 leaves out untouched */
    int (*gv)(mom_net *net, const float *v, double struct_damping, float *out,
              const mom__gv_acc *acc);
    /* layer in [0, num_layers) or MOM__LAYER_Z */
    int (*forward)(mom_net *net, const mom_batch *b, const float *p, size_t layer, float *out);
    int (*metric)(mom_net *net, const mom_batch *b, const float *p, int metric, double param,
                  double *value);
} mom__net_ops;

/* A NAG step fused into a feedforward loss and gradient (optim.c's mom_optim_step_net(); see
 * mom__net_loss_grad_nag()). The network calls, in this order:
 *  - point(off, len) for each parameter block, just before the first forward product that reads
 *    it: the optimizer writes the look-ahead point theta + mu v of that range into the vector the
 *    network computes at, and returns the largest abs_bits of the range's new point values;
 *  - decide(loss, max_g) once, after the forward pass and before any gradient exists, with the
 *    loss and a bound on the magnitude of every gradient entry (+inf or NaN when none can be
 *    given); a nonzero answer commits the optimizer to updating in place;
 *  - only after a nonzero answer: update(off, len) exactly once for each parameter block, as soon
 *    as that block's gradient is final (the optimizer's velocity and parameters of the range are
 *    updated while the gradient is in cache; the point, which later products still read, is not
 *    touched).
 * After a zero answer the call completes as a plain loss and gradient at the point. */
typedef struct mom__nag_fuse {
    uint32_t (*point)(void *ctx, size_t off, size_t len);
    int (*decide)(void *ctx, double loss, double max_g);
    void (*update)(void *ctx, size_t off, size_t len);
    void *ctx;
    /* nonzero: the point is the vector being updated (NAG's look-ahead form), so a weight block
     * is handed to update() only after the backward product that reads it */
    int late_weights;
} mom__nag_fuse;

typedef struct mom__block {
    int kind;
    size_t layer, rows, cols, offset;
} mom__block;

struct mom_net {
    mom__base base;
    const mom__net_ops *ops;
    int kind;
    int output;
    size_t n_in, n_out;
    size_t n_params;
    float *params;
    void *params_mem;    /* the allocation holding params (64-byte aligned inside it) */
    size_t n_blocks;
    mom__block *blocks;
    size_t n_layers;     /* unit layers visible through forward() */
    size_t *layer_size;  /* n_layers */
    int *layer_act;      /* n_layers */
    int check_finite;
    int flush;           /* MOM_NET_FLUSH_SUBNORMALS (default 1) */
    float flush_below;   /* kernels zero activations and deltas below this (0 when off) */
    uint32_t grad_max_bits; /* see mom__net_loss_grad_max(); reset before every loss_grad */
    int want_grad_max;      /* set during mom__net_loss_grad_max(): kinds measure it then only */
    const mom__nag_fuse *nag_fuse; /* set during mom__net_loss_grad_nag() only */
    int gv_ready;        /* set by a successful gv_begin */
    mom__team team;      /* helper threads of the elementwise passes (team.h); its `threads`
                          * is MOM_NET_THREADS (default 0: the BLAS's thread count) */
    void *impl;          /* kind-specific state */
};

/* Allocate the common part: struct, parameter vector (zeroed), block and layer tables.
 * The caller fills the tables and ops/impl. On failure nothing is left allocated. */
int mom__net_new(mom_net **out, const mom_allocator *a, int kind, int output, size_t n_params,
                 size_t n_blocks, size_t n_layers);

/* mom_net_loss_grad() for the optimizer: the same checks and results, and *max_g receives the
 * largest |gradient entry| as its bit pattern (>= 0x7f800000 if any entry is inf or NaN) when
 * the network computed it on the way, else 0xffffffff (unknown). */
int mom__net_loss_grad_max(double *loss, float *grad, uint32_t *max_g, mom_net *net,
                           const mom_batch *batch, const float *params);

/* Whether mom__net_loss_grad_nag() can fuse a NAG step into this network's loss and gradient:
 * feedforward kinds without the MOM_NET_CHECK_FINITE option (which checks the point before the
 * forward pass, while the fused step forms it during that pass). */
int mom__net_can_fuse_nag(const mom_net *net);

/* mom_net_loss_grad() at `point`, with the NAG step's hooks (mom__nag_fuse; point receives the
 * look-ahead point as the forward pass goes). Only for a network where mom__net_can_fuse_nag()
 * holds. Checks the batch as mom_net_loss_grad() does; on an error no hook has been called. */
int mom__net_loss_grad_nag(double *loss, float *grad, mom_net *net, const mom_batch *batch,
                           float *point, const mom__nag_fuse *fz);

/* out += alpha G v for CG (feedforward nets; MOM_E_UNSUPPORTED otherwise), with the checks of
 * mom_net_gv(): alpha = acc->scale(v^T G v, acc->ctx) is asked for between the R-pass and the
 * backward pass, so a CG iteration can update its residual inside the product's own gemms.
 * acc and acc->scale must not be NULL (MOM_E_INVALID). */
int mom__net_gv_acc(float *out, mom_net *net, const float *v, const mom__gv_acc *acc);

/* Weight of step (t, s) of a validated batch: mask value, or 1 at the last step of the sequence
 * when the mask is NULL; 0 past the sequence's length. Feedforward batches: always 1. */
float mom__step_weight(const mom_batch *b, size_t t, size_t s);

/* Validate a batch against the network (sizes, mask, lengths; finiteness when the network's
 * MOM_NET_CHECK_FINITE option is on). need_inputs / need_targets: those arrays must be present.
 * Sets the detail message and returns MOM_E_INVALID or MOM_E_SHAPE on failure. */
int mom__net_check_batch(mom_net *net, const mom_batch *b, int need_inputs, int need_targets);

/* Length of sequence s of a validated batch. */
size_t mom__seq_len(const mom_batch *b, size_t s);

/* Recurrent nets (rnn.c): how many groups of sequences the recurrence of a batch of n sequences
 * of T steps and H units is cut into, and the sequences [*s0, *s1) of group `part` (also used by
 * bench/ to time the same products). */
size_t mom__rnn_groups(size_t n, size_t H, size_t T);
void mom__rnn_group_rows(size_t n, size_t part, size_t parts, size_t *s0, size_t *s1);

#endif
