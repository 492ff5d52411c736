/* ir.c - the offline graph IR: tensors, nodes, attributes, ordering. */
#include "sqzc/ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Open-addressing hash of tensor names -> ids (FNV-1a). */
typedef struct name_index {
    int32_t *slots; /* tensor id or -1 */
    size_t cap;     /* power of two */
} name_index;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static char *dup_str(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static int index_rebuild(sqzc_graph *g, size_t cap) {
    name_index *ix = g->name_index;
    int32_t *slots = malloc(cap * sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < cap; i++) slots[i] = -1;
    for (int t = 0; t < g->n_tensors; t++) {
        size_t h = (size_t)fnv1a(g->tensors[t].name) & (cap - 1);
        while (slots[h] >= 0) h = (h + 1) & (cap - 1);
        slots[h] = t;
    }
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    return 0;
}

sqzc_graph *sqzc_graph_new(void) {
    sqzc_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    name_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        free(g);
        return NULL;
    }
    g->name_index = ix;
    if (index_rebuild(g, 64) != 0) {
        free(ix);
        free(g);
        return NULL;
    }
    return g;
}

static void free_attr(sqz_attr *a) {
    free((void *)a->name);
    free((void *)a->ints);
    free((void *)a->floats);
    free((void *)a->str);
}

static void free_node(sqzc_node *n) {
    free(n->name);
    free(n->in);
    free(n->out);
    for (uint32_t i = 0; i < n->n_attr; i++) free_attr(&n->attrs[i]);
    free(n->attrs);
}

static void free_encoding(sqzc_encoding *e) {
    if (!e) return;
    free(e->centroids);
    free(e);
}

int sqzc_tensor_set_encoding(sqzc_graph *g, int t, const sqzc_encoding *enc) {
    sqzc_encoding *e = NULL;
    if (enc) {
        e = malloc(sizeof *e);
        if (!e) return -1;
        *e = *enc;
        e->centroids = NULL;
        if (enc->n_centroids > 0) {
            e->centroids = malloc((size_t)enc->n_centroids * sizeof *e->centroids);
            if (!e->centroids) {
                free(e);
                return -1;
            }
            memcpy(e->centroids, enc->centroids, (size_t)enc->n_centroids * sizeof *e->centroids);
        }
    }
    free_encoding(g->tensors[t].enc);
    g->tensors[t].enc = e;
    return 0;
}

void sqzc_graph_free(sqzc_graph *g) {
    if (!g) return;
    for (int t = 0; t < g->n_tensors; t++) {
        free_encoding(g->tensors[t].enc);
        free(g->tensors[t].name);
        free(g->tensors[t].f32);
        free(g->tensors[t].i64);
        free(g->tensors[t].i8);
        free(g->tensors[t].i32);
        free(g->tensors[t].q.scale);
        free(g->tensors[t].q.zero_point);
    }
    free(g->tensors);
    for (int i = 0; i < g->n_nodes; i++) free_node(&g->nodes[i]);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    for (int i = 0; i < g->n_meta; i++) {
        free(g->meta[i].key);
        free(g->meta[i].value);
    }
    free(g->meta);
    name_index *ix = g->name_index;
    if (ix) free(ix->slots);
    free(ix);
    free(g);
}

int sqzc_find_tensor(const sqzc_graph *g, const char *name) {
    const name_index *ix = g->name_index;
    size_t h = (size_t)fnv1a(name) & (ix->cap - 1);
    while (ix->slots[h] >= 0) {
        if (strcmp(g->tensors[ix->slots[h]].name, name) == 0) return ix->slots[h];
        h = (h + 1) & (ix->cap - 1);
    }
    return -1;
}

