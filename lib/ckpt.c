/* Checkpoints (ckpt.h): a portable image of the training state, its checks, and the file, buffer
 * and stream front ends. The format is specified in docs/file-format.md; the section layouts
 * below follow it field by field.
 *
 * Image. Everything is encoded explicitly in little-endian byte order, one field at a time, so the
 * bytes do not depend on the host. A 16-byte preamble (magic, format version, its own CRC) is
 * followed by a 16-byte header (file size, section count, a CRC of the header and the section
 * table), the section table, and the sections, contiguous and in table order.
 *
 * Two phases. mom_ckpt_capture() serializes into the handle's buffer (measuring first, so that a
 * failure leaves the previous image intact); the save functions only copy that buffer out.
 * Loading reads the whole input into a new buffer, checks all of it (parse_image(): every CRC,
 * every size against the bytes that are actually there before anything is allocated from it,
 * every value against the rules of the constructor that will receive it) and only then replaces
 * the handle's image. Restoring uses only checked data, so its failures are limited to a mismatch
 * with the caller's handles and to allocation, and all of those are detected before any handle
 * is modified, except in apply_options(), which sets the optimizer's options one by one through
 * mom_optim_set() and puts the old values back if one fails (the optimizer's detail message then
 * says what failed).
 *
 * User data. The caller's bytes (mom_ckpt_set_user_data()) are kept in the handle apart from the
 * image, and copied into section USER by every capture; mom_ckpt_user_data() points into the
 * image, so it always describes the image the handle holds, whatever has been set since.
 *
 * Cancellation. The file functions disable the calling thread's cancelability around their work
 * (cancel_block()), so that no cancellation point in them (open, read, write, fsync, close,
 * rename) can abandon a temporary file or a descriptor. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#endif
#if defined(MOM_HAVE_PTHREAD)
#include <pthread.h>
#endif

#include "blas.h"
#include "crc32c.h"
#include "net_internal.h"
#include "hf_internal.h"
#include "optim_internal.h"
#include "sched_internal.h"

/* ---- format constants (docs/file-format.md) ---------------------------------------------------- */

static const unsigned char ckpt_magic[8] = {0x89, 'M', 'O', 'M', 0x0D, 0x0A, 0x1A, 0x0A};

#define PREAMBLE_SIZE 16u  /* magic, major, minor, CRC of bytes 0..11: fixed for every version */
#define HEADER_SIZE 32u    /* preamble, file size, section count, header CRC */
#define ENTRY_SIZE 24u     /* tag, offset, size, CRC */
#define MAX_SECTIONS 1024u /* more is refused as implausible */
#define MAX_WRAP_DEPTH 64  /* final-phase wrappers around one schedule */
#define OPTION_SIZE 12u    /* u32 key, f64 value */
#define RNG_SIZE (8u * MOM_RNG_STATE_WORDS)
#define STREAM_CHUNK ((size_t)1 << 20)   /* pieces handed to a write callback */
#define STREAM_START ((size_t)64 << 10)  /* first buffer of a stream read */

#define TAG(a, b, c, d)                                                                        \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

enum { SEC_NETW, SEC_OPTM, SEC_SCHD, SEC_HFST, SEC_RNGS, SEC_USER, SEC_COUNT };
static const uint32_t sec_tag[SEC_COUNT] = {TAG('N', 'E', 'T', 'W'), TAG('O', 'P', 'T', 'M'),
                                            TAG('S', 'C', 'H', 'D'), TAG('H', 'F', 'S', 'T'),
                                            TAG('R', 'N', 'G', 'S'), TAG('U', 'S', 'E', 'R')};
static const char *const sec_where[SEC_COUNT] = {"section NETW", "section OPTM", "section SCHD",
                                                 "section HFST", "section RNGS", "section USER"};
/* The format minor version that introduced each section: in a file of an older minor version the
 * tag is unknown, hence damage (as any unknown tag in a file of this library's version or older). */
static const unsigned sec_since[SEC_COUNT] = {0, 0, 0, 0, 0, 2};

/* Schedule roles in section SCHD. */
enum { ROLE_LR = 1, ROLE_MOMENTUM = 2, ROLE_MAX = 2 };
static const char *const role_name[ROLE_MAX + 1] = {"?", "learning-rate", "momentum"};

/* ---- the handle ------------------------------------------------------------------------------- */

/* What parse_image() learned about a checked image: where the sections are and a summary. */
typedef struct ck_index {
    unsigned minor;               /* format minor version of the image */
    int present[SEC_COUNT];
    size_t off[SEC_COUNT];        /* offset of each present section */
    size_t size[SEC_COUNT];
    int net_kind;                 /* 0 without NETW */
    int optim_kind;               /* 0 without OPTM */
    size_t n_params;              /* of NETW, else of OPTM */
    size_t n_rngs;
    size_t sched_at[ROLE_MAX + 1]; /* offset of the first node of each role's schedule */
    size_t user_at, user_size;     /* the user data's bytes in USER (0, 0 without USER) */
} ck_index;

struct mom_ckpt {
    mom__base base;
    unsigned char *img; /* the image (size bytes) in a buffer of cap bytes */
    size_t size;        /* 0: no image */
    size_t cap;
    ck_index ix;
    unsigned char *user; /* the bytes set for the next captures, user_size of user_cap */
    size_t user_size, user_cap;
};

static const char null_ckpt_msg[] = "checkpoint handle is NULL";

#define ENTER(ck)                                                                              \
    do {                                                                                       \
        if ((ck) == NULL)                                                                      \
            return MOM_E_INVALID;                                                              \
        mom__clear(&(ck)->base);                                                               \
    } while (0)

/* ---- little-endian encoding -------------------------------------------------------------------- */

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static double get_f64(const unsigned char *p)
{
    uint64_t u = get_u64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Decode n floats (IEEE binary32, little-endian) into x. */
static void get_f32s(float *x, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = get_u32(p + 4 * i);
        memcpy(&x[i], &u, sizeof u);
    }
}

/* Writer: appends fields at pos; with p == NULL it only measures. */
typedef struct wr {
    unsigned char *p;
    size_t pos;
    int overflow; /* the size does not fit in size_t */
} wr;

static unsigned char *w_take(wr *w, size_t n)
{
    if (w->overflow || n > SIZE_MAX - w->pos) {
        w->overflow = 1;
        return NULL;
    }
    unsigned char *q = w->p ? w->p + w->pos : NULL;
    w->pos += n;
    return q;
}

static void w_u32(wr *w, uint32_t v)
{
    unsigned char *q = w_take(w, 4);
    if (q)
        put_u32(q, v);
}

static void w_u64(wr *w, uint64_t v)
{
    unsigned char *q = w_take(w, 8);
    if (q)
        put_u64(q, v);
}

static void w_f64(wr *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    w_u64(w, u);
}

static void w_f32s(wr *w, const float *x, size_t n)
{
    size_t bytes;
    if (!mom__mul_size(&bytes, n, 4)) {
        w->overflow = 1;
        return;
    }
    unsigned char *q = w_take(w, bytes);
    if (q == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        put_u32(q + 4 * i, u);
    }
}

/* ---- messages ---------------------------------------------------------------------------------- */

/* "<where> at offset <off>: <detail>" as the detail message; returns status. */
static int fail_at(mom__base *b, int status, const char *where, size_t off, const char *fmt, ...)
    MOM_PRINTF(5, 6);
static int fail_at(mom__base *b, int status, const char *where, size_t off, const char *fmt, ...)
{
    char detail[MOM_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return mom__fail(b, status, "%s at offset %zu: %s", where, off, detail);
}

static const char *net_kind_name(uint64_t k)
{
    return k == MOM_NET_FEEDFORWARD ? "feedforward" : k == MOM_NET_RECURRENT ? "recurrent" : "?";
}

static const char *optim_kind_name(uint64_t k)
{
    switch (k) {
    case MOM_OPTIM_SGD: return "SGD";
    case MOM_OPTIM_CM: return "CM";
    case MOM_OPTIM_NAG: return "NAG";
    case MOM_OPTIM_HF: return "HF";
    default: return "?";
    }
}

static const char *act_name(uint64_t a)
{
    static const char *const names[] = {"linear", "logistic", "tanh", "relu", "softmax"};
    return a < 5 ? names[a] : "?";
}

static const char *output_name(uint64_t o)
{
    static const char *const names[] = {"linear/squared error", "logistic/cross-entropy",
                                        "softmax/cross-entropy"};
    return o < 3 ? names[o] : "?";
}

/* ---- reader over a checked or unchecked image ----------------------------------------------- */

typedef struct rd {
    const unsigned char *b; /* the image */
    size_t pos, end;        /* absolute offsets: next byte, end of the section */
    const char *where;      /* "section NETW" */
    mom__base *err;
    int newer;              /* the image has a newer minor version than this library */
    unsigned minor;         /* the image's minor version (what it may hold) */
} rd;

static int rd_need(rd *r, size_t n, const char *what)
{
    if (r->end - r->pos < n)
        return fail_at(r->err, MOM_E_FORMAT, r->where, r->pos,
                       "%s is cut off (%zu bytes needed, %zu left in the section)", what, n,
                       r->end - r->pos);
    return MOM_OK;
}

static int rd_u32(rd *r, uint32_t *v, const char *what)
{
    int rc = rd_need(r, 4, what);
    if (rc == MOM_OK) {
        *v = get_u32(r->b + r->pos);
        r->pos += 4;
    }
    return rc;
}

static int rd_u64(rd *r, uint64_t *v, const char *what)
{
    int rc = rd_need(r, 8, what);
    if (rc == MOM_OK) {
        *v = get_u64(r->b + r->pos);
        r->pos += 8;
    }
    return rc;
}

static int rd_f64(rd *r, double *v, const char *what)
{
    int rc = rd_need(r, 8, what);
    if (rc == MOM_OK) {
        *v = get_f64(r->b + r->pos);
        r->pos += 8;
    }
    return rc;
}

/* A count of `unit`-byte records that must fit in the rest of the section. */
static int rd_count(rd *r, uint64_t *v, size_t unit, int wide, const char *what)
{
    size_t at = r->pos;
    int rc;
    if (wide) {
        rc = rd_u64(r, v, what);
    } else {
        uint32_t u = 0;
        rc = rd_u32(r, &u, what);
        *v = u;
    }
    if (rc != MOM_OK)
        return rc;
    if (*v > (r->end - r->pos) / unit)
        return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                       "%s = %llu does not fit in the %zu bytes left in the section", what,
                       (unsigned long long)*v, r->end - r->pos);
    return MOM_OK;
}

/* The section must be used up, except in an image of a newer minor version, which may append
 * fields that this library does not know. */
static int rd_finish(rd *r)
{
    if (!r->newer && r->pos != r->end)
        return fail_at(r->err, MOM_E_FORMAT, r->where, r->pos,
                       "%zu unexpected bytes at the end of the section", r->end - r->pos);
    return MOM_OK;
}

/* A value this library does not know: damage in an image of its own version or older, a newer
 * feature in an image of a newer minor version. */
static int unknown_value(rd *r, size_t at, const char *what, uint64_t v)
{
    if (r->newer)
        return fail_at(r->err, MOM_E_UNSUPPORTED, r->where, at,
                       "%s %llu is unknown to this library (the file has a newer format minor "
                       "version than %d.%d)",
                       what, (unsigned long long)v, MOM_CKPT_FORMAT_MAJOR, MOM_CKPT_FORMAT_MINOR);
    return fail_at(r->err, MOM_E_FORMAT, r->where, at, "%s %llu is not valid", what,
                   (unsigned long long)v);
}

/* ==== HF (MOM_OPTIM_HF) ===========================================================================
 * The Hessian-free optimizer reuses the generic parts: its settings (weight decay, lambda, CG
 * limits, switches) are options of section OPTM, its warm start is the velocity, its fixed step
 * size and CG decay are the learning-rate and momentum schedules of SCHD. Section HFST holds the
 * rest: whether a warm start is held (it changes the next CG run) and the report of the last step
 * (the read-only options 200..209), u32 have_warm, u32 count, count x {u32 key, f64 value}. */

