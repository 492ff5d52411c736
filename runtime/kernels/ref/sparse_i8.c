/* sparse_i8.c - int8 CSR weights, the scalar twins of the int8 sparse row
 * kernels, ISA selection, and the int8 sparse 1x1 Conv / Gemm ops (contract:
 * kernels/sparse.h "int8"; arithmetic: kernels/int8.h). */
#include <stdlib.h>
#include <string.h>

#include "int8_simd.h"
#include "par.h"
#include "sparse.h"
#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)
#include "cpu.h"
#endif

int sqz_csr8_build(sqz_csr8 *m, const sqz_i8_linear *li) {
    memset(m, 0, sizeof *m);
    int64_t rows = li->n_co, cols = li->K;
    if (rows <= 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX) return -1;
    int64_t nnz = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = 0;
        for (int64_t c = 0; c < cols; c++) n += sqz_i8_w(li, r, c) != 0;
        nnz += n + (n & 1);
    }
    if (nnz > INT32_MAX - 1) return -1;
    size_t ne = (size_t)(nnz > 0 ? nnz : 1);
    m->rowptr = malloc((size_t)(rows + 1) * sizeof *m->rowptr);
    m->col = malloc(ne * sizeof *m->col);
    m->val = malloc(ne * sizeof *m->val);
    m->off = malloc((size_t)rows * sizeof *m->off);
    m->rq = malloc((size_t)rows * sizeof *m->rq);
    if (!m->rowptr || !m->col || !m->val || !m->off || !m->rq) {
        sqz_csr8_free(m);
        return -1;
    }
    m->rows = rows;
    m->cols = cols;
    m->nnz = nnz;
    m->zp = li->zp_y;
    m->lo = li->lo;
    m->hi = li->hi;
    int32_t k = 0;
    for (int64_t r = 0; r < rows; r++) {
        m->rowptr[r] = k;
        int64_t wsum = 0;
        for (int64_t c = 0; c < cols; c++) {
            int8_t v = sqz_i8_w(li, r, c);
            if (v == 0) continue;
            wsum += v;
            m->col[k] = (int32_t)c;
            m->val[k] = v;
            k++;
        }
        if ((k - m->rowptr[r]) & 1) { /* pad to a pair: (last column, 0) */
            m->col[k] = m->col[k - 1];
            m->val[k] = 0;
            k++;
        }
        /* exact: |off| <= |bias| + 128 * 127 * K, inside the int8.h bound */
        m->off[r] = (int32_t)(li->bias[r] - (int64_t)li->zp_x * wsum);
        m->rq[r] = li->rq[r];
    }
    m->rowptr[rows] = k;
    return 0;
}

