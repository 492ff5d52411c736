/* int8_pool.c - int8 MaxPool (1-D / 2-D) in portable C written for the
 * compiler's vectorizer: each plane is copied into a buffer bordered with
 * -128 (the neutral element of max; the reference also starts from -128, so
 * windows without a valid tap agree), then every output row is the element-
 * wise max of kh x kw shifted input rows. Output parameters equal the input's
 * (checked by the reference prepare), so no requantization. */
#include <stdlib.h>
#include <string.h>

#include "int8.h"
#include "int8_simd.h"
#if defined(SQZ_HAVE_OPENMP)
#include <omp.h>
#endif

typedef struct mp_p {
    ref_geom g;
    int64_t NC, PH, PW;
    size_t plane_bytes;
    int nt;
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
    p.plane_bytes = ((size_t)(p.PH * p.PW) + 63) / 64 * 64;
    p.nt = ctx->num_threads > 0 ? ctx->num_threads : 1;
    if (p.nt > p.NC) p.nt = p.NC > 0 ? (int)p.NC : 1;
    mp_p *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "MaxPool: out of memory");
    *pp = p;
    ctx->params = pp;
    ctx->scratch_bytes = (size_t)p.nt * p.plane_bytes;
    return 0;
}

static void mp_run(const sqz_op_ctx *ctx) {
    const mp_p *p = ctx->params;
    const ref_geom *g = &p->g;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    int64_t in_sp = g->in[1] * g->in[2], out_sp = g->out[1] * g->out[2];
    int nt = p->nt;
    (void)nt;
#if defined(SQZ_HAVE_OPENMP)
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
    for (int64_t nc = 0; nc < p->NC; nc++) {
        int tid = 0;
#if defined(SQZ_HAVE_OPENMP)
        tid = omp_get_thread_num();
#endif
        int8_t *buf = (int8_t *)ctx->scratch + (size_t)tid * p->plane_bytes;
        const int8_t *x = X + nc * in_sp;
        int8_t *y = Y + nc * out_sp;
        memset(buf, -128, (size_t)(p->PH * p->PW));
        for (int64_t h = 0; h < g->in[1]; h++)
            memcpy(buf + (h + g->pb[1]) * p->PW + g->pb[2], x + h * g->in[2], (size_t)g->in[2]);
        int64_t OW = g->out[2], sw = g->s[2], dw = g->d[2];
        for (int64_t oh = 0; oh < g->out[1]; oh++) {
            int8_t *yr = y + oh * OW;
            for (int64_t i = 0; i < g->k[1]; i++) {
                const int8_t *r = buf + (oh * g->s[1] + i * g->d[1]) * p->PW;
                for (int64_t j = 0; j < g->k[2]; j++) {
                    const int8_t *rj = r + j * dw;
                    if (i == 0 && j == 0) {
                        for (int64_t ow = 0; ow < OW; ow++) yr[ow] = rj[ow * sw];
                    } else if (sw == 1) {
                        for (int64_t ow = 0; ow < OW; ow++)
                            yr[ow] = rj[ow] > yr[ow] ? rj[ow] : yr[ow];
                    } else {
                        for (int64_t ow = 0; ow < OW; ow++) {
                            int8_t v = rj[ow * sw];
                            yr[ow] = v > yr[ow] ? v : yr[ow];
                        }
                    }
                }
            }
        }
    }
}

const sqz_op_impl sqz_i8_fast_maxpool = {mp_prepare, mp_run, free, NULL};
