/* ref/int8.c - INT8 reference kernels: requantization helpers, the
 * QuantizeLinear / DequantizeLinear boundaries, element-wise ops, pools,
 * Concat and views on i8 data (semantics: sqz/format.h "INT8", int8.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "int8.h"

/* ------------------------------------------------------------ requant */

int sqz_rq_make(double m, sqz_rq *r) {
    if (!(m > 0.0) || !(m < 1073741824.0)) return -1; /* also NaN */
    r->s = (float)m;
    return 0;
}

int sqz_i8_fx_make(double m, int32_t *Mo, int32_t *So) {
    if (!(m > 0.0) || !(m < 1073741824.0)) return -1; /* also NaN */
    int e;
    double f = frexp(m, &e); /* m = f * 2^e, f in [0.5, 1) */
    int64_t M = llround(ldexp(f, 31));
    if (M == ((int64_t)1 << 31)) { /* f rounded up to 1.0 */
        M = (int64_t)1 << 30;
        e++;
    }
    int S = 31 - e;
    if (S < 1) return -1;
    if (S > 62) { /* tiny multiplier: keep the largest shift */
        S = 62;
        M = llround(ldexp(m, 62));
    }
    *Mo = (int32_t)M;
    *So = S;
    return 0;
}

static int i8_params(sqz_op_ctx *ctx, const char *role, uint32_t i, int dt, const sqz_qparams *q,
                     float *scale, int32_t *zp) {
    const char *op = ref_opname(ctx);
    if (dt != SQZ_DT_I8)
        return sqz_op_fail(ctx, "%s (int8): %s %u must be i8 (dtype %d)", op, role, i, dt);
    if (!q || q->kind != SQZ_QUANT_PER_TENSOR || q->n != 1 || !q->scale || !q->zero_point)
        return sqz_op_fail(ctx, "%s (int8): %s %u needs per-tensor quantization parameters", op,
                           role, i);
    *scale = q->scale[0];
    *zp = q->zero_point[0];
    if (!(*scale > 0.0f) || !isfinite(*scale) || *zp < -128 || *zp > 127)
        return sqz_op_fail(ctx, "%s (int8): %s %u has invalid scale / zero point", op, role, i);
    return 0;
}

int sqz_i8_in_params(sqz_op_ctx *ctx, uint32_t i, float *scale, int32_t *zp) {
    return i8_params(ctx, "input", i, sqz_ctx_in_dtype(ctx, i), ctx->in_q ? &ctx->in_q[i] : NULL,
                     scale, zp);
}

int sqz_i8_out_params(sqz_op_ctx *ctx, uint32_t i, float *scale, int32_t *zp) {
    return i8_params(ctx, "output", i, sqz_ctx_out_dtype(ctx, i),
                     ctx->out_q ? &ctx->out_q[i] : NULL, scale, zp);
}

/* q(v) = zp + round_half_even(v / scale), clamped to the i8 range (in double,
 * so infinities and huge values clamp instead of overflowing). */
static int32_t quant_bound(double v, float scale, int32_t zp) {
    double q = nearbyint(v / (double)scale) + zp;
    if (!(q > -128.0)) return -128; /* also NaN */
    if (q > 127.0) return 127;
    return (int32_t)q;
}

static int bounds_for(sqz_op_ctx *ctx, int kind, float alpha, float beta, float scale, int32_t zp,
                      int32_t *lo, int32_t *hi) {
    *lo = -128;
    *hi = 127;
    switch (kind) {
    case SQZ_ACT_NONE:
        return 0;
    case SQZ_ACT_RELU:
        *lo = zp;
        return 0;
    case SQZ_ACT_CLIP:
        if (isnan(alpha) || isnan(beta) || alpha > beta)
            return sqz_op_fail(ctx, "%s (int8): clip bounds [%g, %g] invalid", ref_opname(ctx),
                               (double)alpha, (double)beta);
        *lo = quant_bound(alpha, scale, zp);
        *hi = quant_bound(beta, scale, zp);
        return 0;
    default:
        return sqz_op_fail(ctx,
                           "%s (int8): fused activation %d not supported on int8 (only none, "
                           "relu, clip)",
                           ref_opname(ctx), kind);
    }
}

int sqz_i8_act_bounds(sqz_op_ctx *ctx, float scale, int32_t zp, int32_t *lo, int32_t *hi) {
    int kind = (int)sqz_attr_int(ctx->node, "sqz_act", SQZ_ACT_NONE);
    float a = sqz_attr_float(ctx->node, "sqz_act_alpha", -INFINITY);
    float b = sqz_attr_float(ctx->node, "sqz_act_beta", INFINITY);
    return bounds_for(ctx, kind, a, b, scale, zp, lo, hi);
}

static int same_params(float s1, int32_t z1, float s2, int32_t z2) {
    return s1 == s2 && z1 == z2;
}

