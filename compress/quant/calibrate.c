/* calibrate.c - run the fp32 graph through the sqz runtime over a
 * calibration set, every activation exposed as a graph output, and stream
 * per-tensor statistics (memory: one batch of activations + fixed-size
 * histograms, whatever the number of images). */
/* madvise / MADV_HUGEPAGE */
#define _DEFAULT_SOURCE 1
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "qinternal.h"
#include "qwait.h"
#if defined(_OPENMP)
#include <omp.h>
#endif
#include "sqzc/writer.h"

double q_now(void) {
    /* SQZ_QUANT_PROFILE=cpu: process CPU time (all threads; phases on a
     * shared machine), else the monotonic clock */
    static int cpu = -1;
    if (cpu < 0) {
        const char *e = getenv("SQZ_QUANT_PROFILE");
        cpu = e && strcmp(e, "cpu") == 0;
    }
    struct timespec ts;
    clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void q_prof(const char *what, double *t) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("SQZ_QUANT_PROFILE");
        on = e && e[0] && strcmp(e, "0") != 0;
    }
    double now = q_now();
    if (on) fprintf(stderr, "quant profile: %-28s %8.2f ms\n", what, 1e3 * (now - *t));
    *t = now;
}

int qctx_init_obs(qctx *q) {
    sqzc_graph *g = q->g;
    q->obs = malloc(sizeof *q->obs * (size_t)(g->n_tensors + 1));
    /* obs_of, then obs_dup (n_obs <= n_tensors + 1) */
    q->obs_of = malloc(sizeof *q->obs_of * (size_t)(g->n_tensors + 1) * 2);
    if (!q->obs || !q->obs_of) return -1;
    q->obs_dup = q->obs_of + g->n_tensors + 1;
    for (int t = 0; t < g->n_tensors; t++) q->obs_of[t] = -1;
    q->n_obs = 0;
    q->obs_of[q->input] = q->n_obs;
    q->obs[q->n_obs++] = q->input;
    for (int i = 0; i < g->n_nodes; i++) {
        const sqzc_node *n = &g->nodes[i];
        if (n->op == SQZ_OP_INVALID) continue;
        for (uint32_t k = 0; k < n->n_out; k++) {
            int t = n->out[k];
            if (q->obs_of[t] >= 0 || sqzc_tensor_is_const(g, t)) continue;
            q->obs_of[t] = q->n_obs;
            q->obs[q->n_obs++] = t;
        }
    }
    q->st = calloc((size_t)q->n_obs, sizeof *q->st);
    q->ch = calloc((size_t)q->n_obs, sizeof *q->ch);
    if (!q->st || !q->ch) return -1;
    for (int i = 0; i < q->n_obs; i++) sqzc_qstat_init(&q->st[i]);
    /* views: an observed tensor made by a Reshape / Flatten / Squeeze /
     * Unsqueeze / Identity of another holds its values in the same order,
     * and its statistics are the same (LeNet-300-100: Flatten of the input,
     * 40% of the values); then of the first tensor of a chain of views */
    for (int i = 0; i < q->n_obs; i++) {
        q->obs_dup[i] = -1;
        const int t = q->obs[i], p = sqzc_producer(g, t);
        if (p < 0) continue;
        const sqzc_node *n = &g->nodes[p];
        const int view = n->op == SQZ_OP_RESHAPE || n->op == SQZ_OP_FLATTEN ||
                         n->op == SQZ_OP_SQUEEZE || n->op == SQZ_OP_UNSQUEEZE ||
                         n->op == SQZ_OP_IDENTITY;
        if (!view || n->n_in < 1 || n->n_out != 1 || n->in[0] < 0 || n->in[0] == t) continue;
        const sqzc_tensor *a = &g->tensors[t], *b = &g->tensors[n->in[0]];
        if (q->obs_of[n->in[0]] >= 0 && a->has_shape && b->has_shape &&
            sqz_shape_numel(&a->shape) == sqz_shape_numel(&b->shape))
            q->obs_dup[i] = q->obs_of[n->in[0]];
    }
    for (int i = 0; i < q->n_obs; i++)
        for (int guard = 0;
             guard < q->n_obs && q->obs_dup[i] >= 0 && q->obs_dup[q->obs_dup[i]] >= 0; guard++)
            q->obs_dup[i] = q->obs_dup[q->obs_dup[i]];
    for (int i = 0; i < q->n_obs; i++) /* (a cycle: none) */
        if (q->obs_dup[i] >= 0 && q->obs_dup[q->obs_dup[i]] >= 0) q->obs_dup[i] = -1;
    return 0;
}

/* the views' statistics from their sources (after a pass) */
static int copy_dups(qctx *q) {
    for (int i = 0; i < q->n_obs; i++)
        if (q->obs_dup[i] >= 0 && sqzc_qstat_copy(&q->st[i], &q->st[q->obs_dup[i]]) != 0) {
            snprintf(q->err, q->err_len, "out of memory");
            return -1;
        }
    return 0;
}

static void runner_close(qrunner *r) {
    sqz_session_free(r->s);
    if (r->own_m) sqz_model_free(r->m);
    free(r->in);
    memset(r, 0, sizeof *r);
}

/* every session (the ones sharing run[0]'s model first) */
static void runners_close(qctx *q) {
    for (int k = q->n_run - 1; k >= 0; k--) runner_close(&q->run[k]);
    q->n_run = 0;
}

/* A session over m (the calibration model) for `batch` images, threads
 * intra-op threads; err (len) on failure. */
