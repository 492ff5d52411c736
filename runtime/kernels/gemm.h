/* gemm.h - packed fp32 GEMM: the microkernel contract shared by every ISA
 * (scalar twin, x86 AVX2/AVX-512, aarch64 NEON) and the blocked driver.
 *
 *   C[M,N] = act(A[M,K] . B[K,N] + bias[M])        (row-major C, row stride ldc)
 *
 * In the conv / NCHW use, A = weights [Cout, Cin*kh*kw], B = activations
 * [Cin*kh*kw, H*W] (im2col view), C = output [Cout, H*W]; SIMD vectors run
 * along N (contiguous output pixels), A elements are broadcast.
 *
 * What the microkernel sees (kc-long panels, kc <= the driver's KC):
 *   A panel: MR rows as a[k*MR + r], k in [0, kc), r in [0, MR); rows past
 *            the matrix edge are 0.
 *   B panel: NR columns as b[k*NR + c], k in [0, kc), c in [0, NR);
 *            columns past the edge are 0.
 * Fully packed operands (sqz_gemm_pack_a / pack_b, e.g. weights packed once
 * at prepare) are private to kernels/common/gemm.c and only its driver reads
 * them: B is ceil(N/NR) full-K panels (panel j at j*NR*K, its k-range from
 * k0 at + k0*NR); A is cut into k-blocks of the driver's KC, each holding
 * all ceil(M/MR) kc-long panels back to back (one contiguous A block per
 * k-block, no L2 set conflicts from a K-sized stride).
 *
 * Microkernel: computes one MR x NR tile over kc (>= 1) steps and writes
 * its top-left m x n part (1 <= m <= MR, 1 <= n <= NR) to c (row stride
 * ldc, in floats). Elements of c outside m x n are neither read nor written.
 * Padded A rows / B columns are zero, so reading whole panels is safe.
 *   epi->accumulate == 0: c = bias + A.B   (bias = epi->bias[r], or 0 when NULL)
 *   epi->accumulate != 0: c = c + A.B      (c holds the sum of earlier k blocks;
 *                                           bias is ignored)
 *   then epi->act (a sqz_act) is applied when != SQZ_ACT_NONE. The driver
 *   sets act only on the last k block, and passes only "SIMD-cheap" kinds:
 *   NONE, RELU, CLIP(alpha=min, beta=max), LEAKY_RELU(alpha), HARD_SWISH,
 *   HARD_SIGMOID(alpha, beta). SIGMOID and TANH are applied by the driver in
 *   a scalar post-pass over the stored tile (libm expf/tanhf, exactly as
 *   the reference does), so microkernels never see them.
 * Rounding: each output is one fp32 sum in k order per k block (FMA allowed),
 * bias added first; results agree with the reference within float rounding.
 *
 * Indirect B (optional, kernel->ukernel_ind): the same tile, but B is read
 * in place instead of from a packed panel: row k of the tile is
 * b + boff[k], columns [0, n) contiguous (n < NR: lanes >= n are not read).
 * With it the driver skips B packing for sources given as rows at offsets
 * (sqz_gemm_src.off: the conv's padded band copy, where the kh x kw taps
 * of one channel share cache lines).
 * Column map (kernels with colmap != 0, both entry points): when
 * epi->cdst != NULL (NR entries, -1 from n on), tile column j goes to c[r*ldc + cdst[j]] if
 * cdst[j] >= 0 and is dropped otherwise; the kept columns' destinations
 * are consecutive (cdst of the k-th kept column = cdst of the first + k),
 * which lets SIMD kernels compress-store a vector. accumulate reads the
 * same places. Kernels without colmap get a tile buffer from the driver.
 *
 * Threads: the driver splits N (or M when N has too few panels) into one
 * range per thread with OpenMP; with num_threads <= 1 no OpenMP region is
 * entered. Each thread uses its own part of the scratch buffer. */
#ifndef SQZ_KERNELS_GEMM_H
#define SQZ_KERNELS_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "sqz/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqz_gemm_epi {
    const float *bias;   /* [m] bias of the tile's rows (already offset), or NULL */
    int accumulate;      /* see above */
    int act;             /* sqz_act: SIMD-cheap kinds only */
    float alpha, beta;   /* activation parameters (ref_act semantics) */
    int prefetch_a;      /* hint: A is cold (streams from memory), prefetch it ahead */
    const int32_t *cdst; /* column map (see above), or NULL */
    /* hint (px kernels): fetch pf_lines (<= 2 * K) 64-byte lines from pf_next
     * into L2 during the k loop (the next weight panel while this one is used;
     * NULL: none) */
    const float *pf_next;
    size_t pf_lines;
} sqz_gemm_epi;

