/*
 * mominit-ae: train a deep autoencoder (paper.md section 3) with sparse initialization and the
 * paper's momentum schedule, on generated CURVES images or an MNIST-format IDX file such as
 * Fashion-MNIST. Uses the public API only.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mominit/mominit.h>

#include "cli.h"
#include "data.h"
#include "png.h"
#include "train.h"
#include "dist.h"

static const char *prog = "mominit-ae";

#define MAX_LAYERS 64

typedef struct options {
    const char *data, *test_data, *arch, *recon;
    const char *test_path; /* the test images: --test-data's file, the guessed one, or NULL */
    char guess[4096];      /* PATH of --data idx:PATH with 'train-' replaced by 't10k-' */
    train_flags tf;
    int output;
    double mu_max, lr, si_scale, final_mu;
    uint64_t steps, final_steps, seed, eval_every, period;
    uint64_t final_given_steps; /* N of --final-phase N:M as given (final_steps: at most --steps) */
    size_t batch, train_size, eval_size;
    int mu_max_given, period_given, final_given, lr_given, batch_given;
} options;

static void usage(FILE *f)
{
    fprintf(f,
"usage: mominit-ae [options]\n"
"Train a deep autoencoder (Sutskever et al. 2013, section 3).\n"
"\n"
"  --data SRC          curves (generated, default) or idx:PATH (MNIST-format images, gzip or\n"
"                      plain, e.g. idx:/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz)\n"
"  --test-data idx:P   test images (default: PATH with 'train-' replaced by 't10k-' if present)\n"
"  --arch A-B-...-C    encoder sizes; the decoder mirrors them (default 784-400-200-100-50-25-6\n"
"                      for curves, 784-1000-500-250-30 for idx)\n"
"  --output NAME       logistic (cross-entropy, default) or linear (squared error)\n"
"  --optim NAME        sgd, cm, nag (default), hf (Martens' HF), mhf (momentum-HF)\n"
"  --mu-max X          cap of the momentum schedule (default 0.99; 0 gives plain SGD)\n"
"  --mu-period N       updates per step of the schedule (default 250)\n"
"  --lr X              learning rate (default 0.005); hf and mhf ignore it (with a warning):\n"
"                      their step comes from HF\n"
"  --steps N           updates (default 4000); a --resume may raise it unless cm or nag run\n"
"                      a final phase (whose place --steps decides)\n"
"  --batch N           minibatch size of sgd, cm and nag: at most the number of training\n"
"                      images (default 200, or all of them when there are fewer)\n"
"  --final-phase N:M   use momentum min(mu, M) for the last N updates (default 1000:0.9;\n"
"                      0:0 disables)\n"
"                      --mu-max, --mu-period and --final-phase are for cm and nag: sgd, hf and\n"
"                      mhf ignore them, with a warning unless they ask for no momentum\n"
"  --si-scale X        multiplier of the sparse initialization (default 1)\n"
"  --train-size N      use the first N training images (default all; curves: 20000)\n"
"  --eval-size N       training images used for the periodic error (default 10000; the final\n"
"                      error uses the whole training set)\n"
"  --eval-every N      evaluate every N updates (default 500)\n"
"  --seed N            seed of initialization, data and order (default 1)\n"
"  --recon FILE.png    write 10 test images (training images when there is no test set) and\n"
"                      their reconstructions at the end\n"
"\n");
    train_usage(f);
    fprintf(f, "\n");
    hf_usage(f);
    fprintf(f, "  (autoencoders: HF's gradient batch defaults to the whole training set and its\n"
"   curvature batch to 1/4 of it; momentum-HF uses 1/16 of the data for both)\n"
"\n"
"The last line on stdout is a summary:\n"
"final steps=<n> train_loss=<x> train_error=<x> test_error=<x> seconds=<x>\n"
"All three describe the final parameters (after a divergence: the ones kept from the update\n"
"before): train_loss (the --output loss per image, without weight decay) and train_error on the\n"
"whole training set, test_error on the test set (nan without one).\n"
"Errors are the paper's: squared error summed over pixels, averaged over images.\n");
}

