/* int8_avx512.c - AVX-512 VNNI int8 microkernels (vpdpbusd: u8 x s8, four
 * products summed into each int32 lane without saturation) and the AVX-512
 * depthwise plane kernel. Layouts and the bit-exactness argument:
 * int8_simd.h; requantization: int8.h. */
#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "int8_simd.h"
#include "par.h"

#define MR 8  /* conv output channels per block */
#define NB 16 /* gemm output channels per block (one zmm) */

/* int8.h requantization of 16 int32 lanes, before the zero point: float
 * convert, multiply, clamp to [flo, fhi] = [lo - zp, hi - zp], convert with
 * round to nearest even (MXCSR default); |result| <= 255. */
static inline __m512i rqf16(__m512i acc, __m512 s, __m512 flo, __m512 fhi) {
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), s);
    return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, flo), fhi));
}

/* The whole formula for one channel: the clamped int32 results. */
static inline __m512i rq16(__m512i acc, const sqz_i8_rqv *r, int32_t zp, int32_t lo, int32_t hi) {
    __m512i v = rqf16(acc, _mm512_set1_ps(r->s), _mm512_set1_ps((float)(lo - zp)),
                      _mm512_set1_ps((float)(hi - zp)));
    return _mm512_add_epi32(v, _mm512_set1_epi32(zp));
}

static inline void store16(int8_t *y, __m512i v, int64_t n) {
    __m128i b = _mm512_cvtepi32_epi8(v);
    if (n >= 16)
        _mm_storeu_si128((__m128i *)(void *)y, b);
    else if (n > 0)
        _mm_mask_storeu_epi8(y, (__mmask16)((1u << n) - 1), b);
}

/* Requantizes 32 pixels of one channel (a0: pixels 0..15, a1: 16..31) and
 * stores the first n (may be <= 0) at y: |v| <= 255 so the packs are exact,
 * zp is added in int16, and 128-bit lane L then holds pixels 4L..4L+3
 * (dword 0) and 16+4L.. (dword 1), which one vpermd puts in order. */
static inline void rq_store32(int8_t *y, __m512i a0, __m512i a1, const sqz_i8_rqv *rq, int32_t zp,
                              int32_t lo, int32_t hi, int64_t n) {
    if (n <= 0) return;
    const __m512 sv = _mm512_set1_ps(rq->s), flo = _mm512_set1_ps((float)(lo - zp)),
                 fhi = _mm512_set1_ps((float)(hi - zp));
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512i h = _mm512_packs_epi32(rqf16(a0, sv, flo, fhi), rqf16(a1, sv, flo, fhi));
    h = _mm512_add_epi16(h, _mm512_set1_epi16((short)zp));
    __m256i b = _mm512_castsi512_si256(_mm512_permutexvar_epi32(perm, _mm512_packs_epi16(h, h)));
    _mm256_mask_storeu_epi8(y, n >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << n) - 1), b);
}

/* rq_store32's requantization of a0 (to y0) and a1 (to y1, unless NULL),
 * n <= 16 outputs each. */
static inline void rq_store2x16(int8_t *y0, int8_t *y1, __m512i a0, __m512i a1,
                                const sqz_i8_rqv *rq, int32_t zp, int32_t lo, int32_t hi,
                                int64_t n) {
    const __m512 sv = _mm512_set1_ps(rq->s), flo = _mm512_set1_ps((float)(lo - zp)),
                 fhi = _mm512_set1_ps((float)(hi - zp));
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512i h = _mm512_packs_epi32(rqf16(a0, sv, flo, fhi), rqf16(a1, sv, flo, fhi));
    h = _mm512_add_epi16(h, _mm512_set1_epi16((short)zp));
    __m256i b = _mm512_castsi512_si256(_mm512_permutexvar_epi32(perm, _mm512_packs_epi16(h, h)));
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    _mm_mask_storeu_epi8(y0, m, _mm256_castsi256_si128(b));
    if (y1) _mm_mask_storeu_epi8(y1, m, _mm256_extracti128_si256(b, 1));
}

static inline __m512i bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* acc += dpbusd(x, w) in place. GCC 12 keeps the intrinsic's accumulators
 * of the conv kernels' k loops in one register set and copies them to
 * another for every vpdpbusd (two moves per product, and stack spills with
 * 16 accumulators); the asm ties input and output to one register. */
#define DPB(acc, x, w) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w))

/* ------------------------------------------------------------- conv */

static inline int32_t q4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* SQZ_I8_PW48=0 turns the 48-pixel groups off (A/B); read once */
static int pw48_on(void) {
    static _Atomic int on = -1;
    int v = atomic_load_explicit(&on, memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("SQZ_I8_PW48");
        v = !(e && *e == '0');
        atomic_store_explicit(&on, v, memory_order_relaxed);
    }
    return v;
}

/* The two requantized vectors a (scale sa) and b (sb) packed to int16 (the
 * conv epilogue's step, iclamp: clamped after the packs by the caller). */
static inline __m512i iclamp_pack(__m512i a, __m512i b, __m512 sa, __m512 sb, __m512 flo,
                                  __m512 fhi, int iclamp) {
    if (iclamp)
        return _mm512_packs_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(a), sa)),
                                  _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(b), sb)));
    return _mm512_packs_epi32(rqf16(a, sa, flo, fhi), rqf16(b, sb, flo, fhi));
}

/* The conv microkernel on the interleaved tile: quads at xb + k kstride +
 * 4 j for pixel j of k-quad k; pixels [j0, j0 + n), n <= 16 NV. MRX (a
 * constant: every accumulator index is known at compile time, so they stay
 * in registers) >= mr rows. NV (a constant) vectors of 16 pixels a row: 2,
 * or 3 for a 7x7 map's 49 pixels as 48 + 1 (the 1 on conv_vnni_px) instead
 * of 64 lanes (the weight broadcasts are shared by the three vectors). */
static inline __attribute__((always_inline)) void
conv_vnni_grp(const uint8_t *xb, int64_t kstride, int64_t kq, const int8_t *wp, int mr, int64_t j0,
              int64_t n, int8_t *y, int64_t ys, const sqz_i8_epi *e, const int MRX, const int NV,
              const int EX) {
    __m512i acc[MR][3]; /* start from the channel offsets: no add in the epilogue */
    for (int r = 0; r < MRX; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_set1_epi32(r < mr ? e->off[r] : 0);
    /* EX (NV 3, MRX <= 4): pixel 48 too, rows along the lanes of an xmm
     * (a k-quad's weights of the pass's 4 rows are 16 consecutive bytes,
     * zero past mr), its quad broadcast (conv_vnni_px's scheme, inside the
     * k loop: a 7x7 map's 49th pixel without a call of its own) */
    __m128i accx = _mm_setzero_si128();
    if (EX) accx = _mm_maskz_loadu_epi32((__mmask8)((1u << (mr < 4 ? mr : 4)) - 1), e->off);
    const int8_t *wk = wp;
    const uint8_t *xk = xb + j0 * 4;
    for (int64_t k = 0; k < kq; k++, wk += MR * 4, xk += kstride) {
        const __m512i x0 = _mm512_loadu_si512(xk), x1 = _mm512_loadu_si512(xk + 64);
        const __m512i x2 = NV > 2 ? _mm512_loadu_si512(xk + 128) : x0;
        for (int r = 0; r < MRX; r++) {
            const __m512i b = bcast4(wk + 4 * r);
            DPB(acc[r][0], x0, b);
            DPB(acc[r][1], x1, b);
            if (NV > 2) DPB(acc[r][2], x2, b);
        }
        if (EX)
            accx = _mm_dpbusd_epi32(accx, _mm_set1_epi32(q4(xk + 4 * 48)),
                                    _mm_loadu_si128((const __m128i *)(const void *)wk));
    }
    if (EX) { /* the int8.h formula, clamped in float; rows r < mr of pixel 48 */
        const int m4 = mr < 4 ? mr : 4;
        __m128 v = _mm_mul_ps(_mm_cvtepi32_ps(accx),
                              _mm_maskz_loadu_ps((__mmask8)((1u << m4) - 1), &e->rq[0].s));
        v = _mm_min_ps(_mm_max_ps(v, _mm_set1_ps((float)(e->lo - e->zp))),
                       _mm_set1_ps((float)(e->hi - e->zp)));
        const __m128i iv = _mm_add_epi32(_mm_cvtps_epi32(v), _mm_set1_epi32(e->zp));
        y[j0 + 48] = (int8_t)_mm_extract_epi32(iv, 0);
        if (m4 > 1) y[ys + j0 + 48] = (int8_t)_mm_extract_epi32(iv, 1);
        if (m4 > 2) y[2 * ys + j0 + 48] = (int8_t)_mm_extract_epi32(iv, 2);
        if (m4 > 3) y[3 * ys + j0 + 48] = (int8_t)_mm_extract_epi32(iv, 3);
    }
    const __m512i zp16 = _mm512_set1_epi16((short)e->zp);
    const __m512 flo = _mm512_set1_ps((float)(e->lo - e->zp)),
                 fhi = _mm512_set1_ps((float)(e->hi - e->zp));
    const __m512i lo8 = _mm512_set1_epi8((char)e->lo), hi8 = _mm512_set1_epi8((char)e->hi);
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    /* two rows at once (an odd last row: twice): requantized lanes
     * (|v| <= 255) packed to int16, zp added, packed to int8 (exact:
     * clamped in float before, or in int8 after with iclamp) */
    const int64_t n01 = n < 32 ? n : 32;
    const __mmask32 m32 = n01 >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << n01) - 1);
    /* NV 3: the third vectors' pixels 32 .. n - 1 */
    const __mmask16 m16 =
        n >= 48 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n > 32 ? n - 32 : 0)) - 1);
    /* the int8 clamp: only after the iclamp packs, and only for bounds
     * narrower than the packs' saturation (a fused activation) */
    const int c8 = e->iclamp && (e->lo > -128 || e->hi < 127);
    y += j0;
#pragma GCC unroll 8
    for (int r = 0; r < MRX; r += 2) {
        if (r >= mr) break;
        const int two = r + 1 < mr;
        const int r1 = r + 1 < MRX ? r + 1 : r;
        const __m512i b0 = two ? acc[r1][0] : acc[r][0];
        const __m512i b1 = two ? acc[r1][1] : acc[r][1];
        const __m512 s0 = _mm512_set1_ps(e->rq[r].s), s1 = _mm512_set1_ps(e->rq[two ? r + 1 : r].s);
        __m512i a, b;
#define RQI(v, s) _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(v), s))
        if (e->iclamp) {
            a = _mm512_packs_epi32(RQI(acc[r][0], s0), RQI(acc[r][1], s0));
            b = _mm512_packs_epi32(RQI(b0, s1), RQI(b1, s1));
        } else {
            a = _mm512_packs_epi32(rqf16(acc[r][0], s0, flo, fhi), rqf16(acc[r][1], s0, flo, fhi));
            b = _mm512_packs_epi32(rqf16(b0, s1, flo, fhi), rqf16(b1, s1, flo, fhi));
        }
        __m512i c = _mm512_packs_epi16(_mm512_adds_epi16(a, zp16), _mm512_adds_epi16(b, zp16));
        if (c8) c = _mm512_min_epi8(_mm512_max_epi8(c, lo8), hi8);
        c = _mm512_permutexvar_epi32(perm, c);
        _mm256_mask_storeu_epi8(y + r * ys, m32, _mm512_castsi512_si256(c));
        if (two) _mm256_mask_storeu_epi8(y + (r + 1) * ys, m32, _mm512_extracti64x4_epi64(c, 1));
        if (NV > 2) {
            /* rows r, r + 1 of the third vectors: 128-bit lane L holds pixels
             * 4L .. 4L + 3 of row r (dword 0, 2) and of row r + 1 (dword 1,
             * 3), which perm puts in order, row r in the low 128 bits */
            const __m512i b2 = two ? acc[r1][2] : acc[r][2];
            __m512i d = iclamp_pack(acc[r][2], b2, s0, s1, flo, fhi, e->iclamp);
            d = _mm512_adds_epi16(d, zp16);
            d = _mm512_packs_epi16(d, d);
            if (c8) d = _mm512_min_epi8(_mm512_max_epi8(d, lo8), hi8);
            d = _mm512_permutexvar_epi32(perm, d);
            _mm_mask_storeu_epi8(y + r * ys + 32, m16, _mm512_castsi512_si128(d));
            if (two)
                _mm_mask_storeu_epi8(y + (r + 1) * ys + 32, m16, _mm512_extracti32x4_epi32(d, 1));
        }
#undef RQI
    }
}

/* np <= 4 single pixels j0 .. j0 + np - 1: the block's mr (<= 8) channels
 * along the lanes of a ymm (a k-quad's packed weights are 32 consecutive
 * bytes, zero past mr), the pixel's quad broadcast: kq / 2 zmm-equivalent
 * products a pixel instead of MR kq for a vector of 16 pixels. The same
 * exact accumulator and requantization. */

static void conv_vnni_px(const uint8_t *xb, int64_t kstride, int64_t kq, const int8_t *wp, int mr,
                         int64_t j0, int np, int8_t *y, int64_t ys, const sqz_i8_epi *e) {
    const __mmask8 mm = (__mmask8)((1u << mr) - 1);
    const __m256i o = _mm256_maskz_loadu_epi32(mm, e->off);
    __m256i acc[4];
    for (int p = 0; p < np; p++) {
        /* four chains over k (a chain of kq dependent products would wait
         * on their latency); wrapping int32 adds of partial sums whose exact
         * total fits */
        __m256i c0 = o, c1 = _mm256_setzero_si256(), c2 = c1, c3 = c1;
        const uint8_t *xk = xb + 4 * (j0 + p);
        const int8_t *wk = wp;
        int64_t k = 0;
#define PX(c, i)                                                                                   \
    c = _mm256_dpbusd_epi32(c, _mm256_set1_epi32(q4(xk + (i)*kstride)),                            \
                            _mm256_loadu_si256((const __m256i *)(const void *)(wk + (i)*MR * 4)))
        for (; k + 4 <= kq; k += 4, xk += 4 * kstride, wk += 4 * MR * 4) {
            PX(c0, 0);
            PX(c1, 1);
            PX(c2, 2);
            PX(c3, 3);
        }
        for (; k < kq; k++, xk += kstride, wk += MR * 4) PX(c0, 0);
#undef PX
        acc[p] = _mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3));
    }
    const __m256 s = _mm256_maskz_loadu_ps(mm, &e->rq[0].s);
    const __m256 flo = _mm256_set1_ps((float)(e->lo - e->zp)),
                 fhi = _mm256_set1_ps((float)(e->hi - e->zp));
    for (int p = 0; p < 4; p++) {
        if (p >= np) {
            acc[p] = _mm256_setzero_si256();
            continue;
        }
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[p]), s);
        v = _mm256_min_ps(_mm256_max_ps(v, flo), fhi);
        acc[p] = _mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(e->zp));
    }
    /* transposed to rows: values in [lo, hi] (the packs are exact); after
     * them 128-bit lane h holds rows 4 h .. 4 h + 3 of pixel p at bytes 4 p
     * .., the shuffle puts row r's np pixels in dword r: one store a row */
    const __m256i tr = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4,
                                        8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m256i b = _mm256_shuffle_epi8(
        _mm256_packs_epi16(_mm256_packs_epi32(acc[0], acc[1]), _mm256_packs_epi32(acc[2], acc[3])),
        tr);
    int32_t rw[8];
    _mm256_storeu_si256((__m256i *)(void *)rw, b);
    const __mmask16 pm = (__mmask16)((1u << np) - 1);
    for (int r = 0; r < mr; r++) _mm_mask_storeu_epi8(y + r * ys + j0, pm, _mm_set1_epi32(rw[r]));
}

/* A tile's npx pixels: vectors of 32, the last <= 4 as single pixels (a
 * 14x14 map's second tile of 68 pixels: 64 + 4 instead of 96 lanes). A
 * last vector of 16 (+ single pixels), 49-pixel tiles as 32 + 16 + 1, ran
 * slower (1x1 48->192 @7 0.0034 -> 0.0040 ms, 192->48 0.0030 -> 0.0035). */
