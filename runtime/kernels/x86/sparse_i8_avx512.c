/* sparse_i8_avx512.c - int8 CSR row kernels with AVX-512BW (contract:
 * kernels/sparse.h "int8"). spmm8: as sparse_i8_avx2.c with 32 pixels per
 * zmm pair (64 per step while they last, then 32-pixel steps, the last one
 * masked); sqz_spmm8_vnni is the same with vpdpwssd (AVX-512 VNNI) for
 * vpmaddwd + vpaddd.
 * spmv8: 16 entries per step with an int32 gather, the row tail masked. */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"
#include "int8_simd.h"
#include "sparse.h"

/* int8.h requantization of 16 int32 lanes (as int8_avx512.c rqf16): float
 * convert, multiply by s, clamp to [flo, fhi] = [lo - zp, hi - zp], convert
 * (round to nearest even, MXCSR default), + zp: results in [lo, hi]. */
static inline __m512i rq16f(__m512i acc, __m512 s, __m512 flo, __m512 fhi, __m512i zp) {
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), s);
    v = _mm512_min_ps(_mm512_max_ps(v, flo), fhi);
    return _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
}

static inline __m512i pair(const int16_t *v) {
    int32_t w;
    memcpy(&w, v, 4);
    return _mm512_set1_epi32(w);
}

/* acc += vpmaddwd(x pairs, w): one vpdpwssd with VNNI (wrapping, exact here) */
#define MAC(acc, u, v, w, op)                                                                      \
    acc = vnni ? _mm512_dpwssd_epi32(acc, op(u, v), w)                                             \
               : _mm512_add_epi32(acc, _mm512_madd_epi16(op(u, v), w))

/* l(h) / h(h) = unpack-ordered results of pixels 32 h .. 32 h + 31 (see
 * the vpmaddwd unpacks: pixels {0-3, 8-11, ...} then {4-7, 12-15, ...}) -> 64 bytes in pixel order:
 * packs_epi32 (l, h) holds pixels 8 L .. 8 L + 7 in its 128-bit lane L; packs_epi16 of the two
 * halves interleaves their qwords, which one vpermq puts back. */
static inline __m512i pack64(__m512i l0, __m512i h0, __m512i l1, __m512i h1) {
    __m512i w0 = _mm512_packs_epi32(l0, h0), w1 = _mm512_packs_epi32(l1, h1);
    return _mm512_permutexvar_epi64(_mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0),
                                    _mm512_packs_epi16(w0, w1));
}

