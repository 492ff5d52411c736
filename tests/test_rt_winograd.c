/* test_rt_winograd.c - the Winograd 3x3 conv: every transform instance this
 * CPU runs against the scalar twin (random panels crossing tile rows,
 * images and the plane's edges), and the whole conv (each GEMM kernel this
 * CPU runs, F(2,3) and F(4,3), 1 and 2 threads) against the reference Conv on
 * random shapes: odd H / W, pads 0 / 1 / asymmetric, channel counts that are
 * not multiples of the vector width, bias and fused activations; plus the
 * convs it must decline and the SQZ_WINOGRAD switch. */
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
#include "gemm.h"
#include "test_node.h"
#include "testutil.h"
#include "winograd.h"
#if defined(__x86_64__) || defined(__aarch64__)
#include "cpu.h"
#endif

/* ------------------------------------------------- transforms vs the twin */

typedef struct tf_entry {
    const sqz_wino_tf *tf;
    int (*ok)(void); /* NULL: always */
} tf_entry;

static const tf_entry tfs[] = {
    {&sqz_wino_tf_generic, NULL},
#if defined(__x86_64__)
    {&sqz_wino_tf_avx2, sqz_cpu_has_avx2_fma},
    {&sqz_wino_tf_avx512, sqz_cpu_has_avx512},
#endif
#if defined(__aarch64__)
    {&sqz_wino_tf_neon, sqz_cpu_has_neon},
#endif
};
#define N_TFS ((int)(sizeof tfs / sizeof tfs[0]))

static int close_to(float got, float want, double tol) {
    return fabs((double)got - (double)want) <= tol * (1.0 + fabs((double)want));
}

/* a random geometry: plane up to 19 x 35 (up to 9 tiles a row: runs of 1-9
 * lanes, paired or not by the AVX-512 row transform), leading pads 0..2,
 * trailing -1..2 */
static void random_geom(tu_rng *rng, int m, sqz_wino_geom *g, int64_t *tiles_h, int64_t *nimg) {
    memset(g, 0, sizeof(*g));
    g->m = m;
    g->t = m + 2;
    for (;;) {
        g->IH = 1 + tu_rng_u32(rng) % 19;
        g->IW = 1 + tu_rng_u32(rng) % 35;
        g->ph = tu_rng_u32(rng) % 3;
        g->pw = tu_rng_u32(rng) % 3;
        int64_t eh = (int64_t)(tu_rng_u32(rng) % 4) - 1, ew = (int64_t)(tu_rng_u32(rng) % 4) - 1;
        g->OH = g->IH + g->ph + eh - 2;
        g->OW = g->IW + g->pw + ew - 2;
        if (g->OH >= 1 && g->OW >= 1) break;
    }
    g->tiles_w = (g->OW + m - 1) / m;
    *tiles_h = (g->OH + m - 1) / m;
    *nimg = 1 + tu_rng_u32(rng) % 2;
    g->x_img = g->IH * g->IW + 3; /* images not packed back to back */
    g->y_img = g->OH * g->OW + 5;
}

