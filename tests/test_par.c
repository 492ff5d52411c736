/* test_par.c - sqz_par_for (runtime/kernels/par.h) and the one-team executor:
 * every part runs exactly once, outside and inside an OpenMP team; a graph
 * whose kernels split (Conv 3x3 and 1x1, depthwise, SiLU, Add, MaxPool)
 * gives the same outputs at 1, 2 and 3 threads, with and without the team
 * (SQZ_TEAM=0), and called from inside a caller's own parallel region; the
 * outputs agree with the reference kernels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "par.h"
#include "sqz/sqz.h"
#include "sqzc/ir.h"
#include "sqzc/writer.h"
#include "testutil.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

/* ------------------------------------------------------------ sqz_par_for */

typedef struct count_job {
    int hits[16];
    int tid_ok;
    int nt;
} count_job;

static void count_part(void *arg, int part) {
    count_job *j = arg;
#if defined(_OPENMP)
#pragma omp atomic
#endif
    j->hits[part]++;
#if defined(_OPENMP)
    if (omp_get_thread_num() >= (j->nt > 1 ? omp_get_num_threads() : 1)) {
#pragma omp atomic write
        j->tid_ok = 0;
    }
#endif
}

static void check_counts(int nt, int parts, int in_team) {
    count_job j;
    memset(&j, 0, sizeof j);
    j.tid_ok = 1;
    j.nt = nt;
    if (in_team) {
#if defined(_OPENMP)
#pragma omp parallel num_threads(nt)
        {
#pragma omp master
            sqz_par_for(nt, parts, count_part, &j);
        }
#else
        sqz_par_for(nt, parts, count_part, &j);
#endif
    } else {
        sqz_par_for(nt, parts, count_part, &j);
    }
    for (int p = 0; p < 16; p++) assert_int_equal(j.hits[p], p < parts ? 1 : 0);
    assert_true(j.tid_ok);
}

static void test_par_for_parts(void **state) {
    (void)state;
    for (int nt = 1; nt <= 3; nt++)
        for (int parts = 0; parts <= 9; parts++) {
            check_counts(nt, parts, 0);
            check_counts(nt, parts, 1);
        }
}

/* many jobs in a row on the master of sqz_par_team_run: each part of each
 * job exactly once (helpers that wake late must not claim a later job's
 * parts with an earlier job's function) */
typedef struct seq_job {
    int *hits; /* [jobs * 16] */
    int job;
} seq_job;

static void seq_part(void *arg, int part) {
    const seq_job *j = arg;
    int *h = &j->hits[j->job * 16 + part];
#if defined(_OPENMP)
#pragma omp atomic
#endif
    (*h)++;
    double s = 0.0; /* some work, so helpers overlap */
    for (int i = 0; i < 200 * (part + 1); i++) s += (double)i;
    if (s < 0.0) fail(); /* never: keeps the loop */
}

typedef struct seq_body_arg {
    int nt, jobs;
    int *hits;
} seq_body_arg;

static void seq_body(void *arg) {
    seq_body_arg *b = arg;
    for (int k = 0; k < b->jobs; k++) {
        seq_job j = {b->hits, k};
        sqz_par_for(b->nt, 1 + k % 9, seq_part, &j);
    }
}

/* a part that splits again (nested sqz_par_for: inline on the master, tasks
 * on a helper) */
typedef struct nest_job {
    int hits[8][4];
    int nt;
} nest_job;

typedef struct nest_inner {
    nest_job *j;
    int outer;
} nest_inner;

static void nest_inner_part(void *arg, int part) {
    nest_inner *in = arg;
#if defined(_OPENMP)
#pragma omp atomic
#endif
    in->j->hits[in->outer][part]++;
}

static void nest_outer_part(void *arg, int part) {
    nest_job *j = arg;
    nest_inner in = {j, part};
    sqz_par_for(j->nt, 4, nest_inner_part, &in);
}

static void nest_body(void *arg) {
    nest_job *j = arg;
    for (int rep = 0; rep < 20; rep++) sqz_par_for(j->nt, 8, nest_outer_part, j);
}

