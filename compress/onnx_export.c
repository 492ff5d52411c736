/* onnx_export.c - the sqzc IR as an ONNX ModelProto (opset 14), built as
 * protobuf-c messages and packed. Every allocation goes into one list that
 * is freed at the end, so error paths stay simple. */
#include "sqzc/onnx_export.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx.pb-c.h"

#define EXPORT_OPSET 14

typedef struct ex_ctx {
    const sqzc_graph *g;
    const sqzc_onnx_export_options *o;
    void **allocs;
    size_t n_allocs, cap_allocs;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    unsigned serial;
    char *err;
    size_t err_len;
    int failed;
} ex_ctx;

static int ex_fail(ex_ctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int ex_fail(ex_ctx *c, const char *fmt, ...) {
    if (!c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->err_len, fmt, ap);
        va_end(ap);
    }
    c->failed = 1;
    return -1;
}

static void *ex_alloc(ex_ctx *c, size_t bytes) {
    if (c->n_allocs == c->cap_allocs) {
        size_t cap = c->cap_allocs ? c->cap_allocs * 2 : 256;
        void **p = realloc(c->allocs, cap * sizeof *p);
        if (!p) {
            ex_fail(c, "out of memory");
            return NULL;
        }
        c->allocs = p;
        c->cap_allocs = cap;
    }
    void *m = calloc(1, bytes ? bytes : 1);
    if (!m) {
        ex_fail(c, "out of memory");
        return NULL;
    }
    c->allocs[c->n_allocs++] = m;
    return m;
}

