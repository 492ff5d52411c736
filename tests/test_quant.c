/* test_quant.c - the INT8 quantizer on a small graph: conv(3x3) -> ReLU6 ->
 * depthwise conv -> ReLU -> conv(1x1) = y3; Add(conv(1x1, no bias)(y3), y3)
 * -> GlobalAveragePool -> Flatten -> Gemm, calibrated on random .npy inputs.
 * Checks: cross-layer equalization leaves the fp32 function unchanged (and
 * balances the ranges); the written representation follows the INT8
 * contract (Quantize at the input, Dequantize at the output, int8 weights in
 * [-127, 127] per output channel with zero point 0, int32 biases, int8
 * activations); the int8 model run by the runtime stays close to fp32 (SQNR);
 * the fp32 fallback keeps a layer in fp32 with Q/DQ around it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../compress/quant/gptq.h"
#include "../compress/quant/qinternal.h"
#include "sqz/sqz.h"
#include "sqzc/calib_set.h"
#include "sqzc/ir.h"
#include "sqzc/npy.h"
#include "sqzc/passes.h"
#include "sqzc/onnx_export.h"
#include "sqzc/quant.h"
#include "sqzc/quant_qdq.h"
#include "sqzc/writer.h"
#include "testutil.h"

#define NIMG 40
static char *g_dir;
static char g_manifest[1024];
static char g_manifest_b[1024]; /* the same samples in one "npy_batch:" file */

static int add_const(sqzc_graph *g, const char *name, sqz_shape s, tu_rng *r, float lo, float hi) {
    int t = sqzc_tensor_get_or_add(g, name);
    int64_t n = sqz_shape_numel(&s);
    float *v = malloc(sizeof(float) * (size_t)n);
    assert_non_null(v);
    tu_fill_uniform(r, v, (size_t)n, lo, hi);
    assert_int_equal(sqzc_tensor_set_f32(g, t, &s, v), 0);
    free(v);
    return t;
}

static void conv_attrs(sqzc_graph *g, int n, int k, int group, int act) {
    int64_t ks[2] = {k, k}, pads[4] = {k / 2, k / 2, k / 2, k / 2}, one[2] = {1, 1};
    assert_int_equal(sqzc_node_set_ints(g, n, "kernel_shape", ks, 2), 0);
    assert_int_equal(sqzc_node_set_ints(g, n, "pads", pads, 4), 0);
    assert_int_equal(sqzc_node_set_ints(g, n, "strides", one, 2), 0);
    assert_int_equal(sqzc_node_set_int(g, n, "group", group), 0);
    assert_int_equal(sqzc_node_set_int(g, n, "sqz_act", act), 0);
    if (act == SQZ_ACT_CLIP) {
        assert_int_equal(sqzc_node_set_float(g, n, "sqz_act_alpha", 0.0f), 0);
        assert_int_equal(sqzc_node_set_float(g, n, "sqz_act_beta", 6.0f), 0);
    }
}

/* one input x, one output out, shapes inferred */
static sqzc_graph *finish_graph(sqzc_graph *g, int x, int out) {
    g->inputs = malloc(sizeof(int32_t));
    g->outputs = malloc(sizeof(int32_t));
    assert_true(g->inputs && g->outputs);
    g->inputs[0] = x;
    g->outputs[0] = out;
    g->n_inputs = g->n_outputs = 1;
    char err[256];
    assert_int_equal(sqzc_infer_shapes(g, err, sizeof err), 0);
    return g;
}

/* add_relu: a Relu after the Add (a residual join), else the Add feeds the
 * pooling directly */
static sqzc_graph *make_graph_opt(int add_relu) {
    tu_rng r;
    tu_rng_seed(&r, 42);
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    g->tensors[x].shape = (sqz_shape){4, {1, 3, 8, 8}};
    g->tensors[x].has_shape = 1;
    /* conv1 weights deliberately unbalanced across channels (CLE's case) */
    int w1 = add_const(g, "w1", (sqz_shape){4, {8, 3, 3, 3}}, &r, -0.5f, 0.5f);
    for (int c = 0; c < 8; c++)
        for (int j = 0; j < 27; j++) g->tensors[w1].f32[c * 27 + j] *= (c % 2) ? 8.0f : 0.125f;
    int b1 = add_const(g, "b1", (sqz_shape){1, {8}}, &r, 0.0f, 0.2f);
    int w2 = add_const(g, "w2", (sqz_shape){4, {8, 1, 3, 3}}, &r, -0.6f, 0.6f);
    int b2 = add_const(g, "b2", (sqz_shape){1, {8}}, &r, -0.1f, 0.1f);
    int w3 = add_const(g, "w3", (sqz_shape){4, {8, 8, 1, 1}}, &r, -0.4f, 0.4f);
    int b3 = add_const(g, "b3", (sqz_shape){1, {8}}, &r, -0.1f, 0.1f);
    int w5 = add_const(g, "w5", (sqz_shape){4, {8, 8, 1, 1}}, &r, -0.4f, 0.4f);
    int w4 = add_const(g, "w4", (sqz_shape){2, {5, 8}}, &r, -0.5f, 0.5f);
    int b4 = add_const(g, "b4", (sqz_shape){1, {5}}, &r, -0.1f, 0.1f);
    int y1 = sqzc_tensor_get_or_add(g, "y1"), y2 = sqzc_tensor_get_or_add(g, "y2");
    int y3 = sqzc_tensor_get_or_add(g, "y3"), y4 = sqzc_tensor_get_or_add(g, "y4");
    int y5 = sqzc_tensor_get_or_add(g, "y5"), y6 = sqzc_tensor_get_or_add(g, "y6");
    int y7 = sqzc_tensor_get_or_add(g, "y7"), y8 = sqzc_tensor_get_or_add(g, "y8");
    int out = sqzc_tensor_get_or_add(g, "logits");
    int n = sqzc_add_node(g, SQZ_OP_CONV, "conv1", 3, (int32_t[]){x, w1, b1}, 1, (int32_t[]){y1});
    conv_attrs(g, n, 3, 1, SQZ_ACT_CLIP);
    n = sqzc_add_node(g, SQZ_OP_CONV, "dw", 3, (int32_t[]){y1, w2, b2}, 1, (int32_t[]){y2});
    conv_attrs(g, n, 3, 8, SQZ_ACT_RELU);
    n = sqzc_add_node(g, SQZ_OP_CONV, "pw", 3, (int32_t[]){y2, w3, b3}, 1, (int32_t[]){y3});
    conv_attrs(g, n, 1, 1, SQZ_ACT_NONE);
    n = sqzc_add_node(g, SQZ_OP_CONV, "c4", 2, (int32_t[]){y3, w5}, 1, (int32_t[]){y7});
    conv_attrs(g, n, 1, 1, SQZ_ACT_NONE);
    if (add_relu) {
        sqzc_add_node(g, SQZ_OP_ADD, "add", 2, (int32_t[]){y7, y3}, 1, (int32_t[]){y8});
        sqzc_add_node(g, SQZ_OP_RELU, "relu", 1, (int32_t[]){y8}, 1, (int32_t[]){y4});
    } else {
        sqzc_add_node(g, SQZ_OP_ADD, "add", 2, (int32_t[]){y7, y3}, 1, (int32_t[]){y4});
    }
    sqzc_add_node(g, SQZ_OP_GLOBAL_AVGPOOL, "gap", 1, (int32_t[]){y4}, 1, (int32_t[]){y5});
    n = sqzc_add_node(g, SQZ_OP_FLATTEN, "flat", 1, (int32_t[]){y5}, 1, (int32_t[]){y6});
    n = sqzc_add_node(g, SQZ_OP_GEMM, "fc", 3, (int32_t[]){y6, w4, b4}, 1, (int32_t[]){out});
    assert_int_equal(sqzc_node_set_int(g, n, "transB", 1), 0);
    return finish_graph(g, x, out);
}

static sqzc_graph *make_graph(void) {
    return make_graph_opt(0);
}

/* outputs of a graph through the runtime for input x (fp32 in and out) */
/* Serialized, a and b are the same bytes: returns a's bytes (the caller frees them) and their
 * count in *n. */
static uint8_t *assert_same_serialized(const sqzc_graph *a, const sqzc_graph *b, size_t *n) {
    char err[256];
    uint8_t *ba, *bb;
    size_t nb;
    assert_int_equal(sqzc_serialize(a, &ba, n, err, sizeof err), 0);
    assert_int_equal(sqzc_serialize(b, &bb, &nb, err, sizeof err), 0);
    assert_int_equal(*n, nb);
    assert_memory_equal(ba, bb, nb);
    free(bb);
    return ba;
}

static void run_graph(const sqzc_graph *g, const float *x, float *y, int ny) {
    uint8_t *buf;
    size_t size;
    char err[256];
    assert_int_equal(sqzc_serialize(g, &buf, &size, err, sizeof err), 0);
    sqz_model *m;
    sqz_session *s;
    sqz_status st;
    if (sqz_model_load_buffer(buf, size, &m, &st) != SQZ_OK) fail_msg("load: %s", st.msg);
    free(buf);
    if (sqz_session_create(m, NULL, &s, &st) != SQZ_OK) fail_msg("session: %s", st.msg);
    assert_int_equal(sqz_session_set_input(s, 0, x, 192, &st), SQZ_OK);
    if (sqz_session_run(s, &st) != SQZ_OK) fail_msg("run: %s", st.msg);
    const float *o;
    sqz_shape sh;
    assert_int_equal(sqz_session_output(s, 0, &o, &sh, &st), SQZ_OK);
    assert_int_equal(sqz_shape_numel(&sh), ny);
    memcpy(y, o, sizeof(float) * (size_t)ny);
    sqz_session_free(s);
    sqz_model_free(m);
}

