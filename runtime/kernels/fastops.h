/* fastops.h - portable fast paths for the memory-bound ops (pools, the
 * element-wise binaries) that the reference writes for clarity: plain C
 * with contiguous inner loops the compiler vectorizes, OpenMP over planes or
 * chunks when the session has threads. Registered in runtime/src/dispatch.c
 * for every CPU; each prepare() runs the reference prepare (validation and
 * output shape) and declines (1) what it does not cover. Results equal the
 * reference up to float summation order (AveragePool, GlobalAveragePool). */
#ifndef SQZ_KERNELS_FASTOPS_H
#define SQZ_KERNELS_FASTOPS_H

#include "sqz/ops.h"

/* MaxPool / AveragePool: 4-D input (2 spatial dims), dilation 1, any
 * kernel, stride, pads, ceil_mode; one output (no Indices). */
extern const sqz_op_impl sqz_fast_maxpool, sqz_fast_avgpool;
/* GlobalAveragePool: 16 float partial sums per plane, combined in double. */
extern const sqz_op_impl sqz_fast_global_avgpool;
/* ReduceMean over the trailing axes (given by the axes attribute; declines
 * every other reduction): the GlobalAveragePool loop. */
extern const sqz_op_impl sqz_fast_reduce_mean;
/* Slice / Transpose (f32): the reference's strided copy with size-1 dims
 * dropped and input-contiguous dims merged (block memcpys), rows split over
 * threads when large (common/copy_fast.c). */
extern const sqz_op_impl sqz_fast_slice, sqz_fast_transpose;
/* Add / Sub / Mul / Div with broadcasting, inner loops specialised for the
 * contiguous, scalar-operand and per-channel patterns. */
extern const sqz_op_impl sqz_fast_add, sqz_fast_sub, sqz_fast_mul, sqz_fast_div;
/* Fuses a following Relu into a prepared node of one of the four above
 * (impl, its ctx): the node then writes Relu(a op b), the reference Relu's
 * expression. Returns 0 (nothing changed) for any other impl. */
int sqz_fast_binary_fuse_relu(const sqz_op_impl *impl, sqz_op_ctx *ctx);

#if defined(__x86_64__)
/* MaxPool 3x3 stride 2 on one channel plane (AVX2 CPUs only; x86/pool_avx2.c):
 * x is IH x IW, y OH x OW, ph / pw the top / left pads (any bottom / right
 * pads and ceil_mode are implied by OH / OW; every window keeps at least one
 * input column). Returns 0 when a window holds a NaN (the reference's NaN rule
 * is then the caller's job; y is partly written), 1 when y is complete. */
int sqz_x86_maxpool3s2_avx2(const float *x, int64_t IH, int64_t IW, float *y, int64_t OH,
                            int64_t OW, int64_t ph, int64_t pw);
/* The same on AVX-512 CPUs (x86/pool_avx512.c): 16 outputs per step, masked
 * loads at the right edge; same arguments and return rule. */
int sqz_x86_maxpool3s2_avx512(const float *x, int64_t IH, int64_t IW, float *y, int64_t OH,
                              int64_t OW, int64_t ph, int64_t pw);
/* MaxPool 2x2 stride 2, no padding, 2 * OH <= IH and 2 * OW <= IW (rows of
 * IW floats); same return rule. */
int sqz_x86_maxpool2s2_avx2(const float *x, int64_t IW, float *y, int64_t OH, int64_t OW);
#endif

/* Fused SiLU for the executor: the impl of Mul(x, Sigmoid(x)) (x at Mul
 * input x_input, 0 or 1; the Sigmoid node is then skipped and its output
 * never stored), or NULL when this CPU has none or SQZ_FORCE_REF is set
 * (dispatch.c). */
const sqz_op_impl *sqz_fast_silu(int x_input);
/* The same on i8 Sigmoid and Mul nodes: one 256-entry table, the reference
 * int8 Sigmoid then the reference int8 Mul on every x (common/int8_lut.c);
 * NULL for x_input not 0 / 1. */
const sqz_op_impl *sqz_i8_silu_impl(int x_input);
/* The element function of the sqz_fast_silu impls, y[i] = x[i] * sigmoid(x[i])
 * for i < n (x == y allowed), or NULL when sqz_fast_silu has none. */
typedef void (*sqz_fast_row_fn)(const float *x, float *y, size_t n);
sqz_fast_row_fn sqz_fast_silu_row(void);

/* Conv epilogue fusion (fp32; the executor decides after planning, see
 * session.c). impl / ctx: a prepared Conv node with its pointers bound.
 * fuse_add: the conv also writes out[i] = Add(y[i], residual[i]) (through
 * Relu when relu) for every output element i, in its store; out is the
 * conv's own output or the residual's buffer (same shape as the output).
 * fuse_silu: the conv's output becomes y * sigmoid(y) by sqz_fast_silu_row.
 * Both return 1 when the conv's impl took the epilogue (GEMM, px, gemv and
 * Winograd convs; depthwise for SiLU only), 0 otherwise (nothing changed). */
int sqz_fast_conv_fuse_add(const sqz_op_impl *impl, sqz_op_ctx *ctx, const float *residual,
                           float *out, int relu);
int sqz_fast_conv_fuse_silu(const sqz_op_impl *impl, sqz_op_ctx *ctx);

#endif