typedef void (*sqz_gemm_ukernel_fn)(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                    size_t m, size_t n, const sqz_gemm_epi *epi);
typedef void (*sqz_gemm_ukernel_ind_fn)(size_t kc, const float *a, const float *b,
                                        const int64_t *boff, float *c, size_t ldc, size_t m,
                                        size_t n, const sqz_gemm_epi *epi);

/* Pixel-major conv tile (optional, kernel->px): vectors run along output
 * channels and input pixels are broadcast, so a tile holds whole output rows
 * of a small plane with no padded columns (7x7, 14x14 planes waste 1/4 to
 * 1/7 of a column-panel tile). For channels ch in [0, m) (m <= px_m) and
 * tile pixels p in [0, rows * np) (rows 1 or 2, rows * np <= px_p):
 *   c[ch*ldc + p] = act(bias[ch] + sum_{k<K} w[k*px_m + ch] * x[xoff[k] + xp(p)])
 *   xp(p) = p for p < np, xrow + (p - np) for the second row
 * (bias = epi->bias[ch] or 0; epi->act a SIMD-cheap kind; epi->prefetch_a:
 * w is cold, fetch it ahead; epi->pf_next: see above; epi->accumulate and epi->cdst unused; w: one
 * panel of sqz_gemm_pack_px, channels past the matrix edge 0; ldc * px_m < 2^31). Output pixels are
 * consecutive: with two rows the tile is two whole output rows. Twin: sqz_gemm_px_ref. */
typedef void (*sqz_gemm_px_fn)(size_t K, const float *w, const float *x, const int64_t *xoff,
                               int64_t xrow, size_t np, size_t rows, float *c, size_t ldc, size_t m,
                               const sqz_gemm_epi *epi);

/* nb (1 <= nb <= sw) consecutive column phases of a wide conv's band copy
 * (zero-padded): plane b at d + b*ps (ps >= QH*QW) is
 *   d_b[r*QW + q] = xc[ih*IW + q*sw + b - lead]   with ih = ih0 + r*sh,
 * when 0 <= ih < IH and 0 <= q*sw + b - lead < IW, else 0; r in [0, QH),
 * q in [0, QW) (the phases of one row share the kernel's loads). Optional
 * per kernel (kernel->band); twin sqz_gemm_band_ref. */
typedef void (*sqz_gemm_band_fn)(const float *xc, int64_t IH, int64_t IW, int64_t ih0, int64_t sh,
                                 int64_t lead, int64_t sw, int64_t QH, int64_t QW, float *d,
                                 int64_t nb, int64_t ps);
void sqz_gemm_band_ref(const float *xc, int64_t IH, int64_t IW, int64_t ih0, int64_t sh,
                       int64_t lead, int64_t sw, int64_t QH, int64_t QW, float *d, int64_t nb,
                       int64_t ps);

/* Matrix-vector panel (optional, kernel->gemv): one or two rows of x times
 * one column panel of weights packed by sqz_gemv_pack, for Gemm / MatMul
 * with constant weights and at most two rows (batch-1 classifiers, MLPs):
 *   y[r*ldy + j] = act(bias[j] + sum_{k<K} x[r*ldx + k] * w[k*nv*VL + j])
 * for r < m (1 or 2) and j < n, (nv-1)*VL < n <= nv*VL, nv <= SQZ_GEMV_MAXV,
 * VL = kernel->gemv_vl (bias NULL: 0; epi->act a SIMD-cheap kind;
 * epi->prefetch_a: w is cold, fetch it further ahead; the other epi fields
 * unused). The weights stream once, in the order packed:
 * no per-run packing of either operand. Twin: sqz_gemv_ref. */
#define SQZ_GEMV_MAXV 4
typedef void (*sqz_gemv_fn)(size_t K, const float *x, size_t ldx, size_t m, const float *w,
                            size_t nv, size_t n, const float *bias, float *y, size_t ldy,
                            const sqz_gemm_epi *epi);
void sqz_gemv_ref(int VL, size_t K, const float *x, size_t ldx, size_t m, const float *w, size_t nv,
                  size_t n, const float *bias, float *y, size_t ldy, const sqz_gemm_epi *epi);
