/*
 * libmominit: parameter initializers.
 *
 * An initializer is configured once (kind plus options) and applied to a network, or to chosen
 * parameter blocks of it, drawing from an explicit mom_rng. The exact draws are documented per kind
 * so that results can be golden-tested: the same seed gives bit-identical parameters everywhere.
 * Bad configurations leave the network unchanged.
 *
 * Draws and arithmetic. Blocks are visited in storage order (net.h) and a weight block row by row
 * (destination unit j = 0, 1, ...). "N(0,1)" is one mom_rng_normal() value z and a weight
 * "N(0,1) * s" is (float)(z * s) with z and s in double, rounded once; s is the product of the
 * options involved (SCALE, tanh factors 0.5), formed in double. Bias blocks draw nothing.
 *  - SPARSE / ECHO_STATE, one row with fan-in n (= cols) and K nonzeros:
 *      n <= K: every source gets N(0,1) * s, in source order (no index draws);
 *      n > K, distinct sources (default): mom_rng_sample(K of n) (K mom_rng_below draws), then K
 *        normals assigned to the sampled sources in increasing source order;
 *      n > K, REPLACEMENT: K draws mom_rng_below(n), sorted ascending, then K normals assigned in
 *        that order; a source drawn m times gets (float)((z_1 + ... + z_m) * s) (the draws add
 *        up, so the row has at most K nonzeros) [choice].
 *  - GAUSSIAN: one normal per entry, row-major: (float)(z * SCALE).
 *  - GLOROT_UNIFORM: one mom_rng_uniform() u per entry: (float)(a * (2u - 1)),
 *    a = SCALE * sqrt(6 / (cols + rows)).
 *  - GLOROT_NORMAL: (float)(z * SCALE * sqrt(2 / (cols + rows))) (the factor formed first).
 * The library is built without floating-point contraction and uses only IEEE-exact operations
 * here, so these are bit-identical on every machine. ECHO_STATE's scale factor comes from
 * mom_spectral_radius(), which uses LAPACK: bit-identical with the same LAPACK build running the
 * same kernels (OpenBLAS picks its kernels by CPU at run time); with another, the
 * radius may differ in its last bits (n <= 1024, dgeev) or by up to about 1e-12 relative
 * (n > 1024, iterative), which moves a weight by one float ulp with a probability of about 1e-8
 * (resp. 1e-5) per weight.
 *
 * Errors. mom_init_apply() and mom_init_apply_block() report their detail message on the
 * initializer (mom_init_errmsg()); mom_init_output_bias() and the presets on the network
 * (mom_net_errmsg()). On failure nothing is written: parameters are generated into scratch memory
 * and copied in only when the whole call has succeeded, and the rng is put back where it was.
 *
 * Threads: an initializer is used by one thread at a time; applying does not modify it except for
 * its detail message and MOM_INIT_OPT_REACHED_RADIUS.
 */
#ifndef MOMINIT_INIT_H
#define MOMINIT_INIT_H

#include "mominit/common.h"
#include "mominit/net.h"
#include "mominit/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Initializer kinds. Pinned values. @since 0.1.0 */
typedef enum mom_init_kind {
    /** all weights 0; biases MOM_INIT_OPT_BIAS. Draws nothing (rng may be NULL). */
    MOM_INIT_ZERO = 0,
    /** sparse initialization (SI): each unit (row of a weight block) gets K nonzero incoming
     *  weights N(0,1) * SCALE from K sources (distinct unless REPLACEMENT), the rest 0; biases
     *  BIAS. With TANH_RULE: weights *0.5 per tanh side (source layer tanh, destination tanh, as
     *  reported by mom_net_layer_act()), and the biases of tanh units 0.5 instead of BIAS. If the
     *  fan-in is at most K, every source gets one weight. Exact draws: see the top of this file. */
    MOM_INIT_SPARSE = 1,
    /** dense N(0,1) * SCALE weights; biases BIAS */
    MOM_INIT_GAUSSIAN = 2,
    /** Glorot & Bengio (2010) uniform: U(-a, a), a = SCALE * sqrt(6 / (fan_in + fan_out)),
     *  fan_in = cols and fan_out = rows of the block; biases BIAS */
    MOM_INIT_GLOROT_UNIFORM = 3,
    /** Glorot normal: N(0, 1) * SCALE * sqrt(2 / (fan_in + fan_out)); biases BIAS */
    MOM_INIT_GLOROT_NORMAL = 4,
    /** echo-state recurrent weights: SPARSE draws on a square weight block (W_hh; with the
     *  options K, SCALE, REPLACEMENT, TANH_RULE), then every weight w becomes (float)(w * c),
     *  c = RADIUS / r in double, where r is the spectral radius (largest eigenvalue modulus, NOT the
     *  largest singular value; mom_spectral_radius()) of the drawn float matrix. The radius of the
     *  stored matrix is then computed again and kept as MOM_INIT_OPT_REACHED_RADIUS (it differs
     *  from RADIUS only by the float rounding of the weights, about 1e-7 relative). A draw with
     *  r = 0 (SCALE 0, or a nilpotent pattern) cannot be rescaled: MOM_E_INVALID; so is a
     *  RADIUS so small (or large) that a drawn weight would become subnormal or 0 (overflow). */
    MOM_INIT_ECHO_STATE = 5
} mom_init_kind;

