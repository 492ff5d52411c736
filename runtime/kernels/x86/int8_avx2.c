/* int8_avx2.c - AVX2 int8 microkernels on vpmaddwd (int16 x int16 pairs
 * summed into int32: exact, unlike vpmaddubsw's saturating int16 sums) and
 * the AVX2 depthwise plane kernel. Layouts and the bit-exactness argument:
 * int8_simd.h; requantization: int8.h. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "int8_simd.h"
#include "par.h"

#define MR 4 /* conv output channels per block */
#define NB 8 /* gemm output channels per block (one ymm) */

/* int8.h requantization of 8 int32 lanes of one channel: float convert,
 * multiply, clamp to [lo - zp, hi - zp], convert with round to nearest even
 * (MXCSR default), + zp. */
static inline __m256i rq8(__m256i acc, const sqz_i8_rqv *r, int32_t zp, int32_t lo, int32_t hi) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(r->s));
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps((float)(lo - zp))),
                      _mm256_set1_ps((float)(hi - zp)));
    return _mm256_add_epi32(_mm256_cvtps_epi32(v), _mm256_set1_epi32(zp));
}

/* 16 int32 (in range) -> 16 bytes at y, n of them (n may be <= 0). */
static inline void store16(int8_t *y, __m256i v0, __m256i v1, int64_t n) {
    if (n <= 0) return;
    __m256i p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(v0, v1), 0xD8);
    __m256i p8 = _mm256_packs_epi16(p16, p16);
    __m128i b = _mm_unpacklo_epi64(_mm256_castsi256_si128(p8), _mm256_extracti128_si256(p8, 1));
    if (n >= 16) {
        _mm_storeu_si128((__m128i *)(void *)y, b);
    } else {
        int8_t t[16];
        _mm_storeu_si128((__m128i *)(void *)t, b);
        memcpy(y, t, (size_t)n);
    }
}

static inline __m256i bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* ------------------------------------------------------------- conv */

static void conv_avx2(const void *xpv, int64_t T, int64_t kq, const int8_t *wpv, int mr,
                      int64_t npx, int8_t *y, int64_t ys, const sqz_i8_epi *e) {
    const int16_t *xp = xpv;
    const int16_t *wp = (const int16_t *)(const void *)wpv;
    for (int64_t j = 0; j < npx; j += 16) {
        __m256i acc[MR][2];
        for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
        const int16_t *xk = xp + j * 2;
        const int16_t *wk = wp;
        for (int64_t k = 0; k < kq; k++, xk += T * 2, wk += MR * 2) {
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)xk);
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(xk + 16));
            for (int r = 0; r < MR; r++) {
                __m256i b = bcast4(wk + 2 * r);
                acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(x0, b));
                acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(x1, b));
            }
        }
        for (int r = 0; r < mr; r++) {
            __m256i o = _mm256_set1_epi32(e->off[r]);
            __m256i v0 = rq8(_mm256_add_epi32(acc[r][0], o), &e->rq[r], e->zp, e->lo, e->hi);
            __m256i v1 = rq8(_mm256_add_epi32(acc[r][1], o), &e->rq[r], e->zp, e->lo, e->hi);
            store16(y + r * ys + j, v0, v1, npx - j);
        }
    }
}

/* rows[k][0..T) int8 -> [k/2][T][2] int16 (sign-extended pairs). */
static void interleave_avx2(const int8_t *const *rows, int64_t Kp, int64_t T, void *xpv) {
    int16_t *xp = xpv;
    for (int64_t k = 0; k < Kp; k += 2) {
        const int8_t *r0 = rows[k], *r1 = rows[k + 1];
        int16_t *d = xp + k * T;
        for (int64_t j = 0; j < T; j += 16) {
            __m256i a =
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(r0 + j)));
            __m256i b =
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(r1 + j)));
            __m256i lo = _mm256_unpacklo_epi16(a, b), hi = _mm256_unpackhi_epi16(a, b);
            _mm256_storeu_si256((__m256i *)(void *)(d + j * 2),
                                _mm256_permute2x128_si256(lo, hi, 0x20));
            _mm256_storeu_si256((__m256i *)(void *)(d + j * 2 + 16),
                                _mm256_permute2x128_si256(lo, hi, 0x31));
        }
    }
}

