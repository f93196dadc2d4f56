/* Tests of the reduction hook (mom_optim_set_reduce, optim.h): where the optimizers call it, that
 * data-parallel workers combining through it take the same steps as one process on the whole
 * minibatch (workers are threads here, each with its own network and optimizer; the trainers do
 * the same over MPI ranks), and its failure paths. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <time.h>

#include "testutil.h"

/* ---- an in-process "communicator": W threads combining values through a barrier ------------- */

#define MAX_WORKERS 4

/* A barrier that gives up: workers that take different paths (a call left out on one of them)
 * would otherwise wait for each other forever. After a timeout the group is broken and every
 * later call fails at once, so the test fails instead of hanging. */
typedef struct group {
    int W;
    size_t cap;                 /* doubles per slot */
    double *slot[MAX_WORKERS];  /* worker i's weighted values */
    int what[MAX_WORKERS];      /* what each worker is combining (must agree) */
    size_t count[MAX_WORKERS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;
    unsigned long generation;
    int broken;
} group;

static int group_wait(group *g)
{
    pthread_mutex_lock(&g->mu);
    if (g->broken) {
        pthread_mutex_unlock(&g->mu);
        return -1;
    }
    unsigned long gen = g->generation;
    if (++g->arrived == g->W) {
        g->arrived = 0;
        g->generation++;
        pthread_cond_broadcast(&g->cv);
    } else {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 20;
        while (gen == g->generation && !g->broken)
            if (pthread_cond_timedwait(&g->cv, &g->mu, &until) != 0) {
                g->broken = 1;
                pthread_cond_broadcast(&g->cv);
            }
    }
    int rc = g->broken ? -1 : 0;
    pthread_mutex_unlock(&g->mu);
    return rc;
}

typedef struct worker {
    group *g;
    int id;
    double w_grad, w_curv; /* this worker's share of the gradient and curvature cases */
    size_t calls;
} worker;

static int is_curvature(int what) { return what == MOM_REDUCE_GV || what == MOM_REDUCE_CURV_LOSS; }

/* The hook: every worker writes share * value into its slot; after a barrier each checks that all
 * combine the same thing and sums the slots in the same order (so all get the same bits); a second
 * barrier keeps the slots until all have read them. */
static int group_reduce(void *values, size_t count, int type, int what, void *user_data)
{
    worker *wk = user_data;
    group *g = wk->g;
    if (count > g->cap)
        return MOM_E_SHAPE;
    const double w = is_curvature(what) ? wk->w_curv : wk->w_grad;
    double *mine = g->slot[wk->id];
    g->what[wk->id] = what;
    g->count[wk->id] = count;
    for (size_t k = 0; k < count; k++)
        mine[k] = w * (type == MOM_REDUCE_FLOAT ? (double)((float *)values)[k]
                                                : ((double *)values)[k]);
    if (group_wait(g) != 0)
        return MOM_E_STATE;
    int agree = 1;
    for (int i = 0; i < g->W; i++)
        agree &= g->what[i] == what && g->count[i] == count;
    for (size_t k = 0; k < count && agree; k++) {
        double s = 0.0;
        for (int i = 0; i < g->W; i++)
            s += g->slot[i][k];
        if (type == MOM_REDUCE_FLOAT)
            ((float *)values)[k] = (float)s;
        else
            ((double *)values)[k] = s;
    }
    if (group_wait(g) != 0)
        return MOM_E_STATE;
    wk->calls++;
    return agree ? 0 : MOM_E_STATE;
}

static void group_init(group *g, int W, size_t cap)
{
    memset(g, 0, sizeof *g);
    g->W = W;
    g->cap = cap;
    for (int i = 0; i < W; i++)
        assert_non_null(g->slot[i] = malloc(cap * sizeof(double)));
    assert_int_equal(pthread_mutex_init(&g->mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&g->cv, NULL), 0);
}

static void group_free(group *g)
{
    for (int i = 0; i < g->W; i++)
        free(g->slot[i]);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

/* ---- the training problems ------------------------------------------------------------------ */

enum { PROB_FF, PROB_RNN };

#define FF_IN 8
#define RNN_T 8
#define POOL 60 /* cases (sequences) in the data pool */

/* A data pool and how a step picks its minibatch: step s uses cases (s * B + j) mod POOL,
 * j = 0..B-1; worker i of W takes the contiguous block [lo_i, hi_i) of those B cases. */
typedef struct problem {
    int kind;
    float *x, *t, *mask; /* pool; RNN: per sequence RNN_T x 2 inputs, RNN_T x 1 targets */
} problem;

static void problem_init(problem *p, int kind)
{
    mom_rng *r;
    assert_ok(mom_rng_create(&r, 77, 0, NULL));
    p->kind = kind;
    if (kind == PROB_FF) {
        assert_non_null(p->x = malloc(POOL * FF_IN * sizeof(float)));
        assert_ok(mom_rng_fill_uniform(r, p->x, POOL * FF_IN, 0.0, 1.0));
        p->t = p->x; /* autoencoder */
        p->mask = NULL;
    } else {
        assert_non_null(p->x = calloc(POOL * RNN_T * 2, sizeof(float)));
        assert_non_null(p->t = calloc(POOL * RNN_T, sizeof(float)));
        for (size_t c = 0; c < POOL; c++) {
            size_t a = (size_t)mom_rng_below(r, RNN_T / 2), b = RNN_T / 2 + (size_t)mom_rng_below(r, RNN_T / 2 - 1);
            double va = 0, vb = 0;
            for (size_t s = 0; s < RNN_T; s++) {
                double u = mom_rng_uniform(r);
                p->x[(c * RNN_T + s) * 2] = (float)u;
                if (s == a || s == b) {
                    p->x[(c * RNN_T + s) * 2 + 1] = 1.0f;
                    if (s == a)
                        va = u;
                    else
                        vb = u;
                }
            }
            p->t[c * RNN_T + RNN_T - 1] = (float)(0.5 * (va + vb));
        }
    }
    mom_rng_destroy(r);
}

static void problem_free(problem *p)
{
    free(p->x);
    if (p->t != p->x)
        free(p->t);
}

/* Copy cases [lo, hi) of step s's minibatch of B into caller buffers laid out as the library wants
 * (feedforward: row-major cases; RNN: time-major steps x n x width) and describe them in *b. */
static void batch_ff(const problem *p, mom_batch *b, float *x, uint64_t s, size_t B, size_t lo,
                     size_t hi)
{
    for (size_t j = lo; j < hi; j++) {
        size_t c = (size_t)((s * B + j) % POOL);
        memcpy(x + (j - lo) * FF_IN, p->x + c * FF_IN, FF_IN * sizeof(float));
    }
    mom_batch v = {hi - lo, 0, x, x, NULL, NULL};
    *b = v;
}

static void batch_rnn(const problem *p, mom_batch *b, float *x, float *t, uint64_t s, size_t B,
                      size_t lo, size_t hi)
{
    const size_t n = hi - lo;
    for (size_t j = lo; j < hi; j++) {
        size_t c = (size_t)((s * B + j) % POOL);
        for (size_t st = 0; st < RNN_T; st++) {
            x[(st * n + (j - lo)) * 2] = p->x[(c * RNN_T + st) * 2];
            x[(st * n + (j - lo)) * 2 + 1] = p->x[(c * RNN_T + st) * 2 + 1];
            t[st * n + (j - lo)] = p->t[c * RNN_T + st];
        }
    }
    mom_batch v = {n, RNN_T, x, t, NULL, NULL};
    *b = v;
}

static void problem_batch(const problem *p, mom_batch *b, float *x, float *t, uint64_t s, size_t B,
                          size_t lo, size_t hi)
{
    if (p->kind == PROB_FF)
        batch_ff(p, b, x, s, B, lo, hi);
    else
        batch_rnn(p, b, x, t, s, B, lo, hi);
}

static mom_net *problem_net(const problem *p)
{
    mom_net *net;
    if (p->kind == PROB_FF) {
        const size_t sizes[] = {FF_IN, 6, 3, 6, FF_IN};
        const int acts[] = {MOM_ACT_LOGISTIC, MOM_ACT_LINEAR, MOM_ACT_LOGISTIC};
        assert_ok(mom_net_create_ff(&net, 4, sizes, acts, MOM_OUT_LOGISTIC_XENT, NULL));
        assert_ok(mom_init_preset_ff(net, 5));
    } else {
        assert_ok(mom_net_create_rnn(&net, 2, 10, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, NULL));
        assert_ok(mom_init_preset_rnn(net, 0.1, 5, NULL));
    }
    return net;
}

/* How each run trains: optimizer kind, steps, batch sizes (HF: gradient B, curvature C; C == 0
 * means the gradient batch for both). */
typedef struct plan {
    int optim;
    unsigned steps;
    size_t B, C;
} plan;

static mom_optim *plan_optim(const plan *pl, size_t n)
{
    mom_optim *opt;
    assert_ok(mom_optim_create(&opt, pl->optim, n, NULL));
    if (pl->optim == MOM_OPTIM_HF) {
        assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_MAX_CG, 30));
        assert_ok(mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, 1e-4));
    } else {
        mom_sched *lr, *mu;
        assert_ok(mom_sched_create_const(&lr, 0.05, NULL));
        assert_ok(mom_sched_create_const(&mu, 0.9, NULL));
        assert_ok(mom_optim_set_lr(opt, lr));
        assert_ok(mom_optim_set_momentum(opt, mu));
        mom_sched_destroy(lr);
        mom_sched_destroy(mu);
    }
    return opt;
}

