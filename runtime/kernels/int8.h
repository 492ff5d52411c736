/* int8.h - INT8 kernel contract shared by the reference (ref/int8*.c) and the
 * SIMD kernels (internal).
 *
 * Requantization (sqz/format.h "INT8"), the one definition every int8 kernel
 * uses so that outputs are bit-exact across ISAs ("fp32 requantization", as
 * XNNPACK's): m = real multiplier (> 0), stored once at prepare as the float
 * s = (float)m, then
 *   v = clamp((float)acc * s, (float)(lo - zp), (float)(hi - zp))
 *   y = round_half_even(v) + zp
 * acc -> float, the one float multiply and float -> int are each correctly
 * rounded (round to nearest even, the default mode) on x86 (cvtdq2ps, mulps,
 * cvtps2dq) and NEON (scvtf, fmul, fcvtns), so every ISA gets the same bits;
 * a single multiply leaves nothing to contract into an FMA. Clamping before
 * rounding equals clamping after (integer bounds, monotone rounding) and
 * keeps the conversion in range. Exact for |acc| <= 2^24; beyond, (float)acc
 * is rounded (to nearest even), still the same on every ISA. lo, hi lie in
 * [-128, 127] and zp in [-128, 127], so |v| <= 255. Add, with two input
 * multipliers, keeps its integer formula (sqz_i8_fx_make).
 * Linear ops (Conv / Gemm / MatMul) accumulate exactly in int32:
 *   acc = bias[c] + sum_k (x_k - zp_x) * w[c][k]
 * prepare() refuses a layer whose worst case could overflow int32
 * (K * 255 * 127 + |bias| > INT32_MAX), so any summation order gives the same
 * acc. Weights are symmetric (zp 0) in [-127, 127]. */
#ifndef SQZ_KERNELS_INT8_H
#define SQZ_KERNELS_INT8_H

#include <float.h>
#include <stdint.h>

#include "ref/ref.h"
#include "sqz/ops.h"

typedef struct sqz_rq {
    float s; /* (float)m */
} sqz_rq;

/* Encodes m; -1 unless m is finite, > 0 and < 2^30. */
int sqz_rq_make(double m, sqz_rq *r);

/* Integer multiplier for Add's two-input formula (ref/int8.c): m ~= M * 2^-S,
 * M = round(f * 2^31) in [2^30, 2^31) from frexp(m) = f * 2^e, S = 31 - e in
 * [1, 62] (m < 2^-31: S = 62, M = round(m * 2^62)); -1 unless m is finite,
 * > 0 and < 2^30. */
int sqz_i8_fx_make(double m, int32_t *M, int32_t *S);

#if FLT_EVAL_METHOD != 0
#error "sqz int8 requantization needs float arithmetic evaluated in float (FLT_EVAL_METHOD 0)"
#endif

/* The requantization formula above; lo <= hi in [-128, 127], zp in
 * [-128, 127]. Rounding: adding and subtracting 1.5 * 2^23 rounds a float of
 * magnitude < 2^22 to the nearest integer, ties to even (IEEE add), the same
 * as cvtps2dq / fcvtns, without a libm call. */
static inline int32_t sqz_rq_apply(int64_t acc, sqz_rq r, int32_t zp, int32_t lo, int32_t hi) {
    float v = (float)acc * r.s;
    const float flo = (float)(lo - zp), fhi = (float)(hi - zp);
    v = v < flo ? flo : v;
    v = v > fhi ? fhi : v;
    v = (v + 12582912.0f) - 12582912.0f;
    return (int32_t)v + zp;
}

/* QuantizeLinear of one value: clamp(round_half_even(x / scale) + zp,
 * -128, 127) computed in float as ONNX does; NaN gives zp. */
int8_t sqz_i8_quantize1(float x, float scale, int32_t zp);

