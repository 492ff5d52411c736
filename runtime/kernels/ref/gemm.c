/* gemm.c - Gemm and MatMul. */
#include <stdlib.h>
#include <string.h>

#include "ref/ref.h"

typedef struct gemm_p {
    int64_t M, N, K;
    int transA, transB;
    float alpha, beta;
    int has_c;
    int64_t c_rs, c_cs; /* C strides over [M, N] (0 where broadcast) */
    ref_act act;
} gemm_p;

static int gemm_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 2, 3, 1)) return -1;
    const sqz_shape *a = &ctx->in_shape[0], *b = &ctx->in_shape[1];
    if (a->ndim != 2 || b->ndim != 2)
        return sqz_op_fail(ctx, "Gemm: A and B must be 2-D (got ranks %d, %d)", a->ndim, b->ndim);
    gemm_p p;
    memset(&p, 0, sizeof(p));
    int64_t ta = sqz_attr_int(ctx->node, "transA", 0), tb = sqz_attr_int(ctx->node, "transB", 0);
    if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1))
        return sqz_op_fail(ctx, "Gemm: transA=%lld / transB=%lld invalid", (long long)ta,
                           (long long)tb);
    p.transA = (int)ta;
    p.transB = (int)tb;
    p.alpha = sqz_attr_float(ctx->node, "alpha", 1.0f);
    p.beta = sqz_attr_float(ctx->node, "beta", 1.0f);
    p.M = ta ? a->dims[1] : a->dims[0];
    p.K = ta ? a->dims[0] : a->dims[1];
    int64_t kb = tb ? b->dims[1] : b->dims[0];
    p.N = tb ? b->dims[0] : b->dims[1];
    if (kb != p.K)
        return sqz_op_fail(ctx, "Gemm: inner dims differ (A gives K=%lld, B gives K=%lld)",
                           (long long)p.K, (long long)kb);
    p.has_c = ref_has_input(ctx, 2);
    if (p.has_c) {
        const sqz_shape *c = &ctx->in_shape[2];
        int64_t cm = 1, cn = 1;
        if (c->ndim > 2) return sqz_op_fail(ctx, "Gemm: C rank %d > 2", c->ndim);
        if (c->ndim == 2) {
            cm = c->dims[0];
            cn = c->dims[1];
        } else if (c->ndim == 1) {
            cn = c->dims[0];
        }
        if ((cm != 1 && cm != p.M) || (cn != 1 && cn != p.N))
            return sqz_op_fail(ctx, "Gemm: C [%lld, %lld] does not broadcast to [%lld, %lld]",
                               (long long)cm, (long long)cn, (long long)p.M, (long long)p.N);
        p.c_cs = cn == 1 ? 0 : 1;
        p.c_rs = cm == 1 ? 0 : cn;
    }
    if (ref_act_prepare(ctx, &p.act)) return -1;
    ctx->out_shape[0].ndim = 2;
    ctx->out_shape[0].dims[0] = p.M;
    ctx->out_shape[0].dims[1] = p.N;
    gemm_p *pp = malloc(sizeof(*pp));
    if (!pp) return sqz_op_fail(ctx, "Gemm: out of memory");
    *pp = p;
    ctx->params = pp;
    return 0;
}

static void gemm_run(const sqz_op_ctx *ctx) {
    const gemm_p *p = ctx->params;
    const float *A = ctx->in_data[0], *B = ctx->in_data[1];
    const float *C = p->has_c ? ctx->in_data[2] : NULL;
    float *Y = ctx->out_data[0];
    int nt = ctx->num_threads > 0 ? ctx->num_threads : 1;
    (void)nt;
    int64_t M = p->M, N = p->N, K = p->K;
#if defined(SQZ_HAVE_OPENMP)
#pragma omp parallel for num_threads(nt) if (nt > 1 && M > 1) schedule(static)
#endif
    for (int64_t m = 0; m < M; m++) {
        float *y = Y + m * N;
        if (p->transB) {
            for (int64_t n = 0; n < N; n++) {
                const float *bn = B + n * K;
                float acc = 0.0f;
                if (p->transA)
                    for (int64_t k = 0; k < K; k++) acc += A[k * M + m] * bn[k];
                else
                    for (int64_t k = 0; k < K; k++) acc += A[m * K + k] * bn[k];
                y[n] = acc;
            }
        } else {
            for (int64_t n = 0; n < N; n++) y[n] = 0.0f;
            for (int64_t k = 0; k < K; k++) {
                float av = p->transA ? A[k * M + m] : A[m * K + k];
                const float *bk = B + k * N;
                for (int64_t n = 0; n < N; n++) y[n] += av * bk[n];
            }
        }
        if (p->alpha != 1.0f)
            for (int64_t n = 0; n < N; n++) y[n] *= p->alpha;
        if (C && p->beta != 0.0f) {
            const float *cr = C + m * p->c_rs;
            for (int64_t n = 0; n < N; n++) y[n] += p->beta * cr[n * p->c_cs];
        }
        ref_act_apply(&p->act, y, (size_t)N);
    }
}

