/* A handle's helper threads for elementwise passes; see team.h. */
#if defined(__linux__)
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getcpu, pthread_attr_setaffinity_np */
#endif
#else
#define _POSIX_C_SOURCE 200809L
#endif
#include "team.h"

#include <stdint.h>

#include "fpenv.h"
#include "internal.h"

#if defined(MOM_HAVE_PTHREAD)
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/*
 * Job protocol. The caller publishes a job (function, argument, parts, floating-point mode) and
 * a new generation number under the mutex and signals the helpers. Parts are claimed through one
 * atomic word, slot = generation << 16 | lo << 8 | hi, the parts not yet claimed being [lo, hi):
 * the caller claims from the back (hi) and the helpers from the front (lo), so that each works
 * on a contiguous block of rows. Which end goes to whom matters: OpenBLAS with two threads leaves
 * the last rows of a product in the caller's core (measured: the derivative pass after such a
 * product took 0.16 ms with the caller at the front, 0.115 ms at the back). A claim is a
 * compare-and-swap that succeeds only while the slot still carries the claimer's generation and
 * parts are left, so a helper that wakes late, after the caller has finished the job alone and
 * perhaps published the next one, can never run a part of a job it did not read. `finished`
 * counts the parts done of the current job; the caller returns when it reaches `parts`, so
 * nothing of a job outlives the call.
 */
struct mom__team_state {
    pthread_t thread[MOM__TEAM_MAX_PARTS - 1];
    int helpers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pid_t pid;                /* the process that started the helpers */
    volatile int *fork_mark;  /* Linux: 1 in a page a fork() child sees zeroed, or NULL */
    /* under mu */
    uint64_t gen;
    int quit;
    mom__team_fn fn;
    void *arg;
    size_t parts;
    unsigned long fpcontrol;
    /* lock-free */
    _Atomic uint64_t slot;
    _Atomic size_t finished;
};

#define GEN_SHIFT 16u
#define GEN_MASK (UINT64_MAX >> GEN_SHIFT)

/* Claim and run parts of generation `gen` until none is left: from the front (lo) when `front`,
 * else from the back (hi). */
