/*
 * Parameter initializers (init.h): sparse initialization, echo-state scaling, dense Gaussian and
 * Glorot schemes, output biases from data, and the paper's presets; plus the spectral radius.
 *
 * Every initializer generates into scratch memory and copies into the network only when the whole
 * operation has succeeded, so a failed call leaves the network (and the rng) unchanged.
 *
 * Arithmetic is kept IEEE-exact (products and quotients of doubles, sqrt, one rounding to float;
 * the library is built with -ffp-contract=off) so that a seed gives bit-identical parameters on
 * every machine. The one exception is ECHO_STATE, whose scale factor comes from LAPACK (see
 * init.h).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "net_internal.h"

/* ---- LAPACK (Fortran interface) ------------------------------------------------------------- */

/* The prototypes follow the gfortran calling convention: every argument by reference, LOGICAL as
 * int, and one hidden trailing length argument (size_t) per CHARACTER argument. Passing the hidden
 * lengths is harmless for libraries that ignore them and required by some (gfortran >= 8 may
 * use them). LAPACK integers are assumed 32-bit (LP64 builds, the Debian default). */
typedef int (*mom__lapack_select2)(const double *wr, const double *wi);
extern void dgeev_(const char *jobvl, const char *jobvr, const int *n, double *a, const int *lda,
                   double *wr, double *wi, double *vl, const int *ldvl, double *vr,
                   const int *ldvr, double *work, const int *lwork, int *info, size_t len_jobvl,
                   size_t len_jobvr);
extern void dgees_(const char *jobvs, const char *sort, mom__lapack_select2 select, const int *n,
                   double *a, const int *lda, int *sdim, double *wr, double *wi, double *vs,
                   const int *ldvs, double *work, const int *lwork, int *bwork, int *info,
                   size_t len_jobvs, size_t len_sort);
extern void dtrsen_(const char *job, const char *compq, const int *select, const int *n, double *t,
                    const int *ldt, double *q, const int *ldq, double *wr, double *wi, int *m,
                    double *s, double *sep, double *work, const int *lwork, int *iwork,
                    const int *liwork, int *info, size_t len_job, size_t len_compq);

/* Natural logarithm with IEEE-exact operations only (rng.c), for bit-exact output biases. */
double mom__log(double x);

/* Largest n for which mom_spectral_radius() uses dgeev on the whole matrix. */
#define DENSE_MAX 1024

/* ---- the handle ----------------------------------------------------------------------------- */

struct mom_init {
    mom__base base;
    int kind;
    size_t k;
    double scale;
    int replacement;
    int tanh_rule;
    double radius;
    double bias;
    double reached; /* radius reached by the last successful ECHO_STATE apply; 0 before */
};

/* Largest accepted K: every integer up to it is exact in a double. */
#define K_MAX 9007199254740992.0 /* 2^53 */

static void init_defaults(struct mom_init *in, int kind)
{
    in->kind = kind;
    in->k = 15;
    in->scale = 1.0;
    in->replacement = 0;
    in->tanh_rule = 0;
    in->radius = 1.1;
    in->bias = 0.0;
    in->reached = 0.0;
    mom__clear(&in->base);
}

int mom_init_create(mom_init **out, int kind, const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    if (kind < MOM_INIT_ZERO || kind > MOM_INIT_ECHO_STATE)
        return MOM_E_INVALID;
    mom_allocator a;
    if (mom__alloc_init(&a, alloc) != MOM_OK)
        return MOM_E_INVALID;
    mom_init *in = mom__malloc(&a, sizeof *in);
    if (in == NULL)
        return MOM_E_NOMEM;
    in->base.alloc = a;
    init_defaults(in, kind);
    *out = in;
    return MOM_OK;
}

void mom_init_destroy(mom_init *init)
{
    if (init == NULL)
        return;
    mom_allocator a = init->base.alloc;
    mom__free(&a, init);
}

const char *mom_init_errmsg(const mom_init *init)
{
    return init == NULL ? "initializer handle is NULL" : init->base.errmsg;
}

int mom_init_set(mom_init *init, int option, double value)
{
    if (init == NULL)
        return MOM_E_INVALID;
    mom__clear(&init->base);
    switch (option) {
    case MOM_INIT_OPT_K:
        if (!(value >= 1.0 && value <= K_MAX) || value != floor(value))
            return mom__fail(&init->base, MOM_E_INVALID,
                             "K must be an integer in [1, 2^53] (got %g)", value);
        if (value > (double)SIZE_MAX)
            return mom__fail(&init->base, MOM_E_INVALID, "K = %g does not fit in size_t", value);
        init->k = (size_t)value;
        return MOM_OK;
    case MOM_INIT_OPT_SCALE:
        if (!(value >= 0.0) || !isfinite(value))
            return mom__fail(&init->base, MOM_E_INVALID,
                             "SCALE must be finite and >= 0 (got %g)", value);
        init->scale = value;
        return MOM_OK;
    case MOM_INIT_OPT_REPLACEMENT:
    case MOM_INIT_OPT_TANH_RULE:
        if (!isfinite(value))
            return mom__fail(&init->base, MOM_E_INVALID, "flag value must be finite (got %g)",
                             value);
        if (option == MOM_INIT_OPT_REPLACEMENT)
            init->replacement = value != 0.0;
        else
            init->tanh_rule = value != 0.0;
        return MOM_OK;
    case MOM_INIT_OPT_RADIUS:
        if (!(value > 0.0) || !isfinite(value))
            return mom__fail(&init->base, MOM_E_INVALID,
                             "RADIUS must be finite and > 0 (got %g)", value);
        init->radius = value;
        return MOM_OK;
    case MOM_INIT_OPT_BIAS:
        if (!isfinite(value) || fabs(value) > 3.4028234663852886e38)
            return mom__fail(&init->base, MOM_E_INVALID,
                             "BIAS must be finite in float (got %g)", value);
        init->bias = value;
        return MOM_OK;
    case MOM_INIT_OPT_REACHED_RADIUS:
        return mom__fail(&init->base, MOM_E_INVALID, "REACHED_RADIUS is read-only");
    default:
        return mom__fail(&init->base, MOM_E_INVALID, "unknown initializer option %d", option);
    }
}

