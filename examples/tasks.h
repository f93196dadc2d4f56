/*
 * The long-term-dependency tasks of Hochreiter & Schmidhuber (1997) as used by Martens & Sutskever
 * (2011) and Sutskever et al. (2013); definitions in docs/tasks.md. Example code: built on the
 * public libmominit API only.
 */
#ifndef MOMEX_TASKS_H
#define MOMEX_TASKS_H

#include <stddef.h>
#include <mominit/mominit.h>

typedef enum task_kind {
    TASK_ADDITION,
    TASK_MULTIPLICATION,
    TASK_XOR,
    TASK_ORDER2,
    TASK_ORDER3,
    TASK_PERMUTATION,
    TASK_MEM5,
    TASK_MEM20
} task_kind;

/* Target conventions of the addition task. */
typedef enum task_target {
    TARGET_MEAN = 0, /* (x1 + x2) / 2, values in [0,1): the default (see paper.md section 6) */
    TARGET_SUM = 1,  /* x1 + x2 */
    TARGET_HS = 2    /* Hochreiter & Schmidhuber: values in [-1,1), target 0.5 + (x1 + x2) / 4 */
} task_target;

typedef struct task {
    task_kind kind;
    size_t T;          /* the task's T (see docs/tasks.md for its meaning per task) */
    size_t n_in, n_out;
    int output;        /* mom_output */
    int metric;        /* mom_metric reported as the task's zero-one error */
    double metric_param;
    size_t max_steps;  /* longest sequence */
    int target;        /* task_target (addition) */
    int center;        /* subtract input means and the mean target */
    int recall_loss;   /* memorization: the loss counts the recall steps only (default 0: every
                        * step, the blanks included); set after task_init() */
    double target_mean; /* mean target subtracted when centering (0 otherwise) */
    double input_mean;  /* mean of the value channel subtracted when centering */
} task;

/* One generated minibatch (owned arrays). loss_mask weights the steps that enter the loss;
 * eval_mask the steps that enter the error metric. */
typedef struct task_batch {
    size_t n, steps;
    float *inputs, *targets, *loss_mask, *eval_mask;
    size_t *lengths;
} task_batch;

/* Name <-> kind. Returns -1 / NULL when unknown. */
int task_parse(const char *name);
const char *task_name(task_kind kind);

/* The smallest T a task takes: 10 for addition, multiplication, xor and the temporal-order tasks
 * (their relevant positions are tenths of the length), 2 for permutation, 1 for memorization. */
size_t task_min_T(task_kind kind);

/* Fill `t` for a kind and T. Returns 0, or -1 for a T too small for the task (below task_min_T). */
int task_init(task *t, task_kind kind, size_t T, int target, int center);

/* Allocate a batch of n sequences for task t (0 / -1 on allocation failure). */
int task_batch_alloc(task_batch *b, const task *t, size_t n);
void task_batch_free(task_batch *b);

/* Generate n fresh sequences drawing from rng (the exact draws are documented in docs/tasks.md). */
void task_generate(const task *t, task_batch *b, mom_rng *rng);

/* Zero-one error of a batch from the network outputs y (steps x n x n_out, time-major), summed
 * over the batch's sequences (divide by n for the mean). Memorization: the number of recall steps
 * whose argmax over the DATA symbols (the blank output excluded, as in the paper's error, which
 * makes a constant guess err on n (1 - 1/a) symbols) differs from the target symbol. Other tasks
 * return -1: use the library metric t->metric instead. */
double task_symbol_errors(const task *t, const task_batch *b, const float *y);

/* Copy sequences [lo, lo + dst->n) of src into dst (allocated for task t with dst->n sequences):
 * one rank's share of a minibatch in data-parallel training. */
void task_batch_slice(const task *t, task_batch *dst, const task_batch *src, size_t lo);

/* Views for the library: the loss view (loss_mask) and the evaluation view (eval_mask). */
mom_batch task_loss_view(const task_batch *b);
mom_batch task_eval_view(const task_batch *b);


#endif