static void check_transforms(const sqz_wino_tf *tf, int m, tu_rng *rng) {
    const int nr = tf->nr, T2 = (m + 2) * (m + 2);
    sqz_wino_geom g;
    int64_t tiles_h, nimg;
    random_geom(rng, m, &g, &tiles_h, &nimg);
    g.act = (int)(tu_rng_u32(rng) % 5); /* NONE, RELU, CLIP, LEAKY_RELU, HARD_SWISH */
    g.alpha = g.act == SQZ_ACT_CLIP ? -0.3f : 0.1f;
    g.beta = 0.4f;
    const int64_t ntiles = nimg * tiles_h * g.tiles_w;
    int64_t t0 = tu_rng_u32(rng) % ntiles;
    int cnt = 1 + (int)(tu_rng_u32(rng) % (uint32_t)nr);
    if (cnt > ntiles - t0) cnt = (int)(ntiles - t0);
    sqz_wino_panel p;
    sqz_wino_make_panel(&g, tiles_h, t0, cnt, nr, &p);
    /* a half-width last panel (the lanes beyond are neither written nor read) */
    if (cnt <= nr / 2 && tu_rng_u32(rng) % 2) p.lanes = nr / 2;

    size_t nx = (size_t)(nimg * g.x_img), ny = (size_t)(nimg * g.y_img);
    size_t vs = (size_t)nr + 3, nv = (size_t)T2 * vs;
    float *x = malloc(nx * sizeof(float)), *v0 = malloc(nv * sizeof(float)),
          *v1 = malloc(nv * sizeof(float)), *y0 = malloc(ny * sizeof(float)),
          *y1 = malloc(ny * sizeof(float));
    assert_true(x && v0 && v1 && y0 && y1);
    tu_fill_uniform(rng, x, nx, -1.0f, 1.0f);
    for (size_t i = 0; i < nv; i++) v0[i] = v1[i] = -7.0f; /* gaps between rows stay */
    (m == 2 ? sqz_wino_tf_ref.input2 : sqz_wino_tf_ref.input4)(&g, x, &p, v0, vs);
    (m == 2 ? tf->input2 : tf->input4)(&g, x, &p, v1, vs);
    for (size_t i = 0; i < nv; i++)
        if (!close_to(v1[i], v0[i], 1e-5))
            fail_msg(
                "%s input F(%d,3): V[%zu][%zu] %.8g want %.8g (plane %lldx%lld pads %lld %lld, "
                "tiles %lld + %d)",
                tf->name, m, i / vs, i % vs, v1[i], v0[i], (long long)g.IH, (long long)g.IW,
                (long long)g.ph, (long long)g.pw, (long long)t0, cnt);

    /* output: M values as the input transform would leave them (any floats) */
    tu_fill_uniform(rng, v0, nv, -2.0f, 2.0f);
    float bias = tu_rng_uniform(rng, -0.5f, 0.5f);
    for (size_t i = 0; i < ny; i++) y0[i] = y1[i] = 1234.0f; /* untouched pixels must stay */
    (m == 2 ? sqz_wino_tf_ref.output2 : sqz_wino_tf_ref.output4)(&g, v0, vs, &p, bias, y0);
    (m == 2 ? tf->output2 : tf->output4)(&g, v0, vs, &p, bias, y1);
    size_t written = 0;
    for (size_t i = 0; i < ny; i++) {
        written += y0[i] != 1234.0f;
        if (!close_to(y1[i], y0[i], 1e-5))
            fail_msg("%s output F(%d,3) act %d: y[%zu] %.8g want %.8g (plane %lldx%lld, tiles "
                     "%lld + %d)",
                     tf->name, m, g.act, i, y1[i], y0[i], (long long)g.OH, (long long)g.OW,
                     (long long)t0, cnt);
    }
    assert_true(written > 0);
    free(x);
    free(v0);
    free(v1);
    free(y0);
    free(y1);
}

static void test_transforms(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 11);
    int checked = 0;
    for (int i = 0; i < N_TFS; i++) {
        if (tfs[i].ok && !tfs[i].ok()) continue;
        for (int rep = 0; rep < 150; rep++) {
            check_transforms(tfs[i].tf, 2, &rng);
            check_transforms(tfs[i].tf, 4, &rng);
        }
        checked++;
    }
    assert_true(checked >= 1);
}

/* The weight transform of a filter that is a delta at the centre: with G of
 * F(2,3), U = G e1 e1^T G^T where G's middle column is (0, .5, -.5, 0). */
static void test_weight_transform(void **state) {
    (void)state;
    float g[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0}, u[36];
    const float col[4] = {0.0f, 0.5f, -0.5f, 0.0f};
    sqz_wino_weight(2, g, u);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) assert_true(fabsf(u[i * 4 + j] - col[i] * col[j]) < 1e-7f);
    /* F(4,3): middle column of G is (0, -1/6, 1/6, 1/12, -1/12, 0) */
    const float col4[6] = {0.0f, -1.0f / 6, 1.0f / 6, 1.0f / 12, -1.0f / 12, 0.0f};
    sqz_wino_weight(4, g, u);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) assert_true(fabsf(u[i * 6 + j] - col4[i] * col4[j]) < 1e-7f);
}

/* ---------------------------------------------------- whole conv vs the ref */

typedef struct conv_case {
    int64_t N, C, M, H, W;
    int k, s, dil, group;
    int64_t pads[4]; /* top, left, bottom, right */
    int act;
    float alpha, beta;
    int bias;
} conv_case;

