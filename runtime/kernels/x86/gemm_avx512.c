/* gemm_avx512.c - 8 x 32 fp32 GEMM microkernel (AVX-512F), see gemm.h.
 *
 * 16 zmm accumulators (8 rows x 2 vectors of 16 columns); per k step two
 * B vector loads and eight A broadcasts feeding 16 FMAs. Variants for fewer
 * rows (m < 8) and one column vector (n <= 16) are instantiated from one
 * always-inline body so edge tiles do not pay for the full tile. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

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

/* ---- pixel-major conv tile (gemm.h: px): 32 channels (two vectors) x up
 * to 14 pixels, 28 accumulators; per k step two weight loads and one
 * broadcast per pixel. The tile is transposed in registers to channel rows
 * of pixels for the store. */
#define PX_M 32
#define PX_P 14
#ifndef PX_PF
#define PX_PF 24
#endif
#ifndef PX_XPF
#define PX_XPF 32
#endif

/* Transposes r (16 pixels x 16 channel lanes) and stores channel ch's
 * pixels (lanes of pm) at c + ch * ldc for ch < nch: unpacks / shuffles
 * within 128-bit blocks, then a 4x4 transpose of the blocks (64 shuffles;
 * 16 scatters cost ~3x more). */
SQZ_INLINE void store_t16(__m512 r[16], float *c, size_t ldc, int nch, __mmask16 pm) {
    __m512 a[16], b[16];
    SQZ_UNROLL for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* b[4g + j], block L: column 4L + j of rows 4g .. 4g + 3 */
    SQZ_UNROLL for (int g = 0; g < 4; g++) {
        b[4 * g + 0] = _mm512_shuffle_ps(a[4 * g], a[4 * g + 2], 0x44);
        b[4 * g + 1] = _mm512_shuffle_ps(a[4 * g], a[4 * g + 2], 0xEE);
        b[4 * g + 2] = _mm512_shuffle_ps(a[4 * g + 1], a[4 * g + 3], 0x44);
        b[4 * g + 3] = _mm512_shuffle_ps(a[4 * g + 1], a[4 * g + 3], 0xEE);
    }
    SQZ_UNROLL for (int j = 0; j < 4; j++) {
        __m512 u0 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0x44);
        __m512 u1 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0xEE);
        __m512 u2 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0x44);
        __m512 u3 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0xEE);
        __m512 t[4] = {_mm512_shuffle_f32x4(u0, u2, 0x88), _mm512_shuffle_f32x4(u0, u2, 0xDD),
                       _mm512_shuffle_f32x4(u1, u3, 0x88), _mm512_shuffle_f32x4(u1, u3, 0xDD)};
        SQZ_UNROLL for (int L = 0; L < 4; L++) {
            int ch = 4 * L + j;
            if (ch < nch) _mm512_mask_storeu_ps(c + (size_t)ch * ldc, pm, t[L]);
        }
    }
}

