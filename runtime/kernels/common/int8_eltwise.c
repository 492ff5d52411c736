/* int8_eltwise.c - fast int8 Mul (QLinearMul) and GlobalAveragePool, bit-
 * identical to ref/int8.c (same integer formulas, exact sums).
 *
 * Mul: the output is cut into rows of `inner` elements where one operand is
 * full and the other is either full too (same shape) or one value per row
 * (a squeeze-excite gate [N, C, 1, 1] times the [N, C, H, W] plane, in
 * either input order); other broadcasts decline to the reference. Rows run
 * on the AVX-512 row kernel (int8_avx512.c) or a scalar loop that is the
 * reference's formula on the same values.
 * GlobalAveragePool: int32 sums (exact while sp * 128 < 2^31), then the
 * reference's requantization. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "int8.h"
#include "int8_simd.h"

/* rows below this many output elements in all run on one thread (2^14:
 * EfficientNet's squeeze-excite scaling Muls of 1152 x 7 x 7) */
#define ELT_MT_MIN ((int64_t)1 << 14)
/* gate rows from this length run as a 256-entry table built per row */
#define MUL_LUT_MIN 512

typedef struct mul_p {
    int64_t rows, inner, total; /* the last row may be short (same-shape operands) */
    int full_b;                 /* 1: both operands full; 0: operand `gate` has one value per row */
    int gate;                   /* input index of the per-row operand (full_b == 0) */
    int32_t zp_a, zp_b, zp_y, lo, hi;
    sqz_rq rq;
    int simd;
} mul_p;

/* Right-aligned dims of s within an output of rank nd. */
static int64_t dim_of(const sqz_shape *s, int nd, int d) {
    int k = d - (nd - s->ndim);
    return k >= 0 ? s->dims[k] : 1;
}

static int mul_prepare(sqz_op_ctx *ctx) {
    const sqz_op_impl *ref = sqz_ref_op_int8(SQZ_OP_MUL);
    int rc = ref->prepare(ctx); /* validation, output shape */
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    if (rc != 0) return rc;
    mul_p p;
    memset(&p, 0, sizeof p);
    float sa, sb, sy;
    if (sqz_i8_in_params(ctx, 0, &sa, &p.zp_a) || sqz_i8_in_params(ctx, 1, &sb, &p.zp_b) ||
        sqz_i8_out_params(ctx, 0, &sy, &p.zp_y) || sqz_i8_act_bounds(ctx, sy, p.zp_y, &p.lo, &p.hi))
        return -1;
    if (sqz_rq_make((double)sa * (double)sb / (double)sy, &p.rq)) return 1;
    const sqz_shape *o = &ctx->out_shape[0];
    int64_t n = sqz_shape_numel(o);
    int64_t na = sqz_shape_numel(&ctx->in_shape[0]), nb = sqz_shape_numel(&ctx->in_shape[1]);
    if (na == n && nb == n) {
        p.full_b = 1; /* rows of 4096 elements: parts for the threads */
        p.inner = 4096;
        p.rows = (n + p.inner - 1) / p.inner;
    } else {
        int full = na == n ? 0 : nb == n ? 1 : -1;
        if (full < 0) return 1;
        p.gate = 1 - full;
        const sqz_shape *g = &ctx->in_shape[p.gate];
        /* gate dims: equal to the output's up to axis k, 1 from k on */
        int k = o->ndim;
        while (k > 0 && dim_of(g, o->ndim, k - 1) == 1) k--;
        for (int d = 0; d < k; d++)
            if (dim_of(g, o->ndim, d) != o->dims[d]) return 1;
        p.rows = ref_prod(o->dims, 0, k);
        p.inner = ref_prod(o->dims, k, o->ndim);
        if (p.rows * p.inner != n) return 1;
    }
    p.total = n;
#if defined(__x86_64__) || defined(_M_X64)
    p.simd = sqz_cpu_has_avx512();
#endif
    mul_p *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "Mul: out of memory");
    *pp = p;
    ctx->params = pp;
    return 0;
}

