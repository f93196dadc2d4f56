/*
 * Recurrent networks (net.h, "Create a recurrent network"):
 *
 *   h[t] = act(W_hh h[t-1] + W_vh x[t] + b_h),  z[t] = W_ho h[t] + b_o,  y[t] = output(z[t]),
 *   h[-1] = h0 (zero unless MOM_RNN_LEARN_H0).
 *
 * Batches are time-major (row t*n + s holds step t of sequence s), so the n hidden vectors of one
 * step form one contiguous n x H matrix and the whole sequence of hidden states one (T*n) x H
 * matrix. That layout lets every product that does not sit on the recurrence run as ONE big gemm
 * over all stacked steps:
 *   forward:  X W_vh^T for all T*n rows; z = H W_ho^T for the counted rows;
 *   backward: dW_vh = dS^T X, dW_hh = dS[1..]^T H[..T-1], dW_ho = dZ^T H;
 * and only the recurrence itself (h[t-1] W_hh^T forward, dS[t+1] W_hh backward) runs step by step,
 * one n x H x H gemm per step for all sequences together, or, in large enough batches, for each
 * group of sequences, the groups side by side on the network's threads (mom__rnn_groups()).
 *
 * Counted rows. Only rows with a nonzero step weight (mom__step_weight()) contribute to the loss.
 * When at most half of the T*n rows count (the usual "last step only" case), their hidden vectors
 * are gathered into a compact matrix and the output layer works on those rows only ("compact"
 * mode); otherwise it works on all rows ("dense" mode; rows of weight 0 then give 0).
 *
 * Hidden states past a sequence's length are set to 0 (so are the R-pass states), which keeps
 * padded steps from overflowing with unbounded activations and makes forward() return 0 there.
 *
 * Workspaces. Two independent workspaces, each one allocation carved into aligned buffers: `lg`
 * for loss, gradient, Fisher, forward and metric calls, and `gv` holding the activations cached by
 * gv_begin() plus the scratch of the Gauss-Newton products. Each is sized for the largest (n, T,
 * n*T) seen and never shrinks, so calls with the same or smaller batches do not allocate.
 *
 * Structural damping (gv with c > 0) adds c * J_s^T D'' J_s v / n summed over the valid steps
 * (t < length) of every sequence, J_s the Jacobian of the hidden pre-activations s. D'' is the
 * diagonal Hessian of the matching loss of the hidden units, written through h = act(s):
 *   tanh 0.25 (1 - h^2) (the logistic form of tanh, as in Martens & Sutskever 2011),
 *   logistic h (1 - h), linear 1, relu 1 where h > 0 else 0.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "blas.h"
#include "layers.h"
#include "net_internal.h"

#define WS_ALIGN 64
/* Deltas kept per BPTT chunk by the loss-and-gradient workspace (256 KiB; see bptt()). */
#define RNN_CHUNK_FLOATS ((size_t)1 << 16)

/* One workspace: a single allocation carved into buffers. */
typedef struct rnn_ws {
    void *mem;
    size_t bytes;
    size_t cap_n, cap_t, cap_cells; /* sized for n <= cap_n, T <= cap_t, n*T <= cap_cells */

    float *hbuf;         /* (cells + n) x H: slot 0 = h[-1], slot t+1 = h[t] */
    float *ds;           /* dLoss/ds (BPTT): gv every step (cells x H); lg one chunk (bptt()) */
    float *hc;           /* cells/2 x H: gathered hidden rows of compact mode */
    float *z;            /* cells x O: output pre-activations (gv: R-pass of z) */
    float *y;            /* cells x O: outputs */
    float *tc;           /* cells/2 x O: gathered targets (lg only) */
    float *w;            /* cells: step weights (compacted in compact mode) */
    size_t *idx;         /* cells: row index (t*n + s) of each compact row */
    size_t *step_start;  /* T + 1: compact rows of step t are [step_start[t], step_start[t+1]) */
    size_t *seq_last;    /* n: metric scratch */
    float *r;            /* gv: cells x H R-pass states */
    float *vt;           /* gv: H x H: V_hh transposed (the R-pass products need no transpose) */
    float *tmp;          /* n x H */
    float *colsum;       /* MOM__TEAM_MAX_PARTS x H: the groups' bias sums in bptt(); else H */
    float *wt;           /* H x H: W_hh transposed (the forward products then need no transpose) */
    float *wvt;          /* I x H: W_vh (gv: V_vh) transposed, for add_input_rows() */
    /* lg only: per-sequence copies for the Fisher diagonal */
    float *fx, *ft, *fm, *fg;
} rnn_ws;

typedef struct rnn_impl {
    size_t ni, nh, no;
    int act;    /* hidden activation (mom_act) */
    int output; /* mom_output */
    int learn_h0;
    size_t off_vh, off_hh, off_bh, off_ho, off_bo, off_h0;
    rnn_ws lg, gv;
    /* state of the last successful gv_begin */
    mom_batch gv_batch;
    const float *gv_params;
    size_t gv_m;
    int gv_compact;
} rnn_impl;

/* Which rows of a pass count, and where their output-layer data live. */
typedef struct rows {
    int compact;
    size_t m;          /* number of output rows (compact: counted rows; dense: T*n) */
    const float *hsrc; /* m x H hidden rows feeding the output layer */
    const float *tsrc; /* m x O targets (may be NULL) */
} rows;

/* ---------------------------------------------------------------------------------------------
 * Workspace management */

static size_t align_up(size_t x) { return (x + (WS_ALIGN - 1)) & ~(size_t)(WS_ALIGN - 1); }

/* Add `count` elements of `elem` bytes to a running layout; returns 0 on overflow. */
static int lay(size_t *total, size_t *off, size_t count, size_t elem)
{
    size_t bytes;
    if (!mom__mul_size(&bytes, count, elem))
        return 0;
    *off = *total;
    bytes = bytes > SIZE_MAX - WS_ALIGN ? SIZE_MAX : align_up(bytes);
    if (bytes == SIZE_MAX || !mom__add_size(total, *total, bytes))
        return 0;
    return 1;
}

/* Whether ws can not hold n sequences of t steps (or n * t overflows): ws_ensure() then builds
 * a new workspace (or fails). */
static int ws_short(const rnn_ws *ws, size_t n, size_t t)
{
    size_t cells;
    return !mom__mul_size(&cells, n, t) || ws->mem == NULL || n > ws->cap_n || t > ws->cap_t ||
           cells > ws->cap_cells;
}

/* Make ws (the loss-and-gradient set, or the Gauss-Newton set when is_gv) fit n sequences of t
 * steps: a new workspace is built before the old one is freed, so a failure keeps the old one. */
