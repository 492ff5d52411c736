/* pool_fast.c - MaxPool / AveragePool (2-D, separable) and GlobalAveragePool.
 * See fastops.h.
 *
 * A pooling window is the product of a row range and a column range, so per
 * output row the kh input rows are first reduced element-wise into one row
 * (contiguous, vectorized), then each output takes its kw columns of that
 * row. Max keeps the reference's NaN rule (a NaN in the window wins). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastops.h"
#include "par.h"
#include "ref/ref.h"
#if defined(__x86_64__)
#include "cpu.h"
#endif

typedef struct fpool {
    int is_max, count_include_pad;
    int max3s2;     /* MaxPool 3x3 stride 2 and an AVX2 CPU: the x86 plane kernel */
    int avx2;       /* an AVX2 CPU (the 2x2 stride 2 plane kernel) */
    int avx512;     /* an AVX-512 CPU (the 3x3 stride 2 kernel on 16 lanes) */
    int rows_split; /* threads split output rows (pool_run), not planes */
    int64_t NC, IH, IW, OH, OW, kh, kw, sh, sw, ph, pw, pe_h, pe_w;
} fpool;

/* floats of one scratch row (a multiple of 16: 64-byte aligned rows) */
static size_t row_stride(const fpool *p) {
    return (size_t)((p->IW + 15) / 16 * 16);
}

static int ref_validate(sqz_op_ctx *ctx, const sqz_op_impl *ref) {
    int rc = ref->prepare(ctx);
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    ctx->scratch_bytes = 0;
    return rc;
}

static int pool_prepare(sqz_op_ctx *ctx, int is_max) {
    int rc = ref_validate(ctx, is_max ? &sqz_ref_maxpool : &sqz_ref_avgpool);
    if (rc) return rc;
    const sqz_shape *x = &ctx->in_shape[0];
    if (x->ndim != 4) return 1;
    ref_geom g;
    if (ref_geom_prepare(ctx, &g, 2, x->dims + 2, NULL, 1)) return -1;
    if (g.d[1] != 1 || g.d[2] != 1) return 1;
    fpool p;
    memset(&p, 0, sizeof p);
    p.is_max = is_max;
    p.count_include_pad = !is_max && sqz_attr_int(ctx->node, "count_include_pad", 0) == 1;
    p.NC = x->dims[0] * x->dims[1];
    p.IH = g.in[1];
    p.IW = g.in[2];
    p.OH = g.out[1];
    p.OW = g.out[2];
    p.kh = g.k[1];
    p.kw = g.k[2];
    p.sh = g.s[1];
    p.sw = g.s[2];
    p.ph = g.pb[1];
    p.pw = g.pb[2];
    p.pe_h = g.pe[1];
    p.pe_w = g.pe[2];
    if (p.NC <= 0 || p.OH <= 0 || p.OW <= 0 || p.IW <= 0) return 1;
#if defined(__x86_64__)
    /* every window keeps a real column: the plane kernel's duplicate rule */
    p.max3s2 = is_max && p.kh == 3 && p.kw == 3 && p.sh == 2 && p.sw == 2 && p.pw < 3 &&
               2 * (p.OW - 1) - p.pw < p.IW && sqz_cpu_has_avx2_fma();
    p.avx2 = sqz_cpu_has_avx2_fma();
    p.avx512 = sqz_cpu_has_avx512();
#endif
    const char *se = getenv("SQZ_POOL_SPLIT");
    p.rows_split = !(se && se[0] == 'p');
    fpool *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    *pp = p;
    ctx->params = pp;
    /* two rows per thread: the reduced input row and its window sweep */
    int nt = ctx->num_threads > 1 ? ctx->num_threads : 1;
    ctx->scratch_bytes = (size_t)nt * 2 * row_stride(pp) * sizeof(float);
    return 0;
}

static int maxpool_prepare(sqz_op_ctx *ctx) {
    return pool_prepare(ctx, 1);
}
static int avgpool_prepare(sqz_op_ctx *ctx) {
    return pool_prepare(ctx, 0);
}

/* Number of taps start + t (t in [0, k)) inside [lo, hi). */
static int64_t taps_in(int64_t start, int64_t k, int64_t lo, int64_t hi) {
    int64_t a = start > lo ? start : lo, b = start + k < hi ? start + k : hi;
    return b > a ? b - a : 0;
}

/* max keeping the reference's NaN rule: a NaN operand v wins, a NaN m stays
 * (v > NaN is false); branch-free so the loops vectorize. */
static inline float max_nan(float m, float v) {
    return ((v > m) | (v != v)) ? v : m;
}

/* One output row from the reduced input row `row`: window op over kw
 * columns. Interior outputs read hw[w0] (the op over row[w0 .. w0+kw),
 * computed for every w0 in one vectorized sweep); the few edge outputs whose
 * window leaves [0, IW) take a short loop. */
