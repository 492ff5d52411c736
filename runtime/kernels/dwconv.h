/* dwconv.h - depthwise convolution (fp32, NCHW): the row-kernel contract.
 *
 * Covered case (prepare() declines everything else, so the general conv takes
 * it): 2-D Conv with group == C == M (channel multiplier 1), square kernel 3x3
 * or 5x5, strides (1,1) or (2,2), dilations 1, any pads (asymmetric included,
 * also auto_pad), optional bias, fused activation (sqz_act).
 *
 * The driver (common/dwconv.c) loops over the N*C channel planes (OpenMP over
 * planes when num_threads > 1) and, per plane, over output rows. For each
 * output row it gathers the k input rows that row reads:
 *
 *     rows[ky] = x + iy * in_w,  iy = oy * stride - pad_top + ky,
 *
 * or, when iy falls in the vertical padding, a pointer to a zero row of in_w
 * floats. Every row pointer is therefore valid for exactly in_w floats; a row
 * kernel must never read outside [rows[ky], rows[ky] + in_w) (no over-read,
 * no pointer arithmetic outside the row: left/right padding columns are the
 * kernel's job, e.g. scalar border columns and masked loads for tails).
 *
 * A row kernel computes, for ox in [0, out_w):
 *
 *     y[ox] = act(bias + sum_{ky<k, kx<k} w[ky*k + kx] * X(ky, ox*stride - pad_l + kx))
 *
 * with X(ky, c) = rows[ky][c] for 0 <= c < in_w and 0 otherwise. When y2 is
 * not NULL it computes a second output row (the next one) into y2 from
 * rows[stride .. stride + k) - the caller then provides k + stride row
 * pointers - so kernels may share input loads between the two rows.
 *
 * Columns [ox_lo, ox_hi) are "interior": every tap reads a column inside
 * [0, in_w). Columns outside it touch the left/right padding; sqz_dw_border()
 * computes them with bounds checks (shared scalar code).
 *
 * Activations applied inside row kernels: NONE, RELU, CLIP (alpha..beta),
 * LEAKY_RELU (alpha), HARD_SWISH. The driver never passes another kind: for
 * SIGMOID, HARD_SIGMOID and TANH it passes NONE and applies the activation
 * itself in a scalar post-pass over the plane (they are rare in the models
 * that matter and need libm-exact results).
 *
 * Accuracy: results agree with the reference Conv within float rounding
 * (different summation order and FMA contraction are allowed).
 *
 * Porting to another ISA (e.g. neon/dwconv_neon.c): implement
 * sqz_dw_row_<isa>(k, stride) returning specialised sqz_dw_row_fn for
 * (3,1) (3,2) (5,1) (5,2) (NULL for anything else), declare it below, and add
 * its case to the ISA selection in common/dwconv.c. */
#ifndef SQZ_KERNELS_DWCONV_H
#define SQZ_KERNELS_DWCONV_H

#include "sqz/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-call arguments of a row kernel (one channel). */
typedef struct sqz_dw_row {
    const float *w;    /* k*k weights of this channel, row-major [ky][kx] */
    float bias;        /* 0 when the conv has no bias */
    int k, stride;     /* 3 or 5; 1 or 2 (the function is specialised for them) */
    int in_w, out_w;   /* input / output row length (>= 1) */
    int pad_l;         /* left padding columns (>= 0) */
    int ox_lo, ox_hi;  /* interior output columns, 0 <= ox_lo <= ox_hi <= out_w */
    int act;           /* sqz_act: NONE, RELU, CLIP, LEAKY_RELU or HARD_SWISH only */
    float alpha, beta; /* CLIP min/max; LEAKY_RELU alpha */
    /* 1: pad_l == 0 and every row holds in_w >= stride * (out_w rounded up to
     * 16) + k - 1 + (stride - 1) * 16 readable floats, so kernels may load
     * whole 16-lane blocks (32 for stride 2) anywhere; 0: the general case */
    int padded;
} sqz_dw_row;

typedef void (*sqz_dw_row_fn)(const sqz_dw_row *a, const float *const *rows, float *y, float *y2);

/* Scalar helpers shared by every ISA's row kernels (common/dwconv.c). */
/* The activation of a (one of the in-kernel kinds) on one value. */
float sqz_dw_act1(const sqz_dw_row *a, float v);
/* y[ox] for ox in [ox0, ox1) with bounds checks on the columns (any ox). */
void sqz_dw_border(const sqz_dw_row *a, const float *const *rows, float *y, int ox0, int ox1);
/* The scalar twin: a complete row kernel (any k, stride). */
void sqz_dw_row_scalar(const sqz_dw_row *a, const float *const *rows, float *y, float *y2);

/* The row kernel the depthwise driver picks for (k, stride) on this CPU (the
 * scalar twin when no SIMD one covers it; never NULL). */
sqz_dw_row_fn sqz_dw_row_best(int k, int stride);

