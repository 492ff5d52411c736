/* test_rt_int8_split.c - the int8 Conv driver's thread splits (common/
 * int8_gemm.c) against the reference, byte for byte: convs large enough to
 * split over 2 and 3 threads (each part's plane rows of the wide path,
 * output-channel chunks of the pointwise path at 14x14 / 7x7, its tiles of
 * 256 pixels on large maps), odd sizes, pads and strides, for each ISA this
 * CPU has. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "int8.h"
#include "int8_harness.h"
#include "testutil.h"
#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)
#include "cpu.h"
#include "int8_simd.h"
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)

typedef struct isa_conv {
    const char *name;
    int (*ok)(void);
    const sqz_op_impl *conv, *gemm;
} isa_conv;

static const isa_conv k_isas[] = {
#if defined(__aarch64__)
    {"neon-sdot", sqz_cpu_has_neon_dot, &sqz_i8_conv_dot, &sqz_i8_gemm_dot},
    {"neon-smlal", sqz_cpu_has_neon, &sqz_i8_conv_neon, &sqz_i8_gemm_neon},
#else
    {"avx512-vnni", sqz_cpu_has_avx512_vnni, &sqz_i8_conv_vnni, &sqz_i8_gemm_vnni},
    {"avx2", sqz_cpu_has_avx2_fma, &sqz_i8_conv_avx2, &sqz_i8_gemm_avx2},
#endif
};

typedef struct sconv {
    int64_t C, H, W, M, k, s, pt, pl, pb, pr;
} sconv;

/* a layer's random data: nx activations, nw weights in [-127, 127], M
 * per-channel weight scales, zero weight zero points and int32 biases */
typedef struct rnd_layer {
    int8_t *x, *w;
    float *sw;
    int32_t *zw, *b;
} rnd_layer;

static void rnd_layer_make(rnd_layer *l, size_t nx, size_t nw, int64_t M, tu_rng *g) {
    l->x = malloc(nx);
    l->w = malloc(nw);
    l->sw = malloc((size_t)M * sizeof(float));
    l->zw = calloc((size_t)M, 4);
    l->b = malloc((size_t)M * 4);
    assert_true(l->x && l->w && l->sw && l->zw && l->b);
    for (size_t i = 0; i < nx; i++) l->x[i] = (int8_t)(int)(tu_rng_u32(g) % 256 - 128);
    for (size_t i = 0; i < nw; i++) l->w[i] = (int8_t)(int)(tu_rng_u32(g) % 255 - 127);
    for (int64_t i = 0; i < M; i++) {
        l->sw[i] = tu_rng_uniform(g, 0.0005f, 0.02f);
        l->b[i] = (int32_t)(tu_rng_u32(g) % 200001) - 100000;
    }
}

static void rnd_layer_free(rnd_layer *l) {
    free(l->x);
    free(l->w);
    free(l->sw);
    free(l->zw);
    free(l->b);
}

/* conv c at `threads` threads through impl and the reference: same bytes */
static void check(const sconv *c, const sqz_op_impl *impl, int threads, tu_rng *g,
                  const char *isa) {
    rnd_layer l;
    rnd_layer_make(&l, (size_t)(c->C * c->H * c->W), (size_t)(c->M * c->C * c->k * c->k), c->M, g);
    i8t t;
    i8t_init(&t, SQZ_OP_CONV);
    t.threads = threads;
    i8t_act(&t, 0, i8t_shape(4, (int64_t)1, c->C, c->H, c->W), l.x, 0.03f,
            (int32_t)(tu_rng_u32(g) % 256) - 128);
    i8t_weight(&t, 1, i8t_shape(4, c->M, c->C, c->k, c->k), l.w, l.sw, l.zw, (uint32_t)c->M, 0);
    i8t_bias(&t, 2, i8t_shape(1, c->M), l.b);
    i8t_out(&t, SQZ_DT_I8, 0.2f, (int32_t)(tu_rng_u32(g) % 256) - 128);
    int64_t ks[2] = {c->k, c->k}, st[2] = {c->s, c->s}, dl[2] = {1, 1};
    int64_t pads[4] = {c->pt, c->pl, c->pb, c->pr};
    i8t_ints(&t, "kernel_shape", 2, ks);
    i8t_ints(&t, "strides", 2, st);
    i8t_ints(&t, "dilations", 2, dl);
    i8t_ints(&t, "pads", 4, pads);
    i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
    void *want, *got;
    if (i8t_run(&t, sqz_ref_op_int8(SQZ_OP_CONV), &want) != 0) fail_msg("ref: %s", t.err);
    sqz_shape ws = t.out_shape[0];
    if (i8t_run(&t, impl, &got) != 0) fail_msg("%s: prepare: %s", isa, t.err);
    char what[160];
    snprintf(what, sizeof what, "%s conv C%lld %lldx%lld M%lld k%lld s%lld thr%d", isa,
             (long long)c->C, (long long)c->H, (long long)c->W, (long long)c->M, (long long)c->k,
             (long long)c->s, threads);
    i8t_expect_same_bytes(want, got, (size_t)sqz_shape_numel(&ws), what);
    rnd_layer_free(&l);
}

