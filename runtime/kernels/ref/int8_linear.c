/* ref/int8_linear.c - INT8 Conv / Gemm / MatMul: the shared layer analysis
 * (sqz_i8_linear_prepare, used by the SIMD kernels too) and the scalar
 * reference kernels. Semantics: int8.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "int8.h"

void sqz_i8_linear_free(sqz_i8_linear *li) {
    if (!li) return;
    free(li->bias);
    free(li->wsum);
    free(li->rq);
    li->bias = li->wsum = NULL;
    li->rq = NULL;
}

/* W: i8 constant, symmetric (zp 0), per-tensor or per-channel on axis, values
 * in [-127, 127]. */
static int check_weight(sqz_op_ctx *ctx, uint32_t wi, int axis, int64_t n_co) {
    const char *op = ref_opname(ctx);
    const sqz_qparams *q = ctx->in_q ? &ctx->in_q[wi] : NULL;
    if (sqz_ctx_in_dtype(ctx, wi) != SQZ_DT_I8)
        return sqz_op_fail(ctx, "%s (int8): weight must be i8", op);
    if (!ctx->in_data[wi]) return sqz_op_fail(ctx, "%s (int8): weight must be a constant", op);
    if (!q || !q->scale || !q->zero_point ||
        !((q->kind == SQZ_QUANT_PER_TENSOR && q->n == 1) ||
          (q->kind == SQZ_QUANT_PER_CHANNEL && q->axis == axis && (int64_t)q->n == n_co)))
        return sqz_op_fail(ctx,
                           "%s (int8): weight needs per-tensor or per-output-channel (axis %d, "
                           "%lld) quantization parameters",
                           op, axis, (long long)n_co);
    for (uint32_t c = 0; c < q->n; c++)
        if (q->zero_point[c] != 0)
            return sqz_op_fail(ctx, "%s (int8): weight zero point must be 0 (symmetric)", op);
    int64_t n = sqz_shape_numel(&ctx->in_shape[wi]);
    const int8_t *w = (const int8_t *)ctx->in_data[wi];
    for (int64_t i = 0; i < n; i++)
        if (w[i] == -128)
            return sqz_op_fail(ctx, "%s (int8): weight value -128 at %lld (must be in [-127, 127])",
                               op, (long long)i);
    return 0;
}

/* Bias: absent, or an i32 constant with n_co elements. */
static int load_bias(sqz_op_ctx *ctx, uint32_t bi, sqz_i8_linear *li) {
    const char *op = ref_opname(ctx);
    li->bias = calloc((size_t)li->n_co + 1, sizeof *li->bias);
    if (!li->bias) return sqz_op_fail(ctx, "%s: out of memory", op);
    if (!ref_has_input(ctx, bi)) return 0;
    if (sqz_ctx_in_dtype(ctx, bi) != SQZ_DT_I32 || !ctx->in_data[bi])
        return sqz_op_fail(ctx, "%s (int8): bias must be an i32 constant", op);
    if (sqz_shape_numel(&ctx->in_shape[bi]) != li->n_co)
        return sqz_op_fail(ctx, "%s (int8): bias has %lld values, expected %lld", op,
                           (long long)sqz_shape_numel(&ctx->in_shape[bi]), (long long)li->n_co);
    memcpy(li->bias, ctx->in_data[bi], (size_t)li->n_co * sizeof(int32_t));
    return 0;
}

/* Per-channel sums, multipliers and the int32 overflow bound. */
static int finish(sqz_op_ctx *ctx, sqz_i8_linear *li, float sx, float sy, uint32_t wi) {
    const char *op = ref_opname(ctx);
    const sqz_qparams *q = &ctx->in_q[wi];
    li->wsum = calloc((size_t)li->n_co + 1, sizeof *li->wsum);
    li->rq = calloc((size_t)li->n_co + 1, sizeof *li->rq);
    if (!li->wsum || !li->rq) return sqz_op_fail(ctx, "%s: out of memory", op);
    /* |acc| <= K * 255 * 127 + |bias| must fit int32 */
    if (li->K > (int64_t)INT32_MAX / (255 * 127))
        return sqz_op_fail(ctx, "%s (int8): reduction length %lld too long for int32 accumulation",
                           op, (long long)li->K);
    int64_t room = (int64_t)INT32_MAX - li->K * 255 * 127;
    for (int64_t c = 0; c < li->n_co; c++) {
        int64_t s = 0;
        for (int64_t k = 0; k < li->K; k++) s += sqz_i8_w(li, c, k);
        li->wsum[c] = (int32_t)s;
        if (llabs((long long)li->bias[c]) > room)
            return sqz_op_fail(ctx,
                               "%s (int8): bias[%lld] = %d could overflow the int32 accumulator",
                               op, (long long)c, li->bias[c]);
        float sw = q->scale[q->n == 1 ? 0 : c];
        double m = (double)sx * (double)sw / (double)sy;
        if (sqz_rq_make(m, &li->rq[c]))
            return sqz_op_fail(ctx, "%s (int8): channel %lld requantization multiplier %g invalid",
                               op, (long long)c, m);
    }
    return 0;
}

