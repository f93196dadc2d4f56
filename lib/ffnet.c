/*
 * Feedforward networks: creation and the kind-specific operations behind net.c.
 *
 * Notation: L weight layers, unit layers 0..L with widths s_0..s_L. For a batch of n cases stored
 * row-major (one case per row), layer l computes
 *     Z_l = A_{l-1} W_l^T + 1 b_l^T,   A_l = f_l(Z_l)
 * with one gemm and one fused bias+activation pass. The output layer keeps Z_L (needed by the
 * cross-entropies, which are computed from z) in a scratch buffer and writes Y = A_L.
 *
 * Workspaces. A workspace holds, for up to `cap` cases, the activations A_1..A_L and two ping-pong
 * scratch buffers of the widest layer (pre-activations of the output, deltas, R-pass values). The
 * input layer A_0 is never copied: it is the caller's batch. There are two workspaces: `ws` for
 * loss/gradient/Fisher/forward/metric calls and `gws`, which keeps the activations cached by
 * gv_begin for later Gauss-Newton products. Each is one allocation, replaced only when a larger
 * batch arrives, so calls with the same or smaller batches never allocate.
 */
#include <math.h>
#include <string.h>

#include "blas.h"
#include "layers.h"
#include "net_internal.h"

typedef struct ff_ws {
    float *mem;   /* one allocation: A_1..A_L, then d0, d1 */
    size_t cap;   /* cases it can hold (0 = nothing allocated) */
    size_t bytes; /* bytes held */
} ff_ws;

typedef struct ff_impl {
    float *sums;   /* MOM__TEAM_MAX_PARTS x maxw per-part column sums of shared passes */
    size_t L;      /* weight layers */
    size_t *off;   /* L+1 entries: off[l-1] = per-case offset of A_l (l = 1..L); off[L] = sum */
    size_t maxw;   /* widest unit layer (including the input) */
    uint32_t *wmax; /* L entries: largest abs_bits of each layer's weights at the point, recorded
                     * by a fused NAG step's point hook (mom__nag_fuse) for its gradient bound */
    ff_ws ws;      /* loss / gradient / Fisher / forward / metric */
    ff_ws gws;     /* Gauss-Newton cache */
    /* Gauss-Newton state captured by gv_begin (borrowed pointers, see net.h) */
    const float *gv_x;
    const float *gv_p;
    size_t gv_n;
} ff_impl;

/* ---- helpers --------------------------------------------------------------------------------- */

static ff_impl *impl_of(const mom_net *net) { return (ff_impl *)net->impl; }

static size_t width(const mom_net *net, size_t l) { return net->layer_size[l]; }

static const float *w_of(const mom_net *net, const float *p, size_t l)
{
    return p + net->blocks[2 * (l - 1)].offset; /* weights of layer l (1-based unit layer) */
}

static const float *b_of(const mom_net *net, const float *p, size_t l)
{
    return p + net->blocks[2 * (l - 1) + 1].offset;
}

/* Activations A_l (l >= 1) of a workspace. */
static float *ws_act(const ff_impl *im, const ff_ws *w, size_t l)
{
    return w->mem + w->cap * im->off[l - 1];
}

static float *ws_d0(const ff_impl *im, const ff_ws *w) { return w->mem + w->cap * im->off[im->L]; }

static float *ws_d1(const ff_impl *im, const ff_ws *w)
{
    return ws_d0(im, w) + w->cap * im->maxw;
}

/* A new workspace for n cases in *w (its old contents are not looked at, nor freed). */
static int ws_new(mom_net *net, ff_ws *w, size_t n)
{
    ff_impl *im = impl_of(net);
    if (n > mom__blas_max_dim())
        return mom__fail(&net->base, MOM_E_INVALID,
                         "batch of %zu cases exceeds the BLAS dimension limit %zu", n,
                         mom__blas_max_dim());
    size_t per_case, floats, bytes;
    if (!mom__mul_size(&per_case, im->maxw, 2) ||
        !mom__add_size(&per_case, per_case, im->off[im->L]) ||
        !mom__mul_size(&floats, per_case, n) || !mom__mul_size(&bytes, floats, sizeof(float)))
        return mom__fail(&net->base, MOM_E_NOMEM, "workspace for %zu cases overflows size_t", n);
    float *mem = mom__malloc(&net->base.alloc, bytes);
    if (mem == NULL)
        return mom__fail(&net->base, MOM_E_NOMEM, "cannot allocate %zu bytes of workspace", bytes);
    w->mem = mem;
    w->cap = n;
    w->bytes = bytes;
    return MOM_OK;
}

