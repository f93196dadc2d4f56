/*
 * libmominit: networks (feedforward and recurrent), their losses, gradients and Gauss-Newton
 * products.
 *
 * Parameters. All weights and biases of a network live in one contiguous float vector owned by the
 * network (mom_net_params()). It is divided into blocks described by mom_net_block(). A weight
 * block has `rows` = number of destination units and `cols` = number of source units and is stored
 * row-major: entry (j, i) at offset + j*cols + i is the weight from source unit i to destination
 * unit j, so the incoming weights of one unit are contiguous. Bias blocks have rows = units,
 * cols = 1.
 *   Feedforward, for each layer l = 0..L-1 in order: W_l (sizes[l+1] x sizes[l]), b_l (sizes[l+1]).
 *   Recurrent: W_vh (H x I), W_hh (H x H), b_h (H), W_ho (O x H), b_o (O), then h0 (H) if learned.
 *
 * Losses (per case, then averaged over the cases of a batch; for RNNs summed over the weighted
 * steps of a sequence and averaged over sequences):
 *   MOM_OUT_LINEAR_SQUARED:  y = z,          loss = 1/2 * sum_k (y_k - t_k)^2
 *   MOM_OUT_LOGISTIC_XENT:   y = 1/(1+e^-z), loss = -sum_k [t_k log y_k + (1-t_k) log(1-y_k)]
 *   MOM_OUT_SOFTMAX_XENT:    y = softmax(z), loss = -sum_k t_k log y_k
 * Softmax targets of a case are expected to sum to 1 (a distribution, e.g. one-hot): the gradient
 * uses dLoss/dz = y - t for all three pairs, which for softmax holds only then.
 * The 1/2 of the squared loss is part of the loss, the gradient and the Gauss-Newton matrix alike;
 * the reported squared error (MOM_METRIC_SQUARED_ERROR) has no 1/2 (the paper's unit).
 *
 * Precision: parameters and activations are float; the nonlinearities (logistic, tanh, softmax and
 * the cross-entropies) are evaluated in float to within a few ulp (not necessarily bit-identical to
 * libm), and losses are summed in double.
 *
 * Gauss-Newton matrix: G = mean over cases of J^T H J, where J is the Jacobian of the output
 * pre-activations z with respect to the parameters and H the Hessian of the loss with respect to z
 * (I, diag(y(1-y)), diag(y) - y y^T for the three outputs above, times the step weight for RNNs).
 *
 * Memory and allocation: a network sizes its workspace for the largest batch it has seen (or was
 * reserved with mom_net_reserve()); calls with the same or smaller batches never allocate.
 *
 * Threads: a network is used by one thread at a time (see docs/conventions.md).
 */
#ifndef MOMINIT_NET_H
#define MOMINIT_NET_H

#include "mominit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Network kinds. Pinned values. @since 0.1.0 */
typedef enum mom_net_kind {
    MOM_NET_FEEDFORWARD = 1,
    MOM_NET_RECURRENT = 2
} mom_net_kind;

/** Hidden-unit activations. Pinned values. @since 0.1.0 */
typedef enum mom_act {
    MOM_ACT_LINEAR = 0,
    MOM_ACT_LOGISTIC = 1,
    MOM_ACT_TANH = 2,
    MOM_ACT_RELU = 3,
    MOM_ACT_SOFTMAX = 4 /**< reported by mom_net_layer_act() for a softmax output; not a hidden act */
} mom_act;

/** Output nonlinearity with its matched loss. Pinned values. @since 0.1.0 */
typedef enum mom_output {
    MOM_OUT_LINEAR_SQUARED = 0,
    MOM_OUT_LOGISTIC_XENT = 1,
    MOM_OUT_SOFTMAX_XENT = 2
} mom_output;

/** Parameter block roles. Pinned values. @since 0.1.0 */
typedef enum mom_block_kind {
    MOM_BLOCK_WEIGHTS = 1, /**< feedforward W_l */
    MOM_BLOCK_BIASES = 2,  /**< feedforward b_l */
    MOM_BLOCK_W_VH = 3,    /**< recurrent input->hidden */
    MOM_BLOCK_W_HH = 4,    /**< recurrent hidden->hidden */
    MOM_BLOCK_B_H = 5,     /**< recurrent hidden bias */
    MOM_BLOCK_W_HO = 6,    /**< recurrent hidden->output */
    MOM_BLOCK_B_O = 7,     /**< recurrent output bias */
    MOM_BLOCK_H0 = 8       /**< recurrent learned initial hidden state */
} mom_block_kind;

