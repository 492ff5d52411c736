/* test_rt_conv1x1.c - the small-K 1x1 conv kernel (conv1x1.h): its scalar
 * twin against a naive double-precision loop, and the AVX-512 kernel (when
 * this CPU has it; skipped with a message otherwise) against the twin, on
 * random shapes: K 1..16, odd channel counts (partial 8-channel blocks),
 * K 17..SQZ_C1X1_MAXM_K with M <= SQZ_C1X1_MAX_M (the small-M path),
 * pixel ranges that start and end off the 16-pixel vectors, planes wider
 * than the range, every activation, both store orders. Then the Conv op
 * that uses it (the executor's choice) against the reference Conv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conv1x1.h"
#include "cpu.h"
#include "sqz/ops.h"
#include "testutil.h"

static float act_ref(int act, float alpha, float beta, double v) {
    switch (act) {
    case SQZ_ACT_RELU:
        return (float)(v > 0.0 ? v : 0.0);
    case SQZ_ACT_CLIP:
        return (float)(v < alpha ? alpha : (v > beta ? beta : v));
    case SQZ_ACT_LEAKY_RELU:
        return (float)(v < 0.0 ? v * alpha : v);
    case SQZ_ACT_HARD_SWISH: {
        double t = v / 6.0 + 0.5;
        t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
        return (float)(v * t);
    }
    default:
        return (float)v;
    }
}

static const int acts[] = {SQZ_ACT_NONE, SQZ_ACT_RELU, SQZ_ACT_CLIP, SQZ_ACT_LEAKY_RELU,
                           SQZ_ACT_HARD_SWISH};

/* |got - want| <= tol (1 + |want|) everywhere in rows [0, M) x [p0, p1), and
 * the pixels outside the range untouched (NAN canary) */
static void check(const float *got, const float *want, int64_t M, int64_t ld, int64_t p0,
                  int64_t p1, double tol, const char *what) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t p = 0; p < ld; p++) {
            float g = got[m * ld + p];
            if (p < p0 || p >= p1) {
                if (!isnan(g))
                    fail_msg("%s: pixel %lld of row %lld outside [%lld, %lld) written", what,
                             (long long)p, (long long)m, (long long)p0, (long long)p1);
                continue;
            }
            double w = want[m * ld + p];
            if (!(fabs(g - w) <= tol * (1.0 + fabs(w))))
                fail_msg("%s: row %lld pixel %lld: got %.8g want %.8g", what, (long long)m,
                         (long long)p, g, w);
        }
}

static void test_kernels(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 31337);
    const int have512 =
#if defined(__x86_64__)
        sqz_cpu_has_avx512();
#else
        0;
