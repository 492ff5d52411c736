/* int8_gemm.c - packed int8 Conv / Gemm / MatMul drivers on the ISA
 * microkernels of int8_simd.h (weights packed once at prepare; OpenMP over
 * output tiles). Bit-identical to ref/int8_linear.c (same exact accumulator,
 * same requantization). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "int8_simd.h"
#include "par.h"

sqz_i8_rqv sqz_i8_rqv_of(sqz_rq r) {
    sqz_i8_rqv v = {r.s};
    return v;
}

int sqz_i8_split_threads(int nt, double est_ns) {
    static _Atomic long cached = -1; /* the minimum in ns, read once */
    long min_ns = atomic_load_explicit(&cached, memory_order_relaxed);
    if (min_ns < 0) {
        const char *e = getenv("SQZ_I8_SPLIT_NS");
        min_ns = 4000;
        if (e && *e) {
            char *end;
            long v = strtol(e, &end, 10);
            if (*end == 0 && v >= 0) min_ns = v;
        }
        atomic_store_explicit(&cached, min_ns, memory_order_relaxed);
    }
    if (nt < 1) nt = 1;
    return est_ns < (double)min_ns ? 1 : nt;
}

int sqz_i8_session_threads(int nt, uint64_t total_macs, uint64_t i8_macs) {
    long long lim = SQZ_I8_TINY_MACS;
    const char *e = getenv("SQZ_I8_TINY_MACS"); /* read per session: tests set it */
    if (e && *e) {
        char *end;
        long long v = strtoll(e, &end, 10);
        if (*end == 0 && v >= 0) lim = v;
    }
    if (nt <= 1) return 1;
    /* int8 work is most of the model's, and the whole model is small */
    return i8_macs > 0 && 2 * i8_macs >= total_macs && total_macs < (uint64_t)lim ? 1 : nt;
}

/* The drivers below serve the x86 and aarch64 microkernels; another
 * architecture adds its sqz_i8_isa tables and widens this guard. */
#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)
static size_t up64(size_t n) {
    return (n + 63) / 64 * 64;
}

/* Zeroed packed weights, 64-byte aligned: calloc's 16-byte alignment made
 * each 64-byte VNNI load of a Gemm row span two cache lines (784 -> 300
 * weights streamed from L2: 2.56 -> 2.05 us a pass). */
static void *wzalloc(size_t n, size_t sz) {
    if (!n) n = 1;
    if (sz && n > (SIZE_MAX - 64) / sz) return NULL;
    void *q = aligned_alloc(64, up64(n * sz));
    if (q) memset(q, 0, up64(n * sz));
    return q;
}

typedef struct i8lin {
    sqz_i8_linear li;
    const sqz_i8_isa *isa;
    int64_t Kp, kq, nblk; /* K padded to q; Kp / q; blocks per group (conv) / of n (gemm) */
    void *wp;             /* packed weights */
    size_t wblk_bytes;    /* bytes of one packed block */
    int32_t *off;         /* [n_co] */
    int iclamp;           /* sqz_i8_epi.iclamp */
    int ivbmi;            /* VNNI interleave through sqz_i8_interleave_vbmi */
    sqz_i8_rqv *rq;       /* [n_co] */
    /* conv */
    int64_t T, ntiles;    /* pixel tile, tiles per (image, group) */
    int64_t nchunk;       /* output-channel chunks per tile (threads on few tiles) */
    int pointwise;        /* 1x1, stride 1, no pad: im2col rows are input rows */
    int wide;             /* 2-D conv on zp-bordered phase planes (int8_simd.h) */
    int64_t PH, PW, npix; /* phase plane dims; pixels per (image, group): out_sp or OH * PW */
    int64_t pp;           /* PH * PW: one phase plane; a channel has s_h * s_w of them */
    uint8_t *phase_used;  /* [s_h * s_w]: some tap reads the phase (others stay unbuilt) */
    size_t plane, planes_bytes, zrow_off; /* shared scratch: planes, then a zp row */
    int64_t *koff;                        /* wide: [K] offset of row k in the group's planes */
    int64_t *kdec;                        /* [K][4]: ci, kd, kh, kw */
    /* quad planes (VNNI + VBMI, wide convs of >= 4 channels a group): the
     * phase planes of 4 channels interleaved as u8 quads, built once per
     * run; k-quad (tap t, channel quad cq) of wide pixel q is then 4 bytes
     * at qoff[t CQ + cq] + 4 q of the group's planes, so tiles need no
     * im2col interleave; weights packed [qkq][MR][4], zero for the channels
     * past cpg. quad 2 (< 4 channels, stride 1): tap quads instead, one
     * plane a channel of Q[b] = padded bytes b .. b + 3, k-quad (ci, kernel
     * row, 4 taps of it; zero weights past kw) */
    int quad;
    int rowk; /* quad 1 on sqz_i8_conv_rows_vnni (1: blocks of 32 channels) or _pairs_vnni
               * (2: of 16); tiles of rrows output rows */
    int64_t rrows;
    size_t qtmp_off;     /* quad 2: a bordered u8 plane per part (scratch) */
    uint8_t *gidx;       /* per 32 wide pixels: output byte order (sqz_i8_conv_q_vnni) */
    int32_t *gout;       /* per 32 wide pixels: first output, count */
    int64_t CQ, qkq;     /* channel quads a group; k-quads (taps * CQ) */
    int64_t *qoff;       /* [qkq] byte offsets */
    size_t qplane;       /* bytes of one channel quad's phase planes */
    size_t qbytes;       /* all of them (every image and group) */
    size_t shared_bytes; /* scratch before the per-thread parts */
    size_t thread_bytes; /* scratch per thread */
    size_t rows_off, R_off, xp_off, ytmp_off; /* parts of a thread's scratch */
    int nt;
    int gv_split; /* Gemm: one row split by columns in a small model (sqz_i8_gemv_split) */
    /* sqz_i8_conv_fuse_pair: the second node run inside (its context, part
     * function, and its scratch at this offset of ours); NULL: none */
    const sqz_op_ctx *pair;
    sqz_i8_part_fn pair_fn;
    size_t pair_off;
} i8lin;

static void i8lin_release(void *p) {
    i8lin *q = p;
    if (!q) return;
    sqz_i8_linear_free(&q->li);
    free(q->wp);
    free(q->off);
    free(q->rq);
    free(q->kdec);
    free(q->koff);
    free(q->qoff);
    free(q->gidx);
    free(q->gout);
    free(q->phase_used);
    free(q);
}

static uint64_t i8lin_macs(const sqz_op_ctx *ctx) {
    const i8lin *p = ctx->params;
    if (!p) return 0;
    const sqz_i8_linear *li = &p->li;
    if (li->op == SQZ_OP_CONV) return (uint64_t)(li->batch * li->n_co * li->out_sp * li->K);
    return (uint64_t)(li->rows * li->n_co * li->K);
}

