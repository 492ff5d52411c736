/* channel.c - dependency-group channel pruning (see sqzc/channel_prune.h).
 *
 * One union-find element per channel of every activation tensor (axis 1).
 * Each node either links its channels (pass-through ops), produces channels
 * (Conv / Gemm / MatMul: "sources"), consumes them (the input side of those
 * layers: "sinks"), or blocks every channel it touches. A zero analysis runs
 * alongside: assuming every source filter were zeroed, which channels are
 * exactly zero? A group whose channel reaches a sink non-zero (through an op
 * with f(0) != 0) is blocked, so removal always equals zeroing. */
#include "sqzc/channel_prune.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqzc/passes.h"

/* ---------------------------------------------------------------- BN gammas */

struct sqzc_bn_gammas {
    int n;
    char **layer;  /* producer node name */
    float **gamma; /* |gamma| per channel */
    int64_t *count;
};

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void sqzc_bn_gammas_free(sqzc_bn_gammas *b) {
    if (!b) return;
    for (int i = 0; i < b->n; i++) {
        free(b->layer[i]);
        free(b->gamma[i]);
    }
    free(b->layer);
    free(b->gamma);
    free(b->count);
    free(b);
}

int sqzc_bn_gammas_count(const sqzc_bn_gammas *b) {
    return b ? b->n : 0;
}

int sqzc_bn_gammas_capture(const sqzc_graph *g, sqzc_bn_gammas **out) {
    *out = NULL;
    sqzc_bn_gammas *b = calloc(1, sizeof *b);
    if (!b) return -1;
    int cap = g->n_nodes > 0 ? g->n_nodes : 1;
    b->layer = calloc((size_t)cap, sizeof *b->layer);
    b->gamma = calloc((size_t)cap, sizeof *b->gamma);
    b->count = calloc((size_t)cap, sizeof *b->count);
    if (!b->layer || !b->gamma || !b->count) goto oom;
    for (int i = 0; i < g->n_nodes; i++) {
        const sqzc_node *n = &g->nodes[i];
        if (n->op != SQZ_OP_BATCHNORM || n->n_in < 5 || n->in[1] < 0) continue;
        const sqzc_tensor *gm = &g->tensors[n->in[1]];
        if (!gm->f32) continue;
        int p = sqzc_producer(g, n->in[0]);
        if (p < 0) continue;
        int op = g->nodes[p].op;
        if (op != SQZ_OP_CONV && op != SQZ_OP_GEMM && op != SQZ_OP_MATMUL) continue;
        int64_t m = sqz_shape_numel(&gm->shape);
        if (m <= 0) continue;
        float *v = malloc((size_t)m * sizeof *v);
        char *nm = xstrdup(g->nodes[p].name);
        if (!v || !nm) {
            free(v);
            free(nm);
            goto oom;
        }
        for (int64_t k = 0; k < m; k++) v[k] = fabsf(gm->f32[k]);
        b->layer[b->n] = nm;
        b->gamma[b->n] = v;
        b->count[b->n] = m;
        b->n++;
    }
    *out = b;
    return 0;
oom:
    sqzc_bn_gammas_free(b);
    return -1;
}

static const float *bn_lookup(const sqzc_bn_gammas *b, const char *layer, int64_t count) {
    if (!b) return NULL;
    for (int i = 0; i < b->n; i++)
        if (strcmp(b->layer[i], layer) == 0 && b->count[i] == count) return b->gamma[i];
    return NULL;
}

/* ---------------------------------------------------------------- analysis */

enum node_kind {
    K_OTHER = 0, /* blocked, or no channels */
    K_CONV,      /* group-1 Conv: source (out), sink (in) */
    K_DW,        /* depthwise Conv: source (out), linked in <-> out */
    K_GEMM,      /* Gemm (transA = 0): source (out), sink (A) */
    K_MATMUL,    /* MatMul with constant 2-D B: source (out), sink (A) */
    K_PASS,      /* elementwise in 0 <-> out 0 */
    K_BINARY,    /* Add / Sub / Mul / Div / Pow / PRelu: linked operands, constants sliced */
    K_BN,        /* standalone BatchNorm: params sliced */
    K_CONCAT,    /* axis 1 */
    K_SPLIT,     /* axis 1 */
    K_FLAT,      /* Flatten / Reshape [N, C, ...] -> [N, C*HW] */
    K_UNFLAT,    /* Reshape [N, C] -> [N, C, 1, ...] */
};

struct sqzc_channel_analysis {
    const sqzc_graph *g;
    int criterion;
    int64_t *base, *cnt; /* per tensor: first element (-1 none), channel count */
    int64_t n_elem;
    int64_t *parent;
    int32_t *reason; /* per element: reason id of a block, -1 */
    uint8_t *zero;   /* per element: exactly zero when all sources are zeroed */
    int32_t *nz;     /* per element: node that made it non-zero, -1 */
    uint8_t *kind;   /* per node */
    char **reasons;
    int n_reasons, cap_reasons;
    /* groups */
    int n_groups;
    int32_t *gid; /* per element: group id, -1 blocked */
    double *score;
    int32_t *gfam;
    /* families */
    int n_fam;
    char **fam_name;
    int *fam_n;
    int **fam_order;
    int *glob_order;
    /* blocked layers */
    int n_bl;
    char **bl_layer, **bl_reason;
};

typedef struct actx {
    sqzc_channel_analysis *a;
    char *err;
    size_t err_len;
    int oom;
} actx;

static int64_t uf_find(int64_t *p, int64_t e) {
    int64_t r = e;
    while (p[r] != r) r = p[r];
    while (p[e] != r) {
        int64_t nx = p[e];
        p[e] = r;
        e = nx;
    }
    return r;
}

static void uf_union(int64_t *p, int64_t x, int64_t y) {
    x = uf_find(p, x);
    y = uf_find(p, y);
    if (x == y) return;
    if (x < y)
        p[y] = x;
    else
        p[x] = y;
}

