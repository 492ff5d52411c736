/* common.c - helpers shared by the reference kernels. */
#include <math.h>
#include <string.h>

#include "ref/ref.h"

const char *ref_opname(const sqz_op_ctx *ctx) {
    const char *n = ctx && ctx->node ? sqz_op_name(ctx->node->op) : NULL;
    return n ? n : "?";
}

int ref_check_io(sqz_op_ctx *ctx, uint32_t min_in, uint32_t max_in, uint32_t n_out) {
    const char *op = ref_opname(ctx);
    if (ctx->n_in < min_in || ctx->n_in > max_in) {
        if (min_in == max_in)
            return sqz_op_fail(ctx, "%s expects %u inputs, got %u", op, min_in, ctx->n_in);
        return sqz_op_fail(ctx, "%s expects %u..%u inputs, got %u", op, min_in, max_in, ctx->n_in);
    }
    for (uint32_t i = 0; i < ctx->n_in; i++) {
        int nd = ctx->in_shape[i].ndim;
        if (i < min_in && nd < 0) return sqz_op_fail(ctx, "%s input %u is required", op, i);
        if (nd > SQZ_MAX_DIMS)
            return sqz_op_fail(ctx, "%s input %u has rank %d > %d", op, i, nd, SQZ_MAX_DIMS);
        int64_t n = 1;
        for (int d = 0; d < nd; d++) {
            int64_t v = ctx->in_shape[i].dims[d];
            if (v < 0) return sqz_op_fail(ctx, "%s input %u has negative dim %d", op, i, d);
            if (v > REF_MAX_NUMEL || (v > 0 && n > REF_MAX_NUMEL / v))
                return sqz_op_fail(ctx, "%s input %u is too large", op, i);
            n *= v;
        }
    }
    if (n_out > 0 && ctx->n_out != n_out)
        return sqz_op_fail(ctx, "%s expects %u outputs, got %u", op, n_out, ctx->n_out);
    if (ctx->n_out < 1) return sqz_op_fail(ctx, "%s has no output", op);
    return 0;
}

int ref_check_size(sqz_op_ctx *ctx, int nd, const int64_t *dims) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) {
        int64_t v = dims[d];
        if (v < 0 || v > REF_MAX_NUMEL || (v > 0 && n > REF_MAX_NUMEL / v))
            return sqz_op_fail(ctx, "%s: output too large or negative (dim %d = %lld)",
                               ref_opname(ctx), d, (long long)v);
        n *= v;
    }
    return 0;
}

int ref_norm_axis(sqz_op_ctx *ctx, const char *attr, int64_t axis, int rank, int allow_end,
                  int *out) {
    int64_t hi = allow_end ? rank : rank - 1;
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a > hi)
        return sqz_op_fail(ctx, "%s: %s=%lld out of range for rank %d", ref_opname(ctx), attr,
                           (long long)axis, rank);
    *out = (int)a;
    return 0;
}

int ref_ints_n(sqz_op_ctx *ctx, const char *name, int n, int64_t dflt, int64_t *out) {
    const int64_t *v;
    int c = sqz_attr_ints(ctx->node, name, &v);
    if (c < 0) {
        for (int i = 0; i < n; i++) out[i] = dflt;
        return 0;
    }
    if (c != n)
        return sqz_op_fail(ctx, "%s: attribute %s has %d values, expected %d", ref_opname(ctx),
                           name, c, n);
    for (int i = 0; i < n; i++) out[i] = v[i];
    return 0;
}

void ref_strides(const sqz_shape *s, int64_t *st) {
    int64_t acc = 1;
    for (int d = s->ndim - 1; d >= 0; d--) {
        st[d] = acc;
        acc *= s->dims[d];
    }
}

int64_t ref_prod(const int64_t *dims, int from, int to) {
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= dims[i];
    return p;
}

