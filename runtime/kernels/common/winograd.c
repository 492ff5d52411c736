/* winograd.c - the Winograd Conv impl (see winograd.h): choice per layer,
 * weight transform at prepare, and the tile-blocked run: input transform ->
 * t*t packed GEMMs -> output transform with bias and activation. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "par.h"
#include "ref/ref.h"
#include "winograd.h"
#include "wino_small.h"

/* the generic-C transforms, paired with the scalar GEMM kernel (NR 8) */
#define WT_NR 8
#include "winograd_tf.h"
#undef WT_NR

const sqz_wino_tf sqz_wino_tf_generic = {"generic", 8,          wt_input2,
                                         wt_input4, wt_output2, wt_output4};

const sqz_wino_tf *sqz_wino_tf_for(const sqz_gemm_kernel *k) {
#if defined(__x86_64__) || defined(_M_X64)
    if (k == &sqz_gemm_avx512) return &sqz_wino_tf_avx512;
    if (k == &sqz_gemm_avx2) return &sqz_wino_tf_avx2;
#endif
#if defined(__aarch64__)
    if (k == &sqz_gemm_neon) return &sqz_wino_tf_neon;
#endif
    if (k == &sqz_gemm_scalar) return &sqz_wino_tf_generic;
    return NULL;
}

/* Bytes of transformed input + GEMM output per block kept near L2 size / 2
 * (the transformed weights of a position stream through the rest). */
#define WINO_L2_BYTES (2 << 20)
/* most threads' parts of one conv */
#define WINO_MAX_PARTS 64
#ifndef WINO_BLOCK_BYTES
#define WINO_BLOCK_BYTES (768 * 1024)
#endif

typedef struct wino {
    sqz_wino_geom g;
    const sqz_gemm_kernel *k;
    const sqz_wino_tf *tf;
    int T2; /* t * t transform positions */
    int64_t N, C, M;
    int64_t tiles_h, tiles_per_img, ntiles;
    int64_t blk;                    /* tiles per block (a multiple of NR) */
    int64_t half;                   /* lanes of a half-width last panel (0: none) */
    int nparts;                     /* threads' parts */
    int64_t pt[WINO_MAX_PARTS + 1]; /* part p: tiles [pt[p], pt[p + 1]) */
    float *U;                       /* T2 packed A matrices [M x C] */
    size_t u_elems;                 /* floats per packed matrix */
    size_t v_floats, gemm_scratch, part_bytes;
    int64_t vxs; /* floats between the V matrices of two positions (padded) */
    int has_bias;
    uint64_t macs; /* of the direct conv (the figure `sqz info` reports) */
    int has_fp;    /* the executor's fused epilogue (sqz_winograd_conv_set_post) */
    sqz_conv_post fp;
    /* sm: the small-channel kernel (wino_small.h) runs the conv instead,
     * each part tile rows [sm_tr[p], sm_tr[p + 1]) of every image */
    sqz_wsm *sm;
    int64_t sm_tr[WINO_MAX_PARTS + 1];
    int64_t sm_chunk; /* tile rows a call: staged input + output near L2 / 4 */
} wino;

void sqz_winograd_conv_release(void *params) {
    wino *w = params;
    if (!w) return;
#if defined(__x86_64__) || defined(_M_X64)
    sqz_wsm_free(w->sm);
#endif
    free(w->U);
    free(w);
}

void sqz_winograd_conv_info(const sqz_op_ctx *ctx, int *m, int *parts) {
    const wino *w = ctx->params;
    *m = w ? (w->sm ? SQZ_WINO_SMALL : w->g.m) : 0;
    *parts = w ? w->nparts : 0;
}

static uint64_t wino_macs(const sqz_op_ctx *ctx) {
    const wino *w = ctx->params;
    return w ? w->macs : 0;
}

/* SQZ_WINOGRAD: 0 off, 2 / 4 forced tile, else -1 (automatic) */
static int env_choice(void) {
    const char *e = getenv("SQZ_WINOGRAD");
    if (!e || !*e) return -1;
    if (!strcmp(e, "0")) return 0;
    if (!strcmp(e, "2")) return 2;
    if (!strcmp(e, "4")) return 4;
    if (!strcmp(e, "s")) return SQZ_WINO_SMALL;
    return -1;
}