static int add_reason(actx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int add_reason(actx *c, const char *fmt, ...) {
    sqzc_channel_analysis *a = c->a;
    if (a->n_reasons == a->cap_reasons) {
        int cap = a->cap_reasons ? a->cap_reasons * 2 : 16;
        char **p = realloc(a->reasons, (size_t)cap * sizeof *p);
        if (!p) {
            c->oom = 1;
            return -1;
        }
        a->reasons = p;
        a->cap_reasons = cap;
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *s = xstrdup(buf);
    if (!s) {
        c->oom = 1;
        return -1;
    }
    a->reasons[a->n_reasons] = s;
    return a->n_reasons++;
}

static int has_el(const sqzc_channel_analysis *a, int t) {
    return t >= 0 && a->base[t] >= 0;
}

static void block_range(sqzc_channel_analysis *a, int t, int64_t lo, int64_t hi, int reason) {
    if (!has_el(a, t) || reason < 0) return;
    for (int64_t i = lo; i < hi && i < a->cnt[t]; i++)
        if (a->reason[a->base[t] + i] < 0) a->reason[a->base[t] + i] = reason;
}

static void block_tensor(sqzc_channel_analysis *a, int t, int reason) {
    if (has_el(a, t)) block_range(a, t, 0, a->cnt[t], reason);
}

/* Block every channel a node touches; its outputs become non-zero. */
static void block_node(actx *c, int ni, const char *why) {
    sqzc_channel_analysis *a = c->a;
    const sqzc_node *n = &a->g->nodes[ni];
    int r = add_reason(c, "%s '%s' %s", sqz_op_name(n->op), n->name, why);
    for (uint32_t k = 0; k < n->n_in; k++) block_tensor(a, n->in[k], r);
    for (uint32_t k = 0; k < n->n_out; k++) block_tensor(a, n->out[k], r);
    a->kind[ni] = K_OTHER;
}

static void set_nonzero(sqzc_channel_analysis *a, int t, int ni) {
    if (!has_el(a, t)) return;
    for (int64_t i = 0; i < a->cnt[t]; i++) {
        a->zero[a->base[t] + i] = 0;
        a->nz[a->base[t] + i] = ni;
    }
}

/* Link x[i] <-> y[i] for all i and propagate zero-ness through f with
 * f(0) == 0 (keeps_zero) or not. Returns 0, or -1 when counts differ. */
static int link_all(sqzc_channel_analysis *a, int x, int y, int ni, int keeps_zero) {
    if (!has_el(a, x) || !has_el(a, y) || a->cnt[x] != a->cnt[y]) return -1;
    for (int64_t i = 0; i < a->cnt[x]; i++) {
        int64_t ex = a->base[x] + i, ey = a->base[y] + i;
        uf_union(a->parent, ex, ey);
        a->zero[ey] = keeps_zero && a->zero[ex];
        a->nz[ey] = a->zero[ey] ? -1 : (keeps_zero ? a->nz[ex] : ni);
    }
    return 0;
}

static int is_const(const sqzc_graph *g, int t) {
    return t >= 0 && g->tensors[t].f32 != NULL;
}

static int act_keeps_zero(const sqz_node *v) {
    int act = (int)sqz_attr_int(v, "sqz_act", 0);
    float lo = sqz_attr_float(v, "sqz_act_alpha", 0), hi = sqz_attr_float(v, "sqz_act_beta", 0);
    switch (act) {
    case SQZ_ACT_NONE:
    case SQZ_ACT_RELU:
    case SQZ_ACT_LEAKY_RELU:
    case SQZ_ACT_HARD_SWISH:
    case SQZ_ACT_TANH:
        return 1;
    case SQZ_ACT_CLIP:
        return lo <= 0.0f && hi >= 0.0f;
    default:
        return 0;
    }
}

static int norm_axis(int64_t axis, int nd) {
    return (int)(axis < 0 ? axis + nd : axis);
}

/* Is channel axis 1 of an nd-rank tensor in the node's ints attribute? */
static int attr_has_axis1(const sqz_node *v, const char *name, int nd) {
    const int64_t *ax;
    int na = sqz_attr_ints(v, name, &ax);
    for (int i = 0; i < na; i++)
        if (norm_axis(ax[i], nd) == 1) return 1;
    return 0;
}

/* The source side of a Conv / Gemm / MatMul: every output channel is zero
 * when its filter is zeroed (and the fused activation keeps zero). */
static void source_out(sqzc_channel_analysis *a, int ni, int t) {
    sqz_node v;
    sqzc_node_view(a->g, ni, &v);
    int kz = act_keeps_zero(&v);
    for (int64_t i = 0; i < a->cnt[t]; i++) {
        a->zero[a->base[t] + i] = (uint8_t)kz;
        a->nz[a->base[t] + i] = kz ? -1 : ni;
    }
}

/* Constant operand of a broadcasting op: the axis aligned with the output's
 * channel axis (-1: none, i.e. broadcast across channels). */
static int aligned_axis(const sqz_shape *cs, int out_nd, int64_t out_c) {
    int ax = 1 - (out_nd - cs->ndim);
    if (ax < 0 || ax >= cs->ndim || cs->dims[ax] == 1) return -1;
    (void)out_c;
    return ax;
}

static void analyze_binary(actx *c, int ni) {
    sqzc_channel_analysis *a = c->a;
    const sqzc_graph *g = a->g;
    const sqzc_node *n = &g->nodes[ni];
    int o = n->out[0];
    if (!has_el(a, o) || n->n_out != 1) {
        block_node(c, ni, "has an output without channels");
        return;
    }
    int od = g->tensors[o].shape.ndim;
    int64_t C = a->cnt[o];
    int linked[8] = {0};
    if (n->n_in > 8) {
        block_node(c, ni, "has too many inputs");
        return;
    }
    for (uint32_t k = 0; k < n->n_in; k++) {
        int t = n->in[k];
        if (t < 0) continue;
        const sqz_shape *s = &g->tensors[t].shape;
        int ax = aligned_axis(s, od, C);
        if (is_const(g, t)) {
            if (ax >= 0 && s->dims[ax] != C) {
                block_node(c, ni, "has a constant operand that does not broadcast per channel");
                return;
            }
            continue;
        }
        if (ax < 0) continue; /* broadcast across channels */
        if (s->ndim != od || !has_el(a, t) || a->cnt[t] != C) {
            block_node(c, ni, "broadcasts an operand in a way channel pruning cannot follow");
            return;
        }
        linked[k] = 1;
    }
    for (int64_t i = 0; i < C; i++) {
        int64_t eo = a->base[o] + i;
        int any_zero = 0, all_zero = 1, n_linked = 0, unlinked = 0;
        for (uint32_t k = 0; k < n->n_in; k++) {
            if (n->in[k] < 0) continue;
            if (!linked[k]) {
                unlinked++;
                continue;
            }
            int64_t e = a->base[n->in[k]] + i;
            uf_union(a->parent, e, eo);
            n_linked++;
            if (a->zero[e])
                any_zero = 1;
            else
                all_zero = 0;
        }
        int z;
        switch (n->op) {
        case SQZ_OP_ADD:
        case SQZ_OP_SUB:
            z = n_linked > 0 && unlinked == 0 && all_zero;
            break;
        case SQZ_OP_MUL:
            z = any_zero;
            break;
        case SQZ_OP_DIV: /* 0 / y with y not a pruned channel */
            z = linked[0] && a->zero[a->base[n->in[0]] + i] && !(n->n_in > 1 && linked[1]);
            break;
        case SQZ_OP_PRELU:
            z = linked[0] && a->zero[a->base[n->in[0]] + i];
            break;
        default:
            z = 0;
        }
        a->zero[eo] = (uint8_t)z;
        a->nz[eo] = z ? -1 : ni;
        if (!z && n->op != SQZ_OP_POW)
            for (uint32_t k = 0; k < n->n_in; k++)
                if (n->in[k] >= 0 && linked[k] && !a->zero[a->base[n->in[k]] + i] &&
                    a->nz[a->base[n->in[k]] + i] >= 0 && n->op != SQZ_OP_DIV)
                    a->nz[eo] = a->nz[a->base[n->in[k]] + i];
    }
    a->kind[ni] = K_BINARY;
}

static void analyze_node(actx *c, int ni) {
    sqzc_channel_analysis *a = c->a;
    const sqzc_graph *g = a->g;
    const sqzc_node *n = &g->nodes[ni];
    sqz_node v;
    sqzc_node_view(g, ni, &v);
    int x = n->n_in > 0 ? n->in[0] : -1;
    int y = n->n_out > 0 ? n->out[0] : -1;
    const sqz_shape *xs = x >= 0 ? &g->tensors[x].shape : NULL;
    const sqz_shape *ys = y >= 0 ? &g->tensors[y].shape : NULL;
    switch (n->op) {
    case SQZ_OP_CONV: {
        int w = n->n_in > 1 ? n->in[1] : -1, b = n->n_in > 2 ? n->in[2] : -1;
        if (!is_const(g, w) || (b >= 0 && !is_const(g, b))) {
            block_node(c, ni, "has non-constant weights");
            return;
        }
        if (!has_el(a, x) || !has_el(a, y)) {
            block_node(c, ni, "has no channel axis");
            return;
        }
        if (b >= 0 && sqz_shape_numel(&g->tensors[b].shape) != a->cnt[y]) {
            block_node(c, ni, "has a bias that is not per channel");
            return;
        }
        int64_t grp = sqz_attr_int(&v, "group", 1);
        if (grp == 1) {
            source_out(a, ni, y);
            a->kind[ni] = K_CONV;
        } else if (grp == a->cnt[x] && grp == a->cnt[y]) {
            for (int64_t i = 0; i < a->cnt[x]; i++)
                uf_union(a->parent, a->base[x] + i, a->base[y] + i);
            source_out(a, ni, y);
            a->kind[ni] = K_DW;
        } else {
            block_node(c, ni, "is a grouped convolution (only group 1 and depthwise are pruned)");
        }
        return;
    }
    case SQZ_OP_GEMM:
    case SQZ_OP_MATMUL: {
        int w = n->n_in > 1 ? n->in[1] : -1, b = n->n_in > 2 ? n->in[2] : -1;
        if (!is_const(g, w) || g->tensors[w].shape.ndim != 2 || !has_el(a, x) || !has_el(a, y) ||
            xs->ndim != 2 || ys->ndim != 2) {
            block_node(c, ni, "is not a 2-D layer with constant weights");
            return;
        }
        if (n->op == SQZ_OP_GEMM) {
            if (sqz_attr_int(&v, "transA", 0) != 0) {
                block_node(c, ni, "has transA = 1");
                return;
            }
            if (b >= 0) {
                int64_t bn = sqz_shape_numel(&g->tensors[b].shape);
                if (!is_const(g, b) || (bn != 1 && bn != a->cnt[y])) {
                    block_node(c, ni, "has a bias C that is not per output feature");
                    return;
                }
            }
        }
        source_out(a, ni, y);
        /* a scalar bias keeps a zeroed feature non-zero */
        if (b >= 0 && sqz_shape_numel(&g->tensors[b].shape) == 1 && g->tensors[b].f32[0] != 0)
            set_nonzero(a, y, ni);
        a->kind[ni] = n->op == SQZ_OP_GEMM ? K_GEMM : K_MATMUL;
        return;
    }
    case SQZ_OP_RELU:
    case SQZ_OP_LEAKY_RELU:
    case SQZ_OP_HARD_SWISH:
    case SQZ_OP_TANH:
    case SQZ_OP_SQRT:
    case SQZ_OP_IDENTITY:
    case SQZ_OP_CLIP:
    case SQZ_OP_SIGMOID:
    case SQZ_OP_HARD_SIGMOID:
    case SQZ_OP_MAXPOOL:
    case SQZ_OP_AVGPOOL:
    case SQZ_OP_GLOBAL_AVGPOOL:
    case SQZ_OP_RESIZE:
    case SQZ_OP_PAD:
    case SQZ_OP_SLICE:
    case SQZ_OP_SQUEEZE:
    case SQZ_OP_UNSQUEEZE:
    case SQZ_OP_REDUCE_MEAN:
    case SQZ_OP_SOFTMAX: {
        int kz = 1;
        if (n->op == SQZ_OP_SIGMOID || n->op == SQZ_OP_HARD_SIGMOID) kz = 0;
        if (n->op == SQZ_OP_CLIP)
            kz = sqz_attr_float(&v, "min", -INFINITY) <= 0 && sqz_attr_float(&v, "max", 0) >= 0;
        if (n->op == SQZ_OP_PAD) {
            const int64_t *p;
            int np = sqz_attr_ints(&v, "pads", &p);
            const int64_t *axes;
            int nax = sqz_attr_ints(&v, "axes", &axes);
            int nd = xs ? xs->ndim : 0;
            for (int k = 0; k < np; k++) {
                int ax = nax > 0 ? norm_axis(axes[k % nax], nd) : (nd > 0 ? k % nd : -1);
                if (ax == 1 && p[k] != 0) {
                    block_node(c, ni, "pads the channel axis");
                    return;
                }
            }
            const char *mode = sqz_attr_str(&v, "mode", "constant");
            if (strcmp(mode, "constant") == 0 && sqz_attr_float(&v, "value", 0) != 0) kz = 0;
        }
        if (n->op == SQZ_OP_SLICE && xs && attr_has_axis1(&v, "axes", xs->ndim)) {
            block_node(c, ni, "slices the channel axis");
            return;
        }
        if (n->op == SQZ_OP_SLICE && xs && sqz_attr_ints(&v, "axes", NULL) < 0) {
            const int64_t *st;
            if (sqz_attr_ints(&v, "starts", &st) >= 2) {
                block_node(c, ni, "slices the channel axis");
                return;
            }
        }
        if ((n->op == SQZ_OP_SQUEEZE || n->op == SQZ_OP_UNSQUEEZE || n->op == SQZ_OP_REDUCE_MEAN)) {
            const int64_t *ax;
            int na = sqz_attr_ints(&v, "axes", &ax);
            int nd = n->op == SQZ_OP_UNSQUEEZE ? (ys ? ys->ndim : 0) : (xs ? xs->ndim : 0);
            int ok = na > 0;
            for (int k = 0; k < na; k++)
                if (norm_axis(ax[k], nd) < 2) ok = 0;
            if (!ok) {
                block_node(c, ni, "changes or reduces the channel axis");
                return;
            }
        }
        if (n->op == SQZ_OP_SOFTMAX) {
            int nd = xs ? xs->ndim : 0;
            int ax = norm_axis(sqz_attr_int(&v, "axis", -1), nd);
            int legacy = (int)sqz_attr_int(&v, "legacy", 0);
            if (ax <= 1 || (legacy && ax <= 1)) {
                block_node(c, ni, "normalizes over the channel axis");
                return;
            }
            kz = 0;
        }
        if (n->n_out != 1 || link_all(a, x, y, ni, kz) != 0) {
            block_node(c, ni, "changes the channel count");
            return;
        }
        a->kind[ni] = K_PASS;
        return;
    }
    case SQZ_OP_ADD:
    case SQZ_OP_SUB:
    case SQZ_OP_MUL:
    case SQZ_OP_DIV:
    case SQZ_OP_POW:
    case SQZ_OP_PRELU:
        analyze_binary(c, ni);
        return;
    case SQZ_OP_BATCHNORM: {
        for (uint32_t k = 1; k < n->n_in; k++)
            if (!is_const(g, n->in[k]) ||
                sqz_shape_numel(&g->tensors[n->in[k]].shape) != (has_el(a, x) ? a->cnt[x] : -1)) {
                block_node(c, ni, "has non-constant or non-per-channel parameters");
                return;
            }
        if (n->n_out < 1 || link_all(a, x, y, ni, 0) != 0) {
            block_node(c, ni, "changes the channel count");
            return;
        }
        for (uint32_t k = 1; k < n->n_out; k++) block_node(c, ni, "has training outputs");
        a->kind[ni] = K_BN;
        return;
    }
    case SQZ_OP_CONCAT:
    case SQZ_OP_SPLIT: {
        int cc = n->op == SQZ_OP_CONCAT;
        int whole = cc ? y : x; /* the concatenated side */
        if (!has_el(a, whole)) {
            block_node(c, ni, "has no channel axis");
            return;
        }
        int nd = g->tensors[whole].shape.ndim;
        int ax = norm_axis(sqz_attr_int(&v, "axis", cc ? 1 : 0), nd);
        uint32_t nparts = cc ? n->n_in : n->n_out;
        if (ax != 1) {
            for (uint32_t k = 0; k < nparts; k++) {
                int part = cc ? n->in[k] : n->out[k];
                if (is_const(g, part) ||
                    (cc ? link_all(a, part, whole, ni, 1) : link_all(a, whole, part, ni, 1)) != 0) {
                    block_node(c, ni, "joins parts with different channels");
                    return;
                }
            }
            a->kind[ni] = K_PASS;
            return;
        }
        int64_t off = 0;
        for (uint32_t k = 0; k < nparts; k++) {
            int part = cc ? n->in[k] : n->out[k];
            if (part < 0 || g->tensors[part].shape.ndim != nd) {
                block_node(c, ni, "has a part of another rank");
                return;
            }
            int64_t pc = g->tensors[part].shape.dims[1];
            if (off + pc > a->cnt[whole]) {
                block_node(c, ni, "has inconsistent part sizes");
                return;
            }
            if (cc && is_const(g, part)) {
                int r = add_reason(c, "Concat '%s' has a constant input", n->name);
                block_range(a, whole, off, off + pc, r);
                for (int64_t i = 0; i < pc; i++) {
                    a->zero[a->base[whole] + off + i] = 0;
                    a->nz[a->base[whole] + off + i] = ni;
                }
            } else if (has_el(a, part)) {
                for (int64_t i = 0; i < pc; i++) {
                    int64_t ep = a->base[part] + i, ew = a->base[whole] + off + i;
                    uf_union(a->parent, ep, ew);
                    if (cc) {
                        a->zero[ew] = a->zero[ep];
                        a->nz[ew] = a->nz[ep];
                    } else {
                        a->zero[ep] = a->zero[ew];
                        a->nz[ep] = a->nz[ew];
                    }
                }
            } else {
                block_node(c, ni, "has a part without channels");
                return;
            }
            off += pc;
        }
        a->kind[ni] = cc ? K_CONCAT : K_SPLIT;
        return;
    }
    case SQZ_OP_FLATTEN:
    case SQZ_OP_RESHAPE: {
        if (!has_el(a, x) || !has_el(a, y) || n->n_out != 1) {
            block_node(c, ni, "has no channel axis");
            return;
        }
        if (n->op == SQZ_OP_RESHAPE && sqz_attr_int(&v, "allowzero", 0) != 0) {
            block_node(c, ni, "uses allowzero");
            return;
        }
        int64_t N = xs->dims[0], C = a->cnt[x];
        int64_t nel = sqz_shape_numel(xs);
        int flat = ys->ndim == 2 && ys->dims[0] == N && N > 0 && C > 0 && ys->dims[1] * N == nel &&
                   (nel / N) % C == 0;
        if (n->op == SQZ_OP_FLATTEN && norm_axis(sqz_attr_int(&v, "axis", 1), xs->ndim) != 1)
            flat = 0;
        if (flat) {
            int64_t hw = nel / N / C;
            for (int64_t f = 0; f < a->cnt[y]; f++) {
                int64_t ex = a->base[x] + f / hw, ey = a->base[y] + f;
                uf_union(a->parent, ex, ey);
                a->zero[ey] = a->zero[ex];
                a->nz[ey] = a->nz[ex];
            }
            a->kind[ni] = K_FLAT;
            return;
        }
        int unflat = n->op == SQZ_OP_RESHAPE && xs->ndim == 2 && ys->ndim > 2 && ys->dims[0] == N &&
                     ys->dims[1] == C;
        for (int d = 2; unflat && d < ys->ndim; d++) unflat = ys->dims[d] == 1;
        if (unflat && link_all(a, x, y, ni, 1) == 0) {
            a->kind[ni] = K_UNFLAT;
            return;
        }
        block_node(c, ni, "reshapes the channel axis");
        return;
    }
    default:
        block_node(c, ni, "is not handled by channel pruning");
        return;
    }
}

void sqzc_channel_analysis_free(sqzc_channel_analysis *a) {
    if (!a) return;
    free(a->base);
    free(a->cnt);
    free(a->parent);
    free(a->reason);
    free(a->zero);
    free(a->nz);
    free(a->kind);
    for (int i = 0; i < a->n_reasons; i++) free(a->reasons[i]);
    free(a->reasons);
    free(a->gid);
    free(a->score);
    free(a->gfam);
    for (int f = 0; f < a->n_fam; f++) {
        free(a->fam_name[f]);
        free(a->fam_order[f]);
    }
    free(a->fam_name);
    free(a->fam_n);
    free(a->fam_order);
    free(a->glob_order);
    for (int i = 0; i < a->n_bl; i++) {
        free(a->bl_layer[i]);
        free(a->bl_reason[i]);
    }
    free(a->bl_layer);
    free(a->bl_reason);
    free(a);
}

static int is_source_kind(int k) {
    return k == K_CONV || k == K_DW || k == K_GEMM || k == K_MATMUL;
}

/* Criterion of output channel ch of source node ni (>= 0), or -1 when the
 * BN criterion has no gamma for it. */
static double filter_score(const sqzc_channel_analysis *a, const sqzc_bn_gammas *bn, int ni,
                           int64_t ch) {
    const sqzc_graph *g = a->g;
    const sqzc_node *n = &g->nodes[ni];
    int64_t C = a->cnt[n->out[0]];
    if (a->criterion == SQZC_CRIT_BN) {
        const float *gm = bn_lookup(bn, n->name, C);
        return gm ? (double)gm[ch] : -1.0;
    }
    const sqzc_tensor *W = &g->tensors[n->in[1]];
    int64_t wn = sqz_shape_numel(&W->shape), per = wn / C, stride = 1, start = ch * per;
    if (a->kind[ni] == K_MATMUL ||
        (a->kind[ni] == K_GEMM &&
         !sqz_attr_int(&(sqz_node){.n_attrs = n->n_attr, .attrs = n->attrs}, "transB", 0))) {
        stride = C; /* B [K, N]: column ch */
        start = ch;
    }
    double s = 0;
    for (int64_t k = 0; k < per; k++) {
        double w = W->f32[start + k * stride];
        s += a->criterion == SQZC_CRIT_L1 ? fabs(w) : w * w;
    }
    s /= (double)(per > 0 ? per : 1);
    return a->criterion == SQZC_CRIT_L1 ? s : sqrt(s);
}

static const double *g_sort_score;
static int cmp_group(const void *pa, const void *pb) {
    int x = *(const int *)pa, y = *(const int *)pb;
    double sx = g_sort_score[x], sy = g_sort_score[y];
    if (sx != sy) return sx < sy ? -1 : 1;
    return (x > y) - (x < y);
}
static void sort_groups(int *ids, int n, const double *score) {
    g_sort_score = score; /* qsort has no context argument in C11 */
    qsort(ids, (size_t)n, sizeof *ids, cmp_group);
}

int sqzc_channel_analyze(const sqzc_graph *g, int criterion, const sqzc_bn_gammas *bn,
                         sqzc_channel_analysis **out, char *err, size_t err_len) {
    *out = NULL;
    if (criterion == SQZC_CRIT_BN && sqzc_bn_gammas_count(bn) == 0) {
        snprintf(err, err_len,
                 "criterion bn: the model has no BatchNormalization after a layer "
                 "(or it was folded before its gammas were captured)");
        return -1;
    }
    sqzc_channel_analysis *a = calloc(1, sizeof *a);
    actx c = {a, err, err_len, 0};
    int64_t *gp = NULL; /* group union-find for families */
    if (!a) goto oom;
    a->g = g;
    a->criterion = criterion;
    int nt = g->n_tensors, nn = g->n_nodes;
    a->base = malloc((size_t)(nt + 1) * sizeof *a->base);
    a->cnt = calloc((size_t)nt + 1, sizeof *a->cnt);
    a->kind = calloc((size_t)nn + 1, 1);
    if (!a->base || !a->cnt || !a->kind) goto oom;
    for (int t = 0; t < nt; t++) {
        const sqzc_tensor *x = &g->tensors[t];
        a->base[t] = -1;
        if (x->f32 || x->i64 || !x->has_shape || x->shape.ndim < 2 || x->shape.dims[1] < 1)
            continue;
        a->base[t] = a->n_elem;
        a->cnt[t] = x->shape.dims[1];
        a->n_elem += a->cnt[t];
    }
    size_t ne = (size_t)a->n_elem + 1;
    a->parent = malloc(ne * sizeof *a->parent);
    a->reason = malloc(ne * sizeof *a->reason);
    a->zero = calloc(ne, 1);
    a->nz = malloc(ne * sizeof *a->nz);
    a->gid = malloc(ne * sizeof *a->gid);
    if (!a->parent || !a->reason || !a->zero || !a->nz || !a->gid) goto oom;
    for (int64_t e = 0; e < a->n_elem; e++) {
        a->parent[e] = e;
        a->reason[e] = -1;
        a->nz[e] = -1;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int r = add_reason(&c, "graph input '%s'", g->tensors[g->inputs[i]].name);
        block_tensor(a, g->inputs[i], r);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int r = add_reason(&c, "feeds graph output '%s'", g->tensors[g->outputs[i]].name);
        block_tensor(a, g->outputs[i], r);
    }
    for (int i = 0; i < nn && !c.oom; i++) {
        const sqzc_node *n = &g->nodes[i];
        if (n->op == SQZ_OP_INVALID) continue;
        for (uint32_t k = 0; k < n->n_in; k++) {
            int p = n->in[k] >= 0 && !is_const(g, n->in[k]) ? sqzc_producer(g, n->in[k]) : -1;
            if (p > i) {
                snprintf(err, err_len, "channel pruning: graph is not topologically sorted at '%s'",
                         n->name);
                sqzc_channel_analysis_free(a);
                return -1;
            }
        }
        analyze_node(&c, i);
    }
    if (c.oom) goto oom;
    /* sinks must read exact zeros from removed channels */
    for (int i = 0; i < nn && !c.oom; i++) {
        int k = a->kind[i];
        if (k != K_CONV && k != K_GEMM && k != K_MATMUL) continue;
        int x = g->nodes[i].in[0];
        for (int64_t ch = 0; ch < a->cnt[x]; ch++) {
            int64_t e = a->base[x] + ch;
            if (a->zero[e] || a->reason[e] >= 0) continue;
            int nzn = a->nz[e];
            const char *fused = "";
            if (nzn >= 0) {
                sqz_node v;
                sqzc_node_view(g, nzn, &v);
                static const char *const kAct[] = {
                    "", "Relu", "Clip", "LeakyRelu", "HardSwish", "Sigmoid", "HardSigmoid", "Tanh"};
                int act = (int)sqz_attr_int(&v, "sqz_act", 0);
                if (act > 0 && act < 8) fused = kAct[act];
            }
            int r = add_reason(&c, "reaches '%s' non-zero after %s%s%s '%s' (f(0) != 0)",
                               g->nodes[i].name, nzn >= 0 ? sqz_op_name(g->nodes[nzn].op) : "?",
                               fused[0] ? "+" : "", fused, nzn >= 0 ? g->nodes[nzn].name : "?");
            a->reason[e] = r;
        }
    }
    if (c.oom) goto oom;
    /* propagate element blocks to roots; mark roots with a source */
    int32_t *root_reason = malloc(ne * sizeof *root_reason);
    uint8_t *root_src = calloc(ne, 1);
    if (!root_reason || !root_src) {
        free(root_reason);
        free(root_src);
        goto oom;
    }
    for (int64_t e = 0; e < a->n_elem; e++) root_reason[e] = -1;
    for (int64_t e = 0; e < a->n_elem; e++) {
        int64_t r = uf_find(a->parent, e);
        if (a->reason[e] >= 0 && root_reason[r] < 0) root_reason[r] = a->reason[e];
    }
    for (int i = 0; i < nn; i++)
        if (is_source_kind(a->kind[i])) {
            int y = g->nodes[i].out[0];
            for (int64_t ch = 0; ch < a->cnt[y]; ch++)
                root_src[uf_find(a->parent, a->base[y] + ch)] = 1;
        }
    int no_src = add_reason(&c, "has no prunable producer");
    /* group ids in element order */
    int64_t *root_gid = malloc(ne * sizeof *root_gid);
    if (!root_gid || c.oom) {
        free(root_reason);
        free(root_src);
        free(root_gid);
        goto oom;
    }
    for (int64_t e = 0; e < a->n_elem; e++) root_gid[e] = -1;
    for (int64_t e = 0; e < a->n_elem; e++) {
        int64_t r = uf_find(a->parent, e);
        if (root_reason[r] < 0 && !root_src[r]) root_reason[r] = no_src;
        if (root_reason[r] >= 0) {
            a->gid[e] = -1;
            continue;
        }
        if (root_gid[r] < 0) root_gid[r] = a->n_groups++;
        a->gid[e] = (int32_t)root_gid[r];
    }
    /* scores */
    a->score = calloc((size_t)a->n_groups + 1, sizeof *a->score);
    uint8_t *has_gamma = calloc((size_t)a->n_groups + 1, 1);
    if (!a->score || !has_gamma) {
        free(has_gamma);
        free(root_reason);
        free(root_src);
        free(root_gid);
        goto oom;
    }
    /* Group score: mean over its producer filters of the filter's criterion
     * relative to the mean of its layer (L1 / L2: raw norms are not
     * comparable across layers of different fan-in and scale; BN gammas are
     * used as they are, as in network slimming). */
    int *n_src = calloc((size_t)a->n_groups + 1, sizeof *n_src);
    if (!n_src) {
        free(has_gamma);
        free(root_reason);
        free(root_src);
        free(root_gid);
        goto oom;
    }
    for (int i = 0; i < nn; i++) {
        if (!is_source_kind(a->kind[i])) continue;
        int y = g->nodes[i].out[0];
        double mean = 0;
        int64_t cnt = 0;
        for (int64_t ch = 0; ch < a->cnt[y] && criterion != SQZC_CRIT_BN; ch++) {
            double s = filter_score(a, bn, i, ch);
            if (s >= 0) {
                mean += s;
                cnt++;
            }
        }
        mean = cnt && mean > 0 ? mean / (double)cnt : 1.0;
        for (int64_t ch = 0; ch < a->cnt[y]; ch++) {
            int gi = a->gid[a->base[y] + ch];
            if (gi < 0) continue;
            double s = filter_score(a, bn, i, ch);
            if (s >= 0) {
                a->score[gi] += s / mean;
                n_src[gi]++;
                has_gamma[gi] = 1;
            }
        }
    }
    for (int gi = 0; gi < a->n_groups; gi++)
        if (n_src[gi] > 0) a->score[gi] /= n_src[gi];
    free(n_src);
    if (criterion == SQZC_CRIT_BN) {
        /* groups without any gamma cannot be ranked: block them */
        int r = add_reason(&c, "has no BatchNormalization gamma (criterion bn)");
        int ng = 0;
        int32_t *remap = malloc(((size_t)a->n_groups + 1) * sizeof *remap);
        if (!remap || r < 0) {
            free(remap);
            free(has_gamma);
            free(root_reason);
            free(root_src);
            free(root_gid);
            goto oom;
        }
        for (int gi = 0; gi < a->n_groups; gi++) {
            remap[gi] = has_gamma[gi] ? ng : -1;
            if (has_gamma[gi]) a->score[ng++] = a->score[gi];
        }
        for (int64_t e = 0; e < a->n_elem; e++) {
            if (a->gid[e] < 0) continue;
            int64_t rt = uf_find(a->parent, e);
            if (remap[a->gid[e]] < 0) root_reason[rt] = r;
            a->gid[e] = remap[a->gid[e]];
        }
        a->n_groups = ng;
        free(remap);
    }
    free(has_gamma);
    /* families: groups sharing a tensor */
    gp = malloc(((size_t)a->n_groups + 1) * sizeof *gp);
    a->gfam = malloc(((size_t)a->n_groups + 1) * sizeof *a->gfam);
    if (!gp || !a->gfam) {
        free(root_reason);
        free(root_src);
        free(root_gid);
        goto oom;
    }
    for (int gi = 0; gi < a->n_groups; gi++) gp[gi] = gi;
    for (int t = 0; t < nt; t++) {
        if (!has_el(a, t)) continue;
        int first = -1;
        for (int64_t ch = 0; ch < a->cnt[t]; ch++) {
            int gi = a->gid[a->base[t] + ch];
            if (gi < 0) continue;
            if (first < 0)
                first = gi;
            else
                uf_union(gp, first, gi);
        }
    }
    for (int gi = 0; gi < a->n_groups; gi++) a->gfam[gi] = -1;
    int32_t *fam_of_root = malloc(((size_t)a->n_groups + 1) * sizeof *fam_of_root);
    a->fam_name = calloc((size_t)a->n_groups + 1, sizeof *a->fam_name);
    a->fam_n = calloc((size_t)a->n_groups + 1, sizeof *a->fam_n);
    a->fam_order = calloc((size_t)a->n_groups + 1, sizeof *a->fam_order);
    a->glob_order = malloc(((size_t)a->n_groups + 1) * sizeof *a->glob_order);
    a->bl_layer = calloc((size_t)nn + 1, sizeof *a->bl_layer);
    a->bl_reason = calloc((size_t)nn + 1, sizeof *a->bl_reason);
    int oomed = !fam_of_root || !a->fam_name || !a->fam_n || !a->fam_order || !a->glob_order ||
                !a->bl_layer || !a->bl_reason;
    if (!oomed) {
        for (int gi = 0; gi < a->n_groups; gi++) fam_of_root[gi] = -1;
        /* name families by their first source layer (node order) */
        for (int i = 0; i < nn && !oomed; i++) {
            if (!is_source_kind(a->kind[i])) continue;
            int y = g->nodes[i].out[0];
            int64_t kept = 0, blocked_first = -1;
            for (int64_t ch = 0; ch < a->cnt[y]; ch++) {
                int gi = a->gid[a->base[y] + ch];
                if (gi < 0) {
                    if (blocked_first < 0) blocked_first = ch;
                    continue;
                }
                kept++;
                int r = (int)uf_find(gp, gi);
                if (fam_of_root[r] < 0) {
                    fam_of_root[r] = a->n_fam;
                    a->fam_name[a->n_fam] = xstrdup(g->nodes[i].name);
                    if (!a->fam_name[a->n_fam]) oomed = 1;
                    a->n_fam++;
                }
            }
            if (blocked_first >= 0) {
                char buf[600];
                int64_t rt = uf_find(a->parent, a->base[y] + blocked_first);
                const char *why = root_reason[rt] >= 0 ? a->reasons[root_reason[rt]] : "?";
                if (kept == 0)
                    snprintf(buf, sizeof buf, "%s", why);
                else
                    snprintf(buf, sizeof buf, "%lld of %lld channels kept: %s",
                             (long long)(a->cnt[y] - kept), (long long)a->cnt[y], why);
                a->bl_layer[a->n_bl] = xstrdup(g->nodes[i].name);
                a->bl_reason[a->n_bl] = xstrdup(buf);
                if (!a->bl_layer[a->n_bl] || !a->bl_reason[a->n_bl]) oomed = 1;
                a->n_bl++;
            }
        }
        for (int gi = 0; gi < a->n_groups && !oomed; gi++) {
            int f = fam_of_root[uf_find(gp, gi)];
            a->gfam[gi] = f;
            if (f >= 0) a->fam_n[f]++;
        }
        for (int f = 0; f < a->n_fam && !oomed; f++) {
            a->fam_order[f] = malloc(((size_t)a->fam_n[f] + 1) * sizeof(int));
            if (!a->fam_order[f]) oomed = 1;
            a->fam_n[f] = 0;
        }
        int ng = 0;
        for (int gi = 0; gi < a->n_groups && !oomed; gi++) {
            int f = a->gfam[gi];
            if (f < 0) continue; /* cannot happen: every group has a source */
            a->fam_order[f][a->fam_n[f]++] = gi;
            a->glob_order[ng++] = gi;
        }
        if (!oomed) {
            for (int f = 0; f < a->n_fam; f++) sort_groups(a->fam_order[f], a->fam_n[f], a->score);
            sort_groups(a->glob_order, ng, a->score);
        }
    }
    free(fam_of_root);
    free(root_reason);
    free(root_src);
    free(root_gid);
    free(gp);
    gp = NULL;
    if (oomed) goto oom;
    *out = a;
    return 0;
oom:
    free(gp);
    sqzc_channel_analysis_free(a);
    snprintf(err, err_len, "out of memory in channel pruning analysis");
    return -1;
}

int sqzc_channel_n_groups(const sqzc_channel_analysis *a) {
    return a->n_groups;
}
int sqzc_channel_n_families(const sqzc_channel_analysis *a) {
    return a->n_fam;
}
const char *sqzc_channel_family_name(const sqzc_channel_analysis *a, int f) {
    return a->fam_name[f];
}
int sqzc_channel_family_groups(const sqzc_channel_analysis *a, int f) {
    return a->fam_n[f];
}
const int *sqzc_channel_family_order(const sqzc_channel_analysis *a, int f) {
    return a->fam_order[f];
}
int sqzc_channel_n_blocked(const sqzc_channel_analysis *a) {
    return a->n_bl;
}
void sqzc_channel_blocked(const sqzc_channel_analysis *a, int i, const char **layer,
                          const char **reason) {
    *layer = a->bl_layer[i];
    *reason = a->bl_reason[i];
}

int sqzc_channel_family_of(const sqzc_channel_analysis *a, const char *layer) {
    for (int i = 0; i < a->g->n_nodes; i++) {
        const sqzc_node *n = &a->g->nodes[i];
        if (n->op == SQZ_OP_INVALID || strcmp(n->name, layer) != 0 || n->n_out < 1) continue;
        int y = n->out[0];
        if (!has_el(a, y)) return -1;
        for (int64_t ch = 0; ch < a->cnt[y]; ch++) {
            int gi = a->gid[a->base[y] + ch];
            if (gi >= 0) return a->gfam[gi];
        }
        return -1;
    }
    return -1;
}

/* ---------------------------------------------------------------- cost */

/* Kept channels of tensor t (its shape's dim 1 when it has no elements). */
static int64_t kept_of(const sqzc_channel_analysis *a, int t, const uint8_t *remove) {
    const sqzc_tensor *x = &a->g->tensors[t];
    if (!has_el(a, t)) return x->shape.ndim >= 2 ? x->shape.dims[1] : 1;
    int64_t k = 0;
    for (int64_t i = 0; i < a->cnt[t]; i++) {
        int gi = a->gid[a->base[t] + i];
        k += !(remove && gi >= 0 && remove[gi]);
    }
    return k;
}

void sqzc_channel_cost(const sqzc_channel_analysis *a, const uint8_t *remove, int64_t *params,
                       int64_t *macs) {
    const sqzc_graph *g = a->g;
    int64_t P = 0, M = 0;
    uint8_t *counted = calloc((size_t)g->n_tensors + 1, 1);
    for (int i = 0; i < g->n_nodes; i++) {
        const sqzc_node *n = &g->nodes[i];
        if (n->op == SQZ_OP_INVALID) continue;
        int k = a->kind[i];
        if (n->op == SQZ_OP_CONV && n->n_in >= 2 && is_const(g, n->in[1])) {
            const sqz_shape *ws = &g->tensors[n->in[1]].shape, *ys = &g->tensors[n->out[0]].shape;
            int64_t ksz = 1;
            for (int d = 2; d < ws->ndim; d++) ksz *= ws->dims[d];
            int64_t co = kept_of(a, n->out[0], remove), ci = kept_of(a, n->in[0], remove);
            int64_t cig = k == K_DW ? 1 : (k == K_CONV ? ci : ws->dims[1]);
            int64_t sp = ys->dims[0];
            for (int d = 2; d < ys->ndim; d++) sp *= ys->dims[d];
            P += co * cig * ksz + (n->n_in > 2 && n->in[2] >= 0 ? co : 0);
            M += co * cig * ksz * sp;
            if (counted) {
                counted[n->in[1]] = 1;
                if (n->n_in > 2 && n->in[2] >= 0) counted[n->in[2]] = 1;
            }
        } else if ((k == K_GEMM || k == K_MATMUL)) {
            const sqz_shape *xs = &g->tensors[n->in[0]].shape;
            int64_t ci = kept_of(a, n->in[0], remove), co = kept_of(a, n->out[0], remove);
            P += ci * co;
            M += xs->dims[0] * ci * co;
            if (n->n_in > 2 && n->in[2] >= 0) {
                int64_t bn = sqz_shape_numel(&g->tensors[n->in[2]].shape);
                P += bn == 1 ? 1 : co;
                if (counted) counted[n->in[2]] = 1;
            }
            if (counted) counted[n->in[1]] = 1;
        } else if ((n->op == SQZ_OP_GEMM || n->op == SQZ_OP_MATMUL ||
                    n->op == SQZ_OP_CONV_TRANSPOSE) &&
                   n->n_in >= 2 && is_const(g, n->in[1])) {
            const sqz_shape *ws = &g->tensors[n->in[1]].shape;
            int64_t wn = sqz_shape_numel(ws);
            const sqz_shape *xs = &g->tensors[n->in[0]].shape;
            if (n->op == SQZ_OP_CONV_TRANSPOSE) {
                int64_t sp = xs->dims[0];
                for (int d = 2; d < xs->ndim; d++) sp *= xs->dims[d];
                M += wn * sp;
            } else {
                int64_t rows = sqz_shape_numel(xs) / (xs->ndim ? xs->dims[xs->ndim - 1] : 1);
                int64_t cols = ws->ndim == 2 ? ws->dims[1] : 1;
                if (n->op == SQZ_OP_GEMM &&
                    sqz_attr_int(&(sqz_node){.n_attrs = n->n_attr, .attrs = n->attrs}, "transB", 0))
                    cols = ws->dims[0];
                M += rows * (ws->ndim == 2 ? (wn / cols) : wn) * cols;
            }
        }
    }
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].f32 && !(counted && counted[t])) {
            int used = sqzc_consumer_count(g, t) > 0;
            if (used) P += sqz_shape_numel(&g->tensors[t].shape);
        }
    free(counted);
    *params = P;
    *macs = M;
}