static inline __attribute__((always_inline)) void spmm8_body(const sqz_csr8 *m, int64_t r0,
                                                             int64_t r1, const int16_t *X,
                                                             int64_t xs, int64_t P, int8_t *Y,
                                                             const int vnni) {
    /* row-invariant values in locals: the int8 stores to Y may alias *m as
     * far as the compiler knows, which would reload them every row */
    const int32_t *col = m->col, *rowptr = m->rowptr, *off = m->off;
    const int16_t *val = m->val;
    const sqz_rq *rqs = m->rq;
    const __m512i zpv = _mm512_set1_epi32(m->zp);
    const __m512 flo = _mm512_set1_ps((float)(m->lo - m->zp)),
                 fhi = _mm512_set1_ps((float)(m->hi - m->zp));
    for (int64_t r = r0; r < r1; r++) {
        int8_t *y = Y + r * P;
        const __m512i o = _mm512_set1_epi32(off[r]);
        const int32_t k0 = rowptr[r], k1 = rowptr[r + 1];
        const __m512 sv = _mm512_set1_ps(rqs[r].s);
        /* rows of X are padded to xs >= P rounded up to 32: whole-vector
         * loads everywhere, only the stores are masked */
        for (int64_t p = 0; p < P;) {
            const int64_t n = P - p;
            if (n > 32) { /* 64 pixels (4 accumulators) */
                __m512i a0 = o, a1 = o, a2 = o, a3 = o;
                for (int32_t k = k0; k < k1; k += 2) {
                    const int16_t *xa = X + (int64_t)col[k] * xs + p,
                                  *xb = X + (int64_t)col[k + 1] * xs + p;
                    const __m512i w = pair(val + k);
                    __m512i u0 = _mm512_loadu_si512(xa), v0 = _mm512_loadu_si512(xb);
                    __m512i u1 = _mm512_loadu_si512(xa + 32), v1 = _mm512_loadu_si512(xb + 32);
                    MAC(a0, u0, v0, w, _mm512_unpacklo_epi16);
                    MAC(a1, u0, v0, w, _mm512_unpackhi_epi16);
                    MAC(a2, u1, v1, w, _mm512_unpacklo_epi16);
                    MAC(a3, u1, v1, w, _mm512_unpackhi_epi16);
                }
                /* results in [lo, hi]: the packs are exact */
                __m512i b = pack64(rq16f(a0, sv, flo, fhi, zpv), rq16f(a1, sv, flo, fhi, zpv),
                                   rq16f(a2, sv, flo, fhi, zpv), rq16f(a3, sv, flo, fhi, zpv));
                if (n >= 64)
                    _mm512_storeu_si512(y + p, b);
                else
                    _mm512_mask_storeu_epi8(y + p, ((__mmask64)1 << n) - 1, b);
                p += 64;
            } else { /* the last <= 32 pixels (2 accumulators) */
                __m512i a0 = o, a1 = o;
                for (int32_t k = k0; k < k1; k += 2) {
                    const __m512i w = pair(val + k);
                    __m512i u = _mm512_loadu_si512(X + (int64_t)col[k] * xs + p);
                    __m512i v = _mm512_loadu_si512(X + (int64_t)col[k + 1] * xs + p);
                    MAC(a0, u, v, w, _mm512_unpacklo_epi16);
                    MAC(a1, u, v, w, _mm512_unpackhi_epi16);
                }
                __m512i f0 = rq16f(a0, sv, flo, fhi, zpv), f1 = rq16f(a1, sv, flo, fhi, zpv);
                __m512i b = pack64(f0, f1, f0, f1); /* bytes 0..31: the 32 pixels */
                _mm256_mask_storeu_epi8(y + p, (__mmask32)(0xFFFFFFFFu >> (32 - n)),
                                        _mm512_castsi512_si256(b));
                p += 32;
            }
        }
    }
}

void sqz_spmm8_avx512(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                      int64_t P, int8_t *Y) {
    spmm8_body(m, r0, r1, X, xs, P, Y, 0);
}

void sqz_spmm8_vnni(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                    int64_t P, int8_t *Y) {
    spmm8_body(m, r0, r1, X, xs, P, Y, 1);
}

void sqz_spmv8_avx512(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x8, void *tmp,
                      int8_t *y) {
    int32_t *x = tmp; /* int32 copy: gather operand */
    for (int64_t c = 0; c < m->cols; c++) x[c] = x8[c];
    for (int64_t r = r0; r < r1; r++) {
        int32_t k = m->rowptr[r];
        const int32_t k1 = m->rowptr[r + 1];
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        /* sign-extended x times zero-extended w: vpmaddwd gives x * w (sparse_i8_avx2.c) */
        for (; k + 32 <= k1; k += 32) {
            __m512i i0 = _mm512_loadu_si512(m->col + k), i1 = _mm512_loadu_si512(m->col + k + 16);
            __m512i w0 = _mm512_cvtepu16_epi32(
                _mm256_loadu_si256((const __m256i *)(const void *)(m->val + k)));
            __m512i w1 = _mm512_cvtepu16_epi32(
                _mm256_loadu_si256((const __m256i *)(const void *)(m->val + k + 16)));
            a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(_mm512_i32gather_epi32(i0, x, 4), w0));
            a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(_mm512_i32gather_epi32(i1, x, 4), w1));
        }
        for (; k < k1; k += 16) {
            const __mmask16 mk =
                k1 - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (k1 - k)) - 1);
            __m512i i0 = _mm512_maskz_loadu_epi32(mk, m->col + k);
            __m512i w0 = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, m->val + k));
            __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mk, i0, x, 4);
            a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(g, w0));
        }
        /* int32 wrap-around sums: the exact total is in range (int8.h bound) */
        uint32_t acc =
            (uint32_t)_mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1)) + (uint32_t)m->off[r];
        y[r] = (int8_t)sqz_rq_apply((int32_t)acc, m->rq[r], m->zp, m->lo, m->hi);
    }
}