static int64_t numel_of(const sqz_shape *s) {
    return sqz_shape_numel(s);
}

/* ----------------------------------------------- QuantizeLinear (f32 -> i8) */

typedef struct qdq_p {
    float scale;
    int32_t zp;
} qdq_p;

static int qdq_prepare(sqz_op_ctx *ctx, int quantize) {
    const char *op = ref_opname(ctx);
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    qdq_p p;
    if (quantize) {
        if (sqz_ctx_in_dtype(ctx, 0) != SQZ_DT_F32)
            return sqz_op_fail(ctx, "%s: input must be f32", op);
        if (sqz_i8_out_params(ctx, 0, &p.scale, &p.zp)) return -1;
    } else {
        if (sqz_ctx_out_dtype(ctx, 0) != SQZ_DT_F32)
            return sqz_op_fail(ctx, "%s: output must be f32", op);
        if (sqz_i8_in_params(ctx, 0, &p.scale, &p.zp)) return -1;
    }
    if (ctx->node->n_attrs > 0 && sqz_node_attr(ctx->node, "axis"))
        return sqz_op_fail(ctx, "%s: per-axis quantization of activations not supported", op);
    ctx->out_shape[0] = ctx->in_shape[0];
    qdq_p *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "%s: out of memory", op);
    *pp = p;
    ctx->params = pp;
    return 0;
}

static int quantize_prepare(sqz_op_ctx *ctx) {
    return qdq_prepare(ctx, 1);
}
static int dequantize_prepare(sqz_op_ctx *ctx) {
    return qdq_prepare(ctx, 0);
}

/* ONNX QuantizeLinear: clamp(round_half_to_even(x / scale) + zp); NaN -> zp */
int8_t sqz_i8_quantize1(float x, float scale, int32_t zp) {
    float v = x / scale;
    if (isnan(v)) return (int8_t)zp;
    float r = nearbyintf(v) + (float)zp; /* exact: |r| < 2^24 after the clamp below */
    if (r < -128.0f) r = -128.0f;
    if (r > 127.0f) r = 127.0f;
    return (int8_t)(int32_t)r;
}

static void quantize_run(const sqz_op_ctx *ctx) {
    const qdq_p *p = ctx->params;
    const float *x = ctx->in_data[0];
    int8_t *y = (int8_t *)ctx->out_data[0];
    int64_t n = numel_of(&ctx->in_shape[0]);
    for (int64_t i = 0; i < n; i++) y[i] = sqz_i8_quantize1(x[i], p->scale, p->zp);
}

static void dequantize_run(const sqz_op_ctx *ctx) {
    const qdq_p *p = ctx->params;
    const int8_t *x = (const int8_t *)ctx->in_data[0];
    float *y = ctx->out_data[0];
    int64_t n = numel_of(&ctx->in_shape[0]);
    for (int64_t i = 0; i < n; i++) y[i] = p->scale * (float)((int32_t)x[i] - p->zp);
}

const sqz_op_impl sqz_ref_quantize_linear = {quantize_prepare, quantize_run, free, NULL};
const sqz_op_impl sqz_ref_dequantize_linear = {dequantize_prepare, dequantize_run, free, NULL};

/* --------------------------------------------------- unary: Relu / Clip */

typedef struct unary_p {
    sqz_rq rq;
    int32_t zp_x, zp_y, lo, hi;
    int identity; /* same params: a clamp only */
} unary_p;

static int unary_prepare(sqz_op_ctx *ctx, int kind) {
    const char *op = ref_opname(ctx);
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    float sx, sy;
    unary_p p;
    if (sqz_i8_in_params(ctx, 0, &sx, &p.zp_x) || sqz_i8_out_params(ctx, 0, &sy, &p.zp_y))
        return -1;
    float a = sqz_attr_float(ctx->node, "min", -INFINITY);
    float b = sqz_attr_float(ctx->node, "max", INFINITY);
    if (bounds_for(ctx, kind, a, b, sy, p.zp_y, &p.lo, &p.hi)) return -1;
    p.identity = same_params(sx, p.zp_x, sy, p.zp_y);
    if (sqz_rq_make((double)sx / sy, &p.rq))
        return sqz_op_fail(ctx, "%s (int8): scale ratio %g unsupported", op, (double)sx / sy);
    ctx->out_shape[0] = ctx->in_shape[0];
    unary_p *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "%s: out of memory", op);
    *pp = p;
    ctx->params = pp;
    return 0;
}

static int relu_prepare(sqz_op_ctx *ctx) {
    return unary_prepare(ctx, SQZ_ACT_RELU);
}
static int clip_prepare(sqz_op_ctx *ctx) {
    return unary_prepare(ctx, SQZ_ACT_CLIP);
}