/** Flags for mom_net_create_rnn(). @since 0.1.0 */
#define MOM_RNN_LEARN_H0 0x1u

/** Evaluation metrics for mom_net_metric(). Pinned values. @since 0.1.0 */
typedef enum mom_metric {
    /** the training loss as defined above (mean over cases) */
    MOM_METRIC_LOSS = 0,
    /** sum over outputs of (y - t)^2, averaged over cases (RNN: summed over weighted steps,
     *  averaged over sequences); the paper's reconstruction error */
    MOM_METRIC_SQUARED_ERROR = 1,
    /** fraction of counted predictions whose argmax differs from the target's argmax
     *  (feedforward: per case; RNN: per step with nonzero weight); a prediction with a NaN
     *  output is wrong */
    MOM_METRIC_CLASS_ERROR = 2,
    /** RNN: fraction of sequences whose output at their last weighted step is off by more than
     *  `param` (default 0.04 when param <= 0) in any output unit; feedforward: per case */
    MOM_METRIC_THRESHOLD_ERROR = 3,
    /** RNN: mean number of weighted steps per sequence whose argmax is wrong (or that hold a
     *  NaN output); feedforward: same as MOM_METRIC_CLASS_ERROR */
    MOM_METRIC_WRONG_SYMBOLS = 4
} mom_metric;

/** Options for mom_net_set() / mom_net_get(). Pinned values. @since 0.1.0 */
typedef enum mom_net_option {
    /** nonzero: validate that batch data and parameters are finite before computing
     *  (MOM_E_INVALID naming the first bad value); default 0 */
    MOM_NET_CHECK_FINITE = 1,
    /** nonzero (the default, 1): keep subnormal floats out of the computation, which on x86 can
     *  otherwise run many times slower (docs/performance.md): the calls that compute (loss,
     *  gradient, Fisher diagonal, Gauss-Newton products, forward, metric) run with flush-to-zero
     *  set for the calling thread (x86: MXCSR FTZ and DAZ; AArch64: FPCR.FZ) and restore the
     *  caller's mode before returning; and, for the threads of a multithreaded BLAS, which that
     *  setting does not reach, hidden-unit activations and back-propagated deltas (and their
     *  Gauss-Newton counterparts) of magnitude below 2^-63 (about 1.1e-19) are set to 0 before
     *  they enter a matrix product. Values change only where such tiny numbers arise. 0: compute
     *  in the caller's floating-point mode without flushing. @since 0.1.0 */
    MOM_NET_FLUSH_SUBNORMALS = 2,
    /** threads of the work between the BLAS's products: the elementwise passes (activations,
     *  the output loss and deltas, derivatives and bias sums) of a feedforward network, the
     *  recurrence of a recurrent one (below). 0 (the default)
     *  uses as many as the BLAS uses (OpenBLAS's openblas_get_num_threads(), asked at each
     *  call; 1 with a BLAS that does not tell; the helpers are started once, for the count
     *  found then: a later rise of the BLAS's count adds none until this option is set again,
     *  a fall to 1 runs the passes on the calling thread), 1 runs them on the calling thread, k > 1 on the
     *  calling thread and k - 1 helper threads (at most 8 in all; values up to 1024 are
     *  accepted, and mom_net_get() returns the value set, not the count in use). The helpers belong to the
     *  network: started by the first pass large enough to be shared (about 32,000 values or
     *  more), asleep between passes, joined by mom_net_destroy() or when this option is set
     *  again. Results are bit-identical for every value: a pass is cut into parts by its shape
     *  alone and per-part sums are combined in a fixed order. If helpers cannot be started the
     *  network computes on the calling thread. After fork() a child computes on its calling
     *  thread. mom_optim_step_net() also shares a NAG step's two passes over the parameters
     *  with these threads (networks of 65,536 parameters or more, either kind). A recurrent
     *  network runs its recurrence in groups of at least 48 sequences on these threads when
     *  the batch has two groups or more and each group's per-step product is small (the BLAS
     *  keeps those on one thread); its per-step passes alone are too small to share.
     *  @since 0.3.0 */
    MOM_NET_THREADS = 3
} mom_net_option;

