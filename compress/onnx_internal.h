/* onnx_internal.h - private interface shared by the ONNX importer's files.
 *
 *   onnx_import.c  driver: file, opset, inputs, initializers, node order, outputs
 *   onnx_tensor.c  TensorProto decoding (all dtypes, raw / typed / external data)
 *   onnx_fold.c    import-only ops evaluated on constants (Shape, Gather, Cast...)
 *   onnx_lower.c   lowering to sqz ops, parameter inputs -> attributes, shape
 *                  inference and float constant folding with the ref kernels
 */
#ifndef SQZC_ONNX_INTERNAL_H
#define SQZC_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"
#include "sqz/ops.h"
#include "sqzc/ir.h"
#include "sqzc/onnx_import.h"

/* Largest constant the importer materializes (elements). */
#define OX_MAX_CONST_ELEMS ((int64_t)1 << 28)

typedef struct ox_ctx {
    const char *path; /* model path, prefixes every message */
    const char *dir;  /* directory of the model (external data) */
    int opset;
    sqzc_graph *g;
    const sqzc_import_options *opts;
    char *err;
    size_t err_len;
    /* ops that could not be imported, listed together at the end */
    char *unsup;
    size_t unsup_len, unsup_cap;
    int n_unsup;
    /* tensors downstream of an unsupported op (by tensor id) */
    uint8_t *poison;
    int poison_cap;
} ox_ctx;

/* A constant value during import (data owned by the caller). */
typedef struct ox_val {
    int dtype; /* SQZC_F32 / SQZC_I64 */
    sqz_shape shape;
    float *f32;
    int64_t *i64;
} ox_val;

/* Error helpers: write "path: msg" into ctx->err; return -1. */
int ox_fail(ox_ctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Record an op that cannot be imported ("label (OpType[: reason])"). -1 on OOM. */
int ox_unsupported(ox_ctx *c, const char *label, const char *op_type, const char *reason);

static inline const char *ox_s(const char *s) {
    return s ? s : "";
}

/* Node label for messages: its name, or "<OpType> #i (output 'y')". */
void ox_node_label(const Onnx__NodeProto *n, int idx, char *buf, size_t len);

/* ---- onnx_tensor.c */
/* Element count of a shape with overflow / limit checks; -1 when invalid. */
int64_t ox_numel(const sqz_shape *s);
/* Decode a TensorProto into v (fresh malloc'd data, F32 for float dtypes,
 * I64 for integer / bool dtypes). dir resolves external data (may be NULL to
 * refuse it). what names the tensor in messages. 0 ok, -1 with err. */
int ox_tensor_decode(const Onnx__TensorProto *t, const char *dir, const char *path, ox_val *v,
                     char *err, size_t err_len);
/* The same, except that float raw_data of the host's byte order becomes v's
 * data (taken from t, which keeps no raw_data) instead of being copied. */
int ox_tensor_decode_take(Onnx__TensorProto *t, const char *dir, const char *path, ox_val *v,
                          char *err, size_t err_len);
void ox_val_free(ox_val *v);
/* ONNX dtype class: 1 float, 2 integer/bool, 0 unsupported. */
int ox_dtype_class(int onnx_dtype);
const char *ox_dtype_name(int onnx_dtype);
/* Read a whole file (bounded); returns malloc'd buffer or NULL with err. */
uint8_t *ox_read_file(const char *path, size_t *len, char *err, size_t err_len);
/* Directory part of path ("." when none); malloc'd, NULL on OOM. */
char *ox_dirname(const char *path);
/* Store v into graph tensor t (copies; ox_store_take: moves v's data, v is
 * left empty). 0 / -1 (OOM). */
int ox_store(sqzc_graph *g, int t, const ox_val *v);
int ox_store_take(sqzc_graph *g, int t, ox_val *v);

/* ---- onnx_fold.c */
/* Evaluate an import-only or integer op on constant inputs. Returns 1 when
 * folded (outputs stored as constants), 0 when this evaluator does not handle
 * the op / dtypes (caller lowers it), -1 on error (ctx->err set). */
int ox_fold_node(ox_ctx *c, const Onnx__NodeProto *n, const char *label, const int32_t *in,
                 const int32_t *out);
/* Attribute lookup on a NodeProto. */
const Onnx__AttributeProto *ox_attr(const Onnx__NodeProto *n, const char *name);
int64_t ox_attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt);
/* Normalized attribute type (infers a missing type from the set fields). */
int ox_attr_type(const Onnx__AttributeProto *a);

/* ---- onnx_lower.c */
/* Lower node n (all inputs known: constants or shaped) to an IR node, infer
 * its output shapes, fold it when all inputs are constant. 0 ok, -1 error,
 * 1 when the node was recorded as unsupported (caller poisons its outputs). */
int ox_lower_node(ox_ctx *c, const Onnx__NodeProto *n, const char *label, const int32_t *in,
                  const int32_t *out);
/* Ops that exist only at import (evaluated on constants or rewritten). */
int ox_is_import_only(const char *op_type);
/* Mark tensor t as downstream of an unsupported op. -1 on OOM. */
int ox_poison(ox_ctx *c, int t);
int ox_is_poisoned(const ox_ctx *c, int t);

#endif
