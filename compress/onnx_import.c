/* onnx_import.c - ONNX import driver: reads the ModelProto, checks the opset,
 * loads initializers and graph inputs, orders the nodes, runs the one pass of
 * folding / lowering / shape inference, and marks the graph outputs. */
#include "onnx_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OX_MIN_OPSET 7
#define OX_MAX_OPSET 18

int ox_fail(ox_ctx *c, const char *fmt, ...) {
    if (!c->err || !c->err_len) return -1;
    int k = snprintf(c->err, c->err_len, "%s: ", c->path);
    if (k < 0 || (size_t)k >= c->err_len) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + k, c->err_len - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}

int ox_unsupported(ox_ctx *c, const char *label, const char *op_type, const char *reason) {
    size_t need = strlen(label) + strlen(op_type) + (reason ? strlen(reason) : 0) + 8;
    if (c->unsup_len + need + 1 > c->unsup_cap) {
        size_t cap = (c->unsup_cap + need + 1) * 2;
        char *p = realloc(c->unsup, cap);
        if (!p) return ox_fail(c, "out of memory");
        c->unsup = p;
        c->unsup_cap = cap;
    }
    int k =
        snprintf(c->unsup + c->unsup_len, c->unsup_cap - c->unsup_len, "%s%s (%s%s%s)",
                 c->n_unsup ? ", " : "", label, op_type, reason ? ": " : "", reason ? reason : "");
    if (k > 0) c->unsup_len += (size_t)k;
    c->n_unsup++;
    return 0;
}

int ox_poison(ox_ctx *c, int t) {
    if (t < 0) return 0;
    if (t >= c->poison_cap) {
        int cap = t * 2 + 64;
        uint8_t *p = realloc(c->poison, (size_t)cap);
        if (!p) return ox_fail(c, "out of memory");
        memset(p + c->poison_cap, 0, (size_t)(cap - c->poison_cap));
        c->poison = p;
        c->poison_cap = cap;
    }
    c->poison[t] = 1;
    return 0;
}

int ox_is_poisoned(const ox_ctx *c, int t) {
    return t >= 0 && t < c->poison_cap && c->poison[t];
}

void ox_node_label(const Onnx__NodeProto *n, int idx, char *buf, size_t len) {
    if (n->name && n->name[0])
        snprintf(buf, len, "%s", n->name);
    else if (n->n_output && n->output[0] && n->output[0][0])
        snprintf(buf, len, "%s #%d (output '%s')", ox_s(n->op_type), idx, n->output[0]);
    else
        snprintf(buf, len, "%s #%d", ox_s(n->op_type), idx);
}

int ox_is_import_only(const char *op) {
    static const char *const ops[] = {"Shape", "Size",     "Gather",   "Cast",    "Equal",
                                      "Less",  "Greater",  "Not",      "Where",   "ConstantOfShape",
                                      "Range", "Expand",   "Constant", "Dropout", "Upsample",
                                      "Neg",   "CastLike", NULL};
    for (int i = 0; ops[i]; i++)
        if (strcmp(op, ops[i]) == 0) return 1;
    return 0;
}

/* ------------------------------------------------------------ helpers */

static const Onnx__ValueInfoProto *find_input(const Onnx__GraphProto *gp, const char *name) {
    for (size_t i = 0; i < gp->n_input; i++)
        if (strcmp(ox_s(gp->input[i]->name), name) == 0) return gp->input[i];
    return NULL;
}

static int is_initializer(const Onnx__GraphProto *gp, const char *name) {
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (strcmp(ox_s(gp->initializer[i]->name), name) == 0) return 1;
    return 0;
}