static int session_open(const qctx *q, sqz_model *m, int batch, int threads, qrunner *r, char *err,
                        size_t err_len) {
    sqz_session_options so;
    sqz_session_options_init(&so);
    sqz_input_shape is;
    is.name = q->g->tensors[q->input].name;
    is.shape = q->in1;
    is.shape.dims[0] = batch;
    so.input_shapes = &is;
    so.n_input_shapes = 1;
    so.num_threads = threads;
    sqz_status st;
    r->m = m;
    if (sqz_session_create(m, &so, &r->s, &st) != SQZ_OK) {
        snprintf(err, err_len, "calibration session (batch %d): %s", batch, st.msg);
        r->s = NULL;
        return -1;
    }
    r->batch = batch;
    r->sliceable = -1;
    r->in = calloc((size_t)q->per * (size_t)batch, sizeof(float));
    if (!r->in) {
        snprintf(err, err_len, "out of memory");
        sqz_session_free(r->s);
        r->s = NULL;
        return -1;
    }
    return 0;
}

/* n sessions for `batch` images: run[0] loads the model (the graph with the
 * observed tensors as its outputs) and, when n > 1, every session runs on one
 * thread and they run images in parallel (one per thread); else run[0] uses
 * the quantizer's threads inside each node. */
static int runners_open(qctx *q, int batch, int n) {
    runners_close(q);
    sqzc_graph *g = q->g;
    /* the model with the observed tensors as the graph outputs */
    int32_t *outs = g->outputs;
    int n_outs = g->n_outputs;
    g->outputs = q->obs;
    g->n_outputs = q->n_obs;
    sqz_model *m = NULL;
    int rc = sqzc_model_build(g, &m, q->err, q->err_len);
    g->outputs = outs;
    g->n_outputs = n_outs;
    if (rc != 0) return -1;
    memset(q->run, 0, sizeof q->run);
    const int threads = n > 1 ? 1 : q->o->num_threads;
    if (session_open(q, m, batch, threads, &q->run[0], q->err, q->err_len) != 0) {
        sqz_model_free(m);
        return -1;
    }
    q->run[0].own_m = 1;
    q->n_run = 1;
    if (n > 1) {
        /* the other sessions share the (immutable) model; created in
         * parallel (weight packing) */
        char errs[Q_MAX_RUNNERS][256];
        int bad = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static, 1) num_threads(n)
#endif
        for (int k = 1; k < n; k++)
            if (session_open(q, m, batch, 1, &q->run[k], errs[k], sizeof errs[k]) != 0) {
#if defined(_OPENMP)
#pragma omp atomic write
#endif
                bad = 1;
            }
        q->n_run = n;
        if (bad) {
            for (int k = 1; k < n; k++)
                if (!q->run[k].s) {
                    snprintf(q->err, q->err_len, "%s", errs[k]);
                    break;
                }
            runners_close(q);
            return -1;
        }
    }
    return 0;
}

/* the kept report images (cache_keep) are refilled by the next pass */
static void cache_drop_kept(qcache *c) {
    if (c->on && c->want < 0) {
        c->images = 0;
        c->n_batches = 0;
    }
}

void q_runner_invalidate(qctx *q) {
    runners_close(q);
    cache_drop_kept(&q->cache); /* new weights: the report reads the model's new values */
}

static void cache_free(qcache *c) {
    free(c->blk);
    free(c->b);
    free(c->ne1);
    free(c->off1);
    memset(c, 0, sizeof *c);
}

void q_calib_free(qctx *q) {
    runners_close(q);
    cache_free(&q->cache);
}

const float *q_obs_data(const qrunner *r, int i, sqz_shape *shape) {
    if (r->cb) { /* replay: the cached per-image shape, batch = count */
        const qcache *c = &r->q->cache;
        *shape = r->q->g->tensors[r->q->obs[i]].shape;
        shape->dims[0] = r->count;
        return r->cb->data + c->off1[i] * r->cb->count;
    }
    const float *d = NULL;
    sqz_status st;
    if (sqz_session_output(r->s, i, &d, shape, &st) != SQZ_OK) return NULL;
    if (r->count < r->batch) shape->dims[0] = r->count; /* padded batch: batch-major */
    return d;
}

void q_cache_scale_channel(qctx *q, int i, int ch, float f) {
    const qcache *c = &q->cache;
    cache_drop_kept(&q->cache); /* (not rescaled: the re-run model's values differ in rounding) */
    if (!c->on || c->images == 0) return;
    const sqz_shape *sh = &q->g->tensors[q->obs[i]].shape;
    if (sh->ndim < 2 || ch >= sh->dims[1]) return;
    int64_t C = sh->dims[1], inner = c->ne1[i] / C;
    for (int b = 0; b < c->n_batches; b++) {
        float *d = c->b[b].data + c->off1[i] * c->b[b].count;
        for (int img = 0; img < c->b[b].count; img++) {
            float *p = d + (size_t)img * (size_t)c->ne1[i] + (size_t)ch * (size_t)inner;
            for (int64_t k = 0; k < inner; k++) p[k] *= f;
        }
    }
}

