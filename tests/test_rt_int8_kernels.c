/* test_rt_int8_kernels.c - the scalar int8 reference kernels against an
 * independent computation of the contract (sqz/format.h "INT8": int32
 * accumulation, fixed-point requantization re-derived here in int64) on random
 * shapes, and hand-computed known answers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpu.h"
#include "fastops.h"
#include "int8.h"
#include "int8_harness.h"
#include "int8_simd.h"
#include "testutil.h"

static int8_t *rand_i8(tu_rng *r, size_t n, int lo, int hi) {
    int8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (int8_t)(lo + (int)(tu_rng_u32(r) % (unsigned)(hi - lo + 1)));
    return p;
}

/* ------------------------------------------------------------ requant */

static void test_requant_known(void **state) {
    (void)state;
    sqz_rq r;
    assert_int_equal(sqz_rq_make(0.5, &r), 0);
    assert_true(r.s == 0.5f);
    assert_int_equal(sqz_rq_make(0.1, &r), 0);
    assert_true(r.s == 0.1f);                               /* (float)m, rounded once */
    assert_int_equal(sqz_rq_make(ldexp(1.0, -140), &r), 0); /* subnormal: still > 0 */
    assert_int_equal(sqz_rq_make(0.0, &r), -1);
    assert_int_equal(sqz_rq_make(-1.0, &r), -1);
    assert_int_equal(sqz_rq_make(NAN, &r), -1);
    assert_int_equal(sqz_rq_make(INFINITY, &r), -1);
    assert_int_equal(sqz_rq_make(ldexp(1.0, 30), &r), -1);
    /* round half to even (as ONNX): 1.5 -> 2, -1.5 -> -2, 2.5 -> 2, -2.5 -> -2 */
    sqz_rq_make(0.5, &r);
    assert_int_equal(sqz_rq_apply(3, r, 0, -128, 127), 2);
    assert_int_equal(sqz_rq_apply(-3, r, 0, -128, 127), -2);
    assert_int_equal(sqz_rq_apply(5, r, 0, -128, 127), 2);
    assert_int_equal(sqz_rq_apply(-5, r, 0, -128, 127), -2);
    assert_int_equal(sqz_rq_apply(7, r, 0, -128, 127), 4);
    assert_int_equal(sqz_rq_apply(5, r, 10, -128, 127), 12);
    assert_int_equal(sqz_rq_apply(1000, r, 0, -128, 127), 127); /* saturates */
    assert_int_equal(sqz_rq_apply(-1000, r, 0, -5, 7), -5);
    assert_int_equal(sqz_rq_apply(-1000, r, 127, -128, 127), -128); /* lo - zp = -255 */
    assert_int_equal(sqz_rq_apply(1000, r, -128, -128, 127), 127);  /* hi - zp = 255 */
    assert_int_equal(sqz_rq_apply(INT32_MAX, r, 0, -128, 127), 127);
    assert_int_equal(sqz_rq_apply(INT32_MIN, r, 0, -128, 127), -128);
    /* beyond 2^24 (float)acc rounds, deterministically: acc = 2^24 + 2^18 + 1
     * becomes 2^24 + 2^18 (tie, even), times 2^-19 = 32.5 -> 32, where the
     * exact 32.5 + 2^-19 would give 33 */
    sqz_rq_make(ldexp(1.0, -19), &r);
    assert_int_equal(sqz_rq_apply((1 << 24) + (1 << 18) + 1, r, 0, -128, 127), 32);
    /* a tiny multiplier: everything rounds to zp */
    sqz_rq_make(ldexp(1.0, -140), &r);
    assert_int_equal(sqz_rq_apply(INT32_MAX, r, 3, -128, 127), 3);
    /* against the text (rintf) and the real product on random values:
     * |y - (acc * m + zp)| <= 0.5 + the float rounding when not clamped */
    tu_rng g;
    tu_rng_seed(&g, 3);
    for (int i = 0; i < 20000; i++) {
        double m = ldexp(0.5 + 0.5 * tu_rng_uniform(&g, 0.0f, 0.999f), -(int)(tu_rng_u32(&g) % 20));
        int32_t acc = (int32_t)(tu_rng_u32(&g) % 2000001) - 1000000;
        if (i % 4 == 0) acc = (int32_t)(tu_rng_u32(&g) % 601) - 300;
        int32_t zp = (int32_t)(tu_rng_u32(&g) % 256) - 128;
        int32_t lo = i % 3 ? -128 : zp, hi = 127;
        assert_int_equal(sqz_rq_make(m, &r), 0);
        int32_t got = sqz_rq_apply(acc, r, zp, lo, hi);
        assert_int_equal(got, i8t_requant(acc, m, zp, lo, hi));
        double real = acc * m + zp;
        if (real > lo && real < hi)
            assert_true(fabs(got - real) <= 0.5 + 1e-6 * fabs(acc * m) + 1e-9);
    }
}

/* ------------------------------------------------------ Q / DQ known */

static void test_quantize_dequantize_known(void **state) {
    (void)state;
    float x[] = {0.25f, 0.75f, 1.25f, -0.25f, -0.75f, 100.0f, -100.0f, NAN, INFINITY, 3.0f};
    int8_t want0[] = {0, 2, 2, 0, -2, 127, -128, 0, 127, 6};
    int8_t want10[] = {10, 12, 12, 10, 8, 127, -128, 10, 127, 16};
    for (int z = 0; z < 2; z++) {
        i8t t;
        i8t_init(&t, SQZ_OP_QUANTIZE_LINEAR);
        i8t_f32(&t, 0, i8t_shape(1, (int64_t)10), x);
        i8t_out(&t, SQZ_DT_I8, 0.5f, z ? 10 : 0);
        void *o;
        assert_int_equal(i8t_run(&t, sqz_ref_op(SQZ_OP_QUANTIZE_LINEAR), &o), 0);
        assert_memory_equal(o, z ? want10 : want0, 10);
        free(o);
    }
    int8_t q[] = {-128, -3, 0, 127};
    i8t t;
    i8t_init(&t, SQZ_OP_DEQUANTIZE_LINEAR);
    i8t_act(&t, 0, i8t_shape(2, (int64_t)2, (int64_t)2), q, 0.5f, -3);
    i8t_out(&t, SQZ_DT_F32, 0, 0);
    void *o;
    assert_int_equal(i8t_run(&t, sqz_ref_op(SQZ_OP_DEQUANTIZE_LINEAR), &o), 0);
    const float *y = o;
    assert_true(y[0] == -62.5f && y[1] == 0.0f && y[2] == 1.5f && y[3] == 65.0f);
    free(o);
    /* Quantize onto an f32 output is refused */
    i8t_init(&t, SQZ_OP_QUANTIZE_LINEAR);
    i8t_f32(&t, 0, i8t_shape(1, (int64_t)10), x);
    i8t_out(&t, SQZ_DT_F32, 0, 0);
    assert_int_equal(i8t_run(&t, sqz_ref_op(SQZ_OP_QUANTIZE_LINEAR), &o), -1);
    assert_non_null(strstr(t.err, "i8"));
}

/* ------------------------------------------------------------ Conv */

typedef struct conv_case {
    int64_t N, C, H, W, M, group, kh, kw, sh, sw, ph, pw, dh, dw;
    int act; /* 0 none, 1 relu, 2 clip */
    int bias;
} conv_case;

