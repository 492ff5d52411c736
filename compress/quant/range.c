/* range.c - streaming activation statistics and range selection
 * (sqzc/quant_range.h). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KL_AVX2 1
#endif

#include "sqzc/quant.h"
#include "sqzc/quant_range.h"

#define NB SQZC_QHIST_BINS
/* one-pass mode: fine bins a side (finer than the final ones: the final
 * width max / NB is between one and two fine widths) */
#define NF (2 * NB)

void sqzc_qstat_init(sqzc_qstat *s) {
    memset(s, 0, sizeof *s);
    s->min = 0.0;
    s->max = 0.0;
    s->pass = 1;
}

void sqzc_qstat_free(sqzc_qstat *s) {
    free(s->pos);
    free(s->neg);
    free(s->sub);
    s->sub = NULL;
    s->pos = s->neg = NULL;
}

int sqzc_qstat_begin_hist(sqzc_qstat *s) {
    if (!s->pos) s->pos = calloc(NB, sizeof *s->pos);
    if (!s->neg) s->neg = calloc(NB, sizeof *s->neg);
    if (!s->pos || !s->neg) return -1;
    s->pass = 2;
    return 0;
}

/* min / max of x[0, n) folded into *mn / *mx; non-finite values are skipped
 * and counted */
static void add_minmax(const float *x, size_t n, float *mnp, float *mxp, uint64_t *nonfinite) {
    /* branch-free min / max (vectorizes); NaN compares false and is skipped,
     * an infinity shows in the result and sends us to the careful loop */
    float mn = *mnp, mx = *mxp;
    float ln[8], lx[8]; /* 8 independent lanes: the compiler vectorizes them */
    for (int l = 0; l < 8; l++) ln[l] = mn, lx[l] = mx;
    size_t i = 0;
#if defined(__SSE2__)
    { /* minps / maxps: the same selection as the scalar compares below */
        __m128 n0 = _mm_set1_ps(mn), n1 = n0, x0 = _mm_set1_ps(mx), x1 = x0;
        for (; i + 8 <= n; i += 8) {
            __m128 a = _mm_loadu_ps(x + i), b = _mm_loadu_ps(x + i + 4);
            n0 = _mm_min_ps(a, n0);
            n1 = _mm_min_ps(b, n1);
            x0 = _mm_max_ps(a, x0);
            x1 = _mm_max_ps(b, x1);
        }
        _mm_storeu_ps(ln, n0);
        _mm_storeu_ps(ln + 4, n1);
        _mm_storeu_ps(lx, x0);
        _mm_storeu_ps(lx + 4, x1);
    }
#endif
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            ln[l] = x[i + l] < ln[l] ? x[i + l] : ln[l];
            lx[l] = x[i + l] > lx[l] ? x[i + l] : lx[l];
        }
    for (; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    for (int l = 0; l < 8; l++) {
        mn = ln[l] < mn ? ln[l] : mn;
        mx = lx[l] > mx ? lx[l] : mx;
    }
    if (!isfinite(mn) || !isfinite(mx)) {
        mn = *mnp, mx = *mxp;
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            if (!isfinite(v)) {
                (*nonfinite)++;
                continue;
            }
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
    }
    *mnp = mn;
    *mxp = mx;
}

/* bin = floor(|v| * mul) over nb bins a side; values beyond the last bin go
 * to it; NaN / inf / zeros go to a discard slot. Branch-free (signs are
 * unpredictable) into 4 interleaved uint32 sub-histograms [pos nb | neg nb |
 * discard], so runs of equal bins (ReLU zeros, saturated tails) do not
 * serialize on one counter's load-add-store; summed into the uint64
 * histograms at the end (and zeroed by that same sweep). */
#define NBMAX (2 * NB)
enum { SUB = 4 };
static _Thread_local uint32_t sub_hist[SUB][2 * NBMAX + 1];

typedef uint32_t subrow[2 * NBMAX + 1];

/* sub-histograms into pos / neg (nb bins a side), zeroed on the way */
static void fold_sub(subrow *sub, int nb, uint64_t *pos, uint64_t *neg) {
    for (int side = 0; side < 2; side++) {
        uint64_t *h = side ? neg : pos;
        const int o = side * nb;
        for (int j = 0; j < nb; j++) {
            h[j] += (uint64_t)sub[0][o + j] + sub[1][o + j] + sub[2][o + j] + sub[3][o + j];
            sub[0][o + j] = sub[1][o + j] = sub[2][o + j] = sub[3][o + j] = 0;
        }
    }
    for (int h = 0; h < SUB; h++) sub[h][2 * nb] = 0;
}

/* sub: the thread's scratch (fold: summed into pos / neg at the end) or a
 * tensor's own sub-histograms (one-pass mode: folded when they could wrap,
 * when bins merge and at the end; fold 0) */
