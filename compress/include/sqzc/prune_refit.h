/* sqzc/prune_refit.h - post-training reconstruction after pruning.
 *
 * Pruning without fine-tuning loses accuracy mostly because each layer's
 * output drifts from the original. Layer by layer in execution order, the
 * surviving weights (and bias) of every Conv (group 1, 2-D), Gemm and MatMul
 * are refit by ridge-regularized least squares so that, on calibration
 * inputs, the layer's pre-activation output matches the original model's
 * output given the inputs the pruned model now feeds it (as in the layer-wise
 * reconstruction of He et al., ICCV 2017, and OBC / SparseGPT, applied to
 * the kept mask). Zero weights stay zero: the sparsity mask and removed
 * filters are kept, so structure and channel-zeroing semantics are unchanged.
 * No gradient training, no labels: calibration images only.
 */
#ifndef SQZC_PRUNE_REFIT_H
#define SQZC_PRUNE_REFIT_H

#include <stddef.h>
#include <stdint.h>

#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqzc_refit_options {
    const float *inputs; /* n samples of graph input 0, each of its shape with batch 1 */
    int n;
    float ridge;     /* lambda relative to the mean diagonal of the Gram matrix (0: 1e-3) */
    int max_samples; /* rows of a layer's regression (conv: images x positions); 0: 65536 */
    /* Unstructured pruning only (it does not keep a channel structure): the
     * layer keeps its number of zeros but re-chooses them. 1: OBS-style
     * pruning with error compensation (SparseGPT) on the least-squares
     * weights; 2: the smallest |w_orig| * std(input), then refit; 3: the
     * same criterion in 6 steps, each on the weights refit at the step before
     * (gradual; the most accurate on the reference models). */
    int remask;
} sqzc_refit_options;

/* g and orig are the same graph (tensor and node names, shapes), g pruned.
 * orig's outputs are modified temporarily and restored. 0 ok, -1 with err. */
int sqzc_prune_refit(sqzc_graph *g, sqzc_graph *orig, const sqzc_refit_options *o, char *err,
                     size_t err_len);

/* One layer W(o, k) (NO outputs, K inputs; W[k * NO + o] when col_major,
 * else W[o * K + k]) pruned to `zeros` zeros from the original W0 / b0 by the
 * gradual least-squares re-masking of remask 3, given the Gram matrix G of
 * its inputs with a constant-1 column appended ((K + 1)^2, row-major, the
 * last row / column the sums and the sample count): the targets are the
 * original outputs on the same inputs. bias (NO, may be NULL: not written)
 * gets the refit bias. 0 ok, -1 out of memory. */
int sqzc_prune_gram(float *W, const float *W0, float *bias, const float *b0, const double *G,
                    int64_t K, int64_t NO, int col_major, int64_t zeros, float ridge);

#ifdef __cplusplus
}
#endif
#endif
