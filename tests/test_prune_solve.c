/* test_prune_solve.c - per-layer ratios from a sensitivity table: a known
 * answer by hand, and random tables against exhaustive search over every
 * combination (both modes: most gain within a drop, least drop for a gain). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sqzc/prune_solve.h"

/* Two layers, ladder 0.5 / 0.9. Layer 0 is big and robust, layer 1 small and
 * fragile: within 1.0 point the best is layer 0 at 0.9 (drop 0.8, gain 90)
 * and layer 1 unpruned (its 0.5 costs 0.5 more: 1.3 > 1.0). */
static void test_known_answer(void **state) {
    (void)state;
    const double drop[] = {0.2, 0.8, 0.5, 3.0};
    const double gain[] = {50, 90, 5, 9};
    sqzc_sens_table t = {2, 2, drop, gain};
    int c[2];
    double pd, pg;
    assert_int_equal(sqzc_sens_solve(&t, 1.0, 0, c, &pd, &pg), 0);
    assert_int_equal(c[0], 1);
    assert_int_equal(c[1], -1);
    assert_true(fabs(pd - 0.8) < 1e-9 && fabs(pg - 90) < 1e-9);
    /* budget 1.3: both fit (0.8 + 0.5), gain 95 */
    assert_int_equal(sqzc_sens_solve(&t, 1.3, 0, c, &pd, &pg), 0);
    assert_int_equal(c[0], 1);
    assert_int_equal(c[1], 0);
    assert_true(fabs(pg - 95) < 1e-9);
    /* need 55: layer 0 at 0.5 + layer 1 at 0.5 (drop 0.7, gain 55) beats
     * layer 0 at 0.9 alone (drop 0.8) */
    assert_int_equal(sqzc_sens_solve(&t, 0, 55, c, &pd, &pg), 0);
    assert_int_equal(c[0], 0);
    assert_int_equal(c[1], 0);
    assert_true(fabs(pd - 0.7) < 1e-9 && fabs(pg - 55) < 1e-9);
    /* unreachable gain */
    assert_int_equal(sqzc_sens_solve(&t, 0, 100, c, &pd, &pg), 1);
    /* a non-monotone ladder: the 0.9 entry's drop is taken as at least the
     * 0.5 entry's (2.0), so within 1.5 points layer 0 stays unpruned */
    const double drop2[] = {2.0, 1.0};
    const double gain2[] = {50, 90};
    sqzc_sens_table t2 = {1, 2, drop2, gain2};
    assert_int_equal(sqzc_sens_solve(&t2, 1.5, 0, c, &pd, &pg), 0);
    assert_int_equal(c[0], -1);
    assert_true(pg == 0 && pd == 0);
}

#define NL 4
#define NR 4

static uint32_t rng = 12345u;
static double urand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (double)(rng >> 8) / (double)(1u << 24);
}

static void test_matches_exhaustive(void **state) {
    (void)state;
    for (int trial = 0; trial < 200; trial++) {
        double drop[NL * NR], gain[NL * NR], mono[NL * NR];
        for (int l = 0; l < NL; l++) {
            double d = 0, gsum = 0, run = 0;
            for (int r = 0; r < NR; r++) {
                d += urand() * 1.5 - 0.2;                /* may dip: tests the running max */
                drop[l * NR + r] = round(d * 100) / 100; /* on the 0.01 grid */
                gsum += 1 + urand() * 100;
                gain[l * NR + r] = gsum;
                run = fmax(run, drop[l * NR + r]);
                mono[l * NR + r] = run;
            }
        }
        sqzc_sens_table t = {NL, NR, drop, gain};
        double budget = urand() * 3, need = urand() * 250;
        /* exhaustive over (NR + 1)^NL combinations */
        double best_gain = -1, best_gd = 0, best_drop = 1e300;
        int combos = 1;
        for (int l = 0; l < NL; l++) combos *= NR + 1;
        for (int k = 0; k < combos; k++) {
            double d = 0, gg = 0;
            for (int l = 0, v = k; l < NL; l++, v /= NR + 1) {
                int c = v % (NR + 1) - 1;
                if (c >= 0) d += fmax(mono[l * NR + c], 0), gg += gain[l * NR + c];
            }
            if (d <= budget + 1e-9 && (gg > best_gain || (gg == best_gain && d < best_gd)))
                best_gain = gg, best_gd = d;
            if (gg >= need && d < best_drop) best_drop = d;
        }
        int c[NL];
        double pd, pg;
        assert_int_equal(sqzc_sens_solve(&t, budget, 0, c, &pd, &pg), 0);
        assert_true(fabs(pg - best_gain) < 1e-6);
        assert_true(pd <= budget + 1e-9);
        /* the returned choice really has the reported totals */
        double d = 0, gg = 0;
        for (int l = 0; l < NL; l++)
            if (c[l] >= 0) d += fmax(mono[l * NR + c[l]], 0), gg += gain[l * NR + c[l]];
        assert_true(fabs(d - pd) < 1e-6 && fabs(gg - pg) < 1e-6);
        int r = sqzc_sens_solve(&t, 0, need, c, &pd, &pg);
        if (best_drop > 1e299) {
            assert_int_equal(r, 1);
        } else {
            assert_int_equal(r, 0);
            assert_true(pg >= need);
            assert_true(fabs(pd - best_drop) < 1e-6);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_matches_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
