/* test_session_mpool.c - MPool at session level: a graph input's arena space
 * is reused after its last reader (here even written in place by Relu), so
 * results stay right run after run when inputs are set each time, a run
 * without a fresh input fails naming it, and the arena is the lower bound. */
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

enum { C = 4, M = 8, HW = 36 };

static float W[M * C], B[M];

/* x[1,C,6,6] -> Relu -> Conv 1x1 (M) -> Sigmoid -> y */
static sqzc_graph *make_graph(void) {
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    sqz_shape xs = {4, {1, C, 6, 6}}, ws = {4, {M, C, 1, 1}}, bs = {1, {M}};
    g->tensors[x].shape = xs;
    g->tensors[x].has_shape = 1;
    g->inputs = malloc(sizeof(int32_t));
    assert_non_null(g->inputs);
    g->inputs[0] = x;
    g->n_inputs = 1;
    int w = sqzc_tensor_get_or_add(g, "w"), b = sqzc_tensor_get_or_add(g, "b");
    assert_int_equal(sqzc_tensor_set_f32(g, w, &ws, W), 0);
    assert_int_equal(sqzc_tensor_set_f32(g, b, &bs, B), 0);
    int r = sqzc_tensor_get_or_add(g, "r"), c = sqzc_tensor_get_or_add(g, "c"),
        y = sqzc_tensor_get_or_add(g, "y");
    int32_t i0[1] = {x}, o0[1] = {r}, i1[3] = {r, w, b}, o1[1] = {c}, i2[1] = {c}, o2[1] = {y};
    sqzc_add_node(g, SQZ_OP_RELU, "relu", 1, i0, 1, o0);
    sqzc_add_node(g, SQZ_OP_CONV, "conv", 3, i1, 1, o1);
    sqzc_add_node(g, SQZ_OP_SIGMOID, "sig", 1, i2, 1, o2);
    g->outputs = malloc(sizeof(int32_t));
    assert_non_null(g->outputs);
    g->outputs[0] = y;
    g->n_outputs = 1;
    return g;
}

static void expected(const float *x, float *y) {
    for (int o = 0; o < M; o++)
        for (int p = 0; p < HW; p++) {
            double acc = B[o];
            for (int i = 0; i < C; i++) {
                float v = x[i * HW + p];
                acc += (double)W[o * C + i] * (v > 0 ? v : 0);
            }
            y[o * HW + p] = (float)(1.0 / (1.0 + exp(-acc)));
        }
}

static void check_run(sqz_session *s, const float *x) {
    sqz_status st;
    float want[M * HW];
    expected(x, want);
    assert_int_equal(sqz_session_set_input(s, 0, x, C * HW, &st), SQZ_OK);
    assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
    const float *y;
    sqz_shape ys;
    assert_int_equal(sqz_session_output(s, 0, &y, &ys, &st), SQZ_OK);
    assert_int_equal(sqz_shape_numel(&ys), M * HW);
    for (int i = 0; i < M * HW; i++) assert_true(fabsf(y[i] - want[i]) <= 1e-5f);
}

static void run_case(int force_ref) {
    tu_rng r;
    tu_rng_seed(&r, 5);
    tu_fill_uniform(&r, W, M * C, -1, 1);
    tu_fill_uniform(&r, B, M, -1, 1);
    float xa[C * HW], xb[C * HW];
    tu_fill_uniform(&r, xa, C * HW, -2, 2);
    tu_fill_uniform(&r, xb, C * HW, -2, 2);
    char err[256];
    sqzc_graph *g = make_graph();
    assert_int_equal(sqzc_infer_shapes(g, err, sizeof err), 0);
    uint8_t *buf;
    size_t size;
    if (sqzc_serialize(g, &buf, &size, err, sizeof err) != 0) fail_msg("serialize: %s", err);
    sqzc_graph_free(g);
    sqz_model *m;
    sqz_status st;
    if (sqz_model_load_buffer(buf, size, &m, &st) != SQZ_OK) fail_msg("load: %s", st.msg);
    free(buf);
    sqz_set_force_reference(force_ref);
    sqz_session *s;
    if (sqz_session_create(m, NULL, &s, &st) != SQZ_OK) fail_msg("session: %s", st.msg);

    /* x dies after Relu (which writes over it): the peak is r + c (+ scratch) */
    sqz_memory_info mi;
    sqz_session_memory(s, &mi);
    assert_int_equal(mi.arena_bytes, mi.lower_bound_bytes);
    assert_true(mi.arena_bytes < mi.naive_bytes);

    /* a run before any input fails */
    assert_int_equal(sqz_session_run(s, &st), SQZ_ERR_INVALID_ARG);
    check_run(s, xa);
    check_run(s, xb);
    /* without a fresh input: refused, naming the input */
    assert_int_equal(sqz_session_run(s, &st), SQZ_ERR_INVALID_ARG);
    assert_non_null(strstr(st.msg, "'x'"));
    check_run(s, xa);
    sqz_session_free(s);
    sqz_model_free(m);
    sqz_set_force_reference(0);
}