int mom_init_get(double *value, const mom_init *init, int option)
{
    if (init == NULL)
        return MOM_E_INVALID;
    /* a query: the detail message is written only on failure (docs/conventions.md) */
    mom__base *b = (mom__base *)&init->base;
    if (value == NULL)
        return mom__fail(b, MOM_E_INVALID, "value pointer is NULL");
    switch (option) {
    case MOM_INIT_OPT_K: *value = (double)init->k; return MOM_OK;
    case MOM_INIT_OPT_SCALE: *value = init->scale; return MOM_OK;
    case MOM_INIT_OPT_REPLACEMENT: *value = init->replacement; return MOM_OK;
    case MOM_INIT_OPT_TANH_RULE: *value = init->tanh_rule; return MOM_OK;
    case MOM_INIT_OPT_RADIUS: *value = init->radius; return MOM_OK;
    case MOM_INIT_OPT_BIAS: *value = init->bias; return MOM_OK;
    case MOM_INIT_OPT_REACHED_RADIUS: *value = init->reached; return MOM_OK;
    default: return mom__fail(b, MOM_E_INVALID, "unknown initializer option %d", option);
    }
}

/* ---- spectral radius: dense ------------------------------------------------------------------ */

/* Largest |eigenvalue| of the column-major m x m double matrix `a` (destroyed), by dgeev without
 * eigenvectors. Returns MOM_OK, MOM_E_NOMEM or MOM_E_INTERNAL. */
static int dense_radius(double *radius, double *a, size_t m, const mom_allocator *al)
{
    if (m > (size_t)0x7fffffff / 8)
        return MOM_E_INTERNAL;
    int n = (int)m, lwork = -1, info = 0, one = 1;
    double wq = 0.0, dummy = 0.0;
    double *wr = mom__calloc(al, 2 * m, sizeof *wr);
    if (wr == NULL)
        return MOM_E_NOMEM;
    double *wi = wr + m;
    dgeev_("N", "N", &n, a, &n, wr, wi, &dummy, &one, &dummy, &one, &wq, &lwork, &info, 1, 1);
    if (info != 0) {
        mom__free(al, wr);
        return MOM_E_INTERNAL;
    }
    size_t lw = (size_t)wq;
    if (lw < 4 * m)
        lw = 4 * m;
    double *work = mom__calloc(al, lw, sizeof *work);
    if (work == NULL) {
        mom__free(al, wr);
        return MOM_E_NOMEM;
    }
    lwork = (int)lw;
    dgeev_("N", "N", &n, a, &n, wr, wi, &dummy, &one, &dummy, &one, work, &lwork, &info, 1, 1);
    mom__free(al, work);
    if (info != 0) {
        mom__free(al, wr);
        return MOM_E_INTERNAL;
    }
    double r = 0.0;
    for (size_t i = 0; i < m; i++) {
        double v = hypot(wr[i], wi[i]);
        if (v > r)
            r = v;
    }
    mom__free(al, wr);
    if (!isfinite(r))
        return MOM_E_INTERNAL;
    *radius = r;
    return MOM_OK;
}

/* dgeev on a row-major float n x n matrix. The eigenvalues of A^T are those of A, so the row-major
 * data is handed to LAPACK as it is (LAPACK then sees A^T). */
int mom__spectral_radius_dense(double *radius, const float *a, size_t n, const mom_allocator *al);
int mom__spectral_radius_dense(double *radius, const float *a, size_t n, const mom_allocator *al)
{
    size_t nn;
    if (!mom__mul_size(&nn, n, n) || n > (size_t)0x7fffffff / 8)
        return MOM_E_NOMEM;
    double *d = mom__calloc(al, nn, sizeof *d);
    if (d == NULL)
        return MOM_E_NOMEM;
    for (size_t i = 0; i < nn; i++)
        d[i] = a[i];
    int rc = dense_radius(radius, d, n, al);
    mom__free(al, d);
    return rc;
}

/* ---- spectral radius: Krylov-Schur ----------------------------------------------------------- */

/*
 * Iterative method for large matrices: the Krylov-Schur method (Stewart, SIAM J. Matrix Anal. Appl.
 * 23(3), 2001), i.e. Arnoldi with thick restarts, in double precision.
 *
 * The basis has at most m = min(KS_M, n - 1) vectors. Arnoldi extends a Krylov decomposition
 * A V_j = V_j S_j + v_{j+1} s_j^T (classical Gram-Schmidt with DGKS reorthogonalization) up
 * to j = m; the small m x m matrix S is brought to real Schur form (dgees), the Ritz value of
 * largest modulus is moved to the top (dtrsen), then the p = m/2 Ritz values of largest modulus
 * (complex pairs kept together) are moved to the leading block, which with its Schur vectors
 * becomes the start of the next cycle. The dominant Ritz value is accepted when the residual of
 * its invariant subspace (1 or 2 Schur vectors), |s^T q|, is at most KS_TOL times its modulus.
 * The start vector is a fixed sequence (x_i = frac(i * golden ratio) - 1/2), so the result is a
 * deterministic function of the matrix; an invariant subspace found early (breakdown) is kept and
 * the basis is continued with the next vector of that sequence, orthogonalized. Matrices with at
 * most n^2/8 nonzeros are multiplied in compressed-row form.
 */
#ifndef KS_M
#define KS_M 64
#endif
#define KS_ROWS 256 /* row block of the basis update */
#define KS_TOL 1e-11
/* Work budget in floating-point operations, as a multiple of n^3 (dgeev needs about 10 n^3 in
 * blocked, cache-friendly code; this loop code runs a few times slower per operation). */
#define KS_BUDGET 2.0
/* Internal status: the iteration stopped at its work budget without converging. */
#define KS_NOT_CONVERGED 1

typedef struct ks_op {
    size_t n;
    const float *dense;  /* row-major, or NULL when sparse */
    size_t *rowptr;      /* n + 1 */
    uint32_t *colind;
    double *val;
} ks_op;