void sqz_widen8_avx512(const int8_t *x, int16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        _mm512_storeu_si512(y + i, _mm512_cvtepi8_epi16(
                                       _mm256_loadu_si256((const __m256i *)(const void *)(x + i))));
    if (i < n) {
        __mmask32 k = (__mmask32)((1u << (n - i)) - 1);
        _mm512_mask_storeu_epi16(y + i, k, _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(k, x + i)));
    }
}

/* ---------------------------------------------------------------- VBMI
 * spmv8 on the ELL copy (kernels/sparse.h): per block of 16 rows and
 * segment of 128 columns, each step picks 64 activation bytes with one
 * vpermi2b from the segment's two registers (x + 128 as u8) and adds 4
 * products per row lane with vpdpbusd (exact: u8 x s8, 4 per lane, int32
 * sums). Requantization per lane (rows have their own multiplier). */
int sqz_spmv8_vbmi_ok(void) {
    return sqz_cpu_has_avx512_vnni() && __builtin_cpu_supports("avx512vbmi");
}

__attribute__((target("avx512vbmi"))) void sqz_spmv8_vbmi(const sqz_csr8 *m, int64_t r0, int64_t r1,
                                                          const int8_t *x, void *tmp, int8_t *y) {
    uint8_t *xu = tmp; /* x + 128, zero-padded to whole segments */
    const int64_t nseg = m->nseg;
    for (int64_t c = 0; c < m->cols; c++) xu[c] = (uint8_t)(x[c] + 128);
    memset(xu + m->cols, 0, (size_t)(nseg * 128 - m->cols));
    for (int64_t b = r0 / 16; b * 16 < r1; b++) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t sg = 0; sg < nseg; sg++) {
            const __m512i xa = _mm512_loadu_si512(xu + sg * 128),
                          xb = _mm512_loadu_si512(xu + sg * 128 + 64);
            int32_t t = m->ell_step[b * nseg + sg];
            const int32_t t1 = m->ell_step[b * nseg + sg + 1];
            const uint8_t *ip = m->ell_idx;
            const int8_t *wp = m->ell_w;
            for (; t + 4 <= t1; t += 4) { /* four independent chains */
#define STEP(acc, u)                                                                               \
    acc = _mm512_dpbusd_epi32(                                                                     \
        acc, _mm512_permutex2var_epi8(xa, _mm512_loadu_si512(ip + (size_t)(t + u) * 64), xb),      \
        _mm512_loadu_si512(wp + (size_t)(t + u) * 64))
                STEP(a0, 0);
                STEP(a1, 1);
                STEP(a2, 2);
                STEP(a3, 3);
            }
            for (; t < t1; t++) STEP(a0, 0);
#undef STEP
        }
        __m512i acc = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
        acc = _mm512_add_epi32(acc, _mm512_loadu_si512(m->ell_off + b * 16));
        __m512i v =
            rq16f(acc, _mm512_loadu_ps(m->ell_s + b * 16), _mm512_set1_ps((float)(m->lo - m->zp)),
                  _mm512_set1_ps((float)(m->hi - m->zp)), _mm512_set1_epi32(m->zp));
        /* rows [max(r0, 16 b), min(r1, 16 b + 16)) */
        int64_t lo = r0 > b * 16 ? r0 - b * 16 : 0, hi = r1 - b * 16 < 16 ? r1 - b * 16 : 16;
        __mmask16 mk = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
        _mm_mask_storeu_epi8(y + b * 16, mk, _mm512_cvtepi32_epi8(v));
    }
}

/* inline asm: gcc 12 copies the builtin's accumulators in and out of spare
 * registers every iteration in these loops (a vmovdqa per vpdpbusd) */
#define DPB(acc, x, w) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w))

/* ---------------------------------------------------------------- 1x4 blocks
 * spmm8b (kernels/sparse.h): the input packed as u8 quads of 4 channels per
 * pixel, so one broadcast int32 of a block's 4 weights and one vpdpbusd do
 * the block for 16 pixels (exact: u8 x s8, 4 products per lane). Up to 64
 * pixels per step in nv accumulators (nv = 4 while more than 48 pixels are
 * left), and a second set of nv taking every other block (vpdpbusd
 * latency). Requantization as spmm8_body; the packs of pack64 with the four accumulators transposed
 * by one vpermd. */