static void unary_run(const sqz_op_ctx *ctx) {
    const unary_p *p = ctx->params;
    const int8_t *x = (const int8_t *)ctx->in_data[0];
    int8_t *y = (int8_t *)ctx->out_data[0];
    int64_t n = numel_of(&ctx->in_shape[0]);
    if (p->identity) {
        for (int64_t i = 0; i < n; i++) {
            int32_t v = x[i];
            y[i] = (int8_t)(v < p->lo ? p->lo : v > p->hi ? p->hi : v);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++)
        y[i] = (int8_t)sqz_rq_apply((int32_t)x[i] - p->zp_x, p->rq, p->zp_y, p->lo, p->hi);
}

const sqz_op_impl sqz_ref_i8_relu = {relu_prepare, unary_run, free, NULL};
const sqz_op_impl sqz_ref_i8_clip = {clip_prepare, unary_run, free, NULL};

/* ------------------------- unary: Sigmoid / HardSigmoid / HardSwish / Tanh */

/* y = clamp(zp_y + round_half_even(f(s_x (x - zp_x)) / s_y), -128, 127),
 * f evaluated in double (libm exp / tanh), so the 256 possible outputs are
 * the exactly rounded values up to libm's last-ulp differences; the fast
 * kernels are tables built from this function (common/int8_lut.c). */
typedef struct iact_p {
    int op;
    double sx, sy, alpha, beta;
    int32_t zp_x, zp_y;
} iact_p;

static double iact_f(const iact_p *p, double v) {
    switch (p->op) {
    case SQZ_OP_SIGMOID:
        return v >= 0.0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
    case SQZ_OP_HARD_SIGMOID: {
        double r = p->alpha * v + p->beta;
        return r < 0.0 ? 0.0 : r > 1.0 ? 1.0 : r;
    }
    case SQZ_OP_HARD_SWISH: {
        double r = v / 6.0 + 0.5;
        return v * (r < 0.0 ? 0.0 : r > 1.0 ? 1.0 : r);
    }
    default: /* SQZ_OP_TANH */
        return tanh(v);
    }
}

static int8_t iact_1(const iact_p *p, int8_t x) {
    double q = nearbyint(iact_f(p, p->sx * ((int32_t)x - p->zp_x)) / p->sy) + p->zp_y;
    if (!(q > -128.0)) return -128; /* also NaN */
    if (q > 127.0) return 127;
    return (int8_t)(int32_t)q;
}

static int iact_prepare(sqz_op_ctx *ctx, int op) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    iact_p p;
    float sx, sy;
    if (sqz_i8_in_params(ctx, 0, &sx, &p.zp_x) || sqz_i8_out_params(ctx, 0, &sy, &p.zp_y))
        return -1;
    p.op = op;
    p.sx = sx;
    p.sy = sy;
    p.alpha = sqz_attr_float(ctx->node, "alpha", 0.2f);
    p.beta = sqz_attr_float(ctx->node, "beta", 0.5f);
    ctx->out_shape[0] = ctx->in_shape[0];
    iact_p *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    *pp = p;
    ctx->params = pp;
    return 0;
}

static void iact_run(const sqz_op_ctx *ctx) {
    const iact_p *p = ctx->params;
    const int8_t *x = (const int8_t *)ctx->in_data[0];
    int8_t *y = (int8_t *)ctx->out_data[0];
    int64_t n = numel_of(&ctx->in_shape[0]);
    for (int64_t i = 0; i < n; i++) y[i] = iact_1(p, x[i]);
}

#define I8_ACT(name, OP)                                                                           \
    static int name##_prepare(sqz_op_ctx *ctx) {                                                   \
        return iact_prepare(ctx, OP);                                                              \
    }                                                                                              \
    const sqz_op_impl sqz_ref_i8_##name = {name##_prepare, iact_run, free, NULL};

I8_ACT(sigmoid, SQZ_OP_SIGMOID)
I8_ACT(hard_sigmoid, SQZ_OP_HARD_SIGMOID)
I8_ACT(hard_swish, SQZ_OP_HARD_SWISH)
I8_ACT(tanh, SQZ_OP_TANH)

/* --------------------------------------------------------------- Add */

/* y = clamp(zp_y + ((da * Ma + db * Mb + 2^(S-1)) >> S)), da = a - zp_a,
 * db = b - zp_b: both multipliers s_a / s_y, s_b / s_y on one shift S (the
 * larger one's), so the sum is rounded once. */
typedef struct add_p {
    int64_t Ma, Mb; /* Add */
    int S;
    sqz_rq rq; /* Mul */
    int32_t zp_a, zp_b, zp_y, lo, hi;
    int nd;
    int64_t dims[SQZ_MAX_DIMS], sa[SQZ_MAX_DIMS], sb[SQZ_MAX_DIMS];
} add_p;