SQZ_INLINE void px_tile(size_t K, const float *w, const float *x, const int64_t *xoff, int64_t xrow,
                        float *c, size_t ldc, size_t m, const sqz_gemm_epi *e, const int np,
                        const int rows, const int nv) {
    __m512 acc[PX_P][2];
    const int P = np * rows;
    SQZ_UNROLL for (int p = 0; p < PX_P; p++) SQZ_UNROLL for (int v = 0; v < 2; v++) acc[p][v] =
        _mm512_setzero_ps();
    const int pf = e->prefetch_a;
    const char *pn = (const char *)e->pf_next;
    const size_t pnl = pn ? e->pf_lines : 0;
    for (size_t k = 0; k < K; k++) {
        /* epi->pf_next: a line a k step, two while more than K are left */
        if (k < pnl) _mm_prefetch(pn + 64 * k, _MM_HINT_T1);
        if (K + k < pnl) _mm_prefetch(pn + 64 * (K + k), _MM_HINT_T1);
        /* cold weights (epi->prefetch_a): the panel's lines PX_PF k steps ahead */
        if (pf) {
            _mm_prefetch((const char *)(w + (k + PX_PF) * PX_M), _MM_HINT_T0);
            _mm_prefetch((const char *)(w + (k + PX_PF) * PX_M + 16), _MM_HINT_T0);
        }
        /* the input rows PX_XPF k steps ahead (channel planes apart: the
         * hardware prefetcher does not follow them; lines the other core
         * wrote arrive in ~100+ ns) */
        if (k + PX_XPF < K) {
            const float *xa = x + xoff[k + PX_XPF];
            _mm_prefetch((const char *)xa, _MM_HINT_T0);
            _mm_prefetch((const char *)(xa + P - 1), _MM_HINT_T0);
            if (rows == 2) _mm_prefetch((const char *)(xa + xrow + np - 1), _MM_HINT_T0);
        }
        const float *x0 = x + xoff[k], *x1 = rows == 2 ? x0 + xrow - np : x0;
        __m512 w0 = _mm512_loadu_ps(w + k * PX_M);
        __m512 w1 = nv > 1 ? _mm512_loadu_ps(w + k * PX_M + 16) : _mm512_setzero_ps();
        SQZ_UNROLL for (int p = 0; p < PX_P; p++) {
            if (p >= P) break;
            __m512 b = _mm512_set1_ps(p < np ? x0[p] : x1[p]);
            acc[p][0] = _mm512_fmadd_ps(w0, b, acc[p][0]);
            if (nv > 1) acc[p][1] = _mm512_fmadd_ps(w1, b, acc[p][1]);
        }
    }
    __mmask16 mk[2];
    __m512 bias[2];
    SQZ_UNROLL for (int v = 0; v < 2; v++) {
        size_t lo = 16 * (size_t)v;
        mk[v] = (__mmask16)(m >= lo + 16 ? 0xffff : (m <= lo ? 0 : ((1u << (m - lo)) - 1u)));
        bias[v] = e->bias ? _mm512_maskz_loadu_ps(mk[v], e->bias + lo) : _mm512_setzero_ps();
    }
    const __mmask16 pm = (__mmask16)((1u << P) - 1u);
    SQZ_UNROLL for (int v = 0; v < 2; v++) {
        if (v >= nv) break;
        __m512 r[16];
        SQZ_UNROLL for (int p = 0; p < 16; p++) {
            if (p < P) {
                r[p] = _mm512_add_ps(acc[p][v], bias[v]);
                if (e->act != SQZ_ACT_NONE) r[p] = act512(r[p], e);
            } else {
                r[p] = _mm512_setzero_ps();
            }
        }
        int nch = (int)m - 16 * v;
        store_t16(r, c + 16 * (size_t)v * ldc, ldc, nch > 16 ? 16 : nch, pm);
    }
}

#define PX_CASE(NP, ROWS, NVV)                                                                     \
    case NP:                                                                                       \
        px_tile(K, w, x, xoff, xrow, c, ldc, m, e, NP, ROWS, NVV);                                 \
        return;
#define PX_CASES7(ROWS, NVV)                                                                       \
    PX_CASE(1, ROWS, NVV)                                                                          \
    PX_CASE(2, ROWS, NVV)                                                                          \
    PX_CASE(3, ROWS, NVV)                                                                          \
    PX_CASE(4, ROWS, NVV) PX_CASE(5, ROWS, NVV) PX_CASE(6, ROWS, NVV) PX_CASE(7, ROWS, NVV)
#define PX_CASES14(NVV)                                                                            \
    PX_CASES7(1, NVV)                                                                              \
    PX_CASE(8, 1, NVV)                                                                             \
    PX_CASE(9, 1, NVV)                                                                             \
    PX_CASE(10, 1, NVV)                                                                            \
    PX_CASE(11, 1, NVV) PX_CASE(12, 1, NVV) PX_CASE(13, 1, NVV) PX_CASE(14, 1, NVV)

SQZ_INLINE void px_nv(size_t K, const float *w, const float *x, const int64_t *xoff, int64_t xrow,
                      size_t np, size_t rows, float *c, size_t ldc, size_t m, const sqz_gemm_epi *e,
                      const int nv) {
    if (rows == 2) {
        switch (np) { PX_CASES7(2, nv) }
    } else {
        switch (np) { PX_CASES14(nv) }
    }
}

