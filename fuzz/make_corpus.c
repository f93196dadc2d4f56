/* Generator of the checkpoint seed corpus (fuzz/corpus/): valid files of each kind (network only,
 * SGD, CM and NAG training states with every schedule kind, an optimizer alone, user data, a newer
 * minor version) and crafted bad ones (truncated, damaged, absurd sizes behind valid CRCs, a newer
 * major version).
 *
 * Everything is bit-exact on every machine: parameters come from the Gaussian initializer, and the
 * optimizers take their steps through mom_optim_begin()/mom_optim_end() with gradients drawn from
 * a random stream (no BLAS involved). So the committed files double as golden files: a change of
 * the bytes the library writes shows up as a failure of the corpus-golden test.
 *
 * Usage: make_corpus DIR          write the corpus into DIR (fuzz/make-corpus.sh)
 *        make_corpus --check DIR  compare with the files in DIR; exit 1 on any difference */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mominit/mominit.h"
#include "craft.h"

#define MAX_FILES 96

typedef struct blob {
    char name[64];
    unsigned char *data;
    size_t size;
} blob;

static blob files[MAX_FILES];
static size_t n_files;

static void die(const char *what, int rc)
{
    fprintf(stderr, "make_corpus: %s: %s\n", what, mom_status_name(rc));
    exit(2);
}

#define OK(expr)                                                                               \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (rc_ != MOM_OK)                                                                     \
            die(#expr, rc_);                                                                   \
    } while (0)

static blob *add(const char *name, const unsigned char *data, size_t size)
{
    if (n_files == MAX_FILES)
        die("too many files", MOM_E_INTERNAL);
    blob *b = &files[n_files++];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->data = malloc(size ? size : 1);
    if (b->data == NULL)
        die("malloc", MOM_E_NOMEM);
    if (size)
        memcpy(b->data, data, size);
    b->size = size;
    return b;
}

static blob *find(const char *name)
{
    for (size_t i = 0; i < n_files; i++)
        if (strcmp(files[i].name, name) == 0)
            return &files[i];
    die(name, MOM_E_INTERNAL);
    return NULL;
}

/* Capture, with user data if user_size > 0, and add. */
static void add_capture_user(const char *name, const mom_net *net, const mom_optim *opt,
                             mom_rng **rngs, size_t n, const void *user, size_t user_size)
{
    mom_ckpt *ck;
    OK(mom_ckpt_create(&ck, NULL));
    OK(mom_ckpt_set_user_data(ck, user, user_size));
    OK(mom_ckpt_capture(ck, net, opt, (const mom_rng *const *)rngs, n));
    size_t size = mom_ckpt_size(ck);
    unsigned char *b = malloc(size);
    if (b == NULL)
        die("malloc", MOM_E_NOMEM);
    OK(mom_ckpt_save_buffer(b, size, ck));
    add(name, b, size);
    free(b);
    mom_ckpt_destroy(ck);
}

static void add_capture(const char *name, const mom_net *net, const mom_optim *opt,
                        mom_rng **rngs, size_t n)
{
    add_capture_user(name, net, opt, rngs, n, NULL, 0);
}

/* A copy of `src` with `remove` bytes at `at` replaced by `ins` (n_ins bytes). Sections containing
 * or following `at` are resized or moved, and the file size updated; CRCs are not fixed. */
static blob *splice(const char *name, const blob *src, size_t at, size_t remove,
                    const unsigned char *ins, size_t n_ins)
{
    size_t size = src->size - remove + n_ins;
    unsigned char *b = malloc(size);
    if (b == NULL)
        die("malloc", MOM_E_NOMEM);
    memcpy(b, src->data, at);
    memcpy(b + at, ins, n_ins);
    memcpy(b + at + n_ins, src->data + at + remove, src->size - at - remove);
    uint32_t n = craft_rd32(b + 24);
    for (uint32_t i = 0; i < n; i++) {
        unsigned char *e = b + 32 + 24 * i;
        uint64_t off = craft_rd64(e + 4), len = craft_rd64(e + 12);
        if (off > at)
            craft_wr64(e + 4, off - remove + n_ins);
        else if (off + len > at)
            craft_wr64(e + 12, len - remove + n_ins);
    }
    craft_wr64(b + 16, size);
    blob *r = add(name, b, size);
    free(b);
    return r;
}

