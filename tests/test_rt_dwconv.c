/* test_rt_dwconv.c - the depthwise conv kernels (every row-kernel family this
 * CPU runs, and the scalar twin) against the reference Conv on random shapes,
 * pads, strides and activations; and the cases they must decline. */
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
#include "dwconv.h"
#include "test_node.h"
#include "testutil.h"

/* ---------------------------------------------------------------- harness */

typedef struct conv_case {
    int64_t N, C, H, W, M, wc; /* M output channels, wc = W dim 1 */
    int k, s, dil, group;
    int64_t pads[4]; /* top, left, bottom, right */
    const char *auto_pad;
    int act;
    float alpha, beta;
    int bias;
    int threads;
    int decline; /* a case the families must decline */
} conv_case;

static void build_node(tnode *t, const conv_case *c) {
    tn_init(t, SQZ_OP_CONV, "dw", c->bias ? 3 : 2);
    tn_int(t, "group", c->group);
    int64_t st[2] = {c->s, c->s}, dl[2] = {c->dil, c->dil}, ks[2] = {c->k, c->k};
    tn_ints(t, "strides", 2, st);
    tn_ints(t, "dilations", 2, dl);
    tn_ints(t, "kernel_shape", 2, ks);
    if (c->auto_pad)
        tn_str(t, "auto_pad", c->auto_pad);
    else
        tn_ints(t, "pads", 4, c->pads);
    if (c->act) {
        tn_int(t, "sqz_act", c->act);
        tn_float(t, "sqz_act_alpha", c->alpha);
        tn_float(t, "sqz_act_beta", c->beta);
    }
}

typedef struct run_res {
    int rc;
    sqz_shape shape;
    float *y;
} run_res;

static void run_impl(const sqz_op_impl *impl, const conv_case *c, const float *x, const float *w,
                     const float *b, run_res *r) {
    tnode t;
    build_node(&t, c);
    sqz_shape in[3];
    memset(in, 0, sizeof(in));
    in[0].ndim = 4;
    in[0].dims[0] = c->N;
    in[0].dims[1] = c->C;
    in[0].dims[2] = c->H;
    in[0].dims[3] = c->W;
    in[1].ndim = 4;
    in[1].dims[0] = c->M;
    in[1].dims[1] = c->wc;
    in[1].dims[2] = c->k;
    in[1].dims[3] = c->k;
    in[2].ndim = 1;
    in[2].dims[0] = c->M;
    const float *data[3] = {x, w, b};
    const float *pdata[3] = {NULL, w, b}; /* prepare: constants only */
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
    ctx.num_threads = c->threads;
    r->rc = impl->prepare(&ctx);
    if (r->rc != 0) {
        if (r->rc == 1 && ctx.params && impl->release) impl->release(ctx.params);
        return;
    }
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
    impl->run(&ctx);
    if (impl->release) impl->release(ctx.params);
    free(scratch);
}

static const struct {
    int isa;
    const sqz_op_impl *impl;
} families[] = {
    {SQZ_DW_AUTO, &sqz_dwconv},      {SQZ_DW_SCALAR, &sqz_dwconv_scalar},
    {SQZ_DW_AVX2, &sqz_dwconv_avx2}, {SQZ_DW_AVX512, &sqz_dwconv_avx512},
    {SQZ_DW_NEON, &sqz_dwconv_neon},
};
#define N_FAM ((int)(sizeof families / sizeof families[0]))

static long n_checked[N_FAM];

/* Runs the reference and every available family on c; all must agree (or,
 * when the reference refuses, every family must decline). */