static int broadcast_strides(const sqz_shape *in, const sqz_shape *out, int64_t *st) {
    int64_t acc = 1;
    for (int d = out->ndim - 1; d >= 0; d--) {
        int di = d - (out->ndim - in->ndim);
        int64_t v = di >= 0 ? in->dims[di] : 1;
        if (v != out->dims[d] && v != 1) return -1;
        st[d] = v == 1 ? 0 : acc;
        acc *= v;
    }
    return 0;
}

/* Shared by int8 Add and Mul: quantization parameters, activation bounds
 * and the multidirectionally broadcast output shape o. */
static int binop_begin(sqz_op_ctx *ctx, const char *name, add_p *p, float *sa, float *sb, float *sy,
                       sqz_shape *o) {
    if (ref_check_io(ctx, 2, 2, 1)) return -1;
    memset(p, 0, sizeof *p);
    if (sqz_i8_in_params(ctx, 0, sa, &p->zp_a) || sqz_i8_in_params(ctx, 1, sb, &p->zp_b) ||
        sqz_i8_out_params(ctx, 0, sy, &p->zp_y))
        return -1;
    if (sqz_i8_act_bounds(ctx, *sy, p->zp_y, &p->lo, &p->hi)) return -1;
    const sqz_shape *a = &ctx->in_shape[0], *b = &ctx->in_shape[1];
    o->ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < o->ndim; d++) {
        int da = d - (o->ndim - a->ndim), db = d - (o->ndim - b->ndim);
        int64_t va = da >= 0 ? a->dims[da] : 1, vb = db >= 0 ? b->dims[db] : 1;
        if (va != vb && va != 1 && vb != 1)
            return sqz_op_fail(ctx, "%s (int8): shapes not broadcastable at dim %d (%lld vs %lld)",
                               name, d, (long long)va, (long long)vb);
        o->dims[d] = va == 1 ? vb : va;
    }
    return ref_check_size(ctx, o->ndim, o->dims) ? -1 : 0;
}

/* Shared tail: broadcast strides, output shape, params published. */
static int binop_end(sqz_op_ctx *ctx, const char *name, add_p *p, const sqz_shape *o) {
    p->nd = o->ndim;
    memcpy(p->dims, o->dims, sizeof p->dims);
    broadcast_strides(&ctx->in_shape[0], o, p->sa);
    broadcast_strides(&ctx->in_shape[1], o, p->sb);
    ctx->out_shape[0] = *o;
    add_p *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "%s: out of memory", name);
    *pp = *p;
    ctx->params = pp;
    return 0;
}

static int add_prepare(sqz_op_ctx *ctx) {
    add_p p;
    float sa, sb, sy;
    sqz_shape o;
    if (binop_begin(ctx, "Add", &p, &sa, &sb, &sy, &o)) return -1;
    double ma = (double)sa / sy, mb = (double)sb / sy;
    int32_t M, S;
    if (sqz_i8_fx_make(ma > mb ? ma : mb, &M, &S))
        return sqz_op_fail(ctx, "Add (int8): scale ratio unsupported");
    p.S = S;
    p.Ma = ma > mb ? M : llround(ldexp(ma, S));
    p.Mb = ma > mb ? llround(ldexp(mb, S)) : M;
    return binop_end(ctx, "Add", &p, &o);
}

static void add_run(const sqz_op_ctx *ctx) {
    const add_p *p = ctx->params;
    const int8_t *A = (const int8_t *)ctx->in_data[0], *B = (const int8_t *)ctx->in_data[1];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    int64_t total = ref_prod(p->dims, 0, p->nd);
    int64_t idx[SQZ_MAX_DIMS] = {0}, oa = 0, ob = 0;
    int64_t half = (int64_t)1 << (p->S - 1);
    for (int64_t i = 0; i < total; i++) {
        int64_t v = ((int64_t)((int32_t)A[oa] - p->zp_a) * p->Ma +
                     (int64_t)((int32_t)B[ob] - p->zp_b) * p->Mb + half) >>
                    p->S;
        v += p->zp_y;
        Y[i] = (int8_t)(v < p->lo ? p->lo : v > p->hi ? p->hi : v);
        for (int d = p->nd - 1; d >= 0; d--) {
            idx[d]++;
            oa += p->sa[d];
            ob += p->sb[d];
            if (idx[d] < p->dims[d]) break;
            oa -= idx[d] * p->sa[d];
            ob -= idx[d] * p->sb[d];
            idx[d] = 0;
        }
    }
}

const sqz_op_impl sqz_ref_i8_add = {add_prepare, add_run, free, NULL};

/* --------------------------------------------------------------- Mul */

/* QLinearMul: y = rq(da * db) (int8.h requantization, clamp [lo, hi]),
 * da = a - zp_a, db = b - zp_b (|da db| <= 65280 < 2^24: exact in float),
 * m = s_a s_b / s_y; multidirectional broadcasting as Add. */
