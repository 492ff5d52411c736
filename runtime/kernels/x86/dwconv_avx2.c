/* dwconv_avx2.c - depthwise row kernels, AVX2 + FMA, 8 output columns per
 * vector. Contract in dwconv.h.
 *
 * Stride 1: tap kx of a block is an unaligned load at column c0 + kx.
 * Stride 2: two loads at c0 + 2j give 16 consecutive columns; shufps +
 * vpermpd split them into the even (tap 2j) and odd (tap 2j + 1) columns.
 * Two output rows share the loads of their common input rows. Tails (and the
 * stride-2 blocks whose 16-column loads would cross the row end) use vmaskmov
 * loads; left-edge blocks load from column 0 and shift the lanes (zero fill),
 * so every column is computed in SIMD. */
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

/* 8 lanes of X(cc + i): row columns cc.. with zeros outside [0, W). Never
 * touches memory outside the row (a negative start loads from column 0 and
 * shifts the lanes up). */
DW_INLINE __m256 load_cols(const float *row, int cc, int W) {
    if (cc >= W) return _mm256_setzero_ps();
    if (cc >= 0) return _mm256_maskload_ps(row + cc, mask_n(W - cc));
    int sh = -cc;
    if (sh >= 8) return _mm256_setzero_ps();
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 t = _mm256_maskload_ps(row, mask_n(W));
    __m256 v = _mm256_permutevar8x32_ps(t, _mm256_sub_epi32(lane, _mm256_set1_epi32(sh)));
    __m256i keep = _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(sh - 1));
    return _mm256_and_ps(v, _mm256_castsi256_ps(keep));
}

/* NB (1 or 2) blocks of 8 output columns starting at ox (the last one n <= 8
 * wide), K x K kernel, stride S, one output row (y) or two (TWO: y and y2).
 * FULL: every block is 8 wide and every 8-wide load stays inside the row;
 * otherwise (NB == 1) edge loads that zero the padding columns. */
DW_INLINE void dw_block(const sqz_dw_row *a, const float *const *rows, float *y, float *y2, int ox,
                        int n, const int K, const int S, const int TWO, const int FULL,
                        const int NB) {
    const int c0 = ox * S - a->pad_l; /* < 0 only in a left-edge block */
    const int nrows = TWO ? K + S : K;
    const float *w = a->w;
    __m256 acc0[2], acc1[2];
    for (int b = 0; b < NB; b++) acc0[b] = acc1[b] = _mm256_set1_ps(a->bias);
#pragma GCC unroll 8
    for (int r = 0; r < nrows; r++) {
        __m256 ev[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, od[2] = {ev[0], ev[0]};
#pragma GCC unroll 8
        for (int kx = 0; kx < K; kx++) {
            __m256 w0 = _mm256_setzero_ps(), w1 = w0;
            if (r < K) w0 = _mm256_broadcast_ss(w + r * K + kx);
            if (TWO && r >= S && r - S < K) w1 = _mm256_broadcast_ss(w + (r - S) * K + kx);
#pragma GCC unroll 2
            for (int b = 0; b < NB; b++) {
                const int cc = c0 + b * 8 * S + kx;
                __m256 v;
                if (S == 1) {
                    v = FULL ? _mm256_loadu_ps(rows[r] + cc) : load_cols(rows[r], cc, a->in_w);
                } else if ((kx & 1) == 0) {
                    __m256 lo, hi;
                    if (FULL) {
                        lo = _mm256_loadu_ps(rows[r] + cc);
                        hi = _mm256_loadu_ps(rows[r] + cc + 8);
                    } else {
                        lo = load_cols(rows[r], cc, a->in_w);
                        hi = load_cols(rows[r], cc + 8, a->in_w);
                    }
                    deinterleave(lo, hi, &ev[b], &od[b]);
                    v = ev[b];
                } else {
                    v = od[b];
                }
                if (r < K) acc0[b] = _mm256_fmadd_ps(w0, v, acc0[b]);
                if (TWO && r >= S && r - S < K) acc1[b] = _mm256_fmadd_ps(w1, v, acc1[b]);
            }
        }
    }
    const __m256 va = _mm256_set1_ps(a->alpha), vb = _mm256_set1_ps(a->beta);
    const __m256i mn = mask_n(n);
    for (int b = 0; b < NB; b++) {
        __m256 r0 = act256(acc0[b], a->act, va, vb), r1 = r0;
        if (TWO) r1 = act256(acc1[b], a->act, va, vb);
        if (FULL) {
            _mm256_storeu_ps(y + ox + 8 * b, r0);
            if (TWO) _mm256_storeu_ps(y2 + ox + 8 * b, r1);
        } else {
            _mm256_maskstore_ps(y + ox, mn, r0);
            if (TWO) _mm256_maskstore_ps(y2 + ox, mn, r1);
        }
    }
}

/* Every output column in SIMD: edge blocks (left padding, right end) with
 * zero-filling loads, the rest with plain loads. */
DW_INLINE void dw_rows(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                       const int K, const int S, const int TWO) {
    const int OW = a->out_w;
    /* plain-load blocks: ox >= ox_lo, ox + 8 <= ox_hi and (stride 2) the
     * 16-wide loads inside the row: c0 + K - 1 + 16 <= in_w */
    int full_end = a->ox_hi - 8;
    if (S == 2) {
        int lim = a->in_w + a->pad_l - K - 15;
        int oxmax = lim < 0 ? -1 : lim / 2;
        if (full_end > oxmax) full_end = oxmax;
    }
    int ox = 0;
    while (ox < OW && ox < a->ox_lo) {
        int n = OW - ox < 8 ? OW - ox : 8;
        dw_block(a, rows, y, y2, ox, n, K, S, TWO, 0, 1);
        ox += n;
    }
    for (; ox + 8 <= full_end; ox += 16) dw_block(a, rows, y, y2, ox, 8, K, S, TWO, 1, 2);
    for (; ox <= full_end; ox += 8) dw_block(a, rows, y, y2, ox, 8, K, S, TWO, 1, 1);
    for (; ox < OW; ox += 8) {
        int n = OW - ox < 8 ? OW - ox : 8;
        dw_block(a, rows, y, y2, ox, n, K, S, TWO, 0, 1);
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

sqz_dw_row_fn sqz_dw_row_avx2(int k, int stride) {
    if (k == 3 && stride == 1) return dw3s1;
    if (k == 3 && stride == 2) return dw3s2;
    if (k == 5 && stride == 1) return dw5s1;
    if (k == 5 && stride == 2) return dw5s2;
    return NULL;
}
