/* refit.c - least-squares reconstruction of pruned layers (see
 * sqzc/prune_refit.h). Activations are captured by running the graph in the
 * runtime with the layer input appended to the graph outputs. */
#include "sqzc/prune_refit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqz/sqz.h"
#include "sqzc/writer.h"

/* Run g on n samples and copy tensor t for every sample into *out (malloc'd,
 * n * per floats); *shape gets t's per-sample shape (batch 1). */
static int capture(sqzc_graph *g, int t, const float *x, int n, float **out, sqz_shape *shape,
                   char *err, size_t err_len) {
    *out = NULL;
    int32_t *outs = malloc(((size_t)g->n_outputs + 1) * sizeof *outs);
    if (!outs) goto oom;
    memcpy(outs, g->outputs, (size_t)g->n_outputs * sizeof *outs);
    outs[g->n_outputs] = t;
    int32_t *saved = g->outputs;
    int n_saved = g->n_outputs;
    g->outputs = outs;
    g->n_outputs++;
    uint8_t *buf = NULL;
    size_t size = 0;
    int rc = sqzc_serialize(g, &buf, &size, err, err_len);
    g->outputs = saved;
    g->n_outputs = n_saved;
    free(outs);
    if (rc != 0) return -1;
    sqz_model *m = NULL;
    sqz_session *s = NULL;
    sqz_status st;
    memset(&st, 0, sizeof st);
    if (sqz_model_load_buffer(buf, size, &m, &st) != SQZ_OK) {
        free(buf);
        snprintf(err, err_len, "refit: %s", st.msg);
        return -1;
    }
    free(buf);
    sqz_shape in_shape = sqz_model_input_shape(m, 0);
    int64_t in_per = sqz_shape_numel(&in_shape) / (in_shape.dims[0] > 0 ? in_shape.dims[0] : 1);
    const int B = 64;
    int bsz = n < B ? n : B;
    sqz_input_shape is;
    is.name = sqz_model_input_name(m, 0);
    is.shape = in_shape;
    is.shape.dims[0] = bsz;
    sqz_session_options so;
    sqz_session_options_init(&so);
    so.num_threads = 1;
    so.input_shapes = &is;
    so.n_input_shapes = 1;
    float *pad = NULL;
    rc = -1;
    if (sqz_session_create(m, &so, &s, &st) != SQZ_OK) {
        snprintf(err, err_len, "refit: %s", st.msg);
        goto done;
    }
    int64_t per = 0;
    pad = calloc((size_t)(bsz * in_per), sizeof *pad);
    if (!pad) goto done_oom;
    for (int i0 = 0; i0 < n; i0 += bsz) {
        int cnt = n - i0 < bsz ? n - i0 : bsz;
        memcpy(pad, x + (size_t)i0 * in_per, (size_t)(cnt * in_per) * sizeof *pad);
        if (sqz_session_set_input(s, 0, pad, (size_t)(bsz * in_per), &st) != SQZ_OK ||
            sqz_session_run(s, &st) != SQZ_OK) {
            snprintf(err, err_len, "refit: %s", st.msg);
            goto done;
        }
        const float *y;
        sqz_shape ys;
        if (sqz_session_output(s, n_saved, &y, &ys, &st) != SQZ_OK) {
            snprintf(err, err_len, "refit: %s", st.msg);
            goto done;
        }
        if (!*out) {
            per = sqz_shape_numel(&ys) / bsz;
            *shape = ys;
            shape->dims[0] = 1;
            *out = malloc((size_t)(n * per) * sizeof **out);
            if (!*out) goto done_oom;
        }
        memcpy(*out + (size_t)i0 * per, y, (size_t)(cnt * per) * sizeof **out);
    }
    rc = 0;
    goto done;
done_oom:
    snprintf(err, err_len, "refit: out of memory");
done:
    free(pad);
    sqz_session_free(s);
    sqz_model_free(m);
    if (rc != 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
oom:
    snprintf(err, err_len, "refit: out of memory");
    return -1;
}

/* Layer geometry: rows of the regression are (sample, output position), the
 * columns the K inputs of one output (plus a bias column). */
typedef struct layer {
    int conv;
    int64_t K, N_out;
    int w_col_major; /* W(o, k) at k * N_out + o */
    /* conv */
    int64_t C, H, W, kh, kw, Ho, Wo, sh, sw, dh, dw, ph, pw;
} layer;

static int layer_of(const sqzc_graph *g, int ni, layer *L) {
    const sqzc_node *n = &g->nodes[ni];
    memset(L, 0, sizeof *L);
    if (n->n_in < 2 || n->in[1] < 0 || !g->tensors[n->in[1]].f32) return -1;
    if (n->n_in > 2 && n->in[2] >= 0 && !g->tensors[n->in[2]].f32) return -1;
    const sqzc_tensor *X = &g->tensors[n->in[0]], *Wt = &g->tensors[n->in[1]],
                      *Y = &g->tensors[n->out[0]];
    sqz_node v;
    sqzc_node_view(g, ni, &v);
    if (n->op == SQZ_OP_CONV) {
        if (X->shape.ndim != 4 || Wt->shape.ndim != 4 || sqz_attr_int(&v, "group", 1) != 1)
            return -1;
        const char *ap = sqz_attr_str(&v, "auto_pad", "NOTSET");
        const int64_t *s, *d, *p;
        int ns = sqz_attr_ints(&v, "strides", &s), nd = sqz_attr_ints(&v, "dilations", &d),
            np = sqz_attr_ints(&v, "pads", &p);
        L->conv = 1;
        L->C = X->shape.dims[1];
        L->H = X->shape.dims[2];
        L->W = X->shape.dims[3];
        L->N_out = Wt->shape.dims[0];
        L->kh = Wt->shape.dims[2];
        L->kw = Wt->shape.dims[3];
        L->Ho = Y->shape.dims[2];
        L->Wo = Y->shape.dims[3];
        L->sh = ns >= 2 ? s[0] : 1;
        L->sw = ns >= 2 ? s[1] : 1;
        L->dh = nd >= 2 ? d[0] : 1;
        L->dw = nd >= 2 ? d[1] : 1;
        if (strcmp(ap, "NOTSET") == 0 || strcmp(ap, "VALID") == 0) {
            L->ph = np >= 4 && strcmp(ap, "NOTSET") == 0 ? p[0] : 0;
            L->pw = np >= 4 && strcmp(ap, "NOTSET") == 0 ? p[1] : 0;
        } else {
            int64_t th = (L->Ho - 1) * L->sh + (L->kh - 1) * L->dh + 1 - L->H;
            int64_t tw = (L->Wo - 1) * L->sw + (L->kw - 1) * L->dw + 1 - L->W;
            th = th > 0 ? th : 0;
            tw = tw > 0 ? tw : 0;
            int upper = strcmp(ap, "SAME_UPPER") == 0;
            L->ph = upper ? th / 2 : th - th / 2;
            L->pw = upper ? tw / 2 : tw - tw / 2;
        }
        L->K = L->C * L->kh * L->kw;
        if (Wt->shape.dims[1] != L->C) return -1;
        return 0;
    }
    if ((n->op != SQZ_OP_GEMM && n->op != SQZ_OP_MATMUL) || X->shape.ndim != 2 ||
        Wt->shape.ndim != 2)
        return -1;
    if (n->op == SQZ_OP_GEMM &&
        (sqz_attr_int(&v, "transA", 0) != 0 || sqz_attr_float(&v, "alpha", 1.0f) != 1.0f ||
         sqz_attr_float(&v, "beta", 1.0f) != 1.0f))
        return -1;
    int tb = n->op == SQZ_OP_GEMM && sqz_attr_int(&v, "transB", 0);
    L->K = X->shape.dims[1];
    L->N_out = tb ? Wt->shape.dims[0] : Wt->shape.dims[1];
    L->w_col_major = !tb;
    if (n->n_in > 2 && n->in[2] >= 0 && sqz_shape_numel(&g->tensors[n->in[2]].shape) != L->N_out)
        return -1;
    return 0;
}

/* Row r (0 <= r < rows) of the regression for one sample's activation x:
 * the K inputs of output position r. */
static void gather_row(const layer *L, const float *x, int64_t pos, float *row) {
    if (!L->conv) {
        memcpy(row, x, (size_t)L->K * sizeof *row);
        return;
    }
    int64_t oy = pos / L->Wo, ox = pos % L->Wo, k = 0;
    for (int64_t c = 0; c < L->C; c++)
        for (int64_t i = 0; i < L->kh; i++)
            for (int64_t j = 0; j < L->kw; j++, k++) {
                int64_t iy = oy * L->sh - L->ph + i * L->dh, ix = ox * L->sw - L->pw + j * L->dw;
                row[k] = (iy >= 0 && iy < L->H && ix >= 0 && ix < L->W)
                             ? x[(c * L->H + iy) * L->W + ix]
                             : 0.0f;
            }
}

/* Cholesky solve of the SPD system A x = b (n x n, row-major, overwritten). */
static int chol_solve(double *A, double *b, int n) {
    for (int j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (int k = 0; k < j; k++) s -= A[j * n + k] * A[j * n + k];
        if (!(s > 0)) return -1;
        double d = sqrt(s);
        A[j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (int k = 0; k < j; k++) t -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = t / d;
        }
    }
    for (int i = 0; i < n; i++) {
        double t = b[i];
        for (int k = 0; k < i; k++) t -= A[i * n + k] * b[k];
        b[i] = t / A[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double t = b[i];
        for (int k = i + 1; k < n; k++) t -= A[k * n + i] * b[k];
        b[i] = t / A[i * n + i];
    }
    return 0;
}

typedef struct sal_item {
    float s;
    int64_t idx;
} sal_item;

static int cmp_sal(const void *pa, const void *pb) {
    const sal_item *a = pa, *b = pb;
    if (a->s != b->s) return a->s < b->s ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Re-choose which weights are zero, keeping their number: the smallest
 * |w_orig| * std(x_k) (inputs that barely vary cost little: the refit bias
 * absorbs their mean). G is the Gram with the bias column K. */
static int remask(float *W, const float *W0, const double *G, int64_t K, int64_t NO, int col_major,
                  double rows) {
    int64_t n = K * NO, z = 0;
    for (int64_t i = 0; i < n; i++) z += W[i] == 0.0f;
    if (z == 0 || z == n) return 0;
    sal_item *it = malloc((size_t)n * sizeof *it);
    if (!it) return -1;
    int64_t D = K + 1;
    for (int64_t o = 0; o < NO; o++)
        for (int64_t k = 0; k < K; k++) {
            int64_t i = col_major ? k * NO + o : o * K + k;
            double mean = G[k * D + K] / rows, var = G[k * D + k] / rows - mean * mean;
            it[i].s = (float)(fabs((double)W0[i]) * sqrt(var > 0 ? var : 0));
            it[i].idx = i;
        }
    qsort(it, (size_t)n, sizeof *it, cmp_sal);
    for (int64_t i = 0; i < n; i++) W[i] = W0[i] != 0.0f ? W0[i] : 1e-30f;
    for (int64_t i = 0; i < z; i++) W[it[i].idx] = 0.0f;
    free(it);
    return 0;
}

/* Unstructured: OBS-style pruning with compensation (SparseGPT, Frantar &
 * Alistarh 2023) on the least-squares solution. The layer keeps its number
 * of zeros; which weights are zero is re-chosen per block of 128 columns by
 * w^2 / [U]_jj^2, and each pruned weight's error is pushed into the not yet
 * processed columns (the bias column last, never pruned). G (D x D, bias
 * column K = D - 1 when has_b) and C (D x NO) as in refit_layer. */
static int sparsegpt(float *W, float *bias, const double *G, const double *C, int64_t K, int64_t NO,
                     int col_major, int has_b, double lam) {
    int64_t D = K + (has_b ? 1 : 0), z = 0;
    for (int64_t i = 0; i < K * NO; i++) z += W[i] == 0.0f;
    double *H = malloc((size_t)(D * D) * sizeof *H), *Wd = malloc((size_t)(NO * D) * sizeof *Wd);
    double *E = malloc((size_t)(NO * 128) * sizeof *E), *col = malloc((size_t)D * sizeof *col);
    sal_item *it = malloc((size_t)(NO * 128) * sizeof *it);
    uint8_t *mask = malloc((size_t)(NO * 128)), *pm = calloc((size_t)(NO * K), 1);
    int rc = -1;
    if (!H || !Wd || !E || !col || !it || !mask || !pm) goto done;
    int64_t Dg = K + 1; /* G / C always carry the bias column at K */
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < D; j++) H[i * D + j] = G[i * Dg + j] + (i == j ? lam : 0.0);
    /* Cholesky H = L L^T (in place, lower) */
    for (int64_t j = 0; j < D; j++) {
        double sum = H[j * D + j];
        for (int64_t k = 0; k < j; k++) sum -= H[j * D + k] * H[j * D + k];
        if (!(sum > 0)) goto done;
        double d = sqrt(sum);
        H[j * D + j] = d;
        for (int64_t i = j + 1; i < D; i++) {
            double t = H[i * D + j];
            for (int64_t k = 0; k < j; k++) t -= H[i * D + k] * H[j * D + k];
            H[i * D + j] = t / d;
        }
    }
    /* least-squares weights: H w_o = C[:, o] */
    for (int64_t o = 0; o < NO; o++) {
        for (int64_t i = 0; i < D; i++) {
            double t = C[i * NO + o];
            for (int64_t k = 0; k < i; k++) t -= H[i * D + k] * col[k];
            col[i] = t / H[i * D + i];
        }
        for (int64_t i = D - 1; i >= 0; i--) {
            double t = col[i];
            for (int64_t k = i + 1; k < D; k++) t -= H[k * D + i] * col[k];
            col[i] = t / H[i * D + i];
        }
        memcpy(Wd + o * D, col, (size_t)D * sizeof *col);
    }
    /* H^-1 = L^-T L^-1; its upper Cholesky factor U (H^-1 = U^T U) is
     * computed by inverting L into H (lower, L^-1), forming H^-1, factoring. */
    double *Li = malloc((size_t)(D * D) * sizeof *Li);
    if (!Li) goto done;
    memset(Li, 0, (size_t)(D * D) * sizeof *Li);
    for (int64_t j = 0; j < D; j++) {
        Li[j * D + j] = 1.0 / H[j * D + j];
        for (int64_t i = j + 1; i < D; i++) {
            double t = 0;
            for (int64_t k = j; k < i; k++) t -= H[i * D + k] * Li[k * D + j];
            Li[i * D + j] = t / H[i * D + i];
        }
    }
    /* Hinv[i][j] = sum_k Li[k][i] Li[k][j], stored in H */
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = i; j < D; j++) {
            double t = 0;
            for (int64_t k = j; k < D; k++) t += Li[k * D + i] * Li[k * D + j];
            H[i * D + j] = H[j * D + i] = t;
        }
    free(Li);
    /* upper Cholesky: H^-1 = U^T U, U stored in the upper triangle of H */
    for (int64_t i = 0; i < D; i++) {
        double sum = H[i * D + i];
        for (int64_t k = 0; k < i; k++) sum -= H[k * D + i] * H[k * D + i];
        if (!(sum > 0)) goto done;
        double d = sqrt(sum);
        H[i * D + i] = d;
        for (int64_t j = i + 1; j < D; j++) {
            double t = H[i * D + j];
            for (int64_t k = 0; k < i; k++) t -= H[k * D + i] * H[k * D + j];
            H[i * D + j] = t / d;
        }
    }
    double p = (double)z / (double)(K * NO);
    int64_t done_z = 0;
    for (int64_t i1 = 0; i1 < K; i1 += 128) {
        int64_t i2 = i1 + 128 < K ? i1 + 128 : K, bw = i2 - i1, m = 0;
        for (int64_t o = 0; o < NO; o++)
            for (int64_t j = i1; j < i2; j++) {
                double u = H[j * D + j], w = Wd[o * D + j];
                it[m].s = (float)(w * w / (u * u));
                it[m].idx = o * bw + (j - i1);
                m++;
            }
        qsort(it, (size_t)m, sizeof *it, cmp_sal);
        int64_t want = i2 == K ? z - done_z : (int64_t)floor(p * (double)(i2)*NO + 0.5) - done_z;
        if (want > m) want = m;
        if (want < 0) want = 0;
        memset(mask, 0, (size_t)m);
        for (int64_t k = 0; k < want; k++) {
            mask[it[k].idx] = 1;
            pm[(it[k].idx / bw) * K + i1 + it[k].idx % bw] = 1;
        }
        done_z += want;
        for (int64_t j = i1; j < i2; j++) {
            double u = H[j * D + j];
            for (int64_t o = 0; o < NO; o++) {
                double w = Wd[o * D + j];
                double q = mask[o * bw + (j - i1)] ? 0.0 : w;
                double e = (w - q) / u;
                Wd[o * D + j] = q;
                E[o * 128 + (j - i1)] = e;
                if (e != 0.0)
                    for (int64_t k = j + 1; k < i2; k++) Wd[o * D + k] -= e * H[j * D + k];
            }
        }
        /* rest of the columns (incl. the bias) */
        for (int64_t o = 0; o < NO; o++)
            for (int64_t j = i1; j < i2; j++) {
                double e = E[o * 128 + (j - i1)];
                if (e == 0.0) continue;
                for (int64_t k = i2; k < D; k++) Wd[o * D + k] -= e * H[j * D + k];
            }
    }
    for (int64_t o = 0; o < NO; o++) {
        for (int64_t k = 0; k < K; k++) {
            float v = (float)Wd[o * D + k];
            if (pm[o * K + k])
                v = 0.0f;
            else if (v == 0.0f)
                v = 1e-30f; /* the zero count stays exact */
            W[col_major ? k * NO + o : o * K + k] = v;
        }
        if (has_b) bias[o] = (float)Wd[o * D + K];
    }
    rc = 0;
done:
    free(H);
    free(Wd);
    free(E);
    free(col);
    free(it);
    free(mask);
    free(pm);
    return rc;
}

/* Least squares of every row of W on its support (the non-zero weights, plus
 * the bias column when has_b), ridge lam pulling towards the current values.
 * G (D x D, bias column K) and C (D x NO) as in refit_layer; A, bvec, sup
 * scratch of D x D, D, D. A row whose system is singular stays as it is. */
static void solve_rows(float *W, float *bias, const double *G, const double *C, int64_t K,
                       int64_t NO, int col_major, int has_b, double lam, double *A, double *bvec,
                       int64_t *sup) {
    int64_t D = K + 1;
    for (int64_t o = 0; o < NO; o++) {
        int m = 0;
        for (int64_t k = 0; k < K; k++)
            if (W[col_major ? k * NO + o : o * K + k] != 0.0f) sup[m++] = k;
        if (m == 0) continue; /* a removed filter stays removed (bias too) */
        if (has_b) sup[m++] = K;
        for (int a = 0; a < m; a++) {
            for (int b = 0; b < m; b++) A[a * m + b] = G[sup[a] * D + sup[b]];
            double w0 = sup[a] == K ? (double)bias[o]
                                    : (double)W[col_major ? sup[a] * NO + o : o * K + sup[a]];
            A[a * m + a] += lam;
            bvec[a] = C[sup[a] * NO + o] + lam * w0;
        }
        if (chol_solve(A, bvec, m) != 0) continue;
        for (int a = 0; a < m; a++) {
            float v = (float)bvec[a];
            if (sup[a] == K)
                bias[o] = v;
            else
                W[col_major ? sup[a] * NO + o : o * K + sup[a]] = v != 0.0f ? v : 1e-30f;
        }
    }
}

/* conjugate gradient of the gradual steps before the last: at most this many
 * steps, until the squared residual falls below this fraction of the first */
#define GRADUAL_CG 50
#define GRADUAL_CG_TOL 1e-6
/* As solve_rows, approximately: `iters` conjugate-gradient steps per row
 * from the current values (m^2 per step instead of m^3 / 3 per row for the
 * Cholesky; the gradual steps before the last only need a direction).
 * A, bvec, sup scratch: 3 * D doubles in A, D in bvec, D in sup. */
static void cg_rows(float *W, float *bias, const double *G, const double *C, int64_t K, int64_t NO,
                    int col_major, int has_b, double lam, int iters, double *A, double *bvec,
                    int64_t *sup) {
    int64_t D = K + 1;
    double *x = bvec, *r = A, *p = A + D, *q = A + 2 * D;
    for (int64_t o = 0; o < NO; o++) {
        int m = 0;
        for (int64_t k = 0; k < K; k++)
            if (W[col_major ? k * NO + o : o * K + k] != 0.0f) sup[m++] = k;
        if (m == 0) continue;
        if (has_b) sup[m++] = K;
        for (int a = 0; a < m; a++)
            x[a] = sup[a] == K ? (double)bias[o]
                               : (double)W[col_major ? sup[a] * NO + o : o * K + sup[a]];
        /* r = c + lam x_prev - (A + lam) x = c - A x (the ridge pulls to x_prev) */
        double rr = 0;
        for (int a = 0; a < m; a++) {
            const double *ga = G + sup[a] * D;
            double t = C[sup[a] * NO + o];
            for (int b = 0; b < m; b++) t -= ga[sup[b]] * x[b];
            r[a] = t;
            p[a] = t;
            rr += t * t;
        }
        double stop = GRADUAL_CG_TOL * rr;
        for (int it = 0; it < iters && rr > stop; it++) {
            double pq = 0;
            for (int a = 0; a < m; a++) {
                const double *ga = G + sup[a] * D;
                double t = lam * p[a];
                for (int b = 0; b < m; b++) t += ga[sup[b]] * p[b];
                q[a] = t;
                pq += p[a] * t;
            }
            if (!(pq > 0)) break;
            double al = rr / pq, rn = 0;
            for (int a = 0; a < m; a++) {
                x[a] += al * p[a];
                r[a] -= al * q[a];
                rn += r[a] * r[a];
            }
            for (int a = 0; a < m; a++) p[a] = r[a] + (rn / rr) * p[a];
            rr = rn;
        }
        for (int a = 0; a < m; a++) {
            float v = (float)x[a];
            if (sup[a] == K)
                bias[o] = v;
            else
                W[col_major ? sup[a] * NO + o : o * K + sup[a]] = v != 0.0f ? v : 1e-30f;
        }
    }
}

/* Gradual remask: the layer keeps its number of zeros z, reached in steps
 * (densities geometric from 1 to the final one); each step zeros the
 * smallest |w| * std(x_k) of the weights refit at the previous step and
 * refits the rest, so the support is chosen on weights that already
 * compensate for what was removed (iterative hard thresholding with
 * least-squares refits, as the gradual schedules of Zhu & Gupta 2017 do
 * with gradient steps). Starts from the original weights. */
#define GRADUAL_STEPS 6
static int gradual_z(float *W, const float *W0, float *bias, const float *b0, const double *G,
                     const double *C, int64_t K, int64_t NO, int col_major, int has_b, double lam,
                     double *A, double *bvec, int64_t *sup, int64_t z);
static int gradual(float *W, const float *W0, float *bias, const float *b0, const double *G,
                   const double *C, int64_t K, int64_t NO, int col_major, int has_b, double lam,
                   double *A, double *bvec, int64_t *sup) {
    int64_t n = K * NO, z = 0;
    for (int64_t i = 0; i < n; i++) z += W[i] == 0.0f;
    if (z == 0) return 0;
    return gradual_z(W, W0, bias, b0, G, C, K, NO, col_major, has_b, lam, A, bvec, sup, z);
}

static int gradual_z(float *W, const float *W0, float *bias, const float *b0, const double *G,
                     const double *C, int64_t K, int64_t NO, int col_major, int has_b, double lam,
                     double *A, double *bvec, int64_t *sup, int64_t z) {
    int64_t n = K * NO;
    int64_t D = K + 1;
    double rows = G[K * D + K]; /* the bias column's Gram entry counts the rows */
    sal_item *it = malloc((size_t)n * sizeof *it);
    float *sd = malloc((size_t)K * sizeof *sd);
    if (!it || !sd) {
        free(it);
        free(sd);
        return -1;
    }
    for (int64_t k = 0; k < K; k++) {
        double mean = rows > 0 ? G[k * D + K] / rows : 0,
               var = rows > 0 ? G[k * D + k] / rows - mean * mean : 0;
        sd[k] = (float)sqrt(var > 0 ? var : 0);
    }
    memcpy(W, W0, (size_t)n * sizeof *W);
    for (int64_t i = 0; i < n; i++)
        if (W[i] == 0.0f) W[i] = 1e-30f;
    if (has_b) {
        for (int64_t o = 0; o < NO; o++) bias[o] = b0 ? b0[o] : 0.0f;
    }
    double dfin = 1.0 - (double)z / (double)n;
    for (int s = 1; s <= GRADUAL_STEPS; s++) {
        int64_t zs = s == GRADUAL_STEPS
                         ? z
                         : (int64_t)((1.0 - pow(dfin, (double)s / GRADUAL_STEPS)) * (double)n);
        for (int64_t o = 0; o < NO; o++)
            for (int64_t k = 0; k < K; k++) {
                int64_t i = col_major ? k * NO + o : o * K + k;
                /* zeros first (-1), then by saliency */
                it[i].s = W[i] == 0.0f ? -1.0f : fabsf(W[i]) * sd[k];
                it[i].idx = i;
            }
        qsort(it, (size_t)n, sizeof *it, cmp_sal);
        for (int64_t i = 0; i < zs; i++) W[it[i].idx] = 0.0f;
        if (s < GRADUAL_STEPS)
            cg_rows(W, bias, G, C, K, NO, col_major, has_b, lam, GRADUAL_CG, A, bvec, sup);
        else
            solve_rows(W, bias, G, C, K, NO, col_major, has_b, lam, A, bvec, sup);
    }
    free(it);
    free(sd);
    return 0;
}

static int refit_layer(sqzc_graph *g, const sqzc_graph *orig, int ni, const layer *L,
                       const float *xc, const float *xo, int n, int64_t per, int max_samples,
                       float ridge, int do_remask, char *err, size_t err_len) {
    sqzc_node *nd = &g->nodes[ni];
    const sqzc_node *on = &orig->nodes[ni];
    float *W = g->tensors[nd->in[1]].f32;
    const float *W0 = orig->tensors[on->in[1]].f32;
    int has_b = nd->n_in > 2 && nd->in[2] >= 0;
    float *bias = has_b ? g->tensors[nd->in[2]].f32 : NULL;
    const float *b0 = has_b ? orig->tensors[on->in[2]].f32 : NULL;
    int64_t K = L->K, NO = L->N_out, D = K + 1; /* + bias column */
    int64_t P = L->conv ? L->Ho * L->Wo : 1;
    int64_t rows_total = (int64_t)n * P;
    int64_t step = rows_total > max_samples ? (rows_total + max_samples - 1) / max_samples : 1;
    double *G = calloc((size_t)(D * D), sizeof *G), *C = calloc((size_t)(D * NO), sizeof *C);
    float *rc = malloc((size_t)D * sizeof *rc), *ro = malloc((size_t)D * sizeof *ro);
    double *y = malloc((size_t)NO * sizeof *y);
    int64_t *sup = malloc((size_t)D * sizeof *sup);
    double *A = malloc((size_t)(D * D) * sizeof *A), *bvec = malloc((size_t)D * sizeof *bvec);
    int ret = -1;
    if (!G || !C || !rc || !ro || !y || !sup || !A || !bvec) {
        snprintf(err, err_len, "refit: out of memory");
        goto done;
    }
    /* W(o, k) accessor */
#define WAT(w, o, k) ((w)[L->w_col_major ? (k)*NO + (o) : (o)*K + (k)])
    for (int64_t r = 0; r < rows_total; r += step) {
        int64_t s = r / P, pos = r % P;
        gather_row(L, xc + s * per, pos, rc);
        gather_row(L, xo + s * per, pos, ro);
        rc[K] = 1.0f;
        /* target: original pre-activation output */
        for (int64_t o = 0; o < NO; o++) {
            double t = b0 ? b0[o] : 0.0;
            for (int64_t k = 0; k < K; k++) t += (double)WAT(W0, o, k) * ro[k];
            y[o] = t;
        }
        for (int64_t i = 0; i < D; i++) {
            double xi = rc[i];
            if (xi == 0.0) continue;
            double *gi = G + i * D;
            for (int64_t j = 0; j <= i; j++) gi[j] += xi * rc[j];
            double *ci = C + i * NO;
            for (int64_t o = 0; o < NO; o++) ci[o] += xi * y[o];
        }
    }
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = i + 1; j < D; j++) G[i * D + j] = G[j * D + i];
    if (do_remask == 2) {
        int64_t used = (rows_total + step - 1) / step;
        if (remask(W, W0, G, K, NO, L->w_col_major, (double)used) != 0) {
            snprintf(err, err_len, "refit: out of memory");
            goto done;
        }
    }
    double md = 0;
    for (int64_t i = 0; i < D; i++) md += G[i * D + i];
    md /= (double)D;
    double lam = (double)ridge * (md > 0 ? md : 1.0);
    if (do_remask == 1) {
        if (sparsegpt(W, bias, G, C, K, NO, L->w_col_major, has_b, lam) != 0)
            snprintf(err, err_len, "refit: layer '%s': out of memory or singular system", nd->name);
        else
            ret = 0;
        goto done;
    }
    int64_t zc = 0;
    for (int64_t i = 0; i < K * NO; i++) zc += W[i] == 0.0f;
    if (do_remask == 3 && zc > 0) { /* no zeros: the plain refit below */
        if (gradual(W, W0, bias, b0, G, C, K, NO, L->w_col_major, has_b, lam, A, bvec, sup) != 0) {
            snprintf(err, err_len, "refit: out of memory");
            goto done;
        }
        ret = 0;
        goto done;
    }
    solve_rows(W, bias, G, C, K, NO, L->w_col_major, has_b, lam, A, bvec, sup);
#undef WAT
    ret = 0;
done:
    free(G);
    free(C);
    free(rc);
    free(ro);
    free(y);
    free(sup);
    free(A);
    free(bvec);
    return ret;
}

