/* test_rt_kernels.c - the scalar reference kernels against hand-computed
 * answers and naive loop references written independently here. */
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
#include "test_node.h"

/* ---------------------------------------------------------------- harness */

#define I64S(...) ((const int64_t[]){__VA_ARGS__})
#define NARGS(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define TN_INTS(t, name, ...) tn_ints(t, name, NARGS(__VA_ARGS__), I64S(__VA_ARGS__))

static sqz_shape shp(int nd, const int64_t *d) {
    sqz_shape s;
    memset(&s, 0, sizeof(s));
    s.ndim = nd;
    for (int i = 0; i < nd; i++) s.dims[i] = d[i];
    return s;
}
#define SHP(...) shp(NARGS(__VA_ARGS__), I64S(__VA_ARGS__))

static sqz_shape absent_shape(void) {
    sqz_shape s;
    memset(&s, 0, sizeof(s));
    s.ndim = -1;
    return s;
}

typedef struct run_res {
    int rc;
    char err[256];
    uint32_t n_out;
    sqz_shape shape[4];
    float *out[4];
    uint64_t macs;
} run_res;

static size_t numel(const sqz_shape *s) {
    return (size_t)sqz_shape_numel(s);
}

/* prepare + run + release through the reference table. */
static void run_op(tnode *t, uint32_t n_in, const sqz_shape *in_shape, const float *const *in_data,
                   uint32_t n_out, run_res *r) {
    memset(r, 0, sizeof(*r));
    const sqz_op_impl *impl = sqz_ref_op(t->node.op);
    assert_non_null(impl);
    int32_t ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    t->node.n_inputs = n_in;
    t->node.n_outputs = n_out;
    t->node.inputs = ids;
    t->node.outputs = ids;
    sqz_op_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.node = &t->node;
    ctx.n_in = n_in;
    ctx.n_out = n_out;
    ctx.in_shape = in_shape;
    const float *none[8] = {0};
    ctx.in_data = none;
    ctx.out_shape = r->shape;
    ctx.err = r->err;
    ctx.err_len = sizeof(r->err);
    ctx.num_threads = 1;
    r->n_out = n_out;
    r->rc = impl->prepare(&ctx);
    if (r->rc != 0) {
        assert_true(strlen(r->err) > 0);
        assert_null(ctx.params);
        return;
    }
    for (uint32_t i = 0; i < n_out; i++) {
        size_t n = numel(&r->shape[i]);
        r->out[i] = malloc((n ? n : 1) * sizeof(float));
        assert_non_null(r->out[i]);
        for (size_t j = 0; j < n; j++) r->out[i][j] = NAN; /* catch unwritten elements */
    }
    void *scratch = NULL;
    if (ctx.scratch_bytes) {
        scratch = aligned_alloc(64, (ctx.scratch_bytes + 63) / 64 * 64);
        assert_non_null(scratch);
    }
    ctx.scratch = scratch;
    ctx.in_data = in_data;
    ctx.out_data = r->out;
    impl->run(&ctx);
    if (impl->macs) r->macs = impl->macs(&ctx);
    if (impl->release) impl->release(ctx.params);
    free(scratch);
}

static void res_free(run_res *r) {
    for (int i = 0; i < 4; i++) free(r->out[i]);
}

static void expect_fail(tnode *t, uint32_t n_in, const sqz_shape *in_shape, uint32_t n_out,
                        const char *needle) {
    run_res r;
    run_op(t, n_in, in_shape, NULL, n_out, &r);
    assert_int_equal(r.rc, -1);
    if (!strstr(r.err, needle)) fail_msg("message \"%s\" lacks \"%s\"", r.err, needle);
}

static void assert_shape(const sqz_shape *s, int nd, const int64_t *d) {
    assert_int_equal(s->ndim, nd);
    for (int i = 0; i < nd; i++) assert_int_equal(s->dims[i], d[i]);
}
#define ASSERT_SHAPE(s, ...) assert_shape(s, NARGS(__VA_ARGS__), I64S(__VA_ARGS__))

static void assert_close(const float *got, const float *want, size_t n, double tol) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= tol)) fail_msg("element %zu: got %.7g want %.7g", i, got[i], want[i]);
    }
}

static float *rand_buf(tu_rng *rng, size_t n, float lo, float hi) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    tu_fill_uniform(rng, p, n, lo, hi);
    return p;
}

/* ------------------------------------------------------------- ops.c API */

static void test_names_and_table(void **state) {
    (void)state;
    for (int op = 1; op < SQZ_OP_COUNT_; op++) {
        const char *n = sqz_op_name(op);
        assert_non_null(n);
        assert_int_equal(sqz_op_from_name(n), op);
        const sqz_op_impl *impl = sqz_ref_op(op);
        assert_non_null(impl);
        assert_non_null(impl->prepare);
        assert_non_null(impl->run);
    }
    assert_string_equal(sqz_op_name(SQZ_OP_BATCHNORM), "BatchNormalization");
    assert_string_equal(sqz_op_name(SQZ_OP_GLOBAL_AVGPOOL), "GlobalAveragePool");
    assert_int_equal(sqz_op_from_name("ConvTranspose"), SQZ_OP_CONV_TRANSPOSE);
    assert_int_equal(sqz_op_from_name("conv"), SQZ_OP_INVALID);
    assert_int_equal(sqz_op_from_name("LSTM"), SQZ_OP_INVALID);
    assert_int_equal(sqz_op_from_name(NULL), SQZ_OP_INVALID);
    assert_null(sqz_op_name(0));
    assert_null(sqz_op_name(SQZ_OP_COUNT_));
    assert_null(sqz_op_name(-3));
    assert_null(sqz_ref_op(0));
    assert_null(sqz_ref_op(SQZ_OP_COUNT_));
}

static void test_attrs(void **state) {
    (void)state;
    tnode t;
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    tn_int(&t, "group", 4);
    tn_float(&t, "alpha", 0.25f);
    TN_INTS(&t, "pads", 1, 2, 3, 4);
    tn_floats(&t, "scales", 2, (const float[]){1.5f, 2.0f});
    tn_str(&t, "mode", "linear");
    assert_int_equal(sqz_attr_int(&t.node, "group", 1), 4);
    assert_int_equal(sqz_attr_int(&t.node, "missing", 7), 7);
    assert_true(sqz_attr_float(&t.node, "alpha", 0.0f) == 0.25f);
    assert_true(sqz_attr_float(&t.node, "nope", 3.5f) == 3.5f);
    assert_string_equal(sqz_attr_str(&t.node, "mode", "x"), "linear");
    assert_string_equal(sqz_attr_str(&t.node, "nomode", "x"), "x");
    assert_string_equal(sqz_attr_str(&t.node, "group", "dflt"), "dflt"); /* wrong type */
    const int64_t *iv;
    assert_int_equal(sqz_attr_ints(&t.node, "pads", &iv), 4);
    assert_int_equal(iv[3], 4);
    assert_int_equal(sqz_attr_ints(&t.node, "group", &iv), 1); /* INT answers as ints */
    assert_int_equal(iv[0], 4);
    assert_int_equal(sqz_attr_ints(&t.node, "missing", &iv), -1);
    assert_null(iv);
    assert_int_equal(sqz_attr_ints(&t.node, "alpha", &iv), -1); /* FLOAT is not ints */
    const float *fv;
    assert_int_equal(sqz_attr_floats(&t.node, "scales", &fv), 2);
    assert_true(fv[1] == 2.0f);
    assert_int_equal(sqz_attr_floats(&t.node, "alpha", &fv), 1);
    assert_true(fv[0] == 0.25f);
    assert_int_equal(sqz_attr_floats(&t.node, "pads", &fv), -1);
    assert_non_null(sqz_node_attr(&t.node, "mode"));
    assert_null(sqz_node_attr(&t.node, "modes"));

    sqz_shape s = SHP(2, 3, 4);
    assert_int_equal(sqz_shape_numel(&s), 24);
    s.ndim = 0;
    assert_int_equal(sqz_shape_numel(&s), 1);

    char buf[32];
    sqz_op_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.err = buf;
    ctx.err_len = sizeof(buf);
    assert_int_equal(sqz_op_fail(&ctx, "bad %s=%d", "group", 3), -1);
    assert_string_equal(buf, "bad group=3");
    /* truncation stays in bounds */
    assert_int_equal(sqz_op_fail(&ctx, "%s", "0123456789012345678901234567890123456789"), -1);
    assert_int_equal(strlen(buf), 31);
}

/* ------------------------------------------------------------------- Conv */

/* Naive direct convolution over up to 3 spatial dims (padded to 3). */
typedef struct cgeo {
    int64_t N, C, M, G, in[3], k[3], s[3], d[3], pb[3], out[3];
} cgeo;

