/* test_prune_onnx_export.c - ONNX export of the IR: export -> re-import gives
 * the same outputs (1e-5) for the reference models and for channel-pruned
 * nets (fused activations unfused, folded parameters written back as inputs);
 * weights' zeros survive; errors name the node; the file is written
 * atomically. The ONNX checker runs on exports in tests/e2e/prune.py. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sqz/sqz.h"
#include "sqzc/channel_prune.h"
#include "sqzc/ir.h"
#include "sqzc/onnx_export.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/prune.h"
#include "sqzc/writer.h"
#include "testutil.h"
#include "test_graph.h"

static char g_fix[1024];
static int g_have_fix;
static char *g_tmp;

static int setup(void **state) {
    (void)state;
    g_tmp = tu_make_temp_dir();
    g_have_fix = tg_prune_fixtures(g_fix, sizeof g_fix);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) print_message("could not remove %s\n", g_tmp);
    free(g_tmp);
    return 0;
}

/* export g, re-import, compare outputs and weight zeros */
static void roundtrip(sqzc_graph *g, const char *tag) {
    char path[1400], err[512];
    snprintf(path, sizeof path, "%s/%s.onnx", g_tmp, tag);
    if (sqzc_write_onnx(g, NULL, path, err, sizeof err) != 0) {
        print_error("%s: export: %s\n", tag, err);
        fail();
    }
    sqzc_graph *h = tg_load(path, NULL);
    assert_int_equal(tg_zero_weights(g), tg_zero_weights(h));
    tu_rng r;
    tu_rng_seed(&r, 3);
    size_t nx = (size_t)sqz_shape_numel(&g->tensors[g->inputs[0]].shape);
    assert_int_equal(nx, (size_t)sqz_shape_numel(&h->tensors[h->inputs[0]].shape));
    float *x = malloc(nx * sizeof *x);
    assert_non_null(x);
    tu_fill_uniform(&r, x, nx, -2.0f, 2.0f);
    size_t n1, n2;
    float *y1 = tg_run(g, x, nx, &n1), *y2 = tg_run(h, x, nx, &n2);
    assert_int_equal(n1, n2);
    double d = tu_max_abs_diff(y1, y2, n1);
    if (d > 1e-5) print_error("%s: max diff %g\n", tag, d);
    assert_true(d <= 1e-5);
    free(x);
    free(y1);
    free(y2);
    sqzc_graph_free(h);
}

static void test_reference_models(void **state) {
    (void)state;
    const char *names[] = {"lenet300", "lenet5", "mobilenet", "resnet"};
    int done = 0;
    for (int i = 0; i < 4; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/tools/models/%s.onnx", tu_source_dir(), names[i]);
        if (access(p, R_OK) != 0) continue;
        sqzc_graph *g = tg_load(p, NULL);
        roundtrip(g, names[i]);
        /* magnitude-pruned: the zeros (the mask) survive export */
        sqzc_prune_options po;
        memset(&po, 0, sizeof po);
        po.sparsity = 0.8f;
        char err[256];
        assert_int_equal(sqzc_prune_magnitude(g, &po, err, sizeof err), 0);
        assert_true(tg_zero_weights(g) > 0);
        char tag[64];
        snprintf(tag, sizeof tag, "%s_sparse", names[i]);
        roundtrip(g, tag);
        sqzc_graph_free(g);
        done++;
    }
    assert_true(done >= 2); /* lenet300 and lenet5 are committed */
}

static void test_pruned_fixtures(void **state) {
    (void)state;
    if (!g_have_fix) skip(); /* needs /usr/bin/python3 with torch */
    const char *names[] = {"prune_resnet", "prune_mbv2", "prune_concat"};
    for (int i = 0; i < 3; i++) {
        char p[1200], err[512];
        snprintf(p, sizeof p, "%s/%s.onnx", g_fix, names[i]);
        sqzc_graph *g = tg_load(p, NULL);
        roundtrip(g, names[i]);
        sqzc_channel_analysis *a = NULL;
        assert_int_equal(sqzc_channel_analyze(g, SQZC_CRIT_L1, NULL, &a, err, sizeof err), 0);
        uint8_t *rm = calloc((size_t)sqzc_channel_n_groups(a) + 1, 1);
        assert_non_null(rm);
        sqzc_channel_options o;
        memset(&o, 0, sizeof o);
        o.ratio = 0.4f;
        o.global = 1;
        assert_int_equal(sqzc_channel_select(a, &o, rm, NULL, err, sizeof err), 0);
        assert_int_equal(sqzc_channel_apply(g, a, rm, err, sizeof err), 0);
        sqzc_channel_analysis_free(a);
        free(rm);
        char tag[64];
        snprintf(tag, sizeof tag, "%s_pruned", names[i]);
        roundtrip(g, tag);
        sqzc_graph_free(g);
    }
}

/* Parameters the IR folds into attributes go back as inputs (Clip, Reshape,
 * Pad, Slice, Split, Squeeze), and fused activations come back. */
