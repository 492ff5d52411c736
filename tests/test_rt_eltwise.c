/* test_rt_eltwise.c - vectorised element-wise kernels against the reference
 * (skipped with a message when this CPU lacks the ISA). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sqz/ops.h"
#include "testutil.h"
#if defined(__x86_64__)
#include "cpu.h"
#include "x86/eltwise_x86.h"
#endif
#if defined(__aarch64__)
#include "cpu.h"
#include "neon/ops_neon.h"
#endif

/* runs impl as a one-input unary op on x[n] into y */
static void run_unary(const sqz_op_impl *impl, int op, const float *x, float *y, int64_t n,
                      int threads) {
    int32_t ids[1] = {0};
    sqz_node node;
    memset(&node, 0, sizeof(node));
    node.op = (uint16_t)op;
    node.name = "u";
    node.n_inputs = node.n_outputs = 1;
    node.inputs = node.outputs = ids;
    sqz_shape in, out;
    memset(&in, 0, sizeof(in));
    in.ndim = 2;
    in.dims[0] = 1;
    in.dims[1] = n;
    const float *data[1] = {x};
    float *outs[1] = {y};
    char err[128] = {0};
    sqz_op_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.node = &node;
    ctx.n_in = ctx.n_out = 1;
    ctx.in_shape = &in;
    ctx.in_data = data;
    ctx.out_shape = &out;
    ctx.out_data = outs;
    ctx.err = err;
    ctx.err_len = sizeof(err);
    ctx.num_threads = threads;
    assert_int_equal(impl->prepare(&ctx), 0);
    assert_int_equal(ctx.scratch_bytes, 0);
    assert_int_equal(sqz_shape_numel(&out), n);
    impl->run(&ctx);
    if (impl->release) impl->release(ctx.params);
}

#if defined(__x86_64__) || defined(__aarch64__)
static void check_sigmoid(const sqz_op_impl *impl) {
    tu_rng rng;
    tu_rng_seed(&rng, 31);
    const int64_t lens[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 40000};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int64_t n = lens[li];
        float *x = malloc((size_t)n * sizeof(float)), *a = malloc((size_t)n * sizeof(float));
        float *b = malloc((size_t)n * sizeof(float));
        assert_true(x && a && b);
        tu_fill_uniform(&rng, x, (size_t)n, -20.0f, 20.0f);
        /* special values */
        const float sp[] = {0.0f, -0.0f, 1e-8f, -1e-8f, 88.0f, -88.0f, 200.0f, -200.0f, 15.9f};
        for (size_t i = 0; i < sizeof sp / sizeof sp[0] && (int64_t)i < n; i++) x[i] = sp[i];
        run_unary(sqz_ref_op(SQZ_OP_SIGMOID), SQZ_OP_SIGMOID, x, a, n, 1);
        run_unary(impl, SQZ_OP_SIGMOID, x, b, n, li & 1 ? 2 : 1);
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)a[i] - (double)b[i]);
            if (!(d <= 1e-6 * fabs((double)a[i]) + 1e-30))
                fail_msg("sigmoid(%.9g): got %.9g want %.9g", x[i], b[i], a[i]);
        }
        free(x);
        free(a);
        free(b);
    }
}
#endif

static void test_sigmoid(void **state) {
    (void)state;
#if defined(__x86_64__)
    if (!sqz_cpu_has_avx2_fma()) {
        printf("sigmoid avx2 SKIPPED: no AVX2/FMA on this CPU\n");
        return;
    }
    check_sigmoid(&sqz_x86_sigmoid_avx2);
    printf("sigmoid avx2 covered\n");
#else
    printf("sigmoid: no vectorised kernel on this architecture\n");
#endif
}

static void test_sigmoid_avx512(void **state) {
    (void)state;
#if defined(__x86_64__)
    if (!sqz_cpu_has_avx512()) {
        printf("sigmoid avx512 SKIPPED: no AVX-512 on this CPU\n");
        return;
    }
    check_sigmoid(&sqz_x86_sigmoid_avx512);
    printf("sigmoid avx512 covered\n");
#else
    printf("sigmoid: no vectorised kernel on this architecture\n");
#endif
}