static void test_input_reuse_fast(void **state) {
    (void)state;
    run_case(0);
}

static void test_input_reuse_reference(void **state) {
    (void)state;
    run_case(1);
}

/* g (freed) shape-inferred, serialized and loaded as a runtime model */
static sqz_model *model_of(sqzc_graph *g) {
    char err[256];
    assert_int_equal(sqzc_infer_shapes(g, err, sizeof err), 0);
    uint8_t *buf;
    size_t size;
    if (sqzc_serialize(g, &buf, &size, err, sizeof err) != 0) fail_msg("serialize: %s", err);
    sqzc_graph_free(g);
    sqz_model *m;
    sqz_status st;
    if (sqz_model_load_buffer(buf, size, &m, &st) != SQZ_OK) fail_msg("load: %s", st.msg);
    free(buf);
    return m;
}

/* x -> Sigmoid -> s; y = Mul(s, x): the executor fuses the pair into one
 * SiLU pass when a fused kernel exists (the sigmoid output then gets no
 * buffer and y is written over x); results equal x * sigmoid(x) either way. */
static void silu_case(int force_ref, size_t *arena) {
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    sqz_shape xs = {4, {1, C, 6, 6}};
    g->tensors[x].shape = xs;
    g->tensors[x].has_shape = 1;
    g->inputs = malloc(sizeof(int32_t));
    assert_non_null(g->inputs);
    g->inputs[0] = x;
    g->n_inputs = 1;
    int sg = sqzc_tensor_get_or_add(g, "s"), y = sqzc_tensor_get_or_add(g, "y");
    int32_t i0[1] = {x}, o0[1] = {sg}, i1[2] = {sg, x}, o1[1] = {y};
    sqzc_add_node(g, SQZ_OP_SIGMOID, "sig", 1, i0, 1, o0);
    sqzc_add_node(g, SQZ_OP_MUL, "mul", 2, i1, 1, o1);
    g->outputs = malloc(sizeof(int32_t));
    assert_non_null(g->outputs);
    g->outputs[0] = y;
    g->n_outputs = 1;
    sqz_model *m = model_of(g);
    sqz_status st;
    sqz_set_force_reference(force_ref);
    sqz_session *s;
    if (sqz_session_create(m, NULL, &s, &st) != SQZ_OK) fail_msg("session: %s", st.msg);
    tu_rng r;
    tu_rng_seed(&r, 21);
    for (int rep = 0; rep < 2; rep++) {
        float xv[C * HW];
        tu_fill_uniform(&r, xv, C * HW, -8, 8);
        assert_int_equal(sqz_session_set_input(s, 0, xv, C * HW, &st), SQZ_OK);
        assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
        const float *yv;
        sqz_shape ys;
        assert_int_equal(sqz_session_output(s, 0, &yv, &ys, &st), SQZ_OK);
        assert_int_equal(sqz_shape_numel(&ys), C * HW);
        for (int i = 0; i < C * HW; i++) {
            float want = xv[i] * (1.0f / (1.0f + expf(-xv[i])));
            if (!(fabsf(yv[i] - want) <= 1e-5f * (1.0f + fabsf(want))))
                fail_msg("y[%d] = %g, want %g", i, yv[i], want);
        }
    }
    *arena = sqz_session_arena_bytes(s);
    sqz_session_free(s);
    sqz_model_free(m);
    sqz_set_force_reference(0);
}

