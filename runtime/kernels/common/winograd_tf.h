/* winograd_tf.h - the Winograd input / output transforms (see winograd.h) as
 * a plain-C template over WT_NR lanes (tiles), included by one file per ISA
 * that defines WT_NR and is compiled with that ISA's flags (the functions
 * are static: each file refers to its own copy in its sqz_wino_tf); the lane
 * loops vectorize.
 *
 * The arithmetic applies B^T / A^T of Lavin & Gray (2016) (tables in
 * winograd_ref.c) with shared subexpressions; results agree with the scalar
 * twin within float rounding. Input: per lane, the t x t tile's columns are
 * gathered and transformed along the rows, then along the columns over all
 * lanes (written into the GEMM's packed B panels); output: the reverse, then
 * bias, activation and the m x m pixels stored inside the plane.
 *
 * An ISA may define WT_ROW(b, len, m, hi) before the include: the row
 * transform of pass 1 (columns j of the lanes' tiles, B^T along them) from
 * the buffered row b into hi[k * WT_NR + l] for l < len, with
 * WT_ROW_EXTENT(m, len) the buffer floats it reads (zero-filled) and
 * WT_ROW_BW the row buffer size it needs; and WT_STORE(row, oi, n, m): the
 * output pixels of n lanes, row[l * m + j] = oi[j * WT_NR + l] (it may load
 * up to 16 floats past oi's lanes without using them). */
#include <string.h>

#include "ref/ref.h"
#include "winograd.h"

#if !defined(WT_NR)
#error "define WT_NR before including winograd_tf.h"
#endif

/* B^T rows applied to x0..x3 (F(2,3)) / x0..x5 (F(4,3)) over n lanes. Every
 * vector is its own restrict parameter: GCC vectorizes only then (it cannot
 * tell outputs a runtime stride apart from overlapping). */
static void wt_bt2(const float *restrict x0, const float *restrict x1, const float *restrict x2,
                   const float *restrict x3, float *restrict o0, float *restrict o1,
                   float *restrict o2, float *restrict o3, int n) {
    for (int l = 0; l < n; l++) {
        o0[l] = x0[l] - x2[l];
        o1[l] = x1[l] + x2[l];
        o2[l] = x2[l] - x1[l];
        o3[l] = x1[l] - x3[l];
    }
}

static void wt_bt4(const float *restrict x0, const float *restrict x1, const float *restrict x2,
                   const float *restrict x3, const float *restrict x4, const float *restrict x5,
                   float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                   float *restrict o4, float *restrict o5, int n) {
    for (int l = 0; l < n; l++) {
        float a = x4[l] - 4.0f * x2[l], b = x3[l] - 4.0f * x1[l], c = x4[l] - x2[l],
              e = 2.0f * (x3[l] - x1[l]);
        o0[l] = 4.0f * x0[l] - 5.0f * x2[l] + x4[l];
        o1[l] = a + b;
        o2[l] = a - b;
        o3[l] = c + e;
        o4[l] = c - e;
        o5[l] = 4.0f * x1[l] - 5.0f * x3[l] + x5[l];
    }
}

/* Pass 2 of the input transform: B^T along the rows of h over n lanes. */
static inline __attribute__((always_inline)) void
wt_input_cols(const float *h, float *v, size_t vstride, const int m, const int n) {
    const int T = m + 2, S = T * WT_NR; /* h: row i at i * S, column k at k * WT_NR */
    for (int k = 0; k < T; k++) {
        const float *s = h + k * WT_NR;
        float *o = v + (size_t)k * vstride;
        if (m == 2)
            wt_bt2(s, s + S, s + 2 * S, s + 3 * S, o, o + 4 * vstride, o + 8 * vstride,
                   o + 12 * vstride, n);
        else
            wt_bt4(s, s + S, s + 2 * S, s + 3 * S, s + 4 * S, s + 5 * S, o, o + 6 * vstride,
                   o + 12 * vstride, o + 18 * vstride, o + 24 * vstride, o + 30 * vstride, n);
    }
}

/* Stages the T input rows a run reads: row i's columns from the run's
 * first (buffer column c = plane column tx0 * m - pw + c) at b + i * bw,
 * wz floats each, zero outside the plane. All T rows first: reading them
 * back right after each copy would stall on store forwarding (loads
 * spanning several stores). */
