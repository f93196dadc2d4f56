/* Helper threads of the elementwise passes (lib/team.c) and the MOM_NET_THREADS option: every
 * part runs exactly once, in the caller's floating-point mode, also after fork() and when the
 * helpers cannot be started; a network gives the same bits with any number of threads. */
#if defined(__linux__)
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* unshare() */
#endif
#else
#define _POSIX_C_SOURCE 200809L
#endif
#include "testutil.h"

#if defined(__linux__)
#include <sched.h>
#endif

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/fpenv.h"
#include "../lib/internal.h"
#include "../lib/team.h"

/* ---- the team itself --------------------------------------------------------------------- */

typedef struct count_job {
    _Atomic int runs[MOM__TEAM_MAX_PARTS];
    _Atomic int by_helper; /* parts run on a thread other than `caller` */
    pthread_t caller;
    long sleep_ns;         /* per part, to give the helpers time to join */
    unsigned long control[MOM__TEAM_MAX_PARTS];
} count_job;

static void count_part(void *arg, size_t part, size_t parts)
{
    count_job *j = arg;
    assert_true(part < parts);
    atomic_fetch_add(&j->runs[part], 1);
    if (!pthread_equal(pthread_self(), j->caller))
        atomic_fetch_add(&j->by_helper, 1);
    j->control[part] = mom__fpenv_control();
    if (j->sleep_ns > 0) {
        struct timespec ts = {0, j->sleep_ns};
        nanosleep(&ts, NULL);
    }
}

/* A fresh job for the calling thread, each part sleeping sleep_ns. */
static void job_reset(count_job *j, long sleep_ns)
{
    memset(j, 0, sizeof *j);
    j->caller = pthread_self();
    j->sleep_ns = sleep_ns;
}

static void check_once(count_job *j, size_t parts)
{
    for (size_t p = 0; p < MOM__TEAM_MAX_PARTS; p++) {
        int want = p < parts ? 1 : 0;
        if (atomic_load(&j->runs[p]) != want)
            fail_msg("part %zu of %zu ran %d times", p, parts, atomic_load(&j->runs[p]));
    }
}

/* A team with the default allocator. */
static void team_default(mom__team *t, int threads)
{
    mom_allocator a;
    assert_ok(mom__alloc_init(&a, NULL));
    mom__team_init(t, &a, threads);
}

static void test_parts_rule(void **state)
{
    (void)state;
    assert_int_equal(mom__team_parts(1000, 100, 32768, 4096), 1);     /* too small */
    assert_int_equal(mom__team_parts(32768, 100, 32768, 4096), 8);    /* 8 grains */
    assert_int_equal(mom__team_parts(40000, 100, 32768, 16384), 2);   /* at least 2 */
    assert_int_equal(mom__team_parts(1u << 30, 100, 32768, 4096), 8); /* at most 8 */
    assert_int_equal(mom__team_parts(1u << 30, 3, 32768, 4096), 3);   /* at most the rows */
    assert_int_equal(mom__team_parts(1u << 30, 1, 32768, 4096), 1);   /* one row: no split */
}

/* Thousands of jobs of every size in a row: each part exactly once per job, whatever the
 * helpers' timing (the generation protocol), with 1, 2, 3 and 8 threads. */
static void test_every_part_once(void **state)
{
    (void)state;
    const int threads[] = {1, 2, 3, 8};
    for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
        mom__team t;
        team_default(&t, threads[ti]);
        int helped = 0;
        for (int job = 0; job < 3000; job++) {
            size_t parts = 1 + (size_t)job % MOM__TEAM_MAX_PARTS;
            count_job j;
            job_reset(&j, job % 100 == 0 ? 2000000 : 0); /* now and then 2 ms per part */
            mom__team_run(&t, count_part, &j, parts);
            check_once(&j, parts);
            helped += atomic_load(&j.by_helper);
            if (threads[ti] == 1)
                assert_int_equal(atomic_load(&j.by_helper), 0);
        }
        if (threads[ti] > 1 && helped == 0)
            fail_msg("%d threads: no part ever ran on a helper", threads[ti]);
        mom__team_stop(&t);
        mom__team_stop(&t); /* twice is harmless */
    }
}

