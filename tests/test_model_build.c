/* test_model_build.c - sqzc_model_build (the runtime model built from the IR
 * in memory) against what the runtime loader makes of sqzc_serialize's bytes:
 * the same tensors, data, quantization, names, nodes, attributes, graph I/O
 * and metadata, field by field; and the same refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"
#include "sqzc/ir.h"
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/writer.h"
#include "testutil.h"

static size_t data_bytes(const sqz_tensor_rec *t) {
    int64_t n = sqz_shape_numel(&t->shape);
    return (size_t)n * (t->dtype == SQZ_DT_I8 ? 1u : 4u);
}

static void same_attr(const sqz_attr *a, const sqz_attr *b) {
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->count, b->count);
    if (a->type == SQZ_ATTR_INT || a->type == SQZ_ATTR_INTS)
        assert_memory_equal(a->ints, b->ints, sizeof *a->ints * a->count);
    if (a->type == SQZ_ATTR_FLOAT || a->type == SQZ_ATTR_FLOATS)
        assert_memory_equal(a->floats, b->floats, sizeof *a->floats * a->count);
    if (a->type == SQZ_ATTR_STRING) assert_string_equal(a->str, b->str);
}

/* the built model equals the loaded one; returns the number of constants */
static int same_model(const sqz_model *a, const sqz_model *b) {
    int consts = 0;
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (int i = 0; i < a->n_tensors; i++) {
        const sqz_tensor_rec *x = &a->tensors[i], *y = &b->tensors[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->flags, y->flags);
        assert_int_equal(x->shape.ndim, y->shape.ndim);
        assert_memory_equal(x->shape.dims, y->shape.dims, sizeof x->shape.dims[0] * x->shape.ndim);
        assert_int_equal(x->q.kind, y->q.kind);
        assert_int_equal(x->q.axis, y->q.axis);
        assert_int_equal(x->q.n, y->q.n);
        if (x->q.n) {
            assert_memory_equal(x->q.scale, y->q.scale, sizeof(float) * x->q.n);
            assert_memory_equal(x->q.zero_point, y->q.zero_point, sizeof(int32_t) * x->q.n);
        }
        assert_int_equal(x->data != NULL, y->data != NULL);
        if (x->data) {
            assert_int_equal((uintptr_t)x->data % 64, 0);
            if (data_bytes(x)) assert_memory_equal(x->data, y->data, data_bytes(x));
            consts++;
        }
    }
    assert_int_equal(a->n_nodes, b->n_nodes);
    for (int i = 0; i < a->n_nodes; i++) {
        const sqz_node *x = &a->nodes[i], *y = &b->nodes[i];
        assert_int_equal(x->op, y->op);
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->n_inputs, y->n_inputs);
        assert_int_equal(x->n_outputs, y->n_outputs);
        assert_memory_equal(x->inputs, y->inputs, sizeof(int32_t) * x->n_inputs);
        assert_memory_equal(x->outputs, y->outputs, sizeof(int32_t) * x->n_outputs);
        assert_int_equal(x->n_attrs, y->n_attrs);
        for (uint32_t k = 0; k < x->n_attrs; k++) same_attr(&x->attrs[k], &y->attrs[k]);
    }
    assert_int_equal(a->n_inputs, b->n_inputs);
    assert_memory_equal(a->inputs, b->inputs, sizeof(int32_t) * (size_t)a->n_inputs);
    assert_int_equal(a->n_outputs, b->n_outputs);
    assert_memory_equal(a->outputs, b->outputs, sizeof(int32_t) * (size_t)a->n_outputs);
    assert_int_equal(a->n_meta, b->n_meta);
    for (int i = 0; i < a->n_meta; i++) {
        assert_string_equal(a->meta_keys[i], b->meta_keys[i]);
        assert_string_equal(a->meta_values[i], b->meta_values[i]);
    }
    return consts;
}