static void add_bins(const float *x, size_t n, int nb, float ip, float in, uint64_t *pos,
                     uint64_t *neg, uint64_t *zeros_out, subrow *sub, int fold) {
    uint64_t zeros = 0;
    const float mul[2] = {ip, in}, lim = (float)(nb - 1);
    size_t i0 = 0;
    while (i0 < n) {
        /* chunks below 2^31 values: uint32 counters cannot wrap */
        size_t e = n - i0 > ((size_t)1 << 30) ? i0 + ((size_t)1 << 30) : n;
        size_t i = i0;
        /* min as a float compare (minss; NaN -> the limit, no int conversion
         * of NaN), multiplier and offset by table: no branches */
#define SQZC_BIN(v, h)                                                                             \
    do {                                                                                           \
        const float a_ = fabsf(v);                                                                 \
        const int neg_ = (v) < 0;                                                                  \
        float b_ = a_ * mul[neg_];                                                                 \
        b_ = b_ < lim ? b_ : lim;                                                                  \
        const int valid_ = (a_ > 0) & (a_ <= 3.4e38f);                                             \
        const int idx_ = ((int)b_ + neg_ * nb) * valid_ + (1 - valid_) * 2 * nb;                   \
        sub[h][idx_]++;                                                                            \
        zeros += (v) == 0;                                                                         \
    } while (0)
#if defined(__SSE2__)
        /* the same operations 4 lanes at a time (SSE2 is baseline on x86-64):
         * IEEE single multiply, min against the limit (NaN -> limit, as
         * minss), truncating conversion; bit-identical bins */
        {
            const __m128 vip = _mm_set1_ps(ip), vin = _mm_set1_ps(in), vlim = _mm_set1_ps(lim);
            const __m128 absm = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
            const __m128 zero = _mm_setzero_ps(), fmax = _mm_set1_ps(3.4e38f);
            const __m128i vnb = _mm_set1_epi32(nb), vdis = _mm_set1_epi32(2 * nb);
            __m128i vz = _mm_setzero_si128();
            for (; i + SUB <= e; i += SUB) {
                __m128 v = _mm_loadu_ps(x + i), a = _mm_and_ps(v, absm);
                __m128 ng = _mm_cmplt_ps(v, zero);
                __m128 m = _mm_or_ps(_mm_and_ps(ng, vin), _mm_andnot_ps(ng, vip));
                __m128 b = _mm_min_ps(_mm_mul_ps(a, m), vlim);
                __m128i idx =
                    _mm_add_epi32(_mm_cvttps_epi32(b), _mm_and_si128(_mm_castps_si128(ng), vnb));
                __m128i ok =
                    _mm_castps_si128(_mm_and_ps(_mm_cmpgt_ps(a, zero), _mm_cmple_ps(a, fmax)));
                idx = _mm_or_si128(_mm_and_si128(ok, idx), _mm_andnot_si128(ok, vdis));
                vz = _mm_sub_epi32(vz, _mm_castps_si128(_mm_cmpeq_ps(v, zero)));
                int32_t id[4];
                _mm_storeu_si128((__m128i *)(void *)id, idx);
                sub[0][id[0]]++;
                sub[1][id[1]]++;
                sub[2][id[2]]++;
                sub[3][id[3]]++;
            }
            int32_t z[4];
            _mm_storeu_si128((__m128i *)(void *)z, vz);
            zeros += (uint64_t)(uint32_t)z[0] + (uint32_t)z[1] + (uint32_t)z[2] + (uint32_t)z[3];
        }
#endif
        for (; i + SUB <= e; i += SUB) {
            SQZC_BIN(x[i], 0);
            SQZC_BIN(x[i + 1], 1);
            SQZC_BIN(x[i + 2], 2);
            SQZC_BIN(x[i + 3], 3);
        }
        for (; i < e; i++) SQZC_BIN(x[i], 0);
#undef SQZC_BIN
        /* fold and zero in one sweep (the sub-histograms start zeroed) */
        if (fold || e < n) fold_sub(sub, nb, pos, neg);
        i0 = e;
    }
    *zeros_out += zeros;
}

/* one-pass mode: the side's fine bin width grows by powers of two (adjacent
 * bins merged, exact) until m fits in NF bins */
static void widen(sqzc_qstat *s, uint64_t *h, double *w, double m) {
    if (!(m > 0)) return;
    if (*w != 0 && m > NF * *w && s->sub_n) {
        fold_sub((subrow *)s->sub, NF, s->pos, s->neg);
        s->sub_n = 0;
    }
    if (*w == 0) {
        int e;
        frexp(m / NF, &e); /* m / NF = f * 2^e, f in [0.5, 1): 2^e >= m / NF */
        *w = ldexp(1.0, e);
        return;
    }
    while (m > NF * *w) {
        for (int j = 0; j < NF / 2; j++) h[j] = h[2 * j] + h[2 * j + 1];
        memset(h + NF / 2, 0, sizeof *h * (NF / 2));
        *w *= 2;
    }
}

