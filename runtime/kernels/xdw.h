/* xdw.h - fused expansion + depthwise conv (fp32, NCHW, batch 1).
 *
 * The inverted-residual blocks of MobileNetV2 / MNASNet start with a 1x1
 * conv that expands K channels to M (bias, activation) whose output is read
 * by one depthwise k x k conv only. At 112x112 and 56x56 that tensor is
 * 1.8-4.8 MB: written out past L2 and read back by the depthwise conv, both
 * nodes run at memory speed (MobileNetV2 16 -> 96 @112 + its stride-2
 * depthwise: 418 + 232 us at 1 thread, ~0.4 ms of it moving the tensor).
 * Here the expansion is computed a band of rows at a time into a buffer that
 * stays in cache, and the depthwise rows are computed from it at once: the
 * tensor never exists. Rows a band shares with the next one (k - stride of
 * them) are kept, not recomputed. Threads split the output rows (each part
 * a contiguous range, its own buffer), like the 1x1 convs around the block.
 *
 *   E[m][r][c] = act1(b1[m] + sum_k w1[m][k] * X[k][r][c])     (r < H, c < W)
 *   Y[m][oy][ox] = act2(bd[m] + sum_{i,j<k} wd[m][i][j] * E[m][oy*s - pt + i][ox*s - pl + j])
 *
 * with E zero outside the plane. Same kernels as the unfused nodes (the GEMM
 * microkernel, the depthwise row kernels): results agree with them within
 * float rounding. */
#ifndef SQZ_KERNELS_XDW_H
#define SQZ_KERNELS_XDW_H

#include <stddef.h>
#include <stdint.h>

#include "sqz/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqz_xdw_desc {
    int64_t K, M, H, W;  /* expansion K -> M channels on an H x W plane */
    const float *w1;     /* [M][K] */
    const float *b1;     /* [M] or NULL */
    int act1;            /* sqz_act of the expansion (any the GEMM driver applies) */
    float alpha1, beta1; /* its parameters */
    const float *wd;     /* [M][k][k], kept by reference (must outlive the op) */
    const float *bd;     /* [M] or NULL, kept by reference */
    int k, stride;       /* depthwise 3 / 5, stride 1 / 2 */
    int pt, pl;          /* its top / left padding (bottom / right implied by OH / OW) */
    int64_t OH, OW;      /* its output plane */
    int act2;            /* NONE, RELU, CLIP, LEAKY_RELU or HARD_SWISH */
    float alpha2, beta2;
    int num_threads;
} sqz_xdw_desc;

typedef struct sqz_xdw sqz_xdw;

/* 0: *out ready, *scratch_bytes the run's scratch (64-byte aligned by the
 * caller); 1: case not covered (nothing allocated); -1: out of memory. */
int sqz_xdw_create(const sqz_xdw_desc *d, sqz_xdw **out, size_t *scratch_bytes);
/* Y [M][OH][OW] from X [K][H][W]; scratch as sized by create. */
void sqz_xdw_run(const sqz_xdw *x, const float *X, float *Y, void *scratch);
void sqz_xdw_free(void *x);
/* Multiply-adds of one run (expansion + depthwise). */
uint64_t sqz_xdw_macs(const sqz_xdw *x);

/* Bytes of the band buffer per thread (SQZ_XDW_BAND_BYTES overrides, for A/B). */
size_t sqz_xdw_band_bytes(int num_threads);

#ifdef __cplusplus
}
#endif

#endif
