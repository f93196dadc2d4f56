/* Shared training helpers of the example trainers; see train.h. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"
#include "train.h"

int train_parse_optim(const char *name)
{
    if (strcmp(name, "sgd") == 0)
        return TRAIN_SGD;
    if (strcmp(name, "cm") == 0)
        return TRAIN_CM;
    if (strcmp(name, "nag") == 0)
        return TRAIN_NAG;
    if (strcmp(name, "hf") == 0)
        return TRAIN_HF;
    if (strcmp(name, "mhf") == 0)
        return TRAIN_MHF;
    return -1;
}

const char *train_optim_name(int optim)
{
    switch (optim) {
    case TRAIN_SGD: return "SGD";
    case TRAIN_CM: return "CM";
    case TRAIN_NAG: return "NAG";
    case TRAIN_HF: return "HF";
    case TRAIN_MHF: return "momentum-HF";
    default: return "?";
    }
}

/* The HF flags (each one's index is its bit in hf_settings.given) and the optimizers they apply
 * to. */
enum { HF_LAMBDA, HF_DECAY, HF_DECAY_MAX, HF_STRUCT, HF_MAX_CG, HF_FIXED_CG, HF_CURV_BATCH,
       HF_GRAD_BATCH, HF_ANNEAL, HF_N_FLAGS };
enum { FOR_HF = 1, FOR_MHF = 2, FOR_RNN_ONLY = 4 };
static const struct {
    const char *flag;
    int used;
} hf_flag_use[HF_N_FLAGS] = {
    [HF_LAMBDA] = {"--hf-lambda", FOR_HF | FOR_MHF},
    [HF_DECAY] = {"--hf-decay", FOR_HF | FOR_MHF},
    [HF_DECAY_MAX] = {"--hf-decay-max", FOR_MHF},
    [HF_STRUCT] = {"--hf-struct", FOR_HF | FOR_MHF | FOR_RNN_ONLY},
    [HF_MAX_CG] = {"--hf-max-cg", FOR_HF},
    [HF_FIXED_CG] = {"--hf-fixed-cg", FOR_MHF},
    [HF_CURV_BATCH] = {"--hf-curv-batch", FOR_HF | FOR_MHF},
    [HF_GRAD_BATCH] = {"--hf-grad-batch", FOR_HF | FOR_MHF},
    [HF_ANNEAL] = {"--mhf-anneal", FOR_MHF},
};

static void warn_hf_flags(const char *prog, const train_flags *tf);

/* The --optim spelling of an optimizer. */
static const char *optim_flag_name(int optim)
{
    switch (optim) {
    case TRAIN_SGD: return "sgd";
    case TRAIN_CM: return "cm";
    case TRAIN_NAG: return "nag";
    case TRAIN_HF: return "hf";
    default: return "mhf";
    }
}

void train_flags_init(train_flags *f, int net_kind)
{
    memset(f, 0, sizeof *f);
    f->optim = TRAIN_NAG;
    hf_defaults(&f->hf, net_kind);
}

int train_parse_flag(const char *prog, int argc, char **argv, int *i, train_flags *f)
{
    const char *a = argv[*i];
    if (strcmp(a, "--optim") == 0) {
        const char *v = cli_value(prog, argc, argv, i);
        f->optim = train_parse_optim(v);
        if (f->optim < 0)
            cli_usage_error(prog, "unknown optimizer '%s' (sgd, cm, nag, hf, mhf)", v);
    } else if (strcmp(a, "--log") == 0) {
        f->log = cli_value(prog, argc, argv, i);
    } else if (strcmp(a, "--plot") == 0) {
        f->plot = cli_value(prog, argc, argv, i);
    } else if (strcmp(a, "--threads") == 0) {
        f->threads = (int)cli_size(prog, a, cli_value(prog, argc, argv, i), 1, 1024);
    } else if (strcmp(a, "--checkpoint") == 0) {
        f->checkpoint = cli_value(prog, argc, argv, i);
    } else if (strcmp(a, "--checkpoint-every") == 0) {
        f->checkpoint_every = cli_size(prog, a, cli_value(prog, argc, argv, i), 1, (size_t)1 << 40);
    } else if (strcmp(a, "--resume") == 0) {
        f->resume = cli_value(prog, argc, argv, i);
    } else if (strcmp(a, "--mpi") == 0) {
        f->mpi = 1;
    } else if (strcmp(a, "--lookahead") == 0) {
        f->lookahead = 1;
    } else {
        return hf_parse_flag(prog, argc, argv, i, &f->hf);
    }
    return 1;
}

void train_flags_finish(const char *prog, train_flags *f, uint64_t eval_every,
                        const cli_path *extra, size_t n_extra)
{
    if (f->checkpoint_every != 0 && f->checkpoint == NULL)
        cli_usage_error(prog, "--checkpoint-every needs --checkpoint FILE to write to");
    if (f->checkpoint_every == 0)
        f->checkpoint_every = eval_every;
    if (f->checkpoint_every % eval_every != 0)
        cli_usage_error(prog, "--checkpoint-every (%llu) must be a multiple of --eval-every (%llu)",
                        (unsigned long long)f->checkpoint_every, (unsigned long long)eval_every);
    if (f->plot && !f->log)
        cli_usage_error(prog, "--plot needs --log FILE.csv to plot from");
    if (f->resume && f->resume[0] == '\0')
        cli_usage_error(prog, "--resume needs a file name");
    if (f->lookahead && f->optim != TRAIN_NAG)
        cli_usage_error(prog, "--lookahead is a form of NAG: it needs --optim nag, not %s",
                        optim_flag_name(f->optim));
    /* find an unwritable place now, not after the training: a checkpoint is written to a
     * temporary file next to it, then renamed over it */
    if (f->log)
        cli_check_output(prog, "--log", f->log, 0);
    if (f->plot)
        cli_check_output(prog, "--plot", f->plot, 0);
    if (f->checkpoint)
        cli_check_output(prog, "--checkpoint", f->checkpoint, 1);
    enum { OWN = 4, MAX_EXTRA = 8 };
    cli_path paths[OWN + MAX_EXTRA] = {
        {"--log", f->log, 1, 0},
        {"--plot", f->plot, 1, 0},
        {"--checkpoint", f->checkpoint, 1, 1}, /* written where --resume read: going on in place */
        {"--resume", f->resume, 0, 1},
    };
    if (n_extra > MAX_EXTRA) /* a trainer's own mistake: say so rather than compare fewer */
        cli_fail(prog, 1, "internal error: %zu files to compare, at most %d", n_extra, MAX_EXTRA);
    size_t n = OWN;
    for (size_t i = 0; i < n_extra; i++)
        paths[n++] = extra[i];
    cli_check_paths(prog, paths, n);
    f->no_gnuplot = f->plot && !cli_have_gnuplot(); /* the plot is optional: train anyway */
    f->threads_not_set = f->threads > 0 && cli_set_threads(f->threads) != 0;
}

