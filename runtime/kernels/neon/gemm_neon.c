/* gemm_neon.c - 8 x 12 fp32 GEMM microkernel (aarch64 NEON), see gemm.h.
 *
 * 24 accumulators (8 rows x 3 vectors of 4 columns) of the 32 vector
 * registers; per k step two A loads (8 rows) and three B loads feed 24
 * by-lane FMAs (fmla v.4s, v.4s, v.s[i]), so no broadcast instructions.
 * Edge tiles (m < 8 or n < 12) still compute the whole tile - padded A rows
 * and B columns are zero - and go through a small buffer for the store, so
 * one loop body serves every tile (code size matters on Arm targets). */
#include <arm_neon.h>
#include <string.h>

#include "gemm.h"

#define MR 8
#define NR 12
#define NV 3 /* vectors per row */

#define NEON_INLINE static inline __attribute__((always_inline))

NEON_INLINE float32x4_t act4(float32x4_t v, const sqz_gemm_epi *e) {
    const float32x4_t zero = vdupq_n_f32(0.0f), one = vdupq_n_f32(1.0f);
    switch (e->act) {
    case SQZ_ACT_RELU:
        return vmaxq_f32(v, zero);
    case SQZ_ACT_CLIP:
        return vminq_f32(vmaxq_f32(v, vdupq_n_f32(e->alpha)), vdupq_n_f32(e->beta));
    case SQZ_ACT_LEAKY_RELU:
        return vbslq_f32(vcltq_f32(v, zero), vmulq_f32(v, vdupq_n_f32(e->alpha)), v);
    case SQZ_ACT_HARD_SWISH: {
        float32x4_t t = vaddq_f32(vdivq_f32(v, vdupq_n_f32(6.0f)), vdupq_n_f32(0.5f));
        return vmulq_f32(v, vminq_f32(vmaxq_f32(t, zero), one));
    }
    case SQZ_ACT_HARD_SIGMOID: {
        float32x4_t t = vfmaq_f32(vdupq_n_f32(e->beta), v, vdupq_n_f32(e->alpha));
        return vminq_f32(vmaxq_f32(t, zero), one);
    }
    default:
        return v;
    }
}

/* rows [0, rows) of the tile into d (row stride ld): bias or accumulate,
 * then the activation */
NEON_INLINE void store_tile(float32x4_t acc[MR][NV], float *d, size_t ld, size_t rows,
                            const sqz_gemm_epi *e) {
    for (size_t r = 0; r < rows; r++) {
        float *dr = d + r * ld;
        float32x4_t v[NV];
        if (e->accumulate) {
            for (int j = 0; j < NV; j++) v[j] = vaddq_f32(acc[r][j], vld1q_f32(dr + 4 * j));
        } else {
            float32x4_t bb = vdupq_n_f32(e->bias ? e->bias[r] : 0.0f);
            for (int j = 0; j < NV; j++) v[j] = vaddq_f32(bb, acc[r][j]);
        }
        if (e->act != SQZ_ACT_NONE)
            for (int j = 0; j < NV; j++) v[j] = act4(v[j], e);
        for (int j = 0; j < NV; j++) vst1q_f32(dr + 4 * j, v[j]);
    }
}

static void ukernel_neon(size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t m,
                         size_t n, const sqz_gemm_epi *e) {
    float32x4_t acc[MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NV; j++) acc[r][j] = vdupq_n_f32(0.0f);
    for (size_t k = 0; k < kc; k++) {
        const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
#define ROW(r, av, lane)                                                                           \
    acc[r][0] = vfmaq_laneq_f32(acc[r][0], b0, av, lane);                                          \
    acc[r][1] = vfmaq_laneq_f32(acc[r][1], b1, av, lane);                                          \
    acc[r][2] = vfmaq_laneq_f32(acc[r][2], b2, av, lane);
        ROW(0, a0, 0)
        ROW(1, a0, 1)
        ROW(2, a0, 2)
        ROW(3, a0, 3)
        ROW(4, a1, 0)
        ROW(5, a1, 1)
        ROW(6, a1, 2)
        ROW(7, a1, 3)
#undef ROW
        a += MR;
        b += NR;
    }
    if (m == MR && n == NR) {
        store_tile(acc, c, ldc, MR, e);
        return;
    }
    /* edge tile: through a buffer, only the m x n part of c is touched */
    float buf[MR * NR];
    if (e->accumulate) {
        memset(buf, 0, sizeof(buf));
        for (size_t r = 0; r < m; r++) memcpy(buf + r * NR, c + r * ldc, n * sizeof(float));
    }
    store_tile(acc, buf, NR, m, e);
    for (size_t r = 0; r < m; r++) memcpy(c + r * ldc, buf + r * NR, n * sizeof(float));
}

