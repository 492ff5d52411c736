/* test_rt_int8_model.c - INT8 models through the loader and the session:
 * quantization records (valid and hostile), dtype-sized buffers, the i8 / f32
 * graph I/O API, and Quantize -> Conv(int8, relu) -> Dequantize against an
 * independent computation of the contract's formula (sqz/format.h "INT8"). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sqz/sqz.h"
#include "sqzbuild.h"
#include "testutil.h"

/* ---- the model: X f32 -> QuantizeLinear -> Xq -> Conv 3x3 pad 1 relu
 * (W i8 per-channel, B i32) -> Yq -> DequantizeLinear -> Y f32 */
enum { T_X, T_XQ, T_W, T_B, T_YQ, T_Y, NT };
#define CIN 2
#define COUT 3
#define HW 5

typedef struct mdl {
    sb_tensor t[NT];
    sb_node n[3];
    sb_attr conv_attrs[3];
    float sx, sy, sw[COUT];
    int32_t zx, zy, zw[COUT], b[COUT];
    int8_t w[COUT * CIN * 9];
    int32_t gin[1], gout[1];
    int32_t q_in[1], q_out[1], c_in[3], c_out[1], d_in[1], d_out[1];
} mdl;

static const int64_t k_pads[4] = {1, 1, 1, 1}, k_ks[2] = {3, 3}, k_relu = SQZ_ACT_RELU;

static void mdl_init(mdl *m) {
    memset(m, 0, sizeof *m);
    m->sx = 0.05f;
    m->zx = -3;
    m->sy = 0.1f;
    m->zy = -20;
    m->sw[0] = 0.01f;
    m->sw[1] = 0.02f;
    m->sw[2] = 0.015f;
    tu_rng r;
    tu_rng_seed(&r, 7);
    for (int i = 0; i < COUT * CIN * 9; i++) m->w[i] = (int8_t)((int)(tu_rng_u32(&r) % 255) - 127);
    m->w[0] = 127;
    m->w[1] = -127;
    m->b[0] = 1000;
    m->b[1] = -2500;
    m->b[2] = 17;
    sb_tensor *t = m->t;
    sb_qconv_tensors(t, CIN, COUT, HW, &m->sx, &m->zx, &m->sy, &m->zy, m->sw, m->zw, m->w, m->b);
    t[T_Y] = (sb_tensor){.name = "y",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_OUTPUT,
                         .ndim = 4,
                         .dims = {1, COUT, HW, HW}};
    m->conv_attrs[0] = (sb_attr){.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = k_pads};
    m->conv_attrs[1] =
        (sb_attr){.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k_ks};
    m->conv_attrs[2] =
        (sb_attr){.name = "sqz_act", .type = SQZ_ATTR_INT, .count = 1, .ints = &k_relu};
    m->q_in[0] = T_X;
    m->q_out[0] = T_XQ;
    m->c_in[0] = T_XQ;
    m->c_in[1] = T_W;
    m->c_in[2] = T_B;
    m->c_out[0] = T_YQ;
    m->d_in[0] = T_YQ;
    m->d_out[0] = T_Y;
    m->n[0] = (sb_node){.op = SQZ_OP_QUANTIZE_LINEAR,
                        .name = "quant",
                        .n_in = 1,
                        .n_out = 1,
                        .in = m->q_in,
                        .out = m->q_out};
    m->n[1] = (sb_node){.op = SQZ_OP_CONV,
                        .name = "conv",
                        .n_in = 3,
                        .n_out = 1,
                        .n_attr = 3,
                        .in = m->c_in,
                        .out = m->c_out,
                        .attrs = m->conv_attrs};
    m->n[2] = (sb_node){.op = SQZ_OP_DEQUANTIZE_LINEAR,
                        .name = "dequant",
                        .n_in = 1,
                        .n_out = 1,
                        .in = m->d_in,
                        .out = m->d_out};
    m->gin[0] = T_X;
    m->gout[0] = T_Y;
}

static uint8_t *mdl_build(const mdl *m, int n_nodes, size_t *size) {
    return sb_build(m->t, NT, m->n, n_nodes, m->gin, 1, m->gout, 1, size);
}

static sqz_code load(const mdl *m, int n_nodes, sqz_model **out, sqz_status *st) {
    size_t n;
    uint8_t *f = mdl_build(m, n_nodes, &n);
    sqz_code rc = sqz_model_load_buffer(f, n, out, st);
    free(f);
    return rc;
}

/* The contract's requantization, written again from its text: float
 * product, clamp to [lo - zp, hi - zp], round half to even, + zp. */
