/* dwconv_neon.c - depthwise row kernels, aarch64 NEON, 4 output columns per
 * vector and two vectors per step. Contract in dwconv.h.
 *
 * Only interior columns [ox_lo, ox_hi) run in SIMD: there every tap reads
 * inside the row, so plain loads never leave it. The left and right padding
 * columns and the interior tail (< 4 columns) use the shared scalar
 * sqz_dw_border().
 * Stride 1: tap kx of a vector is the load at column c0 + kx.
 * Stride 2: ld2 (de-interleaving load of 8 floats) at c0 + kx gives taps kx
 * (even columns) and kx + 1 (odd ones); the last tap of the odd kernel
 * takes the odd half of the ld2 at c0 + K - 2, so no load reaches past the
 * last column the block's outputs need. A second output row (y2) is computed
 * from rows + stride. */
#include <arm_neon.h>

#include "dwconv.h"

#define DW_INLINE static inline __attribute__((always_inline))

DW_INLINE float32x4_t act4(float32x4_t v, int kind, float32x4_t va, float32x4_t vb) {
    const float32x4_t zero = vdupq_n_f32(0.0f);
    switch (kind) {
    case SQZ_ACT_RELU:
        return vmaxq_f32(v, zero);
    case SQZ_ACT_CLIP:
        return vminq_f32(vmaxq_f32(v, va), vb);
    case SQZ_ACT_LEAKY_RELU:
        return vbslq_f32(vcltq_f32(v, zero), vmulq_f32(v, va), v);
    case SQZ_ACT_HARD_SWISH: {
        float32x4_t t = vfmaq_f32(vdupq_n_f32(0.5f), v, vdupq_n_f32(1.0f / 6.0f));
        t = vminq_f32(vmaxq_f32(t, zero), vdupq_n_f32(1.0f));
        return vmulq_f32(v, t);
    }
    default:
        return v;
    }
}

/* NB vectors (4 * NB output columns from ox, all interior) of one row. */
DW_INLINE void dw_block(const sqz_dw_row *a, const float *const *rows, float *y, int ox,
                        const int K, const int S, const int NB) {
    const int c0 = ox * S - a->pad_l;
    float32x4_t acc[2];
    for (int b = 0; b < NB; b++) acc[b] = vdupq_n_f32(a->bias);
#pragma GCC unroll 5
    for (int ky = 0; ky < K; ky++) {
        const float *row = rows[ky] + c0;
        const float *w = a->w + ky * K;
#pragma GCC unroll 2
        for (int b = 0; b < NB; b++) {
            const float *p = row + 4 * S * b;
            if (S == 1) {
#pragma GCC unroll 5
                for (int kx = 0; kx < K; kx++)
                    acc[b] = vfmaq_n_f32(acc[b], vld1q_f32(p + kx), w[kx]);
            } else {
#pragma GCC unroll 2
                for (int kx = 0; kx + 1 < K; kx += 2) {
                    float32x4x2_t v = vld2q_f32(p + kx);
                    acc[b] = vfmaq_n_f32(acc[b], v.val[0], w[kx]);
                    acc[b] = vfmaq_n_f32(acc[b], v.val[1], w[kx + 1]);
                }
                float32x4x2_t v = vld2q_f32(p + K - 2);
                acc[b] = vfmaq_n_f32(acc[b], v.val[1], w[K - 1]);
            }
        }
    }
    const float32x4_t va = vdupq_n_f32(a->alpha), vb = vdupq_n_f32(a->beta);
    for (int b = 0; b < NB; b++) vst1q_f32(y + ox + 4 * b, act4(acc[b], a->act, va, vb));
}

DW_INLINE void dw_row1(const sqz_dw_row *a, const float *const *rows, float *y, const int K,
                       const int S) {
    int ox = a->ox_lo;
    sqz_dw_border(a, rows, y, 0, ox);
    for (; ox + 8 <= a->ox_hi; ox += 8) dw_block(a, rows, y, ox, K, S, 2);
    for (; ox + 4 <= a->ox_hi; ox += 4) dw_block(a, rows, y, ox, K, S, 1);
    sqz_dw_border(a, rows, y, ox, a->out_w);
}

#define DW_FN(name, K, S)                                                                          \
    static void name(const sqz_dw_row *a, const float *const *rows, float *y, float *y2) {         \
        dw_row1(a, rows, y, K, S);                                                                 \
        if (y2) dw_row1(a, rows + S, y2, K, S);                                                    \
    }
DW_FN(dw3s1, 3, 1)
DW_FN(dw3s2, 3, 2)
DW_FN(dw5s1, 5, 1)
DW_FN(dw5s2, 5, 2)

sqz_dw_row_fn sqz_dw_row_neon(int k, int stride) {
    if (k == 3 && stride == 1) return dw3s1;
    if (k == 3 && stride == 2) return dw3s2;
    if (k == 5 && stride == 1) return dw5s1;
    if (k == 5 && stride == 2) return dw5s2;
    return NULL;
}