int sqz_csr8_build_ell(sqz_csr8 *m) {
    int64_t nblk = (m->rows + 15) / 16, nseg = (m->cols + 127) / 128;
    m->nseg = nseg;
    m->ell_step = malloc((size_t)(nblk * nseg + 1) * sizeof *m->ell_step);
    m->ell_off = calloc((size_t)nblk * 16, sizeof *m->ell_off);
    m->ell_s = calloc((size_t)nblk * 16, sizeof *m->ell_s);
    int32_t *cnt = malloc((size_t)nseg * 16 * sizeof *cnt);
    if (!m->ell_step || !m->ell_off || !m->ell_s || !cnt) {
        free(cnt);
        return -1;
    }
    /* pass 1: steps per (block, segment) = max entries of its rows there / 4 */
    int64_t steps = 0;
    for (int64_t b = 0; b < nblk; b++) {
        memset(cnt, 0, (size_t)nseg * 16 * sizeof *cnt);
        for (int64_t j = 0; j < 16 && b * 16 + j < m->rows; j++) {
            int64_t r = b * 16 + j;
            for (int32_t k = m->rowptr[r]; k < m->rowptr[r + 1]; k++)
                if (m->val[k] != 0) cnt[m->col[k] / 128 * 16 + j]++;
        }
        for (int64_t sg = 0; sg < nseg; sg++) {
            int32_t mx = 0;
            for (int j = 0; j < 16; j++) mx = cnt[sg * 16 + j] > mx ? cnt[sg * 16 + j] : mx;
            m->ell_step[b * nseg + sg] = (int32_t)steps;
            steps += (mx + 3) / 4;
            if (steps > INT32_MAX / 64) {
                free(cnt);
                return -1;
            }
        }
    }
    m->ell_step[nblk * nseg] = (int32_t)steps;
    m->ell_idx = calloc((size_t)(steps > 0 ? steps : 1) * 64, 1);
    m->ell_w = calloc((size_t)(steps > 0 ? steps : 1) * 64, 1);
    if (!m->ell_idx || !m->ell_w) {
        free(cnt);
        return -1;
    }
    /* pass 2: entry t of row 16 b + j in segment s -> step t / 4, byte 4 j + t % 4 */
    for (int64_t b = 0; b < nblk; b++) {
        memset(cnt, 0, (size_t)nseg * 16 * sizeof *cnt);
        for (int64_t j = 0; j < 16; j++) {
            int64_t r = b * 16 + j;
            if (r >= m->rows) continue;
            int64_t wsum = 0;
            for (int32_t k = m->rowptr[r]; k < m->rowptr[r + 1]; k++) {
                if (m->val[k] == 0) continue;
                int64_t sg = m->col[k] / 128, t = cnt[sg * 16 + j]++;
                size_t at =
                    (size_t)(m->ell_step[b * nseg + sg] + t / 4) * 64 + (size_t)(4 * j + t % 4);
                m->ell_idx[at] = (uint8_t)(m->col[k] - sg * 128);
                m->ell_w[at] = (int8_t)m->val[k];
                wsum += m->val[k];
            }
            /* u8 activations x + 128: acc = off - 128 * wsum + sum (x + 128) w */
            m->ell_off[b * 16 + j] = (int32_t)(m->off[r] - 128 * wsum);
            m->ell_s[b * 16 + j] = m->rq[r].s;
        }
    }
    free(cnt);
    return 0;
}

