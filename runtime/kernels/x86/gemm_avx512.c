/* gemm_avx512.c - 8 x 32 fp32 GEMM microkernel (AVX-512F), see gemm.h.
 *
 * 16 zmm accumulators (8 rows x 2 vectors of 16 columns); per k step two
 * B vector loads and eight A broadcasts feeding 16 FMAs. Variants for fewer
 * rows (m < 8) and one column vector (n <= 16) are instantiated from one
 * always-inline body so edge tiles do not pay for the full tile. */
#include <immintrin.h>
#include <stdint.h>

#include "gemm.h"

#ifndef SQZ_A512_MR
#define SQZ_A512_MR 8
#endif
#ifndef SQZ_A512_NV
#define SQZ_A512_NV 2
#endif
#define MR SQZ_A512_MR
#define NV SQZ_A512_NV
#define NR (16 * NV)
/* one- and two-row tiles stream B: prefetch it this many floats ahead */
#ifndef GEMV_PF
#define GEMV_PF 1024
#endif
#ifndef A_PF
#define A_PF 512
#endif

#if defined(__GNUC__)
#define SQZ_INLINE static inline __attribute__((always_inline))
#else
#define SQZ_INLINE static inline
#endif
/* the accumulator array must live in registers: every loop over its rows /
 * vectors is unrolled completely (gcc's size limits otherwise keep it on the
 * stack in the bigger variants) */
#if defined(__clang__)
#define SQZ_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define SQZ_UNROLL _Pragma("GCC unroll 16")
#else
#define SQZ_UNROLL
#endif

SQZ_INLINE __m512 act512(__m512 v, const sqz_gemm_epi *e) {
    switch (e->act) {
    case SQZ_ACT_RELU:
        return _mm512_max_ps(v, _mm512_setzero_ps());
    case SQZ_ACT_CLIP:
        return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(e->alpha)), _mm512_set1_ps(e->beta));
    case SQZ_ACT_LEAKY_RELU: {
        __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        return _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(e->alpha));
    }
    case SQZ_ACT_HARD_SWISH: {
        __m512 t = _mm512_add_ps(_mm512_div_ps(v, _mm512_set1_ps(6.0f)), _mm512_set1_ps(0.5f));
        t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(1.0f));
        return _mm512_mul_ps(v, t);
    }
    case SQZ_ACT_HARD_SIGMOID: {
        __m512 t =
            _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(e->alpha)), _mm512_set1_ps(e->beta));
        return _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(1.0f));
    }
    default:
        return v;
    }
}

/* rows x (16 * nv) tile; ind: B rows at b + boff[k] (masked loads, lanes
 * >= n not read), else the packed panel; pf: prefetch cold A. */