/* Common prepare: analysis, offsets, multipliers. */
static int i8lin_common(sqz_op_ctx *ctx, const sqz_i8_isa *isa, i8lin **out) {
    i8lin *p = calloc(1, sizeof *p);
    if (!p) return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    if (sqz_i8_linear_prepare(ctx, &p->li)) {
        free(p);
        return -1;
    }
    p->isa = isa;
    const sqz_i8_linear *li = &p->li;
    /* short nodes stay on one thread (sqz_i8_split_threads) */
    uint64_t macs = li->op == SQZ_OP_CONV ? (uint64_t)(li->batch * li->n_co * li->out_sp * li->K)
                                          : (uint64_t)(li->rows * li->n_co * li->K);
    const ref_geom *g0 = &li->g;
    double ns_mac = li->op != SQZ_OP_CONV ? (li->rows == 1 ? SQZ_I8_NS_MAC_GEMV : SQZ_I8_NS_MAC_PW)
                    : g0->k[0] * g0->k[1] * g0->k[2] == 1 ? SQZ_I8_NS_MAC_PW
                                                          : SQZ_I8_NS_MAC_CONV;
    p->nt = sqz_i8_split_threads(ctx->num_threads, (double)macs * ns_mac);
    if (macs < SQZ_I8_MT_MIN_MACS) p->nt = 1;
    p->Kp = (li->K + isa->q - 1) / isa->q * isa->q;
    p->kq = p->Kp / isa->q;
    p->off = malloc((size_t)li->n_co * sizeof *p->off + 4);
    p->rq = malloc((size_t)li->n_co * sizeof *p->rq + 16);
    if (!p->off || !p->rq) {
        i8lin_release(p);
        return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    }
    for (int64_t c = 0; c < li->n_co; c++) {
        /* exact: |result| <= |bias| + 255 * 127 * K, bounded by the prepare check */
        int64_t o = (int64_t)li->bias[c] - (int64_t)(li->zp_x + isa->xbias) * li->wsum[c];
        p->off[c] = (int32_t)o;
        p->rq[c] = sqz_i8_rqv_of(li->rq[c]);
    }
    /* |acc| <= |bias| + 255 * 127 * K (int8.h) */
    p->iclamp = 1;
    for (int64_t c = 0; c < li->n_co; c++) {
        double B = fabs((double)li->bias[c]) + 255.0 * 127.0 * (double)li->K;
        if (!(B * (double)li->rq[c].s < 1073741824.0)) p->iclamp = 0;
    }
    *out = p;
    return 0;
}

/* Stores packed weight element (block b, kq, lane r, sub i) = v. */
static void put_w(const i8lin *p, int64_t blk, int64_t lanes, int64_t k, int64_t r, int8_t v) {
    int q = p->isa->q;
    size_t idx = (size_t)((k / q * lanes + r) * q + k % q);
    if (p->isa->esz == 1)
        ((int8_t *)p->wp)[(size_t)blk * p->wblk_bytes + idx] = v;
    else
        ((int16_t *)(void *)((char *)p->wp + (size_t)blk * p->wblk_bytes))[idx] = v;
}

/* ------------------------------------------------------------------- Conv */

