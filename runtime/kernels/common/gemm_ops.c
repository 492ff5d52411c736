/* gemm_ops.c - Conv (direct 1x1 and implicit-im2col GEMM), Gemm and MatMul
 * on the packed GEMM driver, for any microkernel (see gemm.h).
 *
 * Validation and output shapes come from the reference kernel's prepare()
 * (one definition of each op's semantics); these kernels then decline (1)
 * what they do not cover, and the reference runs it. */
#include <stdlib.h>
#include <string.h>

#include "conv1x1.h"
#include "dwconv.h"
#include "fastops.h"
#include "gemm.h"
#include "par.h"
#include "ref/ref.h"
#include "wino_small.h"
#include "winograd.h"

typedef struct gop {
    int op;
    const sqz_gemm_kernel *k;
    uint64_t macs;
    ref_act act;
    /* Conv */
    int64_t N, C, M, group, Cg, Mg, K, in_sp, out_sp;
    int64_t IH, IW, OH, OW, kh, kw, sh, sw, dh, dw, ph, pw;
    int direct;
    /* wide: the conv runs in bands of `band` output rows. For each band it
     * reads a zero-padded, phase-split copy of the input rows the band needs:
     * for stride (sh, sw), plane (c, a, b) holds padded rows a, a + sh, ...
     * and columns b, b + sw, ... (QH x QW, QH = band + (kh-1)/sh; stride 1:
     * one plane per channel, the padded rows). Output pixel (oh, ow) of the
     * band is computed at wide column oh * QW + ow, so im2col row k = (c, i,
     * j) is plane (c, i % sh, j % sw) shifted by off[k]: the GEMM reads B
     * rows in place (or copies them into panels). The (kw-1)/sw columns past
     * OW of each wide row are garbage, dropped by the GEMM's wide store into
     * Y. A band-sized buffer keeps the scratch small (no input-sized copy in
     * the arena). */
    int wide;
    int64_t QH, QW, band;
    int64_t *off;                    /* [K] */
    size_t pad_floats, gemm_scratch; /* scratch parts (64-byte multiples) */
    /* kernels without the GEMM's column map (AVX2, NEON): the band's wide
     * output goes to a buffer (wout_floats), compacted into Y by row copies
     * (cheaper than the driver's per-tile gather / scatter fallback) */
    size_t wout_floats;
    /* wide threads: wnt threads in one parallel region per run, as a grid of
     * (wnt / wtm) output-row chunks x wtm output-channel chunks; each thread
     * copies, multiplies and compacts its own bands in its own scratch part
     * (wthread_bytes each): no barrier, no buffer shared between cores */
    int wnt, wtm;
    size_t wthread_bytes;
    /* px: the wide conv's GEMM is the kernel's pixel-major tile (gemm.h):
     * weights packed by sqz_gemm_pack_px, tiles of whole output rows (or
     * row pieces) read from the same band copy, no padded columns */
    int px;
    /* direct 1x1 on px tiles: pnt threads, each a range of channel panels
     * (pby_m) or of pixel chunks */
    int pnt, pby_m;
    /* vec: a 1x1 conv on a 1x1 plane (squeeze-excite convs after a global
     * pool) is y[M] = W[M,K] x[K]; run as the row-vector product
     * x^T . W^T (M = 1, W packed as B) so the GEMM's column panels are all
     * used, instead of one column of every MR x NR tile (16-32x the work) */
    int vec;
    int has_bias;
    float *wpk;       /* packed weights: group (or batch) matrices */
    size_t wpk_elems; /* floats per matrix */
    /* Gemm / MatMul */
    int64_t gM, gN, gK;
    int a_const, b_const; /* operand packed at prepare */
    int64_t ars, acs, brs, bcs;
    float alpha, beta;
    int has_c, post; /* post-pass: alpha, beta * C, activation */
    int64_t c_rs, c_cs;
    int64_t batch, abatch, bbatch; /* MatMul */
    size_t scratch;
    int64_t par_min_macs; /* sqz_gemm_par_min_macs() at prepare */
    /* gemv: at most GEMV_MAX_ROWS rows times constant weights packed by
     * sqz_gemv_pack (wpk, alpha folded in) in gv_np panels of up to gv_pv
     * vectors; x rows gv_ldx apart; gv_bias: beta * C when C is a constant
     * row (folded into the store), else C is added by a post-pass (gv_post_c);
     * gv_nt > 1: the panels are parts claimed by the threads */
    int gv, gv_pv, gv_nt, gv_post_c, gv_kact;
    int64_t gv_np, gv_rows, gv_ldx;
    float *gv_bias;
    /* Conv: the executor's fused epilogue (sqz_gemm_conv_set_post) */
    int has_fp;
    sqz_conv_post fp;
    /* c1: a direct 1x1 conv with K <= 16 on the small-K kernel (conv1x1.h,
     * weights in wpk), c1nt threads over pixel ranges */
    sqz_c1x1_fn c1;
    int c1nt, c1stream;
    /* dn: a 1x1 "down" conv on this wide px conv's input, run on its band
     * copy (sqz_gemm_conv_fuse_down): the down node's context (weights,
     * bias, output bound by the session) and its K input channels' offsets
     * in the copy (doff) */
    const sqz_op_ctx *dn;
    int64_t *doff;
    /* ch: the conv chain this conv (its last) runs at its step
     * (sqz_gemm_conv_chain): chn convs, cnt threads, each with ch_thread
     * bytes of scratch (a band copy of ch_pad floats, then a private
     * full-plane buffer per earlier conv's output and its down conv's);
     * ch_res[s]: conv s's fused residual is the output of earlier conv u (u)
     * or of u's down conv (SQZ_CONV_CHAIN_MAX + u); -1 none / external */
    sqz_op_ctx **ch;
    int chn, cnt;
    size_t ch_thread, ch_pad;
    signed char ch_res[SQZ_CONV_CHAIN_MAX];
    /* ch_ws[s]: chain conv s runs its bands on the small-channel Winograd
     * kernel (wino_small.h; NULL: px_rows), in ch_wsb bytes at the end of
     * each thread's part */
    sqz_wsm **ch_ws;
    size_t ch_wsb;
} gop;

void sqz_gemm_op_release(void *params) {
    gop *p = params;
    if (!p) return;
    free(p->wpk);
    free(p->off);
    free(p->doff);
    free(p->ch);
#if defined(__x86_64__) || defined(_M_X64)
    for (int s = 0; p->ch_ws && s < p->chn; s++) sqz_wsm_free(p->ch_ws[s]);
#endif
    free(p->ch_ws);
    free(p->gv_bias);
    free(p);
}

uint64_t sqz_gemm_op_macs(const sqz_op_ctx *ctx) {
    const gop *p = ctx->params;
    return p ? p->macs : 0;
}

/* Runs the reference prepare to validate and shape; frees its params. */
static int ref_validate(sqz_op_ctx *ctx, const sqz_op_impl *ref) {
    int rc = ref->prepare(ctx);
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    ctx->scratch_bytes = 0;
    return rc;
}

static float *alloc_floats(size_t n) {
    if (n == 0) n = 1;
    if (n > SIZE_MAX / sizeof(float)) return NULL;
    return malloc(n * sizeof(float));
}

/* 64-byte aligned (whole-line vector loads of packed weights); free() */
static float *alloc_floats64(size_t n) {
    if (n == 0) n = 1;
    if (n > (SIZE_MAX - 64) / sizeof(float)) return NULL;
    return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
}

/* ------------------------------------------------------------------- Conv */

typedef struct conv_pack_ctx {
    const gop *p;
    const float *x; /* first input channel of the group, one image (wide: padded copy) */
} conv_pack_ctx;

/* Implicit im2col: B[k][col] with k = (c, i, j) over (Cg, kh, kw) and col =
 * (oh, ow) over the output plane, read straight from the input. */
static void conv_pack_b(const void *vctx, int64_t k0, int64_t kc, int64_t n0, int64_t nr, int NR,
                        float *dst) {
    const conv_pack_ctx *cc = vctx;
    const gop *p = cc->p;
    const int64_t khw = p->kh * p->kw;
    const int64_t oh0 = n0 / p->OW, ow0 = n0 % p->OW;
    int64_t c = k0 / khw, ij = k0 % khw;
    for (int64_t k = 0; k < kc; k++) {
        int64_t i = ij / p->kw, j = ij % p->kw;
        const float *xc = cc->x + c * p->in_sp;
        float *d = dst + k * NR;
        int64_t oh = oh0, ow = ow0, col = 0;
        while (col < nr) {
            int64_t seg = p->OW - ow;
            if (seg > nr - col) seg = nr - col;
            int64_t ih = oh * p->sh - p->ph + i * p->dh;
            float *o = d + col;
            if (ih < 0 || ih >= p->IH) {
                memset(o, 0, (size_t)seg * sizeof(float));
            } else {
                const float *xr = xc + ih * p->IW;
                int64_t iw0 = ow * p->sw - p->pw + j * p->dw;
                if (p->sw == 1) {
                    /* valid t: 0 <= iw0 + t < IW */
                    int64_t lo = iw0 < 0 ? -iw0 : 0, hi = p->IW - iw0;
                    if (hi > seg) hi = seg;
                    if (lo > seg) lo = seg;
                    if (hi < lo) hi = lo;
                    for (int64_t t = 0; t < lo; t++) o[t] = 0.0f;
                    if (hi > lo) memcpy(o + lo, xr + iw0 + lo, (size_t)(hi - lo) * sizeof(float));
                    for (int64_t t = hi; t < seg; t++) o[t] = 0.0f;
                } else {
                    /* valid t: 0 <= iw0 + t * sw < IW, i.e. [lo, hi); the
                     * gather between needs no bounds checks */
                    const int64_t sw = p->sw;
                    int64_t lo = iw0 < 0 ? (-iw0 + sw - 1) / sw : 0;
                    int64_t hi = p->IW - iw0 <= 0 ? 0 : (p->IW - iw0 + sw - 1) / sw;
                    if (hi > seg) hi = seg;
                    if (lo > hi) lo = hi;
                    for (int64_t t = 0; t < lo; t++) o[t] = 0.0f;
                    for (int64_t t = lo; t < hi; t++) o[t] = xr[iw0 + t * sw];
                    for (int64_t t = hi; t < seg; t++) o[t] = 0.0f;
                }
            }
            col += seg;
            ow = 0;
            oh++;
        }
        for (int64_t t = nr; t < NR; t++) d[t] = 0.0f;
        if (++ij == khw) {
            ij = 0;
            c++;
        }
    }
}