/* A copy with one field overwritten (4 or 8 bytes) and the CRCs fixed. */
static void patch(const char *name, const blob *src, size_t at, int width, uint64_t v)
{
    blob *b = add(name, src->data, src->size);
    if (width == 4)
        craft_wr32(b->data + at, (uint32_t)v);
    else
        craft_wr64(b->data + at, v);
    craft_fix_crcs(b->data, b->size);
}

static size_t sect(const blob *b, const char *tag, size_t *len)
{
    size_t at = craft_find(b->data, b->size, tag, len);
    if (at == 0)
        die(tag, MOM_E_INTERNAL);
    return at;
}

static mom_net *tiny_net(int kind, uint64_t seed)
{
    mom_net *net;
    if (kind == MOM_NET_FEEDFORWARD) {
        const size_t sizes[3] = {3, 4, 2};
        const int act[1] = {MOM_ACT_TANH};
        OK(mom_net_create_ff(&net, 2, sizes, act, MOM_OUT_SOFTMAX_XENT, NULL));
    } else {
        OK(mom_net_create_rnn(&net, 2, 3, 2, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED,
                              MOM_RNN_LEARN_H0, NULL));
    }
    mom_init *init;
    mom_rng *rng;
    OK(mom_init_create(&init, MOM_INIT_GAUSSIAN, NULL));
    OK(mom_init_set(init, MOM_INIT_OPT_SCALE, 0.5));
    OK(mom_init_set(init, MOM_INIT_OPT_BIAS, 0.125));
    OK(mom_rng_create(&rng, seed, 3, NULL));
    OK(mom_init_apply(init, net, rng));
    mom_rng_destroy(rng);
    mom_init_destroy(init);
    return net;
}

/* k begin/end steps with gradients drawn from `g` (IEEE arithmetic only: bit-exact). */
static void steps(mom_optim *opt, float *params, mom_rng *g, int k)
{
    size_t n = mom_optim_num_params(opt);
    float *grad = malloc(n * sizeof *grad);
    if (grad == NULL)
        die("malloc", MOM_E_NOMEM);
    for (int i = 0; i < k; i++) {
        const float *pt;
        OK(mom_optim_begin(&pt, opt, params));
        OK(mom_rng_fill_uniform(g, grad, n, -1.0, 1.0));
        OK(mom_optim_end(opt, params, 1.0, grad));
    }
    free(grad);
}

static void set_scheds(mom_optim *opt, mom_sched *lr, mom_sched *mu)
{
    OK(mom_optim_set_lr(opt, lr));
    OK(mom_optim_set_momentum(opt, mu));
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);
}

