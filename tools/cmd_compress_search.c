/* cmd_compress_search.c - the default compression search of `sqz compress`
 * (see cmd_compress_search.h): per-layer sensitivity sweep, then a
 * Lagrangian allocation of (sparsity, bits) per layer with the multiplier
 * bisected against the measured accuracy drop. */
#include "cmd_compress_search.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "sqzc/prune.h"
#include "sqzc/prune_refit.h"
#include "sqzc/tensor_encode.h"
#include "sqzc/weight_share.h"
#include "sqzc/writer.h"

/* ------------------------------------------------------------ helpers */

int csr_graph_model(const char *cmd, sqzc_graph *g, int raw, sqz_model **m, size_t *size) {
    char err[512];
    uint8_t *buf = NULL;
    sqzc_encoding **saved = NULL;
    if (m) *m = NULL;
    if (raw) {
        saved = malloc(((size_t)g->n_tensors + 1) * sizeof *saved);
        if (!saved) {
            cli_error(cmd, "out of memory");
            return CLI_ERUNTIME;
        }
        for (int t = 0; t < g->n_tensors; t++) {
            saved[t] = g->tensors[t].enc;
            g->tensors[t].enc = NULL;
        }
    }
    int rc = sqzc_serialize(g, &buf, size, err, sizeof err);
    if (raw) {
        for (int t = 0; t < g->n_tensors; t++) g->tensors[t].enc = saved[t];
        free(saved);
    }
    if (rc != 0) {
        cli_error(cmd, "serialize: %s", err);
        return CLI_ERUNTIME;
    }
    if (m) {
        sqz_status st;
        memset(&st, 0, sizeof st);
        if (sqz_model_load_buffer(buf, *size, m, &st) != SQZ_OK) {
            cli_error(cmd, "the runtime refuses the compressed model: %s", st.msg);
            free(buf);
            *m = NULL;
            return CLI_ERUNTIME;
        }
    }
    free(buf);
    return CLI_OK;
}

int csr_graph_accuracy(const char *cmd, sqzc_graph *g, const eval_set *set, int first, int count,
                       int batch, int threads, double *acc) {
    sqz_model *m = NULL;
    size_t size = 0;
    int rc = csr_graph_model(cmd, g, 0, &m, &size);
    if (rc != 0) return rc;
    eval_result res;
    rc = eval_run(cmd, m, set, first, count, batch, threads, NULL, &res);
    sqz_model_free(m);
    if (rc == 0) *acc = res.total ? (double)res.correct / res.total : 0.0;
    return rc;
}

void csr_snapshot_free(csr_snapshot *s) {
    for (int i = 0; i < s->n; i++) free(s->data[i]);
    for (int i = 0; i < s->n_other; i++) free(s->other_data[i]);
    free(s->data);
    free(s->tens);
    free(s->other_data);
    free(s->other_tens);
    memset(s, 0, sizeof *s);
}

int csr_snapshot_take(const sqzc_graph *g, csr_snapshot *s) {
    memset(s, 0, sizeof *s);
    s->tens = malloc(((size_t)g->n_nodes + 1) * sizeof *s->tens);
    s->data = calloc((size_t)g->n_nodes + 1, sizeof *s->data);
    if (!s->tens || !s->data) return -1;
    for (int i = 0; i < g->n_nodes; i++) {
        int t = sqzc_layer_weight(g, i);
        if (t < 0) continue;
        int dup = 0;
        for (int k = 0; k < s->n; k++) dup |= s->tens[k] == t;
        if (dup) continue;
        size_t bytes = (size_t)sqz_shape_numel(&g->tensors[t].shape) * sizeof(float);
        float *d = malloc(bytes ? bytes : 1);
        if (!d) return -1;
        memcpy(d, g->tensors[t].f32, bytes);
        s->tens[s->n] = t;
        s->data[s->n] = d;
        s->n++;
    }
    /* every other f32 constant (biases: the search corrects them, the final
     * storage step rounds them) */
    s->other_tens = malloc(((size_t)g->n_tensors + 1) * sizeof *s->other_tens);
    s->other_data = calloc((size_t)g->n_tensors + 1, sizeof *s->other_data);
    if (!s->other_tens || !s->other_data) return -1;
    for (int t = 0; t < g->n_tensors; t++) {
        if (!g->tensors[t].f32) continue;
        int weight = 0;
        for (int k = 0; k < s->n && !weight; k++) weight = s->tens[k] == t;
        if (weight) continue;
        size_t bytes = (size_t)sqz_shape_numel(&g->tensors[t].shape) * sizeof(float);
        float *d = malloc(bytes ? bytes : 1);
        if (!d) return -1;
        memcpy(d, g->tensors[t].f32, bytes);
        s->other_tens[s->n_other] = t;
        s->other_data[s->n_other] = d;
        s->n_other++;
    }
    return 0;
}

static int restore_one(sqzc_graph *g, const csr_snapshot *s, int i) {
    sqzc_tensor *t = &g->tensors[s->tens[i]];
    memcpy(t->f32, s->data[i], (size_t)sqz_shape_numel(&t->shape) * sizeof(float));
    return sqzc_tensor_set_encoding(g, s->tens[i], NULL);
}

int csr_snapshot_restore(sqzc_graph *g, const csr_snapshot *s) {
    for (int i = 0; i < s->n; i++)
        if (restore_one(g, s, i) != 0) return -1;
    for (int i = 0; i < s->n_other; i++) {
        sqzc_tensor *t = &g->tensors[s->other_tens[i]];
        memcpy(t->f32, s->other_data[i], (size_t)sqz_shape_numel(&t->shape) * sizeof(float));
        if (sqzc_tensor_set_encoding(g, s->other_tens[i], NULL) != 0) return -1;
    }
    return 0;
}

/* Store bias tensor bt: bias_bits 2..8: on a uniform grid (linear codebook,
 * sqz/format.h SQZ_PF_LINEAR; error <= (max - min) / (2^bits - 2) / 2);
 * 0 (or a range the grid cannot hold): rounded to the nearest fp16 value
 * (2^-11 relative at most; the writer then stores exact halves,
 * SQZ_ENC_F16). Values below the fp16 normal range go to the subnormal grid,
 * values above it (or NaN) are left as they are. 0 ok, -1 OOM. */
