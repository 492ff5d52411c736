/* test_rt_conv_chain.c - conv chains (session.c chain_find / chain_take,
 * gemm_ops.c sqz_gemm_conv_chain): 3x3 convs c0 -> c1 (-> c2) (+ Add of
 * c0's output, Relu) run at the last conv's step, each thread computing its
 * rows of every conv's output in its own buffers. Odd channel counts and
 * planes, a stride-2 first conv, 2 and 3 threads: each chained session must
 * equal the unchained one (SQZ_FUSE_CHAIN=0) bit for bit and the reference
 * kernels within 1e-5, with the earlier convs reported as not run; graphs
 * whose intermediates are read elsewhere chain only what they may. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpu.h"
#include "sqz/sqz.h"
#include "sqzbuild.h"
#include "testutil.h"
#include "test_session.h"

typedef struct ccase {
    const char *name;
    int C, M, H, W, s0; /* c0: C -> M, stride s0; c1, c2: M -> M */
    int nconv;          /* 2 or 3 */
    int res;            /* Relu(c_last + c0's output) */
    int xout;           /* this conv's output is a graph output too (-1: none) */
    int act0;           /* c0 with a fused Relu */
    int down;           /* nconv 2, residual: a 1x1 stride-s0 conv d of x (ResNet's
                           projection, run inside c0 where px tiles fuse it) */
    int s1;             /* c1's stride (2: c1, c2 on a smaller plane, no Add) */
    unsigned want;      /* conv nodes chained into a later one (bit i: node i) */
} ccase;

enum { T_X, T_W0, T_B0, T_Y0, T_W1, T_B1, T_Y1, T_W2, T_B2, T_Y2, T_Z, T_Q, NT };

static uint8_t *build(const ccase *c, float *const *w, float *const *b, size_t *size, int *OH,
                      int *OW) {
    const int oh0 = (c->H + 2 - 3) / c->s0 + 1, ow0 = (c->W + 2 - 3) / c->s0 + 1;
    const int oh = (oh0 - 1) / c->s1 + 1, ow = (ow0 - 1) / c->s1 + 1;
    *OH = oh;
    *OW = ow;
    sb_tensor t[NT];
    memset(t, 0, sizeof t);
    static const char *names[NT] = {"x",  "w0", "b0", "y0", "w1", "b1",
                                    "y1", "w2", "b2", "y2", "z",  "q"};
    t[T_X] = (sb_tensor){.name = "x",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_INPUT,
                         .ndim = 4,
                         .dims = {1, c->C, c->H, c->W}};
    for (int i = 0; i < 3; i++) {
        const int dn = c->down && i == 2, ci = i && !dn ? c->M : c->C, wt = T_W0 + 3 * i;
        t[wt] = (sb_tensor){.name = names[wt],
                            .dtype = SQZ_DT_F32,
                            .flags = SQZ_TF_CONST,
                            .ndim = 4,
                            .dims = {c->M, ci, dn ? 1 : 3, dn ? 1 : 3},
                            .data = w[i],
                            .data_bytes = (size_t)c->M * ci * (dn ? 1 : 9) * 4};
        t[wt + 1] = (sb_tensor){.name = names[wt + 1],
                                .dtype = SQZ_DT_F32,
                                .flags = SQZ_TF_CONST,
                                .ndim = 1,
                                .dims = {c->M},
                                .data = b[i],
                                .data_bytes = (size_t)c->M * 4};
        t[wt + 2] = (sb_tensor){
            .name = names[wt + 2], .dtype = SQZ_DT_F32, .ndim = 4, .dims = {1, c->M, oh, ow}};
        if (i == 0 || (dn && c->s1 == 1)) t[wt + 2].dims[2] = oh0, t[wt + 2].dims[3] = ow0;
    }
    t[T_Z] = t[T_Y2];
    t[T_Z].name = "z";
    t[T_Q] = t[T_Y2];
    t[T_Q].name = "q";
    static int64_t k3[2] = {3, 3}, s1[2] = {1, 1}, s2[2], sc1[2], p1[4] = {1, 1, 1, 1}, relu = 1;
    s2[0] = s2[1] = c->s0;
    sc1[0] = sc1[1] = c->s1;
    static int64_t k1[2] = {1, 1}, p0[4];
    static sb_attr a0[4], a1[3], ad[3], ac1[3];
    a1[0] = (sb_attr){.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k3};
    a1[1] = (sb_attr){.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = s1};
    a1[2] = (sb_attr){.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = p1};
    a0[0] = a1[0];
    a0[1] = (sb_attr){.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = s2};
    a0[2] = a1[2];
    a0[3] = (sb_attr){.name = "sqz_act", .type = SQZ_ATTR_INT, .count = 1, .ints = &relu};
    ac1[0] = a1[0];
    ac1[1] = (sb_attr){.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = sc1};
    ac1[2] = a1[2];
    ad[0] = (sb_attr){.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k1};
    ad[1] = a0[1];
    ad[2] = (sb_attr){.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = p0};
    static int32_t ins[3][3], outs[3][1];
    static const int32_t ia[2] = {T_Y2, T_Y0}, oa[1] = {T_Z}, ir[1] = {T_Z}, orl[1] = {T_Q};
    static int32_t ia1[2], gout[2];
    sb_node n[5];
    int nn = 0;
    for (int i = 0; i < c->nconv; i++) {
        ins[i][0] = i ? T_Y0 + 3 * (i - 1) : T_X;
        ins[i][1] = T_W0 + 3 * i;
        ins[i][2] = T_B0 + 3 * i;
        outs[i][0] = T_Y0 + 3 * i;
        n[nn++] = (sb_node){SQZ_OP_CONV,
                            names[T_Y0 + 3 * i],
                            3,
                            1,
                            i == 0 ? (c->act0 ? 4u : 3u) : 3u,
                            ins[i],
                            outs[i],
                            i == 0   ? a0
                            : i == 1 ? ac1
                                     : a1};
    }
    static const int32_t idn[3] = {T_X, T_W2, T_B2}, odn[1] = {T_Y2};
    if (c->down) n[nn++] = (sb_node){SQZ_OP_CONV, "d", 3, 1, 3, idn, odn, ad};
    const int last = T_Y0 + 3 * (c->nconv - 1);
    int q = last;
    if (c->res) {
        ia1[0] = last;
        ia1[1] = c->down ? T_Y2 : T_Y0;
        (void)ia;
        n[nn++] = (sb_node){SQZ_OP_ADD, "add", 2, 1, 0, ia1, oa, NULL};
        n[nn++] = (sb_node){SQZ_OP_RELU, "relu", 1, 1, 0, ir, orl, NULL};
        q = T_Q;
    }
    int ng = 0;
    gout[ng++] = q;
    if (c->xout >= 0) gout[ng++] = T_Y0 + 3 * c->xout;
    for (int g = 0; g < ng; g++) t[gout[g]].flags |= SQZ_TF_OUTPUT;
    return sb_build(t, NT, n, nn, (int32_t[]){T_X}, 1, gout, ng, size);
}

