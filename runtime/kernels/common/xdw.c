/* xdw.c - fused expansion + depthwise conv (contract in xdw.h). */
#include "xdw.h"

#include <stdlib.h>
#include <string.h>

#include "conv1x1.h"
#include "cpu.h"
#include "dwconv.h"
#include "gemm.h"
#include "par.h"

/* Band buffer per thread: the expansion rows of a band, all M channels,
 * inside L2 (1 MB a core here) next to the input rows the band reads and
 * the output rows it writes: 17 rows of 112 x 96 channels. Each band moves
 * the rows it shares with the next to the buffer's top and restarts the
 * depthwise rows, so small bands cost: MobileNetV2's 16 -> 96 @112 stride-2
 * block (5 rows at 256 KB: bands of 2 output rows), SQZ_PROFILE node minima,
 * 256 KB vs 768 KB interleaved x3: 1 thread 534 -> 472 us, 2 threads 350 ->
 * 259 us; its 24 -> 144 @56 block (2 threads) 219 -> 196 us. 2 threads take
 * 512 KB each: as fast as 768 on a quiet machine (MobileNetV2 whole model,
 * x6 interleaved: 256 KB 3.644, 512 KB 3.555, 768 KB 3.558 ms median), and
 * when other jobs leave both threads one core their buffers still fit its L2
 * (768 KB: 0.1-0.2 ms slower than 256 KB then, MNASNet and MobileNetV2). */
#define XDW_BAND_BYTES (768u << 10)
#define XDW_BAND_BYTES_MT (512u << 10)

struct sqz_xdw {
    sqz_xdw_desc d;
    const sqz_gemm_kernel *gk;
    float *w1p;       /* packed expansion weights (GEMM layout, or the small-K kernel's) */
    sqz_c1x1_fn c1;   /* the small-K 1x1 kernel for the expansion (K <= 16), or NULL: the GEMM */
    sqz_dw_row_fn fn; /* depthwise row kernel for (k, stride) */
    /* 1: the AVX-512 stride-1 direct kernel on the band's rows, 2: the
     * stride-2 one (5x5), 0: the row kernels */
    int direct;
    int64_t cap;  /* input rows the band buffer holds */
    int64_t band; /* output rows per band */
    int ox_lo, ox_hi;
    int parts;
    int64_t pw; /* floats of a padded ring row (0: rows read from the buffer as they are) */
    size_t part_floats, buf_floats, zero_floats, ring_floats, gemm_floats;
};

size_t sqz_xdw_band_bytes(int num_threads) {
    const char *e = getenv("SQZ_XDW_BAND_BYTES");
    long long v = e ? atoll(e) : 0;
    return v > 0 ? (size_t)v : num_threads > 1 ? XDW_BAND_BYTES_MT : XDW_BAND_BYTES;
}

static int act_in_row_kernel(int act) {
    return act == SQZ_ACT_NONE || act == SQZ_ACT_RELU || act == SQZ_ACT_CLIP ||
           act == SQZ_ACT_LEAKY_RELU || act == SQZ_ACT_HARD_SWISH;
}

static size_t round16(size_t n) {
    return (n + 15) / 16 * 16;
}

/* GEMM args of the expansion for input rows [r0, r1) stored at dst (row
 * stride of a channel: ldc floats) */
static void expand_args(const sqz_xdw *x, const float *X, int64_t r0, int64_t r1, float *dst,
                        int64_t ldc, sqz_gemm_args *g) {
    const sqz_xdw_desc *d = &x->d;
    memset(g, 0, sizeof *g);
    g->kernel = x->gk;
    g->M = d->M;
    g->N = (r1 - r0) * d->W;
    g->K = d->K;
    g->a.packed = x->w1p;
    g->b.data = X ? X + r0 * d->W : NULL;
    g->b.rs = d->H * d->W;
    g->b.cs = 1;
    g->c = dst;
    g->ldc = ldc;
    g->bias = d->b1;
    g->act = d->act1;
    g->alpha = d->alpha1;
    g->beta = d->beta1;
    g->num_threads = 1;
}