static inline __attribute__((always_inline)) void
conv_vnni_body(const uint8_t *xb, int64_t kstride, int64_t kq, const int8_t *wp, int mr,
               int64_t npx, int8_t *y, int64_t ys, const sqz_i8_epi *e, const int MRX) {
    const int64_t rem = npx % 32;
    if (rem > 16 && rem <= 20 && npx >= 48 && pw48_on()) {
        /* ... 32, 48 + <= 4 single pixels (7x7: 49 as 48 + 1, not 64) */
        const int64_t n32 = npx - rem - 32;
        for (int64_t j = 0; j < n32; j += 32)
            conv_vnni_grp(xb, kstride, kq, wp, mr, j, 32, y, ys, e, MRX, 2, 0);
        /* four rows a pass: 8 rows x 3 vectors (24 accumulators) made GCC 12
         * keep every accumulator on the stack */
        for (int r0 = 0; r0 < mr; r0 += 4) {
            sqz_i8_epi e4 = *e;
            e4.off += r0;
            e4.rq += r0;
            if (rem == 17) /* one more pixel: inside the group (EX) */
                conv_vnni_grp(xb, kstride, kq, wp + 4 * r0, mr - r0 < 4 ? mr - r0 : 4, n32, 48,
                              y + r0 * ys, ys, &e4, MRX < 4 ? MRX : 4, 3, 1);
            else
                conv_vnni_grp(xb, kstride, kq, wp + 4 * r0, mr - r0 < 4 ? mr - r0 : 4, n32, 48,
                              y + r0 * ys, ys, &e4, MRX < 4 ? MRX : 4, 3, 0);
        }
        if (rem > 17) conv_vnni_px(xb, kstride, kq, wp, mr, n32 + 48, (int)(rem - 16), y, ys, e);
        return;
    }
    const int64_t n32 = rem > 4 ? npx : npx - rem;
    for (int64_t j = 0; j < n32; j += 32)
        conv_vnni_grp(xb, kstride, kq, wp, mr, j, n32 - j, y, ys, e, MRX, 2, 0);
    if (n32 < npx) conv_vnni_px(xb, kstride, kq, wp, mr, n32, (int)(npx - n32), y, ys, e);
}

/* rows past mr are neither accumulated nor stored (as sqz_i8_conv_q_vnni) */
static void conv_vnni(const void *xpv, int64_t T, int64_t kq, const int8_t *wp, int mr, int64_t npx,
                      int8_t *y, int64_t ys, const sqz_i8_epi *e) {
    if (mr <= 2)
        conv_vnni_body(xpv, T * 4, kq, wp, mr, npx, y, ys, e, 2);
    else if (mr <= 4)
        conv_vnni_body(xpv, T * 4, kq, wp, mr, npx, y, ys, e, 4);
    else if (mr <= 6)
        conv_vnni_body(xpv, T * 4, kq, wp, mr, npx, y, ys, e, 6);
    else
        conv_vnni_body(xpv, T * 4, kq, wp, mr, npx, y, ys, e, MR);
}

/* conv_vnni_body on quad planes, storing each 32-pixel group's valid
 * outputs straight into y: the group's 64-byte index folds the packs' lane
 * order and the dropping of wide columns into one vpermb, then one masked
 * store of its gout[1] outputs a row at y + gout[0]. */
static inline __attribute__((always_inline, target("avx512vbmi"))) void
conv_q_body(const uint8_t *xb, const int64_t *qoff, int64_t kq, const int8_t *wp, int mr,
            int64_t npx, const uint8_t *gidx, const int32_t *gout, int8_t *y, int64_t ys,
            const sqz_i8_epi *e, const int MRX) {
    const __m512i zp16 = _mm512_set1_epi16((short)e->zp);
    const __m512 flo = _mm512_set1_ps((float)(e->lo - e->zp)),
                 fhi = _mm512_set1_ps((float)(e->hi - e->zp));
    const __m512i lo8 = _mm512_set1_epi8((char)e->lo), hi8 = _mm512_set1_epi8((char)e->hi);
    for (int64_t j = 0; j < npx; j += 32, gidx += 64, gout += 2) {
        __m512i acc[MR][2];
        for (int r = 0; r < MRX; r++)
            acc[r][0] = acc[r][1] = _mm512_set1_epi32(r < mr ? e->off[r] : 0);
        const int8_t *wk = wp;
        for (int64_t k = 0; k < kq; k++, wk += MR * 4) {
            const uint8_t *xk = xb + qoff[k] + j * 4;
            __m512i x0 = _mm512_loadu_si512(xk), x1 = _mm512_loadu_si512(xk + 64);
            for (int r = 0; r < MRX; r++) {
                __m512i b = bcast4(wk + 4 * r);
                DPB(acc[r][0], x0, b);
                DPB(acc[r][1], x1, b);
            }
        }
        const int32_t cnt = gout[1];
        if (cnt <= 0) continue;
        const __m512i gi = _mm512_loadu_si512(gidx);
        const __mmask32 m = cnt >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << cnt) - 1);
        int8_t *yo = y + gout[0];
        /* rows r, r1 (an odd last row: twice); unrolled, so that every
         * accumulator index is a constant (they stay in registers) */
#pragma GCC unroll 8
        for (int r = 0; r < MRX; r += 2) {
            if (r >= mr) break;
            const int r1 = r + 1 < mr ? r + 1 : r, two = r1 != r;
            const __m512i b0 = two ? acc[r + 1 < MRX ? r + 1 : r][0] : acc[r][0];
            const __m512i b1 = two ? acc[r + 1 < MRX ? r + 1 : r][1] : acc[r][1];
            const __m512 s0 = _mm512_set1_ps(e->rq[r].s), s1 = _mm512_set1_ps(e->rq[r1].s);
            __m512i a, b;
            if (e->iclamp) {
#define RQI(v, s) _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(v), s))
                a = _mm512_packs_epi32(RQI(acc[r][0], s0), RQI(acc[r][1], s0));
                b = _mm512_packs_epi32(RQI(b0, s1), RQI(b1, s1));
#undef RQI
            } else {
                a = _mm512_packs_epi32(rqf16(acc[r][0], s0, flo, fhi),
                                       rqf16(acc[r][1], s0, flo, fhi));
                b = _mm512_packs_epi32(rqf16(b0, s1, flo, fhi), rqf16(b1, s1, flo, fhi));
            }
            __m512i c = _mm512_packs_epi16(_mm512_adds_epi16(a, zp16), _mm512_adds_epi16(b, zp16));
            c = _mm512_permutexvar_epi8(gi, _mm512_min_epi8(_mm512_max_epi8(c, lo8), hi8));
            _mm256_mask_storeu_epi8(yo + r * ys, m, _mm512_castsi512_si256(c));
            if (r1 != r) _mm256_mask_storeu_epi8(yo + r1 * ys, m, _mm512_extracti64x4_epi64(c, 1));
        }
    }
}

/* rows past mr are neither accumulated nor stored: a block of mr <= 2, 4,
 * 6 rows runs the kernel of that many (LeNet-5's 6-channel conv) */
__attribute__((target("avx512vbmi"))) void
sqz_i8_conv_q_vnni(const uint8_t *xb, const int64_t *qoff, int64_t kq, const int8_t *wp, int mr,
                   int64_t npx, const uint8_t *gidx, const int32_t *gout, int8_t *y, int64_t ys,
                   const sqz_i8_epi *e) {
    if (mr <= 2)
        conv_q_body(xb, qoff, kq, wp, mr, npx, gidx, gout, y, ys, e, 2);
    else if (mr <= 4)
        conv_q_body(xb, qoff, kq, wp, mr, npx, gidx, gout, y, ys, e, 4);
    else if (mr <= 6)
        conv_q_body(xb, qoff, kq, wp, mr, npx, gidx, gout, y, ys, e, 6);
    else
        conv_q_body(xb, qoff, kq, wp, mr, npx, gidx, gout, y, ys, e, MR);
}

/* The end of the channels-along-lanes kernels' epilogue (conv_rows_body,
 * conv_pairs_body): 8 vectors of 16 requantized int32 (with tables t0, t1
 * locating each (channel, pixel) after the packs) packed with saturation
 * to int16, zero point added, packed to int8 (the integer clamp too when
 * c8), transposed to channel rows by two vpermt2b (channel c's pixels at
 * byte 8 c) and stored: np <= 8 bytes for each channel c < n (<= 16) at
 * yo + c ys. */
static inline __attribute__((always_inline, target("avx512vbmi"))) void
rows_store8(const __m512i v32[8], __m512i t0, __m512i t1, __m512i zp16, __m512i lo8, __m512i hi8,
            int c8, int n, int np, int8_t *yo, int64_t ys) {
    __m512i h[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        h[i] = _mm512_adds_epi16(_mm512_packs_epi32(v32[2 * i], v32[2 * i + 1]), zp16);
    __m512i a = _mm512_packs_epi16(h[0], h[1]), b = _mm512_packs_epi16(h[2], h[3]);
    if (c8) {
        a = _mm512_min_epi8(_mm512_max_epi8(a, lo8), hi8);
        b = _mm512_min_epi8(_mm512_max_epi8(b, lo8), hi8);
    }
    const __m512i c0 = _mm512_permutex2var_epi8(a, t0, b), c1 = _mm512_permutex2var_epi8(a, t1, b);
    const __mmask16 pm = (__mmask16)((1u << np) - 1);
#pragma GCC unroll 8
    for (int c = 0; c < 16; c += 2) {
        if (c >= n) break;
        const __m512i src = c < 8 ? c0 : c1;
        const __m128i l = (c % 8) / 2 == 0   ? _mm512_castsi512_si128(src)
                          : (c % 8) / 2 == 1 ? _mm512_extracti32x4_epi32(src, 1)
                          : (c % 8) / 2 == 2 ? _mm512_extracti32x4_epi32(src, 2)
                                             : _mm512_extracti32x4_epi32(src, 3);
        _mm_mask_storeu_epi8(yo + c * ys, pm, l);
        if (c + 1 < n) _mm_mask_storeu_epi8(yo + (c + 1) * ys, pm, _mm_bsrli_si128(l, 8));
    }
}

/* requantized lanes (int8.h, before the zero point; as conv_q_body) */
static inline __attribute__((always_inline)) __m512i rows_rq(__m512i acc, __m512 s, __m512 flo,
                                                             __m512 fhi, int iclamp) {
    return iclamp ? _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), s))
                  : rqf16(acc, s, flo, fhi);
}

/* Output channels along the lanes (sqz_i8_conv_rows_vnni): output columns
 * [ow0, ow0 + P) of every row, the block's 32 channels in two vectors
 * (weights [kq][32][4]). Per k-quad: the two weight vectors, then each
 * pixel's activation quad broadcast into two vpdpbusd. Every index is a
 * constant after unrolling, so the accumulators stay in registers (DPB). */
static inline __attribute__((always_inline, target("avx512vbmi"))) void
conv_rows_body(const uint8_t *xb, const int64_t *qoff, int64_t kq, const int8_t *wp, int nco,
               int64_t oh0, int64_t oh1, int64_t OW, int64_t PW, int64_t ow0, int8_t *y, int64_t ys,
               const sqz_i8_epi *e, const int P) {
    /* after the packs (below), the 16 channels' bytes of pixels 0..3 of a
     * segment are at byte 16 (c / 4) + 4 q + c % 4 of one register, of
     * pixels 4..7 at the same places of another: byte 8 c + q of the
     * transposed pair (channel c's pixels at byte 8 c) comes from there */
    uint8_t tb[128];
    for (int c = 0; c < 16; c++)
        for (int q = 0; q < 8; q++)
            tb[8 * c + q] = (uint8_t)((q < 4 ? 0 : 64) + 16 * (c / 4) + 4 * (q % 4) + c % 4);
    const __m512i t0 = _mm512_loadu_si512(tb), t1 = _mm512_loadu_si512(tb + 64);
    const __m512 flo = _mm512_set1_ps((float)(e->lo - e->zp)),
                 fhi = _mm512_set1_ps((float)(e->hi - e->zp));
    const __m512i zp16 = _mm512_set1_epi16((short)e->zp);
    const __m512i lo8 = _mm512_set1_epi8((char)e->lo), hi8 = _mm512_set1_epi8((char)e->hi);
    /* the int8 clamp: only after the iclamp packs, and only for bounds
     * narrower than their saturation (a fused activation) */
    const int c8 = e->iclamp && (e->lo > -128 || e->hi < 127);
    __mmask16 mk[2];
    for (int v = 0; v < 2; v++) {
        const int n = nco - 16 * v;
        mk[v] = n >= 16 ? (__mmask16)0xFFFF : n > 0 ? (__mmask16)((1u << n) - 1) : 0;
    }
    const __m512i o0 = _mm512_maskz_loadu_epi32(mk[0], e->off),
                  o1 = _mm512_maskz_loadu_epi32(mk[1], e->off + 16);
    for (int64_t oh = oh0; oh < oh1; oh++) {
        __m512i acc[2][8];
#pragma GCC unroll 8
        for (int p = 0; p < P; p++) acc[0][p] = o0, acc[1][p] = o1;
        const uint8_t *xr = xb + 4 * (oh * PW + ow0);
        const int8_t *wk = wp;
        for (int64_t k = 0; k < kq; k++, wk += 128) {
            const __m512i w0 = _mm512_loadu_si512(wk);
            const __m512i w1 = _mm512_loadu_si512(wk + 64);
            const uint8_t *xk = xr + qoff[k];
#pragma GCC unroll 8
            for (int p = 0; p < P; p++) {
                const __m512i b = bcast4(xk + 4 * p);
                DPB(acc[0][p], b, w0);
                DPB(acc[1][p], b, w1);
            }
        }
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++) {
            const int n = nco - 16 * v;
            if (n <= 0) continue;
            const __m512 sv = _mm512_maskz_loadu_ps(mk[v], &e->rq[16 * v].s);
            __m512i v32[8];
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++)
                v32[q] =
                    q < P ? rows_rq(acc[v][q], sv, flo, fhi, e->iclamp) : _mm512_setzero_si512();
            rows_store8(v32, t0, t1, zp16, lo8, hi8, c8, n, P, y + (16 * v) * ys + oh * OW + ow0,
                        ys);
        }
    }
}

/* conv_rows_body for blocks of <= 16 channels: lane 2 i + j of the two
 * vectors holds channel i (first vector; 8 + i second) of pixel 2 u + j of
 * pixel pair u, so one 8-byte broadcast (two wide pixels' quads) feeds both
 * vectors (weights [kq][2][8][2][4]: each channel's quad twice). Output
 * columns [ow0, ow0 + np) of every row in U = ceil(np / 2) pairs (a last
 * odd pixel's partner computed, not stored). */
