/* qinternal.h - state shared by the INT8 quantizer's modules (private). */
#ifndef SQZC_QINTERNAL_H
#define SQZC_QINTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sqz/sqz.h"
#include "sqzc/quant.h"
#include "sqzc/quant_range.h"

/* per-channel accumulator of a tensor (axis 1): sums for means, maxima */
typedef struct qchan {
    int c;
    int minmax; /* also per-channel min / max in pass 1 (equalized tensors) */
    double *sum;
    float *max, *min;
    uint64_t per_channel; /* values summed per channel */
} qchan;

typedef struct qctx {
    sqzc_graph *g;
    const sqzc_quant_options *o;
    const sqzc_calib_set *set;
    int input;      /* graph input tensor */
    sqz_shape in1;  /* its shape with batch 1 */
    int64_t per;    /* floats per sample */
    int n_images;   /* images used */
    int n_obs;      /* observed tensors (graph input + every node output) */
    int32_t *obs;   /* tensor ids, the order of the runner's outputs */
    int *obs_of;    /* tensor -> obs index, -1 (n_tensors) */
    sqzc_qstat *st; /* [n_obs] */
    qchan *ch;      /* [n_obs]; c == 0 when not tracked */
    char *err;
    size_t err_len;
} qctx;

/* A runtime session over the fp32 graph whose outputs are the observed
 * tensors, with the input's batch set to `batch`. */
typedef struct qrunner {
    sqz_model *m;
    sqz_session *s;
    int batch;
    float *in; /* batch * per floats */
} qrunner;

typedef int (*qbatch_fn)(qctx *q, const qrunner *r, int first, int count, void *user);

/* Observed-tensor list from the graph (graph input + all node outputs). */
int qctx_init_obs(qctx *q);
/* Run the graph over images [0, n) in batches; fn after each run. label for
 * the progress bar. 0 ok, -1 with q->err. */
int q_for_batches(qctx *q, int n, const char *label, qbatch_fn fn, void *user);
/* Output data of observed tensor i in the last run. */
const float *q_obs_data(const qrunner *r, int i, sqz_shape *shape);

/* Calibration pass 1: per-tensor min / max, per-channel sums of the
 * tensors with ch[i].c > 0 (and min / max where ch[i].minmax). */
int q_pass_range(qctx *q);
/* Calibration pass 2: histograms. */
int q_pass_hist(qctx *q);
/* Pass of channel maxima only. */
int q_channel_max(qctx *q);

/* Cross-layer equalization; returns pairs equalized, -1 on error.
 * have_stats: pass 1 ran with the pairs' outputs marked (q_equalize_mark);
 * their statistics are rescaled with the weights. Otherwise the channel
 * maxima ReLU6 pairs need are measured by an extra pass. */
int q_equalize(qctx *q, int have_stats);
/* Mark the outputs of equalizable pairs for per-channel min / max in pass 1. */
int q_equalize_mark(qctx *q);

double q_now(void);

#endif