/* 1 for the AVX-512 GEMM on a CPU whose zmm FMAs issue at half rate */
static int half_rate_fma(const sqz_gemm_kernel *k) {
#if defined(__x86_64__) || defined(_M_X64)
    return k == &sqz_gemm_avx512 && sqz_cpu_zmm_fma_half_rate();
#else
    (void)k;
    return 0;
#endif
}

/* The automatic tile choice, 0 to leave the conv to the direct GEMM. From
 * bench_winograd (AVX-512 at full rate, 1 thread, CPU time, winograd / direct):
 * - planes under 100 pixels (7x7): t*t weight matrices streamed for a few
 *   tiles in a partly empty panel: F2 1.6x, F4 3.8x slower;
 * - few channels (C + M < 80: the small ResNet's 16x16 28x28 and 32x32
 *   14x14 layers ran 1.4x-1.7x slower): the transforms, linear in C + M,
 *   outweigh the GEMM work saved (C * M); SqueezeNet's 16->64 55x55: F4 0.75;
 * - F(4,3) on planes from 24 x 24 (56x56 64 ch: F4 0.53, F2 0.65; 28x28
 *   128 ch: 0.52 / 0.61), F(2,3) below (13x13 SqueezeNet: F2 0.82-0.89, F4
 *   1.1; F4's few tiles fill part of a panel) while its transformed weights
 *   fit L2 (2 MB): ResNet-18's 14x14 256 ch layers (4 MB) ran no faster in
 *   the model (CPU ms 1.40 direct, 1.44 F2) though 0.74 in the bench, where
 *   they stay cached from the previous run;
 * - F(2,3) neither where the direct conv runs on pixel-major tiles. */
static int auto_tile(const wino *w, int nt) {
    const int64_t OH = w->g.OH, OW = w->g.OW;
    if (w->C < 16 || w->M < 16 || OH * OW < 100) return 0;
    /* one thread only: at 2+ the direct conv splits where F(4,3)'s few
     * tiles do not (16 at 14x14: one part), small ResNet 2 threads 0.115 ->
     * 0.135-0.140 ms with the rule */
    if (nt <= 1 && half_rate_fma(w->k)) {
        /* zmm FMAs at half rate (Zen 4) make the direct GEMM twice as dear
         * against the transforms' loads and stores: F(4,3) pays from 14x14
         * planes and 16 channels while its 36 transformed weight matrices
         * fit L2. Small ResNet, 1 thread, sqz bench medians x3, same run:
         * 0.181 -> 0.174 ms (16->16 @28x28 and 32->32 @14x14 on F4; F2 at
         * 14x14 was slower: 0.187) */
        if (OH >= 14 && OW >= 14 && 36 * w->C * w->M * (int64_t)sizeof(float) <= WINO_L2_BYTES)
            return 4;
    }
    if (w->C + w->M < 80) return 0;
    if (OH >= 24 && OW >= 24) return 4;
    if (16 * w->C * w->M * (int64_t)sizeof(float) > WINO_L2_BYTES) return 0;
    /* the direct conv on pixel-major tiles (kernels with px, gemm.h) beats
     * F(2,3) where its column panels waste a fifth of their lanes: 13x13
     * SqueezeNet 48->192 0.143 -> 0.131, 64->256 0.25 -> 0.23 ms CPU. The
     * same bounds as gemm_ops.c's choice (panel <= 128 KB, M >= 32). */
    const sqz_gemm_kernel *k = w->k;
    if (k->px && w->M >= 32 && 9 * w->C * k->px_m * (int64_t)sizeof(float) <= 128 * 1024) {
        int64_t cols = (OH * (OW + 2) + k->nr - 1) / k->nr * k->nr;
        if (cols * 5 >= OH * OW * 6) return 0;
    }
    return 2;
}

/* Estimated work of a part of n consecutive tiles: its transforms (~4 MACs
 * per position and channel, in and out) and its GEMM columns, NR-column
 * panels whose last one may run at half width (w->half). */
