/* sqzc/prune.h - unstructured magnitude pruning of layer weights, and the
 * sparse-storage estimate (relative indices with filler zeros, as in Deep
 * Compression) that decides when sparse storage pays.
 *
 * Layers: the weight (input 1, when constant) of every Conv, ConvTranspose,
 * Gemm and MatMul node. Biases are left alone. */
#ifndef SQZC_PRUNE_H
#define SQZC_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tensor id of node's compressible weight (input 1 of Conv / ConvTranspose /
 * Gemm / MatMul when it is a float constant), else -1. */
int sqzc_layer_weight(const sqzc_graph *g, int node);
/* 1 for Conv / ConvTranspose, 0 for Gemm / MatMul ("conv" vs "fc" layers). */
int sqzc_layer_is_conv(const sqzc_graph *g, int node);

/* A per-layer override: node name -> value (sparsity, or bits). */
typedef struct sqzc_layer_value {
    const char *name;
    float value;
} sqzc_layer_value;

typedef struct sqzc_prune_options {
    float sparsity;                 /* target fraction of zero weights, 0 <= s < 1 */
    int global;                     /* 1: one magnitude threshold across the layers; 0: per layer */
    const sqzc_layer_value *layers; /* per-layer sparsity (by node name), pruned on their own */
    int n_layers;
} sqzc_prune_options;

/* Zero the smallest-magnitude weights so that each layer (or the pool of
 * layers, global) holds exactly round(sparsity * n) zeros (weights already
 * zero count; ties broken by position). Sets the encoding request
 * sparse = 1 + gap_bits where sparse storage pays (values as stored: the
 * codebook bits of an existing request, else 32). An override naming no layer
 * is an error. 0 ok, -1 with err. */
int sqzc_prune_magnitude(sqzc_graph *g, const sqzc_prune_options *o, char *err, size_t err_len);

/* Prune one array in place to exactly round(sparsity * n) zeros, keeping the
 * largest magnitudes. Returns the number of zeros, -1 on OOM / bad argument. */
int64_t sqzc_prune_array(float *w, int64_t n, float sparsity);

/* Sparse entries (non-zeros plus filler zeros) of w with gap_bits-bit
 * relative indices: a run of z zeros before a non-zero costs floor(z / 2^b)
 * fillers; trailing zeros cost nothing. */
int64_t sqzc_sparse_entries(const float *w, int64_t n, int gap_bits);

/* Best sparse layout for values of value_bits bits: the gap bits (3..8)
 * minimizing entries * (value_bits + gap_bits). Returns 1 when that beats
 * dense storage (n * value_bits), else 0; *gap_bits and *bits (the sparse
 * stream size in bits) are set either way. */
int sqzc_sparse_plan(const float *w, int64_t n, int value_bits, int *gap_bits, int64_t *bits);

/* Set (or clear) the sparse part of tensor t's encoding request from its
 * current data, keeping the other fields. 0 ok, -1 OOM. */
int sqzc_update_sparse_request(sqzc_graph *g, int t);

#ifdef __cplusplus
}
#endif
#endif
