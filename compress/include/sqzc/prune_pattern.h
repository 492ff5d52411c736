/* sqzc/prune_pattern.h - magnitude pruning in block patterns that sparse
 * kernels run fast. A layer weight is viewed as a matrix [out, in] (Conv:
 * [Cout, Cin/group * kh * kw]; Gemm / MatMul: output features x inputs,
 * whatever the storage order):
 *   1x4  blocks of 1 output x 4 consecutive inputs, pruned whole
 *   4x1  blocks of 4 consecutive outputs x 1 input, pruned whole
 *   2:4  in every run of 4 consecutive inputs of an output, the 2 smallest
 *        are zeroed (50% sparsity, N:M structured as in Ampere sparse cores)
 * Blocks are ranked by mean |w|; edge blocks may be partial. */
#ifndef SQZC_PRUNE_PATTERN_H
#define SQZC_PRUNE_PATTERN_H

#include <stddef.h>

#include "sqzc/ir.h"
#include "sqzc/prune.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sqzc_prune_pattern {
    SQZC_PATTERN_NONE = 0, /* unstructured: sqzc_prune_magnitude */
    SQZC_PATTERN_1X4 = 1,
    SQZC_PATTERN_4X1 = 2,
    SQZC_PATTERN_2OF4 = 3,
} sqzc_prune_pattern;

/* "1x4", "4x1", "2:4", "none" -> pattern, -1 unknown. */
int sqzc_prune_pattern_parse(const char *s);

/* Prune every layer (as sqzc_prune_magnitude: per layer or one global
 * ranking, per-layer overrides by node name) in blocks of the pattern until
 * round(sparsity * n) weights per layer (or pool) are covered by pruned
 * blocks; 2:4 ignores the sparsity (always 1/2). Sets the sparse storage
 * requests like sqzc_prune_magnitude. 0 ok, -1 with err. */
int sqzc_prune_blocks(sqzc_graph *g, const sqzc_prune_options *o, int pattern, char *err,
                      size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