static inline __attribute__((always_inline, target("avx512vbmi"))) void
conv_pairs_body(const uint8_t *xb, const int64_t *qoff, int64_t kq, const int8_t *wp, int nco,
                int64_t oh0, int64_t oh1, int64_t OW, int64_t PW, int64_t ow0, int np, int8_t *y,
                int64_t ys, const sqz_i8_epi *e, const int U) {
    /* after rows_store8's packs, lane m of pair q (< 4) of the first vector
     * is at byte 16 (m / 4) + 4 q + m % 4, of the second 64 further */
    uint8_t tb[128], dup[32];
    for (int c = 0; c < 16; c++)
        for (int j = 0; j < 8; j++) {
            const int m = 2 * (c % 8) + j % 2;
            tb[8 * c + j] = (uint8_t)((c < 8 ? 0 : 64) + 16 * (m / 4) + 4 * (j / 2) + m % 4);
        }
    for (int l = 0; l < 32; l++) dup[l] = (uint8_t)(l / 2); /* lane -> channel */
    const __m512i t0 = _mm512_loadu_si512(tb), t1 = _mm512_loadu_si512(tb + 64);
    const __m512i d0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)dup)),
                  d1 = _mm512_cvtepu8_epi32(
                      _mm_loadu_si128((const __m128i *)(const void *)(dup + 16)));
    const __m512 flo = _mm512_set1_ps((float)(e->lo - e->zp)),
                 fhi = _mm512_set1_ps((float)(e->hi - e->zp));
    const __m512i zp16 = _mm512_set1_epi16((short)e->zp);
    const __m512i lo8 = _mm512_set1_epi8((char)e->lo), hi8 = _mm512_set1_epi8((char)e->hi);
    const int c8 = e->iclamp && (e->lo > -128 || e->hi < 127);
    const __mmask16 mk = nco >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nco) - 1);
    const __m512i off = _mm512_maskz_loadu_epi32(mk, e->off);
    const __m512 sc = _mm512_maskz_loadu_ps(mk, &e->rq[0].s);
    const __m512i o0 = _mm512_permutexvar_epi32(d0, off), o1 = _mm512_permutexvar_epi32(d1, off);
    const __m512 s0 = _mm512_permutexvar_ps(d0, sc), s1 = _mm512_permutexvar_ps(d1, sc);
    for (int64_t oh = oh0; oh < oh1; oh++) {
        __m512i acc[2][8];
#pragma GCC unroll 8
        for (int u = 0; u < U; u++) acc[0][u] = o0, acc[1][u] = o1;
        const uint8_t *xr = xb + 4 * (oh * PW + ow0);
        const int8_t *wk = wp;
        for (int64_t k = 0; k < kq; k++, wk += 128) {
            const __m512i w0 = _mm512_loadu_si512(wk);
            const __m512i w1 = _mm512_loadu_si512(wk + 64);
            const uint8_t *xk = xr + qoff[k];
#pragma GCC unroll 8
            for (int u = 0; u < U; u++) {
                int64_t q2;
                memcpy(&q2, xk + 8 * u, 8);
                const __m512i b = _mm512_set1_epi64(q2);
                DPB(acc[0][u], b, w0);
                DPB(acc[1][u], b, w1);
            }
        }
#pragma GCC unroll 2
        for (int hf = 0; hf < 2; hf++) {
            if (4 * hf >= U) continue;
            __m512i v32[8];
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                const int u = 4 * hf + q;
                v32[q] =
                    u < U ? rows_rq(acc[0][u], s0, flo, fhi, e->iclamp) : _mm512_setzero_si512();
                v32[4 + q] =
                    u < U ? rows_rq(acc[1][u], s1, flo, fhi, e->iclamp) : _mm512_setzero_si512();
            }
            const int nh = np - 8 * hf < 8 ? np - 8 * hf : 8;
            rows_store8(v32, t0, t1, zp16, lo8, hi8, c8, nco, nh, y + oh * OW + ow0 + 8 * hf, ys);
        }
    }
}

#define ROWS_CASE(P)                                                                               \
    case P:                                                                                        \
        conv_rows_body(xb, qoff, kq, wp, nco, oh0, oh1, OW, PW, ow0, y, ys, e, P);                 \
        break;

__attribute__((target("avx512vbmi"))) void
sqz_i8_conv_rows_vnni(const uint8_t *xb, const int64_t *qoff, int64_t kq, const int8_t *wp, int nco,
                      int64_t oh0, int64_t oh1, int64_t OW, int64_t PW, int8_t *y, int64_t ys,
                      const sqz_i8_epi *e) {
    /* rows cut into equal segments of <= 8 columns (14: 7 + 7) */
    const int64_t nseg = (OW + 7) / 8, P = (OW + nseg - 1) / nseg;
    for (int64_t ow0 = 0; ow0 < OW; ow0 += P) {
        switch (OW - ow0 < P ? OW - ow0 : P) {
            ROWS_CASE(1)
            ROWS_CASE(2)
            ROWS_CASE(3)
            ROWS_CASE(4)
            ROWS_CASE(5)
            ROWS_CASE(6)
            ROWS_CASE(7)
        default:
            conv_rows_body(xb, qoff, kq, wp, nco, oh0, oh1, OW, PW, ow0, y, ys, e, 8);
        }
    }
}
#undef ROWS_CASE

#define PAIRS_CASE(U)                                                                              \
    case U:                                                                                        \
        conv_pairs_body(xb, qoff, kq, wp, nco, oh0, oh1, OW, PW, ow0, np, y, ys, e, U);            \
        break;

__attribute__((target("avx512vbmi"))) void
sqz_i8_conv_pairs_vnni(const uint8_t *xb, const int64_t *qoff, int64_t kq, const int8_t *wp,
                       int nco, int64_t oh0, int64_t oh1, int64_t OW, int64_t PW, int8_t *y,
                       int64_t ys, const sqz_i8_epi *e) {
    /* rows cut into equal segments of <= 16 columns (28: 14 + 14) */
    const int64_t nseg = (OW + 15) / 16, P = (OW + nseg - 1) / nseg;
    for (int64_t ow0 = 0; ow0 < OW; ow0 += P) {
        const int np = (int)(OW - ow0 < P ? OW - ow0 : P);
        switch ((np + 1) / 2) {
            PAIRS_CASE(1)
            PAIRS_CASE(2)
            PAIRS_CASE(3)
            PAIRS_CASE(4)
            PAIRS_CASE(5)
            PAIRS_CASE(6)
            PAIRS_CASE(7)
        default:
            conv_pairs_body(xb, qoff, kq, wp, nco, oh0, oh1, OW, PW, ow0, np, y, ys, e, 8);
        }
    }
}
#undef PAIRS_CASE

/* rows[k][0..T) int8 -> [k/4][T][4] u8 (x + 128): 4 rows interleaved bytewise. */
static void interleave_vnni(const int8_t *const *rows, int64_t Kp, int64_t T, void *xpv) {
    uint8_t *xp = xpv;
    const __m128i flip = _mm_set1_epi8((char)0x80);
    for (int64_t k = 0; k < Kp; k += 4) {
        const int8_t *r0 = rows[k], *r1 = rows[k + 1], *r2 = rows[k + 2], *r3 = rows[k + 3];
        uint8_t *d = xp + k * T;
        for (int64_t j = 0; j < T; j += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(r0 + j));
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(r1 + j));
            __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(r2 + j));
            __m128i dd = _mm_loadu_si128((const __m128i *)(const void *)(r3 + j));
            __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
            __m128i cd0 = _mm_unpacklo_epi8(c, dd), cd1 = _mm_unpackhi_epi8(c, dd);
            __m128i *o = (__m128i *)(void *)(d + j * 4);
            _mm_storeu_si128(o + 0, _mm_xor_si128(_mm_unpacklo_epi16(ab0, cd0), flip));
            _mm_storeu_si128(o + 1, _mm_xor_si128(_mm_unpackhi_epi16(ab0, cd0), flip));
            _mm_storeu_si128(o + 2, _mm_xor_si128(_mm_unpacklo_epi16(ab1, cd1), flip));
            _mm_storeu_si128(o + 3, _mm_xor_si128(_mm_unpackhi_epi16(ab1, cd1), flip));
        }
    }
}

/* interleave_vnni with VBMI: 64 pixels of 4 rows per step through two
 * levels of vpermt2b (byte pairs, then quads; sqz_i8_quad_plane_vbmi's
 * tables), 20 instructions instead of 80. */
__attribute__((target("avx512vbmi"))) void
sqz_i8_interleave_vbmi(const int8_t *const *rows, int64_t Kp, int64_t T, void *xpv) {
    uint8_t *xp = xpv;
    uint8_t tab[4][64];
    for (int m = 0; m < 32; m++) {
        tab[0][2 * m] = (uint8_t)m;
        tab[0][2 * m + 1] = (uint8_t)(64 + m);
        tab[1][2 * m] = (uint8_t)(32 + m);
        tab[1][2 * m + 1] = (uint8_t)(96 + m);
    }
    for (int m = 0; m < 16; m++)
        for (int b = 0; b < 2; b++) {
            tab[2][4 * m + b] = (uint8_t)(2 * m + b);
            tab[2][4 * m + 2 + b] = (uint8_t)(64 + 2 * m + b);
            tab[3][4 * m + b] = (uint8_t)(32 + 2 * m + b);
            tab[3][4 * m + 2 + b] = (uint8_t)(96 + 2 * m + b);
        }
    const __m512i t_lo = _mm512_loadu_si512(tab[0]), t_hi = _mm512_loadu_si512(tab[1]);
    const __m512i t_q0 = _mm512_loadu_si512(tab[2]), t_q1 = _mm512_loadu_si512(tab[3]);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int64_t k = 0; k < Kp; k += 4) {
        const int8_t *r0 = rows[k], *r1 = rows[k + 1], *r2 = rows[k + 2], *r3 = rows[k + 3];
        uint8_t *d = xp + k * T;
        int64_t j = 0;
        for (; j + 64 <= T; j += 64) {
            const __m512i a = _mm512_loadu_si512(r0 + j), b = _mm512_loadu_si512(r1 + j);
            const __m512i c = _mm512_loadu_si512(r2 + j), e = _mm512_loadu_si512(r3 + j);
            const __m512i ab = _mm512_permutex2var_epi8(a, t_lo, b),
                          cd = _mm512_permutex2var_epi8(c, t_lo, e);
            const __m512i ab2 = _mm512_permutex2var_epi8(a, t_hi, b),
                          cd2 = _mm512_permutex2var_epi8(c, t_hi, e);
            uint8_t *o = d + j * 4;
            _mm512_storeu_si512(o, _mm512_xor_si512(_mm512_permutex2var_epi8(ab, t_q0, cd), flip));
            _mm512_storeu_si512(o + 64,
                                _mm512_xor_si512(_mm512_permutex2var_epi8(ab, t_q1, cd), flip));
            _mm512_storeu_si512(o + 128,
                                _mm512_xor_si512(_mm512_permutex2var_epi8(ab2, t_q0, cd2), flip));
            _mm512_storeu_si512(o + 192,
                                _mm512_xor_si512(_mm512_permutex2var_epi8(ab2, t_q1, cd2), flip));
        }
        if (j < T) { /* T is a multiple of 32: one half step */
            const __mmask64 h = 0xFFFFFFFFull;
            const __m512i a = _mm512_maskz_loadu_epi8(h, r0 + j),
                          b = _mm512_maskz_loadu_epi8(h, r1 + j);
            const __m512i c = _mm512_maskz_loadu_epi8(h, r2 + j),
                          e = _mm512_maskz_loadu_epi8(h, r3 + j);
            const __m512i ab = _mm512_permutex2var_epi8(a, t_lo, b),
                          cd = _mm512_permutex2var_epi8(c, t_lo, e);
            uint8_t *o = d + j * 4;
            _mm512_storeu_si512(o, _mm512_xor_si512(_mm512_permutex2var_epi8(ab, t_q0, cd), flip));
            _mm512_storeu_si512(o + 64,
                                _mm512_xor_si512(_mm512_permutex2var_epi8(ab, t_q1, cd), flip));
        }
    }
}

/* ------------------------------------------------------------- gemm */

static void gemm_vnni(const void *av, int nrows, int64_t Kp, const int8_t *wp, int64_t n0,
                      int64_t nn, int8_t *y, int64_t N, const sqz_i8_epi *e) {
    const uint8_t *a = av;
    const uint8_t *a0 = a, *a1 = a + Kp, *a2 = a + 2 * Kp, *a3 = a + 3 * Kp; /* padded rows */
    __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
    int64_t kq = Kp / 4;
    if (nrows == 1) {
        /* one row (a classifier's Gemm): four independent chains over k
         * instead of three padded rows; wrapping adds of int32 partial sums
         * whose exact total fits */
        int64_t k = 0;
        for (; k + 4 <= kq; k += 4) {
            const int8_t *wk = wp + k * NB * 4;
            if (k + 20 <= kq) { /* 16 steps ahead (weights stream from L2 or beyond) */
                _mm_prefetch((const char *)(wk + 1024), _MM_HINT_T0);
                _mm_prefetch((const char *)(wk + 1088), _MM_HINT_T0);
                _mm_prefetch((const char *)(wk + 1152), _MM_HINT_T0);
                _mm_prefetch((const char *)(wk + 1216), _MM_HINT_T0);
            }
            c0 = _mm512_dpbusd_epi32(c0, bcast4(a0 + 4 * k), _mm512_loadu_si512(wk));
            c1 = _mm512_dpbusd_epi32(c1, bcast4(a0 + 4 * k + 4), _mm512_loadu_si512(wk + 64));
            c2 = _mm512_dpbusd_epi32(c2, bcast4(a0 + 4 * k + 8), _mm512_loadu_si512(wk + 128));
            c3 = _mm512_dpbusd_epi32(c3, bcast4(a0 + 4 * k + 12), _mm512_loadu_si512(wk + 192));
        }
        for (; k < kq; k++)
            c0 = _mm512_dpbusd_epi32(c0, bcast4(a0 + 4 * k), _mm512_loadu_si512(wp + k * NB * 4));
        c0 = _mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3));
        kq = 0;
    }
    for (int64_t k = 0; k < kq; k++) {
        __m512i w = _mm512_loadu_si512(wp + k * NB * 4);
        c0 = _mm512_dpbusd_epi32(c0, bcast4(a0 + 4 * k), w);
        c1 = _mm512_dpbusd_epi32(c1, bcast4(a1 + 4 * k), w);
        c2 = _mm512_dpbusd_epi32(c2, bcast4(a2 + 4 * k), w);
        c3 = _mm512_dpbusd_epi32(c3, bcast4(a3 + 4 * k), w);
    }
    /* channels along the lanes: per-lane offsets and multipliers */
    const __mmask16 mk = nn >= NB ? (__mmask16)0xFFFF : (__mmask16)((1u << nn) - 1);
    const __m512i off = _mm512_maskz_loadu_epi32(mk, e->off + n0);
    const __m512 sc = _mm512_maskz_loadu_ps(mk, &e->rq[n0].s);
    const __m512 flo = _mm512_set1_ps((float)(e->lo - e->zp)),
                 fhi = _mm512_set1_ps((float)(e->hi - e->zp));
    const __m512i zp = _mm512_set1_epi32(e->zp);
    const __m512i c[4] = {c0, c1, c2, c3};
    for (int r = 0; r < nrows; r++) {
        /* wrapping add of two int32 whose exact sum fits (int8_simd.h) */
        __m512i v = rqf16(_mm512_add_epi32(c[r], off), sc, flo, fhi);
        _mm_mask_storeu_epi8(y + r * N + n0, mk, _mm512_cvtepi32_epi8(_mm512_add_epi32(v, zp)));
    }
}

static void convert_vnni(const int8_t *x, int64_t K, int64_t Kp, int32_t zp_x, void *av) {
    uint8_t *a = av;
    const __m512i flip = _mm512_set1_epi8((char)0x80); /* x ^ 0x80 = x + 128 as u8 */
    int64_t k = 0;
    for (; k + 64 <= K; k += 64)
        _mm512_storeu_si512(a + k, _mm512_xor_si512(_mm512_loadu_si512(x + k), flip));
    for (; k < K; k++) a[k] = (uint8_t)(x[k] + 128);
    for (int64_t k = K; k < Kp; k++) a[k] = (uint8_t)(zp_x + 128);
}

/* ------------------------------------------------------------ depthwise */

/* Sign-extended bytes x[0], x[s], ..., x[15 s] for s = 1 or 2. */
static inline __m512i load16_s(const int8_t *x, int64_t s) {
    if (s == 1) return _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)x));
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)x));
    return _mm512_srai_epi32(_mm512_slli_epi32(w, 24), 24);
}

static void dw_plane_avx512(const int8_t *xpad, int64_t PW, const int8_t *w, int64_t kh, int64_t kw,
                            int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t OH, int64_t OW,
                            int32_t off, sqz_i8_rqv rq, int32_t zp, int32_t lo, int32_t hi,
                            int8_t *y, int32_t *accbuf) {
    (void)accbuf;
    __m512i o = _mm512_set1_epi32(off);
    for (int64_t oh = 0; oh < OH; oh++) {
        const int8_t *xr = xpad + oh * sh * PW;
        for (int64_t ow = 0; ow < OW; ow += 16) {
            __m512i acc = o;
            for (int64_t i = 0; i < kh; i++) {
                const int8_t *xi = xr + i * dh * PW + ow * sw;
                for (int64_t j = 0; j < kw; j++) {
                    /* x * w with vpmaddwd: (x, sign) int16 pair times (w, 0) */
                    __m512i wv = _mm512_set1_epi32((int32_t)(uint16_t)(int16_t)w[i * kw + j]);
                    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(load16_s(xi + j * dw, sw), wv));
                }
            }
            store16(y + oh * OW + ow, rq16(acc, &rq, zp, lo, hi), OW - ow);
        }
    }
}