int sqz_xdw_create(const sqz_xdw_desc *d, sqz_xdw **out, size_t *scratch_bytes) {
    *out = NULL;
    *scratch_bytes = 0;
    if (d->K < 1 || d->M < 1 || d->H < 1 || d->W < 1 || d->OH < 1 || d->OW < 1 || !d->w1 ||
        !d->wd || (d->k != 3 && d->k != 5) || (d->stride != 1 && d->stride != 2) || d->pt < 0 ||
        d->pl < 0 || d->pt >= d->k || d->pl >= d->k || !act_in_row_kernel(d->act2) ||
        d->W > (1 << 20) || d->H > (1 << 20) || d->OW > (1 << 20) || d->OH > (1 << 20))
        return 1;
    /* every output row reads inside the padded plane */
    if ((d->OH - 1) * d->stride - d->pt > d->H - 1 + d->k - 1 ||
        (d->OW - 1) * d->stride - d->pl > d->W - 1 + d->k - 1)
        return 1;
    sqz_xdw *x = calloc(1, sizeof *x);
    if (!x) return -1;
    x->d = *d;
    x->gk = sqz_gemm_best();
    x->fn = sqz_dw_row_best(d->k, d->stride);
    x->c1 = d->K <= SQZ_C1X1_MAX_K && !getenv("SQZ_XDW_GEMM") ? sqz_c1x1_best() : NULL;
    size_t pa = x->c1 ? sqz_c1x1_floats(d->K, d->M) : sqz_gemm_packed_a_floats(x->gk, d->M, d->K);
    x->w1p = aligned_alloc(64, (pa * sizeof(float) + 63) / 64 * 64);
    if (!x->w1p || !x->fn) {
        int rc = x->fn ? -1 : 1;
        sqz_xdw_free(x);
        return rc;
    }
    if (x->c1)
        sqz_c1x1_pack(d->K, d->M, d->w1, d->b1, x->w1p);
    else
        sqz_gemm_pack_a(x->gk, d->M, d->K, d->w1, d->K, 1, x->w1p);
    /* rows in the buffer: as many as XDW_BAND_BYTES holds, at least the
     * k + stride rows of two output rows */
    const size_t row_bytes = (size_t)d->M * (size_t)d->W * sizeof(float);
    int64_t cap = (int64_t)(sqz_xdw_band_bytes(d->num_threads) / row_bytes);
    if (cap < d->k + d->stride) cap = d->k + d->stride;
    if (cap > d->H) cap = d->H < d->k + d->stride ? d->k + d->stride : d->H;
    x->band = (cap - d->k) / d->stride + 1;
    x->cap = cap;
    int lo = (d->pl + d->stride - 1) / d->stride, hi;
    int64_t last = d->W - d->k + d->pl;
    hi = last < 0 ? 0 : (int)(last / d->stride) + 1;
    if (lo > d->OW) lo = (int)d->OW;
    if (hi > d->OW) hi = (int)d->OW;
    if (hi < lo) hi = lo;
    x->ox_lo = lo;
    x->ox_hi = hi;
    int nt = d->num_threads > 1 ? d->num_threads : 1;
    x->parts = (int64_t)nt < d->OH ? nt : (int)d->OH;
    x->buf_floats = round16((size_t)d->M * (size_t)cap * (size_t)d->W);
    /* padded ring rows (sqz_dw_row.padded): data at column pl, zeros around,
     * room for whole 16-lane blocks (32 for stride 2); the padded row
     * kernels are ~2x the general ones (bench_dwconv) */
    {
        int64_t need = d->stride * ((d->OW + 15) / 16 * 16) + d->k - 1 + (d->stride - 1) * 16;
        int64_t dat = d->pl + d->W;
        x->pw = (need > dat ? need : dat);
        x->pw = (x->pw + 15) / 16 * 16;
        /* stride 2: the general row kernels were as fast (MobileNetV2's
         * 16 -> 96 @112 block, 1 thread: 0.51 ms fused without the ring,
         * 0.55 with it; stride 1, 24 -> 144 @56: 0.37 -> 0.35) */
        if (d->stride != 1) x->pw = 0;
    }
#if defined(__x86_64__)
    /* the direct kernels where the unfused layer runs them (common/dwconv.c:
     * stride 1 with pl = (k - 1) / 2; stride 2 for 5x5, 3x3 keeps the row
     * kernel); they read the band's rows as a plane of h1 - h0 rows
     * (xdw_part). SQZ_XDW_DIRECT=0: the row kernels, for A/B. */
    const char *de = getenv("SQZ_XDW_DIRECT");
    if (sqz_cpu_has_avx512() && !(de && de[0] == '0')) {
        sqz_dw_plane pa;
        memset(&pa, 0, sizeof pa);
        pa.k = d->k;
        pa.stride = d->stride;
        pa.H = (int)d->H;
        pa.W = (int)d->W;
        pa.OH = (int)d->OH;
        pa.OW = (int)d->OW;
        pa.pt = d->pt;
        pa.pl = d->pl;
        if (d->stride == 1 && sqz_dw_s1_covers_avx512(&pa)) x->direct = 1;
        /* 3x3 stride 2: rows of more than 32 outputs, the wide-row path
         * (SQZ_DW_S2W=0: the row kernel, as common/dwconv.c) */
        const char *we = getenv("SQZ_DW_S2W");
        const int s2w = d->k == 3 && d->OW > 32 && !(we && we[0] == '0');
        if (d->stride == 2 && (d->k == 5 || s2w) && sqz_dw_s2_covers_avx512(&pa)) x->direct = 2;
        if (x->direct) x->pw = 0;
    }
#endif
    x->ring_floats = x->pw ? round16((size_t)(d->k + d->stride) * (size_t)x->pw) : 0;
    x->zero_floats = round16((size_t)(x->pw > d->W ? x->pw : d->W));
    sqz_gemm_args g;
    expand_args(x, NULL, 0, cap, NULL, cap * d->W, &g);
    x->gemm_floats =
        x->c1 ? 0 : round16((sqz_gemm_scratch_bytes(&g) + sizeof(float) - 1) / sizeof(float));
    x->part_floats = x->buf_floats + x->zero_floats + x->ring_floats + x->gemm_floats;
    *scratch_bytes = x->part_floats * sizeof(float) * (size_t)x->parts;
    *out = x;
    return 0;
}

