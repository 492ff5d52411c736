/* session.c - pre-inference (shapes, kernel prepare, MPool planning) and the
 * executor. Everything that can be done once is done in sqz_session_create;
 * sqz_session_run only calls kernels on pre-bound pointers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dwconv.h"
#include "fastops.h"
#include "gemm.h"
#include "int8.h"
#include "model.h"
#include "par.h"
#include "ref/ref.h"
#include "sqz/plan.h"
#include "xdw.h"

#define SQZ_ARENA_ALIGN 64
/* Refuse a tensor above this many bytes: a corrupt or absurd shape, not a model. */
#define SQZ_MAX_TENSOR_BYTES ((uint64_t)1 << 36)

typedef struct node_exec {
    const sqz_op_impl *impl;
    sqz_op_ctx ctx;
    sqz_shape *in_shape;
    const float **in_data;
    sqz_shape *out_shape;
    float **out_data;
    uint8_t *in_dt, *out_dt; /* dtypes and quant params of the node's tensors */
    sqz_qparams *in_q, *out_q;
    uint64_t macs, params, param_bytes;
    int skip;      /* fused into the next node: not run, output not stored */
    int xdw_x1;    /* fused expansion + depthwise (fuse_expand_dw): 1 + the tensor read as
                      input 0 (the expansion's input), else 0 */
    int noop;      /* a Concat whose inputs were written in place into its output: not run */
    int down_host; /* a down conv run inside node down_host - 1 (fuse_down), which writes
                      its output: not run (noop); else 0 */
    int chain_lo;  /* the last conv of a conv chain from node chain_lo - 1 (chain_find) */
    char err[192];
    double prof_s;   /* SQZ_PROFILE: seconds spent in run() over all runs */
    double prof_min; /* SQZ_PROFILE: fastest single run() (robust on a busy machine) */
} node_exec;

struct sqz_session {
    const sqz_model *m;
    sqz_shape *shapes; /* per tensor */
    float **ptr;       /* per tensor: constant data or arena slot */
    node_exec *nodes;
    void *arena;
    size_t arena_bytes, lower_bound_bytes, naive_bytes;
    size_t reused_bytes; /* the reusing plan's arena (= arena_bytes unless separate) */
    int separate;        /* every buffer its own slot (use_separate_slots) */
    int peak_step;
    int num_threads;
    unsigned char *input_set; /* per graph input: set since the last run */
    int profile;              /* SQZ_PROFILE at creation: 1 wall time, 2 CPU time */
    long prof_runs;
    int team; /* run every node with the helper threads of pool (see sqz_session_run) */
    sqz_par_pool *pool;
    int splits; /* some node may split over the threads (not a LeNet-sized or small int8 model) */
};

