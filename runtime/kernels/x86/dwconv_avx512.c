/* dwconv_avx512.c - depthwise row kernels, AVX-512F, 16 output columns per
 * vector. Contract in dwconv.h.
 *
 * Stride 1: tap kx of a block is an unaligned load at column c0 + kx.
 * Two output rows share the loads of their common input rows. Tails use
 * masked loads; the left padding columns use expand-loads (zero-filled
 * lanes), so every column is computed in SIMD. Stride 2: the row kernels at
 * the end of the file, on the direct stride-2 kernel's taps. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* NB (1 to 4) blocks of 16 output columns starting at ox (the last one n <= 16
 * wide), K x K kernel, stride 1, one output row (y) or two (TWO: y and y2).
 * FULL: every 16-wide load stays inside the row (the last block's stores are
 * masked when n < 16); otherwise (NB == 1) edge loads that zero the padding
 * columns. Two blocks keep four independent FMA chains in flight. */
DW_INLINE void dw_block(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                        const __m512 *wv, int ox, int n, const int K, const int TWO, const int FULL,
                        const int NB) {
    const int c0 = ox - a->pad_l; /* < 0 only in a left-edge block */
    const int nrows = TWO ? K + 1 : K;
    __m512 acc0[4], acc1[4];
    for (int b = 0; b < NB; b++) acc0[b] = acc1[b] = _mm512_set1_ps(a->bias);
#pragma GCC unroll 8
    for (int r = 0; r < nrows; r++) {
#pragma GCC unroll 8
        for (int kx = 0; kx < K; kx++) {
#pragma GCC unroll 4
            for (int b = 0; b < NB; b++) {
                const int cc = c0 + b * 16 + kx;
                const __m512 v =
                    FULL ? _mm512_loadu_ps(rows[r] + cc) : load_cols(rows[r], cc, a->in_w);
                if (r < K) acc0[b] = _mm512_fmadd_ps(wv[r * K + kx], v, acc0[b]);
                if (TWO && r >= 1) acc1[b] = _mm512_fmadd_ps(wv[(r - 1) * K + kx], v, acc1[b]);
            }
        }
    }
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    const __mmask16 mn = mask_n(n);
    for (int b = 0; b < NB; b++) {
        __m512 r0 = act512(acc0[b], a->act, va, vb), r1 = r0;
        if (TWO) r1 = act512(acc1[b], a->act, va, vb);
        if (FULL && (b < NB - 1 || n == 16)) {
            _mm512_storeu_ps(y + ox + 16 * b, r0);
            if (TWO) _mm512_storeu_ps(y2 + ox + 16 * b, r1);
        } else { /* the last block (n <= 16 wide) */
            _mm512_mask_storeu_ps(y + ox + 16 * b, mn, r0);
            if (TWO) _mm512_mask_storeu_ps(y2 + ox + 16 * b, mn, r1);
        }
    }
}

/* Every output column in SIMD: edge blocks (left padding, right end) with
 * zero-filling loads, the rest with plain loads. */
DW_INLINE void dw_rows(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                       const int K, const int TWO) {
    const int OW = a->out_w;
    __m512 wv[25];
    for (int i = 0; i < K * K; i++) wv[i] = _mm512_set1_ps(a->w[i]);
    /* plain-load blocks: ox >= ox_lo, ox + 16 <= ox_hi */
    const int full_end = a->ox_hi - 16;
    int ox = 0;
    if (a->padded) {
        /* every load inside the row (dwconv.h): plain loads everywhere, the
         * last block's stores masked */
        /* up to four blocks per call: each output vector is a chain of
         * k*k dependent FMAs (4 cycles each), so one or two blocks leave the
         * FMA units mostly idle (56-wide rows: 0.121 -> 0.098 ms with 1-2
         * blocks, see bench_dwconv) */
        for (; ox + 64 <= OW; ox += 64) dw_block(a, rows, y, y2, wv, ox, 16, K, TWO, 1, 4);
        int rem = OW - ox;
        if (rem > 48)
            dw_block(a, rows, y, y2, wv, ox, rem - 48, K, TWO, 1, 4);
        else if (rem > 32)
            dw_block(a, rows, y, y2, wv, ox, rem - 32, K, TWO, 1, 3);
        else if (rem > 16)
            dw_block(a, rows, y, y2, wv, ox, rem - 16, K, TWO, 1, 2);
        else if (rem > 0)
            dw_block(a, rows, y, y2, wv, ox, rem, K, TWO, 1, 1);
        return;
    }
    /* left edge: one or more general blocks until the plain-load range */
    while (ox < OW && ox < a->ox_lo) {
        int n = OW - ox < 16 ? OW - ox : 16;
        dw_block(a, rows, y, y2, wv, ox, n, K, TWO, 0, 1);
        ox += n;
    }
    for (; ox + 16 <= full_end; ox += 32) dw_block(a, rows, y, y2, wv, ox, 16, K, TWO, 1, 2);
    for (; ox <= full_end; ox += 16) dw_block(a, rows, y, y2, wv, ox, 16, K, TWO, 1, 1);
    for (; ox < OW; ox += 16) {
        int n = OW - ox < 16 ? OW - ox : 16;
        dw_block(a, rows, y, y2, wv, ox, n, K, TWO, 0, 1);
    }
}

#define DW_FN(name, K)                                                                             \
    static void name(const sqz_dw_row *a, const float *const *rows, float *y, float *y2) {         \
        if (y2)                                                                                    \
            dw_rows(a, rows, y, y2, K, 1);                                                         \
        else                                                                                       \
            dw_rows(a, rows, y, NULL, K, 0);                                                       \
    }
DW_FN(dw3s1, 3)
DW_FN(dw5s1, 5)

/* ------------------------------------------------ whole small planes
 *
 * Planes whose output rows fit one or two vectors (out_w <= 32: the 28x28,
 * 14x14 and 7x7 stages) waste much of the row kernels' time on edge columns.
 * Here the plane is first copied into a zero-padded buffer (stride 1: padded
 * rows of 48 floats; stride 2: each padded row split into its even and odd
 * columns, 48 floats each, so every tap is one contiguous load), then each
 * output row is one or two 16-lane vectors: k*k FMAs per vector on plain
 * loads, no edge code; R output rows at a time share their input row loads
 * (R = 4, or 2 for two 5x5 vectors: 25 weights + 8 sums stay in registers). Lanes past out_w
 * compute garbage from the buffer's slack and are not stored. The padding of the buffer is zeroed
 * once per buffer (sqz_dw_plane_zero_avx512): the data columns and rows are the same for every
 * plane of a layer. */

#define PL_LD 48 /* floats per padded row (per half row for stride 2) */

/* the output rows to compute, [*r0, *r1) (sqz_dw_plane.oy0 / oy1) */
static void plane_range(const sqz_dw_plane *a, int *r0, int *r1) {
    int e = a->oy1 > 0 && a->oy1 < a->OH ? a->oy1 : a->OH;
    int b = a->oy0 > 0 ? a->oy0 : 0;
    *r0 = b < e ? b : e;
    *r1 = e;
}

/* rows of the padded plane the outputs read, and its data rows / columns */
static void plane_dims(const sqz_dw_plane *a, int *nrows, int *rows_data, int *cols_data) {
    int nr = (a->OH - 1) * a->stride + a->k, nc = (a->OW - 1) * a->stride + a->k;
    int rd = nr - a->pt < a->H ? nr - a->pt : a->H, cd = nc - a->pl < a->W ? nc - a->pl : a->W;
    *nrows = nr;
    *rows_data = rd < 0 ? 0 : rd;
    *cols_data = cd < 0 ? 0 : cd;
}

size_t sqz_dw_plane_floats_avx512(const sqz_dw_plane *a) {
    if ((a->k != 3 && a->k != 5) || (a->stride != 1 && a->stride != 2) || a->OW < 1 || a->OW > 32 ||
        a->OH < 1 || a->pt < 0 || a->pl < 0 || a->pt >= a->k || a->pl >= a->k)
        return 0;
    int nr, rd, cd;
    plane_dims(a, &nr, &rd, &cd);
    /* data columns inside a padded row (stride 1: < 48, stride 2: < 96; the
     * stride-2 split handles source columns up to 64 + 16 - pl) */
    if (a->pl + cd > PL_LD * a->stride - 1 || (a->stride == 2 && cd > 64 + 16 - a->pl)) return 0;
    /* + slack for the last row's loads */
    size_t n = (size_t)nr * (size_t)(PL_LD * a->stride) + 64;
    return n <= ((size_t)1 << 18) ? n : 0; /* tall planes (> 1 MiB buffers): the row kernels */
}

void sqz_dw_plane_zero_avx512(const sqz_dw_plane *a, float *buf) {
    memset(buf, 0, sqz_dw_plane_floats_avx512(a) * sizeof(float));
}

DW_INLINE __mmask16 mask_16(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n < 0 ? 0 : n)) - 1u);
}

/* copy the plane's data rows into the buffer (padding untouched) */
static void plane_pack(const sqz_dw_plane *a, const float *x, float *buf) {
    int nr, rd, cd, o0, o1;
    plane_dims(a, &nr, &rd, &cd);
    plane_range(a, &o0, &o1);
    /* data rows [r0, rd) the output rows [o0, o1) read */
    int r0 = o0 * a->stride - a->pt;
    if (r0 < 0) r0 = 0;
    if (o1 > o0 && (o1 - 1) * a->stride - a->pt + a->k < rd)
        rd = (o1 - 1) * a->stride - a->pt + a->k;
    if (o1 <= o0) rd = 0;
    if (a->stride == 1) {
        const __mmask16 m0 = mask_16(cd), m1 = mask_16(cd - 16), m2 = mask_16(cd - 32);
        for (int r = r0; r < rd; r++) {
            const float *src = x + (size_t)r * (size_t)a->W;
            float *dst = buf + (size_t)(r + a->pt) * PL_LD + a->pl;
            _mm512_mask_storeu_ps(dst, m0, _mm512_maskz_loadu_ps(m0, src));
            if (cd > 16) _mm512_mask_storeu_ps(dst + 16, m1, _mm512_maskz_loadu_ps(m1, src + 16));
            if (cd > 32) _mm512_mask_storeu_ps(dst + 32, m2, _mm512_maskz_loadu_ps(m2, src + 32));
        }
        return;
    }
    /* stride 2: padded column c = source column c - pl goes to half c & 1 at
     * c >> 1. Lanes j < 16 of the halves take source columns 2j - pl and
     * 2j + 1 - pl (zero where outside [0, cd)); lanes 16g + j (g = 1, 2) the
     * columns 32g - pl + 2j (+ 1), loaded from there (only when the data
     * reaches them) */
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i ev2 = _mm512_add_epi32(lane, lane),
                  od2 = _mm512_add_epi32(ev2, _mm512_set1_epi32(1));
    const __m512i ie = _mm512_sub_epi32(ev2, _mm512_set1_epi32(a->pl));
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    const __m512i zero = _mm512_setzero_si512(), lim = _mm512_set1_epi32(cd);
    const __mmask16 me0 = _mm512_cmpge_epi32_mask(ie, zero) & _mm512_cmplt_epi32_mask(ie, lim);
    const __mmask16 mo0 = _mm512_cmpge_epi32_mask(io, zero) & _mm512_cmplt_epi32_mask(io, lim);
    const __mmask16 m0 = mask_16(cd), m1 = mask_16(cd - 16);
    const __m512i iep = _mm512_and_si512(ie, _mm512_set1_epi32(31)),
                  iop = _mm512_and_si512(io, _mm512_set1_epi32(31));
    for (int r = r0; r < rd; r++) {
        const float *src = x + (size_t)r * (size_t)a->W;
        float *dst = buf + (size_t)(r + a->pt) * 2 * PL_LD;
        __m512 z0 = _mm512_maskz_loadu_ps(m0, src), z1 = _mm512_maskz_loadu_ps(m1, src + 16);
        _mm512_storeu_ps(dst, _mm512_maskz_permutex2var_ps(me0, z0, iep, z1));
        _mm512_storeu_ps(dst + PL_LD, _mm512_maskz_permutex2var_ps(mo0, z0, iop, z1));
        for (int g = 1; g <= 2; g++) {
            const int st = 32 * g - a->pl;
            if (cd <= st) break;
            __m512 z2 = _mm512_maskz_loadu_ps(mask_16(cd - st), src + st);
            __m512 z3 = _mm512_maskz_loadu_ps(mask_16(cd - st - 16), src + st + 16);
            _mm512_storeu_ps(dst + 16 * g, _mm512_permutex2var_ps(z2, ev2, z3));
            _mm512_storeu_ps(dst + PL_LD + 16 * g, _mm512_permutex2var_ps(z2, od2, z3));
        }
    }
}

