/* sparse_avx512.c - CSR row kernels with AVX-512F (contract: kernels/sparse.h).
 * spmm: 64 output columns per step in four accumulators; column tails with
 * masked loads / stores; P <= 16 (sparse Gemm over A^T): one masked vector
 * per row, four accumulators over the entries. spmv: 16 non-zeros per step with an index gather,
 * the row tail masked. */
#include <immintrin.h>

#include "sparse.h"

static __mmask16 lanes(int64_t n) { /* first min(n, 16) lanes, none when n <= 0 */
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

void sqz_spmm_avx512(const sqz_csr *m, int64_t r0, int64_t r1, const float *X, int64_t P,
                     const float *bias, float *Y) {
    const int clamp = m->clamp;
    const __m512 lo = _mm512_set1_ps(m->lo), hi = _mm512_set1_ps(m->hi);
#define CL(a) (clamp ? _mm512_min_ps(_mm512_max_ps(a, lo), hi) : (a))
    if (P == 8) { /* ymm, unmasked loads folded into the FMAs */
        const __m256 lo8 = _mm256_set1_ps(m->lo), hi8 = _mm256_set1_ps(m->hi);
        for (int64_t r = r0; r < r1; r++) {
            const int32_t k1 = m->rowptr[r + 1];
            int32_t k = m->rowptr[r];
            __m256 a0 = _mm256_set1_ps(bias ? bias[r] : 0.0f), a1 = _mm256_setzero_ps(), a2 = a1,
                   a3 = a1;
            for (; k + 4 <= k1; k += 4) {
#define F(a, u)                                                                                    \
    a = _mm256_fmadd_ps(_mm256_set1_ps(m->val[k + u]),                                             \
                        _mm256_loadu_ps(X + (int64_t)m->col[k + u] * 8), a)
                F(a0, 0);
                F(a1, 1);
                F(a2, 2);
                F(a3, 3);
            }
            for (; k < k1; k++) F(a0, 0);
#undef F
            __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
            if (clamp) a = _mm256_min_ps(_mm256_max_ps(a, lo8), hi8);
            _mm256_storeu_ps(Y + r * 8, a);
        }
        return;
    }
    if (P <= 16) { /* one vector per row (Gemm's A^T columns): four chains over the entries */
        const __mmask16 m0 = lanes(P);
        for (int64_t r = r0; r < r1; r++) {
            const int32_t k1 = m->rowptr[r + 1];
            int32_t k = m->rowptr[r];
            __m512 a0 = _mm512_set1_ps(bias ? bias[r] : 0.0f), a1 = _mm512_setzero_ps(), a2 = a1,
                   a3 = a1;
            for (; k + 4 <= k1; k += 4) {
#define F(a, u)                                                                                    \
    a = _mm512_fmadd_ps(_mm512_set1_ps(m->val[k + u]),                                             \
                        _mm512_maskz_loadu_ps(m0, X + (int64_t)m->col[k + u] * P), a)
                F(a0, 0);
                F(a1, 1);
                F(a2, 2);
                F(a3, 3);
            }
            for (; k < k1; k++) F(a0, 0);
#undef F
            _mm512_mask_storeu_ps(Y + r * P, m0,
                                  CL(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))));
        }
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        float *y = Y + r * P;
        const __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);
        const int32_t k0 = m->rowptr[r], k1 = m->rowptr[r + 1];
        int64_t p = 0;
        for (; p + 64 <= P; p += 64) {
            __m512 a0 = b, a1 = b, a2 = b, a3 = b;
            for (int32_t k = k0; k < k1; k++) {
                const float *x = X + (int64_t)m->col[k] * P + p;
                const __m512 v = _mm512_set1_ps(m->val[k]);
                a0 = _mm512_fmadd_ps(v, _mm512_loadu_ps(x), a0);
                a1 = _mm512_fmadd_ps(v, _mm512_loadu_ps(x + 16), a1);
                a2 = _mm512_fmadd_ps(v, _mm512_loadu_ps(x + 32), a2);
                a3 = _mm512_fmadd_ps(v, _mm512_loadu_ps(x + 48), a3);
            }
            _mm512_storeu_ps(y + p, CL(a0));
            _mm512_storeu_ps(y + p + 16, CL(a1));
            _mm512_storeu_ps(y + p + 32, CL(a2));
            _mm512_storeu_ps(y + p + 48, CL(a3));
        }
        if (p < P) { /* < 64 columns left: four masked accumulators (independent chains) */
            const int64_t n = P - p;
            const __mmask16 m0 = lanes(n), m1 = lanes(n - 16), m2 = lanes(n - 32),
                            m3 = lanes(n - 48);
            __m512 a0 = b, a1 = b, a2 = b, a3 = b;
            for (int32_t k = k0; k < k1; k++) {
                const float *x = X + (int64_t)m->col[k] * P + p;
                const __m512 v = _mm512_set1_ps(m->val[k]);
                a0 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m0, x), a0);
                a1 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m1, x + 16), a1);
                a2 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m2, x + 32), a2);
                a3 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m3, x + 48), a3);
            }
            _mm512_mask_storeu_ps(y + p, m0, CL(a0));
            _mm512_mask_storeu_ps(y + p + 16, m1, CL(a1));
            _mm512_mask_storeu_ps(y + p + 32, m2, CL(a2));
            _mm512_mask_storeu_ps(y + p + 48, m3, CL(a3));
        }
    }
}