/* The fields of "784-400-...-6" into enc (usage error unless that is its form): their count. */
static size_t arch_fields(const char *arch, size_t *enc)
{
    size_t m = 0;
    const char *p = arch;
    while (*p) {
        char *end;
        unsigned long v = isdigit((unsigned char)*p) ? strtoul(p, &end, 10) : 0;
        if (v == 0 || v > 100000)
            cli_usage_error(prog, "--arch must look like 784-400-200-6, got '%s'", arch);
        if (m >= MAX_LAYERS / 2 - 1) /* mirrored: 2m - 1 unit layers */
            cli_usage_error(prog, "--arch takes at most %d sizes, got more in '%s'",
                            MAX_LAYERS / 2 - 1, arch);
        enc[m++] = v;
        if (*end == '-' && end[1] != '\0')
            end++;
        else if (*end != '\0')
            cli_usage_error(prog, "--arch must look like 784-400-200-6, got '%s'", arch);
        p = end;
    }
    if (m < 2)
        cli_usage_error(prog, "--arch needs at least an input and a code size, got '%s'", arch);
    return m;
}

static void parse(options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->data = "curves";
    o->output = MOM_OUT_LOGISTIC_XENT;
    o->mu_max = 0.99;
    o->period = 250;
    o->lr = 0.005;
    o->steps = 4000;
    o->batch = 200;
    o->final_steps = 1000;
    o->final_mu = 0.9;
    o->si_scale = 1.0;
    o->eval_size = 10000;
    o->eval_every = 500;
    o->seed = 1;
    train_flags_init(&o->tf, MOM_NET_FEEDFORWARD);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(cli_stdout_status(prog, "the help", 1));
        } else if (strcmp(a, "--data") == 0) {
            o->data = cli_value(prog, argc, argv, &i);
            if (strcmp(o->data, "curves") != 0 && strncmp(o->data, "idx:", 4) != 0)
                cli_usage_error(prog, "--data must be curves or idx:PATH, got '%s'", o->data);
            if (strcmp(o->data, "idx:") == 0)
                cli_usage_error(prog, "--data idx: needs a file name after 'idx:'");
        } else if (strcmp(a, "--test-data") == 0) {
            o->test_data = cli_value(prog, argc, argv, &i);
            if (strncmp(o->test_data, "idx:", 4) != 0)
                cli_usage_error(prog, "--test-data must be idx:PATH, got '%s'", o->test_data);
            if (o->test_data[4] == '\0')
                cli_usage_error(prog, "--test-data idx: needs a file name after 'idx:'");
        } else if (strcmp(a, "--arch") == 0) {
            o->arch = cli_value(prog, argc, argv, &i);
        } else if (strcmp(a, "--output") == 0) {
            const char *v = cli_value(prog, argc, argv, &i);
            if (strcmp(v, "logistic") == 0)
                o->output = MOM_OUT_LOGISTIC_XENT;
            else if (strcmp(v, "linear") == 0)
                o->output = MOM_OUT_LINEAR_SQUARED;
            else
                cli_usage_error(prog, "unknown output '%s' (logistic, linear)", v);
        } else if (train_parse_flag(prog, argc, argv, &i, &o->tf)) {
            continue;
        } else if (strcmp(a, "--mu-max") == 0) {
            o->mu_max = cli_double(prog, a, cli_value(prog, argc, argv, &i), 0.0, 1.0);
            o->mu_max_given = 1;
        } else if (strcmp(a, "--mu-period") == 0) {
            o->period = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, (size_t)1 << 40);
            o->period_given = 1;
        } else if (strcmp(a, "--lr") == 0) {
            o->lr = cli_double(prog, a, cli_value(prog, argc, argv, &i), 1e-12, 100.0);
            o->lr_given = 1;
        } else if (strcmp(a, "--steps") == 0) {
            o->steps = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, (size_t)1 << 40);
        } else if (strcmp(a, "--batch") == 0) {
            o->batch = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, 1000000);
            o->batch_given = 1;
        } else if (strcmp(a, "--final-phase") == 0) {
            char first[64];
            const char *second = cli_split(prog, a, cli_value(prog, argc, argv, &i), first,
                                           sizeof first, "STEPS:MU");
            o->final_steps = cli_u64(prog, a, first);
            o->final_mu = cli_double(prog, a, second, 0.0, 1.0);
            o->final_given = 1;
        } else if (strcmp(a, "--si-scale") == 0) {
            o->si_scale = cli_double(prog, a, cli_value(prog, argc, argv, &i), 0.0, 1e6);
        } else if (strcmp(a, "--train-size") == 0) {
            o->train_size = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, 100000000);
        } else if (strcmp(a, "--eval-size") == 0) {
            o->eval_size = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, 100000000);
        } else if (strcmp(a, "--eval-every") == 0) {
            o->eval_every = cli_size(prog, a, cli_value(prog, argc, argv, &i), 1, (size_t)1 << 40);
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = cli_u64(prog, a, cli_value(prog, argc, argv, &i));
        } else if (strcmp(a, "--recon") == 0) {
            o->recon = cli_value(prog, argc, argv, &i);
        } else {
            cli_usage_error(prog, "unknown option '%s'", a);
        }
    }
    o->final_given_steps = o->final_steps;
    if (o->final_steps > o->steps)
        o->final_steps = o->steps;
    if (o->test_data && strncmp(o->data, "idx:", 4) != 0)
        cli_usage_error(prog, "--test-data goes with --data idx:PATH (curves makes its own)");
    if (o->arch != NULL) { /* its form now, its first size once the data is known */
        size_t enc[MAX_LAYERS / 2];
        (void)arch_fields(o->arch, enc);
    }
    o->test_path = o->test_data ? o->test_data + 4 : NULL;
    if (o->test_path == NULL && strncmp(o->data, "idx:", 4) == 0) {
        const char *path = o->data + 4, *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        if (strncmp(base, "train-", 6) == 0 && strlen(path) + 1 < sizeof o->guess) {
            snprintf(o->guess, sizeof o->guess, "%.*st10k-%s", (int)(base - path), path,
                     base + 6);
            if (access(o->guess, F_OK) == 0) /* used if present, as --help says */
                o->test_path = o->guess;
        }
    }
    const cli_path own[] = {
        {"--recon", o->recon, 1, 0},
        {"--data", strncmp(o->data, "idx:", 4) == 0 ? o->data + 4 : NULL, 0, 0},
        {o->test_data ? "--test-data" : "the test set", o->test_path, 0, 0},
    };
    train_flags_finish(prog, &o->tf, o->eval_every, own, sizeof own / sizeof own[0]);
    if (o->recon)
        cli_check_output(prog, "--recon", o->recon, 0);
}