/* lanes j of the 32-float concatenation hi:lo from s (0..4): lo[j + s] or
 * hi[j + s - 16] (valignd; the switch keeps the shift an immediate at -O0) */
DW_INLINE __m512 shift_lanes(__m512 lo, __m512 hi, int s) {
    const __m512i l = _mm512_castps_si512(lo), h = _mm512_castps_si512(hi);
    switch (s) {
    case 1:
        return _mm512_castsi512_ps(_mm512_alignr_epi32(h, l, 1));
    case 2:
        return _mm512_castsi512_ps(_mm512_alignr_epi32(h, l, 2));
    case 3:
        return _mm512_castsi512_ps(_mm512_alignr_epi32(h, l, 3));
    case 4:
        return _mm512_castsi512_ps(_mm512_alignr_epi32(h, l, 4));
    default:
        return lo;
    }
}

/* R output rows from oy, NV vectors of 16 columns each (K x K, stride S) */
DW_INLINE void plane_rows(const sqz_dw_plane *a, const float *buf, float *y, const __m512 *wv,
                          int oy, const int K, const int S, const int R, const int NV) {
    const int ld = PL_LD * S;
    __m512 acc[8][2];
    for (int j = 0; j < R; j++)
        for (int n = 0; n < NV; n++) acc[j][n] = _mm512_set1_ps(a->bias);
#pragma GCC unroll 32
    for (int r = 0; r < (R - 1) * S + K; r++) {
        const float *row = buf + (size_t)(oy * S + r) * (size_t)ld;
        if (S == 1) {
#pragma GCC unroll 2
            for (int n = 0; n < NV; n++) {
                /* the taps' vectors from 64-byte aligned loads (rows start at
                 * multiples of 16 floats) and valignd: an unaligned load splits
                 * a cache line and costs about 2.7 aligned ones here
                 * (bench_dwconv 240x28x28 k5 35 -> 43, 192x28x28 k3 25 -> 31
                 * GMAC/s; stride 2 showed no gain) */
                const __m512 lo = _mm512_loadu_ps(row + 16 * n),
                             hi = _mm512_loadu_ps(row + 16 * n + 16);
#pragma GCC unroll 8
                for (int kx = 0; kx < K; kx++) {
                    const __m512 v = shift_lanes(lo, hi, kx);
#pragma GCC unroll 8
                    for (int j = 0; j < R; j++) {
                        const int ky = r - j;
                        if (ky >= 0 && ky < K)
                            acc[j][n] = _mm512_fmadd_ps(wv[ky * K + kx], v, acc[j][n]);
                    }
                }
            }
            continue;
        }
#pragma GCC unroll 8
        for (int kx = 0; kx < K; kx++) {
#pragma GCC unroll 2
            for (int n = 0; n < NV; n++) {
                __m512 v = _mm512_loadu_ps(row + (kx & 1) * PL_LD + (kx >> 1) + 16 * n);
#pragma GCC unroll 8
                for (int j = 0; j < R; j++) {
                    const int ky = r - j * S;
                    if (ky >= 0 && ky < K)
                        acc[j][n] = _mm512_fmadd_ps(wv[ky * K + kx], v, acc[j][n]);
                }
            }
        }
    }
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    for (int j = 0; j < R; j++)
        for (int n = 0; n < NV; n++)
            _mm512_mask_storeu_ps(y + (size_t)(oy + j) * (size_t)a->OW + 16 * n,
                                  mask_16(a->OW - 16 * n), act512(acc[j][n], a->act, va, vb));
}

#ifndef PLANE_RM
#define PLANE_RM(nv) ((nv) == 1 ? 8 : 4)
#endif

DW_INLINE void plane_run(const sqz_dw_plane *a, const float *buf, float *y, const int K,
                         const int S, const int NV) {
    __m512 wv[25];
    for (int i = 0; i < K * K; i++) wv[i] = _mm512_set1_ps(a->w[i]);
    int oy, o1;
    plane_range(a, &oy, &o1);
    /* RM rows a step: 8 independent FMA chains (each k*k FMAs of 4 cycles'
     * latency; 4 chains left half the FMA slots idle), then the remaining
     * rows in one step */
    const int RM = PLANE_RM(NV);
    for (; oy + RM <= o1; oy += RM) plane_rows(a, buf, y, wv, oy, K, S, RM, NV);
    switch (o1 - oy) {
    case 1:
        plane_rows(a, buf, y, wv, oy, K, S, 1, NV);
        break;
    case 2:
        plane_rows(a, buf, y, wv, oy, K, S, 2, NV);
        break;
    case 3:
        plane_rows(a, buf, y, wv, oy, K, S, 3, NV);
        break;
    case 4:
        if (RM > 4) plane_rows(a, buf, y, wv, oy, K, S, 4, NV);
        break;
    case 5:
        if (RM > 5) plane_rows(a, buf, y, wv, oy, K, S, 5, NV);
        break;
    case 6:
        if (RM > 6) plane_rows(a, buf, y, wv, oy, K, S, 6, NV);
        break;
    case 7:
        if (RM > 7) plane_rows(a, buf, y, wv, oy, K, S, 7, NV);
        break;
    default:
        break;
    }
}

void sqz_dw_plane_pack_avx512(const sqz_dw_plane *a, const float *x, float *buf) {
    plane_pack(a, x, buf);
}

void sqz_dw_plane_compute_avx512(const sqz_dw_plane *a, const float *buf, float *y) {
    const int two = a->OW > 16;
    if (a->k == 3 && a->stride == 1)
        two ? plane_run(a, buf, y, 3, 1, 2) : plane_run(a, buf, y, 3, 1, 1);
    if (a->k == 3 && a->stride == 2)
        two ? plane_run(a, buf, y, 3, 2, 2) : plane_run(a, buf, y, 3, 2, 1);
    if (a->k == 5 && a->stride == 1)
        two ? plane_run(a, buf, y, 5, 1, 2) : plane_run(a, buf, y, 5, 1, 1);
    if (a->k == 5 && a->stride == 2)
        two ? plane_run(a, buf, y, 5, 2, 2) : plane_run(a, buf, y, 5, 2, 1);
}

/* ------------------------------------------------ channel blocks of small planes
 *
 * Planes with out_w <= 8 (the 7x7 stage): 16 channels at a time, the lanes
 * are channels. The 16 planes are transposed (16x16 in registers) into a
 * zero-padded buffer T[row][col][16], every output pixel is then k*k FMAs on
 * aligned loads (a 16-lane vector of tap weights, one per channel, times the
 * 16 channels of one input pixel) with all lanes useful, and the outputs are
 * transposed back. Row-vector kernels on such planes use 7 of 16 lanes and
 * unaligned loads that split cache lines (about 2.7x the cost of an aligned
 * load here). */