/* Columns the GEMM computes for `rows` output rows cut into bands. */
static int64_t wide_cols(const gop *p, int64_t rows) {
    int64_t cols = 0, NR = p->k->nr;
    for (int64_t r = 0; r < rows; r += p->band) {
        int64_t b = rows - r < p->band ? rows - r : p->band;
        cols += (b * p->QW + NR - 1) / NR * NR;
    }
    return cols;
}

/* The thread grid for a wide conv on nt threads: the (rows x channels) split
 * whose busiest thread has the least estimated work (tile-padded MACs, its
 * B-panel packing, band copies and compaction). */
static void wide_split(gop *p, int nt) {
    p->wnt = 1;
    p->wtm = 1;
    /* below par_min_macs a wide conv runs on one thread */
    if (nt <= 1 || (double)p->Mg * (double)p->K * (double)p->out_sp < (double)p->par_min_macs)
        return;
    const int64_t MR = p->px ? p->k->px_m : p->k->mr, pm = (p->Mg + MR - 1) / MR;
    double best = 0;
    for (int tm = 1; tm <= nt; tm++) {
        if (nt % tm) continue;
        int tn = nt / tm;
        if (tn > p->OH || tm > pm) continue;
        int64_t rows = (p->OH + tn - 1) / tn, cols = p->px ? rows * p->OW : wide_cols(p, rows);
        int64_t mrows = (pm + tm - 1) / tm * MR;
        int64_t nbands = (rows + p->band - 1) / p->band;
        double copy = (double)p->Cg * (double)(p->sh * p->sw) * (double)(rows + nbands * p->kh) *
                      (double)p->QW;
        double cost = (double)cols * (double)p->K * (double)(mrows + 4) + 4.0 * copy +
                      2.0 * (double)mrows * (double)rows * (double)p->OW;
        if (p->wnt == 1 || cost < best) {
            best = cost;
            p->wnt = nt;
            p->wtm = tm;
        }
    }
}

static void conv_args(const gop *p, sqz_gemm_args *a, int num_threads) {
    memset(a, 0, sizeof(*a));
    a->kernel = p->k;
    a->M = p->Mg;
    a->N = p->wide ? p->band * p->QW : p->out_sp; /* wide: the largest band */
    a->K = p->K;
    a->a.packed = p->wpk;
    a->ldc = a->N;
    a->par_min_macs = p->par_min_macs;
    if (p->direct) {
        a->b.rs = p->in_sp;
        a->b.cs = 1;
        a->b.off = p->off; /* NULL: packed panels */
    } else if (p->wide) {
        /* rows of the band's padded copy, results stored compact into Y
         * (column map) or wide into the band buffer */
        a->b.off = p->off;
        if (p->k->colmap) {
            a->wide_qw = p->QW;
            a->wide_ow = p->OW;
            a->ldc = p->out_sp;
        }
    } else {
        a->b.pack_b = conv_pack_b;
    }
    a->act = p->act.kind;
    a->alpha = p->act.alpha;
    a->beta = p->act.beta;
    a->num_threads = num_threads;
    /* the fused epilogue on the driver's tiles, except for a wide conv
     * stored through the band buffer (applied after its compaction) */
    if (p->has_fp && !(p->wide && !p->k->colmap)) a->post = &p->fp;
}

/* packed px weights above this many bytes are taken to be cold each run */
#define PX_COLD_W (1 << 20)
/* ... and are prefetched ahead by the px tiles above this many (a model's
 * other layers evict them from L2 between two runs of a layer: MNASNet 1.0's
 * 885 KB 1x1 convs on 7x7 planes, 1 thread, per node in the model, same run:
 * 0.19-0.21 -> 0.15-0.16 ms, now at ONNX Runtime's 0.145; fetching warm
 * weights ahead costs a prefetch a cache line) */
#define PX_PREFETCH_W (256 << 10)

/* SQZ_CONV_PX: 0 never, 1 always (where the kernel has one), else by cost */
static int px_env(void) {
    const char *e = getenv("SQZ_CONV_PX");
    if (!e || !*e) return -1;
    return e[0] == '0' ? 0 : e[0] == '1' ? 1 : -1;
}

/* The pixel-major tile for a wide or direct 1x1 conv when its FMA slots
 * (output pixels x channels rounded up to 16-lane vectors, plus its store's
 * transposes, ~16 k steps a tile) undercut the column panels' (columns
 * rounded up to NR x channels rounded up to MR) by 5% (20% for cold
 * weights) */
static int px_choose(const gop *p) {
    const sqz_gemm_kernel *k = p->k;
    if (!k->px || p->act.kind == SQZ_ACT_SIGMOID || p->act.kind == SQZ_ACT_TANH) return 0;
    if ((double)p->out_sp * (double)k->px_m >= 2147483648.0) return 0;
    int e = px_env();
    if (e >= 0) return e;
    /* a weight panel streams from L2 for every tile (no k blocking): above
     * ~128 KB per panel the column panels win (ResNet-18 K = 1152..4608:
     * 512->512 @7x7 2.0 -> 2.8 CPU ms); few channels leave vectors empty
     * (direct 1x1 with M = 16..24 at 56x56 / 112x112: 1.2-1.3x slower).
     * Direct 1x1 convs up to 192 KB a panel (K <= 1536) stay px: MNASNet's
     * 1x1 1152 -> 192 / 320 @7 (bench_gemm --cold, 1 thread) 0.167 -> 0.135
     * / 0.263 -> 0.214 ms, in-model 0.23-0.25 -> 0.21 ms CPU. (Wide convs up
     * to 320 KB were 15-24% faster in bench_gemm --cold too, ResNet-18 3x3
     * 256->256 @14 1.43 -> 1.22 ms, but equal in-model: not taken.) */
    if (p->Mg < (p->wide ? 16 : 32) ||
        (double)p->K * (double)k->px_m * sizeof(float) > (p->wide ? 128.0 : 192.0) * 1024)
        return 0;
    double cols =
        p->wide ? (double)wide_cols(p, p->OH) : (double)((p->out_sp + k->nr - 1) / k->nr * k->nr);
    double wide = cols * (double)((p->Mg + k->mr - 1) / k->mr * k->mr);
    double px = (double)p->out_sp * (double)((p->Mg + 15) / 16 * 16) * (1.0 + 16.0 / (double)p->K);
    if ((p->wide && p->Mg <= 64) || (p->direct && p->Mg <= 4 * k->mr && k->ukernel_ind)) {
        /* wide convs whose column panels read B in place (<= 8 row tiles:
         * cache-line-split loads) and store few rows per tile: measured
         * (px forced, interleaved runs) stems 3->32 / 3->64 s2 @224 and
         * ResNet-18's 7x7 s2 0.84-0.85x, the small ResNet's 3x3 convs
         * 0.7-0.9x at nearly equal FMA slots. Tile overheads of ~16 (column
         * panels) and ~8 (px) k steps, 15% for the in-place loads. The
         * same for direct 1x1 convs read in place (M <= 4 row tiles; px
         * takes M = 32: SqueezeNet 1.1's 256->32 / 128->32 @27x27 and
         * MobileNetV2's 192->32 / 144->32 @28x28, 1 thread, interleaved:
         * 0.78 / 0.87 / 0.85 / 0.89x alone, in-model 86 -> 63 and 36 -> 31
         * us CPU) */
        wide = cols * (double)((p->Mg + k->mr - 1) / k->mr * k->mr) * (1.0 + 16.0 / (double)p->K) *
               1.15;
        px = (double)p->out_sp * (double)((p->Mg + 15) / 16 * 16) * (1.0 + 8.0 / (double)p->K);
    }
    /* weights beyond L2 (streamed from L3 each run): px reads 4 floats of
     * them per 3.5 FMAs where the column panels read 1 per 2: only where
     * the panels waste a fifth (squeezenet1_1 conv10 512->1000 @13x13:
     * 0.91 -> 0.99 ms CPU with px) */
    double wbytes = (double)p->group * (double)((p->Mg + k->px_m - 1) / k->px_m * k->px_m) *
                    (double)p->K * sizeof(float);
    if (wbytes > PX_COLD_W) return px * 1.2 < wide;
    /* direct 1x1 convs: the estimate above overrates px's store
     * transposes against the column panels' packing and tile ends (px
     * forced vs its estimate ratio px / wide, 1 thread, convab: 80->480 /
     * 96->576 / 64->384 / 112->672 @14x14 (1.02-1.09) 0.94-0.95x,
     * 64->256 @13x13 (1.10) 0.94x, 40->240 @28x28 (1.37) 1.01-1.05x,
     * 24->144 / 24->72 @56x56 (1.5-1.7) 1.12-1.23x): px up to 1.12.
     * MNASNet's five 80->480 / 96->576 @14 in-model 79-113 -> 73-103 us
     * CPU (4 interleaved rounds) */
    if (p->direct) return px < 1.12 * wide;
    return px * 1.05 < wide;
}

/* Threads of a direct px conv: split the channel panels or the pixel chunks,
 * whichever gives the busiest thread the least estimated work. */
static void px_direct_split(gop *p, int nt) {
    const int64_t pm = (p->Mg + p->k->px_m - 1) / p->k->px_m;
    const int64_t nc = (p->out_sp + p->k->px_p - 1) / p->k->px_p;
    p->pnt = 1;
    p->pby_m = 1;
    if (nt <= 1 || (double)p->Mg * (double)p->K * (double)p->out_sp < (double)p->par_min_macs)
        return;
    /* busiest thread's tiles (~14 (K + 16) cycles each) plus the floats it
     * reads that the other threads read too (the whole input for a channel
     * split, all the weights for a pixel split), ~2 cycles each */
    int64_t tm = (pm + nt - 1) / nt * nc, tn = (nc + nt - 1) / nt * pm;
    double tile = 14.0 * (double)(p->K + 16), in = (double)p->K * (double)p->out_sp,
           w = (double)p->K * (double)p->Mg;
    double cm = (double)tm * tile + 2.0 * (in + w / nt),
           cn = (double)tn * tile + 2.0 * (w + in / nt);
    p->pby_m = cm <= cn;
    int64_t parts = p->pby_m ? pm : nc;
    p->pnt = (int)(parts < nt ? parts : nt);
}

static void conv_vec_args(const gop *p, sqz_gemm_args *a, int num_threads) {
    memset(a, 0, sizeof(*a));
    a->kernel = p->k;
    a->M = 1;
    a->N = p->M;
    a->K = p->K;
    a->a.rs = p->K;
    a->a.cs = 1;
    a->b.packed = p->wpk;
    a->ldc = p->M;
    a->par_min_macs = p->par_min_macs;
    a->num_threads = num_threads; /* bias and activation: after the product */
}

static int gv_setup(sqz_op_ctx *ctx, gop *p, const float *B, const float *C);
static void gv_run(const sqz_op_ctx *ctx, const float *x);