/* Parts run in the caller's floating-point control mode, whichever thread runs them. */
static void test_caller_fp_mode(void **state)
{
    (void)state;
    mom__team t;
    team_default(&t, 2);
    for (int on = 0; on <= 1; on++) {
        mom__fpenv e;
        mom__fpenv_enter(&e, on);
        unsigned long want = mom__fpenv_control();
        for (int rep = 0; rep < 50; rep++) {
            count_job j;
            job_reset(&j, 200000);
            mom__team_run(&t, count_part, &j, 4);
            check_once(&j, 4);
            for (size_t p = 0; p < 4; p++)
                if (j.control[p] != want)
                    fail_msg("part %zu ran with control %#lx, caller %#lx", p, j.control[p],
                             want);
        }
        mom__fpenv_leave(&e);
    }
    mom__team_stop(&t);
}

/* Helpers block the asynchronous signals (they belong to the application's threads) but not the
 * synchronous ones: a fault or floating-point trap in a helper must reach the application's
 * handler instead of killing the process. */
typedef struct mask_job {
    pthread_t caller;
    _Atomic int helper_parts, sync_blocked, async_open;
} mask_job;

static void mask_part(void *arg, size_t part, size_t parts)
{
    (void)part;
    (void)parts;
    mask_job *j = arg;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL); /* give the helpers time to take parts */
    if (pthread_equal(pthread_self(), j->caller))
        return;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    atomic_fetch_add(&j->helper_parts, 1);
    const int sync_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};
    for (size_t k = 0; k < sizeof sync_sigs / sizeof sync_sigs[0]; k++)
        if (sigismember(&cur, sync_sigs[k]))
            atomic_fetch_add(&j->sync_blocked, 1);
    if (!sigismember(&cur, SIGINT) || !sigismember(&cur, SIGTERM))
        atomic_fetch_add(&j->async_open, 1);
}

static void test_helper_signal_mask(void **state)
{
    (void)state;
    mom__team t;
    team_default(&t, 4);
    mask_job j = {.caller = pthread_self()};
    for (int rep = 0; rep < 20 && atomic_load(&j.helper_parts) == 0; rep++)
        mom__team_run(&t, mask_part, &j, 4);
    mom__team_stop(&t);
    assert_true(atomic_load(&j.helper_parts) > 0);
    assert_int_equal(atomic_load(&j.sync_blocked), 0);
    assert_int_equal(atomic_load(&j.async_open), 0);
}

/* A team of 2 threads whose helper has been started by a first job. */
static void team_started(mom__team *t)
{
    team_default(t, 2);
    count_job j;
    job_reset(&j, 0);
    mom__team_run(t, count_part, &j, 8);
    check_once(&j, 8);
}

/* A child process after fork() has no helpers: its jobs run on its calling thread. */
static void test_after_fork(void **state)
{
    (void)state;
    mom__team t;
    team_started(&t);
    count_job j;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20); /* a hang fails the test instead of blocking it */
        int ok = 1;
        for (int rep = 0; rep < 20 && ok; rep++) {
            count_job c;
            job_reset(&c, 0);
            mom__team_run(&t, count_part, &c, 8);
            for (size_t p = 0; p < 8; p++)
                ok = ok && atomic_load(&c.runs[p]) == 1;
            ok = ok && atomic_load(&c.by_helper) == 0;
        }
        mom__team_stop(&t); /* frees without joining threads the child does not have */
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_true(waitpid(pid, &status, 0) == pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    job_reset(&j, 0);
    mom__team_run(&t, count_part, &j, 8); /* the parent's helpers still work */
    check_once(&j, 8);
    mom__team_stop(&t);
}

#if defined(__linux__) && defined(CLONE_NEWPID)
static void exit_on_alarm(int sig)
{
    (void)sig;
    _exit(3); /* the process hung */
}