static void test_par_team(void **state) {
    (void)state;
    enum { JOBS = 400 };
    int *hits = calloc((size_t)JOBS * 16, sizeof *hits);
    assert_non_null(hits);
    for (int nt = 1; nt <= 3; nt++) {
        memset(hits, 0, (size_t)JOBS * 16 * sizeof *hits);
        seq_body_arg b = {nt, JOBS, hits};
        sqz_par_team_run(nt, seq_body, &b);
        for (int k = 0; k < JOBS; k++)
            for (int p = 0; p < 16; p++) assert_int_equal(hits[k * 16 + p], p < 1 + k % 9 ? 1 : 0);
    }
    free(hits);
    for (int nt = 1; nt <= 3; nt++) {
        nest_job nj;
        memset(&nj, 0, sizeof nj);
        nj.nt = nt;
        sqz_par_team_run(nt, nest_body, &nj);
        for (int o = 0; o < 8; o++)
            for (int p = 0; p < 4; p++) assert_int_equal(nj.hits[o][p], 20);
    }
}

static void fill_iota(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (x ? x[i] : 0.0f) + 1.0f;
}

/* more parts than one mailbox job holds (16-bit counters): run in chunks,
 * each part exactly once, on 1-3 threads of a team */
#define MANY_PARTS 70001
typedef struct many_job {
    unsigned char *hits;
} many_job;

static void many_part(void *arg, int part) {
    const many_job *j = arg;
#if defined(_OPENMP)
#pragma omp atomic
#endif
    j->hits[part]++;
}

static void many_body(void *arg) {
    many_job *j = arg;
    sqz_par_for(2, MANY_PARTS, many_part, j);
}

static void test_par_team_many_parts(void **state) {
    (void)state;
    for (int nt = 1; nt <= 3; nt++) {
        many_job j = {calloc(MANY_PARTS + 1, 1)};
        assert_non_null(j.hits);
        sqz_par_team_run(nt, many_body, &j);
        for (int p = 0; p < MANY_PARTS; p++)
            if (j.hits[p] != 1) fail_msg("nt=%d: part %d ran %d times", nt, p, j.hits[p]);
        assert_int_equal(j.hits[MANY_PARTS], 0);
        free(j.hits);
    }
}

static void test_par_eltwise(void **state) {
    (void)state;
    const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1000, 4097};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int nt = 1; nt <= 3; nt++) {
            size_t n = sizes[si];
            float *x = malloc((n + 1) * sizeof *x), *y = malloc((n + 1) * sizeof *y);
            assert_non_null(x);
            assert_non_null(y);
            for (size_t i = 0; i < n; i++) {
                x[i] = (float)i;
                y[i] = -1.0f;
            }
            sqz_par_eltwise(nt, fill_iota, x, y, n);
            for (size_t i = 0; i < n; i++) assert_true(y[i] == (float)i + 1.0f);
            free(x);
            free(y);
        }
}

/* ------------------------------------------------------ whole-graph runs */

enum { C0 = 16, C1 = 32, C2 = 48, HW = 48 };

static int add_const(sqzc_graph *g, const char *name, int ndim, const int64_t *dims, tu_rng *r) {
    sqz_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = ndim;
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        s.dims[d] = dims[d];
        n *= (size_t)dims[d];
    }
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    tu_fill_uniform(r, v, n, -0.3f, 0.3f);
    int t = sqzc_tensor_get_or_add(g, name);
    assert_true(t >= 0);
    assert_int_equal(sqzc_tensor_set_f32(g, t, &s, v), 0);
    free(v);
    return t;
}

static int conv(sqzc_graph *g, const char *name, int x, int w, int b, int k, int stride,
                int group) {
    int y = sqzc_tensor_add_unique(g, name);
    assert_true(y >= 0);
    int32_t in[3] = {x, w, b}, out[1] = {y};
    int n = sqzc_add_node(g, SQZ_OP_CONV, name, 3, in, 1, out);
    assert_true(n >= 0);
    int64_t pads[4] = {k / 2, k / 2, k / 2, k / 2}, ks[2] = {k, k}, st[2] = {stride, stride};
    assert_int_equal(sqzc_node_set_ints(g, n, "pads", pads, 4), 0);
    assert_int_equal(sqzc_node_set_ints(g, n, "kernel_shape", ks, 2), 0);
    assert_int_equal(sqzc_node_set_ints(g, n, "strides", st, 2), 0);
    assert_int_equal(sqzc_node_set_int(g, n, "group", group), 0);
    return y;
}

static int node1(sqzc_graph *g, int op, const char *name, int a, int b) {
    int y = sqzc_tensor_add_unique(g, name);
    assert_true(y >= 0);
    int32_t in[2] = {a, b}, out[1] = {y};
    int n = sqzc_add_node(g, op, name, b >= 0 ? 2 : 1, in, 1, out);
    assert_true(n >= 0);
    return y;
}