static void ks_matvec(const ks_op *op, const double *x, double *y)
{
    size_t n = op->n;
    if (op->dense) {
        for (size_t i = 0; i < n; i++) {
            const float *row = op->dense + i * n;
            double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            size_t j = 0;
            for (; j + 8 <= n; j += 8)
                for (int l = 0; l < 8; l++)
                    s[l] += (double)row[j + l] * x[j + l];
            for (; j < n; j++)
                s[0] += (double)row[j] * x[j];
            y[i] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            double s = 0.0;
            for (size_t q = op->rowptr[i]; q < op->rowptr[i + 1]; q++)
                s += op->val[q] * x[op->colind[q]];
            y[i] = s;
        }
    }
}

/* Fixed "quasi-random" vector number `which` (0, 1, ...): frac((i + 1 + which * n) * phi) - 1/2. */
static void ks_start_vector(double *x, size_t n, size_t which)
{
    const double phi = 0.61803398874989484820;
    for (size_t i = 0; i < n; i++) {
        double t = (double)(i + 1 + which * n) * phi;
        x[i] = (t - floor(t)) - 0.5;
    }
}

/* Dot product with 8 partial sums in a fixed order: deterministic, and not bound by the latency
 * of one addition chain (there is no reassociation without -ffast-math). */
static double ks_dot(const double *a, const double *b, size_t n)
{
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            s[l] += a[i + l] * b[i + l];
    for (; i < n; i++)
        s[0] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static double ks_norm(const double *x, size_t n)
{
    return sqrt(ks_dot(x, x, n));
}

/* w -= V h with h = V^T w (classical Gram-Schmidt), repeated once when the first pass cancelled
 * more than 1 - 1/sqrt(2) of the norm (the DGKS criterion: "twice is enough"); V has `cols`
 * orthonormal columns of length n. h receives the total coefficients (may be NULL). Returns the
 * norm of w before orthogonalization; *after receives the norm after. */
static double ks_orth(double *w, const double *V, size_t n, size_t cols, double *h, double *tmp,
                      double *after)
{
    double before = ks_norm(w, n), cur = before;
    if (h)
        memset(h, 0, cols * sizeof *h);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t c = 0; c < cols; c++)
            tmp[c] = ks_dot(V + c * n, w, n);
        for (size_t c = 0; c < cols; c++) {
            const double *v = V + c * n;
            double s = tmp[c];
            for (size_t i = 0; i < n; i++)
                w[i] -= s * v[i];
            if (h)
                h[c] += s;
        }
        double nrm = ks_norm(w, n);
        int enough = nrm > 0.70710678118654752440 * cur;
        cur = nrm;
        if (enough)
            break;
    }
    *after = cur;
    return before;
}

static int dummy_select(const double *wr, const double *wi)
{
    (void)wr;
    (void)wi;
    return 0;
}

/* Iterative spectral radius. *cycles (may be NULL) receives the number of restart cycles.
 * Returns MOM_OK, MOM_E_NOMEM, MOM_E_INTERNAL (LAPACK failure) or KS_NOT_CONVERGED (work budget
 * KS_BUDGET * n^3 flops spent; equimodular spectra such as permutations, or nilpotent matrices). */
int mom__spectral_radius_iter(double *radius, const float *a, size_t n, const mom_allocator *al,
                              size_t *cycles);