static void pool_cols(const fpool *p, const float *row, float *hw, float *yr, int64_t nrows,
                      int64_t prow) {
    const int64_t IW = p->IW, kw = p->kw, nw = IW - kw + 1;
    if (nw > 0) {
        memcpy(hw, row, (size_t)nw * sizeof(float));
        for (int64_t t = 1; t < kw; t++) {
            const float *r = row + t;
            if (p->is_max)
                for (int64_t i = 0; i < nw; i++) hw[i] = max_nan(hw[i], r[i]);
            else
                for (int64_t i = 0; i < nw; i++) hw[i] += r[i];
        }
    }
    /* interior outputs [lo, hi): the window is inside [0, IW), a plain
     * strided pick (branch-free, the hot loop); the rest take edge code */
    const int64_t sw = p->sw, pw = p->pw;
    int64_t lo = (pw + sw - 1) / sw, hi = nw > 0 ? (nw - 1 + pw) / sw + 1 : 0;
    if (lo > p->OW) lo = p->OW;
    if (hi > p->OW) hi = p->OW;
    if (hi < lo) hi = lo;
    if (p->is_max) {
        for (int64_t ow = lo; ow < hi; ow++) yr[ow] = hw[ow * sw - pw];
    } else {
        const float cnt = (float)(p->count_include_pad ? prow * kw : nrows * kw);
        for (int64_t ow = lo; ow < hi; ow++) yr[ow] = hw[ow * sw - pw] / cnt;
    }
    for (int64_t ow = 0; ow < p->OW; ow++) {
        if (ow == lo) ow = hi;
        if (ow >= p->OW) break;
        int64_t w0 = ow * sw - pw;
        int64_t c0 = w0 < 0 ? 0 : w0, c1 = w0 + kw < IW ? w0 + kw : IW;
        float v;
        if (p->is_max) {
            v = -INFINITY;
            for (int64_t c = c0; c < c1; c++) v = max_nan(v, row[c]);
        } else {
            v = 0.0f;
            for (int64_t c = c0; c < c1; c++) v += row[c];
            int64_t cnt = p->count_include_pad ? prow * taps_in(w0, kw, -pw, IW + p->pe_w)
                                               : nrows * (c1 > c0 ? c1 - c0 : 0);
            v = cnt ? v / (float)cnt : 0.0f;
        }
        yr[ow] = v;
    }
}

/* 2x2 stride-2 max, no padding, every window inside the input (LeNet-style):
 * each output of rows [ob, oe) straight from its two input rows. */
static void max2x2_rows(const fpool *p, const float *x, float *y, int64_t ob, int64_t oe) {
    for (int64_t oh = ob; oh < oe; oh++) {
        const float *r0 = x + 2 * oh * p->IW, *r1 = r0 + p->IW;
        float *yr = y + oh * p->OW;
        for (int64_t ow = 0; ow < p->OW; ow++) {
            int64_t c = 2 * ow;
            yr[ow] = max_nan(max_nan(r0[c], r0[c + 1]), max_nan(r1[c], r1[c + 1]));
        }
    }
}

/* Output rows [ob, oe) of one plane; `row` and `hw` hold IW floats each. */
static void pool_plane_rows(const fpool *p, const float *x, float *y, float *row, float *hw,
                            int64_t ob, int64_t oe) {
#if defined(__x86_64__)
    if (p->max3s2) {
        /* the plane kernels on the input rows the band reads: rows from
         * 2 * ob - ph, top padding only for the first band */
        int64_t s = ob == 0 ? 0 : 2 * ob - p->ph;
        const float *xs = x + s * p->IW;
        float *ys = y + ob * p->OW;
        int64_t ph = ob == 0 ? p->ph : 0;
        if (p->avx512 &&
            sqz_x86_maxpool3s2_avx512(xs, p->IH - s, p->IW, ys, oe - ob, p->OW, ph, p->pw))
            return;
        if (!p->avx512 &&
            sqz_x86_maxpool3s2_avx2(xs, p->IH - s, p->IW, ys, oe - ob, p->OW, ph, p->pw))
            return;
    }
#endif
    if (p->is_max && p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 &&
        p->pw == 0 && 2 * p->OH <= p->IH && 2 * p->OW <= p->IW) {
#if defined(__x86_64__)
        if (p->avx2 &&
            sqz_x86_maxpool2s2_avx2(x + 2 * ob * p->IW, p->IW, y + ob * p->OW, oe - ob, p->OW))
            return;
#endif
        max2x2_rows(p, x, y, ob, oe);
        return;
    }
    for (int64_t oh = ob; oh < oe; oh++) {
        int64_t h0 = oh * p->sh - p->ph;
        int64_t r0 = h0 < 0 ? 0 : h0, r1 = h0 + p->kh < p->IH ? h0 + p->kh : p->IH;
        float *yr = y + oh * p->OW;
        if (r1 <= r0) { /* window rows all padding */
            for (int64_t ow = 0; ow < p->OW; ow++) yr[ow] = p->is_max ? -INFINITY : 0.0f;
            continue;
        }
        memcpy(row, x + r0 * p->IW, (size_t)p->IW * sizeof(float));
        for (int64_t r = r0 + 1; r < r1; r++) {
            const float *xr = x + r * p->IW;
            if (p->is_max)
                for (int64_t i = 0; i < p->IW; i++) row[i] = max_nan(row[i], xr[i]);
            else
                for (int64_t i = 0; i < p->IW; i++) row[i] += xr[i];
        }
        pool_cols(p, row, hw, yr, r1 - r0, taps_in(h0, p->kh, -p->ph, p->IH + p->pe_h));
    }
}