const sqz_i8_isa sqz_i8_isa_vnni = {
    SQZ_I8_ISA_VNNI, 4, MR, NB, 1, 128, conv_vnni, interleave_vnni, gemm_vnni, convert_vnni,
    dw_plane_avx512,
};

/* Depthwise on VNNI: the plane holds u8 (x + 128); per kernel row, taps go
 * four at a time through one vpdpbusd: lane p of the window vector holds
 * bytes x[p s + 4 t .. p s + 4 t + 3] (built with vpermd + vpshufb from one
 * 64-byte load), the weights (w[4t .. 4t + 3], zero beyond kw) are
 * broadcast. w is packed [kh][ceil(kw / 4)][4]. Dilation along w must be 1;
 * sw is 1 or 2. */
/* Stride 1 along w with a quad buffer Q (accbuf): Q[b] = the 4 bytes
 * xpad[b .. b + 3] for every flat position b the taps read, built once per
 * plane with the same vpermd + vpshufb (16 quads per 64-byte load); then each
 * tap group is one load of 16 quads and one vpdpbusd, instead of a permute
 * and a shuffle (both on port 5, as is half of the vpdpbusd throughput) per
 * kernel row and group. Used with two tap groups per kernel row (k > 4:
 * bench_int8_kernels dw 5x5 240 @28 57 -> 69 GOPS); with one group (3x3) it
 * gained nothing (nor with two output rows sharing their loads) under the
 * fixed-point requantization, ~12 uops per 16 outputs (fp32 now: ~6).
 * The same products and sums as below: bit-identical. */
static void dw_plane_vnni_q(const int8_t *xpad, int64_t PW, const int8_t *w, int64_t kh, int64_t kw,
                            int64_t sh, int64_t dh, int64_t OH, int64_t OW, int32_t off,
                            sqz_i8_rqv rq, int32_t zp, int32_t lo, int32_t hi, int8_t *y,
                            int32_t *Q) {
    int64_t ng = (kw + 3) / 4, OWr = (OW + 31) / 32 * 32;
    /* reads: Q[b .. b + 31], b = oh sh PW + i dh PW + ow + 4 t */
    int64_t nq = (OH - 1) * sh * PW + (kh - 1) * dh * PW + OWr + 4 * (ng - 1);
    const __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6);
    const __m512i shuf =
        _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6));
    for (int64_t m = 0; m < nq; m += 16)
        _mm512_storeu_si512(
            Q + m,
            _mm512_shuffle_epi8(_mm512_permutexvar_epi32(idx, _mm512_loadu_si512(xpad + m)), shuf));
    __m512i o = _mm512_set1_epi32(off);
    for (int64_t oh = 0; oh < OH; oh++) {
        const int32_t *qr = Q + oh * sh * PW;
        for (int64_t ow = 0; ow < OW; ow += 32) {
            __m512i a0 = o, a1 = o;
            for (int64_t i = 0; i < kh; i++) {
                const int32_t *qi = qr + i * dh * PW + ow;
                for (int64_t t = 0; t < ng; t++) {
                    __m512i wb = bcast4(w + (i * ng + t) * 4);
                    a0 = _mm512_dpbusd_epi32(a0, _mm512_loadu_si512(qi + 4 * t), wb);
                    a1 = _mm512_dpbusd_epi32(a1, _mm512_loadu_si512(qi + 4 * t + 16), wb);
                }
            }
            rq_store32(y + oh * OW + ow, a0, a1, &rq, zp, lo, hi, OW - ow);
        }
    }
}

/* dw_plane_vnni for kernels up to 8 wide (ng <= 2 tap groups) with VBMI:
 * one vpermb builds the 16 quads of a tap group (x[p s + 4 t .. + 3],
 * p < 16) from a 64-byte load instead of vpermd + vpshufb per group; a
 * kernel row's groups and (stride 1) both 16-pixel halves share one load
 * (stride 2: two, 32 bytes apart). */
__attribute__((target("avx512vbmi"))) static void
dwk_plane_vbmi(const int8_t *xpad, int64_t PW, const int8_t *w, int64_t kh, int64_t ng, int64_t sh,
               int64_t sw, int64_t dh, int64_t OH, int64_t OW, int32_t off, sqz_i8_rqv rq,
               int32_t zp, int32_t lo, int32_t hi, int8_t *y) {
    uint8_t ib[4][64]; /* [half][group] */
    for (int hf = 0; hf < 2; hf++)
        for (int t = 0; t < 2; t++)
            for (int p = 0; p < 16; p++)
                for (int k = 0; k < 4; k++)
                    ib[2 * hf + t][4 * p + k] =
                        (uint8_t)((sw == 1 ? 16 * hf + p : p * sw) + 4 * t + k);
    const __m512i i00 = _mm512_loadu_si512(ib[0]), i01 = _mm512_loadu_si512(ib[1]);
    const __m512i i10 = _mm512_loadu_si512(ib[2]), i11 = _mm512_loadu_si512(ib[3]);
    const __m512i o = _mm512_set1_epi32(off);
    if (OW <= 16) {
        /* narrow planes (14x14 s2 outputs): the second half of the vector
         * takes the next output row (same taps, same sums) instead of
         * columns past OW, so a pass makes two rows */
        for (int64_t oh = 0; oh < OH; oh += 2) {
            const int two = oh + 1 < OH;
            const uint8_t *x0 = (const uint8_t *)xpad + oh * sh * PW,
                          *x1 = two ? x0 + sh * PW : x0; /* last odd row: computed twice */
            __m512i a0 = o, a1 = o, c0 = _mm512_setzero_si512(), c1 = c0;
            for (int64_t i = 0; i < kh; i++) {
                const __m512i v = _mm512_loadu_si512(x0 + i * dh * PW),
                              u = _mm512_loadu_si512(x1 + i * dh * PW);
                const __m512i wa = bcast4(w + i * ng * 4);
                a0 = _mm512_dpbusd_epi32(a0, _mm512_permutexvar_epi8(i00, v), wa);
                a1 = _mm512_dpbusd_epi32(a1, _mm512_permutexvar_epi8(i00, u), wa);
                if (ng > 1) {
                    const __m512i wb = bcast4(w + (i * ng + 1) * 4);
                    c0 = _mm512_dpbusd_epi32(c0, _mm512_permutexvar_epi8(i01, v), wb);
                    c1 = _mm512_dpbusd_epi32(c1, _mm512_permutexvar_epi8(i01, u), wb);
                }
            }
            rq_store2x16(y + oh * OW, two ? y + (oh + 1) * OW : NULL, _mm512_add_epi32(a0, c0),
                         _mm512_add_epi32(a1, c1), &rq, zp, lo, hi, OW);
        }
        return;
    }
    const int64_t h = sw == 1 ? 0 : 32; /* offset of the second half's load */
    /* one tap group (kw <= 4): |acc| <= |off| + 255 * 127 * 4 kh; when
     * |acc s| < 2^30 is certain, 64 outputs a step and the clamp after the
     * saturating packs (sqz_i8_epi.iclamp): one epilogue of ~20 uops per 64
     * outputs instead of two rq_store32 of ~15 per 32 (two tap groups, 5x5,
     * ran ~25% slower this way, and rows of <= 32 outputs ~7%: kept on the
     * loop below) */
    const double accmax = fabs((double)off) + 32385.0 * (double)(kh * ng * 4);
    if (ng == 1 && OW > 32 && accmax * (double)rq.s < 1073741824.0) {
        const __m512 sv = _mm512_set1_ps(rq.s);
        const __m512i zp16 = _mm512_set1_epi16((short)zp);
        const __m512i lo8 = _mm512_set1_epi8((char)lo), hi8 = _mm512_set1_epi8((char)hi);
        const __m512i perm =
            _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        for (int64_t oh = 0; oh < OH; oh++) {
            const uint8_t *xr = (const uint8_t *)xpad + oh * sh * PW;
            int8_t *yr = y + oh * OW;
            for (int64_t ow = 0; ow < OW; ow += 64) {
                /* the second 32 outputs only when they are stored (the
                 * 32-step loop's reads) */
                const int two = ow + 32 < OW;
                __m512i a0 = o, a1 = o, a2 = o, a3 = o;
                if (two) {
                    for (int64_t i = 0; i < kh; i++) {
                        const uint8_t *xi = xr + i * dh * PW + ow * sw, *xj = xi + 32 * sw;
                        const __m512i v = _mm512_loadu_si512(xi),
                                      u = h ? _mm512_loadu_si512(xi + h) : v;
                        const __m512i v2 = _mm512_loadu_si512(xj),
                                      u2 = h ? _mm512_loadu_si512(xj + h) : v2;
                        const __m512i wa = bcast4(w + i * 4);
                        a0 = _mm512_dpbusd_epi32(a0, _mm512_permutexvar_epi8(i00, v), wa);
                        a1 = _mm512_dpbusd_epi32(a1, _mm512_permutexvar_epi8(i10, u), wa);
                        a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(i00, v2), wa);
                        a3 = _mm512_dpbusd_epi32(a3, _mm512_permutexvar_epi8(i10, u2), wa);
                    }
                } else {
                    for (int64_t i = 0; i < kh; i++) {
                        const uint8_t *xi = xr + i * dh * PW + ow * sw;
                        const __m512i v = _mm512_loadu_si512(xi),
                                      u = h ? _mm512_loadu_si512(xi + h) : v;
                        const __m512i wa = bcast4(w + i * 4);
                        a0 = _mm512_dpbusd_epi32(a0, _mm512_permutexvar_epi8(i00, v), wa);
                        a1 = _mm512_dpbusd_epi32(a1, _mm512_permutexvar_epi8(i10, u), wa);
                    }
                }
#define RQI(v) _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(v), sv))
                const __m512i h01 = _mm512_adds_epi16(_mm512_packs_epi32(RQI(a0), RQI(a1)), zp16);
                const __m512i h23 =
                    two ? _mm512_adds_epi16(_mm512_packs_epi32(RQI(a2), RQI(a3)), zp16) : h01;
#undef RQI
                /* dword j of 128-bit lane L: outputs 4 L .. of block j (16
                 * outputs each); perm puts them at dword 4 j + L */
                const __m512i r = _mm512_permutexvar_epi32(
                    perm, _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(h01, h23), lo8), hi8));
                const int64_t n = OW - ow;
                _mm512_mask_storeu_epi8(yr + ow,
                                        n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1), r);
            }
        }
        return;
    }
    for (int64_t oh = 0; oh < OH; oh++) {
        const uint8_t *xr = (const uint8_t *)xpad + oh * sh * PW;
        int8_t *yr = y + oh * OW;
        for (int64_t ow = 0; ow < OW; ow += 32) {
            __m512i a0 = o, a1 = o, c0 = _mm512_setzero_si512(), c1 = c0;
            for (int64_t i = 0; i < kh; i++) {
                const uint8_t *xi = xr + i * dh * PW + ow * sw;
                const __m512i v = _mm512_loadu_si512(xi), u = h ? _mm512_loadu_si512(xi + h) : v;
                const __m512i wa = bcast4(w + i * ng * 4);
                a0 = _mm512_dpbusd_epi32(a0, _mm512_permutexvar_epi8(i00, v), wa);
                a1 = _mm512_dpbusd_epi32(a1, _mm512_permutexvar_epi8(i10, u), wa);
                if (ng > 1) {
                    const __m512i wb = bcast4(w + (i * ng + 1) * 4);
                    c0 = _mm512_dpbusd_epi32(c0, _mm512_permutexvar_epi8(i01, v), wb);
                    c1 = _mm512_dpbusd_epi32(c1, _mm512_permutexvar_epi8(i11, u), wb);
                }
            }
            /* wrapping int32 adds of partial sums whose exact total fits */
            rq_store32(yr + ow, _mm512_add_epi32(a0, c0), _mm512_add_epi32(a1, c1), &rq, zp, lo, hi,
                       OW - ow);
        }
    }
}

static void dw_plane_vnni(const int8_t *xpad, int64_t PW, const int8_t *w, int64_t kh, int64_t kw,
                          int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t OH, int64_t OW,
                          int32_t off, sqz_i8_rqv rq, int32_t zp, int32_t lo, int32_t hi, int8_t *y,
                          int32_t *accbuf) {
    (void)dw;
    int64_t ng = (kw + 3) / 4;
    if (ng <= 2 && sqz_cpu_has_avx512_vbmi()) {
        dwk_plane_vbmi(xpad, PW, w, kh, ng, sh, sw, dh, OH, OW, off, rq, zp, lo, hi, y);
        return;
    }
    if (accbuf && sw == 1 && kw > 4) {
        dw_plane_vnni_q(xpad, PW, w, kh, kw, sh, dh, OH, OW, off, rq, zp, lo, hi, y, accbuf);
        return;
    }
    const __m512i idx = sw == 1 ? _mm512_setr_epi32(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6)
                                : _mm512_setr_epi32(0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9);
    const __m512i shuf =
        sw == 1
            ? _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6))
            : _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9));
    __m512i o = _mm512_set1_epi32(off);
    if (kh == 3 && ng == 1) { /* 3x3 (the common case): weights in registers, unrolled */
        const __m512i w0 = bcast4(w), w1 = bcast4(w + 4), w2 = bcast4(w + 8);
        const int64_t r1 = dh * PW, r2 = 2 * dh * PW;
        for (int64_t oh = 0; oh < OH; oh++) {
            const uint8_t *xr = (const uint8_t *)xpad + oh * sh * PW;
            int8_t *yr = y + oh * OW;
            for (int64_t ow = 0; ow < OW; ow += 32) {
                const uint8_t *xi = xr + ow * sw;
#define QV(p) _mm512_shuffle_epi8(_mm512_permutexvar_epi32(idx, _mm512_loadu_si512(p)), shuf)
                __m512i a0 = _mm512_dpbusd_epi32(o, QV(xi), w0);
                __m512i a1 = _mm512_dpbusd_epi32(o, QV(xi + 16 * sw), w0);
                a0 = _mm512_dpbusd_epi32(a0, QV(xi + r1), w1);
                a1 = _mm512_dpbusd_epi32(a1, QV(xi + r1 + 16 * sw), w1);
                a0 = _mm512_dpbusd_epi32(a0, QV(xi + r2), w2);
                a1 = _mm512_dpbusd_epi32(a1, QV(xi + r2 + 16 * sw), w2);
#undef QV
                rq_store32(yr + ow, a0, a1, &rq, zp, lo, hi, OW - ow);
            }
        }
        return;
    }
    for (int64_t oh = 0; oh < OH; oh++) {
        const uint8_t *xr = (const uint8_t *)xpad + oh * sh * PW;
        /* two blocks of 16 pixels per step: independent accumulator chains */
        for (int64_t ow = 0; ow < OW; ow += 32) {
            __m512i a0 = o, a1 = o;
            for (int64_t i = 0; i < kh; i++) {
                const uint8_t *xi = xr + i * dh * PW + ow * sw;
                for (int64_t t = 0; t < ng; t++) {
                    __m512i wb = bcast4(w + (i * ng + t) * 4);
                    __m512i v0 = _mm512_loadu_si512(xi + 4 * t);
                    __m512i v1 = _mm512_loadu_si512(xi + 4 * t + 16 * sw);
                    a0 = _mm512_dpbusd_epi32(
                        a0, _mm512_shuffle_epi8(_mm512_permutexvar_epi32(idx, v0), shuf), wb);
                    a1 = _mm512_dpbusd_epi32(
                        a1, _mm512_shuffle_epi8(_mm512_permutexvar_epi32(idx, v1), shuf), wb);
                }
            }
            rq_store32(y + oh * OW + ow, a0, a1, &rq, zp, lo, hi, OW - ow);
        }
    }
}

const sqz_i8_dw_plane sqz_i8_dw_plane_vnni = dw_plane_vnni;