/**
 * A view of a minibatch in caller memory. The network never copies or keeps these pointers beyond
 * the call (except mom_net_gv_begin(), see there). All arrays are row-major float.
 *
 * Feedforward: n cases; steps must be 0 or 1; inputs n x n_in; targets n x n_out; mask and
 *              lengths must be NULL.
 * Recurrent:   n sequences of `steps` (T) time steps, time-major: inputs T x n x n_in (element
 *              (t, s, i) at (t*n + s)*n_in + i), targets T x n x n_out; mask T x n step weights
 *              (>= 0; NULL means the last step of every sequence has weight 1 and the others 0);
 *              lengths n sequence lengths in 1..T (NULL means all T); steps past a sequence's
 *              length are ignored.
 * targets may be NULL for computations that need no targets (forward passes).
 * This struct is frozen: it will never change; a richer view would get a new type. @since 0.1.0
 */
/* Notes on batch data:
 * - softmax targets must sum to 1 in every counted row (the gradient is y - t);
 * - recurrent inputs past a sequence's length are not used for outputs but must still be finite
 *   (they take part in whole-batch matrix products, where 0 * NaN would leak); targets of steps
 *   that do not count (weight 0, or past the length) enter no result, so they may hold anything;
 * - THRESHOLD_ERROR counts a sequence with no weighted step as correct, CLASS_ERROR is 0 when no
 *   step is weighted. */
typedef struct mom_batch {
    size_t n;
    size_t steps;
    const float *inputs;
    const float *targets;
    const float *mask;
    const size_t *lengths;
} mom_batch;

/**
 * Create a feedforward network with n_layers weight layers.
 * @param out        receives the handle (NULL on failure).
 * @param n_layers   number of weight layers L >= 1.
 * @param sizes      L+1 layer widths, each >= 1: sizes[0] inputs, sizes[L] outputs.
 * @param hidden_act L-1 activations (mom_act) of layers 1..L-1; may be NULL when L == 1.
 * @param output     mom_output of layer L. MOM_OUT_SOFTMAX_XENT needs sizes[L] >= 2.
 * @param alloc      allocator or NULL.
 * Parameters start at zero; use an initializer (init.h).
 * @return MOM_OK, MOM_E_INVALID, MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_create_ff(mom_net **out, size_t n_layers, const size_t *sizes,
                                            const int *hidden_act, int output,
                                            const mom_allocator *alloc);

/**
 * Create a recurrent network: h[t] = act(W_hh h[t-1] + W_vh x[t] + b_h), z[t] = W_ho h[t] + b_o,
 * y[t] = output(z[t]); h[-1] = h0 (zero unless MOM_RNN_LEARN_H0).
 * @param hidden_act mom_act of the hidden units (MOM_ACT_TANH in the paper).
 * @param flags      0 or MOM_RNN_LEARN_H0.
 * @return MOM_OK, MOM_E_INVALID, MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_create_rnn(mom_net **out, size_t n_in, size_t n_hidden,
                                             size_t n_out, int hidden_act, int output,
                                             uint32_t flags, const mom_allocator *alloc);

/** Destroy a network. Accepts NULL. @since 0.1.0 */
MOM_API void mom_net_destroy(mom_net *net);

/** Detail message about the last failed call on this handle ("" if none). Valid until the next
 *  call on the handle. Never NULL (for a NULL net, a static string). @since 0.1.0 */
MOM_API const char *mom_net_errmsg(const mom_net *net);

/** mom_net_kind of the network, 0 for NULL. @since 0.1.0 */
MOM_API int mom_net_kind_of(const mom_net *net);

/** Number of float parameters, 0 for NULL. @since 0.1.0 */
MOM_API size_t mom_net_num_params(const mom_net *net);

/** Input width (per case, per step), 0 for NULL. @since 0.1.0 */
MOM_API size_t mom_net_num_inputs(const mom_net *net);

/** Output width (per case, per step), 0 for NULL. @since 0.1.0 */
MOM_API size_t mom_net_num_outputs(const mom_net *net);

/** mom_output of the network, -1 for NULL. @since 0.1.0 */
MOM_API int mom_net_output(const mom_net *net);

/**
 * Number of unit layers whose activations mom_net_forward() can return: feedforward L+1 (layer 0 is
 * the input, layer L the output); recurrent 3 (0 input, 1 hidden, 2 output). 0 for NULL.
 * @since 0.1.0
 */
MOM_API size_t mom_net_num_layers(const mom_net *net);

/** Width of unit layer `layer`, 0 if out of range. @since 0.1.0 */
MOM_API size_t mom_net_layer_size(const mom_net *net, size_t layer);

/**
 * Activation (mom_act) of unit layer `layer`: MOM_ACT_LINEAR for the input layer; for the output
 * layer the output nonlinearity (linear, logistic or softmax); -1 if out of range or net NULL.
 * @since 0.1.0
 */
