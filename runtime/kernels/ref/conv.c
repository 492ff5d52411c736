/* conv.c - Conv (im2col + row-blocked GEMM) and ConvTranspose (scatter). */
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

typedef struct conv_p {
    ref_geom g;
    int64_t N, C, M, group, Cg, Mg, K, in_sp, out_sp;
    int direct; /* 1x1, stride 1, no pads: X is its own column matrix */
    int has_bias;
    ref_act act;
} conv_p;

static int conv_check_bias(sqz_op_ctx *ctx, int64_t M, int *has_bias) {
    *has_bias = ref_has_input(ctx, 2);
    if (*has_bias) {
        const sqz_shape *b = &ctx->in_shape[2];
        if (b->ndim != 1 || b->dims[0] != M)
            return sqz_op_fail(ctx, "%s: bias B must have shape [%lld]", ref_opname(ctx),
                               (long long)M);
    }
    return 0;
}

static int conv_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 2, 3, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0], *w = &ctx->in_shape[1];
    int nd = x->ndim - 2;
    if (nd < 1 || nd > 3)
        return sqz_op_fail(ctx, "Conv: input rank %d unsupported (need 3..5)", x->ndim);
    if (w->ndim != x->ndim)
        return sqz_op_fail(ctx, "Conv: W rank %d does not match X rank %d", w->ndim, x->ndim);
    conv_p p;
    memset(&p, 0, sizeof(p));
    p.N = x->dims[0];
    p.C = x->dims[1];
    p.M = w->dims[0];
    p.group = sqz_attr_int(ctx->node, "group", 1);
    if (p.group < 1 || p.C % p.group != 0 || p.M % p.group != 0)
        return sqz_op_fail(ctx, "Conv: group=%lld incompatible with C=%lld, M=%lld",
                           (long long)p.group, (long long)p.C, (long long)p.M);
    p.Cg = p.C / p.group;
    p.Mg = p.M / p.group;
    if (w->dims[1] != p.Cg)
        return sqz_op_fail(ctx, "Conv: W dim 1 is %lld, expected C/group = %lld",
                           (long long)w->dims[1], (long long)p.Cg);
    if (conv_check_bias(ctx, p.M, &p.has_bias)) return -1;
    if (ref_geom_prepare(ctx, &p.g, nd, x->dims + 2, w->dims + 2, 0)) return -1;
    if (ref_act_prepare(ctx, &p.act)) return -1;
    p.K = p.Cg * p.g.k[0] * p.g.k[1] * p.g.k[2];
    p.in_sp = p.g.in[0] * p.g.in[1] * p.g.in[2];
    p.out_sp = p.g.out[0] * p.g.out[1] * p.g.out[2];
    p.direct = 1;
    for (int i = 0; i < 3; i++)
        if (p.g.k[i] != 1 || p.g.s[i] != 1 || p.g.pb[i] != 0 || p.g.pe[i] != 0) p.direct = 0;
    if (p.out_sp > REF_MAX_NUMEL || (p.out_sp > 0 && p.K > REF_MAX_NUMEL / p.out_sp))
        return sqz_op_fail(ctx, "Conv: im2col buffer too large");
    sqz_shape *y = &ctx->out_shape[0];
    y->ndim = x->ndim;
    y->dims[0] = p.N;
    y->dims[1] = p.M;
    for (int i = 0; i < nd; i++) y->dims[2 + i] = p.g.out[3 - nd + i];
    conv_p *pp = malloc(sizeof(*pp));
    if (!pp) return sqz_op_fail(ctx, "Conv: out of memory");
    *pp = p;
    ctx->params = pp;
    ctx->scratch_bytes = p.direct ? 0 : (size_t)(p.K * p.out_sp) * sizeof(float);
    return 0;
}

/* col[K][out_sp] for one image and one group. */
static void im2col(const conv_p *p, const float *x, float *col) {
    const ref_geom *g = &p->g;
    int64_t OD = g->out[0], OH = g->out[1], OW = g->out[2];
    int64_t ID = g->in[0], IH = g->in[1], IW = g->in[2];
    int64_t row = 0;
    for (int64_t c = 0; c < p->Cg; c++) {
        const float *xc = x + c * p->in_sp;
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++, row++) {
                    float *dst = col + row * p->out_sp;
                    for (int64_t od = 0; od < OD; od++) {
                        int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
                        for (int64_t oh = 0; oh < OH; oh++) {
                            int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
                            float *o = dst + (od * OH + oh) * OW;
                            if (id < 0 || id >= ID || ih < 0 || ih >= IH) {
                                memset(o, 0, (size_t)OW * sizeof(float));
                                continue;
                            }
                            const float *xr = xc + (id * IH + ih) * IW;
                            int64_t iw = -g->pb[2] + kw * g->d[2];
                            for (int64_t ow = 0; ow < OW; ow++, iw += g->s[2])
                                o[ow] = (iw >= 0 && iw < IW) ? xr[iw] : 0.0f;
                        }
                    }
                }
    }
}