/* Small planes on VNNI (PW <= 64, OW <= 64), planes [pl0, pl1) of X / Y
 * (channel = plane % n_co): the zp-bordered u8 copy is built with one
 * 64-byte fill and one masked store per row (no libc calls), the outputs are
 * computed "wide" (one flat row of L pixels, as in int8_dw.c) into tmp and
 * compacted into y with one masked load / store per row. Two buffers of
 * each: plane i + 1 is packed and plane i - 1 compacted around the
 * computation of plane i, so no load waits on a just-written masked store.
 * The same accumulation and requantization as dw_plane_vnni. */
static void small_pack(const int8_t *x, const sqz_i8_dw_geom *gm, uint8_t *buf) {
    const int64_t PW = gm->PW, W = gm->W;
    const __m512i zb = _mm512_set1_epi8((char)gm->zb), flip = _mm512_set1_epi8((char)0x80);
    const __mmask64 mw = W >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << W) - 1);
    for (int64_t r = 0; r < gm->PH; r++) {
        uint8_t *d = buf + r * PW;
        _mm512_storeu_si512(d, zb); /* overlaps the next row, which is written after */
        int64_t h = r - gm->pt;
        if (h >= 0 && h < gm->H) {
            __m512i v = _mm512_maskz_loadu_epi8(mw, x + h * W);
            _mm512_mask_storeu_epi8(d + gm->pl, mw, _mm512_xor_si512(v, flip));
        }
    }
}

/* The first group's accumulator of band bd (the general loop's a0). */
__attribute__((target("avx512vbmi"))) static inline __m512i
gather_band1(const int8_t *x, const int32_t *bd, const uint8_t *ib, int64_t nq, const int8_t *wc,
             __m512i o, __m512i zx, __m512i flip) {
    const int64_t len = bd[1];
    const __mmask64 m0 = len >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << len) - 1);
    const __mmask64 m1 = len >= 128  ? ~(__mmask64)0
                         : len <= 64 ? (__mmask64)0
                                     : (((__mmask64)1 << (len - 64)) - 1);
    const __m512i lo = _mm512_xor_si512(_mm512_mask_loadu_epi8(zx, m0, x + bd[0]), flip);
    const __m512i hi = len > 64
                           ? _mm512_xor_si512(_mm512_mask_loadu_epi8(zx, m1, x + bd[0] + 64), flip)
                           : _mm512_xor_si512(zx, flip);
    __m512i acc = o;
    if (len <= 63) /* one-source permutes (see sqz_i8_dw_gather_vbmi) */
        for (int64_t q = 0; q < nq; q++)
            acc = _mm512_dpbusd_epi32(acc,
                                      _mm512_permutexvar_epi8(_mm512_loadu_si512(ib + q * 64), lo),
                                      bcast4(wc + 4 * q));
    else
        for (int64_t q = 0; q < nq; q++)
            acc = _mm512_dpbusd_epi32(
                acc, _mm512_permutex2var_epi8(lo, _mm512_loadu_si512(ib + q * 64), hi),
                bcast4(wc + 4 * q));
    return acc;
}

/* The general path of sqz_i8_dw_gather_vbmi: band bd (index bytes ib) of
 * planes [pl0, pl1), band-major (the band's masks and index rows are the
 * same for every plane: set up once, and the plane loop has no branch on
 * them). NG groups (a constant), ONE: a band of <= 63 bytes, one-source
 * vpermb (its index bits 0-5; border index 127 -> byte 63, loaded as zb)
 * instead of vpermi2b, which costs ~2x the port-5 time (the depthwise's
 * bottleneck: one permute per dpbusd). */
static inline __attribute__((always_inline, target("avx512vbmi"))) void
gather_band_planes(const sqz_i8_dw_gather *a, const int32_t *bd, const uint8_t *ib, int64_t pl0,
                   int64_t pl1, const int NG, const int ONE) {
    const int64_t nq = a->nq, len = bd[1], n = bd[3];
    const __m512i flip = _mm512_set1_epi8((char)0x80), zx = _mm512_set1_epi8((char)(a->zb ^ 0x80));
    const __m512 flo = _mm512_set1_ps((float)(a->lo - a->zp)),
                 fhi = _mm512_set1_ps((float)(a->hi - a->zp));
    const __m512i zp16 = _mm512_set1_epi16((short)a->zp);
    const __m512i lo8 = _mm512_set1_epi8((char)a->lo), hi8 = _mm512_set1_epi8((char)a->hi);
    const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __mmask64 m0 = len >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << len) - 1);
    const __mmask64 m1 = len >= 128  ? ~(__mmask64)0
                         : len <= 64 ? (__mmask64)0
                                     : (((__mmask64)1 << (len - 64)) - 1);
    const __mmask64 ms = n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
    const uint8_t *i1 = ib + nq * 64, *i2 = i1 + nq * 64, *i3 = i2 + nq * 64;
    int64_t c = pl0 % a->n_co;
    for (int64_t pl = pl0; pl < pl1; pl++, c = c + 1 == a->n_co ? 0 : c + 1) {
        const int8_t *x = a->X + pl * a->in_sp + bd[0];
        const __m512i lo = _mm512_xor_si512(_mm512_mask_loadu_epi8(zx, m0, x), flip);
        /* no pointer past the plane when the band fits in lo */
        const __m512i hi = ONE || len <= 64
                               ? _mm512_xor_si512(zx, flip)
                               : _mm512_xor_si512(_mm512_mask_loadu_epi8(zx, m1, x + 64), flip);
        const int8_t *wc = a->w + c * nq * 4;
        __m512i a0 = _mm512_set1_epi32(a->off[c]), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t q = 0; q < nq; q++) {
            const __m512i wv = bcast4(wc + 4 * q);
#define GX(t)                                                                                      \
    (ONE ? _mm512_permutexvar_epi8(_mm512_loadu_si512(t), lo)                                      \
         : _mm512_permutex2var_epi8(lo, _mm512_loadu_si512(t), hi))
            DPB(a0, GX(ib + q * 64), wv);
            if (NG > 1) DPB(a1, GX(i1 + q * 64), wv);
            if (NG > 2) DPB(a2, GX(i2 + q * 64), wv);
            if (NG > 3) DPB(a3, GX(i3 + q * 64), wv);
#undef GX
        }
        /* the band's (<= 64) outputs in one store: after the two packs
         * dword j of 128-bit lane L holds outputs 4 L .. 4 L + 3 of group
         * j, which perm puts at dword 4 j + L (unused groups: lanes past n) */
        const __m512 sv = _mm512_set1_ps(a->rq[c].s);
        int8_t *y = a->Y + pl * a->out_sp + bd[2];
        __m512i h01, h23;
        if (a->iclamp) { /* clamp after the saturating packs (sqz_i8_epi.iclamp) */
#define RQI(v) _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(v), sv))
            h01 = _mm512_adds_epi16(_mm512_packs_epi32(RQI(a0), RQI(NG > 1 ? a1 : a0)), zp16);
            h23 = NG <= 2
                      ? h01
                      : _mm512_adds_epi16(_mm512_packs_epi32(RQI(a2), RQI(NG > 3 ? a3 : a2)), zp16);
#undef RQI
            const __m512i v = _mm512_permutexvar_epi32(
                perm, _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(h01, h23), lo8), hi8));
            _mm512_mask_storeu_epi8(y, ms, v);
            continue;
        }
        h01 = _mm512_add_epi16(
            _mm512_packs_epi32(rqf16(a0, sv, flo, fhi), rqf16(NG > 1 ? a1 : a0, sv, flo, fhi)),
            zp16);
        h23 = NG <= 2 ? h01
                      : _mm512_add_epi16(_mm512_packs_epi32(rqf16(a2, sv, flo, fhi),
                                                            rqf16(NG > 3 ? a3 : a2, sv, flo, fhi)),
                                         zp16);
        _mm512_mask_storeu_epi8(y, ms,
                                _mm512_permutexvar_epi32(perm, _mm512_packs_epi16(h01, h23)));
    }
}

__attribute__((target("avx512vbmi"))) void sqz_i8_dw_gather_vbmi(const sqz_i8_dw_gather *a,
                                                                 int64_t pl0, int64_t pl1) {
    const int64_t nq = a->nq;
    /* bytes past the band's input (at least byte 127) load as zp_x: x + 128 = zb */
    const __m512i flip = _mm512_set1_epi8((char)0x80), zx = _mm512_set1_epi8((char)(a->zb ^ 0x80));
    const __m512i zp16 = _mm512_set1_epi16((short)a->zp);
    const __m512i lo8 = _mm512_set1_epi8((char)a->lo), hi8 = _mm512_set1_epi8((char)a->hi);
    /* four one-group bands: after the packs, output i of band j sits at
     * byte 16 (i / 4) + 4 j + i % 4; cidx gathers the 4 g1 outputs into
     * consecutive bytes (the other groups' perm and the compaction in one) */
    const int64_t g1 = a->iclamp && a->g1 > 0 && a->g1 <= 16 ? a->g1 : 0;
    int64_t b0 = 0; /* the bands before b0 go four at a time (the same for every plane) */
    if (g1)
        while (b0 + 4 <= a->nb && a->band[5 * (b0 + 3) + 3] == g1) b0 += 4;
    if (b0 > 0) {
        uint8_t cb[64];
        for (int k = 0; k < 64; k++)
            cb[k] = (uint8_t)(16 * (k % g1 / 4) + 4 * (k / g1 % 4) + k % g1 % 4);
        const __m512i cidx = _mm512_loadu_si512(cb);
        const __mmask64 m4 = g1 == 16 ? ~(__mmask64)0 : (((__mmask64)1 << (4 * g1)) - 1);
        for (int64_t pl = pl0; pl < pl1; pl++) {
            const int64_t c = pl % a->n_co;
            const int8_t *x = a->X + pl * a->in_sp;
            int8_t *y = a->Y + pl * a->out_sp;
            const int8_t *wc = a->w + c * nq * 4;
            const __m512i o = _mm512_set1_epi32(a->off[c]);
            const __m512 sv = _mm512_set1_ps(a->rq[c].s);
            for (int64_t b = 0; b < b0; b += 4) {
                const int32_t *bd = a->band + 5 * b;
                const uint8_t *ib = a->idx + (size_t)b * 4 * nq * 64;
                const size_t bs = (size_t)4 * nq * 64; /* index bytes per band */
                const __m512i a0 = gather_band1(x, bd, ib, nq, wc, o, zx, flip);
                const __m512i a1 = gather_band1(x, bd + 5, ib + bs, nq, wc, o, zx, flip);
                const __m512i a2 = gather_band1(x, bd + 10, ib + 2 * bs, nq, wc, o, zx, flip);
                const __m512i a3 = gather_band1(x, bd + 15, ib + 3 * bs, nq, wc, o, zx, flip);
#define RQI(v) _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(v), sv))
                const __m512i h01 = _mm512_adds_epi16(_mm512_packs_epi32(RQI(a0), RQI(a1)), zp16);
                const __m512i h23 = _mm512_adds_epi16(_mm512_packs_epi32(RQI(a2), RQI(a3)), zp16);
#undef RQI
                const __m512i v = _mm512_permutexvar_epi8(
                    cidx, _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(h01, h23), lo8), hi8));
                _mm512_mask_storeu_epi8(y + bd[2], m4, v);
            }
        }
    }
    for (int64_t b = b0; b < a->nb; b++) {
        const int32_t *bd = a->band + 5 * b;
        const uint8_t *ib = a->idx + (size_t)b * 4 * nq * 64;
        const int one = bd[1] <= 63;
        switch (bd[4] * 2 + one) {
        case 2:
            gather_band_planes(a, bd, ib, pl0, pl1, 1, 0);
            break;
        case 3:
            gather_band_planes(a, bd, ib, pl0, pl1, 1, 1);
            break;
        case 4:
            gather_band_planes(a, bd, ib, pl0, pl1, 2, 0);
            break;
        case 5:
            gather_band_planes(a, bd, ib, pl0, pl1, 2, 1);
            break;
        case 6:
            gather_band_planes(a, bd, ib, pl0, pl1, 3, 0);
            break;
        case 7:
            gather_band_planes(a, bd, ib, pl0, pl1, 3, 1);
            break;
        case 8:
            gather_band_planes(a, bd, ib, pl0, pl1, 4, 0);
            break;
        default:
            gather_band_planes(a, bd, ib, pl0, pl1, 4, 1);
            break;
        }
    }
}

/* ------------------------------- depthwise 3-row kernels, rows of <= 16 */

/* The tap quads of input row ih of plane x (zb outside the plane): lane ow
 * holds the bytes ix[4 ow .. 4 ow + 3] of the row (u8 x + 128; index 127
 * -> byte 63, past the row's <= 63 bytes: zb). */
static inline __attribute__((always_inline, target("avx512vbmi"))) __m512i
row_quads(const int8_t *x, int64_t ih, int64_t H, int64_t W, __mmask64 m0, __m512i ix, __m512i zx,
          __m512i zu) {
    if (ih < 0 || ih >= H) return zu;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    return _mm512_permutexvar_epi8(
        ix, _mm512_xor_si512(_mm512_mask_loadu_epi8(zx, m0, x + ih * W), flip));
}

/* The 3-row kernels' four accumulator vectors requantized and packed to
 * bytes (lanes in pack order): IC, the integer-clamp form (round, add the
 * zero point, saturate, clamp to [lo8, hi8]); else rqf16's float clamp. */
static inline __attribute__((always_inline)) __m512i
dw_rows_requant4(const __m512i acc[4], const int IC, __m512 sv, __m512i zp16, __m512i lo8,
                 __m512i hi8, __m512 flo, __m512 fhi) {
    if (IC) {
#define RQI(t) _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(t), sv))
        const __m512i h01 = _mm512_adds_epi16(_mm512_packs_epi32(RQI(acc[0]), RQI(acc[1])), zp16);
        const __m512i h23 = _mm512_adds_epi16(_mm512_packs_epi32(RQI(acc[2]), RQI(acc[3])), zp16);
#undef RQI
        return _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(h01, h23), lo8), hi8);
    }
    const __m512i h01 = _mm512_add_epi16(
        _mm512_packs_epi32(rqf16(acc[0], sv, flo, fhi), rqf16(acc[1], sv, flo, fhi)), zp16);
    const __m512i h23 = _mm512_add_epi16(
        _mm512_packs_epi32(rqf16(acc[2], sv, flo, fhi), rqf16(acc[3], sv, flo, fhi)), zp16);
    return _mm512_packs_epi16(h01, h23);
}

static inline __attribute__((always_inline, target("avx512vbmi"))) void
dw_rows_planes(const sqz_i8_dw_rows *a, int64_t pl0, int64_t pl1, const int SH, const int IC) {
    const int64_t H = a->H, W = a->W, OH = a->OH, OW = a->OW, pt = a->pt;
    const __mmask64 m0 = ((__mmask64)1 << W) - 1; /* W <= 63 */
    const __m512i ix = _mm512_loadu_si512(a->idx), cidx = _mm512_loadu_si512(a->cidx);
    const __m512i zx = _mm512_set1_epi8((char)(a->zb ^ 0x80)), zu = _mm512_set1_epi8((char)a->zb);
    const __m512i zp16 = _mm512_set1_epi16((short)a->zp);
    const __m512i lo8 = _mm512_set1_epi8((char)a->lo), hi8 = _mm512_set1_epi8((char)a->hi);
    const __m512 flo = _mm512_set1_ps((float)(a->lo - a->zp)),
                 fhi = _mm512_set1_ps((float)(a->hi - a->zp));
    int64_t c = pl0 % a->n_co;
    for (int64_t pl = pl0; pl < pl1; pl++, c = c + 1 == a->n_co ? 0 : c + 1) {
        const int8_t *x = a->X + pl * a->in_sp;
        int8_t *y = a->Y + pl * a->out_sp;
        const int8_t *wc = a->w + c * 12;
        const __m512i w0 = bcast4(wc), w1 = bcast4(wc + 4), w2 = bcast4(wc + 8);
        const __m512i o = _mm512_set1_epi32(a->off[c]);
        const __m512 sv = _mm512_set1_ps(a->rq[c].s);
        /* q0, q1: the quads of input rows oh SH - pt and + 1 (SH 1) */
        __m512i q0 = row_quads(x, -pt, H, W, m0, ix, zx, zu), q1 = q0;
        if (SH == 1) q1 = row_quads(x, 1 - pt, H, W, m0, ix, zx, zu);
        for (int64_t oh0 = 0; oh0 < OH; oh0 += 4) {
            __m512i acc[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const int64_t oh = oh0 + j;
                if (oh >= OH) {
                    acc[j] = o;
                    continue;
                }
                __m512i q2;
                if (SH == 1) {
                    q2 = row_quads(x, oh + 2 - pt, H, W, m0, ix, zx, zu);
                } else {
                    q1 = row_quads(x, 2 * oh + 1 - pt, H, W, m0, ix, zx, zu);
                    q2 = row_quads(x, 2 * oh + 2 - pt, H, W, m0, ix, zx, zu);
                }
                __m512i s = o;
                DPB(s, q0, w0);
                DPB(s, q1, w1);
                DPB(s, q2, w2);
                acc[j] = s;
                if (SH == 1)
                    q0 = q1, q1 = q2;
                else
                    q0 = q2;
            }
            /* the gather kernel's four one-row bands: cidx puts output i
             * of row oh0 + j (byte 16 (i / 4) + 4 j + i % 4 after the packs)
             * at byte j OW + i */
            const __m512i v = _mm512_permutexvar_epi8(
                cidx, dw_rows_requant4(acc, IC, sv, zp16, lo8, hi8, flo, fhi));
            const int64_t n = (OH - oh0 < 4 ? OH - oh0 : 4) * OW;
            _mm512_mask_storeu_epi8(y + oh0 * OW,
                                    n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1), v);
        }
    }
}