/* Option keys saved in OPTM for each kind, in this order. */
static const int first_order_keys[] = {MOM_OPTIM_WEIGHT_DECAY, MOM_OPTIM_CLIP_NORM,
                                        MOM_OPTIM_FLUSH_SUBNORMALS};
static const int hf_keys[] = {MOM_OPTIM_WEIGHT_DECAY,     MOM_OPTIM_HF_LAMBDA,
                              MOM_OPTIM_HF_MAX_CG,        MOM_OPTIM_HF_MIN_CG,
                              MOM_OPTIM_HF_FIXED_CG,      MOM_OPTIM_HF_PRECOND,
                              MOM_OPTIM_HF_PRECOND_EXP,   MOM_OPTIM_HF_LINE_SEARCH,
                              MOM_OPTIM_HF_CG_BACKTRACK,  MOM_OPTIM_HF_ADAPT_LAMBDA,
                              MOM_OPTIM_HF_STRUCT_DAMPING, MOM_OPTIM_FLUSH_SUBNORMALS};
#define MAX_KEYS 16 /* at least the longest list above */

static int kind_keys(int kind, const int **keys, size_t *n)
{
    switch (kind) {
    case MOM_OPTIM_SGD:
    case MOM_OPTIM_CM:
    case MOM_OPTIM_NAG:
        *keys = first_order_keys;
        *n = sizeof first_order_keys / sizeof first_order_keys[0];
        return 1;
    case MOM_OPTIM_HF:
        *keys = hf_keys;
        *n = sizeof hf_keys / sizeof hf_keys[0];
        return 1;
    default:
        return 0;
    }
}

/* Does the optimizer need section HFST? */
static int hf_has_state(int kind) { return kind == MOM_OPTIM_HF; }

#define HF_REPORT_FIRST MOM_OPTIM_HF_LAST_CG_ITERS
#define HF_REPORT_LAST MOM_OPTIM_HF_LAST_LOSS_EVALS

static double *hf_report_slot(mom__hf_report *r, int key)
{
    switch (key) {
    case MOM_OPTIM_HF_LAST_CG_ITERS: return &r->cg_iters;
    case MOM_OPTIM_HF_LAST_CG_CHOSEN: return &r->cg_chosen;
    case MOM_OPTIM_HF_LAST_RHO: return &r->rho;
    case MOM_OPTIM_HF_LAST_LAMBDA: return &r->lambda;
    case MOM_OPTIM_HF_LAST_ALPHA: return &r->alpha;
    case MOM_OPTIM_HF_LAST_LOSS_BEFORE: return &r->loss_before;
    case MOM_OPTIM_HF_LAST_LOSS_AFTER: return &r->loss_after;
    case MOM_OPTIM_HF_LAST_LS_TRIES: return &r->ls_tries;
    case MOM_OPTIM_HF_LAST_GV_PRODUCTS: return &r->products;
    case MOM_OPTIM_HF_LAST_LOSS_EVALS: return &r->loss_evals;
    default: return NULL;
    }
}

/* Serialize HFST (only called when hf_has_state()). */
static void hf_emit(wr *w, const mom_optim *opt)
{
    w_u32(w, opt->hf->have_warm ? 1u : 0u);
    w_u32(w, HF_REPORT_LAST - HF_REPORT_FIRST + 1);
    for (int key = HF_REPORT_FIRST; key <= HF_REPORT_LAST; key++) {
        mom__hf_report r = opt->hf->last;
        w_u32(w, (uint32_t)key);
        w_f64(w, *hf_report_slot(&r, key));
    }
}

/* Check HFST. */
static int hf_parse(rd *r, int kind)
{
    (void)kind;
    size_t at = r->pos;
    uint32_t have_warm;
    uint64_t count;
    int rc;
    if ((rc = rd_u32(r, &have_warm, "the warm-start flag")) != MOM_OK)
        return rc;
    if (have_warm > 1)
        return fail_at(r->err, MOM_E_FORMAT, r->where, at, "the warm-start flag is %u, not 0 or 1",
                       have_warm);
    if ((rc = rd_count(r, &count, OPTION_SIZE, 0, "the number of report values")) != MOM_OK)
        return rc;
    const size_t first = r->pos;
    for (uint64_t i = 0; i < count; i++) {
        uint32_t key;
        double v;
        at = r->pos;
        if ((rc = rd_u32(r, &key, "a report key")) != MOM_OK ||
            (rc = rd_f64(r, &v, "a report value")) != MOM_OK)
            return rc;
        if (key < HF_REPORT_FIRST || key > HF_REPORT_LAST) {
            if (r->newer)
                continue; /* a newer report value: information only */
            return unknown_value(r, at, "HF report key", key);
        }
        for (uint64_t j = 0; j < i; j++)
            if (get_u32(r->b + first + OPTION_SIZE * (size_t)j) == key)
                return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                               "report value %u appears twice", key);
    }
    return rd_finish(r);
}

/* Restore the HF state into opt (infallible; the section has been checked). Report values the
 * file does not have are NaN ("not reported"). */
static void hf_commit(mom_optim *opt, const unsigned char *img, const ck_index *ix)
{
    const unsigned char *b = img + ix->off[SEC_HFST];
    mom__hf *h = opt->hf;
    mom__hf_report rep;
    for (int key = HF_REPORT_FIRST; key <= HF_REPORT_LAST; key++)
        *hf_report_slot(&rep, key) = NAN;
    uint32_t count = get_u32(b + 4);
    for (uint32_t i = 0; i < count; i++) {
        double *slot = hf_report_slot(&rep, (int)get_u32(b + 8 + OPTION_SIZE * (size_t)i));
        if (slot != NULL)
            *slot = get_f64(b + 12 + OPTION_SIZE * (size_t)i);
    }
    h->last = rep;
    h->have_warm = get_u32(b) != 0;
}
/* ==== end of HF ================================================================================= */

/* ---- capture: serialization of each section ------------------------------------------------- */

static uint32_t net_flags(const mom_net *net)
{
    if (net->kind == MOM_NET_RECURRENT && net->n_blocks > 0 &&
        net->blocks[net->n_blocks - 1].kind == MOM_BLOCK_H0)
        return MOM_RNN_LEARN_H0;
    return 0;
}

/* NETW: u32 kind, u32 output, u32 flags, u32 options (bit 0 MOM_NET_CHECK_FINITE on, bit 1
 * MOM_NET_FLUSH_SUBNORMALS off: format 1.1), u64 n_sizes, u64 sizes[n_sizes],
 * u64 n_acts, u32 acts[n_acts], u64 n_params, f32 params[n_params]. */
static void emit_net(wr *w, const mom_net *net)
{
    w_u32(w, (uint32_t)net->kind);
    w_u32(w, (uint32_t)net->output);
    w_u32(w, net_flags(net));
    w_u32(w, (net->check_finite ? 1u : 0u) | (net->flush ? 0u : 2u));
    w_u64(w, net->n_layers);
    for (size_t i = 0; i < net->n_layers; i++)
        w_u64(w, net->layer_size[i]);
    w_u64(w, net->n_layers - 2);
    for (size_t i = 1; i + 1 < net->n_layers; i++)
        w_u32(w, (uint32_t)net->layer_act[i]);
    w_u64(w, net->n_params);
    w_f32s(w, net->params, net->n_params);
}

/* OPTM: u32 kind, u32 n_options, u64 n_params, u64 t, n_options x {u32 key, f64 value},
 * f32 velocity[n_params]. */
static void emit_optim(wr *w, const mom_optim *opt)
{
    const int *keys = NULL;
    size_t nk = 0;
    kind_keys(opt->kind, &keys, &nk);
    /* Flushing subnormals is on by default; the key is written only when it is off (format
     * 1.1), so that files of the default setting stay readable by 1.0 readers. */
    const int skip_flush = opt->flush;
    /* NAG's look-ahead form (format 1.3): key MOM_OPTIM_LOOKAHEAD with the momentum the saved
     * point holds, written only in that form */
    const int la = opt->kind == MOM_OPTIM_NAG && opt->la;
    w_u32(w, (uint32_t)opt->kind);
    w_u32(w, (uint32_t)(nk - (skip_flush ? 1 : 0) + (la ? 1 : 0)));
    w_u64(w, opt->n);
    w_u64(w, opt->t);
    for (size_t i = 0; i < nk; i++) {
        double v = 0.0;
        if (keys[i] == MOM_OPTIM_FLUSH_SUBNORMALS && skip_flush)
            continue;
        if (mom_optim_get(&v, opt, keys[i]) != MOM_OK)
            v = NAN; /* cannot happen for the keys of the kind; caught by the final check */
        w_u32(w, (uint32_t)keys[i]);
        w_f64(w, v);
    }
    if (la) {
        w_u32(w, (uint32_t)MOM_OPTIM_LOOKAHEAD);
        w_f64(w, (double)opt->la_mu);
    }
    w_f32s(w, opt->velocity, opt->n);
}

/* A schedule node and, for a final-phase wrapper, the node it wraps (see the format). */
static void emit_sched(wr *w, const mom_sched *s)
{
    while (s != NULL) {
        w_u32(w, (uint32_t)s->kind);
        switch (s->kind) {
        case MOM_SCHED_CONST:
            w_f64(w, s->u.cst.value);
            return;
        case MOM_SCHED_PAPER_MOMENTUM:
            w_f64(w, s->u.paper.mu_max);
            w_u64(w, s->u.paper.period);
            return;
        case MOM_SCHED_PIECEWISE:
            w_u64(w, s->u.pw.n);
            for (size_t i = 0; i < s->u.pw.n; i++) {
                w_u64(w, s->u.pw.starts[i]);
                w_f64(w, s->u.pw.values[i]);
            }
            return;
        case MOM_SCHED_ANNEAL:
            w_f64(w, s->u.ann.v0);
            w_f64(w, s->u.ann.a);
            w_f64(w, s->u.ann.t0);
            return;
        case MOM_SCHED_FINAL_PHASE:
            w_u64(w, s->u.fin.total);
            w_u64(w, s->u.fin.final_steps);
            w_f64(w, s->u.fin.value);
            w_u32(w, (uint32_t)s->u.fin.mode);
            s = s->u.fin.base;
            break;
        default:
            return; /* refused by check_sched() before */
        }
    }
}

/* SCHD: u32 count, count x {u32 role, node}. */
static void emit_scheds(wr *w, const mom_optim *opt)
{
    w_u32(w, 2);
    w_u32(w, ROLE_LR);
    emit_sched(w, opt->lr);
    w_u32(w, ROLE_MOMENTUM);
    emit_sched(w, opt->momentum);
}

/* RNGS: u64 count, count x u64[MOM_RNG_STATE_WORDS]. */
static void emit_rngs(wr *w, const mom_rng *const *rngs, size_t n)
{
    w_u64(w, n);
    for (size_t i = 0; i < n; i++) {
        uint64_t st[MOM_RNG_STATE_WORDS];
        mom_rng_get_state(rngs[i], st);
        for (int k = 0; k < MOM_RNG_STATE_WORDS; k++)
            w_u64(w, st[k]);
    }
}

/* USER: u64 size, u8 bytes[size] (format 1.2). */
static void emit_user(wr *w, const unsigned char *user, size_t size)
{
    w_u64(w, size);
    unsigned char *q = w_take(w, size);
    if (q)
        memcpy(q, user, size);
}

/* What a capture serializes. */
typedef struct ck_source {
    const mom_net *net;
    const mom_optim *opt;
    const mom_rng *const *rngs;
    size_t n_rngs;
    const unsigned char *user;
    size_t user_size;
} ck_source;

static void emit_section(wr *w, int id, const ck_source *src)
{
    switch (id) {
    case SEC_NETW: emit_net(w, src->net); break;
    case SEC_OPTM: emit_optim(w, src->opt); break;
    case SEC_SCHD: emit_scheds(w, src->opt); break;
    case SEC_HFST: hf_emit(w, src->opt); break;
    case SEC_RNGS: emit_rngs(w, src->rngs, src->n_rngs); break;
    case SEC_USER: emit_user(w, src->user, src->user_size); break;
    default: break;
    }
}

/* A schedule that can be saved: no callback anywhere in the chain, at most MAX_WRAP_DEPTH
 * wrappers. */