static void test_conv_splits(void **state) {
    (void)state;
    static const sconv cases[] = {
        /* wide path, few channels: row bands of the phase planes (MobileNet's
         * stem, odd sizes, asymmetric pads, 7x7 s2 pad 3, 5x5 s1) */
        {3, 97, 101, 32, 3, 2, 1, 1, 1, 1},
        {3, 64, 64, 32, 3, 2, 0, 0, 1, 1},
        {3, 75, 71, 19, 3, 2, 1, 0, 0, 1},
        {3, 61, 67, 24, 7, 2, 3, 3, 3, 3},
        {2, 45, 49, 17, 5, 1, 2, 2, 2, 2},
        {5, 33, 40, 40, 3, 1, 1, 1, 1, 1},
        /* pointwise at few tiles: output-channel chunks */
        {96, 14, 14, 576, 1, 1, 0, 0, 0, 0},
        {576, 14, 14, 96, 1, 1, 0, 0, 0, 0},
        {160, 7, 7, 960, 1, 1, 0, 0, 0, 0},
        {960, 7, 7, 163, 1, 1, 0, 0, 0, 0},
        {61, 13, 11, 203, 1, 1, 0, 0, 0, 0},
        /* pointwise on >= 2048 pixels: tiles of 256, a partial last one */
        {16, 61, 67, 40, 1, 1, 0, 0, 0, 0},
        {24, 45, 47, 19, 1, 1, 0, 0, 0, 0},
    };
    for (size_t s = 0; s < sizeof k_isas / sizeof k_isas[0]; s++) {
        if (!k_isas[s].ok()) {
            printf("  (skipped %s: this CPU lacks it)\n", k_isas[s].name);
            continue;
        }
        tu_rng g;
        tu_rng_seed(&g, 700 + s);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (int thr = 1; thr <= 3; thr++)
                check(&cases[i], k_isas[s].conv, thr, &g, k_isas[s].name);
    }
}

/* ---- channel-consistent pairs (int8.h sqz_i8_conv_chsplit / sqz_i8_dw_chsplit) */

typedef struct pair_arg {
    const sqz_op_impl *impl;
    int nt, want;
    int64_t mr, nblk; /* conv: set; depthwise: given */
} pair_arg;

static void conv_chsplit_hook(sqz_op_ctx *c, void *arg) {
    pair_arg *a = arg;
    int64_t mr = 0, nblk = 0;
    assert_int_equal(sqz_i8_conv_chsplit(a->impl, c, a->nt, &mr, &nblk, 0), a->want);
    assert_int_equal(sqz_i8_conv_chsplit(a->impl, c, a->nt, &a->mr, &a->nblk, 1), a->want);
    if (a->want) {
        assert_int_equal(mr, a->mr);
        assert_int_equal(nblk, a->nblk);
    }
}

static void dw_chsplit_hook(sqz_op_ctx *c, void *arg) {
    pair_arg *a = arg;
    assert_int_equal(sqz_i8_dw_chsplit(a->impl, c, a->nt, a->mr, a->nblk), a->want);
}

/* op (C -> M, k x k, stride s, pad k / 2, group g) through impl at nt
 * threads with hook, and through the reference: same bytes */
