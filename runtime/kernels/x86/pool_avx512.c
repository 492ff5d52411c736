/* pool_avx512.c - MaxPool 3x3 stride 2 on one channel plane, AVX-512
 * (SqueezeNet, ResNet, ShuffleNet). Contract in fastops.h
 * (sqz_x86_maxpool3s2_avx512); the same rules as the AVX2 kernel
 * (pool_avx2.c): window rows in the padding become duplicates of a real row,
 * the left edge is scalar, a NaN anywhere in the plane makes it return 0.
 *
 * 16 outputs per step: the vertical max of the three rows over columns
 * c .. c + 32 (two full vectors and one lane), then the even, odd and
 * even-plus-two columns are picked with two-source permutes. Every load is
 * masked to the row (masked-off lanes read as -inf), so the right edge and
 * ceil_mode windows need no separate path and small planes (13x13, 27x27)
 * no scalar tail. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "fastops.h"

/* mask of the valid lanes of n (may be <= 0 or > 16) */
static inline __mmask16 lanes(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

static inline float max_f(float a, float b) {
    return a > b ? a : b;
}

/* 16 outputs of the row whose vertical max is v0 | v1 | v2 (columns cc ..
 * cc + 32): lane i = max of columns cc + 2i, cc + 2i + 1, cc + 2i + 2 */
static inline __m512 hmax3s2(__m512 v0, __m512 v1, __m512 v2, __m512i ieven, __m512i iodd) {
    __m512 ev = _mm512_permutex2var_ps(v0, ieven, v1); /* columns cc + 2i */
    __m512 od = _mm512_permutex2var_ps(v0, iodd, v1);  /* cc + 2i + 1 */
    /* cc + 2i + 2: ev shifted down one lane, column cc + 32 on top */
    __m512 e2 = _mm512_castsi512_ps(
        _mm512_alignr_epi32(_mm512_castps_si512(v2), _mm512_castps_si512(ev), 1));
    return _mm512_max_ps(_mm512_max_ps(ev, od), e2);
}

/* Output rows oh and oh + 1 whose windows are the five input rows r[0..4]
 * (row r[2] shared): 15 loads instead of 18 per 32 outputs, and two
 * independent chains. Columns from ow = lo as in the one-row loop. */
static inline __mmask16 two_rows(const float *const r[5], int64_t IW, int64_t OW, int64_t lo,
                                 int64_t pw, float *y0, float *y1, __m512i ieven, __m512i iodd) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    for (int64_t ow = lo; ow < OW; ow += 16) {
        const int64_t cc = 2 * ow - pw, left = IW - cc;
        const __mmask16 m[3] = {lanes(left), lanes(left - 16), (__mmask16)(lanes(left - 32) & 1u)};
        __m512 v[2][3];
        for (int j = 0; j < 3; j++) {
            __m512 a = _mm512_mask_loadu_ps(ninf, m[j], r[0] + cc + 16 * j);
            __m512 b = _mm512_mask_loadu_ps(ninf, m[j], r[1] + cc + 16 * j);
            __m512 c = _mm512_mask_loadu_ps(ninf, m[j], r[2] + cc + 16 * j);
            __m512 d = _mm512_mask_loadu_ps(ninf, m[j], r[3] + cc + 16 * j);
            __m512 e = _mm512_mask_loadu_ps(ninf, m[j], r[4] + cc + 16 * j);
            nan |= _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(c, d, _CMP_UNORD_Q) |
                   _mm512_cmp_ps_mask(e, e, _CMP_UNORD_Q);
            v[0][j] = _mm512_max_ps(_mm512_max_ps(a, b), c);
            v[1][j] = _mm512_max_ps(_mm512_max_ps(c, d), e);
        }
        const __mmask16 om = lanes(OW - ow);
        _mm512_mask_storeu_ps(y0 + ow, om, hmax3s2(v[0][0], v[0][1], v[0][2], ieven, iodd));
        _mm512_mask_storeu_ps(y1 + ow, om, hmax3s2(v[1][0], v[1][1], v[1][2], ieven, iodd));
    }
    return nan;
}

