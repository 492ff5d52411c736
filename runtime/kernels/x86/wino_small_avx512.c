/* wino_small_avx512.c - Winograd F(4x4,3x3) for 16..64 channels, channels in
 * the AVX-512 lanes (see wino_small.h). */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "sqz/ops.h"
#include "wino_small.h"
#include "winograd.h"

#define WS_MAXV 4 /* 64 channels */

struct sqz_wsm {
    int64_t C, M, IH, IW, OH, OW, ph, pw;
    int relu, G; /* G: tiles per group (set per band, see group_of) */
    float *U;    /* [36][C][M] */
    float *bias; /* [M] */
};

/* most tiles per group for MV = M / 16 output vectors: G * MV accumulators
 * in 24 of the 32 zmm registers */
static const int g_max[WS_MAXV + 1] = {0, 16, 12, 8, 6};

int sqz_wsm_ok(int64_t C, int64_t M, int act) {
    return C >= 16 && C <= 16 * WS_MAXV && C % 16 == 0 && M >= 16 && M <= 16 * WS_MAXV &&
           M % 16 == 0 && (act == SQZ_ACT_NONE || act == SQZ_ACT_RELU) && sqz_cpu_has_avx512();
}

static void *alloc64(size_t bytes) {
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

void sqz_wsm_free(sqz_wsm *s) {
    if (!s) return;
    free(s->U);
    free(s->bias);
    free(s);
}

sqz_wsm *sqz_wsm_create(int64_t C, int64_t M, int64_t IH, int64_t IW, int64_t OH, int64_t OW,
                        int64_t ph, int64_t pw, const float *W, const float *B, int act) {
    if (!sqz_wsm_ok(C, M, act) || OH < 1 || OW < 1) return NULL;
    sqz_wsm *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->C = C;
    s->M = M;
    s->IH = IH;
    s->IW = IW;
    s->OH = OH;
    s->OW = OW;
    s->ph = ph;
    s->pw = pw;
    s->relu = act == SQZ_ACT_RELU;
    s->U = alloc64((size_t)(36 * C * M) * sizeof(float));
    s->bias = alloc64((size_t)M * sizeof(float));
    if (!s->U || !s->bias) {
        sqz_wsm_free(s);
        return NULL;
    }
    for (int64_t o = 0; o < M; o++) {
        s->bias[o] = B ? B[o] : 0.0f;
        for (int64_t c = 0; c < C; c++) {
            float u[36];
            sqz_wino_weight(4, W + (o * C + c) * 9, u);
            for (int xi = 0; xi < 36; xi++) s->U[(xi * C + c) * M + o] = u[xi];
        }
    }
    return s;
}

/* ---------------------------------------------------------------- layout */

/* Floats between the V (Mo) matrices of two positions, for c (m) channels:
 * room for the largest group, one cache line more (positions 4 KB apart
 * would share L1 sets) */
#define VXS(c) (16 * (c) + 16)

typedef struct band {
    int64_t rows, TR, TW, XW, XH, NT, G, ngroups;
    float *xt, *ys, *v, *mo;
} band;

/* Tiles per group for nt tiles: fewest padded tiles (the last group is
 * filled with copies of the last tile), then the largest group; at least
 * 6 / MV (FMA latency: 4-cycle FMAs at one a cycle). */
static int64_t group_of(int64_t nt, int mv) {
    int64_t best = 0, cost = 0;
    int64_t lo = 6 / mv > 1 ? 6 / mv : 1;
    if (lo > nt) lo = nt;
    for (int64_t g = lo; g <= g_max[mv]; g++) {
        int64_t c = (nt + g - 1) / g * g;
        if (!best || c < cost || (c == cost && g > best)) {
            best = g;
            cost = c;
        }
        if (g >= nt) break;
    }
    return best;
}

/* Sizes the band of rows output rows of a C -> M conv with OW columns;
 * points into base when not NULL. V and Mo are sized for the largest group
 * (g_max). */
static size_t band_layout(int64_t C, int64_t M, int64_t OW, int64_t rows, band *b, char *base) {
    b->rows = rows;
    b->TR = (rows + 3) / 4;
    b->TW = (OW + 3) / 4;
    b->XW = 4 * b->TW + 2;
    b->XH = 4 * b->TR + 2;
    b->NT = b->TR * b->TW;
    b->G = group_of(b->NT, (int)(M / 16));
    b->ngroups = (b->NT + b->G - 1) / b->G;
    const size_t n[4] = {(size_t)(b->XH * b->XW * C), (size_t)(rows * OW * M),
                         (size_t)(36 * VXS(C)), (size_t)(36 * VXS(M))};
    float **ptr[4] = {&b->xt, &b->ys, &b->v, &b->mo};
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        *ptr[i] = base ? (float *)(base + off) : NULL;
        off += (n[i] * sizeof(float) + 63) / 64 * 64;
    }
    return off;
}

