/*
 * mominit-rnn: train a tanh RNN on the long-term-dependency tasks of the paper (paper.md section 6)
 * with the paper's initialization (Table 4) and momentum schedule. Uses the public API only.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mominit/mominit.h>

#include "cli.h"
#include "tasks.h"
#include "train.h"
#include "dist.h"

static const char *prog = "mominit-rnn";

typedef struct options {
    int task, target, center, recall_loss, learn_h0;
    const char *center_flag; /* --center or --no-center as given, else NULL (the task's default) */
    size_t T, hidden, batch, eval_size;
    uint64_t steps, eval_every, seed, warm_steps;
    uint64_t init_seed; /* --init-seed (when init_seed_given; else the same as --seed) */
    int init_seed_given;
    double mu0, warm_mu, lr, input_scale, clip;
    int have_input_scale, bias_only;
    int mu0_given, warmup_given, lr_given, steps_given;
    const char *trace; /* --trace FILE.csv, or NULL */
    train_flags tf;
} options;

static void usage(FILE *f)
{
    fprintf(f,
"usage: mominit-rnn [options]\n"
"Train a recurrent network on a long-term-dependency task (Sutskever et al. 2013, section 4).\n"
"\n"
"  --task NAME        addition (default), multiplication, xor, temporal-order,\n"
"                     temporal-order-3, permutation, mem5, mem20\n"
"  --T N              dependency length T (default: the paper's, 80; 200 for mem5); it must be\n"
"                     at least 10 for addition, multiplication, xor and the temporal-order\n"
"                     tasks, 2 for permutation, 1 for mem5 and mem20\n"
"  --hidden N         hidden tanh units (default 100)\n"
"  --optim NAME       sgd, cm, nag (default), hf, mhf (momentum-HF)\n"
"  --mu0 X            momentum after the warm-up (default 0.995)\n"
"  --mu-warmup M:N    momentum M for the first N updates (default 0.9:1000); --mu0 and\n"
"                     --mu-warmup are for cm and nag: sgd, hf and mhf ignore them, with a\n"
"                     warning unless they ask for no momentum\n"
"  --lr X             learning rate (default: per task, see docs/results.md); hf and mhf\n"
"                     ignore it (with a warning): their step comes from HF\n"
"  --steps N          updates (default 50000; 0 evaluates the initialized network: the\n"
"                     summary line, no log rows, no --plot); a --resume may raise it to go\n"
"                     on with the run\n"
"  --batch N          fresh sequences per update (default 100)\n"
"  --seed N           seed of initialization and data (default 1)\n"
"  --init-seed N      seed of the initialization alone (default: --seed), to vary the\n"
"                     initial network and the data stream independently\n"
"  --input-scale X    std of the input->hidden weights (default 0.001 for addition,\n"
"                     multiplication and xor, 0.1 otherwise)\n"
"  --eval-every N     evaluate every N updates (default 1000)\n"
"  --eval-size N      fresh test sequences per evaluation (default 10000)\n"
"  --center           addition and multiplication: subtract the input means and the mean\n"
"                     target (default for multiplication, where the paper needed it)\n"
"  --no-center        multiplication: do not center (the default for addition)\n"
"  --learn-h0         learn the initial hidden state (starts at 0; Martens & Sutskever's model\n"
"                     has one, paper.md's h[-1] = 0 does not), with the same initial weights\n"
"  --loss-steps all|recall  memorization: count every step in the loss (default), or only\n"
"                     the recall steps (the steps the error counts); with the default\n"
"                     mem20 and mem5 stay at chance here, while --loss-steps recall\n"
"                     --clip 10 solves them (docs/results.md)\n"
"  --bias-only        evaluate the paper's baseline: a network whose outputs are its output\n"
"                     biases (the mean target), without training (--steps, if given, must\n"
"                     be 0)\n"
"  --target NAME      addition target: mean (default), sum, hs\n"
"  --clip X           clip the gradient norm to X (default off; sgd, cm and nag)\n"
"  --trace FILE.csv   the recurrent dynamics before the first update and at every evaluation:\n"
"                     step, spectral radius of W_hh, the norms of W_vh, W_hh, b_h and W_ho,\n"
"                     and the gradient norm on the current minibatch (docs/results.md uses\n"
"                     it to tell failing seeds from learning ones)\n"
"\n");
    train_usage(f);
    fprintf(f, "\n");
    hf_usage(f);
    fprintf(f, "\n"
"The last line on stdout is a summary:\n"
"final steps=<n> train_loss=<x> train_error=<x> test_error=<x> seconds=<x>\n"
"All three describe the final parameters (after a divergence: the ones kept from the update\n"
"before): train_loss and train_error on the last training minibatch (with --steps 0 a fresh\n"
"one), test_error on the --eval-size test sequences.\n"
"Errors are the paper's: addition/multiplication the fraction of sequences whose output is off by\n"
"more than 0.04; memorization the mean number of wrong symbols per sequence; others the fraction\n"
"of wrong predictions at the counted step.\n");
}