static int32_t contract_requant(int32_t acc, double m, int32_t zp, int32_t lo, int32_t hi) {
    float v = (float)acc * (float)m;
    float l = (float)(lo - zp), h = (float)(hi - zp);
    v = v < l ? l : v > h ? h : v;
    return (int32_t)rintf(v) + zp;
}

static void run_quantized_conv_model(int force_ref) {
    sqz_set_force_reference(force_ref);
    mdl m;
    mdl_init(&m);
    sqz_model *model = NULL;
    sqz_status st;
    assert_int_equal(load(&m, 3, &model, &st), SQZ_OK);
    int dt = 0;
    sqz_qparams q;
    assert_int_equal(sqz_model_input_info(model, 0, &dt, &q), 0);
    assert_int_equal(dt, SQZ_DT_F32);
    assert_int_equal(q.kind, SQZ_QUANT_NONE);
    assert_int_equal(sqz_model_output_info(model, 0, &dt, NULL), 0);
    assert_int_equal(dt, SQZ_DT_F32);
    assert_int_equal(sqz_model_output_info(model, 1, &dt, NULL), -1);

    sqz_session *s = NULL;
    assert_int_equal(sqz_session_create(model, NULL, &s, &st), SQZ_OK);
    /* i8 tensors take numel bytes in the arena: x f32 (200) + x_q (50) + y_q
     * (75) + y f32 (300) at 64-byte alignment is at most 768 (the reference
     * conv needs no scratch) */
    if (force_ref) assert_true(sqz_session_arena_bytes(s) <= 768);

    /* input: values on the quantization grid +- 0.4 step (no ties) */
    float x[CIN * HW * HW];
    int32_t xq[CIN * HW * HW];
    tu_rng r;
    tu_rng_seed(&r, 11);
    for (int i = 0; i < CIN * HW * HW; i++) {
        int q0 = (int)(tu_rng_u32(&r) % 200) - 100;
        x[i] = ((float)q0 + tu_rng_uniform(&r, -0.4f, 0.4f)) * m.sx;
        xq[i] = q0 + m.zx;
    }
    x[0] = 1000.0f; /* saturates to 127 */
    xq[0] = 127;
    x[1] = -1000.0f;
    xq[1] = -128;
    assert_int_equal(sqz_session_set_input(s, 0, x, CIN * HW * HW, &st), SQZ_OK);
    assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
    const float *y;
    sqz_shape ys;
    assert_int_equal(sqz_session_output(s, 0, &y, &ys, &st), SQZ_OK);
    assert_int_equal(ys.ndim, 4);
    assert_int_equal(ys.dims[1], COUT);
    int n_clamped = 0;
    for (int co = 0; co < COUT; co++)
        for (int oh = 0; oh < HW; oh++)
            for (int ow = 0; ow < HW; ow++) {
                int32_t acc = m.b[co];
                for (int ci = 0; ci < CIN; ci++)
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int ih = oh - 1 + kh, iw = ow - 1 + kw;
                            if (ih < 0 || ih >= HW || iw < 0 || iw >= HW) continue;
                            acc += (xq[(ci * HW + ih) * HW + iw] - m.zx) *
                                   m.w[((co * CIN + ci) * 3 + kh) * 3 + kw];
                        }
                double mult = (double)m.sx * m.sw[co] / m.sy;
                int32_t yq = contract_requant(acc, mult, m.zy, m.zy, 127); /* relu: lo = zp */
                /* the fixed-point result is the real product rounded, +-1 */
                double real = acc * mult;
                if (real + m.zy > m.zy && real + m.zy < 127)
                    assert_true(fabs(yq - m.zy - real) <= 1.0);
                n_clamped += yq == m.zy;
                float want = m.sy * (float)(yq - m.zy);
                assert_true(y[(co * HW + oh) * HW + ow] == want);
            }
    assert_true(n_clamped > 0 && n_clamped < COUT * HW * HW); /* relu did something */
    sqz_session_free(s);
    sqz_model_free(model);
    sqz_set_force_reference(0);
}

/* Same answers from the reference kernels and from the SIMD ones this CPU
 * dispatches to. */
static void test_quantized_conv_model(void **state) {
    (void)state;
    run_quantized_conv_model(1);
    run_quantized_conv_model(0);
}