/* Packing of K x N weights for a gemv kernel with vector length VL in
 * panels of up to PV vectors (PV <= SQZ_GEMV_MAXV): panel p holds columns
 * [p*PV*VL, ...) at dst + p*PV*VL*K, nv_p = min(PV, ceil((N - p*PV*VL) / VL))
 * vectors wide (only the last is narrower), element (kk, j) at
 * panel[kk*nv_p*VL + j % (PV*VL)] = scale * src[kk*rs + j*cs] (columns past
 * N: 0). sqz_gemv_floats: the floats it writes. */
size_t sqz_gemv_floats(int VL, int PV, int64_t K, int64_t N);
void sqz_gemv_pack(int VL, int PV, int64_t K, int64_t N, const float *src, int64_t rs, int64_t cs,
                   float scale, float *dst);

/* One ISA's microkernel and its tile shape. MR <= 16, NR <= 64. */
typedef struct sqz_gemm_kernel {
    const char *name; /* "scalar", "avx2", "avx512", "neon" */
    int mr, nr;
    sqz_gemm_ukernel_fn ukernel;
    sqz_gemm_ukernel_ind_fn ukernel_ind; /* indirect B, or NULL (the driver packs) */
    int colmap;                          /* honours epi->cdst */
    sqz_gemm_px_fn px;                   /* pixel-major conv tile, or NULL */
    int px_m, px_p;                      /* its channels per panel, pixels per tile */
    sqz_gemm_band_fn band;               /* band-copy plane, or NULL (sqz_gemm_band_ref) */
    sqz_gemv_fn gemv;                    /* matrix-vector panel, or NULL */
    int gemv_vl;                         /* its vector length in floats */
} sqz_gemm_kernel;

/* Scalar twin of a px kernel with px_m = PM (same contract, any rows * np). */
void sqz_gemm_px_ref(int PM, size_t K, const float *w, const float *x, const int64_t *xoff,
                     int64_t xrow, size_t np, size_t rows, float *c, size_t ldc, size_t m,
                     const sqz_gemm_epi *epi);
/* Floats of M x K weights packed for a px kernel with px_m = PM, and the
 * packing: panel j (channels [j*PM, j*PM + PM)) at j*PM*K, element (r, kk)
 * at dst[j*PM*K + kk*PM + r % PM] from src[r*rs + kk] (past M: 0). */
size_t sqz_gemm_px_floats(int PM, int64_t M, int64_t K);
void sqz_gemm_pack_px(int PM, int64_t M, int64_t K, const float *src, int64_t rs, float *dst);

/* Kernels. scalar exists everywhere; the others are defined only in the
 * ISA directories of their architecture (call them only when the CPU has
 * the ISA: see kernels/cpu.h). */
extern const sqz_gemm_kernel sqz_gemm_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const sqz_gemm_kernel sqz_gemm_avx2;   /* 6 x 16, x86/gemm_avx2.c */
extern const sqz_gemm_kernel sqz_gemm_avx512; /* 8 x 32, x86/gemm_avx512.c */
#endif
#if defined(__aarch64__)
extern const sqz_gemm_kernel sqz_gemm_neon; /* neon/gemm_neon.c */
#endif

/* Best kernel for this CPU (honours SQZ_ISA on x86). Never NULL. */
const sqz_gemm_kernel *sqz_gemm_best(void);

/* ---- packing (ISA-neutral, kernels/common/gemm.c) ---- */

/* Floats of a fully packed A (M x K) / B (K x N) for kernel k. */
size_t sqz_gemm_packed_a_floats(const sqz_gemm_kernel *k, int64_t M, int64_t K);
size_t sqz_gemm_packed_b_floats(const sqz_gemm_kernel *k, int64_t K, int64_t N);
/* Packs A with element (r, kk) at src[r*rs + kk*cs]. */
void sqz_gemm_pack_a(const sqz_gemm_kernel *k, int64_t M, int64_t K, const float *src, int64_t rs,
                     int64_t cs, float *dst);
/* Packs B with element (kk, n) at src[kk*rs + n*cs]. */
void sqz_gemm_pack_b(const sqz_gemm_kernel *k, int64_t K, int64_t N, const float *src, int64_t rs,
                     int64_t cs, float *dst);

/* ---- operand sources for the driver ---- */

/* Custom B packer (e.g. implicit im2col): writes the kc x NR panel of
 * columns [n0, n0 + nr) (nr <= NR; columns >= nr zero) for k in [k0, k0+kc)
 * as dst[k*NR + c]. */
