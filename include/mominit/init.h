/*
 * libmominit: parameter initializers.
 *
 * An initializer is configured once (kind plus options) and applied to a network, or to chosen
 * parameter blocks of it, drawing from an explicit mom_rng. The exact draws are documented per kind
 * so that results can be golden-tested: the same seed gives bit-identical parameters everywhere.
 * Bad configurations leave the network unchanged.
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
    /** all values 0 (or MOM_INIT_OPT_BIAS for bias blocks) */
    MOM_INIT_ZERO = 0,
    /** sparse initialization (SI): each unit (row of a weight block) gets K nonzero incoming
     *  weights N(0,1) * SCALE from K sources (distinct unless REPLACEMENT), the rest 0; biases
     *  BIAS. With TANH_RULE: weights *0.5 per tanh side (source layer tanh, destination tanh),
     *  biases of tanh units 0.5. If the fan-in is below K, every source gets a weight. */
    MOM_INIT_SPARSE = 1,
    /** dense N(0,1) * SCALE weights; biases BIAS */
    MOM_INIT_GAUSSIAN = 2,
    /** Glorot & Bengio (2010) uniform: U(-a, a), a = SCALE * sqrt(6 / (fan_in + fan_out)) */
    MOM_INIT_GLOROT_UNIFORM = 3,
    /** Glorot normal: N(0, 1) * SCALE * sqrt(2 / (fan_in + fan_out)) */
    MOM_INIT_GLOROT_NORMAL = 4,
    /** echo-state recurrent weights: SPARSE draws on a square block (W_hh), then the block is
     *  rescaled so its spectral radius (largest eigenvalue modulus) equals RADIUS */
    MOM_INIT_ECHO_STATE = 5
} mom_init_kind;

/** Options for mom_init_set() / mom_init_get(). Pinned values. @since 0.1.0 */
typedef enum mom_init_option {
    MOM_INIT_OPT_K = 1,           /**< nonzeros per unit for SPARSE / ECHO_STATE; default 15 */
    MOM_INIT_OPT_SCALE = 2,       /**< weight multiplier (std for GAUSSIAN); default 1; >= 0 */
    MOM_INIT_OPT_REPLACEMENT = 3, /**< nonzero: draw SPARSE sources with replacement; default 0 */
    MOM_INIT_OPT_TANH_RULE = 4,   /**< nonzero: apply the tanh rule to SPARSE; default 0 */
    MOM_INIT_OPT_RADIUS = 5,      /**< target spectral radius for ECHO_STATE; default 1.1; > 0 */
    MOM_INIT_OPT_BIAS = 6,        /**< value written to bias blocks; default 0 */
    MOM_INIT_OPT_REACHED_RADIUS = 7 /**< read-only: radius reached by the last ECHO_STATE apply */
} mom_init_option;

/**
 * Create an initializer of a given kind with default options.
 * @return MOM_OK, MOM_E_INVALID (unknown kind, out NULL), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_create(mom_init **out, int kind, const mom_allocator *alloc);

/** Destroy an initializer. Accepts NULL. @since 0.1.0 */
MOM_API void mom_init_destroy(mom_init *init);

/** Detail message about the last failed call on this handle ("" if none). @since 0.1.0 */
MOM_API const char *mom_init_errmsg(const mom_init *init);

/** Set an option. @return MOM_OK, MOM_E_INVALID (unknown option or value out of range; the
 *  option keeps its value). @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_init_set(mom_init *init, int option, double value);

/** Read an option. @return MOM_OK, MOM_E_INVALID. @since 0.1.0 */
MOM_API MOM_NODISCARD int mom_init_get(double *value, const mom_init *init, int option);

/**
 * Apply to every block of the network it applies to: weight blocks and bias blocks of a
 * feedforward net; for a recurrent net, ECHO_STATE applies to W_hh only and every other kind to
 * all weight and bias blocks. Blocks are visited in storage order, drawing from rng in order.
 * @return MOM_OK, MOM_E_INVALID, MOM_E_NOMEM; on failure the network is unchanged.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_apply(mom_init *init, mom_net *net, mom_rng *rng);

/**
 * Apply to one block (index as in mom_net_block()).
 * @return MOM_OK, MOM_E_INVALID (no such block, ECHO_STATE on a non-square block, an all-zero
 *         matrix that cannot be rescaled), MOM_E_NOMEM; on failure the network is unchanged.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_apply_block(mom_init *init, mom_net *net, size_t block,
                                               mom_rng *rng);

/**
 * Set the output biases to the mean target over a batch (the paper's "average of the outputs"):
 * feedforward: mean of targets over cases; recurrent: weighted mean over the steps that count.
 * For a softmax output the biases are set to log of the mean target distribution (so that the
 * initial prediction equals it) and for a logistic output to logit of the clamped mean; a linear
 * output gets the mean itself.
 * @return MOM_OK, MOM_E_INVALID, MOM_E_SHAPE; on failure the network is unchanged.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_output_bias(mom_net *net, const mom_batch *batch);

/**
 * The paper's feedforward setup in one call: SPARSE with K = 15, N(0,1) weights, zero biases
 * (tanh rule on when any hidden layer is tanh), on every layer, from a fresh stream (seed, 0).
 * @return as mom_init_apply().
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_preset_ff(mom_net *net, uint64_t seed);

/**
 * The paper's recurrent setup (Table 4) in one call: W_hh ECHO_STATE (K = 15, radius 1.1),
 * W_vh dense N(0,1) * input_scale (0.001 for addition/multiplication, 0.1 for memorization),
 * W_ho dense N(0,1) * 0.1, hidden biases 0, output biases from `data` (mom_init_output_bias) when
 * data is not NULL, else 0; h0 zero. Draws from a fresh stream (seed, 0) in block order.
 * @return as mom_init_apply().
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_init_preset_rnn(mom_net *net, double input_scale, uint64_t seed,
                                              const mom_batch *data);

/**
 * Spectral radius (largest eigenvalue modulus) of a square row-major n x n float matrix,
 * computed with LAPACK's dgeev for n <= 1024 and a deterministic iterative method above that.
 * @return MOM_OK, MOM_E_INVALID, MOM_E_NOMEM, MOM_E_INTERNAL (eigen-solver failure).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_spectral_radius(double *radius, const float *a, size_t n,
                                              const mom_allocator *alloc);

#ifdef __cplusplus
}
#endif

#endif
