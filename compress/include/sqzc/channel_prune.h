/* sqzc/channel_prune.h - structured (channel) pruning with dependency groups.
 *
 * Every activation tensor of rank >= 2 has channels along axis 1 (NCHW, or
 * the features of an [N, F] tensor). Channels that must be removed together
 * are joined into one *group*: the two sides of Add / Sub / Mul (incl.
 * squeeze-excite broadcasts), the input and output of a depthwise Conv and of
 * pass-through ops (activations, pooling, Resize, Pad, standalone BatchNorm,
 * Softmax / ReduceMean over other axes), Concat and Split slices, and the H*W
 * features each channel owns after Flatten (or an equivalent Reshape) feeding
 * a Gemm. A group is removed by dropping the filters of its producers (Conv /
 * Gemm / MatMul output channels, depthwise filters) and the matching input
 * channels of its consumers.
 *
 * Removal is exact by construction: the pruned model computes what the
 * original computes with the removed producer filters (weights and bias) set
 * to zero. A group is therefore *blocked* (never pruned) when a graph input or
 * output, an op the analysis does not understand (Transpose, a Reshape that
 * mixes channels, a grouped Conv...), or an op for which f(0) != 0 on the way
 * to a consumer (Sigmoid, Add of a constant, BatchNorm shift...) is involved;
 * every layer left whole is reported by name with the reason.
 */
#ifndef SQZC_CHANNEL_PRUNE_H
#define SQZC_CHANNEL_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include "sqzc/ir.h"
#include "sqzc/prune.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sqzc_channel_criterion {
    SQZC_CRIT_L1 = 0, /* mean |w| of a producer filter */
    SQZC_CRIT_L2 = 1, /* RMS of a producer filter */
    SQZC_CRIT_BN = 2, /* |gamma| of the BatchNormalization folded into the producer */
} sqzc_channel_criterion;

/* BatchNorm scales captured before BN folding (folding loses gamma): per
 * Conv / Gemm node followed by a BatchNormalization, |gamma| per channel. */
typedef struct sqzc_bn_gammas sqzc_bn_gammas;
/* Capture from an imported, not yet optimized graph. 0 ok, -1 OOM. */
int sqzc_bn_gammas_capture(const sqzc_graph *g, sqzc_bn_gammas **out);
void sqzc_bn_gammas_free(sqzc_bn_gammas *b);
int sqzc_bn_gammas_count(const sqzc_bn_gammas *b);

/* The dependency analysis of a graph (read-only view; the graph must stay
 * unchanged while the analysis is used). */
typedef struct sqzc_channel_analysis sqzc_channel_analysis;

/* Analyze g (topologically sorted, shapes inferred). bn may be NULL unless the
 * criterion is SQZC_CRIT_BN. 0 ok, -1 with err. */
int sqzc_channel_analyze(const sqzc_graph *g, int criterion, const sqzc_bn_gammas *bn,
                         sqzc_channel_analysis **out, char *err, size_t err_len);
void sqzc_channel_analysis_free(sqzc_channel_analysis *a);

/* Prunable units. A *family* is a set of groups that share tensors (e.g. the
 * channels of one conv output, or of every tensor of a residual stage); it is
 * named after its first producer layer (node order). */
int sqzc_channel_n_groups(const sqzc_channel_analysis *a); /* unblocked groups */
int sqzc_channel_n_families(const sqzc_channel_analysis *a);
const char *sqzc_channel_family_name(const sqzc_channel_analysis *a, int f);
int sqzc_channel_family_groups(const sqzc_channel_analysis *a, int f);
/* Family of a layer (node) name: the family its output channels belong to;
 * -1 when the layer has no prunable channels. */
int sqzc_channel_family_of(const sqzc_channel_analysis *a, const char *layer);
/* Group ids of family f in ascending criterion order (ties by channel). */
const int *sqzc_channel_family_order(const sqzc_channel_analysis *a, int f);

/* Layers (producer nodes) whose output channels cannot be pruned, with the
 * reason. Index 0..n-1. */
int sqzc_channel_n_blocked(const sqzc_channel_analysis *a);
void sqzc_channel_blocked(const sqzc_channel_analysis *a, int i, const char **layer,
                          const char **reason);

typedef struct sqzc_channel_options {
    float ratio; /* fraction of channel groups to remove, 0 <= ratio < 1 */
    int global;  /* 1: one ranking across all families; 0: ratio per family */
    /* per-family ratios by layer name (any producer of the family); applied
     * per family, on top of the default ratio for the others */
    const sqzc_layer_value *layers;
    int n_layers;
    int64_t target_params; /* > 0: choose the ratio reaching this many params */
    int64_t target_macs;   /* > 0: choose the ratio reaching this many MACs */
} sqzc_channel_options;

/* Choose the groups to remove: remove[n_groups] is set to 0/1. Every family
 * keeps at least one group. With a target, the smallest ratio (in the
 * selected scope) that reaches it is used, *ratio_used receives it (may be
 * NULL). 0 ok, -1 with err (unknown layer name, unreachable target). */
int sqzc_channel_select(const sqzc_channel_analysis *a, const sqzc_channel_options *o,
                        uint8_t *remove, float *ratio_used, char *err, size_t err_len);

/* Parameters (float constants) and MACs (Conv / Gemm / MatMul) of the graph
 * after removing the selected groups (remove may be NULL: the graph as is). */
void sqzc_channel_cost(const sqzc_channel_analysis *a, const uint8_t *remove, int64_t *params,
                       int64_t *macs);

/* Remove the selected groups from g (the graph a was built from): slice
 * weights, biases, BatchNorm / broadcast constants, fix group / split /
 * reshape attributes, re-infer shapes, drop unused tensors. The analysis is
 * invalid afterwards. 0 ok, -1 with err. */
int sqzc_channel_apply(sqzc_graph *g, const sqzc_channel_analysis *a, const uint8_t *remove,
                       char *err, size_t err_len);

/* The reference semantics of removal: zero the producer filters (weights and
 * bias) of the selected groups in g, keeping every shape. Used by tests and
 * to check a pruning in place. 0 ok, -1 with err. */
int sqzc_channel_zero(sqzc_graph *g, const sqzc_channel_analysis *a, const uint8_t *remove,
                      char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
