/* passes.c - graph passes: shape inference, constant folding, BatchNorm
 * folding, activation fusion, dead-node removal. */
#include "sqzc/passes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Run a node's reference kernel: prepare (shapes) and, when `execute`, run it
 * on its constant inputs, storing the outputs as constants. */
static int ref_node(sqzc_graph *g, int ni, int execute, char *err, size_t err_len) {
    sqzc_node *n = &g->nodes[ni];
    const sqz_op_impl *impl = sqz_ref_op(n->op);
    if (!impl) {
        snprintf(err, err_len, "node '%s': unknown op id %d", n->name, n->op);
        return -1;
    }
    sqz_node view;
    sqzc_node_view(g, ni, &view);
    uint32_t nin = n->n_in, nout = n->n_out;
    sqz_shape *ins = calloc(nin + 1, sizeof *ins), *outs = calloc(nout + 1, sizeof *outs);
    const float **ind = calloc(nin + 1, sizeof *ind);
    float **outd = calloc(nout + 1, sizeof *outd);
    char kerr[256] = "";
    int rc = -1;
    sqz_op_ctx c = {0};
    void *scratch = NULL;
    if (!ins || !outs || !ind || !outd) {
        snprintf(err, err_len, "out of memory");
        goto done;
    }
    for (uint32_t k = 0; k < nin; k++) {
        int t = n->in[k];
        if (t < 0) {
            ins[k].ndim = -1;
            continue;
        }
        if (!g->tensors[t].has_shape) {
            snprintf(err, err_len, "node '%s' (%s): input '%s' has no known shape", n->name,
                     sqz_op_name(n->op), g->tensors[t].name);
            goto done;
        }
        ins[k] = g->tensors[t].shape;
        ind[k] = g->tensors[t].f32;
    }
    c.node = &view;
    c.n_in = nin;
    c.n_out = nout;
    c.in_shape = ins;
    c.in_data = ind;
    c.out_shape = outs;
    c.out_data = outd;
    c.num_threads = 1;
    c.err = kerr;
    c.err_len = sizeof kerr;
    if (impl->prepare(&c) != 0) {
        snprintf(err, err_len, "node '%s' (%s): %s", n->name, sqz_op_name(n->op),
                 kerr[0] ? kerr : "rejected");
        goto done;
    }
    for (uint32_t k = 0; k < nout; k++) {
        sqzc_tensor *t = &g->tensors[n->out[k]];
        t->shape = outs[k];
        t->has_shape = 1;
    }
    if (execute) {
        for (uint32_t k = 0; k < nout; k++) {
            int64_t ne = sqz_shape_numel(&outs[k]);
            outd[k] = malloc((size_t)(ne > 0 ? ne : 1) * sizeof(float));
            if (!outd[k]) {
                snprintf(err, err_len, "out of memory folding '%s'", n->name);
                goto done;
            }
        }
        if (c.scratch_bytes) {
            scratch = aligned_alloc(64, (c.scratch_bytes + 63) / 64 * 64);
            if (!scratch) {
                snprintf(err, err_len, "out of memory folding '%s'", n->name);
                goto done;
            }
            c.scratch = scratch;
        }
        impl->run(&c);
        for (uint32_t k = 0; k < nout; k++)
            if (sqzc_tensor_set_f32(g, n->out[k], &outs[k], outd[k]) != 0) {
                snprintf(err, err_len, "out of memory folding '%s'", n->name);
                goto done;
            }
    }
    rc = 0;
done:
    if (c.params && impl && impl->release) impl->release(c.params);
    free(scratch);
    if (outd)
        for (uint32_t k = 0; k < nout; k++) free(outd[k]);
    free(ins);
    free(outs);
    free(ind);
    free(outd);
    return rc;
}

int sqzc_infer_shapes(sqzc_graph *g, char *err, size_t err_len) {
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == SQZ_OP_INVALID) continue;
        if (ref_node(g, i, 0, err, err_len) != 0) return -1;
    }
    return 0;
}

static int is_graph_output(const sqzc_graph *g, int t) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == t) return 1;
    return 0;
}

int sqzc_fold_constants(sqzc_graph *g, char *err, size_t err_len) {
    for (int i = 0; i < g->n_nodes; i++) {
        sqzc_node *n = &g->nodes[i];
        if (n->op == SQZ_OP_INVALID) continue;
        int all_const = 1;
        for (uint32_t k = 0; k < n->n_in && all_const; k++)
            all_const = n->in[k] < 0 || g->tensors[n->in[k]].f32 != NULL;
        /* keep nodes producing graph outputs: the runtime needs a producer */
        for (uint32_t k = 0; k < n->n_out && all_const; k++)
            all_const = !is_graph_output(g, n->out[k]);
        if (!all_const) continue;
        if (ref_node(g, i, 1, err, err_len) != 0) return -1;
        g->nodes[i].op = SQZ_OP_INVALID;
    }
    return 0;
}