/* Runs conv through impl and compares with the independent computation. */
void int8_check_conv(const conv_case *cc, const sqz_op_impl *impl, tu_rng *g, int threads);
void int8_check_conv(const conv_case *cc, const sqz_op_impl *impl, tu_rng *g, int threads) {
    int64_t cpg = cc->C / cc->group, mpg = cc->M / cc->group;
    int64_t OH = (cc->H + 2 * cc->ph - cc->dh * (cc->kh - 1) - 1) / cc->sh + 1;
    int64_t OW = (cc->W + 2 * cc->pw - cc->dw * (cc->kw - 1) - 1) / cc->sw + 1;
    size_t nx = (size_t)(cc->N * cc->C * cc->H * cc->W),
           nw = (size_t)(cc->M * cpg * cc->kh * cc->kw);
    int8_t *x = rand_i8(g, nx, -128, 127), *w = rand_i8(g, nw, -127, 127);
    float *sw = malloc((size_t)cc->M * sizeof(float));
    int32_t *zw = calloc((size_t)cc->M, sizeof(int32_t)), *b = malloc((size_t)cc->M * 4);
    assert_true(sw && zw && b);
    for (int64_t c = 0; c < cc->M; c++) {
        sw[c] = tu_rng_uniform(g, 0.002f, 0.02f);
        b[c] = (int32_t)(tu_rng_u32(g) % 20001) - 10000;
    }
    float sx = tu_rng_uniform(g, 0.01f, 0.05f), sy = tu_rng_uniform(g, 0.05f, 0.3f);
    int32_t zx = (int32_t)(tu_rng_u32(g) % 200) - 100, zy = (int32_t)(tu_rng_u32(g) % 200) - 100;
    i8t t;
    i8t_init(&t, SQZ_OP_CONV);
    t.threads = threads;
    i8t_act(&t, 0, i8t_shape(4, cc->N, cc->C, cc->H, cc->W), x, sx, zx);
    i8t_weight(&t, 1, i8t_shape(4, cc->M, cpg, cc->kh, cc->kw), w, sw, zw, (uint32_t)cc->M, 0);
    if (cc->bias) i8t_bias(&t, 2, i8t_shape(1, cc->M), b);
    i8t_out(&t, SQZ_DT_I8, sy, zy);
    int64_t ks[2] = {cc->kh, cc->kw}, st[2] = {cc->sh, cc->sw}, dl[2] = {cc->dh, cc->dw};
    int64_t pads[4] = {cc->ph, cc->pw, cc->ph, cc->pw};
    i8t_ints(&t, "kernel_shape", 2, ks);
    i8t_ints(&t, "strides", 2, st);
    i8t_ints(&t, "dilations", 2, dl);
    i8t_ints(&t, "pads", 4, pads);
    i8t_int(&t, "group", cc->group);
    int32_t lo = -128, hi = 127;
    if (cc->act == 1) {
        i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
        lo = zy;
    } else if (cc->act == 2) {
        i8t_int(&t, "sqz_act", SQZ_ACT_CLIP);
        i8t_float(&t, "sqz_act_alpha", 0.0f);
        i8t_float(&t, "sqz_act_beta", 6.0f);
        lo = zy;
        double h = zy + nearbyint(6.0 / sy);
        hi = h > 127 ? 127 : (int32_t)h;
    }
    void *o;
    if (i8t_run(&t, impl, &o) != 0) fail_msg("prepare failed: %s", t.err);
    assert_int_equal(t.out_shape[0].dims[2], OH);
    assert_int_equal(t.out_shape[0].dims[3], OW);
    const int8_t *y = o;
    for (int64_t n = 0; n < cc->N; n++)
        for (int64_t co = 0; co < cc->M; co++) {
            int64_t gi = co / mpg;
            double m = (double)sx * sw[co] / sy;
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    int64_t acc = cc->bias ? b[co] : 0;
                    for (int64_t ci = 0; ci < cpg; ci++)
                        for (int64_t kh = 0; kh < cc->kh; kh++)
                            for (int64_t kw = 0; kw < cc->kw; kw++) {
                                int64_t ih = oh * cc->sh - cc->ph + kh * cc->dh;
                                int64_t iw = ow * cc->sw - cc->pw + kw * cc->dw;
                                if (ih < 0 || ih >= cc->H || iw < 0 || iw >= cc->W) continue;
                                int64_t xv =
                                    x[((n * cc->C + gi * cpg + ci) * cc->H + ih) * cc->W + iw];
                                acc += (xv - zx) * w[((co * cpg + ci) * cc->kh + kh) * cc->kw + kw];
                            }
                    int32_t want = i8t_requant(acc, m, zy, lo, hi);
                    int8_t got = y[((n * cc->M + co) * OH + oh) * OW + ow];
                    if (got != want)
                        fail_msg(
                            "conv N%lld C%lld %lldx%lld M%lld g%lld k%lldx%lld: y[%lld,%lld,%lld,"
                            "%lld] = %d, want %d",
                            (long long)cc->N, (long long)cc->C, (long long)cc->H, (long long)cc->W,
                            (long long)cc->M, (long long)cc->group, (long long)cc->kh,
                            (long long)cc->kw, (long long)n, (long long)co, (long long)oh,
                            (long long)ow, got, want);
                }
        }
    free(o);
    free(x);
    free(w);
    free(sw);
    free(zw);
    free(b);
}

static const conv_case k_conv_cases[] = {
    {1, 3, 7, 9, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1},  /* 3x3 pad 1 */
    {2, 8, 5, 5, 6, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1},  /* 1x1, batch 2 */
    {1, 6, 9, 8, 6, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2, 1},  /* depthwise stride 2, clip */
    {1, 4, 6, 7, 8, 2, 3, 2, 1, 2, 1, 0, 2, 1, 1, 0},  /* groups, dilation, no bias */
    {1, 5, 11, 3, 3, 1, 5, 3, 3, 1, 2, 1, 1, 1, 0, 1}, /* 5x3 stride 3 */
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1},  /* 1x1x1x1 */
};

static void test_conv_vs_formula(void **state) {
    (void)state;
    tu_rng g;
    tu_rng_seed(&g, 21);
    for (size_t i = 0; i < sizeof k_conv_cases / sizeof k_conv_cases[0]; i++)
        int8_check_conv(&k_conv_cases[i], sqz_ref_op_int8(SQZ_OP_CONV), &g, 1);
    /* random shapes */
    for (int i = 0; i < 20; i++) {
        conv_case c;
        memset(&c, 0, sizeof c);
        c.N = 1 + tu_rng_u32(&g) % 2;
        c.group = 1 + tu_rng_u32(&g) % 3;
        c.C = c.group * (1 + tu_rng_u32(&g) % 4);
        c.M = c.group * (1 + tu_rng_u32(&g) % 4);
        c.kh = 1 + tu_rng_u32(&g) % 3;
        c.kw = 1 + tu_rng_u32(&g) % 3;
        c.sh = 1 + tu_rng_u32(&g) % 2;
        c.sw = 1 + tu_rng_u32(&g) % 2;
        c.dh = 1 + tu_rng_u32(&g) % 2;
        c.dw = 1;
        c.ph = tu_rng_u32(&g) % 2;
        c.pw = tu_rng_u32(&g) % 2;
        c.H = c.dh * (c.kh - 1) + 1 + tu_rng_u32(&g) % 6;
        c.W = c.dw * (c.kw - 1) + 1 + tu_rng_u32(&g) % 6;
        c.act = (int)(tu_rng_u32(&g) % 3);
        c.bias = (int)(tu_rng_u32(&g) % 2);
        int8_check_conv(&c, sqz_ref_op_int8(SQZ_OP_CONV), &g, 1);
    }
}

/* ---------------------------------------------------- Gemm / MatMul */

void int8_check_linear(int op, int64_t rows, int64_t K, int64_t N, int ta, int tb, int bias,
                       int act, const sqz_op_impl *impl, tu_rng *g, int threads);