/* 16x16 transpose of r[0..15] in place (rows <-> lanes) */
DW_INLINE void tr16(__m512 *r) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    __m512 s[4][4];
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 2]);
        __m512d c = _mm512_castps_pd(t[4 * g + 1]), d = _mm512_castps_pd(t[4 * g + 3]);
        s[g][0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        s[g][1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        s[g][2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        s[g][3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    /* s[g][m] lane L: pixel 4L + m, channels 4g .. 4g + 3 */
    for (int m = 0; m < 4; m++) {
        __m512 v0 = _mm512_shuffle_f32x4(s[0][m], s[1][m], 0x44);
        __m512 v1 = _mm512_shuffle_f32x4(s[0][m], s[1][m], 0xEE);
        __m512 v2 = _mm512_shuffle_f32x4(s[2][m], s[3][m], 0x44);
        __m512 v3 = _mm512_shuffle_f32x4(s[2][m], s[3][m], 0xEE);
        r[m] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + m] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[8 + m] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

/* padded rows of T and their width in pixels: room for CB_NPX(OW) outputs
 * per row (columns past the data stay zero) */
#define CB_NPX(ow) ((ow) <= 4 ? 4 : (ow) == 7 ? 7 : 8)
static void cb_dims(const sqz_dw_plane *a, int *hp, int *wp) {
    *hp = (a->OH - 1) * a->stride + a->k;
    *wp = (CB_NPX(a->OW) - 1) * a->stride + a->k;
}

size_t sqz_dw_cb_floats_avx512(const sqz_dw_plane *a) {
    if ((a->k != 3 && a->k != 5) || (a->stride != 1 && a->stride != 2) || a->OW < 1 || a->OW > 8 ||
        a->OH < 1 || a->OH > 64 || a->H < 1 || a->W < 1 || a->pt < 0 || a->pl < 0 ||
        a->pt >= a->k || a->pl >= a->k)
        return 0;
    int hp, wp;
    cb_dims(a, &hp, &wp);
    size_t out_px = ((size_t)a->OH * (size_t)a->OW + 15) / 16 * 16;
    return ((size_t)hp * (size_t)wp + out_px) * 16;
}

void sqz_dw_cb_zero_avx512(const sqz_dw_plane *a, float *buf) {
    memset(buf, 0, sqz_dw_cb_floats_avx512(a) * sizeof(float));
}

/* Output rows oy and oy + 1 (TWO), NPX (4, 7 or 8) pixels each (those past OW
 * read T's zero columns and are not stored): per tap row ky its k weight
 * vectors are loaded once, then each input pixel of the row once for the (up
 * to k) outputs it feeds. 16 sums as named variables pinned to registers after
 * every tap row (arrays of sums stayed on the stack and the old 4-pixel /
 * 1-pixel steps loaded a weight per FMA: bench_dwconv). */
#define CB_W(kx) ((kx) == 0 ? w0 : (kx) == 1 ? w1 : (kx) == 2 ? w2 : (kx) == 3 ? w3 : w4)
#define CB_FMA(acc, ox)                                                                            \
    do {                                                                                           \
        const int kx = c - S * (ox);                                                               \
        if ((ox) < NPX && kx >= 0 && kx < K) acc##ox = _mm512_fmadd_ps(CB_W(kx), v, acc##ox);      \
    } while (0)
#define CB_ROW(acc)                                                                                \
    do {                                                                                           \
        CB_FMA(acc, 0);                                                                            \
        CB_FMA(acc, 1);                                                                            \
        CB_FMA(acc, 2);                                                                            \
        CB_FMA(acc, 3);                                                                            \
        CB_FMA(acc, 4);                                                                            \
        CB_FMA(acc, 5);                                                                            \
        CB_FMA(acc, 6);                                                                            \
        CB_FMA(acc, 7);                                                                            \
    } while (0)
#define CB_ST(acc, row, ox)                                                                        \
    if ((ox) < a->OW)                                                                              \
    _mm512_store_ps(O + (size_t)((row)*a->OW + (ox)) * 16, act512(acc##ox, a->act, va, vb))

DW_INLINE void cb_rows(const sqz_dw_plane *a, const float *T, int wp, float *O, int oy, const int K,
                       const int S, const int NPX, const int TWO) {
    const __m512 bias = _mm512_loadu_ps(a->b);
    __m512 p0 = bias, p1 = bias, p2 = bias, p3 = bias, p4 = bias, p5 = bias, p6 = bias, p7 = bias;
    __m512 q0 = bias, q1 = bias, q2 = bias, q3 = bias, q4 = bias, q5 = bias, q6 = bias, q7 = bias;
#pragma GCC unroll 5
    for (int ky = 0; ky < K; ky++) {
        const float *wr = a->w + (size_t)(ky * K) * 16;
        const __m512 w0 = _mm512_loadu_ps(wr), w1 = _mm512_loadu_ps(wr + 16),
                     w2 = _mm512_loadu_ps(wr + 32);
        const __m512 w3 = K > 3 ? _mm512_loadu_ps(wr + 48) : w0,
                     w4 = K > 4 ? _mm512_loadu_ps(wr + 64) : w0;
        const float *r0 = T + (size_t)((oy * S + ky) * wp) * 16;
        const float *r1 = r0 + (size_t)(S * wp) * 16;
#pragma GCC unroll 20
        for (int c = 0; c < (NPX - 1) * S + K; c++) {
            __m512 v = _mm512_load_ps(r0 + c * 16);
            __asm__("" : "+v"(v));
            CB_ROW(p);
            if (TWO) {
                v = _mm512_load_ps(r1 + c * 16);
                __asm__("" : "+v"(v));
                CB_ROW(q);
            }
        }
        __asm__(""
                : "+v"(p0), "+v"(p1), "+v"(p2), "+v"(p3), "+v"(p4), "+v"(p5), "+v"(p6), "+v"(p7));
        __asm__(""
                : "+v"(q0), "+v"(q1), "+v"(q2), "+v"(q3), "+v"(q4), "+v"(q5), "+v"(q6), "+v"(q7));
    }
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    CB_ST(p, oy, 0);
    CB_ST(p, oy, 1);
    CB_ST(p, oy, 2);
    CB_ST(p, oy, 3);
    CB_ST(p, oy, 4);
    CB_ST(p, oy, 5);
    CB_ST(p, oy, 6);
    CB_ST(p, oy, 7);
    if (TWO) {
        CB_ST(q, oy + 1, 0);
        CB_ST(q, oy + 1, 1);
        CB_ST(q, oy + 1, 2);
        CB_ST(q, oy + 1, 3);
        CB_ST(q, oy + 1, 4);
        CB_ST(q, oy + 1, 5);
        CB_ST(q, oy + 1, 6);
        CB_ST(q, oy + 1, 7);
    }
}

DW_INLINE void cb_compute(const sqz_dw_plane *a, const float *T, int wp, float *O, const int K,
                          const int S, const int NPX) {
    int oy = 0;
    for (; oy + 2 <= a->OH; oy += 2) cb_rows(a, T, wp, O, oy, K, S, NPX, 1);
    if (oy < a->OH) cb_rows(a, T, wp, O, oy, K, S, NPX, 0);
}

/* tails of up to this many pixels move by gathers / scatters (bench_dwconv,
 * two interleaved runs each, load ~6: 1152x7x7 k3 22.2-24.9 -> 25.5-25.7,
 * 960x7x7 k3 22.3-25.0 -> 24.5-26.8, 576x14x14 k3 s2 11.7-12.3 -> 13.9-14.0
 * GMAC/s; the 5x5 layers within noise) */
#define CB_GATHER_MAX 4

void sqz_dw_cb_run_avx512(const sqz_dw_plane *a, const float *x, float *y, float *buf) {
    int hp, wp;
    cb_dims(a, &hp, &wp);
    float *T = buf, *O = buf + (size_t)hp * (size_t)wp * 16;
    const size_t in_sp = (size_t)a->H * (size_t)a->W, out_sp = (size_t)a->OH * (size_t)a->OW;
    const int dw = (a->OW - 1) * a->stride + a->k; /* padded columns the outputs read */
    /* in: 16 pixels of every channel, transposed, to their padded places (the
     * zero padding of T is written once, by sqz_dw_cb_zero_avx512) */
    int iy = 0, ix = 0;
    const __mmask16 mc = mask_n(a->nc);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i cin = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)in_sp));
    for (size_t q = 0; q < in_sp; q += 16) {
        const int n = in_sp - q < 16 ? (int)(in_sp - q) : 16;
        if (n <= CB_GATHER_MAX) {
            /* a short tail (49 = 3 x 16 + 1 pixels): a gather per pixel (the
             * nc channels) instead of a 16x16 transpose for n pixels */
            for (int j = 0; j < n; j++) {
                const int ty = iy + a->pt, tx = ix + a->pl;
                if (ty < hp && tx < dw)
                    _mm512_store_ps(T + (size_t)(ty * wp + tx) * 16,
                                    _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mc, cin,
                                                             x + q + (size_t)j, 4));
                if (++ix == a->W) {
                    ix = 0;
                    iy++;
                }
            }
            continue;
        }
        const __mmask16 m = mask_n(n);
        __m512 r[16];
        for (int c = 0; c < 16; c++)
            r[c] = c < a->nc ? _mm512_maskz_loadu_ps(m, x + (size_t)c * in_sp + q)
                             : _mm512_setzero_ps();
        tr16(r);
        for (int j = 0; j < n; j++) {
            const int ty = iy + a->pt, tx = ix + a->pl;
            if (ty < hp && tx < dw) _mm512_store_ps(T + (size_t)(ty * wp + tx) * 16, r[j]);
            if (++ix == a->W) {
                ix = 0;
                iy++;
            }
        }
    }
    /* 7-wide rows (the 7x7 stage): 7 sums a row, not 8 with one thrown away
     * (bench_dwconv, interleaved x2: 1152x7x7 k5 31.7-32.3 -> 34.5-34.6
     * GMAC/s, k3 20.5 -> 21.1-21.4, 576x14x14 k5 s2 19.3-19.6 -> 20.6-20.8) */
    if (a->OW == 7) {
        if (a->k == 3)
            a->stride == 1 ? cb_compute(a, T, wp, O, 3, 1, 7) : cb_compute(a, T, wp, O, 3, 2, 7);
        else
            a->stride == 1 ? cb_compute(a, T, wp, O, 5, 1, 7) : cb_compute(a, T, wp, O, 5, 2, 7);
    } else if (a->OW <= 4) {
        if (a->k == 3)
            a->stride == 1 ? cb_compute(a, T, wp, O, 3, 1, 4) : cb_compute(a, T, wp, O, 3, 2, 4);
        else
            a->stride == 1 ? cb_compute(a, T, wp, O, 5, 1, 4) : cb_compute(a, T, wp, O, 5, 2, 4);
    } else {
        if (a->k == 3)
            a->stride == 1 ? cb_compute(a, T, wp, O, 3, 1, 8) : cb_compute(a, T, wp, O, 3, 2, 8);
        else
            a->stride == 1 ? cb_compute(a, T, wp, O, 5, 1, 8) : cb_compute(a, T, wp, O, 5, 2, 8);
    }
    /* out: 16 pixels of the 16 channels, transposed back */
    const __m512i cout = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)out_sp));
    for (size_t q = 0; q < out_sp; q += 16) {
        const int n = out_sp - q < 16 ? (int)(out_sp - q) : 16;
        if (n <= CB_GATHER_MAX) { /* a scatter per pixel */
            for (int j = 0; j < n; j++)
                _mm512_mask_i32scatter_ps(y + q + (size_t)j, mc, cout,
                                          _mm512_load_ps(O + (q + (size_t)j) * 16), 4);
            continue;
        }
        __m512 r[16];
        for (int j = 0; j < 16; j++)
            r[j] = j < n ? _mm512_load_ps(O + (q + (size_t)j) * 16) : _mm512_setzero_ps();
        tr16(r);
        const __mmask16 m = mask_n(n);
        for (int c = 0; c < a->nc; c++) _mm512_mask_storeu_ps(y + (size_t)c * out_sp + q, m, r[c]);
    }
}

/* ------------------------------------------------ band kernel for wide planes
 *
 * Stride-1 planes with 32 < out_w <= 64 (the 56x56 stage). Input rows are
 * copied (each once per plane) into a ring of zero-padded, 64-byte aligned
 * rows, so every tap is a plain 16-lane load with no edge code. Each pass
 * computes 4 output rows x NV vectors of 16 columns (up to 16 sums in
 * registers). The ring holds the rows of this band and the next BD_AHEAD
 * ones, copied ahead of their use.
 * bench_dwconv, same run, vs the kernels before (the padded-row ring of the
 * row kernels): 56x56 k3 1.08-1.34x; at 112x112 (0.90-0.97x, memory-bound
 * copies), 28x28 (whole-plane kernel) and stride 2 (an even / odd split copy:
 * 0.86-1.05x) it did not pay, so those keep their kernels. */

#define BD_R 4     /* output rows per pass */
#define BD_AHEAD 2 /* bands whose rows are copied ahead of this one */

/* Ring rows: the source row's data starts at float 16 (64-byte aligned
 * stores, unaligned loads from the source), padded column p at BD_OFF - pl + p.
 * Floats [0, 16) and past the data stay zero. */
#define BD_OFF 16

/* floats of one ring row */
static int band_row_floats(const sqz_dw_plane *a) {
    const int nv = (a->OW + 15) / 16;
    int need = BD_OFF - a->pl + 16 * nv + a->k - 1, data = BD_OFF + (a->W + 15) / 16 * 16;
    int w = need > data ? need : data;
    return (w + 15) / 16 * 16;
}

static int band_slots(const sqz_dw_plane *a) {
    return BD_AHEAD * BD_R + BD_R - 1 + a->k;
}

size_t sqz_dw_band_floats_avx512(const sqz_dw_plane *a) {
    if ((a->k != 3 && a->k != 5) || a->stride != 1 || a->OW < 1 || a->OH < 1 || a->H < 1 ||
        a->W < 1 || a->pt < 0 || a->pl < 0 || a->pl > BD_OFF || a->W > 4096 || a->OW > 4096)
        return 0;
    /* + 1: the zero row of the vertical padding */
    return (size_t)(band_slots(a) + 1) * (size_t)band_row_floats(a);
}

void sqz_dw_band_zero_avx512(const sqz_dw_plane *a, float *buf) {
    memset(buf, 0, sqz_dw_band_floats_avx512(a) * sizeof(float));
}

/* input row x into ring row dst (its zero columns are never written). The
 * stores are aligned: storing the row at dst + pl instead split every store
 * across two cache lines (9 cycles per 56-wide row, a third of the band). */
DW_INLINE void band_copy_row(const sqz_dw_plane *a, const float *x, float *dst, __mmask16 tail) {
    const int W = a->W;
    int i = 0;
    for (; i + 16 <= W; i += 16) _mm512_store_ps(dst + BD_OFF + i, _mm512_loadu_ps(x + i));
    if (i < W) _mm512_store_ps(dst + BD_OFF + i, _mm512_maskz_loadu_ps(tail, x + i));
}

