/*
 * Philox4x32-10 counter-based generator (Salmon et al., SC 2011) and the distributions built on it.
 * Only IEEE-exact operations (+, -, *, /, sqrt, frexp, ldexp) are used for derived values, so the
 * output is bit-identical across machines; the library is compiled with -ffp-contract=off.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9)
#define PHILOX_W1 UINT32_C(0xBB67AE85)

static void philox_block(uint32_t out[4], uint64_t key, uint64_t ctr_lo, uint64_t ctr_hi)
{
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
    uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Exposed for the known-answer test of the raw block function. */
void mom__philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);
void mom__philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2])
{
    philox_block(out, ((uint64_t)key[1] << 32) | key[0], ((uint64_t)ctr[1] << 32) | ctr[0],
                 ((uint64_t)ctr[3] << 32) | ctr[2]);
}

void mom__rng_init(struct mom_rng *r, uint64_t seed, uint64_t stream)
{
    r->key = seed;
    r->stream = stream;
    r->ctr = 0;
    memset(r->buf, 0, sizeof r->buf);
    r->pos = 4;
    r->has_spare = 0;
    r->spare = 0.0;
}

int mom_rng_create(mom_rng **out, uint64_t seed, uint64_t stream, const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    mom_allocator a;
    if (mom__alloc_init(&a, alloc) != MOM_OK)
        return MOM_E_INVALID;
    mom_rng *r = mom__malloc(&a, sizeof *r);
    if (r == NULL)
        return MOM_E_NOMEM;
    r->base.alloc = a;
    mom__clear(&r->base);
    mom__rng_init(r, seed, stream);
    *out = r;
    return MOM_OK;
}

void mom_rng_destroy(mom_rng *rng)
{
    if (rng == NULL)
        return;
    mom_allocator a = rng->base.alloc;
    mom__free(&a, rng);
}

const char *mom_rng_errmsg(const mom_rng *rng)
{
    return rng == NULL ? "rng handle is NULL" : rng->base.errmsg;
}

void mom_rng_reseed(mom_rng *rng, uint64_t seed, uint64_t stream)
{
    if (rng != NULL)
        mom__rng_init(rng, seed, stream);
}

uint32_t mom_rng_u32(mom_rng *rng)
{
    if (rng->pos >= 4) {
        philox_block(rng->buf, rng->key, rng->ctr, rng->stream);
        rng->ctr++;
        rng->pos = 0;
    }
    return rng->buf[rng->pos++];
}

uint64_t mom_rng_u64(mom_rng *rng)
{
    uint64_t hi = mom_rng_u32(rng);
    return (hi << 32) | mom_rng_u32(rng);
}

