/* Shared training helpers of the example trainers: HF / momentum-HF settings from flags, one
 * training step for every optimizer, and checkpoint save/resume. Public API only. */
#ifndef MOMEX_TRAIN_H
#define MOMEX_TRAIN_H

#include <stdio.h>
#include <mominit/mominit.h>

#include "cli.h"

/* Optimizer names of --optim. TRAIN_MHF is HF configured as the paper's momentum-HF. */
enum { TRAIN_SGD = MOM_OPTIM_SGD, TRAIN_CM = MOM_OPTIM_CM, TRAIN_NAG = MOM_OPTIM_NAG,
       TRAIN_HF = MOM_OPTIM_HF, TRAIN_MHF = 100 };

/* Parse an --optim value (sgd, cm, nag, hf, mhf); -1 if unknown. */
int train_parse_optim(const char *name);
const char *train_optim_name(int optim);

typedef struct hf_settings {
    double lambda;        /* --hf-lambda: initial damping */
    double decay;         /* --hf-decay: CG start decay (hf), first value of the schedule (mhf) */
    double decay_max;     /* --hf-decay-max: last value of the momentum-HF decay schedule */
    double struct_damping;/* --hf-struct: structural damping mu_s (RNNs) */
    double weight_decay;  /* --weight-decay */
    double anneal_a, anneal_t0; /* --mhf-anneal A:T0: step 1, then A / (t - T0) */
    size_t max_cg;        /* --hf-max-cg */
    size_t fixed_cg;      /* --hf-fixed-cg (mhf: 50) */
    size_t curv_batch;    /* --hf-curv-batch: cases of the curvature minibatch (0 = trainer's) */
    size_t grad_batch;    /* --hf-grad-batch: cases of the gradient minibatch (0 = trainer's) */
    int weight_decay_set; /* --weight-decay was given (SGD/CM/NAG use weight_decay only then) */
    unsigned given;       /* which HF flags were given (train_notices() warns of unused ones) */
    int net_kind;         /* MOM_NET_FEEDFORWARD or MOM_NET_RECURRENT, of hf_defaults() */
} hf_settings;

/* Flags both trainers share: --optim, the HF flags, --log, --plot, --threads, --checkpoint,
 * --checkpoint-every, --resume, --mpi, --lookahead. */
typedef struct train_flags {
    int optim;
    hf_settings hf;
    const char *log, *plot, *checkpoint, *resume;
    uint64_t checkpoint_every;
    int threads;
    int mpi; /* --mpi: data-parallel over the ranks of an MPI job (dist.h) */
    int lookahead; /* --lookahead: NAG in its look-ahead form (mom_optim_set_lookahead()) */
    int no_gnuplot, threads_not_set; /* set by train_flags_finish(), told by train_notices() */
} train_flags;

/* Defaults: NAG, hf_defaults(net_kind), nothing else set. */
void train_flags_init(train_flags *f, int net_kind);

/* If argv[*i] is one of the shared flags, parse it (advancing *i) and return 1; else 0. */
int train_parse_flag(const char *prog, int argc, char **argv, int *i, train_flags *f);

/* After parsing: default --checkpoint-every to eval_every and check it is a multiple of it (and
 * that there is a --checkpoint to write); check that --log, --plot and --checkpoint can be written,
 * and that no output names the same file as another output or an input (--resume, and the
 * trainer's own files in extra[0..n_extra), at most 8: cli_check_paths()), before any training; look for
 * gnuplot if there is a --plot; set the BLAS threads. Usage errors exit with status 2. */
void train_flags_finish(const char *prog, train_flags *f, uint64_t eval_every,
                        const cli_path *extra, size_t n_extra);

/* The notices of train_flags_finish() on stderr (gnuplot missing for --plot, a BLAS whose threads
 * cannot be set): called by the process that speaks for the run (rank 0 under --mpi). */
void train_notices(const char *prog, const train_flags *f);

/* Help text of the shared flags (without the HF ones). */
void train_usage(FILE *f);