void train_notices(const char *prog, const train_flags *f)
{
    warn_hf_flags(prog, f);
    if (f->no_gnuplot)
        fprintf(stderr, "%s: warning: gnuplot is not installed (apt-get install gnuplot-nox): "
                        "no plot will be drawn; the log %s will have the data\n", prog, f->log);
    if (f->threads_not_set)
        fprintf(stderr, "%s: this BLAS cannot set threads at run time; use OPENBLAS_NUM_THREADS\n",
                prog);
}

void train_usage(FILE *f)
{
    fprintf(f,
"  --log FILE.csv      write step, mu, lr, training loss, evaluation error, seconds (for hf\n"
"                      and mhf the mu and lr columns hold the CG decay and the step size); the\n"
"                      training loss is the mean over the updates since the previous row\n"
"  --plot FILE.png     plot the learning curve with gnuplot at the end (needs --log; without\n"
"                      gnuplot installed, a warning and no plot)\n"
"  --checkpoint FILE   save the training state to FILE every --checkpoint-every updates and\n"
"                      at the end (atomically)\n"
"  --checkpoint-every N  a multiple of --eval-every (default: --eval-every; needs --checkpoint)\n"
"  --resume FILE       continue the run saved in FILE, with the flags of the run that wrote\n"
"                      it: a checkpoint of other flags is refused, naming the flag (--steps\n"
"                      may grow, and the file, thread and --mpi flags may change: see\n"
"                      docs/tasks.md); the resumed run logs and ends as one run of --steps\n"
"                      would: with --log, the log goes on from the saved update (a row the\n"
"                      first run wrote at its last update between two evaluations gives way\n"
"                      to the next evaluation's), the seconds from the saved clock\n"
"  --threads N         BLAS threads (default: the BLAS default)\n"
"  --lookahead         run NAG in its look-ahead form: the network holds theta + mu v and a\n"
"                      step reads and writes each parameter once (a few percent faster for\n"
"                      large networks; the same method, rounded differently); evaluations,\n"
"                      the reconstructions and the summary see theta; its checkpoints\n"
"                      resume only with --lookahead (needs --optim nag)\n"
"  --mpi               data-parallel training over the ranks of an MPI job (mpirun -np N\n"
"                      PROGRAM --mpi ...): each rank computes on its block of every\n"
"                      minibatch, the gradients are averaged, rank 0 alone writes the log,\n"
"                      checkpoints and summary (docs/distributed.md; needs an MPI build)\n"
"  --help              this text\n"
"The output files' directories are checked before training starts, and no output may be the\n"
"file of another output or of an input (--checkpoint may be the --resume file). Progress goes\n"
"to stderr (a bar on a terminal): its loss is the mean training loss since the last evaluation\n"
"(what the log records at the next one), its error the last evaluation's.\n"
"Exit status: 0 done, 1 an error (a message names it), 2 a bad command line (also an output\n"
"file that cannot be written, a --resume checkpoint that does not match the flags), 3 training\n"
"diverged (the summary line then reports the parameters kept from the update before), 4 done\n"
"but an output (log, trace, plot, image or the summary line) could not be written (3 takes\n"
"precedence).\n");
}

void train_optim_desc(char *buf, size_t size, const train_flags *tf, int net_kind, double lr,
                      const char *momentum, int brief)
{
    const hf_settings *h = &tf->hf;
    size_t at = 0;
    int w;
#define DESC(...)                                                                                  \
    (w = snprintf(buf + at, size - at, __VA_ARGS__),                                             \
     at = w < 0 ? at : at + (size_t)w < size ? at + (size_t)w : size - 1)
    buf[0] = '\0';
    switch (tf->optim) {
    case TRAIN_SGD:
        DESC("SGD lr %g", lr);
        break;
    case TRAIN_CM:
    case TRAIN_NAG:
        DESC("%s lr %g %s", train_optim_name(tf->optim), lr, momentum);
        break;
    case TRAIN_HF:
        DESC("HF lambda %g", h->lambda);
        if (!brief)
            DESC(", max CG %zu, CG decay %g", h->max_cg, h->decay);
        break;
    default: /* TRAIN_MHF */
        DESC("momentum-HF lambda %g, %zu CG iterations", h->lambda, h->fixed_cg);
        if (!brief)
            DESC(", CG decay %g to %g, step 1 then %g/(t-%g)", h->decay, h->decay_max, h->anneal_a,
                 h->anneal_t0);
        break;
    }
    int hf = tf->optim == TRAIN_HF || tf->optim == TRAIN_MHF;
    if (!brief && hf && net_kind == MOM_NET_RECURRENT)
        DESC(", structural damping %g", h->struct_damping);
    /* the 2e-5 default is HF's: first-order methods use weight decay only when asked */
    if (!brief && h->weight_decay > 0 && (hf || h->weight_decay_set))
        DESC(", weight decay %g", h->weight_decay);
    if (!brief && tf->lookahead)
        DESC(", look-ahead form");
#undef DESC
}

/* The HF flags given that the chosen optimizer (or network) does not use: a warning each. */
static void warn_hf_flags(const char *prog, const train_flags *tf)
{
    const int use = tf->optim == TRAIN_HF ? FOR_HF : tf->optim == TRAIN_MHF ? FOR_MHF : 0;
    for (int k = 0; k < HF_N_FLAGS; k++) {
        if (!(tf->hf.given & (1u << k)))
            continue;
        const int used = hf_flag_use[k].used;
        if ((used & FOR_RNN_ONLY) && tf->hf.net_kind != MOM_NET_RECURRENT)
            fprintf(stderr, "%s: warning: %s is ignored: it is for recurrent networks\n", prog,
                    hf_flag_use[k].flag);
        else if (!(used & use))
            train_warn_ignored(prog, tf, hf_flag_use[k].flag,
                               (used & (FOR_HF | FOR_MHF)) == (FOR_HF | FOR_MHF) ? "hf and mhf"
                               : used & FOR_HF                                  ? "hf"
                                                                                : "mhf");
    }
}

void train_warn_ignored(const char *prog, const train_flags *tf, const char *flag,
                        const char *used_by)
{
    const char *name = tf->optim == TRAIN_SGD ? "sgd" : tf->optim == TRAIN_CM ? "cm"
                       : tf->optim == TRAIN_NAG ? "nag" : tf->optim == TRAIN_HF ? "hf" : "mhf";
    fprintf(stderr, "%s: warning: %s is ignored with --optim %s (it is for %s)\n", prog, flag, name,
            used_by);
}