/* Train one worker (or the whole batch when wk is NULL) and return its parameters. lo/hi are
 * fractions of the batches given as the worker's block bounds. */
typedef struct run_args {
    const problem *p;
    const plan *pl;
    worker *wk;
    size_t g_lo, g_hi, c_lo, c_hi;
    float *out;  /* receives the final parameters */
    double lambda;
    int rc;
} run_args;

static void *run_training(void *arg)
{
    run_args *a = arg;
    const problem *p = a->p;
    const plan *pl = a->pl;
    mom_net *net = problem_net(p);
    const size_t n = mom_net_num_params(net);
    mom_optim *opt = plan_optim(pl, n);
    if (a->wk != NULL)
        a->rc = mom_optim_set_reduce(opt, group_reduce, a->wk);
    const size_t width = p->kind == PROB_FF ? FF_IN : 2 * RNN_T;
    float *gx = malloc(pl->B * width * sizeof(float)), *gt = malloc(pl->B * RNN_T * sizeof(float));
    float *cx = malloc((pl->C + 1) * width * sizeof(float)), *ct = malloc((pl->C + 1) * RNN_T * sizeof(float));
    for (uint64_t s = 0; s < pl->steps && a->rc == MOM_OK; s++) {
        mom_batch gb, cb;
        problem_batch(p, &gb, gx, gt, s, pl->B, a->g_lo, a->g_hi);
        double loss;
        if (pl->optim == MOM_OPTIM_HF && pl->C > 0) {
            /* curvature cases: the pool's other half, so they differ from the gradient's */
            problem_batch(p, &cb, cx, ct, s + POOL / 2, pl->C, a->c_lo, a->c_hi);
            a->rc = mom_optim_step_hf(&loss, opt, net, &gb, &cb);
        } else {
            a->rc = mom_optim_step_net(&loss, opt, net, &gb);
        }
    }
    memcpy(a->out, mom_net_params(net), n * sizeof(float));
    a->lambda = NAN;
    if (pl->optim == MOM_OPTIM_HF)
        a->rc = a->rc ? a->rc : mom_optim_get(&a->lambda, opt, MOM_OPTIM_HF_LAMBDA);
    free(gx);
    free(gt);
    free(cx);
    free(ct);
    mom_optim_destroy(opt);
    mom_net_destroy(net);
    return NULL;
}

