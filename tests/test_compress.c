/* test_compress.c - weight sharing (1-D k-means, fp16 centroids), magnitude
 * pruning (exact targets, largest magnitudes kept, global threshold), the
 * sparse-storage estimate, recipe parsing and its errors, and an IR ->
 * recipe -> .sqz -> runtime round trip. */
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
#include "sqzc/prune.h"
#include "sqzc/passes.h"
#include "sqzc/recipe.h"
#include "sqzc/weight_share.h"
#include "sqzc/writer.h"
#include "testutil.h"

static void test_kmeans_two_clusters(void **state) {
    (void)state;
    const float x[6] = {1.5f, -3.0f, 0.5f, -1.0f, 1.0f, -2.0f};
    float c[2];
    assert_int_equal(sqzc_kmeans_1d(x, 6, 2, 0, c), 2);
    assert_true(c[0] == -2.0f);
    assert_true(c[1] == 1.0f);
    /* more clusters than distinct values: one centroid per value */
    float c8[8];
    const float y[5] = {2.0f, 2.0f, 7.0f, 7.0f, 7.0f};
    assert_int_equal(sqzc_kmeans_1d(y, 5, 8, 0, c8), 2);
    assert_true(c8[0] == 2.0f && c8[1] == 7.0f);
    assert_int_equal(sqzc_kmeans_1d(y, 0, 4, 0, c8), 0);
}

static void test_kmeans_linear_init(void **state) {
    (void)state;
    /* 0..10, k = 3: linear init 0, 5, 10 -> clusters {0,1,2} {3..7} {8,9,10}
     * -> after one Lloyd step 1, 5, 9 (the fixed point) */
    float x[11], c[3];
    for (int i = 0; i < 11; i++) x[i] = (float)(10 - i);
    assert_int_equal(sqzc_kmeans_1d(x, 11, 3, 1, c), 3);
    assert_true(c[0] == 1.0f && c[1] == 5.0f && c[2] == 9.0f);
    /* skewed data: linear (not density) init keeps a centroid near the max */
    float s[101];
    for (int i = 0; i < 100; i++) s[i] = 0.01f * (float)i;
    s[100] = 100.0f;
    float c4[4];
    int m = sqzc_kmeans_1d(s, 101, 4, 0, c4);
    assert_true(m >= 2);
    assert_true(c4[m - 1] == 100.0f);
}

static void test_kmeans_weighted(void **state) {
    (void)state;
    /* two clusters; the weights move each centroid to the weighted mean:
     * {-3 (w 1), -1 (w 3)} -> -1.5 ; {1 (w 0), 2 (w 1), 4 (w 1)} -> 3 */
    const float x[5] = {-3.0f, 1.0f, -1.0f, 4.0f, 2.0f};
    const float w[5] = {1.0f, 0.0f, 3.0f, 1.0f, 1.0f};
    float c[2];
    assert_int_equal(sqzc_kmeans_1d_weighted(x, w, 5, 2, 0, c), 2);
    assert_true(c[0] == -1.5f && c[1] == 3.0f);
    /* unit weights equal the unweighted k-means */
    float u[11], one[11], cu[3], cw[3];
    for (int i = 0; i < 11; i++) {
        u[i] = (float)((i * 7) % 11) * 0.37f - 1.0f;
        one[i] = 1.0f;
    }
    int mu = sqzc_kmeans_1d(u, 11, 3, 0, cu), mw = sqzc_kmeans_1d_weighted(u, one, 11, 3, 0, cw);
    assert_int_equal(mu, mw);
    for (int j = 0; j < mu; j++) assert_true(cu[j] == cw[j]);
    /* a negative or non-finite weight is refused */
    const float bad[5] = {1.0f, 1.0f, -1.0f, 1.0f, 1.0f};
    assert_int_equal(sqzc_kmeans_1d_weighted(x, bad, 5, 2, 0, c), -1);
    /* shared array: every value is a centroid, zeros kept */
    float a[6] = {0.0f, -3.0f, 1.0f, -1.0f, 4.0f, 2.0f}, cb[4];
    const float imp[6] = {1.0f, 1.0f, 0.0f, 3.0f, 1.0f, 1.0f};
    int m = sqzc_share_array_weighted(a, imp, 6, 2, 0, cb);
    assert_true(m >= 2 && m <= 4);
    assert_true(a[0] == 0.0f);
    for (int i = 1; i < 6; i++) {
        int found = 0;
        for (int j = 0; j < m; j++) found |= a[i] == cb[j];
        assert_true(found && a[i] != 0.0f);
    }
}

