/* onnx_lower.c - lowers one ONNX node to an sqz IR node: copies attributes,
 * turns constant parameter inputs into attributes (ops.h rule), rewrites
 * Dropout / Upsample / float Cast, then infers output shapes with the
 * runtime's reference kernel and folds the node when all inputs are constant. */
#include "onnx_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct low {
    ox_ctx *c;
    const Onnx__NodeProto *n;
    const char *label;
    const char *op_type;
    const int32_t *in;
    const int32_t *out;
    int node; /* IR node index once added */
} low;

static int lfail(const low *l, const char *fmt, const char *a, const char *b) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    return ox_fail(l->c, "node '%s' (%s): %s", l->label, l->op_type, msg);
}

static const sqzc_tensor *tin(const low *l, uint32_t k) {
    if (k >= l->n->n_input || l->in[k] < 0) return NULL;
    return &l->c->g->tensors[l->in[k]];
}

/* ------------------------------------------------ parameter inputs -> attrs */

enum { P_INTS, P_FLOATS, P_FLOAT };

typedef struct param {
    uint32_t input;
    const char *attr;
    int kind;
    int empty_is_absent; /* an empty tensor means "not given" (Resize scales / sizes) */
} param;

/* Set attribute p from constant input; 0 ok (or absent), -1 error. */
static int param_to_attr(low *l, const param *p) {
    const sqzc_tensor *t = tin(l, p->input);
    if (!t) return 0;
    const char *iname = l->n->input[p->input];
    if (!t->f32 && !t->i64)
        return lfail(l, "input '%s' (%s) must be a constant (it sets a parameter)", iname, p->attr);
    int64_t n = ox_numel(&t->shape);
    if (n < 0 || n > 4096) return lfail(l, "input '%s' (%s) is too large", iname, p->attr);
    if (n == 0 && p->empty_is_absent) return 0;
    int rc = 0;
    if (p->kind == P_INTS) {
        if (!t->i64) return lfail(l, "input '%s' (%s) must be an integer tensor", iname, p->attr);
        rc = sqzc_node_set_ints(l->c->g, l->node, p->attr, t->i64, (uint32_t)n);
    } else {
        float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
        if (!f) return ox_fail(l->c, "out of memory");
        for (int64_t i = 0; i < n; i++) f[i] = t->f32 ? t->f32[i] : (float)t->i64[i];
        if (p->kind == P_FLOAT) {
            if (n != 1) {
                free(f);
                return lfail(l, "input '%s' (%s) must be a scalar", iname, p->attr);
            }
            rc = sqzc_node_set_float(l->c->g, l->node, p->attr, f[0]);
        } else {
            rc = sqzc_node_set_floats(l->c->g, l->node, p->attr, f, (uint32_t)n);
        }
        free(f);
    }
    return rc ? ox_fail(l->c, "out of memory") : 0;
}

/* Parameter inputs of op at the model's opset; returns the count. */
static int params_of(const low *l, int op, param *p) {
    int opset = l->c->opset, k = 0;
    switch (op) {
    case SQZ_OP_RESHAPE:
        p[k++] = (param){1, "shape", P_INTS, 0};
        break;
    case SQZ_OP_SLICE:
        if (opset >= 10) {
            p[k++] = (param){1, "starts", P_INTS, 0};
            p[k++] = (param){2, "ends", P_INTS, 0};
            p[k++] = (param){3, "axes", P_INTS, 0};
            p[k++] = (param){4, "steps", P_INTS, 0};
        }
        break;
    case SQZ_OP_PAD:
        if (opset >= 11) {
            p[k++] = (param){1, "pads", P_INTS, 0};
            p[k++] = (param){2, "value", P_FLOAT, 0};
            p[k++] = (param){3, "axes", P_INTS, 0};
        }
        break;
    case SQZ_OP_RESIZE:
        if (opset < 11) {
            p[k++] = (param){1, "scales", P_FLOATS, 1};
        } else {
            const Onnx__AttributeProto *a = ox_attr(l->n, "coordinate_transformation_mode");
            if (a && a->has_s && a->s.len == 18 && memcmp(a->s.data, "tf_crop_and_resize", 18) == 0)
                p[k++] = (param){1, "roi", P_FLOATS, 1};
            p[k++] = (param){2, "scales", P_FLOATS, 1};
            p[k++] = (param){3, "sizes", P_INTS, 1};
        }
        break;
    case SQZ_OP_SPLIT:
        if (opset >= 13) p[k++] = (param){1, "split", P_INTS, 0};
        break;
    case SQZ_OP_SQUEEZE:
    case SQZ_OP_UNSQUEEZE:
        if (opset >= 13) p[k++] = (param){1, "axes", P_INTS, 0};
        break;
    case SQZ_OP_REDUCE_MEAN:
        if (opset >= 18) p[k++] = (param){1, "axes", P_INTS, 0};
        break;
    case SQZ_OP_CLIP:
        if (opset >= 11) {
            p[k++] = (param){1, "min", P_FLOAT, 0};
            p[k++] = (param){2, "max", P_FLOAT, 0};
        }
        break;
    default:
        break;
    }
    return k;
}

