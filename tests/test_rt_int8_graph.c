/* test_rt_int8_graph.c - a small int8 CNN through the session (Quantize ->
 * Conv relu -> MaxPool -> depthwise Conv -> Add -> 1x1 Convs -> Concat ->
 * GlobalAveragePool -> Flatten -> Gemm -> Dequantize): the outputs of every
 * kernel set this CPU dispatches to (capped at AVX2 and at AVX-512) are
 * bit-identical to the scalar reference's, 2 threads, 2 inputs; the int8
 * session thread policy. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "int8.h"
#include "sqz/sqz.h"
#include "sqzbuild.h"
#include "testutil.h"
#include "test_session.h"
#if defined(__x86_64__) || defined(_M_X64)
#include "cpu.h"
#endif

enum {
    T_X, /* f32 [1,3,16,16] */
    T_XQ,
    T_W1,
    T_B1,
    T_Y1, /* conv 3x3 3->8 pad 1 relu: [1,8,16,16] */
    T_P1, /* maxpool 2x2: [1,8,8,8] */
    T_W2,
    T_B2,
    T_Y2, /* depthwise 3x3 pad 1 relu */
    T_A,  /* add P1 + Y2 */
    T_W3,
    T_B3,
    T_Y3, /* conv 1x1 8->16 */
    T_W4,
    T_B4,
    T_Y4, /* conv 1x1 8->4 (other params) */
    T_C,  /* concat: [1,20,8,8] */
    T_G,  /* gap: [1,20,1,1] */
    T_F,  /* flatten: [1,20] */
    T_W5,
    T_B5,
    T_Z, /* gemm 20->10 (transB) */
    T_Y, /* f32 [1,10] */
    NT
};

typedef struct qt {
    float s;
    int32_t z;
} qt;

static sb_tensor act(const char *name, int nd, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                     qt *q) {
    sb_tensor t = {.name = name,
                   .dtype = SQZ_DT_I8,
                   .quant = SQZ_QUANT_PER_TENSOR,
                   .ndim = nd,
                   .nq = 1,
                   .scale = &q->s,
                   .zp = &q->z};
    int64_t d[4] = {d0, d1, d2, d3};
    for (int i = 0; i < nd; i++) t.dims[i] = d[i];
    return t;
}

/* a model's int8 parameters, handed out in order: per-channel weights, their
 * scales and zero points, int32 biases */
typedef struct pcur {
    int8_t *w;
    int32_t *b, *zw;
    float *sw;
} pcur;

/* nw random weights in [-127, 127] and nb biases in [-2000, 2000], weight
 * scales in [0.002, 0.01), zero weight zero points (seeded: the same model
 * every run) */
static pcur rand_params(uint64_t seed, int8_t *w, size_t nw, int32_t *b, float *sw, int32_t *zw,
                        size_t nb) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (size_t i = 0; i < nw; i++) w[i] = (int8_t)((int)(tu_rng_u32(&r) % 255) - 127);
    for (size_t i = 0; i < nb; i++) {
        b[i] = (int32_t)(tu_rng_u32(&r) % 4001) - 2000;
        sw[i] = tu_rng_uniform(&r, 0.002f, 0.01f);
        zw[i] = 0;
    }
    return (pcur){w, b, zw, sw};
}

/* the next weight tensor: nd dims d, per channel along axis 0 */
static sb_tensor qweight(pcur *c, const char *name, int nd, const int64_t *d) {
    sb_tensor t = {.name = name,
                   .dtype = SQZ_DT_I8,
                   .flags = SQZ_TF_CONST,
                   .quant = SQZ_QUANT_PER_CHANNEL,
                   .qaxis = 0,
                   .ndim = nd,
                   .nq = (uint32_t)d[0],
                   .scale = c->sw,
                   .zp = c->zw,
                   .data = c->w};
    int64_t e = 1;
    for (int i = 0; i < nd; i++) e *= t.dims[i] = d[i];
    t.data_bytes = (size_t)e;
    c->w += e;
    c->sw += d[0];
    c->zw += d[0];
    return t;
}

