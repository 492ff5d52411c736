/* int8_neon.h - NEON requantization / store helpers shared by the smlal
 * (int8_neon.c) and sdot (int8_neon_dot.c) int8 microkernels (internal).
 * Requantization exactly as int8.h (fp32: scvtf, fmul, clamp, fcvtns). */
#ifndef SQZ_NEON_INT8_NEON_H
#define SQZ_NEON_INT8_NEON_H

#include <arm_neon.h>
#include <string.h>

#include "int8_simd.h"

/* Per-lane multipliers of 4 lanes. */
typedef struct i8n_rq4 {
    float32x4_t s;
} i8n_rq4;

static inline i8n_rq4 i8n_rq4_dup(const sqz_i8_rqv *r) {
    i8n_rq4 q;
    q.s = vdupq_n_f32(r->s);
    return q;
}

/* Lane l takes rq[l0 + l] when l0 + l < n; the others a harmless 0. */
static inline i8n_rq4 i8n_rq4_load(const sqz_i8_rqv *rq, int64_t l0, int64_t n) {
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t l = 0; l < 4 && l0 + l < n; l++) s[l] = rq[l0 + l].s;
    i8n_rq4 q;
    q.s = vld1q_f32(s);
    return q;
}

/* int8.h requantization on 4 lanes: scvtf, fmul, clamp to
 * [lo - zp, hi - zp], fcvtns (round to nearest even), + zp. */
static inline int32x4_t i8n_rq(int32x4_t acc, const i8n_rq4 *q, int32x4_t zp, int32x4_t lo,
                               int32x4_t hi) {
    float32x4_t v = vmulq_f32(vcvtq_f32_s32(acc), q->s);
    v = vminq_f32(vmaxq_f32(v, vcvtq_f32_s32(vsubq_s32(lo, zp))), vcvtq_f32_s32(vsubq_s32(hi, zp)));
    return vaddq_s32(vcvtnq_s32_f32(v), zp);
}

/* 8 int32 (already within [-128, 127]) -> n bytes at y (n may be <= 0). */
static inline void i8n_store8(int8_t *y, int32x4_t v0, int32x4_t v1, int64_t n) {
    if (n <= 0) return;
    int8x8_t b = vqmovn_s16(vcombine_s16(vqmovn_s32(v0), vqmovn_s32(v1)));
    if (n >= 8) {
        vst1_s8(y, b);
    } else {
        int8_t t[8];
        vst1_s8(t, b);
        memcpy(y, t, (size_t)n);
    }
}

/* 16 int32 -> n bytes at y. */
static inline void i8n_store16(int8_t *y, const int32x4_t v[4], int64_t n) {
    i8n_store8(y, v[0], v[1], n);
    i8n_store8(y + 8, v[2], v[3], n - 8);
}

#endif