uint64_t mom_rng_below(mom_rng *rng, uint64_t n)
{
    if (n == 0)
        return 0;
    if (n <= UINT64_C(0x100000000)) {
        uint64_t m = (uint64_t)mom_rng_u32(rng) * n;
        uint32_t l = (uint32_t)m;
        if (l < n) {
            uint32_t t = (uint32_t)((UINT64_C(0x100000000) - n) % n);
            while (l < t) {
                m = (uint64_t)mom_rng_u32(rng) * n;
                l = (uint32_t)m;
            }
        }
        return m >> 32;
    }
    unsigned __int128 m = (unsigned __int128)mom_rng_u64(rng) * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = (0 - n) % n;
        while (l < t) {
            m = (unsigned __int128)mom_rng_u64(rng) * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double mom_rng_uniform(mom_rng *rng)
{
    return (double)(mom_rng_u64(rng) >> 11) * 0x1.0p-53;
}

float mom_rng_uniformf(mom_rng *rng)
{
    return (float)(mom_rng_u32(rng) >> 8) * 0x1.0p-24f;
}

/* Natural logarithm of a positive finite double with IEEE-exact operations only:
 * x = m 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.1716,
 * summed to s^29 (truncation error below 1e-22). Accurate to about one ulp. */
static double portable_log(double x)
{
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double sum = 0.0;
    for (int k = 29; k >= 3; k -= 2)
        sum = (sum + 1.0 / k) * s2;
    double logm = 2.0 * (s + s * sum);
    /* ln 2 split so that e * LN2_HI is exact for |e| < 2^11. */
    const double LN2_HI = 6.93147180369123816490e-01;
    const double LN2_LO = 1.90821492927058770002e-10;
    return (double)e * LN2_HI + ((double)e * LN2_LO + logm);
}

double mom__log(double x);
double mom__log(double x) { return portable_log(x); }

double mom_rng_normal(mom_rng *rng)
{
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * mom_rng_uniform(rng) - 1.0;
        v = 2.0 * mom_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * portable_log(s) / s);
    rng->spare = v * f;
    rng->has_spare = 1;
    return u * f;
}

int mom_rng_fill_normal(mom_rng *rng, float *out, size_t n, double mean, double stddev)
{
    if (rng == NULL)
        return MOM_E_INVALID;
    mom__clear(&rng->base);
    if (n == 0)
        return MOM_OK;
    if (out == NULL)
        return mom__fail(&rng->base, MOM_E_INVALID, "out is NULL");
    if (!isfinite(mean) || !isfinite(stddev))
        return mom__fail(&rng->base, MOM_E_INVALID, "mean %g and stddev %g must be finite", mean,
                         stddev);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(mean + stddev * mom_rng_normal(rng));
    return MOM_OK;
}

int mom_rng_fill_uniform(mom_rng *rng, float *out, size_t n, double lo, double hi)
{
    if (rng == NULL)
        return MOM_E_INVALID;
    mom__clear(&rng->base);
    if (n == 0)
        return MOM_OK;
    if (out == NULL)
        return mom__fail(&rng->base, MOM_E_INVALID, "out is NULL");
    if (!isfinite(lo) || !isfinite(hi) || hi < lo)
        return mom__fail(&rng->base, MOM_E_INVALID,
                         "the interval [%g, %g) must be finite with lo <= hi", lo, hi);
    double w = hi - lo;
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(lo + w * mom_rng_uniform(rng));
    return MOM_OK;
}

int mom_rng_sample(mom_rng *rng, size_t *out, size_t k, size_t n)
{
    if (rng == NULL)
        return MOM_E_INVALID;
    mom__clear(&rng->base);
    if (k == 0)
        return MOM_OK;
    if (out == NULL)
        return mom__fail(&rng->base, MOM_E_INVALID, "out is NULL");
    if (k > n)
        return mom__fail(&rng->base, MOM_E_INVALID, "cannot take %zu distinct values of %zu", k,
                         n);
    /* Floyd: for j = n-k .. n-1, draw t in [0, j]; take t unless already taken, else j.
     * out[0..m) is kept sorted; insertion is O(k) per draw, fine for the small k of SI. */
    size_t m = 0;
    for (size_t j = n - k; j < n; j++) {
        size_t t = (size_t)mom_rng_below(rng, (uint64_t)j + 1);
        size_t lo = 0, hi = m;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (out[mid] < t)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < m && out[lo] == t) {
            t = j; /* j is larger than everything taken so far */
            lo = m;
        }
        memmove(out + lo + 1, out + lo, (m - lo) * sizeof *out);
        out[lo] = t;
        m++;
    }
    return MOM_OK;
}

void mom_rng_get_state(const mom_rng *rng, uint64_t state[MOM_RNG_STATE_WORDS])
{
    if (rng == NULL || state == NULL)
        return;
    uint64_t spare_bits;
    memcpy(&spare_bits, &rng->spare, sizeof spare_bits);
    state[0] = rng->key;
    state[1] = rng->stream;
    state[2] = rng->ctr;
    state[3] = (uint64_t)rng->pos | ((uint64_t)rng->has_spare << 8);
    state[4] = rng->has_spare ? spare_bits : 0;
    state[5] = 0;
}

int mom_rng_set_state(mom_rng *rng, const uint64_t state[MOM_RNG_STATE_WORDS])
{
    if (rng == NULL)
        return MOM_E_INVALID;
    mom__clear(&rng->base);
    if (state == NULL)
        return mom__fail(&rng->base, MOM_E_INVALID, "state is NULL");
    uint64_t pos = state[3] & 0xff, has_spare = state[3] >> 8;
    /* (a counter of 0 with buffered outputs is the state after block 2^64 - 1, the stream's
     * last before it starts over: the buffer holds block ctr - 1 modulo 2^64) */
    if (pos > 4 || has_spare > 1 || state[5] != 0)
        return mom__fail(&rng->base, MOM_E_FORMAT, "rng state: inconsistent position words");
    double spare;
    memcpy(&spare, &state[4], sizeof spare);
    if (has_spare && !isfinite(spare))
        return mom__fail(&rng->base, MOM_E_FORMAT, "rng state: cached normal is not finite");
    if (!has_spare && state[4] != 0)
        return mom__fail(&rng->base, MOM_E_FORMAT, "rng state: a cached normal word without "
                                                   "its flag");
    rng->key = state[0];
    rng->stream = state[1];
    rng->ctr = state[2];
    rng->pos = (uint32_t)pos;
    if (pos < 4)
        philox_block(rng->buf, rng->key, rng->ctr - 1, rng->stream);
    rng->has_spare = (uint32_t)has_spare;
    rng->spare = has_spare ? spare : 0.0;
    return MOM_OK;
}
