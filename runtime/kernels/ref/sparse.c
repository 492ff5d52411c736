/* sparse.c - CSR weights, the scalar twins of the sparse row kernels, ISA
 * selection, and the sparse 1x1 Conv / Gemm ops (see kernels/sparse.h). */
#include "sparse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "par.h"
#include "ref/ref.h"
#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)
#include "cpu.h"
#endif

int sqz_csr_build(sqz_csr *m, const float *w, int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                  float scale) {
    memset(m, 0, sizeof *m);
    if (rows <= 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX) return -1;
    int64_t nnz = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) nnz += w[r * rs + c * cs] != 0.0f;
    if (nnz > INT32_MAX) return -1;
    m->rowptr = malloc((size_t)(rows + 1) * sizeof *m->rowptr);
    m->col = malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof *m->col);
    m->val = malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof *m->val);
    if (!m->rowptr || !m->col || !m->val) {
        sqz_csr_free(m);
        return -1;
    }
    m->rows = rows;
    m->cols = cols;
    m->nnz = nnz;
    int32_t k = 0;
    for (int64_t r = 0; r < rows; r++) {
        m->rowptr[r] = k;
        for (int64_t c = 0; c < cols; c++) {
            float v = w[r * rs + c * cs];
            if (v == 0.0f) continue;
            m->col[k] = (int32_t)c;
            m->val[k] = v * scale;
            k++;
        }
    }
    m->rowptr[rows] = k;
    return 0;
}

int sqz_csr_build_ell(sqz_csr *m) {
    const int64_t nblk = (m->rows + 15) / 16, nseg = (m->cols + 31) / 32;
    m->nseg = nseg;
    m->ell_step = malloc((size_t)(nblk * nseg + 1) * sizeof *m->ell_step);
    int32_t *cnt = malloc((size_t)nseg * 16 * sizeof *cnt);
    if (!m->ell_step || !cnt) {
        free(cnt);
        return -1;
    }
    /* pass 1: steps per (block, segment) = most entries of its rows there */
    int64_t steps = 0;
    for (int64_t b = 0; b < nblk; b++) {
        memset(cnt, 0, (size_t)nseg * 16 * sizeof *cnt);
        for (int64_t j = 0; j < 16 && b * 16 + j < m->rows; j++)
            for (int32_t k = m->rowptr[b * 16 + j]; k < m->rowptr[b * 16 + j + 1]; k++)
                cnt[m->col[k] / 32 * 16 + j]++;
        for (int64_t sg = 0; sg < nseg; sg++) {
            int32_t mx = 0;
            for (int j = 0; j < 16; j++) mx = cnt[sg * 16 + j] > mx ? cnt[sg * 16 + j] : mx;
            m->ell_step[b * nseg + sg] = (int32_t)steps;
            steps += mx;
            if (steps > INT32_MAX / 16) {
                free(cnt);
                return -1;
            }
        }
    }
    m->ell_step[nblk * nseg] = (int32_t)steps;
    m->ell_idx = calloc((size_t)(steps > 0 ? steps : 1) * 16, 1);
    m->ell_w = calloc((size_t)(steps > 0 ? steps : 1) * 16, sizeof *m->ell_w);
    if (!m->ell_idx || !m->ell_w) {
        free(cnt);
        return -1;
    }
    /* pass 2: entry t of row 16 b + j in segment s -> step t, lane j */
    for (int64_t b = 0; b < nblk; b++) {
        memset(cnt, 0, (size_t)nseg * 16 * sizeof *cnt);
        for (int64_t j = 0; j < 16 && b * 16 + j < m->rows; j++)
            for (int32_t k = m->rowptr[b * 16 + j]; k < m->rowptr[b * 16 + j + 1]; k++) {
                int64_t sg = m->col[k] / 32, t = cnt[sg * 16 + j]++;
                size_t at = (size_t)(m->ell_step[b * nseg + sg] + t) * 16 + (size_t)j;
                m->ell_idx[at] = (uint8_t)(m->col[k] - sg * 32);
                m->ell_w[at] = m->val[k];
            }
    }
    free(cnt);
    return 0;
}

