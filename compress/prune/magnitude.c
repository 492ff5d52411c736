/* magnitude.c - unstructured magnitude pruning (per layer or one global
 * threshold) and the sparse-storage estimate. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqzc/prune.h"

int sqzc_layer_weight(const sqzc_graph *g, int node) {
    if (node < 0 || node >= g->n_nodes) return -1;
    const sqzc_node *nd = &g->nodes[node];
    if (nd->op != SQZ_OP_CONV && nd->op != SQZ_OP_CONV_TRANSPOSE && nd->op != SQZ_OP_GEMM &&
        nd->op != SQZ_OP_MATMUL)
        return -1;
    if (nd->n_in < 2) return -1;
    int t = nd->in[1];
    if (t < 0 || t >= g->n_tensors || g->tensors[t].dtype != SQZC_F32 || !g->tensors[t].f32)
        return -1;
    if (sqz_shape_numel(&g->tensors[t].shape) <= 0) return -1;
    return t;
}

int sqzc_layer_is_conv(const sqzc_graph *g, int node) {
    return node >= 0 && node < g->n_nodes &&
           (g->nodes[node].op == SQZ_OP_CONV || g->nodes[node].op == SQZ_OP_CONV_TRANSPOSE);
}

typedef struct mag_item {
    float mag;     /* |w|; NaN sorts last (kept) */
    int32_t layer; /* index into the layer list (global pruning) */
    int64_t idx;
} mag_item;

static int cmp_mag(const void *pa, const void *pb) {
    const mag_item *a = pa, *b = pb;
    int an = isnan(a->mag), bn = isnan(b->mag);
    if (an != bn) return an - bn;
    if (!an && a->mag != b->mag) return a->mag < b->mag ? -1 : 1;
    if (a->layer != b->layer) return a->layer < b->layer ? -1 : 1;
    if (a->idx != b->idx) return a->idx < b->idx ? -1 : 1;
    return 0;
}

static int64_t target_zeros(int64_t n, float sparsity) {
    double k = floor((double)sparsity * (double)n + 0.5);
    if (k < 0) k = 0;
    if (k > (double)n) k = (double)n;
    return (int64_t)k;
}

int64_t sqzc_prune_array(float *w, int64_t n, float sparsity) {
    if (n < 0 || !(sparsity >= 0.0f && sparsity < 1.0f) || (n > 0 && !w)) return -1;
    if (n == 0) return 0;
    if ((uint64_t)n > SIZE_MAX / sizeof(mag_item)) return -1;
    mag_item *it = malloc((size_t)n * sizeof *it);
    if (!it) return -1;
    for (int64_t i = 0; i < n; i++) {
        it[i].mag = fabsf(w[i]);
        it[i].layer = 0;
        it[i].idx = i;
    }
    qsort(it, (size_t)n, sizeof *it, cmp_mag);
    int64_t k = target_zeros(n, sparsity);
    for (int64_t i = 0; i < k; i++) w[it[i].idx] = 0.0f;
    free(it);
    return k;
}

int64_t sqzc_sparse_entries(const float *w, int64_t n, int gap_bits) {
    if (gap_bits < 1 || gap_bits > 30) return -1;
    const int64_t span = (int64_t)1 << gap_bits;
    int64_t entries = 0, run = 0;
    for (int64_t i = 0; i < n; i++) {
        if (w[i] == 0.0f) {
            run++;
        } else {
            entries += 1 + run / span;
            run = 0;
        }
    }
    return entries;
}

int sqzc_sparse_plan(const float *w, int64_t n, int value_bits, int *gap_bits, int64_t *bits) {
    int best_g = 3;
    int64_t best = -1;
    for (int gb = 3; gb <= 8; gb++) {
        int64_t e = sqzc_sparse_entries(w, n, gb);
        int64_t b = e * (int64_t)(value_bits + gb);
        if (best < 0 || b < best) {
            best = b;
            best_g = gb;
        }
    }
    *gap_bits = best_g;
    *bits = best;
    return best < n * (int64_t)value_bits;
}

int sqzc_update_sparse_request(sqzc_graph *g, int t) {
    sqzc_tensor *tt = &g->tensors[t];
    if (!tt->f32) return 0;
    int64_t n = sqz_shape_numel(&tt->shape);
    int vbits = tt->enc && tt->enc->codebook_bits > 0 ? tt->enc->codebook_bits : 32;
    int gb = 0;
    int64_t bits = 0;
    int pays = n > 0 && sqzc_sparse_plan(tt->f32, n, vbits, &gb, &bits);
    if (!pays && (!tt->enc || !tt->enc->sparse)) return 0;
    sqzc_encoding e;
    memset(&e, 0, sizeof e);
    if (tt->enc) e = *tt->enc;
    e.sparse = pays;
    e.gap_bits = pays ? gb : 0;
    if (!e.sparse && e.codebook_bits == 0 && !e.huffman)
        return sqzc_tensor_set_encoding(g, t, NULL);
    return sqzc_tensor_set_encoding(g, t, &e);
}

