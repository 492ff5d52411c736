/* sparse_avx2.c - CSR row kernels with AVX2 + FMA (contract: kernels/sparse.h).
 * spmm: 32 output columns per step in four accumulators, one broadcast weight
 * and four loads per non-zero; column tails with masked loads / stores (no
 * over-read); P <= 8 (sparse Gemm over A^T): one masked vector per row, four
 * accumulators over the entries. spmv: 8 non-zeros per step with an index gather. */
#include <immintrin.h>

#include "sparse.h"

static __m256i tail_mask(int64_t n) { /* first min(n, 8) lanes, none when n <= 0 */
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}

/* P <= 8 columns: one vector per row, four chains over the entries; full:
 * P == 8, plain loads (folded into the FMAs) instead of masked ones. */
static inline __attribute__((always_inline)) void spmm_narrow(const sqz_csr *m, int64_t r0,
                                                              int64_t r1, const float *X, int64_t P,
                                                              const float *bias, float *Y,
                                                              const int full) {
    const __m256i m0 = tail_mask(P);
    const __m256 lo = _mm256_set1_ps(m->lo), hi = _mm256_set1_ps(m->hi);
    for (int64_t r = r0; r < r1; r++) {
        const int32_t k1 = m->rowptr[r + 1];
        int32_t k = m->rowptr[r];
        __m256 a0 = _mm256_set1_ps(bias ? bias[r] : 0.0f), a1 = _mm256_setzero_ps(), a2 = a1,
               a3 = a1;
        for (; k + 4 <= k1; k += 4) {
#define LD(u)                                                                                      \
    (full ? _mm256_loadu_ps(X + (int64_t)m->col[k + u] * P)                                        \
          : _mm256_maskload_ps(X + (int64_t)m->col[k + u] * P, m0))
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(m->val[k]), LD(0), a0);
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(m->val[k + 1]), LD(1), a1);
            a2 = _mm256_fmadd_ps(_mm256_set1_ps(m->val[k + 2]), LD(2), a2);
            a3 = _mm256_fmadd_ps(_mm256_set1_ps(m->val[k + 3]), LD(3), a3);
        }
        for (; k < k1; k++) a0 = _mm256_fmadd_ps(_mm256_set1_ps(m->val[k]), LD(0), a0);
#undef LD
        __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        if (m->clamp) a = _mm256_min_ps(_mm256_max_ps(a, lo), hi);
        _mm256_maskstore_ps(Y + r * P, m0, a);
    }
}

void sqz_spmm_avx2(const sqz_csr *m, int64_t r0, int64_t r1, const float *X, int64_t P,
                   const float *bias, float *Y) {
    const int clamp = m->clamp;
    const __m256 lo = _mm256_set1_ps(m->lo), hi = _mm256_set1_ps(m->hi);
#define CL(a) (clamp ? _mm256_min_ps(_mm256_max_ps(a, lo), hi) : (a))
    if (P <= 8) { /* one vector per row (Gemm's A^T columns) */
        if (P == 8)
            spmm_narrow(m, r0, r1, X, P, bias, Y, 1);
        else
            spmm_narrow(m, r0, r1, X, P, bias, Y, 0);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        float *y = Y + r * P;
        const __m256 b = _mm256_set1_ps(bias ? bias[r] : 0.0f);
        const int32_t k0 = m->rowptr[r], k1 = m->rowptr[r + 1];
        int64_t p = 0;
        for (; p + 32 <= P; p += 32) {
            __m256 a0 = b, a1 = b, a2 = b, a3 = b;
            for (int32_t k = k0; k < k1; k++) {
                const float *x = X + (int64_t)m->col[k] * P + p;
                const __m256 v = _mm256_set1_ps(m->val[k]);
                a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x), a0);
                a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 8), a1);
                a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 16), a2);
                a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 24), a3);
            }
            _mm256_storeu_ps(y + p, CL(a0));
            _mm256_storeu_ps(y + p + 8, CL(a1));
            _mm256_storeu_ps(y + p + 16, CL(a2));
            _mm256_storeu_ps(y + p + 24, CL(a3));
        }
        if (p < P) { /* < 32 columns left: four masked accumulators (independent chains) */
            const int64_t n = P - p;
            const __m256i m0 = tail_mask(n), m1 = tail_mask(n - 8), m2 = tail_mask(n - 16),
                          m3 = tail_mask(n - 24);
            __m256 a0 = b, a1 = b, a2 = b, a3 = b;
            for (int32_t k = k0; k < k1; k++) {
                const float *x = X + (int64_t)m->col[k] * P + p;
                const __m256 v = _mm256_set1_ps(m->val[k]);
                a0 = _mm256_fmadd_ps(v, _mm256_maskload_ps(x, m0), a0);
                a1 = _mm256_fmadd_ps(v, _mm256_maskload_ps(x + 8, m1), a1);
                a2 = _mm256_fmadd_ps(v, _mm256_maskload_ps(x + 16, m2), a2);
                a3 = _mm256_fmadd_ps(v, _mm256_maskload_ps(x + 24, m3), a3);
            }
            _mm256_maskstore_ps(y + p, m0, CL(a0));
            _mm256_maskstore_ps(y + p + 8, m1, CL(a1));
            _mm256_maskstore_ps(y + p + 16, m2, CL(a2));
            _mm256_maskstore_ps(y + p + 24, m3, CL(a3));
        }
    }
}

#undef CL

static float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void sqz_spmv_avx2(const sqz_csr *m, int64_t r0, int64_t r1, const float *x, const float *bias,
                   float *y) {
    for (int64_t r = r0; r < r1; r++) {
        int32_t k = m->rowptr[r];
        const int32_t k1 = m->rowptr[r + 1];
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        for (; k + 16 <= k1; k += 16) {
            const __m256i i0 = _mm256_loadu_si256((const __m256i *)(m->col + k));
            const __m256i i1 = _mm256_loadu_si256((const __m256i *)(m->col + k + 8));
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(m->val + k), _mm256_i32gather_ps(x, i0, 4), a0);
            a1 =
                _mm256_fmadd_ps(_mm256_loadu_ps(m->val + k + 8), _mm256_i32gather_ps(x, i1, 4), a1);
        }
        for (; k + 8 <= k1; k += 8) {
            const __m256i i0 = _mm256_loadu_si256((const __m256i *)(m->col + k));
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(m->val + k), _mm256_i32gather_ps(x, i0, 4), a0);
        }
        float s = hsum(_mm256_add_ps(a0, a1));
        for (; k < k1; k++) s += m->val[k] * x[m->col[k]];
        s += bias ? bias[r] : 0.0f;
        if (m->clamp) {
            s = s > m->lo ? s : m->lo;
            s = s < m->hi ? s : m->hi;
        }
        y[r] = s;
    }
}
