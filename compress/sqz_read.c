/* sqz_read.c - .sqz -> sqzc IR (sqzc/sqz_read.h). */
#include "sqzc/sqz_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h" /* runtime-internal: the loaded model's tensors and nodes */
#include "sqz/sqz.h"

int sqzc_read_sqz(const char *path, sqzc_graph **out, char *err, size_t err_len) {
    *out = NULL;
    sqz_model *m = NULL;
    sqz_status st;
    if (sqz_model_load_file(path, &m, &st) != SQZ_OK) {
        snprintf(err, err_len, "%s", st.msg);
        return -1;
    }
    sqzc_graph *g = sqzc_graph_new();
    if (!g) goto oom;
    for (int t = 0; t < m->n_tensors; t++) {
        const sqz_tensor_rec *r = &m->tensors[t];
        if (r->dtype != SQZ_DT_F32) {
            snprintf(err, err_len, "%s: tensor '%s' is not float32 (an already quantized model?)",
                     path, r->name);
            goto fail;
        }
        int id = sqzc_tensor_get_or_add(g, r->name);
        if (id != t) {
            snprintf(err, err_len, "%s: duplicate tensor name '%s'", path, r->name);
            goto fail;
        }
        if (r->data) {
            if (sqzc_tensor_set_f32(g, id, &r->shape, r->data) != 0) goto oom;
        } else {
            g->tensors[id].shape = r->shape;
            g->tensors[id].has_shape = 1;
        }
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const sqz_node *n = &m->nodes[i];
        int ni = sqzc_add_node(g, n->op, n->name, n->n_inputs, n->inputs, n->n_outputs, n->outputs);
        if (ni < 0) goto oom;
        for (uint32_t k = 0; k < n->n_attrs; k++) {
            const sqz_attr *a = &n->attrs[k];
            int rc = 0;
            switch (a->type) {
            case SQZ_ATTR_INT:
                rc = sqzc_node_set_int(g, ni, a->name, a->ints[0]);
                break;
            case SQZ_ATTR_FLOAT:
                rc = sqzc_node_set_float(g, ni, a->name, a->floats[0]);
                break;
            case SQZ_ATTR_INTS:
                rc = sqzc_node_set_ints(g, ni, a->name, a->ints, a->count);
                break;
            case SQZ_ATTR_FLOATS:
                rc = sqzc_node_set_floats(g, ni, a->name, a->floats, a->count);
                break;
            case SQZ_ATTR_STRING:
                rc = sqzc_node_set_str(g, ni, a->name, a->str ? a->str : "");
                break;
            default:
                break;
            }
            if (rc != 0) goto oom;
        }
    }
    g->inputs = malloc(sizeof *g->inputs * (size_t)(m->n_inputs + 1));
    g->outputs = malloc(sizeof *g->outputs * (size_t)(m->n_outputs + 1));
    if (!g->inputs || !g->outputs) goto oom;
    memcpy(g->inputs, m->inputs, sizeof *g->inputs * (size_t)m->n_inputs);
    memcpy(g->outputs, m->outputs, sizeof *g->outputs * (size_t)m->n_outputs);
    g->n_inputs = m->n_inputs;
    g->n_outputs = m->n_outputs;
    for (int i = 0; i < m->n_meta; i++)
        if (sqzc_graph_set_meta(g, m->meta_keys[i], m->meta_values[i]) != 0) goto oom;
    sqz_model_free(m);
    *out = g;
    return 0;
oom:
    snprintf(err, err_len, "%s: out of memory", path);
fail:
    sqzc_graph_free(g);
    sqz_model_free(m);
    return -1;
}