static char *ex_str(ex_ctx *c, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = ex_alloc(c, n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Append p to a growable pointer array. */
static int push_ptr(ex_ctx *c, void ***arr, size_t *n, size_t *cap, void *p) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        void **q = realloc(*arr, nc * sizeof *q);
        if (!q) return ex_fail(c, "out of memory");
        *arr = q;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

/* A name no IR tensor uses. */
static char *fresh_name(ex_ctx *c, const char *base, const char *what) {
    char buf[512];
    do {
        snprintf(buf, sizeof buf, "%s_%s%s%u", base, what, c->serial ? "_" : "", c->serial);
        c->serial++;
    } while (sqzc_find_tensor(c->g, buf) >= 0);
    return ex_str(c, buf);
}

/* ------------------------------------------------------------ tensors */

static Onnx__TensorProto *tensor_proto(ex_ctx *c, const char *name, int32_t dtype,
                                       const sqz_shape *s, const void *data, size_t elem) {
    Onnx__TensorProto *t = ex_alloc(c, sizeof *t);
    if (!t) return NULL;
    onnx__tensor_proto__init(t);
    t->name = ex_str(c, name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)(s->ndim > 0 ? s->ndim : 0);
    t->dims = ex_alloc(c, (t->n_dims + 1) * sizeof *t->dims);
    if (!t->name || !t->dims) return NULL;
    for (size_t i = 0; i < t->n_dims; i++) t->dims[i] = s->dims[i];
    int64_t n = sqz_shape_numel(s);
    size_t bytes = (size_t)(n > 0 ? n : 0) * elem;
    uint8_t *raw = ex_alloc(c, bytes);
    if (!raw) return NULL;
    /* raw_data is little-endian; the hosts sqz builds for are little-endian */
    if (bytes) memcpy(raw, data, bytes);
    t->has_raw_data = 1;
    t->raw_data.data = raw;
    t->raw_data.len = bytes;
    return t;
}

static int add_init(ex_ctx *c, Onnx__TensorProto *t) {
    if (!t) return -1;
    return push_ptr(c, (void ***)&c->inits, &c->n_inits, &c->cap_inits, t);
}

/* New initializer (int64 or float 1-D / scalar); returns its name. */
static char *const_i64(ex_ctx *c, const char *base, const char *what, const int64_t *v, int n) {
    char *name = fresh_name(c, base, what);
    if (!name) return NULL;
    sqz_shape s = {1, {n}};
    if (add_init(c, tensor_proto(c, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, &s, v,
                                 sizeof(int64_t))) != 0)
        return NULL;
    return name;
}

static char *const_f32(ex_ctx *c, const char *base, const char *what, const float *v, int n,
                       int scalar) {
    char *name = fresh_name(c, base, what);
    if (!name) return NULL;
    sqz_shape s = {scalar ? 0 : 1, {n}};
    if (add_init(c, tensor_proto(c, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &s, v,
                                 sizeof(float))) != 0)
        return NULL;
    return name;
}

/* ------------------------------------------------------------ nodes */

static Onnx__NodeProto *new_node(ex_ctx *c, const char *op_type, const char *name, size_t n_in,
                                 size_t n_out) {
    Onnx__NodeProto *n = ex_alloc(c, sizeof *n);
    if (!n) return NULL;
    onnx__node_proto__init(n);
    n->op_type = ex_str(c, op_type);
    n->name = ex_str(c, name);
    n->input = ex_alloc(c, (n_in + 1) * sizeof *n->input);
    n->output = ex_alloc(c, (n_out + 1) * sizeof *n->output);
    n->attribute = ex_alloc(c, 32 * sizeof *n->attribute);
    if (!n->op_type || !n->name || !n->input || !n->output || !n->attribute) return NULL;
    n->n_input = n_in;
    n->n_output = n_out;
    for (size_t i = 0; i < n_in; i++) n->input[i] = "";
    if (push_ptr(c, (void ***)&c->nodes, &c->n_nodes, &c->cap_nodes, n) != 0) return NULL;
    return n;
}

static Onnx__AttributeProto *new_attr(ex_ctx *c, Onnx__NodeProto *n, const char *name) {
    if (n->n_attribute >= 32) {
        ex_fail(c, "node '%s': too many attributes", n->name);
        return NULL;
    }
    Onnx__AttributeProto *a = ex_alloc(c, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = ex_str(c, name);
    a->has_type = 1;
    n->attribute[n->n_attribute++] = a;
    return a->name ? a : NULL;
}

static int attr_float(ex_ctx *c, Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = new_attr(c, n, name);
    if (!a) return -1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = v;
    return 0;
}

static int copy_attr(ex_ctx *c, Onnx__NodeProto *n, const sqz_attr *s) {
    Onnx__AttributeProto *a = new_attr(c, n, s->name);
    if (!a) return -1;
    switch (s->type) {
    case SQZ_ATTR_INT:
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        a->has_i = 1;
        a->i = s->ints ? s->ints[0] : 0;
        break;
    case SQZ_ATTR_FLOAT:
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        a->has_f = 1;
        a->f = s->floats ? s->floats[0] : 0;
        break;
    case SQZ_ATTR_INTS:
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        a->n_ints = s->count;
        a->ints = ex_alloc(c, (s->count + 1) * sizeof *a->ints);
        if (!a->ints) return -1;
        if (s->count) memcpy(a->ints, s->ints, s->count * sizeof *a->ints);
        break;
    case SQZ_ATTR_FLOATS:
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
        a->n_floats = s->count;
        a->floats = ex_alloc(c, (s->count + 1) * sizeof *a->floats);
        if (!a->floats) return -1;
        if (s->count) memcpy(a->floats, s->floats, s->count * sizeof *a->floats);
        break;
    case SQZ_ATTR_STRING: {
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
        char *v = ex_str(c, s->str ? s->str : "");
        if (!v) return -1;
        a->has_s = 1;
        a->s.data = (uint8_t *)v;
        a->s.len = strlen(v);
        break;
    }
    default:
        return ex_fail(c, "node '%s': attribute '%s' has an unknown type", n->name, s->name);
    }
    return 0;
}

/* Attributes the IR holds that ONNX 14 takes as inputs, per op. */
typedef struct param_in {
    const char *attr;
    int slot; /* input index */
    int kind; /* 0: int64 1-D, 1: float scalar, 2: float 1-D */
} param_in;

static int params_of(int op, param_in *p) {
    int k = 0;
    switch (op) {
    case SQZ_OP_RESHAPE:
        p[k++] = (param_in){"shape", 1, 0};
        break;
    case SQZ_OP_SLICE:
        p[k++] = (param_in){"starts", 1, 0};
        p[k++] = (param_in){"ends", 2, 0};
        p[k++] = (param_in){"axes", 3, 0};
        p[k++] = (param_in){"steps", 4, 0};
        break;
    case SQZ_OP_PAD:
        p[k++] = (param_in){"pads", 1, 0};
        p[k++] = (param_in){"value", 2, 1};
        break;
    case SQZ_OP_RESIZE:
        p[k++] = (param_in){"roi", 1, 2};
        p[k++] = (param_in){"scales", 2, 2};
        p[k++] = (param_in){"sizes", 3, 0};
        break;
    case SQZ_OP_SPLIT:
        p[k++] = (param_in){"split", 1, 0};
        break;
    case SQZ_OP_SQUEEZE:
    case SQZ_OP_UNSQUEEZE:
        p[k++] = (param_in){"axes", 1, 0};
        break;
    case SQZ_OP_CLIP:
        p[k++] = (param_in){"min", 1, 1};
        p[k++] = (param_in){"max", 2, 1};
        break;
    default:
        break;
    }
    return k;
}

static const char *tname(ex_ctx *c, int t) {
    return t >= 0 ? c->g->tensors[t].name : "";
}

/* Activation node act(x) -> y (names). */
static int emit_act(ex_ctx *c, const char *node, int act, float alpha, float beta, char *x,
                    char *y) {
    static const char *const kOps[] = {"",          "Relu",    "Clip",        "LeakyRelu",
                                       "HardSwish", "Sigmoid", "HardSigmoid", "Tanh"};
    if (act <= 0 || act >= 8)
        return ex_fail(c, "node '%s': unknown fused activation %d", node, act);
    char nm[512];
    snprintf(nm, sizeof nm, "%s_%s", node, kOps[act]);
    Onnx__NodeProto *n = new_node(c, kOps[act], nm, act == SQZ_ACT_CLIP ? 3 : 1, 1);
    if (!n) return -1;
    n->input[0] = x;
    n->output[0] = y;
    if (act == SQZ_ACT_CLIP) {
        n->input[1] = isinf(alpha) ? "" : const_f32(c, node, "clip_min", &alpha, 1, 1);
        n->input[2] = isinf(beta) ? "" : const_f32(c, node, "clip_max", &beta, 1, 1);
        if (!n->input[1] || !n->input[2]) return -1;
    } else if (act == SQZ_ACT_LEAKY_RELU) {
        return attr_float(c, n, "alpha", alpha);
    } else if (act == SQZ_ACT_HARD_SIGMOID) {
        if (attr_float(c, n, "alpha", alpha) || attr_float(c, n, "beta", beta)) return -1;
    }
    return 0;
}

static int export_node(ex_ctx *c, int ni) {
    const sqzc_graph *g = c->g;
    const sqzc_node *sn = &g->nodes[ni];
    sqz_node v;
    sqzc_node_view(g, ni, &v);
    const char *op_type = sqz_op_name(sn->op);
    if (!op_type) return ex_fail(c, "node '%s': unknown op id %d", sn->name, sn->op);
    if (sn->op == SQZ_OP_IDENTITY) op_type = "Identity";
    param_in p[4];
    int np = params_of(sn->op, p);
    size_t n_in = sn->n_in;
    int act = (int)sqz_attr_int(&v, "sqz_act", 0);
    for (int k = 0; k < np; k++)
        if (sqz_node_attr(&v, p[k].attr) && (size_t)p[k].slot + 1 > n_in)
            n_in = (size_t)p[k].slot + 1;
    if (np > 0 && sn->n_in > 1)
        return ex_fail(c, "node '%s' (%s): parameter inputs should have been folded", sn->name,
                       op_type);
    Onnx__NodeProto *n = new_node(c, op_type, sn->name, n_in, sn->n_out);
    if (!n) return -1;
    for (uint32_t k = 0; k < sn->n_in; k++) n->input[k] = (char *)tname(c, sn->in[k]);
    for (uint32_t k = 0; k < sn->n_out; k++) n->output[k] = (char *)tname(c, sn->out[k]);
    /* trailing absent inputs are dropped */
    while (n->n_input > 0 && n->input[n->n_input - 1][0] == '\0') n->n_input--;
    for (int k = 0; k < np; k++) {
        const sqz_attr *a = sqz_node_attr(&v, p[k].attr);
        if (!a) continue;
        char *name = NULL;
        if (p[k].kind == 0) {
            const int64_t *vals;
            int cnt = sqz_attr_ints(&v, p[k].attr, &vals);
            name = const_i64(c, sn->name, p[k].attr, vals, cnt < 0 ? 0 : cnt);
        } else if (p[k].kind == 1) {
            float f = sqz_attr_float(&v, p[k].attr, 0);
            if (sn->op == SQZ_OP_CLIP && isinf(f)) continue; /* unbounded */
            name = const_f32(c, sn->name, p[k].attr, &f, 1, 1);
        } else {
            const float *vals;
            int cnt = sqz_attr_floats(&v, p[k].attr, &vals);
            name = const_f32(c, sn->name, p[k].attr, vals, cnt < 0 ? 0 : cnt, 0);
        }
        if (!name) return -1;
        n->input[p[k].slot] = name;
        if ((size_t)p[k].slot + 1 > n->n_input) n->n_input = (size_t)p[k].slot + 1;
    }
    for (uint32_t k = 0; k < sn->n_attr; k++) {
        const sqz_attr *a = &sn->attrs[k];
        int skip = strncmp(a->name, "sqz_", 4) == 0;
        for (int j = 0; j < np && !skip; j++) skip = strcmp(a->name, p[j].attr) == 0;
        if (sn->op == SQZ_OP_SOFTMAX && strcmp(a->name, "legacy") == 0) {
            int nd = g->tensors[sn->in[0]].shape.ndim;
            int64_t ax = sqz_attr_int(&v, "axis", 1);
            if (a->ints && a->ints[0] && !(ax == -1 || ax == nd - 1))
                return ex_fail(c,
                               "node '%s': opset<13 Softmax over a non-last axis cannot be "
                               "written in opset %d",
                               sn->name, EXPORT_OPSET);
            skip = 1;
        }
        if (sn->op == SQZ_OP_REDUCE_MEAN && strcmp(a->name, "noop_with_empty_axes") == 0) {
            if (a->ints && a->ints[0])
                return ex_fail(c, "node '%s': noop_with_empty_axes needs opset 18", sn->name);
            skip = 1;
        }
        if (sn->op == SQZ_OP_SPLIT && strcmp(a->name, "num_outputs") == 0) skip = 1;
        if ((sn->op == SQZ_OP_PAD || sn->op == SQZ_OP_RESIZE) &&
            (strcmp(a->name, "axes") == 0 || strcmp(a->name, "keep_aspect_ratio_policy") == 0))
            return ex_fail(c, "node '%s' (%s): attribute '%s' needs opset 18", sn->name, op_type,
                           a->name);
        if (skip) continue;
        if (copy_attr(c, n, a) != 0) return -1;
    }
    if (act != SQZ_ACT_NONE) {
        if (sn->n_out != 1)
            return ex_fail(c, "node '%s': fused activation on several outputs", sn->name);
        char *pre = fresh_name(c, tname(c, sn->out[0]), "preact");
        if (!pre) return -1;
        n->output[0] = pre;
        if (emit_act(c, sn->name, act, sqz_attr_float(&v, "sqz_act_alpha", 0),
                     sqz_attr_float(&v, "sqz_act_beta", 0), pre, (char *)tname(c, sn->out[0])) != 0)
            return -1;
    }
    return 0;
}

static Onnx__ValueInfoProto *value_info(ex_ctx *c, int t, int dyn_batch) {
    const sqzc_tensor *x = &c->g->tensors[t];
    Onnx__ValueInfoProto *vi = ex_alloc(c, sizeof *vi);
    Onnx__TypeProto *tp = ex_alloc(c, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ex_alloc(c, sizeof *tt);
    Onnx__TensorShapeProto *sp = ex_alloc(c, sizeof *sp);
    if (!vi || !tp || !tt || !sp) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    vi->name = ex_str(c, x->name);
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    if (x->has_shape) {
        tt->shape = sp;
        sp->n_dim = (size_t)x->shape.ndim;
        sp->dim = ex_alloc(c, (sp->n_dim + 1) * sizeof *sp->dim);
        if (!sp->dim) return NULL;
        for (size_t i = 0; i < sp->n_dim; i++) {
            Onnx__TensorShapeProto__Dimension *d = ex_alloc(c, sizeof *d);
            if (!d) return NULL;
            onnx__tensor_shape_proto__dimension__init(d);
            if (i == 0 && dyn_batch) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = ex_str(c, "batch");
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = x->shape.dims[i];
            }
            sp->dim[i] = d;
        }
    }
    return vi->name ? vi : NULL;
}

int sqzc_onnx_serialize(const sqzc_graph *g, const sqzc_onnx_export_options *opts, uint8_t **buf,
                        size_t *size, char *err, size_t err_len) {
    *buf = NULL;
    *size = 0;
    sqzc_onnx_export_options dflt;
    memset(&dflt, 0, sizeof dflt);
    ex_ctx c;
    memset(&c, 0, sizeof c);
    c.g = g;
    c.o = opts ? opts : &dflt;
    c.err = err;
    c.err_len = err_len;
    int rc = -1;
    /* initializers: every float constant some node reads */
    for (int t = 0; t < g->n_tensors && !c.failed; t++) {
        const sqzc_tensor *x = &g->tensors[t];
        if (!x->f32 && !x->i64 && !x->i8 && !x->i32) continue;
        if (sqzc_consumer_count(g, t) == 0) continue;
        if (x->i64) {
            ex_fail(&c, "tensor '%s': int64 constant left in the graph", x->name);
            break;
        }
        if (x->i8 || x->i32) { /* quantized weights / biases (QDQ export, sqzc/quant.h) */
            add_init(&c, tensor_proto(&c, x->name,
                                      x->i8 ? ONNX__TENSOR_PROTO__DATA_TYPE__INT8
                                            : ONNX__TENSOR_PROTO__DATA_TYPE__INT32,
                                      &x->shape, x->i8 ? (const void *)x->i8 : (const void *)x->i32,
                                      x->i8 ? 1 : 4));
            continue;
        }
        add_init(&c, tensor_proto(&c, x->name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &x->shape,
                                  x->f32, sizeof(float)));
    }
    for (int i = 0; i < g->n_nodes && !c.failed; i++)
        if (g->nodes[i].op != SQZ_OP_INVALID) export_node(&c, i);
    Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *osp = &os;
    if (!c.failed) {
        gp.name = "sqz";
        gp.n_node = c.n_nodes;
        gp.node = c.nodes;
        gp.n_initializer = c.n_inits;
        gp.initializer = c.inits;
        gp.input = ex_alloc(&c, ((size_t)g->n_inputs + 1) * sizeof *gp.input);
        gp.output = ex_alloc(&c, ((size_t)g->n_outputs + 1) * sizeof *gp.output);
        if (gp.input && gp.output) {
            gp.n_input = (size_t)g->n_inputs;
            gp.n_output = (size_t)g->n_outputs;
            for (int i = 0; i < g->n_inputs; i++)
                gp.input[i] = value_info(&c, g->inputs[i], c.o->dynamic_batch);
            for (int i = 0; i < g->n_outputs; i++)
                gp.output[i] = value_info(&c, g->outputs[i], c.o->dynamic_batch);
        }
    }
    if (c.failed) goto done;
    for (size_t i = 0; i < gp.n_input; i++)
        if (!gp.input[i]) goto done;
    for (size_t i = 0; i < gp.n_output; i++)
        if (!gp.output[i]) goto done;
    os.domain = "";
    os.has_version = 1;
    os.version = EXPORT_OPSET;
    mp.has_ir_version = 1;
    mp.ir_version = 7; /* ONNX 1.8+, covers opset 14 */
    mp.n_opset_import = 1;
    mp.opset_import = &osp;
    mp.producer_name = (char *)(c.o->producer ? c.o->producer : "sqz");
    mp.graph = &gp;
    size_t n = onnx__model_proto__get_packed_size(&mp);
    uint8_t *out = malloc(n ? n : 1);
    if (!out) {
        ex_fail(&c, "out of memory");
        goto done;
    }
    onnx__model_proto__pack(&mp, out);
    *buf = out;
    *size = n;
    rc = 0;
done:
    if (c.failed && !err[0]) snprintf(err, err_len, "out of memory");
    for (size_t i = 0; i < c.n_allocs; i++) free(c.allocs[i]);
    free(c.allocs);
    free(c.nodes);
    free(c.inits);
    return rc;
}

int sqzc_write_onnx(const sqzc_graph *g, const sqzc_onnx_export_options *opts, const char *path,
                    char *err, size_t err_len) {
    uint8_t *buf = NULL;
    size_t size = 0;
    if (err_len) err[0] = '\0';
    if (sqzc_onnx_serialize(g, opts, &buf, &size, err, err_len) != 0) return -1;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) {
        free(buf);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, err_len, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(tmp);
        free(buf);
        return -1;
    }
    int ok = 1;
    size_t off = 0;
    while (ok && off < size) {
        ssize_t w = write(fd, buf + off, size - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            ok = 0;
        else
            off += (size_t)w;
    }
    if (ok) fchmod(fd, 0644);
    if (close(fd) != 0) ok = 0;
    if (!ok) snprintf(err, err_len, "%s: write failed: %s", path, strerror(errno));
    if (ok && rename(tmp, path) != 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        ok = 0;
    }
    if (!ok) unlink(tmp);
    free(tmp);
    free(buf);
    return ok ? 0 : -1;
}