static double prof_now(int profile) {
    struct timespec ts;
    clock_gettime(profile == 2 ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* SQZ_PROFILE=1: mean ms per run of each node (and its fastest run: the mean
 * of a node is easily inflated by other jobs on a shared machine), printed to
 * stderr when the session is freed (a developer aid; no cost when unset).
 * SQZ_PROFILE=cpu: process CPU time instead of wall time (all threads summed;
 * on a shared machine it does not count the time slices other processes take). */
static void prof_print(const sqz_session *s) {
    double total = 0;
    for (int i = 0; i < s->m->n_nodes; i++) total += s->nodes[i].prof_s;
    if (s->prof_runs <= 0 || total <= 0) return;
    double total_min = 0;
    for (int i = 0; i < s->m->n_nodes; i++)
        if (!s->nodes[i].skip && s->nodes[i].impl) total_min += s->nodes[i].prof_min;
    fprintf(stderr,
            "sqz profile: %ld runs, %d threads, %.3f ms (%s) per run in nodes (sum of node "
            "minima %.3f ms)\n",
            s->prof_runs, s->num_threads, 1e3 * total / (double)s->prof_runs,
            s->profile == 2 ? "process CPU time" : "wall time", 1e3 * total_min);
    for (int i = 0; i < s->m->n_nodes; i++) {
        const node_exec *e = &s->nodes[i];
        if (e->skip || !e->impl) continue;
        fprintf(stderr, "%4d %-18s %-28s %9.4f ms %5.1f%%  %8.1f GFLOP/s  min %9.4f ms\n", i,
                sqz_op_name(s->m->nodes[i].op), s->m->nodes[i].name ? s->m->nodes[i].name : "",
                1e3 * e->prof_s / (double)s->prof_runs, 100.0 * e->prof_s / total,
                e->prof_s > 0 ? 2.0 * (double)e->macs * (double)s->prof_runs / e->prof_s * 1e-9
                              : 0.0,
                1e3 * e->prof_min);
    }
}

void sqz_session_options_init(sqz_session_options *o) {
    memset(o, 0, sizeof *o);
}

static void session_destroy(sqz_session *s) {
    if (!s) return;
    if (s->nodes && s->profile) prof_print(s);
    if (s->nodes) {
        for (int i = 0; i < s->m->n_nodes; i++) {
            node_exec *e = &s->nodes[i];
            if (e->impl && e->impl->release && e->ctx.params) e->impl->release(e->ctx.params);
            free(e->in_shape);
            free(e->in_data);
            free(e->out_shape);
            free(e->out_data);
            free(e->in_dt);
            free(e->out_dt);
            free(e->in_q);
            free(e->out_q);
        }
    }
    free(s->nodes);
    free(s->shapes);
    free(s->ptr);
    free(s->input_set);
    sqz_aligned_free(s->arena);
    sqz_par_pool_free(s->pool);
    free(s);
}

void sqz_session_free(sqz_session *s) {
    session_destroy(s);
}

/* Bytes of a tensor of elements of esz bytes; -1 when a dim is negative or the
 * product of the non-zero dims exceeds the cap (checked even when another dim
 * is 0, so no kernel ever multiplies hostile dims into an overflow). */
static int shape_bytes_dt(const sqz_shape *sh, unsigned esz, uint64_t *bytes) {
    uint64_t n = esz ? esz : 4;
    int zero = 0;
    for (int d = 0; d < sh->ndim; d++) {
        if (sh->dims[d] < 0) return -1;
        uint64_t v = (uint64_t)sh->dims[d];
        if (v == 0) {
            zero = 1;
            continue;
        }
        if (n > SQZ_MAX_TENSOR_BYTES / v) return -1;
        n *= v;
    }
    *bytes = zero ? 0 : n;
    return 0;
}

static int shape_bytes(const sqz_shape *sh, uint64_t *bytes) {
    return shape_bytes_dt(sh, 4, bytes);
}

static unsigned tensor_esz(const sqz_model *m, int t) {
    unsigned e = sqz_dtype_size(m->tensors[t].dtype);
    return e ? e : 4;
}

static const char *dtype_name(int dt) {
    switch (dt) {
    case SQZ_DT_F32:
        return "f32";
    case SQZ_DT_I8:
        return "i8";
    case SQZ_DT_I32:
        return "i32";
    default:
        return "?";
    }
}

static void fmt_shape(const sqz_shape *s, char *buf, size_t n) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int d = 0; d < s->ndim && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, d ? ",%lld" : "%lld", (long long)s->dims[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* Ops whose kernel may write its output over input 0 (element i of the
 * output depends only on element i of the input). */
static int unary_inplace(int op) {
    switch (op) {
    case SQZ_OP_RELU:
    case SQZ_OP_LEAKY_RELU:
    case SQZ_OP_CLIP:
    case SQZ_OP_SIGMOID:
    case SQZ_OP_HARD_SIGMOID:
    case SQZ_OP_HARD_SWISH:
    case SQZ_OP_TANH:
    case SQZ_OP_SQRT:
    case SQZ_OP_PRELU:
    case SQZ_OP_BATCHNORM:
    case SQZ_OP_SOFTMAX:
        return 1;
    default:
        return 0;
    }
}

static int binary_inplace(int op) {
    return op == SQZ_OP_ADD || op == SQZ_OP_SUB || op == SQZ_OP_MUL || op == SQZ_OP_DIV ||
           op == SQZ_OP_POW;
}

static int view_op(int op) {
    return op == SQZ_OP_RESHAPE || op == SQZ_OP_FLATTEN || op == SQZ_OP_SQUEEZE ||
           op == SQZ_OP_UNSQUEEZE || op == SQZ_OP_IDENTITY;
}

static int same_shape(const sqz_shape *a, const sqz_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d]) return 0;
    return 1;
}

/* MPool sharing: views (Reshape, Flatten, Squeeze, Unsqueeze, Identity) alias
 * their input; element-wise ops write over an input whose storage nobody reads
 * afterwards (an Add into its dead operand). root[t] receives the tensor whose
 * buffer t uses; the root's item lifetime grows to cover every tensor sharing
 * it and the other items get size 0, so the planner sees one buffer per root. */
/* Small models on 2+ threads give every buffer its own slot in the arena
 * (sqz_plan_separate) when all of them together take at most this much (the
 * whole working set then stays in each core's L2). With reused slots a
 * node's stores mostly land on lines the other core wrote last (the previous
 * occupant was split over the threads differently), and each store must first
 * take its line from that core: the small ResNet's unsplit first conv, 1 thread
 * 3.4 us, took 8 us at 2 threads in the reused arena and 4.3 us when the
 * master had touched the whole arena before the run. Whole small ResNet at 2
 * threads, same run, interleaved: 0.112-0.115 -> 0.098 ms median (1 thread
 * unchanged); the torchvision models (arenas of MBs, beyond L2) were 3-6%
 * slower without reuse, hence the bound. SQZ_ARENA_REUSE=1: always reuse. */
#define SQZ_SEPARATE_MAX ((size_t)1 << 20)

static int use_separate_slots(const sqz_session *s) {
    const char *e = getenv("SQZ_ARENA_REUSE");
    if (!s->splits || (e && e[0] == '1')) return 0;
    const char *me = getenv("SQZ_SEPARATE_MAX"); /* bytes, for A/B of the bound */
    size_t max = me && atoll(me) > 0 ? (size_t)atoll(me) : SQZ_SEPARATE_MAX;
    return s->naive_bytes <= max;
}

static int alias_buffers(sqz_session *s, sqz_plan_item *items, int32_t *root) {
    const sqz_model *m = s->m;
    int nt = m->n_tensors;
    for (int t = 0; t < nt; t++) root[t] = t;
    for (int i = 0; i < m->n_nodes; i++) {
        const sqz_node *nd = &m->nodes[i];
        if (nd->n_outputs != 1 || nd->n_inputs < 1) continue;
        int out = nd->outputs[0];
        if (!items[out].size) continue;
        int pick = -1;
        for (uint32_t k = 0; k < nd->n_inputs && pick < 0; k++) {
            int t = nd->inputs[k];
            if (t < 0 || (m->tensors[t].flags & SQZ_TF_CONST)) continue;
            int r = root[t];
            if (items[r].size != items[out].size) continue;
            if (view_op(nd->op)) {
                if (k == 0) pick = t; /* read-only sharing: no lifetime condition */
                continue;
            }
            int ok = (k == 0 && unary_inplace(nd->op)) ||
                     (binary_inplace(nd->op) && same_shape(&s->shapes[t], &s->shapes[out]));
            /* the storage must be dead after this node (its group's last reader
             * is this node) and no other input of the node may share it unless
             * it is the very same tensor (read at the same index) */
            ok = ok && items[r].last == i;
            for (uint32_t j = 0; j < nd->n_inputs && ok; j++) {
                int u = nd->inputs[j];
                if (j != k && u >= 0 && u != t && !(m->tensors[u].flags & SQZ_TF_CONST) &&
                    root[u] == r)
                    ok = 0;
            }
            if (ok) pick = t;
        }
        if (pick < 0) continue;
        int r = root[pick];
        root[out] = r;
        if (items[out].last > items[r].last) items[r].last = items[out].last;
        items[out].size = 0;
    }
    return 0;
}

/* one per-tensor scale and zero point, equal in both (an int8 Concat of such
 * inputs is a plain copy) */
static int same_qparams(const sqz_qparams *a, const sqz_qparams *b) {
    return a->kind == SQZ_QUANT_PER_TENSOR && b->kind == SQZ_QUANT_PER_TENSOR && a->n == 1 &&
           b->n == 1 && a->scale[0] == b->scale[0] && a->zero_point[0] == b->zero_point[0];
}

/* Concat in place: when every input of an f32 Concat (or an int8 one whose
 * inputs all carry its output's scale and zero point) whose output is one
 * block per input (the dims before the axis are all 1, e.g. N = 1, axis 1)
 * is a tensor produced by a node, read by this Concat only, not a graph
 * output and not sharing a buffer, each input is placed at its slice of the
 * output (root = the output, sub = its byte offset): the producers write
 * straight into the output and the Concat does not run (SqueezeNet's fire
 * modules, ShuffleNet). The output's lifetime starts at its first input's. */
static void concat_in_place(sqz_session *s, sqz_plan_item *items, int32_t *root, size_t *sub,
                            const int32_t *readers) {
    const sqz_model *m = s->m;
    for (int i = 0; i < m->n_nodes; i++) {
        const sqz_node *nd = &m->nodes[i];
        node_exec *e = &s->nodes[i];
        if (nd->op != SQZ_OP_CONCAT || nd->n_outputs != 1 || nd->n_inputs < 1 || e->skip) continue;
        int out = nd->outputs[0];
        const int dt = m->tensors[out].dtype;
        if (root[out] != out || !items[out].size || (dt != SQZ_DT_F32 && dt != SQZ_DT_I8)) continue;
        const sqz_shape *os = &s->shapes[out];
        int64_t axis = sqz_attr_int(nd, "axis", 0);
        if (axis < 0) axis += os->ndim;
        if (axis < 0 || axis >= os->ndim) continue;
        int64_t outer = 1;
        for (int d = 0; d < axis; d++) outer *= os->dims[d];
        if (outer != 1) continue;
        int ok = 1;
        size_t total = 0;
        for (uint32_t k = 0; k < nd->n_inputs && ok; k++) {
            int t = nd->inputs[k];
            ok = t >= 0 && !(m->tensors[t].flags & SQZ_TF_CONST) && m->tensors[t].dtype == dt &&
                 (dt == SQZ_DT_F32 || same_qparams(&m->tensors[t].q, &m->tensors[out].q)) &&
                 root[t] == t && sub[t] == 0 && items[t].first >= 0 && readers[t] == 1 &&
                 items[t].last == i;
            for (int g = 0; g < m->n_inputs && ok; g++)
                if (m->inputs[g] == t) ok = 0;
            for (uint32_t j = 0; j < k && ok; j++)
                if (nd->inputs[j] == t) ok = 0;
            /* a tensor that other tensors share (a view of it, an in-place op
             * over it, an earlier in-place Concat into it) keeps its buffer */
            for (int u = 0; u < m->n_tensors && ok; u++)
                if (u != t && root[u] == t) ok = 0;
            if (ok) {
                uint64_t b = 0;
                shape_bytes_dt(&s->shapes[t], tensor_esz(m, t), &b);
                ok = items[t].size == (size_t)b;
                total += (size_t)b;
            }
        }
        if (!ok || total != items[out].size) continue;
        size_t off = 0;
        for (uint32_t k = 0; k < nd->n_inputs; k++) {
            int t = nd->inputs[k];
            root[t] = out;
            sub[t] = off;
            off += items[t].size;
            if (items[t].first < items[out].first) items[out].first = items[t].first;
            items[t].size = 0;
        }
        e->noop = 1;
    }
}

/* A 2-D conv attribute list of n ints: absent, or every value v */
static int attr_all(const sqz_node *nd, const char *name, int n, int64_t v) {
    const int64_t *a;
    int c = sqz_attr_ints(nd, name, &a);
    if (c <= 0) return 1;
    if (c != n) return 0;
    for (int i = 0; i < n; i++)
        if (a[i] != v) return 0;
    return 1;
}

static void xdw_run_op(const sqz_op_ctx *ctx) {
    sqz_xdw_run(ctx->params, ctx->in_data[0], ctx->out_data[0], ctx->scratch);
}
static uint64_t xdw_macs_op(const sqz_op_ctx *ctx) {
    return ctx->params ? sqz_xdw_macs(ctx->params) : 0;
}
static int xdw_prepare_op(sqz_op_ctx *ctx) {
    (void)ctx;
    return -1; /* set up by fuse_expand_dw, never prepared from a node */
}
static const sqz_op_impl xdw_impl = {xdw_prepare_op, xdw_run_op, sqz_xdw_free, xdw_macs_op};

/* Tensors of at least this many bytes between an expansion and a depthwise
 * conv are not materialised (fuse_expand_dw) at 1 thread: from 4 MiB (twice
 * L2: the tensor then goes out to L3 / DRAM and back; below it the unfused
 * pair was as fast: MobileNetV2 1.8 MB blocks, MNASNet's 2.4 MB one
 * +0.5..1% fused). At 2+ threads none (each core's half of the tensor fits
 * its L2; see fuse_expand_dw). SQZ_XDW_MIN overrides both (A/B:
 * SQZ_XDW_MIN=0 fuses every candidate, a huge value none). */
#define XDW_MIN_BYTES_1T ((size_t)4 << 20)

/* Expansion + depthwise (xdw.h): an f32 1x1 conv (stride 1, no padding,
 * group 1, constant weights, batch 1) whose output is read only by the
 * depthwise conv right after it (on the depthwise driver, explicit pads)
 * runs inside that node, a band of rows at a time; the 1x1 conv does not run
 * and its output gets no buffer. Before planning: the depthwise node now
 * reads the expansion's input (xdw_x1), whose lifetime the planner extends. */
static void fuse_expand_dw(sqz_session *s, const int32_t *readers) {
    const sqz_model *m = s->m;
    const char *me = getenv("SQZ_XDW_MIN");
    /* 2 threads: none fused. It had paid (MobileNetV2 3.01 -> 2.81 ms,
     * MNASNet 2.93 -> 2.83 ms) before the small-K 1x1 kernels and the direct
     * depthwise kernels; now, whole models, 2 threads, same binary,
     * SQZ_XDW_MIN=1 MiB (fused from 1 MiB, as before) vs none, 60 runs x 12
     * interleaved rounds, load ~4-6: MobileNetV2 median 3.98 -> 3.87 ms (11
     * of 12 round medians lower), MNASNet 6.51 -> 6.24 (a slow period, 12 of
     * 12), EfficientNet-B0 5.94 -> 5.84 (40 x 10, 7 of 10). In the periods
     * where the two vCPUs run each other's work slowly (par.c's probe) a
     * fused node's halves ran 3-4x their solo time (MNASNet's: 120 us each
     * solo, 360-550 us split). 1 thread: only MobileNetV2's 4.8 MB 16 -> 96
     * @112 block (whole model, same run,
     * interleaved: 4.55 -> 4.35-4.43 ms) */
    size_t min_bytes = me && *me             ? (size_t)atoll(me)
                       : s->num_threads >= 2 ? SIZE_MAX
                                             : XDW_MIN_BYTES_1T;
    for (int j = 1; j < m->n_nodes; j++) {
        const int i = j - 1;
        const sqz_node *dn = &m->nodes[j], *cn = &m->nodes[i];
        node_exec *ed = &s->nodes[j], *ec = &s->nodes[i];
        if (dn->op != SQZ_OP_CONV || cn->op != SQZ_OP_CONV || ed->impl != &sqz_dwconv || ed->skip ||
            ec->skip || ed->noop || ec->noop || !ec->impl || sqz_ctx_is_int8(&ed->ctx) ||
            sqz_ctx_is_int8(&ec->ctx) || cn->n_outputs != 1 || dn->n_outputs != 1 ||
            cn->n_inputs < 2 || dn->n_inputs < 2)
            continue;
        int x = cn->inputs[0], y = cn->outputs[0];
        if (x < 0 || y < 0 || dn->inputs[0] != y || readers[y] != 1 ||
            (m->tensors[x].flags & SQZ_TF_CONST) || m->tensors[x].dtype != SQZ_DT_F32 ||
            m->tensors[y].dtype != SQZ_DT_F32)
            continue;
        int w1 = cn->inputs[1], b1 = cn->n_inputs > 2 ? cn->inputs[2] : -1;
        int wd = dn->inputs[1], bd = dn->n_inputs > 2 ? dn->inputs[2] : -1;
        if (w1 < 0 || wd < 0 || !(m->tensors[w1].flags & SQZ_TF_CONST) ||
            !(m->tensors[wd].flags & SQZ_TF_CONST) ||
            (b1 >= 0 && !(m->tensors[b1].flags & SQZ_TF_CONST)) ||
            (bd >= 0 && !(m->tensors[bd].flags & SQZ_TF_CONST)))
            continue;
        const sqz_shape *xs = &s->shapes[x], *ys = &s->shapes[y], *os = &s->shapes[dn->outputs[0]];
        const sqz_shape *w1s = &s->shapes[w1], *wds = &s->shapes[wd];
        if (xs->ndim != 4 || ys->ndim != 4 || os->ndim != 4 || w1s->ndim != 4 || wds->ndim != 4 ||
            xs->dims[0] != 1 || ys->dims[0] != 1 || w1s->dims[2] != 1 || w1s->dims[3] != 1 ||
            w1s->dims[1] != xs->dims[1] || w1s->dims[0] != ys->dims[1] ||
            ys->dims[2] != xs->dims[2] || ys->dims[3] != xs->dims[3] ||
            wds->dims[0] != ys->dims[1] || wds->dims[1] != 1 || wds->dims[2] != wds->dims[3] ||
            os->dims[1] != ys->dims[1])
            continue;
        if ((size_t)sqz_shape_numel(ys) * sizeof(float) < min_bytes) continue;
        /* the 1x1 conv: plain; the depthwise conv: explicit pads, equal strides */
        if (sqz_attr_int(cn, "group", 1) != 1 || !attr_all(cn, "strides", 2, 1) ||
            !attr_all(cn, "pads", 4, 0) || !attr_all(cn, "dilations", 2, 1) ||
            sqz_node_attr(cn, "auto_pad") || sqz_node_attr(dn, "auto_pad") ||
            !attr_all(dn, "dilations", 2, 1))
            continue;
        const int64_t *st = NULL, *pd = NULL;
        int nst = sqz_attr_ints(dn, "strides", &st), npd = sqz_attr_ints(dn, "pads", &pd);
        int stride = nst == 2 ? (int)st[0] : 1;
        if ((nst == 2 && st[1] != st[0]) || (nst > 0 && nst != 2) || (npd > 0 && npd != 4))
            continue;
        ref_act a1, a2;
        if (ref_act_prepare(&ec->ctx, &a1) != 0 || ref_act_prepare(&ed->ctx, &a2) != 0) continue;
        sqz_xdw_desc d;
        memset(&d, 0, sizeof d);
        d.K = xs->dims[1];
        d.M = ys->dims[1];
        d.H = xs->dims[2];
        d.W = xs->dims[3];
        d.w1 = ec->ctx.in_data[1];
        d.b1 = b1 >= 0 ? ec->ctx.in_data[2] : NULL;
        d.act1 = a1.kind;
        d.alpha1 = a1.alpha;
        d.beta1 = a1.beta;
        d.wd = ed->ctx.in_data[1];
        d.bd = bd >= 0 ? ed->ctx.in_data[2] : NULL;
        d.k = (int)wds->dims[2];
        d.stride = stride;
        d.pt = npd == 4 ? (int)pd[0] : 0;
        d.pl = npd == 4 ? (int)pd[1] : 0;
        d.OH = os->dims[2];
        d.OW = os->dims[3];
        d.act2 = a2.kind;
        d.alpha2 = a2.alpha;
        d.beta2 = a2.beta;
        d.num_threads = ed->ctx.num_threads;
        if (!d.w1 || !d.wd || (b1 >= 0 && !d.b1) || (bd >= 0 && !d.bd)) continue;
        sqz_xdw *xd;
        size_t scratch;
        if (sqz_xdw_create(&d, &xd, &scratch) != 0) continue;
        if (ed->impl->release && ed->ctx.params) ed->impl->release(ed->ctx.params);
        ed->impl = &xdw_impl;
        ed->ctx.params = xd;
        ed->ctx.scratch_bytes = scratch;
        ed->xdw_x1 = x + 1;
        ed->macs = sqz_xdw_macs(xd);
        if (ec->impl->release && ec->ctx.params) ec->impl->release(ec->ctx.params);
        ec->ctx.params = NULL;
        ec->ctx.scratch_bytes = 0;
        ec->macs = 0;
        ec->skip = 1;
    }
}

/* Down conv fusion: in a stride-2 residual block the 1x1 stride-2
 * projection D and the 3x3 stride-2 conv B before it read the same input;
 * D runs inside B (sqz_gemm_conv_fuse_down) on the band copy B makes anyway:
 * one split, one pass over the input (its rows of the other core's half at
 * 2 threads) and one copy saved. D does not run; its output is written at
 * B's step (down_host: the planner starts its lifetime there). Before
 * planning; SQZ_FUSE_DOWN=0 (or SQZ_FUSE_CONV=0) turns it off. */
static void fuse_down(sqz_session *s) {
    const sqz_model *m = s->m;
    for (int j = 1; j < m->n_nodes; j++) {
        const sqz_node *dn = &m->nodes[j];
        node_exec *ed = &s->nodes[j];
        if (dn->op != SQZ_OP_CONV || dn->n_inputs < 2 || dn->n_outputs != 1 || ed->skip ||
            ed->noop || !ed->impl || ed->impl->run != sqz_gemm_conv_run || dn->inputs[0] < 0)
            continue;
        for (int i = j - 1; i >= 0; i--) {
            const sqz_node *bn = &m->nodes[i];
            node_exec *eb = &s->nodes[i];
            if (bn->op != SQZ_OP_CONV || bn->n_inputs < 1 || bn->inputs[0] != dn->inputs[0])
                continue;
            if (!eb->skip && !eb->noop && eb->impl && eb->impl->run == sqz_gemm_conv_run &&
                sqz_gemm_conv_fuse_down(&eb->ctx, &ed->ctx)) {
                ed->noop = 1;
                ed->down_host = i + 1;
                ed->ctx.scratch_bytes = 0;
                eb->macs += ed->macs;
                ed->macs = 0;
            }
            break;
        }
    }
}

/* SiLU fusion: y = Mul(x, Sigmoid(x)) with the Sigmoid right before the Mul,
 * its output read by nothing else and not a graph output, all shapes equal.
 * The Mul gets the fused kernel (reads x only), the Sigmoid is skipped and
 * its output gets no buffer: three of five memory passes saved (EfficientNet,
 * MNASNet-style nets). Nothing changes when no fused kernel exists. */
static void fuse_silu(sqz_session *s, int32_t *readers) {
    const sqz_model *m = s->m;
    for (int t = 0; t < m->n_tensors; t++) readers[t] = 0;
    for (int i = 0; i < m->n_nodes; i++)
        for (uint32_t k = 0; k < m->nodes[i].n_inputs; k++)
            if (m->nodes[i].inputs[k] >= 0) readers[m->nodes[i].inputs[k]]++;
    for (int i = 0; i < m->n_outputs; i++) readers[m->outputs[i]] += 2;
    for (int i = 0; i + 1 < m->n_nodes; i++) {
        const sqz_node *sg = &m->nodes[i], *mu = &m->nodes[i + 1];
        if (sg->op != SQZ_OP_SIGMOID || mu->op != SQZ_OP_MUL || sg->n_inputs != 1 ||
            sg->n_outputs != 1 || mu->n_inputs != 2 || mu->n_outputs != 1)
            continue;
        int x = sg->inputs[0], u = sg->outputs[0];
        int xi = mu->inputs[0] == x && mu->inputs[1] == u   ? 0
                 : mu->inputs[1] == x && mu->inputs[0] == u ? 1
                                                            : -1;
        if (x < 0 || xi < 0 || readers[u] != 1 || (m->tensors[x].flags & SQZ_TF_CONST) ||
            !same_shape(&s->shapes[x], &s->shapes[u]) ||
            !same_shape(&s->shapes[x], &s->shapes[mu->outputs[0]]))
            continue;
        node_exec *es = &s->nodes[i], *em = &s->nodes[i + 1];
        /* int8 nodes: one 256-entry table (int8_simd.h) */
        int i8 = sqz_ctx_is_int8(&em->ctx) || sqz_ctx_is_int8(&es->ctx);
        const sqz_op_impl *f = i8 ? sqz_i8_silu_impl(xi) : sqz_fast_silu(xi);
        if (!f) {
            if (i8) continue;
            return;
        }
        sqz_op_ctx c = em->ctx;
        sqz_shape out_shape = em->out_shape[0];
        c.params = NULL;
        c.scratch_bytes = 0;
        if (f->prepare(&c) != 0 || !same_shape(&em->out_shape[0], &out_shape)) {
            em->out_shape[0] = out_shape;
            continue;
        }
        if (em->impl->release && em->ctx.params) em->impl->release(em->ctx.params);
        em->impl = f;
        em->ctx = c;
        if (es->impl->release && es->ctx.params) es->impl->release(es->ctx.params);
        es->ctx.params = NULL;
        es->ctx.scratch_bytes = 0;
        es->skip = 1;
    }
}

/* Add (Sub / Mul / Div) + Relu: when the Relu is the only reader of the
 * binary's f32 output and runs in place over it (the planner gave both one
 * buffer), the binary applies the Relu while its output is in L1 and the
 * Relu does not run (ResNet blocks: one pass over the sum saved). Needs the
 * fast binary kernel; readers[] counts each tensor's readers (graph outputs
 * count 2). */
static void fuse_binary_relu(sqz_session *s, const int32_t *readers) {
    const sqz_model *m = s->m;
    for (int i = 1; i < m->n_nodes; i++) {
        const sqz_node *nd = &m->nodes[i];
        node_exec *e = &s->nodes[i];
        if (nd->op != SQZ_OP_RELU || nd->n_inputs != 1 || nd->n_outputs != 1 || e->skip ||
            e->noop || sqz_ctx_is_int8(&e->ctx))
            continue;
        int u = nd->inputs[0];
        if (u < 0 || readers[u] != 1 || e->in_data[0] != e->out_data[0]) continue;
        for (int j = i - 1; j >= 0; j--) {
            const sqz_node *pd = &m->nodes[j];
            if (pd->n_outputs < 1 || pd->outputs[0] != u) continue;
            node_exec *pe = &s->nodes[j];
            if (pd->n_outputs == 1 && !pe->skip && !pe->noop && !sqz_ctx_is_int8(&pe->ctx) &&
                sqz_fast_binary_fuse_relu(pe->impl, &pe->ctx))
                e->noop = 1;
            break;
        }
    }
}

/* Conv epilogue fusion helpers: byte ranges of node data. */
static int ranges_overlap(const void *a, size_t na, const void *b, size_t nb) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return na && nb && x < y + nb && y < x + na;
}