void int8_check_linear(int op, int64_t rows, int64_t K, int64_t N, int ta, int tb, int bias,
                       int act, const sqz_op_impl *impl, tu_rng *g, int threads) {
    int8_t *a = rand_i8(g, (size_t)(rows * K), -128, 127),
           *w = rand_i8(g, (size_t)(K * N), -127, 127);
    float *sw = malloc((size_t)N * sizeof(float));
    int32_t *zw = calloc((size_t)N, 4), *b = malloc((size_t)N * 4);
    assert_true(sw && zw && b);
    for (int64_t c = 0; c < N; c++) {
        sw[c] = tu_rng_uniform(g, 0.002f, 0.02f);
        b[c] = (int32_t)(tu_rng_u32(g) % 20001) - 10000;
    }
    float sx = tu_rng_uniform(g, 0.01f, 0.05f), sy = tu_rng_uniform(g, 0.05f, 0.5f);
    int32_t zx = (int32_t)(tu_rng_u32(g) % 256) - 128, zy = (int32_t)(tu_rng_u32(g) % 256) - 128;
    i8t t;
    i8t_init(&t, op);
    t.threads = threads;
    if (op == SQZ_OP_GEMM) {
        i8t_act(&t, 0, ta ? i8t_shape(2, K, rows) : i8t_shape(2, rows, K), a, sx, zx);
        i8t_weight(&t, 1, tb ? i8t_shape(2, N, K) : i8t_shape(2, K, N), w, sw, zw, (uint32_t)N,
                   tb ? 0 : 1);
        if (bias) i8t_bias(&t, 2, i8t_shape(1, N), b);
        i8t_int(&t, "transA", ta);
        i8t_int(&t, "transB", tb);
    } else {
        /* rows split as a [2, rows/2, K] batch when even */
        sqz_shape as =
            rows % 2 == 0 ? i8t_shape(3, (int64_t)2, rows / 2, K) : i8t_shape(2, rows, K);
        i8t_act(&t, 0, as, a, sx, zx);
        i8t_weight(&t, 1, i8t_shape(2, K, N), w, sw, zw, (uint32_t)N, 1);
        tb = 0;
        ta = 0;
        bias = 0;
    }
    i8t_out(&t, SQZ_DT_I8, sy, zy);
    int32_t lo = -128;
    if (act) {
        i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
        lo = zy;
    }
    void *o;
    if (i8t_run(&t, impl, &o) != 0) fail_msg("prepare failed: %s", t.err);
    const int8_t *y = o;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t n = 0; n < N; n++) {
            int64_t acc = bias ? b[n] : 0;
            for (int64_t k = 0; k < K; k++) {
                int64_t av = ta ? a[k * rows + r] : a[r * K + k];
                int64_t wv = tb ? w[n * K + k] : w[k * N + n];
                acc += (av - zx) * wv;
            }
            int32_t want = i8t_requant(acc, (double)sx * sw[n] / sy, zy, lo, 127);
            if (y[r * N + n] != want)
                fail_msg("%s rows %lld K %lld N %lld ta %d tb %d: y[%lld,%lld] = %d want %d",
                         sqz_op_name(op), (long long)rows, (long long)K, (long long)N, ta, tb,
                         (long long)r, (long long)n, y[r * N + n], want);
        }
    free(o);
    free(a);
    free(w);
    free(sw);
    free(zw);
    free(b);
}

static void test_linear_vs_formula(void **state) {
    (void)state;
    tu_rng g;
    tu_rng_seed(&g, 5);
    int64_t dims[][3] = {{1, 1, 1}, {1, 300, 100}, {3, 17, 5}, {4, 64, 10}, {2, 9, 33}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        for (int v = 0; v < 4; v++) {
            int64_t *d = dims[i];
            int8_check_linear(SQZ_OP_GEMM, d[0], d[1], d[2], v & 1, (v >> 1) & 1, v != 3, v == 1,
                              sqz_ref_op_int8(SQZ_OP_GEMM), &g, 1);
            int8_check_linear(SQZ_OP_MATMUL, d[0], d[1], d[2], 0, 0, 0, v == 2,
                              sqz_ref_op_int8(SQZ_OP_MATMUL), &g, 1);
        }
}

/* ---------------------------------------------------- element-wise etc. */

static void test_add_known_and_formula(void **state) {
    (void)state;
    /* same scales everywhere, zero points: y = a + b - zp sums exactly */
    int8_t a[] = {10, -20, 100, -128}, b[] = {5, 5, 100, -128};
    i8t t;
    i8t_init(&t, SQZ_OP_ADD);
    i8t_act(&t, 0, i8t_shape(1, (int64_t)4), a, 0.1f, 0);
    i8t_act(&t, 1, i8t_shape(1, (int64_t)4), b, 0.1f, 0);
    i8t_out(&t, SQZ_DT_I8, 0.1f, 0);
    void *o;
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_ADD), &o), 0);
    int8_t want[] = {15, -15, 127, -128};
    assert_memory_equal(o, want, 4);
    free(o);
    /* broadcast [2,3,4] + [3,1], random params: the exact definition
     * (one shift for both terms), and within 1 of the real sum */
    tu_rng g;
    tu_rng_seed(&g, 9);
    int8_t *A = rand_i8(&g, 24, -128, 127), *B = rand_i8(&g, 3, -128, 127);
    float sa = 0.03f, sb = 0.11f, sy = 0.07f;
    int32_t za = 5, zb = -17, zy = 3;
    i8t_init(&t, SQZ_OP_ADD);
    i8t_act(&t, 0, i8t_shape(3, (int64_t)2, (int64_t)3, (int64_t)4), A, sa, za);
    i8t_act(&t, 1, i8t_shape(2, (int64_t)3, (int64_t)1), B, sb, zb);
    i8t_out(&t, SQZ_DT_I8, sy, zy);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_ADD), &o), 0);
    assert_int_equal(t.out_shape[0].ndim, 3);
    const int8_t *y = o;
    double ma = (double)sa / sy, mb = (double)sb / sy; /* mb is the larger */
    int e;
    frexp(mb, &e);
    int S = 31 - e;
    long long Mb = llround(ldexp(frexp(mb, &e), 31)), Ma = llround(ldexp(ma, S));
    for (int i = 0; i < 24; i++) {
        int j = (i / 4) % 3;
        long long v =
            (((long long)(A[i] - za) * Ma + (long long)(B[j] - zb) * Mb + (1LL << (S - 1))) >> S) +
            zy;
        v = v < -128 ? -128 : v > 127 ? 127 : v;
        assert_int_equal(y[i], v);
        double real = zy + (A[i] - za) * ma + (B[j] - zb) * mb;
        if (real > -127 && real < 126) assert_true(fabs(y[i] - real) <= 1.0);
    }
    free(o);
    free(A);
    free(B);
}