void hf_defaults(hf_settings *h, int net_kind)
{
    memset(h, 0, sizeof *h);
    h->net_kind = net_kind;
    /* Martens' CURVES demo: lambda 45, weight decay 2e-5; recurrent nets: lambda 1, mu_s 0.03,
     * no weight decay (Martens & Sutskever 2011). */
    h->lambda = net_kind == MOM_NET_RECURRENT ? 1.0 : 45.0;
    h->decay = 0.95;
    h->decay_max = 0.999;
    h->struct_damping = net_kind == MOM_NET_RECURRENT ? 0.03 : 0.0;
    h->weight_decay = net_kind == MOM_NET_RECURRENT ? 0.0 : 2e-5;
    h->anneal_a = 500;
    h->anneal_t0 = 4000;
    h->max_cg = 250;
    h->fixed_cg = 50;
}

int hf_parse_flag(const char *prog, int argc, char **argv, int *i, hf_settings *h)
{
    const char *a = argv[*i];
    if (strcmp(a, "--weight-decay") == 0) { /* every optimizer's */
        h->weight_decay = cli_double(prog, a, cli_value(prog, argc, argv, i), 0.0, 1e6);
        h->weight_decay_set = 1;
        return 1;
    }
    int k = 0;
    while (k < HF_N_FLAGS && strcmp(a, hf_flag_use[k].flag) != 0)
        k++;
    if (k == HF_N_FLAGS)
        return 0;
    const char *v = cli_value(prog, argc, argv, i);
    h->given |= 1u << k;
    switch (k) {
    case HF_LAMBDA: h->lambda = cli_double(prog, a, v, 0.0, 1e12); break;
    case HF_DECAY: h->decay = cli_double(prog, a, v, 0.0, 1.0); break;
    case HF_DECAY_MAX: h->decay_max = cli_double(prog, a, v, 0.0, 1.0); break;
    case HF_STRUCT: h->struct_damping = cli_double(prog, a, v, 0.0, 1e6); break;
    case HF_MAX_CG: h->max_cg = cli_size(prog, a, v, 1, 100000); break;
    case HF_FIXED_CG: h->fixed_cg = cli_size(prog, a, v, 1, 100000); break;
    case HF_CURV_BATCH: h->curv_batch = cli_size(prog, a, v, 1, 100000000); break;
    case HF_GRAD_BATCH: h->grad_batch = cli_size(prog, a, v, 1, 100000000); break;
    default: { /* HF_ANNEAL */
        char first[64];
        const char *second = cli_split(prog, a, v, first, sizeof first, "A:T0");
        h->anneal_a = cli_double(prog, a, first, 1e-12, 1e12);
        h->anneal_t0 = cli_double(prog, a, second, 0.0, 1e12);
    }
    }
    return 1;
}

void hf_usage(FILE *f)
{
    fprintf(f,
"Hessian-free (--optim hf: Martens 2010; --optim mhf: the paper's momentum-HF):\n"
"  --hf-lambda X      initial damping lambda (default 45 autoencoders, 1 RNNs)\n"
"  --hf-max-cg N      most CG iterations per HF update (default 250)\n"
"  --hf-fixed-cg N    CG iterations per momentum-HF update (default 50)\n"
"  --hf-decay X       CG start decay (hf; default 0.95), first value of mhf's rising decay\n"
"  --hf-decay-max X   last value of mhf's rising decay (default 0.999)\n"
"  --mhf-anneal A:T0  mhf step size 1, then A / (t - T0) (default 500:4000)\n"
"  --hf-struct X      structural damping mu_s for RNNs (default 0.03)\n"
"  --weight-decay X   L2 weight decay (default 2e-5 with HF on autoencoders, else 0)\n"
"  --hf-grad-batch N  cases of the gradient minibatch of an HF update\n"
"  --hf-curv-batch N  cases of the curvature minibatch of an HF update\n");
}

static void die(const char *prog, const char *what, int rc, const char *detail)
{
    cli_progress_break();
    fprintf(stderr, "%s: %s failed: %s%s%s\n", prog, what, mom_strerror(rc),
            detail && *detail ? ": " : "", detail ? detail : "");
    exit(1);
}

mom_optim *train_optim_create(const char *prog, int optim, size_t n_params, mom_sched *lr,
                              mom_sched *mu, const hf_settings *h, int net_kind)
{
    mom_optim *opt = NULL;
    int kind = optim == TRAIN_MHF ? MOM_OPTIM_HF : optim;
    int rc = mom_optim_create(&opt, kind, n_params, NULL);
    if (rc)
        die(prog, "creating the optimizer", rc, NULL);
    if (kind != MOM_OPTIM_HF) {
        if ((rc = mom_optim_set_lr(opt, lr)) || (rc = mom_optim_set_momentum(opt, mu)))
            die(prog, "configuring the optimizer", rc, mom_optim_errmsg(opt));
        /* the 2e-5 default is HF's (Martens' demo): first-order methods use none unless asked */
        if (h->weight_decay_set && h->weight_decay > 0 &&
            (rc = mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, h->weight_decay)))
            die(prog, "setting the weight decay", rc, mom_optim_errmsg(opt));
        return opt;
    }
    if ((rc = mom_optim_set(opt, MOM_OPTIM_HF_LAMBDA, h->lambda)) ||
        (rc = mom_optim_set(opt, MOM_OPTIM_HF_MAX_CG, (double)h->max_cg)) ||
        (rc = mom_optim_set(opt, MOM_OPTIM_WEIGHT_DECAY, h->weight_decay)))
        die(prog, "configuring HF", rc, mom_optim_errmsg(opt));
    if (net_kind == MOM_NET_RECURRENT &&
        (rc = mom_optim_set(opt, MOM_OPTIM_HF_STRUCT_DAMPING, h->struct_damping)))
        die(prog, "configuring HF", rc, mom_optim_errmsg(opt));
    if (optim == TRAIN_HF) {
        if ((rc = mom_optim_set(opt, MOM_OPTIM_HF_CG_DECAY, h->decay)))
            die(prog, "configuring HF", rc, mom_optim_errmsg(opt));
        return opt;
    }
    /* momentum-HF: fixed CG iterations, no line search, the final CG iterate is the step, step
     * size 1 then annealed, CG decay raised like a momentum constant (paper section 5). The decay
     * steps are a choice: the paper does not give them. */
    mom_sched *step = NULL, *decay = NULL;
    const uint64_t starts[4] = {0, 1000, 4000, 10000};
    double mid1 = h->decay + (h->decay_max - h->decay) * 0.5;
    double mid2 = h->decay + (h->decay_max - h->decay) * 0.8;
    const double values[4] = {h->decay, mid1, mid2, h->decay_max};
    if ((rc = mom_optim_set(opt, MOM_OPTIM_HF_FIXED_CG, (double)h->fixed_cg)) ||
        (rc = mom_optim_set(opt, MOM_OPTIM_HF_LINE_SEARCH, 0)) ||
        (rc = mom_optim_set(opt, MOM_OPTIM_HF_CG_BACKTRACK, 0)))
        die(prog, "configuring momentum-HF", rc, mom_optim_errmsg(opt));
    if ((rc = mom_sched_create_anneal(&step, 1.0, h->anneal_a, h->anneal_t0, NULL)) ||
        (rc = mom_sched_create_piecewise(&decay, 4, starts, values, NULL)) ||
        (rc = mom_optim_set_lr(opt, step)) || (rc = mom_optim_set_cg_decay(opt, decay)))
        die(prog, "configuring momentum-HF schedules", rc, mom_optim_errmsg(opt));
    mom_sched_destroy(step);
    mom_sched_destroy(decay);
    return opt;
}

