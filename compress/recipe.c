/* recipe.c - compression recipes: parsing (file or flags), validation,
 * application (prune -> share), and per-layer size accounting. */
#include "sqzc/recipe.h"
#include "sqzc/tensor_encode.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sqzc_recipe_init(sqzc_recipe *r) {
    memset(r, 0, sizeof *r);
    r->target_drop = 0.5f;
    r->bias_bits = SQZC_DEFAULT_BIAS_BITS;
}

static void free_layers(sqzc_layer_value *l, int n) {
    for (int i = 0; i < n; i++) free((char *)l[i].name);
    free(l);
}

void sqzc_recipe_free(sqzc_recipe *r) {
    if (!r) return;
    free_layers(r->prune_layers, r->n_prune_layers);
    free_layers(r->share_layers, r->n_share_layers);
    sqzc_recipe_init(r);
}

static int parse_num(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 ||
        strcmp(s, "on") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0 || strcmp(s, "no") == 0 ||
        strcmp(s, "off") == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

static int parse_bits(const char *s, int *out) {
    double v;
    if (parse_num(s, &v) != 0 || v != floor(v) || v < 2 || v > 8) return -1;
    *out = (int)v;
    return 0;
}

static int parse_sparsity(const char *s, float *out) {
    double v;
    if (parse_num(s, &v) != 0 || v < 0.0 || v >= 1.0) return -1;
    *out = (float)v;
    return 0;
}

/* Add or replace a per-layer value. 0 ok, -1 OOM. */
static int set_layer(sqzc_layer_value **l, int *n, const char *name, float v) {
    for (int i = 0; i < *n; i++)
        if (strcmp((*l)[i].name, name) == 0) {
            (*l)[i].value = v;
            return 0;
        }
    sqzc_layer_value *p = realloc(*l, ((size_t)*n + 1) * sizeof *p);
    if (!p) return -1;
    *l = p;
    size_t len = strlen(name);
    char *dup = malloc(len + 1);
    if (!dup) return -1;
    memcpy(dup, name, len + 1);
    p[*n].name = dup;
    p[*n].value = v;
    (*n)++;
    return 0;
}

static const char kKeys[] = "prune.sparsity, prune.scope, prune.layer.<node>, share.bits, "
                            "share.bits.conv, share.bits.fc, share.layer.<node>, share.fp16, "
                            "share.grid, bias.bits, huffman, target.drop";

int sqzc_recipe_set(sqzc_recipe *r, const char *key, const char *value, const char *where,
                    char *err, size_t err_len) {
    const char *range = NULL;
    int ok = 0, oom = 0;
    if (strcmp(key, "prune.sparsity") == 0) {
        range = "a number in [0, 1)";
        ok = parse_sparsity(value, &r->sparsity) == 0;
        r->prune = r->prune || ok;
    } else if (strcmp(key, "prune.scope") == 0) {
        range = "global or layer";
        if (strcmp(value, "global") == 0 || strcmp(value, "layer") == 0) {
            r->prune_global = value[0] == 'g';
            ok = 1;
        }
    } else if (strncmp(key, "prune.layer.", 12) == 0 && key[12]) {
        range = "a number in [0, 1)";
        float v;
        ok = parse_sparsity(value, &v) == 0;
        if (ok) {
            oom = set_layer(&r->prune_layers, &r->n_prune_layers, key + 12, v) != 0;
            r->prune = 1;
        }
    } else if (strcmp(key, "share.bits") == 0 || strcmp(key, "share.bits.conv") == 0 ||
               strcmp(key, "share.bits.fc") == 0) {
        range = "an integer 2..8";
        int *dst = key[10] == '\0' ? &r->bits : key[11] == 'c' ? &r->bits_conv : &r->bits_fc;
        ok = parse_bits(value, dst) == 0;
        r->share = r->share || ok;
    } else if (strncmp(key, "share.layer.", 12) == 0 && key[12]) {
        range = "an integer 2..8";
        int b;
        ok = parse_bits(value, &b) == 0;
        if (ok) {
            oom = set_layer(&r->share_layers, &r->n_share_layers, key + 12, (float)b) != 0;
            r->share = 1;
        }
    } else if (strcmp(key, "share.fp16") == 0) {
        range = "0 or 1";
        ok = parse_bool(value, &r->fp16) == 0;
    } else if (strcmp(key, "share.grid") == 0) {
        range = "0 or 1";
        int v = 0;
        ok = parse_bool(value, &v) == 0;
        if (ok && v) r->fp16 = SQZC_CENTROIDS_GRID;
        if (ok && !v && r->fp16 == SQZC_CENTROIDS_GRID) r->fp16 = 0;
    } else if (strcmp(key, "bias.bits") == 0) {
        range = "0 (fp16) or an integer 2..8";
        ok = (strcmp(value, "0") == 0 && (r->bias_bits = 0, 1)) ||
             parse_bits(value, &r->bias_bits) == 0;
    } else if (strcmp(key, "huffman") == 0) {
        range = "0 or 1";
        ok = parse_bool(value, &r->huffman) == 0;
    } else if (strcmp(key, "target.drop") == 0) {
        range = "a number of accuracy points in [0, 100]";
        double v;
        ok = parse_num(value, &v) == 0 && v >= 0.0 && v <= 100.0;
        if (ok) {
            r->target_drop = (float)v;
            r->has_target_drop = 1;
        }
    } else {
        snprintf(err, err_len, "%s: unknown key '%s' (known: %s)", where, key, kKeys);
        return -1;
    }
    if (oom) {
        snprintf(err, err_len, "%s: out of memory", where);
        return -1;
    }
    if (!ok) {
        snprintf(err, err_len, "%s: bad value '%s' for %s (expected %s)", where, value, key, range);
        return -1;
    }
    return 0;
}

static char *trim(char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

int sqzc_recipe_parse_text(sqzc_recipe *r, const char *text, const char *name, char *err,
                           size_t err_len) {
    size_t len = strlen(text);
    char *buf = malloc(len + 1);
    if (!buf) {
        snprintf(err, err_len, "%s: out of memory", name);
        return -1;
    }
    memcpy(buf, text, len + 1);
    int rc = 0, line = 0;
    char *p = buf;
    while (p && rc == 0) {
        line++;
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        char *hash = strchr(p, '#');
        if (hash) *hash = '\0';
        char *s = trim(p);
        char where[512];
        snprintf(where, sizeof where, "%s:%d", name, line);
        if (*s) {
            char *eq = strchr(s, '=');
            if (!eq) {
                snprintf(err, err_len, "%s: malformed line '%.60s' (expected key = value)", where,
                         s);
                rc = -1;
                break;
            }
            *eq = '\0';
            char *key = trim(s), *val = trim(eq + 1);
            int bad_key = !*key;
            for (const char *c = key; *c && !bad_key; c++)
                bad_key = isspace((unsigned char)*c) != 0;
            if (bad_key || !*val) {
                snprintf(err, err_len, "%s: malformed line (expected key = value%s%s%s)", where,
                         *key ? "; key '" : "", key, *key ? "'" : "");
                rc = -1;
                break;
            }
            rc = sqzc_recipe_set(r, key, val, where, err, err_len);
        }
        p = nl ? nl + 1 : NULL;
    }
    free(buf);
    return rc;
}

int sqzc_recipe_parse_file(sqzc_recipe *r, const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open recipe: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int rc = -1;
    if (!buf) {
        snprintf(err, err_len, "%s: out of memory", path);
        goto done;
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= (1u << 20)) {
                snprintf(err, err_len, "%s: recipe larger than 1 MiB", path);
                goto done;
            }
            char *q = realloc(buf, cap * 2);
            if (!q) {
                snprintf(err, err_len, "%s: out of memory", path);
                goto done;
            }
            buf = q;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        snprintf(err, err_len, "%s: read error", path);
        goto done;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        snprintf(err, err_len, "%s: not a text file (NUL byte)", path);
        goto done;
    }
    rc = sqzc_recipe_parse_text(r, buf, path, err, err_len);
done:
    free(buf);
    fclose(f);
    return rc;
}

static int has_layer(const sqzc_graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (sqzc_layer_weight(g, i) >= 0 && g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0)
            return 1;
    return 0;
}

int sqzc_recipe_check(const sqzc_recipe *r, const sqzc_graph *g, char *err, size_t err_len) {
    const char *kind[2] = {"prune.layer.", "share.layer."};
    for (int s = 0; s < 2; s++) {
        const sqzc_layer_value *l = s ? r->share_layers : r->prune_layers;
        int n = s ? r->n_share_layers : r->n_prune_layers;
        for (int i = 0; i < n; i++) {
            if (has_layer(g, l[i].name)) continue;
            snprintf(err, err_len,
                     "recipe key '%s%s': the model has no layer '%s' (a Conv/ConvTranspose/Gemm/"
                     "MatMul node with a constant weight)",
                     kind[s], l[i].name, l[i].name);
            return -1;
        }
    }
    if (r->share && r->bits == 0) {
        int need_default = 0;
        for (int i = 0; i < g->n_nodes; i++) {
            if (sqzc_layer_weight(g, i) < 0) continue;
            int conv = sqzc_layer_is_conv(g, i);
            if ((conv && r->bits_conv) || (!conv && r->bits_fc)) continue;
            int named = 0;
            for (int k = 0; k < r->n_share_layers; k++)
                if (g->nodes[i].name && strcmp(g->nodes[i].name, r->share_layers[k].name) == 0)
                    named = 1;
            if (!named) need_default = 1;
        }
        if (need_default) {
            snprintf(err, err_len,
                     "recipe: share.bits is needed for the layers not covered by "
                     "share.bits.conv / share.bits.fc / share.layer.<node>");
            return -1;
        }
    }
    if (r->fp16 && !r->share) {
        snprintf(err, err_len, "recipe: share.%s needs weight sharing (share.bits)",
                 r->fp16 == SQZC_CENTROIDS_GRID ? "grid" : "fp16");
        return -1;
    }
    return 0;
}

char *sqzc_recipe_to_text(const sqzc_recipe *r) {
    size_t cap = 512;
    for (int i = 0; i < r->n_prune_layers; i++) cap += strlen(r->prune_layers[i].name) + 48;
    for (int i = 0; i < r->n_share_layers; i++) cap += strlen(r->share_layers[i].name) + 48;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t n = 0;
#define APPEND(...)                                                                                \
    do {                                                                                           \
        int w_ = snprintf(s + n, cap - n, __VA_ARGS__);                                            \
        if (w_ > 0) n += (size_t)w_ < cap - n ? (size_t)w_ : cap - n - 1;                          \
    } while (0)
    s[0] = '\0';
    if (r->prune) {
        APPEND("prune.sparsity = %g\nprune.scope = %s\n", (double)r->sparsity,
               r->prune_global ? "global" : "layer");
        for (int i = 0; i < r->n_prune_layers; i++)
            APPEND("prune.layer.%s = %g\n", r->prune_layers[i].name,
                   (double)r->prune_layers[i].value);
    }
    if (r->share) {
        if (r->bits) APPEND("share.bits = %d\n", r->bits);
        if (r->bits_conv) APPEND("share.bits.conv = %d\n", r->bits_conv);
        if (r->bits_fc) APPEND("share.bits.fc = %d\n", r->bits_fc);
        for (int i = 0; i < r->n_share_layers; i++)
            APPEND("share.layer.%s = %d\n", r->share_layers[i].name, (int)r->share_layers[i].value);
        if (r->fp16 == SQZC_CENTROIDS_GRID)
            APPEND("share.grid = 1\n");
        else
            APPEND("share.fp16 = %d\n", r->fp16 ? 1 : 0);
    }
    APPEND("bias.bits = %d\n", r->bias_bits);
    APPEND("huffman = %d\n", r->huffman ? 1 : 0);
#undef APPEND
    return s;
}

int sqzc_recipe_apply(sqzc_graph *g, const sqzc_recipe *r, char *err, size_t err_len) {
    if (sqzc_recipe_check(r, g, err, err_len) != 0) return -1;
    if (r->prune) {
        sqzc_prune_options po;
        memset(&po, 0, sizeof po);
        po.sparsity = r->sparsity;
        po.global = r->prune_global;
        po.layers = r->prune_layers;
        po.n_layers = r->n_prune_layers;
        if (sqzc_prune_magnitude(g, &po, err, err_len) != 0) return -1;
    }
    if (r->share) {
        sqzc_share_options so;
        memset(&so, 0, sizeof so);
        so.bits = r->bits ? r->bits : (r->bits_fc ? r->bits_fc : r->bits_conv);
        if (!so.bits && r->n_share_layers > 0) so.bits = (int)r->share_layers[0].value;
        so.bits_conv = r->bits_conv;
        so.bits_fc = r->bits_fc;
        so.layers = r->share_layers;
        so.n_layers = r->n_share_layers;
        so.fp16 = r->fp16;
        so.huffman = r->huffman;
        if (sqzc_weight_share(g, &so, err, err_len) != 0) return -1;
        /* Huffman-coded: dense or sparse by the coded size */
        for (int t = 0; t < g->n_tensors; t++) {
            sqzc_tensor *x = &g->tensors[t];
            if (!x->f32 || !x->enc || x->enc->codebook_bits <= 0 || !x->enc->huffman) continue;
            if (sqzc_encoding_choose_layout(x->f32, (uint64_t)sqz_shape_numel(&x->shape), x->enc) !=
                0) {
                snprintf(err, err_len, "recipe: cannot encode weight '%s'", x->name);
                return -1;
            }
        }
    }
    char *text = sqzc_recipe_to_text(r);
    if (!text || sqzc_graph_set_meta(g, "compress.recipe", text) != 0) {
        free(text);
        snprintf(err, err_len, "recipe: out of memory");
        return -1;
    }
    free(text);
    return 0;
}

/* ------------------------------------------------------------ accounting */

/* Bits of a Huffman code of the symbol counts (exact code lengths by
 * repeated merging of the two lightest; a single symbol costs 1 bit). */
static double huffman_bits(const int64_t *count, int nsym, int *used) {
    int64_t w[512];
    int n = 0;
    double total = 0.0;
    for (int i = 0; i < nsym; i++)
        if (count[i] > 0) w[n++] = count[i];
    *used = n;
    if (n == 0) return 0.0;
    if (n == 1) return (double)w[0];
    /* total code length = sum of the weights of every merged node */
    while (n > 1) {
        int a = 0, b = 1;
        if (w[b] < w[a]) a = 1, b = 0;
        for (int i = 2; i < n; i++) {
            if (w[i] < w[a]) {
                b = a;
                a = i;
            } else if (w[i] < w[b]) {
                b = i;
            }
        }
        int64_t m = w[a] + w[b];
        total += (double)m;
        int lo = a < b ? a : b, hi = a < b ? b : a;
        w[lo] = m;
        w[hi] = w[n - 1];
        n--;
    }
    return total;
}

static void layer_sizes(const sqzc_tensor *t, sqzc_layer_stats *st) {
    const int64_t n = st->params;
    const float *w = t->f32;
    const sqzc_encoding *e = t->enc;
    st->fp32 = (double)n * 4.0;
    int gb = 0;
    int64_t sbits = 0;
    st->pruned = st->fp32;
    if (st->zeros > 0 && sqzc_sparse_plan(w, n, 32, &gb, &sbits)) st->pruned = (double)sbits / 8.0;
    st->entries = n;
    if (e && e->sparse && e->gap_bits > 0) st->entries = sqzc_sparse_entries(w, n, e->gap_bits);
    if (!e || e->codebook_bits <= 0) {
        st->shared = st->huffman = st->pruned;
        return;
    }
    double table = e->linear ? 6.0 : (double)e->n_centroids * (e->centroid_f16 ? 2.0 : 4.0);
    if (!e->linear && e->n_centroids > 0 && e->n_centroids <= 256) {
        uint8_t tab[6 + 4 * 256];
        size_t gl = sqzc_grid_table(e->centroids, e->n_centroids, tab);
        if (gl > 0 && (double)gl < table) table = (double)gl;
    }
    const int vb = e->codebook_bits;
    double shared_bits = e->sparse ? (double)st->entries * (vb + e->gap_bits) : (double)n * vb;
    st->shared = shared_bits / 8.0 + table;
    st->huffman = st->shared;
    if (!e->huffman) return;
    /* symbol streams: centroid indices, and gaps when sparse */
    int64_t icount[256], gcount[256];
    memset(icount, 0, sizeof icount);
    memset(gcount, 0, sizeof gcount);
    int zero_idx = 0;
    for (int j = 0; j < e->n_centroids; j++)
        if (e->centroids[j] == 0.0f) zero_idx = j;
    if (e->sparse) {
        const int64_t span = (int64_t)1 << e->gap_bits;
        int64_t run = 0;
        for (int64_t i = 0; i < n; i++) {
            if (w[i] == 0.0f) {
                run++;
                continue;
            }
            int64_t fill = run / span;
            icount[zero_idx] += fill;
            gcount[span - 1] += fill;
            gcount[run % span]++;
            icount[sqzc_nearest_centroid(e->centroids, e->n_centroids, w[i]) & 255]++;
            run = 0;
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            icount[sqzc_nearest_centroid(e->centroids, e->n_centroids, w[i]) & 255]++;
    }
    int ui = 0, ug = 0;
    double hb = huffman_bits(icount, 256, &ui);
    double gbits = e->sparse ? huffman_bits(gcount, 256, &ug) : 0.0;
    /* each stream falls back to fixed width when coding does not pay */
    double ibytes = hb / 8.0 + ui, ifixed = (double)st->entries * vb / 8.0;
    double gbytes = gbits / 8.0 + ug, gfixed = (double)st->entries * e->gap_bits / 8.0;
    double h = (ibytes < ifixed ? ibytes : ifixed) + table;
    if (e->sparse) h += gbytes < gfixed ? gbytes : gfixed;
    if (h < st->huffman) st->huffman = h;
}

int sqzc_layer_stats_collect(const sqzc_graph *g, sqzc_layer_stats **out) {
    *out = NULL;
    sqzc_layer_stats *s = calloc((size_t)g->n_nodes + 1, sizeof *s);
    char *seen = calloc((size_t)g->n_tensors + 1, 1);
    if (!s || !seen) {
        free(s);
        free(seen);
        return -1;
    }
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        int t = sqzc_layer_weight(g, i);
        if (t < 0 || seen[t]) continue;
        seen[t] = 1;
        const sqzc_tensor *tt = &g->tensors[t];
        sqzc_layer_stats *st = &s[n++];
        st->node = g->nodes[i].name ? g->nodes[i].name : "";
        st->tensor = tt->name ? tt->name : "";
        st->op = g->nodes[i].op;
        st->params = sqz_shape_numel(&tt->shape);
        for (int64_t k = 0; k < st->params; k++) st->zeros += tt->f32[k] == 0.0f;
        if (tt->enc) {
            st->bits = tt->enc->codebook_bits;
            st->sparse = tt->enc->sparse;
            st->gap_bits = tt->enc->gap_bits;
            st->n_centroids = tt->enc->n_centroids;
        }
        layer_sizes(tt, st);
    }
    free(seen);
    *out = s;
    return n;
}