static void test_silu_fusion(void **state) {
    (void)state;
    size_t a_fast, a_ref;
    silu_case(0, &a_fast);
    silu_case(1, &a_ref);
    /* reference: x and s live together (y goes over one of them) */
    assert_int_equal(a_ref, 2 * C * HW * sizeof(float));
#if defined(__x86_64__)
    /* fused (x86 has a SiLU kernel wherever AVX2 exists): one buffer */
    if (a_fast != a_ref) assert_int_equal(a_fast, C * HW * sizeof(float));
    printf("SiLU fusion: arena %zu bytes fused, %zu reference\n", a_fast, a_ref);
#endif
}

/* y = Relu(Add(a, b)): the executor fuses the Relu into the Add when the
 * sum is read by the Relu only (the Relu then does not run), so y must be
 * max(a + b, 0) exactly; with the sum also a graph output (t_out) nothing is
 * fused and t keeps its negative values. */
static void add_relu_case(int t_out) {
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int a = sqzc_tensor_get_or_add(g, "a"), b = sqzc_tensor_get_or_add(g, "b");
    sqz_shape xs = {4, {1, C, 6, 6}};
    g->tensors[a].shape = g->tensors[b].shape = xs;
    g->tensors[a].has_shape = g->tensors[b].has_shape = 1;
    g->inputs = malloc(2 * sizeof(int32_t));
    assert_non_null(g->inputs);
    g->inputs[0] = a;
    g->inputs[1] = b;
    g->n_inputs = 2;
    int t = sqzc_tensor_get_or_add(g, "t"), y = sqzc_tensor_get_or_add(g, "y");
    int32_t i0[2] = {a, b}, o0[1] = {t}, i1[1] = {t}, o1[1] = {y};
    sqzc_add_node(g, SQZ_OP_ADD, "add", 2, i0, 1, o0);
    sqzc_add_node(g, SQZ_OP_RELU, "relu", 1, i1, 1, o1);
    g->outputs = malloc(2 * sizeof(int32_t));
    assert_non_null(g->outputs);
    g->outputs[0] = y;
    g->outputs[1] = t;
    g->n_outputs = t_out ? 2 : 1;
    sqz_model *m = model_of(g);
    sqz_status st;
    sqz_session *s;
    if (sqz_session_create(m, NULL, &s, &st) != SQZ_OK) fail_msg("session: %s", st.msg);
    tu_rng r;
    tu_rng_seed(&r, 31);
    for (int rep = 0; rep < 2; rep++) {
        float av[C * HW], bv[C * HW];
        tu_fill_uniform(&r, av, C * HW, -3, 3);
        tu_fill_uniform(&r, bv, C * HW, -3, 3);
        assert_int_equal(sqz_session_set_input(s, 0, av, C * HW, &st), SQZ_OK);
        assert_int_equal(sqz_session_set_input(s, 1, bv, C * HW, &st), SQZ_OK);
        assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
        const float *yv, *tv;
        sqz_shape ys;
        assert_int_equal(sqz_session_output(s, 0, &yv, &ys, &st), SQZ_OK);
        int neg = 0;
        for (int i = 0; i < C * HW; i++) {
            float sum = av[i] + bv[i];
            neg += sum < 0.0f;
            if (yv[i] != (sum > 0.0f ? sum : 0.0f))
                fail_msg("y[%d] = %g, want relu(%g)", i, yv[i], sum);
        }
        assert_true(neg > 0); /* the Relu had something to do */
        if (t_out) {
            assert_int_equal(sqz_session_output(s, 1, &tv, &ys, &st), SQZ_OK);
            for (int i = 0; i < C * HW; i++) assert_true(tv[i] == av[i] + bv[i]);
        }
    }
    sqz_session_free(s);
    sqz_model_free(m);
}

static void test_add_relu_fusion(void **state) {
    (void)state;
    add_relu_case(0);
    add_relu_case(1);
}

