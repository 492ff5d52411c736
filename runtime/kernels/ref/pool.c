/* pool.c - MaxPool, AveragePool, GlobalAveragePool, ReduceMean, Softmax. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

typedef struct pool_p {
    ref_geom g;
    int64_t NC, in_sp, out_sp;
    int is_max, count_include_pad;
} pool_p;

static int pool_prepare(sqz_op_ctx *ctx, int is_max) {
    const char *op = ref_opname(ctx);
    if (ref_check_io(ctx, 1, 1, 0)) return -1;
    if (ctx->n_out != 1) {
        if (is_max) return sqz_op_fail(ctx, "MaxPool Indices output not supported");
        return sqz_op_fail(ctx, "%s expects 1 output, got %u", op, ctx->n_out);
    }
    const sqz_shape *x = &ctx->in_shape[0];
    int nd = x->ndim - 2;
    if (nd < 1 || nd > 3)
        return sqz_op_fail(ctx, "%s: input rank %d unsupported (need 3..5)", op, x->ndim);
    pool_p p;
    memset(&p, 0, sizeof(p));
    p.is_max = is_max;
    if (is_max) {
        int64_t so = sqz_attr_int(ctx->node, "storage_order", 0);
        if (so != 0 && so != 1)
            return sqz_op_fail(ctx, "MaxPool: storage_order=%lld invalid", (long long)so);
    } else {
        int64_t cip = sqz_attr_int(ctx->node, "count_include_pad", 0);
        if (cip != 0 && cip != 1)
            return sqz_op_fail(ctx, "AveragePool: count_include_pad=%lld invalid", (long long)cip);
        p.count_include_pad = (int)cip;
    }
    if (ref_geom_prepare(ctx, &p.g, nd, x->dims + 2, NULL, 1)) return -1;
    p.NC = x->dims[0] * x->dims[1];
    p.in_sp = p.g.in[0] * p.g.in[1] * p.g.in[2];
    p.out_sp = p.g.out[0] * p.g.out[1] * p.g.out[2];
    sqz_shape *y = &ctx->out_shape[0];
    y->ndim = x->ndim;
    y->dims[0] = x->dims[0];
    y->dims[1] = x->dims[1];
    for (int i = 0; i < nd; i++) y->dims[2 + i] = p.g.out[3 - nd + i];
    pool_p *pp = malloc(sizeof(*pp));
    if (!pp) return sqz_op_fail(ctx, "%s: out of memory", op);
    *pp = p;
    ctx->params = pp;
    return 0;
}

static int maxpool_prepare(sqz_op_ctx *ctx) {
    return pool_prepare(ctx, 1);
}
static int avgpool_prepare(sqz_op_ctx *ctx) {
    return pool_prepare(ctx, 0);
}

static void pool_run(const sqz_op_ctx *ctx) {
    const pool_p *p = ctx->params;
    const ref_geom *g = &p->g;
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    for (int64_t nc = 0; nc < p->NC; nc++) {
        const float *x = X + nc * p->in_sp;
        float *y = Y + nc * p->out_sp;
        for (int64_t od = 0; od < g->out[0]; od++)
            for (int64_t oh = 0; oh < g->out[1]; oh++)
                for (int64_t ow = 0; ow < g->out[2]; ow++) {
                    int64_t o[3] = {od, oh, ow};
                    int64_t st[3], cnt_pad = 1;
                    for (int i = 0; i < 3; i++) {
                        st[i] = o[i] * g->s[i] - g->pb[i];
                        if (!p->is_max && p->count_include_pad) {
                            /* taps inside the padded extent [-pb, in + pe) */
                            int64_t c = 0;
                            for (int64_t k = 0; k < g->k[i]; k++) {
                                int64_t pos = st[i] + k * g->d[i];
                                if (pos >= -g->pb[i] && pos < g->in[i] + g->pe[i]) c++;
                            }
                            cnt_pad *= c;
                        }
                    }
                    float mx = -INFINITY;
                    double sum = 0.0;
                    int64_t cnt = 0;
                    for (int64_t kd = 0; kd < g->k[0]; kd++) {
                        int64_t id = st[0] + kd * g->d[0];
                        if (id < 0 || id >= g->in[0]) continue;
                        for (int64_t kh = 0; kh < g->k[1]; kh++) {
                            int64_t ih = st[1] + kh * g->d[1];
                            if (ih < 0 || ih >= g->in[1]) continue;
                            const float *xr = x + (id * g->in[1] + ih) * g->in[2];
                            for (int64_t kw = 0; kw < g->k[2]; kw++) {
                                int64_t iw = st[2] + kw * g->d[2];
                                if (iw < 0 || iw >= g->in[2]) continue;
                                float v = xr[iw];
                                if (v > mx || isnan(v)) mx = isnan(mx) ? mx : v;
                                sum += v;
                                cnt++;
                            }
                        }
                    }
                    float r;
                    if (p->is_max)
                        r = mx;
                    else if (p->count_include_pad)
                        r = cnt_pad ? (float)(sum / cnt_pad) : 0.0f;
                    else
                        r = cnt ? (float)(sum / cnt) : 0.0f;
                    y[(od * g->out[1] + oh) * g->out[2] + ow] = r;
                }
    }
}

const sqz_op_impl sqz_ref_maxpool = {maxpool_prepare, pool_run, free, NULL};
const sqz_op_impl sqz_ref_avgpool = {avgpool_prepare, pool_run, free, NULL};

/* ------------------------------------------------------ GlobalAveragePool */

static int gap_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    if (x->ndim < 2) return sqz_op_fail(ctx, "GlobalAveragePool: input rank %d < 2", x->ndim);
    sqz_shape o = *x;
    for (int i = 2; i < o.ndim; i++) o.dims[i] = 1;
    ctx->out_shape[0] = o;
    return 0;
}