/* 1 when some input or output of node q may lie in [p, p + n) bytes (run or
 * not: a node that does not run may stand for one fused into another) */
static int node_touches(const sqz_session *s, int q, const void *p, size_t n) {
    const sqz_node *nd = &s->m->nodes[q];
    const node_exec *e = &s->nodes[q];
    for (uint32_t k = 0; k < nd->n_inputs; k++) {
        int t = nd->inputs[k];
        if (t >= 0 && e->in_data[k] &&
            ranges_overlap(e->in_data[k],
                           (size_t)sqz_shape_numel(&s->shapes[t]) * tensor_esz(s->m, t), p, n))
            return 1;
    }
    for (uint32_t k = 0; k < nd->n_outputs; k++) {
        int t = nd->outputs[k];
        if (e->out_data[k] &&
            ranges_overlap(e->out_data[k],
                           (size_t)sqz_shape_numel(&s->shapes[t]) * tensor_esz(s->m, t), p, n))
            return 1;
    }
    return 0;
}

/* The node before `before` whose first output is t (-1: a graph input or
 * a constant) */
static int producer_of(const sqz_model *m, int t, int before) {
    for (int i = before - 1; i >= 0; i--)
        if (m->nodes[i].n_outputs >= 1 && m->nodes[i].outputs[0] == t) return i;
    return -1;
}