static void pool_plane(const fpool *p, const float *x, float *y, float *row, float *hw) {
    pool_plane_rows(p, x, y, row, hw, 0, p->OH);
}

/* Planes [b, e) of one thread (its own reduced row). */
static void pool_planes(const sqz_op_ctx *ctx, int64_t b, int64_t e, float *row) {
    const fpool *p = ctx->params;
    const int64_t in_sp = p->IH * p->IW, out_sp = p->OH * p->OW;
    for (int64_t nc = b; nc < e; nc++)
        pool_plane(p, ctx->in_data[0] + nc * in_sp, ctx->out_data[0] + nc * out_sp, row,
                   row + row_stride(p));
}

typedef struct pool_job {
    const sqz_op_ctx *ctx;
    const fpool *p;
    float *rows;
    size_t row_floats;
    int nt;
} pool_job;

/* Part t: output rows [OH t / nt, OH (t + 1) / nt) of every plane */
static void pool_rows_part(void *arg, int t) {
    const pool_job *j = arg;
    const fpool *p = j->p;
    const int64_t in_sp = p->IH * p->IW, out_sp = p->OH * p->OW;
    int64_t ob = p->OH * t / j->nt, oe = p->OH * (t + 1) / j->nt;
    float *row = j->rows + (size_t)t * j->row_floats;
    if (oe <= ob) return;
    for (int64_t nc = 0; nc < p->NC; nc++)
        pool_plane_rows(p, j->ctx->in_data[0] + nc * in_sp, j->ctx->out_data[0] + nc * out_sp, row,
                        row + row_stride(p), ob, oe);
}

static void pool_part(void *arg, int t) {
    const pool_job *j = arg;
    pool_planes(j->ctx, j->p->NC * t / j->nt, j->p->NC * (t + 1) / j->nt,
                j->rows + (size_t)t * j->row_floats);
}

/* Threads split the output rows (each thread every plane's band of rows)
 * when each gets POOL_ROWS_MIN rows or more, else the planes. Rows: the conv before a
 * pooling layer mostly splits its output by rows too (gemm_ops.c wide_split,
 * the GEMM's pixel ranges), so each core pools what it wrote, and the 1x1
 * conv after it (pixel ranges) reads what it pooled. SqueezeNet 1.1 at 2
 * threads, same run (quiet): its 111x111 MaxPool 103 -> 88 us, the squeeze
 * conv after it 52 -> 40 us, the model 3.01-3.07 -> 2.95-2.98 ms;
 * ShuffleNetV2 / ResNet-18 within noise. SQZ_POOL_SPLIT=planes: the plane
 * split (A/B). */
/* below this many output rows a thread, the planes are split: each band
 * call costs the plane kernel's setup again (SqueezeNet's 27x27 -> 13x13
 * MaxPool, 256 planes, 2 threads: 31 us by planes, 54 us by rows) */
#define POOL_ROWS_MIN 16

static void pool_run(const sqz_op_ctx *ctx) {
    const fpool *p = ctx->params;
    float *rows = ctx->scratch;
    int nt = ctx->num_threads > 1 ? ctx->num_threads : 1;
    if (nt <= 1 || p->NC * p->IH * p->IW < 32768) {
        pool_planes(ctx, 0, p->NC, rows);
        return;
    }
    pool_job j = {ctx, p, rows, 2 * row_stride(p), nt};
    if (p->rows_split && p->OH >= POOL_ROWS_MIN * nt) {
        sqz_par_for(nt, nt, pool_rows_part, &j);
        return;
    }
    if (j.nt > p->NC) j.nt = (int)p->NC;
    sqz_par_for(j.nt, j.nt, pool_part, &j);
}

const sqz_op_impl sqz_fast_maxpool = {maxpool_prepare, pool_run, free, NULL};
const sqz_op_impl sqz_fast_avgpool = {avgpool_prepare, pool_run, free, NULL};