/* the next n int32 biases */
static sb_tensor qbias(pcur *c, const char *name, int64_t n) {
    sb_tensor t = {.name = name,
                   .dtype = SQZ_DT_I32,
                   .flags = SQZ_TF_CONST,
                   .ndim = 1,
                   .dims = {n},
                   .data = c->b,
                   .data_bytes = (size_t)(n * 4)};
    c->b += n;
    return t;
}

typedef struct wts {
    int8_t w[8 * 3 * 9 + 8 * 9 + 16 * 8 + 4 * 8 + 10 * 20];
    int32_t b[8 + 8 + 16 + 4 + 10];
    float sw[8 + 8 + 16 + 4 + 10];
    int32_t zw[8 + 8 + 16 + 4 + 10];
} wts;

static uint8_t *build(wts *W, qt *q, size_t *size) {
    static sb_tensor t[NT];
    pcur c = rand_params(99, W->w, sizeof W->w, W->b, W->sw, W->zw, sizeof W->b / 4);
    /* activation parameters: q[0] input ... */
    const qt qs[] = {{0.02f, 0},  {0.05f, -128}, {0.035f, -120}, {0.04f, -128}, {0.06f, -100},
                     {0.08f, 10}, {0.03f, -7},   {0.08f, 3},     {0.03f, -2},   {0.2f, 5}};
    memcpy(q, qs, sizeof qs);
    memset(t, 0, sizeof t);
    t[T_X] = (sb_tensor){
        .name = "x", .dtype = SQZ_DT_F32, .flags = SQZ_TF_INPUT, .ndim = 4, .dims = {1, 3, 16, 16}};
    t[T_XQ] = act("xq", 4, 1, 3, 16, 16, &q[0]);
    t[T_W1] = qweight(&c, "w1", 4, (const int64_t[]){8, 3, 3, 3});
    t[T_B1] = qbias(&c, "b1", 8);
    t[T_Y1] = act("y1", 4, 1, 8, 16, 16, &q[1]);
    t[T_P1] = act("p1", 4, 1, 8, 8, 8, &q[1]);
    t[T_W2] = qweight(&c, "w2", 4, (const int64_t[]){8, 1, 3, 3});
    t[T_B2] = qbias(&c, "b2", 8);
    t[T_Y2] = act("y2", 4, 1, 8, 8, 8, &q[2]);
    t[T_A] = act("a", 4, 1, 8, 8, 8, &q[3]);
    t[T_W3] = qweight(&c, "w3", 4, (const int64_t[]){16, 8, 1, 1});
    t[T_B3] = qbias(&c, "b3", 16);
    t[T_Y3] = act("y3", 4, 1, 16, 8, 8, &q[4]);
    t[T_W4] = qweight(&c, "w4", 4, (const int64_t[]){4, 8, 1, 1});
    t[T_B4] = qbias(&c, "b4", 4);
    t[T_Y4] = act("y4", 4, 1, 4, 8, 8, &q[5]);
    t[T_C] = act("c", 4, 1, 20, 8, 8, &q[4]);
    t[T_G] = act("g", 4, 1, 20, 1, 1, &q[6]);
    t[T_F] = act("f", 2, 1, 20, 0, 0, &q[6]);
    t[T_W5] = qweight(&c, "w5", 2, (const int64_t[]){10, 20});
    t[T_B5] = qbias(&c, "b5", 10);
    t[T_Z] = act("z", 2, 1, 10, 0, 0, &q[9]);
    t[T_Y] = (sb_tensor){
        .name = "y", .dtype = SQZ_DT_F32, .flags = SQZ_TF_OUTPUT, .ndim = 2, .dims = {1, 10}};
    static const int64_t pad1[4] = {1, 1, 1, 1}, k3[2] = {3, 3}, k2[2] = {2, 2}, k1[2] = {1, 1};
    static const int64_t relu = SQZ_ACT_RELU, g8 = 8, ax1 = 1, one = 1;
    static const sb_attr a_c1[] = {
        {.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = pad1},
        {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k3},
        {.name = "sqz_act", .type = SQZ_ATTR_INT, .count = 1, .ints = &relu}};
    static const sb_attr a_dw[] = {
        {.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = pad1},
        {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k3},
        {.name = "group", .type = SQZ_ATTR_INT, .count = 1, .ints = &g8},
        {.name = "sqz_act", .type = SQZ_ATTR_INT, .count = 1, .ints = &relu}};
    static const sb_attr a_mp[] = {
        {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k2},
        {.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = k2}};
    static const sb_attr a_pw[] = {
        {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k1}};
    static const sb_attr a_cat[] = {
        {.name = "axis", .type = SQZ_ATTR_INT, .count = 1, .ints = &ax1}};
    static const sb_attr a_gemm[] = {
        {.name = "transB", .type = SQZ_ATTR_INT, .count = 1, .ints = &one}};
    static const int32_t i_q[] = {T_X}, o_q[] = {T_XQ}, i_c1[] = {T_XQ, T_W1, T_B1},
                         o_c1[] = {T_Y1}, i_mp[] = {T_Y1}, o_mp[] = {T_P1},
                         i_dw[] = {T_P1, T_W2, T_B2}, o_dw[] = {T_Y2}, i_add[] = {T_P1, T_Y2},
                         o_add[] = {T_A}, i_c3[] = {T_A, T_W3, T_B3}, o_c3[] = {T_Y3},
                         i_c4[] = {T_A, T_W4, T_B4}, o_c4[] = {T_Y4}, i_cat[] = {T_Y3, T_Y4},
                         o_cat[] = {T_C}, i_g[] = {T_C}, o_g[] = {T_G}, i_f[] = {T_G},
                         o_f[] = {T_F}, i_gm[] = {T_F, T_W5, T_B5}, o_gm[] = {T_Z}, i_dq[] = {T_Z},
                         o_dq[] = {T_Y};
    static const sb_node n[] = {
        {SQZ_OP_QUANTIZE_LINEAR, "q", 1, 1, 0, i_q, o_q, NULL},
        {SQZ_OP_CONV, "conv1", 3, 1, 3, i_c1, o_c1, a_c1},
        {SQZ_OP_MAXPOOL, "pool", 1, 1, 2, i_mp, o_mp, a_mp},
        {SQZ_OP_CONV, "dw", 3, 1, 4, i_dw, o_dw, a_dw},
        {SQZ_OP_ADD, "add", 2, 1, 0, i_add, o_add, NULL},
        {SQZ_OP_CONV, "pw16", 3, 1, 1, i_c3, o_c3, a_pw},
        {SQZ_OP_CONV, "pw4", 3, 1, 1, i_c4, o_c4, a_pw},
        {SQZ_OP_CONCAT, "cat", 2, 1, 1, i_cat, o_cat, a_cat},
        {SQZ_OP_GLOBAL_AVGPOOL, "gap", 1, 1, 0, i_g, o_g, NULL},
        {SQZ_OP_FLATTEN, "flat", 1, 1, 0, i_f, o_f, NULL},
        {SQZ_OP_GEMM, "fc", 3, 1, 1, i_gm, o_gm, a_gemm},
        {SQZ_OP_DEQUANTIZE_LINEAR, "dq", 1, 1, 0, i_dq, o_dq, NULL},
    };
    static const int32_t gin[] = {T_X}, gout[] = {T_Y};
    return sb_build(t, NT, n, (int)(sizeof n / sizeof n[0]), gin, 1, gout, 1, size);
}