/* BD_R (4) output rows from oy0 (only rows < oend stored), NV (1..4) vectors
 * from column c0; rp[u] = ring row of input row oy0 - pt + u. Per tap
 * column kx its k weights are broadcast, then each input row of the band is
 * loaded once (NV vectors) for the up to k output rows it feeds: up to 12
 * independent FMAs per loaded row. The 16 sums and the weights are named
 * variables, not arrays, pinned to registers after every input row: gcc kept
 * [4][4] arrays of sums on the stack (its scalar replacement runs before the
 * loops are unrolled) and ran the accumulation chains one after another, at
 * ~45% of the FMA peak (bench_dwconv). */
#define BD_W(ky) ((ky) == 0 ? w0 : (ky) == 1 ? w1 : (ky) == 2 ? w2 : (ky) == 3 ? w3 : w4)
#define BD_FMA(j, n)                                                                               \
    if (NV > n) a##j##n = _mm512_fmadd_ps(w_, v##n, a##j##n)
#define BD_ROW(j)                                                                                  \
    do {                                                                                           \
        const int ky = u - (j);                                                                    \
        if (ky >= 0 && ky < K) {                                                                   \
            const __m512 w_ = BD_W(ky);                                                            \
            BD_FMA(j, 0);                                                                          \
            BD_FMA(j, 1);                                                                          \
            BD_FMA(j, 2);                                                                          \
            BD_FMA(j, 3);                                                                          \
        }                                                                                          \
    } while (0)