static int check_opts(ox_ctx *c, const Onnx__GraphProto *gp) {
    const sqzc_import_options *o = c->opts;
    if (!o) return 0;
    if ((o->n_input_shapes > 0 && !o->input_shapes) || (o->n_const_inputs > 0 && !o->const_inputs))
        return ox_fail(c, "invalid import options");
    for (int i = 0; i < o->n_input_shapes; i++) {
        const sqzc_named_shape *s = &o->input_shapes[i];
        if (!s->name || !find_input(gp, s->name))
            return ox_fail(c, "--input-shape names '%s', which is not a graph input",
                           ox_s(s->name));
        if (s->shape.ndim < 0 || s->shape.ndim > SQZ_MAX_DIMS)
            return ox_fail(c, "--input-shape %s: bad rank %d", s->name, (int)s->shape.ndim);
        for (int d = 0; d < s->shape.ndim; d++)
            if (s->shape.dims[d] < 0)
                return ox_fail(c, "--input-shape %s: negative dim %d", s->name, d);
        if (ox_numel(&s->shape) < 0) return ox_fail(c, "--input-shape %s: too large", s->name);
    }
    for (int i = 0; i < o->n_const_inputs; i++) {
        const sqzc_const_binding *b = &o->const_inputs[i];
        if (!b->name || !b->path || !find_input(gp, b->name))
            return ox_fail(c, "constant binding names '%s', which is not a graph input",
                           ox_s(b->name));
    }
    return 0;
}

static int load_initializers(ox_ctx *c, const Onnx__GraphProto *gp) {
    char msg[512];
    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *tp = gp->initializer[i]; /* its raw_data taken (read once) */
        const char *name = ox_s(tp->name);
        if (!name[0]) return ox_fail(c, "initializer #%zu has no name", i);
        if (sqzc_find_tensor(c->g, name) >= 0)
            return ox_fail(c, "initializer '%s' defined twice", name);
        ox_val v;
        if (ox_tensor_decode_take(tp, c->dir, c->path, &v, msg, sizeof msg) != 0)
            return ox_fail(c, "initializer %s", msg);
        int t = sqzc_tensor_get_or_add(c->g, name);
        int rc = t < 0 ? -1 : ox_store_take(c->g, t, &v);
        ox_val_free(&v);
        if (rc != 0) return ox_fail(c, "out of memory");
    }
    if (gp->n_sparse_initializer) return ox_fail(c, "sparse initializers are not supported");
    return 0;
}

static int bind_const_input(ox_ctx *c, const sqzc_const_binding *b) {
    char msg[512];
    size_t len;
    uint8_t *buf = ox_read_file(b->path, &len, msg, sizeof msg);
    if (!buf) return ox_fail(c, "input '%s': %s", b->name, msg);
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp) return ox_fail(c, "input '%s': %s: not a valid ONNX TensorProto", b->name, b->path);
    char *dir = ox_dirname(b->path);
    ox_val v;
    int rc = dir ? ox_tensor_decode(tp, dir, b->path, &v, msg, sizeof msg) : -1;
    if (!dir) snprintf(msg, sizeof msg, "out of memory");
    free(dir);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    if (rc != 0) return ox_fail(c, "input '%s': %s: %s", b->name, b->path, msg);
    int t = sqzc_tensor_get_or_add(c->g, b->name);
    rc = t < 0 ? -1 : ox_store(c->g, t, &v);
    ox_val_free(&v);
    if (rc != 0) return ox_fail(c, "out of memory");
    return 0;
}

static const sqzc_named_shape *given_shape(const ox_ctx *c, const char *name) {
    if (!c->opts) return NULL;
    for (int i = 0; i < c->opts->n_input_shapes; i++)
        if (strcmp(c->opts->input_shapes[i].name, name) == 0) return &c->opts->input_shapes[i];
    return NULL;
}

