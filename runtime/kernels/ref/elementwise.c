/* elementwise.c - unary activations, broadcasting binary ops, PRelu,
 * BatchNormalization (inference). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

/* ------------------------------------------------------------------ unary */

typedef struct unary_p {
    float a, b;
} unary_p;

static int unary_common(sqz_op_ctx *ctx, uint32_t max_in, float a, float b) {
    if (ref_check_io(ctx, 1, max_in, 1)) return -1;
    ctx->out_shape[0] = ctx->in_shape[0];
    unary_p *p = malloc(sizeof(*p));
    if (!p) return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    p->a = a;
    p->b = b;
    ctx->params = p;
    return 0;
}

static int plain_prepare(sqz_op_ctx *ctx) {
    return unary_common(ctx, 1, 0.0f, 0.0f);
}

static int leaky_prepare(sqz_op_ctx *ctx) {
    return unary_common(ctx, 1, sqz_attr_float(ctx->node, "alpha", 0.01f), 0.0f);
}

static int hsig_prepare(sqz_op_ctx *ctx) {
    return unary_common(ctx, 1, sqz_attr_float(ctx->node, "alpha", 0.2f),
                        sqz_attr_float(ctx->node, "beta", 0.5f));
}

static int clip_prepare(sqz_op_ctx *ctx) {
    /* min / max arrive as attributes; a still-present scalar input (opset 11+)
     * is honoured at run time. */
    for (uint32_t i = 1; i < ctx->n_in && i < 3; i++)
        if (ref_has_input(ctx, i) && sqz_shape_numel(&ctx->in_shape[i]) != 1)
            return sqz_op_fail(ctx, "Clip: %s input must be a scalar", i == 1 ? "min" : "max");
    return unary_common(ctx, 3, sqz_attr_float(ctx->node, "min", -INFINITY),
                        sqz_attr_float(ctx->node, "max", INFINITY));
}

#define UNARY_RUN(fname, expr)                                                                     \
    static void fname(const sqz_op_ctx *ctx) {                                                     \
        const unary_p *p = ctx->params;                                                            \
        const float *x = ctx->in_data[0];                                                          \
        float *y = ctx->out_data[0];                                                               \
        int64_t n = sqz_shape_numel(&ctx->out_shape[0]);                                           \
        float pa = p->a, pb = p->b;                                                                \
        (void)pa;                                                                                  \
        (void)pb;                                                                                  \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float v = x[i];                                                                        \
            y[i] = (expr);                                                                         \
        }                                                                                          \
    }

static inline float sigmoidf(float v) {
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

static inline float clampf(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

UNARY_RUN(relu_run, v > 0.0f ? v : 0.0f)
UNARY_RUN(leaky_run, v < 0.0f ? v * pa : v)
UNARY_RUN(sigmoid_run, sigmoidf(v))
UNARY_RUN(hsig_run, clampf(pa *v + pb, 0.0f, 1.0f))
UNARY_RUN(hswish_run, v *clampf(v / 6.0f + 0.5f, 0.0f, 1.0f))
UNARY_RUN(tanh_run, tanhf(v))
UNARY_RUN(sqrt_run, sqrtf(v))

static void clip_run(const sqz_op_ctx *ctx) {
    const unary_p *p = ctx->params;
    float lo = p->a, hi = p->b;
    if (ref_has_input(ctx, 1) && ctx->in_data[1]) lo = ctx->in_data[1][0];
    if (ref_has_input(ctx, 2) && ctx->in_data[2]) hi = ctx->in_data[2][0];
    const float *x = ctx->in_data[0];
    float *y = ctx->out_data[0];
    int64_t n = sqz_shape_numel(&ctx->out_shape[0]);
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        v = v < lo ? lo : v;
        y[i] = v > hi ? hi : v;
    }
}

const sqz_op_impl sqz_ref_relu = {plain_prepare, relu_run, free, NULL};
const sqz_op_impl sqz_ref_leaky_relu = {leaky_prepare, leaky_run, free, NULL};
const sqz_op_impl sqz_ref_clip = {clip_prepare, clip_run, free, NULL};
const sqz_op_impl sqz_ref_sigmoid = {plain_prepare, sigmoid_run, free, NULL};
const sqz_op_impl sqz_ref_hard_sigmoid = {hsig_prepare, hsig_run, free, NULL};
const sqz_op_impl sqz_ref_hard_swish = {plain_prepare, hswish_run, free, NULL};
const sqz_op_impl sqz_ref_tanh = {plain_prepare, tanh_run, free, NULL};
const sqz_op_impl sqz_ref_sqrt = {plain_prepare, sqrt_run, free, NULL};

/* ----------------------------------------------------------------- binary */

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_POW, BIN_PRELU };