static int conv_vec_prepare(sqz_op_ctx *ctx, gop *p) {
    p->vec = 1;
    p->macs = (uint64_t)(p->M * p->K);
    /* the kernel's gemv when it has one: y[1, M] = x[1, K] . W^T, the conv
     * bias as its column bias */
    p->gM = 1;
    p->gN = p->M;
    p->gK = p->K;
    p->brs = 1;
    p->bcs = p->K;
    p->acs = 1;
    p->b_const = 1;
    p->abatch = p->bbatch = p->batch = 1;
    int rc = gv_setup(ctx, p, ctx->in_data[1], NULL);
    if (rc < 0) return -1;
    if (rc == 0 && p->has_bias) {
        p->gv_bias = alloc_floats((size_t)p->M);
        if (!p->gv_bias) {
            free(p->wpk);
            return sqz_op_fail(ctx, "Conv: out of memory");
        }
        memcpy(p->gv_bias, ctx->in_data[2], (size_t)p->M * sizeof(float));
    }
    if (rc != 0) { /* no gemv: the blocked driver with W packed as B */
        p->wpk_elems = sqz_gemm_packed_b_floats(p->k, p->K, p->M);
        p->wpk = alloc_floats(p->wpk_elems);
        if (!p->wpk) return sqz_op_fail(ctx, "Conv: out of memory (packed weights)");
        /* B[k][n] = W[n][k] */
        sqz_gemm_pack_b(p->k, p->K, p->M, ctx->in_data[1], 1, p->K, p->wpk);
    }
    gop *pp = malloc(sizeof(*pp));
    if (!pp) {
        free(p->wpk);
        free(p->gv_bias);
        return sqz_op_fail(ctx, "Conv: out of memory");
    }
    *pp = *p;
    ctx->params = pp;
    ctx->scratch_bytes = 0;
    if (!pp->gv) {
        sqz_gemm_args a;
        conv_vec_args(pp, &a, ctx->num_threads);
        ctx->scratch_bytes = sqz_gemm_scratch_bytes(&a);
    }
    return 0;
}

static void conv_vec_run(const sqz_op_ctx *ctx) {
    const gop *p = ctx->params;
    if (p->gv) {
        gv_run(ctx, ctx->in_data[0]);
        return;
    }
    const float *B = p->has_bias ? ctx->in_data[2] : NULL;
    float *Y = ctx->out_data[0];
    sqz_gemm_args a;
    conv_vec_args(p, &a, ctx->num_threads);
    a.a.data = ctx->in_data[0];
    a.c = Y;
    sqz_gemm(&a, ctx->scratch);
    if (B)
        for (int64_t m = 0; m < p->M; m++) Y[m] += B[m];
    ref_act_apply(&p->act, Y, (size_t)p->M);
    if (p->has_fp) sqz_conv_post_apply(&p->fp, Y, (size_t)p->M, 1, (size_t)p->M);
}

/* The small-K 1x1 kernel (conv1x1.h) for direct convs with K <= 16 on
 * planes of at least a vector, where the CPU has one: 1 thread, vs the GEMM
 * (convab, interleaved, load ~13): 16->48 @112x112 0.80x, 16->96 @112x112
 * 0.85x, 16->64 @55x55 0.76x, 16->48 / 16->96 @56x56 0.74 / 0.76x.
 * SQZ_CONV_C1=0 turns it off. */
#define C1_STREAM_BYTES (1 << 20)
/* SQZ_C1M_K=N: the small-M path up to K = N (0: off; A/B) */
static int64_t c1m_max_k(void) {
    const char *e = getenv("SQZ_C1M_K");
    return e && *e ? atoll(e) : SQZ_C1X1_MAXM_K;
}
static int c1_choose(const sqz_op_ctx *ctx, const gop *p) {
    const char *e = getenv("SQZ_CONV_C1"); /* 0: off (A/B) */
    if (e && e[0] == '0') return 0;
    if (p->out_sp < 16 || !sqz_c1x1_best()) return 0;
    if (p->K > SQZ_C1X1_MAX_K && (p->Mg > SQZ_C1X1_MAX_M || p->K > c1m_max_k())) return 0;
    if (p->has_bias && !ctx->in_data[2]) return 0; /* packed with the weights */
    switch (p->act.kind) {
    case SQZ_ACT_NONE:
    case SQZ_ACT_RELU:
    case SQZ_ACT_CLIP:
    case SQZ_ACT_LEAKY_RELU:
    case SQZ_ACT_HARD_SWISH:
        return 1;
    default:
        return 0;
    }
}

static int conv_c1_prepare(sqz_op_ctx *ctx, gop *p) {
    p->c1 = sqz_c1x1_best();
    p->macs = (uint64_t)(p->N * p->M * p->out_sp * p->K);
    p->wpk_elems = sqz_c1x1_floats(p->K, p->Mg);
    gop *pp = malloc(sizeof(*pp));
    if (!pp) return sqz_op_fail(ctx, "Conv: out of memory");
    *pp = *p;
    pp->wpk = alloc_floats64(p->wpk_elems * (size_t)p->group);
    if (!pp->wpk) {
        free(pp);
        return sqz_op_fail(ctx, "Conv: out of memory (packed weights)");
    }
    const float *W = ctx->in_data[1];
    for (int64_t gi = 0; gi < p->group; gi++)
        sqz_c1x1_pack(p->K, p->Mg, W + gi * p->Mg * p->K,
                      p->has_bias ? ctx->in_data[2] + gi * p->Mg : NULL,
                      pp->wpk + gi * p->wpk_elems);
    /* an output beyond half of L2: the kernel's store order for that
     * (16 -> 48 / 96 @112x112, 1 thread: 0.87-0.90x the other order, which
     * is 1.11-1.17x faster on outputs in L2) */
    pp->c1stream = (double)p->M * (double)p->out_sp * sizeof(float) > (double)C1_STREAM_BYTES;
    /* threads: equal pixel ranges (whole vectors) above par_min_macs */
    int64_t nv = (p->out_sp + 15) / 16;
    pp->c1nt = 1;
    if (ctx->num_threads > 1 &&
        (double)p->M * (double)p->K * (double)p->out_sp >= (double)p->par_min_macs)
        pp->c1nt = (int)(nv < ctx->num_threads ? nv : ctx->num_threads);
    ctx->params = pp;
    ctx->scratch_bytes = 0;
    return 0;
}

/* Part t of a small-K conv: its pixel range of every image and group. */
static void c1_part(void *arg, int t) {
    const sqz_op_ctx *ctx = arg;
    const gop *p = ctx->params;
    const int64_t nv = (p->out_sp + 15) / 16;
    int64_t c0 = nv * t / p->c1nt * 16, c1 = nv * (t + 1) / p->c1nt * 16;
    if (c1 > p->out_sp) c1 = p->out_sp;
    if (c0 >= c1) return;
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    sqz_c1x1 a;
    a.K = p->K;
    a.M = p->Mg;
    a.in_ld = p->in_sp;
    a.out_ld = p->out_sp;
    a.act = p->act.kind;
    a.alpha = p->act.alpha;
    a.beta = p->act.beta;
    a.stream = p->c1stream;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t g = 0; g < p->group; g++) {
            a.w = p->wpk + (size_t)g * p->wpk_elems;
            float *y = Y + (n * p->M + g * p->Mg) * p->out_sp;
            p->c1(&a, X + (n * p->C + g * p->Cg) * p->in_sp, y, c0, c1);
            if (p->has_fp)
                sqz_conv_post_apply(&p->fp, y + c0, (size_t)p->out_sp, (size_t)p->Mg,
                                    (size_t)(c1 - c0));
        }
}