/* Resize-style op: which inputs are data (kept as tensors)? */
static int kept_input_count(const low *l, int op, int n_params) {
    if (n_params > 0) return 1; /* every op with parameter inputs has one data input */
    if (op == SQZ_OP_RESIZE) return 1;
    return (int)l->n->n_input;
}

/* ------------------------------------------------ attributes */

static int copy_attr(low *l, const Onnx__AttributeProto *a) {
    sqzc_graph *g = l->c->g;
    const char *name = ox_s(a->name);
    int rc = 0;
    switch (ox_attr_type(a)) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        rc = sqzc_node_set_float(g, l->node, name, a->f);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        rc = sqzc_node_set_int(g, l->node, name, a->i);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        if (a->n_floats > UINT32_MAX) return lfail(l, "attribute '%s' too long", name, NULL);
        rc = sqzc_node_set_floats(g, l->node, name, a->floats, (uint32_t)a->n_floats);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        if (a->n_ints > UINT32_MAX) return lfail(l, "attribute '%s' too long", name, NULL);
        rc = sqzc_node_set_ints(g, l->node, name, a->ints, (uint32_t)a->n_ints);
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: {
        if (a->s.len > 4096 || (a->s.len && memchr(a->s.data, 0, a->s.len)))
            return lfail(l, "attribute '%s' is not a valid string", name, NULL);
        char *s = malloc(a->s.len + 1);
        if (!s) return ox_fail(l->c, "out of memory");
        if (a->s.len) memcpy(s, a->s.data, a->s.len);
        s[a->s.len] = 0;
        rc = sqzc_node_set_str(g, l->node, name, s);
        free(s);
        break;
    }
    default:
        return lfail(l, "attribute '%s' has a type the importer does not support", name, NULL);
    }
    return rc ? ox_fail(l->c, "out of memory") : 0;
}

static int copy_attrs(low *l, int op) {
    for (size_t i = 0; i < l->n->n_attribute; i++) {
        const Onnx__AttributeProto *a = l->n->attribute[i];
        const char *name = ox_s(a->name);
        if (!name[0]) return lfail(l, "attribute without a name", NULL, NULL);
        if (op == SQZ_OP_BATCHNORM) {
            /* training-only attributes: momentum is unused in inference */
            if (strcmp(name, "momentum") == 0) continue;
            if (strcmp(name, "spatial") == 0 || strcmp(name, "training_mode") == 0) {
                int64_t want = strcmp(name, "spatial") == 0 ? 1 : 0;
                if (ox_attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT || a->i != want)
                    return lfail(l, "attribute %s=%s is not supported (inference only)", name,
                                 want ? "0" : "1");
                continue;
            }
        }
        if (copy_attr(l, a) != 0) return -1;
    }
    if (op == SQZ_OP_SOFTMAX && l->c->opset < 13) {
        if (sqzc_node_set_int(l->c->g, l->node, "legacy", 1) != 0 ||
            (!ox_attr(l->n, "axis") && sqzc_node_set_int(l->c->g, l->node, "axis", 1) != 0))
            return ox_fail(l->c, "out of memory");
    }
    if (op == SQZ_OP_RESIZE && l->c->opset < 11) {
        /* Resize-10 computes coordinates as x_out / scale (asymmetric) */
        if (sqzc_node_set_str(l->c->g, l->node, "coordinate_transformation_mode", "asymmetric") ||
            sqzc_node_set_str(l->c->g, l->node, "nearest_mode", "floor"))
            return ox_fail(l->c, "out of memory");
    }
    return 0;
}

