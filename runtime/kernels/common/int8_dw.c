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
#include <math.h>
#include <stdint.h>
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
    sqz_i8_dw_small sm;  /* its arguments but the tensors */
    int gather;          /* VBMI gather kernel (x86) */
    sqz_i8_dw_gather ga; /* its arguments but the tensors */
    int32_t *g_band;     /* its tables (owned) */
    uint8_t *g_idx;
    int8_t *g_w;
    int rows;          /* VBMI 3-row kernel (x86) */
    sqz_i8_dw_rows rw; /* its arguments but the tensors */
    int8_t *r_w;       /* its weights (owned) */
    uint8_t *r_pidx;   /* its two-row tables (owned) */
#endif
    int32_t *off;
    sqz_i8_rqv *rq;
    size_t thread_bytes;
    size_t q_off; /* VNNI: the quad buffer (4 x plane_bytes) at this offset of a slice; 0: none */
    int nt;
    int64_t cut_mr, cut_nblk; /* sqz_i8_dw_chsplit's channel cuts (0: even parts) */
} i8dw;

static void i8dw_release(void *p) {
    i8dw *q = p;
    if (!q) return;
    sqz_i8_linear_free(&q->li);
    free(q->off);
    free(q->rq);
    free(q->wq);
#if defined(__x86_64__) || defined(_M_X64)
    free(q->g_band);
    free(q->g_idx);
    free(q->g_w);
    free(q->r_w);
    free(q->r_pidx);
#endif
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

#if defined(__x86_64__) || defined(_M_X64)
/* 1 when |acc s| < 2^30 for every accumulator the layer can produce
 * (sqz_i8_epi.iclamp): |acc| <= |bias| + 255 * 127 * taps (int8.h). */
static int dw_iclamp(const i8dw *p) {
    for (int64_t c = 0; c < p->li.n_co; c++)
        if (!((fabs((double)p->li.bias[c]) + 255.0 * 127.0 * (double)p->taps) *
                  (double)p->li.rq[c].s <
              1073741824.0))
            return 0;
    return 1;
}

/* The gather kernel's plan (int8_simd.h sqz_i8_dw_gather): bands of R
 * output rows, R the largest with R * OW <= 64 whose every band reads at
 * most 127 input bytes (byte 127 stays free for the border value). 1 built, 0 not applicable, -1
 * out of memory. */
static int gather_plan(i8dw *p) {
    const sqz_i8_linear *li = &p->li;
    const ref_geom *g = &li->g;
    if (g->nd != 2) return 0;
    const int64_t H = g->in[1], W = g->in[2], OH = g->out[1], OW = g->out[2];
    const int64_t kh = g->k[1], kw = g->k[2], sh = g->s[1], sw = g->s[2], dh = g->d[1],
                  dw = g->d[2], pt = g->pb[1], pl = g->pb[2];
    if (OW < 1 || OW > 64 || OH < 1 || W < 1) return 0;
    const int64_t nq = (kh * kw + 3) / 4;
    /* R: the cheapest that fits, by permutes (a band of <= 63 input bytes
     * takes the one-source vpermb at ~half vpermi2b's cost), plus ~2 per
     * group and per band for the epilogue and loads. 14x14 3x3 s1: R 2
     * (bands of 56 bytes, 14 groups a plane) over R 4 (84 bytes, 14 groups) */
    int64_t R = 0, best = INT64_MAX;
    for (int64_t r = 64 / OW < OH ? 64 / OW : OH; r >= 1; r--) {
        int64_t maxlen = 0, groups = 0, bands = 0;
        for (int64_t oh0 = 0; oh0 < OH; oh0 += r) {
            int64_t r1 = oh0 + r < OH ? oh0 + r : OH;
            int64_t ih0 = oh0 * sh - pt, ih1 = (r1 - 1) * sh - pt + (kh - 1) * dh + 1;
            ih0 = ih0 < 0 ? 0 : ih0;
            ih1 = ih1 > H ? H : ih1;
            int64_t len = ih1 <= ih0 ? 0 : (ih1 - ih0) * W;
            maxlen = len > maxlen ? len : maxlen;
            groups += ((r1 - oh0) * OW + 15) / 16;
            bands++;
        }
        if (maxlen > 127) continue;
        int64_t cost = groups * nq * (maxlen <= 63 ? 1 : 2) + 2 * groups + 2 * bands;
        if (cost < best) best = cost, R = r;
    }
    if (R < 1) return 0;
    const int64_t nb = (OH + R - 1) / R;
    if (nb * 4 * nq * 64 > ((int64_t)1 << 20)) return 0; /* tables beyond 1 MiB: not small */
    p->g_band = malloc((size_t)nb * 5 * sizeof *p->g_band);
    p->g_idx = malloc((size_t)(nb * 4 * nq) * 64);
    p->g_w = calloc((size_t)(li->n_co * nq), 4);
    if (!p->g_band || !p->g_idx || !p->g_w) return -1;
    memset(p->g_idx, 127, (size_t)(nb * 4 * nq) * 64); /* border taps and pads: byte 127 */
    for (int64_t b = 0; b < nb; b++) {
        const int64_t oh0 = b * R, r1 = oh0 + R < OH ? oh0 + R : OH;
        int64_t ih0 = oh0 * sh - pt, ih1 = (r1 - 1) * sh - pt + (kh - 1) * dh + 1;
        ih0 = ih0 < 0 ? 0 : ih0;
        ih1 = ih1 > H ? H : ih1;
        if (ih1 < ih0) ih1 = ih0;
        const int64_t nout = (r1 - oh0) * OW;
        int32_t *bd = p->g_band + 5 * b;
        bd[0] = (int32_t)(ih0 * W);
        bd[1] = (int32_t)((ih1 - ih0) * W);
        bd[2] = (int32_t)(oh0 * OW);
        bd[3] = (int32_t)nout;
        bd[4] = (int32_t)((nout + 15) / 16);
        for (int64_t o = 0; o < nout; o++) {
            const int64_t oh = oh0 + o / OW, ow = o % OW, gi = o / 16, l = o % 16;
            for (int64_t t = 0; t < kh * kw; t++) {
                const int64_t ih = oh * sh - pt + (t / kw) * dh, iw = ow * sw - pl + (t % kw) * dw;
                const int64_t q = t / 4, at = (b * 4 + gi) * nq + q, byte = 4 * l + t % 4;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue; /* border: zb */
                p->g_idx[at * 64 + byte] = (uint8_t)((ih - ih0) * W + iw);
            }
        }
    }
    for (int64_t c = 0; c < li->n_co; c++)
        for (int64_t t = 0; t < kh * kw; t++) p->g_w[c * nq * 4 + t] = li->w[c * p->taps + t];
    sqz_i8_dw_gather *a = &p->ga;
    a->nb = nb, a->nq = nq, a->band = p->g_band, a->idx = p->g_idx;
    a->w = p->g_w, a->off = p->off, a->rq = p->rq;
    a->zp = li->zp_y, a->lo = li->lo, a->hi = li->hi, a->zb = (uint8_t)(li->zp_x + 128);
    a->n_co = li->n_co, a->in_sp = li->in_sp, a->out_sp = li->out_sp;
    a->g1 = R * OW <= 16 ? R * OW : 0;
    a->iclamp = dw_iclamp(p);
    p->gather = 1;
    return 1;
}
#endif

#if defined(__x86_64__) || defined(_M_X64)
/* The 3-row kernel (int8_simd.h sqz_i8_dw_rows) when the layer fits it:
 * 3 x (<= 4) kernel, dilation 1 along h, stride 1 or 2 along h, 9..16
 * output columns (narrower rows: the gather kernel packs several in a
 * vector), input rows of <= 63 bytes; or its two-row form (stride 1 along
 * h, <= 8 columns, planes of <= 63 bytes). SQZ_I8_DW_ROWS=0: never (A/B; read
 * at each prepare). 1 taken, 0 not, -1 out of memory. */
static int rows_plan(i8dw *p) {
    const sqz_i8_linear *li = &p->li;
    const ref_geom *g = &li->g;
    const char *e = getenv("SQZ_I8_DW_ROWS");
    const int64_t H = g->in[1], W = g->in[2], OH = g->out[1], OW = g->out[2], kw = g->k[2];
    /* two rows a vector: 7x7 planes (3x3 s1: 8 permutes a plane, the
     * gather kernel's 12) */
    const int two = g->s[1] == 1 && OW <= 8 && H * W <= 63;
    if ((e && *e == '0') || g->nd != 2 || g->k[1] != 3 || kw > 4 || g->d[1] != 1 || g->s[1] > 2 ||
        (!two && (OW < 9 || OW > 16)) || W > 63 || H < 1 || OW < 1)
        return 0;
    sqz_i8_dw_rows *a = &p->rw;
    memset(a->idx, 127, sizeof a->idx);
    memset(a->cidx, 0, sizeof a->cidx);
    for (int64_t ow = 0; ow < OW; ow++)
        for (int64_t j = 0; j < kw; j++) {
            const int64_t iw = ow * g->s[2] - g->pb[2] + j * g->d[2];
            if (iw >= 0 && iw < W) a->idx[4 * ow + j] = (uint8_t)iw;
        }
    /* int8_simd.h: output i of row j at byte 16 (i / 4) + 4 j + i % 4 */
    for (int64_t k = 0; !two && k < 4 * OW; k++)
        a->cidx[k] = (uint8_t)(16 * (k % OW / 4) + 4 * (k / OW) + k % OW % 4);
    for (int64_t k = 0; two && k < 8 * OW; k++) { /* row 2 j + h: lane 8 h + ow of group j */
        const int64_t oh = k / OW, ow = k % OW, i = 8 * (oh % 2) + ow;
        a->cidx[k] = (uint8_t)(16 * (i / 4) + 4 * (oh / 2) + i % 4);
    }
    if (two) {
        const int64_t nt = 2 * ((OH + 1) / 2) + 1;
        uint8_t *t = malloc((size_t)nt * 64);
        if (!t) return -1;
        memset(t, 127, (size_t)nt * 64);
        for (int64_t m = 0; m < nt; m++)
            for (int64_t l = 0; l < 16; l++) {
                const int64_t ih = m + l / 8 - g->pb[1], ow = l % 8;
                for (int64_t j = 0; j < kw && ow < OW && ih >= 0 && ih < H; j++) {
                    const int64_t iw = ow * g->s[2] - g->pb[2] + j * g->d[2];
                    if (iw >= 0 && iw < W) t[64 * m + 4 * l + j] = (uint8_t)(ih * W + iw);
                }
            }
        p->r_pidx = t;
    }
    a->pidx = p->r_pidx;
    p->r_w = calloc((size_t)li->n_co * 12, 1);
    if (!p->r_w) return -1;
    for (int64_t c = 0; c < li->n_co; c++)
        for (int64_t t = 0; t < 3 * kw; t++)
            p->r_w[c * 12 + t / kw * 4 + t % kw] = li->w[c * p->taps + t];
    a->H = H, a->W = W, a->OH = OH, a->OW = OW, a->sh = g->s[1], a->pt = g->pb[1];
    a->w = p->r_w, a->off = p->off, a->rq = p->rq;
    a->zp = li->zp_y, a->lo = li->lo, a->hi = li->hi, a->zb = (uint8_t)(li->zp_x + 128);
    a->iclamp = dw_iclamp(p);
    a->n_co = li->n_co, a->in_sp = li->in_sp, a->out_sp = li->out_sp;
    p->rows = 1;
    return 1;
}
#endif

/* threads for the planes of a depthwise conv (short ones stay on one) */
static int dw_threads(const sqz_op_ctx *ctx, const i8dw *p, int64_t planes) {
    uint64_t macs = (uint64_t)(planes * p->li.out_sp * p->taps);
    int nt = sqz_i8_split_threads(ctx->num_threads, (double)macs * SQZ_I8_NS_MAC_DW);
    if (nt > planes) nt = planes > 0 ? (int)planes : 1;
    /* the estimate decides alone (no 2^19-MAC floor): MNASNet's 1152 x 7x7
     * 3x3 (508K MACs, ~17 us) ran on one core at 2 threads */
    return nt;
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
#if defined(__x86_64__) || defined(_M_X64)
    if (vnni && sqz_cpu_has_avx512_vbmi()) {
        int rc = rows_plan(p);
        if (rc == 0) rc = gather_plan(p);
        if (rc < 0) {
            i8dw_release(p);
            return sqz_op_fail(ctx, "Conv: out of memory");
        }
        if (rc > 0) {
            int64_t planes = li->batch * li->n_co;
            p->nt = dw_threads(ctx, p, planes);
            ctx->scratch_bytes = 0;
            ctx->params = p;
            return 0;
        }
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
    p->nt = dw_threads(ctx, p, planes);
    ctx->scratch_bytes = (size_t)p->nt * p->thread_bytes;
    ctx->params = p;
    return 0;
}

/* The bordered copy of plane x into buf (PH x PW): pad rows / columns hold
 * zb = zp_x (real zero), VNNI: u8 x + 128 (xbias). */
static void pack_plane(int8_t *buf, const int8_t *x, const ref_geom *g, int64_t PW, int64_t PH,
                       uint8_t zb, int xbias) {
    const int64_t W = g->in[2], padl = g->pb[2], padr = g->pe[2];
#if defined(__x86_64__) || defined(_M_X64)
    if (xbias) { /* the VNNI kernels' u8 plane: vector copy */
        sqz_i8_dw_pack_u8(x, g->in[1], W, g->pb[1], padl, PH, PW, zb, (uint8_t *)buf);
        return;
    }
#endif
    memset(buf, zb, (size_t)(g->pb[1] * PW + padl));
    for (int64_t h = 0; h < g->in[1]; h++) {
        int8_t *d = buf + (h + g->pb[1]) * PW + padl;
        const int8_t *s = x + h * W;
        if (xbias) {
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
    int64_t done = (g->pb[1] + g->in[1]) * PW + padl;
    /* the slack past the plane feeds only discarded lanes: left as is */
    if (done < PH * PW) memset(buf + done, zb, (size_t)(PH * PW - done));
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
        pack_plane(buf, X + pl * li->in_sp, g, p->PW, p->PH, (uint8_t)(li->zp_x + p->xbias),
                   p->xbias);
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

#if defined(__x86_64__) || defined(_M_X64)
static void dw_rows_part(const sqz_op_ctx *ctx, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const i8dw *p = ctx->params;
    sqz_i8_dw_rows a = p->rw;
    a.X = (const int8_t *)ctx->in_data[0];
    a.Y = (int8_t *)ctx->out_data[0];
    sqz_i8_dw_rows_vbmi(&a, p0, p1);
}

static void dw_gather_part(const sqz_op_ctx *ctx, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const i8dw *p = ctx->params;
    sqz_i8_dw_gather a = p->ga;
    a.X = (const int8_t *)ctx->in_data[0];
    a.Y = (int8_t *)ctx->out_data[0];
    sqz_i8_dw_gather_vbmi(&a, p0, p1);
}
#endif

static void dw_par(const sqz_op_ctx *ctx, const i8dw *p, int64_t planes, sqz_i8_range_fn fn) {
    if (p->cut_nblk > 0)
        sqz_i8_par_cuts(ctx, p->nt, planes, p->cut_mr, p->cut_nblk, fn);
    else
        sqz_i8_par_range(ctx, p->nt, planes, fn);
}

static void dw_run(const sqz_op_ctx *ctx) {
    const i8dw *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    int64_t planes = li->batch * li->n_co;
#if defined(__x86_64__) || defined(_M_X64)
    if (p->rows) {
        dw_par(ctx, p, planes, dw_rows_part);
        return;
    }
    if (p->gather) {
        dw_par(ctx, p, planes, dw_gather_part);
        return;
    }
    if (p->small) {
        dw_par(ctx, p, planes, dw_small_part);
        return;
    }
#endif
    dw_par(ctx, p, planes, dw_planes_part);
}

static int is_dw_impl(const sqz_op_impl *impl);

int sqz_i8_dw_is(const sqz_op_impl *impl) {
    return is_dw_impl(impl);
}

void sqz_i8_dw_part(const sqz_op_ctx *ctx, void *scratch, int t, int parts) {
    const i8dw *p = ctx->params;
    sqz_op_ctx c = *ctx;
    c.scratch = scratch;
    int64_t c0, c1;
    sqz_i8_cut(t, parts, p->cut_mr, p->cut_nblk, p->li.batch * p->li.n_co, &c0, &c1);
    if (c1 <= c0) return;
#if defined(__x86_64__) || defined(_M_X64)
    if (p->rows) {
        dw_rows_part(&c, c0, c1, t);
        return;
    }
    if (p->gather) {
        dw_gather_part(&c, c0, c1, t);
        return;
    }
    if (p->small) {
        dw_small_part(&c, c0, c1, t);
        return;
    }
#endif
    dw_planes_part(&c, c0, c1, t);
}

int sqz_i8_dw_chsplit(const sqz_op_impl *impl, sqz_op_ctx *ctx, int nt, int64_t mr, int64_t nblk) {
    const char *e = getenv("SQZ_I8_PAIRS");
    if (nt < 2 || mr < 1 || nblk < nt || !is_dw_impl(impl) || !ctx->params || (e && *e == '0'))
        return 0;
    i8dw *p = ctx->params;
    const int64_t n = p->li.n_co;
    if (p->li.batch != 1 || nblk * mr < n || (nblk - 1) * mr >= n) return 0;
    p->nt = nt;
    p->cut_mr = mr;
    p->cut_nblk = nblk;
    /* the gather and 3-row kernels need no scratch; the others a slice a part */
#if defined(__x86_64__) || defined(_M_X64)
    if (p->gather || p->rows) return 1;
#endif
    ctx->scratch_bytes = (size_t)nt * p->thread_bytes;
    return 1;
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
static int is_dw_impl(const sqz_op_impl *impl) {
    return impl == &sqz_i8_dwconv_vnni || impl == &sqz_i8_dwconv_avx512 ||
           impl == &sqz_i8_dwconv_avx2;
}
#endif /* x86 */

#if defined(__aarch64__)
static int dw_prepare_neon(sqz_op_ctx *ctx) {
    return dw_prepare(ctx, sqz_i8_dw_plane_neon, 0);
}
const sqz_op_impl sqz_i8_dwconv_neon = {dw_prepare_neon, dw_run, i8dw_release, i8dw_macs};
static int is_dw_impl(const sqz_op_impl *impl) {
    return impl == &sqz_i8_dwconv_neon;
}
#endif /* aarch64 */
#else
int sqz_i8_dw_is(const sqz_op_impl *impl) {
    (void)impl;
    return 0;
}
int sqz_i8_dw_chsplit(const sqz_op_impl *impl, sqz_op_ctx *ctx, int nt, int64_t mr, int64_t nblk) {
    (void)impl, (void)ctx, (void)nt, (void)mr, (void)nblk;
    return 0;
}
#endif