/* ISA row kernels: the specialised function for (k, stride), or NULL. */
#if defined(__x86_64__)
sqz_dw_row_fn sqz_dw_row_avx2(int k, int stride);   /* x86/dwconv_avx2.c (AVX2 + FMA) */
sqz_dw_row_fn sqz_dw_row_avx512(int k, int stride); /* x86/dwconv_avx512.c (AVX-512F) */
#endif
#if defined(__aarch64__)
sqz_dw_row_fn sqz_dw_row_neon(int k, int stride); /* neon/dwconv_neon.c */
#endif

#if defined(__x86_64__)
/* Arguments of the AVX-512 plane kernels below (x86/dwconv_avx512.c): one
 * channel's plane (the channel-pair and channel-block kernels: nc planes).
 * Whole-plane kernel for small planes (AVX-512F): one channel, the output
 * rows computed from a zero-padded copy of the plane in a caller buffer.
 * Covers k 3 / 5, stride 1 / 2, out_w <= 16, pads < k. */
typedef struct sqz_dw_plane {
    /* k*k weights; the channel-pair kernel: [k*k + 1][2], the two channels'
     * tap weights then biases; the channel-block kernel: [k*k][16], the 16
     * channels' tap weights (0 past nc) */
    const float *w;
    float bias;
    const float *b; /* the channel-block kernel: [16] biases (0 past nc) */
    int nc;         /* channel-pair kernel: 1 or 2; channel-block kernel: 1..16 */
    int k, stride;
    int H, W, OH, OW; /* input and output plane */
    int pt, pl;       /* top / left padding (bottom / right implied by OH / OW) */
    int act;          /* as sqz_dw_row.act */
    float alpha, beta;
    /* output rows computed: [oy0, oy1), oy1 == 0 meaning OH (a zeroed struct:
     * the whole plane); the others are not written (threads splitting a
     * layer by rows, SQZ_DW_SPLIT=rows in common/dwconv.c). */
    int oy0, oy1;
} sqz_dw_plane;
/* Floats of the buffer a plane needs (0: not covered). The geometry fields
 * (everything but w, bias, act, alpha, beta) fix it. */
size_t sqz_dw_plane_floats_avx512(const sqz_dw_plane *a);
/* Zero a buffer once before its first plane; planes of the same geometry then
 * reuse it (each overwrites only the data part). */
void sqz_dw_plane_zero_avx512(const sqz_dw_plane *a, float *buf);
/* Copy x (H x W) into buf (sqz_dw_plane_floats_avx512 floats, zeroed once):
 * the input rows output rows [oy0, oy1) read; planes sharing a buffer must
 * share the row range. */
void sqz_dw_plane_pack_avx512(const sqz_dw_plane *a, const float *x, float *buf);
/* y (OH x OW) from a packed buf. Callers pack the next plane into a second
 * buffer before computing this one: the loads then do not wait for the
 * pack's just-written (masked) stores. */
void sqz_dw_plane_compute_avx512(const sqz_dw_plane *a, const float *buf, float *y);

/* Band kernel for wide planes (x86/dwconv_avx512.c, AVX-512F): one channel,
 * 4 output rows x up to 4 vectors of 16 columns per pass from a ring of
 * zero-padded input rows. Covers k 3 / 5, stride 1, left pad <= 16, W and
 * out_w <= 4096 (the driver uses it for 32 < out_w <= 64). Same args as the
 * whole-plane kernel. */
/* Floats of the (64-byte aligned) buffer (0: not covered). */
size_t sqz_dw_band_floats_avx512(const sqz_dw_plane *a);
/* Zero a buffer once before its first plane (planes of one layer reuse it). */
void sqz_dw_band_zero_avx512(const sqz_dw_plane *a, float *buf);
/* y (OH x OW) from x (H x W). */
void sqz_dw_band_run_avx512(const sqz_dw_plane *a, const float *x, float *y, float *buf);
/* The AVX2 + FMA twin (x86/dwconv_avx2.c), 8-lane vectors, same contract. */
size_t sqz_dw_band_floats_avx2(const sqz_dw_plane *a);
void sqz_dw_band_zero_avx2(const sqz_dw_plane *a, float *buf);
void sqz_dw_band_run_avx2(const sqz_dw_plane *a, const float *x, float *y, float *buf);

/* Stride-2 kernel (x86/dwconv_avx512.c, AVX-512F): one channel, from the
 * input rows directly (no buffer): even / odd column splits in registers,
 * 4 output rows x 2 vectors of 16 columns per pass. Covers k 3 / 5, stride
 * 2, any pads >= 0. Same args as the whole-plane kernel. */
int sqz_dw_s2_covers_avx512(const sqz_dw_plane *a);
/* y (OH x OW; rows [oy0, oy1)) from x (H x W). */
void sqz_dw_s2_run_avx512(const sqz_dw_plane *a, const float *x, float *y);