/* ------------------------------------------------------------- gemm */

static void gemm_avx2(const void *av, int nrows, int64_t Kp, const int8_t *wpv, int64_t n0,
                      int64_t nn, int8_t *y, int64_t N, const sqz_i8_epi *e) {
    const int16_t *a = av;
    const int16_t *wp = (const int16_t *)(const void *)wpv;
    const int16_t *a0 = a, *a1 = a + Kp, *a2 = a + 2 * Kp, *a3 = a + 3 * Kp; /* padded rows */
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
    int64_t kq = Kp / 2;
    for (int64_t k = 0; k < kq; k++) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(wp + k * NB * 2));
        c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(bcast4(a0 + 2 * k), w));
        c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(bcast4(a1 + 2 * k), w));
        c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(bcast4(a2 + 2 * k), w));
        c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(bcast4(a3 + 2 * k), w));
    }
    int32_t t[4][NB];
    _mm256_storeu_si256((__m256i *)(void *)t[0], c0);
    _mm256_storeu_si256((__m256i *)(void *)t[1], c1);
    _mm256_storeu_si256((__m256i *)(void *)t[2], c2);
    _mm256_storeu_si256((__m256i *)(void *)t[3], c3);
    for (int r = 0; r < nrows; r++)
        for (int64_t l = 0; l < nn; l++) {
            sqz_rq rr = {e->rq[n0 + l].s};
            int32_t acc = (int32_t)((uint32_t)t[r][l] + (uint32_t)e->off[n0 + l]);
            y[r * N + n0 + l] = (int8_t)sqz_rq_apply(acc, rr, e->zp, e->lo, e->hi);
        }
}

static void convert_avx2(const int8_t *x, int64_t K, int64_t Kp, int32_t zp_x, void *av) {
    int16_t *a = av;
    for (int64_t k = 0; k < K; k++) a[k] = x[k];
    for (int64_t k = K; k < Kp; k++) a[k] = (int16_t)zp_x;
}

/* ------------------------------------------------------------ depthwise */

/* Sign-extended bytes x[0], x[s], ..., x[7 s] for s = 1 or 2. */
static inline __m256i load8_s(const int8_t *x, int64_t s) {
    if (s == 1) return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)x));
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)x));
    return _mm256_srai_epi32(_mm256_slli_epi32(w, 24), 24);
}

static void dw_plane_avx2(const int8_t *xpad, int64_t PW, const int8_t *w, int64_t kh, int64_t kw,
                          int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t OH, int64_t OW,
                          int32_t off, sqz_i8_rqv rq, int32_t zp, int32_t lo, int32_t hi, int8_t *y,
                          int32_t *accbuf) {
    (void)accbuf;
    __m256i o = _mm256_set1_epi32(off);
    for (int64_t oh = 0; oh < OH; oh++) {
        const int8_t *xr = xpad + oh * sh * PW;
        for (int64_t ow = 0; ow < OW; ow += 16) {
            __m256i a0 = o, a1 = o;
            for (int64_t i = 0; i < kh; i++) {
                const int8_t *xi = xr + i * dh * PW + ow * sw;
                for (int64_t j = 0; j < kw; j++) {
                    __m256i wv = _mm256_set1_epi32((int32_t)(uint16_t)(int16_t)w[i * kw + j]);
                    const int8_t *xj = xi + j * dw;
                    a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(load8_s(xj, sw), wv));
                    a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(load8_s(xj + 8 * sw, sw), wv));
                }
            }
            store16(y + oh * OW + ow, rq8(a0, &rq, zp, lo, hi), rq8(a1, &rq, zp, lo, hi), OW - ow);
        }
    }
}

const sqz_i8_isa sqz_i8_isa_avx2 = {
    SQZ_I8_ISA_AVX2, 2, MR, NB, 2, 0, conv_avx2, interleave_avx2, gemm_avx2, convert_avx2,
    dw_plane_avx2,
};

/* ------------------------------------------------------- QuantizeLinear */

