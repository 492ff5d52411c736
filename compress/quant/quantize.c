/* quantize.c - the INT8 quantizer's driver (sqzc/quant.h): which nodes run
 * in int8, weight and bias quantization with bias correction, the per-layer
 * report with the fp32 fallback, and the rewrite of the graph into the
 * runtime's int8 representation. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "gptq.h"
#include "qinternal.h"

/* K_FOLLOW: int8 when its input is, output shares the input's parameters
 * (views, MaxPool, Transpose / Slice); K_ACT: int8 when its input is, own parameters (Relu /
 * Clip requantize: a ReLU after an Add then uses all 256 levels); K_OWN: int8
 * when all inputs are, own parameters. */
enum { K_OTHER = 0, K_COMPUTE, K_FOLLOW, K_OWN, K_ACT };

/* images of the empirical bias correction at most */
#define Q_EBC_IMAGES 256

typedef struct qlayer { /* per compute node (Conv / Gemm / MatMul) */
    int ok;             /* quantizable */
    int axis;           /* weight channel axis */
    int nc;             /* channels */
    float *sw;          /* weight scales [nc] */
    int8_t *wq;         /* int8 weights */
    float *wdq;         /* dequantized weights (simulation) */
    float *bias;        /* corrected fp32 bias [nc] or NULL */
    double w_sqnr;
    /* local simulation accumulators */
    double s_yy, s_ee, s_yq, s_qq;
    /* empirical bias correction: per-channel sums of the pre-activation
     * output error (int8 input and weights vs fp32) */
    double *eb_sum;
    uint64_t eb_n;
    int seq; /* weights and bias set by sequential GPTQ (no other correction) */
} qlayer;

typedef struct qstate {
    qctx q;
    int *kind;    /* per node */
    qlayer *L;    /* per node */
    int *src;     /* per tensor: tensor whose params it shares (itself if own) */
    float *scale; /* per tensor (valid where src == itself and observed) */
    int32_t *zp;
    double *lo, *hi;
    int *qnode;    /* per node: runs in int8 */
    int *dom;      /* per tensor: 1 int8 */
    char *relu_in; /* per tensor: an Add / pool / Concat output read only by a Relu, whose
                    * parameters it takes (its requantization then is the Relu) */
} qstate;

static int node_kind(const sqzc_graph *g, int ni) {
    const sqzc_node *n = &g->nodes[ni];
    switch (n->op) {
    case SQZ_OP_CONV:
    case SQZ_OP_GEMM:
    case SQZ_OP_MATMUL:
        return K_COMPUTE;
    case SQZ_OP_RELU:
    case SQZ_OP_CLIP:
    case SQZ_OP_SIGMOID: /* int8: 256-entry tables in the runtime */
    case SQZ_OP_HARD_SIGMOID:
    case SQZ_OP_HARD_SWISH:
    case SQZ_OP_TANH:
        return n->n_out == 1 && n->n_in >= 1 ? K_ACT : K_OTHER;
    case SQZ_OP_MAXPOOL:
    case SQZ_OP_RESHAPE:
    case SQZ_OP_FLATTEN:
    case SQZ_OP_SQUEEZE:
    case SQZ_OP_UNSQUEEZE:
    case SQZ_OP_IDENTITY:
    case SQZ_OP_TRANSPOSE: /* data movement: the runtime copies int8 keeping X's params */
    case SQZ_OP_SLICE:
        return n->n_out == 1 && n->n_in >= 1 ? K_FOLLOW : K_OTHER;
    case SQZ_OP_ADD:
    case SQZ_OP_MUL: /* QLinearMul, with broadcasting (squeeze-excite gates) */
    case SQZ_OP_AVGPOOL:
    case SQZ_OP_GLOBAL_AVGPOOL:
    case SQZ_OP_CONCAT:
        return n->n_out == 1 ? K_OWN : K_OTHER;
    default:
        return K_OTHER;
    }
}

/* A Conv / Gemm with a fused Sigmoid, HardSigmoid, HardSwish or Tanh (a
 * squeeze-excite gate) becomes the layer and the activation node again, so
 * both can run in int8 (the activation as a table) and the layer's output is
 * calibrated; the fp32 result is the same. -1 on OOM. */
static char *name_with(const char *a, const char *b);
static int add_like(sqzc_graph *g, int t, const char *suffix);
static int split_table_acts(sqzc_graph *g, char *err, size_t err_len) {
    const int n0 = g->n_nodes;
    int any = 0;
    for (int i = 0; i < n0; i++) {
        const sqzc_node *n = &g->nodes[i];
        if ((n->op != SQZ_OP_CONV && n->op != SQZ_OP_GEMM) || n->n_out != 1 || n->out[0] < 0)
            continue;
        sqz_node v;
        sqzc_node_view(g, i, &v);
        int act = (int)sqz_attr_int(&v, "sqz_act", SQZ_ACT_NONE);
        int op = act == SQZ_ACT_SIGMOID        ? SQZ_OP_SIGMOID
                 : act == SQZ_ACT_HARD_SIGMOID ? SQZ_OP_HARD_SIGMOID
                 : act == SQZ_ACT_HARD_SWISH   ? SQZ_OP_HARD_SWISH
                 : act == SQZ_ACT_TANH         ? SQZ_OP_TANH
                                               : 0;
        if (!op) continue;
        float alpha = sqz_attr_float(&v, "sqz_act_alpha", 0.2f);
        float beta = sqz_attr_float(&v, "sqz_act_beta", 0.5f);
        int y = n->out[0];
        int pre = add_like(g, y, "_preact");
        char *nm = name_with(g->nodes[i].name, "_act");
        int32_t in1[1] = {pre}, out1[1] = {y};
        int k = pre >= 0 && nm ? sqzc_add_node(g, op, nm, 1, in1, 1, out1) : -1;
        free(nm);
        if (k < 0 || sqzc_node_set_int(g, i, "sqz_act", SQZ_ACT_NONE) != 0 ||
            (op == SQZ_OP_HARD_SIGMOID && (sqzc_node_set_float(g, k, "alpha", alpha) != 0 ||
                                           sqzc_node_set_float(g, k, "beta", beta) != 0))) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
        g->nodes[i].out[0] = pre;
        any = 1;
    }
    return any ? sqzc_graph_toposort(g, err, err_len) : 0;
}

/* Can compute node ni run in int8? Sets the weight axis; why on refusal. */
static int compute_ok(const sqzc_graph *g, int ni, int *axis, int *nc, const char **why) {
    const sqzc_node *n = &g->nodes[ni];
    sqz_node v;
    sqzc_node_view(g, ni, &v);
    if (n->n_in < 2 || n->in[1] < 0 || !g->tensors[n->in[1]].f32) {
        *why = "weight is not a constant";
        return 0;
    }
    int act = (int)sqz_attr_int(&v, "sqz_act", SQZ_ACT_NONE);
    if (act != SQZ_ACT_NONE && act != SQZ_ACT_RELU && act != SQZ_ACT_CLIP) {
        *why = "fused activation other than ReLU / Clip";
        return 0;
    }
    const sqzc_tensor *w = &g->tensors[n->in[1]];
    int has_b = n->n_in > 2 && n->in[2] >= 0;
    if (has_b && !g->tensors[n->in[2]].f32) {
        *why = "bias is not a constant";
        return 0;
    }
    if (n->op == SQZ_OP_CONV) {
        if (w->shape.ndim != 4) {
            *why = "not a 2-D convolution";
            return 0;
        }
        *axis = 0;
    } else if (n->op == SQZ_OP_GEMM) {
        if (w->shape.ndim != 2 || sqz_attr_int(&v, "transA", 0) != 0 ||
            sqz_attr_float(&v, "alpha", 1.0f) != 1.0f ||
            (has_b && sqz_attr_float(&v, "beta", 1.0f) != 1.0f)) {
            *why = "Gemm with transA / alpha / beta";
            return 0;
        }
        *axis = sqz_attr_int(&v, "transB", 0) ? 0 : 1;
    } else {
        if (w->shape.ndim != 2 || has_b) {
            *why = "MatMul with a non-2-D weight";
            return 0;
        }
        *axis = 1;
    }
    *nc = (int)w->shape.dims[*axis];
    if (has_b && sqz_shape_numel(&g->tensors[n->in[2]].shape) != *nc) {
        *why = "bias is not one value per output channel";
        return 0;
    }
    return 1;
}

/* ---- weights ---- */
/* a layer's weights split over the threads from this many elements */
#define Q_WPAR_MIN 32768
/* smallest fp16-representable value >= v for v in the fp16 normal range
 * [2^-14, 65504]; other values are returned unchanged (stored as f32) */
static float f16_ceil(float v) {
    if (!(v >= 0x1p-14f && v <= 65504.0f)) return v;
    int e;
    float m = frexpf(v, &e);       /* v = m * 2^e, m in [0.5, 1) */
    float r = ceilf(m * 2048.0f);  /* 11 significant bits */
    return ldexpf(r / 2048.0f, e); /* r == 2048 gives 2^e: still exact */
}

/* Weight scale per channel by the squared error of the rounded weights
 * instead of max-abs / 127: candidates s = f16_ceil(r * max / 127) for r in
 * [0.70, 1] (step 1/128), the one with the least sum over the channel of
 * (w - s * clamp(round(w / s), -127, 127))^2 kept (clipping a few outliers
 * for a finer step; the MSE weight quantizer of e.g. Banner et al., "Post
 * training 4-bit quantization", NeurIPS 2019, and Nagel et al., "A White
 * Paper on Neural Network Quantization", 2021, section 3.4). max-abs is
 * candidate r = 1, so the error never grows. */
#define Q_WMSE_STEPS 39

/* threads for one layer's weight loops: the quantizer's threads for a large
 * layer when not already inside a parallel loop over the layers */
static int q_wthreads = 1;
static int wthreads(const qlayer *L, int64_t n) {
    (void)L;
#if defined(_OPENMP)
    if (n >= Q_WPAR_MIN && !omp_in_parallel() && q_wthreads > 1) return q_wthreads;
#else
    (void)n;
#endif
    return 1;
}

static int weight_scales_mse(qlayer *L, const float *wf, int64_t rows, int64_t cols) {
    const int nc = L->nc;
    double *err = malloc(sizeof *err * (size_t)nc * Q_WMSE_STEPS);
    float *cand = malloc(sizeof *cand * (size_t)nc * Q_WMSE_STEPS);
    if (!err || !cand) {
        free(err);
        free(cand);
        return -1;
    }
    for (int c = 0; c < nc; c++)
        for (int k = 0; k < Q_WMSE_STEPS; k++) {
            /* sw[c] is f16_ceil(max / 127); r from 1 down */
            float r = 1.0f - (float)k / 128.0f;
            cand[(size_t)c * Q_WMSE_STEPS + k] = k == 0 ? L->sw[c] : f16_ceil(L->sw[c] * r);
            err[(size_t)c * Q_WMSE_STEPS + k] = 0;
        }
    /* each thread owns a range of channels (each channel's sums in the
     * same order whatever the thread count) */
    const int nt = wthreads(L, rows * cols);
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int t = 0; t < nt; t++) {
        const int c0 = (int)((int64_t)nc * t / nt), c1 = (int)((int64_t)nc * (t + 1) / nt);
        const int64_t r0 = L->axis == 0 ? c0 : 0, r1 = L->axis == 0 ? c1 : rows;
        const int64_t j0 = L->axis == 0 ? 0 : c0, j1 = L->axis == 0 ? cols : c1;
        for (int64_t r = r0; r < r1; r++)
            for (int64_t j = j0; j < j1; j++) {
                const float w = wf[r * cols + j];
                const int c = (int)(L->axis == 0 ? r : j);
                const float *cs = cand + (size_t)c * Q_WMSE_STEPS;
                double *ce = err + (size_t)c * Q_WMSE_STEPS;
                for (int k = 0; k < Q_WMSE_STEPS; k++) {
                    float q = rintf(w / cs[k]);
                    q = q > 127 ? 127 : q < -127 ? -127 : q;
                    float d = q * cs[k] - w;
                    ce[k] += (double)(d * d);
                }
            }
    }
    for (int c = 0; c < nc; c++) {
        int best = 0;
        const double *ce = err + (size_t)c * Q_WMSE_STEPS;
        for (int k = 1; k < Q_WMSE_STEPS; k++)
            if (ce[k] < ce[best]) best = k;
        if (L->sw[c] > 0x1p-14f) L->sw[c] = cand[(size_t)c * Q_WMSE_STEPS + best];
    }
    free(err);
    free(cand);
    return 0;
}

/* ---- GPTQ rounding (gptq.h) ---- */
/* images whose inputs make a layer's H at most (the empirical bias
 * correction's: the calibration cache keeps them) */
#define Q_GPTQ_IMAGES Q_EBC_IMAGES
/* samples (patch positions over the images) per input of a layer at most:
 * positions are taken with a stride beyond that (a 28x28 Conv with 144
 * inputs has 200k positions in 256 images; 18k determine its H as well and
 * cost a tenth) */
#define Q_GPTQ_SAMPLES_PER_INPUT 128
/* inputs per group at most (H is n^2 doubles, its factoring n^3): larger
 * layers round to nearest */
#define Q_GPTQ_MAX_N 2304

/* geometry of Conv ni's patches and its groups; 0 when
 * the layer's padding is not explicit (auto_pad SAME_*) or shapes are
 * missing */
static int conv_geom(const sqzc_graph *g, int ni, q_patch_geom *pg, int *groups) {
    const sqzc_node *n = &g->nodes[ni];
    const sqzc_tensor *x = &g->tensors[n->in[0]], *w = &g->tensors[n->in[1]],
                      *y = &g->tensors[n->out[0]];
    if (!x->has_shape || !y->has_shape || x->shape.ndim != 4 || y->shape.ndim != 4) return 0;
    sqz_node v;
    sqzc_node_view(g, ni, &v);
    const char *ap = sqz_attr_str(&v, "auto_pad", "NOTSET");
    if (ap[0] && strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0) return 0;
    const int64_t *st = NULL, *dl = NULL, *pd = NULL;
    int nst = sqz_attr_ints(&v, "strides", &st), ndl = sqz_attr_ints(&v, "dilations", &dl),
        npd = strcmp(ap, "VALID") == 0 ? -1 : sqz_attr_ints(&v, "pads", &pd);
    *groups = (int)sqz_attr_int(&v, "group", 1);
    memset(pg, 0, sizeof *pg);
    pg->cin = (int)w->shape.dims[1];
    pg->kh = (int)w->shape.dims[2];
    pg->kw = (int)w->shape.dims[3];
    pg->ih = (int)x->shape.dims[2];
    pg->iw = (int)x->shape.dims[3];
    pg->oh = (int)y->shape.dims[2];
    pg->ow = (int)y->shape.dims[3];
    pg->sh = nst == 2 ? (int)st[0] : 1;
    pg->sw = nst == 2 ? (int)st[1] : 1;
    pg->dh = ndl == 2 ? (int)dl[0] : 1;
    pg->dw = ndl == 2 ? (int)dl[1] : 1;
    pg->pt = npd == 4 ? (int)pd[0] : 0;
    pg->pl = npd == 4 ? (int)pd[1] : 0;
    return *groups >= 1 && (int64_t)pg->cin * *groups == x->shape.dims[1];
}

typedef struct gptq_acc {
    double **h;   /* per node: groups * n * n, or NULL */
    int n_images; /* images of the pass */
} gptq_acc;

/* positions of a layer's image taken: every stride-th, from an offset that
 * turns with the image (no grid aliasing) */
static int gptq_stride(int n, int np, int n_images) {
    double per_img = (double)Q_GPTQ_SAMPLES_PER_INPUT * n / (n_images > 0 ? n_images : 1);
    int st = per_img >= np ? 1 : (int)((double)np / per_img);
    return st < 1 ? 1 : st;
}

static int gptq_layer_acc(qctx *q, const qrunner *r, int first, int ni, double *h, int n_img) {
    const sqzc_graph *g = q->g;
    const sqzc_node *nd = &g->nodes[ni];
    const qgptq *G = &q->gptq[ni];
    sqz_shape xs;
    const float *x = q_obs_data(r, q->obs_of[nd->in[0]], &xs);
    if (!x) return 0;
    const int n = G->n, count = (int)xs.dims[0];
    const int ld = q_gptq_ld(n);
    if (nd->op == SQZ_OP_CONV) {
        q_patch_geom pg;
        int groups = 1;
        conv_geom(g, ni, &pg, &groups);
        const int np = pg.oh * pg.ow, st = gptq_stride(n, np, n_img);
        float *buf = malloc(sizeof *buf * (size_t)ld * (size_t)np);
        if (!buf) return -1;
        const size_t per_grp = (size_t)pg.cin * pg.ih * pg.iw;
        for (int b = 0; b < count; b++)
            for (int gi = 0; gi < groups; gi++) {
                /* every st-th position from an offset turning with the image */
                const int off = (first + b) % st, k = (np - off + st - 1) / st;
                q_gptq_patches_at(&pg, x + ((size_t)b * groups + gi) * per_grp, buf, ld, off, st);
                q_gptq_gram(h + (size_t)gi * n * n, n, k, buf, ld);
            }
        free(buf);
        return 0;
    }
    /* Gemm / MatMul: rows of n inputs, the samples */
    const int64_t rows = sqz_shape_numel(&xs) / n;
    float *buf = malloc(sizeof *buf * (size_t)ld * (size_t)(rows > 0 ? rows : 1));
    if (!buf) return -1;
    for (int64_t p = 0; p < rows; p++) {
        memcpy(buf + (size_t)p * ld, x + (size_t)p * n, sizeof *buf * (size_t)n);
        for (int i = n; i < ld; i++) buf[(size_t)p * ld + i] = 0.0f;
    }
    q_gptq_gram(h, n, (int)rows, buf, ld);
    free(buf);
    return 0;
}