static double default_lr(int kind)
{
    switch (kind) {
    case TASK_MEM5:
    case TASK_MEM20:
        return 3e-5;
    case TASK_PERMUTATION:
    case TASK_ORDER2:
    case TASK_ORDER3:
        return 1e-4;
    default:
        return 3e-4;
    }
}

static void parse(options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->task = TASK_ADDITION;
    o->hidden = 100;
    o->batch = 100;
    o->eval_size = 10000;
    o->steps = 50000;
    o->eval_every = 1000;
    o->seed = 1;
    o->mu0 = 0.995;
    o->warm_mu = 0.9;
    o->warm_steps = 1000;
    o->lr = -1;
    train_flags_init(&o->tf, MOM_NET_RECURRENT);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(cli_stdout_status(prog, "the help", 1));
        } else if (strcmp(a, "--task") == 0) {
            const char *v = cli_value(prog, argc, argv, &i);
            o->task = task_parse(v);
            if (o->task < 0)
                cli_usage_error(prog, "unknown task '%s'", v);
        } else if (strcmp(a, "--T") == 0) {
            o->T = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, 100000);
        } else if (strcmp(a, "--hidden") == 0) {
            o->hidden = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, 100000);
        } else if (train_parse_flag(prog, argc, argv, &i, &o->tf)) {
            continue;
        } else if (strcmp(a, "--mu0") == 0) {
            o->mu0 = cli_double(prog, a, cli_value(prog, argc, argv, &i), 0.0, 1.0);
            o->mu0_given = 1;
        } else if (strcmp(a, "--mu-warmup") == 0) {
            cli_pair(prog, a, cli_value(prog, argc, argv, &i), &o->warm_mu, &o->warm_steps);
            o->warmup_given = 1;
        } else if (strcmp(a, "--lr") == 0) {
            o->lr = cli_double(prog, a, cli_value(prog, argc, argv, &i), 1e-12, 100.0);
            o->lr_given = 1;
        } else if (strcmp(a, "--steps") == 0) {
            o->steps = cli_size(prog, a, cli_value(prog, argc, argv, &i), 0, (size_t)1 << 40);
            o->steps_given = 1;
        } else if (strcmp(a, "--batch") == 0) {
            o->batch = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, 1000000);
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = cli_u64(prog, a, cli_value(prog, argc, argv, &i));
        } else if (strcmp(a, "--init-seed") == 0) {
            o->init_seed = cli_u64(prog, a, cli_value(prog, argc, argv, &i));
            o->init_seed_given = 1;
        } else if (strcmp(a, "--input-scale") == 0) {
            o->input_scale = cli_double(prog, a, cli_value(prog, argc, argv, &i), 0.0, 100.0);
            o->have_input_scale = 1;
        } else if (strcmp(a, "--eval-every") == 0) {
            o->eval_every = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, (size_t)1 << 40);
        } else if (strcmp(a, "--eval-size") == 0) {
            o->eval_size = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, 10000000);
        } else if (strcmp(a, "--bias-only") == 0) {
            o->bias_only = 1;
        } else if (strcmp(a, "--center") == 0 || strcmp(a, "--no-center") == 0) {
            o->center = strcmp(a, "--center") == 0;
            o->center_flag = a;
        } else if (strcmp(a, "--loss-steps") == 0) {
            const char *v = cli_value(prog, argc, argv, &i);
            if (strcmp(v, "all") == 0)
                o->recall_loss = 0;
            else if (strcmp(v, "recall") == 0)
                o->recall_loss = 1;
            else
                cli_usage_error(prog, "unknown --loss-steps '%s' (all, recall)", v);
        } else if (strcmp(a, "--target") == 0) {
            const char *v = cli_value(prog, argc, argv, &i);
            if (strcmp(v, "mean") == 0)
                o->target = TARGET_MEAN;
            else if (strcmp(v, "sum") == 0)
                o->target = TARGET_SUM;
            else if (strcmp(v, "hs") == 0)
                o->target = TARGET_HS;
            else
                cli_usage_error(prog, "unknown target '%s' (mean, sum, hs)", v);
        } else if (strcmp(a, "--learn-h0") == 0) {
            o->learn_h0 = 1;
        } else if (strcmp(a, "--clip") == 0) {
            o->clip = cli_double(prog, a, cli_value(prog, argc, argv, &i), 0.0, 1e30);
        } else if (strcmp(a, "--trace") == 0) {
            o->trace = cli_value(prog, argc, argv, &i);
        } else {
            cli_usage_error(prog, "unknown option '%s'", a);
        }
    }
    if (o->T == 0)
        o->T = o->task == TASK_MEM5 ? 200 : 80;
    if (o->recall_loss && o->task != TASK_MEM5 && o->task != TASK_MEM20)
        cli_usage_error(prog, "--loss-steps recall applies to the memorization tasks (mem5, mem20)");
    if (o->target != TARGET_MEAN && o->task != TASK_ADDITION)
        cli_usage_error(prog, "--target applies to the addition task");
    if (o->center_flag && o->task != TASK_ADDITION && o->task != TASK_MULTIPLICATION)
        cli_usage_error(prog, "%s applies to the addition and multiplication tasks", o->center_flag);
    if (!o->center_flag) /* the paper centered multiplication ("the other problems are already
                          * centered", section 4): paper.md section 5 */
        o->center = o->task == TASK_MULTIPLICATION;
    if (o->bias_only && o->steps_given && o->steps != 0)
        cli_usage_error(prog, "--bias-only trains nothing: give no --steps (or --steps 0)");
    if (o->bias_only)
        o->steps = 0;
    if (o->clip > 0 && (o->tf.optim == TRAIN_HF || o->tf.optim == TRAIN_MHF))
        cli_usage_error(prog, "--clip applies to sgd, cm and nag: HF does not clip gradients");
    if (o->steps == 0 && o->tf.plot)
        cli_usage_error(prog, "--plot has no learning curve to draw: %s trains nothing",
                        o->bias_only ? "--bias-only" : "--steps 0");
    const cli_path trace = {"--trace", o->trace, 1, 0};
    train_flags_finish(prog, &o->tf, o->eval_every, &trace, 1);
    if (o->trace)
        cli_check_output(prog, "--trace", o->trace, 0);
    if (o->lr < 0)
        o->lr = default_lr(o->task);
    if (!o->have_input_scale)
        o->input_scale = (o->task == TASK_ADDITION || o->task == TASK_MULTIPLICATION ||
                          o->task == TASK_XOR) ? 0.001 : 0.1;
}