static int add_tensor_named(sqzc_graph *g, char *owned_name) {
    if (g->n_tensors == g->cap_tensors) {
        int cap = g->cap_tensors ? g->cap_tensors * 2 : 64;
        sqzc_tensor *t = realloc(g->tensors, (size_t)cap * sizeof *t);
        if (!t) return -1;
        g->tensors = t;
        g->cap_tensors = cap;
    }
    name_index *ix = g->name_index;
    /* keep the load factor under 1/2 */
    if ((size_t)(g->n_tensors + 1) * 2 > ix->cap && index_rebuild(g, ix->cap * 2) != 0) return -1;
    int id = g->n_tensors++;
    sqzc_tensor *t = &g->tensors[id];
    memset(t, 0, sizeof *t);
    t->name = owned_name;
    t->dtype = SQZC_F32;
    size_t h = (size_t)fnv1a(owned_name) & (ix->cap - 1);
    while (ix->slots[h] >= 0) h = (h + 1) & (ix->cap - 1);
    ix->slots[h] = id;
    return id;
}

int sqzc_tensor_get_or_add(sqzc_graph *g, const char *name) {
    int id = sqzc_find_tensor(g, name);
    if (id >= 0) return id;
    char *n = dup_str(name);
    if (!n) return -1;
    id = add_tensor_named(g, n);
    if (id < 0) free(n);
    return id;
}

int sqzc_tensor_add_unique(sqzc_graph *g, const char *base) {
    size_t len = strlen(base) + 24;
    char *n = malloc(len);
    if (!n) return -1;
    snprintf(n, len, "%s", base);
    for (unsigned k = 1; sqzc_find_tensor(g, n) >= 0; k++) snprintf(n, len, "%s_%u", base, k);
    int id = add_tensor_named(g, n);
    if (id < 0) free(n);
    return id;
}

static int shape_bytes(const sqz_shape *s, size_t elem, size_t *out) {
    size_t n = 1;
    if (s->ndim < 0 || s->ndim > SQZ_MAX_DIMS) return -1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->dims[i] < 0) return -1;
        size_t d = (size_t)s->dims[i];
        if (d && n > SIZE_MAX / elem / d) return -1;
        n *= d;
    }
    *out = n * elem;
    return 0;
}

/* Replace t's constant data with a copy of numel(shape) elements of `dtype`
 * (one owned array per dtype; the others are freed). 0 ok, -1 on overflow or
 * out of memory (t unchanged). */
/* tensor t's data becomes p (owned) */
static void tensor_put_data(sqzc_graph *g, int t, const sqz_shape *shape, int dtype, void *p) {
    sqzc_tensor *x = &g->tensors[t];
    free(x->f32);
    free(x->i64);
    free(x->i8);
    free(x->i32);
    x->f32 = dtype == SQZC_F32 ? p : NULL;
    x->i64 = dtype == SQZC_I64 ? p : NULL;
    x->i8 = dtype == SQZC_I8 ? p : NULL;
    x->i32 = dtype == SQZC_I32 ? p : NULL;
    x->dtype = dtype;
    x->shape = *shape;
    x->has_shape = 1;
}

static int tensor_set_data(sqzc_graph *g, int t, const sqz_shape *shape, int dtype, size_t elem,
                           const void *data) {
    size_t bytes;
    if (shape_bytes(shape, elem, &bytes) != 0) return -1;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return -1;
    if (bytes) memcpy(p, data, bytes);
    tensor_put_data(g, t, shape, dtype, p);
    return 0;
}

int sqzc_tensor_take_f32(sqzc_graph *g, int t, const sqz_shape *shape, float *data) {
    size_t bytes;
    if (!data || shape_bytes(shape, sizeof(float), &bytes) != 0) return -1;
    tensor_put_data(g, t, shape, SQZC_F32, data);
    return 0;
}

int sqzc_tensor_set_f32(sqzc_graph *g, int t, const sqz_shape *shape, const float *data) {
    return tensor_set_data(g, t, shape, SQZC_F32, sizeof(float), data);
}

int sqzc_tensor_set_i64(sqzc_graph *g, int t, const sqz_shape *shape, const int64_t *data) {
    return tensor_set_data(g, t, shape, SQZC_I64, sizeof(int64_t), data);
}