static int gptq_fn(qctx *q, const qrunner *r, int first, int count, void *user) {
    (void)count;
    gptq_acc *A = user;
    int bad = 0;
    /* a layer per thread: its H summed in image order whatever the threads */
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(q_threads(q)) if (q_threads(q) > 1)
#endif
    for (int ni = 0; ni < q->g->n_nodes; ni++) {
        if (!A->h[ni]) continue;
        if (gptq_layer_acc(q, r, first, ni, A->h[ni], A->n_images) != 0) {
#if defined(_OPENMP)
#pragma omp atomic write
#endif
            bad = 1;
        }
    }
    if (bad) snprintf(q->err, q->err_len, "out of memory");
    return bad ? -1 : 0;
}

/* GPTQ's act order: pm = the inputs by decreasing H diagonal (ties: input
 * order), hp = the upper triangle of H permuted so (n x n, from the upper
 * triangle of h) */
static void act_order(const double *h, int n, int *pm, double *hp) {
    for (int k = 0; k < n; k++) pm[k] = k;
    for (int k = 1; k < n; k++) { /* insertion sort */
        int v = pm[k], j = k;
        for (; j > 0 && h[(size_t)pm[j - 1] * n + pm[j - 1]] < h[(size_t)v * n + v]; j--)
            pm[j] = pm[j - 1];
        pm[j] = v;
    }
    for (int a = 0; a < n; a++)
        for (int b = a; b < n; b++) {
            int ia = pm[a], ib = pm[b];
            hp[(size_t)a * n + b] = ia <= ib ? h[(size_t)ia * n + ib] : h[(size_t)ib * n + ia];
        }
}

/* q->gptq: H of every compute layer's inputs over the calibration images,
 * then its factor; once per calibration. 0 ok, -1 with q->err. */
static int gptq_prepare(qstate *S) {
    qctx *q = &S->q;
    const sqzc_graph *g = q->g;
    const int nn = g->n_nodes;
    if (q->gptq) return 0;
    q->gptq = calloc((size_t)nn + 1, sizeof *q->gptq);
    q->n_gptq = q->gptq ? nn : 0;
    gptq_acc A = {calloc((size_t)nn + 1, sizeof(double *)), 0};
    int rc = -1;
    if (!q->gptq || !A.h) goto oom;
    int any = 0;
    for (int i = 0; i < nn; i++) {
        const sqzc_node *nd = &g->nodes[i];
        if (S->kind[i] != K_COMPUTE || !S->L[i].ok || q->obs_of[nd->in[0]] < 0) continue;
        const sqzc_tensor *w = &g->tensors[nd->in[1]];
        int n, groups = 1;
        if (nd->op == SQZ_OP_CONV) {
            q_patch_geom pg;
            if (!conv_geom(g, i, &pg, &groups)) continue;
            n = pg.cin * pg.kh * pg.kw;
        } else {
            n = (int)w->shape.dims[S->L[i].axis == 0 ? 1 : 0];
            const sqzc_tensor *x = &g->tensors[nd->in[0]];
            if (!x->has_shape || x->shape.ndim < 1 || x->shape.dims[x->shape.ndim - 1] != n)
                continue;
        }
        if (n < 1 || n > Q_GPTQ_MAX_N) continue;
        A.h[i] = calloc((size_t)groups * n * n, sizeof(double));
        q->gptq[i].perm = malloc(sizeof(int) * (size_t)groups * n);
        if (!A.h[i] || !q->gptq[i].perm) goto oom;
        q->gptq[i].n = n;
        q->gptq[i].groups = groups;
        any = 1;
    }
    if (any) {
        A.n_images = q->n_images < Q_GPTQ_IMAGES ? q->n_images : Q_GPTQ_IMAGES;
        if (q_for_batches(q, A.n_images, "gptq statistics", gptq_fn, &A) != 0) goto out;
    }
    double t_f = q_now();
    q_prof("  gptq H", &t_f);
    /* columns by decreasing H[i][i] (GPTQ's "act order": the inputs that
     * matter most rounded first, while the most columns are left to take
     * their error), H permuted, factored; a layer per thread */
    int oom = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(q_threads(q)) if (q_threads(q) > 1)
#endif
    for (int i = 0; i < nn; i++) {
        qgptq *G = &q->gptq[i];
        if (!A.h[i]) continue;
        const int n = G->n;
        double *hp = malloc(sizeof *hp * (size_t)n * n);
        G->u = hp ? malloc(sizeof *G->u * (size_t)G->groups * n * n) : NULL;
        if (!G->u) {
            free(hp);
#if defined(_OPENMP)
#pragma omp atomic write
#endif
            oom = 1;
            continue;
        }
        for (int gi = 0; gi < G->groups && G->n; gi++) {
            const double *h = A.h[i] + (size_t)gi * n * n;
            int *pm = G->perm + (size_t)gi * n;
            act_order(h, n, pm, hp);
            int frc = q_gptq_factor(hp, n, Q_GPTQ_DAMP);
            if (frc < 0) {
#if defined(_OPENMP)
#pragma omp atomic write
#endif
                oom = 1;
            }
            if (frc != 0) { /* not positive definite: the layer rounds to nearest */
                G->n = 0;
                break;
            }
            memcpy(G->u + (size_t)gi * n * n, hp, sizeof *hp * (size_t)n * n);
        }
        free(hp);
    }
    q_prof("  gptq factor", &t_f);
    if (oom) goto oom;
    rc = 0;
    goto out;
oom:
    snprintf(q->err, q->err_len, "out of memory");
out:
    if (A.h)
        for (int i = 0; i < nn; i++) free(A.h[i]);
    free(A.h);
    return rc;
}

/* L->wq of layer ni by GPTQ with the scales L->sw */
static int gptq_weights(qstate *s, int ni, const qgptq *G, const float *wf, int64_t rows,
                        int64_t cols) {
    qlayer *L = &s->L[ni];
    const int n = G->n, nc = L->nc, rows_g = nc / G->groups;
    if ((int64_t)rows_g * G->groups != nc || (int64_t)nc * n != rows * cols) return 0;
    /* rows of n inputs per output channel: the weight itself (axis 0), or
     * its transpose ([K, N], axis 1) */
    float *wt = NULL;
    int8_t *qt = L->wq;
    if (L->axis == 1) {
        wt = malloc(sizeof *wt * (size_t)nc * n);
        qt = malloc((size_t)nc * n);
        if (!wt || !qt) {
            free(wt);
            if (qt != L->wq) free(qt);
            return -1;
        }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < cols; j++) wt[(size_t)j * n + r] = wf[r * cols + j];
    }
    const float *w = wt ? wt : wf;
    int bad = 0;
    const int nt = wthreads(L, (int64_t)nc * n * 16);
    (void)nt;
    /* rows (output channels) split over the threads; each row's rounding
     * is its own */
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int t = 0; t < nt; t++) {
        const int c0 = (int)((int64_t)nc * t / nt), c1 = (int)((int64_t)nc * (t + 1) / nt);
        for (int c = c0; c < c1; c++) {
            const int gi = c / rows_g;
            if (q_gptq_round(G->u + (size_t)gi * n * n, G->perm + (size_t)gi * n, n,
                             w + (size_t)c * n, L->sw + c, 0, 1, qt + (size_t)c * n) != 0) {
#if defined(_OPENMP)
#pragma omp atomic write
#endif
                bad = 1;
            }
        }
    }
    if (L->axis == 1) {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < cols; j++) L->wq[r * cols + j] = qt[(size_t)j * n + r];
        free(wt);
        free(qt);
    }
    return bad ? -1 : 0;
}

/* rintf(x) for |x| < 2^23 (round half to even, the sign of x kept: -0.3
 * gives -0): adding and subtracting 2^23 rounds to an integer in the
 * current (nearest-even) mode; branch-free, so a row's loop vectorizes.
 * Larger |x| (or inf) give a result >= 128 in magnitude (rounding is
 * monotone and 128 maps to itself), which the clamp to +-127 after it
 * turns into what rintf's would. */
static inline float rint_small(float x) {
    const float a = fabsf(x);
    return copysignf((a + 0x1p23f) - 0x1p23f, x);
}

/* One row of cols weights p: q[j] = clamp(rint(p[j] / s), -127, 127) (gq: the
 * GPTQ values in q clamped), dq[j] = q[j] * s, s the channel's scale (sc:
 * per element, else s). */
static inline float round_one(float w, float s, float qg, int gq) {
    float qv = qg;
    if (!gq) {
        qv = rint_small(w / s);
    }
    /* (two selects, both comparisons always made: vectorizable) */
    qv = qv > 127 ? 127 : qv;
    return qv < -127 ? -127 : qv;
}

static void round_row(const float *restrict p, float s, const float *restrict sc, int gq,
                      int64_t cols, int8_t *restrict q, float *restrict dq) {
    /* four loops (scale per row or per element, GPTQ or not): each without
     * a branch */
#define ROUND_LOOP(SJ, GQ)                                                                         \
    for (int64_t j = 0; j < cols; j++) {                                                           \
        const float sj = (SJ), qv = round_one(p[j], sj, (GQ) ? (float)q[j] : 0, (GQ));             \
        q[j] = (int8_t)qv;                                                                         \
        dq[j] = qv * sj;                                                                           \
    }
    if (sc && gq)
        ROUND_LOOP(sc[j], 1)
    else if (sc)
        ROUND_LOOP(sc[j], 0)
    else if (gq)
        ROUND_LOOP(s, 1)
    else
        ROUND_LOOP(s, 0)
#undef ROUND_LOOP
}

/* max |p[j]| over a row of cols (exact in any order) */
static inline float row_maxabs(const float *p, int64_t cols) {
    float m8[8] = {0, 0, 0, 0, 0, 0, 0, 0}; /* 8 lanes: vectorizes */
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8)
        for (int l = 0; l < 8; l++) {
            const float a = fabsf(p[j + l]);
            m8[l] = a > m8[l] ? a : m8[l];
        }
    float m = 0;
    for (; j < cols; j++) {
        const float a = fabsf(p[j]);
        m = a > m ? a : m;
    }
    for (int l = 0; l < 8; l++) m = m8[l] > m ? m8[l] : m;
    return m;
}

/* L->sw, L->wq, L->wdq of compute node ni from the weights wsrc (NULL: the
 * node's own), rounded by GPTQ with G (NULL: q->gptq[ni] when rounding is
 * gptq, else to nearest) */
static int quantize_weights(qstate *s, int ni, const float *wsrc, const qgptq *G) {
    sqzc_graph *g = s->q.g;
    qlayer *L = &s->L[ni];
    const sqzc_tensor *w = &g->tensors[g->nodes[ni].in[1]];
    int64_t n = sqz_shape_numel(&w->shape);
    L->sw = malloc(sizeof *L->sw * (size_t)L->nc);
    L->wq = malloc((size_t)n);
    L->wdq = malloc(sizeof *L->wdq * (size_t)n);
    if (!L->sw || !L->wq || !L->wdq) return -1;
    /* element e = r * cols + j has channel r (axis 0: rows of `inner`) or j
     * (axis 1: [K, N], rows of N): loops without a division per element */
    const int64_t inner = n / L->nc;
    const int64_t rows = L->axis == 0 ? L->nc : inner, cols = L->axis == 0 ? inner : L->nc;
    const float *wf = wsrc ? wsrc : w->f32;
    const int nt = wthreads(L, n);
    (void)nt; /* unused without OpenMP (the aarch64 cross build) */
    /* per-channel max |w| (exact in any order) */
    if (L->axis == 0) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
        for (int64_t r = 0; r < rows; r++) L->sw[r] = row_maxabs(wf + r * cols, cols);
    } else {
        float *restrict sw = L->sw;
        for (int c = 0; c < L->nc; c++) sw[c] = 0;
        for (int64_t r = 0; r < rows; r++) {
            const float *restrict p = wf + r * cols;
            for (int64_t j = 0; j < cols; j++) {
                const float a = fabsf(p[j]);
                sw[j] = a > sw[j] ? a : sw[j];
            }
        }
    }
    /* scales rounded up to fp16-exact values (|w| / s stays <= 127; at most
     * 2^-11 relative change): the writer then stores them as f16 (sqz/format.h
     * SQZ_QF_F16_SCALES), 2 bytes a channel instead of 4; an all-zero channel
     * gets 2^-14, the smallest normal f16 */
    for (int c = 0; c < L->nc; c++)
        L->sw[c] = L->sw[c] > 0 ? f16_ceil(L->sw[c] / 127.0f) : 0x1p-14f;
    if (s->q.o->weight_mse && weight_scales_mse(L, wf, rows, cols) != 0) return -1;
    if (!G && s->q.o->rounding == SQZC_QR_GPTQ && s->q.gptq) G = &s->q.gptq[ni];
    const int gq = G && G->n > 0;
    if (gq && gptq_weights(s, ni, G, wf, rows, cols) != 0) return -1;
    /* rows in parallel; each row's signal / noise sums in float, summed over
     * the rows in row order in double afterwards. A row in two loops: its
     * int8 and dequantized values element by element (no chain between the
     * elements: vectorized), then its two sums in element order (the same
     * additions as one loop). */
    float *rs = malloc(sizeof *rs * 2 * (size_t)rows);
    if (!rs) return -1;
    const float *restrict swp = L->sw;
    int8_t *restrict wqp = L->wq;
    float *restrict wdqp = L->wdq;
    const int ax0 = L->axis == 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict p = wf + r * cols;
        int8_t *restrict qr = wqp + r * cols;
        float *restrict dr = wdqp + r * cols;
        if (ax0)
            round_row(p, swp[r], NULL, gq, cols, qr, dr);
        else
            round_row(p, 0, swp, gq, cols, qr, dr);
        float fs = 0, fn = 0;
        for (int64_t j = 0; j < cols; j++) {
            const float d = dr[j] - p[j];
            fs += p[j] * p[j];
            fn += d * d;
        }
        rs[2 * r] = fs;
        rs[2 * r + 1] = fn;
    }
    double sig = 0, noise = 0;
    for (int64_t r = 0; r < rows; r++) {
        sig += rs[2 * r];
        noise += rs[2 * r + 1];
    }
    free(rs);
    L->w_sqnr = noise > 0 ? 10 * log10(sig / noise) : INFINITY;
    return 0;
}

/* Bias correction (Nagel et al. 2019, section 4.2, with the input's
 * per-channel means measured on the calibration set): E[y_q - y] per output
 * channel = sum over the weights of (w_q - w) * E[x of that input channel]. */