/* Run `body` in a child that is PID 1 of a new PID namespace; its exit status, or 77 when the
 * system does not allow new namespaces here. */
static int in_new_pid_namespace(int (*body)(void *), void *arg)
{
    fflush(NULL);
    pid_t outer = fork();
    if (outer < 0)
        return -1;
    if (outer == 0) {
        if (unshare(CLONE_NEWPID) != 0)
            _exit(77);
        pid_t init = fork(); /* the first child in the namespace is its PID 1 */
        if (init < 0)
            _exit(78);
        if (init == 0) {
            signal(SIGALRM, exit_on_alarm); /* PID 1 ignores signals it has no handler for */
            alarm(20);
            _exit(body(arg));
        }
        int st = 0;
        if (waitpid(init, &st, 0) != init)
            _exit(79);
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 80);
    }
    int st = 0;
    if (waitpid(outer, &st, 0) != outer)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void *idle_thread(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

/* The forked child's part: it starts a thread of its own (which gets the thread id the parent's
 * first helper had in its namespace), jobs run on this thread, then the team is stopped. */
static int stop_team_body(void *arg)
{
    mom__team *t = arg;
    pthread_t own;
    if (pthread_create(&own, NULL, idle_thread, NULL) != 0)
        return 2;
    count_job j;
    job_reset(&j, 0);
    mom__team_run(t, count_part, &j, 8);
    for (size_t p = 0; p < 8; p++)
        if (atomic_load(&j.runs[p]) != 1)
            return 1;
    mom__team_stop(t);
    return 0;
}

/* In PID 1 of a namespace: start helpers, then fork a child into a further new namespace, where
 * it is PID 1 too. The child must see that the helpers are not its own: its jobs run, and
 * stopping the team does not wait for threads that do not exist. */
static int same_pid_child(void *arg)
{
    (void)arg;
    mom__team t;
    team_default(&t, 2);
    int helped = 0;
    for (int rep = 0; rep < 200 && !helped; rep++) { /* until a helper has surely started */
        count_job j;
        job_reset(&j, 20000);
        mom__team_run(&t, count_part, &j, 8);
        helped = atomic_load(&j.by_helper) > 0;
    }
    if (!helped)
        return 76;
    if (getpid() != 1)
        return 75;
    int rc = in_new_pid_namespace(stop_team_body, &t);
    mom__team_stop(&t); /* the parent's own helpers are joined as usual */
    return rc;
}
#endif

/* A child whose process id equals the one that started the helpers (PID 1 of two nested PID
 * namespaces; also a reused id) does not mistake the parent's helpers for its own: stopping the
 * team used to wait forever for them (Linux, where new PID namespaces are allowed). */
static void test_fork_same_pid(void **state)
{
    (void)state;
#if defined(__linux__) && defined(CLONE_NEWPID)
    int rc = in_new_pid_namespace(same_pid_child, NULL);
    if (rc == 77) {
        print_message("# new PID namespaces not allowed here: not tested\n");
        return;
    }
    if (rc == 3)
        fail_msg("the child with the same process id hung stopping the team");
    assert_int_equal(rc, 0);
#else
    print_message("# not Linux: not tested\n");
#endif
}

typedef struct cancel_case {
    mom__team *t;
    _Atomic int go, stopped;
} cancel_case;

static void *stop_with_cancel_pending(void *arg)
{
    cancel_case *c = arg;
    while (!atomic_load(&c->go)) /* no cancellation point while the request arrives */
        ;
    mom__team_stop(c->t); /* joins the helpers: a cancellation point inside */
    atomic_store(&c->stopped, 1);
    pthread_testcancel();
    return NULL;
}

/* A cancellation request pending when the team is stopped waits until the team is gone: a
 * caller cancelled inside the join would leave the helpers unjoined and the state leaked. */
static void test_stop_defers_cancel(void **state)
{
    (void)state;
    mom__team t;
    team_started(&t);
    cancel_case c = {&t, 0, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_with_cancel_pending, &c), 0);
    assert_int_equal(pthread_cancel(th), 0);
    atomic_store(&c.go, 1);
    void *ret = NULL;
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_true(ret == PTHREAD_CANCELED);
    assert_int_equal(atomic_load(&c.stopped), 1);
    assert_null(t.st);
}