/* Flags of the momentum methods given to an optimizer without momentum: a warning, unless they
 * ask for none. */
static void warn_ignored(const options *o)
{
    int momentum = o->tf.optim == TRAIN_CM || o->tf.optim == TRAIN_NAG;
    int hf = o->tf.optim == TRAIN_HF || o->tf.optim == TRAIN_MHF;
    if (!momentum && o->mu0_given && o->mu0 != 0)
        train_warn_ignored(prog, &o->tf, "--mu0", "cm and nag");
    if (!momentum && o->warmup_given && o->warm_mu != 0 && o->warm_steps != 0)
        train_warn_ignored(prog, &o->tf, "--mu-warmup", "cm and nag");
    if (hf && o->lr_given)
        train_warn_ignored(prog, &o->tf, "--lr", "sgd, cm and nag");
}

static void die_lib(const char *what, int rc, const char *detail)
{
    cli_progress_break();
    fprintf(stderr, "%s: %s failed: %s%s%s\n", prog, what, mom_strerror(rc),
            detail && *detail ? ": " : "", detail ? detail : "");
    exit(1);
}

/* ---- --trace: the recurrent dynamics ---------------------------------------------------------- */

typedef struct trace {
    FILE *f;
    const char *path;
    int failed;              /* a row could not be written */
    float *grad;             /* room for one gradient */
    size_t off[4], size[4];  /* W_vh, W_hh, b_h, W_ho in the parameter vector */
    size_t hidden;
} trace;

