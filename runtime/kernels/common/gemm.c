/* gemm.c - ISA-neutral part of the packed GEMM: scalar microkernel (the twin
 * of the SIMD ones), packing, cache-blocked driver, threads. See gemm.h. */
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "par.h"
#include "ref/ref.h"
#if defined(__SSE2__)
#include <emmintrin.h> /* pack_b_strided's 4x4 transposes (x86-64 baseline) */
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__)
#include "cpu.h"
#endif

/* Cache blocking: a B micro-panel (KC x NR) stays in L1, an A block
 * (MC x KC) in L2. MC is rounded down to a multiple of MR. */
#ifndef GEMM_KC
#define GEMM_KC 256
#endif
#define GEMM_MC 512
/* Below this many multiply-adds (~10 us on one core) a GEMM runs on one
 * thread when workers sleep: waking a sleeping OpenMP worker
 * (OMP_WAIT_POLICY=passive) costs about as much as the work (squeeze-excite
 * 1x1 convs, small classifiers). Spinning workers join in ~1 us. */
#define GEMM_PAR_MIN_MACS (1 << 20)
#define GEMM_PAR_MIN_MACS_SPIN (1 << 16)
/* Packed A bytes above which A is taken to be cold (not in L2) each run. */
#define GEMM_COLD_A (1 << 20)

/* ------------------------------------------------------ scalar microkernel */

#define SC_MR 4
#define SC_NR 8

static float act_cheap(int act, float alpha, float beta, float v) {
    switch (act) {
    case SQZ_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case SQZ_ACT_CLIP:
        return v < alpha ? alpha : (v > beta ? beta : v);
    case SQZ_ACT_LEAKY_RELU:
        return v < 0.0f ? v * alpha : v;
    case SQZ_ACT_HARD_SWISH: {
        float t = v / 6.0f + 0.5f;
        t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
        return v * t;
    }
    case SQZ_ACT_HARD_SIGMOID: {
        float t = alpha * v + beta;
        return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    }
    default:
        return v;
    }
}

/* B row k: the packed panel (boff NULL) or b + boff[k] (indirect). */
static void tile_scalar(size_t kc, const float *a, const float *b, const int64_t *boff, float *c,
                        size_t ldc, size_t m, size_t n, const sqz_gemm_epi *epi) {
    float acc[SC_MR][SC_NR];
    memset(acc, 0, sizeof(acc));
    for (size_t k = 0; k < kc; k++) {
        const float *ak = a + k * SC_MR, *bk = boff ? b + boff[k] : b + k * SC_NR;
        size_t nb = boff ? n : SC_NR; /* indirect rows: only the n valid columns */
        for (int r = 0; r < SC_MR; r++)
            for (size_t j = 0; j < nb; j++) acc[r][j] += ak[r] * bk[j];
    }
    for (size_t r = 0; r < m; r++) {
        float *cr = c + r * ldc;
        float b0 = (!epi->accumulate && epi->bias) ? epi->bias[r] : 0.0f;
        for (size_t j = 0; j < n; j++) {
            float *o = cr + j;
            if (epi->cdst) {
                if (epi->cdst[j] < 0) continue;
                o = cr + epi->cdst[j];
            }
            float v = epi->accumulate ? *o + acc[r][j] : b0 + acc[r][j];
            *o = act_cheap(epi->act, epi->alpha, epi->beta, v);
        }
    }
}

static void ukernel_scalar(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                           size_t m, size_t n, const sqz_gemm_epi *epi) {
    tile_scalar(kc, a, b, NULL, c, ldc, m, n, epi);
}

static void ukernel_ind_scalar(size_t kc, const float *a, const float *b, const int64_t *boff,
                               float *c, size_t ldc, size_t m, size_t n, const sqz_gemm_epi *epi) {
    tile_scalar(kc, a, b, boff, c, ldc, m, n, epi);
}

void sqz_gemv_ref(int VL, size_t K, const float *x, size_t ldx, size_t m, const float *w, size_t nv,
                  size_t n, const float *bias, float *y, size_t ldy, const sqz_gemm_epi *epi) {
    const size_t pw = nv * (size_t)VL;
    for (size_t r = 0; r < m; r++)
        for (size_t j = 0; j < n; j++) {
            float acc = 0.0f;
            for (size_t k = 0; k < K; k++) acc += x[r * ldx + k] * w[k * pw + j];
            float v = acc + (bias ? bias[j] : 0.0f);
            y[r * ldy + j] = act_cheap(epi->act, epi->alpha, epi->beta, v);
        }
}

#define SC_GEMV_VL 4
static void gemv_scalar(size_t K, const float *x, size_t ldx, size_t m, const float *w, size_t nv,
                        size_t n, const float *bias, float *y, size_t ldy,
                        const sqz_gemm_epi *epi) {
    sqz_gemv_ref(SC_GEMV_VL, K, x, ldx, m, w, nv, n, bias, y, ldy, epi);
}

const sqz_gemm_kernel sqz_gemm_scalar = {
    "scalar", SC_MR, SC_NR, ukernel_scalar, ukernel_ind_scalar, 1,
    NULL,     0,     0,     NULL,           gemv_scalar,        SC_GEMV_VL};

size_t sqz_gemv_floats(int VL, int PV, int64_t K, int64_t N) {
    int64_t pw = (int64_t)VL * PV, full = N / pw, rest = (N % pw + VL - 1) / VL * VL;
    return (size_t)(full * pw + rest) * (size_t)K;
}