#define BD_STORE(j, n)                                                                             \
    do {                                                                                           \
        if (NV > n) {                                                                              \
            const __m512 r_ = none     ? a##j##n                                                   \
                              : minmax ? _mm512_min_ps(_mm512_max_ps(a##j##n, va), vb)             \
                                       : act512(a##j##n, a->act, va, vb);                          \
            if (n < NV - 1 || full)                                                                \
                _mm512_storeu_ps(yr + 16 * (n), r_);                                               \
            else                                                                                   \
                _mm512_mask_storeu_ps(yr + 16 * (n), mlast, r_);                                   \
        }                                                                                          \
    } while (0)
#define BD_STROW(j)                                                                                \
    if (oy0 + (j) < oend) {                                                                        \
        float *yr = y + (size_t)(oy0 + (j)) * (size_t)a->OW + c0;                                  \
        BD_STORE(j, 0);                                                                            \
        BD_STORE(j, 1);                                                                            \
        BD_STORE(j, 2);                                                                            \
        BD_STORE(j, 3);                                                                            \
    }

DW_INLINE void band_pass(const sqz_dw_plane *a, const float *const *rp, float *y, int oy0, int oend,
                         int c0, const int K, const int NV) {
    const int b0 = BD_OFF - a->pl; /* ring offset of padded column 0 */
    const __m512 z = _mm512_set1_ps(a->bias);
    __m512 a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
    __m512 a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
#pragma GCC unroll 5
    for (int kx = 0; kx < K; kx++) {
        const float *wc = a->w + kx;
        const __m512 w0 = _mm512_set1_ps(wc[0]), w1 = _mm512_set1_ps(wc[K]),
                     w2 = _mm512_set1_ps(wc[2 * K]);
        const __m512 w3 = K > 3 ? _mm512_set1_ps(wc[3 * K]) : w0,
                     w4 = K > 4 ? _mm512_set1_ps(wc[4 * K]) : w0;
        const int off = c0 + b0 + kx;
#pragma GCC unroll 16
        for (int u = 0; u < BD_R - 1 + K; u++) {
            const float *r = rp[u] + off;
            __m512 v0 = _mm512_loadu_ps(r), v1 = v0, v2 = v0, v3 = v0;
            if (NV > 1) v1 = _mm512_loadu_ps(r + 16);
            if (NV > 2) v2 = _mm512_loadu_ps(r + 32);
            if (NV > 3) v3 = _mm512_loadu_ps(r + 48);
            /* loads in registers for their (up to k) FMAs: without the
             * barrier gcc folds them into every FMA as memory operands */
            __asm__("" : "+v"(v0), "+v"(v1), "+v"(v2), "+v"(v3));
            BD_ROW(0);
            BD_ROW(1);
            BD_ROW(2);
            BD_ROW(3);
            /* the sums live here: without this gcc sinks each sum's whole
             * chain of k*k FMAs down to its store, one dependent chain at a
             * time (latency-bound, with the loaded rows spilled) */
            __asm__(""
                    : "+v"(a00), "+v"(a01), "+v"(a02), "+v"(a03), "+v"(a10), "+v"(a11), "+v"(a12),
                      "+v"(a13));
            __asm__(""
                    : "+v"(a20), "+v"(a21), "+v"(a22), "+v"(a23), "+v"(a30), "+v"(a31), "+v"(a32),
                      "+v"(a33));
        }
    }
    /* RELU and CLIP as one max / min pair, as act512 computes them (no
     * per-vector switch: the stores and activation took 40% of a 3x3 pass
     * with it) */
    const int none = a->act == SQZ_ACT_NONE;
    const int minmax = a->act == SQZ_ACT_RELU || a->act == SQZ_ACT_CLIP;
    __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    if (a->act == SQZ_ACT_RELU) {
        va = _mm512_setzero_ps();
        vb = _mm512_set1_ps(INFINITY);
    }
    const int full = c0 + 16 * NV <= a->OW;
    const __mmask16 mlast = mask_n(a->OW - c0 - 16 * (NV - 1));
    BD_STROW(0)
    BD_STROW(1)
    BD_STROW(2)
    BD_STROW(3)
}

DW_INLINE void band_run(const sqz_dw_plane *a, const float *x, float *y, float *buf, const int K) {
    const int rf = band_row_floats(a), ns = band_slots(a), nu = BD_R - 1 + K;
    const float *zero = buf + (size_t)ns * (size_t)rf;
    const int nvt = (a->OW + 15) / 16;
    const __mmask16 tail = mask_n(a->W % 16);
    /* ring slot of input row iy: iy mod ns, kept incrementally (no divides:
     * an idiv per row cost as much as the FMAs of a 28-wide row) */
    int ob, o1;
    plane_range(a, &ob, &o1);
    int base = ob - a->pt, bslot = ((base % ns) + ns) % ns; /* first row of the band, its slot */
    /* input rows [first, next) were copied; next's slot */
    int next = base > 0 ? base : 0, nslot = next % ns;
    for (int oy0 = ob; oy0 < o1; oy0 += BD_R) {
        /* rows of this band and the next one */
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
        for (; v + 4 <= nvt; v += 4) band_pass(a, rp, y, oy0, o1, 16 * v, K, 4);
        switch (nvt - v) {
        case 3:
            band_pass(a, rp, y, oy0, o1, 16 * v, K, 3);
            break;
        case 2:
            band_pass(a, rp, y, oy0, o1, 16 * v, K, 2);
            break;
        case 1:
            band_pass(a, rp, y, oy0, o1, 16 * v, K, 1);
            break;
        default:
            break;
        }
    }
}

void sqz_dw_band_run_avx512(const sqz_dw_plane *a, const float *x, float *y, float *buf) {
    if (a->k == 3)
        band_run(a, x, y, buf, 3);
    else
        band_run(a, x, y, buf, 5);
}

/* 3x3 weights as nine named variables held in registers (W9_DECL, then
 * W9_PIN once per input row, W9(i) for weight i: a compile-time index after
 * unrolling). From an array of broadcast weights gcc left them on the
 * stack, one more load per FMA (the stride-1 direct kernel: 1904 of 2016
 * FMAs on a stack operand; the stride-2 one: 3808 of 4002). 5x5 kernels
 * read theirs from the array (25 weights and the sums do not fit the 32
 * registers). */
#define W9_DECL(wv)                                                                                \
    __m512 w0 = (wv)[0], w1 = (wv)[1], w2 = (wv)[2], w3 = (wv)[3], w4 = (wv)[4], w5 = (wv)[5],     \
           w6 = (wv)[6], w7 = (wv)[7], w8 = (wv)[8]
#define W9_PIN()                                                                                   \
    __asm__(""                                                                                     \
            : "+v"(w0), "+v"(w1), "+v"(w2), "+v"(w3), "+v"(w4), "+v"(w5), "+v"(w6), "+v"(w7),      \
              "+v"(w8))
#define W9(i)                                                                                      \
    ((i) == 0   ? w0                                                                               \
     : (i) == 1 ? w1                                                                               \
     : (i) == 2 ? w2                                                                               \
     : (i) == 3 ? w3                                                                               \
     : (i) == 4 ? w4                                                                               \
     : (i) == 5 ? w5                                                                               \
     : (i) == 6 ? w6                                                                               \
     : (i) == 7 ? w7                                                                               \
                : w8)
/* acc += weight i * v: 3x3 from the named registers, 5x5 as the FMA's
 * broadcast memory operand from the caller's weights wsrc (4 bytes a load
 * where the broadcast array cost a 64-byte load from the stack per FMA) */
#define WFMA(acc, v, i)                                                                            \
    do {                                                                                           \
        if (K == 3)                                                                                \
            (acc) = _mm512_fmadd_ps(W9(i), (v), (acc));                                            \
        else                                                                                       \
            __asm__("vfmadd231ps %[w]%{1to16%}, %[xv], %[a]"                                       \
                    : [a] "+v"(acc)                                                                \
                    : [xv] "v"(v), [w] "m"(wsrc[i]));                                              \
    } while (0)

/* ------------------------------------------------ stride 2, direct
 *
 * Stride-2 planes straight from the input rows, no packed copy (the
 * whole-plane kernel's even / odd split copy cost more than its FMAs:
 * 144x56x56 k3, 1 thread, 70 us of which 26 without the copy). Each input
 * row is loaded once per output row group: two masked loads per 32 input
 * columns (zero lanes outside the row, so padding needs no buffer), split
 * into even / odd columns by vpermt2ps; taps 2 (and 3, 4 for 5x5) are those
 * shifted by a lane (valignd with the next vector). R output rows x NV
 * vectors of 16 columns accumulate at once; input rows outside the plane
 * are skipped. */

#ifndef S2_PS
#define S2_PS 1
#endif
/* output rows per group: 8 FMA chains (R x NV accumulators) */
#define S2_R(nv) ((nv) == 1 ? 8 : 4)

/* lanes j with 0 <= c0 + j < W */
DW_INLINE __mmask16 s2_in_mask(int64_t c0, int64_t W) {
    int64_t lo = c0 < 0 ? -c0 : 0, hi = W - c0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)((hi == 16 ? 0xFFFFu : ((1u << hi) - 1u)) & ~((1u << lo) - 1u));
}

/* row + off as an address only (masked loads touch the valid lanes only) */
DW_INLINE const float *s2_at(const float *row, int64_t off) {
    return (const float *)((uintptr_t)row + (uintptr_t)(off * (int64_t)sizeof(float)));
}

/* 1 when the last of NV vectors, n outputs of it stored, has a stored lane
 * whose taps reach past its 32 input columns (lane j reads even / odd
 * columns up to j + (K - 1) / 2 of the split) */
DW_INLINE int s2_ext(int n, const int K) {
    return n + (K - 1) / 2 > 16;
}

/* taps T[t][n], lanes j: input column c0 + 32 n + 2 j + t of row (t < K);
 * EXT 0: the split past the last vector is skipped (its lanes 16 - (K - 1) /
 * 2 .. 15 then read zeros: outputs s2_ext says are not stored) */
DW_INLINE void s2_taps(const float *row, const __mmask16 *mk, int64_t c0, __m512 T[5][2],
                       const int K, const int NV, const int EXT) {
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 E[3], O[3];
    E[NV] = O[NV] = _mm512_setzero_ps();
    for (int n = 0; n < NV + EXT; n++) {
        const int64_t cs = c0 + 32 * n;
        const __m512 lo = _mm512_maskz_loadu_ps(mk[2 * n], s2_at(row, cs));
        /* the vector past the last only feeds lanes 0..1 (columns cs..cs+3) */
        const __m512 hi = n < NV ? _mm512_maskz_loadu_ps(mk[2 * n + 1], s2_at(row, cs + 16))
                                 : _mm512_setzero_ps();
        E[n] = _mm512_permutex2var_ps(lo, even, hi);
        O[n] = _mm512_permutex2var_ps(lo, odd, hi);
    }
    for (int n = 0; n < NV; n++) {
        const __m512i e0 = _mm512_castps_si512(E[n]), e1 = _mm512_castps_si512(E[n + 1]);
        T[0][n] = E[n];
        T[1][n] = O[n];
        T[2][n] = _mm512_castsi512_ps(_mm512_alignr_epi32(e1, e0, 1));
        if (K == 5) {
            T[3][n] = _mm512_castsi512_ps(
                _mm512_alignr_epi32(_mm512_castps_si512(O[n + 1]), _mm512_castps_si512(O[n]), 1));
            T[4][n] = _mm512_castsi512_ps(_mm512_alignr_epi32(e1, e0, 2));
        }
    }
}

/* output rows oy .. oy + R - 1, columns ox0 .. ox0 + 16 NV - 1 (stores
 * masked to OW) */
DW_INLINE void s2_group_x(const sqz_dw_plane *a, const float *x, float *y, const __m512 *wv, int oy,
                          int ox0, const int K, const int R, const int NV, const int EXT) {
    W9_DECL(wv);
    const float *wsrc = a->w;
    __m512 acc[8][2];
    for (int j = 0; j < R; j++)
        for (int n = 0; n < NV; n++) acc[j][n] = _mm512_set1_ps(a->bias);
    /* 5x5 without the extra split: taps 2, 3 (shift 1) and 4 (shift 2) summed
     * unshifted into p1 / p2, each sum shifted once at the end (as lane_taps) */
    const int PS = S2_PS && K == 5 && !EXT;
    __m512 p1[8][2], p2[8][2];
    for (int j = 0; j < R; j++)
        for (int n = 0; n < NV; n++) p1[j][n] = p2[j][n] = _mm512_setzero_ps();
    const int64_t iy0 = (int64_t)oy * 2 - a->pt, c0 = (int64_t)ox0 * 2 - a->pl;
    /* the load masks, the same on every row */
    __mmask16 mk[6];
    for (int i = 0; i < 2 * NV + 1; i++) mk[i] = s2_in_mask(c0 + 16 * i, a->W);
#pragma GCC unroll 20
    for (int r = 0; r < (R - 1) * 2 + K; r++) {
        const int64_t iy = iy0 + r;
        if (iy < 0 || iy >= a->H) continue; /* a zero row */
        if (K == 3) W9_PIN();
        __m512 T[5][2];
        s2_taps(x + iy * (int64_t)a->W, mk, c0, T, K, NV, EXT);
#pragma GCC unroll 8
        for (int j = 0; j < R; j++) {
            const int ky = r - 2 * j;
            if (ky < 0 || ky >= K) continue;
#pragma GCC unroll 5
            for (int kx = 0; kx < K; kx++)
#pragma GCC unroll 2
                for (int n = 0; n < NV; n++) {
                    if (!PS)
                        WFMA(acc[j][n], T[kx][n], ky * K + kx);
                    else if (kx < 2)
                        WFMA(acc[j][n], T[kx][n], ky * K + kx);
                    else if (kx < 4)
                        WFMA(p1[j][n], T[kx - 2][n], ky * K + kx);
                    else
                        WFMA(p2[j][n], T[0][n], ky * K + kx);
                }
        }
    }
    if (PS)
        for (int j = 0; j < R; j++)
            for (int n = 0; n < NV; n++) {
                const __m512 z = _mm512_setzero_ps();
                const __m512 h1 = n + 1 < NV ? p1[j][n + 1] : z, h2 = n + 1 < NV ? p2[j][n + 1] : z;
                acc[j][n] = _mm512_add_ps(acc[j][n], shift_lanes(p1[j][n], h1, 1));
                acc[j][n] = _mm512_add_ps(acc[j][n], shift_lanes(p2[j][n], h2, 2));
            }
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    for (int j = 0; j < R; j++)
        for (int n = 0; n < NV; n++)
            _mm512_mask_storeu_ps(y + (size_t)(oy + j) * (size_t)a->OW + ox0 + 16 * n,
                                  mask_16(a->OW - ox0 - 16 * n), act512(acc[j][n], a->act, va, vb));
}

DW_INLINE void s2_group(const sqz_dw_plane *a, const float *x, float *y, const __m512 *wv, int oy,
                        int ox0, const int K, const int R, const int NV) {
    if (s2_ext(a->OW - ox0 - 16 * (NV - 1), K))
        s2_group_x(a, x, y, wv, oy, ox0, K, R, NV, 1);
    else
        s2_group_x(a, x, y, wv, oy, ox0, K, R, NV, 0);
}

/* output rows [oy, oy + R) (R <= S2_R(NV)) of the column chunk at ox0 */
#define S2_G(RR, NVV)                                                                              \
    case RR:                                                                                       \
        s2_group(a, x, y, wv, oy, ox0, K, RR, NVV);                                                \
        break;
DW_INLINE void s2_chunk(const sqz_dw_plane *a, const float *x, float *y, const __m512 *wv, int oy,
                        int R, int ox0, const int K, const int NV) {
    switch (R) {
        S2_G(1, NV)
        S2_G(2, NV)
        S2_G(3, NV)
        S2_G(4, NV)
    default:
        if (NV == 1) {
            switch (R) {
                S2_G(5, 1)
                S2_G(6, 1)
                S2_G(7, 1)
                S2_G(8, 1)
            default:
                break;
            }
        }
        break;
    }
}
#undef S2_G

/* bands of 8 output rows (their input rows stay in L1 across the column
 * chunks of wide planes), column chunks of 32 outputs (the last one 16 when
 * it fits) */
DW_INLINE void s2_plane(const sqz_dw_plane *a, const float *x, float *y, const int K) {
    __m512 wv[25];
    for (int i = 0; i < K * K; i++) wv[i] = _mm512_set1_ps(a->w[i]);
    int o0, o1;
    plane_range(a, &o0, &o1);
    for (int ob = o0; ob < o1; ob += 8) {
        const int oe = o1 - ob < 8 ? o1 : ob + 8;
        for (int ox0 = 0; ox0 < a->OW; ox0 += 32) {
            if (a->OW - ox0 > 16) {
                for (int oy = ob; oy < oe; oy += S2_R(2))
                    s2_chunk(a, x, y, wv, oy, oe - oy < S2_R(2) ? oe - oy : S2_R(2), ox0, K, 2);
            } else {
                s2_chunk(a, x, y, wv, ob, oe - ob, ox0, K, 1);
            }
        }
    }
}

/* ---- 3x3, rows of more than S2W_MIN_OW outputs (the 112x112 -> 56x56
 * layers): the output rows go down one at a time, each input row split once
 * (two masked loads, even / odd vpermt2ps, the third tap by valignd with the
 * next raw vector) for all NV vectors of the column chunk and used for both
 * output rows it feeds (ky 2 of one, ky 0 of the next: two sets of NV sums
 * live). Per output vector 9 FMAs and ~6 shuffles, ~2 input rows split per
 * output row; the 4-row groups above split 2.25 over 32-column chunks
 * (48x112x112: 14.7 GMAC/s), the row kernel 2.5 with 4 shuffles each (18.3).
 * bench_dwconv, 1 thread, SQZ_DW_S2W=0 vs 1 interleaved x2, load ~7:
 * 48x112x112 18.1-18.3 -> 26.1, 96x112x112 18.1-18.3 -> 26.0-26.5 GMAC/s. */
#define S2W_MIN_OW 32

/* input row iy's taps of the NV vectors at c0: acc_a[n] += w[ka][kx] * tap,
 * and when B, acc_b[n] += w[kb][kx] * tap */
#define S2W_ROW(row, ka, B, kb)                                                                    \
    do {                                                                                           \
        W9_PIN();                                                                                  \
        __m512 lo = _mm512_maskz_loadu_ps(mk[0], s2_at((row), c0));                                \
        _Pragma("GCC unroll 4") for (int n = 0; n < NV; n++) {                                     \
            const __m512 hi =                                                                      \
                _mm512_maskz_loadu_ps(mk[2 * n + 1], s2_at((row), c0 + 32 * n + 16));              \
            const __m512 nx =                                                                      \
                _mm512_maskz_loadu_ps(mk[2 * n + 2], s2_at((row), c0 + 32 * n + 32));              \
            const __m512 t0 = _mm512_permutex2var_ps(lo, even, hi);                                \
            const __m512 t1 = _mm512_permutex2var_ps(lo, odd, hi);                                 \
            const __m512 t2 = _mm512_castsi512_ps(                                                 \
                _mm512_alignr_epi32(_mm512_castps_si512(nx), _mm512_castps_si512(t0), 1));         \
            acc_a[n] = _mm512_fmadd_ps(W9((ka)*3), t0, acc_a[n]);                                  \
            acc_a[n] = _mm512_fmadd_ps(W9((ka)*3 + 1), t1, acc_a[n]);                              \
            acc_a[n] = _mm512_fmadd_ps(W9((ka)*3 + 2), t2, acc_a[n]);                              \
            if (B) {                                                                               \
                acc_b[n] = _mm512_fmadd_ps(W9((kb)*3), t0, acc_b[n]);                              \
                acc_b[n] = _mm512_fmadd_ps(W9((kb)*3 + 1), t1, acc_b[n]);                          \
                acc_b[n] = _mm512_fmadd_ps(W9((kb)*3 + 2), t2, acc_b[n]);                          \
            }                                                                                      \
            lo = nx;                                                                               \
        }                                                                                          \
    } while (0)

/* output rows [o0, o1), columns [ox0, ox0 + 16 NV) (stores masked to OW) */
DW_INLINE void s2w_chunk(const sqz_dw_plane *a, const float *x, float *y, const __m512 *wv, int o0,
                         int o1, int ox0, const int NV) {
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    W9_DECL(wv);
    const int64_t c0 = (int64_t)ox0 * 2 - a->pl;
    __mmask16 mk[9];
    for (int i = 0; i < 2 * NV + 1; i++) mk[i] = s2_in_mask(c0 + 16 * i, a->W);
    const __m512 bias = _mm512_set1_ps(a->bias);
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    __m512 cur[4], nxt[4];
    for (int n = 0; n < NV; n++) nxt[n] = bias;
    /* ky 0 of the first output row */
    int64_t iy = (int64_t)o0 * 2 - a->pt;
    if (iy >= 0 && iy < a->H) {
        __m512 *acc_a = nxt, *acc_b = nxt;
        (void)acc_b;
        S2W_ROW(x + iy * (int64_t)a->W, 0, 0, 0);
    }
    for (int oy = o0; oy < o1; oy++) {
        for (int n = 0; n < NV; n++) cur[n] = nxt[n];
        iy = (int64_t)oy * 2 - a->pt + 1;
        if (iy >= 0 && iy < a->H) {
            __m512 *acc_a = cur, *acc_b = cur;
            (void)acc_b;
            S2W_ROW(x + iy * (int64_t)a->W, 1, 0, 0);
        }
        iy++;
        for (int n = 0; n < NV; n++) nxt[n] = bias;
        if (iy >= 0 && iy < a->H) {
            __m512 *acc_a = cur, *acc_b = nxt;
            if (oy + 1 < o1)
                S2W_ROW(x + iy * (int64_t)a->W, 2, 1, 0);
            else
                S2W_ROW(x + iy * (int64_t)a->W, 2, 0, 0);
        }
        float *yr = y + (size_t)oy * (size_t)a->OW + ox0;
        for (int n = 0; n < NV; n++)
            _mm512_mask_storeu_ps(yr + 16 * n, mask_16(a->OW - ox0 - 16 * n),
                                  act512(cur[n], a->act, va, vb));
    }
}

static void s2w_plane(const sqz_dw_plane *a, const float *x, float *y) {
    __m512 wv[9];
    for (int i = 0; i < 9; i++) wv[i] = _mm512_set1_ps(a->w[i]);
    int o0, o1;
    plane_range(a, &o0, &o1);
    for (int ox0 = 0; ox0 < a->OW; ox0 += 64) {
        const int nv = a->OW - ox0 >= 64 ? 4 : (a->OW - ox0 + 15) / 16;
        switch (nv) {
        case 1:
            s2w_chunk(a, x, y, wv, o0, o1, ox0, 1);
            break;
        case 2:
            s2w_chunk(a, x, y, wv, o0, o1, ox0, 2);
            break;
        case 3:
            s2w_chunk(a, x, y, wv, o0, o1, ox0, 3);
            break;
        default:
            s2w_chunk(a, x, y, wv, o0, o1, ox0, 4);
            break;
        }
    }
}

int sqz_dw_s2_covers_avx512(const sqz_dw_plane *a) {
    return (a->k == 3 || a->k == 5) && a->stride == 2 && a->OW >= 1 && a->OH >= 1 && a->pt >= 0 &&
           a->pl >= 0 && a->W >= 1 && a->H >= 1;
}

void sqz_dw_s2_run_avx512(const sqz_dw_plane *a, const float *x, float *y) {
    if (a->k == 3 && a->OW > S2W_MIN_OW)
        s2w_plane(a, x, y);
    else if (a->k == 3)
        s2_plane(a, x, y, 3);
    else
        s2_plane(a, x, y, 5);
}

/* ------------------------------------------------ stride 1, direct
 *
 * Stride-1 planes wider than the band kernel's (the 112x112 stage), straight
 * from the input rows, no copy: per input row and 16 columns one load at the
 * vector's own columns (masked: zeros outside the row, so the padding needs
 * no buffer), the other taps from it and the vectors either side by valignd.
 * The row kernels loaded every tap unaligned from a padded copy of the row
 * (two of three loads split a cache line, ~2.7 aligned loads each here).
 * R output rows x NV vectors of 16 columns accumulate at once, each input
 * row feeding up to K of them. Covers pl == (K - 1) / 2 (the shifts are
 * immediates). */

#ifndef S1_R
#define S1_R 4 /* output rows per group */
#endif
#ifndef S1_NV
#define S1_NV 2 /* vectors per column chunk */
#endif

/* lanes j of hi:lo from s (1, 2, 14 or 15): lo[j + s] or hi[j + s - 16] */
DW_INLINE __m512 s1_align(__m512 hi, __m512 lo, int s) {
    const __m512i h = _mm512_castps_si512(hi), l = _mm512_castps_si512(lo);
    switch (s) {
    case 1:
        return _mm512_castsi512_ps(_mm512_alignr_epi32(h, l, 1));
    case 2:
        return _mm512_castsi512_ps(_mm512_alignr_epi32(h, l, 2));
    case 14:
        return _mm512_castsi512_ps(_mm512_alignr_epi32(h, l, 14));
    case 15:
        return _mm512_castsi512_ps(_mm512_alignr_epi32(h, l, 15));
    default:
        return lo;
    }
}

/* output rows oy .. oy + R - 1, columns ox0 .. ox0 + 16 NV - 1 (stores
 * masked to OW) */
DW_INLINE void s1_group(const sqz_dw_plane *a, const float *x, float *y, const __m512 *wv, int oy,
                        int ox0, const int K, const int R, const int NV) {
    const int P = (K - 1) / 2;
    W9_DECL(wv);
    const float *wsrc = a->w;
    __m512 acc[8][4];
    for (int j = 0; j < R; j++)
        for (int n = 0; n < NV; n++) acc[j][n] = _mm512_set1_ps(a->bias);
    const int64_t iy0 = (int64_t)oy - a->pt;
    /* vector i at columns ox0 + 16 (i - 1): the chunk's NV and one either
     * side; the load masks are the same on every row */
    __mmask16 mk[6];
    for (int i = 0; i < NV + 2; i++) mk[i] = s2_in_mask((int64_t)ox0 + 16 * (i - 1), a->W);
#pragma GCC unroll 12
    for (int r = 0; r < R - 1 + K; r++) {
        const int64_t iy = iy0 + r;
        if (iy < 0 || iy >= a->H) continue; /* a zero row */
        if (K == 3) W9_PIN();
        const float *row = x + iy * (int64_t)a->W;
        __m512 V[6];
        for (int i = 0; i < NV + 2; i++)
            V[i] = _mm512_maskz_loadu_ps(mk[i], s2_at(row, (int64_t)ox0 + 16 * (i - 1)));
        __m512 T[5][4];
#pragma GCC unroll 4
        for (int n = 0; n < NV; n++)
#pragma GCC unroll 5
            for (int kx = 0; kx < K; kx++) {
                const int d = kx - P;
                T[kx][n] = d == 0  ? V[n + 1]
                           : d < 0 ? s1_align(V[n + 1], V[n], 16 + d)
                                   : s1_align(V[n + 2], V[n + 1], d);
            }
#pragma GCC unroll 8
        for (int j = 0; j < R; j++) {
            const int ky = r - j;
            if (ky < 0 || ky >= K) continue;
#pragma GCC unroll 5
            for (int kx = 0; kx < K; kx++)
#pragma GCC unroll 4
                for (int n = 0; n < NV; n++) WFMA(acc[j][n], T[kx][n], ky * K + kx);
        }
    }
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    for (int j = 0; j < R; j++)
        for (int n = 0; n < NV; n++)
            _mm512_mask_storeu_ps(y + (size_t)(oy + j) * (size_t)a->OW + ox0 + 16 * n,
                                  mask_16(a->OW - ox0 - 16 * n), act512(acc[j][n], a->act, va, vb));
}

/* output rows [oy, oy + rr) (rr <= R) of the column chunk at ox0 */
DW_INLINE void s1_chunk(const sqz_dw_plane *a, const float *x, float *y, const __m512 *wv, int oy,
                        int rr, int ox0, const int K, const int R, const int NV) {
    for (; rr >= R; rr -= R, oy += R) s1_group(a, x, y, wv, oy, ox0, K, R, NV);
    switch (rr) {
    case 1:
        s1_group(a, x, y, wv, oy, ox0, K, 1, NV);
        break;
    case 2:
        if (R > 2) s1_group(a, x, y, wv, oy, ox0, K, 2, NV);
        break;
    case 3:
        if (R > 3) s1_group(a, x, y, wv, oy, ox0, K, 3, NV);
        break;
    case 4:
        if (R > 4) s1_group(a, x, y, wv, oy, ox0, K, 4, NV);
        break;
    case 5:
        if (R > 5) s1_group(a, x, y, wv, oy, ox0, K, 5, NV);
        break;
    case 6:
        if (R > 6) s1_group(a, x, y, wv, oy, ox0, K, 6, NV);
        break;
    case 7:
        if (R > 7) s1_group(a, x, y, wv, oy, ox0, K, 7, NV);
        break;
    default:
        break;
    }
}

/* bands of 8 output rows (their input rows stay in L1 across the column
 * chunks), chunks of 16 S1_NV columns (the last one's stores masked), a
 * narrower chunk for what remains */
DW_INLINE void s1_plane(const sqz_dw_plane *a, const float *x, float *y, const int K) {
    __m512 wv[25];
    for (int i = 0; i < K * K; i++) wv[i] = _mm512_set1_ps(a->w[i]);
    int o0, o1;
    plane_range(a, &o0, &o1);
    for (int ob = o0; ob < o1; ob += 8) {
        const int rr = o1 - ob < 8 ? o1 - ob : 8;
        int ox0 = 0;
        for (; a->OW - ox0 > 16 * (S1_NV - 1); ox0 += 16 * S1_NV)
            s1_chunk(a, x, y, wv, ob, rr, ox0, K, S1_R, S1_NV);
        const int nv = (a->OW - ox0 + 15) / 16;
        if (nv == 1) s1_chunk(a, x, y, wv, ob, rr, ox0, K, 8, 1);
        if (nv == 2 && S1_NV > 2) s1_chunk(a, x, y, wv, ob, rr, ox0, K, 4, 2);
        if (nv == 3 && S1_NV > 3) s1_chunk(a, x, y, wv, ob, rr, ox0, K, 4, 3);
    }
}

int sqz_dw_s1_covers_avx512(const sqz_dw_plane *a) {
    return (a->k == 3 || a->k == 5) && a->stride == 1 && a->OW >= 1 && a->OH >= 1 && a->pt >= 0 &&
           a->pl == (a->k - 1) / 2 && a->W >= 1 && a->H >= 1;
}

void sqz_dw_s1_run_avx512(const sqz_dw_plane *a, const float *x, float *y) {
    if (a->k == 3)
        s1_plane(a, x, y, 3);
    else
        s1_plane(a, x, y, 5);
}

/* ------------------------------------------------ 7x7 planes, 3x3 stride 1
 *
 * The 3x3 layers of the 7x7 stage (MobileNetV2's 960 channels, MNASNet's
 * and EfficientNet's 1152), pads 1: two plane rows a vector, row r at lanes
 * 8 (r % 2) .. 8 (r % 2) + 6 of vector r / 2, lanes 7 and 15 (and vector 3's
 * upper half) zero. In that layout (8 lanes a row) tap (ky, kx) of every
 * output is the input shifted by one constant, s = 8 (ky - 1) + kx - 1 lanes:
 * a valignd of two neighbouring vectors (zero vectors above and below give
 * the top / bottom padding; column -1 and 7 of a row are the zero lane 7 of
 * the row before or of the row itself, no masks). Each shifted vector is made once and
 * used at once by every output vector reading it. The 49 floats come in as
 * three plain loads and a 1-lane one, each row pair gathered from two of them
 * by a vpermt2ps, and go out the same way (masked loads at the rows' 56-byte
 * steps, vexpandps / vcompressps and masked stores took 2 / 3 of the time).
 * The channel-block kernel transposes 16 planes in and out instead; for 5x5
 * its FMAs use all 16 lanes (here 49 of 64) and the two were equal
 * (bench_dwconv, README Runtime notes). */

/* lanes i of hi:lo from r: lo[i + r] or hi[i + r - 16] (r constant) */
DW_INLINE __m512 p7_align(__m512 hi, __m512 lo, int r) {
    const __m512i h = _mm512_castps_si512(hi), l = _mm512_castps_si512(lo);
#define P7_A(n)                                                                                    \
    case n:                                                                                        \
        return _mm512_castsi512_ps(_mm512_alignr_epi32(h, l, n))
    switch (r) {
        P7_A(1);
        P7_A(2);
        P7_A(6);
        P7_A(7);
        P7_A(8);
        P7_A(9);
        P7_A(10);
        P7_A(14);
        P7_A(15);
    default:
        return lo;
    }
#undef P7_A
}

/* lanes i of the layout from lane `start` on (a constant), zero outside the
 * 4 vectors */
DW_INLINE __m512 p7_at(const __m512 *v, int start) {
    const int q = start >= 0 ? start / 16 : -((15 - start) / 16), r = start - 16 * q;
    const __m512 lo = q >= 0 && q < 4 ? v[q] : _mm512_setzero_ps();
    if (r == 0) return lo;
    const __m512 hi = q + 1 >= 0 && q + 1 < 4 ? v[q + 1] : _mm512_setzero_ps();
    return p7_align(hi, lo, r);
}

/* acc += broadcast *w * v: the weight as the FMA's memory operand (gcc
 * otherwise keeps broadcast weights in registers and spills) */
#define P7_FMA(acc, v, w)                                                                          \
    __asm__("vfmadd231ps %[wt]%{1to16%}, %[xv], %[a]" : [a] "+v"(acc) : [xv] "v"(v), [wt] "m"(*(w)))

static void p7_plane(const sqz_dw_plane *a, const float *x, float *y) {
    /* in: lane l of pair i is float 14 i + (l & 7) + 7 (l >> 3) of x, from
     * the 16-float chunks c[floor(14 i / 16)] and the next */
    const __m512 c0 = _mm512_loadu_ps(x), c1 = _mm512_loadu_ps(x + 16),
                 c2 = _mm512_loadu_ps(x + 32), c3 = _mm512_maskz_loadu_ps(1, x + 48);
    __m512 v[4];
    v[0] = _mm512_maskz_permutexvar_ps(
        0x7F7F, _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 0, 7, 8, 9, 10, 11, 12, 13, 0), c0);
    v[1] = _mm512_maskz_permutex2var_ps(
        0x7F7F, c0, _mm512_setr_epi32(14, 15, 16, 17, 18, 19, 20, 0, 21, 22, 23, 24, 25, 26, 27, 0),
        c1);
    v[2] = _mm512_maskz_permutex2var_ps(
        0x7F7F, c1, _mm512_setr_epi32(12, 13, 14, 15, 16, 17, 18, 0, 19, 20, 21, 22, 23, 24, 25, 0),
        c2);
    v[3] = _mm512_maskz_permutex2var_ps(
        0x007F, c2, _mm512_setr_epi32(10, 11, 12, 13, 14, 15, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0), c3);
    __m512 acc[4];
    for (int j = 0; j < 4; j++) acc[j] = _mm512_set1_ps(a->bias);
        /* output vector j reads start 16 j + s for the taps' s in [-9, 9] */
#pragma GCC unroll 80
    for (int st = -9; st <= 48 + 9; st++) {
        int used = 0;
        for (int j = 0; j < 4; j++) {
            const int sj = st - 16 * j, dy = (sj + 12) / 8 - 1, dx = sj - 8 * dy;
            used |= dy >= -1 && dy <= 1 && dx >= -1 && dx <= 1;
        }
        if (!used) continue;
        const __m512 t = p7_at(v, st);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const int sj = st - 16 * j, dy = (sj + 12) / 8 - 1, dx = sj - 8 * dy;
            if (dy < -1 || dy > 1 || dx < -1 || dx > 1) continue;
            P7_FMA(acc[j], t, a->w + (dy + 1) * 3 + dx + 1);
        }
    }
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    __m512 r[4];
    for (int j = 0; j < 4; j++) r[j] = act512(acc[j], a->act, va, vb);
    /* out: float f of chunk q is row f / 7, column f % 7: lane (f % 14) / 7
     * * 8 + f % 7 of pair f / 14 */
    _mm512_storeu_ps(
        y,
        _mm512_permutex2var_ps(
            r[0], _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 16, 17), r[1]));
    _mm512_storeu_ps(y + 16, _mm512_permutex2var_ps(r[1],
                                                    _mm512_setr_epi32(2, 3, 4, 5, 6, 8, 9, 10, 11,
                                                                      12, 13, 14, 16, 17, 18, 19),
                                                    r[2]));
    _mm512_storeu_ps(y + 32, _mm512_permutex2var_ps(r[2],
                                                    _mm512_setr_epi32(4, 5, 6, 8, 9, 10, 11, 12, 13,
                                                                      14, 16, 17, 18, 19, 20, 21),
                                                    r[3]));
    _mm_store_ss(y + 48, _mm512_castps512_ps128(_mm512_castsi512_ps(_mm512_alignr_epi32(
                             _mm512_setzero_si512(), _mm512_castps_si512(r[3]), 6))));
}

