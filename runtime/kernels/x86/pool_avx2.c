/* pool_avx2.c - MaxPool 3x3 stride 2 (SqueezeNet, ResNet, ShuffleNet stems),
 * AVX2, one channel plane. Contract in fastops.h (sqz_x86_maxpool3s2_avx2).
 *
 * Max is idempotent, so a window row or column that falls in the padding is
 * replaced by a duplicate of one inside (the window always keeps at least one
 * real row / column): out-of-range rows become the nearest valid row, edge
 * columns are computed in scalar code with clamped indices. Interior output
 * columns take 8 at a time: the vertical max of the 3 rows at columns
 * c .. c + 17, then even / odd / even+2 column lanes. Plain vector max does not
 * keep the reference's NaN rule (a NaN in the window wins): the inputs are
 * checked for NaN on the way (every column a window reads is loaded by the
 * 16-column vertical step of its block or by the scalar edge code) and a plane
 * holding one returns 0, the caller then recomputes it with its generic code. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "fastops.h"

static inline __m256 vmax3(const float *a, const float *b, const float *c) {
    return _mm256_max_ps(_mm256_max_ps(_mm256_loadu_ps(a), _mm256_loadu_ps(b)), _mm256_loadu_ps(c));
}

/* the vertical max of 16 columns (lo, hi); nan collects the lanes where one
 * of the 48 inputs is a NaN */
static inline void vmax3x2(const float *a, const float *b, const float *c, __m256 *lo, __m256 *hi,
                           __m256 *nan) {
    __m256 a0 = _mm256_loadu_ps(a), b0 = _mm256_loadu_ps(b), c0 = _mm256_loadu_ps(c);
    __m256 a1 = _mm256_loadu_ps(a + 8), b1 = _mm256_loadu_ps(b + 8), c1 = _mm256_loadu_ps(c + 8);
    *lo = _mm256_max_ps(_mm256_max_ps(a0, b0), c0);
    *hi = _mm256_max_ps(_mm256_max_ps(a1, b1), c1);
    __m256 u =
        _mm256_or_ps(_mm256_cmp_ps(a0, b0, _CMP_UNORD_Q), _mm256_cmp_ps(c0, a1, _CMP_UNORD_Q));
    *nan = _mm256_or_ps(*nan, _mm256_or_ps(u, _mm256_cmp_ps(b1, c1, _CMP_UNORD_Q)));
}

/* lanes 0,2,4,6 of a then of b: (a0 a2 a4 a6 b0 b2 b4 b6) / odd: 1,3,5,7 */
static inline __m256 even8(__m256 a, __m256 b) {
    return _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
}
static inline __m256 odd8(__m256 a, __m256 b) {
    return _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

/* 8 columns from col (>= 0) of a row of n floats, -inf past its end; nan
 * collects NaN lanes */
static inline __m256 load_tail(const float *row, int64_t col, int64_t n, __m256 *nan) {
    int64_t left = n - col;
    __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? (left < 0 ? 0 : left) : 8)),
                                   _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 v =
        _mm256_blendv_ps(_mm256_set1_ps(-INFINITY),
                         _mm256_maskload_ps(left > 0 ? row + col : row, m), _mm256_castsi256_ps(m));
    *nan = _mm256_or_ps(*nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return v;
}

static inline __m256 vmax3_tail(const float *a, const float *b, const float *c, int64_t col,
                                int64_t n, __m256 *nan) {
    __m256 va = load_tail(a, col, n, nan), vb = load_tail(b, col, n, nan);
    return _mm256_max_ps(_mm256_max_ps(va, vb), load_tail(c, col, n, nan));
}

static inline float max_f(float a, float b) {
    return a > b ? a : b;
}