static inline __attribute__((always_inline)) void b4_tile(const struct sqz_q4row *row,
                                                          const int32_t *rec, const uint8_t *xp,
                                                          int8_t *y, int64_t n, __m512i zpw,
                                                          __m512 flo, __m512 fhi, const int nv) {
    const int32_t k1 = row->q1;
    const __m512i o = _mm512_set1_epi32(row->off), z = _mm512_setzero_si512();
    __m512i a0 = o, a1 = o, a2 = o, a3 = o, c0 = z, c1 = z, c2 = z, c3 = z;
    int32_t k = row->q0;
#define B4(acc, kk, i)                                                                             \
    DPB(acc, _mm512_loadu_si512(xp + rec[2 * (kk)] + 64 * (i)),                                    \
        _mm512_set1_epi32(rec[2 * (kk) + 1]))
    for (; k + 2 <= k1; k += 2) { /* two sets of chains: even and odd blocks */
        B4(a0, k, 0);
        B4(c0, k + 1, 0);
        if (nv > 1) {
            B4(a1, k, 1);
            B4(c1, k + 1, 1);
        }
        if (nv > 2) {
            B4(a2, k, 2);
            B4(c2, k + 1, 2);
        }
        if (nv > 3) {
            B4(a3, k, 3);
            B4(c3, k + 1, 3);
        }
    }
    if (k < k1) {
        B4(a0, k, 0);
        if (nv > 1) B4(a1, k, 1);
        if (nv > 2) B4(a2, k, 2);
        if (nv > 3) B4(a3, k, 3);
    }
#undef B4
    a0 = _mm512_add_epi32(a0, c0);
    a1 = _mm512_add_epi32(a1, c1);
    a2 = _mm512_add_epi32(a2, c2);
    a3 = _mm512_add_epi32(a3, c3);
    const __m512 sv = _mm512_set1_ps(row->s);
    __m512i f1 = z, f2 = z, f3 = z;
    const __m512i f0 = rq16f(a0, sv, flo, fhi, z);
    if (nv > 1) f1 = rq16f(a1, sv, flo, fhi, z);
    if (nv > 2) f2 = rq16f(a2, sv, flo, fhi, z);
    if (nv > 3) f3 = rq16f(a3, sv, flo, fhi, z);
    /* packs (zp added to the int16 values; all in [lo, hi], exact):
     * 128-bit lane L = f0[L], f1[L], f2[L], f3[L] (4 bytes each); pixels
     * 4 j .. 4 j + 3 are f(j / 4)[j % 4]: dword 4 (j % 4) + j / 4 */
    __m512i b = _mm512_packs_epi16(_mm512_adds_epi16(_mm512_packs_epi32(f0, f1), zpw),
                                   _mm512_adds_epi16(_mm512_packs_epi32(f2, f3), zpw));
    b = _mm512_permutexvar_epi32(
        _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0), b);
    if (n >= 64)
        _mm512_storeu_si512(y, b);
    else
        _mm512_mask_storeu_epi8(y, ((__mmask64)1 << n) - 1, b);
}

/* rows [r0, r1), pixels [p0, p0 + 16 nv) of the P (n: those < P) */
#define B4_ROWS(NV)                                                                                \
    static __attribute__((noinline)) void b4_rows##NV(const sqz_csr8 *m, int64_t r0, int64_t r1,   \
                                                      const uint8_t *XB, int64_t p0, int64_t P,    \
                                                      int8_t *Y) {                                 \
        const struct sqz_q4row *rows = m->b4_row;                                                  \
        const int32_t *rec = m->b4_rec;                                                            \
        const __m512i zpw = _mm512_set1_epi16((short)m->zp);                                       \
        const __m512 flo = _mm512_set1_ps((float)(m->lo - m->zp)),                                 \
                     fhi = _mm512_set1_ps((float)(m->hi - m->zp));                                 \
        const int64_t n = P - p0 < 16 * (NV) ? P - p0 : 16 * (NV);                                 \
        for (int64_t r = r0; r < r1; r++)                                                          \
            b4_tile(rows + r, rec, XB + p0 * 4, Y + r * P + p0, n, zpw, flo, fhi, NV);             \
    }