static void naive_conv(const cgeo *g, const float *x, const float *w, const float *b, float *y) {
    int64_t Cg = g->C / g->G, Mg = g->M / g->G;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t m = 0; m < g->M; m++)
            for (int64_t o0 = 0; o0 < g->out[0]; o0++)
                for (int64_t o1 = 0; o1 < g->out[1]; o1++)
                    for (int64_t o2 = 0; o2 < g->out[2]; o2++) {
                        double acc = b ? b[m] : 0.0;
                        int64_t grp = m / Mg;
                        for (int64_t c = 0; c < Cg; c++)
                            for (int64_t k0 = 0; k0 < g->k[0]; k0++)
                                for (int64_t k1 = 0; k1 < g->k[1]; k1++)
                                    for (int64_t k2 = 0; k2 < g->k[2]; k2++) {
                                        int64_t i0 = o0 * g->s[0] - g->pb[0] + k0 * g->d[0];
                                        int64_t i1 = o1 * g->s[1] - g->pb[1] + k1 * g->d[1];
                                        int64_t i2 = o2 * g->s[2] - g->pb[2] + k2 * g->d[2];
                                        if (i0 < 0 || i0 >= g->in[0] || i1 < 0 || i1 >= g->in[1] ||
                                            i2 < 0 || i2 >= g->in[2])
                                            continue;
                                        int64_t ci = grp * Cg + c;
                                        double xv =
                                            x[(((n * g->C + ci) * g->in[0] + i0) * g->in[1] + i1) *
                                                  g->in[2] +
                                              i2];
                                        double wv =
                                            w[(((m * Cg + c) * g->k[0] + k0) * g->k[1] + k1) *
                                                  g->k[2] +
                                              k2];
                                        acc += xv * wv;
                                    }
                        y[(((n * g->M + m) * g->out[0] + o0) * g->out[1] + o1) * g->out[2] + o2] =
                            (float)acc;
                    }
}

/* ONNX's documented example: 5x5 ramp, 3x3 ones, pads 1. */
static void test_conv_basic_example(void **state) {
    (void)state;
    float x[25], w[9];
    for (int i = 0; i < 25; i++) x[i] = (float)i;
    for (int i = 0; i < 9; i++) w[i] = 1.0f;
    tnode t;
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    TN_INTS(&t, "kernel_shape", 3, 3);
    TN_INTS(&t, "pads", 1, 1, 1, 1);
    sqz_shape in[2] = {SHP(1, 1, 5, 5), SHP(1, 1, 3, 3)};
    const float *data[2] = {x, w};
    run_res r;
    run_op(&t, 2, in, data, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 1, 5, 5);
    static const float want[25] = {12,  21, 27, 33,  24,  33,  54,  63, 72,  51,  63,  99, 108,
                                   117, 81, 93, 144, 153, 162, 111, 72, 111, 117, 123, 84};
    assert_close(r.out[0], want, 25, 0);
    assert_int_equal(r.macs, 25 * 9);
    res_free(&r);

    /* no padding, stride 2 with asymmetric pads (ONNX conv_with_strides_and_asymmetric_padding) */
    float x2[35];
    for (int i = 0; i < 35; i++) x2[i] = (float)i;
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    TN_INTS(&t, "strides", 2, 2);
    TN_INTS(&t, "pads", 1, 0, 1, 0);
    sqz_shape in2[2] = {SHP(1, 1, 7, 5), SHP(1, 1, 3, 3)};
    const float *data2[2] = {x2, w};
    run_op(&t, 2, in2, data2, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 1, 4, 2);
    static const float want2[8] = {21, 33, 99, 117, 189, 207, 171, 183};
    assert_close(r.out[0], want2, 8, 0);
    res_free(&r);
}

typedef struct conv_case {
    int nd;
    int64_t N, C, M, G, in[3], k[3], s[3], d[3], pb[3], pe[3];
    const char *auto_pad;
    int bias, act;
} conv_case;

static void check_conv_case(tu_rng *rng, const conv_case *cc) {
    cgeo g;
    memset(&g, 0, sizeof(g));
    g.N = cc->N;
    g.C = cc->C;
    g.M = cc->M;
    g.G = cc->G;
    int off = 3 - cc->nd;
    for (int i = 0; i < 3; i++) {
        g.in[i] = g.k[i] = g.s[i] = g.d[i] = 1;
        g.pb[i] = 0;
    }
    int64_t pe[3] = {0, 0, 0};
    for (int i = 0; i < cc->nd; i++) {
        g.in[off + i] = cc->in[i];
        g.k[off + i] = cc->k[i];
        g.s[off + i] = cc->s[i];
        g.d[off + i] = cc->d[i];
        g.pb[off + i] = cc->pb[i];
        pe[off + i] = cc->pe[i];
    }
    for (int i = 0; i < 3; i++) {
        int64_t dk = (g.k[i] - 1) * g.d[i] + 1;
        if (cc->auto_pad && strncmp(cc->auto_pad, "SAME", 4) == 0) {
            g.out[i] = (g.in[i] + g.s[i] - 1) / g.s[i];
            int64_t tot = (g.out[i] - 1) * g.s[i] + dk - g.in[i];
            if (tot < 0) tot = 0;
            g.pb[i] = strcmp(cc->auto_pad, "SAME_UPPER") == 0 ? tot / 2 : (tot + 1) / 2;
        } else {
            g.out[i] = (g.in[i] + g.pb[i] + pe[i] - dk) / g.s[i] + 1;
        }
    }
    int64_t Cg = g.C / g.G;
    size_t nx = (size_t)(g.N * g.C * g.in[0] * g.in[1] * g.in[2]);
    size_t nw = (size_t)(g.M * Cg * g.k[0] * g.k[1] * g.k[2]);
    size_t ny = (size_t)(g.N * g.M * g.out[0] * g.out[1] * g.out[2]);
    float *x = rand_buf(rng, nx, -1, 1), *w = rand_buf(rng, nw, -1, 1);
    float *b = rand_buf(rng, (size_t)g.M, -1, 1), *want = rand_buf(rng, ny, 0, 0);
    naive_conv(&g, x, w, cc->bias ? b : NULL, want);
    if (cc->act == SQZ_ACT_RELU)
        for (size_t i = 0; i < ny; i++) want[i] = want[i] > 0 ? want[i] : 0;
    if (cc->act == SQZ_ACT_CLIP)
        for (size_t i = 0; i < ny; i++) want[i] = fminf(fmaxf(want[i], -0.5f), 0.75f);

    tnode t;
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    tn_int(&t, "group", cc->G);
    tn_ints(&t, "strides", cc->nd, cc->s);
    tn_ints(&t, "dilations", cc->nd, cc->d);
    if (cc->auto_pad) {
        tn_str(&t, "auto_pad", cc->auto_pad);
    } else {
        int64_t pads[6];
        for (int i = 0; i < cc->nd; i++) {
            pads[i] = cc->pb[i];
            pads[cc->nd + i] = cc->pe[i];
        }
        tn_ints(&t, "pads", 2 * cc->nd, pads);
    }
    if (cc->act) {
        tn_int(&t, "sqz_act", cc->act);
        tn_float(&t, "sqz_act_alpha", -0.5f);
        tn_float(&t, "sqz_act_beta", 0.75f);
    }
    sqz_shape in[3];
    in[0].ndim = in[1].ndim = cc->nd + 2;
    in[0].dims[0] = g.N;
    in[0].dims[1] = g.C;
    in[1].dims[0] = g.M;
    in[1].dims[1] = Cg;
    for (int i = 0; i < cc->nd; i++) {
        in[0].dims[2 + i] = cc->in[i];
        in[1].dims[2 + i] = cc->k[i];
    }
    in[2] = SHP(g.M);
    const float *data[3] = {x, w, b};
    run_res r;
    run_op(&t, cc->bias ? 3 : 2, in, data, 1, &r);
    if (r.rc != 0) fail_msg("prepare failed: %s", r.err);
    assert_int_equal(r.shape[0].ndim, cc->nd + 2);
    for (int i = 0; i < cc->nd; i++) assert_int_equal(r.shape[0].dims[2 + i], g.out[off + i]);
    assert_int_equal(numel(&r.shape[0]), ny);
    assert_true(tu_max_abs_diff(r.out[0], want, ny) < 1e-4);
    assert_int_equal(r.macs, (uint64_t)(ny * (nw / (size_t)g.M)));
    res_free(&r);
    free(x);
    free(w);
    free(b);
    free(want);
}