static const int trace_block[4] = {MOM_BLOCK_W_VH, MOM_BLOCK_W_HH, MOM_BLOCK_B_H, MOM_BLOCK_W_HO};

static double norm2(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return sqrt(s);
}

/* Open FILE (appending when resuming, so one file covers the whole run) and find the blocks. */
static void trace_open(trace *tr, const char *path, int append, mom_net *net, size_t hidden)
{
    memset(tr, 0, sizeof *tr);
    tr->hidden = hidden;
    for (int k = 0; k < 4; k++) {
        size_t blk = 0, rows = 0, cols = 0;
        int rc = mom_net_find_block(&blk, net, trace_block[k], 0);
        if (rc == MOM_OK)
            rc = mom_net_block(net, blk, NULL, NULL, &rows, &cols, &tr->off[k]);
        if (rc != MOM_OK)
            die_lib("finding the blocks to trace", rc, mom_net_errmsg(net));
        tr->size[k] = rows * cols;
    }
    tr->grad = malloc(mom_net_num_params(net) * sizeof *tr->grad);
    if (tr->grad == NULL) {
        fprintf(stderr, "%s: out of memory for the trace\n", prog);
        exit(1);
    }
    tr->path = path;
    tr->f = cli_csv_open(path, append,
                         "step,rho_hh,norm_w_vh,norm_w_hh,norm_b_h,norm_w_ho,grad_norm");
    if (tr->f == NULL) {
        fprintf(stderr, "%s: cannot write the trace %s: %s\n", prog, path, strerror(errno));
        exit(1);
    }
}

/* One row: the network after `step` updates, the gradient on minibatch v. A row that cannot be
 * written ends the trace with a message. */
static void trace_row(trace *tr, uint64_t step, mom_net *net, const mom_batch *v)
{
    if (tr->f == NULL)
        return;
    const float *p = mom_net_params(net);
    double rho = NAN, loss;
    int rc = mom_spectral_radius(&rho, p + tr->off[1], tr->hidden, NULL);
    if (rc != MOM_OK)
        die_lib("the spectral radius of W_hh", rc, NULL);
    if ((rc = mom_net_loss_grad(&loss, tr->grad, net, v, NULL)))
        die_lib("the traced gradient", rc, mom_net_errmsg(net));
    fprintf(tr->f, "%llu,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n", (unsigned long long)step, rho,
            norm2(p + tr->off[0], tr->size[0]), norm2(p + tr->off[1], tr->size[1]),
            norm2(p + tr->off[2], tr->size[2]), norm2(p + tr->off[3], tr->size[3]),
            norm2(tr->grad, mom_net_num_params(net)));
    if (fflush(tr->f) != 0 || ferror(tr->f)) {
        int e = errno;
        cli_progress_break();
        fprintf(stderr, "%s: cannot write the trace %s: %s; no more rows are written\n", prog,
                tr->path, strerror(e));
        fclose(tr->f);
        tr->f = NULL;
        tr->failed = 1;
    }
}

/* Close the trace: returns 0, or -1 (with a message) when it could not be written completely. */
static int trace_close(trace *tr)
{
    int failed = tr->failed;
    if (tr->f != NULL && fclose(tr->f) != 0) {
        fprintf(stderr, "%s: cannot write the trace %s: %s\n", prog, tr->path, strerror(errno));
        failed = 1;
    }
    free(tr->grad);
    memset(tr, 0, sizeof *tr);
    return failed ? -1 : 0;
}

/* The task's zero-one error on a batch (mean over its sequences): the library metric, or for the
 * memorization tasks the symbol errors of the outputs (y: room for the batch's outputs). */