/* Make `w` hold at least n cases. On failure the old workspace is kept. */
static int ws_grow(mom_net *net, ff_ws *w, size_t n)
{
    if (n <= w->cap)
        return MOM_OK;
    ff_ws nw;
    int rc = ws_new(net, &nw, n);
    if (rc != MOM_OK)
        return rc;
    mom__free(&net->base.alloc, w->mem);
    *w = nw;
    return MOM_OK;
}

/* ---- elementwise passes shared with the network's helper threads (team.h) ------------------ */

/* Passes over fewer values than FF_LEAST run on the caller (not worth a helper's wake-up, which
 * takes 5-20 microseconds); larger ones are cut into parts of about FF_GRAIN values. */
#define FF_LEAST 32768
#define FF_GRAIN 4096

typedef struct ff_job {
    int act, output;
    float *x;       /* the rows transformed in place (n x k) */
    const float *a; /* activations (derivative pass) */
    const float *b; /* biases */
    float *y;       /* outputs (output pass) */
    const float *t; /* targets (output pass; may be NULL) */
    float scale, flush;
    size_t n, k;
    float *sums;    /* parts x k per-part column sums, or NULL */
    double loss[MOM__TEAM_MAX_PARTS];
} ff_job;

static size_t row0(const ff_job *j, size_t part, size_t parts) { return j->n * part / parts; }

static void job_bias_act(void *arg, size_t part, size_t parts)
{
    ff_job *j = arg;
    size_t r0 = row0(j, part, parts), r1 = row0(j, part + 1, parts);
    mom__bias_act_fl(j->act, j->x + r0 * j->k, j->b, r1 - r0, j->k, j->flush);
}

static void job_output(void *arg, size_t part, size_t parts)
{
    ff_job *j = arg;
    size_t r0 = row0(j, part, parts), r1 = row0(j, part + 1, parts), k = j->k;
    j->loss[part] = mom__out_forward_fused_fl(j->output, j->x + r0 * k, j->b, j->y + r0 * k,
                                              j->t ? j->t + r0 * k : NULL, j->scale,
                                              j->sums ? j->sums + part * k : NULL, r1 - r0, k,
                                              j->flush);
}

static void job_deriv(void *arg, size_t part, size_t parts)
{
    ff_job *j = arg;
    size_t r0 = row0(j, part, parts), r1 = row0(j, part + 1, parts), k = j->k;
    mom__act_deriv_mul_colsum_fl(j->act, j->x + r0 * k, j->a + r0 * k, j->sums + part * k,
                                 r1 - r0, k, j->flush, 0);
}

/* out[c] = (add ? out[c] : 0) + sums[0][c] + sums[1][c] + ... in part order. */
static void combine_sums(float *out, const float *sums, size_t parts, size_t k, int add)
{
    for (size_t c = 0; c < k; c++) {
        float v = add ? out[c] : 0.0f;
        for (size_t q = 0; q < parts; q++)
            v += sums[q * k + c];
        out[c] = v;
    }
}

/* A = act(A + 1 b^T) on n x k, shared when large. */
static void ff_bias_act(mom_net *net, int act, float *x, const float *b, size_t n, size_t k)
{
    size_t parts = mom__team_parts(n * k, n, FF_LEAST, FF_GRAIN);
    if (parts == 1) {
        mom__bias_act_fl(act, x, b, n, k, net->flush_below);
        return;
    }
    ff_job j = {.act = act, .x = x, .b = b, .flush = net->flush_below, .n = n, .k = k};
    mom__team_run(&net->team, job_bias_act, &j, parts);
}

/* mom__out_forward_fused_fl(), shared when large: per-part losses and bias sums, combined in
 * part order. */
static double ff_output(mom_net *net, float *z, const float *b, float *y, const float *t,
                        float scale, float *dbias, size_t n, size_t k)
{
    size_t parts = mom__team_parts(n * k, n, FF_LEAST, FF_GRAIN);
    if (parts == 1)
        return mom__out_forward_fused_fl(net->output, z, b, y, t, scale, dbias, n, k,
                                         net->flush_below);
    ff_job j = {.output = net->output, .x = z, .b = b, .y = y, .t = t, .scale = scale,
                .flush = net->flush_below, .n = n, .k = k,
                .sums = dbias ? impl_of(net)->sums : NULL};
    mom__team_run(&net->team, job_output, &j, parts);
    double total = 0.0;
    for (size_t q = 0; q < parts; q++)
        total += j.loss[q];
    if (dbias)
        combine_sums(dbias, j.sums, parts, k, 0);
    return total;
}