/* What the optimizer of --optim uses, for the banner and the plot title: "SGD lr 0.01", "NAG lr
 * 0.01 <momentum>" (momentum: the trainer's description of its schedule), the HF settings for hf
 * and mhf. brief: the short form of the plot title. */
void train_optim_desc(char *buf, size_t size, const train_flags *tf, int net_kind, double lr,
                      const char *momentum, int brief);

/* A flag that --optim ignores: "PROG: warning: FLAG is ignored with --optim NAME (it is for
 * USED_BY)" on stderr. */
void train_warn_ignored(const char *prog, const train_flags *tf, const char *flag,
                        const char *used_by);

/* Evaluating in NAG's look-ahead form (--lookahead): the network then holds theta + mu v, and
 * an evaluation must see theta. train_theta_enter() keeps the network's vector aside and writes
 * theta into the network; train_theta_leave() puts the vector back, bit for bit, so that the
 * training goes on exactly as without the evaluation. Without --lookahead both do nothing. */
typedef struct train_theta {
    float *saved; /* the network's vector while theta is in it; NULL without --lookahead */
    size_t n;
    int in;       /* theta is in the network */
} train_theta;

/* Allocate the buffer when tf->lookahead (exits 1 when out of memory). */
void train_theta_init(train_theta *t, const char *prog, const train_flags *tf, const mom_net *net);
void train_theta_enter(train_theta *t, const char *prog, const mom_optim *opt, mom_net *net);
void train_theta_leave(train_theta *t, mom_net *net);
void train_theta_free(train_theta *t);

/* Defaults of the paper / Martens for a network kind (MOM_NET_FEEDFORWARD or MOM_NET_RECURRENT). */
void hf_defaults(hf_settings *h, int net_kind);

/* If argv[*i] is an HF flag, parse it (advancing *i) and return 1; else return 0. */
int hf_parse_flag(const char *prog, int argc, char **argv, int *i, hf_settings *h);

/* Help text of the HF flags. */
void hf_usage(FILE *f);

/* Create the optimizer for --optim `optim` (SGD/CM/NAG with lr and momentum schedules given; HF
 * and momentum-HF configured from `h`, which own their step and decay schedules). Prints a message
 * and exits with status 1 on failure. */
mom_optim *train_optim_create(const char *prog, int optim, size_t n_params, mom_sched *lr,
                              mom_sched *mu, const hf_settings *h, int net_kind);

/* One update: HF steps use (grad, curv), the others `grad`. Returns the library status. */
int train_step(double *loss, mom_optim *opt, mom_net *net, const mom_batch *grad,
               const mom_batch *curv);

/* ---- The trainer's own state in its checkpoints -----------------------------------------------
 * Every checkpoint holds, as its user data (mom_ckpt_set_user_data()), a short text: a first line
 * "PROG trainer state 1" (the trainer and the version of this format), then one "KEY=VALUE" line
 * each for the flags that shape the run (the key is the flag: "--lr=0.0003") and for the state of
 * the training loop that the network, the optimizer and the data stream do not hold (the running
 * sum of the training loss since the last evaluation, ...). Values are printed exactly (numbers
 * of the state with %a, flags in the shortest form that reads back to the same double); bytes
 * below 0x20, 0x7f and '%' in a value are written %XX. --resume compares the flags and restores
 * the state (docs/tasks.md, "Checkpoints and resuming"). */

#define TRAIN_STATE_VERSION 1
#define TRAIN_CONF_MAX 64

/* How an entry is compared on --resume. */
enum {
    CONF_STR,  /* text, equal bytes */
    CONF_U64,  /* an unsigned integer */
    CONF_DBL,  /* a double, equal values */
    CONF_DATA  /* "FINGERPRINT LABEL": equal fingerprints (the data itself); the label is shown */
};

typedef struct train_conf_entry {
    const char *flag; /* "--lr": the key, and the flag named in messages */
    int kind;
    int check;        /* compared on --resume; 0: recorded only (may differ) */
    char *value;      /* the text stored and shown */
    const char *hint; /* added to a mismatch message, or NULL */
} train_conf_entry;