/* reps runs of session s on uniform [lo, hi) inputs (x: nx floats of room,
 * seeded by seed), the first ny floats of output 0 of each run into y (reps x
 * ny); then frees s and m and leaves reference mode */
static void feed_runs(sqz_session *s, sqz_model *m, uint64_t seed, float *x, size_t nx, float lo,
                      float hi, int reps, float *y, size_t ny) {
    sqz_status st;
    tu_rng r;
    tu_rng_seed(&r, seed);
    for (int k = 0; k < reps; k++) {
        tu_fill_uniform(&r, x, nx, lo, hi);
        assert_int_equal(sqz_session_set_input(s, 0, x, nx, &st), SQZ_OK);
        assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
        const float *out;
        assert_int_equal(sqz_session_output(s, 0, &out, NULL, &st), SQZ_OK);
        memcpy(y + ny * (size_t)k, out, ny * sizeof(float));
    }
    sqz_session_free(s);
    sqz_model_free(m);
    sqz_set_force_reference(0);
}

/* Runs the model with the reference kernels (force_ref) or the dispatched
 * ones, two threads, two inputs; y receives 2 x 10 floats. */
static void run_model(const uint8_t *f, size_t n, int force_ref, float *y) {
    sqz_model *m;
    sqz_session *s = ts_open(f, n, 2, force_ref, &m);
    float x[3 * 16 * 16];
    feed_runs(s, m, 5, x, sizeof x / sizeof x[0], -2.0f, 2.5f, 2, y, 10);
}

