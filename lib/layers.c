/* Elementwise layer math; see layers.h. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "layers.h"

/*
 * The elementwise loops below must vectorize: at -O2 GCC only vectorizes loops that need no
 * runtime checks ("very cheap" cost model), and with -ftrapping-math it will not if-convert the
 * selects of the branch-free exp/log below. Neither option changes any computed value (no code
 * here inspects floating-point exception flags), so relax both for this file only.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "vect-cost-model=dynamic")
#endif

/* The hot loops are compiled for AVX-512, AVX2 and the baseline (internal.h, MOM__CLONES). */
#define MOM_CLONES MOM__CLONES

/* The passes that evaluate the activations and the output losses (mom__act_apply_fl(),
 * mom__bias_act_fl(), mom__out_forward(), mom__out_forward_fused_fl(): every activation and
 * output kind, not only the logistic and cross-entropy ones that motivated it) may also contract
 * a*b+c into FMA: the AVX-512 and
 * AVX2 clones then compute them in about 20% less time, to within the same accuracy (an FMA
 * rounds once where a multiply and an add round twice), while the baseline clone, without FMA,
 * computes exactly as before. Results are deterministic on a given machine but may differ in the
 * last bit between machines with and without FMA. */
#if defined(__GNUC__) && !defined(__clang__)
#define MOM_CONTRACT __attribute__((optimize("fp-contract=fast")))
#else
#define MOM_CONTRACT
#endif

/* The helpers must be inlined into every clone to run at its vector width. */
#if defined(__GNUC__)
#define MOM_INLINE static inline __attribute__((always_inline))
#else
#define MOM_INLINE static inline
#endif

/*
 * exp(x) in float, written as straight-line arithmetic (a Cephes-style polynomial after the
 * reduction x = n ln2 + r, 2^n assembled from the bits of the rounded n) so that loops calling it
 * vectorize, unlike calls to expf(). Relative error below 1.5 ulp on [-87, 88]; results below
 * e^-87 are flushed to 0 (no subnormals), results above e^88 saturate at e^88; NaN propagates.
 */
