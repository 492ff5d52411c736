/* sqz/ops.h - operator set, node/attribute view and the kernel contract.
 *
 * Shared by the runtime (executor) and the offline tools (shape inference and
 * constant folding run the runtime's own reference kernels, so there is one
 * definition of every op's semantics).
 *
 * Semantics follow ONNX (opset 7..18) with one rule: every input that ONNX
 * allows to be a tensor but that fixes a shape or a parameter (Reshape.shape,
 * Slice.starts/ends/axes/steps, Pad.pads/constant_value, Resize.scales/sizes,
 * Split.split, Squeeze/Unsqueeze.axes, ReduceMean.axes, Clip.min/max) is folded
 * at import into an attribute of the same ONNX name. See the per-op notes
 * below.
 *
 * Data types: every tensor is f32 unless the model says otherwise. INT8 models
 * (sqz/format.h "INT8") have i8 activations / weights and i32 biases; the op a
 * node runs is chosen by dtype (as in TFLite; no separate QConv ids): a node
 * with any non-f32 input or output runs the int8 implementation of its op
 * (sqz_ref_op_int8), except QuantizeLinear / DequantizeLinear, which are the
 * boundaries and live in the f32 table. Ops with an int8 implementation:
 * Conv, Gemm, MatMul (i8 X, i8 constant W symmetric per output channel,
 * optional i32 bias, i8 Y; fused act NONE / RELU / CLIP only, applied as a
 * clamp in the quantized domain), Add, Mul (QLinearMul: y = s_a s_b / s_y
 * (a - zp_a)(b - zp_b) + zp_y, fp32 requantization; both with broadcasting), MaxPool
 * (Y params == X params), AveragePool, GlobalAveragePool, Concat, Relu, Clip,
 * Sigmoid, HardSigmoid, HardSwish, Tanh (y = q(f(dq(x))), one rounding), and
 * the views Reshape / Flatten / Squeeze / Unsqueeze / Identity and the copies
 * Slice / Transpose / Split (Y params == X params).
 */
#ifndef SQZ_OPS_H
#define SQZ_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "sqz/format.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SQZ_MAX_DIMS 8

/* Op ids are stored in .sqz files: never renumber, only append. */
typedef enum sqz_op {
    SQZ_OP_INVALID = 0,
    SQZ_OP_CONV = 1,           /* X, W, [B]; attrs as ONNX + fused activation (below) */
    SQZ_OP_CONV_TRANSPOSE = 2, /* X, W, [B]; attrs as ONNX (output_shape, output_padding) */
    SQZ_OP_GEMM = 3,           /* A, B, [C]; alpha, beta, transA, transB; + fused act */
    SQZ_OP_MATMUL = 4,         /* A, B with numpy broadcasting of batch dims */
    SQZ_OP_BATCHNORM = 5,      /* X, scale, B, mean, var; epsilon (inference mode only) */
    SQZ_OP_RELU = 6,
    SQZ_OP_LEAKY_RELU = 7, /* alpha (default 0.01) */
    SQZ_OP_PRELU = 8,      /* X, slope (unidirectional broadcast to X) */
    SQZ_OP_CLIP = 9,       /* attrs min, max (floats; absent = unbounded) */
    SQZ_OP_SIGMOID = 10,
    SQZ_OP_HARD_SIGMOID = 11, /* alpha (0.2), beta (0.5) */
    SQZ_OP_HARD_SWISH = 12,
    SQZ_OP_TANH = 13,
    SQZ_OP_ADD = 14, /* A, B multidirectional broadcasting */
    SQZ_OP_SUB = 15,
    SQZ_OP_MUL = 16,
    SQZ_OP_DIV = 17,
    SQZ_OP_POW = 18,
    SQZ_OP_SQRT = 19,
    SQZ_OP_CONCAT = 20,    /* axis */
    SQZ_OP_SPLIT = 21,     /* axis, split (ints, optional), num_outputs (opset 18) */
    SQZ_OP_SLICE = 22,     /* starts, ends, axes (opt), steps (opt) */
    SQZ_OP_TRANSPOSE = 23, /* perm (optional: reverse) */
    SQZ_OP_RESHAPE = 24,   /* shape (ints, ONNX 0 / -1 rules), allowzero */
    SQZ_OP_FLATTEN = 25,   /* axis (default 1) */
    SQZ_OP_SQUEEZE = 26,   /* axes (optional: all 1-dims) */
    SQZ_OP_UNSQUEEZE = 27, /* axes */
    SQZ_OP_MAXPOOL = 28,   /* kernel_shape, strides, pads, dilations, auto_pad, ceil_mode */
    SQZ_OP_AVGPOOL = 29,   /* + count_include_pad */
    SQZ_OP_GLOBAL_AVGPOOL = 30,
    SQZ_OP_REDUCE_MEAN = 31, /* axes (opt), keepdims (1), noop_with_empty_axes (0) */
    SQZ_OP_SOFTMAX = 32,     /* axis; legacy=1 means opset<13 semantics (coerce to 2D at axis) */
    SQZ_OP_RESIZE = 33,   /* scales (floats) or sizes (ints); mode, coordinate_transformation_mode,
                             nearest_mode, cubic_coeff_a, exclude_outside, axes,
                             keep_aspect_ratio_policy; modes nearest and linear */
    SQZ_OP_PAD = 34,      /* pads (ints), mode (constant|reflect|edge), value (float), axes */
    SQZ_OP_IDENTITY = 35, /* also Dropout in inference */
    /* INT8 fp32-island boundaries (sqz/format.h "INT8"); one input, no attrs:
     * Y (i8, per-tensor s, zp) = clamp(round_half_to_even(x / s) + zp, -128, 127) */
    SQZ_OP_QUANTIZE_LINEAR = 36,
    SQZ_OP_DEQUANTIZE_LINEAR = 37, /* X (i8, per-tensor) -> Y (f32) = s * (q - zp) */
    SQZ_OP_COUNT_
} sqz_op;