/* An f32 Conv node i, running, whose output is tensor y, read by reader
 * node j only (readers[y] == want); the conv's non-constant inputs do not
 * overlap [out, out + n), nor do the data of the nodes between i and j. */
static int conv_fusable(const sqz_session *s, int i, int j, int y, const int32_t *readers, int want,
                        const void *out, size_t n) {
    const sqz_model *m = s->m;
    const node_exec *ec = &s->nodes[i];
    if (i < 0 || m->nodes[i].op != SQZ_OP_CONV || m->nodes[i].n_outputs != 1 || ec->skip ||
        ec->noop || sqz_ctx_is_int8(&ec->ctx) || readers[y] != want ||
        m->tensors[y].dtype != SQZ_DT_F32 || !ec->out_data[0])
        return 0;
    for (uint32_t k = 0; k < m->nodes[i].n_inputs; k++) {
        int t = m->nodes[i].inputs[k];
        if (t >= 0 && !(m->tensors[t].flags & SQZ_TF_CONST) && ec->in_data[k] &&
            ranges_overlap(ec->in_data[k],
                           (size_t)sqz_shape_numel(&s->shapes[t]) * tensor_esz(m, t), out, n))
            return 0;
    }
    for (int q = i + 1; q < j; q++)
        if (!(s->nodes[q].down_host && s->nodes[q].down_host - 1 < i) && /* ran before i */
            node_touches(s, q, out, n))
            return 0;
    return 1;
}

/* Conv + Add (+ Relu): y = Conv(..) read only by Add(y, r) (either order),
 * all three one f32 shape, r ready before the conv runs (a graph input, a
 * constant or an earlier node's output) and the Add's output buffer the
 * conv's own (the Add in place on y) or r's (in place on r; never a buffer
 * the conv reads). The conv writes y + r (through the Relu fused into the Add
 * by fuse_binary_relu) in its store and the Add does not run (ResNet,
 * MobileNetV2, MNASNet, EfficientNet blocks: one pass over y, r and the sum
 * saved). Called after planning: the decision compares bound pointers. */
static void fuse_conv_add(sqz_session *s, const int32_t *readers) {
    const sqz_model *m = s->m;
    for (int j = 1; j < m->n_nodes; j++) {
        const sqz_node *ad = &m->nodes[j];
        node_exec *ea = &s->nodes[j];
        if (ad->op != SQZ_OP_ADD || ad->n_inputs != 2 || ad->n_outputs != 1 || ea->skip ||
            ea->noop || sqz_ctx_is_int8(&ea->ctx))
            continue;
        int o = ad->outputs[0];
        if (m->tensors[o].dtype != SQZ_DT_F32 || !ea->out_data[0]) continue;
        const size_t n = (size_t)sqz_shape_numel(&s->shapes[o]) * sizeof(float);
        /* a Relu fused into this Add (fuse_binary_relu): its only reader,
         * not run, in place */
        int relu = 0;
        for (int q = j + 1; q < m->n_nodes && readers[o] == 1; q++) {
            const sqz_node *rd = &m->nodes[q];
            if (rd->n_inputs < 1 || rd->inputs[0] != o) continue;
            relu = rd->op == SQZ_OP_RELU && rd->n_inputs == 1 && s->nodes[q].noop &&
                   !sqz_ctx_is_int8(&s->nodes[q].ctx) &&
                   s->nodes[q].in_data[0] == s->nodes[q].out_data[0];
            break;
        }
        for (int k = 0; k < 2; k++) {
            int y = ad->inputs[k], r = ad->inputs[1 - k];
            if (y < 0 || r < 0 || y == r || m->tensors[r].dtype != SQZ_DT_F32 ||
                !same_shape(&s->shapes[y], &s->shapes[o]) ||
                !same_shape(&s->shapes[r], &s->shapes[o]))
                continue;
            int i = producer_of(m, y, j), ir = producer_of(m, r, j);
            if (ir >= 0 && s->nodes[ir].down_host)
                ir = s->nodes[ir].down_host - 1; /* written there */
            if (i < 0 || ir >= i) continue;
            node_exec *ec = &s->nodes[i];
            const float *res = ea->in_data[1 - k];
            float *out = ea->out_data[0];
            if (!res || !ec->out_data[0] || (out != ec->out_data[0] && out != res) ||
                ranges_overlap(res, n, ec->out_data[0], n))
                continue;
            if (!conv_fusable(s, i, j, y, readers, 1, out, n) ||
                !conv_fusable(s, i, j, y, readers, 1, res, n))
                continue;
            if (sqz_fast_conv_fuse_add(ec->impl, &ec->ctx, res, out, relu)) {
                ea->noop = 1;
                break;
            }
        }
    }
}