int sqz_x86_maxpool3s2_avx2(const float *x, int64_t IH, int64_t IW, float *y, int64_t OH,
                            int64_t OW, int64_t ph, int64_t pw) {
    __m256 nan = _mm256_setzero_ps();
    int nan_scalar = 0;
    /* columns from lo: c = 2*ow - pw >= 0; the 8-output block at ow reads
     * columns c .. c + 17, all < IW up to vec_end, masked after it; the left
     * edge (ow < lo) is scalar */
    int64_t lo = (pw + 1) / 2, vec_end = lo;
    while (vec_end + 8 <= OW && 2 * vec_end - pw + 18 <= IW) vec_end += 8;
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t h0 = 2 * oh - ph, r0 = h0 < 0 ? 0 : h0, r1 = h0 + 3 < IH ? h0 + 3 : IH;
        float *yr = y + oh * OW;
        if (r1 <= r0) { /* every window row in the padding (ceil_mode) */
            for (int64_t ow = 0; ow < OW; ow++) yr[ow] = -INFINITY;
            continue;
        }
        const float *a = x + r0 * IW, *b = x + (r0 + 1 < r1 ? r0 + 1 : r0) * IW,
                    *c = x + (r1 - 1) * IW;
        int64_t ow = 0;
        for (; ow < OW; ow++) {
            if (ow == lo) {
                for (; ow < vec_end; ow += 8) {
                    const int64_t cc = 2 * ow - pw;
                    __m256 v0, v1;
                    vmax3x2(a + cc, b + cc, c + cc, &v0, &v1, &nan);
                    __m256 v2 = vmax3(a + cc + 2, b + cc + 2, c + cc + 2);
                    __m256 v3 = vmax3(a + cc + 10, b + cc + 10, c + cc + 10);
                    __m256 m =
                        _mm256_max_ps(_mm256_max_ps(even8(v0, v1), odd8(v0, v1)), even8(v2, v3));
                    _mm256_storeu_ps(yr + ow, m);
                }
                /* the right end: blocks reading past the row, masked */
                for (; ow < OW; ow += 8) {
                    const int64_t cc = 2 * ow - pw;
                    __m256 v0 = vmax3_tail(a, b, c, cc, IW, &nan);
                    __m256 v1 = vmax3_tail(a, b, c, cc + 8, IW, &nan);
                    __m256 v2 = vmax3_tail(a, b, c, cc + 2, IW, &nan);
                    __m256 v3 = vmax3_tail(a, b, c, cc + 10, IW, &nan);
                    __m256 m =
                        _mm256_max_ps(_mm256_max_ps(even8(v0, v1), odd8(v0, v1)), even8(v2, v3));
                    int64_t left = OW - ow;
                    __m256i sm = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left < 8 ? left : 8)),
                                                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                    _mm256_maskstore_ps(yr + ow, sm, m);
                }
                break;
            }
            int64_t w0 = 2 * ow - pw, c0 = w0 < 0 ? 0 : w0, c1 = w0 + 3 < IW ? w0 + 3 : IW;
            float v = -INFINITY;
            for (int64_t col = c0; col < c1; col++) {
                v = max_f(v, max_f(max_f(a[col], b[col]), c[col]));
                nan_scalar |= a[col] != a[col] || b[col] != b[col] || c[col] != c[col];
            }
            yr[ow] = v;
        }
    }
    return !nan_scalar && !_mm256_movemask_ps(nan);
}

/* MaxPool 2x2 stride 2 without padding (LeNet): per 8 outputs the vertical
 * max of 16 columns of the two rows, then the max of their even and odd
 * lanes; NaN inputs checked as above (return 0: the caller recomputes). */
int sqz_x86_maxpool2s2_avx2(const float *x, int64_t IW, float *y, int64_t OH, int64_t OW) {
    __m256 nan = _mm256_setzero_ps();
    int nan_scalar = 0;
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *a = x + 2 * oh * IW, *b = a + IW;
        float *yr = y + oh * OW;
        int64_t ow = 0;
        for (; ow + 8 <= OW; ow += 8) {
            const float *pa = a + 2 * ow, *pb = b + 2 * ow;
            __m256 a0 = _mm256_loadu_ps(pa), b0 = _mm256_loadu_ps(pb);
            __m256 a1 = _mm256_loadu_ps(pa + 8), b1 = _mm256_loadu_ps(pb + 8);
            nan = _mm256_or_ps(nan, _mm256_or_ps(_mm256_cmp_ps(a0, b0, _CMP_UNORD_Q),
                                                 _mm256_cmp_ps(a1, b1, _CMP_UNORD_Q)));
            __m256 v0 = _mm256_max_ps(a0, b0), v1 = _mm256_max_ps(a1, b1);
            _mm256_storeu_ps(yr + ow, _mm256_max_ps(even8(v0, v1), odd8(v0, v1)));
        }
        for (; ow < OW; ow++) {
            int64_t c = 2 * ow;
            float p = a[c], q = a[c + 1], r = b[c], t = b[c + 1];
            nan_scalar |= p != p || q != q || r != r || t != t;
            yr[ow] = max_f(max_f(p, q), max_f(r, t));
        }
    }
    return !nan_scalar && !_mm256_movemask_ps(nan);
}
