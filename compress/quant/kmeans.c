/* kmeans.c - weight sharing: 1-D k-means (linear init, Lloyd on sorted
 * values with prefix sums and binary-searched cluster boundaries) and the
 * pass that applies it to the layer weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqzc/weight_share.h"

static int cmp_float(const void *pa, const void *pb) {
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a > b) - (a < b);
}

int sqzc_nearest_centroid(const float *c, int k, float v) {
    /* first centroid >= v, then compare with its lower neighbour */
    int lo = 0, hi = k;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (c[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= k) return k - 1;
    if (lo == 0) return 0;
    return fabsf(v - c[lo - 1]) <= fabsf(c[lo] - v) ? lo - 1 : lo;
}

/* First index in sorted s[from..n) whose value is strictly nearer to hi than
 * to lo (lo < hi); s is ascending, so the predicate is monotone. */
static int64_t boundary(const float *s, int64_t from, int64_t n, double lo, double hi) {
    int64_t a = from, b = n;
    while (a < b) {
        int64_t mid = a + (b - a) / 2;
        double v = s[mid];
        if (fabs(v - hi) < fabs(v - lo))
            b = mid;
        else
            a = mid + 1;
    }
    return a;
}

typedef struct wpair {
    float v, w;
} wpair;

static int cmp_wpair(const void *pa, const void *pb) {
    float a = ((const wpair *)pa)->v, b = ((const wpair *)pb)->v;
    return (a > b) - (a < b);
}

/* k-means of x (weights wt, NULL = all 1): Lloyd on the sorted values, cluster
 * sums from prefix sums of w and w*x; a cluster of zero total weight keeps its
 * centroid. */
static int kmeans_core(const float *x, const float *wt, int64_t n, int k, int max_iter, float *c) {
    if (n < 0 || k < 1 || (n > 0 && (!x || !c))) return -1;
    if (n == 0) return 0;
    if (max_iter <= 0) max_iter = 1000;
    if ((uint64_t)n > SIZE_MAX / sizeof(wpair) - 1) return -1;
    float *s = malloc((size_t)n * sizeof *s);
    double *pre = malloc(((size_t)n + 1) * sizeof *pre);
    double *pw = wt ? malloc(((size_t)n + 1) * sizeof *pw) : NULL;
    wpair *pairs = wt ? malloc((size_t)n * sizeof *pairs) : NULL;
    double *cen = malloc((size_t)k * sizeof *cen);
    int64_t *bnd = malloc(((size_t)k + 1) * sizeof *bnd);
    int64_t *prev = malloc(((size_t)k + 1) * sizeof *prev);
    int out = -1;
    if (!s || !pre || !cen || !bnd || !prev || (wt && (!pw || !pairs))) goto done;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || (wt && !(wt[i] >= 0.0f && isfinite(wt[i])))) goto done;
        s[i] = x[i];
    }
    if (wt) {
        for (int64_t i = 0; i < n; i++) {
            pairs[i].v = x[i];
            pairs[i].w = wt[i];
        }
        qsort(pairs, (size_t)n, sizeof *pairs, cmp_wpair);
        pre[0] = pw[0] = 0.0;
        for (int64_t i = 0; i < n; i++) {
            s[i] = pairs[i].v;
            pw[i + 1] = pw[i] + (double)pairs[i].w;
            pre[i + 1] = pre[i] + (double)pairs[i].w * (double)pairs[i].v;
        }
    } else {
        qsort(s, (size_t)n, sizeof *s, cmp_float);
        pre[0] = 0.0;
        for (int64_t i = 0; i < n; i++) pre[i + 1] = pre[i] + (double)s[i];
    }
    const double lo = s[0], hi = s[n - 1];
    /* linear initialisation between min and max */
    for (int j = 0; j < k; j++)
        cen[j] = k == 1 ? (lo + hi) / 2 : lo + (hi - lo) * (double)j / (double)(k - 1);
    for (int j = 0; j <= k; j++) prev[j] = -1;
    for (int it = 0; it < max_iter; it++) {
        /* cluster j holds s[bnd[j] .. bnd[j+1]) */
        bnd[0] = 0;
        bnd[k] = n;
        for (int j = 1; j < k; j++) {
            int64_t b = cen[j] > cen[j - 1] ? boundary(s, bnd[j - 1], n, cen[j - 1], cen[j]) : n;
            bnd[j] = b < bnd[j - 1] ? bnd[j - 1] : b;
        }
        int same = 1;
        for (int j = 0; j <= k; j++)
            if (bnd[j] != prev[j]) same = 0;
        if (same) break;
        memcpy(prev, bnd, ((size_t)k + 1) * sizeof *bnd);
        for (int j = 0; j < k; j++) {
            double cnt = wt ? pw[bnd[j + 1]] - pw[bnd[j]] : (double)(bnd[j + 1] - bnd[j]);
            if (cnt > 0) cen[j] = (pre[bnd[j + 1]] - pre[bnd[j]]) / cnt;
        }
        /* a duplicate centroid (empty cluster at a mean) never wins a point:
         * ties go to the lower one, and the boundary search skips it */
    }
    out = 0;
    for (int j = 0; j < k; j++) {
        if (bnd[j + 1] <= bnd[j]) continue; /* empty cluster */
        double cnt = wt ? pw[bnd[j + 1]] - pw[bnd[j]] : (double)(bnd[j + 1] - bnd[j]);
        float v = cnt > 0 ? (float)((pre[bnd[j + 1]] - pre[bnd[j]]) / cnt) : (float)cen[j];
        /* the mean of a range lies within it; keep it there despite rounding */
        if (v < s[bnd[j]]) v = s[bnd[j]];
        if (v > s[bnd[j + 1] - 1]) v = s[bnd[j + 1] - 1];
        if (out > 0 && v <= c[out - 1]) continue;
        c[out++] = v;
    }