static void test_conv_vs_naive(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 1234);
    static const conv_case cases[] = {
        /* nd N C M G in k s d pb pe auto_pad bias act */
        {2, 1, 3, 4, 1, {7, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, NULL, 1, 0},
        {2, 2, 4, 6, 2, {9, 8}, {3, 2}, {2, 1}, {1, 2}, {0, 1}, {2, 0}, NULL, 1, SQZ_ACT_RELU},
        {2, 1, 6, 6, 6, {8, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, NULL, 1, 0}, /* dw */
        {2, 1, 5, 7, 1, {5, 5}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, NULL, 0, SQZ_ACT_CLIP},
        {2, 1, 5, 3, 1, {6, 7}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, NULL, 1, 0},
        {2, 1, 2, 3, 1, {7, 8}, {3, 3}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, "SAME_UPPER", 0, 0},
        {2, 1, 2, 3, 1, {7, 8}, {4, 4}, {2, 3}, {1, 1}, {0, 0}, {0, 0}, "SAME_LOWER", 1, 0},
        {2, 1, 2, 2, 1, {6, 6}, {3, 3}, {1, 2}, {2, 1}, {0, 0}, {0, 0}, "VALID", 1, 0},
        {2, 1, 8, 4, 4, {5, 5}, {3, 3}, {1, 1}, {2, 2}, {2, 2}, {2, 2}, NULL, 1, 0},
        {1, 2, 3, 5, 1, {11}, {3}, {2}, {2}, {1}, {2}, NULL, 1, 0},
        {3,
         1,
         2,
         3,
         1,
         {4, 5, 6},
         {2, 3, 3},
         {1, 2, 1},
         {1, 1, 2},
         {1, 0, 1},
         {0, 1, 2},
         NULL,
         1,
         0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) check_conv_case(&rng, &cases[i]);
}

static void test_conv_refusals(void **state) {
    (void)state;
    tnode t;
    sqz_shape in[2] = {SHP(1, 4, 5, 5), SHP(2, 4, 3, 3)};
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    tn_int(&t, "group", 3);
    expect_fail(&t, 2, in, 1, "group=3");
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    tn_str(&t, "auto_pad", "SAME_WEIRD");
    expect_fail(&t, 2, in, 1, "auto_pad");
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    TN_INTS(&t, "kernel_shape", 5, 5);
    expect_fail(&t, 2, in, 1, "kernel_shape");
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    TN_INTS(&t, "strides", 0, 1);
    expect_fail(&t, 2, in, 1, "strides");
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    tn_int(&t, "sqz_act", 99);
    expect_fail(&t, 2, in, 1, "sqz_act");
    tn_init(&t, SQZ_OP_CONV, "test", 1);
    expect_fail(&t, 1, in, 1, "inputs");
}

/* ---------------------------------------------------------- ConvTranspose */

static void naive_convt(const cgeo *g, const float *x, const float *w, const float *b, float *y) {
    /* g->in = input spatial, g->out = output spatial, g->pb = begin pad */
    int64_t Cg = g->C / g->G, Mg = g->M / g->G;
    size_t ny = (size_t)(g->N * g->M * g->out[0] * g->out[1] * g->out[2]);
    int64_t osp = g->out[0] * g->out[1] * g->out[2];
    for (size_t i = 0; i < ny; i++) y[i] = b ? b[(int64_t)(i / (size_t)osp) % g->M] : 0.0f;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t i0 = 0; i0 < g->in[0]; i0++)
                for (int64_t i1 = 0; i1 < g->in[1]; i1++)
                    for (int64_t i2 = 0; i2 < g->in[2]; i2++) {
                        float xv =
                            x[(((n * g->C + c) * g->in[0] + i0) * g->in[1] + i1) * g->in[2] + i2];
                        int64_t grp = c / Cg;
                        for (int64_t mo = 0; mo < Mg; mo++)
                            for (int64_t k0 = 0; k0 < g->k[0]; k0++)
                                for (int64_t k1 = 0; k1 < g->k[1]; k1++)
                                    for (int64_t k2 = 0; k2 < g->k[2]; k2++) {
                                        int64_t o0 = i0 * g->s[0] + k0 * g->d[0] - g->pb[0];
                                        int64_t o1 = i1 * g->s[1] + k1 * g->d[1] - g->pb[1];
                                        int64_t o2 = i2 * g->s[2] + k2 * g->d[2] - g->pb[2];
                                        if (o0 < 0 || o0 >= g->out[0] || o1 < 0 ||
                                            o1 >= g->out[1] || o2 < 0 || o2 >= g->out[2])
                                            continue;
                                        int64_t m = grp * Mg + mo;
                                        float wv =
                                            w[(((c * Mg + mo) * g->k[0] + k0) * g->k[1] + k1) *
                                                  g->k[2] +
                                              k2];
                                        y[(((n * g->M + m) * g->out[0] + o0) * g->out[1] + o1) *
                                              g->out[2] +
                                          o2] += xv * wv;
                                    }
                    }
}

static void test_conv_transpose(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 77);
    /* 2-D, groups 2, strides (3,2), dilations (1,2), pads, output_padding */
    cgeo g = {.N = 2, .C = 4, .M = 6, .G = 2};
    int64_t in[2] = {3, 4}, k[2] = {3, 2}, s[2] = {3, 2}, d[2] = {1, 2}, pads[4] = {1, 0, 0, 1},
            op[2] = {1, 0};
    for (int i = 0; i < 3; i++) g.in[i] = g.k[i] = g.s[i] = g.d[i] = g.out[i] = 1;
    for (int i = 0; i < 2; i++) {
        g.in[1 + i] = in[i];
        g.k[1 + i] = k[i];
        g.s[1 + i] = s[i];
        g.d[1 + i] = d[i];
        g.pb[1 + i] = pads[i];
        g.out[1 + i] = s[i] * (in[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - pads[i] - pads[2 + i];
    }
    size_t nx = 2 * 4 * 12, nw = 4 * 3 * 6, ny = (size_t)(2 * 6 * g.out[1] * g.out[2]);
    float *x = rand_buf(&rng, nx, -1, 1), *w = rand_buf(&rng, nw, -1, 1);
    float *b = rand_buf(&rng, 6, -1, 1), *want = rand_buf(&rng, ny, 0, 0);
    naive_convt(&g, x, w, b, want);
    tnode t;
    tn_init(&t, SQZ_OP_CONV_TRANSPOSE, "test", 1);
    tn_int(&t, "group", 2);
    tn_ints(&t, "strides", 2, s);
    tn_ints(&t, "dilations", 2, d);
    tn_ints(&t, "pads", 4, pads);
    tn_ints(&t, "output_padding", 2, op);
    sqz_shape shp_in[3] = {SHP(2, 4, 3, 4), SHP(4, 3, 3, 2), SHP(6)};
    const float *data[3] = {x, w, b};
    run_res r;
    run_op(&t, 3, shp_in, data, 1, &r);
    if (r.rc) fail_msg("%s", r.err);
    ASSERT_SHAPE(&r.shape[0], 2, 6, g.out[1], g.out[2]);
    assert_int_equal(g.out[1], 9);
    assert_int_equal(g.out[2], 8);
    assert_true(tu_max_abs_diff(r.out[0], want, ny) < 1e-5);
    assert_int_equal(r.macs, (uint64_t)(2 * 4 * 12 * 3 * 6));
    res_free(&r);
    free(x);
    free(w);
    free(b);
    free(want);

    /* ONNX convtranspose example: x = 0..8 (3x3), W ones [1,2,3,3]: 5x5 output */
    float x1[9], w1[18];
    for (int i = 0; i < 9; i++) x1[i] = (float)i;
    for (int i = 0; i < 18; i++) w1[i] = 1.0f;
    static const float want1[25] = {0,  1,  3, 3,  2,  3,  8,  15, 12, 7,  9,  21, 36,
                                    27, 15, 9, 20, 33, 24, 13, 6,  13, 21, 15, 8};
    tn_init(&t, SQZ_OP_CONV_TRANSPOSE, "test", 1);
    sqz_shape in1[2] = {SHP(1, 1, 3, 3), SHP(1, 2, 3, 3)};
    const float *d1[2] = {x1, w1};
    run_op(&t, 2, in1, d1, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 2, 5, 5);
    assert_close(r.out[0], want1, 25, 0);
    assert_close(r.out[0] + 25, want1, 25, 0);
    res_free(&r);

    /* output_shape larger than the natural size: the extra row/col is at the end */
    tn_init(&t, SQZ_OP_CONV_TRANSPOSE, "test", 1);
    TN_INTS(&t, "strides", 3, 2);
    TN_INTS(&t, "output_shape", 10, 8);
    run_op(&t, 2, in1, d1, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 2, 10, 8);
    /* natural output is 9x7: row 0 = x[0][*] spread with stride 2 */
    static const float row0[8] = {0, 0, 1, 1, 3, 2, 2, 0};
    assert_close(r.out[0], row0, 8, 0);
    for (int i = 0; i < 8; i++) assert_true(r.out[0][9 * 8 + i] == 0.0f);
    res_free(&r);

    /* SAME_UPPER with stride 2: output = in * stride, cropping at the end */
    tn_init(&t, SQZ_OP_CONV_TRANSPOSE, "test", 1);
    TN_INTS(&t, "strides", 2, 2);
    tn_str(&t, "auto_pad", "SAME_UPPER");
    run_op(&t, 2, in1, d1, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 2, 6, 6);
    static const float row0b[6] = {0, 0, 1, 1, 3, 2};
    assert_close(r.out[0], row0b, 6, 0);
    res_free(&r);
}

/* ------------------------------------------------------------ Gemm/MatMul */

static void test_gemm(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    const int M = 3, K = 5, N = 4;
    float *a = rand_buf(&rng, 15, -1, 1), *b = rand_buf(&rng, 20, -1, 1);
    float *c = rand_buf(&rng, 12, -1, 1);
    /* C shapes to broadcast: [M,N], [N], [M,1], scalar [] */
    sqz_shape cshapes[4] = {SHP(3, 4), SHP(4), SHP(3, 1), SHP(1)};
    cshapes[3].ndim = 0;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int ci = 0; ci < 5; ci++) {
                float want[12];
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        double acc = 0;
                        for (int k = 0; k < K; k++)
                            acc += (double)(ta ? a[k * M + m] : a[m * K + k]) *
                                   (tb ? b[n * K + k] : b[k * N + n]);
                        double cv = 0;
                        if (ci == 0) cv = c[m * N + n];
                        if (ci == 1) cv = c[n];
                        if (ci == 2) cv = c[m];
                        if (ci == 3) cv = c[0];
                        want[m * N + n] = (float)(0.5 * acc + (ci < 4 ? -2.0 * cv : 0.0));
                        if (want[m * N + n] < 0) want[m * N + n] = 0;
                    }
                tnode t;
                tn_init(&t, SQZ_OP_GEMM, "test", 1);
                tn_float(&t, "alpha", 0.5f);
                tn_float(&t, "beta", -2.0f);
                tn_int(&t, "transA", ta);
                tn_int(&t, "transB", tb);
                tn_int(&t, "sqz_act", SQZ_ACT_RELU);
                sqz_shape in[3] = {ta ? SHP(5, 3) : SHP(3, 5), tb ? SHP(4, 5) : SHP(5, 4),
                                   ci < 4 ? cshapes[ci] : absent_shape()};
                const float *data[3] = {a, b, c};
                run_res r;
                run_op(&t, ci == 4 ? 2 : 3, in, data, 1, &r);
                if (r.rc) fail_msg("%s", r.err);
                ASSERT_SHAPE(&r.shape[0], 3, 4);
                assert_true(tu_max_abs_diff(r.out[0], want, 12) < 1e-5);
                assert_int_equal(r.macs, 60);
                res_free(&r);
            }
    tnode t;
    tn_init(&t, SQZ_OP_GEMM, "test", 1);
    sqz_shape bad[3] = {SHP(3, 5), SHP(5, 4), SHP(2, 4)};
    expect_fail(&t, 3, bad, 1, "broadcast");
    sqz_shape bad2[2] = {SHP(3, 5), SHP(4, 4)};
    expect_fail(&t, 2, bad2, 1, "inner");
    free(a);
    free(b);
    free(c);
}