B4_ROWS(1)
B4_ROWS(2)
B4_ROWS(3)
B4_ROWS(4)
#undef B4_ROWS

void sqz_spmm8b_vnni(const sqz_csr8 *m, int64_t r0, int64_t r1, const uint8_t *XB, int64_t xs,
                     int64_t P, int8_t *Y) {
    if (m->b4_xs != xs || !m->b4_rec) { /* offsets made for another stride */
        sqz_spmm8b_ref(m, r0, r1, XB, xs, P, Y);
        return;
    }
    /* pixel steps outside, rows inside: each step's loop has one nv */
    for (int64_t p = 0; p < P; p += 64) {
        const int64_t n = P - p;
        if (n > 48)
            b4_rows4(m, r0, r1, XB, p, P, Y);
        else if (n > 32)
            b4_rows3(m, r0, r1, XB, p, P, Y);
        else if (n > 16)
            b4_rows2(m, r0, r1, XB, p, P, Y);
        else
            b4_rows1(m, r0, r1, XB, p, P, Y);
    }
}

/* 16 pixels of 4 channel rows -> 64 bytes of quads: unpack bytes (a, b),
 * (c, d), then the 16-bit pairs; masked loads past P give 0 -> 128. */
void sqz_pack4_avx512(const int8_t *x, int64_t C, int64_t P, int64_t xs, uint8_t *XB) {
    static const int8_t zero_row[16];
    const __m128i bias = _mm_set1_epi8((char)0x80);
    for (int64_t g = 0; g < (C + 3) / 4; g++) {
        const int8_t *row[4];
        int64_t rs[4]; /* 0 for the channels past C (one zero row) */
        for (int t = 0; t < 4; t++) {
            int64_t c = 4 * g + t;
            row[t] = c < C ? x + c * P : zero_row;
            rs[t] = c < C ? 1 : 0;
        }
        uint8_t *o = XB + g * xs * 4;
        for (int64_t p = 0; p < xs; p += 16) {
            const int64_t n = P - p;
            const __mmask16 mk = n >= 16  ? (__mmask16)0xFFFF
                                 : n <= 0 ? (__mmask16)0
                                          : (__mmask16)((1u << n) - 1);
            __m128i v[4];
            for (int t = 0; t < 4; t++)
                v[t] = _mm_xor_si128(_mm_maskz_loadu_epi8(mk, row[t] + p * rs[t]), bias);
            __m128i ab0 = _mm_unpacklo_epi8(v[0], v[1]), ab1 = _mm_unpackhi_epi8(v[0], v[1]);
            __m128i cd0 = _mm_unpacklo_epi8(v[2], v[3]), cd1 = _mm_unpackhi_epi8(v[2], v[3]);
            _mm_storeu_si128((__m128i *)(void *)(o + p * 4), _mm_unpacklo_epi16(ab0, cd0));
            _mm_storeu_si128((__m128i *)(void *)(o + p * 4 + 16), _mm_unpackhi_epi16(ab0, cd0));
            _mm_storeu_si128((__m128i *)(void *)(o + p * 4 + 32), _mm_unpacklo_epi16(ab1, cd1));
            _mm_storeu_si128((__m128i *)(void *)(o + p * 4 + 48), _mm_unpackhi_epi16(ab1, cd1));
        }
    }
}

/* ---------------------------------------------------------------- quads
 * spmm8q (kernels/sparse.h): per row, its non-zeros four at a time (any
 * columns); 64 pixels of the four u8 input rows are interleaved into
 * per-pixel quads by byte then word unpacks (port 5), and one vpdpbusd per
 * 16 pixels with the broadcast weight quad (port 0) does the four entries,
 * so an unstructured row costs a quarter of its non-zeros in dot
 * instructions. Accumulator i, 128-bit lane L, dword j holds pixel
 * 16 L + 4 i + j, which the two packs (as pack64) put back in order. A
 * row's last <= 16 pixels (P % 64 in 1..16) take xmm steps instead of a
 * whole 64-pixel one. */