int sqz_gemm_conv_prepare(sqz_op_ctx *ctx, const sqz_gemm_kernel *k) {
    int rc = ref_validate(ctx, &sqz_ref_conv);
    if (rc) return rc;
    const sqz_shape *x = &ctx->in_shape[0], *w = &ctx->in_shape[1];
    if (x->ndim != 4 || !ctx->in_data[1]) return 1;
    gop p;
    memset(&p, 0, sizeof(p));
    p.op = SQZ_OP_CONV;
    p.k = k;
    p.par_min_macs = sqz_gemm_conv_par_min_macs();
    p.N = x->dims[0];
    p.C = x->dims[1];
    p.M = w->dims[0];
    p.group = sqz_attr_int(ctx->node, "group", 1);
    p.Cg = p.C / p.group;
    p.Mg = p.M / p.group;
    if (p.group > 1 && p.group == p.C && p.group == p.M) return 1; /* depthwise */
    ref_geom g;
    if (ref_geom_prepare(ctx, &g, 2, x->dims + 2, w->dims + 2, 0)) return -1;
    if (ref_act_prepare(ctx, &p.act)) return -1;
    p.IH = g.in[1];
    p.IW = g.in[2];
    p.OH = g.out[1];
    p.OW = g.out[2];
    p.kh = g.k[1];
    p.kw = g.k[2];
    p.sh = g.s[1];
    p.sw = g.s[2];
    p.dh = g.d[1];
    p.dw = g.d[2];
    p.ph = g.pb[1];
    p.pw = g.pb[2];
    p.K = p.Cg * p.kh * p.kw;
    p.in_sp = p.IH * p.IW;
    p.out_sp = p.OH * p.OW;
    if (p.N == 0 || p.M == 0 || p.out_sp == 0 || p.K == 0) return 1;
    p.direct = p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && g.pb[1] == 0 && g.pb[2] == 0 &&
               g.pe[1] == 0 && g.pe[2] == 0;
    p.has_bias = ref_has_input(ctx, 2);
    if (p.direct && p.out_sp == 1 && p.N == 1 && p.group == 1) return conv_vec_prepare(ctx, &p);
    if (p.direct && c1_choose(ctx, &p)) return conv_c1_prepare(ctx, &p);
    /* wide unless the dropped columns ((kw-1)/sw of every QW) cost over ~1/4
     * of the work (cheaper panels win even at 7x7 planes: 9 wide columns per
     * 7), or ~1/2 with few output channels (packing then dominates) */
    if (!p.direct && p.dh == 1 && p.dw == 1) {
        int64_t drop = (p.kw - 1) / p.sw;
        p.wide = 3 * drop <= p.OW || (p.Mg <= 32 && drop <= p.OW);
    }
    if (p.wide) {
        p.QW = p.OW + (p.kw - 1) / p.sw;
        /* band: a wide output of at most ~256 KB (L2-resident for the
         * compaction) and 1/8 of the output (bounded arena growth at the stem,
         * where the arena peaks), but at least ~256 columns per GEMM */
        int64_t budget = p.Mg * p.out_sp / 8; /* floats; and at most 1/8 of Y */
        if (budget > 65536) budget = 65536;
        p.band = budget / (p.Mg * p.QW);
        if (p.band < (256 + p.QW - 1) / p.QW) p.band = (256 + p.QW - 1) / p.QW;
        if (p.band > p.OH) p.band = p.OH;
        p.QH = p.band + (p.kh - 1) / p.sh;
        /* + (kw-1)/sw: the last row's garbage columns read past the last plane */
        p.pad_floats =
            (size_t)((p.Cg * p.sh * p.sw * p.QH * p.QW + (p.kw - 1) / p.sw + 15) / 16 * 16);
        p.wout_floats = k->colmap ? 0 : (size_t)((p.Mg * p.band * p.QW + 15) / 16 * 16);
    }
    if ((p.wide || p.direct) && px_choose(&p)) {
        p.px = 1;
        p.wout_floats = 0;
    }
    p.macs = (uint64_t)(p.N * p.M * p.out_sp * p.K);
    p.wpk_elems =
        p.px ? sqz_gemm_px_floats(k->px_m, p.Mg, p.K) : sqz_gemm_packed_a_floats(k, p.Mg, p.K);
    gop *pp = malloc(sizeof(*pp));
    if (!pp) return sqz_op_fail(ctx, "Conv: out of memory");
    *pp = p;
    pp->wpk = alloc_floats64(p.wpk_elems * (size_t)p.group);
    if (!pp->wpk) {
        free(pp);
        return sqz_op_fail(ctx, "Conv: out of memory (packed weights)");
    }
    const float *W = ctx->in_data[1];
    for (int64_t gi = 0; gi < p.group; gi++) {
        if (p.px)
            sqz_gemm_pack_px(k->px_m, p.Mg, p.K, W + gi * p.Mg * p.K, p.K,
                             pp->wpk + gi * p.wpk_elems);
        else
            sqz_gemm_pack_a(k, p.Mg, p.K, W + gi * p.Mg * p.K, p.K, 1, pp->wpk + gi * p.wpk_elems);
    }
    pp->off = NULL;
    /* direct 1x1 with few output channels: the GEMM reads the input rows in
     * place (row k at k * in_sp) instead of packing panels no more than a
     * few tiles reuse */
    int direct_ind = p.direct && (p.px || (p.Mg <= 4 * k->mr && k->ukernel_ind));
    if (direct_ind) {
        pp->off = malloc((size_t)p.K * sizeof *pp->off);
        if (!pp->off) {
            sqz_gemm_op_release(pp);
            return sqz_op_fail(ctx, "Conv: out of memory");
        }
        for (int64_t kk = 0; kk < p.K; kk++) pp->off[kk] = kk * p.in_sp;
    }
    if (p.wide) {
        pp->off = malloc((size_t)p.K * sizeof *pp->off);
        if (!pp->off) {
            sqz_gemm_op_release(pp);
            return sqz_op_fail(ctx, "Conv: out of memory");
        }
        for (int64_t kk = 0; kk < p.K; kk++) {
            int64_t c = kk / (p.kh * p.kw), i = kk / p.kw % p.kh, j = kk % p.kw;
            pp->off[kk] = ((c * p.sh + i % p.sh) * p.sw + j % p.sw) * p.QH * p.QW +
                          (i / p.sh) * p.QW + j / p.sw;
        }
    }
    sqz_gemm_args a;
    ctx->params = pp;
    if (pp->wide) {
        wide_split(pp, ctx->num_threads);
        conv_args(pp, &a, 1);
        pp->gemm_scratch = pp->px ? 0 : (sqz_gemm_scratch_bytes(&a) + 63) / 64 * 64;
        pp->wthread_bytes = pp->gemm_scratch + (pp->pad_floats + pp->wout_floats) * sizeof(float);
        /* threads' parts 128-byte aligned with 128 bytes between them: a
         * core's adjacent-line prefetch past the end of its part otherwise
         * fetches the next part's first line, which the other core then
         * writes (small ResNet's 3x3 s2 16->32 @14x14, 2 threads: parts of
         * 901 lines; its helper's half 13.8-14.1 -> 12.9-13.1 us) */
        if (pp->wnt > 1) pp->wthread_bytes = (pp->wthread_bytes + 127) / 128 * 128 + 128;
        ctx->scratch_bytes = pp->wthread_bytes * (size_t)pp->wnt;
        return 0;
    }
    if (pp->px) { /* direct 1x1 on px tiles: no scratch */
        px_direct_split(pp, ctx->num_threads);
        ctx->scratch_bytes = 0;
        return 0;
    }
    conv_args(pp, &a, ctx->num_threads);
    pp->gemm_scratch = (sqz_gemm_scratch_bytes(&a) + 63) / 64 * 64;
    ctx->scratch_bytes = pp->gemm_scratch;
    return 0;
}

/* The zero-padded, phase-split copy of Cg input channels for the band of
 * `rows` output rows from oh0 (see gop.wide): phase a's rows oh0 .. oh0 +
 * qh, qh = rows + (kh-1-a)/sh <= QH, the rows its taps read (stride 2, 3
 * taps: phase 1 one row fewer); planes stay QH x QW apart. A thread's last band is often shorter
 * than QH - (kh-1)/sh: copying all QH rows read rows of the next thread's half (written on the
 * other core) and copied rows no tap reads (small ResNet 1x1 s2 @14x14, 2 threads: each half copied
 * all 14 rows). Only phases some tap reads are written (a < kh, b < kw). */
static void phase_input(const gop *p, const float *x, float *dst, int64_t oh0, int64_t rows) {
    const int64_t QH = p->QH, QW = p->QW, sw = p->sw, tail = (p->kw - 1) / sw;
    const int64_t na = p->sh < p->kh ? p->sh : p->kh, nb = sw < p->kw ? sw : p->kw;
    sqz_gemm_band_fn band = p->k->band ? p->k->band : sqz_gemm_band_ref;
    for (int64_t c = 0; c < p->Cg; c++) {
        const float *xc = x + c * p->in_sp;
        for (int64_t a = 0; a < na; a++) {
            /* taps i = a (mod sh) read phase rows [i / sh, i / sh + rows) */
            const int64_t qh = rows + (p->kh - 1 - a) / p->sh;
            float *d = dst + (c * p->sh + a) * sw * QH * QW;
            /* the nb column phases in one call (planes QH * QW apart) */
            band(xc, p->IH, p->IW, oh0 * p->sh + a - p->ph, p->sh, p->pw, sw, qh, QW, d, nb,
                 QH * QW);
            /* the last row's dropped columns read on past row qh - 1 */
            if (qh < QH)
                for (int64_t b = 0; b < nb; b++)
                    for (int64_t t = 0; t < tail; t++) d[b * QH * QW + qh * QW + t] = 0.0f;
        }
    }
    for (int64_t t = 0; t < tail; t++) dst[p->Cg * p->sh * sw * QH * QW + t] = 0.0f;
}

/* One px_m-channel weight panel of a wide px conv over a band of `rows`
 * output rows read from the band copy (xoff: the conv's taps in it): two
 * whole rows per tile when they fit, else row pieces of equal size. */
static void px_band_panel(const sqz_gemm_kernel *k, size_t K, const float *wp, const float *pad,
                          const int64_t *xoff, int64_t QW, int64_t OW, int64_t rows, float *ym,
                          size_t ldc, size_t mm, sqz_gemm_epi *epi) {
    const int two = 2 * OW <= k->px_p;
    const int64_t pieces = two ? 1 : (OW + k->px_p - 1) / k->px_p;
    for (int64_t r = 0; r < rows; r += two ? 2 : 1) {
        if (r > 0) epi->prefetch_a = 0;
        if (two) {
            size_t nr = rows - r < 2 ? (size_t)(rows - r) : 2;
            k->px(K, wp, pad + r * QW, xoff, QW, (size_t)OW, nr, ym + r * OW, ldc, mm, epi);
            continue;
        }
        for (int64_t i = 0; i < pieces; i++) {
            int64_t w0 = OW * i / pieces, w1 = OW * (i + 1) / pieces;
            k->px(K, wp, pad + r * QW + w0, xoff, QW, (size_t)(w1 - w0), 1, ym + r * OW + w0, ldc,
                  mm, epi);
        }
    }
}

/* The channel panels [m0, m1) of a px conv q (weights wg, bias B, output y
 * of out_sp pixels a channel) over the band of `rows` output rows from oh0
 * in the band copy pad, read at xoff; q's fused epilogue on each panel's
 * band (rows * OW floats a channel, in L2: long rows for the SiLU,
 * sequential residual reads). */
static void px_band(const gop *q, const float *wg, const float *B, float *y, const float *pad,
                    const int64_t *xoff, int64_t QW, int64_t oh0, int64_t rows, int64_t m0,
                    int64_t m1, const sqz_conv_post *fp) {
    const int64_t PM = q->k->px_m;
    sqz_gemm_epi epi;
    memset(&epi, 0, sizeof(epi));
    epi.act = q->act.kind;
    epi.alpha = q->act.alpha;
    epi.beta = q->act.beta;
    const int cold = q->wpk_elems * (size_t)q->group * sizeof(float) > PX_PREFETCH_W;
    for (; m0 < m1; m0 += PM) {
        size_t mm = (size_t)(m1 - m0 < PM ? m1 - m0 : PM);
        float *ym = y + m0 * q->out_sp + oh0 * q->OW;
        epi.bias = B ? B + m0 : NULL;
        epi.prefetch_a = cold;
        px_band_panel(q->k, (size_t)q->K, wg + (size_t)(m0 / PM) * (size_t)(PM * q->K), pad, xoff,
                      QW, q->OW, rows, ym, (size_t)q->out_sp, mm, &epi);
        if (fp) sqz_conv_post_apply(fp, ym, (size_t)q->out_sp, mm, (size_t)(rows * q->OW));
    }
}

/* The px part of a wide-grid thread: output rows [r0, r1) x channels
 * [mb, me) of conv p (input X, output Y, epilogue fp or NULL), band by band;
 * per band each px_m-channel weight panel is used by every tile of the band
 * before the next (it stays in L1 / L2). A fused down conv dn runs its
 * channels [db, de) on each band copy too, into DY. */
