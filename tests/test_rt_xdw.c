/* test_rt_xdw.c - fused expansion + depthwise conv (kernels/xdw.h, the
 * executor's fuse_expand_dw): the kernel against a double-precision
 * reference on odd shapes (k 3 / 5, stride 1 / 2, pads, activations, bands
 * from the minimum to the whole plane, 1 and 2 threads), and a Conv 1x1 ->
 * depthwise graph whose fused session equals the unfused one within float
 * rounding and reports the 1x1 conv as not run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sqz/sqz.h"
#include "sqzbuild.h"
#include "testutil.h"
#include "xdw.h"

typedef struct xcase {
    int K, M, H, W, k, s, pad;
    int act1, act2;
} xcase;

/* larger of a and |b| (plain compare: gcc 12 for aarch64 crashed vectorising
 * an fmax reduction here) */
static double max_abs(double a, double b) {
    b = b < 0 ? -b : b;
    return b > a ? b : a;
}

static double act_d(int act, double v) {
    if (act == SQZ_ACT_RELU) return v > 0 ? v : 0;
    if (act == SQZ_ACT_CLIP) return v < 0 ? 0 : v > 6 ? 6 : v;
    return v;
}

/* Y from X by the definition (xdw.h), in double */
static void reference(const xcase *c, const float *X, const float *w1, const float *b1,
                      const float *wd, const float *bd, int OH, int OW, double *Y) {
    const int HW = c->H * c->W;
    double *E = malloc((size_t)c->M * HW * sizeof *E);
    assert_non_null(E);
    for (int m = 0; m < c->M; m++)
        for (int p = 0; p < HW; p++) {
            double v = b1[m];
            for (int q = 0; q < c->K; q++) v += (double)w1[m * c->K + q] * X[q * HW + p];
            E[(size_t)m * HW + p] = act_d(c->act1, v);
        }
    for (int m = 0; m < c->M; m++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                double v = bd[m];
                for (int i = 0; i < c->k; i++)
                    for (int j = 0; j < c->k; j++) {
                        int iy = oy * c->s - c->pad + i, ix = ox * c->s - c->pad + j;
                        if (iy < 0 || iy >= c->H || ix < 0 || ix >= c->W) continue;
                        v += (double)wd[(m * c->k + i) * c->k + j] *
                             E[(size_t)m * HW + iy * c->W + ix];
                    }
                Y[((size_t)m * OH + oy) * OW + ox] = act_d(c->act2, v);
            }
    free(E);
}

static const xcase CASES[] = {
    {16, 24, 17, 23, 3, 2, 1, SQZ_ACT_CLIP, SQZ_ACT_CLIP},
    {8, 40, 20, 56, 3, 1, 1, SQZ_ACT_RELU, SQZ_ACT_NONE},
    {5, 33, 9, 13, 5, 1, 2, SQZ_ACT_NONE, SQZ_ACT_RELU},
    {7, 17, 12, 30, 5, 2, 2, SQZ_ACT_CLIP, SQZ_ACT_CLIP},
    {3, 9, 4, 5, 3, 1, 1, SQZ_ACT_RELU, SQZ_ACT_RELU},
    {24, 48, 29, 71, 3, 2, 0, SQZ_ACT_CLIP, SQZ_ACT_NONE},
    {5, 19, 11, 141, 3, 2, 1, SQZ_ACT_RELU, SQZ_ACT_CLIP},
};

