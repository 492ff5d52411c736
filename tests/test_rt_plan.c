/* test_rt_plan.c - MPool planner: no two live buffers overlap, known optima,
 * lower bound and naive totals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sqz/plan.h"
#include "testutil.h"

static void assert_no_overlap(const sqz_plan_item *it, int n, const size_t *off, size_t arena) {
    for (int i = 0; i < n; i++) {
        if (!it[i].size) continue;
        assert_true(off[i] % 64 == 0);
        assert_true(off[i] + it[i].size <= arena);
        for (int j = i + 1; j < n; j++) {
            if (!it[j].size) continue;
            int live_together = it[i].first <= it[j].last && it[j].first <= it[i].last;
            int disjoint = off[i] + it[i].size <= off[j] || off[j] + it[j].size <= off[i];
            if (live_together) assert_true(disjoint);
        }
    }
}

/* A chain a -> b -> c -> d: each buffer lives two steps; the optimum reuses
 * memory so that only two buffers are ever allocated side by side. */
static void test_chain_reuses(void **state) {
    (void)state;
    sqz_plan_item it[4] = {{1024, 0, 1}, {1024, 1, 2}, {1024, 2, 3}, {1024, 3, 4}};
    size_t off[4];
    size_t arena = sqz_plan_greedy(it, 4, 64, off);
    assert_no_overlap(it, 4, off, arena);
    assert_int_equal(arena, 2048);
    int peak;
    assert_int_equal(sqz_plan_lower_bound(it, 4, 64, &peak), 2048);
    assert_int_equal(sqz_plan_naive(it, 4, 64), 4096);
}

/* Best fit: a small buffer goes into the smallest hole that fits. */
static void test_best_fit_gap(void **state) {
    (void)state;
    /* big A [0,1], small B [0,3], medium C [2,3] lands in A's old place */
    sqz_plan_item it[3] = {{4096, 0, 1}, {128, 0, 3}, {2048, 2, 3}};
    size_t off[3];
    size_t arena = sqz_plan_greedy(it, 3, 64, off);
    assert_no_overlap(it, 3, off, arena);
    assert_int_equal(arena, 4096 + 128);
    assert_int_equal(off[2], off[0]);
}

/* Greedy by size alone places the 384 and 320 buffers first and leaves a
 * 128-byte hole where the 192 one cannot go (arena 896); the other orders
 * (e.g. by breadth: step 4 holds 768 live bytes) reach the lower bound. */
static void test_beats_size_order(void **state) {
    (void)state;
    sqz_plan_item it[4] = {{256, 4, 4}, {192, 3, 5}, {384, 2, 2}, {320, 2, 4}};
    size_t off[4];
    size_t arena = sqz_plan_greedy(it, 4, 64, off);
    assert_no_overlap(it, 4, off, arena);
    assert_int_equal(sqz_plan_lower_bound(it, 4, 64, NULL), 768);
    assert_int_equal(arena, 768);
}

/* Sizes are aligned: three live 1-byte buffers take three 64-byte slots. */
static void test_alignment(void **state) {
    (void)state;
    sqz_plan_item it[3] = {{1, 0, 2}, {1, 1, 2}, {100, 2, 2}};
    size_t off[3];
    size_t arena = sqz_plan_greedy(it, 3, 64, off);
    assert_no_overlap(it, 3, off, arena);
    assert_int_equal(arena, 64 + 64 + 128);
    assert_int_equal(sqz_plan_lower_bound(it, 3, 64, NULL), 256);
}

/* Random lifetimes: always valid, never below the lower bound, never above naive. */
static void test_random_valid(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 42);
    for (int rep = 0; rep < 200; rep++) {
        int n = 1 + (int)(tu_rng_u32(&r) % 40);
        sqz_plan_item it[40];
        size_t off[40];
        for (int i = 0; i < n; i++) {
            it[i].size = tu_rng_u32(&r) % 5000;
            it[i].first = (int)(tu_rng_u32(&r) % 30);
            it[i].last = it[i].first + (int)(tu_rng_u32(&r) % 8);
        }
        size_t arena = sqz_plan_greedy(it, n, 64, off);
        assert_no_overlap(it, n, off, arena);
        assert_true(arena >= sqz_plan_lower_bound(it, n, 64, NULL));
        assert_true(arena <= sqz_plan_naive(it, n, 64));
    }
}

/* Graph-like instances (chains with skip connections and scratch items, up
 * to 600 buffers): valid, and deterministic (same offsets twice). */
static void test_random_large(void **state) {
    (void)state;
    tu_rng r;
    tu_rng_seed(&r, 7);
    enum { N = 600 };
    sqz_plan_item *it = calloc(N, sizeof *it);
    size_t *off = calloc(N, sizeof *off), *off2 = calloc(N, sizeof *off2);
    assert_non_null(it);
    assert_non_null(off);
    assert_non_null(off2);
    for (int rep = 0; rep < 4; rep++) {
        int n = 100 + (int)(tu_rng_u32(&r) % (N - 100));
        for (int i = 0; i < n; i++) {
            it[i].size = (tu_rng_u32(&r) % 4 == 0) ? 0 : 64 + tu_rng_u32(&r) % 200000;
            it[i].first = i / 2;
            it[i].last = it[i].first + (tu_rng_u32(&r) % 5 == 0 ? (int)(tu_rng_u32(&r) % 12) : 1);
        }
        size_t arena = sqz_plan_greedy(it, n, 64, off);
        assert_no_overlap(it, n, off, arena);
        size_t lb = sqz_plan_lower_bound(it, n, 64, NULL);
        assert_true(arena >= lb);
        assert_true(arena <= sqz_plan_naive(it, n, 64));
        assert_int_equal(sqz_plan_greedy(it, n, 64, off2), arena);
        for (int i = 0; i < n; i++) assert_int_equal(off[i], off2[i]);
    }
    free(it);
    free(off);
    free(off2);
}

/* Separate slots: no two buffers share a byte even when their lifetimes do
 * not overlap (the chain that sqz_plan_greedy folds into two slots), offsets
 * aligned, arena = the naive total. */
static void test_separate_slots(void **state) {
    (void)state;
    sqz_plan_item it[5] = {{1024, 0, 1}, {0, 1, 1}, {1000, 1, 2}, {70, 2, 3}, {1024, 3, 4}};
    size_t off[5];
    size_t arena = sqz_plan_separate(it, 5, 64, off);
    assert_int_equal(arena, sqz_plan_naive(it, 5, 64));
    assert_int_equal(arena, 1024 + 1024 + 128 + 1024);
    for (int i = 0; i < 5; i++) {
        if (!it[i].size) continue;
        assert_true(off[i] % 64 == 0 && off[i] + it[i].size <= arena);
        for (int j = i + 1; j < 5; j++)
            if (it[j].size) assert_true(off[i] + it[i].size <= off[j]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_reuses),     cmocka_unit_test(test_best_fit_gap),
        cmocka_unit_test(test_beats_size_order), cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_random_valid),     cmocka_unit_test(test_random_large),
        cmocka_unit_test(test_separate_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