#endif
    if (!have512) print_message("conv1x1: no AVX-512 on this CPU: the scalar twin only\n");
    for (int it = 0; it < 300; it++) {
        /* odd iterations: the small-M path (K past SQZ_C1X1_MAX_K) */
        const int small_m = it & 1;
        const int64_t K =
            small_m ? SQZ_C1X1_MAX_K + 1 + tu_rng_u32(&rng) % (SQZ_C1X1_MAXM_K - SQZ_C1X1_MAX_K)
                    : 1 + tu_rng_u32(&rng) % SQZ_C1X1_MAX_K;
        const int64_t M = 1 + tu_rng_u32(&rng) % (small_m ? SQZ_C1X1_MAX_M : 41);
        const int64_t N = 1 + tu_rng_u32(&rng) % 200;
        const int64_t ld_in = N + tu_rng_u32(&rng) % 20, ld_out = N + tu_rng_u32(&rng) % 20;
        int64_t p0 = tu_rng_u32(&rng) % (uint32_t)N,
                p1 = p0 + 1 + tu_rng_u32(&rng) % (uint32_t)(N - p0);
        if (it % 4 == 0) {
            p0 = 0;
            p1 = N;
        }
        const int act = acts[it % 5];
        const int has_bias = it % 3 != 0;
        float *x = malloc((size_t)(K * ld_in) * sizeof(float));
        float *W = malloc((size_t)(M * K) * sizeof(float));
        float *b = malloc((size_t)M * sizeof(float));
        float *wp = malloc(sqz_c1x1_floats(K, M) * sizeof(float));
        float *want = malloc((size_t)(M * ld_out) * sizeof(float));
        float *y1 = malloc((size_t)(M * ld_out) * sizeof(float));
        float *y2 = malloc((size_t)(M * ld_out) * sizeof(float));
        assert_non_null(x);
        assert_non_null(W);
        assert_non_null(b);
        assert_non_null(wp);
        assert_non_null(want);
        assert_non_null(y1);
        assert_non_null(y2);
        tu_fill_uniform(&rng, x, (size_t)(K * ld_in), -2.0f, 2.0f);
        tu_fill_uniform(&rng, W, (size_t)(M * K), -1.0f, 1.0f);
        tu_fill_uniform(&rng, b, (size_t)M, -1.0f, 1.0f);
        sqz_c1x1_pack(K, M, W, has_bias ? b : NULL, wp);
        sqz_c1x1 a;
        memset(&a, 0, sizeof a);
        a.K = K;
        a.M = M;
        a.in_ld = ld_in;
        a.out_ld = ld_out;
        a.w = wp;
        a.act = act;
        a.alpha = act == SQZ_ACT_CLIP ? -0.5f : 0.1f;
        a.beta = 0.75f;
        a.stream = (it >> 1) & 1;
        for (int64_t m = 0; m < M; m++)
            for (int64_t p = 0; p < ld_out; p++) {
                double s = has_bias ? b[m] : 0.0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)W[m * K + k] * (double)x[k * ld_in + (p < N ? p : 0)];
                want[m * ld_out + p] = act_ref(act, a.alpha, a.beta, s);
            }
        char what[160];
        snprintf(what, sizeof what, "scalar K=%lld M=%lld N=%lld [%lld, %lld) act %d", (long long)K,
                 (long long)M, (long long)N, (long long)p0, (long long)p1, act);
        for (int64_t i = 0; i < M * ld_out; i++) y1[i] = y2[i] = NAN;
        sqz_c1x1_scalar(&a, x, y1, p0, p1);
        check(y1, want, M, ld_out, p0, p1, 1e-5, what);
#if defined(__x86_64__)
        if (have512) {
            snprintf(what, sizeof what, "avx512 K=%lld M=%lld N=%lld [%lld, %lld) act %d stream %d",
                     (long long)K, (long long)M, (long long)N, (long long)p0, (long long)p1, act,
                     a.stream);
            sqz_c1x1_avx512(&a, x, y2, p0, p1);
            check(y2, y1, M, ld_out, p0, p1, 1e-5, what);
        }
#endif
        free(x);
        free(W);
        free(b);
        free(wp);
        free(want);
        free(y1);
        free(y2);
    }
}

/* the Conv op of the executor's kernel table on 1x1 convs with K <= 16 or
 * M <= 16 (the small-K kernel where the CPU has one) against the reference
 * Conv */
