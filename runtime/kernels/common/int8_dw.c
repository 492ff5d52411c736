/* int8_dw.c - int8 depthwise Conv (group == C == M, 1-D / 2-D, stride 1 or
 * 2 along the width, any kernel, dilation, padding): each channel plane is
 * copied into a zp_x-bordered buffer, then an ISA plane kernel accumulates
 * x * w exactly in int32 (acc = sum x w + bias - zp_x * sum w, int8_simd.h)
 * and requantizes like the reference. OpenMP over planes.
 * Small planes run "wide": with P = sh * PW / sw, output (oh, ow) reads the
 * plane at sw * (oh * P + ow) + tap offset, so the whole plane is one row of
 * L = (OH - 1) * P + OW flat outputs (columns ow >= OW computed and
 * dropped); the kernel's vectors then no longer idle on short rows (7 of 32
 * lanes for a 7x7 plane) and the rows are compacted into y. */
#include <stdlib.h>
#include <string.h>

#include "int8_simd.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)
#include "cpu.h"

#define DW_SLACK 256 /* bytes read past a plane by the widest row loads */

typedef struct i8dw {
    sqz_i8_linear li;
    sqz_i8_dw_plane plane;
    int xbias;       /* 128: the plane holds u8 x + 128 and w is packed in quads (VNNI) */
    int8_t *wq;      /* VNNI: [C][kh][ceil(kw / 4)][4] */
    int64_t wstride; /* bytes of one channel's weights as the plane kernel reads them */
    int64_t PH, PW, taps;
    int64_t wideP, wideL; /* wide mode: output pitch P and flat length L; 0: by rows */
    int small;            /* VNNI small-plane kernel (x86) */
#if defined(__x86_64__) || defined(_M_X64)
    sqz_i8_dw_small sm; /* its arguments but the tensors */
#endif
    int32_t *off;
    sqz_i8_rqv *rq;
    size_t thread_bytes;
    size_t q_off; /* VNNI: the quad buffer (4 x plane_bytes) at this offset of a slice; 0: none */
    int nt;
} i8dw;

static void i8dw_release(void *p) {
    i8dw *q = p;
    if (!q) return;
    sqz_i8_linear_free(&q->li);
    free(q->off);
    free(q->rq);
    free(q->wq);
    free(q);
}

static uint64_t i8dw_macs(const sqz_op_ctx *ctx) {
    const i8dw *p = ctx->params;
    return p ? (uint64_t)(p->li.batch * p->li.n_co * p->li.out_sp * p->li.K) : 0;
}

/* scratch of one plane: the bordered copy and what the kernels read past it */
static size_t plane_bytes(const i8dw *p) {
    return ((size_t)(p->PH * p->PW) + 64 + DW_SLACK + 63) / 64 * 64;
}