void sqz_csr_free(sqz_csr *m) {
    free(m->ell_step);
    free(m->ell_idx);
    free(m->ell_w);
    free(m->rowptr);
    free(m->col);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static float clampf(const sqz_csr *m, float v) {
    if (!m->clamp) return v;
    v = v > m->lo ? v : m->lo;
    return v < m->hi ? v : m->hi;
}

void sqz_spmm_ref(const sqz_csr *m, int64_t r0, int64_t r1, const float *X, int64_t P,
                  const float *bias, float *Y) {
    for (int64_t r = r0; r < r1; r++) {
        float *y = Y + r * P;
        float b = bias ? bias[r] : 0.0f;
        for (int64_t p = 0; p < P; p++) y[p] = b;
        for (int32_t k = m->rowptr[r]; k < m->rowptr[r + 1]; k++) {
            const float *x = X + (int64_t)m->col[k] * P;
            float v = m->val[k];
            for (int64_t p = 0; p < P; p++) y[p] += v * x[p];
        }
        if (m->clamp)
            for (int64_t p = 0; p < P; p++) y[p] = clampf(m, y[p]);
    }
}

void sqz_spmv_ref(const sqz_csr *m, int64_t r0, int64_t r1, const float *x, const float *bias,
                  float *y) {
    for (int64_t r = r0; r < r1; r++) {
        float s = bias ? bias[r] : 0.0f;
        for (int32_t k = m->rowptr[r]; k < m->rowptr[r + 1]; k++) s += m->val[k] * x[m->col[k]];
        y[r] = clampf(m, s);
    }
}

sqz_spmm_fn sqz_spmm_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512()) return sqz_spmm_avx512;
    if (sqz_cpu_has_avx2_fma()) return sqz_spmm_avx2;
#elif defined(__aarch64__)
    if (sqz_cpu_has_neon()) return sqz_spmm_neon;
#endif
    return sqz_spmm_ref;
}

sqz_spmv_fn sqz_spmv_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512()) return sqz_spmv_avx512;
    if (sqz_cpu_has_avx2_fma()) return sqz_spmv_avx2;
#elif defined(__aarch64__)
    if (sqz_cpu_has_neon()) return sqz_spmv_neon;
#endif
    return sqz_spmv_ref;
}

double sqz_sparse_max_density(int op, int64_t P) {
    /* Crossovers against the packed dense GEMM, from bench/sparse.c: the
     * sparse kernel does 1/density less work but at a lower rate per MAC. */
    if (op == SQZ_OP_GEMM) { /* M > 1: the spmm kernel over A^T (M columns) */
#if defined(__x86_64__) || defined(_M_X64)
        if (P == 1 && sqz_cpu_has_avx512()) return 0.45; /* ELL, permutes: 1.3-1.6x at 50% */
#endif
        return P <= 16 ? 0.3 : 0.2;
    }
    return 0.25;
}

/* SQZ_SPARSE=0: never sparse; SQZ_SPARSE=force: sparse at any density
 * (benches); unset: by the density crossover. */
static int sparse_mode(void) {
    const char *e = getenv("SQZ_SPARSE");
    if (!e) return 1;
    if (strcmp(e, "0") == 0) return 0;
    return strcmp(e, "force") == 0 ? 2 : 1;
}
static int sparse_disabled(void) {
    return sparse_mode() == 0;
}
static double max_density(int op, int64_t P) {
    return sparse_mode() == 2 ? 1.0 : sqz_sparse_max_density(op, P);
}

/* ------------------------------------------------------------------ ops */

