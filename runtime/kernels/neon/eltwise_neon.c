/* eltwise_neon.c - vectorised Sigmoid (aarch64 NEON), the twin of
 * x86/eltwise_avx2.c with the same formula and constants:
 *
 * sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, with
 * e = exp(-|x|). exp(t), t <= 0: n = round(t * log2(e)), r = t - n * ln2
 * (two-part ln2), degree-6 polynomial for exp(r) on |r| <= ln2 / 2 (the
 * Cephes expf minimax coefficients), times 2^n built in the exponent bits;
 * t is clamped at -87 so 2^n stays a normal float. */
#include <arm_neon.h>

#include "neon/ops_neon.h"
#include "par.h"
#include "ref/ref.h"

static inline float32x4_t exp_neg(float32x4_t t) { /* t <= 0 */
    t = vmaxq_f32(t, vdupq_n_f32(-87.0f));
    float32x4_t n = vrndnq_f32(vmulq_f32(t, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(t, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    float32x4_t r2 = vmulq_f32(r, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, r2);
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

static inline float32x4_t sigmoid4(float32x4_t x) {
    const float32x4_t one = vdupq_n_f32(1.0f);
    uint32x4_t xi = vreinterpretq_u32_f32(x);
    float32x4_t e = exp_neg(vreinterpretq_f32_u32(vorrq_u32(xi, vdupq_n_u32(0x80000000u))));
    float32x4_t d = vaddq_f32(one, e);
    float32x4_t pos = vdivq_f32(one, d), neg = vdivq_f32(e, d);
    /* the sign bit of x (also for -0.0) selects e / (1 + e) */
    uint32x4_t m = vreinterpretq_u32_s32(vshrq_n_s32(vreinterpretq_s32_u32(xi), 31));
    return vbslq_f32(m, neg, pos);
}

void sqz_neon_sigmoid_n(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, sigmoid4(vld1q_f32(x + i)));
    if (i < n) { /* tail through a zero-padded vector */
        float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (size_t j = 0; i + j < n; j++) t[j] = x[i + j];
        vst1q_f32(t, sigmoid4(vld1q_f32(t)));
        for (size_t j = 0; i + j < n; j++) y[i + j] = t[j];
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
    sqz_par_eltwise(n >= 32768 ? nt : 1, sqz_neon_sigmoid_n, x, y, n);
}

const sqz_op_impl sqz_neon_sigmoid = {sig_prepare, sig_run, NULL, NULL};