MOM_API int mom_net_layer_act(const mom_net *net, size_t layer);

/**
 * The parameter vector (mom_net_num_params() floats), owned by the network and valid until it is
 * destroyed. The caller may read and write it between calls. @since 0.1.0
 */
MOM_API float *mom_net_params(mom_net *net);

/** Number of parameter blocks. @since 0.1.0 */
MOM_API size_t mom_net_num_blocks(const mom_net *net);

/**
 * Describe block `index` (0-based, in storage order). Any output pointer may be NULL.
 * @param kind   mom_block_kind; @param layer feedforward layer l (0 for recurrent blocks);
 * @param rows, cols shape (see the layout above); @param offset first float in the vector.
 * @return MOM_OK, MOM_E_INVALID (net NULL or index out of range).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_block(const mom_net *net, size_t index, int *kind, size_t *layer,
                                        size_t *rows, size_t *cols, size_t *offset);

/**
 * Find the first block of a given kind and layer; *index receives its index.
 * @return MOM_OK, MOM_E_INVALID (no such block).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_find_block(size_t *index, const mom_net *net, int kind,
                                             size_t layer);

/** Set an option (mom_net_option): MOM_NET_CHECK_FINITE and MOM_NET_FLUSH_SUBNORMALS take any
 *  finite value (0 = off, else on), MOM_NET_THREADS an integer in [0, 1024].
 *  @return MOM_OK, MOM_E_INVALID (the option keeps its value). @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_net_set(mom_net *net, int option, double value);

/** Read an option. @return MOM_OK, MOM_E_INVALID. @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_net_get(double *value, const mom_net *net, int option);

/**
 * Size the workspace for batches of up to n cases of up to `steps` steps (steps ignored for
 * feedforward nets), so that later calls do not allocate; the network's helper threads
 * (MOM_NET_THREADS) are started here too when it has any to use. Growing the Gauss-Newton
 * workspace drops the activations cached by mom_net_gv_begin() (mom_net_gv() then returns
 * MOM_E_STATE).
 * @return MOM_OK, MOM_E_INVALID, MOM_E_NOMEM (the previous workspace is kept).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_reserve(mom_net *net, size_t n, size_t steps);

/**
 * Bytes of workspace currently held (activations and scratch, excluding the parameters).
 * @since 0.1.0
 */
MOM_API size_t mom_net_workspace_bytes(const mom_net *net);