/* The last n <= 16 pixels of row r: xmm unpacks and
 * dots, only the nv (= ceil(n / 4)) quad vectors needed (vector i: pixels
 * 4 i .. 4 i + 3), then one 16-lane requantization. */
static inline __attribute__((always_inline)) void
q4_tail_body(const sqz_csr8 *m, int64_t r, const uint8_t *xp, int8_t *y, int64_t n, const int nv) {
    const struct sqz_q4row *row = m->q4_row + r;
    const __m128i o = _mm_set1_epi32(row->off);
    __m128i a0 = o, a1 = o, a2 = o, a3 = o;
    for (int32_t k = row->q0; k < row->q1; k++) {
        const int32_t *c = m->q4_rec + 5 * (int64_t)k;
        const __m128i w = _mm_set1_epi32(c[4]);
        const __m128i xa = _mm_loadu_si128((const __m128i *)(const void *)(xp + c[0])),
                      xb = _mm_loadu_si128((const __m128i *)(const void *)(xp + c[1])),
                      xc = _mm_loadu_si128((const __m128i *)(const void *)(xp + c[2])),
                      xd = _mm_loadu_si128((const __m128i *)(const void *)(xp + c[3]));
        const __m128i ab0 = _mm_unpacklo_epi8(xa, xb), cd0 = _mm_unpacklo_epi8(xc, xd);
        DPB(a0, _mm_unpacklo_epi16(ab0, cd0), w);
        if (nv > 1) DPB(a1, _mm_unpackhi_epi16(ab0, cd0), w);
        if (nv > 2) {
            const __m128i ab1 = _mm_unpackhi_epi8(xa, xb), cd1 = _mm_unpackhi_epi8(xc, xd);
            DPB(a2, _mm_unpacklo_epi16(ab1, cd1), w);
            if (nv > 3) DPB(a3, _mm_unpackhi_epi16(ab1, cd1), w);
        }
    }
    __m512i acc = _mm512_inserti32x4(_mm512_castsi128_si512(a0), a1, 1);
    acc = _mm512_inserti32x4(_mm512_inserti32x4(acc, a2, 2), a3, 3);
    const __m512i v = rq16f(acc, _mm512_set1_ps(row->s), _mm512_set1_ps((float)(m->lo - m->zp)),
                            _mm512_set1_ps((float)(m->hi - m->zp)), _mm512_set1_epi32(m->zp));
    const __m128i b = _mm512_cvtepi32_epi8(v);
    _mm_mask_storeu_epi8(y, (__mmask16)((1u << n) - 1), b);
}

/* Quads of one row over 64 pixels from xp into a0..a3 (see above). */
#define Q4_CHUNK(row, rec, xp, a0, a1, a2, a3)                                                     \
    for (int32_t k = (row)->q0; k < (row)->q1; k++) {                                              \
        const int32_t *c = (rec) + 5 * (int64_t)k;                                                 \
        const __m512i w = _mm512_set1_epi32(c[4]);                                                 \
        const __m512i xa = _mm512_loadu_si512((xp) + c[0]), xb = _mm512_loadu_si512((xp) + c[1]),  \
                      xc = _mm512_loadu_si512((xp) + c[2]), xd = _mm512_loadu_si512((xp) + c[3]);  \
        const __m512i ab0 = _mm512_unpacklo_epi8(xa, xb), ab1 = _mm512_unpackhi_epi8(xa, xb),      \
                      cd0 = _mm512_unpacklo_epi8(xc, xd), cd1 = _mm512_unpackhi_epi8(xc, xd);      \
        DPB(a0, _mm512_unpacklo_epi16(ab0, cd0), w);                                               \
        DPB(a1, _mm512_unpackhi_epi16(ab0, cd0), w);                                               \
        DPB(a2, _mm512_unpacklo_epi16(ab1, cd1), w);                                               \
        DPB(a3, _mm512_unpackhi_epi16(ab1, cd1), w);                                               \
    }

/* a0..a3 of row -> 64 int8 in pixel order (zp added to the int16 packs;
 * the float clamp bounds everything to [lo, hi], so the packs are exact) */