/* ---------------------------------------------------------------- selection */

static void select_ratio(const sqzc_channel_analysis *a, float ratio, int global,
                         const float *fam_ratio, uint8_t *remove) {
    memset(remove, 0, (size_t)a->n_groups);
    int *left = malloc(((size_t)a->n_fam + 1) * sizeof *left);
    if (!left) return;
    int pool = 0;
    for (int f = 0; f < a->n_fam; f++) {
        left[f] = a->fam_n[f];
        float r = fam_ratio[f] >= 0 ? fam_ratio[f] : (global ? -1.0f : ratio);
        if (r < 0) {
            pool += a->fam_n[f];
            continue;
        }
        int k = (int)floor((double)r * a->fam_n[f] + 0.5);
        if (k > a->fam_n[f] - 1) k = a->fam_n[f] - 1;
        for (int j = 0; j < k; j++) remove[a->fam_order[f][j]] = 1;
        left[f] -= k;
    }
    if (global) {
        int k = (int)floor((double)ratio * pool + 0.5), done = 0;
        for (int j = 0; j < a->n_groups && done < k; j++) {
            int gi = a->glob_order[j], f = a->gfam[gi];
            if (f < 0 || fam_ratio[f] >= 0 || left[f] <= 1) continue;
            remove[gi] = 1;
            left[f]--;
            done++;
        }
    }
    free(left);
}

