/* test_onnx_import.c - ONNX import: libonnx-testdata models, torch-exported
 * fixtures (tests/fixtures/make_import_fixtures.py) and error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sqzc/onnx_import.h"
#include "testutil.h"

#define NODE_DIR "/usr/include/onnx/backend/test/data/node"

static char fixture_dir[512];
static int have_fixtures;

static int has_testdata(const char *name) {
    char p[512];
    snprintf(p, sizeof p, NODE_DIR "/%s/model.onnx", name);
    return access(p, R_OK) == 0;
}

static void model_path(char *buf, size_t len, const char *test, const char *file) {
    snprintf(buf, len, NODE_DIR "/%s/%s", test, file);
}

static const sqz_attr *attr(const sqzc_graph *g, int node, const char *name) {
    for (uint32_t i = 0; i < g->nodes[node].n_attr; i++)
        if (strcmp(g->nodes[node].attrs[i].name, name) == 0) return &g->nodes[node].attrs[i];
    return NULL;
}

static void assert_shape(const sqz_shape *s, int ndim, const int64_t *dims) {
    assert_int_equal(s->ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(s->dims[i], dims[i]);
}

/* Output 0 shape equals the test data's expected output. */
static void assert_output_matches(const sqzc_graph *g, const char *test) {
    char p[512], err[512];
    model_path(p, sizeof p, test, "test_data_set_0/output_0.pb");
    float *data;
    sqz_shape s;
    assert_int_equal(sqzc_read_tensor_pb(p, &data, &s, err, sizeof err), 0);
    assert_int_equal(g->n_outputs, 1);
    const sqzc_tensor *t = &g->tensors[g->outputs[0]];
    assert_true(t->has_shape);
    assert_shape(&t->shape, s.ndim, s.dims);
    free(data);
}

/* Import test with inputs 1.. bound to their test-data files. */
static sqzc_graph *import_bound(const char *test, const char *const *names, int n) {
    char paths[8][512], p[512], err[1024];
    sqzc_const_binding b[8];
    for (int i = 0; i < n; i++) {
        char f[64];
        snprintf(f, sizeof f, "test_data_set_0/input_%d.pb", i + 1);
        model_path(paths[i], sizeof paths[i], test, f);
        b[i].name = names[i];
        b[i].path = paths[i];
    }
    sqzc_import_options o = {0};
    o.const_inputs = b;
    o.n_const_inputs = n;
    model_path(p, sizeof p, test, "model.onnx");
    sqzc_graph *g = NULL;
    int rc = sqzc_import_onnx(p, &o, &g, err, sizeof err);
    if (rc != 0) fail_msg("%s", err);
    return g;
}

static void test_conv_strides_padding(void **state) {
    (void)state;
    if (!has_testdata("test_conv_with_strides_padding")) skip();
    char p[512], err[512];
    model_path(p, sizeof p, "test_conv_with_strides_padding", "model.onnx");
    sqzc_graph *g = NULL;
    assert_int_equal(sqzc_import_onnx(p, NULL, &g, err, sizeof err), 0);
    assert_int_equal(g->n_nodes, 1);
    assert_int_equal(g->nodes[0].op, SQZ_OP_CONV);
    const sqz_attr *a = attr(g, 0, "strides");
    assert_non_null(a);
    assert_int_equal(a->type, SQZ_ATTR_INTS);
    assert_int_equal(a->count, 2);
    assert_int_equal(a->ints[0], 2);
    a = attr(g, 0, "pads");
    assert_non_null(a);
    assert_int_equal(a->count, 4);
    assert_int_equal(a->ints[0], 1);
    assert_int_equal(g->n_inputs, 2); /* x and W are both graph inputs here */
    assert_output_matches(g, "test_conv_with_strides_padding");
    sqzc_graph_free(g);
}

static void test_reshape_shape_to_attr(void **state) {
    (void)state;
    const char *tests[] = {"test_reshape_reordered_all_dims", "test_reshape_negative_dim",
                           "test_reshape_zero_and_negative_dim", "test_reshape_extended_dims"};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (!has_testdata(tests[i])) continue;
        const char *names[] = {"shape"};
        sqzc_graph *g = import_bound(tests[i], names, 1);
        assert_int_equal(g->n_nodes, 1);
        assert_int_equal(g->nodes[0].op, SQZ_OP_RESHAPE);
        assert_int_equal(g->nodes[0].n_in, 1); /* the shape input became an attribute */
        const sqz_attr *a = attr(g, 0, "shape");
        assert_non_null(a);
        assert_int_equal(a->type, SQZ_ATTR_INTS);
        assert_output_matches(g, tests[i]);
        sqzc_graph_free(g);
    }
}

