/*
 * Built-in numerical checks of a network's gradient and Gauss-Newton products.
 *
 * Both are written only through the public entry points (which validate the batch once) and the
 * kind-specific operations in net->ops, so they work unchanged for feedforward and recurrent
 * nets. They never modify the network's parameter vector: perturbations are applied to a private
 * copy passed as the `params` argument of the operations.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "fpenv.h"
#include "net_internal.h"

#define CHECK_GRAD_DEFAULT_EPS 1e-2
/* Rounding of a float-computed loss, in units of FLT_EPSILON times the loss, that the gradient
 * check allows for in a difference of two losses (generous: a wrong gradient entry larger than
 * this noise still gives an error of order 1). */
#define FD_NOISE_ULPS 64.0
/* Step of the 4-point stencil for the Jacobian, relative to max(1, |theta_i|): large enough that
 * float rounding of z (about 1e-7 |z|) divided by the step stays near 1e-5, small enough that the
 * O(h^4) truncation error is negligible. */
#define CHECK_GV_STEP 0.0078125 /* 2^-7 */

static float *alloc_floats(mom_net *net, size_t n)
{
    return mom__calloc(&net->base.alloc, n ? n : 1, sizeof(float));
}

int mom_net_check_grad(double *max_rel_err, mom_net *net, const mom_batch *batch, size_t n_probe,
                       double eps)
{
    if (net == NULL)
        return MOM_E_INVALID;
    mom__clear(&net->base);
    if (max_rel_err == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "max_rel_err is NULL");
    if (!(eps >= 0.0) || !isfinite(eps))
        return mom__fail(&net->base, MOM_E_INVALID, "eps must be finite and >= 0");
    if (eps == 0.0)
        eps = CHECK_GRAD_DEFAULT_EPS;
    size_t P = net->n_params;
    float *g = alloc_floats(net, P);
    float *pc = alloc_floats(net, P);
    int rc = MOM_OK, entered = 0;
    mom__fpenv fe;
    if (g == NULL || pc == NULL) {
        rc = mom__fail(&net->base, MOM_E_NOMEM, "cannot allocate the gradient check buffers");
        goto done;
    }
    /* the differenced losses run in the mode the public calls use (the analytic gradient is
     * computed flushed when the network's option says so) */
    mom__fpenv_enter(&fe, net->flush);
    entered = 1;
    double l0;
    rc = mom_net_loss_grad(&l0, g, net, batch, NULL); /* validates the batch and the parameters */
    if (rc != MOM_OK)
        goto done;
    memcpy(pc, net->params, P * sizeof *pc);
    double gmax = 0.0;
    for (size_t i = 0; i < P; i++)
        gmax = fmax(gmax, fabs((double)g[i]));
    double floor = fmax(1e-3 * gmax, DBL_MIN);
    size_t count = (n_probe == 0 || n_probe >= P) ? P : n_probe;
    double worst = 0.0;
    for (size_t k = 0; k < count; k++) {
        size_t i = count == P ? k : (size_t)((double)k * (double)P / (double)count);
        if (i >= P)
            i = P - 1;
        float keep = pc[i];
        double h = eps * fmax(1.0, fabs((double)keep));
        float up = (float)((double)keep + h), down = (float)((double)keep - h);
        double lp, lm;
        pc[i] = up;
        rc = net->ops->loss_grad(net, batch, pc, &lp, NULL);
        pc[i] = down;
        if (rc == MOM_OK)
            rc = net->ops->loss_grad(net, batch, pc, &lm, NULL);
        pc[i] = keep;
        if (rc != MOM_OK)
            goto done;
        double fd = (lp - lm) / ((double)up - (double)down);
        /* what float rounding of the two losses alone can put into fd: a gradient entry at or
         * below it is not measurable by differences, so it is not held to the relative test */
        double noise = FD_NOISE_ULPS * FLT_EPSILON * fmax(fabs(lp), fabs(lm)) /
                       ((double)up - (double)down);
        double err = fabs((double)g[i] - fd) /
                     fmax(fabs((double)g[i]) + fabs(fd), fmax(floor, noise));
        if (!(err <= worst)) /* also catches NaN */
            worst = isnan(err) ? INFINITY : err;
    }
    *max_rel_err = worst;
done:
    if (entered)
        mom__fpenv_leave(&fe);
    mom__free(&net->base.alloc, g);
    mom__free(&net->base.alloc, pc);
    return rc;
}

/* Hessian of the loss with respect to one row z of k pre-activations, times u, times weight w,
 * in double: squared I, logistic diag(y(1-y)), softmax diag(y) - y y^T. */
static void hess_row(int output, const float *y, const double *u, double w, double *out, size_t k)
{
    double yu = 0.0;
    if (output == MOM_OUT_SOFTMAX_XENT)
        for (size_t j = 0; j < k; j++)
            yu += (double)y[j] * u[j];
    for (size_t j = 0; j < k; j++) {
        double yj = y[j];
        switch (output) {
        case MOM_OUT_LOGISTIC_XENT: out[j] = w * yj * (1.0 - yj) * u[j]; break;
        case MOM_OUT_SOFTMAX_XENT: out[j] = w * yj * (u[j] - yu); break;
        default: out[j] = w * u[j]; break;
        }
    }
}

