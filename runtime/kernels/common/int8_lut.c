/* int8_lut.c - table-driven int8 element-wise kernels (portable C): an int8
 * op whose output element depends only on the input byte(s) is a table
 * lookup. Each table is filled at prepare by running the reference kernel
 * itself over every possible input (256 values, or 256 x 256 pairs for Add),
 * so the results are the reference's by construction:
 *   Relu / Clip (i8 -> i8, any requantization), Sigmoid / HardSigmoid /
 *   HardSwish / Tanh: 256 bytes;
 *   SiLU, Mul(x, Sigmoid(x)) with both nodes on i8: 256 bytes, the
 *   reference Sigmoid then the reference Mul on every x (the executor skips
 *   the Sigmoid node);
 *   DequantizeLinear (i8 -> f32): 256 floats;
 *   Add of two same-shape i8 tensors: 64 KiB (broadcasting Adds decline and
 *   run the reference);
 *   Concat: 256 bytes per input whose parameters differ from the output's. */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "fastops.h"
#include "int8.h"
#include "int8_simd.h"

void sqz_i8_lut256(const int8_t *t, const int8_t *x, int8_t *y, int64_t n) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512_vbmi()) {
        sqz_i8_lut256_vbmi(t, x, y, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = t[(uint8_t)x[i] ^ 0x80u];
}

typedef struct lut_p {
    int64_t n;
    int xi; /* SiLU: the input holding x */
    union {
        int8_t b[256];
        float f[256];
    } t1;
    int8_t *t2; /* Add: [256 * 256], index (uint8)a * 256 + (uint8)b */
} lut_p;

static void lut_release(void *p) {
    lut_p *q = p;
    if (!q) return;
    free(q->t2);
    free(q);
}

/* Runs ref on ctx's node and quantization parameters, but with n_in inputs
 * of shape [len] holding in[i] and an output of len elements at out. */
static int run_ref_on_shape(sqz_op_ctx *ctx, const sqz_op_impl *ref, uint32_t n_in,
                            const sqz_shape *shape, const int8_t *const *in, void *out) {
    sqz_shape sh[2], osh[1];
    const float *data[2];
    float *odata[1] = {out};
    for (uint32_t i = 0; i < n_in; i++) {
        sh[i] = *shape;
        data[i] = (const float *)(const void *)in[i];
    }
    sqz_op_ctx c = *ctx;
    c.n_in = n_in;
    c.in_shape = sh;
    c.in_data = data;
    c.out_shape = osh;
    c.out_data = odata;
    c.params = NULL;
    c.scratch_bytes = 0;
    c.scratch = NULL;
    c.num_threads = 1;
    if (ref->prepare(&c) != 0) return -1;
    if (c.scratch_bytes) { /* the element-wise references need none */
        if (ref->release) ref->release(c.params);
        return -1;
    }
    ref->run(&c);
    if (ref->release) ref->release(c.params);
    return 0;
}

/* As run_ref_on_shape with 1-D inputs of len elements. */
static int run_ref_on(sqz_op_ctx *ctx, const sqz_op_impl *ref, uint32_t n_in, int64_t len,
                      const int8_t *const *in, void *out) {
    sqz_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.ndim = 1;
    sh.dims[0] = len;
    return run_ref_on_shape(ctx, ref, n_in, &sh, in, out);
}

static int unary_prepare(sqz_op_ctx *ctx, int op) {
    const sqz_op_impl *ref = op == SQZ_OP_DEQUANTIZE_LINEAR ? sqz_ref_op(op) : sqz_ref_op_int8(op);
    /* validate and shape through the reference on the real shapes first */
    int rc = ref->prepare(ctx);
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    if (rc != 0) return rc;
    lut_p *p = calloc(1, sizeof *p);
    if (!p) return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    int8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (int8_t)(i - 128);
    const int8_t *in[1] = {all};
    void *dst = op == SQZ_OP_DEQUANTIZE_LINEAR ? (void *)p->t1.f : (void *)p->t1.b;
    if (run_ref_on(ctx, ref, 1, 256, in, dst) != 0) {
        free(p);
        return 1; /* the reference alone then */
    }
    p->n = sqz_shape_numel(&ctx->in_shape[0]);
    ctx->params = p;
    return 0;
}

static int relu_prepare(sqz_op_ctx *ctx) {
    return unary_prepare(ctx, SQZ_OP_RELU);
}
static int clip_prepare(sqz_op_ctx *ctx) {
    return unary_prepare(ctx, SQZ_OP_CLIP);
}
static int dq_prepare(sqz_op_ctx *ctx) {
    if (sqz_ctx_in_dtype(ctx, 0) != SQZ_DT_I8) return 1;
    return unary_prepare(ctx, SQZ_OP_DEQUANTIZE_LINEAR);
}

static int sigmoid_prepare(sqz_op_ctx *ctx) {
    return unary_prepare(ctx, SQZ_OP_SIGMOID);
}
static int hsig_prepare(sqz_op_ctx *ctx) {
    return unary_prepare(ctx, SQZ_OP_HARD_SIGMOID);
}
static int hswish_prepare(sqz_op_ctx *ctx) {
    return unary_prepare(ctx, SQZ_OP_HARD_SWISH);
}
static int tanh_prepare(sqz_op_ctx *ctx) {
    return unary_prepare(ctx, SQZ_OP_TANH);
}

/* lookups in chunks of LUT_CHUNK through sqz_i8_par_range from 4 chunks
 * (16K elements: EfficientNet's 1152 x 7 x 7 SiLUs, 56K, ran on one core at
 * 2 threads on an input the split conv before them wrote half on each) */
#define LUT_CHUNK ((int64_t)1 << 12)

static void lut_chunks(const sqz_op_ctx *ctx, int64_t c0, int64_t c1, int part) {
    (void)part;
    const lut_p *p = ctx->params;
    int64_t i0 = c0 * LUT_CHUNK, i1 = c1 * LUT_CHUNK < p->n ? c1 * LUT_CHUNK : p->n;
    sqz_i8_lut256(p->t1.b, (const int8_t *)ctx->in_data[p->xi] + i0,
                  (int8_t *)ctx->out_data[0] + i0, i1 - i0);
}

static void lut_apply(const sqz_op_ctx *ctx) {
    const lut_p *p = ctx->params;
    int64_t nc = (p->n + LUT_CHUNK - 1) / LUT_CHUNK;
    int nt = sqz_i8_split_threads(ctx->num_threads, (double)p->n * SQZ_I8_NS_BYTE);
    sqz_i8_par_range(ctx, p->n >= 4 * LUT_CHUNK ? nt : 1, nc, lut_chunks);
}

static void unary_run(const sqz_op_ctx *ctx) {
    lut_apply(ctx); /* xi = 0 */
}

/* SiLU: ctx is the Mul's, x at input xi, Sigmoid(x) at 1 - xi (its
 * parameters are the Sigmoid's output parameters, x's its input's). */
static int silu_prepare(sqz_op_ctx *ctx, int xi) {
    const sqz_op_impl *rmul = sqz_ref_op_int8(SQZ_OP_MUL), *rsig = sqz_ref_op_int8(SQZ_OP_SIGMOID);
    if (!rmul || !rsig || ctx->n_in != 2 || ctx->n_out != 1 || !ctx->in_q || !ctx->out_q ||
        sqz_ctx_in_dtype(ctx, 0) != SQZ_DT_I8 || sqz_ctx_in_dtype(ctx, 1) != SQZ_DT_I8 ||
        sqz_ctx_out_dtype(ctx, 0) != SQZ_DT_I8)
        return 1;
    int rc = rmul->prepare(ctx); /* validates, shapes the output */
    if (ctx->params && rmul->release) rmul->release(ctx->params);
    ctx->params = NULL;
    if (rc != 0) return rc;
    lut_p *p = calloc(1, sizeof *p);
    if (!p) return sqz_op_fail(ctx, "Mul (SiLU): out of memory");
    int8_t all[256], sig[256];
    for (int i = 0; i < 256; i++) all[i] = (int8_t)(i - 128);
    static const uint8_t i8dt[2] = {SQZ_DT_I8, SQZ_DT_I8};
    sqz_op_ctx c = *ctx; /* the Sigmoid: x's parameters in, the gate's out */
    c.in_dtype = i8dt;
    c.out_dtype = i8dt;
    c.in_q = ctx->in_q + xi;
    c.out_q = ctx->in_q + (1 - xi);
    const int8_t *in1[1] = {all};
    const int8_t *in2[2] = {all, sig};
    if (xi == 1) {
        in2[0] = sig;
        in2[1] = all;
    }
    if (run_ref_on(&c, rsig, 1, 256, in1, sig) != 0 ||
        run_ref_on(ctx, rmul, 2, 256, in2, p->t1.b)) {
        free(p);
        return 1;
    }
    p->n = sqz_shape_numel(&ctx->out_shape[0]);
    if (sqz_shape_numel(&ctx->in_shape[xi]) != p->n) {
        free(p);
        return 1;
    }
    p->xi = xi;
    ctx->params = p;
    return 0;
}
static int silu0_prepare(sqz_op_ctx *ctx) {
    return silu_prepare(ctx, 0);
}
static int silu1_prepare(sqz_op_ctx *ctx) {
    return silu_prepare(ctx, 1);
}
static void silu_run(const sqz_op_ctx *ctx) {
    lut_apply(ctx);
}
static const sqz_op_impl silu_impl[2] = {{silu0_prepare, silu_run, lut_release, NULL},
                                         {silu1_prepare, silu_run, lut_release, NULL}};
const sqz_op_impl *sqz_i8_silu_impl(int x_input) {
    return x_input == 0 || x_input == 1 ? &silu_impl[x_input] : NULL;
}

static void dq_run(const sqz_op_ctx *ctx) {
    const lut_p *p = ctx->params;
    const int8_t *x = (const int8_t *)ctx->in_data[0];
    float *y = ctx->out_data[0];
    for (int64_t i = 0; i < p->n; i++) y[i] = p->t1.f[(uint8_t)x[i] ^ 0x80u];
}

static int add_prepare(sqz_op_ctx *ctx) {
    const sqz_op_impl *ref = sqz_ref_op_int8(SQZ_OP_ADD);
    int rc = ref->prepare(ctx);
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    if (rc != 0) return rc;
    int64_t n = sqz_shape_numel(&ctx->out_shape[0]);
    if (sqz_shape_numel(&ctx->in_shape[0]) != n || sqz_shape_numel(&ctx->in_shape[1]) != n)
        return 1; /* broadcasting: the reference */
    lut_p *p = calloc(1, sizeof *p);
    int8_t *a = malloc(65536), *b = malloc(65536);
    if (p) p->t2 = malloc(65536);
    if (!p || !a || !b || !p->t2) {
        free(a);
        free(b);
        lut_release(p);
        return sqz_op_fail(ctx, "Add: out of memory");
    }
    for (int i = 0; i < 65536; i++) {
        a[i] = (int8_t)((i >> 8) - 128);
        b[i] = (int8_t)((i & 255) - 128);
    }
    const int8_t *in[2] = {a, b};
    rc = run_ref_on(ctx, ref, 2, 65536, in, p->t2);
    free(a);
    free(b);
    if (rc != 0) {
        lut_release(p);
        return 1;
    }
    p->n = n;
    ctx->params = p;
    return 0;
}

static void add_run(const sqz_op_ctx *ctx) {
    const lut_p *p = ctx->params;
    const uint8_t *a = (const uint8_t *)ctx->in_data[0], *b = (const uint8_t *)ctx->in_data[1];
    int8_t *y = (int8_t *)ctx->out_data[0];
    /* y may alias a or b (in-place Add): element i is read before written */
    for (int64_t i = 0; i < p->n; i++) y[i] = p->t2[(size_t)(a[i] ^ 0x80u) << 8 | (b[i] ^ 0x80u)];
}

/* Concat: per input, a copy (same parameters as the output) or a 256-byte
 * requantization table built by the reference on that input alone. */
typedef struct cat_p {
    int64_t outer, inner_out;
    uint32_t n;
    struct {
        int64_t inner;
        int copy;
        int8_t t[256];
    } in[];
} cat_p;

static int concat_prepare(sqz_op_ctx *ctx) {
    const sqz_op_impl *ref = sqz_ref_op_int8(SQZ_OP_CONCAT);
    int rc = ref->prepare(ctx);
    if (ctx->params && ref->release) ref->release(ctx->params);
    ctx->params = NULL;
    if (rc != 0) return rc;
    const sqz_shape *x0 = &ctx->in_shape[0];
    int axis;
    if (ref_norm_axis(ctx, "axis", sqz_attr_int(ctx->node, "axis", 0), x0->ndim, 0, &axis))
        return -1;
    cat_p *p = calloc(1, sizeof *p + ctx->n_in * sizeof p->in[0]);
    if (!p) return sqz_op_fail(ctx, "Concat: out of memory");
    p->n = ctx->n_in;
    p->outer = ref_prod(x0->dims, 0, axis);
    p->inner_out = ref_prod(ctx->out_shape[0].dims, axis, ctx->out_shape[0].ndim);
    int8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (int8_t)(i - 128);
    const sqz_qparams *qy = &ctx->out_q[0];
    for (uint32_t i = 0; i < ctx->n_in; i++) {
        const sqz_shape *x = &ctx->in_shape[i];
        const sqz_qparams *q = &ctx->in_q[i];
        p->in[i].inner = ref_prod(x->dims, axis, x->ndim);
        p->in[i].copy = q->scale[0] == qy->scale[0] && q->zero_point[0] == qy->zero_point[0];
        if (p->in[i].copy) continue;
        sqz_op_ctx c = *ctx;
        c.in_dtype = ctx->in_dtype + i;
        c.in_q = ctx->in_q + i;
        const int8_t *in[1] = {all};
        sqz_shape one = *x0; /* 256 elements along the axis */
        for (int d = 0; d < one.ndim; d++) one.dims[d] = d == axis ? 256 : 1;
        if (run_ref_on_shape(&c, ref, 1, &one, in, p->in[i].t) != 0) {
            free(p);
            return 1;
        }
    }
    ctx->params = p;
    return 0;
}

static void concat_run(const sqz_op_ctx *ctx) {
    const cat_p *p = ctx->params;
    int8_t *Y = (int8_t *)ctx->out_data[0];
    int64_t off = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        const int8_t *X = (const int8_t *)ctx->in_data[i];
        int64_t w = p->in[i].inner;
        for (int64_t o = 0; o < p->outer; o++) {
            int8_t *y = Y + o * p->inner_out + off;
            const int8_t *x = X + o * w;
            if (p->in[i].copy) {
                if (w) memcpy(y, x, (size_t)w);
            } else {
                sqz_i8_lut256(p->in[i].t, x, y, w);
            }
        }
        off += w;
    }
}

const sqz_op_impl sqz_i8_lut_concat = {concat_prepare, concat_run, free, NULL};

const sqz_op_impl sqz_i8_lut_relu = {relu_prepare, unary_run, lut_release, NULL};
const sqz_op_impl sqz_i8_lut_clip = {clip_prepare, unary_run, lut_release, NULL};
const sqz_op_impl sqz_i8_lut_sigmoid = {sigmoid_prepare, unary_run, lut_release, NULL};
const sqz_op_impl sqz_i8_lut_hard_sigmoid = {hsig_prepare, unary_run, lut_release, NULL};
const sqz_op_impl sqz_i8_lut_hard_swish = {hswish_prepare, unary_run, lut_release, NULL};
const sqz_op_impl sqz_i8_lut_tanh = {tanh_prepare, unary_run, lut_release, NULL};
const sqz_op_impl sqz_i8_lut_dequantize = {dq_prepare, dq_run, lut_release, NULL};
const sqz_op_impl sqz_i8_lut_add = {add_prepare, add_run, lut_release, NULL};