static void test_slice_inputs_to_attrs(void **state) {
    (void)state;
    if (!has_testdata("test_slice")) skip();
    const char *names[] = {"starts", "ends", "axes", "steps"};
    sqzc_graph *g = import_bound("test_slice", names, 4);
    assert_int_equal(g->n_nodes, 1);
    assert_int_equal(g->nodes[0].op, SQZ_OP_SLICE);
    assert_int_equal(g->nodes[0].n_in, 1);
    for (int i = 0; i < 4; i++) {
        const sqz_attr *a = attr(g, 0, names[i]);
        assert_non_null(a);
        assert_int_equal(a->type, SQZ_ATTR_INTS);
        assert_int_equal(a->count, 2);
    }
    assert_output_matches(g, "test_slice");
    sqzc_graph_free(g);

    if (has_testdata("test_slice_neg_steps")) {
        g = import_bound("test_slice_neg_steps", names, 4);
        assert_output_matches(g, "test_slice_neg_steps");
        sqzc_graph_free(g);
    }
}

static void test_resize_scales_sizes(void **state) {
    (void)state;
    if (!has_testdata("test_resize_upsample_scales_nearest")) skip();
    const char *names[] = {"scales"}; /* roi is an empty (absent) input */
    sqzc_graph *g = import_bound("test_resize_upsample_scales_nearest", names, 1);
    assert_int_equal(g->n_nodes, 1);
    assert_int_equal(g->nodes[0].op, SQZ_OP_RESIZE);
    assert_int_equal(g->nodes[0].n_in, 1);
    const sqz_attr *a = attr(g, 0, "scales");
    assert_non_null(a);
    assert_int_equal(a->type, SQZ_ATTR_FLOATS);
    assert_int_equal(a->count, 4);
    assert_true(a->floats[3] == 3.0f);
    assert_null(attr(g, 0, "sizes"));
    assert_null(attr(g, 0, "roi")); /* only used by tf_crop_and_resize */
    assert_output_matches(g, "test_resize_upsample_scales_nearest");
    sqzc_graph_free(g);

    if (has_testdata("test_resize_downsample_sizes_nearest")) {
        const char *n1[] = {"sizes"};
        g = import_bound("test_resize_downsample_sizes_nearest", n1, 1);
        a = attr(g, 0, "sizes");
        assert_non_null(a);
        assert_int_equal(a->type, SQZ_ATTR_INTS);
        assert_null(attr(g, 0, "scales")); /* absent scales input */
        assert_output_matches(g, "test_resize_downsample_sizes_nearest");
        sqzc_graph_free(g);
    }
}

static void test_softmax_legacy_and_clip(void **state) {
    (void)state;
    char p[512], err[512];
    sqzc_graph *g = NULL;
    if (has_testdata("test_softmax_axis_0")) {
        model_path(p, sizeof p, "test_softmax_axis_0", "model.onnx");
        assert_int_equal(sqzc_import_onnx(p, NULL, &g, err, sizeof err), 0);
        int opset = atoi(g->meta[0].value);
        const sqz_attr *a = attr(g, 0, "legacy");
        if (opset < 13) {
            assert_non_null(a);
            assert_int_equal(a->ints[0], 1);
        } else {
            assert_null(a);
        }
        sqzc_graph_free(g);
    }
    if (has_testdata("test_clip")) {
        const char *names[] = {"min", "max"};
        g = import_bound("test_clip", names, 2);
        const sqz_attr *a = attr(g, 0, "min");
        assert_non_null(a);
        assert_int_equal(a->type, SQZ_ATTR_FLOAT);
        assert_non_null(attr(g, 0, "max"));
        assert_int_equal(g->nodes[0].n_in, 1);
        sqzc_graph_free(g);
    }
}

static void test_constant_output_and_folding(void **state) {
    (void)state;
    /* a graph made only of a Constant: output kept through an Identity node */
    if (!has_testdata("test_constant")) skip();
    char p[512], err[512];
    model_path(p, sizeof p, "test_constant", "model.onnx");
    sqzc_graph *g = NULL;
    assert_int_equal(sqzc_import_onnx(p, NULL, &g, err, sizeof err), 0);
    assert_int_equal(g->n_nodes, 1);
    assert_int_equal(g->nodes[0].op, SQZ_OP_IDENTITY);
    assert_true(sqzc_tensor_is_const(g, g->nodes[0].in[0]));
    assert_int_equal(g->nodes[0].out[0], g->outputs[0]);
    assert_output_matches(g, "test_constant");
    sqzc_graph_free(g);
}

