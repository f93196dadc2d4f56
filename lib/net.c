/* Public entry points of mom_net: argument validation, then dispatch to the kind (ffnet.c,
 * rnn.c). Validation lives here once so both kinds reject bad input the same way. */
#include <math.h>
#include <string.h>

#include "fpenv.h"
#include "net_internal.h"

static const char null_net_msg[] = "network handle is NULL";

int mom__net_new(mom_net **out, const mom_allocator *a, int kind, int output, size_t n_params,
                 size_t n_blocks, size_t n_layers)
{
    *out = NULL;
    mom_net *net = mom__calloc(a, 1, sizeof *net);
    if (net == NULL)
        return MOM_E_NOMEM;
    net->base.alloc = *a;
    net->kind = kind;
    net->output = output;
    net->n_params = n_params;
    net->n_blocks = n_blocks;
    net->n_layers = n_layers;
    net->flush = 1;
    net->flush_below = MOM__FLUSH_BELOW;
    mom__team_init(&net->team, a, 0);
    net->params = mom__vectors_alloc(a, n_params, 1, &net->params_mem);
    net->blocks = mom__calloc(a, n_blocks, sizeof *net->blocks);
    net->layer_size = mom__calloc(a, n_layers, sizeof *net->layer_size);
    net->layer_act = mom__calloc(a, n_layers, sizeof *net->layer_act);
    if (!net->params || !net->blocks || !net->layer_size || !net->layer_act) {
        mom_net_destroy(net);
        return MOM_E_NOMEM;
    }
    *out = net;
    return MOM_OK;
}

void mom_net_destroy(mom_net *net)
{
    if (net == NULL)
        return;
    mom_allocator a = net->base.alloc;
    mom__team_stop(&net->team);
    if (net->ops && net->ops->destroy_impl)
        net->ops->destroy_impl(net);
    mom__free(&a, net->params_mem);
    mom__free(&a, net->blocks);
    mom__free(&a, net->layer_size);
    mom__free(&a, net->layer_act);
    mom__free(&a, net);
}

const char *mom_net_errmsg(const mom_net *net) { return net ? net->base.errmsg : null_net_msg; }
int mom_net_kind_of(const mom_net *net) { return net ? net->kind : 0; }
size_t mom_net_num_params(const mom_net *net) { return net ? net->n_params : 0; }
size_t mom_net_num_inputs(const mom_net *net) { return net ? net->n_in : 0; }
size_t mom_net_num_outputs(const mom_net *net) { return net ? net->n_out : 0; }
int mom_net_output(const mom_net *net) { return net ? net->output : -1; }
size_t mom_net_num_layers(const mom_net *net) { return net ? net->n_layers : 0; }
float *mom_net_params(mom_net *net) { return net ? net->params : NULL; }
size_t mom_net_num_blocks(const mom_net *net) { return net ? net->n_blocks : 0; }

size_t mom_net_layer_size(const mom_net *net, size_t layer)
{
    return (net && layer < net->n_layers) ? net->layer_size[layer] : 0;
}

int mom_net_layer_act(const mom_net *net, size_t layer)
{
    return (net && layer < net->n_layers) ? net->layer_act[layer] : -1;
}

int mom_net_block(const mom_net *net, size_t index, int *kind, size_t *layer, size_t *rows,
                  size_t *cols, size_t *offset)
{
    if (net == NULL)
        return MOM_E_INVALID;
    /* a query: the detail message is written only on failure (docs/conventions.md) */
    if (index >= net->n_blocks)
        return mom__fail((mom__base *)&net->base, MOM_E_INVALID,
                         "block index %zu out of range (network has %zu blocks)", index,
                         net->n_blocks);
    const mom__block *b = &net->blocks[index];
    if (kind) *kind = b->kind;
    if (layer) *layer = b->layer;
    if (rows) *rows = b->rows;
    if (cols) *cols = b->cols;
    if (offset) *offset = b->offset;
    return MOM_OK;
}