/* Without memory for its state the team stays serial, and still runs every part. */
static void test_no_memory(void **state)
{
    (void)state;
    test_alloc ta;
    test_alloc_init(&ta, 1);
    mom__team t;
    mom__team_init(&t, &ta.a, 2);
    for (int rep = 0; rep < 3; rep++) {
        count_job j;
        job_reset(&j, 0);
        mom__team_run(&t, count_part, &j, 5);
        check_once(&j, 5);
        assert_int_equal(atomic_load(&j.by_helper), 0);
    }
    assert_int_equal(ta.failed, 1);
    assert_int_equal(ta.calls, 1); /* tried once, not at every job */
    mom__team_stop(&t);
    assert_int_equal(ta.live, 0);
}

/* ---- networks ---------------------------------------------------------------------------- */

enum { NB = 256, NIN = 8, NH = 128, NOUT = 128 };

typedef struct fixture {
    float x[NB * NIN], t[NB * NOUT];
    mom_batch b;
} fixture;

static void fill(float *v, size_t n, uint64_t seed, double lo, double hi)
{
    mom_rng *r;
    assert_ok(mom_rng_create(&r, seed, 0, NULL));
    assert_ok(mom_rng_fill_uniform(r, v, n, lo, hi));
    mom_rng_destroy(r);
}

static fixture *make_fixture(void)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fill(f->x, NB * NIN, 11, 0.0, 1.0);
    fill(f->t, NB * NOUT, 12, 0.0, 1.0);
    f->b = (mom_batch){.n = NB, .inputs = f->x, .targets = f->t};
    return f;
}

/* A small net (2,200 parameters, cheap under valgrind) whose 128-wide hidden layer and output
 * still give shared passes: 256 x 128 = 32,768 values, cut into 8 parts. */
static mom_net *make_net(int output, int act, double threads, const mom_allocator *alloc)
{
    const size_t sizes[] = {NIN, NH, 4, NOUT};
    const int acts[] = {act, MOM_ACT_LINEAR};
    mom_net *net;
    assert_ok(mom_net_create_ff(&net, 3, sizes, acts, output, alloc));
    assert_ok(mom_init_preset_ff(net, 5));
    assert_ok(mom_net_set(net, MOM_NET_THREADS, threads));
    return net;
}

typedef struct results {
    double loss, metric;
    float *grad, *gv, *out, *step;
} results;

static void compute(results *r, mom_net *net, const mom_batch *b)
{
    size_t P = mom_net_num_params(net);
    r->grad = malloc(P * sizeof *r->grad);
    r->gv = malloc(P * sizeof *r->gv);
    r->out = malloc((size_t)NB * NOUT * sizeof *r->out);
    r->step = malloc(P * sizeof *r->step);
    float *v = malloc(P * sizeof *v);
    assert_true(r->grad && r->gv && r->out && r->step && v);
    fill(v, P, 13, -1.0, 1.0);
    assert_ok(mom_net_loss_grad(&r->loss, r->grad, net, b, NULL));
    assert_ok(mom_net_metric(&r->metric, net, b, NULL, MOM_METRIC_SQUARED_ERROR, 0.0));
    assert_ok(mom_net_forward(r->out, net, b, NULL, mom_net_num_layers(net) - 1));
    assert_ok(mom_net_gv_begin(net, b, NULL));
    assert_ok(mom_net_gv(r->gv, net, v, 0.0));
    /* three NAG steps and one HF step change the parameters */
    mom_optim *nag, *hf;
    assert_ok(mom_optim_create(&nag, MOM_OPTIM_NAG, P, NULL));
    mom_sched *lr;
    assert_ok(mom_sched_create_const(&lr, 1e-5, NULL));
    assert_ok(mom_optim_set_lr(nag, lr));
    mom_sched_destroy(lr);
    assert_ok(mom_optim_create(&hf, MOM_OPTIM_HF, P, NULL));
    assert_ok(mom_optim_set(hf, MOM_OPTIM_HF_MAX_CG, 10)); /* a short step (valgrind runs it) */
    double l;
    for (int i = 0; i < 3; i++)
        if (mom_optim_step_net(&l, nag, net, b) != MOM_OK)
            fail_msg("NAG step %d: %s (loss %g)", i, mom_optim_errmsg(nag), r->loss);
    if (mom_optim_step_net(&l, hf, net, b) != MOM_OK)
        fail_msg("HF step: %s (loss %g)", mom_optim_errmsg(hf), r->loss);
    memcpy(r->step, mom_net_params(net), P * sizeof *r->step);
    mom_optim_destroy(nag);
    mom_optim_destroy(hf);
    free(v);
}