size_t sqz_wsm_band_bytes(int64_t C, int64_t M, int64_t OW, int64_t rows) {
    band b;
    if (C < 16 || C > 16 * WS_MAXV || M < 16 || M > 16 * WS_MAXV || rows < 1) return 0;
    return band_layout(C, M, OW, rows, &b, NULL);
}

size_t sqz_wsm_scratch_bytes(const sqz_wsm *s, int64_t rows) {
    return sqz_wsm_band_bytes(s->C, s->M, s->OW, rows);
}

/* ------------------------------------------------------------ transposes */

/* r[j] = column j of the 16 x 16 matrix whose row i is r[i] */
static inline __attribute__((always_inline)) void tr16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4i + e], 128-bit lane l: rows 4i..4i+3 of column 4l + e */
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int e = 0; e < 4; e++) {
        __m512 a = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x88);
        __m512 b = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xDD);
        __m512 c = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x88);
        __m512 d = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xDD);
        t[e] = _mm512_shuffle_f32x4(a, c, 0x88);
        t[8 + e] = _mm512_shuffle_f32x4(a, c, 0xDD);
        t[4 + e] = _mm512_shuffle_f32x4(b, d, 0x88);
        t[12 + e] = _mm512_shuffle_f32x4(b, d, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

static inline __mmask16 mask_of(int64_t n) {
    return (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1u);
}

/* The band's input rows (from output row oy0) pixel-major into b->xt:
 * xt[(r * XW + c) * C + ch] = input (oy0 - ph + r, c - pw), 0 outside. */
static void stage_input(const sqz_wsm *s, const band *b, const float *x, int64_t oy0) {
    const int64_t C = s->C, XW = b->XW, sp = s->IH * s->IW;
    const __m512 z = _mm512_setzero_ps();
    for (int64_t r = 0; r < b->XH; r++) {
        float *row = b->xt + r * XW * C;
        const int64_t iy = oy0 - s->ph + r;
        if (iy < 0 || iy >= s->IH) {
            memset(row, 0, (size_t)(XW * C) * sizeof(float));
            continue;
        }
        /* pad columns: [0, pw) and [pw + IW, XW) */
        for (int64_t c = 0; c < XW; c++)
            if (c < s->pw || c >= s->pw + s->IW)
                for (int64_t ch = 0; ch < C; ch += 16) _mm512_storeu_ps(row + c * C + ch, z);
        for (int64_t ix = 0; ix < s->IW; ix += 16) {
            const int64_t n = s->IW - ix < 16 ? s->IW - ix : 16;
            const int64_t c0 = ix + s->pw;
            const int64_t kept = XW - c0 < n ? XW - c0 : n; /* columns past XW: unread */
            const __mmask16 k = mask_of(n);
            for (int64_t cg = 0; cg < C; cg += 16) {
                __m512 v[16];
                const float *src = x + cg * sp + iy * s->IW + ix;
                for (int i = 0; i < 16; i++) v[i] = _mm512_maskz_loadu_ps(k, src + i * sp);
                tr16(v);
                for (int64_t j = 0; j < kept; j++) _mm512_storeu_ps(row + (c0 + j) * C + cg, v[j]);
            }
        }
    }
}

/* ------------------------------------------------------------ transforms */

/* B^T of F(4,3) on six vectors (the rows of winograd_ref.c's BT4) */
static inline __attribute__((always_inline)) void bt4(const __m512 x[6], __m512 o[6]) {
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f);
    __m512 a = _mm512_fnmadd_ps(four, x[2], x[4]);
    __m512 b = _mm512_fnmadd_ps(four, x[1], x[3]);
    __m512 c = _mm512_sub_ps(x[4], x[2]);
    __m512 d = _mm512_sub_ps(x[3], x[1]);
    __m512 e = _mm512_add_ps(d, d);
    o[0] = _mm512_fmadd_ps(four, x[0], _mm512_fnmadd_ps(five, x[2], x[4]));
    o[1] = _mm512_add_ps(a, b);
    o[2] = _mm512_sub_ps(a, b);
    o[3] = _mm512_add_ps(c, e);
    o[4] = _mm512_sub_ps(c, e);
    o[5] = _mm512_fmadd_ps(four, x[1], _mm512_fnmadd_ps(five, x[3], x[5]));
}