static void gap_run(const sqz_op_ctx *ctx) {
    const sqz_shape *x = &ctx->in_shape[0];
    int64_t nc = x->dims[0] * x->dims[1], sp = ref_prod(x->dims, 2, x->ndim);
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    for (int64_t i = 0; i < nc; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < sp; j++) s += X[i * sp + j];
        Y[i] = sp ? (float)(s / (double)sp) : NAN;
    }
}

const sqz_op_impl sqz_ref_global_avgpool = {gap_prepare, gap_run, NULL, NULL};

/* ------------------------------------------------------------- ReduceMean */

typedef struct rmean_p {
    int nd, noop;
    int64_t dims[SQZ_MAX_DIMS], ost[SQZ_MAX_DIMS]; /* input dims, output stride (0 = reduced) */
    int64_t in_n, out_n, count;
} rmean_p;

static int rmean_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    int r = x->ndim;
    int64_t keep = sqz_attr_int(ctx->node, "keepdims", 1);
    int64_t noop = sqz_attr_int(ctx->node, "noop_with_empty_axes", 0);
    const int64_t *av;
    int na = sqz_attr_ints(ctx->node, "axes", &av);
    int red[SQZ_MAX_DIMS] = {0};
    rmean_p *p = calloc(1, sizeof(*p));
    if (!p) return sqz_op_fail(ctx, "ReduceMean: out of memory");
    if (na <= 0) {
        if (noop) p->noop = 1;
        for (int i = 0; i < r; i++) red[i] = 1;
    } else {
        for (int i = 0; i < na; i++) {
            int a;
            if (ref_norm_axis(ctx, "axes", av[i], r, 0, &a)) {
                free(p);
                return -1;
            }
            red[a] = 1;
        }
    }
    sqz_shape o;
    o.ndim = 0;
    if (p->noop) {
        o = *x;
    } else {
        for (int i = 0; i < r; i++) {
            if (!red[i])
                o.dims[o.ndim++] = x->dims[i];
            else if (keep)
                o.dims[o.ndim++] = 1;
        }
    }
    p->nd = r;
    p->in_n = sqz_shape_numel(x);
    p->out_n = sqz_shape_numel(&o);
    p->count = 1;
    int64_t acc = 1;
    for (int i = r - 1; i >= 0; i--) {
        p->dims[i] = x->dims[i];
        if (red[i] && !p->noop) {
            p->ost[i] = 0;
            p->count *= x->dims[i];
        } else {
            p->ost[i] = acc;
            acc *= x->dims[i];
        }
    }
    ctx->params = p;
    ctx->out_shape[0] = o;
    ctx->scratch_bytes = (size_t)p->out_n * sizeof(double);
    return 0;
}

static void rmean_run(const sqz_op_ctx *ctx) {
    const rmean_p *p = ctx->params;
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    if (p->noop) {
        if (Y != X && p->in_n > 0) memmove(Y, X, (size_t)p->in_n * sizeof(float));
        return;
    }
    double *acc = ctx->scratch;
    for (int64_t i = 0; i < p->out_n; i++) acc[i] = 0.0;
    int64_t idx[SQZ_MAX_DIMS] = {0}, off = 0;
    for (int64_t i = 0; i < p->in_n; i++) {
        acc[off] += X[i];
        for (int d = p->nd - 1; d >= 0; d--) {
            off += p->ost[d];
            if (++idx[d] < p->dims[d]) break;
            off -= idx[d] * p->ost[d];
            idx[d] = 0;
        }
    }
    for (int64_t i = 0; i < p->out_n; i++)
        Y[i] = p->count ? (float)(acc[i] / (double)p->count) : NAN;
}

const sqz_op_impl sqz_ref_reduce_mean = {rmean_prepare, rmean_run, free, NULL};

/* ---------------------------------------------------------------- Softmax */

typedef struct softmax_p {
    int64_t outer, n, inner;
} softmax_p;

static int softmax_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 1, 1, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    int r = x->ndim;
    if (r < 1) return sqz_op_fail(ctx, "Softmax: scalar input unsupported");
    int64_t legacy = sqz_attr_int(ctx->node, "legacy", 0);
    int axis;
    if (ref_norm_axis(ctx, "axis", sqz_attr_int(ctx->node, "axis", legacy ? 1 : -1), r, legacy != 0,
                      &axis))
        return -1;
    softmax_p *p = malloc(sizeof(*p));
    if (!p) return sqz_op_fail(ctx, "Softmax: out of memory");
    p->outer = ref_prod(x->dims, 0, axis);
    if (legacy) {
        p->n = ref_prod(x->dims, axis, r);
        p->inner = 1;
    } else {
        p->n = x->dims[axis];
        p->inner = ref_prod(x->dims, axis + 1, r);
    }
    ctx->params = p;
    ctx->out_shape[0] = *x;
    return 0;
}

static void softmax_run(const sqz_op_ctx *ctx) {
    const softmax_p *p = ctx->params;
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    int64_t n = p->n, in = p->inner;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t j = 0; j < in; j++) {
            const float *x = X + o * n * in + j;
            float *y = Y + o * n * in + j;
            float mx = -INFINITY;
            for (int64_t i = 0; i < n; i++)
                if (x[i * in] > mx) mx = x[i * in];
            double s = 0.0;
            for (int64_t i = 0; i < n; i++) {
                float e = expf(x[i * in] - mx);
                y[i * in] = e;
                s += e;
            }
            float inv = (float)(1.0 / s);
            for (int64_t i = 0; i < n; i++) y[i * in] *= inv;
        }
}

const sqz_op_impl sqz_ref_softmax = {softmax_prepare, softmax_run, free, NULL};
