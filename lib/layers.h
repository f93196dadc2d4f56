/*
 * Elementwise layer math shared by feedforward and recurrent networks: hidden activations and
 * their derivatives, and the matched output nonlinearity/loss pairs (see net.h for the losses).
 * All loops are plain and contiguous so the compiler vectorizes them.
 */
#ifndef MOM_LAYERS_H
#define MOM_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Flushing: the *_fl variants take a threshold `flush` and set every value they produce (the
 * activation, delta or R-pass value named in each comment) whose magnitude is below it to 0;
 * flush = 0 keeps every value, and then they compute exactly what the plain versions do (which
 * are wrappers with flush = 0). The networks pass mom_net's flush_below (fpenv.h).
 */

/* a = act(a) in place, n values. */
void mom__act_apply(int act, float *a, size_t n);
void mom__act_apply_fl(int act, float *a, size_t n, float flush);

/* d *= act'(.) where the derivative is expressed through the activation value a = act(x):
 * linear 1, logistic a(1-a), tanh 1-a^2, relu (a > 0). n values. */
void mom__act_deriv_mul(int act, float *d, const float *a, size_t n);
void mom__act_deriv_mul_fl(int act, float *d, const float *a, size_t n, float flush);

/* Add a bias row to every row: x[r*k + j] += b[j], n rows of k. */
void mom__add_bias_rows(float *x, const float *b, size_t n, size_t k);

/* Column sums accumulated into `out` (out[j] += sum_r x[r*k + j]), n rows of k. */
void mom__col_sums_add(float *out, const float *x, size_t n, size_t k);

/*
 * Output layer on n rows of k pre-activations z: writes y = output(z) and returns the sum over
 * rows of w[r] * loss(z_r, t_r) in double (w NULL: weight 1; t NULL: returns 0 and only computes
 * y). Cross-entropies are computed from z (log-sum-exp / softplus), never log(0) or overflow.
 * Rows with weight 0 still get y but add nothing.
 */
double mom__out_forward(int output, const float *z, float *y, const float *t, const float *w,
                        size_t n, size_t k);

/*
 * The output layer of a feedforward batch in one pass per row (the row stays in cache):
 * z += b (b may be NULL); y = output(z); returns the summed loss against t (0 if t is NULL).
 * If dbias != NULL (t must then be non-NULL), z is then overwritten with the deltas
 * scale * (y - t) and dbias[j] receives their column sums (written, not accumulated).
 */
double mom__out_forward_fused(int output, float *z, const float *b, float *y, const float *t,
                              float scale, float *dbias, size_t n, size_t k);
/* (flushes the deltas) */
double mom__out_forward_fused_fl(int output, float *z, const float *b, float *y, const float *t,
                                 float scale, float *dbias, size_t n, size_t k, float flush);

/* d = scale * w[r] * (y - t): dLoss/dz for every matched pair. */
void mom__out_delta(float *d, const float *y, const float *t, const float *w, float scale,
                    size_t n, size_t k);
void mom__out_delta_fl(float *d, const float *y, const float *t, const float *w, float scale,
                       size_t n, size_t k, float flush);

/* out = scale * w[r] * H(y_r) u_r, H the Hessian of the loss with respect to z:
 * squared I, logistic diag(y(1-y)), softmax diag(y) - y y^T. out may alias u. */
void mom__out_hess(int output, float *out, const float *y, const float *u, const float *w,
                   float scale, size_t n, size_t k);
void mom__out_hess_fl(int output, float *out, const float *y, const float *u, const float *w,
                      float scale, size_t n, size_t k, float flush);

/* The quadratic form scale * sum_r u_r^T H(y_r) u_r of mom__out_hess() (H as there), in double:
 * v^T G v from the R-pass output R z = u. */
double mom__out_quad(int output, const float *y, const float *u, double scale, size_t n,
                     size_t k);

/* Sum over rows of w[r] * sum_j (y - t)^2 (no 1/2), in double. */
double mom__out_sqerr(const float *y, const float *t, const float *w, size_t n, size_t k);

/* Fused bias and activation: x[r*k + j] = act(x[r*k + j] + b[j]), n rows of k. */
void mom__bias_act(int act, float *x, const float *b, size_t n, size_t k);
void mom__bias_act_fl(int act, float *x, const float *b, size_t n, size_t k, float flush);

/* Fused R-pass step: x[r*k + j] = (x[r*k + j] + b[j]) * act'(.) with the derivative expressed
 * through the activation value a (as in mom__act_deriv_mul). b may be NULL (no bias). */
void mom__bias_deriv_mul(int act, float *x, const float *b, const float *a, size_t n, size_t k);
void mom__bias_deriv_mul_fl(int act, float *x, const float *b, const float *a, size_t n, size_t k,
                            float flush);

/* Fused backward step: d *= act'(.) through the activation value a (as mom__act_deriv_mul), and
 * sums[j] = sum_r d[r*k + j] of the result (written; the _fl version adds to sums instead when
 * `add` is set). n rows of k. */
void mom__act_deriv_mul_colsum(int act, float *d, const float *a, float *sums, size_t n,
                               size_t k);
void mom__act_deriv_mul_colsum_fl(int act, float *d, const float *a, float *sums, size_t n,
                                  size_t k, float flush, int add);

/* Column sums written into `out` (out[j] = sum_r x[r*k + j]), n rows of k. */
void mom__col_sums(float *out, const float *x, size_t n, size_t k);

/* Elementwise square: y[i] = x[i]^2 (y may alias x). */
void mom__square(float *y, const float *x, size_t n);

/* Largest |x[i]| as its bit pattern (>= 0x7f800000 if any entry is infinite or NaN). */
uint32_t mom__max_abs_bits(const float *x, size_t n);

/* Index of the largest value in x[0..k) (first on ties). */
size_t mom__argmax(const float *x, size_t k);
/* 1 if the output row y names another class than the target row t (argmax), or holds a NaN. */
int mom__class_wrong(const float *y, const float *t, size_t k);

#endif