static void check_hooked(int64_t C, int64_t H, int64_t W, int64_t M, int64_t k, int64_t s,
                         int64_t g, const sqz_op_impl *impl, int nt,
                         void (*hook)(sqz_op_ctx *, void *), pair_arg *a, tu_rng *r,
                         const char *what) {
    rnd_layer l;
    rnd_layer_make(&l, (size_t)(C * H * W), (size_t)(M * (C / g) * k * k), M, r);
    i8t t;
    i8t_init(&t, SQZ_OP_CONV);
    t.threads = nt;
    i8t_act(&t, 0, i8t_shape(4, (int64_t)1, C, H, W), l.x, 0.03f,
            (int32_t)(tu_rng_u32(r) % 256) - 128);
    i8t_weight(&t, 1, i8t_shape(4, M, C / g, k, k), l.w, l.sw, l.zw, (uint32_t)M, 0);
    i8t_bias(&t, 2, i8t_shape(1, M), l.b);
    i8t_out(&t, SQZ_DT_I8, 0.2f, (int32_t)(tu_rng_u32(r) % 256) - 128);
    int64_t ks[2] = {k, k}, st[2] = {s, s}, dl[2] = {1, 1}, pads[4] = {k / 2, k / 2, k / 2, k / 2};
    i8t_ints(&t, "kernel_shape", 2, ks);
    i8t_ints(&t, "strides", 2, st);
    i8t_ints(&t, "dilations", 2, dl);
    i8t_ints(&t, "pads", 4, pads);
    i8t_int(&t, "group", g);
    i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
    void *want, *got;
    if (i8t_run(&t, sqz_ref_op_int8(SQZ_OP_CONV), &want) != 0) fail_msg("ref: %s", t.err);
    sqz_shape ws = t.out_shape[0];
    t.post_prepare = hook;
    t.post_arg = a;
    if (i8t_run(&t, impl, &got) != 0) fail_msg("%s: prepare: %s", what, t.err);
    char desc[160];
    snprintf(desc, sizeof desc, "%s C%lld %lldx%lld M%lld k%lld s%lld g%lld thr%d", what,
             (long long)C, (long long)H, (long long)W, (long long)M, (long long)k, (long long)s,
             (long long)g, nt);
    i8t_expect_same_bytes(want, got, (size_t)sqz_shape_numel(&ws), desc);
    rnd_layer_free(&l);
}

static void gap_chsplit_hook(sqz_op_ctx *c, void *arg) {
    pair_arg *a = arg;
    assert_int_equal(sqz_i8_gap_chsplit(a->impl, c, a->nt, a->mr, a->nblk), a->want);
}

/* GlobalAveragePool of [1, M, H, W] at nt threads with the channel cuts of
 * a: the reference's bytes */
static void check_gap(int64_t M, int64_t H, int64_t W, int nt, pair_arg *a, tu_rng *r) {
    size_t nx = (size_t)(M * H * W);
    int8_t *x = malloc(nx);
    assert_true(x != NULL);
    for (size_t i = 0; i < nx; i++) x[i] = (int8_t)(int)(tu_rng_u32(r) % 256 - 128);
    i8t t;
    i8t_init(&t, SQZ_OP_GLOBAL_AVGPOOL);
    t.threads = nt;
    i8t_act(&t, 0, i8t_shape(4, (int64_t)1, M, H, W), x, 0.05f,
            (int32_t)(tu_rng_u32(r) % 256) - 128);
    i8t_out(&t, SQZ_DT_I8, 0.01f, (int32_t)(tu_rng_u32(r) % 256) - 128);
    void *want, *got;
    if (i8t_run(&t, sqz_ref_op_int8(SQZ_OP_GLOBAL_AVGPOOL), &want) != 0) fail_msg("%s", t.err);
    t.post_prepare = gap_chsplit_hook;
    t.post_arg = a;
    if (i8t_run(&t, &sqz_i8_fast_gap, &got) != 0) fail_msg("gap: %s", t.err);
    char what[96];
    snprintf(what, sizeof what, "gap M%lld %lldx%lld thr%d (element = channel)", (long long)M,
             (long long)H, (long long)W, nt);
    i8t_expect_same_bytes(want, got, (size_t)M, what);
    free(x);
}

typedef struct isa_dw {
    const char *name;
    int (*ok)(void);
    const sqz_op_impl *conv, *dw;
} isa_dw;