static double part_cost(const wino *w, int64_t n) {
    const int64_t NR = w->k->nr, rem = n % NR;
    double cols = (double)(n / NR * NR) + (rem == 0 ? 0.0 : rem <= w->half ? w->half : NR);
    return (double)w->T2 *
           (4.0 * (double)n * (double)(w->C + w->M) + cols * (double)w->C * (double)w->M);
}

/* Contiguous tile ranges per part (part 0 the first rows of the output): at
 * 2 threads the master runs part 0 and the helper part 1 on every node
 * (par.c), so the rows a part reads were mostly written on its own core by
 * the node before (split by rows or pixel halves), and the rows it writes
 * are the ones the next node's part reads there. Blocks dealt round robin
 * made every other 1-2 tile rows the other core's. Each part's size
 * minimizes the busiest part's part_cost. */
static void plan_parts(wino *w) {
    int64_t start = 0;
    w->pt[0] = 0;
    for (int p = 0; p < w->nparts; p++) {
        const int left = w->nparts - p;
        const int64_t R = w->ntiles - start;
        int64_t best_n = R;
        if (left > 1) {
            double best = 0;
            best_n = -1;
            for (int64_t n = 1; n <= R - (left - 1); n++) {
                int64_t rest = R - n, per = (rest + left - 2) / (left - 1);
                double c = part_cost(w, n), cr = part_cost(w, per);
                if (cr > c) c = cr;
                /* ties: the size nearest an even share */
                if (best_n < 0 || c < best ||
                    (c == best && llabs(n * left - R) < llabs(best_n * left - R))) {
                    best = c;
                    best_n = n;
                }
            }
        }
        start += best_n;
        w->pt[p + 1] = start;
    }
}

static void plan_blocks(wino *w, int nt) {
    const int64_t NR = w->k->nr;
    /* a last panel of up to NR / 2 tiles runs at half width where that is
     * half the work: NR a multiple of two 8- or 16-lane vectors (AVX2, AVX-512
     * kernels: one vector per row for n <= NR / 2). A part's panels had cost
     * as much full as with one tile: ResNet-18's 56x56 64 ch F(4,3), 1 thread,
     * transforms + GEMM of 96 / 97 / 128 tiles: 281 / 357 / 393 us. */
    w->half = NR % 16 == 0 ? NR / 2 : 0;
    const int64_t per_tile = (int64_t)w->T2 * (w->C + w->M) * (int64_t)sizeof(float);
    int64_t blk = WINO_BLOCK_BYTES / per_tile / NR * NR;
    if (blk < NR) blk = NR;
    int64_t all = (w->ntiles + NR - 1) / NR * NR;
    /* transformed weights above the budget stream from L3 once per block:
     * then blocks of up to 4x the budget (ResNet-18 in the model, CPU ms per
     * conv, 768 KB -> 4 MB blocks: 28x28 128 ch F4 1.15 -> 1.00, 14x14 256 ch
     * F2 1.65 -> 1.43; but 56x56 64 ch, whose 590 KB stay in L2, 0.85 -> 1.0) */
    if ((int64_t)w->T2 * w->M * w->C * (int64_t)sizeof(float) > WINO_BLOCK_BYTES) {
        int64_t big = 4 * WINO_BLOCK_BYTES / per_tile / NR * NR;
        if (big > blk) blk = big;
    }
    if (blk > all) blk = all;
    w->nparts = 1;
    int64_t direct_macs = (int64_t)w->macs;
    if (nt > 1 && direct_macs >= sqz_gemm_conv_par_min_macs() && w->ntiles > NR) {
        /* at least NR / 2 tiles per part */
        int64_t most = w->ntiles / (NR / 2);
        w->nparts = nt < WINO_MAX_PARTS ? nt : WINO_MAX_PARTS;
        if (w->nparts > most) w->nparts = (int)most;
    }
    plan_parts(w);
    int64_t biggest = 0;
    for (int p = 0; p < w->nparts; p++)
        if (w->pt[p + 1] - w->pt[p] > biggest) biggest = w->pt[p + 1] - w->pt[p];
    biggest = (biggest + NR - 1) / NR * NR;
    w->blk = blk < biggest ? blk : biggest;
}