/* An i8 graph input and output: the float API refuses them, the raw one works. */
static void test_int8_graph_io(void **state) {
    (void)state;
    mdl m;
    mdl_init(&m);
    /* graph: x_q (input) -> conv -> y_q (output) */
    m.t[T_X].flags = 0;
    m.t[T_Y].flags = 0;
    m.t[T_XQ].flags = SQZ_TF_INPUT;
    m.t[T_YQ].flags = SQZ_TF_OUTPUT;
    m.gin[0] = T_XQ;
    m.gout[0] = T_YQ;
    m.n[0] = m.n[1];
    size_t n;
    uint8_t *f = sb_build(m.t, NT, m.n, 1, m.gin, 1, m.gout, 1, &n);
    sqz_model *model = NULL;
    sqz_status st;
    assert_int_equal(sqz_model_load_buffer(f, n, &model, &st), SQZ_OK);
    free(f);
    int dt = 0;
    sqz_qparams q;
    assert_int_equal(sqz_model_input_info(model, 0, &dt, &q), 0);
    assert_int_equal(dt, SQZ_DT_I8);
    assert_int_equal(q.kind, SQZ_QUANT_PER_TENSOR);
    assert_true(q.scale[0] == m.sx && q.zero_point[0] == m.zx);
    sqz_session *s = NULL;
    assert_int_equal(sqz_session_create(model, NULL, &s, &st), SQZ_OK);
    float xf[CIN * HW * HW] = {0};
    assert_int_equal(sqz_session_set_input(s, 0, xf, CIN * HW * HW, &st), SQZ_ERR_INVALID_ARG);
    assert_non_null(strstr(st.msg, "x_q"));
    int8_t xq[CIN * HW * HW];
    for (int i = 0; i < CIN * HW * HW; i++) xq[i] = (int8_t)m.zx; /* real zero */
    assert_int_equal(sqz_session_set_input_raw(s, 0, xq, sizeof xq - 1, &st), SQZ_ERR_INVALID_ARG);
    assert_int_equal(sqz_session_set_input_raw(s, 0, xq, sizeof xq, &st), SQZ_OK);
    assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
    const float *yf;
    assert_int_equal(sqz_session_output(s, 0, &yf, NULL, &st), SQZ_ERR_INVALID_ARG);
    assert_non_null(strstr(st.msg, "y_q"));
    const void *yv;
    sqz_shape ys;
    int ydt = 0;
    assert_int_equal(sqz_session_output_raw(s, 0, &yv, &ys, &ydt, &st), SQZ_OK);
    assert_int_equal(ydt, SQZ_DT_I8);
    const int8_t *y = yv;
    /* zero input: y = relu(requant(bias)) per channel */
    for (int co = 0; co < COUT; co++) {
        int32_t want = contract_requant(m.b[co], (double)m.sx * m.sw[co] / m.sy, m.zy, m.zy, 127);
        for (int p = 0; p < HW * HW; p++) assert_int_equal(y[co * HW * HW + p], want);
    }
    sqz_session_free(s);
    sqz_model_free(model);
}

/* ---- hostile quantization records: load fails, message names the tensor */
typedef void (*edit_fn)(mdl *m);
static float k_nan, k_inf = INFINITY, k_zero = 0.0f;
static int32_t k_zp128 = 128, k_zp5 = 5;
static void e_scale_nan(mdl *m) {
    m->t[T_XQ].scale = &k_nan;
}
static void e_scale_inf(mdl *m) {
    m->t[T_XQ].scale = &k_inf;
}
static void e_scale_zero(mdl *m) {
    m->t[T_YQ].scale = &k_zero;
}
static void e_scale_neg(mdl *m) {
    m->sw[1] = -0.5f;
}
static void e_zp_range(mdl *m) {
    m->t[T_XQ].zp = &k_zp128;
}
static void e_nq_mismatch(mdl *m) {
    m->t[T_W].nq = 2;
}
static void e_qaxis_oob(mdl *m) {
    m->t[T_W].qaxis = 4;
}
static void e_qaxis_per_tensor(mdl *m) {
    m->t[T_XQ].qaxis = 1;
}
static void e_quant_kind(mdl *m) {
    m->t[T_XQ].quant = SQZ_QUANT_PER_CHANNEL_SYM + 1;
}
static void e_f32_quant(mdl *m) {
    m->t[T_X].quant = SQZ_QUANT_PER_TENSOR;
    m->t[T_X].nq = 1;
    m->t[T_X].scale = &m->sx;
    m->t[T_X].zp = &m->zx;
}
static void e_i8_no_quant(mdl *m) {
    m->t[T_YQ].quant = 0;
    m->t[T_YQ].nq = 0;
}
static void e_i8_size(mdl *m) {
    m->t[T_W].data_bytes = sizeof m->w - 1;
}
static void e_i32_size(mdl *m) {
    m->t[T_B].data_bytes = COUT; /* bytes as if i8 */
}
static void e_i32_not_const(mdl *m) {
    m->t[T_B].flags = 0;
    m->t[T_B].data = NULL;
}
static void e_i32_zp(mdl *m) {
    static float s[COUT] = {1, 1, 1};
    static int32_t z[COUT] = {0, 5, 0};
    m->t[T_B].quant = SQZ_QUANT_PER_CHANNEL;
    m->t[T_B].nq = COUT;
    m->t[T_B].scale = s;
    m->t[T_B].zp = z;
    (void)k_zp5;
}
static void e_dtype_f16(mdl *m) {
    m->t[T_XQ].dtype = SQZ_DT_F16;
}