static uint64_t gemm_macs(const sqz_op_ctx *ctx) {
    const gemm_p *p = ctx->params;
    return p ? (uint64_t)(p->M * p->N * p->K) : 0;
}

const sqz_op_impl sqz_ref_gemm = {gemm_prepare, gemm_run, free, gemm_macs};

/* ----------------------------------------------------------------- MatMul */

typedef struct matmul_p {
    int64_t M, N, K, batch;
    int bnd;                     /* batch rank */
    int64_t bdims[SQZ_MAX_DIMS]; /* broadcast batch dims */
    int64_t ast[SQZ_MAX_DIMS];   /* A matrix index stride per batch dim (0 = broadcast) */
    int64_t bst[SQZ_MAX_DIMS];
    ref_act act;
} matmul_p;

static int matmul_prepare(sqz_op_ctx *ctx) {
    if (ref_check_io(ctx, 2, 2, 1)) return -1;
    const sqz_shape *a = &ctx->in_shape[0], *b = &ctx->in_shape[1];
    if (a->ndim < 1 || b->ndim < 1)
        return sqz_op_fail(ctx, "MatMul: scalar operands are not allowed");
    matmul_p p;
    memset(&p, 0, sizeof(p));
    int a1 = a->ndim == 1, b1 = b->ndim == 1;
    p.M = a1 ? 1 : a->dims[a->ndim - 2];
    p.K = a->dims[a->ndim - 1];
    int64_t kb = b1 ? b->dims[0] : b->dims[b->ndim - 2];
    p.N = b1 ? 1 : b->dims[b->ndim - 1];
    if (kb != p.K)
        return sqz_op_fail(ctx, "MatMul: inner dims differ (%lld vs %lld)", (long long)p.K,
                           (long long)kb);
    int abn = a1 ? 0 : a->ndim - 2, bbn = b1 ? 0 : b->ndim - 2;
    p.bnd = abn > bbn ? abn : bbn;
    int out_nd = p.bnd + (a1 ? 0 : 1) + (b1 ? 0 : 1);
    if (out_nd > SQZ_MAX_DIMS) return sqz_op_fail(ctx, "MatMul: output rank too large");
    /* matrix counts per batch dim, right-aligned */
    int64_t acc_a = 1, acc_b = 1;
    p.batch = 1;
    for (int i = p.bnd - 1; i >= 0; i--) {
        int ia = i - (p.bnd - abn), ib = i - (p.bnd - bbn);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return sqz_op_fail(ctx, "MatMul: batch dims %lld and %lld do not broadcast",
                               (long long)da, (long long)db);
        p.bdims[i] = da == 1 ? db : da;
        p.ast[i] = da == 1 ? 0 : acc_a;
        p.bst[i] = db == 1 ? 0 : acc_b;
        acc_a *= da;
        acc_b *= db;
        p.batch *= p.bdims[i];
    }
    if (ref_act_prepare(ctx, &p.act)) return -1;
    sqz_shape *y = &ctx->out_shape[0];
    y->ndim = out_nd;
    for (int i = 0; i < p.bnd; i++) y->dims[i] = p.bdims[i];
    int j = p.bnd;
    if (!a1) y->dims[j++] = p.M;
    if (!b1) y->dims[j++] = p.N;
    matmul_p *pp = malloc(sizeof(*pp));
    if (!pp) return sqz_op_fail(ctx, "MatMul: out of memory");
    *pp = p;
    ctx->params = pp;
    return 0;
}

static void matmul_run(const sqz_op_ctx *ctx) {
    const matmul_p *p = ctx->params;
    const float *A = ctx->in_data[0], *B = ctx->in_data[1];
    float *Y = ctx->out_data[0];
    int64_t M = p->M, N = p->N, K = p->K;
    int nt = ctx->num_threads > 0 ? ctx->num_threads : 1;
    (void)nt;
    int64_t rows = p->batch * M;
#if defined(SQZ_HAVE_OPENMP)
#pragma omp parallel for num_threads(nt) if (nt > 1 && rows > 1) schedule(static)
#endif
    for (int64_t r = 0; r < rows; r++) {
        int64_t bi = r / M, m = r % M, rem = bi, ai = 0, bj = 0;
        for (int d = p->bnd - 1; d >= 0; d--) {
            int64_t c = rem % p->bdims[d];
            rem /= p->bdims[d];
            ai += c * p->ast[d];
            bj += c * p->bst[d];
        }
        const float *a = A + ai * M * K + m * K;
        const float *b = B + bj * K * N;
        float *y = Y + r * N;
        for (int64_t n = 0; n < N; n++) y[n] = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            float av = a[k];
            const float *bk = b + k * N;
            for (int64_t n = 0; n < N; n++) y[n] += av * bk[n];
        }
        ref_act_apply(&p->act, y, (size_t)N);
    }
}

static uint64_t matmul_macs(const sqz_op_ctx *ctx) {
    const matmul_p *p = ctx->params;
    return p ? (uint64_t)(p->batch * p->M * p->N * p->K) : 0;
}

const sqz_op_impl sqz_ref_matmul = {matmul_prepare, matmul_run, free, matmul_macs};