int train_step(double *loss, mom_optim *opt, mom_net *net, const mom_batch *grad,
               const mom_batch *curv)
{
    if (mom_optim_kind_of(opt) == MOM_OPTIM_HF)
        return mom_optim_step_hf(loss, opt, net, grad, curv);
    return mom_optim_step_net(loss, opt, net, grad);
}

/* ---- The trainer's own state in its checkpoints --------------------------------------------- */

static void conf_oom(const train_conf *c)
{
    fprintf(stderr, "%s: out of memory for the checkpoint's trainer state\n", c->prog);
    exit(1);
}

void train_conf_init(train_conf *c, const char *prog)
{
    memset(c, 0, sizeof *c);
    c->prog = prog;
}

void train_conf_free(train_conf *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->e[i].value);
    c->n = 0;
}

static void conf_add(train_conf *c, const char *flag, int kind, int check, const char *value)
{
    if (c->n == TRAIN_CONF_MAX) {
        fprintf(stderr, "%s: too many entries in the trainer state (a bug)\n", c->prog);
        exit(1);
    }
    size_t len = strlen(value);
    char *v = malloc(len + 1);
    if (v == NULL)
        conf_oom(c);
    memcpy(v, value, len + 1);
    train_conf_entry *e = &c->e[c->n++];
    e->flag = flag;
    e->kind = kind;
    e->check = check;
    e->value = v;
    e->hint = NULL;
}

void train_num_text(char *buf, size_t size, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

void train_conf_str(train_conf *c, const char *flag, int check, const char *value)
{
    conf_add(c, flag, CONF_STR, check, value);
}

void train_conf_u64(train_conf *c, const char *flag, int check, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    conf_add(c, flag, CONF_U64, check, buf);
}

void train_conf_dbl(train_conf *c, const char *flag, int check, double v)
{
    char buf[40];
    train_num_text(buf, sizeof buf, v);
    conf_add(c, flag, CONF_DBL, check, buf);
}

/* 64-bit hash of n * d floats (of their bits, read as 32-bit integers: the same on every byte
 * order), and of n and d. */
static uint64_t data_hash(size_t n, size_t d, const float *x)
{
    return cli_hash_floats(0xcbf29ce484222325ull ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull) ^
                               (uint64_t)d,
                           x, n * d);
}

void train_conf_data(train_conf *c, const char *flag, const char *label, size_t n, size_t d,
                     const float *x)
{
    size_t len = strlen(label) + 64;
    char *v = malloc(len);
    if (v == NULL)
        conf_oom(c);
    snprintf(v, len, "%zux%zu:%016llx %s", n, d,
             (unsigned long long)(n ? data_hash(n, d, x) : 0), label);
    conf_add(c, flag, CONF_DATA, 1, v);
    free(v);
}

void train_conf_hint(train_conf *c, const char *hint)
{
    if (c->n > 0)
        c->e[c->n - 1].hint = hint;
}

int train_conf_checks(const train_conf *c, const char *flag)
{
    for (size_t i = 0; c != NULL && i < c->n; i++)
        if (strcmp(c->e[i].flag, flag) == 0)
            return c->e[i].check;
    return 0;
}

void train_conf_optim(train_conf *c, const train_flags *tf, int net_kind)
{
    const hf_settings *h = &tf->hf;
    int hf = tf->optim == TRAIN_HF || tf->optim == TRAIN_MHF, mhf = tf->optim == TRAIN_MHF;
    char a[40], t0[40], pair[96];
    train_conf_str(c, "--optim", 1, optim_flag_name(tf->optim));
    train_conf_dbl(c, "--hf-lambda", hf, h->lambda);
    train_conf_u64(c, "--hf-max-cg", tf->optim == TRAIN_HF, h->max_cg); /* mhf: --hf-fixed-cg */
    train_conf_u64(c, "--hf-fixed-cg", mhf, h->fixed_cg);
    train_conf_dbl(c, "--hf-decay", hf, h->decay);
    train_conf_dbl(c, "--hf-decay-max", mhf, h->decay_max);
    train_num_text(a, sizeof a, h->anneal_a);
    train_num_text(t0, sizeof t0, h->anneal_t0);
    snprintf(pair, sizeof pair, "%s:%s", a, t0);
    train_conf_str(c, "--mhf-anneal", mhf, pair);
    train_conf_dbl(c, "--hf-struct", hf && net_kind == MOM_NET_RECURRENT, h->struct_damping);
    /* what the optimizer uses: SGD, CM and NAG none unless --weight-decay is given */
    train_conf_dbl(c, "--weight-decay", 1, hf || h->weight_decay_set ? h->weight_decay : 0.0);
    train_conf_u64(c, "--hf-grad-batch", hf, h->grad_batch);
    train_conf_u64(c, "--hf-curv-batch", hf, h->curv_batch);
    /* recorded only: the checkpoint's optimizer holds its form, which --resume compares */
    train_conf_str(c, "--lookahead", 0, tf->lookahead ? "on" : "off");
}

/* A value with '%', bytes below 0x20 and 0x7f written %XX (appended to out; size: room). */
static size_t put_escaped(char *out, const char *v)
{
    size_t at = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '%') {
            if (out)
                sprintf(out + at, "%%%02X", *p);
            at += 3;
        } else {
            if (out)
                out[at] = (char)*p;
            at++;
        }
    }
    return at;
}

/* v as put_escaped writes it, cut to fit out[cap] ("..." at the end when cut): for messages,
 * so that no stored byte reaches the terminal raw. */
static const char *shown(char *out, size_t cap, const char *v)
{
    size_t at = 0;
    for (const char *p = v; *p; p++) {
        char one[2] = {*p, '\0'}, e[4];
        size_t k = put_escaped(NULL, one);
        if (at + k + 4 > cap) {
            memcpy(out + at, "...", 4);
            return out;
        }
        (void)put_escaped(e, one);
        memcpy(out + at, e, k);
        at += k;
    }
    out[at] = '\0';
    return out;
}

/* Undo put_escaped in place: 0, or -1 for a malformed escape. */
static int unescape(char *v)
{
    char *w = v;
    for (const char *p = v; *p; p++) {
        if (*p != '%') {
            *w++ = *p;
            continue;
        }
        unsigned x = 0;
        for (int k = 1; k <= 2; k++) {
            char ch = p[k];
            int dgt = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                                        : -1;
            if (dgt < 0)
                return -1;
            x = x * 16 + (unsigned)dgt;
        }
        if (x == 0)
            return -1;
        *w++ = (char)x;
        p += 2;
    }
    *w = '\0';
    return 0;
}