void sqzc_qstat_add(sqzc_qstat *s, const float *x, size_t n) {
    if (s->pass == 1 || s->pass == 3) {
        float mn = (float)s->min, mx = (float)s->max;
        add_minmax(x, n, &mn, &mx, &s->nonfinite);
        s->min = mn;
        s->max = mx;
        s->count += n;
        if (s->pass == 1) return;
        widen(s, s->pos, &s->wpos, s->max);
        widen(s, s->neg, &s->wneg, -s->min);
        /* uint32 sub-histogram counters: folded before they could wrap */
        if (s->sub_n + n >= ((uint64_t)1 << 31)) {
            fold_sub((subrow *)s->sub, NF, s->pos, s->neg);
            s->sub_n = 0;
        }
        /* widths are powers of two: 1 / w is exact */
        add_bins(x, n, NF, s->wpos > 0 ? (float)(1.0 / s->wpos) : 0.0f,
                 s->wneg > 0 ? (float)(1.0 / s->wneg) : 0.0f, s->pos, s->neg, &s->zeros,
                 (subrow *)s->sub, 0);
        s->sub_n += n;
        return;
    }
    const float ip = s->max > 0 ? (float)(NB / s->max) : 0.0f;
    const float in = s->min < 0 ? (float)(NB / -s->min) : 0.0f;
    add_bins(x, n, NB, ip, in, s->pos, s->neg, &s->zeros, sub_hist, 1);
}

int sqzc_qstat_begin_one_pass(sqzc_qstat *s) {
    free(s->pos);
    free(s->neg);
    free(s->sub);
    s->pos = calloc(NF, sizeof *s->pos);
    s->neg = calloc(NF, sizeof *s->neg);
    /* the tensor's own sub-histograms: folded once at the end instead of
     * after every batch (4 x 8193 counters a call otherwise) */
    s->sub = calloc(SUB, sizeof(subrow));
    s->sub_n = 0;
    if (!s->pos || !s->neg || !s->sub) return -1;
    s->wpos = s->wneg = 0;
    s->zeros = 0;
    s->pass = 3;
    return 0;
}

/* fine bins (width w) into NB bins over [0, m], each fine bin's count split
 * between the (at most two) final bins it overlaps in proportion to the
 * overlap (values taken as uniform within a fine bin). Assigning whole fine
 * bins instead would alias: with 1.5 fine bins per final bin, final bins
 * would alternately get one and two fine bins' counts (a comb that the KL
 * divergence reads as structure). */
static void rebin(const uint64_t *f, double w, double m, uint64_t *out) {
    if (!(m > 0) || !(w > 0)) return;
    const double wf = m / NB;
    for (int j = 0; j < NF; j++) {
        if (!f[j]) continue;
        const double a = j * w, b = a + w;
        int k = (int)(a / wf);
        if (k >= NB - 1) {
            out[NB - 1] += f[j];
            continue;
        }
        const double edge = (k + 1) * wf; /* end of final bin k */
        if (edge >= b) {
            out[k] += f[j];
            continue;
        }
        uint64_t in_k = (uint64_t)((double)f[j] * (edge - a) / w + 0.5);
        if (in_k > f[j]) in_k = f[j];
        out[k] += in_k;
        out[k + 1] += f[j] - in_k;
    }
}

int sqzc_qstat_end_one_pass(sqzc_qstat *s) {
    if (s->pass != 3) return 0;
    if (s->sub) fold_sub((subrow *)s->sub, NF, s->pos, s->neg);
    free(s->sub);
    s->sub = NULL;
    s->sub_n = 0;
    uint64_t *p = calloc(NB, sizeof *p), *q = calloc(NB, sizeof *q);
    if (!p || !q) {
        free(p);
        free(q);
        return -1;
    }
    rebin(s->pos, s->wpos, s->max, p);
    rebin(s->neg, s->wneg, -s->min, q);
    free(s->pos);
    free(s->neg);
    s->pos = p;
    s->neg = q;
    s->pass = 2;
    return 0;
}

int sqzc_qstat_copy(sqzc_qstat *dst, const sqzc_qstat *src) {
    sqzc_qstat_free(dst);
    *dst = *src;
    dst->pos = dst->neg = NULL;
    dst->sub = NULL;
    /* pass 3 holds fine bins (and its sub-histograms until the end), pass 2
     * the final ones */
    const size_t nb = src->pass == 3 ? NF : NB;
    if (src->pos && !(dst->pos = malloc(nb * sizeof *dst->pos))) goto oom;
    if (src->neg && !(dst->neg = malloc(nb * sizeof *dst->neg))) goto oom;
    if (src->sub && !(dst->sub = malloc(SUB * sizeof(subrow)))) goto oom;
    if (src->pos) memcpy(dst->pos, src->pos, nb * sizeof *dst->pos);
    if (src->neg) memcpy(dst->neg, src->neg, nb * sizeof *dst->neg);
    if (src->sub) memcpy(dst->sub, src->sub, SUB * sizeof(subrow));
    return 0;
oom:
    sqzc_qstat_free(dst);
    sqzc_qstat_init(dst);
    return -1;
}

