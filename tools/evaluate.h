/* evaluate.h - classification accuracy of a .sqz model through the runtime on
 * an IDX image set (MNIST / Fashion-MNIST); shared by `sqz eval` and
 * `sqz compress`. Errors are printed as "sqz <cmd>: ..." and reported as the
 * CLI exit code. */
#ifndef SQZ_EVALUATE_H
#define SQZ_EVALUATE_H

#include <stdint.h>

#include "idx.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sqz_model;

typedef struct eval_set {
    idx_images imgs;
    idx_labels labs;
    float mean, std; /* preprocessing (x/255 - mean)/std */
} eval_set;

/* Default normalization of a dataset name ("fashion-mnist", "mnist");
 * 0 ok, -1 unknown name. */
int eval_dataset_norm(const char *dataset, float *mean, float *std);

/* Read <dir>/<split>-images-idx3-ubyte.gz and <split>-labels-idx1-ubyte.gz
 * (split "t10k" or "train"; dir NULL: /usr/share/datasets/<dataset>); mean
 * and std are set from the dataset. Returns 0 or a CLI exit code. */
int eval_set_load(const char *cmd, const char *dataset, const char *dir, const char *split,
                  eval_set *s);
void eval_set_free(eval_set *s);

typedef struct eval_result {
    int correct, total, batch;
    int classes; /* values per image in the first output */
    double secs;
} eval_result;

/* Classify images [first, first + count) of s with model m (argmax of the
 * first output), batch images per run (the batch dim is overridden when it
 * differs; <= 0: 1), threads (<= 0: default). pred (may be NULL) receives
 * count labels. Returns 0 or a CLI exit code. */
int eval_run(const char *cmd, const struct sqz_model *m, const eval_set *s, int first, int count,
             int batch, int threads, uint8_t *pred, eval_result *res);

/* eval_run that also copies the first output, count x classes floats, to
 * logits (when not NULL); the model must give exactly classes values per
 * image. */
int eval_run_logits(const char *cmd, const struct sqz_model *m, const eval_set *s, int first,
                    int count, int batch, int threads, uint8_t *pred, float *logits, int classes,
                    eval_result *res);

struct sqz_session;
/* Called after each run with the session (outputs readable), the input batch
 * (batch images, the first nb real); non-zero stops the run (the callback
 * prints its error). */
typedef int (*eval_batch_fn)(void *ctx, const struct sqz_session *s, const float *in, int nb,
                             int batch);
int eval_run_each(const char *cmd, const struct sqz_model *m, const eval_set *s, int first,
                  int count, int batch, int threads, uint8_t *pred, float *logits, int classes,
                  eval_batch_fn fn, void *ctx, eval_result *res);

#ifdef __cplusplus
}
#endif
#endif