/* ------------------------------------------------ shape inference / folding */

/* Float copy of an int64 constant, for real ops fed by integer constants. */
static int float_copy(low *l, int32_t t, int32_t *res) {
    sqzc_graph *g = l->c->g;
    char base[300];
    snprintf(base, sizeof base, "%s_f32", g->tensors[t].name);
    int k = sqzc_tensor_add_unique(g, base);
    if (k < 0) return ox_fail(l->c, "out of memory");
    const sqzc_tensor *src = &g->tensors[t];
    int64_t n = ox_numel(&src->shape);
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    if (!f) return ox_fail(l->c, "out of memory");
    for (int64_t i = 0; i < n; i++) f[i] = (float)src->i64[i];
    sqz_shape s = src->shape;
    int rc = sqzc_tensor_set_f32(g, k, &s, f);
    free(f);
    if (rc) return ox_fail(l->c, "out of memory");
    *res = k;
    return 0;
}

static int infer_and_fold(low *l, const int32_t *ins, uint32_t n_in, const int32_t *outs,
                          uint32_t n_out) {
    sqzc_graph *g = l->c->g;
    const sqz_op_impl *impl = sqz_ref_op(g->nodes[l->node].op);
    if (!impl || !impl->prepare) return lfail(l, "no reference kernel for this op", NULL, NULL);
    sqz_shape *ish = calloc(n_in ? n_in : 1, sizeof *ish);
    const float **idata = calloc(n_in ? n_in : 1, sizeof *idata);
    sqz_shape *osh = calloc(n_out, sizeof *osh);
    float **odata = calloc(n_out, sizeof *odata);
    void *scratch = NULL;
    int rc = -1, all_const = n_in > 0;
    if (!ish || !idata || !osh || !odata) {
        ox_fail(l->c, "out of memory");
        goto done;
    }
    for (uint32_t k = 0; k < n_in; k++) {
        if (ins[k] < 0) {
            ish[k].ndim = -1;
            continue;
        }
        const sqzc_tensor *t = &g->tensors[ins[k]];
        ish[k] = t->shape;
        idata[k] = t->f32;
        if (!t->f32) all_const = 0;
    }
    sqz_node view;
    sqzc_node_view(g, l->node, &view);
    char kerr[400] = "";
    sqz_op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.node = &view;
    ctx.n_in = n_in;
    ctx.n_out = n_out;
    ctx.in_shape = ish;
    ctx.in_data = idata;
    ctx.out_shape = osh;
    ctx.num_threads = 1;
    ctx.err = kerr;
    ctx.err_len = sizeof kerr;
    if (impl->prepare(&ctx) != 0) {
        ox_fail(l->c, "node '%s' (%s): %s", l->label, l->op_type,
                kerr[0] ? kerr : "shape inference failed");
        goto release;
    }
    for (uint32_t k = 0; k < n_out; k++) {
        int64_t n = ox_numel(&osh[k]);
        if (n < 0) {
            ox_fail(l->c, "node '%s' (%s): kernel returned an invalid output shape", l->label,
                    l->op_type);
            goto release;
        }
        if (all_const && n > OX_MAX_CONST_ELEMS) all_const = 0; /* keep the node */
    }
    if (all_const) {
        for (uint32_t k = 0; k < n_out; k++) {
            int64_t n = ox_numel(&osh[k]);
            odata[k] = malloc((size_t)(n ? n : 1) * sizeof(float));
            if (!odata[k]) {
                ox_fail(l->c, "out of memory");
                goto release;
            }
        }
        if (ctx.scratch_bytes) {
            size_t sb = (ctx.scratch_bytes + 63) & ~(size_t)63;
            scratch = aligned_alloc(64, sb);
            if (!scratch) {
                ox_fail(l->c, "out of memory");
                goto release;
            }
        }
        ctx.out_data = odata;
        ctx.scratch = scratch;
        impl->run(&ctx);
        for (uint32_t k = 0; k < n_out; k++) {
            if (sqzc_tensor_set_f32(g, outs[k], &osh[k], odata[k]) != 0) {
                ox_fail(l->c, "out of memory");
                goto release;
            }
        }
        g->nodes[l->node].op = SQZ_OP_INVALID; /* folded; dropped by compaction */
    } else {
        for (uint32_t k = 0; k < n_out; k++) {
            sqzc_tensor *t = &g->tensors[outs[k]];
            t->dtype = SQZC_F32;
            t->has_shape = 1;
            t->shape = osh[k];
        }
    }
    rc = 0;
release:
    if (impl->release && ctx.params) impl->release(ctx.params);
done:
    if (odata)
        for (uint32_t k = 0; k < n_out; k++) free(odata[k]);
    free(ish);
    free(idata);
    free(osh);
    free(odata);
    free(scratch);
    return rc;
}