static void block_args(const wino *w, sqz_gemm_args *a, int64_t np) {
    memset(a, 0, sizeof(*a));
    a->kernel = w->k;
    a->M = w->M;
    a->N = np;
    a->K = w->C;
    a->a.packed = w->U;
    a->b.packed = w->U; /* placeholder: sizing only needs "packed" */
    a->ldc = (int64_t)w->T2 * np;
    a->act = SQZ_ACT_NONE;
    a->num_threads = 1;
}

/* The small-channel kernel by default where it applies and on planes up to
 * 4096 pixels (see wino_small.h; timings in the commits that added it:
 * also ResNet-18's 64x56x56 and SqueezeNet's 16->64 @55x55 at 1 thread,
 * in chunks of tile rows, bench_winograd 0.76 / 0.70 of the generic F(4,3)). At 2+
 * threads not on planes of 4+ rows a thread: the GEMM conv takes those, to
 * run them on this kernel inside its conv chains (gemm_ops.c, each thread
 * its band with halo rows; else its direct conv). */
static int small_auto(const wino *w, int act, int nt) {
#if defined(__x86_64__) || defined(_M_X64)
    if (nt > 1 && w->N == 1 && w->g.OH >= 4 * nt) return 0;
    return sqz_wsm_ok(w->C, w->M, act) && w->g.OH * w->g.OW <= 4096;
#else
    (void)w;
    (void)act;
    (void)nt;
    return 0;
#endif
}

/* Sets up the small-channel kernel: 1 when it does not apply. Parts of
 * whole tile rows (4 output rows), balanced. */
static int small_prepare(sqz_op_ctx *ctx, wino *w, int act) {
#if defined(__x86_64__) || defined(_M_X64)
    sqz_wsm *sm =
        sqz_wsm_create(w->C, w->M, w->g.IH, w->g.IW, w->g.OH, w->g.OW, w->g.ph, w->g.pw,
                       ctx->in_data[1], ref_has_input(ctx, 2) ? ctx->in_data[2] : NULL, act);
    if (!sm) return sqz_wsm_ok(w->C, w->M, act) ? sqz_op_fail(ctx, "Conv: out of memory") : 1;
    wino *pw = malloc(sizeof(*pw));
    if (!pw) {
        sqz_wsm_free(sm);
        return sqz_op_fail(ctx, "Conv: out of memory");
    }
    *pw = *w;
    pw->sm = sm;
    pw->g.m = 4;
    const int64_t tr = (w->g.OH + 3) / 4;
    int np = 1;
    if (ctx->num_threads > 1 && (int64_t)w->macs >= sqz_gemm_conv_par_min_macs())
        np = ctx->num_threads < WINO_MAX_PARTS ? ctx->num_threads : WINO_MAX_PARTS;
    if (np > tr) np = (int)tr;
    pw->nparts = np;
    int64_t most = 0;
    for (int p = 0; p <= np; p++) {
        pw->sm_tr[p] = tr * p / np;
        if (p && pw->sm_tr[p] - pw->sm_tr[p - 1] > most) most = pw->sm_tr[p] - pw->sm_tr[p - 1];
    }
    /* large planes in chunks of tile rows whose staged input and output
     * stay under 256 KB (one chunk up to the small ResNet's 16x28x28) */
    const int64_t row_bytes = (4 * (w->g.OW + 6) * (w->C + w->M)) * (int64_t)sizeof(float);
    pw->sm_chunk = (256 << 10) / row_bytes;
    if (pw->sm_chunk < 1) pw->sm_chunk = 1;
    if (pw->sm_chunk > most) pw->sm_chunk = most;
    pw->part_bytes = sqz_wsm_scratch_bytes(sm, 4 * pw->sm_chunk);
    ctx->params = pw;
    ctx->scratch_bytes = pw->part_bytes * (size_t)np;
    return 0;
#else
    (void)ctx;
    (void)w;
    (void)act;
    return 1;
#endif
}

