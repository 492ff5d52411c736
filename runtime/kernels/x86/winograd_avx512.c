/* winograd_avx512.c - the Winograd transforms (common/winograd_tf.h) compiled
 * for AVX512 over 32 lanes: the avx512 GEMM kernel's NR, with the row
 * transform of the input in intrinsics (WT_ROW): column j of the lanes'
 * tiles is every m-th float of the buffered row from j, which the compiler
 * gathered one float at a time (ResNet-18's 56x56 64 ch F(4,3): the input
 * transform took ~40% of the conv); here two-source permutes pick them.
 * Likewise the output pixels (WT_STORE). */
#include <immintrin.h>

#define WT_NR 32

/* B^T of F(4,3) (Lavin & Gray) on six vectors, the sharing of wt_bt4 */
static inline __attribute__((always_inline)) void row_bt4(const __m512 x[6], __m512 o[6]) {
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f),
                 two = _mm512_set1_ps(2.0f);
    __m512 a = _mm512_sub_ps(x[4], _mm512_mul_ps(four, x[2]));
    __m512 b = _mm512_sub_ps(x[3], _mm512_mul_ps(four, x[1]));
    __m512 c = _mm512_sub_ps(x[4], x[2]);
    __m512 e = _mm512_mul_ps(two, _mm512_sub_ps(x[3], x[1]));
    o[0] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, x[0]), _mm512_mul_ps(five, x[2])), x[4]);
    o[1] = _mm512_add_ps(a, b);
    o[2] = _mm512_sub_ps(a, b);
    o[3] = _mm512_add_ps(c, e);
    o[4] = _mm512_sub_ps(c, e);
    o[5] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, x[1]), _mm512_mul_ps(five, x[3])), x[5]);
}

/* floats j, j + s, ..., j + 15 s (s = 2 or 4) of the 16 s floats at p */
static inline __attribute__((always_inline)) __m512 pick(const float *p, int j, const int s) {
    if (s == 2) {
        __m512i idx =
            _mm512_add_epi32(_mm512_set1_epi32(j), _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16,
                                                                     18, 20, 22, 24, 26, 28, 30));
        return _mm512_permutex2var_ps(_mm512_loadu_ps(p), idx, _mm512_loadu_ps(p + 16));
    }
    /* s = 4: lanes 0-7 from floats [0, 32), lanes 8-15 from [32, 64) */
    __m512i idx =
        _mm512_add_epi32(_mm512_set1_epi32(j), _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4,
                                                                 8, 12, 16, 20, 24, 28));
    __m512 lo = _mm512_permutex2var_ps(_mm512_loadu_ps(p), idx, _mm512_loadu_ps(p + 16));
    __m512 hi = _mm512_permutex2var_ps(_mm512_loadu_ps(p + 32), idx, _mm512_loadu_ps(p + 48));
    return _mm512_shuffle_f32x4(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));
}

/* lanes 1..15 of v in lanes 0..14, f in lane 15 */
static inline __attribute__((always_inline)) __m512 shift_in(__m512 v, float f) {
    return _mm512_castsi512_ps(
        _mm512_alignr_epi32(_mm512_castps_si512(_mm512_set1_ps(f)), _mm512_castps_si512(v), 1));
}

/* hi[k * 32 + l] = (B^T along the row of lane l's tile)[k], l < len; reads
 * b[0, row_extent(m, len)) */
static inline __attribute__((always_inline)) void row_avx512(const float *b, int len, const int m,
                                                             float *hi) {
    for (int g = 0; g * 16 < len; g++) {
        const int n = len - 16 * g;
        const __mmask16 mk = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1u);
        if (m == 2) {
            const float *p = b + 32 * g;
            /* columns 2 and 3 are columns 0 and 1 one lane on: shifted in
             * registers (valignd), not loaded again from p + 2, where each
             * load would straddle two of the staging copy's stores */
            __m512 x0 = pick(p, 0, 2), x1 = pick(p, 1, 2);
            __m512 x2 = shift_in(x0, p[32]), x3 = shift_in(x1, p[33]);
            /* B^T of F(2,3): the rows of wt_bt2 */
            _mm512_mask_storeu_ps(hi + 16 * g, mk, _mm512_sub_ps(x0, x2));
            _mm512_mask_storeu_ps(hi + 32 + 16 * g, mk, _mm512_add_ps(x1, x2));
            _mm512_mask_storeu_ps(hi + 64 + 16 * g, mk, _mm512_sub_ps(x2, x1));
            _mm512_mask_storeu_ps(hi + 96 + 16 * g, mk, _mm512_sub_ps(x1, x3));
        } else {
            const float *p = b + 64 * g;
            __m512 x[6], o[6];
            for (int j = 0; j < 4; j++) x[j] = pick(p, j, 4);
            x[4] = shift_in(x[0], p[64]); /* as for m = 2 */
            x[5] = shift_in(x[1], p[65]);
            row_bt4(x, o);
            for (int k = 0; k < 6; k++) _mm512_mask_storeu_ps(hi + 32 * k + 16 * g, mk, o[k]);
        }
    }
}

/* row[l * m + j] = oi[j * 32 + l] for l < n (m = 2 or 4 columns per tile):
 * the m lane vectors interleaved in registers (4x4 / 2x2 transposes) and
 * stored whole, where the compiler stored a float at a time */