#undef CL

void sqz_spmv_avx512(const sqz_csr *m, int64_t r0, int64_t r1, const float *x, const float *bias,
                     float *y) {
    for (int64_t r = r0; r < r1; r++) {
        int32_t k = m->rowptr[r];
        const int32_t k1 = m->rowptr[r + 1];
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        for (; k + 32 <= k1; k += 32) {
            const __m512i i0 = _mm512_loadu_si512(m->col + k);
            const __m512i i1 = _mm512_loadu_si512(m->col + k + 16);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(m->val + k), _mm512_i32gather_ps(i0, x, 4), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(m->val + k + 16), _mm512_i32gather_ps(i1, x, 4),
                                 a1);
        }
        for (; k < k1; k += 16) {
            const __mmask16 mk =
                k1 - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k1 - k)) - 1);
            const __m512i i0 = _mm512_maskz_loadu_epi32(mk, m->col + k);
            const __m512 g = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, i0, x, 4);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, m->val + k), g, a0);
        }
        float v = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + (bias ? bias[r] : 0.0f);
        if (m->clamp) {
            v = v > m->lo ? v : m->lo;
            v = v < m->hi ? v : m->hi;
        }
        y[r] = v;
    }
}

/* spmv on the ELL copy (kernels/sparse.h): per block of 16 rows and segment
 * of 32 columns, each step picks its 16 activations from the segment's two
 * registers with one vpermt2ps (index bytes widened by vpmovzxbd) and adds
 * 16 products, one per row lane: no gathers, no per-row horizontal sums.
 * Four accumulators over the steps (FMA latency); the last segment's x
 * loads are masked at cols. */
void sqz_spmv_perm_avx512(const sqz_csr *m, int64_t r0, int64_t r1, const float *x,
                          const float *bias, float *y) {
    const int64_t nseg = m->nseg, cols = m->cols;
    const __m512 lo = _mm512_set1_ps(m->lo), hi = _mm512_set1_ps(m->hi);
    for (int64_t b = r0 / 16; b * 16 < r1; b++) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const int32_t *st = m->ell_step + b * nseg;
        for (int64_t sg = 0; sg < nseg; sg++) {
            int32_t t = st[sg];
            const int32_t t1 = st[sg + 1];
            if (t == t1) continue;
            const __m512 xa = _mm512_maskz_loadu_ps(lanes(cols - 32 * sg), x + 32 * sg),
                         xb = _mm512_maskz_loadu_ps(lanes(cols - 32 * sg - 16), x + 32 * sg + 16);
#define ST(acc, u)                                                                                 \
    acc = _mm512_fmadd_ps(                                                                         \
        _mm512_loadu_ps(m->ell_w + (size_t)(t + u) * 16),                                          \
        _mm512_permutex2var_ps(                                                                    \
            xa,                                                                                    \
            _mm512_cvtepu8_epi32(_mm_loadu_si128(                                                  \
                (const __m128i *)(const void *)(m->ell_idx + (size_t)(t + u) * 16))),              \
            xb),                                                                                   \
        acc)
            for (; t + 4 <= t1; t += 4) {
                ST(a0, 0);
                ST(a1, 1);
                ST(a2, 2);
                ST(a3, 3);
            }
            for (; t < t1; t++) ST(a0, 0);
#undef ST
        }
        /* rows [max(r0, 16 b), min(r1, 16 b + 16)) */
        const int64_t l0 = r0 > b * 16 ? r0 - b * 16 : 0, l1 = r1 - b * 16 < 16 ? r1 - b * 16 : 16;
        const __mmask16 mk = (__mmask16)(((1u << l1) - 1) & ~((1u << l0) - 1));
        __m512 v = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, bias + b * 16));
        if (m->clamp) v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        _mm512_mask_storeu_ps(y + b * 16, mk, v);
    }
}
