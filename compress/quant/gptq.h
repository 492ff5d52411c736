/* gptq.h - weight rounding by error feedback over a layer's inputs (private
 * to compress/quant/).
 *
 * GPTQ / OBQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for
 * Generative Pre-trained Transformers", ICLR 2023, arXiv:2210.17323,
 * algorithm 1; Frantar and Alistarh, "Optimal Brain Compression", NeurIPS
 * 2022): the weights w (one row per output channel, one column per input of
 * the layer: a Conv's (cin, ky, kx) within its group, a Gemm's k) are
 * quantized one column at a time, and each row's rounding error is spread
 * onto the columns not yet quantized so that the output error on the
 * calibration inputs X, ||(w - q) X||^2, grows least: with H = X X^T
 * (damped) and U the upper Cholesky factor of H^-1 (H^-1 = U^T U), column j
 * is rounded to nearest (after the updates of the columns before it), then
 * w[:, k] -= (w[:, j] - q[:, j]) / U[j][j] * U[j][k] for every k > j. The
 * scales stay those given (per row), so the format is unchanged. */
#ifndef SQZC_GPTQ_H
#define SQZC_GPTQ_H

#include <stdint.h>

/* relative damping: lambda = Q_GPTQ_DAMP * mean(diag H) added to the
 * diagonal (the paper's 1%: H from a few hundred images can be singular,
 * e.g. a Gemm with more inputs than samples) */
#define Q_GPTQ_DAMP 0.01

/* H -> U, the upper Cholesky factor of (H + lambda I)^-1, n x n row-major,
 * written over h (whose upper triangle holds H; the lower one is ignored).
 * An input never seen (H[i][i] == 0) gets H[i][i] = 1 first: its row and
 * column of H are zero, so it is decoupled and rounds to nearest. 0 ok, -1
 * OOM, 1 not positive definite (then round to nearest). */
int q_gptq_factor(double *h, int n, double damp);

/* Quantize rows x n weights w (row-major, row stride n) with scale[r] per
 * row into q ([-127, 127]), given U from q_gptq_factor (columns in the
 * order of perm: the j-th column quantized is perm[j]; NULL: 0..n-1; U then
 * in that order). Rows [r0, r1) only (rows are independent: threads take
 * ranges and the result does not depend on them). 0 ok, -1 OOM. */
int q_gptq_round(const double *u, const int *perm, int n, const float *w, const float *scale,
                 int r0, int r1, int8_t *q);

/* Patches of one image of a Conv group: x is the image's [cin, ih, iw]
 * input of the group; row p = (oy, ox) of buf (np = oh * ow rows, ld >=
 * round_up(n, 8) apart) receives the n = cin * kh * kw inputs of the patch
 * of output position p, in the order (c, ky, kx) of a Conv weight's row:
 * x[c][oy * sh - pt + ky * dh][ox * sw - pl + kx * dw], 0 outside; columns
 * [n, ld) 0. */
typedef struct q_patch_geom {
    int cin, ih, iw, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl;
} q_patch_geom;
void q_gptq_patches(const q_patch_geom *g, const float *x, float *buf, int ld);
/* q_gptq_patches of the positions off, off + st, ... only, into rows 0, 1,
 * ... of buf */
void q_gptq_patches_at(const q_patch_geom *g, const float *x, float *buf, int ld, int off, int st);
/* ld of a buffer of n inputs per sample */
static inline int q_gptq_ld(int n) {
    return (n + 7) / 8 * 8;
}

/* h (n x n, upper triangle) += sum over the np samples (rows of buf, ld
 * apart, columns [n, ld) zero) of x x^T; float sums over the samples, double
 * in h. */
void q_gptq_gram(double *h, int n, int np, const float *buf, int ld);

/* The cross term of sequential GPTQ: the layer's rows of weights w (rows x n,
 * row stride n) see input x (the fp32 model's) as xt (the int8 model's, the
 * layers before already quantized). g (rows x n) += sum over the np samples
 * of (w (x - xt)) xt^T, i.e. G = W (X - Xt) Xt^T, from which the weights
 * W* = W + G (Ht + lambda I)^-1 minimise ||W X - W* Xt||^2 + lambda ||W* - W||^2
 * (Ht = Xt Xt^T). bx, bt as q_gptq_gram's buf; float sums over the samples
 * of one call, double in g. 0 ok, -1 OOM. */
int q_gptq_xcorr(double *g, int rows, int n, const float *w, int np, const float *bx,
                 const float *bt, int ld);

/* m[i] += sum over the np samples (rows of buf, ld apart) of x[i] */
void q_gptq_colsum(double *m, int n, int np, const float *buf, int ld);

/* w (n, in the order of perm as q_gptq_round) += g (H + lambda I)^-1 with
 * U from q_gptq_factor (U^T U = (H + lambda I)^-1, permuted): one row. 0 ok,
 * -1 OOM. */
int q_gptq_apply_inv(const double *u, const int *perm, int n, const double *g, float *w);

#endif