typedef struct sp_params {
    sqz_csr w;
    float *bias; /* rows, or NULL */
    ref_act act;
    int64_t batch, P, in_rows; /* conv: N, H*W, Cin; gemm: M, -, K */
    sqz_spmm_fn spmm;
    sqz_spmv_fn spmv;
    uint64_t macs;
    int nt; /* threads of the run */
} sp_params;

static void sp_release(void *vp) {
    sp_params *p = vp;
    if (!p) return;
    sqz_csr_free(&p->w);
    free(p->bias);
    free(p);
}

/* ReLU / Clip go into the kernels' stores (no second pass over Y); other
 * fused activations stay a pass of ref_act_apply. */
static void fuse_act(sp_params *p) {
    if (p->act.kind == SQZ_ACT_RELU || p->act.kind == SQZ_ACT_CLIP) {
        p->w.clamp = 1;
        p->w.lo = p->act.kind == SQZ_ACT_RELU ? 0.0f : p->act.alpha;
        p->w.hi = p->act.kind == SQZ_ACT_RELU ? INFINITY : p->act.beta;
        p->act.kind = SQZ_ACT_NONE;
    }
}

static int validate(sqz_op_ctx *ctx, const sqz_op_impl *ref) {
    int rc = ref->prepare(ctx);
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    ctx->scratch_bytes = 0;
    return rc;
}

/* density(w, n) > d, as computed whole (nz / n over every weight), decided
 * as soon as the non-zeros counted so far settle it (nz / n only grows):
 * a dense weight after about d of it instead of all of it at every
 * session's start (three scans of LeNet-300-100's first layer in sqz quant) */
static int denser_than(const float *w, int64_t n, double d) {
    if (n <= 0) return 1.0 > d;
    int64_t nz = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 4096) {
        const int64_t i1 = n - i0 < 4096 ? n : i0 + 4096;
        for (int64_t i = i0; i < i1; i++) nz += w[i] != 0.0f;
        if ((double)nz / (double)n > d) return 1;
    }
    return 0;
}

static int sp_conv_prepare(sqz_op_ctx *ctx) {
    if (sparse_disabled() || ctx->n_in < 2 || !ctx->in_data[1]) return 1;
    const sqz_shape *x = &ctx->in_shape[0], *w = &ctx->in_shape[1];
    if (x->ndim != 4 || w->ndim != 4 || w->dims[2] != 1 || w->dims[3] != 1) return 1;
    if (sqz_attr_int(ctx->node, "group", 1) != 1) return 1;
    const char *ap = sqz_attr_str(ctx->node, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0) return 1;
    const int64_t *v;
    int n = sqz_attr_ints(ctx->node, "strides", &v);
    for (int i = 0; i < n; i++)
        if (v[i] != 1) return 1;
    n = sqz_attr_ints(ctx->node, "pads", &v);
    for (int i = 0; i < n; i++)
        if (v[i] != 0) return 1;
    int has_b = ctx->n_in > 2 && ctx->in_shape[2].ndim >= 0;
    if (has_b && !ctx->in_data[2]) return 1;
    int64_t M = w->dims[0], C = w->dims[1], P = x->dims[2] * x->dims[3];
    if (C != x->dims[1] || P <= 0) return 1;
    if (denser_than(ctx->in_data[1], M * C, max_density(SQZ_OP_CONV, P))) return 1;
    int rc = validate(ctx, &sqz_ref_conv);
    if (rc) return rc;
    sp_params *p = calloc(1, sizeof *p);
    if (!p) return sqz_op_fail(ctx, "Conv: out of memory");
    if (ref_act_prepare(ctx, &p->act)) {
        free(p);
        return -1;
    }
    if (sqz_csr_build(&p->w, ctx->in_data[1], M, C, C, 1, 1.0f) != 0) {
        sp_release(p);
        return sqz_op_fail(ctx, "Conv: out of memory");
    }
    if (has_b) {
        p->bias = malloc((size_t)M * sizeof *p->bias);
        if (!p->bias) {
            sp_release(p);
            return sqz_op_fail(ctx, "Conv: out of memory");
        }
        memcpy(p->bias, ctx->in_data[2], (size_t)M * sizeof *p->bias);
    }
    fuse_act(p);
    p->batch = x->dims[0];
    p->P = P;
    p->in_rows = C;
    p->spmm = sqz_spmm_best();
    p->macs = (uint64_t)(p->w.nnz * P * p->batch);
    ctx->params = p;
    return 0;
}