static void generate(void)
{
    mom_net *ff = tiny_net(MOM_NET_FEEDFORWARD, 1), *rnn = tiny_net(MOM_NET_RECURRENT, 2);
    mom_rng *r[2];
    OK(mom_rng_create(&r[0], 42, 1, NULL));
    OK(mom_rng_create(&r[1], 42, 2, NULL));
    (void)mom_rng_normal(r[1]); /* leaves a cached normal in the state */
    mom_sched *a, *b, *c;

    /* networks alone */
    add_capture("ok-net-ff.ckpt", ff, NULL, NULL, 0);
    add_capture("ok-net-rnn.ckpt", rnn, NULL, NULL, 0);

    /* SGD on the feedforward net: annealed learning rate */
    mom_optim *sgd;
    OK(mom_optim_create(&sgd, MOM_OPTIM_SGD, mom_net_num_params(ff), NULL));
    OK(mom_sched_create_anneal(&a, 0.1, 2.0, 1.0, NULL));
    OK(mom_sched_create_const(&b, 0.9, NULL));
    set_scheds(sgd, a, b);
    steps(sgd, mom_net_params(ff), r[0], 3);
    add_capture("ok-sgd-ff.ckpt", ff, sgd, r, 1);

    /* CM on the recurrent net: piecewise momentum, weight decay, two streams */
    mom_optim *cm;
    OK(mom_optim_create(&cm, MOM_OPTIM_CM, mom_net_num_params(rnn), NULL));
    const uint64_t starts[2] = {0, 2};
    const double values[2] = {0.5, 0.9};
    OK(mom_sched_create_const(&a, 0.05, NULL));
    OK(mom_sched_create_piecewise(&b, 2, starts, values, NULL));
    set_scheds(cm, a, b);
    OK(mom_optim_set(cm, MOM_OPTIM_WEIGHT_DECAY, 1e-4));
    steps(cm, mom_net_params(rnn), r[0], 3);
    add_capture("ok-cm-rnn.ckpt", rnn, cm, r, 2);

    /* NAG on the feedforward net: the paper's momentum in a final-phase wrapper, clipping */
    mom_optim *nag;
    OK(mom_optim_create(&nag, MOM_OPTIM_NAG, mom_net_num_params(ff), NULL));
    const uint64_t lr_starts[3] = {0, 2, 5};
    const double lr_values[3] = {0.1, 0.05, 0.01};
    OK(mom_sched_create_piecewise(&a, 3, lr_starts, lr_values, NULL));
    OK(mom_sched_create_paper_momentum(&c, 0.99, 2, NULL));
    OK(mom_sched_create_final_phase(&b, c, 10, 3, 0.9, MOM_FINAL_MIN, NULL));
    mom_sched_destroy(c);
    set_scheds(nag, a, b);
    OK(mom_optim_set(nag, MOM_OPTIM_CLIP_NORM, 100.0));
    steps(nag, mom_net_params(ff), r[0], 4);
    add_capture("ok-nag-ff.ckpt", ff, nag, r, 1);
    /* the same with subnormal flushing off in both (format 1.1: an option bit and key 3) */
    OK(mom_net_set(ff, MOM_NET_FLUSH_SUBNORMALS, 0));
    OK(mom_optim_set(nag, MOM_OPTIM_FLUSH_SUBNORMALS, 0));
    add_capture("ok-flush-off.ckpt", ff, nag, r, 1);
    OK(mom_net_set(ff, MOM_NET_FLUSH_SUBNORMALS, 1));
    {
        /* NAG in the look-ahead form (format 1.3: key 4 holds the point's momentum), on a copy
         * of the network's parameters put back afterwards */
        const size_t np = mom_net_num_params(ff);
        float *keep = malloc(np * sizeof *keep);
        if (keep == NULL)
            die("malloc", MOM_E_NOMEM);
        memcpy(keep, mom_net_params(ff), np * sizeof *keep);
        mom_optim *la;
        OK(mom_optim_create(&la, MOM_OPTIM_NAG, np, NULL));
        OK(mom_sched_create_paper_momentum(&c, 0.99, 2, NULL));
        OK(mom_sched_create_const(&a, 0.05, NULL));
        set_scheds(la, a, c);
        OK(mom_optim_set_lookahead(la, mom_net_params(ff), 1));
        steps(la, mom_net_params(ff), r[0], 3);
        add_capture("ok-nag-lookahead.ckpt", ff, la, r, 1);
        mom_optim_destroy(la);
        memcpy(mom_net_params(ff), keep, np * sizeof *keep);
        free(keep);
    }

    /* NAG on the recurrent net: wrappers of wrappers (REPLACE around MIN), annealed rate */
    mom_optim *nag2;
    OK(mom_optim_create(&nag2, MOM_OPTIM_NAG, mom_net_num_params(rnn), NULL));
    mom_sched *d;
    OK(mom_sched_create_anneal(&c, 0.2, 1.0, 2.0, NULL));
    OK(mom_sched_create_final_phase(&a, c, 100, 10, 0.01, MOM_FINAL_REPLACE, NULL));
    mom_sched_destroy(c);
    OK(mom_sched_create_paper_momentum(&c, 0.995, 250, NULL));
    OK(mom_sched_create_final_phase(&d, c, 5000, 1000, 0.9, MOM_FINAL_MIN, NULL));
    OK(mom_sched_create_final_phase(&b, d, 6000, 10, 0.0, MOM_FINAL_REPLACE, NULL));
    mom_sched_destroy(c);
    mom_sched_destroy(d);
    set_scheds(nag2, a, b);
    steps(nag2, mom_net_params(rnn), r[1], 2);
    add_capture("ok-nag-rnn.ckpt", rnn, nag2, r, 2);

    /* an optimizer alone (a caller-driven model) */
    mom_optim *alone;
    float x[5] = {1, -2, 3, -4, 5};
    OK(mom_optim_create(&alone, MOM_OPTIM_CM, 5, NULL));
    steps(alone, x, r[0], 2);
    add_capture("ok-optim-only.ckpt", NULL, alone, r, 1);

    /* HF, before its first step (its steps go through BLAS, which is not bit-exact across
     * implementations): changed settings, a momentum-HF style CG decay, fixed step size */
    mom_optim *hf;
    OK(mom_optim_create(&hf, MOM_OPTIM_HF, mom_net_num_params(ff), NULL));
    OK(mom_optim_set(hf, MOM_OPTIM_HF_LAMBDA, 45.0));
    OK(mom_optim_set(hf, MOM_OPTIM_HF_MAX_CG, 50));
    OK(mom_optim_set(hf, MOM_OPTIM_HF_FIXED_CG, 50));
    OK(mom_optim_set(hf, MOM_OPTIM_HF_LINE_SEARCH, 0));
    OK(mom_optim_set(hf, MOM_OPTIM_WEIGHT_DECAY, 2e-5));
    const uint64_t hf_starts[2] = {0, 400};
    const double hf_values[2] = {0.95, 0.999};
    OK(mom_sched_create_anneal(&a, 1.0, 500.0, 4000.0, NULL));
    OK(mom_sched_create_piecewise(&b, 2, hf_starts, hf_values, NULL));
    set_scheds(hf, a, b);
    add_capture("ok-hf-ff.ckpt", ff, hf, r, 1);
    mom_optim *hfr;
    OK(mom_optim_create(&hfr, MOM_OPTIM_HF, mom_net_num_params(rnn), NULL));
    OK(mom_optim_set(hfr, MOM_OPTIM_HF_STRUCT_DAMPING, 0.03));
    OK(mom_optim_set(hfr, MOM_OPTIM_HF_PRECOND, 0));
    add_capture("ok-hf-rnn.ckpt", rnn, hfr, NULL, 0);
    {
        /* as after some steps: t = 7, a warm start held, a report (crafted bytes) */
        const blob *src = find("ok-hf-rnn.ckpt");
        blob *h = add("ok-hf-rnn-stepped.ckpt", src->data, src->size);
        size_t ol, oat = sect(h, "OPTM", &ol);
        size_t hl, hat = sect(h, "HFST", &hl);
        craft_wr64(h->data + oat + 16, 7);
        uint32_t n_opts = craft_rd32(h->data + oat + 4);
        for (size_t i = 0; i < mom_net_num_params(rnn); i++)
            craft_wr32(h->data + oat + 24 + 12 * n_opts + 4 * i, 0x3C000000u + (uint32_t)i);
        craft_wr32(h->data + hat, 1);
        for (uint32_t i = 0; i < craft_rd32(h->data + hat + 4); i++)
            craft_wr64(h->data + hat + 8 + 12 * i + 4, 0x4000000000000000u + i); /* ~2.0 */
        craft_fix_crcs(h->data, h->size);
        patch("bad-hf-warm-flag.ckpt", h, hat, 4, 2);
        patch("bad-hf-report-key.ckpt", h, hat + 8, 4, 199);
        blob *m = add("bad-hf-missing.ckpt", h->data, h->size);
        for (uint32_t i = 0; i < craft_rd32(m->data + 24); i++)
            if (memcmp(m->data + 32 + 24 * i, "HFST", 4) == 0)
                memcpy(m->data + 32 + 24 * i, "HFSX", 4);
        m->data[10] = MOM_CKPT_FORMAT_MINOR + 1; /* a newer minor skips HFSX; HFST is missing */
        craft_fix_crcs(m->data, m->size);
    }

    /* 64 nested wrappers: the most a checkpoint holds */
    mom_optim *deep;
    OK(mom_optim_create(&deep, MOM_OPTIM_CM, 5, NULL));
    OK(mom_sched_create_const(&c, 0.5, NULL));
    for (int i = 0; i < 64; i++) {
        OK(mom_sched_create_final_phase(&d, c, 100 + (uint64_t)i, 1, 0.25, MOM_FINAL_MIN, NULL));
        mom_sched_destroy(c);
        c = d;
    }
    OK(mom_optim_set_momentum(deep, c));
    add_capture("ok-deep-64.ckpt", NULL, deep, NULL, 0);
    blob *deep64 = find("ok-deep-64.ckpt");

    /* A newer minor version: an unknown section 'ZZZZ' at the end, and a field appended to the
     * known section RNGS (the last one), both of which an older reader skips. */
    const blob *cmr = find("ok-cm-rnn.ckpt");
    {
        uint32_t ns = craft_rd32(cmr->data + 24);
        size_t table_end = 32 + 24 * (size_t)ns, size = cmr->size + 24 + 8;
        unsigned char *nb = calloc(1, size);
        if (nb == NULL)
            die("calloc", MOM_E_NOMEM);
        memcpy(nb, cmr->data, table_end);
        memcpy(nb + table_end + 24, cmr->data + table_end, cmr->size - table_end);
        for (uint32_t i = 0; i < ns; i++) {
            unsigned char *e = nb + 32 + 24 * i;
            craft_wr64(e + 4, craft_rd64(e + 4) + 24);
            if (memcmp(e, "RNGS", 4) == 0)
                craft_wr64(e + 12, craft_rd64(e + 12) + 4);
        }
        memcpy(nb + cmr->size + 24, "more", 4);
        unsigned char *e = nb + table_end;
        memcpy(e, "ZZZZ", 4);
        craft_wr64(e + 4, cmr->size + 28);
        craft_wr64(e + 12, 4);
        memcpy(nb + cmr->size + 28, "\0\1\2\3", 4);
        craft_wr32(nb + 24, ns + 1);
        craft_wr64(nb + 16, size);
        nb[10] = MOM_CKPT_FORMAT_MINOR + 1;
        craft_fix_crcs(nb, size);
        add("ok-newer-minor.ckpt", nb, size);
        /* the same claiming this library's minor version: the unknown section is damage */
        nb[10] = MOM_CKPT_FORMAT_MINOR;
        craft_fix_crcs(nb, size);
        add("bad-unknown-section.ckpt", nb, size);
        free(nb);
    }

    /* User data (format 1.2): the caller's bytes in section USER, the last one; some text, as a
     * trainer's flags, and every byte value, opaque to the library. */
    {
        static const char flags[] = "task=addition T=30 seed=7 lr=0x1.47ae147ae147bp-7";
        unsigned char ud[sizeof flags + 256];
        memcpy(ud, flags, sizeof flags);
        for (int i = 0; i < 256; i++)
            ud[sizeof flags + (size_t)i] = (unsigned char)(255 - i);
        add_capture_user("ok-user-data.ckpt", ff, nag, r, 1, ud, sizeof ud);
        add_capture_user("ok-user-net.ckpt", rnn, NULL, NULL, 0, flags, sizeof flags - 1);
        const blob *u = find("ok-user-data.ckpt");
        size_t ulen, uat = sect(u, "USER", &ulen);
        static const unsigned char more[4] = {'m', 'o', 'r', 'e'};
        /* USER in a file that says it is 1.1, before the section existed */
        blob *v11 = add("bad-user-v11.ckpt", u->data, u->size);
        v11->data[10] = 1;
        craft_fix_crcs(v11->data, v11->size);
        /* the size field: one byte more than the section has, one byte less than it has */
        patch("bad-user-size.ckpt", u, uat, 8, ulen - 8 + 1);
        patch("bad-user-short.ckpt", u, uat, 8, ulen - 8 - 1);
        /* a damaged byte of the user data */
        blob *crc = add("bad-crc-user.ckpt", u->data, u->size);
        crc->data[uat + 8 + 5] ^= 0x04;
        /* two USER sections (RNGS renamed) */
        blob *dup = add("bad-user-dup.ckpt", u->data, u->size);
        for (uint32_t i = 0; i < craft_rd32(dup->data + 24); i++)
            if (memcmp(dup->data + 32 + 24 * i, "RNGS", 4) == 0)
                memcpy(dup->data + 32 + 24 * i, "USER", 4);
        craft_fix_crcs(dup->data, dup->size);
        /* a USER section without user data, which no writer makes */
        blob *empty = splice("bad-user-empty.ckpt", u, uat + 8, ulen - 8, more, 0);
        craft_wr64(empty->data + uat, 0);
        craft_fix_crcs(empty->data, empty->size);
        /* a newer minor version may append fields to USER after the bytes: skipped */
        blob *nm = splice("ok-newer-minor-user.ckpt", u, u->size, 0, more, sizeof more);
        for (uint32_t i = 0; i < craft_rd32(nm->data + 24); i++)
            if (memcmp(nm->data + 32 + 24 * i, "USER", 4) == 0)
                craft_wr64(nm->data + 32 + 24 * i + 12, ulen + sizeof more);
        nm->data[10] = MOM_CKPT_FORMAT_MINOR + 1;
        craft_fix_crcs(nm->data, nm->size);
    }

    /* a newer major version */
    const blob *netff = find("ok-net-ff.ckpt");
    patch("unsup-major-2.ckpt", netff, 8, 4, 2u | (7u << 16));

    /* damaged, truncated */
    const blob *nagff = find("ok-nag-ff.ckpt");
    add("bad-empty.ckpt", NULL, 0);
    static const char zip[] = "PK\3\4 this is a zip file, not a checkpoint";
    add("bad-magic.ckpt", (const unsigned char *)zip, sizeof zip - 1);
    add("bad-truncated-20.ckpt", nagff->data, 20);
    add("bad-truncated-half.ckpt", nagff->data, nagff->size / 2);
    add("bad-truncated-last.ckpt", nagff->data, nagff->size - 1);
    {
        unsigned char *t = malloc(netff->size + 1);
        if (t == NULL)
            die("malloc", MOM_E_NOMEM);
        memcpy(t, netff->data, netff->size);
        t[netff->size] = 'x';
        add("bad-trailing.ckpt", t, netff->size + 1);
        free(t);
    }
    size_t nlen, nat = sect(nagff, "NETW", &nlen);
    blob *fl = add("bad-crc-params.ckpt", nagff->data, nagff->size);
    fl->data[nat + nlen - 3] ^= 0x10;
    fl = add("bad-crc-table.ckpt", nagff->data, nagff->size);
    fl->data[32 + 24 + 13] ^= 0x01;
    fl = add("bad-crc-preamble.ckpt", nagff->data, nagff->size);
    fl->data[9] ^= 0x80;

    /* absurd sizes and bad values behind valid CRCs (ok-nag-ff: NETW, OPTM, SCHD, RNGS) */
    size_t olen, oat = sect(nagff, "OPTM", &olen);
    size_t slen, sat = sect(nagff, "SCHD", &slen);
    size_t glen, gat = sect(nagff, "RNGS", &glen);
    patch("bad-huge-file-size.ckpt", nagff, 16, 8, (uint64_t)1 << 62);
    patch("bad-huge-section-count.ckpt", nagff, 24, 4, 0xFFFFFFF0u);
    patch("bad-huge-section-size.ckpt", nagff, 32 + 12, 8, UINT64_MAX - 7);
    patch("bad-gap.ckpt", nagff, 32 + 24 + 4, 8, oat + 1);
    patch("bad-huge-layers.ckpt", nagff, nat + 16, 8, (uint64_t)1 << 61);
    patch("bad-huge-width.ckpt", nagff, nat + 24, 8, (uint64_t)1 << 40);
    patch("bad-params-count.ckpt", nagff, nat + 24 + 3 * 8 + 8 + 4, 8, (uint64_t)1 << 60);
    patch("bad-softmax-1.ckpt", nagff, nat + 24 + 2 * 8, 8, 1);
    patch("bad-act.ckpt", nagff, nat + 24 + 3 * 8 + 8, 4, MOM_ACT_SOFTMAX);
    patch("bad-optim-kind.ckpt", nagff, oat, 4, 99);
    patch("bad-huge-options.ckpt", nagff, oat + 4, 4, 0x7FFFFFFFu);
    patch("bad-option-nan.ckpt", nagff, oat + 28, 8, 0x7FF8000000000001u);
    patch("bad-option-key.ckpt", nagff, oat + 24, 4, 555);
    /* the look-ahead key on a file that says 1.2 (it came with 1.3), and on a CM optimizer */
    {
        const blob *la = find("ok-nag-lookahead.ckpt");
        blob *v12 = add("bad-lookahead-v12.ckpt", la->data, la->size);
        v12->data[10] = 2;
        craft_fix_crcs(v12->data, v12->size);
        size_t lol, lat = sect(la, "OPTM", &lol);
        (void)lol;
        /* keys: weight decay, clip norm, then the look-ahead momentum (index 2) */
        patch("bad-lookahead-mu.ckpt", la, lat + 24 + 2 * 12 + 4, 8, 0x3FF8000000000000u); /* 1.5 */
        patch("bad-lookahead-cm.ckpt", la, lat, 4, MOM_OPTIM_CM);
    }
    patch("bad-step-count.ckpt", nagff, oat + 16, 8, UINT64_MAX); /* no step gets there */
    patch("ok-step-count-last.ckpt", nagff, oat + 16, 8, UINT64_MAX - 1); /* no step left */
    {
        const size_t vel = oat + 24 + 12 * (size_t)craft_rd32(nagff->data + oat + 4);
        patch("bad-velocity-nan.ckpt", nagff, vel, 4, 0x7FC00000u);
        /* the 1.1 option bit in a file that says it is 1.0 */
        blob *v10 = add("bad-v10-flush-bit.ckpt", nagff->data, nagff->size);
        v10->data[10] = 0;
        v10->data[nat + 12] |= 2;
        craft_fix_crcs(v10->data, v10->size);
    }
    patch("bad-huge-pieces.ckpt", nagff, sat + 12, 8, (uint64_t)1 << 60);
    patch("bad-piece-order.ckpt", nagff, sat + 12 + 8 + 16, 8, 0);
    patch("bad-callback.ckpt", nagff, sat + 8, 4, 6);
    patch("bad-sched-count.ckpt", nagff, sat, 4, 1);
    patch("bad-huge-rngs.ckpt", nagff, gat, 8, (uint64_t)1 << 59);
    patch("bad-rng-state.ckpt", nagff, gat + 8 + 24, 8, 0x0305);
    {
        /* two NETW sections */
        blob *dup = add("bad-dup-section.ckpt", nagff->data, nagff->size);
        memcpy(dup->data + 32 + 24, "NETW", 4);
        craft_fix_crcs(dup->data, dup->size);
    }
    {
        /* the optimizer has one parameter more than the network */
        unsigned char four[4] = {0};
        blob *mm = splice("bad-nparams-mismatch.ckpt", nagff, oat + olen - 4, 0, four, 4);
        craft_wr64(mm->data + oat + 8, craft_rd64(mm->data + oat + 8) + 1);
        craft_fix_crcs(mm->data, mm->size);
    }
    {
        /* 65 wrappers: wrap the leaf of ok-deep-64 once more */
        size_t dlen, dat = sect(deep64, "SCHD", &dlen);
        /* SCHD: count, then role 1 + leaf const (lr: 0.01), then role 2 + 64 wrappers + leaf */
        size_t leaf = dat + 4 + 4 + 12 + 4 + 64 * 32;
        unsigned char w[32] = {0};
        craft_wr32(w, MOM_SCHED_FINAL_PHASE);
        craft_wr64(w + 4, 10);
        craft_wr64(w + 12, 1);
        craft_wr64(w + 20, 0x3FE0000000000000u); /* 0.5 */
        craft_wr32(w + 28, MOM_FINAL_MIN);
        blob *d65 = splice("bad-deep-65.ckpt", deep64, leaf, 0, w, 32);
        craft_fix_crcs(d65->data, d65->size);
    }

    mom_optim_destroy(sgd);
    mom_optim_destroy(cm);
    mom_optim_destroy(nag);
    mom_optim_destroy(nag2);
    mom_optim_destroy(alone);
    mom_optim_destroy(deep);
    mom_optim_destroy(hf);
    mom_optim_destroy(hfr);
    mom_sched_destroy(c);
    mom_rng_destroy(r[0]);
    mom_rng_destroy(r[1]);
    mom_net_destroy(ff);
    mom_net_destroy(rnn);
}

