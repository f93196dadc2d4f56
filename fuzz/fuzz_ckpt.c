/* libFuzzer target for the checkpoint loader (ckpt.h).
 *
 * Each input is tried three ways: as a buffer (mom_ckpt_load_buffer), as a stream delivered in
 * small pieces (mom_ckpt_load_stream), and, when it is long enough to have a header, with every
 * CRC recomputed first, so that mutations reach the structural and value checks behind the
 * checksums. Whatever loads is then restored into fresh handles, captured again, saved, loaded
 * again and restored into existing handles; a few training steps run on the result.
 *
 * Besides crashes, sanitizer reports and leaks, these invariants abort the run:
 *  - loading returns MOM_OK, MOM_E_FORMAT, MOM_E_UNSUPPORTED or MOM_E_NOMEM; a failure always
 *    leaves a message, and a MOM_E_FORMAT or MOM_E_UNSUPPORTED message names an offset;
 *  - the buffer and stream loaders agree (the stream loader may stop before trailing bytes);
 *  - a loaded image's user data is at most MOM_CKPT_USER_DATA_MAX bytes, and NULL exactly when
 *    empty;
 *  - a loaded image can be restored, and what is restored captures (with the image's user data
 *    set again), saves and loads again, to an image with the same user data that captures to
 *    exactly the same bytes (save/load is a fixed point after one trip);
 *  - restoring into the handles just restored succeeds; into another architecture it fails with
 *    MOM_E_FORMAT only.
 * Built with clang -fsanitize=fuzzer (meson -Dfuzz=enabled); fuzz/replay.c runs the corpus through
 * the same function as an ordinary test. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mominit/mominit.h"
#include "craft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond))                                                                           \
            abort();                                                                           \
    } while (0)

/* Largest parameter count worth restoring in a fuzz run (valid files that big are slow, not
 * interesting). */
#define MAX_PARAMS ((size_t)1 << 18)
#define MAX_STEP_PARAMS 20000u
#define MAX_RNGS 4

typedef struct piece_source {
    const uint8_t *p;
    size_t n, pos, chunk;
} piece_source;

static int piece_read(void *buf, size_t size, size_t *got, void *user_data)
{
    piece_source *s = user_data;
    size_t k = s->n - s->pos;
    if (k > size)
        k = size;
    if (k > s->chunk)
        k = s->chunk;
    memcpy(buf, s->p + s->pos, k);
    s->pos += k;
    *got = k;
    return 0;
}

static void check_failure(const mom_ckpt *ck, int rc)
{
    CHECK(rc == MOM_OK || rc == MOM_E_FORMAT || rc == MOM_E_UNSUPPORTED || rc == MOM_E_NOMEM);
    if (rc != MOM_OK)
        CHECK(mom_ckpt_errmsg(ck)[0] != '\0');
    if (rc == MOM_E_FORMAT || rc == MOM_E_UNSUPPORTED)
        CHECK(strstr(mom_ckpt_errmsg(ck), " at offset ") != NULL);
}

/* The user data of a loaded image, checked. */
static void user_data(const void **ud, size_t *us, const mom_ckpt *ck)
{
    CHECK(mom_ckpt_user_data(ud, us, ck) == MOM_OK);
    CHECK(*us <= MOM_CKPT_USER_DATA_MAX && (*us == 0) == (*ud == NULL));
}

/* Capture the handles and the user data into a fresh checkpoint and return its bytes (NULL on
 * NOMEM). */
static unsigned char *capture_bytes(size_t *size, const mom_net *net, const mom_optim *opt,
                                    mom_rng *const *rngs, size_t n_rngs, const void *ud, size_t us)
{
    mom_ckpt *ck;
    if (mom_ckpt_create(&ck, NULL) != MOM_OK)
        return NULL;
    const mom_rng *r[MAX_RNGS];
    for (size_t i = 0; i < n_rngs; i++)
        r[i] = rngs[i];
    int rc = mom_ckpt_set_user_data(ck, ud, us);
    CHECK(rc == MOM_OK || rc == MOM_E_NOMEM);
    if (rc == MOM_OK)
        rc = mom_ckpt_capture(ck, net, opt, r, n_rngs);
    CHECK(rc == MOM_OK || rc == MOM_E_NOMEM);
    unsigned char *b = NULL;
    if (rc == MOM_OK) {
        *size = mom_ckpt_size(ck);
        b = malloc(*size);
        if (b != NULL)
            CHECK(mom_ckpt_save_buffer(b, *size, ck) == MOM_OK);
    }
    mom_ckpt_destroy(ck);
    return b;
}