/* A^T of F(4,3) on six vectors (AT4) */
static inline __attribute__((always_inline)) void at4(const __m512 x[6], __m512 o[4]) {
    __m512 s12 = _mm512_add_ps(x[1], x[2]), d12 = _mm512_sub_ps(x[1], x[2]);
    __m512 s34 = _mm512_add_ps(x[3], x[4]), d34 = _mm512_sub_ps(x[3], x[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(x[0], s12), s34);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), x[5]);
}

/* B^T of F(4,3) on six vectors, outputs [3h, 3h + 3) only (h = 0, 1):
 * the halves share no subexpression */
static inline __attribute__((always_inline)) void bt4_half(const __m512 x[6], __m512 o[3],
                                                           const int h) {
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f);
    if (h == 0) {
        __m512 a = _mm512_fnmadd_ps(four, x[2], x[4]);
        __m512 b = _mm512_fnmadd_ps(four, x[1], x[3]);
        o[0] = _mm512_fmadd_ps(four, x[0], _mm512_fnmadd_ps(five, x[2], x[4]));
        o[1] = _mm512_add_ps(a, b);
        o[2] = _mm512_sub_ps(a, b);
    } else {
        __m512 c = _mm512_sub_ps(x[4], x[2]);
        __m512 d = _mm512_sub_ps(x[3], x[1]);
        __m512 e = _mm512_add_ps(d, d);
        o[0] = _mm512_add_ps(c, e);
        o[1] = _mm512_sub_ps(c, e);
        o[2] = _mm512_fmadd_ps(four, x[1], _mm512_fnmadd_ps(five, x[3], x[5]));
    }
}

/* V[xi][g][C] (positions VXS(C) apart) of tile t (band tile index) for all
 * channels: the row pass in two halves of three columns each (18 live
 * vectors; the tile's 36 loads twice, from L1); C a constant (immediate
 * offsets: no address registers spilled) */
static inline __attribute__((always_inline)) void input_tile_c(const band *b, int64_t t, int64_t g,
                                                               const int64_t C) {
    const int64_t XW = b->XW;
    const float *p = b->xt + ((t / b->TW) * 4 * XW + (t % b->TW) * 4) * C;
    float *v = b->v + g * C;
    for (int64_t cv = 0; cv < C; cv += 16)
        for (int hf = 0; hf < 2; hf++) {
            __m512 h[6][3];
            const float *pr = p + cv;
            for (int i = 0; i < 6; i++, pr += XW * C) {
                __m512 x[6];
                for (int j = 0; j < 6; j++) x[j] = _mm512_loadu_ps(pr + j * C);
                bt4_half(x, h[i], hf);
            }
            for (int j = 0; j < 3; j++) {
                __m512 x[6], o[6];
                for (int i = 0; i < 6; i++) x[i] = h[i][j];
                bt4(x, o);
                for (int a = 0; a < 6; a++)
                    _mm512_storeu_ps(v + (a * 6 + 3 * hf + j) * VXS(C) + cv, o[a]);
            }
            /* the second half loads again: the compiler would keep all 36
             * loaded vectors live across the halves (spilled) */
            __asm__ volatile("" ::: "memory");
        }
}

static void input_tile(const sqz_wsm *s, const band *b, int64_t t, int64_t g) {
    switch (s->C) {
    case 16:
        input_tile_c(b, t, g, 16);
        break;
    case 32:
        input_tile_c(b, t, g, 32);
        break;
    case 48:
        input_tile_c(b, t, g, 48);
        break;
    default:
        input_tile_c(b, t, g, 64);
        break;
    }
}

/* Output transform of group tile g (band tile t) into the staging: the
 * first pass per half of A^T's rows ({0, 2}: sums, {1, 3}: differences) */
