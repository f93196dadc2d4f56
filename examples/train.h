/* Shared training helpers of the example trainers: HF / momentum-HF settings from flags, one
 * training step for every optimizer, and checkpoint save/resume. Public API only. */
#ifndef MOMEX_TRAIN_H
#define MOMEX_TRAIN_H

#include <stdio.h>
#include <mominit/mominit.h>

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
} hf_settings;

/* Flags both trainers share: --optim, the HF flags, --log, --plot, --threads, --checkpoint,
 * --checkpoint-every, --resume. */
typedef struct train_flags {
    int optim;
    hf_settings hf;
    const char *log, *plot, *checkpoint, *resume;
    uint64_t checkpoint_every;
    int threads;
} train_flags;

/* Defaults: NAG, hf_defaults(net_kind), nothing else set. */
void train_flags_init(train_flags *f, int net_kind);

/* If argv[*i] is one of the shared flags, parse it (advancing *i) and return 1; else 0. */
int train_parse_flag(const char *prog, int argc, char **argv, int *i, train_flags *f);

/* After parsing: default --checkpoint-every to eval_every and check it is a multiple of it; set
 * the BLAS threads. Usage errors exit with status 2. */
void train_flags_finish(const char *prog, train_flags *f, uint64_t eval_every);

/* Help text of the shared flags (without the HF ones). */
void train_usage(FILE *f);

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

/* Save net + optimizer + the data stream (may be NULL) atomically to path; message on failure. */
int train_save(const char *prog, const char *path, mom_net *net, mom_optim *opt, mom_rng *data);

/* Restore a checkpoint into existing handles of the same architecture and optimizer kind; exits
 * with status 1 and a message naming the file and the problem on failure. */
void train_resume(const char *prog, const char *path, mom_net *net, mom_optim *opt, mom_rng *data);

#endif