void sqz_gemv_pack(int VL, int PV, int64_t K, int64_t N, const float *src, int64_t rs, int64_t cs,
                   float scale, float *dst) {
    const int64_t PW = (int64_t)VL * PV;
    for (int64_t j0 = 0; j0 < N; j0 += PW) {
        int64_t cols = N - j0 < PW ? N - j0 : PW, w = (cols + VL - 1) / VL * VL;
        float *d = dst + j0 * K;
        for (int64_t kk = 0; kk < K; kk++)
            for (int64_t j = 0; j < w; j++)
                d[kk * w + j] = j < cols ? scale * src[kk * rs + (j0 + j) * cs] : 0.0f;
    }
}

void sqz_gemm_px_ref(int PM, size_t K, const float *w, const float *x, const int64_t *xoff,
                     int64_t xrow, size_t np, size_t rows, float *c, size_t ldc, size_t m,
                     const sqz_gemm_epi *epi) {
    for (size_t p = 0; p < rows * np; p++) {
        int64_t xp = p < np ? (int64_t)p : xrow + (int64_t)(p - np);
        for (size_t ch = 0; ch < m; ch++) {
            float acc = 0.0f;
            for (size_t k = 0; k < K; k++) acc += w[k * (size_t)PM + ch] * x[xoff[k] + xp];
            float v = acc + (epi->bias ? epi->bias[ch] : 0.0f);
            c[ch * ldc + p] = act_cheap(epi->act, epi->alpha, epi->beta, v);
        }
    }
}

static void band_plane_ref(const float *xc, int64_t IH, int64_t IW, int64_t ih0, int64_t sh,
                           int64_t lead, int64_t sw, int64_t QH, int64_t QW, float *d) {
    /* columns q with 0 <= q * sw - lead < IW: [q0, q1) */
    int64_t q0 = lead <= 0 ? 0 : (lead + sw - 1) / sw;
    int64_t q1 = (IW - 1 + lead) < 0 ? 0 : (IW - 1 + lead) / sw + 1;
    if (q0 > QW) q0 = QW;
    if (q1 > QW) q1 = QW;
    if (q1 < q0) q1 = q0;
    /* one memset per plane for the padding (rows and columns), then only
     * the copies per row; rows are short and many: inline loops with the
     * common strides as constants, no libc call per row */
    memset(d, 0, (size_t)(QH * QW) * sizeof(float));
    for (int64_t r = 0; r < QH; r++, d += QW) {
        int64_t ih = ih0 + r * sh;
        if (ih < 0 || ih >= IH || q1 == q0) continue;
        const float *xr = xc + ih * IW;
        if (sw == 1) {
            const float *xs = xr + (q0 - lead);
            float *ds = d + q0;
            for (int64_t q = 0; q < q1 - q0; q++) ds[q] = xs[q];
        } else if (sw == 2) {
            const float *xs = xr + (2 * q0 - lead);
            float *ds = d + q0;
            for (int64_t q = 0; q < q1 - q0; q++) ds[q] = xs[2 * q];
        } else {
            for (int64_t q = q0; q < q1; q++) d[q] = xr[q * sw - lead];
        }
    }
}

void sqz_gemm_band_ref(const float *xc, int64_t IH, int64_t IW, int64_t ih0, int64_t sh,
                       int64_t lead, int64_t sw, int64_t QH, int64_t QW, float *d, int64_t nb,
                       int64_t ps) {
    for (int64_t b = 0; b < nb; b++)
        band_plane_ref(xc, IH, IW, ih0, sh, lead - b, sw, QH, QW, d + b * ps);
}

size_t sqz_gemm_px_floats(int PM, int64_t M, int64_t K) {
    return (size_t)((M + PM - 1) / PM) * (size_t)PM * (size_t)K;
}

void sqz_gemm_pack_px(int PM, int64_t M, int64_t K, const float *src, int64_t rs, float *dst) {
    for (int64_t j = 0; j * PM < M; j++) {
        float *d = dst + j * PM * K;
        for (int64_t kk = 0; kk < K; kk++)
            for (int r = 0; r < PM; r++) {
                int64_t row = j * PM + r;
                d[kk * PM + r] = row < M ? src[row * rs + kk] : 0.0f;
            }
    }
}

const sqz_gemm_kernel *sqz_gemm_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512()) return &sqz_gemm_avx512;
    if (sqz_cpu_has_avx2_fma()) return &sqz_gemm_avx2;
#endif
#if defined(__aarch64__)
    if (sqz_cpu_has_neon()) return &sqz_gemm_neon;
#endif
    return &sqz_gemm_scalar;
}

/* ----------------------------------------------------------------- packing */

size_t sqz_gemm_packed_a_floats(const sqz_gemm_kernel *k, int64_t M, int64_t K) {
    return (size_t)((M + k->mr - 1) / k->mr) * (size_t)k->mr * (size_t)K;
}

size_t sqz_gemm_packed_b_floats(const sqz_gemm_kernel *k, int64_t K, int64_t N) {
    return (size_t)((N + k->nr - 1) / k->nr) * (size_t)k->nr * (size_t)K;
}

/* Rows [m0, m0+mc) x k [k0, k0+kc) of a strided A into kc-long MR panels. */
static void pack_a_block(int MR, const float *src, int64_t rs, int64_t cs, int64_t m0, int64_t mc,
                         int64_t k0, int64_t kc, float *dst) {
    for (int64_t i = 0; i < mc; i += MR) {
        int64_t rows = mc - i < MR ? mc - i : MR;
        float *d = dst + i * kc;
        for (int64_t r = 0; r < rows; r++) {
            const float *s = src + (m0 + i + r) * rs + k0 * cs;
            if (cs == 1)
                for (int64_t k = 0; k < kc; k++) d[k * MR + r] = s[k];
            else
                for (int64_t k = 0; k < kc; k++) d[k * MR + r] = s[k * cs];
        }
        for (int64_t r = rows; r < MR; r++)
            for (int64_t k = 0; k < kc; k++) d[k * MR + r] = 0.0f;
    }
}