static void free_results(results *r)
{
    free(r->grad);
    free(r->gv);
    free(r->out);
    free(r->step);
}

static void test_net_same_bits(void **state)
{
    (void)state;
    fixture *f = make_fixture();
    const int outputs[] = {MOM_OUT_LOGISTIC_XENT, MOM_OUT_SOFTMAX_XENT, MOM_OUT_LINEAR_SQUARED};
    const int acts[] = {MOM_ACT_LOGISTIC, MOM_ACT_RELU, MOM_ACT_TANH};
    for (int k = 0; k < 3; k++) {
        if (outputs[k] == MOM_OUT_SOFTMAX_XENT) /* targets: a distribution per case */
            for (size_t c = 0; c < NB; c++)
                for (size_t j = 0; j < NOUT; j++)
                    f->t[c * NOUT + j] = j == c % NOUT ? 1.0f : 0.0f;
        mom_net *n1 = make_net(outputs[k], acts[k], 1, NULL);
        results r1;
        compute(&r1, n1, &f->b);
        size_t P = mom_net_num_params(n1);
        const double threads[] = {2, 3, 8, 0};
        for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
            mom_net *n = make_net(outputs[k], acts[k], threads[ti], NULL);
            results r;
            compute(&r, n, &f->b);
            if (r.loss != r1.loss || r.metric != r1.metric)
                fail_msg("output %d, %g threads: loss %.17g vs %.17g", outputs[k], threads[ti],
                         r.loss, r1.loss);
            assert_memory_equal(r.grad, r1.grad, P * sizeof(float));
            assert_memory_equal(r.gv, r1.gv, P * sizeof(float));
            assert_memory_equal(r.out, r1.out, (size_t)NB * NOUT * sizeof(float));
            assert_memory_equal(r.step, r1.step, P * sizeof(float));
            free_results(&r);
            mom_net_destroy(n);
        }
        free_results(&r1);
        mom_net_destroy(n1);
    }
    free(f);
}

/* ---- recurrent networks: the recurrence by groups of sequences ------------------------------ */

/* 96 sequences of up to 90 steps, 32 hidden units: two groups of 48 (rnn.c, rnn_groups()). */
enum { RN = 96, RT = 90, RI = 3, RH = 32, RO = 2 };

typedef struct rnn_fixture {
    float x[RT * RN * RI], t[RT * RN * RO], mask[RT * RN];
    size_t len[RN];
} rnn_fixture;

static rnn_fixture *make_rnn_fixture(void)
{
    rnn_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fill(f->x, RT * RN * RI, 21, -1.0, 1.0);
    fill(f->t, RT * RN * RO, 22, -1.0, 1.0);
    fill(f->mask, RT * RN, 23, 0.0, 1.0);
    for (size_t s = 0; s < RN; s++)
        f->len[s] = RT - (s * 7) % 31; /* 60..90 */
    return f;
}

