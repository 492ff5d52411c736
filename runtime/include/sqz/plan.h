/* sqz/plan.h - MPool: offsets of tensors with known lifetimes in one arena.
 *
 * Offsets come from greedy placement (Pisarchyk & Lee 2020, "Efficient Memory
 * Management for Deep Neural Net Inference"): buffers are visited in some
 * order and each is placed in the smallest gap, among the buffers already
 * placed whose lifetimes overlap its own, that fits it (best fit), else on top.
 * No single order is best on every graph, so sqz_plan_greedy tries several
 * and keeps the smallest arena:
 *   - greedy by size (largest first; TFLite's arena planner),
 *   - size x lifetime, lifetime then size,
 *   - greedy by breadth (the paper's 4.3: steps by total live bytes, largest
 *     first; at each, its unplaced buffers largest first),
 *   - a fixed number of seeded random perturbations of the size order,
 * stopping early once an order reaches the lower bound. Deterministic: the
 * same items always give the same offsets. Cost: O(orders x n^2 log n) at
 * session creation, never at run time. */
#ifndef SQZ_PLAN_H
#define SQZ_PLAN_H

#include <stddef.h>

typedef struct sqz_plan_item {
    size_t size; /* bytes; 0 = no buffer */
    int first;   /* first step (node index) the buffer is live */
    int last;    /* last step it is read (inclusive) */
} sqz_plan_item;

/* Assign offsets (multiples of align, a power of two); returns the arena
 * size, or (size_t)-1 on out-of-memory. */
size_t sqz_plan_greedy(const sqz_plan_item *items, int n, size_t align, size_t *offsets);
/* Largest total of (aligned) sizes live at one step: no plan can do better. */
size_t sqz_plan_lower_bound(const sqz_plan_item *items, int n, size_t align, int *peak_step);
/* Sum of all aligned sizes: every buffer its own allocation. */
size_t sqz_plan_naive(const sqz_plan_item *items, int n, size_t align);
/* Every buffer its own slot (offsets in item order, no reuse); returns the
 * arena size (= sqz_plan_naive). For small models on several threads: a
 * reused slot's cache lines are often held by the other core, which wrote
 * the previous occupant, and each store must first fetch them from it. */
size_t sqz_plan_separate(const sqz_plan_item *items, int n, size_t align, size_t *offsets);

#endif
