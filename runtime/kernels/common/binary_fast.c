/* binary_fast.c - Add / Sub / Mul / Div with broadcasting. See fastops.h.
 *
 * The output index space is collapsed as the reference does it (size-1 dims
 * dropped, dims contiguous for both operands merged); the innermost run then
 * has operand strides (1, 1), (1, 0) or (0, 1) in the nets that matter
 * (same shape, a per-channel or a scalar operand), and each of those gets a
 * loop with constant strides the compiler vectorizes. Other strides decline. */
#include <stdlib.h>
#include <string.h>

#include "fastops.h"
#include "par.h"
#include "ref/ref.h"

enum { FB_ADD, FB_SUB, FB_MUL, FB_DIV };

typedef struct fbin {
    int kind, nd;
    int relu; /* a following Relu fused in (sqz_fast_binary_fuse_relu) */
    int64_t dims[SQZ_MAX_DIMS], ast[SQZ_MAX_DIMS], bst[SQZ_MAX_DIMS];
    int64_t total, inner, rows; /* rows: total / inner */
} fbin;

static const sqz_op_impl *ref_of(int kind) {
    switch (kind) {
    case FB_ADD:
        return &sqz_ref_add;
    case FB_SUB:
        return &sqz_ref_sub;
    case FB_MUL:
        return &sqz_ref_mul;
    default:
        return &sqz_ref_div;
    }
}

