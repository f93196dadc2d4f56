/* ckpt_diff: compare the training states of two checkpoints (mpi suite, tests/check-mpi.sh).
 *
 *   ckpt_diff A.ckpt B.ckpt [TOL]
 *   ckpt_diff --measure A.ckpt B.ckpt     print only the largest of the four measures
 *
 * Prints, for the parameters and for the optimizer's velocity (or HF's warm start), the largest
 * absolute difference divided by the largest magnitude in A, and the relative 2-norm of the
 * difference; exits 0 when both are at most TOL (default 1e-5) for both vectors and the step
 * counts, network kinds and sizes agree, 1 otherwise, 2 on a usage or file error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mominit/mominit.h>

typedef struct state {
    mom_net *net;
    mom_optim *opt;
    mom_rng *rngs[8];
    size_t n_rngs;
} state;

static int load(state *s, const char *path)
{
    mom_ckpt *ck = NULL;
    int rc = mom_ckpt_create(&ck, NULL);
    if (rc == MOM_OK)
        rc = mom_ckpt_load_file(ck, path);
    if (rc == MOM_OK) {
        s->n_rngs = mom_ckpt_num_rngs(ck);
        if (s->n_rngs > 8)
            rc = MOM_E_UNSUPPORTED;
    }
    if (rc == MOM_OK)
        rc = mom_ckpt_restore_new(&s->net, &s->opt, s->n_rngs ? s->rngs : NULL, s->n_rngs, ck);
    if (rc != MOM_OK)
        fprintf(stderr, "ckpt_diff: %s: %s%s%s\n", path, mom_strerror(rc), ck ? ": " : "",
                ck ? mom_ckpt_errmsg(ck) : "");
    mom_ckpt_destroy(ck);
    return rc;
}

static void release(state *s)
{
    mom_net_destroy(s->net);
    mom_optim_destroy(s->opt);
    for (size_t i = 0; i < s->n_rngs; i++)
        mom_rng_destroy(s->rngs[i]);
}

/* Prints the two measures and returns the larger. */
static int quiet;

static double compare(const char *what, const float *a, const float *b, size_t n)
{
    double dmax = 0.0, amax = 0.0, d2 = 0.0, a2 = 0.0;
    for (size_t k = 0; k < n; k++) {
        double d = fabs((double)a[k] - (double)b[k]);
        dmax = d > dmax ? d : dmax;
        amax = fabs((double)a[k]) > amax ? fabs((double)a[k]) : amax;
        d2 += d * d;
        a2 += (double)a[k] * (double)a[k];
    }
    double r_inf = amax > 0 ? dmax / amax : dmax, r_2 = a2 > 0 ? sqrt(d2 / a2) : sqrt(d2);
    if (!quiet)
        printf("%-10s n=%zu  max|a-b|/max|a| = %.3e  |a-b|/|a| = %.3e\n", what, n, r_inf, r_2);
    return r_inf > r_2 ? r_inf : r_2;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--measure") == 0) {
        quiet = 1;
        argv++;
        argc--;
    }
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: ckpt_diff A.ckpt B.ckpt [TOL] | ckpt_diff --measure A.ckpt B.ckpt\n");
        return 2;
    }
    double tol = argc == 4 ? strtod(argv[3], NULL) : 1e-5;
    state a = {0}, b = {0};
    if (load(&a, argv[1]) != MOM_OK || load(&b, argv[2]) != MOM_OK)
        return 2;
    int ok = 1;
    size_t n = mom_net_num_params(a.net);
    if (mom_net_kind_of(a.net) != mom_net_kind_of(b.net) || n != mom_net_num_params(b.net)) {
        printf("different networks (kinds %d and %d, %zu and %zu parameters)\n",
               mom_net_kind_of(a.net), mom_net_kind_of(b.net), n, mom_net_num_params(b.net));
        ok = 0;
    } else if (mom_optim_steps(a.opt) != mom_optim_steps(b.opt)) {
        printf("different step counts (%llu and %llu)\n",
               (unsigned long long)mom_optim_steps(a.opt),
               (unsigned long long)mom_optim_steps(b.opt));
        ok = 0;
    } else {
        double e = compare("params", mom_net_params(a.net), mom_net_params(b.net), n);
        double v = compare("velocity", mom_optim_velocity(a.opt), mom_optim_velocity(b.opt), n);
        ok = e <= tol && v <= tol;
        if (quiet)
            printf("%.3e\n", e > v ? e : v);
        else
            printf("%s (tolerance %g, %llu steps)\n", ok ? "equal" : "DIFFERENT", tol,
               (unsigned long long)mom_optim_steps(a.opt));
    }
    release(&a);
    release(&b);
    return ok ? 0 : 1;
}