typedef struct result {
    ts_outputs o;
    unsigned skipped; /* bit i: conv node i not run */
} result;

static result run(const uint8_t *file, size_t size, int nconv, int threads, int ref, int chain,
                  const float *x, size_t nx) {
    result res;
    memset(&res, 0, sizeof res);
    if (chain)
        unsetenv("SQZ_FUSE_CHAIN");
    else
        setenv("SQZ_FUSE_CHAIN", "0", 1);
    sqz_model *m = NULL;
    sqz_session *s = ts_open(file, size, threads, ref, &m);
    sqz_status st;
    for (int i = 0; i < nconv; i++) {
        sqz_node_info info;
        sqz_session_node_info(s, i, &info);
        if (info.skipped) res.skipped |= 1u << i;
    }
    /* three runs, other inputs first: no row of an earlier run may be read */
    for (int rep = 0; rep < 3; rep++) {
        float *xx = malloc(nx * sizeof(float));
        assert_non_null(xx);
        for (size_t i = 0; i < nx; i++) xx[i] = rep == 2 ? x[i] : rep ? 0.5f * x[i] : -x[i];
        assert_int_equal(sqz_session_set_input(s, 0, xx, nx, &st), SQZ_OK);
        free(xx);
        if (sqz_session_run(s, &st) != SQZ_OK) fail_msg("run: %s", st.msg);
    }
    ts_take_outputs(&res.o, s, m);
    unsetenv("SQZ_FUSE_CHAIN");
    return res;
}

static void result_free(result *r) {
    ts_outputs_free(&r->o);
}

static int n_chained;
/* Winograd in the chains (wino_small.h, AVX-512): chained outputs within
 * its rounding of the reference, and not the unchained direct convs' bits */
static int wino_mode, n_wino;