/* Sequences [s0, s0 + n) of the fixture, copied into time-major arrays of their own. */
static mom_batch rnn_sub(const rnn_fixture *f, rnn_fixture *sub, size_t s0, size_t n, int dense)
{
    for (size_t t = 0; t < RT; t++)
        for (size_t s = 0; s < n; s++) {
            memcpy(sub->x + (t * n + s) * RI, f->x + (t * RN + s0 + s) * RI, RI * sizeof(float));
            memcpy(sub->t + (t * n + s) * RO, f->t + (t * RN + s0 + s) * RO, RO * sizeof(float));
            sub->mask[t * n + s] = f->mask[t * RN + s0 + s];
        }
    memcpy(sub->len, f->len + s0, n * sizeof *sub->len);
    return (mom_batch){.n = n, .steps = RT, .inputs = sub->x, .targets = sub->t,
                       .mask = dense ? sub->mask : NULL, .lengths = sub->len};
}

typedef struct rnn_results {
    double loss;
    float grad[RH * RI + RH * RH + RH + RO * RH + RO], gv[RH * RI + RH * RH + RH + RO * RH + RO];
    float out[RT * RN * RO];
} rnn_results;

static void rnn_compute(rnn_results *r, double threads, const mom_batch *b)
{
    mom_net *net;
    assert_ok(mom_net_create_rnn(&net, RI, RH, RO, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, NULL));
    assert_ok(mom_init_preset_rnn(net, 0.1, 7, NULL));
    assert_ok(mom_net_set(net, MOM_NET_THREADS, threads));
    size_t P = mom_net_num_params(net);
    assert_int_equal(P, sizeof r->grad / sizeof r->grad[0]);
    float v[sizeof r->grad / sizeof r->grad[0]];
    fill(v, P, 24, -1.0, 1.0);
    assert_ok(mom_net_loss_grad(&r->loss, r->grad, net, b, NULL));
    assert_ok(mom_net_gv_begin(net, b, NULL));
    assert_ok(mom_net_gv(r->gv, net, v, 0.5)); /* with structural damping */
    assert_ok(mom_net_forward(r->out, net, b, NULL, mom_net_num_layers(net) - 1));
    mom_net_destroy(net);
}

/* Any thread count gives the same bits, in compact (last step counted) and dense (every step
 * weighted) mode; and the grouped batch of 96 gives what its two halves, computed as batches of
 * 48 (one group each), give: loss, gradient and G v are means over the sequences. */