/* build g both ways and compare; returns the constants compared */
static int check_graph(const sqzc_graph *g) {
    char err[512];
    uint8_t *buf = NULL;
    size_t size = 0;
    assert_int_equal(sqzc_serialize(g, &buf, &size, err, sizeof err), 0);
    sqz_model *loaded = NULL, *built = NULL;
    sqz_status st;
    assert_int_equal(sqz_model_load_buffer(buf, size, &loaded, &st), SQZ_OK);
    free(buf);
    if (sqzc_model_build(g, &built, err, sizeof err) != 0) fail_msg("%s", err);
    const int consts = same_model(built, loaded);
    sqz_model_free(built);
    sqz_model_free(loaded);
    return consts;
}

static void test_onnx_models(void **state) {
    (void)state;
    static const char *models[] = {"lenet5", "lenet300", "mobilenet", "resnet"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char path[1024], err[512];
        snprintf(path, sizeof path, "%s/tools/models/%s.onnx", tu_source_dir(), models[i]);
        sqzc_graph *g = NULL;
        sqzc_import_options o;
        memset(&o, 0, sizeof o);
        o.default_batch = 2;
        if (sqzc_import_onnx(path, &o, &g, err, sizeof err) != 0) fail_msg("%s", err);
        assert_int_equal(sqzc_optimize(g, err, sizeof err), 0);
        assert_true(check_graph(g) > 0);
        g->keep_names = 1; /* every name stored */
        assert_true(check_graph(g) > 0);
        /* every tensor a graph output (as the calibration model) */
        int32_t *outs = g->outputs;
        const int n_outs = g->n_outputs;
        int32_t *all = malloc(sizeof *all * (size_t)g->n_tensors);
        assert_non_null(all);
        int n = 0;
        for (int t = 0; t < g->n_tensors; t++)
            if (!sqzc_tensor_is_const(g, t) && sqzc_producer(g, t) >= 0) all[n++] = t;
        g->outputs = all;
        g->n_outputs = n;
        g->keep_names = 0;
        assert_true(check_graph(g) > 0);
        g->outputs = outs;
        g->n_outputs = n_outs;
        free(all);
        sqzc_graph_free(g);
    }
}

/* int8 / int32 constants (per-channel symmetric with f16 scales, per-tensor
 * with a zero point), an int8 activation, encoded and f16-exact f32
 * constants, every attribute type (defaults the writer drops among them),
 * unnamed tensors and nodes, metadata */