static int check_sched(mom_ckpt *ck, const mom_sched *s, const char *what)
{
    int depth = 0;
    for (; s != NULL && s->kind == MOM_SCHED_FINAL_PHASE; s = s->u.fin.base) {
        if (++depth > MAX_WRAP_DEPTH)
            return mom__fail(&ck->base, MOM_E_UNSUPPORTED,
                             "the %s schedule nests more than %d final-phase wrappers, which a "
                             "checkpoint cannot hold",
                             what, MAX_WRAP_DEPTH);
    }
    if (s == NULL)
        return mom__fail(&ck->base, MOM_E_INTERNAL, "the %s schedule is missing", what);
    if (s->kind == MOM_SCHED_CALLBACK)
        return mom__fail(&ck->base, MOM_E_UNSUPPORTED,
                         "the %s schedule %s a callback schedule, which cannot be saved (its "
                         "function is code, not data); use a constant, paper-momentum, "
                         "piecewise, anneal or final-phase schedule",
                         what, depth > 0 ? "wraps" : "is");
    switch (s->kind) {
    case MOM_SCHED_CONST:
    case MOM_SCHED_PAPER_MOMENTUM:
    case MOM_SCHED_PIECEWISE:
    case MOM_SCHED_ANNEAL:
        return MOM_OK;
    default:
        return mom__fail(&ck->base, MOM_E_INTERNAL, "the %s schedule has unknown kind %d", what,
                         s->kind);
    }
}

static int parse_image(ck_index *ix, const unsigned char *img, size_t size, mom__base *err,
                       const mom_allocator *a, int verify);

int mom_ckpt_create(mom_ckpt **out, const mom_allocator *alloc)
{
    if (out == NULL)
        return MOM_E_INVALID;
    *out = NULL;
    mom_allocator a;
    if (mom__alloc_init(&a, alloc) != MOM_OK)
        return MOM_E_INVALID;
    mom_ckpt *ck = mom__calloc(&a, 1, sizeof *ck);
    if (ck == NULL)
        return MOM_E_NOMEM;
    ck->base.alloc = a;
    *out = ck;
    return MOM_OK;
}

void mom_ckpt_destroy(mom_ckpt *ck)
{
    if (ck == NULL)
        return;
    mom_allocator a = ck->base.alloc;
    mom__free(&a, ck->img);
    mom__free(&a, ck->user);
    mom__free(&a, ck);
}

const char *mom_ckpt_errmsg(const mom_ckpt *ck) { return ck ? ck->base.errmsg : null_ckpt_msg; }

uint32_t mom_ckpt_format_version(void) { return (uint32_t)MOM_CKPT_FORMAT_VERSION; }

int mom_ckpt_capture(mom_ckpt *ck, const mom_net *net, const mom_optim *opt,
                     const mom_rng *const *rngs, size_t n_rngs)
{
    ENTER(ck);
    if (net == NULL && opt == NULL)
        return mom__fail(&ck->base, MOM_E_INVALID, "net and opt are both NULL: nothing to save");
    if (n_rngs > 0 && rngs == NULL)
        return mom__fail(&ck->base, MOM_E_INVALID, "rngs is NULL but n_rngs is %zu", n_rngs);
    for (size_t i = 0; i < n_rngs; i++)
        if (rngs[i] == NULL)
            return mom__fail(&ck->base, MOM_E_INVALID, "rngs[%zu] is NULL", i);
    if (opt != NULL) {
        if (opt->begun)
            return mom__fail(&ck->base, MOM_E_STATE,
                             "the optimizer has a step begun with mom_optim_begin(); capture "
                             "between steps");
        const int *keys;
        size_t nk;
        if (!kind_keys(opt->kind, &keys, &nk) || (opt->kind == MOM_OPTIM_HF && opt->hf == NULL))
            return mom__fail(&ck->base, MOM_E_UNSUPPORTED,
                             "optimizers of kind %s cannot be saved by this version",
                             optim_kind_name((uint64_t)opt->kind));
        if (net != NULL && net->n_params != opt->n)
            return mom__fail(&ck->base, MOM_E_SHAPE,
                             "the network has %zu parameters, the optimizer %zu", net->n_params,
                             opt->n);
        int rc = check_sched(ck, opt->lr, "learning-rate");
        if (rc == MOM_OK)
            rc = check_sched(ck, opt->momentum, "momentum");
        if (rc != MOM_OK)
            return rc;
    }

    /* The sections, in the order they are written. */
    int ids[SEC_COUNT];
    size_t n_sec = 0;
    if (net != NULL)
        ids[n_sec++] = SEC_NETW;
    if (opt != NULL) {
        ids[n_sec++] = SEC_OPTM;
        ids[n_sec++] = SEC_SCHD;
        if (hf_has_state(opt->kind))
            ids[n_sec++] = SEC_HFST;
    }
    if (n_rngs > 0)
        ids[n_sec++] = SEC_RNGS;
    if (ck->user_size > 0)
        ids[n_sec++] = SEC_USER;
    const ck_source src = {net, opt, rngs, n_rngs, ck->user, ck->user_size};

    /* Pass 1: measure. */
    size_t sec_size[SEC_COUNT];
    size_t total = HEADER_SIZE + ENTRY_SIZE * n_sec;
    for (size_t i = 0; i < n_sec; i++) {
        wr m = {NULL, 0, 0};
        emit_section(&m, ids[i], &src);
        if (m.overflow || !mom__add_size(&total, total, m.pos))
            return mom__fail(&ck->base, MOM_E_NOMEM, "the checkpoint would not fit in memory");
        sec_size[i] = m.pos;
    }
    if (total > ck->cap) {
        unsigned char *p = mom__realloc(&ck->base.alloc, ck->img, total);
        if (p == NULL)
            return mom__fail(&ck->base, MOM_E_NOMEM, "cannot allocate %zu bytes for the image",
                             total);
        ck->img = p;
        ck->cap = total;
    }

    /* Pass 2: write. Nothing can fail from here on. */
    unsigned char *img = ck->img;
    memcpy(img, ckpt_magic, 8);
    put_u16(img + 8, MOM_CKPT_FORMAT_MAJOR);
    put_u16(img + 10, MOM_CKPT_FORMAT_MINOR);
    put_u32(img + 12, mom__crc32c(0, img, 12));
    put_u64(img + 16, total);
    put_u32(img + 24, (uint32_t)n_sec);
    size_t off = HEADER_SIZE + ENTRY_SIZE * n_sec;
    for (size_t i = 0; i < n_sec; i++) {
        wr w = {img + off, 0, 0};
        emit_section(&w, ids[i], &src);
        unsigned char *e = img + HEADER_SIZE + ENTRY_SIZE * i;
        put_u32(e, sec_tag[ids[i]]);
        put_u64(e + 4, off);
        put_u64(e + 12, sec_size[i]);
        put_u32(e + 20, mom__crc32c(0, img + off, sec_size[i]));
        off += sec_size[i];
    }
    uint32_t hcrc = mom__crc32c(0, img + 16, 12);
    put_u32(img + 28, mom__crc32c(hcrc, img + HEADER_SIZE, ENTRY_SIZE * n_sec));
    ck->size = total;

    /* Index the new image (its CRCs are known to be right). A failure is a bug: the writer and the
     * reader disagree. */
    ck_index ix;
    mom__base scratch;
    if (parse_image(&ix, img, total, &scratch, &ck->base.alloc, 0) != MOM_OK) {
        ck->size = 0;
        return mom__fail(&ck->base, MOM_E_INTERNAL, "the captured image does not check: %s",
                         scratch.errmsg);
    }
    ck->ix = ix;
    return MOM_OK;
}

int mom_ckpt_set_user_data(mom_ckpt *ck, const void *data, size_t size)
{
    ENTER(ck);
    if (data == NULL && size > 0)
        return mom__fail(&ck->base, MOM_E_INVALID, "data is NULL but size is %zu", size);
    if (size > MOM_CKPT_USER_DATA_MAX)
        return mom__fail(&ck->base, MOM_E_INVALID,
                         "%zu bytes of user data are more than a checkpoint holds (at most %u, "
                         "MOM_CKPT_USER_DATA_MAX)",
                         size, MOM_CKPT_USER_DATA_MAX);
    if (size == 0) {
        mom__free(&ck->base.alloc, ck->user);
        ck->user = NULL;
        ck->user_size = ck->user_cap = 0;
        return MOM_OK;
    }
    if (size <= ck->user_cap) { /* the buffer of the bytes set before is large enough */
        memmove(ck->user, data, size);
        ck->user_size = size;
        return MOM_OK;
    }
    /* a new buffer, so that a failure keeps the bytes set before */
    unsigned char *p = mom__malloc(&ck->base.alloc, size);
    if (p == NULL)
        return mom__fail(&ck->base, MOM_E_NOMEM, "cannot allocate %zu bytes for the user data",
                         size);
    memcpy(p, data, size);
    mom__free(&ck->base.alloc, ck->user);
    ck->user = p;
    ck->user_size = ck->user_cap = size;
    return MOM_OK;
}

int mom_ckpt_user_data(const void **data, size_t *size, const mom_ckpt *ck)
{
    if (data != NULL)
        *data = NULL;
    if (size != NULL)
        *size = 0;
    if (ck == NULL)
        return MOM_E_INVALID;
    /* A query: the detail message is written only on failure. */
    mom__base *b = (mom__base *)&ck->base;
    if (data == NULL || size == NULL)
        return mom__fail(b, MOM_E_INVALID, "the %s output pointer is NULL",
                         data == NULL ? "data" : "size");
    if (ck->size > 0 && ck->ix.user_size > 0) {
        *data = ck->img + ck->ix.user_at;
        *size = ck->ix.user_size;
    }
    return MOM_OK;
}

size_t mom_ckpt_size(const mom_ckpt *ck) { return ck ? ck->size : 0; }
int mom_ckpt_net_kind(const mom_ckpt *ck) { return ck && ck->size ? ck->ix.net_kind : 0; }
int mom_ckpt_optim_kind(const mom_ckpt *ck) { return ck && ck->size ? ck->ix.optim_kind : 0; }
size_t mom_ckpt_num_params(const mom_ckpt *ck) { return ck && ck->size ? ck->ix.n_params : 0; }
size_t mom_ckpt_num_rngs(const mom_ckpt *ck) { return ck && ck->size ? ck->ix.n_rngs : 0; }

/* ---- checking an image -------------------------------------------------------------------- */

/* The preamble of `n` available bytes (n may be short): magic, CRC, major version. */
static int check_preamble(const unsigned char *p, size_t n, mom__base *err)
{
    if (n == 0)
        return fail_at(err, MOM_E_FORMAT, "header", 0, "the input is empty");
    size_t m = n < 8 ? n : 8;
    if (memcmp(p, ckpt_magic, m) != 0)
        return fail_at(err, MOM_E_FORMAT, "header", 0,
                       "not a libmominit checkpoint (wrong magic bytes)");
    if (n < PREAMBLE_SIZE)
        return fail_at(err, MOM_E_FORMAT, "header", n,
                       "truncated: the input ends inside the %u-byte preamble", PREAMBLE_SIZE);
    if (get_u32(p + 12) != mom__crc32c(0, p, 12))
        return fail_at(err, MOM_E_FORMAT, "header", 12,
                       "preamble CRC mismatch: the format version bytes are damaged");
    unsigned major = get_u16(p + 8), minor = get_u16(p + 10);
    if (major > MOM_CKPT_FORMAT_MAJOR)
        return fail_at(err, MOM_E_UNSUPPORTED, "header", 8,
                       "the file has checkpoint format version %u.%u, which needs a library "
                       "that reads format %u.x; this one reads format %d.%d and older %d.x files",
                       major, minor, major, MOM_CKPT_FORMAT_MAJOR, MOM_CKPT_FORMAT_MINOR,
                       MOM_CKPT_FORMAT_MAJOR);
    if (major == 0)
        return fail_at(err, MOM_E_FORMAT, "header", 8, "format major version 0 does not exist");
    return MOM_OK;
}