static void check_case(tu_rng *rng, const conv_case *c) {
    size_t nx = (size_t)(c->N * c->C * c->H * c->W), nw = (size_t)(c->M * c->wc * c->k * c->k);
    float *x = malloc(nx * sizeof(float)), *w = malloc(nw * sizeof(float));
    float *b = malloc((size_t)c->M * sizeof(float));
    assert_true(x && w && b);
    tu_fill_uniform(rng, x, nx, -1.0f, 1.0f);
    tu_fill_uniform(rng, w, nw, -1.0f, 1.0f);
    tu_fill_uniform(rng, b, (size_t)c->M, -1.0f, 1.0f);
    run_res ref;
    run_impl(sqz_ref_op(SQZ_OP_CONV), c, x, w, c->bias ? b : NULL, &ref);
    for (int f = 0; f < N_FAM; f++) {
        if (!sqz_dw_isa_available(families[f].isa)) continue;
        run_res got;
        run_impl(families[f].impl, c, x, w, c->bias ? b : NULL, &got);
        if (ref.rc != 0 || c->decline) {
            if (got.rc != 1)
                fail_msg("%s accepted a conv it must decline (H=%lld W=%lld k=%d)",
                         sqz_dw_isa_name(families[f].isa), (long long)c->H, (long long)c->W, c->k);
            continue;
        }
        if (got.rc != 0)
            fail_msg("%s declined a depthwise conv: C=%lld H=%lld W=%lld k=%d s=%d pads %lld %lld "
                     "%lld %lld",
                     sqz_dw_isa_name(families[f].isa), (long long)c->C, (long long)c->H,
                     (long long)c->W, c->k, c->s, (long long)c->pads[0], (long long)c->pads[1],
                     (long long)c->pads[2], (long long)c->pads[3]);
        assert_int_equal(got.shape.ndim, ref.shape.ndim);
        for (int d = 0; d < 4; d++) assert_int_equal(got.shape.dims[d], ref.shape.dims[d]);
        size_t n = (size_t)sqz_shape_numel(&ref.shape);
        for (size_t i = 0; i < n; i++) {
            double want = ref.y[i], d = fabs((double)got.y[i] - want);
            if (!(d <= 1e-5 * (1.0 + fabs(want))))
                fail_msg("%s: element %zu of %zu: got %.8g want %.8g (N=%lld C=%lld H=%lld "
                         "W=%lld k=%d s=%d pads %lld %lld %lld %lld auto_pad %s act %d thr %d)",
                         sqz_dw_isa_name(families[f].isa), i, n, got.y[i], ref.y[i],
                         (long long)c->N, (long long)c->C, (long long)c->H, (long long)c->W, c->k,
                         c->s, (long long)c->pads[0], (long long)c->pads[1], (long long)c->pads[2],
                         (long long)c->pads[3], c->auto_pad ? c->auto_pad : "-", c->act,
                         c->threads);
        }
        n_checked[f]++;
        free(got.y);
    }
    free(ref.y);
    free(x);
    free(w);
    free(b);
}

static conv_case dw_case(int64_t C, int64_t H, int64_t W, int k, int s) {
    conv_case c;
    memset(&c, 0, sizeof(c));
    c.N = 1;
    c.C = c.M = C;
    c.group = (int)C;
    c.wc = 1;
    c.H = H;
    c.W = W;
    c.k = k;
    c.s = s;
    c.dil = 1;
    c.bias = 1;
    c.threads = 1;
    for (int i = 0; i < 4; i++) c.pads[i] = k / 2;
    return c;
}