static int load_graph_inputs(ox_ctx *c, const Onnx__GraphProto *gp) {
    if (c->opts)
        for (int i = 0; i < c->opts->n_const_inputs; i++) {
            if (is_initializer(gp, c->opts->const_inputs[i].name))
                return ox_fail(c, "input '%s' is an initializer; it cannot be rebound",
                               c->opts->const_inputs[i].name);
            if (bind_const_input(c, &c->opts->const_inputs[i]) != 0) return -1;
        }
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        const char *name = ox_s(vi->name);
        if (!name[0]) return ox_fail(c, "graph input #%zu has no name", i);
        int existing = sqzc_find_tensor(c->g, name);
        if (existing >= 0 && sqzc_tensor_is_const(c->g, existing)) {
            /* initializer (opset<9 style) or bound constant; a repeated input is an error */
            for (size_t j = 0; j < i; j++)
                if (strcmp(ox_s(gp->input[j]->name), name) == 0)
                    return ox_fail(c, "graph input '%s' listed twice", name);
            continue;
        }
        if (existing >= 0) return ox_fail(c, "graph input '%s' listed twice", name);
        const Onnx__TypeProto *tp = vi->type;
        if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
            return ox_fail(c, "graph input '%s' is not a tensor", name);
        const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
        int dt = tt->has_elem_type ? tt->elem_type : 0;
        if (ox_dtype_class(dt) != 1)
            return ox_fail(c,
                           "graph input '%s' has dtype %s; only float inputs are supported "
                           "(bind it to a constant tensor file instead)",
                           name, ox_dtype_name(dt));
        const sqzc_named_shape *given = given_shape(c, name);
        sqz_shape s;
        if (!tt->shape) {
            if (!given)
                return ox_fail(c, "input '%s' has no shape in the model; pass --input-shape %s:...",
                               name, name);
            s = given->shape;
        } else {
            const Onnx__TensorShapeProto *sp = tt->shape;
            if (sp->n_dim > SQZ_MAX_DIMS)
                return ox_fail(c, "input '%s' has rank %zu > %d", name, sp->n_dim, SQZ_MAX_DIMS);
            if (given && given->shape.ndim != (int32_t)sp->n_dim)
                return ox_fail(c, "--input-shape %s has rank %d but the model's input has rank %zu",
                               name, (int)given->shape.ndim, sp->n_dim);
            s.ndim = (int32_t)sp->n_dim;
            for (size_t d = 0; d < sp->n_dim; d++) {
                const Onnx__TensorShapeProto__Dimension *dim = sp->dim[d];
                if (given) {
                    s.dims[d] = given->shape.dims[d];
                } else if (dim->value_case ==
                               ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                           dim->dim_value >= 0) {
                    s.dims[d] = dim->dim_value;
                } else if (d == 0 && c->opts && c->opts->default_batch > 0) {
                    /* a dynamic leading (batch) dim: the caller's default */
                    s.dims[d] = c->opts->default_batch;
                    char note[400];
                    snprintf(note, sizeof note,
                             "input '%s' dim 0 ('%s') is dynamic; fixed to %lld (choose with "
                             "--input-shape)",
                             name,
                             dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                                 ? ox_s(dim->dim_param)
                                 : "",
                             (long long)c->opts->default_batch);
                    if (sqzc_graph_set_meta(c->g, "import.note", note) != 0)
                        return ox_fail(c, "out of memory");
                } else {
                    char shp[160] = "";
                    size_t k = 0;
                    for (size_t e = 0; e < sp->n_dim && k < sizeof shp - 24; e++) {
                        const Onnx__TensorShapeProto__Dimension *de = sp->dim[e];
                        int known = de->value_case ==
                                        ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                                    de->dim_value > 0;
                        int w = snprintf(shp + k, sizeof shp - k, "%s%lld", e ? "," : "",
                                         known ? (long long)de->dim_value : 1LL);
                        if (w > 0) k += (size_t)w;
                    }
                    const char *pname =
                        dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                            ? ox_s(dim->dim_param)
                            : "";
                    return ox_fail(
                        c, "input '%s' has dynamic dim %zu ('%s'); pass --input-shape %s:%s", name,
                        d, pname[0] ? pname : "?", name, shp);
                }
            }
        }
        if (ox_numel(&s) < 0) return ox_fail(c, "input '%s': shape too large", name);
        int t = sqzc_tensor_get_or_add(c->g, name);
        if (t < 0) return ox_fail(c, "out of memory");
        c->g->tensors[t].dtype = SQZC_F32;
        c->g->tensors[t].has_shape = 1;
        c->g->tensors[t].shape = s;
        int32_t *p = realloc(c->g->inputs, (size_t)(c->g->n_inputs + 1) * sizeof *p);
        if (!p) return ox_fail(c, "out of memory");
        c->g->inputs = p;
        p[c->g->n_inputs++] = t;
    }
    return 0;
}

/* Every op the model uses must be known; list all unknown ones at once. */
static int check_op_support(ox_ctx *c, const Onnx__GraphProto *gp) {
    char label[256];
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        const char *op = ox_s(n->op_type);
        const char *dom = ox_s(n->domain);
        ox_node_label(n, (int)i, label, sizeof label);
        if (dom[0] && strcmp(dom, "ai.onnx") != 0) {
            char full[256];
            snprintf(full, sizeof full, "%s::%s", dom, op);
            if (ox_unsupported(c, label, full, NULL) != 0) return -1;
        } else if (sqz_op_from_name(op) == SQZ_OP_INVALID && !ox_is_import_only(op)) {
            if (ox_unsupported(c, label, op, NULL) != 0) return -1;
        }
    }
    if (c->n_unsup)
        return ox_fail(c, "%d unsupported op%s: %s", c->n_unsup, c->n_unsup > 1 ? "s" : "",
                       c->unsup);
    return 0;
}

