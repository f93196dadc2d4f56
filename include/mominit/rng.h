/*
 * libmominit: explicit random number streams.
 *
 * Generator: Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy as
 * 1, 2, 3", SC 2011), a counter-based generator. A stream is identified by (seed, stream): the
 * 64-bit seed is the Philox key, the 64-bit stream number fills the upper half of the 128-bit
 * counter and the lower half counts blocks of four 32-bit outputs. Different stream numbers give
 * independent, non-overlapping sequences (2^64 blocks each, after which a stream starts over from
 * its first block), so one seed can feed one stream per handle, per worker or per MPI rank.
 *
 * Every derived value is computed with IEEE arithmetic only (no libm), so the same seed gives
 * bit-identical numbers on every machine and compiler. docs/rng.md gives the exact derivations.
 */
#ifndef MOMINIT_RNG_H
#define MOMINIT_RNG_H

#include "mominit/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Number of 64-bit words in a serialized RNG state (mom_rng_get_state). @since 0.1.0 */
#define MOM_RNG_STATE_WORDS 6

/**
 * Create a stream positioned at its beginning.
 * @param out    receives the handle (NULL on failure); destroy with mom_rng_destroy().
 * @param seed   any value; the Philox key.
 * @param stream any value; selects an independent sequence for the same seed.
 * @param alloc  allocator, or NULL for malloc.
 * @return MOM_OK, MOM_E_INVALID (out NULL or incomplete allocator), MOM_E_NOMEM.
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_rng_create(mom_rng **out, uint64_t seed, uint64_t stream,
                                         const mom_allocator *alloc);

/** Destroy a stream. Accepts NULL. @since 0.1.0 */
MOM_API void mom_rng_destroy(mom_rng *rng);

/** Detail message about the last failed call on this handle ("" if none). @since 0.1.0 */
MOM_API const char *mom_rng_errmsg(const mom_rng *rng);

/** Reposition a stream at the beginning of (seed, stream). @since 0.1.0 */
MOM_API void mom_rng_reseed(mom_rng *rng, uint64_t seed, uint64_t stream);

/** Next raw 32-bit output. @since 0.1.0 */
MOM_API uint32_t mom_rng_u32(mom_rng *rng);

/** Next 64-bit output: two 32-bit outputs, the first in the high half. @since 0.1.0 */
MOM_API uint64_t mom_rng_u64(mom_rng *rng);

/** Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). Returns 0 for n == 0. @since 0.1.0 */
MOM_API uint64_t mom_rng_below(mom_rng *rng, uint64_t n);

/** Uniform double in [0, 1): the top 53 bits of mom_rng_u64() times 2^-53. @since 0.1.0 */
MOM_API double mom_rng_uniform(mom_rng *rng);

/** Uniform float in [0, 1): the top 24 bits of mom_rng_u32() times 2^-24. @since 0.1.0 */
MOM_API float mom_rng_uniformf(mom_rng *rng);

/**
 * Standard normal double by Marsaglia's polar method on mom_rng_uniform() pairs; each accepted pair
 * gives two values, the second kept for the next call (part of the state). @since 0.1.0
 */
MOM_API double mom_rng_normal(mom_rng *rng);

/**
 * Fill out[0..n) with mean + stddev * mom_rng_normal(), rounded to float.
 * @return MOM_OK, MOM_E_INVALID (rng or out NULL with n > 0, non-finite mean or stddev).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_rng_fill_normal(mom_rng *rng, float *out, size_t n, double mean,
                                              double stddev);

/**
 * Fill out[0..n) with lo + (hi - lo) * mom_rng_uniform(), rounded to float.
 * @return MOM_OK, MOM_E_INVALID (NULL pointers with n > 0, hi < lo, non-finite bounds).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_rng_fill_uniform(mom_rng *rng, float *out, size_t n, double lo,
                                               double hi);

/**
 * Sample k distinct integers from [0, n) without replacement (Floyd's algorithm), written to
 * out[0..k) in increasing order. Uses k draws of mom_rng_below(). No allocation.
 * @return MOM_OK, MOM_E_INVALID (k > n, or out NULL with k > 0).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_rng_sample(mom_rng *rng, size_t *out, size_t k, size_t n);

/**
 * Copy the complete state (key, counter, buffered outputs, cached normal) into
 * state[0..MOM_RNG_STATE_WORDS), for checkpoints. @since 0.1.0
 */
MOM_API void mom_rng_get_state(const mom_rng *rng, uint64_t state[MOM_RNG_STATE_WORDS]);

/**
 * Restore a state produced by mom_rng_get_state(). The stream then continues exactly where the
 * saved one was.
 * @return MOM_OK, MOM_E_INVALID (NULL) or MOM_E_FORMAT (a state that cannot have been produced
 *         by mom_rng_get_state; the stream is left unchanged).
 * @since 0.1.0
 */
MOM_API MOM_NODISCARD int mom_rng_set_state(mom_rng *rng, const uint64_t state[MOM_RNG_STATE_WORDS]);

#ifdef __cplusplus
}
#endif

#endif