char *train_state_encode(const train_conf *c, const train_state *s, size_t *len)
{
    char state[512];
    int sn = snprintf(state, sizeof state,
                      "updates=%llu\nloss_sum=%a\nloss_count=%llu\nmean_loss=%a\nlast_error=%a\n"
                      "seconds=%a\n",
                      (unsigned long long)s->updates, s->loss_sum,
                      (unsigned long long)s->loss_count, s->mean_loss, s->last_err, s->seconds);
    char head[128];
    int hn = snprintf(head, sizeof head, "%s trainer state %d\n", c->prog, TRAIN_STATE_VERSION);
    if (sn < 0 || (size_t)sn >= sizeof state || hn < 0 || (size_t)hn >= sizeof head)
        return NULL;
    size_t total = (size_t)hn + (size_t)sn + 1;
    for (size_t i = 0; i < c->n; i++)
        total += strlen(c->e[i].flag) + 2 + put_escaped(NULL, c->e[i].value);
    char *text = malloc(total), *p = text;
    if (text == NULL)
        return NULL;
    memcpy(p, head, (size_t)hn);
    p += hn;
    for (size_t i = 0; i < c->n; i++) {
        size_t fl = strlen(c->e[i].flag);
        memcpy(p, c->e[i].flag, fl);
        p += fl;
        *p++ = '=';
        p += put_escaped(p, c->e[i].value);
        *p++ = '\n';
    }
    memcpy(p, state, (size_t)sn);
    p += sn;
    *p = '\0';
    *len = (size_t)(p - text);
    return text;
}

/* The value of `key` among the n parsed lines, or NULL. */
static const char *find_value(char *const *keys, char *const *vals, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return vals[i];
    return NULL;
}

/* Whether the checkpoint's value `have` equals the entry's. */
static int conf_same(const train_conf_entry *e, const char *have)
{
    char *end;
    switch (e->kind) {
    case CONF_U64: {
        if (!isdigit((unsigned char)have[0])) /* no sign, no blanks: the form the writer uses */
            return 0;
        errno = 0;
        unsigned long long v = strtoull(have, &end, 10);
        return errno == 0 && *end == '\0' && end != have && v == strtoull(e->value, NULL, 10);
    }
    case CONF_DBL: {
        double v = strtod(have, &end);
        return *end == '\0' && end != have && v == strtod(e->value, NULL);
    }
    case CONF_DATA: { /* the fingerprints, before the first space */
        size_t a = strcspn(have, " "), b = strcspn(e->value, " ");
        return a == b && memcmp(have, e->value, a) == 0;
    }
    default:
        return strcmp(have, e->value) == 0;
    }
}

/* A number of the state: 0, or -1 when missing or malformed (or, when `sum`, not a finite
 * value >= 0: the running loss sum and the seconds; the display's values may be NaN). */
static int state_num(double *out, char *const *keys, char *const *vals, size_t n, const char *key,
                     int sum)
{
    const char *v = find_value(keys, vals, n, key);
    char *end;
    if (v == NULL || *v == '\0')
        return -1;
    *out = strtod(v, &end);
    return *end == '\0' && (!sum || (isfinite(*out) && *out >= 0.0)) ? 0 : -1;
}

static int state_u64(uint64_t *out, char *const *keys, char *const *vals, size_t n,
                     const char *key)
{
    const char *v = find_value(keys, vals, n, key);
    char *end;
    if (v == NULL || !isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    *out = x;
    return *end == '\0' && errno == 0 ? 0 : -1;
}

#define STATE_MAX_LINES 256

int train_state_check(const train_conf *c, const void *data, size_t size, train_state *s,
                      char *msg, size_t cap)
{
    memset(s, 0, sizeof *s);
    if (memchr(data, '\0', size) != NULL || size == 0) {
        snprintf(msg, cap, "its user data is not the trainer state of %s", c->prog);
        return 1;
    }
    char *text = malloc(size + 1);
    if (text == NULL)
        conf_oom(c);
    memcpy(text, data, size);
    text[size] = '\0';
    int rc = 1;
    char *keys[STATE_MAX_LINES], *vals[STATE_MAX_LINES];
    size_t n = 0;
    /* the first line: "PROG trainer state VERSION" */
    char *line = text, *nl = strchr(line, '\n');
    if (nl)
        *nl = '\0';
    char who[64];
    unsigned version = 0;
    int used = 0;
    const char *vpos = strstr(line, " trainer state ");
    if (sscanf(line, "%63s trainer state %u%n", who, &version, &used) != 2 ||
        line[used] != '\0' || nl == NULL || vpos == NULL ||
        !isdigit((unsigned char)vpos[strlen(" trainer state ")])) {
        snprintf(msg, cap, "its user data is not the trainer state of %s", c->prog);
        goto out;
    }
    if (strcmp(who, c->prog) != 0) {
        snprintf(msg, cap, "it was written by %s, not %s", who, c->prog);
        goto out;
    }
    if (version != TRAIN_STATE_VERSION) {
        snprintf(msg, cap, "its trainer state has format version %u; this %s reads version %d "
                           "(resume with the %s that wrote it)",
                 version, c->prog, TRAIN_STATE_VERSION, c->prog);
        goto out;
    }
    for (line = nl + 1; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl == NULL) {
            snprintf(msg, cap, "its trainer state is damaged (no end of line)");
            goto out;
        }
        *nl = '\0';
        char *eq = strchr(line, '=');
        if (eq == NULL || eq == line || n == STATE_MAX_LINES) {
            snprintf(msg, cap, "its trainer state is damaged (line %zu)", n + 2);
            goto out;
        }
        *eq = '\0';
        if (find_value(keys, vals, n, line) != NULL) {
            snprintf(msg, cap, "its trainer state is damaged (%s twice)", line);
            goto out;
        }
        if (unescape(eq + 1) != 0) {
            snprintf(msg, cap, "its trainer state is damaged (value of %s)", line);
            goto out;
        }
        keys[n] = line;
        vals[n++] = eq + 1;
    }
    /* the flags, in their order (--optim comes before the flags it decides about) */
    for (size_t i = 0; i < c->n; i++) {
        const train_conf_entry *e = &c->e[i];
        if (!e->check)
            continue;
        const char *have = find_value(keys, vals, n, e->flag);
        if (have == NULL) {
            snprintf(msg, cap, "its trainer state lacks %s (damaged?)", e->flag);
            goto out;
        }
        if (conf_same(e, have))
            continue;
        const char *hint = e->hint ? e->hint : "resume with the flags of the run that wrote it";
        if (e->kind == CONF_DATA) { /* show the labels and sizes, not the hashes */
            const char *la = strchr(have, ' '), *lb = strchr(e->value, ' ');
            la = la ? la + 1 : "";
            lb = lb ? lb + 1 : "";
            int fa = (int)strcspn(have, ":"), fb = (int)strcspn(e->value, ":");
            char sa[256], sizes[64];
            if (strcmp(la, lb) != 0) {
                snprintf(msg, cap, "%s is %s in the checkpoint, %s on the command line (%s)",
                         e->flag, shown(sa, sizeof sa, la), lb, hint);
            } else if (fa != fb || memcmp(have, e->value, (size_t)fa) != 0) {
                snprintf(sizes, sizeof sizes, "%.*s", fa, have);
                snprintf(msg, cap, "%s %s: %s values in the checkpoint, %.*s on the command "
                                   "line (%s)",
                         e->flag, lb, shown(sa, sizeof sa, sizes), fb, e->value, hint);
            }
            else
                snprintf(msg, cap, "%s %s: other values than in the checkpoint (has the file "
                                   "changed?)",
                         e->flag, lb);
        } else {
            char sa[256];
            snprintf(msg, cap, "%s is %s in the checkpoint, %s on the command line (%s)", e->flag,
                     shown(sa, sizeof sa, have), e->value, hint);
        }
        rc = 2;
        goto out;
    }
    if (state_u64(&s->updates, keys, vals, n, "updates") ||
        state_num(&s->loss_sum, keys, vals, n, "loss_sum", 1) ||
        state_u64(&s->loss_count, keys, vals, n, "loss_count") ||
        state_num(&s->mean_loss, keys, vals, n, "mean_loss", 0) ||
        state_num(&s->last_err, keys, vals, n, "last_error", 0) ||
        state_num(&s->seconds, keys, vals, n, "seconds", 1) || s->loss_count > s->updates) {
        snprintf(msg, cap, "its trainer state is damaged (the training loop's state)");
        goto out;
    }
    s->have = 1;
    rc = 0;
out:
    free(text);
    return rc;
}