/* y = clamp(round_half_even(x / s) + zp, -128, 127), NaN -> zp: the same
 * IEEE operations as the reference (divps, roundps to nearest even in the
 * default rounding mode, one float add, min / max), so bit-identical.
 * With AVX-512 (unless SQZ_I8_Q256 is set: A/B, tests) 16 lanes at a time
 * first try n = round_half_even(t), t = x * r, r = RN(1 / s), kept when every
 * lane has |t| < 1024 and |t - n| < 0.5 - 2^-10; otherwise (NaN, inf, huge,
 * near a tie) they take the division (sqz_i8_quantize_avx512). Why n is then
 * exact: q = x / s, t = q (1 + e1)(1 + e2), |e1|, |e2| <= 2^-24 (r and the
 * product correctly rounded, r normal: 2^-100 < s < 2^100; a subnormal t
 * only adds 2^-150 absolute), so |t - q| < 1024.001 * 2^-22.9 < 2^-12.9; the
 * reference's qf = RN(q) is within half an ulp of q, <= 2^-14 below
 * 1024.001, so |qf - t| < 2^-12 and |qf - n| < 0.5 - 2^-10 + 2^-12 < 0.5:
 * qf rounds to n too (no tie). t - n is exact (both multiples of ulp(t),
 * |t - n| <= 0.5). The same estimate on AVX2 (8 lanes, roundps) was no
 * faster than the division there. */
typedef struct q_p {
    float scale, rcp; /* rcp: RN(1 / scale) when the fast path is sound, else 0 */
    int32_t zp;
    int avx512; /* sqz_i8_quantize_avx512 */
    int64_t n;
} q_p;

static int quantize_prepare(sqz_op_ctx *ctx) {
    const sqz_op_impl *ref = sqz_ref_op(SQZ_OP_QUANTIZE_LINEAR);
    int rc = ref->prepare(ctx); /* validation and shape */
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    if (rc != 0) return rc;
    q_p *p = malloc(sizeof *p);
    if (!p) return sqz_op_fail(ctx, "QuantizeLinear: out of memory");
    p->scale = ctx->out_q[0].scale[0];
    p->rcp = p->scale > 0x1p-100f && p->scale < 0x1p100f ? 1.0f / p->scale : 0.0f;
    p->zp = ctx->out_q[0].zero_point[0];
    p->avx512 = sqz_cpu_has_avx512() && !getenv("SQZ_I8_Q256");
    p->n = sqz_shape_numel(&ctx->in_shape[0]);
    ctx->params = p;
    return 0;
}

/* elements [b, e) (b a multiple of 16) */
static void quantize_range(const q_p *p, const float *x, int8_t *y, int64_t b, int64_t e) {
    if (p->avx512) {
        sqz_i8_quantize_avx512(x + b, e - b, p->scale, p->rcp, p->zp, y + b);
        return;
    }
    const __m256 vs = _mm256_set1_ps(p->scale), vz = _mm256_set1_ps((float)p->zp);
    const __m256 lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
    int64_t i = b;
    for (; i + 16 <= e; i += 16) {
        __m256i q[2];
        for (int h = 0; h < 2; h++) {
            __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i + 8 * h), vs);
            __m256 ord = _mm256_cmp_ps(v, v, _CMP_ORD_Q);
            __m256 r = _mm256_add_ps(
                _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
            r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
            q[h] = _mm256_cvtps_epi32(_mm256_blendv_ps(vz, r, ord));
        }
        store16(y + i, q[0], q[1], 16);
    }
    for (; i < e; i++) y[i] = sqz_i8_quantize1(x[i], p->scale, p->zp);
}

typedef struct q_job {
    const q_p *p;
    const float *x;
    int8_t *y;
    int parts;
} q_job;

static void quantize_part(void *arg, int t) {
    const q_job *j = arg;
    int64_t n = j->p->n, b = n * t / j->parts / 16 * 16,
            e = t + 1 == j->parts ? n : n * (t + 1) / j->parts / 16 * 16;
    if (e > b) quantize_range(j->p, j->x, j->y, b, e);
}

/* ~0.2 ns an element (30 us for a 3x224x224 input; with AVX-512 ~27 us, the
 * input read from beyond L2 then bounds it), so large inputs split over the
 * threads. */
static void quantize_run(const sqz_op_ctx *ctx) {
    const q_p *p = ctx->params;
    q_job j = {p, ctx->in_data[0], (int8_t *)ctx->out_data[0], 1};
    int nt = ctx->num_threads > 1 && p->n >= 16384 ? ctx->num_threads : 1;
    if (nt <= 1) {
        quantize_range(p, j.x, j.y, 0, p->n);
        return;
    }
    j.parts = 4 * nt; /* a few parts per thread (par.h) */
    sqz_par_for(nt, j.parts, quantize_part, &j);
}