static void px_rows(const gop *p, const float *X, const float *B, float *Y, const sqz_conv_post *fp,
                    float *pad, int64_t r0, int64_t r1, int64_t mb, int64_t me,
                    const sqz_op_ctx *dn, float *DY, int64_t db, int64_t de) {
    const gop *d = dn ? dn->params : NULL;
    const float *BD = d && d->has_bias ? dn->in_data[2] : NULL;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t g = 0; g < p->group; g++) {
            const float *xg = X + (n * p->C + g * p->Cg) * p->in_sp;
            float *y = Y + (n * p->M + g * p->Mg) * p->out_sp;
            for (int64_t oh0 = r0; oh0 < r1; oh0 += p->band) {
                int64_t rows = r1 - oh0 < p->band ? r1 - oh0 : p->band;
                phase_input(p, xg, pad, oh0, rows);
                px_band(p, p->wpk + (size_t)g * p->wpk_elems, B ? B + g * p->Mg : NULL, y, pad,
                        p->off, p->QW, oh0, rows, mb, me, fp);
                /* the down conv (group 1): its input pixels are one phase
                 * plane of this copy (doff) */
                if (d)
                    px_band(d, d->wpk, BD, DY + n * d->M * d->out_sp, pad, p->doff, p->QW, oh0,
                            rows, db, de, NULL);
            }
        }
}

/* Thread t of the wide grid: its output rows x its output channels, band by
 * band, in its own scratch part. */
static void conv_wide_thread(const sqz_op_ctx *ctx, int t) {
    const gop *p = ctx->params;
    const float *X = ctx->in_data[0];
    const float *B = p->has_bias ? ctx->in_data[2] : NULL;
    float *Y = ctx->out_data[0];
    char *base = (char *)ctx->scratch + p->wthread_bytes * (size_t)t;
    float *pad = (float *)(base + p->gemm_scratch), *wout = pad + p->pad_floats;
    const int tm = p->wtm, tn = p->wnt / p->wtm, ti = t / tm, tj = t % tm;
    const int64_t r0 = p->OH * ti / tn, r1 = p->OH * (ti + 1) / tn;
    const int64_t MR = p->px ? p->k->px_m : p->k->mr, pm = (p->Mg + MR - 1) / MR;
    const int64_t mb = pm * tj / tm * MR;
    int64_t me = pm * (tj + 1) / tm * MR;
    if (me > p->Mg) me = p->Mg;
    if (r0 >= r1 || mb >= me) return;
    if (p->px) {
        /* a fused down conv's panels split as this conv's */
        int64_t db = 0, de = 0;
        if (p->dn) {
            const gop *d = p->dn->params;
            const int64_t dpm = (d->M + MR - 1) / MR;
            db = dpm * tj / tm * MR;
            de = dpm * (tj + 1) / tm * MR;
            if (de > d->M) de = d->M;
        }
        px_rows(p, X, B, Y, p->has_fp ? &p->fp : NULL, pad, r0, r1, mb, me, p->dn,
                p->dn ? p->dn->out_data[0] : NULL, db, de);
        return;
    }
    sqz_gemm_args a;
    conv_args(p, &a, 1);
    a.b.data = pad;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t g = 0; g < p->group; g++) {
            const float *xg = X + (n * p->C + g * p->Cg) * p->in_sp;
            a.a.packed = p->wpk + (size_t)g * p->wpk_elems;
            a.bias = B ? B + g * p->Mg : NULL;
            float *y = Y + (n * p->M + g * p->Mg) * p->out_sp;
            for (int64_t oh0 = r0; oh0 < r1; oh0 += p->band) {
                int64_t rows = r1 - oh0 < p->band ? r1 - oh0 : p->band;
                a.N = rows * p->QW;
                phase_input(p, xg, pad, oh0, rows);
                if (p->wout_floats == 0) {
                    a.c = y + oh0 * p->OW;
                    sqz_gemm_range(&a, mb, me, 0, a.N, base);
                    continue;
                }
                a.c = wout;
                a.ldc = a.N;
                sqz_gemm_range(&a, mb, me, 0, a.N, base);
                for (int64_t m = mb; m < me; m++)
                    for (int64_t r = 0; r < rows; r++) {
                        float *yr = y + m * p->out_sp + (oh0 + r) * p->OW;
                        memcpy(yr, wout + (m * rows + r) * p->QW, (size_t)p->OW * sizeof(float));
                        if (p->has_fp) sqz_conv_post_apply(&p->fp, yr, 0, 1, (size_t)p->OW);
                    }
            }
        }
}

static void conv_wide_part(void *arg, int t) {
    conv_wide_thread(arg, t);
}

static void conv_run_wide(const sqz_op_ctx *ctx) {
    const gop *p = ctx->params;
    if (p->wnt <= 1) {
        conv_wide_thread(ctx, 0);
        return;
    }
    sqz_par_for(p->wnt, p->wnt, conv_wide_part, (void *)ctx);
}

/* Part t of a direct px conv: its channel panels or pixel chunks (chunks of
 * at most px_p consecutive pixels, near-equal), every image and group. */
static void px_direct_part(void *arg, int t) {
    const sqz_op_ctx *ctx = arg;
    const gop *p = ctx->params;
    const sqz_gemm_kernel *k = p->k;
    const int64_t PM = k->px_m, PP = k->px_p;
    const int64_t pm = (p->Mg + PM - 1) / PM, nc = (p->out_sp + PP - 1) / PP;
    int64_t j0 = 0, j1 = pm, i0 = 0, i1 = nc;
    if (p->pby_m) {
        j0 = pm * t / p->pnt;
        j1 = pm * (t + 1) / p->pnt;
    } else {
        i0 = nc * t / p->pnt;
        i1 = nc * (t + 1) / p->pnt;
    }
    const float *X = ctx->in_data[0];
    const float *B = p->has_bias ? ctx->in_data[2] : NULL;
    float *Y = ctx->out_data[0];
    sqz_gemm_epi epi;
    memset(&epi, 0, sizeof(epi));
    epi.act = p->act.kind;
    epi.alpha = p->act.alpha;
    epi.beta = p->act.beta;
    /* weights above ~half of L2 come from L3 / memory on each run: the
     * first tile of a panel fetches it ahead (mobilenet_v2 320->1280 @7x7:
     * 0.34 -> 0.39 ms CPU without) */
    const int cold = p->wpk_elems * (size_t)p->group * sizeof(float) > PX_PREFETCH_W;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t g = 0; g < p->group; g++) {
            const float *xg = X + (n * p->C + g * p->Cg) * p->in_sp;
            const float *wg = p->wpk + (size_t)g * p->wpk_elems;
            float *y = Y + (n * p->M + g * p->Mg) * p->out_sp;
            for (int64_t j = j0; j < j1; j++) {
                int64_t m0 = j * PM;
                size_t mm = (size_t)(p->Mg - m0 < PM ? p->Mg - m0 : PM);
                epi.bias = B ? B + g * p->Mg + m0 : NULL;
                /* the tiles of panel j fetch panel j + 1 into L2 meanwhile, a
                 * share each (a model's weights come from L3 / DRAM on every
                 * run; MNASNet 1.0 / MobileNetV2 1x1 convs @7x7 and @14x14, 1
                 * thread, per node: 3-10% faster, see the commit) */
                const size_t pfl = (size_t)(PM * p->K) * sizeof(float) / 64;
                const size_t nti = (size_t)(i1 - i0);
                for (int64_t i = i0; i < i1; i++) {
                    epi.prefetch_a = cold && i == i0 && j == j0;
                    epi.pf_next = NULL;
                    if (j + 1 < j1) {
                        size_t t = (size_t)(i - i0), l0 = pfl * t / nti, l1 = pfl * (t + 1) / nti;
                        epi.pf_next = wg + (size_t)(j + 1) * (size_t)(PM * p->K) + l0 * 16;
                        epi.pf_lines = l1 - l0;
                    }
                    int64_t c0 = p->out_sp * i / nc, c1 = p->out_sp * (i + 1) / nc;
                    k->px((size_t)p->K, wg + (size_t)j * (size_t)(PM * p->K), xg + c0, p->off, 0,
                          (size_t)(c1 - c0), 1, y + m0 * p->out_sp + c0, (size_t)p->out_sp, mm,
                          &epi);
                }
                /* the epilogue on this panel's pixels (whole planes on one
                 * thread: one run of mm * out_sp floats for the SiLU) */
                if (p->has_fp) {
                    int64_t c0 = p->out_sp * i0 / nc, c1 = p->out_sp * i1 / nc;
                    sqz_conv_post_apply(&p->fp, y + m0 * p->out_sp + c0, (size_t)p->out_sp, mm,
                                        (size_t)(c1 - c0));
                }
            }
        }
}

static void chain_part(void *arg, int t);

void sqz_gemm_conv_run(const sqz_op_ctx *ctx) {
    const gop *p = ctx->params;
    if (p->vec) {
        conv_vec_run(ctx);
        return;
    }
    if (p->c1) {
        if (p->c1nt <= 1)
            c1_part((void *)ctx, 0);
        else
            sqz_par_for(p->c1nt, p->c1nt, c1_part, (void *)ctx);
        return;
    }
    if (p->chn) {
        sqz_par_for(p->cnt, p->cnt, chain_part, (void *)ctx);
        return;
    }
    if (p->wide) {
        conv_run_wide(ctx);
        return;
    }
    if (p->px) {
        if (p->pnt <= 1)
            px_direct_part((void *)ctx, 0);
        else
            sqz_par_for(p->pnt, p->pnt, px_direct_part, (void *)ctx);
        return;
    }
    const float *X = ctx->in_data[0];
    const float *B = p->has_bias ? ctx->in_data[2] : NULL;
    float *Y = ctx->out_data[0];
    sqz_gemm_args a;
    conv_args(p, &a, ctx->num_threads);
    conv_pack_ctx cc = {p, NULL};
    a.b.pack_ctx = &cc;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t g = 0; g < p->group; g++) {
            const float *xg = X + (n * p->C + g * p->Cg) * p->in_sp;
            cc.x = xg;
            a.b.data = xg;
            a.a.packed = p->wpk + (size_t)g * p->wpk_elems;
            a.c = Y + (n * p->M + g * p->Mg) * p->out_sp;
            a.bias = B ? B + g * p->Mg : NULL;
            sqz_gemm(&a, ctx->scratch);
        }
}

int sqz_gemm_conv_set_post(sqz_op_ctx *ctx, const sqz_conv_post *post) {
    gop *p = ctx->params;
    if (!p || p->op != SQZ_OP_CONV || !post) return 0;
    p->fp = *post;
    p->has_fp = 1;
    return 1;
}