/* The flags of a run that change what it computes, as they go into its checkpoints. */
typedef struct train_conf {
    const char *prog;
    size_t n;
    train_conf_entry e[TRAIN_CONF_MAX];
} train_conf;

void train_conf_init(train_conf *c, const char *prog);
void train_conf_free(train_conf *c);
/* Add an entry (exits 1 when out of memory or past TRAIN_CONF_MAX: a bug). check: compare it on
 * --resume (a flag that does not apply with the chosen optimizer is recorded unchecked). */
void train_conf_str(train_conf *c, const char *flag, int check, const char *value);
void train_conf_u64(train_conf *c, const char *flag, int check, uint64_t v);
void train_conf_dbl(train_conf *c, const char *flag, int check, double v);
/* A data set: n items of d floats at x, compared by a 64-bit hash of their bits (and n, d), so
 * that the same images under another path are the same data; label (the flag's value) is shown. */
void train_conf_data(train_conf *c, const char *flag, const char *label, size_t n, size_t d,
                     const float *x);
/* A hint for the mismatch message of the entry added last. */
void train_conf_hint(train_conf *c, const char *hint);
/* Whether `flag` is compared on --resume. */
int train_conf_checks(const train_conf *c, const char *flag);
/* --optim, the HF flags and --weight-decay, each checked when the optimizer uses it. */
void train_conf_optim(train_conf *c, const train_flags *tf, int net_kind);
/* A 64-bit hash of every entry (flag and value): what the ranks of a data-parallel run must
 * share (train_begin() compares it). */
uint64_t train_conf_hash(const train_conf *c);
/* The shortest text of v that reads back (strtod) as v. */
void train_num_text(char *buf, size_t size, double v);

/* The training loop's own state at a checkpoint. */
typedef struct train_state {
    int have;            /* the checkpoint holds one (else it was written by an older trainer) */
    uint64_t updates;    /* the optimizer's step count when it was taken */
    double loss_sum;     /* training losses since the last evaluation (every --eval-every) */
    uint64_t loss_count; /* ... and their number */
    double mean_loss;    /* the mean of the last evaluation interval (progress display) */
    double last_err;     /* the last evaluation's error (progress display) */
    double seconds;      /* the run's wall time so far (the log's seconds column) */
    uint64_t keep_rows;  /* on resuming: the log and trace rows up to this update stay */
    uint64_t image_hash; /* on resuming: a hash of the checkpoint read (dist_check_same()) */
} train_state;

/* The user data of a checkpoint: malloc'ed text (its length in *len), NULL when out of memory. */
char *train_state_encode(const train_conf *c, const train_state *s, size_t *len);

/* Check the user data of a checkpoint against the flags of this run and read its state into *s.
 * Returns 0 (s->have = 1), 1 when it cannot be read (another trainer's, another format version,
 * damaged), 2 when a checked flag differs; msg then holds the reason. */
int train_state_check(const train_conf *c, const void *data, size_t size, train_state *s,
                      char *msg, size_t cap);

struct dist;

/* Before the loop: --resume (when given) into net, opt and the data stream, and the note of a
 * data-parallel run (`unit`: "cases" or "sequences" of the global batch); messages on rank 0
 * only. The checkpoint's trainer state is checked against conf and read into *resumed (which
 * says which log and trace rows stay: see docs/tasks.md); a checkpoint without one (an older
 * trainer's) is accepted with a warning. A checkpoint that already holds `steps` updates or more
 * leaves nothing to train: message, exit 1. On resuming, the rows of the --log file past
 * resumed->keep_rows are dropped. Returns the first update to run. A data-parallel run then
 * checks that every rank read the same checkpoint: dist_check_same(resumed->image_hash). */
uint64_t train_begin(const char *prog, const train_flags *tf, const train_conf *conf,
                     uint64_t eval_every, mom_net *net, mom_optim *opt, mom_rng *data,
                     const struct dist *d, size_t batch, const char *unit, uint64_t steps,
                     train_state *resumed);