static void set_act(conv_case *c, int act) {
    c->act = act;
    c->alpha = 0.0f;
    c->beta = 0.0f;
    switch (act) {
    case SQZ_ACT_CLIP:
        c->alpha = -0.25f;
        c->beta = 0.5f;
        break;
    case SQZ_ACT_LEAKY_RELU:
        c->alpha = 0.1f;
        break;
    case SQZ_ACT_HARD_SIGMOID:
        c->alpha = 0.2f;
        c->beta = 0.5f;
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------ tests */

/* (33 / 64 / 65: around the band kernel's out_w range (32, 64]; 97 / 113:
 * the stride-1 direct kernel's chunks of 32 columns and a 1- or 2-vector
 * remainder) */
static const int64_t sizes[] = {1, 2, 3, 5, 7, 8, 14, 15, 17, 31, 33, 56, 64, 65, 97, 113};
static const int64_t chans[] = {1, 3, 8, 17, 32};
#define N_SIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* every H x W, kernel and stride; random C, pads (symmetric, zero,
 * asymmetric, auto_pad) and activation */
static void test_shapes(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 12345);
    for (int hi = 0; hi < N_SIZES; hi++)
        for (int wi = 0; wi < N_SIZES; wi++)
            for (int k = 3; k <= 5; k += 2)
                for (int s = 1; s <= 2; s++) {
                    conv_case c = dw_case(chans[tu_rng_u32(&rng) % 5], sizes[hi], sizes[wi], k, s);
                    switch (tu_rng_u32(&rng) % 5) {
                    case 0: /* symmetric k/2 (set) */
                        break;
                    case 1:
                        memset(c.pads, 0, sizeof(c.pads));
                        break;
                    case 2:
                    case 3:
                        for (int i = 0; i < 4; i++) c.pads[i] = tu_rng_u32(&rng) % (uint32_t)k;
                        break;
                    default:
                        c.auto_pad = tu_rng_u32(&rng) & 1 ? "SAME_UPPER" : "SAME_LOWER";
                        break;
                    }
                    set_act(&c, (int)(tu_rng_u32(&rng) % 8));
                    c.bias = (tu_rng_u32(&rng) % 4) != 0;
                    check_case(&rng, &c);
                }
}

/* stride 2 with the stride-2 kernel off (SQZ_DW_S2=0: the whole-plane and
 * row kernels it replaced, kept for A/B in bench_dwconv) */
static void test_s2_off(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 4321);
    assert_int_equal(setenv("SQZ_DW_S2", "0", 1), 0);
    for (int hi = 0; hi < N_SIZES; hi += 2)
        for (int wi = 0; wi < N_SIZES; wi++)
            for (int k = 3; k <= 5; k += 2) {
                conv_case c = dw_case(chans[tu_rng_u32(&rng) % 5], sizes[hi], sizes[wi], k, 2);
                if (tu_rng_u32(&rng) & 1)
                    for (int i = 0; i < 4; i++) c.pads[i] = tu_rng_u32(&rng) % (uint32_t)k;
                set_act(&c, (int)(tu_rng_u32(&rng) % 8));
                check_case(&rng, &c);
            }
    assert_int_equal(unsetenv("SQZ_DW_S2"), 0);
}

/* 3x3 stride 2 on rows of more than 32 outputs (the stride-2 kernel's
 * wide-row path: column chunks of 4 vectors and a 1- to 4-vector remainder,
 * the last vector's third tap from the next 16 columns or past the row),
 * random heights (one output row, odd counts), pads and activations; then
 * the same with the path off (SQZ_DW_S2W=0: the row kernel) */
static void test_s2_wide(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 2468);
    static const int64_t widths[] = {66, 67, 96, 97, 128, 129, 130, 131, 161, 194, 223, 260};
    for (int off = 0; off < 2; off++) {
        if (off) assert_int_equal(setenv("SQZ_DW_S2W", "0", 1), 0);
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            const int64_t H = 1 + tu_rng_u32(&rng) % 12;
            conv_case c = dw_case(chans[tu_rng_u32(&rng) % 5], H, widths[wi], 3, 2);
            for (int i = 0; i < 4; i++) c.pads[i] = tu_rng_u32(&rng) % 3;
            set_act(&c, (int)(tu_rng_u32(&rng) % 8));
            c.bias = (tu_rng_u32(&rng) % 4) != 0;
            check_case(&rng, &c);
        }
    }
    assert_int_equal(unsetenv("SQZ_DW_S2W"), 0);
}