static void destroy_all(mom_net *net, mom_optim *opt, mom_rng **r, size_t n)
{
    mom_net_destroy(net);
    mom_optim_destroy(opt);
    for (size_t i = 0; i < n; i++)
        mom_rng_destroy(r[i]);
}

/* A restored step counter may be at its last value, 2^64 - 2 (a valid file, since a step may
 * leave it there): steps are then refused with MOM_E_STATE. */
static int at_last_step(const mom_optim *opt)
{
    return mom_optim_steps(opt) == UINT64_MAX - 1;
}

/* A few steps of the restored optimizer on the restored network (or on its own vector). */
static void run_steps(mom_net *net, mom_optim *opt)
{
    size_t n = mom_optim_num_params(opt);
    if (n > MAX_STEP_PARAMS)
        return;
    if (mom_optim_kind_of(opt) == MOM_OPTIM_HF) {
        /* short CG runs: the point is the restored state, not the optimization */
        int rc = mom_optim_set(opt, MOM_OPTIM_HF_MAX_CG, 5);
        CHECK(rc == MOM_OK || rc == MOM_E_NOMEM);
        rc = mom_optim_set(opt, MOM_OPTIM_HF_FIXED_CG, 0);
        CHECK(rc == MOM_OK || rc == MOM_E_NOMEM);
    }
    if (net != NULL) {
        size_t ni = mom_net_num_inputs(net), no = mom_net_num_outputs(net);
        size_t steps = mom_net_kind_of(net) == MOM_NET_RECURRENT ? 2 : 1;
        float *in = calloc(2 * steps * ni, sizeof(float));
        float *tg = calloc(2 * steps * no, sizeof(float));
        if (in != NULL && tg != NULL) {
            for (size_t i = 0; i < 2 * steps * ni; i++)
                in[i] = (float)(i % 3) - 1.0f;
            for (size_t s = 0; s < 2 * steps; s++)
                tg[s * no] = 1.0f;
            mom_batch b = {2, steps, in, tg, NULL, NULL};
            for (int k = 0; k < 2; k++) {
                int rc = mom_optim_step_net(NULL, opt, net, &b);
                CHECK(rc == MOM_OK || rc == MOM_E_INVALID || rc == MOM_E_DIVERGED ||
                      rc == MOM_E_NOMEM || (rc == MOM_E_STATE && at_last_step(opt)));
            }
        }
        free(in);
        free(tg);
    } else {
        float *x = calloc(n, sizeof(float)), *g = calloc(n, sizeof(float));
        if (x != NULL && g != NULL) {
            for (size_t i = 0; i < n; i++)
                g[i] = (float)(i % 5) - 2.0f;
            const float *pt;
            int rc = mom_optim_begin(&pt, opt, x);
            CHECK(rc == MOM_OK || rc == MOM_E_INVALID || rc == MOM_E_UNSUPPORTED ||
                  (rc == MOM_E_STATE && at_last_step(opt)));
            if (rc == MOM_OK) {
                rc = mom_optim_end(opt, x, 1.0, g);
                CHECK(rc == MOM_OK || rc == MOM_E_DIVERGED);
                if (rc != MOM_OK)
                    CHECK(mom_optim_cancel(opt) == MOM_OK);
            }
        }
        free(x);
        free(g);
    }
}

