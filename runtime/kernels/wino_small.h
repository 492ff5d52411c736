/* wino_small.h - Winograd F(4x4,3x3) for small channel counts (AVX-512,
 * x86 only): 3x3 stride-1 dilation-1 group-1 convs with C and M multiples of
 * 16 up to 64 on small planes, where the generic path (winograd.h: tiles in
 * the GEMM's lanes, t*t packed GEMMs) loses its saved multiplies to packing
 * and transform traffic (the small ResNet's 16x16 @28x28 .. 64x64 @7x7).
 *
 * Channels in the lanes throughout, all of a band in L1 / L2:
 * 1. the band's input rows transposed to pixel-major [row][col][C] (16x16
 *    register transposes, zero pads);
 * 2. per group of G tiles: the input transform V = B^T d B of each tile for
 *    all C (vectors of 16 channels) into V[36][G][C]; per position xi the
 *    product [G x C] . [C x M] with M in the lanes (tile values broadcast,
 *    U[xi] = G g G^T packed [C][M] at create); the output transform
 *    A^T (U.V) A + bias (+ ReLU) into pixel-major staging [pixel][M];
 * 3. the staging transposed back into the planes (16 pixels a vector), the
 *    executor's fused Add (+ ReLU) applied in registers.
 * Matrices of Lavin & Gray (2016) as in winograd_ref.c. */
#ifndef SQZ_KERNELS_WINO_SMALL_H
#define SQZ_KERNELS_WINO_SMALL_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqz_wsm sqz_wsm;

#if defined(__x86_64__) || defined(_M_X64)
/* 1 when the kernel covers these channel counts and activation
 * (SQZ_ACT_NONE / RELU) on this CPU (AVX-512). */
int sqz_wsm_ok(int64_t C, int64_t M, int act);
/* Plan of one conv: input planes IH x IW, output OH x OW, leading pads ph,
 * pw; W [M][C][3][3], B [M] or NULL. NULL when not covered / out of memory. */
sqz_wsm *sqz_wsm_create(int64_t C, int64_t M, int64_t IH, int64_t IW, int64_t OH, int64_t OW,
                        int64_t ph, int64_t pw, const float *W, const float *B, int act);
void sqz_wsm_free(sqz_wsm *s);
/* Scratch (64-aligned) for bands of at most rows output rows; the same
 * from the shapes alone (0 for channel counts out of range). */
size_t sqz_wsm_scratch_bytes(const sqz_wsm *s, int64_t rows);
size_t sqz_wsm_band_bytes(int64_t C, int64_t M, int64_t OW, int64_t rows);
/* Output rows [oy0, oy1) of one image: x its C input planes, y its M output
 * planes; post (or NULL): the fused epilogue, offsets from y - post->base. */
void sqz_wsm_rows(const sqz_wsm *s, const float *x, float *y, const sqz_conv_post *post,
                  int64_t oy0, int64_t oy1, void *scratch);
#endif

#ifdef __cplusplus
}
#endif
#endif