static int dw_prepare(sqz_op_ctx *ctx, sqz_i8_dw_plane plane, int vnni) {
    /* cheap shape test first: decline what is not depthwise before analysing */
    if (ctx->n_in < 2 || ctx->in_shape[0].ndim < 3 || ctx->in_shape[0].ndim > 4 ||
        sqz_attr_int(ctx->node, "group", 1) != ctx->in_shape[0].dims[1] ||
        ctx->in_shape[1].ndim < 1 || ctx->in_shape[1].dims[0] != ctx->in_shape[0].dims[1])
        return 1;
    i8dw *p = calloc(1, sizeof *p);
    if (!p) return sqz_op_fail(ctx, "Conv: out of memory");
    if (sqz_i8_linear_prepare(ctx, &p->li)) {
        free(p);
        return -1;
    }
    const sqz_i8_linear *li = &p->li;
    const ref_geom *g = &li->g;
    if (li->cpg != 1 || li->mpg != 1 || g->nd > 2 || g->s[2] > 2 || (vnni && g->d[2] != 1)) {
        i8dw_release(p);
        return 1;
    }
    p->plane = plane;
    p->taps = g->k[1] * g->k[2];
    p->PH = g->in[1] + g->pb[1] + g->pe[1];
    p->PW = g->in[2] + g->pb[2] + g->pe[2];
    p->off = malloc((size_t)li->n_co * sizeof *p->off + 4);
    p->rq = malloc((size_t)li->n_co * sizeof *p->rq + 16);
    if (!p->off || !p->rq) {
        i8dw_release(p);
        return sqz_op_fail(ctx, "Conv: out of memory");
    }
    p->xbias = vnni ? 128 : 0;
    p->wstride = p->taps;
    if (vnni) {
        int64_t ng = (g->k[2] + 3) / 4;
        p->wstride = g->k[1] * ng * 4;
        p->wq = calloc((size_t)(li->n_co * p->wstride) + 4, 1);
        if (!p->wq) {
            i8dw_release(p);
            return sqz_op_fail(ctx, "Conv: out of memory");
        }
        for (int64_t c = 0; c < li->n_co; c++)
            for (int64_t i = 0; i < g->k[1]; i++)
                for (int64_t j = 0; j < g->k[2]; j++)
                    p->wq[c * p->wstride + (i * ng + j / 4) * 4 + j % 4] =
                        li->w[c * p->taps + i * g->k[2] + j];
    }
    for (int64_t c = 0; c < li->n_co; c++) {
        p->off[c] = (int32_t)((int64_t)li->bias[c] - (int64_t)(li->zp_x + p->xbias) * li->wsum[c]);
        p->rq[c] = sqz_i8_rqv_of(li->rq[c]);
    }
    /* wide mode when it runs fewer vectors (V lanes per kernel step) */
    {
        int64_t V = vnni ? 32 : 16, OH = g->out[1], OW = g->out[2];
        int64_t sh = g->s[1], sw = g->s[2];
        if (OH > 1 && (sh * p->PW) % sw == 0 && sh * p->PW / sw >= OW) {
            int64_t P = sh * p->PW / sw, L = (OH - 1) * P + OW;
            if ((L + V - 1) / V < OH * ((OW + V - 1) / V)) {
                p->wideP = P;
                p->wideL = L;
            }
        }
    }
#if defined(__x86_64__) || defined(_M_X64)
    if (vnni && p->wideL && p->PW <= 64 && g->out[2] <= 64) {
        sqz_i8_dw_small *a = &p->sm;
        sqz_i8_dw_geom *m = &a->gm;
        p->small = 1;
        m->H = g->in[1], m->W = g->in[2], m->pt = g->pb[1], m->pl = g->pb[2];
        m->PH = p->PH, m->PW = p->PW;
        m->kh = g->k[1], m->kw = g->k[2], m->sh = g->s[1], m->sw = g->s[2], m->dh = g->d[1];
        m->OH = g->out[1], m->OW = g->out[2], m->P = p->wideP, m->L = p->wideL;
        m->zb = (uint8_t)(li->zp_x + 128);
        a->n_co = li->n_co, a->in_sp = li->in_sp, a->out_sp = li->out_sp;
        a->w = p->wq, a->wstride = p->wstride, a->off = p->off, a->rq = p->rq;
        a->zp = li->zp_y, a->lo = li->lo, a->hi = li->hi;
        a->buf_bytes = plane_bytes(p);
        a->tmp_bytes = ((size_t)p->wideL + 64 + 63) / 64 * 64;
    }
#endif
    /* plane (+ 64: the small kernel's last row fill), the slack the row loads
     * read past it, then the wide output row (+ 64: the small kernel's
     * masked row loads); the small kernel keeps two of each */
    p->thread_bytes = plane_bytes(p);
    if (p->wideL) p->thread_bytes += ((size_t)p->wideL + 64 + 63) / 64 * 64;
    if (p->small) p->thread_bytes *= 2;
    if (vnni && g->s[2] == 1 && g->k[2] > 4) { /* the plane kernel's quad buffer */
        p->q_off = p->thread_bytes;
        p->thread_bytes += 4 * plane_bytes(p);
    }
    int64_t planes = li->batch * li->n_co;
    p->nt = ctx->num_threads > 0 ? ctx->num_threads : 1;
    if (p->nt > planes) p->nt = planes > 0 ? (int)planes : 1;
    if ((uint64_t)(planes * li->out_sp * p->taps) < SQZ_I8_MT_MIN_MACS) p->nt = 1;
    ctx->scratch_bytes = (size_t)p->nt * p->thread_bytes;
    ctx->params = p;
    return 0;
}

