/* conv1x1_avx512.c - small-K 1x1 conv, AVX-512F (see conv1x1.h): 16 pixels
 * a step, their K input channels in K registers, 8 output channels at a
 * time (8 independent FMA chains, weights broadcast from the packed block). */
#include <immintrin.h>

#include "conv1x1.h"
#include "sqz/ops.h"

#define C1_INLINE static inline __attribute__((always_inline))

/* acc += broadcast(*wp) * x with the weight as the FMA's broadcast memory
 * operand (compilers otherwise broadcast each weight into a register first,
 * and with the K inputs and 8 sums already in registers they spilled and
 * chained the sums one after another: 1.7x slower than the GEMM) */
#define C1_FMA(acc, x, wp)                                                                         \
    __asm__("vfmadd231ps %[w]%{1to16%}, %[xv], %[a]" : [a] "+v"(acc) : [xv] "v"(x), [w] "m"(*(wp)))

#ifndef C1_PB
#define C1_PB 4
#endif

/* LEAKY_RELU / HARD_SWISH (GEN); the others are max(min(v, hi), lo) */
C1_INLINE __m512 c1_act(__m512 v, int act, __m512 lo, __m512 hi, __m512 al, const int GEN) {
    if (!GEN) return _mm512_max_ps(_mm512_min_ps(v, hi), lo);
    if (act == SQZ_ACT_LEAKY_RELU) {
        __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        return _mm512_mask_mul_ps(v, neg, v, al);
    }
    if (act == SQZ_ACT_HARD_SWISH) {
        __m512 t = _mm512_fmadd_ps(v, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f));
        t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(1.0f));
        return _mm512_mul_ps(v, t);
    }
    return v;
}

/* 8 output channels (block w, mm of them stored) of the 16 pixels at p
 * (lanes pm) from their K inputs X */
C1_INLINE void c1_block(const __m512 *X, const float *w, float *yg, int64_t out_ld, int64_t mm,
                        __mmask16 pm, int act, __m512 lo, __m512 hi, __m512 al, const int K,
                        const int GEN) {
    /* the block's address opaque here: the FMAs' memory operands are then
     * offsets from one register (hoisted out of the pixel loop, the 8K
     * addresses took a register each and spilled) */
    const float *wr = w;
    __asm__("" : "+r"(wr));
    __m512 acc[SQZ_C1X1_MB];
#pragma GCC unroll 8
    for (int j = 0; j < SQZ_C1X1_MB; j++)
        acc[j] = _mm512_set1_ps(wr[K * SQZ_C1X1_MB + j]); /* the bias */
#pragma GCC unroll 16
    for (int k = 0; k < K; k++) {
#pragma GCC unroll 8
        for (int j = 0; j < SQZ_C1X1_MB; j++) C1_FMA(acc[j], X[k], wr + k * SQZ_C1X1_MB + j);
    }
    if (mm >= SQZ_C1X1_MB) {
#pragma GCC unroll 8
        for (int j = 0; j < SQZ_C1X1_MB; j++)
            _mm512_mask_storeu_ps(yg + j * out_ld, pm, c1_act(acc[j], act, lo, hi, al, GEN));
    } else {
#pragma GCC unroll 8
        for (int j = 0; j < SQZ_C1X1_MB; j++)
            if (j < mm)
                _mm512_mask_storeu_ps(yg + j * out_ld, pm, c1_act(acc[j], act, lo, hi, al, GEN));
    }
}

/* pixels [p0, p1), K input channels. STREAM 0: each 16 pixels' inputs
 * loaded once for all output channels (the fewest loads: ~80% of the FMA
 * peak while the output stays in L2); 1: blocks of C1_PB vectors, each
 * 8-channel block over all of them (inputs reloaded from L1) so every
 * output plane takes C1_PB consecutive lines at a time: outputs beyond L2
 * (16 -> 48 / 96 @112x112) were store-bound with one line per plane a step
 * (96 planes written at once) */
/* the fused activation as a clamp [lo, hi] (+ alpha for the others) */
static inline void c1_act_bounds(const sqz_c1x1 *a, __m512 *lo, __m512 *hi, __m512 *al) {
    const float inf = __builtin_inff();
    *lo = _mm512_set1_ps(a->act == SQZ_ACT_RELU ? 0.0f : a->act == SQZ_ACT_CLIP ? a->alpha : -inf);
    *hi = _mm512_set1_ps(a->act == SQZ_ACT_CLIP ? a->beta : inf);
    *al = _mm512_set1_ps(a->alpha);
}

C1_INLINE void c1_run(const sqz_c1x1 *a, const float *x, float *y, int64_t p0, int64_t p1,
                      const int K, const int GEN, const int STREAM) {
    const int64_t M = a->M, in_ld = a->in_ld, out_ld = a->out_ld;
    const int64_t nb = (M + SQZ_C1X1_MB - 1) / SQZ_C1X1_MB;
    const int act = a->act;
    __m512 lo, hi, al;
    c1_act_bounds(a, &lo, &hi, &al);
    const int64_t PB = STREAM ? 16 * C1_PB : 16;
    for (int64_t pb = p0; pb < p1; pb += PB) {
        const int64_t pe = p1 - pb < PB ? p1 : pb + PB;
        if (!STREAM) {
            const __mmask16 pm =
                pe - pb >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (pe - pb)) - 1u);
            __m512 X[SQZ_C1X1_MAX_K];
#pragma GCC unroll 16
            for (int k = 0; k < K; k++) X[k] = _mm512_maskz_loadu_ps(pm, x + k * in_ld + pb);
            for (int64_t g = 0; g < nb; g++)
                c1_block(X, a->w + g * (K + 1) * SQZ_C1X1_MB, y + g * SQZ_C1X1_MB * out_ld + pb,
                         out_ld, M - g * SQZ_C1X1_MB, pm, act, lo, hi, al, K, GEN);
            continue;
        }
        for (int64_t g = 0; g < nb; g++)
            for (int64_t p = pb; p < pe; p += 16) {
                const __mmask16 pm =
                    pe - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (pe - p)) - 1u);
                __m512 X[SQZ_C1X1_MAX_K];
