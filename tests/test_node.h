/* test_node.h - one node with its own attribute storage, built attribute by
 * attribute, for the tests that drive a kernel's prepare / run directly
 * (header-only; include after cmocka.h). */
#ifndef SQZ_TEST_NODE_H
#define SQZ_TEST_NODE_H

#include <stdint.h>
#include <string.h>

#include "sqz/ops.h"

#define TN_MAX_ATTRS 16
#define TN_MAX_VALS 16 /* values of one INTS / FLOATS attribute */
#define TN_MAX_IO 8

typedef struct tnode {
    sqz_node node;
    sqz_attr attrs[TN_MAX_ATTRS];
    int64_t ints[TN_MAX_ATTRS][TN_MAX_VALS];
    float floats[TN_MAX_ATTRS][TN_MAX_VALS];
    int32_t ids[TN_MAX_IO]; /* inputs 0 .. n_inputs - 1; outputs 0 .. n_outputs - 1 */
} tnode;

/* a node `name` of op `op` with n_in inputs and one output, no attributes */
static inline void tn_init(tnode *t, int op, const char *name, int n_in) {
    memset(t, 0, sizeof(*t));
    t->node.op = (uint16_t)op;
    t->node.name = name;
    t->node.attrs = t->attrs;
    for (int i = 0; i < TN_MAX_IO; i++) t->ids[i] = i;
    t->node.inputs = t->ids;
    t->node.outputs = t->ids;
    t->node.n_inputs = (uint32_t)n_in;
    t->node.n_outputs = 1;
}

static inline sqz_attr *tn_add(tnode *t, const char *name, int type, uint32_t count) {
    assert_true(t->node.n_attrs < TN_MAX_ATTRS);
    int i = (int)t->node.n_attrs++;
    sqz_attr *a = &t->attrs[i];
    a->name = name;
    a->type = (uint8_t)type;
    a->count = count;
    a->ints = t->ints[i];
    a->floats = t->floats[i];
    return a;
}

static inline void tn_ints(tnode *t, const char *name, int n, const int64_t *v) {
    assert_true(n >= 1 && n <= TN_MAX_VALS);
    sqz_attr *a = tn_add(t, name, n == 1 ? SQZ_ATTR_INT : SQZ_ATTR_INTS, (uint32_t)n);
    memcpy(t->ints[a - t->attrs], v, (size_t)n * sizeof(int64_t));
}

static inline void tn_int(tnode *t, const char *name, int64_t v) {
    tn_ints(t, name, 1, &v);
}

static inline void tn_float(tnode *t, const char *name, float v) {
    sqz_attr *a = tn_add(t, name, SQZ_ATTR_FLOAT, 1);
    t->floats[a - t->attrs][0] = v;
}

static inline void tn_floats(tnode *t, const char *name, int n, const float *v) {
    assert_true(n >= 1 && n <= TN_MAX_VALS);
    sqz_attr *a = tn_add(t, name, SQZ_ATTR_FLOATS, (uint32_t)n);
    memcpy(t->floats[a - t->attrs], v, (size_t)n * sizeof(float));
}

static inline void tn_str(tnode *t, const char *name, const char *s) {
    sqz_attr *a = tn_add(t, name, SQZ_ATTR_STRING, 0);
    a->str = s;
}

#endif