void sqzc_qparams_from_range(double lo, double hi, float *scale, int32_t *zero_point) {
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    if (hi - lo < 1e-12) hi = lo + 1e-12; /* constant-zero tensor: any scale works */
    double s = (hi - lo) / 255.0;
    double zp = nearbyint(-128.0 - lo / s);
    if (zp < -128) zp = -128;
    if (zp > 127) zp = 127;
    *scale = (float)s;
    *zero_point = (int32_t)zp;
}

/* ---- per-method choice of k (bins kept on each side) ---- */

static double total_count(const sqzc_qstat *s) {
    double t = (double)s->zeros;
    for (int j = 0; j < NB; j++) t += (double)s->pos[j] + (double)s->neg[j];
    return t;
}

static int pick_percentile(const sqzc_qstat *s, double p) {
    double allowed = total_count(s) * (100.0 - p) / 100.0, tail = 0;
    /* grow the tail from the outside in while it stays within the allowance */
    int k = NB;
    while (k > 1) {
        double next = tail + (double)s->pos[k - 1] + (double)s->neg[k - 1];
        if (next > allowed) break;
        tail = next;
        k--;
    }
    return k;
}

static int pick_mse(const sqzc_qstat *s) {
    const double wp = s->max / NB, wn = -s->min / NB;
    double best = INFINITY;
    int bestk = NB;
    /* inside counts as a prefix sum */
    double inside = 0;
    double *pre = malloc((NB + 1) * sizeof *pre);
    if (!pre) return NB;
    pre[0] = 0;
    for (int j = 0; j < NB; j++) pre[j + 1] = pre[j] + (double)s->pos[j] + (double)s->neg[j];
    /* clipped error of k from suffix sums: sum n (c - e)^2 = S2 - 2 e S1 + e^2 S0 */
    double S0p = 0, S1p = 0, S2p = 0, S0n = 0, S1n = 0, S2n = 0;
    for (int k = NB; k >= 1; k--) {
        if (k < NB) {
            double c = (k + 0.5) * wp, n = (double)s->pos[k];
            S0p += n, S1p += n * c, S2p += n * c * c;
            c = (k + 0.5) * wn, n = (double)s->neg[k];
            S0n += n, S1n += n * c, S2n += n * c * c;
        }
        double ep = k * wp, en = k * wn;
        double clip = (S2p - 2 * ep * S1p + ep * ep * S0p) + (S2n - 2 * en * S1n + en * en * S0n);
        double sc = (ep + en) / 255.0;
        inside = pre[k];
        double e = clip + inside * sc * sc / 12.0;
        if (e < best) {
            best = e;
            bestk = k;
        }
    }
    free(pre);
    return bestk;
}

/* KL(P || Q) for candidate k over 2k bins (the neg side reversed, then the
 * pos side), from prefix sums of the histograms so that a candidate costs
 * O(levels) instead of O(bins): for each int8 level (a run of bins),
 *   sum P log P (nonedge bins: P = Q = count, prefix sums of c log c),
 *   sum P log q with q = (level mass / non-empty bins) / sq,
 * and KL = sum P/sp (log P - log sp - log q). The two edge bins receive the
 * clipped tails and are corrected separately. */
typedef struct klpre {
    double *c[2], *nz[2], *pl[2]; /* [side][j]: prefix over bins < j; side 0 neg, 1 pos */
} klpre;

typedef struct klcand {
    const sqzc_qstat *s;
    int k, hn; /* bins per side, neg bins in the merged order */
    double wn, wp, lo, sc;
    double rsc; /* 1 / sc (kl_ge's filter) */
} klcand;

/* the merged bin u's value minus lo */
static inline double kl_off(const klcand *c, int u) {
    const double x = u < c->hn ? -((c->k - 1 - u) + 0.5) * c->wn : ((u - c->hn) + 0.5) * c->wp;
    return x - c->lo;
}

static inline int kl_lev(const klcand *c, int u) {
    return (int)floor(kl_off(c, u) / c->sc + 0.5);
}

/* kl_lev(c, u) >= L, the same answer without the division: y = off * (1 /
 * sc) is within ~3e-16 * |y| of the quotient off / sc (each rounding is
 * 2^-53 relative), |y| <= 256 (off is in [0, k (wn + wp)] = [0, 255 sc]),
 * and the + 0.5 adds one rounding at 256: the level is decided by y alone
 * unless y + 0.5 is within 1e-9 of L (1e4 times those errors), where the
 * division decides (bins that sit on a level edge: some k put every
 * few bins there). Divisions were most of the KL search's time. */