static int conv_prepare(sqz_op_ctx *ctx, const sqz_i8_isa *isa) {
    i8lin *p;
    if (i8lin_common(ctx, isa, &p)) return -1;
    const sqz_i8_linear *li = &p->li;
    const ref_geom *g = &li->g;
    int mr = isa->mr;
    p->nblk = (li->mpg + mr - 1) / mr;
    size_t nb = (size_t)(li->group * p->nblk);
    p->kdec = malloc((size_t)li->K * 4 * sizeof(int64_t) + 32);
    if (!p->kdec) {
        i8lin_release(p);
        return sqz_op_fail(ctx, "Conv: out of memory");
    }
    int64_t taps = g->k[0] * g->k[1] * g->k[2];
    for (int64_t k = 0; k < li->K; k++) {
        int64_t t = k % taps;
        p->kdec[4 * k] = k / taps;
        p->kdec[4 * k + 1] = t / (g->k[1] * g->k[2]);
        p->kdec[4 * k + 2] = t / g->k[2] % g->k[1];
        p->kdec[4 * k + 3] = t % g->k[2];
    }
    p->pointwise = taps == 1 && g->s[0] == 1 && g->s[1] == 1 && g->s[2] == 1 && g->pb[0] == 0 &&
                   g->pb[1] == 0 && g->pb[2] == 0 && g->pe[0] == 0 && g->pe[1] == 0 &&
                   g->pe[2] == 0;
    /* pointwise convs keep their in-place rows: as quad planes (the input's
     * own) MobileNet's 7x7 / 14x14 1x1 layers of K 96..192 ran 1.4-1.6x slower */
    p->wide = !p->pointwise && g->nd <= 2;
    p->npix = li->out_sp;
    int64_t T = 128;
    if (p->wide) {
        /* phase planes: padded row r = i * sh + fh, column c = j * sw + fw lives in
         * phase (fh, fw) at (i, j); tap (kh, kw) of output (oh, ow) is then phase
         * ((kh dh) % sh, (kw dw) % sw) at (oh + kh dh / sh, ow + kw dw / sw):
         * a fixed shift of the wide pixel q = oh * PW + ow. */
        int64_t sh = g->s[1], sw = g->s[2];
        p->PH = (g->in[1] + g->pb[1] + g->pe[1] + sh - 1) / sh;
        p->PW = (g->in[2] + g->pb[2] + g->pe[2] + sw - 1) / sw;
        p->pp = p->PH * p->PW;
        p->npix = g->out[1] * p->PW;
        p->plane = (size_t)(sh * sw * p->pp);
        p->koff = malloc((size_t)li->K * sizeof *p->koff + 8);
        p->phase_used = calloc((size_t)(sh * sw), 1);
        if (!p->koff || !p->phase_used) {
            i8lin_release(p);
            return sqz_op_fail(ctx, "Conv: out of memory");
        }
        for (int64_t k = 0; k < li->K; k++) {
            int64_t th = p->kdec[4 * k + 2] * g->d[1], tw = p->kdec[4 * k + 3] * g->d[2];
            p->phase_used[(th % sh) * sw + tw % sw] = 1;
            p->koff[k] = p->kdec[4 * k] * (int64_t)p->plane + ((th % sh) * sw + tw % sw) * p->pp +
                         th / sh * p->PW + tw / sw;
        }
    }
#if defined(__x86_64__) || defined(_M_X64)
    p->ivbmi = isa->isa == SQZ_I8_ISA_VNNI && sqz_cpu_has_avx512_vbmi();
    int qcap = isa->isa == SQZ_I8_ISA_VNNI && g->nd <= 2 && sqz_cpu_has_avx512_vbmi();
    {
        const char *e = getenv("SQZ_I8_QUAD"); /* A/B: SQZ_I8_QUAD=0 */
        if (e && *e == '0') qcap = 0;
    }
    if (p->wide && qcap) {
        /* 3 channels too (a quad of 3 + a zero channel: 9 k-quads a pixel for
         * a 3x3 instead of 7, but no tile interleave and the output stored
         * straight): MobileNet's 3 -> 32 3x3 s2 stem at 1 thread
         * 0.1147-0.1159 -> 0.1059-0.1078 ms (SQZ_PROFILE=1 minimum, same
         * run, interleaved, load ~9) */
        if (g->s[2] <= 2 && li->cpg >= 3 && (li->group == 1 || li->cpg % 4 == 0))
            p->quad = 1;
        else if (li->cpg < 4 && g->s[1] == 1 && g->s[2] == 1 && g->d[2] == 1 && g->k[0] == 1)
            p->quad = 2;
    }
#endif
#if defined(__x86_64__) || defined(_M_X64)
    {
        /* output rows of <= 16 columns (7x7, 14x14: 63 / 224 wide pixels for
         * 49 / 196 outputs), 17+ channels and 16+ k-quads a pixel: channels
         * along the lanes (sqz_i8_conv_rows_vnni). The small ResNet at 1
         * thread (SQZ_PROFILE=cpu node minima): 64 -> 64 @7x7 11.8 -> 9.6 us,
         * 32 -> 64 s2 7.5 -> 6.5, 32 -> 32 @14x14 10.5 -> 9.7, 16 -> 32 s2
         * 6.8 -> 6.6; not taken: 16 -> 16 @28x28 (one vector of channels:
         * 10.6 either way) and the 1x1 s2 projections (4..8 k-quads: 1.8 ->
         * 2.1 us). SQZ_I8_ROWS=0: off (A/B). */
        const char *e = getenv("SQZ_I8_ROWS");
        if (p->quad == 1 && g->out[2] <= (li->mpg > 16 ? 16 : 32) &&
            taps * ((li->cpg + 3) / 4) >= 16 && !(e && *e == '0')) {
            /* 16 channels or fewer: pixel pairs (the small ResNet's 16 -> 16
             * @28x28: 27 groups of 32 wide pixels for 28 rows of 28) */
            p->rowk = li->mpg > 16 ? 1 : 2;
            mr = p->rowk == 1 ? 32 : 16;
            p->nblk = (li->mpg + mr - 1) / mr;
            nb = (size_t)(li->group * p->nblk);
        }
    }
#endif
    if (p->quad) {
        /* no per-tile interleave: tiles up to 256 pixels, as few as cover them */
        int64_t nt0 = (p->npix + 255) / 256;
        T = (p->npix + nt0 - 1) / nt0;
    }
    if (p->npix < T) T = p->npix;
    /* pointwise maps of <= 256 pixels (14x14) in one tile: 224 interleaved
     * columns instead of 2 x 128; MobileNetV2's 14x14 1x1 convs at 1 thread
     * 2-5% faster (SQZ_PROFILE=1 node minima, 4 rounds interleaved, load ~9) */
    if (p->pointwise && p->npix <= 256) T = p->npix;
    /* ... and larger maps whose whole interleaved tile stays within 16 KiB
     * (L1): the small MobileNet's 16 -> 32 @28x28, 7 tiles of 128 -> one,
     * 3.4 -> 3.1 us (SQZ_PROFILE=1 node minima, 3 rounds interleaved) */
    if (p->pointwise && (li->K + 3) / 4 * 4 * ((p->npix + 31) / 32 * 32) <= 16384) T = p->npix;
    /* pointwise maps of >= 2048 pixels (56x56, 112x112) in tiles of 256:
     * half the per-tile setup and microkernel calls (8+ tiles: still even
     * parts at 2 threads). MobileNetV2 at 1 thread, node minima of 4
     * rounds interleaved, load ~12: 32 -> 16 @112 0.0488 -> 0.0455 ms,
     * 16 -> 96 @112 0.1648 -> 0.1519, 24 -> 144 @56 0.0739 -> 0.0717 */
    if (p->pointwise && p->npix >= 2048) T = 256;
    T = (T + 31) / 32 * 32;
    if (T < 32) T = 32;
    p->T = T;
    /* weights: [block][k-quad][mr][q] */
    const int64_t ng = (g->k[2] + 3) / 4; /* quad 2: tap quads a kernel row */
    if (p->quad == 2) {
        p->CQ = li->cpg;
        p->qkq = li->cpg * g->k[1] * ng;
        p->wblk_bytes = (size_t)(p->qkq * 4 * mr);
        p->qplane = up64((size_t)p->pp * 4); /* tap_quads writes 16 at a time */
        p->qoff = malloc((size_t)p->qkq * sizeof *p->qoff + 8);
    } else if (p->quad) {
        p->CQ = (li->cpg + 3) / 4;
        p->qkq = taps * p->CQ;
        p->wblk_bytes = (size_t)(p->qkq * 4 * (p->rowk == 2 ? 32 : mr)); /* pairs: 32 lanes */
        p->qplane = (size_t)(g->s[1] * g->s[2] * p->pp) * 4;
        p->qoff = malloc((size_t)p->qkq * sizeof *p->qoff + 8);
    } else {
        p->wblk_bytes = (size_t)(p->Kp * mr * isa->esz);
    }
    p->wp = wzalloc(nb, p->wblk_bytes);
    if (!p->wp || (p->quad && !p->qoff)) {
        i8lin_release(p);
        return sqz_op_fail(ctx, "Conv: out of memory");
    }
    for (int64_t gi = 0; gi < li->group; gi++)
        for (int64_t b = 0; b < p->nblk; b++)
            for (int64_t r = 0; r < mr; r++) {
                int64_t co = b * mr + r;
                if (co >= li->mpg) break;
                co += gi * li->mpg;
                for (int64_t k = 0; k < li->K; k++) {
                    /* quad: k = ci taps + t goes to k-quad t CQ + ci / 4, lane ci % 4 */
                    int64_t kk =
                        p->quad == 1 ? ((k % taps) * p->CQ + k / taps / 4) * 4 + k / taps % 4 : k;
                    /* quad 2: tap (i, j) of channel ci to k-quad (ci kh + i) ng + j / 4 */
                    if (p->quad == 2)
                        kk =
                            ((k / taps * g->k[1] + k % taps / g->k[2]) * ng + k % g->k[2] / 4) * 4 +
                            k % g->k[2] % 4;
                    if (p->rowk == 2) { /* lanes 16 (r / 8) + 2 (r % 8) + 0, 1 */
                        for (int j = 0; j < 2; j++)
                            put_w(p, gi * p->nblk + b, 32, kk, 16 * (r / 8) + 2 * (r % 8) + j,
                                  li->w[co * li->K + k]);
                    } else
                        put_w(p, gi * p->nblk + b, mr, kk, r, li->w[co * li->K + k]);
                }
            }
    if (p->quad == 2)
        for (int64_t ci = 0; ci < li->cpg; ci++)
            for (int64_t i = 0; i < g->k[1]; i++)
                for (int64_t gq = 0; gq < ng; gq++)
                    p->qoff[(ci * g->k[1] + i) * ng + gq] =
                        (int64_t)p->qplane * ci + 4 * (i * g->d[1] * p->PW + 4 * gq);
    if (p->quad == 1)
        for (int64_t t = 0; t < taps; t++) {
            int64_t sh = g->s[1], sw = g->s[2];
            int64_t th = p->kdec[4 * t + 2] * g->d[1], tw = p->kdec[4 * t + 3] * g->d[2];
            int64_t sh_off = ((th % sh) * sw + tw % sw) * p->pp + th / sh * p->PW + tw / sw;
            for (int64_t cq = 0; cq < p->CQ; cq++)
                p->qoff[t * p->CQ + cq] = (int64_t)p->qplane * cq + 4 * sh_off;
        }
    p->ntiles = (p->npix + T - 1) / T;
    if (p->rowk) {
        /* whole planes a call; split nodes with fewer channel blocks than
         * threads (16 / 32 channels) split their rows instead: bands of
         * rrows, as conv_fill's */
        p->ntiles = 1;
        if (p->nt > 1 && p->nblk < p->nt && g->out[1] >= p->nt) p->ntiles = p->nt;
        p->rrows = (g->out[1] + p->ntiles - 1) / p->ntiles;
    }
    if (p->quad) {
        /* output order of each 32 wide pixels (sqz_i8_conv_q_vnni): pixel v
         * of a row sits at byte 16 (v % 16 / 4) + 4 (v / 16) + v % 4 of the
         * packed pair, the next row 8 further; valid: q < npix, q % PW < OW */
        int64_t ngr = p->ntiles * T / 32, OW = g->out[2];
        p->gidx = calloc((size_t)ngr, 64);
        p->gout = calloc((size_t)ngr, 2 * sizeof *p->gout);
        if (!p->gidx || !p->gout) {
            i8lin_release(p);
            return sqz_op_fail(ctx, "Conv: out of memory");
        }
        for (int64_t gq = 0; gq < ngr; gq++) {
            int32_t cnt = 0;
            for (int v = 0; v < 32; v++) {
                int64_t q = gq * 32 + v;
                if (q >= p->npix || q % p->PW >= OW) continue;
                if (!cnt) p->gout[2 * gq] = (int32_t)(q / p->PW * OW + q % p->PW);
                uint8_t b = (uint8_t)(16 * (v % 16 / 4) + 4 * (v / 16) + v % 4);
                p->gidx[gq * 64 + cnt] = b;
                p->gidx[gq * 64 + 32 + cnt] = (uint8_t)(b + 8);
                cnt++;
            }
            p->gout[2 * gq + 1] = cnt;
        }
    }
    /* shared: bordered planes of every image (wide), then one row of zp */
    if (p->quad) {
        /* k-quads read up to 4 (ntiles T) + 128 bytes past a quad plane's used
         * phases (results of those wide pixels are dropped) */
        p->qbytes = (size_t)(li->batch * li->group * p->CQ) * p->qplane;
        p->planes_bytes = up64(p->qbytes + (size_t)(4 * (p->ntiles * T + 4 * ng + 64)) + 128);
        if (p->quad == 2) { /* + a bordered plane a part (+ tap_quads' read slack) */
            p->qtmp_off = p->planes_bytes;
            p->planes_bytes += (size_t)p->nt * up64((size_t)p->pp + 128);
        }
    } else if (p->wide)
        p->planes_bytes =
            up64((size_t)(li->batch * li->C) * p->plane + (size_t)(T + 2 * p->PW) + 64);
    p->zrow_off = p->planes_bytes;
    p->shared_bytes = p->zrow_off + up64((size_t)T);
    p->rows_off = 0;
    p->R_off = up64((size_t)p->Kp * sizeof(int8_t *));
    p->xp_off = p->R_off + up64((size_t)(p->Kp * T));
    p->ytmp_off = p->xp_off + up64((size_t)(p->Kp * T * isa->esz));
    p->thread_bytes = p->ytmp_off + up64((size_t)(isa->mr * T));
    int64_t tasks = li->batch * li->group * p->ntiles;
    /* fewer tiles than threads (7x7, 14x14 maps): the tiles' channel blocks
     * are split too; each chunk re-packs its tile (small next to the GEMM) */
    p->nchunk = 1;
    if (p->nt > 1 && tasks < 2 * (int64_t)p->nt) {
        p->nchunk = (2 * (int64_t)p->nt + tasks - 1) / (tasks > 0 ? tasks : 1);
        /* one tile: a chunk per part (2 per part interleaved the tile twice) */
        if (tasks == 1) p->nchunk = p->nt;
        if (p->nchunk > p->nblk) p->nchunk = p->nblk > 0 ? p->nblk : 1;
        tasks *= p->nchunk;
    }
    if (p->nt > tasks) p->nt = tasks > 0 ? (int)tasks : 1;
    ctx->scratch_bytes = p->shared_bytes + (size_t)p->nt * p->thread_bytes;
    ctx->params = p;
    return 0;
}