/** Options for mom_init_set() / mom_init_get(). Pinned values. @since 0.1.0 */
typedef enum mom_init_option {
    /** nonzeros per unit for SPARSE / ECHO_STATE; default 15; an integer in [1, 2^53] */
    MOM_INIT_OPT_K = 1,
    /** weight multiplier (std for GAUSSIAN); default 1; finite, >= 0 */
    MOM_INIT_OPT_SCALE = 2,
    /** nonzero: draw SPARSE sources with replacement (Martens' code); default 0; finite */
    MOM_INIT_OPT_REPLACEMENT = 3,
    /** nonzero: apply the tanh rule to SPARSE (and to ECHO_STATE's draw, where the rescaling
     *  makes it irrelevant); default 0; finite */
    MOM_INIT_OPT_TANH_RULE = 4,
    /** target spectral radius for ECHO_STATE; default 1.1; finite, > 0 */
    MOM_INIT_OPT_RADIUS = 5,
    /** value written to bias blocks (rounded to float); default 0; finite in float */
    MOM_INIT_OPT_BIAS = 6,
    /** read-only: spectral radius of the W_hh written by the last successful ECHO_STATE apply on
     *  this handle; 0 before any */
    MOM_INIT_OPT_REACHED_RADIUS = 7
} mom_init_option;

/**
 * Create an initializer of a given kind with default options.
 * @param out   receives the handle (NULL on failure); destroy with mom_init_destroy().
 * @param kind  a mom_init_kind.
 * @param alloc allocator for the handle and for the scratch memory of mom_init_apply() and
 *              mom_init_apply_block() (copied; must stay usable until the handle is destroyed),
 *              or NULL for malloc.
 * @return MOM_OK, MOM_E_INVALID (unknown kind, out NULL, incomplete allocator), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_create(mom_init **out, int kind, const mom_allocator *alloc);

/** Destroy an initializer. Accepts NULL. @since 0.1.0 */
MOM_API void mom_init_destroy(mom_init *init);

/** Detail message about the last failed call on this handle ("" if none). @since 0.1.0 */
MOM_API const char *mom_init_errmsg(const mom_init *init);