int sqz_winograd_conv_prepare(sqz_op_ctx *ctx, const sqz_gemm_kernel *k, int m) {
    int rc = sqz_ref_conv.prepare(ctx);
    if (ctx->params && sqz_ref_conv.release) sqz_ref_conv.release(ctx->params);
    ctx->params = NULL;
    ctx->scratch_bytes = 0;
    if (rc) return rc;
    const sqz_shape *x = &ctx->in_shape[0], *ws = &ctx->in_shape[1];
    if (x->ndim != 4 || ws->ndim != 4 || !ctx->in_data[1]) return 1;
    if (sqz_attr_int(ctx->node, "group", 1) != 1) return 1;
    ref_geom rg;
    if (ref_geom_prepare(ctx, &rg, 2, x->dims + 2, ws->dims + 2, 0)) return -1;
    for (int d = 1; d <= 2; d++)
        if (rg.k[d] != 3 || rg.s[d] != 1 || rg.d[d] != 1) return 1;
    const sqz_wino_tf *tf = sqz_wino_tf_for(k);
    if (!tf) return 1;
    wino w;
    memset(&w, 0, sizeof(w));
    w.k = k;
    w.tf = tf;
    w.N = x->dims[0];
    w.C = x->dims[1];
    w.M = ws->dims[0];
    w.g.IH = rg.in[1];
    w.g.IW = rg.in[2];
    w.g.OH = rg.out[1];
    w.g.OW = rg.out[2];
    w.g.ph = rg.pb[1];
    w.g.pw = rg.pb[2];
    if (w.N == 0 || w.C == 0 || w.M == 0 || w.g.OH <= 0 || w.g.OW <= 0) return 1;
    w.macs = (uint64_t)(w.N * w.M * w.g.OH * w.g.OW * w.C * 9);
    w.g.x_img = w.C * w.g.IH * w.g.IW;
    w.g.y_img = w.M * w.g.OH * w.g.OW;
    ref_act act;
    if (ref_act_prepare(ctx, &act)) return -1;
    if (m == SQZ_WINO_SMALL || (m == 0 && small_auto(&w, act.kind, ctx->num_threads)))
        return small_prepare(ctx, &w, act.kind);
    if (m == 0) m = auto_tile(&w, ctx->num_threads);
    if (m != 2 && m != 4) return 1;
    w.g.act = act.kind;
    w.g.alpha = act.alpha;
    w.g.beta = act.beta;
    w.g.m = m;
    w.g.t = m + 2;
    w.T2 = w.g.t * w.g.t;
    w.tiles_h = (w.g.OH + m - 1) / m;
    w.g.tiles_w = (w.g.OW + m - 1) / m;
    w.tiles_per_img = w.tiles_h * w.g.tiles_w;
    w.ntiles = w.N * w.tiles_per_img;
    w.has_bias = ref_has_input(ctx, 2);
    plan_blocks(&w, ctx->num_threads);

    /* weights: U[xi] = (G g G^T)[xi] as [M x C] matrices, packed as GEMM A */
    w.u_elems = sqz_gemm_packed_a_floats(k, w.M, w.C);
    const size_t mc = (size_t)w.M * (size_t)w.C;
    if ((size_t)w.T2 > SIZE_MAX / sizeof(float) / (mc > w.u_elems ? mc : w.u_elems))
        return sqz_op_fail(ctx, "Conv: Winograd weights too large");
    wino *pw = malloc(sizeof(*pw));
    float *tmp = malloc(mc * (size_t)w.T2 * sizeof(float));
    w.U = malloc(w.u_elems * (size_t)w.T2 * sizeof(float));
    if (!pw || !tmp || !w.U) {
        free(pw);
        free(tmp);
        free(w.U);
        return sqz_op_fail(ctx, "Conv: out of memory (Winograd weights)");
    }
    const float *W = ctx->in_data[1];
    for (size_t oc = 0; oc < mc; oc++) {
        float u[36];
        sqz_wino_weight(m, W + oc * 9, u);
        for (int xi = 0; xi < w.T2; xi++) tmp[(size_t)xi * mc + oc] = u[xi];
    }
    for (int xi = 0; xi < w.T2; xi++)
        sqz_gemm_pack_a(k, w.M, w.C, tmp + (size_t)xi * mc, w.C, 1, w.U + (size_t)xi * w.u_elems);
    free(tmp);

    /* scratch per part: V (T2 x C x blk) and the GEMM outputs (M x T2 x blk) */
    sqz_gemm_args a;
    block_args(&w, &a, w.blk);
    w.gemm_scratch = (sqz_gemm_scratch_bytes(&a) + 63) / 64 * 64;
    /* V[xi] a cache line apart from a multiple of 4 KB: the input transform
     * writes T2 streams at once (no L1 set conflicts / 4K aliasing) */
    w.vxs = w.C * w.blk + 16;
    w.v_floats = ((size_t)w.T2 * (size_t)w.vxs + 15) / 16 * 16;
    size_t mb_floats = ((size_t)w.T2 * (size_t)w.M * (size_t)w.blk + 15) / 16 * 16;
    w.part_bytes = w.gemm_scratch + (w.v_floats + mb_floats) * sizeof(float);
    *pw = w;
    ctx->params = pw;
    ctx->scratch_bytes = w.part_bytes * (size_t)w.nparts;
    return 0;
}