static inline __attribute__((always_inline)) void wt_stage(const sqz_wino_geom *g, const float *x,
                                                           const sqz_wino_run *run, const int m,
                                                           float *b0, int64_t bw, int64_t wz) {
    const int T = m + 2;
    const int64_t IW = g->IW;
    const float *xi = x + run->img * g->x_img;
    const int64_t iy0 = run->ty * m - g->ph, ix0 = run->tx0 * m - g->pw;
    const int64_t w = (int64_t)m * (run->len + 1); /* columns the run reads (and a few more) */
    /* columns [c0, c1) of the buffer lie inside the row */
    int64_t c0 = ix0 < 0 ? -ix0 : 0, c1 = IW - ix0;
    if (c1 > w) c1 = w;
    if (c1 > wz) c1 = wz;
    if (c0 > c1) c0 = c1;
    for (int i = 0; i < T; i++) {
        const int64_t iy = iy0 + i;
        float *b = b0 + i * bw;
        if (iy < 0 || iy >= g->IH || c0 == c1) {
            memset(b, 0, (size_t)wz * sizeof(float));
            continue;
        }
        const float *row = xi + iy * IW; /* buffer column c is row column ix0 + c */
        for (int64_t c = 0; c < c0; c++) b[c] = 0.0f;
        memcpy(b + c0, row + (ix0 + c0), (size_t)(c1 - c0) * sizeof(float));
        for (int64_t c = c1; c < wz; c++) b[c] = 0.0f;
    }
}

/* Input transform, in two passes:
 * 1. per run and input row i: the row's columns (zero outside the plane)
 *    copied to buf, then column j of every lane's tile gathered (stride m)
 *    into ph[j] (contiguous in the lane); B^T along the columns gives
 *    h[i][k][lane] (k: transformed column);
 * 2. per k, B^T along the rows i over all the panel's lanes -> V. */
static void wt_input(const sqz_wino_geom *g, const float *x, const sqz_wino_panel *p, float *v,
                     size_t vstride, const int m) {
#ifndef WT_ROW_BW
#define WT_ROW_BW 0
#endif
    enum { BW = 4 * (WT_NR + 2) > WT_ROW_BW ? 4 * (WT_NR + 2) : WT_ROW_BW };
    const int T = m + 2;
    float h[36 * WT_NR];
    float buf[6 * BW];
#ifndef WT_ROW
    float ph[6][WT_NR];
#endif
    for (int r = 0; r < p->nruns; r++) {
        const sqz_wino_run *run = &p->run[r];
        const int len = run->len;
#ifdef WT_ROW_PAIR
        /* two short runs (tile rows of a narrow plane) in one vector group:
         * the first's columns at buf[0, WT_PAIR_OFF), the second's after */
        if (m == 4 && r + 1 < p->nruns && len <= WT_PAIR_LEN && p->run[r + 1].len <= WT_PAIR_LEN) {
            const sqz_wino_run *run2 = &p->run[r + 1];
            wt_stage(g, x, run, m, buf, BW, WT_PAIR_OFF);
            wt_stage(g, x, run2, m, buf + WT_PAIR_OFF, BW,
                     WT_ROW_EXTENT(m, WT_PAIR_LEN) - WT_PAIR_OFF);
            for (int i = 0; i < T; i++)
                WT_ROW_PAIR(buf + i * BW, len, h + i * T * WT_NR + run->lane0, run2->len,
                            h + i * T * WT_NR + run2->lane0);
            r++;
            continue;
        }
#endif
#ifdef WT_ROW
        /* the ISA's row transform reads whole vectors: zeros up to its extent */
        wt_stage(g, x, run, m, buf, BW, WT_ROW_EXTENT(m, len));
#else
        wt_stage(g, x, run, m, buf, BW, (int64_t)m * (len + 1));
#endif
        for (int i = 0; i < T; i++) {
            const float *b = buf + i * BW;
            float *hi = h + i * T * WT_NR + run->lane0;
#ifdef WT_ROW
            WT_ROW(b, len, m, hi);
#else
            /* column j of every lane's tile: ph[j][l] = b[m * l + j] */
            if (m == 2) {
                for (int l = 0; l < len; l++) {
                    ph[0][l] = b[2 * l];
                    ph[1][l] = b[2 * l + 1];
                    ph[2][l] = b[2 * l + 2];
                    ph[3][l] = b[2 * l + 3];
                }
                wt_bt2(ph[0], ph[1], ph[2], ph[3], hi, hi + WT_NR, hi + 2 * WT_NR, hi + 3 * WT_NR,
                       len);
            } else {
                for (int l = 0; l < len; l++) {
                    ph[0][l] = b[4 * l];
                    ph[1][l] = b[4 * l + 1];
                    ph[2][l] = b[4 * l + 2];
                    ph[3][l] = b[4 * l + 3];
                    ph[4][l] = b[4 * l + 4];
                    ph[5][l] = b[4 * l + 5];
                }
                wt_bt4(ph[0], ph[1], ph[2], ph[3], ph[4], ph[5], hi, hi + WT_NR, hi + 2 * WT_NR,
                       hi + 3 * WT_NR, hi + 4 * WT_NR, hi + 5 * WT_NR, len);
            }
#endif
        }
    }
    for (int k = 0; k < T * T; k++)
        for (int l = p->cnt; l < p->lanes; l++) h[k * WT_NR + l] = 0.0f;
    /* a constant lane count for the whole panel (the loops vectorize fully) */
    if (p->lanes == WT_NR)
        wt_input_cols(h, v, vstride, m, WT_NR);
    else
        wt_input_cols(h, v, vstride, m, p->lanes);
}