/* The A panels of rows [m0, m0+mc) x k [k0, k0+kc): in place when A was
 * packed whole, else packed into abuf (both loops of the driver). */
static inline __attribute__((always_inline)) const float *a_block(const sqz_gemm_args *g, int MR,
                                                                  int64_t m0, int64_t mc,
                                                                  int64_t k0, int64_t kc,
                                                                  float *abuf) {
    if (g->a.packed) {
        int64_t mpad = (g->M + MR - 1) / MR * MR;
        return g->a.packed + k0 * mpad + m0 * kc;
    }
    pack_a_block(MR, g->a.data, g->a.rs, g->a.cs, m0, mc, k0, kc, abuf);
    return abuf;
}

typedef struct strided_b {
    const float *src;
    int64_t rs, cs;
} strided_b;

static void pack_b_strided(const void *ctx, int64_t k0, int64_t kc, int64_t n0, int64_t nr, int NR,
                           float *dst) {
    const strided_b *s = ctx;
    /* full panels of the common widths: constant-size copies (inlined vector
     * moves instead of a libc call per row) */
    if (s->cs == 1 && nr == NR && (NR == 32 || NR == 16)) {
        const float *row = s->src + k0 * s->rs + n0;
        if (NR == 32)
            for (int64_t k = 0; k < kc; k++, row += s->rs)
                memcpy(dst + k * 32, row, 32 * sizeof(float));
        else
            for (int64_t k = 0; k < kc; k++, row += s->rs)
                memcpy(dst + k * 16, row, 16 * sizeof(float));
        return;
    }
    int64_t k = 0;
#if defined(__SSE2__)
    /* a transposed source (rs 1: column n is src[n cs ..], a weight stored
     * [N, K] as Gemm's transB gives it): 4 x 4 blocks through registers (4
     * loads, a transpose, 4 stores) instead of a strided load per float,
     * which was most of a calibration session's start (LeNet-300-100's
     * 784 x 300 weight: ~150 us); the columns past the last 4 below */
    const int64_t nr4 = s->rs == 1 && s->cs != 1 ? nr & ~(int64_t)3 : 0;
    if (nr4 > 0) {
        const int64_t cs = s->cs;
        for (; k + 4 <= kc; k += 4) {
            const float *col = s->src + k0 + k + n0 * cs;
            float *d = dst + k * NR;
            for (int64_t j = 0; j < nr4; j += 4, col += 4 * cs) {
                __m128 a = _mm_loadu_ps(col), b = _mm_loadu_ps(col + cs);
                __m128 c = _mm_loadu_ps(col + 2 * cs), e = _mm_loadu_ps(col + 3 * cs);
                _MM_TRANSPOSE4_PS(a, b, c, e);
                _mm_storeu_ps(d + j, a);
                _mm_storeu_ps(d + NR + j, b);
                _mm_storeu_ps(d + 2 * NR + j, c);
                _mm_storeu_ps(d + 3 * NR + j, e);
            }
            for (int kk = 0; kk < 4; kk++) {
                const float *row = s->src + k0 + k + kk + n0 * cs;
                for (int64_t j = nr4; j < nr; j++) d[kk * NR + j] = row[j * cs];
                for (int64_t j = nr; j < NR; j++) d[kk * NR + j] = 0.0f;
            }
        }
    }
#endif
    for (; k < kc; k++) {
        const float *row = s->src + (k0 + k) * s->rs + n0 * s->cs;
        float *d = dst + k * NR;
        if (s->cs == 1) {
            memcpy(d, row, (size_t)nr * sizeof(float));
        } else {
            for (int64_t j = 0; j < nr; j++) d[j] = row[j * s->cs];
        }
        for (int64_t j = nr; j < NR; j++) d[j] = 0.0f;
    }
}

/* Indirect B rows (sqz_gemm_src.off) into a panel, for kernels without
 * ukernel_ind. */
static void pack_b_ind(const float *src, const int64_t *off, int64_t kc, int64_t nr, int NR,
                       float *dst) {
    /* full panels of the common widths: constant-size (inlined) copies */
    if (nr == NR && NR == 32) {
        for (int64_t k = 0; k < kc; k++) memcpy(dst + k * 32, src + off[k], 32 * sizeof(float));
        return;
    }
    if (nr == NR && NR == 16) {
        for (int64_t k = 0; k < kc; k++) memcpy(dst + k * 16, src + off[k], 16 * sizeof(float));
        return;
    }
    for (int64_t k = 0; k < kc; k++) {
        float *d = dst + k * NR;
        memcpy(d, src + off[k], (size_t)nr * sizeof(float));
        for (int64_t j = nr; j < NR; j++) d[j] = 0.0f;
    }
}

/* Columns [n1, ne1) x k [k0, k0+kc) of B into its NR panels at dst (panel
 * of column n0 at (n0 - n1) * kc). Row-major sources (strided with cs 1, or
 * rows at offsets) are copied a whole slab row at a time: one contiguous run
 * per row, which the hardware prefetchers follow, instead of one panel's
 * width from every row per panel. */