#pragma GCC unroll 16
                for (int k = 0; k < K; k++) X[k] = _mm512_maskz_loadu_ps(pm, x + k * in_ld + p);
                c1_block(X, a->w + g * (K + 1) * SQZ_C1X1_MB, y + g * SQZ_C1X1_MB * out_ld + p,
                         out_ld, M - g * SQZ_C1X1_MB, pm, act, lo, hi, al, K, GEN);
            }
    }
}

/* Small M (conv1x1.h: K > SQZ_C1X1_MAX_K, M <= SQZ_C1X1_MAX_M): the M
 * output channels of 16 pixels in NB * 8 accumulators, one input vector a k
 * step for all of them (NB * 8 FMAs, weights broadcast from the packed
 * blocks), k ascending from the bias like the twin. The inputs are read once
 * (one line of each input plane a step), the outputs written once. */
C1_INLINE void c1m_px(const sqz_c1x1 *a, const float *x, float *y, int64_t p, __mmask16 pm,
                      __m512 lo, __m512 hi, __m512 al, const int NB, const int GEN) {
    const int64_t K = a->K, in_ld = a->in_ld;
    const float *w0 = a->w, *w1 = a->w + (K + 1) * SQZ_C1X1_MB;
    __asm__("" : "+r"(w0), "+r"(w1)); /* see c1_block */
    __m512 acc[2 * SQZ_C1X1_MB];
#pragma GCC unroll 8
    for (int j = 0; j < SQZ_C1X1_MB; j++) {
        acc[j] = _mm512_set1_ps(w0[K * SQZ_C1X1_MB + j]);
        if (NB == 2) acc[SQZ_C1X1_MB + j] = _mm512_set1_ps(w1[K * SQZ_C1X1_MB + j]);
    }
    const float *xp = x + p;
#pragma GCC unroll 2
    for (int64_t k = 0; k < K; k++) {
        const __m512 xv = _mm512_maskz_loadu_ps(pm, xp);
#pragma GCC unroll 8
        for (int j = 0; j < SQZ_C1X1_MB; j++) {
            C1_FMA(acc[j], xv, w0 + j);
            if (NB == 2) C1_FMA(acc[SQZ_C1X1_MB + j], xv, w1 + j);
        }
        xp += in_ld;
        w0 += SQZ_C1X1_MB;
        w1 += SQZ_C1X1_MB;
    }
    const int64_t M = a->M;
    float *yp = y + p;
#pragma GCC unroll 16
    for (int j = 0; j < NB * SQZ_C1X1_MB; j++)
        if (j < M)
            _mm512_mask_storeu_ps(yp + j * a->out_ld, pm, c1_act(acc[j], a->act, lo, hi, al, GEN));
}

C1_INLINE void c1m_run(const sqz_c1x1 *a, const float *x, float *y, int64_t p0, int64_t p1,
                       const int NB, const int GEN) {
    __m512 lo, hi, al;
    c1_act_bounds(a, &lo, &hi, &al);
    int64_t p = p0;
    for (; p + 16 <= p1; p += 16) c1m_px(a, x, y, p, (__mmask16)0xFFFF, lo, hi, al, NB, GEN);
    if (p < p1) c1m_px(a, x, y, p, (__mmask16)((1u << (p1 - p)) - 1u), lo, hi, al, NB, GEN);
}

static void c1m(const sqz_c1x1 *a, const float *x, float *y, int64_t p0, int64_t p1) {
    const int gen = a->act == SQZ_ACT_LEAKY_RELU || a->act == SQZ_ACT_HARD_SWISH;
    if (a->M > SQZ_C1X1_MB)
        gen ? c1m_run(a, x, y, p0, p1, 2, 1) : c1m_run(a, x, y, p0, p1, 2, 0);
    else
        gen ? c1m_run(a, x, y, p0, p1, 1, 1) : c1m_run(a, x, y, p0, p1, 1, 0);
}

#define C1_K(KK)                                                                                   \
    case KK:                                                                                       \
        if (gen)                                                                                   \
            c1_run(a, x, y, p0, p1, KK, 1, 0);                                                     \
        else if (a->stream)                                                                        \
            c1_run(a, x, y, p0, p1, KK, 0, 1);                                                     \
        else                                                                                       \
            c1_run(a, x, y, p0, p1, KK, 0, 0);                                                     \
        return;

void sqz_c1x1_avx512(const sqz_c1x1 *a, const float *x, float *y, int64_t p0, int64_t p1) {
    const int gen = a->act == SQZ_ACT_LEAKY_RELU || a->act == SQZ_ACT_HARD_SWISH;
    switch (a->K) {
        C1_K(1)
        C1_K(2)
        C1_K(3)
        C1_K(4)
        C1_K(5)
        C1_K(6)
        C1_K(7)
        C1_K(8)
        C1_K(9)
        C1_K(10)
        C1_K(11)
        C1_K(12)
        C1_K(13)
        C1_K(14)
        C1_K(15)
        C1_K(16)
    default:
        if (a->M <= SQZ_C1X1_MAX_M)
            c1m(a, x, y, p0, p1);
        else
            sqz_c1x1_scalar(a, x, y, p0, p1);
        return;
    }
}