int sqzc_tensor_set_i8(sqzc_graph *g, int t, const sqz_shape *shape, const int8_t *data) {
    return tensor_set_data(g, t, shape, SQZC_I8, 1, data);
}

int sqzc_tensor_set_i32(sqzc_graph *g, int t, const sqz_shape *shape, const int32_t *data) {
    return tensor_set_data(g, t, shape, SQZC_I32, sizeof(int32_t), data);
}

int sqzc_tensor_set_qparams(sqzc_graph *g, int t, int kind, int axis, int n, const float *scale,
                            const int32_t *zero_point) {
    sqzc_qparams *q = &g->tensors[t].q;
    float *s = NULL;
    int32_t *z = NULL;
    if (kind != SQZC_Q_NONE) {
        if (n < 1) return -1;
        s = malloc((size_t)n * sizeof *s);
        z = malloc((size_t)n * sizeof *z);
        if (!s || !z) {
            free(s);
            free(z);
            return -1;
        }
        memcpy(s, scale, (size_t)n * sizeof *s);
        memcpy(z, zero_point, (size_t)n * sizeof *z);
    }
    free(q->scale);
    free(q->zero_point);
    q->kind = kind;
    q->axis = kind == SQZC_Q_CHANNEL ? axis : 0;
    q->n = kind == SQZC_Q_NONE ? 0 : n;
    q->scale = s;
    q->zero_point = z;
    return 0;
}

static int32_t *dup_ids(const int32_t *ids, uint32_t n) {
    int32_t *p = malloc((n ? n : 1) * sizeof *p);
    if (p && n) memcpy(p, ids, n * sizeof *p);
    return p;
}

int sqzc_add_node(sqzc_graph *g, int op, const char *name, uint32_t n_in, const int32_t *in,
                  uint32_t n_out, const int32_t *out) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        sqzc_node *p = realloc(g->nodes, (size_t)cap * sizeof *p);
        if (!p) return -1;
        g->nodes = p;
        g->cap_nodes = cap;
    }
    sqzc_node n = {0};
    n.op = op;
    n.name = dup_str(name);
    n.in = dup_ids(in, n_in);
    n.out = dup_ids(out, n_out);
    if (!n.name || !n.in || !n.out) {
        free_node(&n);
        return -1;
    }
    n.n_in = n_in;
    n.n_out = n_out;
    g->nodes[g->n_nodes] = n;
    return g->n_nodes++;
}

int sqzc_node_set_inputs(sqzc_graph *g, int node, uint32_t n_in, const int32_t *in) {
    int32_t *p = dup_ids(in, n_in);
    if (!p) return -1;
    free(g->nodes[node].in);
    g->nodes[node].in = p;
    g->nodes[node].n_in = n_in;
    return 0;
}

/* Find or append the attribute slot `name` on node; clears its old payload. */
static sqz_attr *attr_slot(sqzc_graph *g, int node, const char *name) {
    sqzc_node *n = &g->nodes[node];
    for (uint32_t i = 0; i < n->n_attr; i++) {
        if (strcmp(n->attrs[i].name, name) == 0) {
            sqz_attr *a = &n->attrs[i];
            free((void *)a->ints);
            free((void *)a->floats);
            free((void *)a->str);
            a->ints = NULL;
            a->floats = NULL;
            a->str = NULL;
            return a;
        }
    }
    sqz_attr *p = realloc(n->attrs, (n->n_attr + 1) * sizeof *p);
    if (!p) return NULL;
    n->attrs = p;
    sqz_attr *a = &p[n->n_attr];
    memset(a, 0, sizeof *a);
    a->name = dup_str(name);
    if (!a->name) return NULL;
    n->n_attr++;
    return a;
}

int sqzc_node_set_ints(sqzc_graph *g, int node, const char *name, const int64_t *v, uint32_t n) {
    int64_t *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) return -1;
    if (n) memcpy(p, v, n * sizeof *p);
    sqz_attr *a = attr_slot(g, node, name);
    if (!a) {
        free(p);
        return -1;
    }
    a->type = SQZ_ATTR_INTS;
    a->count = n;
    a->ints = p;
    return 0;
}