/* planes [p0, p1) through the bordered copy of part tid's scratch slice */
static void dw_planes_part(const sqz_op_ctx *ctx, int64_t p0, int64_t p1, int tid) {
    const i8dw *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    const ref_geom *g = &li->g;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    for (int64_t pl = p0; pl < p1; pl++) {
        int8_t *buf = (int8_t *)ctx->scratch + (size_t)tid * p->thread_bytes;
        int32_t *qb = p->q_off ? (int32_t *)(void *)(buf + p->q_off) : NULL;
        int64_t c = pl % li->n_co;
        const int8_t *x = X + pl * li->in_sp;
        /* bordered copy: pad rows / columns hold zp_x (real zero); VNNI: u8 x + 128 */
        uint8_t zb = (uint8_t)(li->zp_x + p->xbias);
        int64_t W = g->in[2], padl = g->pb[2], padr = g->pe[2];
        memset(buf, zb, (size_t)(g->pb[1] * p->PW + padl));
        for (int64_t h = 0; h < g->in[1]; h++) {
            int8_t *d = buf + (h + g->pb[1]) * p->PW + padl;
            const int8_t *s = x + h * W;
            if (p->xbias) {
                int64_t i = 0;
                for (; i + 8 <= W; i += 8) { /* 8 bytes at a time: x ^ 0x80 = x + 128 as u8 */
                    uint64_t v;
                    memcpy(&v, s + i, 8);
                    v ^= 0x8080808080808080ull;
                    memcpy(d + i, &v, 8);
                }
                for (; i < W; i++) d[i] = (int8_t)(uint8_t)((uint8_t)s[i] ^ 0x80u);
            } else {
                memcpy(d, s, (size_t)W);
            }
            memset(d + W, zb, (size_t)(padr + padl)); /* right pad + next row's left pad */
        }
        int64_t done = (g->pb[1] + g->in[1]) * p->PW + padl;
        /* the slack past the plane feeds only discarded lanes: left as is */
        if (done < p->PH * p->PW) memset(buf + done, zb, (size_t)(p->PH * p->PW - done));
        const int8_t *wc = (p->wq ? p->wq : li->w) + c * p->wstride;
        int8_t *y = Y + pl * li->out_sp;
        if (p->wideL) {
            int8_t *t = buf + plane_bytes(p);
            p->plane(buf, p->PW, wc, g->k[1], g->k[2], g->s[1], g->s[2], g->d[1], g->d[2], 1,
                     p->wideL, p->off[c], p->rq[c], li->zp_y, li->lo, li->hi, t, qb);
            for (int64_t oh = 0; oh < g->out[1]; oh++)
                memcpy(y + oh * g->out[2], t + oh * p->wideP, (size_t)g->out[2]);
        } else {
            p->plane(buf, p->PW, wc, g->k[1], g->k[2], g->s[1], g->s[2], g->d[1], g->d[2],
                     g->out[1], g->out[2], p->off[c], p->rq[c], li->zp_y, li->lo, li->hi, y, qb);
        }
    }
}

#if defined(__x86_64__) || defined(_M_X64)
/* a contiguous run of small planes per part (the kernel pipelines them) */
static void dw_small_part(const sqz_op_ctx *ctx, int64_t p0, int64_t p1, int tid) {
    const i8dw *p = ctx->params;
    sqz_i8_dw_small a = p->sm;
    a.X = (const int8_t *)ctx->in_data[0];
    a.Y = (int8_t *)ctx->out_data[0];
    uint8_t *buf = (uint8_t *)ctx->scratch + (size_t)tid * p->thread_bytes;
    sqz_i8_dw_small_vnni(&a, p0, p1, buf, (int8_t *)buf + 2 * a.buf_bytes,
                         p->q_off ? (int32_t *)(void *)(buf + p->q_off) : NULL);
}
#endif

static void dw_run(const sqz_op_ctx *ctx) {
    const i8dw *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    int64_t planes = li->batch * li->n_co;
#if defined(__x86_64__) || defined(_M_X64)
    if (p->small) {
        sqz_i8_par_range(ctx, p->nt, planes, dw_small_part);
        return;
    }
#endif
    sqz_i8_par_range(ctx, p->nt, planes, dw_planes_part);
}

#if defined(__x86_64__) || defined(_M_X64)
static int dw_prepare_vnni(sqz_op_ctx *ctx) {
    return dw_prepare(ctx, sqz_i8_dw_plane_vnni, 1);
}
static int dw_prepare_avx512(sqz_op_ctx *ctx) {
    return dw_prepare(ctx, sqz_i8_isa_vnni.dw, 0);
}
static int dw_prepare_avx2(sqz_op_ctx *ctx) {
    return dw_prepare(ctx, sqz_i8_isa_avx2.dw, 0);
}

const sqz_op_impl sqz_i8_dwconv_vnni = {dw_prepare_vnni, dw_run, i8dw_release, i8dw_macs};

const sqz_op_impl sqz_i8_dwconv_avx512 = {dw_prepare_avx512, dw_run, i8dw_release, i8dw_macs};
const sqz_op_impl sqz_i8_dwconv_avx2 = {dw_prepare_avx2, dw_run, i8dw_release, i8dw_macs};
#endif /* x86 */

#if defined(__aarch64__)
static int dw_prepare_neon(sqz_op_ctx *ctx) {
    return dw_prepare(ctx, sqz_i8_dw_plane_neon, 0);
}
const sqz_op_impl sqz_i8_dwconv_neon = {dw_prepare_neon, dw_run, i8dw_release, i8dw_macs};
#endif /* aarch64 */
#endif
