/* cmd_compress_search.h - helpers shared by `sqz compress` and `sqz report`:
 * a graph -> runtime model round trip, weight snapshots, and the default
 * compression search (per-layer sparsity and codebook bits chosen from a
 * sensitivity sweep for a target accuracy drop).
 *
 * Search (no recipe given):
 *  1. sensitivity: each layer alone is pruned / shared over a menu of
 *     (sparsity, bits) options, the others left fp32; the damage of an option
 *     is the mean KL divergence of the model's softmax from the fp32 one on
 *     the first calibration images of the selection, its cost the layer's
 *     encoded bytes (Huffman estimate);
 *  2. allocation: for a multiplier lambda each layer takes the option
 *     minimizing bytes + lambda * damage (damages taken as additive); lambda
 *     is bisected (log scale) for the smallest model whose top-1 accuracy on
 *     the whole selection drops by at most the target, counting z standard
 *     errors of the measured drop (sqrt(changed predictions) / N) against it:
 *     the drop on unseen images then stays within the target more often;
 *  3. a few greedy one-layer steps to cheaper options under the same test.
 * The selection is a slice of the TRAINING split (the caller picks it), so the
 * test split stays untouched for reporting. Errors print "sqz <cmd>: ...". */
#ifndef SQZ_CMD_COMPRESS_SEARCH_H
#define SQZ_CMD_COMPRESS_SEARCH_H

#include <stddef.h>

#include "evaluate.h"
#include "sqz/sqz.h"
#include "sqzc/ir.h"
#include "sqzc/recipe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Serialize g (raw != 0: ignoring the storage requests) and, when m is not
 * NULL, load it into the runtime. *size gets the serialized size. Returns 0
 * or a CLI exit code (error printed). */
int csr_graph_model(const char *cmd, sqzc_graph *g, int raw, sqz_model **m, size_t *size);

/* Top-1 accuracy (fraction) of g on images [first, first + count) of set. */
int csr_graph_accuracy(const char *cmd, sqzc_graph *g, const eval_set *set, int first, int count,
                       int batch, int threads, double *acc);

/* The storage step every compressed graph takes before it is written or
 * measured: the f32 biases of Conv / ConvTranspose / Gemm (and of MatMul +
 * Add) not already given an encoding are put on a uniform grid of bias_bits
 * (2..8; a linear codebook, sqz/format.h v3), or with bias_bits 0 rounded to
 * the nearest fp16 value (stored as exact halves). sqz compress and sqz
 * report both call it, so they print the size of the same file for one
 * recipe. 0 ok, -1 OOM. */
int csr_finalize(sqzc_graph *g, int bias_bits);

/* Copies of every layer weight (Conv/ConvTranspose/Gemm/MatMul) and of the
 * other f32 constants (biases), to run several recipes on one imported graph. */
typedef struct csr_snapshot {
    int n;
    int *tens;
    float **data;
    int n_other; /* f32 constants that are no layer weight */
    int *other_tens;
    float **other_data;
} csr_snapshot;

int csr_snapshot_take(const sqzc_graph *g, csr_snapshot *s);    /* 0 ok, -1 OOM */
int csr_snapshot_restore(sqzc_graph *g, const csr_snapshot *s); /* all; clears requests */
void csr_snapshot_free(csr_snapshot *s);

typedef struct csr_options {
    int first, count; /* selection: images [first, first + count) of the set */
    int n_calib;      /* images of the selection used for the sensitivity sweep */
    int batch, threads;
    double target_drop; /* points */
    int fp16, huffman;
    int bias_bits; /* biases: csr_finalize's bias_bits, also for the corrected ones */
    int aware;     /* activation-aware pruning + bias correction from input statistics */
    int lsq;       /* with aware: Gemm layers pruned by least squares (sqzc_prune_gram) */
    int refine;    /* greedy refinement steps after the bisection (0: none) */
    double z;      /* pass when drop + z * (standard error of the drop) <= target */
    int verbose;   /* progress lines on stderr */
} csr_options;

typedef struct csr_result {
    double base_acc, acc; /* selection accuracy: fp32, chosen */
    double bytes;         /* estimated weight bytes of the choice */
    int evaluated;        /* sensitivity runs + allocation runs */
    int within_target;    /* 0: nothing kept the drop; the most accurate allocation tried */
    int aware_layers;     /* layers pruned / corrected from input statistics */
} csr_result;

/* Run the search on g (weights as imported); leaves g compressed with the
 * chosen per-layer recipe (written to *chosen, which must be initialised).
 * Returns 0 or a CLI exit code. */
int csr_search(const char *cmd, sqzc_graph *g, const eval_set *set, const csr_options *o,
               sqzc_recipe *chosen, csr_result *res);

#ifdef __cplusplus
}
#endif
#endif