static int const_f32(const sqzc_graph *g, int t) {
    return t >= 0 && g->tensors[t].f32 != NULL;
}

/* New constant tensor named base+suffix holding data; returns id or -1. */
static int new_const(sqzc_graph *g, const char *base, const char *suffix, const sqz_shape *shape,
                     const float *data) {
    char name[512];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    int t = sqzc_tensor_add_unique(g, name);
    if (t < 0 || sqzc_tensor_set_f32(g, t, shape, data) != 0) return -1;
    return t;
}

static int oom(char *err, size_t err_len) {
    snprintf(err, err_len, "out of memory");
    return -1;
}

/* Fold BN (node bi) into the producer p of its input. Returns 1 folded, 0 not
 * applicable, -1 error. */
static int fold_bn_into(sqzc_graph *g, int bi, int p, char *err, size_t err_len) {
    sqzc_node *bn = &g->nodes[bi], *pn = &g->nodes[p];
    if (bn->n_in < 5 || bn->n_out != 1) return 0;
    for (int k = 1; k < 5; k++)
        if (!const_f32(g, bn->in[k])) return 0;
    if (pn->n_in < 2 || !const_f32(g, pn->in[1])) return 0;
    if (pn->n_in >= 3 && pn->in[2] >= 0 && !const_f32(g, pn->in[2])) return 0;
    sqz_node pv;
    sqzc_node_view(g, p, &pv);
    if (sqz_attr_int(&pv, "sqz_act", 0) != 0) return 0;
    const sqzc_tensor *W = &g->tensors[pn->in[1]];
    int64_t M; /* output channels of the producer */
    int64_t group = sqz_attr_int(&pv, "group", 1);
    if (pn->op == SQZ_OP_CONV) {
        if (W->shape.ndim < 2) return 0;
        M = W->shape.dims[0];
    } else if (pn->op == SQZ_OP_CONV_TRANSPOSE) {
        if (W->shape.ndim < 2 || group <= 0) return 0;
        M = W->shape.dims[1] * group;
    } else { /* Gemm */
        if (W->shape.ndim != 2 || sqz_attr_int(&pv, "transA", 0) != 0) return 0;
        M = sqz_attr_int(&pv, "transB", 0) ? W->shape.dims[0] : W->shape.dims[1];
    }
    sqz_node bv;
    sqzc_node_view(g, bi, &bv);
    float eps = sqz_attr_float(&bv, "epsilon", 1e-5f);
    const sqzc_tensor *gam = &g->tensors[bn->in[1]], *bet = &g->tensors[bn->in[2]],
                      *mean = &g->tensors[bn->in[3]], *var = &g->tensors[bn->in[4]];
    if (sqz_shape_numel(&gam->shape) != M || sqz_shape_numel(&bet->shape) != M ||
        sqz_shape_numel(&mean->shape) != M || sqz_shape_numel(&var->shape) != M)
        return 0;
    /* the BN must act on channel axis 1 of the producer's output */
    const sqzc_tensor *Y = &g->tensors[pn->out[0]];
    if (!Y->has_shape || Y->shape.ndim < 2 || Y->shape.dims[1] != M) return 0;

    int64_t wn = sqz_shape_numel(&W->shape);
    float *w = malloc((size_t)wn * sizeof *w), *b = malloc((size_t)M * sizeof *b),
          *s = malloc((size_t)M * sizeof *s);
    if (!w || !b || !s) {
        free(w);
        free(b);
        free(s);
        return oom(err, err_len);
    }
    memcpy(w, W->f32, (size_t)wn * sizeof *w);
    for (int64_t m = 0; m < M; m++)
        s[m] = (float)((double)gam->f32[m] / sqrt((double)var->f32[m] + (double)eps));
    /* existing bias (Gemm: beta * C, C broadcast to [M]) */
    double cbeta = pn->op == SQZ_OP_GEMM ? sqz_attr_float(&pv, "beta", 1.0f) : 1.0;
    int has_b = pn->n_in >= 3 && pn->in[2] >= 0;
    if (has_b) {
        const sqzc_tensor *B = &g->tensors[pn->in[2]];
        int64_t bn_ = sqz_shape_numel(&B->shape);
        if (bn_ != M && bn_ != 1) {
            free(w);
            free(b);
            free(s);
            return 0; /* e.g. a full [N, M] Gemm C: leave the BN alone */
        }
        for (int64_t m = 0; m < M; m++) b[m] = (float)(cbeta * B->f32[bn_ == 1 ? 0 : m]);
    } else {
        for (int64_t m = 0; m < M; m++) b[m] = 0;
    }
    for (int64_t m = 0; m < M; m++)
        b[m] = (float)(((double)b[m] - mean->f32[m]) * s[m] + bet->f32[m]);
    if (pn->op == SQZ_OP_CONV) {
        int64_t per = wn / M;
        for (int64_t m = 0; m < M; m++)
            for (int64_t k = 0; k < per; k++) w[m * per + k] *= s[m];
    } else if (pn->op == SQZ_OP_CONV_TRANSPOSE) {
        /* W [C, M/group, k...]: output channel of (c, j) is (c / (C/group)) * M/group + j */
        int64_t C = W->shape.dims[0], mg = W->shape.dims[1], per = wn / (C * mg);
        int64_t cg = C / group;
        for (int64_t c = 0; c < C; c++)
            for (int64_t j = 0; j < mg; j++)
                for (int64_t k = 0; k < per; k++) w[(c * mg + j) * per + k] *= s[(c / cg) * mg + j];
    } else {
        int64_t K = wn / M;
        int tb = (int)sqz_attr_int(&pv, "transB", 0);
        for (int64_t m = 0; m < M; m++)
            for (int64_t k = 0; k < K; k++) w[tb ? m * K + k : k * M + m] *= s[m];
    }
    sqz_shape bshape = {1, {M}};
    sqz_shape wshape = W->shape; /* W points into g->tensors, which new_const may move */
    char wname[400];
    snprintf(wname, sizeof wname, "%s", W->name);
    int wt = new_const(g, wname, "_bnfold", &wshape, w);
    int bt = wt < 0 ? -1 : new_const(g, wname, "_bnfold_bias", &bshape, b);
    free(w);
    free(b);
    free(s);
    if (wt < 0 || bt < 0) return oom(err, err_len);
    pn = &g->nodes[p];
    int32_t in[3] = {pn->in[0], wt, bt};
    if (sqzc_node_set_inputs(g, p, 3, in) != 0) return oom(err, err_len);
    if (pn->op == SQZ_OP_GEMM && sqzc_node_set_float(g, p, "beta", 1.0f) != 0)
        return oom(err, err_len);
    g->nodes[p].out[0] = g->nodes[bi].out[0];
    g->nodes[bi].op = SQZ_OP_INVALID;
    return 1;
}