static int bias_store(sqzc_graph *g, int bt, int bias_bits) {
    sqzc_tensor *b = &g->tensors[bt];
    int64_t ne = sqz_shape_numel(&b->shape);
    if (bias_bits > 0 && ne > 0) {
        float cb[256];
        sqzc_encoding e;
        if (sqzc_share_linear(b->f32, ne, bias_bits, cb, &e) > 0) {
            e.huffman = 1;
            return sqzc_tensor_set_encoding(g, bt, &e);
        }
    }
    if (sqzc_tensor_set_encoding(g, bt, NULL) != 0) return -1;
    for (int64_t k = 0; k < ne; k++) {
        float v = b->f32[k], a = fabsf(v);
        if (a < 0x1p-14f) { /* fp16 subnormal range: the 2^-24 grid (error <= 2^-25) */
            b->f32[k] = rintf(v * 0x1p24f) * 0x1p-24f;
            continue;
        }
        if (!(a <= 65504.0f)) continue;
        int e;
        float m = frexpf(v, &e); /* v = m * 2^e, |m| in [0.5, 1): keep 11 bits */
        b->f32[k] = ldexpf(rintf(m * 2048.0f) / 2048.0f, e);
    }
    return 0;
}

int csr_finalize(sqzc_graph *g, int bias_bits) {
    for (int i = 0; i < g->n_nodes; i++) {
        const sqzc_node *n = &g->nodes[i];
        int bt = -1;
        if ((n->op == SQZ_OP_CONV || n->op == SQZ_OP_CONV_TRANSPOSE || n->op == SQZ_OP_GEMM) &&
            n->n_in >= 3 && n->in[2] >= 0)
            bt = n->in[2];
        /* MatMul + Add (torch's export of Linear): the Add's constant operand */
        if (n->op == SQZ_OP_ADD && n->n_in == 2)
            for (int k = 0; k < 2; k++) {
                int p = n->in[1 - k] >= 0 ? sqzc_producer(g, n->in[1 - k]) : -1;
                if (n->in[k] >= 0 && g->tensors[n->in[k]].f32 && p >= 0 &&
                    g->nodes[p].op == SQZ_OP_MATMUL)
                    bt = n->in[k];
            }
        if (bt < 0) continue;
        const sqzc_tensor *b = &g->tensors[bt];
        if (!b->f32 || b->enc) continue; /* stored already (the search) */
        if (bias_store(g, bt, bias_bits) != 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ options */

static const float kSp[] = {0.0f, 0.3f,  0.4f, 0.5f,  0.55f, 0.6f, 0.65f,
                            0.7f, 0.75f, 0.8f, 0.85f, 0.9f,  0.95f};
static const int kBits[] = {8, 6, 5, 4, 3, 2}; /* descending: damage grows along a row */
enum { NSP = sizeof kSp / sizeof kSp[0], NB = sizeof kBits / sizeof kBits[0], NOPT = NSP * NB };
/* layers this small take no pruning beyond 0.5: their bytes matter less (and
 * the sweep stays short on many-layer models) */
#define SMALL_LAYER 4096
/* an option flipping more than this fraction of the calibration predictions
 * alone is never worth keeping (and a stronger one is not tried) */
#define MAX_FLIP 0.10
/* least-squares pruning of Gemm layers: images for the Gram matrix, widest input */
#define GRAM_IMAGES 4000
#define GRAM_MAX_FEATURES 2048

typedef struct layer_opts {
    int node;
    /* activation-aware pruning + bias correction (Conv, Gemm without transA) */
    int aware;        /* input statistics known */
    int in_t;         /* input tensor */
    int bias_t;       /* bias tensor (numel = output features), -1: none */
    int conv;         /* 1: Conv (features = input channels), 0: Gemm (features = K) */
    int trans_b;      /* Gemm weight [N,K] (1) or [K,N] (0) */
    int64_t nfeat;    /* input features */
    double *sum, *sq; /* per feature: sums of x and x^2 */
    int64_t cnt;      /* samples per feature */
    float *bias0;     /* the bias as imported */
    double *gram;     /* Gemm: Gram matrix of [x, 1] ((nfeat + 1)^2) on images before the
                         selection, for least-squares pruning; NULL: none */
    float *lsq[NSP];  /* the least-squares pruned weights per sparsity of kSp (cache) */
    int bias_bits;    /* the bias's storage (bias_store) after each correction */
    double bytes[NOPT];
    double damage[NOPT]; /* INFINITY: unusable / not tried */
} layer_opts;

static int bits_for(int n_centroids) {
    int b = 1;
    while ((1 << b) < n_centroids) b++;
    return b;
}

static int prune_aware(float *w, const sqz_shape *ws, const layer_opts *lo, float sp);
static int64_t feat_of(const sqz_shape *ws, const layer_opts *lo, int64_t e);
static void bias_correct(sqzc_graph *g, const layer_opts *lo, const float *w0, const float *w,
                         const sqz_shape *ws);

/* restore layer i from the snapshot, prune it to sp, share it to bits (with
 * input statistics: activation-aware pruning and bias correction) */
static int apply_layer(sqzc_graph *g, const csr_snapshot *s, const layer_opts *lo, int i, float sp,
                       int bits, int fp16, int huffman) {
    if (restore_one(g, s, i) != 0) return -1;
    sqzc_tensor *t = &g->tensors[s->tens[i]];
    int64_t n = sqz_shape_numel(&t->shape);
    int si = 0;
    while (si < NSP - 1 && kSp[si] != sp) si++;
    if (lo && lo->aware && lo->gram && sp > 0.0f && kSp[si] == sp && lo->lsq[si]) {
        memcpy(t->f32, lo->lsq[si], (size_t)n * sizeof *t->f32);
    } else if (lo && lo->aware && lo->gram && sp > 0.0f) {
        /* least squares: the surviving weights take over the removed ones' output */
        if (sqzc_prune_gram(t->f32, s->data[i], NULL, lo->bias0, lo->gram, lo->nfeat, n / lo->nfeat,
                            !lo->trans_b, (int64_t)llround((double)sp * (double)n), 0.0f) != 0)
            return -1;
        if (kSp[si] == sp) {
            layer_opts *lw = (layer_opts *)lo; /* the cache only */
            lw->lsq[si] = malloc((size_t)n * sizeof *t->f32);
            if (lw->lsq[si]) memcpy(lw->lsq[si], t->f32, (size_t)n * sizeof *t->f32);
        }
    } else if (lo && lo->aware) {
        if (sp > 0.0f && prune_aware(t->f32, &t->shape, lo, sp) != 0) return -1;
    } else if (sp > 0.0f && sqzc_prune_array(t->f32, n, sp) < 0) {
        return -1;
    }
    float cb[256];
    float *imp = NULL;
    if (lo && lo->aware && !getenv("SQZ_SEARCH_UNWEIGHTED")) {
        /* k-means weighted by the input feature variance (the output error
         * a weight change causes after bias correction) */
        imp = malloc((size_t)(n ? n : 1) * sizeof *imp);
        if (!imp) return -1;
        double vs = 0;
        for (int64_t f = 0; f < lo->nfeat; f++) {
            double mu = lo->sum[f] / (double)lo->cnt, v = lo->sq[f] / (double)lo->cnt - mu * mu;
            vs += v > 0 ? v : 0;
        }
        double eps = 1e-3 * (vs / (double)lo->nfeat) + 1e-12;
        for (int64_t e = 0; e < n; e++) {
            int64_t f = feat_of(&t->shape, lo, e);
            double mu = lo->sum[f] / (double)lo->cnt, v = lo->sq[f] / (double)lo->cnt - mu * mu;
            imp[e] = (float)((v > 0 ? v : 0) + eps);
        }
    }
    int m = sqzc_share_array_weighted(t->f32, imp, n, bits, fp16, cb);
    free(imp);
    if (m < 0) return -1;
    if (lo && lo->aware) bias_correct(g, lo, s->data[i], t->f32, &t->shape);
    if (lo && lo->aware && lo->bias_t >= 0 && bias_store(g, lo->bias_t, lo->bias_bits) != 0)
        return -1;
    sqzc_encoding e;
    memset(&e, 0, sizeof e);
    e.codebook_bits = bits_for(m);
    e.centroids = cb;
    e.n_centroids = m;
    e.centroid_f16 = fp16 == 1;
    e.huffman = huffman != 0;
    if (sqzc_tensor_set_encoding(g, s->tens[i], &e) != 0 ||
        sqzc_update_sparse_request(g, s->tens[i]) != 0)
        return -1;
    /* as sqzc_recipe_apply: dense or sparse by the Huffman-coded size */
    return sqzc_encoding_choose_layout(t->f32, (uint64_t)n, t->enc);
}

/* back to the imported weight and bias */
static int restore_layer(sqzc_graph *g, const csr_snapshot *s, const layer_opts *lo, int i) {
    if (lo && lo->bias0) {
        memcpy(g->tensors[lo->bias_t].f32, lo->bias0,
               (size_t)sqz_shape_numel(&g->tensors[lo->bias_t].shape) * sizeof(float));
        if (bias_store(g, lo->bias_t, lo->bias_bits) != 0) return -1;
    }
    return restore_one(g, s, i);
}

/* estimated encoded bytes of tensor t */
static int layer_bytes(const sqzc_graph *g, int t, double *bytes) {
    sqzc_layer_stats *ls = NULL;
    int n = sqzc_layer_stats_collect(g, &ls);
    if (n < 0) return -1;
    *bytes = 0;
    for (int k = 0; k < n; k++)
        if (ls[k].tensor && strcmp(ls[k].tensor, g->tensors[t].name) == 0) *bytes = ls[k].huffman;
    free(ls);
    return 0;
}

static void log_softmax(const float *z, int c, double *out) {
    double mx = z[0];
    for (int j = 1; j < c; j++) mx = z[j] > mx ? z[j] : mx;
    double s = 0;
    for (int j = 0; j < c; j++) s += exp((double)z[j] - mx);
    double l = mx + log(s);
    for (int j = 0; j < c; j++) out[j] = (double)z[j] - l;
}

static int argmax(const float *z, int c) {
    int b = 0;
    for (int j = 1; j < c; j++)
        if (z[j] > z[b]) b = j;
    return b;
}

/* ------------------------------------------------------------ search */

typedef struct search_ctx {
    const char *cmd;
    sqzc_graph *g;
    const eval_set *set;
    const csr_options *o;
    csr_snapshot snap;
    layer_opts *L;
    int nl, classes;
    double *ref_logp; /* n_calib x classes */
    int *ref_top;
    float *logits;
    int evaluated;
    uint8_t *base_pred, *pred; /* selection predictions: fp32, current */
    int gram_pass;             /* collect_stats fills the Gram matrices instead of the sums */
} search_ctx;

/* selection accuracy of g and the standard error of its drop against fp32
 * (points): the drop is (gained - lost) / N, its variance ~ flips / N^2 */
static int sel_eval(search_ctx *c, double *acc, double *sigma) {
    sqz_model *m = NULL;
    size_t size = 0;
    int rc = csr_graph_model(c->cmd, c->g, 0, &m, &size);
    if (rc != 0) return rc;
    eval_result res;
    rc = eval_run(c->cmd, m, c->set, c->o->first, c->o->count, c->o->batch, c->o->threads, c->pred,
                  &res);
    sqz_model_free(m);
    if (rc != 0) return rc;
    int flips = 0;
    for (int i = 0; i < c->o->count; i++) flips += c->pred[i] != c->base_pred[i];
    *acc = res.total ? (double)res.correct / res.total : 0.0;
    *sigma = 100.0 * sqrt((double)flips) / (double)c->o->count;
    c->evaluated++;
    return CLI_OK;
}

static int64_t attr_int(const sqzc_node *n, const char *name, int64_t dflt) {
    for (uint32_t a = 0; a < n->n_attr; a++)
        if (n->attrs[a].name && strcmp(n->attrs[a].name, name) == 0 && n->attrs[a].ints &&
            n->attrs[a].count >= 1)
            return n->attrs[a].ints[0];
    return dflt;
}

/* 1 when the float attribute is absent or equals 1 */
static int attr_is_one(const sqzc_node *n, const char *name) {
    for (uint32_t a = 0; a < n->n_attr; a++)
        if (n->attrs[a].name && strcmp(n->attrs[a].name, name) == 0)
            return n->attrs[a].floats && n->attrs[a].count == 1 && n->attrs[a].floats[0] == 1.0f;
    return 1;
}

/* Set up the layer's statistics bookkeeping; aware stays 0 for layers the
 * feature mapping does not cover (they get magnitude pruning only). */
static int layer_setup(const sqzc_graph *g, layer_opts *lo) {
    const sqzc_node *n = &g->nodes[lo->node];
    lo->bias_t = -1;
    lo->in_t = n->n_in > 0 ? n->in[0] : -1;
    int wt = sqzc_layer_weight(g, lo->node);
    const sqz_shape *ws = &g->tensors[wt].shape;
    if (lo->in_t < 0 || g->tensors[lo->in_t].f32) return 0;
    int64_t nout;
    if (n->op == SQZ_OP_CONV && ws->ndim >= 3) {
        int64_t grp = attr_int(n, "group", 1);
        if (grp < 1 || ws->dims[0] % grp != 0) return 0;
        lo->conv = 1;
        lo->nfeat = ws->dims[1] * grp;
        nout = ws->dims[0];
    } else if (n->op == SQZ_OP_GEMM && ws->ndim == 2 && attr_int(n, "transA", 0) == 0 &&
               attr_is_one(n, "alpha") && attr_is_one(n, "beta")) {
        lo->trans_b = attr_int(n, "transB", 0) != 0;
        lo->nfeat = lo->trans_b ? ws->dims[1] : ws->dims[0];
        nout = lo->trans_b ? ws->dims[0] : ws->dims[1];
    } else {
        return 0;
    }
    if (n->n_in > 2 && n->in[2] >= 0 && g->tensors[n->in[2]].f32 &&
        sqz_shape_numel(&g->tensors[n->in[2]].shape) == nout) {
        lo->bias_t = n->in[2];
        lo->bias0 = malloc((size_t)nout * sizeof *lo->bias0);
        if (!lo->bias0) return -1;
        memcpy(lo->bias0, g->tensors[lo->bias_t].f32, (size_t)nout * sizeof *lo->bias0);
    }
    lo->sum = calloc((size_t)lo->nfeat, sizeof *lo->sum);
    lo->sq = calloc((size_t)lo->nfeat, sizeof *lo->sq);
    if (!lo->sum || !lo->sq) return -1;
    lo->aware = 1; /* until the statistics say otherwise */
    return 0;
}

/* input feature of weight element e */
static int64_t feat_of(const sqz_shape *ws, const layer_opts *lo, int64_t e) {
    if (!lo->conv) return lo->trans_b ? e % ws->dims[1] : e / ws->dims[1];
    int64_t khkw = 1;
    for (int d = 2; d < ws->ndim; d++) khkw *= ws->dims[d];
    int64_t cg = ws->dims[1], per_o = cg * khkw, o = e / per_o, ci = (e / khkw) % cg;
    int64_t grp = lo->nfeat / cg, opg = ws->dims[0] / grp;
    return (o / opg) * cg + ci;
}

typedef struct stats_ctx {
    search_ctx *c;
    int *out_index; /* per layer: session output index, -1 = the graph input */
} stats_ctx;

static int stats_batch(void *vctx, const sqz_session *s, const float *in, int nb, int batch) {
    stats_ctx *sc = vctx;
    search_ctx *c = sc->c;
    for (int i = 0; i < c->nl; i++) {
        layer_opts *lo = &c->L[i];
        if (!lo->aware) continue;
        const float *x = in;
        int64_t numel;
        sqz_shape sh;
        if (sc->out_index[i] >= 0) {
            sqz_status st;
            memset(&st, 0, sizeof st);
            if (sqz_session_output(s, sc->out_index[i], &x, &sh, &st) != SQZ_OK || !x) {
                lo->aware = 0;
                continue;
            }
            numel = sqz_shape_numel(&sh);
        } else {
            numel = (int64_t)batch * c->set->imgs.h * c->set->imgs.w;
        }
        int64_t per = numel / batch, hw = lo->conv ? per / lo->nfeat : 1;
        if (numel % batch != 0 || per != lo->nfeat * hw || hw < 1) {
            lo->aware = 0; /* layout not understood: magnitude pruning */
            continue;
        }
        if (c->gram_pass) {
            if (!lo->gram || lo->conv) continue;
            int64_t D = lo->nfeat + 1;
            for (int b = 0; b < nb; b++) {
                const float *p = x + (size_t)b * (size_t)per;
                for (int64_t r = 0; r < D; r++) {
                    double xr = r < lo->nfeat ? p[r] : 1.0;
                    if (xr == 0.0) continue;
                    double *gr = lo->gram + r * D;
                    for (int64_t q = 0; q < lo->nfeat; q++) gr[q] += xr * p[q];
                    gr[lo->nfeat] += xr;
                }
            }
            continue;
        }
        for (int b = 0; b < nb; b++)
            for (int64_t f = 0; f < lo->nfeat; f++) {
                const float *p = x + (size_t)b * (size_t)per + (size_t)(f * hw);
                double a = 0, q = 0;
                for (int64_t k = 0; k < hw; k++) {
                    a += p[k];
                    q += (double)p[k] * p[k];
                }
                lo->sum[f] += a;
                lo->sq[f] += q;
            }
        lo->cnt += (int64_t)nb * hw;
    }
    return 0;
}

/* Input statistics of every layer on the calibration images of the fp32
 * model: the layer inputs become extra graph outputs of a temporary copy. */
static int collect_stats(search_ctx *c, int first, int count) {
    sqzc_graph *g = c->g;
    int rc = CLI_ERUNTIME;
    int32_t *outs = malloc(((size_t)g->n_outputs + (size_t)c->nl) * sizeof *outs);
    int *oi = malloc((size_t)c->nl * sizeof *oi);
    int32_t *saved = g->outputs;
    int n_saved = g->n_outputs, n = g->n_outputs;
    if (!outs || !oi) {
        free(outs);
        free(oi);
        cli_error(c->cmd, "out of memory");
        return CLI_ERUNTIME;
    }
    memcpy(outs, g->outputs, (size_t)n * sizeof *outs);
    for (int i = 0; i < c->nl; i++) {
        int t = c->L[i].in_t;
        oi[i] = -2;
        if (!c->L[i].aware) continue;
        int is_in = 0;
        for (int k = 0; k < g->n_inputs; k++) is_in |= g->inputs[k] == t;
        if (is_in) {
            oi[i] = -1;
            continue;
        }
        for (int k = 0; k < n; k++)
            if (outs[k] == t) oi[i] = k;
        if (oi[i] == -2) {
            oi[i] = n;
            outs[n++] = t;
        }
    }
    g->outputs = outs;
    g->n_outputs = n;
    sqz_model *m = NULL;
    size_t size;
    rc = csr_graph_model(c->cmd, g, 1, &m, &size);
    g->outputs = saved;
    g->n_outputs = n_saved;
    if (rc == 0) {
        stats_ctx sc = {c, oi};
        eval_result er;
        rc = eval_run_each(c->cmd, m, c->set, first, count, c->o->batch, c->o->threads, NULL, NULL,
                           0, stats_batch, &sc, &er);
        sqz_model_free(m);
    }
    for (int i = 0; i < c->nl; i++)
        if (!c->gram_pass && c->L[i].aware && c->L[i].cnt == 0) c->L[i].aware = 0;
    free(outs);
    free(oi);
    return rc;
}

typedef struct scored {
    float s;
    int64_t i;
} scored;

static int cmp_scored(const void *pa, const void *pb) {
    const scored *a = pa, *b = pb;
    if (a->s != b->s) return a->s < b->s ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* zero the round(sp * n) weights of least |w| * std(input feature): after the
 * bias correction below, removing w costs w^2 var(x) in output variance */
static int prune_aware(float *w, const sqz_shape *ws, const layer_opts *lo, float sp) {
    int64_t n = sqz_shape_numel(ws), k = (int64_t)llround((double)sp * (double)n);
    if (k <= 0) return 0;
    scored *a = malloc((size_t)n * sizeof *a);
    if (!a) return -1;
    for (int64_t e = 0; e < n; e++) {
        int64_t f = feat_of(ws, lo, e);
        double mu = lo->sum[f] / (double)lo->cnt, var = lo->sq[f] / (double)lo->cnt - mu * mu;
        a[e].s = (float)(fabs((double)w[e]) * (sqrt(var > 0 ? var : 0) + 1e-6));
        a[e].i = e;
    }
    qsort(a, (size_t)n, sizeof *a, cmp_scored);
    for (int64_t j = 0; j < k && j < n; j++) w[a[j].i] = 0.0f;
    free(a);
    return 0;
}

/* b' = b + (W - W') mean(x): the layer's mean output as before compression */
static void bias_correct(sqzc_graph *g, const layer_opts *lo, const float *w0, const float *w,
                         const sqz_shape *ws) {
    if (lo->bias_t < 0) return;
    float *b = g->tensors[lo->bias_t].f32;
    int64_t nout = sqz_shape_numel(&g->tensors[lo->bias_t].shape), n = sqz_shape_numel(ws);
    double *d = calloc((size_t)nout, sizeof *d);
    if (!d) return; /* correction is an improvement only; skip on OOM */
    for (int64_t e = 0; e < n; e++) {
        if (w0[e] == w[e]) continue;
        int64_t f = feat_of(ws, lo, e), o;
        if (lo->conv)
            o = e / (n / ws->dims[0]);
        else
            o = lo->trans_b ? e / ws->dims[1] : e % ws->dims[1];
        d[o] += ((double)w0[e] - (double)w[e]) * (lo->sum[f] / (double)lo->cnt);
    }
    for (int64_t o = 0; o < nout; o++) b[o] = (float)((double)lo->bias0[o] + d[o]);
    free(d);
}

/* damage (mean KL) and flip rate of g against the fp32 reference */
static int calib_damage(search_ctx *c, double *kl, double *flip) {
    sqz_model *m = NULL;
    size_t size = 0;
    int rc = csr_graph_model(c->cmd, c->g, 0, &m, &size);
    if (rc != 0) return rc;
    eval_result res;
    rc = eval_run_logits(c->cmd, m, c->set, c->o->first, c->o->n_calib, c->o->batch, c->o->threads,
                         NULL, c->logits, c->classes, &res);
    sqz_model_free(m);
    if (rc != 0) return rc;
    c->evaluated++;
    double s = 0, lq[256];
    int flips = 0;
    for (int i = 0; i < c->o->n_calib; i++) {
        const float *z = c->logits + (size_t)i * (size_t)c->classes;
        const double *lp = c->ref_logp + (size_t)i * (size_t)c->classes;
        log_softmax(z, c->classes, lq);
        for (int j = 0; j < c->classes; j++) s += exp(lp[j]) * (lp[j] - lq[j]);
        flips += argmax(z, c->classes) != c->ref_top[i];
    }
    *kl = s / c->o->n_calib;
    *flip = (double)flips / c->o->n_calib;
    return CLI_OK;
}

static int sensitivity(search_ctx *c) {
    const csr_options *o = c->o;
    for (int i = 0; i < c->nl; i++) {
        layer_opts *lo = &c->L[i];
        sqzc_tensor *t = &c->g->tensors[c->snap.tens[i]];
        int64_t n = sqz_shape_numel(&t->shape);
        for (int k = 0; k < NOPT; k++) {
            lo->damage[k] = INFINITY;
            lo->bytes[k] = INFINITY;
        }
        for (int s = 0; s < NSP; s++) {
            if (n < SMALL_LAYER && kSp[s] > 0.5f) break;
            int row_ok = 0;
            for (int b = 0; b < NB; b++) {
                int k = s * NB + b;
                if (apply_layer(c->g, &c->snap, lo, i, kSp[s], kBits[b], o->fp16, o->huffman) !=
                        0 ||
                    layer_bytes(c->g, c->snap.tens[i], &lo->bytes[k]) != 0) {
                    cli_error(c->cmd, "out of memory");
                    return CLI_ERUNTIME;
                }
                double kl, flip;
                int rc = calib_damage(c, &kl, &flip);
                if (rc != 0) return rc;
                if (flip > MAX_FLIP) break;
                lo->damage[k] = kl;
                row_ok = 1;
            }
            if (!row_ok) break;
        }
        if (restore_layer(c->g, &c->snap, lo, i) != 0) {
            cli_error(c->cmd, "out of memory");
            return CLI_ERUNTIME;
        }
        if (getenv("SQZ_SEARCH_DEBUG"))
            for (int k = 0; k < NOPT; k++)
                if (isfinite(lo->damage[k]))
                    fprintf(stderr, "  sp %.2f bits %d: %.0f B, KL %.5f\n", (double)kSp[k / NB],
                            kBits[k % NB], lo->bytes[k], lo->damage[k]);
        if (o->verbose) {
            int best = -1;
            for (int k = 0; k < NOPT; k++)
                if (isfinite(lo->damage[k]) && (best < 0 || lo->bytes[k] < lo->bytes[best]))
                    best = k;
            fprintf(stderr, "sqz %s: sensitivity %s (%lld weights): %s\n", c->cmd,
                    c->g->nodes[lo->node].name ? c->g->nodes[lo->node].name : "?", (long long)n,
                    best < 0 ? "every option flips > 10% of the predictions" : "ok");
        }
    }
    return CLI_OK;
}

/* option per layer minimizing bytes + lambda * damage */
static void allocate(const search_ctx *c, double lambda, int *pick) {
    for (int i = 0; i < c->nl; i++) {
        const layer_opts *lo = &c->L[i];
        int best = -1;
        double bv = 0;
        for (int k = 0; k < NOPT; k++) {
            if (!isfinite(lo->damage[k])) continue;
            double v = lo->bytes[k] + lambda * lo->damage[k];
            if (best < 0 || v < bv) {
                best = k;
                bv = v;
            }
        }
        /* every option unusable: the gentlest one (8 bits, dense) */
        pick[i] = best < 0 ? 0 : best;
    }
}

static double alloc_bytes(const search_ctx *c, const int *pick) {
    double b = 0;
    for (int i = 0; i < c->nl; i++) b += c->L[i].bytes[pick[i]];
    return b;
}

static int apply_alloc(search_ctx *c, const int *pick) {
    for (int i = 0; i < c->nl; i++) {
        int k = pick[i];
        if (apply_layer(c->g, &c->snap, &c->L[i], i, kSp[k / NB], kBits[k % NB], c->o->fp16,
                        c->o->huffman) != 0)
            return -1;
    }
    return 0;
}

/* the allocation as a recipe: per-layer sparsity and bits */
static int alloc_recipe(const search_ctx *c, const int *pick, sqzc_recipe *r, char *err,
                        size_t err_len) {
    int count[9] = {0};
    for (int i = 0; i < c->nl; i++) count[kBits[pick[i] % NB]]++;
    int common = 8;
    for (int b = 2; b <= 8; b++)
        if (count[b] > count[common]) common = b;
    char v[32], key[600];
    snprintf(v, sizeof v, "%d", common);
    if (sqzc_recipe_set(r, "share.bits", v, "search", err, err_len) != 0) return -1;
    snprintf(v, sizeof v, "%d", c->o->bias_bits);
    if (sqzc_recipe_set(r, "bias.bits", v, "search", err, err_len) != 0) return -1;
    if (sqzc_recipe_set(r, c->o->fp16 == SQZC_CENTROIDS_GRID ? "share.grid" : "share.fp16",
                        c->o->fp16 ? "1" : "0", "search", err, err_len) != 0 ||
        sqzc_recipe_set(r, "huffman", c->o->huffman ? "1" : "0", "search", err, err_len) != 0)
        return -1;
    snprintf(v, sizeof v, "%g", c->o->target_drop);
    if (sqzc_recipe_set(r, "target.drop", v, "search", err, err_len) != 0) return -1;
    for (int i = 0; i < c->nl; i++) {
        const char *name = c->g->nodes[c->L[i].node].name;
        float sp = kSp[pick[i] / NB];
        int bits = kBits[pick[i] % NB];
        if (!name) {
            snprintf(err, err_len, "search: a layer without a node name");
            return -1;
        }
        if (sp > 0.0f) {
            snprintf(key, sizeof key, "prune.layer.%s", name);
            snprintf(v, sizeof v, "%g", (double)sp);
            if (sqzc_recipe_set(r, key, v, "search", err, err_len) != 0) return -1;
        }
        if (bits != common) {
            snprintf(key, sizeof key, "share.layer.%s", name);
            snprintf(v, sizeof v, "%d", bits);
            if (sqzc_recipe_set(r, key, v, "search", err, err_len) != 0) return -1;
        }
    }
    return 0;
}

int csr_search(const char *cmd, sqzc_graph *g, const eval_set *set, const csr_options *o,
               sqzc_recipe *chosen, csr_result *res) {
    search_ctx c;
    memset(&c, 0, sizeof c);
    memset(res, 0, sizeof *res);
    c.cmd = cmd;
    c.g = g;
    c.set = set;
    c.o = o;
    int rc = CLI_ERUNTIME;
    char err[512];
    int *pick = NULL, *best_pick = NULL, *try_pick = NULL;
    if (o->n_calib < 1 || o->count < 1 || o->n_calib > o->count) {
        cli_error(cmd, "search: bad selection (%d calibration of %d images)", o->n_calib, o->count);
        return CLI_EUSAGE;
    }
    if (csr_snapshot_take(g, &c.snap) != 0) goto oom;
    if (c.snap.n == 0) {
        cli_error(cmd,
                  "search: the model has no Conv/ConvTranspose/Gemm/MatMul weight to compress");
        rc = CLI_EUSAGE;
        goto done;
    }
    c.nl = c.snap.n;
    c.L = calloc((size_t)c.nl, sizeof *c.L);
    pick = calloc((size_t)c.nl, sizeof *pick);
    best_pick = calloc((size_t)c.nl, sizeof *best_pick);
    try_pick = calloc((size_t)c.nl, sizeof *try_pick);
    if (!c.L || !pick || !best_pick || !try_pick) goto oom;
    for (int i = 0, k = 0; i < g->n_nodes && k < c.nl; i++)
        if (sqzc_layer_weight(g, i) == c.snap.tens[k]) c.L[k++].node = i;
    int n_aware = 0;
    if (o->aware) {
        for (int i = 0; i < c.nl; i++)
            if (layer_setup(g, &c.L[i]) != 0) goto oom;
        if ((rc = collect_stats(&c, o->first, o->n_calib)) != 0) goto done;
        /* Gram matrices of the dense, not yet pruned Gemm layers' inputs on the
         * GRAM_IMAGES training images before the selection (fitting the least
         * squares on the images that score it would flatter it) */
        int ng = o->first < GRAM_IMAGES ? o->first : GRAM_IMAGES, n_gram = 0;
        for (int i = 0; i < c.nl && ng >= 64 && o->lsq; i++) {
            layer_opts *lo = &c.L[i];
            const sqzc_tensor *wt = &g->tensors[c.snap.tens[i]];
            int64_t n = sqz_shape_numel(&wt->shape), nz = 0;
            for (int64_t e = 0; e < n; e++) nz += wt->f32[e] == 0.0f;
            if (!lo->aware || lo->conv || lo->nfeat > GRAM_MAX_FEATURES || nz > 0) continue;
            lo->gram = calloc((size_t)((lo->nfeat + 1) * (lo->nfeat + 1)), sizeof *lo->gram);
            if (!lo->gram) goto oom;
            n_gram++;
        }
        if (n_gram > 0) {
            c.gram_pass = 1;
            rc = collect_stats(&c, o->first - ng, ng);
            c.gram_pass = 0;
            if (rc != 0) goto done;
            for (int i = 0; i < c.nl; i++) {
                layer_opts *lo = &c.L[i];
                if (!lo->gram) continue;
                int64_t D = lo->nfeat + 1;
                if (lo->gram[D * D - 1] < 1) { /* no rows */
                    free(lo->gram);
                    lo->gram = NULL;
                }
            }
            if (o->verbose)
                fprintf(stderr,
                        "sqz %s: least-squares pruning for %d Gemm layers (Gram on "
                        "training images %d..%d)\n",
                        cmd, n_gram, o->first - ng, o->first - 1);
        }
        rc = CLI_ERUNTIME;
        for (int i = 0; i < c.nl; i++) n_aware += c.L[i].aware;
        if (o->verbose)
            fprintf(stderr, "sqz %s: input statistics for %d of %d layers\n", cmd, n_aware, c.nl);
    }

    /* fp32 reference: logits on the calibration images, selection accuracy */
    {
        sqz_model *m = NULL;
        size_t size;
        if ((rc = csr_graph_model(cmd, g, 1, &m, &size)) != 0) goto done;
        eval_result er;
        if ((rc = eval_run(cmd, m, set, o->first, 1, 1, o->threads, NULL, &er)) != 0) {
            sqz_model_free(m);
            goto done;
        }
        int per = er.classes;
        if (per < 2 || per > 256) {
            sqz_model_free(m);
            cli_error(cmd,
                      "search: the first output has %lld values per image; a classifier "
                      "with 2..256 classes is needed",
                      (long long)per);
            rc = CLI_EUSAGE;
            goto done;
        }
        c.classes = per;
        c.logits = malloc((size_t)o->n_calib * (size_t)c.classes * sizeof *c.logits);
        c.ref_logp = malloc((size_t)o->n_calib * (size_t)c.classes * sizeof *c.ref_logp);
        c.ref_top = malloc((size_t)o->n_calib * sizeof *c.ref_top);
        c.base_pred = malloc((size_t)o->count);
        c.pred = malloc((size_t)o->count);
        if (!c.logits || !c.ref_logp || !c.ref_top || !c.base_pred || !c.pred) {
            sqz_model_free(m);
            goto oom;
        }
        rc = eval_run_logits(cmd, m, set, o->first, o->n_calib, o->batch, o->threads, NULL,
                             c.logits, c.classes, &er);
        if (rc == 0)
            rc = eval_run(cmd, m, set, o->first, o->count, o->batch, o->threads, c.base_pred, &er);
        sqz_model_free(m);
        if (rc != 0) goto done;
        res->base_acc = er.total ? (double)er.correct / er.total : 0.0;
        for (int i = 0; i < o->n_calib; i++) {
            const float *z = c.logits + (size_t)i * (size_t)c.classes;
            log_softmax(z, c.classes, c.ref_logp + (size_t)i * (size_t)c.classes);
            c.ref_top[i] = argmax(z, c.classes);
        }
        rc = CLI_ERUNTIME;
    }
    /* the biases as they will be stored (the reference above is the imported model) */
    for (int i = 0; i < c.nl; i++) c.L[i].bias_bits = o->bias_bits;
    if (csr_finalize(g, o->bias_bits) != 0) goto oom;
    if ((rc = sensitivity(&c)) != 0) goto done;
    rc = CLI_ERUNTIME;

    /* bisect log10(lambda): small lambda = small model */
    double lo = -3.0, hi = 12.0, best_bytes = INFINITY, best_acc = -1, safe_acc = -1;
    double last_sigma = 0;
    int have_best = 0;
    for (int it = 0; it < 16; it++) {
        double ll = it == 0 ? hi : it == 1 ? lo : 0.5 * (lo + hi);
        allocate(&c, pow(10.0, ll), try_pick);
        double bytes = alloc_bytes(&c, try_pick);
        int same = it > 0 && memcmp(try_pick, pick, (size_t)c.nl * sizeof *pick) == 0;
        double acc = 0;
        if (!same) {
            if (apply_alloc(&c, try_pick) != 0) goto oom;
            if ((rc = sel_eval(&c, &acc, &last_sigma)) != 0) goto done;
            rc = CLI_ERUNTIME;
            memcpy(pick, try_pick, (size_t)c.nl * sizeof *pick);
            res->acc = acc;
        } else {
            acc = res->acc;
        }
        double drop = (res->base_acc - acc) * 100.0;
        int ok = drop + o->z * last_sigma <= o->target_drop + 1e-9;
        if (o->verbose && !same)
            fprintf(stderr,
                    "sqz %s: lambda 1e%.2f: ~%.0f weight bytes, selection accuracy %.2f%% "
                    "(drop %+.2f, +- %.2f) %s\n",
                    cmd, ll, bytes, acc * 100.0, drop, last_sigma, ok ? "ok" : "too much");
        if (it == 0) {
            safe_acc = acc;
            memcpy(best_pick, try_pick, (size_t)c.nl * sizeof *pick);
            best_acc = acc;
            best_bytes = bytes;
            if (!ok) break; /* even the gentlest allocation misses the target */
            have_best = 1;
            continue;
        }
        if (ok && bytes <= best_bytes) {
            memcpy(best_pick, try_pick, (size_t)c.nl * sizeof *pick);
            best_bytes = bytes;
            best_acc = acc;
        }
        if (it == 1) {
            if (ok) break; /* the smallest allocation passes */
            continue;
        }
        if (ok)
            hi = ll;
        else
            lo = ll;
        if (hi - lo < 0.02) break;
    }
    (void)safe_acc;
    /* greedy refinement: move one layer at a time to a cheaper option (the
     * least damage per byte saved) while the selection still passes */
    if (have_best && o->refine > 0) {
        char *tried = calloc((size_t)c.nl * NOPT, 1);
        if (!tried) goto oom;
        for (int step = 0; step < o->refine; step++) {
            int bl = -1, bk = -1;
            double br = INFINITY;
            for (int i = 0; i < c.nl; i++) {
                const layer_opts *lo = &c.L[i];
                int cur = best_pick[i];
                for (int k = 0; k < NOPT; k++) {
                    if (!isfinite(lo->damage[k]) || tried[i * NOPT + k] ||
                        lo->bytes[k] >= lo->bytes[cur])
                        continue;
                    double r = (lo->damage[k] - lo->damage[cur]) / (lo->bytes[cur] - lo->bytes[k]);
                    if (r < br) {
                        br = r;
                        bl = i;
                        bk = k;
                    }
                }
            }
            if (bl < 0) break;
            tried[bl * NOPT + bk] = 1;
            memcpy(try_pick, best_pick, (size_t)c.nl * sizeof *pick);
            try_pick[bl] = bk;
            double acc = 0, bytes = alloc_bytes(&c, try_pick);
            if (apply_alloc(&c, try_pick) != 0) {
                free(tried);
                goto oom;
            }
            double sig = 0;
            if ((rc = sel_eval(&c, &acc, &sig)) != 0) {
                free(tried);
                goto done;
            }
            rc = CLI_ERUNTIME;
            double drop = (res->base_acc - acc) * 100.0;
            int ok = drop + o->z * sig <= o->target_drop + 1e-9;
            if (o->verbose)
                fprintf(stderr,
                        "sqz %s: refine %s -> sparsity %.2f bits %d: ~%.0f weight bytes, "
                        "selection accuracy %.2f%% (drop %+.2f, +- %.2f) %s\n",
                        cmd, g->nodes[c.L[bl].node].name ? g->nodes[c.L[bl].node].name : "?",
                        (double)kSp[bk / NB], kBits[bk % NB], bytes, acc * 100.0, drop, sig,
                        ok ? "ok" : "too much");
            if (ok) {
                memcpy(best_pick, try_pick, (size_t)c.nl * sizeof *pick);
                best_bytes = bytes;
                best_acc = acc;
            }
        }
        free(tried);
    }
    res->within_target = have_best;
    res->acc = best_acc;
    res->bytes = best_bytes;
    res->evaluated = c.evaluated;
    if (alloc_recipe(&c, best_pick, chosen, err, sizeof err) != 0) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    if (n_aware > 0) {
        /* the statistics-driven steps are not recipe keys: apply the choice
         * directly and record the recipe with a note */
        if (apply_alloc(&c, best_pick) != 0) goto oom;
        char *text = sqzc_recipe_to_text(chosen);
        {
            size_t tl = text ? strlen(text) : 0;
            char *meta = text ? malloc(tl + 256) : NULL;
            if (!meta) {
                free(text);
                goto oom;
            }
            snprintf(meta, tl + 256,
                     "%s# search: %d of %d layers pruned by |w| * std(input) and bias-corrected "
                     "(input means of training images %d..%d)\n",
                     text, n_aware, c.nl, o->first, o->first + o->n_calib - 1);
            int mr = sqzc_graph_set_meta(g, "compress.recipe", meta);
            free(meta);
            free(text);
            if (mr != 0) goto oom;
        }
        res->aware_layers = n_aware;
    } else {
        /* the recipe reproduces the allocation exactly (same prune / share calls) */
        if (csr_snapshot_restore(g, &c.snap) != 0) goto oom;
        if (sqzc_recipe_apply(g, chosen, err, sizeof err) != 0) {
            cli_error(cmd, "%s", err);
            goto done;
        }
    }
    rc = CLI_OK;
    goto done;
oom:
    cli_error(cmd, "out of memory");
    rc = CLI_ERUNTIME;
done:
    free(pick);
    free(best_pick);
    free(try_pick);
    for (int i = 0; c.L && i < c.nl; i++) {
        free(c.L[i].sum);
        free(c.L[i].sq);
        free(c.L[i].bias0);
        free(c.L[i].gram);
        for (int k = 0; k < NSP; k++) free(c.L[i].lsq[k]);
    }
    free(c.L);
    free(c.logits);
    free(c.ref_logp);
    free(c.ref_top);
    free(c.base_pred);
    free(c.pred);
    csr_snapshot_free(&c.snap);
    return rc;
}
