#!/bin/sh
# Train the addition task (paper.md section 6) at T = 30 with HF and structural damping, using the
# library directly, until the zero-one error (|output - target| > 0.04 at the last step) on 10,000
# fresh test sequences is below 1%, or until the iteration budget runs out.
#
# Usage: scripts/hf_addition.sh [BUILD_DIR] [T] [SEED] [MAX_ITERS]
#   BUILD_DIR  a configured and built meson build directory (default: build)
#   T          minimum sequence length (default 30; lengths are uniform in [T, 1.1 T))
#   SEED       seed of the data and the initialization (default 1)
#   MAX_ITERS  HF iterations at most (default 600)
# Prints one line per evaluation and a final summary; exits 0 when the error went below 1%.
#
# Setup (docs/hf.md, "RNNs"): 2-100-1 tanh RNN, linear output, squared error at the last step,
# the paper's initialization (mom_init_preset_rnn: echo-state W_hh with spectral radius 1.1,
# inputs N(0,1)*0.001, outputs N(0,1)*0.1, output bias = mean target). Each HF iteration draws a
# fresh gradient batch of 1000 sequences and uses its first 250 as the curvature batch; HF's
# defaults otherwise: lambda from 1 with the Levenberg-Marquardt rule, structural damping
# mu_s = 0.03 (coefficient mu_s * lambda), no preconditioner (auto for RNNs), Martens' CG stopping
# rule with at most 250 iterations, CG-backtracking, Armijo line search.
set -eu
build=${1:-build}
T=${2:-30}
seed=${3:-1}
iters=${4:-600}
root=$(cd "$(dirname "$0")/.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
lib=$build/lib/libmominit.a
if [ ! -f "$lib" ]; then
    echo "hf_addition.sh: $lib not found: build first (meson setup $build && ninja -C $build)" >&2
    exit 2
fi
libs=$(pkg-config --libs lapack blas 2>/dev/null || echo "-llapack -lblas")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/hf_addition.c" <<'EOF'
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mominit/mominit.h"

typedef struct task {
    size_t n, T; /* sequences, padded length */
    float *x, *y;
    size_t *len;
    mom_batch b;
} task;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int task_alloc(task *k, size_t n, size_t T)
{
    size_t Tmax = T + (T + 9) / 10; /* lengths in [T, 1.1 T) */
    k->n = n;
    k->T = Tmax;
    k->x = calloc(n * Tmax * 2, sizeof *k->x);
    k->y = calloc(n * Tmax, sizeof *k->y);
    k->len = calloc(n, sizeof *k->len);
    if (!k->x || !k->y || !k->len)
        return -1;
    k->b = (mom_batch){n, Tmax, k->x, k->y, NULL, k->len};
    return 0;
}

/* paper.md section 6: T' uniform integer in [T, 1.1 T); values U[0,1) in channel 0; markers at a
 * uniform step in [0, 0.1 T') and one in [0.1 T', 0.5 T'); target the mean of the two marked
 * values at the last step (mask NULL = the last step of each sequence counts). */
static void task_fill(task *k, size_t T, mom_rng *r)
{
    const size_t n = k->n, Tm = k->T;
    size_t span = (T + 9) / 10 > 1 ? (T + 9) / 10 : 1;
    for (size_t s = 0; s < n; s++) {
        size_t L = T + (size_t)mom_rng_below(r, span);
        if (L > Tm)
            L = Tm;
        k->len[s] = L;
        size_t a_hi = L / 10 > 0 ? L / 10 : 1, b_lo = a_hi, b_hi = L / 2 > b_lo ? L / 2 : b_lo + 1;
        size_t a = (size_t)mom_rng_below(r, a_hi);
        size_t b = b_lo + (size_t)mom_rng_below(r, b_hi - b_lo);
        double va = 0, vb = 0;
        for (size_t t = 0; t < Tm; t++) {
            float u = t < L ? mom_rng_uniformf(r) : 0.0f;
            k->x[(t * n + s) * 2] = u;
            k->x[(t * n + s) * 2 + 1] = (t == a || t == b) ? 1.0f : 0.0f;
            k->y[t * n + s] = 0.0f;
            if (t == a)
                va = u;
            if (t == b)
                vb = u;
        }
        k->y[(L - 1) * n + s] = (float)(0.5 * (va + vb));
    }
}

#define CHECK(e)                                                                               \
    do {                                                                                       \
        int rc_ = (e);                                                                         \
        if (rc_ != MOM_OK) {                                                                   \
            fprintf(stderr, "%s failed: %s\n", #e, mom_strerror(rc_));                         \
            return 2;                                                                          \
        }                                                                                      \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: hf_addition T SEED MAX_ITERS\n");
        return 2;
    }
    size_t T = (size_t)atoi(argv[1]);
    uint64_t seed = (uint64_t)atoll(argv[2]);
    int max_iters = atoi(argv[3]);
    const size_t n_grad = 1000, n_curv = 250, n_test = 10000;
    task tr, te;
    if (task_alloc(&tr, n_grad, T) || task_alloc(&te, n_test, T)) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }
    mom_rng *data_rng, *test_rng;
    CHECK(mom_rng_create(&data_rng, seed, 1, NULL));
    CHECK(mom_rng_create(&test_rng, seed, 2, NULL));
    task_fill(&te, T, test_rng);
    task_fill(&tr, T, data_rng);

    mom_net *net;
    CHECK(mom_net_create_rnn(&net, 2, 100, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED, 0, NULL));
    CHECK(mom_init_preset_rnn(net, 0.001, seed, &tr.b));
    mom_optim *opt;
    CHECK(mom_optim_create(&opt, MOM_OPTIM_HF, mom_net_num_params(net), NULL));

    mom_batch curv = tr.b;
    curv.n = n_curv; /* the first n_curv sequences: time-major rows are strided, so copy them */
    float *cx = calloc(n_curv * tr.T * 2, sizeof *cx), *cy = calloc(n_curv * tr.T, sizeof *cy);
    if (!cx || !cy)
        return 2;
    curv.inputs = cx;
    curv.targets = cy;
    curv.lengths = tr.len; /* the first n_curv lengths */

    double err = 1.0, t0 = now_s();
    int it;
    printf("# addition T=%zu seed %llu: HF, gradient batch %zu, curvature batch %zu, test %zu\n",
           T, (unsigned long long)seed, n_grad, n_curv, n_test);
    printf("# iter  seconds  train_loss  lambda  cg_iters  rho  alpha  test_loss  test_error\n");
    long cg_total = 0;
    for (it = 1; it <= max_iters; it++) {
        task_fill(&tr, T, data_rng);
        for (size_t t = 0; t < tr.T; t++)
            for (size_t s = 0; s < n_curv; s++) {
                cx[(t * n_curv + s) * 2] = tr.x[(t * n_grad + s) * 2];
                cx[(t * n_curv + s) * 2 + 1] = tr.x[(t * n_grad + s) * 2 + 1];
                cy[t * n_curv + s] = tr.y[t * n_grad + s];
            }
        double loss = 0;
        int rc = mom_optim_step_hf(&loss, opt, net, &tr.b, &curv);
        if (rc == MOM_E_DIVERGED) {
            printf("# iter %d diverged (state unchanged): %s\n", it, mom_optim_errmsg(opt));
            continue;
        }
        CHECK(rc);
        double lam = 0, cg = 0, rho = 0, alpha = 0;
        CHECK(mom_optim_get(&lam, opt, MOM_OPTIM_HF_LAMBDA));
        CHECK(mom_optim_get(&cg, opt, MOM_OPTIM_HF_LAST_CG_ITERS));
        CHECK(mom_optim_get(&rho, opt, MOM_OPTIM_HF_LAST_RHO));
        CHECK(mom_optim_get(&alpha, opt, MOM_OPTIM_HF_LAST_ALPHA));
        cg_total += (long)cg;
        if (it % 10 == 0 || it == 1) {
            double tl = 0;
            CHECK(mom_net_metric(&err, net, &te.b, NULL, MOM_METRIC_THRESHOLD_ERROR, 0.04));
            CHECK(mom_net_loss(&tl, net, &te.b, NULL));
            printf("%6d %8.1f %11.6f %8.3g %5g %7.3f %6.3f %11.6f %10.5f\n", it, now_s() - t0,
                   loss, lam, cg, rho, alpha, tl, err);
            fflush(stdout);
            if (err < 0.01)
                break;
        }
    }
    printf("# result: T=%zu seed %llu: test error %.5f after %d HF iterations (%ld CG iterations), "
           "%.1f s\n", T, (unsigned long long)seed, err, it > max_iters ? max_iters : it, cg_total,
           now_s() - t0);
    mom_optim_destroy(opt);
    mom_net_destroy(net);
    mom_rng_destroy(data_rng);
    mom_rng_destroy(test_rng);
    return err < 0.01 ? 0 : 1;
}
EOF
${CC:-cc} -std=c11 -O2 -Wall -Wextra -I"$root/include" -I"$build/include" \
    "$tmp/hf_addition.c" "$lib" $libs -lm -lpthread -o "$tmp/hf_addition"
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} "$tmp/hf_addition" "$T" "$seed" "$iters"