/* Stage 1: R[k][0..T) = im2col rows of one tile (raw int8, pads = zp_x). */
static void gather_tile(const i8lin *p, const int8_t *X, int64_t n, int64_t gi, int64_t p0,
                        int64_t npx, int8_t *R) {
    const sqz_i8_linear *li = &p->li;
    const ref_geom *g = &li->g;
    int8_t zp = (int8_t)li->zp_x;
    int64_t T = p->T;
    for (int64_t k = 0; k < li->K; k++) {
        int8_t *r = R + k * T;
        int64_t ci = p->kdec[4 * k], kd = p->kdec[4 * k + 1], kh = p->kdec[4 * k + 2],
                kw = p->kdec[4 * k + 3];
        const int8_t *xc = X + (n * li->C + gi * li->cpg + ci) * li->in_sp;
        if (p->pointwise) {
            memcpy(r, xc + p0, (size_t)npx);
        } else {
            int64_t ow = p0 % g->out[2], oh = p0 / g->out[2] % g->out[1],
                    od = p0 / (g->out[2] * g->out[1]);
            int64_t j = 0;
            while (j < npx) {
                int64_t seg = g->out[2] - ow;
                if (seg > npx - j) seg = npx - j;
                int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
                int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
                if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1]) {
                    memset(r + j, zp, (size_t)seg);
                } else {
                    const int8_t *row = xc + (id * g->in[1] + ih) * g->in[2];
                    int64_t iw0 = ow * g->s[2] - g->pb[2] + kw * g->d[2], W = g->in[2];
                    if (g->s[2] == 1) {
                        int64_t a = iw0 < 0 ? -iw0 : 0, b = W - iw0 < seg ? W - iw0 : seg;
                        if (a > seg) a = seg;
                        if (b < a) b = a;
                        memset(r + j, zp, (size_t)a);
                        if (b > a) memcpy(r + j + a, row + iw0 + a, (size_t)(b - a));
                        memset(r + j + b, zp, (size_t)(seg - b));
                    } else {
                        for (int64_t t = 0; t < seg; t++) {
                            int64_t iw = iw0 + t * g->s[2];
                            r[j + t] = iw >= 0 && iw < W ? row[iw] : zp;
                        }
                    }
                }
                j += seg;
                ow += seg;
                if (ow == g->out[2]) {
                    ow = 0;
                    if (++oh == g->out[1]) {
                        oh = 0;
                        od++;
                    }
                }
            }
        }
        if (npx < T) memset(r + npx, zp, (size_t)(T - npx));
    }
}

/* Wide tile: copies the valid columns (ow < OW) of mr rows of wide pixels
 * [q0, q0 + npx) from ytmp (row stride T) into Y (row stride out_sp). */
static void store_wide(const i8lin *p, const int8_t *ytmp, int mr, int64_t q0, int64_t npx,
                       int8_t *y) {
    const sqz_i8_linear *li = &p->li;
    int64_t OW = li->g.out[2], PW = p->PW;
    for (int64_t oh = q0 / PW; oh * PW < q0 + npx; oh++) {
        int64_t a = oh * PW > q0 ? oh * PW : q0, b = oh * PW + OW;
        if (b > q0 + npx) b = q0 + npx;
        if (b <= a) continue;
#if defined(__x86_64__) || defined(_M_X64)
        if (p->isa->isa == SQZ_I8_ISA_VNNI) { /* AVX-512 BW */
            sqz_i8_copy_rows_avx512(ytmp + (a - q0), p->T, y + oh * OW + (a - oh * PW), li->out_sp,
                                    mr, b - a);
            continue;
        }
#endif
        for (int r = 0; r < mr; r++)
            memcpy(y + r * li->out_sp + oh * OW + (a - oh * PW), ytmp + r * p->T + (a - q0),
                   (size_t)(b - a));
    }
}

typedef struct {
    const sqz_op_ctx *ctx;
    int64_t n;
    int parts;
    sqz_i8_range_fn fn;
} i8_range_job;

static void i8_range_part(void *arg, int t) {
    const i8_range_job *j = arg;
    j->fn(j->ctx, j->n * t / j->parts, j->n * (t + 1) / j->parts, t);
}