static void work(mom__team_state *s, uint64_t gen, mom__team_fn fn, void *arg, size_t parts,
                 int front)
{
    uint64_t cur = atomic_load_explicit(&s->slot, memory_order_acquire);
    for (;;) {
        uint64_t lo = (cur >> 8) & 0xffu, hi = cur & 0xffu;
        if ((cur >> GEN_SHIFT) != gen || lo >= hi)
            return;
        uint64_t part = front ? lo : hi - 1;
        uint64_t next = front ? cur + (1u << 8) : cur - 1u;
        if (!atomic_compare_exchange_weak_explicit(&s->slot, &cur, next, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* cur was reloaded */
        fn(arg, (size_t)part, parts);
        atomic_fetch_add_explicit(&s->finished, 1, memory_order_release);
        cur = atomic_load_explicit(&s->slot, memory_order_acquire);
    }
}

static void *helper_main(void *p)
{
    mom__team_state *s = p;
    uint64_t seen = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->gen == seen && !s->quit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->quit)
            break;
        seen = s->gen;
        mom__team_fn fn = s->fn;
        void *arg = s->arg;
        size_t parts = s->parts;
        unsigned long fpc = s->fpcontrol;
        pthread_mutex_unlock(&s->mu);
        mom__fpenv_adopt(fpc);
        work(s, seen, fn, arg, parts, 1);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Whether the helpers of s are threads of this process, not of a process this one was forked
 * from (a child has the parent's memory but none of its threads). */
static int helpers_here(const mom__team_state *s)
{
    return s->pid == getpid() && (s->fork_mark == NULL || *s->fork_mark == 1);
}

/* A fork() child usually has another process id, but not always (PID 1 of nested PID
 * namespaces, as in containers; a reused id). A page the kernel gives a child zeroed
 * (MADV_WIPEONFORK, Linux 4.14) tells any child: the team's own, not the allocator's, since only
 * a whole page can be marked; without it (fork_mark NULL) the process id alone decides. */
static void fork_mark_new(mom__team_state *s)
{
    s->fork_mark = NULL;
#if defined(__linux__) && defined(MADV_WIPEONFORK)
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return;
    void *pg = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pg == MAP_FAILED)
        return;
    if (madvise(pg, (size_t)page, MADV_WIPEONFORK) != 0) {
        munmap(pg, (size_t)page);
        return;
    }
    s->fork_mark = pg;
    *s->fork_mark = 1;
#endif
}

static void fork_mark_free(mom__team_state *s)
{
#if defined(__linux__) && defined(MADV_WIPEONFORK)
    if (s->fork_mark != NULL) /* in a child too: the page is there, zeroed */
        munmap((void *)s->fork_mark, (size_t)sysconf(_SC_PAGESIZE));
#endif
    s->fork_mark = NULL;
}

static int start(mom__team *t, int threads)
{
    const mom_allocator *a = &t->alloc;
    mom__team_state *s = mom__malloc(a, sizeof *s);
    if (s == NULL)
        return -1;
    s->gen = 0;
    s->quit = 0;
    s->fn = NULL;
    s->arg = NULL;
    s->parts = 0;
    s->fpcontrol = 0;
    atomic_init(&s->slot, 0);
    atomic_init(&s->finished, 0);
    s->pid = getpid();
    fork_mark_new(s);
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        fork_mark_free(s);
        mom__free(a, s);
        return -1;
    }
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        fork_mark_free(s);
        mom__free(a, s);
        return -1;
    }
    /* Helpers are born with every asynchronous signal blocked, so that those go to the
     * application's threads. The synchronous ones stay open: a fault or a floating-point trap
     * (the caller's MXCSR is adopted, traps included) raised by a helper's own instruction must
     * reach the application's handler, as it would on the calling thread; blocked, the kernel
     * would kill the process instead. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGTRAP);
#ifdef SIGSYS
    sigdelset(&all, SIGSYS);
#endif
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int want = (threads < MOM__TEAM_MAX_PARTS ? threads : MOM__TEAM_MAX_PARTS) - 1;
    pthread_attr_t attr, *pa = NULL;
#if defined(__linux__) && defined(CPU_SET)
    /* Keep helpers off the CPU the caller runs on now, when the process may use others: a
     * helper woken while the BLAS's own idle threads still spin elsewhere was otherwise often
     * placed on the caller's CPU, where it can only run while the caller waits (measured:
     * MNIST's passes then took as long as on one thread). Only the helpers' own placement is
     * restricted; the caller's threads are never touched. */
    cpu_set_t allowed;
    int here = sched_getcpu();
    if (here >= 0 && here < CPU_SETSIZE &&
        sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_ISSET(here, &allowed) &&
        CPU_COUNT(&allowed) > 1 && pthread_attr_init(&attr) == 0) {
        CPU_CLR(here, &allowed);
        if (pthread_attr_setaffinity_np(&attr, sizeof allowed, &allowed) == 0)
            pa = &attr;
        else
            pthread_attr_destroy(&attr);
    }
#endif
    for (s->helpers = 0; s->helpers < want; s->helpers++)
        if (pthread_create(&s->thread[s->helpers], pa, helper_main, s) != 0)
            break;
    if (pa != NULL)
        pthread_attr_destroy(pa);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (s->helpers == 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        fork_mark_free(s);
        mom__free(a, s);
        return -1;
    }
    t->st = s; /* with fewer helpers than wanted if some could not be created */
    return 0;
}