typedef struct sp_job {
    const sp_params *p;
    const float *xb;
    float *yb;
    int64_t chunk;
} sp_job;

static void sp_part(void *arg, int t) {
    const sp_job *j = arg;
    const sp_params *p = j->p;
    int64_t M = p->w.rows, P = p->P;
    int64_t r0 = t * j->chunk, r1 = r0 + j->chunk < M ? r0 + j->chunk : M;
    if (r0 >= r1) return;
    p->spmm(&p->w, r0, r1, j->xb, P, p->bias, j->yb);
    if (p->act.kind != SQZ_ACT_NONE)
        ref_act_apply(&p->act, j->yb + r0 * P, (size_t)((r1 - r0) * P));
}

static void sp_part_gemm(void *arg, int t) {
    const sp_job *j = arg;
    const sp_params *p = j->p;
    int64_t N = p->w.rows;
    int64_t r0 = t * j->chunk, r1 = r0 + j->chunk < N ? r0 + j->chunk : N;
    if (r0 < r1) p->spmm(&p->w, r0, r1, j->xb, p->batch, p->bias, j->yb);
}

static void sp_part_spmv(void *arg, int t) {
    const sp_job *j = arg;
    const sp_params *p = j->p;
    int64_t N = p->w.rows;
    int64_t r0 = t * j->chunk, r1 = r0 + j->chunk < N ? r0 + j->chunk : N;
    if (r0 < r1) p->spmv(&p->w, r0, r1, j->xb, p->bias, j->yb);
}

static void sp_conv_run(const sqz_op_ctx *ctx) {
    const sp_params *p = ctx->params;
    const float *X = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    int64_t M = p->w.rows, P = p->P;
    int nt = ctx->num_threads > 1 ? ctx->num_threads : 1;
    if (p->w.nnz * P <= 65536) nt = 1;
    for (int64_t b = 0; b < p->batch; b++) {
        sp_job j = {p, X + b * p->in_rows * P, Y + b * M * P, (M + nt - 1) / nt};
        sqz_par_for(nt, nt, sp_part, &j);
    }
}

static uint64_t sp_macs(const sqz_op_ctx *ctx) {
    const sp_params *p = ctx->params;
    return p ? p->macs : 0;
}

const sqz_op_impl sqz_sparse_conv = {sp_conv_prepare, sp_conv_run, sp_release, sp_macs};

