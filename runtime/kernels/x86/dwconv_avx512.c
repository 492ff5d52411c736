/* dwconv_avx512.c - depthwise row kernels, AVX-512F, 16 output columns per
 * vector. Contract in dwconv.h.
 *
 * Stride 1: tap kx of a block is an unaligned load at column c0 + kx.
 * Stride 2: two loads at c0 + 2j give 32 consecutive columns; vpermt2ps
 * splits them into the even (tap 2j) and odd (tap 2j + 1) columns.
 * Two output rows share the loads of their common input rows. Tails (and the
 * stride-2 blocks whose 32-column loads would cross the row end) use masked
 * loads; the left/right padding columns go to the scalar border code. */
#include <immintrin.h>
#include <stdint.h>

#include "dwconv.h"

#define DW_INLINE static inline __attribute__((always_inline))

DW_INLINE __m512 act512(__m512 v, int kind, __m512 va, __m512 vb) {
    switch (kind) {
    case SQZ_ACT_RELU:
        return _mm512_max_ps(v, _mm512_setzero_ps());
    case SQZ_ACT_CLIP:
        return _mm512_min_ps(_mm512_max_ps(v, va), vb);
    case SQZ_ACT_LEAKY_RELU: {
        __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        return _mm512_mask_mul_ps(v, neg, v, va);
    }
    case SQZ_ACT_HARD_SWISH: {
        __m512 t = _mm512_fmadd_ps(v, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f));
        t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(1.0f));
        return _mm512_mul_ps(v, t);
    }
    default:
        return v;
    }
}

DW_INLINE __mmask16 mask_n(int n) {
    if (n <= 0) return 0;
    if (n >= 16) return 0xFFFF;
    return (__mmask16)((1u << n) - 1u);
}

/* One block of n (<= 16) output columns starting at ox, K x K kernel, stride
 * S, one output row (y) or two (TWO: y and y2). FULL: n == 16 and every
 * 16-wide load stays inside the row; otherwise masked loads. */
DW_INLINE void dw_block(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                        const __m512 *wv, int ox, int n, const int K, const int S, const int TWO,
                        const int FULL) {
    const int c0 = ox * S - a->pad_l; /* >= 0 in the interior */
    const int nrows = TWO ? K + S : K;
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __mmask16 mn = mask_n(n);
    __m512 acc0 = _mm512_set1_ps(a->bias), acc1 = acc0;
    for (int r = 0; r < nrows; r++) {
        const float *rp = rows[r] + c0;
        __m512 ev = _mm512_setzero_ps(), od = _mm512_setzero_ps();
        for (int kx = 0; kx < K; kx++) {
            __m512 v;
            if (S == 1) {
                v = FULL ? _mm512_loadu_ps(rp + kx) : _mm512_maskz_loadu_ps(mn, rp + kx);
            } else if ((kx & 1) == 0) {
                __m512 lo, hi;
                if (FULL) {
                    lo = _mm512_loadu_ps(rp + kx);
                    hi = _mm512_loadu_ps(rp + kx + 16);
                } else {
                    int rem = a->in_w - (c0 + kx); /* >= 1: lane 0 is interior */
                    lo = _mm512_maskz_loadu_ps(mask_n(rem), rp + kx);
                    hi = rem > 16 ? _mm512_maskz_loadu_ps(mask_n(rem - 16), rp + kx + 16)
                                  : _mm512_setzero_ps();
                }
                ev = _mm512_permutex2var_ps(lo, even, hi);
                if (kx + 1 < K) od = _mm512_permutex2var_ps(lo, odd, hi);
                v = ev;
            } else {
                v = od;
            }
            if (r < K) acc0 = _mm512_fmadd_ps(wv[r * K + kx], v, acc0);
            if (TWO && r >= S && r - S < K) acc1 = _mm512_fmadd_ps(wv[(r - S) * K + kx], v, acc1);
        }
    }
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    acc0 = act512(acc0, a->act, va, vb);
    if (TWO) acc1 = act512(acc1, a->act, va, vb);
    if (FULL) {
        _mm512_storeu_ps(y + ox, acc0);
        if (TWO) _mm512_storeu_ps(y2 + ox, acc1);
    } else {
        _mm512_mask_storeu_ps(y + ox, mn, acc0);
        if (TWO) _mm512_mask_storeu_ps(y2 + ox, mn, acc1);
    }
}

DW_INLINE void dw_rows(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                       const int K, const int S, const int TWO) {
    const int hi = a->ox_hi;
    __m512 wv[25];
    for (int i = 0; i < K * K; i++) wv[i] = _mm512_set1_ps(a->w[i]);
    sqz_dw_border(a, rows, y, 0, a->ox_lo);
    if (TWO) sqz_dw_border(a, rows + S, y2, 0, a->ox_lo);
    int ox = a->ox_lo;
    /* full blocks: 16 columns, and (stride 2) the 32-wide loads in the row */
    int full_end = hi - 16;
    if (S == 2) {
        /* c0 + K - 1 + 32 <= in_w  <=>  ox <= (in_w + pad_l - K - 31) / 2 */
        int lim = (a->in_w + a->pad_l - K - 31);
        int oxmax = lim < 0 ? -1 : lim / 2;
        if (full_end > oxmax) full_end = oxmax;
    }
    for (; ox <= full_end; ox += 16) dw_block(a, rows, y, y2, wv, ox, 16, K, S, TWO, 1);
    for (; ox < hi; ox += 16) {
        int n = hi - ox < 16 ? hi - ox : 16;
        dw_block(a, rows, y, y2, wv, ox, n, K, S, TWO, 0);
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

sqz_dw_row_fn sqz_dw_row_avx512(int k, int stride) {
    if (k == 3 && stride == 1) return dw3s1;
    if (k == 3 && stride == 2) return dw3s2;
    if (k == 5 && stride == 1) return dw5s1;
    if (k == 5 && stride == 2) return dw5s2;
    return NULL;
}
