/* qdq.c - ONNX QDQ form of an INT8 graph (sqzc/quant_qdq.h). */
#include "sqzc/quant_qdq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqzc/onnx_export.h"

typedef struct qb {
    const sqzc_graph *q;
    sqzc_graph *h;
    int *map;   /* tensor of q -> tensor of h that consumers read (float) */
    int *qname; /* int8 activation of q -> its int8 tensor in h */
} qb;

static int new_tensor(sqzc_graph *h, const char *base, const char *suffix) {
    size_t n = strlen(base) + strlen(suffix) + 1;
    char *nm = malloc(n);
    if (!nm) return -1;
    snprintf(nm, n, "%s%s", base, suffix);
    int t = sqzc_tensor_add_unique(h, nm);
    free(nm);
    return t;
}

/* scale (f32) and zero point (i8 or i32) constants of q tensor t */
static int qparam_consts(qb *b, int t, int zp_i32, int *ts, int *tz) {
    const sqzc_tensor *x = &b->q->tensors[t];
    const sqzc_qparams *p = &x->q;
    *ts = new_tensor(b->h, x->name, "_scale");
    *tz = new_tensor(b->h, x->name, "_zero_point");
    if (*ts < 0 || *tz < 0) return -1;
    sqz_shape s = p->kind == SQZC_Q_CHANNEL ? (sqz_shape){1, {p->n}} : (sqz_shape){0, {0}};
    if (sqzc_tensor_set_f32(b->h, *ts, &s, p->scale) != 0) return -1;
    if (zp_i32) return sqzc_tensor_set_i32(b->h, *tz, &s, p->zero_point);
    int8_t z[4096], *zz = p->n <= 4096 ? z : malloc((size_t)p->n);
    if (!zz) return -1;
    for (int i = 0; i < p->n; i++) zz[i] = (int8_t)p->zero_point[i];
    int rc = sqzc_tensor_set_i8(b->h, *tz, &s, zz);
    if (zz != z) free(zz);
    return rc;
}

static int add_qdq_node(qb *b, int op, const char *name, int x, int ts, int tz, int y, int axis) {
    int32_t in[3] = {x, ts, tz}, out[1] = {y};
    int n = sqzc_add_node(b->h, op, name, 3, in, 1, out);
    if (n < 0) return -1;
    if (axis >= 0 && sqzc_node_set_int(b->h, n, "axis", axis) != 0) return -1;
    return 0;
}

/* float version of constant t of q: integer initializer + DequantizeLinear */
static int const_in(qb *b, int t) {
    if (b->map[t] >= 0) return b->map[t];
    const sqzc_tensor *x = &b->q->tensors[t];
    int ti = sqzc_tensor_get_or_add(b->h, x->name);
    if (ti < 0) return -1;
    if (x->f32) {
        if (sqzc_tensor_set_f32(b->h, ti, &x->shape, x->f32) != 0) return -1;
        return b->map[t] = ti;
    }
    if ((x->i8 ? sqzc_tensor_set_i8(b->h, ti, &x->shape, x->i8)
               : sqzc_tensor_set_i32(b->h, ti, &x->shape, x->i32)) != 0)
        return -1;
    int ts, tz, tf = new_tensor(b->h, x->name, "_dq");
    if (tf < 0 || qparam_consts(b, t, x->i32 != NULL, &ts, &tz) != 0) return -1;
    b->h->tensors[tf].shape = x->shape;
    b->h->tensors[tf].has_shape = 1;
    char nm[600];
    snprintf(nm, sizeof nm, "%s_DequantizeLinear", x->name);
    if (add_qdq_node(b, SQZ_OP_DEQUANTIZE_LINEAR, nm, ti, ts, tz, tf,
                     x->q.kind == SQZC_Q_CHANNEL ? x->q.axis : -1) != 0)
        return -1;
    return b->map[t] = tf;
}