typedef void (*sqz_gemm_pack_b_fn)(const void *ctx, int64_t k0, int64_t kc, int64_t n0, int64_t nr,
                                   int NR, float *dst);

typedef struct sqz_gemm_src {
    const float *packed; /* fully packed operand (pack_a / pack_b layout), or NULL */
    const float *data;   /* else: strided source (see pack_a / pack_b) */
    int64_t rs, cs;
    sqz_gemm_pack_b_fn pack_b; /* B only: custom packer instead of data (ctx below) */
    const void *pack_ctx;
    const int64_t *off; /* B only, with data: row k is data + off[k], columns contiguous (rs and
                           cs unused); read in place by kernels with ukernel_ind */
} sqz_gemm_src;

/* Conv epilogue fused by the executor (runtime/src/session.c): applied to
 * each stored region of a conv's output Y once it holds final values (a
 * tile of the GEMM driver, a px tile, a gemv panel, a Winograd output run, a
 * depthwise plane), while it is in L1. For an element at offset i of Y
 * (i = pointer - base):
 *   res != NULL: out[i] = Add(Y[i], res[i]), through Relu(v) = v > 0 ? v : 0
 *                when relu (Y[i] itself is kept; out is base, or the
 *                residual's own buffer: res[i] is read before out[i] is
 *                written, nothing else is read from out);
 *   rowfn:       Y[i] = rowfn(Y[i]) in place (the executor's SiLU function).
 * The results equal the separate Add (+ Relu) / SiLU nodes bit for bit. */
typedef void (*sqz_conv_row_fn)(const float *x, float *y, size_t n);
/* out[j] = y[j] + res[j] for j < n, through Relu when relu (out may be y or
 * res, element for element); the SIMD ones equal the twin bit for bit */
typedef void (*sqz_conv_add_fn)(const float *y, const float *res, float *out, size_t n, int relu);
void sqz_conv_add_ref(const float *y, const float *res, float *out, size_t n, int relu);
#if defined(__x86_64__) || defined(_M_X64)
void sqz_x86_conv_add_avx2(const float *y, const float *res, float *out, size_t n, int relu);
void sqz_x86_conv_add_avx512(const float *y, const float *res, float *out, size_t n, int relu);
#endif
/* The best of them for this CPU (never NULL). */
sqz_conv_add_fn sqz_conv_add_best(void);
typedef struct sqz_conv_post {
    const float *base; /* Y */
    const float *res;
    float *out;
    int relu;
    sqz_conv_row_fn rowfn;
    sqz_conv_add_fn addfn; /* the Add's row function (NULL: sqz_conv_add_ref) */
} sqz_conv_post;
/* The epilogue on m rows of n floats at c (row stride ldc floats), c in Y. */
void sqz_conv_post_apply(const sqz_conv_post *q, float *c, size_t ldc, size_t m, size_t n);
/* Prefetches the residual of that region (issued before a tile's compute,
 * so the epilogue finds it in L1); nothing without a residual. */
void sqz_conv_post_prefetch(const sqz_conv_post *q, const float *c, size_t ldc, size_t m, size_t n);

typedef struct sqz_gemm_args {
    const sqz_gemm_kernel *kernel;
    int64_t M, N, K;
    sqz_gemm_src a, b;
    float *c;
    int64_t ldc;
    const float *bias; /* [M] or NULL */
    int act;           /* any sqz_act */
    float alpha, beta; /* activation parameters */
    int num_threads;
    /* wide output: when wide_qw > 0, product column n goes to C column
     * (n / wide_qw) * wide_ow + n % wide_qw of its row if n % wide_qw <
     * wide_ow, and is dropped otherwise (a conv computed over padded rows of
     * wide_qw columns, stored compact); N * wide_ow / wide_qw <= ldc, and
     * ldc < 2^31 */
    int64_t wide_qw, wide_ow;
    /* fewest multiply-adds worth splitting over threads; 0: the default of
     * sqz_gemm_par_min_macs() (read once per op at prepare: it reads env) */
    int64_t par_min_macs;
    /* conv epilogue (see sqz_conv_post; base = Y, of which c is a part), or
     * NULL: applied to each tile after its last k block's store */
    const sqz_conv_post *post;
} sqz_gemm_args;