static void check(const ccase *c, int px) {
    tu_rng rng;
    tu_rng_seed(&rng, 900u + (uint64_t)c->C * 13u + (uint64_t)c->H);
    float *w[3], *b[3];
    for (int i = 0; i < 3; i++) {
        const size_t nw =
            c->down && i == 2 ? (size_t)c->M * c->C : (size_t)c->M * (i ? c->M : c->C) * 9;
        w[i] = malloc(nw * 4);
        b[i] = malloc((size_t)c->M * 4);
        assert_true(w[i] && b[i]);
        const float r = 1.2f / sqrtf((float)nw / (float)c->M);
        tu_fill_uniform(&rng, w[i], nw, -r, r);
        tu_fill_uniform(&rng, b[i], (size_t)c->M, -0.3f, 0.3f);
    }
    const size_t nx = (size_t)c->C * c->H * c->W;
    float *x = malloc(nx * 4);
    assert_non_null(x);
    tu_fill_uniform(&rng, x, nx, -1.5f, 1.5f);
    size_t size;
    int OH, OW;
    uint8_t *file = build(c, w, b, &size, &OH, &OW);
    result ref = run(file, size, c->nconv, 1, 1, 0, x, nx);
    for (int threads = 1; threads <= 3; threads++) {
        result f = run(file, size, c->nconv, threads, 0, 1, x, nx);
        result u = run(file, size, c->nconv, threads, 0, 0, x, nx);
        assert_int_equal(f.o.n_out, c->xout >= 0 ? 2 : 1);
        assert_int_equal(u.o.n_out, f.o.n_out);
        assert_int_equal(ref.o.n_out, f.o.n_out);
        assert_int_equal(f.o.n[0], (size_t)c->M * OH * OW);
        int pos = 0, diff = 0;
        for (int k = 0; k < f.o.n_out; k++) {
            float big = 0.0f;
            for (size_t i = 0; i < f.o.n[k] && wino_mode; i++)
                big = fabsf(ref.o.out[k][i]) > big ? fabsf(ref.o.out[k][i]) : big;
            for (size_t i = 0; i < f.o.n[k]; i++) {
                float a = f.o.out[k][i], e = ref.o.out[k][i];
                pos += a > 0.0f;
                if (wino_mode) {
                    /* F(4,3) rounding scales with the terms, up to 3 convs deep */
                    diff += memcmp(&a, &u.o.out[k][i], sizeof a) != 0;
                    if (!(fabsf(a - e) <= 3e-5f * (1.0f + big)))
                        fail_msg("%s [%d thr]: output %d [%zu] = %.9g, reference %.9g", c->name,
                                 threads, k, i, a, e);
                    continue;
                }
                if (memcmp(&a, &u.o.out[k][i], sizeof a))
                    fail_msg("%s [%d thr]: output %d [%zu] chained %.9g, unchained %.9g", c->name,
                             threads, k, i, a, u.o.out[k][i]);
                if (!(fabsf(a - e) <= 1e-5f * (1.0f + fabsf(e))))
                    fail_msg("%s [%d thr]: output %d [%zu] = %.9g, reference %.9g", c->name,
                             threads, k, i, a, e);
            }
        }
        assert_true(pos > 0);
        assert_int_equal(u.skipped, 0);
        const unsigned want = px && threads > 1 ? c->want : 0;
        if (f.skipped != want)
            fail_msg("%s [%d thr]: chained nodes 0x%x, want 0x%x", c->name, threads, f.skipped,
                     want);
        n_chained += f.skipped != 0;
        if (wino_mode && f.skipped) {
            if (!diff) fail_msg("%s [%d thr]: chained without Winograd", c->name, threads);
            n_wino++;
        }
        result_free(&f);
        result_free(&u);
    }
    result_free(&ref);
    free(file);
    for (int i = 0; i < 3; i++) {
        free(w[i]);
        free(b[i]);
    }
    free(x);
}