/* Flags of the momentum methods given to an optimizer without momentum: a warning, unless they
 * ask for none. */
static void warn_ignored(const options *o)
{
    int momentum = o->tf.optim == TRAIN_CM || o->tf.optim == TRAIN_NAG;
    int hf = o->tf.optim == TRAIN_HF || o->tf.optim == TRAIN_MHF;
    if (!momentum && o->mu_max_given && o->mu_max != 0)
        train_warn_ignored(prog, &o->tf, "--mu-max", "cm and nag");
    if (!momentum && o->period_given)
        train_warn_ignored(prog, &o->tf, "--mu-period", "cm and nag");
    if (!momentum && o->final_given && o->final_steps != 0)
        train_warn_ignored(prog, &o->tf, "--final-phase", "cm and nag");
    if (hf && o->lr_given)
        train_warn_ignored(prog, &o->tf, "--lr", "sgd, cm and nag");
    if (hf && o->batch_given) /* HF's batches: --hf-grad-batch, --hf-curv-batch */
        train_warn_ignored(prog, &o->tf, "--batch", "sgd, cm and nag");
}

/* Parse "784-400-...-6" into sizes, then mirror: returns the number of weight layers. */
static size_t parse_arch(const char *arch, size_t input, size_t *sizes)
{
    size_t enc[MAX_LAYERS / 2];
    size_t m = arch_fields(arch, enc);
    if (enc[0] != input)
        cli_usage_error(prog, "--arch starts with %zu but the images have %zu pixels", enc[0],
                        input);
    size_t n = 0;
    for (size_t i = 0; i < m; i++)
        sizes[n++] = enc[i];
    for (size_t i = m - 1; i-- > 0;)
        sizes[n++] = enc[i];
    return n - 1;
}