static inline __m512i q4_requant(const struct sqz_q4row *row, __m512i a0, __m512i a1, __m512i a2,
                                 __m512i a3, __m512i zpw, __m512 flo, __m512 fhi) {
    const __m512 sv = _mm512_set1_ps(row->s);
    const __m512i z = _mm512_setzero_si512();
    const __m512i h0 = _mm512_packs_epi32(rq16f(a0, sv, flo, fhi, z), rq16f(a1, sv, flo, fhi, z));
    const __m512i h1 = _mm512_packs_epi32(rq16f(a2, sv, flo, fhi, z), rq16f(a3, sv, flo, fhi, z));
    return _mm512_packs_epi16(_mm512_adds_epi16(h0, zpw), _mm512_adds_epi16(h1, zpw));
}

/* P <= 64: one chunk per row, few live values (no spills in the row loop) */
static __attribute__((noinline)) void q4_short(const sqz_csr8 *m, int64_t r0, int64_t r1,
                                               const uint8_t *XU, int64_t P, int8_t *Y) {
    const struct sqz_q4row *rows = m->q4_row;
    const int32_t *rec = m->q4_rec;
    const __m512i zpw = _mm512_set1_epi16((short)m->zp);
    const __m512 flo = _mm512_set1_ps((float)(m->lo - m->zp)),
                 fhi = _mm512_set1_ps((float)(m->hi - m->zp));
    const __mmask64 mk = P >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << P) - 1;
    for (int64_t r = r0; r < r1; r++) {
        const struct sqz_q4row *row = rows + r;
        const __m512i o = _mm512_set1_epi32(row->off);
        __m512i a0 = o, a1 = o, a2 = o, a3 = o;
        Q4_CHUNK(row, rec, XU, a0, a1, a2, a3)
        const __m512i b = q4_requant(row, a0, a1, a2, a3, zpw, flo, fhi);
        _mm512_mask_storeu_epi8(Y + r * P, mk, b);
    }
}

/* out of line: keeps the main loop's registers free */
static __attribute__((noinline)) void q4_tail(const sqz_csr8 *m, int64_t r, const uint8_t *xp,
                                              int8_t *y, int64_t n) {
    if (n > 12)
        q4_tail_body(m, r, xp, y, n, 4);
    else if (n > 8)
        q4_tail_body(m, r, xp, y, n, 3);
    else if (n > 4)
        q4_tail_body(m, r, xp, y, n, 2);
    else
        q4_tail_body(m, r, xp, y, n, 1);
}

void sqz_spmm8q_vnni(const sqz_csr8 *m, int64_t r0, int64_t r1, const uint8_t *XU, int64_t xs,
                     int64_t P, int8_t *Y) {
    if (m->q4_xs != xs || !m->q4_rec) { /* offsets made for another stride */
        sqz_spmm8q_ref(m, r0, r1, XU, xs, P, Y);
        return;
    }
    if (P <= 64 && P > 16) {
        q4_short(m, r0, r1, XU, P, Y);
        return;
    }
    const struct sqz_q4row *rows = m->q4_row;
    const int32_t *rec = m->q4_rec;
    const __m512i zpw = _mm512_set1_epi16((short)m->zp);
    const __m512 flo = _mm512_set1_ps((float)(m->lo - m->zp)),
                 fhi = _mm512_set1_ps((float)(m->hi - m->zp));
    const int64_t pfull = P % 64 > 0 && P % 64 <= 16 ? P / 64 * 64 : P; /* then the tail */
    for (int64_t r = r0; r < r1; r++) {
        const struct sqz_q4row *row = rows + r;
        int8_t *y = Y + r * P;
        for (int64_t p = 0; p < pfull; p += 64) {
            const __m512i o = _mm512_set1_epi32(row->off);
            __m512i a0 = o, a1 = o, a2 = o, a3 = o;
            const uint8_t *xp = XU + p;
            Q4_CHUNK(row, rec, xp, a0, a1, a2, a3)
            const __m512i b = q4_requant(row, a0, a1, a2, a3, zpw, flo, fhi);
            const int64_t n = P - p;
            if (n >= 64)
                _mm512_storeu_si512(y + p, b);
            else
                _mm512_mask_storeu_epi8(y + p, ((__mmask64)1 << n) - 1, b);
        }
        if (pfull < P) q4_tail(m, r, XU + pfull, y + pfull, P - pfull);
    }
}