int sqz_csr8_build_b4(sqz_csr8 *m) {
    const int64_t ngrp = (m->cols + 3) / 4;
    m->ngrp = ngrp;
    m->b4_ptr = malloc((size_t)(m->rows + 1) * sizeof *m->b4_ptr);
    m->b4_off = malloc((size_t)m->rows * sizeof *m->b4_off);
    if (!m->b4_ptr || !m->b4_off) return -1;
    /* pass 1: blocks per row (entries sorted by column, pads have weight 0) */
    int64_t nb = 0;
    for (int64_t r = 0; r < m->rows; r++) {
        m->b4_ptr[r] = (int32_t)nb;
        int64_t last = -1;
        for (int32_t k = m->rowptr[r]; k < m->rowptr[r + 1]; k++)
            if (m->val[k] != 0 && m->col[k] / 4 != last) {
                last = m->col[k] / 4;
                nb++;
            }
        if (nb > INT32_MAX) return -1;
    }
    m->b4_ptr[m->rows] = (int32_t)nb;
    m->nblk4 = nb;
    m->b4_grp = malloc((size_t)(nb > 0 ? nb : 1) * sizeof *m->b4_grp);
    m->b4_w = calloc((size_t)(nb > 0 ? nb : 1), sizeof *m->b4_w);
    if (!m->b4_grp || !m->b4_w) return -1;
    for (int64_t r = 0; r < m->rows; r++) {
        int64_t b = m->b4_ptr[r] - 1, last = -1, wsum = 0;
        for (int32_t k = m->rowptr[r]; k < m->rowptr[r + 1]; k++) {
            if (m->val[k] == 0) continue;
            if (m->col[k] / 4 != last) {
                last = m->col[k] / 4;
                m->b4_grp[++b] = (int32_t)last;
            }
            uint32_t byte = (uint32_t)(uint8_t)(int8_t)m->val[k];
            m->b4_w[b] = (int32_t)((uint32_t)m->b4_w[b] | byte << (8 * (m->col[k] % 4)));
            wsum += m->val[k];
        }
        /* u8 activations x + 128: acc = off - 128 * wsum + sum (x + 128) w */
        m->b4_off[r] = (int32_t)(m->off[r] - 128 * wsum);
    }
    /* quads: the row's non-zeros (the CSR pair pads dropped), 4 at a time */
    m->q4_ptr = malloc((size_t)(m->rows + 1) * sizeof *m->q4_ptr);
    if (!m->q4_ptr) return -1;
    int64_t nq = 0;
    for (int64_t r = 0; r < m->rows; r++) {
        m->q4_ptr[r] = (int32_t)nq;
        int64_t n = 0;
        for (int32_t k = m->rowptr[r]; k < m->rowptr[r + 1]; k++) n += m->val[k] != 0;
        nq += (n + 3) / 4;
        if (nq > INT32_MAX / 4) return -1;
    }
    m->q4_ptr[m->rows] = (int32_t)nq;
    m->nq4 = nq;
    m->q4_col = malloc((size_t)(nq > 0 ? 4 * nq : 1) * sizeof *m->q4_col);
    m->q4_w = calloc((size_t)(nq > 0 ? nq : 1), sizeof *m->q4_w);
    if (!m->q4_col || !m->q4_w) return -1;
    for (int64_t r = 0; r < m->rows; r++) {
        int64_t e = 4 * (int64_t)m->q4_ptr[r];
        for (int32_t k = m->rowptr[r]; k < m->rowptr[r + 1]; k++) {
            if (m->val[k] == 0) continue;
            uint32_t byte = (uint32_t)(uint8_t)(int8_t)m->val[k];
            m->q4_col[e] = m->col[k];
            m->q4_w[e / 4] = (int32_t)((uint32_t)m->q4_w[e / 4] | byte << (8 * (e % 4)));
            e++;
        }
        for (; e % 4; e++) m->q4_col[e] = m->q4_col[e - 1]; /* pads: weight 0 */
    }
    return 0;
}

int sqz_csr8_q4_stride(sqz_csr8 *m, int64_t xs) {
    if (xs <= 0 || m->cols * xs > INT32_MAX) return -1;
    free(m->q4_rec);
    free(m->q4_row);
    m->q4_xs = 0;
    m->q4_rec = malloc((size_t)(m->nq4 > 0 ? 5 * m->nq4 : 1) * sizeof *m->q4_rec);
    m->q4_row = malloc((size_t)m->rows * sizeof *m->q4_row);
    if (!m->q4_rec || !m->q4_row) return -1;
    for (int64_t q = 0; q < m->nq4; q++) {
        for (int t = 0; t < 4; t++) m->q4_rec[5 * q + t] = (int32_t)(m->q4_col[4 * q + t] * xs);
        m->q4_rec[5 * q + 4] = m->q4_w[q];
    }
    for (int64_t r = 0; r < m->rows; r++)
        m->q4_row[r] = (struct sqz_q4row){m->q4_ptr[r], m->q4_ptr[r + 1], m->b4_off[r], m->rq[r].s};
    m->q4_xs = xs;
    return 0;
}

int sqz_csr8_b4_stride(sqz_csr8 *m, int64_t xs) {
    if (xs <= 0 || m->ngrp * 4 * xs > INT32_MAX) return -1;
    free(m->b4_rec);
    free(m->b4_row);
    m->b4_xs = 0;
    m->b4_rec = malloc((size_t)(m->nblk4 > 0 ? 2 * m->nblk4 : 1) * sizeof *m->b4_rec);
    m->b4_row = malloc((size_t)m->rows * sizeof *m->b4_row);
    if (!m->b4_rec || !m->b4_row) return -1;
    for (int64_t b = 0; b < m->nblk4; b++) {
        m->b4_rec[2 * b] = (int32_t)(m->b4_grp[b] * 4 * xs);
        m->b4_rec[2 * b + 1] = m->b4_w[b];
    }
    for (int64_t r = 0; r < m->rows; r++)
        m->b4_row[r] = (struct sqz_q4row){m->b4_ptr[r], m->b4_ptr[r + 1], m->b4_off[r], m->rq[r].s};
    m->b4_xs = xs;
    return 0;
}

