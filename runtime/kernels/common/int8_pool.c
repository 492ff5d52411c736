/* int8_pool.c - int8 MaxPool (1-D / 2-D) in portable C written for the
 * compiler's vectorizer: each plane is copied into a buffer bordered with
 * -128 (the neutral element of max; the reference also starts from -128, so
 * windows without a valid tap agree; held as u8 0), then every output row is
 * the element-wise max of kh x kw shifted input rows. Output parameters equal the input's
 * (checked by the reference prepare), so no requantization. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "int8.h"
#include "int8_simd.h"

typedef struct mp_p {
    ref_geom g;
    int64_t NC, PH, PW;
    size_t plane_bytes; /* per thread: the plane, then one output row (acc_off) */
    size_t acc_off;
    int nt;
    int k2s2; /* 2-D 2x2 stride 2, no padding or dilation: straight from x */
    int s2;   /* 2-D stride 2 along w, no dilation, kernel <= 15 x 15 (AVX-512) */
    int simd;
} mp_p;

static int mp_prepare(sqz_op_ctx *ctx) {
    const sqz_op_impl *ref = sqz_ref_op_int8(SQZ_OP_MAXPOOL);
    int rc = ref->prepare(ctx); /* validation, params check, output shape */
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    if (rc != 0) return rc;
    const sqz_shape *x = &ctx->in_shape[0];
    int nd = x->ndim - 2;
    if (nd > 2) return 1;
    mp_p p;
    memset(&p, 0, sizeof p);
    if (ref_geom_prepare(ctx, &p.g, nd, x->dims + 2, NULL, 1)) return -1;
    const ref_geom *g = &p.g;
    p.NC = x->dims[0] * x->dims[1];
    /* large enough for every window (ceil_mode may run past the pads) */
    p.PH = (g->out[1] - 1) * g->s[1] + (g->k[1] - 1) * g->d[1] + 1;
    p.PW = (g->out[2] - 1) * g->s[2] + (g->k[2] - 1) * g->d[2] + 1;
    if (p.PH < g->in[1] + g->pb[1]) p.PH = g->in[1] + g->pb[1];
    if (p.PW < g->in[2] + g->pb[2]) p.PW = g->in[2] + g->pb[2];
    /* stride 2 stores a row as even | odd columns: PW even keeps both halves
     * (and every tap's reach) inside the row */
    if (g->s[2] == 2 && p.PW % 2) p.PW++;
    p.acc_off = ((size_t)(p.PH * p.PW) + 63) / 64 * 64;
    p.plane_bytes = p.acc_off + ((size_t)g->out[2] + 63) / 64 * 64;
    p.nt = ctx->num_threads > 0 ? ctx->num_threads : 1;
    if (p.nt > p.NC) p.nt = p.NC > 0 ? (int)p.NC : 1;
    p.k2s2 = nd == 2 && g->k[1] == 2 && g->k[2] == 2 && g->s[1] == 2 && g->s[2] == 2 &&
             g->d[1] == 1 && g->d[2] == 1 && g->pb[1] == 0 && g->pb[2] == 0 &&
             2 * g->out[1] <= g->in[1] && 2 * g->out[2] <= g->in[2];
#if defined(__x86_64__) || defined(_M_X64)
    p.simd = sqz_cpu_has_avx512();
#endif
    p.s2 = p.simd && !p.k2s2 && nd == 2 && g->s[2] == 2 && g->d[1] == 1 && g->d[2] == 1 &&
           g->k[1] <= 15 && g->k[2] <= 15;
    mp_p *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "MaxPool: out of memory");
    *pp = p;
    ctx->params = pp;
    ctx->scratch_bytes = (size_t)p.nt * p.plane_bytes;
    return 0;
}

/* The plane is kept as u8 (x ^ 0x80, order-preserving), so the max is an
 * unsigned byte max, which baseline SSE2 has (pmaxub; signed is SSE4.1).
 * With stride 2 along w each padded row is stored as its even columns then
 * its odd ones, so every tap of a window row is a unit-stride read. */