static const struct {
    const char *what, *tensor;
    edit_fn edit;
} k_hostile[] = {
    {"scale NaN", "x_q", e_scale_nan},          {"scale inf", "x_q", e_scale_inf},
    {"scale 0", "y_q", e_scale_zero},           {"scale < 0", "conv.w", e_scale_neg},
    {"zero point 128", "x_q", e_zp_range},      {"nq != dims[qaxis]", "conv.w", e_nq_mismatch},
    {"qaxis >= ndim", "conv.w", e_qaxis_oob},   {"qaxis on per-tensor", "x_q", e_qaxis_per_tensor},
    {"quant kind 4", "x_q", e_quant_kind},      {"f32 with quant", "'x'", e_f32_quant},
    {"i8 without quant", "y_q", e_i8_no_quant}, {"i8 data size", "conv.w", e_i8_size},
    {"i32 data size", "conv.b", e_i32_size},    {"i32 not constant", "conv.b", e_i32_not_const},
    {"i32 zero point", "conv.b", e_i32_zp},     {"dtype f16", "x_q", e_dtype_f16},
};

static void test_hostile_quant_records(void **state) {
    (void)state;
    k_nan = NAN;
    for (size_t i = 0; i < sizeof k_hostile / sizeof k_hostile[0]; i++) {
        mdl m;
        mdl_init(&m);
        k_hostile[i].edit(&m);
        sqz_model *model = (sqz_model *)1;
        sqz_status st;
        sqz_code rc = load(&m, 3, &model, &st);
        if (rc == SQZ_OK || !strstr(st.msg, k_hostile[i].tensor)) {
            fprintf(stderr, "case '%s': rc %d msg '%s'\n", k_hostile[i].what, rc, st.msg);
            fail();
        }
        assert_null(model);
    }
}

/* Kernel-level refusals surface at session creation, naming the node. */
static void test_session_refusals(void **state) {
    (void)state;
    struct {
        const char *what, *needle;
        int edit;
    } cases[] = {
        {"weight -128", "-128", 0},
        {"weight zero point", "zero point", 1},
        {"fused sigmoid", "activation", 2},
        {"bias too large", "overflow", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mdl m;
        mdl_init(&m);
        static const int64_t sig = SQZ_ACT_SIGMOID;
        switch (cases[i].edit) {
        case 0:
            m.w[5] = -128;
            break;
        case 1:
            m.zw[2] = 1;
            break;
        case 2:
            m.conv_attrs[2].ints = &sig;
            break;
        case 3:
            m.b[1] = 2147483000;
            break;
        }
        sqz_model *model = NULL;
        sqz_status st;
        assert_int_equal(load(&m, 3, &model, &st), SQZ_OK);
        sqz_session *s = (sqz_session *)1;
        sqz_code rc = sqz_session_create(model, NULL, &s, &st);
        if (rc == SQZ_OK || !strstr(st.msg, "conv") || !strstr(st.msg, cases[i].needle)) {
            fprintf(stderr, "case '%s': rc %d msg '%s'\n", cases[i].what, rc, st.msg);
            fail();
        }
        assert_null(s);
        sqz_model_free(model);
    }
}

/* An f32-only op fed with i8 data is refused by name (no silent misread). */
static void test_no_int8_kernel(void **state) {
    (void)state;
    mdl m;
    mdl_init(&m);
    m.n[1].op = SQZ_OP_SOFTMAX; /* (Sigmoid has an int8 table kernel) */
    m.n[1].n_in = 1;
    m.n[1].n_attr = 0;
    m.t[T_YQ].dims[1] = CIN;
    m.t[T_Y].dims[1] = CIN;
    sqz_model *model = NULL;
    sqz_status st;
    assert_int_equal(load(&m, 3, &model, &st), SQZ_OK);
    sqz_session *s = NULL;
    assert_int_not_equal(sqz_session_create(model, NULL, &s, &st), SQZ_OK);
    assert_non_null(strstr(st.msg, "no int8 kernel"));
    assert_non_null(strstr(st.msg, "conv"));
    sqz_model_free(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantized_conv_model),  cmocka_unit_test(test_int8_graph_io),
        cmocka_unit_test(test_hostile_quant_records), cmocka_unit_test(test_session_refusals),
        cmocka_unit_test(test_no_int8_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