/* Two output rows a vector (sqz_i8_dw_rows.pidx): the whole plane (<= 63
 * bytes) in one register, the quads of input rows m - pt, m + 1 - pt one
 * vpermb of it by table m; output rows 2 g, 2 g + 1 read tables 2 g,
 * 2 g + 1, 2 g + 2 (table 2 g + 2 serves the next pair too). */
static inline __attribute__((always_inline, target("avx512vbmi"))) void
dw_rows2_planes(const sqz_i8_dw_rows *a, int64_t pl0, int64_t pl1, const int IC) {
    const int64_t OH = a->OH, OW = a->OW;
    const __mmask64 mx = ((__mmask64)1 << (a->H * a->W)) - 1; /* <= 63 bytes */
    const __m512i cidx = _mm512_loadu_si512(a->cidx), flip = _mm512_set1_epi8((char)0x80);
    const __m512i zx = _mm512_set1_epi8((char)(a->zb ^ 0x80));
    const __m512i zp16 = _mm512_set1_epi16((short)a->zp);
    const __m512i lo8 = _mm512_set1_epi8((char)a->lo), hi8 = _mm512_set1_epi8((char)a->hi);
    const __m512 flo = _mm512_set1_ps((float)(a->lo - a->zp)),
                 fhi = _mm512_set1_ps((float)(a->hi - a->zp));
    const uint8_t *pt = a->pidx;
    int64_t c = pl0 % a->n_co;
    for (int64_t pl = pl0; pl < pl1; pl++, c = c + 1 == a->n_co ? 0 : c + 1) {
        const __m512i xv =
            _mm512_xor_si512(_mm512_mask_loadu_epi8(zx, mx, a->X + pl * a->in_sp), flip);
        int8_t *y = a->Y + pl * a->out_sp;
        const int8_t *wc = a->w + c * 12;
        const __m512i w0 = bcast4(wc), w1 = bcast4(wc + 4), w2 = bcast4(wc + 8);
        const __m512i o = _mm512_set1_epi32(a->off[c]);
        const __m512 sv = _mm512_set1_ps(a->rq[c].s);
        __m512i q0 = _mm512_permutexvar_epi8(_mm512_loadu_si512(pt), xv);
        for (int64_t oh0 = 0; oh0 < OH; oh0 += 8) {
            __m512i acc[4];
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const int64_t g = oh0 / 2 + j;
                if (2 * g >= OH) {
                    acc[j] = o;
                    continue;
                }
                const __m512i q1 =
                    _mm512_permutexvar_epi8(_mm512_loadu_si512(pt + 64 * (2 * g + 1)), xv);
                const __m512i q2 =
                    _mm512_permutexvar_epi8(_mm512_loadu_si512(pt + 64 * (2 * g + 2)), xv);
                __m512i sum = o;
                DPB(sum, q0, w0);
                DPB(sum, q1, w1);
                DPB(sum, q2, w2);
                acc[j] = sum;
                q0 = q2;
            }
            const __m512i v = _mm512_permutexvar_epi8(
                cidx, dw_rows_requant4(acc, IC, sv, zp16, lo8, hi8, flo, fhi));
            const int64_t n = (OH - oh0 < 8 ? OH - oh0 : 8) * OW;
            _mm512_mask_storeu_epi8(y + oh0 * OW, n >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1,
                                    v);
        }
    }
}

__attribute__((target("avx512vbmi"))) void sqz_i8_dw_rows_vbmi(const sqz_i8_dw_rows *a, int64_t pl0,
                                                               int64_t pl1) {
    if (a->pidx)
        a->iclamp ? dw_rows2_planes(a, pl0, pl1, 1) : dw_rows2_planes(a, pl0, pl1, 0);
    else if (a->sh == 1)
        a->iclamp ? dw_rows_planes(a, pl0, pl1, 1, 1) : dw_rows_planes(a, pl0, pl1, 1, 0);
    else
        a->iclamp ? dw_rows_planes(a, pl0, pl1, 2, 1) : dw_rows_planes(a, pl0, pl1, 2, 0);
}

void sqz_i8_even_bytes_avx512(const int8_t *src, int64_t n, int8_t *dst) {
    int64_t j = 0;
    for (; j + 32 < n; j += 32) /* reads src[2 j .. 2 j + 63], 2 j + 63 <= 2 n - 2 */
        _mm256_storeu_si256((__m256i *)(void *)(dst + j),
                            _mm512_cvtepi16_epi8(_mm512_loadu_si512(src + 2 * j)));
    if (j < n) { /* rem <= 32: the 2 rem - 1 bytes up to the last one read */
        const int64_t rem = n - j;
        const __m512i v = _mm512_maskz_loadu_epi8(((__mmask64)1 << (2 * rem - 1)) - 1, src + 2 * j);
        _mm256_mask_storeu_epi8(dst + j, (__mmask32)(((uint64_t)1 << rem) - 1),
                                _mm512_cvtepi16_epi8(v));
    }
}

/* n bytes src -> dst, 64 at a time, the tail masked (no libc call: rows of
 * 7..56 bytes are the common case) */
static inline void copy_bytes(const int8_t *src, int8_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, _mm512_loadu_si512(src + i));
    if (i < n) {
        const __mmask64 m = ((__mmask64)1 << (n - i)) - 1;
        _mm512_mask_storeu_epi8(dst + i, m, _mm512_maskz_loadu_epi8(m, src + i));
    }
}

void sqz_i8_phase_plane_avx512(const int8_t *x, int64_t H, int64_t W, int64_t sh, int64_t sw,
                               int64_t fh, int64_t fw, int64_t pt, int64_t pl, int64_t PH,
                               int64_t PW, int8_t zp, int8_t *d) {
    const __m512i zv = _mm512_set1_epi8(zp);
    /* columns j with 0 <= j sw + fw - pl < W: [j0, j1) */
    const int64_t c0 = pl - fw, j0r = c0 > 0 ? (c0 + sw - 1) / sw : 0;
    int64_t j1 = (W + pl - fw + sw - 1) / sw;
    if (j1 > PW) j1 = PW;
    const int64_t j0 = j0r > j1 ? j1 : j0r, n = j1 - j0;
    for (int64_t i = 0; i < PH; i++) {
        int8_t *row = d + i * PW;
        int64_t k = 0;
        for (; k + 64 <= PW; k += 64) _mm512_storeu_si512(row + k, zv);
        if (k < PW) _mm512_mask_storeu_epi8(row + k, ((__mmask64)1 << (PW - k)) - 1, zv);
        const int64_t h = i * sh + fh - pt;
        if (h < 0 || h >= H || n <= 0) continue;
        const int8_t *src = x + h * W + j0 * sw + fw - pl;
        if (sw == 1)
            copy_bytes(src, row + j0, n);
        else
            sqz_i8_even_bytes_avx512(src, n, row + j0);
    }
}

__attribute__((target("avx512vbmi"))) void
sqz_i8_quad_plane_vbmi(const int8_t *const x[4], int64_t H, int64_t W, int64_t sh, int64_t sw,
                       int64_t fh, int64_t fw, int64_t pt, int64_t pl, int64_t PH, int64_t PW,
                       int8_t zp, uint8_t *d) {
    const __m512i zv = _mm512_set1_epi8(zp), flip = _mm512_set1_epi8((char)0x80);
    const __m512i zb = _mm512_xor_si512(zv, flip);
    /* columns j with 0 <= j sw + fw - pl < W: [j0, j1) */
    const int64_t c0 = pl - fw, j0r = c0 > 0 ? (c0 + sw - 1) / sw : 0;
    int64_t j1 = (W + pl - fw + sw - 1) / sw;
    if (j1 > PW) j1 = PW;
    const int64_t j0 = j0r > j1 ? j1 : j0r;
    if (PW <= 32) {
        /* rows of <= 32 quads (7x7 .. 30x30 planes; one call per channel
         * quad and phase, so no table set-up per call): one vpermt2b gathers
         * the row's columns of channels 0 and 1 (2 and 3) into lanes 0..L-1
         * and L..2L-1 (L = 16 or 32), one more a 16-quad vector interleaves
         * the four into quads */
        static const uint8_t k_iota[64] = {
            0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
            22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
            44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};
        /* out byte 4 j + c (quad j) = lane j (c 0, 2) or L + j (c 1, 3) of
         * v01 / v23 (+ 64): L 16, and L 32 (quads 0..15; 16..31: + 16) */
        static const uint8_t k_fq16[64] = {
            0,  16, 64, 80, 1,  17, 65, 81, 2,  18, 66, 82, 3,  19, 67, 83, 4,  20, 68, 84, 5,  21,
            69, 85, 6,  22, 70, 86, 7,  23, 71, 87, 8,  24, 72, 88, 9,  25, 73, 89, 10, 26, 74, 90,
            11, 27, 75, 91, 12, 28, 76, 92, 13, 29, 77, 93, 14, 30, 78, 94, 15, 31, 79, 95};
        static const uint8_t k_fq32[128] = {
            0,  32, 64, 96,  1,  33, 65, 97,  2,  34, 66, 98,  3,  35, 67, 99,  4,  36, 68, 100,
            5,  37, 69, 101, 6,  38, 70, 102, 7,  39, 71, 103, 8,  40, 72, 104, 9,  41, 73, 105,
            10, 42, 74, 106, 11, 43, 75, 107, 12, 44, 76, 108, 13, 45, 77, 109, 14, 46, 78, 110,
            15, 47, 79, 111, 16, 48, 80, 112, 17, 49, 81, 113, 18, 50, 82, 114, 19, 51, 83, 115,
            20, 52, 84, 116, 21, 53, 85, 117, 22, 54, 86, 118, 23, 55, 87, 119, 24, 56, 88, 120,
            25, 57, 89, 121, 26, 58, 90, 122, 27, 59, 91, 123, 28, 60, 92, 124, 29, 61, 93, 125,
            30, 62, 94, 126, 31, 63, 95, 127};
        const int64_t L = PW <= 16 ? 16 : 32;
        const __m512i iota = _mm512_loadu_si512(k_iota);
        const __m512i fq0 = _mm512_loadu_si512(L == 16 ? k_fq16 : k_fq32),
                      fq1 = _mm512_loadu_si512(k_fq32 + 64);
        __m512i jj = _mm512_sub_epi8(_mm512_and_si512(iota, _mm512_set1_epi8((char)(L - 1))),
                                     _mm512_set1_epi8((char)j0));
        if (sw == 2) jj = _mm512_add_epi8(jj, jj);
        /* lane l < 2L: byte (l % L - j0) sw of channel a (l < L) or b (+ 64) */
        const __mmask64 mhi = L == 16 ? (__mmask64)0xFFFF0000u : ~(__mmask64)0xFFFFFFFFu;
        const __m512i gidx = _mm512_mask_add_epi8(jj, mhi, jj, _mm512_set1_epi8(64));
        const uint64_t vl = j1 > j0 ? (((uint64_t)1 << j1) - 1) & ~(((uint64_t)1 << j0) - 1) : 0;
        const __mmask64 vm = (__mmask64)(vl | vl << L);
        const int64_t nb = j1 > j0 ? (j1 - j0 - 1) * sw + 1 : 0; /* <= 63 */
        const __mmask64 m0 = ((__mmask64)1 << nb) - 1;
        const int64_t q0 = PW < 16 ? PW : 16; /* quads in the first vector */
        const __mmask64 mo0 = q0 == 16 ? ~(__mmask64)0 : ((__mmask64)1 << (4 * q0)) - 1;
        const __mmask64 mo1 = PW >= 32  ? ~(__mmask64)0
                              : PW > 16 ? ((__mmask64)1 << (4 * (PW - 16))) - 1
                                        : 0;
        for (int64_t i = 0; i < PH; i++) {
            uint8_t *o = d + i * PW * 4;
            const int64_t h = i * sh + fh - pt;
            if (h < 0 || h >= H || !vm) {
                _mm512_mask_storeu_epi8(o, mo0, zb);
                if (mo1) _mm512_mask_storeu_epi8(o + 64, mo1, zb);
                continue;
            }
            __m512i r[4];
            for (int c = 0; c < 4; c++)
                r[c] = x[c] ? _mm512_maskz_loadu_epi8(m0, x[c] + h * W + j0 * sw + fw - pl) : zv;
            const __m512i v01 =
                _mm512_mask_mov_epi8(zv, vm, _mm512_permutex2var_epi8(r[0], gidx, r[1]));
            const __m512i v23 =
                _mm512_mask_mov_epi8(zv, vm, _mm512_permutex2var_epi8(r[2], gidx, r[3]));
            _mm512_mask_storeu_epi8(
                o, mo0, _mm512_xor_si512(_mm512_permutex2var_epi8(v01, fq0, v23), flip));
            if (mo1)
                _mm512_mask_storeu_epi8(
                    o + 64, mo1, _mm512_xor_si512(_mm512_permutex2var_epi8(v01, fq1, v23), flip));
        }
        return;
    }
    /* two levels of vpermt2b: byte pairs (a, b) / (c, d) of pixels 0..31
     * (ab: 32 + for 32..63), then quads of pixels 0..15 (q0) / 16..31 (q1) */
    uint8_t tab[4][64], io[64];
    for (int m = 0; m < 32; m++) {
        tab[0][2 * m] = (uint8_t)m;
        tab[0][2 * m + 1] = (uint8_t)(64 + m);
        tab[1][2 * m] = (uint8_t)(32 + m);
        tab[1][2 * m + 1] = (uint8_t)(96 + m);
    }
    for (int m = 0; m < 16; m++)
        for (int b = 0; b < 2; b++) {
            tab[2][4 * m + b] = (uint8_t)(2 * m + b);
            tab[2][4 * m + 2 + b] = (uint8_t)(64 + 2 * m + b);
            tab[3][4 * m + b] = (uint8_t)(32 + 2 * m + b);
            tab[3][4 * m + 2 + b] = (uint8_t)(96 + 2 * m + b);
        }
    for (int m = 0; m < 64; m++) io[m] = (uint8_t)m;
    const __m512i t_lo = _mm512_loadu_si512(tab[0]), t_hi = _mm512_loadu_si512(tab[1]);
    const __m512i t_q0 = _mm512_loadu_si512(tab[2]), t_q1 = _mm512_loadu_si512(tab[3]);
    const __m512i iota = _mm512_loadu_si512(io);
    for (int64_t cb = 0; cb < PW; cb += 64) {
        /* lanes [a, b) of this 64-column chunk hold data: source bytes
         * (s sw + fw - pl) .. of the row, s = cb + a, at most 127 */
        const int64_t wl = PW - cb < 64 ? PW - cb : 64;
        const int64_t s = j0 > cb ? j0 : cb, e = j1 < cb + 64 ? j1 : cb + 64;
        const int64_t a = s - cb, nb = e > s ? (e - s - 1) * sw + 1 : 0;
        const __mmask64 vm =
            e > s ? ((e - cb >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (e - cb)) - 1)) &
                     ~(((__mmask64)1 << a) - 1))
                  : 0;
        const __mmask64 m0 = nb >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << nb) - 1);
        const __mmask64 m1 = nb > 64 ? (((__mmask64)1 << (nb - 64)) - 1) : 0;
        __m512i idx = _mm512_sub_epi8(iota, _mm512_set1_epi8((char)a));
        if (sw == 2) idx = _mm512_add_epi8(idx, idx);
        const int nv = (int)((wl + 15) / 16); /* output vectors of 16 quads */
        const __mmask64 mlast = wl % 16 ? (((__mmask64)1 << (4 * (wl % 16))) - 1) : ~(__mmask64)0;
        for (int64_t i = 0; i < PH; i++) {
            uint8_t *o = d + (i * PW + cb) * 4;
            const int64_t h = i * sh + fh - pt;
            __m512i q[4];
            if (h < 0 || h >= H || !vm) {
                q[0] = q[1] = q[2] = q[3] = zb;
            } else {
                __m512i v[4];
                for (int c = 0; c < 4; c++) {
                    if (!x[c]) {
                        v[c] = zv;
                        continue;
                    }
                    const int8_t *src = x[c] + h * W + s * sw + fw - pl;
                    const __m512i lo = _mm512_maskz_loadu_epi8(m0, src);
                    const __m512i hi = m1 ? _mm512_maskz_loadu_epi8(m1, src + 64) : lo;
                    v[c] = _mm512_mask_mov_epi8(zv, vm, _mm512_permutex2var_epi8(lo, idx, hi));
                }
                __m512i ab = _mm512_permutex2var_epi8(v[0], t_lo, v[1]);
                __m512i cd = _mm512_permutex2var_epi8(v[2], t_lo, v[3]);
                q[0] = _mm512_xor_si512(_mm512_permutex2var_epi8(ab, t_q0, cd), flip);
                q[1] = _mm512_xor_si512(_mm512_permutex2var_epi8(ab, t_q1, cd), flip);
                if (nv > 2) {
                    ab = _mm512_permutex2var_epi8(v[0], t_hi, v[1]);
                    cd = _mm512_permutex2var_epi8(v[2], t_hi, v[3]);
                    q[2] = _mm512_xor_si512(_mm512_permutex2var_epi8(ab, t_q0, cd), flip);
                    q[3] = _mm512_xor_si512(_mm512_permutex2var_epi8(ab, t_q1, cd), flip);
                }
            }
            for (int t = 0; t + 1 < nv; t++) _mm512_storeu_si512(o + 64 * t, q[t]);
            _mm512_mask_storeu_epi8(o + 64 * (nv - 1), mlast, q[nv - 1]);
        }
    }
}

