/* gemm_avx2.c - 6 x 16 fp32 GEMM microkernel (AVX2 + FMA), see gemm.h.
 *
 * 12 ymm accumulators (6 rows x 2 vectors of 8 columns); per k step two B
 * loads and six A broadcasts feeding 12 FMAs. Variants for fewer rows and
 * for one column vector (n <= 8) come from one always-inline body. Partial
 * columns use maskload / maskstore. */
#include <immintrin.h>
#include <stdint.h>

#include "gemm.h"

#define MR 6
#define NR 16

#if defined(__GNUC__)
#define SQZ_INLINE static inline __attribute__((always_inline))
#else
#define SQZ_INLINE static inline
#endif

SQZ_INLINE __m256 act256(__m256 v, const sqz_gemm_epi *e) {
    switch (e->act) {
    case SQZ_ACT_RELU:
        return _mm256_max_ps(v, _mm256_setzero_ps());
    case SQZ_ACT_CLIP:
        return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(e->alpha)), _mm256_set1_ps(e->beta));
    case SQZ_ACT_LEAKY_RELU: {
        __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
        return _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(e->alpha)), neg);
    }
    case SQZ_ACT_HARD_SWISH: {
        __m256 t = _mm256_add_ps(_mm256_div_ps(v, _mm256_set1_ps(6.0f)), _mm256_set1_ps(0.5f));
        t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
        return _mm256_mul_ps(v, t);
    }
    case SQZ_ACT_HARD_SIGMOID: {
        __m256 t =
            _mm256_add_ps(_mm256_mul_ps(v, _mm256_set1_ps(e->alpha)), _mm256_set1_ps(e->beta));
        return _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
    }
    default:
        return v;
    }
}

static const int32_t mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* lanes [0, cnt) on, cnt in [0, 8] */
SQZ_INLINE __m256i lane_mask(size_t cnt) {
    return _mm256_loadu_si256((const __m256i *)(const void *)(mask_tab + 8 - cnt));
}

SQZ_INLINE void tile(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t n,
                     const sqz_gemm_epi *e, const int rows, const int nv) {
    __m256 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    /* the C tile is read / written after kc steps: fetch it meanwhile */
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);
        if (nv == 2) _mm_prefetch((const char *)(c + (size_t)r * ldc + NR - 1), _MM_HINT_T0);
    }
    for (size_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_setzero_ps();
        if (nv == 2) b1 = _mm256_loadu_ps(b + 8);
        for (int r = 0; r < MR; r++) {
            if (r >= rows) break;
            __m256 ar = _mm256_broadcast_ss(a + r);
            acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
            if (nv == 2) acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
        }
        a += MR;
        b += NR;
    }
    int full = n == NR;
    __m256i k0 = lane_mask(n >= 8 ? 8 : n), k1 = lane_mask(n >= 16 ? 8 : (n > 8 ? n - 8 : 0));
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        float *cr = c + (size_t)r * ldc;
        __m256 v0 = acc[r][0], v1 = acc[r][1];
        if (e->accumulate) {
            if (full) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8));
            } else {
                v0 = _mm256_add_ps(v0, _mm256_maskload_ps(cr, k0));
                if (nv == 2) v1 = _mm256_add_ps(v1, _mm256_maskload_ps(cr + 8, k1));
            }
        } else if (e->bias) {
            __m256 bb = _mm256_broadcast_ss(e->bias + r);
            v0 = _mm256_add_ps(bb, v0);
            if (nv == 2) v1 = _mm256_add_ps(bb, v1);
        }
        if (e->act != SQZ_ACT_NONE) {
            v0 = act256(v0, e);
            if (nv == 2) v1 = act256(v1, e);
        }
        if (full) {
            _mm256_storeu_ps(cr, v0);
            _mm256_storeu_ps(cr + 8, v1);
        } else {
            _mm256_maskstore_ps(cr, k0, v0);
            if (nv == 2) _mm256_maskstore_ps(cr + 8, k1, v1);
        }
    }
}

#define ROWS_CASES(NV)                                                                             \
    switch (m) {                                                                                   \
    case 1:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 1, NV);                                                       \
        break;                                                                                     \
    case 2:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 2, NV);                                                       \
        break;                                                                                     \
    case 3:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 3, NV);                                                       \
        break;                                                                                     \
    case 4:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 4, NV);                                                       \
        break;                                                                                     \
    case 5:                                                                                        \
        tile(kc, a, b, c, ldc, n, e, 5, NV);                                                       \
        break;                                                                                     \
    default:                                                                                       \
        tile(kc, a, b, c, ldc, n, e, 6, NV);                                                       \
        break;                                                                                     \
    }

static void ukernel_avx2(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t m,
                         size_t n, const sqz_gemm_epi *e) {
    if (n > 8) {
        ROWS_CASES(2)
    } else {
        ROWS_CASES(1)
    }
}

