/* ops.c - op names, attribute lookup, failure messages and the reference
 * kernel table. */
#include "sqz/ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ref/ref.h"

static const char *const op_names[SQZ_OP_COUNT_] = {
    [SQZ_OP_CONV] = "Conv",
    [SQZ_OP_CONV_TRANSPOSE] = "ConvTranspose",
    [SQZ_OP_GEMM] = "Gemm",
    [SQZ_OP_MATMUL] = "MatMul",
    [SQZ_OP_BATCHNORM] = "BatchNormalization",
    [SQZ_OP_RELU] = "Relu",
    [SQZ_OP_LEAKY_RELU] = "LeakyRelu",
    [SQZ_OP_PRELU] = "PRelu",
    [SQZ_OP_CLIP] = "Clip",
    [SQZ_OP_SIGMOID] = "Sigmoid",
    [SQZ_OP_HARD_SIGMOID] = "HardSigmoid",
    [SQZ_OP_HARD_SWISH] = "HardSwish",
    [SQZ_OP_TANH] = "Tanh",
    [SQZ_OP_ADD] = "Add",
    [SQZ_OP_SUB] = "Sub",
    [SQZ_OP_MUL] = "Mul",
    [SQZ_OP_DIV] = "Div",
    [SQZ_OP_POW] = "Pow",
    [SQZ_OP_SQRT] = "Sqrt",
    [SQZ_OP_CONCAT] = "Concat",
    [SQZ_OP_SPLIT] = "Split",
    [SQZ_OP_SLICE] = "Slice",
    [SQZ_OP_TRANSPOSE] = "Transpose",
    [SQZ_OP_RESHAPE] = "Reshape",
    [SQZ_OP_FLATTEN] = "Flatten",
    [SQZ_OP_SQUEEZE] = "Squeeze",
    [SQZ_OP_UNSQUEEZE] = "Unsqueeze",
    [SQZ_OP_MAXPOOL] = "MaxPool",
    [SQZ_OP_AVGPOOL] = "AveragePool",
    [SQZ_OP_GLOBAL_AVGPOOL] = "GlobalAveragePool",
    [SQZ_OP_REDUCE_MEAN] = "ReduceMean",
    [SQZ_OP_SOFTMAX] = "Softmax",
    [SQZ_OP_RESIZE] = "Resize",
    [SQZ_OP_PAD] = "Pad",
    [SQZ_OP_IDENTITY] = "Identity",
    [SQZ_OP_QUANTIZE_LINEAR] = "QuantizeLinear",
    [SQZ_OP_DEQUANTIZE_LINEAR] = "DequantizeLinear",
};