void sqz_tou8_ref(const int8_t *x, int64_t C, int64_t P, int64_t xs, uint8_t *XU) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t p = 0; p < xs; p++)
            XU[c * xs + p] = (uint8_t)(p < P ? x[c * P + p] + 128 : 128);
}

void sqz_spmm8q_ref(const sqz_csr8 *m, int64_t r0, int64_t r1, const uint8_t *XU, int64_t xs,
                    int64_t P, int8_t *Y) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t p = 0; p < P; p++) {
            int64_t acc = m->b4_off[r];
            for (int32_t q = m->q4_ptr[r]; q < m->q4_ptr[r + 1]; q++) {
                uint32_t w = (uint32_t)m->q4_w[q];
                for (int t = 0; t < 4; t++)
                    acc += (int32_t)XU[(int64_t)m->q4_col[4 * q + t] * xs + p] *
                           (int8_t)(uint8_t)(w >> (8 * t));
            }
            Y[r * P + p] = (int8_t)sqz_rq_apply(acc, m->rq[r], m->zp, m->lo, m->hi);
        }
}

sqz_spmm8q_fn sqz_spmm8q_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512_vnni()) return sqz_spmm8q_vnni;
#endif
    return NULL;
}

sqz_tou8_fn sqz_tou8_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512()) return sqz_tou8_avx512;
#endif
    return sqz_tou8_ref;
}

void sqz_pack4_ref(const int8_t *x, int64_t C, int64_t P, int64_t xs, uint8_t *XB) {
    for (int64_t g = 0; g < (C + 3) / 4; g++)
        for (int64_t p = 0; p < xs; p++)
            for (int64_t t = 0; t < 4; t++) {
                int64_t c = 4 * g + t;
                XB[(g * xs + p) * 4 + t] = (uint8_t)(c < C && p < P ? x[c * P + p] + 128 : 128);
            }
}

void sqz_spmm8b_ref(const sqz_csr8 *m, int64_t r0, int64_t r1, const uint8_t *XB, int64_t xs,
                    int64_t P, int8_t *Y) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t p = 0; p < P; p++) {
            int64_t acc = m->b4_off[r];
            for (int32_t b = m->b4_ptr[r]; b < m->b4_ptr[r + 1]; b++) {
                const uint8_t *x = XB + ((int64_t)m->b4_grp[b] * xs + p) * 4;
                uint32_t w = (uint32_t)m->b4_w[b];
                for (int t = 0; t < 4; t++) acc += (int32_t)x[t] * (int8_t)(uint8_t)(w >> (8 * t));
            }
            Y[r * P + p] = (int8_t)sqz_rq_apply(acc, m->rq[r], m->zp, m->lo, m->hi);
        }
}

sqz_spmm8b_fn sqz_spmm8b_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512_vnni()) return sqz_spmm8b_vnni;
#endif
    return NULL;
}

sqz_pack4_fn sqz_pack4_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512()) return sqz_pack4_avx512;
#endif
    return sqz_pack4_ref;
}

size_t sqz_spmv8_tmp_bytes(const sqz_csr8 *m) {
    size_t a = (size_t)m->cols * sizeof(int32_t), b = (size_t)(m->cols + 127) / 128 * 128;
    return (a > b ? a : b) + 64;
}

void sqz_csr8_free(sqz_csr8 *m) {
    free(m->b4_ptr);
    free(m->b4_grp);
    free(m->b4_w);
    free(m->b4_off);
    free(m->q4_ptr);
    free(m->q4_col);
    free(m->q4_w);
    free(m->q4_rec);
    free(m->q4_row);
    free(m->b4_rec);
    free(m->b4_row);
    free(m->ell_step);
    free(m->ell_idx);
    free(m->ell_w);
    free(m->ell_off);
    free(m->ell_s);
    free(m->rowptr);
    free(m->col);
    free(m->val);
    free(m->off);
    free(m->rq);
    memset(m, 0, sizeof *m);
}

