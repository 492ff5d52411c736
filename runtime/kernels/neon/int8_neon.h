/* int8_neon.h - NEON requantization / store helpers shared by the smlal
 * (int8_neon.c) and sdot (int8_neon_dot.c) int8 microkernels (internal).
 * Requantization exactly as int8.h: 64-bit products, round half up,
 * arithmetic shift, clamp of the 64-bit value. */
#ifndef SQZ_NEON_INT8_NEON_H
#define SQZ_NEON_INT8_NEON_H

#include <arm_neon.h>
#include <string.h>

#include "int8_simd.h"

/* Per-lane requantization constants of 4 lanes. */
typedef struct i8n_rq4 {
    int32x4_t M;
    int64x2_t nS0, nS1;   /* -S of lanes 0-1 / 2-3 (vshl by a negative count: arithmetic >>) */
    int64x2_t rnd0, rnd1; /* 1 << (S - 1) */
} i8n_rq4;

static inline i8n_rq4 i8n_rq4_dup(const sqz_i8_rqv *r) {
    i8n_rq4 q;
    q.M = vdupq_n_s32(r->M);
    q.nS0 = q.nS1 = vdupq_n_s64(-(int64_t)r->S);
    q.rnd0 = q.rnd1 = vdupq_n_s64(r->rnd);
    return q;
}

/* Lane l takes rq[l0 + l] when l0 + l < n; the others a harmless M = 0,
 * S = 1. */
static inline i8n_rq4 i8n_rq4_load(const sqz_i8_rqv *rq, int64_t l0, int64_t n) {
    int32_t M[4] = {0, 0, 0, 0};
    int64_t s[4] = {-1, -1, -1, -1}, r[4] = {1, 1, 1, 1};
    for (int64_t l = 0; l < 4 && l0 + l < n; l++) {
        M[l] = rq[l0 + l].M;
        s[l] = -(int64_t)rq[l0 + l].S;
        r[l] = rq[l0 + l].rnd;
    }
    i8n_rq4 q;
    q.M = vld1q_s32(M);
    q.nS0 = vld1q_s64(s);
    q.nS1 = vld1q_s64(s + 2);
    q.rnd0 = vld1q_s64(r);
    q.rnd1 = vld1q_s64(r + 2);
    return q;
}

/* clamp(zp + ((acc * M + rnd) >> S), lo, hi) on 4 lanes. The saturating
 * narrow and add keep any out-of-int32 value on its side of [lo, hi]. */
static inline int32x4_t i8n_rq(int32x4_t acc, const i8n_rq4 *q, int32x4_t zp, int32x4_t lo,
                               int32x4_t hi) {
    int64x2_t a = vmull_s32(vget_low_s32(acc), vget_low_s32(q->M));
    int64x2_t b = vmull_high_s32(acc, q->M);
    a = vshlq_s64(vaddq_s64(a, q->rnd0), q->nS0);
    b = vshlq_s64(vaddq_s64(b, q->rnd1), q->nS1);
    int32x4_t v = vcombine_s32(vqmovn_s64(a), vqmovn_s64(b));
    v = vqaddq_s32(v, zp);
    return vminq_s32(vmaxq_s32(v, lo), hi);
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