/* ---- matrix-vector panel (gemm.h: gemv): rows (1 or 2) x nv vectors of 4
 * columns; four k steps per pass from one load of x[k..k+3] (by-lane fmla,
 * no broadcasts), on two accumulator sets */
NEON_INLINE void gv_tile(size_t K, const float *x, size_t ldx, const float *w, size_t n,
                         const float *bias, float *y, size_t ldy, const sqz_gemm_epi *e,
                         const int rows, const int nv) {
    const size_t pw = 4 * (size_t)nv;
    const float *x1 = x + (rows == 2 ? ldx : 0);
    float32x4_t acc[2][2][4];
    for (int s = 0; s < 2; s++)
        for (int r = 0; r < 2; r++)
            for (int v = 0; v < 4; v++) acc[s][r][v] = vdupq_n_f32(0.0f);
    size_t k = 0;
#define GV_STEP(S, LANE)                                                                           \
    for (int v = 0; v < 4; v++) {                                                                  \
        if (v >= nv) break;                                                                        \
        float32x4_t wv = vld1q_f32(w + (size_t)(LANE)*pw + 4 * (size_t)v);                         \
        acc[S][0][v] = vfmaq_laneq_f32(acc[S][0][v], wv, a0, LANE);                                \
        if (rows == 2) acc[S][1][v] = vfmaq_laneq_f32(acc[S][1][v], wv, a1, LANE);                 \
    }
    for (; k + 4 <= K; k += 4, w += 4 * pw) {
        const float32x4_t a0 = vld1q_f32(x + k), a1 = vld1q_f32(x1 + k);
        GV_STEP(0, 0)
        GV_STEP(1, 1)
        GV_STEP(0, 2)
        GV_STEP(1, 3)
    }
#undef GV_STEP
    for (; k < K; k++, w += pw) {
        const float a0 = x[k], a1 = x1[k];
        for (int v = 0; v < 4; v++) {
            if (v >= nv) break;
            float32x4_t wv = vld1q_f32(w + 4 * (size_t)v);
            acc[0][0][v] = vfmaq_n_f32(acc[0][0][v], wv, a0);
            if (rows == 2) acc[0][1][v] = vfmaq_n_f32(acc[0][1][v], wv, a1);
        }
    }
    for (int v = 0; v < 4; v++) {
        if (v >= nv) break;
        size_t lo = 4 * (size_t)v, cnt = n - lo >= 4 ? 4 : n - lo;
        float bb[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (bias) memcpy(bb, bias + lo, cnt * sizeof(float));
        for (int r = 0; r < 2; r++) {
            if (r >= rows) break;
            float32x4_t t = vaddq_f32(vaddq_f32(acc[0][r][v], acc[1][r][v]), vld1q_f32(bb));
            if (e->act != SQZ_ACT_NONE) t = act4(t, e);
            float *yr = y + (size_t)r * ldy + lo;
            if (cnt == 4) {
                vst1q_f32(yr, t);
            } else {
                float o[4];
                vst1q_f32(o, t);
                memcpy(yr, o, cnt * sizeof(float));
            }
        }
    }
}

static void gemv_neon(size_t K, const float *x, size_t ldx, size_t m, const float *w, size_t nv,
                      size_t n, const float *bias, float *y, size_t ldy, const sqz_gemm_epi *e) {
    const int rows = m == 2 ? 2 : 1;
    switch (nv) {
    case 1:
        if (rows == 2)
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 2, 1);
        else
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 1, 1);
        return;
    case 2:
        if (rows == 2)
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 2, 2);
        else
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 1, 2);
        return;
    case 3:
        if (rows == 2)
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 2, 3);
        else
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 1, 3);
        return;
    default:
        if (rows == 2)
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 2, 4);
        else
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 1, 4);
        return;
    }
}

const sqz_gemm_kernel sqz_gemm_neon = {"neon", MR, NR, ukernel_neon, NULL,      0,
                                       NULL,   0,  0,  NULL,         gemv_neon, 4};