static void naive_matmul(const float *a, const float *b, float *y, int M, int K, int N) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)a[m * K + k] * b[k * N + n];
            y[m * N + n] = (float)s;
        }
}

static void test_matmul(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 9);
    float *a = rand_buf(&rng, 2 * 3 * 4, -1, 1), *b = rand_buf(&rng, 3 * 4 * 5, -1, 1);
    tnode t;
    run_res r;
    /* [2,1,3,4] x [3,4,5] -> [2,3,3,5]; a broadcast over dim 1, b over dim 0 */
    {
        tn_init(&t, SQZ_OP_MATMUL, "test", 1);
        sqz_shape in[2] = {SHP(2, 1, 3, 4), SHP(3, 4, 5)};
        const float *data[2] = {a, b};
        run_op(&t, 2, in, data, 1, &r);
        assert_int_equal(r.rc, 0);
        ASSERT_SHAPE(&r.shape[0], 2, 3, 3, 5);
        float want[2 * 3 * 15];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                naive_matmul(a + i * 12, b + j * 20, want + (i * 3 + j) * 15, 3, 4, 5);
        assert_true(tu_max_abs_diff(r.out[0], want, 90) < 1e-5);
        assert_int_equal(r.macs, 6 * 60);
        res_free(&r);
    }
    /* 1-D x 2-D: [4] x [4,5] -> [5] */
    {
        tn_init(&t, SQZ_OP_MATMUL, "test", 1);
        sqz_shape in[2] = {SHP(4), SHP(4, 5)};
        const float *data[2] = {a, b};
        run_op(&t, 2, in, data, 1, &r);
        assert_int_equal(r.rc, 0);
        ASSERT_SHAPE(&r.shape[0], 5);
        float want[5];
        naive_matmul(a, b, want, 1, 4, 5);
        assert_true(tu_max_abs_diff(r.out[0], want, 5) < 1e-6);
        res_free(&r);
    }
    /* 3-D x 1-D: [2,3,4] x [4] -> [2,3] */
    {
        tn_init(&t, SQZ_OP_MATMUL, "test", 1);
        sqz_shape in[2] = {SHP(2, 3, 4), SHP(4)};
        const float *data[2] = {a, b};
        run_op(&t, 2, in, data, 1, &r);
        assert_int_equal(r.rc, 0);
        ASSERT_SHAPE(&r.shape[0], 2, 3);
        float want[6];
        naive_matmul(a, b, want, 6, 4, 1);
        assert_true(tu_max_abs_diff(r.out[0], want, 6) < 1e-6);
        res_free(&r);
    }
    /* 1-D x 1-D: dot product -> scalar */
    {
        tn_init(&t, SQZ_OP_MATMUL, "test", 1);
        sqz_shape in[2] = {SHP(4), SHP(4)};
        const float *data[2] = {a, b};
        run_op(&t, 2, in, data, 1, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.shape[0].ndim, 0);
        float want;
        naive_matmul(a, b, &want, 1, 4, 1);
        assert_true(fabsf(r.out[0][0] - want) < 1e-6f);
        res_free(&r);
    }
    tn_init(&t, SQZ_OP_MATMUL, "test", 1);
    sqz_shape bad[2] = {SHP(2, 3, 4), SHP(3, 4, 5)};
    expect_fail(&t, 2, bad, 1, "broadcast");
    free(a);
    free(b);
}

/* ------------------------------------------------------------ elementwise */

static void run_unary(tnode *t, const float *x, int n, float *y) {
    sqz_shape in[1] = {SHP(n)};
    const float *data[1] = {x};
    run_res r;
    run_op(t, 1, in, data, 1, &r);
    if (r.rc) fail_msg("%s", r.err);
    ASSERT_SHAPE(&r.shape[0], n);
    memcpy(y, r.out[0], (size_t)n * sizeof(float));
    res_free(&r);
}

static void test_unary(void **state) {
    (void)state;
    const float x[6] = {-4.0f, -1.0f, -0.25f, 0.0f, 0.5f, 5.0f};
    float y[6];
    tnode t;
    tn_init(&t, SQZ_OP_RELU, "test", 1);
    run_unary(&t, x, 6, y);
    assert_close(y, (const float[]){0, 0, 0, 0, 0.5f, 5}, 6, 0);
    tn_init(&t, SQZ_OP_LEAKY_RELU, "test", 1);
    run_unary(&t, x, 6, y);
    assert_close(y, (const float[]){-0.04f, -0.01f, -0.0025f, 0, 0.5f, 5}, 6, 1e-7);
    tn_init(&t, SQZ_OP_LEAKY_RELU, "test", 1);
    tn_float(&t, "alpha", 0.5f);
    run_unary(&t, x, 6, y);
    assert_close(y, (const float[]){-2, -0.5f, -0.125f, 0, 0.5f, 5}, 6, 0);
    tn_init(&t, SQZ_OP_CLIP, "test", 1); /* unbounded */
    run_unary(&t, x, 6, y);
    assert_close(y, x, 6, 0);
    tn_init(&t, SQZ_OP_CLIP, "test", 1);
    tn_float(&t, "min", -1.0f);
    run_unary(&t, x, 6, y);
    assert_close(y, (const float[]){-1, -1, -0.25f, 0, 0.5f, 5}, 6, 0);
    tn_init(&t, SQZ_OP_CLIP, "test", 1);
    tn_float(&t, "min", 0.0f);
    tn_float(&t, "max", 0.4f);
    run_unary(&t, x, 6, y);
    assert_close(y, (const float[]){0, 0, 0, 0, 0.4f, 0.4f}, 6, 0);
    tn_init(&t, SQZ_OP_SIGMOID, "test", 1);
    run_unary(&t, x, 6, y);
    for (int i = 0; i < 6; i++) assert_true(fabs(y[i] - 1.0 / (1.0 + exp(-x[i]))) < 1e-6);
    tn_init(&t, SQZ_OP_HARD_SIGMOID, "test", 1);
    run_unary(&t, x, 6, y);
    assert_close(y, (const float[]){0, 0.3f, 0.45f, 0.5f, 0.6f, 1}, 6, 1e-6);
    tn_init(&t, SQZ_OP_HARD_SWISH, "test", 1);
    run_unary(&t, x, 6, y);
    /* x * clamp(x/6 + 1/2, 0, 1) */
    assert_close(y,
                 (const float[]){0, -1.0f / 3.0f, -0.25f * (0.5f - 0.25f / 6.0f), 0,
                                 0.5f * (0.5f + 0.5f / 6.0f), 5},
                 6, 1e-6);
    tn_init(&t, SQZ_OP_TANH, "test", 1);
    run_unary(&t, x, 6, y);
    for (int i = 0; i < 6; i++) assert_true(fabs(y[i] - tanh(x[i])) < 1e-6);
    const float sx[4] = {0, 1, 4, 2.25f};
    tn_init(&t, SQZ_OP_SQRT, "test", 1);
    run_unary(&t, sx, 4, y);
    assert_close(y, (const float[]){0, 1, 2, 1.5f}, 4, 0);
    tn_init(&t, SQZ_OP_IDENTITY, "test", 1);
    run_unary(&t, x, 6, y);
    assert_close(y, x, 6, 0);
    /* sigmoid does not overflow for large magnitudes */
    const float big[2] = {-100.0f, 100.0f};
    tn_init(&t, SQZ_OP_SIGMOID, "test", 1);
    run_unary(&t, big, 2, y);
    assert_true(y[0] >= 0.0f && y[0] < 1e-30f);
    assert_true(y[1] == 1.0f);
}

