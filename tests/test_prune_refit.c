/* test_prune_refit.c - least-squares reconstruction after pruning: the
 * pruned model's outputs move closer to the original's on held-out inputs,
 * the number of zero weights (the mask) is unchanged, and on a channel-zeroed
 * net removed filters stay removed so channel removal still equals zeroing. */
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
#include "sqzc/onnx_import.h"
#include "sqzc/passes.h"
#include "sqzc/prune.h"
#include "sqzc/prune_refit.h"
#include "sqzc/writer.h"
#include "testutil.h"
#include "test_graph.h"

/* mean squared output difference of a and b over the samples */
static double mse(sqzc_graph *a, sqzc_graph *b, const float *x, int n, size_t per) {
    double s = 0;
    size_t cnt = 0;
    for (int i = 0; i < n; i++) {
        size_t na, nb;
        float *ya = tg_run(a, x + (size_t)i * per, per, &na),
              *yb = tg_run(b, x + (size_t)i * per, per, &nb);
        assert_int_equal(na, nb);
        for (size_t k = 0; k < na; k++) s += ((double)ya[k] - yb[k]) * ((double)ya[k] - yb[k]);
        cnt += na;
        free(ya);
        free(yb);
    }
    return s / (double)cnt;
}

/* smooth random "images": correlated inputs like real data */
static float *inputs(int n, size_t per, uint64_t seed) {
    tu_rng r;
    tu_rng_seed(&r, seed);
    float *x = malloc((size_t)n * per * sizeof *x);
    assert_non_null(x);
    for (int i = 0; i < n; i++) {
        float a = tu_rng_uniform(&r, -1, 1), b = tu_rng_uniform(&r, -1, 1);
        for (size_t k = 0; k < per; k++)
            x[(size_t)i * per + k] = a * sinf(0.05f * (float)k) + b * cosf(0.11f * (float)k) +
                                     tu_rng_uniform(&r, -0.3f, 0.3f);
    }
    return x;
}

static void test_unstructured(void **state) {
    (void)state;
    char p[1200];
    snprintf(p, sizeof p, "%s/tools/models/lenet300.onnx", tu_source_dir());
    for (int mode = 1; mode <= 3; mode++) { /* 0 (plain refit) is the same code minus remask */
        sqzc_graph *orig = tg_load(p, NULL), *g = tg_load(p, NULL);
        size_t per = (size_t)sqz_shape_numel(&g->tensors[g->inputs[0]].shape);
        sqzc_prune_options po;
        memset(&po, 0, sizeof po);
        po.sparsity = 0.8f;
        char err[512];
        assert_int_equal(sqzc_prune_magnitude(g, &po, err, sizeof err), 0);
        int64_t z = tg_zero_weights(g);
        float *cal = inputs(100, per, 1), *held = inputs(8, per, 2);
        double before = mse(g, orig, held, 8, per);
        sqzc_refit_options ro;
        memset(&ro, 0, sizeof ro);
        ro.inputs = cal;
        ro.n = 100;
        ro.remask = mode;
        if (sqzc_prune_refit(g, orig, &ro, err, sizeof err) != 0) {
            print_error("refit: %s\n", err);
            fail();
        }
        double after = mse(g, orig, held, 8, per);
        print_message("mode %d: output mse %.4g -> %.4g\n", mode, before, after);
        assert_int_equal(tg_zero_weights(g), z);
        assert_true(after < 0.5 * before);
        free(cal);
        free(held);
        sqzc_graph_free(g);
        sqzc_graph_free(orig);
    }
}