/* every activation and channel count on a few shapes, pads incl. large ones */
static void test_acts_and_channels(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 777);
    const int64_t hw[][2] = {{7, 7},  {14, 15}, {17, 31}, {56, 56},
                             {1, 17}, {33, 70}, {6, 40},  {3, 47}};
    for (int a = 0; a < 8; a++)
        for (int ci = 0; ci < 5; ci++)
            for (int h = 0; h < (int)(sizeof hw / sizeof hw[0]); h++)
                for (int ks = 0; ks < 4; ks++) {
                    int k = ks < 2 ? 3 : 5, s = 1 + (ks & 1);
                    conv_case c = dw_case(chans[ci], hw[h][0], hw[h][1], k, s);
                    set_act(&c, a);
                    if ((a + ci + h) % 3 == 0) {
                        c.pads[0] = 0;
                        c.pads[1] = k - 1;
                        c.pads[2] = k;
                        c.pads[3] = 1;
                    }
                    check_case(&rng, &c);
                }
}

/* batch > 1 and the threaded path */
static void test_batch_threads(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 4242);
    for (int ks = 0; ks < 4; ks++) {
        /* (batches large enough to pass the kernel's 2^19-MAC split
         * threshold in every case: 16 x 17 x 16 x 15 x 9 = 587k for k3 s2) */
        conv_case c = dw_case(17, 31, 29, ks < 2 ? 3 : 5, 1 + (ks & 1));
        c.N = 16;
        c.threads = 2;
        set_act(&c, SQZ_ACT_CLIP);
        c.alpha = 0.0f;
        c.beta = 6.0f;
        check_case(&rng, &c);
        c.threads = 1;
        c.N = 2;
        set_act(&c, SQZ_ACT_HARD_SWISH);
        check_case(&rng, &c);
        /* small planes (the channel-block kernel: blocks of 16 channels,
         * 37 = 2 x 16 + 5, blocks of images split over the parts) */
        conv_case d = dw_case(37, 13, 9 + (ks & 1), ks < 2 ? 3 : 5, 1 + (ks & 1));
        d.N = 48; /* 48 x 37 x 7 x 5 x 9 = 559k MACs for k3 s2 */
        d.threads = 2;
        set_act(&d, ks == 1 ? SQZ_ACT_SIGMOID : SQZ_ACT_RELU);
        check_case(&rng, &d);
        d.threads = 3;
        d.pads[0] = 0;
        d.pads[3] = d.k - 1;
        check_case(&rng, &d);
        /* wide stride-1 rows (> 64 outputs: the padded-row ring, one per
         * part): 4 x 17 x 20 x 70 x 9 = 857k MACs */
        conv_case e = dw_case(17, 20, 70, ks < 2 ? 3 : 5, 1);
        e.N = 4;
        e.threads = 2 + (ks & 1);
        e.pads[1] = ks; /* asymmetric left pads 0..3 */
        set_act(&e, ks == 2 ? SQZ_ACT_TANH : SQZ_ACT_RELU);
        check_case(&rng, &e);
    }
}

/* 2-3 threads splitting layers by output rows (SQZ_DW_SPLIT=rows: every
 * plane's rows in bands of 4 per part, common/dwconv.c): each kernel path
 * (band, whole-plane, stride-2, padded rows, row kernels) with asymmetric pads, heights
 * that are not a multiple of the band and batches; then shorter planes split
 * by rows and by planes (the default). Every case is above the 2^19-MAC
 * split threshold. */
