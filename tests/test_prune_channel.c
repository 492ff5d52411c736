/* test_prune_channel.c - channel pruning is exact by construction: for a
 * residual net, a MobileNetV2-style net (depthwise + inverted residuals) and
 * a net with Concat / squeeze-excite / Flatten->Gemm, the pruned model's
 * output equals the original's with the removed filters zeroed (1e-5), for
 * every criterion and scope. Also: blocked layers are reported by name with
 * the reason, targets are met, bad layer names are refused.
 *
 * Models: tools/models/{resnet,mobilenet}.onnx when present, and small torch
 * exports generated into the build dir by tests/fixtures/make_prune_fixtures.py
 * (Debian's /usr/bin/python3 + torch). */
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
#include "sqzc/writer.h"
#include "testutil.h"
#include "test_graph.h"

static char g_fix[1024];
static int g_have_fix;

static int setup(void **state) {
    (void)state;
    g_have_fix = tg_prune_fixtures(g_fix, sizeof g_fix);
    return 0;
}

static size_t input_numel(const sqzc_graph *g) {
    return (size_t)sqz_shape_numel(&g->tensors[g->inputs[0]].shape);
}

typedef struct case_result {
    int groups, removed, blocked;
    int64_t params0, params1, macs0, macs1;
} case_result;

/* Prune path with (criterion, scope, ratio); check pruned == zeroed original
 * (1e-5) on random inputs and that pruning removed something. */
static case_result check_exact(const char *path, int criterion, int global, float ratio,
                               int64_t target_macs) {
    case_result r;
    memset(&r, 0, sizeof r);
    sqzc_bn_gammas *bn1 = NULL, *bn2 = NULL;
    sqzc_graph *gp = tg_load(path, &bn1), *gz = tg_load(path, &bn2), *g0 = tg_load(path, NULL);
    char err[512];
    sqzc_channel_analysis *ap = NULL, *az = NULL;
    if (sqzc_channel_analyze(gp, criterion, bn1, &ap, err, sizeof err) != 0) {
        print_error("%s: %s\n", path, err);
        fail();
    }
    assert_int_equal(sqzc_channel_analyze(gz, criterion, bn2, &az, err, sizeof err), 0);
    int ng = sqzc_channel_n_groups(ap);
    assert_int_equal(ng, sqzc_channel_n_groups(az));
    assert_true(ng > 0);
    uint8_t *rm = calloc((size_t)ng, 1), *rm2 = calloc((size_t)ng, 1);
    assert_non_null(rm);
    assert_non_null(rm2);
    sqzc_channel_options o;
    memset(&o, 0, sizeof o);
    o.ratio = ratio;
    o.global = global;
    o.target_macs = target_macs;
    if (sqzc_channel_select(ap, &o, rm, NULL, err, sizeof err) != 0) {
        print_error("%s: select: %s\n", path, err);
        fail();
    }
    assert_int_equal(sqzc_channel_select(az, &o, rm2, NULL, err, sizeof err), 0);
    assert_memory_equal(rm, rm2, (size_t)ng);
    for (int i = 0; i < ng; i++) r.removed += rm[i];
    r.groups = ng;
    r.blocked = sqzc_channel_n_blocked(ap);
    /* every family keeps a channel */
    for (int f = 0; f < sqzc_channel_n_families(ap); f++) {
        int kept = 0;
        const int *ord = sqzc_channel_family_order(ap, f);
        for (int j = 0; j < sqzc_channel_family_groups(ap, f); j++) kept += !rm[ord[j]];
        assert_true(kept >= 1);
    }
    sqzc_channel_cost(ap, NULL, &r.params0, &r.macs0);
    sqzc_channel_cost(ap, rm, &r.params1, &r.macs1);
    assert_int_equal(sqzc_channel_zero(gz, az, rm, err, sizeof err), 0);
    if (sqzc_channel_apply(gp, ap, rm, err, sizeof err) != 0) {
        print_error("%s: apply: %s\n", path, err);
        fail();
    }
    /* the analysis of the pruned graph prices it as predicted */
    sqzc_channel_analysis *aa = NULL;
    assert_int_equal(sqzc_channel_analyze(gp, SQZC_CRIT_L1, NULL, &aa, err, sizeof err), 0);
    int64_t pa, ma;
    sqzc_channel_cost(aa, NULL, &pa, &ma);
    assert_int_equal(ma, r.macs1);
    assert_int_equal(pa, r.params1);
    sqzc_channel_analysis_free(aa);

    tu_rng rng;
    tu_rng_seed(&rng, 11);
    size_t nx = input_numel(gp);
    float *x = malloc(nx * sizeof *x);
    assert_non_null(x);
    double worst = 0, moved = 0;
    for (int trial = 0; trial < 3; trial++) {
        tu_fill_uniform(&rng, x, nx, -2.0f, 2.0f);
        size_t n1, n2, n0;
        float *yp = tg_run(gp, x, nx, &n1), *yz = tg_run(gz, x, nx, &n2),
              *y0 = tg_run(g0, x, nx, &n0);
        assert_int_equal(n1, n2);
        assert_int_equal(n1, n0);
        double d = tu_max_abs_diff(yp, yz, n1), m = tu_max_abs_diff(yp, y0, n1);
        if (d > worst) worst = d;
        if (m > moved) moved = m;
        free(yp);
        free(yz);
        free(y0);
    }
    if (worst > 1e-5)
        print_error("%s: crit %d global %d ratio %.2f: pruned vs zeroed max diff %g\n", path,
                    criterion, global, (double)ratio, worst);
    assert_true(worst <= 1e-5);
    if (r.removed > 0) assert_true(moved > 1e-4); /* pruning really changed the function */
    free(x);
    free(rm);
    free(rm2);
    sqzc_channel_analysis_free(ap);
    sqzc_channel_analysis_free(az);
    sqzc_bn_gammas_free(bn1);
    sqzc_bn_gammas_free(bn2);
    sqzc_graph_free(gp);
    sqzc_graph_free(gz);
    sqzc_graph_free(g0);
    return r;
}

