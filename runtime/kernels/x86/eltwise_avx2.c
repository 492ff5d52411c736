/* eltwise_avx2.c - vectorised Sigmoid (AVX2 + FMA).
 *
 * sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, with
 * e = exp(-|x|) as the reference computes it (exp_neg below: range reduction
 * and a degree-5 polynomial; |x| clamped at 88, where the result differs
 * from the reference only below 1e-37). */
#include <immintrin.h>
#include <stdlib.h>

#include "par.h"
#include "ref/ref.h"
#include "x86/eltwise_x86.h"

/* exp(-t) for t in [-87, 88] (the callers clamp); the polynomial and range
 * reduction of eltwise_avx512.c's exp_neg16 (see there), 2^n built in the
 * exponent bits: n in [-127, 126], where n = -127 (t > 87.68) gives an
 * exponent field of 0, i.e. exp(-t) taken as 0 (below 1.2e-38). */
static inline __m256 exp_neg(__m256 t) {
    __m256 n = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(-1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmsub_ps(n, _mm256_set1_ps(0.693359375f), t); /* -t - n ln2 */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(8.2976464182e-3f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1915383190e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6667574644e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.9998894334e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(9.9999970198e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0000001192e+00f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 sigmoid8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    /* exp(-|x|); min(88, NaN) is NaN (the second operand) */
    __m256 e = exp_neg(_mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_andnot_ps(sign, x)));
    __m256 d = _mm256_add_ps(one, e);
    __m256 pos = _mm256_div_ps(one, d), neg = _mm256_div_ps(e, d);
    return _mm256_blendv_ps(pos, neg, x); /* sign bit of x selects e / (1 + e) */
}

void sqz_x86_sigmoid_avx2_n(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, sigmoid8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_ps(y + i, m, sigmoid8(_mm256_maskload_ps(x + i, m)));
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
    sqz_par_eltwise(n >= 32768 ? nt : 1, sqz_x86_sigmoid_avx2_n, x, y, n);
}

const sqz_op_impl sqz_x86_sigmoid_avx2 = {sig_prepare, sig_run, NULL, NULL};

/* ---- SiLU: x * sigmoid(x), the executor's fusion of Sigmoid + Mul ---- */

/* silu(x) = x / (1 + exp(-x)): one division where x * sigmoid8(x) took two
 * and a blend; exp(-x) of x clamped to [-87, 88] with the degree-5 minimax
 * polynomial (exp_neg). 1 + exp(-x) rounds to 1 from x = 17 on. */
static inline __m256 silu8(__m256 x) {
    /* operands ordered so a NaN x propagates (max / min return the second
     * operand when one is NaN); lo also scales the result: x < -87 gives
     * -87 / (1 + e^87), 1.4e-36, not x times it */
    __m256 lo = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
    __m256 t = _mm256_min_ps(_mm256_set1_ps(88.0f), lo);
    __m256 d = _mm256_add_ps(exp_neg(t), _mm256_set1_ps(1.0f));
    return _mm256_div_ps(lo, d);
}

void sqz_x86_silu_avx2_n(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(y + i, silu8(a));
    }
    if (i < n) {
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 a = _mm256_maskload_ps(x + i, m);
        _mm256_maskstore_ps(y + i, m, silu8(a));
    }
}

/* One contiguous range per thread, split on 16-float (cache line) bounds. */
void sqz_x86_eltwise_split(void (*fn)(const float *, float *, size_t), const float *x, float *y,
                           size_t n, int num_threads) {
    int nt = num_threads > 1 ? num_threads : 1;
    /* from 16384: SiLU / Sigmoid cost ~0.3 ns an element, ~5 us there,
     * and their input comes from a split conv (half in the other core) */
    sqz_par_eltwise(n >= 16384 ? nt : 1, fn, x, y, n);
}

/* Mul(x, sigmoid(x)) with x at input xi: both inputs and the output have
 * one shape (the executor checked it; the sigmoid input is never read). */
int sqz_x86_silu_prepare(sqz_op_ctx *ctx, int xi) {
    if (ctx->n_in != 2 || ctx->n_out != 1 || ctx->in_shape[xi].ndim < 0 ||
        ctx->in_shape[xi].ndim > SQZ_MAX_DIMS)
        return 1;
    if (ref_check_size(ctx, ctx->in_shape[xi].ndim, ctx->in_shape[xi].dims)) return 1;
    ctx->out_shape[0] = ctx->in_shape[xi];
    return 0;
}

static void silu_run_from(const sqz_op_ctx *ctx, int xi) {
    size_t n = (size_t)sqz_shape_numel(&ctx->out_shape[0]);
    sqz_x86_eltwise_split(sqz_x86_silu_avx2_n, ctx->in_data[xi], ctx->out_data[0], n,
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

const sqz_op_impl sqz_x86_silu_avx2[2] = {{silu_prepare0, silu_run0, NULL, NULL},
                                          {silu_prepare1, silu_run1, NULL, NULL}};