static void build_node(tnode *t, const conv_case *c) {
    tn_init(t, SQZ_OP_CONV, "wino", c->bias ? 3 : 2);
    int64_t gr = c->group, st[2] = {c->s, c->s}, dl[2] = {c->dil, c->dil}, ks[2] = {c->k, c->k};
    tn_ints(t, "group", 1, &gr);
    tn_ints(t, "strides", 2, st);
    tn_ints(t, "dilations", 2, dl);
    tn_ints(t, "kernel_shape", 2, ks);
    tn_ints(t, "pads", 4, c->pads);
    if (c->act) {
        int64_t a = c->act;
        tn_ints(t, "sqz_act", 1, &a);
        tn_float(t, "sqz_act_alpha", c->alpha);
        tn_float(t, "sqz_act_beta", c->beta);
    }
}

typedef struct run_res {
    int rc, m, parts;
    sqz_shape shape;
    float *y;
} run_res;

/* kernel NULL: the reference Conv; m < 0: the registered impl (automatic) */
static void run_conv(const sqz_gemm_kernel *k, int m, const conv_case *c, int threads,
                     const float *x, const float *w, const float *b, run_res *r) {
    tnode t;
    build_node(&t, c);
    sqz_shape in[3];
    memset(in, 0, sizeof(in));
    in[0] = (sqz_shape){4, {c->N, c->C, c->H, c->W}};
    in[1] = (sqz_shape){4, {c->M, c->C / c->group, c->k, c->k}};
    in[2] = (sqz_shape){1, {c->M}};
    const float *data[3] = {x, w, b}, *pdata[3] = {NULL, w, b};
    char err[256] = {0};
    sqz_op_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    memset(r, 0, sizeof(*r));
    ctx.node = &t.node;
    ctx.n_in = t.node.n_inputs;
    ctx.n_out = 1;
    ctx.in_shape = in;
    ctx.in_data = pdata;
    ctx.out_shape = &r->shape;
    ctx.err = err;
    ctx.err_len = sizeof(err);
    ctx.num_threads = threads;
    const sqz_op_impl *ref = sqz_ref_op(SQZ_OP_CONV);
    void (*run)(const sqz_op_ctx *) = k ? sqz_winograd_conv_run : ref->run;
    void (*release)(void *) = k ? sqz_winograd_conv_release : ref->release;
    if (!k)
        r->rc = ref->prepare(&ctx);
    else if (m < 0)
        r->rc = sqz_winograd_conv.prepare(&ctx);
    else
        r->rc = sqz_winograd_conv_prepare(&ctx, k, m);
    if (r->rc != 0) {
        assert_null(ctx.params);
        return;
    }
    if (k) sqz_winograd_conv_info(&ctx, &r->m, &r->parts);
    size_t n = (size_t)sqz_shape_numel(&r->shape);
    r->y = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(r->y);
    for (size_t i = 0; i < n; i++) r->y[i] = NAN; /* catch unwritten elements */
    void *scratch = NULL;
    if (ctx.scratch_bytes) {
        scratch = aligned_alloc(64, (ctx.scratch_bytes + 63) / 64 * 64);
        assert_non_null(scratch);
    }
    float *outs[1] = {r->y};
    ctx.scratch = scratch;
    ctx.in_data = data;
    ctx.out_data = outs;
    run(&ctx);
    if (release) release(ctx.params);
    free(scratch);
}

typedef struct kern_entry {
    const sqz_gemm_kernel *k;
    int (*ok)(void);
} kern_entry;

static const kern_entry kerns[] = {
    {&sqz_gemm_scalar, NULL},
#if defined(__x86_64__)
    {&sqz_gemm_avx2, sqz_cpu_has_avx2_fma},
    {&sqz_gemm_avx512, sqz_cpu_has_avx512},
#endif
#if defined(__aarch64__)
    {&sqz_gemm_neon, sqz_cpu_has_neon},
#endif
};
#define N_KERNS ((int)(sizeof kerns / sizeof kerns[0]))

static long n_split; /* cases that ran in more than one part */