static void test_rnn_groups(void **state)
{
    (void)state;
    rnn_fixture *f = make_rnn_fixture(), *h0 = calloc(1, sizeof *h0), *h1 = calloc(1, sizeof *h1);
    rnn_results *r1 = malloc(sizeof *r1), *r = malloc(sizeof *r), *a = malloc(sizeof *a),
                *c = malloc(sizeof *c);
    assert_true(h0 && h1 && r1 && r && a && c);
    const size_t P = sizeof r->grad / sizeof r->grad[0];
    for (int dense = 0; dense < 2; dense++) {
        rnn_fixture *whole = calloc(1, sizeof *whole);
        assert_non_null(whole);
        mom_batch b = rnn_sub(f, whole, 0, RN, dense);
        rnn_compute(r1, 1, &b);
        const double threads[] = {2, 8}; /* 8: more threads than groups */
        for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
            rnn_compute(r, threads[ti], &b);
            if (r->loss != r1->loss)
                fail_msg("dense %d, %g threads: loss %.17g vs %.17g", dense, threads[ti], r->loss,
                         r1->loss);
            assert_memory_equal(r->grad, r1->grad, sizeof r->grad);
            assert_memory_equal(r->gv, r1->gv, sizeof r->gv);
            assert_memory_equal(r->out, r1->out, sizeof r->out);
        }
        mom_batch b0 = rnn_sub(f, h0, 0, RN / 2, dense), b1 = rnn_sub(f, h1, RN / 2, RN / 2, dense);
        rnn_compute(a, 2, &b0);
        rnn_compute(c, 2, &b1);
        assert_true(fabs(r1->loss - 0.5 * (a->loss + c->loss)) <= 1e-6 * fabs(r1->loss));
        double gmax = 0.0, vmax = 0.0;
        for (size_t i = 0; i < P; i++) {
            gmax = fmax(gmax, fabs(r1->grad[i]));
            vmax = fmax(vmax, fabs(r1->gv[i]));
        }
        assert_true(gmax > 0.0 && vmax > 0.0);
        for (size_t i = 0; i < P; i++) {
            double g = 0.5 * ((double)a->grad[i] + c->grad[i]);
            double gv = 0.5 * ((double)a->gv[i] + c->gv[i]);
            if (fabs(r1->grad[i] - g) > 1e-5 * gmax || fabs(r1->gv[i] - gv) > 1e-5 * vmax)
                fail_msg("dense %d, parameter %zu: gradient %g vs halves %g, G v %g vs %g", dense,
                         i, (double)r1->grad[i], g, (double)r1->gv[i], gv);
        }
        for (size_t t = 0; t < RT; t++) /* outputs row by row */
            for (size_t s = 0; s < RN; s++) {
                const float *half = s < RN / 2 ? a->out + (t * (RN / 2) + s) * RO
                                               : c->out + (t * (RN / 2) + s - RN / 2) * RO;
                for (size_t o = 0; o < RO; o++)
                    assert_true(fabsf(r1->out[(t * RN + s) * RO + o] - half[o]) <= 1e-6f);
            }
        free(whole);
    }
    free(f);
    free(h0);
    free(h1);
    free(r1);
    free(r);
    free(a);
    free(c);
}

/* NAG's streaming passes inside mom_optim_step_net() are shared too (>= 65,536 parameters):
 * the same bits for any thread count, and the same as mom_optim_begin() + loss_grad + end. */
static void test_nag_update_same_bits(void **state)
{
    (void)state;
    enum { N = 8, W = 256 };
    const size_t sizes[] = {W, W, W};
    const int acts[] = {MOM_ACT_TANH};
    float x[N * W], t[N * W];
    fill(x, N * W, 21, -1.0, 1.0);
    fill(t, N * W, 22, -1.0, 1.0);
    mom_batch b = {.n = N, .inputs = x, .targets = t};
    float *ref = NULL;
    size_t P = 0;
    for (int k = 0; k < 4; k++) {
        mom_net *net;
        assert_ok(mom_net_create_ff(&net, 2, sizes, acts, MOM_OUT_LINEAR_SQUARED, NULL));
        assert_ok(mom_init_preset_ff(net, 3));
        P = mom_net_num_params(net);
        assert_true(P >= 65536);
        mom_optim *opt;
        mom_sched *lr;
        assert_ok(mom_optim_create(&opt, MOM_OPTIM_NAG, P, NULL));
        assert_ok(mom_sched_create_const(&lr, 1e-3, NULL));
        assert_ok(mom_optim_set_lr(opt, lr));
        mom_sched_destroy(lr);
        float *g = malloc(P * sizeof *g);
        assert_non_null(g);
        const double threads[] = {1, 2, 8, 2};
        assert_ok(mom_net_set(net, MOM_NET_THREADS, threads[k]));
        for (int step = 0; step < 5; step++) {
            double l;
            if (k < 3) {
                assert_ok(mom_optim_step_net(&l, opt, net, &b));
            } else { /* the caller-driven path */
                const float *pt;
                assert_ok(mom_optim_begin(&pt, opt, mom_net_params(net)));
                assert_ok(mom_net_loss_grad(&l, g, net, &b, pt));
                assert_ok(mom_optim_end(opt, mom_net_params(net), l, g));
            }
        }
        if (ref == NULL) {
            ref = malloc(P * sizeof *ref);
            assert_non_null(ref);
            memcpy(ref, mom_net_params(net), P * sizeof *ref);
        } else {
            assert_memory_equal(ref, mom_net_params(net), P * sizeof *ref);
        }
        free(g);
        mom_optim_destroy(opt);
        mom_net_destroy(net);
    }
    free(ref);
}