int sqzc_channel_select(const sqzc_channel_analysis *a, const sqzc_channel_options *o,
                        uint8_t *remove, float *ratio_used, char *err, size_t err_len) {
    if (!(o->ratio >= 0.0f && o->ratio < 1.0f)) {
        snprintf(err, err_len, "channel ratio %g is not in [0, 1)", (double)o->ratio);
        return -1;
    }
    float *fr = malloc(((size_t)a->n_fam + 1) * sizeof *fr);
    if (!fr) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (int f = 0; f < a->n_fam; f++) fr[f] = -1.0f;
    for (int i = 0; i < o->n_layers; i++) {
        int f = sqzc_channel_family_of(a, o->layers[i].name);
        float r = o->layers[i].value;
        if (f < 0) {
            snprintf(err, err_len, "layer '%s' has no prunable channels (not a layer, or blocked)",
                     o->layers[i].name);
            free(fr);
            return -1;
        }
        if (!(r >= 0.0f && r < 1.0f)) {
            snprintf(err, err_len, "layer '%s': ratio %g is not in [0, 1)", o->layers[i].name,
                     (double)r);
            free(fr);
            return -1;
        }
        fr[f] = r;
    }
    int64_t target = o->target_macs > 0 ? o->target_macs : o->target_params;
    float used = o->ratio;
    if (target > 0) {
        int by_macs = o->target_macs > 0;
        int64_t p, m;
        select_ratio(a, 0.99f, o->global, fr, remove);
        sqzc_channel_cost(a, remove, &p, &m);
        if ((by_macs ? m : p) > target) {
            snprintf(err, err_len, "target %lld %s is out of reach: channel pruning gets to %lld",
                     (long long)target, by_macs ? "MACs" : "params", (long long)(by_macs ? m : p));
            free(fr);
            return -1;
        }
        float lo = 0.0f, hi = 0.99f; /* cost(hi) <= target */
        for (int it = 0; it < 24; it++) {
            float mid = 0.5f * (lo + hi);
            select_ratio(a, mid, o->global, fr, remove);
            sqzc_channel_cost(a, remove, &p, &m);
            if ((by_macs ? m : p) <= target)
                hi = mid;
            else
                lo = mid;
        }
        used = hi;
    }
    select_ratio(a, used, o->global, fr, remove);
    if (ratio_used) *ratio_used = used;
    free(fr);
    return 0;
}

