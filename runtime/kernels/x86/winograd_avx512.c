/* winograd_avx512.c - the Winograd transforms (common/winograd_tf.h) compiled
 * for AVX512 over 32 lanes: the avx512 GEMM kernel's NR, with the row
 * transform of the input in intrinsics (WT_ROW): column j of the lanes'
 * tiles is every m-th float of the buffered row from j, which the compiler
 * gathered one float at a time (ResNet-18's 56x56 64 ch F(4,3): the input
 * transform took ~40% of the conv); here two-source permutes pick them. */
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

/* hi[k * 32 + l] = (B^T along the row of lane l's tile)[k], l < len; reads
 * b[0, row_extent(m, len)) */
static inline __attribute__((always_inline)) void row_avx512(const float *b, int len, const int m,
                                                             float *hi) {
    for (int g = 0; g * 16 < len; g++) {
        const int n = len - 16 * g;
        const __mmask16 mk = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1u);
        if (m == 2) {
            const float *p = b + 32 * g;
            __m512 x0 = pick(p, 0, 2), x1 = pick(p, 1, 2), x2 = pick(p + 2, 0, 2),
                   x3 = pick(p + 2, 1, 2);
            /* B^T of F(2,3): the rows of wt_bt2 */
            _mm512_mask_storeu_ps(hi + 16 * g, mk, _mm512_sub_ps(x0, x2));
            _mm512_mask_storeu_ps(hi + 32 + 16 * g, mk, _mm512_add_ps(x1, x2));
            _mm512_mask_storeu_ps(hi + 64 + 16 * g, mk, _mm512_sub_ps(x2, x1));
            _mm512_mask_storeu_ps(hi + 96 + 16 * g, mk, _mm512_sub_ps(x1, x3));
        } else {
            const float *p = b + 64 * g;
            __m512 x[6], o[6];
            for (int j = 0; j < 4; j++) x[j] = pick(p, j, 4);
            x[4] = pick(p + 4, 0, 4);
            x[5] = pick(p + 4, 1, 4);
            row_bt4(x, o);
            for (int k = 0; k < 6; k++) _mm512_mask_storeu_ps(hi + 32 * k + 16 * g, mk, o[k]);
        }
    }
}

#define WT_ROW(b, len, m, hi) row_avx512(b, len, m, hi)
/* lane groups of 16: m = 4 reads 64 floats a group from b and from b + 4,
 * m = 2 reads 32 from b and b + 2 */
#define WT_ROW_EXTENT(m, len)                                                                      \
    ((m) == 4 ? 64 * (((len) + 15) / 16) + 4 : 32 * (((len) + 15) / 16) + 2)
#define WT_ROW_BW (64 * 2 + 4)
#include "common/winograd_tf.h"

const sqz_wino_tf sqz_wino_tf_avx512 = {"avx512", 32, wt_input2, wt_input4, wt_output2, wt_output4};