void sqz_wino_make_panel(const sqz_wino_geom *g, int64_t tiles_h, int64_t t0, int cnt, int nr,
                         sqz_wino_panel *p) {
    const int64_t per_img = tiles_h * g->tiles_w;
    p->nr = nr;
    p->cnt = cnt;
    p->lanes = nr;
    p->nruns = 0;
    int64_t img = t0 / per_img, rem = t0 % per_img;
    int64_t ty = rem / g->tiles_w, tx = rem % g->tiles_w;
    for (int l = 0; l < cnt;) {
        int len = (int)(g->tiles_w - tx < cnt - l ? g->tiles_w - tx : cnt - l);
        sqz_wino_run *r = &p->run[p->nruns++];
        r->lane0 = l;
        r->len = len;
        r->img = img;
        r->ty = ty;
        r->tx0 = tx;
        l += len;
        tx = 0;
        if (++ty == tiles_h) {
            ty = 0;
            img++;
        }
    }
}

/* The fused epilogue on the output pixels of panel pan in channel plane y
 * (image 0; the runs add img * y_img): rows of m pixels per run. */
static void wino_post(const wino *w, const sqz_wino_panel *pan, float *y) {
    const int64_t m = w->g.m, OH = w->g.OH, OW = w->g.OW;
    for (int r = 0; r < pan->nruns; r++) {
        const sqz_wino_run *run = &pan->run[r];
        const int64_t oy0 = run->ty * m, ox0 = run->tx0 * m;
        int64_t rows = OH - oy0 < m ? OH - oy0 : m, cols = run->len * m;
        if (cols > OW - ox0) cols = OW - ox0;
        if (rows > 0 && cols > 0)
            sqz_conv_post_apply(&w->fp, y + run->img * w->g.y_img + oy0 * OW + ox0, (size_t)OW,
                                (size_t)rows, (size_t)cols);
    }
}