int mom_net_find_block(size_t *index, const mom_net *net, int kind, size_t layer)
{
    if (net == NULL)
        return MOM_E_INVALID;
    if (index == NULL)
        return mom__fail((mom__base *)&net->base, MOM_E_INVALID, "index output pointer is NULL");
    for (size_t i = 0; i < net->n_blocks; i++) {
        if (net->blocks[i].kind == kind && net->blocks[i].layer == layer) {
            *index = i;
            return MOM_OK;
        }
    }
    return mom__fail((mom__base *)&net->base, MOM_E_INVALID, "no block of kind %d in layer %zu",
                     kind, layer);
}

int mom_net_set(mom_net *net, int option, double value)
{
    if (net == NULL)
        return MOM_E_INVALID;
    mom__clear(&net->base);
    switch (option) {
    case MOM_NET_CHECK_FINITE:
        if (!isfinite(value))
            return mom__fail(&net->base, MOM_E_INVALID, "option value must be finite");
        net->check_finite = value != 0.0;
        return MOM_OK;
    case MOM_NET_FLUSH_SUBNORMALS:
        if (!isfinite(value))
            return mom__fail(&net->base, MOM_E_INVALID, "option value must be finite");
        net->flush = value != 0.0;
        net->flush_below = net->flush ? MOM__FLUSH_BELOW : 0.0f;
        return MOM_OK;
    case MOM_NET_THREADS:
        if (!(value >= 0.0 && value <= 1024.0) || value != floor(value))
            return mom__fail(&net->base, MOM_E_INVALID,
                             "MOM_NET_THREADS must be a whole number from 0 to 1024 (got %g)",
                             value);
        /* stop the helpers; the next pass that can use them starts the new number */
        mom__team_stop(&net->team);
        mom__team_init(&net->team, &net->base.alloc, (int)value);
        return MOM_OK;
    default:
        return mom__fail(&net->base, MOM_E_INVALID, "unknown network option %d", option);
    }
}

int mom_net_get(double *value, const mom_net *net, int option)
{
    if (net == NULL)
        return MOM_E_INVALID;
    if (value == NULL)
        return mom__fail((mom__base *)&net->base, MOM_E_INVALID, "value output pointer is NULL");
    switch (option) {
    case MOM_NET_CHECK_FINITE:
        *value = net->check_finite;
        return MOM_OK;
    case MOM_NET_FLUSH_SUBNORMALS:
        *value = net->flush;
        return MOM_OK;
    case MOM_NET_THREADS:
        *value = net->team.threads;
        return MOM_OK;
    default:
        return mom__fail((mom__base *)&net->base, MOM_E_INVALID, "unknown network option %d",
                         option);
    }
}

int mom_net_reserve(mom_net *net, size_t n, size_t steps)
{
    if (net == NULL)
        return MOM_E_INVALID;
    mom__clear(&net->base);
    if (n == 0)
        return mom__fail(&net->base, MOM_E_INVALID, "n must be at least 1");
    if (net->kind == MOM_NET_RECURRENT && steps == 0)
        return mom__fail(&net->base, MOM_E_INVALID, "steps must be at least 1 for a recurrent net");
    int rc = net->ops->reserve(net, n, net->kind == MOM_NET_RECURRENT ? steps : 1);
    if (rc == MOM_OK)
        mom__team_prepare(&net->team); /* the helpers' state is the last thing a call allocates */
    return rc;
}

size_t mom_net_workspace_bytes(const mom_net *net)
{
    return net ? net->ops->workspace_bytes(net) : 0;
}

size_t mom__seq_len(const mom_batch *b, size_t s)
{
    return b->lengths ? b->lengths[s] : (b->steps ? b->steps : 1);
}

float mom__step_weight(const mom_batch *b, size_t t, size_t s)
{
    size_t len = mom__seq_len(b, s);
    if (t >= len)
        return 0.0f;
    if (b->mask)
        return b->mask[t * b->n + s];
    return t + 1 == len ? 1.0f : 0.0f;
}