static inline int kl_ge(const klcand *c, int u, int L) {
    const double off = kl_off(c, u), d = off * c->rsc + 0.5 - L;
    if (d > 1e-9) return 1;
    if (d < -1e-9) return 0;
    return (int)floor(off / c->sc + 0.5) >= L;
}

/* sum of prefix array arr over merged bins [a, b] */
static double kl_range(const klcand *c, double *const arr[2], int a, int b) {
    double s = 0;
    if (a < c->hn) {
        int bb = b < c->hn - 1 ? b : c->hn - 1; /* j from k-1-bb to k-1-a */
        s += arr[0][c->k - a] - arr[0][c->k - 1 - bb];
    }
    if (b >= c->hn) {
        int aa = a > c->hn ? a : c->hn;
        s += arr[1][b - c->hn + 1] - arr[1][aa - c->hn];
    }
    return s;
}

/* kl_range of the three prefix arrays at once (the same sums) */
static inline void kl_range3(const klcand *c, const klpre *p, int a, int b, double *sc, double *snz,
                             double *spl) {
    double s0 = 0, s1 = 0, s2 = 0;
    if (a < c->hn) {
        const int bb = b < c->hn - 1 ? b : c->hn - 1, hi = c->k - a, lo = c->k - 1 - bb;
        s0 += p->c[0][hi] - p->c[0][lo];
        s1 += p->nz[0][hi] - p->nz[0][lo];
        s2 += p->pl[0][hi] - p->pl[0][lo];
    }
    if (b >= c->hn) {
        const int aa = a > c->hn ? a : c->hn, hi = b - c->hn + 1, lo = aa - c->hn;
        s0 += p->c[1][hi] - p->c[1][lo];
        s1 += p->nz[1][hi] - p->nz[1][lo];
        s2 += p->pl[1][hi] - p->pl[1][lo];
    }
    *sc = s0;
    *snz = s1;
    *spl = s2;
}

/* int8 levels a candidate's bins can round to (0..255, one more for rounding) */
#define KL_MAX_LEVELS 300

/* ceil(x) for 0 < x < INT_MAX (truncation, then up when below x) */
static inline int kl_ceil(double x) {
    const int t = (int)x;
    return t + (t < x);
}

/* level L's first bin by the exact checks (xb: the first value rounding to
 * L), from an estimate */
static int kl_start_checked(const klcand *c, int L, double xb, double rwn, double rwp, int m) {
    const int k = c->k;
    const double ue = xb < 0 ? (c->wn > 0 ? k - 0.5 + xb * rwn : 0)
                             : (c->wp > 0 ? xb * rwp - 0.5 + c->hn : m - 1);
    int u = ue <= 0 ? 0 : ue >= m - 1 ? m - 1 : (int)ceil(ue);
    while (u > 0 && kl_ge(c, u - 1, L)) u--;
    while (u < m - 1 && !kl_ge(c, u, L)) u++;
    return u;
}

/* log of a level's mean count (sum / nz): the search asks for it ~60 K
 * times a tensor (~256 levels x ~240 candidates) and ~90% of the arguments
 * repeat an earlier one (the same counts: sparse tails, runs of equal
 * spans), so results are kept in a direct-mapped table keyed by the
 * argument's bits. A hit returns what log() returned for the same argument:
 * the divergences are the same bit for bit. (Keyed by the pair sum, nz
 * instead, which skips the division on a hit: slower, 493 vs 466 us a
 * tensor.) */
#define KL_MEMO_BITS 12
typedef struct klmemo {
    double x, y; /* x = 0: empty (an argument is >= 1: sum >= nz >= 1) */
} klmemo;

static inline double kl_log(klmemo *m, double x) {
    if (!m) return log(x);
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    klmemo *e = &m[(b * 0x9E3779B97F4A7C15ull) >> (64 - KL_MEMO_BITS)];
    if (e->x == x) return e->y;
    e->x = x;
    e->y = log(x);
    return e->y;
}

/* SIMD level starts (kl_starts_avx2): -1 where the CPU has AVX2 (checked
 * on first use), 0 forced off (tests: sqzc_qstat_kl_simd); atomic: the
 * tensors' searches run on several threads */
static atomic_int kl_simd = -1;

void sqzc_qstat_kl_simd(int on) {
    atomic_store_explicit(&kl_simd, on ? -1 : 0, memory_order_relaxed);
}

#if defined(KL_AVX2)
/* kl_of's first-bin estimates of levels L..L1 (start[L - L0]), 4 levels at
 * a time: the same IEEE operations as the scalar loops in the same order
 * (sub, mul, ceil, compares: no contraction, explicit intrinsics), so a
 * level the fast test accepts gets the scalar's bin; -1 where the test
 * fails (the caller runs the exact checks there). A level is on the neg
 * side while its first value xb < 0 (xb grows with L: the scalar's two
 * loops split there). */