/* Node order: a min-heap on the node index gives the file's order when it is
 * already topological. Validates names (duplicate producers, unknown inputs). */
static void heap_push(int *h, int *n, int v) {
    int i = (*n)++;
    h[i] = v;
    while (i > 0 && h[(i - 1) / 2] > h[i]) {
        int p = (i - 1) / 2, t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}

static int heap_pop(int *h, int *n) {
    int top = h[0];
    h[0] = h[--(*n)];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && h[l] < h[m]) m = l;
        if (r < *n && h[r] < h[m]) m = r;
        if (m == i) break;
        int t = h[m];
        h[m] = h[i];
        h[i] = t;
        i = m;
    }
    return top;
}

static int order_nodes(ox_ctx *c, const Onnx__GraphProto *gp, int *order) {
    int nn = (int)gp->n_node;
    char label[256];
    /* producer per tensor id; tensors get created for every node output */
    for (int i = 0; i < nn; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        for (size_t k = 0; k < n->n_output; k++) {
            const char *o = ox_s(n->output[k]);
            if (!o[0]) continue;
            if (sqzc_tensor_get_or_add(c->g, o) < 0) return ox_fail(c, "out of memory");
        }
    }
    int nt = c->g->n_tensors;
    int *prod = malloc((size_t)(nt ? nt : 1) * sizeof *prod);
    int *pending = calloc((size_t)(nn ? nn : 1), sizeof *pending);
    int *heap = malloc((size_t)(nn ? nn : 1) * sizeof *heap);
    /* consumers as CSR over tensor ids */
    int *cstart = calloc((size_t)nt + 1, sizeof *cstart);
    size_t n_edges = 0;
    for (int i = 0; i < nn; i++) n_edges += gp->node[i]->n_input;
    int *cnode = malloc((n_edges ? n_edges : 1) * sizeof *cnode);
    int rc = -1;
    if (!prod || !pending || !heap || !cstart || !cnode) {
        ox_fail(c, "out of memory");
        goto done;
    }
    for (int t = 0; t < nt; t++) prod[t] = -1;
    for (int i = 0; i < nn; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        for (size_t k = 0; k < n->n_output; k++) {
            const char *o = ox_s(n->output[k]);
            if (!o[0]) continue;
            int t = sqzc_find_tensor(c->g, o);
            ox_node_label(n, i, label, sizeof label);
            if (prod[t] >= 0) {
                ox_fail(c, "tensor '%s' is produced twice (node '%s')", o, label);
                goto done;
            }
            if (sqzc_tensor_is_const(c->g, t) || c->g->tensors[t].has_shape) {
                ox_fail(c, "node '%s' output '%s' redefines an initializer or graph input", label,
                        o);
                goto done;
            }
            prod[t] = i;
        }
    }
    for (int i = 0; i < nn; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        ox_node_label(n, i, label, sizeof label);
        for (size_t k = 0; k < n->n_input; k++) {
            const char *in = ox_s(n->input[k]);
            if (!in[0]) continue;
            int t = sqzc_find_tensor(c->g, in);
            if (t < 0 || (t < nt && prod[t] < 0 && !sqzc_tensor_is_const(c->g, t) &&
                          !c->g->tensors[t].has_shape)) {
                ox_fail(c,
                        "node '%s' (%s): input '%s' is not produced by any node, initializer or "
                        "graph input",
                        label, ox_s(n->op_type), in);
                goto done;
            }
            if (prod[t] >= 0) {
                pending[i]++;
                cstart[t + 1]++;
            }
        }
    }
    for (int t = 0; t < nt; t++) cstart[t + 1] += cstart[t];
    {
        int *fill = calloc((size_t)(nt ? nt : 1), sizeof *fill);
        if (!fill) {
            ox_fail(c, "out of memory");
            goto done;
        }
        for (int i = 0; i < nn; i++) {
            const Onnx__NodeProto *n = gp->node[i];
            for (size_t k = 0; k < n->n_input; k++) {
                const char *in = ox_s(n->input[k]);
                if (!in[0]) continue;
                int t = sqzc_find_tensor(c->g, in);
                if (prod[t] >= 0) cnode[cstart[t] + fill[t]++] = i;
            }
        }
        free(fill);
    }
    int hn = 0, placed = 0;
    for (int i = 0; i < nn; i++)
        if (pending[i] == 0) heap_push(heap, &hn, i);
    while (hn > 0) {
        int i = heap_pop(heap, &hn);
        order[placed++] = i;
        const Onnx__NodeProto *n = gp->node[i];
        for (size_t k = 0; k < n->n_output; k++) {
            const char *o = ox_s(n->output[k]);
            if (!o[0]) continue;
            int t = sqzc_find_tensor(c->g, o);
            for (int e = cstart[t]; e < cstart[t + 1]; e++)
                if (--pending[cnode[e]] == 0) heap_push(heap, &hn, cnode[e]);
        }
    }
    if (placed < nn) {
        for (int i = 0; i < nn; i++)
            if (pending[i] > 0) {
                ox_node_label(gp->node[i], i, label, sizeof label);
                ox_fail(c, "the graph has a cycle through node '%s' (%s)", label,
                        ox_s(gp->node[i]->op_type));
                break;
            }
        goto done;
    }
    rc = 0;
done:
    free(prod);
    free(pending);
    free(heap);
    free(cstart);
    free(cnode);
    return rc;
}

