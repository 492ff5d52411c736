/* test_passes.c - IR -> passes -> .sqz -> runtime round trips: BatchNorm
 * folding and activation fusion preserve outputs; constant folding; dead
 * nodes; the planner's arena never exceeds the naive total. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sqz/sqz.h"
#include "sqzc/ir.h"
#include "sqzc/passes.h"
#include "sqzc/writer.h"
#include "testutil.h"
#include "test_graph.h"

static sqz_shape shp(int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    sqz_shape s = {nd, {a, b, c, d}};
    return s;
}

static int add_const(sqzc_graph *g, const char *name, sqz_shape s, tu_rng *r, float lo, float hi) {
    int t = sqzc_tensor_get_or_add(g, name);
    int64_t n = sqz_shape_numel(&s);
    float *v = malloc((size_t)n * sizeof *v);
    assert_non_null(v);
    tu_fill_uniform(r, v, (size_t)n, lo, hi);
    assert_int_equal(sqzc_tensor_set_f32(g, t, &s, v), 0);
    free(v);
    return t;
}

/* x[1,3,8,8] -> Conv(4,3,3,3,pad 1) -> BN -> Relu -> Conv 1x1 (no bias) -> BN -> Clip(0,6)
 *   -> Identity -> out; plus a dead branch (Sigmoid of x nobody reads). */
static sqzc_graph *make_graph(void) {
    tu_rng r;
    tu_rng_seed(&r, 7);
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    g->tensors[x].shape = shp(4, 1, 3, 8, 8);
    g->tensors[x].has_shape = 1;
    g->inputs = malloc(sizeof(int32_t));
    g->inputs[0] = x;
    g->n_inputs = 1;
    int w1 = add_const(g, "w1", shp(4, 4, 3, 3, 3), &r, -0.5f, 0.5f);
    int b1 = add_const(g, "b1", shp(1, 4, 0, 0, 0), &r, -0.5f, 0.5f);
    int bn1[4], bn2[4];
    const char *bnn[4] = {"g", "b", "m", "v"};
    char name[32];
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "bn1_%s", bnn[k]);
        bn1[k] = add_const(g, name, shp(1, 4, 0, 0, 0), &r, k == 3 ? 0.5f : -1.0f, 1.5f);
        snprintf(name, sizeof name, "bn2_%s", bnn[k]);
        bn2[k] = add_const(g, name, shp(1, 5, 0, 0, 0), &r, k == 3 ? 0.5f : -1.0f, 1.5f);
    }
    int w2 = add_const(g, "w2", shp(4, 5, 4, 1, 1), &r, -0.5f, 0.5f);
    int c1 = sqzc_tensor_get_or_add(g, "c1"), n1 = sqzc_tensor_get_or_add(g, "n1"),
        r1 = sqzc_tensor_get_or_add(g, "r1"), c2 = sqzc_tensor_get_or_add(g, "c2"),
        n2 = sqzc_tensor_get_or_add(g, "n2"), k2 = sqzc_tensor_get_or_add(g, "k2"),
        out = sqzc_tensor_get_or_add(g, "out"), dead = sqzc_tensor_get_or_add(g, "dead");
    int32_t in_c1[3] = {x, w1, b1}, o_c1[1] = {c1};
    int n = sqzc_add_node(g, SQZ_OP_CONV, "conv1", 3, in_c1, 1, o_c1);
    int64_t pads[4] = {1, 1, 1, 1};
    sqzc_node_set_ints(g, n, "pads", pads, 4);
    int32_t in_bn1[5] = {c1, bn1[0], bn1[1], bn1[2], bn1[3]}, o_bn1[1] = {n1};
    n = sqzc_add_node(g, SQZ_OP_BATCHNORM, "bn1", 5, in_bn1, 1, o_bn1);
    sqzc_node_set_float(g, n, "epsilon", 1e-3f);
    int32_t in_r1[1] = {n1}, o_r1[1] = {r1};
    sqzc_add_node(g, SQZ_OP_RELU, "relu1", 1, in_r1, 1, o_r1);
    int32_t in_c2[2] = {r1, w2}, o_c2[1] = {c2};
    sqzc_add_node(g, SQZ_OP_CONV, "conv2", 2, in_c2, 1, o_c2);
    int32_t in_bn2[5] = {c2, bn2[0], bn2[1], bn2[2], bn2[3]}, o_bn2[1] = {n2};
    sqzc_add_node(g, SQZ_OP_BATCHNORM, "bn2", 5, in_bn2, 1, o_bn2);
    int32_t in_k2[1] = {n2}, o_k2[1] = {k2};
    n = sqzc_add_node(g, SQZ_OP_CLIP, "clip2", 1, in_k2, 1, o_k2);
    sqzc_node_set_float(g, n, "min", 0.0f);
    sqzc_node_set_float(g, n, "max", 6.0f);
    int32_t in_id[1] = {k2}, o_id[1] = {out};
    sqzc_add_node(g, SQZ_OP_IDENTITY, "ident", 1, in_id, 1, o_id);
    int32_t in_d[1] = {x}, o_d[1] = {dead};
    sqzc_add_node(g, SQZ_OP_SIGMOID, "dead_sigmoid", 1, in_d, 1, o_d);
    g->outputs = malloc(sizeof(int32_t));
    g->outputs[0] = out;
    g->n_outputs = 1;
    return g;
}