static void test_kernel(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 11);
    const char *bands[] = {"1", NULL}; /* 1 byte: the fewest rows a band can hold */
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        const xcase *c = &CASES[ci];
        const int OH = (c->H + 2 * c->pad - c->k) / c->s + 1;
        const int OW = (c->W + 2 * c->pad - c->k) / c->s + 1;
        const size_t nx = (size_t)c->K * c->H * c->W, ny = (size_t)c->M * OH * OW;
        float *X = malloc(nx * 4), *w1 = malloc((size_t)c->M * c->K * 4), *b1 = malloc(c->M * 4),
              *wd = malloc((size_t)c->M * c->k * c->k * 4), *bd = malloc(c->M * 4),
              *Y = malloc(ny * 4);
        double *R = malloc(ny * sizeof *R);
        assert_true(X && w1 && b1 && wd && bd && Y && R);
        tu_fill_uniform(&r, X, nx, -1, 1);
        tu_fill_uniform(&r, w1, (size_t)c->M * c->K, -0.6f, 0.6f);
        tu_fill_uniform(&r, b1, c->M, -0.5f, 1.5f);
        tu_fill_uniform(&r, wd, (size_t)c->M * c->k * c->k, -0.5f, 0.5f);
        tu_fill_uniform(&r, bd, c->M, -0.5f, 0.5f);
        reference(c, X, w1, b1, wd, bd, OH, OW, R);
        double scale = 1e-3;
        for (size_t i = 0; i < ny; i++) scale = max_abs(scale, R[i]);
        for (int bi = 0; bi < 2; bi++)
            for (int nt = 1; nt <= 2; nt++) {
                if (bands[bi])
                    setenv("SQZ_XDW_BAND_BYTES", bands[bi], 1);
                else
                    unsetenv("SQZ_XDW_BAND_BYTES");
                sqz_xdw_desc d = {c->K, c->M, c->H,   c->W,   w1, b1, c->act1, 0.0f, 6.0f, wd, bd,
                                  c->k, c->s, c->pad, c->pad, OH, OW, c->act2, 0.0f, 6.0f, nt};
                sqz_xdw *x;
                size_t sb;
                assert_int_equal(sqz_xdw_create(&d, &x, &sb), 0);
                void *scratch = aligned_alloc(64, (sb + 63) / 64 * 64);
                assert_non_null(scratch);
                for (size_t i = 0; i < ny; i++) Y[i] = NAN;
                sqz_xdw_run(x, X, Y, scratch);
                double err = 0;
                for (size_t i = 0; i < ny; i++) err = max_abs(err, Y[i] - R[i]);
                if (!(err <= 2e-6 * scale))
                    fail_msg("case %zu band %s threads %d: max error %g (scale %g)", ci,
                             bands[bi] ? bands[bi] : "default", nt, err, scale);
                assert_int_equal(sqz_xdw_macs(x),
                                 (uint64_t)c->M * c->K * c->H * c->W + (uint64_t)ny * c->k * c->k);
                free(scratch);
                sqz_xdw_free(x);
            }
        unsetenv("SQZ_XDW_BAND_BYTES");
        free(X), free(w1), free(b1), free(wd), free(bd), free(Y), free(R);
    }
}

/* what create declines: 7x7, stride 3, padding past the kernel */
static void test_declines(void **state) {
    (void)state;
    float w[64] = {0};
    sqz_xdw_desc d = {4, 4, 8, 8, w, NULL, 0, 0, 0, w, NULL, 7, 1, 3, 3, 8, 8, 0, 0, 0, 1};
    sqz_xdw *x = (sqz_xdw *)&d;
    size_t sb = 1;
    assert_int_equal(sqz_xdw_create(&d, &x, &sb), 1);
    assert_null(x);
    d.k = 3;
    d.stride = 3;
    assert_int_equal(sqz_xdw_create(&d, &x, &sb), 1);
    d.stride = 1;
    d.pt = 3;
    assert_int_equal(sqz_xdw_create(&d, &x, &sb), 1);
    d.pt = 1;
    d.act2 = SQZ_ACT_SIGMOID;
    assert_int_equal(sqz_xdw_create(&d, &x, &sb), 1);
}

/* x -> Conv 1x1 (ReLU6) -> depthwise 3x3 s2 pad 1 -> y, 20 x 34 planes */
enum { T_X, T_W1, T_B1, T_E, T_WD, T_BD, T_Y, NT };
enum { K = 6, M = 20, H = 20, W = 34, OH = 10, OW = 17 };
static float W1[M * K], B1[M], WD[M * 9], BD[M];