static int run_nodes(ox_ctx *c, const Onnx__GraphProto *gp, const int *order) {
    char label[256];
    int32_t *in = NULL, *out = NULL;
    int rc = -1;
    for (size_t oi = 0; oi < gp->n_node; oi++) {
        int idx = order[oi];
        const Onnx__NodeProto *n = gp->node[idx];
        ox_node_label(n, idx, label, sizeof label);
        free(in);
        free(out);
        in = malloc((n->n_input ? n->n_input : 1) * sizeof *in);
        out = malloc((n->n_output ? n->n_output : 1) * sizeof *out);
        if (!in || !out) {
            ox_fail(c, "out of memory");
            goto done;
        }
        int poisoned = 0;
        for (size_t k = 0; k < n->n_input; k++) {
            const char *s = ox_s(n->input[k]);
            in[k] = s[0] ? sqzc_find_tensor(c->g, s) : -1;
            poisoned |= ox_is_poisoned(c, in[k]);
        }
        for (size_t k = 0; k < n->n_output; k++) {
            const char *s = ox_s(n->output[k]);
            out[k] = s[0] ? sqzc_find_tensor(c->g, s) : -1;
        }
        if (n->n_output == 0) {
            ox_fail(c, "node '%s' (%s) has no outputs", label, ox_s(n->op_type));
            goto done;
        }
        int r = 0;
        if (!poisoned) {
            r = ox_fold_node(c, n, label, in, out);
            if (r < 0) goto done;
            if (r == 1) continue;
            r = ox_lower_node(c, n, label, in, out);
            if (r < 0) goto done;
        }
        if (poisoned || r == 1)
            for (size_t k = 0; k < n->n_output; k++)
                if (ox_poison(c, out[k]) != 0) goto done;
    }
    rc = 0;
done:
    free(in);
    free(out);
    return rc;
}

static int mark_outputs(ox_ctx *c, const Onnx__GraphProto *gp) {
    sqzc_graph *g = c->g;
    if (gp->n_output == 0) return ox_fail(c, "the graph has no outputs");
    g->outputs = malloc(gp->n_output * sizeof *g->outputs);
    if (!g->outputs) return ox_fail(c, "out of memory");
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = ox_s(gp->output[i]->name);
        int t = name[0] ? sqzc_find_tensor(g, name) : -1;
        if (t < 0) return ox_fail(c, "graph output '%s' is not produced by any node", name);
        for (int j = 0; j < g->n_outputs; j++)
            if (g->outputs[j] == t) return ox_fail(c, "graph output '%s' listed twice", name);
        if (sqzc_tensor_is_const(g, t)) {
            /* The runtime reads outputs from nodes: Identity(constant copy). */
            int k = sqzc_tensor_add_unique(g, name);
            if (k < 0) return ox_fail(c, "out of memory");
            sqzc_tensor *src = &g->tensors[t];
            int rc;
            if (src->dtype == SQZC_I64) {
                int64_t n = ox_numel(&src->shape);
                float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
                if (!f) return ox_fail(c, "out of memory");
                for (int64_t e = 0; e < n; e++) f[e] = (float)src->i64[e];
                rc = sqzc_tensor_set_f32(g, k, &src->shape, f);
                free(f);
            } else {
                rc = sqzc_tensor_set_f32(g, k, &src->shape, src->f32);
            }
            src = &g->tensors[t];
            if (rc != 0) return ox_fail(c, "out of memory");
            free(src->f32);
            free(src->i64);
            src->f32 = NULL;
            src->i64 = NULL;
            src->dtype = SQZC_F32;
            int32_t ki = k, to = t;
            if (sqzc_add_node(g, SQZ_OP_IDENTITY, name, 1, &ki, 1, &to) < 0)
                return ox_fail(c, "out of memory");
        } else if (!g->tensors[t].has_shape) {
            return ox_fail(c, "graph output '%s' has no inferred shape", name);
        }
        g->outputs[g->n_outputs++] = t;
    }
    return 0;
}

