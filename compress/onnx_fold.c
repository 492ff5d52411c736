/* onnx_fold.c - evaluates import-only ops (Shape, Gather, Cast, Where,
 * ConstantOfShape, Range, Expand, ...) and integer / data-movement ops on
 * constant inputs, so that shape-computation sub-graphs disappear at import.
 * Float arithmetic is left to the runtime's reference kernels (onnx_lower.c). */
#include "onnx_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ attributes */

const Onnx__AttributeProto *ox_attr(const Onnx__NodeProto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(ox_s(n->attribute[i]->name), name) == 0) return n->attribute[i];
    return NULL;
}

int ox_attr_type(const Onnx__AttributeProto *a) {
    if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
        return (int)a->type;
    if (a->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (a->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (a->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (a->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (a->g) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
    if (a->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    if (a->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (a->n_strings) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

int64_t ox_attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt) {
    const Onnx__AttributeProto *a = ox_attr(n, name);
    if (!a || ox_attr_type(a) != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) return dflt;
    return a->i;
}

/* ------------------------------------------------------------ values */

typedef struct fold {
    ox_ctx *c;
    const Onnx__NodeProto *n;
    const char *label;
    const int32_t *in;
    const int32_t *out;
} fold;

static int ffail(const fold *f, const char *msg) {
    return ox_fail(f->c, "node '%s' (%s): %s", f->label, ox_s(f->n->op_type), msg);
}

static size_t esize(int dtype) {
    return dtype == SQZC_I64 ? sizeof(int64_t) : sizeof(float);
}

static void *vdata(const ox_val *v) {
    return v->dtype == SQZC_I64 ? (void *)v->i64 : (void *)v->f32;
}

/* Allocate v for shape s and dtype. */
static int val_alloc(const fold *f, ox_val *v, int dtype, const sqz_shape *s) {
    memset(v, 0, sizeof *v);
    int64_t n = ox_numel(s);
    if (n < 0 || n > OX_MAX_CONST_ELEMS) return ffail(f, "constant result too large");
    v->dtype = dtype;
    v->shape = *s;
    size_t bytes = (size_t)(n ? n : 1) * esize(dtype);
    void *p = malloc(bytes);
    if (!p) return ffail(f, "out of memory");
    if (dtype == SQZC_I64)
        v->i64 = p;
    else
        v->f32 = p;
    return 0;
}

/* Input k as a (borrowed) value; NULL when absent or not constant. */
static int input_val(const fold *f, uint32_t k, ox_val *v) {
    if (k >= f->n->n_input || f->in[k] < 0) return -1;
    const sqzc_tensor *t = &f->c->g->tensors[f->in[k]];
    if (!t->f32 && !t->i64) return -1;
    v->dtype = t->i64 ? SQZC_I64 : SQZC_F32;
    v->shape = t->shape;
    v->f32 = t->f32;
    v->i64 = t->i64;
    return 0;
}

static int emit(const fold *f, uint32_t k, ox_val *v) {
    int rc = 0;
    if (k < f->n->n_output && f->out[k] >= 0 && ox_store(f->c->g, f->out[k], v) != 0)
        rc = ffail(f, "out of memory");
    ox_val_free(v);
    return rc ? -1 : 1;
}

static double val_get_f(const ox_val *v, int64_t i) {
    return v->dtype == SQZC_I64 ? (double)v->i64[i] : (double)v->f32[i];
}

/* Integer list from a constant I64 value (any shape). */
static int val_ints(const fold *f, const ox_val *v, const char *what, int64_t **out, int *count) {
    if (v->dtype != SQZC_I64) {
        char msg[160];
        snprintf(msg, sizeof msg, "input '%s' must be an integer tensor", what);
        return ffail(f, msg);
    }
    int64_t n = ox_numel(&v->shape);
    if (n > 64) {
        char msg[160];
        snprintf(msg, sizeof msg, "input '%s' has too many values", what);
        return ffail(f, msg);
    }
    *out = v->i64;
    *count = (int)n;
    return 0;
}

static int norm_axis(int64_t a, int rank, int64_t *out) {
    if (a < -rank || a >= rank) return -1;
    *out = a < 0 ? a + rank : a;
    return 0;
}

/* ------------------------------------------------------------ broadcasting */

typedef struct bcast {
    sqz_shape out;
    int64_t st[3][SQZ_MAX_DIMS]; /* element strides per input, 0 on broadcast dims */
} bcast;

static int bcast_setup(const sqz_shape *const *s, int k, bcast *b) {
    int nd = 0;
    for (int i = 0; i < k; i++)
        if (s[i]->ndim > nd) nd = s[i]->ndim;
    b->out.ndim = nd;
    for (int d = 0; d < nd; d++) {
        int64_t dim = 1;
        for (int i = 0; i < k; i++) {
            int off = d - (nd - s[i]->ndim);
            int64_t x = off >= 0 ? s[i]->dims[off] : 1;
            if (x == 1) continue;
            if (dim != 1 && dim != x) return -1;
            dim = x;
        }
        b->out.dims[d] = dim;
    }
    for (int i = 0; i < k; i++) {
        int64_t st = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int off = d - (nd - s[i]->ndim);
            int64_t x = off >= 0 ? s[i]->dims[off] : 1;
            b->st[i][d] = x == 1 ? 0 : st;
            st *= x;
        }
    }
    return 0;
}

/* Advance the multi-index idx over b->out, updating the k input offsets. */
static void bcast_next(const bcast *b, int k, int64_t *idx, int64_t *off) {
    for (int d = b->out.ndim - 1; d >= 0; d--) {
        idx[d]++;
        for (int i = 0; i < k; i++) off[i] += b->st[i][d];
        if (idx[d] < b->out.dims[d]) return;
        for (int i = 0; i < k; i++) off[i] -= b->st[i][d] * idx[d];
        idx[d] = 0;
    }
}

/* ------------------------------------------------------------ ops */

static int fold_constant(const fold *f) {
    const Onnx__NodeProto *n = f->n;
    ox_val v;
    memset(&v, 0, sizeof v);
    const Onnx__AttributeProto *a;
    char msg[512];
    if ((a = ox_attr(n, "value")) != NULL) {
        if (!a->t) return ffail(f, "attribute 'value' is not a tensor");
        if (ox_tensor_decode(a->t, f->c->dir, f->c->path, &v, msg, sizeof msg) != 0)
            return ffail(f, msg);
        return emit(f, 0, &v);
    }
    sqz_shape s = {0, {0}};
    if ((a = ox_attr(n, "value_float")) != NULL || (a = ox_attr(n, "value_int")) != NULL) {
        int isf = strcmp(ox_s(a->name), "value_float") == 0;
        if (val_alloc(f, &v, isf ? SQZC_F32 : SQZC_I64, &s) != 0) return -1;
        if (isf)
            v.f32[0] = a->f;
        else
            v.i64[0] = a->i;
        return emit(f, 0, &v);
    }
    if ((a = ox_attr(n, "value_floats")) != NULL) {
        s.ndim = 1;
        s.dims[0] = (int64_t)a->n_floats;
        if (val_alloc(f, &v, SQZC_F32, &s) != 0) return -1;
        if (a->n_floats) memcpy(v.f32, a->floats, a->n_floats * sizeof(float));
        return emit(f, 0, &v);
    }
    if ((a = ox_attr(n, "value_ints")) != NULL) {
        s.ndim = 1;
        s.dims[0] = (int64_t)a->n_ints;
        if (val_alloc(f, &v, SQZC_I64, &s) != 0) return -1;
        if (a->n_ints) memcpy(v.i64, a->ints, a->n_ints * sizeof(int64_t));
        return emit(f, 0, &v);
    }
    return ffail(f, "no supported value attribute (value, value_float(s), value_int(s))");
}

static int fold_shape(const fold *f) {
    if (f->n->n_input < 1 || f->in[0] < 0) return ffail(f, "missing input");
    const sqzc_tensor *t = &f->c->g->tensors[f->in[0]];
    if (!t->has_shape) return ffail(f, "input shape unknown");
    int r = t->shape.ndim;
    int64_t start = ox_attr_int(f->n, "start", 0), end = ox_attr_int(f->n, "end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    if (start < 0) start = 0;
    if (start > r) start = r;
    if (end < 0) end = 0;
    if (end > r) end = r;
    sqz_shape s = {1, {end > start ? end - start : 0}};
    ox_val v;
    if (val_alloc(f, &v, SQZC_I64, &s) != 0) return -1;
    for (int64_t i = start; i < end; i++) v.i64[i - start] = t->shape.dims[i];
    return emit(f, 0, &v);
}

static int fold_size(const fold *f) {
    const sqzc_tensor *t = &f->c->g->tensors[f->in[0]];
    if (!t->has_shape) return ffail(f, "input shape unknown");
    sqz_shape s = {0, {0}};
    ox_val v;
    if (val_alloc(f, &v, SQZC_I64, &s) != 0) return -1;
    v.i64[0] = ox_numel(&t->shape);
    return emit(f, 0, &v);
}

static int fold_gather(const fold *f, const ox_val *d, const ox_val *ix) {
    if (ix->dtype != SQZC_I64) return ffail(f, "indices must be integers");
    int r = d->shape.ndim;
    int64_t axis;
    if (r < 1 || norm_axis(ox_attr_int(f->n, "axis", 0), r, &axis) != 0)
        return ffail(f, "axis out of range");
    if (r - 1 + ix->shape.ndim > SQZ_MAX_DIMS) return ffail(f, "result rank too large");
    sqz_shape s;
    s.ndim = 0;
    for (int i = 0; i < axis; i++) s.dims[s.ndim++] = d->shape.dims[i];
    for (int i = 0; i < ix->shape.ndim; i++) s.dims[s.ndim++] = ix->shape.dims[i];
    for (int i = (int)axis + 1; i < r; i++) s.dims[s.ndim++] = d->shape.dims[i];
    int64_t outer = 1, inner = 1, ad = d->shape.dims[axis];
    for (int i = 0; i < axis; i++) outer *= d->shape.dims[i];
    for (int i = (int)axis + 1; i < r; i++) inner *= d->shape.dims[i];
    int64_t ni = ox_numel(&ix->shape);
    ox_val v;
    if (val_alloc(f, &v, d->dtype, &s) != 0) return -1;
    size_t es = esize(d->dtype);
    unsigned char *dst = vdata(&v);
    const unsigned char *src = vdata(d);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t j = 0; j < ni; j++) {
            int64_t k = ix->i64[j];
            if (k < -ad || k >= ad) {
                ox_val_free(&v);
                return ffail(f, "index out of range");
            }
            if (k < 0) k += ad;
            memcpy(dst + (size_t)((o * ni + j) * inner) * es,
                   src + (size_t)((o * ad + k) * inner) * es, (size_t)inner * es);
        }
    }
    return emit(f, 0, &v);
}

static int is_float_dtype_onnx(int dt) {
    return ox_dtype_class(dt) == 1;
}

static int fold_cast(const fold *f, const ox_val *x, int to_float, int to_bool) {
    ox_val v;
    if (val_alloc(f, &v, to_float ? SQZC_F32 : SQZC_I64, &x->shape) != 0) return -1;
    int64_t n = ox_numel(&x->shape);
    for (int64_t i = 0; i < n; i++) {
        if (to_float) {
            v.f32[i] = (float)val_get_f(x, i);
        } else if (x->dtype == SQZC_I64) {
            v.i64[i] = to_bool ? x->i64[i] != 0 : x->i64[i];
        } else {
            double d = x->f32[i];
            if (to_bool) {
                v.i64[i] = d != 0;
                continue;
            }
            if (!(d > -9.2233720368547758e18 && d < 9.2233720368547758e18)) {
                ox_val_free(&v);
                return ffail(f, "float value out of integer range");
            }
            v.i64[i] = (int64_t)d;
        }
    }
    return emit(f, 0, &v);
}

static int fold_concat(const fold *f) {
    ox_val first = {0};
    int k0 = -1;
    for (uint32_t k = 0; k < f->n->n_input; k++) {
        if (input_val(f, k, &first) == 0) {
            k0 = (int)k;
            break;
        }
    }
    if (k0 < 0) return ffail(f, "no inputs");
    int r = first.shape.ndim;
    int64_t axis;
    if (r < 1 || norm_axis(ox_attr_int(f->n, "axis", 0), r, &axis) != 0)
        return ffail(f, "axis out of range");
    sqz_shape s = first.shape;
    s.dims[axis] = 0;
    for (uint32_t k = 0; k < f->n->n_input; k++) {
        ox_val x = {0};
        if (input_val(f, k, &x) != 0) continue;
        if (x.dtype != first.dtype) return ffail(f, "inputs have different types");
        if (x.shape.ndim != r) return ffail(f, "inputs have different ranks");
        const sqz_shape xs = x.shape; /* a copy keeps gcc -O3's uninitialized analysis quiet */
        for (int d = 0; d < r && d < SQZ_MAX_DIMS; d++)
            if (d != axis && xs.dims[d] != first.shape.dims[d])
                return ffail(f, "input shapes differ outside the axis");
        s.dims[axis] += x.shape.dims[axis];
    }
    ox_val v;
    if (val_alloc(f, &v, first.dtype, &s) != 0) return -1;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= s.dims[d];
    for (int d = (int)axis + 1; d < r; d++) inner *= s.dims[d];
    size_t es = esize(first.dtype);
    unsigned char *dst = vdata(&v);
    int64_t pos = 0;
    for (uint32_t k = 0; k < f->n->n_input; k++) {
        ox_val x = {0};
        if (input_val(f, k, &x) != 0) continue;
        int64_t blk = x.shape.dims[axis] * inner;
        const unsigned char *src = vdata(&x);
        for (int64_t o = 0; o < outer; o++)
            memcpy(dst + (size_t)(o * s.dims[axis] * inner + pos) * es,
                   src + (size_t)(o * blk) * es, (size_t)blk * es);
        pos += blk;
    }
    return emit(f, 0, &v);
}

/* Output = input data with a new shape (same element count). */
static int emit_reshaped(const fold *f, const ox_val *x, const sqz_shape *s) {
    if (ox_numel(s) != ox_numel(&x->shape)) return ffail(f, "element count changes");
    ox_val v;
    if (val_alloc(f, &v, x->dtype, s) != 0) return -1;
    size_t bytes = (size_t)ox_numel(s) * esize(x->dtype);
    if (bytes) memcpy(vdata(&v), vdata(x), bytes);
    return emit(f, 0, &v);
}

/* axes from attribute (old opsets) or input 1 (opset 13+); *n = -1 if absent. */
static int get_axes(const fold *f, int from_input, int64_t *axes, int *n) {
    *n = -1;
    if (from_input) {
        ox_val a;
        if (input_val(f, 1, &a) != 0) return 0;
        int64_t *p = NULL;
        int cnt = 0;
        if (val_ints(f, &a, "axes", &p, &cnt) != 0) return -1;
        if (cnt > SQZ_MAX_DIMS) return ffail(f, "too many axes");
        memcpy(axes, p, (size_t)cnt * sizeof *axes);
        *n = cnt;
        return 0;
    }
    const Onnx__AttributeProto *a = ox_attr(f->n, "axes");
    if (!a) return 0;
    if (a->n_ints > SQZ_MAX_DIMS) return ffail(f, "too many axes");
    if (a->n_ints) memcpy(axes, a->ints, a->n_ints * sizeof *axes);
    *n = (int)a->n_ints;
    return 0;
}

static int fold_unsqueeze(const fold *f, const ox_val *x) {
    int64_t axes[SQZ_MAX_DIMS];
    int na;
    if (get_axes(f, f->c->opset >= 13, axes, &na) != 0) return -1;
    if (na < 0) return ffail(f, "axes missing");
    int r = x->shape.ndim + na;
    if (r > SQZ_MAX_DIMS) return ffail(f, "result rank too large");
    int mark[SQZ_MAX_DIMS] = {0};
    for (int i = 0; i < na; i++) {
        int64_t a;
        if (norm_axis(axes[i], r, &a) != 0 || mark[a]) return ffail(f, "bad axes");
        mark[a] = 1;
    }
    sqz_shape s;
    s.ndim = r;
    for (int d = 0, k = 0; d < r; d++) s.dims[d] = mark[d] ? 1 : x->shape.dims[k++];
    return emit_reshaped(f, x, &s);
}

static int fold_squeeze(const fold *f, const ox_val *x) {
    int64_t axes[SQZ_MAX_DIMS];
    int na;
    if (get_axes(f, f->c->opset >= 13, axes, &na) != 0) return -1;
    int r = x->shape.ndim, mark[SQZ_MAX_DIMS] = {0};
    if (na < 0) {
        for (int d = 0; d < r; d++) mark[d] = x->shape.dims[d] == 1;
    } else {
        for (int i = 0; i < na; i++) {
            int64_t a;
            if (norm_axis(axes[i], r, &a) != 0 || x->shape.dims[a] != 1)
                return ffail(f, "bad axes (out of range or dim != 1)");
            mark[a] = 1;
        }
    }
    sqz_shape s;
    s.ndim = 0;
    for (int d = 0; d < r; d++)
        if (!mark[d]) s.dims[s.ndim++] = x->shape.dims[d];
    return emit_reshaped(f, x, &s);
}

static int fold_reshape(const fold *f, const ox_val *x, const ox_val *shp) {
    int64_t *p = NULL;
    int cnt = 0;
    if (val_ints(f, shp, "shape", &p, &cnt) != 0) return -1;
    if (cnt > SQZ_MAX_DIMS) return ffail(f, "target rank too large");
    int allowzero = (int)ox_attr_int(f->n, "allowzero", 0);
    sqz_shape s;
    s.ndim = cnt;
    int neg = -1;
    int64_t known = 1;
    for (int i = 0; i < cnt; i++) {
        int64_t d = p[i];
        if (d == 0 && !allowzero) {
            if (i >= x->shape.ndim) return ffail(f, "0 in shape refers to a missing dim");
            d = x->shape.dims[i];
        }
        if (d == -1) {
            if (neg >= 0) return ffail(f, "more than one -1 in shape");
            neg = i;
            d = 1;
        } else if (d < 0) {
            return ffail(f, "negative dim in shape");
        }
        s.dims[i] = d;
        if (d && known > INT64_MAX / d) return ffail(f, "shape too large");
        known *= d;
    }
    int64_t total = ox_numel(&x->shape);
    if (neg >= 0) {
        if (known == 0 || total % known) return ffail(f, "cannot infer -1 dim");
        s.dims[neg] = total / known;
    }
    return emit_reshaped(f, x, &s);
}

static int fold_flatten(const fold *f, const ox_val *x) {
    int r = x->shape.ndim;
    int64_t axis = ox_attr_int(f->n, "axis", 1);
    if (axis < 0) axis += r;
    if (axis < 0 || axis > r) return ffail(f, "axis out of range");
    sqz_shape s = {2, {1, 1}};
    for (int d = 0; d < r; d++) s.dims[d < axis ? 0 : 1] *= x->shape.dims[d];
    return emit_reshaped(f, x, &s);
}

static int fold_slice(const fold *f, const ox_val *x) {
    int r = x->shape.ndim;
    int64_t st[SQZ_MAX_DIMS], en[SQZ_MAX_DIMS], ax[SQZ_MAX_DIMS], sp[SQZ_MAX_DIMS];
    int ns, ne, na = -1, np = -1;
    if (f->c->opset < 10) {
        const Onnx__AttributeProto *a = ox_attr(f->n, "starts"), *b = ox_attr(f->n, "ends");
        if (!a || !b) return ffail(f, "starts / ends missing");
        if (a->n_ints > SQZ_MAX_DIMS || b->n_ints > SQZ_MAX_DIMS) return ffail(f, "too many axes");
        ns = (int)a->n_ints;
        ne = (int)b->n_ints;
        if (ns) memcpy(st, a->ints, (size_t)ns * sizeof *st);
        if (ne) memcpy(en, b->ints, (size_t)ne * sizeof *en);
        if (get_axes(f, 0, ax, &na) != 0) return -1;
    } else {
        const char *names[4] = {"starts", "ends", "axes", "steps"};
        int64_t *dst[4] = {st, en, ax, sp};
        int *cnt[4] = {&ns, &ne, &na, &np};
        for (int i = 0; i < 4; i++) {
            ox_val v;
            *cnt[i] = -1;
            if (input_val(f, (uint32_t)(i + 1), &v) != 0) {
                if (i < 2) return ffail(f, "starts / ends missing");
                continue;
            }
            int64_t *p = NULL;
            if (val_ints(f, &v, names[i], &p, cnt[i]) != 0) return -1;
            if (*cnt[i] > SQZ_MAX_DIMS) return ffail(f, "too many axes");
            memcpy(dst[i], p, (size_t)*cnt[i] * sizeof(int64_t));
        }
    }
    if (ns != ne || (na >= 0 && na != ns) || (np >= 0 && np != ns) || ns > r)
        return ffail(f, "starts / ends / axes / steps lengths differ");
    int64_t b[SQZ_MAX_DIMS], step[SQZ_MAX_DIMS];
    sqz_shape s = x->shape;
    for (int d = 0; d < r; d++) {
        b[d] = 0;
        step[d] = 1;
    }
    int seen[SQZ_MAX_DIMS] = {0};
    for (int i = 0; i < ns; i++) {
        int64_t a;
        if (norm_axis(na >= 0 ? ax[i] : i, r, &a) != 0 || seen[a]) return ffail(f, "bad axes");
        seen[a] = 1;
        int64_t dim = x->shape.dims[a], k = np >= 0 ? sp[i] : 1;
        if (k == 0) return ffail(f, "step 0");
        int64_t lo = st[i], hi = en[i];
        if (lo < 0) lo = lo < -dim ? 0 : lo + dim;
        if (hi < 0) hi = hi < -dim ? -1 : hi + dim;
        int64_t len;
        if (k > 0) {
            if (lo > dim) lo = dim;
            if (hi > dim) hi = dim;
            if (hi < 0) hi = 0;
            len = hi > lo ? (hi - lo - 1) / k + 1 : 0;
        } else {
            if (k == INT64_MIN) k = -INT64_MAX;
            if (lo > dim - 1) lo = dim - 1;
            if (hi > dim - 1) hi = dim - 1;
            /* hi may be -1 meaning "before element 0" */
            len = lo > hi ? (lo - hi - 1) / (-k) + 1 : 0;
        }
        b[a] = lo;
        step[a] = k;
        s.dims[a] = len;
    }
    ox_val v;
    if (val_alloc(f, &v, x->dtype, &s) != 0) return -1;
    int64_t n = ox_numel(&s), stride[SQZ_MAX_DIMS], idx[SQZ_MAX_DIMS] = {0};
    int64_t acc = 1;
    for (int d = r - 1; d >= 0; d--) {
        stride[d] = acc;
        acc *= x->shape.dims[d];
    }
    size_t es = esize(x->dtype);
    unsigned char *dst = vdata(&v);
    const unsigned char *src = vdata(x);
    for (int64_t e = 0; e < n; e++) {
        int64_t off = 0;
        for (int d = 0; d < r; d++) off += (b[d] + idx[d] * step[d]) * stride[d];
        memcpy(dst + (size_t)e * es, src + (size_t)off * es, es);
        for (int d = r - 1; d >= 0; d--) {
            if (++idx[d] < s.dims[d]) break;
            idx[d] = 0;
        }
    }
    return emit(f, 0, &v);
}

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_EQ, BIN_LT, BIN_GT };

static int fold_binary(const fold *f, const ox_val *a, const ox_val *b, int op) {
    const sqz_shape *ss[2] = {&a->shape, &b->shape};
    bcast bc;
    if (a->dtype != b->dtype) return ffail(f, "operand types differ");
    if (bcast_setup(ss, 2, &bc) != 0) return ffail(f, "shapes do not broadcast");
    int cmp = op >= BIN_EQ;
    ox_val v;
    if (val_alloc(f, &v, cmp ? SQZC_I64 : a->dtype, &bc.out) != 0) return -1;
    int64_t n = ox_numel(&bc.out), idx[SQZ_MAX_DIMS] = {0}, off[2] = {0, 0};
    for (int64_t e = 0; e < n; e++, bcast_next(&bc, 2, idx, off)) {
        if (cmp) {
            double x = val_get_f(a, off[0]), y = val_get_f(b, off[1]);
            if (a->dtype == SQZC_I64) {
                int64_t p = a->i64[off[0]], q = b->i64[off[1]];
                v.i64[e] = op == BIN_EQ ? p == q : op == BIN_LT ? p < q : p > q;
            } else {
                v.i64[e] = op == BIN_EQ ? x == y : op == BIN_LT ? x < y : x > y;
            }
            continue;
        }
        /* integers only (float arithmetic goes to the kernels) */
        int64_t p = a->i64[off[0]], q = b->i64[off[1]], r = 0;
        int bad = 0;
        switch (op) {
        case BIN_ADD:
            bad = __builtin_add_overflow(p, q, &r);
            break;
        case BIN_SUB:
            bad = __builtin_sub_overflow(p, q, &r);
            break;
        case BIN_MUL:
            bad = __builtin_mul_overflow(p, q, &r);
            break;
        default:
            bad = q == 0 || (p == INT64_MIN && q == -1);
            if (!bad) {
                r = p / q; /* ONNX integer Div truncates like C */
            }
            break;
        }
        if (bad) {
            ox_val_free(&v);
            return ffail(f, "integer overflow or division by zero");
        }
        v.i64[e] = r;
    }
    return emit(f, 0, &v);
}

static int fold_where(const fold *f, const ox_val *cnd, const ox_val *x, const ox_val *y) {
    if (x->dtype != y->dtype) return ffail(f, "branch types differ");
    const sqz_shape *ss[3] = {&cnd->shape, &x->shape, &y->shape};
    bcast bc;
    if (bcast_setup(ss, 3, &bc) != 0) return ffail(f, "shapes do not broadcast");
    ox_val v;
    if (val_alloc(f, &v, x->dtype, &bc.out) != 0) return -1;
    int64_t n = ox_numel(&bc.out), idx[SQZ_MAX_DIMS] = {0}, off[3] = {0, 0, 0};
    size_t es = esize(x->dtype);
    unsigned char *dst = vdata(&v);
    for (int64_t e = 0; e < n; e++, bcast_next(&bc, 3, idx, off)) {
        int take_x = val_get_f(cnd, off[0]) != 0;
        const unsigned char *src = take_x ? vdata(x) : vdata(y);
        memcpy(dst + (size_t)e * es, src + (size_t)(take_x ? off[1] : off[2]) * es, es);
    }
    return emit(f, 0, &v);
}

static int fold_expand(const fold *f, const ox_val *x, const ox_val *shp) {
    int64_t *p = NULL;
    int cnt = 0;
    if (val_ints(f, shp, "shape", &p, &cnt) != 0) return -1;
    if (cnt > SQZ_MAX_DIMS) return ffail(f, "target rank too large");
    sqz_shape t;
    t.ndim = cnt;
    for (int i = 0; i < cnt; i++) {
        if (p[i] < 0) return ffail(f, "negative dim in shape");
        t.dims[i] = p[i];
    }
    const sqz_shape *ss[2] = {&x->shape, &t};
    bcast bc;
    if (bcast_setup(ss, 2, &bc) != 0) return ffail(f, "shapes do not broadcast");
    ox_val v;
    if (val_alloc(f, &v, x->dtype, &bc.out) != 0) return -1;
    int64_t n = ox_numel(&bc.out), idx[SQZ_MAX_DIMS] = {0}, off[2] = {0, 0};
    size_t es = esize(x->dtype);
    unsigned char *dst = vdata(&v);
    const unsigned char *src = vdata(x);
    for (int64_t e = 0; e < n; e++, bcast_next(&bc, 2, idx, off))
        memcpy(dst + (size_t)e * es, src + (size_t)off[0] * es, es);
    return emit(f, 0, &v);
}

static int fold_const_of_shape(const fold *f, const ox_val *shp) {
    int64_t *p = NULL;
    int cnt = 0;
    if (val_ints(f, shp, "input", &p, &cnt) != 0) return -1;
    if (cnt > SQZ_MAX_DIMS) return ffail(f, "rank too large");
    sqz_shape s;
    s.ndim = cnt;
    for (int i = 0; i < cnt; i++) {
        if (p[i] < 0) return ffail(f, "negative dim");
        s.dims[i] = p[i];
    }
    ox_val fill;
    memset(&fill, 0, sizeof fill);
    const Onnx__AttributeProto *a = ox_attr(f->n, "value");
    if (a) {
        char msg[512];
        if (!a->t) return ffail(f, "attribute 'value' is not a tensor");
        if (ox_tensor_decode(a->t, f->c->dir, f->c->path, &fill, msg, sizeof msg) != 0)
            return ffail(f, msg);
        if (ox_numel(&fill.shape) != 1) {
            ox_val_free(&fill);
            return ffail(f, "attribute 'value' must hold one element");
        }
    }
    ox_val v;
    int dtype = a ? fill.dtype : SQZC_F32;
    if (val_alloc(f, &v, dtype, &s) != 0) {
        ox_val_free(&fill);
        return -1;
    }
    int64_t n = ox_numel(&s);
    for (int64_t i = 0; i < n; i++) {
        if (dtype == SQZC_I64)
            v.i64[i] = fill.i64[0];
        else
            v.f32[i] = a ? fill.f32[0] : 0.0f;
    }
    ox_val_free(&fill);
    return emit(f, 0, &v);
}

static int fold_range(const fold *f, const ox_val *s0, const ox_val *l0, const ox_val *d0) {
    if (ox_numel(&s0->shape) != 1 || ox_numel(&l0->shape) != 1 || ox_numel(&d0->shape) != 1)
        return ffail(f, "start / limit / delta must be scalars");
    if (s0->dtype != l0->dtype || s0->dtype != d0->dtype) return ffail(f, "input types differ");
    double st = val_get_f(s0, 0), li = val_get_f(l0, 0), de = val_get_f(d0, 0);
    if (de == 0 || !isfinite(st) || !isfinite(li) || !isfinite(de)) return ffail(f, "bad delta");
    double cnt = ceil((li - st) / de);
    if (cnt < 0) cnt = 0;
    if (cnt > (double)OX_MAX_CONST_ELEMS) return ffail(f, "result too large");
    sqz_shape s = {1, {(int64_t)cnt}};
    ox_val v;
    if (val_alloc(f, &v, s0->dtype, &s) != 0) return -1;
    for (int64_t i = 0; i < s.dims[0]; i++) {
        int64_t step, val;
        if (v.dtype == SQZC_I64 && (__builtin_mul_overflow(i, d0->i64[0], &step) ||
                                    __builtin_add_overflow(s0->i64[0], step, &val))) {
            ox_val_free(&v);
            return ffail(f, "integer overflow");
        }
        if (v.dtype == SQZC_I64)
            v.i64[i] = val;
        else
            v.f32[i] = (float)(st + (double)i * de);
    }
    return emit(f, 0, &v);
}

static int fold_unary(const fold *f, const ox_val *x, int is_not) {
    ox_val v;
    if (val_alloc(f, &v, x->dtype, &x->shape) != 0) return -1;
    int64_t n = ox_numel(&x->shape);
    for (int64_t i = 0; i < n; i++) {
        if (x->dtype == SQZC_F32) {
            v.f32[i] = is_not ? (float)(x->f32[i] == 0) : -x->f32[i];
        } else if (is_not) {
            v.i64[i] = x->i64[i] == 0;
        } else {
            if (x->i64[i] == INT64_MIN) {
                ox_val_free(&v);
                return ffail(f, "integer overflow");
            }
            v.i64[i] = -x->i64[i];
        }
    }
    return emit(f, 0, &v);
}

static int fold_copy(const fold *f, const ox_val *x) {
    return emit_reshaped(f, x, &x->shape);
}

int ox_fold_node(ox_ctx *c, const Onnx__NodeProto *n, const char *label, const int32_t *in,
                 const int32_t *out) {
    fold f = {c, n, label, in, out};
    const char *op = ox_s(n->op_type);
    /* Ops whose result depends only on shapes. */
    if (strcmp(op, "Constant") == 0) return fold_constant(&f);
    if (strcmp(op, "Shape") == 0) return fold_shape(&f);
    if (strcmp(op, "Size") == 0 && n->n_input >= 1 && in[0] >= 0) return fold_size(&f);
    /* Everything else needs all (present) inputs constant. */
    for (uint32_t k = 0; k < n->n_input; k++)
        if (in[k] >= 0 && !sqzc_tensor_is_const(c->g, in[k])) return 0;
    ox_val x[4];
    memset(x, 0, sizeof x);
    int have[4] = {0};
    for (uint32_t k = 0; k < n->n_input && k < 4; k++) have[k] = input_val(&f, k, &x[k]) == 0;
    if (!have[0] && strcmp(op, "Concat") != 0) return 0;
    if (strcmp(op, "Identity") == 0 || strcmp(op, "Dropout") == 0) {
        if (n->n_output > 1 && out[1] >= 0) return 0; /* mask output: lowering refuses it */
        return fold_copy(&f, &x[0]);
    }
    if (strcmp(op, "Gather") == 0) {
        if (!have[1]) return ffail(&f, "indices missing");
        return fold_gather(&f, &x[0], &x[1]);
    }
    if (strcmp(op, "Cast") == 0) {
        const Onnx__AttributeProto *a = ox_attr(n, "to");
        if (!a) return ffail(&f, "attribute 'to' missing");
        int to = (int)a->i;
        if (!ox_dtype_class(to)) return ffail(&f, "unsupported target type");
        return fold_cast(&f, &x[0], is_float_dtype_onnx(to), to == 9 /* BOOL */);
    }
    if (strcmp(op, "CastLike") == 0) {
        if (!have[1]) return ffail(&f, "target missing");
        return fold_cast(&f, &x[0], x[1].dtype == SQZC_F32, 0);
    }
    if (strcmp(op, "Concat") == 0) return fold_concat(&f);
    if (strcmp(op, "Unsqueeze") == 0) return fold_unsqueeze(&f, &x[0]);
    if (strcmp(op, "Squeeze") == 0) return fold_squeeze(&f, &x[0]);
    if (strcmp(op, "Reshape") == 0) {
        if (!have[1]) return ffail(&f, "shape missing");
        return fold_reshape(&f, &x[0], &x[1]);
    }
    if (strcmp(op, "Flatten") == 0) return fold_flatten(&f, &x[0]);
    if (strcmp(op, "Slice") == 0) return fold_slice(&f, &x[0]);
    static const char *const bins[] = {"Add", "Sub", "Mul", "Div", "Equal", "Less", "Greater"};
    for (int b = 0; b < 7; b++) {
        if (strcmp(op, bins[b]) != 0) continue;
        if (!have[1]) return ffail(&f, "second operand missing");
        if (b < BIN_EQ && x[0].dtype == SQZC_F32) return 0; /* float: reference kernel */
        return fold_binary(&f, &x[0], &x[1], b);
    }
    if (strcmp(op, "Where") == 0) {
        if (!have[1] || !have[2]) return ffail(&f, "inputs missing");
        return fold_where(&f, &x[0], &x[1], &x[2]);
    }
    if (strcmp(op, "Expand") == 0) {
        if (!have[1]) return ffail(&f, "shape missing");
        return fold_expand(&f, &x[0], &x[1]);
    }
    if (strcmp(op, "ConstantOfShape") == 0) return fold_const_of_shape(&f, &x[0]);
    if (strcmp(op, "Range") == 0) {
        if (!have[1] || !have[2]) return ffail(&f, "inputs missing");
        return fold_range(&f, &x[0], &x[1], &x[2]);
    }
    if (strcmp(op, "Neg") == 0) return fold_unary(&f, &x[0], 0);
    if (strcmp(op, "Not") == 0) return fold_unary(&f, &x[0], 1);
    if (strcmp(op, "Size") == 0) return fold_size(&f);
    /* Any other op on integer constants cannot run on the float kernels. */
    for (uint32_t k = 0; k < n->n_input && k < 4; k++)
        if (have[k] && x[k].dtype == SQZC_I64 && sqz_op_from_name(op) != SQZ_OP_INVALID && k == 0) {
            char msg[320];
            snprintf(msg, sizeof msg,
                     "input '%s' is an integer tensor; this op runs on float tensors only",
                     n->input[k]);
            return ffail(&f, msg);
        }
    return 0;
}