static int ws_ensure(mom_net *net, rnn_ws *ws, int is_gv, size_t n, size_t t)
{
    rnn_impl *r = net->impl;
    size_t cells;
    if (!mom__mul_size(&cells, n, t) || cells > mom__blas_max_dim())
        return mom__fail(&net->base, MOM_E_INVALID,
                         "batch of %zu sequences x %zu steps is too large for BLAS", n, t);
    if (!ws_short(ws, n, t))
        return MOM_OK;
    size_t cn = n > ws->cap_n ? n : ws->cap_n;
    size_t ct = t > ws->cap_t ? t : ws->cap_t;
    size_t cc = cells > ws->cap_cells ? cells : ws->cap_cells;
    size_t half = cc / 2 + 1;
    size_t hh = r->nh, o = r->no;
    size_t total = 0, o_h, o_ds, o_hc, o_z, o_y, o_tc = 0, o_w, o_idx, o_ss, o_sl, o_r = 0, o_tmp,
           o_cs, o_wt, o_wvt, o_vt = 0, o_fx = 0, o_ft = 0, o_fm = 0, o_fg = 0;
    size_t a, b, nds;
    /* ds: every step for gv (structural damping fills it ahead of BPTT); for lg the BPTT chunk
     * of bptt(), (K + 1) * n * H <= min(RNN_CHUNK_FLOATS + 2 n H, (T + 1) n H) floats */
    int ok = mom__add_size(&a, cc, cn) && mom__mul_size(&a, a, hh) &&
             lay(&total, &o_h, a, sizeof(float)) && mom__mul_size(&b, cc, hh);
    if (ok && is_gv) {
        nds = b;
    } else if (ok) {
        size_t lim;
        ok = mom__mul_size(&nds, cn, hh) && mom__mul_size(&nds, nds, 2) &&
             mom__add_size(&nds, nds, RNN_CHUNK_FLOATS) && mom__add_size(&a, cc, cn) &&
             mom__mul_size(&lim, a, hh);
        if (ok && lim < nds)
            nds = lim;
    }
    ok = ok && lay(&total, &o_ds, nds, sizeof(float)) && mom__mul_size(&a, half, hh) &&
             lay(&total, &o_hc, a, sizeof(float)) && mom__mul_size(&a, cc, o) &&
             lay(&total, &o_z, a, sizeof(float)) && lay(&total, &o_y, a, sizeof(float)) &&
             lay(&total, &o_w, cc, sizeof(float)) && lay(&total, &o_idx, cc, sizeof(size_t)) &&
             mom__add_size(&a, ct, 1) && lay(&total, &o_ss, a, sizeof(size_t)) &&
             lay(&total, &o_sl, cn, sizeof(size_t)) && mom__mul_size(&a, cn, hh) &&
             lay(&total, &o_tmp, a, sizeof(float)) &&
             mom__mul_size(&a, hh, MOM__TEAM_MAX_PARTS) && lay(&total, &o_cs, a, sizeof(float)) &&
             mom__mul_size(&a, hh, hh) && lay(&total, &o_wt, a, sizeof(float)) &&
             mom__mul_size(&a, r->ni, hh) && lay(&total, &o_wvt, a, sizeof(float));
    if (ok && is_gv) {
        ok = lay(&total, &o_r, b, sizeof(float)) && mom__mul_size(&a, hh, hh) &&
             lay(&total, &o_vt, a, sizeof(float));
    } else if (ok) {
        ok = mom__mul_size(&a, half, o) && lay(&total, &o_tc, a, sizeof(float)) &&
             mom__mul_size(&a, ct, r->ni) && lay(&total, &o_fx, a, sizeof(float)) &&
             mom__mul_size(&a, ct, o) && lay(&total, &o_ft, a, sizeof(float)) &&
             lay(&total, &o_fm, ct, sizeof(float)) &&
             lay(&total, &o_fg, net->n_params, sizeof(float));
    }
    if (!ok)
        return mom__fail(&net->base, MOM_E_NOMEM, "workspace size overflows");
    char *mem = mom__malloc(&net->base.alloc, total + WS_ALIGN);
    if (mem == NULL)
        return mom__fail(&net->base, MOM_E_NOMEM, "cannot allocate %zu bytes of workspace",
                         total + WS_ALIGN);
    mom__free(&net->base.alloc, ws->mem);
    memset(ws, 0, sizeof *ws);
    ws->mem = mem;
    ws->bytes = total + WS_ALIGN;
    ws->cap_n = cn;
    ws->cap_t = ct;
    ws->cap_cells = cc;
    char *base = mom__align_ptr(mem, WS_ALIGN);
    ws->hbuf = (float *)(void *)(base + o_h);
    ws->ds = (float *)(void *)(base + o_ds);
    ws->hc = (float *)(void *)(base + o_hc);
    ws->z = (float *)(void *)(base + o_z);
    ws->y = (float *)(void *)(base + o_y);
    ws->w = (float *)(void *)(base + o_w);
    ws->idx = (size_t *)(void *)(base + o_idx);
    ws->step_start = (size_t *)(void *)(base + o_ss);
    ws->seq_last = (size_t *)(void *)(base + o_sl);
    ws->tmp = (float *)(void *)(base + o_tmp);
    ws->colsum = (float *)(void *)(base + o_cs);
    ws->wt = (float *)(void *)(base + o_wt);
    ws->wvt = (float *)(void *)(base + o_wvt);
    if (is_gv) {
        ws->r = (float *)(void *)(base + o_r);
        ws->vt = (float *)(void *)(base + o_vt);
    } else {
        ws->tc = (float *)(void *)(base + o_tc);
        ws->fx = (float *)(void *)(base + o_fx);
        ws->ft = (float *)(void *)(base + o_ft);
        ws->fm = (float *)(void *)(base + o_fm);
        ws->fg = (float *)(void *)(base + o_fg);
    }
    return MOM_OK;
}

static void rnn_destroy(mom_net *net)
{
    rnn_impl *r = net->impl;
    if (r == NULL)
        return;
    mom__free(&net->base.alloc, r->lg.mem);
    mom__free(&net->base.alloc, r->gv.mem);
    mom__free(&net->base.alloc, r);
    net->impl = NULL;
}

/* Both workspaces are built before either is replaced, so that a failure keeps both. */
static int rnn_reserve(mom_net *net, size_t n, size_t steps)
{
    rnn_impl *r = net->impl;
    const int grow_lg = ws_short(&r->lg, n, steps), grow_gv = ws_short(&r->gv, n, steps);
    rnn_ws lg = r->lg, gv = r->gv; /* copies keep the capacities; mem NULL: nothing to free */
    int rc = MOM_OK;
    lg.mem = gv.mem = NULL;
    if (grow_lg)
        rc = ws_ensure(net, &lg, 0, n, steps);
    if (rc == MOM_OK && grow_gv && (rc = ws_ensure(net, &gv, 1, n, steps)) != MOM_OK)
        mom__free(&net->base.alloc, lg.mem);
    if (rc != MOM_OK)
        return rc;
    if (grow_lg) {
        mom__free(&net->base.alloc, r->lg.mem);
        r->lg = lg;
    }
    if (grow_gv) {
        mom__free(&net->base.alloc, r->gv.mem);
        r->gv = gv;
        net->gv_ready = 0; /* the activations cached by gv_begin() went with the old workspace */
    }
    return MOM_OK;
}

static size_t rnn_workspace_bytes(const mom_net *net)
{
    const rnn_impl *r = net->impl;
    return r->lg.bytes + r->gv.bytes;
}

/* ---------------------------------------------------------------------------------------------
 * Elementwise helpers local to the recurrence */

/* Zero the rows of sequences [s0, s1) of one step (n x k block, blk its row 0) whose sequence
 * has ended (t >= length). */
static void zero_past_length_rows(float *blk, const mom_batch *b, size_t t, size_t k, size_t s0,
                                  size_t s1)
{
    if (b->lengths == NULL)
        return;
    for (size_t s = s0; s < s1; s++)
        if (t >= b->lengths[s])
            memset(blk + s * k, 0, k * sizeof *blk);
}

static void zero_past_length(float *blk, const mom_batch *b, size_t t, size_t k)
{
    zero_past_length_rows(blk, b, t, k, 0, b->n);
}

/* The recurrence spends most of its non-gemm time in three elementwise passes per step, each
 * fused into one loop over the n x H block of the step:
 *   forward:   h = act(a + b_h)                                          (bias_act_rows)
 *   backward:  ds = acc * act'(h) [+ ds]; g_bh += column sums of ds       (deriv_rows)
 *   R-pass:    u = r + v_bh; [ds = c D''(h) u]; r = act'(h) u             (rpass_rows)
 * For tanh (the paper's units) they run on GCC/clang vector extensions with a tanh of our own
 * (below); other activations use plain loops. On x86 the tanh kernels are compiled three times
 * (AVX-512 with 16 lanes and AVX2 with 8, both allowed to contract a*b+c into FMA, and the
 * baseline with 8 lanes split by the compiler, without FMA) and the best one the CPU supports is
 * picked at each call. The variants may differ in the last bit of some values; on a given
 * machine the results are deterministic. */

#if (defined(__GNUC__) || defined(__clang__)) && !defined(MOM_RNN_NO_SIMD)
#define RNN_VEC 1
#define RNN_INLINE inline __attribute__((always_inline))
#else
#define RNN_VEC 0
#define RNN_INLINE inline
#endif

#if RNN_VEC && (defined(__x86_64__) || defined(__i386__)) &&                                     \
    ((defined(__clang__) && __clang_major__ >= 10) || (!defined(__clang__) && __GNUC__ >= 6))
#define RNN_X86 1
/* Per-function ISA plus FMA contraction (the build sets -ffp-contract=off for the whole library;
 * these kernels opt back in): GCC through the optimize attribute, clang through its pragma. */
#if defined(__clang__)
#define RNN_ISA_FMA(isa) __attribute__((target(isa ",fma")))
#define RNN_CONTRACT _Pragma("clang fp contract(fast)")
#else
#define RNN_ISA_FMA(isa) __attribute__((target(isa ",fma"), optimize("fp-contract=fast")))
#define RNN_CONTRACT
#endif
#else
#define RNN_X86 0
#endif

/*
 * tanh in float for the hidden units: |x| clamped to 9 (tanh(9) is within half an ulp of 1);
 * e = expm1(2|x|) by Cody-Waite reduction 2|x| = n ln2 + r, |r| <= ln2/2,
 * expm1(r) = r (1 + c1 r + ... + c5 r^5) with coefficients fitted for the least maximum relative
 * error (1.7e-8 with these float values; c1 = 1/2 exactly), and e = 2^n expm1(r) + (2^n - 1);
 * then tanh|x| = e / (e + 2) with the sign of x restored. No cancellation anywhere, so the
 * relative error stays within a few ulp for all x (tiny x included); NaN propagates (the clamp
 * keeps it), +-inf give +-1. Branch-free (selects are bit masks) so that it vectorizes.
 */
#define TANH_CLAMP 9.0f
#define TANH_CLAMP_BITS 0x41100000u /* 9.0f */
#define TANH_MAGIC 12582912.0f      /* 1.5 * 2^23: adding it rounds to an integer */
#define TANH_MAGIC_BITS 0x4b400000u
#define TANH_LOG2E 1.44269504088896341f
#define TANH_LN2_HI 0.693145751953125f /* 16 significant bits: n * LN2_HI is exact */
#define TANH_LN2_LO 1.428606765330187e-06f
#define TANH_C2 1.666653603e-01f
#define TANH_C3 4.166690260e-02f
#define TANH_C4 8.367372677e-03f
#define TANH_C5 1.390189980e-03f