/* the graph input "x", shape [1, c, h, w] */
static int input_nchw(sqzc_graph *g, int64_t c, int64_t h, int64_t w) {
    int x = sqzc_tensor_get_or_add(g, "x");
    assert_true(x >= 0);
    g->tensors[x].has_shape = 1;
    g->tensors[x].shape.ndim = 4;
    g->tensors[x].shape.dims[0] = 1;
    g->tensors[x].shape.dims[1] = c;
    g->tensors[x].shape.dims[2] = h;
    g->tensors[x].shape.dims[3] = w;
    return x;
}

/* x -> Conv3x3 -> Relu -> depthwise 3x3 -> SiLU (Sigmoid, Mul) -> Add(relu)
 *   -> MaxPool 3x3/2 -> Conv1x1 -> depthwise 5x5 stride 2 -> GlobalAveragePool */
static uint8_t *build_model(size_t *size) {
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    tu_rng r;
    tu_rng_seed(&r, 7);
    int x = input_nchw(g, C0, HW, HW);
    int64_t w1d[4] = {C1, C0, 3, 3}, b1d[1] = {C1}, wdd[4] = {C1, 1, 3, 3};
    int64_t w2d[4] = {C2, C1, 1, 1}, b2d[1] = {C2}, wd5[4] = {C2, 1, 5, 5};
    int w1 = add_const(g, "w1", 4, w1d, &r), b1 = add_const(g, "b1", 1, b1d, &r);
    int wd = add_const(g, "wd", 4, wdd, &r), bd = add_const(g, "bd", 1, b1d, &r);
    int w2 = add_const(g, "w2", 4, w2d, &r), b2 = add_const(g, "b2", 1, b2d, &r);
    int w5 = add_const(g, "w5", 4, wd5, &r), b5 = add_const(g, "b5", 1, b2d, &r);
    int c1 = conv(g, "c1", x, w1, b1, 3, 1, 1);
    int r1 = node1(g, SQZ_OP_RELU, "r1", c1, -1);
    int d1 = conv(g, "d1", r1, wd, bd, 3, 1, C1);
    int sg = node1(g, SQZ_OP_SIGMOID, "sg", d1, -1);
    int sw = node1(g, SQZ_OP_MUL, "sw", d1, sg);
    int ad = node1(g, SQZ_OP_ADD, "ad", sw, r1);
    int mp = sqzc_tensor_add_unique(g, "mp");
    {
        int32_t in[1] = {ad}, out[1] = {mp};
        int n = sqzc_add_node(g, SQZ_OP_MAXPOOL, "mp", 1, in, 1, out);
        assert_true(n >= 0);
        int64_t ks[2] = {3, 3}, st[2] = {2, 2}, pads[4] = {1, 1, 1, 1};
        assert_int_equal(sqzc_node_set_ints(g, n, "kernel_shape", ks, 2), 0);
        assert_int_equal(sqzc_node_set_ints(g, n, "strides", st, 2), 0);
        assert_int_equal(sqzc_node_set_ints(g, n, "pads", pads, 4), 0);
    }
    int c2 = conv(g, "c2", mp, w2, b2, 1, 1, 1);
    int d2 = conv(g, "d2", c2, w5, b5, 5, 2, C2);
    int gp = node1(g, SQZ_OP_GLOBAL_AVGPOOL, "gp", d2, -1);
    g->inputs = malloc(sizeof *g->inputs);
    g->outputs = malloc(2 * sizeof *g->outputs);
    assert_non_null(g->inputs);
    assert_non_null(g->outputs);
    g->inputs[0] = x;
    g->n_inputs = 1;
    g->outputs[0] = gp;
    g->outputs[1] = c2; /* a big output: every element of a split conv checked */
    g->n_outputs = 2;
    uint8_t *buf = NULL;
    char err[256];
    if (sqzc_serialize(g, &buf, size, err, sizeof err) != 0) {
        print_error("serialize: %s\n", err);
        fail();
    }
    sqzc_graph_free(g);
    return buf;
}

typedef struct result {
    float *y[2];
    size_t n[2];
} result;