/* ---------------------------------------------------------------- apply */

/* Copy src (shape s) keeping the indices of axis ax where keep[i]; new shape
 * in *os. Returns a malloc'd array or NULL. */
static float *slice_axis(const float *src, const sqz_shape *s, int ax, const uint8_t *keep,
                         sqz_shape *os) {
    int64_t outer = 1, inner = 1, len = s->dims[ax], kept = 0;
    for (int d = 0; d < ax; d++) outer *= s->dims[d];
    for (int d = ax + 1; d < s->ndim; d++) inner *= s->dims[d];
    for (int64_t i = 0; i < len; i++) kept += keep[i] != 0;
    *os = *s;
    os->dims[ax] = kept;
    float *dst =
        malloc((size_t)(outer * kept * inner > 0 ? outer * kept * inner : 1) * sizeof *dst);
    if (!dst) return NULL;
    float *p = dst;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < len; i++)
            if (keep[i]) {
                memcpy(p, src + (o * len + i) * inner, (size_t)inner * sizeof *p);
                p += inner;
            }
    return dst;
}

typedef struct apply_ctx {
    sqzc_graph *g;
    const sqzc_channel_analysis *a;
    const uint8_t *remove;
    char *err;
    size_t err_len;
} apply_ctx;

/* keep mask of tensor t (length dims[1]); malloc'd. */
static uint8_t *keep_mask(const apply_ctx *c, int t) {
    const sqzc_channel_analysis *a = c->a;
    int64_t n = a->cnt[t];
    uint8_t *k = malloc((size_t)(n > 0 ? n : 1));
    if (!k) return NULL;
    for (int64_t i = 0; i < n; i++) {
        int gi = a->gid[a->base[t] + i];
        k[i] = !(gi >= 0 && c->remove[gi]);
    }
    return k;
}