/* Serialize, load, run on input; returns malloc'd output (n elements). */
static float *run_graph(const sqzc_graph *g, const float *in, size_t n_in, size_t *n_out,
                        size_t *arena, size_t *naive) {
    sqz_memory_info mi;
    float *copy = tg_run_mem(g, in, n_in, n_out, &mi);
    *arena = mi.arena_bytes;
    *naive = mi.naive_bytes;
    assert_true(mi.lower_bound_bytes <= mi.arena_bytes);
    return copy;
}

static void test_optimize_preserves_outputs(void **state) {
    (void)state;
    char err[256];
    tu_rng r;
    tu_rng_seed(&r, 99);
    float x[192];
    tu_fill_uniform(&r, x, 192, -2, 2);

    sqzc_graph *g0 = make_graph();
    /* reference: unoptimized graph (only the dead branch is harmless) */
    assert_int_equal(sqzc_infer_shapes(g0, err, sizeof err), 0);
    size_t n0, a0, nv0;
    float *y0 = run_graph(g0, x, 192, &n0, &a0, &nv0);
    assert_int_equal(n0, 5 * 8 * 8);

    sqzc_graph *g1 = make_graph();
    if (sqzc_optimize(g1, err, sizeof err) != 0) fail_msg("optimize: %s", err);
    /* BN folded, activations fused, Identity and the dead Sigmoid gone */
    assert_int_equal(g1->n_nodes, 2);
    for (int i = 0; i < g1->n_nodes; i++) assert_int_equal(g1->nodes[i].op, SQZ_OP_CONV);
    sqz_node v;
    sqzc_node_view(g1, 0, &v);
    assert_int_equal(sqz_attr_int(&v, "sqz_act", 0), SQZ_ACT_RELU);
    sqzc_node_view(g1, 1, &v);
    assert_int_equal(sqz_attr_int(&v, "sqz_act", 0), SQZ_ACT_CLIP);
    assert_true(sqz_attr_float(&v, "sqz_act_beta", 0) == 6.0f);
    assert_int_equal(strcmp(g1->tensors[g1->outputs[0]].name, "out"), 0);
    size_t n1, a1, nv1;
    float *y1 = run_graph(g1, x, 192, &n1, &a1, &nv1);
    assert_int_equal(n1, n0);
    double maxerr = tu_max_abs_diff(y0, y1, n0);
    assert_true(maxerr < 1e-5);
    /* clip really applied: outputs inside [0, 6] and some at the bounds */
    int at_zero = 0;
    for (size_t i = 0; i < n1; i++) {
        assert_true(y1[i] >= 0.0f && y1[i] <= 6.0f);
        at_zero += y1[i] == 0.0f;
    }
    assert_true(at_zero > 0);
    assert_true(a1 <= nv1);
    free(y0);
    free(y1);
    sqzc_graph_free(g0);
    sqzc_graph_free(g1);
}