SQZ_INLINE void tile(size_t kc, const float *a, const float *b, const int64_t *boff, float *c,
                     size_t ldc, size_t n, const sqz_gemm_epi *e, const int rows, const int nv,
                     const int pf, const int ind) {
    __m512 acc[MR][NV];
    SQZ_UNROLL for (int r = 0; r < MR; r++) SQZ_UNROLL for (int v = 0; v < NV; v++) acc[r][v] =
        _mm512_setzero_ps();
    __mmask16 mk[NV];
    SQZ_UNROLL for (int v = 0; v < NV; v++) {
        size_t lo = 16 * (size_t)v;
        mk[v] = (__mmask16)(n >= lo + 16 ? 0xffff : (n <= lo ? 0 : ((1u << (n - lo)) - 1u)));
    }
    /* column map: kept lanes km[v], stored from c + d[v] (see gemm.h) */
    __mmask16 km[NV] = {0};
    int32_t d[NV] = {0};
    const float *cpf = c;
    if (e->cdst) {
        SQZ_UNROLL for (int v = 0; v < NV; v++) {
            km[v] = 0;
            d[v] = 0;
            if (v >= nv) continue;
            __m512i cd = _mm512_loadu_si512((const void *)(e->cdst + 16 * v));
            km[v] = _mm512_cmpge_epi32_mask(cd, _mm512_setzero_si512()) & mk[v];
            if (km[v]) d[v] = e->cdst[16 * v + __builtin_ctz(km[v])];
        }
        cpf = c + (km[0] ? d[0] : d[NV - 1]);
    }
    /* the C tile is read / written after kc steps: fetch it meanwhile */
    SQZ_UNROLL for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        for (int v = 0; v < nv; v++)
            _mm_prefetch((const char *)(cpf + (size_t)r * ldc + 16 * v), _MM_HINT_T0);
    }
    /* one or two rows (Gemm / MatMul with batch 1 or 2: a matrix-vector
     * product bound by streaming B): the few FMA chains would wait on their
     * own latency (4 cycles a step), so KS k steps run on KS accumulator
     * sets, summed at the end, and B is prefetched GEMV_PF floats ahead
     * (LeNet-300-100 784 -> 300: 15.0 -> 12.5 us CPU) */
    const int KS = (!ind && rows == 1) ? 4 : (!ind && rows == 2) ? 2 : 1;
    size_t k0 = 0;
    if (KS > 1) {
        __m512 ex[3][2][NV];
        SQZ_UNROLL for (int s = 0; s < 3; s++) SQZ_UNROLL for (int r = 0; r < 2; r++)
            SQZ_UNROLL for (int v = 0; v < NV; v++) ex[s][r][v] = _mm512_setzero_ps();
        for (; k0 + (size_t)KS <= kc; k0 += (size_t)KS) {
            SQZ_UNROLL for (int s = 0; s < KS; s++) {
                SQZ_UNROLL for (int r = 0; r < 2; r++) {
                    if (r >= rows) break;
                    __m512 ar = _mm512_set1_ps(a[s * MR + r]);
                    SQZ_UNROLL for (int v = 0; v < NV; v++) {
                        if (v >= nv) break;
                        if (r == 0)
                            _mm_prefetch((const char *)(b + GEMV_PF + s * NR + 16 * v),
                                         _MM_HINT_T0);
                        __m512 bv = _mm512_loadu_ps(b + s * NR + 16 * v);
                        if (s == 0)
                            acc[r][v] = _mm512_fmadd_ps(ar, bv, acc[r][v]);
                        else
                            ex[s - 1][r][v] = _mm512_fmadd_ps(ar, bv, ex[s - 1][r][v]);
                    }
                }
            }
            a += KS * MR;
            b += KS * NR;
        }
        SQZ_UNROLL for (int s = 1; s < KS; s++) SQZ_UNROLL for (int r = 0; r < 2; r++) {
            if (r >= rows) break;
            SQZ_UNROLL for (int v = 0; v < NV; v++) if (v < nv) acc[r][v] =
                _mm512_add_ps(acc[r][v], ex[s - 1][r][v]);
        }
    }
    for (size_t k = k0; k < kc; k++) {
        /* cold A (epi->prefetch_a): fetch A_PF floats ahead, a line per two k */
        if (pf && (k & 1)) _mm_prefetch((const char *)(a + A_PF), _MM_HINT_T0);
        __m512 bv[NV];
        const float *bk = ind ? b + boff[k] : b;
        SQZ_UNROLL for (int v = 0; v < NV; v++) {
            if (v >= nv)
                bv[v] = _mm512_setzero_ps();
            else if (ind)
                bv[v] = _mm512_maskz_loadu_ps(mk[v], bk + 16 * v);
            else
                bv[v] = _mm512_loadu_ps(bk + 16 * v);
        }
        SQZ_UNROLL for (int r = 0; r < MR; r++) {
            if (r >= rows) break;
            __m512 ar = _mm512_set1_ps(a[r]);
            SQZ_UNROLL for (int v = 0; v < NV; v++) if (v < nv) acc[r][v] =
                _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
        }
        a += MR;
        if (!ind) b += NR;
    }
    if (e->cdst) {
        /* the kept lanes (km) are consecutive from c + d[v]: compress them
         * in registers (the memory forms are slow). All loads of the tile
         * come before its stores: a row's two vectors share cache lines,
         * and a load behind a partial (masked) store to its line waits for
         * that store. */
        __mmask16 lo[NV];
        SQZ_UNROLL for (int v = 0; v < NV; v++) lo[v] =
            (__mmask16)((1u << __builtin_popcount(km[v])) - 1u);
        SQZ_UNROLL for (int r = 0; r < MR; r++) {
            if (r >= rows) break;
            const float *cr = c + (size_t)r * ldc;
            __m512 bb = _mm512_set1_ps((!e->accumulate && e->bias) ? e->bias[r] : 0.0f);
            SQZ_UNROLL for (int v = 0; v < NV; v++) {
                if (v >= nv) break;
                __m512 x = _mm512_maskz_compress_ps(km[v], acc[r][v]);
                acc[r][v] =
                    _mm512_add_ps(x, e->accumulate ? _mm512_maskz_loadu_ps(lo[v], cr + d[v]) : bb);
            }
        }
        SQZ_UNROLL for (int r = 0; r < MR; r++) {
            if (r >= rows) break;
            float *cr = c + (size_t)r * ldc;
            SQZ_UNROLL for (int v = 0; v < NV; v++) {
                if (v >= nv) break;
                __m512 x = acc[r][v];
                if (e->act != SQZ_ACT_NONE) x = act512(x, e);
                _mm512_mask_storeu_ps(cr + d[v], lo[v], x);
            }
        }
        return;
    }
    /* loads before stores, as above (rows may share lines when ldc is small) */
    SQZ_UNROLL for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        const float *cr = c + (size_t)r * ldc;
        __m512 bb = _mm512_set1_ps((!e->accumulate && e->bias) ? e->bias[r] : 0.0f);
        SQZ_UNROLL for (int v = 0; v < NV; v++) {
            if (v >= nv) break;
            acc[r][v] = _mm512_add_ps(
                acc[r][v], e->accumulate ? _mm512_maskz_loadu_ps(mk[v], cr + 16 * v) : bb);
        }
    }
    SQZ_UNROLL for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        float *cr = c + (size_t)r * ldc;
        SQZ_UNROLL for (int v = 0; v < NV; v++) {
            if (v >= nv) break;
            __m512 x = acc[r][v];
            if (e->act != SQZ_ACT_NONE) x = act512(x, e);
            _mm512_mask_storeu_ps(cr + 16 * v, mk[v], x);
        }
    }
}