__attribute__((target("avx2"))) static int kl_starts_avx2(const klcand *c, int L, int L1, int L0,
                                                          int m, const double k8[8], int *start) {
    const __m256d half = _mm256_set1_pd(0.5), zero = _mm256_setzero_pd();
    const __m256d sc = _mm256_set1_pd(c->sc), lo = _mm256_set1_pd(c->lo);
    const __m256d rAn = _mm256_set1_pd(k8[0]), An = _mm256_set1_pd(k8[1]);
    const __m256d rAp = _mm256_set1_pd(k8[2]), Ap = _mm256_set1_pd(k8[3]);
    const __m256d Bp = _mm256_set1_pd(k8[4]), hn = _mm256_set1_pd((double)c->hn);
    const __m256d mm1 = _mm256_set1_pd((double)(m - 1)), one = _mm256_set1_pd(1.0);
    const __m256d eps = _mm256_set1_pd(1e-9), neps = _mm256_set1_pd(-1e-9);
    const __m256d step = _mm256_set_pd(3, 2, 1, 0);
    for (; L + 4 <= L1 + 1; L += 4) {
        const __m256d Lv = _mm256_add_pd(_mm256_set1_pd((double)L), step);
        const __m256d Lh = _mm256_sub_pd(Lv, half);
        const __m256d xb = _mm256_add_pd(_mm256_mul_pd(Lh, sc), lo);
        const __m256d neg = _mm256_cmp_pd(xb, zero, _CMP_LT_OQ);
        /* us: (L - 0.5) rAn - 0.5 | (L - 0.5 - Bp) rAp - 0.5 + hn */
        const __m256d usn = _mm256_sub_pd(_mm256_mul_pd(Lh, rAn), half);
        const __m256d usp =
            _mm256_add_pd(_mm256_sub_pd(_mm256_mul_pd(_mm256_sub_pd(Lh, Bp), rAp), half), hn);
        const __m256d us = _mm256_blendv_pd(usp, usn, neg);
        const __m256d A = _mm256_blendv_pd(Ap, An, neg);
        __m256d u = _mm256_ceil_pd(us);
        u = _mm256_blendv_pd(u, mm1, _mm256_cmp_pd(us, mm1, _CMP_GE_OQ));
        u = _mm256_blendv_pd(u, zero, _mm256_cmp_pd(us, zero, _CMP_LE_OQ));
        const __m256d d1 = _mm256_mul_pd(_mm256_sub_pd(u, us), A);
        const __m256d d0 = _mm256_sub_pd(d1, A);
        /* side: u < hn (neg), u - 1 >= hn (pos) */
        const __m256d side = _mm256_blendv_pd(_mm256_cmp_pd(_mm256_sub_pd(u, one), hn, _CMP_GE_OQ),
                                              _mm256_cmp_pd(u, hn, _CMP_LT_OQ), neg);
        __m256d ok =
            _mm256_and_pd(_mm256_cmp_pd(u, zero, _CMP_GT_OQ), _mm256_cmp_pd(u, mm1, _CMP_LT_OQ));
        ok = _mm256_and_pd(ok, side);
        ok = _mm256_and_pd(ok, _mm256_cmp_pd(d0, neps, _CMP_LT_OQ));
        ok = _mm256_and_pd(ok, _mm256_cmp_pd(d1, eps, _CMP_GT_OQ));
        const __m256d r = _mm256_blendv_pd(_mm256_set1_pd(-1.0), u, ok);
        _mm_storeu_si128((__m128i *)(void *)(start + (L - L0)), _mm256_cvtpd_epi32(r));
    }
    return L;
}
#endif