/* Conv chains (sqz_gemm_conv_chain, 2+ threads): a run of GEMM convs
 * i .. j, each reading the previous one's output (through Add / Relu nodes
 * between them), run at j's step with halo rows recomputed per thread: no
 * intermediate crosses cores. chain_find (before planning) takes the longest
 * candidate whose tensors made before j are read in i .. j only (or by an
 * Add after j, fused into j as its residual): j gets the scratch, the
 * chain's inputs live to step j. chain_take (after the Conv + Add fusion)
 * keeps a candidate whose other nodes all ended up fused. SQZ_FUSE_CHAIN=0:
 * off (A/B). */
static int chain_conv(const sqz_session *s, int i) {
    const node_exec *e = &s->nodes[i];
    return s->m->nodes[i].op == SQZ_OP_CONV && s->m->nodes[i].n_outputs == 1 && !e->skip &&
           !e->noop && e->impl && e->impl->run == sqz_gemm_conv_run;
}

/* 1 when the tensors of nodes [i, j) (and of down convs they run) are read
 * only in (i, j] or by an Add after j (final: a noop one, j's residual) */
static int chain_inside(const sqz_session *s, const int32_t *readers, int i, int j, int final) {
    const sqz_model *m = s->m;
    for (int p = i; p < m->n_nodes; p++) {
        const int h = s->nodes[p].down_host - 1;
        if (p >= j && (h < i || h >= j)) continue;
        for (uint32_t o = 0; o < m->nodes[p].n_outputs; o++) {
            int t = m->nodes[p].outputs[o], seen = 0;
            for (int q = i + 1; q < m->n_nodes; q++) {
                const sqz_node *nd = &m->nodes[q];
                for (uint32_t k = 0; k < nd->n_inputs; k++) {
                    if (nd->inputs[k] != t) continue;
                    const int hq = s->nodes[q].down_host - 1;
                    if (q > j && !(hq >= i && hq <= j) &&
                        (nd->op != SQZ_OP_ADD || nd->n_inputs != 2 ||
                         (final &&
                          (!s->nodes[q].noop || producer_of(m, nd->inputs[1 - k], q) != j))))
                        return 0;
                    seen++;
                }
            }
            if (seen != readers[t]) return 0; /* a graph output */
        }
    }
    return 1;
}

static void chain_find(sqz_session *s, const int32_t *readers) {
    const sqz_model *m = s->m;
    const char *e = getenv("SQZ_FUSE_CHAIN");
    if (s->num_threads < 2 || (e && !strcmp(e, "0"))) return;
    for (int i = 0; i < m->n_nodes; i++) {
        if (!chain_conv(s, i)) continue;
        sqz_op_ctx *c[SQZ_CONV_CHAIN_MAX];
        int n = 1, best = -1, t = m->nodes[i].outputs[0];
        size_t bytes = 0;
        c[0] = &s->nodes[i].ctx;
        for (int q = i + 1; q < m->n_nodes && n < SQZ_CONV_CHAIN_MAX; q++) {
            const sqz_node *nd = &m->nodes[q];
            if (s->nodes[q].down_host) continue; /* runs inside its host */
            int reads = 0, x = t;
            for (uint32_t k = 0; k < nd->n_inputs; k++) reads |= nd->inputs[k] == t;
            if (!reads || nd->n_outputs != 1) break;
            t = nd->outputs[0];
            if (nd->op == SQZ_OP_ADD || nd->op == SQZ_OP_RELU) continue;
            if (!chain_conv(s, q) || nd->inputs[0] != x) break;
            c[n++] = &s->nodes[q].ctx;
            size_t b = sqz_gemm_conv_chain_bytes(c, n, s->num_threads);
            if (!b) break;
            if (chain_inside(s, readers, i, q, 0)) {
                best = q;
                bytes = b;
            }
        }
        if (best < 0) continue;
        node_exec *ej = &s->nodes[best];
        ej->chain_lo = i + 1;
        if (ej->ctx.scratch_bytes < bytes) ej->ctx.scratch_bytes = bytes;
        i = best;
    }
}

static void chain_take(sqz_session *s, const int32_t *readers) {
    for (int j = 0; j < s->m->n_nodes; j++) {
        node_exec *ej = &s->nodes[j];
        if (!ej->chain_lo) continue;
        const int i = ej->chain_lo - 1;
        sqz_op_ctx *c[SQZ_CONV_CHAIN_MAX];
        int n = 0, ok = chain_inside(s, readers, i, j, 1);
        for (int q = i; q <= j && ok; q++) {
            node_exec *e = &s->nodes[q];
            if (chain_conv(s, q))
                c[n++] = &e->ctx;
            else
                ok = e->noop &&
                     (s->m->nodes[q].op != SQZ_OP_RELU || e->in_data[0] == e->out_data[0]);
        }
        ej->chain_lo = 0;
        if (!ok || !sqz_gemm_conv_chain(c, n)) continue;
        ej->chain_lo = i + 1;
        for (int q = i; q < j; q++)
            if (chain_conv(s, q)) {
                s->nodes[q].noop = 1;
                ej->macs += s->nodes[q].macs;
                s->nodes[q].macs = 0;
            }
    }
}

/* Conv + SiLU: y = Conv(..) read only by a fused SiLU pair (fuse_silu: the
 * Sigmoid skipped, the Mul on sqz_fast_silu) whose output is written over y:
 * the conv applies the same SiLU function to what it stores, the Mul does
 * not run (EfficientNet: after the stem, expansion, depthwise, squeeze-excite
 * reduce and head convs). */
static void fuse_conv_silu(sqz_session *s, const int32_t *readers) {
    const sqz_model *m = s->m;
    for (int j = 2; j < m->n_nodes; j++) {
        const sqz_node *mu = &m->nodes[j];
        node_exec *em = &s->nodes[j];
        if (mu->op != SQZ_OP_MUL || mu->n_inputs != 2 || mu->n_outputs != 1 || em->skip ||
            em->noop || !s->nodes[j - 1].skip || m->nodes[j - 1].op != SQZ_OP_SIGMOID)
            continue;
        int xi = em->impl == sqz_fast_silu(0) ? 0 : em->impl == sqz_fast_silu(1) ? 1 : -1;
        if (xi < 0 || !em->impl) continue;
        int x = mu->inputs[xi], i = producer_of(m, x, j - 1);
        if (x < 0 || i < 0 || em->out_data[0] != s->nodes[i].out_data[0]) continue;
        const size_t n = (size_t)sqz_shape_numel(&s->shapes[x]) * sizeof(float);
        /* readers: the Sigmoid and the Mul */
        if (!conv_fusable(s, i, j - 1, x, readers, 2, em->out_data[0], n)) continue;
        if (sqz_fast_conv_fuse_silu(s->nodes[i].impl, &s->nodes[i].ctx)) em->noop = 1;
    }
}

/* An int8 Relu whose input already carries its output's scale and a zero
 * point of -128 (the quantizer gives an Add / pool read only by a Relu the
 * Relu's range [0, max]) maps every code to itself: when it runs in place it
 * does not run at all. */
static void drop_identity_relu(sqz_session *s) {
    const sqz_model *m = s->m;
    for (int i = 0; i < m->n_nodes; i++) {
        const sqz_node *nd = &m->nodes[i];
        node_exec *e = &s->nodes[i];
        if (nd->op != SQZ_OP_RELU || nd->n_inputs != 1 || nd->n_outputs != 1 || e->skip ||
            e->noop || nd->inputs[0] < 0 || e->in_data[0] != e->out_data[0])
            continue;
        const sqz_tensor_rec *x = &m->tensors[nd->inputs[0]], *y = &m->tensors[nd->outputs[0]];
        if (x->dtype == SQZ_DT_I8 && y->dtype == SQZ_DT_I8 && same_qparams(&x->q, &y->q) &&
            y->q.zero_point[0] == -128)
            e->noop = 1;
    }
}