static void test_binary_broadcast(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 3);
    /* a [2,3,4], b [3,1]; and reversed operand order; Pow on positive base */
    float *a = rand_buf(&rng, 24, 0.5f, 2.0f), *b = rand_buf(&rng, 3, 0.5f, 2.0f);
    static const int ops[5] = {SQZ_OP_ADD, SQZ_OP_SUB, SQZ_OP_MUL, SQZ_OP_DIV, SQZ_OP_POW};
    for (int oi = 0; oi < 5; oi++)
        for (int rev = 0; rev < 2; rev++) {
            tnode t;
            tn_init(&t, ops[oi], "test", 1);
            sqz_shape in[2] = {SHP(2, 3, 4), SHP(3, 1)};
            if (rev) {
                sqz_shape tmp = in[0];
                in[0] = in[1];
                in[1] = tmp;
            }
            const float *data[2] = {rev ? b : a, rev ? a : b};
            run_res r;
            run_op(&t, 2, in, data, 1, &r);
            assert_int_equal(r.rc, 0);
            ASSERT_SHAPE(&r.shape[0], 2, 3, 4);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++)
                    for (int k = 0; k < 4; k++) {
                        float u = a[(i * 3 + j) * 4 + k], v = b[j];
                        if (rev) {
                            float tmp = u;
                            u = v;
                            v = tmp;
                        }
                        float want = oi == 0   ? u + v
                                     : oi == 1 ? u - v
                                     : oi == 2 ? u * v
                                     : oi == 3 ? u / v
                                               : powf(u, v);
                        assert_true(fabsf(r.out[0][(i * 3 + j) * 4 + k] - want) < 1e-6f);
                    }
            res_free(&r);
        }
    /* [2,1,4] + [1,3,1] -> [2,3,4]; scalar + tensor; identical shapes */
    {
        tnode t;
        tn_init(&t, SQZ_OP_ADD, "test", 1);
        sqz_shape in[2] = {SHP(2, 1, 4), SHP(1, 3, 1)};
        const float *data[2] = {a, b};
        run_res r;
        run_op(&t, 2, in, data, 1, &r);
        assert_int_equal(r.rc, 0);
        ASSERT_SHAPE(&r.shape[0], 2, 3, 4);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 4; k++)
                    assert_true(r.out[0][(i * 3 + j) * 4 + k] == a[i * 4 + k] + b[j]);
        res_free(&r);
        sqz_shape in2[2] = {SHP(1), SHP(2, 3, 4)};
        in2[0].ndim = 0;
        const float *data2[2] = {b, a};
        tn_init(&t, SQZ_OP_SUB, "test", 1);
        run_op(&t, 2, in2, data2, 1, &r);
        assert_int_equal(r.rc, 0);
        ASSERT_SHAPE(&r.shape[0], 2, 3, 4);
        for (int i = 0; i < 24; i++) assert_true(r.out[0][i] == b[0] - a[i]);
        res_free(&r);
        sqz_shape in3[2] = {SHP(4, 6), SHP(4, 6)};
        const float *data3[2] = {a, a};
        tn_init(&t, SQZ_OP_MUL, "test", 1);
        run_op(&t, 2, in3, data3, 1, &r);
        assert_int_equal(r.rc, 0);
        for (int i = 0; i < 24; i++) assert_true(r.out[0][i] == a[i] * a[i]);
        res_free(&r);
        sqz_shape bad[2] = {SHP(2, 3), SHP(4)};
        tn_init(&t, SQZ_OP_ADD, "test", 1);
        expect_fail(&t, 2, bad, 1, "broadcast");
    }
    free(a);
    free(b);
}

static void test_prelu_batchnorm(void **state) {
    (void)state;
    /* PRelu: X [2,3,2], slope [3,1] */
    float x[12], slope[3] = {0.1f, 0.2f, 0.3f};
    for (int i = 0; i < 12; i++) x[i] = (float)(i - 6);
    tnode t;
    tn_init(&t, SQZ_OP_PRELU, "test", 1);
    sqz_shape in[2] = {SHP(2, 3, 2), SHP(3, 1)};
    const float *data[2] = {x, slope};
    run_res r;
    run_op(&t, 2, in, data, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 3, 2);
    for (int i = 0; i < 12; i++) {
        float s = slope[(i / 2) % 3];
        assert_true(r.out[0][i] == (x[i] < 0 ? x[i] * s : x[i]));
    }
    res_free(&r);
    sqz_shape bad[2] = {SHP(3, 1), SHP(2, 3, 2)};
    expect_fail(&t, 2, bad, 1, "PRelu");

    /* BatchNorm: X [1,2,1,3] */
    float bx[6] = {-1, 0, 1, 2, 3, 4}, sc[2] = {1.0f, 2.0f}, bb[2] = {0.0f, 1.0f},
          mean[2] = {0.0f, 3.0f}, var[2] = {1.0f, 4.0f};
    tn_init(&t, SQZ_OP_BATCHNORM, "test", 1);
    tn_float(&t, "epsilon", 0.0f);
    sqz_shape bin[5] = {SHP(1, 2, 1, 3), SHP(2), SHP(2), SHP(2), SHP(2)};
    const float *bdata[5] = {bx, sc, bb, mean, var};
    run_op(&t, 5, bin, bdata, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 2, 1, 3);
    assert_close(r.out[0], (const float[]){-1, 0, 1, 0, 1, 2}, 6, 1e-6);
    res_free(&r);
    tn_init(&t, SQZ_OP_BATCHNORM, "test", 1); /* default epsilon 1e-5 */
    run_op(&t, 5, bin, bdata, 1, &r);
    assert_int_equal(r.rc, 0);
    assert_true(fabsf(r.out[0][0] - (float)(-1.0 / sqrt(1.0 + 1e-5))) < 1e-6f);
    res_free(&r);
    tn_init(&t, SQZ_OP_BATCHNORM, "test", 1);
    tn_int(&t, "training_mode", 1);
    expect_fail(&t, 5, bin, 1, "training_mode");
    tn_init(&t, SQZ_OP_BATCHNORM, "test", 1);
    expect_fail(&t, 5, bin, 3, "outputs");
}

/* -------------------------------------------------------------- shape ops */

static void test_concat_split(void **state) {
    (void)state;
    float a[6] = {1, 2, 3, 4, 5, 6}, b[4] = {7, 8, 9, 10};
    tnode t;
    run_res r;
    tn_init(&t, SQZ_OP_CONCAT, "test", 1);
    tn_int(&t, "axis", -1);
    sqz_shape in[2] = {SHP(2, 3), SHP(2, 2)};
    const float *data[2] = {a, b};
    run_op(&t, 2, in, data, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 5);
    assert_close(r.out[0], (const float[]){1, 2, 3, 7, 8, 4, 5, 6, 9, 10}, 10, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_CONCAT, "test", 1);
    tn_int(&t, "axis", 0);
    sqz_shape in0[2] = {SHP(3, 2), SHP(2, 2)};
    run_op(&t, 2, in0, data, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 5, 2);
    assert_close(r.out[0], (const float[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 10, 0);
    res_free(&r);
    expect_fail(&t, 2, in, 1, "dim");
    tn_init(&t, SQZ_OP_CONCAT, "test", 1);
    expect_fail(&t, 2, in0, 1, "axis");

    /* Split: explicit split along axis 1 */
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)i;
    sqz_shape xs[1] = {SHP(2, 6)};
    const float *xd[1] = {x};
    tn_init(&t, SQZ_OP_SPLIT, "test", 1);
    tn_int(&t, "axis", 1);
    TN_INTS(&t, "split", 1, 2, 3);
    run_op(&t, 1, xs, xd, 3, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 1);
    ASSERT_SHAPE(&r.shape[1], 2, 2);
    ASSERT_SHAPE(&r.shape[2], 2, 3);
    assert_close(r.out[0], (const float[]){0, 6}, 2, 0);
    assert_close(r.out[1], (const float[]){1, 2, 7, 8}, 4, 0);
    assert_close(r.out[2], (const float[]){3, 4, 5, 9, 10, 11}, 6, 0);
    res_free(&r);
    /* equal split by output count, negative axis */
    tn_init(&t, SQZ_OP_SPLIT, "test", 1);
    tn_int(&t, "axis", -1);
    run_op(&t, 1, xs, xd, 2, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[1], 2, 3);
    assert_close(r.out[1], (const float[]){3, 4, 5, 9, 10, 11}, 6, 0);
    res_free(&r);
    /* num_outputs with a remainder: 7 into 3 -> ceil(7/3) = 3, 3, then the rest (1) */
    sqz_shape x7[1] = {SHP(7)};
    tn_init(&t, SQZ_OP_SPLIT, "test", 1);
    tn_int(&t, "num_outputs", 3);
    run_op(&t, 1, x7, xd, 3, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 3);
    ASSERT_SHAPE(&r.shape[1], 3);
    ASSERT_SHAPE(&r.shape[2], 1);
    assert_close(r.out[2], (const float[]){6}, 1, 0);
    res_free(&r);
    /* zero-size parts */
    tn_init(&t, SQZ_OP_SPLIT, "test", 1);
    TN_INTS(&t, "split", 0, 7, 0);
    run_op(&t, 1, x7, xd, 3, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 0);
    ASSERT_SHAPE(&r.shape[1], 7);
    assert_close(r.out[1], x, 7, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_SPLIT, "test", 1);
    expect_fail(&t, 1, x7, 2, "divisible");
    tn_init(&t, SQZ_OP_SPLIT, "test", 1);
    TN_INTS(&t, "split", 3, 3);
    expect_fail(&t, 1, x7, 2, "split");
}

static void test_slice(void **state) {
    (void)state;
    float x[20];
    for (int i = 0; i < 20; i++) x[i] = (float)i; /* [4,5] */
    sqz_shape xs[1] = {SHP(4, 5)};
    const float *xd[1] = {x};
    tnode t;
    run_res r;
    /* rows 1..2, cols 0..2 */
    tn_init(&t, SQZ_OP_SLICE, "test", 1);
    TN_INTS(&t, "starts", 1, 0);
    TN_INTS(&t, "ends", 3, 3);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 3);
    assert_close(r.out[0], (const float[]){5, 6, 7, 10, 11, 12}, 6, 0);
    res_free(&r);
    /* negative steps: reverse everything with INT64_MIN-ish ends */
    tn_init(&t, SQZ_OP_SLICE, "test", 1);
    TN_INTS(&t, "starts", -1, 20);
    TN_INTS(&t, "ends", INT64_MIN, -1000);
    TN_INTS(&t, "axes", 0, -1);
    TN_INTS(&t, "steps", -1, -2);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 4, 3);
    assert_close(r.out[0], (const float[]){19, 17, 15, 14, 12, 10, 9, 7, 5, 4, 2, 0}, 12, 0);
    res_free(&r);
    /* INT64_MAX end, step 2 on axis 1 only, out-of-range start on axis 0 -> empty */
    tn_init(&t, SQZ_OP_SLICE, "test", 1);
    TN_INTS(&t, "starts", 1);
    TN_INTS(&t, "ends", INT64_MAX);
    TN_INTS(&t, "axes", 1);
    TN_INTS(&t, "steps", 2);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 4, 2);
    assert_close(r.out[0], (const float[]){1, 3, 6, 8, 11, 13, 16, 18}, 8, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_SLICE, "test", 1);
    TN_INTS(&t, "starts", 1000);
    TN_INTS(&t, "ends", 1001);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 0, 5);
    res_free(&r);
    /* negative step from the middle: x[2:0:-1, 3] */
    tn_init(&t, SQZ_OP_SLICE, "test", 1);
    TN_INTS(&t, "starts", 2, 3);
    TN_INTS(&t, "ends", 0, 4);
    TN_INTS(&t, "steps", -1, 1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 1);
    assert_close(r.out[0], (const float[]){13, 8}, 2, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_SLICE, "test", 1);
    TN_INTS(&t, "starts", 0);
    TN_INTS(&t, "ends", 2);
    TN_INTS(&t, "steps", 0);
    expect_fail(&t, 1, xs, 1, "steps");
}

