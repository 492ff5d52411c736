/* dwconv_avx2.c - depthwise row kernels, AVX2 + FMA, 8 output columns per
 * vector. Contract in dwconv.h.
 *
 * Stride 1: tap kx of a block is an unaligned load at column c0 + kx.
 * Stride 2: two loads at c0 + 2j give 16 consecutive columns; shufps +
 * vpermpd split them into the even (tap 2j) and odd (tap 2j + 1) columns.
 * Two output rows share the loads of their common input rows. Tails (and the
 * stride-2 blocks whose 16-column loads would cross the row end) use vmaskmov
 * loads; the left/right padding columns go to the scalar border code. */
#include <immintrin.h>

#include "dwconv.h"

#define DW_INLINE static inline __attribute__((always_inline))

DW_INLINE __m256 act256(__m256 v, int kind, __m256 va, __m256 vb) {
    switch (kind) {
    case SQZ_ACT_RELU:
        return _mm256_max_ps(v, _mm256_setzero_ps());
    case SQZ_ACT_CLIP:
        return _mm256_min_ps(_mm256_max_ps(v, va), vb);
    case SQZ_ACT_LEAKY_RELU: {
        __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
        return _mm256_blendv_ps(v, _mm256_mul_ps(v, va), neg);
    }
    case SQZ_ACT_HARD_SWISH: {
        __m256 t = _mm256_fmadd_ps(v, _mm256_set1_ps(1.0f / 6.0f), _mm256_set1_ps(0.5f));
        t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
        return _mm256_mul_ps(v, t);
    }
    default:
        return v;
    }
}

/* lanes [0, n) set */
DW_INLINE __m256i mask_n(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

DW_INLINE void deinterleave(__m256 lo, __m256 hi, __m256 *ev, __m256 *od) {
    __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    __m256 o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* One block of n (<= 8) output columns starting at ox, K x K kernel, stride
 * S, one output row (y) or two (TWO: y and y2). FULL: n == 8 and every
 * 8-wide load stays inside the row; otherwise masked loads. */
DW_INLINE void dw_block(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                        const float *w, int ox, int n, const int K, const int S, const int TWO,
                        const int FULL) {
    const int c0 = ox * S - a->pad_l; /* >= 0 in the interior */
    const int nrows = TWO ? K + S : K;
    const __m256i mn = mask_n(n);
    __m256 acc0 = _mm256_set1_ps(a->bias), acc1 = acc0;
    for (int r = 0; r < nrows; r++) {
        const float *rp = rows[r] + c0;
        __m256 ev = _mm256_setzero_ps(), od = _mm256_setzero_ps();
        for (int kx = 0; kx < K; kx++) {
            __m256 v;
            if (S == 1) {
                v = FULL ? _mm256_loadu_ps(rp + kx) : _mm256_maskload_ps(rp + kx, mn);
            } else if ((kx & 1) == 0) {
                __m256 lo, hi;
                if (FULL) {
                    lo = _mm256_loadu_ps(rp + kx);
                    hi = _mm256_loadu_ps(rp + kx + 8);
                } else {
                    int rem = a->in_w - (c0 + kx); /* >= 1: lane 0 is interior */
                    lo = _mm256_maskload_ps(rp + kx, mask_n(rem));
                    hi = rem > 8 ? _mm256_maskload_ps(rp + kx + 8, mask_n(rem - 8))
                                 : _mm256_setzero_ps();
                }
                deinterleave(lo, hi, &ev, &od);
                v = ev;
            } else {
                v = od;
            }
            if (r < K) acc0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + r * K + kx), v, acc0);
            if (TWO && r >= S && r - S < K)
                acc1 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + (r - S) * K + kx), v, acc1);
        }
    }
    const __m256 va = _mm256_set1_ps(a->alpha), vb = _mm256_set1_ps(a->beta);
    acc0 = act256(acc0, a->act, va, vb);
    if (TWO) acc1 = act256(acc1, a->act, va, vb);
    if (FULL) {
        _mm256_storeu_ps(y + ox, acc0);
        if (TWO) _mm256_storeu_ps(y2 + ox, acc1);
    } else {
        _mm256_maskstore_ps(y + ox, mn, acc0);
        if (TWO) _mm256_maskstore_ps(y2 + ox, mn, acc1);
    }
}

DW_INLINE void dw_rows(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                       const int K, const int S, const int TWO) {
    const int hi = a->ox_hi;
    const float *w = a->w;
    sqz_dw_border(a, rows, y, 0, a->ox_lo);
    if (TWO) sqz_dw_border(a, rows + S, y2, 0, a->ox_lo);
    int ox = a->ox_lo;
    /* full blocks: 8 columns, and (stride 2) the 16-wide loads in the row */
    int full_end = hi - 8;
    if (S == 2) {
        /* c0 + K - 1 + 16 <= in_w  <=>  ox <= (in_w + pad_l - K - 15) / 2 */
        int lim = a->in_w + a->pad_l - K - 15;
        int oxmax = lim < 0 ? -1 : lim / 2;
        if (full_end > oxmax) full_end = oxmax;
    }
    for (; ox <= full_end; ox += 8) dw_block(a, rows, y, y2, w, ox, 8, K, S, TWO, 1);
    for (; ox < hi; ox += 8) {
        int n = hi - ox < 8 ? hi - ox : 8;
        dw_block(a, rows, y, y2, w, ox, n, K, S, TWO, 0);
    }
    sqz_dw_border(a, rows, y, hi, a->out_w);
    if (TWO) sqz_dw_border(a, rows + S, y2, hi, a->out_w);
}

#define DW_FN(name, K, S)                                                                          \
    static void name(const sqz_dw_row *a, const float *const *rows, float *y, float *y2) {         \
        if (y2)                                                                                    \
            dw_rows(a, rows, y, y2, K, S, 1);                                                      \
        else                                                                                       \
            dw_rows(a, rows, y, NULL, K, S, 0);                                                    \
    }
DW_FN(dw3s1, 3, 1)
DW_FN(dw3s2, 3, 2)
DW_FN(dw5s1, 5, 1)
DW_FN(dw5s2, 5, 2)

sqz_dw_row_fn sqz_dw_row_avx2(int k, int stride) {
    if (k == 3 && stride == 1) return dw3s1;
    if (k == 3 && stride == 2) return dw3s2;
    if (k == 5 && stride == 1) return dw5s1;
    if (k == 5 && stride == 2) return dw5s2;
    return NULL;
}
