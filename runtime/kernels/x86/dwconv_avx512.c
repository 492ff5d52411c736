/* dwconv_avx512.c - depthwise row kernels, AVX-512F, 16 output columns per
 * vector. Contract in dwconv.h.
 *
 * Stride 1: tap kx of a block is an unaligned load at column c0 + kx.
 * Stride 2: two loads at c0 + 2j give 32 consecutive columns; vpermt2ps
 * splits them into the even (tap 2j) and odd (tap 2j + 1) columns.
 * Two output rows share the loads of their common input rows. Tails (and the
 * stride-2 blocks whose 32-column loads would cross the row end) use masked
 * loads; the left padding columns use expand-loads (zero-filled lanes), so
 * every column is computed in SIMD. */
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

/* 16 lanes of X(cc + i): row columns cc.. with zeros outside [0, W). Never
 * touches memory outside the row (expand-load for a negative start). */
DW_INLINE __m512 load_cols(const float *row, int cc, int W) {
    if (cc >= W) return _mm512_setzero_ps();
    if (cc >= 0) return _mm512_maskz_loadu_ps(mask_n(W - cc), row + cc);
    int sh = -cc;
    if (sh >= 16) return _mm512_setzero_ps();
    __mmask16 m = (__mmask16)(mask_n(sh + W) & ~mask_n(sh));
    return _mm512_maskz_expandloadu_ps(m, row);
}

/* NB (1 or 2) blocks of 16 output columns starting at ox (the last one n <= 16
 * wide), K x K kernel, stride S, one output row (y) or two (TWO: y and y2).
 * FULL: every block is 16 wide and every 16-wide load stays inside the row;
 * otherwise (NB == 1) edge loads that zero the padding columns. Two blocks
 * keep four independent FMA chains in flight. */
DW_INLINE void dw_block(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                        const __m512 *wv, int ox, int n, const int K, const int S, const int TWO,
                        const int FULL, const int NB) {
    const int c0 = ox * S - a->pad_l; /* < 0 only in a left-edge block */
    const int nrows = TWO ? K + S : K;
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 acc0[2], acc1[2];
    for (int b = 0; b < NB; b++) acc0[b] = acc1[b] = _mm512_set1_ps(a->bias);
#pragma GCC unroll 8
    for (int r = 0; r < nrows; r++) {
        __m512 ev[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()}, od[2] = {ev[0], ev[0]};
#pragma GCC unroll 8
        for (int kx = 0; kx < K; kx++) {
#pragma GCC unroll 2
            for (int b = 0; b < NB; b++) {
                const int cc = c0 + b * 16 * S + kx;
                __m512 v;
                if (S == 1) {
                    v = FULL ? _mm512_loadu_ps(rows[r] + cc) : load_cols(rows[r], cc, a->in_w);
                } else if ((kx & 1) == 0) {
                    __m512 lo, hi;
                    if (FULL) {
                        lo = _mm512_loadu_ps(rows[r] + cc);
                        hi = _mm512_loadu_ps(rows[r] + cc + 16);
                    } else {
                        lo = load_cols(rows[r], cc, a->in_w);
                        hi = load_cols(rows[r], cc + 16, a->in_w);
                    }
                    ev[b] = _mm512_permutex2var_ps(lo, even, hi);
                    if (kx + 1 < K) od[b] = _mm512_permutex2var_ps(lo, odd, hi);
                    v = ev[b];
                } else {
                    v = od[b];
                }
                if (r < K) acc0[b] = _mm512_fmadd_ps(wv[r * K + kx], v, acc0[b]);
                if (TWO && r >= S && r - S < K)
                    acc1[b] = _mm512_fmadd_ps(wv[(r - S) * K + kx], v, acc1[b]);
            }
        }
    }
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    const __mmask16 mn = mask_n(n);
    for (int b = 0; b < NB; b++) {
        __m512 r0 = act512(acc0[b], a->act, va, vb), r1 = r0;
        if (TWO) r1 = act512(acc1[b], a->act, va, vb);
        if (FULL) {
            _mm512_storeu_ps(y + ox + 16 * b, r0);
            if (TWO) _mm512_storeu_ps(y2 + ox + 16 * b, r1);
        } else {
            _mm512_mask_storeu_ps(y + ox, mn, r0);
            if (TWO) _mm512_mask_storeu_ps(y2 + ox, mn, r1);
        }
    }
}

/* Every output column in SIMD: edge blocks (left padding, right end) with
 * zero-filling loads, the rest with plain loads. */
DW_INLINE void dw_rows(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                       const int K, const int S, const int TWO) {
    const int OW = a->out_w;
    __m512 wv[25];
    for (int i = 0; i < K * K; i++) wv[i] = _mm512_set1_ps(a->w[i]);
    /* plain-load blocks: ox >= ox_lo, ox + 16 <= ox_hi and (stride 2) the
     * 32-wide loads inside the row: c0 + K - 1 + 32 <= in_w */
    int full_end = a->ox_hi - 16;
    if (S == 2) {
        int lim = a->in_w + a->pad_l - K - 31;
        int oxmax = lim < 0 ? -1 : lim / 2;
        if (full_end > oxmax) full_end = oxmax;
    }
    int ox = 0;
    /* left edge: one or more general blocks until the plain-load range */
    while (ox < OW && ox < a->ox_lo) {
        int n = OW - ox < 16 ? OW - ox : 16;
        dw_block(a, rows, y, y2, wv, ox, n, K, S, TWO, 0, 1);
        ox += n;
    }
    for (; ox + 16 <= full_end; ox += 32) dw_block(a, rows, y, y2, wv, ox, 16, K, S, TWO, 1, 2);
    for (; ox <= full_end; ox += 16) dw_block(a, rows, y, y2, wv, ox, 16, K, S, TWO, 1, 1);
    for (; ox < OW; ox += 16) {
        int n = OW - ox < 16 ? OW - ox : 16;
        dw_block(a, rows, y, y2, wv, ox, n, K, S, TWO, 0, 1);
    }
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