void sqz_spmm8_ref_cols(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                        int64_t P, int64_t p0, int64_t p1, int8_t *Y) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t p = p0; p < p1; p++) {
            int64_t acc = m->off[r];
            for (int32_t k = m->rowptr[r]; k < m->rowptr[r + 1]; k++)
                acc += (int32_t)m->val[k] * X[(int64_t)m->col[k] * xs + p];
            Y[r * P + p] = (int8_t)sqz_rq_apply(acc, m->rq[r], m->zp, m->lo, m->hi);
        }
}

void sqz_spmm8_ref(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                   int64_t P, int8_t *Y) {
    sqz_spmm8_ref_cols(m, r0, r1, X, xs, P, 0, P, Y);
}

void sqz_spmv8_ref(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x, void *tmp,
                   int8_t *y) {
    (void)tmp;
    for (int64_t r = r0; r < r1; r++) {
        int64_t acc = m->off[r];
        for (int32_t k = m->rowptr[r]; k < m->rowptr[r + 1]; k++)
            acc += (int32_t)m->val[k] * x[m->col[k]];
        y[r] = (int8_t)sqz_rq_apply(acc, m->rq[r], m->zp, m->lo, m->hi);
    }
}

void sqz_widen8_ref(const int8_t *x, int16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
}

sqz_widen8_fn sqz_widen8_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512()) return sqz_widen8_avx512;
    if (sqz_cpu_has_avx2_fma()) return sqz_widen8_avx2;
#endif
    return sqz_widen8_ref;
}

sqz_spmm8_fn sqz_spmm8_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512_vnni()) return sqz_spmm8_vnni;
    if (sqz_cpu_has_avx512()) return sqz_spmm8_avx512;
    if (sqz_cpu_has_avx2_fma()) return sqz_spmm8_avx2;
#elif defined(__aarch64__)
    if (sqz_cpu_has_neon()) return sqz_spmm8_neon;
#endif
    return sqz_spmm8_ref;
}

sqz_spmv8_fn sqz_spmv8_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_spmv8_vbmi_ok()) return sqz_spmv8_vbmi;
    if (sqz_cpu_has_avx512()) return sqz_spmv8_avx512;
    if (sqz_cpu_has_avx2_fma()) return sqz_spmv8_avx2;
#elif defined(__aarch64__)
    if (sqz_cpu_has_neon()) return sqz_spmv8_neon;
#endif
    return sqz_spmv8_ref;
}

double sqz_sparse_i8_max_density(int op, int64_t P) {
    /* Crossovers against sqz's dense int8 kernels, from bench/sparse.c on
     * x86-64 (AVX-512 VNNI + VBMI; the gather Gemm kernel of other x86 CPUs
     * only wins for one row at high sparsity). Dense Gemm reuses each weight
     * over the M rows of A, so the sparse one needs more zeros as M grows. */
    if (op == SQZ_OP_GEMM) {
#if defined(__x86_64__) || defined(_M_X64)
        /* M >= 8: eight rows of A per pass over the weights (1.3x at 50%) */
        if (sqz_spmv8_vbmi_ok()) return P <= 1 ? 0.5 : P < 8 ? 0.25 : 0.4;
#endif
        return P <= 1 ? 0.1 : 0.0;
    }
    return 0.25;
}

double sqz_sparse_i8_max_cost(int64_t P) {
    /* crossover of the block / quad kernels' modelled cost against the
     * dense int8 1x1 conv's, measured with bench/sparse.c */
    (void)P;
    return 0.8;
}

/* SQZ_SPARSE as in sparse.c: 0 never, force at any density, unset by density. */
static int sparse_mode(void) {
    const char *e = getenv("SQZ_SPARSE");
    if (!e) return 1;
    if (strcmp(e, "0") == 0) return 0;
    return strcmp(e, "force") == 0 ? 2 : 1;
}