static void run_model(const sqz_model *m, int threads, const float *x, size_t nx, result *res) {
    sqz_session_options so;
    sqz_session_options_init(&so);
    so.num_threads = threads;
    sqz_session *s = NULL;
    sqz_status st;
    memset(&st, 0, sizeof st);
    if (sqz_session_create(m, &so, &s, &st) != SQZ_OK) {
        print_error("session: %s\n", st.msg);
        fail();
    }
    for (int rep = 0; rep < 2; rep++) { /* twice: the team is reused per run */
        assert_int_equal(sqz_session_set_input(s, 0, x, nx, &st), SQZ_OK);
        assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
    }
    for (int o = 0; o < 2; o++) {
        const float *y = NULL;
        sqz_shape sh;
        assert_int_equal(sqz_session_output(s, o, &y, &sh, &st), SQZ_OK);
        res->n[o] = (size_t)sqz_shape_numel(&sh);
        res->y[o] = malloc(res->n[o] * sizeof(float));
        assert_non_null(res->y[o]);
        memcpy(res->y[o], y, res->n[o] * sizeof(float));
    }
    sqz_session_free(s);
}

static void free_result(result *r) {
    free(r->y[0]);
    free(r->y[1]);
}

static void expect_same(const result *a, const result *b) {
    for (int o = 0; o < 2; o++) {
        assert_int_equal(a->n[o], b->n[o]);
        /* the splits never change how one output element is summed */
        assert_memory_equal(a->y[o], b->y[o], a->n[o] * sizeof(float));
    }
}

/* Loads the model in buf (freed) and a random input of nx floats (seed);
 * runs it on the reference kernels and on the fast ones at one thread into
 * ref / one, and checks one against ref within 1e-4 of the largest |y|
 * (at least 1). The splits are then checked bit-exact against one, so the
 * conv algorithm is held fixed: the automatic choice may differ with the
 * thread count (Winograd at one thread on half-rate-FMA CPUs, winograd.c);
 * the caller unsets SQZ_WINOGRAD at the end. */
static void setup_ref_one(uint8_t *buf, size_t size, size_t nx, uint32_t seed, sqz_model **m,
                          float **x, result *ref, result *one) {
    sqz_status st;
    memset(&st, 0, sizeof st);
    assert_int_equal(sqz_model_load_buffer(buf, size, m, &st), SQZ_OK);
    free(buf);
    *x = malloc(nx * sizeof **x);
    assert_non_null(*x);
    tu_rng r;
    tu_rng_seed(&r, seed);
    tu_fill_uniform(&r, *x, nx, -1.0f, 1.0f);
    setenv("SQZ_WINOGRAD", "0", 1);
    sqz_set_force_reference(1);
    run_model(*m, 1, *x, nx, ref);
    sqz_set_force_reference(0);
    run_model(*m, 1, *x, nx, one);
    for (int o = 0; o < 2; o++) {
        double mx = 0.0;
        for (size_t i = 0; i < ref->n[o]; i++) {
            double v = ref->y[o][i] < 0 ? -ref->y[o][i] : ref->y[o][i];
            if (v > mx) mx = v;
        }
        double d = tu_max_abs_diff(ref->y[o], one->y[o], ref->n[o]);
        print_message("output %d: %zu values, max |fast - reference| %.3g (max |y| %.3g)\n", o,
                      ref->n[o], d, mx);
        assert_true(d <= 1e-4 * (mx > 1.0 ? mx : 1.0));
    }
}

static void test_graph_threads(void **state) {
    (void)state;
    size_t size = 0;
    uint8_t *buf = build_model(&size);
    sqz_model *m = NULL;
    float *x = NULL;
    size_t nx = (size_t)C0 * HW * HW;
    result ref, one, t;
    setup_ref_one(buf, size, nx, 11, &m, &x, &ref, &one);
    for (int team = 1; team >= 0; team--) {
        setenv("SQZ_TEAM", team ? "1" : "0", 1);
        for (int threads = 2; threads <= 3; threads++) {
            run_model(m, threads, x, nx, &t);
            expect_same(&one, &t);
            free_result(&t);
        }
    }
    unsetenv("SQZ_TEAM");
#if defined(_OPENMP)
    /* sessions run from inside the caller's own parallel region (no team of
     * their own: the kernels' tasks go to the caller's team) */
    result par[2];
    memset(par, 0, sizeof par);
#pragma omp parallel num_threads(2)
    {
        int id = omp_get_thread_num();
        if (id < 2) run_model(m, 2, x, nx, &par[id]);
    }
    for (int i = 0; i < 2; i++)
        if (par[i].y[0]) {
            expect_same(&one, &par[i]);
            free_result(&par[i]);
        }
#endif
    free_result(&ref);
    free_result(&one);
    free(x);
    sqz_model_free(m);
    unsetenv("SQZ_WINOGRAD");
}

