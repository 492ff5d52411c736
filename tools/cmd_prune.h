/* cmd_prune.h - the `sqz prune` subcommand, and the pieces it shares with
 * `sqz sensitivity` (model loading from .onnx or .sqz, accuracy of a graph,
 * the per-layer sensitivity sweep). */
#ifndef SQZ_CMD_PRUNE_H
#define SQZ_CMD_PRUNE_H

#include <stdint.h>
#include <stdio.h>

#include "cli_util.h"
#include "evaluate.h"
#include "sqzc/channel_prune.h"
#include "sqzc/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

int cmd_prune(int argc, char **argv);
void cmd_prune_usage(FILE *f);

/* Load path (.onnx: import with default batch 1 + optimize, capturing the
 * BatchNorm gammas into *bn when bn != NULL; .sqz: the stored graph, no
 * gammas). Returns 0 or a CLI exit code (error printed). */
int prune_load(const char *cmd, const char *path, const cli_shapes *shapes, sqzc_bn_gammas **bn,
               sqzc_graph **g);

/* CLI error (returns its exit code) when criterion is bn and no gamma was
 * captured: a .sqz stores BatchNorm folded into the conv weights. 0 otherwise. */
int prune_check_bn(const char *cmd, const char *path, int criterion, const sqzc_bn_gammas *bn);

/* Top-1 accuracy in percent of g on images [first, first + count) of s. */
int prune_accuracy(const char *cmd, sqzc_graph *g, const eval_set *s, int first, int count,
                   int batch, int threads, double *acc);

enum { SENS_SPARSITY = 0, SENS_CHANNELS = 1 };

/* A sensitivity sweep: accuracy (percent) with one layer pruned at a time. */
typedef struct prune_sens {
    int method; /* SENS_* */
    int n_layers, n_ratios;
    char **names;  /* layer (sparsity) or channel family (channels) */
    int64_t *size; /* weights of the layer / channel groups of the family */
    float *ratios; /* [n_ratios] */
    double base;   /* unpruned accuracy */
    double *acc;   /* [n_layers * n_ratios] */
} prune_sens;

int prune_sensitivity(const char *cmd, sqzc_graph *g, int method, int criterion,
                      const sqzc_bn_gammas *bn, const float *ratios, int n_ratios,
                      const eval_set *s, int first, int count, int batch, int threads, int verbose,
                      prune_sens *out);
void prune_sens_free(prune_sens *s);
void prune_sens_print(FILE *f, const prune_sens *s, int json);

#ifdef __cplusplus
}
#endif
#endif