static int parse_net(ck_index *ix, rd *r)
{
    size_t at = r->pos;
    uint32_t kind, output, flags, check;
    int rc;
    if ((rc = rd_u32(r, &kind, "the network kind")) != MOM_OK)
        return rc;
    if (kind != MOM_NET_FEEDFORWARD && kind != MOM_NET_RECURRENT)
        return unknown_value(r, at, "network kind", kind);
    at = r->pos;
    if ((rc = rd_u32(r, &output, "the output")) != MOM_OK)
        return rc;
    if (output > MOM_OUT_SOFTMAX_XENT)
        return unknown_value(r, at, "output", output);
    at = r->pos;
    if ((rc = rd_u32(r, &flags, "the flags")) != MOM_OK)
        return rc;
    uint32_t allowed = kind == MOM_NET_RECURRENT ? MOM_RNN_LEARN_H0 : 0;
    if ((flags & ~allowed) != 0)
        return unknown_value(r, at, "network flags", flags);
    at = r->pos;
    if ((rc = rd_u32(r, &check, "the network options")) != MOM_OK)
        return rc;
    if (check > (r->minor >= 1 ? 3u : 1u)) /* bit 1 (flushing off) came with 1.1 */
        return unknown_value(r, at, "network options", check);

    uint64_t n_sizes, n_acts;
    at = r->pos;
    if ((rc = rd_count(r, &n_sizes, 8, 1, "the number of unit layers")) != MOM_OK)
        return rc;
    if (kind == MOM_NET_FEEDFORWARD ? (n_sizes < 2 || n_sizes - 1 > SIZE_MAX / 4 / sizeof(size_t))
                                    : n_sizes != 3)
        return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                       "a %s network cannot have %llu unit layers", net_kind_name(kind),
                       (unsigned long long)n_sizes);
    const size_t max_dim = mom__blas_max_dim();
    const size_t sizes_at = r->pos;
    for (uint64_t i = 0; i < n_sizes; i++) {
        uint64_t s;
        at = r->pos;
        if ((rc = rd_u64(r, &s, "a layer width")) != MOM_OK)
            return rc;
        if (s == 0 || s > max_dim)
            return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                           "unit layer %llu has width %llu, outside 1..%zu",
                           (unsigned long long)i, (unsigned long long)s, max_dim);
    }
    at = r->pos;
    if ((rc = rd_count(r, &n_acts, 4, 1, "the number of hidden activations")) != MOM_OK)
        return rc;
    if (n_acts != n_sizes - 2)
        return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                       "%llu hidden activations for %llu unit layers (expected %llu)",
                       (unsigned long long)n_acts, (unsigned long long)n_sizes,
                       (unsigned long long)(n_sizes - 2));
    for (uint64_t i = 0; i < n_acts; i++) {
        uint32_t act;
        at = r->pos;
        if ((rc = rd_u32(r, &act, "a hidden activation")) != MOM_OK)
            return rc;
        if (act > MOM_ACT_RELU)
            return unknown_value(r, at, "hidden activation", act);
    }
    /* The parameter count the architecture implies, overflow-checked. */
    const unsigned char *sz = r->b + sizes_at;
    uint64_t last = get_u64(sz + 8 * (n_sizes - 1));
    if (output == MOM_OUT_SOFTMAX_XENT && last < 2)
        return fail_at(r->err, MOM_E_FORMAT, r->where, sizes_at + 8 * (size_t)(n_sizes - 1),
                       "a softmax output needs at least 2 units, not %llu",
                       (unsigned long long)last);
    size_t count = 0;
    int ok = 1;
    if (kind == MOM_NET_FEEDFORWARD) {
        for (uint64_t l = 0; l + 1 < n_sizes && ok; l++) {
            size_t wn;
            size_t si = (size_t)get_u64(sz + 8 * l), so = (size_t)get_u64(sz + 8 * (l + 1));
            ok = mom__mul_size(&wn, so, si) && mom__add_size(&count, count, wn) &&
                 mom__add_size(&count, count, so);
        }
    } else {
        size_t ni = (size_t)get_u64(sz), nh = (size_t)get_u64(sz + 8), no = (size_t)get_u64(sz + 16);
        size_t vh, hh, ho;
        ok = mom__mul_size(&vh, nh, ni) && mom__mul_size(&hh, nh, nh) &&
             mom__mul_size(&ho, no, nh) && mom__add_size(&count, vh, hh) &&
             mom__add_size(&count, count, nh) && mom__add_size(&count, count, ho) &&
             mom__add_size(&count, count, no) &&
             (!(flags & MOM_RNN_LEARN_H0) || mom__add_size(&count, count, nh));
    }
    size_t bytes;
    if (!ok || !mom__mul_size(&bytes, count, 4) || bytes > (size_t)PTRDIFF_MAX)
        return fail_at(r->err, MOM_E_FORMAT, r->where, sizes_at,
                       "the architecture's parameter count overflows");
    uint64_t n_params;
    at = r->pos;
    if ((rc = rd_u64(r, &n_params, "the parameter count")) != MOM_OK)
        return rc;
    if (n_params != count)
        return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                       "the parameter count is %llu but the architecture has %zu parameters",
                       (unsigned long long)n_params, count);
    if ((rc = rd_need(r, bytes, "the parameter vector")) != MOM_OK)
        return rc;
    r->pos += bytes;
    if ((rc = rd_finish(r)) != MOM_OK)
        return rc;
    ix->net_kind = (int)kind;
    ix->n_params = count;
    return MOM_OK;
}

/* Check the option values of OPTM with the optimizer's own setter, on a probe optimizer of the
 * same kind with one parameter. */
static int check_options(rd *r, int kind, size_t kind_at, size_t opts_at, uint64_t n_opts,
                         const mom_allocator *a)
{
    mom_optim *probe = NULL;
    int rc = mom_optim_create(&probe, kind, 1, a);
    if (rc == MOM_E_UNSUPPORTED || rc == MOM_E_INVALID)
        return fail_at(r->err, MOM_E_UNSUPPORTED, r->where, kind_at,
                       "optimizers of kind %s are not supported by this build",
                       optim_kind_name((uint64_t)kind));
    if (rc != MOM_OK)
        return mom__fail(r->err, rc, "cannot create an optimizer to check the options");
    for (uint64_t i = 0; i < n_opts && rc == MOM_OK; i++) {
        size_t at = opts_at + OPTION_SIZE * (size_t)i;
        uint32_t key = get_u32(r->b + at);
        double v = get_f64(r->b + at + 4);
        if (key == MOM_OPTIM_LOOKAHEAD) { /* a momentum, set by the conversion, not a setter */
            if (!(v >= 0.0 && v <= 1.0) || (double)(float)v != v)
                rc = fail_at(r->err, MOM_E_FORMAT, r->where, at + 4,
                             "option %u = %g is not valid: the look-ahead point's momentum must "
                             "be a float in [0, 1]",
                             key, v);
            continue;
        }
        int st = mom_optim_set(probe, (int)key, v);
        if (st == MOM_E_NOMEM)
            rc = mom__fail(r->err, st, "cannot allocate to check option %u", key);
        else if (st != MOM_OK)
            rc = fail_at(r->err, MOM_E_FORMAT, r->where, at + 4,
                         "option %u = %g is not valid: %s", key, v, mom_optim_errmsg(probe));
    }
    mom_optim_destroy(probe);
    return rc;
}

static int parse_optim(ck_index *ix, rd *r, const mom_allocator *a, int verify)
{
    const size_t kind_at = r->pos;
    size_t at;
    uint32_t kind;
    uint64_t n_opts, n_params, t;
    const int *keys = NULL;
    size_t nk = 0;
    int rc;
    if ((rc = rd_u32(r, &kind, "the optimizer kind")) != MOM_OK)
        return rc;
    if (kind < MOM_OPTIM_SGD || kind > MOM_OPTIM_HF)
        return unknown_value(r, kind_at, "optimizer kind", kind);
    if (!kind_keys((int)kind, &keys, &nk))
        return fail_at(r->err, MOM_E_UNSUPPORTED, r->where, kind_at,
                       "optimizers of kind %s cannot be loaded by this version",
                       optim_kind_name(kind));
    if ((rc = rd_count(r, &n_opts, OPTION_SIZE, 0, "the number of options")) != MOM_OK)
        return rc;
    at = r->pos;
    if ((rc = rd_u64(r, &n_params, "the parameter count")) != MOM_OK)
        return rc;
    if (n_params == 0 || n_params > (uint64_t)(PTRDIFF_MAX / 4))
        return fail_at(r->err, MOM_E_FORMAT, r->where, at, "the parameter count %llu is invalid",
                       (unsigned long long)n_params);
    at = r->pos;
    if ((rc = rd_u64(r, &t, "the step count")) != MOM_OK)
        return rc;
    if (t > MOM__STEPS_LAST) /* no optimizer gets there: its steps stop one short */
        return fail_at(r->err, MOM_E_FORMAT, r->where, at, "the step count %llu is invalid",
                       (unsigned long long)t);
    const size_t opts_at = r->pos;
    for (uint64_t i = 0; i < n_opts; i++) {
        uint32_t key;
        double v;
        at = r->pos;
        if ((rc = rd_u32(r, &key, "an option key")) != MOM_OK ||
            (rc = rd_f64(r, &v, "an option value")) != MOM_OK)
            return rc;
        /* the look-ahead form's key came with 1.3, for NAG */
        int known = key == MOM_OPTIM_LOOKAHEAD && kind == MOM_OPTIM_NAG && r->minor >= 3;
        for (size_t k = 0; k < nk; k++)
            known |= keys[k] == (int)key;
        if (!known || (key == MOM_OPTIM_FLUSH_SUBNORMALS && r->minor < 1)) /* 1.1's key */
            return unknown_value(r, at, "option key", key);
        for (uint64_t j = 0; j < i; j++)
            if (get_u32(r->b + opts_at + OPTION_SIZE * (size_t)j) == key)
                return fail_at(r->err, MOM_E_FORMAT, r->where, at, "option %u appears twice", key);
    }
    if ((rc = rd_need(r, (size_t)n_params * 4, "the velocity")) != MOM_OK)
        return rc;
    for (size_t i = 0; i < (size_t)n_params; i++) /* no step leaves a velocity non-finite */
        if ((get_u32(r->b + r->pos + 4 * i) & 0x7f800000u) == 0x7f800000u) /* inf or NaN */
            return fail_at(r->err, MOM_E_FORMAT, r->where, r->pos + 4 * i,
                           "velocity entry %zu is not finite", i);
    r->pos += (size_t)n_params * 4;
    if ((rc = rd_finish(r)) != MOM_OK)
        return rc;
    if (verify && (rc = check_options(r, (int)kind, kind_at, opts_at, n_opts, a)) != MOM_OK)
        return rc;
    ix->optim_kind = (int)kind;
    if (!ix->present[SEC_NETW])
        ix->n_params = (size_t)n_params;
    return MOM_OK;
}

/* One schedule (a chain of final-phase wrappers ending in a leaf), checked with the rules of the
 * constructors in sched.c. */