static void test_graph_bit_exact(void **state) {
    (void)state;
    static wts W;
    qt q[10];
    size_t n;
    uint8_t *f = build(&W, q, &n);
    float ref[20], fast[20];
    run_model(f, n, 1, ref);
    /* the output is not degenerate: the values differ and are not all clamped */
    int distinct = 0;
    for (int i = 1; i < 20; i++) distinct += ref[i] != ref[0];
    assert_true(distinct > 5);
#if defined(__x86_64__) || defined(_M_X64)
    static const struct {
        const char *name;
        int cap;
    } caps[] = {{"avx2", SQZ_ISA_AVX2}, {"avx512", SQZ_ISA_AVX512}};
    for (size_t c = 0; c < 2; c++) {
        if (sqz_cpu_isa_hw() < caps[c].cap) {
            printf("  (skipped %s: this CPU lacks it)\n", caps[c].name);
            continue;
        }
        sqz_cpu_set_isa_cap(caps[c].cap);
        run_model(f, n, 0, fast);
        sqz_cpu_set_isa_cap(-1);
        for (int i = 0; i < 20; i++)
            if (memcmp(&fast[i], &ref[i], sizeof(float)) != 0)
                fail_msg("%s: output %d = %.9g, reference %.9g", caps[c].name, i, fast[i], ref[i]);
    }
#endif
    run_model(f, n, 0, fast); /* whatever this CPU dispatches (also non-x86) */
    assert_memory_equal(fast, ref, sizeof ref);
    free(f);
}

/* The int8 session thread policy (int8.h sqz_i8_session_threads): a small
 * int8 model asked for 2 threads runs on one (its kernels prepared for 2,
 * told at run time), with the reference's bits; int8-heavy models above the
 * limit, fp32-heavy ones and models without int8 MACs keep their threads. */
static void test_session_thread_policy(void **state) {
    (void)state;
    unsetenv("SQZ_I8_TINY_MACS");
    assert_int_equal(sqz_i8_session_threads(2, 5308960, 5308960), 1); /* small MobileNet */
    assert_int_equal(sqz_i8_session_threads(2, 9345920, 9345920), 2); /* small ResNet */
    assert_int_equal(sqz_i8_session_threads(2, 7999999, 4500000), 1); /* 56% int8 */
    assert_int_equal(sqz_i8_session_threads(2, SQZ_I8_TINY_MACS, SQZ_I8_TINY_MACS), 2);
    assert_int_equal(sqz_i8_session_threads(2, 300000000, 300000000), 2); /* MobileNetV2 */
    assert_int_equal(sqz_i8_session_threads(2, 7000000, 3000000), 2);     /* mostly fp32 */
    assert_int_equal(sqz_i8_session_threads(2, 1000, 0), 2);              /* no int8 MACs */
    assert_int_equal(sqz_i8_session_threads(4, 0, 0), 4);
    assert_int_equal(sqz_i8_session_threads(1, 1000, 1000), 1);
    setenv("SQZ_I8_TINY_MACS", "1000", 1);
    assert_int_equal(sqz_i8_session_threads(2, 999, 999), 1);
    assert_int_equal(sqz_i8_session_threads(2, 1000, 1000), 2);
    unsetenv("SQZ_I8_TINY_MACS");
    static wts W;
    qt q[10];
    size_t n;
    uint8_t *f = build(&W, q, &n);
    float ref[20], fast[20];
    run_model(f, n, 1, ref);
    run_model(f, n, 0, fast); /* 2 threads asked, one used */
    assert_memory_equal(fast, ref, sizeof ref);
    free(f);
    setenv("SQZ_I8_TINY_MACS", "0", 1);
}