int sqzc_fold_batchnorm(sqzc_graph *g, char *err, size_t err_len) {
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op != SQZ_OP_BATCHNORM) continue;
        int x = g->nodes[i].in[0];
        int p = sqzc_producer(g, x);
        if (p < 0) continue;
        int op = g->nodes[p].op;
        if (op != SQZ_OP_CONV && op != SQZ_OP_CONV_TRANSPOSE && op != SQZ_OP_GEMM) continue;
        if (g->nodes[p].n_out != 1 || sqzc_consumer_count(g, x) != 1) continue;
        if (fold_bn_into(g, i, p, err, err_len) < 0) return -1;
    }
    return 0;
}

/* Map a standalone activation node to a fused (act, alpha, beta); 0 if it
 * cannot be fused. */
static int act_of(const sqzc_graph *g, int ni, int *act, float *alpha, float *beta) {
    sqz_node v;
    sqzc_node_view(g, ni, &v);
    *alpha = 0;
    *beta = 0;
    switch (v.op) {
    case SQZ_OP_RELU:
        *act = SQZ_ACT_RELU;
        return 1;
    case SQZ_OP_CLIP:
        *act = SQZ_ACT_CLIP;
        *alpha = sqz_attr_float(&v, "min", -INFINITY);
        *beta = sqz_attr_float(&v, "max", INFINITY);
        return 1;
    case SQZ_OP_LEAKY_RELU:
        *act = SQZ_ACT_LEAKY_RELU;
        *alpha = sqz_attr_float(&v, "alpha", 0.01f);
        return 1;
    case SQZ_OP_HARD_SWISH:
        *act = SQZ_ACT_HARD_SWISH;
        return 1;
    case SQZ_OP_SIGMOID:
        *act = SQZ_ACT_SIGMOID;
        return 1;
    case SQZ_OP_HARD_SIGMOID:
        *act = SQZ_ACT_HARD_SIGMOID;
        *alpha = sqz_attr_float(&v, "alpha", 0.2f);
        *beta = sqz_attr_float(&v, "beta", 0.5f);
        return 1;
    case SQZ_OP_TANH:
        *act = SQZ_ACT_TANH;
        return 1;
    default:
        return 0;
    }
}