/* y[m][P] = bias[m] + sum_k w[m][k] * col[k][P] for m in [m0, m0 + nm), nm <= 4. */
static void gemm_rows(int64_t nm, int64_t K, int64_t P, const float *w, const float *col,
                      const float *bias, float *y) {
    for (int64_t r = 0; r < nm; r++) {
        float b = bias ? bias[r] : 0.0f;
        float *yr = y + r * P;
        for (int64_t i = 0; i < P; i++) yr[i] = b;
    }
    if (nm == 4) {
        float *y0 = y, *y1 = y + P, *y2 = y + 2 * P, *y3 = y + 3 * P;
        for (int64_t k = 0; k < K; k++) {
            float w0 = w[k], w1 = w[K + k], w2 = w[2 * K + k], w3 = w[3 * K + k];
            const float *c = col + k * P;
            for (int64_t i = 0; i < P; i++) {
                float v = c[i];
                y0[i] += w0 * v;
                y1[i] += w1 * v;
                y2[i] += w2 * v;
                y3[i] += w3 * v;
            }
        }
        return;
    }
    for (int64_t r = 0; r < nm; r++) {
        float *yr = y + r * P;
        const float *wr = w + r * K;
        for (int64_t k = 0; k < K; k++) {
            float wv = wr[k];
            const float *c = col + k * P;
            for (int64_t i = 0; i < P; i++) yr[i] += wv * c[i];
        }
    }
}

static void conv_run(const sqz_op_ctx *ctx) {
    const conv_p *p = ctx->params;
    const float *X = ctx->in_data[0], *W = ctx->in_data[1];
    const float *B = p->has_bias ? ctx->in_data[2] : NULL;
    float *Y = ctx->out_data[0];
    float *col = ctx->scratch;
    int nt = ctx->num_threads > 0 ? ctx->num_threads : 1;
    (void)nt;
    int64_t nblk = (p->Mg + 3) / 4;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t g = 0; g < p->group; g++) {
            const float *xg = X + (n * p->C + g * p->Cg) * p->in_sp;
            const float *cm = xg;
            if (!p->direct) {
                im2col(p, xg, col);
                cm = col;
            }
            float *yg = Y + (n * p->M + g * p->Mg) * p->out_sp;
            const float *wg = W + g * p->Mg * p->K;
            const float *bg = B ? B + g * p->Mg : NULL;
#if defined(SQZ_HAVE_OPENMP)
#pragma omp parallel for num_threads(nt) if (nt > 1 && nblk > 1) schedule(static)
#endif
            for (int64_t blk = 0; blk < nblk; blk++) {
                int64_t m0 = blk * 4, nm = p->Mg - m0 < 4 ? p->Mg - m0 : 4;
                float *ym = yg + m0 * p->out_sp;
                gemm_rows(nm, p->K, p->out_sp, wg + m0 * p->K, cm, bg ? bg + m0 : NULL, ym);
                ref_act_apply(&p->act, ym, (size_t)(nm * p->out_sp));
            }
        }
}

static uint64_t conv_macs(const sqz_op_ctx *ctx) {
    const conv_p *p = ctx->params;
    if (!p) return 0;
    return (uint64_t)(p->N * p->M * p->out_sp * p->K);
}

const sqz_op_impl sqz_ref_conv = {conv_prepare, conv_run, free, conv_macs};

/* ---------------------------------------------------------- ConvTranspose */

typedef struct convt_p {
    int nd;
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3];
    int64_t N, C, M, group, Cg, Mg, ksz, in_sp, out_sp;
    int has_bias;
    ref_act act;
} convt_p;

