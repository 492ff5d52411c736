/* plan.c - MPool arena planner (greedy by size, best fit). See sqz/plan.h. */
#include "sqz/plan.h"

#include <stdint.h>
#include <stdlib.h>

static size_t align_up(size_t v, size_t a) {
    return (v + a - 1) & ~(a - 1);
}

typedef struct order_item {
    size_t key, size;
    int idx;
} order_item;

static int by_key_desc(const void *a, const void *b) {
    const order_item *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? 1 : -1;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->idx - y->idx; /* stable: earlier items first */
}

static int by_offset(const void *a, const void *b) {
    const size_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* One greedy pass in the order given by `order` (0: size; 1: size x lifetime;
 * 2: lifetime then size). */
static size_t plan_pass(const sqz_plan_item *items, int n, size_t align, size_t *offsets,
                        int order) {
    order_item *ord = malloc((size_t)(n > 0 ? n : 1) * sizeof *ord);
    int *placed = malloc((size_t)(n > 0 ? n : 1) * sizeof *placed);
    size_t *busy = malloc((size_t)(n > 0 ? n : 1) * 2 * sizeof *busy); /* (offset, end) pairs */
    if (!ord || !placed || !busy) {
        free(ord);
        free(placed);
        free(busy);
        return (size_t)-1;
    }
    for (int i = 0; i < n; i++) {
        size_t size = align_up(items[i].size, align),
               len = (size_t)(items[i].last - items[i].first + 1);
        ord[i].size = size;
        ord[i].key = order == 0 ? size : order == 1 ? size * len : len;
        ord[i].idx = i;
        offsets[i] = 0;
    }
    qsort(ord, (size_t)n, sizeof *ord, by_key_desc);
    int n_placed = 0;
    size_t arena = 0;
    for (int k = 0; k < n; k++) {
        int i = ord[k].idx;
        size_t size = ord[k].size;
        if (size == 0) continue;
        /* buffers already placed whose lifetimes overlap item i */
        int nb = 0;
        for (int j = 0; j < n_placed; j++) {
            const sqz_plan_item *o = &items[placed[j]];
            if (o->first <= items[i].last && items[i].first <= o->last) {
                busy[2 * nb] = offsets[placed[j]];
                busy[2 * nb + 1] = offsets[placed[j]] + align_up(o->size, align);
                nb++;
            }
        }
        qsort(busy, (size_t)nb, 2 * sizeof *busy, by_offset);
        /* smallest gap that fits; else after the highest end */
        size_t best = SIZE_MAX, best_gap = SIZE_MAX, cursor = 0;
        for (int j = 0; j < nb; j++) {
            if (busy[2 * j] > cursor) {
                size_t gap = busy[2 * j] - cursor;
                if (gap >= size && gap < best_gap) {
                    best_gap = gap;
                    best = cursor;
                }
            }
            if (busy[2 * j + 1] > cursor) cursor = busy[2 * j + 1];
        }
        if (best == SIZE_MAX) best = cursor;
        offsets[i] = best;
        if (best + size > arena) arena = best + size;
        placed[n_placed++] = i;
    }
    free(ord);
    free(placed);
    free(busy);
    return arena;
}

size_t sqz_plan_greedy(const sqz_plan_item *items, int n, size_t align, size_t *offsets) {
    /* Greedy-by-size is not optimal on every graph; a few orders cost little at
     * session creation and the smallest arena wins. */
    size_t *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof *tmp);
    if (!tmp) return (size_t)-1;
    size_t best = (size_t)-1;
    for (int order = 0; order < 3; order++) {
        size_t a = plan_pass(items, n, align, tmp, order);
        if (a == (size_t)-1) continue;
        if (best == (size_t)-1 || a < best) {
            best = a;
            for (int i = 0; i < n; i++) offsets[i] = tmp[i];
        }
    }
    free(tmp);
    return best;
}

size_t sqz_plan_lower_bound(const sqz_plan_item *items, int n, size_t align, int *peak_step) {
    int steps = 0;
    for (int i = 0; i < n; i++)
        if (items[i].size && items[i].last + 1 > steps) steps = items[i].last + 1;
    size_t best = 0;
    int best_step = 0;
    for (int s = 0; s < steps; s++) {
        size_t live = 0;
        for (int i = 0; i < n; i++)
            if (items[i].size && items[i].first <= s && s <= items[i].last)
                live += align_up(items[i].size, align);
        if (live > best) {
            best = live;
            best_step = s;
        }
    }
    if (peak_step) *peak_step = best_step;
    return best;
}

size_t sqz_plan_naive(const sqz_plan_item *items, int n, size_t align) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += align_up(items[i].size, align);
    return total;
}