static int sp_gemm_prepare(sqz_op_ctx *ctx) {
    if (sparse_disabled() || ctx->n_in < 2 || !ctx->in_data[1]) return 1;
    const sqz_shape *a = &ctx->in_shape[0], *w = &ctx->in_shape[1];
    if (a->ndim != 2 || w->ndim != 2 || sqz_attr_int(ctx->node, "transA", 0) != 0) return 1;
    int tb = (int)sqz_attr_int(ctx->node, "transB", 0);
    float alpha = sqz_attr_float(ctx->node, "alpha", 1.0f),
          beta = sqz_attr_float(ctx->node, "beta", 1.0f);
    int64_t M = a->dims[0], K = a->dims[1], N = tb ? w->dims[0] : w->dims[1];
    if ((tb ? w->dims[1] : w->dims[0]) != K || M <= 0 || K <= 0 || N <= 0) return 1;
    int has_c = ctx->n_in > 2 && ctx->in_shape[2].ndim >= 0 && beta != 0.0f;
    int64_t cn = 0;
    if (has_c) {
        if (!ctx->in_data[2]) return 1;
        cn = sqz_shape_numel(&ctx->in_shape[2]);
        if (cn != 1 && cn != N) return 1;
        if (ctx->in_shape[2].ndim == 2 && ctx->in_shape[2].dims[0] != 1) return 1;
    }
    if (denser_than(ctx->in_data[1], K * N, max_density(SQZ_OP_GEMM, M))) return 1;
    int rc = validate(ctx, &sqz_ref_gemm);
    if (rc) return rc;
    sp_params *p = calloc(1, sizeof *p);
    if (!p) return sqz_op_fail(ctx, "Gemm: out of memory");
    if (ref_act_prepare(ctx, &p->act)) {
        free(p);
        return -1;
    }
    /* rows = output features: W(n, k) = B[n, k] (transB) or B[k, n] */
    if (sqz_csr_build(&p->w, ctx->in_data[1], N, K, tb ? K : 1, tb ? 1 : N, alpha) != 0) {
        sp_release(p);
        return sqz_op_fail(ctx, "Gemm: out of memory");
    }
    if (has_c) {
        p->bias = malloc((size_t)N * sizeof *p->bias);
        if (!p->bias) {
            sp_release(p);
            return sqz_op_fail(ctx, "Gemm: out of memory");
        }
        for (int64_t n = 0; n < N; n++) p->bias[n] = beta * ctx->in_data[2][cn == 1 ? 0 : n];
    }
    fuse_act(p);
    p->batch = M;
    p->in_rows = K;
    p->macs = (uint64_t)(p->w.nnz * M);
    p->nt = ctx->num_threads > 1 && p->w.nnz * M > 65536 ? ctx->num_threads : 1;
    if (M >= 2) {
        /* M rows of A: Y^T = W A^T, the spmm kernel over P = M columns (A^T
         * and Y^T in scratch), so each non-zero is one broadcast times a
         * vector of its column's M activations, not M gathers */
        p->spmm = sqz_spmm_best();
        ctx->scratch_bytes = (size_t)((K + N) * M) * sizeof(float) + 64;
    } else {
        p->spmv = sqz_spmv_best();
#if defined(__x86_64__) || defined(_M_X64)
        if (p->spmv == sqz_spmv_avx512) { /* permutes of x instead of gathers */
            if (sqz_csr_build_ell(&p->w) != 0) {
                sp_release(p);
                return sqz_op_fail(ctx, "Gemm: out of memory");
            }
            p->spmv = sqz_spmv_perm_avx512;
        }
#endif
    }
    ctx->params = p;
    return 0;
}

static void sp_gemm_run(const sqz_op_ctx *ctx) {
    const sp_params *p = ctx->params;
    const float *A = ctx->in_data[0];
    float *Y = ctx->out_data[0];
    int64_t N = p->w.rows, K = p->in_rows, M = p->batch;
    if (M == 1) { /* rows split in multiples of 16 (the ELL kernel's blocks) */
        int nt = p->nt;
        sp_job j = {p, A, Y, ((N + nt - 1) / nt + 15) / 16 * 16};
        sqz_par_for(nt, nt, sp_part_spmv, &j);
    } else {
        float *at = ctx->scratch, *yt = at + K * M;
        for (int64_t m = 0; m < M; m++)
            for (int64_t k = 0; k < K; k++) at[k * M + m] = A[m * K + k];
        int nt = p->nt;
        sp_job j = {p, at, yt, (N + nt - 1) / nt};
        sqz_par_for(nt, nt, sp_part_gemm, &j);
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) Y[m * N + n] = yt[n * M + m];
    }
    if (p->act.kind != SQZ_ACT_NONE) ref_act_apply(&p->act, Y, (size_t)(M * N));
}

const sqz_op_impl sqz_sparse_gemm = {sp_gemm_prepare, sp_gemm_run, sp_release, sp_macs};