/* name, C, M, H, W, s0, nconv, res, xout, act0, down, s1, want */
static const ccase CASES[] = {
    /* the small ResNet's stride-2 blocks, c0 running the projection */
    {"resnet 16->32 @28 s2 + down", 16, 32, 28, 28, 2, 2, 1, -1, 1, 1, 1, 0x1},
    {"odd 6->24 @27x17 s2 + down", 6, 24, 27, 17, 2, 2, 1, -1, 0, 1, 1, 0x1},
    {"down, c0 out 3->16 @30x22", 3, 16, 30, 22, 2, 2, 1, 0, 1, 1, 1, 0x0},
    /* the small ResNet's first block */
    {"resnet 1->16 @28", 1, 16, 28, 28, 1, 3, 1, -1, 1, 0, 1, 0x3},
    {"odd 3->20 @31x23", 3, 20, 31, 23, 1, 3, 1, -1, 0, 0, 1, 0x3},
    {"odd 5->17 @54x21 s2", 5, 17, 54, 21, 2, 3, 1, -1, 1, 0, 1, 0x3},
    {"two convs 7->24 @13x9, no Add", 7, 24, 13, 9, 1, 2, 0, -1, 0, 0, 1, 0x1},
    /* a stride-2 conv after the first (the small ResNet's 28x28 block into
     * its 14x14 one) */
    {"c1 stride 2, 4->16 @54x10", 4, 16, 54, 10, 1, 3, 0, -1, 1, 0, 2, 0x3},
    /* c0's output a graph output: c1 -> c2 only (c0's output the residual) */
    {"c0 out 2->16 @25x14", 2, 16, 25, 14, 1, 3, 1, 0, 1, 0, 1, 0x2},
    /* c1's output a graph output: no chain through it, c0 -> c1 cannot
     * give c2 its residual */
    {"c1 out 4->18 @17x16", 4, 18, 17, 16, 1, 3, 1, 1, 0, 0, 1, 0x0},
    /* too few rows a thread / intermediates past 64 KB: not chained */
    {"7 rows", 3, 16, 7, 30, 1, 3, 1, -1, 1, 0, 1, 0x0},
    {"big 2->32 @28", 2, 32, 28, 28, 1, 3, 1, -1, 1, 0, 1, 0x0},
};

static void test_conv_chain(void **state) {
    (void)state;
    setenv("SQZ_CONV_PX", "1", 1);       /* px tiles where the kernel has them */
    setenv("SQZ_CHAIN_EXTRA", "1.2", 1); /* middle threads of 3 recompute 2 halos */
    setenv("SQZ_WINOGRAD", "0", 1);      /* GEMM convs */
    n_chained = 0;
    int px = 0;
#if defined(__x86_64__)
    px = sqz_cpu_has_avx512();
#endif
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check(&CASES[i], px);
#if defined(__x86_64__)
    if (sqz_cpu_isa_hw() >= SQZ_ISA_AVX2) { /* no px tiles: never chained */
        sqz_cpu_set_isa_cap(SQZ_ISA_AVX2);
        for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check(&CASES[i], 0);
        sqz_cpu_set_isa_cap(-1);
    }
#endif
    unsetenv("SQZ_CONV_PX");
    unsetenv("SQZ_WINOGRAD");
    unsetenv("SQZ_CHAIN_EXTRA");
    printf("conv chains: %d chained sessions\n", n_chained);
    if (px) assert_true(n_chained > 0);
}

/* chains whose 3x3 stride-1 convs have 16..64 channels (multiples of 16):
 * those run their bands on the Winograd kernel */
static const ccase WINO_CASES[] = {
    {"wino 1->16 @28", 1, 16, 28, 28, 1, 3, 1, -1, 1, 0, 1, 0x3},
    {"wino 16->16 @28, no Add", 16, 16, 28, 28, 1, 2, 0, -1, 1, 0, 1, 0x1},
    {"wino 16->32 @28 s2 + down", 16, 32, 28, 28, 2, 2, 1, -1, 1, 1, 1, 0x1},
    {"wino 3->32 @27x17", 3, 32, 27, 17, 1, 3, 1, -1, 0, 0, 1, 0x3},
    {"wino 5->48 @55x21 s2", 5, 48, 55, 21, 2, 3, 1, -1, 1, 0, 1, 0x3},
    {"wino 8->64 @14x13", 8, 64, 14, 13, 1, 2, 0, -1, 0, 0, 1, 0x1},
};

static void test_conv_chain_wino(void **state) {
    (void)state;
    int px = 0;
#if defined(__x86_64__)
    px = sqz_cpu_has_avx512();
#endif
    setenv("SQZ_CONV_PX", "1", 1);
    setenv("SQZ_CHAIN_EXTRA", "1.2", 1);
    unsetenv("SQZ_WINOGRAD");
    wino_mode = 1;
    n_wino = 0;
    for (size_t i = 0; i < sizeof WINO_CASES / sizeof WINO_CASES[0]; i++) check(&WINO_CASES[i], px);
    wino_mode = 0;
    unsetenv("SQZ_CONV_PX");
    unsetenv("SQZ_CHAIN_EXTRA");
    printf("conv chains on Winograd: %d sessions\n", n_wino);
    if (px) assert_true(n_wino > 0);
}

int main(void) {
    /* The cases' expected chains are for the default (spinning) split
     * threshold; OMP_WAIT_POLICY=passive (tests/run.sh sets it) raises it
     * 16x and the smallest cases would not split at all. */
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("SQZ_PAR_MIN_MACS");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_chain),
        cmocka_unit_test(test_conv_chain_wino),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
