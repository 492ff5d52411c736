/* gemm_avx512.c - 8 x 32 fp32 GEMM microkernel (AVX-512F), see gemm.h.
 *
 * 16 zmm accumulators (8 rows x 2 vectors of 16 columns); per k step two
 * B vector loads and eight A broadcasts feeding 16 FMAs. Variants for fewer
 * rows (m < 8) and one column vector (n <= 16) are instantiated from one
 * always-inline body so edge tiles do not pay for the full tile. */
#include <immintrin.h>
#include <stdint.h>

#include "gemm.h"

#define MR 8
#define NR 32
#ifndef A_PF
#define A_PF 512
#endif

#if defined(__GNUC__)
#define SQZ_INLINE static inline __attribute__((always_inline))
#else
#define SQZ_INLINE static inline
#endif

SQZ_INLINE __m512 act512(__m512 v, const sqz_gemm_epi *e) {
    switch (e->act) {
    case SQZ_ACT_RELU:
        return _mm512_max_ps(v, _mm512_setzero_ps());
    case SQZ_ACT_CLIP:
        return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(e->alpha)), _mm512_set1_ps(e->beta));
    case SQZ_ACT_LEAKY_RELU: {
        __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        return _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(e->alpha));
    }
    case SQZ_ACT_HARD_SWISH: {
        __m512 t = _mm512_add_ps(_mm512_div_ps(v, _mm512_set1_ps(6.0f)), _mm512_set1_ps(0.5f));
        t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(1.0f));
        return _mm512_mul_ps(v, t);
    }
    case SQZ_ACT_HARD_SIGMOID: {
        __m512 t =
            _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(e->alpha)), _mm512_set1_ps(e->beta));
        return _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(1.0f));
    }
    default:
        return v;
    }
}

SQZ_INLINE void tile(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t n,
                     const sqz_gemm_epi *e, const int rows, const int nv, const int pf) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    /* the C tile is read / written after kc steps: fetch it meanwhile */
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);
        if (nv == 2) _mm_prefetch((const char *)(c + (size_t)r * ldc + NR - 1), _MM_HINT_T0);
    }
    for (size_t k = 0; k < kc; k++) {
        /* cold A (epi->prefetch_a): fetch A_PF floats ahead, a line per two k */
        if (pf && (k & 1)) _mm_prefetch((const char *)(a + A_PF), _MM_HINT_T0);
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_setzero_ps();
        if (nv == 2) b1 = _mm512_loadu_ps(b + 16);
        for (int r = 0; r < MR; r++) {
            if (r >= rows) break;
            __m512 ar = _mm512_set1_ps(a[r]);
            acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
            if (nv == 2) acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
        }
        a += MR;
        b += NR;
    }
    __mmask16 m0, m1;
    if (n >= 16) {
        m0 = 0xffff;
        m1 = (__mmask16)(n >= 32 ? 0xffff : ((1u << (n - 16)) - 1u));
    } else {
        m0 = (__mmask16)((1u << n) - 1u);
        m1 = 0;
    }
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        float *cr = c + (size_t)r * ldc;
        __m512 v0 = acc[r][0], v1 = acc[r][1];
        if (e->accumulate) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
            if (nv == 2) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + 16));
        } else if (e->bias) {
            __m512 bb = _mm512_set1_ps(e->bias[r]);
            v0 = _mm512_add_ps(bb, v0);
            if (nv == 2) v1 = _mm512_add_ps(bb, v1);
        }
        if (e->act != SQZ_ACT_NONE) {
            v0 = act512(v0, e);
            if (nv == 2) v1 = act512(v1, e);
        }
        _mm512_mask_storeu_ps(cr, m0, v0);
        if (nv == 2) _mm512_mask_storeu_ps(cr + 16, m1, v1);
    }
}

#define ROWS_CASES(NV)                                                                             \
    switch (m) {                                                                                   \
    case 1:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 1, NV, 0);                                                    \
        break;                                                                                     \
    case 2:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 2, NV, 0);                                                    \
        break;                                                                                     \
    case 3:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 3, NV, 0);                                                    \
        break;                                                                                     \
    case 4:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 4, NV, 0);                                                    \
        break;                                                                                     \
    case 5:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 5, NV, 0);                                                    \
        break;                                                                                     \
    case 6:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 6, NV, 0);                                                    \
        break;                                                                                     \
    case 7:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 7, NV, 0);                                                    \
        break;                                                                                     \
    default:                                                                                       \
        tile(kc, a, b, c, ldc, n, e, 8, NV, 0);                                                    \
        break;                                                                                     \
    }

static void ukernel_avx512(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                           size_t m, size_t n, const sqz_gemm_epi *e) {
    if (e->prefetch_a && m == MR && n > 16) {
        tile(kc, a, b, c, ldc, n, e, MR, 2, 1);
    } else if (n > 16) {
        ROWS_CASES(2)
    } else {
        ROWS_CASES(1)
    }
}

const sqz_gemm_kernel sqz_gemm_avx512 = {"avx512", MR, NR, ukernel_avx512};
