/* int8_neon_dot.c - aarch64 int8 microkernels on sdot (Armv8.2 dot product:
 * four int8 x int8 products summed into each int32 lane, exact), chosen when
 * HWCAP reports asimddp. Signed activations, so no +128 bias. Layouts
 * (q = 4, int8 elements):
 *   conv: activations [K/4][T][4], weights [K/4][MR][4] per block;
 *   gemm: weights [K/4][NB][4] per block, activation rows int8.
 * acc = sum x w + off, off = bias - zp_x * wsum (int8_simd.h); padded taps
 * and k beyond K hold zp_x against zero weights. */
#include <arm_neon.h>
#include <string.h>

#include "neon/int8_neon.h"

#define MR 4 /* conv output channels per block (one int8x16 of quads) */
#define NB 8 /* gemm output channels per block */

/* ------------------------------------------------------------- conv */

#define SDOT_ROW(r)                                                                                \
    do {                                                                                           \
        acc[r][0] = vdotq_laneq_s32(acc[r][0], x0, w, r);                                          \
        acc[r][1] = vdotq_laneq_s32(acc[r][1], x1, w, r);                                          \
        acc[r][2] = vdotq_laneq_s32(acc[r][2], x2, w, r);                                          \
        acc[r][3] = vdotq_laneq_s32(acc[r][3], x3, w, r);                                          \
    } while (0)

static void conv_dot(const void *xpv, int64_t T, int64_t kq, const int8_t *wp, int mr, int64_t npx,
                     int8_t *y, int64_t ys, const sqz_i8_epi *e) {
    const int8_t *xp = xpv;
    const int32x4_t zp = vdupq_n_s32(e->zp), lo = vdupq_n_s32(e->lo), hi = vdupq_n_s32(e->hi);
    for (int64_t j = 0; j < npx; j += 16) {
        int32x4_t acc[MR][4];
        for (int r = 0; r < MR; r++)
            for (int v = 0; v < 4; v++) acc[r][v] = vdupq_n_s32(0);
        const int8_t *xk = xp + j * 4;
        const int8_t *wk = wp;
        for (int64_t k = 0; k < kq; k++, xk += T * 4, wk += MR * 4) {
            int8x16_t x0 = vld1q_s8(xk), x1 = vld1q_s8(xk + 16), x2 = vld1q_s8(xk + 32),
                      x3 = vld1q_s8(xk + 48);
            int8x16_t w = vld1q_s8(wk);
            SDOT_ROW(0);
            SDOT_ROW(1);
            SDOT_ROW(2);
            SDOT_ROW(3);
        }
        for (int r = 0; r < mr; r++) {
            i8n_rq4 q = i8n_rq4_dup(&e->rq[r]);
            int32x4_t o = vdupq_n_s32(e->off[r]), v[4];
            for (int i = 0; i < 4; i++) v[i] = i8n_rq(vaddq_s32(acc[r][i], o), &q, zp, lo, hi);
            i8n_store16(y + r * ys + j, v, npx - j);
        }
    }
}

/* rows[k][0..T) int8 -> [k/4][T][4]: 4 rows interleaved bytewise. */
static void interleave_dot(const int8_t *const *rows, int64_t Kp, int64_t T, void *xpv) {
    int8_t *xp = xpv;
    for (int64_t k = 0; k < Kp; k += 4) {
        const int8_t *r0 = rows[k], *r1 = rows[k + 1], *r2 = rows[k + 2], *r3 = rows[k + 3];
        int8_t *d = xp + k * T;
        for (int64_t j = 0; j < T; j += 16) {
            int8x16x2_t a = vzipq_s8(vld1q_s8(r0 + j), vld1q_s8(r1 + j));
            int8x16x2_t b = vzipq_s8(vld1q_s8(r2 + j), vld1q_s8(r3 + j));
            int16x8x2_t c =
                vzipq_s16(vreinterpretq_s16_s8(a.val[0]), vreinterpretq_s16_s8(b.val[0]));
            int16x8x2_t f =
                vzipq_s16(vreinterpretq_s16_s8(a.val[1]), vreinterpretq_s16_s8(b.val[1]));
            int8_t *o = d + j * 4;
            vst1q_s8(o, vreinterpretq_s8_s16(c.val[0]));
            vst1q_s8(o + 16, vreinterpretq_s8_s16(c.val[1]));
            vst1q_s8(o + 32, vreinterpretq_s8_s16(f.val[0]));
            vst1q_s8(o + 48, vreinterpretq_s8_s16(f.val[1]));
        }
    }
}

/* ------------------------------------------------------------- gemm */

static inline int8x16_t bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

static void gemm_dot(const void *av, int nrows, int64_t Kp, const int8_t *wp, int64_t n0,
                     int64_t nn, int8_t *y, int64_t N, const sqz_i8_epi *e) {
    const int8_t *a = av;
    int32x4_t c[4][2];
    for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = vdupq_n_s32(0);
    for (int64_t k = 0; k < Kp; k += 4) {
        const int8_t *wk = wp + k * NB;
        int8x16_t w0 = vld1q_s8(wk), w1 = vld1q_s8(wk + 16);
        for (int r = 0; r < 4; r++) { /* padded rows: always 4 readable */
            int8x16_t ar = bcast4(a + r * Kp + k);
            c[r][0] = vdotq_s32(c[r][0], w0, ar);
            c[r][1] = vdotq_s32(c[r][1], w1, ar);
        }
    }
    const int32x4_t zp = vdupq_n_s32(e->zp), lo = vdupq_n_s32(e->lo), hi = vdupq_n_s32(e->hi);
    i8n_rq4 q0 = i8n_rq4_load(e->rq + n0, 0, nn), q1 = i8n_rq4_load(e->rq + n0, 4, nn);
    int32_t of[NB] = {0};
    for (int64_t l = 0; l < nn; l++) of[l] = e->off[n0 + l];
    int32x4_t o0 = vld1q_s32(of), o1 = vld1q_s32(of + 4);
    for (int r = 0; r < nrows; r++)
        i8n_store8(y + r * N + n0, i8n_rq(vaddq_s32(c[r][0], o0), &q0, zp, lo, hi),
                   i8n_rq(vaddq_s32(c[r][1], o1), &q1, zp, lo, hi), nn);
}

static void convert_dot(const int8_t *x, int64_t K, int64_t Kp, int32_t zp_x, void *av) {
    int8_t *a = av;
    memcpy(a, x, (size_t)K);
    memset(a + K, zp_x, (size_t)(Kp - K));
}

const sqz_i8_isa sqz_i8_isa_dot = {
    SQZ_I8_ISA_DOT, 4, MR, NB, 1, 0, conv_dot, interleave_dot, gemm_dot, convert_dot, NULL,
};