static void pack_b_slab(const sqz_gemm_args *g, sqz_gemm_pack_b_fn packb, const void *pctx,
                        int64_t k0, int64_t kc, int64_t n1, int64_t ne1, int NR, float *dst) {
    int rows = !g->b.pack_b && (g->b.off || g->b.cs == 1);
    if (!rows) {
        for (int64_t n0 = n1; n0 < ne1; n0 += NR)
            packb(pctx, k0, kc, n0, ne1 - n0 < NR ? ne1 - n0 : NR, NR, dst + (n0 - n1) * kc);
        return;
    }
    int64_t full = (ne1 - n1) / NR, rest = (ne1 - n1) % NR;
    for (int64_t k = 0; k < kc; k++) {
        const float *row =
            g->b.off ? g->b.data + g->b.off[k0 + k] + n1 : g->b.data + (k0 + k) * g->b.rs + n1;
        float *d = dst + k * NR;
        if (NR == 32)
            for (int64_t p = 0; p < full; p++)
                memcpy(d + p * kc * 32, row + p * 32, 32 * sizeof(float));
        else
            for (int64_t p = 0; p < full; p++)
                memcpy(d + p * kc * NR, row + p * NR, (size_t)NR * sizeof(float));
        if (rest) {
            float *dr = d + full * kc * NR;
            memcpy(dr, row + full * NR, (size_t)rest * sizeof(float));
            for (int64_t j = rest; j < NR; j++) dr[j] = 0.0f;
        }
    }
}

/* Full A: k-blocks of GEMM_KC (the last may be shorter), each holding all
 * kc-long MR panels back to back, so the driver's A block (k0, m0) is one
 * contiguous run (no L2 set conflicts from a K-sized panel stride). */
void sqz_gemm_pack_a(const sqz_gemm_kernel *k, int64_t M, int64_t K, const float *src, int64_t rs,
                     int64_t cs, float *dst) {
    int64_t mpad = (M + k->mr - 1) / k->mr * k->mr;
    for (int64_t k0 = 0; k0 < K; k0 += GEMM_KC) {
        int64_t kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
        pack_a_block(k->mr, src, rs, cs, 0, M, k0, kc, dst + k0 * mpad);
    }
}

void sqz_gemm_pack_b(const sqz_gemm_kernel *k, int64_t K, int64_t N, const float *src, int64_t rs,
                     int64_t cs, float *dst) {
    strided_b s = {src, rs, cs};
    for (int64_t n0 = 0, j = 0; n0 < N; n0 += k->nr, j++) {
        int64_t nr = N - n0 < k->nr ? N - n0 : k->nr;
        pack_b_strided(&s, 0, K, n0, nr, k->nr, dst + j * k->nr * K);
    }
}

/* ------------------------------------------------------------------ driver */

static int act_is_cheap(int act) {
    return act != SQZ_ACT_SIGMOID && act != SQZ_ACT_TANH;
}

/* k-block of the driver: GEMM_KC, but the whole K (up to GEMM_KC_GEMV) for
 * a one-tile-high product with packed B (a classifier's matrix-vector
 * product): each B panel is then one sequential stream from memory instead
 * of K / KC short runs a panel's length apart, which the hardware
 * prefetchers follow poorly. */
#define GEMM_KC_GEMV 16384
static int64_t kc_of(const sqz_gemm_args *g) {
    int64_t kc = GEMM_KC;
    if (!g->a.packed && g->b.packed && g->M <= g->kernel->mr) kc = GEMM_KC_GEMV;
    return g->K < kc ? g->K : kc;
}

static int64_t mc_of(const sqz_gemm_kernel *k) {
    return (GEMM_MC / k->mr) * k->mr;
}

/* Indirect B rows are read in place (no panel copies) by kernels that can,
 * when few row tiles share each panel: the in-place loads cross cache lines
 * (taps shift rows by one float), which costs more than a copy once a panel
 * serves over GEMM_IND_MAX_TILES tiles (bench_gemm on AVX-512, 8 x 32
 * tiles: 3x3 convs with M = 16..64 gain up to ~5%, M = 128 loses ~5%). */
#define GEMM_IND_MAX_TILES 8
static int b_in_place(const sqz_gemm_args *g, int64_t mb, int64_t me) {
    const sqz_gemm_kernel *k = g->kernel;
    return !g->b.packed && g->b.off && k->ukernel_ind &&
           (me - mb + k->mr - 1) / k->mr <= GEMM_IND_MAX_TILES;
}

/* Large products (more rows than one A block, B packed per run): the
 * columns are cut into blocks of NC and the rows into blocks of GEMM_BIG_MB;
 * for each column block B is packed once, for all k, into the scratch
 * (GEMM_BIG_B_BYTES at most: NC = that / 4K, a multiple of NR), and each
 * MB x NC block of C stays in L2 over all its k blocks while A streams in.
 * Before, C was swept from L3 once per k block (K / KC times) and B was
 * re-packed from its rows (a new page per row at 1024 columns, which the
 * hardware prefetchers do not follow) for every m block. */
#define GEMM_BIG_MB 256
#define GEMM_BIG_B_BYTES (1 << 20)
#define GEMM_BIG_NC_MAX 512
static int64_t nc_of(const sqz_gemm_args *g) {
    const sqz_gemm_kernel *k = g->kernel;
    if (g->b.packed || g->wide_qw > 0 || g->M <= mc_of(k) || b_in_place(g, 0, g->M)) return k->nr;
    int64_t nc = GEMM_BIG_B_BYTES / (int64_t)sizeof(float) / g->K;
    if (nc > GEMM_BIG_NC_MAX) nc = GEMM_BIG_NC_MAX;
    if (nc > g->N) nc = g->N;
    nc = nc / k->nr * k->nr;
    return nc > k->nr ? nc : k->nr;
}

/* Per-thread scratch floats (a multiple of 16 floats = 64 bytes). */
static size_t thread_scratch_floats(const sqz_gemm_args *g) {
    const sqz_gemm_kernel *k = g->kernel;
    int64_t kc = kc_of(g);
    size_t f = 0;
    int64_t nc = nc_of(g);
    if (!g->b.packed && !b_in_place(g, 0, g->M)) f += (size_t)(nc > k->nr ? g->K : kc) * (size_t)nc;
    if (!g->a.packed) {
        int64_t mc = g->M < mc_of(k) ? g->M : mc_of(k);
        mc = (mc + k->mr - 1) / k->mr * k->mr;
        f += (size_t)mc * (size_t)kc;
    }
    return (f + 15) / 16 * 16;
}