/* Largest |a - b| over the largest |a|. */
static double max_rel(const float *a, const float *b, size_t n)
{
    double d = 0.0, m = 0.0;
    for (size_t k = 0; k < n; k++) {
        d = fmax(d, fabs((double)a[k] - (double)b[k]));
        m = fmax(m, fabs((double)a[k]));
    }
    return d / m;
}

/* W workers with the given block boundaries of the gradient batch (cuts[0] = 0 < ... < cuts[W] = B)
 * and of the curvature batch, against one process on the whole batches. */
static void check_parallel(int kind, const plan *pl, int W, const size_t *gcuts, const size_t *ccuts,
                           double tol)
{
    problem p;
    problem_init(&p, kind);
    mom_net *probe = problem_net(&p);
    const size_t n = mom_net_num_params(probe);
    mom_net_destroy(probe);

    float *ref = malloc(n * sizeof(float));
    run_args single = {&p, pl, NULL, 0, pl->B, 0, pl->C, ref, 0, MOM_OK};
    run_training(&single);
    assert_ok(single.rc);

    group g;
    group_init(&g, W, n);
    worker wk[MAX_WORKERS];
    run_args args[MAX_WORKERS];
    pthread_t th[MAX_WORKERS];
    float *outs[MAX_WORKERS] = {NULL};
    assert_true(W >= 1 && W <= MAX_WORKERS);
    for (int i = 0; i < W; i++) {
        size_t C = pl->C ? pl->C : pl->B;
        const size_t *cc = pl->C ? ccuts : gcuts;
        wk[i] = (worker){&g, i, (double)(gcuts[i + 1] - gcuts[i]) / (double)pl->B,
                         (double)(cc[i + 1] - cc[i]) / (double)C, 0};
        outs[i] = malloc(n * sizeof(float));
        args[i] = (run_args){&p, pl, &wk[i], gcuts[i], gcuts[i + 1], pl->C ? ccuts[i] : 0,
                             pl->C ? ccuts[i + 1] : 0, outs[i], 0, MOM_OK};
        assert_int_equal(pthread_create(&th[i], NULL, run_training, &args[i]), 0);
    }
    for (int i = 0; i < W; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < W; i++) {
        assert_ok(args[i].rc);
        assert_true(wk[i].calls > 0);
        /* the workers agree exactly */
        assert_memory_equal(outs[i], outs[0], n * sizeof(float));
        if (pl->optim == MOM_OPTIM_HF)
            assert_true(args[i].lambda == args[0].lambda);
    }
    double rel = max_rel(ref, outs[0], n);
    print_message("# %s %s, %d workers, %u steps: max |parallel - single| / max |single| = %.2e\n",
                  kind == PROB_FF ? "autoencoder" : "RNN",
                  pl->optim == MOM_OPTIM_HF ? "HF" : "NAG", W, pl->steps, rel);
    assert_true(rel <= tol);
    if (pl->optim == MOM_OPTIM_HF)
        assert_true(rel_diff(args[0].lambda, single.lambda, 1e-12) <= 1e-6);
    /* and the run did move the parameters */
    mom_net *fresh = problem_net(&p);
    assert_true(max_rel(mom_net_params(fresh), ref, n) > 1e-3);
    mom_net_destroy(fresh);
    for (int i = 0; i < W; i++)
        free(outs[i]);
    free(ref);
    group_free(&g);
    problem_free(&p);
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* The data-parallel cases: W workers with the given block boundaries of the gradient batch (and of
 * the curvature batch for HF with C > 0) against one process. HF reduces the gradient, the Fisher
 * diagonal, every product and every loss: if one were left out, the workers would take different
 * CG paths and line-search decisions. */
typedef struct parallel_case {
    int kind;
    plan pl;
    int W;
    size_t g[MAX_WORKERS + 1], c[MAX_WORKERS + 1];
    double tol;
} parallel_case;

static const parallel_case parallel_cases[] = {
    {PROB_FF, {MOM_OPTIM_NAG, 100, 20, 0}, 2, {0, 10, 20}, {0}, 1e-5},
    {PROB_FF, {MOM_OPTIM_NAG, 100, 20, 0}, 2, {0, 7, 20}, {0}, 1e-5}, /* weighted by cases */
    {PROB_FF, {MOM_OPTIM_NAG, 100, 21, 0}, 3, {0, 5, 13, 21}, {0}, 1e-5},
    {PROB_RNN, {MOM_OPTIM_NAG, 100, 20, 0}, 2, {0, 10, 20}, {0}, 1e-5},
    {PROB_FF, {MOM_OPTIM_HF, 4, 30, 16}, 2, {0, 14, 30}, {0, 9, 16}, 1e-4},
    {PROB_RNN, {MOM_OPTIM_HF, 3, 20, 0}, 2, {0, 10, 20}, {0}, 1e-4},
};

static void test_parallel(void **state)
{
    const parallel_case *k = *state;
    check_parallel(k->kind, &k->pl, k->W, k->g, k->pl.C ? k->c : NULL, k->tol);
}

/* ---- call order, counts and failures --------------------------------------------------------- */

static mom_optim *make_optim_nag_like(int kind, size_t n)
{
    const plan pl = {kind, 0, 0, 0};
    return plan_optim(&pl, n);
}

typedef struct recorder {
    int what[4096];
    int type[4096];
    size_t count[4096];
    size_t n;
    size_t fail_at;   /* 1-based call that fails (0: none) */
    int fail_rc;
    float scale;      /* multiply float vectors by this (1: identity) */
} recorder;

static int record(void *values, size_t count, int type, int what, void *user_data)
{
    recorder *r = user_data;
    if (r->n < 4096) {
        r->what[r->n] = what;
        r->type[r->n] = type;
        r->count[r->n] = count;
    }
    r->n++;
    if (r->fail_at && r->n == r->fail_at)
        return r->fail_rc;
    if (type == MOM_REDUCE_FLOAT && r->scale != 1.0f)
        for (size_t k = 0; k < count; k++)
            ((float *)values)[k] *= r->scale;
    return 0;
}

static void small_ff(mom_net **net, float **x, mom_batch *b, size_t cases)
{
    problem p;
    problem_init(&p, PROB_FF);
    *net = problem_net(&p);
    assert_non_null(*x = malloc(cases * FF_IN * sizeof(float)));
    batch_ff(&p, b, *x, 0, cases, 0, cases);
    problem_free(&p);
}

static void test_order_first_order(void **state)
{
    (void)state;
    mom_net *net;
    float *x;
    mom_batch b;
    small_ff(&net, &x, &b, 12);
    const size_t n = mom_net_num_params(net);
    for (int kind = MOM_OPTIM_SGD; kind <= MOM_OPTIM_NAG; kind++) {
        recorder r = {.scale = 1.0f};
        mom_optim *opt = make_optim_nag_like(kind, n);
        assert_ok(mom_optim_set_reduce(opt, record, &r));
        for (int s = 0; s < 3; s++)
            assert_ok(mom_optim_step_net(NULL, opt, net, &b));
        assert_int_equal(r.n, 6);
        for (size_t i = 0; i < r.n; i += 2) {
            assert_int_equal(r.what[i], MOM_REDUCE_LOSS);
            assert_int_equal(r.type[i], MOM_REDUCE_DOUBLE);
            assert_int_equal(r.count[i], 1);
            assert_int_equal(r.what[i + 1], MOM_REDUCE_GRADIENT);
            assert_int_equal(r.type[i + 1], MOM_REDUCE_FLOAT);
            assert_int_equal(r.count[i + 1], n);
        }
        /* the begin/end path leaves the combining to the caller */
        const float *pt;
        float *g = calloc(n, sizeof(float));
        assert_ok(mom_optim_begin(&pt, opt, mom_net_params(net)));
        assert_status(mom_optim_set_reduce(opt, NULL, NULL), MOM_E_STATE);
        assert_ok(mom_optim_end(opt, mom_net_params(net), 0.0, g));
        assert_int_equal(r.n, 6);
        /* removed: no more calls */
        assert_ok(mom_optim_set_reduce(opt, NULL, &r));
        assert_ok(mom_optim_step_net(NULL, opt, net, &b));
        assert_int_equal(r.n, 6);
        free(g);
        mom_optim_destroy(opt);
    }
    assert_status(mom_optim_set_reduce(NULL, record, NULL), MOM_E_INVALID);
    mom_net_destroy(net);
    free(x);
}

/* A hook that doubles the gradient gives exactly the step of a doubled learning rate (the factor
 * 2 is exact in float): the update uses the combined values. */
static void test_hook_values_are_used(void **state)
{
    (void)state;
    mom_net *net;
    float *x;
    mom_batch b;
    small_ff(&net, &x, &b, 12);
    const size_t n = mom_net_num_params(net);
    float *theta0 = malloc(n * sizeof(float)), *after = malloc(n * sizeof(float));
    memcpy(theta0, mom_net_params(net), n * sizeof(float));

    recorder r = {.scale = 2.0f};
    mom_optim *a = make_optim_nag_like(MOM_OPTIM_NAG, n);
    assert_ok(mom_optim_set_reduce(a, record, &r));
    for (int s = 0; s < 5; s++)
        assert_ok(mom_optim_step_net(NULL, a, net, &b));
    memcpy(after, mom_net_params(net), n * sizeof(float));

    memcpy(mom_net_params(net), theta0, n * sizeof(float));
    mom_optim *c = make_optim_nag_like(MOM_OPTIM_NAG, n);
    mom_sched *lr2;
    assert_ok(mom_sched_create_const(&lr2, 2 * 0.05, NULL));
    assert_ok(mom_optim_set_lr(c, lr2));
    mom_sched_destroy(lr2);
    for (int s = 0; s < 5; s++)
        assert_ok(mom_optim_step_net(NULL, c, net, &b));
    assert_memory_equal(after, mom_net_params(net), n * sizeof(float));
    mom_optim_destroy(a);
    mom_optim_destroy(c);
    mom_net_destroy(net);
    free(theta0);
    free(after);
    free(x);
}

/* A combined gradient that is not finite diverges on every worker alike, with state restored. */
static int poison(void *values, size_t count, int type, int what, void *user_data)
{
    (void)user_data;
    if (what == MOM_REDUCE_GRADIENT && type == MOM_REDUCE_FLOAT && count > 3)
        ((float *)values)[3] = INFINITY;
    return 0;
}

static void test_failures_first_order(void **state)
{
    (void)state;
    mom_net *net;
    float *x;
    mom_batch b;
    small_ff(&net, &x, &b, 12);
    const size_t n = mom_net_num_params(net);
    mom_optim *opt = make_optim_nag_like(MOM_OPTIM_NAG, n);
    assert_ok(mom_optim_step_net(NULL, opt, net, &b)); /* a nonzero velocity */
    float *th = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    memcpy(th, mom_net_params(net), n * sizeof(float));
    memcpy(v, mom_optim_velocity(opt), n * sizeof(float));

    const int codes[] = {MOM_E_IO, 5};
    const int expect[] = {MOM_E_IO, MOM_E_INVALID};
    for (size_t fail_at = 1; fail_at <= 2; fail_at++)
        for (int c = 0; c < 2; c++) {
            recorder r = {.scale = 1.0f, .fail_at = fail_at, .fail_rc = codes[c]};
            assert_ok(mom_optim_set_reduce(opt, record, &r));
            assert_status(mom_optim_step_net(NULL, opt, net, &b), expect[c]);
            assert_non_null(strstr(mom_optim_errmsg(opt), "reduction hook"));
            assert_non_null(strstr(mom_optim_errmsg(opt), fail_at == 1 ? "loss" : "gradient"));
            assert_memory_equal(th, mom_net_params(net), n * sizeof(float));
            assert_memory_equal(v, mom_optim_velocity(opt), n * sizeof(float));
            assert_int_equal(mom_optim_steps(opt), 1);
        }
    assert_ok(mom_optim_set_reduce(opt, poison, NULL));
    assert_status(mom_optim_step_net(NULL, opt, net, &b), MOM_E_DIVERGED);
    assert_memory_equal(th, mom_net_params(net), n * sizeof(float));
    assert_memory_equal(v, mom_optim_velocity(opt), n * sizeof(float));
    /* no step is left begun: removing the hook and stepping works */
    assert_ok(mom_optim_set_reduce(opt, NULL, NULL));
    assert_ok(mom_optim_step_net(NULL, opt, net, &b));
    assert_int_equal(mom_optim_steps(opt), 2);
    mom_optim_destroy(opt);
    mom_net_destroy(net);
    free(th);
    free(v);
    free(x);
}

static void count_kinds(const recorder *r, size_t from, size_t *by_what)
{
    for (int w = 0; w <= MOM_REDUCE_GV; w++)
        by_what[w] = 0;
    for (size_t i = from; i < r->n && i < 4096; i++)
        by_what[r->what[i]]++;
}

/* HF: the documented order, and one call per product and per loss evaluation of the report. */
static void test_order_hf(void **state)
{
    (void)state;
    mom_net *net;
    float *x;
    mom_batch b, cb;
    small_ff(&net, &x, &b, 20);
    cb = b;
    cb.n = 8; /* a different (smaller) curvature batch */
    const size_t n = mom_net_num_params(net);
    mom_optim *opt;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_HF, n, NULL));
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_MAX_CG, 40));
    recorder r = {.scale = 1.0f};
    assert_ok(mom_optim_set_reduce(opt, record, &r));
    for (int s = 0; s < 3; s++) {
        size_t from = r.n;
        assert_ok(mom_optim_step_hf(NULL, opt, net, &b, &cb));
        assert_true(r.n - from >= 5);
        assert_int_equal(r.what[from], MOM_REDUCE_LOSS);
        assert_int_equal(r.what[from + 1], MOM_REDUCE_GRADIENT);
        assert_int_equal(r.what[from + 2], MOM_REDUCE_FISHER); /* feedforward: preconditioned */
        assert_int_equal(r.what[from + 3], MOM_REDUCE_GV);
        assert_int_equal(r.count[from + 3], n);
        size_t k[MOM_REDUCE_GV + 1];
        count_kinds(&r, from, k);
        double products, evals, tries;
        assert_ok(mom_optim_get(&products, opt, MOM_OPTIM_HF_LAST_GV_PRODUCTS));
        assert_ok(mom_optim_get(&evals, opt, MOM_OPTIM_HF_LAST_LOSS_EVALS));
        assert_ok(mom_optim_get(&tries, opt, MOM_OPTIM_HF_LAST_LS_TRIES));
        assert_int_equal(k[MOM_REDUCE_GV], (size_t)products);
        assert_int_equal(k[MOM_REDUCE_GRADIENT], 1);
        assert_int_equal(k[MOM_REDUCE_FISHER], 1);
        /* every loss-only evaluation is one LOSS (CG-backtracking, line search) or CURV_LOSS
         * (rho's two: at theta and at theta + p) call, plus the LOSS of the gradient evaluation;
         * the line search's first try is CG-backtracking's value at the chosen iterate */
        assert_int_equal(k[MOM_REDUCE_LOSS] - 1 + k[MOM_REDUCE_CURV_LOSS], (size_t)evals);
        assert_int_equal(k[MOM_REDUCE_CURV_LOSS], 2);
        assert_true(tries >= 1.0);
        assert_true(k[MOM_REDUCE_LOSS] - 1 >= (size_t)tries); /* backtracking: at least one */
    }
    mom_optim_destroy(opt);
    mom_net_destroy(net);
    free(x);
}