/* train_save's work; on failure its message goes into msg. */
static int save(const char *path, const train_conf *conf, const train_state *st, mom_net *net,
                mom_optim *opt, mom_rng *data, char *msg, size_t size)
{
    mom_ckpt *ck = NULL;
    const mom_rng *rngs[1] = {data};
    size_t len = 0;
    char *text = conf ? train_state_encode(conf, st, &len) : NULL;
    int rc = conf && text == NULL ? MOM_E_NOMEM : MOM_OK;
    if (rc == MOM_OK)
        rc = mom_ckpt_create(&ck, NULL);
    if (rc == MOM_OK && text)
        rc = mom_ckpt_set_user_data(ck, text, len);
    if (rc == MOM_OK)
        rc = mom_ckpt_capture(ck, net, opt, data ? rngs : NULL, data ? 1 : 0);
    if (rc == MOM_OK) {
        /* ^C or a kill while the file is written would leave the library's temporary file:
         * the signals wait until the save is done (and then end the run as usual) */
        sigset_t stop, old;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigprocmask(SIG_BLOCK, &stop, &old);
        rc = mom_ckpt_save_file(ck, path);
        sigprocmask(SIG_SETMASK, &old, NULL);
    }
    if (rc != MOM_OK)
        snprintf(msg, size, "saving the checkpoint %s failed: %s%s%s", path, mom_strerror(rc),
                 ck ? ": " : "", ck ? mom_ckpt_errmsg(ck) : "");
    mom_ckpt_destroy(ck);
    free(text);
    return rc;
}

int train_save(const char *prog, const char *path, const train_conf *conf, const train_state *s,
               mom_net *net, mom_optim *opt, mom_rng *data)
{
    char msg[1024];
    int rc = save(path, conf, s, net, opt, data, msg, sizeof msg);
    if (rc != MOM_OK)
        fprintf(stderr, "%s: %s\n", prog, msg);
    return rc;
}

static const char *net_kind_name(int kind)
{
    return kind == MOM_NET_RECURRENT ? "recurrent" : kind == MOM_NET_FEEDFORWARD ? "feedforward"
                                                                                 : "no";
}

/* Exit with status after "PROG: message" on stderr (nothing when quiet: a rank other than 0). */
static void fail(const char *prog, int quiet, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5), noreturn))
#endif
    ;
static void fail(const char *prog, int quiet, int status, const char *fmt, ...)
{
    if (!quiet) {
        va_list ap;
        va_start(ap, fmt);
        cli_progress_break();
        fprintf(stderr, "%s: ", prog);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    exit(status);
}

/* A sound checkpoint that holds another network, optimizer or streams than the flags make:
 * status 2, as for other flags that do not fit together. */
static void mismatch(const char *prog, int quiet, const char *path, const char *what)
{
    /* the library names where in the file the field is: of no use here */
    if (strncmp(what, "section ", 8) == 0 && strstr(what, " at offset ") != NULL &&
        strstr(what, ": ") != NULL)
        what = strstr(what, ": ") + 2;
    fail(prog, quiet, 2, "%s does not match the flags: %s (resume with the flags of the run that "
                         "wrote it)", path, what);
}

/* 64-bit FNV-1a of n bytes. */
static uint64_t bytes_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t k = 0; k < n; k++)
        h = (h ^ p[k]) * 0x100000001b3ull;
    return h;
}