void ref_strided_copy(float *y, const float *x, int nd, const int64_t *dims, int64_t base,
                      const int64_t *xst) {
    int64_t total = ref_prod(dims, 0, nd);
    if (total <= 0) return;
    if (nd == 0) {
        y[0] = x[base];
        return;
    }
    int64_t idx[SQZ_MAX_DIMS] = {0};
    int64_t inner = dims[nd - 1], ist = xst[nd - 1];
    int64_t off = base;
    for (int64_t o = 0; o < total; o += inner) {
        const float *xp = x + off;
        if (ist == 1) {
            memcpy(y + o, xp, (size_t)inner * sizeof(float));
        } else {
            for (int64_t i = 0; i < inner; i++) y[o + i] = xp[i * ist];
        }
        /* advance the outer counters */
        for (int d = nd - 2; d >= 0; d--) {
            idx[d]++;
            off += xst[d];
            if (idx[d] < dims[d]) break;
            off -= idx[d] * xst[d];
            idx[d] = 0;
        }
    }
}

/* ------------------------------------------------------------ activations */

int ref_act_prepare(sqz_op_ctx *ctx, ref_act *act) {
    int64_t k = sqz_attr_int(ctx->node, "sqz_act", SQZ_ACT_NONE);
    if (k < SQZ_ACT_NONE || k > SQZ_ACT_TANH)
        return sqz_op_fail(ctx, "%s: sqz_act=%lld unsupported", ref_opname(ctx), (long long)k);
    act->kind = (int)k;
    float da = 0.0f, db = 0.0f;
    switch (act->kind) {
    case SQZ_ACT_CLIP:
        da = -INFINITY;
        db = INFINITY;
        break;
    case SQZ_ACT_LEAKY_RELU:
        da = 0.01f;
        break;
    case SQZ_ACT_HARD_SIGMOID:
        da = 0.2f;
        db = 0.5f;
        break;
    default:
        break;
    }
    act->alpha = sqz_attr_float(ctx->node, "sqz_act_alpha", da);
    act->beta = sqz_attr_float(ctx->node, "sqz_act_beta", db);
    return 0;
}

float ref_act_eval(const ref_act *act, float v) {
    switch (act->kind) {
    case SQZ_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case SQZ_ACT_CLIP:
        return v < act->alpha ? act->alpha : (v > act->beta ? act->beta : v);
    case SQZ_ACT_LEAKY_RELU:
        return v < 0.0f ? v * act->alpha : v;
    case SQZ_ACT_HARD_SWISH: {
        float t = v / 6.0f + 0.5f;
        t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
        return v * t;
    }
    case SQZ_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-v));
    case SQZ_ACT_HARD_SIGMOID: {
        float t = act->alpha * v + act->beta;
        return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    }
    case SQZ_ACT_TANH:
        return tanhf(v);
    default:
        return v;
    }
}