static void exercise(mom_ckpt *ck)
{
    size_t np = mom_ckpt_num_params(ck), nr = mom_ckpt_num_rngs(ck);
    int nk = mom_ckpt_net_kind(ck), ok = mom_ckpt_optim_kind(ck);
    CHECK(np > 0 && (nk != 0 || ok != 0));
    CHECK(mom_ckpt_size(ck) > 32);
    if (np > MAX_PARAMS)
        return;
    size_t want = nr < MAX_RNGS ? nr : MAX_RNGS;
    mom_net *net = NULL;
    mom_optim *opt = NULL;
    mom_rng *r[MAX_RNGS] = {NULL};
    int rc = mom_ckpt_restore_new(nk ? &net : NULL, ok ? &opt : NULL, r, want, ck);
    if (rc == MOM_E_NOMEM)
        return;
    CHECK(rc == MOM_OK);
    CHECK(mom_net_kind_of(net) == nk && mom_optim_kind_of(opt) == ok);
    CHECK(net == NULL || mom_net_num_params(net) == np);
    CHECK(opt == NULL || mom_optim_num_params(opt) == np);
    /* Asking for more than the image holds fails cleanly. */
    mom_rng *extra[MAX_RNGS + 1] = {NULL};
    if (nr < MAX_RNGS) {
        CHECK(mom_ckpt_restore_new(NULL, NULL, extra, nr + 1, ck) == MOM_E_FORMAT);
        CHECK(extra[0] == NULL);
    }

    /* capture -> save -> load -> restore -> capture is a fixed point, user data included. */
    const void *ud;
    size_t us;
    user_data(&ud, &us, ck);
    size_t s1 = 0, s2 = 0;
    unsigned char *b1 = capture_bytes(&s1, net, opt, r, want, ud, us);
    if (b1 != NULL) {
        mom_ckpt *c2;
        if (mom_ckpt_create(&c2, NULL) == MOM_OK) {
            rc = mom_ckpt_load_buffer(c2, b1, s1);
            CHECK(rc == MOM_OK || rc == MOM_E_NOMEM);
            mom_net *n2 = NULL;
            mom_optim *o2 = NULL;
            mom_rng *r2[MAX_RNGS] = {NULL};
            const void *ud2 = NULL;
            size_t us2 = 0;
            if (rc == MOM_OK) {
                user_data(&ud2, &us2, c2);
                CHECK(us2 == us && (us == 0 || memcmp(ud2, ud, us) == 0));
            }
            if (rc == MOM_OK &&
                (rc = mom_ckpt_restore_new(nk ? &n2 : NULL, ok ? &o2 : NULL, r2, want, c2)) ==
                    MOM_OK) {
                unsigned char *b2 = capture_bytes(&s2, n2, o2, r2, want, ud2, us2);
                if (b2 != NULL)
                    CHECK(s2 == s1 && memcmp(b1, b2, s1) == 0);
                free(b2);
            }
            CHECK(rc == MOM_OK || rc == MOM_E_NOMEM);
            destroy_all(n2, o2, r2, want);
            mom_ckpt_destroy(c2);
        }
        free(b1);
    }

    /* Into the handles just made: must work. Into a tiny network: works or MOM_E_FORMAT. */
    rc = mom_ckpt_restore(ck, net, opt, r, want);
    CHECK(rc == MOM_OK || rc == MOM_E_NOMEM);
    if (nk != 0) {
        mom_net *tiny;
        const size_t sizes[3] = {2, 3, 2};
        const int act[1] = {MOM_ACT_TANH};
        if (mom_net_create_ff(&tiny, 2, sizes, act, MOM_OUT_SOFTMAX_XENT, NULL) == MOM_OK) {
            rc = mom_ckpt_restore(ck, tiny, NULL, NULL, 0);
            CHECK(rc == MOM_OK || rc == MOM_E_FORMAT);
            if (rc == MOM_E_FORMAT)
                CHECK(strstr(mom_ckpt_errmsg(ck), "section NETW at offset") != NULL);
            mom_net_destroy(tiny);
        }
    }
    if (opt != NULL)
        run_steps(net, opt);
    destroy_all(net, opt, r, want);
}

/* Load one input both ways; exercise what loads. */
static void try_input(const uint8_t *data, size_t size)
{
    mom_ckpt *ck, *cs;
    if (mom_ckpt_create(&ck, NULL) != MOM_OK)
        return;
    if (mom_ckpt_create(&cs, NULL) != MOM_OK) {
        mom_ckpt_destroy(ck);
        return;
    }
    int rb = mom_ckpt_load_buffer(ck, data, size);
    check_failure(ck, rb);
    piece_source src = {data, size, 0, 1 + size % 13};
    int rs = mom_ckpt_load_stream(cs, piece_read, &src);
    check_failure(cs, rs);
    if (rb != MOM_E_NOMEM && rs != MOM_E_NOMEM) {
        if (rb == MOM_OK)
            CHECK(rs == MOM_OK && mom_ckpt_size(cs) == size);
        if (rs == MOM_OK) {
            CHECK(mom_ckpt_size(cs) <= size && src.pos == mom_ckpt_size(cs));
            CHECK((rb == MOM_OK) == (mom_ckpt_size(cs) == size));
        }
        if (rb == MOM_OK && rs == MOM_OK) { /* the same image: the same user data */
            const void *ub, *us_;
            size_t nb, ns;
            user_data(&ub, &nb, ck);
            user_data(&us_, &ns, cs);
            CHECK(nb == ns && (nb == 0 || memcmp(ub, us_, nb) == 0));
        }
    }
    if (rb == MOM_OK)
        exercise(ck);
    mom_ckpt_destroy(cs);
    mom_ckpt_destroy(ck);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_input(data, size);
    if (size >= 16 && size <= ((size_t)1 << 22)) {
        unsigned char *fixed = malloc(size);
        if (fixed != NULL) {
            memcpy(fixed, data, size);
            craft_fix_crcs(fixed, size);
            if (memcmp(fixed, data, size) != 0)
                try_input(fixed, size);
            free(fixed);
        }
    }
    return 0;
}