static void test_pools(void **state) {
    (void)state;
    /* MaxPool 2x2 stride 2 on a 4x4 plane: known answer */
    int8_t x[16] = {1, 2, -3, 4, 5, -6, 7, 8, -9, 10, 11, -12, 13, 14, -15, -128};
    i8t t;
    i8t_init(&t, SQZ_OP_MAXPOOL);
    int64_t k2[2] = {2, 2};
    i8t_ints(&t, "kernel_shape", 2, k2);
    i8t_ints(&t, "strides", 2, k2);
    i8t_act(&t, 0, i8t_shape(4, (int64_t)1, (int64_t)1, (int64_t)4, (int64_t)4), x, 0.5f, 1);
    i8t_out(&t, SQZ_DT_I8, 0.5f, 1);
    void *o;
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_MAXPOOL), &o), 0);
    int8_t wmax[4] = {5, 8, 14, 11};
    assert_memory_equal(o, wmax, 4);
    free(o);
    /* MaxPool with different output params is refused */
    t.out_s = 0.25f;
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_MAXPOOL), &o), -1);
    assert_non_null(strstr(t.err, "equal"));

    /* AveragePool 3x3 stride 1 pad 1 (count_include_pad 0), random params */
    tu_rng g;
    tu_rng_seed(&g, 4);
    int8_t *X = rand_i8(&g, 2 * 5 * 6, -128, 127);
    float sx = 0.04f, sy = 0.03f;
    int32_t zx = -7, zy = 12;
    i8t_init(&t, SQZ_OP_AVGPOOL);
    int64_t k3[2] = {3, 3}, p1[4] = {1, 1, 1, 1};
    i8t_ints(&t, "kernel_shape", 2, k3);
    i8t_ints(&t, "pads", 4, p1);
    i8t_act(&t, 0, i8t_shape(4, (int64_t)1, (int64_t)2, (int64_t)5, (int64_t)6), X, sx, zx);
    i8t_out(&t, SQZ_DT_I8, sy, zy);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_AVGPOOL), &o), 0);
    const int8_t *y = o;
    for (int c = 0; c < 2; c++)
        for (int h = 0; h < 5; h++)
            for (int w = 0; w < 6; w++) {
                long long s = 0;
                int cnt = 0;
                for (int dh = -1; dh <= 1; dh++)
                    for (int dw = -1; dw <= 1; dw++) {
                        int ih = h + dh, iw = w + dw;
                        if (ih < 0 || ih >= 5 || iw < 0 || iw >= 6) continue;
                        s += X[(c * 5 + ih) * 6 + iw] - zx;
                        cnt++;
                    }
                int32_t want = i8t_requant(s, (double)sx / ((double)sy * cnt), zy, -128, 127);
                assert_int_equal(y[(c * 5 + h) * 6 + w], want);
                double real = zy + s * (double)sx / sy / cnt;
                if (real > -127 && real < 126)
                    assert_true(fabs(y[(c * 5 + h) * 6 + w] - real) <= 1.0);
            }
    free(o);

    /* GlobalAveragePool */
    i8t_init(&t, SQZ_OP_GLOBAL_AVGPOOL);
    i8t_act(&t, 0, i8t_shape(4, (int64_t)1, (int64_t)2, (int64_t)5, (int64_t)6), X, sx, zx);
    i8t_out(&t, SQZ_DT_I8, sy, zy);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_GLOBAL_AVGPOOL), &o), 0);
    y = o;
    for (int c = 0; c < 2; c++) {
        long long s = 0;
        for (int i = 0; i < 30; i++) s += X[c * 30 + i] - zx;
        assert_int_equal(y[c], i8t_requant(s, (double)sx / ((double)sy * 30), zy, -128, 127));
    }
    free(o);
    free(X);
}

static void test_concat_relu_clip_views(void **state) {
    (void)state;
    int8_t a[6] = {-128, -1, 0, 1, 50, 127}, b[3] = {10, 20, -30};
    /* Concat axis 1 of [1,2,3] and [1,1,3]: a copied (same params), b requantized */
    i8t t;
    i8t_init(&t, SQZ_OP_CONCAT);
    i8t_int(&t, "axis", 1);
    i8t_act(&t, 0, i8t_shape(3, (int64_t)1, (int64_t)2, (int64_t)3), a, 0.1f, 2);
    i8t_act(&t, 1, i8t_shape(3, (int64_t)1, (int64_t)1, (int64_t)3), b, 0.2f, 0);
    i8t_out(&t, SQZ_DT_I8, 0.1f, 2);
    void *o;
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_CONCAT), &o), 0);
    int8_t wc[9] = {-128, -1, 0, 1, 50, 127, 22, 42, -58}; /* b: 2 * q + 2 */
    assert_memory_equal(o, wc, 9);
    free(o);
    /* Relu, same params: max(q, zp) */
    i8t_init(&t, SQZ_OP_RELU);
    i8t_act(&t, 0, i8t_shape(1, (int64_t)6), a, 0.1f, 2);
    i8t_out(&t, SQZ_DT_I8, 0.1f, 2);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_RELU), &o), 0);
    int8_t wr[6] = {2, 2, 2, 2, 50, 127};
    assert_memory_equal(o, wr, 6);
    free(o);
    /* Clip [0, 6] with output scale 0.05, zp -128: requantize (x 2) then clamp */
    i8t_init(&t, SQZ_OP_CLIP);
    i8t_float(&t, "min", 0.0f);
    i8t_float(&t, "max", 6.0f);
    i8t_act(&t, 0, i8t_shape(1, (int64_t)6), a, 0.1f, 2);
    i8t_out(&t, SQZ_DT_I8, 0.05f, -128);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_CLIP), &o), 0);
    /* real = 0.1 (q - 2): -13, -0.3, -0.2, -0.1, 4.8, 12.5 -> clip -> /0.05 - 128 */
    int8_t wclip[6] = {-128, -128, -128, -128, -32, -8};
    assert_memory_equal(o, wclip, 6);
    free(o);
    /* Flatten keeps bytes and params; different params refused */
    i8t_init(&t, SQZ_OP_FLATTEN);
    i8t_act(&t, 0, i8t_shape(3, (int64_t)1, (int64_t)2, (int64_t)3), a, 0.1f, 2);
    i8t_out(&t, SQZ_DT_I8, 0.1f, 2);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_FLATTEN), &o), 0);
    assert_int_equal(t.out_shape[0].ndim, 2);
    assert_int_equal(t.out_shape[0].dims[1], 6);
    assert_memory_equal(o, a, 6);
    free(o);
    t.out_zp = 3;
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_FLATTEN), &o), -1);
}

/* ---------------------------------------- table-driven kernels vs reference */

/* Compares impl with the reference on t, byte for byte (bytes = out bytes). */
static void same_as_ref(i8t *t, const sqz_op_impl *ref, const sqz_op_impl *impl, size_t bytes) {
    void *a, *b;
    assert_int_equal(i8t_run(t, ref, &a), 0);
    assert_int_equal(i8t_run(t, impl, &b), 0);
    assert_memory_equal(a, b, bytes);
    free(a);
    free(b);
}