static const sqz_op_impl *const ref_table[SQZ_OP_COUNT_] = {
    [SQZ_OP_CONV] = &sqz_ref_conv,
    [SQZ_OP_CONV_TRANSPOSE] = &sqz_ref_conv_transpose,
    [SQZ_OP_GEMM] = &sqz_ref_gemm,
    [SQZ_OP_MATMUL] = &sqz_ref_matmul,
    [SQZ_OP_BATCHNORM] = &sqz_ref_batchnorm,
    [SQZ_OP_RELU] = &sqz_ref_relu,
    [SQZ_OP_LEAKY_RELU] = &sqz_ref_leaky_relu,
    [SQZ_OP_PRELU] = &sqz_ref_prelu,
    [SQZ_OP_CLIP] = &sqz_ref_clip,
    [SQZ_OP_SIGMOID] = &sqz_ref_sigmoid,
    [SQZ_OP_HARD_SIGMOID] = &sqz_ref_hard_sigmoid,
    [SQZ_OP_HARD_SWISH] = &sqz_ref_hard_swish,
    [SQZ_OP_TANH] = &sqz_ref_tanh,
    [SQZ_OP_ADD] = &sqz_ref_add,
    [SQZ_OP_SUB] = &sqz_ref_sub,
    [SQZ_OP_MUL] = &sqz_ref_mul,
    [SQZ_OP_DIV] = &sqz_ref_div,
    [SQZ_OP_POW] = &sqz_ref_pow,
    [SQZ_OP_SQRT] = &sqz_ref_sqrt,
    [SQZ_OP_CONCAT] = &sqz_ref_concat,
    [SQZ_OP_SPLIT] = &sqz_ref_split,
    [SQZ_OP_SLICE] = &sqz_ref_slice,
    [SQZ_OP_TRANSPOSE] = &sqz_ref_transpose,
    [SQZ_OP_RESHAPE] = &sqz_ref_reshape,
    [SQZ_OP_FLATTEN] = &sqz_ref_flatten,
    [SQZ_OP_SQUEEZE] = &sqz_ref_squeeze,
    [SQZ_OP_UNSQUEEZE] = &sqz_ref_unsqueeze,
    [SQZ_OP_MAXPOOL] = &sqz_ref_maxpool,
    [SQZ_OP_AVGPOOL] = &sqz_ref_avgpool,
    [SQZ_OP_GLOBAL_AVGPOOL] = &sqz_ref_global_avgpool,
    [SQZ_OP_REDUCE_MEAN] = &sqz_ref_reduce_mean,
    [SQZ_OP_SOFTMAX] = &sqz_ref_softmax,
    [SQZ_OP_RESIZE] = &sqz_ref_resize,
    [SQZ_OP_PAD] = &sqz_ref_pad,
    [SQZ_OP_IDENTITY] = &sqz_ref_identity,
    [SQZ_OP_QUANTIZE_LINEAR] = &sqz_ref_quantize_linear,
    [SQZ_OP_DEQUANTIZE_LINEAR] = &sqz_ref_dequantize_linear,
};

/* int8 implementations (dtype-driven dispatch, sqz/ops.h "Data types") */
static const sqz_op_impl *const ref_int8_table[SQZ_OP_COUNT_] = {
    [SQZ_OP_CONV] = &sqz_ref_i8_conv,
    [SQZ_OP_GEMM] = &sqz_ref_i8_gemm,
    [SQZ_OP_MATMUL] = &sqz_ref_i8_matmul,
    [SQZ_OP_ADD] = &sqz_ref_i8_add,
    [SQZ_OP_MAXPOOL] = &sqz_ref_i8_maxpool,
    [SQZ_OP_AVGPOOL] = &sqz_ref_i8_avgpool,
    [SQZ_OP_GLOBAL_AVGPOOL] = &sqz_ref_i8_global_avgpool,
    [SQZ_OP_CONCAT] = &sqz_ref_i8_concat,
    [SQZ_OP_RELU] = &sqz_ref_i8_relu,
    [SQZ_OP_CLIP] = &sqz_ref_i8_clip,
    [SQZ_OP_RESHAPE] = &sqz_ref_i8_reshape,
    [SQZ_OP_FLATTEN] = &sqz_ref_i8_flatten,
    [SQZ_OP_SQUEEZE] = &sqz_ref_i8_squeeze,
    [SQZ_OP_UNSQUEEZE] = &sqz_ref_i8_unsqueeze,
    [SQZ_OP_IDENTITY] = &sqz_ref_i8_identity,
    [SQZ_OP_SLICE] = &sqz_ref_i8_slice,
    [SQZ_OP_TRANSPOSE] = &sqz_ref_i8_transpose,
    [SQZ_OP_SPLIT] = &sqz_ref_i8_split,
    [SQZ_OP_SIGMOID] = &sqz_ref_i8_sigmoid,
    [SQZ_OP_HARD_SIGMOID] = &sqz_ref_i8_hard_sigmoid,
    [SQZ_OP_HARD_SWISH] = &sqz_ref_i8_hard_swish,
    [SQZ_OP_TANH] = &sqz_ref_i8_tanh,
    [SQZ_OP_MUL] = &sqz_ref_i8_mul,
};

const char *sqz_op_name(int op) {
    if (op <= SQZ_OP_INVALID || op >= SQZ_OP_COUNT_) return NULL;
    return op_names[op];
}

int sqz_op_from_name(const char *name) {
    if (!name) return SQZ_OP_INVALID;
    for (int op = 1; op < SQZ_OP_COUNT_; op++)
        if (op_names[op] && strcmp(op_names[op], name) == 0) return op;
    return SQZ_OP_INVALID;
}