/* ------------------------------------------------ lowering */

static const char *first_nonconst_input(const low *l) {
    for (uint32_t k = 0; k < l->n->n_input; k++)
        if (l->in[k] >= 0 && !sqzc_tensor_is_const(l->c->g, l->in[k])) return l->n->input[k];
    return NULL;
}

int ox_lower_node(ox_ctx *c, const Onnx__NodeProto *n, const char *label, const int32_t *in,
                  const int32_t *out) {
    low l = {c, n, label, ox_s(n->op_type), in, out, -1};
    const char *opn = l.op_type;
    int op = sqz_op_from_name(opn);
    int rewrite = 0; /* Dropout / Cast -> Identity, Upsample -> Resize */
    if (strcmp(opn, "Dropout") == 0) {
        op = SQZ_OP_IDENTITY;
        rewrite = 1;
    } else if (strcmp(opn, "Cast") == 0) {
        const Onnx__AttributeProto *a = ox_attr(n, "to");
        const sqzc_tensor *x = tin(&l, 0);
        if (a && ox_dtype_class((int)a->i) == 1 && x && x->dtype == SQZC_F32) {
            op = SQZ_OP_IDENTITY; /* float -> float: precision changes are ignored */
            rewrite = 1;
        }
    } else if (strcmp(opn, "Upsample") == 0) {
        op = SQZ_OP_RESIZE;
        rewrite = 2;
    }
    if (op == SQZ_OP_INVALID) {
        /* an import-only op that could not be evaluated */
        const char *nc = first_nonconst_input(&l);
        char reason[300];
        snprintf(reason, sizeof reason, "input '%s' is not constant", nc ? nc : "?");
        return ox_unsupported(c, label, opn, reason) != 0 ? -1 : 1;
    }
    /* outputs: drop trailing absent ones; extra outputs are refused */
    uint32_t n_out = (uint32_t)n->n_output;
    while (n_out > 0 && out[n_out - 1] < 0) n_out--;
    if (rewrite == 1) {
        if (n_out > 1)
            return lfail(&l, "the mask output is not supported (inference only)", NULL, NULL);
        /* Dropout-12+: input 2 training_mode; training drops at random, which
         * an inference runtime must not pretend to do as Identity */
        const sqzc_tensor *tm = strcmp(opn, "Dropout") == 0 ? tin(&l, 2) : NULL;
        if (tm) {
            int on = 1; /* a non-constant training_mode cannot be proven off */
            if (tm->i64 && sqz_shape_numel(&tm->shape) >= 1) on = tm->i64[0] != 0;
            if (tm->f32 && sqz_shape_numel(&tm->shape) >= 1) on = tm->f32[0] != 0.0f;
            if (on)
                return lfail(&l, "training_mode=true is not supported (inference only)", NULL,
                             NULL);
        }
    }
    if (n_out == 0) return lfail(&l, "no outputs", NULL, NULL);
    for (uint32_t k = 0; k < n_out; k++)
        if (out[k] < 0)
            return lfail(&l, "an optional output in the middle is not supported", NULL, NULL);
    if ((op == SQZ_OP_BATCHNORM || op == SQZ_OP_MAXPOOL) && n_out > 1)
        return lfail(&l, "extra outputs (%s) are not supported (inference only)",
                     op == SQZ_OP_BATCHNORM ? "running statistics" : "indices", NULL);

    /* inputs: data inputs stay tensors, parameter inputs become attributes */
    param params[8];
    int np = rewrite ? 0 : params_of(&l, op, params);
    uint32_t n_keep = rewrite ? 1 : (uint32_t)kept_input_count(&l, op, np);
    if (n_keep > n->n_input) n_keep = (uint32_t)n->n_input;
    while (n_keep > 0 && in[n_keep - 1] < 0) n_keep--;
    int32_t *keep = malloc((n_keep ? n_keep : 1) * sizeof *keep);
    if (!keep) return ox_fail(c, "out of memory");
    int rc = -1;
    for (uint32_t k = 0; k < n_keep; k++) {
        keep[k] = in[k];
        if (in[k] < 0) continue;
        const sqzc_tensor *t = &c->g->tensors[in[k]];
        if (!t->has_shape) {
            lfail(&l, "input '%s' has no known value or shape", n->input[k], NULL);
            goto done;
        }
        int is_i64_const = t->i64 != NULL, is_i64 = t->dtype == SQZC_I64;
        if (is_i64_const && float_copy(&l, in[k], &keep[k]) != 0) goto done;
        if (!is_i64_const && is_i64) {
            lfail(&l, "input '%s' is an integer tensor", n->input[k], NULL);
            goto done;
        }
    }
    const char *nname = n->name && n->name[0] ? n->name : n->output[0];
    l.node = sqzc_add_node(c->g, op, nname, n_keep, keep, n_out, out);
    if (l.node < 0) {
        ox_fail(c, "out of memory");
        goto done;
    }
    for (int i = 0; i < np; i++)
        if (param_to_attr(&l, &params[i]) != 0) goto done;
    if (rewrite == 2) {
        /* Upsample -> Resize(asymmetric); scales from attribute (7) or input (9) */
        const Onnx__AttributeProto *mode = ox_attr(n, "mode");
        char m[16] = "nearest";
        if (mode && mode->has_s && mode->s.len > 0 && mode->s.len < sizeof m) {
            memcpy(m, mode->s.data, mode->s.len);
            m[mode->s.len] = 0;
        }
        if (strcmp(m, "bilinear") == 0) snprintf(m, sizeof m, "linear");
        if (strcmp(m, "nearest") != 0 && strcmp(m, "linear") != 0) {
            lfail(&l, "mode '%s' is not supported", m, NULL);
            goto done;
        }
        const Onnx__AttributeProto *sc = ox_attr(n, "scales");
        int e = 0;
        if (sc && sc->n_floats) {
            e = sqzc_node_set_floats(c->g, l.node, "scales", sc->floats, (uint32_t)sc->n_floats);
        } else {
            param p = {1, "scales", P_FLOATS, 0};
            if (!tin(&l, 1)) {
                lfail(&l, "scales missing", NULL, NULL);
                goto done;
            }
            if (param_to_attr(&l, &p) != 0) goto done;
        }
        e = e || sqzc_node_set_str(c->g, l.node, "mode", m) ||
            sqzc_node_set_str(c->g, l.node, "coordinate_transformation_mode", "asymmetric");
        if (!e && strcmp(m, "nearest") == 0)
            e = sqzc_node_set_str(c->g, l.node, "nearest_mode", "floor");
        if (e) {
            ox_fail(c, "out of memory");
            goto done;
        }
    } else if (!rewrite) {
        if (copy_attrs(&l, op) != 0) goto done;
    }
    rc = infer_and_fold(&l, keep, n_keep, out, n_out);
done:
    free(keep);
    return rc;
}
