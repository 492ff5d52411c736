/* sparse_neon.c - CSR row kernels with NEON (aarch64), fp32 and int8
 * (contracts: kernels/sparse.h). spmm / spmm8: XNNPACK-style NCHW SpMM - per
 * output row, each entry's weight is broadcast and multiplied into 16 pixels
 * of its input row (fp32: 4 fmla; int8: int16 pixels widened into int32 with
 * smlal / smlal2 by the scalar weight, exact), then 4-pixel steps, the last
 * pixels through the scalar twin's column range (int8) or scalar code (fp32).
 * spmv / spmv8: scalar index loads, 4 independent sums. int8 requantization:
 * int8.h's fp32 formula (scvtf, fmul, clamp, fcvtns), then narrows of values
 * already in [lo, hi]. */
#include <arm_neon.h>

#include "sparse.h"

/* sparse.h clamp order: v > lo ? v : lo, then v < hi ? v : hi (NaN -> lo) */
static inline float32x4_t clamp4(float32x4_t v, float32x4_t lo, float32x4_t hi) {
    v = vbslq_f32(vcgtq_f32(v, lo), v, lo);
    return vbslq_f32(vcltq_f32(v, hi), v, hi);
}
static inline float clamp1(const sqz_csr *m, float v) {
    if (!m->clamp) return v;
    v = v > m->lo ? v : m->lo;
    return v < m->hi ? v : m->hi;
}

void sqz_spmm_neon(const sqz_csr *m, int64_t r0, int64_t r1, const float *X, int64_t P,
                   const float *bias, float *Y) {
    const int clamp = m->clamp;
    const float32x4_t lo = vdupq_n_f32(m->lo), hi = vdupq_n_f32(m->hi);
#define CL(a) (clamp ? clamp4(a, lo, hi) : (a))
    for (int64_t r = r0; r < r1; r++) {
        float *y = Y + r * P;
        const float b = bias ? bias[r] : 0.0f;
        const int32_t k0 = m->rowptr[r], k1 = m->rowptr[r + 1];
        int64_t p = 0;
        for (; p + 16 <= P; p += 16) {
            float32x4_t a0 = vdupq_n_f32(b), a1 = a0, a2 = a0, a3 = a0;
            for (int32_t k = k0; k < k1; k++) {
                const float *x = X + (int64_t)m->col[k] * P + p;
                const float v = m->val[k];
                a0 = vfmaq_n_f32(a0, vld1q_f32(x), v);
                a1 = vfmaq_n_f32(a1, vld1q_f32(x + 4), v);
                a2 = vfmaq_n_f32(a2, vld1q_f32(x + 8), v);
                a3 = vfmaq_n_f32(a3, vld1q_f32(x + 12), v);
            }
            vst1q_f32(y + p, CL(a0));
            vst1q_f32(y + p + 4, CL(a1));
            vst1q_f32(y + p + 8, CL(a2));
            vst1q_f32(y + p + 12, CL(a3));
        }
        for (; p + 4 <= P; p += 4) {
            float32x4_t a0 = vdupq_n_f32(b);
            for (int32_t k = k0; k < k1; k++)
                a0 = vfmaq_n_f32(a0, vld1q_f32(X + (int64_t)m->col[k] * P + p), m->val[k]);
            vst1q_f32(y + p, CL(a0));
        }
        for (; p < P; p++) {
            float s = b;
            for (int32_t k = k0; k < k1; k++) s += m->val[k] * X[(int64_t)m->col[k] * P + p];
            y[p] = clamp1(m, s);
        }
    }
}

#undef CL

void sqz_spmv_neon(const sqz_csr *m, int64_t r0, int64_t r1, const float *x, const float *bias,
                   float *y) {
    for (int64_t r = r0; r < r1; r++) {
        int32_t k = m->rowptr[r];
        const int32_t k1 = m->rowptr[r + 1];
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (; k + 4 <= k1; k += 4) {
            s0 += m->val[k] * x[m->col[k]];
            s1 += m->val[k + 1] * x[m->col[k + 1]];
            s2 += m->val[k + 2] * x[m->col[k + 2]];
            s3 += m->val[k + 3] * x[m->col[k + 3]];
        }
        for (; k < k1; k++) s0 += m->val[k] * x[m->col[k]];
        y[r] = clamp1(m, (s0 + s1) + (s2 + s3) + (bias ? bias[r] : 0.0f));
    }
}