static void wt_input2(const sqz_wino_geom *g, const float *x, const sqz_wino_panel *p, float *v,
                      size_t vstride) {
    wt_input(g, x, p, v, vstride, 2);
}

static void wt_input4(const sqz_wino_geom *g, const float *x, const sqz_wino_panel *p, float *v,
                      size_t vstride) {
    wt_input(g, x, p, v, vstride, 4);
}

/* A^T rows applied to x0..x3 (F(2,3)) / x0..x5 (F(4,3)) over n lanes */
static inline __attribute__((always_inline)) void
wt_at2(const float *restrict x0, const float *restrict x1, const float *restrict x2,
       const float *restrict x3, float *restrict o0, float *restrict o1, const int n) {
    for (int l = 0; l < n; l++) {
        o0[l] = x0[l] + x1[l] + x2[l];
        o1[l] = x1[l] - x2[l] - x3[l];
    }
}

static inline __attribute__((always_inline)) void
wt_at4(const float *restrict x0, const float *restrict x1, const float *restrict x2,
       const float *restrict x3, const float *restrict x4, const float *restrict x5,
       float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
       const int n) {
    for (int l = 0; l < n; l++) {
        float s12 = x1[l] + x2[l], d12 = x1[l] - x2[l], s34 = x3[l] + x4[l], d34 = x3[l] - x4[l];
        o0[l] = x0[l] + s12 + s34;
        o1[l] = d12 + 2.0f * d34;
        o2[l] = s12 + 4.0f * s34;
        o3[l] = d12 + 8.0f * d34 + x5[l];
    }
}

/* bias + activation over n floats; the common kinds inline (vectorized) */
static void wt_bias_act(const sqz_wino_geom *g, float bias, float *o, int n) {
    switch (g->act) {
    case SQZ_ACT_NONE:
        for (int l = 0; l < n; l++) o[l] += bias;
        return;
    case SQZ_ACT_RELU:
        for (int l = 0; l < n; l++) {
            float v = o[l] + bias;
            o[l] = v > 0.0f ? v : 0.0f;
        }
        return;
    case SQZ_ACT_CLIP: {
        const float lo = g->alpha, hi = g->beta;
        for (int l = 0; l < n; l++) {
            float v = o[l] + bias;
            v = v < lo ? lo : v;
            o[l] = v > hi ? hi : v;
        }
        return;
    }
    default: {
        ref_act act = {g->act, g->alpha, g->beta};
        for (int l = 0; l < n; l++) o[l] += bias;
        ref_act_apply(&act, o, (size_t)n);
    }
    }
}