static void px_avx512(size_t K, const float *w, const float *x, const int64_t *xoff, int64_t xrow,
                      size_t np, size_t rows, float *c, size_t ldc, size_t m,
                      const sqz_gemm_epi *e) {
    if (m > 16)
        px_nv(K, w, x, xoff, xrow, np, rows, c, ldc, m, e, 2);
    else
        px_nv(K, w, x, xoff, xrow, np, rows, c, ldc, m, e, 1);
}

/* ---- band copy plane (gemm.h: band): per row 16 outputs per step from
 * zero-masked loads (lanes outside the input row read as 0, so padding
 * needs no separate pass); stride 2 picks the even / odd lanes of two loads
 * with one permute. Other strides: the reference. */

/* lanes j of a 16-lane load at input column p0 with 0 <= p0 + j < IW */
static inline __mmask16 in_mask(int64_t p0, int64_t IW) {
    int64_t lo = p0 < 0 ? -p0 : 0, hi = IW - p0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)((hi == 16 ? 0xffffu : ((1u << hi) - 1u)) & ~((1u << lo) - 1u));
}

/* xr + off as an address only (the masked loads touch valid lanes only) */
static inline const float *at(const float *xr, int64_t off) {
    return (const float *)((uintptr_t)xr + (uintptr_t)(off * (int64_t)sizeof(float)));
}

/* 16 outputs of a band row from input column p0 (stride 1) or p0.. p0 + 31
 * (stride 2, even lanes); m0 / m1: the in_mask of the one / two loads */
SQZ_INLINE __m512 band_vec(const float *xr, int64_t p0, __mmask16 m0, __mmask16 m1, const int sw) {
    if (sw == 1) return _mm512_maskz_loadu_ps(m0, at(xr, p0));
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    __m512 lo = _mm512_maskz_loadu_ps(m0, at(xr, p0));
    __m512 hi = _mm512_maskz_loadu_ps(m1, at(xr, p0 + 16));
    return _mm512_permutex2var_ps(lo, even, hi);
}

/* Rows [r0, r1) hold input rows, the others are zero: no per-row tests
 * (the first and last rows' branches mispredicted on every plane: 3-4x the
 * time of the copies on 7x7 / 14x14 planes). */
SQZ_INLINE void band_sw(const float *xc, int64_t IH, int64_t IW, int64_t ih0, int64_t sh,
                        int64_t lead, int64_t QH, int64_t QW, float *d, const int sw) {
    int64_t r0 = ih0 >= 0 ? 0 : (-ih0 + sh - 1) / sh;
    int64_t r1 = IH - ih0 <= 0 ? 0 : (IH - ih0 + sh - 1) / sh;
    if (r1 > QH) r1 = QH;
    if (r0 > r1) r0 = r1;
    const __m512 z = _mm512_setzero_ps();
    if (QW <= 16) {
        const __mmask16 st = (__mmask16)((1u << QW) - 1u);
        const __mmask16 m0 = in_mask(-lead, IW), m1 = in_mask(16 - lead, IW);
        for (int64_t r = 0; r < r0; r++) _mm512_mask_storeu_ps(d + r * QW, st, z);
        const float *xr = xc + (ih0 + r0 * sh) * IW;
        for (int64_t r = r0; r < r1; r++, xr += sh * IW)
            _mm512_mask_storeu_ps(d + r * QW, st, band_vec(xr, -lead, m0, m1, sw));
        for (int64_t r = r1; r < QH; r++) _mm512_mask_storeu_ps(d + r * QW, st, z);
        return;
    }
    memset(d, 0, (size_t)(r0 * QW) * sizeof(float));
    /* the masks of each 16-column step, the same on every row */
    enum { MAXV = 16 };
    __mmask16 m0[MAXV], m1[MAXV], st[MAXV];
    const int64_t nv = (QW + 15) / 16;
    for (int64_t v = 0; v < nv && v < MAXV; v++) {
        int64_t q = 16 * v, p0 = q * sw - lead;
        st[v] = QW - q >= 16 ? 0xffff : (__mmask16)((1u << (QW - q)) - 1u);
        m0[v] = in_mask(p0, IW);
        m1[v] = in_mask(p0 + 16, IW);
    }
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = xc + (ih0 + r * sh) * IW;
        float *dr = d + r * QW;
        for (int64_t v = 0; v < nv; v++) {
            int64_t q = 16 * v, p0 = q * sw - lead;
            if (v < MAXV)
                _mm512_mask_storeu_ps(dr + q, st[v], band_vec(xr, p0, m0[v], m1[v], sw));
            else
                _mm512_mask_storeu_ps(dr + q,
                                      QW - q >= 16 ? 0xffff : (__mmask16)((1u << (QW - q)) - 1u),
                                      band_vec(xr, p0, in_mask(p0, IW), in_mask(p0 + 16, IW), sw));
        }
    }
    memset(d + r1 * QW, 0, (size_t)((QH - r1) * QW) * sizeof(float));
}