static int parse_sched(rd *r)
{
    int rc;
    for (int depth = 0;; depth++) {
        size_t at = r->pos;
        uint32_t kind;
        if (depth > MAX_WRAP_DEPTH)
            return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                           "more than %d final-phase wrappers around one schedule", MAX_WRAP_DEPTH);
        if ((rc = rd_u32(r, &kind, "a schedule kind")) != MOM_OK)
            return rc;
        switch (kind) {
        case MOM_SCHED_CONST: {
            double v;
            at = r->pos;
            if ((rc = rd_f64(r, &v, "a constant schedule's value")) != MOM_OK)
                return rc;
            if (!isfinite(v))
                return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                               "a constant schedule's value is not finite");
            return MOM_OK;
        }
        case MOM_SCHED_PAPER_MOMENTUM: {
            double mu_max;
            uint64_t period;
            at = r->pos;
            if ((rc = rd_f64(r, &mu_max, "mu_max")) != MOM_OK ||
                (rc = rd_u64(r, &period, "the period")) != MOM_OK)
                return rc;
            if (!(mu_max >= 0.0 && mu_max <= 1.0) || period == 0)
                return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                               "paper momentum with mu_max %g and period %llu (needs mu_max in "
                               "[0, 1] and period >= 1)",
                               mu_max, (unsigned long long)period);
            return MOM_OK;
        }
        case MOM_SCHED_PIECEWISE: {
            uint64_t n;
            at = r->pos;
            if ((rc = rd_count(r, &n, 16, 1, "the number of pieces")) != MOM_OK)
                return rc;
            if (n == 0)
                return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                               "a piecewise schedule without pieces");
            uint64_t prev = 0;
            for (uint64_t i = 0; i < n; i++) {
                uint64_t start;
                double v;
                at = r->pos;
                if ((rc = rd_u64(r, &start, "a piece start")) != MOM_OK ||
                    (rc = rd_f64(r, &v, "a piece value")) != MOM_OK)
                    return rc;
                if (i == 0 ? start != 0 : start <= prev)
                    return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                                   "piece %llu starts at %llu (the first must start at 0, the "
                                   "others strictly later than the one before)",
                                   (unsigned long long)i, (unsigned long long)start);
                if (!isfinite(v))
                    return fail_at(r->err, MOM_E_FORMAT, r->where, at + 8,
                                   "the value of piece %llu is not finite", (unsigned long long)i);
                prev = start;
            }
            return MOM_OK;
        }
        case MOM_SCHED_ANNEAL: {
            double v0, a, t0;
            at = r->pos;
            if ((rc = rd_f64(r, &v0, "v0")) != MOM_OK || (rc = rd_f64(r, &a, "a")) != MOM_OK ||
                (rc = rd_f64(r, &t0, "t0")) != MOM_OK)
                return rc;
            if (!isfinite(v0) || !isfinite(t0) || !isfinite(a) || !(a > 0.0))
                return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                               "anneal schedule (v0 %g, a %g, t0 %g) needs finite values and "
                               "a > 0",
                               v0, a, t0);
            return MOM_OK;
        }
        case MOM_SCHED_FINAL_PHASE: {
            uint64_t total, final_steps;
            double v;
            uint32_t mode;
            at = r->pos;
            if ((rc = rd_u64(r, &total, "the total steps")) != MOM_OK ||
                (rc = rd_u64(r, &final_steps, "the final steps")) != MOM_OK ||
                (rc = rd_f64(r, &v, "the final value")) != MOM_OK ||
                (rc = rd_u32(r, &mode, "the final-phase mode")) != MOM_OK)
                return rc;
            if (final_steps > total || !isfinite(v))
                return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                               "final phase (total %llu, final steps %llu, value %g) needs "
                               "final steps <= total and a finite value",
                               (unsigned long long)total, (unsigned long long)final_steps, v);
            if (mode != MOM_FINAL_REPLACE && mode != MOM_FINAL_MIN)
                return unknown_value(r, at + 24, "final-phase mode", mode);
            continue; /* the wrapped schedule follows */
        }
        case MOM_SCHED_CALLBACK:
            return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                           "a callback schedule cannot be stored in a checkpoint");
        default:
            return unknown_value(r, at, "schedule kind", kind);
        }
    }
}

static int parse_scheds(ck_index *ix, rd *r)
{
    uint64_t count;
    int rc;
    if ((rc = rd_count(r, &count, 8, 0, "the number of schedules")) != MOM_OK)
        return rc;
    for (uint64_t i = 0; i < count; i++) {
        size_t at = r->pos;
        uint32_t role;
        if ((rc = rd_u32(r, &role, "a schedule role")) != MOM_OK)
            return rc;
        if (role == 0 || role > ROLE_MAX) {
            if (!r->newer)
                return unknown_value(r, at, "schedule role", role);
        } else if (ix->sched_at[role] != 0) {
            return fail_at(r->err, MOM_E_FORMAT, r->where, at, "two %s schedules",
                           role_name[role]);
        }
        size_t node = r->pos;
        if ((rc = parse_sched(r)) != MOM_OK)
            return rc;
        if (role >= 1 && role <= ROLE_MAX)
            ix->sched_at[role] = node;
    }
    for (int role = 1; role <= ROLE_MAX; role++)
        if (ix->sched_at[role] == 0)
            return fail_at(r->err, MOM_E_FORMAT, r->where, r->pos, "no %s schedule",
                           role_name[role]);
    return rd_finish(r);
}

static int parse_rngs(ck_index *ix, rd *r)
{
    uint64_t count;
    int rc;
    if ((rc = rd_count(r, &count, RNG_SIZE, 1, "the number of stream states")) != MOM_OK)
        return rc;
    for (uint64_t i = 0; i < count; i++) {
        size_t at = r->pos;
        uint64_t st[MOM_RNG_STATE_WORDS];
        for (int k = 0; k < MOM_RNG_STATE_WORDS; k++)
            st[k] = get_u64(r->b + at + 8 * (size_t)k);
        struct mom_rng probe;
        memset(&probe, 0, sizeof probe);
        mom__rng_init(&probe, 0, 0);
        if (mom_rng_set_state(&probe, st) != MOM_OK)
            return fail_at(r->err, MOM_E_FORMAT, r->where, at, "stream state %llu is invalid (%s)",
                           (unsigned long long)i, probe.base.errmsg);
        r->pos += RNG_SIZE;
    }
    if ((rc = rd_finish(r)) != MOM_OK)
        return rc;
    ix->n_rngs = (size_t)count;
    return MOM_OK;
}

/* USER: the caller's bytes, opaque; only their size is checked. */
static int parse_user(ck_index *ix, rd *r)
{
    size_t at = r->pos;
    uint64_t n;
    int rc;
    if ((rc = rd_count(r, &n, 1, 1, "the size of the user data")) != MOM_OK)
        return rc;
    if (n > MOM_CKPT_USER_DATA_MAX)
        return fail_at(r->err, MOM_E_FORMAT, r->where, at,
                       "%llu bytes of user data, more than the %u a checkpoint holds",
                       (unsigned long long)n, MOM_CKPT_USER_DATA_MAX);
    if (n == 0 && !r->newer) /* the section is written only for user data */
        return fail_at(r->err, MOM_E_FORMAT, r->where, at, "a USER section without user data");
    ix->user_at = r->pos;
    ix->user_size = (size_t)n;
    r->pos += (size_t)n;
    return rd_finish(r);
}

static void tag_text(char out[5], uint32_t tag)
{
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)(tag >> (8 * i));
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[4] = '\0';
}

/* Check a whole image of `size` bytes and index it. verify = 0 skips the CRCs and the option probe
 * (for an image this library has just written). */
static int parse_image(ck_index *ix, const unsigned char *img, size_t size, mom__base *err,
                       const mom_allocator *a, int verify)
{
    memset(ix, 0, sizeof *ix);
    int rc = check_preamble(img, size, err);
    if (rc != MOM_OK)
        return rc;
    if (size < HEADER_SIZE)
        return fail_at(err, MOM_E_FORMAT, "header", size,
                       "truncated: the input ends inside the %u-byte header", HEADER_SIZE);
    uint64_t file_size = get_u64(img + 16);
    if (file_size != size)
        return fail_at(err, MOM_E_FORMAT, "header", 16,
                       "the header gives a size of %llu bytes but the input has %zu (%s)",
                       (unsigned long long)file_size, size,
                       file_size > size ? "truncated" : "trailing data or damaged header");
    uint32_t n_sec = get_u32(img + 24);
    if (n_sec > MAX_SECTIONS || n_sec > (size - HEADER_SIZE) / ENTRY_SIZE)
        return fail_at(err, MOM_E_FORMAT, "header", 24,
                       "%u sections do not fit in the file (or exceed the limit of %u)", n_sec,
                       MAX_SECTIONS);
    const size_t table_end = HEADER_SIZE + ENTRY_SIZE * (size_t)n_sec;
    if (verify) {
        uint32_t c = mom__crc32c(mom__crc32c(0, img + 16, 12), img + HEADER_SIZE,
                                 ENTRY_SIZE * (size_t)n_sec);
        if (c != get_u32(img + 28))
            return fail_at(err, MOM_E_FORMAT, "header", 28,
                           "header CRC mismatch: the header or the section table is damaged");
    }
    ix->minor = get_u16(img + 10);
    const int newer = ix->minor > MOM_CKPT_FORMAT_MINOR;

    /* The table: contiguous sections from the end of the table to the end of the file. */
    size_t expect = table_end;
    for (uint32_t i = 0; i < n_sec; i++) {
        const unsigned char *e = img + HEADER_SIZE + ENTRY_SIZE * (size_t)i;
        const size_t at = HEADER_SIZE + ENTRY_SIZE * (size_t)i;
        uint32_t tag = get_u32(e);
        uint64_t off = get_u64(e + 4), len = get_u64(e + 12);
        char name[5];
        tag_text(name, tag);
        if (off != expect)
            return fail_at(err, MOM_E_FORMAT, "section table", at + 4,
                           "section %u ('%s') starts at %llu, expected %zu (sections are "
                           "contiguous)",
                           i, name, (unsigned long long)off, expect);
        if (len > size - expect)
            return fail_at(err, MOM_E_FORMAT, "section table", at + 12,
                           "section %u ('%s') has %llu bytes, more than the %zu left in the file",
                           i, name, (unsigned long long)len, size - expect);
        if (verify && mom__crc32c(0, img + off, (size_t)len) != get_u32(e + 20))
            return fail_at(err, MOM_E_FORMAT, "section table", at + 20,
                           "CRC mismatch in section %u ('%s', %llu bytes at offset %llu): the "
                           "section is damaged",
                           i, name, (unsigned long long)len, (unsigned long long)off);
        int id = -1;
        for (int k = 0; k < SEC_COUNT; k++)
            if (sec_tag[k] == tag)
                id = k;
        if (id >= 0 && ix->minor < sec_since[id]) /* not yet defined in the file's version */
            return fail_at(err, MOM_E_FORMAT, "section table", at,
                           "section '%s' in a format %u.%u file (it came with format %d.%u)",
                           name, (unsigned)get_u16(img + 8), ix->minor, MOM_CKPT_FORMAT_MAJOR,
                           sec_since[id]);
        if (id < 0) {
            if (!newer)
                return fail_at(err, MOM_E_FORMAT, "section table", at,
                               "unknown section '%s' in a format %u.%u file", name,
                               (unsigned)get_u16(img + 8), ix->minor);
        } else {
            if (ix->present[id])
                return fail_at(err, MOM_E_FORMAT, "section table", at, "two '%s' sections",
                               name);
            ix->present[id] = 1;
            ix->off[id] = (size_t)off;
            ix->size[id] = (size_t)len;
        }
        expect += (size_t)len;
    }
    if (expect != size)
        return fail_at(err, MOM_E_FORMAT, "section table", table_end,
                       "the sections end at offset %zu but the file at %zu", expect, size);

    /* Which sections go together. */
    if (!ix->present[SEC_NETW] && !ix->present[SEC_OPTM])
        return fail_at(err, MOM_E_FORMAT, "section table", HEADER_SIZE,
                       "the file holds neither a network (NETW) nor an optimizer (OPTM)");
    if (ix->present[SEC_OPTM] != ix->present[SEC_SCHD])
        return fail_at(err, MOM_E_FORMAT, "section table", HEADER_SIZE,
                       "an optimizer (OPTM) needs its schedules (SCHD) and vice versa");

    /* The contents, section by section. */
    static const int order[SEC_COUNT] = {SEC_NETW, SEC_OPTM, SEC_SCHD, SEC_HFST, SEC_RNGS,
                                         SEC_USER};
    for (int k = 0; k < SEC_COUNT; k++) {
        int id = order[k];
        if (!ix->present[id])
            continue;
        rd r = {img, ix->off[id], ix->off[id] + ix->size[id], sec_where[id], err, newer,
                ix->minor};
        switch (id) {
        case SEC_NETW: rc = parse_net(ix, &r); break;
        case SEC_OPTM: rc = parse_optim(ix, &r, a, verify); break;
        case SEC_SCHD: rc = parse_scheds(ix, &r); break;
        case SEC_HFST:
            if (!hf_has_state(ix->optim_kind))
                rc = fail_at(err, MOM_E_FORMAT, r.where, r.pos,
                             "HF state without an HF optimizer");
            else
                rc = hf_parse(&r, ix->optim_kind);
            break;
        case SEC_RNGS: rc = parse_rngs(ix, &r); break;
        case SEC_USER: rc = parse_user(ix, &r); break;
        default: break;
        }
        if (rc != MOM_OK)
            return rc;
    }
    if (ix->present[SEC_OPTM] && hf_has_state(ix->optim_kind) && !ix->present[SEC_HFST])
        return fail_at(err, MOM_E_FORMAT, "section table", HEADER_SIZE,
                       "an HF optimizer without its state (HFST)");
    if (ix->present[SEC_NETW] && ix->present[SEC_OPTM]) {
        uint64_t n_opt = get_u64(img + ix->off[SEC_OPTM] + 8);
        if (n_opt != ix->n_params)
            return fail_at(err, MOM_E_FORMAT, sec_where[SEC_OPTM], ix->off[SEC_OPTM] + 8,
                           "the optimizer has %llu parameters, the network %zu",
                           (unsigned long long)n_opt, ix->n_params);
    }
    return MOM_OK;
}