static int all_kept(const uint8_t *k, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!k[i]) return 0;
    return 1;
}

/* Replace input slot of node ni by a copy of its constant sliced on up to two
 * axes (ax = -1: skip). */
static int replace_sliced(apply_ctx *c, int ni, uint32_t slot, int ax0, const uint8_t *k0, int ax1,
                          const uint8_t *k1) {
    sqzc_graph *g = c->g;
    int t = g->nodes[ni].in[slot];
    sqz_shape s = g->tensors[t].shape, s1, s2;
    float *d1 = NULL, *d2 = NULL;
    const float *cur = g->tensors[t].f32;
    if (ax0 >= 0) {
        d1 = slice_axis(cur, &s, ax0, k0, &s1);
        if (!d1) goto oom;
        cur = d1;
        s = s1;
    }
    if (ax1 >= 0) {
        d2 = slice_axis(cur, &s, ax1, k1, &s2);
        if (!d2) goto oom;
        cur = d2;
        s = s2;
    }
    char base[400];
    snprintf(base, sizeof base, "%s_pruned", g->tensors[t].name);
    int nt = sqzc_tensor_add_unique(g, base);
    if (nt < 0 || sqzc_tensor_set_f32(g, nt, &s, cur) != 0) goto oom;
    g->nodes[ni].in[slot] = nt;
    free(d1);
    free(d2);
    return 0;
oom:
    free(d1);
    free(d2);
    snprintf(c->err, c->err_len, "out of memory pruning '%s'", g->nodes[ni].name);
    return -1;
}