/* ---- channel-consistent pairs (int8.h sqz_i8_conv_chsplit, sqz_i8_conv_fuse_pair) */

enum {
    P_X,
    P_XQ,
    P_W1,
    P_B1,
    P_Y1,
    P_W2,
    P_B2,
    P_Y2,
    P_W3,
    P_B3,
    P_Y3,
    P_W4,
    P_B4,
    P_Y4,
    P_G,
    P_Y,
    PNT
};

/* x f32 [1,16,14,14] -> Quantize -> 1x1 16->44 relu -> depthwise 3x3 44
 * relu -> 1x1 44->24 -> 1x1 24->40 relu -> GlobalAveragePool -> Dequantize:
 * two pairs (1x1 + depthwise, 1x1 + pool) in a small int8 model */
static uint8_t *build_pairs(size_t *size) {
    static sb_tensor t[PNT];
    static int8_t w[44 * 16 + 44 * 9 + 24 * 44 + 40 * 24];
    static int32_t b[44 + 44 + 24 + 40], zw[44 + 44 + 24 + 40];
    static float sw[44 + 44 + 24 + 40];
    static qt q[6] = {{0.02f, 3},   {0.05f, -128}, {0.04f, -128},
                      {0.06f, -10}, {0.07f, -128}, {0.03f, -5}};
    pcur c = rand_params(41, w, sizeof w, b, sw, zw, sizeof b / 4);
    memset(t, 0, sizeof t);
    t[P_X] = (sb_tensor){.name = "x",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_INPUT,
                         .ndim = 4,
                         .dims = {1, 16, 14, 14}};
    t[P_XQ] = act("xq", 4, 1, 16, 14, 14, &q[0]);
    const int64_t wd[4][4] = {{44, 16, 1, 1}, {44, 1, 3, 3}, {24, 44, 1, 1}, {40, 24, 1, 1}};
    const int wid[4] = {P_W1, P_W2, P_W3, P_W4}, bid[4] = {P_B1, P_B2, P_B3, P_B4};
    static const char *wn[4] = {"w1", "w2", "w3", "w4"}, *bn[4] = {"b1", "b2", "b3", "b4"};
    for (int k = 0; k < 4; k++) {
        t[wid[k]] = qweight(&c, wn[k], 4, wd[k]);
        t[bid[k]] = qbias(&c, bn[k], wd[k][0]);
    }
    t[P_Y1] = act("y1", 4, 1, 44, 14, 14, &q[1]);
    t[P_Y2] = act("y2", 4, 1, 44, 14, 14, &q[2]);
    t[P_Y3] = act("y3", 4, 1, 24, 14, 14, &q[3]);
    t[P_Y4] = act("y4", 4, 1, 40, 14, 14, &q[4]);
    t[P_G] = act("g", 4, 1, 40, 1, 1, &q[5]);
    t[P_Y] = (sb_tensor){
        .name = "y", .dtype = SQZ_DT_F32, .flags = SQZ_TF_OUTPUT, .ndim = 4, .dims = {1, 40, 1, 1}};
    static const int64_t pad1[4] = {1, 1, 1, 1}, k3[2] = {3, 3}, k1[2] = {1, 1};
    static const int64_t relu = SQZ_ACT_RELU, g44 = 44;
    static const sb_attr a_pw[] = {
        {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k1},
        {.name = "sqz_act", .type = SQZ_ATTR_INT, .count = 1, .ints = &relu}};
    static const sb_attr a_dw[] = {
        {.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = pad1},
        {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k3},
        {.name = "group", .type = SQZ_ATTR_INT, .count = 1, .ints = &g44},
        {.name = "sqz_act", .type = SQZ_ATTR_INT, .count = 1, .ints = &relu}};
    static const int32_t i_q[] = {P_X}, o_q[] = {P_XQ}, i_1[] = {P_XQ, P_W1, P_B1}, o_1[] = {P_Y1},
                         i_2[] = {P_Y1, P_W2, P_B2}, o_2[] = {P_Y2}, i_3[] = {P_Y2, P_W3, P_B3},
                         o_3[] = {P_Y3}, i_4[] = {P_Y3, P_W4, P_B4}, o_4[] = {P_Y4}, i_g[] = {P_Y4},
                         o_g[] = {P_G}, i_dq[] = {P_G}, o_dq[] = {P_Y};
    static const sb_node n[] = {
        {SQZ_OP_QUANTIZE_LINEAR, "q", 1, 1, 0, i_q, o_q, NULL},
        {SQZ_OP_CONV, "expand", 3, 1, 2, i_1, o_1, a_pw},
        {SQZ_OP_CONV, "dw", 3, 1, 4, i_2, o_2, a_dw},
        {SQZ_OP_CONV, "project", 3, 1, 1, i_3, o_3, a_pw},
        {SQZ_OP_CONV, "head", 3, 1, 2, i_4, o_4, a_pw},
        {SQZ_OP_GLOBAL_AVGPOOL, "gap", 1, 1, 0, i_g, o_g, NULL},
        {SQZ_OP_DEQUANTIZE_LINEAR, "dq", 1, 1, 0, i_dq, o_dq, NULL},
    };
    static const int32_t gin[] = {P_X}, gout[] = {P_Y};
    return sb_build(t, PNT, n, (int)(sizeof n / sizeof n[0]), gin, 1, gout, 1, size);
}