static void test_kinds(void **state) {
    (void)state;
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    g->tensors[x].dtype = SQZC_I8;
    g->tensors[x].shape = (sqz_shape){2, {1, 3}};
    g->tensors[x].has_shape = 1;
    const float xs = 0.1f;
    const int32_t xz = -5;
    assert_int_equal(sqzc_tensor_set_qparams(g, x, SQZC_Q_TENSOR, 0, 1, &xs, &xz), 0);
    int w = sqzc_tensor_get_or_add(g, "w");
    sqz_shape ws = {2, {2, 3}};
    const int8_t wv[6] = {-127, 0, 5, 127, -1, 2};
    assert_int_equal(sqzc_tensor_set_i8(g, w, &ws, wv), 0);
    const float sc[2] = {0.5f, 0.25f};
    const int32_t z[2] = {0, 0};
    assert_int_equal(sqzc_tensor_set_qparams(g, w, SQZC_Q_CHANNEL, 0, 2, sc, z), 0);
    int b = sqzc_tensor_get_or_add(g, "b");
    sqz_shape bs = {1, {2}};
    const int32_t bv[2] = {-70000, 123};
    assert_int_equal(sqzc_tensor_set_i32(g, b, &bs, bv), 0);
    const float bsc[2] = {0.05f, 0.025f};
    assert_int_equal(sqzc_tensor_set_qparams(g, b, SQZC_Q_CHANNEL, 0, 2, bsc, z), 0);
    /* f32: a codebook + sparse + Huffman encoding, f16-exact values, -0.0
     * (stored raw / as f16: its sign kept), raw values */
    tu_rng r;
    tu_rng_seed(&r, 7);
    enum { NE = 1000 };
    float cent[4] = {-0.75f, 0.0f, 0.5f, 1.25f}, *ev = malloc(sizeof *ev * NE),
          *hv = malloc(sizeof *hv * NE), *rv = malloc(sizeof *rv * NE);
    assert_true(ev && hv && rv);
    for (int i = 0; i < NE; i++) {
        const uint32_t u = tu_rng_u32(&r);
        ev[i] = u % 5 < 3 ? 0.0f : cent[u % 4];
        hv[i] = (float)(int)(u % 64) * 0.125f - 4.0f;
        rv[i] = tu_rng_uniform(&r, -1.0f, 1.0f);
    }
    hv[3] = -0.0f;
    rv[5] = -0.0f;
    ev[7] = -0.0f; /* a zero of the sparse encoding: decoded as +0.0 */
    const sqz_shape es = {2, {10, 100}};
    int e = sqzc_tensor_get_or_add(g, "enc");
    assert_int_equal(sqzc_tensor_set_f32(g, e, &es, ev), 0);
    sqzc_encoding enc = {2, cent, 4, 1, 1, 4, 1, 0, 0, 0.0f};
    assert_int_equal(sqzc_tensor_set_encoding(g, e, &enc), 0);
    int h = sqzc_tensor_get_or_add(g, "f16");
    assert_int_equal(sqzc_tensor_set_f32(g, h, &es, hv), 0);
    int rw = sqzc_tensor_get_or_add(g, "raw");
    assert_int_equal(sqzc_tensor_set_f32(g, rw, &es, rv), 0);
    int empty = sqzc_tensor_get_or_add(g, "");
    const sqz_shape zs = {2, {0, 3}};
    assert_int_equal(sqzc_tensor_set_f32(g, empty, &zs, NULL), 0);
    int y = sqzc_tensor_get_or_add(g, "y"), y2 = sqzc_tensor_get_or_add(g, "y2");
    g->inputs = malloc(sizeof *g->inputs);
    g->outputs = malloc(sizeof *g->outputs * 2);
    assert_true(g->inputs && g->outputs);
    g->inputs[0] = x;
    g->n_inputs = 1;
    g->outputs[0] = y;
    g->outputs[1] = y2;
    g->n_outputs = 2;
    const int32_t in[4] = {x, w, b, -1}, in2[3] = {y, e, h}, out[1] = {y}, out2[1] = {y2};
    int n0 = sqzc_add_node(g, SQZ_OP_GEMM, "gemm", 4, in, 1, out);
    int n1 = sqzc_add_node(g, SQZ_OP_ADD, "", 3, in2, 1, out2);
    assert_true(n0 >= 0 && n1 >= 0);
    assert_int_equal(sqzc_node_set_float(g, n0, "alpha", 1.0f), 0); /* default: dropped */
    assert_int_equal(sqzc_node_set_float(g, n0, "beta", 0.5f), 0);
    assert_int_equal(sqzc_node_set_int(g, n0, "transB", 1), 0);
    assert_int_equal(sqzc_node_set_int(g, n0, "transA", 0), 0); /* default: dropped */
    const int64_t iv[3] = {1, -2, 1LL << 40};
    const float fv[2] = {1.5f, -3.0f};
    assert_int_equal(sqzc_node_set_ints(g, n1, "ints", iv, 3), 0);
    assert_int_equal(sqzc_node_set_ints(g, n1, "none", NULL, 0), 0);
    assert_int_equal(sqzc_node_set_floats(g, n1, "floats", fv, 2), 0);
    assert_int_equal(sqzc_node_set_str(g, n1, "mode", "nearest"), 0);
    assert_int_equal(sqzc_graph_set_meta(g, "producer", "test"), 0);
    assert_int_equal(sqzc_graph_set_meta(g, "empty", ""), 0);
    for (int keep = 0; keep <= 1; keep++) {
        g->keep_names = keep;
        assert_int_equal(check_graph(g), 6);
    }
    /* the built model's values: the int8 weights, the decoded encoding */
    sqz_model *m = NULL;
    char err[512];
    assert_int_equal(sqzc_model_build(g, &m, err, sizeof err), 0);
    assert_memory_equal(m->tensors[w].data, wv, sizeof wv);
    ev[7] = 0.0f;
    assert_memory_equal(m->tensors[e].data, ev, sizeof *ev * NE);
    assert_int_equal(m->tensors[w].q.kind, SQZ_QUANT_PER_CHANNEL);
    assert_string_equal(m->tensors[w].name, "w"); /* keep_names 1 */
    assert_string_equal(m->nodes[n1].name, "n1"); /* unnamed */
    assert_int_equal(m->nodes[n0].n_attrs, 2);    /* beta, transB */
    sqz_model_free(m);
    free(ev);
    free(hv);
    free(rv);
    sqzc_graph_free(g);
}

