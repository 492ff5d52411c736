/* gptq.c - weight rounding by error feedback (gptq.h). Plain C in double:
 * Debian has the reference LAPACK (liblapack-dev: dpotrf / dpotri), but the
 * layers here are n <= a few thousand inputs, factored once per calibration,
 * where the unblocked reference routines are no faster than these loops, and
 * it would add a Fortran library to the offline tools of every build
 * (the aarch64 cross build included) for three short loops. */
#include "gptq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* In-place lower Cholesky factor of the symmetric a (n x n, the lower
 * triangle read and written; the upper one left as is): a = L L^T. 0 ok,
 * 1 not positive definite. */
static int chol_lower(double *a, int n) {
    for (int j = 0; j < n; j++) {
        double *aj = a + (size_t)j * n;
        double d = aj[j];
        for (int k = 0; k < j; k++) d -= aj[k] * aj[k];
        if (!(d > 0)) return 1;
        d = sqrt(d);
        aj[j] = d;
        for (int i = j + 1; i < n; i++) {
            double *ai = a + (size_t)i * n;
            double s = ai[j];
            for (int k = 0; k < j; k++) s -= ai[k] * aj[k];
            ai[j] = s / d;
        }
    }
    return 0;
}

int q_gptq_factor(double *h, int n, double damp) {
    if (n <= 0) return 0;
    const size_t nn = (size_t)n * (size_t)n;
    double *l = malloc(sizeof *l * nn), *li = calloc(nn, sizeof *li);
    if (!l || !li) {
        free(l);
        free(li);
        return -1;
    }
    /* the lower triangle of H (from h's upper), dead inputs, damping */
    double mean = 0;
    for (int i = 0; i < n; i++) mean += h[(size_t)i * n + i];
    mean /= n;
    if (!(mean > 0)) mean = 1;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) l[(size_t)i * n + j] = h[(size_t)j * n + i];
        double d = h[(size_t)i * n + i];
        l[(size_t)i * n + i] = (d > 0 ? d : 1) + damp * mean;
    }
    int rc = chol_lower(l, n);
    if (rc == 0) {
        /* li = L^-1 (lower), column by column by forward substitution */
        for (int c = 0; c < n; c++) {
            li[(size_t)c * n + c] = 1.0 / l[(size_t)c * n + c];
            for (int i = c + 1; i < n; i++) {
                double s = 0;
                for (int k = c; k < i; k++) s += l[(size_t)i * n + k] * li[(size_t)k * n + c];
                li[(size_t)i * n + c] = -s / l[(size_t)i * n + i];
            }
        }
        /* H^-1 = L^-T L^-1: lower triangle into l ((i, j), i >= j: sum over
         * k >= i of li[k][i] li[k][j]) */
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) {
                double s = 0;
                for (int k = i; k < n; k++) s += li[(size_t)k * n + i] * li[(size_t)k * n + j];
                l[(size_t)i * n + j] = s;
            }
        /* H^-1 = M M^T (M lower) = U^T U with U = M^T (upper) */
        rc = chol_lower(l, n);
        if (rc == 0)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    h[(size_t)i * n + j] = j >= i ? l[(size_t)j * n + i] : 0.0;
    }
    free(l);
    free(li);
    return rc;
}

int q_gptq_round(const double *u, const int *perm, int n, const float *w, const float *scale,
                 int r0, int r1, int8_t *q) {
    double *wr = malloc(sizeof *wr * (size_t)(n > 0 ? n : 1));
    if (!wr) return -1;
    for (int r = r0; r < r1; r++) {
        const float *w0 = w + (size_t)r * n;
        int8_t *q0 = q + (size_t)r * n;
        const double s = scale[r];
        for (int j = 0; j < n; j++) wr[j] = w0[perm ? perm[j] : j];
        for (int j = 0; j < n; j++) {
            double v = nearbyint(wr[j] / s);
            v = v > 127 ? 127 : v < -127 ? -127 : v;
            q0[perm ? perm[j] : j] = (int8_t)v;
            const double *uj = u + (size_t)j * n;
            const double e = (wr[j] - v * s) / uj[j];
            for (int k = j + 1; k < n; k++) wr[k] -= e * uj[k];
        }
    }
    free(wr);
    return 0;
}

void q_gptq_patches(const q_patch_geom *g, const float *x, float *buf, int ld) {
    const int np = g->oh * g->ow;
    for (int c = 0; c < g->cin; c++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
                const int i = (c * g->kh + ky) * g->kw + kx;
                const float *xc = x + (size_t)c * g->ih * g->iw;
                for (int oy = 0; oy < g->oh; oy++) {
                    const int iy = oy * g->sh - g->pt + ky * g->dh;
                    float *b = buf + (size_t)oy * g->ow * ld + i;
                    for (int ox = 0; ox < g->ow; ox++) {
                        const int ix = ox * g->sw - g->pl + kx * g->dw;
                        b[(size_t)ox * ld] = iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw
                                                 ? xc[(size_t)iy * g->iw + ix]
                                                 : 0.0f;
                    }
                }
            }
    const int n = g->cin * g->kh * g->kw;
    for (int p = 0; p < np; p++)
        for (int i = n; i < ld; i++) buf[(size_t)p * ld + i] = 0.0f;
}