int main(int argc, char **argv)
{
    int check = argc == 3 && strcmp(argv[1], "--check") == 0;
    if (!(argc == 2 || check)) {
        fprintf(stderr, "usage: %s DIR | %s --check DIR\n", argv[0], argv[0]);
        return 2;
    }
    const char *dir = argv[argc - 1];
    generate();
    int bad = 0;
    for (size_t i = 0; i < n_files; i++) {
        size_t plen = strlen(dir) + strlen(files[i].name) + 2;
        char *path = malloc(plen);
        if (path == NULL)
            die("malloc", MOM_E_NOMEM);
        snprintf(path, plen, "%s/%s", dir, files[i].name);
        if (check) {
            FILE *f = fopen(path, "rb");
            unsigned char *cur = malloc(files[i].size + 1);
            size_t got = f && cur ? fread(cur, 1, files[i].size + 1, f) : 0;
            if (f == NULL || got != files[i].size || memcmp(cur, files[i].data, got) != 0) {
                printf("%s differs from what this library writes (regenerate with "
                       "fuzz/make-corpus.sh if the format changed on purpose)\n",
                       files[i].name);
                bad = 1;
            }
            if (f)
                fclose(f);
            free(cur);
        } else {
            FILE *f = fopen(path, "wb");
            if (f == NULL || fwrite(files[i].data, 1, files[i].size, f) != files[i].size ||
                fclose(f) != 0) {
                fprintf(stderr, "cannot write %s\n", path);
                return 2;
            }
        }
        free(path);
        free(files[i].data);
    }
    if (check && !bad)
        printf("ok: %zu corpus files match\n", n_files);
    return bad;
}