/* what the writer or the loader refuses, refused with a message */
static void test_refusals(void **state) {
    (void)state;
    char err[512];
    for (int c = 0; c < 5; c++) {
        sqzc_graph *g = sqzc_graph_new();
        assert_non_null(g);
        int t = sqzc_tensor_get_or_add(g, "t"), y = sqzc_tensor_get_or_add(g, "y");
        const sqz_shape s = {1, {2}};
        const float f[2] = {1.0f, 2.0f}, sc = 0.5f;
        const int64_t l[2] = {1, 2};
        const int8_t i8[2] = {1, 2};
        const int32_t zp = 0, bad_zp = 200;
        switch (c) {
        case 0: /* an int64 constant */
            assert_int_equal(sqzc_tensor_set_i64(g, t, &s, l), 0);
            break;
        case 1: /* a float tensor with quantization parameters */
            assert_int_equal(sqzc_tensor_set_f32(g, t, &s, f), 0);
            assert_int_equal(sqzc_tensor_set_qparams(g, t, SQZC_Q_TENSOR, 0, 1, &sc, &zp), 0);
            break;
        case 2: /* an int8 constant without them */
            assert_int_equal(sqzc_tensor_set_i8(g, t, &s, i8), 0);
            break;
        case 3: /* an int8 zero point out of range */
            assert_int_equal(sqzc_tensor_set_i8(g, t, &s, i8), 0);
            assert_int_equal(sqzc_tensor_set_qparams(g, t, SQZC_Q_TENSOR, 0, 1, &sc, &bad_zp), 0);
            break;
        default: /* per-channel pairs that do not fit the shape */
            assert_int_equal(sqzc_tensor_set_i8(g, t, &s, i8), 0);
            assert_int_equal(sqzc_tensor_set_qparams(g, t, SQZC_Q_CHANNEL, 0, 1, &sc, &zp), 0);
            break;
        }
        const int32_t in[1] = {t}, out[1] = {y};
        assert_true(sqzc_add_node(g, SQZ_OP_RELU, "r", 1, in, 1, out) >= 0);
        g->outputs = malloc(sizeof *g->outputs);
        assert_non_null(g->outputs);
        g->outputs[0] = y;
        g->n_outputs = 1;
        /* the old path refused it too: the writer or the loader */
        uint8_t *buf = NULL;
        size_t size = 0;
        sqz_model *m = NULL;
        sqz_status st;
        int old_ok = sqzc_serialize(g, &buf, &size, err, sizeof err) == 0 &&
                     sqz_model_load_buffer(buf, size, &m, &st) == SQZ_OK;
        free(buf);
        sqz_model_free(m);
        assert_false(old_ok);
        m = NULL;
        err[0] = '\0';
        assert_int_equal(sqzc_model_build(g, &m, err, sizeof err), -1);
        assert_null(m);
        assert_non_null(strstr(err, c == 0 ? "int64 constant" : "tensor 't'"));
        sqzc_graph_free(g);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_onnx_models),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