static void test_lut_kernels_exhaustive(void **state) {
    (void)state;
    /* every (a, b) pair through Add, three parameter sets incl. a fused relu */
    int8_t *A = malloc(65536), *B = malloc(65536);
    assert_true(A && B);
    for (int i = 0; i < 65536; i++) {
        A[i] = (int8_t)((i >> 8) - 128);
        B[i] = (int8_t)((i & 255) - 128);
    }
    const float sc[3][3] = {
        {0.1f, 0.1f, 0.1f}, {0.03f, 0.11f, 0.07f}, {1.0f / 32, 1.0f / 64, 1.0f / 16}};
    const int32_t zs[3][3] = {{0, 0, 0}, {5, -17, 3}, {-128, 127, -5}};
    for (int v = 0; v < 3; v++) {
        i8t t;
        i8t_init(&t, SQZ_OP_ADD);
        i8t_act(&t, 0, i8t_shape(2, (int64_t)256, (int64_t)256), A, sc[v][0], zs[v][0]);
        i8t_act(&t, 1, i8t_shape(2, (int64_t)256, (int64_t)256), B, sc[v][1], zs[v][1]);
        i8t_out(&t, SQZ_DT_I8, sc[v][2], zs[v][2]);
        if (v == 1) i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
        same_as_ref(&t, sqz_ref_op_int8(SQZ_OP_ADD), &sqz_i8_lut_add, 65536);
    }
    /* a broadcasting Add is declined (the reference runs it) */
    i8t t;
    i8t_init(&t, SQZ_OP_ADD);
    i8t_act(&t, 0, i8t_shape(2, (int64_t)256, (int64_t)256), A, 0.1f, 0);
    i8t_act(&t, 1, i8t_shape(1, (int64_t)256), B, 0.1f, 0);
    i8t_out(&t, SQZ_DT_I8, 0.1f, 0);
    void *o;
    assert_int_equal(i8t_run(&t, &sqz_i8_lut_add, &o), 1);
    /* every byte through Relu / Clip (same and different params) and Dequantize */
    for (int v = 0; v < 3; v++) {
        i8t_init(&t, v == 2 ? SQZ_OP_CLIP : SQZ_OP_RELU);
        i8t_act(&t, 0, i8t_shape(1, (int64_t)256), A + 255 * 256, 0.05f, -7); /* B[] row */
        t.in_data[0] = B;
        i8t_out(&t, SQZ_DT_I8, v == 0 ? 0.05f : 0.02f, v == 0 ? -7 : -128);
        if (v == 2) {
            i8t_float(&t, "min", 0.0f);
            i8t_float(&t, "max", 2.0f);
        }
        const sqz_op_impl *lut = v == 2 ? &sqz_i8_lut_clip : &sqz_i8_lut_relu;
        same_as_ref(&t, sqz_ref_op_int8(t.node.op), lut, 256);
    }
    /* Concat of three inputs along axis 1: one copied, two requantized */
    i8t_init(&t, SQZ_OP_CONCAT);
    i8t_int(&t, "axis", 1);
    i8t_act(&t, 0, i8t_shape(3, (int64_t)4, (int64_t)2, (int64_t)32), A, 0.1f, 2);
    i8t_act(&t, 1, i8t_shape(3, (int64_t)4, (int64_t)3, (int64_t)32), A + 300, 0.37f, -9);
    i8t_act(&t, 2, i8t_shape(3, (int64_t)4, (int64_t)1, (int64_t)32), B + 1000, 0.05f, 100);
    i8t_out(&t, SQZ_DT_I8, 0.1f, 2);
    same_as_ref(&t, sqz_ref_op_int8(SQZ_OP_CONCAT), &sqz_i8_lut_concat, 4 * 6 * 32);
    i8t_init(&t, SQZ_OP_DEQUANTIZE_LINEAR);
    i8t_act(&t, 0, i8t_shape(1, (int64_t)256), B, 0.37f, 11);
    i8t_out(&t, SQZ_DT_F32, 0, 0);
    same_as_ref(&t, sqz_ref_op(SQZ_OP_DEQUANTIZE_LINEAR), &sqz_i8_lut_dequantize, 256 * 4);
    free(A);
    free(B);
}

/* The fast MaxPool against the reference on random geometries. */
static void test_fast_maxpool(void **state) {
    (void)state;
    tu_rng g;
    tu_rng_seed(&g, 77);
    for (int it = 0; it < 240; it++) { /* strides 1-3, both pad parities (split rows) */
        int nd = 1 + (int)(tu_rng_u32(&g) % 2);
        int64_t k[2], s[2], d[2], pads[4], in[2];
        for (int i = 0; i < nd; i++) {
            k[i] = 1 + tu_rng_u32(&g) % 3;
            s[i] = 1 + tu_rng_u32(&g) % 3;
            d[i] = tu_rng_u32(&g) % 4 == 0 ? 2 : 1;
            pads[i] = tu_rng_u32(&g) % (uint32_t)k[i];
            pads[i + nd] = tu_rng_u32(&g) % (uint32_t)k[i];
            in[i] = (k[i] - 1) * d[i] + 1 + tu_rng_u32(&g) % 12;
        }
        int64_t C = 1 + tu_rng_u32(&g) % 5;
        int64_t in_sp = in[0] * (nd == 2 ? in[1] : 1);
        /* every 8th case above the kernel's one-thread size (32k input values):
         * the planes split over the threads */
        if (it % 8 == 0) C = 16384 / in_sp + 1;
        size_t n = (size_t)(2 * C * in_sp);
        int8_t *x = malloc(n);
        assert_non_null(x);
        for (size_t i = 0; i < n; i++) x[i] = (int8_t)(tu_rng_u32(&g) & 255);
        i8t t;
        i8t_init(&t, SQZ_OP_MAXPOOL);
        i8t_ints(&t, "kernel_shape", nd, k);
        i8t_ints(&t, "strides", nd, s);
        i8t_ints(&t, "dilations", nd, d);
        i8t_ints(&t, "pads", 2 * nd, pads);
        if (tu_rng_u32(&g) % 3 == 0) i8t_int(&t, "ceil_mode", 1);
        t.threads = it % 8 == 0 ? 2 + it % 3 : 1 + (int)(tu_rng_u32(&g) % 2);
        sqz_shape xs = nd == 2 ? i8t_shape(4, (int64_t)2, C, in[0], in[1])
                               : i8t_shape(3, (int64_t)2, C, in[0]);
        i8t_act(&t, 0, xs, x, 0.1f, 3);
        i8t_out(&t, SQZ_DT_I8, 0.1f, 3);
        void *a, *b;
        assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_MAXPOOL), &a), 0);
        size_t ny = (size_t)sqz_shape_numel(&t.out_shape[0]);
        assert_int_equal(i8t_run(&t, &sqz_i8_fast_maxpool, &b), 0);
        assert_memory_equal(a, b, ny);
        assert_int_equal(((unsigned char *)b)[ny], 0xA5); /* nothing past the output */
        free(a);
        free(b);
        free(x);
    }
}

/* ------------------- Sigmoid / HardSigmoid / HardSwish / Tanh, Mul, GAP */

/* The contract of the int8 activations, written again: q(f(dq(x))). */
static int8_t act_formula(int op, double sx, int32_t zx, double sy, int32_t zy, int8_t x) {
    double v = sx * (x - zx), f;
    if (op == SQZ_OP_SIGMOID)
        f = 1.0 / (1.0 + exp(-v));
    else if (op == SQZ_OP_HARD_SIGMOID)
        f = fmin(1.0, fmax(0.0, 0.2 * v + 0.5));
    else if (op == SQZ_OP_HARD_SWISH)
        f = v * fmin(1.0, fmax(0.0, v / 6.0 + 0.5));
    else
        f = tanh(v);
    double q = nearbyint(f / sy) + zy;
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
}

/* caps the ISA at c (x86: SQZ_ISA_AVX2 turns the AVX-512 / VBMI paths off) */
static void cap_isa(int c) {
#if defined(__x86_64__) || defined(_M_X64)
    sqz_cpu_set_isa_cap(c);
#else
    (void)c;
#endif
}
#if defined(__x86_64__) || defined(_M_X64)
#define N_CAPS 2
static const int k_caps[N_CAPS] = {-1, SQZ_ISA_AVX2};
#else
#define N_CAPS 1
static const int k_caps[N_CAPS] = {-1};
#endif

/* MaxPool paths with stride 2 along w (2x2 unpadded direct; the AVX-512 row
 * kernel with pads and ceil_mode) against the reference at both ISA caps:
 * odd and even sizes, rows past one vector chunk. */