/**
 * Mean loss over a batch.
 * @param loss   receives the loss (accumulated in double).
 * @param params parameter vector to evaluate at (mom_net_num_params() floats), or NULL for the
 *               network's own vector. It is not modified.
 * @return MOM_OK, MOM_E_INVALID (NULL, empty batch, missing targets, bad mask/lengths, non-finite
 *         data when checking is on), MOM_E_SHAPE, MOM_E_NOMEM. On failure *loss is untouched.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_loss(double *loss, mom_net *net, const mom_batch *batch,
                                       const float *params);

/**
 * Mean loss and its gradient with respect to the parameters.
 * @param grad receives mom_net_num_params() floats (may not alias params).
 * @return as mom_net_loss().
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_loss_grad(double *loss, float *grad, mom_net *net,
                                            const mom_batch *batch, const float *params);

/**
 * Diagonal of the empirical Fisher matrix: for each parameter, the mean over cases (sequences) of
 * the squared per-case gradient. Used by HF's preconditioner.
 * @param out mom_net_num_params() floats.
 * @return as mom_net_loss().
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_fisher_diag(float *out, mom_net *net, const mom_batch *batch,
                                              const float *params);

/**
 * Prepare Gauss-Newton products: run the forward pass on `batch` at `params` (NULL = own vector)
 * and keep the activations in a workspace separate from the one of loss/gradient calls, so that
 * loss and gradient evaluations in between do not disturb it. The batch arrays and the parameter
 * vector must stay unchanged until the next mom_net_gv_begin() or until products are done; the
 * network keeps pointers to them (it does not copy the data). The activations cached by an
 * earlier call are dropped first, whatever the outcome: after a failed call mom_net_gv() returns
 * MOM_E_STATE.
 * @return as mom_net_loss().
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_gv_begin(mom_net *net, const mom_batch *batch,
                                           const float *params);

/**
 * Gauss-Newton product out = G v (+ structural damping) on the batch of the last
 * mom_net_gv_begin(), reusing its cached activations.
 * @param out             mom_net_num_params() floats (may not alias v).
 * @param v               mom_net_num_params() floats.
 * @param struct_damping  coefficient c >= 0 of the structural damping term c * J_h^T D'' J_h v of
 *                        Martens & Sutskever (2011) on the hidden pre-activations of a recurrent
 *                        net (D'' = 0.25 (1 - h^2) for tanh; per sequence, averaged like G). Must
 *                        be 0 for feedforward nets.
 * @return MOM_OK, MOM_E_INVALID, MOM_E_STATE (no mom_net_gv_begin() yet), MOM_E_UNSUPPORTED
 *         (struct_damping on a feedforward net).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_gv(float *out, mom_net *net, const float *v,
                                     double struct_damping);

/**
 * Forward pass, returning the activations of unit layer `layer` (see mom_net_num_layers()):
 * feedforward n x size, recurrent T x n x size (time-major; entries past a sequence's length are 0).
 * Layer num_layers-1 gives the network outputs y (after the output nonlinearity).
 * @param out    buffer of n * (steps or 1) * mom_net_layer_size(net, layer) floats.
 * @return as mom_net_loss() (targets not needed).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_forward(float *out, mom_net *net, const mom_batch *batch,
                                          const float *params, size_t layer);

/**
 * An evaluation metric (mom_metric) over a batch.
 * @param param  metric parameter (the threshold of MOM_METRIC_THRESHOLD_ERROR), else ignored.
 * @return as mom_net_loss(); MOM_E_INVALID for an unknown metric, a class metric on a network
 *         with one output, or a threshold that is not finite. An output that is NaN is off by
 *         more than any threshold.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_metric(double *value, mom_net *net, const mom_batch *batch,
                                         const float *params, int metric, double param);

/**
 * Check the gradient against central finite differences of the loss in double-accumulated float
 * arithmetic at `n_probe` parameters (all when n_probe == 0 or >= num_params; else a deterministic
 * spread of indices), with step eps (0 = a default of 1e-2 relative to max(1,|theta_i|)).
 * The network's parameter vector is not modified (perturbations go to a private copy). Because the
 * losses are float computations, rounding noise limits the attainable error: on a correct net
 * expect about 1e-3 to 2e-2 with the default step (smaller steps are noisier: up to about 0.1 with
 * eps = 1e-3 on small recurrent nets); a wrong gradient gives errors of order 1.
 * @param max_rel_err receives max_i |g_i - fd_i| / max(|g_i| + |fd_i|, floor_i) where floor_i is
 *        the larger of 1e-3 times the largest |g| and the rounding noise of the difference,
 *        64 FLT_EPSILON max(|f(theta_i + h)|, |f(theta_i - h)|) / 2h: entries smaller than that
 *        noise (tiny gradients, a point where the gradient vanishes) cannot be told apart by
 *        differences, and a wrong entry above it still gives an error of order 1. Units with
 *        kinks (ReLU) can give large errors at any step when a difference crosses a kink.
 * @return as mom_net_loss(); MOM_E_INVALID also for eps negative or not finite. On failure
 *         *max_rel_err is untouched.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_check_grad(double *max_rel_err, mom_net *net,
                                             const mom_batch *batch, size_t n_probe, double eps);

/**
 * Check mom_net_gv() against J^T H J v formed explicitly, for `n_vectors` (0 means 1) random
 * directions v ~ N(0, I) drawn from `seed`. J, the Jacobian of the output pre-activations over the
 * whole batch, is built column by column from the fourth-order central difference
 * (-z(+2h) + 8 z(+h) - 8 z(-h) + z(-2h)) / 12h of forward passes (h a power of two near
 * 2^-7 max(1,|theta_i|)); H (with step weights for recurrent nets) is applied in double.
 * Intended for small networks: it needs (cases x steps x outputs x parameters) doubles and
 * 4 x parameters forward passes. The network's parameter vector is not modified. The check runs
 * mom_net_gv_begin() on `batch` and, whatever the outcome, leaves no Gauss-Newton state behind:
 * call mom_net_gv_begin() again before the next mom_net_gv(). On a correct net expect errors
 * around 1e-5 (float rounding).
 * @param max_rel_err receives max over vectors of |Gv - ref|_inf / max(|ref|_inf, tiny).
 * @return as mom_net_loss(). On failure *max_rel_err is untouched.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_net_check_gv(double *max_rel_err, mom_net *net,
                                           const mom_batch *batch, size_t n_vectors,
                                           uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif
