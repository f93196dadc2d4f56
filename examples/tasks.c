/* Long-term-dependency task generators; see tasks.h and docs/tasks.md. */
#include <stdlib.h>
#include <string.h>

#include "tasks.h"

static const char *const names[] = {"addition", "multiplication", "xor", "temporal-order",
                                    "temporal-order-3", "permutation", "mem5", "mem20"};

int task_parse(const char *name)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

const char *task_name(task_kind kind)
{
    return (size_t)kind < sizeof names / sizeof names[0] ? names[kind] : NULL;
}

/* Alphabet size and number of data symbols of the memorization tasks. */
static void mem_shape(task_kind kind, size_t *alphabet, size_t *count)
{
    *alphabet = kind == TASK_MEM5 ? 2 : 5;
    *count = kind == TASK_MEM5 ? 5 : 10;
}

/* ceil(k * len / 10) in integers: the first integer position >= k/10 of the sequence. */
static size_t tenth(size_t k, size_t len) { return (k * len + 9) / 10; }

size_t task_min_T(task_kind kind)
{
    switch (kind) {
    case TASK_PERMUTATION:
        return 2;
    case TASK_MEM5:
    case TASK_MEM20:
        return 1;
    default:
        return 10;
    }
}

int task_init(task *t, task_kind kind, size_t T, int target, int center)
{
    memset(t, 0, sizeof *t);
    if (T < task_min_T(kind))
        return -1;
    t->kind = kind;
    t->T = T;
    t->target = target;
    t->center = center;
    t->max_steps = T + (T + 9) / 10 - 1; /* T' in [T, 1.1 T) */
    switch (kind) {
    case TASK_ADDITION:
    case TASK_MULTIPLICATION:
    case TASK_XOR:
        t->n_in = 2;
        t->n_out = 1;
        t->output = kind == TASK_XOR ? MOM_OUT_LOGISTIC_XENT : MOM_OUT_LINEAR_SQUARED;
        t->metric = MOM_METRIC_THRESHOLD_ERROR;
        t->metric_param = kind == TASK_XOR ? 0.5 : 0.04;
        if (center && kind != TASK_XOR) {
            t->input_mean = (kind == TASK_ADDITION && target == TARGET_HS) ? 0.0 : 0.5;
            if (kind == TASK_MULTIPLICATION)
                t->target_mean = 0.25;
            else
                t->target_mean = target == TARGET_SUM ? 1.0 : 0.5;
        }
        return 0;
    case TASK_ORDER2:
    case TASK_ORDER3:
        t->n_in = 6;
        t->n_out = kind == TASK_ORDER2 ? 4 : 8;
        t->output = MOM_OUT_SOFTMAX_XENT;
        t->metric = MOM_METRIC_CLASS_ERROR;
        return 0;
    case TASK_PERMUTATION:
        t->n_in = 100;
        t->n_out = 100;
        t->output = MOM_OUT_SOFTMAX_XENT;
        t->metric = MOM_METRIC_CLASS_ERROR;
        return 0;
    case TASK_MEM5:
    case TASK_MEM20: {
        size_t a, c;
        mem_shape(kind, &a, &c);
        t->n_in = a + 2;
        t->n_out = a + 1;
        t->output = MOM_OUT_SOFTMAX_XENT;
        t->metric = MOM_METRIC_WRONG_SYMBOLS;
        t->max_steps = T + 2 * c;
        return 0;
    }
    }
    return -1;
}

int task_batch_alloc(task_batch *b, const task *t, size_t n)
{
    memset(b, 0, sizeof *b);
    size_t cells = n * t->max_steps;
    b->n = n;
    b->steps = t->max_steps;
    b->inputs = calloc(cells * t->n_in, sizeof *b->inputs);
    b->targets = calloc(cells * t->n_out, sizeof *b->targets);
    b->loss_mask = calloc(cells, sizeof *b->loss_mask);
    b->eval_mask = calloc(cells, sizeof *b->eval_mask);
    b->lengths = calloc(n, sizeof *b->lengths);
    if (!b->inputs || !b->targets || !b->loss_mask || !b->eval_mask || !b->lengths) {
        task_batch_free(b);
        return -1;
    }
    return 0;
}

void task_batch_free(task_batch *b)
{
    free(b->inputs);
    free(b->targets);
    free(b->loss_mask);
    free(b->eval_mask);
    free(b->lengths);
    memset(b, 0, sizeof *b);
}

/* Uniform integer in [lo, hi) (hi > lo). */
static size_t draw_range(mom_rng *rng, size_t lo, size_t hi)
{
    return lo + (size_t)mom_rng_below(rng, hi > lo ? hi - lo : 1);
}

#define IN(t_, s_, i_) b->inputs[((t_) * n + (s_)) * t->n_in + (i_)]
#define TG(t_, s_, j_) b->targets[((t_) * n + (s_)) * t->n_out + (j_)]
#define CELL(t_, s_) ((t_) * n + (s_))

static void gen_two_values(const task *t, task_batch *b, size_t s, mom_rng *rng)
{
    const size_t n = b->n;
    size_t len = t->T + (size_t)mom_rng_below(rng, (t->T + 9) / 10);
    b->lengths[s] = len;
    size_t p1 = draw_range(rng, 0, tenth(1, len));
    size_t p2 = draw_range(rng, tenth(1, len), tenth(5, len));
    int hs = t->kind == TASK_ADDITION && t->target == TARGET_HS;
    for (size_t k = 0; k < len; k++) {
        float v;
        if (t->kind == TASK_XOR)
            v = (float)(mom_rng_u32(rng) & 1u);
        else if (hs)
            v = 2.0f * mom_rng_uniformf(rng) - 1.0f;
        else
            v = mom_rng_uniformf(rng);
        IN(k, s, 0) = v;
        IN(k, s, 1) = (k == p1 || k == p2) ? 1.0f : 0.0f;
    }
    double x1 = IN(p1, s, 0), x2 = IN(p2, s, 0), y;
    switch (t->kind) {
    case TASK_MULTIPLICATION:
        y = x1 * x2;
        break;
    case TASK_XOR:
        y = (double)((int)x1 ^ (int)x2);
        break;
    default:
        y = t->target == TARGET_SUM ? x1 + x2 : t->target == TARGET_HS ? 0.5 + (x1 + x2) / 4.0
                                                                      : (x1 + x2) / 2.0;
        break;
    }
    if (t->center)
        for (size_t k = 0; k < len; k++)
            IN(k, s, 0) -= (float)t->input_mean;
    TG(len - 1, s, 0) = (float)(y - t->target_mean);
    b->loss_mask[CELL(len - 1, s)] = 1.0f;
    b->eval_mask[CELL(len - 1, s)] = 1.0f;
}

static void gen_order(const task *t, task_batch *b, size_t s, mom_rng *rng)
{
    const size_t n = b->n;
    size_t len = t->T + (size_t)mom_rng_below(rng, (t->T + 9) / 10);
    b->lengths[s] = len;
    size_t nbits = t->kind == TASK_ORDER2 ? 2 : 3;
    size_t pos[3];
    if (nbits == 2) {
        pos[0] = draw_range(rng, tenth(1, len), tenth(2, len));
        pos[1] = draw_range(rng, tenth(5, len), tenth(6, len));
    } else {
        pos[0] = draw_range(rng, tenth(1, len), tenth(2, len));
        pos[1] = draw_range(rng, tenth(3, len), tenth(4, len));
        pos[2] = draw_range(rng, tenth(6, len), tenth(7, len));
    }
    size_t cls = 0, next = 0;
    for (size_t k = 0; k < len; k++) {
        size_t sym;
        if (next < nbits && k == pos[next]) {
            size_t bit = (size_t)(mom_rng_u32(rng) & 1u);
            cls = cls * 2 + bit;
            sym = 4 + bit; /* X = 4, Y = 5 */
            next++;
        } else {
            sym = (size_t)mom_rng_below(rng, 4);
        }
        IN(k, s, sym) = 1.0f;
    }
    TG(len - 1, s, cls) = 1.0f;
    b->loss_mask[CELL(len - 1, s)] = 1.0f;
    b->eval_mask[CELL(len - 1, s)] = 1.0f;
}

static void gen_permutation(const task *t, task_batch *b, size_t s, mom_rng *rng)
{
    const size_t n = b->n;
    size_t len = t->T + (size_t)mom_rng_below(rng, (t->T + 9) / 10);
    b->lengths[s] = len;
    size_t first = (size_t)(mom_rng_u32(rng) & 1u);
    size_t prev = first;
    IN(0, s, first) = 1.0f;
    for (size_t k = 1; k < len; k++) {
        size_t sym = 2 + (size_t)mom_rng_below(rng, 98);
        IN(k, s, sym) = 1.0f;
        TG(k - 1, s, sym) = 1.0f;
        b->loss_mask[CELL(k - 1, s)] = 1.0f;
        prev = sym;
    }
    (void)prev;
    TG(len - 1, s, first) = 1.0f;
    b->loss_mask[CELL(len - 1, s)] = 1.0f;
    b->eval_mask[CELL(len - 1, s)] = 1.0f;
}