int mom_net_check_gv(double *max_rel_err, mom_net *net, const mom_batch *batch, size_t n_vectors,
                     uint64_t seed)
{
    if (net == NULL)
        return MOM_E_INVALID;
    mom__clear(&net->base);
    /* The products below use the caller's batch; never leave a cache pointing at it, and keep
     * the contract simple: after this call there is no Gauss-Newton state, whatever happened. */
    net->gv_ready = 0;
    if (max_rel_err == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "max_rel_err is NULL");
    if (n_vectors == 0)
        n_vectors = 1;
    int rc = mom__net_check_batch(net, batch, 1, 1); /* the sizes below come from it */
    if (rc != MOM_OK)
        return rc;

    size_t P = net->n_params, k = net->n_out, n = batch->n;
    size_t T = net->kind == MOM_NET_RECURRENT ? batch->steps : 1;
    size_t rows, cells, jsize;
    if (!mom__mul_size(&rows, T, n) || !mom__mul_size(&cells, rows, k) ||
        !mom__mul_size(&jsize, cells, P))
        return mom__fail(&net->base, MOM_E_NOMEM, "the explicit Jacobian does not fit in memory");
    const mom_allocator *a = &net->base.alloc;
    double *J = mom__calloc(a, jsize ? jsize : 1, sizeof *J); /* cells x P, row-major */
    double *u = mom__calloc(a, cells, sizeof *u);
    double *hu = mom__calloc(a, cells, sizeof *hu);
    float *z = alloc_floats(net, cells), *y = alloc_floats(net, cells);
    float *pc = alloc_floats(net, P), *v = alloc_floats(net, P), *gv = alloc_floats(net, P);
    mom_rng *rng = NULL;
    mom__fpenv fe;
    int entered = 0;
    if (J == NULL || u == NULL || hu == NULL || z == NULL || y == NULL || pc == NULL ||
        v == NULL || gv == NULL || mom_rng_create(&rng, seed, 0, a) != MOM_OK) {
        rc = mom__fail(&net->base, MOM_E_NOMEM, "cannot allocate the Gauss-Newton check buffers");
        goto done;
    }
    /* Only now, with the check's own memory in hand, may the network's workspaces grow, both at
     * once (mom_net_reserve() keeps the old ones if either cannot be had): a call that fails for
     * want of memory leaves the network as it was. */
    rc = mom_net_reserve(net, n, T);
    /* the Jacobian's forward passes run in the mode the public calls use */
    mom__fpenv_enter(&fe, net->flush);
    entered = 1;
    double l0;
    if (rc == MOM_OK)
        rc = mom_net_loss(&l0, net, batch, NULL); /* validates the parameters */
    if (rc != MOM_OK)
        goto done;
    memcpy(pc, net->params, P * sizeof *pc);
    size_t out_layer = net->n_layers - 1;
    rc = net->ops->forward(net, batch, pc, out_layer, y);
    if (rc != MOM_OK)
        goto done;

    /* J column i = dz/dtheta_i by the 4-point central stencil
     * (-z(+2h) + 8 z(+h) - 8 z(-h) + z(-2h)) / 12h, h a power of two so theta +- h is exact. */
    static const double mult[4] = {2.0, 1.0, -1.0, -2.0};
    static const double coef[4] = {-1.0, 8.0, -8.0, 1.0};
    for (size_t i = 0; i < P; i++) {
        float keep = pc[i];
        double h = CHECK_GV_STEP;
        while (h < fabs((double)keep) * CHECK_GV_STEP)
            h *= 2.0;
        for (int s = 0; s < 4; s++) {
            pc[i] = (float)((double)keep + mult[s] * h);
            rc = net->ops->forward(net, batch, pc, MOM__LAYER_Z, z);
            if (rc != MOM_OK) {
                pc[i] = keep;
                goto done;
            }
            double c = coef[s] / (12.0 * h);
            for (size_t r = 0; r < cells; r++)
                J[r * P + i] += c * (double)z[r];
        }
        pc[i] = keep;
    }
    mom__fpenv_leave(&fe); /* the reference below is double arithmetic, in the caller's mode */
    entered = 0;

    rc = mom_net_gv_begin(net, batch, NULL);
    if (rc != MOM_OK)
        goto done;
    double worst = 0.0;
    for (size_t vi = 0; vi < n_vectors && rc == MOM_OK; vi++) {
        rc = mom_rng_fill_normal(rng, v, P, 0.0, 1.0);
        if (rc == MOM_OK)
            rc = mom_net_gv(gv, net, v, 0.0);
        if (rc != MOM_OK)
            break;
        /* u = J v; hu = w H u per row; ref = J^T hu / n */
        for (size_t r = 0; r < cells; r++) {
            double s = 0.0;
            const double *jr = J + r * P;
            for (size_t i = 0; i < P; i++)
                s += jr[i] * (double)v[i];
            u[r] = s;
        }
        for (size_t t = 0; t < T; t++)
            for (size_t s = 0; s < n; s++) {
                size_t row = t * n + s;
                double w = net->kind == MOM_NET_RECURRENT ? (double)mom__step_weight(batch, t, s)
                                                          : 1.0;
                hess_row(net->output, y + row * k, u + row * k, w / (double)n, hu + row * k, k);
            }
        double ref_max = 0.0, diff_max = 0.0;
        for (size_t i = 0; i < P; i++) {
            double s = 0.0;
            for (size_t r = 0; r < cells; r++)
                s += J[r * P + i] * hu[r];
            ref_max = fmax(ref_max, fabs(s));
            double d = fabs((double)gv[i] - s);
            diff_max = isnan(d) ? INFINITY : fmax(diff_max, d);
        }
        double err = diff_max / fmax(ref_max, DBL_MIN);
        if (err > worst)
            worst = err;
    }
    if (rc == MOM_OK)
        *max_rel_err = worst;
done:
    if (entered)
        mom__fpenv_leave(&fe);
    net->gv_ready = 0;
    mom_rng_destroy(rng);
    mom__free(a, J);
    mom__free(a, u);
    mom__free(a, hu);
    mom__free(a, z);
    mom__free(a, y);
    mom__free(a, pc);
    mom__free(a, v);
    mom__free(a, gv);
    return rc;
}