/* tiles [t0, t0 + cnt), cnt <= blk */
static void run_block(const sqz_op_ctx *ctx, int64_t t0, int64_t cnt, char *scratch) {
    const wino *w = ctx->params;
    const int64_t NR = w->k->nr, C = w->C, M = w->M, T2 = w->T2;
    const float *X = ctx->in_data[0];
    const float *B = w->has_bias ? ctx->in_data[2] : NULL;
    float *Y = ctx->out_data[0];
    float *V = (float *)(scratch + w->gemm_scratch), *Mb = V + w->v_floats;
    const int64_t npan = (cnt + NR - 1) / NR, np = npan * NR;
    const int64_t last = cnt - (npan - 1) * NR; /* tiles in the last panel */
    const int lanes = (int)(last <= w->half ? w->half : NR);
    const int m = w->g.m;
    sqz_wino_input_fn in = m == 2 ? w->tf->input2 : w->tf->input4;
    sqz_wino_output_fn out = m == 2 ? w->tf->output2 : w->tf->output4;
    sqz_wino_panel pan;
    const int64_t in_sp = w->g.IH * w->g.IW, out_sp = w->g.OH * w->g.OW;
    /* V[xi]: packed B panels of the block, panel j at j * NR * C */
    for (int64_t j = 0; j < npan; j++) {
        int64_t pc = cnt - j * NR < NR ? cnt - j * NR : NR;
        sqz_wino_make_panel(&w->g, w->tiles_h, t0 + j * NR, (int)pc, (int)NR, &pan);
        if (j == npan - 1) pan.lanes = lanes;
        for (int64_t c = 0; c < C; c++)
            in(&w->g, X + c * in_sp, &pan, V + j * NR * C + c * NR, (size_t)w->vxs);
    }
    /* M[m][xi][tile] = U[xi] . V[xi] */
    sqz_gemm_args a;
    block_args(w, &a, np);
    for (int64_t xi = 0; xi < T2; xi++) {
        a.a.packed = w->U + (size_t)xi * w->u_elems;
        a.b.packed = V + xi * w->vxs;
        a.c = Mb + xi * np;
        sqz_gemm_range(&a, 0, M, 0, np - NR + lanes, scratch);
    }
    for (int64_t j = 0; j < npan; j++) {
        int64_t pc = cnt - j * NR < NR ? cnt - j * NR : NR;
        sqz_wino_make_panel(&w->g, w->tiles_h, t0 + j * NR, (int)pc, (int)NR, &pan);
        if (j == npan - 1) pan.lanes = lanes;
        for (int64_t o = 0; o < M; o++) {
            out(&w->g, Mb + o * T2 * np + j * NR, (size_t)np, &pan, B ? B[o] : 0.0f,
                Y + o * out_sp);
            if (w->has_fp) wino_post(w, &pan, Y + o * out_sp);
        }
    }
}

static void wino_part(void *arg, int part) {
    const sqz_op_ctx *ctx = arg;
    const wino *w = ctx->params;
    char *scratch = (char *)ctx->scratch + w->part_bytes * (size_t)part;
#if defined(__x86_64__) || defined(_M_X64)
    if (w->sm) {
        int64_t r0 = 4 * w->sm_tr[part], r1 = 4 * w->sm_tr[part + 1];
        r1 = r1 < w->g.OH ? r1 : w->g.OH;
        for (int64_t n = 0; n < w->N; n++)
            for (int64_t c0 = r0; c0 < r1; c0 += 4 * w->sm_chunk)
                sqz_wsm_rows(w->sm, (const float *)ctx->in_data[0] + n * w->g.x_img,
                             (float *)ctx->out_data[0] + n * w->g.y_img, w->has_fp ? &w->fp : NULL,
                             c0, c0 + 4 * w->sm_chunk < r1 ? c0 + 4 * w->sm_chunk : r1, scratch);
        return;
    }
#endif
    for (int64_t t0 = w->pt[part]; t0 < w->pt[part + 1]; t0 += w->blk) {
        int64_t cnt = w->pt[part + 1] - t0 < w->blk ? w->pt[part + 1] - t0 : w->blk;
        run_block(ctx, t0, cnt, scratch);
    }
}

void sqz_winograd_conv_run(const sqz_op_ctx *ctx) {
    const wino *w = ctx->params;
    if (w->nparts <= 1) {
        wino_part((void *)ctx, 0);
        return;
    }
    sqz_par_for(w->nparts, w->nparts, wino_part, (void *)ctx);
}

static int wino_prepare_auto(sqz_op_ctx *ctx) {
    int e = env_choice();
    if (e == 0) return 1;
    return sqz_winograd_conv_prepare(ctx, sqz_gemm_best(), e < 0 ? 0 : e);
}

int sqz_winograd_conv_set_post(const sqz_op_impl *impl, sqz_op_ctx *ctx,
                               const sqz_conv_post *post) {
    if (!impl || impl->run != sqz_winograd_conv_run || !ctx->params) return 0;
    wino *w = ctx->params;
    w->fp = *post;
    w->has_fp = 1;
    return 1;
}

const sqz_op_impl sqz_winograd_conv = {wino_prepare_auto, sqz_winograd_conv_run,
                                       sqz_winograd_conv_release, wino_macs};