int mom__spectral_radius_iter(double *radius, const float *a, size_t n, const mom_allocator *al,
                              size_t *cycles)
{
    if (cycles)
        *cycles = 0;
    if (n < 16)
        return mom__spectral_radius_dense(radius, a, n, al);
    size_t nn;
    if (!mom__mul_size(&nn, n, n))
        return MOM_E_NOMEM;

    /* Frobenius norm (scale for breakdown tests) and number of nonzeros. */
    double fro = 0.0;
    size_t nnz = 0;
    for (size_t i = 0; i < nn; i++) {
        double v = a[i];
        fro += v * v;
        nnz += a[i] != 0.0f;
    }
    fro = sqrt(fro);
    if (fro == 0.0) {
        *radius = 0.0;
        return MOM_OK;
    }

    int rc = MOM_E_NOMEM;
    ks_op op = {n, a, NULL, NULL, NULL};
    size_t m = n - 1 < KS_M ? n - 1 : KS_M;
    size_t p = m / 2;
    double *V = NULL, *Vn = NULL, *S = NULL, *T = NULL, *Q = NULL, *wr = NULL, *work = NULL;
    double *tmp = NULL;
    int *sel = NULL, *iwork = NULL;

    if (nnz <= nn / 8 && n <= UINT32_MAX) {
        op.dense = NULL;
        op.rowptr = mom__calloc(al, n + 1, sizeof *op.rowptr);
        op.colind = mom__calloc(al, nnz ? nnz : 1, sizeof *op.colind);
        op.val = mom__calloc(al, nnz ? nnz : 1, sizeof *op.val);
        if (!op.rowptr || !op.colind || !op.val)
            goto done;
        size_t q = 0;
        for (size_t i = 0; i < n; i++) {
            op.rowptr[i] = q;
            for (size_t j = 0; j < n; j++) {
                float v = a[i * n + j];
                if (v != 0.0f) {
                    op.colind[q] = (uint32_t)j;
                    op.val[q] = v;
                    q++;
                }
            }
        }
        op.rowptr[n] = q;
    }

    size_t vsize;
    if (!mom__mul_size(&vsize, n, m + 1))
        goto done;
    V = mom__calloc(al, vsize, sizeof *V);
    Vn = mom__calloc(al, vsize, sizeof *Vn);
    S = mom__calloc(al, (m + 1) * m, sizeof *S); /* column-major, leading dimension m + 1 */
    T = mom__calloc(al, m * m, sizeof *T);
    Q = mom__calloc(al, m * m, sizeof *Q);
    wr = mom__calloc(al, 2 * m, sizeof *wr);
    tmp = mom__calloc(al, m + 1, sizeof *tmp);
    sel = mom__calloc(al, 2 * m, sizeof *sel); /* select flags, then bwork for dgees */
    int mi = (int)m, lwork = -1, info = 0, sdim = 0, msel = 0;
    double wq = 0.0, wq2 = 0.0, s_cond = 0.0, sep = 0.0;
    int iwq = 0, liwork = -1;
    if (!V || !Vn || !S || !T || !Q || !wr || !tmp || !sel)
        goto done;
    double *wi = wr + m;
    /* workspace queries */
    dgees_("V", "N", dummy_select, &mi, T, &mi, &sdim, wr, wi, Q, &mi, &wq, &lwork, sel + m, &info,
           1, 1);
    if (info != 0) {
        rc = MOM_E_INTERNAL;
        goto done;
    }
    dtrsen_("N", "V", sel, &mi, T, &mi, Q, &mi, wr, wi, &msel, &s_cond, &sep, &wq2, &lwork, &iwq,
            &liwork, &info, 1, 1);
    if (info != 0) {
        rc = MOM_E_INTERNAL;
        goto done;
    }
    size_t lw = (size_t)(wq > wq2 ? wq : wq2);
    if (lw < 4 * m)
        lw = 4 * m;
    size_t liw = (size_t)(iwq > 1 ? iwq : 1);
    work = mom__calloc(al, lw, sizeof *work);
    iwork = mom__calloc(al, liw, sizeof *iwork);
    if (!work || !iwork)
        goto done;
    lwork = (int)lw;
    liwork = (int)liw;

    const size_t ld = m + 1;
    size_t k = 0;          /* vectors in the current decomposition */
    size_t next_vec = 0;   /* next fixed start vector */
    double *v0 = V;
    /* First vector (the fixed sequence is never orthogonal to everything; retry just in case). */
    for (;;) {
        ks_start_vector(v0, n, next_vec++);
        double nv = ks_norm(v0, n);
        if (nv > 0.0) {
            for (size_t i = 0; i < n; i++)
                v0[i] /= nv;
            break;
        }
    }

    rc = MOM_E_INTERNAL;
    const double dn = (double)n;
    const double budget = KS_BUDGET * dn * dn * dn;
    const double matvec_work = 2.0 * (op.dense ? dn * dn : (double)nnz);
    double work_done = 0.0;
    for (size_t cycle = 0;; cycle++) {
        if (work_done > budget) {
            rc = KS_NOT_CONVERGED;
            goto done;
        }
        if (cycles)
            *cycles = cycle + 1;
        /* Arnoldi extension from k to m vectors. */
        for (size_t j = k; j < m; j++) {
            double *w = V + (j + 1) * n;
            ks_matvec(&op, V + j * n, w);
            work_done += matvec_work + 8.0 * dn * (double)(j + 1);
            double *h = S + j * ld;
            double beta;
            ks_orth(w, V, n, j + 1, h, tmp, &beta);
            if (beta > 1e-12 * fro) {
                for (size_t i = 0; i < n; i++)
                    w[i] /= beta;
                h[j + 1] = beta;
                continue;
            }
            /* Breakdown: span(V) is invariant. Keep it and continue with a new direction. */
            h[j + 1] = 0.0;
            size_t tries = 0;
            for (;;) {
                if (++tries > 16)
                    goto done;
                ks_start_vector(w, n, next_vec++);
                double nw;
                double before = ks_orth(w, V, n, j + 1, NULL, tmp, &nw);
                if (nw > 1e-6 * before) {
                    for (size_t i = 0; i < n; i++)
                        w[i] /= nw;
                    break;
                }
            }
        }
        double beta = S[(m - 1) * ld + m]; /* residual coefficient of the last column */

        /* Real Schur form of the leading m x m part of S. */
        for (size_t c = 0; c < m; c++)
            memcpy(T + c * m, S + c * ld, m * sizeof *T);
        dgees_("V", "N", dummy_select, &mi, T, &mi, &sdim, wr, wi, Q, &mi, work, &lwork, sel + m,
               &info, 1, 1);
        if (info != 0)
            goto done;

        /* Move the dominant Ritz value (first of the largest modulus) to the top. */
        size_t top = 0;
        double rtop = -1.0;
        for (size_t i = 0; i < m; i++) {
            double r = hypot(wr[i], wi[i]);
            if (r > rtop) {
                rtop = r;
                top = i;
            }
        }
        memset(sel, 0, m * sizeof *sel);
        sel[top] = 1;
        dtrsen_("N", "V", sel, &mi, T, &mi, Q, &mi, wr, wi, &msel, &s_cond, &sep, work, &lwork,
                iwork, &liwork, &info, 1, 1);
        if (info != 0)
            goto done;
        double lam = hypot(wr[0], wi[0]);
        size_t bs = (wi[0] != 0.0) ? 2 : 1; /* size of the leading Schur block */
        double res = 0.0;
        for (size_t c = 0; c < bs; c++) {
            double e = beta * Q[c * m + (m - 1)];
            res += e * e;
        }
        res = sqrt(res);
        if (res <= KS_TOL * lam || res <= 1e-15 * fro) {
            *radius = lam;
            rc = MOM_OK;
            goto done;
        }

        /* Keep the p Ritz values of largest modulus (and the partner of a complex pair). The order
         * among the selected ones is kept by dtrsen, so the dominant one stays first. */
        memset(sel, 0, m * sizeof *sel);
        for (size_t c = 0; c < p; c++) {
            size_t best = m;
            double rb = -1.0;
            for (size_t i = 0; i < m; i++) {
                if (sel[i])
                    continue;
                double r = hypot(wr[i], wi[i]);
                if (r > rb) {
                    rb = r;
                    best = i;
                }
            }
            sel[best] = 1;
            if (wi[best] != 0.0) {
                /* partner: pairs occupy adjacent positions, wi > 0 first */
                size_t partner = wi[best] > 0.0 ? best + 1 : best - 1;
                sel[partner] = 1;
                c++;
            }
        }
        dtrsen_("N", "V", sel, &mi, T, &mi, Q, &mi, wr, wi, &msel, &s_cond, &sep, work, &lwork,
                iwork, &liwork, &info, 1, 1);
        if (info != 0)
            goto done;
        size_t kk = (size_t)msel;
        if (kk == 0 || kk >= m)
            goto done;

        /* New basis Vn[:, 0..kk) = V[:, 0..m) Q[:, 0..kk); Vn[:, kk] = V[:, m]. */
        work_done += 2.0 * dn * (double)m * (double)kk;
        for (size_t i0 = 0; i0 < n; i0 += KS_ROWS) { /* row blocks: V is read once */
            size_t i1 = i0 + KS_ROWS < n ? i0 + KS_ROWS : n;
            for (size_t c = 0; c < kk; c++)
                memset(Vn + c * n + i0, 0, (i1 - i0) * sizeof *Vn);
            for (size_t r = 0; r < m; r++) {
                const double *src = V + r * n;
                for (size_t c = 0; c < kk; c++) {
                    double q = Q[c * m + r];
                    double *dst = Vn + c * n;
                    for (size_t i = i0; i < i1; i++)
                        dst[i] += q * src[i];
                }
            }
        }
        memcpy(Vn + kk * n, V + m * n, n * sizeof *Vn);
        double *sw = V;
        V = Vn;
        Vn = sw;
        /* New S: leading kk x kk block of T, row kk = beta * last row of Q. */
        memset(S, 0, (m + 1) * m * sizeof *S);
        for (size_t c = 0; c < kk; c++) {
            for (size_t r = 0; r < kk; r++)
                S[c * ld + r] = T[c * m + r];
            S[c * ld + kk] = beta * Q[c * m + (m - 1)];
        }
        k = kk;
    }

done:
    mom__free(al, op.rowptr);
    mom__free(al, op.colind);
    mom__free(al, op.val);
    mom__free(al, V);
    mom__free(al, Vn);
    mom__free(al, S);
    mom__free(al, T);
    mom__free(al, Q);
    mom__free(al, wr);
    mom__free(al, tmp);
    mom__free(al, sel);
    mom__free(al, work);
    mom__free(al, iwork);
    return rc;
}

