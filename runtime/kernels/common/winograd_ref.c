/* winograd_ref.c - the transform matrices and the scalar twin of the
 * Winograd transforms (see winograd.h): one tile at a time, as plain matrix
 * products with the tables below.
 *
 * Matrices from Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks" (CVPR 2016), section 4.1 (F(2x2,3x3)) and 4.2 (F(4x4,3x3),
 * interpolation points 0, +-1, +-2, infinity). */
#include <string.h>

#include "ref/ref.h"
#include "winograd.h"

/* F(2,3): B^T (4x4), G (4x3), A^T (2x4) */
static const double BT2[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double AT2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

/* F(4,3): B^T (6x6), G (6x3), A^T (4x6) */
static const double BT4[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                 {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
static const double G4[6][3] = {{1.0 / 4, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                {0, 0, 1}};
static const double AT4[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

static const double *bt_of(int m) {
    return m == 2 ? &BT2[0][0] : &BT4[0][0];
}
static const double *at_of(int m) {
    return m == 2 ? &AT2[0][0] : &AT4[0][0];
}

void sqz_wino_weight(int m, const float *g, float *u) {
    const int t = m + 2;
    const double *G = m == 2 ? &G2[0][0] : &G4[0][0];
    double tmp[6][3];
    for (int i = 0; i < t; i++) /* tmp = G g */
        for (int j = 0; j < 3; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += G[i * 3 + k] * (double)g[k * 3 + j];
            tmp[i][j] = s;
        }
    for (int i = 0; i < t; i++) /* u = tmp G^T */
        for (int j = 0; j < t; j++) {
            double s = 0;
            for (int k = 0; k < 3; k++) s += tmp[i][k] * G[j * 3 + k];
            u[i * t + j] = (float)s;
        }
}

/* Input pixel (iy, ix) of image plane x, 0 outside. */
static float px(const sqz_wino_geom *g, const float *x, int64_t iy, int64_t ix) {
    if (iy < 0 || iy >= g->IH || ix < 0 || ix >= g->IW) return 0.0f;
    return x[iy * g->IW + ix];
}

static void ref_input(const sqz_wino_geom *g, const float *x, const sqz_wino_panel *p, float *v,
                      size_t vstride) {
    const int t = g->t, m = g->m;
    const double *BT = bt_of(m);
    for (int lane = 0; lane < p->lanes; lane++)
        for (int xi = 0; xi < t * t; xi++) v[(size_t)xi * vstride + (size_t)lane] = 0.0f;
    for (int r = 0; r < p->nruns; r++) {
        const sqz_wino_run *run = &p->run[r];
        const float *xi_ = x + run->img * g->x_img;
        for (int l = 0; l < run->len; l++) {
            int64_t iy0 = run->ty * m - g->ph, ix0 = (run->tx0 + l) * m - g->pw;
            float d[6][6], tmp[6][6];
            for (int i = 0; i < t; i++)
                for (int j = 0; j < t; j++) d[i][j] = px(g, xi_, iy0 + i, ix0 + j);
            for (int i = 0; i < t; i++) /* tmp = B^T d */
                for (int j = 0; j < t; j++) {
                    float s = 0.0f;
                    for (int k = 0; k < t; k++) s += (float)BT[i * t + k] * d[k][j];
                    tmp[i][j] = s;
                }
            for (int i = 0; i < t; i++) /* V = tmp B */
                for (int j = 0; j < t; j++) {
                    float s = 0.0f;
                    for (int k = 0; k < t; k++) s += tmp[i][k] * (float)BT[j * t + k];
                    v[(size_t)(i * t + j) * vstride + (size_t)(run->lane0 + l)] = s;
                }
        }
    }
}

static void ref_output(const sqz_wino_geom *g, const float *mb, size_t mstride,
                       const sqz_wino_panel *p, float bias, float *y) {
    const int t = g->t, m = g->m;
    const double *AT = at_of(m);
    ref_act act = {g->act, g->alpha, g->beta};
    for (int r = 0; r < p->nruns; r++) {
        const sqz_wino_run *run = &p->run[r];
        float *yi = y + run->img * g->y_img;
        for (int l = 0; l < run->len; l++) {
            const int lane = run->lane0 + l;
            int64_t oy0 = run->ty * m, ox0 = (run->tx0 + l) * m;
            float tmp[4][6];
            for (int i = 0; i < m; i++) /* tmp = A^T M */
                for (int j = 0; j < t; j++) {
                    float s = 0.0f;
                    for (int k = 0; k < t; k++)
                        s +=
                            (float)AT[i * t + k] * mb[(size_t)(k * t + j) * mstride + (size_t)lane];
                    tmp[i][j] = s;
                }
            for (int i = 0; i < m; i++) /* Y = tmp A */
                for (int j = 0; j < m; j++) {
                    if (oy0 + i >= g->OH || ox0 + j >= g->OW) continue;
                    float s = 0.0f;
                    for (int k = 0; k < t; k++) s += tmp[i][k] * (float)AT[j * t + k];
                    yi[(oy0 + i) * g->OW + ox0 + j] = ref_act_eval(&act, s + bias);
                }
        }
    }
}

const sqz_wino_tf sqz_wino_tf_ref = {"ref", 0, ref_input, ref_input, ref_output, ref_output};
