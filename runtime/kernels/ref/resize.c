/* resize.c - Resize (modes nearest and linear, n-dimensional). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

enum {
    CT_HALF_PIXEL,
    CT_PYTORCH_HALF_PIXEL,
    CT_ALIGN_CORNERS,
    CT_ASYMMETRIC,
    CT_TF_HALF_NN,
    CT_HALF_PIXEL_SYMMETRIC
};
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL };

typedef struct resize_p {
    int nd, linear;
    int nact;              /* dims whose mapping is not the identity */
    int act[SQZ_MAX_DIMS]; /* their indices */
    int64_t idims[SQZ_MAX_DIMS], odims[SQZ_MAX_DIMS], xst[SQZ_MAX_DIMS];
    int64_t *i0[SQZ_MAX_DIMS], *i1[SQZ_MAX_DIMS];
    float *w1[SQZ_MAX_DIMS]; /* weight of i1 (linear) */
    void *mem;
} resize_p;

static void resize_free(void *vp) {
    resize_p *p = vp;
    if (!p) return;
    free(p->mem);
    free(p);
}

static int lookup(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

/* ONNX measures the resized length as scale * in (not the floored output
 * size) in align_corners and pytorch_half_pixel. */
static double src_coord(int ct, double x, double scale, int64_t lin) {
    double lout = scale * (double)lin;
    switch (ct) {
    case CT_HALF_PIXEL:
        return (x + 0.5) / scale - 0.5;
    case CT_PYTORCH_HALF_PIXEL:
        return lout > 1.0 ? (x + 0.5) / scale - 0.5 : 0.0;
    case CT_ALIGN_CORNERS:
        return lout == 1.0 ? 0.0 : x * (double)(lin - 1) / (lout - 1.0);
    case CT_ASYMMETRIC:
        return x / scale;
    case CT_TF_HALF_NN:
        return (x + 0.5) / scale;
    default: { /* half_pixel_symmetric */
        double adj = floor(lout) / lout;
        double center = (double)lin / 2.0;
        double off = center * (1.0 - adj);
        return off + (x + 0.5) / scale - 0.5;
    }
    }
}

static int64_t nearest_idx(int nm, double x) {
    double f = floor(x);
    switch (nm) {
    case NM_FLOOR:
        return (int64_t)f;
    case NM_CEIL:
        return (int64_t)ceil(x);
    case NM_ROUND_PREFER_CEIL:
        return x - f == 0.5 ? (int64_t)f + 1 : (int64_t)floor(x + 0.5);
    default:
        return x - f == 0.5 ? (int64_t)f : (int64_t)floor(x + 0.5);
    }
}

static int resize_prepare(sqz_op_ctx *ctx) {
    static const char *const modes[] = {"nearest", "linear"};
    static const char *const cts[] = {
        "half_pixel", "pytorch_half_pixel",        "align_corners",
        "asymmetric", "tf_half_pixel_for_nearest", "half_pixel_symmetric"};
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    /* inputs beyond X (roi / scales / sizes) were folded into attributes */
    if (ref_check_io(ctx, 1, 4, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    int r = x->ndim;
    if (r < 1) return sqz_op_fail(ctx, "Resize: scalar input unsupported");
    const char *ms = sqz_attr_str(ctx->node, "mode", "nearest");
    int mode = lookup(ms, modes, 2);
    if (mode < 0) return sqz_op_fail(ctx, "Resize: mode=\"%s\" unsupported", ms);
    const char *cs = sqz_attr_str(ctx->node, "coordinate_transformation_mode", "half_pixel");
    int ct = lookup(cs, cts, 6);
    if (strcmp(cs, "tf_half_pixel_for_nn") == 0) ct = CT_TF_HALF_NN; /* ONNX's own test spelling */
    if (ct < 0)
        return sqz_op_fail(ctx, "Resize: coordinate_transformation_mode=\"%s\" unsupported", cs);
    const char *ns = sqz_attr_str(ctx->node, "nearest_mode", "round_prefer_floor");
    int nm = lookup(ns, nms, 4);
    if (nm < 0) return sqz_op_fail(ctx, "Resize: nearest_mode=\"%s\" unsupported", ns);
    int64_t aa = sqz_attr_int(ctx->node, "antialias", 0);
    if (aa != 0) return sqz_op_fail(ctx, "Resize: antialias=%lld unsupported", (long long)aa);
    const char *kp = sqz_attr_str(ctx->node, "keep_aspect_ratio_policy", "stretch");
    int policy = strcmp(kp, "stretch") == 0       ? 0
                 : strcmp(kp, "not_larger") == 0  ? 1
                 : strcmp(kp, "not_smaller") == 0 ? 2
                                                  : -1;
    if (policy < 0)
        return sqz_op_fail(ctx, "Resize: keep_aspect_ratio_policy=\"%s\" unsupported", kp);

    int axes[SQZ_MAX_DIMS];
    const int64_t *av;
    int na = sqz_attr_ints(ctx->node, "axes", &av);
    int nax = na >= 0 ? na : r;
    if (nax > r) return sqz_op_fail(ctx, "Resize: axes has %d values for rank %d", nax, r);
    int seen[SQZ_MAX_DIMS] = {0};
    for (int i = 0; i < nax; i++) {
        axes[i] = i;
        if (na >= 0 && ref_norm_axis(ctx, "axes", av[i], r, 0, &axes[i])) return -1;
        if (seen[axes[i]]) return sqz_op_fail(ctx, "Resize: axes repeats axis %d", axes[i]);
        seen[axes[i]] = 1;
    }
    const float *sv;
    const int64_t *zv;
    int nsc = sqz_attr_floats(ctx->node, "scales", &sv);
    int nsz = sqz_attr_ints(ctx->node, "sizes", &zv);
    if (nsc == 0) nsc = -1; /* empty scales tensor = absent */
    if (nsz == 0) nsz = -1;
    if ((nsc < 0) == (nsz < 0))
        return sqz_op_fail(ctx, "Resize: exactly one of scales / sizes must be given");
    double scale[SQZ_MAX_DIMS];
    int64_t out[SQZ_MAX_DIMS];
    for (int d = 0; d < r; d++) {
        scale[d] = 1.0;
        out[d] = x->dims[d];
    }
    if (nsc > 0) {
        if (nsc != nax)
            return sqz_op_fail(ctx, "Resize: scales has %d values, expected %d", nsc, nax);
        for (int i = 0; i < nax; i++) {
            if (!(sv[i] > 0.0f))
                return sqz_op_fail(ctx, "Resize: scales[%d]=%g invalid", i, (double)sv[i]);
            int d = axes[i];
            scale[d] = sv[i];
            double v = floor((double)x->dims[d] * (double)sv[i]);
            if (!(v <= (double)REF_MAX_NUMEL))
                return sqz_op_fail(ctx, "Resize: scales[%d]=%g gives too large an output", i,
                                   (double)sv[i]);
            out[d] = (int64_t)v;
        }
    } else {
        if (nsz != nax)
            return sqz_op_fail(ctx, "Resize: sizes has %d values, expected %d", nsz, nax);
        for (int i = 0; i < nax; i++)
            if (zv[i] < 0 || x->dims[axes[i]] == 0)
                return sqz_op_fail(ctx, "Resize: sizes[%d]=%lld invalid", i, (long long)zv[i]);
        if (policy != 0) {
            double s = policy == 1 ? INFINITY : 0.0;
            for (int i = 0; i < nax; i++) {
                double si = (double)zv[i] / (double)x->dims[axes[i]];
                s = policy == 1 ? (si < s ? si : s) : (si > s ? si : s);
            }
            for (int i = 0; i < nax; i++) {
                int d = axes[i];
                scale[d] = s;
                double v = floor(s * (double)x->dims[d] + 0.5);
                if (!(v <= (double)REF_MAX_NUMEL))
                    return sqz_op_fail(ctx, "Resize: sizes give too large an output");
                out[d] = (int64_t)v;
            }
        } else {
            for (int i = 0; i < nax; i++) {
                int d = axes[i];
                out[d] = zv[i];
                scale[d] = (double)zv[i] / (double)x->dims[d];
            }
        }
    }
    for (int d = 0; d < r; d++)
        if (out[d] > 0 && x->dims[d] == 0)
            return sqz_op_fail(ctx, "Resize: cannot resize an empty dim %d", d);

    if (ref_check_size(ctx, r, out)) return -1;
    size_t cnt = 0;
    for (int d = 0; d < r; d++) cnt += (size_t)out[d];
    resize_p *p = calloc(1, sizeof(*p));
    if (!p) return sqz_op_fail(ctx, "Resize: out of memory");
    p->mem = malloc(cnt * (2 * sizeof(int64_t) + sizeof(float)) + 1);
    if (!p->mem) {
        free(p);
        return sqz_op_fail(ctx, "Resize: out of memory");
    }
    p->nd = r;
    p->linear = mode == 1;
    int64_t *ip = p->mem;
    float *wp = (float *)(ip + 2 * cnt);
    sqz_shape o;
    o.ndim = r;
    ref_strides(x, p->xst);
    for (int d = 0; d < r; d++) {
        int64_t lin = x->dims[d], lout = out[d];
        o.dims[d] = lout;
        p->idims[d] = lin;
        p->odims[d] = lout;
        p->i0[d] = ip;
        p->i1[d] = ip + cnt;
        p->w1[d] = wp;
        int ident = lin == lout;
        for (int64_t i = 0; i < lout; i++) {
            double sx = src_coord(ct, (double)i, scale[d], lin);
            int64_t a, b;
            float w;
            if (mode == 0) {
                a = nearest_idx(nm, sx);
                a = a < 0 ? 0 : (a > lin - 1 ? lin - 1 : a);
                b = a;
                w = 0.0f;
            } else {
                if (sx < 0.0) sx = 0.0;
                if (sx > (double)(lin - 1)) sx = (double)(lin - 1);
                a = (int64_t)floor(sx);
                b = a + 1 < lin ? a + 1 : lin - 1;
                w = (float)(sx - (double)a);
            }
            ip[i] = a;
            ip[cnt + i] = b;
            wp[i] = w;
            if (a != i || (mode == 1 && w != 0.0f)) ident = 0;
        }
        if (!ident) p->act[p->nact++] = d;
        ip += lout;
        wp += lout;
    }
    ctx->params = p;
    ctx->out_shape[0] = o;
    return 0;
}

static void resize_run(const sqz_op_ctx *ctx) {
    const resize_p *p = ctx->params;
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    int nd = p->nd;
    int64_t total = ref_prod(p->odims, 0, nd);
    if (total <= 0) return;
    int64_t idx[SQZ_MAX_DIMS] = {0};
    int ncorner = p->linear ? 1 << p->nact : 1;
    for (int64_t o = 0; o < total; o++) {
        int64_t base = 0;
        for (int d = 0; d < nd; d++) base += p->i0[d][idx[d]] * p->xst[d];
        float v;
        if (ncorner == 1) {
            v = X[base];
        } else {
            double acc = 0.0;
            for (int c = 0; c < ncorner; c++) {
                int64_t off = base;
                double w = 1.0;
                for (int k = 0; k < p->nact; k++) {
                    int d = p->act[k];
                    float w1 = p->w1[d][idx[d]];
                    if (c & (1 << k)) {
                        off += (p->i1[d][idx[d]] - p->i0[d][idx[d]]) * p->xst[d];
                        w *= w1;
                    } else {
                        w *= 1.0 - w1;
                    }
                }
                if (w != 0.0) acc += w * X[off];
            }
            v = (float)acc;
        }
        Y[o] = v;
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < p->odims[d]) break;
            idx[d] = 0;
        }
    }
}

const sqz_op_impl sqz_ref_resize = {resize_prepare, resize_run, resize_free, NULL};