static void test_row_split(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 2468);
    static const struct {
        int64_t C, H, W;
        int k, s;
    } sh[] = {
        {24, 56, 56, 3, 1}, /* band kernel */
        {16, 57, 50, 5, 1}, /* band kernel, 57 rows */
        {80, 28, 28, 3, 1}, /* whole-plane kernel */
        {96, 56, 56, 3, 2}, /* stride-2 kernel */
        {48, 59, 30, 5, 2}, /* stride-2 kernel, 30 rows */
        {32, 30, 70, 3, 1}, /* padded rows (> 64 wide) */
        {64, 60, 80, 3, 2}, /* row kernels, stride 2 */
        {32, 120, 72, 3, 2} /* row kernels, 60 rows */
    };
    assert_int_equal(setenv("SQZ_DW_SPLIT", "rows", 1), 0);
    for (int i = 0; i < (int)(sizeof sh / sizeof sh[0]); i++)
        for (int v = 0; v < 2; v++) {
            conv_case c = dw_case(sh[i].C, sh[i].H, sh[i].W, sh[i].k, sh[i].s);
            c.threads = 2 + v;
            if (v) { /* 3 threads, asymmetric pads, batch 2 */
                c.pads[0] = sh[i].k - 1;
                c.pads[1] = 0;
                c.pads[2] = 0;
                c.pads[3] = 1;
                c.N = 2;
            }
            set_act(&c, v ? SQZ_ACT_SIGMOID : SQZ_ACT_CLIP);
            check_case(&rng, &c);
        }
    unsetenv("SQZ_DW_SPLIT");
    static const struct {
        int64_t C, H, W;
        int k, s;
    } small[] = {{320, 14, 14, 3, 1}, {120, 14, 14, 5, 1}, {320, 28, 28, 3, 2}, {48, 20, 90, 3, 1}};
    for (int f = 0; f < 2; f++) {
        assert_int_equal(setenv("SQZ_DW_SPLIT", f ? "planes" : "rows", 1), 0);
        for (int i = 0; i < (int)(sizeof small / sizeof small[0]); i++) {
            conv_case c = dw_case(small[i].C, small[i].H, small[i].W, small[i].k, small[i].s);
            c.threads = 2 + i % 2;
            c.pads[2] = 0;
            set_act(&c, SQZ_ACT_HARD_SWISH);
            check_case(&rng, &c);
        }
        unsetenv("SQZ_DW_SPLIT");
    }
}

/* convs outside the covered case are declined (and still checked against the
 * reference through the general path by the e2e tests) */
static void test_declines(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 99);
    conv_case cs[8];
    int n = 0;
    cs[n] = dw_case(8, 10, 10, 3, 1);
    cs[n++].dil = 2;
    cs[n] = dw_case(8, 10, 10, 3, 3);
    cs[n++].s = 3;
    cs[n] = dw_case(8, 10, 10, 3, 1); /* channel multiplier 2 */
    cs[n].M = 16;
    n++;
    cs[n] = dw_case(8, 10, 10, 3, 1); /* ordinary grouped conv */
    cs[n].group = 4;
    cs[n++].wc = 2;
    cs[n] = dw_case(8, 10, 10, 3, 1); /* dense conv */
    cs[n].group = 1;
    cs[n++].wc = 8;
    cs[n++] = dw_case(8, 10, 10, 1, 1);
    cs[n++] = dw_case(8, 10, 10, 7, 1);
    for (int i = 0; i < n; i++) {
        cs[i].decline = 1;
        for (int f = 0; f < N_FAM; f++) {
            run_res r;
            size_t nx = (size_t)(cs[i].N * cs[i].C * cs[i].H * cs[i].W);
            size_t nw = (size_t)(cs[i].M * cs[i].wc * cs[i].k * cs[i].k);
            float *x = calloc(nx, sizeof(float)), *w = calloc(nw, sizeof(float));
            float *b = calloc((size_t)cs[i].M, sizeof(float));
            assert_true(x && w && b);
            run_impl(families[f].impl, &cs[i], x, w, b, &r);
            assert_int_equal(r.rc, 1);
            free(x);
            free(w);
            free(b);
        }
        check_case(&rng, &cs[i]); /* reference runs; families decline */
    }
}

static void test_report(void **state) {
    (void)state;
    for (int f = 0; f < N_FAM; f++) {
        if (sqz_dw_isa_available(families[f].isa))
            printf("dwconv %-7s covered: %ld cases vs reference\n",
                   sqz_dw_isa_name(families[f].isa), n_checked[f]);
        else
            printf("dwconv %-7s SKIPPED: not available on this CPU/build\n",
                   sqz_dw_isa_name(families[f].isa));
    }
}