static void gen_memory(const task *t, task_batch *b, size_t s, mom_rng *rng)
{
    const size_t n = b->n;
    size_t a, c;
    mem_shape(t->kind, &a, &c);
    size_t len = t->T + 2 * c;
    b->lengths[s] = len;
    size_t blank_in = a, go_in = a + 1, blank_out = a;
    size_t sym[10];
    for (size_t k = 0; k < c; k++)
        sym[k] = (size_t)mom_rng_below(rng, a);
    for (size_t k = 0; k < len; k++) {
        if (k < c)
            IN(k, s, sym[k]) = 1.0f;
        else if (k == c + t->T - 1)
            IN(k, s, go_in) = 1.0f;
        else
            IN(k, s, blank_in) = 1.0f;
        if (k >= c + t->T) {
            TG(k, s, sym[k - c - t->T]) = 1.0f;
            b->eval_mask[CELL(k, s)] = 1.0f;
        } else {
            TG(k, s, blank_out) = 1.0f;
        }
        b->loss_mask[CELL(k, s)] = (!t->recall_loss || k >= c + t->T) ? 1.0f : 0.0f;
    }
}

void task_generate(const task *t, task_batch *b, mom_rng *rng)
{
    size_t cells = b->n * b->steps;
    memset(b->inputs, 0, cells * t->n_in * sizeof *b->inputs);
    memset(b->targets, 0, cells * t->n_out * sizeof *b->targets);
    memset(b->loss_mask, 0, cells * sizeof *b->loss_mask);
    memset(b->eval_mask, 0, cells * sizeof *b->eval_mask);
    for (size_t s = 0; s < b->n; s++) {
        switch (t->kind) {
        case TASK_ADDITION:
        case TASK_MULTIPLICATION:
        case TASK_XOR:
            gen_two_values(t, b, s, rng);
            break;
        case TASK_ORDER2:
        case TASK_ORDER3:
            gen_order(t, b, s, rng);
            break;
        case TASK_PERMUTATION:
            gen_permutation(t, b, s, rng);
            break;
        case TASK_MEM5:
        case TASK_MEM20:
            gen_memory(t, b, s, rng);
            break;
        }
    }
}

double task_symbol_errors(const task *t, const task_batch *b, const float *y)
{
    if (t->kind != TASK_MEM5 && t->kind != TASK_MEM20)
        return -1.0;
    size_t a, c;
    mem_shape(t->kind, &a, &c);
    const size_t n = b->n, k = t->n_out;
    double wrong = 0;
    for (size_t s = 0; s < n; s++) {
        for (size_t step = 0; step < b->lengths[s]; step++) {
            if (b->eval_mask[CELL(step, s)] == 0.0f)
                continue;
            const float *yr = y + CELL(step, s) * k, *tr = b->targets + CELL(step, s) * k;
            size_t best = 0, want = 0;
            int nan = yr[0] != yr[0];
            for (size_t j = 1; j < a; j++) {
                best = yr[j] > yr[best] ? j : best;
                want = tr[j] > tr[want] ? j : want;
                nan |= yr[j] != yr[j];
            }
            wrong += nan || best != want; /* a NaN output recalls nothing */
        }
    }
    return wrong;
}

void task_batch_slice(const task *t, task_batch *dst, const task_batch *src, size_t lo)
{
    const size_t n = dst->n, sn = src->n;
    dst->steps = src->steps;
    for (size_t st = 0; st < src->steps; st++) {
        const size_t from = st * sn + lo, to = st * n;
        memcpy(dst->inputs + to * t->n_in, src->inputs + from * t->n_in,
               n * t->n_in * sizeof *dst->inputs);
        memcpy(dst->targets + to * t->n_out, src->targets + from * t->n_out,
               n * t->n_out * sizeof *dst->targets);
        memcpy(dst->loss_mask + to, src->loss_mask + from, n * sizeof *dst->loss_mask);
        memcpy(dst->eval_mask + to, src->eval_mask + from, n * sizeof *dst->eval_mask);
    }
    memcpy(dst->lengths, src->lengths + lo, n * sizeof *dst->lengths);
}

mom_batch task_loss_view(const task_batch *b)
{
    mom_batch v = {b->n, b->steps, b->inputs, b->targets, b->loss_mask, b->lengths};
    return v;
}

mom_batch task_eval_view(const task_batch *b)
{
    mom_batch v = {b->n, b->steps, b->inputs, b->targets, b->eval_mask, b->lengths};
    return v;
}