sqz_code sqz_session_create(const sqz_model *m, const sqz_session_options *opts, sqz_session **out,
                            sqz_status *st) {
    sqz_status dummy;
    if (!st) st = &dummy;
    st->code = SQZ_OK;
    st->msg[0] = 0;
    if (!m || !out) return sqz_set_status(st, SQZ_ERR_INVALID_ARG, "model or out is NULL");
    *out = NULL;
    sqz_session_options defaults;
    if (!opts) {
        sqz_session_options_init(&defaults);
        opts = &defaults;
    }
    sqz_session *s = calloc(1, sizeof *s);
    if (!s) return sqz_set_status(st, SQZ_ERR_NOMEM, "out of memory");
    s->m = m;
    s->num_threads = opts->num_threads > 0 ? opts->num_threads : 1;
    {
        const char *pe = getenv("SQZ_PROFILE");
        s->profile = !pe || !pe[0] || !strcmp(pe, "0") ? 0 : !strcmp(pe, "cpu") ? 2 : 1;
    }
    int nt = m->n_tensors, nn = m->n_nodes;
    s->shapes = calloc((size_t)nt + 1, sizeof *s->shapes);
    s->ptr = calloc((size_t)nt + 1, sizeof *s->ptr);
    s->nodes = calloc((size_t)nn + 1, sizeof *s->nodes);
    s->input_set = calloc((size_t)m->n_inputs + 1, 1);
    sqz_plan_item *items = calloc((size_t)(nt + nn) + 1, sizeof *items);
    size_t *offs = calloc((size_t)(nt + nn) + 1, sizeof *offs);
    int32_t *root = calloc((size_t)nt + 1, sizeof *root);
    int32_t *readers = calloc((size_t)nt + 1, sizeof *readers);
    size_t *sub = calloc((size_t)nt + 1, sizeof *sub);
    sqz_code rc = SQZ_OK;
    if (!s->shapes || !s->ptr || !s->nodes || !s->input_set || !items || !offs || !root ||
        !readers || !sub) {
        rc = sqz_set_status(st, SQZ_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int t = 0; t < nt; t++) {
        s->shapes[t] = m->tensors[t].shape;
        if (m->tensors[t].flags & SQZ_TF_CONST) s->ptr[t] = m->tensors[t].data;
    }
    /* input shapes: stored, then caller overrides */
    for (int k = 0; k < opts->n_input_shapes; k++) {
        const sqz_input_shape *is = &opts->input_shapes[k];
        int found = -1;
        for (int i = 0; i < m->n_inputs; i++)
            if (is->name && strcmp(m->tensors[m->inputs[i]].name, is->name) == 0) found = i;
        if (found < 0) {
            rc = sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                                "input shape given for '%s', which is not a graph input",
                                is->name ? is->name : "(null)");
            goto done;
        }
        if (is->shape.ndim < 0 || is->shape.ndim > SQZ_MAX_DIMS) {
            rc = sqz_set_status(st, SQZ_ERR_INVALID_ARG, "input '%s': rank %d invalid", is->name,
                                is->shape.ndim);
            goto done;
        }
        s->shapes[m->inputs[found]] = is->shape;
    }
    for (int i = 0; i < m->n_inputs; i++) {
        const sqz_shape *sh = &s->shapes[m->inputs[i]];
        uint64_t b;
        for (int d = 0; d < sh->ndim; d++)
            if (sh->dims[d] < 0) {
                rc = sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                                    "input '%s': dim %d is %lld; dims must be >= 0",
                                    m->tensors[m->inputs[i]].name, d, (long long)sh->dims[d]);
                goto done;
            }
        if (shape_bytes(sh, &b) != 0) {
            rc = sqz_set_status(st, SQZ_ERR_INVALID_ARG, "input '%s': shape too large",
                                m->tensors[m->inputs[i]].name);
            goto done;
        }
    }

    /* prepare every node in order: shapes propagate, kernels validate */
    for (int i = 0; i < nn; i++) {
        const sqz_node *nd = &m->nodes[i];
        node_exec *e = &s->nodes[i];
        uint32_t ni = nd->n_inputs, no = nd->n_outputs;
        e->in_shape = calloc(ni + 1, sizeof *e->in_shape);
        e->in_data = calloc(ni + 1, sizeof *e->in_data);
        e->out_shape = calloc(no + 1, sizeof *e->out_shape);
        e->out_data = calloc(no + 1, sizeof *e->out_data);
        e->in_dt = calloc(ni + 1, 1);
        e->out_dt = calloc(no + 1, 1);
        e->in_q = calloc(ni + 1, sizeof *e->in_q);
        e->out_q = calloc(no + 1, sizeof *e->out_q);
        if (!e->in_shape || !e->in_data || !e->out_shape || !e->out_data || !e->in_dt ||
            !e->out_dt || !e->in_q || !e->out_q) {
            rc = sqz_set_status(st, SQZ_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (uint32_t k = 0; k < ni; k++) {
            int t = nd->inputs[k];
            e->in_dt[k] = SQZ_DT_F32;
            if (t < 0) {
                e->in_shape[k].ndim = -1;
                continue;
            }
            e->in_shape[k] = s->shapes[t];
            e->in_dt[k] = m->tensors[t].dtype;
            e->in_q[k] = m->tensors[t].q;
            if (m->tensors[t].flags & SQZ_TF_CONST) {
                e->in_data[k] = m->tensors[t].data;
                e->params += (uint64_t)sqz_shape_numel(&s->shapes[t]);
                e->param_bytes += tensor_esz(m, t) * (uint64_t)sqz_shape_numel(&s->shapes[t]);
            }
        }
        for (uint32_t k = 0; k < no; k++) {
            e->out_dt[k] = m->tensors[nd->outputs[k]].dtype;
            e->out_q[k] = m->tensors[nd->outputs[k]].q;
        }
        sqz_op_ctx *c = &e->ctx;
        c->in_dtype = e->in_dt;
        c->out_dtype = e->out_dt;
        c->in_q = e->in_q;
        c->out_q = e->out_q;
        c->node = nd;
        c->n_in = ni;
        c->n_out = no;
        /* dtype-driven choice: int8 implementations for nodes on int8 data */
        const sqz_op_impl *cand[8];
        int n_cand;
        if (sqz_ctx_is_int8(c)) {
            n_cand = sqz_fast_ops_int8(nd->op, cand, 7);
            cand[n_cand] = sqz_ref_op_int8(nd->op);
            if (!cand[n_cand]) {
                rc = sqz_set_status(st, SQZ_ERR_UNSUPPORTED,
                                    "node '%s' (%s): no int8 kernel for this op (it must run in "
                                    "fp32 between DequantizeLinear / QuantizeLinear)",
                                    nd->name, sqz_op_name(nd->op));
                goto done;
            }
            n_cand++;
        } else {
            n_cand = sqz_fast_ops(nd->op, cand, 7);
            cand[n_cand++] = sqz_ref_op(nd->op);
        }
        c->node = nd;
        c->n_in = ni;
        c->n_out = no;
        c->in_shape = e->in_shape;
        c->in_data = e->in_data;
        c->out_shape = e->out_shape;
        c->out_data = e->out_data;
        c->num_threads = s->num_threads;
        c->err = e->err;
        c->err_len = sizeof e->err;
        /* candidates best first; a prepare() returning 1 declines the node */
        int prc = 1;
        for (int ci = 0; ci < n_cand && prc == 1; ci++) {
            e->impl = cand[ci];
            c->params = NULL;
            c->scratch_bytes = 0;
            e->err[0] = 0;
            prc = e->impl->prepare(c);
            if (prc == 1 && c->params && e->impl->release) e->impl->release(c->params);
        }
        if (prc == 1) prc = -1; /* the reference never declines; guard anyway */
        if (prc != 0) {
            /* a kernel may fail after allocating: release what it left */
            if (c->params && e->impl->release) e->impl->release(c->params);
            c->params = NULL;
            rc = sqz_set_status(st, SQZ_ERR_UNSUPPORTED, "node '%s' (%s): %s", nd->name,
                                sqz_op_name(nd->op), e->err[0] ? e->err : "rejected");
            goto done;
        }
        for (uint32_t k = 0; k < no; k++) {
            uint64_t b;
            if (e->out_shape[k].ndim < 0 || e->out_shape[k].ndim > SQZ_MAX_DIMS ||
                shape_bytes_dt(&e->out_shape[k], tensor_esz(m, nd->outputs[k]), &b) != 0) {
                char sb[96];
                fmt_shape(&e->out_shape[k], sb, sizeof sb);
                rc = sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                                    "node '%s' (%s): output %u shape %s invalid", nd->name,
                                    sqz_op_name(nd->op), k, sb);
                goto done;
            }
            s->shapes[nd->outputs[k]] = e->out_shape[k];
        }
        e->macs = e->impl->macs ? e->impl->macs(c) : 0;
    }

    fuse_silu(s, readers); /* also counts the readers of every tensor */
    {
        const char *fe = getenv("SQZ_FUSE_CONV"); /* =0: no conv fusion (A/B) */
        const char *fd = getenv("SQZ_FUSE_DOWN"); /* =0: no down conv fusion (A/B) */
        if (!fe || strcmp(fe, "0")) fuse_expand_dw(s, readers);
        if ((!fe || strcmp(fe, "0")) && (!fd || strcmp(fd, "0"))) fuse_down(s);
        if (!fe || strcmp(fe, "0")) chain_find(s, readers);
    }

    /* the one-team executor needs kernels that split through sqz_par_for
     * (par.h): the fp32 and int8 GEMM / conv / depthwise kernels do; the
     * others' own parallel regions run on one thread inside the team */
    s->team = s->num_threads > 1;
    s->splits = s->team;
    if (s->team) {
        /* a graph with no node big enough to split (LeNet-sized) only pays
         * the team's start and hand-offs: lenet300 at 2 threads, passive
         * workers, 0.0193 ms per-node vs 0.0232 ms in a team */
        int64_t min_macs = sqz_gemm_par_min_macs();
        int big = 0;
        for (int i = 0; i < nn && !big; i++) big = s->nodes[i].macs >= (uint64_t)min_macs;
        s->team = big;
        s->splits = big;
        /* nothing worth splitting: every node on the calling thread, no
         * parallel region at all (a region per node waited for a scheduler
         * time slice each on a loaded machine: lenet300 at 2 threads, nice
         * 19, both cores busy, 25 ms a run against 0.009 ms at 1 thread) */
        if (!big)
            for (int i = 0; i < nn; i++) s->nodes[i].ctx.num_threads = 1;
    }
    if (s->num_threads > 1) {
        /* the int8 thread policy (int8.h): a small int8 model runs on one
         * thread, its kernels told at run time through ctx.num_threads */
        uint64_t tot = 0, i8 = 0;
        for (int i = 0; i < nn; i++) {
            tot += s->nodes[i].macs;
            if (sqz_ctx_is_int8(&s->nodes[i].ctx)) i8 += s->nodes[i].macs;
        }
        if (sqz_i8_session_threads(s->num_threads, tot, i8) == 1) {
            /* ... but for 1x1 conv + depthwise (or GlobalAveragePool) pairs
             * split into the same output-channel parts (int8.h
             * sqz_i8_conv_chsplit): each core's second node reads only what
             * it computed */
            uint8_t *pair = s->team ? calloc((size_t)nn, 1) : NULL;
            int npair = 0;
            for (int i = 0; pair && i + 1 < nn; i++) {
                const sqz_node *cn = &m->nodes[i], *dn = &m->nodes[i + 1];
                node_exec *ec = &s->nodes[i], *ed = &s->nodes[i + 1];
                int64_t mr, nblk;
                if (cn->op != SQZ_OP_CONV || ec->skip || ec->noop || ed->skip || ed->noop ||
                    !ec->impl || !ed->impl || cn->n_outputs != 1 || dn->n_inputs < 1 ||
                    cn->outputs[0] < 0 || dn->inputs[0] != cn->outputs[0] ||
                    readers[cn->outputs[0]] != 1 ||
                    !sqz_i8_conv_chsplit(ec->impl, &ec->ctx, s->num_threads, &mr, &nblk, 0) ||
                    !(dn->op == SQZ_OP_CONV
                          ? sqz_i8_dw_chsplit(ed->impl, &ed->ctx, s->num_threads, mr, nblk)
                      : dn->op == SQZ_OP_GLOBAL_AVGPOOL
                          ? sqz_i8_gap_chsplit(ed->impl, &ed->ctx, s->num_threads, mr, nblk)
                          : 0))
                    continue;
                sqz_i8_conv_chsplit(ec->impl, &ec->ctx, s->num_threads, &mr, &nblk, 1);
                if (sqz_i8_conv_fuse_pair(ec->impl, &ec->ctx, ed->impl, &ed->ctx)) {
                    ed->noop = 1; /* runs inside the conv, at its step */
                    ed->down_host = i + 1;
                    ed->ctx.scratch_bytes = 0;
                    ec->macs += ed->macs;
                    ed->macs = 0;
                }
                pair[i] = pair[i + 1] = 1;
                npair++;
                i++;
            }
            for (int i = 0; i < nn; i++) {
                node_exec *e = &s->nodes[i];
                /* ... and a one-row Gemm with enough weights to split */
                if (pair && !pair[i] && !e->skip && !e->noop && e->impl &&
                    sqz_i8_gemv_split(e->impl, &e->ctx))
                    pair[i] = 1, npair++;
                if (!pair || !pair[i]) e->ctx.num_threads = 1;
            }
            if (!npair) {
                s->team = 0;
                s->splits = 0;
            }
            free(pair);
        }
    }
    {
        const char *te = getenv("SQZ_TEAM"); /* SQZ_TEAM=0: a parallel region per node (A/B) */
        if (te && !strcmp(te, "0")) s->team = 0;
        /* no helper threads: every node's own parallel region (as SQZ_TEAM=0) */
        if (s->team && !(s->pool = sqz_par_pool_new(s->num_threads))) s->team = 0;
    }

    /* lifetimes: node i runs at step i; graph inputs are live from step 0 to
     * their last reader (their space is reused afterwards, so every run needs
     * its inputs set again: sqz_session_run checks), outputs from their
     * producer to the end (they are read after the run) */
    for (int t = 0; t < nt; t++) {
        items[t].first = -1;
        items[t].last = -1;
    }
    for (int i = 0; i < m->n_inputs; i++) {
        int t = m->inputs[i];
        items[t].first = 0;
        items[t].last = 0;
    }
    for (int i = 0; i < nn; i++) {
        const sqz_node *nd = &m->nodes[i];
        for (uint32_t k = 0; k < nd->n_outputs; k++) items[nd->outputs[k]].first = i;
        for (uint32_t k = 0; k < nd->n_inputs; k++) {
            int t = nd->inputs[k];
            if (t >= 0 && items[t].last < i) items[t].last = i;
        }
        if (s->nodes[i].down_host) /* written by its host node */
            items[nd->outputs[0]].first = s->nodes[i].down_host - 1;
        int xt = s->nodes[i].xdw_x1 - 1; /* read in place of the skipped expansion's output */
        if (xt >= 0 && items[xt].last < i) items[xt].last = i;
        /* a chain's inputs (made before it) are read at its last conv's step */
        const int lo = s->nodes[i].chain_lo - 1;
        for (int q = lo; q >= 0 && q < i; q++)
            for (uint32_t k = 0; k < m->nodes[q].n_inputs; k++) {
                int t = m->nodes[q].inputs[k];
                if (t >= 0 && items[t].last < i && producer_of(m, t, q) < lo) items[t].last = i;
            }
    }
    for (int i = 0; i < m->n_outputs; i++) items[m->outputs[i]].last = nn;
    for (int t = 0; t < nt; t++) {
        uint64_t b = 0;
        if ((m->tensors[t].flags & SQZ_TF_CONST) || items[t].first < 0) {
            items[t].size = 0;
            continue;
        }
        if (items[t].last < items[t].first) items[t].last = items[t].first; /* unread output */
        shape_bytes_dt(&s->shapes[t], tensor_esz(m, t), &b);
        items[t].size = (size_t)b;
    }
    for (int i = 0; i < nn; i++)
        if (s->nodes[i].skip) items[m->nodes[i].outputs[0]].size = 0; /* never stored */
    for (int i = 0; i < nn; i++) {
        items[nt + i].size = s->nodes[i].ctx.scratch_bytes;
        items[nt + i].first = items[nt + i].last = i;
    }
    /* the naive total: every intermediate and scratch its own buffer */
    s->naive_bytes = sqz_plan_naive(items, nt + nn, SQZ_ARENA_ALIGN);
    if (alias_buffers(s, items, root) != 0) {
        rc = sqz_set_status(st, SQZ_ERR_NOMEM, "out of memory while planning");
        goto done;
    }
    {
        const char *ce = getenv("SQZ_CONCAT_IN_PLACE"); /* =0: A/B */
        if (!ce || strcmp(ce, "0")) concat_in_place(s, items, root, sub, readers);
    }
    s->arena_bytes = sqz_plan_greedy(items, nt + nn, SQZ_ARENA_ALIGN, offs);
    if (s->arena_bytes == (size_t)-1) {
        rc = sqz_set_status(st, SQZ_ERR_NOMEM, "out of memory while planning");
        goto done;
    }
    s->reused_bytes = s->arena_bytes;
    if (use_separate_slots(s)) {
        s->arena_bytes = sqz_plan_separate(items, nt + nn, SQZ_ARENA_ALIGN, offs);
        s->separate = 1;
    }
    s->lower_bound_bytes = sqz_plan_lower_bound(items, nt + nn, SQZ_ARENA_ALIGN, &s->peak_step);
    s->arena = sqz_aligned_alloc(s->arena_bytes ? s->arena_bytes : 64);
    if (!s->arena) {
        rc = sqz_set_status(st, SQZ_ERR_NOMEM, "cannot allocate %zu-byte arena", s->arena_bytes);
        goto done;
    }
    memset(s->arena, 0, s->arena_bytes);
    for (int t = 0; t < nt; t++)
        if (!(m->tensors[t].flags & SQZ_TF_CONST) && items[root[t]].size)
            s->ptr[t] = (float *)((char *)s->arena + offs[root[t]] + sub[t]);
    for (int i = 0; i < nn; i++) {
        const sqz_node *nd = &m->nodes[i];
        node_exec *e = &s->nodes[i];
        for (uint32_t k = 0; k < nd->n_inputs; k++)
            e->in_data[k] = nd->inputs[k] >= 0 ? s->ptr[nd->inputs[k]] : NULL;
        if (e->xdw_x1) e->in_data[0] = s->ptr[e->xdw_x1 - 1];
        for (uint32_t k = 0; k < nd->n_outputs; k++) e->out_data[k] = s->ptr[nd->outputs[k]];
        e->ctx.scratch = items[nt + i].size ? (char *)s->arena + offs[nt + i] : NULL;
    }
    {
        const char *fe = getenv("SQZ_FUSE_RELU"); /* SQZ_FUSE_RELU=0: A/B */
        if (!fe || strcmp(fe, "0")) {
            fuse_binary_relu(s, readers);
            drop_identity_relu(s);
        }
    }
    {
        /* SQZ_FUSE_CONV=0: neither (A/B), =add: Conv + Add only */
        const char *fe = getenv("SQZ_FUSE_CONV");
        if (!fe || strcmp(fe, "0")) {
            fuse_conv_add(s, readers);
            if (!fe || strcmp(fe, "add")) fuse_conv_silu(s, readers);
            chain_take(s, readers);
        }
    }
done:
    free(items);
    free(offs);
    free(root);
    free(readers);
    free(sub);
    if (rc != SQZ_OK) {
        session_destroy(s);
        return rc;
    }
    *out = s;
    return SQZ_OK;
}