static inline int8_t sqz_sat8(int32_t v) {
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

/* Per-tensor (scale, zp) of i8 input i / output i; fails with a message
 * naming the tensor role unless it is i8 with per-tensor parameters. */
int sqz_i8_in_params(sqz_op_ctx *ctx, uint32_t i, float *scale, int32_t *zp);
int sqz_i8_out_params(sqz_op_ctx *ctx, uint32_t i, float *scale, int32_t *zp);

/* Clamp bounds [lo, hi] of a fused sqz_act on an i8 output (scale, zp):
 * NONE [-128, 127], RELU [zp, 127], CLIP [q(min), q(max)] intersected with
 * the i8 range (q(v) = zp + round_half_even(v / scale)); other activations
 * are refused. */
int sqz_i8_act_bounds(sqz_op_ctx *ctx, float scale, int32_t zp, int32_t *lo, int32_t *hi);

/* A quantized linear layer, analysed once (Conv, Gemm, MatMul): everything a
 * kernel needs besides its own packing. Rows = output channels (co). */
typedef struct sqz_i8_linear {
    int op;             /* SQZ_OP_CONV / GEMM / MATMUL */
    int64_t n_co;       /* output channels: Conv M, Gemm / MatMul N */
    int64_t K;          /* reduction length per output (Conv: C/group * kernel taps) */
    int32_t zp_x, zp_y; /* input / output zero points */
    int32_t lo, hi;     /* output clamp (fused activation) */
    const int8_t *w;    /* Conv: [M][K] as stored; Gemm / MatMul: see w_kn */
    int w_kn;           /* 1: w is [K][n_co] (Gemm transB = 0, MatMul), 0: [n_co][K] */
    int32_t *bias;      /* [n_co] owned (zeros when absent) */
    int32_t *wsum;      /* [n_co] owned: sum_k w[co][k] */
    sqz_rq *rq;         /* [n_co] owned */
    /* Conv */
    ref_geom g;
    int64_t batch, C, group, cpg, mpg, in_sp, out_sp;
    /* Gemm / MatMul: rows of the activation matrix and its layout */
    int64_t rows; /* Gemm M; MatMul prod(batch dims) * M */
    int trans_a;  /* Gemm transA */
} sqz_i8_linear;

/* Validates the node (dtypes, params, shapes, weight range, overflow bound),
 * fills ctx->out_shape[0] and li (arrays owned by li). */
int sqz_i8_linear_prepare(sqz_op_ctx *ctx, sqz_i8_linear *li);
void sqz_i8_linear_free(sqz_i8_linear *li);

/* The int8 thread policy of a whole session (sqz_session_create asks it
 * once all nodes are prepared): the threads a session of nt > 1 threads
 * really uses, 1 when most of its MACs are int8 and the whole model is
 * below SQZ_I8_TINY_MACS MACs (SQZ_I8_TINY_MACS=<n> in the environment
 * overrides it, for A/B), else nt. Such a model runs in ~0.05 ms or less
 * at one thread, in nodes of a few us, where every split node costs a
 * hand-off and the other core's cache lines. With the executor's persistent
 * helper pool (par.c, no team start per run) the bound is lower than with an
 * OpenMP region per run (16M MACs before): quiet Zen 4, 2 threads, same
 * run, one thread vs two: the small ResNet (9.3M MACs) 0.063 -> 0.049 ms,
 * the small MobileNet (5.3M MACs, 1x1 convs of 16-64 channels) 0.055 ->
 * 0.063 ms, LeNets equal; the torchvision models (>= 140M MACs) gain from 2
 * threads. total_macs / i8_macs: the MACs of all nodes / of the int8 ones
 * (sqz_op_impl.macs). */
#define SQZ_I8_TINY_MACS 8000000LL
int sqz_i8_session_threads(int nt, uint64_t total_macs, uint64_t i8_macs);

/* Channel-consistent splits of a small int8 model (the session, when
 * sqz_i8_session_threads gives 1): a 1x1 conv and the depthwise conv that
 * alone reads its output split into the same nt output-channel parts (part
 * t: channels [t nblk / nt mr, (t + 1) nblk / nt mr) clamped to the count),
 * so each core's depthwise (or GlobalAveragePool) reads only the channels it
 * computed and no other node splits. sqz_i8_conv_chsplit: impl / ctx a prepared node; 1 when it is
 * an int8 pointwise conv (batch 1, group 1, >= nt blocks of mr channels) on
 * the packed driver (*mr, *nblk set), and, when apply, switches it to those
 * parts (scratch_bytes updated; the session plans scratch afterwards).
 * sqz_i8_dw_chsplit: 1 when impl / ctx is an int8 depthwise conv of nblk mr
 * channels (the last block partial) on the depthwise driver, now split at
 * those cuts. SQZ_I8_PAIRS=0 makes both decline (A/B). */
int sqz_i8_conv_chsplit(const sqz_op_impl *impl, sqz_op_ctx *ctx, int nt, int64_t *mr,
                        int64_t *nblk, int apply);
int sqz_i8_dw_chsplit(const sqz_op_impl *impl, sqz_op_ctx *ctx, int nt, int64_t mr, int64_t nblk);
/* The same for a GlobalAveragePool (batch 1) reading such a conv's output. */
int sqz_i8_gap_chsplit(const sqz_op_impl *impl, sqz_op_ctx *ctx, int nt, int64_t mr, int64_t nblk);
/* Such a pair in one split (one hand-off and one join instead of two each):
 * the conv (split by sqz_i8_conv_chsplit) runs the second node (sctx, split
 * at its cuts) inside, each part its own channels of both, with the second
 * node's scratch after its own (scratch_bytes updated); 1 when done: the
 * session then skips the second node, starts its output's lifetime at the
 * conv's step and gives it no scratch. SQZ_I8_PAIRS=2: pairs not fused. */
int sqz_i8_conv_fuse_pair(const sqz_op_impl *impl, sqz_op_ctx *ctx, const sqz_op_impl *second,
                          const sqz_op_ctx *sctx);
/* 1 when impl / ctx is an int8 Gemm / MatMul of one row on the packed driver
 * whose weights are big enough to split by columns (gemm_prepare,
 * SQZ_I8_GEMV_SPLIT): a small int8 model keeps its threads for it. */
int sqz_i8_gemv_split(const sqz_op_impl *impl, const sqz_op_ctx *ctx);
/* 1 when impl is the int8 depthwise driver (int8_dw.c). */
int sqz_i8_dw_is(const sqz_op_impl *impl);

/* Weight w[co][k] of an analysed layer, whatever its stored layout. */
static inline int8_t sqz_i8_w(const sqz_i8_linear *li, int64_t co, int64_t k) {
    return li->w_kn ? li->w[k * li->n_co + co] : li->w[co * li->K + k];
}

#endif