static double density8(const int8_t *w, int64_t n) {
    int64_t nz = 0;
    for (int64_t i = 0; i < n; i++) nz += w[i] != 0;
    return n > 0 ? (double)nz / (double)n : 1.0;
}

typedef struct sp8 {
    sqz_i8_linear li;
    sqz_csr8 w;
    int64_t batch, P; /* conv: N, H * W; gemm: M, - */
    sqz_spmm8_fn spmm;
    sqz_spmv8_fn spmv;
    sqz_widen8_fn widen;
    sqz_spmm8b_fn spmmb; /* 1x4-block kernel, or NULL */
    sqz_pack4_fn pack4;
    sqz_spmm8q_fn spmmq; /* quad kernel, or NULL (neither: CSR spmm) */
    sqz_tou8_fn tou8;
    int nt;
} sp8;

static void sp8_release(void *vp) {
    sp8 *p = vp;
    if (!p) return;
    sqz_i8_linear_free(&p->li);
    sqz_csr8_free(&p->w);
    free(p);
}

static uint64_t sp8_macs(const sqz_op_ctx *ctx) {
    const sp8 *p = ctx->params;
    return p ? (uint64_t)(p->w.nnz * p->P * p->batch) : 0;
}

/* Conv 1x1, stride 1, no pads, group 1, constant weight: the covered case. */
static int pointwise_conv(const sqz_op_ctx *ctx) {
    if (ctx->n_in < 2 || !ctx->in_data[1]) return 0;
    const sqz_shape *x = &ctx->in_shape[0], *w = &ctx->in_shape[1];
    if (x->ndim != 4 || w->ndim != 4 || w->dims[2] != 1 || w->dims[3] != 1) return 0;
    if (sqz_attr_int(ctx->node, "group", 1) != 1) return 0;
    const char *ap = sqz_attr_str(ctx->node, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0) return 0;
    const int64_t *v;
    int n = sqz_attr_ints(ctx->node, "strides", &v);
    for (int i = 0; i < n; i++)
        if (v[i] != 1) return 0;
    n = sqz_attr_ints(ctx->node, "pads", &v);
    for (int i = 0; i < n; i++)
        if (v[i] != 0) return 0;
    n = sqz_attr_ints(ctx->node, "dilations", &v);
    for (int i = 0; i < n; i++)
        if (v[i] != 1) return 0;
    return 1;
}

static int sp8_common(sqz_op_ctx *ctx, sp8 **out) {
    sp8 *p = calloc(1, sizeof *p);
    if (!p) return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    if (sqz_i8_linear_prepare(ctx, &p->li)) {
        free(p);
        return -1;
    }
    if (sqz_csr8_build(&p->w, &p->li) != 0) {
        sp8_release(p);
        return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    }
    *out = p;
    return 0;
}