static double kl_of(const sqzc_qstat *s, int k, const klpre *pre, klmemo *memo) {
    klcand c;
    c.s = s;
    c.k = k;
    c.wp = s->max / NB;
    c.wn = -s->min / NB;
    const int has_neg = s->min<0, has_pos = s->max> 0;
    c.hn = has_neg ? k : 0;
    const int m = c.hn + (has_pos ? k : 0);
    c.lo = -k * c.wn;
    c.sc = (k * c.wp - c.lo) / 255.0;
    c.rsc = 1.0 / c.sc;
    double tail_n = 0, tail_p = 0;
    if (has_neg) tail_n = pre->c[0][NB] - pre->c[0][k];
    if (has_pos) tail_p = pre->c[1][NB] - pre->c[1][k];
    double sq = kl_range(&c, (double *const *)pre->c, 0, m - 1);
    double sp = sq + tail_n + tail_p;
    if (m <= 0 || sp <= 0 || sq <= 0) return INFINITY;
    /* edge bins: u = 0 (neg bin k-1) and u = m-1 (pos bin k-1) */
    const double en = has_neg ? (double)s->neg[k - 1] : 0, ep = has_pos ? (double)s->pos[k - 1] : 0;
    const double eps = 1e-4 / m; /* smoothing of empty Q bins where P has mass */
    const double log_sq = log(sq), log_eps = log(eps);
    /* The merged bins of each level: start[L - L0] = the first bin whose
     * level is >= L (kl_lev is non-decreasing in the bin). Each start is
     * found on its own (an estimate from the inverse, then exact checks), so
     * the levels' divisions overlap instead of forming one chain. */
    const int L0 = kl_lev(&c, 0), L1 = kl_lev(&c, m - 1);
    int start[KL_MAX_LEVELS + 2];
    if (L1 - L0 + 1 > KL_MAX_LEVELS) return INFINITY; /* cannot happen: levels are 0..256 */
    start[0] = 0;
    /* On each side the level is affine in the bin: t(u) = (u + 0.5) An +
     * 0.5 (neg), (u - hn + 0.5) Ap + Bp + 0.5 (pos), An = wn / sc etc.;
     * level L starts where t crosses L, at bin us (real). Usually us is
     * clear of the bins, u = ceil(us) and u - 1 are on its side, and then
     * t(u) - L = (u - us) A and t(u - 1) - L = that - A decide kl_lev
     * without computing a bin's value: within ~1e-12 of the exact level
     * arithmetic (a few roundings at magnitudes <= 4096 bins, <= 256
     * levels), decided when beyond 1e-9. Else the checks below. */
    const double An = c.wn * c.rsc, Ap = c.wp * c.rsc, Bp = -c.lo * c.rsc;
    const double rAn = An > 0 ? 1.0 / An : 0, rAp = Ap > 0 ? 1.0 / Ap : 0;
    /* (the estimate's divisions as products: it is checked below) */
    const double rwn = c.wn > 0 ? 1.0 / c.wn : 0, rwp = c.wp > 0 ? 1.0 / c.wp : 0;
    /* xb, the first value rounding to L, grows with L: the neg side's levels
     * (xb < 0) come first, then the pos side's */
    int L = L0 + 1;
#if defined(KL_AVX2)
    int simd = atomic_load_explicit(&kl_simd, memory_order_relaxed);
    if (simd < 0) {
        simd = __builtin_cpu_supports("avx2") ? 1 : 0;
        atomic_store_explicit(&kl_simd, simd, memory_order_relaxed);
    }
    if (simd > 0 && L1 - L0 >= 4) {
        const double k8[8] = {rAn, An, rAp, Ap, Bp, 0, 0, 0};
        const int Le = kl_starts_avx2(&c, L, L1, L0, m, k8, start);
        /* the levels the fast test left: the exact checks (as below) */
        for (int l = L; l < Le; l++)
            if (start[l - L0] < 0)
                start[l - L0] = kl_start_checked(&c, l, (l - 0.5) * c.sc + c.lo, rwn, rwp, m);
        L = Le;
    }
#endif
    for (; L <= L1; L++) {
        const double xb = (L - 0.5) * c.sc + c.lo;
        if (!(xb < 0)) break;
        const double us = (L - 0.5) * rAn - 0.5;
        int u = us <= 0 ? 0 : us >= m - 1 ? m - 1 : kl_ceil(us);
        const double d1 = (u - us) * An, d0 = d1 - An;
        if (u > 0 && u < m - 1 && u < c.hn && d0 < -1e-9 && d1 > 1e-9) {
            start[L - L0] = u;
            continue;
        }
        start[L - L0] = kl_start_checked(&c, L, xb, rwn, rwp, m);
    }
    for (; L <= L1; L++) {
        const double us = (L - 0.5 - Bp) * rAp - 0.5 + c.hn;
        int u = us <= 0 ? 0 : us >= m - 1 ? m - 1 : kl_ceil(us);
        const double d1 = (u - us) * Ap, d0 = d1 - Ap;
        if (u > 0 && u < m - 1 && u - 1 >= c.hn && d0 < -1e-9 && d1 > 1e-9) {
            start[L - L0] = u;
            continue;
        }
        start[L - L0] = kl_start_checked(&c, L, (L - 0.5) * c.sc + c.lo, rwn, rwp, m);
    }
    start[L1 - L0 + 1] = m;
    double plogp = 0, plogq = 0, psum = 0;
    for (int l = 0; l <= L1 - L0; l++) {
        const int a = start[l], b = start[l + 1] - 1;
        if (b < a) continue; /* no bin rounds to this level */
        double sum, nz, pl;
        if (b < c.hn) { /* on one side: its prefix differences (>= 0: 0 + d is d) */
            const int hi = k - a, lo = k - 1 - b;
            sum = pre->c[0][hi] - pre->c[0][lo];
            nz = pre->nz[0][hi] - pre->nz[0][lo];
            pl = pre->pl[0][hi] - pre->pl[0][lo];
        } else if (a >= c.hn) {
            const int hi = b - c.hn + 1, lo = a - c.hn;
            sum = pre->c[1][hi] - pre->c[1][lo];
            nz = pre->nz[1][hi] - pre->nz[1][lo];
            pl = pre->pl[1][hi] - pre->pl[1][lo];
        } else {
            kl_range3(&c, pre, a, b, &sum, &nz, &pl);
        }
        const double lq = nz > 0 ? kl_log(memo, sum / nz) - log_sq : 0;
        double ps = sum;
        /* the edge bins hold P = count + tail */
        if (has_neg && a == 0 && tail_n > 0) {
            double pe = en + tail_n;
            pl += pe * log(pe) - (en > 0 ? en * log(en) : 0);
            ps += tail_n;
            plogq += en > 0 ? tail_n * lq : pe * log_eps;
        }
        if (has_pos && b == m - 1 && tail_p > 0) {
            double pe = ep + tail_p;
            pl += pe * log(pe) - (ep > 0 ? ep * log(ep) : 0);
            ps += tail_p;
            plogq += ep > 0 ? tail_p * lq : pe * log_eps;
        }
        plogp += pl;
        plogq += sum * lq;
        psum += ps;
    }
    return (plogp - psum * log(sp) - plogq) / sp;
}