/* 3 runs of the pairs model at `threads` (reference kernels: force_ref):
 * y gets 3 x 40 floats; *skipped the nodes the session does not run */
static void run_pairs(const uint8_t *f, size_t n, int force_ref, int threads, float *y,
                      int *skipped) {
    sqz_model *m;
    sqz_session *s = ts_open(f, n, threads, force_ref, &m);
    *skipped = 0;
    for (int i = 0; i < sqz_session_num_nodes(s); i++) {
        sqz_node_info ni;
        sqz_session_node_info(s, i, &ni);
        *skipped += ni.skipped;
    }
    static float x[16 * 14 * 14];
    feed_runs(s, m, 8, x, sizeof x / sizeof x[0], -1.5f, 2.5f, 3, y, 40);
}

/* A small int8 model at 2 and 3 threads with its 1x1 + depthwise and 1x1 +
 * pool pairs split (and each pair fused into one node: 2 nodes not run) or
 * only split (SQZ_I8_PAIRS=2) or neither (=0): the reference's bits each time */
static void test_channel_pairs(void **state) {
    (void)state;
    unsetenv("SQZ_I8_TINY_MACS"); /* the default policy: a small model */
    /* a team for this model (its 1x1 convs of 150K MACs) whatever
     * OMP_WAIT_POLICY says (run.sh: passive, a higher bar) */
    setenv("SQZ_PAR_MIN_MACS", "65536", 1);
    size_t n;
    uint8_t *f = build_pairs(&n);
    static float ref[120], got[120];
    int skipped;
    run_pairs(f, n, 1, 1, ref, &skipped);
    int distinct = 0;
    for (int i = 1; i < 120; i++) distinct += ref[i] != ref[0];
    assert_true(distinct > 30);
    static const char *modes[] = {NULL, "2", "0"};
    /* separate slots (a small model at 2+ threads) and the reusing plan,
     * where a fused pair's second output must not share the conv input's
     * space (its lifetime starts at the conv's step) */
    for (int md = 0; md < 6; md++) {
        if (md % 3 == 0) {
            if (md)
                setenv("SQZ_ARENA_REUSE", "1", 1);
            else
                unsetenv("SQZ_ARENA_REUSE");
        }
        if (modes[md % 3])
            setenv("SQZ_I8_PAIRS", modes[md % 3], 1);
        else
            unsetenv("SQZ_I8_PAIRS");
        /* x86: also capped at AVX2 (depthwise kernels with scratch slices) */
        for (int cap = 0; cap < 2; cap++) {
#if defined(__x86_64__) || defined(_M_X64)
            if (cap && sqz_cpu_isa_hw() < SQZ_ISA_AVX2) continue;
            sqz_cpu_set_isa_cap(cap ? SQZ_ISA_AVX2 : -1);
#else
            if (cap) continue;
#endif
            for (int thr = 1; thr <= 3; thr++) {
                run_pairs(f, n, 0, thr, got, &skipped);
                if (memcmp(got, ref, sizeof ref) != 0)
                    fail_msg("pairs mode %s, reuse %d, cap %d, %d threads: outputs differ from "
                             "the reference",
                             modes[md % 3] ? modes[md % 3] : "default", md / 3, cap, thr);
                    /* the fused pairs' second nodes (x86 / aarch64 int8 kernels) */
#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)
                assert_int_equal(skipped, thr > 1 && !modes[md % 3] ? 2 : 0);
#endif
            }
#if defined(__x86_64__) || defined(_M_X64)
            sqz_cpu_set_isa_cap(-1);
#endif
        }
    }
    unsetenv("SQZ_I8_PAIRS");
    unsetenv("SQZ_ARENA_REUSE");
    unsetenv("SQZ_PAR_MIN_MACS");
    setenv("SQZ_I8_TINY_MACS", "0", 1);
    free(f);
}