/* ------------------------------------------------------ GlobalAveragePool */

static int gap_prepare(sqz_op_ctx *ctx) {
    int rc = ref_validate(ctx, &sqz_ref_global_avgpool);
    if (rc) return rc;
    const sqz_shape *x = &ctx->in_shape[0];
    if (ref_prod(x->dims, 2, x->ndim) <= 0) return 1; /* empty planes: the reference's NaN */
    return 0;
}

/* GlobalAveragePool thread split (gap_run): from GAP_SPLIT_MIN inputs, in
 * one part per thread below GAP_SPLIT_PARTS */
#define GAP_SPLIT_MIN 2048
#define GAP_SPLIT_PARTS 16384

/* Mean of n > 0 floats: 16 independent float sums (vectorizable, no long
 * dependency chain), combined in double. */
static float plane_mean(const float *x, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += x[i + j];
    double s = 0.0;
    for (int j = 0; j < 16; j++) s += acc[j];
    for (; i < n; i++) s += x[i];
    return (float)(s / (double)n);
}

/* planes [n*t/nt, n*(t+1)/nt) of a plane_mean loop */
typedef struct mean_job {
    const float *X;
    float *Y;
    int64_t n, sp;
    int nt;
} mean_job;

static void mean_part(void *arg, int t) {
    const mean_job *j = arg;
    for (int64_t i = j->n * t / j->nt; i < j->n * (t + 1) / j->nt; i++)
        j->Y[i] = plane_mean(j->X + i * j->sp, j->sp);
}

static void gap_run(const sqz_op_ctx *ctx) {
    const sqz_shape *x = &ctx->in_shape[0];
    int64_t nc = x->dims[0] * x->dims[1], sp = ref_prod(x->dims, 2, x->ndim);
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    int nt = ctx->num_threads > 1 ? ctx->num_threads : 1;
    /* split from GAP_SPLIT_MIN inputs: the planes come from a split conv,
     * half in the other core's cache (MobileNetV2's 1280x7x7 pool at 2
     * threads: 16.4 us unsplit, 7.4 us split); below GAP_SPLIT_PARTS inputs
     * one part per thread, the helper taking the back planes (the ones a
     * channel-split conv wrote on its core) */
    if (nt > 1 && nc >= 4 * nt && nc * sp >= GAP_SPLIT_MIN) {
        int parts = nc * sp < GAP_SPLIT_PARTS ? nt : 4 * nt;
        mean_job j = {X, Y, nc, sp, parts};
        sqz_par_for(nt, parts, mean_part, &j);
        return;
    }
    for (int64_t i = 0; i < nc; i++) Y[i] = plane_mean(X + i * sp, sp);
}

const sqz_op_impl sqz_fast_global_avgpool = {gap_prepare, gap_run, NULL, NULL};

/* ------------------------------------------------------------- ReduceMean */

/* ReduceMean over trailing axes {k, .., r-1} (MNASNet / ShuffleNet's global
 * pool): the GlobalAveragePool loop over outer blocks. */
typedef struct frmean {
    int64_t outer, inner;
} frmean;

static int rmean_prepare(sqz_op_ctx *ctx) {
    int rc = ref_validate(ctx, &sqz_ref_reduce_mean);
    if (rc) return rc;
    const sqz_shape *x = &ctx->in_shape[0];
    const int64_t *av;
    int na = sqz_attr_ints(ctx->node, "axes", &av), r = x->ndim;
    if (na < 1 || na > r) return 1; /* default / empty axes: the reference */
    unsigned red = 0;
    for (int i = 0; i < na; i++) {
        int64_t a = av[i] < 0 ? av[i] + r : av[i];
        if (a < 0 || a >= r) return 1;
        red |= 1u << a;
    }
    int k = r - na;
    if (red != ((1u << r) - 1u) - ((1u << k) - 1u)) return 1; /* not the trailing axes */
    frmean p = {ref_prod(x->dims, 0, k), ref_prod(x->dims, k, r)};
    if (p.inner <= 0 || p.outer <= 0) return 1;
    frmean *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "ReduceMean: out of memory");
    *pp = p;
    ctx->params = pp;
    return 0;
}

static void rmean_run(const sqz_op_ctx *ctx) {
    const frmean *p = ctx->params;
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    int nt = ctx->num_threads > 1 ? ctx->num_threads : 1;
    if (nt > 1 && p->outer >= nt && p->outer * p->inner >= 65536) {
        mean_job j = {X, Y, p->outer, p->inner, nt};
        sqz_par_for(nt, nt, mean_part, &j);
        return;
    }
    for (int64_t i = 0; i < p->outer; i++) Y[i] = plane_mean(X + i * p->inner, p->inner);
}

const sqz_op_impl sqz_fast_reduce_mean = {rmean_prepare, rmean_run, free, NULL};