static int task_error(double *err, mom_net *net, const task *t, const task_batch *b, float *y)
{
    mom_batch v = task_eval_view(b);
    if (t->kind != TASK_MEM5 && t->kind != TASK_MEM20)
        return mom_net_metric(err, net, &v, NULL, t->metric, t->metric_param);
    int rc = mom_net_forward(y, net, &v, NULL, mom_net_num_layers(net) - 1);
    if (rc == MOM_OK)
        *err = task_symbol_errors(t, b, y) / (double)b->n;
    return rc;
}

/* Error of the task's metric over `count` fresh evaluation sequences drawn from a stream
 * re-seeded at each call, so every evaluation sees the same test set. */
static double evaluate(mom_net *net, const task *t, task_batch *b, mom_rng *rng, uint64_t seed,
                       size_t count, float *y)
{
    mom_rng_reseed(rng, seed, 2);
    double total = 0;
    size_t done = 0;
    while (done < count) {
        size_t n = count - done < b->n ? count - done : b->n;
        size_t keep = b->n;
        b->n = n; /* generate and view only the first n sequences */
        task_generate(t, b, rng);
        double e;
        int rc = task_error(&e, net, t, b, y);
        b->n = keep;
        if (rc != MOM_OK)
            die_lib("evaluation", rc, mom_net_errmsg(net));
        total += e * (double)n;
        done += n;
    }
    return total / (double)count;
}

/* The flags that shape the run, for its checkpoints: --resume refuses a checkpoint of other ones.
 * --steps may differ (a longer run goes on with the same schedules: none depends on --steps);
 * flags the chosen optimizer ignores are recorded but not compared. */
static void make_conf(train_conf *c, const options *o)
{
    static const char *const targets[] = {"mean", "sum", "hs"};
    int momentum = o->tf.optim == TRAIN_CM || o->tf.optim == TRAIN_NAG;
    int hf = o->tf.optim == TRAIN_HF || o->tf.optim == TRAIN_MHF;
    char num[40], pair[96];
    train_conf_init(c, prog);
    train_conf_str(c, "--task", 1, task_name((task_kind)o->task));
    train_conf_u64(c, "--T", 1, o->T);
    train_conf_u64(c, "--hidden", 1, o->hidden);
    train_conf_str(c, "--learn-h0", 1, o->learn_h0 ? "on" : "off");
    train_conf_optim(c, &o->tf, MOM_NET_RECURRENT);
    train_conf_dbl(c, "--lr", !hf, o->lr);
    train_conf_dbl(c, "--mu0", momentum, o->mu0);
    train_num_text(num, sizeof num, o->warm_mu);
    snprintf(pair, sizeof pair, "%s:%llu", num, (unsigned long long)o->warm_steps);
    train_conf_str(c, "--mu-warmup", momentum, o->warm_steps > 0 ? pair : "none");
    train_conf_dbl(c, "--clip", 1, o->clip);
    train_conf_u64(c, "--batch", !(hf && o->tf.hf.grad_batch), o->batch);
    train_conf_u64(c, "--seed", 1, o->seed);
    train_conf_u64(c, "--init-seed", 1, o->init_seed_given ? o->init_seed : o->seed);
    train_conf_dbl(c, "--input-scale", 1, o->input_scale);
    train_conf_str(c, "--center", 1, o->center ? "on" : "off");
    if (o->center && !o->center_flag) /* a run of the default before it centered */
        train_conf_hint(c, "resume with --no-center: multiplication is centered by default since "
                           "libmominit 0.5.1");
    train_conf_str(c, "--target", 1, targets[o->target]);
    train_conf_str(c, "--loss-steps", 1, o->recall_loss ? "recall" : "all");
    train_conf_str(c, "--bias-only", 1, o->bias_only ? "on" : "off");
    train_conf_u64(c, "--eval-every", 1, o->eval_every);
    train_conf_u64(c, "--eval-size", 1, o->eval_size);
    train_conf_u64(c, "--steps", 0, o->steps);
}