typedef struct split {
    int nt;
    int by_m;
    int64_t panels; /* along the split dimension */
    int64_t unit;   /* rows or columns per panel */
} split;

/* An N split of a B that is not packed (read in place or packed per run
 * from any column) cuts at 16-column vectors rather than NR-column panels:
 * 196 columns (14x14) on NR = 32 went 128 / 68 to two threads, now 112 / 84
 * (7 / 6 vectors). */
#define GEMM_SPLIT_COLS 16

#define GEMM_SPLIT_LAMBDA 8.0

static split plan_split(const sqz_gemm_args *g) {
    split s = {1, 0, 0, 1};
    int nt = g->num_threads > 1 ? g->num_threads : 1;
    int64_t pn = (g->N + g->kernel->nr - 1) / g->kernel->nr;
    int64_t pm = (g->M + g->kernel->mr - 1) / g->kernel->mr;
    if (nt <= 1 || (pn <= 1 && pm <= 1)) return s;
    int64_t min_macs = g->par_min_macs > 0 ? g->par_min_macs : GEMM_PAR_MIN_MACS;
    if ((double)g->M * (double)g->N * (double)g->K < (double)min_macs) return s;
    /* Per-thread cost of each choice, in multiply-adds per k step: its
     * largest tile count x MR x NR, plus GEMM_SPLIT_LAMBDA per row of A and
     * column of B it reads (an element read costs about that many MACs when
     * it comes from L3 or the other core's cache: the input of a split node
     * is often half in the other core's cache). Tile counts alone sent the
     * 1x1 convs of MobileNetV2 with M = 32 to an M split where both threads
     * read the whole input: slower at 2 threads than at 1. */
    int64_t cn = (pn + nt - 1) / nt * pm, cm = (pm + nt - 1) / nt * pn;
    double tile = (double)g->kernel->mr * (double)g->kernel->nr;
    double rn = (double)(pn + nt - 1) / nt * g->kernel->nr,
           rm = (double)(pm + nt - 1) / nt * g->kernel->mr;
    double cost_n = (double)cn * tile + GEMM_SPLIT_LAMBDA * ((double)g->M + rn);
    double cost_m = (double)cm * tile + GEMM_SPLIT_LAMBDA * (rm + (double)g->N);
    s.by_m = pn <= 1 || (pm > 1 && cost_m < cost_n);
    s.unit = s.by_m ? g->kernel->mr : g->kernel->nr;
    if (!s.by_m && !g->b.packed && g->kernel->nr % GEMM_SPLIT_COLS == 0) s.unit = GEMM_SPLIT_COLS;
    s.panels = ((s.by_m ? g->M : g->N) + s.unit - 1) / s.unit;
    s.nt = (int)(s.panels < nt ? s.panels : nt);
    return s;
}

static int64_t par_min_macs(int64_t spin_default) {
    const char *e = getenv("SQZ_PAR_MIN_MACS");
    if (e && *e) {
        char *end;
        long long v = strtoll(e, &end, 10);
        if (*end == '\0' && v > 0) return (int64_t)v;
    }
    const char *w = getenv("OMP_WAIT_POLICY");
    int passive = w && (w[0] == 'p' || w[0] == 'P');
    return passive ? GEMM_PAR_MIN_MACS : spin_default;
}

int64_t sqz_gemm_par_min_macs(void) {
    return par_min_macs(GEMM_PAR_MIN_MACS_SPIN);
}

/* Convs split from the same work as matrix products since the executor's
 * helpers became a persistent pool (par.c: the master never waits for a
 * helper to arrive). Measured on a quiet Zen 4 (1 MB L2), 2 threads,
 * bench/latency.sh, conv threshold 2^20 / Gemm 2^17 -> both 2^16: small
 * ResNet 0.130 -> 0.116 ms (its 0.1-0.9M-MAC convs split), small MobileNet
 * 0.132 -> 0.128, LeNet-5 0.0125 -> 0.0115, the torchvision models within
 * noise. (With an OpenMP region per run, 2^19-2^20 had been better: the
 * small MobileNet 0.205 ms at 2^17 vs 0.128 at 2^19.) */
int64_t sqz_gemm_conv_par_min_macs(void) {
    return par_min_macs(GEMM_PAR_MIN_MACS_SPIN);
}

size_t sqz_gemm_scratch_bytes(const sqz_gemm_args *g) {
    if (g->M <= 0 || g->N <= 0 || g->K <= 0) return 0;
    split s = plan_split(g);
    return thread_scratch_floats(g) * sizeof(float) * (size_t)s.nt;
}

static void post_act(const sqz_gemm_args *g, float *c, int64_t m, int64_t n) {
    ref_act act = {g->act, g->alpha, g->beta};
    for (int64_t r = 0; r < m; r++) ref_act_apply(&act, c + r * g->ldc, (size_t)n);
}

void sqz_conv_add_ref(const float *y, const float *res, float *out, size_t n, int relu) {
    if (relu)
        for (size_t j = 0; j < n; j++) {
            float v = y[j] + res[j];
            out[j] = v > 0.0f ? v : 0.0f;
        }
    else
        for (size_t j = 0; j < n; j++) out[j] = y[j] + res[j];
}

sqz_conv_add_fn sqz_conv_add_best(void) {
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512()) return sqz_x86_conv_add_avx512;
    if (sqz_cpu_has_avx2_fma()) return sqz_x86_conv_add_avx2;
#endif
    return sqz_conv_add_ref; /* aarch64: the compiler's NEON loop */
}