/* Small depthwise layers (32K..256K MACs, common/dwconv.c dw_run) split
 * into one part per thread: odd channel counts and plane sizes, 3x3 stride 1
 * and 5x5 stride 2 after a 1x1 conv; 2 and 3 threads give the 1-thread
 * outputs exactly, also over the runs of one session (solo probe). */
enum { SC = 13, SM = 37, SH = 15, SW = 11 };

static uint8_t *build_small_dw_model(size_t *size) {
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    tu_rng r;
    tu_rng_seed(&r, 5);
    int x = input_nchw(g, SC, SH, SW);
    int64_t wpd[4] = {SM, SC, 1, 1}, bd[1] = {SM}, w3d[4] = {SM, 1, 3, 3}, w5d[4] = {SM, 1, 5, 5};
    int wp = add_const(g, "wp", 4, wpd, &r), bp = add_const(g, "bp", 1, bd, &r);
    int w3 = add_const(g, "w3", 4, w3d, &r), b3 = add_const(g, "b3", 1, bd, &r);
    int w5 = add_const(g, "w5", 4, w5d, &r), b5 = add_const(g, "b5", 1, bd, &r);
    int c1 = conv(g, "c1", x, wp, bp, 1, 1, 1);
    int d3 = conv(g, "d3", c1, w3, b3, 3, 1, SM); /* 37 x 15 x 11 x 9 = 55K MACs */
    int r3 = node1(g, SQZ_OP_RELU, "r3", d3, -1);
    int d5 = conv(g, "d5", r3, w5, b5, 5, 2, SM); /* 37 x 8 x 6 x 25 = 44K MACs */
    g->inputs = malloc(sizeof *g->inputs);
    g->outputs = malloc(2 * sizeof *g->outputs);
    assert_non_null(g->inputs);
    assert_non_null(g->outputs);
    g->inputs[0] = x;
    g->n_inputs = 1;
    g->outputs[0] = d5;
    g->outputs[1] = r3;
    g->n_outputs = 2;
    uint8_t *buf = NULL;
    char err[256];
    if (sqzc_serialize(g, &buf, size, err, sizeof err) != 0) {
        print_error("serialize: %s\n", err);
        fail();
    }
    sqzc_graph_free(g);
    return buf;
}

static void test_small_dw_threads(void **state) {
    (void)state;
    size_t size = 0;
    uint8_t *buf = build_small_dw_model(&size);
    sqz_model *m = NULL;
    float *x = NULL;
    size_t nx = (size_t)SC * SH * SW;
    result ref, one, t;
    setup_ref_one(buf, size, nx, 13, &m, &x, &ref, &one);
    assert_int_equal(one.n[0], (size_t)SM * 8 * 6);
    assert_int_equal(one.n[1], (size_t)SM * SH * SW);
    for (int threads = 2; threads <= 3; threads++) {
        run_model(m, threads, x, nx, &t);
        expect_same(&one, &t);
        free_result(&t);
    }
    /* 96 runs of one 2-thread session: the pool's solo probe (par.c, runs
     * 64-82) runs parts on the master alone, then split or solo by timing;
     * every run equals the 1-thread outputs */
    sqz_session_options so;
    sqz_session_options_init(&so);
    so.num_threads = 2;
    sqz_session *s = NULL;
    sqz_status st;
    memset(&st, 0, sizeof st);
    assert_int_equal(sqz_session_create(m, &so, &s, &st), SQZ_OK);
    for (int rep = 0; rep < 96; rep++) {
        assert_int_equal(sqz_session_set_input(s, 0, x, nx, &st), SQZ_OK);
        assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
        for (int o = 0; o < 2; o++) {
            const float *y = NULL;
            sqz_shape sh;
            assert_int_equal(sqz_session_output(s, o, &y, &sh, &st), SQZ_OK);
            assert_int_equal((size_t)sqz_shape_numel(&sh), one.n[o]);
            assert_memory_equal(y, one.y[o], one.n[o] * sizeof(float));
        }
    }
    sqz_session_free(s);
    free_result(&ref);
    free_result(&one);
    free(x);
    sqz_model_free(m);
    unsetenv("SQZ_WINOGRAD");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_par_for_parts), cmocka_unit_test(test_par_eltwise),
        cmocka_unit_test(test_par_team),      cmocka_unit_test(test_par_team_many_parts),
        cmocka_unit_test(test_graph_threads), cmocka_unit_test(test_small_dw_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