static int mul_prepare(sqz_op_ctx *ctx) {
    add_p p;
    float sa, sb, sy;
    sqz_shape o;
    if (binop_begin(ctx, "Mul", &p, &sa, &sb, &sy, &o)) return -1;
    if (sqz_rq_make((double)sa * (double)sb / (double)sy, &p.rq))
        return sqz_op_fail(ctx, "Mul (int8): scale ratio %g unsupported",
                           (double)sa * (double)sb / (double)sy);
    return binop_end(ctx, "Mul", &p, &o);
}

static void mul_run(const sqz_op_ctx *ctx) {
    const add_p *p = ctx->params;
    const int8_t *A = (const int8_t *)ctx->in_data[0], *B = (const int8_t *)ctx->in_data[1];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    int64_t total = ref_prod(p->dims, 0, p->nd);
    int64_t idx[SQZ_MAX_DIMS] = {0}, oa = 0, ob = 0;
    for (int64_t i = 0; i < total; i++) {
        int32_t d = ((int32_t)A[oa] - p->zp_a) * ((int32_t)B[ob] - p->zp_b);
        Y[i] = (int8_t)sqz_rq_apply(d, p->rq, p->zp_y, p->lo, p->hi);
        for (int k = p->nd - 1; k >= 0; k--) {
            idx[k]++;
            oa += p->sa[k];
            ob += p->sb[k];
            if (idx[k] < p->dims[k]) break;
            oa -= idx[k] * p->sa[k];
            ob -= idx[k] * p->sb[k];
            idx[k] = 0;
        }
    }
}

const sqz_op_impl sqz_ref_i8_mul = {mul_prepare, mul_run, free, NULL};

/* ------------------------------------------------------------- pools */

typedef struct ipool_p {
    ref_geom g;
    int64_t NC, in_sp, out_sp, taps;
    int is_max, count_include_pad;
    int32_t zp_x, zp_y;
    sqz_rq *rq; /* avg: [taps + 1], rq[c] = s_x / (s_y * c) */
} ipool_p;

static void ipool_free(void *p) {
    if (!p) return;
    free(((ipool_p *)p)->rq);
    free(p);
}

static int ipool_prepare(sqz_op_ctx *ctx, int is_max) {
    const char *op = ref_opname(ctx);
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    int nd = x->ndim - 2;
    if (nd < 1 || nd > 3)
        return sqz_op_fail(ctx, "%s (int8): input rank %d unsupported (need 3..5)", op, x->ndim);
    ipool_p p;
    memset(&p, 0, sizeof p);
    float sx, sy;
    if (sqz_i8_in_params(ctx, 0, &sx, &p.zp_x) || sqz_i8_out_params(ctx, 0, &sy, &p.zp_y))
        return -1;
    p.is_max = is_max;
    if (is_max) {
        if (!same_params(sx, p.zp_x, sy, p.zp_y))
            return sqz_op_fail(ctx, "MaxPool (int8): output parameters must equal the input's");
    } else {
        int64_t cip = sqz_attr_int(ctx->node, "count_include_pad", 0);
        if (cip != 0 && cip != 1)
            return sqz_op_fail(ctx, "AveragePool: count_include_pad=%lld invalid", (long long)cip);
        p.count_include_pad = (int)cip;
    }
    if (ref_geom_prepare(ctx, &p.g, nd, x->dims + 2, NULL, 1)) return -1;
    p.taps = p.g.k[0] * p.g.k[1] * p.g.k[2];
    if (!is_max && p.taps > (1 << 20))
        return sqz_op_fail(ctx, "AveragePool (int8): window of %lld taps too large",
                           (long long)p.taps);
    p.NC = x->dims[0] * x->dims[1];
    p.in_sp = p.g.in[0] * p.g.in[1] * p.g.in[2];
    p.out_sp = p.g.out[0] * p.g.out[1] * p.g.out[2];
    sqz_shape *y = &ctx->out_shape[0];
    y->ndim = x->ndim;
    y->dims[0] = x->dims[0];
    y->dims[1] = x->dims[1];
    for (int i = 0; i < nd; i++) y->dims[2 + i] = p.g.out[3 - nd + i];
    if (!is_max) {
        p.rq = calloc((size_t)p.taps + 1, sizeof *p.rq);
        if (!p.rq) return sqz_op_fail(ctx, "%s: out of memory", op);
        for (int64_t c = 1; c <= p.taps; c++)
            if (sqz_rq_make((double)sx / ((double)sy * (double)c), &p.rq[c])) {
                free(p.rq);
                return sqz_op_fail(ctx, "%s (int8): scale ratio unsupported", op);
            }
    }
    ipool_p *pp = malloc(sizeof *pp);
    if (!pp) {
        free(p.rq);
        return sqz_op_fail(ctx, "%s: out of memory", op);
    }
    *pp = p;
    ctx->params = pp;
    return 0;
}