/* ---- one-row Gemms split by columns (int8.h sqz_i8_gemv_split) */

/* x f32 [1,97] -> Quantize -> Gemm 97->70 relu -> Gemm 70->33 -> Dequantize */
static uint8_t *build_fc(size_t *size) {
    enum { F_X, F_XQ, F_W1, F_B1, F_Y1, F_W2, F_B2, F_Y2, F_Y, FNT };
    static sb_tensor t[FNT];
    static int8_t w[70 * 97 + 33 * 70];
    static int32_t b[70 + 33], zw[70 + 33];
    static float sw[70 + 33];
    static qt q[3] = {{0.02f, 3}, {0.05f, -128}, {0.08f, -6}};
    pcur c = rand_params(43, w, sizeof w, b, sw, zw, sizeof b / 4);
    memset(t, 0, sizeof t);
    t[F_X] = (sb_tensor){
        .name = "x", .dtype = SQZ_DT_F32, .flags = SQZ_TF_INPUT, .ndim = 2, .dims = {1, 97}};
    t[F_XQ] = act("xq", 2, 1, 97, 0, 0, &q[0]);
    t[F_W1] = qweight(&c, "w1", 2, (const int64_t[]){70, 97});
    t[F_B1] = qbias(&c, "b1", 70);
    t[F_W2] = qweight(&c, "w2", 2, (const int64_t[]){33, 70});
    t[F_B2] = qbias(&c, "b2", 33);
    t[F_Y1] = act("y1", 2, 1, 70, 0, 0, &q[1]);
    t[F_Y2] = act("y2", 2, 1, 33, 0, 0, &q[2]);
    t[F_Y] = (sb_tensor){
        .name = "y", .dtype = SQZ_DT_F32, .flags = SQZ_TF_OUTPUT, .ndim = 2, .dims = {1, 33}};
    static const int64_t relu = SQZ_ACT_RELU, one = 1;
    static const sb_attr a_1[] = {
        {.name = "transB", .type = SQZ_ATTR_INT, .count = 1, .ints = &one},
        {.name = "sqz_act", .type = SQZ_ATTR_INT, .count = 1, .ints = &relu}};
    static const sb_attr a_2[] = {
        {.name = "transB", .type = SQZ_ATTR_INT, .count = 1, .ints = &one}};
    static const int32_t i_q[] = {F_X}, o_q[] = {F_XQ}, i_1[] = {F_XQ, F_W1, F_B1}, o_1[] = {F_Y1},
                         i_2[] = {F_Y1, F_W2, F_B2}, o_2[] = {F_Y2}, i_dq[] = {F_Y2},
                         o_dq[] = {F_Y};
    static const sb_node n[] = {
        {SQZ_OP_QUANTIZE_LINEAR, "q", 1, 1, 0, i_q, o_q, NULL},
        {SQZ_OP_GEMM, "fc1", 3, 1, 2, i_1, o_1, a_1},
        {SQZ_OP_GEMM, "fc2", 3, 1, 1, i_2, o_2, a_2},
        {SQZ_OP_DEQUANTIZE_LINEAR, "dq", 1, 1, 0, i_dq, o_dq, NULL},
    };
    static const int32_t gin[] = {F_X}, gout[] = {F_Y};
    return sb_build(t, FNT, n, (int)(sizeof n / sizeof n[0]), gin, 1, gout, 1, size);
}