sqz_code sqz_session_set_input(sqz_session *s, int index, const float *data, size_t count,
                               sqz_status *st) {
    if (!s || index < 0 || index >= s->m->n_inputs)
        return sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                              "input index %d out of range (model has %d inputs)", index,
                              s ? s->m->n_inputs : 0);
    int t = s->m->inputs[index];
    if (s->m->tensors[t].dtype != SQZ_DT_F32)
        return sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                              "input '%s' is %s, not f32: use sqz_session_set_input_raw",
                              s->m->tensors[t].name, dtype_name(s->m->tensors[t].dtype));
    size_t n = (size_t)sqz_shape_numel(&s->shapes[t]);
    if (count != n) {
        char sb[96];
        fmt_shape(&s->shapes[t], sb, sizeof sb);
        return sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                              "input '%s' expects %zu values (shape %s), got %zu",
                              s->m->tensors[t].name, n, sb, count);
    }
    if (!data) return sqz_set_status(st, SQZ_ERR_INVALID_ARG, "input data is NULL");
    if (n) memcpy(s->ptr[t], data, n * sizeof(float));
    s->input_set[index] = 1;
    if (st) st->code = SQZ_OK;
    return SQZ_OK;
}

sqz_code sqz_session_set_input_raw(sqz_session *s, int index, const void *data, size_t bytes,
                                   sqz_status *st) {
    if (!s || index < 0 || index >= s->m->n_inputs)
        return sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                              "input index %d out of range (model has %d inputs)", index,
                              s ? s->m->n_inputs : 0);
    int t = s->m->inputs[index];
    size_t n = (size_t)sqz_shape_numel(&s->shapes[t]) * tensor_esz(s->m, t);
    if (bytes != n)
        return sqz_set_status(st, SQZ_ERR_INVALID_ARG, "input '%s' (%s) expects %zu bytes, got %zu",
                              s->m->tensors[t].name, dtype_name(s->m->tensors[t].dtype), n, bytes);
    if (!data) return sqz_set_status(st, SQZ_ERR_INVALID_ARG, "input data is NULL");
    if (n) memcpy(s->ptr[t], data, n);
    s->input_set[index] = 1;
    if (st) st->code = SQZ_OK;
    return SQZ_OK;
}