static int conv_analyse(sqz_op_ctx *ctx, sqz_i8_linear *li) {
    const sqz_shape *x = &ctx->in_shape[0], *w = &ctx->in_shape[1];
    int nd = x->ndim - 2;
    if (nd < 1 || nd > 3 || w->ndim != x->ndim)
        return sqz_op_fail(ctx, "Conv (int8): X rank %d / W rank %d unsupported", x->ndim, w->ndim);
    int64_t group = sqz_attr_int(ctx->node, "group", 1);
    int64_t C = x->dims[1], M = w->dims[0];
    if (group < 1 || C % group || M % group || w->dims[1] * group != C)
        return sqz_op_fail(ctx, "Conv (int8): group=%lld does not fit C=%lld, W %lldx%lld",
                           (long long)group, (long long)C, (long long)M, (long long)w->dims[1]);
    if (ref_geom_prepare(ctx, &li->g, nd, x->dims + 2, w->dims + 2, 0)) return -1;
    li->batch = x->dims[0];
    li->C = C;
    li->group = group;
    li->cpg = C / group;
    li->mpg = M / group;
    li->n_co = M;
    li->K = li->cpg * li->g.k[0] * li->g.k[1] * li->g.k[2];
    li->in_sp = li->g.in[0] * li->g.in[1] * li->g.in[2];
    li->out_sp = li->g.out[0] * li->g.out[1] * li->g.out[2];
    li->w = (const int8_t *)ctx->in_data[1];
    li->w_kn = 0;
    sqz_shape *y = &ctx->out_shape[0];
    y->ndim = x->ndim;
    y->dims[0] = x->dims[0];
    y->dims[1] = M;
    for (int i = 0; i < nd; i++) y->dims[2 + i] = li->g.out[3 - nd + i];
    if (ref_check_size(ctx, y->ndim, y->dims)) return -1;
    return check_weight(ctx, 1, 0, M);
}

static int gemm_analyse(sqz_op_ctx *ctx, sqz_i8_linear *li) {
    const sqz_shape *a = &ctx->in_shape[0], *b = &ctx->in_shape[1];
    if (a->ndim != 2 || b->ndim != 2) return sqz_op_fail(ctx, "Gemm (int8): A and B must be 2-D");
    if (sqz_attr_float(ctx->node, "alpha", 1.0f) != 1.0f ||
        (ref_has_input(ctx, 2) && sqz_attr_float(ctx->node, "beta", 1.0f) != 1.0f))
        return sqz_op_fail(ctx, "Gemm (int8): alpha / beta must be 1 (fold them into scales)");
    li->trans_a = sqz_attr_int(ctx->node, "transA", 0) != 0;
    int tb = sqz_attr_int(ctx->node, "transB", 0) != 0;
    int64_t M = li->trans_a ? a->dims[1] : a->dims[0], K = li->trans_a ? a->dims[0] : a->dims[1];
    int64_t Kb = tb ? b->dims[1] : b->dims[0], N = tb ? b->dims[0] : b->dims[1];
    if (K != Kb)
        return sqz_op_fail(ctx, "Gemm (int8): inner dims differ (%lld vs %lld)", (long long)K,
                           (long long)Kb);
    li->rows = M;
    li->K = K;
    li->n_co = N;
    li->w = (const int8_t *)ctx->in_data[1];
    li->w_kn = !tb;
    ctx->out_shape[0].ndim = 2;
    ctx->out_shape[0].dims[0] = M;
    ctx->out_shape[0].dims[1] = N;
    return check_weight(ctx, 1, tb ? 0 : 1, N);
}

static int matmul_analyse(sqz_op_ctx *ctx, sqz_i8_linear *li) {
    const sqz_shape *a = &ctx->in_shape[0], *b = &ctx->in_shape[1];
    if (a->ndim < 2 || b->ndim != 2)
        return sqz_op_fail(ctx, "MatMul (int8): A must be rank >= 2 and B a 2-D constant");
    int64_t K = a->dims[a->ndim - 1];
    if (K != b->dims[0])
        return sqz_op_fail(ctx, "MatMul (int8): inner dims differ (%lld vs %lld)", (long long)K,
                           (long long)b->dims[0]);
    li->rows = ref_prod(a->dims, 0, a->ndim - 1);
    li->K = K;
    li->n_co = b->dims[1];
    li->w = (const int8_t *)ctx->in_data[1];
    li->w_kn = 1;
    ctx->out_shape[0] = *a;
    ctx->out_shape[0].dims[a->ndim - 1] = li->n_co;
    return check_weight(ctx, 1, 1, li->n_co);
}