static int sp8_conv_prepare(sqz_op_ctx *ctx) {
    if (sparse_mode() == 0 || !pointwise_conv(ctx)) return 1;
    const sqz_shape *x = &ctx->in_shape[0], *w = &ctx->in_shape[1];
    int64_t P = x->dims[2] * x->dims[3];
    if (P <= 0 || w->dims[1] != x->dims[1]) return 1;
    double lim = sparse_mode() == 2  ? 1.0
                 : sqz_spmm8b_best() ? 1.0 /* judged on the blocks below */
                                     : sqz_sparse_i8_max_density(SQZ_OP_CONV, P);
    if (density8((const int8_t *)ctx->in_data[1], w->dims[0] * w->dims[1]) > lim) return 1;
    sp8 *p;
    if (sp8_common(ctx, &p)) return -1;
    p->batch = x->dims[0];
    p->P = P;
    p->spmm = sqz_spmm8_best();
    p->widen = sqz_widen8_best();
    p->nt = sqz_i8_split_threads(ctx->num_threads, (double)(p->w.nnz * P) * SQZ_I8_NS_MAC_CONV);
    if ((uint64_t)(p->w.nnz * P) < SQZ_I8_MT_MIN_MACS) p->nt = 1;
    /* int16 copy of one image's input, rows padded to sqz_spmm8_stride(P) */
    ctx->scratch_bytes = (size_t)(p->li.C * sqz_spmm8_stride(P)) * sizeof(int16_t) + 64;
    sqz_spmm8b_fn kb = sqz_spmm8b_best();
    sqz_spmm8q_fn kq = sqz_spmm8q_best();
    if (kb && kq) { /* dots of 4 (vpdpbusd): 1x4 blocks or quads of any columns */
        if (sqz_csr8_build_b4(&p->w) != 0) {
            sp8_release(p);
            return sqz_op_fail(ctx, "Conv: out of memory");
        }
        /* issue-port model per row and 64 pixels (bench/sparse.c checks it):
         * dense 4 * ceil(K / 4) dots + 16 requantization ops; blocks one
         * dot per block and 16 pixels; quads 4 dots + 8 unpacks (the other
         * port) per quad, + 8 requantization ops on that port */
        double rows = (double)p->w.rows;
        double dense = 4.0 * (double)p->w.ngrp + 16.0;
        double cb = 4.0 * (double)p->w.nblk4 / rows + 16.0;
        double nq = (double)p->w.nq4 / rows;
        double cq = 4.0 * nq + 16.0 > 8.0 * nq + 8.0 ? 4.0 * nq + 16.0 : 8.0 * nq + 8.0;
        int quads = cq < cb;
        if (sparse_mode() != 2 && (quads ? cq : cb) > sqz_sparse_i8_max_cost(P) * dense) {
            sp8_release(p);
            return 1;
        }
        if (quads) {
            if (sqz_csr8_q4_stride(&p->w, sqz_spmm8q_stride(P)) != 0) {
                sp8_release(p);
                return 1; /* too large for int32 offsets: the dense path */
            }
            p->spmmq = kq;
            p->tou8 = sqz_tou8_best();
            ctx->scratch_bytes = (size_t)(p->w.cols * sqz_spmm8q_stride(P)) + 64;
        } else {
            if (sqz_csr8_b4_stride(&p->w, sqz_spmm8b_stride(P)) != 0) {
                sp8_release(p);
                return 1; /* too large for int32 offsets: the dense path */
            }
            p->spmmb = kb;
            p->pack4 = sqz_pack4_best();
            ctx->scratch_bytes = (size_t)(p->w.ngrp * sqz_spmm8b_stride(P) * 4) + 64;
        }
    }
    ctx->params = p;
    return 0;
}

typedef struct {
    const sp8 *p;
    const int16_t *x16;
    int64_t xs;
    int8_t *yb;
    int64_t chunk; /* output rows per part */
} sp8_job;

static void sp8_part(void *arg, int t) {
    const sp8_job *j = arg;
    int64_t M = j->p->w.rows, r0 = t * j->chunk, r1 = r0 + j->chunk < M ? r0 + j->chunk : M;
    if (r0 >= r1) return;
    if (j->p->spmmb)
        j->p->spmmb(&j->p->w, r0, r1, (const uint8_t *)j->x16, j->xs, j->p->P, j->yb);
    else if (j->p->spmmq)
        j->p->spmmq(&j->p->w, r0, r1, (const uint8_t *)j->x16, j->xs, j->p->P, j->yb);
    else
        j->p->spmm(&j->p->w, r0, r1, j->x16, j->xs, j->p->P, j->yb);
}

