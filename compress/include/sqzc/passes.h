/* sqzc/passes.h - graph passes over the sqzc IR, each with one job.
 * Every pass returns 0 on success, -1 with a message in err. */
#ifndef SQZC_PASSES_H
#define SQZC_PASSES_H

#include <stddef.h>

#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Shapes of every tensor, by running each op's reference prepare() in order. */
int sqzc_infer_shapes(sqzc_graph *g, char *err, size_t err_len);
/* Evaluate nodes whose inputs are all constant (float ops) and replace their
 * outputs by constants. */
int sqzc_fold_constants(sqzc_graph *g, char *err, size_t err_len);
/* Fold BatchNormalization that follows a Conv / ConvTranspose / Gemm (whose
 * output has no other consumer) into that op's weights and bias. A standalone
 * BatchNormalization stays as is. */
int sqzc_fold_batchnorm(sqzc_graph *g, char *err, size_t err_len);
/* Fuse Relu / Clip / LeakyRelu / HardSwish / Sigmoid / HardSigmoid / Tanh
 * into a preceding Conv / ConvTranspose / Gemm / MatMul (sqz_act attrs). */
int sqzc_fuse_activations(sqzc_graph *g, char *err, size_t err_len);
/* Remove Identity nodes and nodes whose outputs nothing reads. */
int sqzc_remove_dead(sqzc_graph *g, char *err, size_t err_len);
/* The standard pipeline after import: fold, BN fold, fuse, dead removal,
 * shape inference. */
int sqzc_optimize(sqzc_graph *g, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
