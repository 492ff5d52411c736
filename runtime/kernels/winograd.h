/* winograd.h - Winograd fast path for 3x3 stride-1 dilation-1 group-1 fp32
 * convs: F(2x2,3x3) and F(4x4,3x3) of Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks" (CVPR 2016).
 *
 * Output tiles of m x m pixels (m = 2 or 4) read input tiles of t x t
 * (t = m + 2) that overlap by 2. With the transform matrices B^T, G, A^T of
 * the paper:
 *   U = G g G^T          (weights, once at prepare: t x t per (out, in) pair)
 *   V = B^T d B          (input, per run: t x t per (in channel, tile))
 *   M[xi] = U[xi] . V[xi] (one GEMM per transform position xi in t*t:
 *                          [Cout x Cin] . [Cin x tiles])
 *   Y = A^T M A + bias, then the activation (m x m per (out channel, tile))
 *
 * The GEMMs run on the packed-GEMM driver (gemm.h) with both operands fully
 * packed: U[xi] packed once as A; the input transform writes V[xi] straight
 * into the B panel layout (NR tiles per panel, lanes of the transform = the
 * panel's columns), so the driver copies nothing. A run goes over blocks of
 * tiles small enough to keep V and M in L2; threads take whole blocks.
 *
 * Transforms (per ISA): lanes = NR tiles of one GEMM panel, possibly
 * crossing tile rows and images (see sqz_wino_panel). A plain-C template
 * (common/winograd_tf.h) compiled per ISA with the lane count a constant;
 * common/winograd_ref.c is the scalar twin (matrix products with the
 * paper's tables, one tile at a time) the tests compare them with.
 *
 * SQZ_WINOGRAD=0 in the environment (read at prepare) disables the path;
 * =2 / =4 force F(2,3) / F(4,3) wherever it applies (benches, tests), =s
 * the small-channel kernel (wino_small.h);
 * unset or other values: the per-layer automatic choice. */
#ifndef SQZ_KERNELS_WINOGRAD_H
#define SQZ_KERNELS_WINOGRAD_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"
#include "sqz/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SQZ_WINO_MAX_NR 64

/* Conv geometry the transforms need (output tile m, input tile t = m + 2). */
typedef struct sqz_wino_geom {
    int m, t;
    int64_t IH, IW, OH, OW;
    int64_t ph, pw;       /* leading pads (trailing ones follow from OH, OW) */
    int64_t tiles_w;      /* tiles per output row: ceil(OW / m) */
    int64_t x_img, y_img; /* floats between images of X / of Y */
    int act;              /* sqz_act applied after the bias */
    float alpha, beta;    /* activation parameters (ref_act semantics) */
} sqz_wino_geom;

/* The tiles of one GEMM panel: lanes [0, cnt) as runs of horizontally
 * adjacent tiles (same image, same tile row); lanes [cnt, lanes) are empty
 * (the input transform writes zeros there, the output transform skips them)
 * and lanes [lanes, nr) are neither written nor read: a last panel of at
 * most nr / 2 tiles runs as a half-width GEMM panel on kernels whose
 * half-width tiles cost half (cnt <= lanes <= nr; make_panel: lanes = nr). */
typedef struct sqz_wino_run {
    int lane0, len;
    int64_t img, ty, tx0;
} sqz_wino_run;

typedef struct sqz_wino_panel {
    int nr, cnt, lanes, nruns;
    sqz_wino_run run[SQZ_WINO_MAX_NR];
} sqz_wino_panel;

/* Input transform of one channel: x = that channel's plane in image 0 (the
 * runs add img * x_img); writes V[xi][lane] at v[xi * vstride + lane] for
 * xi in [0, t*t), lane in [0, p->lanes). */
typedef void (*sqz_wino_input_fn)(const sqz_wino_geom *g, const float *x, const sqz_wino_panel *p,
                                  float *v, size_t vstride);
/* Output transform of one output channel: reads M[xi][lane] at
 * mb[xi * mstride + lane], adds bias, applies g->act and stores the tiles'
 * pixels inside the output plane y (that channel's plane in image 0). */
typedef void (*sqz_wino_output_fn)(const sqz_wino_geom *g, const float *mb, size_t mstride,
                                   const sqz_wino_panel *p, float bias, float *y);

typedef struct sqz_wino_tf {
    const char *name; /* "ref", "generic", "avx2", "avx512", "neon" */
    int nr;           /* lane count (0: any, the reference) */
    sqz_wino_input_fn input2, input4;
    sqz_wino_output_fn output2, output4;
} sqz_wino_tf;

/* The scalar twin (any nr) and the generic-C instance (nr 8, the scalar
 * GEMM kernel's), everywhere; the ISA instances only on their architecture
 * (call them only when the CPU has the ISA). */
extern const sqz_wino_tf sqz_wino_tf_ref;
extern const sqz_wino_tf sqz_wino_tf_generic;
#if defined(__x86_64__) || defined(_M_X64)
extern const sqz_wino_tf sqz_wino_tf_avx2;   /* nr 16 */
extern const sqz_wino_tf sqz_wino_tf_avx512; /* nr 32 */
#endif
#if defined(__aarch64__)
extern const sqz_wino_tf sqz_wino_tf_neon; /* nr 12 */
#endif

/* The transforms paired with GEMM kernel k (same nr), or NULL. */
const sqz_wino_tf *sqz_wino_tf_for(const sqz_gemm_kernel *k);

/* Weight transform of one 3x3 filter: u[t*t] = G g G^T (computed in double). */
void sqz_wino_weight(int m, const float *g, float *u);

/* The Conv impl (registered in dispatch.c before the GEMM convs): declines
 * (1) what it does not cover or where the direct GEMM is the better choice. */
extern const sqz_op_impl sqz_winograd_conv;

/* m of the small-channel F(4,3) kernel (wino_small.h, x86 AVX-512) */
#define SQZ_WINO_SMALL 5

/* Same, but with a given GEMM kernel and tile choice (m = 2 or 4,
 * SQZ_WINO_SMALL; 0: the automatic choice, which may decline): for tests
 * and benches. */
int sqz_winograd_conv_prepare(sqz_op_ctx *ctx, const sqz_gemm_kernel *k, int m);
void sqz_winograd_conv_run(const sqz_op_ctx *ctx);
void sqz_winograd_conv_release(void *params);
/* The executor's fused epilogue (gemm.h sqz_conv_post) on a conv prepared
 * by impl (with run == sqz_winograd_conv_run): applied to each output run
 * right after its output transform. 0 (nothing changed) for another impl. */
int sqz_winograd_conv_set_post(const sqz_op_impl *impl, sqz_op_ctx *ctx, const sqz_conv_post *post);
/* The tile size m a prepared conv uses and the parts its runs split into. */
void sqz_winograd_conv_info(const sqz_op_ctx *ctx, int *m, int *parts);

/* The runs of the panel of tiles [t0, t0 + cnt) (cnt <= nr <= SQZ_WINO_MAX_NR)
 * in the tile order of a run (image, tile row, tile column) for g's plane
 * with tiles_h tile rows. */
void sqz_wino_make_panel(const sqz_wino_geom *g, int64_t tiles_h, int64_t t0, int cnt, int nr,
                         sqz_wino_panel *p);

#ifdef __cplusplus
}
#endif
#endif
