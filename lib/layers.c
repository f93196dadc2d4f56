/* Elementwise layer math; see layers.h. */
#include <math.h>

#include "internal.h"
#include "layers.h"

void mom__act_apply(int act, float *a, size_t n)
{
    switch (act) {
    case MOM_ACT_LOGISTIC:
        for (size_t i = 0; i < n; i++)
            a[i] = 1.0f / (1.0f + expf(-a[i]));
        break;
    case MOM_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            a[i] = tanhf(a[i]);
        break;
    case MOM_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            a[i] = a[i] > 0.0f ? a[i] : 0.0f;
        break;
    default: /* linear */
        break;
    }
}

void mom__act_deriv_mul(int act, float *d, const float *a, size_t n)
{
    switch (act) {
    case MOM_ACT_LOGISTIC:
        for (size_t i = 0; i < n; i++)
            d[i] *= a[i] * (1.0f - a[i]);
        break;
    case MOM_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            d[i] *= 1.0f - a[i] * a[i];
        break;
    case MOM_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            d[i] = a[i] > 0.0f ? d[i] : 0.0f;
        break;
    default:
        break;
    }
}

void mom__add_bias_rows(float *x, const float *b, size_t n, size_t k)
{
    for (size_t r = 0; r < n; r++) {
        float *row = x + r * k;
        for (size_t j = 0; j < k; j++)
            row[j] += b[j];
    }
}

void mom__col_sums_add(float *out, const float *x, size_t n, size_t k)
{
    for (size_t r = 0; r < n; r++) {
        const float *row = x + r * k;
        for (size_t j = 0; j < k; j++)
            out[j] += row[j];
    }
}

double mom__out_forward(int output, const float *z, float *y, const float *t, const float *w,
                        size_t n, size_t k)
{
    double total = 0.0;
    for (size_t r = 0; r < n; r++) {
        const float *zr = z + r * k;
        float *yr = y + r * k;
        const float *tr = t ? t + r * k : NULL;
        double wr = w ? (double)w[r] : 1.0;
        double loss = 0.0;
        switch (output) {
        case MOM_OUT_LOGISTIC_XENT:
            for (size_t j = 0; j < k; j++) {
                double zj = zr[j];
                yr[j] = (float)(1.0 / (1.0 + exp(-zj)));
                if (tr)
                    /* -[t log s(z) + (1-t) log(1-s(z))] = max(z,0) - z t + log(1 + e^-|z|) */
                    loss += (zj > 0.0 ? zj : 0.0) - zj * tr[j] + log1p(exp(-fabs(zj)));
            }
            break;
        case MOM_OUT_SOFTMAX_XENT: {
            float zmax = zr[0];
            for (size_t j = 1; j < k; j++)
                zmax = zr[j] > zmax ? zr[j] : zmax;
            double sum = 0.0;
            for (size_t j = 0; j < k; j++)
                sum += exp((double)zr[j] - zmax);
            double lse = zmax + log(sum);
            for (size_t j = 0; j < k; j++) {
                yr[j] = (float)exp((double)zr[j] - lse);
                if (tr)
                    loss += (double)tr[j] * (lse - zr[j]);
            }
            break;
        }
        default: /* linear, 1/2 squared error */
            for (size_t j = 0; j < k; j++) {
                yr[j] = zr[j];
                if (tr) {
                    double e = (double)zr[j] - tr[j];
                    loss += 0.5 * e * e;
                }
            }
            break;
        }
        if (tr && wr != 0.0)
            total += wr * loss;
    }
    return total;
}

void mom__out_delta(float *d, const float *y, const float *t, const float *w, float scale,
                    size_t n, size_t k)
{
    for (size_t r = 0; r < n; r++) {
        float s = w ? scale * w[r] : scale;
        const float *yr = y + r * k, *tr = t + r * k;
        float *dr = d + r * k;
        for (size_t j = 0; j < k; j++)
            dr[j] = s * (yr[j] - tr[j]);
    }
}

