/* dispatch.c - candidate kernels per op for this CPU, best first.
 *
 * To register an optimized kernel family, add a line to the table below: the
 * op, a function telling whether this CPU can run it, and the impl. Order is
 * priority: specialised kernels (e.g. depthwise) before general ones. */
#include <stdlib.h>
#include <string.h>

#include "sqz/ops.h"

typedef struct fast_entry {
    int op;
    int (*cpu_ok)(void); /* NULL = always */
    const sqz_op_impl *impl;
} fast_entry;

static const fast_entry fast_table[] = {
    {SQZ_OP_INVALID, NULL, NULL}, /* sentinel keeps the array non-empty */
};

static int force_ref = -1; /* -1: read SQZ_FORCE_REF on first use */

void sqz_set_force_reference(int on) {
    force_ref = on ? 1 : 0;
}

int sqz_fast_ops(int op, const sqz_op_impl **out, int max) {
    if (force_ref < 0) {
        const char *e = getenv("SQZ_FORCE_REF");
        force_ref = e && e[0] != 0 && strcmp(e, "0") != 0;
    }
    if (force_ref) return 0;
    int n = 0;
    for (size_t i = 0; i < sizeof fast_table / sizeof fast_table[0] && n < max; i++) {
        const fast_entry *f = &fast_table[i];
        if (f->op != op || !f->impl) continue;
        if (f->cpu_ok && !f->cpu_ok()) continue;
        out[n++] = f->impl;
    }
    return n;
}