/* i32 bias without its own record: scale s_x * s_w[c] from the consumer */
static int bias_params(qb *b, int node) {
    const sqzc_node *n = &b->q->nodes[node];
    if (n->n_in < 3 || n->in[2] < 0) return 0;
    sqzc_tensor *bt = (sqzc_tensor *)&b->q->tensors[n->in[2]];
    if (!bt->i32 || bt->q.kind != SQZC_Q_NONE) return 0;
    const sqzc_tensor *x = &b->q->tensors[n->in[0]], *w = &b->q->tensors[n->in[1]];
    if (x->q.kind != SQZC_Q_TENSOR || w->q.kind != SQZC_Q_CHANNEL) return -1;
    int nc = w->q.n;
    float *s = malloc(sizeof *s * (size_t)nc);
    int32_t *z = calloc((size_t)nc, sizeof *z);
    int rc = -1;
    if (s && z) {
        for (int c = 0; c < nc; c++) s[c] = x->q.scale[0] * w->q.scale[c];
        /* the record is written on the copy only (q stays as it was): see const_in */
        sqzc_qparams save = bt->q;
        bt->q = (sqzc_qparams){SQZC_Q_CHANNEL, 0, nc, s, z};
        rc = const_in(b, n->in[2]) < 0 ? -1 : 0;
        bt->q = save;
    }
    free(s);
    free(z);
    return rc;
}