static const isa_dw k_pairs[] = {
#if defined(__aarch64__)
    {"neon-sdot", sqz_cpu_has_neon_dot, &sqz_i8_conv_dot, &sqz_i8_dwconv_neon},
    {"neon-smlal", sqz_cpu_has_neon, &sqz_i8_conv_neon, &sqz_i8_dwconv_neon},
#else
    {"avx512-vnni", sqz_cpu_has_avx512_vnni, &sqz_i8_conv_vnni, &sqz_i8_dwconv_vnni},
    {"avx512", sqz_cpu_has_avx512, &sqz_i8_conv_vnni, &sqz_i8_dwconv_avx512},
    {"avx2", sqz_cpu_has_avx2_fma, &sqz_i8_conv_avx2, &sqz_i8_dwconv_avx2},
#endif
};

/* a 1x1 conv and its depthwise conv split into the same channel parts
 * (2 and 3 threads): both byte-identical to the reference; M not a
 * multiple of the block (a partial last block), one tile (14x14, 7x7) and
 * several (28x28, 61x67), stride 2 depthwise; a GlobalAveragePool at the
 * same cuts; refusals */
static void test_channel_pairs(void **state) {
    (void)state;
    static const int64_t cases[][5] = {
        /* C, H, W, M, depthwise stride */
        {24, 14, 14, 96, 1}, {48, 7, 7, 192, 1}, {16, 28, 28, 32, 2},
        {32, 7, 7, 19, 1},   {9, 61, 67, 40, 2}, {96, 14, 14, 61, 2},
    };
    for (size_t s = 0; s < sizeof k_pairs / sizeof k_pairs[0]; s++) {
        if (!k_pairs[s].ok()) {
            printf("  (skipped %s: this CPU lacks it)\n", k_pairs[s].name);
            continue;
        }
        tu_rng g;
        tu_rng_seed(&g, 900 + s);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (int nt = 2; nt <= 3; nt++) {
                const int64_t *c = cases[i];
                pair_arg a = {k_pairs[s].conv, nt, 1, 0, 0};
                check_hooked(c[0], c[1], c[2], c[3], 1, 1, 1, k_pairs[s].conv, nt,
                             conv_chsplit_hook, &a, &g, k_pairs[s].name);
                assert_true(a.mr >= 1 && a.nblk == (c[3] + a.mr - 1) / a.mr);
                pair_arg d = {k_pairs[s].dw, nt, 1, a.mr, a.nblk};
                check_hooked(c[3], c[1], c[2], c[3], 3, c[4], c[3], k_pairs[s].dw, nt,
                             dw_chsplit_hook, &d, &g, k_pairs[s].name);
                pair_arg gp = {&sqz_i8_fast_gap, nt, 1, a.mr, a.nblk};
                check_gap(c[3], c[1], c[2], nt, &gp, &g);
                /* cuts for another channel count: declined, even parts */
                pair_arg bad = {k_pairs[s].dw, nt, 0, a.mr, a.nblk + 1};
                check_hooked(c[3], c[1], c[2], c[3], 3, c[4], c[3], k_pairs[s].dw, nt,
                             dw_chsplit_hook, &bad, &g, k_pairs[s].name);
            }
        /* not a pointwise conv, too few blocks, the wrong kind of node */
        pair_arg a = {k_pairs[s].conv, 2, 0, 0, 0};
        check_hooked(8, 9, 9, 16, 3, 1, 1, k_pairs[s].conv, 2, conv_chsplit_hook, &a, &g,
                     k_pairs[s].name);
        a.nt = 3;
        check_hooked(8, 9, 9, 5, 1, 1, 1, k_pairs[s].conv, 3, conv_chsplit_hook, &a, &g,
                     k_pairs[s].name);
        pair_arg gb = {&sqz_i8_fast_gap, 2, 0, 8, 3};
        check_gap(16, 5, 5, 2, &gb, &g);
        pair_arg d = {k_pairs[s].conv, 2, 0, 8, 2};
        check_hooked(16, 9, 9, 16, 3, 1, 16, k_pairs[s].dw, 2, dw_chsplit_hook, &d, &g,
                     k_pairs[s].name);
    }
}

/* ---- one-row Gemm split by columns (int8.h sqz_i8_gemv_split) */

typedef struct gv_arg {
    const sqz_op_impl *impl;
    int want;
} gv_arg;

static void gemv_hook(sqz_op_ctx *c, void *arg) {
    const gv_arg *a = arg;
    assert_int_equal(sqz_i8_gemv_split(a->impl, c), a->want);
}