static void test_fast_maxpool_k2s2(void **state) {
    (void)state;
    tu_rng g;
    tu_rng_seed(&g, 78);
    for (int it = 0; it < 80; it++) {
        /* it < 40: 2x2 stride 2 unpadded (the direct path); then stride 2 along w
         * with 3x3 / 5x3 / 2x7 windows, pads, ceil_mode, stride 1 or 2 along h */
        int64_t H = 2 + tu_rng_u32(&g) % 20, W = 2 + tu_rng_u32(&g) % (it % 4 == 0 ? 150 : 30);
        int64_t C = 1 + tu_rng_u32(&g) % 6, k[2] = {2, 2}, s2[2] = {2, 2}, pads[4] = {0, 0, 0, 0};
        int ceil_mode = 0;
        if (it >= 40) {
            static const int64_t ks[3][2] = {{3, 3}, {5, 3}, {2, 7}};
            k[0] = ks[it % 3][0];
            k[1] = ks[it % 3][1];
            s2[0] = 1 + (it % 2);
            for (int i = 0; i < 4; i++) pads[i] = tu_rng_u32(&g) % (uint32_t)k[i % 2];
            ceil_mode = (it / 2) % 2;
            if (H < k[0]) H = k[0];
            if (W < k[1]) W = k[1];
        }
        size_t n = (size_t)(C * H * W);
        int8_t *x = rand_i8(&g, n, -128, 127);
        i8t t;
        i8t_init(&t, SQZ_OP_MAXPOOL);
        i8t_ints(&t, "kernel_shape", 2, k);
        i8t_ints(&t, "strides", 2, s2);
        i8t_ints(&t, "pads", 4, pads);
        if (ceil_mode) i8t_int(&t, "ceil_mode", 1);
        i8t_act(&t, 0, i8t_shape(4, (int64_t)1, C, H, W), x, 0.1f, -3);
        i8t_out(&t, SQZ_DT_I8, 0.1f, -3);
        for (int c = 0; c < N_CAPS; c++) {
            cap_isa(k_caps[c]);
            void *a, *b;
            assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_MAXPOOL), &a), 0);
            size_t ny = (size_t)sqz_shape_numel(&t.out_shape[0]);
            if (it < 40) assert_int_equal(ny, (size_t)(C * (H / 2) * (W / 2)));
            assert_int_equal(i8t_run(&t, &sqz_i8_fast_maxpool, &b), 0);
            if (memcmp(a, b, ny) != 0)
                fail_msg("maxpool it %d k %lldx%lld H %lld W %lld cap %d differs", it,
                         (long long)k[0], (long long)k[1], (long long)H, (long long)W, k_caps[c]);
            assert_int_equal(((unsigned char *)b)[ny], 0xA5);
            free(a);
            free(b);
        }
        cap_isa(-1);
        free(x);
    }
}

static void test_act_tables(void **state) {
    (void)state;
    const int ops[4] = {SQZ_OP_SIGMOID, SQZ_OP_HARD_SIGMOID, SQZ_OP_HARD_SWISH, SQZ_OP_TANH};
    const sqz_op_impl *luts[4] = {&sqz_i8_lut_sigmoid, &sqz_i8_lut_hard_sigmoid,
                                  &sqz_i8_lut_hard_swish, &sqz_i8_lut_tanh};
    /* known: sigmoid(0) = 0.5 -> 0.5 * 256 - 128 = 0; sigmoid(+-big) -> 127 / -128 */
    int8_t k[3] = {0, 127, -128}, *o;
    i8t t;
    i8t_init(&t, SQZ_OP_SIGMOID);
    i8t_act(&t, 0, i8t_shape(1, (int64_t)3), k, 0.1f, 0);
    i8t_out(&t, SQZ_DT_I8, 1.0f / 256, -128);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_SIGMOID), (void **)&o), 0);
    assert_int_equal(o[0], 0);
    assert_int_equal(o[1], 127); /* 0.99999 * 256 = 256 -> clamped */
    assert_int_equal(o[2], -128);
    free(o);
    tu_rng g;
    tu_rng_seed(&g, 31);
    int8_t *x = malloc(300000);
    assert_non_null(x);
    for (int it = 0; it < 24; it++) {
        int op = ops[it % 4];
        float sx = tu_rng_uniform(&g, 0.005f, 0.3f), sy = tu_rng_uniform(&g, 0.002f, 0.2f);
        int32_t zx = (int32_t)(tu_rng_u32(&g) % 256) - 128,
                zy = (int32_t)(tu_rng_u32(&g) % 256) - 128;
        /* every byte, then random bytes of odd lengths (vector tails) */
        int64_t n = it < 8 ? 256 : 1 + tu_rng_u32(&g) % 1000;
        if (it >= 22) n = 300000 - it; /* chunks over 2 threads, a short last chunk */
        for (int64_t i = 0; i < n; i++) x[i] = (int8_t)(it < 8 ? i - 128 : (int)tu_rng_u32(&g));
        i8t_init(&t, op);
        i8t_act(&t, 0, i8t_shape(2, (int64_t)1, n), x, sx, zx);
        t.threads = it >= 22 ? 2 : 1;
        i8t_out(&t, SQZ_DT_I8, sy, zy);
        assert_int_equal(i8t_run(&t, sqz_ref_op_int8(op), (void **)&o), 0);
        for (int64_t i = 0; i < n; i++) {
            int8_t w = act_formula(op, sx, zx, sy, zy, x[i]);
            /* the reference rounds f / s_y once, in double like the formula */
            if (o[i] != w) fail_msg("op %d x %d: ref %d formula %d", op, x[i], o[i], w);
        }
        free(o);
        for (int c = 0; c < N_CAPS; c++) {
            cap_isa(k_caps[c]);
            same_as_ref(&t, sqz_ref_op_int8(op), luts[it % 4], (size_t)n);
        }
        cap_isa(-1);
    }
    free(x);
}

/* SiLU: the one-table impl of Mul(x, Sigmoid(x)) equals the reference
 * Sigmoid followed by the reference Mul, x at either Mul input. */
static void test_silu_table(void **state) {
    (void)state;
    tu_rng g;
    tu_rng_seed(&g, 32);
    for (int it = 0; it < 12; it++) {
        int64_t n = it < 2 ? 256 : it == 11 ? 200003 : 1 + tu_rng_u32(&g) % 700;
        int8_t *x = malloc((size_t)n);
        assert_non_null(x);
        for (int64_t i = 0; i < n; i++) x[i] = (int8_t)(it < 2 ? i - 128 : (int)tu_rng_u32(&g));
        float sx = tu_rng_uniform(&g, 0.01f, 0.2f), su = 1.0f / 255,
              sy = tu_rng_uniform(&g, 0.01f, 0.2f);
        int32_t zx = (int32_t)(tu_rng_u32(&g) % 256) - 128, zu = -128 + (int32_t)(it % 3),
                zy = (int32_t)(tu_rng_u32(&g) % 256) - 128;
        i8t t;
        i8t_init(&t, SQZ_OP_SIGMOID);
        i8t_act(&t, 0, i8t_shape(1, n), x, sx, zx);
        i8t_out(&t, SQZ_DT_I8, su, zu);
        int8_t *u, *want, *got;
        assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_SIGMOID), (void **)&u), 0);
        int xi = it % 2;
        i8t_init(&t, SQZ_OP_MUL);
        i8t_act(&t, (uint32_t)xi, i8t_shape(1, n), x, sx, zx);
        i8t_act(&t, (uint32_t)(1 - xi), i8t_shape(1, n), u, su, zu);
        i8t_out(&t, SQZ_DT_I8, sy, zy);
        assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_MUL), (void **)&want), 0);
        for (int c = 0; c < N_CAPS; c++) {
            cap_isa(k_caps[c]);
            t.threads = it == 11 ? 2 : 1; /* chunks over 2 threads */
            assert_int_equal(i8t_run(&t, sqz_i8_silu_impl(xi), (void **)&got), 0);
            assert_memory_equal(want, got, (size_t)n);
            assert_int_equal((unsigned char)got[n], 0xA5);
            free(got);
        }
        cap_isa(-1);
        free(want);
        free(u);
        free(x);
    }
    assert_null(sqz_i8_silu_impl(2));
}