/* 80 runs of the fc model at `threads` (reference kernels: force_ref):
 * y gets 80 x 33 floats (past the pool's first solo probe, run.c 64) */
static void run_fc(const uint8_t *f, size_t n, int force_ref, int threads, float *y) {
    sqz_model *m;
    sqz_session *s = ts_open(f, n, threads, force_ref, &m);
    static float x[97];
    feed_runs(s, m, 9, x, 97, -2.0f, 2.5f, 80, y, 33);
}

/* A small int8 model of two one-row Gemms kept at 2 and 3 threads for them
 * (SQZ_I8_GEMV_SPLIT=1: both split, parts of 1-3 column blocks), under the
 * default small-model policy, also capped at AVX2: the reference's bits */
static void test_gemv_split(void **state) {
    (void)state;
    unsetenv("SQZ_I8_TINY_MACS");
    setenv("SQZ_PAR_MIN_MACS", "4096", 1); /* a team for its 6790-MAC Gemm */
    setenv("SQZ_I8_GEMV_SPLIT", "1", 1);
    size_t n;
    uint8_t *f = build_fc(&n);
    static float ref[80 * 33], got[80 * 33];
    run_fc(f, n, 1, 1, ref);
    int distinct = 0;
    for (int i = 1; i < 80 * 33; i++) distinct += ref[i] != ref[0];
    assert_true(distinct > 1000);
    for (int cap = 0; cap < 2; cap++) {
#if defined(__x86_64__) || defined(_M_X64)
        if (cap && sqz_cpu_isa_hw() < SQZ_ISA_AVX2) continue;
        sqz_cpu_set_isa_cap(cap ? SQZ_ISA_AVX2 : -1);
#else
        if (cap) continue;
#endif
        for (int thr = 1; thr <= 3; thr++) {
            run_fc(f, n, 0, thr, got);
            if (memcmp(got, ref, sizeof ref) != 0)
                fail_msg("gemv split, cap %d, %d threads: outputs differ from the reference", cap,
                         thr);
        }
#if defined(__x86_64__) || defined(_M_X64)
        sqz_cpu_set_isa_cap(-1);
#endif
    }
    unsetenv("SQZ_I8_GEMV_SPLIT");
    unsetenv("SQZ_PAR_MIN_MACS");
    setenv("SQZ_I8_TINY_MACS", "0", 1);
    free(f);
}

int main(void) {
    /* 2-thread cases split whatever the size and OMP_WAIT_POLICY (run.sh: passive)
     * make of them (int8_simd.h sqz_i8_split_threads), and this small model
     * keeps its 2 threads (int8.h sqz_i8_session_threads) */
    setenv("SQZ_I8_SPLIT_NS", "0", 1);
    setenv("SQZ_I8_TINY_MACS", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_bit_exact),
        cmocka_unit_test(test_session_thread_policy),
        cmocka_unit_test(test_channel_pairs),
        cmocka_unit_test(test_gemv_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