/* Stride-1 kernel (x86/dwconv_avx512.c, AVX-512F): one channel, from the
 * input rows directly (no buffer): one load per input row and 16 columns,
 * the taps by valignd, R output rows x NV vectors per pass. Covers k 3 / 5,
 * stride 1, left pad (k - 1) / 2, any top pad >= 0 and any W / OW. Same
 * args as the whole-plane kernel. */
int sqz_dw_s1_covers_avx512(const sqz_dw_plane *a);
/* y (OH x OW; rows [oy0, oy1)) from x (H x W). */
void sqz_dw_s1_run_avx512(const sqz_dw_plane *a, const float *x, float *y);

/* 3x3 stride-1 kernel for 7x7 planes (x86/dwconv_avx512.c, AVX-512F): one
 * channel, two plane rows a vector (8 lanes a row), every tap one lane shift
 * of the whole plane. Covers k 3, stride 1, pads 1 (so OH = OW = 7),
 * H = W = 7. Computes the whole plane (oy0 / oy1 ignored: the driver splits
 * only planes of 8 rows or more by rows). Same args as the whole-plane
 * kernel. */
int sqz_dw_p7_covers_avx512(const sqz_dw_plane *a);
void sqz_dw_p7_run_avx512(const sqz_dw_plane *a, const float *x, float *y);

/* Channel-pair kernel for planes with out_w <= 8 and out_h <= 8
 * (x86/dwconv_avx512.c, AVX-512F): two channels a vector, lanes 2 j + h =
 * column j of channel h, one row a vector, taps as lane shifts (no buffer).
 * Covers k 3 / 5, stride 1 / 2, out_w / out_h <= 8, W <= 8 * stride, left
 * pad (k - 1) / 2, top pad < k (bottom / right implied by OH / OW); w, nc as in
 * sqz_dw_plane. */
int sqz_dw_c2_covers_avx512(const sqz_dw_plane *a);
/* Channels c < nc: y + c*OH*OW from x + c*H*W. */
void sqz_dw_c2_run_avx512(const sqz_dw_plane *a, const float *x, float *y);

/* The same scheme one channel a vector (lane j = column j): planes with
 * out_w <= 16 and W <= 16 * stride, k 3 / 5, stride 1 / 2, left pad
 * (k - 1) / 2, top pad < k; rows [oy0, oy1) as sqz_dw_plane. */
int sqz_dw_c1_covers_avx512(const sqz_dw_plane *a);
void sqz_dw_c1_run_avx512(const sqz_dw_plane *a, const float *x, float *y);

/* Channel-block kernel for planes with out_w <= 8 (x86/dwconv_avx512.c,
 * AVX-512F): nc <= 16 channels at once, lanes = channels (the planes are
 * transposed into a zero-padded [row][col][16] buffer and back). Covers k 3 /
 * 5, stride 1 / 2, out_w <= 8, out_h <= 64, pads < k; w, b, nc as in
 * sqz_dw_plane. */
/* Floats of the (64-byte aligned) buffer a block needs; 0: not covered. */
size_t sqz_dw_cb_floats_avx512(const sqz_dw_plane *a);
/* Zero a buffer once before its first block; blocks of the same geometry
 * then reuse it (each overwrites only the data part). */
void sqz_dw_cb_zero_avx512(const sqz_dw_plane *a, float *buf);
/* Channels c < nc: y + c*OH*OW from x + c*H*W. */
void sqz_dw_cb_run_avx512(const sqz_dw_plane *a, const float *x, float *y, float *buf);
#endif

/* Row-kernel families. */
typedef enum sqz_dw_isa {
    SQZ_DW_AUTO = 0, /* best available on this CPU */
    SQZ_DW_SCALAR = 1,
    SQZ_DW_AVX2 = 2,
    SQZ_DW_AVX512 = 3,
    SQZ_DW_NEON = 4,
} sqz_dw_isa;

/* 1 when this build and this CPU can run the family. */
int sqz_dw_isa_available(int isa);
/* Name of a family ("avx512"), for messages. */
const char *sqz_dw_isa_name(int isa);

/* The Conv impl registered in dispatch.c: best family for this CPU. Its
 * prepare() returns 1 (declines) for every conv that is not a depthwise case
 * listed above. */
extern const sqz_op_impl sqz_dwconv;
/* The same with a fixed family (tests, benches); prepare() also declines when
 * the family is not available. */
extern const sqz_op_impl sqz_dwconv_scalar, sqz_dwconv_avx2, sqz_dwconv_avx512, sqz_dwconv_neon;
/* cpu_ok predicate for the dispatch table. */
int sqz_dwconv_cpu_ok(void);
/* The executor's SiLU fusion (fastops.h): a conv prepared by one of the
 * impls above then applies rowfn in place to each plane (channel block) it
 * computed, after its activation. Returns 0 (nothing changed) for another
 * impl, 1 when set. */
int sqz_dwconv_set_silu(const sqz_op_impl *impl, sqz_op_ctx *ctx,
                        void (*rowfn)(const float *x, float *y, size_t n));

#ifdef __cplusplus
}
#endif
#endif