static void test_mul(void **state) {
    (void)state;
    /* known: s_a s_b / s_y = 1, zero points 0: y = a * b saturated */
    int8_t a[4] = {3, -4, 100, -12}, b[4] = {5, 6, 2, -11}, *o;
    i8t t;
    i8t_init(&t, SQZ_OP_MUL);
    i8t_act(&t, 0, i8t_shape(1, (int64_t)4), a, 0.5f, 0);
    i8t_act(&t, 1, i8t_shape(1, (int64_t)4), b, 0.25f, 0);
    i8t_out(&t, SQZ_DT_I8, 0.125f, 0);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_MUL), (void **)&o), 0);
    const int8_t k[4] = {15, -24, 127, 127};
    assert_memory_equal(o, k, 4);
    free(o);
    /* the formula on broadcasts; the fast kernel against the reference */
    tu_rng g;
    tu_rng_seed(&g, 33);
    for (int it = 0; it < 90; it++) {
        int kind = it % 5; /* 0,1: gate [N,C,1,1] at input 1 / 0; 2: same shape; 3: [C,1]; 4:
                              [1,C,H,1] declined */
        int64_t N = 1 + tu_rng_u32(&g) % 2, C = 1 + tu_rng_u32(&g) % 40;
        int64_t H = 1 + tu_rng_u32(&g) % 30, W = 1 + tu_rng_u32(&g) % 30;
        if (it % 9 == 0) {
            H = 23;
            W = 29;
        } /* rows past the table length */
        if (it % 11 == 0) {
            C = 64;
            H = W = 32;
        }                     /* 2 threads split */
        if (kind == 3) N = 1; /* [C,1,1] vs N > 1 broadcasts a leading dim: declined */
        int64_t nf = N * C * H * W;
        sqz_shape fs = i8t_shape(4, N, C, H, W), gs;
        int64_t ng;
        if (kind <= 1) {
            gs = i8t_shape(4, N, C, (int64_t)1, (int64_t)1);
            ng = N * C;
        } else if (kind == 2) {
            gs = fs;
            ng = nf;
        } else if (kind == 3) {
            gs = i8t_shape(3, C, (int64_t)1, (int64_t)1);
            ng = C;
        } else {
            gs = i8t_shape(4, (int64_t)1, C, H, (int64_t)1);
            ng = C * H;
        }
        int8_t *F = rand_i8(&g, (size_t)nf, -128, 127), *G = rand_i8(&g, (size_t)ng, -128, 127);
        float sf = tu_rng_uniform(&g, 0.01f, 0.3f), sg = tu_rng_uniform(&g, 0.002f, 0.1f),
              sy = tu_rng_uniform(&g, 0.005f, 0.3f);
        if (it % 7 == 3) {
            sf = 0.5f;
            sg = 0.25f;
            sy = 0.25f;
        } /* m = 1/2: ties */
        int32_t zf = (int32_t)(tu_rng_u32(&g) % 256) - 128,
                zg = (int32_t)(tu_rng_u32(&g) % 256) - 128,
                zy = (int32_t)(tu_rng_u32(&g) % 256) - 128;
        uint32_t fi = kind == 1 ? 1 : 0;
        i8t_init(&t, SQZ_OP_MUL);
        i8t_act(&t, fi, fs, F, sf, zf);
        i8t_act(&t, 1 - fi, gs, G, sg, zg);
        i8t_out(&t, SQZ_DT_I8, sy, zy);
        if (it % 4 == 3) i8t_int(&t, "sqz_act", SQZ_ACT_RELU);
        t.threads = 1 + (int)(tu_rng_u32(&g) % 2);
        assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_MUL), (void **)&o), 0);
        assert_int_equal(sqz_shape_numel(&t.out_shape[0]), nf);
        /* the formula, written again */
        double m = (double)sf * sg / sy;
        int32_t lo = it % 4 == 3 ? zy : -128;
        for (int64_t i = 0; i < nf; i += 1 + (i % 7)) {
            int64_t n_ = i / (C * H * W), c = i / (H * W) % C, h = i / W % H;
            int64_t j = kind <= 1 ? n_ * C + c : kind == 2 ? i : kind == 3 ? c : c * H + h;
            int32_t w = i8t_requant((int64_t)(F[i] - zf) * (G[j] - zg), m, zy, lo, 127);
            if (o[i] != w)
                fail_msg("Mul kind %d i %lld: ref %d formula %d", kind, (long long)i, o[i], w);
        }
        free(o);
        for (int c = 0; c < N_CAPS; c++) {
            cap_isa(k_caps[c]);
            if (kind == 4 && N > 1 && C * H > 1) { /* gate varies along dims 1, 2 only: declined */
                assert_int_equal(i8t_run(&t, &sqz_i8_fast_mul, (void **)&o), 1);
                continue;
            }
            void *want, *got;
            assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_MUL), &want), 0);
            assert_int_equal(i8t_run(&t, &sqz_i8_fast_mul, &got), 0);
            if (memcmp(want, got, (size_t)nf) != 0)
                fail_msg("fast Mul it %d kind %d cap %d differs", it, kind, k_caps[c]);
            assert_int_equal(((unsigned char *)got)[nf], 0xA5);
            free(want);
            free(got);
        }
        cap_isa(-1);
        free(F);
        free(G);
    }
}

static void test_fast_gap(void **state) {
    (void)state;
    tu_rng g;
    tu_rng_seed(&g, 34);
    const int64_t sps[] = {1, 7, 49, 63, 64, 65, 196, 3136, 12544};
    for (int it = 0; it < 36; it++) {
        int64_t sp = sps[it % 9], NC = 1 + tu_rng_u32(&g) % 40; /* 16 planes a SIMD step */
        int8_t *x = rand_i8(&g, (size_t)(NC * sp), -128, 127);
        if (it % 6 == 5)
            for (int64_t i = 0; i < NC * sp; i++) x[i] = (int8_t)(it % 12 == 5 ? 127 : -128);
        i8t t;
        i8t_init(&t, SQZ_OP_GLOBAL_AVGPOOL);
        t.threads = it % 3 == 2 ? 2 + it % 2 : 1; /* planes split over 2 / 3 threads */
        i8t_act(&t, 0, i8t_shape(4, (int64_t)1, NC, sp, (int64_t)1), x,
                tu_rng_uniform(&g, 0.01f, 0.2f), (int32_t)(tu_rng_u32(&g) % 256) - 128);
        i8t_out(&t, SQZ_DT_I8, tu_rng_uniform(&g, 0.005f, 0.2f),
                (int32_t)(tu_rng_u32(&g) % 256) - 128);
        for (int c = 0; c < N_CAPS; c++) {
            cap_isa(k_caps[c]);
            same_as_ref(&t, sqz_ref_op_int8(SQZ_OP_GLOBAL_AVGPOOL), &sqz_i8_fast_gap, (size_t)NC);
        }
        cap_isa(-1);
        free(x);
    }
}

/* ------------------------------------------- Slice / Transpose / Split */

/* Byte copies keeping X's params: known index formulas, odd sizes, a
 * strided (step 2) innermost axis; differing output params are refused. */