static int fbin_prepare(sqz_op_ctx *ctx, int kind) {
    const sqz_op_impl *ref = ref_of(kind);
    int rc = ref->prepare(ctx);
    if (ctx->params) ref->release(ctx->params);
    ctx->params = NULL;
    ctx->scratch_bytes = 0;
    if (rc) return rc;
    const sqz_shape *a = &ctx->in_shape[0], *b = &ctx->in_shape[1], *o = &ctx->out_shape[0];
    fbin p;
    memset(&p, 0, sizeof p);
    p.kind = kind;
    p.total = sqz_shape_numel(o);
    if (p.total <= 0) return 1;
    int64_t sa[SQZ_MAX_DIMS], sb[SQZ_MAX_DIMS];
    ref_strides(a, sa);
    ref_strides(b, sb);
    int nd = 0;
    for (int i = 0; i < o->ndim; i++) {
        int ia = i - (o->ndim - a->ndim), ib = i - (o->ndim - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        int64_t as = da == 1 ? 0 : sa[ia], bs = db == 1 ? 0 : sb[ib];
        if (o->dims[i] == 1) continue;
        if (nd > 0) {
            int j = nd - 1;
            int okA = (p.ast[j] == 0 && as == 0) || (as != 0 && p.ast[j] == as * o->dims[i]);
            int okB = (p.bst[j] == 0 && bs == 0) || (bs != 0 && p.bst[j] == bs * o->dims[i]);
            if (okA && okB) {
                p.dims[j] *= o->dims[i];
                p.ast[j] = as;
                p.bst[j] = bs;
                continue;
            }
        }
        p.dims[nd] = o->dims[i];
        p.ast[nd] = as;
        p.bst[nd] = bs;
        nd++;
    }
    if (nd == 0) {
        p.dims[0] = 1;
        nd = 1;
    }
    p.nd = nd;
    int64_t ia = p.ast[nd - 1], ib = p.bst[nd - 1];
    if (!((ia == 1 && ib == 1) || (ia == 1 && ib == 0) || (ia == 0 && ib == 1) ||
          (ia == 0 && ib == 0)))
        return 1;
    p.inner = p.dims[nd - 1];
    p.rows = p.total / p.inner;
    fbin *pp = malloc(sizeof *pp);
    if (!pp) return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    *pp = p;
    ctx->params = pp;
    return 0;
}

/* the stored value: plain, or through the fused Relu (the reference's expression) */
#define FB_PLAIN(v) (v)
#define FB_RELU(v) ((v) > 0.0f ? (v) : 0.0f)

#define FB_LOOPS(OP, F)                                                                            \
    if (ias && ibs)                                                                                \
        for (int64_t i = 0; i < n; i++) y[i] = F(a[i] OP b[i]);                                    \
    else if (ias) {                                                                                \
        const float v = b[0];                                                                      \
        for (int64_t i = 0; i < n; i++) y[i] = F(a[i] OP v);                                       \
    } else if (ibs) {                                                                              \
        const float u = a[0];                                                                      \
        for (int64_t i = 0; i < n; i++) y[i] = F(u OP b[i]);                                       \
    } else {                                                                                       \
        const float u = a[0], v = b[0];                                                            \
        for (int64_t i = 0; i < n; i++) y[i] = F(u OP v);                                          \
    }

/* y[0..n) = a op b along one inner run (relu: then max(., 0)). */
static void run_inner(int kind, int relu, const float *a, const float *b, float *y, int64_t n,
                      int ias, int ibs) {
    if (relu) {
        switch (kind) {
        case FB_ADD:
            FB_LOOPS(+, FB_RELU) break;
        case FB_SUB:
            FB_LOOPS(-, FB_RELU) break;
        case FB_MUL:
            FB_LOOPS(*, FB_RELU) break;
        default:
            FB_LOOPS(/, FB_RELU) break;
        }
        return;
    }
    switch (kind) {
    case FB_ADD:
        FB_LOOPS(+, FB_PLAIN) break;
    case FB_SUB:
        FB_LOOPS(-, FB_PLAIN) break;
    case FB_MUL:
        FB_LOOPS(*, FB_PLAIN) break;
    default:
        FB_LOOPS(/, FB_PLAIN) break;
    }
}

/* Output elements [o0, o1): o0 / o1 need not be row-aligned. */
static void fbin_range(const fbin *p, const float *A, const float *B, float *Y, int64_t o0,
                       int64_t o1) {
    const int nd = p->nd;
    const int ias = p->ast[nd - 1] != 0, ibs = p->bst[nd - 1] != 0;
    int64_t row = o0 / p->inner, col = o0 % p->inner;
    /* operand offsets of the row start (odometer over the outer dims) */
    int64_t idx[SQZ_MAX_DIMS] = {0}, ao = 0, bo = 0, r = row;
    for (int d = nd - 2; d >= 0; d--) {
        idx[d] = r % p->dims[d];
        r /= p->dims[d];
        ao += idx[d] * p->ast[d];
        bo += idx[d] * p->bst[d];
    }
    int64_t o = o0;
    while (o < o1) {
        int64_t n = p->inner - col;
        if (n > o1 - o) n = o1 - o;
        run_inner(p->kind, p->relu, A + ao + (ias ? col : 0), B + bo + (ibs ? col : 0), Y + o, n,
                  ias, ibs);
        o += n;
        col = 0;
        for (int d = nd - 2; d >= 0; d--) {
            idx[d]++;
            ao += p->ast[d];
            bo += p->bst[d];
            if (idx[d] < p->dims[d]) break;
            ao -= idx[d] * p->ast[d];
            bo -= idx[d] * p->bst[d];
            idx[d] = 0;
        }
    }
}

typedef struct fbin_job {
    const fbin *p;
    const float *A, *B;
    float *Y;
    int parts;
} fbin_job;

static void fbin_part(void *arg, int t) {
    const fbin_job *j = arg;
    const int64_t total = j->p->total;
    /* 16-element aligned split points (whole cache lines per part) */
    int64_t b = total * t / j->parts / 16 * 16,
            e = t + 1 == j->parts ? total : total * (t + 1) / j->parts / 16 * 16;
    if (e > b) fbin_range(j->p, j->A, j->B, j->Y, b, e);
}

static void fbin_run(const sqz_op_ctx *ctx) {
    const fbin *p = ctx->params;
    const float *A = ctx->in_data[0], *B = ctx->in_data[1];
    float *Y = ctx->out_data[0];
    int nt = ctx->num_threads > 1 ? ctx->num_threads : 1;
    /* split from 4096 elements: at 2 threads both operands of a residual Add
     * are half in the other core's cache (the producers were split), and an
     * unsplit Add pulls all of it to one core (MobileNetV2's ten Adds at 2
     * threads: 67-72 us unsplit below 65536, 50-52 us split) */
    if (nt <= 1 || p->total < 4096) {
        fbin_range(p, A, B, Y, 0, p->total);
        return;
    }
    fbin_job j = {p, A, B, Y, 4 * nt}; /* a few parts per thread (par.h) */
    sqz_par_for(nt, j.parts, fbin_part, &j);
}

static int add_prepare(sqz_op_ctx *ctx) {
    return fbin_prepare(ctx, FB_ADD);
}
static int sub_prepare(sqz_op_ctx *ctx) {
    return fbin_prepare(ctx, FB_SUB);
}
static int mul_prepare(sqz_op_ctx *ctx) {
    return fbin_prepare(ctx, FB_MUL);
}
static int div_prepare(sqz_op_ctx *ctx) {
    return fbin_prepare(ctx, FB_DIV);
}

const sqz_op_impl sqz_fast_add = {add_prepare, fbin_run, free, NULL};

int sqz_fast_binary_fuse_relu(const sqz_op_impl *impl, sqz_op_ctx *ctx) {
    if (impl != &sqz_fast_add && impl != &sqz_fast_sub && impl != &sqz_fast_mul &&
        impl != &sqz_fast_div)
        return 0;
    if (!ctx->params) return 0;
    ((fbin *)ctx->params)->relu = 1;
    return 1;
}
const sqz_op_impl sqz_fast_sub = {sub_prepare, fbin_run, free, NULL};
const sqz_op_impl sqz_fast_mul = {mul_prepare, fbin_run, free, NULL};
const sqz_op_impl sqz_fast_div = {div_prepare, fbin_run, free, NULL};