/** Set an option (mom_init_option; the ranges are given there). Any option may be set on any
 *  kind; options a kind does not use are ignored by it.
 *  @return MOM_OK, MOM_E_INVALID (init NULL, unknown option, value out of range or not finite, K
 *  not an integer, REACHED_RADIUS which is read-only; the option keeps its value). @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_init_set(mom_init *init, int option, double value);

/** Read an option into *value. @return MOM_OK, MOM_E_INVALID (NULL pointer, unknown option).
 *  @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_init_get(double *value, const mom_init *init, int option);

/**
 * Apply to every block of the network it applies to: weight blocks and bias blocks of a
 * feedforward net; for a recurrent net, ECHO_STATE applies to W_hh only and every other kind to
 * all weight and bias blocks (W_vh, W_hh, b_h, W_ho, b_o; never h0). Blocks are visited in storage
 * order, drawing from rng in order.
 * @param rng the stream to draw from (advanced by the draws); may be NULL for MOM_INIT_ZERO.
 * @return MOM_OK, MOM_E_INVALID (NULL init/net/rng, ECHO_STATE on a feedforward net, SCALE so large
 *         that a weight overflows float, a W_hh draw with spectral radius 0), MOM_E_NOMEM,
 *         MOM_E_INTERNAL (eigen-solver failure); on failure the network and the rng are unchanged
 *         and mom_init_errmsg() says why.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_apply(mom_init *init, mom_net *net, mom_rng *rng);

/**
 * Apply to one block (index as in mom_net_block()). ECHO_STATE accepts any square weight block
 * (W_hh, or a square feedforward W_l).
 * @return MOM_OK, MOM_E_INVALID (no such block, the h0 block, ECHO_STATE on a bias or non-square
 *         block, an all-zero or nilpotent matrix that cannot be rescaled, and the cases of
 *         mom_init_apply()), MOM_E_NOMEM, MOM_E_INTERNAL; on failure the network and the rng are
 *         unchanged.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_apply_block(mom_init *init, mom_net *net, size_t block,
                                               mom_rng *rng);

/**
 * Set the output biases to the mean target over a batch (the paper's "average of the outputs"):
 * feedforward: mean of targets over cases; recurrent: mean over all steps weighted by the step
 * weights of the batch (mask, or the last step of each sequence when mask is NULL; steps past a
 * sequence's length count 0). Sums are accumulated in double in (step, case, unit) order.
 * For a softmax output the biases are set to log of the mean target distribution, each mean
 * clamped below at 1e-6 (so that the initial prediction is that distribution, renormalized), and
 * for a logistic output to logit of the mean clamped to [1e-6, 1 - 1e-6]; a linear output gets the
 * mean itself. Logarithms use the library's portable log, so the result is bit-exact.
 * Only the output bias block (b_o, or b_{L-1}) is written; inputs are not read.
 * @return MOM_OK, MOM_E_INVALID (NULL, empty batch, missing targets, bad mask or lengths, no step
 *         with nonzero weight, a non-finite mean), MOM_E_SHAPE (steps > 1 for a feedforward net),
 *         MOM_E_NOMEM; on failure the network is unchanged and mom_net_errmsg() says why.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_output_bias(mom_net *net, const mom_batch *batch);

/**
 * The paper's feedforward setup in one call: SPARSE with K = 15 distinct sources, N(0,1) weights,
 * zero biases, on every layer, from a fresh stream (seed, 0); the tanh rule is on when any hidden
 * layer is tanh (it then affects only the weights touching tanh layers and the biases of tanh
 * units, which become 0.5). Equivalent to mom_init_apply() with such an initializer and
 * mom_rng_create(seed, 0).
 * @return as mom_init_apply(), plus MOM_E_INVALID for a recurrent net; the detail message is on
 *         the network.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_preset_ff(mom_net *net, uint64_t seed);

/**
 * The paper's recurrent setup (Table 4) in one call, drawing from a fresh stream (seed, 0) in block
 * order: W_vh dense N(0,1) * input_scale (0.001 for addition/multiplication, 0.1 for
 * memorization); W_hh ECHO_STATE (K = 15 distinct sources, SCALE 1, radius 1.1, no tanh rule);
 * hidden biases 0; W_ho dense N(0,1) * 0.1; output biases from `data` (mom_init_output_bias())
 * when data is not NULL, else 0; h0 (if learned) 0. Each block is generated exactly as
 * mom_init_apply_block() with those settings would on the same stream.
 * @return as mom_init_apply() and mom_init_output_bias(), plus MOM_E_INVALID for a feedforward net
 *         or an input_scale that is negative or not finite; the detail message is on the network,
 *         which is unchanged on failure.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_preset_rnn(mom_net *net, double input_scale, uint64_t seed,
                                              const mom_batch *data);

/**
 * Spectral radius (largest eigenvalue modulus) of a square row-major n x n float matrix, in double.
 * n <= 1024: LAPACK's dgeev on the whole matrix (eigenvalues only; accurate to rounding,
 * about 1e-15 relative for well-conditioned eigenvalues).
 * n > 1024: the Krylov-Schur method (Arnoldi with thick restarts, basis of 64 vectors, keeping the
 * 32 Ritz values of largest modulus, the small problems solved with dgees/dtrsen), from a fixed
 * start vector, so the result is a deterministic function of the matrix. It stops when the
 * residual of the dominant Ritz value is below 1e-11 times its modulus: on random sparse and dense
 * matrices and on matrices with a dominant complex pair it agrees with dgeev to better than 1e-12
 * relative (the tests require 1e-9). Matrices with at most n^2/8 nonzeros are multiplied in sparse
 * form; for an echo-state W_hh (K = 15) one call took about 0.4 s at n = 2000 and 5 s at
 * n = 10,000 on one x86-64 core (dgeev: 5 s at n = 2000), the number of restarts growing with n as
 * the outermost eigenvalues of a random matrix crowd together. If the iteration has not converged
 * after about 2 n^3 floating-point operations (equimodular spectra such as permutation matrices,
 * nilpotent matrices), dgeev is used on the whole matrix instead, which needs 8 n^2 bytes more.
 * ECHO_STATE calls this twice (before and after rescaling).
 * @param radius receives the radius (untouched on failure).
 * @param alloc  allocator for the workspace, or NULL for malloc.
 * @return MOM_OK, MOM_E_INVALID (NULL pointer, n == 0, n * n overflows, a non-finite entry,
 *         incomplete allocator), MOM_E_NOMEM, MOM_E_INTERNAL (eigen-solver failure).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_spectral_radius(double *radius, const float *a, size_t n,
                                              const mom_allocator *alloc);

#ifdef __cplusplus
}
#endif

#endif
