/* pattern.c - block-pattern magnitude pruning (see sqzc/prune_pattern.h). */
#include "sqzc/prune_pattern.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sqzc_prune_pattern_parse(const char *s) {
    if (strcmp(s, "none") == 0) return SQZC_PATTERN_NONE;
    if (strcmp(s, "1x4") == 0) return SQZC_PATTERN_1X4;
    if (strcmp(s, "4x1") == 0) return SQZC_PATTERN_4X1;
    if (strcmp(s, "2:4") == 0) return SQZC_PATTERN_2OF4;
    return -1;
}

/* [out, in] view of a layer weight */
typedef struct wview {
    float *w;
    int64_t n_out, n_in;
    int col_major; /* element (o, i) at i * n_out + o (Gemm transB = 0, MatMul) */
} wview;

static int view_of(const sqzc_graph *g, int node, int t, wview *v) {
    const sqzc_node *n = &g->nodes[node];
    const sqzc_tensor *W = &g->tensors[t];
    v->w = W->f32;
    int64_t total = sqz_shape_numel(&W->shape);
    if (n->op == SQZ_OP_CONV) {
        v->n_out = W->shape.dims[0];
        v->col_major = 0;
    } else if (n->op == SQZ_OP_GEMM || n->op == SQZ_OP_MATMUL) {
        if (W->shape.ndim != 2) return -1;
        sqz_node nv;
        sqzc_node_view(g, node, &nv);
        int tb = n->op == SQZ_OP_GEMM && sqz_attr_int(&nv, "transB", 0);
        v->n_out = tb ? W->shape.dims[0] : W->shape.dims[1];
        v->col_major = !tb;
    } else {
        return -1; /* ConvTranspose: left to unstructured pruning */
    }
    if (v->n_out <= 0) return -1;
    v->n_in = total / v->n_out;
    return 0;
}

static float *at(const wview *v, int64_t o, int64_t i) {
    return v->col_major ? &v->w[i * v->n_out + o] : &v->w[o * v->n_in + i];
}

typedef struct blk {
    float score;
    int32_t layer;
    int32_t size;
    int64_t o, i; /* first element */
} blk;