void mom__team_stop(mom__team *t)
{
    mom__team_state *s = t->st;
    if (s == NULL)
        return;
    /* joining is a cancellation point: a cancelled caller would leave the helpers unjoined
     * and the state leaked, so cancellation waits until the team is gone (per-thread state) */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    if (helpers_here(s)) {
        pthread_mutex_lock(&s->mu);
        s->quit = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < s->helpers; i++)
            pthread_join(s->thread[i], NULL);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
    /* in a forked child the helper does not exist: its mutex and condition variable are left
     * as they are (they may be held by the parent's helper) and only the memory is freed */
    fork_mark_free(s);
    mom__free(&t->alloc, s);
    t->st = NULL;
    int ignored;
    pthread_setcancelstate(cancel_state, &ignored);
}

/* The threads the team wants now; starts the helpers the first time it wants more than one. */
static int prepare(mom__team *t)
{
    int threads = t->threads > 0 ? t->threads : mom__blas_threads();
    if (threads > 1 && t->st == NULL && !t->failed && start(t, threads) != 0)
        t->failed = 1;
    return threads;
}

void mom__team_prepare(mom__team *t) { (void)prepare(t); }

void mom__team_run(mom__team *t, mom__team_fn fn, void *arg, size_t parts)
{
    if (parts < 2) { /* the common small case (an RNN's BPTT asks once per chunk) */
        if (parts == 1)
            fn(arg, 0, 1);
        return;
    }
    int threads = prepare(t);
    mom__team_state *s = t->st;
    if (threads < 2 || s == NULL || !helpers_here(s)) {
        for (size_t p = 0; p < parts; p++)
            fn(arg, p, parts);
        return;
    }
    pthread_mutex_lock(&s->mu);
    /* generations run 1..2^48-1 and wrap to 1: never 0, where the helpers start */
    uint64_t gen = (s->gen + 1) & GEN_MASK;
    s->gen = gen = gen ? gen : 1;
    s->fn = fn;
    s->arg = arg;
    s->parts = parts;
    s->fpcontrol = mom__fpenv_control();
    atomic_store_explicit(&s->finished, 0, memory_order_relaxed);
    atomic_store_explicit(&s->slot, gen << GEN_SHIFT | (uint64_t)parts, memory_order_release);
    if (s->helpers == 1)
        pthread_cond_signal(&s->cv);
    else
        pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    work(s, gen, fn, arg, parts, 0);
    /* helpers are running the parts they claimed: a short wait, spinning briefly, then yielding
     * the core (which also lets a helper run where threads share cores, as under valgrind) */
    for (unsigned spins = 0; atomic_load_explicit(&s->finished, memory_order_acquire) < parts;
         spins++) {
        if (spins >= 64)
            sched_yield();
#if defined(__x86_64__) || defined(__i386__)
        else
            __builtin_ia32_pause();
#endif
    }
}

#else /* no threads: every job runs on the caller */

void mom__team_stop(mom__team *t) { t->st = NULL; }

void mom__team_prepare(mom__team *t) { (void)t; }

void mom__team_run(mom__team *t, mom__team_fn fn, void *arg, size_t parts)
{
    (void)t;
    for (size_t p = 0; p < parts; p++)
        fn(arg, p, parts);
}

#endif

void mom__team_init(mom__team *t, const mom_allocator *a, int threads)
{
    t->alloc = *a;
    t->threads = threads;
    t->failed = 0;
    t->st = NULL;
}

size_t mom__team_parts(size_t count, size_t rows, size_t least, size_t grain)
{
    if (count < least || rows < 2 || grain == 0)
        return 1;
    size_t p = count / grain;
    p = p < 2 ? 2 : p;
    p = p > MOM__TEAM_MAX_PARTS ? MOM__TEAM_MAX_PARTS : p;
    return p < rows ? p : rows;
}

/* OpenBLAS tells its thread count through openblas_get_num_threads(); other BLAS libraries do
 * not have it, and then the weak reference stays NULL. */
#if defined(__GNUC__) && defined(__ELF__)
extern int openblas_get_num_threads(void) __attribute__((weak));
int mom__blas_threads(void)
{
    return openblas_get_num_threads ? openblas_get_num_threads() : 0;
}
#else
int mom__blas_threads(void) { return 0; }
#endif