/* mom__act_deriv_mul_colsum_fl(), shared when large. */
static void ff_deriv(mom_net *net, int act, float *d, const float *a, float *sums, size_t n,
                     size_t k, int add)
{
    size_t parts = mom__team_parts(n * k, n, FF_LEAST, FF_GRAIN);
    if (parts == 1) {
        mom__act_deriv_mul_colsum_fl(act, d, a, sums, n, k, net->flush_below, add);
        return;
    }
    ff_job j = {.act = act, .x = d, .a = a, .flush = net->flush_below, .n = n, .k = k,
                .sums = impl_of(net)->sums};
    mom__team_run(&net->team, job_deriv, &j, parts);
    combine_sums(sums, j.sums, parts, k, add);
}

/*
 * Forward pass on n cases through layers 1..upto (upto <= L). When upto == L, Y goes to A_L and
 * the summed loss against t (NULL: 0) is returned; d0 receives the output pre-activations Z_L, or,
 * if dbias != NULL, the output deltas (Y - T) / n, with their column sums (the gradient of b_L)
 * in dbias.
 */
static double ff_forward(mom_net *net, const ff_ws *w, const float *x, size_t n, const float *p,
                         size_t upto, const float *t, float *dbias)
{
    const ff_impl *im = impl_of(net);
    const mom__nag_fuse *fz = net->nag_fuse;
    const float *prev = x;
    for (size_t l = 1; l <= upto; l++) {
        size_t si = width(net, l - 1), so = width(net, l);
        float *a = ws_act(im, w, l);
        if (fz != NULL) {
            /* a fused NAG step forms this layer's look-ahead point now, just before it is read */
            im->wmax[l - 1] = fz->point(fz->ctx, net->blocks[2 * (l - 1)].offset, so * si);
            (void)fz->point(fz->ctx, net->blocks[2 * (l - 1) + 1].offset, so);
        }
        if (l < im->L) {
            mom__gemm(0, 1, n, so, si, 1.0f, prev, si, w_of(net, p, l), si, 0.0f, a, so);
            ff_bias_act(net, net->layer_act[l], a, b_of(net, p, l), n, so);
        } else {
            float *z = ws_d0(im, w);
            mom__gemm(0, 1, n, so, si, 1.0f, prev, si, w_of(net, p, l), si, 0.0f, z, so);
            return ff_output(net, z, b_of(net, p, l), a, t, 1.0f / (float)n, dbias, n, so);
        }
        prev = a;
    }
    return 0.0;
}

/* delta_{l-1} = (delta_l W_l) * f'(A_{l-1}) into `other`; its column sums are db_{l-1} (gb). */
static void ff_delta(mom_net *net, size_t l, size_t n, const float *p, const float *cur,
                     float *other, const float *a_prev, float *gb, int add)
{
    size_t si = width(net, l - 1), so = width(net, l);
    mom__gemm(0, 0, n, si, so, 1.0f, cur, so, w_of(net, p, l), si, 0.0f, other, si);
    ff_deriv(net, net->layer_act[l - 1], other, a_prev, gb, n, si, add);
}

/*
 * Backward pass. On entry `cur` holds dLoss/dZ_L (n x s_L) and the bias gradient of layer L is
 * already in out. Writes every weight block and the remaining bias blocks of `out` (overwritten,
 * or added to when `add` is set). `other` is a scratch buffer of n * maxw floats; cur is
 * clobbered.
 * If max_g != NULL it receives the largest |entry| (mom__max_abs_bits) of the blocks written
 * here, each measured right after it is computed, while it is still in cache. If fz != NULL (a
 * fused NAG step that decided to update in place), fz->update() gets each block written here as
 * soon as it is final (with fz->late_weights, a weight block also only after the delta product
 * that reads it).
 */