int mom_spectral_radius(double *radius, const float *a, size_t n, const mom_allocator *alloc)
{
    if (radius == NULL || a == NULL || n == 0)
        return MOM_E_INVALID;
    mom_allocator al;
    if (mom__alloc_init(&al, alloc) != MOM_OK)
        return MOM_E_INVALID;
    size_t nn;
    if (!mom__mul_size(&nn, n, n))
        return MOM_E_INVALID;
    if (mom__first_nonfinite(a, nn) < nn)
        return MOM_E_INVALID;
    double r = 0.0;
    int rc;
    if (n <= DENSE_MAX) {
        rc = mom__spectral_radius_dense(&r, a, n, &al);
    } else {
        rc = mom__spectral_radius_iter(&r, a, n, &al, NULL);
        if (rc == KS_NOT_CONVERGED)
            rc = mom__spectral_radius_dense(&r, a, n, &al);
    }
    if (rc == MOM_OK)
        *radius = r;
    return rc;
}

/* ---- generators ----------------------------------------------------------------------------- */

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/*
 * One unit of SPARSE: row[0..cols) receives the incoming weights of one destination unit.
 *  - cols <= k: every source gets N(0,1) * scale, in source order; no index draws.
 *  - otherwise, without replacement: mom_rng_sample(k of cols) (k draws of mom_rng_below, indices
 *    sorted ascending), then k normals assigned in increasing source order;
 *  - with replacement: k draws mom_rng_below(cols), sorted ascending, then k normals in that
 *    order; a source drawn more than once gets the sum of its normals (summed in double).
 * Each weight is (float)(z * scale) with z (or the sum) and scale in double. idx holds at least
 * min(k, cols) entries. Returns MOM_OK or MOM_E_INVALID (rng failure, cannot happen).
 */
int mom__sparse_row(float *row, size_t cols, size_t k, int replacement, double scale,
                    mom_rng *rng, size_t *idx);
int mom__sparse_row(float *row, size_t cols, size_t k, int replacement, double scale,
                    mom_rng *rng, size_t *idx)
{
    memset(row, 0, cols * sizeof *row);
    if (cols <= k) {
        for (size_t i = 0; i < cols; i++)
            row[i] = (float)(mom_rng_normal(rng) * scale);
        return MOM_OK;
    }
    if (!replacement) {
        int rc = mom_rng_sample(rng, idx, k, cols);
        if (rc != MOM_OK)
            return rc;
        for (size_t t = 0; t < k; t++)
            row[idx[t]] = (float)(mom_rng_normal(rng) * scale);
        return MOM_OK;
    }
    for (size_t t = 0; t < k; t++)
        idx[t] = (size_t)mom_rng_below(rng, (uint64_t)cols);
    qsort(idx, k, sizeof *idx, cmp_size);
    for (size_t t = 0; t < k;) {
        size_t src = idx[t];
        double z = 0.0;
        for (; t < k && idx[t] == src; t++)
            z += mom_rng_normal(rng);
        row[src] = (float)(z * scale);
    }
    return MOM_OK;
}

/* What a block connects: weight blocks have a source and a destination unit layer, bias blocks
 * only a destination; h0 neither. */
typedef struct block_role {
    int is_weight, is_bias;
    size_t src, dst; /* unit layers (mom_net_layer_act numbering) */
} block_role;

static block_role role_of(const mom__block *b)
{
    block_role r = {0, 0, 0, 0};
    switch (b->kind) {
    case MOM_BLOCK_WEIGHTS: r.is_weight = 1; r.src = b->layer; r.dst = b->layer + 1; break;
    case MOM_BLOCK_BIASES: r.is_bias = 1; r.dst = b->layer + 1; break;
    case MOM_BLOCK_W_VH: r.is_weight = 1; r.src = 0; r.dst = 1; break;
    case MOM_BLOCK_W_HH: r.is_weight = 1; r.src = 1; r.dst = 1; break;
    case MOM_BLOCK_B_H: r.is_bias = 1; r.dst = 1; break;
    case MOM_BLOCK_W_HO: r.is_weight = 1; r.src = 1; r.dst = 2; break;
    case MOM_BLOCK_B_O: r.is_bias = 1; r.dst = 2; break;
    default: break; /* h0 */
    }
    return r;
}

