/*
 * The one place where libmominit calls CBLAS. Everything else uses these wrappers, which take
 * size_t dimensions (callers guarantee they fit in int: networks check this at creation) and
 * row-major storage.
 */
#ifndef MOM_BLAS_H
#define MOM_BLAS_H

#include <stddef.h>

/* C = alpha * op(A) * op(B) + beta * C, row-major; op(A) is m x k, op(B) is k x n. */
void mom__gemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
               const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
               size_t ldc);

/* y = alpha * op(A) x + beta * y, A row-major m x n. */
void mom__gemv(int trans_a, size_t m, size_t n, float alpha, const float *a, size_t lda,
               const float *x, float beta, float *y);

/* y += alpha * x */
void mom__axpy(size_t n, float alpha, const float *x, float *y);

/* x *= alpha */
void mom__scal(size_t n, float alpha, float *x);

/* y = x */
void mom__copy(size_t n, const float *x, float *y);

/* sum x_i y_i accumulated in double */
double mom__dot(size_t n, const float *x, const float *y);

/* Euclidean norm accumulated in double (no overflow for float inputs). */
double mom__nrm2(size_t n, const float *x);

/* Largest dimension the wrappers accept (INT_MAX for CBLAS). */
size_t mom__blas_max_dim(void);

#endif