void sqz_conv_post_apply(const sqz_conv_post *q, float *c, size_t ldc, size_t m, size_t n) {
    sqz_conv_add_fn add = q->addfn ? q->addfn : sqz_conv_add_ref;
    if (ldc == n) { /* whole planes (e.g. px tiles of 7x7 planes): one run */
        n *= m;
        m = 1;
    }
    for (size_t r = 0; r < m; r++) {
        float *y = c + r * ldc;
        if (q->res) {
            const size_t off = (size_t)(y - q->base);
            add(y, q->res + off, q->out + off, n, q->relu);
        }
        if (q->rowfn) q->rowfn(y, y, n);
    }
}

void sqz_conv_post_prefetch(const sqz_conv_post *q, const float *c, size_t ldc, size_t m,
                            size_t n) {
    if (!q->res || !n) return;
    for (size_t r = 0; r < m; r++) {
        const float *res = q->res + (c + r * ldc - q->base);
        for (size_t j = 0; j < n; j += 16) __builtin_prefetch(res + j);
        __builtin_prefetch(res + n - 1);
    }
}

/* Column map of the panel at wide column n0, nr columns (see gemm.h);
 * returns the number of kept columns, *first the destination of the first. */
static int wide_map(const sqz_gemm_args *g, int64_t n0, int64_t nr, int NR, int32_t *cdst,
                    int32_t *first) {
    int64_t q = n0 / g->wide_qw, r = n0 % g->wide_qw;
    int kept = 0;
    *first = 0;
    for (int j = 0; j < NR; j++) {
        cdst[j] = -1;
        if (j < nr && r < g->wide_ow) {
            cdst[j] = (int32_t)(q * g->wide_ow + r);
            if (!kept++) *first = cdst[j];
        }
        if (++r == g->wide_qw) {
            r = 0;
            q++;
        }
    }
    return kept;
}

/* One tile through a kernel without colmap: a tile buffer, gathered from /
 * scattered to the mapped columns. */
static void tile_via_buffer(const sqz_gemm_args *g, size_t kc, const float *ap, const float *bp,
                            const int64_t *boff, float *c, int64_t mr, int64_t nr,
                            const int32_t *cdst, sqz_gemm_epi *epi, int post) {
    const sqz_gemm_kernel *kr = g->kernel;
    float tb[16 * 64];
    const int NR = kr->nr;
    if (epi->accumulate)
        for (int64_t r = 0; r < mr; r++)
            for (int64_t j = 0; j < nr; j++)
                tb[r * NR + j] = cdst[j] >= 0 ? c[r * g->ldc + cdst[j]] : 0.0f;
    epi->cdst = NULL;
    if (boff)
        kr->ukernel_ind(kc, ap, bp, boff, tb, (size_t)NR, (size_t)mr, (size_t)nr, epi);
    else
        kr->ukernel(kc, ap, bp, tb, (size_t)NR, (size_t)mr, (size_t)nr, epi);
    if (post) {
        ref_act act = {g->act, g->alpha, g->beta};
        for (int64_t r = 0; r < mr; r++) ref_act_apply(&act, tb + r * NR, (size_t)nr);
    }
    for (int64_t r = 0; r < mr; r++)
        for (int64_t j = 0; j < nr; j++)
            if (cdst[j] >= 0) c[r * g->ldc + cdst[j]] = tb[r * NR + j];
}

/* The MR-row tiles of rows [m0, m0 + mc) on one column panel (n0, nr
 * columns; its B panel bp / indirect rows boff) over one k block: microkernel,
 * then on the last k block the post-pass activation and the fused conv
 * epilogue. Shared by gemm_part and gemm_part_big (always inlined: a call per
 * panel, or one loop for both drivers, cost ResNet-18's convs 4-5%). */
static inline __attribute__((always_inline)) void
row_tiles(const sqz_gemm_args *g, size_t kc, int64_t m0, int64_t mc, int64_t n0, int64_t nr,
          const float *ablk, int64_t astride, const float *bp, const int64_t *boff, int wide,
          int kept, int32_t first, int32_t *cdst, sqz_gemm_epi *epi, int last, int cheap,
          int via_buf, int prefetch_a) {
    const sqz_gemm_kernel *kr = g->kernel;
    const int MR = kr->mr;
    for (int64_t i = 0; i < mc; i += MR) {
        int64_t mr = mc - i < MR ? mc - i : MR;
        float *c = wide ? g->c + (m0 + i) * g->ldc : g->c + (m0 + i) * g->ldc + n0;
        const float *ap = ablk + (i / MR) * astride;
        epi->bias = g->bias ? g->bias + m0 + i : NULL;
        epi->prefetch_a = prefetch_a;
        epi->cdst = wide ? cdst : NULL;
        /* the residual of the tile is read after kc steps */
        if (last && g->post)
            sqz_conv_post_prefetch(g->post, wide ? c + first : c, (size_t)g->ldc, (size_t)mr,
                                   (size_t)(wide ? kept : nr));
        if (via_buf) {
            tile_via_buffer(g, kc, ap, bp, boff, c, mr, nr, cdst, epi, last && !cheap);
            if (last && g->post)
                sqz_conv_post_apply(g->post, c + first, (size_t)g->ldc, (size_t)mr, (size_t)kept);
            continue;
        }
        if (boff)
            kr->ukernel_ind(kc, ap, bp, boff, c, (size_t)g->ldc, (size_t)mr, (size_t)nr, epi);
        else
            kr->ukernel(kc, ap, bp, c, (size_t)g->ldc, (size_t)mr, (size_t)nr, epi);
        if (last && !cheap) {
            if (wide)
                post_act(g, c + first, mr, kept);
            else
                post_act(g, c, mr, nr);
        }
        if (last && g->post) {
            if (wide)
                sqz_conv_post_apply(g->post, c + first, (size_t)g->ldc, (size_t)mr, (size_t)kept);
            else
                sqz_conv_post_apply(g->post, c, (size_t)g->ldc, (size_t)mr, (size_t)nr);
        }
    }
}

