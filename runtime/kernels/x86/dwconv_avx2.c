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
#include <string.h>

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

/* ------------------------------------------------ band kernel for wide planes
 *
 * The AVX2 twin of the AVX-512 band kernel (dwconv_avx512.c): stride-1 planes
 * with 32 < out_w <= 64, input rows copied into a ring of zero-padded,
 * 32-byte aligned rows; each pass computes 4 output rows x up to 2 vectors of
 * 8 columns (8 sums + k weights + 2 loaded vectors: 15 of the 16 registers). */

#define BD_R 4     /* output rows per pass */
#define BD_AHEAD 2 /* bands whose rows are copied ahead of this one */
#define BD_OFF 8   /* ring column of source column 0 */

static int band_row_floats(const sqz_dw_plane *a) {
    const int nv = (a->OW + 7) / 8;
    int need = BD_OFF - a->pl + 8 * nv + a->k - 1, data = BD_OFF + (a->W + 7) / 8 * 8;
    int w = need > data ? need : data;
    return (w + 7) / 8 * 8;
}

static int band_slots(const sqz_dw_plane *a) {
    return BD_AHEAD * BD_R + BD_R - 1 + a->k;
}

size_t sqz_dw_band_floats_avx2(const sqz_dw_plane *a) {
    if ((a->k != 3 && a->k != 5) || a->stride != 1 || a->OW < 1 || a->OH < 1 || a->H < 1 ||
        a->W < 1 || a->pt < 0 || a->pl < 0 || a->pl > BD_OFF || a->W > 4096 || a->OW > 4096)
        return 0;
    /* + 1: the zero row of the vertical padding; + 8: 64-byte multiple */
    size_t n = (size_t)(band_slots(a) + 1) * (size_t)band_row_floats(a);
    return (n + 15) / 16 * 16;
}

void sqz_dw_band_zero_avx2(const sqz_dw_plane *a, float *buf) {
    memset(buf, 0, sqz_dw_band_floats_avx2(a) * sizeof(float));
}

DW_INLINE void band_copy_row(const sqz_dw_plane *a, const float *x, float *dst, __m256i tail) {
    const int W = a->W;
    int i = 0;
    for (; i + 8 <= W; i += 8) _mm256_store_ps(dst + BD_OFF + i, _mm256_loadu_ps(x + i));
    if (i < W) _mm256_store_ps(dst + BD_OFF + i, _mm256_maskload_ps(x + i, tail));
}

#define BD_W(ky) ((ky) == 0 ? w0 : (ky) == 1 ? w1 : (ky) == 2 ? w2 : (ky) == 3 ? w3 : w4)
#define BD_FMA(j, n)                                                                               \
    if (NV > n) a##j##n = _mm256_fmadd_ps(w_, v##n, a##j##n)
#define BD_ROW(j)                                                                                  \
    do {                                                                                           \
        const int ky = u - (j);                                                                    \
        if (ky >= 0 && ky < K) {                                                                   \
            const __m256 w_ = BD_W(ky);                                                            \
            BD_FMA(j, 0);                                                                          \
            BD_FMA(j, 1);                                                                          \
        }                                                                                          \
    } while (0)
