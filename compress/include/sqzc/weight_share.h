/* sqzc/weight_share.h - weight sharing (Deep Compression): per-layer 1-D
 * k-means over the non-zero weights, linear initialisation, Lloyd iterations
 * to convergence; every non-zero weight is replaced by its centroid and the
 * tensor gets a codebook storage request.
 *
 * Codebook contract (what the encoder may rely on): centroids are distinct
 * and sorted ascending; when the tensor holds zeros, 0.0f is one of the
 * centroids (so k-means then fits 2^bits - 1 non-zero centroids); every value
 * of the tensor equals one centroid exactly; n_centroids <= 2^codebook_bits.
 * With fp16 centroids every centroid is fp16-exact. */
#ifndef SQZC_WEIGHT_SHARE_H
#define SQZC_WEIGHT_SHARE_H

#include <stddef.h>
#include <stdint.h>

#include "sqzc/ir.h"
#include "sqzc/prune.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1-D k-means of x[0..n) (any values; the caller passes non-zeros): k
 * centroids initialised linearly between min and max, Lloyd iterations until
 * no assignment changes (at most max_iter, <= 0: 1000). Writes the centroids
 * of the non-empty clusters, sorted ascending and distinct, to c (room for k)
 * and returns their number (0 when n == 0); -1 on OOM / bad argument. */
int sqzc_kmeans_1d(const float *x, int64_t n, int k, int max_iter, float *c);

/* As sqzc_kmeans_1d, each x[i] counted with weight wt[i] >= 0 (finite): the
 * centroids minimize sum wt[i] (x[i] - c)^2 for the nearest-centroid
 * assignment. -1 on OOM / bad argument (negative or non-finite weight). */
int sqzc_kmeans_1d_weighted(const float *x, const float *wt, int64_t n, int k, int max_iter,
                            float *c);

/* Index of the centroid nearest v in sorted c[0..k) (ties: the lower one). */
int sqzc_nearest_centroid(const float *c, int k, float v);

/* v rounded to the nearest fp16 value (ties to even), returned as float;
 * values beyond the fp16 range saturate to +-65504. */
float sqzc_round_f16(float v);

/* fp16 argument of the sharing functions: 0 f32 centroids, 1 fp16-rounded,
 * SQZC_CENTROIDS_GRID: rounded to a power-of-two grid of step
 * 2^floor(log2(range / 2^11)) (the encoder then stores them grid-coded,
 * sqz/format.h SQZ_PF_GRID, a byte or so each instead of two) */
#define SQZC_CENTROIDS_GRID 2

/* Share one array in place with 2^bits codes: k-means over the non-zeros,
 * optional fp16 rounding of the centroids (then re-assignment), every
 * non-zero replaced by its centroid. Writes the codebook (zero included when
 * present, see above) to c (room for 2^bits) and returns its size, -1 on
 * OOM / bad argument. */
int sqzc_share_array(float *w, int64_t n, int bits, int fp16, float *c);

/* As sqzc_share_array, the k-means weighted by imp[i] >= 0 (e.g. the variance
 * of the input feature weight i multiplies); imp NULL = unweighted. */
int sqzc_share_array_weighted(float *w, const float *imp, int64_t n, int bits, int fp16, float *c);

/* Uniform-grid sharing for a linear codebook (sqz/format.h SQZ_PF_LINEAR,
 * format v3; used for biases): step s = (max - min) / (2^bits - 2) (a float),
 * every value replaced by (float)q * s with q = round(v / s), so the q of the
 * array span at most 2^bits levels and 0 stays 0. Fills *e (codebook_bits, c
 * as centroids, n_centroids, linear, lin_offset = min q, lin_step = s; other
 * fields 0); c needs room for 256. Returns the number of centroids; -1 (w
 * untouched) on a bad argument, a non-finite value, or a range the grid
 * cannot hold (a step below 2^-100 or |q| > 2^24). */
int sqzc_share_linear(float *w, int64_t n, int bits, float *c, sqzc_encoding *e);

typedef struct sqzc_share_options {
    int bits;                       /* every layer: 2..8 */
    int bits_conv;                  /* Conv / ConvTranspose weights (0: bits) */
    int bits_fc;                    /* Gemm / MatMul weights (0: bits) */
    const sqzc_layer_value *layers; /* per-layer bits by node name (value 2..8) */
    int n_layers;
    int fp16;    /* 1: fp16 centroids; SQZC_CENTROIDS_GRID: grid-rounded */
    int huffman; /* ask the encoder for Huffman coding of the streams */
} sqzc_share_options;

/* Share the weights of every Conv / ConvTranspose / Gemm / MatMul layer and
 * set the encoding request (codebook bits, centroids, fp16, huffman, and
 * sparse + gap bits where sparse storage pays at the new value width). An
 * override naming no layer, or a width outside 2..8, is an error. */
int sqzc_weight_share(sqzc_graph *g, const sqzc_share_options *o, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