static void test_transpose_reshape(void **state) {
    (void)state;
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i; /* [2,3,4] */
    sqz_shape xs[1] = {SHP(2, 3, 4)};
    const float *xd[1] = {x};
    tnode t;
    run_res r;
    tn_init(&t, SQZ_OP_TRANSPOSE, "test", 1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 4, 3, 2);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                assert_true(r.out[0][(k * 3 + j) * 2 + i] == x[(i * 3 + j) * 4 + k]);
    res_free(&r);
    tn_init(&t, SQZ_OP_TRANSPOSE, "test", 1);
    TN_INTS(&t, "perm", 1, 2, 0);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 3, 4, 2);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                assert_true(r.out[0][(j * 4 + k) * 2 + i] == x[(i * 3 + j) * 4 + k]);
    res_free(&r);
    tn_init(&t, SQZ_OP_TRANSPOSE, "test", 1);
    TN_INTS(&t, "perm", 1, 1, 0);
    expect_fail(&t, 1, xs, 1, "perm");

    /* Reshape: 0 copies, -1 infers */
    tn_init(&t, SQZ_OP_RESHAPE, "test", 1);
    TN_INTS(&t, "shape", 0, -1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 12);
    assert_close(r.out[0], x, 24, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_RESHAPE, "test", 1);
    TN_INTS(&t, "shape", 4, 0, -1, 1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 4, 3, 2, 1);
    res_free(&r);
    /* allowzero=1: a 0 is a real zero-size dim */
    sqz_shape zs[1] = {SHP(0, 3, 4)};
    tn_init(&t, SQZ_OP_RESHAPE, "test", 1);
    TN_INTS(&t, "shape", 3, 4, 0);
    tn_int(&t, "allowzero", 1);
    run_op(&t, 1, zs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 3, 4, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_RESHAPE, "test", 1);
    TN_INTS(&t, "shape", -1, -1);
    expect_fail(&t, 1, xs, 1, "-1");
    tn_init(&t, SQZ_OP_RESHAPE, "test", 1);
    TN_INTS(&t, "shape", 5, -1);
    expect_fail(&t, 1, xs, 1, "infer");
    tn_init(&t, SQZ_OP_RESHAPE, "test", 1);
    TN_INTS(&t, "shape", 0, -1);
    tn_int(&t, "allowzero", 1);
    expect_fail(&t, 1, xs, 1, "allowzero");

    /* Flatten */
    static const int64_t fl[][3] = {{0, 1, 24}, {1, 2, 12}, {3, 24, 1}, {-1, 6, 4}, {-3, 1, 24}};
    for (int i = 0; i < 5; i++) {
        tn_init(&t, SQZ_OP_FLATTEN, "test", 1);
        tn_int(&t, "axis", fl[i][0]);
        run_op(&t, 1, xs, xd, 1, &r);
        assert_int_equal(r.rc, 0);
        ASSERT_SHAPE(&r.shape[0], fl[i][1], fl[i][2]);
        assert_close(r.out[0], x, 24, 0);
        res_free(&r);
    }
    tn_init(&t, SQZ_OP_FLATTEN, "test", 1);
    tn_int(&t, "axis", 4);
    expect_fail(&t, 1, xs, 1, "axis=4");

    /* Squeeze / Unsqueeze */
    sqz_shape s1[1] = {SHP(1, 3, 1, 4)};
    tn_init(&t, SQZ_OP_SQUEEZE, "test", 1);
    run_op(&t, 1, s1, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 3, 4);
    res_free(&r);
    tn_init(&t, SQZ_OP_SQUEEZE, "test", 1);
    TN_INTS(&t, "axes", -2);
    run_op(&t, 1, s1, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 3, 4);
    assert_close(r.out[0], x, 12, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_SQUEEZE, "test", 1);
    TN_INTS(&t, "axes", 1);
    expect_fail(&t, 1, s1, 1, "axes=1");
    tn_init(&t, SQZ_OP_UNSQUEEZE, "test", 1);
    TN_INTS(&t, "axes", 4, 0, -2); /* output rank 6: -2 is 4 again */
    expect_fail(&t, 1, xs, 1, "duplicate");
    tn_init(&t, SQZ_OP_UNSQUEEZE, "test", 1);
    TN_INTS(&t, "axes", 5, 0, -3);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 2, 3, 1, 4, 1);
    assert_close(r.out[0], x, 24, 0);
    res_free(&r);
}

/* ------------------------------------------------------------------ pools */

static void test_pool_ceil_examples(void **state) {
    (void)state;
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
    sqz_shape xs[1] = {SHP(1, 1, 4, 4)};
    const float *xd[1] = {x};
    tnode t;
    run_res r;
    tn_init(&t, SQZ_OP_MAXPOOL, "test", 1);
    TN_INTS(&t, "kernel_shape", 3, 3);
    TN_INTS(&t, "strides", 2, 2);
    tn_int(&t, "ceil_mode", 1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 1, 2, 2);
    assert_close(r.out[0], (const float[]){11, 12, 15, 16}, 4, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_AVGPOOL, "test", 1);
    TN_INTS(&t, "kernel_shape", 3, 3);
    TN_INTS(&t, "strides", 2, 2);
    tn_int(&t, "ceil_mode", 1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 1, 2, 2);
    assert_close(r.out[0], (const float[]){6, 7.5f, 12, 13.5f}, 4, 1e-6);
    res_free(&r);
    /* ceil_mode: a window starting only in the right padding is dropped:
     * in 5, k 2, s 2, pads 1/1: ceil((5+2-2)/2)+1 = 4 windows; the 4th starts
     * at 5 (= in + pb - 1 + 1 ... beyond the input) -> 3 */
    sqz_shape x5[1] = {SHP(1, 1, 1, 5)};
    tn_init(&t, SQZ_OP_MAXPOOL, "test", 1);
    TN_INTS(&t, "kernel_shape", 1, 2);
    TN_INTS(&t, "strides", 1, 2);
    TN_INTS(&t, "pads", 0, 1, 0, 1);
    tn_int(&t, "ceil_mode", 1);
    run_op(&t, 1, x5, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 1, 1, 3);
    assert_close(r.out[0], (const float[]){1, 3, 5}, 3, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_MAXPOOL, "test", 1);
    TN_INTS(&t, "kernel_shape", 2, 2);
    expect_fail(&t, 1, xs, 2, "MaxPool Indices output not supported");
    tn_init(&t, SQZ_OP_AVGPOOL, "test", 1);
    expect_fail(&t, 1, xs, 1, "kernel_shape");
}

static float naive_pool_at(const float *x, int64_t H, int64_t W, int64_t oh, int64_t ow,
                           const int64_t *k, const int64_t *s, const int64_t *d, const int64_t *pb,
                           const int64_t *pe, int is_max, int cip) {
    float mx = -INFINITY;
    double sum = 0;
    int cnt = 0, cntp = 0;
    for (int64_t a = 0; a < k[0]; a++)
        for (int64_t b = 0; b < k[1]; b++) {
            int64_t ih = oh * s[0] - pb[0] + a * d[0], iw = ow * s[1] - pb[1] + b * d[1];
            if (ih >= -pb[0] && ih < H + pe[0] && iw >= -pb[1] && iw < W + pe[1]) cntp++;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            float v = x[ih * W + iw];
            mx = v > mx ? v : mx;
            sum += v;
            cnt++;
        }
    if (is_max) return mx;
    return (float)(sum / (cip ? cntp : cnt));
}