void train_resume(const char *prog, const char *path, const train_conf *conf, mom_net *net,
                  mom_optim *opt, mom_rng *data, int rank, train_state *st, uint64_t *hash)
{
    const int quiet = rank != 0; /* rank 0 speaks for all, where all fail alike */
    mom_ckpt *ck = NULL;
    mom_rng *const rngs[1] = {data};
    memset(st, 0, sizeof *st);
    int rc = mom_ckpt_create(&ck, NULL);
    if (rc == MOM_OK)
        rc = mom_ckpt_load_file(ck, path);
    if (rc != MOM_OK && rank != 0) {
        /* a file one node cannot read (no shared file system): rank 0 may have read its own,
         * so this rank says why it stops */
        char who[64];
        snprintf(who, sizeof who, "%s (rank %d)", prog, rank);
        fail(who, 0, 1, "cannot resume from %s: %s%s%s", path, mom_strerror(rc), ck ? ": " : "",
             ck ? mom_ckpt_errmsg(ck) : "");
    }
    /* the file is sound from here on: first its trainer state (the flags of its run), then
     * whatever else does not fit is a mismatch */
    if (rc == MOM_OK) {
        const void *ud = NULL;
        size_t usize = 0;
        char msg[1024];
        if (mom_ckpt_user_data(&ud, &usize, ck) == MOM_OK && usize > 0) {
            int bad = train_state_check(conf, ud, usize, st, msg, sizeof msg);
            if (bad)
                fail(prog, quiet, bad, "--resume %s: %s", path, msg);
        } /* else an older trainer's checkpoint: a warning once it is restored */
    }
    if (rc == MOM_OK && mom_ckpt_net_kind(ck) != mom_net_kind_of(net)) {
        char what[256];
        snprintf(what, sizeof what, "it holds a %s network, %s trains %s ones",
                 net_kind_name(mom_ckpt_net_kind(ck)), prog,
                 net_kind_name(mom_net_kind_of(net)));
        mismatch(prog, quiet, path, what);
    }
    if (rc == MOM_OK && mom_ckpt_num_rngs(ck) != (data ? 1u : 0u)) {
        char what[256];
        snprintf(what, sizeof what, "it holds %zu random streams, %s keeps %u (was it written by "
                 "another program?)", (size_t)mom_ckpt_num_rngs(ck), prog, data ? 1u : 0u);
        mismatch(prog, quiet, path, what);
    }
    if (rc == MOM_OK) {
        rc = mom_ckpt_restore(ck, net, opt, data ? rngs : NULL, data ? 1 : 0);
        if (rc == MOM_E_FORMAT) /* the file loaded: another architecture or optimizer */
            mismatch(prog, quiet, path, mom_ckpt_errmsg(ck));
    }
    if (rc != MOM_OK)
        fail(prog, quiet, 1, "cannot resume from %s: %s%s%s", path, mom_strerror(rc),
             ck ? ": " : "", ck ? mom_ckpt_errmsg(ck) : "");
    if (!st->have && !quiet)
        fprintf(stderr, "%s: warning: --resume %s holds no trainer state (an older trainer wrote "
                        "it): its flags cannot be checked, and the next log row averages only the "
                        "updates after the resume\n",
                prog, path);
    if (st->have && st->updates != mom_optim_steps(opt))
        fail(prog, quiet, 1, "--resume %s: its trainer state is of update %llu, its optimizer "
                             "of update %llu (damaged?)",
             path, (unsigned long long)st->updates, (unsigned long long)mom_optim_steps(opt));
    if (hash) { /* what every rank must have read alike */
        size_t size = mom_ckpt_size(ck);
        unsigned char *image = malloc(size ? size : 1);
        if (image == NULL || mom_ckpt_save_buffer(image, size, ck) != MOM_OK)
            fail(prog, quiet, 1, "cannot resume from %s: out of memory", path);
        *hash = bytes_hash(image, size);
        free(image);
    }
    mom_ckpt_destroy(ck);
}

uint64_t train_conf_hash(const train_conf *c)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < c->n; i++) {
        const char *flag = c->e[i].flag, *v = c->e[i].value ? c->e[i].value : "";
        /* a data set by its size and hash, before the first space, not by its path (each node
         * may have its own copy) */
        size_t vlen = c->e[i].kind == CONF_DATA ? strcspn(v, " ") : strlen(v);
        /* the flag with its terminating 0, then the value and its length: no two entries run
         * together */
        h = (h ^ bytes_hash((const unsigned char *)flag, strlen(flag) + 1)) * 0x100000001b3ull;
        h = (h ^ bytes_hash((const unsigned char *)v, vlen) ^ vlen) * 0x100000001b3ull;
    }
    return h;
}

/* --lookahead: a fresh run switches its NAG to the look-ahead form before the first update; a
 * resumed one must have run in the form the flag asks for (the checkpoint holds the form, and its
 * parameters are in that form). */
static void lookahead_start(const char *prog, const train_flags *tf, mom_net *net, mom_optim *opt,
                            int rank)
{
    if (mom_optim_kind_of(opt) != MOM_OPTIM_NAG)
        return; /* (--lookahead needs --optim nag: train_flags_finish()) */
    double la = 0.0;
    int rc = mom_optim_get(&la, opt, MOM_OPTIM_LOOKAHEAD);
    if (rc != MOM_OK)
        die(prog, "reading the optimizer's form", rc, mom_optim_errmsg(opt));
    if (tf->resume && (la != 0.0) != (tf->lookahead != 0))
        mismatch(prog, rank != 0, tf->resume,
                 la != 0.0 ? "its NAG ran in the look-ahead form, with --lookahead"
                           : "its NAG ran in the default form, without --lookahead");
    if (tf->lookahead && la == 0.0 &&
        (rc = mom_optim_set_lookahead(opt, mom_net_params(net), 1)) != MOM_OK)
        die(prog, "switching NAG to the look-ahead form", rc, mom_optim_errmsg(opt));
}

void train_theta_init(train_theta *t, const char *prog, const train_flags *tf, const mom_net *net)
{
    memset(t, 0, sizeof *t);
    if (!tf->lookahead)
        return;
    t->n = mom_net_num_params(net);
    if ((t->saved = malloc(t->n * sizeof *t->saved)) == NULL)
        die(prog, "allocating the evaluation buffer", MOM_E_NOMEM, NULL);
}

void train_theta_enter(train_theta *t, const char *prog, const mom_optim *opt, mom_net *net)
{
    if (t->saved == NULL || t->in)
        return;
    float *p = mom_net_params(net);
    memcpy(t->saved, p, t->n * sizeof *p);
    int rc = mom_optim_get_theta(p, opt, t->saved);
    if (rc != MOM_OK)
        die(prog, "computing theta for the evaluation", rc, mom_optim_errmsg(opt));
    t->in = 1;
}

void train_theta_leave(train_theta *t, mom_net *net)
{
    if (!t->in)
        return;
    memcpy(mom_net_params(net), t->saved, t->n * sizeof *t->saved);
    t->in = 0;
}

void train_theta_free(train_theta *t)
{
    free(t->saved);
    memset(t, 0, sizeof *t);
}

uint64_t train_begin(const char *prog, const train_flags *tf, const train_conf *conf,
                     uint64_t eval_every, mom_net *net, mom_optim *opt, mom_rng *data,
                     const struct dist *d, size_t batch, const char *unit, uint64_t steps,
                     train_state *resumed)
{
    uint64_t first = 1;
    memset(resumed, 0, sizeof *resumed);
    if (tf->resume) {
        train_resume(prog, tf->resume, conf, net, opt, data, d->rank, resumed,
                     d->on ? &resumed->image_hash : NULL);
        lookahead_start(prog, tf, net, opt, d->rank); /* compares the form, before any notice */
        first = mom_optim_steps(opt) + 1;
        /* a checkpoint between two evaluations is the end of a run that stopped there: its last
         * log row, of the updates since the evaluation before, is not one the longer run writes
         * (that one averages over the whole interval, the updates of the checkpoint included).
         * Without the trainer state (an older checkpoint) the row stays. */
        resumed->keep_rows =
            resumed->have ? (first - 1) / eval_every * eval_every : first - 1;
        if (first > steps) {
            if (d->rank == 0)
                fprintf(stderr, "%s: %s already holds %llu updates and --steps is %llu: nothing "
                                "to train (%s)\n",
                        prog, tf->resume, (unsigned long long)(first - 1),
                        (unsigned long long)steps,
                        train_conf_checks(conf, "--steps")
                            ? "the run is complete: its schedule ends at --steps, which a resume "
                              "cannot change"
                            : "raise --steps to continue the run");
            exit(1);
        }
        if (d->rank == 0)
            fprintf(stderr, "%s: resumed from %s after %llu updates\n", prog, tf->resume,
                    (unsigned long long)(first - 1));
        if (d->rank == 0 && tf->log && cli_csv_trim(tf->log, resumed->keep_rows) != 0) {
            fprintf(stderr, "%s: cannot drop the rows past update %llu from the log %s: %s\n",
                    prog, (unsigned long long)resumed->keep_rows, tf->log, strerror(errno));
            exit(1);
        }
    } else {
        lookahead_start(prog, tf, net, opt, d->rank);
    }
    if (d->on && d->rank == 0)
        fprintf(stderr, "%s: data-parallel over %d MPI ranks (%zu %s each or one more)\n", prog,
                d->size, batch / (size_t)d->size, unit);
    return first;
}