/* ---- output --------------------------------------------------------------------------------- */

int mom_ckpt_save_buffer(void *buf, size_t cap, mom_ckpt *ck)
{
    ENTER(ck);
    if (buf == NULL)
        return mom__fail(&ck->base, MOM_E_INVALID, "buf is NULL");
    if (ck->size == 0)
        return mom__fail(&ck->base, MOM_E_STATE, "the handle holds no image (capture or load first)");
    if (cap < ck->size)
        return mom__fail(&ck->base, MOM_E_SHAPE, "the buffer has %zu bytes, the image needs %zu",
                         cap, ck->size);
    memcpy(buf, ck->img, ck->size);
    return MOM_OK;
}

int mom_ckpt_save_stream(mom_ckpt *ck, mom_ckpt_write_fn write, void *user_data)
{
    ENTER(ck);
    if (write == NULL)
        return mom__fail(&ck->base, MOM_E_INVALID, "the write callback is NULL");
    if (ck->size == 0)
        return mom__fail(&ck->base, MOM_E_STATE, "the handle holds no image (capture or load first)");
    for (size_t pos = 0; pos < ck->size;) {
        size_t n = ck->size - pos < STREAM_CHUNK ? ck->size - pos : STREAM_CHUNK;
        int st = write(ck->img + pos, n, user_data);
        if (st != 0)
            return mom__fail(&ck->base, MOM_E_IO,
                             "the write callback failed (returned %d) at offset %zu of %zu", st,
                             pos, ck->size);
        pos += n;
    }
    return MOM_OK;
}

/* ---- input ------------------------------------------------------------------------------------ */

/* Replace the handle's image by a checked one (buffer allocated with the handle's allocator). */
static void adopt(mom_ckpt *ck, unsigned char *img, size_t size, size_t cap, const ck_index *ix)
{
    mom__free(&ck->base.alloc, ck->img);
    ck->img = img;
    ck->size = size;
    ck->cap = cap;
    ck->ix = *ix;
}

int mom_ckpt_load_buffer(mom_ckpt *ck, const void *data, size_t size)
{
    ENTER(ck);
    if (data == NULL)
        return mom__fail(&ck->base, MOM_E_INVALID, "data is NULL");
    ck_index ix;
    int rc = parse_image(&ix, data, size, &ck->base, &ck->base.alloc, 1);
    if (rc != MOM_OK)
        return rc;
    unsigned char *img = mom__malloc(&ck->base.alloc, size);
    if (img == NULL)
        return mom__fail(&ck->base, MOM_E_NOMEM, "cannot allocate %zu bytes for the image", size);
    memcpy(img, data, size);
    adopt(ck, img, size, size, &ix);
    return MOM_OK;
}

/* Read up to n bytes through the callback, calling it again after short reads until it delivers
 * nothing. *got receives the bytes read. */
static int read_some(mom_ckpt *ck, mom_ckpt_read_fn fn, void *ud, unsigned char *buf, size_t n,
                     size_t *got, size_t at)
{
    *got = 0;
    while (*got < n) {
        size_t k = 0;
        int st = fn(buf + *got, n - *got, &k, ud);
        if (st != 0)
            return mom__fail(&ck->base, MOM_E_IO,
                             "the read callback failed (returned %d) at offset %zu", st, at + *got);
        if (k > n - *got)
            return mom__fail(&ck->base, MOM_E_IO,
                             "the read callback reported %zu bytes for a request of %zu", k,
                             n - *got);
        if (k == 0)
            break;
        *got += k;
    }
    return MOM_OK;
}

/* Read one image from a stream. known: the exact input size if known (a regular file), else -1;
 * require_end: the input must end with the image. */
static int read_image(mom_ckpt *ck, mom_ckpt_read_fn fn, void *ud, long long known,
                      int require_end)
{
    unsigned char head[HEADER_SIZE];
    size_t got;
    int rc = read_some(ck, fn, ud, head, HEADER_SIZE, &got, 0);
    if (rc != MOM_OK)
        return rc;
    if ((rc = check_preamble(head, got, &ck->base)) != MOM_OK)
        return rc;
    if (got < HEADER_SIZE)
        return fail_at(&ck->base, MOM_E_FORMAT, "header", got,
                       "truncated: the input ends inside the %u-byte header", HEADER_SIZE);
    uint64_t file_size = get_u64(head + 16);
    if (known >= 0 && file_size != (unsigned long long)known)
        return fail_at(&ck->base, MOM_E_FORMAT, "header", 16,
                       "the header gives a size of %llu bytes but the file has %lld (%s)",
                       (unsigned long long)file_size, known,
                       file_size > (unsigned long long)known ? "truncated"
                                                             : "trailing data or damaged header");
    if (file_size < HEADER_SIZE)
        return fail_at(&ck->base, MOM_E_FORMAT, "header", 16,
                       "the header gives a size of %llu bytes, less than the header itself",
                       (unsigned long long)file_size);
    if (file_size > (uint64_t)PTRDIFF_MAX)
        return fail_at(&ck->base, MOM_E_FORMAT, "header", 16,
                       "the header gives a size of %llu bytes, more than this machine can hold",
                       (unsigned long long)file_size);
    const size_t total = (size_t)file_size;
    /* Grow with the data actually delivered (a regular file's size is known and checked). */
    size_t cap = known >= 0 ? total : (total < STREAM_START ? total : STREAM_START);
    unsigned char *buf = mom__malloc(&ck->base.alloc, cap);
    if (buf == NULL)
        return mom__fail(&ck->base, MOM_E_NOMEM, "cannot allocate %zu bytes for the image", cap);
    memcpy(buf, head, HEADER_SIZE);
    size_t pos = HEADER_SIZE;
    while (pos < total) {
        if (pos == cap) {
            size_t ncap = cap > total / 2 ? total : 2 * cap;
            unsigned char *nb = mom__realloc(&ck->base.alloc, buf, ncap);
            if (nb == NULL) {
                mom__free(&ck->base.alloc, buf);
                return mom__fail(&ck->base, MOM_E_NOMEM,
                                 "cannot allocate %zu bytes for the image", ncap);
            }
            buf = nb;
            cap = ncap;
        }
        rc = read_some(ck, fn, ud, buf + pos, cap - pos, &got, pos);
        if (rc != MOM_OK) {
            mom__free(&ck->base.alloc, buf);
            return rc;
        }
        pos += got;
        if (pos < cap) {
            mom__free(&ck->base.alloc, buf);
            return fail_at(&ck->base, MOM_E_FORMAT, "header", 16,
                           "truncated: the input ends at offset %zu but the header gives %zu "
                           "bytes",
                           pos, total);
        }
    }
    if (require_end) {
        unsigned char extra;
        rc = read_some(ck, fn, ud, &extra, 1, &got, total);
        if (rc == MOM_OK && got != 0)
            rc = fail_at(&ck->base, MOM_E_FORMAT, "header", 16,
                         "the input goes on after the %zu bytes the header gives", total);
        if (rc != MOM_OK) {
            mom__free(&ck->base.alloc, buf);
            return rc;
        }
    }
    ck_index ix;
    rc = parse_image(&ix, buf, total, &ck->base, &ck->base.alloc, 1);
    if (rc != MOM_OK) {
        mom__free(&ck->base.alloc, buf);
        return rc;
    }
    adopt(ck, buf, total, cap, &ix);
    return MOM_OK;
}

int mom_ckpt_load_stream(mom_ckpt *ck, mom_ckpt_read_fn read, void *user_data)
{
    ENTER(ck);
    if (read == NULL)
        return mom__fail(&ck->base, MOM_E_INVALID, "the read callback is NULL");
    return read_image(ck, read, user_data, -1, 0);
}

/* ---- files (POSIX) --------------------------------------------------------------------------- */

#if !defined(_WIN32)

/* The file functions are no cancellation points (ckpt.h): the calling thread's cancelability is
 * off while they run, and put back as the caller had it before they return. */
#if defined(MOM_HAVE_PTHREAD)
static int cancel_block(void)
{
    int old = PTHREAD_CANCEL_ENABLE;
    (void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old); /* fails only for a bad state */
    return old;
}

static void cancel_restore(int old)
{
    int ignored;
    (void)pthread_setcancelstate(old, &ignored);
}
#else
static int cancel_block(void) { return 0; }
static void cancel_restore(int old) { (void)old; }
#endif

/* strerror_r() is POSIX's (returns 0 or an error number, fills buf) unless the C library's GNU
 * variant is in effect (returns the text, which may be a static string and not buf): a build
 * that defines _GNU_SOURCE gets the latter from glibc. The result's type picks the reader. */
static void strerror_posix(int r, char *buf, size_t n, int e)
{
    if (r != 0)
        snprintf(buf, n, "error %d", e);
}

static void strerror_gnu(const char *text, char *buf, size_t n, int e)
{
    if (text == NULL)
        snprintf(buf, n, "error %d", e);
    else if (text != buf)
        snprintf(buf, n, "%s", text);
}

static void sys_error(char *buf, size_t n, int e)
{
    _Generic(strerror_r(e, buf, n), char *: strerror_gnu, default: strerror_posix)(
        strerror_r(e, buf, n), buf, n, e);
}

typedef struct fd_source {
    int fd;
    int err; /* errno of a failed read */
} fd_source;

static int fd_read(void *buf, size_t size, size_t *got, void *user_data)
{
    fd_source *src = user_data;
    *got = 0;
    while (*got < size) {
        size_t want = size - *got > ((size_t)1 << 30) ? ((size_t)1 << 30) : size - *got;
        ssize_t k = read(src->fd, (unsigned char *)buf + *got, want);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            src->err = errno;
            return -1;
        }
        if (k == 0)
            break;
        *got += (size_t)k;
    }
    return 0;
}