static void test_pool_vs_naive(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 11);
    typedef struct {
        int64_t H, W, k[2], s[2], d[2], pb[2], pe[2];
        int ceil, cip;
        const char *ap;
        int64_t oh, ow;
    } pc;
    static const pc cases[] = {
        {7, 8, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 0, 0, NULL, 4, 4},
        {7, 8, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 0, 1, NULL, 4, 4},
        {7, 8, {3, 2}, {2, 3}, {1, 1}, {0, 1}, {2, 0}, 1, 1, NULL, 4, 3},
        {6, 6, {2, 2}, {1, 1}, {2, 2}, {0, 0}, {0, 0}, 0, 0, NULL, 4, 4},
        {5, 7, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 0, 0, "SAME_UPPER", 3, 4},
        {6, 7, {2, 3}, {2, 2}, {1, 1}, {0, 1}, {0, 1}, 0, 1, "SAME_LOWER", 3, 4},
        {7, 7, {3, 3}, {3, 3}, {1, 1}, {0, 0}, {0, 0}, 1, 0, "VALID", 2, 2},
    };
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        const pc *c = &cases[ci];
        for (int is_max = 0; is_max < 2; is_max++) {
            size_t nx = (size_t)(2 * 3 * c->H * c->W);
            float *x = rand_buf(&rng, nx, -2, 2);
            tnode t;
            tn_init(&t, is_max ? SQZ_OP_MAXPOOL : SQZ_OP_AVGPOOL, "test", 1);
            tn_ints(&t, "kernel_shape", 2, c->k);
            tn_ints(&t, "strides", 2, c->s);
            if (is_max) tn_ints(&t, "dilations", 2, c->d);
            if (c->ap) {
                tn_str(&t, "auto_pad", c->ap);
            } else {
                int64_t pads[4] = {c->pb[0], c->pb[1], c->pe[0], c->pe[1]};
                tn_ints(&t, "pads", 4, pads);
            }
            tn_int(&t, "ceil_mode", c->ceil);
            if (!is_max) tn_int(&t, "count_include_pad", c->cip);
            if (!is_max && (c->d[0] != 1 || c->d[1] != 1)) {
                free(x);
                continue;
            }
            sqz_shape xs[1] = {SHP(2, 3, c->H, c->W)};
            const float *xd[1] = {x};
            run_res r;
            run_op(&t, 1, xs, xd, 1, &r);
            if (r.rc) fail_msg("case %zu: %s", ci, r.err);
            ASSERT_SHAPE(&r.shape[0], 2, 3, c->oh, c->ow);
            for (int64_t nc = 0; nc < 6; nc++)
                for (int64_t oh = 0; oh < c->oh; oh++)
                    for (int64_t ow = 0; ow < c->ow; ow++) {
                        float want = naive_pool_at(x + nc * c->H * c->W, c->H, c->W, oh, ow, c->k,
                                                   c->s, c->d, c->pb, c->pe, is_max, c->cip);
                        float got = r.out[0][(nc * c->oh + oh) * c->ow + ow];
                        if (fabsf(got - want) > 1e-5f)
                            fail_msg("case %zu max=%d at %lld,%lld: %g vs %g", ci, is_max,
                                     (long long)oh, (long long)ow, got, want);
                    }
            res_free(&r);
            free(x);
        }
    }
}

static void test_gap_reduce_mean(void **state) {
    (void)state;
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i; /* [2,3,4] */
    sqz_shape xs[1] = {SHP(2, 3, 4)};
    const float *xd[1] = {x};
    tnode t;
    run_res r;
    tn_init(&t, SQZ_OP_GLOBAL_AVGPOOL, "test", 1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 3, 1);
    assert_close(r.out[0], (const float[]){1.5f, 5.5f, 9.5f, 13.5f, 17.5f, 21.5f}, 6, 1e-6);
    res_free(&r);

    tn_init(&t, SQZ_OP_REDUCE_MEAN, "test", 1);
    TN_INTS(&t, "axes", 0, -1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 3, 1);
    /* mean over i in {0,1}, k in 0..3 of 12i + 4j + k = 6 + 4j + 1.5 */
    assert_close(r.out[0], (const float[]){7.5f, 11.5f, 15.5f}, 3, 1e-6);
    res_free(&r);
    tn_init(&t, SQZ_OP_REDUCE_MEAN, "test", 1);
    TN_INTS(&t, "axes", 1);
    tn_int(&t, "keepdims", 0);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 4);
    assert_close(r.out[0], (const float[]){4, 5, 6, 7, 16, 17, 18, 19}, 8, 1e-6);
    res_free(&r);
    tn_init(&t, SQZ_OP_REDUCE_MEAN, "test", 1); /* no axes: everything */
    tn_int(&t, "keepdims", 0);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.shape[0].ndim, 0);
    assert_close(r.out[0], (const float[]){11.5f}, 1, 1e-6);
    res_free(&r);
    tn_init(&t, SQZ_OP_REDUCE_MEAN, "test", 1);
    tn_int(&t, "noop_with_empty_axes", 1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 3, 4);
    assert_close(r.out[0], x, 24, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_REDUCE_MEAN, "test", 1);
    TN_INTS(&t, "axes", 3);
    expect_fail(&t, 1, xs, 1, "axes=3");
}

static void test_softmax(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 21);
    float *x = rand_buf(&rng, 24, -3, 3);
    x[5] = 1000.0f; /* stability */
    sqz_shape xs[1] = {SHP(2, 3, 4)};
    const float *xd[1] = {x};
    for (int mode = 0; mode < 4; mode++) {
        /* 0: default (axis -1), 1: axis=1, 2: legacy default (axis 1, coerced 2-D),
         * 3: legacy axis=2 */
        tnode t;
        tn_init(&t, SQZ_OP_SOFTMAX, "test", 1);
        if (mode == 1) tn_int(&t, "axis", 1);
        if (mode >= 2) tn_int(&t, "legacy", 1);
        if (mode == 3) tn_int(&t, "axis", 2);
        run_res r;
        run_op(&t, 1, xs, xd, 1, &r);
        assert_int_equal(r.rc, 0);
        ASSERT_SHAPE(&r.shape[0], 2, 3, 4);
        float want[24];
        /* groups: list element index sets */
        for (int g0 = 0; g0 < 24; g0++) {
            int members[24], nm = 0;
            for (int e = 0; e < 24; e++) {
                int i0 = g0 / 12, j0 = (g0 / 4) % 3, k0 = g0 % 4;
                int i = e / 12, j = (e / 4) % 3, k = e % 4;
                int same = mode == 0   ? (i == i0 && j == j0)
                           : mode == 1 ? (i == i0 && k == k0)
                           : mode == 2 ? (i == i0)
                                       : (i == i0 && j == j0);
                if (same) members[nm++] = e;
            }
            double mx = -INFINITY, s = 0;
            for (int m = 0; m < nm; m++) mx = fmax(mx, x[members[m]]);
            for (int m = 0; m < nm; m++) s += exp(x[members[m]] - mx);
            want[g0] = (float)(exp(x[g0] - mx) / s);
        }
        assert_true(tu_max_abs_diff(r.out[0], want, 24) < 1e-6);
        res_free(&r);
    }
    free(x);
}

/* ----------------------------------------------------------------- Resize */

static void test_resize_examples(void **state) {
    (void)state;
    const float x[4] = {1, 2, 3, 4};
    sqz_shape xs[1] = {SHP(1, 1, 2, 2)};
    const float *xd[1] = {x};
    tnode t;
    run_res r;
    /* ONNX resize_upsample_scales_linear (half_pixel) */
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_str(&t, "mode", "linear");
    tn_floats(&t, "scales", 4, (const float[]){1, 1, 2, 2});
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 1, 4, 4);
    assert_close(r.out[0],
                 (const float[]){1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f,
                                 3.5f, 3, 3.25f, 3.75f, 4},
                 16, 1e-6);
    res_free(&r);
    /* align_corners */
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_str(&t, "mode", "linear");
    tn_str(&t, "coordinate_transformation_mode", "align_corners");
    tn_floats(&t, "scales", 4, (const float[]){1, 1, 2, 2});
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    assert_close(r.out[0],
                 (const float[]){1, 4.f / 3, 5.f / 3, 2, 5.f / 3, 2, 7.f / 3, 8.f / 3, 7.f / 3,
                                 8.f / 3, 3, 10.f / 3, 3, 10.f / 3, 11.f / 3, 4},
                 16, 1e-6);
    res_free(&r);
    /* nearest, default (half_pixel + round_prefer_floor), scales 2 on the last dims */
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_floats(&t, "scales", 2, (const float[]){2, 3});
    TN_INTS(&t, "axes", 2, 3);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 1, 4, 6);
    assert_close(r.out[0], (const float[]){1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2,
                                           3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4},
                 24, 0);
    res_free(&r);
    /* downsample sizes with nearest (ONNX resize_downsample_sizes_nearest):
     * [1,1,2,4] -> sizes [1,1,1,2] gives {1, 3} */
    const float x8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    sqz_shape x8s[1] = {SHP(1, 1, 2, 4)};
    const float *x8d[1] = {x8};
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    TN_INTS(&t, "sizes", 1, 1, 1, 2);
    run_op(&t, 1, x8s, x8d, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 1, 1, 2);
    assert_close(r.out[0], (const float[]){1, 3}, 2, 0);
    res_free(&r);
    /* downsample scales linear (ONNX): scales 0.6 -> [1,1,1,2] = {2.6666665, 4.3333335} */
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_str(&t, "mode", "linear");
    tn_floats(&t, "scales", 4, (const float[]){1, 1, 0.6f, 0.6f});
    run_op(&t, 1, x8s, x8d, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 1, 1, 2);
    assert_close(r.out[0], (const float[]){2.6666665f, 4.3333335f}, 2, 1e-5);
    res_free(&r);
    /* align_corners with scales measures the resized length as in * scale (2.4 here,
     * not the floored 2): ONNX resize_downsample_scales_linear_align_corners */
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_str(&t, "mode", "linear");
    tn_str(&t, "coordinate_transformation_mode", "align_corners");
    tn_floats(&t, "scales", 4, (const float[]){1, 1, 0.6f, 0.6f});
    run_op(&t, 1, x8s, x8d, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 1, 1, 1, 2);
    assert_close(r.out[0], (const float[]){1.0f, 3.142857f}, 2, 1e-5);
    res_free(&r);
    /* tf_half_pixel_for_nn (ONNX's test spelling): 4x4 -> sizes 3x2 */
    float x16[16];
    for (int i = 0; i < 16; i++) x16[i] = (float)(i + 1);
    sqz_shape x16s[1] = {SHP(1, 1, 4, 4)};
    const float *x16d[1] = {x16};
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_str(&t, "coordinate_transformation_mode", "tf_half_pixel_for_nn");
    TN_INTS(&t, "sizes", 1, 1, 3, 2);
    run_op(&t, 1, x16s, x16d, 1, &r);
    assert_int_equal(r.rc, 0);
    assert_close(r.out[0], (const float[]){6, 8, 10, 12, 14, 16}, 6, 0);
    res_free(&r);
    /* asymmetric + round_prefer_ceil, sizes 1x1x3x3 from 2x2 (scale 1.5):
     * x/1.5 = 0, .667, 1.333 -> 0, 1, 1 */
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_str(&t, "coordinate_transformation_mode", "asymmetric");
    tn_str(&t, "nearest_mode", "round_prefer_ceil");
    TN_INTS(&t, "sizes", 1, 1, 3, 3);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    assert_close(r.out[0], (const float[]){1, 2, 2, 3, 4, 4, 3, 4, 4}, 9, 0);
    res_free(&r);
    /* refusals */
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_str(&t, "mode", "cubic");
    tn_floats(&t, "scales", 4, (const float[]){1, 1, 2, 2});
    expect_fail(&t, 1, xs, 1, "mode=\"cubic\"");
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_str(&t, "coordinate_transformation_mode", "tf_crop_and_resize");
    tn_floats(&t, "scales", 4, (const float[]){1, 1, 2, 2});
    expect_fail(&t, 1, xs, 1, "tf_crop_and_resize");
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_int(&t, "antialias", 1);
    tn_floats(&t, "scales", 4, (const float[]){1, 1, 2, 2});
    expect_fail(&t, 1, xs, 1, "antialias");
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    expect_fail(&t, 1, xs, 1, "scales");
}

