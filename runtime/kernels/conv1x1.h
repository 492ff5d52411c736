/* conv1x1.h - 1x1 convolutions with few input channels (K <= 16: the
 * expansion convs after MNASNet / MobileNetV2 / EfficientNet's first block
 * and SqueezeNet's fire expands, 16 -> 48..96 channels on 55x55..112x112
 * planes). Pixels are the vector lanes: the K input channels of 16 pixels
 * stay in registers while every output channel (8 at a time, weights
 * broadcast) takes K FMAs, and each result vector is 16 consecutive pixels
 * of one output plane (a plain store). The GEMM's tiles spend a K = 16
 * product mostly in their ends (8x32 tile: 16 k steps then 16 stores and
 * the epilogue). */
#ifndef SQZ_KERNELS_CONV1X1_H
#define SQZ_KERNELS_CONV1X1_H

#include <stddef.h>
#include <stdint.h>

#define SQZ_C1X1_MAX_K 16
/* ... or any K up to SQZ_C1X1_MAXM_K with at most SQZ_C1X1_MAX_M output
 * channels (the 32 -> 16 projection at 112x112 of MNASNet / MobileNetV2 /
 * EfficientNet): every output channel in a register instead */
#define SQZ_C1X1_MAX_M 16
#define SQZ_C1X1_MAXM_K 64
#define SQZ_C1X1_MB 8 /* output channels per weight block */

typedef struct sqz_c1x1 {
    int64_t K, M;   /* input / output channels (K <= SQZ_C1X1_MAX_K, or M <= SQZ_C1X1_MAX_M) */
    int64_t in_ld;  /* floats between input channel planes */
    int64_t out_ld; /* floats between output channel planes */
    const float *w; /* sqz_c1x1_pack layout (the bias included) */
    int act;        /* SQZ_ACT_NONE / RELU / CLIP / LEAKY_RELU / HARD_SWISH */
    int stream;     /* 1: the output is beyond L2 (store order only, same results) */
    float alpha, beta;
} sqz_c1x1;

/* Floats of the packed weights: blocks of SQZ_C1X1_MB channels, [K][8]
 * weights then [8] biases each, zero past M. */
size_t sqz_c1x1_floats(int64_t K, int64_t M);
void sqz_c1x1_pack(int64_t K, int64_t M, const float *W /* [M][K] */,
                   const float *bias /* [M] or NULL */, float *dst);

/* y[m][p] = act(bias[m] + sum_k w[m][k] x[k][p]) for pixels [p0, p1) */
typedef void (*sqz_c1x1_fn)(const sqz_c1x1 *a, const float *x, float *y, int64_t p0, int64_t p1);
void sqz_c1x1_scalar(const sqz_c1x1 *a, const float *x, float *y, int64_t p0, int64_t p1);
#if defined(__x86_64__)
void sqz_c1x1_avx512(const sqz_c1x1 *a, const float *x, float *y, int64_t p0, int64_t p1);
#endif

/* The fastest kernel for this CPU, or NULL (none better than the GEMM). */
sqz_c1x1_fn sqz_c1x1_best(void);

#endif