static uint8_t *build(size_t *size) {
    sb_tensor t[NT];
    memset(t, 0, sizeof t);
    t[T_X] = (sb_tensor){
        .name = "x", .dtype = SQZ_DT_F32, .flags = SQZ_TF_INPUT, .ndim = 4, .dims = {1, K, H, W}};
    t[T_W1] = (sb_tensor){.name = "w1",
                          .dtype = SQZ_DT_F32,
                          .flags = SQZ_TF_CONST,
                          .ndim = 4,
                          .dims = {M, K, 1, 1},
                          .data = W1,
                          .data_bytes = sizeof W1};
    t[T_B1] = (sb_tensor){.name = "b1",
                          .dtype = SQZ_DT_F32,
                          .flags = SQZ_TF_CONST,
                          .ndim = 1,
                          .dims = {M},
                          .data = B1,
                          .data_bytes = sizeof B1};
    t[T_E] = (sb_tensor){.name = "e", .dtype = SQZ_DT_F32, .ndim = 4, .dims = {1, M, H, W}};
    t[T_WD] = (sb_tensor){.name = "wd",
                          .dtype = SQZ_DT_F32,
                          .flags = SQZ_TF_CONST,
                          .ndim = 4,
                          .dims = {M, 1, 3, 3},
                          .data = WD,
                          .data_bytes = sizeof WD};
    t[T_BD] = (sb_tensor){.name = "bd",
                          .dtype = SQZ_DT_F32,
                          .flags = SQZ_TF_CONST,
                          .ndim = 1,
                          .dims = {M},
                          .data = BD,
                          .data_bytes = sizeof BD};
    t[T_Y] = (sb_tensor){.name = "y",
                         .dtype = SQZ_DT_F32,
                         .flags = SQZ_TF_OUTPUT,
                         .ndim = 4,
                         .dims = {1, M, OH, OW}};
    static int64_t k1[2] = {1, 1}, one[2] = {1, 1}, zero4[4] = {0, 0, 0, 0}, g1 = 1, act = 2;
    static float lo = 0.0f, hi = 6.0f;
    static int64_t k3[2] = {3, 3}, s2[2] = {2, 2}, p1[4] = {1, 1, 1, 1}, gm = M;
    static const sb_attr a1[] = {
        {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k1},
        {.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = one},
        {.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = zero4},
        {.name = "group", .type = SQZ_ATTR_INT, .count = 1, .ints = &g1},
        {.name = "sqz_act", .type = SQZ_ATTR_INT, .count = 1, .ints = &act},
        {.name = "sqz_act_alpha", .type = SQZ_ATTR_FLOAT, .count = 1, .floats = &lo},
        {.name = "sqz_act_beta", .type = SQZ_ATTR_FLOAT, .count = 1, .floats = &hi}};
    static const sb_attr a2[] = {
        {.name = "kernel_shape", .type = SQZ_ATTR_INTS, .count = 2, .ints = k3},
        {.name = "strides", .type = SQZ_ATTR_INTS, .count = 2, .ints = s2},
        {.name = "pads", .type = SQZ_ATTR_INTS, .count = 4, .ints = p1},
        {.name = "group", .type = SQZ_ATTR_INT, .count = 1, .ints = &gm}};
    static const int32_t i1[] = {T_X, T_W1, T_B1}, o1[] = {T_E}, i2[] = {T_E, T_WD, T_BD},
                         o2[] = {T_Y};
    sb_node n[2] = {{SQZ_OP_CONV, "expand", 3, 1, 7, i1, o1, a1},
                    {SQZ_OP_CONV, "dw", 3, 1, 4, i2, o2, a2}};
    int32_t gin[1] = {T_X}, gout[1] = {T_Y};
    return sb_build(t, NT, n, 2, gin, 1, gout, 1, size);
}

/* outputs of one session; *skipped: the expansion reported as not run */
static float *run_graph(const uint8_t *file, size_t size, int nt, const float *x, int *skipped) {
    sqz_model *m;
    sqz_status st;
    if (sqz_model_load_buffer(file, size, &m, &st) != SQZ_OK) fail_msg("load: %s", st.msg);
    sqz_session_options o = {nt, NULL, 0};
    sqz_session *s;
    if (sqz_session_create(m, &o, &s, &st) != SQZ_OK) fail_msg("session: %s", st.msg);
    float *y = malloc(M * OH * OW * sizeof *y);
    assert_non_null(y);
    for (int rep = 0; rep < 2; rep++) {
        assert_int_equal(sqz_session_set_input(s, 0, x, K * H * W, &st), SQZ_OK);
        assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
    }
    const float *out;
    assert_int_equal(sqz_session_output(s, 0, &out, NULL, &st), SQZ_OK);
    memcpy(y, out, M * OH * OW * sizeof *y);
    sqz_node_info info;
    sqz_session_node_info(s, 0, &info);
    *skipped = info.skipped;
    sqz_session_free(s);
    sqz_model_free(m);
    return y;
}

static void test_graph(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 5);
    tu_fill_uniform(&r, W1, M * K, -0.7f, 0.7f);
    tu_fill_uniform(&r, B1, M, -0.5f, 1.0f);
    tu_fill_uniform(&r, WD, M * 9, -0.5f, 0.5f);
    tu_fill_uniform(&r, BD, M, -0.3f, 0.3f);
    float x[K * H * W];
    tu_fill_uniform(&r, x, K * H * W, -2, 2);
    size_t size;
    uint8_t *file = build(&size);
    assert_non_null(file);
    for (int nt = 1; nt <= 2; nt++) {
        int sk0, sk1, sk2;
        setenv("SQZ_FUSE_CONV", "0", 1);
        float *y0 = run_graph(file, size, nt, x, &sk0);
        unsetenv("SQZ_FUSE_CONV");
        /* default: this 54 KB tensor is below the size that fuses */
        float *y1 = run_graph(file, size, nt, x, &sk1);
        setenv("SQZ_XDW_MIN", "0", 1);
        float *y2 = run_graph(file, size, nt, x, &sk2);
        unsetenv("SQZ_XDW_MIN");
        assert_int_equal(sk0, 0);
        assert_int_equal(sk1, 0);
        assert_int_equal(sk2, 1);
        double scale = 1e-3;
        for (int i = 0; i < M * OH * OW; i++) scale = max_abs(scale, y0[i]);
        assert_true(tu_max_abs_diff(y0, y1, M * OH * OW) == 0.0);
        assert_true(tu_max_abs_diff(y0, y2, M * OH * OW) <= 1e-6 * scale);
        free(y0), free(y1), free(y2);
    }
    free(file);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel),
        cmocka_unit_test(test_declines),
        cmocka_unit_test(test_graph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