/* y = Concat(Sigmoid(x), Conv1x1(x)) on axis 1: both inputs are read by the
 * Concat only, so the planner places them at their slices of y and the
 * Concat does not run; y must still hold both parts, run after run, and the
 * arena holds x, y and the conv's scratch only (no buffers for the parts). */
static void test_concat_in_place(void **state) {
    (void)state;
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    sqz_shape xs = {4, {1, C, 6, 6}}, ws = {4, {M, C, 1, 1}}, bs = {1, {M}};
    g->tensors[x].shape = xs;
    g->tensors[x].has_shape = 1;
    g->inputs = malloc(sizeof(int32_t));
    assert_non_null(g->inputs);
    g->inputs[0] = x;
    g->n_inputs = 1;
    int w = sqzc_tensor_get_or_add(g, "w"), b = sqzc_tensor_get_or_add(g, "b");
    assert_int_equal(sqzc_tensor_set_f32(g, w, &ws, W), 0);
    assert_int_equal(sqzc_tensor_set_f32(g, b, &bs, B), 0);
    int sg = sqzc_tensor_get_or_add(g, "s"), c = sqzc_tensor_get_or_add(g, "c"),
        y = sqzc_tensor_get_or_add(g, "y");
    int32_t i0[1] = {x}, o0[1] = {sg}, i1[3] = {x, w, b}, o1[1] = {c}, i2[2] = {sg, c}, o2[1] = {y};
    sqzc_add_node(g, SQZ_OP_SIGMOID, "sig", 1, i0, 1, o0);
    sqzc_add_node(g, SQZ_OP_CONV, "conv", 3, i1, 1, o1);
    int cat = sqzc_add_node(g, SQZ_OP_CONCAT, "cat", 2, i2, 1, o2);
    assert_true(cat >= 0);
    int64_t axis = 1;
    assert_int_equal(sqzc_node_set_int(g, cat, "axis", axis), 0);
    g->outputs = malloc(sizeof(int32_t));
    assert_non_null(g->outputs);
    g->outputs[0] = y;
    g->n_outputs = 1;
    sqz_model *m = model_of(g);
    sqz_status st;
    sqz_session *s;
    if (sqz_session_create(m, NULL, &s, &st) != SQZ_OK) fail_msg("session: %s", st.msg);
    /* separate buffers would keep s, c and y live together at the Concat */
    assert_true(sqz_session_arena_bytes(s) < (size_t)2 * (C + M) * HW * sizeof(float));
    tu_rng r;
    tu_rng_seed(&r, 5);
    for (int rep = 0; rep < 3; rep++) {
        float xv[C * HW];
        tu_fill_uniform(&r, xv, C * HW, -4, 4);
        assert_int_equal(sqz_session_set_input(s, 0, xv, C * HW, &st), SQZ_OK);
        assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
        const float *yv;
        sqz_shape ys;
        assert_int_equal(sqz_session_output(s, 0, &yv, &ys, &st), SQZ_OK);
        assert_int_equal(ys.dims[1], C + M);
        for (int i = 0; i < C * HW; i++) {
            float want = 1.0f / (1.0f + expf(-xv[i]));
            if (!(fabsf(yv[i] - want) <= 1e-5f)) fail_msg("y[%d] = %g, want %g", i, yv[i], want);
        }
        for (int o = 0; o < M; o++)
            for (int p = 0; p < HW; p++) {
                double acc = B[o];
                for (int i = 0; i < C; i++) acc += (double)W[o * C + i] * xv[i * HW + p];
                float got = yv[(C + o) * HW + p];
                if (!(fabs(got - acc) <= 1e-4 * (1.0 + fabs(acc))))
                    fail_msg("y[%d] = %g, want %g", (C + o) * HW + p, got, acc);
            }
    }
    sqz_session_free(s);
    sqz_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_reuse_fast), cmocka_unit_test(test_input_reuse_reference),
        cmocka_unit_test(test_silu_fusion),      cmocka_unit_test(test_add_relu_fusion),
        cmocka_unit_test(test_concat_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