void train_monitor_start(train_monitor *m, const char *prog, const train_flags *tf,
                         const train_conf *conf, uint64_t first, uint64_t steps,
                         uint64_t eval_every, const train_state *resumed, int quiet)
{
    memset(m, 0, sizeof *m);
    m->prog = prog;
    m->tf = tf;
    m->conf = conf;
    m->quiet = quiet;
    m->steps = steps;
    m->eval_every = eval_every;
    m->mean_loss = m->last_err = NAN;
    if (resumed->have) {
        m->loss_sum = resumed->loss_sum;
        m->count = resumed->loss_count;
        m->mean_loss = resumed->mean_loss;
        m->last_err = resumed->last_err;
    }
    if (tf->log && !quiet && (m->log = cli_log_open(tf->log, tf->resume != NULL)) == NULL) {
        fprintf(stderr, "%s: cannot write the log %s: %s\n", prog, tf->log, strerror(errno));
        exit(1);
    }
    if (!quiet)
        cli_progress_start(&m->bar, first - 1, steps);
    /* a resumed run's seconds go on from its checkpoint (from the log of an older checkpoint), so
     * the column stays the run's wall time */
    double before = resumed->have ? resumed->seconds
                    : tf->resume && tf->log ? cli_log_last_seconds(tf->log) : 0.0;
    m->t0 = cli_now() - before;
}

/* The trainer state of a checkpoint taken now. */
static train_state monitor_state(const train_monitor *m, const mom_optim *opt)
{
    train_state s;
    memset(&s, 0, sizeof s);
    s.have = 1;
    s.updates = mom_optim_steps(opt);
    s.loss_sum = m->loss_sum;
    s.loss_count = m->count;
    s.mean_loss = m->mean_loss;
    s.last_err = m->last_err;
    s.seconds = train_monitor_seconds(m);
    return s;
}

int train_monitor_step(train_monitor *m, int rc, uint64_t step, double loss, mom_optim *opt)
{
    if (rc == MOM_E_DIVERGED) {
        cli_progress_break();
        fprintf(stderr, "%s: diverged at update %llu (%s); parameters kept from the update "
                        "before. Try a smaller --lr.\n",
                m->prog, (unsigned long long)step, mom_optim_errmsg(opt));
        return 1;
    }
    if (rc != MOM_OK)
        die(m->prog, "training step", rc, mom_optim_errmsg(opt));
    m->loss_sum += loss;
    m->count++;
    return 0;
}

int train_monitor_due(const train_monitor *m, uint64_t step)
{
    return step % m->eval_every == 0 || step == m->steps;
}

void train_monitor_eval(train_monitor *m, uint64_t step, double mu, double lr, double err,
                        mom_net *net, mom_optim *opt, mom_rng *data)
{
    double mean = m->loss_sum / (double)m->count;
    if (step % m->eval_every == 0) { /* a new interval */
        m->mean_loss = mean;
        m->last_err = err;
        m->loss_sum = 0;
        m->count = 0;
    } /* else the last update of a run that stops between two evaluations: its checkpoint keeps
       * the interval so far, for the run that resumes from it */
    if (m->quiet)
        return;
    if (cli_log_row(m->log, step, mu, lr, mean, err, train_monitor_seconds(m)) != 0) {
        /* the training goes on; the status tells that the log is incomplete */
        cli_progress_break();
        fprintf(stderr, "%s: cannot write the log %s: %s; no more rows are written\n", m->prog,
                m->tf->log, strerror(errno));
        fclose(m->log);
        m->log = NULL;
        m->output_failed = 1;
    }
    cli_progress_update(&m->bar, step, mean, err, 1);
    char msg[1024];
    train_state st = monitor_state(m, opt);
    if (m->tf->checkpoint && step % m->tf->checkpoint_every == 0 &&
        save(m->tf->checkpoint, m->conf, &st, net, opt, data, msg, sizeof msg) != MOM_OK) {
        cli_progress_break();
        fprintf(stderr, "%s: %s\n", m->prog, msg);
        exit(1);
    }
}

void train_monitor_tick(train_monitor *m, uint64_t step)
{
    /* the running mean of the interval: what the next log row will record */
    if (!m->quiet)
        cli_progress_update(&m->bar, step, m->count ? m->loss_sum / (double)m->count : m->mean_loss,
                            m->last_err, 0);
}

void train_monitor_end(train_monitor *m, int diverged, mom_net *net, mom_optim *opt,
                       mom_rng *data, const char *title, const char *err_label)
{
    if (m->quiet)
        return;
    cli_progress_end(&m->bar);
    train_state st = monitor_state(m, opt);
    if (m->tf->checkpoint && !diverged &&
        (m->steps == 0 || m->steps % m->tf->checkpoint_every != 0) &&
        train_save(m->prog, m->tf->checkpoint, m->conf, &st, net, opt, data) != MOM_OK)
        exit(1);
    if (m->log && fclose(m->log) != 0) {
        fprintf(stderr, "%s: cannot write the log %s: %s\n", m->prog, m->tf->log,
                strerror(errno));
        m->output_failed = 1;
    }
    m->log = NULL;
    /* --plot needs --log; a missing gnuplot was announced at the start */
    if (m->tf->plot && m->tf->log && !m->tf->no_gnuplot) {
        int rc = cli_plot(m->tf->log, m->tf->plot, title, err_label);
        if (rc == 0)
            fprintf(stderr, "%s: learning curve in %s, log in %s\n", m->prog, m->tf->plot,
                    m->tf->log);
        else if (rc != CLI_PLOT_NO_GNUPLOT) /* (removed since the start: said by cli_plot) */
            m->output_failed = 1;
    }
}

int train_exit_status(const train_monitor *m, int diverged)
{
    return diverged ? 3 : m->output_failed ? 4 : 0;
}

double train_monitor_seconds(const train_monitor *m) { return cli_now() - m->t0; }