/* Save net + optimizer + the data stream (may be NULL) and the trainer state (conf and s; no
 * user data when conf is NULL) atomically to path; message on failure. */
int train_save(const char *prog, const char *path, const train_conf *conf, const train_state *s,
               mom_net *net, mom_optim *opt, mom_rng *data);

/* Restore a checkpoint into existing handles of the same architecture and optimizer kind, after
 * checking its trainer state against conf (read into *s). A file that cannot be read, is damaged
 * or holds another trainer's state: status 1; a sound file whose flags, network, optimizer or
 * streams differ from the ones of the command line: status 2; each with a message naming the file
 * and what is wrong (printed by rank 0; by another rank only when it cannot read the file, which
 * may be another node's). *hash (unless hash is NULL): a hash of the whole image, to check that
 * the ranks of a data-parallel run read the same file. */
void train_resume(const char *prog, const char *path, const train_conf *conf, mom_net *net,
                  mom_optim *opt, mom_rng *data, int rank, train_state *s, uint64_t *hash);

/* The bookkeeping of a training loop both trainers share: mean training loss per evaluation
 * interval, CSV log rows, progress display, periodic and final checkpoints, the plot. */
typedef struct train_monitor {
    const char *prog;
    int quiet; /* a rank other than 0 of an MPI job: no log, progress, checkpoints or plot */
    const train_flags *tf;
    const train_conf *conf; /* what goes into the checkpoints */
    uint64_t steps, eval_every;
    FILE *log;
    cli_progress bar;
    /* loss_sum, count: since the last evaluation at a multiple of --eval-every (the final row of
     * a run that stops between two of them does not reset them: its checkpoint keeps them);
     * mean_loss, last_err: of that evaluation */
    double t0, loss_sum, mean_loss, last_err;
    uint64_t count;
    int output_failed; /* an output file (log, trace, plot, image) could not be written */
} train_monitor;

/* Open the log (appending when resuming; exits 1 if it cannot be written) and start the progress
 * display at update first - 1 of steps, with the state of the resumed checkpoint (resumed->have:
 * its loss sum, clock, ...; else a fresh interval, and a resumed clock from the log's last row).
 * quiet: keep the bookkeeping but write nothing (the ranks other than 0 of a data-parallel job). */
void train_monitor_start(train_monitor *m, const char *prog, const train_flags *tf,
                         const train_conf *conf, uint64_t first, uint64_t steps,
                         uint64_t eval_every, const train_state *resumed, int quiet);

/* Check the status of a training step: returns 0 when it succeeded (and records its loss), 1 when
 * it diverged (message printed; the caller stops training); exits 1 on any other error. */
int train_monitor_step(train_monitor *m, int rc, uint64_t step, double loss, mom_optim *opt);

/* Whether `step` is an evaluation point (every --eval-every updates and the last one). */
int train_monitor_due(const train_monitor *m, uint64_t step);

/* At an evaluation point: the interval's mean loss, a log row, the progress line, and a
 * checkpoint when due (exits 1 if saving fails). At the last update of a run that ends between
 * two multiples of --eval-every, the interval stays open: the final checkpoint keeps its sum. Between points: the progress display only, whose
 * loss is the running mean of the interval so far (the value the next log row records). */
void train_monitor_eval(train_monitor *m, uint64_t step, double mu, double lr, double err,
                        mom_net *net, mom_optim *opt, mom_rng *data);
void train_monitor_tick(train_monitor *m, uint64_t step);

/* End of the loop: final checkpoint (unless diverged or just saved), close the log, plot. */
void train_monitor_end(train_monitor *m, int diverged, mom_net *net, mom_optim *opt,
                       mom_rng *data, const char *title, const char *err_label);

/* The exit status of a run: 3 diverged, else 4 when an output file could not be written
 * (output_failed), else 0. */
int train_exit_status(const train_monitor *m, int diverged);

/* Seconds since train_monitor_start. */
double train_monitor_seconds(const train_monitor *m);

#endif