static void progress(const qctx *q, const char *label, int done, int total) {
    if (!q->o->progress) return;
    const int width = 30;
    int fill = total ? (int)((long long)done * width / total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%-22s [%s] %d/%d", label, bar, done, total);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

#define Q_RUN_BYTES (4.0 * 1024 * 1024)

/* Set up the cache when the set's activations fit: per-image sizes of the
 * observed tensors, which must all be batch-major with static shapes. With
 * no cache wanted (want < 0), the report's images are kept when they fit in
 * Q_KEEP_BYTES (cache_keep): the report then reads them instead of running
 * them again on one thread (small ResNet: 3.5 ms CPU for its 16 images, vs
 * ~0.5 ms for the copies; the values are the same floats the pass saw). */
#define Q_KEEP_BYTES (16.0 * 1024 * 1024)
static void cache_setup(qctx *q, int batch) {
    qcache *c = &q->cache;
    if (c->on || c->ne1) return;
    const int nrep = q->o->report_images < q->n_images ? q->o->report_images : q->n_images;
    if (c->want < 0 && nrep < 1) return;
    c->ne1 = malloc(sizeof *c->ne1 * (size_t)q->n_obs);
    c->off1 = malloc(sizeof *c->off1 * (size_t)q->n_obs);
    if (!c->ne1 || !c->off1) return;
    int64_t bdim = q->g->tensors[q->input].shape.dims[0], off = 0;
    for (int i = 0; i < q->n_obs; i++) {
        const sqzc_tensor *t = &q->g->tensors[q->obs[i]];
        if (!t->has_shape || t->shape.ndim < 1 || t->shape.dims[0] != bdim || bdim < 1) return;
        c->ne1[i] = sqz_shape_numel(&t->shape) / bdim;
        c->off1[i] = off;
        off += c->ne1[i];
    }
    c->per_img = off;
    if (getenv("SQZ_QUANT_PROFILE"))
        fprintf(stderr, "quant profile: activations %.1f KB per image, %d images\n",
                4.0 * (double)off / 1024, q->n_images);
    if (c->want < 0) { /* the report's images: plain heap */
        if ((double)off * 4.0 * (double)nrep > Q_KEEP_BYTES) return;
        c->blk = malloc(sizeof(float) * (size_t)off * (size_t)nrep);
        if (!c->blk) return;
        c->cap_images = nrep;
        c->on = 1;
        return;
    }
    int want = c->want > 0 && c->want < q->n_images ? c->want : q->n_images;
    /* whole batches (a batch is stored only when it fits entirely) */
    if (batch > 1) want = (int)(((int64_t)want + batch - 1) / batch * batch);
    if (want > q->n_images) want = q->n_images;
    /* activations kept when they fit (else each pass runs the model again;
     * memory stays bounded whatever the set size) */
    if (want < 1 || (double)off * 4.0 * (double)want > (double)q->o->cache_bytes) return;
    /* one block, on huge pages where the kernel offers them (tens of MB of
     * fresh memory: 4 KB page faults cost as much as the copy) */
    size_t bytes = sizeof(float) * (size_t)off * (size_t)want, align = (size_t)2 << 20;
    bytes = (bytes + align - 1) / align * align;
    void *p = NULL;
    if (posix_memalign(&p, align, bytes) != 0) return;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    c->blk = p;
    c->cap_images = want;
    c->on = 1;
}

/* the report's images only (cache_setup with want < 0): filled by the first
 * pass's first batches, dropped when the model changes */
static int cache_keep(const qcache *c) {
    return c->on && c->want < 0;
}

/* How many of images [i0, i0 + cnt) of a run the cache takes: whole batches
 * in order from image 0 while the block has room, or the first of them up
 * to the report's images (cache_keep) */
static int cache_takes(const qcache *c, int i0, int cnt) {
    if (!c->on || i0 != c->images) return 0;
    if (cache_keep(c)) return c->cap_images - i0 < cnt ? c->cap_images - i0 : cnt;
    return i0 + cnt <= c->cap_images ? cnt : 0;
}

/* Copy tensor i's first `keep` of the run's `count` images into the cache's
 * block d (batch-major: a tensor's first keep images lead it). 0 ok, -1. */
static int cache_copy(const qctx *q, const qrunner *r, int i, float *d, int count, int keep) {
    const qcache *c = &q->cache;
    sqz_shape sh;
    const float *x = q_obs_data(r, i, &sh);
    if (!x || sqz_shape_numel(&sh) != c->ne1[i] * count) return -1;
    memcpy(d + c->off1[i] * keep, x, sizeof(float) * (size_t)(c->ne1[i] * keep));
    return 0;
}

/* Record `keep` images from `first`, copied to the block at d (batches in
 * image order). 0 ok, -1 (out of memory). */
static int cache_record(qcache *c, int first, int keep, float *d) {
    if (c->n_batches == c->cap) {
        int nc = c->cap ? 2 * c->cap : 16;
        qcache_batch *nb = realloc(c->b, sizeof *nb * (size_t)nc);
        if (!nb) return -1;
        c->b = nb;
        c->cap = nc;
    }
    c->b[c->n_batches].first = first;
    c->b[c->n_batches].count = keep;
    c->b[c->n_batches].data = d;
    c->n_batches++;
    c->images = first + keep;
    return 0;
}

/* Copy the first `keep` of the run's `count` images' observed outputs into
 * the cache. */
static int cache_store(qctx *q, const qrunner *r, int first, int count, int keep) {
    qcache *c = &q->cache;
    float *d = c->blk + (size_t)first * (size_t)c->per_img;
    for (int i = 0; i < q->n_obs; i++)
        if (cache_copy(q, r, i, d, count, keep) != 0) return -1;
    return cache_record(c, first, keep, d);
}

/* Is every observed output of the session batch-major (dims[0] == batch)? */
static int runner_sliceable(const qctx *q, const qrunner *r) {
    for (int i = 0; i < q->n_obs; i++) {
        sqz_shape sh;
        const float *d = NULL;
        sqz_status st;
        if (sqz_session_output(r->s, i, &d, &sh, &st) != SQZ_OK) return 0;
        if (sh.ndim < 1 || sh.dims[0] != r->batch) return 0;
    }
    return 1;
}

/* runners_open for batch b, else for batch 1 (a model whose batch is fixed)
 * with the first error; 0 ok, -1 with q->err */
static int open_runners(qctx *q, int b, int want_run) {
    char first_err[512] = "";
    if (runners_open(q, b, want_run) == 0) return 0;
    snprintf(first_err, sizeof first_err, "%s", q->err);
    if (b == 1 || runners_open(q, 1, want_run) != 0) {
        if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", q->err);
        snprintf(q->err, q->err_len, "%s", first_err);
        return -1;
    }
    q->batch_fixed = 1;
    return 0;
}

/* Statistics of observed tensor i of the runner's batch (the per-tensor
 * form of a qbatch_fn); 0 ok, -1 (no output for the tensor). */
typedef int (*qtensor_fn)(qctx *q, const qrunner *r, int i, void *user);

/* A round's batches in order, per tensor: turn[i] is the number of the
 * round's batches whose statistics of tensor i are done; batch j of the
 * round adds its own when turn[i] == j. */
typedef struct qturns {
    atomic_int *turn;    /* [n_obs] */
    atomic_int book;     /* batches whose cache copy and progress are done */
    atomic_int fail;     /* the first batch that failed (INT_MAX: none): the later
                          * ones stop; earlier ones go on (a bad image in one of
                          * them is the one reported) */
    atomic_int sleepers; /* threads asleep in wait_turn (qwait.h) */
    int n;               /* counters in turn */
} qturns;

/* Wait until *ctr == want (0), or a batch before batch `want` failed (-1).
 * The batch before is usually a tensor's statistics ahead (microseconds):
 * spin, then sleep until the counter moves (qwait.h: on a loaded machine the
 * other thread may be descheduled for milliseconds). */
static int wait_turn(atomic_int *ctr, int want, qturns *t) {
    for (unsigned spins = 0;; spins++) {
        const int v = atomic_load_explicit(ctr, memory_order_acquire);
        if (v == want) return 0;
        if (atomic_load_explicit(&t->fail, memory_order_relaxed) < want) return -1;
        if (spins < Q_SPINS) {
            q_pause();
            continue;
        }
        q_sleep(ctr, v, &t->sleepers);
    }
}

/* *ctr = v, waking its sleepers */
static void turn_set(atomic_int *ctr, int v, qturns *t) {
    atomic_store(ctr, v);
    q_wake(ctr, &t->sleepers);
}

/* Batch j failed: t->fail = min(t->fail, j) */
static void turns_fail(qturns *t, int j) {
    int cur = atomic_load(&t->fail);
    while (j < cur && !atomic_compare_exchange_weak(&t->fail, &cur, j)) {
    }
    /* (the sleepers see the failure) */
    for (int i = 0; i < t->n; i++) q_wake(&t->turn[i], &t->sleepers);
    q_wake(&t->book, &t->sleepers);
}

/* Batch j of a round (images i0.., cnt of them) just run by r on this
 * thread: its statistics tensor by tensor, each after batch j - 1's of the
 * same tensor (every tensor's statistics still see the batches in image
 * order: the same operations as one thread), then its cache copy and
 * progress in batch order. The thread that ran the batch reads it (its own
 * cache): when another core read it, the runs after stored into lines that
 * core held (small ResNet, 2 threads: run CPU 96 -> 127 ms). */
static int batch_ordered(qctx *q, qrunner *r, qturns *t, int j, int i0, int cnt, int n,
                         const char *label, qtensor_fn tfn, void *user, char *err, size_t err_len) {
    qcache *c = &q->cache;
    /* the report's kept images (cache_keep: set up before the pass, images
     * [0, cap) in batch order) are copied tensor by tensor after each one's
     * statistics, while it is in cache, and outside the batches' order: the
     * batches' regions of the block are disjoint (small ResNet: 7 MB of
     * fresh memory; in the ordered part below, the other thread waited) */
    const int pre = cache_keep(c) && i0 < c->cap_images
                        ? (c->cap_images - i0 < cnt ? c->cap_images - i0 : cnt)
                        : 0;
    float *pd = pre > 0 ? c->blk + (size_t)i0 * (size_t)c->per_img : NULL;
    int cerr = 0;
    for (int i = 0; i < q->n_obs; i++) {
        if (wait_turn(&t->turn[i], j, t) != 0) return -1;
        const int rc = tfn(q, r, i, user);
        turn_set(&t->turn[i], j + 1, t);
        if (rc != 0) {
            snprintf(err, err_len, "no output for tensor '%s'", q->g->tensors[q->obs[i]].name);
            return -1;
        }
        if (pre > 0 && !cerr) cerr = cache_copy(q, r, i, pd, cnt, pre);
    }
    if (wait_turn(&t->book, j, t) != 0) return -1;
    int rc = 0;
    const int keep = pre > 0 ? 0 : cache_takes(c, i0, cnt);
    if (cerr || (pre > 0 && c->images == i0 && cache_record(c, i0, pre, pd) != 0) ||
        (keep > 0 && cache_store(q, r, i0, cnt, keep) != 0)) {
        snprintf(err, err_len, "out of memory");
        rc = -1;
    }
    if (rc == 0) progress(q, label, i0 + cnt, n);
    turn_set(&t->book, j + 1, t);
    return rc;
}

static int for_batches(qctx *q, int n, const char *label, qbatch_fn fn, qtensor_fn tfn, void *user);

int q_for_batches(qctx *q, int n, const char *label, qbatch_fn fn, void *user) {
    return for_batches(q, n, label, fn, NULL, user);
}

/* q_for_batches; with tfn (fn's per-tensor form), a round's batches are
 * run and their statistics gathered on the threads that ran them
 * (batch_ordered) */
static int for_batches(qctx *q, int n, const char *label, qbatch_fn fn, qtensor_fn tfn,
                       void *user) {
    qcache *c = &q->cache;
    if (c->on && c->images >= n) { /* replay */
        qrunner r;
        memset(&r, 0, sizeof r);
        r.q = q;
        progress(q, label, 0, n);
        for (int k = 0; k < c->n_batches && c->b[k].first < n; k++) {
            r.cb = &c->b[k];
            r.count = n - r.cb->first < r.cb->count ? n - r.cb->first : r.cb->count;
            r.batch = r.count;
            if (fn(q, &r, r.cb->first, r.count, user) != 0) return -1;
            progress(q, label, r.cb->first + r.count, n);
        }
        return 0;
    }
    int b = q->o->batch > 0 ? q->o->batch : 32;
    /* every observed tensor is a graph output (no arena reuse): a run holds
     * batch x one image's activations. Cap that at a few MB: the statistics
     * then read tensors still in cache (mobilenet minmax 0.24 -> 0.15 s CPU),
     * and a large model does not fault in a fresh multi-GB arena (ResNet-18
     * at batch 8: 750 MB) */
    double per_img = 0;
    for (int i = 0; i < q->n_obs; i++) {
        const sqzc_tensor *t = &q->g->tensors[q->obs[i]];
        if (t->has_shape) per_img += 4.0 * (double)sqz_shape_numel(&t->shape);
    }
    per_img /=
        (double)(q->g->tensors[q->input].shape.dims[0] > 0 ? q->g->tensors[q->input].shape.dims[0]
                                                           : 1);
    if (per_img * b > Q_RUN_BYTES) b = per_img >= Q_RUN_BYTES ? 1 : (int)(Q_RUN_BYTES / per_img);
    if (b > q->n_images) b = q->n_images;
    /* one set of sessions for every pass (reopened only when the weights
     * change or the batch cannot be sliced); a model whose batch cannot
     * change runs one image at a time */
    if (q->batch_fixed) b = 1;
    cache_setup(q, b);
    /* images run in parallel, one session per thread, a batch each (for
     * these small batches that beats splitting each node over the threads:
     * no hand-offs inside a node, the statistics still per tensor), when
     * there are batches for more than one thread */
    const int n_batches = (n + b - 1) / b;
    int want_run = q_threads(q) < n_batches ? q_threads(q) : n_batches;
    if (want_run > Q_MAX_RUNNERS) want_run = Q_MAX_RUNNERS;
    if (want_run < 1) want_run = 1;
    /* the open sessions serve when their batch is b and there are enough */
    if (q->n_run > 0 && (q->run[0].batch != b || q->n_run < want_run)) runners_close(q);
    double tso = q_now();
    /* a set with file checks pending: the other threads go on with them
     * (reading and decoding its images) while this one opens the sessions,
     * then the batches run as their images are checked (each loader checks
     * the next ones or waits for them: the decoding overlaps the runs
     * instead of all of it before the first; LeNet-300-100's 500 PNGs are
     * ~5 ms of CPU, its runs ~3.5), and the set's remaining checks and its
     * fit to the input are finished at the end of the pass: its failure is
     * the pass's (the first bad file in manifest order, as before) */
    int pipelined = 0;
    if (q->n_run == 0) {
        const int pend = sqzc_calib_set_pending(q->set);
        int orc = 0, opened = 0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(q_threads(q)) if (pend && q_threads(q) > 1)
#endif
        {
#if defined(_OPENMP)
#pragma omp single nowait
#endif
            {
                orc = open_runners(q, b, want_run);
#if defined(_OPENMP)
#pragma omp atomic write
#endif
                opened = 1;
            }
            if (pend) sqzc_calib_set_check_some(q->set, &opened);
        }
        if (orc != 0) { /* (the set's error first, as a failed pass's) */
            if (pend && sqzc_calib_set_check_finish(q->set, q->err, q->err_len) == 0)
                (void)sqzc_calib_set_check_input(q->set, &q->in1, q->err, q->err_len);
            return -1;
        }
        pipelined = pend;
    }
    q_prof("  open session", &tso);
    for (int k = 0; k < q->n_run; k++) q->run[k].q = q;
    /* output shapes are fixed when a session is created */
    if (q->run[0].sliceable < 0) {
        const int sl = runner_sliceable(q, &q->run[0]);
        for (int j = 0; j < q->n_run; j++) q->run[j].sliceable = sl;
    }
    b = q->run[0].batch;
    const int nr = q->n_run;
    int rc = -1;
    double tr = 0, tf = 0, tc = 0, t0;
    char errs[Q_MAX_RUNNERS][512];
    qturns turns;
    turns.turn = tfn && nr > 1 ? malloc(sizeof *turns.turn * (size_t)q->n_obs) : NULL;
    if (!turns.turn) tfn = NULL; /* (out of memory: fn on this thread instead) */
    progress(q, label, 0, n);
    int r_first = 0; /* images run by the free-running threads below */
#if defined(_OPENMP)
    /* with per-tensor statistics, each thread runs its batches (t, t + nt,
     * ...) without a barrier between them: batch_ordered alone keeps the
     * tensors' order, and a thread runs its next batch while the other
     * finishes the statistics of its last (rounds made every thread wait for
     * the slower one nb / nr times); a last partial batch in a session that
     * cannot be sliced is left to the rounds below */
    if (tfn && nr > 1) {
        const int nbat = (n + b - 1) / b, lc = n - (nbat - 1) * b;
        const int nfree = lc != b && q->run[0].sliceable != 1 ? nbat - 1 : nbat;
        if (nfree > 1) {
            for (int i = 0; i < q->n_obs; i++) atomic_init(&turns.turn[i], 0);
            atomic_init(&turns.book, 0);
            atomic_init(&turns.fail, INT_MAX);
            atomic_init(&turns.sleepers, 0);
            turns.n = q->n_obs;
            int ebat[Q_MAX_RUNNERS];
            for (int k = 0; k < nr; k++) {
                ebat[k] = -1;
                errs[k][0] = '\0';
            }
            t0 = q_now();
#pragma omp parallel num_threads(nr)
            {
                const int t = omp_get_thread_num(), nt = omp_get_num_threads();
                qrunner *r = &q->run[t];
                char e[512];
                for (int k = t; k < nfree; k += nt) {
                    if (atomic_load(&turns.fail) < k) break;
                    const int i0 = k * b, cnt = n - i0 < b ? n - i0 : b;
                    sqz_status st;
                    e[0] = '\0';
                    int fail =
                        sqzc_calib_set_load_many(q->set, i0, cnt, &q->in1, r->in, e, sizeof e) != 0;
                    if (!fail &&
                        (sqz_session_set_input(r->s, 0, r->in, (size_t)q->per * (size_t)r->batch,
                                               &st) != SQZ_OK ||
                         sqz_session_run(r->s, &st) != SQZ_OK)) {
                        snprintf(e, sizeof e, "calibration run (images %d..%d): %s", i0,
                                 i0 + cnt - 1, st.msg);
                        fail = 1;
                    }
                    if (!fail) {
                        r->count = cnt;
                        fail = batch_ordered(q, r, &turns, k, i0, cnt, n, label, tfn, user, e,
                                             sizeof e) != 0;
                    }
                    if (fail) { /* (a batch that stopped waiting has no message) */
                        if (e[0]) {
                            ebat[t] = k;
                            snprintf(errs[t], sizeof errs[t], "%s", e);
                        }
                        turns_fail(&turns, k);
                        break;
                    }
                }
            }
            tr += q_now() - t0;
            if (atomic_load(&turns.fail) != INT_MAX) {
                int first = -1;
                for (int k = 0; k < nr; k++)
                    if (ebat[k] >= 0 && (first < 0 || ebat[k] < ebat[first])) first = k;
                snprintf(q->err, q->err_len, "%s", first >= 0 ? errs[first] : "calibration failed");
                goto out;
            }
            r_first = nfree * b < n ? nfree * b : n;
        }
    }
#endif
    /* rounds of nr batches: decoded and run in parallel, then the statistics
     * of each batch in image order (each tensor's statistics on one thread:
     * results do not depend on the thread count) */
    for (int r0 = r_first; r0 < n; r0 += nr * b) {
        int nb = (n - r0 + b - 1) / b;
        nb = nb < nr ? nb : nr;
        const int last_cnt = n - (r0 + (nb - 1) * b) < b ? n - (r0 + (nb - 1) * b) : b;
        /* a last partial batch in a session whose outputs cannot be sliced
         * runs alone in a session of its size */
        const int solo = last_cnt != b && q->run[0].sliceable != 1;
        const int npar = solo ? nb - 1 : nb;
        for (int pass = 0; pass < 2; pass++) {
            const int kb = pass == 0 ? 0 : npar, ke = pass == 0 ? npar : nb;
            if (kb >= ke) continue;
            if (pass == 1) { /* solo */
                runners_close(q);
                if (runners_open(q, last_cnt, 1) != 0) goto out;
                q->run[0].q = q;
            }
            const int npk = ke - kb;
            /* statistics on the threads that ran the batches (batch_ordered) */
            const int ordered = tfn && pass == 0 && npk > 1;
            if (ordered) {
                for (int i = 0; i < q->n_obs; i++) atomic_init(&turns.turn[i], 0);
                atomic_init(&turns.book, 0);
                atomic_init(&turns.fail, INT_MAX);
                atomic_init(&turns.sleepers, 0);
                turns.n = q->n_obs;
            }
            int bad = 0;
            t0 = q_now();
            /* one batch per session; a lone batch decodes its images on
             * the threads instead */
#if defined(_OPENMP)
#pragma omp parallel for schedule(static, 1) num_threads(npk) if (npk > 1)
#endif
            for (int k = kb; k < ke; k++) {
                qrunner *r = &q->run[pass == 0 ? k : 0];
                const int i0 = r0 + k * b, cnt = n - i0 < b ? n - i0 : b;
                int fail = 0;
                errs[k][0] = '\0';
                if (npk > 1 || q_threads(q) < 2 || cnt < 2) {
                    fail = sqzc_calib_set_load_many(q->set, i0, cnt, &q->in1, r->in, errs[k],
                                                    sizeof errs[k]) != 0;
                } else {
                    /* a lone batch: its images decoded in parallel, a
                     * contiguous part per thread (an npy_batch file's
                     * samples then come in a few reads) */
                    int nt = q_threads(q) < cnt ? q_threads(q) : cnt;
                    nt = nt < Q_MAX_RUNNERS ? nt : Q_MAX_RUNNERS;
                    char perr[Q_MAX_RUNNERS][512];
                    int pbad[Q_MAX_RUNNERS] = {0};
#if defined(_OPENMP)
#pragma omp parallel for schedule(static, 1) num_threads(nt)
#endif
                    for (int t = 0; t < nt; t++) {
                        const int a = (int)((int64_t)cnt * t / nt),
                                  e = (int)((int64_t)cnt * (t + 1) / nt);
                        pbad[t] = sqzc_calib_set_load_many(q->set, i0 + a, e - a, &q->in1,
                                                           r->in + (size_t)a * (size_t)q->per,
                                                           perr[t], sizeof perr[t]) != 0;
                    }
                    for (int t = 0; t < nt && !fail; t++)
                        if (pbad[t]) {
                            snprintf(errs[k], sizeof errs[k], "%s", perr[t]);
                            fail = 1;
                        }
                }
                if (!fail) {
                    /* a padded batch's extra images are those of the batch before */
                    sqz_status st;
                    if (sqz_session_set_input(r->s, 0, r->in, (size_t)q->per * (size_t)r->batch,
                                              &st) != SQZ_OK ||
                        sqz_session_run(r->s, &st) != SQZ_OK) {
                        snprintf(errs[k], sizeof errs[k], "calibration run (images %d..%d): %s", i0,
                                 i0 + cnt - 1, st.msg);
                        fail = 1;
                    }
                }
                if (!fail && ordered) {
                    r->count = cnt;
                    fail = batch_ordered(q, r, &turns, k - kb, i0, cnt, n, label, tfn, user,
                                         errs[k], sizeof errs[k]) != 0;
                }
                if (fail) {
                    if (ordered) turns_fail(&turns, k - kb);
#if defined(_OPENMP)
#pragma omp atomic write
#endif
                    bad = 1;
                }
            }
            tr += q_now() - t0;
            if (bad) {
                for (int k = kb; k < ke; k++)
                    if (errs[k][0]) {
                        snprintf(q->err, q->err_len, "%s", errs[k]);
                        break;
                    }
                goto out;
            }
            for (int k = kb; k < ke && !ordered; k++) {
                qrunner *r = &q->run[pass == 0 ? k : 0];
                const int i0 = r0 + k * b, cnt = n - i0 < b ? n - i0 : b;
                t0 = q_now();
                if (r->sliceable < 0) {
                    r->sliceable = runner_sliceable(q, r);
                    for (int j = 0; j < q->n_run; j++) q->run[j].sliceable = r->sliceable;
                }
                r->count = cnt;
                const int keep = cache_takes(c, i0, cnt);
                if (keep > 0 && cache_store(q, r, i0, cnt, keep) != 0) {
                    snprintf(q->err, q->err_len, "out of memory");
                    goto out;
                }
                tc += q_now() - t0;
                t0 = q_now();
                if (fn(q, r, i0, cnt, user) != 0) goto out;
                tf += q_now() - t0;
                progress(q, label, i0 + cnt, n);
            }
        }
    }
    rc = 0;
    /* The report's images kept (cache_keep: one pass, then only the report
     * reads images, from the copies): the sessions are done. Their arenas
     * and packed weights go back to the heap now, where the report's
     * buffers find them, instead of the report faulting in fresh zeroed
     * pages (small ResNet: ~8 MB of arenas). GPTQ and empirical bias
     * correction read more images: the sessions stay. */
    if (cache_keep(c) && c->images >= c->cap_images && q->o->rounding == SQZC_QR_NEAREST &&
        q->o->bias_correction != 2)
        runners_close(q);
    t0 = q_now() - tr;
    q_prof("  load images + run", &t0);
    t0 = q_now() - tc;
    q_prof("  cache store", &t0);
    t0 = q_now() - tf;
    q_prof("  statistics", &t0);
out:
    if (pipelined) { /* the set's checks to the end: its error wins */
        /* (items past the pass's, --max-images: on every thread, as before) */
        const int rest = q->n_images < q->set->n_items && q_threads(q) > 1;
        (void)rest;
#if defined(_OPENMP)
#pragma omp parallel num_threads(q_threads(q)) if (rest)
#endif
        sqzc_calib_set_check_some(q->set, NULL);
        char e[1024];
        if (sqzc_calib_set_check_finish(q->set, e, sizeof e) != 0 ||
            sqzc_calib_set_check_input(q->set, &q->in1, e, sizeof e) != 0) {
            snprintf(q->err, q->err_len, "%s", e);
            rc = -1;
        }
    }
    free(turns.turn);
    if (rc != 0 && q->o->progress) fputc('\n', stderr);
    if (rc != 0) runners_close(q);
    return rc;
}

/* *mn = min(*mn, x[i]), *mx = max(*mx, x[i]) over x[0, n); NaN compares
 * false and is skipped, as in the scalar loop (minps / maxps select the
 * same operand: the order of the comparisons differs only in the sign a
 * zero result may carry). */
static void min_max(const float *x, int64_t n, float *mn, float *mx) {
    float lo = *mn, hi = *mx;
    int64_t i = 0;
#if defined(__SSE2__)
    if (n >= 16) {
        __m128 n0 = _mm_set1_ps(lo), n1 = n0, x0 = _mm_set1_ps(hi), x1 = x0;
        for (; i + 8 <= n; i += 8) {
            __m128 a = _mm_loadu_ps(x + i), b = _mm_loadu_ps(x + i + 4);
            n0 = _mm_min_ps(a, n0);
            n1 = _mm_min_ps(b, n1);
            x0 = _mm_max_ps(a, x0);
            x1 = _mm_max_ps(b, x1);
        }
        float ln[8], lx[8];
        _mm_storeu_ps(ln, n0);
        _mm_storeu_ps(ln + 4, n1);
        _mm_storeu_ps(lx, x0);
        _mm_storeu_ps(lx + 4, x1);
        for (int l = 0; l < 8; l++) {
            lo = ln[l] < lo ? ln[l] : lo;
            hi = lx[l] > hi ? lx[l] : hi;
        }
    }
#endif
    for (; i < n; i++) {
        hi = x[i] > hi ? x[i] : hi;
        lo = x[i] < lo ? x[i] : lo;
    }
    *mn = lo;
    *mx = hi;
}

/* per-channel accumulation along axis 1: pass 1 sums (bias correction) and,
 * where asked, min / max (equalized tensors); pass 0 maxima only */
static void chan_add(qchan *c, const float *d, const sqz_shape *sh, int pass) {
    if (sh->ndim < 2 || sh->dims[1] != c->c) return;
    int64_t outer = sh->dims[0], inner = 1;
    for (int k = 2; k < sh->ndim; k++) inner *= sh->dims[k];
    const int sums = pass == 1, mm = pass == 0 || c->minmax;
    if (inner == 1) { /* [N, C] (a Gemm's input): the same sums, along the rows */
        for (int64_t o = 0; o < outer; o++) {
            const float *p = d + (size_t)o * (size_t)c->c;
            if (sums)
                for (int ci = 0; ci < c->c; ci++) c->sum[ci] += (double)p[ci];
            if (mm)
                for (int ci = 0; ci < c->c; ci++) {
                    c->max[ci] = p[ci] > c->max[ci] ? p[ci] : c->max[ci];
                    if (c->min) c->min[ci] = p[ci] < c->min[ci] ? p[ci] : c->min[ci];
                }
        }
        if (sums) c->per_channel += (uint64_t)outer;
        return;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int ci = 0; ci < c->c; ci++) {
            const float *p = d + ((size_t)o * (size_t)c->c + (size_t)ci) * (size_t)inner;
            if (sums) {
                /* float partial sums in blocks of 256 (vectorizes), double overall */
                double s = 0;
                for (int64_t i0 = 0; i0 < inner; i0 += 256) {
                    int64_t e = inner - i0 < 256 ? inner : i0 + 256;
                    float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                    int64_t i = i0;
                    for (; i + 8 <= e; i += 8)
                        for (int l = 0; l < 8; l++) f[l] += p[i + l];
                    for (; i < e; i++) f[0] += p[i];
                    s += (double)((f[0] + f[1]) + (f[2] + f[3])) + ((f[4] + f[5]) + (f[6] + f[7]));
                }
                c->sum[ci] += s;
            }
            if (mm) {
                float mx = c->max[ci], mn = c->min ? c->min[ci] : 0;
                min_max(p, inner, &mn, &mx);
                c->max[ci] = mx;
                if (c->min) c->min[ci] = mn;
            }
        }
    if (sums) c->per_channel += (uint64_t)(outer * inner);
}

/* threads of the quantizer's own loops (statistics, image decoding, ranges) */
int q_threads(const qctx *q) {
#if defined(_OPENMP)
    return q->o && q->o->num_threads > 1 ? q->o->num_threads : 1;
#else
    (void)q;
    return 1;
#endif
}

/* pass statistics of observed tensor i of r's batch */
static int pass_tensor(qctx *q, const qrunner *r, int i, void *user) {
    const int pass = *(int *)user;
    sqz_shape sh;
    const float *d = q_obs_data(r, i, &sh);
    if (!d) return -1;
    if (pass != 0 && q->obs_dup[i] < 0) sqzc_qstat_add(&q->st[i], d, (size_t)sqz_shape_numel(&sh));
    if (pass <= 1 && q->ch[i].c > 0) chan_add(&q->ch[i], d, &sh, pass);
    return 0;
}

/* Values of a batch below which its statistics run on one thread: a team's
 * hand-off costs more than the work (LeNet-300-100, a batch of 32: 50 K
 * values, ~15 us; 2 threads took 3x the time of one) */
#define Q_STATS_PAR_MIN (256 * 1024)

static int pass_fn(qctx *q, const qrunner *r, int first, int count, void *user) {
    (void)first;
    (void)count;
    int bad = -1;
    int64_t vals = 0;
    for (int i = 0; i < q->n_obs; i++) {
        sqz_shape sh;
        if (q_obs_data(r, i, &sh)) vals += sqz_shape_numel(&sh);
    }
    const int par = q_threads(q) > 1 && vals >= Q_STATS_PAR_MIN;
    (void)par;
    /* one tensor's statistics per thread at a time (each tensor's own
     * accumulators: the result does not depend on the thread count) */
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(q_threads(q)) if (par)
#endif
    for (int i = 0; i < q->n_obs; i++) {
        if (pass_tensor(q, r, i, user) != 0) {
#if defined(_OPENMP)
#pragma omp critical(q_pass_bad)
#endif
            if (bad < 0 || i < bad) bad = i;
        }
    }
    if (bad >= 0) {
        snprintf(q->err, q->err_len, "no output for tensor '%s'", q->g->tensors[q->obs[bad]].name);
        return -1;
    }
    return 0;
}

static int reset_channels(qctx *q) {
    for (int i = 0; i < q->n_obs; i++) {
        qchan *c = &q->ch[i];
        if (c->c <= 0) continue;
        if (!c->sum) c->sum = calloc((size_t)c->c, sizeof *c->sum);
        if (!c->max) c->max = malloc((size_t)c->c * sizeof *c->max);
        if (c->minmax && !c->min) c->min = malloc((size_t)c->c * sizeof *c->min);
        if (!c->sum || !c->max || (c->minmax && !c->min)) return -1;
        memset(c->sum, 0, (size_t)c->c * sizeof *c->sum);
        for (int k = 0; k < c->c; k++) c->max[k] = -INFINITY;
        for (int k = 0; c->min && k < c->c; k++) c->min[k] = INFINITY;
        c->per_channel = 0;
    }
    return 0;
}

int q_channel_max(qctx *q) {
    if (reset_channels(q) != 0) {
        snprintf(q->err, q->err_len, "out of memory");
        return -1;
    }
    int pass = 0;
    return for_batches(q, q->n_images, "equalization ranges", pass_fn, pass_tensor, &pass);
}

static int pass_range(qctx *q) {
    if (reset_channels(q) != 0) {
        snprintf(q->err, q->err_len, "out of memory");
        return -1;
    }
    int pass = 1;
    return for_batches(q, q->n_images, "calibration 1/2 range", pass_fn, pass_tensor, &pass);
}

int q_pass_range(qctx *q) {
    return pass_range(q) != 0 ? -1 : copy_dups(q);
}

/* (a view's statistics are its source's: no histogram of its own) */
int q_pass_hist(qctx *q) {
    for (int i = 0; i < q->n_obs; i++)
        if (q->obs_dup[i] < 0 && sqzc_qstat_begin_hist(&q->st[i]) != 0) {
            snprintf(q->err, q->err_len, "out of memory");
            return -1;
        }
    int pass = 2;
    if (for_batches(q, q->n_images, "calibration 2/2 hist", pass_fn, pass_tensor, &pass) != 0)
        return -1;
    return copy_dups(q);
}

int q_pass_one(qctx *q) {
    for (int i = 0; i < q->n_obs; i++)
        if (q->obs_dup[i] < 0 && sqzc_qstat_begin_one_pass(&q->st[i]) != 0) {
            snprintf(q->err, q->err_len, "out of memory");
            return -1;
        }
    if (pass_range(q) != 0) return -1;
    for (int i = 0; i < q->n_obs; i++)
        if (sqzc_qstat_end_one_pass(&q->st[i]) != 0) {
            snprintf(q->err, q->err_len, "out of memory");
            return -1;
        }
    return copy_dups(q);
}