/* HF: a failing hook at any call of a step leaves parameters, warm start, lambda, t and the
 * report as they were. */
static void test_failures_hf(void **state)
{
    (void)state;
    mom_net *net;
    float *x;
    mom_batch b;
    small_ff(&net, &x, &b, 20);
    const size_t n = mom_net_num_params(net);
    float *p0 = malloc(n * sizeof(float)), *th = malloc(n * sizeof(float));
    float *warm = malloc(n * sizeof(float));
    memcpy(p0, mom_net_params(net), n * sizeof(float));
    mom_optim *opt;
    assert_ok(mom_optim_create(&opt, MOM_OPTIM_HF, n, NULL));
    assert_ok(mom_optim_set(opt, MOM_OPTIM_HF_MAX_CG, 20));
    assert_ok(mom_optim_step_hf(NULL, opt, net, &b, NULL));
    memcpy(th, mom_net_params(net), n * sizeof(float));
    /* how many calls the next step makes: a twin brought to the same state by the same first
     * step, then stepped with a recording hook */
    recorder probe = {.scale = 1.0f};
    mom_optim *twin;
    memcpy(mom_net_params(net), p0, n * sizeof(float));
    assert_ok(mom_optim_create(&twin, MOM_OPTIM_HF, n, NULL));
    assert_ok(mom_optim_set(twin, MOM_OPTIM_HF_MAX_CG, 20));
    assert_ok(mom_optim_step_hf(NULL, twin, net, &b, NULL));
    assert_memory_equal(th, mom_net_params(net), n * sizeof(float));
    assert_ok(mom_optim_set_reduce(twin, record, &probe));
    assert_ok(mom_optim_step_hf(NULL, twin, net, &b, NULL));
    memcpy(mom_net_params(net), th, n * sizeof(float));
    mom_optim_destroy(twin);
    assert_true(probe.n >= 5);

    memcpy(warm, mom_optim_velocity(opt), n * sizeof(float));
    double lambda0, rho0;
    assert_ok(mom_optim_get(&lambda0, opt, MOM_OPTIM_HF_LAMBDA));
    assert_ok(mom_optim_get(&rho0, opt, MOM_OPTIM_HF_LAST_RHO));
    const size_t points[] = {1, 2, 3, 4, probe.n / 2, probe.n};
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        recorder r = {.scale = 1.0f, .fail_at = points[i], .fail_rc = MOM_E_IO};
        assert_ok(mom_optim_set_reduce(opt, record, &r));
        assert_status(mom_optim_step_hf(NULL, opt, net, &b, NULL), MOM_E_IO);
        assert_non_null(strstr(mom_optim_errmsg(opt), "reduction hook"));
        assert_memory_equal(th, mom_net_params(net), n * sizeof(float));
        assert_memory_equal(warm, mom_optim_velocity(opt), n * sizeof(float));
        double lambda, rho;
        assert_ok(mom_optim_get(&lambda, opt, MOM_OPTIM_HF_LAMBDA));
        assert_ok(mom_optim_get(&rho, opt, MOM_OPTIM_HF_LAST_RHO));
        assert_true(lambda == lambda0);
        assert_memory_equal(&rho, &rho0, sizeof rho);
        assert_int_equal(mom_optim_steps(opt), 1);
    }
    mom_optim_destroy(opt);
    mom_net_destroy(net);
    free(p0);
    free(th);
    free(warm);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_first_order),
        cmocka_unit_test(test_hook_values_are_used),
        cmocka_unit_test(test_failures_first_order),
        cmocka_unit_test(test_order_hf),
        cmocka_unit_test(test_failures_hf),
        cmocka_unit_test_prestate(test_parallel, (void *)&parallel_cases[0]),
        cmocka_unit_test_prestate(test_parallel, (void *)&parallel_cases[1]),
        cmocka_unit_test_prestate(test_parallel, (void *)&parallel_cases[2]),
        cmocka_unit_test_prestate(test_parallel, (void *)&parallel_cases[3]),
        cmocka_unit_test_prestate(test_parallel, (void *)&parallel_cases[4]),
        cmocka_unit_test_prestate(test_parallel, (void *)&parallel_cases[5]),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