static int imaxpool_prepare(sqz_op_ctx *ctx) {
    return ipool_prepare(ctx, 1);
}
static int iavgpool_prepare(sqz_op_ctx *ctx) {
    return ipool_prepare(ctx, 0);
}

static void ipool_run(const sqz_op_ctx *ctx) {
    const ipool_p *p = ctx->params;
    const ref_geom *g = &p->g;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    for (int64_t nc = 0; nc < p->NC; nc++) {
        const int8_t *x = X + nc * p->in_sp;
        int8_t *y = Y + nc * p->out_sp;
        for (int64_t od = 0; od < g->out[0]; od++)
            for (int64_t oh = 0; oh < g->out[1]; oh++)
                for (int64_t ow = 0; ow < g->out[2]; ow++) {
                    int64_t o[3] = {od, oh, ow};
                    int64_t st[3], cnt_pad = 1;
                    for (int i = 0; i < 3; i++) {
                        st[i] = o[i] * g->s[i] - g->pb[i];
                        if (!p->is_max && p->count_include_pad) {
                            int64_t c = 0;
                            for (int64_t k = 0; k < g->k[i]; k++) {
                                int64_t pos = st[i] + k * g->d[i];
                                if (pos >= -g->pb[i] && pos < g->in[i] + g->pe[i]) c++;
                            }
                            cnt_pad *= c;
                        }
                    }
                    int32_t mx = -128;
                    int64_t sum = 0, cnt = 0;
                    for (int64_t kd = 0; kd < g->k[0]; kd++) {
                        int64_t id = st[0] + kd * g->d[0];
                        if (id < 0 || id >= g->in[0]) continue;
                        for (int64_t kh = 0; kh < g->k[1]; kh++) {
                            int64_t ih = st[1] + kh * g->d[1];
                            if (ih < 0 || ih >= g->in[1]) continue;
                            const int8_t *xr = x + (id * g->in[1] + ih) * g->in[2];
                            for (int64_t kw = 0; kw < g->k[2]; kw++) {
                                int64_t iw = st[2] + kw * g->d[2];
                                if (iw < 0 || iw >= g->in[2]) continue;
                                int32_t v = xr[iw];
                                if (v > mx) mx = v;
                                sum += v - p->zp_x;
                                cnt++;
                            }
                        }
                    }
                    int8_t r;
                    int64_t div = p->count_include_pad ? cnt_pad : cnt;
                    if (p->is_max)
                        r = (int8_t)mx;
                    else if (div <= 0)
                        r = (int8_t)p->zp_y;
                    else
                        r = (int8_t)sqz_rq_apply(sum, p->rq[div], p->zp_y, -128, 127);
                    y[(od * g->out[1] + oh) * g->out[2] + ow] = r;
                }
    }
}

const sqz_op_impl sqz_ref_i8_maxpool = {imaxpool_prepare, ipool_run, ipool_free, NULL};
const sqz_op_impl sqz_ref_i8_avgpool = {iavgpool_prepare, ipool_run, ipool_free, NULL};

/* ---------------------------------------------------- GlobalAveragePool */

typedef struct igap_p {
    int64_t NC, sp;
    int32_t zp_x, zp_y;
    sqz_rq rq;
} igap_p;

static int igap_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    if (x->ndim < 2) return sqz_op_fail(ctx, "GlobalAveragePool: input rank %d < 2", x->ndim);
    igap_p p;
    float sx, sy;
    if (sqz_i8_in_params(ctx, 0, &sx, &p.zp_x) || sqz_i8_out_params(ctx, 0, &sy, &p.zp_y))
        return -1;
    p.NC = x->dims[0] * x->dims[1];
    p.sp = ref_prod(x->dims, 2, x->ndim);
    if (p.sp > (1 << 24))
        return sqz_op_fail(ctx, "GlobalAveragePool (int8): %lld positions too many",
                           (long long)p.sp);
    p.rq.s = 0.0f;
    if (p.sp > 0 && sqz_rq_make((double)sx / ((double)sy * (double)p.sp), &p.rq))
        return sqz_op_fail(ctx, "GlobalAveragePool (int8): scale ratio unsupported");
    sqz_shape o = *x;
    for (int i = 2; i < o.ndim; i++) o.dims[i] = 1;
    ctx->out_shape[0] = o;
    igap_p *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "GlobalAveragePool: out of memory");
    *pp = p;
    ctx->params = pp;
    return 0;
}

static void igap_run(const sqz_op_ctx *ctx) {
    const igap_p *p = ctx->params;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    for (int64_t i = 0; i < p->NC; i++) {
        const int8_t *x = X + i * p->sp;
        int64_t s = 0;
        for (int64_t k = 0; k < p->sp; k++) s += x[k];
        s -= p->sp * p->zp_x;
        Y[i] = p->sp ? (int8_t)sqz_rq_apply(s, p->rq, p->zp_y, -128, 127) : (int8_t)p->zp_y;
    }
}