int sqz_i8_linear_prepare(sqz_op_ctx *ctx, sqz_i8_linear *li) {
    memset(li, 0, sizeof *li);
    int op = ctx->node->op;
    li->op = op;
    if (op == SQZ_OP_MATMUL ? ref_check_io(ctx, 2, 2, 1) : ref_check_io(ctx, 2, 3, 1)) return -1;
    float sx, sy;
    if (sqz_i8_in_params(ctx, 0, &sx, &li->zp_x) || sqz_i8_out_params(ctx, 0, &sy, &li->zp_y))
        return -1;
    int rc = op == SQZ_OP_CONV   ? conv_analyse(ctx, li)
             : op == SQZ_OP_GEMM ? gemm_analyse(ctx, li)
                                 : matmul_analyse(ctx, li);
    if (rc == 0) rc = sqz_i8_act_bounds(ctx, sy, li->zp_y, &li->lo, &li->hi);
    if (rc == 0) rc = load_bias(ctx, 2, li);
    if (rc == 0) rc = finish(ctx, li, sx, sy, 1);
    if (rc != 0) sqz_i8_linear_free(li);
    return rc;
}

/* ------------------------------------------------------------ reference */

static int lin_prepare(sqz_op_ctx *ctx) {
    sqz_i8_linear *li = malloc(sizeof *li);
    if (!li) return sqz_op_fail(ctx, "%s: out of memory", ref_opname(ctx));
    if (sqz_i8_linear_prepare(ctx, li)) {
        free(li);
        return -1;
    }
    ctx->params = li;
    return 0;
}

static void lin_release(void *p) {
    sqz_i8_linear_free(p);
    free(p);
}

static void conv_run(const sqz_op_ctx *ctx) {
    const sqz_i8_linear *li = ctx->params;
    const ref_geom *g = &li->g;
    const int8_t *X = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    int64_t taps = g->k[0] * g->k[1] * g->k[2];
    for (int64_t n = 0; n < li->batch; n++)
        for (int64_t co = 0; co < li->n_co; co++) {
            int64_t gi = co / li->mpg;
            const int8_t *w = li->w + co * li->K;
            int8_t *y = Y + (n * li->n_co + co) * li->out_sp;
            for (int64_t od = 0; od < g->out[0]; od++)
                for (int64_t oh = 0; oh < g->out[1]; oh++)
                    for (int64_t ow = 0; ow < g->out[2]; ow++) {
                        int32_t acc = li->bias[co];
                        for (int64_t ci = 0; ci < li->cpg; ci++) {
                            const int8_t *x = X + (n * li->C + gi * li->cpg + ci) * li->in_sp;
                            const int8_t *wc = w + ci * taps;
                            for (int64_t kd = 0; kd < g->k[0]; kd++) {
                                int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
                                if (id < 0 || id >= g->in[0]) continue;
                                for (int64_t kh = 0; kh < g->k[1]; kh++) {
                                    int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
                                    if (ih < 0 || ih >= g->in[1]) continue;
                                    for (int64_t kw = 0; kw < g->k[2]; kw++) {
                                        int64_t iw = ow * g->s[2] - g->pb[2] + kw * g->d[2];
                                        if (iw < 0 || iw >= g->in[2]) continue;
                                        int32_t xv =
                                            x[(id * g->in[1] + ih) * g->in[2] + iw] - li->zp_x;
                                        acc += xv * wc[(kd * g->k[1] + kh) * g->k[2] + kw];
                                    }
                                }
                            }
                        }
                        y[(od * g->out[1] + oh) * g->out[2] + ow] =
                            (int8_t)sqz_rq_apply(acc, li->rq[co], li->zp_y, li->lo, li->hi);
                    }
        }
}

/* Gemm / MatMul: Y[r][n] = rq_n(bias[n] + sum_k (A[r][k] - zp) * w[n][k]) */
static void lin_run(const sqz_op_ctx *ctx) {
    const sqz_i8_linear *li = ctx->params;
    const int8_t *A = (const int8_t *)ctx->in_data[0];
    int8_t *Y = (int8_t *)ctx->out_data[0];
    for (int64_t r = 0; r < li->rows; r++)
        for (int64_t n = 0; n < li->n_co; n++) {
            int32_t acc = li->bias[n];
            for (int64_t k = 0; k < li->K; k++) {
                int32_t a = li->trans_a ? A[k * li->rows + r] : A[r * li->K + k];
                acc += (a - li->zp_x) * sqz_i8_w(li, n, k);
            }
            Y[r * li->n_co + n] = (int8_t)sqz_rq_apply(acc, li->rq[n], li->zp_y, li->lo, li->hi);
        }
}

static uint64_t conv_macs(const sqz_op_ctx *ctx) {
    const sqz_i8_linear *li = ctx->params;
    return li ? (uint64_t)(li->batch * li->n_co * li->out_sp * li->K) : 0;
}

static uint64_t lin_macs(const sqz_op_ctx *ctx) {
    const sqz_i8_linear *li = ctx->params;
    return li ? (uint64_t)(li->rows * li->n_co * li->K) : 0;
}

const sqz_op_impl sqz_ref_i8_conv = {lin_prepare, conv_run, lin_release, conv_macs};
const sqz_op_impl sqz_ref_i8_gemm = {lin_prepare, lin_run, lin_release, lin_macs};
const sqz_op_impl sqz_ref_i8_matmul = {lin_prepare, lin_run, lin_release, lin_macs};