int sqz_dw_p7_covers_avx512(const sqz_dw_plane *a) {
    return a->k == 3 && a->stride == 1 && a->pt == 1 && a->pl == 1 && a->H == 7 && a->W == 7 &&
           a->OH == 7 && a->OW == 7;
}

void sqz_dw_p7_run_avx512(const sqz_dw_plane *a, const float *x, float *y) {
    p7_plane(a, x, y);
}

/* ------------------------------------------------ channel pairs, small planes
 *
 * Planes with out_w <= 8 and out_h <= 8 (the 7x7 stage and the stride-2
 * layers into it): two channels a vector, interleaved, lane 2 j + h holding
 * column j of channel h, one plane row a vector (stride 2: the row's even and
 * odd columns, one vector each). Tap (ky, kx) of an output row is then an
 * input row shifted by 2 dx lanes (a valignd with a zero vector: the shifts
 * never mix the two channels, columns outside the row come in as zeros, no
 * masks), and its weight vector one 8-byte broadcast of the channels' two
 * weights. Every output row is one accumulator; the input rows come in as
 * two masked loads and a vpermt2ps (two for stride 2), the output rows go
 * out as a vpermps and two masked 8-lane stores. No buffer and no
 * transposes: the channel-block kernel spends about a third of its time
 * transposing 16 planes in and out (and the 14x14 input of a stride-2 layer
 * four times the 7x7 output). */