static int convt_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 2, 3, 1)) return -1;
    const sqz_shape *x = &ctx->in_shape[0], *w = &ctx->in_shape[1];
    int nd = x->ndim - 2;
    if (nd < 1 || nd > 3)
        return sqz_op_fail(ctx, "ConvTranspose: input rank %d unsupported (need 3..5)", x->ndim);
    if (w->ndim != x->ndim)
        return sqz_op_fail(ctx, "ConvTranspose: W rank %d does not match X rank %d", w->ndim,
                           x->ndim);
    convt_p p;
    memset(&p, 0, sizeof(p));
    p.nd = nd;
    p.N = x->dims[0];
    p.C = x->dims[1];
    p.group = sqz_attr_int(ctx->node, "group", 1);
    if (p.group < 1 || p.C % p.group != 0)
        return sqz_op_fail(ctx, "ConvTranspose: group=%lld incompatible with C=%lld",
                           (long long)p.group, (long long)p.C);
    if (w->dims[0] != p.C)
        return sqz_op_fail(ctx, "ConvTranspose: W dim 0 is %lld, expected C = %lld",
                           (long long)w->dims[0], (long long)p.C);
    p.Cg = p.C / p.group;
    p.Mg = w->dims[1];
    p.M = p.Mg * p.group;
    if (conv_check_bias(ctx, p.M, &p.has_bias)) return -1;
    if (ref_act_prepare(ctx, &p.act)) return -1;

    int64_t k[3], s[3], d[3], op[3], pads[6];
    const int64_t *kv;
    int kc = sqz_attr_ints(ctx->node, "kernel_shape", &kv);
    if (kc >= 0 && kc != nd)
        return sqz_op_fail(ctx, "ConvTranspose: kernel_shape has %d values, expected %d", kc, nd);
    for (int i = 0; i < nd; i++) {
        k[i] = w->dims[2 + i];
        if (kc >= 0 && kv[i] != k[i])
            return sqz_op_fail(ctx, "ConvTranspose: kernel_shape[%d]=%lld does not match W", i,
                               (long long)kv[i]);
    }
    const int64_t *osv;
    int osc = sqz_attr_ints(ctx->node, "output_shape", &osv);
    if (osc >= 0 && osc != nd && osc != nd + 2)
        return sqz_op_fail(ctx, "ConvTranspose: output_shape has %d values, expected %d", osc, nd);
    if (ref_ints_n(ctx, "strides", nd, 1, s) || ref_ints_n(ctx, "dilations", nd, 1, d) ||
        ref_ints_n(ctx, "output_padding", nd, 0, op) || ref_ints_n(ctx, "pads", 2 * nd, 0, pads))
        return -1;
    for (int i = 0; i < nd; i++) {
        if (s[i] > REF_MAX_NUMEL || d[i] > REF_MAX_NUMEL || op[i] > REF_MAX_NUMEL ||
            pads[i] > REF_MAX_NUMEL || pads[i + nd] > REF_MAX_NUMEL ||
            (d[i] > 0 && k[i] - 1 > REF_MAX_NUMEL / d[i]) ||
            (s[i] > 0 && x->dims[2 + i] - 1 > REF_MAX_NUMEL / s[i]))
            return sqz_op_fail(ctx, "ConvTranspose: strides/dilations/pads out of range");
        if (osc >= 0 && (osv[osc - nd + i] < 1 || osv[osc - nd + i] > REF_MAX_NUMEL))
            return sqz_op_fail(ctx, "ConvTranspose: output_shape[%d]=%lld invalid", i,
                               (long long)osv[osc - nd + i]);
        if (s[i] < 1 || d[i] < 1)
            return sqz_op_fail(ctx, "ConvTranspose: strides/dilations must be >= 1");
        if (op[i] < 0)
            return sqz_op_fail(ctx, "ConvTranspose: output_padding[%d]=%lld invalid", i,
                               (long long)op[i]);
        if (pads[i] < 0 || pads[i + nd] < 0)
            return sqz_op_fail(ctx, "ConvTranspose: negative pads unsupported");
    }
    const char *ap = sqz_attr_str(ctx->node, "auto_pad", "NOTSET");
    int mode;
    if (strcmp(ap, "NOTSET") == 0 || ap[0] == '\0')
        mode = 0;
    else if (strcmp(ap, "SAME_UPPER") == 0)
        mode = 1;
    else if (strcmp(ap, "SAME_LOWER") == 0)
        mode = 2;
    else if (strcmp(ap, "VALID") == 0)
        mode = 3;
    else
        return sqz_op_fail(ctx, "ConvTranspose: auto_pad=\"%s\" unsupported", ap);
    sqz_shape *y = &ctx->out_shape[0];
    y->ndim = x->ndim;
    y->dims[0] = p.N;
    y->dims[1] = p.M;
    for (int i = 0; i < 3; i++) p.in[i] = p.out[i] = p.k[i] = p.s[i] = p.d[i] = 1;
    for (int i = 0; i < nd; i++) {
        int j = 3 - nd + i;
        int64_t in = x->dims[2 + i], dk = (k[i] - 1) * d[i] + 1;
        int64_t full = s[i] * (in - 1) + op[i] + dk, out, pb;
        if (osc >= 0 || mode == 1 || mode == 2) {
            out = osc >= 0 ? osv[osc - nd + i] : in * s[i];
            int64_t total = full - out;
            if (total < 0)
                pb = 0; /* larger output: the extra goes at the end */
            else if (mode == 1)
                pb = total / 2;
            else
                pb = total - total / 2;
        } else if (mode == 3) {
            pb = 0;
            out = full;
        } else {
            pb = pads[i];
            out = full - pads[i] - pads[i + nd];
        }
        if (out < 1)
            return sqz_op_fail(ctx, "ConvTranspose: output spatial dim %d would be %lld", i,
                               (long long)out);
        p.in[j] = in;
        p.out[j] = out;
        p.k[j] = k[i];
        p.s[j] = s[i];
        p.d[j] = d[i];
        p.pb[j] = pb;
        y->dims[2 + i] = out;
    }
    if (ref_check_size(ctx, y->ndim, y->dims)) return -1;
    p.ksz = p.k[0] * p.k[1] * p.k[2];
    p.in_sp = p.in[0] * p.in[1] * p.in[2];
    p.out_sp = p.out[0] * p.out[1] * p.out[2];
    convt_p *pp = malloc(sizeof(*pp));
    if (!pp) return sqz_op_fail(ctx, "ConvTranspose: out of memory");
    *pp = p;
    ctx->params = pp;
    return 0;
}

