/* sqzc/recipe.h - a compression recipe (ordered stages: magnitude pruning ->
 * weight sharing -> encoding) parsed from a small text file or from
 * command-line flags, its application to an IR, and the per-layer size
 * accounting of the result (Deep Compression style: fp32 -> pruned -> shared
 * -> Huffman).
 *
 * Recipe file: one `key = value` per line; `#` starts a comment; blank lines
 * are ignored. Keys:
 *   prune.sparsity = 0.9          fraction of zero weights, 0 <= s < 1
 *   prune.scope = layer | global  one target per layer, or one global threshold
 *   prune.layer.<node> = 0.5      sparsity of one layer (node name)
 *   share.bits = 5                codebook bits of every layer, 2..8
 *   share.bits.conv = 8           Conv / ConvTranspose layers
 *   share.bits.fc = 5             Gemm / MatMul layers
 *   share.layer.<node> = 6        bits of one layer
 *   share.fp16 = 0 | 1            fp16 centroids
 *   share.grid = 0 | 1            centroids on a power-of-two grid (grid-coded table, format v3)
 *   bias.bits = 8                 biases of Conv / Gemm / MatMul+Add on a uniform grid of
 *                                 2..8 bits (linear codebook, format v3); 0: fp16
 *                                 (default 8; applied when the graph is finalized for writing)
 *   huffman = 0 | 1               Huffman-code index and gap streams
 *   target.drop = 0.5             accuracy drop allowed (points), 0..100
 * Errors name the file:line (or the flag) and the key. */
#ifndef SQZC_RECIPE_H
#define SQZC_RECIPE_H

#include <stddef.h>
#include <stdint.h>

#include "sqzc/ir.h"
#include "sqzc/prune.h"
#include "sqzc/weight_share.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SQZC_DEFAULT_BIAS_BITS 8

typedef struct sqzc_recipe {
    int prune; /* stage on: any prune.* key */
    float sparsity;
    int prune_global;
    sqzc_layer_value *prune_layers; /* names owned */
    int n_prune_layers;
    int share; /* stage on: any share.bits* / share.layer.* key */
    int bits, bits_conv, bits_fc;
    sqzc_layer_value *share_layers; /* names owned */
    int n_share_layers;
    int fp16;      /* 1: fp16 centroids; SQZC_CENTROIDS_GRID (share.grid = 1) */
    int bias_bits; /* 0: fp16; 2..8: uniform grid (linear codebook) */
    int huffman;
    int has_target_drop;
    float target_drop;
} sqzc_recipe;

void sqzc_recipe_init(sqzc_recipe *r);
void sqzc_recipe_free(sqzc_recipe *r);

/* Set one key. where names the origin for messages ("recipe.txt:3" or
 * "--bits"). 0 ok, -1 with err ("<where>: ... '<key>' ..."). */
int sqzc_recipe_set(sqzc_recipe *r, const char *key, const char *value, const char *where,
                    char *err, size_t err_len);
/* Parse text (name is used in messages: "<name>:<line>"). */
int sqzc_recipe_parse_text(sqzc_recipe *r, const char *text, const char *name, char *err,
                           size_t err_len);
int sqzc_recipe_parse_file(sqzc_recipe *r, const char *path, char *err, size_t err_len);
/* Check the stages against a graph before any work: the layer overrides
 * must name layers of g, the share stage needs bits. 0 ok, -1 with err. */
int sqzc_recipe_check(const sqzc_recipe *r, const sqzc_graph *g, char *err, size_t err_len);
/* The recipe as text in the file syntax (malloc'd; NULL on OOM). */
char *sqzc_recipe_to_text(const sqzc_recipe *r);
/* Run the stages on g (prune, then share; the storage requests are left for
 * the writer) and record the recipe in the metadata "compress.recipe". */
int sqzc_recipe_apply(sqzc_graph *g, const sqzc_recipe *r, char *err, size_t err_len);

/* Size accounting of one layer weight, in bytes, from its data and request
 * (estimates of the encoder's output: entries x bits, Huffman from the exact
 * code lengths plus one byte per coded symbol for the table). */
typedef struct sqzc_layer_stats {
    const char *node, *tensor; /* borrowed from the graph */
    int op;
    int64_t params, zeros;
    int bits;     /* codebook bits, 0 = raw fp32 */
    int sparse;   /* sparse storage requested */
    int gap_bits; /* when sparse */
    int n_centroids;
    int64_t entries; /* sparse entries incl. fillers (dense: params) */
    double fp32, pruned, shared, huffman;
} sqzc_layer_stats;

/* Stats of every layer weight (node order, each weight once). *out is
 * malloc'd (free it); returns the count, -1 on OOM. */
int sqzc_layer_stats_collect(const sqzc_graph *g, sqzc_layer_stats **out);

#ifdef __cplusplus
}
#endif
#endif
