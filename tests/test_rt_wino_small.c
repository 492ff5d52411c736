/* test_rt_wino_small.c - the small-channel Winograd F(4,3) kernel
 * (wino_small.h, AVX-512) through the Winograd Conv impl against the
 * reference Conv: every C / M it accepts (16, 32, 48, 64), planes with odd
 * sizes and partial tiles (27x17, 7x7, 1xN, Nx1, 5x3), pads 0 / 1 /
 * asymmetric, bias or not, ReLU or none, 1-3 parts (threads), two images,
 * and the executor's fused Add (+ ReLU) in place and into the residual;
 * plus what it declines. Skipped where the CPU has no AVX-512. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gemm.h"
#include "sqz/ops.h"
#include "test_node.h"
#include "testutil.h"
#include "winograd.h"
#if defined(__x86_64__)
#include "cpu.h"
#endif

typedef struct tcase {
    int64_t N, C, M, H, W;
    int64_t pads[4]; /* top, left, bottom, right */
    int act, bias;
    int threads;
    int post; /* 0 none, 1 Add in place (out = Y), 2 Add + ReLU into the residual */
} tcase;

static void build_node(tnode *t, const tcase *c) {
    tn_init(t, SQZ_OP_CONV, "wsm", c->bias ? 3 : 2);
    int64_t one = 1, st[2] = {1, 1}, ks[2] = {3, 3};
    tn_ints(t, "group", 1, &one);
    tn_ints(t, "strides", 2, st);
    tn_ints(t, "dilations", 2, st);
    tn_ints(t, "kernel_shape", 2, ks);
    tn_ints(t, "pads", 4, c->pads);
    if (c->act) {
        int64_t a = c->act;
        tn_ints(t, "sqz_act", 1, &a);
    }
}

/* Runs the conv (small: the small kernel forced, else the reference);
 * returns prepare's code; y gets the output (the fused Add's result in
 * *out when post). */
static int run(int small, const tcase *c, const float *x, const float *w, const float *b, float *y,
               const float *res, float *out) {
    tnode t;
    build_node(&t, c);
    sqz_shape in[3], oshape;
    memset(in, 0, sizeof(in));
    in[0] = (sqz_shape){4, {c->N, c->C, c->H, c->W}};
    in[1] = (sqz_shape){4, {c->M, c->C, 3, 3}};
    in[2] = (sqz_shape){1, {c->M}};
    const float *data[3] = {x, w, b}, *pdata[3] = {NULL, w, b};
    char err[256] = {0};
    sqz_op_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.node = &t.node;
    ctx.n_in = t.node.n_inputs;
    ctx.n_out = 1;
    ctx.in_shape = in;
    ctx.in_data = pdata;
    ctx.out_shape = &oshape;
    ctx.err = err;
    ctx.err_len = sizeof(err);
    ctx.num_threads = c->threads;
    const sqz_op_impl *ref = sqz_ref_op(SQZ_OP_CONV);
    int rc = small ? sqz_winograd_conv_prepare(&ctx, sqz_gemm_best(), SQZ_WINO_SMALL)
                   : ref->prepare(&ctx);
    if (rc) {
        assert_null(ctx.params);
        return rc;
    }
    if (small) {
        int m = 0, parts = 0;
        sqz_winograd_conv_info(&ctx, &m, &parts);
        assert_int_equal(m, SQZ_WINO_SMALL);
        assert_true(parts >= 1 && parts <= c->threads);
    }
    void *scratch = NULL;
    if (ctx.scratch_bytes) {
        scratch = aligned_alloc(64, (ctx.scratch_bytes + 63) / 64 * 64);
        assert_non_null(scratch);
    }
    float *outs[1] = {y};
    ctx.scratch = scratch;
    ctx.in_data = data;
    ctx.out_data = outs;
    if (small && c->post) {
        sqz_conv_post q = {y, res, out, c->post == 2, NULL, sqz_conv_add_best()};
        assert_int_equal(sqz_winograd_conv_set_post(&sqz_winograd_conv, &ctx, &q), 1);
    }
    (small ? sqz_winograd_conv_run : ref->run)(&ctx);
    (small ? sqz_winograd_conv_release : ref->release)(ctx.params);
    free(scratch);
    return 0;
}

static int close_to(float got, float want, double tol) {
    return fabs((double)got - (double)want) <= tol;
}

static int has_kernel(void) {
#if defined(__x86_64__)
    return sqz_cpu_has_avx512();
#else
    return 0;
#endif
}