static void run_nodes(sqz_session *s) {
    if (s->profile) {
        for (int i = 0; i < s->m->n_nodes; i++) {
            if (s->nodes[i].skip || s->nodes[i].noop) continue;
            double t0 = prof_now(s->profile);
            s->nodes[i].impl->run(&s->nodes[i].ctx);
            double dt = prof_now(s->profile) - t0;
            s->nodes[i].prof_s += dt;
            if (s->prof_runs == 0 || dt < s->nodes[i].prof_min) s->nodes[i].prof_min = dt;
        }
        s->prof_runs++;
    } else {
        for (int i = 0; i < s->m->n_nodes; i++)
            if (!s->nodes[i].skip && !s->nodes[i].noop) s->nodes[i].impl->run(&s->nodes[i].ctx);
    }
}

static void run_nodes_cb(void *arg) {
    run_nodes(arg);
}

sqz_code sqz_session_run(sqz_session *s, sqz_status *st) {
    if (!s) return sqz_set_status(st, SQZ_ERR_INVALID_ARG, "session is NULL");
    for (int i = 0; i < s->m->n_inputs; i++)
        if (!s->input_set[i])
            return sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                                  "input '%s' not set since the last run (its arena space is "
                                  "reused during a run: set every input before each run)",
                                  s->m->tensors[s->m->inputs[i]].name);
    /* One team per inference (par.h): the calling thread runs the nodes in
     * order, the other threads help with the parts of the nodes that split.
     * Workers are woken once per run instead of once per split node, and a
     * node never waits for a worker that has not woken up yet. */
    if (s->team)
        sqz_par_pool_run(s->pool, run_nodes_cb, s);
    else
        run_nodes(s);
    memset(s->input_set, 0, (size_t)s->m->n_inputs);
    if (st) st->code = SQZ_OK;
    return SQZ_OK;
}

sqz_code sqz_session_output(const sqz_session *s, int index, const float **data, sqz_shape *shape,
                            sqz_status *st) {
    if (!s || index < 0 || index >= s->m->n_outputs)
        return sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                              "output index %d out of range (model has %d outputs)", index,
                              s ? s->m->n_outputs : 0);
    int t = s->m->outputs[index];
    if (s->m->tensors[t].dtype != SQZ_DT_F32)
        return sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                              "output '%s' is %s, not f32: use sqz_session_output_raw",
                              s->m->tensors[t].name, dtype_name(s->m->tensors[t].dtype));
    if (data) *data = s->ptr[t];
    if (shape) *shape = s->shapes[t];
    if (st) st->code = SQZ_OK;
    return SQZ_OK;
}

sqz_code sqz_session_output_raw(const sqz_session *s, int index, const void **data,
                                sqz_shape *shape, int *dtype, sqz_status *st) {
    if (!s || index < 0 || index >= s->m->n_outputs)
        return sqz_set_status(st, SQZ_ERR_INVALID_ARG,
                              "output index %d out of range (model has %d outputs)", index,
                              s ? s->m->n_outputs : 0);
    int t = s->m->outputs[index];
    if (data) *data = s->ptr[t];
    if (shape) *shape = s->shapes[t];
    if (dtype) *dtype = s->m->tensors[t].dtype;
    if (st) st->code = SQZ_OK;
    return SQZ_OK;
}

sqz_shape sqz_session_input_shape(const sqz_session *s, int index) {
    sqz_shape sh = {-1, {0}};
    if (s && index >= 0 && index < s->m->n_inputs) sh = s->shapes[s->m->inputs[index]];
    return sh;
}

int sqz_session_find_input(const sqz_session *s, const char *name) {
    for (int i = 0; s && name && i < s->m->n_inputs; i++)
        if (strcmp(s->m->tensors[s->m->inputs[i]].name, name) == 0) return i;
    return -1;
}

int sqz_session_num_nodes(const sqz_session *s) {
    return s ? s->m->n_nodes : 0;
}

void sqz_session_node_info(const sqz_session *s, int i, sqz_node_info *info) {
    memset(info, 0, sizeof *info);
    if (!s || i < 0 || i >= s->m->n_nodes) return;
    const sqz_node *nd = &s->m->nodes[i];
    info->op = nd->op;
    info->name = nd->name;
    info->out_shape = s->shapes[nd->outputs[0]];
    info->macs = s->nodes[i].macs;
    info->params = s->nodes[i].params;
    info->param_bytes = s->nodes[i].param_bytes;
    info->skipped = s->nodes[i].skip || s->nodes[i].noop;
}

size_t sqz_session_arena_bytes(const sqz_session *s) {
    return s ? s->arena_bytes : 0;
}

void sqz_session_memory(const sqz_session *s, sqz_memory_info *mi) {
    memset(mi, 0, sizeof *mi);
    if (!s) return;
    mi->arena_bytes = s->arena_bytes;
    mi->lower_bound_bytes = s->lower_bound_bytes;
    mi->naive_bytes = s->naive_bytes;
    mi->peak_step = s->peak_step;
    mi->separate = s->separate;
    mi->reused_bytes = s->reused_bytes;
}