static void test_slice_transpose_split(void **state) {
    (void)state;
    enum { N = 2 * 3 * 5 * 7 };
    int8_t x[N];
    for (int i = 0; i < N; i++) x[i] = (int8_t)(i * 37 % 256 - 128);
    const float sx = 0.05f;
    const int32_t zx = -3;
    i8t t;
    void *o = NULL;
    /* Transpose [2,3,5,7] perm (0,2,1,3): y[a][c][b][d] = x[a][b][c][d] */
    int64_t perm[4] = {0, 2, 1, 3};
    i8t_init(&t, SQZ_OP_TRANSPOSE);
    i8t_act(&t, 0, i8t_shape(4, (int64_t)2, (int64_t)3, (int64_t)5, (int64_t)7), x, sx, zx);
    i8t_ints(&t, "perm", 4, perm);
    i8t_out(&t, SQZ_DT_I8, sx, zx);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_TRANSPOSE), &o), 0);
    assert_int_equal(t.out_shape[0].dims[1], 5);
    assert_int_equal(t.out_shape[0].dims[2], 3);
    const int8_t *y = o;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 5; c++)
                for (int d = 0; d < 7; d++)
                    assert_int_equal(y[((a * 5 + c) * 3 + b) * 7 + d],
                                     x[((a * 3 + b) * 5 + c) * 7 + d]);
    free(o);
    /* other output params: refused (a copy cannot requantize) */
    i8t_out(&t, SQZ_DT_I8, sx * 2.0f, zx);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_TRANSPOSE), &o), -1);
    assert_non_null(strstr(t.err, "parameters"));
    /* Slice axes (1, 3): [1:3, 1:7:2] -> [2,2,5,3] */
    int64_t st[2] = {1, 1}, en[2] = {3, 7}, ax[2] = {1, 3}, sp[2] = {1, 2};
    i8t_init(&t, SQZ_OP_SLICE);
    i8t_act(&t, 0, i8t_shape(4, (int64_t)2, (int64_t)3, (int64_t)5, (int64_t)7), x, sx, zx);
    i8t_ints(&t, "starts", 2, st);
    i8t_ints(&t, "ends", 2, en);
    i8t_ints(&t, "axes", 2, ax);
    i8t_ints(&t, "steps", 2, sp);
    i8t_out(&t, SQZ_DT_I8, sx, zx);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_SLICE), &o), 0);
    assert_int_equal(t.out_shape[0].dims[1], 2);
    assert_int_equal(t.out_shape[0].dims[3], 3);
    y = o;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 5; c++)
                for (int d = 0; d < 3; d++)
                    assert_int_equal(y[((a * 2 + b) * 5 + c) * 3 + d],
                                     x[((a * 3 + b + 1) * 5 + c) * 7 + 1 + 2 * d]);
    assert_int_equal(((const uint8_t *)o)[2 * 2 * 5 * 3], 0xA5); /* nothing written past */
    free(o);
    /* Slice of whole rows (contiguous innermost: memcpy path), channel axis 1 */
    int64_t st1[1] = {2}, en1[1] = {3}, ax1[1] = {1};
    i8t_init(&t, SQZ_OP_SLICE);
    i8t_act(&t, 0, i8t_shape(4, (int64_t)2, (int64_t)3, (int64_t)5, (int64_t)7), x, sx, zx);
    i8t_ints(&t, "starts", 1, st1);
    i8t_ints(&t, "ends", 1, en1);
    i8t_ints(&t, "axes", 1, ax1);
    i8t_out(&t, SQZ_DT_I8, sx, zx);
    assert_int_equal(i8t_run(&t, sqz_ref_op_int8(SQZ_OP_SLICE), &o), 0);
    y = o;
    for (int a = 0; a < 2; a++) assert_memory_equal(y + a * 35, x + (a * 3 + 2) * 35, 35);
    free(o);
    /* Split axis 1 of [2,3,5,7] into (1, 2), two outputs with X's params */
    int64_t split[2] = {1, 2};
    i8t_init(&t, SQZ_OP_SPLIT);
    i8t_act(&t, 0, i8t_shape(4, (int64_t)2, (int64_t)3, (int64_t)5, (int64_t)7), x, sx, zx);
    i8t_int(&t, "axis", 1);
    i8t_ints(&t, "split", 2, split);
    int32_t ids[2] = {0, 1};
    t.node.n_inputs = 1;
    t.node.n_outputs = 2;
    t.node.inputs = ids;
    t.node.outputs = ids;
    uint8_t odt[2] = {SQZ_DT_I8, SQZ_DT_I8};
    float os[2] = {sx, sx};
    int32_t oz[2] = {zx, zx};
    sqz_qparams oq[2] = {{SQZ_QUANT_PER_TENSOR, 0, 1, &os[0], &oz[0]},
                         {SQZ_QUANT_PER_TENSOR, 0, 1, &os[1], &oz[1]}};
    sqz_shape osh[2];
    int8_t y0[2 * 35], y1[2 * 70];
    float *od[2] = {(float *)(void *)y0, (float *)(void *)y1};
    const float *id[1] = {(const float *)(const void *)x};
    sqz_op_ctx c;
    memset(&c, 0, sizeof c);
    c.node = &t.node;
    c.n_in = 1;
    c.n_out = 2;
    c.in_shape = t.in_shape;
    c.in_data = id;
    c.out_shape = osh;
    c.out_data = od;
    c.num_threads = 1;
    c.err = t.err;
    c.err_len = sizeof t.err;
    c.in_dtype = t.in_dt;
    c.out_dtype = odt;
    c.in_q = t.in_q;
    c.out_q = oq;
    const sqz_op_impl *sp8 = sqz_ref_op_int8(SQZ_OP_SPLIT);
    assert_non_null(sp8);
    assert_int_equal(sp8->prepare(&c), 0);
    assert_int_equal(osh[0].dims[1], 1);
    assert_int_equal(osh[1].dims[1], 2);
    sp8->run(&c);
    sp8->release(c.params);
    for (int a = 0; a < 2; a++) {
        assert_memory_equal(y0 + a * 35, x + a * 105, 35);
        assert_memory_equal(y1 + a * 70, x + a * 105 + 35, 70);
    }
    os[1] = sx * 0.5f; /* second output with other params: refused */
    c.params = NULL;
    assert_int_equal(sp8->prepare(&c), -1);
    assert_non_null(strstr(t.err, "output 1"));
}

/* vpmovwb even-byte extraction (strided conv planes) vs the scalar loop:
 * every length 0..130, nothing written past n, nothing read past 2 n - 1
 * (the source ends exactly there: ASan would see an over-read). */
static void test_even_bytes(void **state) {
    (void)state;
#if defined(__x86_64__)
    if (!sqz_cpu_has_avx512()) {
        printf("  (skipped: this CPU lacks AVX-512)\n");
        return;
    }
    for (int64_t n = 0; n <= 130; n++) {
        int64_t len = n > 0 ? 2 * n - 1 : 0;
        int8_t *src = malloc((size_t)(len > 0 ? len : 1));
        int8_t dst[140];
        assert_non_null(src);
        for (int64_t i = 0; i < len; i++) src[i] = (int8_t)(i * 29 % 251 - 125);
        memset(dst, 0x5A, sizeof dst);
        sqz_i8_even_bytes_avx512(src, n, dst);
        for (int64_t j = 0; j < n; j++) assert_int_equal(dst[j], src[2 * j]);
        for (int64_t j = n; j < (int64_t)sizeof dst; j++) assert_int_equal(dst[j], 0x5A);
        free(src);
    }
#else
    printf("  (skipped: x86-64 only)\n");
#endif
}

int main(void) {
    /* 2-thread cases split whatever the size and OMP_WAIT_POLICY (run.sh: passive)
     * make of them (int8_simd.h sqz_i8_split_threads) */
    setenv("SQZ_I8_SPLIT_NS", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requant_known),
        cmocka_unit_test(test_quantize_dequantize_known),
        cmocka_unit_test(test_conv_vs_formula),
        cmocka_unit_test(test_linear_vs_formula),
        cmocka_unit_test(test_add_known_and_formula),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_concat_relu_clip_views),
        cmocka_unit_test(test_slice_transpose_split),
        cmocka_unit_test(test_even_bytes),
        cmocka_unit_test(test_lut_kernels_exhaustive),
        cmocka_unit_test(test_fast_maxpool),
        cmocka_unit_test(test_act_tables),
        cmocka_unit_test(test_silu_table),
        cmocka_unit_test(test_mul),
        cmocka_unit_test(test_fast_gap),
        cmocka_unit_test(test_fast_maxpool_k2s2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