/* The body shared by the scalar and vector versions: F float type, U matching uint32 type,
 * MASK(c) turns a comparison into an all-ones / all-zeros U (scalar comparisons give 1,
 * vector comparisons -1). */
#define TANH_BODY(F, U, MASK, x, out)                                                          \
    do {                                                                                       \
        U xb_, ab_, big_, sb_, tb_, vb_;                                                       \
        F a_, y_, v_, fn_, r_, q_, sc_, e_, t_;                                                \
        memcpy(&xb_, &(x), sizeof xb_);                                                        \
        ab_ = xb_ & 0x7fffffffu;                                                               \
        memcpy(&a_, &ab_, sizeof a_);                                                          \
        big_ = MASK(a_ > TANH_CLAMP); /* false for NaN: NaN is kept */                         \
        ab_ = (ab_ & ~big_) | (TANH_CLAMP_BITS & big_);                                        \
        memcpy(&a_, &ab_, sizeof a_);                                                          \
        y_ = a_ + a_;                                                                          \
        v_ = y_ * TANH_LOG2E + TANH_MAGIC;                                                     \
        fn_ = v_ - TANH_MAGIC;                                                                 \
        r_ = (y_ - fn_ * TANH_LN2_HI) - fn_ * TANH_LN2_LO;                                     \
        q_ = r_ * (1.0f + r_ * (0.5f + r_ * (TANH_C2 + r_ * (TANH_C3 +                         \
                  r_ * (TANH_C4 + r_ * TANH_C5)))));                                           \
        memcpy(&vb_, &v_, sizeof vb_);                                                         \
        sb_ = ((vb_ - TANH_MAGIC_BITS) + 127u) << 23;                                          \
        memcpy(&sc_, &sb_, sizeof sc_);                                                        \
        e_ = sc_ * q_ + (sc_ - 1.0f);                                                          \
        t_ = e_ / (e_ + 2.0f);                                                                 \
        memcpy(&tb_, &t_, sizeof tb_);                                                         \
        tb_ |= xb_ & 0x80000000u;                                                              \
        memcpy(&(out), &tb_, sizeof tb_);                                                      \
    } while (0)

#define MASK_S(c) (0u - (uint32_t)(c))

/* v, or 0 when |v| < thr (fpenv.h's flush; thr = 0 keeps every value). */
static inline float flush_s(float v, float thr) { return fabsf(v) < thr ? 0.0f : v; }

#if !RNN_VEC
static float tanh_s(float x)
{
    float res;
    TANH_BODY(float, uint32_t, MASK_S, x, res);
    return res;
}

/* Scalar versions, for compilers without vector extensions. */
static void tanh_bias_rows_s(float *x, const float *b, size_t n, size_t k, float fl)
{
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < k; j++)
            x[r * k + j] = flush_s(tanh_s(b ? x[r * k + j] + b[j] : x[r * k + j]), fl);
}

static void tanh_deriv_rows_s(float *ds, const float *acc, const float *h, int add,
                              float *colsum, size_t n, size_t k, float fl)
{
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < k; j++) {
            size_t i = r * k + j;
            float v = acc[i] * (1.0f - h[i] * h[i]);
            if (add)
                v += ds[i];
            v = flush_s(v, fl);
            ds[i] = v;
            colsum[j] += v;
        }
}

static void input_rows_s(float *h, const float *x, const float *wvt, const float *b, size_t n,
                         size_t k, size_t I)
{
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < k; j++) {
            float a = h[r * k + j];
            if (b)
                a += b[j];
            for (size_t i = 0; i < I; i++)
                a += x[r * I + i] * wvt[i * k + j];
            h[r * k + j] = a;
        }
}

static void tanh_rpass_rows_s(float *rs, const float *vb, const float *h, float *ds, float c,
                              size_t n, size_t k, float fl)
{
    const float c4 = 0.25f * c;
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < k; j++) {
            size_t i = r * k + j;
            float g = 1.0f - h[i] * h[i];
            float u = rs[i] + vb[j];
            if (ds)
                ds[i] = flush_s(c4 * g * u, fl);
            rs[i] = flush_s(g * u, fl);
        }
}
#endif

#if RNN_VEC
#define MASK_V(c) ((__typeof__(xb_))(c))
/* v = 0 in the lanes where |v| < thr (a vector of the threshold); U the matching uint type. */
#define FLUSH_V(U, v, thr)                                                                     \
    do {                                                                                       \
        U fb_, fa_;                                                                            \
        __typeof__(v) fx_;                                                                     \
        memcpy(&fb_, &(v), sizeof fb_);                                                        \
        fa_ = fb_ & 0x7fffffffu;                                                               \
        memcpy(&fx_, &fa_, sizeof fx_);                                                        \
        fb_ &= ~(U)(fx_ < (thr));                                                              \
        memcpy(&(v), &fb_, sizeof fb_);                                                        \
    } while (0)
/* One kernel set for W lanes, compiled with function attribute ATTR and BODY (a pragma or
 * nothing) first in each body. Loads and stores go through memcpy (unaligned); vectors never
 * cross a function boundary by value (no ABI dependence). The tanh tail of each row runs on a
 * zero-padded vector; the other tails are scalar. */