int sqzc_quant_to_qdq(const sqzc_graph *q, sqzc_graph **out, char *err, size_t err_len) {
    *out = NULL;
    qb b = {q, sqzc_graph_new(), NULL, NULL};
    b.map = malloc(sizeof *b.map * ((size_t)q->n_tensors + 1));
    b.qname = malloc(sizeof *b.qname * ((size_t)q->n_tensors + 1));
    if (!b.h || !b.map || !b.qname) goto oom;
    for (int t = 0; t < q->n_tensors; t++) b.map[t] = b.qname[t] = -1;
    /* graph inputs keep their names */
    b.h->inputs = malloc(sizeof(int32_t) * ((size_t)q->n_inputs + 1));
    b.h->outputs = malloc(sizeof(int32_t) * ((size_t)q->n_outputs + 1));
    if (!b.h->inputs || !b.h->outputs) goto oom;
    for (int i = 0; i < q->n_inputs; i++) {
        const sqzc_tensor *x = &q->tensors[q->inputs[i]];
        if (x->dtype != SQZC_F32) {
            snprintf(err, err_len, "graph input '%s' is not float", x->name);
            goto fail;
        }
        int t = sqzc_tensor_get_or_add(b.h, x->name);
        if (t < 0) goto oom;
        b.h->tensors[t].shape = x->shape;
        b.h->tensors[t].has_shape = x->has_shape;
        b.map[q->inputs[i]] = t;
        b.h->inputs[b.h->n_inputs++] = t;
    }
    for (int i = 0; i < q->n_nodes; i++) {
        const sqzc_node *n = &q->nodes[i];
        if (n->op == SQZ_OP_INVALID) continue;
        if ((n->op == SQZ_OP_CONV || n->op == SQZ_OP_GEMM) && bias_params(&b, i) != 0) goto oom;
        int32_t in[16], outs[16];
        if (n->n_in > 16 || n->n_out > 16) {
            snprintf(err, err_len, "node '%s': too many inputs for the QDQ export", n->name);
            goto fail;
        }
        for (uint32_t k = 0; k < n->n_in; k++) {
            int t = n->in[k];
            if (t < 0) {
                in[k] = -1;
            } else if (sqzc_tensor_is_const(q, t)) {
                if ((in[k] = const_in(&b, t)) < 0) goto oom;
            } else if (n->op == SQZ_OP_DEQUANTIZE_LINEAR) {
                in[k] = b.qname[t]; /* the int8 tensor itself */
            } else {
                in[k] = b.map[t];
            }
            if (t >= 0 && in[k] < 0) {
                snprintf(err, err_len, "node '%s': input '%s' has no producer", n->name,
                         q->tensors[t].name);
                goto fail;
            }
        }
        /* outputs: float for ordinary ops; int8 tensors get Q + DQ after them */
        for (uint32_t k = 0; k < n->n_out; k++) {
            const sqzc_tensor *y = &q->tensors[n->out[k]];
            int is8 = y->dtype == SQZC_I8;
            int t = is8 && n->op != SQZ_OP_QUANTIZE_LINEAR ? new_tensor(b.h, y->name, "_float")
                                                           : sqzc_tensor_get_or_add(b.h, y->name);
            if (t < 0) goto oom;
            b.h->tensors[t].shape = y->shape;
            b.h->tensors[t].has_shape = y->has_shape;
            outs[k] = t;
        }
        int op = n->op;
        int ni = sqzc_add_node(b.h, op, n->name, n->n_in, in, n->n_out, outs);
        if (ni < 0) goto oom;
        for (uint32_t a = 0; a < n->n_attr; a++) {
            const sqz_attr *at = &n->attrs[a];
            int rc = 0;
            switch (at->type) {
            case SQZ_ATTR_INT:
                rc = sqzc_node_set_int(b.h, ni, at->name, at->ints[0]);
                break;
            case SQZ_ATTR_FLOAT:
                rc = sqzc_node_set_float(b.h, ni, at->name, at->floats[0]);
                break;
            case SQZ_ATTR_INTS:
                rc = sqzc_node_set_ints(b.h, ni, at->name, at->ints, at->count);
                break;
            case SQZ_ATTR_FLOATS:
                rc = sqzc_node_set_floats(b.h, ni, at->name, at->floats, at->count);
                break;
            default:
                rc = sqzc_node_set_str(b.h, ni, at->name, at->str ? at->str : "");
            }
            if (rc != 0) goto oom;
        }
        if (op == SQZ_OP_QUANTIZE_LINEAR || op == SQZ_OP_DEQUANTIZE_LINEAR) {
            /* the IR keeps the parameters on the int8 tensor; ONNX wants inputs */
            int qt = op == SQZ_OP_QUANTIZE_LINEAR ? n->out[0] : n->in[0];
            int ts, tz;
            if (qparam_consts(&b, qt, 0, &ts, &tz) != 0) goto oom;
            int32_t in3[3] = {in[0], ts, tz};
            if (sqzc_node_set_inputs(b.h, ni, 3, in3) != 0) goto oom;
        }
        for (uint32_t k = 0; k < n->n_out; k++) {
            int t = n->out[k];
            const sqzc_tensor *y = &q->tensors[t];
            if (y->dtype != SQZC_I8) {
                b.map[t] = outs[k];
                continue;
            }
            if (y->q.kind != SQZC_Q_TENSOR) {
                snprintf(err, err_len, "tensor '%s': int8 activation without per-tensor params",
                         y->name);
                goto fail;
            }
            int ti = outs[k]; /* int8 tensor in h */
            if (op != SQZ_OP_QUANTIZE_LINEAR) {
                ti = sqzc_tensor_get_or_add(b.h, y->name);
                if (ti < 0) goto oom;
                b.h->tensors[ti].shape = y->shape;
                b.h->tensors[ti].has_shape = y->has_shape;
                int ts, tz;
                char nm[600];
                snprintf(nm, sizeof nm, "%s_QuantizeLinear", y->name);
                if (qparam_consts(&b, t, 0, &ts, &tz) != 0 ||
                    add_qdq_node(&b, SQZ_OP_QUANTIZE_LINEAR, nm, outs[k], ts, tz, ti, -1) != 0)
                    goto oom;
            }
            b.qname[t] = ti;
            int tf = new_tensor(b.h, y->name, "_dq"), ts, tz;
            if (tf < 0 || qparam_consts(&b, t, 0, &ts, &tz) != 0) goto oom;
            b.h->tensors[tf].shape = y->shape;
            b.h->tensors[tf].has_shape = y->has_shape;
            char nm[600];
            snprintf(nm, sizeof nm, "%s_DequantizeLinear", y->name);
            if (add_qdq_node(&b, SQZ_OP_DEQUANTIZE_LINEAR, nm, ti, ts, tz, tf, -1) != 0) goto oom;
            b.map[t] = tf;
        }
    }
    for (int i = 0; i < q->n_outputs; i++) {
        int t = b.map[q->outputs[i]];
        if (t < 0 || q->tensors[q->outputs[i]].dtype != SQZC_F32) {
            snprintf(err, err_len, "graph output '%s' is not a float tensor",
                     q->tensors[q->outputs[i]].name);
            goto fail;
        }
        b.h->outputs[b.h->n_outputs++] = t;
    }
    free(b.map);
    free(b.qname);
    *out = b.h;
    return 0;
oom:
    snprintf(err, err_len, "out of memory building the QDQ graph");
fail:
    free(b.map);
    free(b.qname);
    sqzc_graph_free(b.h);
    return -1;
}

int sqzc_write_onnx_qdq(const sqzc_graph *q, const char *path, char *err, size_t err_len) {
    sqzc_graph *h = NULL;
    if (sqzc_quant_to_qdq(q, &h, err, err_len) != 0) return -1;
    sqzc_onnx_export_options o;
    memset(&o, 0, sizeof o);
    o.dynamic_batch = 1;
    int rc = sqzc_write_onnx(h, &o, path, err, err_len);
    sqzc_graph_free(h);
    return rc;
}