__attribute__((target("avx512vbmi"))) void sqz_i8_tap_quads_vbmi(const uint8_t *plane, int64_t n,
                                                                 int32_t *Q) {
    uint8_t ib[64];
    for (int p = 0; p < 16; p++)
        for (int k = 0; k < 4; k++) ib[4 * p + k] = (uint8_t)(p + k);
    const __m512i idx = _mm512_loadu_si512(ib);
    for (int64_t m = 0; m < n; m += 16)
        _mm512_storeu_si512(Q + m, _mm512_permutexvar_epi8(idx, _mm512_loadu_si512(plane + m)));
}

void sqz_i8_copy_rows_avx512(const int8_t *src, int64_t ss, int8_t *dst, int64_t ds, int rows,
                             int64_t n) {
    for (int r = 0; r < rows; r++) copy_bytes(src + r * ss, dst + r * ds, n);
}

void sqz_i8_dw_pack_u8(const int8_t *x, int64_t H, int64_t W, int64_t pt, int64_t pl, int64_t PH,
                       int64_t PW, uint8_t zb, uint8_t *buf) {
    const __m512i zv = _mm512_set1_epi8((char)zb), flip = _mm512_set1_epi8((char)0x80);
    for (int64_t r = 0; r < PH; r++) {
        uint8_t *d = buf + r * PW;
        int64_t i = 0;
        for (; i + 64 <= PW; i += 64) _mm512_storeu_si512(d + i, zv);
        if (i < PW) _mm512_mask_storeu_epi8(d + i, ((__mmask64)1 << (PW - i)) - 1, zv);
        const int64_t h = r - pt;
        if (h < 0 || h >= H) continue;
        const int8_t *s = x + h * W;
        for (i = 0; i + 64 <= W; i += 64)
            _mm512_storeu_si512(d + pl + i, _mm512_xor_si512(_mm512_loadu_si512(s + i), flip));
        if (i < W) {
            const __mmask64 m = ((__mmask64)1 << (W - i)) - 1;
            _mm512_mask_storeu_epi8(d + pl + i, m,
                                    _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, s + i), flip));
        }
    }
}

static void small_compact(const int8_t *tmp, const sqz_i8_dw_geom *gm, int8_t *y) {
    const __mmask64 mo = gm->OW >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << gm->OW) - 1);
    for (int64_t oh = 0; oh < gm->OH; oh++)
        _mm512_mask_storeu_epi8(y + oh * gm->OW, mo, _mm512_maskz_loadu_epi8(mo, tmp + oh * gm->P));
}

void sqz_i8_dw_small_vnni(const sqz_i8_dw_small *a, int64_t pl0, int64_t pl1, uint8_t *buf,
                          int8_t *tmp, int32_t *qbuf) {
    const sqz_i8_dw_geom *gm = &a->gm;
    if (pl0 >= pl1) return;
    small_pack(a->X + pl0 * a->in_sp, gm, buf);
    for (int64_t pl = pl0; pl < pl1; pl++) {
        int64_t i = pl - pl0, c = pl % a->n_co;
        uint8_t *cur = buf + (i & 1) * a->buf_bytes;
        int8_t *t = tmp + (i & 1) * a->tmp_bytes;
        if (pl + 1 < pl1)
            small_pack(a->X + (pl + 1) * a->in_sp, gm, buf + ((i + 1) & 1) * a->buf_bytes);
        dw_plane_vnni((const int8_t *)cur, gm->PW, a->w + c * a->wstride, gm->kh, gm->kw, gm->sh,
                      gm->sw, gm->dh, 1, 1, gm->L, a->off[c], a->rq[c], a->zp, a->lo, a->hi, t,
                      qbuf);
        if (pl > pl0)
            small_compact(tmp + ((i - 1) & 1) * a->tmp_bytes, gm, a->Y + (pl - 1) * a->out_sp);
    }
    small_compact(tmp + ((pl1 - 1 - pl0) & 1) * a->tmp_bytes, gm, a->Y + (pl1 - 1) * a->out_sp);
}

/* ------------------------------------------------------------------ Add */

/* The reference's Add (int8_avx2.c) 16 lanes per vector: the two 64-bit
 * products of the even / odd lanes summed, rounded and shifted arithmetically
 * (vpsraq); |da Ma + db Mb| < 2^41 and S >= 12 (else declined) keep the
 * shifted value below 2^30, so its low dword is exact and the zero point and
 * clamp are applied in 32 bits. */
static void add16_store(int8_t *y, __m512i da, __m512i db, __m512i Ma, __m512i Mb, __m512i rnd,
                        __m128i sc, __m512i zp, __m512i lo, __m512i hi, int64_t n) {
    __m512i ev = _mm512_add_epi64(_mm512_mul_epi32(da, Ma), _mm512_mul_epi32(db, Mb));
    __m512i od = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(da, 32), Ma),
                                  _mm512_mul_epi32(_mm512_srli_epi64(db, 32), Mb));
    ev = _mm512_sra_epi64(_mm512_add_epi64(ev, rnd), sc);
    od = _mm512_sra_epi64(_mm512_add_epi64(od, rnd), sc);
    __m512i v = _mm512_mask_blend_epi32((__mmask16)0xAAAA, ev, _mm512_slli_epi64(od, 32));
    v = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(v, zp), lo), hi);
    store16(y, v, n);
}

static int add_prepare512(sqz_op_ctx *ctx) {
    sqz_i8_addp p;
    int rc = sqz_i8_add_params(ctx, &p);
    if (rc != 0) return rc;
    if (p.S < 12) return 1;
    sqz_i8_addp *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "Add: out of memory");
    *pp = p;
    ctx->params = pp;
    return 0;
}

/* The Add kernels' ends (add_run512_w, add_run512_w2): 32 int8 values of
 * one operand (masked) minus its zero point, as int16 ... */
static inline __attribute__((always_inline)) __m512i add_in(const int8_t *a, __mmask32 m,
                                                            __m512i zp) {
    return _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, a)), zp);
}
/* ... and the two int32 halves of their sums packed, offset by zp_y,
 * clamped and stored. unpacklo / hi took lanes 0-3 / 4-7 of each 128-bit
 * block: the pack puts them back in order. */
static inline __attribute__((always_inline)) void
add_out(int8_t *y, __mmask32 m, const __m512i r[2], __m512i zy, __m512i lo, __m512i hi) {
    __m512i v = _mm512_adds_epi16(_mm512_packs_epi32(r[0], r[1]), zy);
    v = _mm512_min_epi16(_mm512_max_epi16(v, lo), hi);
    _mm256_mask_storeu_epi8(y, m, _mm512_cvtepi16_epi8(v));
}

/* 16 <= S <= 40: the same y from 16-bit pieces, 32 lanes per step. With
 * M = m2 2^30 + m1 2^15 + m0 (m0, m1 < 2^15, m2 <= 1, for Ma and Mb) and
 * (da, db) as int16 pairs, vpmaddwd gives P_k = da ma_k + db mb_k exactly
 * (|P_0|, |P_1| < 2^24, |P_2| <= 510), so X = da Ma + db Mb = 2^15 V + r with
 * V = P_2 2^15 + P_1 + (P_0 >> 15) and 0 <= r < 2^15. Then
 * floor((X + 2^(S-1)) / 2^S) = floor((V + 2^(S-16)) / 2^(S-15)): adding
 * r / 2^15 in [0, 1) to an integer numerator does not change the floor of
 * its division by an integer. |V| < 2^26 and 2^(S-16) <= 2^24: int32. The
 * requantized values are saturated to int16 by the pack, the zero point
 * added with saturation and the result clamped to [lo, hi], which equals
 * clamping the exact value (the saturated ones lie beyond both bounds). */
static void add_run512_w(const sqz_i8_addp *p, const int8_t *a, const int8_t *b, int8_t *y,
                         int64_t cnt) {
    const int32_t ma0 = (int32_t)(p->Ma & 0x7FFF), ma1 = (int32_t)(p->Ma >> 15 & 0x7FFF),
                  ma2 = (int32_t)(p->Ma >> 30), mb0 = (int32_t)(p->Mb & 0x7FFF),
                  mb1 = (int32_t)(p->Mb >> 15 & 0x7FFF), mb2 = (int32_t)(p->Mb >> 30);
    /* pair constants: (da, db) . (ma_k, mb_k), da in the low word */
    const __m512i c0 = _mm512_set1_epi32(ma0 | mb0 << 16), c1 = _mm512_set1_epi32(ma1 | mb1 << 16),
                  c2 = _mm512_set1_epi32(ma2 | mb2 << 16);
    const __m512i half = _mm512_set1_epi32((int32_t)1 << (p->S - 16));
    const __m128i sh = _mm_cvtsi32_si128(p->S - 15);
    const __m512i za = _mm512_set1_epi16((short)p->zp_a), zb = _mm512_set1_epi16((short)p->zp_b);
    const __m512i zy = _mm512_set1_epi16((short)p->zp_y), lo = _mm512_set1_epi16((short)p->lo),
                  hi = _mm512_set1_epi16((short)p->hi);
    /* y may alias a or b (in-place Add): each block is loaded before it is stored */
    for (int64_t i = 0; i < cnt; i += 32) {
        const int64_t n = cnt - i;
        const __mmask32 m = n >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << n) - 1);
        const __m512i da = add_in(a + i, m, za), db = add_in(b + i, m, zb);
        __m512i r[2];
        for (int h = 0; h < 2; h++) {
            const __m512i x = h ? _mm512_unpackhi_epi16(da, db) : _mm512_unpacklo_epi16(da, db);
            const __m512i p0 = _mm512_madd_epi16(x, c0), p1 = _mm512_madd_epi16(x, c1),
                          p2 = _mm512_madd_epi16(x, c2);
            const __m512i v = _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(p2, 15), p1),
                                               _mm512_srai_epi32(p0, 15));
            r[h] = _mm512_sra_epi32(_mm512_add_epi32(v, half), sh);
        }
        add_out(y + i, m, r, zy, lo, hi);
    }
}

/* 17 <= S <= 40 and Ma, Mb < 2^31 - 2^15: two vpmaddwd instead of three.
 * M = m1 2^16 + m0 with m0 in [-2^15, 2^15) (a signed low word, m1 carrying
 * one more when the low half is >= 2^15) and m1 < 2^15, so both fit int16:
 * P_k = da ma_k + db mb_k exactly (|P_k| <= 2^24), X = da Ma + db Mb =
 * 2^16 V + r with V = P_1 + (P_0 >> 16) and 0 <= r < 2^16, and
 * floor((X + 2^(S-1)) / 2^S) = floor((V + 2^(S-17)) / 2^(S-16)) (r / 2^16 in
 * [0, 1) added to an integer numerator: same floor). The rest as
 * add_run512_w. */
static void add_run512_w2(const sqz_i8_addp *p, const int8_t *a, const int8_t *b, int8_t *y,
                          int64_t cnt) {
    int32_t ma0 = (int32_t)(p->Ma & 0xFFFF), ma1 = (int32_t)(p->Ma >> 16),
            mb0 = (int32_t)(p->Mb & 0xFFFF), mb1 = (int32_t)(p->Mb >> 16);
    if (ma0 >= 0x8000) ma0 -= 0x10000, ma1++;
    if (mb0 >= 0x8000) mb0 -= 0x10000, mb1++;
    /* pair constants: (da, db) . (ma_k, mb_k), da in the low word */
    const __m512i c0 = _mm512_set1_epi32((int32_t)((uint32_t)ma0 & 0xFFFF) |
                                         (int32_t)((uint32_t)mb0 << 16)),
                  c1 = _mm512_set1_epi32(ma1 | mb1 << 16);
    const __m512i half = _mm512_set1_epi32((int32_t)1 << (p->S - 17));
    const __m128i sh = _mm_cvtsi32_si128(p->S - 16);
    const __m512i za = _mm512_set1_epi16((short)p->zp_a), zb = _mm512_set1_epi16((short)p->zp_b);
    const __m512i zy = _mm512_set1_epi16((short)p->zp_y), lo = _mm512_set1_epi16((short)p->lo),
                  hi = _mm512_set1_epi16((short)p->hi);
    /* y may alias a or b (in-place Add): each block is loaded before it is stored */
    for (int64_t i = 0; i < cnt; i += 32) {
        const int64_t n = cnt - i;
        const __mmask32 m = n >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << n) - 1);
        const __m512i da = add_in(a + i, m, za), db = add_in(b + i, m, zb);
        __m512i r[2];
        for (int h = 0; h < 2; h++) {
            const __m512i x = h ? _mm512_unpackhi_epi16(da, db) : _mm512_unpacklo_epi16(da, db);
            const __m512i v = _mm512_add_epi32(_mm512_madd_epi16(x, c1),
                                               _mm512_srai_epi32(_mm512_madd_epi16(x, c0), 16));
            r[h] = _mm512_sra_epi32(_mm512_add_epi32(v, half), sh);
        }
        add_out(y + i, m, r, zy, lo, hi);
    }
}