/* Fused activation, stored on Conv / ConvTranspose / Gemm / MatMul as
 * attribute "sqz_act" (int) with "sqz_act_alpha" / "sqz_act_beta" (floats).
 * Applied to the op's output in the kernel's store. */
typedef enum sqz_act {
    SQZ_ACT_NONE = 0,
    SQZ_ACT_RELU = 1,
    SQZ_ACT_CLIP = 2,       /* min = alpha, max = beta (ReLU6: 0, 6) */
    SQZ_ACT_LEAKY_RELU = 3, /* alpha */
    SQZ_ACT_HARD_SWISH = 4,
    SQZ_ACT_SIGMOID = 5,
    SQZ_ACT_HARD_SIGMOID = 6, /* alpha, beta */
    SQZ_ACT_TANH = 7,
} sqz_act;

/* ONNX op_type of an op ("Conv"), or NULL for an unknown id. */
const char *sqz_op_name(int op);
/* Op id of an ONNX op_type, or SQZ_OP_INVALID. */
int sqz_op_from_name(const char *name);

typedef struct sqz_shape {
    int32_t ndim; /* -1 marks an absent optional input */
    int64_t dims[SQZ_MAX_DIMS];
} sqz_shape;

int64_t sqz_shape_numel(const sqz_shape *s);

typedef enum sqz_attr_type {
    SQZ_ATTR_INT = 1,
    SQZ_ATTR_FLOAT = 2,
    SQZ_ATTR_INTS = 3,
    SQZ_ATTR_FLOATS = 4,
    SQZ_ATTR_STRING = 5,
} sqz_attr_type;

typedef struct sqz_attr {
    const char *name;
    uint8_t type;   /* sqz_attr_type */
    uint32_t count; /* 1 for INT / FLOAT; element count for INTS / FLOATS; 0 for STRING */
    const int64_t *ints;
    const float *floats;
    const char *str;
} sqz_attr;

typedef struct sqz_node {
    uint16_t op; /* sqz_op */
    const char *name;
    uint32_t n_inputs, n_outputs, n_attrs;
    const int32_t *inputs; /* tensor ids; -1 = absent optional input */
    const int32_t *outputs;
    const sqz_attr *attrs;
} sqz_node;

/* Attribute lookup by name; NULL when absent. */
const sqz_attr *sqz_node_attr(const sqz_node *n, const char *name);
int64_t sqz_attr_int(const sqz_node *n, const char *name, int64_t dflt);
float sqz_attr_float(const sqz_node *n, const char *name, float dflt);
const char *sqz_attr_str(const sqz_node *n, const char *name, const char *dflt);
/* INTS (or a single INT) attribute; returns element count, -1 when absent. */
int sqz_attr_ints(const sqz_node *n, const char *name, const int64_t **vals);
int sqz_attr_floats(const sqz_node *n, const char *name, const float **vals);