/* Gemm [rows, K] x [N, K]^T (transB) + bias, relu, through impl at nt
 * threads (sqz_i8_gemv_split must say want) and the reference: same bytes */
static void check_gemv(int64_t rows, int64_t K, int64_t N, int nt, const sqz_op_impl *impl,
                       int want, tu_rng *r, const char *isa) {
    rnd_layer l;
    rnd_layer_make(&l, (size_t)(rows * K), (size_t)(N * K), N, r);
    i8t t;
    i8t_init(&t, SQZ_OP_GEMM);
    t.threads = nt;
    i8t_act(&t, 0, i8t_shape(2, rows, K), l.x, 0.03f, (int32_t)(tu_rng_u32(r) % 256) - 128);
    i8t_weight(&t, 1, i8t_shape(2, N, K), l.w, l.sw, l.zw, (uint32_t)N, 0);
    i8t_bias(&t, 2, i8t_shape(2, (int64_t)1, N), l.b);
    i8t_int(&t, "transB", 1);
    i8t_out(&t, SQZ_DT_I8, 0.2f, (int32_t)(tu_rng_u32(r) % 256) - 128);
    i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
    void *want_y, *got;
    if (i8t_run(&t, sqz_ref_op_int8(SQZ_OP_GEMM), &want_y) != 0) fail_msg("ref: %s", t.err);
    gv_arg a = {impl, want};
    t.post_prepare = gemv_hook;
    t.post_arg = &a;
    if (i8t_run(&t, impl, &got) != 0) fail_msg("%s: prepare: %s", isa, t.err);
    char what[160];
    snprintf(what, sizeof what, "%s gemm rows %lld K %lld N %lld thr %d", isa, (long long)rows,
             (long long)K, (long long)N, nt);
    i8t_expect_same_bytes(want_y, got, (size_t)(rows * N), what);
    rnd_layer_free(&l);
}

/* one row at 2 and 3 threads, each part its column blocks and its own copy
 * of the row: LeNet-300's 784 -> 300, odd K and N (a partial last block,
 * parts of 1 block), K of 1; not split: 1 thread, 2 rows, one block, below
 * the weight minimum (default 128 KB; SQZ_I8_GEMV_SPLIT=0: never) */
static void test_gemv_splits(void **state) {
    (void)state;
    static const int64_t kn[][2] = {{784, 300}, {300, 100}, {97, 70}, {65, 33},
                                    {3, 17},    {1, 40},    {129, 31}};
    for (size_t s = 0; s < sizeof k_isas / sizeof k_isas[0]; s++) {
        if (!k_isas[s].ok()) {
            printf("  (skipped %s: this CPU lacks it)\n", k_isas[s].name);
            continue;
        }
        const sqz_op_impl *im = k_isas[s].gemm;
        const char *nm = k_isas[s].name;
        tu_rng g;
        tu_rng_seed(&g, 1100 + s);
        setenv("SQZ_I8_GEMV_SPLIT", "1", 1); /* every one-row Gemm of 2+ blocks */
        for (size_t i = 0; i < sizeof kn / sizeof kn[0]; i++)
            for (int thr = 2; thr <= 3; thr++)
                check_gemv(1, kn[i][0], kn[i][1], thr, im, 1, &g, nm);
        check_gemv(1, 97, 70, 1, im, 0, &g, nm);
        check_gemv(2, 97, 70, 2, im, 0, &g, nm);
        check_gemv(1, 97, 8, 2, im, 0, &g, nm);
        setenv("SQZ_I8_GEMV_SPLIT", "0", 1);
        check_gemv(1, 784, 300, 2, im, 0, &g, nm);
        unsetenv("SQZ_I8_GEMV_SPLIT");
        check_gemv(1, 784, 300, 2, im, 1, &g, nm);
        check_gemv(1, 400, 120, 2, im, 0, &g, nm); /* LeNet-5's fc1: 48 KB */
    }
}

int main(void) {
    /* every split whatever the size (int8_simd.h sqz_i8_split_threads) */
    setenv("SQZ_I8_SPLIT_NS", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_splits),
        cmocka_unit_test(test_channel_pairs),
        cmocka_unit_test(test_gemv_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else
int main(void) {
    printf("test_rt_int8_split: skipped (no int8 SIMD kernels on this architecture)\n");
    return 0;
}
#endif
