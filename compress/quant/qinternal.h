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

/* A runtime session over the fp32 graph whose outputs are the observed
 * tensors, with the input's batch set to `batch`; or (cb != NULL) one cached
 * batch replayed. count: images of the batch that are real (a last, partial
 * batch runs padded to `batch` when every observed tensor is batch-major). */
/* sessions at most (images run in parallel: one per thread) */
#define Q_MAX_RUNNERS 16

typedef struct qcache_batch {
    int first, count;
    float *data; /* the observed tensors of `count` images, one after another */
} qcache_batch;

typedef struct qrunner {
    sqz_model *m;
    int own_m; /* m is this runner's (runner 0); the others share it */
    sqz_session *s;
    int batch, count;
    int sliceable; /* every observed output has dims[0] == batch (-1: not checked) */
    float *in;     /* batch * per floats */
    const qcache_batch *cb;
    const struct qctx *q;
} qrunner;

/* Observed activations of the whole set kept in memory when they fit in
 * o->cache_bytes (bounded whatever the set size: a larger set is run again for
 * each pass): the passes after the first replay them instead of running the
 * model again. */
typedef struct qcache {
    int on;         /* 1: being filled or complete */
    int want;       /* images to keep (set before the first pass; 0: all, -1: none) */
    int cap_images; /* images the block holds */
    int images;     /* images [0, images) cached */
    int n_batches, cap;
    qcache_batch *b;
    float *blk;    /* cap_images * per_img floats; batch data point into it */
    int64_t *ne1;  /* [n_obs] values per image */
    int64_t *off1; /* [n_obs] offset per image in a batch's block (times count) */
    int64_t per_img;
} qcache;

/* GPTQ state of a compute node (gptq.h): per group, U of its inputs' H in
 * the order perm (columns by decreasing H[i][i]); computed once from the
 * calibration and kept for every quantization made from it. */
typedef struct qgptq {
    int n;      /* inputs per group (0: the layer rounds to nearest) */
    int groups; /* groups (a Conv's; 1 otherwise) */
    double *u;  /* groups * n * n */
    int *perm;  /* groups * n */
} qgptq;

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
    int *obs_dup;   /* [n_obs]: the obs index whose values this tensor's are (a
                     * view: Reshape, Flatten, ...; its statistics copied from
                     * there after each pass), -1 (in obs_of's block) */
    sqzc_qstat *st; /* [n_obs] */
    qchan *ch;      /* [n_obs]; c == 0 when not tracked */
    char *err;
    size_t err_len;
    /* the sessions (one per thread when the images of a pass run in
     * parallel, else one), kept open across passes until the weights change;
     * run[0] owns the model */
    qrunner run[Q_MAX_RUNNERS];
    int n_run;
    qcache cache;    /* activations of the set when they fit */
    int batch_fixed; /* the model runs one image at a time only */
    qgptq *gptq;     /* [n_gptq] (the graph's nodes then) once computed (rounding gptq) */
    int n_gptq;
} qctx;

typedef int (*qbatch_fn)(qctx *q, const qrunner *r, int first, int count, void *user);

/* Observed-tensor list from the graph (graph input + all node outputs). */
int qctx_init_obs(qctx *q);
/* Run the graph over images [0, n) in batches; fn after each run. label for
 * the progress bar. 0 ok, -1 with q->err. */
int q_for_batches(qctx *q, int n, const char *label, qbatch_fn fn, void *user);
/* Output data of observed tensor i in the last run. */
const float *q_obs_data(const qrunner *r, int i, sqz_shape *shape);
/* The weights changed (equalization): close the session. */
void q_runner_invalidate(qctx *q);
/* Multiply channel c (axis 1) of observed tensor i in the cache by f. */
void q_cache_scale_channel(qctx *q, int i, int c, float f);
/* Free the session and the cache. */
void q_calib_free(qctx *q);

/* Calibration pass 1: per-tensor min / max, per-channel sums of the
 * tensors with ch[i].c > 0 (and min / max where ch[i].minmax). */
int q_pass_range(qctx *q);
/* Calibration pass 2: histograms. */
int q_pass_hist(qctx *q);
/* Pass 1 with the histograms of pass 2 gathered at the same time
 * (sqzc_qstat_begin_one_pass): the data is run once. */
int q_pass_one(qctx *q);
/* Pass of channel maxima only. */
int q_channel_max(qctx *q);

/* Cross-layer equalization; returns pairs equalized, -1 on error.
 * have_stats: pass 1 ran with the pairs' outputs marked (q_equalize_mark);
 * their statistics are rescaled with the weights. Otherwise the channel
 * maxima ReLU6 pairs need are measured by an extra pass. */
int q_equalize(qctx *q, int have_stats);
/* 1: some pair needs channel maxima of the data (a ReLU6 / Clip pair), 0:
 * the scales depend on the weights only (q_equalize(q, 0) may then run
 * before any pass), -1 OOM. */
int q_equalize_needs_data(qctx *q);
/* Mark the outputs of equalizable pairs for per-channel min / max in pass 1. */
int q_equalize_mark(qctx *q);

double q_now(void);
/* threads of the quantizer's own loops: o->num_threads with OpenMP, else 1 */
int q_threads(const qctx *q);
/* SQZ_QUANT_PROFILE=1: "quant profile: <what> <ms>" on stderr for each phase
 * (the time since *t, which is then reset to now); =cpu: in process CPU time
 * (q_now then reads that clock, the report's seconds included). */
void q_prof(const char *what, double *t);

#endif