/* every kernel x tile x thread count against the reference */
static void check_conv(tu_rng *rng, const conv_case *c) {
    size_t nx = (size_t)(c->N * c->C * c->H * c->W), nw = (size_t)(c->M * c->C * 9);
    float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float)),
          *b = malloc((size_t)c->M * sizeof(float));
    assert_true(x && w && b);
    tu_fill_uniform(rng, x, nx, -1.0f, 1.0f);
    tu_fill_uniform(rng, w, nw, -0.5f, 0.5f);
    tu_fill_uniform(rng, b, (size_t)c->M, -1.0f, 1.0f);
    run_res ref;
    run_conv(NULL, 0, c, 1, x, w, c->bias ? b : NULL, &ref);
    assert_int_equal(ref.rc, 0);
    size_t n = (size_t)sqz_shape_numel(&ref.shape);
    for (int ki = 0; ki < N_KERNS; ki++) {
        if (kerns[ki].ok && !kerns[ki].ok()) continue;
        for (int m = 2; m <= 4; m += 2)
            for (int thr = 1; thr <= 2; thr++) {
                run_res got;
                run_conv(kerns[ki].k, m, c, thr, x, w, c->bias ? b : NULL, &got);
                if (got.rc != 0)
                    fail_msg("%s F(%d,3) declined C=%lld M=%lld %lldx%lld", kerns[ki].k->name, m,
                             (long long)c->C, (long long)c->M, (long long)c->H, (long long)c->W);
                assert_int_equal(got.m, m);
                n_split += got.parts > 1;
                for (int d = 0; d < 4; d++) assert_int_equal(got.shape.dims[d], ref.shape.dims[d]);
                /* F(4,3)'s transforms scale values by up to ~100 (A^T's 8s
                 * times B^T's 5s): rounding grows with C */
                double tol = (m == 2 ? 2e-6 : 1e-5) * sqrt((double)c->C);
                for (size_t i = 0; i < n; i++)
                    if (!close_to(got.y[i], ref.y[i], tol))
                        fail_msg("%s F(%d,3) %d thr: y[%zu] of %zu %.8g want %.8g (N=%lld C=%lld "
                                 "M=%lld %lldx%lld pads %lld %lld %lld %lld act %d bias %d)",
                                 kerns[ki].k->name, m, thr, i, n, got.y[i], ref.y[i],
                                 (long long)c->N, (long long)c->C, (long long)c->M, (long long)c->H,
                                 (long long)c->W, (long long)c->pads[0], (long long)c->pads[1],
                                 (long long)c->pads[2], (long long)c->pads[3], c->act, c->bias);
                free(got.y);
            }
    }
    free(ref.y);
    free(x);
    free(w);
    free(b);
}

static conv_case base_case(int64_t N, int64_t C, int64_t M, int64_t H, int64_t W) {
    conv_case c;
    memset(&c, 0, sizeof(c));
    c.N = N;
    c.C = C;
    c.M = M;
    c.H = H;
    c.W = W;
    c.k = 3;
    c.s = 1;
    c.dil = 1;
    c.group = 1;
    c.bias = 1;
    for (int i = 0; i < 4; i++) c.pads[i] = 1;
    return c;
}

static void test_conv_fixed(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    /* resnet-like plane, pads 1, ReLU */
    conv_case c = base_case(1, 16, 24, 14, 14);
    c.act = SQZ_ACT_RELU;
    check_conv(&rng, &c);
    /* odd plane, no pads, no bias: tiles cross the bottom / right edges */
    c = base_case(1, 5, 7, 11, 9);
    for (int i = 0; i < 4; i++) c.pads[i] = 0;
    c.bias = 0;
    check_conv(&rng, &c);
    /* asymmetric pads, ReLU6 (Clip), two images */
    c = base_case(2, 9, 13, 10, 13);
    c.pads[0] = 0;
    c.pads[1] = 2;
    c.pads[2] = 1;
    c.pads[3] = 0;
    c.act = SQZ_ACT_CLIP;
    c.alpha = 0.0f;
    c.beta = 0.5f;
    check_conv(&rng, &c);
    /* large enough to split over 2 threads (> 2^19 multiply-adds, many
     * tiles), channel counts off the vector widths, HardSwish (scalar act) */
    c = base_case(1, 19, 33, 31, 29);
    c.act = SQZ_ACT_HARD_SWISH;
    check_conv(&rng, &c);
    /* transformed weights too large to stay in L2 (F4: 36 x 80 x 88 floats):
     * the products run in row chunks with the next position prefetched */
    c = base_case(1, 80, 88, 6, 7);
    c.act = SQZ_ACT_RELU;
    check_conv(&rng, &c);
    /* tiny planes: one tile, one pixel */
    c = base_case(1, 3, 2, 1, 1);
    check_conv(&rng, &c);
    c = base_case(1, 4, 3, 3, 2);
    c.pads[0] = c.pads[2] = 0;
    check_conv(&rng, &c);
    assert_true(n_split > 0);
}