/* Layers in node order, each weight tensor once. Returns count, -1 OOM. */
static int list_layers(const sqzc_graph *g, int **nodes_out, int **tens_out) {
    int *nodes = malloc(((size_t)g->n_nodes + 1) * sizeof *nodes);
    int *tens = malloc(((size_t)g->n_nodes + 1) * sizeof *tens);
    char *seen = calloc((size_t)g->n_tensors + 1, 1);
    if (!nodes || !tens || !seen) {
        free(nodes);
        free(tens);
        free(seen);
        return -1;
    }
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int t = sqzc_layer_weight(g, i);
        if (t < 0 || seen[t]) continue;
        seen[t] = 1;
        nodes[n] = i;
        tens[n] = t;
        n++;
    }
    free(seen);
    *nodes_out = nodes;
    *tens_out = tens;
    return n;
}

int sqzc_prune_magnitude(sqzc_graph *g, const sqzc_prune_options *o, char *err, size_t err_len) {
    if (!(o->sparsity >= 0.0f && o->sparsity < 1.0f)) {
        snprintf(err, err_len, "prune: sparsity %g out of range [0, 1)", (double)o->sparsity);
        return -1;
    }
    int *nodes = NULL, *tens = NULL;
    int nl = list_layers(g, &nodes, &tens);
    if (nl < 0) {
        snprintf(err, err_len, "prune: out of memory");
        return -1;
    }
    int rc = -1;
    float *lsp = malloc(((size_t)nl + 1) * sizeof *lsp);
    char *own = calloc((size_t)nl + 1, 1);
    mag_item *pool = NULL;
    if (!lsp || !own) {
        snprintf(err, err_len, "prune: out of memory");
        goto done;
    }
    for (int l = 0; l < nl; l++) lsp[l] = o->sparsity;
    for (int k = 0; k < o->n_layers; k++) {
        const sqzc_layer_value *lv = &o->layers[k];
        if (!(lv->value >= 0.0f && lv->value < 1.0f)) {
            snprintf(err, err_len, "prune: sparsity %g for layer '%s' out of range [0, 1)",
                     (double)lv->value, lv->name);
            goto done;
        }
        int found = 0;
        for (int l = 0; l < nl; l++) {
            const char *nm = g->nodes[nodes[l]].name;
            if (nm && strcmp(nm, lv->name) == 0) {
                lsp[l] = lv->value;
                own[l] = 1;
                found = 1;
            }
        }
        if (!found) {
            snprintf(err, err_len,
                     "prune: no prunable layer named '%s' (Conv/ConvTranspose/Gemm/MatMul with a "
                     "constant weight)",
                     lv->name);
            goto done;
        }
    }
    /* per-layer targets (all layers when not global, overridden ones otherwise) */
    for (int l = 0; l < nl; l++) {
        if (o->global && !own[l]) continue;
        sqzc_tensor *t = &g->tensors[tens[l]];
        if (sqzc_prune_array(t->f32, sqz_shape_numel(&t->shape), lsp[l]) < 0) {
            snprintf(err, err_len, "prune: out of memory pruning '%s'", t->name);
            goto done;
        }
    }
    if (o->global) {
        int64_t total = 0;
        for (int l = 0; l < nl; l++)
            if (!own[l]) total += sqz_shape_numel(&g->tensors[tens[l]].shape);
        if (total > 0) {
            if ((uint64_t)total > SIZE_MAX / sizeof *pool ||
                !(pool = malloc((size_t)total * sizeof *pool))) {
                snprintf(err, err_len, "prune: out of memory");
                goto done;
            }
            int64_t p = 0;
            for (int l = 0; l < nl; l++) {
                if (own[l]) continue;
                const sqzc_tensor *t = &g->tensors[tens[l]];
                int64_t n = sqz_shape_numel(&t->shape);
                for (int64_t i = 0; i < n; i++, p++) {
                    pool[p].mag = fabsf(t->f32[i]);
                    pool[p].layer = l;
                    pool[p].idx = i;
                }
            }
            qsort(pool, (size_t)total, sizeof *pool, cmp_mag);
            int64_t k = target_zeros(total, o->sparsity);
            for (int64_t i = 0; i < k; i++) g->tensors[tens[pool[i].layer]].f32[pool[i].idx] = 0.0f;
        }
    }
    for (int l = 0; l < nl; l++) {
        if (sqzc_update_sparse_request(g, tens[l]) != 0) {
            snprintf(err, err_len, "prune: out of memory");
            goto done;
        }
    }
    rc = 0;
done:
    free(pool);
    free(lsp);
    free(own);
    free(nodes);
    free(tens);
    return rc;
}