static void check(tu_rng *rng, const tcase *c) {
    const int64_t OH = c->H + c->pads[0] + c->pads[2] - 2, OW = c->W + c->pads[1] + c->pads[3] - 2;
    const size_t nx = (size_t)(c->N * c->C * c->H * c->W), nw = (size_t)(c->M * c->C * 9),
                 ny = (size_t)(c->N * c->M * OH * OW);
    float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float)),
          *b = malloc((size_t)c->M * sizeof(float)), *want = malloc(ny * sizeof(float)),
          *got = malloc(ny * sizeof(float)), *res = malloc(ny * sizeof(float)),
          *res0 = malloc(ny * sizeof(float));
    assert_true(x && w && b && want && got && res && res0);
    tu_fill_uniform(rng, x, nx, -1.0f, 1.0f);
    tu_fill_uniform(rng, w, nw, -0.5f, 0.5f);
    tu_fill_uniform(rng, b, (size_t)c->M, -1.0f, 1.0f);
    tu_fill_uniform(rng, res0, ny, -2.0f, 2.0f);
    memcpy(res, res0, ny * sizeof(float));
    for (size_t i = 0; i < ny; i++) got[i] = NAN; /* catch unwritten elements */
    assert_int_equal(run(0, c, x, w, c->bias ? b : NULL, want, NULL, NULL), 0);
    int rc = run(1, c, x, w, c->bias ? b : NULL, got, res, c->post == 1 ? got : res);
    if (!has_kernel()) {
        assert_int_equal(rc, 1);
    } else {
        assert_int_equal(rc, 0);
        /* F(4,3) rounds relative to the transformed terms (A^T's 8s times
         * B^T's 5s), not to each output: bounded by the largest |y| (the
         * generic F(4,3) path errs as much on these cases) */
        double big = 0;
        for (size_t i = 0; i < ny; i++) big = fabs(want[i]) > big ? fabs(want[i]) : big;
        const double tol = 2e-6 * sqrt((double)c->C) * (1.0 + big);
        for (size_t i = 0; i < ny; i++) {
            float e = want[i];
            if (c->post) e += res0[i];
            if (c->post == 2) e = e > 0.0f ? e : 0.0f;
            /* Add in place: the sum in Y; into the residual: Y kept */
            float g = c->post == 2 ? res[i] : got[i];
            if (!close_to(g, e, tol) || (c->post == 2 && !close_to(got[i], want[i], tol)))
                fail_msg("y[%zu] of %zu %.8g want %.8g (N=%lld C=%lld M=%lld %lldx%lld pads %lld "
                         "%lld %lld %lld act %d bias %d thr %d post %d)",
                         i, ny, g, e, (long long)c->N, (long long)c->C, (long long)c->M,
                         (long long)c->H, (long long)c->W, (long long)c->pads[0],
                         (long long)c->pads[1], (long long)c->pads[2], (long long)c->pads[3],
                         c->act, c->bias, c->threads, c->post);
        }
    }
    free(x);
    free(w);
    free(b);
    free(want);
    free(got);
    free(res);
    free(res0);
}

static tcase base(int64_t C, int64_t M, int64_t H, int64_t W) {
    tcase c;
    memset(&c, 0, sizeof(c));
    c.N = 1;
    c.C = C;
    c.M = M;
    c.H = H;
    c.W = W;
    c.bias = 1;
    c.threads = 1;
    c.act = SQZ_ACT_RELU;
    for (int i = 0; i < 4; i++) c.pads[i] = 1;
    return c;
}

static void test_fixed(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 31);
    /* the small ResNet's layers, with their fused Adds */
    tcase c = base(16, 16, 28, 28);
    check(&rng, &c);
    c.post = 2;
    c.threads = 2;
    check(&rng, &c);
    c = base(32, 32, 14, 14);
    c.post = 1;
    check(&rng, &c);
    c = base(64, 64, 7, 7);
    c.act = 0;
    c.post = 2;
    check(&rng, &c);
    c.threads = 2;
    check(&rng, &c);
    /* every accepted C x M */
    for (int64_t C = 16; C <= 64; C += 16)
        for (int64_t M = 16; M <= 64; M += 16) {
            c = base(C, M, 9, 11);
            c.threads = (int)(C / 16);
            check(&rng, &c);
        }
    /* a plane run in chunks of tile rows (3 of its 8 a call) */
    c = base(64, 64, 30, 29);
    c.post = 2;
    check(&rng, &c);
    /* odd planes: partial tiles at the bottom / right, lines */
    c = base(16, 32, 27, 17);
    c.threads = 3;
    check(&rng, &c);
    c = base(32, 16, 1, 23);
    check(&rng, &c);
    c = base(16, 16, 19, 1);
    c.bias = 0;
    check(&rng, &c);
    c = base(48, 16, 5, 3);
    c.N = 2;
    c.post = 1;
    check(&rng, &c);
    /* no pads, asymmetric pads */
    c = base(16, 48, 10, 13);
    for (int i = 0; i < 4; i++) c.pads[i] = 0;
    check(&rng, &c);
    c = base(32, 32, 12, 9);
    c.pads[0] = 0;
    c.pads[1] = 2;
    c.pads[2] = 2;
    c.pads[3] = 0;
    c.N = 2;
    c.threads = 2;
    check(&rng, &c);
}

static void test_random(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 37);
    for (int rep = 0; rep < 24; rep++) {
        tcase c = base(16 * (1 + tu_rng_u32(&rng) % 4), 16 * (1 + tu_rng_u32(&rng) % 4),
                       1 + tu_rng_u32(&rng) % 30, 1 + tu_rng_u32(&rng) % 30);
        for (int i = 0; i < 4; i++) c.pads[i] = tu_rng_u32(&rng) % 3;
        if (c.H + c.pads[0] + c.pads[2] < 3 || c.W + c.pads[1] + c.pads[3] < 3) continue;
        c.N = 1 + tu_rng_u32(&rng) % 2;
        c.bias = (int)(tu_rng_u32(&rng) % 2);
        c.act = (int)(tu_rng_u32(&rng) % 2);
        c.threads = 1 + (int)(tu_rng_u32(&rng) % 3);
        c.post = (int)(tu_rng_u32(&rng) % 3);
        check(&rng, &c);
    }
}

static void test_declines(void **state) {
    (void)state;
    static float x[80 * 8 * 8], w[80 * 80 * 9];
    float y[80 * 8 * 8];
    const tcase cs[] = {base(8, 16, 8, 8), base(16, 24, 8, 8), base(80, 16, 8, 8),
                        base(16, 80, 8, 8)};
    for (int i = 0; i < 4; i++) assert_int_equal(run(1, &cs[i], x, w, NULL, y, NULL, NULL), 1);
    tcase c = base(16, 16, 8, 8);
    c.act = SQZ_ACT_CLIP; /* only none / ReLU in its registers */
    assert_int_equal(run(1, &c, x, w, NULL, y, NULL, NULL), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_declines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