static int cmp_blk(const void *pa, const void *pb) {
    const blk *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    if (a->layer != b->layer) return a->layer < b->layer ? -1 : 1;
    if (a->o != b->o) return a->o < b->o ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Blocks of a layer appended to *arr; returns the new count or -1. */
static int64_t add_blocks(const wview *v, int pattern, int layer, blk **arr, int64_t n,
                          int64_t *cap) {
    int64_t bo = pattern == SQZC_PATTERN_4X1 ? 4 : 1, bi = pattern == SQZC_PATTERN_1X4 ? 4 : 1;
    for (int64_t o = 0; o < v->n_out; o += bo)
        for (int64_t i = 0; i < v->n_in; i += bi) {
            if (n == *cap) {
                int64_t nc = *cap ? *cap * 2 : 1024;
                blk *p = realloc(*arr, (size_t)nc * sizeof *p);
                if (!p) return -1;
                *arr = p;
                *cap = nc;
            }
            double s = 0;
            int cnt = 0;
            for (int64_t a = o; a < o + bo && a < v->n_out; a++)
                for (int64_t b = i; b < i + bi && b < v->n_in; b++, cnt++) s += fabsf(*at(v, a, b));
            (*arr)[n].score = (float)(s / cnt);
            (*arr)[n].layer = layer;
            (*arr)[n].size = cnt;
            (*arr)[n].o = o;
            (*arr)[n].i = i;
            n++;
        }
    return n;
}

static void zero_block(const wview *v, int pattern, const blk *b) {
    int64_t bo = pattern == SQZC_PATTERN_4X1 ? 4 : 1, bi = pattern == SQZC_PATTERN_1X4 ? 4 : 1;
    for (int64_t a = b->o; a < b->o + bo && a < v->n_out; a++)
        for (int64_t c = b->i; c < b->i + bi && c < v->n_in; c++) *at(v, a, c) = 0.0f;
}

/* Prune sorted blocks until `target` weights are covered. */
static void prune_sorted(const wview *views, int pattern, blk *b, int64_t nb, int64_t target) {
    int64_t covered = 0;
    for (int64_t k = 0; k < nb && covered < target; k++) {
        zero_block(&views[b[k].layer], pattern, &b[k]);
        covered += b[k].size;
    }
}

static void two_of_four(const wview *v) {
    for (int64_t o = 0; o < v->n_out; o++)
        for (int64_t i = 0; i < v->n_in; i += 4) {
            int64_t m = v->n_in - i < 4 ? v->n_in - i : 4, zeros = 0;
            for (int64_t k = i; k < i + m; k++) zeros += *at(v, o, k) == 0.0f;
            /* zero the smallest non-zeros until at most 2 of the run are left */
            while (zeros < m - 2) {
                int64_t best = -1;
                for (int64_t k = i; k < i + m; k++) {
                    float x = *at(v, o, k);
                    if (x != 0.0f && (best < 0 || fabsf(x) < fabsf(*at(v, o, best)))) best = k;
                }
                *at(v, o, best) = 0.0f;
                zeros++;
            }
        }
}

int sqzc_prune_blocks(sqzc_graph *g, const sqzc_prune_options *o, int pattern, char *err,
                      size_t err_len) {
    if (pattern == SQZC_PATTERN_NONE) return sqzc_prune_magnitude(g, o, err, err_len);
    if (pattern < 0 || pattern > SQZC_PATTERN_2OF4) {
        snprintf(err, err_len, "prune: unknown block pattern %d", pattern);
        return -1;
    }
    if (!(o->sparsity >= 0.0f && o->sparsity < 1.0f)) {
        snprintf(err, err_len, "prune: sparsity %g out of range [0, 1)", (double)o->sparsity);
        return -1;
    }
    int nn = g->n_nodes;
    wview *views = calloc((size_t)nn + 1, sizeof *views);
    int *lnode = malloc(((size_t)nn + 1) * sizeof *lnode),
        *lt = malloc(((size_t)nn + 1) * sizeof *lt);
    float *lsp = malloc(((size_t)nn + 1) * sizeof *lsp);
    char *own = calloc((size_t)nn + 1, 1), *seen = calloc((size_t)g->n_tensors + 1, 1);
    blk *arr = NULL;
    int rc = -1, nl = 0;
    if (!views || !lnode || !lt || !lsp || !own || !seen) goto oom;
    for (int i = 0; i < nn; i++) {
        int t = sqzc_layer_weight(g, i);
        if (t < 0 || seen[t]) continue;
        wview v;
        if (view_of(g, i, t, &v) != 0) continue;
        seen[t] = 1;
        views[nl] = v;
        lnode[nl] = i;
        lt[nl] = t;
        lsp[nl] = o->sparsity;
        nl++;
    }
    for (int k = 0; k < o->n_layers; k++) {
        int found = 0;
        if (!(o->layers[k].value >= 0.0f && o->layers[k].value < 1.0f)) {
            snprintf(err, err_len, "prune: sparsity %g for layer '%s' out of range [0, 1)",
                     (double)o->layers[k].value, o->layers[k].name);
            goto done;
        }
        for (int l = 0; l < nl; l++)
            if (strcmp(g->nodes[lnode[l]].name, o->layers[k].name) == 0) {
                lsp[l] = o->layers[k].value;
                own[l] = 1;
                found = 1;
            }
        if (!found) {
            snprintf(err, err_len,
                     "prune: no layer named '%s' for pattern pruning (Conv/Gemm/"
                     "MatMul with a constant weight)",
                     o->layers[k].name);
            goto done;
        }
    }
    if (pattern == SQZC_PATTERN_2OF4) {
        for (int l = 0; l < nl; l++) two_of_four(&views[l]);
    } else {
        int64_t cap = 0;
        for (int l = 0; l < nl; l++) {
            if (o->global && !own[l]) continue;
            int64_t nb = add_blocks(&views[l], pattern, l, &arr, 0, &cap);
            if (nb < 0) goto oom;
            qsort(arr, (size_t)nb, sizeof *arr, cmp_blk);
            int64_t n = views[l].n_out * views[l].n_in;
            prune_sorted(views, pattern, arr, nb, (int64_t)floor((double)lsp[l] * n + 0.5));
        }
        if (o->global) {
            int64_t nb = 0, total = 0;
            for (int l = 0; l < nl; l++) {
                if (own[l]) continue;
                nb = add_blocks(&views[l], pattern, l, &arr, nb, &cap);
                if (nb < 0) goto oom;
                total += views[l].n_out * views[l].n_in;
            }
            qsort(arr, (size_t)nb, sizeof *arr, cmp_blk);
            prune_sorted(views, pattern, arr, nb,
                         (int64_t)floor((double)o->sparsity * total + 0.5));
        }
    }
    for (int l = 0; l < nl; l++)
        if (sqzc_update_sparse_request(g, lt[l]) != 0) goto oom;
    rc = 0;
    goto done;
oom:
    snprintf(err, err_len, "prune: out of memory");
done:
    free(arr);
    free(views);
    free(lnode);
    free(lt);
    free(lsp);
    free(own);
    free(seen);
    return rc;
}