/* Retag the attribute `name` of node as a scalar type. */
static void retag(sqzc_graph *g, int node, const char *name, uint8_t type) {
    for (uint32_t i = 0; i < g->nodes[node].n_attr; i++)
        if (strcmp(g->nodes[node].attrs[i].name, name) == 0) g->nodes[node].attrs[i].type = type;
}

int sqzc_node_set_int(sqzc_graph *g, int node, const char *name, int64_t v) {
    if (sqzc_node_set_ints(g, node, name, &v, 1) != 0) return -1;
    retag(g, node, name, SQZ_ATTR_INT);
    return 0;
}

int sqzc_node_set_floats(sqzc_graph *g, int node, const char *name, const float *v, uint32_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) return -1;
    if (n) memcpy(p, v, n * sizeof *p);
    sqz_attr *a = attr_slot(g, node, name);
    if (!a) {
        free(p);
        return -1;
    }
    a->type = SQZ_ATTR_FLOATS;
    a->count = n;
    a->floats = p;
    return 0;
}

int sqzc_node_set_float(sqzc_graph *g, int node, const char *name, float v) {
    if (sqzc_node_set_floats(g, node, name, &v, 1) != 0) return -1;
    retag(g, node, name, SQZ_ATTR_FLOAT);
    return 0;
}

int sqzc_node_set_str(sqzc_graph *g, int node, const char *name, const char *v) {
    char *p = dup_str(v);
    if (!p) return -1;
    sqz_attr *a = attr_slot(g, node, name);
    if (!a) {
        free(p);
        return -1;
    }
    a->type = SQZ_ATTR_STRING;
    a->count = 0;
    a->str = p;
    return 0;
}

void sqzc_node_view(const sqzc_graph *g, int node, sqz_node *view) {
    const sqzc_node *n = &g->nodes[node];
    view->op = (uint16_t)n->op;
    view->name = n->name;
    view->n_inputs = n->n_in;
    view->n_outputs = n->n_out;
    view->n_attrs = n->n_attr;
    view->inputs = n->in;
    view->outputs = n->out;
    view->attrs = n->attrs;
}

int sqzc_producer(const sqzc_graph *g, int t) {
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == SQZ_OP_INVALID) continue;
        for (uint32_t k = 0; k < g->nodes[i].n_out; k++)
            if (g->nodes[i].out[k] == t) return i;
    }
    return -1;
}

int sqzc_consumer_count(const sqzc_graph *g, int t) {
    int c = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == SQZ_OP_INVALID) continue;
        for (uint32_t k = 0; k < g->nodes[i].n_in; k++) c += g->nodes[i].in[k] == t;
    }
    for (int i = 0; i < g->n_outputs; i++) c += g->outputs[i] == t;
    return c;
}

int sqzc_graph_set_meta(sqzc_graph *g, const char *key, const char *value) {
    for (int i = 0; i < g->n_meta; i++) {
        if (strcmp(g->meta[i].key, key) == 0) {
            char *v = dup_str(value);
            if (!v) return -1;
            free(g->meta[i].value);
            g->meta[i].value = v;
            return 0;
        }
    }
    sqzc_kv *p = realloc(g->meta, (size_t)(g->n_meta + 1) * sizeof *p);
    if (!p) return -1;
    g->meta = p;
    char *k = dup_str(key), *v = dup_str(value);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    g->meta[g->n_meta].key = k;
    g->meta[g->n_meta].value = v;
    g->n_meta++;
    return 0;
}