static int load_file(mom_ckpt *ck, const char *path)
{
    ENTER(ck);
    if (path == NULL || path[0] == '\0')
        return mom__fail(&ck->base, MOM_E_INVALID, "path is %s", path ? "empty" : "NULL");
    char why[128];
    fd_source src = {open(path, O_RDONLY | O_CLOEXEC), 0};
    if (src.fd < 0) {
        sys_error(why, sizeof why, errno);
        return mom__fail(&ck->base, MOM_E_IO, "cannot open %s: %s", path, why);
    }
    struct stat st;
    if (fstat(src.fd, &st) != 0) {
        sys_error(why, sizeof why, errno);
        close(src.fd);
        return mom__fail(&ck->base, MOM_E_IO, "cannot stat %s: %s", path, why);
    }
    if (S_ISDIR(st.st_mode)) {
        close(src.fd);
        return mom__fail(&ck->base, MOM_E_IO, "%s is a directory", path);
    }
    long long known = S_ISREG(st.st_mode) ? (long long)st.st_size : -1;
    int rc = read_image(ck, fd_read, &src, known, 1);
    close(src.fd);
    if (rc == MOM_E_IO && src.err != 0) {
        sys_error(why, sizeof why, src.err);
        return mom__fail(&ck->base, MOM_E_IO, "cannot read %s: %s", path, why);
    }
    if (rc == MOM_E_FORMAT || rc == MOM_E_UNSUPPORTED) {
        /* Name the file too. */
        char msg[MOM_ERRMSG_SIZE];
        memcpy(msg, ck->base.errmsg, sizeof msg);
        mom__fail(&ck->base, rc, "%s: %s", path, msg);
    }
    return rc;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        size_t want = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t k = write(fd, p, want);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (k == 0)
            return EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* A name for the temporary file that differs between processes, handles and attempts (O_EXCL
 * catches the rare collision). */
static uint64_t temp_tag(const mom_ckpt *ck, unsigned attempt)
{
    uint64_t x = (uint64_t)getpid() * UINT64_C(0x9E3779B97F4A7C15);
    x ^= (uint64_t)time(NULL) + ((uint64_t)clock() << 20);
    x ^= (uint64_t)(uintptr_t)ck + (uint64_t)attempt * UINT64_C(0xBF58476D1CE4E5B9);
    x ^= x >> 30;
    x *= UINT64_C(0xBF58476D1CE4E5B9);
    x ^= x >> 27;
    x *= UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

static int save_file(mom_ckpt *ck, const char *path)
{
    ENTER(ck);
    if (path == NULL || path[0] == '\0')
        return mom__fail(&ck->base, MOM_E_INVALID, "path is %s", path ? "empty" : "NULL");
    if (ck->size == 0)
        return mom__fail(&ck->base, MOM_E_STATE, "the handle holds no image (capture or load first)");
    char why[128];
    struct stat st;
    /* the new file replaces the old by rename(): fine for a regular file (or a symbolic link,
     * which is replaced itself), not for a directory, a device, a FIFO or a socket */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return mom__fail(&ck->base, MOM_E_IO, "cannot save to %s: it is %s", path,
                         S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");

    /* The temporary file, in the same directory: ".NAME.TAG.tmp" with NAME cut to 200 bytes,
     * so that it stays within NAME_MAX (255) whatever the target's name. */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const size_t dir_len = (size_t)(base - path), base_len = strlen(base),
                 keep = base_len < 200 ? base_len : 200, tmp_size = dir_len + keep + 32;
    char *tmp = mom__malloc(&ck->base.alloc, tmp_size);
    if (tmp == NULL)
        return mom__fail(&ck->base, MOM_E_NOMEM, "cannot allocate the temporary file name");
    int fd = -1, e = 0;
    for (unsigned attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(tmp, tmp_size, "%.*s.%.*s.%016llx.tmp", (int)dir_len, path, (int)keep, base,
                 (unsigned long long)temp_tag(ck, attempt));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        e = fd < 0 ? errno : 0;
        if (fd < 0 && e != EEXIST)
            break;
    }
    if (fd < 0) {
        sys_error(why, sizeof why, e);
        mom__free(&ck->base.alloc, tmp);
        return mom__fail(&ck->base, MOM_E_IO, "cannot create a temporary file (%s) next to %s",
                         why, path);
    }
    const char *step = "write";
    e = write_all(fd, ck->img, ck->size);
    if (e == 0) {
        step = "sync";
        while (fsync(fd) != 0) {
            if (errno != EINTR) {
                e = errno;
                break;
            }
        }
    }
    if (close(fd) != 0 && e == 0) {
        e = errno;
        step = "close";
    }
    if (e == 0 && rename(tmp, path) != 0) {
        e = errno;
        step = "rename over";
    }
    if (e != 0) {
        unlink(tmp);
        mom__free(&ck->base.alloc, tmp);
        sys_error(why, sizeof why, e);
        return mom__fail(&ck->base, MOM_E_IO,
                         "cannot %s (%s) %s; the previous file is intact", step, why, path);
    }

    /* Make the rename durable: sync the directory (some file systems cannot, which is fine). */
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        memcpy(tmp, ".", 2);
    } else {
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        memcpy(tmp, path, dl);
        tmp[dl] = '\0';
    }
    int dfd = open(tmp, O_RDONLY | O_CLOEXEC);
    e = dfd < 0 ? errno : 0;
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP && errno != EROFS &&
            errno != EBADF)
            e = errno;
        close(dfd);
    }
    if (e != 0) {
        sys_error(why, sizeof why, e);
        int st2 = mom__fail(&ck->base, MOM_E_IO,
                            "the directory could not be synced (%s), though %s was written: %s",
                            why, path, tmp);
        mom__free(&ck->base.alloc, tmp);
        return st2;
    }
    mom__free(&ck->base.alloc, tmp);
    return MOM_OK;
}

int mom_ckpt_load_file(mom_ckpt *ck, const char *path)
{
    const int old = cancel_block();
    const int rc = load_file(ck, path);
    cancel_restore(old);
    return rc;
}

int mom_ckpt_save_file(mom_ckpt *ck, const char *path)
{
    const int old = cancel_block();
    const int rc = save_file(ck, path);
    cancel_restore(old);
    return rc;
}

#else /* _WIN32 */

int mom_ckpt_load_file(mom_ckpt *ck, const char *path)
{
    ENTER(ck);
    (void)path;
    return mom__fail(&ck->base, MOM_E_UNSUPPORTED,
                     "file functions need POSIX in this version; use mom_ckpt_load_stream()");
}

int mom_ckpt_save_file(mom_ckpt *ck, const char *path)
{
    ENTER(ck);
    (void)path;
    return mom__fail(&ck->base, MOM_E_UNSUPPORTED,
                     "file functions need POSIX in this version; use mom_ckpt_save_stream()");
}

#endif

/* ---- restoring ------------------------------------------------------------------------------- */

/* Build a schedule from a checked node (and the nodes it wraps). */
static int build_sched(mom_sched **out, const unsigned char *img, size_t at, const mom_allocator *a)
{
    size_t wraps[MAX_WRAP_DEPTH + 1];
    int nw = 0;
    *out = NULL;
    while (get_u32(img + at) == MOM_SCHED_FINAL_PHASE && nw <= MAX_WRAP_DEPTH) {
        wraps[nw++] = at;
        at += 4 + 8 + 8 + 8 + 4;
    }
    const unsigned char *p = img + at + 4;
    mom_sched *s = NULL;
    int rc;
    switch (get_u32(img + at)) {
    case MOM_SCHED_CONST:
        rc = mom_sched_create_const(&s, get_f64(p), a);
        break;
    case MOM_SCHED_PAPER_MOMENTUM:
        rc = mom_sched_create_paper_momentum(&s, get_f64(p), get_u64(p + 8), a);
        break;
    case MOM_SCHED_PIECEWISE: {
        size_t n = (size_t)get_u64(p);
        uint64_t *starts = mom__calloc(a, n, sizeof *starts);
        double *values = mom__calloc(a, n, sizeof *values);
        rc = MOM_E_NOMEM;
        if (starts != NULL && values != NULL) {
            for (size_t i = 0; i < n; i++) {
                starts[i] = get_u64(p + 8 + 16 * i);
                values[i] = get_f64(p + 16 + 16 * i);
            }
            rc = mom_sched_create_piecewise(&s, n, starts, values, a);
        }
        mom__free(a, starts);
        mom__free(a, values);
        break;
    }
    case MOM_SCHED_ANNEAL:
        rc = mom_sched_create_anneal(&s, get_f64(p), get_f64(p + 8), get_f64(p + 16), a);
        break;
    default:
        rc = MOM_E_INTERNAL;
        break;
    }
    while (rc == MOM_OK && nw > 0) {
        const unsigned char *q = img + wraps[--nw] + 4;
        mom_sched *w = NULL;
        rc = mom_sched_create_final_phase(&w, s, get_u64(q), get_u64(q + 8), get_f64(q + 16),
                                          (int)get_u32(q + 24), a);
        mom_sched_destroy(s); /* the wrapper holds its own reference */
        s = w;
    }
    if (rc != MOM_OK) {
        mom_sched_destroy(s);
        return rc;
    }
    *out = s;
    return MOM_OK;
}

/* Compare the network section with an existing network; MOM_E_FORMAT naming the first field that
 * differs. */
static int match_net(mom_ckpt *ck, const mom_net *net)
{
    const unsigned char *b = ck->img;
    size_t at = ck->ix.off[SEC_NETW];
    const char *where = sec_where[SEC_NETW];
    mom__base *err = &ck->base;
    uint32_t kind = get_u32(b + at), output = get_u32(b + at + 4), flags = get_u32(b + at + 8);
    if (kind != (uint32_t)net->kind)
        return fail_at(err, MOM_E_FORMAT, where, at,
                       "the checkpoint holds a %s network, the handle is a %s network",
                       net_kind_name(kind), net_kind_name((uint64_t)net->kind));
    if (output != (uint32_t)net->output)
        return fail_at(err, MOM_E_FORMAT, where, at + 4,
                       "the checkpoint's network has output %s, the handle's %s",
                       output_name(output), output_name((uint64_t)net->output));
    if (flags != net_flags(net))
        return fail_at(err, MOM_E_FORMAT, where, at + 8,
                       "the checkpoint's network %s h0, the handle's %s",
                       flags ? "learns" : "does not learn", net_flags(net) ? "does" : "does not");
    at += 16;
    uint64_t n_sizes = get_u64(b + at);
    if (n_sizes != net->n_layers)
        return fail_at(err, MOM_E_FORMAT, where, at,
                       "the checkpoint's network has %llu unit layers, the handle's %zu",
                       (unsigned long long)n_sizes, net->n_layers);
    at += 8;
    for (size_t i = 0; i < net->n_layers; i++, at += 8) {
        uint64_t s = get_u64(b + at);
        if (s != net->layer_size[i])
            return fail_at(err, MOM_E_FORMAT, where, at,
                           "unit layer %zu has %llu units in the checkpoint, %zu in the network",
                           i, (unsigned long long)s, net->layer_size[i]);
    }
    at += 8; /* n_acts, equal to n_sizes - 2 */
    for (size_t i = 1; i + 1 < net->n_layers; i++, at += 4) {
        uint32_t act = get_u32(b + at);
        if (act != (uint32_t)net->layer_act[i])
            return fail_at(err, MOM_E_FORMAT, where, at,
                           "unit layer %zu is %s in the checkpoint, %s in the network", i,
                           act_name(act), act_name((uint64_t)net->layer_act[i]));
    }
    return MOM_OK;
}

/* Offset of the parameter vector in NETW (the section is checked). */
static size_t net_params_at(const mom_ckpt *ck)
{
    size_t at = ck->ix.off[SEC_NETW] + 16;
    uint64_t n_sizes = get_u64(ck->img + at);
    at += 8 + 8 * (size_t)n_sizes;
    uint64_t n_acts = get_u64(ck->img + at);
    return at + 8 + 4 * (size_t)n_acts + 8;
}

static void commit_net(mom_net *net, const mom_ckpt *ck)
{
    const uint32_t options = get_u32(ck->img + ck->ix.off[SEC_NETW] + 12);
    /* through the setter, which owns what each option implies; finite values cannot fail */
    int st = mom_net_set(net, MOM_NET_CHECK_FINITE, (options & 1u) ? 1.0 : 0.0);
    st |= mom_net_set(net, MOM_NET_FLUSH_SUBNORMALS, (options & 2u) ? 0.0 : 1.0);
    (void)st;
    get_f32s(net->params, ck->img + net_params_at(ck), net->n_params);
}

static int create_net(mom_net **out, mom_ckpt *ck)
{
    const unsigned char *b = ck->img;
    const mom_allocator *a = &ck->base.alloc;
    size_t at = ck->ix.off[SEC_NETW];
    int kind = (int)get_u32(b + at), output = (int)get_u32(b + at + 4);
    uint32_t flags = get_u32(b + at + 8);
    size_t n_sizes = (size_t)get_u64(b + at + 16);
    const unsigned char *sz = b + at + 24;
    const unsigned char *acts = sz + 8 * n_sizes + 8;
    int rc;
    *out = NULL;
    if (kind == MOM_NET_RECURRENT) {
        rc = mom_net_create_rnn(out, (size_t)get_u64(sz), (size_t)get_u64(sz + 8),
                                (size_t)get_u64(sz + 16), (int)get_u32(acts), output, flags, a);
    } else {
        size_t *sizes = mom__calloc(a, n_sizes, sizeof *sizes);
        int *act = mom__calloc(a, n_sizes, sizeof *act); /* n_sizes - 2 used; never 0 bytes */
        rc = MOM_E_NOMEM;
        if (sizes != NULL && act != NULL) {
            for (size_t i = 0; i < n_sizes; i++)
                sizes[i] = (size_t)get_u64(sz + 8 * i);
            for (size_t i = 0; i + 2 < n_sizes; i++)
                act[i] = (int)get_u32(acts + 4 * i);
            rc = mom_net_create_ff(out, n_sizes - 1, sizes, act, output, a);
        }
        mom__free(a, sizes);
        mom__free(a, act);
    }
    if (rc == MOM_E_NOMEM)
        return mom__fail(&ck->base, rc, "cannot allocate the network");
    if (rc != MOM_OK)
        return fail_at(&ck->base, MOM_E_FORMAT, sec_where[SEC_NETW], at,
                       "the network cannot be created (%s)", mom_strerror(rc));
    commit_net(*out, ck);
    return MOM_OK;
}