done:
    free(s);
    free(pre);
    free(pw);
    free(pairs);
    free(cen);
    free(bnd);
    free(prev);
    return out;
}

int sqzc_kmeans_1d(const float *x, int64_t n, int k, int max_iter, float *c) {
    return kmeans_core(x, NULL, n, k, max_iter, c);
}

int sqzc_kmeans_1d_weighted(const float *x, const float *wt, int64_t n, int k, int max_iter,
                            float *c) {
    if (n > 0 && !wt) return -1;
    return kmeans_core(x, wt, n, k, max_iter, c);
}

float sqzc_round_f16(float v) {
    if (v != v) return v;
    const float kMax = 65504.0f;
    if (v >= kMax) return kMax;
    if (v <= -kMax) return -kMax;
    float a = fabsf(v);
    if (a == 0.0f) return v;
    int e;
    frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    /* fp16: 11 significant bits for normals (e >= -13); subnormals share the
     * quantum 2^-24 */
    int q = e - 11;
    if (q < -24) q = -24;
    float scaled = ldexpf(a, -q); /* exact: a power-of-two scaling */
    float r = nearbyintf(scaled); /* default rounding mode: ties to even */
    float out = ldexpf(r, q);
    if (out > kMax) out = kMax;
    return v < 0 ? -out : out;
}

int sqzc_share_array(float *w, int64_t n, int bits, int fp16, float *c) {
    return sqzc_share_array_weighted(w, NULL, n, bits, fp16, c);
}