static void test_read_tensor_pb(void **state) {
    (void)state;
    if (!has_testdata("test_conv_with_strides_padding")) skip();
    char p[512], err[512];
    model_path(p, sizeof p, "test_conv_with_strides_padding", "test_data_set_0/input_0.pb");
    float *d;
    sqz_shape s;
    assert_int_equal(sqzc_read_tensor_pb(p, &d, &s, err, sizeof err), 0);
    int64_t dims[] = {1, 1, 7, 5};
    assert_shape(&s, 4, dims);
    assert_true(d[0] == 0.0f && d[34] == 34.0f);
    free(d);
    assert_int_equal(sqzc_read_tensor_pb("/nonexistent/x.pb", &d, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/x.pb"));
    assert_null(d);
}

static void test_truncated_and_missing(void **state) {
    (void)state;
    if (!has_testdata("test_conv_with_strides_padding")) skip();
    char p[512], err[512], tp[600];
    model_path(p, sizeof p, "test_conv_with_strides_padding", "model.onnx");
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char *dir = tu_make_temp_dir();
    assert_non_null(dir);
    snprintf(tp, sizeof tp, "%s/model.onnx", dir);
    f = fopen(tp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n / 2, f), n / 2);
    fclose(f);
    sqzc_graph *g = (sqzc_graph *)1;
    assert_int_equal(sqzc_import_onnx(tp, NULL, &g, err, sizeof err), -1);
    assert_null(g);
    assert_non_null(strstr(err, tp));
    assert_non_null(strstr(err, "not a valid ONNX model"));
    remove(tp);
    rmdir(dir);
    free(dir);

    assert_int_equal(sqzc_import_onnx("/nonexistent/m.onnx", NULL, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/m.onnx"));
}

static void test_torch_shape_chain(void **state) {
    (void)state;
    if (!have_fixtures) skip();
    char p[600], err[1024];
    snprintf(p, sizeof p, "%s/shape_chain.onnx", fixture_dir);
    sqzc_graph *g = NULL;
    /* dynamic batch without --input-shape */
    assert_int_equal(sqzc_import_onnx(p, NULL, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "input 'x' has dynamic dim 0 ('batch')"));
    assert_non_null(strstr(err, "--input-shape x:1,3,8,8"));

    sqzc_named_shape s = {"x", {4, {2, 3, 8, 8}}};
    sqzc_import_options o = {0};
    o.input_shapes = &s;
    o.n_input_shapes = 1;
    assert_int_equal(sqzc_import_onnx(p, &o, &g, err, sizeof err), 0);
    /* Shape/Gather/Unsqueeze/Concat folded into Reshape's attribute */
    int want[] = {SQZ_OP_CONV, SQZ_OP_RELU, SQZ_OP_BATCHNORM, SQZ_OP_RESHAPE, SQZ_OP_GEMM};
    assert_int_equal(g->n_nodes, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(g->nodes[i].op, want[i]);
    const sqz_attr *a = attr(g, 3, "shape");
    assert_non_null(a);
    assert_int_equal(a->count, 2);
    assert_int_equal(a->ints[0], 2);
    assert_int_equal(a->ints[1], -1);
    assert_null(attr(g, 2, "momentum"));
    int64_t dims[] = {2, 5};
    assert_shape(&g->tensors[g->outputs[0]].shape, 2, dims);
    /* BN parameters stay constant tensor inputs */
    assert_int_equal(g->nodes[2].n_in, 5);
    for (int k = 1; k < 5; k++) assert_true(sqzc_tensor_is_const(g, g->nodes[2].in[k]));
    sqzc_graph_free(g);

    /* wrong rank in --input-shape */
    sqzc_named_shape bad = {"x", {2, {1, 3}}};
    o.input_shapes = &bad;
    assert_int_equal(sqzc_import_onnx(p, &o, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "rank"));
}

static void test_external_data(void **state) {
    (void)state;
    if (!have_fixtures) skip();
    char p[600], err[1024];
    snprintf(p, sizeof p, "%s/external.onnx", fixture_dir);
    sqzc_graph *g = NULL;
    assert_int_equal(sqzc_import_onnx(p, NULL, &g, err, sizeof err), 0);
    assert_int_equal(g->n_nodes, 1);
    const sqzc_tensor *w = &g->tensors[g->nodes[0].in[1]];
    assert_non_null(w->f32);
    assert_true(w->f32[5] == 0.05f);
    const sqzc_tensor *b = &g->tensors[g->nodes[0].in[2]];
    assert_true(b->f32[3] == 1.0f);
    sqzc_graph_free(g);

    snprintf(p, sizeof p, "%s/escape.onnx", fixture_dir);
    assert_int_equal(sqzc_import_onnx(p, NULL, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "escapes the model directory"));

    /* truncated data file: offset + length beyond its size */
    char dp[600];
    snprintf(dp, sizeof dp, "%s/external.onnx.data", fixture_dir);
    assert_int_equal(truncate(dp, 100), 0);
    snprintf(p, sizeof p, "%s/external.onnx", fixture_dir);
    assert_int_equal(sqzc_import_onnx(p, NULL, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "too short"));
}

static void test_unsupported_listed(void **state) {
    (void)state;
    if (!have_fixtures) skip();
    char p[600], err[1024];
    snprintf(p, sizeof p, "%s/two_unsup.onnx", fixture_dir);
    sqzc_graph *g = NULL;
    assert_int_equal(sqzc_import_onnx(p, NULL, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "2 unsupported ops"));
    assert_non_null(strstr(err, "/layer/TopK_1 (TopK)"));
    assert_non_null(strstr(err, "/layer/Nms_2 (NonMaxSuppression)"));
    assert_non_null(strstr(err, p));
}

static void test_dynamic_dim(void **state) {
    (void)state;
    if (!have_fixtures) skip();
    char p[600], err[1024];
    snprintf(p, sizeof p, "%s/dynamic.onnx", fixture_dir);
    sqzc_graph *g = NULL;
    assert_int_equal(sqzc_import_onnx(p, NULL, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "dynamic dim 0 ('batch'); pass --input-shape x:1,3,4,4"));
    sqzc_named_shape s = {"x", {4, {3, 3, 4, 4}}};
    sqzc_named_shape unknown = {"nope", {1, {1}}};
    sqzc_import_options o = {0};
    o.input_shapes = &s;
    o.n_input_shapes = 1;
    assert_int_equal(sqzc_import_onnx(p, &o, &g, err, sizeof err), 0);
    assert_int_equal(g->tensors[g->outputs[0]].shape.dims[0], 3);
    sqzc_graph_free(g);
    o.input_shapes = &unknown;
    assert_int_equal(sqzc_import_onnx(p, &o, &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "'nope'"));
}

static int setup_fixtures(void **state) {
    (void)state;
    if (system("/usr/bin/python3 -c 'import torch, onnx' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_onnx_import: /usr/bin/python3 with torch+onnx not found; "
                        "skipping fixture tests\n");
        return 0;
    }
    char *dir = tu_make_temp_dir();
    if (!dir) return -1;
    snprintf(fixture_dir, sizeof fixture_dir, "%s", dir);
    free(dir);
    char cmd[1600];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/tests/fixtures/make_import_fixtures.py %s >/dev/null 2>&1",
             tu_source_dir(), fixture_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_onnx_import: fixture script failed: %s\n", cmd);
        return -1;
    }
    have_fixtures = 1;
    return 0;
}

static int teardown_fixtures(void **state) {
    (void)state;
    if (fixture_dir[0]) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fixture_dir);
        if (system(cmd) != 0) return -1;
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_strides_padding),
        cmocka_unit_test(test_reshape_shape_to_attr),
        cmocka_unit_test(test_slice_inputs_to_attrs),
        cmocka_unit_test(test_resize_scales_sizes),
        cmocka_unit_test(test_softmax_legacy_and_clip),
        cmocka_unit_test(test_constant_output_and_folding),
        cmocka_unit_test(test_read_tensor_pb),
        cmocka_unit_test(test_truncated_and_missing),
        cmocka_unit_test(test_torch_shape_chain),
        cmocka_unit_test(test_external_data),
        cmocka_unit_test(test_unsupported_listed),
        cmocka_unit_test(test_dynamic_dim),
    };
    return cmocka_run_group_tests(tests, setup_fixtures, teardown_fixtures);
}