typedef struct bin_p {
    int kind;
    int nd; /* collapsed rank (>= 1) */
    int64_t dims[SQZ_MAX_DIMS], ast[SQZ_MAX_DIMS], bst[SQZ_MAX_DIMS];
    int64_t total;
} bin_p;

static int bin_prepare_kind(sqz_op_ctx *ctx, int kind) {
    if (ref_check_io(ctx, 2, 2, 1)) return -1;
    const sqz_shape *a = &ctx->in_shape[0], *b = &ctx->in_shape[1];
    sqz_shape o;
    o.ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t as[SQZ_MAX_DIMS], bs[SQZ_MAX_DIMS], sa[SQZ_MAX_DIMS], sb[SQZ_MAX_DIMS];
    ref_strides(a, sa);
    ref_strides(b, sb);
    for (int i = 0; i < o.ndim; i++) {
        int ia = i - (o.ndim - a->ndim), ib = i - (o.ndim - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return sqz_op_fail(ctx, "%s: shapes do not broadcast (dim %d: %lld vs %lld)",
                               ref_opname(ctx), i, (long long)da, (long long)db);
        o.dims[i] = da == 1 ? db : da;
        as[i] = (da == 1) ? 0 : sa[ia];
        bs[i] = (db == 1) ? 0 : sb[ib];
    }
    if (kind == BIN_PRELU) {
        if (o.ndim != a->ndim)
            return sqz_op_fail(ctx, "PRelu: slope rank %d exceeds X rank %d", b->ndim, a->ndim);
        for (int i = 0; i < o.ndim; i++)
            if (o.dims[i] != a->dims[i])
                return sqz_op_fail(ctx, "PRelu: slope does not broadcast to X (dim %d)", i);
    }
    bin_p *p = calloc(1, sizeof(*p));
    if (!p) return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    p->kind = kind;
    p->total = sqz_shape_numel(&o);
    /* drop size-1 dims, then merge dims that are contiguous for both operands */
    int nd = 0;
    for (int i = 0; i < o.ndim; i++) {
        if (o.dims[i] == 1) continue;
        if (nd > 0) {
            int j = nd - 1;
            int okA =
                (p->ast[j] == 0 && as[i] == 0) || (as[i] != 0 && p->ast[j] == as[i] * o.dims[i]);
            int okB =
                (p->bst[j] == 0 && bs[i] == 0) || (bs[i] != 0 && p->bst[j] == bs[i] * o.dims[i]);
            if (okA && okB) {
                p->dims[j] *= o.dims[i];
                p->ast[j] = as[i];
                p->bst[j] = bs[i];
                continue;
            }
        }
        p->dims[nd] = o.dims[i];
        p->ast[nd] = as[i];
        p->bst[nd] = bs[i];
        nd++;
    }
    if (nd == 0) {
        p->dims[0] = 1;
        p->ast[0] = p->bst[0] = 0;
        nd = 1;
    }
    p->nd = nd;
    ctx->out_shape[0] = o;
    ctx->params = p;
    return 0;
}

#define BIN_LOOP(expr)                                                                             \
    for (int64_t i = 0; i < inner; i++) {                                                          \
        float u = ap[i * ias], v = bp[i * ibs];                                                    \
        yp[i] = (expr);                                                                            \
    }

static void bin_run(const sqz_op_ctx *ctx) {
    const bin_p *p = ctx->params;
    const float *A = ctx->in_data[0], *B = ctx->in_data[1];
    float *Y = ctx->out_data[0];
    if (p->total <= 0) return;
    int nd = p->nd;
    int64_t inner = p->dims[nd - 1], ias = p->ast[nd - 1], ibs = p->bst[nd - 1];
    int64_t idx[SQZ_MAX_DIMS] = {0}, ao = 0, bo = 0;
    for (int64_t o = 0; o < p->total; o += inner) {
        const float *ap = A + ao, *bp = B + bo;
        float *yp = Y + o;
        switch (p->kind) {
        case BIN_ADD:
            BIN_LOOP(u + v) break;
        case BIN_SUB:
            BIN_LOOP(u - v) break;
        case BIN_MUL:
            BIN_LOOP(u * v) break;
        case BIN_DIV:
            BIN_LOOP(u / v) break;
        case BIN_POW:
            BIN_LOOP(powf(u, v)) break;
        default:
            BIN_LOOP(u < 0.0f ? u * v : u) break;
        }
        for (int d = nd - 2; d >= 0; d--) {
            idx[d]++;
            ao += p->ast[d];
            bo += p->bst[d];
            if (idx[d] < p->dims[d]) break;
            ao -= idx[d] * p->ast[d];
            bo -= idx[d] * p->bst[d];
            idx[d] = 0;
        }
    }
}

static int add_prepare(sqz_op_ctx *ctx) {
    return bin_prepare_kind(ctx, BIN_ADD);
}
static int sub_prepare(sqz_op_ctx *ctx) {
    return bin_prepare_kind(ctx, BIN_SUB);
}
static int mul_prepare(sqz_op_ctx *ctx) {
    return bin_prepare_kind(ctx, BIN_MUL);
}
static int div_prepare(sqz_op_ctx *ctx) {
    return bin_prepare_kind(ctx, BIN_DIV);
}
static int pow_prepare(sqz_op_ctx *ctx) {
    return bin_prepare_kind(ctx, BIN_POW);
}
static int prelu_prepare(sqz_op_ctx *ctx) {
    return bin_prepare_kind(ctx, BIN_PRELU);
}

const sqz_op_impl sqz_ref_add = {add_prepare, bin_run, free, NULL};
const sqz_op_impl sqz_ref_sub = {sub_prepare, bin_run, free, NULL};
const sqz_op_impl sqz_ref_mul = {mul_prepare, bin_run, free, NULL};
const sqz_op_impl sqz_ref_div = {div_prepare, bin_run, free, NULL};
const sqz_op_impl sqz_ref_pow = {pow_prepare, bin_run, free, NULL};
const sqz_op_impl sqz_ref_prelu = {prelu_prepare, bin_run, free, NULL};

/* ------------------------------------------------------------- BatchNorm */

typedef struct bn_p {
    float eps;
    int64_t N, C, inner;
} bn_p;

static int bn_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 5, 5, 0)) return -1;
    int64_t tm = sqz_attr_int(ctx->node, "training_mode", 0);
    if (tm != 0)
        return sqz_op_fail(ctx,
                           "BatchNormalization: training_mode=%lld unsupported "
                           "(inference only)",
                           (long long)tm);
    if (ctx->n_out != 1)
        return sqz_op_fail(ctx,
                           "BatchNormalization: %u outputs unsupported (training outputs "
                           "running_mean/var are not produced)",
                           ctx->n_out);
    int64_t spatial = sqz_attr_int(ctx->node, "spatial", 1);
    if (spatial != 1)
        return sqz_op_fail(ctx, "BatchNormalization: spatial=%lld unsupported", (long long)spatial);
    const sqz_shape *x = &ctx->in_shape[0];
    if (x->ndim < 2) return sqz_op_fail(ctx, "BatchNormalization: X rank %d < 2", x->ndim);
    int64_t C = x->dims[1];
    static const char *const names[] = {"scale", "B", "mean", "var"};
    for (int i = 1; i < 5; i++) {
        const sqz_shape *s = &ctx->in_shape[i];
        if (sqz_shape_numel(s) != C || s->ndim > 1)
            return sqz_op_fail(ctx, "BatchNormalization: %s must have shape [%lld]", names[i - 1],
                               (long long)C);
    }
    bn_p *p = malloc(sizeof(*p));
    if (!p) return sqz_op_fail(ctx, "BatchNormalization: out of memory");
    p->eps = sqz_attr_float(ctx->node, "epsilon", 1e-5f);
    p->N = x->dims[0];
    p->C = C;
    p->inner = ref_prod(x->dims, 2, x->ndim);
    ctx->params = p;
    ctx->out_shape[0] = *x;
    return 0;
}

static void bn_run(const sqz_op_ctx *ctx) {
    const bn_p *p = ctx->params;
    const float *x = ctx->in_data[0], *sc = ctx->in_data[1], *bi = ctx->in_data[2];
    const float *mean = ctx->in_data[3], *var = ctx->in_data[4];
    float *y = ctx->out_data[0];
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t c = 0; c < p->C; c++) {
            float inv = sc[c] / sqrtf(var[c] + p->eps);
            float sh = bi[c] - mean[c] * inv;
            int64_t off = (n * p->C + c) * p->inner;
            for (int64_t i = 0; i < p->inner; i++) y[off + i] = x[off + i] * inv + sh;
        }
}

const sqz_op_impl sqz_ref_batchnorm = {bn_prepare, bn_run, free, NULL};
