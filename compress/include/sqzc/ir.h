/* sqzc/ir.h - the offline graph IR.
 *
 * A mutable graph of tensors and nodes. Nodes use the runtime's op set and
 * attribute representation (sqz/ops.h) so that passes can run the runtime's
 * reference kernels directly (shape inference, constant folding).
 *
 * Tensors carry float data, int64 data (shape arithmetic during import, folded
 * away before writing), or int8 / int32 data with quantization parameters
 * (written by the INT8 quantizer, sqzc/quant.h). A non-constant tensor's
 * dtype is the dtype the runtime gives it (F32 or I8).
 */
#ifndef SQZC_IR_H
#define SQZC_IR_H

#include <stddef.h>
#include <stdint.h>

#include "sqz/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sqzc_dtype {
    SQZC_F32 = 1,
    SQZC_I64 = 2,
    SQZC_I8 = 3,  /* int8 (quantized activations and weights; INT8 contract) */
    SQZC_I32 = 4, /* int32 (quantized biases) */
} sqzc_dtype;

/* Quantization parameters of a tensor (the .sqz tensor record's quant block):
 * real = scale[c] * (q - zero_point[c]). */
typedef enum sqzc_qkind {
    SQZC_Q_NONE = 0,
    SQZC_Q_TENSOR = 1,  /* one (scale, zero_point) */
    SQZC_Q_CHANNEL = 2, /* one pair per index of axis */
} sqzc_qkind;

typedef struct sqzc_qparams {
    int kind;            /* sqzc_qkind */
    int axis;            /* SQZC_Q_CHANNEL: the channel axis */
    int n;               /* pairs: 1 (per tensor) or dims[axis] */
    float *scale;        /* owned, n */
    int32_t *zero_point; /* owned, n */
} sqzc_qparams;

/* How the writer should store a constant tensor (NULL = raw fp32). Set by the
 * compression passes (weight sharing, magnitude pruning); the tensor's f32
 * data already holds the final values (every non-zero equals a centroid), so
 * encoding is lossless with respect to the IR. */
typedef struct sqzc_encoding {
    int codebook_bits; /* 0: raw values; 1..8: k-bit indices into centroids */
    float *centroids;  /* owned; n_centroids <= 1 << codebook_bits */
    int n_centroids;
    int centroid_f16; /* store the centroids as fp16 (values must be fp16-exact) */
    int sparse;       /* store non-zeros only, with relative indices (gaps) */
    int gap_bits;     /* sparse: bits per gap symbol, 1..8 (filler zero on overflow) */
    int huffman;      /* canonical-Huffman-code the index and gap streams where it pays */
    int linear;       /* linear codebook (format v3): centroid j == (float)(j + lin_offset) *
                         lin_step exactly; stored as offset + step instead of a table */
    int32_t lin_offset;
    float lin_step;
} sqzc_encoding;

typedef struct sqzc_tensor {
    char *name;
    int dtype;     /* sqzc_dtype */
    int has_shape; /* shape known (after inference or from the model) */
    sqz_shape shape;
    float *f32;         /* constant data when dtype == SQZC_F32, else NULL */
    int64_t *i64;       /* constant data when dtype == SQZC_I64, else NULL */
    int8_t *i8;         /* constant data when dtype == SQZC_I8, else NULL */
    int32_t *i32;       /* constant data when dtype == SQZC_I32, else NULL */
    sqzc_qparams q;     /* quantization (dtype I8 / I32); kind SQZC_Q_NONE otherwise */
    sqzc_encoding *enc; /* storage request for a constant; NULL = raw (owned) */
} sqzc_tensor;

/* A node owns its arrays; attrs use the runtime's sqz_attr layout with memory
 * owned by the graph (freed by sqzc_graph_free). */
typedef struct sqzc_node {
    int op; /* sqz_op; SQZ_OP_INVALID marks a removed node (see sqzc_graph_compact) */
    char *name;
    uint32_t n_in, n_out, n_attr;
    int32_t *in; /* -1 = absent optional input */
    int32_t *out;
    sqz_attr *attrs;
} sqzc_node;

typedef struct sqzc_kv {
    char *key, *value;
} sqzc_kv;

typedef struct sqzc_graph {
    sqzc_tensor *tensors;
    int n_tensors, cap_tensors;
    sqzc_node *nodes; /* in execution order once sorted */
    int n_nodes, cap_nodes;
    int32_t *inputs; /* graph input tensor ids (non-constant) */
    int n_inputs;
    int32_t *outputs;
    int n_outputs;
    sqzc_kv *meta;
    int n_meta;
    void *name_index; /* private: name -> tensor id hash */
    int keep_names;   /* writer: store internal tensor / node names (default: only graph I/O) */
} sqzc_graph;