static void mp_planes(const sqz_op_ctx *ctx, int64_t nc0, int64_t nc1, int tid) {
    const mp_p *p = ctx->params;
    const ref_geom *g = &p->g;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    int64_t in_sp = g->in[1] * g->in[2], out_sp = g->out[1] * g->out[2];
    for (int64_t nc = nc0; nc < nc1; nc++) {
        uint8_t *buf = (uint8_t *)ctx->scratch + (size_t)tid * p->plane_bytes;
        uint8_t *acc = buf + p->acc_off;
        const int8_t *x = X + nc * in_sp;
        int8_t *y = Y + nc * out_sp;
        const int64_t PW = p->PW, W = g->in[2], pl = g->pb[2], OW = g->out[2];
        const int64_t sw = g->s[2], dw = g->d[2], half = (PW + 1) / 2;
        const int split = sw == 2;
        memset(buf, 0, (size_t)(p->PH * PW));
        for (int64_t h = 0; h < g->in[1]; h++) {
            uint8_t *d = buf + (h + g->pb[1]) * PW;
            const int8_t *s = x + h * W;
            if (split) { /* padded column c = pl + w: even c to d[c / 2], odd to d[half + c / 2] */
                for (int par = 0; par < 2; par++) {
                    /* columns c = 2 k + par with 0 <= c - pl < W */
                    int64_t k0 = pl > par ? (pl - par + 1) / 2 : 0, k1 = (pl + W - par + 1) / 2;
                    uint8_t *dp = d + par * half;
                    for (int64_t k = k0; k < k1; k++)
                        dp[k] = (uint8_t)((uint8_t)s[2 * k + par - pl] ^ 0x80u);
                }
            } else {
                for (int64_t w = 0; w < W; w++) d[pl + w] = (uint8_t)((uint8_t)s[w] ^ 0x80u);
            }
        }
        for (int64_t oh = 0; oh < g->out[1]; oh++) {
            for (int64_t ow = 0; ow < OW; ow++) acc[ow] = 0;
            for (int64_t i = 0; i < g->k[1]; i++) {
                const uint8_t *r = buf + (oh * g->s[1] + i * g->d[1]) * PW;
                for (int64_t j = 0; j < g->k[2]; j++) {
                    int64_t t = j * dw; /* column of output ow: ow * sw + t */
                    if (split) {
                        const uint8_t *rj = r + (t & 1) * half + (t >> 1);
                        for (int64_t ow = 0; ow < OW; ow++)
                            acc[ow] = rj[ow] > acc[ow] ? rj[ow] : acc[ow];
                    } else if (sw == 1) {
                        const uint8_t *rj = r + t;
                        for (int64_t ow = 0; ow < OW; ow++)
                            acc[ow] = rj[ow] > acc[ow] ? rj[ow] : acc[ow];
                    } else {
                        const uint8_t *rj = r + t;
                        for (int64_t ow = 0; ow < OW; ow++) {
                            uint8_t v = rj[ow * sw];
                            acc[ow] = v > acc[ow] ? v : acc[ow];
                        }
                    }
                }
            }
            int8_t *yr = y + oh * OW;
            for (int64_t ow = 0; ow < OW; ow++) yr[ow] = (int8_t)(uint8_t)(acc[ow] ^ 0x80u);
        }
    }
}

/* 2x2 stride 2 without padding (LeNet, VGG-style pools): every window lies
 * inside the input, so no bordered copy; the same maxima. */
