/* eltwise_avx512.c - vectorised Sigmoid (AVX-512F), 16 lanes.
 *
 * Same method as eltwise_avx2.c (e = exp(-|x|) by range reduction and a
 * degree-5 polynomial, sigmoid = 1 / (1 + e) or e / (1 + e)), with
 * two AVX-512 savings: 2^n is applied by vscalefps, and the one reciprocal
 * r = 1 / (1 + e) is vrcp14ps refined by a Newton step (relative error
 * ~2^-27, below float rounding) instead of two divisions. */
#include <immintrin.h>
#include <stdlib.h>

#include "par.h"
#include "ref/ref.h"
#include "x86/eltwise_x86.h"

/* exp(-t) for t in [-87, 88] (the callers clamp): n = round(-t log2(e)),
 * r = -t - n ln2 (ln2 split as Cephes does: 0.693359375 + -2.12194440e-4),
 * exp(r) on |r| <= ln2 / 2 by a degree-5 relative-error minimax polynomial
 * (iteratively reweighted least squares on Chebyshev nodes, numpy; fit error
 * 7.5e-8, 2.3e-7 with float32 Horner and the range reduction over the whole
 * range), times 2^n by vscalefps (n in [-127, 126]: finite, 2^-127 a
 * subnormal scalef handles). */
static inline __m512 exp_neg16(__m512 t) {
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(-1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmsub_ps(n, _mm512_set1_ps(0.693359375f), t); /* -t - n ln2 */
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(8.2976464182e-3f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1915383190e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6667574644e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.9998894334e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.9999970198e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0000001192e+00f));
    return _mm512_scalef_ps(p, n);
}

static inline __m512 sigmoid16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 ax = _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
    /* exp(-|x|) in (0, 1]; min(88, NaN) is NaN (the second operand) */
    __m512 e = exp_neg16(_mm512_min_ps(_mm512_set1_ps(88.0f), ax));
    __m512 d = _mm512_add_ps(one, e); /* in (1, 2]: rcp14 is safe */
    __m512 r = _mm512_rcp14_ps(d);
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f))); /* Newton */
    __mmask16 neg = _mm512_movepi32_mask(_mm512_castps_si512(x));       /* sign bit */
    return _mm512_mask_mul_ps(r, neg, e, r);
}

void sqz_x86_sigmoid_avx512_n(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        _mm512_storeu_ps(y + i, sigmoid16(a));
        _mm512_storeu_ps(y + i + 16, sigmoid16(b));
    }
    for (; i < n; i += 16) {
        size_t left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        _mm512_mask_storeu_ps(y + i, m, sigmoid16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static int sig_prepare(sqz_op_ctx *ctx) {
    if (ctx->n_in != 1 || ctx->n_out != 1 || ctx->in_shape[0].ndim < 0 ||
        ctx->in_shape[0].ndim > SQZ_MAX_DIMS)
        return 1;
    if (ref_check_size(ctx, ctx->in_shape[0].ndim, ctx->in_shape[0].dims)) return 1;
    ctx->out_shape[0] = ctx->in_shape[0];
    return 0;
}

static void sig_run(const sqz_op_ctx *ctx) {
    size_t n = (size_t)sqz_shape_numel(&ctx->out_shape[0]);
    const float *x = ctx->in_data[0];
    float *y = ctx->out_data[0];
    int nt = ctx->num_threads > 0 ? ctx->num_threads : 1;
    sqz_par_eltwise(n >= 65536 ? nt : 1, sqz_x86_sigmoid_avx512_n, x, y, n);
}

const sqz_op_impl sqz_x86_sigmoid_avx512 = {sig_prepare, sig_run, NULL, NULL};

/* ---- SiLU: x * sigmoid(x), the executor's fusion of Sigmoid + Mul ---- */

/* silu(x) = x / (1 + exp(-x)) straight from exp(-x): no |x|, no sign select
 * (the sigmoid's two branches), a degree-5 exp polynomial: 16 vector ops a
 * vector where x * sigmoid16(x) took 21 (the SiLU of EfficientNet-style nets
 * is compute bound: its convs apply it to what they store). exp(-x) is taken
 * of x clamped to [-87, 88]: 2^n stays within scalef's finite range and r
 * stays finite (x = +inf gives x * 1; x < -87 gives 1.4e-36 in magnitude
 * where the true value is below 1e-36). */
static inline __m512 silu16(__m512 x) {
    /* operands ordered so a NaN x propagates (max / min return the second
     * operand when one is NaN); lo also scales the result: x < -87 gives
     * -87 / (1 + e^87), 1.4e-36, not x times it */
    __m512 lo = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    __m512 t = _mm512_min_ps(_mm512_set1_ps(88.0f), lo);
    __m512 d = _mm512_add_ps(exp_neg16(t), _mm512_set1_ps(1.0f)); /* >= 1 */
    __m512 q = _mm512_rcp14_ps(d);
    q = _mm512_mul_ps(q, _mm512_fnmadd_ps(d, q, _mm512_set1_ps(2.0f))); /* Newton */
    return _mm512_mul_ps(lo, q);
}

void sqz_x86_silu_avx512_n(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        _mm512_storeu_ps(y + i, silu16(a));
        _mm512_storeu_ps(y + i + 16, silu16(b));
    }
    for (; i < n; i += 16) {
        size_t left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __m512 a = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(y + i, m, silu16(a));
    }
}

static void silu_run_from(const sqz_op_ctx *ctx, int xi) {
    size_t n = (size_t)sqz_shape_numel(&ctx->out_shape[0]);
    sqz_x86_eltwise_split(sqz_x86_silu_avx512_n, ctx->in_data[xi], ctx->out_data[0], n,
                          ctx->num_threads);
}
static void silu_run0(const sqz_op_ctx *ctx) {
    silu_run_from(ctx, 0);
}
static void silu_run1(const sqz_op_ctx *ctx) {
    silu_run_from(ctx, 1);
}
static int silu_prepare0(sqz_op_ctx *ctx) {
    return sqz_x86_silu_prepare(ctx, 0);
}
static int silu_prepare1(sqz_op_ctx *ctx) {
    return sqz_x86_silu_prepare(ctx, 1);
}

const sqz_op_impl sqz_x86_silu_avx512[2] = {{silu_prepare0, silu_run0, NULL, NULL},
                                            {silu_prepare1, silu_run1, NULL, NULL}};