static void sp8_conv_run(const sqz_op_ctx *ctx) {
    const sp8 *p = ctx->params;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    int16_t *x16 = ctx->scratch;
    int64_t M = p->w.rows, C = p->w.cols, P = p->P;
    int nt = p->nt;
    /* parts as planned; threads as the session runs (sqz_i8_session_threads) */
    int rt = ctx->num_threads < nt ? ctx->num_threads : nt;
    for (int64_t b = 0; b < p->batch; b++) {
        const int8_t *xb = X + b * C * P;
        if (p->spmmb) { /* u8 quads of 4 channels (sparse.h spmm8b) */
            const int64_t xs = sqz_spmm8b_stride(P);
            p->pack4(xb, C, P, xs, ctx->scratch);
            sp8_job j = {p, ctx->scratch, xs, Y + b * M * P, (M + nt - 1) / nt};
            sqz_par_for(rt, nt, sp8_part, &j);
            continue;
        }
        if (p->spmmq) { /* u8 rows */
            const int64_t xs = sqz_spmm8q_stride(P);
            p->tou8(xb, C, P, xs, ctx->scratch);
            sp8_job j = {p, ctx->scratch, xs, Y + b * M * P, (M + nt - 1) / nt};
            sqz_par_for(rt, nt, sp8_part, &j);
            continue;
        }
        const int64_t xs = sqz_spmm8_stride(P);
        for (int64_t c = 0; c < C; c++) { /* pads zeroed: kernels load them, never store them */
            p->widen(xb + c * P, x16 + c * xs, P);
            memset(x16 + c * xs + P, 0, (size_t)(xs - P) * sizeof *x16);
        }
        sp8_job j = {p, x16, xs, Y + b * M * P, (M + nt - 1) / nt};
        sqz_par_for(rt, nt, sp8_part, &j); /* par.h: in the executor's team too */
    }
}

static int sp8_gemm_prepare(sqz_op_ctx *ctx) {
    if (sparse_mode() == 0 || ctx->n_in < 2 || !ctx->in_data[1]) return 1;
    if (sqz_attr_int(ctx->node, "transA", 0) != 0) return 1;
    const sqz_shape *a = &ctx->in_shape[0], *w = &ctx->in_shape[1];
    if (a->ndim != 2 || w->ndim != 2) return 1;
    double lim = sparse_mode() == 2 ? 1.0 : sqz_sparse_i8_max_density(SQZ_OP_GEMM, a->dims[0]);
    if (density8((const int8_t *)ctx->in_data[1], w->dims[0] * w->dims[1]) > lim) return 1;
    sp8 *p;
    if (sp8_common(ctx, &p)) return -1;
    p->batch = p->li.rows;
    p->P = 1;
    p->spmv = sqz_spmv8_best();
#if defined(__x86_64__) || defined(_M_X64)
    if (p->spmv == sqz_spmv8_vbmi && sqz_csr8_build_ell(&p->w) != 0) {
        sp8_release(p);
        return sqz_op_fail(ctx, "Gemm: out of memory");
    }
#endif
    ctx->scratch_bytes = sqz_spmv8_tmp_bytes(&p->w);
#if defined(__x86_64__) || defined(_M_X64)
    if (p->spmv == sqz_spmv8_vbmi && p->batch >= 8) /* 8 rows of A per pass */
        ctx->scratch_bytes = 8 * ((sqz_spmv8_tmp_bytes(&p->w) + 63) / 64 * 64);
#endif
    ctx->params = p;
    return 0;
}

static void sp8_gemm_run(const sqz_op_ctx *ctx) {
    const sp8 *p = ctx->params;
    const int8_t *A = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    int64_t N = p->w.rows, K = p->w.cols, m = 0;
#if defined(__x86_64__) || defined(_M_X64)
    if (p->spmv == sqz_spmv8_vbmi)
        for (; m + 8 <= p->batch; m += 8)
            sqz_spmv8x8_vbmi(&p->w, 0, N, A + m * K, K, ctx->scratch, Y + m * N, N);
#endif
    for (; m < p->batch; m++) p->spmv(&p->w, 0, N, A + m * K, ctx->scratch, Y + m * N);
}

const sqz_op_impl sqz_sparse_i8_conv = {sp8_conv_prepare, sp8_conv_run, sp8_release, sp8_macs};
const sqz_op_impl sqz_sparse_i8_gemm = {sp8_gemm_prepare, sp8_gemm_run, sp8_release, sp8_macs};