void sqz_i8_par_range(const sqz_op_ctx *ctx, int nt, int64_t n, sqz_i8_range_fn fn) {
    /* the session may lower its threads after prepare (sqz_i8_session_threads) */
    if (nt > ctx->num_threads) nt = ctx->num_threads;
    if (nt > n) nt = (int)(n > 0 ? n : 1);
    if (nt <= 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    i8_range_job j = {ctx, n, nt, fn};
    sqz_par_for(nt, nt, i8_range_part, &j);
}

typedef struct i8_cut_job {
    const sqz_op_ctx *ctx;
    sqz_i8_range_fn fn;
    int64_t mr, nblk, n;
    int parts;
} i8_cut_job;

static void i8_cut_part(void *arg, int t) {
    const i8_cut_job *j = arg;
    int64_t c0, c1;
    sqz_i8_cut(t, j->parts, j->mr, j->nblk, j->n, &c0, &c1);
    if (c1 > c0) j->fn(j->ctx, c0, c1, t);
}

void sqz_i8_par_cuts(const sqz_op_ctx *ctx, int nt, int64_t n, int64_t mr, int64_t nblk,
                     sqz_i8_range_fn fn) {
    if (nt > ctx->num_threads) nt = ctx->num_threads;
    if (nt <= 1 || mr < 1 || nblk < nt) {
        sqz_i8_par_range(ctx, nt, n, fn);
        return;
    }
    i8_cut_job j = {ctx, fn, mr, nblk, n, nt};
    sqz_par_for(nt, nt, i8_cut_part, &j);
}

/* Parts of the wide path's tile loop (sqz_i8_par_range splits the tasks
 * over this many) and so the row bands of its plane fill: one image and
 * group, no channel chunks (else 1: the fill goes by channels). */
static int fill_bands(const sqz_op_ctx *ctx, const i8lin *p) {
    const sqz_i8_linear *li = &p->li;
    int64_t nt = p->nt < ctx->num_threads ? p->nt : ctx->num_threads, tasks = p->ntiles;
    if (li->batch * li->group != 1 || p->nchunk != 1 || p->quad == 2) return 1;
    if (nt > tasks) nt = tasks;
    return nt > 1 ? (int)nt : 1;
}

/* First phase-plane row read by part b of nb (its first tile's first wide
 * row); PH for b = nb. */
static int64_t band_row(const i8lin *p, int64_t b, int64_t nb) {
    if (b >= nb) return p->PH;
    int64_t r = p->rowk ? b * p->ntiles / nb * p->rrows : b * p->ntiles / nb * p->T / p->PW;
    return r < p->PH ? r : p->PH;
}

/* Items [t0, t1) of the wide path's plane fill: item = band * C' + c for the
 * C' = batch * C channels; band b holds phase rows [band_row(b), band_row(b +
 * 1)), the rows part b's tiles start reading (fill_bands parts: each part
 * then reads the rows it wrote itself, the other core's only at a band's
 * last rows, and the parts share the fill evenly however few the channels:
 * MobileNet's 3-channel first conv split 1 : 2 by channels, its tiles read
 * the other core's planes). */
static void conv_fill(const sqz_op_ctx *ctx, int64_t t0, int64_t t1, int part) {
    (void)part;
    const i8lin *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    const ref_geom *g = &li->g;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *planes = (int8_t *)ctx->scratch;
    const int64_t nch = li->batch * li->C, nb = fill_bands(ctx, p);
    for (int64_t it = t0; it < t1; it++) {
        const int64_t c = it % nch, b = it / nch;
        const int64_t i0 = band_row(p, b, nb), i1 = band_row(p, b + 1, nb);
        const int8_t *x = X + c * li->in_sp;
        int64_t H = g->in[1], W = g->in[2], sh = g->s[1], sw = g->s[2];
        for (int64_t fh = 0; fh < sh; fh++)
            for (int64_t fw = 0; fw < sw; fw++) {
                if (!p->phase_used[fh * sw + fw]) continue;
                int8_t *d = planes + (size_t)c * p->plane + (size_t)((fh * sw + fw) * p->pp);
#if defined(__x86_64__) || defined(_M_X64)
                if (sw <= 2 && p->isa->isa == SQZ_I8_ISA_VNNI) { /* AVX-512 BW */
                    /* rows [i0, i1): row i - i0 of the call is row i */
                    sqz_i8_phase_plane_avx512(x, H, W, sh, sw, fh, fw, g->pb[1] - i0 * sh, g->pb[2],
                                              i1 - i0, p->PW, (int8_t)li->zp_x, d + i0 * p->PW);
                    continue;
                }
#endif
                for (int64_t i = i0; i < i1; i++) {
                    int8_t *row = d + i * p->PW;
                    int64_t h = i * sh + fh - g->pb[1];
                    if (h < 0 || h >= H) {
                        memset(row, li->zp_x, (size_t)p->PW);
                        continue;
                    }
                    const int8_t *xr = x + h * W;
                    /* columns j with 0 <= j * sw + fw - pl < W */
                    int64_t c0 = g->pb[2] - fw, j0 = c0 > 0 ? (c0 + sw - 1) / sw : 0;
                    int64_t j1 = (W + g->pb[2] - fw + sw - 1) / sw;
                    if (j1 > p->PW) j1 = p->PW;
                    if (j0 > j1) j0 = j1;
                    memset(row, li->zp_x, (size_t)j0);
                    if (sw == 1) {
                        memcpy(row + j0, xr + j0 + fw - g->pb[2], (size_t)(j1 - j0));
                    } else {
                        const int8_t *src = xr + j0 * sw + fw - g->pb[2];
#if defined(__x86_64__) || defined(_M_X64)
                        if (sw == 2 && p->isa->isa == SQZ_I8_ISA_VNNI) { /* AVX-512 BW */
                            sqz_i8_even_bytes_avx512(src, j1 - j0, row + j0);
                        } else
#endif
                            for (int64_t j = 0; j < j1 - j0; j++) row[j0 + j] = src[j * sw];
                    }
                    memset(row + j1, li->zp_x, (size_t)(p->PW - j1));
                }
            }
    }
}

#if defined(__x86_64__) || defined(_M_X64)
/* [t0, t1) of the (image, group, channel quad) quad planes, by row bands
 * as conv_fill: item = band * I + it for the I = batch * group * CQ planes */
static void conv_fill_q(const sqz_op_ctx *ctx, int64_t t0, int64_t t1, int part) {
    const i8lin *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    const ref_geom *g = &li->g;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    uint8_t *qb = (uint8_t *)ctx->scratch;
    int64_t sh = g->s[1], sw = g->s[2];
    const int64_t nq = li->batch * li->group * p->CQ, nb = fill_bands(ctx, p);
    for (int64_t ti = t0; ti < t1; ti++) {
        const int64_t it = ti % nq, b = ti / nq;
        const int64_t i0 = band_row(p, b, nb), i1 = band_row(p, b + 1, nb);
        int64_t cq = it % p->CQ, gi = it / p->CQ % li->group, n = it / (p->CQ * li->group);
        if (p->quad == 2) { /* tap quads of channel cq */
            uint8_t *tmp = qb + p->qtmp_off + (size_t)part * up64((size_t)p->pp + 128);
            sqz_i8_dw_pack_u8(X + (n * li->C + gi * li->cpg + cq) * li->in_sp, g->in[1], g->in[2],
                              g->pb[1], g->pb[2], p->PH, p->PW, (uint8_t)(li->zp_x + 128), tmp);
            memset(tmp + p->pp, li->zp_x + 128, 128);
            sqz_i8_tap_quads_vbmi(tmp, p->pp, (int32_t *)(void *)(qb + (size_t)it * p->qplane));
            continue;
        }
        const int8_t *x[4];
        for (int c = 0; c < 4; c++) {
            int64_t ci = cq * 4 + c;
            x[c] = ci < li->cpg ? X + (n * li->C + gi * li->cpg + ci) * li->in_sp : NULL;
        }
        for (int64_t f = 0; f < sh * sw; f++)
            if (p->phase_used[f])
                sqz_i8_quad_plane_vbmi(
                    x, g->in[1], g->in[2], sh, sw, f / sw, f % sw, g->pb[1] - i0 * sh, g->pb[2],
                    i1 - i0, p->PW, (int8_t)li->zp_x,
                    qb + (size_t)it * p->qplane + (size_t)(f * p->pp + i0 * p->PW) * 4);
    }
}
#endif

/* Conv task task0 on the scratch slice of part tid: its tile's interleave
 * (into the slice; or xp_in, a tile already interleaved, when not NULL;
 * then *ready set, when not NULL), then its channel blocks. */
static void conv_task(const sqz_op_ctx *ctx, int64_t task0, int tid, const void *xp_in,
                      _Atomic int *ready) {
    const i8lin *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    char *scr = ctx->scratch;
    int8_t *planes = (int8_t *)scr, *zrow = (int8_t *)(scr + p->zrow_off);
    int64_t tasks = li->batch * li->group * p->ntiles * p->nchunk;
    (void)planes;
    {
        /* chunk-major: with static scheduling each thread takes whole
         * channel chunks across all tiles (balanced when tiles are unequal) */
        int64_t nbase = tasks / p->nchunk, ch = task0 / nbase, task = task0 % nbase;
        int64_t b0 = ch * p->nblk / p->nchunk, b1 = (ch + 1) * p->nblk / p->nchunk;
        char *base = scr + p->shared_bytes + (size_t)tid * p->thread_bytes;
        const int8_t **rows = (const int8_t **)(void *)(base + p->rows_off);
        int8_t *R = (int8_t *)(base + p->R_off), *ytmp = (int8_t *)(base + p->ytmp_off);
        const void *xp = xp_in ? xp_in : base + p->xp_off;
        int64_t t = task % p->ntiles, gi = task / p->ntiles % li->group,
                n = task / (p->ntiles * li->group);
        int64_t p0 = t * p->T, npx = p->npix - p0 < p->T ? p->npix - p0 : p->T;
#if defined(__x86_64__) || defined(_M_X64)
        if (p->rowk) {
            const uint8_t *qb =
                (const uint8_t *)scr + (size_t)((n * li->group + gi) * p->CQ) * p->qplane;
            const int64_t bw = p->rowk == 1 ? 32 : 16;
            for (int64_t b = b0; b < b1; b++) {
                int64_t c0 = b * bw, co = gi * li->mpg + c0;
                sqz_i8_epi e = {p->off + co, p->rq + co, li->zp_y, li->lo, li->hi, p->iclamp};
                const int8_t *wb = (const int8_t *)((const char *)p->wp +
                                                    (size_t)(gi * p->nblk + b) * p->wblk_bytes);
                const int64_t oh0 = t * p->rrows,
                              oh1 = oh0 + p->rrows < li->g.out[1] ? oh0 + p->rrows : li->g.out[1];
                (p->rowk == 1 ? sqz_i8_conv_rows_vnni : sqz_i8_conv_pairs_vnni)(
                    qb, p->qoff, p->qkq, wb, (int)(li->mpg - c0 < bw ? li->mpg - c0 : bw), oh0, oh1,
                    li->g.out[2], p->PW, Y + (n * li->n_co + co) * li->out_sp, li->out_sp, &e);
            }
            return;
        }
        if (p->quad) {
            const uint8_t *qb = (const uint8_t *)scr +
                                (size_t)((n * li->group + gi) * p->CQ) * p->qplane + 4 * (size_t)p0;
            for (int64_t b = b0; b < b1; b++) {
                int64_t c0 = b * p->isa->mr;
                int mr = (int)(li->mpg - c0 < p->isa->mr ? li->mpg - c0 : p->isa->mr);
                int64_t co = gi * li->mpg + c0;
                sqz_i8_epi e = {p->off + co, p->rq + co, li->zp_y, li->lo, li->hi, p->iclamp};
                const int8_t *wb = (const int8_t *)((const char *)p->wp +
                                                    (size_t)(gi * p->nblk + b) * p->wblk_bytes);
                sqz_i8_conv_q_vnni(qb, p->qoff, p->qkq, wb, mr, npx, p->gidx + p0 * 2,
                                   p->gout + p0 / 16, Y + (n * li->n_co + co) * li->out_sp,
                                   li->out_sp, &e);
            }
            return;
        }
#endif
        if (xp_in) {
            /* interleaved by another part */
        } else if (p->wide) {
            const int8_t *gp = planes + (size_t)(n * li->C + gi * li->cpg) * p->plane + p0;
            for (int64_t k = 0; k < li->K; k++) rows[k] = gp + p->koff[k];
        } else if (p->pointwise) {
            /* rows in place; a partial tile's rows read on into the next
             * plane (those pixels are not stored), except past the input's
             * end: those rows are copied */
            const int64_t x0 = (n * li->C + gi * li->cpg) * li->in_sp + p0;
            const int64_t xn = li->batch * li->C * li->in_sp, sp = li->in_sp;
            /* rows k < kin end inside the input: a branch-free loop (the
             * per-row test took ~1% of the small int8 MobileNet) */
            int64_t kin = xn - p->T - x0 < 0 ? 0 : (xn - p->T - x0) / sp + 1;
            if (kin > li->K) kin = li->K;
            for (int64_t k = 0; k < kin; k++) rows[k] = X + (x0 + k * sp);
            for (int64_t k = kin; k < li->K; k++) {
                int8_t *r = R + k * p->T;
                memcpy(r, X + (x0 + k * sp), (size_t)npx);
                memset(r + npx, li->zp_x, (size_t)(p->T - npx));
                rows[k] = r;
            }
        } else {
            gather_tile(p, X, n, gi, p0, npx, R);
            for (int64_t k = 0; k < li->K; k++) rows[k] = R + k * p->T;
        }
        if (!xp_in) {
            void *xw = base + p->xp_off;
            for (int64_t k = li->K; k < p->Kp; k++) rows[k] = zrow;
#if defined(__x86_64__) || defined(_M_X64)
            if (p->ivbmi)
                sqz_i8_interleave_vbmi(rows, p->Kp, p->T, xw);
            else
#endif
                p->isa->interleave(rows, p->Kp, p->T, xw);
            if (ready) atomic_store_explicit(ready, 1, memory_order_release);
        }
        for (int64_t b = b0; b < b1; b++) {
            int64_t c0 = b * p->isa->mr;
            int mr = (int)(li->mpg - c0 < p->isa->mr ? li->mpg - c0 : p->isa->mr);
            int64_t co = gi * li->mpg + c0;
            sqz_i8_epi e = {p->off + co, p->rq + co, li->zp_y, li->lo, li->hi, p->iclamp};
            const int8_t *wb =
                (const int8_t *)((const char *)p->wp + (size_t)(gi * p->nblk + b) * p->wblk_bytes);
            int8_t *y = Y + (n * li->n_co + co) * li->out_sp;
            if (p->wide) {
                p->isa->conv(xp, p->T, p->kq, wb, mr, npx, ytmp, p->T, &e);
                store_wide(p, ytmp, mr, p0, npx, y);
            } else {
                p->isa->conv(xp, p->T, p->kq, wb, mr, npx, y + p0, li->out_sp, &e);
            }
        }
    }
}

/* conv tasks [t0, t1) on the scratch slice of part tid */
static void conv_tasks(const sqz_op_ctx *ctx, int64_t t0, int64_t t1, int tid) {
    for (int64_t task0 = t0; task0 < t1; task0++) conv_task(ctx, task0, tid, NULL, NULL);
}

typedef struct pair_job {
    const sqz_op_ctx *ctx;
    const i8lin *p;
    int parts;
    _Atomic int ready; /* one tile: part 0's slice holds it interleaved */
} pair_job;

/* part t: the conv's chunk t over every tile, then the second node's
 * channels of that chunk (no join between them: they are this part's own) */
static void pair_part(void *arg, int t) {
    pair_job *j = arg;
    const i8lin *p = j->p;
    const int64_t n = p->ntiles * p->nchunk; /* batch 1, group 1 */
    if (p->ntiles == 1 && j->parts == p->nchunk) {
        /* one tile (14x14, 7x7): a part that finds it interleaved by part
         * 0 reads it there (the other core's bytes either way: the tile or
         * the input it is made of); the solo probe's runs then interleave
         * it once, not once a part */
        const void *xp = NULL;
        if (t > 0 && atomic_load_explicit(&j->ready, memory_order_acquire))
            xp = (const char *)j->ctx->scratch + p->shared_bytes + p->xp_off;
        conv_task(j->ctx, t, t, xp, t == 0 ? &j->ready : NULL);
    } else {
        conv_tasks(j->ctx, n * t / j->parts, n * (t + 1) / j->parts, t);
    }
    p->pair_fn(p->pair, (char *)j->ctx->scratch + p->pair_off, t, j->parts);
}

static void pair_run(const sqz_op_ctx *ctx, const i8lin *p) {
    int nt = p->nt < ctx->num_threads ? p->nt : ctx->num_threads;
    pair_job j = {ctx, p, nt > 1 ? nt : 1, 0};
    atomic_init(&j.ready, 0);
    if (nt <= 1) {
        pair_part(&j, 0);
        return;
    }
    sqz_par_for(nt, nt, pair_part, &j);
}

static void conv_run(const sqz_op_ctx *ctx) {
    const i8lin *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    char *scr = ctx->scratch;
    int8_t *planes = (int8_t *)scr, *zrow = (int8_t *)(scr + p->zrow_off);
    memset(zrow, li->zp_x, (size_t)p->T);
#if defined(__x86_64__) || defined(_M_X64)
    if (p->quad) {
        memset(planes + p->qbytes, 0,
               (p->quad == 2 ? p->qtmp_off : p->planes_bytes) - p->qbytes); /* read slack */
        sqz_i8_par_range(ctx, p->nt, li->batch * li->group * p->CQ * fill_bands(ctx, p),
                         conv_fill_q);
    } else
#endif
        if (p->wide) {
        int64_t nch = li->batch * li->C;
        memset(planes + (size_t)nch * p->plane, li->zp_x, p->planes_bytes - (size_t)nch * p->plane);
        sqz_i8_par_range(ctx, p->nt, nch * fill_bands(ctx, p), conv_fill);
    }
    /* chunk-major task order: each part takes whole channel chunks across
     * all tiles (balanced when tiles are unequal) */
    if (p->pair) {
        pair_run(ctx, p);
        return;
    }
    sqz_i8_par_range(ctx, p->nt, li->batch * li->group * p->ntiles * p->nchunk, conv_tasks);
}

/* SQZ_I8_PAIRS=0: no channel-consistent pair splits (int8.h; read at
 * session creation, like the others) */
static int pairs_on(void) {
    const char *e = getenv("SQZ_I8_PAIRS");
    return !(e && *e == '0');
}

static int is_conv_impl(const sqz_op_impl *impl) {
#if defined(__x86_64__) || defined(_M_X64)
    return impl == &sqz_i8_conv_vnni || impl == &sqz_i8_conv_avx2;
#else
    return impl == &sqz_i8_conv_neon || impl == &sqz_i8_conv_dot;
#endif
}

int sqz_i8_conv_chsplit(const sqz_op_impl *impl, sqz_op_ctx *ctx, int nt, int64_t *mr,
                        int64_t *nblk, int apply) {
    if (nt < 2 || !is_conv_impl(impl) || !ctx->params || !pairs_on()) return 0;
    i8lin *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    if (li->op != SQZ_OP_CONV || !p->pointwise || p->wide || p->quad || li->batch != 1 ||
        li->group != 1 || p->nblk < nt)
        return 0;
    *mr = p->isa->mr;
    *nblk = p->nblk;
    if (apply) {
        /* chunk-major tasks (conv_tasks): part t of sqz_i8_par_range's nt
         * takes chunk t over every tile */
        p->nt = nt;
        p->nchunk = nt;
        ctx->scratch_bytes = p->shared_bytes + (size_t)nt * p->thread_bytes;
    }
    return 1;
}

int sqz_i8_conv_fuse_pair(const sqz_op_impl *impl, sqz_op_ctx *ctx, const sqz_op_impl *second,
                          const sqz_op_ctx *sctx) {
    const char *e = getenv("SQZ_I8_PAIRS"); /* =2: pairs, not fused (A/B) */
    if (!is_conv_impl(impl) || !ctx->params || (e && *e == '2')) return 0;
    i8lin *p = ctx->params;
    if (p->nt < 2 || p->nchunk != p->nt || !p->pointwise || p->li.batch != 1 || p->li.group != 1)
        return 0;
    sqz_i8_part_fn fn = sqz_i8_dw_is(second)         ? sqz_i8_dw_part
                        : second == &sqz_i8_fast_gap ? sqz_i8_gap_part
                                                     : NULL;
    if (!fn) return 0;
    p->pair = sctx;
    p->pair_fn = fn;
    p->pair_off = up64(ctx->scratch_bytes);
    ctx->scratch_bytes = p->pair_off + sctx->scratch_bytes;
    return 1;
}

/* ------------------------------------------------------------ Gemm/MatMul */

#define GEMM_RB 4 /* rows per microkernel call */

static int gemm_prepare(sqz_op_ctx *ctx, const sqz_i8_isa *isa) {
    i8lin *p;
    if (i8lin_common(ctx, isa, &p)) return -1;
    const sqz_i8_linear *li = &p->li;
    int nb = isa->nb;
    p->nblk = (li->n_co + nb - 1) / nb;
    p->wblk_bytes = (size_t)(p->Kp * nb * isa->esz);
    p->wp = wzalloc((size_t)p->nblk, p->wblk_bytes);
    if (!p->wp) {
        i8lin_release(p);
        return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    }
    for (int64_t n = 0; n < li->n_co; n++)
        for (int64_t k = 0; k < li->K; k++) put_w(p, n / nb, nb, k, n % nb, sqz_i8_w(li, n, k));
    /* one row streaming >= SQZ_I8_GEMV_SPLIT bytes of weights (default 128 KB,
     * 0: never; read at prepare) splits by columns, also in a small model
     * (sqz_i8_gemv_split): such a row is bound by L2 bandwidth (LeNet-300's
     * 784 x 300: ~2 us at ~118 GB/s on Zen 4), and each core streams its
     * blocks from its own L2. A hand-off and the other core's lines cost
     * ~0.2 us each way on this VM, so LeNet-5's 48 KB fc1 (~0.4 us) stays */
    const char *ge = getenv("SQZ_I8_GEMV_SPLIT");
    long long gmin = 131072;
    if (ge && *ge) gmin = strtoll(ge, NULL, 10);
    p->gv_split = li->rows == 1 && ctx->num_threads > 1 && p->nblk > 1 && gmin > 0 &&
                  (long long)((size_t)p->nblk * p->wblk_bytes) >= gmin;
    if (p->gv_split) p->nt = ctx->num_threads;
    /* scratch: converted activation rows (+ a transposed row for transA) */
    size_t rows_pad = (size_t)((li->rows + GEMM_RB - 1) / GEMM_RB * GEMM_RB);
    p->thread_bytes = up64(rows_pad * (size_t)p->Kp * (size_t)isa->esz) + up64((size_t)li->K);
    ctx->scratch_bytes = p->thread_bytes * (p->gv_split ? (size_t)ctx->num_threads : 1);
    ctx->params = p;
    return 0;
}

/* Gemm tasks [t0, t1): (row block, column block) pairs on the converted
 * rows (shared scratch, written before the split) */
static void gemm_tasks(const sqz_op_ctx *ctx, int64_t t0, int64_t t1, int part) {
    (void)part;
    const i8lin *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    int8_t *Y = (int8_t *)ctx->out_data[0];
    const char *a = ctx->scratch;
    size_t row_bytes = (size_t)p->Kp * (size_t)p->isa->esz;
    for (int64_t task = t0; task < t1; task++) {
        int64_t b = task % p->nblk, rb = task / p->nblk;
        int64_t n0 = b * p->isa->nb, r0 = rb * GEMM_RB;
        int64_t nn = li->n_co - n0 < p->isa->nb ? li->n_co - n0 : p->isa->nb;
        int nrows = (int)(li->rows - r0 < GEMM_RB ? li->rows - r0 : GEMM_RB);
        sqz_i8_epi e = {p->off, p->rq, li->zp_y, li->lo, li->hi, p->iclamp};
        p->isa->gemm((const int8_t *)a + (size_t)r0 * row_bytes, nrows, p->Kp,
                     (const int8_t *)((const char *)p->wp + (size_t)b * p->wblk_bytes), n0, nn,
                     Y + r0 * li->n_co, li->n_co, &e);
    }
}

/* The activation rows of A in the ISA layout at a (a thread's scratch slice:
 * rows, then a K-byte row for padding / transA). */
static void convert_rows(const i8lin *p, const int8_t *A, char *a) {
    const sqz_i8_linear *li = &p->li;
    int8_t *tmp = (int8_t *)(a + p->thread_bytes - up64((size_t)li->K));
    size_t row_bytes = (size_t)p->Kp * (size_t)p->isa->esz;
    int64_t rows_pad = (li->rows + GEMM_RB - 1) / GEMM_RB * GEMM_RB;
    /* gemm_vnni reads row 0 alone when nrows == 1: no padding rows */
    int64_t nconv = li->rows == 1 && p->isa->isa == SQZ_I8_ISA_VNNI ? 1 : rows_pad;
    for (int64_t r = 0; r < nconv; r++) {
        const int8_t *src = A + r * li->K;
        if (r >= li->rows) {
            src = tmp;
            memset(tmp, li->zp_x, (size_t)li->K);
        } else if (li->trans_a) {
            for (int64_t k = 0; k < li->K; k++) tmp[k] = A[k * li->rows + r];
            src = tmp;
        }
        p->isa->convert(src, li->K, p->Kp, li->zp_x, a + (size_t)r * row_bytes);
    }
}

/* One row split by columns (gv_split): part `part` converts the row into
 * its own scratch slice and runs column blocks [b0, b1). A row converted
 * once and read by every part made each run's conversion wait for the
 * other core's copies of those lines (LeNet-300 at 2 threads: 2.26 vs 2.06
 * us a run). */
static void gv_tasks(const sqz_op_ctx *ctx, int64_t b0, int64_t b1, int part) {
    const i8lin *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    char *a = (char *)ctx->scratch + (size_t)part * p->thread_bytes;
    convert_rows(p, (const int8_t *)ctx->in_data[0], a);
    int8_t *Y = (int8_t *)ctx->out_data[0];
    sqz_i8_epi e = {p->off, p->rq, li->zp_y, li->lo, li->hi, p->iclamp};
    for (int64_t b = b0; b < b1; b++) {
        int64_t n0 = b * p->isa->nb;
        int64_t nn = li->n_co - n0 < p->isa->nb ? li->n_co - n0 : p->isa->nb;
        p->isa->gemm(a, 1, p->Kp, (const int8_t *)((const char *)p->wp + (size_t)b * p->wblk_bytes),
                     n0, nn, Y, li->n_co, &e);
    }
}

static void gemm_run(const sqz_op_ctx *ctx) {
    const i8lin *p = ctx->params;
    const sqz_i8_linear *li = &p->li;
    if (p->gv_split) {
        sqz_i8_par_range(ctx, p->nt, p->nblk, gv_tasks);
        return;
    }
    convert_rows(p, (const int8_t *)ctx->in_data[0], ctx->scratch);
    int64_t rblk = (li->rows + GEMM_RB - 1) / GEMM_RB, tasks = rblk * p->nblk;
    sqz_i8_par_range(ctx, p->nt, tasks, gemm_tasks);
}

int sqz_i8_gemv_split(const sqz_op_impl *impl, const sqz_op_ctx *ctx) {
    const i8lin *p = ctx->params;
    return p && impl->run == gemm_run && p->gv_split;
}

/* ---------------------------------------------------------------- impls */

#if defined(__x86_64__) || defined(_M_X64)
static int conv_prepare_vnni(sqz_op_ctx *ctx) {
    return conv_prepare(ctx, &sqz_i8_isa_vnni);
}
static int conv_prepare_avx2(sqz_op_ctx *ctx) {
    return conv_prepare(ctx, &sqz_i8_isa_avx2);
}
static int gemm_prepare_vnni(sqz_op_ctx *ctx) {
    return gemm_prepare(ctx, &sqz_i8_isa_vnni);
}
static int gemm_prepare_avx2(sqz_op_ctx *ctx) {
    return gemm_prepare(ctx, &sqz_i8_isa_avx2);
}
const sqz_op_impl sqz_i8_conv_vnni = {conv_prepare_vnni, conv_run, i8lin_release, i8lin_macs};
const sqz_op_impl sqz_i8_conv_avx2 = {conv_prepare_avx2, conv_run, i8lin_release, i8lin_macs};
const sqz_op_impl sqz_i8_gemm_vnni = {gemm_prepare_vnni, gemm_run, i8lin_release, i8lin_macs};
const sqz_op_impl sqz_i8_gemm_avx2 = {gemm_prepare_avx2, gemm_run, i8lin_release, i8lin_macs};
const sqz_op_impl sqz_i8_matmul_vnni = {gemm_prepare_vnni, gemm_run, i8lin_release, i8lin_macs};
const sqz_op_impl sqz_i8_matmul_avx2 = {gemm_prepare_avx2, gemm_run, i8lin_release, i8lin_macs};
#endif

#if defined(__aarch64__)
static int conv_prepare_neon(sqz_op_ctx *ctx) {
    return conv_prepare(ctx, &sqz_i8_isa_neon);
}
static int conv_prepare_dot(sqz_op_ctx *ctx) {
    return conv_prepare(ctx, &sqz_i8_isa_dot);
}
static int gemm_prepare_neon(sqz_op_ctx *ctx) {
    return gemm_prepare(ctx, &sqz_i8_isa_neon);
}
static int gemm_prepare_dot(sqz_op_ctx *ctx) {
    return gemm_prepare(ctx, &sqz_i8_isa_dot);
}
const sqz_op_impl sqz_i8_conv_neon = {conv_prepare_neon, conv_run, i8lin_release, i8lin_macs};
const sqz_op_impl sqz_i8_conv_dot = {conv_prepare_dot, conv_run, i8lin_release, i8lin_macs};
const sqz_op_impl sqz_i8_gemm_neon = {gemm_prepare_neon, gemm_run, i8lin_release, i8lin_macs};
const sqz_op_impl sqz_i8_gemm_dot = {gemm_prepare_dot, gemm_run, i8lin_release, i8lin_macs};
const sqz_op_impl sqz_i8_matmul_neon = {gemm_prepare_neon, gemm_run, i8lin_release, i8lin_macs};
const sqz_op_impl sqz_i8_matmul_dot = {gemm_prepare_dot, gemm_run, i8lin_release, i8lin_macs};
#endif /* aarch64 */
#else
int sqz_i8_gemv_split(const sqz_op_impl *impl, const sqz_op_ctx *ctx) {
    (void)impl, (void)ctx;
    return 0;
}
int sqz_i8_conv_chsplit(const sqz_op_impl *impl, sqz_op_ctx *ctx, int nt, int64_t *mr,
                        int64_t *nblk, int apply) {
    (void)impl, (void)ctx, (void)nt, (void)mr, (void)nblk, (void)apply;
    return 0;
}
int sqz_i8_conv_fuse_pair(const sqz_op_impl *impl, sqz_op_ctx *ctx, const sqz_op_impl *second,
                          const sqz_op_ctx *sctx) {
    (void)impl, (void)ctx, (void)second, (void)sctx;
    return 0;
}
#endif