int sqz_gemm_conv_fuse_down(sqz_op_ctx *ctx, const sqz_op_ctx *down) {
    gop *p = ctx->params;
    const gop *d = down ? down->params : NULL;
    if (!p || !d || p->op != SQZ_OP_CONV || d->op != SQZ_OP_CONV || !p->wide || !p->px || p->dn ||
        !d->wide || !d->px || d->k != p->k || p->group != 1 || d->group != 1 || d->N != p->N ||
        d->C != p->C || d->IH != p->IH || d->IW != p->IW || d->kh != 1 || d->kw != 1 ||
        d->sh != p->sh || d->sw != p->sw || d->ph != 0 || d->pw != 0 || d->OH != p->OH ||
        d->OW != p->OW || d->has_fp)
        return 0;
    /* input pixel (oh * sh, ow * sw) is phase (ph % sh, pw % sw) of the copy
     * at phase row oh - oh0 + ph / sh, column ow + pw / sw: a phase the
     * copy holds (< kh, kw) and rows / columns it holds ((kh-1)/sh rows and
     * (kw-1)/sw columns past the band's) */
    const int64_t a = p->ph % p->sh, rr = p->ph / p->sh, b = p->pw % p->sw, cc = p->pw / p->sw;
    if (a >= p->kh || b >= p->kw || rr > (p->kh - 1 - a) / p->sh || cc > (p->kw - 1) / p->sw)
        return 0;
    int64_t *off = malloc((size_t)d->K * sizeof *off);
    if (!off) return 0;
    for (int64_t c = 0; c < d->K; c++)
        off[c] = ((c * p->sh + a) * p->sw + b) * p->QH * p->QW + rr * p->QW + cc;
    p->doff = off;
    p->dn = down;
    return 1;
}

/* ------------------------------------------------------------ conv chains */

/* Conv c's output as the next conv of a chain reads it: its fused Add's
 * output (Y + residual, in place), else Y. */
static const float *chain_out(const sqz_op_ctx *c) {
    const gop *p = c->params;
    return p->has_fp && p->fp.res ? p->fp.out : c->out_data[0];
}

/* 1 when conv c can follow conv prev (NULL: first) in a chain: wide px,
 * one image, group 1, on the previous output plane; outputs kept per
 * thread at most 64 KB (small maps, where the halo rows recomputed are
 * cheaper than the cross-core lines they save) */
static int chain_ok(const sqz_op_ctx *c, const sqz_op_ctx *prev, int last) {
    const gop *p = c->params, *q = prev ? prev->params : NULL;
    if (!p || p->op != SQZ_OP_CONV || !p->wide || !p->px || p->group != 1 || p->N != 1 || p->chn ||
        (!last && p->M * p->out_sp > 16384))
        return 0;
    return !q || (p->C == q->M && p->IH == q->OH && p->IW == q->OW && p->k == q->k);
}

/* The output rows [r0[s], r1[s]) of each conv s of chain c that thread t of
 * nt computes: its share of the last output, and of each earlier output
 * what the next conv's taps read and (res: see gop.ch_res, or NULL) what a
 * later conv adds as its residual */
static void chain_rows(sqz_op_ctx *const *c, int n, const signed char *res, int t, int nt,
                       int64_t *r0, int64_t *r1) {
    const gop *p = c[n - 1]->params;
    for (int s = 0; s < n - 1; s++) {
        r0[s] = ((const gop *)c[s]->params)->OH;
        r1[s] = 0;
    }
    r0[n - 1] = p->OH * t / nt;
    r1[n - 1] = p->OH * (t + 1) / nt;
    for (int s = n - 1; s > 0; s--) {
        const gop *q = c[s]->params;
        int64_t lo = r0[s] * q->sh - q->ph, hi = (r1[s] - 1) * q->sh - q->ph + q->kh;
        lo = lo < 0 ? 0 : lo;
        hi = hi > q->IH ? q->IH : hi;
        r0[s - 1] = lo < r0[s - 1] ? lo : r0[s - 1];
        r1[s - 1] = hi > r1[s - 1] ? hi : r1[s - 1];
        int u = res && res[s] >= 0 ? res[s] % SQZ_CONV_CHAIN_MAX : -1;
        if (u >= 0) {
            r0[u] = r0[s] < r0[u] ? r0[s] : r0[u];
            r1[u] = r1[s] > r1[u] ? r1[s] : r1[u];
        }
    }
}

/* Floats of an earlier chain conv's private output (full planes, only the
 * rows a thread needs written), and of its down conv's after it */
static size_t chain_floats(const gop *p, int down) {
    const gop *d = p->dn ? p->dn->params : NULL;
    return down ? (d ? (size_t)(d->M * d->out_sp + 15) / 16 * 16 : 0)
                : (size_t)(p->M * p->out_sp + 15) / 16 * 16;
}

#if defined(__x86_64__) || defined(_M_X64)
/* 1 when chain conv p runs on the small-channel Winograd kernel: 3x3
 * stride 1, channels it covers, no down conv in its band copy; not under
 * SQZ_WINOGRAD=0 (Winograd off everywhere). */
static int chain_wino(const gop *p) {
    const char *e = getenv("SQZ_WINOGRAD");
    return !(e && !strcmp(e, "0")) && p->kh == 3 && p->kw == 3 && p->sh == 1 && p->sw == 1 &&
           p->dh == 1 && p->dw == 1 && p->group == 1 && !p->dn &&
           sqz_wsm_ok(p->C, p->M, p->act.kind);
}
#endif

/* Winograd scratch of a chain at nt threads: the largest band any thread
 * runs (its rows without residual-only extensions; a longer band falls
 * back to px_rows) */
static size_t chain_wino_bytes(sqz_op_ctx *const *c, int n, int nt) {
    size_t most = 0;
#if defined(__x86_64__) || defined(_M_X64)
    for (int t = 0; t < nt; t++) {
        int64_t r0[SQZ_CONV_CHAIN_MAX], r1[SQZ_CONV_CHAIN_MAX];
        chain_rows(c, n, NULL, t, nt, r0, r1);
        for (int s = 0; s < n; s++) {
            const gop *q = c[s]->params;
            if (!chain_wino(q) || r1[s] <= r0[s]) continue;
            size_t b = sqz_wsm_band_bytes(q->C, q->M, q->OW, r1[s] - r0[s]);
            most = b > most ? b : most;
        }
    }
#else
    (void)c;
    (void)n;
    (void)nt;
#endif
    return (most + 127) / 128 * 128;
}

/* One thread's bytes: the largest band copy, then the earlier convs'
 * outputs, 128-byte parts with 128 bytes between them (see the wide
 * scratch), then the Winograd scratch (*wsb bytes) */
static size_t chain_thread_bytes(sqz_op_ctx *const *c, int n, int nt, size_t *pad, size_t *wsb) {
    size_t pf = 0, b = 0;
    for (int s = 0; s < n; s++) {
        const gop *p = c[s]->params;
        if (p->pad_floats > pf) pf = p->pad_floats;
        if (s < n - 1) b += chain_floats(p, 0) + chain_floats(p, 1);
    }
    *pad = pf;
    *wsb = chain_wino_bytes(c, n, nt);
    return ((pf + b) * sizeof(float) + 127) / 128 * 128 + 128 + *wsb;
}

size_t sqz_gemm_conv_chain_bytes(sqz_op_ctx *const *c, int n, int nt) {
    if (n < 2 || n > SQZ_CONV_CHAIN_MAX || nt < 2) return 0;
    for (int s = 0; s < n; s++)
        if (!chain_ok(c[s], s ? c[s - 1] : NULL, s == n - 1)) return 0;
    const gop *p = c[n - 1]->params;
    double macs = 0, most = 0;
    for (int s = 0; s < n; s++) macs += (double)((const gop *)c[s]->params)->macs;
    if (macs < (double)p->par_min_macs || p->OH < 4 * nt) return 0;
    /* each thread's multiply-adds with its halo rows at most SQZ_CHAIN_EXTRA
     * (default 1.07) times its share of the chain (its rows of the last
     * output). The small ResNet at 2 threads: 28x28 block 1.04, 14x14 1.05
     * (both chained by default); 28x28 block + the 14x14 one's first conv
     * 1.09 (no faster); both blocks in one chain 1.17: 0.104-0.105 ->
     * 0.109 ms quiet, but 0.149-0.154 -> 0.143-0.145 ms in slow host periods
     * (cross-core lines slow: SQZ_CHAIN_EXTRA=1.2 there); the 7x7 block
     * 1.12 on 3 + 4 rows: 0.105 -> 0.110 ms, hence also >= 4 rows a thread */
    for (int t = 0; t < nt; t++) {
        int64_t r0[SQZ_CONV_CHAIN_MAX], r1[SQZ_CONV_CHAIN_MAX];
        chain_rows(c, n, NULL, t, nt, r0, r1);
        double w = 0;
        for (int s = 0; s < n; s++) {
            const gop *q = c[s]->params;
            w += (double)q->macs * (double)(r1[s] - r0[s]) / (double)q->OH;
        }
        w /= macs * (double)(r1[n - 1] - r0[n - 1]) / (double)p->OH;
        most = w > most ? w : most;
    }
    const char *e = getenv("SQZ_CHAIN_EXTRA");
    const double extra = e && *e ? atof(e) : 1.07;
    if (most > extra) return 0;
    size_t pad, wsb;
    return chain_thread_bytes(c, n, nt, &pad, &wsb) * (size_t)nt;
}

int sqz_gemm_conv_chain(sqz_op_ctx *const *c, int n) {
    size_t need = sqz_gemm_conv_chain_bytes(c, n, c[n - 1]->num_threads);
    gop *p = c[n - 1]->params;
    if (!need || need > c[n - 1]->scratch_bytes || !c[n - 1]->scratch) return 0;
    signed char res[SQZ_CONV_CHAIN_MAX];
    for (int s = 0; s < n; s++) {
        const gop *q = c[s]->params;
        if (s && c[s]->in_data[0] != chain_out(c[s - 1])) return 0;
        /* the residual: conv u's output (u) or its down conv's (MAX + u) */
        res[s] = -1;
        for (int u = 0; u < s && q->has_fp && q->fp.res; u++) {
            const gop *pu = c[u]->params;
            if (q->fp.res == chain_out(c[u])) res[s] = (signed char)u;
            if (pu->dn && q->fp.res == pu->dn->out_data[0])
                res[s] = (signed char)(SQZ_CONV_CHAIN_MAX + u);
        }
    }
    sqz_op_ctx **ch = malloc((size_t)n * sizeof *ch);
    sqz_wsm **ws = calloc((size_t)n, sizeof *ws);
    if (!ch || !ws) {
        free(ch);
        free(ws);
        return 0;
    }
#if defined(__x86_64__) || defined(_M_X64)
    /* the Winograd weights (U = G g G^T) of each conv that takes it; one
     * that fails (memory) runs px_rows */
    for (int s = 0; s < n; s++) {
        const gop *q = c[s]->params;
        if (chain_wino(q))
            ws[s] = sqz_wsm_create(q->C, q->M, q->IH, q->IW, q->OH, q->OW, q->ph, q->pw,
                                   c[s]->in_data[1], q->has_bias ? c[s]->in_data[2] : NULL,
                                   q->act.kind);
    }
#endif
    memcpy(ch, c, (size_t)n * sizeof *ch);
    memcpy(p->ch_res, res, (size_t)n);
    p->ch = ch;
    p->ch_ws = ws;
    p->chn = n;
    p->cnt = c[n - 1]->num_threads;
    p->ch_thread = chain_thread_bytes(c, n, p->cnt, &p->ch_pad, &p->ch_wsb);
    return 1;
}