/* the prefix sums of s's histograms into buf (6 * (NB + 1) doubles) */
static void kl_prefix(const sqzc_qstat *s, double *buf, klpre *pre, klmemo *memo) {
    for (int side = 0; side < 2; side++) {
        const uint64_t *h = side ? s->pos : s->neg;
        double *c = buf + (size_t)(3 * side) * (NB + 1), *nz = c + NB + 1, *pl = nz + NB + 1;
        c[0] = nz[0] = pl[0] = 0;
        for (int j = 0; j < NB; j++) {
            double v = (double)h[j];
            c[j + 1] = c[j] + v;
            nz[j + 1] = nz[j] + (v > 0);
            pl[j + 1] = pl[j] + (v > 0 ? v * kl_log(memo, v) : 0); /* (counts repeat) */
        }
        pre->c[side] = c;
        pre->nz[side] = nz;
        pre->pl[side] = pl;
    }
}

double sqzc_qstat_kl(const sqzc_qstat *s, int k) {
    if (s->pass != 2 || !s->pos || !(s->max > s->min) || k < 1 || k > NB) return INFINITY;
    double *buf = malloc(6 * (NB + 1) * sizeof *buf);
    if (!buf) return INFINITY;
    klpre pre;
    kl_prefix(s, buf, &pre, NULL);
    const double kl = kl_of(s, k, &pre, NULL);
    free(buf);
    return kl;
}

static int pick_kl(const sqzc_qstat *s) {
    klpre pre;
    double *buf = malloc(6 * (NB + 1) * sizeof *buf);
    /* (without the table, log() each time: the same values) */
    klmemo *memo = calloc((size_t)1 << KL_MEMO_BITS, sizeof *memo);
    int bestk = NB;
    if (buf) {
        kl_prefix(s, buf, &pre, memo);
        /* below ~128 bins a side the int8 grid is finer than the histogram */
        const int kmin = (s->min < 0 && s->max > 0) ? 128 : 256;
        /* coarse sweep every 8 bins, then every bin around the best (the
         * divergence has narrow dips: a coarser first sweep misses some) */
        double best = INFINITY;
        for (int k = kmin; k <= NB; k += 8) {
            double kl = kl_of(s, k, &pre, memo);
            if (kl < best) {
                best = kl;
                bestk = k;
            }
        }
        const int c = bestk;
        for (int k = c - 7 < kmin ? kmin : c - 7; k <= c + 7 && k <= NB; k++) {
            double kl = kl_of(s, k, &pre, memo);
            if (kl < best) {
                best = kl;
                bestk = k;
            }
        }
    }
    free(memo);
    free(buf);
    return bestk;
}

void sqzc_qstat_range(const sqzc_qstat *s, int method, double percentile, double *lo, double *hi) {
    double mn = s->min < 0 ? s->min : 0, mx = s->max > 0 ? s->max : 0;
    int k = NB;
    if (s->pass == 2 && s->pos && (mx > mn)) {
        switch (method) {
        case SQZC_QM_PERCENTILE:
            k = pick_percentile(s, percentile);
            break;
        case SQZC_QM_MSE:
            k = pick_mse(s);
            break;
        case SQZC_QM_KL:
            k = pick_kl(s);
            break;
        default:
            k = NB;
        }
    }
    *lo = mn * k / NB;
    *hi = mx * k / NB;
}

double sqzc_qstat_clipped(const sqzc_qstat *s, double lo, double hi) {
    if (s->pass != 2 || !s->pos) return 0;
    const double wp = s->max / NB, wn = -s->min / NB;
    double out = 0, tot = (double)s->zeros;
    for (int j = 0; j < NB; j++) {
        tot += (double)s->pos[j] + (double)s->neg[j];
        if (wp > 0 && (j + 0.5) * wp > hi) out += (double)s->pos[j];
        if (wn > 0 && -(j + 0.5) * wn < lo) out += (double)s->neg[j];
    }
    return tot > 0 ? out / tot : 0;
}