void ref_act_apply(const ref_act *act, float *y, size_t n) {
    if (act->kind == SQZ_ACT_NONE) return;
    if (act->kind == SQZ_ACT_RELU) {
        for (size_t i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
        return;
    }
    for (size_t i = 0; i < n; i++) y[i] = ref_act_eval(act, y[i]);
}

/* --------------------------------------------------------------- geometry */

int ref_geom_prepare(sqz_op_ctx *ctx, ref_geom *g, int nd, const int64_t *in_sp,
                     const int64_t *kshape, int pool) {
    const char *op = ref_opname(ctx);
    int64_t k[3], s[3], d[3], p[6];
    if (nd < 1 || nd > 3) return sqz_op_fail(ctx, "%s: %d spatial dims unsupported (1..3)", op, nd);
    const int64_t *kv;
    int kc = sqz_attr_ints(ctx->node, "kernel_shape", &kv);
    if (kc < 0) {
        if (!kshape) return sqz_op_fail(ctx, "%s: attribute kernel_shape is required", op);
        memcpy(k, kshape, (size_t)nd * sizeof(int64_t));
    } else {
        if (kc != nd)
            return sqz_op_fail(ctx, "%s: kernel_shape has %d values, expected %d", op, kc, nd);
        for (int i = 0; i < nd; i++) {
            k[i] = kv[i];
            if (kshape && kshape[i] != k[i])
                return sqz_op_fail(ctx, "%s: kernel_shape[%d]=%lld does not match W (%lld)", op, i,
                                   (long long)k[i], (long long)kshape[i]);
        }
    }
    if (ref_ints_n(ctx, "strides", nd, 1, s) || ref_ints_n(ctx, "dilations", nd, 1, d) ||
        ref_ints_n(ctx, "pads", 2 * nd, 0, p))
        return -1;
    for (int i = 0; i < nd; i++) {
        if (k[i] > REF_MAX_NUMEL || s[i] > REF_MAX_NUMEL || d[i] > REF_MAX_NUMEL ||
            p[i] > REF_MAX_NUMEL || p[i + nd] > REF_MAX_NUMEL ||
            (d[i] > 0 && k[i] - 1 > REF_MAX_NUMEL / d[i]))
            return sqz_op_fail(ctx, "%s: kernel_shape/strides/dilations/pads out of range", op);
        if (k[i] < 1)
            return sqz_op_fail(ctx, "%s: kernel_shape[%d]=%lld invalid", op, i, (long long)k[i]);
        if (s[i] < 1)
            return sqz_op_fail(ctx, "%s: strides[%d]=%lld invalid", op, i, (long long)s[i]);
        if (d[i] < 1)
            return sqz_op_fail(ctx, "%s: dilations[%d]=%lld invalid", op, i, (long long)d[i]);
        if (p[i] < 0 || p[i + nd] < 0) return sqz_op_fail(ctx, "%s: negative pads unsupported", op);
    }
    const char *ap = sqz_attr_str(ctx->node, "auto_pad", "NOTSET");
    int mode; /* 0 notset, 1 same_upper, 2 same_lower, 3 valid */
    if (strcmp(ap, "NOTSET") == 0 || ap[0] == '\0')
        mode = 0;
    else if (strcmp(ap, "SAME_UPPER") == 0)
        mode = 1;
    else if (strcmp(ap, "SAME_LOWER") == 0)
        mode = 2;
    else if (strcmp(ap, "VALID") == 0)
        mode = 3;
    else
        return sqz_op_fail(ctx, "%s: auto_pad=\"%s\" unsupported", op, ap);
    int64_t ceil_mode = pool ? sqz_attr_int(ctx->node, "ceil_mode", 0) : 0;
    if (ceil_mode != 0 && ceil_mode != 1)
        return sqz_op_fail(ctx, "%s: ceil_mode=%lld invalid", op, (long long)ceil_mode);

    memset(g, 0, sizeof(*g));
    g->nd = nd;
    for (int i = 0; i < 3; i++) {
        g->in[i] = g->out[i] = g->k[i] = g->s[i] = g->d[i] = 1;
        g->pb[i] = g->pe[i] = 0;
    }
    for (int i = 0; i < nd; i++) {
        int j = 3 - nd + i;
        int64_t in = in_sp[i], dk = (k[i] - 1) * d[i] + 1, out, pb = 0, pe = 0;
        if (mode == 1 || mode == 2) {
            out = (in + s[i] - 1) / s[i];
            int64_t total = (out - 1) * s[i] + dk - in;
            if (total < 0) total = 0;
            if (mode == 1) {
                pb = total / 2;
                pe = total - pb;
            } else {
                pe = total / 2;
                pb = total - pe;
            }
        } else {
            if (mode == 0) {
                pb = p[i];
                pe = p[i + nd];
            }
            int64_t span = in + pb + pe - dk;
            if (span < 0)
                return sqz_op_fail(ctx,
                                   "%s: kernel extent %lld larger than padded input %lld on "
                                   "spatial dim %d",
                                   op, (long long)dk, (long long)(in + pb + pe), i);
            if (ceil_mode && mode == 0) {
                out = (span + s[i] - 1) / s[i] + 1;
                if ((out - 1) * s[i] >= in + pb) out--;
            } else {
                out = span / s[i] + 1;
            }
        }
        g->in[j] = in;
        g->out[j] = out;
        g->k[j] = k[i];
        g->s[j] = s[i];
        g->d[j] = d[i];
        g->pb[j] = pb;
        g->pe[j] = pe;
    }
    return 0;
}