static void check_shared(const float *orig, const float *w, int64_t n, int bits, const float *c,
                         int m, int fp16) {
    assert_true(m >= 1 && m <= (1 << bits));
    for (int j = 1; j < m; j++) assert_true(c[j - 1] < c[j]);
    int has_zero = 0, zero_in = 0;
    for (int j = 0; j < m; j++) zero_in |= c[j] == 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (orig[i] == 0.0f) {
            assert_true(w[i] == 0.0f);
            has_zero = 1;
            continue;
        }
        /* each weight is its nearest centroid (among the non-zero ones) */
        float best = 0.0f;
        float bd = INFINITY;
        for (int j = 0; j < m; j++) {
            if (c[j] == 0.0f) continue;
            float d = fabsf(orig[i] - c[j]);
            if (d < bd) {
                bd = d;
                best = c[j];
            }
        }
        if (!(fabsf(orig[i] - w[i]) <= bd))
            fail_msg("bits %d fp16 %d: %.9g -> %.9g, nearest %.9g", bits, fp16, (double)orig[i],
                     (double)w[i], (double)best);
        assert_true(w[i] == best || fabsf(orig[i] - w[i]) == bd);
        if (w[i] == 0.0f) has_zero = 1;
    }
    assert_int_equal(has_zero, zero_in);
    /* distinct non-zero values <= 2^bits */
    int distinct = 0;
    for (int j = 0; j < m; j++) {
        int used = 0;
        for (int64_t i = 0; i < n && !used; i++) used = w[i] == c[j];
        distinct += used && c[j] != 0.0f;
        if (fp16) assert_true(sqzc_round_f16(c[j]) == c[j]);
    }
    assert_true(distinct <= (1 << bits) - has_zero);
}

static void test_share_array(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 11);
    enum { N = 3000 };
    float *orig = malloc(N * sizeof *orig), *w = malloc(N * sizeof *w), c[256];
    assert_non_null(orig);
    assert_non_null(w);
    for (int bits = 2; bits <= 8; bits++) {
        for (int fp16 = 0; fp16 <= 1; fp16++) {
            tu_fill_uniform(&r, orig, N, -0.2f, 0.3f);
            for (int i = 0; i < N; i += 3) orig[i] = 0.0f; /* pruned */
            memcpy(w, orig, N * sizeof *w);
            int m = sqzc_share_array(w, N, bits, fp16, c);
            check_shared(orig, w, N, bits, c, m, fp16);
        }
    }
    /* no zeros: all 2^bits codes go to non-zeros */
    tu_fill_uniform(&r, orig, N, 0.1f, 1.0f);
    memcpy(w, orig, N * sizeof *w);
    int m = sqzc_share_array(w, N, 3, 0, c);
    assert_int_equal(m, 8);
    check_shared(orig, w, N, 3, c, m, 0);
    orig[5] = NAN;
    memcpy(w, orig, N * sizeof *w);
    assert_int_equal(sqzc_share_array(w, N, 3, 0, c), -1);
    free(orig);
    free(w);
}

static void test_round_f16(void **state) {
    (void)state;
    assert_true(sqzc_round_f16(1.0f) == 1.0f);
    assert_true(sqzc_round_f16(1.0f + ldexpf(1.0f, -11)) == 1.0f); /* tie -> even */
    assert_true(sqzc_round_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 1.0f + ldexpf(1.0f, -9));
    assert_true(sqzc_round_f16(-2.5f) == -2.5f);
    assert_true(sqzc_round_f16(1e6f) == 65504.0f);
    assert_true(sqzc_round_f16(1e-9f) == 0.0f);
    assert_true(sqzc_round_f16(ldexpf(1.0f, -24)) == ldexpf(1.0f, -24)); /* smallest subnormal */
    assert_true(sqzc_round_f16(0.1f) == 0.0999755859375f);
}