static int correct_bias(qstate *s, int ni) {
    sqzc_graph *g = s->q.g;
    const sqzc_node *nd = &g->nodes[ni];
    qlayer *L = &s->L[ni];
    const sqzc_tensor *w = &g->tensors[nd->in[1]];
    L->bias = calloc((size_t)L->nc, sizeof *L->bias);
    if (!L->bias) return -1;
    if (nd->n_in > 2 && nd->in[2] >= 0)
        memcpy(L->bias, g->tensors[nd->in[2]].f32, sizeof *L->bias * (size_t)L->nc);
    if (!s->q.o->bias_correction || nd->op == SQZ_OP_MATMUL) return 0;
    int oi = s->q.obs_of[nd->in[0]];
    const qchan *ch = oi >= 0 ? &s->q.ch[oi] : NULL;
    if (!ch || ch->c <= 0 || !ch->per_channel) return 0;
    const double inv = 1.0 / (double)ch->per_channel;
    if (nd->op == SQZ_OP_CONV) {
        sqz_node v;
        sqzc_node_view(g, ni, &v);
        int64_t groups = sqz_attr_int(&v, "group", 1);
        int64_t cout = w->shape.dims[0], cin_g = w->shape.dims[1];
        int64_t k = w->shape.dims[2] * w->shape.dims[3], cout_g = cout / groups;
        if (cin_g * groups != ch->c) return 0;
        const int nt = wthreads(L, cout * cin_g * k);
        (void)nt; /* unused without OpenMP */
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
        for (int64_t o = 0; o < cout; o++) {
            double d = 0;
            int64_t gi = o / cout_g;
            for (int64_t ci = 0; ci < cin_g; ci++) {
                double ex = ch->sum[gi * cin_g + ci] * inv;
                const size_t base = ((size_t)o * (size_t)cin_g + (size_t)ci) * (size_t)k;
                double e = 0;
                for (int64_t j = 0; j < k; j++) e += (double)L->wdq[base + j] - w->f32[base + j];
                d += e * ex;
            }
            L->bias[o] -= (float)d;
        }
    } else { /* Gemm: B [K, N] (axis 1) or [N, K] (axis 0) */
        int64_t K = L->axis == 1 ? w->shape.dims[0] : w->shape.dims[1];
        if (K != ch->c) return 0;
        double *d = calloc((size_t)L->nc, sizeof *d);
        if (!d) return -1;
        /* row by row in memory order (axis 1: rows of N channels) */
        const int64_t rows = L->axis == 1 ? K : L->nc, cols = L->axis == 1 ? L->nc : K;
        /* each thread owns a range of channels (each channel's sum in row order) */
        const int nt = wthreads(L, rows * cols), nc = L->nc;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
        for (int t = 0; t < nt; t++) {
            const int64_t c0 = (int64_t)nc * t / nt, c1 = (int64_t)nc * (t + 1) / nt;
            const int64_t r0 = L->axis == 1 ? 0 : c0, r1 = L->axis == 1 ? rows : c1;
            const int64_t j0 = L->axis == 1 ? c0 : 0, j1 = L->axis == 1 ? c1 : cols;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t j = j0; j < j1; j++) {
                    const size_t e = (size_t)(r * cols + j);
                    const int64_t c = L->axis == 1 ? j : r, kk = L->axis == 1 ? r : j;
                    d[c] += ((double)L->wdq[e] - w->f32[e]) * ch->sum[kk] * inv;
                }
        }
        for (int c = 0; c < L->nc; c++) L->bias[c] -= (float)d[c];
        free(d);
    }
    return 0;
}

/* Row sums of nr (1 or 4) rows of cols weights p (dq: dequantized, a row
 * apart), each in element order as quantize_weights' and correct_bias'
 * loops: fs[l] += p^2, fn[l] += (dq - p)^2 in float and, with ex,
 * d[l] += ((double)dq - p) * ex[j] * inv. The rows' chains of dependent
 * additions interleave: four rows cost about what one did. */
static inline void rows_sums(int nr, const float *restrict p, const float *restrict dq,
                             int64_t cols, const double *restrict ex, double inv, float *fs,
                             float *fn, double *d) {
    float s4[4] = {0, 0, 0, 0}, n4[4] = {0, 0, 0, 0};
    double d4[4] = {0, 0, 0, 0};
    for (int64_t j = 0; j < cols; j++)
        for (int l = 0; l < nr; l++) {
            const float w = p[l * cols + j], e = dq[l * cols + j] - w;
            s4[l] += w * w;
            n4[l] += e * e;
            if (ex) d4[l] += ((double)dq[l * cols + j] - w) * ex[j] * inv;
        }
    for (int l = 0; l < nr; l++) {
        fs[l] = s4[l];
        fn[l] = n4[l];
        d[l] = d4[l];
    }
}

/* A Gemm layer with a channel a row (transB: W [N, K]) rounded to nearest
 * with max-abs scales: its max |w|, scale, int8 and dequantized values,
 * signal / noise sums and bias correction are all per row, so one loop over
 * blocks of four rows does quantize_weights' and correct_bias' work (each
 * row read while in L1), with the same values: fused_begin (the arrays,
 * correct_bias' conditions), fused_rows on any split of the blocks over the
 * threads, fused_end (the layer's SQNR, row sums in row order). */
typedef struct qfused {
    int ni;
    int bc; /* bias corrected */
    double inv;
    const double *ex; /* input channel sums */
    float *rs;        /* per row: signal, noise sums */
} qfused;

/* 1 such a layer (begun), 0 not, -1 out of memory */
static int fused_begin(qstate *s, int ni, qfused *f) {
    sqzc_graph *g = s->q.g;
    const sqzc_node *nd = &g->nodes[ni];
    qlayer *L = &s->L[ni];
    const sqzc_quant_options *o = s->q.o;
    if (nd->op != SQZ_OP_GEMM || L->axis != 0 || o->weight_mse || o->rounding != SQZC_QR_NEAREST)
        return 0;
    const int64_t rows = L->nc, n = rows * g->tensors[nd->in[1]].shape.dims[1];
    f->ni = ni;
    L->sw = malloc(sizeof *L->sw * (size_t)rows);
    L->wq = malloc((size_t)n);
    L->wdq = malloc(sizeof *L->wdq * (size_t)n);
    L->bias = calloc((size_t)rows, sizeof *L->bias);
    f->rs = malloc(sizeof *f->rs * 2 * (size_t)rows);
    if (!L->sw || !L->wq || !L->wdq || !L->bias || !f->rs) {
        free(f->rs);
        f->rs = NULL;
        return -1;
    }
    if (nd->n_in > 2 && nd->in[2] >= 0)
        memcpy(L->bias, g->tensors[nd->in[2]].f32, sizeof *L->bias * (size_t)rows);
    /* correct_bias' conditions */
    const int oi = s->q.obs_of[nd->in[0]];
    const qchan *ch = oi >= 0 ? &s->q.ch[oi] : NULL;
    f->bc = o->bias_correction && ch && ch->c > 0 && ch->per_channel && n / rows == ch->c;
    f->ex = f->bc ? ch->sum : NULL;
    f->inv = f->bc ? 1.0 / (double)ch->per_channel : 0;
    return 1;
}

/* blocks [b0, b1) of four rows (the last block: the rows left) */
static void fused_rows(qstate *s, const qfused *f, int64_t b0, int64_t b1) {
    const sqzc_graph *g = s->q.g;
    qlayer *L = &s->L[f->ni];
    const sqzc_tensor *w = &g->tensors[g->nodes[f->ni].in[1]];
    const int64_t rows = L->nc, cols = w->shape.dims[1];
    const float *wf = w->f32;
    for (int64_t b = b0; b < b1; b++) {
        const int64_t r0 = 4 * b, nr = rows - r0 < 4 ? rows - r0 : 4;
        for (int64_t r = r0; r < r0 + nr; r++) {
            /* (quantize_weights' scale: fp16-exact, 2^-14 for a zero row) */
            const float m = row_maxabs(wf + r * cols, cols);
            L->sw[r] = m > 0 ? f16_ceil(m / 127.0f) : 0x1p-14f;
            round_row(wf + r * cols, L->sw[r], NULL, 0, cols, L->wq + r * cols, L->wdq + r * cols);
        }
        float fs[4], fn[4];
        double d[4];
        const float *p = wf + r0 * cols, *dq = L->wdq + r0 * cols;
        if (nr == 4)
            rows_sums(4, p, dq, cols, f->ex, f->inv, fs, fn, d);
        else
            for (int64_t l = 0; l < nr; l++)
                rows_sums(1, p + l * cols, dq + l * cols, cols, f->ex, f->inv, fs + l, fn + l,
                          d + l);
        for (int64_t l = 0; l < nr; l++) {
            f->rs[2 * (r0 + l)] = fs[l];
            f->rs[2 * (r0 + l) + 1] = fn[l];
            if (f->bc) L->bias[r0 + l] -= (float)d[l];
        }
    }
}

static int64_t fused_blocks(const qstate *s, const qfused *f) {
    return (s->L[f->ni].nc + 3) / 4;
}

static void fused_end(qstate *s, qfused *f) {
    qlayer *L = &s->L[f->ni];
    double sig = 0, noise = 0;
    for (int64_t r = 0; r < L->nc; r++) {
        sig += f->rs[2 * r];
        noise += f->rs[2 * r + 1];
    }
    free(f->rs);
    f->rs = NULL;
    L->w_sqnr = noise > 0 ? 10 * log10(sig / noise) : INFINITY;
}

/* such a layer on its own, its blocks split over the threads (1 done, 0 not
 * such a layer, -1 out of memory) */
static int gemm_rows_fused(qstate *s, int ni) {
    qfused f;
    const int rc = fused_begin(s, ni, &f);
    if (rc != 1) return rc;
    const int64_t nb = fused_blocks(s, &f);
    const int nt =
        wthreads(&s->L[ni], sqz_shape_numel(&s->q.g->tensors[s->q.g->nodes[ni].in[1]].shape));
    (void)nt; /* unused without OpenMP */
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t b = 0; b < nb; b++) fused_rows(s, &f, b, b + 1);
    fused_end(s, &f);
    return 1;
}

/* ---- domains: which nodes run in int8 ---- */
static void decide_domains(qstate *s) {
    sqzc_graph *g = s->q.g;
    for (int t = 0; t < g->n_tensors; t++) s->dom[t] = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const sqzc_node *n = &g->nodes[i];
        int q = 0;
        if (n->op == SQZ_OP_INVALID) continue;
        switch (s->kind[i]) {
        case K_COMPUTE:
            q = s->L[i].ok;
            break;
        case K_FOLLOW:
        case K_ACT:
            q = s->dom[n->in[0]];
            break;
        case K_OWN: {
            q = 1;
            for (uint32_t k = 0; k < n->n_in; k++)
                if (n->in[k] < 0 || !s->dom[n->in[k]]) q = 0;
            if (n->op == SQZ_OP_ADD && q) {
                const sqz_shape *a = &g->tensors[n->in[0]].shape, *b = &g->tensors[n->in[1]].shape;
                q = a->ndim == b->ndim && memcmp(a->dims, b->dims, sizeof(int64_t) * a->ndim) == 0;
            }
            break;
        }
        default:
            q = 0;
        }
        /* every int8 output needs calibrated (or shared) parameters */
        for (uint32_t k = 0; k < n->n_out && q; k++) {
            int t = s->src[n->out[k]];
            if (t < 0 || s->q.obs_of[t] < 0) q = 0;
        }
        s->qnode[i] = q;
        for (uint32_t k = 0; k < n->n_out; k++) s->dom[n->out[k]] = q;
    }
}

static void tensor_params(const qstate *s, int t, float *scale, int32_t *zp) {
    int r = s->src[t];
    *scale = s->scale[r];
    *zp = s->zp[r];
}

/* Observed index whose statistics choose tensor t's range: t's own, or, when
 * t is only read by a chain of followers sharing its parameters (views,
 * MaxPool), those of the chain's end, the values the next layers actually
 * read. For MaxPool they differ: its output holds the window maxima, so a
 * range clipped on the conv output's histogram (kl, percentile, mse) clips far
 * more of what the next conv reads; and clipping t to the pooled range changes
 * no pooled value (max commutes with the monotone clamp). */
static int consumed_stats(const qstate *s, int t) {
    const sqzc_graph *g = s->q.g;
    int cur = t;
    for (int guard = 0; guard < g->n_nodes; guard++) {
        if (sqzc_consumer_count(g, cur) != 1) break;
        int is_out = 0;
        for (int k = 0; k < g->n_outputs; k++) is_out |= g->outputs[k] == cur;
        if (is_out) break;
        int j = -1;
        for (int i = 0; i < g->n_nodes && j < 0; i++)
            if (g->nodes[i].op != SQZ_OP_INVALID && g->nodes[i].n_in > 0 &&
                g->nodes[i].in[0] == cur)
                j = i;
        if (j < 0 || s->kind[j] != K_FOLLOW || g->nodes[j].n_in != 1) break;
        int y = g->nodes[j].out[0];
        if (s->src[y] != t || s->q.obs_of[y] < 0) break;
        cur = y;
    }
    return s->q.obs_of[cur];
}

/* ---- per-layer simulation on a subset ---- */
static int run_view(sqz_node view, const sqz_shape *ins, const float **ind, const float **prep,
                    int no_act, float **out, sqz_shape *osh, char *err, size_t err_len);
/* node ni on inputs ind (shapes ins); prep: the data given to the kernel's
 * prepare (constants; NULL for the activations) */
static int run_node(const sqzc_graph *g, int ni, const sqz_shape *ins, const float **ind,
                    const float **prep, int no_act, float **out, sqz_shape *osh, char *err,
                    size_t err_len) {
    sqz_node view;
    sqzc_node_view(g, ni, &view);
    return run_view(view, ins, ind, prep, no_act, out, osh, err, err_len);
}

/* a compute layer (view) on inputs ind, its constants (weights, bias) prepared */
static int run_layer_view(const sqz_node *view, const sqz_shape *ins, const float **ind, int no_act,
                          float **out, sqz_shape *osh, char *err, size_t err_len) {
    const float *pd[4] = {NULL, ind[1], view->n_inputs > 2 ? ind[2] : NULL, NULL};
    return run_view(*view, ins, ind, pd, no_act, out, osh, err, err_len);
}

static int run_layer(const sqzc_graph *g, int ni, const sqz_shape *ins, const float **ind,
                     int no_act, float **out, sqz_shape *osh, char *err, size_t err_len) {
    sqz_node view;
    sqzc_node_view(g, ni, &view);
    return run_layer_view(&view, ins, ind, no_act, out, osh, err, err_len);
}