static float g_inputs[NIMG][192];

static int setup(void **state) {
    (void)state;
    g_dir = tu_make_temp_dir();
    tu_rng r;
    tu_rng_seed(&r, 3);
    snprintf(g_manifest, sizeof g_manifest, "%s/m.txt", g_dir);
    FILE *f = fopen(g_manifest, "w");
    assert_non_null(f);
    for (int i = 0; i < NIMG; i++) {
        tu_fill_uniform(&r, g_inputs[i], 192, -1.0f, 1.0f);
        char p[1100];
        snprintf(p, sizeof p, "%s/x%02d.npy", g_dir, i);
        sqz_shape s = {4, {1, 3, 8, 8}};
        char err[256];
        assert_int_equal(npy_write(p, g_inputs[i], &s, err, sizeof err), 0);
        fprintf(f, "x%02d.npy\n", i);
    }
    assert_int_equal(fclose(f), 0);
    char p[1100], err[256];
    snprintf(p, sizeof p, "%s/xb.npy", g_dir);
    sqz_shape bs = {4, {NIMG, 3, 8, 8}};
    assert_int_equal(npy_write(p, &g_inputs[0][0], &bs, err, sizeof err), 0);
    snprintf(g_manifest_b, sizeof g_manifest_b, "%s/mb.txt", g_dir);
    f = fopen(g_manifest_b, "w");
    assert_non_null(f);
    fprintf(f, "# pre-decoded samples\nnpy_batch: xb.npy\n");
    assert_int_equal(fclose(f), 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    int rc = system(cmd);
    free(g_dir);
    return rc != 0;
}

static void test_equalize_exact(void **state) {
    (void)state;
    sqzc_graph *g = make_graph();
    float before[NIMG][5], after[5];
    for (int i = 0; i < NIMG; i++) run_graph(g, g_inputs[i], before[i], 5);
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    sqzc_quant_options o;
    sqzc_quant_options_init(&o);
    qctx q;
    memset(&q, 0, sizeof q);
    q.g = g;
    q.o = &o;
    q.set = &set;
    q.err = err;
    q.err_len = sizeof err;
    q.input = g->inputs[0];
    q.in1 = g->tensors[q.input].shape;
    q.per = 192;
    q.n_images = NIMG;
    assert_int_equal(qctx_init_obs(&q), 0);
    /* conv1 -> dw (ReLU6 between: channels that never reach 6 only) and dw -> pw */
    int pairs = q_equalize(&q, 0);
    assert_int_equal(pairs, 2);
    for (int i = 0; i < NIMG; i++) {
        run_graph(g, g_inputs[i], after, 5);
        for (int k = 0; k < 5; k++) assert_float_equal(after[k], before[i][k], 2e-4);
    }
    /* dw -> pw is ReLU (exact): per channel the ranges are now equal */
    const sqzc_tensor *w2 = &g->tensors[sqzc_find_tensor(g, "w2")];
    const sqzc_tensor *w3 = &g->tensors[sqzc_find_tensor(g, "w3")];
    for (int c = 0; c < 8; c++) {
        float r2 = 0, r3 = 0;
        for (int j = 0; j < 9; j++) r2 = fmaxf(r2, fabsf(w2->f32[c * 9 + j]));
        for (int o2 = 0; o2 < 8; o2++) r3 = fmaxf(r3, fabsf(w3->f32[o2 * 8 + c]));
        assert_float_equal(r2, r3, 1e-4 * r2);
    }
    for (int i = 0; i < q.n_obs; i++) {
        sqzc_qstat_free(&q.st[i]);
        free(q.ch[i].sum);
        free(q.ch[i].max);
        free(q.ch[i].min);
    }
    q_calib_free(&q); /* the calibration session and activation cache */
    free(q.st);
    free(q.ch);
    free(q.obs);
    free(q.obs_of);
    sqzc_calib_set_free(&set);
    sqzc_graph_free(g);
}

/* QDQ form: every weight / bias an integer constant behind a per-channel
 * DequantizeLinear; every int8 activation float -> Q -> DQ; serializes */
static void check_qdq(const sqzc_graph *q8) {
    sqzc_graph *h;
    char err[512];
    if (sqzc_quant_to_qdq(q8, &h, err, sizeof err) != 0) fail_msg("%s", err);
    int n_q = 0, n_dq = 0, n_compute = 0;
    for (int i = 0; i < h->n_nodes; i++) {
        const sqzc_node *n = &h->nodes[i];
        if (n->op == SQZ_OP_QUANTIZE_LINEAR) n_q++;
        if (n->op == SQZ_OP_DEQUANTIZE_LINEAR) n_dq++;
        if (n->op == SQZ_OP_QUANTIZE_LINEAR || n->op == SQZ_OP_DEQUANTIZE_LINEAR) {
            assert_int_equal(n->n_in, 3);
            assert_non_null(h->tensors[n->in[1]].f32); /* scale */
            const sqzc_tensor *z = &h->tensors[n->in[2]];
            assert_true(z->i8 != NULL || z->i32 != NULL); /* zero point */
        }
        if (n->op != SQZ_OP_CONV && n->op != SQZ_OP_GEMM) continue;
        n_compute++;
        for (uint32_t k = 1; k < n->n_in; k++) {
            int p = sqzc_producer(h, n->in[k]);
            assert_true(p >= 0);
            assert_int_equal(h->nodes[p].op, SQZ_OP_DEQUANTIZE_LINEAR);
            const sqzc_tensor *c = &h->tensors[h->nodes[p].in[0]];
            assert_true(k == 1 ? c->i8 != NULL : c->i32 != NULL);
            sqz_node v;
            sqzc_node_view(h, p, &v);
            assert_int_equal(sqz_attr_int(&v, "axis", -1), 0);
        }
        /* the activation input comes from a DequantizeLinear too */
        int p = sqzc_producer(h, n->in[0]);
        assert_true(p >= 0);
        assert_int_equal(h->nodes[p].op, SQZ_OP_DEQUANTIZE_LINEAR);
    }
    assert_int_equal(n_compute, 5);
    /* int8 activations: 1 input Q + one Q per int8 node output; DQ: those + weights + biases */
    assert_true(n_q >= 8);
    assert_true(n_dq >= n_q + 9);
    uint8_t *buf;
    size_t size;
    if (sqzc_onnx_serialize(h, NULL, &buf, &size, err, sizeof err) != 0) fail_msg("%s", err);
    assert_true(size > 1000);
    free(buf);
    sqzc_graph_free(h);
}

static double sqnr_of(const sqzc_graph *q8, float ref[NIMG][5]) {
    double s = 0, e = 0;
    float y[5];
    for (int i = 0; i < NIMG; i++) {
        run_graph(q8, g_inputs[i], y, 5);
        for (int k = 0; k < 5; k++) {
            s += (double)ref[i][k] * ref[i][k];
            e += ((double)y[k] - ref[i][k]) * ((double)y[k] - ref[i][k]);
        }
    }
    return 10 * log10(s / e);
}

static void test_quantize_model(void **state) {
    (void)state;
    sqzc_graph *g = make_graph_opt(1);
    float ref[NIMG][5];
    for (int i = 0; i < NIMG; i++) run_graph(g, g_inputs[i], ref[i], 5);
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    for (int method = SQZC_QM_MINMAX; method <= SQZC_QM_MSE; method++) {
        sqzc_graph *q8 = make_graph_opt(1);
        sqzc_quant_options o;
        sqzc_quant_options_init(&o);
        o.method = method;
        o.batch = 7; /* exercises the remainder session */
        sqzc_quant_report rep;
        if (sqzc_quantize(q8, &set, &o, &rep, err, sizeof err) != 0) fail_msg("%s", err);
        assert_int_equal(rep.n_int8, 5);
        assert_int_equal(rep.n_fp32, 0);
        assert_int_equal(rep.n_quantize, 1);
        assert_int_equal(rep.n_dequantize, 1);
        assert_int_equal(rep.n_images, NIMG);
        /* representation */
        int nq = 0, ndq = 0;
        for (int i = 0; i < q8->n_nodes; i++) {
            const sqzc_node *n = &q8->nodes[i];
            const sqzc_tensor *y = &q8->tensors[n->out[0]];
            if (n->op == SQZ_OP_QUANTIZE_LINEAR) {
                nq++;
                assert_string_equal(q8->tensors[n->in[0]].name, "x");
                assert_int_equal(y->dtype, SQZC_I8);
                assert_int_equal(y->q.kind, SQZC_Q_TENSOR);
            } else if (n->op == SQZ_OP_DEQUANTIZE_LINEAR) {
                ndq++;
                assert_string_equal(y->name, "logits");
                assert_int_equal(y->dtype, SQZC_F32);
            } else {
                assert_int_equal(y->dtype, SQZC_I8);
                assert_int_equal(y->q.kind, SQZC_Q_TENSOR);
                assert_true(y->q.zero_point[0] >= -128 && y->q.zero_point[0] <= 127);
            }
            if (n->op == SQZ_OP_CONV || n->op == SQZ_OP_GEMM) {
                const sqzc_tensor *w = &q8->tensors[n->in[1]];
                assert_non_null(w->i8);
                assert_int_equal(w->q.kind, SQZC_Q_CHANNEL);
                assert_int_equal(w->q.axis, 0); /* Conv: Cout; Gemm transB=1: N */
                assert_int_equal(w->q.n, w->shape.dims[0]);
                int64_t ne = sqz_shape_numel(&w->shape);
                int hit127 = 0;
                for (int64_t k = 0; k < ne; k++) {
                    assert_true(w->i8[k] >= -127);
                    hit127 |= w->i8[k] == 127 || w->i8[k] == -127;
                }
                assert_true(hit127); /* symmetric per channel: the max maps to +-127 */
                for (int c = 0; c < w->q.n; c++) assert_int_equal(w->q.zero_point[c], 0);
                if (strcmp(n->name, "c4") != 0) { /* c4 has no bias (correction may add one) */
                    const sqzc_tensor *b = &q8->tensors[n->in[2]];
                    assert_int_equal(b->dtype, SQZC_I32);
                    assert_non_null(b->i32);
                }
            }
            /* the Add read only by a Relu takes the Relu's parameters: a
             * range [0, hi] (zero point -128), the Relu an identity */
            if (n->op == SQZ_OP_RELU) {
                const sqzc_tensor *x = &q8->tensors[n->in[0]];
                assert_string_equal(x->name, "y8");
                assert_float_equal(x->q.scale[0], y->q.scale[0], 0);
                assert_int_equal(x->q.zero_point[0], -128);
                assert_int_equal(y->q.zero_point[0], -128);
            }
            /* views and ReLU-like followers share their input's parameters */
            if (n->op == SQZ_OP_FLATTEN) {
                const sqzc_tensor *x = &q8->tensors[n->in[0]];
                assert_float_equal(x->q.scale[0], y->q.scale[0], 0);
                assert_int_equal(x->q.zero_point[0], y->q.zero_point[0]);
            }
        }
        assert_int_equal(nq, 1);
        assert_int_equal(ndq, 1);
        /* report rows carry finite SQNR for every int8 layer */
        for (int i = 0; i < rep.n_layers; i++)
            if (rep.layers[i].int8) assert_true(isfinite(rep.layers[i].sqnr_db));
        if (method == SQZC_QM_KL) check_qdq(q8);
        double sq = sqnr_of(q8, ref);
        if (!(sq > 25.0))
            fail_msg("method %s: int8 vs fp32 SQNR %.2f dB", sqzc_qmethod_name(method), sq);
        /* the runtime skips that identity Relu (it runs in place): outputs
         * bit-identical to running it (SQZ_FUSE_RELU=0) */
        for (int i = 0; i < 2; i++) {
            float y_skip[5], y_run[5];
            run_graph(q8, g_inputs[i], y_skip, 5);
            assert_int_equal(setenv("SQZ_FUSE_RELU", "0", 1), 0);
            run_graph(q8, g_inputs[i], y_run, 5);
            assert_int_equal(unsetenv("SQZ_FUSE_RELU"), 0);
            assert_memory_equal(y_skip, y_run, sizeof y_skip);
        }
        sqzc_quant_report_free(&rep);
        sqzc_graph_free(q8);
    }
    /* fallback: an impossible threshold keeps every compute layer in fp32 */
    sqzc_graph *q8 = make_graph_opt(1);
    sqzc_quant_options o;
    sqzc_quant_options_init(&o);
    o.min_sqnr_db = 150;
    sqzc_quant_report rep;
    assert_int_equal(sqzc_quantize(q8, &set, &o, &rep, err, sizeof err), 0);
    assert_int_equal(rep.n_int8, 0);
    assert_int_equal(rep.n_fp32, 5);
    double sq = sqnr_of(q8, ref);
    assert_true(sq > 60.0); /* fp32 again (only the CLE rounding differs) */
    sqzc_quant_report_free(&rep);
    sqzc_graph_free(q8);
    sqzc_calib_set_free(&set);
    sqzc_graph_free(g);
}

/* The activation cache (the passes after the first replay the stored
 * activations) gives the same quantized model as running the model for every
 * pass: identical without equalization, within float rounding with it (the
 * cache is rescaled instead of recomputed). Batch 7: the last batch of 40 is
 * a padded one. */
static void test_cache_same_result(void **state) {
    (void)state;
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    for (int cle = 0; cle <= 1; cle++)
        for (int method = SQZC_QM_MINMAX; method <= SQZC_QM_MSE; method++) {
            sqzc_graph *a = make_graph(), *b = make_graph();
            sqzc_quant_options o;
            sqzc_quant_options_init(&o);
            o.method = method;
            o.cle = cle;
            o.batch = 7;
            o.bias_correction = method == SQZC_QM_MSE ? 2 : 1;
            if (sqzc_quantize(a, &set, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
            o.cache_bytes = 0;
            if (sqzc_quantize(b, &set, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
            assert_int_equal(a->n_tensors, b->n_tensors);
            int n_act = 0;
            for (int t = 0; t < a->n_tensors; t++) {
                const sqzc_tensor *x = &a->tensors[t], *y = &b->tensors[t];
                assert_string_equal(x->name, y->name);
                assert_int_equal(x->q.kind, y->q.kind);
                if (x->q.kind != SQZC_Q_TENSOR) continue;
                n_act++;
                float tol = cle ? 1e-4f * x->q.scale[0] : 0.0f;
                if (fabsf(x->q.scale[0] - y->q.scale[0]) > tol)
                    fail_msg("%s cle %d: '%s' scale %.9g vs %.9g", sqzc_qmethod_name(method), cle,
                             x->name, x->q.scale[0], y->q.scale[0]);
                assert_true(abs(x->q.zero_point[0] - y->q.zero_point[0]) <= cle);
            }
            assert_true(n_act >= 8);
            sqzc_graph_free(a);
            sqzc_graph_free(b);
        }
    sqzc_calib_set_free(&set);
}

/* Threads (image decoding, per-tensor statistics, ranges on OpenMP threads;
 * the runtime session's kernels): the same quantized model as one thread,
 * bit for bit, for every method (each tensor's statistics are gathered by
 * one thread, in image order). */
/* A set whose file checks are pending (sqzc_calib_set_parse) handed to
 * sqzc_quantize: it finishes them while it opens its sessions, and the model
 * is byte for byte the one from a checked set; a bad file among them fails
 * the quantization with the set's message (its manifest line). */
static void test_pending_set(void **state) {
    (void)state;
    sqzc_calib_set set, pend;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    sqzc_quant_options o;
    sqzc_quant_options_init(&o);
    o.num_threads = 2;
    sqzc_graph *a = make_graph(), *b = make_graph();
    if (sqzc_quantize(a, &set, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(sqzc_calib_set_parse(g_manifest, (size_t)1 << 20, &pend, err, sizeof err), 0);
    assert_true(sqzc_calib_set_pending(&pend));
    if (sqzc_quantize(b, &pend, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
    assert_false(sqzc_calib_set_pending(&pend));
    size_t na;
    free(assert_same_serialized(a, b, &na));
    assert_int_equal(sqzc_calib_set_check_done(&pend, err, sizeof err), 0);
    sqzc_calib_set_free(&pend);
    sqzc_calib_set_free(&set);
    sqzc_graph_free(a);
    sqzc_graph_free(b);
    /* x00, x01, a missing file on line 3, x02 */
    char p[1100];
    snprintf(p, sizeof p, "%s/pend_bad.txt", g_dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fprintf(f, "x00.npy\nx01.npy\nnot-there.npy\nx02.npy\n");
    assert_int_equal(fclose(f), 0);
    for (int threads = 1; threads <= 2; threads++) {
        assert_int_equal(sqzc_calib_set_parse(p, (size_t)1 << 20, &pend, err, sizeof err), 0);
        sqzc_graph *c = make_graph();
        o.num_threads = threads;
        err[0] = '\0';
        assert_int_not_equal(sqzc_quantize(c, &pend, &o, NULL, err, sizeof err), 0);
        if (!strstr(err, "pend_bad.txt:3") || !strstr(err, "cannot open"))
            fail_msg("error: %s", err);
        char e2[512];
        assert_int_not_equal(sqzc_calib_set_check_finish(&pend, e2, sizeof e2), 0);
        assert_string_equal(err, e2);
        sqzc_graph_free(c);
        sqzc_calib_set_free(&pend);
    }
}

static void test_threads_same_result(void **state) {
    (void)state;
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    for (int method = SQZC_QM_MINMAX; method <= SQZC_QM_MSE; method++) {
        sqzc_graph *a = make_graph_opt(1), *b = make_graph_opt(1);
        sqzc_quant_options o;
        sqzc_quant_options_init(&o);
        o.method = method;
        o.batch = 7;
        o.bias_correction = method == SQZC_QM_MSE ? 2 : 1; /* empirical: per-layer runs */
        o.rounding = method >= SQZC_QM_KL           ? SQZC_QR_GPTQ
                     : method == SQZC_QM_PERCENTILE ? SQZC_QR_GPTQ_SEQ
                                                    : SQZC_QR_NEAREST;
        if (sqzc_quantize(a, &set, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
        o.num_threads = 3;
        if (sqzc_quantize(b, &set, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
        assert_int_equal(a->n_tensors, b->n_tensors);
        int n_act = 0;
        for (int t = 0; t < a->n_tensors; t++) {
            const sqzc_tensor *x = &a->tensors[t], *y = &b->tensors[t];
            assert_int_equal(x->q.kind, y->q.kind);
            if (x->q.kind != SQZC_Q_TENSOR) continue;
            n_act++;
            if (x->q.scale[0] != y->q.scale[0] || x->q.zero_point[0] != y->q.zero_point[0])
                fail_msg("%s: '%s' %.9g/%d vs %.9g/%d with threads", sqzc_qmethod_name(method),
                         x->name, x->q.scale[0], x->q.zero_point[0], y->q.scale[0],
                         y->q.zero_point[0]);
        }
        /* weights and biases too (the bias correction's channel means) */
        for (int t = 0; t < a->n_tensors; t++) {
            const sqzc_tensor *x = &a->tensors[t], *y = &b->tensors[t];
            int64_t n = x->i8 || x->i32 ? sqz_shape_numel(&x->shape) : 0;
            assert_true(!x->i8 == !y->i8 && !x->i32 == !y->i32);
            if (x->i8) assert_memory_equal(x->i8, y->i8, (size_t)n);
            if (x->i32) assert_memory_equal(x->i32, y->i32, (size_t)n * 4);
        }
        assert_true(n_act >= 8);
        sqzc_graph_free(a);
        sqzc_graph_free(b);
    }
    sqzc_calib_set_free(&set);
}

/* graph_done: called once with the finished graph (the one sqzc_quantize
 * leaves, byte for byte), while the report is computed beside it (kept
 * images, 2 threads); the model and the report are those of a run without
 * it; an error it returns fails sqzc_quantize with its message. */
typedef struct done_rec {
    int calls, fail;
    uint8_t *bytes;
    size_t n;
} done_rec;

static int on_done(const sqzc_graph *g, void *user, char *err, size_t err_len) {
    done_rec *d = user;
    d->calls++;
    if (d->fail) {
        snprintf(err, err_len, "graph_done refused");
        return -1;
    }
    free(d->bytes);
    return sqzc_serialize(g, &d->bytes, &d->n, err, err_len);
}

static void test_graph_done_same_result(void **state) {
    (void)state;
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    for (int method = SQZC_QM_MINMAX; method <= SQZC_QM_MSE; method++)
        for (int threads = 1; threads <= 2; threads++) {
            sqzc_graph *a = make_graph_opt(1), *b = make_graph_opt(1);
            sqzc_quant_options o;
            sqzc_quant_options_init(&o);
            o.method = method;
            o.batch = 7;
            o.num_threads = threads;
            sqzc_quant_report ra, rb;
            if (sqzc_quantize(a, &set, &o, &ra, err, sizeof err) != 0) fail_msg("%s", err);
            done_rec d = {0, 0, NULL, 0};
            o.graph_done = on_done;
            o.graph_done_user = &d;
            if (sqzc_quantize(b, &set, &o, &rb, err, sizeof err) != 0) fail_msg("%s", err);
            assert_int_equal(d.calls, 1);
            size_t na;
            uint8_t *ba = assert_same_serialized(a, b, &na);
            assert_int_equal(d.n, na);
            assert_memory_equal(d.bytes, ba, na);
            assert_int_equal(ra.n_layers, rb.n_layers);
            assert_int_equal(ra.n_quantize, rb.n_quantize);
            assert_int_equal(ra.n_dequantize, rb.n_dequantize);
            int measured = 0;
            for (int k = 0; k < ra.n_layers; k++) {
                const sqzc_quant_layer *x = &ra.layers[k], *y = &rb.layers[k];
                assert_string_equal(x->tensor, y->tensor);
                assert_true(isnan(x->sqnr_db) == isnan(y->sqnr_db));
                if (isnan(x->sqnr_db)) continue;
                measured++;
                assert_true(x->sqnr_db == y->sqnr_db && x->cosine == y->cosine);
            }
            assert_true(measured >= 5);
            free(ba);
            sqzc_quant_report_free(&ra);
            sqzc_quant_report_free(&rb);
            /* a failing graph_done fails the quantization, its message kept */
            sqzc_graph *c = make_graph_opt(1);
            d.fail = 1;
            d.calls = 0;
            err[0] = '\0';
            assert_int_not_equal(sqzc_quantize(c, &set, &o, NULL, err, sizeof err), 0);
            assert_int_equal(d.calls, 1);
            assert_string_equal(err, "graph_done refused");
            free(d.bytes);
            sqzc_graph_free(a);
            sqzc_graph_free(b);
            sqzc_graph_free(c);
        }
    sqzc_calib_set_free(&set);
}

/* --weight-scale mse: per output channel, the squared error of the int8
 * weights (q * scale against the fp32 weights) is at most max-abs scaling's
 * (max-abs is one of its candidates), the scales at most max-abs's, the
 * values in [-127, 127]; and on a channel built for it (conv1's first: 1.0
 * and 26 values k / 128, which a step near 2^-7 that clips the 1.0 by less
 * than a step represents almost exactly) the error is at least halved. */
static int find_tensor(const sqzc_graph *g, const char *name) {
    for (int t = 0; t < g->n_tensors; t++)
        if (strcmp(g->tensors[t].name, name) == 0) return t;
    return -1;
}

static void test_weight_scale_mse(void **state) {
    (void)state;
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    sqzc_graph *g[3];
    for (int k = 0; k < 3; k++) {
        g[k] = make_graph();
        sqzc_tensor *w1 = &g[k]->tensors[find_tensor(g[k], "w1")];
        w1->f32[0] = 1.0f;
        for (int j = 1; j < 27; j++) w1->f32[j] = (float)(70 + j) / 128.0f;
        if (k == 2) break;
        sqzc_quant_options o;
        sqzc_quant_options_init(&o);
        o.cle = 0; /* weights as built */
        o.weight_mse = k;
        if (sqzc_quantize(g[k], &set, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
    }
    sqzc_graph *ref = g[2];
    static const char *const names[] = {"w1", "w2", "w3", "w5", "w4"};
    int gains = 0;
    for (int i = 0; i < 5; i++) {
        const sqzc_tensor *wf = &ref->tensors[find_tensor(ref, names[i])];
        const sqzc_tensor *wq[2];
        for (int k = 0; k < 2; k++) {
            char nm[32];
            snprintf(nm, sizeof nm, "%s_int8", names[i]);
            int t = find_tensor(g[k], nm);
            assert_true(t >= 0);
            wq[k] = &g[k]->tensors[t];
            assert_non_null(wq[k]->i8);
            assert_int_equal(wq[k]->q.kind, SQZC_Q_CHANNEL);
        }
        const int nc = wq[0]->q.n, axis = wq[0]->q.axis;
        const int64_t n = sqz_shape_numel(&wf->shape), inner = n / nc;
        for (int c = 0; c < nc; c++) {
            double e[2] = {0, 0};
            for (int64_t j = 0; j < inner; j++) {
                /* axis 0: [C, inner]; axis 1 (Gemm B [K, N]): column c */
                int64_t idx = axis == 0 ? c * inner + j : j * nc + c;
                for (int k = 0; k < 2; k++) {
                    int q = wq[k]->i8[idx];
                    assert_true(q >= -127 && q <= 127);
                    double d = (double)q * wq[k]->q.scale[c] - wf->f32[idx];
                    e[k] += d * d;
                }
            }
            if (e[1] > e[0] * (1 + 1e-6) + 1e-12)
                fail_msg("%s channel %d: mse error %g > max-abs error %g", names[i], c, e[1], e[0]);
            assert_true(wq[1]->q.scale[c] <= wq[0]->q.scale[c]);
            if (i == 0 && c == 0) gains += e[1] < 0.5 * e[0];
        }
    }
    assert_true(gains >= 1);
    for (int k = 0; k < 3; k++) sqzc_graph_free(g[k]);
    sqzc_calib_set_free(&set);
}

/* A set given as one npy_batch file gives the same model as the same samples
 * in one .npy file each, bit for bit, with one thread and with three (images
 * in parallel, batches of 7: ranges of samples read across batches). */
static void test_npy_batch_same_model(void **state) {
    (void)state;
    sqzc_calib_set set[2];
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set[0], err, sizeof err), 0);
    assert_int_equal(sqzc_calib_set_read(g_manifest_b, &set[1], err, sizeof err), 0);
    assert_int_equal(set[1].n_items, NIMG);
    for (int th = 1; th <= 3; th += 2) {
        sqzc_graph *g[2];
        for (int k = 0; k < 2; k++) {
            g[k] = make_graph_opt(1);
            sqzc_quant_options o;
            sqzc_quant_options_init(&o);
            o.batch = 7;
            o.num_threads = th;
            o.bias_correction = 2;
            if (sqzc_quantize(g[k], &set[k], &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
        }
        uint8_t *buf[2];
        size_t size[2];
        for (int k = 0; k < 2; k++)
            assert_int_equal(sqzc_serialize(g[k], &buf[k], &size[k], err, sizeof err), 0);
        assert_int_equal(size[0], size[1]);
        assert_memory_equal(buf[0], buf[1], size[0]);
        for (int k = 0; k < 2; k++) {
            free(buf[k]);
            sqzc_graph_free(g[k]);
        }
    }
    sqzc_calib_set_free(&set[0]);
    sqzc_calib_set_free(&set[1]);
}

/* One calibration shared by several quantizations (sqz quant --method auto)
 * gives the same models as separate sqzc_quantize calls, for each method and
 * bias correction, on fresh copies of the graph; a graph that is not a copy
 * is refused. */
static void test_shared_calibration(void **state) {
    (void)state;
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    sqzc_quant_options o;
    sqzc_quant_options_init(&o);
    sqzc_graph *g0 = make_graph();
    sqzc_quant_calib *cal = NULL;
    if (sqzc_quant_calibrate(g0, &set, &o, &cal, err, sizeof err) != 0) fail_msg("%s", err);
    /* GPTQ's factors are computed by the first candidate that rounds with it
     * and kept with the calibration for the others */
    for (int method = SQZC_QM_MINMAX; method <= SQZC_QM_MSE; method++)
        for (int bc = 1; bc <= 4; bc++) {
            sqzc_graph *a = make_graph(), *b = make_graph();
            o.method = method;
            o.bias_correction = 1 + (bc - 1) % 2;
            o.rounding = bc > 2 ? SQZC_QR_GPTQ : SQZC_QR_NEAREST;
            if (sqzc_quantize(a, &set, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
            if (sqzc_quantize_calibrated(b, cal, &o, NULL, err, sizeof err) != 0)
                fail_msg("%s", err);
            assert_int_equal(a->n_tensors, b->n_tensors);
            for (int t = 0; t < a->n_tensors; t++) {
                const sqzc_tensor *x = &a->tensors[t], *y = &b->tensors[t];
                assert_string_equal(x->name, y->name);
                assert_int_equal(x->q.kind, y->q.kind);
                for (int k = 0; k < x->q.n; k++) {
                    if (x->q.scale[k] != y->q.scale[k])
                        fail_msg("%s bc %d: '%s' scale %.9g vs %.9g", sqzc_qmethod_name(method), bc,
                                 x->name, x->q.scale[k], y->q.scale[k]);
                    assert_int_equal(x->q.zero_point[k], y->q.zero_point[k]);
                }
                int64_t n = x->i8 || x->i32 ? sqz_shape_numel(&x->shape) : 0;
                if (x->i8) assert_memory_equal(x->i8, y->i8, (size_t)n);
                if (x->i32) assert_memory_equal(x->i32, y->i32, (size_t)n * 4);
            }
            sqzc_graph_free(a);
            sqzc_graph_free(b);
        }
    /* not a copy of the calibrated graph */
    sqzc_graph *other = make_graph();
    int extra = sqzc_tensor_get_or_add(other, "extra");
    assert_true(extra >= 0);
    assert_int_equal(sqzc_quantize_calibrated(other, cal, &o, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "differs"));
    sqzc_graph_free(other);
    sqzc_quant_calib_free(cal);
    sqzc_graph_free(g0);
    sqzc_calib_set_free(&set);
}

/* Empirical bias correction: the int8 model's mean output error per logit
 * over the calibration images (where it is measured) is smaller than with
 * the analytic correction alone, whose mean error the clipping of the
 * percentile range leaves. */
static void test_empirical_bias_correction(void **state) {
    (void)state;
    sqzc_graph *g = make_graph();
    float ref[NIMG][5];
    for (int i = 0; i < NIMG; i++) run_graph(g, g_inputs[i], ref[i], 5);
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    double bias_abs[3] = {0, 0, 0};
    for (int bc = 0; bc <= 2; bc++) {
        sqzc_graph *q8 = make_graph();
        sqzc_quant_options o;
        sqzc_quant_options_init(&o);
        o.method = SQZC_QM_PERCENTILE;
        o.percentile = 99.0;
        o.bias_correction = bc;
        if (sqzc_quantize(q8, &set, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
        double mean[5] = {0, 0, 0, 0, 0};
        float y[5];
        for (int i = 0; i < NIMG; i++) {
            run_graph(q8, g_inputs[i], y, 5);
            for (int k = 0; k < 5; k++) mean[k] += ((double)y[k] - ref[i][k]) / NIMG;
        }
        for (int k = 0; k < 5; k++) bias_abs[bc] += fabs(mean[k]);
        sqzc_graph_free(q8);
    }
    print_message("mean |logit error|: none %.5f analytic %.5f empirical %.5f\n", bias_abs[0],
                  bias_abs[1], bias_abs[2]);
    if (!(bias_abs[2] < 0.5 * bias_abs[1]))
        fail_msg("empirical %.5f vs analytic %.5f", bias_abs[2], bias_abs[1]);
    sqzc_calib_set_free(&set);
    sqzc_graph_free(g);
}

/* SqueezeNet-style fire module: conv -> (1x1 ReLU, 3x3 ReLU) -> Concat ->
 * GAP -> Gemm. The two expand convs' outputs, read only by the Concat, take
 * the Concat output's parameters (it then copies bytes); the int8 output
 * stays close to fp32. */
static sqzc_graph *make_concat_graph(void) {
    tu_rng r;
    tu_rng_seed(&r, 44);
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    g->tensors[x].shape = (sqz_shape){4, {1, 3, 8, 8}};
    g->tensors[x].has_shape = 1;
    int w1 = add_const(g, "w1", (sqz_shape){4, {4, 3, 3, 3}}, &r, -0.5f, 0.5f);
    int b1 = add_const(g, "b1", (sqz_shape){1, {4}}, &r, 0.0f, 0.2f);
    int wa = add_const(g, "wa", (sqz_shape){4, {6, 4, 1, 1}}, &r, -0.6f, 0.6f);
    int ba = add_const(g, "ba", (sqz_shape){1, {6}}, &r, -0.1f, 0.1f);
    int wb = add_const(g, "wb", (sqz_shape){4, {6, 4, 3, 3}}, &r, -0.3f, 0.3f);
    int bb = add_const(g, "bb", (sqz_shape){1, {6}}, &r, -0.1f, 0.1f);
    int w4 = add_const(g, "w4", (sqz_shape){2, {5, 12}}, &r, -0.5f, 0.5f);
    int b4 = add_const(g, "b4", (sqz_shape){1, {5}}, &r, -0.1f, 0.1f);
    const char *nm[] = {"s", "ea", "eb", "cat", "p", "f", "logits"};
    int t[7];
    for (int i = 0; i < 7; i++) t[i] = sqzc_tensor_get_or_add(g, nm[i]);
    int n = sqzc_add_node(g, SQZ_OP_CONV, "squeeze", 3, (int32_t[]){x, w1, b1}, 1, &t[0]);
    conv_attrs(g, n, 3, 1, SQZ_ACT_RELU);
    n = sqzc_add_node(g, SQZ_OP_CONV, "e1", 3, (int32_t[]){t[0], wa, ba}, 1, &t[1]);
    conv_attrs(g, n, 1, 1, SQZ_ACT_RELU);
    n = sqzc_add_node(g, SQZ_OP_CONV, "e3", 3, (int32_t[]){t[0], wb, bb}, 1, &t[2]);
    conv_attrs(g, n, 3, 1, SQZ_ACT_RELU);
    n = sqzc_add_node(g, SQZ_OP_CONCAT, "cat", 2, (int32_t[]){t[1], t[2]}, 1, &t[3]);
    assert_int_equal(sqzc_node_set_int(g, n, "axis", 1), 0);
    sqzc_add_node(g, SQZ_OP_GLOBAL_AVGPOOL, "gap", 1, &t[3], 1, &t[4]);
    sqzc_add_node(g, SQZ_OP_FLATTEN, "flat", 1, &t[4], 1, &t[5]);
    n = sqzc_add_node(g, SQZ_OP_GEMM, "fc", 3, (int32_t[]){t[5], w4, b4}, 1, &t[6]);
    assert_int_equal(sqzc_node_set_int(g, n, "transB", 1), 0);
    return finish_graph(g, x, t[6]);
}

static void test_quantize_concat(void **state) {
    (void)state;
    sqzc_graph *g = make_concat_graph();
    float ref[NIMG][5];
    for (int i = 0; i < NIMG; i++) run_graph(g, g_inputs[i], ref[i], 5);
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    for (int method = SQZC_QM_MINMAX; method <= SQZC_QM_MSE; method++) {
        sqzc_graph *q8 = make_concat_graph();
        sqzc_quant_options o;
        sqzc_quant_options_init(&o);
        o.method = method;
        if (sqzc_quantize(q8, &set, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
        int found = 0;
        for (int i = 0; i < q8->n_nodes; i++) {
            const sqzc_node *n = &q8->nodes[i];
            if (n->op != SQZ_OP_CONCAT) continue;
            found = 1;
            const sqzc_tensor *y = &q8->tensors[n->out[0]];
            assert_int_equal(y->dtype, SQZC_I8);
            for (uint32_t k = 0; k < n->n_in; k++) {
                const sqzc_tensor *x = &q8->tensors[n->in[k]];
                assert_int_equal(x->dtype, SQZC_I8);
                if (x->q.scale[0] != y->q.scale[0] || x->q.zero_point[0] != y->q.zero_point[0])
                    fail_msg("%s: concat input '%s' %.9g/%d, output %.9g/%d",
                             sqzc_qmethod_name(method), x->name, x->q.scale[0], x->q.zero_point[0],
                             y->q.scale[0], y->q.zero_point[0]);
            }
        }
        assert_true(found);
        double sq = sqnr_of(q8, ref);
        if (!(sq > 25.0))
            fail_msg("method %s: int8 vs fp32 SQNR %.2f dB", sqzc_qmethod_name(method), sq);
        /* the runtime places both expand outputs in the Concat's output (the
         * int8 Concat then does not run): bit-identical to running it */
        for (int i = 0; i < 2; i++) {
            float y_in[5], y_copy[5];
            run_graph(q8, g_inputs[i], y_in, 5);
            assert_int_equal(setenv("SQZ_CONCAT_IN_PLACE", "0", 1), 0);
            run_graph(q8, g_inputs[i], y_copy, 5);
            assert_int_equal(unsetenv("SQZ_CONCAT_IN_PLACE"), 0);
            assert_memory_equal(y_in, y_copy, sizeof y_in);
        }
        sqzc_graph_free(q8);
    }
    sqzc_calib_set_free(&set);
    sqzc_graph_free(g);
}

/* EfficientNet-style block: conv -> SiLU (Sigmoid + Mul) -> squeeze-excite
 * (GAP, 1x1 conv, SiLU, 1x1 conv with a fused Sigmoid, broadcast Mul) -> GAP
 * -> Gemm. Quantized, every node runs in int8 (the fused Sigmoid split off
 * into its own node, the SiLU as the runtime's table) and the output stays
 * close to fp32. */
static sqzc_graph *make_se_graph(void) {
    tu_rng r;
    tu_rng_seed(&r, 43);
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    g->tensors[x].shape = (sqz_shape){4, {1, 3, 8, 8}};
    g->tensors[x].has_shape = 1;
    int w1 = add_const(g, "w1", (sqz_shape){4, {8, 3, 3, 3}}, &r, -0.5f, 0.5f);
    int b1 = add_const(g, "b1", (sqz_shape){1, {8}}, &r, -0.2f, 0.2f);
    int ws1 = add_const(g, "ws1", (sqz_shape){4, {4, 8, 1, 1}}, &r, -0.8f, 0.8f);
    int bs1 = add_const(g, "bs1", (sqz_shape){1, {4}}, &r, -0.1f, 0.1f);
    int ws2 = add_const(g, "ws2", (sqz_shape){4, {8, 4, 1, 1}}, &r, -0.8f, 0.8f);
    int bs2 = add_const(g, "bs2", (sqz_shape){1, {8}}, &r, -0.1f, 0.1f);
    int w4 = add_const(g, "w4", (sqz_shape){2, {5, 8}}, &r, -0.5f, 0.5f);
    int b4 = add_const(g, "b4", (sqz_shape){1, {5}}, &r, -0.1f, 0.1f);
    const char *nm[] = {"y1", "s1", "a1", "p1", "e1", "es", "ea", "gt", "m1", "p2", "f2", "logits"};
    int t[12];
    for (int i = 0; i < 12; i++) t[i] = sqzc_tensor_get_or_add(g, nm[i]);
    int n = sqzc_add_node(g, SQZ_OP_CONV, "conv1", 3, (int32_t[]){x, w1, b1}, 1, &t[0]);
    conv_attrs(g, n, 3, 1, SQZ_ACT_NONE);
    sqzc_add_node(g, SQZ_OP_SIGMOID, "sig1", 1, &t[0], 1, &t[1]);
    sqzc_add_node(g, SQZ_OP_MUL, "silu1", 2, (int32_t[]){t[0], t[1]}, 1, &t[2]);
    sqzc_add_node(g, SQZ_OP_GLOBAL_AVGPOOL, "sq", 1, &t[2], 1, &t[3]);
    n = sqzc_add_node(g, SQZ_OP_CONV, "se1", 3, (int32_t[]){t[3], ws1, bs1}, 1, &t[4]);
    conv_attrs(g, n, 1, 1, SQZ_ACT_NONE);
    sqzc_add_node(g, SQZ_OP_SIGMOID, "sig2", 1, &t[4], 1, &t[5]);
    sqzc_add_node(g, SQZ_OP_MUL, "silu2", 2, (int32_t[]){t[5], t[4]}, 1, &t[6]);
    n = sqzc_add_node(g, SQZ_OP_CONV, "se2", 3, (int32_t[]){t[6], ws2, bs2}, 1, &t[7]);
    conv_attrs(g, n, 1, 1, SQZ_ACT_SIGMOID);
    sqzc_add_node(g, SQZ_OP_MUL, "gate", 2, (int32_t[]){t[7], t[2]}, 1, &t[8]);
    sqzc_add_node(g, SQZ_OP_GLOBAL_AVGPOOL, "gap", 1, &t[8], 1, &t[9]);
    sqzc_add_node(g, SQZ_OP_FLATTEN, "flat", 1, &t[9], 1, &t[10]);
    n = sqzc_add_node(g, SQZ_OP_GEMM, "fc", 3, (int32_t[]){t[10], w4, b4}, 1, &t[11]);
    assert_int_equal(sqzc_node_set_int(g, n, "transB", 1), 0);
    return finish_graph(g, x, t[11]);
}

static void test_quantize_se_block(void **state) {
    (void)state;
    sqzc_graph *g = make_se_graph();
    float ref[NIMG][5];
    for (int i = 0; i < NIMG; i++) run_graph(g, g_inputs[i], ref[i], 5);
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    sqzc_graph *q8 = make_se_graph();
    sqzc_quant_options o;
    sqzc_quant_options_init(&o);
    o.method = SQZC_QM_MINMAX;
    sqzc_quant_report rep;
    if (sqzc_quantize(q8, &set, &o, &rep, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(rep.n_int8, 4);
    assert_int_equal(rep.n_quantize, 1);
    assert_int_equal(rep.n_dequantize, 1);
    int nsig = 0;
    for (int i = 0; i < q8->n_nodes; i++) {
        const sqzc_node *n = &q8->nodes[i];
        if (n->op == SQZ_OP_QUANTIZE_LINEAR || n->op == SQZ_OP_DEQUANTIZE_LINEAR) continue;
        if (q8->tensors[n->out[0]].dtype != SQZC_I8) fail_msg("node %s not int8", n->name);
        nsig += n->op == SQZ_OP_SIGMOID;
        if (n->op == SQZ_OP_CONV) {
            sqz_node v;
            sqzc_node_view(q8, i, &v);
            assert_int_equal(sqz_attr_int(&v, "sqz_act", SQZ_ACT_NONE), SQZ_ACT_NONE);
        }
    }
    assert_int_equal(nsig, 3); /* two SiLU halves and the split-off gate */
    double sq = sqnr_of(q8, ref);
    if (!(sq > 35.0)) fail_msg("SE block int8 vs fp32 SQNR %.2f dB", sq);
    sqzc_quant_report_free(&rep);
    sqzc_graph_free(q8);
    /* one calibration, then quantization of a fresh copy (sqz quant --method
     * auto): the copy gets the same split, and the same model */
    sqzc_quant_calib *cal = NULL;
    sqzc_graph *gc = make_se_graph(), *g2 = make_se_graph();
    if (sqzc_quant_calibrate(gc, &set, &o, &cal, err, sizeof err) != 0) fail_msg("%s", err);
    if (sqzc_quantize_calibrated(g2, cal, &o, &rep, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(rep.n_int8, 4);
    double sq2 = sqnr_of(g2, ref);
    if (!(sq2 > 35.0)) fail_msg("SE block (calibrated once) SQNR %.2f dB", sq2);
    sqzc_quant_report_free(&rep);
    sqzc_quant_calib_free(cal);
    sqzc_graph_free(g2);
    sqzc_graph_free(gc);
    sqzc_calib_set_free(&set);
    sqzc_graph_free(g);
}

/* ---- GPTQ rounding (gptq.h) ---- */
/* ||(w - q * s) X||^2 over the samples (columns of xs [n][ns]) */
static double recon_err(const float *w, const int8_t *q, const float *s, int rows, int n,
                        const float *xs, int ns) {
    double e = 0;
    for (int r = 0; r < rows; r++)
        for (int p = 0; p < ns; p++) {
            double d = 0;
            for (int i = 0; i < n; i++)
                d += ((double)w[r * n + i] - (double)q[r * n + i] * s[r]) * xs[i * ns + p];
            e += d * d;
        }
    return e;
}

/* H + lambda I = (U^T U)^-1 for U from q_gptq_factor (upper triangular),
 * and an input never seen (H[i][i] = 0) is decoupled */
static void test_gptq_factor(void **state) {
    (void)state;
    enum { N = 7, S = 40 };
    tu_rng r;
    tu_rng_seed(&r, 11);
    float x[N][S];
    for (int i = 0; i < N; i++) tu_fill_uniform(&r, x[i], S, -1.0f, 1.0f);
    for (int p = 0; p < S; p++) x[3][p] = 0; /* a dead input */
    double h[N * N], u[N * N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double a = 0;
            for (int p = 0; p < S; p++) a += (double)x[i][p] * x[j][p];
            h[i * N + j] = a;
        }
    double mean = 0;
    for (int i = 0; i < N; i++) mean += h[i * N + i];
    mean /= N;
    memcpy(u, h, sizeof h);
    assert_int_equal(q_gptq_factor(u, N, 0.01), 0);
    h[3 * N + 3] = 1; /* as the factor treats it */
    for (int i = 0; i < N; i++) h[i * N + i] += 0.01 * mean;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++) assert_true(u[i * N + j] == 0.0);
    /* (U^T U) H = I */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double a = 0;
            for (int k = 0; k < N; k++) {
                double m = 0; /* (U^T U)[i][k] */
                for (int l = 0; l < N; l++) m += u[l * N + i] * u[l * N + k];
                a += m * h[k * N + j];
            }
            if (fabs(a - (i == j)) > 1e-9) fail_msg("(U^T U H)[%d][%d] = %.12g", i, j, a);
        }
    for (int j = 0; j < N; j++)
        if (j != 3) assert_true(u[3 * N + j] == 0.0 && u[j * N + 3] == 0.0);
    /* not positive definite (no damping, a zero direction): refused */
    double z[4] = {1, 1, 1, 1};
    assert_int_equal(q_gptq_factor(z, 2, 0.0), 1);
}

/* On correlated inputs GPTQ's rounding has less output error than rounding
 * to nearest with the same scales (here a coarse step, where it shows), in
 * input order and in a permuted order; with uncorrelated inputs (H
 * diagonal) it is rounding to nearest exactly. */
static void test_gptq_round(void **state) {
    (void)state;
    enum { R = 6, N = 24, S = 300 };
    tu_rng r;
    tu_rng_seed(&r, 5);
    static float w[R * N], xs[N * S], z[N * S];
    float sc[R];
    tu_fill_uniform(&r, w, R * N, -1.0f, 1.0f);
    tu_fill_uniform(&r, z, N * S, -1.0f, 1.0f);
    /* x_i = z_i + 0.8 z_{i-1} + 0.5 z_{i-2}: neighbours correlated */
    for (int i = 0; i < N; i++)
        for (int p = 0; p < S; p++)
            xs[i * S + p] = z[i * S + p] + (i > 0 ? 0.8f * z[(i - 1) * S + p] : 0.0f) +
                            (i > 1 ? 0.5f * z[(i - 2) * S + p] : 0.0f);
    for (int k = 0; k < R; k++) {
        float m = 0;
        for (int i = 0; i < N; i++) m = fabsf(w[k * N + i]) > m ? fabsf(w[k * N + i]) : m;
        sc[k] = m / 7.0f; /* 4-bit-like step */
    }
    static double h[N * N];
    memset(h, 0, sizeof h);
    const int ld = q_gptq_ld(N);
    static float buf[S * 24];
    assert_true(ld <= 24);
    for (int p = 0; p < S; p++)
        for (int i = 0; i < ld; i++) buf[p * ld + i] = i < N ? xs[i * S + p] : 0.0f;
    q_gptq_gram(h, N, S, buf, ld);
    static int8_t qn[R * N], qg[R * N], qp[R * N];
    for (int k = 0; k < R * N; k++) {
        float v = rintf(w[k] / sc[k / N]);
        qn[k] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    double u[N * N];
    memcpy(u, h, sizeof u);
    assert_int_equal(q_gptq_factor(u, N, 0.01), 0);
    assert_int_equal(q_gptq_round(u, NULL, N, w, sc, 0, R, qg), 0);
    /* reversed order: H permuted the same way */
    int perm[N];
    double hp[N * N];
    for (int i = 0; i < N; i++) perm[i] = N - 1 - i;
    for (int a = 0; a < N; a++)
        for (int b = a; b < N; b++) {
            int ia = perm[a], ib = perm[b];
            hp[a * N + b] = ia <= ib ? h[ia * N + ib] : h[ib * N + ia];
        }
    assert_int_equal(q_gptq_factor(hp, N, 0.01), 0);
    assert_int_equal(q_gptq_round(hp, perm, N, w, sc, 0, R, qp), 0);
    const double en = recon_err(w, qn, sc, R, N, xs, S), eg = recon_err(w, qg, sc, R, N, xs, S),
                 ep = recon_err(w, qp, sc, R, N, xs, S);
    if (!(eg < 0.7 * en) || !(ep < 0.7 * en))
        fail_msg("output error: nearest %.4g, gptq %.4g, gptq reversed %.4g", en, eg, ep);
    /* rows are independent: a range of rows gives the same rows */
    int8_t q2[R * N];
    memset(q2, 0, sizeof q2);
    assert_int_equal(q_gptq_round(u, NULL, N, w, sc, 2, 5, q2), 0);
    assert_memory_equal(q2 + 2 * N, qg + 2 * N, 3 * N);
    /* diagonal H: no error feedback */
    double d[N * N];
    memset(d, 0, sizeof d);
    for (int i = 0; i < N; i++) d[i * N + i] = 1.0 + i;
    assert_int_equal(q_gptq_factor(d, N, 0.01), 0);
    assert_int_equal(q_gptq_round(d, NULL, N, w, sc, 0, R, qg), 0);
    assert_memory_equal(qg, qn, R * N);
}

/* a strided, padded, dilated conv geometry with odd sizes (the 4 x 8
 * tiles' edges), shared by the patch tests */
static const q_patch_geom patch_geom_odd = {.cin = 3,
                                            .ih = 7,
                                            .iw = 6,
                                            .kh = 3,
                                            .kw = 2,
                                            .sh = 2,
                                            .sw = 1,
                                            .dh = 1,
                                            .dw = 2,
                                            .pt = 1,
                                            .pl = 1,
                                            .oh = 4,
                                            .ow = 5};

/* The patches of a strided, padded, dilated conv and their Gram matrix
 * against direct sums (odd sizes: the 4 x 8 tiles' edges) */
static void test_gptq_patches_gram(void **state) {
    (void)state;
    const q_patch_geom g = patch_geom_odd;
    enum { NIN = 18, NP = 20 };
    tu_rng r;
    tu_rng_seed(&r, 9);
    float x[3 * 7 * 6];
    tu_fill_uniform(&r, x, 3 * 7 * 6, -2.0f, 2.0f);
    const int ld = q_gptq_ld(NIN);
    assert_int_equal(ld, 24);
    float buf[NP * 24];
    memset(buf, 0x7f, sizeof buf);
    q_gptq_patches(&g, x, buf, ld);
    for (int oy = 0; oy < 4; oy++)
        for (int ox = 0; ox < 5; ox++)
            for (int i = 0; i < ld; i++) {
                float want = 0;
                if (i < NIN) {
                    int c = i / 6, ky = i / 2 % 3, kx = i % 2;
                    int iy = oy * 2 - 1 + ky, ix = ox - 1 + 2 * kx;
                    want = iy >= 0 && iy < 7 && ix >= 0 && ix < 6 ? x[(c * 7 + iy) * 6 + ix] : 0;
                }
                assert_true(buf[(oy * 5 + ox) * ld + i] == want);
            }
    double h[NIN * NIN];
    memset(h, 0, sizeof h);
    q_gptq_gram(h, NIN, NP, buf, ld);
    q_gptq_gram(h, NIN, NP, buf, ld); /* accumulates */
    for (int i = 0; i < NIN; i++)
        for (int j = 0; j < NIN; j++) {
            double want = 0;
            for (int p = 0; p < NP; p++) want += 2.0 * buf[p * ld + i] * buf[p * ld + j];
            if (j < i) want = 0; /* the upper triangle only */
            if (fabs(h[i * NIN + j] - want) > 1e-4 * (1 + fabs(want)))
                fail_msg("H[%d][%d] %.8g, want %.8g", i, j, h[i * NIN + j], want);
        }
}

/* Sequential GPTQ's least squares (gptq.h q_gptq_xcorr, q_gptq_apply_inv):
 * G = W (X - Xt) Xt^T summed over two calls matches the direct double sums,
 * W* = W + G (Ht + lambda I)^-1 solves its normal equations (in input order
 * and permuted), and on inputs the int8 model distorts (Xt = 0.9 X + noise:
 * a gain error, as a clipped range gives) W* Xt reproduces W X far better
 * than W Xt does. */
static void test_gptq_xcorr(void **state) {
    (void)state;
    enum { R = 5, N = 11, S = 200 };
    tu_rng r;
    tu_rng_seed(&r, 17);
    static float w[R * N], bx[S * 16], bt[S * 16], noise[S * N];
    const int ld = q_gptq_ld(N);
    assert_int_equal(ld, 16);
    tu_fill_uniform(&r, w, R * N, -1.0f, 1.0f);
    tu_fill_uniform(&r, noise, S * N, -0.05f, 0.05f);
    memset(bx, 0, sizeof bx);
    memset(bt, 0, sizeof bt);
    for (int p = 0; p < S; p++) {
        float z[N];
        tu_fill_uniform(&r, z, N, -1.0f, 1.0f);
        for (int i = 0; i < N; i++) {
            bx[p * ld + i] = z[i] + (i > 0 ? 0.6f * z[i - 1] : 0.0f);
            bt[p * ld + i] = 0.9f * bx[p * ld + i] + noise[p * N + i];
        }
    }
    static double g[R * N], h[N * N];
    memset(g, 0, sizeof g);
    memset(h, 0, sizeof h);
    assert_int_equal(q_gptq_xcorr(g, R, N, w, 120, bx, bt, ld), 0);
    assert_int_equal(q_gptq_xcorr(g, R, N, w, S - 120, bx + 120 * ld, bt + 120 * ld, ld), 0);
    q_gptq_gram(h, N, S, bt, ld);
    for (int k = 0; k < R; k++)
        for (int i = 0; i < N; i++) {
            double want = 0;
            for (int p = 0; p < S; p++) {
                double d = 0;
                for (int j = 0; j < N; j++)
                    d += (double)w[k * N + j] * (bx[p * ld + j] - bt[p * ld + j]);
                want += d * bt[p * ld + i];
            }
            if (fabs(g[k * N + i] - want) > 1e-4 * (1 + fabs(want)))
                fail_msg("G[%d][%d] %.8g, want %.8g", k, i, g[k * N + i], want);
        }
    /* full symmetric H + lambda I, as q_gptq_factor damps it */
    double hf[N * N], mean = 0;
    for (int i = 0; i < N; i++) mean += h[i * N + i];
    mean /= N;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) hf[i * N + j] = i <= j ? h[i * N + j] : h[j * N + i];
    for (int i = 0; i < N; i++) hf[i * N + i] += 0.01 * mean;
    for (int pass = 0; pass < 2; pass++) {
        int perm[N];
        double u[N * N];
        for (int i = 0; i < N; i++) perm[i] = pass ? N - 1 - i : i;
        for (int a = 0; a < N; a++)
            for (int b = a; b < N; b++) {
                int ia = perm[a], ib = perm[b];
                u[a * N + b] = ia <= ib ? h[ia * N + ib] : h[ib * N + ia];
            }
        assert_int_equal(q_gptq_factor(u, N, 0.01), 0);
        float ws[R * N];
        memcpy(ws, w, sizeof ws);
        for (int k = 0; k < R; k++)
            assert_int_equal(q_gptq_apply_inv(u, pass ? perm : NULL, N, g + k * N, ws + k * N), 0);
        /* (W* - W)(H + lambda I) = G */
        for (int k = 0; k < R; k++)
            for (int j = 0; j < N; j++) {
                double a = 0;
                for (int i = 0; i < N; i++)
                    a += ((double)ws[k * N + i] - w[k * N + i]) * hf[i * N + j];
                if (fabs(a - g[k * N + j]) > 1e-4 * (1 + fabs(g[k * N + j])))
                    fail_msg("pass %d: ((W* - W) H)[%d][%d] %.8g, G %.8g", pass, k, j, a,
                             g[k * N + j]);
            }
        double e0 = 0, e1 = 0;
        for (int k = 0; k < R; k++)
            for (int p = 0; p < S; p++) {
                double y = 0, y0 = 0, y1 = 0;
                for (int i = 0; i < N; i++) {
                    y += (double)w[k * N + i] * bx[p * ld + i];
                    y0 += (double)w[k * N + i] * bt[p * ld + i];
                    y1 += (double)ws[k * N + i] * bt[p * ld + i];
                }
                e0 += (y - y0) * (y - y0);
                e1 += (y - y1) * (y - y1);
            }
        /* 22.8 -> 4.1: what is left is the noise and the damping's pull
         * towards W */
        if (!(e1 < 0.25 * e0))
            fail_msg("pass %d: ||W X - W* Xt||^2 %.4g vs ||W (X - Xt)||^2 %.4g", pass, e1, e0);
    }
}

/* q_gptq_patches_at: the rows of q_gptq_patches at positions off, off + st, ... */
static void test_gptq_patches_at(void **state) {
    (void)state;
    const q_patch_geom g = patch_geom_odd;
    enum { NP = 20 };
    tu_rng r;
    tu_rng_seed(&r, 10);
    float x[3 * 7 * 6], all[NP * 24], at[NP * 24];
    tu_fill_uniform(&r, x, 3 * 7 * 6, -2.0f, 2.0f);
    q_gptq_patches(&g, x, all, 24);
    const int offs[3][2] = {{0, 1}, {2, 3}, {6, 7}};
    for (int c = 0; c < 3; c++) {
        memset(at, 0x7f, sizeof at);
        q_gptq_patches_at(&g, x, at, 24, offs[c][0], offs[c][1]);
        int j = 0;
        for (int p = offs[c][0]; p < NP; p += offs[c][1], j++)
            assert_memory_equal(at + j * 24, all + p * 24, sizeof(float) * 24);
    }
}

/* --rounding gptq end to end: conv1's (the graph input's layer, no
 * equalization: its fp32 weights are the model's) int8 weights have less
 * output error on the calibration images than rounding to nearest's,
 * ||(w - s q) x_p||^2 summed over the patches x_p of its input; the weights
 * stay in [-127, 127] */
static void test_gptq_model(void **state) {
    (void)state;
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    const q_patch_geom pg = {.cin = 3,
                             .ih = 8,
                             .iw = 8,
                             .kh = 3,
                             .kw = 3,
                             .sh = 1,
                             .sw = 1,
                             .dh = 1,
                             .dw = 1,
                             .pt = 1,
                             .pl = 1,
                             .oh = 8,
                             .ow = 8};
    enum { NIN = 27, NP = 64 };
    const int ld = q_gptq_ld(NIN);
    static float buf[NIMG][NP * 32], xs[NIN * NIMG * NP];
    for (int i = 0; i < NIMG; i++) {
        q_gptq_patches(&pg, g_inputs[i], buf[i], ld);
        for (int p = 0; p < NP; p++)
            for (int k = 0; k < NIN; k++) xs[k * NIMG * NP + i * NP + p] = buf[i][p * ld + k];
    }
    double e[2];
    for (int rd = 0; rd < 2; rd++) {
        sqzc_graph *f = make_graph(), *g = make_graph();
        sqzc_quant_options o;
        sqzc_quant_options_init(&o);
        o.cle = 0;
        o.rounding = rd ? SQZC_QR_GPTQ : SQZC_QR_NEAREST;
        if (sqzc_quantize(g, &set, &o, NULL, err, sizeof err) != 0) fail_msg("%s", err);
        for (int t = 0; t < g->n_tensors; t++)
            if (g->tensors[t].i8)
                for (int64_t k = 0; k < sqz_shape_numel(&g->tensors[t].shape); k++)
                    assert_true(g->tensors[t].i8[k] >= -127);
        const sqzc_tensor *wq = &g->tensors[find_tensor(g, "w1_int8")];
        const sqzc_tensor *wf = &f->tensors[find_tensor(f, "w1")];
        assert_int_equal(wq->q.kind, SQZC_Q_CHANNEL);
        assert_int_equal(wq->q.n, 8);
        e[rd] = recon_err(wf->f32, wq->i8, wq->q.scale, 8, NIN, xs, NIMG * NP);
        sqzc_graph_free(f);
        sqzc_graph_free(g);
    }
    /* 5.87 -> 5.69: these inputs are independent uniform pixels, where error
     * feedback has little to work with (H nearly diagonal; the correlated
     * case of test_gptq_round gains far more) */
    if (!(e[1] < 0.98 * e[0])) fail_msg("conv1 output error: nearest %.4g, gptq %.4g", e[0], e[1]);
    sqzc_calib_set_free(&set);
}

/* --rounding gptq-seq end to end: the int8 model's output is closer to the
 * fp32 model's (SQNR over the calibration images) than with rounding to
 * nearest or GPTQ on the fp32 inputs (empirical bias correction); every
 * layer in int8, weights in [-127, 127] */
static void test_gptq_seq_model(void **state) {
    (void)state;
    sqzc_graph *f = make_graph_opt(1);
    float ref[NIMG][5];
    for (int i = 0; i < NIMG; i++) run_graph(f, g_inputs[i], ref[i], 5);
    sqzc_graph_free(f);
    sqzc_calib_set set;
    char err[512];
    assert_int_equal(sqzc_calib_set_read(g_manifest, &set, err, sizeof err), 0);
    double sq[4];
    for (int rd = 0; rd < 4; rd++) {
        sqzc_graph *g = make_graph_opt(1);
        sqzc_quant_options o;
        sqzc_quant_options_init(&o);
        o.method = SQZC_QM_PERCENTILE;
        o.percentile = 99.0;
        o.bias_correction = 2;
        o.rounding = rd < 3 ? rd : SQZC_QR_GPTQ_SEQ;
        o.range_search = rd == 3; /* gptq-seq, each range searched */
        sqzc_quant_report rep;
        if (sqzc_quantize(g, &set, &o, &rep, err, sizeof err) != 0) fail_msg("%s", err);
        assert_int_equal(rep.n_int8, 5);
        for (int t = 0; t < g->n_tensors; t++)
            if (g->tensors[t].i8)
                for (int64_t k = 0; k < sqz_shape_numel(&g->tensors[t].shape); k++)
                    assert_true(g->tensors[t].i8[k] >= -127);
        sq[rd] = sqnr_of(g, ref);
        sqzc_quant_report_free(&rep);
        sqzc_graph_free(g);
    }
    /* 34.04, 33.83 -> 36.16 dB: ranges clipped hard (99%), the int8 model's
     * inputs differ from the fp32 model's by more than noise, which the
     * sequential fit takes into account (with the default ranges these 40
     * random 8x8 images give 44-45 dB either way) */
    if (!(sq[2] > sq[0] + 1.0 && sq[2] > sq[1] + 1.0))
        fail_msg("output SQNR: nearest %.2f, gptq %.2f, gptq-seq %.2f dB", sq[0], sq[1], sq[2]);
    /* the range search undoes the 99% clipping where it costs: 36.16 -> 45.95 dB */
    if (!(sq[3] > sq[2] + 1.0)) fail_msg("gptq-seq %.2f, range search %.2f dB", sq[2], sq[3]);
    sqzc_calib_set_free(&set);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equalize_exact),
        cmocka_unit_test(test_quantize_model),
        cmocka_unit_test(test_cache_same_result),
        cmocka_unit_test(test_threads_same_result),
        cmocka_unit_test(test_graph_done_same_result),
        cmocka_unit_test(test_pending_set),
        cmocka_unit_test(test_quantize_concat),
        cmocka_unit_test(test_empirical_bias_correction),
        cmocka_unit_test(test_shared_calibration),
        cmocka_unit_test(test_quantize_se_block),
        cmocka_unit_test(test_weight_scale_mse),
        cmocka_unit_test(test_npy_batch_same_model),
        cmocka_unit_test(test_gptq_factor),
        cmocka_unit_test(test_gptq_round),
        cmocka_unit_test(test_gptq_patches_gram),
        cmocka_unit_test(test_gptq_model),
        cmocka_unit_test(test_gptq_xcorr),
        cmocka_unit_test(test_gptq_patches_at),
        cmocka_unit_test(test_gptq_seq_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