static void ff_backward(mom_net *net, const ff_ws *w, const float *x, size_t n, const float *p,
                        float *cur, float *other, float *out, uint32_t *max_g, int add,
                        const mom__nag_fuse *fz)
{
    const ff_impl *im = impl_of(net);
    const float beta = add ? 1.0f : 0.0f;
    uint32_t m = 0;
    for (size_t l = im->L; l >= 1; l--) {
        size_t si = width(net, l - 1), so = width(net, l);
        const float *a_prev = l > 1 ? ws_act(im, w, l - 1) : x;
        float *gw = out + net->blocks[2 * (l - 1)].offset;
        float *gb = l > 1 ? out + net->blocks[2 * (l - 2) + 1].offset : NULL;
        /* The point is the vector being updated (fz->late_weights): W_l may change only after
         * the delta product has read it, so that product comes first here, and W_l is updated
         * right after its gradient product, the gradient still in cache. */
        const int delta_first = fz != NULL && fz->late_weights && l > 1;
        if (delta_first)
            ff_delta(net, l, n, p, cur, other, a_prev, gb, add);
        /* dW_l = delta_l^T A_{l-1} */
        mom__gemm(1, 0, so, si, n, 1.0f, cur, so, a_prev, si, beta, gw, si);
        if (max_g) {
            uint32_t b = mom__max_abs_bits(gw, so * si);
            m = b > m ? b : m;
        }
        if (fz != NULL) /* final, and still in cache */
            fz->update(fz->ctx, net->blocks[2 * (l - 1)].offset, so * si);
        if (l == 1)
            break; /* no delta for the input layer */
        if (!delta_first)
            ff_delta(net, l, n, p, cur, other, a_prev, gb, add);
        if (fz != NULL)
            fz->update(fz->ctx, net->blocks[2 * (l - 2) + 1].offset, si);
        if (max_g) {
            uint32_t b = mom__max_abs_bits(gb, si);
            m = b > m ? b : m;
        }
        float *tmp = cur;
        cur = other;
        other = tmp;
    }
    if (max_g)
        *max_g = m;
}

/* ---- operations ------------------------------------------------------------------------------ */

static void ff_destroy(mom_net *net)
{
    ff_impl *im = impl_of(net);
    if (im == NULL)
        return;
    mom__free(&net->base.alloc, im->ws.mem);
    mom__free(&net->base.alloc, im->gws.mem);
    mom__free(&net->base.alloc, im->off);
    mom__free(&net->base.alloc, im->sums);
    mom__free(&net->base.alloc, im->wmax);
    mom__free(&net->base.alloc, im);
    net->impl = NULL;
}

/* Both workspaces are allocated before either is replaced, so that a failure keeps both. */
static int ff_reserve(mom_net *net, size_t n, size_t steps)
{
    (void)steps;
    ff_impl *im = impl_of(net);
    ff_ws lg = {0}, gv = {0};
    int rc = MOM_OK;
    if (n > im->ws.cap)
        rc = ws_new(net, &lg, n);
    if (rc == MOM_OK && n > im->gws.cap && (rc = ws_new(net, &gv, n)) != MOM_OK)
        mom__free(&net->base.alloc, lg.mem);
    if (rc != MOM_OK)
        return rc;
    if (lg.mem != NULL) {
        mom__free(&net->base.alloc, im->ws.mem);
        im->ws = lg;
    }
    if (gv.mem != NULL) {
        mom__free(&net->base.alloc, im->gws.mem);
        im->gws = gv;
        net->gv_ready = 0; /* the activations cached by gv_begin() went with the old workspace */
    }
    return MOM_OK;
}

static size_t ff_workspace_bytes(const mom_net *net)
{
    const ff_impl *im = impl_of(net);
    return im->ws.bytes + im->gws.bytes;
}