/* the node `view` (its op, attributes and input count) on inputs ind */
static int run_view(sqz_node view, const sqz_shape *ins, const float **ind, const float **prep,
                    int no_act, float **out, sqz_shape *osh, char *err, size_t err_len) {
    const sqz_op_impl *impl = NULL;
    /* no_act: the fused activation dropped (pre-activation output) */
    static const int64_t act_none = SQZ_ACT_NONE;
    sqz_attr attrs[32];
    if (no_act && view.n_attrs <= 32) {
        for (uint32_t k = 0; k < view.n_attrs; k++) {
            attrs[k] = view.attrs[k];
            if (strcmp(attrs[k].name, "sqz_act") == 0) attrs[k].ints = &act_none;
        }
        view.attrs = attrs;
    }
    sqz_op_ctx c;
    memset(&c, 0, sizeof c);
    char kerr[256] = "";
    float *od[1] = {NULL};
    c.node = &view;
    c.n_in = view.n_inputs;
    c.n_out = 1;
    c.in_shape = ins;
    c.in_data = prep;
    c.out_shape = osh;
    c.out_data = od;
    c.num_threads = 1;
    c.err = kerr;
    c.err_len = sizeof kerr;
    /* the runtime's fast fp32 kernels first (the simulation of a 224x224 model
     * on the scalar reference takes seconds), the reference when they decline */
    const sqz_op_impl *cand[8];
    int nc = sqz_fast_ops(view.op, cand, 8);
    for (int i = 0; i < nc && !impl; i++) {
        sqz_op_ctx t = c;
        if (cand[i]->prepare(&t) == 0) {
            c = t;
            impl = cand[i];
        } else if (t.params && cand[i]->release) {
            cand[i]->release(t.params);
        }
    }
    kerr[0] = '\0';
    int bad = 0;
    if (!impl) {
        impl = sqz_ref_op(view.op);
        bad = !impl || impl->prepare(&c) != 0;
    }
    if (bad) {
        snprintf(err, err_len, "node '%s': reference kernel: %s", view.name, kerr);
        return -1;
    }
    int64_t ne = sqz_shape_numel(osh);
    od[0] = malloc(sizeof(float) * (size_t)(ne > 0 ? ne : 1));
    void *scratch = c.scratch_bytes ? aligned_alloc(64, (c.scratch_bytes + 63) / 64 * 64) : NULL;
    if (!od[0] || (c.scratch_bytes && !scratch)) {
        free(od[0]);
        free(scratch);
        if (c.params && impl->release) impl->release(c.params);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    c.scratch = scratch;
    c.in_data = ind;
    impl->run(&c);
    free(scratch);
    if (c.params && impl->release) impl->release(c.params);
    *out = od[0];
    return 0;
}

/* Quantize + dequantize for the simulation: multiplication by 1 / scale and
 * round half to even by the 1.5 * 2^23 trick (|q| <= 255 here), i.e. what
 * QuantizeLinear computes up to the last ulp of x / scale. */
static inline float fq1(float x, float inv, float sc, float lo, float hi) {
    float q = x * inv;
    q = q < lo ? lo : q > hi ? hi : q;
    q = (q + 12582912.0f) - 12582912.0f;
    return q * sc;
}

#if defined(__SSE2__)
/* fq1 on 4 lanes (clamp by min / max: differs from fq1 only for NaN) */
static inline __m128 fq4(__m128 x, __m128 inv, __m128 sc, __m128 lo, __m128 hi) {
    const __m128 magic = _mm_set1_ps(12582912.0f);
    __m128 q = _mm_min_ps(_mm_max_ps(_mm_mul_ps(x, inv), lo), hi);
    return _mm_mul_ps(_mm_sub_ps(_mm_add_ps(q, magic), magic), sc);
}
#endif

static void fake_quant(const float *x, float *y, size_t n, float sc, int32_t zp) {
    const float inv = 1.0f / sc, lo = (float)(-128 - zp), hi = (float)(127 - zp);
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 vi = _mm_set1_ps(inv), vs = _mm_set1_ps(sc), vl = _mm_set1_ps(lo),
                 vh = _mm_set1_ps(hi);
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(y + i, fq4(_mm_loadu_ps(x + i), vi, vs, vl, vh));
#endif
    for (; i < n; i++) y[i] = fq1(x[i], inv, sc, lo, hi);
}

/* accumulate sum y^2, (y - v)^2, y v, v^2 with v = fake-quantized src:
 * float partial sums over blocks of 256 (4 lanes), double overall */
static void acc_err(const float *y, const float *src, size_t n, float sc, int32_t zp, double *yy,
                    double *ee, double *yq, double *qq) {
    const float inv = 1.0f / sc, lo = (float)(-128 - zp), hi = (float)(127 - zp);
    double a = 0, b = 0, c = 0, d = 0;
    size_t k = 0;
#if defined(__SSE2__)
    const __m128 vi = _mm_set1_ps(inv), vs = _mm_set1_ps(sc), vl = _mm_set1_ps(lo),
                 vh = _mm_set1_ps(hi);
    while (k + 4 <= n) {
        size_t e = n - k < 256 ? k + (n - k) / 4 * 4 : k + 256;
        __m128 sa = _mm_setzero_ps(), sb = sa, sc4 = sa, sd = sa;
        for (; k < e; k += 4) {
            __m128 yv = _mm_loadu_ps(y + k);
            __m128 v = fq4(_mm_loadu_ps(src + k), vi, vs, vl, vh);
            __m128 er = _mm_sub_ps(yv, v);
            sa = _mm_add_ps(sa, _mm_mul_ps(yv, yv));
            sb = _mm_add_ps(sb, _mm_mul_ps(er, er));
            sc4 = _mm_add_ps(sc4, _mm_mul_ps(yv, v));
            sd = _mm_add_ps(sd, _mm_mul_ps(v, v));
        }
        float t[16];
        _mm_storeu_ps(t, sa);
        _mm_storeu_ps(t + 4, sb);
        _mm_storeu_ps(t + 8, sc4);
        _mm_storeu_ps(t + 12, sd);
        a += (double)(t[0] + t[1]) + (double)(t[2] + t[3]);
        b += (double)(t[4] + t[5]) + (double)(t[6] + t[7]);
        c += (double)(t[8] + t[9]) + (double)(t[10] + t[11]);
        d += (double)(t[12] + t[13]) + (double)(t[14] + t[15]);
    }
#endif
    for (; k < n; k++) {
        float v = fq1(src[k], inv, sc, lo, hi);
        float e = y[k] - v;
        a += (double)(y[k] * y[k]);
        b += (double)(e * e);
        c += (double)(y[k] * v);
        d += (double)(v * v);
    }
    *yy += a;
    *ee += b;
    *yq += c;
    *qq += d;
}

/* The per-layer report's simulation, planned from the graph before the
 * rewrite (rplan_make): it then reads the plan, the layers' quantized weights
 * and the observed data only, never the graph, and can run while the graph
 * is rewritten and written (finish). */
typedef struct rlayer {
    int ni;             /* compute node (its qlayer: wdq, sw, bias read; s_* summed) */
    int xi, yi;         /* observed input and output */
    sqz_node view;      /* op, name and attributes (the graph's: the rewrite adds nodes and
                         * changes inputs, never a node's attributes or name), inputs in[] */
    int32_t in[3], out; /* (only their count and shapes are read) */
    sqz_shape ins[3];   /* weights' and bias' shapes (ins[0]: the input's, per run) */
    float sx, sy;       /* input and output parameters */
    int32_t zx, zy;
} rlayer;

typedef struct rplan {
    int n_obs;
    sqz_shape *sh; /* [n_obs] observed tensors' shapes (graph batch) */
    char *want;    /* [n_obs] output quantization simulated: 1; against its Relu's result: 2 */
    float *sc;     /* [n_obs] parameters */
    int32_t *zp;
    double (*acc)[4]; /* [n_obs] yy, ee, yq, qq */
    rlayer *ly;
    int n_ly;
    atomic_int next; /* next task (rplan_tasks) */
} rplan;

static void rplan_free(rplan *p) {
    free(p->sh);
    free(p->want);
    free(p->sc);
    free(p->zp);
    free(p->acc);
    free(p->ly);
    memset(p, 0, sizeof *p);
}

/* The plan of the simulation with S's parameters and domains. 0, -1 OOM. */
static int rplan_make(const qstate *s, rplan *p) {
    const qctx *q = &s->q;
    const sqzc_graph *g = q->g;
    memset(p, 0, sizeof *p);
    const size_t no = (size_t)q->n_obs + 1;
    p->n_obs = q->n_obs;
    p->sh = malloc(no * sizeof *p->sh);
    p->want = calloc(no, 1);
    p->sc = calloc(no, sizeof *p->sc);
    p->zp = calloc(no, sizeof *p->zp);
    p->acc = calloc(no, sizeof *p->acc);
    p->ly = malloc(((size_t)g->n_nodes + 1) * sizeof *p->ly);
    if (!p->sh || !p->want || !p->sc || !p->zp || !p->acc || !p->ly) return -1;
    atomic_init(&p->next, 0);
    for (int i = 0; i < q->n_obs; i++) {
        const int t = q->obs[i];
        p->sh[i] = g->tensors[t].shape;
        if (!s->dom[t] && t != q->input) continue;
        p->want[i] = s->relu_in[t] ? 2 : 1;
        tensor_params(s, t, &p->sc[i], &p->zp[i]);
    }
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const qlayer *L = &s->L[ni];
        if (s->kind[ni] != K_COMPUTE || !L->ok) continue;
        const sqzc_node *n = &g->nodes[ni];
        rlayer *ly = &p->ly[p->n_ly];
        ly->ni = ni;
        ly->xi = q->obs_of[n->in[0]];
        ly->yi = q->obs_of[n->out[0]];
        if (ly->xi < 0 || ly->yi < 0) continue;
        tensor_params(s, n->in[0], &ly->sx, &ly->zx);
        tensor_params(s, n->out[0], &ly->sy, &ly->zy);
        sqzc_node_view(g, ni, &ly->view);
        ly->in[0] = n->in[0];
        ly->in[1] = n->in[1];
        ly->in[2] = n->n_in > 2 ? n->in[2] : -1;
        ly->view.n_inputs = n->n_in;
        /* a Conv / Gemm without bias gets one only when correction made it non-zero */
        if (n->op != SQZ_OP_MATMUL && L->bias && (n->n_in < 3 || n->in[2] < 0)) {
            ly->in[2] = n->in[1]; /* any valid id: only shape / data are read */
            ly->view.n_inputs = 3;
        }
        ly->view.inputs = ly->in;
        ly->out = n->out[0]; /* (a copy: the rewrite renames graph outputs) */
        ly->view.outputs = &ly->out;
        ly->view.n_outputs = 1;
        ly->ins[1] = g->tensors[n->in[1]].shape;
        ly->ins[2] = (sqz_shape){1, {L->nc}};
        if (n->n_in > 2 && n->in[2] >= 0) ly->ins[2] = g->tensors[n->in[2]].shape;
        p->n_ly++;
    }
    return 0;
}

/* the report's simulation of layer ly on input x and fp32 output y (one
 * run's data) */