const sqz_op_impl sqz_i8_quantize_avx2 = {quantize_prepare, quantize_run, free, NULL};

/* ------------------------------------------------------------------ Add */

/* Add of two same-shape i8 tensors, the reference's integer formula
 * (ref/int8.c) 16 elements at a time:
 *   y = clamp(zp_y + ((da * Ma + db * Mb + 2^(S-1)) >> S), lo, hi),
 *   da = a - zp_a, db = b - zp_b, both products exact in 64 bits
 *   (|d| <= 255, M < 2^31), the arithmetic shift as in rq8. The constants
 * are derived exactly as the reference derives them. */
typedef sqz_i8_addp add_p;

int sqz_i8_add_params(sqz_op_ctx *ctx, sqz_i8_addp *pp) {
    const sqz_op_impl *ref = sqz_ref_op_int8(SQZ_OP_ADD);
    int rc = ref->prepare(ctx); /* validation, shape */
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    if (rc != 0) return rc;
    int64_t n = sqz_shape_numel(&ctx->out_shape[0]);
    if (sqz_shape_numel(&ctx->in_shape[0]) != n || sqz_shape_numel(&ctx->in_shape[1]) != n)
        return 1; /* broadcasting: another kernel */
    add_p p;
    float sa, sb, sy;
    if (sqz_i8_in_params(ctx, 0, &sa, &p.zp_a) || sqz_i8_in_params(ctx, 1, &sb, &p.zp_b) ||
        sqz_i8_out_params(ctx, 0, &sy, &p.zp_y) || sqz_i8_act_bounds(ctx, sy, p.zp_y, &p.lo, &p.hi))
        return -1;
    double ma = (double)sa / sy, mb = (double)sb / sy;
    int32_t M, S;
    if (sqz_i8_fx_make(ma > mb ? ma : mb, &M, &S)) return 1;
    p.S = S;
    p.Ma = ma > mb ? M : llround(ldexp(ma, S));
    p.Mb = ma > mb ? llround(ldexp(mb, S)) : M;
    if (p.Ma > INT32_MAX || p.Mb > INT32_MAX || p.Ma < 0 || p.Mb < 0) return 1;
    p.rnd = (int64_t)1 << (p.S - 1);
    p.n = n;
    *pp = p;
    return 0;
}

static int add_prepare(sqz_op_ctx *ctx) {
    add_p p;
    int rc = sqz_i8_add_params(ctx, &p);
    if (rc != 0) return rc;
    add_p *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "Add: out of memory");
    *pp = p;
    ctx->params = pp;
    return 0;
}

/* 8 lanes: clamp(zp + ((da Ma + db Mb + rnd) >> S)) as int32. */
static inline __m256i add8(__m256i da, __m256i db, __m256i Ma, __m256i Mb, __m256i add, __m256i sub,
                           __m128i sc, __m256i l, __m256i h, __m256i zp) {
    __m256i ev = _mm256_add_epi64(_mm256_mul_epi32(da, Ma), _mm256_mul_epi32(db, Mb));
    __m256i od = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(da, 32), Ma),
                                  _mm256_mul_epi32(_mm256_srli_epi64(db, 32), Mb));
    ev = _mm256_sub_epi64(_mm256_srl_epi64(_mm256_add_epi64(ev, add), sc), sub);
    od = _mm256_sub_epi64(_mm256_srl_epi64(_mm256_add_epi64(od, add), sc), sub);
    ev = _mm256_blendv_epi8(ev, l, _mm256_cmpgt_epi64(l, ev));
    ev = _mm256_blendv_epi8(ev, h, _mm256_cmpgt_epi64(ev, h));
    od = _mm256_blendv_epi8(od, l, _mm256_cmpgt_epi64(l, od));
    od = _mm256_blendv_epi8(od, h, _mm256_cmpgt_epi64(od, h));
    return _mm256_add_epi32(_mm256_blend_epi32(ev, _mm256_slli_epi64(od, 32), 0xAA), zp);
}