static int apply_node(apply_ctx *c, int ni) {
    sqzc_graph *g = c->g;
    const sqzc_channel_analysis *a = c->a;
    int kind = a->kind[ni];
    sqzc_node *n = &g->nodes[ni];
    int x = n->in[0], y = n->out[0];
    uint8_t *kx = NULL, *ky = NULL;
    int rc = -1;
    if (kind == K_CONV || kind == K_DW || kind == K_GEMM || kind == K_MATMUL || kind == K_BINARY ||
        kind == K_BN || kind == K_SPLIT || kind == K_FLAT || kind == K_UNFLAT) {
        ky = keep_mask(c, y);
        if (!ky || (has_el(a, x) && !(kx = keep_mask(c, x)))) {
            snprintf(c->err, c->err_len, "out of memory");
            goto done;
        }
    }
    switch (kind) {
    case K_CONV:
    case K_DW: {
        int dw = kind == K_DW;
        int ax1 = !dw && !all_kept(kx, a->cnt[x]) ? 1 : -1;
        int ax0 = !all_kept(ky, a->cnt[y]) ? 0 : -1;
        if ((ax0 >= 0 || ax1 >= 0) && replace_sliced(c, ni, 1, ax0, ky, ax1, kx) != 0) goto done;
        n = &g->nodes[ni];
        if (ax0 >= 0 && n->n_in > 2 && n->in[2] >= 0 &&
            replace_sliced(c, ni, 2, 0, ky, -1, NULL) != 0)
            goto done;
        if (dw) {
            int64_t k = 0;
            for (int64_t i = 0; i < a->cnt[y]; i++) k += ky[i];
            if (sqzc_node_set_int(g, ni, "group", k) != 0) goto oom;
        }
        break;
    }
    case K_GEMM:
    case K_MATMUL: {
        sqz_node v;
        sqzc_node_view(g, ni, &v);
        int tb = kind == K_GEMM && sqz_attr_int(&v, "transB", 0);
        int in_ax = tb ? 1 : 0, out_ax = tb ? 0 : 1;
        int sx = !all_kept(kx, a->cnt[x]), sy = !all_kept(ky, a->cnt[y]);
        if ((sx || sy) && replace_sliced(c, ni, 1, sx ? in_ax : -1, kx, sy ? out_ax : -1, ky) != 0)
            goto done;
        n = &g->nodes[ni];
        if (sy && n->n_in > 2 && n->in[2] >= 0) {
            const sqz_shape *bs = &g->tensors[n->in[2]].shape;
            if (sqz_shape_numel(bs) != 1 &&
                replace_sliced(c, ni, 2, bs->ndim - 1, ky, -1, NULL) != 0)
                goto done;
        }
        break;
    }
    case K_BINARY:
    case K_BN: {
        if (all_kept(ky, a->cnt[y])) break;
        int od = g->tensors[y].shape.ndim;
        for (uint32_t k = kind == K_BN ? 1 : 0; k < g->nodes[ni].n_in; k++) {
            int t = g->nodes[ni].in[k];
            if (!is_const(g, t)) continue;
            int ax = kind == K_BN ? 0 : aligned_axis(&g->tensors[t].shape, od, a->cnt[y]);
            if (ax < 0) continue;
            if (replace_sliced(c, ni, k, ax, ky, -1, NULL) != 0) goto done;
        }
        break;
    }
    case K_SPLIT: {
        int64_t *sz = malloc(((size_t)n->n_out + 1) * sizeof *sz);
        if (!sz) goto oom;
        int64_t off = 0;
        for (uint32_t k = 0; k < n->n_out; k++) {
            int64_t pc = g->tensors[n->out[k]].shape.dims[1], kept = 0;
            for (int64_t i = 0; i < pc; i++) kept += kx[off + i];
            sz[k] = kept;
            off += pc;
        }
        int r = sqzc_node_set_ints(g, ni, "split", sz, n->n_out);
        free(sz);
        if (r != 0) goto oom;
        break;
    }
    case K_FLAT:
    case K_UNFLAT:
        if (n->op == SQZ_OP_RESHAPE) {
            int64_t shp[SQZ_MAX_DIMS];
            int nd = g->tensors[y].shape.ndim;
            shp[0] = 0;
            shp[1] = -1;
            for (int d = 2; d < nd; d++) shp[d] = 1;
            if (sqzc_node_set_ints(g, ni, "shape", shp, (uint32_t)nd) != 0) goto oom;
        }
        break;
    default:
        break;
    }
    rc = 0;
    goto done;
oom:
    snprintf(c->err, c->err_len, "out of memory pruning '%s'", g->nodes[ni].name);
done:
    free(kx);
    free(ky);
    return rc;
}