int sqzc_fuse_activations(sqzc_graph *g, char *err, size_t err_len) {
    for (int i = 0; i < g->n_nodes; i++) {
        int act;
        float alpha, beta;
        if (g->nodes[i].op == SQZ_OP_INVALID || !act_of(g, i, &act, &alpha, &beta)) continue;
        if (g->nodes[i].n_in < 1 || g->nodes[i].n_out != 1) continue;
        int x = g->nodes[i].in[0];
        int p = sqzc_producer(g, x);
        if (p < 0) continue;
        int op = g->nodes[p].op;
        if (op != SQZ_OP_CONV && op != SQZ_OP_CONV_TRANSPOSE && op != SQZ_OP_GEMM &&
            op != SQZ_OP_MATMUL)
            continue;
        sqz_node pv;
        sqzc_node_view(g, p, &pv);
        if (sqz_attr_int(&pv, "sqz_act", 0) != 0) continue;
        if (g->nodes[p].n_out != 1 || sqzc_consumer_count(g, x) != 1) continue;
        if (sqzc_node_set_int(g, p, "sqz_act", act) != 0 ||
            sqzc_node_set_float(g, p, "sqz_act_alpha", alpha) != 0 ||
            sqzc_node_set_float(g, p, "sqz_act_beta", beta) != 0)
            return oom(err, err_len);
        g->nodes[p].out[0] = g->nodes[i].out[0];
        g->nodes[i].op = SQZ_OP_INVALID;
    }
    return 0;
}

static void replace_uses(sqzc_graph *g, int from, int to) {
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == SQZ_OP_INVALID) continue;
        for (uint32_t k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == from) g->nodes[i].in[k] = to;
    }
}

static int is_graph_input(const sqzc_graph *g, int t) {
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == t) return 1;
    return 0;
}

int sqzc_remove_dead(sqzc_graph *g, char *err, size_t err_len) {
    (void)err;
    (void)err_len;
    /* Identity: bypass */
    for (int i = 0; i < g->n_nodes; i++) {
        sqzc_node *n = &g->nodes[i];
        if (n->op != SQZ_OP_IDENTITY || n->n_in < 1 || n->n_out != 1 || n->in[0] < 0) continue;
        int x = n->in[0], y = n->out[0];
        if (!is_graph_output(g, y)) {
            replace_uses(g, y, x);
            n->op = SQZ_OP_INVALID;
            continue;
        }
        /* y is a graph output: let x's producer write y directly when x is an
         * intermediate that is not itself an output */
        int p = sqzc_producer(g, x);
        if (p < 0 || is_graph_output(g, x) || is_graph_input(g, x)) continue;
        for (uint32_t k = 0; k < g->nodes[p].n_out; k++)
            if (g->nodes[p].out[k] == x) g->nodes[p].out[k] = y;
        n->op = SQZ_OP_INVALID;
        replace_uses(g, x, y);
    }
    /* dead nodes: nothing reads any output (backwards, so chains go at once) */
    char *live = calloc((size_t)g->n_tensors + 1, 1);
    if (!live) return oom(err, err_len);
    for (int i = 0; i < g->n_outputs; i++) live[g->outputs[i]] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        sqzc_node *n = &g->nodes[i];
        if (n->op == SQZ_OP_INVALID) continue;
        int used = 0;
        for (uint32_t k = 0; k < n->n_out; k++) used |= live[n->out[k]];
        if (!used) {
            n->op = SQZ_OP_INVALID;
            continue;
        }
        for (uint32_t k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) live[n->in[k]] = 1;
    }
    free(live);
    return 0;
}

int sqzc_optimize(sqzc_graph *g, char *err, size_t err_len) {
    if (sqzc_graph_toposort(g, err, err_len) != 0) return -1;
    if (sqzc_infer_shapes(g, err, err_len) != 0) return -1;
    if (sqzc_fold_constants(g, err, err_len) != 0) return -1;
    if (sqzc_remove_dead(g, err, err_len) != 0) return -1;
    if (sqzc_fold_batchnorm(g, err, err_len) != 0) return -1;
    if (sqzc_fuse_activations(g, err, err_len) != 0) return -1;
    if (sqzc_remove_dead(g, err, err_len) != 0) return -1;
    if (sqzc_graph_compact(g) != 0) return oom(err, err_len);
    if (sqzc_graph_toposort(g, err, err_len) != 0) return -1;
    return sqzc_infer_shapes(g, err, err_len);
}