static void convt_one(const convt_p *p, const float *x, const float *w, float *y) {
    /* x: [in_sp] of one input channel, w: [ksz] for (ic, oc), y: [out_sp] */
    int64_t kidx = 0;
    for (int64_t kd = 0; kd < p->k[0]; kd++)
        for (int64_t kh = 0; kh < p->k[1]; kh++)
            for (int64_t kw = 0; kw < p->k[2]; kw++, kidx++) {
                float wv = w[kidx];
                for (int64_t id = 0; id < p->in[0]; id++) {
                    int64_t od = id * p->s[0] - p->pb[0] + kd * p->d[0];
                    if (od < 0 || od >= p->out[0]) continue;
                    for (int64_t ih = 0; ih < p->in[1]; ih++) {
                        int64_t oh = ih * p->s[1] - p->pb[1] + kh * p->d[1];
                        if (oh < 0 || oh >= p->out[1]) continue;
                        const float *xr = x + (id * p->in[1] + ih) * p->in[2];
                        float *yr = y + (od * p->out[1] + oh) * p->out[2];
                        for (int64_t iw = 0; iw < p->in[2]; iw++) {
                            int64_t ow = iw * p->s[2] - p->pb[2] + kw * p->d[2];
                            if (ow >= 0 && ow < p->out[2]) yr[ow] += wv * xr[iw];
                        }
                    }
                }
            }
}

static void convt_run(const sqz_op_ctx *ctx) {
    const convt_p *p = ctx->params;
    const float *X = ctx->in_data[0], *W = ctx->in_data[1];
    const float *B = p->has_bias ? ctx->in_data[2] : NULL;
    float *Y = ctx->out_data[0];
    int nt = ctx->num_threads > 0 ? ctx->num_threads : 1;
    (void)nt;
    int64_t rows = p->N * p->M;
#if defined(SQZ_HAVE_OPENMP)
#pragma omp parallel for num_threads(nt) if (nt > 1 && rows > 1) schedule(static)
#endif
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = r / p->M, m = r % p->M, g = m / p->Mg, oc = m % p->Mg;
        float *yr = Y + r * p->out_sp;
        float b = B ? B[m] : 0.0f;
        for (int64_t i = 0; i < p->out_sp; i++) yr[i] = b;
        for (int64_t ic = g * p->Cg; ic < (g + 1) * p->Cg; ic++)
            convt_one(p, X + (n * p->C + ic) * p->in_sp, W + (ic * p->Mg + oc) * p->ksz, yr);
        ref_act_apply(&p->act, yr, (size_t)p->out_sp);
    }
}

static uint64_t convt_macs(const sqz_op_ctx *ctx) {
    const convt_p *p = ctx->params;
    if (!p) return 0;
    return (uint64_t)(p->N * p->C * p->in_sp * p->Mg * p->ksz);
}

const sqz_op_impl sqz_ref_conv_transpose = {convt_prepare, convt_run, free, convt_macs};