static void output_tile(const sqz_wsm *s, const band *b, int64_t t, int64_t g) {
    const int64_t M = s->M, XS = VXS(M), OW = s->OW;
    const int64_t ty = (t / b->TW) * 4, tx = (t % b->TW) * 4;
    const int64_t rows = b->rows - ty < 4 ? b->rows - ty : 4, cols = OW - tx < 4 ? OW - tx : 4;
    const __m512 z = _mm512_setzero_ps();
    for (int64_t mv = 0; mv < M; mv += 16) {
        const __m512 bias = _mm512_loadu_ps(s->bias + mv);
        for (int hf = 0; hf < 2; hf++) {
            __m512 h[6][2]; /* columns q = hf, hf + 2 */
            for (int a = 0; a < 6; a++) {
                const float *m = b->mo + a * 6 * XS + g * M + mv;
                __m512 x1 = _mm512_loadu_ps(m + XS), x2 = _mm512_loadu_ps(m + 2 * XS);
                __m512 x3 = _mm512_loadu_ps(m + 3 * XS), x4 = _mm512_loadu_ps(m + 4 * XS);
                if (hf == 0) {
                    __m512 s12 = _mm512_add_ps(x1, x2), s34 = _mm512_add_ps(x3, x4);
                    h[a][0] = _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(m), s12), s34);
                    h[a][1] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
                } else {
                    __m512 d12 = _mm512_sub_ps(x1, x2), d34 = _mm512_sub_ps(x3, x4);
                    h[a][0] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
                    h[a][1] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12),
                                            _mm512_loadu_ps(m + 5 * XS));
                }
            }
            for (int k = 0; k < 2; k++) {
                const int q = hf + 2 * k;
                if (q >= cols) continue;
                __m512 x[6], o[4];
                for (int a = 0; a < 6; a++) x[a] = h[a][k];
                at4(x, o);
                for (int p = 0; p < rows; p++) {
                    __m512 v = _mm512_add_ps(o[p], bias);
                    if (s->relu) v = _mm512_max_ps(v, z);
                    _mm512_storeu_ps(b->ys + ((ty + p) * OW + tx + q) * M + mv, v);
                }
            }
            __asm__ volatile("" ::: "memory"); /* as in input_tile */
        }
    }
}

/* ------------------------------------------------------------------ GEMM */

/* Mo[xi][g][M] = V[xi][g][C] . U[xi][C][M] for the G tiles of a group
 * (positions VXS apart) */
static inline __attribute__((always_inline)) void
gemm_group(const float *U, const float *V, float *Mo, int64_t C, const int MV, const int G) {
    const int64_t M = 16 * MV;
    for (int xi = 0; xi < 36; xi++) {
        const float *u = U + (size_t)xi * (size_t)(C * M);
        const float *v = V + (size_t)xi * (size_t)VXS(C);
        __m512 acc[16][WS_MAXV]; /* [G][MV] used: registers once unrolled */
        for (int g = 0; g < G; g++)
            for (int k = 0; k < MV; k++) acc[g][k] = _mm512_setzero_ps();
        for (int64_t c = 0; c < C; c++) {
            __m512 w[WS_MAXV];
            for (int k = 0; k < MV; k++) w[k] = _mm512_load_ps(u + c * M + 16 * k);
            for (int g = 0; g < G; g++) {
                const __m512 a = _mm512_set1_ps(v[g * C + c]);
                for (int k = 0; k < MV; k++) acc[g][k] = _mm512_fmadd_ps(a, w[k], acc[g][k]);
            }
        }
        float *mo = Mo + (size_t)xi * (size_t)VXS(M);
        for (int g = 0; g < G; g++)
            for (int k = 0; k < MV; k++) _mm512_storeu_ps(mo + g * M + 16 * k, acc[g][k]);
    }
}

#define WS_G(MV, G)                                                                                \
    case G:                                                                                        \
        gemm_group(U, V, Mo, C, MV, G);                                                            \
        break
#define WS_G6(MV)                                                                                  \
    WS_G(MV, 1);                                                                                   \
    WS_G(MV, 2);                                                                                   \
    WS_G(MV, 3);                                                                                   \
    WS_G(MV, 4);                                                                                   \
    WS_G(MV, 5);                                                                                   \
    WS_G(MV, 6)