static void test_channels(void **state) {
    (void)state;
    char p[1200];
    snprintf(p, sizeof p, "%s/tools/models/mobilenet.onnx", tu_source_dir());
    if (access(p, R_OK) != 0) skip(); /* reference model not committed yet */
    sqzc_graph *orig = tg_load(p, NULL), *g = tg_load(p, NULL), *gz = NULL;
    size_t per = (size_t)sqz_shape_numel(&g->tensors[g->inputs[0]].shape);
    char err[512];
    sqzc_channel_analysis *a = NULL;
    assert_int_equal(sqzc_channel_analyze(g, SQZC_CRIT_L1, NULL, &a, err, sizeof err), 0);
    uint8_t *rm = calloc((size_t)sqzc_channel_n_groups(a) + 1, 1);
    assert_non_null(rm);
    sqzc_channel_options co;
    memset(&co, 0, sizeof co);
    co.ratio = 0.25f;
    assert_int_equal(sqzc_channel_select(a, &co, rm, NULL, err, sizeof err), 0);
    assert_int_equal(sqzc_channel_zero(g, a, rm, err, sizeof err), 0);
    float *cal = inputs(24, per, 3), *held = inputs(4, per, 4);
    double before = mse(g, orig, held, 4, per);
    sqzc_refit_options ro;
    memset(&ro, 0, sizeof ro);
    ro.inputs = cal;
    ro.n = 24;
    ro.max_samples = 4096;
    assert_int_equal(sqzc_prune_refit(g, orig, &ro, err, sizeof err), 0);
    double after = mse(g, orig, held, 4, per);
    print_message("channels: output mse %.4g -> %.4g\n", before, after);
    assert_true(after < before);
    /* removal of the refit, zeroed net still equals it exactly */
    gz = tg_load(p, NULL);
    sqzc_channel_analysis *az = NULL;
    assert_int_equal(sqzc_channel_analyze(gz, SQZC_CRIT_L1, NULL, &az, err, sizeof err), 0);
    for (int t = 0; t < g->n_tensors; t++) /* copy refit weights into gz */
        if (g->tensors[t].f32)
            memcpy(gz->tensors[t].f32, g->tensors[t].f32,
                   (size_t)sqz_shape_numel(&g->tensors[t].shape) * sizeof(float));
    assert_int_equal(sqzc_channel_apply(g, a, rm, err, sizeof err), 0);
    size_t n1, n2;
    float *y1 = tg_run(g, held, per, &n1), *y2 = tg_run(gz, held, per, &n2);
    assert_int_equal(n1, n2);
    assert_true(tu_max_abs_diff(y1, y2, n1) <= 1e-5);
    free(y1);
    free(y2);
    free(cal);
    free(held);
    free(rm);
    sqzc_channel_analysis_free(a);
    sqzc_channel_analysis_free(az);
    sqzc_graph_free(g);
    sqzc_graph_free(gz);
    sqzc_graph_free(orig);
}

/* sqzc_prune_gram: exact zero count, and the kept weights are the (ridge-)
 * least-squares fit of the original outputs on their support: the residual
 * is orthogonal to every kept input, for both weight layouts */
static void test_gram(void **state) {
    (void)state;
    enum { K = 13, NO = 5, S = 300, D = K + 1 };
    tu_rng r;
    tu_rng_seed(&r, 7);
    static float X[S][K], W0[K * NO], W[K * NO], b0[NO], b[NO];
    static double G[D * D];
    for (int i = 0; i < S; i++)
        for (int k = 0; k < K; k++) X[i][k] = tu_rng_uniform(&r, -1, 1) + (k % 3 ? 0.5f : 0.0f);
    for (int e = 0; e < K * NO; e++) W0[e] = tu_rng_uniform(&r, -1, 1);
    for (int o = 0; o < NO; o++) b0[o] = tu_rng_uniform(&r, -0.5f, 0.5f);
    memset(G, 0, sizeof G);
    for (int i = 0; i < S; i++)
        for (int a = 0; a < D; a++)
            for (int c = 0; c < D; c++)
                G[a * D + c] += (a < K ? X[i][a] : 1.0) * (c < K ? X[i][c] : 1.0);
    for (int cm = 0; cm <= 1; cm++) {
        const int64_t zeros = 40;
        assert_int_equal(sqzc_prune_gram(W, W0, b, b0, G, K, NO, cm, zeros, 1e-6f), 0);
        int64_t z = 0;
        for (int e = 0; e < K * NO; e++) z += W[e] == 0.0f;
        assert_int_equal(z, zeros);
        double worst = 0, scale = 0;
        for (int o = 0; o < NO; o++)
            for (int k = 0; k <= K; k++) {
                if (k < K && W[cm ? k * NO + o : o * K + k] == 0.0f) continue;
                double dot = 0, nn = 0;
                for (int i = 0; i < S; i++) {
                    double y = b0[o], yh = b[o];
                    for (int j = 0; j < K; j++) {
                        y += (double)W0[cm ? j * NO + o : o * K + j] * X[i][j];
                        yh += (double)W[cm ? j * NO + o : o * K + j] * X[i][j];
                    }
                    double xk = k < K ? X[i][k] : 1.0;
                    dot += (y - yh) * xk;
                    nn += fabs(y * xk);
                }
                worst = fabs(dot) > worst ? fabs(dot) : worst;
                scale = nn > scale ? nn : scale;
            }
        print_message("layout %d: largest |residual . x_k| %.3g (scale %.3g)\n", cm, worst, scale);
        assert_true(worst < 1e-4 * scale);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unstructured),
        cmocka_unit_test(test_gram),
        cmocka_unit_test(test_channels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