int mom__net_check_batch(mom_net *net, const mom_batch *b, int need_inputs, int need_targets)
{
    if (b == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "batch is NULL");
    if (b->n == 0)
        return mom__fail(&net->base, MOM_E_INVALID, "batch.n is 0 (empty batch)");
    if (need_inputs && b->inputs == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "batch.inputs is NULL");
    if (need_targets && b->targets == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "batch.targets is NULL");
    size_t steps = 1;
    if (net->kind == MOM_NET_FEEDFORWARD) {
        if (b->steps > 1)
            return mom__fail(&net->base, MOM_E_SHAPE,
                             "batch.steps is %zu but a feedforward net takes 0 or 1", b->steps);
        if (b->mask != NULL || b->lengths != NULL)
            return mom__fail(&net->base, MOM_E_INVALID,
                             "batch.mask and batch.lengths must be NULL for a feedforward net");
    } else {
        if (b->steps == 0)
            return mom__fail(&net->base, MOM_E_INVALID, "batch.steps is 0");
        steps = b->steps;
        if (b->lengths) {
            for (size_t s = 0; s < b->n; s++)
                if (b->lengths[s] == 0 || b->lengths[s] > steps)
                    return mom__fail(&net->base, MOM_E_INVALID,
                                     "batch.lengths[%zu] = %zu is outside 1..%zu", s,
                                     b->lengths[s], steps);
        }
    }
    /* the sizes before anything is read by them */
    size_t cells, n_inputs, n_targets;
    if (!mom__mul_size(&cells, b->n, steps) || !mom__mul_size(&n_inputs, cells, net->n_in) ||
        !mom__mul_size(&n_targets, cells, net->n_out))
        return mom__fail(&net->base, MOM_E_INVALID, "batch size overflows");
    if (b->mask) { /* recurrent nets only (checked above) */
        for (size_t i = 0; i < cells; i++)
            if (!(b->mask[i] >= 0.0f) || !isfinite(b->mask[i]))
                return mom__fail(&net->base, MOM_E_INVALID,
                                 "batch.mask[%zu] is negative or not finite", i);
    }
    if (net->check_finite) {
        size_t i = b->inputs ? mom__first_nonfinite(b->inputs, n_inputs) : n_inputs;
        if (i < n_inputs)
            return mom__fail(&net->base, MOM_E_INVALID, "batch.inputs[%zu] is not finite", i);
        if (b->targets) {
            i = mom__first_nonfinite(b->targets, n_targets);
            if (i < n_targets)
                return mom__fail(&net->base, MOM_E_INVALID, "batch.targets[%zu] is not finite", i);
        }
    }
    return MOM_OK;
}

static int check_params(mom_net *net, const float **p)
{
    if (*p == NULL)
        *p = net->params;
    if (net->check_finite) {
        size_t i = mom__first_nonfinite(*p, net->n_params);
        if (i < net->n_params)
            return mom__fail(&net->base, MOM_E_INVALID, "params[%zu] is not finite", i);
    }
    return MOM_OK;
}

#define ENTER(net)                                                                             \
    do {                                                                                       \
        if ((net) == NULL)                                                                     \
            return MOM_E_INVALID;                                                              \
        mom__clear(&(net)->base);                                                              \
    } while (0)

int mom_net_loss(double *loss, mom_net *net, const mom_batch *batch, const float *params)
{
    ENTER(net);
    if (loss == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "loss output pointer is NULL");
    int rc = mom__net_check_batch(net, batch, 1, 1);
    if (rc == MOM_OK)
        rc = check_params(net, &params);
    if (rc != MOM_OK)
        return rc;
    double l;
    mom__fpenv fe;
    mom__fpenv_enter(&fe, net->flush);
    rc = net->ops->loss_grad(net, batch, params, &l, NULL);
    mom__fpenv_leave(&fe);
    if (rc == MOM_OK)
        *loss = l;
    return rc;
}

