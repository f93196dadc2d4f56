/*
 * Shared pieces of bench_step and bench_long: clocks, medians, peak memory, and the paper's
 * benchmark configurations built the paper's way (mom_init_preset_ff / mom_init_preset_rnn).
 *
 * Configurations (paper.md sections 3 and 5):
 *   curves  784-400-200-100-50-25-6 autoencoder, mirrored, logistic hidden units except the linear
 *           code layer, logistic outputs with cross-entropy, batches of 200 CURVES images
 *   mnist   784-1000-500-250-30 autoencoder, same conventions, batches of 200 Fashion-MNIST images
 *           (the MNIST stand-in of docs/results.md) when /usr/share/datasets/fashion-mnist is
 *           readable, else CURVES images (the step time does not depend on the pixels' meaning)
 *   rnn     addition task: 2 inputs, 100 tanh hidden units, 1 linear output read at the last step
 *           with squared error, T = 80, batches of 100 sequences
 */
#ifndef MOM_BENCHUTIL_H
#define MOM_BENCHUTIL_H

#include <stddef.h>

#include "mominit/mominit.h"

/* Milliseconds on the monotonic wall clock and on the process CPU-time clock (all threads). */
double bu_wall_ms(void);
double bu_cpu_ms(void);

/* Median of v[0..n) (sorts v). */
double bu_median(double *v, size_t n);

/* Resident set size of this process now and its peak so far (since the last bu_reset_peak()),
 * in KiB, from /proc/self/status (VmRSS, VmHWM); the peak falls back to getrusage's ru_maxrss
 * where /proc is not available. -1 if neither works. */
long bu_rss_kb(void);
long bu_peak_rss_kb(void);

/* Reset the peak to the current resident set size (Linux: /proc/self/clear_refs, value 5).
 * Returns 0 on success. */
int bu_reset_peak(void);

/* The value of OPENBLAS_NUM_THREADS, or "unset". */
const char *bu_blas_threads(void);

typedef struct bu_config {
    const char *name;      /* "curves", "mnist", "rnn" */
    int recurrent;
    size_t n_layers;       /* feedforward weight layers */
    size_t sizes[16];      /* feedforward unit-layer widths */
    int acts[16];          /* feedforward hidden activations */
    size_t I, H, O, T;     /* recurrent sizes */
    size_t batch;          /* cases or sequences per batch */
    double lr;             /* learning rate of the benchmark's NAG optimizer */
    double mu_max;         /* cap of the paper's momentum schedule */
} bu_config;

/* Fill *c for "curves", "mnist" or "rnn"; returns 0, or -1 for an unknown name. */
int bu_config_get(bu_config *c, const char *name);

/* A benchmark instance: the network initialized the paper's way, `n_batches` batches of data
 * (each inputs + targets in the layout mom_batch expects), and a NAG optimizer with the paper's
 * momentum schedule and a constant learning rate. */
typedef struct bu_setup {
    bu_config cfg;
    mom_net *net;
    mom_optim *opt;
    size_t n_batches;
    float *inputs;   /* n_batches batches, one after the other */
    float *targets;  /* autoencoders: NULL (the targets are the inputs) */
    float *mask;     /* unused (NULL) */
    size_t in_per_batch, tg_per_batch;
    const char *data_source; /* "curves", "fashion-mnist", "uniform" or "addition" */
} bu_setup;

/* Build a setup (seed fixes data and initialization). Returns 0 or -1 with a message on stderr.
 * bu_setup_create() is bu_setup_data() followed by bu_setup_model(); the memory benchmark
 * measures between the two. */
int bu_setup_create(bu_setup *s, const char *name, size_t n_batches, unsigned long long seed);
int bu_setup_data(bu_setup *s, const char *name, size_t n_batches, unsigned long long seed);
int bu_setup_model(bu_setup *s, unsigned long long seed);
void bu_setup_destroy(bu_setup *s);

/* Batch k (mod n_batches) of a setup. */
mom_batch bu_batch(const bu_setup *s, size_t k);

/* Bytes that parameters, optimizer state (NAG: velocity, look-ahead point and the gradient
 * buffer) and the activations of one batch (feedforward: every layer's outputs; recurrent: the
 * hidden states of every step) need, the sum returned and the parts in the optional outputs;
 * *batch receives the size of one batch (the caller's data, not part of the sum). */
size_t bu_need_bytes(const bu_setup *s, size_t *params, size_t *optim, size_t *acts,
                     size_t *batch);

/* The bare products of a configuration: the matrix products a loss + gradient (gv = 0) or a
 * Gauss-Newton product (gv = 1) cannot avoid, with the library's shapes, on operand buffers of
 * realistic magnitudes (activations in (0,1), small deltas and directions; the weights are the
 * network's own parameters). The bound that bench_step and bench_long compare against. */
typedef struct bu_bare {

    const bu_config *c;
    const float *p;      /* network parameters (weights read from their blocks) */
    const float *x;      /* batch inputs */
    float *v;            /* a direction for the Gauss-Newton products (P floats) */
    float *g;            /* gradient output (P floats) */
    float *act[17];      /* feedforward: act[l] n x s_l for l >= 1 */
    float *d0, *d1;      /* feedforward deltas (n x max width) */
    float *hs, *ds, *z;  /* recurrent: T*n x H states and deltas, n x O outputs */
    float *wt;           /* recurrent: W_hh transposed (the forward recurrence uses it) */
    size_t off[17];      /* feedforward: offset of W_l (l = 1..L) in the parameter vector */
    /* optional (NULL: none): called by the feedforward loss + gradient products as soon as a
     * layer's weights are no longer needed (after the product that writes their gradient and the
     * one that passes the deltas down), with the range [off, off + len) of that layer's weights
     * and biases (bench_step's one-pass floor updates them there, its gradient still in cache) */
    void (*after_grad)(void *ctx, size_t off, size_t len);
    void *ctx;
    size_t bytes;        /* bytes of the buffers above that this struct allocated */
    struct mom__team *team; /* the network's thread team (the RNN's groups of sequences run on it) */
} bu_bare;

int bu_bare_init(bu_bare *b, const bu_setup *s); /* 0, or -1 when out of memory */
void bu_bare_run(const bu_bare *b, int gv);
void bu_bare_free(bu_bare *b);

#endif