int main(int argc, char **argv)
{
    options o;
    parse(&o, argc, argv);

    task t;
    if (task_init(&t, (task_kind)o.task, o.T, o.target, o.center) != 0)
        cli_usage_error(prog, "--T %zu is too small for task %s (at least %zu)", o.T,
                        task_name((task_kind)o.task), task_min_T((task_kind)o.task));
    t.recall_loss = o.recall_loss;
    dist d;
    dist_start(&d, prog, &argc, &argv, o.tf.mpi);

    mom_net *net = NULL;
    mom_rng *data_rng = NULL, *eval_rng = NULL;
    mom_optim *opt = NULL;
    mom_sched *lr = NULL, *mu = NULL;
    /* HF takes its gradient and curvature minibatches from --hf-grad-batch / --hf-curv-batch. */
    int hf = o.tf.optim == TRAIN_HF || o.tf.optim == TRAIN_MHF;
    size_t gbatch = hf && o.tf.hf.grad_batch ? o.tf.hf.grad_batch : o.batch;
    size_t cbatch = hf ? o.tf.hf.curv_batch : 0;
    task_batch train, evalb, curv, ltrain, lcurv;
    int rc;
    memset(&curv, 0, sizeof curv);
    memset(&ltrain, 0, sizeof ltrain);
    memset(&lcurv, 0, sizeof lcurv);
    /* Data-parallel (--mpi): every rank draws the whole minibatch from the same stream (so the
     * union of the shares is the single-process batch, and the stream state is the same on every
     * rank for checkpoints) and trains on its block of it. */
    size_t glo = 0, ghi = gbatch, clo = 0, chi = cbatch;
    if (d.on) {
        dist_block(&d, prog, "minibatch", gbatch, &glo, &ghi);
        if (cbatch)
            dist_block(&d, prog, "curvature minibatch", cbatch, &clo, &chi);
    }
    if (task_batch_alloc(&train, &t, gbatch) != 0 ||
        task_batch_alloc(&evalb, &t, o.eval_size < 1000 ? o.eval_size : 1000) != 0 ||
        (cbatch && task_batch_alloc(&curv, &t, cbatch) != 0) ||
        (d.on && task_batch_alloc(&ltrain, &t, ghi - glo) != 0) ||
        (d.on && cbatch && task_batch_alloc(&lcurv, &t, chi - clo) != 0)) {
        fprintf(stderr, "%s: out of memory for the batches\n", prog);
        return 1;
    }
    size_t ycap = (gbatch > evalb.n ? gbatch : evalb.n) * t.max_steps * t.n_out;
    float *y = malloc(ycap * sizeof *y);
    if (y == NULL) {
        fprintf(stderr, "%s: out of memory for the outputs\n", prog);
        return 1;
    }
    if ((rc = mom_net_create_rnn(&net, t.n_in, o.hidden, t.n_out, MOM_ACT_TANH, t.output,
                                  o.learn_h0 ? MOM_RNN_LEARN_H0 : 0u, NULL)))
        die_lib("creating the network", rc, NULL);
    if ((rc = mom_rng_create(&data_rng, o.seed, 1, NULL)) ||
        (rc = mom_rng_create(&eval_rng, o.seed, 2, NULL)))
        die_lib("creating the random streams", rc, NULL);

    /* Output biases from the average target of 1000 sequences (stream 3), whatever the
     * evaluation size, so that the initial network depends on the seeds alone. */
    {
        task_batch initb;
        if (task_batch_alloc(&initb, &t, 1000) != 0) {
            fprintf(stderr, "%s: out of memory for the batches\n", prog);
            return 1;
        }
        mom_rng_reseed(eval_rng, o.seed, 3);
        task_generate(&t, &initb, eval_rng);
        mom_batch v = task_loss_view(&initb);
        uint64_t init_seed = o.init_seed_given ? o.init_seed : o.seed;
        rc = mom_init_preset_rnn(net, o.input_scale, init_seed, &v);
        task_batch_free(&initb);
        if (rc != MOM_OK)
            die_lib("initializing the network", rc, mom_net_errmsg(net));
    }
    if (o.bias_only) {
        size_t blk = 0, rows = 0, cols = 0, off = 0;
        if ((rc = mom_net_find_block(&blk, net, MOM_BLOCK_W_HO, 0)) ||
            (rc = mom_net_block(net, blk, NULL, NULL, &rows, &cols, &off)))
            die_lib("finding W_ho", rc, mom_net_errmsg(net));
        memset(mom_net_params(net) + off, 0, rows * cols * sizeof(float));
    }
    if ((rc = mom_net_reserve(net, gbatch > cbatch ? gbatch : cbatch, t.max_steps)))
        die_lib("reserving the workspace", rc, mom_net_errmsg(net));

    uint64_t starts[2] = {0, o.warm_steps};
    double values[2] = {o.warm_mu, o.mu0};
    if ((rc = mom_sched_create_const(&lr, o.lr, NULL)) ||
        (rc = mom_sched_create_piecewise(&mu, o.warm_steps ? 2 : 1,
                                         o.warm_steps ? starts : starts + 1,
                                         o.warm_steps ? values : values + 1, NULL)))
        die_lib("creating the schedules", rc, NULL);
    if (!o.warm_steps) {
        /* piecewise needs starts[0] == 0: a constant schedule instead */
        mom_sched_destroy(mu);
        if ((rc = mom_sched_create_const(&mu, o.mu0, NULL)))
            die_lib("creating the momentum schedule", rc, NULL);
    }
    opt = train_optim_create(prog, o.tf.optim, mom_net_num_params(net), lr, mu, &o.tf.hf,
                             MOM_NET_RECURRENT);
    if (o.clip > 0 && (rc = mom_optim_set(opt, MOM_OPTIM_CLIP_NORM, o.clip)))
        die_lib("setting gradient clipping", rc, mom_optim_errmsg(opt));
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);
    dist_attach(&d, prog, opt, ghi - glo, gbatch, chi - clo, cbatch);

    train_conf conf;
    train_state resumed;
    make_conf(&conf, &o);
    dist_check_run(&d, prog, train_conf_hash(&conf), o.tf.resume);
    uint64_t first = train_begin(prog, &o.tf, &conf, o.eval_every, net, opt, data_rng, &d, gbatch,
                                 "sequences", o.steps, &resumed);
    if (o.tf.resume) /* every rank must go on from the same state */
        dist_check_same(&d, prog, resumed.image_hash,
                        "read different checkpoints (is --resume the same file on every node?)");
    if (dist_root(&d)) { /* after every check that can refuse the command line: an error alone */
        warn_ignored(&o);
        train_notices(prog, &o.tf);
    }
    /* what the optimizer uses: the momentum schedule only for cm and nag, no lr for hf, mhf */
    char momentum[96], desc[320];
    if (o.warm_steps)
        snprintf(momentum, sizeof momentum, "mu %g:%llu then %g", o.warm_mu,
                 (unsigned long long)o.warm_steps, o.mu0);
    else
        snprintf(momentum, sizeof momentum, "mu %g", o.mu0);
    train_optim_desc(desc, sizeof desc, &o.tf, MOM_NET_RECURRENT, o.lr, momentum, 0);
    if (dist_root(&d))
        fprintf(stderr, "%s: task %s%s T=%zu, %zu hidden, %zu parameters, %s, batch %zu, %llu "
                        "updates, seed %llu\n",
                prog, task_name((task_kind)o.task), o.center ? " (centered)" : "", o.T, o.hidden,
                mom_net_num_params(net), desc, o.batch, (unsigned long long)o.steps,
                (unsigned long long)o.seed);

    trace tr;
    memset(&tr, 0, sizeof tr);
    if (o.trace && dist_root(&d)) {
        if (o.tf.resume && cli_csv_trim(o.trace, resumed.keep_rows) != 0) {
            fprintf(stderr, "%s: cannot drop the rows past update %llu from the trace %s: %s\n",
                    prog, (unsigned long long)resumed.keep_rows, o.trace, strerror(errno));
            return 1;
        }
        trace_open(&tr, o.trace, o.tf.resume != NULL, net, o.hidden);
        if (o.tf.resume == NULL) {
            /* the initial network, on a minibatch of its own stream (the training stream is
             * left as it is, so a traced run trains exactly as an untraced one) */
            mom_rng_reseed(eval_rng, o.seed, 4);
            task_generate(&t, &train, eval_rng);
            mom_batch v0 = task_loss_view(&train);
            trace_row(&tr, 0, net, &v0);
        }
    }

    train_monitor mon;
    train_monitor_start(&mon, prog, &o.tf, &conf, first, o.steps, o.eval_every, &resumed,
                        !dist_root(&d));
    train_theta theta; /* --lookahead: evaluations see theta, not the vector the network holds */
    train_theta_init(&theta, prog, &o.tf, net);
    double train_loss = NAN, test_err = NAN, train_err = NAN;
    int diverged = 0;
    for (uint64_t step = first; step <= o.steps; step++) {
        task_generate(&t, &train, data_rng);
        if (d.on)
            task_batch_slice(&t, &ltrain, &train, glo);
        mom_batch v = task_loss_view(d.on ? &ltrain : &train), cv = v;
        if (cbatch) {
            task_generate(&t, &curv, data_rng);
            if (d.on)
                task_batch_slice(&t, &lcurv, &curv, clo);
            cv = task_loss_view(d.on ? &lcurv : &curv);
        }
        double mu_now = mom_optim_momentum(opt), lr_now = mom_optim_lr(opt), loss;
        rc = train_step(&loss, opt, net, &v, cbatch ? &cv : NULL);
        if ((diverged = train_monitor_step(&mon, rc, step, loss, opt)))
            break;
        if (train_monitor_due(&mon, step)) {
            dist_check_agree(&d, prog, mom_net_params(net), mom_net_num_params(net), step);
            if (dist_root(&d)) { /* rank 0 evaluates (on the whole minibatch) */
                train_theta_enter(&theta, prog, opt, net);
                if ((rc = task_error(&train_err, net, &t, &train, y)))
                    die_lib("training error", rc, mom_net_errmsg(net));
                test_err = evaluate(net, &t, &evalb, eval_rng, o.seed, o.eval_size, y);
                mom_batch tv = task_loss_view(&train);
                trace_row(&tr, step, net, &tv);
                train_theta_leave(&theta, net);
            }
            train_monitor_eval(&mon, step, mu_now, lr_now, test_err, net, opt, data_rng);
        } else {
            train_monitor_tick(&mon, step);
        }
    }
    char title[400];
    train_optim_desc(desc, sizeof desc, &o.tf, MOM_NET_RECURRENT, o.lr, momentum, 1);
    snprintf(title, sizeof title, "%s T=%zu, %s, seed %llu", task_name((task_kind)o.task), o.T,
             desc, (unsigned long long)o.seed);
    train_monitor_end(&mon, diverged, net, opt, data_rng, title, "test error");
    if (dist_root(&d)) {
        /* The summary describes the final parameters, the ones kept from the update before after
         * a divergence: their loss and error on the last training minibatch (the one of the
         * update that diverged, for a diverged run) and their test error. */
        if (o.steps == 0) /* no training: the initialized network, whose output biases hold the
                           * mean target; the paper's "biases" baseline */
            task_generate(&t, &train, data_rng);
        train_theta_enter(&theta, prog, opt, net); /* (the checkpoint is written: above) */
        mom_batch v = task_loss_view(&train);
        if ((rc = mom_net_loss(&train_loss, net, &v, NULL)) ||
            (rc = task_error(&train_err, net, &t, &train, y)))
            die_lib("evaluation", rc, mom_net_errmsg(net));
        if (o.steps == 0 || diverged) /* else the last evaluation saw these parameters */
            test_err = evaluate(net, &t, &evalb, eval_rng, o.seed, o.eval_size, y);
        train_theta_leave(&theta, net); /* every rank's vector is compared below */
    }
    double seconds = train_monitor_seconds(&mon);
    dist_check_agree(&d, prog, mom_net_params(net), mom_net_num_params(net), mom_optim_steps(opt));
    if (dist_root(&d)) {
        printf("final steps=%llu train_loss=%.6g train_error=%.6g test_error=%.6g seconds=%.1f\n",
               (unsigned long long)mom_optim_steps(opt), train_loss, train_err, test_err, seconds);
        if (cli_stdout_status(prog, "the summary line", 4) != 0)
            mon.output_failed = 1;
    }
    if (trace_close(&tr) != 0)
        mon.output_failed = 1;
    train_theta_free(&theta);
    train_conf_free(&conf);
    mom_optim_destroy(opt);
    mom_net_destroy(net);
    mom_rng_destroy(data_rng);
    mom_rng_destroy(eval_rng);
    task_batch_free(&train);
    task_batch_free(&evalb);
    task_batch_free(&curv);
    task_batch_free(&ltrain);
    task_batch_free(&lcurv);
    free(y);
    dist_finish(&d);
    return train_exit_status(&mon, diverged);
}