void sqz_tou8_avx512(const int8_t *x, int64_t C, int64_t P, int64_t xs, uint8_t *XU) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    for (int64_t c = 0; c < C; c++)
        for (int64_t p = 0; p < xs; p += 64) {
            const int64_t n = P - p;
            const __mmask64 mk = n >= 64  ? ~(__mmask64)0
                                 : n <= 0 ? (__mmask64)0
                                          : ((__mmask64)1 << n) - 1;
            _mm512_storeu_si512(XU + c * xs + p,
                                _mm512_xor_si512(_mm512_maskz_loadu_epi8(mk, x + c * P + p), bias));
        }
}

/* Eight rows of A per pass over the ELL copy (int8 Gemm, M >= 8): each
 * step's index and weight vectors are loaded once for the eight rows (one
 * vpermi2b and one vpdpbusd each), so the ELL copy streams from cache once
 * per eight rows instead of once per row. x: 8 rows of cols int8 (stride
 * xs), y: 8 rows of m->rows outputs (stride ys); tmp: 8 *
 * sqz_spmv8_tmp_bytes(m) bytes, 64-aligned. Rows [r0, r1) of W. */
__attribute__((target("avx512vbmi"))) void sqz_spmv8x8_vbmi(const sqz_csr8 *m, int64_t r0,
                                                            int64_t r1, const int8_t *x, int64_t xs,
                                                            void *tmp, int8_t *y, int64_t ys) {
    const int64_t nseg = m->nseg, seg = (nseg * 128 + 63) / 64 * 64;
    uint8_t *xu = tmp; /* 8 rows of x + 128, zero-padded to whole segments */
    for (int i = 0; i < 8; i++) {
        for (int64_t c = 0; c < m->cols; c++) xu[i * seg + c] = (uint8_t)(x[i * xs + c] + 128);
        memset(xu + i * seg + m->cols, 0, (size_t)(seg - m->cols));
    }
    for (int64_t b = r0 / 16; b * 16 < r1; b++) {
        __m512i acc[8];
        for (int i = 0; i < 8; i++) acc[i] = _mm512_setzero_si512();
        for (int64_t sg = 0; sg < nseg; sg++) {
            int32_t t = m->ell_step[b * nseg + sg];
            const int32_t t1 = m->ell_step[b * nseg + sg + 1];
            if (t == t1) continue;
            __m512i xa[8], xb[8];
            for (int i = 0; i < 8; i++) {
                xa[i] = _mm512_loadu_si512(xu + i * seg + sg * 128);
                xb[i] = _mm512_loadu_si512(xu + i * seg + sg * 128 + 64);
            }
            for (; t < t1; t++) {
                const __m512i ix = _mm512_loadu_si512(m->ell_idx + (size_t)t * 64);
                const __m512i w = _mm512_loadu_si512(m->ell_w + (size_t)t * 64);
                for (int i = 0; i < 8; i++)
                    DPB(acc[i], _mm512_permutex2var_epi8(xa[i], ix, xb[i]), w);
            }
        }
        const int64_t lo = r0 > b * 16 ? r0 - b * 16 : 0, hi = r1 - b * 16 < 16 ? r1 - b * 16 : 16;
        const __mmask16 mk = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
        const __m512i off = _mm512_loadu_si512(m->ell_off + b * 16);
        const __m512 sv = _mm512_loadu_ps(m->ell_s + b * 16),
                     flo = _mm512_set1_ps((float)(m->lo - m->zp)),
                     fhi = _mm512_set1_ps((float)(m->hi - m->zp));
        const __m512i zpv = _mm512_set1_epi32(m->zp);
        for (int i = 0; i < 8; i++) {
            __m512i v = rq16f(_mm512_add_epi32(acc[i], off), sv, flo, fhi, zpv);
            _mm_mask_storeu_epi8(y + i * ys + b * 16, mk, _mm512_cvtepi32_epi8(v));
        }
    }
}