#define ROWS_CASE(R, NVV, IND)                                                                     \
    case R:                                                                                        \
        tile(kc, a, b, boff, c, ldc, n, e, R, NVV, 0, IND);                                        \
        break;
#define ROWS_CASES(NVV, IND)                                                                       \
    switch (m) {                                                                                   \
        ROWS_CASE(1, NVV, IND)                                                                     \
        ROWS_CASE(2, NVV, IND)                                                                     \
        ROWS_CASE(3, NVV, IND)                                                                     \
        ROWS_CASE(4, NVV, IND)                                                                     \
        ROWS_CASE(5, NVV, IND)                                                                     \
        ROWS_CASE(6, NVV, IND)                                                                     \
        ROWS_CASE(7, NVV, IND)                                                                     \
        ROWS_MORE(NVV, IND)                                                                        \
    default:                                                                                       \
        tile(kc, a, b, boff, c, ldc, n, e, MR, NVV, 0, IND);                                       \
        break;                                                                                     \
    }
#if MR == 8
#define ROWS_MORE(NVV, IND)
#elif MR == 12
#define ROWS_MORE(NVV, IND)                                                                        \
    ROWS_CASE(8, NVV, IND) ROWS_CASE(9, NVV, IND) ROWS_CASE(10, NVV, IND) ROWS_CASE(11, NVV, IND)
#else
#error "MR: 8 or 12"
#endif

SQZ_INLINE void dispatch(size_t kc, const float *a, const float *b, const int64_t *boff, float *c,
                         size_t ldc, size_t m, size_t n, const sqz_gemm_epi *e, const int ind) {
    if (e->prefetch_a && m == MR && n > NR - 16) {
        tile(kc, a, b, boff, c, ldc, n, e, MR, NV, 1, ind);
        return;
    }
#if NV == 3
    if (n > 32) {
        ROWS_CASES(3, ind)
        return;
    }
#endif
    if (n > 16) {
        ROWS_CASES(2, ind)
    } else {
        ROWS_CASES(1, ind)
    }
}

static void ukernel_avx512(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                           size_t m, size_t n, const sqz_gemm_epi *e) {
    const int64_t *boff = NULL;
    dispatch(kc, a, b, boff, c, ldc, m, n, e, 0);
}

static void ukernel_ind_avx512(size_t kc, const float *a, const float *b, const int64_t *boff,
                               float *c, size_t ldc, size_t m, size_t n, const sqz_gemm_epi *e) {
    dispatch(kc, a, b, boff, c, ldc, m, n, e, 1);
}

const sqz_gemm_kernel sqz_gemm_avx512 = {"avx512", MR, NR, ukernel_avx512, ukernel_ind_avx512, 1};
