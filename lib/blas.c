/* CBLAS wrappers; see blas.h. */
#include <limits.h>
#include <math.h>
#include <cblas.h>

#include "blas.h"

size_t mom__blas_max_dim(void) { return (size_t)INT_MAX; }

void mom__gemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
               const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
               size_t ldc)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        /* BLAS would do the same, but some implementations mishandle k == 0. */
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda,
                b, (int)ldb, beta, c, (int)ldc);
}

void mom__gemv(int trans_a, size_t m, size_t n, float alpha, const float *a, size_t lda,
               const float *x, float beta, float *y)
{
    if (m == 0 || n == 0)
        return;
    cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, (int)m, (int)n, alpha, a,
                (int)lda, x, 1, beta, y, 1);
}

void mom__axpy(size_t n, float alpha, const float *x, float *y)
{
    while (n > 0) {
        int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        cblas_saxpy(chunk, alpha, x, 1, y, 1);
        x += chunk;
        y += chunk;
        n -= (size_t)chunk;
    }
}

void mom__scal(size_t n, float alpha, float *x)
{
    while (n > 0) {
        int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        cblas_sscal(chunk, alpha, x, 1);
        x += chunk;
        n -= (size_t)chunk;
    }
}

void mom__copy(size_t n, const float *x, float *y)
{
    while (n > 0) {
        int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        cblas_scopy(chunk, x, 1, y, 1);
        x += chunk;
        y += chunk;
        n -= (size_t)chunk;
    }
}

double mom__dot(size_t n, const float *x, const float *y)
{
    double s = 0.0;
    while (n > 0) {
        int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        s += cblas_dsdot(chunk, x, 1, y, 1);
        x += chunk;
        y += chunk;
        n -= (size_t)chunk;
    }
    return s;
}

double mom__nrm2(size_t n, const float *x)
{
    /* Float inputs squared in double cannot overflow (FLT_MAX^2 < DBL_MAX) unless n is
     * astronomically large, so a plain sum of squares is exact enough and cheap. */
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return sqrt(s);
}