#define BD_STORE(j, n)                                                                             \
    do {                                                                                           \
        if (NV > n) {                                                                              \
            const __m256 r_ = act256(a##j##n, a->act, va, vb);                                     \
            if (n < NV - 1 || full)                                                                \
                _mm256_storeu_ps(yr + 8 * (n), r_);                                                \
            else                                                                                   \
                _mm256_maskstore_ps(yr + 8 * (n), mlast, r_);                                      \
        }                                                                                          \
    } while (0)
#define BD_STROW(j)                                                                                \
    if (oy0 + (j) < oend) {                                                                        \
        float *yr = y + (size_t)(oy0 + (j)) * (size_t)a->OW + c0;                                  \
        BD_STORE(j, 0);                                                                            \
        BD_STORE(j, 1);                                                                            \
    }

/* 4 output rows from oy0 (rows < oend stored), NV (1..2) vectors from column
 * c0; rp[u] = ring row of input row oy0 - pt + u */
DW_INLINE void band_pass(const sqz_dw_plane *a, const float *const *rp, float *y, int oy0, int oend,
                         int c0, const int K, const int NV) {
    const int b0 = BD_OFF - a->pl;
    const __m256 z = _mm256_set1_ps(a->bias);
    __m256 a00 = z, a01 = z, a10 = z, a11 = z, a20 = z, a21 = z, a30 = z, a31 = z;
#pragma GCC unroll 5
    for (int kx = 0; kx < K; kx++) {
        const float *wc = a->w + kx;
        const __m256 w0 = _mm256_broadcast_ss(wc), w1 = _mm256_broadcast_ss(wc + K),
                     w2 = _mm256_broadcast_ss(wc + 2 * K);
        const __m256 w3 = K > 3 ? _mm256_broadcast_ss(wc + 3 * K) : w0,
                     w4 = K > 4 ? _mm256_broadcast_ss(wc + 4 * K) : w0;
        const int off = c0 + b0 + kx;
#pragma GCC unroll 16
        for (int u = 0; u < BD_R - 1 + K; u++) {
            const float *r = rp[u] + off;
            __m256 v0 = _mm256_loadu_ps(r), v1 = v0;
            if (NV > 1) v1 = _mm256_loadu_ps(r + 8);
            __asm__("" : "+x"(v0), "+x"(v1));
            BD_ROW(0);
            BD_ROW(1);
            BD_ROW(2);
            BD_ROW(3);
            __asm__(""
                    : "+x"(a00), "+x"(a01), "+x"(a10), "+x"(a11), "+x"(a20), "+x"(a21), "+x"(a30),
                      "+x"(a31));
        }
    }
    const __m256 va = _mm256_set1_ps(a->alpha), vb = _mm256_set1_ps(a->beta);
    const int full = c0 + 8 * NV <= a->OW;
    const __m256i mlast = mask_n(a->OW - c0 - 8 * (NV - 1));
    BD_STROW(0)
    BD_STROW(1)
    BD_STROW(2)
    BD_STROW(3)
}

DW_INLINE void band_run(const sqz_dw_plane *a, const float *x, float *y, float *buf, const int K) {
    const int rf = band_row_floats(a), ns = band_slots(a), nu = BD_R - 1 + K;
    const float *zero = buf + (size_t)ns * (size_t)rf;
    const int nvt = (a->OW + 7) / 8;
    const __m256i tail = mask_n(a->W % 8);
    /* output rows [ob, o1) (sqz_dw_plane.oy0 / oy1) */
    int ob = a->oy0 > 0 ? a->oy0 : 0, o1 = a->oy1 > 0 && a->oy1 < a->OH ? a->oy1 : a->OH;
    int base = ob - a->pt, bslot = ((base % ns) + ns) % ns; /* first row of the band, its slot */
    /* input rows [first, next) were copied; next's slot */
    int next = base > 0 ? base : 0, nslot = next % ns;
    for (int oy0 = ob; oy0 < o1; oy0 += BD_R) {
        int end = oy0 + BD_AHEAD * BD_R + BD_R - 1 - a->pt + K;
        if (end > a->H) end = a->H;
        if (end > o1 - 1 - a->pt + K) end = o1 - 1 - a->pt + K; /* the last row [ob, o1) reads */
        for (; next < end; next++) {
            band_copy_row(a, x + (size_t)next * (size_t)a->W, buf + (size_t)nslot * rf, tail);
            if (++nslot == ns) nslot = 0;
        }
        const float *rp[BD_R - 1 + 5];
        for (int u = 0, sl = bslot; u < nu; u++) {
            const int iy = base + u;
            rp[u] = iy >= 0 && iy < a->H ? buf + (size_t)sl * rf : zero;
            if (++sl == ns) sl = 0;
        }
        base += BD_R;
        bslot += BD_R;
        if (bslot >= ns) bslot -= ns;
        int v = 0;
        for (; v + 2 <= nvt; v += 2) band_pass(a, rp, y, oy0, o1, 8 * v, K, 2);
        if (v < nvt) band_pass(a, rp, y, oy0, o1, 8 * v, K, 1);
    }
}

void sqz_dw_band_run_avx2(const sqz_dw_plane *a, const float *x, float *y, float *buf) {
    if (a->k == 3)
        band_run(a, x, y, buf, 3);
    else
        band_run(a, x, y, buf, 5);
}