static void add_run(const sqz_op_ctx *ctx) {
    const add_p *p = ctx->params;
    const int8_t *a = (const int8_t *)ctx->in_data[0], *b = (const int8_t *)ctx->in_data[1];
    int8_t *y = (int8_t *)ctx->out_data[0];
    const __m256i Ma = _mm256_set1_epi64x(p->Ma), Mb = _mm256_set1_epi64x(p->Mb);
    /* |da Ma + db Mb| < 2^41, so t + 2^62 stays positive: logical shift, then
     * subtract 2^(62 - S) = the arithmetic shift */
    const __m256i add = _mm256_set1_epi64x(p->rnd + ((int64_t)1 << 62));
    const __m256i sub = _mm256_set1_epi64x((int64_t)1 << (62 - p->S));
    const __m128i sc = _mm_cvtsi32_si128(p->S);
    const __m256i l = _mm256_set1_epi64x((int64_t)p->lo - p->zp_y);
    const __m256i h = _mm256_set1_epi64x((int64_t)p->hi - p->zp_y);
    const __m256i zy = _mm256_set1_epi32(p->zp_y), za = _mm256_set1_epi32(p->zp_a),
                  zb = _mm256_set1_epi32(p->zp_b);
    int64_t i = 0;
    /* y may alias a or b (in-place Add): each block is loaded before it is stored */
    for (; i + 16 <= p->n; i += 16) {
        __m128i va = _mm_loadu_si128((const __m128i *)(const void *)(a + i));
        __m128i vb = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
        __m256i da0 = _mm256_sub_epi32(_mm256_cvtepi8_epi32(va), za);
        __m256i db0 = _mm256_sub_epi32(_mm256_cvtepi8_epi32(vb), zb);
        __m256i da1 = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_srli_si128(va, 8)), za);
        __m256i db1 = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_srli_si128(vb, 8)), zb);
        store16(y + i, add8(da0, db0, Ma, Mb, add, sub, sc, l, h, zy),
                add8(da1, db1, Ma, Mb, add, sub, sc, l, h, zy), 16);
    }
    for (; i < p->n; i++) {
        int64_t v = ((int64_t)((int32_t)a[i] - p->zp_a) * p->Ma +
                     (int64_t)((int32_t)b[i] - p->zp_b) * p->Mb + p->rnd) >>
                    p->S;
        v += p->zp_y;
        y[i] = (int8_t)(v < p->lo ? p->lo : v > p->hi ? p->hi : v);
    }
}

const sqz_op_impl sqz_i8_add_avx2 = {add_prepare, add_run, free, NULL};

/* ----------------------------------------------------- DequantizeLinear */

/* y = s * (float)(x - zp): the reference's one float multiply per value, 16
 * at a time (the 256-entry table's scalar gather was the slower path). */
static void dequantize_run(const sqz_op_ctx *ctx) {
    const q_p *p = ctx->params;
    const int8_t *x = (const int8_t *)ctx->in_data[0];
    float *y = ctx->out_data[0];
    const __m256 vs = _mm256_set1_ps(p->scale);
    const __m256i vz = _mm256_set1_epi32(p->zp);
    int64_t i = 0;
    for (; i + 16 <= p->n; i += 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(x + i));
        __m256i lo = _mm256_sub_epi32(_mm256_cvtepi8_epi32(b), vz);
        __m256i hi = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)), vz);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(lo)));
        _mm256_storeu_ps(y + i + 8, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(hi)));
    }
    for (; i < p->n; i++) y[i] = p->scale * (float)((int32_t)x[i] - p->zp);
}

static int dequantize_prepare(sqz_op_ctx *ctx) {
    const sqz_op_impl *ref = sqz_ref_op(SQZ_OP_DEQUANTIZE_LINEAR);
    int rc = ref->prepare(ctx); /* validation and shape */
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    if (rc != 0) return rc;
    q_p *p = calloc(1, sizeof *p);
    if (!p) return sqz_op_fail(ctx, "DequantizeLinear: out of memory");
    if (sqz_i8_in_params(ctx, 0, &p->scale, &p->zp)) {
        free(p);
        return -1;
    }
    p->n = sqz_shape_numel(&ctx->in_shape[0]);
    ctx->params = p;
    return 0;
}

const sqz_op_impl sqz_i8_dequantize_avx2 = {dequantize_prepare, dequantize_run, free, NULL};