int sqzc_share_array_weighted(float *w, const float *imp, int64_t n, int bits, int fp16, float *c) {
    if (bits < 1 || bits > 8 || n < 0 || (n > 0 && (!w || !c))) return -1;
    const int ncode = 1 << bits;
    int64_t nz = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(w[i])) return -1;
        if (w[i] != 0.0f) nz++;
    }
    int has_zero = nz < n;
    int k = ncode - has_zero;
    if (nz == 0) {
        for (int64_t i = 0; i < n; i++) w[i] = 0.0f;
        if (n == 0) return 0;
        c[0] = 0.0f;
        return 1;
    }
    float *buf = malloc((size_t)nz * sizeof *buf);
    float *bw = imp ? malloc((size_t)nz * sizeof *bw) : NULL;
    float *cc = malloc(((size_t)ncode + 1) * sizeof *cc);
    if (!buf || !cc || (imp && !bw)) {
        free(buf);
        free(bw);
        free(cc);
        return -1;
    }
    int64_t p = 0;
    for (int64_t i = 0; i < n; i++)
        if (w[i] != 0.0f) {
            if (imp) bw[p] = imp[i];
            buf[p++] = w[i];
        }
    int m =
        imp ? sqzc_kmeans_1d_weighted(buf, bw, nz, k, 0, cc) : sqzc_kmeans_1d(buf, nz, k, 0, cc);
    free(buf);
    free(bw);
    if (m < 0) {
        free(cc);
        return -1;
    }
    /* grid: step 2^floor(log2(range / 2^11)) (error <= range / 2^12, about
     * fp16's on the largest centroid), so that few table bytes hold it */
    float gstep = 0.0f;
    if (fp16 == SQZC_CENTROIDS_GRID) {
        float range = m > 1 ? cc[m - 1] - cc[0] : fabsf(cc[0]);
        int ex;
        (void)frexpf(range > 0.0f ? range : 1.0f, &ex); /* range in [2^(ex-1), 2^ex) */
        gstep = ldexpf(1.0f, ex - 1 - 11);
    }
    if (fp16) {
        /* round, keep sorted and distinct (rounding is monotone) */
        int q = 0;
        for (int j = 0; j < m; j++) {
            float r = gstep > 0.0f ? nearbyintf(cc[j] / gstep) * gstep : sqzc_round_f16(cc[j]);
            if (q > 0 && r == cc[q - 1]) continue;
            cc[q++] = r;
        }
        m = q;
    }
    for (int64_t i = 0; i < n; i++) {
        if (w[i] == 0.0f) {
            w[i] = 0.0f; /* no -0 */
            continue;
        }
        w[i] = cc[sqzc_nearest_centroid(cc, m, w[i])];
        if (w[i] == 0.0f) {
            w[i] = 0.0f; /* an fp16 centroid that rounded to zero */
            has_zero = 1;
        }
    }
    /* codebook: the centroids, with 0 in place when the tensor holds zeros */
    int out = 0, zero_done = !has_zero;
    for (int j = 0; j < m; j++) {
        if (cc[j] == 0.0f) continue;
        if (!zero_done && cc[j] > 0.0f) {
            c[out++] = 0.0f;
            zero_done = 1;
        }
        c[out++] = cc[j];
    }
    if (!zero_done) c[out++] = 0.0f;
    free(cc);
    return out;
}

static int bits_for(int n_centroids) {
    int b = 1;
    while ((1 << b) < n_centroids) b++;
    return b;
}