/* Stride 2, both column phases: the planes of lead and lead - 1 (d and
 * d + ps) from the even and odd lanes of the same two loads per row (a
 * stride-2 3x3 conv's band copy: half the loads and calls of two band_sw
 * planes; small ResNet 32 -> 64 s2 @14x14, 1 thread: 1.9 -> 1.4 us). */
SQZ_INLINE void pair_row(const float *xr, int64_t p0, __mmask16 m0, __mmask16 m1, __mmask16 st,
                         float *de, float *dd) {
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    __m512 lo = _mm512_maskz_loadu_ps(m0, at(xr, p0));
    __m512 hi = _mm512_maskz_loadu_ps(m1, at(xr, p0 + 16));
    _mm512_mask_storeu_ps(de, st, _mm512_permutex2var_ps(lo, even, hi));
    _mm512_mask_storeu_ps(dd, st, _mm512_permutex2var_ps(lo, odd, hi));
}

/* as band_sw (stride 2), both phases; its own function: inlined into
 * band_avx512 its frame made every single-plane call there ~25% slower */
__attribute__((noinline)) static void band_pair(const float *xc, int64_t IH, int64_t IW,
                                                int64_t ih0, int64_t sh, int64_t lead, int64_t QH,
                                                int64_t QW, float *d, int64_t ps) {
    int64_t r0 = ih0 >= 0 ? 0 : (-ih0 + sh - 1) / sh;
    int64_t r1 = IH - ih0 <= 0 ? 0 : (IH - ih0 + sh - 1) / sh;
    if (r1 > QH) r1 = QH;
    if (r0 > r1) r0 = r1;
    const __m512 z = _mm512_setzero_ps();
    float *d2 = d + ps;
    if (QW <= 16) {
        const __mmask16 st = (__mmask16)((1u << QW) - 1u);
        const __mmask16 m0 = in_mask(-lead, IW), m1 = in_mask(16 - lead, IW);
        for (int64_t r = 0; r < r0; r++) {
            _mm512_mask_storeu_ps(d + r * QW, st, z);
            _mm512_mask_storeu_ps(d2 + r * QW, st, z);
        }
        const float *xr = xc + (ih0 + r0 * sh) * IW;
        for (int64_t r = r0; r < r1; r++, xr += sh * IW)
            pair_row(xr, -lead, m0, m1, st, d + r * QW, d2 + r * QW);
        for (int64_t r = r1; r < QH; r++) {
            _mm512_mask_storeu_ps(d + r * QW, st, z);
            _mm512_mask_storeu_ps(d2 + r * QW, st, z);
        }
        return;
    }
    memset(d, 0, (size_t)(r0 * QW) * sizeof(float));
    memset(d2, 0, (size_t)(r0 * QW) * sizeof(float));
    const int64_t nv = (QW + 15) / 16;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = xc + (ih0 + r * sh) * IW;
        for (int64_t v = 0; v < nv; v++) {
            int64_t q = 16 * v, p0 = 2 * q - lead;
            __mmask16 st = QW - q >= 16 ? 0xffff : (__mmask16)((1u << (QW - q)) - 1u);
            pair_row(xr, p0, in_mask(p0, IW), in_mask(p0 + 16, IW), st, d + r * QW + q,
                     d2 + r * QW + q);
        }
    }
    memset(d + r1 * QW, 0, (size_t)((QH - r1) * QW) * sizeof(float));
    memset(d2 + r1 * QW, 0, (size_t)((QH - r1) * QW) * sizeof(float));
}