int sqz_x86_maxpool3s2_avx512(const float *x, int64_t IH, int64_t IW, float *y, int64_t OH,
                              int64_t OW, int64_t ph, int64_t pw) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __m512i ieven =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i iodd =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __mmask16 nan = 0;
    int nan_scalar = 0;
    const int64_t lo = (pw + 1) / 2; /* outputs before lo: window starts left of column 0 */
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t h0 = 2 * oh - ph, r0 = h0 < 0 ? 0 : h0, r1 = h0 + 3 < IH ? h0 + 3 : IH;
        float *yr = y + oh * OW;
        if (h0 >= 0 && h0 + 5 <= IH && oh + 1 < OH && lo == 0) {
            /* two whole-window rows at once (the left-edge outputs of lo > 0
             * go through the one-row path) */
            const float *r[5] = {x + h0 * IW, x + (h0 + 1) * IW, x + (h0 + 2) * IW,
                                 x + (h0 + 3) * IW, x + (h0 + 4) * IW};
            nan |= two_rows(r, IW, OW, lo, pw, yr, yr + OW, ieven, iodd);
            oh++;
            continue;
        }
        if (r1 <= r0) { /* every window row in the padding (ceil_mode) */
            for (int64_t ow = 0; ow < OW; ow++) yr[ow] = -INFINITY;
            continue;
        }
        const float *a = x + r0 * IW, *b = x + (r0 + 1 < r1 ? r0 + 1 : r0) * IW,
                    *c = x + (r1 - 1) * IW;
        for (int64_t ow = 0; ow < lo && ow < OW; ow++) {
            int64_t w0 = 2 * ow - pw, c0 = w0 < 0 ? 0 : w0, c1 = w0 + 3 < IW ? w0 + 3 : IW;
            float v = -INFINITY;
            for (int64_t col = c0; col < c1; col++) {
                v = max_f(v, max_f(max_f(a[col], b[col]), c[col]));
                nan_scalar |= a[col] != a[col] || b[col] != b[col] || c[col] != c[col];
            }
            yr[ow] = v;
        }
        for (int64_t ow = lo; ow < OW; ow += 16) {
            const int64_t cc = 2 * ow - pw, left = IW - cc; /* cc >= 0 */
            const __mmask16 m0 = lanes(left), m1 = lanes(left - 16), m2 = lanes(left - 32) & 1u;
            __m512 a0 = _mm512_mask_loadu_ps(ninf, m0, a + cc);
            __m512 b0 = _mm512_mask_loadu_ps(ninf, m0, b + cc);
            __m512 c0 = _mm512_mask_loadu_ps(ninf, m0, c + cc);
            __m512 a1 = _mm512_mask_loadu_ps(ninf, m1, a + cc + 16);
            __m512 b1 = _mm512_mask_loadu_ps(ninf, m1, b + cc + 16);
            __m512 c1 = _mm512_mask_loadu_ps(ninf, m1, c + cc + 16);
            __m512 a2 = _mm512_mask_loadu_ps(ninf, m2, a + cc + 32);
            __m512 b2 = _mm512_mask_loadu_ps(ninf, m2, b + cc + 32);
            __m512 c2 = _mm512_mask_loadu_ps(ninf, m2, c + cc + 32);
            nan |= _mm512_cmp_ps_mask(a0, b0, _CMP_UNORD_Q) |
                   _mm512_cmp_ps_mask(c0, a1, _CMP_UNORD_Q) |
                   _mm512_cmp_ps_mask(b1, c1, _CMP_UNORD_Q) |
                   _mm512_cmp_ps_mask(a2, b2, _CMP_UNORD_Q) |
                   _mm512_cmp_ps_mask(c2, c2, _CMP_UNORD_Q);
            __m512 v0 = _mm512_max_ps(_mm512_max_ps(a0, b0), c0);
            __m512 v1 = _mm512_max_ps(_mm512_max_ps(a1, b1), c1);
            __m512 v2 = _mm512_max_ps(_mm512_max_ps(a2, b2), c2);
            _mm512_mask_storeu_ps(yr + ow, lanes(OW - ow), hmax3s2(v0, v1, v2, ieven, iodd));
        }
    }
    return !nan_scalar && !nan;
}