static void test_attr_inputs(void **state) {
    (void)state;
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    sqz_shape xs = {4, {1, 4, 6, 6}};
    g->tensors[x].shape = xs;
    g->tensors[x].has_shape = 1;
    g->inputs = malloc(sizeof(int32_t));
    g->outputs = malloc(sizeof(int32_t));
    assert_non_null(g->inputs);
    assert_non_null(g->outputs);
    g->inputs[0] = x;
    g->n_inputs = 1;
    tu_rng r;
    tu_rng_seed(&r, 9);
    float w[4 * 4 * 9], b[4];
    tu_fill_uniform(&r, w, 4 * 4 * 9, -0.5f, 0.5f);
    tu_fill_uniform(&r, b, 4, -0.5f, 0.5f);
    int wt = sqzc_tensor_get_or_add(g, "w"), bt = sqzc_tensor_get_or_add(g, "b");
    sqz_shape ws = {4, {4, 4, 3, 3}}, bs = {1, {4}};
    assert_int_equal(sqzc_tensor_set_f32(g, wt, &ws, w), 0);
    assert_int_equal(sqzc_tensor_set_f32(g, bt, &bs, b), 0);
    const char *names[] = {"c", "p", "s", "sp0", "sp1", "a", "r", "q", "y"};
    int t[9];
    for (int i = 0; i < 9; i++) t[i] = sqzc_tensor_get_or_add(g, names[i]);
    int32_t cin[3] = {x, wt, bt};
    int n = sqzc_add_node(g, SQZ_OP_CONV, "conv", 3, cin, 1, &t[0]);
    int64_t pads1[4] = {1, 1, 1, 1};
    assert_int_equal(sqzc_node_set_ints(g, n, "pads", pads1, 4), 0);
    assert_int_equal(sqzc_node_set_int(g, n, "sqz_act", SQZ_ACT_CLIP), 0);
    assert_int_equal(sqzc_node_set_float(g, n, "sqz_act_alpha", 0.0f), 0);
    assert_int_equal(sqzc_node_set_float(g, n, "sqz_act_beta", 0.7f), 0);
    n = sqzc_add_node(g, SQZ_OP_PAD, "pad", 1, &t[0], 1, &t[1]);
    int64_t pads[8] = {0, 0, 1, 0, 0, 0, 0, 2};
    assert_int_equal(sqzc_node_set_ints(g, n, "pads", pads, 8), 0);
    assert_int_equal(sqzc_node_set_float(g, n, "value", 0.25f), 0);
    n = sqzc_add_node(g, SQZ_OP_SLICE, "slice", 1, &t[1], 1, &t[2]);
    int64_t st[1] = {1}, en[1] = {6}, ax[1] = {2};
    assert_int_equal(sqzc_node_set_ints(g, n, "starts", st, 1), 0);
    assert_int_equal(sqzc_node_set_ints(g, n, "ends", en, 1), 0);
    assert_int_equal(sqzc_node_set_ints(g, n, "axes", ax, 1), 0);
    n = sqzc_add_node(g, SQZ_OP_SPLIT, "split", 1, &t[2], 2, &t[3]);
    int64_t sp[2] = {1, 3};
    assert_int_equal(sqzc_node_set_int(g, n, "axis", 1), 0);
    assert_int_equal(sqzc_node_set_ints(g, n, "split", sp, 2), 0);
    n = sqzc_add_node(g, SQZ_OP_CLIP, "clip", 1, &t[4], 1, &t[5]);
    assert_int_equal(sqzc_node_set_float(g, n, "min", -0.1f), 0);
    int64_t shape[2] = {0, -1};
    n = sqzc_add_node(g, SQZ_OP_RESHAPE, "reshape", 1, &t[5], 1, &t[6]);
    assert_int_equal(sqzc_node_set_ints(g, n, "shape", shape, 2), 0);
    n = sqzc_add_node(g, SQZ_OP_UNSQUEEZE, "unsq", 1, &t[6], 1, &t[7]);
    int64_t uax[1] = {2};
    assert_int_equal(sqzc_node_set_ints(g, n, "axes", uax, 1), 0);
    n = sqzc_add_node(g, SQZ_OP_SQUEEZE, "sq", 1, &t[7], 1, &t[8]);
    assert_int_equal(sqzc_node_set_ints(g, n, "axes", uax, 1), 0);
    g->outputs[0] = t[8];
    g->n_outputs = 1;
    char err[256];
    assert_int_equal(sqzc_infer_shapes(g, err, sizeof err), 0);
    roundtrip(g, "attrs");
    /* an opset-18-only attribute is refused by node name */
    assert_int_equal(sqzc_node_set_ints(g, 1, "axes", uax, 1), 0);
    uint8_t *buf = NULL;
    size_t size = 0;
    assert_int_equal(sqzc_onnx_serialize(g, NULL, &buf, &size, err, sizeof err), -1);
    assert_null(buf);
    assert_non_null(strstr(err, "'pad'"));
    char path[1400];
    snprintf(path, sizeof path, "%s/refused.onnx", g_tmp);
    assert_int_equal(sqzc_write_onnx(g, NULL, path, err, sizeof err), -1);
    assert_int_equal(access(path, F_OK), -1); /* nothing left behind */
    sqzc_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_models),
        cmocka_unit_test(test_pruned_fixtures),
        cmocka_unit_test(test_attr_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