static void die_lib(const char *what, int rc, const char *detail)
{
    cli_progress_break();
    fprintf(stderr, "%s: %s failed: %s%s%s\n", prog, what, mom_strerror(rc),
            detail && *detail ? ": " : "", detail ? detail : "");
    exit(1);
}

/* Mean over the first `count` images of a metric, in chunks of `chunk` cases. */
static double eval_set(mom_net *net, const dataset *s, size_t count, size_t chunk, int metric)
{
    double total = 0;
    for (size_t i = 0; i < count; i += chunk) {
        size_t n = count - i < chunk ? count - i : chunk;
        mom_batch b = {n, 0, s->x + i * s->d, s->x + i * s->d, NULL, NULL};
        double v;
        int rc = mom_net_metric(&v, net, &b, NULL, metric, 0);
        if (rc != MOM_OK)
            die_lib("evaluation", rc, mom_net_errmsg(net));
        total += v * (double)n;
    }
    return total / (double)count;
}

/* Mean loss (the --output loss per image) over the first `count` images, in chunks. */
static double eval_loss(mom_net *net, const dataset *s, size_t count, size_t chunk)
{
    double total = 0;
    for (size_t i = 0; i < count; i += chunk) {
        size_t n = count - i < chunk ? count - i : chunk;
        mom_batch b = {n, 0, s->x + i * s->d, s->x + i * s->d, NULL, NULL};
        double v;
        int rc = mom_net_loss(&v, net, &b, NULL);
        if (rc != MOM_OK)
            die_lib("evaluation", rc, mom_net_errmsg(net));
        total += v * (double)n;
    }
    return total / (double)count;
}

/* The first 10 images of s (which: "test" or "training") over their reconstructions, as a PNG:
 * 0, or -1 with a message. */
static int write_recon(const char *path, mom_net *net, const dataset *s, const char *which)
{
    size_t k = s->n < 10 ? s->n : 10, side_r = s->rows, side_c = s->cols;
    float *y = malloc(k * s->d * sizeof *y);
    unsigned char *img = calloc(2 * side_r * k * side_c, 1);
    mom_batch b = {k, 0, s->x, s->x, NULL, NULL};
    errno = 0;
    int rc = (y && img) ? mom_net_forward(y, net, &b, NULL, mom_net_num_layers(net) - 1) : -1;
    if (rc == 0) {
        for (size_t i = 0; i < k; i++)
            for (size_t r = 0; r < side_r; r++)
                for (size_t c = 0; c < side_c; c++) {
                    float a = s->x[i * s->d + r * side_c + c], o = y[i * s->d + r * side_c + c];
                    a = a < 0 ? 0 : (a > 1 ? 1 : a);
                    o = o < 0 ? 0 : (o > 1 ? 1 : o);
                    img[r * k * side_c + i * side_c + c] = (unsigned char)(255.0f * a + 0.5f);
                    img[(side_r + r) * k * side_c + i * side_c + c] =
                        (unsigned char)(255.0f * o + 0.5f);
                }
        rc = png_write_grey(path, img, k * side_c, 2 * side_r);
    }
    if (rc == 0)
        fprintf(stderr, "%s: %s images (top) and reconstructions (bottom) in %s\n", prog, which,
                path);
    else
        fprintf(stderr, "%s: could not write %s: %s\n", prog, path,
                errno ? strerror(errno) : "out of memory");
    free(y);
    free(img);
    return rc == 0 ? 0 : -1;
}

/* The flags that shape the run, for its checkpoints: --resume refuses a checkpoint of other ones.
 * The data sets are compared by their contents (a moved file is the same data). --steps may
 * differ unless cm or nag run a final phase that lowers the momentum: the checkpoint holds the
 * momentum schedule, whose final phase sits at the end of the first run's --steps. Flags the
 * chosen optimizer ignores are recorded but not compared. */