const sqz_op_impl sqz_ref_i8_global_avgpool = {igap_prepare, igap_run, free, NULL};

/* --------------------------------------------------------------- Concat */

typedef struct iconcat_p {
    int64_t outer, inner_out;
    uint32_t n;
    int32_t zp_y;
    struct {
        int64_t inner; /* elements per outer step */
        int32_t zp;
        int copy; /* same params as Y */
        sqz_rq rq;
    } in[];
} iconcat_p;

static int iconcat_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 4096, 1)) return -1;
    const sqz_shape *x0 = &ctx->in_shape[0];
    int axis;
    if (ref_norm_axis(ctx, "axis", sqz_attr_int(ctx->node, "axis", 0), x0->ndim, 0, &axis))
        return -1;
    float sy;
    int32_t zy;
    if (sqz_i8_out_params(ctx, 0, &sy, &zy)) return -1;
    iconcat_p *p = calloc(1, sizeof *p + ctx->n_in * sizeof p->in[0]);
    if (!p) return sqz_op_fail(ctx, "Concat: out of memory");
    p->n = ctx->n_in;
    p->zp_y = zy;
    sqz_shape o = *x0;
    o.dims[axis] = 0;
    int64_t inner = ref_prod(x0->dims, axis + 1, x0->ndim);
    for (uint32_t i = 0; i < ctx->n_in; i++) {
        const sqz_shape *x = &ctx->in_shape[i];
        float s;
        int fail = x->ndim != x0->ndim;
        for (int d = 0; d < x0->ndim && !fail; d++)
            if (d != axis && x->dims[d] != x0->dims[d]) fail = 1;
        if (fail) {
            free(p);
            return sqz_op_fail(ctx, "Concat (int8): input %u shape does not match input 0", i);
        }
        if (sqz_i8_in_params(ctx, i, &s, &p->in[i].zp)) {
            free(p);
            return -1;
        }
        if (sqz_rq_make((double)s / sy, &p->in[i].rq)) {
            free(p);
            return sqz_op_fail(ctx, "Concat (int8): input %u scale ratio unsupported", i);
        }
        p->in[i].copy = same_params(s, p->in[i].zp, sy, zy);
        p->in[i].inner = x->dims[axis] * inner;
        o.dims[axis] += x->dims[axis];
    }
    if (ref_check_size(ctx, o.ndim, o.dims)) {
        free(p);
        return -1;
    }
    p->outer = ref_prod(x0->dims, 0, axis);
    p->inner_out = o.dims[axis] * inner;
    ctx->out_shape[0] = o;
    ctx->params = p;
    return 0;
}

static void iconcat_run(const sqz_op_ctx *ctx) {
    const iconcat_p *p = ctx->params;
    int8_t *Y = (int8_t *)ctx->out_data[0];
    int32_t zy = p->zp_y;
    int64_t off = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        const int8_t *X = (const int8_t *)ctx->in_data[i];
        int64_t w = p->in[i].inner;
        for (int64_t o = 0; o < p->outer; o++) {
            int8_t *y = Y + o * p->inner_out + off;
            const int8_t *x = X + o * w;
            if (p->in[i].copy) {
                if (w) memcpy(y, x, (size_t)w);
            } else {
                for (int64_t k = 0; k < w; k++)
                    y[k] = (int8_t)sqz_rq_apply((int32_t)x[k] - p->in[i].zp, p->in[i].rq, zy, -128,
                                                127);
            }
        }
        off += w;
    }
}

const sqz_op_impl sqz_ref_i8_concat = {iconcat_prepare, iconcat_run, free, NULL};

/* ---------------------------------------------------------------- views */

/* Shape logic is the f32 reference's (dtype-agnostic); the data is bytes. */
static int view_prepare(sqz_op_ctx *ctx, const sqz_op_impl *f32) {
    const char *op = ref_opname(ctx);
    if (ctx->n_in < 1 || ctx->n_out != 1)
        return sqz_op_fail(ctx, "%s (int8): expects 1 data input and 1 output", op);
    float sx, sy;
    int32_t zx, zy;
    if (sqz_i8_in_params(ctx, 0, &sx, &zx) || sqz_i8_out_params(ctx, 0, &sy, &zy)) return -1;
    if (!same_params(sx, zx, sy, zy))
        return sqz_op_fail(ctx, "%s (int8): output parameters must equal the input's", op);
    return f32->prepare(ctx); /* views keep no params */
}

static void iview_run(const sqz_op_ctx *ctx) {
    int64_t n = numel_of(&ctx->in_shape[0]);
    const void *x = ctx->in_data[0];
    void *y = ctx->out_data[0];
    if (n > 0 && x != y) memmove(y, x, (size_t)n);
}