/* abs_bits as a magnitude (NaN and inf: +inf). */
static double bits_magnitude(uint32_t b)
{
    if (b >= 0x7f800000u)
        return INFINITY;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Largest |A_l| of unit layer l (1 <= l < L) of a workspace: 1 for the bounded units, measured
 * otherwise. */
static double act_bound(const mom_net *net, const ff_ws *w, size_t l, size_t n)
{
    int act = net->layer_act[l];
    if (act == MOM_ACT_LOGISTIC || act == MOM_ACT_TANH)
        return 1.0;
    return bits_magnitude(mom__max_abs_bits(ws_act(impl_of(net), w, l), n * width(net, l)));
}

/* Largest |f'| of the hidden units. */
static double deriv_bound(int act) { return act == MOM_ACT_LOGISTIC ? 0.25 : 1.0; }

/*
 * For a fused NAG step (mom__nag_fuse.decide): after the forward pass of ff_loss_grad() (output
 * deltas D_L in d0, the point's largest weight of each layer in im->wmax), a bound on every
 * entry of the gradient the backward pass will compute, before it is computed. With d_l the
 * largest |delta| of layer l and a_l the largest |activation| (a_0: the inputs):
 *     |dW_l| <= n d_l a_{l-1},   |db_l| <= n d_l,
 *     d_{l-1} <= d_l * s_l * max|W_l| * max|f'_{l-1}|
 * (each delta of layer l-1 sums s_l products). A float sum of k products, and the multiply by
 * f' after it, exceed the exact bound by less than a relative (k + 2) 2^-24, whatever the
 * order of summation, as long as k 2^-24 is small; round_up() allows twice that, and gives up
 * (+inf: no fused update) past 2^22 terms, where that first-order estimate would no longer be
 * safe. Flushing tiny values to zero only lowers magnitudes. A non-finite input, weight or delta
 * makes the bound +inf or NaN.
 */
static double round_up(size_t k)
{
    return k > ((size_t)1 << 22) ? INFINITY : 1.0 + ((double)k + 4.0) * 0x1p-23;
}

static double ff_grad_bound(const mom_net *net, const ff_ws *w, const float *x, size_t n)
{
    const ff_impl *im = impl_of(net);
    const size_t L = im->L;
    double d = bits_magnitude(mom__max_abs_bits(ws_d0(im, w), n * width(net, L)));
    double g = 0.0;
    for (size_t l = L; l >= 1; l--) {
        double a = l > 1 ? act_bound(net, w, l - 1, n)
                         : bits_magnitude(mom__max_abs_bits(x, n * width(net, 0)));
        double gl = (double)n * d * (a > 1.0 ? a : 1.0) * round_up(n);
        g = gl > g || isnan(gl) ? gl : g;
        if (l == 1)
            break;
        d *= (double)width(net, l) * bits_magnitude(im->wmax[l - 1]) *
             deriv_bound(net->layer_act[l - 1]) * round_up(width(net, l));
    }
    return g;
}

static int ff_loss_grad(mom_net *net, const mom_batch *b, const float *p, double *loss,
                        float *grad)
{
    ff_impl *im = impl_of(net);
    size_t n = b->n, L = im->L;
    int rc = ws_grow(net, &im->ws, n);
    if (rc != MOM_OK)
        return rc;
    const ff_ws *w = &im->ws;
    float *dbias = grad ? grad + net->blocks[2 * (L - 1) + 1].offset : NULL;
    double total = ff_forward(net, w, b->inputs, n, p, L, b->targets, dbias);
    *loss = total / (double)n;
    const mom__nag_fuse *fz = net->nag_fuse;
    if (fz != NULL && grad != NULL) {
        /* a fused NAG step: update in place only if the bound rules out overflow */
        const int in_place = fz->decide(fz->ctx, *loss, ff_grad_bound(net, w, b->inputs, n));
        if (in_place) /* the output biases' gradient is final since the forward pass */
            fz->update(fz->ctx, net->blocks[2 * (L - 1) + 1].offset, width(net, L));
        ff_backward(net, w, b->inputs, n, p, ws_d0(im, w), ws_d1(im, w), grad, NULL, 0,
                    in_place ? fz : NULL);
    } else if (grad != NULL && net->want_grad_max) {
        /* for the optimizer's overflow guard (mom__net_loss_grad_max()) */
        uint32_t m;
        ff_backward(net, w, b->inputs, n, p, ws_d0(im, w), ws_d1(im, w), grad, &m, 0, NULL);
        uint32_t mb = mom__max_abs_bits(dbias, width(net, L));
        net->grad_max_bits = mb > m ? mb : m;
    } else if (grad != NULL) {
        ff_backward(net, w, b->inputs, n, p, ws_d0(im, w), ws_d1(im, w), grad, NULL, 0, NULL);
    }
    return MOM_OK;
}

/*
 * Empirical Fisher diagonal. With per-case deltas D_l (n x s_l, not divided by n), the squared
 * per-case gradients summed over cases are (D_l o D_l)^T (A_{l-1} o A_{l-1}) for W_l and the column
 * sums of D_l o D_l for b_l; one gemm per layer does the weights.
 */
static int ff_fisher(mom_net *net, const mom_batch *b, const float *p, float *out)
{
    ff_impl *im = impl_of(net);
    size_t n = b->n, L = im->L;
    int rc = ws_grow(net, &im->ws, n);
    if (rc != MOM_OK)
        return rc;
    const ff_ws *w = &im->ws;
    const float *x = b->inputs;
    (void)ff_forward(net, w, x, n, p, L, NULL, NULL);
    float *cur = ws_d0(im, w), *other = ws_d1(im, w);
    float inv_n = 1.0f / (float)n;
    mom__out_delta_fl(cur, ws_act(im, w, L), b->targets, NULL, 1.0f, n, width(net, L),
                      net->flush_below);
    for (size_t l = L; l >= 1; l--) {
        size_t si = width(net, l - 1), so = width(net, l);
        float *a_prev = l > 1 ? ws_act(im, w, l - 1) : NULL;
        if (l > 1) {
            /* propagate first: the next delta needs the unsquared delta and activations */
            mom__gemm(0, 0, n, si, so, 1.0f, cur, so, w_of(net, p, l), si, 0.0f, other, si);
            mom__act_deriv_mul_fl(net->layer_act[l - 1], other, a_prev, n * si, net->flush_below);
        }
        mom__square(cur, cur, n * so);
        float *gb = out + net->blocks[2 * (l - 1) + 1].offset;
        mom__col_sums(gb, cur, n, so);
        mom__scal(so, inv_n, gb);
        const float *a_sq;
        if (l > 1) {
            mom__square(a_prev, a_prev, n * si); /* A_{l-1} is not needed any more */
            a_sq = a_prev;
        } else {
            /* the input belongs to the caller: square it into the free scratch buffer */
            mom__square(other, x, n * si);
            a_sq = other;
        }
        mom__gemm(1, 0, so, si, n, inv_n, cur, so, a_sq, si, 0.0f,
                  out + net->blocks[2 * (l - 1)].offset, si);
        float *tmp = cur;
        cur = other;
        other = tmp;
    }
    return MOM_OK;
}

static int ff_gv_begin(mom_net *net, const mom_batch *b, const float *p)
{
    ff_impl *im = impl_of(net);
    im->gv_x = NULL;
    im->gv_p = NULL;
    im->gv_n = 0;
    int rc = ws_grow(net, &im->gws, b->n);
    if (rc != MOM_OK)
        return rc;
    (void)ff_forward(net, &im->gws, b->inputs, b->n, p, im->L, NULL, NULL);
    im->gv_x = b->inputs;
    im->gv_p = p;
    im->gv_n = b->n;
    return MOM_OK;
}

/*
 * Gauss-Newton product. Forward R-pass with the cached activations:
 *     R Z_l = A_{l-1} V_l^T + R A_{l-1} W_l^T + 1 Rb_l^T,   R A_l = f'(Z_l) o R Z_l   (R A_0 = 0),
 * then the output Hessian times R Z_L (divided by n), then the gradient's backward pass.
 */
static int ff_gv(mom_net *net, const float *v, double struct_damping, float *out,
                 const mom__gv_acc *acc)
{
    (void)struct_damping;
    ff_impl *im = impl_of(net);
    const ff_ws *w = &im->gws;
    size_t n = im->gv_n, L = im->L;
    const float *x = im->gv_x, *p = im->gv_p;
    float *cur = ws_d0(im, w), *other = ws_d1(im, w);
    const float *prev = x;
    for (size_t l = 1; l <= L; l++) {
        size_t si = width(net, l - 1), so = width(net, l);
        mom__gemm(0, 1, n, so, si, 1.0f, prev, si, w_of(net, v, l), si, 0.0f, other, so);
        if (l > 1)
            mom__gemm(0, 1, n, so, si, 1.0f, cur, si, w_of(net, p, l), si, 1.0f, other, so);
        if (l < L) {
            mom__bias_deriv_mul_fl(net->layer_act[l], other, b_of(net, v, l), ws_act(im, w, l), n,
                                   so, net->flush_below);
        } else {
            mom__add_bias_rows(other, b_of(net, v, l), n, so);
            float scale = 1.0f / (float)n;
            if (acc != NULL) {
                /* v^T G v = (R z)^T H (R z) / n while R z is at hand; then out += alpha G v:
                 * scaling the output-layer term by alpha scales every block */
                double q = mom__out_quad(net->output, ws_act(im, w, L), other, 1.0 / (double)n,
                                         n, so);
                float alpha = acc->scale(q, acc->ctx);
                if (alpha == 0.0f)
                    return MOM_OK;
                scale = (float)((double)alpha / (double)n);
            }
            mom__out_hess_fl(net->output, other, ws_act(im, w, L), other, NULL, scale, n, so,
                             net->flush_below);
        }
        float *tmp = cur;
        cur = other;
        other = tmp;
        prev = ws_act(im, w, l);
    }
    float *gb = out + net->blocks[2 * (L - 1) + 1].offset;
    if (acc != NULL)
        mom__col_sums_add(gb, cur, n, width(net, L));
    else
        mom__col_sums(gb, cur, n, width(net, L));
    ff_backward(net, w, x, n, p, cur, other, out, NULL, acc != NULL, NULL);
    return MOM_OK;
}

static int ff_forward_op(mom_net *net, const mom_batch *b, const float *p, size_t layer,
                         float *out)
{
    ff_impl *im = impl_of(net);
    size_t n = b->n, L = im->L;
    if (layer == 0) {
        mom__copy(n * width(net, 0), b->inputs, out);
        return MOM_OK;
    }
    int rc = ws_grow(net, &im->ws, n);
    if (rc != MOM_OK)
        return rc;
    const ff_ws *w = &im->ws;
    if (layer == MOM__LAYER_Z) {
        (void)ff_forward(net, w, b->inputs, n, p, L, NULL, NULL);
        mom__copy(n * width(net, L), ws_d0(im, w), out);
    } else {
        (void)ff_forward(net, w, b->inputs, n, p, layer, NULL, NULL);
        mom__copy(n * width(net, layer), ws_act(im, w, layer), out);
    }
    return MOM_OK;
}

static int ff_metric(mom_net *net, const mom_batch *b, const float *p, int metric, double param,
                     double *value)
{
    ff_impl *im = impl_of(net);
    size_t n = b->n, L = im->L, k = width(net, L);
    int rc = ws_grow(net, &im->ws, n);
    if (rc != MOM_OK)
        return rc;
    const ff_ws *w = &im->ws;
    double total = ff_forward(net, w, b->inputs, n, p, L, b->targets, NULL);
    const float *y = ws_act(im, w, L), *t = b->targets;
    switch (metric) {
    case MOM_METRIC_LOSS:
        *value = total / (double)n;
        return MOM_OK;
    case MOM_METRIC_SQUARED_ERROR:
        *value = mom__out_sqerr(y, t, NULL, n, k) / (double)n;
        return MOM_OK;
    case MOM_METRIC_THRESHOLD_ERROR: {
        double thr = param > 0.0 ? param : 0.04;
        size_t wrong = 0;
        for (size_t r = 0; r < n; r++) {
            int bad = 0;
            for (size_t j = 0; j < k; j++)
                bad |= !(fabs((double)y[r * k + j] - (double)t[r * k + j]) <= thr); /* NaN: bad */
            wrong += (size_t)bad;
        }
        *value = (double)wrong / (double)n;
        return MOM_OK;
    }
    case MOM_METRIC_CLASS_ERROR:
    case MOM_METRIC_WRONG_SYMBOLS: {
        size_t wrong = 0;
        for (size_t r = 0; r < n; r++)
            wrong += (size_t)mom__class_wrong(y + r * k, t + r * k, k);
        *value = (double)wrong / (double)n;
        return MOM_OK;
    }
    default:
        return mom__fail(&net->base, MOM_E_INVALID, "unknown metric %d", metric);
    }
}

static const mom__net_ops ff_ops = {
    ff_destroy, ff_reserve, ff_workspace_bytes, ff_loss_grad, ff_fisher,
    ff_gv_begin, ff_gv, ff_forward_op, ff_metric,
};

/* ---- creation -------------------------------------------------------------------------------- */

/* Validate the arguments of mom_net_create_ff(); on success *n_params receives the parameter
 * count. The detail message goes to `b` (constructors have no handle to report it on, but the
 * tests read it). Declared here because only ffnet.c and the tests use it. */
int mom__ff_check_args(mom__base *b, size_t *n_params, size_t n_layers, const size_t *sizes,
                       const int *hidden_act, int output);

int mom__ff_check_args(mom__base *b, size_t *n_params, size_t n_layers, const size_t *sizes,
                       const int *hidden_act, int output)
{
    if (n_layers == 0)
        return mom__fail(b, MOM_E_INVALID, "n_layers must be at least 1");
    if (n_layers > SIZE_MAX / 4 / sizeof(size_t))
        return mom__fail(b, MOM_E_INVALID, "n_layers = %zu is too large", n_layers);
    if (sizes == NULL)
        return mom__fail(b, MOM_E_INVALID, "sizes is NULL");
    if (n_layers > 1 && hidden_act == NULL)
        return mom__fail(b, MOM_E_INVALID, "hidden_act is NULL but the net has %zu hidden layers",
                         n_layers - 1);
    if (output != MOM_OUT_LINEAR_SQUARED && output != MOM_OUT_LOGISTIC_XENT &&
        output != MOM_OUT_SOFTMAX_XENT)
        return mom__fail(b, MOM_E_INVALID, "output %d is not a mom_output", output);
    size_t max_dim = mom__blas_max_dim();
    for (size_t l = 0; l <= n_layers; l++) {
        if (sizes[l] == 0)
            return mom__fail(b, MOM_E_INVALID, "sizes[%zu] is 0", l);
        if (sizes[l] > max_dim)
            return mom__fail(b, MOM_E_INVALID, "sizes[%zu] = %zu exceeds the BLAS limit %zu", l,
                             sizes[l], max_dim);
    }
    for (size_t l = 0; l + 1 < n_layers; l++) {
        int a = hidden_act[l];
        if (a != MOM_ACT_LINEAR && a != MOM_ACT_LOGISTIC && a != MOM_ACT_TANH &&
            a != MOM_ACT_RELU)
            return mom__fail(b, MOM_E_INVALID,
                             "hidden_act[%zu] = %d is not a hidden activation (0..3)", l, a);
    }
    if (output == MOM_OUT_SOFTMAX_XENT && sizes[n_layers] < 2)
        return mom__fail(b, MOM_E_INVALID,
                         "a softmax output needs at least 2 units (sizes[%zu] = %zu)", n_layers,
                         sizes[n_layers]);
    size_t total = 0;
    for (size_t l = 0; l < n_layers; l++) {
        size_t wn;
        if (!mom__mul_size(&wn, sizes[l + 1], sizes[l]) || !mom__add_size(&total, total, wn) ||
            !mom__add_size(&total, total, sizes[l + 1]))
            return mom__fail(b, MOM_E_INVALID, "the parameter count overflows size_t");
    }
    size_t bytes;
    if (!mom__mul_size(&bytes, total, sizeof(float)))
        return mom__fail(b, MOM_E_INVALID, "the parameter vector does not fit in memory");
    *n_params = total;
    return MOM_OK;
}

int mom_net_create_ff(mom_net **out, size_t n_layers, const size_t *sizes, const int *hidden_act,
                      int output, const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    mom_allocator a;
    if (mom__alloc_init(&a, alloc) != MOM_OK)
        return MOM_E_INVALID;
    mom__base scratch;
    size_t n_params;
    int rc = mom__ff_check_args(&scratch, &n_params, n_layers, sizes, hidden_act, output);
    if (rc != MOM_OK)
        return rc;

    mom_net *net;
    rc = mom__net_new(&net, &a, MOM_NET_FEEDFORWARD, output, n_params, 2 * n_layers, n_layers + 1);
    if (rc != MOM_OK)
        return rc;
    ff_impl *im = mom__calloc(&a, 1, sizeof *im);
    if (im == NULL) {
        mom_net_destroy(net);
        return MOM_E_NOMEM;
    }
    net->impl = im;
    net->ops = &ff_ops;
    im->L = n_layers;
    im->off = mom__calloc(&a, n_layers + 1, sizeof *im->off);
    im->wmax = mom__calloc(&a, n_layers, sizeof *im->wmax);
    if (im->off == NULL || im->wmax == NULL) {
        mom_net_destroy(net);
        return MOM_E_NOMEM;
    }

    net->n_in = sizes[0];
    net->n_out = sizes[n_layers];
    size_t offset = 0, act_off = 0, maxw = sizes[0];
    for (size_t l = 0; l < n_layers; l++) {
        size_t so = sizes[l + 1], si = sizes[l];
        net->blocks[2 * l] = (mom__block){MOM_BLOCK_WEIGHTS, l, so, si, offset};
        offset += so * si;
        net->blocks[2 * l + 1] = (mom__block){MOM_BLOCK_BIASES, l, so, 1, offset};
        offset += so;
        im->off[l] = act_off;
        act_off += so; /* cannot overflow: smaller than the parameter count */
        if (so > maxw)
            maxw = so;
    }
    im->off[n_layers] = act_off;
    im->maxw = maxw;
    size_t n_sums;
    if (!mom__mul_size(&n_sums, maxw, MOM__TEAM_MAX_PARTS) ||
        (im->sums = mom__calloc(&a, n_sums, sizeof *im->sums)) == NULL) {
        mom_net_destroy(net);
        return MOM_E_NOMEM;
    }
    for (size_t l = 0; l <= n_layers; l++)
        net->layer_size[l] = sizes[l];
    net->layer_act[0] = MOM_ACT_LINEAR;
    for (size_t l = 1; l < n_layers; l++)
        net->layer_act[l] = hidden_act[l - 1];
    net->layer_act[n_layers] = output == MOM_OUT_LOGISTIC_XENT  ? MOM_ACT_LOGISTIC
                               : output == MOM_OUT_SOFTMAX_XENT ? MOM_ACT_SOFTMAX
                                                                : MOM_ACT_LINEAR;
    *out = net;
    return MOM_OK;
}