/* Quantization parameters of a tensor (sqz/format.h "INT8"):
 * real = scale[c] * (q - zero_point[c]), c = 0 unless kind is per-channel,
 * then the index along axis (n == dims[axis]). kind SQZ_QUANT_NONE: n == 0. */
typedef struct sqz_qparams {
    uint8_t kind; /* sqz_quant_kind */
    uint8_t axis;
    uint32_t n;
    const float *scale;
    const int32_t *zero_point;
} sqz_qparams;

/* Kernel contract. The executor calls prepare() once per node at session
 * creation (shapes known, data known only for constant inputs), then run()
 * per inference, then release(params) when the session dies. */
typedef struct sqz_op_ctx {
    const sqz_node *node;
    uint32_t n_in, n_out;
    const sqz_shape *in_shape; /* [n_in]; absent optional inputs have ndim == -1 */
    /* Tensor storage. For a non-f32 tensor (in_dtype / out_dtype below) the
     * pointer addresses its elements of that dtype: cast to const int8_t * or
     * const int32_t * (i8 storage is numel bytes). */
    const float *const *in_data; /* [n_in]; in prepare: non-NULL only for constants */
    sqz_shape *out_shape;        /* [n_out]; prepare fills */
    float *const *out_data;      /* [n_out]; run only */
    void *params;                /* prepare may allocate; freed by release() */
    size_t scratch_bytes;        /* prepare sets when run() needs scratch */
    void *scratch;               /* run: scratch_bytes, 64-byte aligned */
    int num_threads;
    char *err; /* prepare: message on failure (the executor prefixes the node) */
    size_t err_len;
    /* dtypes and quantization parameters (sqz_dtype / sqz_qparams), fixed by
     * the model; NULL arrays mean every tensor is f32 without parameters
     * (callers that only run fp32 leave them zeroed). */
    const uint8_t *in_dtype;  /* [n_in] */
    const uint8_t *out_dtype; /* [n_out] */
    const sqz_qparams *in_q;  /* [n_in] */
    const sqz_qparams *out_q; /* [n_out] */
} sqz_op_ctx;

/* dtype of input / output i (SQZ_DT_F32 when the ctx carries no dtypes). */
static inline int sqz_ctx_in_dtype(const sqz_op_ctx *c, uint32_t i) {
    return c->in_dtype && i < c->n_in ? c->in_dtype[i] : SQZ_DT_F32;
}
static inline int sqz_ctx_out_dtype(const sqz_op_ctx *c, uint32_t i) {
    return c->out_dtype && i < c->n_out ? c->out_dtype[i] : SQZ_DT_F32;
}
/* 1 when the node must run its int8 implementation: a present input or an
 * output is not f32 and the op is not QuantizeLinear / DequantizeLinear. */
int sqz_ctx_is_int8(const sqz_op_ctx *c);

typedef struct sqz_op_impl {
    int (*prepare)(sqz_op_ctx *ctx); /* 0 ok; -1 with ctx->err filled */
    void (*run)(const sqz_op_ctx *ctx);
    void (*release)(void *params); /* may be NULL */
    /* multiply-accumulates of one run (for `sqz info`); may be NULL (0) */
    uint64_t (*macs)(const sqz_op_ctx *ctx);
} sqz_op_impl;

/* The scalar reference implementation of an op; NULL if the id is unknown. */
const sqz_op_impl *sqz_ref_op(int op);

/* The scalar reference int8 implementation of an op (see "Data types"
 * above); NULL when the op has none. */
const sqz_op_impl *sqz_ref_op_int8(int op);
/* Optimized int8 implementations for this CPU, best first (as
 * sqz_fast_ops); outputs are bit-identical to sqz_ref_op_int8(op). */
int sqz_fast_ops_int8(int op, const sqz_op_impl **out, int max);

/* Optimized implementations of an op for the CPU this process runs on
 * (detected once at run time), best first: writes up to max candidates and
 * returns their count (0 when only the reference exists). The executor calls
 * each candidate's prepare() in turn; a prepare() returning 1 declines the node
 * (a shape or attribute it does not cover) and the next is tried, ending with
 * sqz_ref_op(op). Outputs agree with the reference within float rounding. */
int sqz_fast_ops(int op, const sqz_op_impl **out, int max);

/* Set SQZ_FORCE_REF=1 in the environment (or call this with 1) to run the
 * reference kernels only: the oracle for tests and benches. */
void sqz_set_force_reference(int on);

/* printf-style failure for prepare(): writes ctx->err and returns -1. */
int sqz_op_fail(sqz_op_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