static void test_conv_random(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 17);
    for (int rep = 0; rep < 12; rep++) {
        conv_case c = base_case(1 + tu_rng_u32(&rng) % 2, 1 + tu_rng_u32(&rng) % 20,
                                1 + tu_rng_u32(&rng) % 20, 1 + tu_rng_u32(&rng) % 17,
                                1 + tu_rng_u32(&rng) % 17);
        for (int i = 0; i < 4; i++) c.pads[i] = tu_rng_u32(&rng) % 3;
        if (c.H + c.pads[0] + c.pads[2] < 3 || c.W + c.pads[1] + c.pads[3] < 3) continue;
        c.bias = (int)(tu_rng_u32(&rng) % 2);
        c.act = (int)(tu_rng_u32(&rng) % 3); /* NONE, RELU, CLIP */
        c.alpha = -0.2f;
        c.beta = 0.7f;
        check_conv(&rng, &c);
    }
}

static void expect_decline(const conv_case *c) {
    float *x = calloc((size_t)(c->N * c->C * c->H * c->W), sizeof(float));
    float *w = calloc((size_t)(c->M * (c->C / c->group) * c->k * c->k), sizeof(float));
    assert_true(x && w);
    run_res r;
    run_conv(&sqz_gemm_scalar, 2, c, 1, x, w, NULL, &r);
    assert_int_equal(r.rc, 1);
    free(x);
    free(w);
}

static void test_declines(void **state) {
    (void)state;
    conv_case c = base_case(1, 4, 4, 9, 9);
    c.s = 2;
    expect_decline(&c);
    c = base_case(1, 4, 4, 9, 9);
    c.dil = 2;
    expect_decline(&c);
    c = base_case(1, 4, 4, 9, 9);
    c.group = 2;
    expect_decline(&c);
    c = base_case(1, 4, 4, 9, 9);
    c.k = 5;
    c.pads[0] = c.pads[1] = c.pads[2] = c.pads[3] = 2;
    expect_decline(&c);
    c = base_case(1, 4, 4, 9, 9);
    c.k = 1;
    c.pads[0] = c.pads[1] = c.pads[2] = c.pads[3] = 0;
    expect_decline(&c);
}

/* The registered impl: automatic choice and the SQZ_WINOGRAD switch. */
static void test_auto_and_env(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 23);
    conv_case big = base_case(1, 48, 48, 28, 28), small = base_case(1, 64, 64, 7, 7);
    size_t nx = 64 * 28 * 28, nw = 64 * 64 * 9;
    float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float));
    assert_true(x && w);
    tu_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
    tu_fill_uniform(&rng, w, nw, -1.0f, 1.0f);
    const sqz_gemm_kernel *k = sqz_gemm_best();
    run_res r;
    unsetenv("SQZ_WINOGRAD");
    /* 16..64 channels (multiples of 16) on planes up to 32x32: the
     * small-channel kernel where the CPU has AVX-512 (wino_small.h) */
#if defined(__x86_64__)
    const int small_kernel = sqz_cpu_has_avx512();
#else
    const int small_kernel = 0;
#endif
    run_conv(k, -1, &big, 1, x, w, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.m, small_kernel ? SQZ_WINO_SMALL : 4);
    free(r.y);
    run_conv(k, -1, &small, 1, x, w, NULL, &r); /* 7x7: else the direct GEMM's */
    assert_int_equal(r.rc, small_kernel ? 0 : 1);
    if (small_kernel) free(r.y);
    big.C = 56; /* off the small kernel's channel counts */
    run_conv(k, -1, &big, 1, x, w, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.m, 4);
    free(r.y);
    big.C = 48;
    setenv("SQZ_WINOGRAD", "s", 1);
    run_conv(k, -1, &big, 1, x, w, NULL, &r);
    assert_int_equal(r.rc, small_kernel ? 0 : 1);
    if (small_kernel) {
        assert_int_equal(r.m, SQZ_WINO_SMALL);
        free(r.y);
    }
    setenv("SQZ_WINOGRAD", "2", 1);
    run_conv(k, -1, &big, 1, x, w, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.m, 2);
    free(r.y);
    setenv("SQZ_WINOGRAD", "0", 1);
    run_conv(k, -1, &big, 1, x, w, NULL, &r);
    assert_int_equal(r.rc, 1);
    unsetenv("SQZ_WINOGRAD");
    free(x);
    free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_transform), cmocka_unit_test(test_transforms),
        cmocka_unit_test(test_conv_fixed),       cmocka_unit_test(test_conv_random),
        cmocka_unit_test(test_declines),         cmocka_unit_test(test_auto_and_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