void mom__out_hess(int output, float *out, const float *y, const float *u, const float *w,
                   float scale, size_t n, size_t k)
{
    for (size_t r = 0; r < n; r++) {
        float s = w ? scale * w[r] : scale;
        const float *yr = y + r * k, *ur = u + r * k;
        float *o = out + r * k;
        switch (output) {
        case MOM_OUT_LOGISTIC_XENT:
            for (size_t j = 0; j < k; j++)
                o[j] = s * yr[j] * (1.0f - yr[j]) * ur[j];
            break;
        case MOM_OUT_SOFTMAX_XENT: {
            double yu = 0.0;
            for (size_t j = 0; j < k; j++)
                yu += (double)yr[j] * ur[j];
            float fyu = (float)yu;
            for (size_t j = 0; j < k; j++)
                o[j] = s * yr[j] * (ur[j] - fyu);
            break;
        }
        default:
            for (size_t j = 0; j < k; j++)
                o[j] = s * ur[j];
            break;
        }
    }
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

/* The fused loops below keep the switch outside the loops so that each inner loop is a plain
 * contiguous pass the compiler can vectorize. */

void mom__bias_act(int act, float *x, const float *b, size_t n, size_t k)
{
    for (size_t r = 0; r < n; r++) {
        float *row = x + r * k;
        switch (act) {
        case MOM_ACT_LOGISTIC:
            for (size_t j = 0; j < k; j++)
                row[j] = 1.0f / (1.0f + expf(-(row[j] + b[j])));
            break;
        case MOM_ACT_TANH:
            for (size_t j = 0; j < k; j++)
                row[j] = tanhf(row[j] + b[j]);
            break;
        case MOM_ACT_RELU:
            for (size_t j = 0; j < k; j++) {
                float v = row[j] + b[j];
                row[j] = v > 0.0f ? v : 0.0f;
            }
            break;
        default:
            for (size_t j = 0; j < k; j++)
                row[j] += b[j];
            break;
        }
    }
}

void mom__bias_deriv_mul(int act, float *x, const float *b, const float *a, size_t n, size_t k)
{
    if (b == NULL) {
        mom__act_deriv_mul(act, x, a, n * k);
        return;
    }
    for (size_t r = 0; r < n; r++) {
        float *xr = x + r * k;
        const float *ar = a + r * k;
        switch (act) {
        case MOM_ACT_LOGISTIC:
            for (size_t j = 0; j < k; j++)
                xr[j] = (xr[j] + b[j]) * (ar[j] * (1.0f - ar[j]));
            break;
        case MOM_ACT_TANH:
            for (size_t j = 0; j < k; j++)
                xr[j] = (xr[j] + b[j]) * (1.0f - ar[j] * ar[j]);
            break;
        case MOM_ACT_RELU:
            for (size_t j = 0; j < k; j++)
                xr[j] = ar[j] > 0.0f ? xr[j] + b[j] : 0.0f;
            break;
        default:
            for (size_t j = 0; j < k; j++)
                xr[j] += b[j];
            break;
        }
    }
}

void mom__act_deriv_mul_colsum(int act, float *d, const float *a, float *sums, size_t n,
                               size_t k)
{
    for (size_t j = 0; j < k; j++)
        sums[j] = 0.0f;
    for (size_t r = 0; r < n; r++) {
        float *dr = d + r * k;
        const float *ar = a + r * k;
        switch (act) {
        case MOM_ACT_LOGISTIC:
            for (size_t j = 0; j < k; j++) {
                float v = dr[j] * (ar[j] * (1.0f - ar[j]));
                dr[j] = v;
                sums[j] += v;
            }
            break;
        case MOM_ACT_TANH:
            for (size_t j = 0; j < k; j++) {
                float v = dr[j] * (1.0f - ar[j] * ar[j]);
                dr[j] = v;
                sums[j] += v;
            }
            break;
        case MOM_ACT_RELU:
            for (size_t j = 0; j < k; j++) {
                float v = ar[j] > 0.0f ? dr[j] : 0.0f;
                dr[j] = v;
                sums[j] += v;
            }
            break;
        default:
            for (size_t j = 0; j < k; j++)
                sums[j] += dr[j];
            break;
        }
    }
}

void mom__col_sums(float *out, const float *x, size_t n, size_t k)
{
    for (size_t j = 0; j < k; j++)
        out[j] = 0.0f;
    mom__col_sums_add(out, x, n, k);
}

void mom__square(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * x[i];
}