int sqzc_weight_share(sqzc_graph *g, const sqzc_share_options *o, char *err, size_t err_len) {
    int bad = o->bits < 2 || o->bits > 8 ||
              (o->bits_conv && (o->bits_conv < 2 || o->bits_conv > 8)) ||
              (o->bits_fc && (o->bits_fc < 2 || o->bits_fc > 8));
    if (bad) {
        snprintf(err, err_len, "share: bits must be 2..8 (got %d, conv %d, fc %d)", o->bits,
                 o->bits_conv, o->bits_fc);
        return -1;
    }
    for (int k = 0; k < o->n_layers; k++) {
        const sqzc_layer_value *lv = &o->layers[k];
        if (!(lv->value >= 2.0f && lv->value <= 8.0f) || lv->value != floorf(lv->value)) {
            snprintf(err, err_len, "share: bits %g for layer '%s' must be an integer 2..8",
                     (double)lv->value, lv->name);
            return -1;
        }
        int found = 0;
        for (int i = 0; i < g->n_nodes && !found; i++)
            found = sqzc_layer_weight(g, i) >= 0 && g->nodes[i].name &&
                    strcmp(g->nodes[i].name, lv->name) == 0;
        if (!found) {
            snprintf(err, err_len,
                     "share: no layer named '%s' (Conv/ConvTranspose/Gemm/MatMul with a constant "
                     "weight)",
                     lv->name);
            return -1;
        }
    }
    char *seen = calloc((size_t)g->n_tensors + 1, 1);
    float *cb = malloc(256 * sizeof *cb);
    int rc = -1;
    if (!seen || !cb) {
        snprintf(err, err_len, "share: out of memory");
        goto done;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        int t = sqzc_layer_weight(g, i);
        if (t < 0 || seen[t]) continue;
        seen[t] = 1;
        int bits = o->bits;
        if (sqzc_layer_is_conv(g, i) && o->bits_conv) bits = o->bits_conv;
        if (!sqzc_layer_is_conv(g, i) && o->bits_fc) bits = o->bits_fc;
        for (int k = 0; k < o->n_layers; k++)
            if (g->nodes[i].name && strcmp(g->nodes[i].name, o->layers[k].name) == 0)
                bits = (int)o->layers[k].value;
        sqzc_tensor *tt = &g->tensors[t];
        int m = sqzc_share_array(tt->f32, sqz_shape_numel(&tt->shape), bits, o->fp16, cb);
        if (m < 0) {
            int finite = 1;
            for (int64_t j = 0; j < sqz_shape_numel(&tt->shape); j++)
                if (!isfinite(tt->f32[j])) finite = 0;
            snprintf(err, err_len, "share: %s weight '%s' of node '%s'",
                     finite ? "out of memory sharing" : "non-finite value in", tt->name,
                     g->nodes[i].name ? g->nodes[i].name : "?");
            goto done;
        }
        sqzc_encoding e;
        memset(&e, 0, sizeof e);
        if (tt->enc) e = *tt->enc;
        e.codebook_bits = bits_for(m);
        e.centroids = cb;
        e.n_centroids = m;
        e.centroid_f16 = o->fp16 == 1;
        e.huffman = o->huffman != 0;
        if (sqzc_tensor_set_encoding(g, t, &e) != 0 || sqzc_update_sparse_request(g, t) != 0) {
            snprintf(err, err_len, "share: out of memory");
            goto done;
        }
    }
    rc = 0;
done:
    free(seen);
    free(cb);
    return rc;
}

int sqzc_share_linear(float *w, int64_t n, int bits, float *c, sqzc_encoding *e) {
    if (bits < 2 || bits > 8 || n < 1 || !w || !c || !e) return -1;
    float mn = w[0], mx = w[0];
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(w[i])) return -1;
        mn = w[i] < mn ? w[i] : mn;
        mx = w[i] > mx ? w[i] : mx;
    }
    float s = (float)(((double)mx - (double)mn) / (double)((1 << bits) - 2));
    if (mx == mn) s = mx != 0.0f ? fabsf(mx) : 1.0f;
    if (!(s >= 0x1p-100f) || !isfinite(s)) return -1;
    for (int tries = 0; tries < 4; tries++) { /* rounding at the ends may need a wider step */
        double qlo = nearbyint((double)mn / (double)s), qhi = nearbyint((double)mx / (double)s);
        if (fabs(qlo) > (double)(1 << 24) || fabs(qhi) > (double)(1 << 24)) return -1;
        if (qhi - qlo + 1 <= (double)(1 << bits)) {
            int64_t lo = (int64_t)qlo, nc = (int64_t)qhi - lo + 1;
            for (int64_t i = 0; i < n; i++) w[i] = (float)(int64_t)nearbyint((double)w[i] / s) * s;
            for (int64_t j = 0; j < nc; j++) c[j] = (float)(j + lo) * s;
            memset(e, 0, sizeof *e);
            int k = 1;
            while ((1 << k) < nc) k++;
            e->codebook_bits = k;
            e->centroids = c;
            e->n_centroids = (int)nc;
            e->linear = 1;
            e->lin_offset = (int32_t)lo;
            e->lin_step = s;
            return (int)nc;
        }
        s = nextafterf(s, INFINITY) * 1.0001f;
    }
    return -1;
}