int sqzc_channel_apply(sqzc_graph *g, const sqzc_channel_analysis *a, const uint8_t *remove,
                       char *err, size_t err_len) {
    if (g != a->g) {
        snprintf(err, err_len, "channel pruning: analysis of another graph");
        return -1;
    }
    apply_ctx c = {g, a, remove, err, err_len};
    int nn = g->n_nodes;
    for (int i = 0; i < nn; i++) {
        if (g->nodes[i].op == SQZ_OP_INVALID) continue;
        if (apply_node(&c, i) != 0) return -1;
    }
    for (int t = 0; t < g->n_tensors; t++)
        if (!g->tensors[t].f32 && !g->tensors[t].i64) g->tensors[t].has_shape = 0;
    for (int i = 0; i < g->n_inputs; i++) g->tensors[g->inputs[i]].has_shape = 1;
    if (sqzc_infer_shapes(g, err, err_len) != 0) return -1;
    if (sqzc_graph_compact(g) != 0) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

int sqzc_channel_zero(sqzc_graph *g, const sqzc_channel_analysis *a, const uint8_t *remove,
                      char *err, size_t err_len) {
    if (g != a->g) {
        snprintf(err, err_len, "channel pruning: analysis of another graph");
        return -1;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        int k = a->kind[i];
        if (!is_source_kind(k)) continue;
        sqzc_node *n = &g->nodes[i];
        int y = n->out[0];
        int64_t C = a->cnt[y];
        sqzc_tensor *W = &g->tensors[n->in[1]];
        int64_t per = sqz_shape_numel(&W->shape) / C;
        sqz_node v;
        sqzc_node_view(g, i, &v);
        int col = k == K_MATMUL || (k == K_GEMM && !sqz_attr_int(&v, "transB", 0));
        sqzc_tensor *B = n->n_in > 2 && n->in[2] >= 0 ? &g->tensors[n->in[2]] : NULL;
        for (int64_t ch = 0; ch < C; ch++) {
            int gi = a->gid[a->base[y] + ch];
            if (gi < 0 || !remove[gi]) continue;
            for (int64_t j = 0; j < per; j++) W->f32[col ? j * C + ch : ch * per + j] = 0.0f;
            if (B && sqz_shape_numel(&B->shape) == C) B->f32[ch] = 0.0f;
            if (B && sqz_shape_numel(&B->shape) == 1 && B->f32[0] != 0.0f) {
                snprintf(err, err_len, "layer '%s': a scalar bias cannot be zeroed per channel",
                         n->name);
                return -1;
            }
        }
    }
    return 0;
}