int sqzc_graph_compact(sqzc_graph *g) {
    /* drop removed nodes */
    int w = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == SQZ_OP_INVALID)
            free_node(&g->nodes[i]);
        else
            g->nodes[w++] = g->nodes[i];
    }
    g->n_nodes = w;
    /* mark used tensors */
    int nt = g->n_tensors;
    int32_t *remap = malloc((size_t)(nt ? nt : 1) * sizeof *remap);
    if (!remap) return -1;
    for (int t = 0; t < nt; t++) remap[t] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        for (uint32_t k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0) remap[g->nodes[i].in[k]] = 0;
        for (uint32_t k = 0; k < g->nodes[i].n_out; k++) remap[g->nodes[i].out[k]] = 0;
    }
    for (int i = 0; i < g->n_inputs; i++) remap[g->inputs[i]] = 0;
    for (int i = 0; i < g->n_outputs; i++) remap[g->outputs[i]] = 0;
    int nw = 0;
    for (int t = 0; t < nt; t++) {
        if (remap[t] < 0) {
            free_encoding(g->tensors[t].enc);
            free(g->tensors[t].name);
            free(g->tensors[t].f32);
            free(g->tensors[t].i64);
            free(g->tensors[t].i8);
            free(g->tensors[t].i32);
            free(g->tensors[t].q.scale);
            free(g->tensors[t].q.zero_point);
            continue;
        }
        remap[t] = nw;
        g->tensors[nw++] = g->tensors[t];
    }
    g->n_tensors = nw;
    for (int i = 0; i < g->n_nodes; i++) {
        for (uint32_t k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0) g->nodes[i].in[k] = remap[g->nodes[i].in[k]];
        for (uint32_t k = 0; k < g->nodes[i].n_out; k++)
            g->nodes[i].out[k] = remap[g->nodes[i].out[k]];
    }
    for (int i = 0; i < g->n_inputs; i++) g->inputs[i] = remap[g->inputs[i]];
    for (int i = 0; i < g->n_outputs; i++) g->outputs[i] = remap[g->outputs[i]];
    free(remap);
    name_index *ix = g->name_index;
    return index_rebuild(g, ix->cap);
}

int sqzc_graph_toposort(sqzc_graph *g, char *err, size_t err_len) {
    int nn = g->n_nodes, nt = g->n_tensors;
    /* ready[t]: tensor available (graph input, constant, or produced) */
    char *ready = calloc((size_t)(nt ? nt : 1), 1);
    char *done = calloc((size_t)(nn ? nn : 1), 1);
    sqzc_node *order = malloc((size_t)(nn ? nn : 1) * sizeof *order);
    if (!ready || !done || !order) {
        free(ready);
        free(done);
        free(order);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (int t = 0; t < nt; t++) ready[t] = sqzc_tensor_is_const(g, t);
    for (int i = 0; i < g->n_inputs; i++) ready[g->inputs[i]] = 1;
    int placed = 0;
    /* Repeated scans keep the original order among ready nodes (stable); the
     * graphs are small enough that O(n^2) worst case is fine offline. */
    for (int progress = 1; progress && placed < nn;) {
        progress = 0;
        for (int i = 0; i < nn; i++) {
            if (done[i]) continue;
            const sqzc_node *n = &g->nodes[i];
            int ok = 1;
            for (uint32_t k = 0; k < n->n_in && ok; k++) ok = n->in[k] < 0 || ready[n->in[k]];
            if (!ok) continue;
            for (uint32_t k = 0; k < n->n_out; k++) ready[n->out[k]] = 1;
            order[placed++] = *n;
            done[i] = 1;
            progress = 1;
        }
    }
    int rc = 0;
    if (placed < nn) {
        for (int i = 0; i < nn; i++) {
            if (done[i]) continue;
            const sqzc_node *n = &g->nodes[i];
            for (uint32_t k = 0; k < n->n_in; k++) {
                if (n->in[k] >= 0 && !ready[n->in[k]]) {
                    snprintf(err, err_len,
                             "node '%s': input '%s' is never produced (missing producer or cycle)",
                             n->name, g->tensors[n->in[k]].name);
                    break;
                }
            }
            break;
        }
        rc = -1;
    } else {
        memcpy(g->nodes, order, (size_t)nn * sizeof *order);
    }
    free(ready);
    free(done);
    free(order);
    return rc;
}