static void fixture_path(char *p, size_t n, const char *name) {
    snprintf(p, n, "%s/%s.onnx", g_fix, name);
}

static void check_all_modes(const char *path, int with_bn) {
    static const float ratios[] = {0.3f, 0.6f};
    for (int crit = 0; crit < (with_bn ? 3 : 2); crit++)
        for (int glob = 0; glob < 2; glob++)
            for (int k = 0; k < 2; k++) {
                case_result r = check_exact(path, crit, glob, ratios[k], 0);
                assert_true(r.removed > 0);
                assert_true(r.params1 < r.params0);
                assert_true(r.macs1 < r.macs0);
            }
}

static void test_fixture_resnet(void **state) {
    (void)state;
    if (!g_have_fix) skip(); /* needs /usr/bin/python3 with torch to build the fixtures */
    char p[1200];
    fixture_path(p, sizeof p, "prune_resnet");
    check_all_modes(p, 1);
}

static void test_fixture_mbv2(void **state) {
    (void)state;
    if (!g_have_fix) skip();
    char p[1200];
    fixture_path(p, sizeof p, "prune_mbv2");
    check_all_modes(p, 1);
}

static void test_fixture_concat(void **state) {
    (void)state;
    if (!g_have_fix) skip();
    char p[1200];
    fixture_path(p, sizeof p, "prune_concat");
    check_all_modes(p, 1);
    /* the Sigmoid gate and the logits layer are reported, by name, with a reason */
    sqzc_graph *g = tg_load(p, NULL);
    sqzc_channel_analysis *a = NULL;
    char err[512];
    assert_int_equal(sqzc_channel_analyze(g, SQZC_CRIT_L1, NULL, &a, err, sizeof err), 0);
    int saw_gate = 0, saw_fc = 0;
    for (int i = 0; i < sqzc_channel_n_blocked(a); i++) {
        const char *layer, *why;
        sqzc_channel_blocked(a, i, &layer, &why);
        if (strstr(layer, "gate") && strstr(why, "Sigmoid")) saw_gate = 1;
        if (strstr(layer, "fc") && strstr(why, "graph output 'logits'")) saw_fc = 1;
    }
    assert_true(saw_gate);
    assert_true(saw_fc);
    /* the BN criterion needs gammas */
    sqzc_channel_analysis *a3 = NULL;
    assert_int_equal(sqzc_channel_analyze(g, SQZC_CRIT_BN, NULL, &a3, err, sizeof err), -1);
    assert_null(a3);
    assert_non_null(strstr(err, "criterion bn"));
    /* unknown layer name */
    sqzc_channel_analysis *a2 = NULL;
    assert_int_equal(sqzc_channel_analyze(g, SQZC_CRIT_L2, NULL, &a2, err, sizeof err), 0);
    sqzc_layer_value lv = {"no_such_layer", 0.5f};
    sqzc_channel_options o;
    memset(&o, 0, sizeof o);
    o.layers = &lv;
    o.n_layers = 1;
    uint8_t *rm = calloc((size_t)sqzc_channel_n_groups(a2) + 1, 1);
    assert_int_equal(sqzc_channel_select(a2, &o, rm, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "no_such_layer"));
    free(rm);
    sqzc_channel_analysis_free(a);
    sqzc_channel_analysis_free(a2);
    sqzc_graph_free(g);
}

/* A MAC target is met, and a smaller one needs more removal. */
static void test_target_macs(void **state) {
    (void)state;
    if (!g_have_fix) skip();
    char p[1200];
    fixture_path(p, sizeof p, "prune_mbv2");
    case_result full = check_exact(p, SQZC_CRIT_L1, 1, 0.0f, 0);
    assert_int_equal(full.removed, 0);
    int64_t target = full.macs0 * 6 / 10;
    case_result r = check_exact(p, SQZC_CRIT_L1, 1, 0.0f, target);
    assert_true(r.macs1 <= target);
    assert_true(r.removed > 0);
    case_result r2 = check_exact(p, SQZC_CRIT_L2, 0, 0.0f, full.macs0 * 8 / 10);
    assert_true(r2.macs1 <= full.macs0 * 8 / 10);
}

static void check_reference(const char *name) {
    char p[1200];
    snprintf(p, sizeof p, "%s/tools/models/%s.onnx", tu_source_dir(), name);
    if (access(p, R_OK) != 0) {
        print_message("skip: %s not present\n", p);
        skip();
    }
    for (int glob = 0; glob < 2; glob++) {
        case_result r = check_exact(p, SQZC_CRIT_L1, glob, 0.3f, 0);
        assert_true(r.removed > 0);
        assert_true(r.macs1 < r.macs0);
        r = check_exact(p, SQZC_CRIT_L2, glob, 0.5f, 0);
        assert_true(r.removed > 0);
    }
}

static void test_reference_resnet(void **state) {
    (void)state;
    check_reference("resnet");
}
static void test_reference_mobilenet(void **state) {
    (void)state;
    check_reference("mobilenet");
}
static void test_reference_lenet(void **state) {
    (void)state;
    check_reference("lenet300");
    check_reference("lenet5");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_resnet),   cmocka_unit_test(test_fixture_mbv2),
        cmocka_unit_test(test_fixture_concat),   cmocka_unit_test(test_target_macs),
        cmocka_unit_test(test_reference_resnet), cmocka_unit_test(test_reference_mobilenet),
        cmocka_unit_test(test_reference_lenet),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
