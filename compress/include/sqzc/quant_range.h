/* sqzc/quant_range.h - streaming activation statistics and range selection
 * for INT8 calibration.
 *
 * A tensor's values are seen twice (or once: sqzc_qstat_begin_one_pass): pass 1 records min / max,
 * pass 2 a histogram of the positive values over [0, max] and of the negated negative values over
 * [0, -min] (SQZC_QHIST_BINS bins each). Memory per tensor is fixed whatever the number of images.
 * A candidate range is k bins on both sides, [-k * wn, k * wp] (wn, wp the bin widths), so every
 * candidate keeps 0 and shrinks the two tails in proportion; the methods pick k: minmax      k =
 * bins (the observed range); percentile  the smallest k whose tails hold at most (100 - p)% of
 * values; mse         k minimising the expected squared error of 8-bit affine quantization (uniform
 * s^2 / 12 inside, squared distance to the edge for clipped values; bin centres as values); kl k
 * minimising KL(P || Q) over the non-zero values, P the histogram clipped to the range (tails added
 * to the edge bins), Q the same bins merged per int8 level and spread back uniformly over the
 * non-empty bins (the entropy calibration of TensorRT, Migacz, "8-bit Inference with TensorRT", GTC
 * 2017; 256 levels affine instead of 128).
 */
#ifndef SQZC_QUANT_RANGE_H
#define SQZC_QUANT_RANGE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQZC_QHIST_BINS 2048

typedef struct sqzc_qstat {
    double min, max;     /* pass 1 (min <= 0 <= max once finished) */
    uint64_t count;      /* values seen in pass 1 */
    uint64_t nonfinite;  /* NaN / inf values ignored */
    int pass;            /* 1, 2, or 3 (one pass: range and histogram together) */
    uint64_t *pos, *neg; /* pass 2 histograms (SQZC_QHIST_BINS each), NULL before; pass 3:
                            2 * SQZC_QHIST_BINS fine bins of width wpos / wneg */
    double wpos, wneg;   /* pass 3: fine bin widths (powers of two; 0 until a value) */
    void *sub;           /* pass 3: uint32 sub-histograms, summed into pos / neg at the end */
    uint64_t sub_n;      /* values in them */
    uint64_t zeros;      /* pass 2: exact zeros, kept out of the histograms (ReLU outputs:
                            often most values; 0 is exact in int8, and a zero spike in bin
                            0 would dominate the KL divergence) */
} sqzc_qstat;

void sqzc_qstat_init(sqzc_qstat *s);
void sqzc_qstat_free(sqzc_qstat *s);
/* Feed values (pass 1: range; pass 2: histogram). */
void sqzc_qstat_add(sqzc_qstat *s, const float *x, size_t n);
/* End pass 1: allocate the histograms. 0 ok, -1 OOM. */
int sqzc_qstat_begin_hist(sqzc_qstat *s);
/* One pass instead of two (the data is seen once: range and histogram
 * together). The histogram then has 2 * SQZC_QHIST_BINS fine bins a side
 * whose width is a power of two, doubled (adjacent bins merged, exactly)
 * whenever the range grows past it; sqzc_qstat_end_one_pass re-bins them
 * into the SQZC_QHIST_BINS bins over [0, max] of pass 2 (a final bin is 1
 * to 2 fine bins wide; a fine bin's count is split between the final bins
 * it overlaps in proportion to the overlap, so a value lands at most one
 * final bin from where pass 2 would put it) and the state is as after pass 2.
 * begin: on a fresh or pass-1 state before its first value. 0 ok, -1 OOM. */
int sqzc_qstat_begin_one_pass(sqzc_qstat *s);
int sqzc_qstat_end_one_pass(sqzc_qstat *s);
/* dst (initialized or freed state) becomes a copy of src, arrays included
 * (the statistics of a tensor with the same values: a view). 0 ok, -1 OOM
 * (dst then initialized). */
int sqzc_qstat_copy(sqzc_qstat *dst, const sqzc_qstat *src);

/* Chosen range for a method (sqzc_qmethod); percentile in (50, 100]. Before
 * pass 2 only minmax is possible (the others need the histogram). */
void sqzc_qstat_range(const sqzc_qstat *s, int method, double percentile, double *lo, double *hi);
/* The KL method's divergence for candidate k (bins kept a side, 1 <= k <=
 * SQZC_QHIST_BINS) after pass 2: what its search minimises (INFINITY when
 * nothing is kept). */
double sqzc_qstat_kl(const sqzc_qstat *s, int k);
/* The KL search's level starts with SIMD where the CPU has it (default, 1)
 * or the scalar loops only (0; tests compare the two: same divergences). */
void sqzc_qstat_kl_simd(int on);
/* Share of pass-2 values outside [lo, hi] (bin resolution). */
double sqzc_qstat_clipped(const sqzc_qstat *s, double lo, double hi);

/* Affine int8 parameters of a real range (0 is made part of it): q in
 * [-128, 127], real = scale * (q - zp), lo maps to about -128. */
void sqzc_qparams_from_range(double lo, double hi, float *scale, int32_t *zero_point);

/* round half to even, as QuantizeLinear */
static inline float sqzc_round_even(float x) {
    return rintf(x); /* default rounding mode: to nearest, ties to even */
}
/* QuantizeLinear of one value to int8 with (scale, zp). */
static inline int32_t sqzc_quantize_value(float x, float scale, int32_t zp) {
    float q = sqzc_round_even(x / scale) + (float)zp;
    if (!(q > -128.0f)) return -128; /* also NaN */
    if (q > 127.0f) return 127;
    return (int32_t)q;
}

#ifdef __cplusplus
}
#endif
#endif