/* The helpers are started by the first call; later calls allocate nothing, and destroy frees
 * everything. */
static void test_net_no_allocation_after_first(void **state)
{
    (void)state;
    fixture *f = make_fixture();
    test_alloc ta;
    test_alloc_init(&ta, 0);
    mom_net *net = make_net(MOM_OUT_LOGISTIC_XENT, MOM_ACT_LOGISTIC, 2, &ta.a);
    size_t P = mom_net_num_params(net);
    float *g = malloc(P * sizeof *g);
    double loss;
    assert_ok(mom_net_loss_grad(&loss, g, net, &f->b, NULL));
    long calls = ta.calls;
    for (int i = 0; i < 20; i++)
        assert_ok(mom_net_loss_grad(&loss, g, net, &f->b, NULL));
    assert_int_equal(ta.calls, calls);
    /* setting the option again joins the helpers; the next call starts them again */
    assert_ok(mom_net_set(net, MOM_NET_THREADS, 3));
    assert_ok(mom_net_loss_grad(&loss, g, net, &f->b, NULL));
    mom_net_destroy(net);
    assert_int_equal(ta.live, 0);
    free(g);
    free(f);
}

/* The BLAS's thread count, when the library can learn it, is the one the environment set. */
static void test_blas_threads_detected(void **state)
{
    (void)state;
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    int got = mom__blas_threads();
    if (got == 0 || env == NULL) {
        print_message("# BLAS thread count not known here (%d) or not set (%s): skipped\n", got,
                      env ? env : "unset");
        return; /* not skip(): CMocka 1.1.5 reports it as "not ok", a failure to meson */
    }
    assert_int_equal(got, atoi(env));
}

static void test_net_option(void **state)
{
    (void)state;
    mom_net *net = make_net(MOM_OUT_LOGISTIC_XENT, MOM_ACT_LOGISTIC, 1, NULL);
    double v = -1;
    assert_ok(mom_net_get(&v, net, MOM_NET_THREADS));
    assert_true(v == 1.0);
    const double bad[] = {-1.0, 1.5, 1025.0, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_status(mom_net_set(net, MOM_NET_THREADS, bad[i]), MOM_E_INVALID);
        assert_non_null(strstr(mom_net_errmsg(net), "MOM_NET_THREADS"));
        assert_ok(mom_net_get(&v, net, MOM_NET_THREADS));
        assert_true(v == 1.0); /* unchanged */
    }
    assert_ok(mom_net_set(net, MOM_NET_THREADS, 0));
    assert_ok(mom_net_get(&v, net, MOM_NET_THREADS));
    assert_true(v == 0.0);
    mom_net_destroy(net);
    /* the default is 0: as many as the BLAS uses */
    const size_t sizes[] = {3, 2};
    assert_ok(mom_net_create_ff(&net, 1, sizes, NULL, MOM_OUT_LINEAR_SQUARED, NULL));
    assert_ok(mom_net_get(&v, net, MOM_NET_THREADS));
    assert_true(v == 0.0);
    mom_net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_rule),
        cmocka_unit_test(test_helper_signal_mask),
        cmocka_unit_test(test_every_part_once),
        cmocka_unit_test(test_caller_fp_mode),
        cmocka_unit_test(test_after_fork),
        cmocka_unit_test(test_fork_same_pid),
        cmocka_unit_test(test_stop_defers_cancel),
        cmocka_unit_test(test_no_memory),
        cmocka_unit_test(test_net_same_bits),
        cmocka_unit_test(test_nag_update_same_bits),
        cmocka_unit_test(test_rnn_groups),
        cmocka_unit_test(test_net_no_allocation_after_first),
        cmocka_unit_test(test_blas_threads_detected),
        cmocka_unit_test(test_net_option),
    };
    const char *only = getenv("MOM_TEST_FILTER"); /* e.g. "test_net_*" */
    if (only != NULL)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