/* lanes l of the 32-lane concatenation hi:lo from l + n (n constant) */
DW_INLINE __m512 c2_align(__m512 hi, __m512 lo, int n) {
    const __m512i h = _mm512_castps_si512(hi), l = _mm512_castps_si512(lo);
#define C2_A(i)                                                                                    \
    case i:                                                                                        \
        return _mm512_castsi512_ps(_mm512_alignr_epi32(h, l, i))
    switch (n) {
        C2_A(1);
        C2_A(2);
        C2_A(3);
        C2_A(4);
        C2_A(5);
        C2_A(6);
        C2_A(7);
        C2_A(8);
        C2_A(9);
        C2_A(10);
        C2_A(11);
        C2_A(12);
        C2_A(13);
        C2_A(14);
        C2_A(15);
    default:
        return lo;
    }
#undef C2_A
}

/* the channels' two weights (or biases) at w[2 t], w[2 t + 1] in every lane pair */
DW_INLINE __m512 c2_w(const float *w, int t) {
    double d;
    memcpy(&d, w + 2 * t, sizeof d);
    return _mm512_castpd_ps(_mm512_set1_pd(d));
}

/* v shifted by n lanes: lane l = v[l + n], zeros shifted in */
DW_INLINE __m512 lane_shift(__m512 v, int n) {
    if (n == 0) return v;
    if (n > 0) return n >= 16 ? _mm512_setzero_ps() : c2_align(_mm512_setzero_ps(), v, n);
    return n <= -16 ? _mm512_setzero_ps() : c2_align(v, _mm512_setzero_ps(), 16 + n);
}

/* The tap loop of the channel-pair (L = 2 lanes a column) and one-channel
 * (L = 1) kernels: acc[j] += the K x K taps of output row j < R from the
 * padded rows V (V[0][r]: row r, stride 2 its even columns; V[1][r] its odd
 * ones). Per tap column kx its K weights once (broadcasts from memory per
 * FMA cost 39 -> 32 GMAC/s on 1152x7x7 k5). Column ox * S - P + kx: stride
 * 1 row r shifted by kx - P, each row shifted once for the up to K output
 * rows it feeds; stride 2 the even / odd vector (parity of q = kx - P)
 * shifted by d = floor(q / 2) (-1, 0, 1): those taps are summed unshifted
 * into ps[d + 1] and each sum shifted once per output row at the end
 * (shift(sum w v) = sum w shift(v), zeros shifted in on both sides): 1-2
 * valignd an output row where the input rows took 1-3 each (~2.4 input rows
 * an output row). bench_dwconv, 1 thread, interleaved x3, best GMAC/s:
 * 240x28x28 k5 s2 28.4 -> 33.7, k3 s2 20.5 -> 22.1, 576x14x14 k5 s2 27.9 ->
 * 31.6, 672x14x14 k5 s2 27.8 -> 31.6. Weights: L = 2, c2_w(w, t); L = 1,
 * w[t]. */
DW_INLINE void lane_taps(__m512 V[2][20], __m512 *acc, const float *w, const int K, const int S,
                         const int R, const int L) {
    const int P = (K - 1) / 2;
    const int NR = (R - 1) * S + K;
    __m512 ps[3][8]; /* stride 2: the sums of the taps of shift -1 / +1 */
    for (int j = 0; j < R; j++) ps[0][j] = ps[2][j] = _mm512_setzero_ps();
#pragma GCC unroll 5
    for (int kx = 0; kx < K; kx++) {
        const int q = kx - P, par = S == 2 ? q & 1 : 0;
        const int d = S == 1 ? q : q >= 0 ? q / 2 : -((1 - q) / 2);
        __m512 wk[5];
#pragma GCC unroll 5
        for (int ky = 0; ky < K; ky++)
            wk[ky] = L == 2 ? c2_w(w, ky * K + kx) : _mm512_set1_ps(w[ky * K + kx]);
#pragma GCC unroll 20
        for (int r = 0; r < NR; r++) {
            const __m512 t = S == 2 ? V[par][r] : lane_shift(V[par][r], L * d);
#pragma GCC unroll 5
            for (int ky = 0; ky < K; ky++) {
                const int js = r - ky; /* output row j reads padded row j S + ky */
                if (js >= 0 && js % S == 0 && js / S < R) {
                    __m512 *o = S == 1 || d == 0 ? &acc[js / S] : &ps[d + 1][js / S];
                    *o = _mm512_fmadd_ps(t, wk[ky], *o);
                }
            }
        }
    }
    if (S == 2)
        for (int j = 0; j < R; j++) {
            acc[j] = _mm512_add_ps(acc[j], lane_shift(ps[0][j], -L));
            if (K == 5) acc[j] = _mm512_add_ps(acc[j], lane_shift(ps[2][j], L));
        }
}