#define RNN_KERNELS(SUF, W, ATTR, BODY)                                                        \
    typedef float vf_##SUF __attribute__((vector_size(4 * (W))));                              \
    typedef uint32_t vu_##SUF __attribute__((vector_size(4 * (W))));                           \
    ATTR static void tanh_bias_rows_##SUF(float *x, const float *b, size_t n, size_t k,        \
                                          float fl)                                            \
    {                                                                                          \
        BODY                                                                                   \
        const vf_##SUF flv = (vf_##SUF){0} + fl;                                               \
        for (size_t r = 0; r < n; r++) {                                                       \
            float *row = x + r * k;                                                            \
            size_t j = 0;                                                                      \
            for (; j + (W) <= k; j += (W)) {                                                   \
                vf_##SUF xv, bv;                                                               \
                memcpy(&xv, row + j, sizeof xv);                                               \
                if (b) {                                                                       \
                    memcpy(&bv, b + j, sizeof bv);                                             \
                    xv += bv;                                                                  \
                }                                                                              \
                TANH_BODY(vf_##SUF, vu_##SUF, MASK_V, xv, xv);                                         \
                FLUSH_V(vu_##SUF, xv, flv);                                                    \
                memcpy(row + j, &xv, sizeof xv);                                               \
            }                                                                                  \
            if (j < k) {                                                                       \
                float buf[W] = {0};                                                            \
                for (size_t i = j; i < k; i++)                                                 \
                    buf[i - j] = b ? row[i] + b[i] : row[i];                                   \
                vf_##SUF xv;                                                                   \
                memcpy(&xv, buf, sizeof xv);                                                   \
                TANH_BODY(vf_##SUF, vu_##SUF, MASK_V, xv, xv);                                         \
                FLUSH_V(vu_##SUF, xv, flv);                                                    \
                memcpy(buf, &xv, sizeof xv);                                                   \
                memcpy(row + j, buf, (k - j) * sizeof *row);                                   \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    ATTR static void tanh_deriv_rows_##SUF(float *ds, const float *acc, const float *h,        \
                                           int add, float *colsum, size_t n, size_t k,         \
                                           float fl)                                           \
    {                                                                                          \
        BODY                                                                                   \
        const vf_##SUF flv = (vf_##SUF){0} + fl;                                               \
        for (size_t r = 0; r < n; r++) {                                                       \
            float *d = ds + r * k;                                                             \
            const float *a = acc + r * k, *hr = h + r * k;                                     \
            size_t j = 0;                                                                      \
            for (; j + (W) <= k; j += (W)) {                                                   \
                vf_##SUF hv, av, dv, cv, v;                                                    \
                memcpy(&hv, hr + j, sizeof hv);                                                \
                memcpy(&av, a + j, sizeof av);                                                 \
                v = av * (1.0f - hv * hv);                                                     \
                if (add) {                                                                     \
                    memcpy(&dv, d + j, sizeof dv);                                             \
                    v += dv;                                                                   \
                }                                                                              \
                FLUSH_V(vu_##SUF, v, flv);                                                     \
                memcpy(d + j, &v, sizeof v);                                                   \
                memcpy(&cv, colsum + j, sizeof cv);                                            \
                cv += v;                                                                       \
                memcpy(colsum + j, &cv, sizeof cv);                                            \
            }                                                                                  \
            for (; j < k; j++) {                                                               \
                float v = a[j] * (1.0f - hr[j] * hr[j]);                                       \
                if (add)                                                                       \
                    v += d[j];                                                                 \
                v = flush_s(v, fl);                                                            \
                d[j] = v;                                                                      \
                colsum[j] += v;                                                                \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    ATTR static void tanh_rpass_rows_##SUF(float *rs, const float *vb, const float *h,         \
                                           float *ds, float c, size_t n, size_t k, float fl)   \
    {                                                                                          \
        BODY                                                                                   \
        const float c4 = 0.25f * c;                                                            \
        const vf_##SUF flv = (vf_##SUF){0} + fl;                                               \
        for (size_t r = 0; r < n; r++) {                                                       \
            float *x = rs + r * k;                                                             \
            const float *hr = h + r * k;                                                       \
            float *d = ds ? ds + r * k : NULL;                                                 \
            size_t j = 0;                                                                      \
            for (; j + (W) <= k; j += (W)) {                                                   \
                vf_##SUF hv, xv, bv, g, u;                                                     \
                memcpy(&hv, hr + j, sizeof hv);                                                \
                memcpy(&xv, x + j, sizeof xv);                                                 \
                memcpy(&bv, vb + j, sizeof bv);                                                \
                g = 1.0f - hv * hv;                                                            \
                u = xv + bv;                                                                   \
                if (d) {                                                                       \
                    vf_##SUF dd = c4 * g * u;                                                  \
                    FLUSH_V(vu_##SUF, dd, flv);                                                \
                    memcpy(d + j, &dd, sizeof dd);                                             \
                }                                                                              \
                u = g * u;                                                                     \
                FLUSH_V(vu_##SUF, u, flv);                                                     \
                memcpy(x + j, &u, sizeof u);                                                   \
            }                                                                                  \
            for (; j < k; j++) {                                                               \
                float g = 1.0f - hr[j] * hr[j];                                                \
                float u = x[j] + vb[j];                                                        \
                if (d)                                                                         \
                    d[j] = flush_s(c4 * g * u, fl);                                            \
                x[j] = flush_s(g * u, fl);                                                     \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    ATTR static void input_rows_##SUF(float *h, const float *x, const float *wvt,              \
                                      const float *b, size_t n, size_t k, size_t I)            \
    {                                                                                          \
        BODY                                                                                   \
        for (size_t r = 0; r < n; r++) {                                                       \
            float *row = h + r * k;                                                            \
            const float *xr = x + r * I;                                                       \
            size_t j = 0;                                                                      \
            for (; j + (W) <= k; j += (W)) {                                                   \
                vf_##SUF acc, t;                                                               \
                memcpy(&acc, row + j, sizeof acc);                                             \
                if (b) {                                                                       \
                    memcpy(&t, b + j, sizeof t);                                               \
                    acc += t;                                                                  \
                }                                                                              \
                for (size_t i = 0; i < I; i++) {                                               \
                    memcpy(&t, wvt + i * k + j, sizeof t);                                     \
                    acc += xr[i] * t;                                                          \
                }                                                                              \
                memcpy(row + j, &acc, sizeof acc);                                             \
            }                                                                                  \
            for (; j < k; j++) {                                                               \
                float a = row[j];                                                              \
                if (b)                                                                         \
                    a += b[j];                                                                 \
                for (size_t i = 0; i < I; i++)                                                 \
                    a += xr[i] * wvt[i * k + j];                                               \
                row[j] = a;                                                                    \
            }                                                                                  \
        }                                                                                      \
    }

RNN_KERNELS(gen, 8, , )
#if RNN_X86
RNN_KERNELS(avx2, 8, RNN_ISA_FMA("avx2"), RNN_CONTRACT)
RNN_KERNELS(avx512, 16, RNN_ISA_FMA("avx512f"), RNN_CONTRACT)
#endif
#endif

#if RNN_X86
/* 0 = scalar, 1 = generic vectors, 2 = AVX2, 3 = AVX-512: what this CPU and build support. */
static int simd_level(void)
{
#if RNN_X86
    if (!__builtin_cpu_supports("fma"))
        return 1;
    if (__builtin_cpu_supports("avx512f"))
        return 3;
    if (__builtin_cpu_supports("avx2"))
        return 2;
#endif
    return RNN_VEC ? 1 : 0;
}
#endif

#if RNN_VEC && RNN_X86
#define RNN_DISPATCH(name, ...)                                                                \
    switch (simd_level()) {                                                                    \
    case 3: name##_avx512(__VA_ARGS__); break;                                                 \
    case 2: name##_avx2(__VA_ARGS__); break;                                                   \
    default: name##_gen(__VA_ARGS__); break;                                                   \
    }
#elif RNN_VEC
#define RNN_DISPATCH(name, ...) name##_gen(__VA_ARGS__)
#else
#define RNN_DISPATCH(name, ...) name##_s(__VA_ARGS__)
#endif

static void tanh_bias_rows(float *x, const float *b, size_t n, size_t k, float fl)
{
    RNN_DISPATCH(tanh_bias_rows, x, b, n, k, fl);
}

static void tanh_deriv_rows(float *ds, const float *acc, const float *h, int add, float *colsum,
                            size_t n, size_t k, float fl)
{
    RNN_DISPATCH(tanh_deriv_rows, ds, acc, h, add, colsum, n, k, fl);
}

static void tanh_rpass_rows(float *rs, const float *vb, const float *h, float *ds, float c,
                            size_t n, size_t k, float fl)
{
    RNN_DISPATCH(tanh_rpass_rows, rs, vb, h, ds, c, n, k, fl);
}

/* h[s][j] += (b[j] +) sum_i x[s][i] wvt[i][j] for n rows of H (wvt: I x H, the transposed
 * weights; b may be NULL), one pass per row. */
static void add_input_rows(float *h, const float *x, const float *wvt, const float *b, size_t n,
                           size_t H, size_t I)
{
    RNN_DISPATCH(input_rows, h, x, wvt, b, n, H, I);
}

/* act'(.) through the activation value h; and the structural-damping D'' (top of the file). */
static inline float dact(int act, float h)
{
    switch (act) {
    case MOM_ACT_LOGISTIC: return h * (1.0f - h);
    case MOM_ACT_TANH: return 1.0f - h * h;
    case MOM_ACT_RELU: return h > 0.0f ? 1.0f : 0.0f;
    default: return 1.0f;
    }
}

static inline float dpp(int act, float h)
{
    switch (act) {
    case MOM_ACT_LOGISTIC: return h * (1.0f - h);
    case MOM_ACT_TANH: return 0.25f * (1.0f - h * h);
    case MOM_ACT_RELU: return h > 0.0f ? 1.0f : 0.0f;
    default: return 1.0f;
    }
}

/* The three passes; fl is the network's flush threshold (fpenv.h), applied to every value they
 * write. */
static void bias_act_rows(int act, float *x, const float *b, size_t n, size_t k, float fl)
{
    if (act == MOM_ACT_TANH) {
        tanh_bias_rows(x, b, n, k, fl);
        return;
    }
    mom__add_bias_rows(x, b, n, k);
    mom__act_apply_fl(act, x, n * k, fl);
}

/* x = act(x) over one contiguous block of m values. */
static void act_rows(int act, float *x, size_t m, float fl)
{
    if (act == MOM_ACT_TANH)
        tanh_bias_rows(x, NULL, 1, m, fl);
    else
        mom__act_apply_fl(act, x, m, fl);
}

static void deriv_rows(int act, float *ds, const float *acc, const float *h, int add,
                       float *colsum, size_t n, size_t k, float fl)
{
    if (act == MOM_ACT_TANH) {
        tanh_deriv_rows(ds, acc, h, add, colsum, n, k, fl);
        return;
    }
    for (size_t r = 0; r < n; r++) {
        float *d = ds + r * k;
        const float *a = acc + r * k, *hr = h + r * k;
        for (size_t j = 0; j < k; j++) {
            float v = a[j] * dact(act, hr[j]);
            d[j] = flush_s(add ? d[j] + v : v, fl);
            colsum[j] += d[j];
        }
    }
}

static void rpass_rows(int act, float *rs, const float *vb, const float *h, float *ds, float c,
                       size_t n, size_t k, float fl)
{
    if (act == MOM_ACT_TANH) {
        tanh_rpass_rows(rs, vb, h, ds, c, n, k, fl);
        return;
    }
    for (size_t r = 0; r < n; r++) {
        float *x = rs + r * k;
        const float *hr = h + r * k;
        for (size_t j = 0; j < k; j++) {
            float u = x[j] + vb[j];
            if (ds)
                ds[r * k + j] = flush_s(c * dpp(act, hr[j]) * u, fl);
            x[j] = flush_s(dact(act, hr[j]) * u, fl);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Passes */

/* Inputs per step up to which the input projection x W_vh^T is added inside the per-step pass
 * (add_input_rows()) instead of one stacked product: with few inputs (2 for the addition task)
 * it is elementwise work in disguise (I multiply-adds per hidden value), which a BLAS product of
 * inner dimension I does poorly (it also zeroes and rewrites all T*n*H outputs). */
#define RNN_FUSE_INPUTS 16

/* out (I x H) = w (H x I) transposed. */
static void transpose_into(float *out, const float *w, size_t H, size_t I)
{
    for (size_t i = 0; i < I; i++)
        for (size_t j = 0; j < H; j++)
            out[i * H + j] = w[j * I + i];
}

/* ---- the recurrence by groups of sequences ---------------------------------------------------
 *
 * The sequences of a batch are independent along the recurrence, so the step-by-step work (one
 * small product and the elementwise passes per step) is cut into groups of consecutive
 * sequences, each run through all its steps as a part of a team job (team.h): with a
 * multithreaded BLAS these small products run on one thread each (the BLAS does not split them),
 * and the groups run side by side. The number of groups depends only on the batch's shape
 * (mom__rnn_groups()), and every value is computed by the same operations whatever thread runs
 * its group, so the results do not depend on the thread count. */

#define RNN_GROUP_ROWS 48                   /* sequences per group, at least */
#define RNN_GROUP_LEAST ((size_t)1 << 18)    /* recurrent values (T n H) below which: one group */
#define RNN_GROUP_PRODUCT ((size_t)1 << 20)  /* largest m H H of a group's per-step product */

/* Groups only where the per-step products are small enough that a BLAS runs each on one thread
 * (larger ones it shares out itself) and the whole recurrence is worth the helpers' wake-ups. */
size_t mom__rnn_groups(size_t n, size_t H, size_t T)
{
    size_t g = n / RNN_GROUP_ROWS;
    g = g < MOM__TEAM_MAX_PARTS ? g : MOM__TEAM_MAX_PARTS;
    if (g < 2 || n * H * T < RNN_GROUP_LEAST || (n / g) * H * H > RNN_GROUP_PRODUCT)
        return 1;
    return g;
}

/* Sequences [*s0, *s1) of group `part` of `parts`: groups start at multiples of 8 sequences, so
 * that only the last group's products have a partial block of rows (BLAS kernels work on blocks
 * of 4 to 16 rows; with 50 + 50 rows instead of 48 + 52 the step's products took 7% longer). */
static size_t group_start(size_t n, size_t part, size_t parts)
{
    return part >= parts ? n : (n * part / parts) & ~(size_t)7;
}

void mom__rnn_group_rows(size_t n, size_t part, size_t parts, size_t *s0, size_t *s1)
{
    *s0 = group_start(n, part, parts);
    *s1 = group_start(n, part + 1, parts);
}

typedef struct fwd_job {
    const rnn_impl *r;
    const mom_batch *b;
    const float *b_h, *wt, *wvt;
    float *hbuf;
    float fl;
    int fuse;
} fwd_job;

/* Every step of the sequences of one group (hidden_forward()). */
static void fwd_group(void *arg, size_t part, size_t parts)
{
    const fwd_job *j = arg;
    const rnn_impl *r = j->r;
    const mom_batch *b = j->b;
    const size_t n = b->n, T = b->steps, I = r->ni, H = r->nh, nH = n * H;
    size_t s0, s1;
    mom__rnn_group_rows(n, part, parts, &s0, &s1);
    const size_t m = s1 - s0;
    for (size_t t = 0; t < T; t++) {
        float *ht = j->hbuf + (t + 1) * nH;
        float *hr = ht + s0 * H;
        if (t > 0 || r->learn_h0)
            mom__gemm(0, 0, m, H, H, 1.0f, hr - nH, H, j->wt, H, j->fuse ? 0.0f : 1.0f, hr, H);
        else if (j->fuse)
            memset(hr, 0, m * H * sizeof *hr);
        if (j->fuse) {
            /* bias and inputs in one pass, then the activation over the group's m*H values as
             * one contiguous row (no per-row vector tails) */
            add_input_rows(hr, b->inputs + (t * n + s0) * I, j->wvt, j->b_h, m, H, I);
            act_rows(r->act, hr, m * H, j->fl);
        } else {
            bias_act_rows(r->act, hr, j->b_h, m, H, j->fl);
        }
        zero_past_length_rows(ht, b, t, H, s0, s1);
    }
}

/* Hidden states of the whole batch into hbuf (slot 0 = h[-1], slot t+1 = h[t]); wt receives
 * W_hh transposed (and wvt W_vh transposed when the inputs are few). Row-major h[t-1] W_hh^T as a
 * plain product with the transposed copy maps to BLAS's unpacked small-matrix path, which is
 * faster than the transposed form for these sizes. team: the network's helpers for the groups of
 * sequences. */
static void hidden_forward(const rnn_impl *r, mom__team *team, const mom_batch *b, const float *p,
                           float *hbuf, float *wt, float *wvt, float fl)
{
    const size_t n = b->n, T = b->steps, I = r->ni, H = r->nh, nH = n * H;
    const float *w_vh = p + r->off_vh, *w_hh = p + r->off_hh, *b_h = p + r->off_bh;
    /* h[-1] */
    if (r->learn_h0) {
        const float *h0 = p + r->off_h0;
        for (size_t s = 0; s < n; s++)
            memcpy(hbuf + s * H, h0, H * sizeof *hbuf);
    } else {
        memset(hbuf, 0, nH * sizeof *hbuf);
    }
    for (size_t i = 0; i < H; i++)
        for (size_t j = 0; j < H; j++)
            wt[i * H + j] = w_hh[j * H + i];
    const int fuse = I <= RNN_FUSE_INPUTS;
    if (fuse)
        transpose_into(wvt, w_vh, H, I);
    else /* input projection of every step at once */
        mom__gemm(0, 1, T * n, H, I, 1.0f, b->inputs, I, w_vh, I, 0.0f, hbuf + nH, H);
    fwd_job j = {.r = r, .b = b, .b_h = b_h, .wt = wt, .wvt = wvt, .hbuf = hbuf, .fl = fl,
                 .fuse = fuse};
    mom__team_run(team, fwd_group, &j, mom__rnn_groups(n, H, T));
}

/* Step weights of every row into w (cells); decide compact vs dense; in compact mode compact w,
 * fill idx and step_start. Returns the number of counted rows. */
static size_t select_rows(const mom_batch *b, float *w, size_t *idx, size_t *step_start,
                          int *compact)
{
    const size_t n = b->n, T = b->steps, cells = n * T;
    size_t m = 0;
    if (b->mask == NULL && b->lengths == NULL) {
        memset(w, 0, cells * sizeof *w);
        for (size_t s = 0; s < n; s++)
            w[(T - 1) * n + s] = 1.0f;
        m = n;
    } else {
        for (size_t t = 0; t < T; t++)
            for (size_t s = 0; s < n; s++) {
                float v = mom__step_weight(b, t, s);
                w[t * n + s] = v;
                m += v != 0.0f;
            }
    }
    *compact = 2 * m <= cells;
    if (!*compact)
        return m;
    size_t k = 0;
    for (size_t t = 0; t < T; t++) {
        step_start[t] = k;
        for (size_t s = 0; s < n; s++) {
            size_t row = t * n + s;
            if (w[row] != 0.0f) {
                idx[k] = row;
                w[k] = w[row]; /* k <= row: in-place compaction is safe */
                k++;
            }
        }
    }
    step_start[T] = k;
    return m;
}

/* Output layer on the counted rows: fills z and y; returns the weighted loss sum (0 when
 * targets is NULL). hbuf is the hidden-state buffer of the pass, hc the gather buffer, tc the
 * target gather buffer (used in compact mode when targets != NULL). */
static double output_forward(const rnn_impl *r, const mom_batch *b, const float *p,
                             const float *targets, const float *hbuf, float *hc, float *tc,
                             const float *w, const size_t *idx, int compact, size_t m, float *z,
                             float *y, rows *out)
{
    const size_t n = b->n, H = r->nh, O = r->no;
    const float *hs = hbuf + n * H;
    const float *ts = targets;
    size_t nrows = n * b->steps;
    if (compact) {
        for (size_t k = 0; k < m; k++)
            memcpy(hc + k * H, hs + idx[k] * H, H * sizeof *hc);
        if (ts != NULL) {
            for (size_t k = 0; k < m; k++)
                memcpy(tc + k * O, ts + idx[k] * O, O * sizeof *tc);
            ts = tc;
        }
        hs = hc;
        nrows = m;
    }
    mom__gemm(0, 1, nrows, O, H, 1.0f, hs, H, p + r->off_ho, H, 0.0f, z, O);
    mom__add_bias_rows(z, p + r->off_bo, nrows, O);
    double loss = mom__out_forward(r->output, z, y, ts, w, nrows, O);
    out->compact = compact;
    out->m = nrows;
    out->hsrc = hs;
    out->tsrc = ts;
    return loss;
}

typedef struct bptt_job {
    const rnn_impl *r;
    const mom_batch *b;
    const float *w_hh, *hbuf, *dout;
    float *ds, *tmp;
    float *colsums; /* one row of H per group: its share of g_bh */
    const size_t *idx, *step_start;
    size_t t0, t1; /* the chunk */
    int compact, add_ds, dense_dz;
    float fl;
} bptt_job;

/* The steps of one chunk, from its last to its first, for the sequences of one group (bptt()). */
static void bptt_group(void *arg, size_t part, size_t parts)
{
    const bptt_job *j = arg;
    const rnn_impl *r = j->r;
    const mom_batch *b = j->b;
    const size_t n = b->n, T = b->steps, H = r->nh, nH = n * H;
    size_t s0, s1;
    mom__rnn_group_rows(n, part, parts, &s0, &s1);
    const size_t m = s1 - s0, off = s0 * H;
    float *colsum = j->colsums + part * H;
    for (size_t t = j->t1; t-- > j->t0;) {
        float *dst = j->ds + (t - j->t0) * nH;
        float *acc = j->add_ds ? j->tmp : dst;
        const float *ht = j->hbuf + (t + 1) * nH;
        float beta = 0.0f;
        if (!j->compact) {
            if (!j->dense_dz) {
                const float *dt = j->dout + t * nH;
                if (dt != acc)
                    memcpy(acc + off, dt + off, m * H * sizeof *acc);
            }
            beta = 1.0f;
        }
        if (t + 1 < T)
            mom__gemm(0, 0, m, H, H, 1.0f, dst + nH + off, H, j->w_hh, H, beta, acc + off, H);
        else if (j->compact)
            memset(acc + off, 0, m * H * sizeof *acc);
        if (j->compact) {
            for (size_t k = j->step_start[t]; k < j->step_start[t + 1]; k++) {
                size_t row = j->idx[k] - t * n;
                if (row < s0 || row >= s1)
                    continue;
                float *a = acc + row * H;
                const float *d = j->dout + k * H;
                for (size_t c = 0; c < H; c++)
                    a[c] += d[c];
            }
        }
        deriv_rows(r->act, dst + off, acc + off, ht + off, j->add_ds, colsum, m, H, j->fl);
    }
}

/* Backpropagation through time, with the gradients of the hidden weights formed on the way.
 *
 * The deltas ds[t] = dLoss/ds[t] are kept for `K` consecutive steps at a time (a chunk): ds holds
 * K + 1 slots of n x H, slot t - t0 for step t of the chunk [t0, t1) and slot K for step t1 (the
 * first step of the chunk after it, which the recurrence needs). When a chunk is complete, one
 * gemm per weight block adds its contribution over its (t1 - t0) * n stacked rows:
 *   dW_vh += dS_c^T X_c,   dW_hh += dS_c^T H_c (the states h[t-1] of the same steps).
 * A short chunk keeps the loss-and-gradient workspace small (the hidden states of every step
 * are all it needs at full length) while the products stay large; K = T (the Gauss-Newton
 * workspace, whose structural damping pre-fills ds for every step) is the whole sequence at once.
 *
 * Output gradients: dout, when not NULL, holds the gradient with respect to the hidden states
 * from the output layer: dense mode T*n x H rows (copied into the accumulator of each step),
 * compact mode one row per counted row, scattered through idx / step_start. dz, when not NULL
 * (dense mode with add_ds == 0), holds the output deltas (T*n x O), and each chunk forms its
 * rows of dout = dz W_ho itself, straight into its slots.
 * add_ds: ds already holds a term with respect to s to add after the act' multiplication
 * (structural damping); tmp (n x H) is then the accumulator.
 * Writes g_bh, g_vh, g_hh (and g_h0) of g; colsum is MOM__TEAM_MAX_PARTS x H floats of scratch;
 * fl the flush threshold. team: the network's helpers for the groups of sequences
 * (mom__rnn_groups()).
 */
static void bptt(const rnn_impl *r, mom__team *team, const mom_batch *b, const float *p,
                 const float *hbuf, float *ds, size_t K, const float *dout, const float *dz,
                 int compact, const size_t *idx, const size_t *step_start, int add_ds,
                 float *tmp, float *colsum, float *g, float fl)
{
    const size_t n = b->n, T = b->steps, I = r->ni, H = r->nh, O = r->no, nH = n * H;
    const float *w_hh = p + r->off_hh, *w_ho = p + r->off_ho;
    float *g_bh = g + r->off_bh, *g_vh = g + r->off_vh, *g_hh = g + r->off_hh;
    float beta_vh = 0.0f, beta_hh = 0.0f; /* 0 until a chunk has written the block */
    const size_t parts = mom__rnn_groups(n, H, T);
    /* the groups' shares of g_bh, added in group order at the end (one group: g_bh itself) */
    float *colsums = parts == 1 ? g_bh : colsum;
    memset(colsums, 0, parts * H * sizeof *colsums);
    bptt_job j = {.r = r, .b = b, .w_hh = w_hh, .hbuf = hbuf, .dout = dout, .ds = ds, .tmp = tmp,
                  .colsums = colsums, .idx = idx, .step_start = step_start, .compact = compact,
                  .add_ds = add_ds, .dense_dz = dz != NULL, .fl = fl};
    const size_t n_chunks = (T + K - 1) / K;
    for (size_t c = n_chunks; c-- > 0;) {
        const size_t t0 = c * K, t1 = t0 + K < T ? t0 + K : T;
        if (t1 < T)
            memcpy(ds + K * nH, ds, nH * sizeof *ds); /* step t1, slot 0 of the chunk after */
        if (dz != NULL && !compact)
            mom__gemm(0, 0, (t1 - t0) * n, H, O, 1.0f, dz + t0 * n * O, O, w_ho, H, 0.0f, ds, H);
        j.t0 = t0;
        j.t1 = t1;
        mom__team_run(team, bptt_group, &j, parts);
        /* this chunk's share of the weight gradients */
        const size_t nr = (t1 - t0) * n;
        mom__gemm(1, 0, H, I, nr, 1.0f, ds, H, b->inputs + t0 * n * I, I, beta_vh, g_vh, I);
        beta_vh = 1.0f;
        if (r->learn_h0 || t0 > 0) {
            mom__gemm(1, 0, H, H, nr, 1.0f, ds, H, hbuf + t0 * nH, H, beta_hh, g_hh, H);
            beta_hh = 1.0f;
        } else if (nr > n) {
            /* h[-1] = 0: step 0 adds nothing to dW_hh */
            mom__gemm(1, 0, H, H, nr - n, 1.0f, ds + nH, H, hbuf + nH, H, beta_hh, g_hh, H);
            beta_hh = 1.0f;
        }
    }
    if (beta_hh == 0.0f)
        memset(g_hh, 0, H * H * sizeof *g_hh);
    if (parts > 1) {
        memcpy(g_bh, colsums, H * sizeof *g_bh);
        for (size_t q = 1; q < parts; q++)
            for (size_t c = 0; c < H; c++)
                g_bh[c] += colsums[q * H + c];
    }
    if (r->learn_h0) {
        /* dLoss/dh0 = W_hh^T (column sums of ds[0]); ds[0] is slot 0 of the first chunk */
        memset(colsum, 0, H * sizeof *colsum);
        mom__col_sums_add(colsum, ds, n, H);
        mom__gemv(1, H, H, 1.0f, w_hh, H, colsum, 0.0f, g + r->off_h0);
    }
}

/* Steps per BPTT chunk of the loss-and-gradient workspace: about RNN_CHUNK_FLOATS floats of
 * deltas, at least one step, at most T. */
static size_t chunk_steps(size_t n, size_t H, size_t T)
{
    size_t k = RNN_CHUNK_FLOATS / (n * H);
    k = k < 1 ? 1 : k;
    return k < T ? k : T;
}

/* Gradients of W_ho and b_o from dz (m x O) and the hidden rows feeding the outputs. */
static void output_weight_grads(const rnn_impl *r, const rows *rw, const float *dz, float *g)
{
    const size_t H = r->nh, O = r->no;
    mom__gemm(1, 0, O, H, rw->m, 1.0f, dz, O, rw->hsrc, H, 0.0f, g + r->off_ho, H);
    memset(g + r->off_bo, 0, O * sizeof *g);
    mom__col_sums_add(g + r->off_bo, dz, rw->m, O);
}

/* Loss and (grad != NULL) gradient using workspace lg. */
static int lg_core(mom_net *net, const mom_batch *b, const float *p, double *loss, float *grad)
{
    rnn_impl *r = net->impl;
    rnn_ws *ws = &r->lg;
    int rc = ws_ensure(net, ws, 0, b->n, b->steps);
    if (rc != MOM_OK)
        return rc;
    const size_t n = b->n, H = r->nh, O = r->no;
    hidden_forward(r, &net->team, b, p, ws->hbuf, ws->wt, ws->wvt, net->flush_below);
    int compact;
    size_t m = select_rows(b, ws->w, ws->idx, ws->step_start, &compact);
    rows rw;
    double sum = output_forward(r, b, p, b->targets, ws->hbuf, ws->hc, ws->tc, ws->w, ws->idx,
                                compact, m, ws->z, ws->y, &rw);
    *loss = sum / (double)n;
    if (grad == NULL)
        return MOM_OK;
    float *dz = ws->z;
    mom__out_delta_fl(dz, ws->y, rw.tsrc, ws->w, (float)(1.0 / (double)n), rw.m, O,
                      net->flush_below);
    output_weight_grads(r, &rw, dz, grad);
    /* dLoss/dh from the outputs: compact rows into hc (its hidden rows are no longer needed);
     * dense rows are formed chunk by chunk inside bptt */
    const float *dout = NULL;
    if (compact) {
        mom__gemm(0, 0, rw.m, H, O, 1.0f, dz, O, p + r->off_ho, H, 0.0f, ws->hc, H);
        dout = ws->hc;
    }
    bptt(r, &net->team, b, p, ws->hbuf, ws->ds, chunk_steps(n, H, b->steps), dout,
         compact ? NULL : dz, compact, ws->idx, ws->step_start, 0, ws->tmp, ws->colsum, grad,
         net->flush_below);
    return MOM_OK;
}

static int rnn_loss_grad(mom_net *net, const mom_batch *b, const float *p, double *loss,
                         float *grad)
{
    return lg_core(net, b, p, loss, grad);
}

/* Mean over sequences of the squared per-sequence gradient: one sequence at a time, each copied
 * into a contiguous single-sequence batch truncated to its length. */
static int rnn_fisher(mom_net *net, const mom_batch *b, const float *p, float *out)
{
    rnn_impl *r = net->impl;
    rnn_ws *ws = &r->lg;
    int rc = ws_ensure(net, ws, 0, b->n, b->steps);
    if (rc != MOM_OK)
        return rc;
    const size_t n = b->n, I = r->ni, O = r->no, P = net->n_params;
    const float inv_n = (float)(1.0 / (double)n);
    memset(out, 0, P * sizeof *out);
    for (size_t s = 0; s < n; s++) {
        size_t len = mom__seq_len(b, s);
        for (size_t t = 0; t < len; t++) {
            memcpy(ws->fx + t * I, b->inputs + (t * n + s) * I, I * sizeof *ws->fx);
            memcpy(ws->ft + t * O, b->targets + (t * n + s) * O, O * sizeof *ws->ft);
            if (b->mask)
                ws->fm[t] = b->mask[t * n + s];
        }
        mom_batch one = {1, len, ws->fx, ws->ft, b->mask ? ws->fm : NULL, NULL};
        double l;
        rc = lg_core(net, &one, p, &l, ws->fg);
        if (rc != MOM_OK)
            return rc;
        const float *g = ws->fg;
        for (size_t i = 0; i < P; i++)
            out[i] += inv_n * g[i] * g[i];
    }
    return MOM_OK;
}

static int rnn_gv_begin(mom_net *net, const mom_batch *b, const float *p)
{
    rnn_impl *r = net->impl;
    rnn_ws *ws = &r->gv;
    int rc = ws_ensure(net, ws, 1, b->n, b->steps);
    if (rc != MOM_OK)
        return rc;
    hidden_forward(r, &net->team, b, p, ws->hbuf, ws->wt, ws->wvt, net->flush_below);
    int compact;
    size_t m = select_rows(b, ws->w, ws->idx, ws->step_start, &compact);
    rows rw;
    (void)output_forward(r, b, p, NULL, ws->hbuf, ws->hc, NULL, ws->w, ws->idx, compact, m,
                         ws->z, ws->y, &rw);
    r->gv_batch = *b;
    r->gv_params = p;
    r->gv_m = rw.m;
    r->gv_compact = compact;
    return MOM_OK;
}

typedef struct rpass_job {
    const rnn_impl *r;
    const mom_batch *b;
    const float *hbuf, *vt, *wt, *wvt, *h0, *v_bh;
    float *R, *ds; /* ds: the structural damping's term, or NULL */
    float cs, fl;
    int fuse;
} rpass_job;

/* The R-pass of the hidden states of one group of sequences, every step (rnn_gv()): R s[t] =
 * V_hh h[t-1] + W_hh R h[t-1] (+ the input part), then R h[t] = act'(s[t]) R s[t]. vt and wt are
 * V_hh and W_hh transposed (wt from gv_begin: the parameters are unchanged since, by contract);
 * h0: W_hh v_h0 when h0 is learned. */
static void rpass_group(void *arg, size_t part, size_t parts)
{
    const rpass_job *j = arg;
    const rnn_impl *r = j->r;
    const mom_batch *b = j->b;
    const size_t n = b->n, T = b->steps, I = r->ni, H = r->nh, nH = n * H;
    size_t s0, s1;
    mom__rnn_group_rows(n, part, parts, &s0, &s1);
    const size_t m = s1 - s0, off = s0 * H;
    for (size_t t = 0; t < T; t++) {
        float *rt = j->R + t * nH, *rr = rt + off;
        const float *hr = j->hbuf + (t + 1) * nH + off;
        float beta = j->fuse ? 0.0f : 1.0f; /* rt holds the input part unless it is added below */
        if (t > 0 || r->learn_h0) { /* h[-1] is h0, or 0 */
            mom__gemm(0, 0, m, H, H, 1.0f, hr - nH, H, j->vt, H, beta, rr, H);
            beta = 1.0f;
        }
        if (t > 0)
            mom__gemm(0, 0, m, H, H, 1.0f, rr - nH, H, j->wt, H, 1.0f, rr, H);
        else if (r->learn_h0)
            mom__add_bias_rows(rr, j->h0, m, H);
        else if (beta == 0.0f)
            memset(rr, 0, m * H * sizeof *rr);
        if (j->fuse)
            add_input_rows(rr, b->inputs + (t * n + s0) * I, j->wvt, NULL, m, H, I);
        /* + v_bh, damping term into ds, then R h[t] = act' * R s[t] */
        float *dt = j->ds ? j->ds + t * nH : NULL;
        rpass_rows(r->act, rr, j->v_bh, hr, dt ? dt + off : NULL, j->cs, m, H, j->fl);
        if (dt)
            zero_past_length_rows(dt, b, t, H, s0, s1);
        zero_past_length_rows(rt, b, t, H, s0, s1);
    }
}

static int rnn_gv(mom_net *net, const float *v, double struct_damping, float *out,
                  const mom__gv_acc *acc)
{
    (void)acc; /* mom__net_gv_acc() refuses recurrent nets */
    rnn_impl *r = net->impl;
    rnn_ws *ws = &r->gv;
    const mom_batch *b = &r->gv_batch;
    const float *p = r->gv_params;
    const size_t n = b->n, T = b->steps, I = r->ni, H = r->nh, O = r->no, nH = n * H;
    const size_t cells = n * T;
    const float *w_hh = p + r->off_hh, *w_ho = p + r->off_ho;
    const float *v_hh = v + r->off_hh;
    const float *hbuf = ws->hbuf;
    float *R = ws->r, *ds = ws->ds;
    const int damp = struct_damping > 0.0;
    const float cs = (float)(struct_damping / (double)n);

    /* R-pass of the hidden pre-activations. The input part is one gemm, or with few inputs added
     * per step as in hidden_forward(); V_hh h[t-1] and W_hh R h[t-1] are two small gemms per step,
     * so that R s[t] stays in cache for the element-wise pass that follows; by groups of
     * sequences as the forward pass (rpass_group()). */
    const int fuse = I <= RNN_FUSE_INPUTS;
    if (fuse)
        transpose_into(ws->wvt, v + r->off_vh, H, I);
    else
        mom__gemm(0, 1, cells, H, I, 1.0f, b->inputs, I, v + r->off_vh, I, 0.0f, R, H);
    if (r->learn_h0) /* step 0 also sees W_hh v_h0 */
        mom__gemv(0, H, H, 1.0f, w_hh, H, v + r->off_h0, 0.0f, ws->colsum);
    transpose_into(ws->vt, v_hh, H, H);
    rpass_job j = {.r = r, .b = b, .hbuf = hbuf, .vt = ws->vt, .wt = ws->wt, .wvt = ws->wvt,
                   .h0 = ws->colsum, .v_bh = v + r->off_bh, .R = R, .ds = damp ? ds : NULL,
                   .cs = cs, .fl = net->flush_below, .fuse = fuse};
    mom__team_run(&net->team, rpass_group, &j, mom__rnn_groups(n, H, T));

    /* R-pass of z on the counted rows, then H (the output loss Hessian times weight / n) */
    const int compact = r->gv_compact;
    const size_t m = r->gv_m;
    if (compact) {
        for (size_t k = 0; k < m; k++)
            if (ws->idx[k] != k)
                memcpy(R + k * H, R + ws->idx[k] * H, H * sizeof *R);
    }
    rows rw = {compact, m, compact ? ws->hc : hbuf + nH, NULL};
    float *rz = ws->z;
    mom__gemm(0, 1, m, O, H, 1.0f, R, H, w_ho, H, 0.0f, rz, O);
    mom__gemm(0, 1, m, O, H, 1.0f, rw.hsrc, H, v + r->off_ho, H, 1.0f, rz, O);
    mom__add_bias_rows(rz, v + r->off_bo, m, O);
    mom__out_hess_fl(r->output, rz, ws->y, rz, ws->w, (float)(1.0 / (double)n), m, O,
                     net->flush_below);

    /* backward pass: J^T (H J v) (+ c J_s^T D'' J_s v, already in ds) */
    output_weight_grads(r, &rw, rz, out);
    mom__gemm(0, 0, m, H, O, 1.0f, rz, O, w_ho, H, 0.0f, R, H);
    bptt(r, &net->team, b, p, hbuf, ds, T, R, NULL, compact, ws->idx, ws->step_start, damp,
         ws->tmp, ws->colsum, out, net->flush_below);
    return MOM_OK;
}

static int rnn_forward(mom_net *net, const mom_batch *b, const float *p, size_t layer,
                       float *out)
{
    rnn_impl *r = net->impl;
    const size_t n = b->n, T = b->steps, I = r->ni, H = r->nh, O = r->no;
    if (layer == 0) {
        for (size_t t = 0; t < T; t++) {
            memcpy(out + t * n * I, b->inputs + t * n * I, n * I * sizeof *out);
            zero_past_length(out + t * n * I, b, t, I);
        }
        return MOM_OK;
    }
    rnn_ws *ws = &r->lg;
    int rc = ws_ensure(net, ws, 0, n, T);
    if (rc != MOM_OK)
        return rc;
    hidden_forward(r, &net->team, b, p, ws->hbuf, ws->wt, ws->wvt, net->flush_below);
    if (layer == 1) {
        memcpy(out, ws->hbuf + n * H, n * T * H * sizeof *out);
        return MOM_OK;
    }
    float *z = layer == MOM__LAYER_Z ? out : ws->z;
    mom__gemm(0, 1, n * T, O, H, 1.0f, ws->hbuf + n * H, H, p + r->off_ho, H, 0.0f, z, O);
    mom__add_bias_rows(z, p + r->off_bo, n * T, O);
    if (layer != MOM__LAYER_Z)
        (void)mom__out_forward(r->output, z, out, NULL, NULL, n * T, O);
    for (size_t t = 0; t < T; t++)
        zero_past_length(out + t * n * O, b, t, O);
    return MOM_OK;
}

static int rnn_metric(mom_net *net, const mom_batch *b, const float *p, int metric, double param,
                      double *value)
{
    rnn_impl *r = net->impl;
    rnn_ws *ws = &r->lg;
    int rc = ws_ensure(net, ws, 0, b->n, b->steps);
    if (rc != MOM_OK)
        return rc;
    const size_t n = b->n, O = r->no;
    hidden_forward(r, &net->team, b, p, ws->hbuf, ws->wt, ws->wvt, net->flush_below);
    int compact;
    size_t m = select_rows(b, ws->w, ws->idx, ws->step_start, &compact);
    rows rw;
    double sum = output_forward(r, b, p, b->targets, ws->hbuf, ws->hc, ws->tc, ws->w, ws->idx,
                                compact, m, ws->z, ws->y, &rw);
    const float *y = ws->y, *t = rw.tsrc, *w = ws->w;
    switch (metric) {
    case MOM_METRIC_LOSS:
        *value = sum / (double)n;
        return MOM_OK;
    case MOM_METRIC_SQUARED_ERROR:
        *value = mom__out_sqerr(y, t, w, rw.m, O) / (double)n;
        return MOM_OK;
    case MOM_METRIC_CLASS_ERROR:
    case MOM_METRIC_WRONG_SYMBOLS: {
        size_t counted = 0, wrong = 0;
        for (size_t k = 0; k < rw.m; k++) {
            if (w[k] == 0.0f)
                continue;
            counted++;
            wrong += (size_t)mom__class_wrong(y + k * O, t + k * O, O);
        }
        if (metric == MOM_METRIC_CLASS_ERROR)
            *value = counted ? (double)wrong / (double)counted : 0.0;
        else
            *value = (double)wrong / (double)n;
        return MOM_OK;
    }
    case MOM_METRIC_THRESHOLD_ERROR: {
        const double thr = param > 0.0 ? param : 0.04;
        size_t *last = ws->seq_last;
        for (size_t s = 0; s < n; s++)
            last[s] = SIZE_MAX;
        /* rows are in time order, so the last one seen per sequence is its last weighted step */
        for (size_t k = 0; k < rw.m; k++)
            if (w[k] != 0.0f)
                last[(compact ? ws->idx[k] : k) % n] = k;
        size_t errors = 0;
        for (size_t s = 0; s < n; s++) {
            if (last[s] == SIZE_MAX)
                continue; /* nothing counted: nothing wrong */
            const float *yk = y + last[s] * O, *tk = t + last[s] * O;
            for (size_t j = 0; j < O; j++) {
                if (!(fabs((double)yk[j] - (double)tk[j]) <= thr)) {
                    errors++;
                    break;
                }
            }
        }
        *value = (double)errors / (double)n;
        return MOM_OK;
    }
    default:
        return mom__fail(&net->base, MOM_E_INVALID, "unknown metric %d", metric);
    }
}

static const mom__net_ops rnn_ops = {
    rnn_destroy, rnn_reserve, rnn_workspace_bytes, rnn_loss_grad, rnn_fisher,
    rnn_gv_begin, rnn_gv, rnn_forward, rnn_metric,
};

/* ---------------------------------------------------------------------------------------------
 * Creation */

int mom_net_create_rnn(mom_net **out, size_t n_in, size_t n_hidden, size_t n_out, int hidden_act,
                       int output, uint32_t flags, const mom_allocator *alloc)
{
    /* A constructor has no handle to carry a detail message on failure; each rejected argument
     * is named in the comment of its check. */
    if (out == NULL)
        return MOM_E_INVALID; /* out is NULL */
    *out = NULL;
    mom_allocator a;
    if (mom__alloc_init(&a, alloc) != MOM_OK)
        return MOM_E_INVALID; /* allocator with a NULL function */
    const size_t maxd = mom__blas_max_dim();
    if (n_in == 0 || n_hidden == 0 || n_out == 0)
        return MOM_E_INVALID; /* every width must be at least 1 */
    if (n_in > maxd || n_hidden > maxd || n_out > maxd)
        return MOM_E_INVALID; /* a width exceeds what BLAS can index */
    if (hidden_act != MOM_ACT_LINEAR && hidden_act != MOM_ACT_LOGISTIC &&
        hidden_act != MOM_ACT_TANH && hidden_act != MOM_ACT_RELU)
        return MOM_E_INVALID; /* unknown hidden activation (softmax is not a hidden act) */
    if (output != MOM_OUT_LINEAR_SQUARED && output != MOM_OUT_LOGISTIC_XENT &&
        output != MOM_OUT_SOFTMAX_XENT)
        return MOM_E_INVALID; /* unknown output */
    if (output == MOM_OUT_SOFTMAX_XENT && n_out < 2)
        return MOM_E_INVALID; /* softmax needs at least 2 outputs */
    if ((flags & ~(uint32_t)MOM_RNN_LEARN_H0) != 0)
        return MOM_E_INVALID; /* unknown flag bits */
    const int learn_h0 = (flags & MOM_RNN_LEARN_H0) != 0;

    /* Block sizes and offsets, overflow-checked. */
    size_t n_vh, n_hh, n_ho, off = 0;
    size_t offs[6] = {0};
    if (!mom__mul_size(&n_vh, n_hidden, n_in) || !mom__mul_size(&n_hh, n_hidden, n_hidden) ||
        !mom__mul_size(&n_ho, n_out, n_hidden))
        return MOM_E_INVALID; /* parameter count overflows */
    const size_t sizes[6] = {n_vh, n_hh, n_hidden, n_ho, n_out, learn_h0 ? n_hidden : 0};
    for (int i = 0; i < 6; i++) {
        offs[i] = off;
        if (!mom__add_size(&off, off, sizes[i]))
            return MOM_E_INVALID; /* parameter count overflows */
    }
    size_t bytes;
    if (!mom__mul_size(&bytes, off, sizeof(float)) || bytes > (size_t)PTRDIFF_MAX)
        return MOM_E_INVALID; /* parameter vector too large to allocate */

    const size_t n_blocks = learn_h0 ? 6 : 5;
    mom_net *net;
    int rc = mom__net_new(&net, &a, MOM_NET_RECURRENT, output, off, n_blocks, 3);
    if (rc != MOM_OK)
        return rc;
    rnn_impl *r = mom__calloc(&a, 1, sizeof *r);
    if (r == NULL) {
        mom_net_destroy(net);
        return MOM_E_NOMEM;
    }
    net->impl = r;
    net->ops = &rnn_ops;
    net->n_in = n_in;
    net->n_out = n_out;
    r->ni = n_in;
    r->nh = n_hidden;
    r->no = n_out;
    r->act = hidden_act;
    r->output = output;
    r->learn_h0 = learn_h0;
    r->off_vh = offs[0];
    r->off_hh = offs[1];
    r->off_bh = offs[2];
    r->off_ho = offs[3];
    r->off_bo = offs[4];
    r->off_h0 = offs[5];

    static const int kinds[6] = {MOM_BLOCK_W_VH, MOM_BLOCK_W_HH, MOM_BLOCK_B_H,
                                 MOM_BLOCK_W_HO, MOM_BLOCK_B_O,  MOM_BLOCK_H0};
    const size_t rows_[6] = {n_hidden, n_hidden, n_hidden, n_out, n_out, n_hidden};
    const size_t cols_[6] = {n_in, n_hidden, 1, n_hidden, 1, 1};
    for (size_t i = 0; i < n_blocks; i++) {
        net->blocks[i].kind = kinds[i];
        net->blocks[i].layer = 0;
        net->blocks[i].rows = rows_[i];
        net->blocks[i].cols = cols_[i];
        net->blocks[i].offset = offs[i];
    }
    net->layer_size[0] = n_in;
    net->layer_size[1] = n_hidden;
    net->layer_size[2] = n_out;
    net->layer_act[0] = MOM_ACT_LINEAR;
    net->layer_act[1] = hidden_act;
    net->layer_act[2] = output == MOM_OUT_LOGISTIC_XENT  ? MOM_ACT_LOGISTIC
                        : output == MOM_OUT_SOFTMAX_XENT ? MOM_ACT_SOFTMAX
                                                         : MOM_ACT_LINEAR;
    *out = net;
    return MOM_OK;
}
