/* int8.h - INT8 kernel contract shared by the reference (ref/int8*.c) and the
 * SIMD kernels (internal).
 *
 * Requantization (sqz/format.h "INT8"), the one definition every int8 kernel
 * uses so that outputs are bit-exact across ISAs:
 *   m = real multiplier (> 0), encoded once at prepare as int32 M and shift S
 *   with m ~= M * 2^-S: frexp(m) = f * 2^e, M = round(f * 2^31) in
 *   [2^30, 2^31) (f rounding up to 1 gives M = 2^30, e + 1), S = 31 - e;
 *   1 <= S <= 62 (m >= 2^30 is refused; m < 2^-31 gives S = 62,
 *   M = round(m * 2^62), possibly 0).
 *   y = clamp(zp_y + ((acc * M + 2^(S-1)) >> S), lo, hi)
 *   in 64-bit arithmetic with an arithmetic right shift (round half up); the
 *   clamp is applied to the 64-bit value (saturating, never wrapping).
 * Linear ops (Conv / Gemm / MatMul) accumulate exactly in int32:
 *   acc = bias[c] + sum_k (x_k - zp_x) * w[c][k]
 * prepare() refuses a layer whose worst case could overflow int32
 * (K * 255 * 127 + |bias| > INT32_MAX), so any summation order gives the same
 * acc. Weights are symmetric (zp 0) in [-127, 127]. */
#ifndef SQZ_KERNELS_INT8_H
#define SQZ_KERNELS_INT8_H

#include <stdint.h>

#include "ref/ref.h"
#include "sqz/ops.h"

typedef struct sqz_rq {
    int32_t M, S;
} sqz_rq;

/* Encodes m; -1 unless m is finite, > 0 and < 2^30. */
int sqz_rq_make(double m, sqz_rq *r);

/* The requantization formula above (acc may be any value that keeps
 * acc * M within int64: |acc| < 2^32). */
static inline int32_t sqz_rq_apply(int64_t acc, sqz_rq r, int32_t zp, int32_t lo, int32_t hi) {
    /* >> of a negative int64 is arithmetic on every compiler sqz supports */
    int64_t v = ((acc * r.M + ((int64_t)1 << (r.S - 1))) >> r.S) + zp;
    return v < lo ? lo : v > hi ? hi : (int32_t)v;
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

/* Weight w[co][k] of an analysed layer, whatever its stored layout. */
static inline int8_t sqz_i8_w(const sqz_i8_linear *li, int64_t co, int64_t k) {
    return li->w_kn ? li->w[k * li->n_co + co] : li->w[co * li->K + k];
}

#endif