/* Sigmoid(Add(c1, c2)) of constants folds to a constant feeding Mul. */
static void test_constant_folding(void **state) {
    (void)state;
    char err[256];
    sqzc_graph *g = sqzc_graph_new();
    int x = sqzc_tensor_get_or_add(g, "x");
    g->tensors[x].shape = shp(1, 4, 0, 0, 0);
    g->tensors[x].has_shape = 1;
    g->inputs = malloc(sizeof(int32_t));
    g->inputs[0] = x;
    g->n_inputs = 1;
    float a[4] = {0, 1, -1, 2}, b[4] = {0, 1, 1, -2};
    sqz_shape s4 = shp(1, 4, 0, 0, 0);
    int ca = sqzc_tensor_get_or_add(g, "a"), cb = sqzc_tensor_get_or_add(g, "b");
    sqzc_tensor_set_f32(g, ca, &s4, a);
    sqzc_tensor_set_f32(g, cb, &s4, b);
    int s = sqzc_tensor_get_or_add(g, "s"), sg = sqzc_tensor_get_or_add(g, "sg"),
        y = sqzc_tensor_get_or_add(g, "y");
    int32_t i1[2] = {ca, cb}, o1[1] = {s}, i2[1] = {s}, o2[1] = {sg}, i3[2] = {x, sg}, o3[1] = {y};
    sqzc_add_node(g, SQZ_OP_ADD, "add", 2, i1, 1, o1);
    sqzc_add_node(g, SQZ_OP_SIGMOID, "sig", 1, i2, 1, o2);
    sqzc_add_node(g, SQZ_OP_MUL, "mul", 2, i3, 1, o3);
    g->outputs = malloc(sizeof(int32_t));
    g->outputs[0] = y;
    g->n_outputs = 1;
    if (sqzc_optimize(g, err, sizeof err) != 0) fail_msg("optimize: %s", err);
    assert_int_equal(g->n_nodes, 1);
    assert_int_equal(g->nodes[0].op, SQZ_OP_MUL);
    const float *k = g->tensors[g->nodes[0].in[1]].f32;
    assert_non_null(k);
    float sum[4] = {0, 2, 0, 0};
    for (int i = 0; i < 4; i++) assert_true(fabsf(k[i] - 1.0f / (1.0f + expf(-sum[i]))) < 1e-6f);
    float xin[4] = {1, 2, 3, 4};
    size_t n, ar, nv;
    float *out = run_graph(g, xin, 4, &n, &ar, &nv);
    for (int i = 0; i < 4; i++) assert_true(fabsf(out[i] - xin[i] * k[i]) < 1e-6f);
    free(out);
    sqzc_graph_free(g);
}

/* MPool sharing: views and in-place element-wise ops must not clobber a value
 * that is read later. x -> Sigmoid a -> Reshape b -> Tanh t -> Add(b, t) d (out0);
 * Mul(a, a) e (out1, reads a after the view and the Add). */
static void test_inplace_sharing_keeps_values(void **state) {
    (void)state;
    char err[256];
    sqzc_graph *g = sqzc_graph_new();
    int x = sqzc_tensor_get_or_add(g, "x");
    g->tensors[x].shape = shp(4, 1, 2, 3, 3);
    g->tensors[x].has_shape = 1;
    g->inputs = malloc(sizeof(int32_t));
    g->inputs[0] = x;
    g->n_inputs = 1;
    int a = sqzc_tensor_get_or_add(g, "a"), b = sqzc_tensor_get_or_add(g, "b"),
        t = sqzc_tensor_get_or_add(g, "t"), d = sqzc_tensor_get_or_add(g, "d"),
        e = sqzc_tensor_get_or_add(g, "e");
    int32_t i1[1] = {x}, o1[1] = {a}, i2[1] = {a}, o2[1] = {b}, i3[1] = {b}, o3[1] = {t},
            i4[2] = {b, t}, o4[1] = {d}, i5[2] = {a, a}, o5[1] = {e};
    sqzc_add_node(g, SQZ_OP_SIGMOID, "sig", 1, i1, 1, o1);
    int n = sqzc_add_node(g, SQZ_OP_RESHAPE, "view", 1, i2, 1, o2);
    int64_t sh[2] = {1, 18};
    sqzc_node_set_ints(g, n, "shape", sh, 2);
    sqzc_add_node(g, SQZ_OP_TANH, "tanh", 1, i3, 1, o3);
    sqzc_add_node(g, SQZ_OP_ADD, "add", 2, i4, 1, o4);
    sqzc_add_node(g, SQZ_OP_MUL, "mul", 2, i5, 1, o5);
    g->outputs = malloc(2 * sizeof(int32_t));
    g->outputs[0] = d;
    g->outputs[1] = e;
    g->n_outputs = 2;
    assert_int_equal(sqzc_infer_shapes(g, err, sizeof err), 0);
    uint8_t *buf;
    size_t size;
    assert_int_equal(sqzc_serialize(g, &buf, &size, err, sizeof err), 0);
    sqz_model *m;
    sqz_session *s;
    sqz_status st;
    assert_int_equal(sqz_model_load_buffer(buf, size, &m, &st), SQZ_OK);
    free(buf);
    assert_int_equal(sqz_session_create(m, NULL, &s, &st), SQZ_OK);
    float in[18];
    tu_rng r;
    tu_rng_seed(&r, 5);
    tu_fill_uniform(&r, in, 18, -3, 3);
    for (int rep = 0; rep < 2; rep++) { /* twice: inputs persist, buffers reused */
        assert_int_equal(sqz_session_set_input(s, 0, in, 18, &st), SQZ_OK);
        assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
        const float *od, *oe;
        assert_int_equal(sqz_session_output(s, 0, &od, NULL, &st), SQZ_OK);
        assert_int_equal(sqz_session_output(s, 1, &oe, NULL, &st), SQZ_OK);
        for (int i = 0; i < 18; i++) {
            float av = 1.0f / (1.0f + expf(-in[i]));
            assert_true(fabsf(od[i] - (av + tanhf(av))) < 1e-6f);
            assert_true(fabsf(oe[i] - av * av) < 1e-6f);
        }
    }
    sqz_memory_info mi;
    sqz_session_memory(s, &mi);
    assert_true(mi.arena_bytes < mi.naive_bytes);
    assert_true(mi.arena_bytes >= mi.lower_bound_bytes);
    sqz_session_free(s);
    sqz_model_free(m);
    sqzc_graph_free(g);
}

