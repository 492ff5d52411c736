/* ref/ref.h - the scalar reference kernels (internal).
 *
 * One sqz_op_impl per op, plus small helpers shared by the kernel files:
 * input/output count checks, fused activations, strided copies. */
#ifndef SQZ_REF_H
#define SQZ_REF_H

#include <stddef.h>
#include <stdint.h>

#include "sqz/ops.h"

extern const sqz_op_impl sqz_ref_conv, sqz_ref_conv_transpose;
extern const sqz_op_impl sqz_ref_gemm, sqz_ref_matmul;
extern const sqz_op_impl sqz_ref_batchnorm, sqz_ref_relu, sqz_ref_leaky_relu, sqz_ref_prelu;
extern const sqz_op_impl sqz_ref_clip, sqz_ref_sigmoid, sqz_ref_hard_sigmoid, sqz_ref_hard_swish;
extern const sqz_op_impl sqz_ref_tanh, sqz_ref_add, sqz_ref_sub, sqz_ref_mul, sqz_ref_div;
extern const sqz_op_impl sqz_ref_pow, sqz_ref_sqrt, sqz_ref_identity;
extern const sqz_op_impl sqz_ref_concat, sqz_ref_split, sqz_ref_slice, sqz_ref_transpose;
extern const sqz_op_impl sqz_ref_reshape, sqz_ref_flatten, sqz_ref_squeeze, sqz_ref_unsqueeze;
extern const sqz_op_impl sqz_ref_pad;
extern const sqz_op_impl sqz_ref_maxpool, sqz_ref_avgpool, sqz_ref_global_avgpool;
extern const sqz_op_impl sqz_ref_reduce_mean, sqz_ref_softmax;
extern const sqz_op_impl sqz_ref_resize;
/* INT8 (ref/int8*.c): the boundaries (f32 table) and the int8 implementations */
extern const sqz_op_impl sqz_ref_quantize_linear, sqz_ref_dequantize_linear;
extern const sqz_op_impl sqz_ref_i8_conv, sqz_ref_i8_gemm, sqz_ref_i8_matmul, sqz_ref_i8_add;
extern const sqz_op_impl sqz_ref_i8_maxpool, sqz_ref_i8_avgpool, sqz_ref_i8_global_avgpool;
extern const sqz_op_impl sqz_ref_i8_concat, sqz_ref_i8_relu, sqz_ref_i8_clip;
extern const sqz_op_impl sqz_ref_i8_reshape, sqz_ref_i8_flatten, sqz_ref_i8_squeeze;
extern const sqz_op_impl sqz_ref_i8_unsqueeze, sqz_ref_i8_identity;
extern const sqz_op_impl sqz_ref_i8_slice, sqz_ref_i8_transpose, sqz_ref_i8_split;
extern const sqz_op_impl sqz_ref_i8_sigmoid, sqz_ref_i8_hard_sigmoid, sqz_ref_i8_hard_swish;
extern const sqz_op_impl sqz_ref_i8_tanh, sqz_ref_i8_mul;

/* Largest element count of any tensor a kernel accepts (keeps every size
 * product of a kernel far from int64 / size_t overflow). */
#define REF_MAX_NUMEL ((int64_t)1 << 36)

/* ONNX op_type of the node in ctx (for messages). */
const char *ref_opname(const sqz_op_ctx *ctx);

/* Checks min_in <= n_in <= max_in, that inputs [0, min_in) are present and
 * have a sane rank, and (when n_out > 0) that exactly n_out outputs exist. */
int ref_check_io(sqz_op_ctx *ctx, uint32_t min_in, uint32_t max_in, uint32_t n_out);

/* Fails unless dims[0..nd) are >= 0 with a product <= REF_MAX_NUMEL. */
int ref_check_size(sqz_op_ctx *ctx, int nd, const int64_t *dims);

/* Present optional input? */
static inline int ref_has_input(const sqz_op_ctx *ctx, uint32_t i) {
    return i < ctx->n_in && ctx->in_shape[i].ndim >= 0;
}

/* Normalizes axis into [0, rank) (or [0, rank] when allow_end); -1 with a
 * message naming attr on failure. */
int ref_norm_axis(sqz_op_ctx *ctx, const char *attr, int64_t axis, int rank, int allow_end,
                  int *out);

/* Fixed-length INTS attribute: copies n values into out (dflt when absent);
 * fails when the attribute has another length. */
int ref_ints_n(sqz_op_ctx *ctx, const char *name, int n, int64_t dflt, int64_t *out);

/* Row-major strides of a shape (elements). */
void ref_strides(const sqz_shape *s, int64_t *st);
int64_t ref_prod(const int64_t *dims, int from, int to);

/* Params of the reference Split (ctx->params after its prepare; element
 * units, so the int8 twin in ref/int8.c reuses it, as ref_strided below). */
typedef struct ref_split {
    int64_t outer, in_inner, inner;
} ref_split;

/* y[i...] = x[base + sum(i_d * xst[d])] over the row-major index space dims[nd]. */
void ref_strided_copy(float *y, const float *x, int nd, const int64_t *dims, int64_t base,
                      const int64_t *xst);

/* params of the reference Slice / Transpose (ctx->params after their
 * prepare): output y[i...] = x[base + sum(i_d * st[d])], i over dims[nd] */
typedef struct ref_strided {
    int nd;
    int64_t dims[SQZ_MAX_DIMS], st[SQZ_MAX_DIMS];
    int64_t base;
} ref_strided;

/* Fused activation (sqz_act attributes). */
typedef struct ref_act {
    int kind;
    float alpha, beta;
} ref_act;
int ref_act_prepare(sqz_op_ctx *ctx, ref_act *act);
float ref_act_eval(const ref_act *act, float v);
void ref_act_apply(const ref_act *act, float *y, size_t n);

/* Spatial geometry shared by Conv and the pools (up to 3 spatial dims, padded
 * to 3 with size-1 dims at the front). */
typedef struct ref_geom {
    int nd;                /* real spatial dims (1..3) */
    int64_t in[3], out[3]; /* input / output extent */
    int64_t k[3], s[3], d[3];
    int64_t pb[3], pe[3]; /* pads begin / end */
} ref_geom;

/* Fills g->nd..: reads kernel_shape (or uses kshape when non-NULL), strides,
 * dilations, pads, auto_pad and (when pool) ceil_mode; computes out[]. */
int ref_geom_prepare(sqz_op_ctx *ctx, ref_geom *g, int nd, const int64_t *in_sp,
                     const int64_t *kshape, int pool);

#endif