static void test_prune_array(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 5);
    enum { N = 1001 };
    float w[N], o[N];
    tu_fill_uniform(&r, o, N, -1.0f, 1.0f);
    const float sp[4] = {0.0f, 0.5f, 0.9f, 0.999f};
    for (int k = 0; k < 4; k++) {
        memcpy(w, o, sizeof w);
        int64_t want = (int64_t)floor((double)sp[k] * N + 0.5);
        assert_int_equal(sqzc_prune_array(w, N, sp[k]), want);
        int zeros = 0;
        float max_pruned = 0.0f, min_kept = INFINITY;
        for (int i = 0; i < N; i++) {
            if (w[i] == 0.0f) {
                zeros++;
                if (fabsf(o[i]) > max_pruned) max_pruned = fabsf(o[i]);
            } else {
                assert_true(w[i] == o[i]);
                if (fabsf(o[i]) < min_kept) min_kept = fabsf(o[i]);
            }
        }
        assert_int_equal(zeros, want);
        assert_true(max_pruned <= min_kept);
    }
    assert_int_equal(sqzc_prune_array(w, N, 1.0f), -1);
    assert_int_equal(sqzc_prune_array(w, N, -0.1f), -1);
}

static void test_sparse_entries(void **state) {
    (void)state;
    float w[20] = {0};
    w[0] = 1.0f;
    w[10] = 2.0f; /* run of 9 zeros: one filler at 3 gap bits (span 8) */
    w[12] = 3.0f;
    assert_int_equal(sqzc_sparse_entries(w, 20, 3), 4);
    assert_int_equal(sqzc_sparse_entries(w, 20, 4), 3);
    int gb;
    int64_t bits;
    assert_int_equal(sqzc_sparse_plan(w, 20, 32, &gb, &bits), 1);
    assert_true(bits < 20 * 32);
    float dense[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(sqzc_sparse_plan(dense, 8, 5, &gb, &bits), 0);
}

/* x[1,K] -> Gemm(W[N,K] transB, b) -> y */
static sqzc_graph *make_fc(int K, int N, int n_layers, tu_rng *r) {
    sqzc_graph *g = sqzc_graph_new();
    assert_non_null(g);
    int x = sqzc_tensor_get_or_add(g, "x");
    g->tensors[x].shape = (sqz_shape){2, {1, K}};
    g->tensors[x].has_shape = 1;
    g->inputs = malloc(sizeof(int32_t));
    assert_non_null(g->inputs);
    g->inputs[0] = x;
    g->n_inputs = 1;
    int cur = x, kin = K;
    for (int l = 0; l < n_layers; l++) {
        char name[32];
        int nout = l == n_layers - 1 ? N : 64;
        snprintf(name, sizeof name, "w%d", l);
        int w = sqzc_tensor_get_or_add(g, name);
        float *v = malloc((size_t)nout * kin * sizeof *v);
        assert_non_null(v);
        tu_fill_uniform(r, v, (size_t)nout * kin, -0.5f / (float)(l + 1), 0.5f / (float)(l + 1));
        sqz_shape ws = {2, {nout, kin}};
        assert_int_equal(sqzc_tensor_set_f32(g, w, &ws, v), 0);
        free(v);
        snprintf(name, sizeof name, "y%d", l);
        int y = sqzc_tensor_get_or_add(g, name);
        int32_t in[2] = {cur, w}, out[1] = {y};
        snprintf(name, sizeof name, "fc%d", l);
        int n = sqzc_add_node(g, SQZ_OP_GEMM, name, 2, in, 1, out);
        assert_true(n >= 0);
        assert_int_equal(sqzc_node_set_int(g, n, "transB", 1), 0);
        cur = y;
        kin = nout;
    }
    g->outputs = malloc(sizeof(int32_t));
    assert_non_null(g->outputs);
    g->outputs[0] = cur;
    g->n_outputs = 1;
    char err[256];
    assert_int_equal(sqzc_infer_shapes(g, err, sizeof err), 0);
    return g;
}

static void test_prune_graph(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 9);
    sqzc_graph *g = make_fc(100, 10, 2, &r);
    char err[256];
    sqzc_layer_value ov[1] = {{"fc1", 0.25f}};
    sqzc_prune_options po = {0.8f, 1, ov, 1};
    assert_int_equal(sqzc_prune_magnitude(g, &po, err, sizeof err), 0);
    int w0 = sqzc_find_tensor(g, "w0"), w1 = sqzc_find_tensor(g, "w1");
    int z0 = 0, z1 = 0;
    for (int i = 0; i < 6400; i++) z0 += g->tensors[w0].f32[i] == 0.0f;
    for (int i = 0; i < 640; i++) z1 += g->tensors[w1].f32[i] == 0.0f;
    assert_int_equal(z0, 5120); /* global pool = fc0 only (fc1 overridden) */
    assert_int_equal(z1, 160);
    assert_non_null(g->tensors[w0].enc);
    assert_true(g->tensors[w0].enc->sparse);
    assert_true(g->tensors[w0].enc->gap_bits >= 3 && g->tensors[w0].enc->gap_bits <= 8);
    sqzc_layer_value bad[1] = {{"nope", 0.5f}};
    sqzc_prune_options pb = {0.5f, 0, bad, 1};
    assert_int_equal(sqzc_prune_magnitude(g, &pb, err, sizeof err), -1);
    assert_non_null(strstr(err, "nope"));
    sqzc_graph_free(g);
}