#define I8_VIEW(name, f32impl)                                                                     \
    static int name##_prepare(sqz_op_ctx *ctx) {                                                   \
        return view_prepare(ctx, &f32impl);                                                        \
    }                                                                                              \
    const sqz_op_impl sqz_ref_i8_##name = {name##_prepare, iview_run, NULL, NULL};

/* Slice / Transpose: the f32 prepare's element strides (ref_strided) over
 * bytes; Y params == X params (a copy, no requantization). */
static void istrided_run(const sqz_op_ctx *ctx) {
    const ref_strided *p = ctx->params;
    const int8_t *x = (const int8_t *)ctx->in_data[0];
    int8_t *y = (int8_t *)ctx->out_data[0];
    int64_t total = ref_prod(p->dims, 0, p->nd);
    if (total <= 0) return;
    if (p->nd == 0) {
        y[0] = x[p->base];
        return;
    }
    int64_t idx[SQZ_MAX_DIMS] = {0};
    const int nd = p->nd;
    const int64_t inner = p->dims[nd - 1], ist = p->st[nd - 1];
    int64_t off = p->base;
    for (int64_t o = 0; o < total; o += inner) {
        const int8_t *xp = x + off;
        if (ist == 1)
            memcpy(y + o, xp, (size_t)inner);
        else
            for (int64_t i = 0; i < inner; i++) y[o + i] = xp[i * ist];
        for (int d = nd - 2; d >= 0; d--) {
            idx[d]++;
            off += p->st[d];
            if (idx[d] < p->dims[d]) break;
            off -= idx[d] * p->st[d];
            idx[d] = 0;
        }
    }
}

/* The index space simplified (as common/copy_fast.c does for f32): size-1
 * dims dropped, dims contiguous in the input merged, so a channel shuffle
 * copies whole planes and a channel Slice is one memcpy. */
static int strided_prepare(sqz_op_ctx *ctx, const sqz_op_impl *f32) {
    int rc = view_prepare(ctx, f32);
    if (rc) return rc;
    ref_strided *p = ctx->params;
    int n = 0;
    for (int d = 0; d < p->nd; d++) {
        if (p->dims[d] == 1) continue;
        if (n > 0 && p->st[n - 1] == p->st[d] * p->dims[d]) {
            p->dims[n - 1] *= p->dims[d];
            p->st[n - 1] = p->st[d];
            continue;
        }
        p->dims[n] = p->dims[d];
        p->st[n] = p->st[d];
        n++;
    }
    if (n == 0) {
        p->dims[0] = p->st[0] = 1;
        n = 1;
    }
    p->nd = n;
    return 0;
}

#define I8_STRIDED(name, f32impl)                                                                  \
    static int name##_prepare(sqz_op_ctx *ctx) {                                                   \
        return strided_prepare(ctx, &f32impl);                                                     \
    }                                                                                              \
    const sqz_op_impl sqz_ref_i8_##name = {name##_prepare, istrided_run, free, NULL};

I8_STRIDED(slice, sqz_ref_slice)
I8_STRIDED(transpose, sqz_ref_transpose)

/* Split: every output keeps X's params; the f32 prepare's ref_split. */
static int isplit_prepare(sqz_op_ctx *ctx) {
    if (ctx->n_in < 1 || ctx->n_out < 1)
        return sqz_op_fail(ctx, "Split (int8): expects 1 data input and outputs");
    float sx, sy = 0.0f;
    int32_t zx, zy = 0;
    if (sqz_i8_in_params(ctx, 0, &sx, &zx)) return -1;
    for (uint32_t i = 0; i < ctx->n_out; i++) {
        if (sqz_i8_out_params(ctx, i, &sy, &zy)) return -1;
        if (!same_params(sx, zx, sy, zy))
            return sqz_op_fail(ctx, "Split (int8): output %u parameters must equal the input's", i);
    }
    return sqz_ref_split.prepare(ctx);
}

static void isplit_run(const sqz_op_ctx *ctx) {
    const ref_split *p = ctx->params;
    const int8_t *x = (const int8_t *)ctx->in_data[0];
    int64_t off = 0;
    for (uint32_t i = 0; i < ctx->n_out; i++) {
        int64_t chunk = p->outer ? numel_of(&ctx->out_shape[i]) / p->outer : 0;
        int8_t *y = (int8_t *)ctx->out_data[i];
        for (int64_t o = 0; o < p->outer && chunk > 0; o++)
            memcpy(y + o * chunk, x + o * p->in_inner + off, (size_t)chunk);
        off += chunk;
    }
}

const sqz_op_impl sqz_ref_i8_split = {isplit_prepare, isplit_run, free, NULL};

I8_VIEW(reshape, sqz_ref_reshape)
I8_VIEW(flatten, sqz_ref_flatten)
I8_VIEW(squeeze, sqz_ref_squeeze)
I8_VIEW(unsqueeze, sqz_ref_unsqueeze)
I8_VIEW(identity, sqz_ref_identity)