/* 3x3 stride 1 on 7x7 planes with pads 1 (the AVX-512 7x7 kernel: two rows
 * a vector, every tap a lane shift): channel counts, batches, every
 * activation, with and without bias, 1 and 2 threads (48 x 37 x 49 x 9 =
 * 783k MACs: split into parts); the shapes next to it that must not take it
 * (asymmetric pads, 7x8 / 8x7 / 6x7 planes, 5x5); then the same with the
 * kernel off (SQZ_DW_P7=0: the channel-block kernel); the channel-pair kernel
 * off throughout (SQZ_DW_C2=0) */
static void test_p7(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 7777);
    static const int64_t cs[] = {1, 3, 16, 17, 37};
    /* the channel-pair kernel (test_c2) off: it covers these planes first */
    assert_int_equal(setenv("SQZ_DW_C2", "0", 1), 0);
    for (int off = 0; off < 2; off++) {
        if (off) assert_int_equal(setenv("SQZ_DW_P7", "0", 1), 0);
        for (int a = 0; a < 8; a++)
            for (int ci = 0; ci < 5; ci++) {
                conv_case c = dw_case(cs[ci], 7, 7, 3, 1);
                c.N = 1 + (a + ci) % 3;
                c.bias = (a + ci) % 4 != 0;
                set_act(&c, a);
                check_case(&rng, &c);
            }
        conv_case t = dw_case(37, 7, 7, 3, 1);
        t.N = 48;
        t.threads = 2;
        set_act(&t, SQZ_ACT_CLIP);
        check_case(&rng, &t);
        static const int64_t hw[][2] = {{7, 8}, {8, 7}, {6, 7}, {7, 6}};
        for (int i = 0; i < 4; i++) {
            conv_case n = dw_case(17, hw[i][0], hw[i][1], 3, 1);
            set_act(&n, SQZ_ACT_RELU);
            check_case(&rng, &n);
        }
        conv_case q = dw_case(17, 7, 7, 3, 1);
        q.pads[2] = 0; /* bottom / right pads 0: 6x6 out */
        q.pads[3] = 0;
        check_case(&rng, &q);
        q.pads[0] = 0; /* top / left 0, bottom / right 2 */
        q.pads[1] = 0;
        q.pads[2] = 2;
        q.pads[3] = 2;
        check_case(&rng, &q);
        conv_case f = dw_case(17, 7, 7, 5, 1);
        check_case(&rng, &f);
    }
    assert_int_equal(unsetenv("SQZ_DW_P7"), 0);
    assert_int_equal(unsetenv("SQZ_DW_C2"), 0);
}

/* planes of out_w / out_h <= 8 (the AVX-512 channel-pair kernel: two
 * channels a vector, taps as lane shifts): k 3 / 5, stride 1 / 2, odd and
 * even channel counts (a last lone channel), planes from 1x1 to the widest
 * covered (8 columns, 16 at stride 2), every activation, with and without
 * bias, batches, top pads 0 .. k - 1 with the bottom / right pads that give
 * 1..8 outputs, 1 and 2 threads; the shapes next to it that must not take it
 * (9 columns / rows out, left pad not (k - 1) / 2); then all of it with the
 * kernel off (SQZ_DW_C2=0: the channel-block / 7x7 kernels) */