static inline __attribute__((always_inline)) void store_avx512(float *row, const float *oi, int n,
                                                               const int m) {
    for (int g = 0; g * 16 < n; g++) {
        const int fl = m * (n - 16 * g); /* floats of this group */
        float *d = row + 16 * m * g;
        const float *s = oi + 16 * g;
        __m512 out[4];
        if (m == 2) {
            __m512 c0 = _mm512_loadu_ps(s), c1 = _mm512_loadu_ps(s + 32);
            __m512 lo = _mm512_unpacklo_ps(c0, c1), hi = _mm512_unpackhi_ps(c0, c1);
            /* 128-bit blocks: lo0 hi0 lo1 hi1 | lo2 hi2 lo3 hi3 */
            out[0] = _mm512_permutex2var_ps(
                lo, _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23), hi);
            out[1] = _mm512_permutex2var_ps(
                lo, _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31),
                hi);
        } else {
            __m512 c0 = _mm512_loadu_ps(s), c1 = _mm512_loadu_ps(s + 32),
                   c2 = _mm512_loadu_ps(s + 64), c3 = _mm512_loadu_ps(s + 96);
            __m512 t0 = _mm512_unpacklo_ps(c0, c1), t1 = _mm512_unpackhi_ps(c0, c1);
            __m512 t2 = _mm512_unpacklo_ps(c2, c3), t3 = _mm512_unpackhi_ps(c2, c3);
            /* block k of u_q: the 4 columns of lane 4k + q */
            __m512 u0 = _mm512_shuffle_ps(t0, t2, 0x44), u1 = _mm512_shuffle_ps(t0, t2, 0xEE);
            __m512 u2 = _mm512_shuffle_ps(t1, t3, 0x44), u3 = _mm512_shuffle_ps(t1, t3, 0xEE);
            __m512 v0 = _mm512_shuffle_f32x4(u0, u1, 0x44), v1 = _mm512_shuffle_f32x4(u2, u3, 0x44);
            __m512 v2 = _mm512_shuffle_f32x4(u0, u1, 0xEE), v3 = _mm512_shuffle_f32x4(u2, u3, 0xEE);
            out[0] = _mm512_shuffle_f32x4(v0, v1, 0x88);
            out[1] = _mm512_shuffle_f32x4(v0, v1, 0xDD);
            out[2] = _mm512_shuffle_f32x4(v2, v3, 0x88);
            out[3] = _mm512_shuffle_f32x4(v2, v3, 0xDD);
        }
        for (int q = 0; q < m; q++) {
            int c = fl - 16 * q;
            if (c <= 0) break;
            _mm512_mask_storeu_ps(d + 16 * q, (__mmask16)(c >= 16 ? 0xffff : (1u << c) - 1u),
                                  out[q]);
        }
    }
}

/* F(4,3) row transform of two runs of at most 7 lanes in one group: the
 * first's columns at b[0, 32), the second's at b[32, 68); pick's lanes 0-7
 * read the first window, lanes 8-15 the second (lane 7 is the seam: its
 * columns 4-5 come from the second run, so a run may fill only 7 lanes).
 * Narrow planes (F(4,3) on 28x28: 7 tiles a row, 14x14: 4) then fill 14 or
 * 8 of 16 lanes, not 7 or 4. */
static inline __attribute__((always_inline)) void row_pair_avx512(const float *b, int len,
                                                                  float *hi, int len2, float *hi2) {
    __m512 x[6], o[6];
    for (int j = 0; j < 4; j++) x[j] = pick(b, j, 4);
    x[4] = shift_in(x[0], b[64]);
    x[5] = shift_in(x[1], b[65]);
    row_bt4(x, o);
    const __mmask16 k1 = (__mmask16)((1u << len) - 1u), k2 = (__mmask16)((1u << len2) - 1u);
    for (int k = 0; k < 6; k++) {
        _mm512_mask_storeu_ps(hi + 32 * k, k1, o[k]);
        /* lanes 8-15 down to 0-7 */
        _mm512_mask_storeu_ps(hi2 + 32 * k, k2, _mm512_shuffle_f32x4(o[k], o[k], 0xEE));
    }
}

#define WT_PAIR_LEN 7
#define WT_PAIR_OFF 32
#define WT_ROW_PAIR(b, len, hi, len2, hi2) row_pair_avx512(b, len, hi, len2, hi2)
#define WT_ROW(b, len, m, hi) row_avx512(b, len, m, hi)
#define WT_STORE(row, oi, n, m) store_avx512(row, oi, n, m)
/* lane groups of 16: m = 4 reads 64 floats a group from b and from b + 4,
 * m = 2 reads 32 from b and b + 2 */
#define WT_ROW_EXTENT(m, len)                                                                      \
    ((m) == 4 ? 64 * (((len) + 15) / 16) + 4 : 32 * (((len) + 15) / 16) + 2)
#define WT_ROW_BW (64 * 2 + 4)
#include "common/winograd_tf.h"

const sqz_wino_tf sqz_wino_tf_avx512 = {"avx512", 32, wt_input2, wt_input4, wt_output2, wt_output4};