static int sim_layer(const qstate *s, const rlayer *ly, const float *x, const sqz_shape *xs,
                     const float *y, const sqz_shape *ys, char *err, size_t err_len) {
    qlayer *L = &s->L[ly->ni];
    size_t nx = (size_t)sqz_shape_numel(xs);
    float *xq = malloc(sizeof(float) * (nx ? nx : 1));
    float *bq = malloc(sizeof(float) * (size_t)L->nc);
    if (!xq || !bq) {
        free(xq);
        free(bq);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    fake_quant(x, xq, nx, ly->sx, ly->zx);
    for (int c = 0; c < L->nc; c++) {
        double bs = (double)ly->sx * L->sw[c];
        double b = L->bias ? nearbyint(L->bias[c] / bs) : 0;
        bq[c] = (float)(b * bs);
    }
    sqz_shape ins[3] = {*xs, ly->ins[1], ly->ins[2]};
    const float *ind[3] = {xq, L->wdq, bq};
    float *out = NULL;
    sqz_shape osh;
    int rc = run_layer_view(&ly->view, ins, ind, 0, &out, &osh, err, err_len);
    free(xq);
    free(bq);
    if (rc != 0) return -1;
    size_t ny = (size_t)sqz_shape_numel(ys);
    if ((size_t)sqz_shape_numel(&osh) != ny) {
        free(out);
        snprintf(err, err_len, "node '%s': simulated output size differs", ly->view.name);
        return -1;
    }
    acc_err(y, out, ny, ly->sy, ly->zy, &L->s_yy, &L->s_ee, &L->s_yq, &L->s_qq);
    free(out);
    return 0;
}

/* output quantization of observed tensor i (data y, ne values); 0, -1 OOM */
static int sim_tensor(rplan *p, int i, const float *y, size_t ne) {
    double *a = p->acc[i];
    if (p->want[i] == 2) { /* against the Relu's result, which its quantization computes */
        float *ry = malloc(sizeof(float) * (ne ? ne : 1));
        if (!ry) return -1;
        for (size_t k = 0; k < ne; k++) ry[k] = y[k] > 0 ? y[k] : 0;
        acc_err(ry, y, ne, p->sc[i], p->zp[i], &a[0], &a[1], &a[2], &a[3]);
        free(ry);
        return 0;
    }
    acc_err(y, y, ne, p->sc[i], p->zp[i], &a[0], &a[1], &a[2], &a[3]);
    return 0;
}

typedef struct sim_user {
    qstate *s;
    rplan *p;
} sim_user;

/* one run of the report (q_for_batches) */
static int sim_fn(qctx *q, const qrunner *r, int first, int count, void *user) {
    (void)first;
    (void)count;
    const sim_user *u = user;
    rplan *p = u->p;
    /* output quantization of every int8 tensor (one tensor per thread) */
    int oom = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(q_threads(q)) if (q_threads(q) > 1)
#endif
    for (int i = 0; i < q->n_obs; i++) {
        if (!p->want[i]) continue;
        sqz_shape sh;
        const float *y = q_obs_data(r, i, &sh);
        if (y && sim_tensor(p, i, y, (size_t)sqz_shape_numel(&sh)) != 0) {
#if defined(_OPENMP)
#pragma omp atomic write
#endif
            oom = 1;
        }
    }
    if (oom) {
        snprintf(q->err, q->err_len, "out of memory");
        return -1;
    }
    /* compute layers: int8 input, weights, int32 bias, int8 output (one
     * layer per thread at a time: each its own accumulators) */
    int bad = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(q_threads(q)) if (q_threads(q) > 1)
#endif
    for (int k = 0; k < p->n_ly; k++) {
        const rlayer *ly = &p->ly[k];
        sqz_shape xs, ys;
        const float *x = q_obs_data(r, ly->xi, &xs), *y = q_obs_data(r, ly->yi, &ys);
        char e[512];
        if (x && y && sim_layer(u->s, ly, x, &xs, y, &ys, e, sizeof e) != 0) {
#if defined(_OPENMP)
#pragma omp critical(q_sim_err)
#endif
            if (!bad) {
                bad = 1;
                snprintf(q->err, q->err_len, "%s", e);
            }
        }
    }
    return bad ? -1 : 0;
}

/* Data of observed tensor i in cached batch b, its first n images (shape
 * from the plan: the graph's may be changing) */
static const float *rplan_data(const qcache *c, const rplan *p, const qcache_batch *b, int i, int n,
                               sqz_shape *sh) {
    *sh = p->sh[i];
    sh->dims[0] = n;
    return b->data + c->off1[i] * b->count;
}

/* The report from the cached images [0, nrep) (the cache holds them), task by
 * task: a task is one layer's or one tensor's simulation over all of them, in
 * image order (the same sums as sim_fn's), the next task taken from p->next
 * by whichever thread is free. 0, -1 with err. */
static int rplan_tasks(const qstate *s, rplan *p, const qcache *c, int nrep, char *err,
                       size_t err_len) {
    for (;;) {
        const int k = atomic_fetch_add(&p->next, 1);
        if (k >= p->n_ly + p->n_obs) return 0;
        const int i = k - p->n_ly;
        if (i >= 0 && !p->want[i]) continue;
        for (int bi = 0; bi < c->n_batches && c->b[bi].first < nrep; bi++) {
            const qcache_batch *b = &c->b[bi];
            const int n = nrep - b->first < b->count ? nrep - b->first : b->count;
            sqz_shape xs, ys;
            if (i >= 0) {
                const float *y = rplan_data(c, p, b, i, n, &ys);
                if (sim_tensor(p, i, y, (size_t)sqz_shape_numel(&ys)) != 0) {
                    snprintf(err, err_len, "out of memory");
                    return -1;
                }
                continue;
            }
            const rlayer *ly = &p->ly[k];
            const float *x = rplan_data(c, p, b, ly->xi, n, &xs),
                        *y = rplan_data(c, p, b, ly->yi, n, &ys);
            if (sim_layer(s, ly, x, &xs, y, &ys, err, err_len) != 0) return -1;
        }
    }
}

/* Empirical bias correction (Nagel et al. 2019, section 4.2, the empirical
 * variant; also Banner et al., "Post training 4-bit quantization of
 * convolutional networks for rapid-deployment", NeurIPS 2019, section 3.3):
 * per output channel, the mean over calibration images and positions of the
 * pre-activation output with int8 input (the tensor's chosen range, so the
 * mean shift from clipping and rounding is included), int8 weights and the
 * int32 bias, minus the fp32 one, is subtracted from the bias. The analytic
 * correction (E[x] times the weight error) only sees the weights. */
/* empirical bias correction's sums for compute layer ni on the run's data */
static int ebc_layer(qctx *q, const qrunner *r, qstate *s, int ni, char *err, size_t err_len) {
    sqzc_graph *g = q->g;
    qlayer *L = &s->L[ni];
    const sqzc_node *n = &g->nodes[ni];
    if (s->kind[ni] != K_COMPUTE || !L->ok || !L->bias || !L->eb_sum || n->op == SQZ_OP_MATMUL)
        return 0;
    int xi = q->obs_of[n->in[0]];
    if (xi < 0) return 0;
    sqz_shape xs;
    const float *x = q_obs_data(r, xi, &xs);
    if (!x) return 0;
    size_t nx = (size_t)sqz_shape_numel(&xs);
    float *xq = malloc(sizeof(float) * (nx ? nx : 1));
    float *bq = malloc(sizeof(float) * (size_t)L->nc);
    float *zb = calloc((size_t)L->nc, sizeof(float));
    if (!xq || !bq || !zb) {
        free(xq);
        free(bq);
        free(zb);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    float sx;
    int32_t zx;
    tensor_params(s, n->in[0], &sx, &zx);
    fake_quant(x, xq, nx, sx, zx);
    for (int c = 0; c < L->nc; c++) {
        double bs = (double)sx * L->sw[c];
        bq[c] = (float)(nearbyint(L->bias[c] / bs) * bs);
    }
    const int has_b = n->n_in > 2 && n->in[2] >= 0;
    sqz_shape ins[3];
    ins[0] = xs;
    ins[1] = g->tensors[n->in[1]].shape;
    ins[2] = (sqz_shape){1, {L->nc}};
    /* both runs with a bias input (zeros for the fp32 one when the model has none) */
    const float *ind_q[3] = {xq, L->wdq, bq};
    const float *ind_f[3] = {x, g->tensors[n->in[1]].f32, has_b ? g->tensors[n->in[2]].f32 : zb};
    int32_t in3[3] = {n->in[0], n->in[1], has_b ? n->in[2] : n->in[1]};
    sqzc_node *mut = &g->nodes[ni];
    int32_t *save_in = mut->in;
    uint32_t save_n = mut->n_in;
    mut->in = in3;
    mut->n_in = 3;
    float *oq = NULL, *of = NULL;
    sqz_shape osq, osf;
    int rc = run_layer(g, ni, ins, ind_q, 1, &oq, &osq, err, err_len);
    if (rc == 0) rc = run_layer(g, ni, ins, ind_f, 1, &of, &osf, err, err_len);
    mut->in = save_in;
    mut->n_in = save_n;
    free(xq);
    free(bq);
    free(zb);
    if (rc != 0) {
        free(oq);
        free(of);
        return -1;
    }
    if (osq.ndim >= 2 && osq.dims[1] == L->nc) {
        int64_t outer = osq.dims[0], inner = 1;
        for (int k = 2; k < osq.ndim; k++) inner *= osq.dims[k];
        for (int64_t o = 0; o < outer; o++)
            for (int c = 0; c < L->nc; c++) {
                const size_t base = ((size_t)o * (size_t)L->nc + (size_t)c) * (size_t)inner;
                double d = 0;
                for (int64_t i = 0; i < inner; i++) d += (double)oq[base + i] - of[base + i];
                L->eb_sum[c] += d;
            }
        L->eb_n += (uint64_t)(outer * inner);
    }
    free(oq);
    free(of);
    return 0;
}

static int ebc_fn(qctx *q, const qrunner *r, int first, int count, void *user) {
    (void)first;
    (void)count;
    qstate *s = user;
    sqzc_graph *g = q->g;
    int bad = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(q_threads(q)) if (q_threads(q) > 1)
#endif
    for (int ni = 0; ni < g->n_nodes; ni++) {
        char e[512];
        if (ebc_layer(q, r, s, ni, e, sizeof e) != 0) {
#if defined(_OPENMP)
#pragma omp critical(q_ebc_err)
#endif
            if (!bad) {
                bad = 1;
                snprintf(q->err, q->err_len, "%s", e);
            }
        }
    }
    return bad ? -1 : 0;
}

static int empirical_bias_correction(qstate *s) {
    qctx *q = &s->q;
    sqzc_graph *g = q->g;
    int any = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        qlayer *L = &s->L[i];
        if (s->kind[i] != K_COMPUTE || !L->ok || !L->bias || g->nodes[i].op == SQZ_OP_MATMUL ||
            L->seq)
            continue;
        L->eb_sum = calloc((size_t)L->nc, sizeof *L->eb_sum);
        if (!L->eb_sum) {
            snprintf(q->err, q->err_len, "out of memory");
            return -1;
        }
        L->eb_n = 0;
        any = 1;
    }
    if (!any) return 0;
    int n = q->n_images < Q_EBC_IMAGES ? q->n_images : Q_EBC_IMAGES;
    if (q_for_batches(q, n, "bias correction", ebc_fn, s) != 0) return -1;
    for (int i = 0; i < g->n_nodes; i++) {
        qlayer *L = &s->L[i];
        if (!L->eb_sum || !L->eb_n) continue;
        for (int c = 0; c < L->nc; c++) L->bias[c] -= (float)(L->eb_sum[c] / (double)L->eb_n);
        if (getenv("SQZ_QUANT_PROFILE")) {
            double mx = 0, mb = 0;
            for (int c = 0; c < L->nc; c++) {
                double d = fabs(L->eb_sum[c] / (double)L->eb_n);
                mx = d > mx ? d : mx;
                mb = fabs(L->bias[c]) > mb ? fabs(L->bias[c]) : mb;
            }
            fprintf(stderr, "ebc %s: n %llu max |corr| %g max |bias| %g\n", g->nodes[i].name,
                    (unsigned long long)L->eb_n, mx, mb);
        }
    }
    return 0;
}

static double sqnr_db(double yy, double ee) {
    if (ee <= 0) return yy > 0 ? INFINITY : NAN;
    return 10.0 * log10(yy / ee);
}
static double cosine(double yq, double yy, double qq) {
    if (yy <= 0 || qq <= 0) return yy == qq ? 1.0 : 0.0;
    return yq / sqrt(yy * qq);
}

/* ---- rewrite ---- */
static char *name_with(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s", a, b);
    return p;
}

static int set_act_params(qstate *s, int t) {
    float sc;
    int32_t zp;
    tensor_params(s, t, &sc, &zp);
    s->q.g->tensors[t].dtype = SQZC_I8;
    return sqzc_tensor_set_qparams(s->q.g, t, SQZC_Q_TENSOR, 0, 1, &sc, &zp);
}

/* new tensor (copy of t's shape) with a unique name; -1 OOM */
static int add_like(sqzc_graph *g, int t, const char *suffix) {
    char *nm = name_with(g->tensors[t].name, suffix);
    if (!nm) return -1;
    int id = sqzc_tensor_add_unique(g, nm);
    free(nm);
    if (id < 0) return -1;
    g->tensors[id].shape = g->tensors[t].shape;
    g->tensors[id].has_shape = g->tensors[t].has_shape;
    return id;
}

static int grow(qstate *s, int n_tensors_before) {
    sqzc_graph *g = s->q.g;
    size_t n = (size_t)g->n_tensors;
    int *src = realloc(s->src, n * sizeof *src), *dom;
    if (!src) return -1;
    s->src = src;
    dom = realloc(s->dom, n * sizeof *dom);
    if (!dom) return -1;
    s->dom = dom;
    for (int t = n_tensors_before; t < g->n_tensors; t++) s->src[t] = s->dom[t] = -1;
    return 0;
}

static int rewrite(qstate *s, sqzc_quant_report *rep) {
    sqzc_graph *g = s->q.g;
    const int n_orig = g->n_nodes, nt0 = g->n_tensors;
    int *qv = malloc(sizeof *qv * (size_t)(nt0 + 1)), *fv = malloc(sizeof *fv * (size_t)(nt0 + 1));
    if (!qv || !fv) goto oom;
    for (int t = 0; t < nt0; t++) qv[t] = fv[t] = -1;
    /* int8 graph outputs: the node writes "<name>_int8", a DequantizeLinear the output */
    for (int k = 0; k < g->n_outputs; k++) {
        int t = g->outputs[k];
        if (!s->dom[t]) continue;
        int nt = g->n_tensors;
        int t2 = add_like(g, t, "_int8");
        if (t2 < 0 || grow(s, nt) != 0) goto oom;
        for (int i = 0; i < n_orig; i++) {
            sqzc_node *n = &g->nodes[i];
            for (uint32_t j = 0; j < n->n_in; j++)
                if (n->in[j] == t) n->in[j] = t2;
            for (uint32_t j = 0; j < n->n_out; j++)
                if (n->out[j] == t) n->out[j] = t2;
        }
        s->src[t2] = s->src[t];
        s->dom[t2] = 1;
        s->dom[t] = 0;
        if (s->src[t] == t) s->src[t2] = t; /* params stay those computed for t */
        char *nm = name_with(g->tensors[t].name, "_dequantize");
        int in1[1] = {t2}, out1[1] = {t};
        int ni = nm ? sqzc_add_node(g, SQZ_OP_DEQUANTIZE_LINEAR, nm, 1, in1, 1, out1) : -1;
        free(nm);
        if (ni < 0) goto oom;
        rep->n_dequantize++;
        if (t2 < nt0) continue;
    }
    for (int i = 0; i < n_orig; i++) {
        sqzc_node *n = &g->nodes[i];
        if (n->op == SQZ_OP_INVALID) continue;
        uint32_t nact = s->kind[i] == K_COMPUTE ? 1 : n->n_in;
        for (uint32_t k = 0; k < n->n_in; k++) {
            int t = n->in[k];
            if (t < 0 || sqzc_tensor_is_const(g, t)) continue;
            if (s->qnode[i] && k < nact && !s->dom[t]) { /* fp32 -> int8 */
                if (t >= nt0) continue;
                if (qv[t] < 0) {
                    int nt = g->n_tensors;
                    int tq = add_like(g, t, "_q");
                    if (tq < 0 || grow(s, nt) != 0) goto oom;
                    s->src[tq] = s->src[t];
                    s->dom[tq] = 1;
                    char *nm = name_with(g->tensors[t].name, "_quantize");
                    int in1[1] = {t}, out1[1] = {tq};
                    int ni =
                        nm ? sqzc_add_node(g, SQZ_OP_QUANTIZE_LINEAR, nm, 1, in1, 1, out1) : -1;
                    free(nm);
                    if (ni < 0) goto oom;
                    n = &g->nodes[i];
                    qv[t] = tq;
                    rep->n_quantize++;
                }
                n->in[k] = qv[t];
            } else if (!s->qnode[i] && s->dom[t] == 1) { /* int8 -> fp32 */
                int key = t < nt0 ? t : -1;
                if (key < 0) continue;
                if (fv[t] < 0) {
                    int nt = g->n_tensors;
                    int tf = add_like(g, t, "_f32");
                    if (tf < 0 || grow(s, nt) != 0) goto oom;
                    s->dom[tf] = 0;
                    char *nm = name_with(g->tensors[t].name, "_dequantize");
                    int in1[1] = {t}, out1[1] = {tf};
                    int ni =
                        nm ? sqzc_add_node(g, SQZ_OP_DEQUANTIZE_LINEAR, nm, 1, in1, 1, out1) : -1;
                    free(nm);
                    if (ni < 0) goto oom;
                    n = &g->nodes[i];
                    fv[t] = tf;
                    rep->n_dequantize++;
                }
                n->in[k] = fv[t];
            }
        }
        if (!s->qnode[i] || s->kind[i] != K_COMPUTE) continue;
        /* weights and bias */
        qlayer *L = &s->L[i];
        int wt = n->in[1];
        int nt = g->n_tensors;
        int wq = add_like(g, wt, "_int8");
        if (wq < 0 || grow(s, nt) != 0) goto oom;
        n = &g->nodes[i];
        const sqz_shape wsh = g->tensors[wt].shape;
        int32_t *zeros = calloc((size_t)L->nc, sizeof *zeros);
        if (!zeros || sqzc_tensor_set_i8(g, wq, &wsh, L->wq) != 0 ||
            sqzc_tensor_set_qparams(g, wq, SQZC_Q_CHANNEL, L->axis, L->nc, L->sw, zeros) != 0) {
            free(zeros);
            goto oom;
        }
        n->in[1] = wq;
        if (n->op != SQZ_OP_MATMUL && L->bias) {
            float sx;
            int32_t zx;
            tensor_params(s, n->in[0], &sx, &zx);
            int32_t *bq = malloc(sizeof *bq * (size_t)L->nc);
            float *bs = malloc(sizeof *bs * (size_t)L->nc);
            int any = n->n_in > 2 && n->in[2] >= 0;
            for (int c = 0; bq && bs && c < L->nc; c++) {
                bs[c] = sx * L->sw[c];
                double v = nearbyint((double)L->bias[c] / bs[c]);
                v = v > 2147483647.0 ? 2147483647.0 : v < -2147483648.0 ? -2147483648.0 : v;
                bq[c] = (int32_t)v;
                any |= bq[c] != 0;
            }
            int bt = -1;
            if (bq && bs && any) {
                int base = n->n_in > 2 && n->in[2] >= 0 ? n->in[2] : wt;
                nt = g->n_tensors;
                bt = add_like(g, base, base == wt ? "_bias_int32" : "_int32");
                if (bt < 0 || grow(s, nt) != 0) bt = -2;
                sqz_shape bsh = {1, {L->nc}};
                /* no quantization record: the bias is in units of s_x * s_w[c] by the
                 * contract (sqz/format.h), storing the scales would only cost bytes */
                if (bt >= 0 && sqzc_tensor_set_i32(g, bt, &bsh, bq) != 0) bt = -2;
            }
            free(bq);
            free(bs);
            if (!bq || !bs || bt == -2) {
                free(zeros);
                goto oom;
            }
            n = &g->nodes[i];
            if (bt >= 0) {
                int32_t in3[3] = {n->in[0], n->in[1], bt};
                if (sqzc_node_set_inputs(g, i, 3, in3) != 0) {
                    free(zeros);
                    goto oom;
                }
            }
        }
        free(zeros);
    }
    /* dtypes and parameters of the int8 activations */
    for (int t = 0; t < g->n_tensors; t++)
        if (s->dom[t] == 1 && !sqzc_tensor_is_const(g, t) && set_act_params(s, t) != 0) goto oom;
    free(qv);
    free(fv);
    if (sqzc_graph_toposort(g, s->q.err, s->q.err_len) != 0) return -1;
    if (sqzc_graph_compact(g) != 0) goto oom2;
    return 0;
oom:
    free(qv);
    free(fv);
oom2:
    snprintf(s->q.err, s->q.err_len, "out of memory while rewriting the graph");
    return -1;
}

/* ---- report ---- */
/* The report's rows from S (before the rewrite: the graph's names and
 * producers); their simulation's numbers come from report_sqnr, which reads
 * row k's observed tensor and producer in rows[2k], rows[2k + 1]. */
static int report_fill(qstate *s, sqzc_quant_report *rep, int *rows) {
    sqzc_graph *g = s->q.g;
    qctx *q = &s->q;
    rep->layers = calloc((size_t)q->n_obs, sizeof *rep->layers);
    if (!rep->layers) return -1;
    for (int i = 0; i < q->n_obs; i++) {
        int t = q->obs[i];
        int p = t == q->input ? -1 : sqzc_producer(g, t);
        if (t != q->input && (p < 0 || s->kind[p] == K_OTHER)) continue;
        sqzc_quant_layer *l = &rep->layers[rep->n_layers];
        l->node = strdup(p >= 0 ? g->nodes[p].name : "");
        l->tensor = strdup(g->tensors[t].name);
        if (!l->node || !l->tensor) {
            free(l->node);
            free(l->tensor);
            return -1;
        }
        rows[2 * rep->n_layers] = i;
        rows[2 * rep->n_layers + 1] = p;
        rep->n_layers++;
        l->op = p >= 0 ? g->nodes[p].op : 0;
        l->int8 = p >= 0 ? s->qnode[p] : 1;
        if (p >= 0 && !l->int8) {
            const qlayer *L = &s->L[p];
            if (s->kind[p] == K_COMPUTE && L->ok == 0 && !isnan(L->w_sqnr) && L->sw)
                l->why = "SQNR below the threshold";
            else if (s->kind[p] == K_COMPUTE && !L->sw)
                l->why = "op configuration (see sqz quant --help)";
            else
                l->why = "input in fp32";
        }
        const sqzc_qstat *st = &q->st[i];
        l->min = st->min;
        l->max = st->max;
        int r = s->src[t];
        l->lo = s->lo[r];
        l->hi = s->hi[r];
        l->scale = s->scale[r];
        l->zero_point = s->zp[r];
        l->clipped = sqzc_qstat_clipped(&q->st[q->obs_of[r]], l->lo, l->hi);
        l->w_sqnr_db = NAN;
        l->sqnr_db = NAN;
        l->cosine = NAN;
        if (p >= 0 && s->kind[p] == K_COMPUTE && s->L[p].sw) l->w_sqnr_db = s->L[p].w_sqnr;
    }
    return 0;
}

/* the simulation's SQNR and cosine of the report's rows (report_fill); p:
 * the tensors' sums (NULL: no simulation) */
static void report_sqnr(const qstate *s, const rplan *p, sqzc_quant_report *rep, const int *rows) {
    for (int k = 0; k < rep->n_layers; k++) {
        sqzc_quant_layer *l = &rep->layers[k];
        const int i = rows[2 * k], pn = rows[2 * k + 1];
        if (pn >= 0 && s->kind[pn] == K_COMPUTE && s->L[pn].sw) {
            const qlayer *L = &s->L[pn];
            if (L->s_yy > 0 || L->s_ee > 0) {
                l->sqnr_db = sqnr_db(L->s_yy, L->s_ee);
                l->cosine = cosine(L->s_yq, L->s_yy, L->s_qq);
            }
        } else if (p && p->want[i] && (p->acc[i][0] > 0 || p->acc[i][1] > 0)) {
            const double *a = p->acc[i];
            l->sqnr_db = sqnr_db(a[0], a[1]);
            l->cosine = cosine(a[2], a[0], a[3]);
        }
    }
}

void sqzc_quant_report_free(sqzc_quant_report *r) {
    if (!r) return;
    for (int i = 0; i < r->n_layers; i++) {
        free(r->layers[i].node);
        free(r->layers[i].tensor);
    }
    free(r->layers);
    memset(r, 0, sizeof *r);
}

/* the per-node / per-tensor arrays of one quantization (not the
 * calibration statistics) */
static void state_free_layers(qstate *s, int n_nodes) {
    if (s->L)
        for (int i = 0; i < n_nodes; i++) {
            free(s->L[i].sw);
            free(s->L[i].wq);
            free(s->L[i].wdq);
            free(s->L[i].bias);
            free(s->L[i].eb_sum);
        }
    free(s->L);
    free(s->kind);
    free(s->src);
    free(s->scale);
    free(s->zp);
    free(s->lo);
    free(s->hi);
    free(s->qnode);
    free(s->dom);
    free(s->relu_in);
}

/* the calibration statistics, session and cache */
static void qctx_free(qctx *q) {
    for (int i = 0; i < q->n_obs; i++) {
        if (q->st) sqzc_qstat_free(&q->st[i]);
        if (q->ch) {
            free(q->ch[i].sum);
            free(q->ch[i].max);
            free(q->ch[i].min);
        }
    }
    q_calib_free(q);
    if (q->gptq)
        for (int i = 0; i < q->n_gptq; i++) {
            free(q->gptq[i].u);
            free(q->gptq[i].perm);
        }
    free(q->gptq);
    q->gptq = NULL;
    free(q->st);
    free(q->ch);
    free(q->obs);
    free(q->obs_of);
    q->st = NULL;
    q->ch = NULL;
    q->obs = NULL;
    q->obs_of = NULL;
    q->n_obs = 0;
}

/* Per-node state of graph g (kinds, which compute nodes can be int8) and the
 * per-tensor arrays; marks the compute nodes' inputs for channel means when
 * the statistics are still to be gathered. 0 ok, -1 OOM. */
static int state_prepare(qstate *S, sqzc_graph *g, int mark_channels) {
    qctx *q = &S->q;
    const int nn = g->n_nodes, nt = g->n_tensors;
    S->kind = calloc((size_t)nn + 1, sizeof *S->kind);
    S->L = calloc((size_t)nn + 1, sizeof *S->L);
    S->qnode = calloc((size_t)nn + 1, sizeof *S->qnode);
    S->src = malloc(sizeof *S->src * ((size_t)nt + 1));
    S->dom = calloc((size_t)nt + 1, sizeof *S->dom);
    S->scale = calloc((size_t)nt + 1, sizeof *S->scale);
    S->zp = calloc((size_t)nt + 1, sizeof *S->zp);
    S->lo = calloc((size_t)nt + 1, sizeof *S->lo);
    S->hi = calloc((size_t)nt + 1, sizeof *S->hi);
    S->relu_in = calloc((size_t)nt + 1, 1);
    if (!S->kind || !S->L || !S->qnode || !S->src || !S->dom || !S->scale || !S->zp || !S->lo ||
        !S->hi || !S->relu_in)
        return -1;
    /* compute nodes; their inputs' channel means feed bias correction */
    for (int i = 0; i < nn; i++) {
        if (g->nodes[i].op == SQZ_OP_INVALID) continue;
        S->kind[i] = node_kind(g, i);
        if (S->kind[i] != K_COMPUTE) continue;
        const char *why = NULL;
        S->L[i].ok = compute_ok(g, i, &S->L[i].axis, &S->L[i].nc, &why);
        S->L[i].w_sqnr = NAN;
        int xi = q->obs_of[g->nodes[i].in[0]];
        const sqzc_tensor *x = &g->tensors[g->nodes[i].in[0]];
        if (mark_channels && S->L[i].ok && xi >= 0 && x->has_shape && x->shape.ndim >= 2)
            q->ch[xi].c = (int)x->shape.dims[1];
    }
    return 0;
}

/* Checks g and set, gathers the statistics into S->q (passes 1 and 2 with
 * equalization between, which changes g's weights). hist: pass 2 even for
 * minmax. 0 ok, -1 with q->err. */
static int calibrate(qstate *S, sqzc_graph *g, const sqzc_calib_set *set,
                     const sqzc_quant_options *o, int hist, int *cle_pairs, double *secs) {
    qctx *q = &S->q;
    char *err = q->err;
    size_t err_len = q->err_len;
    q->g = g;
    q->o = o;
    q->set = set;
    if (o->method < SQZC_QM_MINMAX || o->method > SQZC_QM_MSE) {
        snprintf(err, err_len, "unknown calibration method %d", o->method);
        return -1;
    }
    if (o->method == SQZC_QM_PERCENTILE && !(o->percentile > 50 && o->percentile <= 100)) {
        snprintf(err, err_len, "percentile %g is not in (50, 100]", o->percentile);
        return -1;
    }
    if (g->n_inputs != 1) {
        snprintf(err, err_len, "calibration needs a model with one input (this one has %d)",
                 g->n_inputs);
        return -1;
    }
    q->input = g->inputs[0];
    const sqzc_tensor *in = &g->tensors[q->input];
    if (!in->has_shape || in->shape.ndim < 1 || in->shape.dims[0] < 1) {
        snprintf(err, err_len, "input '%s' has no static shape", in->name);
        return -1;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == SQZ_OP_QUANTIZE_LINEAR ||
            g->nodes[i].op == SQZ_OP_DEQUANTIZE_LINEAR) {
            snprintf(err, err_len, "the model is already quantized (node '%s')", g->nodes[i].name);
            return -1;
        }
    if (split_table_acts(g, err, err_len) != 0) return -1;
    in = &g->tensors[q->input];
    q->in1 = in->shape;
    q->in1.dims[0] = 1;
    q->per = sqz_shape_numel(&q->in1);
    /* (a set whose file checks are pending is checked against the input
     * when they finish, in the first pass) */
    if (!sqzc_calib_set_pending(set) && sqzc_calib_set_check_input(set, &q->in1, err, err_len) != 0)
        return -1;
    q->n_images = o->max_images > 0 && o->max_images < set->n_items ? o->max_images : set->n_items;
    if (qctx_init_obs(q) != 0 || state_prepare(S, g, 1) != 0) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    /* Equalization whose scales depend on the weights only runs first, and
     * one pass over the set then gathers ranges, channel statistics and
     * histograms together (sqzc_qstat_begin_one_pass). When a pair needs
     * the data (ReLU6 / Clip: channel maxima), 1. pass 1 (ranges, channel
     * statistics), 2. equalization, which rescales the statistics of the
     * tensors it changes, 3. pass 2 (histograms of the equalized model). */
    double t_cal = q_now(), t_p = t_cal;
    const int need_hist = hist || o->method != SQZC_QM_MINMAX || o->range_search;
    int cle_first = 0;
    *cle_pairs = 0;
    if (o->cle) {
        int nd = q_equalize_needs_data(q);
        if (nd < 0) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
        if (nd == 0) {
            int np = q_equalize(q, 0);
            if (np < 0) return -1;
            *cle_pairs = np;
            cle_first = 1;
        } else if (q_equalize_mark(q) < 0) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
    }
    const int one_pass = need_hist && (!o->cle || cle_first);
    /* images the passes after the first read again: all of them for the
     * histograms of a second pass, the report's (and bias correction's)
     * otherwise */
    {
        int nrep0 = o->report_images < q->n_images ? o->report_images : q->n_images;
        int want = need_hist && !one_pass ? q->n_images : nrep0;
        if (o->bias_correction == 2 && want < Q_EBC_IMAGES) want = Q_EBC_IMAGES;
        if (o->rounding == SQZC_QR_GPTQ && want < Q_GPTQ_IMAGES) want = Q_GPTQ_IMAGES;
        q->cache.want = want > 0 ? want : 1;
        /* a cache pays when its images are read more than once after the
         * first pass (several quantizations, a second pass, bias correction
         * and report): storing them costs more than running the model again
         * for the report once */
        if (!hist && (one_pass || !need_hist) && o->bias_correction != 2 &&
            o->rounding != SQZC_QR_GPTQ)
            q->cache.want = -1;
    }
    if ((one_pass ? q_pass_one(q) : q_pass_range(q)) != 0) return -1;
    q_prof(one_pass ? "pass 1 (range + histograms)" : "pass 1 (range)", &t_p);
    if (o->cle && !cle_first) {
        int np = q_equalize(q, 1);
        if (np < 0) return -1;
        if (np > 0) q_runner_invalidate(q); /* new weights */
        *cle_pairs = np;
    }
    q_prof("equalization", &t_p);
    /* minmax needs no histogram (nothing is clipped): one pass less */
    if (need_hist && !one_pass && q_pass_hist(q) != 0) return -1;
    q_prof("pass 2 (histograms)", &t_p);
    *secs = q_now() - t_cal;
    return 0;
}

/* ---- sequential GPTQ (rounding SQZC_QR_GPTQ_SEQ) ----
 * The layers are quantized in graph order, each against the inputs the int8
 * model gives it: the calibration images run through a float simulation of
 * the int8 model (the layers before with their int8 weights and int32 biases,
 * every int8 tensor quantized and dequantized with its parameters), so each
 * layer's rounding also absorbs the error of the layers before it (GPTQ,
 * Frantar et al. 2023, takes each block's inputs from the blocks already
 * quantized; AdaRound, Nagel et al., ICML 2020, fits each layer on the
 * quantized model's inputs against the fp32 output, its "asymmetric"
 * reconstruction). With X the fp32 model's inputs of a layer and Xt the int8
 * model's, the layer's weights W are replaced by the least-squares solution
 * W* = argmin ||W X - W* Xt||^2 + lambda ||W* - W||^2 = W + W (X - Xt) Xt^T
 * (Ht + lambda I)^-1 (Ht = Xt Xt^T, lambda GPTQ's damping; as GPTAQ's
 * asymmetric calibration, Li et al. 2025), rounded by GPTQ with Ht; its bias
 * then gets the mean output error, E[W x] - E[Wq xt] per output channel (bias
 * correction against the int8 inputs, which replaces the analytic and the
 * empirical one for these layers). */
/* images of the simulation at most: all of a 500-image set (256, the
 * statistics of GPTQ on fp32 inputs, gave 0.2-0.3 dB less output SQNR on
 * held-out images: ResNet 37.93 -> 38.23 dB, MobileNet 36.90 -> 37.13) */
#define Q_SEQ_IMAGES 512
/* inputs of a node of the simulation at most */
#define Q_SEQ_MAX_IN 16

typedef struct seqsim {
    qstate *s;
    float **t;     /* per tensor: the int8 model's values on the n images, or NULL */
    float **f;     /* per tensor: the fp32 model's (the same kernels, no quantization) */
    sqz_shape *sh; /* their shapes (dims[0] == n) */
    int *left;     /* per tensor: consumers not yet run */
    int n;         /* images */
    /* the layer being quantized */
    int ni, nin, groups, rows_g;
    const float *wrow; /* [nc][nin] its weights, a row per output channel */
    double *h, *gm;    /* [groups][nin][nin] Xt Xt^T, [nc][nin] W (X - Xt) Xt^T */
    double *mx, *mt;   /* [groups][nin] sums of the inputs, fp32 and int8 model */
    double cnt;        /* samples summed in mx, mt (per group) */
    char *picked;      /* per tensor: its range chosen in the simulation (range_pick) */
    int pick;          /* choose each int8 tensor's range in the simulation */
} seqsim;

/* images of a range choice's error at most */
#define Q_PICK_IMAGES 256

/* Tensor r's range (those sharing its parameters too) chosen in the
 * simulation: among the ranges of each method and scalings of the best, the
 * one whose quantization of the int8 model's values t brings them closest to
 * the fp32 model's f (sum of squares over the first Q_PICK_IMAGES images;
 * n floats in all, per image n / Q->n). */
static void seq_pick_range(seqsim *Q, int r, const float *t, const float *f, size_t n) {
    qstate *s = Q->s;
    qctx *q = &s->q;
    const sqzc_qstat *st = &q->st[consumed_stats(s, r)];
    const int ni = Q->n < Q_PICK_IMAGES ? Q->n : Q_PICK_IMAGES;
    const size_t m = n / (size_t)Q->n * (size_t)ni;
    double lo[16], hi[16], best = INFINITY;
    int nc = 0, bi = -1;
    sqzc_qstat_range(st, SQZC_QM_MINMAX, 0, &lo[nc], &hi[nc]);
    nc++;
    static const double pct[] = {99.9, 99.99, 99.999};
    for (int k = 0; k < 3; k++, nc++)
        sqzc_qstat_range(st, SQZC_QM_PERCENTILE, pct[k], &lo[nc], &hi[nc]);
    sqzc_qstat_range(st, SQZC_QM_MSE, 0, &lo[nc], &hi[nc]);
    nc++;
    sqzc_qstat_range(st, SQZC_QM_KL, 0, &lo[nc], &hi[nc]);
    nc++;
    for (int round = 0; round < 2; round++) {
        for (int c = round ? 6 : 0; c < nc; c++) {
            if (!(hi[c] > lo[c])) continue;
            float sc;
            int32_t zp;
            sqzc_qparams_from_range(lo[c], hi[c], &sc, &zp);
            double yy = 0, ee = 0, yq = 0, qq = 0;
            acc_err(f, t, m, sc, zp, &yy, &ee, &yq, &qq);
            if (ee < best) {
                best = ee;
                bi = c;
            }
        }
        if (round || bi < 0) break;
        static const double fac[] = {0.8, 0.9, 0.95, 1.05, 1.1, 1.25};
        const double l0 = lo[bi], h0 = hi[bi], l1 = lo[0], h1 = hi[0];
        for (int k = 0; k < 6; k++) {
            double a = l0 * fac[k], b = h0 * fac[k];
            if (a < l1 || b > h1) continue; /* past the observed range */
            lo[nc] = a;
            hi[nc] = b;
            nc++;
        }
    }
    if (bi >= 0) {
        s->lo[r] = lo[bi];
        s->hi[r] = hi[bi];
        sqzc_qparams_from_range(lo[bi], hi[bi], &s->scale[r], &s->zp[r]);
    }
    Q->picked[r] = 1;
}

/* the graph input of images [first, first + count) */
static int seq_input_fn(qctx *q, const qrunner *r, int first, int count, void *user) {
    seqsim *Q = user;
    sqz_shape xs;
    const float *x = q_obs_data(r, q->obs_of[q->input], &xs);
    const int64_t per = sqz_shape_numel(&Q->sh[q->input]) / Q->n;
    if (!x || sqz_shape_numel(&xs) != per * count) {
        snprintf(q->err, q->err_len, "sequential gptq: graph input not observed");
        return -1;
    }
    memcpy(Q->t[q->input] + (size_t)first * (size_t)per, x, sizeof *x * (size_t)(per * count));
    memcpy(Q->f[q->input] + (size_t)first * (size_t)per, x, sizeof *x * (size_t)(per * count));
    return 0;
}

/* statistics of layer Q->ni on the images */
static int seq_stat(qctx *q, seqsim *Q) {
    const sqzc_graph *g = q->g;
    const sqzc_node *nd = &g->nodes[Q->ni];
    const int64_t per = sqz_shape_numel(&Q->sh[nd->in[0]]) / Q->n;
    const int first = 0, count = Q->n;
    const float *x = Q->f[nd->in[0]], *xt = Q->t[nd->in[0]];
    const int n = Q->nin, ld = q_gptq_ld(n);
    int rc = 0;
    if (nd->op == SQZ_OP_CONV) {
        q_patch_geom pg;
        int groups = 1;
        conv_geom(g, Q->ni, &pg, &groups);
        const int np = pg.oh * pg.ow, st = gptq_stride(n, np, Q->n);
        const size_t per_grp = (size_t)pg.cin * pg.ih * pg.iw;
        float *bx = malloc(sizeof *bx * (size_t)ld * (size_t)np);
        float *bt = malloc(sizeof *bt * (size_t)ld * (size_t)np);
        /* the inputs summed over the images (per position): the mean patch
         * over every position and image is then the patches of these sums
         * summed */
        double *sx = calloc(2 * (size_t)groups * per_grp + 1, sizeof *sx);
        if (!bx || !bt || !sx) rc = -1;
        for (int b = 0; b < count && rc == 0; b++)
            for (int gi = 0; gi < groups && rc == 0; gi++) {
                const size_t o = ((size_t)b * groups + gi) * per_grp;
                double *s0 = sx + (size_t)gi * per_grp, *s1 = s0 + (size_t)groups * per_grp;
                for (size_t e = 0; e < per_grp; e++) {
                    s0[e] += x[o + e];
                    s1[e] += xt[o + e];
                }
                /* the positions of gptq_layer_acc */
                const int off = (first + b) % st, k = (np - off + st - 1) / st;
                q_gptq_patches_at(&pg, x + o, bx, ld, off, st);
                q_gptq_patches_at(&pg, xt + o, bt, ld, off, st);
                q_gptq_gram(Q->h + (size_t)gi * n * n, n, k, bt, ld);
                rc = q_gptq_xcorr(Q->gm + (size_t)gi * Q->rows_g * n, Q->rows_g, n,
                                  Q->wrow + (size_t)gi * Q->rows_g * n, k, bx, bt, ld);
            }
        float *pl = rc == 0 ? malloc(sizeof *pl * (per_grp + 1)) : NULL;
        if (rc == 0 && !pl) rc = -1;
        for (int gi = 0; gi < groups && rc == 0; gi++)
            for (int v = 0; v < 2; v++) {
                const double *sv = sx + ((size_t)v * groups + gi) * per_grp;
                for (size_t e = 0; e < per_grp; e++) pl[e] = (float)sv[e];
                q_gptq_patches_at(&pg, pl, bx, ld, 0, 1);
                q_gptq_colsum((v ? Q->mt : Q->mx) + (size_t)gi * n, n, np, bx, ld);
            }
        free(pl);
        free(sx);
        free(bx);
        free(bt);
        Q->cnt += (double)count * np;
    } else { /* Gemm: rows of n inputs */
        const int64_t rows = per * count / n;
        float *bx = malloc(sizeof *bx * (size_t)ld * (size_t)(rows > 0 ? rows : 1));
        float *bt = malloc(sizeof *bt * (size_t)ld * (size_t)(rows > 0 ? rows : 1));
        if (bx && bt) {
            for (int64_t p = 0; p < rows; p++)
                for (int i = 0; i < ld; i++) {
                    bx[(size_t)p * ld + i] = i < n ? x[(size_t)p * n + i] : 0.0f;
                    bt[(size_t)p * ld + i] = i < n ? xt[(size_t)p * n + i] : 0.0f;
                }
            q_gptq_colsum(Q->mx, n, (int)rows, bx, ld);
            q_gptq_colsum(Q->mt, n, (int)rows, bt, ld);
            q_gptq_gram(Q->h, n, (int)rows, bt, ld);
            rc = q_gptq_xcorr(Q->gm, Q->rows_g, n, Q->wrow, (int)rows, bx, bt, ld);
        } else {
            rc = -1;
        }
        free(bx);
        free(bt);
        Q->cnt += (double)rows;
    }
    if (rc != 0) snprintf(q->err, q->err_len, "out of memory");
    return rc;
}

/* inputs per group (GPTQ's n) and groups of compute node ni when sequential
 * GPTQ can round it; 0 otherwise */
static int seq_layer_n(const qstate *S, int ni, int *groups) {
    const qctx *q = &S->q;
    const sqzc_graph *g = q->g;
    const sqzc_node *nd = &g->nodes[ni];
    int n = 0;
    *groups = 1;
    if (nd->op == SQZ_OP_CONV) {
        q_patch_geom pg;
        if (!conv_geom(g, ni, &pg, groups)) return 0;
        n = pg.cin * pg.kh * pg.kw;
    } else if (nd->op == SQZ_OP_GEMM) {
        n = (int)g->tensors[nd->in[1]].shape.dims[S->L[ni].axis == 0 ? 1 : 0];
        const sqzc_tensor *x = &g->tensors[nd->in[0]];
        if (!x->has_shape || x->shape.ndim < 1 || x->shape.dims[x->shape.ndim - 1] != n) return 0;
    }
    if (n < 1 || n > Q_GPTQ_MAX_N || S->L[ni].nc % *groups != 0) return 0;
    if ((int64_t)S->L[ni].nc * n != sqz_shape_numel(&g->tensors[nd->in[1]].shape)) return 0;
    return n;
}

/* quantize compute node ni against the simulated inputs */
static int seq_layer(seqsim *Q, int ni) {
    qstate *s = Q->s;
    qctx *q = &s->q;
    sqzc_graph *g = q->g;
    const sqzc_node *nd = &g->nodes[ni];
    qlayer *L = &s->L[ni];
    int groups = 1;
    const int n = Q->t[nd->in[0]] && Q->f[nd->in[0]] ? seq_layer_n(s, ni, &groups) : 0;
    if (n == 0) /* to nearest, with the bias correction asked for */
        return quantize_weights(s, ni, NULL, NULL) != 0 || correct_bias(s, ni) != 0 ? -1 : 0;
    const int nc = L->nc;
    const float *w = g->tensors[nd->in[1]].f32;
    float *wrow = malloc(sizeof *wrow * (size_t)nc * n), *ws = malloc(sizeof *ws * (size_t)nc * n);
    qgptq G = {n, groups, malloc(sizeof(double) * (size_t)groups * n * n),
               malloc(sizeof(int) * (size_t)groups * n)};
    double *hp = malloc(sizeof *hp * (size_t)n * n);
    Q->h = calloc((size_t)groups * n * n, sizeof *Q->h);
    Q->gm = calloc((size_t)nc * n, sizeof *Q->gm);
    Q->mx = calloc((size_t)groups * n, sizeof *Q->mx);
    Q->mt = calloc((size_t)groups * n, sizeof *Q->mt);
    int rc = -1;
    if (!wrow || !ws || !G.u || !G.perm || !hp || !Q->h || !Q->gm || !Q->mx || !Q->mt) goto oom;
    /* a row per output channel (a Gemm's [K, N] weight transposed) */
    for (int c = 0; c < nc; c++)
        for (int i = 0; i < n; i++)
            wrow[(size_t)c * n + i] = L->axis == 0 ? w[(size_t)c * n + i] : w[(size_t)i * nc + c];
    Q->ni = ni;
    Q->nin = n;
    Q->groups = groups;
    Q->rows_g = nc / groups;
    Q->wrow = wrow;
    Q->cnt = 0;
    if (seq_stat(q, Q) != 0) goto out;
    memcpy(ws, wrow, sizeof *ws * (size_t)nc * n);
    for (int gi = 0; gi < groups && G.n; gi++) {
        const double *h = Q->h + (size_t)gi * n * n;
        int *pm = G.perm + (size_t)gi * n;
        act_order(h, n, pm, hp); /* and factor as gptq_prepare */
        int frc = q_gptq_factor(hp, n, Q_GPTQ_DAMP);
        if (frc < 0) goto oom;
        if (frc != 0) { /* not positive definite: W as is, to nearest */
            G.n = 0;
            break;
        }
        memcpy(G.u + (size_t)gi * n * n, hp, sizeof *hp * (size_t)n * n);
    }
    if (G.n)
        for (int c = 0; c < nc; c++) {
            const int gi = c / Q->rows_g;
            if (q_gptq_apply_inv(G.u + (size_t)gi * n * n, G.perm + (size_t)gi * n, n,
                                 Q->gm + (size_t)c * n, ws + (size_t)c * n) != 0)
                goto oom;
        }
    if (L->axis == 1) { /* back to [K, N] (wrow's copy is free now) */
        for (int c = 0; c < nc; c++)
            for (int i = 0; i < n; i++) wrow[(size_t)i * nc + c] = ws[(size_t)c * n + i];
        memcpy(ws, wrow, sizeof *ws * (size_t)nc * n);
        for (int c = 0; c < nc; c++) /* and wrow the original again */
            for (int i = 0; i < n; i++) wrow[(size_t)c * n + i] = w[(size_t)i * nc + c];
    }
    if (quantize_weights(s, ni, ws, &G) != 0) goto oom;
    /* bias: b + E[w x] - E[wq xt] per output channel */
    L->bias = calloc((size_t)nc, sizeof *L->bias);
    if (!L->bias) goto oom;
    if (nd->n_in > 2 && nd->in[2] >= 0)
        memcpy(L->bias, g->tensors[nd->in[2]].f32, sizeof *L->bias * (size_t)nc);
    if (Q->cnt > 0)
        for (int c = 0; c < nc; c++) {
            const int gi = c / Q->rows_g;
            const double *mx = Q->mx + (size_t)gi * n, *mt = Q->mt + (size_t)gi * n;
            double d = 0;
            for (int i = 0; i < n; i++) {
                const float wq =
                    L->axis == 0 ? L->wdq[(size_t)c * n + i] : L->wdq[(size_t)i * nc + c];
                d += (double)wrow[(size_t)c * n + i] * mx[i] - (double)wq * mt[i];
            }
            L->bias[c] += (float)(d / Q->cnt);
        }
    L->seq = 1;
    rc = 0;
    goto out;
oom:
    snprintf(q->err, q->err_len, "out of memory");
out:
    free(wrow);
    free(ws);
    free(G.u);
    free(G.perm);
    free(hp);
    free(Q->h);
    free(Q->gm);
    free(Q->mx);
    free(Q->mt);
    Q->h = Q->gm = Q->mx = Q->mt = NULL;
    return rc;
}

/* node ni of the simulation: its output from the simulated inputs (a
 * compute node in int8 with its quantized weights and bias), quantized and
 * dequantized when it is int8 */
static int seq_forward(seqsim *Q, int ni, int fp32) {
    qstate *s = Q->s;
    qctx *q = &s->q;
    sqzc_graph *g = q->g;
    sqzc_node *nd = &g->nodes[ni];
    qlayer *L = &s->L[ni];
    const float *ind[Q_SEQ_MAX_IN], *prep[Q_SEQ_MAX_IN];
    sqz_shape ins[Q_SEQ_MAX_IN];
    float *xq = NULL, *bq = NULL, *out = NULL;
    float **vt = fp32 ? Q->f : Q->t;
    const int qc = !fp32 && s->kind[ni] == K_COMPUTE && s->qnode[ni] && L->wdq;
    int32_t in3[3];
    uint32_t nin = nd->n_in;
    for (uint32_t k = 0; k < nd->n_in; k++) {
        const int t = nd->in[k];
        ind[k] = prep[k] = NULL;
        memset(&ins[k], 0, sizeof ins[k]);
        if (t < 0) continue;
        if (vt[t]) {
            ind[k] = vt[t];
            ins[k] = Q->sh[t];
        } else {
            ind[k] = prep[k] = g->tensors[t].f32;
            ins[k] = g->tensors[t].shape;
        }
    }
    if (qc) {
        const int x = nd->in[0];
        float sx;
        int32_t zx;
        tensor_params(s, x, &sx, &zx);
        if (!s->dom[x]) { /* an fp32 tensor read by an int8 layer: quantized on the way */
            const size_t nx = (size_t)sqz_shape_numel(&ins[0]);
            if (Q->pick && !Q->picked[s->src[x]] && Q->f[x]) {
                seq_pick_range(Q, s->src[x], ind[0], Q->f[x], nx);
                tensor_params(s, x, &sx, &zx);
            }
            xq = malloc(sizeof *xq * (nx ? nx : 1));
            if (!xq) goto oom;
            fake_quant(ind[0], xq, nx, sx, zx);
            ind[0] = xq;
        }
        bq = malloc(sizeof *bq * (size_t)L->nc);
        if (!bq) goto oom;
        for (int c = 0; c < L->nc; c++) {
            const double bs = (double)sx * L->sw[c];
            bq[c] = (float)((L->bias ? nearbyint(L->bias[c] / bs) : 0) * bs);
        }
        ind[1] = prep[1] = L->wdq;
        in3[0] = nd->in[0];
        in3[1] = nd->in[1];
        in3[2] = nd->n_in > 2 && nd->in[2] >= 0 ? nd->in[2] : nd->in[1]; /* any valid id */
        if (nd->op != SQZ_OP_MATMUL) {
            ind[2] = prep[2] = bq;
            ins[2] = (sqz_shape){1, {L->nc}};
            nin = 3;
        }
    }
    int32_t *save_in = nd->in;
    const uint32_t save_n = nd->n_in;
    if (qc) {
        nd->in = in3;
        nd->n_in = nin;
    }
    sqz_shape osh;
    int rc = run_node(g, ni, ins, ind, prep, 0, &out, &osh, q->err, q->err_len);
    nd->in = save_in;
    nd->n_in = save_n;
    free(xq);
    free(bq);
    if (rc != 0) return -1;
    const int y = nd->out[0];
    if (s->dom[y] && !fp32) {
        float sy;
        int32_t zy;
        if (Q->pick && !Q->picked[s->src[y]] && Q->f[y])
            seq_pick_range(Q, s->src[y], out, Q->f[y], (size_t)sqz_shape_numel(&osh));
        tensor_params(s, y, &sy, &zy);
        fake_quant(out, out, (size_t)sqz_shape_numel(&osh), sy, zy);
    }
    free(vt[y]);
    vt[y] = out;
    Q->sh[y] = osh;
    return 0;
oom:
    free(xq);
    free(bq);
    snprintf(q->err, q->err_len, "out of memory");
    return -1;
}

/* every compute layer's weights and bias by sequential GPTQ. 0 ok, -1 with
 * q->err. A graph the simulation does not cover (a node with several
 * outputs or more than Q_SEQ_MAX_IN inputs, a constant input that is not
 * float) gets GPTQ on the fp32 inputs instead. */
static int seq_gptq(qstate *S, int range_search) {
    qctx *q = &S->q;
    sqzc_graph *g = q->g;
    const int nn = g->n_nodes, nt = g->n_tensors;
    int ok = q->obs_of[q->input] >= 0;
    for (int i = 0; i < nn && ok; i++) {
        const sqzc_node *nd = &g->nodes[i];
        if (nd->op == SQZ_OP_INVALID) continue;
        if (nd->n_out != 1 || nd->out[0] < 0 || nd->n_in > Q_SEQ_MAX_IN) ok = 0;
        for (uint32_t k = 0; k < nd->n_in && ok; k++) {
            const int t = nd->in[k];
            if (t >= 0 && sqzc_producer(g, t) < 0 && t != q->input && !g->tensors[t].f32) ok = 0;
        }
    }
    if (!ok) return gptq_prepare(S);
    decide_domains(S); /* the int8 tensors of the simulation */
    seqsim Q;
    memset(&Q, 0, sizeof Q);
    Q.s = S;
    Q.n = q->n_images < Q_SEQ_IMAGES ? q->n_images : Q_SEQ_IMAGES;
    Q.t = calloc((size_t)nt + 1, sizeof *Q.t);
    Q.f = calloc((size_t)nt + 1, sizeof *Q.f);
    Q.sh = calloc((size_t)nt + 1, sizeof *Q.sh);
    Q.left = calloc((size_t)nt + 1, sizeof *Q.left);
    Q.picked = calloc((size_t)nt + 1, 1);
    Q.pick = range_search;
    int rc = -1;
    if (!Q.t || !Q.f || !Q.sh || !Q.left || !Q.picked) goto oom;
    for (int i = 0; i < nn; i++)
        if (g->nodes[i].op != SQZ_OP_INVALID)
            for (uint32_t k = 0; k < g->nodes[i].n_in; k++)
                if (g->nodes[i].in[k] >= 0) Q.left[g->nodes[i].in[k]]++;
    Q.sh[q->input] = q->in1;
    Q.sh[q->input].dims[0] = Q.n;
    const size_t nin = (size_t)sqz_shape_numel(&Q.sh[q->input]);
    Q.t[q->input] = malloc(sizeof(float) * (nin ? nin : 1));
    Q.f[q->input] = malloc(sizeof(float) * (nin ? nin : 1));
    if (!Q.t[q->input] || !Q.f[q->input]) goto oom;
    if (q_for_batches(q, Q.n, "sequential gptq", seq_input_fn, &Q) != 0) goto out;
    if (S->dom[q->input]) {
        float sc;
        int32_t zp;
        if (Q.pick && !Q.picked[S->src[q->input]])
            seq_pick_range(&Q, S->src[q->input], Q.t[q->input], Q.f[q->input], nin);
        tensor_params(S, q->input, &sc, &zp);
        fake_quant(Q.t[q->input], Q.t[q->input], nin, sc, zp);
    }
    for (int i = 0; i < nn; i++) {
        const sqzc_node *nd = &g->nodes[i];
        if (nd->op == SQZ_OP_INVALID) continue;
        if (S->kind[i] == K_COMPUTE && S->L[i].ok && seq_layer(&Q, i) != 0) goto out;
        if (seq_forward(&Q, i, 1) != 0 || seq_forward(&Q, i, 0) != 0) goto out;
        for (uint32_t k = 0; k < nd->n_in; k++) { /* inputs read for the last time */
            const int t = nd->in[k];
            if (t >= 0 && Q.t[t] && --Q.left[t] <= 0) {
                free(Q.t[t]);
                free(Q.f[t]);
                Q.t[t] = Q.f[t] = NULL;
            }
        }
    }
    rc = 0;
    goto out;
oom:
    snprintf(q->err, q->err_len, "out of memory");
out:
    for (int t = 0; t < nt; t++) {
        if (Q.t) free(Q.t[t]);
        if (Q.f) free(Q.f[t]);
    }
    free(Q.t);
    free(Q.f);
    free(Q.sh);
    free(Q.left);
    free(Q.picked);
    return rc;
}

static int big_layer(const qstate *S, int ni) {
    const sqzc_graph *g = S->q.g;
    return sqz_shape_numel(&g->tensors[g->nodes[ni].in[1]].shape) >= Q_WPAR_MIN;
}

/* weights and bias correction of compute node i (not done yet: sequential
 * GPTQ's are); 0 ok, -1 out of memory */
static int layer_weights(qstate *S, int i) {
    if (S->kind[i] != K_COMPUTE || !S->L[i].ok || S->L[i].wq) return 0;
    const int f = gemm_rows_fused(S, i);
    if (f != 0) return f < 0 ? -1 : 0;
    return quantize_weights(S, i, NULL, NULL) != 0 || correct_bias(S, i) != 0 ? -1 : 0;
}

/* the large layers one after another, each split over the threads */
static int quantize_big_layers(qstate *S) {
    int rc = 0;
    for (int i = 0; i < S->q.g->n_nodes; i++)
        if (S->kind[i] == K_COMPUTE && big_layer(S, i) && layer_weights(S, i) != 0) rc = -1;
    return rc;
}

/* observed tensor i's range and int8 parameters (when it has its own) */
static void tensor_range(qstate *S, int i) {
    qctx *q = &S->q;
    const int t = q->obs[i];
    if (S->src[t] != t) return;
    const int st = consumed_stats(S, t);
    sqzc_qstat_range(&q->st[st], q->o->method, q->o->percentile, &S->lo[t], &S->hi[t]);
    sqzc_qparams_from_range(S->lo[t], S->hi[t], &S->scale[t], &S->zp[t]);
}

/* The large fused layers (fused_begin) of a pool: their blocks of rows as
 * tasks of Q_FUSED_CHUNK blocks (LeNet-300-100's 784 x 300: 10 tasks of 32
 * rows) beside the ranges, instead of a parallel loop of their own before
 * them (a thread hand-off less; the threads' loads even out). */
#define Q_FUSED_CHUNK 8
typedef struct qpool {
    qfused *f;
    int nf;
    int *task;     /* per task: layer (index into f) */
    int64_t *blk0; /* per task: first block */
    int nt;
} qpool;

static void qpool_free(qpool *P) {
    for (int i = 0; i < P->nf; i++) free(P->f[i].rs);
    free(P->f);
    free(P->task);
    free(P->blk0);
    memset(P, 0, sizeof *P);
}

/* 0 ok, -1 out of memory */
static int qpool_begin(qstate *S, qpool *P) {
    const int nn = S->q.g->n_nodes;
    memset(P, 0, sizeof *P);
    P->f = malloc(sizeof *P->f * (size_t)nn);
    if (!P->f) return -1;
    int64_t ntask = 0;
    for (int i = 0; i < nn; i++) {
        if (S->kind[i] != K_COMPUTE || !S->L[i].ok || S->L[i].wq || !big_layer(S, i)) continue;
        const int rc = fused_begin(S, i, &P->f[P->nf]);
        if (rc < 0) return -1;
        if (rc == 0) continue;
        ntask += (fused_blocks(S, &P->f[P->nf]) + Q_FUSED_CHUNK - 1) / Q_FUSED_CHUNK;
        P->nf++;
    }
    P->task = malloc(sizeof *P->task * (size_t)(ntask + 1));
    P->blk0 = malloc(sizeof *P->blk0 * (size_t)(ntask + 1));
    if (!P->task || !P->blk0) return -1;
    for (int i = 0; i < P->nf; i++)
        for (int64_t b = 0; b < fused_blocks(S, &P->f[i]); b += Q_FUSED_CHUNK) {
            P->task[P->nt] = i;
            P->blk0[P->nt++] = b;
        }
    return 0;
}

/* what: 1 the ranges and the small layers (and P's tasks), 0 the ranges, 2
 * the small layers; one task per thread at a time, each writing its own
 * tensor's or layer's state (the results do not depend on the threads). 0
 * ok, -1 out of memory. */
static int ranges_and_layers(qstate *S, int what, qpool *P) {
    qctx *q = &S->q;
    const int nr = what == 2 ? 0 : q->n_obs, nl = what == 0 ? 0 : q->g->n_nodes;
    const int np = P ? P->nt : 0;
    int oom = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(q_threads(q)) if (q_threads(q) > 1)
#endif
    for (int k = 0; k < nr + np + nl; k++) {
        if (k < nr) {
            tensor_range(S, k);
        } else if (k < nr + np) {
            const qfused *f = &P->f[P->task[k - nr]];
            const int64_t b0 = P->blk0[k - nr], nb = fused_blocks(S, f);
            fused_rows(S, f, b0, b0 + Q_FUSED_CHUNK < nb ? b0 + Q_FUSED_CHUNK : nb);
        } else if (S->kind[k - nr - np] == K_COMPUTE && !big_layer(S, k - nr - np) &&
                   layer_weights(S, k - nr - np) != 0) {
#if defined(_OPENMP)
#pragma omp atomic write
#endif
            oom = 1;
        }
    }
    if (P)
        for (int i = 0; i < P->nf; i++) fused_end(S, &P->f[i]);
    return oom ? -1 : 0;
}

/* 6. the rewrite, the metadata, then the graph to o->graph_done. 0 ok, -1
 * with q->err. */
static int rewrite_done(qstate *S, const sqzc_quant_options *o, sqzc_quant_report *rep) {
    qctx *q = &S->q;
    double t_p = q_now();
    if (rewrite(S, rep) != 0) return -1;
    q_prof("rewrite", &t_p);
    char buf[64];
    snprintf(buf, sizeof buf, "%d", q->n_images);
    if (sqzc_graph_set_meta(q->g, "quant.method", sqzc_qmethod_name(o->method)) != 0 ||
        sqzc_graph_set_meta(q->g, "quant.calibration_images", buf) != 0) {
        snprintf(q->err, q->err_len, "out of memory");
        return -1;
    }
    return o->graph_done ? o->graph_done(q->g, o->graph_done_user, q->err, q->err_len) : 0;
}

/* Steps 3-6 on S->q.g with the statistics in S->q; S's per-node state
 * prepared for that graph. 0 ok, -1 with q->err. */
static int finish(qstate *S, const sqzc_quant_options *o, sqzc_quant_report *rep) {
    qctx *q = &S->q;
    sqzc_graph *g = q->g;
    char *err = q->err;
    size_t err_len = q->err_len;
    const int nn = g->n_nodes, nt = g->n_tensors;
    double t_p = q_now();
    rep->method = o->method;
    rep->percentile = o->percentile;
    rep->n_images = q->n_images;
    /* 3. ranges: own parameters for every observed tensor; followers share */
    for (int t = 0; t < nt; t++) S->src[t] = q->obs_of[t] >= 0 ? t : -1;
    for (int i = 0; i < nn; i++)
        if (g->nodes[i].op != SQZ_OP_INVALID && S->kind[i] == K_FOLLOW && g->nodes[i].in[0] >= 0 &&
            S->src[g->nodes[i].in[0]] >= 0)
            S->src[g->nodes[i].out[0]] = S->src[g->nodes[i].in[0]];
    /* An Add (or pool, Concat, Mul) output read only by a Relu takes the
     * Relu output's parameters, a range [0, hi] with zero point -128: the
     * op's requantization, which clamps to q >= -128, i.e. real >= 0, then
     * computes the Relu's result itself, in one rounding instead of two, and
     * the 256 levels cover [0, hi] instead of the op's whole signed range
     * (ResNet's residual joins: half the step). The Relu then requantizes
     * with equal parameters, an identity. As ONNX Runtime's QDQ quantizer,
     * which folds a Relu into the range of its input. */
    for (int i = 0; i < nn; i++) {
        const sqzc_node *n = &g->nodes[i];
        if (n->op != SQZ_OP_RELU || n->n_in < 1 || n->n_out != 1) continue;
        int x = n->in[0], y = n->out[0];
        if (x < 0 || y < 0 || q->obs_of[x] < 0 || q->obs_of[y] < 0 || S->src[x] != x ||
            S->src[y] != y || sqzc_consumer_count(g, x) != 1)
            continue;
        int is_out = 0;
        for (int k = 0; k < g->n_outputs; k++) is_out |= g->outputs[k] == x;
        int p = sqzc_producer(g, x);
        if (is_out || p < 0 || S->kind[p] != K_OWN) continue;
        S->src[x] = y;
        S->relu_in[x] = 1;
    }
    /* A Concat input produced only for the Concat (its one reader) by a node
     * with its own parameters takes the Concat output's: the Concat then
     * copies bytes instead of requantizing every input (each input rounded
     * once, at the output's step, instead of twice). As TFLite's and ONNX
     * Runtime's quantizers. */
    for (int i = 0; i < nn; i++) {
        const sqzc_node *n = &g->nodes[i];
        if (n->op != SQZ_OP_CONCAT || S->kind[i] != K_OWN || n->n_out != 1 || n->out[0] < 0)
            continue;
        const int y = S->src[n->out[0]];
        if (y < 0 || S->src[y] != y || q->obs_of[y] < 0) continue;
        for (uint32_t k = 0; k < n->n_in; k++) {
            int x = n->in[k];
            if (x < 0 || x == q->input || q->obs_of[x] < 0 || S->src[x] != x ||
                sqzc_consumer_count(g, x) != 1)
                continue;
            int is_out = 0;
            for (int j = 0; j < g->n_outputs; j++) is_out |= g->outputs[j] == x;
            int p = sqzc_producer(g, x);
            if (is_out || p < 0 ||
                (S->kind[p] != K_COMPUTE && S->kind[p] != K_OWN && S->kind[p] != K_ACT))
                continue;
            S->src[x] = y;
        }
    }
    /* 3. ranges (tensors that share another's parameters: views, MaxPool, the
     * above, need none of their own) and 4. weights and bias correction (a
     * layer's read its weights and pass 1's channel sums only, never a
     * range): rounding to nearest runs them together, the large layers one
     * after another, each split over the threads, then the ranges and the
     * other layers, one per thread (LeNet-300-100 kl at 2 threads: its four
     * KL searches were two rounds of two, then the layers). GPTQ's rounding
     * reads the data (gptq_prepare), sequential GPTQ the ranges: the ranges
     * first, then the layers. */
    const int together = o->rounding == SQZC_QR_NEAREST;
    int w_oom = 0;
    q_wthreads = q_threads(q);
    qpool pool;
    if (together && (qpool_begin(S, &pool) != 0 || quantize_big_layers(S) != 0)) w_oom = 1;
    if (!w_oom && ranges_and_layers(S, together, together ? &pool : NULL) != 0) w_oom = 1;
    if (together) qpool_free(&pool);
    q_prof(together ? "ranges, weights, bias" : "ranges", &t_p);
    if (!together) {
        if (o->rounding == SQZC_QR_GPTQ && gptq_prepare(S) != 0) return -1;
        if (o->rounding == SQZC_QR_GPTQ_SEQ && seq_gptq(S, o->range_search) != 0) return -1;
        q_prof("gptq statistics", &t_p);
        if (quantize_big_layers(S) != 0 || ranges_and_layers(S, 2, NULL) != 0) w_oom = 1;
    }
    if (w_oom) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    q_prof("weights, bias", &t_p);
    if (o->bias_correction == 2 && empirical_bias_correction(S) != 0) return -1;
    q_prof("empirical bias correction", &t_p);
    decide_domains(S);
    /* 5. per-layer report and fallback */
    int nrep = o->report_images < q->n_images ? o->report_images : q->n_images;
    rep->report_images = nrep > 0 ? nrep : 0;
    rplan P;
    memset(&P, 0, sizeof P);
    int rc = -1, *rows = malloc(sizeof *rows * 2 * ((size_t)q->n_obs + 1));
    if (!rows || (nrep > 0 && rplan_make(S, &P) != 0)) goto oom;
    /* The report changes nothing in the graph without a fallback: when it
     * reads kept images (not the sessions, which run the graph), it runs on
     * the other threads while this one rewrites the graph and hands it to
     * o->graph_done (sqz quant: serializes and writes it), then joins them
     * (LeNet-300-100: ~0.3 ms of the report beside ~1 ms of the write) */
    const qcache *c = &q->cache;
    const int along =
        nrep > 0 && o->min_sqnr_db <= 0 && o->graph_done && c->on && c->images >= nrep;
    if (nrep > 0 && !along) {
        sim_user u = {S, &P};
        if (q_for_batches(q, nrep, "per-layer report", sim_fn, &u) != 0) goto out;
        if (o->min_sqnr_db > 0) {
            for (int i = 0; i < nn; i++) {
                qlayer *L = &S->L[i];
                if (S->kind[i] != K_COMPUTE || !L->ok || !(L->s_yy > 0)) continue;
                if (sqnr_db(L->s_yy, L->s_ee) < o->min_sqnr_db) L->ok = 0;
            }
            decide_domains(S);
        }
    }
    for (int i = 0; i < nn; i++)
        if (S->kind[i] == K_COMPUTE) {
            if (S->qnode[i])
                rep->n_int8++;
            else
                rep->n_fp32++;
        }
    if (!along) q_prof("per-layer report", &t_p);
    if (report_fill(S, rep, rows) != 0) goto oom;
    if (!along) {
        report_sqnr(S, nrep > 0 ? &P : NULL, rep, rows);
        rc = rewrite_done(S, o, rep);
        goto out;
    }
    char serr[512] = "";
    int rc_w = 0, rc_s = 0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(q_threads(q)) if (q_threads(q) > 1)
#endif
    {
        char e[512];
#if defined(_OPENMP)
        const int master = omp_get_thread_num() == 0;
#else
        const int master = 1;
#endif
        if (master) rc_w = rewrite_done(S, o, rep);
        if (rplan_tasks(S, &P, c, nrep, e, sizeof e) != 0) {
#if defined(_OPENMP)
#pragma omp critical(q_sim_err)
#endif
            if (!rc_s) {
                rc_s = -1;
                snprintf(serr, sizeof serr, "%s", e);
            }
        }
    }
    if (rc_w == 0 && rc_s != 0) snprintf(err, err_len, "%s", serr);
    report_sqnr(S, &P, rep, rows);
    q_prof("report (beside the rewrite)", &t_p);
    rc = rc_w != 0 || rc_s != 0 ? -1 : 0;
    goto out;
oom:
    snprintf(err, err_len, "out of memory");
out:
    free(rows);
    rplan_free(&P);
    return rc;
}

int sqzc_quantize(sqzc_graph *g, const sqzc_calib_set *set, const sqzc_quant_options *o,
                  sqzc_quant_report *rep_out, char *err, size_t err_len) {
    double t_start = q_now();
    sqzc_quant_report rep_local, *rep = rep_out ? rep_out : &rep_local;
    memset(rep, 0, sizeof *rep);
    qstate S;
    memset(&S, 0, sizeof S);
    S.q.err = err;
    S.q.err_len = err_len;
    /* the split (calibrate() repeats it, a no-op then) before the node count
     * the layers are freed by */
    if (split_table_acts(g, err, err_len) != 0) {
        sqzc_quant_report_free(rep);
        return -1;
    }
    const int nn = g->n_nodes;
    int rc = calibrate(&S, g, set, o, 0, &rep->cle_pairs, &rep->secs_calibrate);
    if (rc == 0) rc = finish(&S, o, rep);
    /* S.L is indexed by the original nodes */
    state_free_layers(&S, nn < g->n_nodes ? nn : g->n_nodes);
    qctx_free(&S.q);
    rep->secs_total = q_now() - t_start;
    if (rc != 0 || !rep_out) sqzc_quant_report_free(rep);
    return rc;
}

struct sqzc_quant_calib {
    qctx q; /* statistics, session and cache of the calibrated graph q.g */
    int cle_pairs;
    double secs;
};

int sqzc_quant_calibrate(sqzc_graph *g, const sqzc_calib_set *set, const sqzc_quant_options *o,
                         sqzc_quant_calib **out, char *err, size_t err_len) {
    *out = NULL;
    qstate S;
    memset(&S, 0, sizeof S);
    S.q.err = err;
    S.q.err_len = err_len;
    sqzc_quant_calib *c = calloc(1, sizeof *c);
    int rc = c ? calibrate(&S, g, set, o, 1, &c->cle_pairs, &c->secs) : -1;
    if (!c) snprintf(err, err_len, "out of memory");
    state_free_layers(&S, g->n_nodes);
    if (rc != 0) {
        qctx_free(&S.q);
        free(c);
        return -1;
    }
    c->q = S.q;
    c->q.o = NULL;
    c->q.err = NULL;
    *out = c;
    return 0;
}

void sqzc_quant_calib_free(sqzc_quant_calib *c) {
    if (!c) return;
    qctx_free(&c->q);
    free(c);
}

int sqzc_quantize_calibrated(sqzc_graph *g, sqzc_quant_calib *c, const sqzc_quant_options *o,
                             sqzc_quant_report *rep_out, char *err, size_t err_len) {
    double t_start = q_now();
    sqzc_quant_report rep_local, *rep = rep_out ? rep_out : &rep_local;
    memset(rep, 0, sizeof *rep);
    const sqzc_graph *g0 = c->q.g;
    if (o->method < SQZC_QM_MINMAX || o->method > SQZC_QM_MSE ||
        (o->method == SQZC_QM_PERCENTILE && !(o->percentile > 50 && o->percentile <= 100))) {
        snprintf(err, err_len, "bad method %d / percentile %g", o->method, o->percentile);
        return -1;
    }
    /* g must be another copy of the calibrated graph: same tensors; it gets
     * the equalized weights (and the activations split off its layers as the
     * calibrated graph's were) */
    if (g != g0) {
        if (split_table_acts(g, err, err_len) != 0) return -1;
        if (g->n_tensors != g0->n_tensors || g->n_nodes != g0->n_nodes) {
            snprintf(err, err_len, "graph differs from the calibrated one");
            return -1;
        }
        for (int t = 0; t < g->n_tensors; t++) {
            const sqzc_tensor *a = &g0->tensors[t], *b = &g->tensors[t];
            if (strcmp(a->name, b->name) != 0 || !a->f32 != !b->f32) {
                snprintf(err, err_len, "graph differs from the calibrated one (tensor '%s')",
                         b->name);
                return -1;
            }
            if (a->f32 &&
                memcmp(a->f32, b->f32, sizeof(float) * (size_t)sqz_shape_numel(&a->shape)) != 0 &&
                sqzc_tensor_set_f32(g, t, &a->shape, a->f32) != 0) {
                snprintf(err, err_len, "out of memory");
                return -1;
            }
        }
    }
    qstate S;
    memset(&S, 0, sizeof S);
    S.q = c->q;
    S.q.g = g;
    S.q.o = o;
    S.q.err = err;
    S.q.err_len = err_len;
    const int nn = g->n_nodes;
    int rc = state_prepare(&S, g, 0);
    if (rc != 0) snprintf(err, err_len, "out of memory");
    rep->cle_pairs = c->cle_pairs;
    rep->secs_calibrate = c->secs;
    sqzc_quant_options oc = *o; /* (no graph_done here) */
    oc.graph_done = NULL;
    if (rc == 0) rc = finish(&S, &oc, rep);
    state_free_layers(&S, nn < g->n_nodes ? nn : g->n_nodes);
    /* the session / cache opened or filled meanwhile stay with the calibration */
    c->q = S.q;
    c->q.g = (sqzc_graph *)g0;
    c->q.o = NULL;
    c->q.err = NULL;
    rep->secs_total = q_now() - t_start;
    if (rc != 0 || !rep_out) sqzc_quant_report_free(rep);
    return rc;
}