/* Bilinear resize computed directly from the ONNX formulas. */
static void test_resize_linear_vs_naive(void **state) {
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 31);
    static const char *const cts[] = {"half_pixel", "pytorch_half_pixel", "align_corners",
                                      "asymmetric"};
    const int64_t H = 5, W = 7, OH = 8, OW = 3;
    float *x = rand_buf(&rng, (size_t)(2 * H * W), -1, 1);
    for (int ci = 0; ci < 4; ci++) {
        tnode t;
        tn_init(&t, SQZ_OP_RESIZE, "test", 1);
        tn_str(&t, "mode", "linear");
        tn_str(&t, "coordinate_transformation_mode", cts[ci]);
        TN_INTS(&t, "sizes", 2, 1, OH, OW);
        sqz_shape xs[1] = {SHP(2, 1, H, W)};
        const float *xd[1] = {x};
        run_res r;
        run_op(&t, 1, xs, xd, 1, &r);
        assert_int_equal(r.rc, 0);
        ASSERT_SHAPE(&r.shape[0], 2, 1, OH, OW);
        for (int64_t n = 0; n < 2; n++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double c[2];
                    int64_t in[2] = {H, W}, on[2] = {OH, OW}, o[2] = {oh, ow};
                    for (int d = 0; d < 2; d++) {
                        double s = (double)on[d] / (double)in[d];
                        if (ci == 0) c[d] = (o[d] + 0.5) / s - 0.5;
                        if (ci == 1) c[d] = on[d] > 1 ? (o[d] + 0.5) / s - 0.5 : 0;
                        if (ci == 2) c[d] = (double)o[d] * (in[d] - 1) / (on[d] - 1);
                        if (ci == 3) c[d] = o[d] / s;
                        c[d] = fmin(fmax(c[d], 0.0), (double)(in[d] - 1));
                    }
                    int64_t h0 = (int64_t)c[0], w0 = (int64_t)c[1];
                    int64_t h1 = h0 + 1 < H ? h0 + 1 : H - 1, w1 = w0 + 1 < W ? w0 + 1 : W - 1;
                    double fh = c[0] - h0, fw = c[1] - w0;
                    const float *p = x + n * H * W;
                    double want = (1 - fh) * ((1 - fw) * p[h0 * W + w0] + fw * p[h0 * W + w1]) +
                                  fh * ((1 - fw) * p[h1 * W + w0] + fw * p[h1 * W + w1]);
                    float got = r.out[0][(n * OH + oh) * OW + ow];
                    if (fabs(got - want) > 1e-5)
                        fail_msg("%s at %lld,%lld: %g vs %g", cts[ci], (long long)oh, (long long)ow,
                                 got, want);
                }
        res_free(&r);
    }
    free(x);
}

/* -------------------------------------------------------------------- Pad */

static void test_pad(void **state) {
    (void)state;
    const float x[6] = {1, 2, 3, 4, 5, 6}; /* [2,3] */
    sqz_shape xs[1] = {SHP(2, 3)};
    const float *xd[1] = {x};
    tnode t;
    run_res r;
    tn_init(&t, SQZ_OP_PAD, "test", 1);
    TN_INTS(&t, "pads", 1, 0, 0, 2);
    tn_float(&t, "value", 9.0f);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 3, 5);
    assert_close(r.out[0], (const float[]){9, 9, 9, 9, 9, 1, 2, 3, 9, 9, 4, 5, 6, 9, 9}, 15, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_PAD, "test", 1);
    tn_str(&t, "mode", "reflect");
    TN_INTS(&t, "pads", 0, 2, 0, 1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 6);
    assert_close(r.out[0], (const float[]){3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5}, 12, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_PAD, "test", 1);
    tn_str(&t, "mode", "edge");
    TN_INTS(&t, "pads", 1, 1, 0, 1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 3, 5);
    assert_close(r.out[0], (const float[]){1, 1, 2, 3, 3, 1, 1, 2, 3, 3, 4, 4, 5, 6, 6}, 15, 0);
    res_free(&r);
    /* negative pads crop; axes restricts to the last dim */
    tn_init(&t, SQZ_OP_PAD, "test", 1);
    TN_INTS(&t, "pads", -1, 1);
    TN_INTS(&t, "axes", -1);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 3);
    assert_close(r.out[0], (const float[]){2, 3, 0, 5, 6, 0}, 6, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_PAD, "test", 1);
    tn_str(&t, "mode", "wrap");
    TN_INTS(&t, "pads", 0, 1, 0, 2);
    run_op(&t, 1, xs, xd, 1, &r);
    assert_int_equal(r.rc, 0);
    ASSERT_SHAPE(&r.shape[0], 2, 6);
    assert_close(r.out[0], (const float[]){3, 1, 2, 3, 1, 2, 6, 4, 5, 6, 4, 5}, 12, 0);
    res_free(&r);
    tn_init(&t, SQZ_OP_PAD, "test", 1);
    tn_str(&t, "mode", "mirror");
    TN_INTS(&t, "pads", 0, 1, 0, 2);
    expect_fail(&t, 1, xs, 1, "mode=\"mirror\"");
    tn_init(&t, SQZ_OP_PAD, "test", 1);
    TN_INTS(&t, "pads", 0, 1);
    expect_fail(&t, 1, xs, 1, "pads");
}

/* Hostile attribute values are refused in prepare, without overflow. */
static void test_hostile_attrs(void **state) {
    (void)state;
    tnode t;
    sqz_shape xs[1] = {SHP(1, 1, 4, 4)};
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_floats(&t, "scales", 4, (const float[]){1, 1, 1e30f, 1e30f});
    expect_fail(&t, 1, xs, 1, "scales");
    tn_init(&t, SQZ_OP_RESIZE, "test", 1);
    tn_floats(&t, "scales", 4, (const float[]){1, 1, NAN, 2});
    expect_fail(&t, 1, xs, 1, "scales");
    tn_init(&t, SQZ_OP_PAD, "test", 1);
    TN_INTS(&t, "pads", 0, 0, 0, INT64_MAX, 0, 0, 0, INT64_MAX);
    expect_fail(&t, 1, xs, 1, "pads");
    tn_init(&t, SQZ_OP_RESHAPE, "test", 1);
    TN_INTS(&t, "shape", INT64_MAX, INT64_MAX, 0);
    tn_int(&t, "allowzero", 1);
    expect_fail(&t, 1, xs, 1, "shape");
    tn_init(&t, SQZ_OP_MAXPOOL, "test", 1);
    TN_INTS(&t, "kernel_shape", 2, 2);
    TN_INTS(&t, "dilations", INT64_MAX, 1);
    expect_fail(&t, 1, xs, 1, "range");
    sqz_shape cs[2] = {SHP(1, 1, 4, 4), SHP(1, 1, 3, 3)};
    tn_init(&t, SQZ_OP_CONV_TRANSPOSE, "test", 1);
    TN_INTS(&t, "strides", INT64_MAX / 2, 1);
    expect_fail(&t, 2, cs, 1, "range");
    tn_init(&t, SQZ_OP_CONV_TRANSPOSE, "test", 1);
    TN_INTS(&t, "output_shape", INT64_MAX, 5);
    expect_fail(&t, 2, cs, 1, "output_shape");
    sqz_shape big[1] = {SHP(INT64_MAX, 4)};
    tn_init(&t, SQZ_OP_RELU, "test", 1);
    expect_fail(&t, 1, big, 1, "too large");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_table),
        cmocka_unit_test(test_attrs),
        cmocka_unit_test(test_conv_basic_example),
        cmocka_unit_test(test_conv_vs_naive),
        cmocka_unit_test(test_conv_refusals),
        cmocka_unit_test(test_conv_transpose),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_binary_broadcast),
        cmocka_unit_test(test_prelu_batchnorm),
        cmocka_unit_test(test_concat_split),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_transpose_reshape),
        cmocka_unit_test(test_pool_ceil_examples),
        cmocka_unit_test(test_pool_vs_naive),
        cmocka_unit_test(test_gap_reduce_mean),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_resize_examples),
        cmocka_unit_test(test_resize_linear_vs_naive),
        cmocka_unit_test(test_pad),
        cmocka_unit_test(test_hostile_attrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