static void band_avx512(const float *xc, int64_t IH, int64_t IW, int64_t ih0, int64_t sh,
                        int64_t lead, int64_t sw, int64_t QH, int64_t QW, float *d, int64_t nb,
                        int64_t ps) {
    if (sw == 2 && nb == 2) {
        band_pair(xc, IH, IW, ih0, sh, lead, QH, QW, d, ps);
        return;
    }
    /* else nb == 1 (nb <= sw) or a stride above 2 */
    if (sw == 1)
        band_sw(xc, IH, IW, ih0, sh, lead, QH, QW, d, 1);
    else if (sw == 2)
        band_sw(xc, IH, IW, ih0, sh, lead, QH, QW, d, 2);
    else
        sqz_gemm_band_ref(xc, IH, IW, ih0, sh, lead, sw, QH, QW, d, nb, ps);
}

/* ---- matrix-vector panel (gemm.h: gemv): rows (1 or 2) x nv vectors of
 * 16 columns; x[k] broadcast from memory, the panel's nv vectors loaded once
 * per k step for both rows. The weights stream from L2 (or further): KS k
 * steps run on KS accumulator sets (8 chains in all) so the FMA latency
 * never stalls the loads, and the panel is prefetched GV_PF floats ahead:
 * 6 KB (the classifiers' 5 MB weights come from L3 or DRAM; at 3 KB the
 * 1280 -> 1000 Gemm ran ~15% slower, at 16 KB no faster: whole models,
 * 1 thread, node means 310 / 272 / 145 us -> 270 / 254 / 119). */
#ifndef GV_PF
#define GV_PF 1536
#endif
/* cold weights (epi->prefetch_a: beyond L2, from L3 / DRAM each run): also
 * into L2 GV_PF2 floats (24 KB) ahead (MobileNetV2 / MNASNet 1.0 classifier
 * 1280 -> 1000, 1 thread, per node, interleaved: mean 328 / 323 -> 278 /
 * 280 us; 48 KB ahead: min no better) */
#ifndef GV_PF2
#define GV_PF2 6144
#endif