static int read_opset(ox_ctx *c, const Onnx__ModelProto *m) {
    int found = 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        const char *d = ox_s(o->domain);
        if (d[0] && strcmp(d, "ai.onnx") != 0) continue;
        if (!o->has_version) return ox_fail(c, "opset_import without a version");
        if (o->version < OX_MIN_OPSET || o->version > OX_MAX_OPSET)
            return ox_fail(c, "opset %lld is not supported (supported: %d..%d)",
                           (long long)o->version, OX_MIN_OPSET, OX_MAX_OPSET);
        c->opset = (int)o->version;
        found = 1;
    }
    if (!found)
        return ox_fail(c, "no default-domain opset_import (opsets %d..%d are supported)",
                       OX_MIN_OPSET, OX_MAX_OPSET);
    return 0;
}

int sqzc_import_onnx(const char *path, const sqzc_import_options *opts, sqzc_graph **out, char *err,
                     size_t err_len) {
    *out = NULL;
    if (err && err_len) err[0] = 0;
    ox_ctx c;
    memset(&c, 0, sizeof c);
    c.path = path;
    c.opts = opts;
    c.err = err;
    c.err_len = err_len;
    size_t len;
    uint8_t *buf = ox_read_file(path, &len, err, err_len);
    if (!buf) return -1;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    if (!m) return ox_fail(&c, "not a valid ONNX model (truncated or corrupt protobuf)");
    char *dir = ox_dirname(path);
    int *order = NULL;
    int rc = -1;
    if (!dir) {
        ox_fail(&c, "out of memory");
        goto done;
    }
    c.dir = dir;
    if (!m->graph) {
        ox_fail(&c, "the model has no graph");
        goto done;
    }
    if (read_opset(&c, m) != 0) goto done;
    const Onnx__GraphProto *gp = m->graph;
    c.g = sqzc_graph_new();
    order = malloc((gp->n_node ? gp->n_node : 1) * sizeof *order);
    if (!c.g || !order) {
        ox_fail(&c, "out of memory");
        goto done;
    }
    if (check_opts(&c, gp) != 0 || check_op_support(&c, gp) != 0 ||
        load_initializers(&c, gp) != 0 || load_graph_inputs(&c, gp) != 0 ||
        order_nodes(&c, gp, order) != 0 || run_nodes(&c, gp, order) != 0)
        goto done;
    if (c.n_unsup) {
        ox_fail(&c, "%d unsupported op%s: %s", c.n_unsup, c.n_unsup > 1 ? "s" : "", c.unsup);
        goto done;
    }
    if (mark_outputs(&c, gp) != 0) goto done;
    char ver[32];
    snprintf(ver, sizeof ver, "%d", c.opset);
    if (sqzc_graph_set_meta(c.g, "onnx.opset", ver) != 0 ||
        (m->producer_name && m->producer_name[0] &&
         sqzc_graph_set_meta(c.g, "onnx.producer", m->producer_name) != 0) ||
        sqzc_graph_compact(c.g) != 0) {
        ox_fail(&c, "out of memory");
        goto done;
    }
    *out = c.g;
    c.g = NULL;
    rc = 0;
done:
    sqzc_graph_free(c.g);
    onnx__model_proto__free_unpacked(m, NULL);
    free(dir);
    free(order);
    free(c.unsup);
    free(c.poison);
    return rc;
}