sqzc_graph *sqzc_graph_new(void);
void sqzc_graph_free(sqzc_graph *g);

/* Id of the tensor named name, or -1. */
int sqzc_find_tensor(const sqzc_graph *g, const char *name);
/* Id of the tensor named name, created (no data, no shape) if missing; -1 on OOM. */
int sqzc_tensor_get_or_add(sqzc_graph *g, const char *name);
/* Adds a tensor with a fresh unique name derived from base; -1 on OOM. */
int sqzc_tensor_add_unique(sqzc_graph *g, const char *base);
/* Set constant data (copied). Returns 0, -1 on OOM. Replaces earlier data. */
int sqzc_tensor_set_f32(sqzc_graph *g, int t, const sqz_shape *shape, const float *data);
int sqzc_tensor_set_i64(sqzc_graph *g, int t, const sqz_shape *shape, const int64_t *data);
int sqzc_tensor_set_i8(sqzc_graph *g, int t, const sqz_shape *shape, const int8_t *data);
int sqzc_tensor_set_i32(sqzc_graph *g, int t, const sqz_shape *shape, const int32_t *data);
/* Set f32 constant data by taking data (malloc'd, numel(shape) floats; freed
 * with the graph): no copy. 0, -1 on a bad shape (data not taken). */
int sqzc_tensor_take_f32(sqzc_graph *g, int t, const sqz_shape *shape, float *data);
/* Set quantization parameters (copied): kind SQZC_Q_TENSOR with n == 1, or
 * SQZC_Q_CHANNEL along axis with n pairs; SQZC_Q_NONE clears. 0 ok, -1 OOM. */
int sqzc_tensor_set_qparams(sqzc_graph *g, int t, int kind, int axis, int n, const float *scale,
                            const int32_t *zero_point);
static inline int sqzc_tensor_is_const(const sqzc_graph *g, int t) {
    return t >= 0 && (g->tensors[t].f32 != NULL || g->tensors[t].i64 != NULL ||
                      g->tensors[t].i8 != NULL || g->tensors[t].i32 != NULL);
}

/* Attach (a copy of) an encoding request to constant tensor t; replaces an
 * earlier one; enc == NULL clears it. 0 ok, -1 OOM. */
int sqzc_tensor_set_encoding(sqzc_graph *g, int t, const sqzc_encoding *enc);

/* Append a node; returns its index or -1 on OOM. in/out are copied. */
int sqzc_add_node(sqzc_graph *g, int op, const char *name, uint32_t n_in, const int32_t *in,
                  uint32_t n_out, const int32_t *out);
/* Attribute setters (replace an attribute of the same name). 0 ok, -1 OOM. */
int sqzc_node_set_int(sqzc_graph *g, int node, const char *name, int64_t v);
int sqzc_node_set_float(sqzc_graph *g, int node, const char *name, float v);
int sqzc_node_set_ints(sqzc_graph *g, int node, const char *name, const int64_t *v, uint32_t n);
int sqzc_node_set_floats(sqzc_graph *g, int node, const char *name, const float *v, uint32_t n);
int sqzc_node_set_str(sqzc_graph *g, int node, const char *name, const char *v);
/* Replace a node's inputs. 0 ok, -1 OOM. */
int sqzc_node_set_inputs(sqzc_graph *g, int node, uint32_t n_in, const int32_t *in);

/* Read-only view of a node in the runtime's representation. */
void sqzc_node_view(const sqzc_graph *g, int node, sqz_node *view);

/* Drop nodes marked SQZ_OP_INVALID and tensors no node, input or output
 * references; renumbers ids. 0 ok, -1 OOM. */
int sqzc_graph_compact(sqzc_graph *g);
/* Order nodes topologically (stable). 0 ok, -1 with err (cycle / missing producer). */
int sqzc_graph_toposort(sqzc_graph *g, char *err, size_t err_len);

int sqzc_graph_set_meta(sqzc_graph *g, const char *key, const char *value);

/* Node index producing tensor t, or -1 (input / constant / unknown). O(nodes). */
int sqzc_producer(const sqzc_graph *g, int t);
/* Number of node inputs plus graph outputs that read tensor t. O(nodes). */
int sqzc_consumer_count(const sqzc_graph *g, int t);

#ifdef __cplusplus
}
#endif
#endif