static void make_conf(train_conf *c, const options *o, const dataset *train, const dataset *test,
                      const char *test_label, size_t gbatch, size_t eval_n)
{
    int momentum = o->tf.optim == TRAIN_CM || o->tf.optim == TRAIN_NAG;
    int hf = o->tf.optim == TRAIN_HF || o->tf.optim == TRAIN_MHF;
    int final_phase = momentum && o->final_given_steps > 0 && o->final_mu < o->mu_max;
    char num[40], pair[96];
    train_conf_init(c, prog);
    train_conf_u64(c, "--seed", 1, o->seed);
    train_conf_data(c, "--data", o->data, train->n, train->d, train->x);
    train_conf_hint(c, "resume with the --data and --train-size of the run that wrote it");
    train_conf_u64(c, "--train-size", 0, o->train_size);
    train_conf_data(c, "--test-data", test_label, test->n, test->d, test->x);
    /* the sizes, not the text ("0784-8-3" is 784-8-3) */
    size_t enc[MAX_LAYERS / 2], m = arch_fields(o->arch, enc);
    char arch[MAX_LAYERS / 2 * 21] = "";
    for (size_t i = 0, at = 0; i < m && at < sizeof arch; i++)
        at += (size_t)snprintf(arch + at, sizeof arch - at, "%s%zu", i ? "-" : "", enc[i]);
    train_conf_str(c, "--arch", 1, arch);
    train_conf_str(c, "--output", 1, o->output == MOM_OUT_LINEAR_SQUARED ? "linear" : "logistic");
    train_conf_dbl(c, "--si-scale", 1, o->si_scale);
    train_conf_optim(c, &o->tf, MOM_NET_FEEDFORWARD);
    train_conf_dbl(c, "--lr", !hf, o->lr);
    train_conf_dbl(c, "--mu-max", momentum, o->mu_max);
    train_conf_u64(c, "--mu-period", momentum, o->period);
    train_num_text(num, sizeof num, o->final_mu);
    snprintf(pair, sizeof pair, "%llu:%s", (unsigned long long)o->final_given_steps, num);
    /* a final phase that lowers nothing (0 updates, or mu at least --mu-max) is none at all */
    train_conf_str(c, "--final-phase", momentum, final_phase ? pair : "none");
    train_conf_u64(c, "--steps", final_phase, o->steps);
    train_conf_hint(c, "the final phase of --final-phase ends at --steps: resume with the --steps "
                       "of the run that wrote it; a run started with --final-phase 0:0 can be "
                       "extended");
    train_conf_u64(c, "--batch", !hf, gbatch);
    train_conf_u64(c, "--eval-every", 1, o->eval_every);
    train_conf_u64(c, "--eval-size", 1, eval_n);
    train_conf_hint(c, "the values used, at most the training set's size: resume with the "
                       "--eval-size of the run that wrote it");
}