DW_INLINE void c2_plane(const sqz_dw_plane *a, const float *x, float *y, const int K, const int S,
                        const int OH) {
    /* left padding a->pl: (K - 1) / 2 (covered only so: constant shifts) */
    const int NR = (OH - 1) * S + K; /* padded input rows */
    const size_t in_sp = (size_t)a->H * (size_t)a->W, out_sp = (size_t)OH * (size_t)a->OW;
    const float *x1 = a->nc > 1 ? x + in_sp : x;
    const __mmask16 mw = mask_n(a->W), m1 = a->nc > 1 ? mw : 0;
    /* interleave: lanes 2 j + h from column j of channel h (stride 2: column
     * 2 j, and 2 j + 1 for the odd vector) */
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ie = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    const __m512i io = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    /* V[0][r]: padded row r (stride 2: its even columns), V[1][r]: its odd
     * columns; zero rows in the padding. Stride 1 keeps them in registers;
     * stride 2 (2 x 17 for 5x5) mostly in L1. */
    __m512 V[2][20];
#pragma GCC unroll 20
    for (int r = 0; r < NR; r++) {
        const int iy = r - a->pt;
        if (iy < 0 || iy >= a->H) {
            V[0][r] = V[1][r] = _mm512_setzero_ps();
            continue;
        }
        const __m512 A = _mm512_maskz_loadu_ps(mw, x + (size_t)iy * (size_t)a->W);
        const __m512 B = _mm512_maskz_loadu_ps(m1, x1 + (size_t)iy * (size_t)a->W);
        V[0][r] = _mm512_permutex2var_ps(A, S == 1 ? il : ie, B);
        if (S == 2) V[1][r] = _mm512_permutex2var_ps(A, io, B);
    }
    __m512 acc[8];
    const __m512 bias = c2_w(a->w, K * K);
    for (int j = 0; j < 8; j++) acc[j] = bias;
    lane_taps(V, acc, a->w, K, S, OH, 2);
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    const __m512i de = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __mmask8 mo = (__mmask8)((1u << a->OW) - 1u);
    for (int j = 0; j < OH; j++) {
        const __m512 v = _mm512_permutexvar_ps(de, act512(acc[j], a->act, va, vb));
        _mm256_mask_storeu_ps(y + (size_t)j * (size_t)a->OW, mo, _mm512_castps512_ps256(v));
        if (a->nc > 1)
            _mm256_mask_storeu_ps(y + out_sp + (size_t)j * (size_t)a->OW, mo,
                                  _mm512_extractf32x8_ps(v, 1));
    }
}

int sqz_dw_c2_covers_avx512(const sqz_dw_plane *a) {
    return (a->k == 3 || a->k == 5) && (a->stride == 1 || a->stride == 2) && a->OW >= 1 &&
           a->OW <= 8 && a->OH >= 1 && a->OH <= 8 && a->H >= 1 && a->W >= 1 &&
           a->W <= 8 * a->stride && a->pt >= 0 && a->pt < a->k && a->pl == (a->k - 1) / 2;
}

#define C2_OH(K, S)                                                                                \
    switch (a->OH) {                                                                               \
    case 1:                                                                                        \
        c2_plane(a, x, y, K, S, 1);                                                                \
        break;                                                                                     \
    case 2:                                                                                        \
        c2_plane(a, x, y, K, S, 2);                                                                \
        break;                                                                                     \
    case 3:                                                                                        \
        c2_plane(a, x, y, K, S, 3);                                                                \
        break;                                                                                     \
    case 4:                                                                                        \
        c2_plane(a, x, y, K, S, 4);                                                                \
        break;                                                                                     \
    case 5:                                                                                        \
        c2_plane(a, x, y, K, S, 5);                                                                \
        break;                                                                                     \
    case 6:                                                                                        \
        c2_plane(a, x, y, K, S, 6);                                                                \
        break;                                                                                     \
    case 7:                                                                                        \
        c2_plane(a, x, y, K, S, 7);                                                                \
        break;                                                                                     \
    default:                                                                                       \
        c2_plane(a, x, y, K, S, 8);                                                                \
        break;                                                                                     \
    }

void sqz_dw_c2_run_avx512(const sqz_dw_plane *a, const float *x, float *y) {
    if (a->k == 3 && a->stride == 1) C2_OH(3, 1)
    if (a->k == 3 && a->stride == 2) C2_OH(3, 2)
    if (a->k == 5 && a->stride == 1) C2_OH(5, 1)
    if (a->k == 5 && a->stride == 2) C2_OH(5, 2)
}
#undef C2_OH

/* ---- one channel a vector, the same scheme: planes with out_w <= 16 and
 * W <= 16 stride (the 14x14 stage and the stride-2 layers into it): lane j
 * = column j (stride 2: 2 j, 2 j + 1 of the even / odd vector), taps as
 * lane shifts with zeros shifted in, R <= 8 output rows a group. */

DW_INLINE void c1_group(const sqz_dw_plane *a, const float *x, float *y, int oy0, const int K,
                        const int S, const int R) {
    const int NR = (R - 1) * S + K;
    const __mmask16 m0 = mask_n(a->W), m1 = mask_n(a->W - 16);
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 V[2][20];
#pragma GCC unroll 20
    for (int r = 0; r < NR; r++) {
        const int iy = oy0 * S + r - a->pt;
        if (iy < 0 || iy >= a->H) {
            V[0][r] = V[1][r] = _mm512_setzero_ps();
            continue;
        }
        const float *row = x + (size_t)iy * (size_t)a->W;
        const __m512 A = _mm512_maskz_loadu_ps(m0, row);
        if (S == 1) {
            V[0][r] = A;
        } else {
            const __m512 B = _mm512_maskz_loadu_ps(m1, s2_at(row, 16));
            V[0][r] = _mm512_permutex2var_ps(A, ie, B);
            V[1][r] = _mm512_permutex2var_ps(A, io, B);
        }
    }
    __m512 acc[8];
    for (int j = 0; j < 8; j++) acc[j] = _mm512_set1_ps(a->bias);
    lane_taps(V, acc, a->w, K, S, R, 1);
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    const __mmask16 mo = mask_n(a->OW);
    for (int j = 0; j < R; j++)
        _mm512_mask_storeu_ps(y + (size_t)(oy0 + j) * (size_t)a->OW, mo,
                              act512(acc[j], a->act, va, vb));
}

DW_INLINE void c1_plane(const sqz_dw_plane *a, const float *x, float *y, const int K, const int S) {
    int o0, o1;
    plane_range(a, &o0, &o1);
    for (; o1 - o0 >= 8; o0 += 8) c1_group(a, x, y, o0, K, S, 8);
    switch (o1 - o0) {
    case 1:
        c1_group(a, x, y, o0, K, S, 1);
        break;
    case 2:
        c1_group(a, x, y, o0, K, S, 2);
        break;
    case 3:
        c1_group(a, x, y, o0, K, S, 3);
        break;
    case 4:
        c1_group(a, x, y, o0, K, S, 4);
        break;
    case 5:
        c1_group(a, x, y, o0, K, S, 5);
        break;
    case 6:
        c1_group(a, x, y, o0, K, S, 6);
        break;
    case 7:
        c1_group(a, x, y, o0, K, S, 7);
        break;
    default:
        break;
    }
}

int sqz_dw_c1_covers_avx512(const sqz_dw_plane *a) {
    return (a->k == 3 || a->k == 5) && (a->stride == 1 || a->stride == 2) && a->OW >= 1 &&
           a->OW <= 16 && a->OH >= 1 && a->H >= 1 && a->W >= 1 && a->W <= 16 * a->stride &&
           a->pt >= 0 && a->pt < a->k && a->pl == (a->k - 1) / 2;
}

void sqz_dw_c1_run_avx512(const sqz_dw_plane *a, const float *x, float *y) {
    if (a->k == 3 && a->stride == 1) c1_plane(a, x, y, 3, 1);
    if (a->k == 3 && a->stride == 2) c1_plane(a, x, y, 3, 2);
    if (a->k == 5 && a->stride == 1) c1_plane(a, x, y, 5, 1);
    if (a->k == 5 && a->stride == 2) c1_plane(a, x, y, 5, 2);
}

/* ------------------------------------------------ stride 2, row kernels
 *
 * The stride-2 row kernels (sqz_dw_row contract: 3x3 layers wider than
 * DW_S2_ROW_OW in common/dwconv.c, the fused expansion + depthwise xdw.c,
 * SQZ_DW_S2=0) on the direct kernel's taps: per input
 * row and 32 output columns, masked loads (zeros outside the row), one even
 * / odd split and valignd shifts, both output rows from the same split.
 * Every block the same code, no edge blocks (bench_dwconv, 1 thread,
 * SQZ_DW_S2=0, vs the row kernels of the stride-1 structure: edge blocks of
 * expand / masked loads, three shuffles per row and block): 48x112x112 k3
 * 11.6 -> 18.3 GMAC/s, k5 14.2 -> 21.8; the direct kernel 14.7 / 25.0. */

/* columns [ox0, ox0 + 16 NV) of y (and y2), masked to out_w */
DW_INLINE void s2_rows_x(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                         const __m512 *wv, int ox0, const int K, const int TWO, const int NV,
                         const int EXT) {
    const int64_t c0 = (int64_t)ox0 * 2 - a->pad_l;
    __mmask16 mk[5];
    for (int i = 0; i < 2 * NV + 1; i++) mk[i] = s2_in_mask(c0 + 16 * i, a->in_w);
    W9_DECL(wv);
    const float *wsrc = a->w;
    __m512 acc0[2], acc1[2];
    for (int n = 0; n < NV; n++) acc0[n] = acc1[n] = _mm512_set1_ps(a->bias);
    const int nrows = TWO ? K + 2 : K;
#pragma GCC unroll 7
    for (int r = 0; r < nrows; r++) {
        if (K == 3) W9_PIN();
        __m512 T[5][2];
        s2_taps(rows[r], mk, c0, T, K, NV, EXT);
#pragma GCC unroll 5
        for (int kx = 0; kx < K; kx++)
#pragma GCC unroll 2
            for (int n = 0; n < NV; n++) {
                if (r < K) WFMA(acc0[n], T[kx][n], r * K + kx);
                if (TWO && r >= 2) WFMA(acc1[n], T[kx][n], (r - 2) * K + kx);
            }
    }
    const __m512 va = _mm512_set1_ps(a->alpha), vb = _mm512_set1_ps(a->beta);
    for (int n = 0; n < NV; n++) {
        const __mmask16 m = mask_16(a->out_w - ox0 - 16 * n);
        _mm512_mask_storeu_ps(y + ox0 + 16 * n, m, act512(acc0[n], a->act, va, vb));
        if (TWO) _mm512_mask_storeu_ps(y2 + ox0 + 16 * n, m, act512(acc1[n], a->act, va, vb));
    }
}

DW_INLINE void s2_rows_chunk(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                             const __m512 *wv, int ox0, const int K, const int TWO, const int NV) {
    if (s2_ext(a->out_w - ox0 - 16 * (NV - 1), K))
        s2_rows_x(a, rows, y, y2, wv, ox0, K, TWO, NV, 1);
    else
        s2_rows_x(a, rows, y, y2, wv, ox0, K, TWO, NV, 0);
}

DW_INLINE void s2_rows(const sqz_dw_row *a, const float *const *rows, float *y, float *y2,
                       const int K, const int TWO) {
    __m512 wv[25];
    for (int i = 0; i < K * K; i++) wv[i] = _mm512_set1_ps(a->w[i]);
    for (int ox0 = 0; ox0 < a->out_w; ox0 += 32) {
        if (a->out_w - ox0 > 16)
            s2_rows_chunk(a, rows, y, y2, wv, ox0, K, TWO, 2);
        else
            s2_rows_chunk(a, rows, y, y2, wv, ox0, K, TWO, 1);
    }
}

#define S2_FN(name, K)                                                                             \
    static void name(const sqz_dw_row *a, const float *const *rows, float *y, float *y2) {         \
        if (y2)                                                                                    \
            s2_rows(a, rows, y, y2, K, 1);                                                         \
        else                                                                                       \
            s2_rows(a, rows, y, NULL, K, 0);                                                       \
    }
S2_FN(dw3s2, 3)
S2_FN(dw5s2, 5)

sqz_dw_row_fn sqz_dw_row_avx512(int k, int stride) {
    if (k == 3 && stride == 1) return dw3s1;
    if (k == 3 && stride == 2) return dw3s2;
    if (k == 5 && stride == 1) return dw5s1;
    if (k == 5 && stride == 2) return dw5s2;
    return NULL;
}