/* Run the optimized graph on a session of nt threads; returns the output
 * (malloc'd, 320 floats) and the session's memory figures. */
static float *run_threads(const sqzc_graph *g, const float *x, int nt, sqz_memory_info *mi) {
    uint8_t *buf;
    size_t size;
    char err[256];
    if (sqzc_serialize(g, &buf, &size, err, sizeof err) != 0) fail_msg("serialize: %s", err);
    sqz_model *m;
    sqz_status st;
    if (sqz_model_load_buffer(buf, size, &m, &st) != SQZ_OK) fail_msg("load: %s", st.msg);
    free(buf);
    sqz_session_options o = {nt, NULL, 0};
    sqz_session *s;
    if (sqz_session_create(m, &o, &s, &st) != SQZ_OK) fail_msg("session: %s", st.msg);
    float *y = malloc(320 * sizeof *y);
    assert_non_null(y);
    for (int rep = 0; rep < 2; rep++) { /* twice: the second run finds the slots written */
        assert_int_equal(sqz_session_set_input(s, 0, x, 192, &st), SQZ_OK);
        assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
    }
    const float *o0;
    assert_int_equal(sqz_session_output(s, 0, &o0, NULL, &st), SQZ_OK);
    memcpy(y, o0, 320 * sizeof *y);
    sqz_session_memory(s, mi);
    sqz_session_free(s);
    sqz_model_free(m);
    return y;
}

/* A small model on 2 threads whose nodes may split gets every buffer its own
 * slot (the arena is then the naive total of the planned buffers, and
 * reused_bytes the reusing plan's arena); 1 thread, a model with nothing to
 * split and SQZ_ARENA_REUSE=1 keep the reusing plan; the outputs are the
 * same. */
static void test_separate_slots_two_threads(void **state) {
    (void)state;
    char err[256];
    tu_rng r;
    tu_rng_seed(&r, 3);
    float x[192];
    tu_fill_uniform(&r, x, 192, -2, 2);
    sqzc_graph *g = make_graph();
    if (sqzc_optimize(g, err, sizeof err) != 0) fail_msg("optimize: %s", err);
    sqz_memory_info m1, m2, m3, m4;
    float *y1 = run_threads(g, x, 1, &m1);
    /* this graph's convs are below the split size: nothing would split, and
     * the session keeps the reusing plan */
    float *y4 = run_threads(g, x, 2, &m4);
    assert_int_equal(m4.separate, 0);
    /* with the split size lowered they may split: separate slots */
    setenv("SQZ_PAR_MIN_MACS", "1", 1);
    float *y2 = run_threads(g, x, 2, &m2);
    setenv("SQZ_ARENA_REUSE", "1", 1);
    float *y3 = run_threads(g, x, 2, &m3);
    unsetenv("SQZ_ARENA_REUSE");
    unsetenv("SQZ_PAR_MIN_MACS");
    assert_int_equal(m1.separate, 0);
    assert_int_equal(m1.reused_bytes, m1.arena_bytes);
    assert_int_equal(m2.separate, 1);
    assert_true(m2.arena_bytes > m2.reused_bytes && m2.arena_bytes <= m2.naive_bytes);
    /* the same 2-thread plan (its per-thread scratch) with reuse kept */
    assert_int_equal(m3.separate, 0);
    assert_int_equal(m3.arena_bytes, m2.reused_bytes);
    assert_int_equal(m3.reused_bytes, m3.arena_bytes);
    assert_true(m3.arena_bytes >= m3.lower_bound_bytes);
    assert_true(tu_max_abs_diff(y1, y2, 320) < 1e-6);
    assert_true(tu_max_abs_diff(y1, y3, 320) < 1e-6);
    assert_true(tu_max_abs_diff(y1, y4, 320) < 1e-6);
    free(y4);
    free(y1);
    free(y2);
    free(y3);
    sqzc_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_separate_slots_two_threads),
        cmocka_unit_test(test_optimize_preserves_outputs),
        cmocka_unit_test(test_constant_folding),
        cmocka_unit_test(test_inplace_sharing_keeps_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