/* Fewest multiply-adds worth splitting over threads: 1 << 20 (~10 us on
 * one core) under OMP_WAIT_POLICY=passive, where every parallel region
 * wakes a sleeping worker; 1 << 17 otherwise (workers spin between the
 * back-to-back regions of an inference). SQZ_PAR_MIN_MACS=N overrides. */
int64_t sqz_gemm_par_min_macs(void);
/* the same for Conv (8x the spinning default; SQZ_PAR_MIN_MACS sets both) */
int64_t sqz_gemm_conv_par_min_macs(void);

/* Scratch bytes sqz_gemm() needs for these args (depends on shapes, which
 * operands are packed, and num_threads); 0 is possible. */
size_t sqz_gemm_scratch_bytes(const sqz_gemm_args *g);
/* Runs the GEMM; scratch must be sqz_gemm_scratch_bytes() bytes, 64-aligned. */
void sqz_gemm(const sqz_gemm_args *g, void *scratch);

/* One thread's part: C rows [mb, me) x columns [nb, ne) (mb a multiple of
 * MR, nb of NR, K >= 1), ignoring num_threads (no OpenMP). scratch: the
 * sqz_gemm_scratch_bytes() of these args with num_threads = 1. For callers
 * that split a larger job (e.g. conv bands) among their own threads. */
void sqz_gemm_range(const sqz_gemm_args *g, int64_t mb, int64_t me, int64_t nb, int64_t ne,
                    void *scratch);

/* ---- op impls built on the driver (kernels/common/gemm_ops.c) ----
 * Each ISA directory wraps these with its kernel, e.g.
 *   static int prep(sqz_op_ctx *c) { return sqz_gemm_conv_prepare(c, &sqz_gemm_avx2); }
 *   const sqz_op_impl sqz_x86_conv_avx2 = {prep, sqz_gemm_conv_run, free..., macs};
 * prepare returns 1 (decline) for what the reference should handle:
 * depthwise, non-2-D convs, non-constant conv weights, transA. */
int sqz_gemm_conv_prepare(sqz_op_ctx *ctx, const sqz_gemm_kernel *k);
void sqz_gemm_conv_run(const sqz_op_ctx *ctx);
int sqz_gemm_gemm_prepare(sqz_op_ctx *ctx, const sqz_gemm_kernel *k);
void sqz_gemm_gemm_run(const sqz_op_ctx *ctx);
int sqz_gemm_matmul_prepare(sqz_op_ctx *ctx, const sqz_gemm_kernel *k);
void sqz_gemm_matmul_run(const sqz_op_ctx *ctx);
void sqz_gemm_op_release(void *params);
/* Sets the fused epilogue of a Conv prepared by sqz_gemm_conv_prepare (after
 * the session bound its pointers); 0 when the conv cannot take it (then
 * nothing changed), 1 when it did. */
int sqz_gemm_conv_set_post(sqz_op_ctx *ctx, const sqz_conv_post *post);
/* Fuses a 1x1 "down" conv (down: its prepared node, stride equal to this
 * conv's, no padding, same input shape and output plane, group 1, px
 * tiles) into a wide px conv (group 1) on the same input: each band copy
 * this conv makes also feeds the down conv's panels, which write its output
 * (pointers read from down at run time: the down node itself must not run).
 * 1 when taken, 0 when not (nothing changed). */
int sqz_gemm_conv_fuse_down(sqz_op_ctx *ctx, const sqz_op_ctx *down);
/* Conv chains (2+ threads, small maps): convs c[0..n), each c[s+1] reading
 * c[s]'s output (through c[s]'s fused Add, in place), run together at
 * c[n-1]'s step: each thread computes a band of output rows of c[n-1] and,
 * in its own scratch, the rows of each earlier conv's output the band needs
 * (halo rows computed by both threads), so no intermediate crosses cores.
 * sqz_gemm_conv_chain_bytes: the scratch c[n-1] needs for it at nt threads
 * (before planning), 0 when the shapes / kernels do not chain. After the
 * session bound pointers and fused epilogues, sqz_gemm_conv_chain: 1 when
 * c[n-1] took the chain (c[0..n-1) must then not run), 0 when not (nothing
 * changed). */
#define SQZ_CONV_CHAIN_MAX 8
size_t sqz_gemm_conv_chain_bytes(sqz_op_ctx *const *c, int n, int nt);
int sqz_gemm_conv_chain(sqz_op_ctx *const *c, int n);
uint64_t sqz_gemm_op_macs(const sqz_op_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