/* t[v + 128] = rq((v - za) * db) for every int8 v */
static void mul_table(const mul_p *p, int32_t za, int32_t db, int8_t *t) {
#if defined(__x86_64__) || defined(_M_X64)
    if (p->simd) {
        int8_t v[256];
        for (int i = 0; i < 256; i++) v[i] = (int8_t)(i - 128);
        sqz_i8_mul_row_avx512(v, NULL, 256, za, 0, db, sqz_i8_rqv_of(p->rq), p->zp_y, p->lo, p->hi,
                              t);
        return;
    }
#endif
    for (int v = -128; v < 128; v++)
        t[v + 128] = (int8_t)sqz_rq_apply((v - za) * db, p->rq, p->zp_y, p->lo, p->hi);
}

static void mul_rows(const sqz_op_ctx *ctx, int64_t r0, int64_t r1, int part) {
    (void)part;
    const mul_p *p = ctx->params;
    const int8_t *full = (const int8_t *)ctx->in_data[p->full_b ? 0 : 1 - p->gate];
    const int8_t *other = (const int8_t *)ctx->in_data[p->full_b ? 1 : p->gate];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    /* the full operand's zero point and the other's */
    int32_t zf = p->full_b || p->gate == 1 ? p->zp_a : p->zp_b;
    int32_t zo = p->full_b || p->gate == 1 ? p->zp_b : p->zp_a;
    for (int64_t r = r0; r < r1; r++) {
        const int8_t *a = full + r * p->inner;
        const int8_t *b = p->full_b ? other + r * p->inner : NULL;
        int32_t db = p->full_b ? 0 : (int32_t)other[r] - zo;
        int8_t *y = Y + r * p->inner;
        int64_t len = p->total - r * p->inner < p->inner ? p->total - r * p->inner : p->inner;
        if (!b && len >= MUL_LUT_MIN) {
            /* a long row times one value: its 256 possible outputs, then a
             * table lookup (the same formula on the same values) */
            int8_t t[256];
            mul_table(p, zf, db, t);
            sqz_i8_lut256(t, a, y, len);
            continue;
        }
#if defined(__x86_64__) || defined(_M_X64)
        if (p->simd) {
            sqz_i8_mul_row_avx512(a, b, len, zf, zo, db, sqz_i8_rqv_of(p->rq), p->zp_y, p->lo,
                                  p->hi, y);
            continue;
        }
#endif
        for (int64_t i = 0; i < len; i++) {
            int32_t e = b ? (int32_t)b[i] - zo : db;
            y[i] = (int8_t)sqz_rq_apply(((int32_t)a[i] - zf) * e, p->rq, p->zp_y, p->lo, p->hi);
        }
    }
}

static void mul_run(const sqz_op_ctx *ctx) {
    const mul_p *p = ctx->params;
    int nt = p->total >= ELT_MT_MIN
                 ? sqz_i8_split_threads(ctx->num_threads, (double)p->total * SQZ_I8_NS_BYTE)
                 : 1;
    sqz_i8_par_range(ctx, nt, p->rows, mul_rows);
}

const sqz_op_impl sqz_i8_fast_mul = {mul_prepare, mul_run, free, NULL};

/* ------------------------------------------------------ GlobalAveragePool */

typedef struct gap_p {
    int64_t NC, sp;
    int simd;
    int nt;                   /* sqz_i8_gap_chsplit: parts; 0: the size estimate's */
    int64_t cut_mr, cut_nblk; /* and its channel cuts */
    int32_t zp_x, zp_y;
    sqz_rq rq;
} gap_p;