/* The loss and gradient entries: max_g (may be NULL) for mom__net_loss_grad_max(), fz (may be
 * NULL) for mom__net_loss_grad_nag(). */
static int loss_grad_common(double *loss, float *grad, uint32_t *max_g, const mom__nag_fuse *fz,
                            mom_net *net, const mom_batch *batch, const float *params)
{
    ENTER(net);
    if (fz != NULL && !mom__net_can_fuse_nag(net))
        return mom__fail(&net->base, MOM_E_UNSUPPORTED, "no fused NAG step for this network");
    if (loss == NULL || grad == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "%s output pointer is NULL",
                         loss == NULL ? "loss" : "grad");
    int rc = mom__net_check_batch(net, batch, 1, 1);
    if (rc == MOM_OK)
        rc = check_params(net, &params);
    if (rc != MOM_OK)
        return rc;
    if (grad == params)
        return mom__fail(&net->base, MOM_E_INVALID, "grad must not alias params");
    double l;
    mom__fpenv fe;
    mom__fpenv_enter(&fe, net->flush);
    net->grad_max_bits = 0xffffffffu;
    net->want_grad_max = max_g != NULL;
    net->nag_fuse = fz;
    rc = net->ops->loss_grad(net, batch, params, &l, grad);
    net->want_grad_max = 0;
    net->nag_fuse = NULL;
    mom__fpenv_leave(&fe);
    if (max_g != NULL)
        *max_g = net->grad_max_bits;
    if (rc == MOM_OK)
        *loss = l;
    return rc;
}

int mom_net_loss_grad(double *loss, float *grad, mom_net *net, const mom_batch *batch,
                      const float *params)
{
    return loss_grad_common(loss, grad, NULL, NULL, net, batch, params);
}

int mom__net_can_fuse_nag(const mom_net *net)
{
    return net->kind == MOM_NET_FEEDFORWARD && !net->check_finite;
}

int mom__net_loss_grad_nag(double *loss, float *grad, mom_net *net, const mom_batch *batch,
                           float *point, const mom__nag_fuse *fz)
{
    return loss_grad_common(loss, grad, NULL, fz, net, batch, point);
}

int mom__net_loss_grad_max(double *loss, float *grad, uint32_t *max_g, mom_net *net,
                           const mom_batch *batch, const float *params)
{
    *max_g = 0xffffffffu;
    return loss_grad_common(loss, grad, max_g, NULL, net, batch, params);
}

int mom_net_fisher_diag(float *out, mom_net *net, const mom_batch *batch, const float *params)
{
    ENTER(net);
    if (out == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "out is NULL");
    int rc = mom__net_check_batch(net, batch, 1, 1);
    if (rc == MOM_OK)
        rc = check_params(net, &params);
    if (rc != MOM_OK)
        return rc;
    if (out == params)
        return mom__fail(&net->base, MOM_E_INVALID, "out must not alias params");
    mom__fpenv fe;
    mom__fpenv_enter(&fe, net->flush);
    rc = net->ops->fisher(net, batch, params, out);
    mom__fpenv_leave(&fe);
    return rc;
}

int mom_net_gv_begin(mom_net *net, const mom_batch *batch, const float *params)
{
    ENTER(net);
    net->gv_ready = 0;
    int rc = mom__net_check_batch(net, batch, 1, 1);
    if (rc == MOM_OK)
        rc = check_params(net, &params);
    if (rc != MOM_OK)
        return rc;
    mom__fpenv fe;
    mom__fpenv_enter(&fe, net->flush);
    rc = net->ops->gv_begin(net, batch, params);
    mom__fpenv_leave(&fe);
    net->gv_ready = rc == MOM_OK;
    return rc;
}