/* gemm_part for large products (nc_of > NR): the blocked loop below with
 * column blocks, row blocks and B packed once per column block. Kept apart
 * from gemm_part so the smaller products (convs) run their loop unchanged
 * (one loop for both cost the torchvision ResNet-18 convs ~4%). */
__attribute__((noinline)) static void gemm_part_big(const sqz_gemm_args *g, int64_t mb, int64_t me,
                                                    int64_t nb, int64_t ne, float *scratch) {
    const sqz_gemm_kernel *kr = g->kernel;
    const int MR = kr->mr, NR = kr->nr;
    const int64_t K = g->K, MC = mc_of(kr);
    float *bbuf = scratch;
    /* B read in place (indirect rows, kernel with ukernel_ind): no panel */
    const int in_place = b_in_place(g, mb, me);
    const int64_t KC = kc_of(g), NC = in_place ? NR : nc_of(g);
    const int slab = NC > NR; /* the large-product blocking (nc_of) */
    const int64_t MB = slab ? GEMM_BIG_MB / MR * MR : me - mb;
    float *abuf = scratch + ((g->b.packed || in_place) ? 0 : (size_t)(slab ? K : KC) * (size_t)NC);
    strided_b sb = {g->b.data, g->b.rs, g->b.cs};
    sqz_gemm_pack_b_fn packb = g->b.pack_b ? g->b.pack_b : pack_b_strided;
    const void *pctx = g->b.pack_b ? g->b.pack_ctx : (const void *)&sb;
    const int wide = g->wide_qw > 0, via_buf = wide && !kr->colmap;
    int cheap = act_is_cheap(g->act);
    sqz_gemm_epi epi;
    int32_t cdst[64], first = 0;
    int kept = 0;
    /* packed A above ~half of L2 comes from L3/DRAM on its first use in a
     * run (big weights, e.g. 3x3 512->512 convs on 7x7 planes): the kernel
     * prefetches it on the first column panel of each k block */
    int a_cold = g->a.packed && sqz_gemm_packed_a_floats(kr, g->M, K) * sizeof(float) > GEMM_COLD_A;
    const int64_t nkb = (K + KC - 1) / KC, nib = (me - mb + MB - 1) / MB;
    const int64_t nsteps = (ne - nb + NC - 1) / NC * nib * nkb;
    for (int64_t step = 0; step < nsteps; step++) {
        /* n blocks of NC columns, m blocks of MB rows, k blocks of KC: a
         * C block stays in L2 over its k blocks */
        int64_t k0 = step % nkb * KC, m1 = mb + step / nkb % nib * MB;
        int64_t n1 = nb + step / (nkb * nib) * NC;
        int64_t ne1 = ne - n1 < NC ? ne : n1 + NC, m1e = me - m1 < MB ? me : m1 + MB;
        /* equal m-blocks of at most MC rows (no thin last block) */
        int64_t nmb = (m1e - m1 + MC - 1) / MC;
        int64_t mstep = ((m1e - m1 + nmb - 1) / nmb + MR - 1) / MR * MR;
        int64_t kc = K - k0 < KC ? K - k0 : KC;
        int last = k0 + kc == K;
        epi.accumulate = k0 > 0;
        epi.act = (last && cheap) ? g->act : SQZ_ACT_NONE;
        epi.alpha = g->alpha;
        epi.beta = g->beta;
        float *sl = bbuf + (slab ? k0 * NC : 0); /* B[k0.., n1..ne1) */
        if (slab && m1 == mb)                    /* packed in the first m block, read by all */
            pack_b_slab(g, packb, pctx, k0, kc, n1, ne1, NR, sl);
        for (int64_t m0 = m1; m0 < m1e; m0 += mstep) {
            int64_t mc = m1e - m0 < mstep ? m1e - m0 : mstep;
            const float *ablk = a_block(g, MR, m0, mc, k0, kc, abuf);
            const int64_t astride = MR * kc; /* floats between A panels */
            for (int64_t n0 = n1; n0 < ne1; n0 += NR) {
                int64_t nr = ne1 - n0 < NR ? ne1 - n0 : NR;
                const float *bp;
                const int64_t *boff = NULL;
                if (g->b.packed) {
                    bp = g->b.packed + n0 * K + k0 * NR;
                } else if (in_place) {
                    bp = g->b.data + n0;
                    boff = g->b.off + k0;
                } else if (slab) {
                    bp = sl + (n0 - n1) * kc;
                } else if (g->b.off) {
                    pack_b_ind(g->b.data + n0, g->b.off + k0, kc, nr, NR, bbuf);
                    bp = bbuf;
                } else {
                    packb(pctx, k0, kc, n0, nr, NR, bbuf);
                    bp = bbuf;
                }
                if (wide) kept = wide_map(g, n0, nr, NR, cdst, &first);
                if (wide && !kept) continue; /* all garbage columns */
                row_tiles(g, (size_t)kc, m0, mc, n0, nr, ablk, astride, bp, boff, wide, kept, first,
                          cdst, &epi, last, cheap, via_buf, a_cold && n0 == n1);
            }
        }
    }
}

/* C rows [mb, me) x columns [nb, ne) (mb multiple of MR; nb of NR when B is
 * packed, any column otherwise). */