/* Thread t of a chain: rows [OH t / cnt, OH (t+1) / cnt) of the last conv's
 * output, and before them every earlier conv's rows it needs (what the next
 * conv's taps read, what a later conv adds as its residual) into its own
 * buffers: the first conv's input and the last one's output are the only
 * tensors both cores touch. */
static void chain_part(void *arg, int t) {
    const sqz_op_ctx *ctx = arg;
    const gop *p = ctx->params;
    const int n = p->chn;
    float *pad = (float *)((char *)ctx->scratch + p->ch_thread * (size_t)t), *b = pad + p->ch_pad;
    float *buf[2 * SQZ_CONV_CHAIN_MAX]; /* outputs, then down outputs */
    int64_t r0[SQZ_CONV_CHAIN_MAX], r1[SQZ_CONV_CHAIN_MAX];
    for (int s = 0; s < n - 1; s++) {
        const gop *q = p->ch[s]->params;
        buf[s] = b;
        b += chain_floats(q, 0);
        buf[SQZ_CONV_CHAIN_MAX + s] = b;
        b += chain_floats(q, 1);
    }
    chain_rows(p->ch, n, p->ch_res, t, p->cnt, r0, r1);
    for (int s = 0; s < n; s++) {
        const sqz_op_ctx *c = p->ch[s];
        const gop *q = c->params;
        const int last = s == n - 1;
        sqz_conv_post fp = q->fp;
        if (!last) fp.base = fp.out = buf[s];
        if (p->ch_res[s] >= 0) fp.res = buf[p->ch_res[s]];
        const sqz_op_ctx *dn = q->dn;
        float *dy = !dn ? NULL : last ? dn->out_data[0] : buf[SQZ_CONV_CHAIN_MAX + s];
#if defined(__x86_64__) || defined(_M_X64)
        if (p->ch_ws[s] && sqz_wsm_band_bytes(q->C, q->M, q->OW, r1[s] - r0[s]) <= p->ch_wsb) {
            char *wsc = (char *)ctx->scratch + p->ch_thread * (size_t)(t + 1) - p->ch_wsb;
            sqz_wsm_rows(p->ch_ws[s], s ? buf[s - 1] : c->in_data[0],
                         last ? c->out_data[0] : buf[s], q->has_fp ? &fp : NULL, r0[s], r1[s], wsc);
            continue;
        }
#endif
        px_rows(q, s ? buf[s - 1] : c->in_data[0], q->has_bias ? c->in_data[2] : NULL,
                last ? c->out_data[0] : buf[s], q->has_fp ? &fp : NULL, pad, r0[s], r1[s], 0, q->Mg,
                dn, dy, 0, dn ? ((const gop *)dn->params)->M : 0);
    }
}

/* The executor's conv fusions (fastops.h): the GEMM / px / gemv convs of
 * this file and the Winograd convs take both, the depthwise convs SiLU. */
int sqz_fast_conv_fuse_add(const sqz_op_impl *impl, sqz_op_ctx *ctx, const float *residual,
                           float *out, int relu) {
    if (!impl || !ctx->params || !residual || !out || !ctx->out_data || !ctx->out_data[0]) return 0;
    sqz_conv_post q = {ctx->out_data[0], residual, out, relu ? 1 : 0, NULL, sqz_conv_add_best()};
    if (impl->run == sqz_gemm_conv_run) return sqz_gemm_conv_set_post(ctx, &q);
    return sqz_winograd_conv_set_post(impl, ctx, &q);
}

int sqz_fast_conv_fuse_silu(const sqz_op_impl *impl, sqz_op_ctx *ctx) {
    sqz_fast_row_fn f = sqz_fast_silu_row();
    if (!impl || !ctx->params || !f || !ctx->out_data || !ctx->out_data[0]) return 0;
    sqz_conv_post q = {ctx->out_data[0], NULL, NULL, 0, f, NULL};
    if (impl->run == sqz_gemm_conv_run) return sqz_gemm_conv_set_post(ctx, &q);
    if (sqz_winograd_conv_set_post(impl, ctx, &q)) return 1;
    return sqz_dwconv_set_silu(impl, ctx, f);
}

/* ------------------------------------------------------------ Gemm/MatMul */

/* Shared body: operands [gM, gK] x [gK, gN]; A/B either packed (wpk) or
 * strided (ars/acs, brs/bcs). */
static void mm_args(const gop *p, sqz_gemm_args *a, int num_threads) {
    memset(a, 0, sizeof(*a));
    a->kernel = p->k;
    a->M = p->gM;
    a->N = p->gN;
    a->K = p->gK;
    a->a.rs = p->ars;
    a->a.cs = p->acs;
    a->b.rs = p->brs;
    a->b.cs = p->bcs;
    a->ldc = p->gN;
    a->par_min_macs = p->par_min_macs;
    if (!p->post) {
        a->act = p->act.kind;
        a->alpha = p->act.alpha;
        a->beta = p->act.beta;
    }
    a->num_threads = num_threads;
    /* scratch sizing: which operands are packed is what matters */
    if (p->a_const) a->a.packed = p->wpk;
    if (p->b_const) a->b.packed = p->wpk;
}

/* ------------------------------------------------------------------ gemv */

/* Rows of x up to which the gemv path runs (each row pair streams the
 * weights once; the blocked driver packs A into 8-row panels per run) */
#define GEMV_MAX_ROWS 2
/* fewest multiply-adds for which the gemv's panels are split over threads:
 * parts are claimed one by one, so a helper that starts late costs nothing
 * but the parts it takes (SQZ_GEMV_PAR_MIN=N overrides) */
#define GEMV_PAR_MIN (1 << 16)
/* packed gemv weights above this many bytes are taken to be cold each run */
#define GV_COLD_W (1 << 20)

static int64_t env_int(const char *name, int64_t dflt) {
    const char *e = getenv(name);
    if (!e || !*e) return dflt;
    char *end;
    long long v = strtoll(e, &end, 10);
    return *end == '\0' && v >= 0 ? (int64_t)v : dflt;
}

/* Sets up the gemv path when the kernel has one, B is constant (one matrix
 * for every batch entry) and the rows of A (contiguous, gv_ldx apart) are
 * few; packs B. Returns 1 (not taken), 0 (taken), -1 (failure, reported). */
static int gv_setup(sqz_op_ctx *ctx, gop *p, const float *B, const float *C) {
    const sqz_gemm_kernel *k = p->k;
    if (!k->gemv || env_int("SQZ_GEMV", 1) == 0) return 1;
    if (!p->b_const || p->a_const || p->bbatch != 1 || p->abatch != p->batch) return 1;
    int64_t rows = p->batch * p->gM;
    if (rows > GEMV_MAX_ROWS || (p->gM > 1 && p->acs != 1)) return 1;
    int nt = ctx->num_threads > 1 ? ctx->num_threads : 1;
    const int VL = k->gemv_vl;
    int64_t macs = rows * p->gN * p->gK;
    int par = nt > 1 && macs >= env_int("SQZ_GEMV_PAR_MIN", GEMV_PAR_MIN);
    /* panels of 4 vectors on one thread (fewest broadcasts per weight);
     * split over threads, narrower panels (more parts) balance better */
    int pv = SQZ_GEMV_MAXV;
    if (par)
        while (pv > 1 && (p->gN + (int64_t)VL * pv - 1) / ((int64_t)VL * pv) < 4 * nt) pv /= 2;
    int64_t epv = env_int("SQZ_GEMV_PV", 0);
    if (epv >= 1 && epv <= SQZ_GEMV_MAXV) pv = (int)epv;
    p->gv_pv = pv;
    p->gv_np = (p->gN + (int64_t)VL * pv - 1) / ((int64_t)VL * pv);
    p->gv_nt = par && p->gv_np > 1 ? nt : 1;
    p->gv_rows = rows;
    p->gv_ldx = p->gK;
    size_t nf = sqz_gemv_floats(VL, pv, p->gK, p->gN);
    p->wpk = alloc_floats64(nf);
    if (!p->wpk) return sqz_op_fail(ctx, "%s: out of memory (packed weights)", ref_opname(ctx));
    sqz_gemv_pack(VL, pv, p->gK, p->gN, B, p->brs, p->bcs, p->op == SQZ_OP_GEMM ? p->alpha : 1.0f,
                  p->wpk);
    p->wpk_elems = nf;
    /* C: a constant row (or scalar) is the kernel's column bias */
    if (p->has_c && C && (p->c_rs == 0 || rows == 1)) {
        p->gv_bias = alloc_floats((size_t)p->gN);
        if (!p->gv_bias) {
            free(p->wpk);
            p->wpk = NULL;
            return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
        }
        for (int64_t j = 0; j < p->gN; j++) p->gv_bias[j] = p->beta * C[j * p->c_cs];
    }
    p->gv_post_c = p->has_c && !p->gv_bias;
    p->gv_kact = !p->gv_post_c && p->act.kind != SQZ_ACT_SIGMOID && p->act.kind != SQZ_ACT_TANH;
    p->gv = 1;
    return 0;
}

typedef struct gv_job {
    const gop *p;
    const float *x;
    float *y;
} gv_job;

/* Part = one panel of columns, every row. */
static void gv_part(void *arg, int part) {
    const gv_job *j = arg;
    const gop *p = j->p;
    const int VL = p->k->gemv_vl;
    const int64_t PW = (int64_t)VL * p->gv_pv, j0 = PW * part;
    const int64_t cols = p->gN - j0 < PW ? p->gN - j0 : PW;
    sqz_gemm_epi epi;
    memset(&epi, 0, sizeof(epi));
    if (p->gv_kact) {
        epi.act = p->act.kind;
        epi.alpha = p->act.alpha;
        epi.beta = p->act.beta;
    }
    /* weights beyond L2 come from L3 / DRAM on every run */
    epi.prefetch_a = p->wpk_elems * sizeof(float) > GV_COLD_W;
    const float *w = p->wpk + j0 * p->gK;
    const float *bias = p->gv_bias ? p->gv_bias + j0 : NULL;
    for (int64_t r = 0; r < p->gv_rows; r += 2)
        p->k->gemv((size_t)p->gK, j->x + r * p->gv_ldx, (size_t)p->gv_ldx,
                   p->gv_rows - r < 2 ? 1 : 2, w, (size_t)((cols + VL - 1) / VL), (size_t)cols,
                   bias, j->y + r * p->gN + j0, (size_t)p->gN, &epi);
    if (p->has_fp && p->gv_kact) /* a conv's (one row): its panel while in L1 */
        sqz_conv_post_apply(&p->fp, j->y + j0, (size_t)p->gN, (size_t)p->gv_rows, (size_t)cols);
}

