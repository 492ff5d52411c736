/* sparse_i8_avx2.c - int8 CSR row kernels with AVX2 (contract: kernels/sparse.h
 * "int8"). spmm8: XNNPACK-style NCHW SpMM - per output row, the entries are
 * taken two at a time as one broadcast int16 weight pair; the two input rows'
 * int16 pixels are interleaved (vpunpck{l,h}wd) and multiplied-added with
 * vpmaddwd (exact int32), 32 then 16 pixels per step; the last 16-pixel step
 * overlaps the previous one (same values rewritten) so no column tail is
 * needed when P >= 16. spmv8: 8 entries per step with an int32 gather. The
 * requantization is int8.h's, as in int8_avx2.c. */
#include <immintrin.h>
#include <string.h>

#include "int8_simd.h"
#include "sparse.h"

/* int8.h requantization of 8 int32 lanes (as int8_avx2.c rq8): float
 * convert, multiply, clamp to [lo - zp, hi - zp], convert (round to nearest
 * even), + zp. */
static inline __m256i rq8(__m256i acc, sqz_rq q, int32_t zp, int32_t lo, int32_t hi) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(q.s));
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps((float)(lo - zp))),
                      _mm256_set1_ps((float)(hi - zp)));
    return _mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(zp));
}

/* lo = pixels {0-3, 8-11}, hi = {4-7, 12-15} (unpack order) -> 16 bytes in
 * pixel order: packs keeps each 128-bit lane's (lo, hi) = pixels 0-7 | 8-15. */
static inline void store16(int8_t *y, __m256i lo, __m256i hi) {
    __m256i p16 = _mm256_packs_epi32(lo, hi);
    __m256i p8 = _mm256_packs_epi16(p16, p16);
    __m128i b = _mm_unpacklo_epi64(_mm256_castsi256_si128(p8), _mm256_extracti128_si256(p8, 1));
    _mm_storeu_si128((__m128i *)(void *)y, b);
}

static inline __m256i pair(const int16_t *v) {
    int32_t w;
    memcpy(&w, v, 4);
    return _mm256_set1_epi32(w);
}

static inline __m256i ld16(const int16_t *p) {
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

void sqz_spmm8_avx2(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                    int64_t P, int8_t *Y) {
    if (P < 16) {
        sqz_spmm8_ref(m, r0, r1, X, xs, P, Y);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        int8_t *y = Y + r * P;
        const __m256i o = _mm256_set1_epi32(m->off[r]);
        const int32_t k0 = m->rowptr[r], k1 = m->rowptr[r + 1];
        const int32_t *col = m->col;
        const int16_t *val = m->val;
        const sqz_rq q = m->rq[r];
        int64_t p = 0;
        for (; p + 32 <= P; p += 32) {
            __m256i a0 = o, a1 = o, a2 = o, a3 = o;
            for (int32_t k = k0; k < k1; k += 2) {
                const int16_t *xa = X + (int64_t)col[k] * xs + p,
                              *xb = X + (int64_t)col[k + 1] * xs + p;
                const __m256i w = pair(val + k);
                __m256i u0 = ld16(xa), v0 = ld16(xb), u1 = ld16(xa + 16), v1 = ld16(xb + 16);
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_unpacklo_epi16(u0, v0), w));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_unpackhi_epi16(u0, v0), w));
                a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_unpacklo_epi16(u1, v1), w));
                a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_unpackhi_epi16(u1, v1), w));
            }
            store16(y + p, rq8(a0, q, m->zp, m->lo, m->hi), rq8(a1, q, m->zp, m->lo, m->hi));
            store16(y + p + 16, rq8(a2, q, m->zp, m->lo, m->hi), rq8(a3, q, m->zp, m->lo, m->hi));
        }
        while (p < P) { /* 16-pixel steps, the last one moved back to end at P */
            if (p + 16 > P) p = P - 16;
            __m256i a0 = o, a1 = o;
            for (int32_t k = k0; k < k1; k += 2) {
                const __m256i w = pair(val + k);
                __m256i u = ld16(X + (int64_t)col[k] * xs + p),
                        v = ld16(X + (int64_t)col[k + 1] * xs + p);
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_unpacklo_epi16(u, v), w));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_unpackhi_epi16(u, v), w));
            }
            store16(y + p, rq8(a0, q, m->zp, m->lo, m->hi), rq8(a1, q, m->zp, m->lo, m->hi));
            p += 16;
        }
    }
}

void sqz_spmv8_avx2(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x8, void *tmp,
                    int8_t *y) {
    int32_t *x = tmp; /* int32 copy: gather operand */
    for (int64_t c = 0; c < m->cols; c++) x[c] = x8[c];
    for (int64_t r = r0; r < r1; r++) {
        int32_t k = m->rowptr[r];
        const int32_t k1 = m->rowptr[r + 1];
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
        /* gathered x is a sign-extended int32 (high int16 0 or -1); the weight
         * zero-extended to int32 has a 0 high int16, so vpmaddwd gives x * w */
        for (; k + 16 <= k1; k += 16) {
            __m256i i0 = _mm256_loadu_si256((const __m256i *)(const void *)(m->col + k));
            __m256i i1 = _mm256_loadu_si256((const __m256i *)(const void *)(m->col + k + 8));
            __m256i w0 =
                _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(m->val + k)));
            __m256i w1 = _mm256_cvtepu16_epi32(
                _mm_loadu_si128((const __m128i *)(const void *)(m->val + k + 8)));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_i32gather_epi32(x, i0, 4), w0));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_i32gather_epi32(x, i1, 4), w1));
        }
        for (; k + 8 <= k1; k += 8) {
            __m256i i0 = _mm256_loadu_si256((const __m256i *)(const void *)(m->col + k));
            __m256i w0 =
                _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(m->val + k)));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_i32gather_epi32(x, i0, 4), w0));
        }
        __m256i s8 = _mm256_add_epi32(a0, a1);
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
        /* int32 wrap-around sums: the exact total is in range (int8.h bound) */
        uint32_t acc = (uint32_t)_mm_cvtsi128_si32(s) + (uint32_t)m->off[r];
        for (; k < k1; k++) acc += (uint32_t)((int32_t)m->val[k] * x[m->col[k]]);
        y[r] = (int8_t)sqz_rq_apply((int32_t)acc, m->rq[r], m->zp, m->lo, m->hi);
    }
}

void sqz_widen8_avx2(const int8_t *x, int16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256(
            (__m256i *)(void *)(y + i),
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(x + i))));
    for (; i < n; i++) y[i] = x[i];
}