static void mp_planes_k2s2(const sqz_op_ctx *ctx, int64_t nc0, int64_t nc1, int tid) {
    (void)tid;
    const mp_p *p = ctx->params;
    const ref_geom *g = &p->g;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    const int64_t W = g->in[2], OH = g->out[1], OW = g->out[2];
    int64_t in_sp = g->in[1] * W, out_sp = OH * OW;
#if defined(__x86_64__) || defined(_M_X64)
    if (p->simd && OW <= 32) { /* small planes: one call for the range */
        sqz_i8_maxpool2_planes_avx512(X + nc0 * in_sp, W, in_sp, OH, OW, out_sp, nc1 - nc0,
                                      Y + nc0 * out_sp);
        return;
    }
#endif
    for (int64_t nc = nc0; nc < nc1; nc++)
        for (int64_t oh = 0; oh < OH; oh++) {
            const int8_t *x0 = X + nc * in_sp + 2 * oh * W, *x1 = x0 + W;
            int8_t *y = Y + nc * out_sp + oh * OW;
#if defined(__x86_64__) || defined(_M_X64)
            if (p->simd) {
                sqz_i8_maxpool2_row_avx512(x0, x1, OW, y);
                continue;
            }
#endif
            for (int64_t ow = 0; ow < OW; ow++) {
                int8_t a = x0[2 * ow] > x0[2 * ow + 1] ? x0[2 * ow] : x0[2 * ow + 1];
                int8_t b = x1[2 * ow] > x1[2 * ow + 1] ? x1[2 * ow] : x1[2 * ow + 1];
                y[ow] = a > b ? a : b;
            }
        }
}

#if defined(__x86_64__) || defined(_M_X64)
/* Stride 2 along w (SqueezeNet's / ShuffleNet's 3x3 s2 pools, ceil_mode,
 * pads): per output row the window rows inside the input go to the AVX-512
 * row kernel, which treats columns past the row as -128; the outputs whose
 * window starts in the left pad are computed here. Windows without a valid
 * tap give -128, as in the reference. */
static void mp_planes_s2(const sqz_op_ctx *ctx, int64_t nc0, int64_t nc1, int tid) {
    (void)tid;
    const mp_p *p = ctx->params;
    const ref_geom *g = &p->g;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    const int64_t H = g->in[1], W = g->in[2], OH = g->out[1], OW = g->out[2];
    const int64_t pt = g->pb[1], pl = g->pb[2], kh = g->k[1], kw = g->k[2], sh = g->s[1];
    int64_t nl = (pl + 1) / 2; /* outputs whose window starts left of column 0 */
    if (nl > OW) nl = OW;
    for (int64_t nc = nc0; nc < nc1; nc++) {
        const int8_t *x = X + nc * H * W;
        for (int64_t oh = 0; oh < OH; oh++) {
            const int8_t *rows[16];
            int nr = 0;
            for (int64_t i = 0; i < kh; i++) {
                int64_t ih = oh * sh - pt + i;
                if (ih >= 0 && ih < H) rows[nr++] = x + ih * W;
            }
            int8_t *y = Y + (nc * OH + oh) * OW;
            for (int64_t ow = 0; ow < nl; ow++) {
                int32_t mx = -128;
                for (int r = 0; r < nr; r++)
                    for (int64_t j = 0; j < kw; j++) {
                        int64_t iw = 2 * ow - pl + j;
                        if (iw >= 0 && iw < W && rows[r][iw] > mx) mx = rows[r][iw];
                    }
                y[ow] = (int8_t)mx;
            }
            if (nl < OW)
                sqz_i8_maxpool_s2_row_avx512(rows, nr, W, 2 * nl - pl, kw, OW - nl, y + nl);
        }
    }
}
#endif

/* planes split through sqz_par_for (par.h: inside the executor's team too) */
static void mp_run(const sqz_op_ctx *ctx) {
    const mp_p *p = ctx->params;
    /* small pools stay on one thread (as the fp32 pool: < 32k input values) */
    int64_t in_sp = p->g.in[1] * p->g.in[2];
    sqz_i8_range_fn fn = p->k2s2 ? mp_planes_k2s2 : mp_planes;
#if defined(__x86_64__) || defined(_M_X64)
    if (p->s2) fn = mp_planes_s2;
#endif
    int nt = sqz_i8_split_threads(p->nt, (double)(p->NC * in_sp) * SQZ_I8_NS_BYTE);
    sqz_i8_par_range(ctx, p->NC * in_sp < 32768 ? 1 : nt, p->NC, fn);
}

const sqz_op_impl sqz_i8_fast_maxpool = {mp_prepare, mp_run, free, NULL};