int sqzc_prune_refit(sqzc_graph *g, sqzc_graph *orig, const sqzc_refit_options *o, char *err,
                     size_t err_len) {
    if (!o || !o->inputs || o->n <= 0) {
        snprintf(err, err_len, "refit: no calibration inputs");
        return -1;
    }
    if (g->n_nodes != orig->n_nodes) {
        snprintf(err, err_len, "refit: the original graph does not match the pruned one");
        return -1;
    }
    float ridge = o->ridge > 0 ? o->ridge : 1e-3f;
    int max_samples = o->max_samples > 0 ? o->max_samples : 65536;
    for (int i = 0; i < g->n_nodes; i++) {
        sqzc_node *n = &g->nodes[i];
        if (n->op == SQZ_OP_INVALID) continue;
        layer L, Lo;
        if (layer_of(g, i, &L) != 0) continue;
        if (layer_of(orig, i, &Lo) != 0 || Lo.K != L.K || Lo.N_out != L.N_out ||
            strcmp(orig->nodes[i].name, n->name) != 0) {
            snprintf(err, err_len, "refit: layer '%s' differs from the original", n->name);
            return -1;
        }
        /* images used: enough for max_samples rows */
        int64_t P = L.conv ? L.Ho * L.Wo : 1;
        int nimg = o->n;
        if ((int64_t)nimg * P > 4 * (int64_t)max_samples)
            nimg = (int)((4 * (int64_t)max_samples + P - 1) / P);
        if (nimg < 1) nimg = 1;
        float *xc = NULL, *xo = NULL;
        sqz_shape sc, so;
        if (capture(g, n->in[0], o->inputs, nimg, &xc, &sc, err, err_len) != 0) return -1;
        if (capture(orig, orig->nodes[i].in[0], o->inputs, nimg, &xo, &so, err, err_len) != 0) {
            free(xc);
            return -1;
        }
        int64_t per = sqz_shape_numel(&sc);
        int rc = -1;
        if (per != sqz_shape_numel(&so))
            snprintf(err, err_len, "refit: layer '%s': input shapes differ", n->name);
        else
            rc = refit_layer(g, orig, i, &L, xc, xo, nimg, per, max_samples, ridge, o->remask, err,
                             err_len);
        free(xc);
        free(xo);
        if (rc != 0) return -1;
    }
    return 0;
}