static void expect_recipe_error(const char *text, const char *where, const char *key) {
    sqzc_recipe r;
    sqzc_recipe_init(&r);
    char err[512] = "";
    assert_int_equal(sqzc_recipe_parse_text(&r, text, "r.txt", err, sizeof err), -1);
    if (!strstr(err, where) || (key && !strstr(err, key))) fail_msg("error '%s'", err);
    sqzc_recipe_free(&r);
}

static void test_recipe_parse(void **state) {
    (void)state;
    sqzc_recipe r;
    sqzc_recipe_init(&r);
    char err[512];
    const char *ok = "# Deep Compression, LeNet-5\n"
                     "prune.sparsity = 0.9   # most weights\n"
                     "prune.scope = global\n"
                     "prune.layer.conv1 = 0.5\n"
                     "\n"
                     "share.bits = 5\nshare.bits.conv = 8\nshare.bits.fc = 4\n"
                     "share.layer.fc3 = 6\nshare.fp16 = 1\nhuffman = 0\ntarget.drop = 0.25\n";
    assert_int_equal(sqzc_recipe_parse_text(&r, ok, "r.txt", err, sizeof err), 0);
    assert_true(r.prune && r.share);
    assert_true(r.sparsity == 0.9f && r.prune_global == 1);
    assert_int_equal(r.n_prune_layers, 1);
    assert_string_equal(r.prune_layers[0].name, "conv1");
    assert_true(r.prune_layers[0].value == 0.5f);
    assert_int_equal(r.bits, 5);
    assert_int_equal(r.bits_conv, 8);
    assert_int_equal(r.bits_fc, 4);
    assert_int_equal(r.n_share_layers, 1);
    assert_true(r.fp16 == 1 && r.huffman == 0);
    assert_true(r.target_drop == 0.25f && r.has_target_drop);
    char *text = sqzc_recipe_to_text(&r);
    assert_non_null(text);
    sqzc_recipe r2;
    sqzc_recipe_init(&r2);
    assert_int_equal(sqzc_recipe_parse_text(&r2, text, "roundtrip", err, sizeof err), 0);
    assert_int_equal(r2.bits_conv, 8);
    assert_true(r2.sparsity == 0.9f);
    free(text);
    sqzc_recipe_free(&r2);
    sqzc_recipe_free(&r);

    expect_recipe_error("share.bits = 5\nshare.bitz = 4\n", "r.txt:2", "share.bitz");
    expect_recipe_error("share.bits = 0\n", "r.txt:1", "share.bits");
    expect_recipe_error("share.bits = 9\n", "r.txt:1", "share.bits");
    expect_recipe_error("share.bits = 4.5\n", "r.txt:1", "share.bits");
    expect_recipe_error("share.bits.conv = 1\n", "r.txt:1", "share.bits.conv");
    expect_recipe_error("# c\nprune.sparsity = 1\n", "r.txt:2", "prune.sparsity");
    expect_recipe_error("prune.sparsity = -0.1\n", "r.txt:1", "prune.sparsity");
    expect_recipe_error("prune.sparsity = 0.5x\n", "r.txt:1", "prune.sparsity");
    expect_recipe_error("prune.scope = both\n", "r.txt:1", "prune.scope");
    expect_recipe_error("prune.layer.fc1 = 2\n", "r.txt:1", "prune.layer.fc1");
    expect_recipe_error("\n\nshare.bits 5\n", "r.txt:3", "malformed");
    expect_recipe_error("share.bits =\n", "r.txt:1", "share.bits");
    expect_recipe_error("= 5\n", "r.txt:1", "malformed");
    expect_recipe_error("huffman = maybe\n", "r.txt:1", "huffman");
    expect_recipe_error("target.drop = 101\n", "r.txt:1", "target.drop");

    /* flags use the same checks, named by the flag */
    sqzc_recipe_init(&r);
    assert_int_equal(sqzc_recipe_set(&r, "share.bits", "9", "--bits", err, sizeof err), -1);
    assert_non_null(strstr(err, "--bits"));
    sqzc_recipe_free(&r);

    /* a missing file */
    sqzc_recipe_init(&r);
    assert_int_equal(sqzc_recipe_parse_file(&r, "/nonexistent/r.txt", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/r.txt"));
    sqzc_recipe_free(&r);
}

static void test_recipe_check_and_apply(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 21);
    sqzc_graph *g = make_fc(64, 10, 2, &r);
    char err[512];
    sqzc_recipe rc;
    sqzc_recipe_init(&rc);
    assert_int_equal(sqzc_recipe_parse_text(&rc, "share.layer.fc9 = 4\n", "r", err, sizeof err), 0);
    assert_int_equal(sqzc_recipe_check(&rc, g, err, sizeof err), -1);
    assert_non_null(strstr(err, "fc9"));
    sqzc_recipe_free(&rc);

    sqzc_recipe_init(&rc);
    assert_int_equal(sqzc_recipe_parse_text(&rc,
                                            "prune.sparsity = 0.7\nshare.bits = 4\n"
                                            "share.layer.fc1 = 6\nhuffman = 1\n",
                                            "r", err, sizeof err),
                     0);
    /* reference output of the fp32 graph for later comparison */
    float x[64];
    tu_fill_uniform(&r, x, 64, -1.0f, 1.0f);
    assert_int_equal(sqzc_recipe_apply(g, &rc, err, sizeof err), 0);
    sqzc_layer_stats *ls = NULL;
    int nl = sqzc_layer_stats_collect(g, &ls);
    assert_int_equal(nl, 2);
    assert_int_equal(ls[0].params, 64 * 64);
    assert_true(ls[0].zeros == (int64_t)floor(0.7 * 64 * 64 + 0.5));
    assert_true(ls[0].bits >= 1 && ls[0].bits <= 4);
    assert_true(ls[1].bits >= 1 && ls[1].bits <= 6);
    assert_true(ls[0].shared < ls[0].pruned && ls[0].pruned < ls[0].fp32);
    assert_true(ls[0].huffman <= ls[0].shared);
    free(ls);
    /* computed by hand from the shared IR weights */
    float h[64], y[10];
    int w0 = sqzc_find_tensor(g, "w0"), w1 = sqzc_find_tensor(g, "w1");
    for (int o = 0; o < 64; o++) {
        double s = 0;
        for (int k = 0; k < 64; k++) s += (double)g->tensors[w0].f32[o * 64 + k] * x[k];
        h[o] = (float)s;
    }
    for (int o = 0; o < 10; o++) {
        double s = 0;
        for (int k = 0; k < 64; k++) s += (double)g->tensors[w1].f32[o * 64 + k] * h[k];
        y[o] = (float)s;
    }
    /* the written file decodes to the same weights */
    uint8_t *buf = NULL;
    size_t size = 0;
    assert_int_equal(sqzc_serialize(g, &buf, &size, err, sizeof err), 0);
    sqz_model *m = NULL;
    sqz_status st;
    memset(&st, 0, sizeof st);
    assert_int_equal(sqz_model_load_buffer(buf, size, &m, &st), SQZ_OK);
    sqz_session *s = NULL;
    assert_int_equal(sqz_session_create(m, NULL, &s, &st), SQZ_OK);
    assert_int_equal(sqz_session_set_input(s, 0, x, 64, &st), SQZ_OK);
    assert_int_equal(sqz_session_run(s, &st), SQZ_OK);
    const float *out = NULL;
    sqz_shape osh;
    assert_int_equal(sqz_session_output(s, 0, &out, &osh, &st), SQZ_OK);
    assert_true(tu_max_abs_diff(out, y, 10) < 1e-4);
    sqz_session_free(s);
    sqz_model_free(m);
    free(buf);
    sqzc_recipe_free(&rc);
    sqzc_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kmeans_two_clusters), cmocka_unit_test(test_kmeans_linear_init),
        cmocka_unit_test(test_kmeans_weighted),     cmocka_unit_test(test_share_array),
        cmocka_unit_test(test_round_f16),           cmocka_unit_test(test_prune_array),
        cmocka_unit_test(test_sparse_entries),      cmocka_unit_test(test_prune_graph),
        cmocka_unit_test(test_recipe_parse),        cmocka_unit_test(test_recipe_check_and_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