int main(int argc, char **argv)
{
    options o;
    parse(&o, argc, argv);
    dist d;
    dist_start(&d, prog, &argc, &argv, o.tf.mpi);

    dataset train, test;
    char err[512], tlabel[4200];
    const char *test_label = "curves"; /* what --test-data names in a mismatch */
    int rc;
    if (strcmp(o.data, "curves") == 0) {
        mom_rng *r = NULL;
        if ((rc = mom_rng_create(&r, o.seed, 10, NULL)))
            die_lib("creating a stream", rc, NULL);
        size_t n_train = o.train_size ? o.train_size : 20000;
        if (curves_generate(&train, n_train, r) != 0)
            die_lib("generating CURVES", MOM_E_NOMEM, NULL);
        mom_rng_reseed(r, o.seed, 11);
        if (curves_generate(&test, 10000, r) != 0)
            die_lib("generating CURVES", MOM_E_NOMEM, NULL);
        mom_rng_destroy(r);
    } else {
        const char *path = o.data + 4;
        if (idx_read_images(&train, path, o.train_size, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", prog, err);
            return 1;
        }
        const char *tpath = o.test_path;
        memset(&test, 0, sizeof test);
        if (tpath)
            snprintf(tlabel, sizeof tlabel, "idx:%s", tpath);
        test_label = tpath ? tlabel : "none";
        if (tpath && idx_read_images(&test, tpath, 0, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", prog, err);
            return 1;
        }
        if (test.n && test.d != train.d) {
            fprintf(stderr, "%s: %s has %zu pixels per image but the training set has %zu\n", prog,
                    tpath, test.d, train.d);
            return 1;
        }
    }
    if (o.arch == NULL)
        o.arch = strcmp(o.data, "curves") == 0 ? "784-400-200-100-50-25-6" : "784-1000-500-250-30";

    size_t sizes[MAX_LAYERS];
    int acts[MAX_LAYERS];
    size_t L = parse_arch(o.arch, train.d, sizes);
    size_t code = L / 2; /* unit layer of the code */
    for (size_t l = 1; l < L; l++)
        acts[l - 1] = l == code ? MOM_ACT_LINEAR : MOM_ACT_LOGISTIC;
    mom_net *net;
    if ((rc = mom_net_create_ff(&net, L, sizes, acts, o.output, NULL)))
        die_lib("creating the network", rc, NULL);
    {
        mom_init *ini = NULL;
        mom_rng *r = NULL;
        if ((rc = mom_init_create(&ini, MOM_INIT_SPARSE, NULL)) ||
            (rc = mom_init_set(ini, MOM_INIT_OPT_SCALE, o.si_scale)) ||
            (rc = mom_rng_create(&r, o.seed, 0, NULL)))
            die_lib("creating the initializer", rc, NULL);
        if ((rc = mom_init_apply(ini, net, r)))
            die_lib("initializing", rc, mom_init_errmsg(ini));
        mom_init_destroy(ini);
        mom_rng_destroy(r);
    }

    mom_optim *opt;
    mom_sched *lr = NULL, *mu = NULL, *mu_final = NULL;
    if ((rc = mom_sched_create_const(&lr, o.lr, NULL)) ||
        (rc = mom_sched_create_paper_momentum(&mu, o.mu_max, o.period, NULL)) ||
        (rc = mom_sched_create_final_phase(&mu_final, mu, o.steps, o.final_steps, o.final_mu,
                                           MOM_FINAL_MIN, NULL)))
        die_lib("creating the schedules", rc, NULL);
    opt = train_optim_create(prog, o.tf.optim, mom_net_num_params(net), lr, mu_final, &o.tf.hf,
                             MOM_NET_FEEDFORWARD);
    mom_sched_destroy(lr);
    mom_sched_destroy(mu);
    mom_sched_destroy(mu_final);

    /* Batch sizes: first-order methods --batch; HF the whole set for the gradient and a quarter
     * for the curvature (Martens' demo); momentum-HF 1/16 of the set for both. */
    size_t gbatch = o.batch, cbatch = 0;
    if (!o.batch_given && gbatch > train.n)
        gbatch = train.n; /* the default fits a small training set */
    if (o.tf.optim == TRAIN_HF) {
        gbatch = o.tf.hf.grad_batch ? o.tf.hf.grad_batch : train.n;
        cbatch = o.tf.hf.curv_batch ? o.tf.hf.curv_batch : (train.n + 3) / 4;
    } else if (o.tf.optim == TRAIN_MHF) {
        gbatch = o.tf.hf.grad_batch ? o.tf.hf.grad_batch : (train.n + 15) / 16;
        cbatch = o.tf.hf.curv_batch;
    }
    /* (HF's default batches are parts of the set: only a given one can be too large) */
    if ((o.tf.optim == TRAIN_HF || o.tf.optim == TRAIN_MHF) && (gbatch > train.n || cbatch > train.n))
        cli_usage_error(prog, "%s %zu exceeds the %zu training images",
                        gbatch > train.n ? "--hf-grad-batch" : "--hf-curv-batch",
                        gbatch > train.n ? gbatch : cbatch, train.n);
    if (gbatch > train.n) /* a minibatch holds each image once at most */
        cli_usage_error(prog, "--batch %zu exceeds the %zu training images", gbatch, train.n);
    /* Data-parallel (--mpi): every rank holds the data set and draws the same case order, and
     * trains on its block of each minibatch (cases glo..ghi-1 of the gradient batch, clo..chi-1 of
     * the curvature batch), so the union of the blocks is the single-process batch. */
    size_t glo = 0, ghi = gbatch, clo = 0, chi = cbatch;
    if (d.on) {
        dist_block(&d, prog, "minibatch", gbatch, &glo, &ghi);
        if (cbatch)
            dist_block(&d, prog, "curvature minibatch", cbatch, &clo, &chi);
    }
    dist_attach(&d, prog, opt, ghi - glo, gbatch, chi - clo, cbatch);
    if ((rc = mom_net_reserve(net, gbatch > cbatch ? gbatch : cbatch, 1)))
        die_lib("reserving the workspace", rc, mom_net_errmsg(net));
    size_t eval_n = o.eval_size < train.n ? o.eval_size : train.n;
    train_conf conf;
    train_state resumed;
    /* hashing the data sets takes a moment: when needed (checkpoints, and the ranks of --mpi,
     * which must train on the same data) */
    if (o.tf.checkpoint || o.tf.resume || d.on)
        make_conf(&conf, &o, &train, &test, test_label, gbatch, eval_n);
    else
        train_conf_init(&conf, prog);
    dist_check_run(&d, prog, train_conf_hash(&conf), o.tf.resume);
    uint64_t first = train_begin(prog, &o.tf, &conf, o.eval_every, net, opt, NULL, &d, gbatch,
                                 "cases", o.steps, &resumed);
    if (o.tf.resume) /* every rank must go on from the same state */
        dist_check_same(&d, prog, resumed.image_hash,
                        "read different checkpoints (is --resume the same file on every node?)");
    if (dist_root(&d)) { /* after every check that can refuse the command line: an error alone */
        warn_ignored(&o);
        train_notices(prog, &o.tf);
    }
    /* what the optimizer uses: the momentum schedule only for cm and nag, no lr for hf, mhf */
    char momentum[64], desc[320];
    snprintf(momentum, sizeof momentum, "mu_max %g", o.mu_max);
    train_optim_desc(desc, sizeof desc, &o.tf, MOM_NET_FEEDFORWARD, o.lr, momentum, 0);
    if (dist_root(&d))
        fprintf(stderr, "%s: %s (%zu train, %zu test), arch %s mirrored, %zu parameters, %s, "
                        "batch %zu, %llu updates, seed %llu\n",
                prog, o.data, train.n, test.n, o.arch, mom_net_num_params(net), desc, gbatch,
                (unsigned long long)o.steps, (unsigned long long)o.seed);

    /* Minibatches: epoch e visits the training set in the order of a permutation drawn from
     * stream (seed, 1000 + e); the k-th case of the run is position k mod n of epoch k / n. The
     * order is thus a function of the update number, and resuming needs no extra state. */
    size_t per_step = gbatch + cbatch, g_local = ghi - glo, c_local = chi - clo;
    size_t *perm = malloc(train.n * sizeof *perm);
    float *xb = malloc((g_local + c_local + 1) * train.d * sizeof *xb);
    if (perm == NULL || xb == NULL)
        die_lib("allocating the batch", MOM_E_NOMEM, NULL);
    mom_rng *order;
    if ((rc = mom_rng_create(&order, o.seed, 1000, NULL)))
        die_lib("creating a stream", rc, NULL);
    uint64_t case_no = (first - 1) * per_step, epoch = UINT64_MAX;
    int full = gbatch == train.n && cbatch == 0; /* full-batch gradient: use the set in place */

    train_monitor mon;
    train_monitor_start(&mon, prog, &o.tf, &conf, first, o.steps, o.eval_every, &resumed,
                        !dist_root(&d));
    train_theta theta; /* --lookahead: evaluations see theta, not the vector the network holds */
    train_theta_init(&theta, prog, &o.tf, net);
    int diverged = 0;
    for (uint64_t step = first; step <= o.steps; step++) {
        for (size_t k = 0; k < per_step && !full; k++, case_no++) {
            if (case_no / train.n != epoch) { /* new epoch: Fisher-Yates shuffle */
                epoch = case_no / train.n;
                mom_rng_reseed(order, o.seed, 1000 + epoch);
                for (size_t i = 0; i < train.n; i++)
                    perm[i] = i;
                for (size_t i = train.n - 1; i > 0; i--) {
                    size_t j = (size_t)mom_rng_below(order, i + 1), tmp = perm[i];
                    perm[i] = perm[j];
                    perm[j] = tmp;
                }
            }
            /* this rank's cases only: position k of the step goes to slot j of xb */
            size_t j;
            if (k >= glo && k < ghi)
                j = k - glo;
            else if (k >= gbatch + clo && k < gbatch + chi)
                j = g_local + (k - gbatch - clo);
            else
                continue;
            memcpy(xb + j * train.d, train.x + perm[case_no % train.n] * train.d,
                   train.d * sizeof *xb);
        }
        const float *gx = full ? train.x + glo * train.d : xb;
        mom_batch b = {g_local, 0, gx, gx, NULL, NULL};
        mom_batch cb = {c_local, 0, xb + g_local * train.d, xb + g_local * train.d, NULL, NULL};
        double mu_now = mom_optim_momentum(opt), lr_now = mom_optim_lr(opt), loss;
        rc = train_step(&loss, opt, net, &b, cbatch ? &cb : NULL);
        if ((diverged = train_monitor_step(&mon, rc, step, loss, opt)))
            break;
        if (train_monitor_due(&mon, step)) {
            dist_check_agree(&d, prog, mom_net_params(net), mom_net_num_params(net), step);
            double e = NAN;
            if (dist_root(&d)) { /* rank 0 evaluates */
                train_theta_enter(&theta, prog, opt, net);
                e = eval_set(net, &train, eval_n, 1000, MOM_METRIC_SQUARED_ERROR);
                train_theta_leave(&theta, net);
            }
            train_monitor_eval(&mon, step, mu_now, lr_now, e, net, opt, NULL);
        } else
            train_monitor_tick(&mon, step);
    }
    char title[600];
    train_optim_desc(desc, sizeof desc, &o.tf, MOM_NET_FEEDFORWARD, o.lr, momentum, 1);
    snprintf(title, sizeof title, "%s %s, %s, seed %llu", o.data, o.arch, desc,
             (unsigned long long)o.seed);
    train_monitor_end(&mon, diverged, net, opt, NULL, title, "training squared error");
    dist_check_agree(&d, prog, mom_net_params(net), mom_net_num_params(net), mom_optim_steps(opt));
    if (dist_root(&d)) {
        /* the final parameters (after a divergence: the ones kept from the update before) on
         * the whole training set, the loss as well as the error; theta with --lookahead (the
         * checkpoint, written above, holds the vector the run goes on from) */
        train_theta_enter(&theta, prog, opt, net);
        double train_loss = eval_loss(net, &train, train.n, 1000);
        double train_full = eval_set(net, &train, train.n, 1000, MOM_METRIC_SQUARED_ERROR);
        double test_err =
            test.n ? eval_set(net, &test, test.n, 1000, MOM_METRIC_SQUARED_ERROR) : NAN;
        double seconds = train_monitor_seconds(&mon);
        if (o.recon &&
            write_recon(o.recon, net, test.n ? &test : &train, test.n ? "test" : "training") != 0)
            mon.output_failed = 1;
        printf("final steps=%llu train_loss=%.6g train_error=%.6g test_error=%.6g seconds=%.1f\n",
               (unsigned long long)mom_optim_steps(opt), train_loss, train_full, test_err,
               seconds);
        if (cli_stdout_status(prog, "the summary line", 4) != 0)
            mon.output_failed = 1;
    }
    train_theta_free(&theta);
    train_conf_free(&conf);
    mom_rng_destroy(order);
    mom_optim_destroy(opt);
    mom_net_destroy(net);
    dataset_free(&train);
    dataset_free(&test);
    free(perm);
    free(xb);
    dist_finish(&d);
    return train_exit_status(&mon, diverged);
}