/* What an optimizer restore needs, prepared before anything is changed. */
typedef struct optim_prep {
    mom_sched *lr, *momentum;
} optim_prep;

static int prepare_optim(optim_prep *pp, mom_ckpt *ck, const mom_allocator *a)
{
    pp->lr = pp->momentum = NULL;
    int rc = build_sched(&pp->lr, ck->img, ck->ix.sched_at[ROLE_LR], a);
    if (rc == MOM_OK)
        rc = build_sched(&pp->momentum, ck->img, ck->ix.sched_at[ROLE_MOMENTUM], a);
    if (rc != MOM_OK) {
        mom_sched_destroy(pp->lr);
        mom_sched_destroy(pp->momentum);
        pp->lr = pp->momentum = NULL;
        return rc == MOM_E_NOMEM ? mom__fail(&ck->base, rc, "cannot allocate the schedules")
                                 : mom__fail(&ck->base, rc, "cannot rebuild the schedules");
    }
    return MOM_OK;
}

/* Apply the options of OPTM with mom_optim_set(), and the default to each option of the kind
 * that the file does not list (as mom_ckpt_restore_new() gets them), in the order of the kind's
 * keys; on failure put back the values it had. */
static int apply_options(mom_ckpt *ck, mom_optim *opt)
{
    const unsigned char *b = ck->img;
    size_t at = ck->ix.off[SEC_OPTM];
    uint32_t n_opts = get_u32(b + at + 4);
    const unsigned char *o = b + at + 24;
    const int *keys = NULL;
    size_t nk = 0;
    if (!kind_keys(opt->kind, &keys, &nk) || nk > MAX_KEYS)
        return mom__fail(&ck->base, MOM_E_INTERNAL, "no option keys for optimizer kind %d",
                         opt->kind);
    /* the defaults: those of a new optimizer of the kind */
    mom_optim *fresh = NULL;
    int rc = mom_optim_create(&fresh, opt->kind, 1, &opt->base.alloc);
    if (rc != MOM_OK)
        return mom__fail(&ck->base, rc, "cannot create an optimizer to read the defaults from");
    double want[MAX_KEYS], old[MAX_KEYS];
    for (size_t k = 0; k < nk && rc == MOM_OK; k++) {
        rc = mom_optim_get(&want[k], fresh, keys[k]);
        for (uint32_t i = 0; i < n_opts; i++)
            if ((int)get_u32(o + OPTION_SIZE * (size_t)i) == keys[k])
                want[k] = get_f64(o + OPTION_SIZE * (size_t)i + 4);
    }
    mom_optim_destroy(fresh);
    if (rc != MOM_OK)
        return mom__fail(&ck->base, MOM_E_INTERNAL, "cannot read the default options");
    size_t k;
    for (k = 0; k < nk && rc == MOM_OK; k++) {
        rc = mom_optim_get(&old[k], opt, keys[k]) != MOM_OK ? MOM_E_INTERNAL
                                                            : mom_optim_set(opt, keys[k], want[k]);
    }
    if (rc != MOM_OK) {
        char msg[MOM_ERRMSG_SIZE];
        memcpy(msg, mom_optim_errmsg(opt), sizeof msg);
        for (size_t j = 0; j + 1 < k; j++) {
            int st = mom_optim_set(opt, keys[j], old[j]);
            (void)st; /* lowering back to a held value does not allocate */
        }
        return mom__fail(&ck->base, rc, "cannot set the optimizer's options: %s", msg);
    }
    return MOM_OK;
}

static void commit_optim(mom_optim *opt, optim_prep *pp, const mom_ckpt *ck)
{
    const unsigned char *b = ck->img + ck->ix.off[SEC_OPTM];
    uint32_t n_opts = get_u32(b + 4);
    mom__sched_release(opt->lr);
    mom__sched_release(opt->momentum);
    opt->lr = pp->lr; /* the reference built for it */
    opt->momentum = pp->momentum;
    pp->lr = pp->momentum = NULL;
    opt->t = get_u64(b + 16);
    get_f32s(opt->velocity, b + 24 + OPTION_SIZE * (size_t)n_opts, opt->n);
    opt->la = 0; /* the true-theta form unless the file says otherwise */
    opt->la_mu = 0.0f;
    opt->la_rebase = 0;
    opt->la_vmax_ok = 0; /* measured by the next step */
    for (uint32_t i = 0; i < n_opts; i++) {
        const unsigned char *o = b + 24 + OPTION_SIZE * (size_t)i;
        if (get_u32(o) == MOM_OPTIM_LOOKAHEAD && opt->kind == MOM_OPTIM_NAG) {
            opt->la = 1;
            opt->la_mu = (float)get_f64(o + 4);
        }
    }
    if (ck->ix.present[SEC_HFST])
        hf_commit(opt, ck->img, &ck->ix);
}

static void commit_rngs(mom_rng *const *rngs, size_t n, const mom_ckpt *ck)
{
    const unsigned char *b = ck->img + ck->ix.off[SEC_RNGS] + 8;
    for (size_t i = 0; i < n; i++) {
        uint64_t st[MOM_RNG_STATE_WORDS];
        for (int k = 0; k < MOM_RNG_STATE_WORDS; k++)
            st[k] = get_u64(b + RNG_SIZE * i + 8 * (size_t)k);
        int rc = mom_rng_set_state(rngs[i], st); /* checked at load: cannot fail */
        (void)rc;
    }
}

static int check_request(mom_ckpt *ck, int want_net, int want_opt, size_t n_rngs)
{
    if (ck->size == 0)
        return mom__fail(&ck->base, MOM_E_STATE, "the handle holds no image (load or capture first)");
    if (want_net && !ck->ix.present[SEC_NETW])
        return fail_at(&ck->base, MOM_E_FORMAT, "section table", HEADER_SIZE,
                       "a network was asked for but the checkpoint holds none (no NETW section)");
    if (want_opt && !ck->ix.present[SEC_OPTM])
        return fail_at(&ck->base, MOM_E_FORMAT, "section table", HEADER_SIZE,
                       "an optimizer was asked for but the checkpoint holds none (a network "
                       "file: no OPTM section)");
    if (n_rngs > ck->ix.n_rngs)
        return fail_at(&ck->base, MOM_E_FORMAT,
                       ck->ix.present[SEC_RNGS] ? sec_where[SEC_RNGS] : "section table",
                       ck->ix.present[SEC_RNGS] ? ck->ix.off[SEC_RNGS] : HEADER_SIZE,
                       "%zu stream states were asked for but the checkpoint holds %zu", n_rngs,
                       ck->ix.n_rngs);
    return MOM_OK;
}

int mom_ckpt_restore_new(mom_net **net, mom_optim **opt, mom_rng **rngs, size_t n_rngs,
                         mom_ckpt *ck)
{
    if (net != NULL)
        *net = NULL;
    if (opt != NULL)
        *opt = NULL;
    if (rngs != NULL)
        for (size_t i = 0; i < n_rngs; i++)
            rngs[i] = NULL;
    ENTER(ck);
    if (rngs == NULL && n_rngs > 0)
        return mom__fail(&ck->base, MOM_E_INVALID, "rngs is NULL but n_rngs is %zu", n_rngs);
    int rc = check_request(ck, net != NULL, opt != NULL, n_rngs);
    if (rc != MOM_OK)
        return rc;
    const mom_allocator *a = &ck->base.alloc;
    mom_net *n = NULL;
    mom_optim *o = NULL;
    optim_prep pp = {NULL, NULL};
    if (net != NULL)
        rc = create_net(&n, ck);
    if (rc == MOM_OK && opt != NULL) {
        const unsigned char *b = ck->img + ck->ix.off[SEC_OPTM];
        rc = mom_optim_create(&o, (int)get_u32(b), (size_t)get_u64(b + 8), a);
        if (rc != MOM_OK)
            rc = mom__fail(&ck->base, rc, "cannot create the %s optimizer (%s)",
                           optim_kind_name(get_u32(b)), mom_strerror(rc));
        if (rc == MOM_OK)
            rc = prepare_optim(&pp, ck, a);
        if (rc == MOM_OK)
            rc = apply_options(ck, o);
        if (rc == MOM_OK)
            commit_optim(o, &pp, ck);
    }
    size_t made = 0;
    for (; rc == MOM_OK && made < n_rngs; made++) {
        rc = mom_rng_create(&rngs[made], 0, 0, a);
        if (rc != MOM_OK)
            rc = mom__fail(&ck->base, rc, "cannot create stream %zu", made);
    }
    if (rc != MOM_OK) {
        mom_sched_destroy(pp.lr); /* NULL once the optimizer holds them */
        mom_sched_destroy(pp.momentum);
        mom_net_destroy(n);
        mom_optim_destroy(o);
        for (size_t i = 0; i < n_rngs; i++) {
            mom_rng_destroy(rngs[i]);
            rngs[i] = NULL;
        }
        return rc;
    }
    commit_rngs(rngs, n_rngs, ck);
    if (net != NULL)
        *net = n;
    if (opt != NULL)
        *opt = o;
    return MOM_OK;
}

int mom_ckpt_restore(mom_ckpt *ck, mom_net *net, mom_optim *opt, mom_rng *const *rngs,
                     size_t n_rngs)
{
    ENTER(ck);
    if (rngs == NULL && n_rngs > 0)
        return mom__fail(&ck->base, MOM_E_INVALID, "rngs is NULL but n_rngs is %zu", n_rngs);
    for (size_t i = 0; i < n_rngs; i++)
        if (rngs[i] == NULL)
            return mom__fail(&ck->base, MOM_E_INVALID, "rngs[%zu] is NULL", i);
    int rc = check_request(ck, net != NULL, opt != NULL, n_rngs);
    if (rc != MOM_OK)
        return rc;
    if (net != NULL && (rc = match_net(ck, net)) != MOM_OK)
        return rc;
    if (opt != NULL) {
        const size_t at = ck->ix.off[SEC_OPTM];
        uint32_t kind = get_u32(ck->img + at);
        uint64_t n = get_u64(ck->img + at + 8);
        if (opt->begun)
            return mom__fail(&ck->base, MOM_E_STATE,
                             "the optimizer has a step begun with mom_optim_begin(); restore "
                             "between steps");
        if (kind != (uint32_t)opt->kind)
            return fail_at(&ck->base, MOM_E_FORMAT, sec_where[SEC_OPTM], at,
                           "the checkpoint holds a %s optimizer, the handle is %s",
                           optim_kind_name(kind), optim_kind_name((uint64_t)opt->kind));
        if (n != opt->n)
            return fail_at(&ck->base, MOM_E_FORMAT, sec_where[SEC_OPTM], at + 8,
                           "the checkpoint's optimizer has %llu parameters, the handle's %zu",
                           (unsigned long long)n, opt->n);
        optim_prep pp;
        if ((rc = prepare_optim(&pp, ck, &opt->base.alloc)) != MOM_OK)
            return rc;
        if ((rc = apply_options(ck, opt)) != MOM_OK) {
            mom_sched_destroy(pp.lr);
            mom_sched_destroy(pp.momentum);
            return rc;
        }
        /* Nothing can fail from here on. */
        commit_optim(opt, &pp, ck);
        mom__clear(&opt->base);
    }
    if (net != NULL)
        commit_net(net, ck);
    commit_rngs(rngs, n_rngs, ck);
    return MOM_OK;
}