int sqzc_prune_gram(float *W, const float *W0, float *bias, const float *b0, const double *G,
                    int64_t K, int64_t NO, int col_major, int64_t zeros, float ridge) {
    int64_t D = K + 1;
    if (zeros <= 0) return 0;
    if (zeros > K * NO) zeros = K * NO;
    double *C = calloc((size_t)(D * NO), sizeof *C), *A = malloc((size_t)(D * D) * sizeof *A);
    double *bvec = malloc((size_t)D * sizeof *bvec);
    int64_t *sup = malloc((size_t)D * sizeof *sup);
    float *bb = malloc((size_t)NO * sizeof *bb);
    int rc = -1;
    if (!C || !A || !bvec || !sup || !bb) goto done;
    /* targets y = W0 x + b0 on the same inputs: C = G [W0 b0]^T */
    for (int64_t i = 0; i < D; i++) {
        const double *gi = G + i * D;
        for (int64_t o = 0; o < NO; o++) {
            double t = gi[K] * (b0 ? (double)b0[o] : 0.0);
            for (int64_t k = 0; k < K; k++)
                t += gi[k] * (double)W0[col_major ? k * NO + o : o * K + k];
            C[i * NO + o] = t;
        }
    }
    double md = 0;
    for (int64_t i = 0; i < D; i++) md += G[i * D + i];
    md /= (double)D;
    double lam = (double)(ridge > 0 ? ridge : 1e-3f) * (md > 0 ? md : 1.0);
    rc =
        gradual_z(W, W0, bias ? bias : bb, b0, G, C, K, NO, col_major, 1, lam, A, bvec, sup, zeros);
done:
    free(C);
    free(A);
    free(bvec);
    free(sup);
    free(bb);
    return rc;
}