void sqz_xdw_free(void *p) {
    sqz_xdw *x = p;
    if (!x) return;
    free(x->w1p);
    free(x);
}

uint64_t sqz_xdw_macs(const sqz_xdw *x) {
    const sqz_xdw_desc *d = &x->d;
    return (uint64_t)d->M * (uint64_t)d->K * (uint64_t)d->H * (uint64_t)d->W +
           (uint64_t)d->M * (uint64_t)d->OH * (uint64_t)d->OW * (uint64_t)(d->k * d->k);
}

typedef struct xdw_job {
    const sqz_xdw *x;
    const float *X;
    float *Y;
    float *scratch;
} xdw_job;

/* Output rows [ob, oe) of every channel, band by band. */
static void xdw_part(void *arg, int t) {
    const xdw_job *j = arg;
    const sqz_xdw *x = j->x;
    const sqz_xdw_desc *d = &x->d;
    const int64_t OH = d->OH, W = d->W, H = d->H, s = d->stride, k = d->k;
    const int64_t ob = OH * t / x->parts, oe = OH * (t + 1) / x->parts;
    float *buf = j->scratch + x->part_floats * (size_t)t;
    float *zero = buf + x->buf_floats;
    float *ring = zero + x->zero_floats;
    float *gs = ring + x->ring_floats;
    memset(zero, 0, (x->zero_floats + x->ring_floats) * sizeof(float));
    const int64_t ldc = x->cap * W; /* floats between channels in the buffer */
    sqz_dw_row a;
    memset(&a, 0, sizeof a);
    a.k = d->k;
    a.stride = d->stride;
    a.in_w = (int)W;
    a.out_w = (int)d->OW;
    a.pad_l = d->pl;
    a.ox_lo = x->ox_lo;
    a.ox_hi = x->ox_hi;
    if (x->pw) {
        a.in_w = (int)x->pw;
        a.pad_l = 0;
        a.ox_lo = 0;
        a.ox_hi = (int)d->OW;
        a.padded = 1;
    }
    const int64_t nr = k + s; /* ring slots */
    a.act = d->act2;
    a.alpha = d->alpha2;
    a.beta = d->beta2;
    /* input rows [h0, h1) are in the buffer, row r at buf + (r - h0) * W */
    int64_t h0 = 0, h1 = 0;
    const float *rows[5 + 2];
    for (int64_t b0 = ob; b0 < oe; b0 += x->band) {
        const int64_t b1 = b0 + x->band < oe ? b0 + x->band : oe;
        int64_t i0 = b0 * s - d->pt, i1 = (b1 - 1) * s - d->pt + k;
        if (i0 < 0) i0 = 0;
        if (i1 > H) i1 = H;
        if (i1 < i0) i1 = i0;
        /* the rows [i0, keep1) this band shares with the last one move to the
         * top of the buffer (bands go down: h0 <= i0) */
        int64_t keep1 = i0;
        if (h0 <= i0 && h1 > i0) {
            keep1 = h1 < i1 ? h1 : i1;
            if (i0 != h0)
                for (int64_t m = 0; m < d->M; m++)
                    memmove(buf + m * ldc, buf + m * ldc + (i0 - h0) * W,
                            (size_t)((keep1 - i0) * W) * sizeof(float));
        }
        if (i1 > keep1 && x->c1) {
            sqz_c1x1 c;
            c.K = d->K;
            c.M = d->M;
            c.in_ld = H * W;
            c.out_ld = ldc;
            c.w = x->w1p;
            c.act = d->act1;
            c.stream = 0; /* the band stays in L2 */
            c.alpha = d->alpha1;
            c.beta = d->beta1;
            x->c1(&c, j->X + keep1 * W, buf + (keep1 - i0) * W, 0, (i1 - keep1) * W);
        } else if (i1 > keep1) {
            sqz_gemm_args g;
            expand_args(x, j->X, keep1, i1, buf + (keep1 - i0) * W, ldc, &g);
            sqz_gemm_range(&g, 0, d->M, 0, g.N, gs);
        }
        h0 = i0;
        h1 = i1;
#if defined(__x86_64__)
        if (x->direct) {
            /* the buffer's rows as a plane: row 0 is input row h0, rows past
             * it (and before it: top padding, or rows the band does not
             * read) are outside */
            sqz_dw_plane pa;
            memset(&pa, 0, sizeof pa);
            pa.k = d->k;
            pa.stride = d->stride;
            pa.H = (int)(h1 - h0);
            pa.W = (int)W;
            pa.OH = (int)OH;
            pa.OW = (int)d->OW;
            pa.pt = (int)(d->pt + h0);
            pa.pl = d->pl;
            pa.act = d->act2;
            pa.alpha = d->alpha2;
            pa.beta = d->beta2;
            pa.oy0 = (int)b0;
            pa.oy1 = (int)b1;
            for (int64_t m = 0; m < d->M; m++) {
                pa.w = d->wd + m * k * k;
                pa.bias = d->bd ? d->bd[m] : 0.0f;
                float *ym = j->Y + (size_t)m * (size_t)(OH * d->OW);
                if (x->direct == 1)
                    sqz_dw_s1_run_avx512(&pa, buf + m * ldc, ym);
                else
                    sqz_dw_s2_run_avx512(&pa, buf + m * ldc, ym);
            }
            continue;
        }
#endif
        for (int64_t m = 0; m < d->M; m++) {
            const float *bm = buf + m * ldc;
            a.w = d->wd + m * k * k;
            a.bias = d->bd ? d->bd[m] : 0.0f;
            float *ym = j->Y + (size_t)m * (size_t)(OH * d->OW);
            int64_t next = i0; /* rows below next are in the ring (padded rows) */
            for (int64_t oy = b0; oy < b1; oy += 2) {
                const int two = oy + 1 < b1;
                const int64_t iy0 = oy * s - d->pt;
                for (int64_t r = 0; r < (two ? k + s : k); r++) {
                    int64_t iy = iy0 + r;
                    if (iy < 0 || iy >= H) {
                        rows[r] = zero;
                    } else if (x->pw) {
                        float *slot = ring + (iy % nr) * x->pw;
                        if (iy >= next) {
                            memcpy(slot + d->pl, bm + (iy - h0) * W, (size_t)W * sizeof(float));
                            next = iy + 1;
                        }
                        rows[r] = slot;
                    } else {
                        rows[r] = bm + (iy - h0) * W;
                    }
                }
                float *y0 = ym + oy * d->OW;
                x->fn(&a, rows, y0, two ? y0 + d->OW : NULL);
            }
        }
    }
}

void sqz_xdw_run(const sqz_xdw *x, const float *X, float *Y, void *scratch) {
    xdw_job j = {x, X, Y, scratch};
    sqz_par_for(x->parts, x->parts, xdw_part, &j);
}