static void gemm_mv1(const float *U, const float *V, float *Mo, int64_t C, int64_t G) {
    switch (G) {
        WS_G6(1);
        WS_G(1, 7);
        WS_G(1, 8);
        WS_G(1, 9);
        WS_G(1, 10);
        WS_G(1, 11);
        WS_G(1, 12);
        WS_G(1, 13);
        WS_G(1, 14);
        WS_G(1, 15);
        WS_G(1, 16);
    default:
        break;
    }
}
static void gemm_mv2(const float *U, const float *V, float *Mo, int64_t C, int64_t G) {
    switch (G) {
        WS_G6(2);
        WS_G(2, 7);
        WS_G(2, 8);
        WS_G(2, 9);
        WS_G(2, 10);
        WS_G(2, 11);
        WS_G(2, 12);
    default:
        break;
    }
}
static void gemm_mv3(const float *U, const float *V, float *Mo, int64_t C, int64_t G) {
    switch (G) {
        WS_G6(3);
        WS_G(3, 7);
        WS_G(3, 8);
    default:
        break;
    }
}
static void gemm_mv4(const float *U, const float *V, float *Mo, int64_t C, int64_t G) {
    switch (G) {
        WS_G6(4);
    default:
        break;
    }
}

/* ------------------------------------------------------------ write back */

/* Staging [pixel][M] of the band -> the M planes from row oy0, with the
 * fused Add (+ ReLU) in registers; SiLU (rowfn) by sqz_conv_post_apply. */
static void write_back(const sqz_wsm *s, const band *b, float *y, const sqz_conv_post *post,
                       int64_t oy0) {
    const int64_t M = s->M, sp = s->OH * s->OW, P = b->rows * s->OW;
    float *y0 = y + oy0 * s->OW;
    const int add = post && post->res && !post->rowfn;
    const __m512 z = _mm512_setzero_ps();
    for (int64_t mv = 0; mv < M; mv += 16)
        for (int64_t p = 0; p < P; p += 16) {
            const int64_t n = P - p < 16 ? P - p : 16;
            const __mmask16 k = mask_of(n);
            __m512 v[16];
            for (int64_t j = 0; j < 16; j++)
                v[j] = j < n ? _mm512_loadu_ps(b->ys + (p + j) * M + mv) : z;
            tr16(v);
            for (int i = 0; i < 16; i++) {
                float *d = y0 + (mv + i) * sp + p;
                _mm512_mask_storeu_ps(d, k, v[i]);
                if (add) {
                    const size_t off = (size_t)(d - post->base);
                    __m512 r = _mm512_add_ps(v[i], _mm512_maskz_loadu_ps(k, post->res + off));
                    if (post->relu) r = _mm512_max_ps(r, z);
                    _mm512_mask_storeu_ps(post->out + off, k, r);
                }
            }
        }
    if (post && !add)
        for (int64_t o = 0; o < M; o++)
            sqz_conv_post_apply(post, y0 + o * sp, (size_t)P, 1, (size_t)P);
}

void sqz_wsm_rows(const sqz_wsm *s, const float *x, float *y, const sqz_conv_post *post,
                  int64_t oy0, int64_t oy1, void *scratch) {
    if (oy1 <= oy0) return;
    band b;
    band_layout(s->C, s->M, s->OW, oy1 - oy0, &b, scratch);
    stage_input(s, &b, x, oy0);
    const int mv = (int)(s->M / 16);
    for (int64_t gi = 0; gi < b.ngroups; gi++) {
        const int64_t t0 = gi * b.G;
        for (int64_t g = 0; g < b.G; g++) input_tile(s, &b, t0 + g < b.NT ? t0 + g : b.NT - 1, g);
        switch (mv) {
        case 1:
            gemm_mv1(s->U, b.v, b.mo, s->C, b.G);
            break;
        case 2:
            gemm_mv2(s->U, b.v, b.mo, s->C, b.G);
            break;
        case 3:
            gemm_mv3(s->U, b.v, b.mo, s->C, b.G);
            break;
        default:
            gemm_mv4(s->U, b.v, b.mo, s->C, b.G);
            break;
        }
        for (int64_t g = 0; g < b.G && t0 + g < b.NT; g++) output_tile(s, &b, t0 + g, g);
    }
    write_back(s, &b, y, post, oy0);
}