static void gv_run(const sqz_op_ctx *ctx, const float *x) {
    const gop *p = ctx->params;
    gv_job j = {p, x, ctx->out_data[0]};
    if (p->gv_nt > 1)
        sqz_par_for(p->gv_nt, (int)p->gv_np, gv_part, &j);
    else
        for (int64_t i = 0; i < p->gv_np; i++) gv_part(&j, (int)i);
    if (p->gv_kact) return;
    const float *C = p->gv_post_c ? ctx->in_data[2] : NULL;
    for (int64_t m = 0; m < p->gv_rows; m++) {
        float *y = j.y + m * p->gN;
        if (C) {
            const float *cr = C + m * p->c_rs;
            for (int64_t n = 0; n < p->gN; n++) y[n] += p->beta * cr[n * p->c_cs];
        }
        ref_act_apply(&p->act, y, (size_t)p->gN);
    }
    if (p->has_fp)
        sqz_conv_post_apply(&p->fp, j.y, (size_t)p->gN, (size_t)p->gv_rows, (size_t)p->gN);
}

/* Packs the constant operand(s): one matrix per batch entry of it. */
static int mm_pack(sqz_op_ctx *ctx, gop *p, const float *A, const float *B) {
    size_t na = p->a_const ? sqz_gemm_packed_a_floats(p->k, p->gM, p->gK) : 0;
    size_t nb = p->b_const ? sqz_gemm_packed_b_floats(p->k, p->gK, p->gN) : 0;
    /* only one operand is packed (B preferred when both are constant) */
    if (p->a_const && p->b_const) {
        p->a_const = 0;
        na = 0;
    }
    int64_t cnt = p->a_const ? p->abatch : p->bbatch;
    size_t per = p->a_const ? na : nb;
    if (!p->a_const && !p->b_const) return 0;
    if (per > 0 && (size_t)cnt > SIZE_MAX / sizeof(float) / per)
        return sqz_op_fail(ctx, "%s: packed operand too large", ref_opname(ctx));
    p->wpk_elems = per;
    p->wpk = alloc_floats64(per * (size_t)cnt);
    if (!p->wpk) return sqz_op_fail(ctx, "%s: out of memory (packed operand)", ref_opname(ctx));
    for (int64_t i = 0; i < cnt; i++) {
        if (p->a_const)
            sqz_gemm_pack_a(p->k, p->gM, p->gK, A + i * p->gM * p->gK, p->ars, p->acs,
                            p->wpk + (size_t)i * per);
        else
            sqz_gemm_pack_b(p->k, p->gK, p->gN, B + i * p->gK * p->gN, p->brs, p->bcs,
                            p->wpk + (size_t)i * per);
    }
    return 0;
}

static int mm_finish(sqz_op_ctx *ctx, gop *p) {
    gop *pp = malloc(sizeof(*pp));
    if (!pp) {
        free(p->wpk);
        return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    }
    *pp = *p;
    sqz_gemm_args a;
    mm_args(pp, &a, ctx->num_threads);
    ctx->params = pp;
    ctx->scratch_bytes = sqz_gemm_scratch_bytes(&a);
    return 0;
}

static int gv_finish(sqz_op_ctx *ctx, gop *p) {
    gop *pp = malloc(sizeof(*pp));
    if (!pp) {
        free(p->wpk);
        free(p->gv_bias);
        return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    }
    *pp = *p;
    ctx->params = pp;
    ctx->scratch_bytes = 0;
    return 0;
}

int sqz_gemm_gemm_prepare(sqz_op_ctx *ctx, const sqz_gemm_kernel *k) {
    int rc = ref_validate(ctx, &sqz_ref_gemm);
    if (rc) return rc;
    const sqz_shape *as = &ctx->in_shape[0];
    gop p;
    memset(&p, 0, sizeof(p));
    p.op = SQZ_OP_GEMM;
    p.k = k;
    p.par_min_macs = sqz_gemm_par_min_macs();
    int ta = (int)sqz_attr_int(ctx->node, "transA", 0),
        tb = (int)sqz_attr_int(ctx->node, "transB", 0);
    p.alpha = sqz_attr_float(ctx->node, "alpha", 1.0f);
    p.beta = sqz_attr_float(ctx->node, "beta", 1.0f);
    p.gM = ctx->out_shape[0].dims[0];
    p.gN = ctx->out_shape[0].dims[1];
    p.gK = ta ? as->dims[0] : as->dims[1];
    if (p.gM == 0 || p.gN == 0 || p.gK == 0) return 1;
    if (ref_act_prepare(ctx, &p.act)) return -1;
    p.ars = ta ? 1 : p.gK;
    p.acs = ta ? p.gM : 1;
    p.brs = tb ? 1 : p.gN;
    p.bcs = tb ? p.gK : 1;
    p.has_c = ref_has_input(ctx, 2) && p.beta != 0.0f;
    if (p.has_c) {
        const sqz_shape *c = &ctx->in_shape[2];
        int64_t cm = 1, cn = 1;
        if (c->ndim == 2) {
            cm = c->dims[0];
            cn = c->dims[1];
        } else if (c->ndim == 1) {
            cn = c->dims[0];
        }
        p.c_cs = cn == 1 ? 0 : 1;
        p.c_rs = cm == 1 ? 0 : cn;
    }
    p.post = p.alpha != 1.0f || p.has_c;
    p.abatch = p.bbatch = p.batch = 1;
    p.a_const = ctx->in_data[0] != NULL;
    p.b_const = ctx->in_data[1] != NULL;
    p.macs = (uint64_t)(p.gM * p.gN * p.gK);
    rc = gv_setup(ctx, &p, ctx->in_data[1], p.has_c ? ctx->in_data[2] : NULL);
    if (rc < 0) return -1;
    if (rc == 0) return gv_finish(ctx, &p);
    if (mm_pack(ctx, &p, ctx->in_data[0], ctx->in_data[1])) return -1;
    return mm_finish(ctx, &p);
}

void sqz_gemm_gemm_run(const sqz_op_ctx *ctx) {
    const gop *p = ctx->params;
    if (p->gv) {
        gv_run(ctx, ctx->in_data[0]);
        return;
    }
    sqz_gemm_args a;
    mm_args(p, &a, ctx->num_threads);
    if (!p->a_const) a.a.data = ctx->in_data[0];
    if (!p->b_const) a.b.data = ctx->in_data[1];
    float *Y = ctx->out_data[0];
    a.c = Y;
    sqz_gemm(&a, ctx->scratch);
    if (!p->post) return;
    const float *C = p->has_c ? ctx->in_data[2] : NULL;
    for (int64_t m = 0; m < p->gM; m++) {
        float *y = Y + m * p->gN;
        if (p->alpha != 1.0f)
            for (int64_t n = 0; n < p->gN; n++) y[n] *= p->alpha;
        if (C) {
            const float *cr = C + m * p->c_rs;
            for (int64_t n = 0; n < p->gN; n++) y[n] += p->beta * cr[n * p->c_cs];
        }
        ref_act_apply(&p->act, y, (size_t)p->gN);
    }
}

int sqz_gemm_matmul_prepare(sqz_op_ctx *ctx, const sqz_gemm_kernel *k) {
    int rc = ref_validate(ctx, &sqz_ref_matmul);
    if (rc) return rc;
    const sqz_shape *as = &ctx->in_shape[0], *bs = &ctx->in_shape[1];
    gop p;
    memset(&p, 0, sizeof(p));
    p.op = SQZ_OP_MATMUL;
    p.k = k;
    p.par_min_macs = sqz_gemm_par_min_macs();
    int a1 = as->ndim == 1, b1 = bs->ndim == 1;
    p.gM = a1 ? 1 : as->dims[as->ndim - 2];
    p.gK = as->dims[as->ndim - 1];
    p.gN = b1 ? 1 : bs->dims[bs->ndim - 1];
    p.abatch = 1;
    for (int i = 0; i < as->ndim - 2; i++) p.abatch *= as->dims[i];
    p.bbatch = 1;
    for (int i = 0; i < bs->ndim - 2; i++) p.bbatch *= bs->dims[i];
    const sqz_shape *ys = &ctx->out_shape[0];
    int ybn = ys->ndim - (a1 ? 0 : 1) - (b1 ? 0 : 1);
    p.batch = 1;
    for (int i = 0; i < ybn; i++) p.batch *= ys->dims[i];
    if (p.gM == 0 || p.gN == 0 || p.gK == 0 || p.batch == 0) return 1;
    /* each operand either broadcast whole (one matrix) or one per batch */
    if ((p.abatch != 1 && p.abatch != p.batch) || (p.bbatch != 1 && p.bbatch != p.batch)) return 1;
    if (ref_act_prepare(ctx, &p.act)) return -1;
    p.ars = p.gK;
    p.acs = 1;
    p.brs = p.gN;
    p.bcs = 1;
    p.a_const = ctx->in_data[0] != NULL;
    p.b_const = ctx->in_data[1] != NULL;
    p.macs = (uint64_t)(p.batch * p.gM * p.gN * p.gK);
    rc = gv_setup(ctx, &p, ctx->in_data[1], NULL);
    if (rc < 0) return -1;
    if (rc == 0) return gv_finish(ctx, &p);
    if (mm_pack(ctx, &p, ctx->in_data[0], ctx->in_data[1])) return -1;
    return mm_finish(ctx, &p);
}

void sqz_gemm_matmul_run(const sqz_op_ctx *ctx) {
    const gop *p = ctx->params;
    if (p->gv) {
        gv_run(ctx, ctx->in_data[0]);
        return;
    }
    sqz_gemm_args a;
    mm_args(p, &a, ctx->num_threads);
    const float *A = ctx->in_data[0], *B = ctx->in_data[1];
    float *Y = ctx->out_data[0];
    for (int64_t i = 0; i < p->batch; i++) {
        int64_t ai = p->abatch == 1 ? 0 : i, bi = p->bbatch == 1 ? 0 : i;
        if (p->a_const)
            a.a.packed = p->wpk + (size_t)ai * p->wpk_elems;
        else
            a.a.data = A + ai * p->gM * p->gK;
        if (p->b_const)
            a.b.packed = p->wpk + (size_t)bi * p->wpk_elems;
        else
            a.b.data = B + bi * p->gK * p->gN;
        a.c = Y + i * p->gM * p->gN;
        sqz_gemm(&a, ctx->scratch);
    }
}