SQZ_INLINE void gv_tile(size_t K, const float *x, size_t ldx, const float *w, size_t n,
                        const float *bias, float *y, size_t ldy, const sqz_gemm_epi *e,
                        const int rows, const int nv) {
    const int KS = rows == 1 ? (nv <= 2 ? 4 : 2) : (nv <= 2 ? 2 : 1);
    const size_t pw = 16 * (size_t)nv;
    const float *x1 = x + (rows == 2 ? ldx : 0);
    const int cold = e->prefetch_a;
    __m512 acc[4][2][4];
    SQZ_UNROLL for (int s = 0; s < 4; s++) SQZ_UNROLL for (int r = 0; r < 2; r++)
        SQZ_UNROLL for (int v = 0; v < 4; v++) acc[s][r][v] = _mm512_setzero_ps();
    size_t k = 0;
    for (; k + (size_t)KS <= K; k += (size_t)KS) {
        SQZ_UNROLL for (int s = 0; s < 4; s++) {
            if (s >= KS) break;
            const float *ws = w + (size_t)s * pw;
            __m512 a0 = _mm512_set1_ps(x[k + (size_t)s]);
            __m512 a1 = rows == 2 ? _mm512_set1_ps(x1[k + (size_t)s]) : a0;
            SQZ_UNROLL for (int v = 0; v < 4; v++) {
                if (v >= nv) break;
#if GV_PF > 0
                _mm_prefetch((const char *)(ws + GV_PF + 16 * v), _MM_HINT_T0);
#endif
#if GV_PF2 > 0
                if (cold) _mm_prefetch((const char *)(ws + GV_PF2 + 16 * v), _MM_HINT_T1);
#endif
                __m512 wv = _mm512_loadu_ps(ws + 16 * v);
                acc[s][0][v] = _mm512_fmadd_ps(a0, wv, acc[s][0][v]);
                if (rows == 2) acc[s][1][v] = _mm512_fmadd_ps(a1, wv, acc[s][1][v]);
            }
        }
        w += (size_t)KS * pw;
    }
    for (; k < K; k++, w += pw) {
        __m512 a0 = _mm512_set1_ps(x[k]), a1 = _mm512_set1_ps(x1[k]);
        SQZ_UNROLL for (int v = 0; v < 4; v++) {
            if (v >= nv) break;
            __m512 wv = _mm512_loadu_ps(w + 16 * v);
            acc[0][0][v] = _mm512_fmadd_ps(a0, wv, acc[0][0][v]);
            if (rows == 2) acc[0][1][v] = _mm512_fmadd_ps(a1, wv, acc[0][1][v]);
        }
    }
    SQZ_UNROLL for (int v = 0; v < 4; v++) {
        if (v >= nv) break;
        size_t lo = 16 * (size_t)v;
        __mmask16 mk = (__mmask16)(n >= lo + 16 ? 0xffff : ((1u << (n - lo)) - 1u));
        __m512 b = bias ? _mm512_maskz_loadu_ps(mk, bias + lo) : _mm512_setzero_ps();
        SQZ_UNROLL for (int r = 0; r < 2; r++) {
            if (r >= rows) break;
            __m512 t = acc[0][r][v];
            SQZ_UNROLL for (int s = 1; s < 4; s++) if (s < KS) t = _mm512_add_ps(t, acc[s][r][v]);
            t = _mm512_add_ps(t, b);
            if (e->act != SQZ_ACT_NONE) t = act512(t, e);
            _mm512_mask_storeu_ps(y + (size_t)r * ldy + lo, mk, t);
        }
    }
}

#define GV_CASE(NVV)                                                                               \
    case NVV:                                                                                      \
        if (m == 2)                                                                                \
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 2, NVV);                                     \
        else                                                                                       \
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 1, NVV);                                     \
        return;

static void gemv_avx512(size_t K, const float *x, size_t ldx, size_t m, const float *w, size_t nv,
                        size_t n, const float *bias, float *y, size_t ldy, const sqz_gemm_epi *e) {
    switch (nv) {
        GV_CASE(1)
        GV_CASE(2)
        GV_CASE(3)
    default:
        if (m == 2)
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 2, 4);
        else
            gv_tile(K, x, ldx, w, n, bias, y, ldy, e, 1, 4);
        return;
    }
}

void sqz_x86_conv_add_avx512(const float *y, const float *res, float *out, size_t n, int relu) {
    const __m512 z = _mm512_setzero_ps();
    size_t j = 0;
    /* max(v, 0) is the twin's v > 0 ? v : 0 (NaN and -0 give +0) */
    if (relu)
        for (; j + 16 <= n; j += 16)
            _mm512_storeu_ps(
                out + j,
                _mm512_max_ps(_mm512_add_ps(_mm512_loadu_ps(y + j), _mm512_loadu_ps(res + j)), z));
    else
        for (; j + 16 <= n; j += 16)
            _mm512_storeu_ps(out + j,
                             _mm512_add_ps(_mm512_loadu_ps(y + j), _mm512_loadu_ps(res + j)));
    if (j < n) {
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1u);
        __m512 v =
            _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + j), _mm512_maskz_loadu_ps(m, res + j));
        _mm512_mask_storeu_ps(out + j, m, relu ? _mm512_max_ps(v, z) : v);
    }
}

const sqz_gemm_kernel sqz_gemm_avx512 = {
    "avx512",  MR,   NR,   ukernel_avx512, ukernel_ind_avx512, 1,
    px_avx512, PX_M, PX_P, band_avx512,    gemv_avx512,        16};