void q_gptq_patches_at(const q_patch_geom *g, const float *x, float *buf, int ld, int off, int st) {
    const int np = g->oh * g->ow;
    int j = 0;
    for (int p = off; p < np; p += st, j++) {
        const int oy = p / g->ow, ox = p % g->ow;
        float *b = buf + (size_t)j * ld;
        int i = 0;
        for (int c = 0; c < g->cin; c++) {
            const float *xc = x + (size_t)c * g->ih * g->iw;
            for (int ky = 0; ky < g->kh; ky++) {
                const int iy = oy * g->sh - g->pt + ky * g->dh;
                const int rok = iy >= 0 && iy < g->ih;
                for (int kx = 0; kx < g->kw; kx++, i++) {
                    const int ix = ox * g->sw - g->pl + kx * g->dw;
                    b[i] = rok && ix >= 0 && ix < g->iw ? xc[(size_t)iy * g->iw + ix] : 0.0f;
                }
            }
        }
        for (; i < ld; i++) b[i] = 0.0f;
    }
}

/* the 4 x 8 tile of sum_p x[i0 + a] x[j0 + b] over the samples (each of the
 * 32 sums in sample order: the SSE2 and scalar loops give the same values) */
static void gram_tile(const float *buf, int np, int ld, int i0, int j0, float acc[4][8]) {
#if defined(__SSE2__)
    __m128 c[4][2];
    for (int a = 0; a < 4; a++) c[a][0] = c[a][1] = _mm_setzero_ps();
    for (int p = 0; p < np; p++) {
        const float *r = buf + (size_t)p * ld;
        const __m128 b0 = _mm_loadu_ps(r + j0), b1 = _mm_loadu_ps(r + j0 + 4);
        for (int a = 0; a < 4; a++) {
            const __m128 xa = _mm_set1_ps(r[i0 + a]);
            c[a][0] = _mm_add_ps(c[a][0], _mm_mul_ps(xa, b0));
            c[a][1] = _mm_add_ps(c[a][1], _mm_mul_ps(xa, b1));
        }
    }
    for (int a = 0; a < 4; a++) {
        _mm_storeu_ps(acc[a], c[a][0]);
        _mm_storeu_ps(acc[a] + 4, c[a][1]);
    }
#else
    memset(acc, 0, sizeof(float) * 32);
    for (int p = 0; p < np; p++) {
        const float *r = buf + (size_t)p * ld;
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 8; b++) acc[a][b] += r[i0 + a] * r[j0 + b];
    }
#endif
}

void q_gptq_gram(double *h, int n, int np, const float *buf, int ld) {
    /* tiles of 4 x 8 on or above the diagonal, each summed over the samples
     * in float (32 accumulators in registers), then added to h in double */
    for (int i0 = 0; i0 < n; i0 += 4)
        for (int j0 = i0 / 8 * 8; j0 < n; j0 += 8) {
            float acc[4][8];
            gram_tile(buf, np, ld, i0, j0, acc);
            for (int a = 0; a < 4 && i0 + a < n; a++)
                for (int b = 0; b < 8 && j0 + b < n; b++)
                    if (j0 + b >= i0 + a) h[(size_t)(i0 + a) * n + j0 + b] += (double)acc[a][b];
        }
}

int q_gptq_xcorr(double *g, int rows, int n, const float *w, int np, const float *bx,
                 const float *bt, int ld) {
    float *acc = calloc((size_t)rows * (size_t)ld + 1, sizeof *acc);
    float *d = malloc(sizeof *d * ((size_t)ld + 1));
    if (!acc || !d) {
        free(acc);
        free(d);
        return -1;
    }
    for (int p = 0; p < np; p++) {
        const float *x = bx + (size_t)p * ld, *t = bt + (size_t)p * ld;
        for (int i = 0; i < ld; i++) d[i] = x[i] - t[i];
        for (int r = 0; r < rows; r++) {
            const float *wr = w + (size_t)r * n;
            /* 8 partial sums (vectorizes; a fixed order whatever the ISA) */
            float e8[8] = {0, 0, 0, 0, 0, 0, 0, 0}, e = 0;
            int i = 0;
            for (; i + 8 <= n; i += 8)
                for (int l = 0; l < 8; l++) e8[l] += wr[i + l] * d[i + l];
            for (; i < n; i++) e += wr[i] * d[i];
            for (int l = 0; l < 8; l++) e += e8[l];
            float *a = acc + (size_t)r * ld;
            for (int i = 0; i < ld; i++) a[i] += e * t[i];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++) g[(size_t)r * n + i] += (double)acc[(size_t)r * ld + i];
    free(acc);
    free(d);
    return 0;
}

void q_gptq_colsum(double *m, int n, int np, const float *buf, int ld) {
    for (int p = 0; p < np; p++) {
        const float *x = buf + (size_t)p * ld;
        for (int i = 0; i < n; i++) m[i] += (double)x[i];
    }
}

int q_gptq_apply_inv(const double *u, const int *perm, int n, const double *g, float *w) {
    /* g U^T (t[a] = sum over b >= a of U[a][b] g[b]), then t U */
    double *t = malloc(sizeof *t * (size_t)(n > 0 ? n : 1));
    if (!t) return -1;
    for (int a = 0; a < n; a++) {
        const double *ua = u + (size_t)a * n;
        double s = 0;
        for (int b = a; b < n; b++) s += ua[b] * g[perm ? perm[b] : b];
        t[a] = s;
    }
    for (int b = 0; b < n; b++) {
        double s = 0;
        for (int a = 0; a <= b; a++) s += t[a] * u[(size_t)a * n + b];
        w[perm ? perm[b] : b] += (float)s;
    }
    free(t);
    return 0;
}
