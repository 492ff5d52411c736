/* calibrate.c - run the fp32 graph through the sqz runtime over a
 * calibration set, every activation exposed as a graph output, and stream
 * per-tensor statistics (memory: one batch of activations + fixed-size
 * histograms, whatever the number of images). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "qinternal.h"
#include "sqzc/writer.h"

double q_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int qctx_init_obs(qctx *q) {
    sqzc_graph *g = q->g;
    q->obs = malloc(sizeof *q->obs * (size_t)(g->n_tensors + 1));
    q->obs_of = malloc(sizeof *q->obs_of * (size_t)(g->n_tensors + 1));
    if (!q->obs || !q->obs_of) return -1;
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
    return 0;
}

static void runner_close(qrunner *r) {
    sqz_session_free(r->s);
    sqz_model_free(r->m);
    free(r->in);
    memset(r, 0, sizeof *r);
}

static int runner_open(qctx *q, int batch, qrunner *r) {
    memset(r, 0, sizeof *r);
    sqzc_graph *g = q->g;
    /* serialize with the observed tensors as the graph outputs */
    int32_t *outs = g->outputs;
    int n_outs = g->n_outputs;
    g->outputs = q->obs;
    g->n_outputs = q->n_obs;
    uint8_t *buf = NULL;
    size_t size = 0;
    int rc = sqzc_serialize(g, &buf, &size, q->err, q->err_len);
    g->outputs = outs;
    g->n_outputs = n_outs;
    if (rc != 0) return -1;
    sqz_status st;
    if (sqz_model_load_buffer(buf, size, &r->m, &st) != SQZ_OK) {
        free(buf);
        snprintf(q->err, q->err_len, "calibration model: %s", st.msg);
        return -1;
    }
    free(buf);
    sqz_session_options so;
    sqz_session_options_init(&so);
    sqz_input_shape is;
    is.name = g->tensors[q->input].name;
    is.shape = q->in1;
    is.shape.dims[0] = batch;
    so.input_shapes = &is;
    so.n_input_shapes = 1;
    so.num_threads = q->o->num_threads;
    if (sqz_session_create(r->m, &so, &r->s, &st) != SQZ_OK) {
        snprintf(q->err, q->err_len, "calibration session (batch %d): %s", batch, st.msg);
        runner_close(r);
        return -1;
    }
    r->batch = batch;
    r->in = malloc(sizeof(float) * (size_t)q->per * (size_t)batch);
    if (!r->in) {
        snprintf(q->err, q->err_len, "out of memory");
        runner_close(r);
        return -1;
    }
    return 0;
}

const float *q_obs_data(const qrunner *r, int i, sqz_shape *shape) {
    const float *d = NULL;
    sqz_status st;
    if (sqz_session_output(r->s, i, &d, shape, &st) != SQZ_OK) return NULL;
    return d;
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

int q_for_batches(qctx *q, int n, const char *label, qbatch_fn fn, void *user) {
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
    if (b > n) b = n;
    qrunner r = {0};
    int rc = -1;
    /* a model whose batch cannot change runs one image at a time */
    char first_err[512] = "";
    if (runner_open(q, b, &r) != 0) {
        snprintf(first_err, sizeof first_err, "%s", q->err);
        if (b == 1 || runner_open(q, 1, &r) != 0) {
            if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", q->err);
            snprintf(q->err, q->err_len, "%s", first_err);
            return -1;
        }
        b = 1;
    }
    progress(q, label, 0, n);
    for (int i0 = 0; i0 < n; i0 += b) {
        int cnt = n - i0 < b ? n - i0 : b;
        if (cnt != r.batch) { /* the remainder gets its own session */
            runner_close(&r);
            if (runner_open(q, cnt, &r) != 0) goto out;
        }
        for (int j = 0; j < cnt; j++)
            if (sqzc_calib_set_load(q->set, i0 + j, &q->in1, r.in + (size_t)j * (size_t)q->per,
                                    q->err, q->err_len) != 0)
                goto out;
        sqz_status st;
        if (sqz_session_set_input(r.s, 0, r.in, (size_t)q->per * (size_t)cnt, &st) != SQZ_OK ||
            sqz_session_run(r.s, &st) != SQZ_OK) {
            snprintf(q->err, q->err_len, "calibration run (images %d..%d): %s", i0, i0 + cnt - 1,
                     st.msg);
            goto out;
        }
        if (fn(q, &r, i0, cnt, user) != 0) goto out;
        progress(q, label, i0 + cnt, n);
    }
    rc = 0;
out:
    if (rc != 0 && q->o->progress) fputc('\n', stderr);
    runner_close(&r);
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

static int pass_fn(qctx *q, const qrunner *r, int first, int count, void *user) {
    (void)first;
    (void)count;
    int pass = *(int *)user;
    for (int i = 0; i < q->n_obs; i++) {
        sqz_shape sh;
        const float *d = q_obs_data(r, i, &sh);
        if (!d) {
            snprintf(q->err, q->err_len, "no output for tensor '%s'",
                     q->g->tensors[q->obs[i]].name);
            return -1;
        }
        if (pass != 0) sqzc_qstat_add(&q->st[i], d, (size_t)sqz_shape_numel(&sh));
        if (pass <= 1 && q->ch[i].c > 0) chan_add(&q->ch[i], d, &sh, pass);
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
    return q_for_batches(q, q->n_images, "equalization ranges", pass_fn, &pass);
}

int q_pass_range(qctx *q) {
    if (reset_channels(q) != 0) {
        snprintf(q->err, q->err_len, "out of memory");
        return -1;
    }
    int pass = 1;
    return q_for_batches(q, q->n_images, "calibration 1/2 range", pass_fn, &pass);
}

int q_pass_hist(qctx *q) {
    for (int i = 0; i < q->n_obs; i++)
        if (sqzc_qstat_begin_hist(&q->st[i]) != 0) {
            snprintf(q->err, q->err_len, "out of memory");
            return -1;
        }
    int pass = 2;
    return q_for_batches(q, q->n_images, "calibration 2/2 hist", pass_fn, &pass);
}