static void test_conv_op(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 4242);
    static const int64_t shapes[][4] = {/* K, M, H, W */
                                        {16, 48, 30, 30}, {16, 64, 13, 11}, {3, 5, 4, 5},
                                        {16, 24, 60, 40}, {7, 33, 9, 9},    {1, 8, 17, 1},
                                        {32, 16, 30, 30}, {45, 7, 9, 13},   {64, 13, 5, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int threads = 1; threads <= 2; threads++) {
            const int64_t K = shapes[s][0], M = shapes[s][1], H = shapes[s][2], W = shapes[s][3];
            const size_t nx = (size_t)(K * H * W), ny = (size_t)(M * H * W);
            float *x = malloc(nx * sizeof(float)), *w = malloc((size_t)(M * K) * sizeof(float));
            float *b = malloc((size_t)M * sizeof(float));
            assert_non_null(x);
            assert_non_null(w);
            assert_non_null(b);
            tu_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
            tu_fill_uniform(&rng, w, (size_t)(M * K), -1.0f, 1.0f);
            tu_fill_uniform(&rng, b, (size_t)M, -1.0f, 1.0f);
            int64_t group = 1, pads[4] = {0, 0, 0, 0}, strides[2] = {1, 1}, act = SQZ_ACT_CLIP;
            float alpha = 0.0f, beta = 6.0f;
            sqz_attr at[5];
            at[0] = (sqz_attr){.name = "group", .type = SQZ_ATTR_INT, .count = 1, .ints = &group};
            at[1] = (sqz_attr){.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = pads};
            at[2] =
                (sqz_attr){.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = strides};
            at[3] = (sqz_attr){.name = "sqz_act", .type = SQZ_ATTR_INT, .count = 1, .ints = &act};
            at[4] = (sqz_attr){
                .name = "sqz_act_alpha", .type = SQZ_ATTR_FLOAT, .count = 1, .floats = &alpha};
            sqz_attr at5[6];
            memcpy(at5, at, sizeof at);
            at5[5] = (sqz_attr){
                .name = "sqz_act_beta", .type = SQZ_ATTR_FLOAT, .count = 1, .floats = &beta};
            int32_t ids[3] = {0, 1, 2};
            sqz_node node;
            memset(&node, 0, sizeof node);
            node.op = SQZ_OP_CONV;
            node.name = "c1x1";
            node.n_inputs = 3;
            node.n_outputs = 1;
            node.n_attrs = 6;
            node.inputs = ids;
            node.outputs = ids;
            node.attrs = at5;
            float *y[2];
            const sqz_op_impl *cands[8];
            int nc = sqz_fast_ops(SQZ_OP_CONV, cands, 8);
            for (int r = 0; r < 2; r++) {
                sqz_shape in[3];
                memset(in, 0, sizeof in);
                in[0].ndim = 4;
                in[0].dims[0] = 1;
                in[0].dims[1] = K;
                in[0].dims[2] = H;
                in[0].dims[3] = W;
                in[1].ndim = 4;
                in[1].dims[0] = M;
                in[1].dims[1] = K;
                in[1].dims[2] = in[1].dims[3] = 1;
                in[2].ndim = 1;
                in[2].dims[0] = M;
                const float *data[3] = {x, w, b};
                sqz_shape out;
                char err[256] = {0};
                sqz_op_ctx ctx;
                memset(&ctx, 0, sizeof ctx);
                ctx.node = &node;
                ctx.n_in = 3;
                ctx.n_out = 1;
                ctx.in_shape = in;
                ctx.in_data = data;
                ctx.out_shape = &out;
                ctx.err = err;
                ctx.err_len = sizeof err;
                ctx.num_threads = threads;
                /* r = 1: the executor's choice (first candidate that takes
                 * the node, as session.c picks) */
                const sqz_op_impl *impl = sqz_ref_op(SQZ_OP_CONV);
                for (int c = 0; r == 1 && c < nc; c++) {
                    int rc = cands[c]->prepare(&ctx);
                    if (rc == 0) {
                        impl = cands[c];
                        break;
                    }
                    if (rc < 0) fail_msg("prepare: %s", err);
                }
                if (impl == sqz_ref_op(SQZ_OP_CONV) && impl->prepare(&ctx) != 0)
                    fail_msg("prepare: %s", err);
                void *scratch = ctx.scratch_bytes ? malloc(ctx.scratch_bytes) : NULL;
                y[r] = malloc(ny * sizeof(float));
                assert_non_null(y[r]);
                float *outs[1] = {y[r]};
                ctx.scratch = scratch;
                ctx.out_data = outs;
                impl->run(&ctx);
                if (impl->release) impl->release(ctx.params);
                free(scratch);
            }
            for (size_t i = 0; i < ny; i++)
                if (!(fabs((double)y[1][i] - y[0][i]) <= 1e-5 * (1.0 + fabs((double)y[0][i]))))
                    fail_msg("conv K=%lld M=%lld %lldx%lld threads %d: element %zu got %.8g want "
                             "%.8g",
                             (long long)K, (long long)M, (long long)H, (long long)W, threads, i,
                             y[1][i], y[0][i]);
            free(y[0]);
            free(y[1]);
            free(x);
            free(w);
            free(b);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kernels),
                                       cmocka_unit_test(test_conv_op)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