static void gemm_part(const sqz_gemm_args *g, int64_t mb, int64_t me, int64_t nb, int64_t ne,
                      float *scratch) {
    const sqz_gemm_kernel *kr = g->kernel;
    if (nc_of(g) > kr->nr && !b_in_place(g, mb, me)) {
        gemm_part_big(g, mb, me, nb, ne, scratch);
        return;
    }
    const int MR = kr->mr, NR = kr->nr;
    const int64_t K = g->K, MC = mc_of(kr);
    float *bbuf = scratch;
    const int64_t KC = kc_of(g);
    /* B read in place (indirect rows, kernel with ukernel_ind): no panel */
    const int in_place = b_in_place(g, mb, me);
    float *abuf = scratch + ((g->b.packed || in_place) ? 0 : (size_t)KC * (size_t)NR);
    strided_b sb = {g->b.data, g->b.rs, g->b.cs};
    sqz_gemm_pack_b_fn packb = g->b.pack_b ? g->b.pack_b : pack_b_strided;
    const void *pctx = g->b.pack_b ? g->b.pack_ctx : (const void *)&sb;
    const int wide = g->wide_qw > 0, via_buf = wide && !kr->colmap;
    int cheap = act_is_cheap(g->act);
    /* equal m-blocks of at most MC rows (no thin last block) */
    int64_t nmb = (me - mb + MC - 1) / MC;
    int64_t mstep = ((me - mb + nmb - 1) / nmb + MR - 1) / MR * MR;
    sqz_gemm_epi epi;
    int32_t cdst[64], first = 0;
    int kept = 0;
    /* packed A above ~half of L2 comes from L3/DRAM on its first use in a
     * run (big weights, e.g. 3x3 512->512 convs on 7x7 planes): the kernel
     * prefetches it on the first column panel of each k block */
    int a_cold = g->a.packed && sqz_gemm_packed_a_floats(kr, g->M, K) * sizeof(float) > GEMM_COLD_A;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
        int last = k0 + kc == K;
        epi.accumulate = k0 > 0;
        epi.act = (last && cheap) ? g->act : SQZ_ACT_NONE;
        epi.alpha = g->alpha;
        epi.beta = g->beta;
        for (int64_t m0 = mb; m0 < me; m0 += mstep) {
            int64_t mc = me - m0 < mstep ? me - m0 : mstep;
            const float *ablk = a_block(g, MR, m0, mc, k0, kc, abuf);
            const int64_t astride = MR * kc; /* floats between A panels */
            for (int64_t n0 = nb; n0 < ne; n0 += NR) {
                int64_t nr = ne - n0 < NR ? ne - n0 : NR;
                const float *bp;
                const int64_t *boff = NULL;
                if (g->b.packed) {
                    bp = g->b.packed + n0 * K + k0 * NR;
                } else if (in_place) {
                    bp = g->b.data + n0;
                    boff = g->b.off + k0;
                } else if (g->b.off) {
                    pack_b_ind(g->b.data + n0, g->b.off + k0, kc, nr, NR, bbuf);
                    bp = bbuf;
                } else {
                    packb(pctx, k0, kc, n0, nr, NR, bbuf);
                    bp = bbuf;
                }
                if (wide) kept = wide_map(g, n0, nr, NR, cdst, &first);
                if (wide && !kept) continue; /* all garbage columns */
                row_tiles(g, (size_t)kc, m0, mc, n0, nr, ablk, astride, bp, boff, wide, kept, first,
                          cdst, &epi, last, cheap, via_buf, a_cold && n0 == nb);
            }
        }
    }
}

void sqz_gemm_range(const sqz_gemm_args *g, int64_t mb, int64_t me, int64_t nb, int64_t ne,
                    void *scratch) {
    if (mb >= me || nb >= ne || g->K <= 0) return;
    gemm_part(g, mb, me, nb, ne, scratch);
}

static void gemm_thread(const sqz_gemm_args *g, const split *s, int t, float *scratch) {
    int64_t per = s->panels / s->nt, extra = s->panels % s->nt;
    int64_t p0 = t * per + (t < extra ? t : extra), np = per + (t < extra ? 1 : 0);
    if (np <= 0) return;
    float *sc = scratch + thread_scratch_floats(g) * (size_t)t;
    int64_t b = p0 * s->unit, e = (p0 + np) * s->unit;
    if (s->by_m)
        gemm_part(g, b, e < g->M ? e : g->M, 0, g->N, sc);
    else
        gemm_part(g, 0, g->M, b, e < g->N ? e : g->N, sc);
}

typedef struct gemm_job {
    const sqz_gemm_args *g;
    const split *s;
    float *scratch;
} gemm_job;

static void gemm_job_part(void *arg, int t) {
    const gemm_job *j = arg;
    gemm_thread(j->g, j->s, t, j->scratch);
}

void sqz_gemm(const sqz_gemm_args *g, void *scratch) {
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K <= 0) { /* empty sum: bias + activation */
        int64_t n = g->wide_qw > 0
                        ? g->N / g->wide_qw * g->wide_ow +
                              (g->N % g->wide_qw < g->wide_ow ? g->N % g->wide_qw : g->wide_ow)
                        : g->N;
        for (int64_t r = 0; r < g->M; r++) {
            float *c = g->c + r * g->ldc;
            float b = g->bias ? g->bias[r] : 0.0f;
            for (int64_t j = 0; j < n; j++) c[j] = b;
        }
        post_act(g, g->c, g->M, n);
        if (g->post) sqz_conv_post_apply(g->post, g->c, (size_t)g->ldc, (size_t)g->M, (size_t)n);
        return;
    }
    split s = plan_split(g);
    if (s.nt <= 1) {
        gemm_part(g, 0, g->M, 0, g->N, scratch);
        return;
    }
    s.panels = s.panels ? s.panels : 1;
    gemm_job j = {g, &s, scratch};
    sqz_par_for(s.nt, s.nt, gemm_job_part, &j);
}
