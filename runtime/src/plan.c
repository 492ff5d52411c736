/* plan.c - MPool arena planner (greedy orders, best fit). See sqz/plan.h. */
#include "sqz/plan.h"

#include <stdint.h>
#include <stdlib.h>

/* Random perturbations tried after the fixed orders (bounded so planning a
 * large graph stays a few milliseconds). */
#define PLAN_RANDOM_ORDERS 24
#define PLAN_RANDOM_MAX_ITEMS 4096

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

typedef struct plan_work {
    const sqz_plan_item *items;
    int n, n_live; /* n_live: items with a buffer */
    size_t align;
    order_item *ord; /* [n] */
    int *seq;        /* [n] visiting order (indices of live items) */
    int *placed;     /* [n] */
    size_t *busy;    /* [2n] (offset, end) pairs */
    size_t *tmp;     /* [n] offsets of the current pass */
    unsigned char *done;
} plan_work;

/* One greedy best-fit pass visiting w->seq[0..n_live); offsets into w->tmp. */
static size_t plan_pass(plan_work *w) {
    const sqz_plan_item *items = w->items;
    int n_placed = 0;
    size_t arena = 0;
    for (int i = 0; i < w->n; i++) w->tmp[i] = 0;
    for (int k = 0; k < w->n_live; k++) {
        int i = w->seq[k];
        size_t size = align_up(items[i].size, w->align);
        /* buffers already placed whose lifetimes overlap item i */
        int nb = 0;
        for (int j = 0; j < n_placed; j++) {
            const sqz_plan_item *o = &items[w->placed[j]];
            if (o->first <= items[i].last && items[i].first <= o->last) {
                w->busy[2 * nb] = w->tmp[w->placed[j]];
                w->busy[2 * nb + 1] = w->tmp[w->placed[j]] + align_up(o->size, w->align);
                nb++;
            }
        }
        qsort(w->busy, (size_t)nb, 2 * sizeof *w->busy, by_offset);
        /* smallest gap that fits; else after the highest end */
        size_t best = SIZE_MAX, best_gap = SIZE_MAX, cursor = 0;
        for (int j = 0; j < nb; j++) {
            if (w->busy[2 * j] > cursor) {
                size_t gap = w->busy[2 * j] - cursor;
                if (gap >= size && gap < best_gap) {
                    best_gap = gap;
                    best = cursor;
                }
            }
            if (w->busy[2 * j + 1] > cursor) cursor = w->busy[2 * j + 1];
        }
        if (best == SIZE_MAX) best = cursor;
        w->tmp[i] = best;
        if (best + size > arena) arena = best + size;
        w->placed[n_placed++] = i;
    }
    return arena;
}

/* Visiting order sorted by key (descending), over the live items. */
static void order_by(plan_work *w, int kind, uint64_t *rng) {
    int m = 0;
    for (int i = 0; i < w->n; i++) {
        const sqz_plan_item *it = &w->items[i];
        if (!it->size) continue;
        size_t size = align_up(it->size, w->align), len = (size_t)(it->last - it->first + 1);
        order_item *o = &w->ord[m++];
        o->size = size;
        o->idx = i;
        if (kind == 0) {
            o->key = size;
        } else if (kind == 1) {
            o->key = size * len;
        } else if (kind == 2) {
            o->key = len;
        } else { /* size scaled by a random factor in [0.5, 1.5) (xorshift64) */
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            double f = 0.5 + (double)(*rng >> 11) / 9007199254740992.0;
            o->key = (size_t)((double)size * f);
        }
    }
    qsort(w->ord, (size_t)m, sizeof *w->ord, by_key_desc);
    for (int k = 0; k < m; k++) w->seq[k] = w->ord[k].idx;
}

/* Greedy by breadth: steps by the total size live there, largest first; at
 * each step its not yet visited buffers, largest first. */
static int order_by_breadth(plan_work *w) {
    int steps = 0;
    for (int i = 0; i < w->n; i++)
        if (w->items[i].size && w->items[i].last + 1 > steps) steps = w->items[i].last + 1;
    if (steps <= 0) return 0;
    order_item *st = malloc((size_t)steps * sizeof *st);
    if (!st) return -1;
    for (int s = 0; s < steps; s++) {
        st[s].key = 0;
        st[s].size = 0;
        st[s].idx = s;
    }
    for (int i = 0; i < w->n; i++) {
        const sqz_plan_item *it = &w->items[i];
        if (!it->size) continue;
        for (int s = it->first < 0 ? 0 : it->first; s <= it->last; s++)
            st[s].key += align_up(it->size, w->align);
    }
    qsort(st, (size_t)steps, sizeof *st, by_key_desc);
    /* the size order, filtered per step */
    order_by(w, 0, NULL);
    for (int i = 0; i < w->n; i++) w->done[i] = 0;
    int *by_size = w->placed; /* borrowed: plan_pass overwrites it later */
    for (int k = 0; k < w->n_live; k++) by_size[k] = w->seq[k];
    int m = 0;
    for (int s = 0; s < steps; s++) {
        int step = st[s].idx;
        for (int k = 0; k < w->n_live; k++) {
            int i = by_size[k];
            if (!w->done[i] && w->items[i].first <= step && step <= w->items[i].last) {
                w->done[i] = 1;
                w->seq[m++] = i;
            }
        }
    }
    for (int k = 0; k < w->n_live; k++) /* items outside every step (first < 0) */
        if (!w->done[by_size[k]]) w->seq[m++] = by_size[k];
    free(st);
    return 0;
}

size_t sqz_plan_greedy(const sqz_plan_item *items, int n, size_t align, size_t *offsets) {
    size_t cnt = (size_t)(n > 0 ? n : 1);
    plan_work w = {items, n, 0, align, NULL, NULL, NULL, NULL, NULL, NULL};
    w.ord = malloc(cnt * sizeof *w.ord);
    w.seq = malloc(cnt * sizeof *w.seq);
    w.placed = malloc(cnt * sizeof *w.placed);
    w.busy = malloc(cnt * 2 * sizeof *w.busy);
    w.tmp = malloc(cnt * sizeof *w.tmp);
    w.done = malloc(cnt);
    size_t best = (size_t)-1;
    if (!w.ord || !w.seq || !w.placed || !w.busy || !w.tmp || !w.done) goto out;
    for (int i = 0; i < n; i++) {
        offsets[i] = 0;
        if (items[i].size) w.n_live++;
    }
    size_t lb = sqz_plan_lower_bound(items, n, align, NULL);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int n_orders = 4 + (n <= PLAN_RANDOM_MAX_ITEMS ? PLAN_RANDOM_ORDERS : 0);
    for (int o = 0; o < n_orders && best != lb; o++) {
        if (o == 3) {
            if (order_by_breadth(&w) != 0) continue;
        } else {
            order_by(&w, o < 3 ? o : 3, &rng);
        }
        size_t a = plan_pass(&w);
        if (best == (size_t)-1 || a < best) {
            best = a;
            for (int i = 0; i < n; i++) offsets[i] = w.tmp[i];
        }
    }
out:
    free(w.ord);
    free(w.seq);
    free(w.placed);
    free(w.busy);
    free(w.tmp);
    free(w.done);
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

size_t sqz_plan_separate(const sqz_plan_item *items, int n, size_t align, size_t *offsets) {
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        offsets[i] = total;
        total += align_up(items[i].size, align);
    }
    return total;
}
