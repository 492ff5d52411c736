/* int8_neon.c - aarch64 NEON int8 microkernels on smlal (int16 x int16
 * widening multiply-accumulate into int32: exact), for CPUs without the
 * dot-product extension, and the NEON depthwise plane kernel (used with and
 * without dotprod). Layouts (q = 1, int16 elements):
 *   conv: activations [K][T] int16, weights [K][MR] int16 per block;
 *   gemm: weights [K][NB] int16 per block, activation rows int16.
 * acc = sum x w + off, off = bias - zp_x * wsum (int8_simd.h); padded taps
 * hold zp_x. Requantization: int8.h, via int8_neon.h. */
#include <arm_neon.h>
#include <string.h>

#include "neon/int8_neon.h"

#define MR 4 /* conv output channels per block */
#define NB 8 /* gemm output channels per block (two int32x4) */

/* ------------------------------------------------------------- conv */

/* acc[r][0..3] (16 pixels) += x (2 x int16x8) * w[r]; lane index constant. */
#define SMLAL_ROW(r)                                                                               \
    do {                                                                                           \
        acc[r][0] = vmlal_lane_s16(acc[r][0], vget_low_s16(x0), w, r);                             \
        acc[r][1] = vmlal_high_lane_s16(acc[r][1], x0, w, r);                                      \
        acc[r][2] = vmlal_lane_s16(acc[r][2], vget_low_s16(x1), w, r);                             \
        acc[r][3] = vmlal_high_lane_s16(acc[r][3], x1, w, r);                                      \
    } while (0)

static void conv_neon(const void *xpv, int64_t T, int64_t kq, const int8_t *wpv, int mr,
                      int64_t npx, int8_t *y, int64_t ys, const sqz_i8_epi *e) {
    const int16_t *xp = xpv;
    const int16_t *wp = (const int16_t *)(const void *)wpv;
    const int32x4_t zp = vdupq_n_s32(e->zp), lo = vdupq_n_s32(e->lo), hi = vdupq_n_s32(e->hi);
    for (int64_t j = 0; j < npx; j += 16) {
        int32x4_t acc[MR][4];
        for (int r = 0; r < MR; r++)
            for (int v = 0; v < 4; v++) acc[r][v] = vdupq_n_s32(0);
        const int16_t *xk = xp + j;
        const int16_t *wk = wp;
        for (int64_t k = 0; k < kq; k++, xk += T, wk += MR) {
            int16x8_t x0 = vld1q_s16(xk), x1 = vld1q_s16(xk + 8);
            int16x4_t w = vld1_s16(wk);
            SMLAL_ROW(0);
            SMLAL_ROW(1);
            SMLAL_ROW(2);
            SMLAL_ROW(3);
        }
        for (int r = 0; r < mr; r++) {
            i8n_rq4 q = i8n_rq4_dup(&e->rq[r]);
            int32x4_t o = vdupq_n_s32(e->off[r]), v[4];
            for (int i = 0; i < 4; i++) v[i] = i8n_rq(vaddq_s32(acc[r][i], o), &q, zp, lo, hi);
            i8n_store16(y + r * ys + j, v, npx - j);
        }
    }
}

/* rows[k][0..T) int8 -> [k][T] int16 (sign-extended). */
static void interleave_neon(const int8_t *const *rows, int64_t Kp, int64_t T, void *xpv) {
    int16_t *xp = xpv;
    for (int64_t k = 0; k < Kp; k++) {
        const int8_t *r = rows[k];
        int16_t *d = xp + k * T;
        for (int64_t j = 0; j < T; j += 16) {
            int8x16_t b = vld1q_s8(r + j);
            vst1q_s16(d + j, vmovl_s8(vget_low_s8(b)));
            vst1q_s16(d + j + 8, vmovl_high_s8(b));
        }
    }
}

/* ------------------------------------------------------------- gemm */

static void gemm_neon(const void *av, int nrows, int64_t Kp, const int8_t *wpv, int64_t n0,
                      int64_t nn, int8_t *y, int64_t N, const sqz_i8_epi *e) {
    const int16_t *a = av;
    const int16_t *wp = (const int16_t *)(const void *)wpv;
    int32x4_t c[4][2];
    for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = vdupq_n_s32(0);
    for (int64_t k = 0; k < Kp; k++) {
        int16x8_t w = vld1q_s16(wp + k * NB);
        for (int r = 0; r < 4; r++) { /* padded rows: always 4 readable */
            int16_t ar = a[r * Kp + k];
            c[r][0] = vmlal_n_s16(c[r][0], vget_low_s16(w), ar);
            c[r][1] = vmlal_high_n_s16(c[r][1], w, ar);
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

static void convert_neon(const int8_t *x, int64_t K, int64_t Kp, int32_t zp_x, void *av) {
    int16_t *a = av;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) vst1q_s16(a + k, vmovl_s8(vld1_s8(x + k)));
    for (; k < K; k++) a[k] = x[k];
    for (; k < Kp; k++) a[k] = (int16_t)zp_x;
}

/* ------------------------------------------------------------ depthwise */

/* Sign-extended x[0], x[s], ..., x[7 s] for s = 1 or 2 (reads 8 s bytes). */
static inline int16x8_t load8_s(const int8_t *x, int64_t s) {
    return vmovl_s8(s == 1 ? vld1_s8(x) : vld2_s8(x).val[0]);
}

static void dw_plane_neon(const int8_t *xpad, int64_t PW, const int8_t *w, int64_t kh, int64_t kw,
                          int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t OH, int64_t OW,
                          int32_t off, sqz_i8_rqv rq, int32_t zp, int32_t lo, int32_t hi, int8_t *y,
                          int32_t *accbuf) {
    (void)accbuf;
    const int32x4_t o = vdupq_n_s32(off), vz = vdupq_n_s32(zp), vl = vdupq_n_s32(lo),
                    vh = vdupq_n_s32(hi);
    i8n_rq4 q = i8n_rq4_dup(&rq);
    for (int64_t oh = 0; oh < OH; oh++) {
        const int8_t *xr = xpad + oh * sh * PW;
        for (int64_t ow = 0; ow < OW; ow += 16) {
            int32x4_t a[4] = {o, o, o, o};
            for (int64_t i = 0; i < kh; i++) {
                const int8_t *xi = xr + i * dh * PW + ow * sw;
                for (int64_t j = 0; j < kw; j++) {
                    int16_t wv = w[i * kw + j];
                    const int8_t *xj = xi + j * dw;
                    int16x8_t x0 = load8_s(xj, sw), x1 = load8_s(xj + 8 * sw, sw);
                    a[0] = vmlal_n_s16(a[0], vget_low_s16(x0), wv);
                    a[1] = vmlal_high_n_s16(a[1], x0, wv);
                    a[2] = vmlal_n_s16(a[2], vget_low_s16(x1), wv);
                    a[3] = vmlal_high_n_s16(a[3], x1, wv);
                }
            }
            for (int i = 0; i < 4; i++) a[i] = i8n_rq(a[i], &q, vz, vl, vh);
            i8n_store16(y + oh * OW + ow, a, OW - ow);
        }
    }
}

const sqz_i8_dw_plane sqz_i8_dw_plane_neon = dw_plane_neon;

const sqz_i8_isa sqz_i8_isa_neon = {
    SQZ_I8_ISA_NEON, 1, MR, NB, 2, 0, conv_neon, interleave_neon, gemm_neon, convert_neon,
    dw_plane_neon,
};