MOM_INLINE float exp_core(float x, int upper)
{
    const float lo = -87.0f, hi = 88.0f;
    float xc = x < lo ? lo : x; /* NaN passes through both clamps */
    if (upper)
        xc = xc > hi ? hi : xc;
    const float magic = 12582912.0f; /* 1.5 * 2^23: t's low mantissa bits hold round(x log2 e) */
    float t = xc * 1.44269504088896341f + magic;
    float fn = t - magic;
    float r = xc - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint32_t bits = (tb - 0x4B400000u + 127u) << 23; /* 2^n, n in [-126, 127] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float res = p * scale;
    uint32_t rb;
    memcpy(&rb, &res, sizeof rb);
    rb &= x < lo ? 0u : 0xFFFFFFFFu;
    memcpy(&res, &rb, sizeof res);
    return res;
}

MOM_INLINE float fast_expf(float x) { return exp_core(x, 1); }

/* fast_expf for x <= 0 (or NaN): the upper clamp is not needed. */
MOM_INLINE float fast_exp_neg(float x) { return exp_core(x, 0); }

/*
 * log(1 + e) for e in [0, 1] in float, straight-line like fast_expf and without a division:
 * e q(e), with q a degree-9 polynomial fitted to log(1 + e)/e by least squares on 4000 Chebyshev
 * nodes of [0, 1] (coefficients rounded to float), evaluated by Horner's rule. Below 2 ulp over
 * [0, 1] (1.6e-7 relative, measured on 2 million points against a double log1p); tiny e keep full
 * relative accuracy (q(0) = 1).
 */
MOM_INLINE float log1p_unit(float e)
{
    float q = -3.256378462538123e-3f;
    q = q * e + 1.9907161593437195e-2f;
    q = q * e - 5.7064201682806015e-2f;
    q = q * e + 1.0614264756441116e-1f;
    q = q * e - 1.5311862528324127e-1f;
    q = q * e + 1.9678117334842682e-1f;
    q = q * e - 2.4954558908939362e-1f;
    q = q * e + 3.3330005407333374e-1f;
    q = q * e - 4.999990463256836e-1f;
    q = q * e + 1.0f;
    return e * q;
}

/* 1 / (1 + e^-x) from e = e^-|x| <= 1: no overflow, and exactly 0 (not subnormal) below -87. */
MOM_INLINE float fast_logistic(float x)
{
    float e = fast_exp_neg(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) * (1.0f / (1.0f + e));
}

/* tanh(x) in float, straight-line: the Cephes odd polynomial for |x| < 0.625, else
 * 1 - 2 / (e^{2|x|} + 1) with the sign of x. About 2 ulp; NaN propagates. */
MOM_INLINE float fast_tanhf(float x)
{
    float ax = fabsf(x);
    float z = x * x;
    float small = -5.70498872745e-3f;
    small = small * z + 2.06390887954e-2f;
    small = small * z - 5.37397155531e-2f;
    small = small * z + 1.33314422036e-1f;
    small = small * z - 3.33332819422e-1f;
    small = small * z * x + x;
    float large = 1.0f - 2.0f / (fast_expf(2.0f * ax) + 1.0f);
    uint32_t lb, xb;
    memcpy(&lb, &large, sizeof lb);
    memcpy(&xb, &x, sizeof xb);
    lb |= xb & 0x80000000u;
    memcpy(&large, &lb, sizeof large);
    return ax < 0.625f ? small : large;
}

/* v, or 0 when |v| < thr (the flush of fpenv.h; thr = 0 keeps every value, NaN included). */
MOM_INLINE float flushf(float v, float thr) { return fabsf(v) < thr ? 0.0f : v; }

MOM_CLONES MOM_CONTRACT void mom__act_apply_fl(int act, float *a, size_t n, float flush)
{
    switch (act) {
    case MOM_ACT_LOGISTIC:
        for (size_t i = 0; i < n; i++)
            a[i] = flushf(fast_logistic(a[i]), flush);
        break;
    case MOM_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            a[i] = flushf(fast_tanhf(a[i]), flush);
        break;
    case MOM_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            a[i] = flushf(a[i] > 0.0f ? a[i] : 0.0f, flush);
        break;
    default: /* linear */
        if (flush > 0.0f)
            for (size_t i = 0; i < n; i++)
                a[i] = flushf(a[i], flush);
        break;
    }
}

void mom__act_apply(int act, float *a, size_t n) { mom__act_apply_fl(act, a, n, 0.0f); }

MOM_CLONES void mom__act_deriv_mul_fl(int act, float *d, const float *a, size_t n, float flush)
{
    switch (act) {
    case MOM_ACT_LOGISTIC:
        for (size_t i = 0; i < n; i++)
            d[i] = flushf(d[i] * (a[i] * (1.0f - a[i])), flush);
        break;
    case MOM_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            d[i] = flushf(d[i] * (1.0f - a[i] * a[i]), flush);
        break;
    case MOM_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            d[i] = flushf(a[i] > 0.0f ? d[i] : 0.0f, flush);
        break;
    default:
        if (flush > 0.0f)
            for (size_t i = 0; i < n; i++)
                d[i] = flushf(d[i], flush);
        break;
    }
}

void mom__act_deriv_mul(int act, float *d, const float *a, size_t n)
{
    mom__act_deriv_mul_fl(act, d, a, n, 0.0f);
}

MOM_CLONES void mom__add_bias_rows(float *x, const float *b, size_t n, size_t k)
{
    for (size_t r = 0; r < n; r++) {
        float *row = x + r * k;
        for (size_t j = 0; j < k; j++)
            row[j] += b[j];
    }
}

MOM_CLONES void mom__col_sums_add(float *out, const float *x, size_t n, size_t k)
{
    for (size_t r = 0; r < n; r++) {
        const float *row = x + r * k;
        for (size_t j = 0; j < k; j++)
            out[j] += row[j];
    }
}

#define LOGISTIC_CHUNK 512

/*
 * One row of k logistic output units with the cross-entropy loss, in one pass: z (plus the bias b
 * when has_b), y = 1 / (1 + e^-z) into yr, and, when tr != NULL, the row's loss in double,
 *     -[t log y + (1 - t) log(1 - y)] = z w + log(1 + e^-|z|),  w = 1 - t if z > 0, else -t,
 * a sum of two terms >= 0 for targets in [0, 1] (no cancellation; z w is one rounding, or none
 * with the log term in an FMA), each unit's value widened to double and summed in sixteen double
 * lanes per chunk (folded to eight, then added pairwise). With has_d (needs tr) the output delta flush(scale (y - t)) replaces z in zr
 * and is added to dbias; otherwise zr keeps z (with the bias when has_b). always_inline with
 * constant flags: each caller gets its own straight loop.
 */
MOM_INLINE double xent_row(float *restrict zr, const float *restrict br, float *restrict yr,
                           const float *restrict tr, size_t k, int has_b, int has_d, float scale,
                           float *restrict dbias, float flush)
{
    double loss = 0.0;
    for (size_t j0 = 0; j0 < k; j0 += LOGISTIC_CHUNK) {
        size_t m = k - j0 < LOGISTIC_CHUNK ? k - j0 : LOGISTIC_CHUNK;
        float *restrict zc = zr + j0, *restrict yc = yr + j0;
        const float *restrict bc = has_b ? br + j0 : NULL;
        if (tr == NULL) {
            for (size_t j = 0; j < m; j++) {
                float z = has_b ? zc[j] + bc[j] : zc[j];
                if (has_b)
                    zc[j] = z;
                yc[j] = fast_logistic(z);
            }
            continue;
        }
        const float *restrict tc = tr + j0;
        float *restrict dbc = has_d ? dbias + j0 : NULL;
        float term[LOGISTIC_CHUNK];
        for (size_t j = 0; j < m; j++) {
            float z = has_b ? zc[j] + bc[j] : zc[j];
            float t = tc[j];
            float e = fast_exp_neg(-fabsf(z));
            float y = (z >= 0.0f ? 1.0f : e) * (1.0f / (1.0f + e));
            yc[j] = y;
            float w = z > 0.0f ? 1.0f - t : -t;
            term[j] = z * w + log1p_unit(e);
            if (has_d) {
                float d = flushf(scale * (y - t), flush);
                zc[j] = d;
                dbc[j] += d;
            } else if (has_b) {
                zc[j] = z;
            }
        }
        double acc[16] = {0.0};
        size_t j = 0;
        for (; j + 16 <= m; j += 16)
            for (size_t q = 0; q < 16; q++)
                acc[q] += (double)term[j + q];
        for (; j < m; j++)
            acc[0] += (double)term[j];
        for (size_t q = 0; q < 8; q++)
            acc[q] += acc[q + 8];
        loss += ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }
    return loss;
}

/* One row of the output layer: y = output(z) and, if t != NULL, the row's loss in double. */
MOM_INLINE double out_row(int output, const float *zr, float *yr, const float *tr, size_t k)
{
    double loss = 0.0;
    switch (output) {
    case MOM_OUT_LOGISTIC_XENT:
        /* zr is only read: no bias, no delta */
        loss = xent_row((float *)zr, NULL, yr, tr, k, 0, 0, 0.0f, NULL, 0.0f);
        break;
    case MOM_OUT_SOFTMAX_XENT: {
        /* shifted by the row maximum: e_j = e^(z_j - max) <= 1, summed in double;
         * loss = sum_j t_j (lse - z_j) with lse = max + log(sum) */
        float zmax = zr[0];
        for (size_t j = 1; j < k; j++)
            zmax = zr[j] > zmax ? zr[j] : zmax;
        for (size_t j = 0; j < k; j++)
            yr[j] = fast_expf(zr[j] - zmax);
        double sum = 0.0;
        for (size_t j = 0; j < k; j++)
            sum += yr[j];
        float inv = (float)(1.0 / sum);
        for (size_t j = 0; j < k; j++)
            yr[j] *= inv;
        if (tr) {
            double lse = (double)zmax + log(sum);
            for (size_t j = 0; j < k; j++)
                loss += (double)tr[j] * (lse - (double)zr[j]);
        }
        break;
    }
    default: /* linear, 1/2 squared error */
        for (size_t j = 0; j < k; j++)
            yr[j] = zr[j];
        if (tr) {
            for (size_t j = 0; j < k; j++) {
                double e = (double)zr[j] - tr[j];
                loss += 0.5 * e * e;
            }
        }
        break;
    }
    return loss;
}

MOM_CLONES MOM_CONTRACT double mom__out_forward(int output, const float *z, float *y,
                                                const float *t, const float *w, size_t n,
                                                size_t k)
{
    double total = 0.0;
    for (size_t r = 0; r < n; r++) {
        const float *tr = t ? t + r * k : NULL;
        double loss = out_row(output, z + r * k, y + r * k, tr, k);
        double wr = w ? (double)w[r] : 1.0;
        if (tr && wr != 0.0)
            total += wr * loss;
    }
    return total;
}

MOM_CLONES MOM_CONTRACT double mom__out_forward_fused_fl(int output, float *z, const float *b,
                                                         float *y, const float *t, float scale,
                                                         float *dbias, size_t n, size_t k,
                                                         float flush)
{
    double total = 0.0;
    if (dbias)
        for (size_t j = 0; j < k; j++)
            dbias[j] = 0.0f;
    for (size_t r = 0; r < n; r++) {
        float *zr = z + r * k, *yr = y + r * k;
        const float *tr = t ? t + r * k : NULL;
        if (output == MOM_OUT_LOGISTIC_XENT && b != NULL) {
            /* the costliest case (autoencoders): bias, output, loss and delta in one pass */
            if (dbias && tr)
                total += xent_row(zr, b, yr, tr, k, 1, 1, scale, dbias, flush);
            else
                total += xent_row(zr, b, yr, tr, k, 1, 0, 0.0f, NULL, 0.0f);
            continue;
        }
        if (b)
            for (size_t j = 0; j < k; j++)
                zr[j] += b[j];
        total += out_row(output, zr, yr, tr, k);
        if (dbias && tr) {
            for (size_t j = 0; j < k; j++) {
                float d = flushf(scale * (yr[j] - tr[j]), flush);
                zr[j] = d;
                dbias[j] += d;
            }
        }
    }
    return t ? total : 0.0;
}

double mom__out_forward_fused(int output, float *z, const float *b, float *y, const float *t,
                              float scale, float *dbias, size_t n, size_t k)
{
    return mom__out_forward_fused_fl(output, z, b, y, t, scale, dbias, n, k, 0.0f);
}

MOM_CLONES void mom__out_delta_fl(float *d, const float *y, const float *t, const float *w,
                                  float scale, size_t n, size_t k, float flush)
{
    for (size_t r = 0; r < n; r++) {
        float s = w ? scale * w[r] : scale;
        const float *yr = y + r * k, *tr = t + r * k;
        float *dr = d + r * k;
        if (s == 0.0f) { /* a row that does not count: its targets are never read (any value) */
            for (size_t j = 0; j < k; j++)
                dr[j] = 0.0f;
            continue;
        }
        for (size_t j = 0; j < k; j++)
            dr[j] = flushf(s * (yr[j] - tr[j]), flush);
    }
}

void mom__out_delta(float *d, const float *y, const float *t, const float *w, float scale,
                    size_t n, size_t k)
{
    mom__out_delta_fl(d, y, t, w, scale, n, k, 0.0f);
}

MOM_CLONES void mom__out_hess_fl(int output, float *out, const float *y, const float *u,
                                 const float *w, float scale, size_t n, size_t k, float flush)
{
    for (size_t r = 0; r < n; r++) {
        float s = w ? scale * w[r] : scale;
        const float *yr = y + r * k, *ur = u + r * k;
        float *o = out + r * k;
        switch (output) {
        case MOM_OUT_LOGISTIC_XENT:
            for (size_t j = 0; j < k; j++)
                o[j] = flushf(s * yr[j] * (1.0f - yr[j]) * ur[j], flush);
            break;
        case MOM_OUT_SOFTMAX_XENT: {
            double yu = 0.0;
            for (size_t j = 0; j < k; j++)
                yu += (double)yr[j] * ur[j];
            float fyu = (float)yu;
            for (size_t j = 0; j < k; j++)
                o[j] = flushf(s * yr[j] * (ur[j] - fyu), flush);
            break;
        }
        default:
            for (size_t j = 0; j < k; j++)
                o[j] = flushf(s * ur[j], flush);
            break;
        }
    }
}

void mom__out_hess(int output, float *out, const float *y, const float *u, const float *w,
                   float scale, size_t n, size_t k)
{
    mom__out_hess_fl(output, out, y, u, w, scale, n, k, 0.0f);
}

/* mom__out_quad() for the element-wise Hessians (logistic: h = y (1 - y); squared: h = 1) over k
 * values, sum of h u^2 over MOM__LANES accumulators. */
MOM_CLONES static double quad_diag(int logistic, const float *y, const float *u, size_t k)
{
    double s[MOM__LANES] = {0};
    size_t j = 0;
#if MOM__VEC
    mom__vd acc = {0};
    for (; j + MOM__LANES <= k; j += MOM__LANES) {
        mom__vf uv, yv;
        MOM__VLOAD(uv, u + j);
        mom__vf t = uv * uv;
        if (logistic) {
            MOM__VLOAD(yv, y + j);
            t = yv * (1.0f - yv) * t;
        }
        acc += MOM__VWIDEN(t);
    }
    MOM__VSPILL(acc, s);
#endif
    for (; j < k; j++) {
        float t = u[j] * u[j];
        if (logistic)
            t = y[j] * (1.0f - y[j]) * t;
        s[j % MOM__LANES] += (double)t;
    }
    return MOM__LANES_SUM(s);
}

double mom__out_quad(int output, const float *y, const float *u, double scale, size_t n,
                     size_t k)
{
    if (output != MOM_OUT_SOFTMAX_XENT) /* element-wise H: one pass over all rows */
        return scale * quad_diag(output == MOM_OUT_LOGISTIC_XENT, y, u, n * k);
    double total = 0.0;
    for (size_t r = 0; r < n; r++) {
        /* u^T (diag(y) - y y^T) u = sum y u^2 - (sum y u)^2 */
        const float *yr = y + r * k, *ur = u + r * k;
        double yu = 0.0, yuu = 0.0;
        for (size_t j = 0; j < k; j++) {
            yu += (double)yr[j] * ur[j];
            yuu += (double)yr[j] * ur[j] * ur[j];
        }
        total += yuu - yu * yu;
    }
    return scale * total;
}

double mom__out_sqerr(const float *y, const float *t, const float *w, size_t n, size_t k)
{
    double total = 0.0;
    for (size_t r = 0; r < n; r++) {
        double wr = w ? (double)w[r] : 1.0;
        if (wr == 0.0)
            continue;
        double s = 0.0;
        for (size_t j = 0; j < k; j++) {
            double e = (double)y[r * k + j] - t[r * k + j];
            s += e * e;
        }
        total += wr * s;
    }
    return total;
}

size_t mom__argmax(const float *x, size_t k)
{
    size_t best = 0;
    for (size_t j = 1; j < k; j++)
        if (x[j] > x[best])
            best = j;
    return best;
}

int mom__class_wrong(const float *y, const float *t, size_t k)
{
    for (size_t j = 0; j < k; j++)
        if (y[j] != y[j])
            return 1; /* a NaN output names no class: wrong, whatever argmax would say */
    return mom__argmax(y, k) != mom__argmax(t, k);
}

/* The fused loops below keep the switch outside the loops so that each inner loop is a plain
 * contiguous pass the compiler can vectorize. */

MOM_CLONES MOM_CONTRACT void mom__bias_act_fl(int act, float *x, const float *b, size_t n,
                                              size_t k, float flush)
{
    for (size_t r = 0; r < n; r++) {
        /* a row never overlaps the biases: no runtime alias checks in the loops */
        float *restrict row = x + r * k;
        const float *restrict bias = b;
        switch (act) {
        case MOM_ACT_LOGISTIC:
            for (size_t j = 0; j < k; j++)
                row[j] = flushf(fast_logistic(row[j] + bias[j]), flush);
            break;
        case MOM_ACT_TANH:
            for (size_t j = 0; j < k; j++)
                row[j] = flushf(fast_tanhf(row[j] + bias[j]), flush);
            break;
        case MOM_ACT_RELU:
            for (size_t j = 0; j < k; j++) {
                float v = row[j] + bias[j];
                row[j] = flushf(v > 0.0f ? v : 0.0f, flush);
            }
            break;
        default:
            for (size_t j = 0; j < k; j++)
                row[j] = flushf(row[j] + bias[j], flush);
            break;
        }
    }
}

void mom__bias_act(int act, float *x, const float *b, size_t n, size_t k)
{
    mom__bias_act_fl(act, x, b, n, k, 0.0f);
}

MOM_CLONES void mom__bias_deriv_mul_fl(int act, float *x, const float *b, const float *a,
                                       size_t n, size_t k, float flush)
{
    if (b == NULL) {
        mom__act_deriv_mul_fl(act, x, a, n * k, flush);
        return;
    }
    for (size_t r = 0; r < n; r++) {
        float *xr = x + r * k;
        const float *ar = a + r * k;
        switch (act) {
        case MOM_ACT_LOGISTIC:
            for (size_t j = 0; j < k; j++)
                xr[j] = flushf((xr[j] + b[j]) * (ar[j] * (1.0f - ar[j])), flush);
            break;
        case MOM_ACT_TANH:
            for (size_t j = 0; j < k; j++)
                xr[j] = flushf((xr[j] + b[j]) * (1.0f - ar[j] * ar[j]), flush);
            break;
        case MOM_ACT_RELU:
            for (size_t j = 0; j < k; j++)
                xr[j] = flushf(ar[j] > 0.0f ? xr[j] + b[j] : 0.0f, flush);
            break;
        default:
            for (size_t j = 0; j < k; j++)
                xr[j] = flushf(xr[j] + b[j], flush);
            break;
        }
    }
}

void mom__bias_deriv_mul(int act, float *x, const float *b, const float *a, size_t n, size_t k)
{
    mom__bias_deriv_mul_fl(act, x, b, a, n, k, 0.0f);
}

MOM_CLONES void mom__act_deriv_mul_colsum_fl(int act, float *d, const float *a, float *sums,
                                             size_t n, size_t k, float flush, int add)
{
    for (size_t j = 0; j < k && !add; j++)
        sums[j] = 0.0f;
    for (size_t r = 0; r < n; r++) {
        /* rows of d, rows of a and the sums never overlap: no runtime alias checks */
        float *restrict dr = d + r * k;
        const float *restrict ar = a + r * k;
        float *restrict sr = sums;
        switch (act) {
        case MOM_ACT_LOGISTIC:
            for (size_t j = 0; j < k; j++) {
                float v = flushf(dr[j] * (ar[j] * (1.0f - ar[j])), flush);
                dr[j] = v;
                sr[j] += v;
            }
            break;
        case MOM_ACT_TANH:
            for (size_t j = 0; j < k; j++) {
                float v = flushf(dr[j] * (1.0f - ar[j] * ar[j]), flush);
                dr[j] = v;
                sr[j] += v;
            }
            break;
        case MOM_ACT_RELU:
            for (size_t j = 0; j < k; j++) {
                float v = flushf(ar[j] > 0.0f ? dr[j] : 0.0f, flush);
                dr[j] = v;
                sr[j] += v;
            }
            break;
        default:
            for (size_t j = 0; j < k; j++) {
                float v = flushf(dr[j], flush);
                dr[j] = v;
                sr[j] += v;
            }
            break;
        }
    }
}

void mom__act_deriv_mul_colsum(int act, float *d, const float *a, float *sums, size_t n, size_t k)
{
    mom__act_deriv_mul_colsum_fl(act, d, a, sums, n, k, 0.0f, 0);
}


void mom__col_sums(float *out, const float *x, size_t n, size_t k)
{
    for (size_t j = 0; j < k; j++)
        out[j] = 0.0f;
    mom__col_sums_add(out, x, n, k);
}

MOM_CLONES void mom__square(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * x[i];
}

MOM_CLONES uint32_t mom__max_abs_bits(const float *x, size_t n)
{
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b);
        b &= 0x7fffffffu;
        m = b > m ? b : m;
    }
    return m;
}