static int gap_prepare(sqz_op_ctx *ctx) {
    const sqz_op_impl *ref = sqz_ref_op_int8(SQZ_OP_GLOBAL_AVGPOOL);
    int rc = ref->prepare(ctx);
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    if (rc != 0) return rc;
    gap_p p;
    float sx, sy;
    if (sqz_i8_in_params(ctx, 0, &sx, &p.zp_x) || sqz_i8_out_params(ctx, 0, &sy, &p.zp_y))
        return -1;
    const sqz_shape *x = &ctx->in_shape[0];
    p.NC = x->dims[0] * x->dims[1];
    p.sp = ref_prod(x->dims, 2, x->ndim);
    if (p.sp < 1 || p.sp >= ((int64_t)1 << 23)) return 1; /* int32 sums exact below */
    if (sqz_rq_make((double)sx / ((double)sy * (double)p.sp), &p.rq)) return 1;
    p.simd = 0;
    p.nt = 0;
    p.cut_mr = p.cut_nblk = 0;
#if defined(__x86_64__) || defined(_M_X64)
    p.simd = sqz_cpu_has_avx512();
#endif
    gap_p *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "GlobalAveragePool: out of memory");
    *pp = p;
    ctx->params = pp;
    return 0;
}

/* planes [c0, c1) */
static void gap_planes(const sqz_op_ctx *ctx, int64_t c0, int64_t c1, int part) {
    (void)part;
    const gap_p *p = ctx->params;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
#if defined(__x86_64__) || defined(_M_X64)
    if (p->simd) { /* 16 planes a step */
        sqz_i8_gap_planes_avx512(X + c0 * p->sp, p->sp, c1 - c0, p->zp_x, p->rq.s, p->zp_y, Y + c0);
        return;
    }
#endif
    for (int64_t i = c0; i < c1; i++) {
        const int8_t *x = X + i * p->sp;
        int32_t s32 = 0; /* |s| <= 128 * sp < 2^30: exact */
        for (int64_t k = 0; k < p->sp; k++) s32 += x[k];
        int64_t acc = (int64_t)s32 - p->sp * p->zp_x;
        Y[i] = (int8_t)sqz_rq_apply(acc, p->rq, p->zp_y, -128, 127);
    }
}

/* planes split over the threads like the other passes (its input comes from
 * a split conv, half in the other core's cache) */
static void gap_run(const sqz_op_ctx *ctx) {
    const gap_p *p = ctx->params;
    if (p->nt > 1) {
        sqz_i8_par_cuts(ctx, p->nt, p->NC, p->cut_mr, p->cut_nblk, gap_planes);
        return;
    }
    int nt = sqz_i8_split_threads(ctx->num_threads, (double)(p->NC * p->sp) * SQZ_I8_NS_BYTE);
    sqz_i8_par_range(ctx, nt, p->NC, gap_planes);
}

const sqz_op_impl sqz_i8_fast_gap = {gap_prepare, gap_run, free, NULL};

void sqz_i8_gap_part(const sqz_op_ctx *ctx, void *scratch, int t, int parts) {
    (void)scratch;
    const gap_p *p = ctx->params;
    int64_t c0, c1;
    sqz_i8_cut(t, parts, p->cut_mr, p->cut_nblk, p->NC, &c0, &c1);
    if (c1 > c0) gap_planes(ctx, c0, c1, t);
}

int sqz_i8_gap_chsplit(const sqz_op_impl *impl, sqz_op_ctx *ctx, int nt, int64_t mr, int64_t nblk) {
    const char *e = getenv("SQZ_I8_PAIRS");
    if (impl != &sqz_i8_fast_gap || !ctx->params || nt < 2 || mr < 1 || nblk < nt ||
        (e && *e == '0'))
        return 0;
    gap_p *p = ctx->params;
    if (ctx->in_shape[0].dims[0] != 1 || nblk * mr < p->NC || (nblk - 1) * mr >= p->NC) return 0;
    p->nt = nt;
    p->cut_mr = mr;
    p->cut_nblk = nblk;
    return 1;
}