static int gv_common(float *out, mom_net *net, const float *v, double struct_damping,
                     const mom__gv_acc *acc)
{
    ENTER(net);
    if (out == NULL || v == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "%s is NULL", out == NULL ? "out" : "v");
    if (out == v)
        return mom__fail(&net->base, MOM_E_INVALID, "out must not alias v");
    if (!(struct_damping >= 0.0) || !isfinite(struct_damping))
        return mom__fail(&net->base, MOM_E_INVALID, "struct_damping must be finite and >= 0");
    if (struct_damping != 0.0 && net->kind != MOM_NET_RECURRENT)
        return mom__fail(&net->base, MOM_E_UNSUPPORTED,
                         "structural damping applies to recurrent nets only");
    if (!net->gv_ready)
        return mom__fail(&net->base, MOM_E_STATE, "mom_net_gv_begin() must succeed first");
    mom__fpenv fe;
    mom__fpenv_enter(&fe, net->flush);
    int rc = net->ops->gv(net, v, struct_damping, out, acc);
    mom__fpenv_leave(&fe);
    return rc;
}

int mom_net_gv(float *out, mom_net *net, const float *v, double struct_damping)
{
    return gv_common(out, net, v, struct_damping, NULL);
}

int mom__net_gv_acc(float *out, mom_net *net, const float *v, const mom__gv_acc *acc)
{
    ENTER(net);
    /* without a scale the product would overwrite out instead of adding to it */
    if (acc == NULL || acc->scale == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "%s is NULL",
                         acc == NULL ? "acc" : "acc->scale");
    if (net->kind != MOM_NET_FEEDFORWARD)
        return mom__fail(&net->base, MOM_E_UNSUPPORTED,
                         "accumulating products are for feedforward nets only");
    return gv_common(out, net, v, 0.0, acc);
}

int mom_net_forward(float *out, mom_net *net, const mom_batch *batch, const float *params,
                    size_t layer)
{
    ENTER(net);
    if (out == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "out is NULL");
    if (layer >= net->n_layers)
        return mom__fail(&net->base, MOM_E_INVALID, "layer %zu out of range (%zu layers)", layer,
                         net->n_layers);
    int rc = mom__net_check_batch(net, batch, 1, 0);
    if (rc == MOM_OK)
        rc = check_params(net, &params);
    if (rc != MOM_OK)
        return rc;
    mom__fpenv fe;
    mom__fpenv_enter(&fe, net->flush);
    rc = net->ops->forward(net, batch, params, layer, out);
    mom__fpenv_leave(&fe);
    return rc;
}

int mom_net_metric(double *value, mom_net *net, const mom_batch *batch, const float *params,
                   int metric, double param)
{
    ENTER(net);
    if (value == NULL)
        return mom__fail(&net->base, MOM_E_INVALID, "value is NULL");
    switch (metric) {
    case MOM_METRIC_LOSS:
    case MOM_METRIC_SQUARED_ERROR:
    case MOM_METRIC_THRESHOLD_ERROR:
        break;
    case MOM_METRIC_CLASS_ERROR:
    case MOM_METRIC_WRONG_SYMBOLS:
        if (net->n_out < 2)
            return mom__fail(&net->base, MOM_E_INVALID,
                             "class metrics need at least 2 outputs (network has %zu)", net->n_out);
        break;
    default:
        return mom__fail(&net->base, MOM_E_INVALID, "unknown metric %d", metric);
    }
    if (metric == MOM_METRIC_THRESHOLD_ERROR && !isfinite(param))
        return mom__fail(&net->base, MOM_E_INVALID, "threshold %g is not finite", param);
    int rc = mom__net_check_batch(net, batch, 1, 1);
    if (rc == MOM_OK)
        rc = check_params(net, &params);
    if (rc != MOM_OK)
        return rc;
    mom__fpenv fe;
    mom__fpenv_enter(&fe, net->flush);
    rc = net->ops->metric(net, batch, params, metric, param, value);
    mom__fpenv_leave(&fe);
    return rc;
}