const sqz_op_impl *sqz_ref_op(int op) {
    if (op <= SQZ_OP_INVALID || op >= SQZ_OP_COUNT_) return NULL;
    return ref_table[op];
}

const sqz_op_impl *sqz_ref_op_int8(int op) {
    if (op <= SQZ_OP_INVALID || op >= SQZ_OP_COUNT_) return NULL;
    return ref_int8_table[op];
}

int sqz_ctx_is_int8(const sqz_op_ctx *c) {
    if (!c) return 0;
    if (c->node &&
        (c->node->op == SQZ_OP_QUANTIZE_LINEAR || c->node->op == SQZ_OP_DEQUANTIZE_LINEAR))
        return 0;
    for (uint32_t i = 0; i < c->n_in; i++)
        if (c->in_shape && c->in_shape[i].ndim >= 0 && sqz_ctx_in_dtype(c, i) != SQZ_DT_F32)
            return 1;
    for (uint32_t i = 0; i < c->n_out; i++)
        if (sqz_ctx_out_dtype(c, i) != SQZ_DT_F32) return 1;
    return 0;
}

int64_t sqz_shape_numel(const sqz_shape *s) {
    if (!s || s->ndim < 0) return 0;
    int64_t n = 1;
    for (int i = 0; i < s->ndim && i < SQZ_MAX_DIMS; i++) n *= s->dims[i];
    return n;
}

const sqz_attr *sqz_node_attr(const sqz_node *n, const char *name) {
    if (!n || !name || !n->attrs) return NULL;
    for (uint32_t i = 0; i < n->n_attrs; i++)
        if (n->attrs[i].name && strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t sqz_attr_int(const sqz_node *n, const char *name, int64_t dflt) {
    const sqz_attr *a = sqz_node_attr(n, name);
    if (!a) return dflt;
    if ((a->type == SQZ_ATTR_INT || a->type == SQZ_ATTR_INTS) && a->count == 1 && a->ints)
        return a->ints[0];
    return dflt;
}

float sqz_attr_float(const sqz_node *n, const char *name, float dflt) {
    const sqz_attr *a = sqz_node_attr(n, name);
    if (!a) return dflt;
    if ((a->type == SQZ_ATTR_FLOAT || a->type == SQZ_ATTR_FLOATS) && a->count == 1 && a->floats)
        return a->floats[0];
    if (a->type == SQZ_ATTR_INT && a->count == 1 && a->ints) return (float)a->ints[0];
    return dflt;
}

const char *sqz_attr_str(const sqz_node *n, const char *name, const char *dflt) {
    const sqz_attr *a = sqz_node_attr(n, name);
    if (!a || a->type != SQZ_ATTR_STRING || !a->str) return dflt;
    return a->str;
}

int sqz_attr_ints(const sqz_node *n, const char *name, const int64_t **vals) {
    const sqz_attr *a = sqz_node_attr(n, name);
    if (vals) *vals = NULL;
    if (!a || (a->type != SQZ_ATTR_INT && a->type != SQZ_ATTR_INTS)) return -1;
    if (a->type == SQZ_ATTR_INT && (a->count != 1 || !a->ints)) return -1;
    if (a->count > 0 && !a->ints) return -1;
    if (vals) *vals = a->ints;
    return (int)a->count;
}

int sqz_attr_floats(const sqz_node *n, const char *name, const float **vals) {
    const sqz_attr *a = sqz_node_attr(n, name);
    if (vals) *vals = NULL;
    if (!a || (a->type != SQZ_ATTR_FLOAT && a->type != SQZ_ATTR_FLOATS)) return -1;
    if (a->type == SQZ_ATTR_FLOAT && (a->count != 1 || !a->floats)) return -1;
    if (a->count > 0 && !a->floats) return -1;
    if (vals) *vals = a->floats;
    return (int)a->count;
}

int sqz_op_fail(sqz_op_ctx *ctx, const char *fmt, ...) {
    if (ctx && ctx->err && ctx->err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err, ctx->err_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}