/* o[(i * m + j) * WT_NR + lane] -> the lanes' output pixels inside the plane */
static void wt_scatter(const sqz_wino_geom *g, const float *o, const sqz_wino_panel *p, float *y,
                       const int m) {
    const int64_t OW = g->OW, OH = g->OH;
    for (int r = 0; r < p->nruns; r++) {
        const sqz_wino_run *run = &p->run[r];
        float *yi = y + run->img * g->y_img;
        const int64_t oy0 = run->ty * m, ox0 = run->tx0 * m;
        /* lanes whose m columns are all inside: [0, full) */
        int64_t full = (OW - ox0) / m;
        if (full > run->len) full = run->len;
        for (int i = 0; i < m && oy0 + i < OH; i++) {
            float *row = yi + (oy0 + i) * OW + ox0;
            const float *oi = o + i * m * WT_NR + run->lane0;
#ifdef WT_STORE
            WT_STORE(row, oi, (int)full, m);
#else
            for (int64_t l = 0; l < full; l++)
                for (int j = 0; j < m; j++) row[l * m + j] = oi[j * WT_NR + l];
#endif
            for (int64_t l = full; l < run->len; l++)
                for (int j = 0; j < m && ox0 + l * m + j < OW; j++)
                    row[l * m + j] = oi[j * WT_NR + l];
        }
    }
}

/* A^T M A over n lanes, then bias and activation: o[(i * m + j) * WT_NR + lane] */
static inline __attribute__((always_inline)) void wt_out2(const sqz_wino_geom *g, const float *mb,
                                                          size_t mstride, float bias, float *o,
                                                          const int n) {
    float tm[8 * WT_NR];
    const size_t R = 4 * mstride; /* M row stride */
    for (int j = 0; j < 4; j++) { /* tm = A^T M, column j */
        const float *s = mb + (size_t)j * mstride;
        wt_at2(s, s + R, s + 2 * R, s + 3 * R, tm + j * WT_NR, tm + (4 + j) * WT_NR, n);
    }
    for (int i = 0; i < 2; i++) { /* Y = tm A, row i */
        const float *s = tm + 4 * i * WT_NR;
        wt_at2(s, s + WT_NR, s + 2 * WT_NR, s + 3 * WT_NR, o + 2 * i * WT_NR,
               o + (2 * i + 1) * WT_NR, n);
    }
    if (n == WT_NR)
        wt_bias_act(g, bias, o, 4 * WT_NR);
    else
        for (int r = 0; r < 4; r++) wt_bias_act(g, bias, o + r * WT_NR, n);
}

static void wt_output2(const sqz_wino_geom *g, const float *mb, size_t mstride,
                       const sqz_wino_panel *p, float bias, float *y) {
    float o[4 * WT_NR + 16]; /* + 16: WT_STORE may load (not use) a vector past the end */
    if (p->lanes == WT_NR)
        wt_out2(g, mb, mstride, bias, o, WT_NR);
    else
        wt_out2(g, mb, mstride, bias, o, p->lanes);
    wt_scatter(g, o, p, y, 2);
}

static inline __attribute__((always_inline)) void wt_out4(const sqz_wino_geom *g, const float *mb,
                                                          size_t mstride, float bias, float *o,
                                                          const int n) {
    float tm[24 * WT_NR];
    const size_t R = 6 * mstride;
    for (int j = 0; j < 6; j++) { /* tm = A^T M, column j */
        const float *s = mb + (size_t)j * mstride;
        wt_at4(s, s + R, s + 2 * R, s + 3 * R, s + 4 * R, s + 5 * R, tm + j * WT_NR,
               tm + (6 + j) * WT_NR, tm + (12 + j) * WT_NR, tm + (18 + j) * WT_NR, n);
    }
    for (int i = 0; i < 4; i++) { /* Y = tm A, row i */
        const float *s = tm + 6 * i * WT_NR;
        float *d = o + 4 * i * WT_NR;
        wt_at4(s, s + WT_NR, s + 2 * WT_NR, s + 3 * WT_NR, s + 4 * WT_NR, s + 5 * WT_NR, d,
               d + WT_NR, d + 2 * WT_NR, d + 3 * WT_NR, n);
    }
    if (n == WT_NR)
        wt_bias_act(g, bias, o, 16 * WT_NR);
    else
        for (int r = 0; r < 16; r++) wt_bias_act(g, bias, o + r * WT_NR, n);
}

static void wt_output4(const sqz_wino_geom *g, const float *mb, size_t mstride,
                       const sqz_wino_panel *p, float bias, float *y) {
    float o[16 * WT_NR + 16];
    if (p->lanes == WT_NR)
        wt_out4(g, mb, mstride, bias, o, WT_NR);
    else
        wt_out4(g, mb, mstride, bias, o, p->lanes);
    wt_scatter(g, o, p, y, 4);
}