/* Scratch shared by the blocks of one call. */
typedef struct gen_scratch {
    const mom_allocator *al;
    size_t *idx; /* min(k, widest fan-in) entries */
    double reached;
} gen_scratch;

/*
 * Fill one block (already validated as applicable) into dst[0..rows*cols), drawing from rng.
 * Sets the detail message on `in` on failure.
 */
static int fill_block(struct mom_init *in, const mom_net *net, const mom__block *b, float *dst,
                      mom_rng *rng, gen_scratch *sc)
{
    block_role role = role_of(b);
    size_t rows = b->rows, cols = b->cols, count = rows * cols; /* fits: inside the vector */
    int tanh_dst = mom_net_layer_act(net, role.dst) == MOM_ACT_TANH;
    int tanh_src = role.is_weight && mom_net_layer_act(net, role.src) == MOM_ACT_TANH;

    if (role.is_bias) {
        double v = in->bias;
        if (in->kind == MOM_INIT_SPARSE && in->tanh_rule && tanh_dst)
            v = 0.5;
        for (size_t i = 0; i < count; i++)
            dst[i] = (float)v;
        return MOM_OK;
    }

    switch (in->kind) {
    case MOM_INIT_ZERO:
        memset(dst, 0, count * sizeof *dst);
        return MOM_OK;
    case MOM_INIT_GAUSSIAN:
        for (size_t i = 0; i < count; i++)
            dst[i] = (float)(mom_rng_normal(rng) * in->scale);
        break;
    case MOM_INIT_GLOROT_UNIFORM: {
        double lim = in->scale * sqrt(6.0 / ((double)cols + (double)rows));
        for (size_t i = 0; i < count; i++)
            dst[i] = (float)(lim * (2.0 * mom_rng_uniform(rng) - 1.0));
        break;
    }
    case MOM_INIT_GLOROT_NORMAL: {
        double sd = in->scale * sqrt(2.0 / ((double)cols + (double)rows));
        for (size_t i = 0; i < count; i++)
            dst[i] = (float)(mom_rng_normal(rng) * sd);
        break;
    }
    case MOM_INIT_SPARSE:
    case MOM_INIT_ECHO_STATE: {
        double scale = in->scale;
        if (in->tanh_rule) {
            if (tanh_src)
                scale *= 0.5;
            if (tanh_dst)
                scale *= 0.5;
        }
        for (size_t j = 0; j < rows; j++) {
            int rc = mom__sparse_row(dst + j * cols, cols, in->k, in->replacement, scale, rng,
                                     sc->idx);
            if (rc != MOM_OK)
                return mom__fail(&in->base, MOM_E_INTERNAL, "sampling sources failed");
        }
        break;
    }
    default:
        return mom__fail(&in->base, MOM_E_INTERNAL, "unknown initializer kind %d", in->kind);
    }

    if (mom__first_nonfinite(dst, count) < count)
        return mom__fail(&in->base, MOM_E_INVALID,
                         "SCALE = %g makes a weight overflow float", in->scale);

    if (in->kind == MOM_INIT_ECHO_STATE) {
        double r = 0.0;
        int rc = mom_spectral_radius(&r, dst, rows, sc->al);
        if (rc != MOM_OK)
            return mom__fail(&in->base, rc, "spectral radius of the sparse draw: %s",
                             mom_strerror(rc));
        if (!(r > 0.0))
            return mom__fail(&in->base, MOM_E_INVALID,
                             "the sparse draw has spectral radius 0 (all-zero or nilpotent "
                             "matrix; SCALE = %g): cannot rescale it to RADIUS",
                             in->scale);
        double c = in->radius / r;
        int lost = 0; /* a drawn weight made subnormal or 0: the pattern and radius are not kept */
        for (size_t i = 0; i < count; i++) {
            float w = (float)(dst[i] * c);
            lost |= dst[i] != 0.0f && !(fabsf(w) >= FLT_MIN);
            dst[i] = w;
        }
        if (mom__first_nonfinite(dst, count) < count)
            return mom__fail(&in->base, MOM_E_INVALID,
                             "rescaling to RADIUS = %g overflows float", in->radius);
        if (lost)
            return mom__fail(&in->base, MOM_E_INVALID,
                             "rescaling to RADIUS = %g makes a weight subnormal or 0 in float",
                             in->radius);
        rc = mom_spectral_radius(&sc->reached, dst, rows, sc->al);
        if (rc != MOM_OK)
            return mom__fail(&in->base, rc, "spectral radius after rescaling: %s",
                             mom_strerror(rc));
    }
    return MOM_OK;
}

/* Does `in` write block b when applied to the whole network? */
static int applies_to(const struct mom_init *in, const mom_net *net, const mom__block *b)
{
    if (in->kind == MOM_INIT_ECHO_STATE)
        return net->kind == MOM_NET_RECURRENT && b->kind == MOM_BLOCK_W_HH;
    block_role r = role_of(b);
    return r.is_weight || r.is_bias;
}

/* Validate that `in` can be applied to block b (apply_block); message on `in`. */
static int check_block(struct mom_init *in, const mom__block *b, size_t index)
{
    block_role r = role_of(b);
    if (!r.is_weight && !r.is_bias)
        return mom__fail(&in->base, MOM_E_INVALID,
                         "block %zu is the initial hidden state h0: initializers do not apply "
                         "to it (write it through mom_net_params())",
                         index);
    if (in->kind == MOM_INIT_ECHO_STATE) {
        if (!r.is_weight)
            return mom__fail(&in->base, MOM_E_INVALID,
                             "ECHO_STATE applies to a square weight block; block %zu holds "
                             "biases",
                             index);
        if (b->rows != b->cols)
            return mom__fail(&in->base, MOM_E_INVALID,
                             "ECHO_STATE needs a square block; block %zu is %zu x %zu", index,
                             b->rows, b->cols);
    }
    return MOM_OK;
}

/*
 * Apply `in` to the blocks [first, last) of net (whole: only those it applies to; otherwise every
 * block must be applicable), generating into a scratch copy and copying into `params` (the net's
 * vector or a copy of it) only on success. On failure the rng is restored to its state at entry.
 * `al` is the allocator for scratch memory. Message on `in`.
 */