/* ---- matrix-vector panel (gemm.h: gemv): rows (1 or 2) x nv vectors of 8
 * columns, KS k steps on KS accumulator sets (8 chains), the panel
 * prefetched GV_PF floats ahead (a line per two vectors) */
#ifndef GV_PF
#define GV_PF 768
#endif

SQZ_INLINE void gv_tile(size_t K, const float *x, size_t ldx, const float *w, size_t n,
                        const float *bias, float *y, size_t ldy, const sqz_gemm_epi *e,
                        const int rows, const int nv) {
    const int KS = rows == 1 ? (nv <= 2 ? 4 : 2) : (nv <= 2 ? 2 : 1);
    const size_t pw = 8 * (size_t)nv;
    const float *x1 = x + (rows == 2 ? ldx : 0);
    __m256 acc[4][2][4];
    for (int s = 0; s < 4; s++)
        for (int r = 0; r < 2; r++)
            for (int v = 0; v < 4; v++) acc[s][r][v] = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + (size_t)KS <= K; k += (size_t)KS) {
        for (int s = 0; s < 4; s++) {
            if (s >= KS) break;
            const float *ws = w + (size_t)s * pw;
            __m256 a0 = _mm256_broadcast_ss(x + k + (size_t)s);
            __m256 a1 = rows == 2 ? _mm256_broadcast_ss(x1 + k + (size_t)s) : a0;
            for (int v = 0; v < 4; v++) {
                if (v >= nv) break;
#if GV_PF > 0
                if (!(v & 1)) _mm_prefetch((const char *)(ws + GV_PF + 8 * v), _MM_HINT_T0);
#endif
                __m256 wv = _mm256_loadu_ps(ws + 8 * v);
                acc[s][0][v] = _mm256_fmadd_ps(a0, wv, acc[s][0][v]);
                if (rows == 2) acc[s][1][v] = _mm256_fmadd_ps(a1, wv, acc[s][1][v]);
            }
        }
        w += (size_t)KS * pw;
    }
    for (; k < K; k++, w += pw) {
        __m256 a0 = _mm256_broadcast_ss(x + k), a1 = _mm256_broadcast_ss(x1 + k);
        for (int v = 0; v < 4; v++) {
            if (v >= nv) break;
            __m256 wv = _mm256_loadu_ps(w + 8 * v);
            acc[0][0][v] = _mm256_fmadd_ps(a0, wv, acc[0][0][v]);
            if (rows == 2) acc[0][1][v] = _mm256_fmadd_ps(a1, wv, acc[0][1][v]);
        }
    }
    for (int v = 0; v < 4; v++) {
        if (v >= nv) break;
        size_t lo = 8 * (size_t)v, cnt = n - lo >= 8 ? 8 : n - lo;
        __m256i mk = lane_mask(cnt);
        __m256 b = bias ? _mm256_maskload_ps(bias + lo, mk) : _mm256_setzero_ps();
        for (int r = 0; r < 2; r++) {
            if (r >= rows) break;
            __m256 t = acc[0][r][v];
            for (int s = 1; s < 4; s++)
                if (s < KS) t = _mm256_add_ps(t, acc[s][r][v]);
            t = _mm256_add_ps(t, b);
            if (e->act != SQZ_ACT_NONE) t = act256(t, e);
            if (cnt == 8)
                _mm256_storeu_ps(y + (size_t)r * ldy + lo, t);
            else
                _mm256_maskstore_ps(y + (size_t)r * ldy + lo, mk, t);
        }
    }
}

#define GV_CASE(NVV)                                                                               \
    case NVV:                                                                                      \
        if (m == 2)                                                                                \
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 2, NVV);                                     \
        else                                                                                       \
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 1, NVV);                                     \
        return;

static void gemv_avx2(size_t K, const float *x, size_t ldx, size_t m, const float *w, size_t nv,
                      size_t n, const float *bias, float *y, size_t ldy, const sqz_gemm_epi *e) {
    switch (nv) {
        GV_CASE(1)
        GV_CASE(2)
        GV_CASE(3)
    default:
        if (m == 2)
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 2, 4);
        else
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 1, 4);
        return;
    }
}

void sqz_x86_conv_add_avx2(const float *y, const float *res, float *out, size_t n, int relu) {
    const __m256 z = _mm256_setzero_ps();
    size_t j = 0;
    /* max(v, 0) is the twin's v > 0 ? v : 0 (NaN and -0 give +0) */
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_add_ps(_mm256_loadu_ps(y + j), _mm256_loadu_ps(res + j));
        _mm256_storeu_ps(out + j, relu ? _mm256_max_ps(v, z) : v);
    }
    for (; j < n; j++) {
        float v = y[j] + res[j];
        out[j] = relu && !(v > 0.0f) ? 0.0f : v;
    }
}

const sqz_gemm_kernel sqz_gemm_avx2 = {"avx2", MR, NR, ukernel_avx2, NULL,      0,
                                       NULL,   0,  0,  NULL,         gemv_avx2, 8};