/* int8.h requantization of 4 int32 lanes: scvtf, fmul, clamp to
 * [lo - zp, hi - zp], fcvtns (round to nearest even), + zp. */
static inline int32x4_t rq4(int32x4_t acc, sqz_rq q, int32_t zp, int32_t lo, int32_t hi) {
    float32x4_t v = vmulq_f32(vcvtq_f32_s32(acc), vdupq_n_f32(q.s));
    v = vminq_f32(vmaxq_f32(v, vdupq_n_f32((float)(lo - zp))), vdupq_n_f32((float)(hi - zp)));
    return vaddq_s32(vcvtnq_s32_f32(v), vdupq_n_s32(zp));
}

static inline int8x8_t narrow8(int32x4_t a, int32x4_t b) { /* values already in int8 range */
    return vmovn_s16(vcombine_s16(vmovn_s32(a), vmovn_s32(b)));
}

void sqz_spmm8_neon(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                    int64_t P, int8_t *Y) {
    for (int64_t r = r0; r < r1; r++) {
        int8_t *y = Y + r * P;
        const int32x4_t o = vdupq_n_s32(m->off[r]);
        const int32_t k0 = m->rowptr[r], k1 = m->rowptr[r + 1];
        const sqz_rq q = m->rq[r];
        int64_t p = 0;
        for (; p + 16 <= P; p += 16) {
            int32x4_t a0 = o, a1 = o, a2 = o, a3 = o;
            for (int32_t k = k0; k < k1; k++) {
                const int16_t *x = X + (int64_t)m->col[k] * xs + p;
                const int16_t w = m->val[k];
                int16x8_t u = vld1q_s16(x), v = vld1q_s16(x + 8);
                a0 = vmlal_n_s16(a0, vget_low_s16(u), w);
                a1 = vmlal_high_n_s16(a1, u, w);
                a2 = vmlal_n_s16(a2, vget_low_s16(v), w);
                a3 = vmlal_high_n_s16(a3, v, w);
            }
            vst1_s8(y + p,
                    narrow8(rq4(a0, q, m->zp, m->lo, m->hi), rq4(a1, q, m->zp, m->lo, m->hi)));
            vst1_s8(y + p + 8,
                    narrow8(rq4(a2, q, m->zp, m->lo, m->hi), rq4(a3, q, m->zp, m->lo, m->hi)));
        }
        for (; p + 4 <= P; p += 4) {
            int32x4_t a0 = o;
            for (int32_t k = k0; k < k1; k++)
                a0 = vmlal_n_s16(a0, vld1_s16(X + (int64_t)m->col[k] * xs + p), m->val[k]);
            int32x4_t v = rq4(a0, q, m->zp, m->lo, m->hi);
            int32_t t[4];
            vst1q_s32(t, v);
            for (int i = 0; i < 4; i++) y[p + i] = (int8_t)t[i];
        }
        if (p < P) sqz_spmm8_ref_cols(m, r, r + 1, X, xs, P, p, P, Y);
    }
}

void sqz_spmv8_neon(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x, void *tmp,
                    int8_t *y) {
    (void)tmp;
    for (int64_t r = r0; r < r1; r++) {
        int32_t k = m->rowptr[r];
        const int32_t k1 = m->rowptr[r + 1];
        int64_t s0 = m->off[r], s1 = 0; /* rows hold pairs: k1 - k is even */
        for (; k + 2 <= k1; k += 2) {
            s0 += (int32_t)m->val[k] * x[m->col[k]];
            s1 += (int32_t)m->val[k + 1] * x[m->col[k + 1]];
        }
        y[r] = (int8_t)sqz_rq_apply(s0 + s1, m->rq[r], m->zp, m->lo, m->hi);
    }
}