static int apply_range(struct mom_init *in, mom_net *net, float *params, mom_rng *rng,
                       size_t first, size_t last, int whole, const mom_allocator *al)
{
    size_t lo = SIZE_MAX, hi = 0, widest = 0, n_applied = 0;
    for (size_t i = first; i < last; i++) {
        const mom__block *b = &net->blocks[i];
        if (whole ? !applies_to(in, net, b) : check_block(in, b, i) != MOM_OK) {
            if (!whole)
                return MOM_E_INVALID;
            continue;
        }
        n_applied++;
        if (b->offset < lo)
            lo = b->offset;
        if (b->offset + b->rows * b->cols > hi)
            hi = b->offset + b->rows * b->cols;
        if (role_of(b).is_weight && b->cols > widest)
            widest = b->cols;
    }
    if (n_applied == 0) {
        if (in->kind == MOM_INIT_ECHO_STATE)
            return mom__fail(&in->base, MOM_E_INVALID,
                             "ECHO_STATE applies to the W_hh block of a recurrent network; use "
                             "mom_init_apply_block() for a square feedforward block");
        return MOM_OK;
    }
    int draws = in->kind != MOM_INIT_ZERO;
    if (draws && rng == NULL)
        return mom__fail(&in->base, MOM_E_INVALID, "rng is NULL");

    size_t n_idx = in->k < widest ? in->k : widest;
    gen_scratch sc = {al, NULL, 0.0};
    float *buf = mom__calloc(al, hi - lo, sizeof *buf);
    if (buf == NULL)
        return mom__fail(&in->base, MOM_E_NOMEM, "out of memory for %zu scratch parameters",
                         hi - lo);
    if (n_idx > 0 && (in->kind == MOM_INIT_SPARSE || in->kind == MOM_INIT_ECHO_STATE)) {
        sc.idx = mom__calloc(al, n_idx, sizeof *sc.idx);
        if (sc.idx == NULL) {
            mom__free(al, buf);
            return mom__fail(&in->base, MOM_E_NOMEM, "out of memory for %zu source indices",
                             n_idx);
        }
    }
    memcpy(buf, params + lo, (hi - lo) * sizeof *buf);

    struct mom_rng saved;
    if (rng)
        saved = *rng;
    int rc = MOM_OK;
    for (size_t i = first; i < last && rc == MOM_OK; i++) {
        const mom__block *b = &net->blocks[i];
        if (whole && !applies_to(in, net, b))
            continue;
        rc = fill_block(in, net, b, buf + (b->offset - lo), rng, &sc);
    }
    if (rc == MOM_OK) {
        memcpy(params + lo, buf, (hi - lo) * sizeof *buf);
        if (in->kind == MOM_INIT_ECHO_STATE)
            in->reached = sc.reached;
    } else if (rng) {
        *rng = saved;
    }
    mom__free(al, sc.idx);
    mom__free(al, buf);
    return rc;
}

int mom_init_apply(mom_init *init, mom_net *net, mom_rng *rng)
{
    if (init == NULL)
        return MOM_E_INVALID;
    mom__clear(&init->base);
    if (net == NULL)
        return mom__fail(&init->base, MOM_E_INVALID, "network is NULL");
    return apply_range(init, net, net->params, rng, 0, net->n_blocks, 1, &init->base.alloc);
}

int mom_init_apply_block(mom_init *init, mom_net *net, size_t block, mom_rng *rng)
{
    if (init == NULL)
        return MOM_E_INVALID;
    mom__clear(&init->base);
    if (net == NULL)
        return mom__fail(&init->base, MOM_E_INVALID, "network is NULL");
    if (block >= net->n_blocks)
        return mom__fail(&init->base, MOM_E_INVALID,
                         "block %zu does not exist (network has %zu blocks)", block,
                         net->n_blocks);
    return apply_range(init, net, net->params, rng, block, block + 1, 0, &init->base.alloc);
}

/* ---- output biases --------------------------------------------------------------------------- */

/* Clamp for logit/log of mean targets: the initial prediction stays in [OUT_EPS, 1 - OUT_EPS]. */
#define OUT_EPS 1e-6

/* Index of the output bias block (FF: biases of the last layer; RNN: b_o). */
static int find_output_bias(size_t *index, const mom_net *net)
{
    for (size_t i = net->n_blocks; i-- > 0;) {
        const mom__block *b = &net->blocks[i];
        if (b->kind == MOM_BLOCK_B_O ||
            (b->kind == MOM_BLOCK_BIASES && b->layer + 2 == net->n_layers)) {
            *index = i;
            return MOM_OK;
        }
    }
    return MOM_E_INTERNAL;
}

/* Compute the output biases for `batch` into out[0..n_out). Message on net. */
static int compute_output_bias(float *out, mom_net *net, const mom_batch *batch)
{
    int rc = mom__net_check_batch(net, batch, 0, 1);
    if (rc != MOM_OK)
        return rc;
    size_t k = net->n_out;
    double *sum = mom__calloc(&net->base.alloc, k, sizeof *sum);
    if (sum == NULL)
        return mom__fail(&net->base, MOM_E_NOMEM, "out of memory for %zu output sums", k);
    double wsum = 0.0;
    size_t steps = net->kind == MOM_NET_RECURRENT ? batch->steps : 1;
    for (size_t t = 0; t < steps; t++) {
        for (size_t s = 0; s < batch->n; s++) {
            double w = net->kind == MOM_NET_RECURRENT ? (double)mom__step_weight(batch, t, s)
                                                      : 1.0;
            if (w == 0.0)
                continue;
            const float *tg = batch->targets + (t * batch->n + s) * k;
            for (size_t j = 0; j < k; j++)
                sum[j] += w * (double)tg[j];
            wsum += w;
        }
    }
    if (!(wsum > 0.0)) {
        mom__free(&net->base.alloc, sum);
        return mom__fail(&net->base, MOM_E_INVALID,
                         "no step of the batch has a nonzero weight: no mean target");
    }
    for (size_t j = 0; j < k; j++) {
        double m = sum[j] / wsum, v;
        if (!isfinite(m)) {
            mom__free(&net->base.alloc, sum);
            return mom__fail(&net->base, MOM_E_INVALID,
                             "the mean of target %zu is not finite", j);
        }
        switch (net->output) {
        case MOM_OUT_LOGISTIC_XENT:
            if (m < OUT_EPS)
                m = OUT_EPS;
            if (m > 1.0 - OUT_EPS)
                m = 1.0 - OUT_EPS;
            v = mom__log(m) - mom__log(1.0 - m);
            break;
        case MOM_OUT_SOFTMAX_XENT:
            v = mom__log(m < OUT_EPS ? OUT_EPS : m);
            break;
        default:
            v = m;
            break;
        }
        out[j] = (float)v;
        if (!isfinite(out[j])) {
            mom__free(&net->base.alloc, sum);
            return mom__fail(&net->base, MOM_E_INVALID,
                             "the mean of target %zu (%g) overflows float", j, m);
        }
    }
    mom__free(&net->base.alloc, sum);
    return MOM_OK;
}

