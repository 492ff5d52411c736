/* range.c - streaming activation statistics and range selection
 * (sqzc/quant_range.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "sqzc/quant.h"
#include "sqzc/quant_range.h"

#define NB SQZC_QHIST_BINS

void sqzc_qstat_init(sqzc_qstat *s) {
    memset(s, 0, sizeof *s);
    s->min = 0.0;
    s->max = 0.0;
    s->pass = 1;
}

void sqzc_qstat_free(sqzc_qstat *s) {
    free(s->pos);
    free(s->neg);
    s->pos = s->neg = NULL;
}

int sqzc_qstat_begin_hist(sqzc_qstat *s) {
    if (!s->pos) s->pos = calloc(NB, sizeof *s->pos);
    if (!s->neg) s->neg = calloc(NB, sizeof *s->neg);
    if (!s->pos || !s->neg) return -1;
    s->pass = 2;
    return 0;
}

void sqzc_qstat_add(sqzc_qstat *s, const float *x, size_t n) {
    if (s->pass == 1) {
        /* branch-free min / max (vectorizes); NaN compares false and is skipped,
         * an infinity shows in the result and sends us to the careful loop */
        float mn = (float)s->min, mx = (float)s->max;
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
            mn = (float)s->min, mx = (float)s->max;
            for (size_t i = 0; i < n; i++) {
                float v = x[i];
                if (!isfinite(v)) {
                    s->nonfinite++;
                    continue;
                }
                mn = v < mn ? v : mn;
                mx = v > mx ? v : mx;
            }
        }
        s->min = mn;
        s->max = mx;
        s->count += n;
        return;
    }
    /* bin = floor(|v| / width); values beyond the pass-1 range (none, unless
     * the data changed) go to the last bin; NaN / inf / zeros go to a discard
     * slot. Branch-free (signs are unpredictable) into 4 interleaved uint32
     * sub-histograms [pos NB | neg NB | discard], so runs of equal bins (ReLU
     * zeros, saturated tails) do not serialize on one counter's
     * load-add-store; summed into the uint64 histograms at the end. */
    const float ip = s->max > 0 ? (float)(NB / s->max) : 0.0f;
    const float in = s->min < 0 ? (float)(NB / -s->min) : 0.0f;
    uint64_t *const pos = s->pos, *const neg = s->neg;
    uint64_t zeros = 0;
    enum { SUB = 4, W = 2 * NB + 1 };
    const float mul[2] = {ip, in}, lim = (float)(NB - 1);
    static _Thread_local uint32_t sub[SUB][W];
    size_t i0 = 0;
    while (i0 < n) {
        /* chunks below 2^31 values: uint32 counters cannot wrap */
        size_t e = n - i0 > ((size_t)1 << 30) ? i0 + ((size_t)1 << 30) : n;
        memset(sub, 0, sizeof sub);
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
        const int idx_ = ((int)b_ + neg_ * NB) * valid_ + (1 - valid_) * 2 * NB;                   \
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
            const __m128i vnb = _mm_set1_epi32(NB), vdis = _mm_set1_epi32(2 * NB);
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
        for (int j = 0; j < NB; j++) {
            pos[j] += (uint64_t)sub[0][j] + sub[1][j] + sub[2][j] + sub[3][j];
            neg[j] += (uint64_t)sub[0][NB + j] + sub[1][NB + j] + sub[2][NB + j] + sub[3][NB + j];
        }
        i0 = e;
    }
    s->zeros += zeros;
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

/* KL(P || Q) for candidate k: 2k bins (neg side reversed, then pos side) */
static double kl_of(const sqzc_qstat *s, int k, double *P, double *Q, int *lev) {
    const double wp = s->max / NB, wn = -s->min / NB;
    const double lo = -k * wn, hi = k * wp, sc = (hi - lo) / 255.0;
    int m = 0;
    const int has_neg = s->min<0, has_pos = s->max> 0;
    double tail_n = 0, tail_p = 0;
    for (int j = k; j < NB; j++) {
        tail_n += (double)s->neg[j];
        tail_p += (double)s->pos[j];
    }
    if (has_neg)
        for (int j = k - 1; j >= 0; j--) {
            P[m] = (double)s->neg[j];
            Q[m] = P[m]; /* Q from the unclipped bins (TensorRT) */
            lev[m] = (int)floor((-(j + 0.5) * wn - lo) / sc + 0.5);
            m++;
        }
    int first_pos = m;
    if (has_pos)
        for (int j = 0; j < k; j++) {
            P[m] = (double)s->pos[j];
            Q[m] = P[m];
            lev[m] = (int)floor(((j + 0.5) * wp - lo) / sc + 0.5);
            m++;
        }
    if (has_neg) P[0] += tail_n;
    if (has_pos) P[m - 1] += tail_p;
    (void)first_pos;
    /* merge Q per level, spread uniformly over the non-empty bins of the level */
    for (int a = 0; a < m;) {
        int b = a;
        double sum = 0;
        int nz = 0;
        while (b < m && lev[b] == lev[a]) {
            sum += Q[b];
            nz += Q[b] > 0;
            b++;
        }
        for (int j = a; j < b; j++) Q[j] = Q[j] > 0 ? sum / nz : 0;
        a = b;
    }
    double sp = 0, sq = 0;
    for (int j = 0; j < m; j++) {
        sp += P[j];
        sq += Q[j];
    }
    if (sp <= 0 || sq <= 0) return INFINITY;
    double kl = 0;
    const double eps = 1e-4 / m; /* smoothing of empty Q bins where P has mass */
    for (int j = 0; j < m; j++) {
        if (P[j] <= 0) continue;
        double p = P[j] / sp, q = Q[j] > 0 ? Q[j] / sq : eps;
        kl += p * log(p / q);
    }
    return kl;
}

static int pick_kl(const sqzc_qstat *s) {
    double *P = malloc(2 * NB * sizeof *P), *Q = malloc(2 * NB * sizeof *Q);
    int *lev = malloc(2 * NB * sizeof *lev);
    int bestk = NB;
    if (P && Q && lev) {
        /* below ~128 bins a side the int8 grid is finer than the histogram */
        const int kmin = (s->min < 0 && s->max > 0) ? 128 : 256;
        /* coarse sweep every 8 bins, then every bin around the best */
        double best = INFINITY;
        for (int k = kmin; k <= NB; k += 8) {
            double kl = kl_of(s, k, P, Q, lev);
            if (kl < best) {
                best = kl;
                bestk = k;
            }
        }
        const int c = bestk;
        for (int k = c - 7 < kmin ? kmin : c - 7; k <= c + 7 && k <= NB; k++) {
            double kl = kl_of(s, k, P, Q, lev);
            if (kl < best) {
                best = kl;
                bestk = k;
            }
        }
    }
    free(P);
    free(Q);
    free(lev);
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