/* elements [0, cnt) of a, b, y */
static void add_range512(const sqz_i8_addp *p, const int8_t *a, const int8_t *b, int8_t *y,
                         int64_t cnt) {
    const int64_t top = ((int64_t)1 << 31) - ((int64_t)1 << 15);
    if (p->S >= 17 && p->S <= 40 && p->Ma < top && p->Mb < top) {
        add_run512_w2(p, a, b, y, cnt);
        return;
    }
    if (p->S >= 16 && p->S <= 40) {
        add_run512_w(p, a, b, y, cnt);
        return;
    }
    const __m512i Ma = _mm512_set1_epi64(p->Ma), Mb = _mm512_set1_epi64(p->Mb);
    const __m512i rnd = _mm512_set1_epi64(p->rnd);
    const __m128i sc = _mm_cvtsi32_si128(p->S);
    const __m512i zy = _mm512_set1_epi32(p->zp_y), za = _mm512_set1_epi32(p->zp_a),
                  zb = _mm512_set1_epi32(p->zp_b);
    const __m512i lo = _mm512_set1_epi32(p->lo), hi = _mm512_set1_epi32(p->hi);
    /* y may alias a or b (in-place Add): each block is loaded before it is stored */
    for (int64_t i = 0; i < cnt; i += 16) {
        int64_t n = cnt - i;
        __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
        __m512i da = _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, a + i)), za);
        __m512i db = _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, b + i)), zb);
        add16_store(y + i, da, db, Ma, Mb, rnd, sc, zy, lo, hi, n);
    }
}

typedef struct add_job {
    const sqz_i8_addp *p;
    const int8_t *a, *b;
    int8_t *y;
    int parts;
} add_job;

/* part t: elements on 64-byte bounds (a residual Add's operands come from
 * split convs, half in the other core's cache) */
static void add_part(void *arg, int t) {
    const add_job *j = arg;
    const int64_t n = j->p->n, b0 = n * t / j->parts / 64 * 64,
                  e = t + 1 == j->parts ? n : n * (t + 1) / j->parts / 64 * 64;
    if (e > b0) add_range512(j->p, j->a + b0, j->b + b0, j->y + b0, e - b0);
}

static void add_run512(const sqz_op_ctx *ctx) {
    const sqz_i8_addp *p = ctx->params;
    add_job j = {p, (const int8_t *)ctx->in_data[0], (const int8_t *)ctx->in_data[1],
                 (int8_t *)ctx->out_data[0], 1};
    /* estimate doubled: the operands mostly come from convs split over the
     * threads, half in the other core's cache, which one core pays for
     * (MNASNet's 40 x 28 x 28 Adds at 2 threads: 0.0076-0.0089 ms on one
     * core, ~0.005 split) */
    int nt = sqz_i8_split_threads(ctx->num_threads, 2.0 * (double)p->n * SQZ_I8_NS_BYTE);
    if (nt <= 1 || p->n < 1024) {
        add_range512(p, j.a, j.b, j.y, p->n);
        return;
    }
    j.parts = 4 * nt; /* a few parts per thread (par.h) */
    sqz_par_for(nt, j.parts, add_part, &j);
}

const sqz_op_impl sqz_i8_add_avx512 = {add_prepare512, add_run512, free, NULL};

/* ------------------------------------------------------------------ Mul */

/* QLinearMul rows (ref/int8.c mul_run): y = rq((a - zp_a) * db) with db one
 * value for the row (a per-channel gate times a plane) or b[i] - zp_b
 * (b != NULL); |d| <= 65280 < 2^31, rq16 is the exact int8.h formula. */
void sqz_i8_mul_row_avx512(const int8_t *a, const int8_t *b, int64_t n, int32_t zp_a, int32_t zp_b,
                           int32_t db, sqz_i8_rqv rq, int32_t zp, int32_t lo, int32_t hi,
                           int8_t *y) {
    const __m512i za = _mm512_set1_epi32(zp_a), zb = _mm512_set1_epi32(zp_b);
    const __m512i dbv = _mm512_set1_epi32(db);
    /* y may alias a or b (in-place Mul): each block is loaded before it is stored */
    for (int64_t i = 0; i < n; i += 16) {
        int64_t r = n - i;
        __mmask16 m = r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1);
        __m512i d = _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, a + i)), za);
        __m512i e =
            b ? _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, b + i)), zb) : dbv;
        store16(y + i, rq16(_mm512_mullo_epi32(d, e), &rq, zp, lo, hi), r);
    }
}

/* ------------------------------------------------------- 256-entry tables */

/* y[i] = t[x[i] + 128] by AVX-512 VBMI byte permutes: vpermi2b looks the low
 * 7 bits of the index up in a 128-byte table held in two registers; the
 * index's top bit picks one of the two halves. Called only when
 * sqz_cpu_has_avx512_vbmi(). */
__attribute__((target("avx512vbmi"))) void sqz_i8_lut256_vbmi(const int8_t *t, const int8_t *x,
                                                              int8_t *y, int64_t n) {
    const __m512i t0 = _mm512_loadu_si512(t), t1 = _mm512_loadu_si512(t + 64);
    const __m512i t2 = _mm512_loadu_si512(t + 128), t3 = _mm512_loadu_si512(t + 192);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i v = _mm512_xor_si512(_mm512_loadu_si512(x + i), flip);
        __m512i lo = _mm512_permutex2var_epi8(t0, v, t1), hi = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi));
    }
    if (i < n) {
        __mmask64 m = ((__mmask64)1 << (n - i)) - 1;
        __m512i v = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + i), flip);
        __m512i lo = _mm512_permutex2var_epi8(t0, v, t1), hi = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_mask_storeu_epi8(y + i, m, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi));
    }
}

/* QuantizeLinear (int8_avx2.c quantize_range's formula and estimate):
 * t = x * rcp, m = t + 1.5 * 2^23 rounds t to the nearest even integer
 * (|t| < 1024 << 2^22) whose value is bits(m) - bits(1.5 * 2^23), and
 * t - (m - 1.5 * 2^23) is exact; 16 lanes keep it when every one has
 * |t| < 1024 and |t - n| < 0.5 - 2^-10 (NaN fails both), else the
 * division: round_half_even(x / s) + zp in float, clamped, NaN -> zp. */
void sqz_i8_quantize_avx512(const float *x, int64_t n, float s, float rcp, int32_t zp, int8_t *y) {
    const __m512 vs = _mm512_set1_ps(s), vr = _mm512_set1_ps(rcp), vz = _mm512_set1_ps((float)zp);
    const __m512 flo = _mm512_set1_ps(-128.0f), fhi = _mm512_set1_ps(127.0f);
    const __m512 magic = _mm512_set1_ps(12582912.0f), big = _mm512_set1_ps(1024.0f);
    const __m512 dmax = _mm512_set1_ps(0.5f - 0x1p-10f);
    const __m512i mbits = _mm512_set1_epi32(0x4B400000), zpi = _mm512_set1_epi32(zp);
    const __m512i ilo = _mm512_set1_epi32(-128), ihi = _mm512_set1_epi32(127);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
        __m512i q;
        const __m512 t = _mm512_mul_ps(xv, vr), m = _mm512_add_ps(t, magic);
        const __m512 d = _mm512_sub_ps(t, _mm512_sub_ps(m, magic));
        const __mmask16 ok = _mm512_cmp_ps_mask(_mm512_abs_ps(t), big, _CMP_LT_OQ) &
                             _mm512_cmp_ps_mask(_mm512_abs_ps(d), dmax, _CMP_LT_OQ);
        if (rcp != 0.0f && ok == 0xFFFF) {
            q = _mm512_sub_epi32(_mm512_castps_si512(m), mbits);
            q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, zpi), ilo), ihi);
        } else {
            const __m512 v = _mm512_div_ps(xv, vs);
            const __mmask16 ord = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
            __m512 r = _mm512_add_ps(
                _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
            r = _mm512_min_ps(_mm512_max_ps(r, flo), fhi);
            q = _mm512_cvtps_epi32(_mm512_mask_mov_ps(vz, ord, r));
        }
        _mm_mask_storeu_epi8(y + i, k, _mm512_cvtepi32_epi8(q));
    }
}

/* GlobalAveragePool of np planes of sp bytes at x + i sp (16 at a time):
 * each plane's vpsadbw sums (x + 128, bytes past the plane loaded as 0x80:
 * 0 after the flip) as 8 qwords, narrowed to dwords, then summed by three
 * rounds of two vpermt2d + add that halve the partial sums and double the
 * planes a vector (16 planes x 1 sum in natural order at the end); then the
 * int8.h formula 16 planes at a time. */
void sqz_i8_gap_planes_avx512(const int8_t *x, int64_t sp, int64_t np, int32_t zp_x, float s,
                              int32_t zp_y, int8_t *y) {
    const __m512i flip = _mm512_set1_epi8((char)0x80), z = _mm512_setzero_si512();
    const __mmask64 mt = sp % 64 ? (((__mmask64)1 << (sp % 64)) - 1) : ~(__mmask64)0;
    /* round r (P planes x Q partials a vector -> 2P x Q / 2): lane p Q / 2 +
     * q of the result = (p < P ? A : B)[(p % P) Q + q] + the same + Q / 2 */
    __m512i i1[3], i2[3];
    for (int r = 0, P = 2, Q = 8; r < 3; r++, P *= 2, Q /= 2) {
        int32_t a[16], b[16];
        for (int l = 0; l < 16; l++) {
            int p = l / (Q / 2), q = l % (Q / 2);
            a[l] = (p >= P ? 16 : 0) + (p % P) * Q + q;
            b[l] = a[l] + Q / 2;
        }
        i1[r] = _mm512_loadu_si512(a);
        i2[r] = _mm512_loadu_si512(b);
    }
    const __m512 sv = _mm512_set1_ps(s), flo = _mm512_set1_ps((float)(-128 - zp_y)),
                 fhi = _mm512_set1_ps((float)(127 - zp_y));
    const __m512i off = _mm512_set1_epi32((int32_t)(sp * (128 + (int64_t)zp_x)));
    for (int64_t i0 = 0; i0 < np; i0 += 16) {
        const int64_t n = np - i0 < 16 ? np - i0 : 16;
        __m256i h[16];
        for (int64_t j = 0; j < 16; j++) {
            __m512i acc = z;
            if (j < n) {
                const int8_t *xp = x + (i0 + j) * sp;
                int64_t k = 0;
                for (; k + 64 <= sp; k += 64)
                    acc = _mm512_add_epi64(
                        acc,
                        _mm512_sad_epu8(_mm512_xor_si512(_mm512_loadu_si512(xp + k), flip), z));
                if (k < sp)
                    acc = _mm512_add_epi64(
                        acc,
                        _mm512_sad_epu8(
                            _mm512_xor_si512(_mm512_mask_loadu_epi8(flip, mt, xp + k), flip), z));
            }
            h[j] = _mm512_cvtepi64_epi32(acc); /* < 2^31: sp < 2^23 */
        }
        __m512i v[8];
        for (int j = 0; j < 8; j++)
            v[j] = _mm512_inserti64x4(_mm512_castsi256_si512(h[2 * j]), h[2 * j + 1], 1);
        for (int r = 0, m = 8; r < 3; r++, m /= 2)
            for (int j = 0; j < m / 2; j++)
                v[j] = _mm512_add_epi32(_mm512_permutex2var_epi32(v[2 * j], i1[r], v[2 * j + 1]),
                                        _mm512_permutex2var_epi32(v[2 * j], i2[r], v[2 * j + 1]));
        const __m512i acc = _mm512_sub_epi32(v[0], off); /* sum - sp zp_x */
        __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), sv);
        f = _mm512_min_ps(_mm512_max_ps(f, flo), fhi);
        const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), _mm512_set1_epi32(zp_y));
        _mm_mask_storeu_epi8(y + i0, (__mmask16)((1u << n) - 1), _mm512_cvtepi32_epi8(q));
    }
}

/* ------------------------------------------------------------- MaxPool */

/* 2x2 stride-2 MaxPool rows (no padding): y[ow] = max of x0[2 ow], x0[2 ow +
 * 1], x1[2 ow], x1[2 ow + 1], 32 outputs per step: the two rows' byte max,
 * then the max of each int16 lane's two (sign-extended) bytes, narrowed. */
void sqz_i8_maxpool2_row_avx512(const int8_t *x0, const int8_t *x1, int64_t OW, int8_t *y) {
    for (int64_t ow = 0; ow < OW; ow += 32) {
        int64_t n = OW - ow < 32 ? OW - ow : 32;
        __mmask64 m = n == 32 ? ~(__mmask64)0 : (((__mmask64)1 << (2 * n)) - 1);
        __m512i v = _mm512_max_epi8(_mm512_maskz_loadu_epi8(m, x0 + 2 * ow),
                                    _mm512_maskz_loadu_epi8(m, x1 + 2 * ow));
        __m512i ev = _mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8), od = _mm512_srai_epi16(v, 8);
        __m256i r = _mm512_cvtepi16_epi8(_mm512_max_epi16(ev, od));
        _mm256_mask_storeu_epi8(y + ow, (__mmask32)(n == 32 ? ~0u : ((1u << n) - 1)), r);
    }
}

void sqz_i8_maxpool2_planes_avx512(const int8_t *x, int64_t W, int64_t in_sp, int64_t OH,
                                   int64_t OW, int64_t out_sp, int64_t np, int8_t *y) {
    /* OW <= 32: one masked load per input row, masks hoisted */
    const __mmask64 m = OW >= 32 ? ~(__mmask64)0 : (((__mmask64)1 << (2 * OW)) - 1);
    const __mmask32 ms = OW >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << OW) - 1);
    for (int64_t pl = 0; pl < np; pl++, x += in_sp, y += out_sp)
        for (int64_t oh = 0; oh < OH; oh++) {
            const int8_t *x0 = x + 2 * oh * W;
            __m512i v =
                _mm512_max_epi8(_mm512_maskz_loadu_epi8(m, x0), _mm512_maskz_loadu_epi8(m, x0 + W));
            __m512i ev = _mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8),
                    od = _mm512_srai_epi16(v, 8);
            _mm256_mask_storeu_epi8(y + oh * OW, ms,
                                    _mm512_cvtepi16_epi8(_mm512_max_epi16(ev, od)));
        }
}

/* One output row of a stride-2 (along w) MaxPool, k taps along w, from the
 * nrows valid input rows (the window rows inside the input): outputs [0, OW)
 * whose windows start at column ow * 2 + c0 >= 0; columns >= W count as
 * -128 (the max's neutral element, as in the reference). Per chunk of
 * 32 - (k - 1) / 2 outputs: the rows' byte max over 64 columns, split into
 * sign-extended even / odd int16 lanes, tap j = lane i + j / 2 of one of them
 * (vpermw), narrowed to bytes. */
void sqz_i8_maxpool_s2_row_avx512(const int8_t *const *rows, int nrows, int64_t W, int64_t c0,
                                  int64_t k, int64_t OW, int8_t *y) {
    const int64_t per = 32 - (k - 1) / 2;
    const __m512i fill = _mm512_set1_epi8(-128);
    static const int16_t lanes[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                      11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                      22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    const __m512i lane = _mm512_loadu_si512(lanes);
    for (int64_t ow = 0; ow < OW; ow += per) {
        int64_t cs = c0 + 2 * ow; /* >= 0 (the caller's contract) */
        int64_t avail = W - cs;   /* columns left in the row */
        __mmask64 m = avail >= 64 ? ~(__mmask64)0 : avail <= 0 ? 0 : (((__mmask64)1 << avail) - 1);
        __m512i v = fill;
        for (int r = 0; r < nrows; r++)
            v = _mm512_max_epi8(v, _mm512_mask_loadu_epi8(fill, m, rows[r] + (avail > 0 ? cs : 0)));
        __m512i ev = _mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8), od = _mm512_srai_epi16(v, 8);
        __m512i acc = ev;
        for (int64_t j = 1; j < k; j++) {
            __m512i src = (j & 1) ? od : ev;
            int64_t sh = j / 2;
            acc = _mm512_max_epi16(
                acc, sh ? _mm512_permutexvar_epi16(
                              _mm512_add_epi16(lane, _mm512_set1_epi16((short)sh)), src)
                        : src);
        }
        int64_t n = OW - ow < per ? OW - ow : per;
        _mm256_mask_storeu_epi8(y + ow, (__mmask32)((1ull << n) - 1), _mm512_cvtepi16_epi8(acc));
    }
}