static void test_sigmoid_neon(void **state) {
    (void)state;
#if defined(__aarch64__)
    if (!sqz_cpu_has_neon()) {
        printf("sigmoid neon SKIPPED: no ASIMD in AT_HWCAP\n");
        return;
    }
    check_sigmoid(&sqz_neon_sigmoid);
    printf("sigmoid neon covered\n");
#else
    printf("sigmoid neon: not an aarch64 build\n");
#endif
}

/* The fused SiLU kernels (x at Mul input 0 or 1) against Sigmoid then Mul
 * of the reference, odd lengths and 1 / 2 threads. */
static void test_silu(void **state) {
    (void)state;
#if defined(__x86_64__)
    const sqz_op_impl *impls[2][2] = {{&sqz_x86_silu_avx2[0], &sqz_x86_silu_avx2[1]},
                                      {&sqz_x86_silu_avx512[0], &sqz_x86_silu_avx512[1]}};
    int have[2] = {sqz_cpu_has_avx2_fma(), sqz_cpu_has_avx512()};
    tu_rng rng;
    tu_rng_seed(&rng, 77);
    const int64_t lens[] = {1, 5, 16, 17, 47, 40000};
    for (int isa = 0; isa < 2; isa++) {
        if (!have[isa]) {
            printf("silu %s SKIPPED: ISA missing on this CPU\n", isa ? "avx512" : "avx2");
            continue;
        }
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int64_t n = lens[li];
            float *x = malloc((size_t)n * sizeof(float)), *sg = malloc((size_t)n * sizeof(float));
            float *y = malloc((size_t)n * sizeof(float)), *junk = malloc((size_t)n * sizeof(float));
            assert_true(x && sg && y && junk);
            tu_fill_uniform(&rng, x, (size_t)n, -12.0f, 12.0f);
            /* the clamp edges of exp(-x) (x in [-87, 88]) and beyond: there the
             * kernels' x / (1 + exp(-x)) is within 1e-30 of the reference */
            const float sp[] = {0.0f,   -0.0f,  1e-8f, -1e-8f, 17.0f,  -17.0f,  30.0f,  -30.0f,
                                87.0f,  -87.0f, 87.5f, -87.5f, 88.0f,  -88.0f,  100.0f, -100.0f,
                                200.0f, -200.f, 1e30f, -1e30f, 0.693f, -0.347f, 0.347f, NAN};
            if (li + 1 == sizeof lens / sizeof lens[0])
                for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) x[i * 97] = sp[i];
            for (int64_t i = 0; i < n; i++) junk[i] = NAN; /* the unread sigmoid input */
            run_unary(sqz_ref_op(SQZ_OP_SIGMOID), SQZ_OP_SIGMOID, x, sg, n, 1);
            for (int xi = 0; xi < 2; xi++) {
                int32_t ids[2] = {0, 1}, oid[1] = {2};
                sqz_node node;
                memset(&node, 0, sizeof node);
                node.op = SQZ_OP_MUL;
                node.name = "silu";
                node.n_inputs = 2;
                node.n_outputs = 1;
                node.inputs = ids;
                node.outputs = oid;
                sqz_shape in[2] = {{2, {1, n}}, {2, {1, n}}}, out;
                const float *data[2] = {xi ? junk : x, xi ? x : junk};
                float *outs[1] = {y};
                char err[64];
                sqz_op_ctx c;
                memset(&c, 0, sizeof c);
                c.node = &node;
                c.n_in = 2;
                c.n_out = 1;
                c.in_shape = in;
                c.in_data = data;
                c.out_shape = &out;
                c.out_data = outs;
                c.err = err;
                c.err_len = sizeof err;
                c.num_threads = 1 + (int)(li & 1);
                const sqz_op_impl *f = impls[isa][xi];
                assert_int_equal(f->prepare(&c), 0);
                assert_int_equal(sqz_shape_numel(&out), n);
                f->run(&c);
                for (int64_t i = 0; i < n; i++) {
                    float want = x[i] * sg[i];
                    if (isnan(want) ? !isnan(y[i])
                                    : !(fabsf(y[i] - want) <= 1e-6f * fabsf(want) + 1e-30f))
                        fail_msg("silu(%.9g): got %.9g want %.9g", x[i], y[i], want);
                }
            }
            free(x);
            free(sg);
            free(y);
            free(junk);
        }
    }
#else
    printf("silu: no vectorised kernel on this architecture\n");
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigmoid), cmocka_unit_test(test_sigmoid_avx512),
        cmocka_unit_test(test_sigmoid_neon), cmocka_unit_test(test_silu)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