static void test_c2(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 4242);
    static const int64_t cs[] = {1, 2, 3, 16, 17, 37};
    static const int64_t hw[][2] = {{7, 7}, {8, 8}, {1, 1}, {5, 3}, {3, 8}, {8, 2}, {6, 7}};
    for (int off = 0; off < 2; off++) {
        if (off) assert_int_equal(setenv("SQZ_DW_C2", "0", 1), 0);
        int i = 0;
        for (int k = 3; k <= 5; k += 2)
            for (int s = 1; s <= 2; s++)
                for (int h = 0; h < 7; h++, i++) {
                    conv_case c = dw_case(cs[i % 6], hw[h][0] * s + (s == 2 && h % 2),
                                          hw[h][1] * s - (s == 2 && h == 1), k, s);
                    c.N = 1 + i % 3;
                    c.bias = i % 4 != 0;
                    c.pads[0] = i % k; /* top pad 0 .. k - 1, the rest as dw_case */
                    c.pads[2] = (i / 2) % k;
                    c.pads[3] = (i / 3) % k;
                    c.threads = 1 + i % 2;
                    set_act(&c, i % 8);
                    check_case(&rng, &c);
                }
        conv_case t = dw_case(37, 14, 14, 5, 2);
        t.N = 40; /* split into parts */
        t.threads = 2;
        set_act(&t, SQZ_ACT_RELU);
        check_case(&rng, &t);
        static const int64_t no[][4] = {{7, 9, 3, 1}, {9, 7, 3, 1}, {17, 16, 5, 2}, {16, 17, 3, 2}};
        for (int n = 0; n < 4; n++) {
            conv_case c = dw_case(17, no[n][0], no[n][1], (int)no[n][2], (int)no[n][3]);
            set_act(&c, SQZ_ACT_CLIP);
            check_case(&rng, &c);
        }
        conv_case l = dw_case(17, 7, 7, 5, 1);
        l.pads[1] = 1; /* left pad 1, right 3 */
        l.pads[3] = 3;
        check_case(&rng, &l);
    }
    assert_int_equal(unsetenv("SQZ_DW_C2"), 0);
}

/* planes of out_w <= 16 past the channel-pair kernel's (the one-channel
 * variant: lane j = column j, taps as lane shifts; 3x3 and 5x5 stride 2,
 * 5x5 stride 1 stays on the direct kernel): widths to 16 (32 at stride 2),
 * heights past one and two groups of 8 output rows, every activation, pads,
 * batches, 1 / 2 threads, split by planes and by rows (SQZ_DW_SPLIT=rows: a
 * part computes a band of rows); then all of it with SQZ_DW_C1=0 (the
 * direct kernels) */
static void test_c1(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 5151);
    static const int64_t cs[] = {1, 3, 16, 17, 40};
    static const int64_t hw[][2] = {{14, 14}, {16, 16}, {9, 11}, {20, 13}, {17, 9}, {25, 16}};
    for (int off = 0; off < 2; off++) {
        if (off) assert_int_equal(setenv("SQZ_DW_C1", "0", 1), 0);
        int i = 0;
        for (int k = 3; k <= 5; k += 2)
            for (int s = 1; s <= 2; s++)
                for (int h = 0; h < 6; h++, i++) {
                    conv_case c = dw_case(cs[i % 5], hw[h][0] * s - (s == 2 && h % 2),
                                          hw[h][1] * s - (s == 2 && h == 2), k, s);
                    c.N = 1 + i % 2;
                    c.bias = i % 4 != 1;
                    c.pads[0] = i % k; /* top pad 0 .. k - 1 */
                    c.pads[2] = (i / 2) % k;
                    c.pads[3] = (i / 3) % k;
                    c.threads = 1 + i % 2;
                    set_act(&c, i % 8);
                    if (i % 3 == 2) assert_int_equal(setenv("SQZ_DW_SPLIT", "rows", 1), 0);
                    check_case(&rng, &c);
                    unsetenv("SQZ_DW_SPLIT");
                }
    }
    assert_int_equal(unsetenv("SQZ_DW_C1"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_s2_off),
        cmocka_unit_test(test_s2_wide),
        cmocka_unit_test(test_acts_and_channels),
        cmocka_unit_test(test_batch_threads),
        cmocka_unit_test(test_row_split),
        cmocka_unit_test(test_declines),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_p7),
        cmocka_unit_test(test_c2),
        cmocka_unit_test(test_c1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