int mom_init_output_bias(mom_net *net, const mom_batch *batch)
{
    if (net == NULL)
        return MOM_E_INVALID;
    mom__clear(&net->base);
    size_t bi;
    if (find_output_bias(&bi, net) != MOM_OK)
        return mom__fail(&net->base, MOM_E_INTERNAL, "network has no output bias block");
    const mom__block *b = &net->blocks[bi];
    float *tmp = mom__calloc(&net->base.alloc, b->rows, sizeof *tmp);
    if (tmp == NULL)
        return mom__fail(&net->base, MOM_E_NOMEM, "out of memory for %zu biases", b->rows);
    int rc = compute_output_bias(tmp, net, batch);
    if (rc == MOM_OK)
        memcpy(net->params + b->offset, tmp, b->rows * sizeof *tmp);
    mom__free(&net->base.alloc, tmp);
    return rc;
}

/* ---- presets ---------------------------------------------------------------------------------- */

/* Apply an on-stack initializer to one block of `params` (a copy of the net's vector) through the
 * network's allocator; copy its message to the net. */
static int preset_apply(struct mom_init *in, mom_net *net, float *params, mom_rng *rng,
                        size_t block)
{
    int rc = apply_range(in, net, params, rng, block, block + 1, 0, &net->base.alloc);
    if (rc != MOM_OK)
        mom__fail(&net->base, rc, "%s", in->base.errmsg);
    return rc;
}

int mom_init_preset_ff(mom_net *net, uint64_t seed)
{
    if (net == NULL)
        return MOM_E_INVALID;
    mom__clear(&net->base);
    if (net->kind != MOM_NET_FEEDFORWARD)
        return mom__fail(&net->base, MOM_E_INVALID,
                         "mom_init_preset_ff needs a feedforward network");
    struct mom_init in;
    memset(&in, 0, sizeof in);
    in.base.alloc = net->base.alloc;
    init_defaults(&in, MOM_INIT_SPARSE);
    for (size_t l = 1; l + 1 < net->n_layers; l++)
        if (net->layer_act[l] == MOM_ACT_TANH)
            in.tanh_rule = 1;
    struct mom_rng rng;
    mom__rng_init(&rng, seed, 0);
    rng.base.alloc = net->base.alloc;
    mom__clear(&rng.base);
    int rc = apply_range(&in, net, net->params, &rng, 0, net->n_blocks, 1, &net->base.alloc);
    if (rc != MOM_OK)
        mom__fail(&net->base, rc, "%s", in.base.errmsg);
    return rc;
}

int mom_init_preset_rnn(mom_net *net, double input_scale, uint64_t seed, const mom_batch *data)
{
    if (net == NULL)
        return MOM_E_INVALID;
    mom__clear(&net->base);
    if (net->kind != MOM_NET_RECURRENT)
        return mom__fail(&net->base, MOM_E_INVALID,
                         "mom_init_preset_rnn needs a recurrent network");
    if (!(input_scale >= 0.0) || !isfinite(input_scale))
        return mom__fail(&net->base, MOM_E_INVALID,
                         "input_scale must be finite and >= 0 (got %g)", input_scale);
    /* Everything is generated into a copy of the parameters; the net is written at the end. */
    const mom_allocator *al = &net->base.alloc;
    float *p = mom__calloc(al, net->n_params, sizeof *p);
    if (p == NULL)
        return mom__fail(&net->base, MOM_E_NOMEM, "out of memory for %zu parameters",
                         net->n_params);
    memcpy(p, net->params, net->n_params * sizeof *p);

    struct mom_rng rng;
    mom__rng_init(&rng, seed, 0);
    rng.base.alloc = *al;
    mom__clear(&rng.base);
    struct mom_init in;
    memset(&in, 0, sizeof in);
    in.base.alloc = *al;
    int rc = MOM_OK;
    for (size_t i = 0; i < net->n_blocks && rc == MOM_OK; i++) {
        const mom__block *b = &net->blocks[i];
        switch (b->kind) {
        case MOM_BLOCK_W_VH:
            init_defaults(&in, MOM_INIT_GAUSSIAN);
            in.scale = input_scale;
            rc = preset_apply(&in, net, p, &rng, i);
            break;
        case MOM_BLOCK_W_HH:
            init_defaults(&in, MOM_INIT_ECHO_STATE); /* K = 15, SCALE 1, RADIUS 1.1 */
            rc = preset_apply(&in, net, p, &rng, i);
            break;
        case MOM_BLOCK_W_HO:
            init_defaults(&in, MOM_INIT_GAUSSIAN);
            in.scale = 0.1;
            rc = preset_apply(&in, net, p, &rng, i);
            break;
        case MOM_BLOCK_B_O:
            if (data != NULL) {
                rc = compute_output_bias(p + b->offset, net, data);
                break;
            }
            memset(p + b->offset, 0, b->rows * b->cols * sizeof *p);
            break;
        default: /* b_h, h0 */
            memset(p + b->offset, 0, b->rows * b->cols * sizeof *p);
            break;
        }
    }
    if (rc == MOM_OK)
        memcpy(net->params, p, net->n_params * sizeof *p);
    mom__free(al, p);
    return rc;
}
