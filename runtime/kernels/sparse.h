/* sparse.h - fp32 sparse weights x dense activations (CSR), for pruned
 * 1x1 Conv and Gemm layers.
 *
 * The weight is stored at session creation as CSR over output rows of the
 * [out, in] matrix (Conv 1x1: [Cout, Cin]; Gemm: output features x K,
 * whatever transB), with the zeros of the weight as the mask (pruning keeps
 * exact zeros, in the IR and in the file). Two row kernels:
 *
 *   spmm (1x1 Conv):  Y[r, p] = bias[r] + sum_{(c, v) in row r} v * X[c, p],  p < P
 *                     X rows of P floats (stride P), Y rows of P floats;
 *   spmv (Gemm):      y[r]    = bias[r] + sum_{(c, v) in row r} v * x[c].
 *
 * for rows [r0, r1). bias may be NULL (0). Every ISA kernel has the scalar
 * twin below as its reference (same contract; results agree within float
 * rounding: different summation order and FMA contraction are allowed) and
 * must not read X / x outside [0, cols * P) / [0, cols).
 *
 * The ops (sqz_sparse_conv, sqz_sparse_gemm) come first in the dispatch
 * table; their prepare() declines (returns 1) unless the weight is constant,
 * the layer is covered (Conv: 2-D, 1x1, stride 1, no pads, group 1; Gemm:
 * transA 0, bias per output feature or none) and the weight density is at
 * most sqz_sparse_max_density(op, P) - the crossover measured with
 * bench/sparse.c against sqz's own dense kernels - so dense layers keep the
 * dense path. SQZ_SPARSE=0 in the environment disables the sparse path. */
#ifndef SQZ_KERNELS_SPARSE_H
#define SQZ_KERNELS_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "int8.h"
#include "sqz/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqz_csr {
    int64_t rows, cols, nnz;
    int32_t *rowptr; /* rows + 1 */
    int32_t *col;    /* nnz */
    float *val;      /* nnz */
    /* fused ReLU / Clip: when clamp, every result becomes
     * v > lo ? v : lo, then v < hi ? v : hi (so NaN gives lo, as the
     * reference ReLU; maxps / minps order). sqz_csr_build: clamp 0. */
    int clamp;
    float lo, hi;
} sqz_csr;

/* CSR of the [rows, cols] matrix W(r, c) = w[r * rs + c * cs], keeping the
 * non-zeros, values multiplied by scale. 0 ok, -1 OOM / too large. */
int sqz_csr_build(sqz_csr *m, const float *w, int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                  float scale);
void sqz_csr_free(sqz_csr *m);

typedef void (*sqz_spmm_fn)(const sqz_csr *m, int64_t r0, int64_t r1, const float *X, int64_t P,
                            const float *bias, float *Y);
typedef void (*sqz_spmv_fn)(const sqz_csr *m, int64_t r0, int64_t r1, const float *x,
                            const float *bias, float *y);

/* Scalar reference twins. */
void sqz_spmm_ref(const sqz_csr *m, int64_t r0, int64_t r1, const float *X, int64_t P,
                  const float *bias, float *Y);
void sqz_spmv_ref(const sqz_csr *m, int64_t r0, int64_t r1, const float *x, const float *bias,
                  float *y);

#if defined(__x86_64__) || defined(_M_X64)
void sqz_spmm_avx2(const sqz_csr *m, int64_t r0, int64_t r1, const float *X, int64_t P,
                   const float *bias, float *Y);
void sqz_spmv_avx2(const sqz_csr *m, int64_t r0, int64_t r1, const float *x, const float *bias,
                   float *y);
void sqz_spmm_avx512(const sqz_csr *m, int64_t r0, int64_t r1, const float *X, int64_t P,
                     const float *bias, float *Y);
void sqz_spmv_avx512(const sqz_csr *m, int64_t r0, int64_t r1, const float *x, const float *bias,
                     float *y);
#endif

#if defined(__aarch64__)
void sqz_spmm_neon(const sqz_csr *m, int64_t r0, int64_t r1, const float *X, int64_t P,
                   const float *bias, float *Y);
void sqz_spmv_neon(const sqz_csr *m, int64_t r0, int64_t r1, const float *x, const float *bias,
                   float *y);
#endif

/* The best kernels for this CPU (the scalar twins when no ISA kernel runs). */
sqz_spmm_fn sqz_spmm_best(void);
sqz_spmv_fn sqz_spmv_best(void);

/* ------------------------------------------------------------------ int8
 * int8 CSR (INT8 contract, kernels/int8.h): the same exact int32 accumulator
 * as the dense int8 kernels, written as
 *   acc[r] = off[r] + sum_{(c, w) in row r} w * x[c],
 *   off[r] = bias[r] - zp_x * sum_c W[r, c]   (x raw int8, sign-extended),
 * then the contract's requantization with row r's (M, S), zp_y and the fused
 * clamp [lo, hi]. Every row holds an even number of entries (a row with an
 * odd count gets a (its last column, 0) pad) so the x86 kernels can take
 * entries two at a time as int16 pairs (vpmaddwd); padding adds 0. Any
 * summation order gives the same int32 (the prepare-time overflow bound of
 * int8.h), so every ISA kernel is bit-identical to the scalar twin. */
typedef struct sqz_csr8 {
    int64_t rows, cols, nnz; /* nnz: stored entries, pads included */
    int32_t *rowptr;         /* rows + 1, all even */
    int32_t *col;            /* nnz */
    int16_t *val;            /* nnz, in [-127, 127] */
    int32_t *off;            /* rows */
    sqz_rq *rq;              /* rows */
    int32_t zp, lo, hi;      /* output zero point and clamp */
    /* Optional ELL copy for sqz_spmv8_vbmi (built by sqz_csr8_build_ell):
     * rows in blocks of 16 (one int32 lane each), columns in segments of 128
     * (two zmm of u8 activations, x + 128, picked by vpermi2b). Block b,
     * segment s owns steps [ell_step[b * nseg + s], ell_step[... + 1]); a
     * step is 64 index bytes (column - 128 s) and 64 weights, lane j's 4
     * bytes being up to 4 entries of row 16 b + j (pads: weight 0). */
    int64_t nseg;
    int32_t *ell_step; /* nblk * nseg + 1 */
    uint8_t *ell_idx;  /* steps * 64 */
    int8_t *ell_w;     /* steps * 64 */
    int32_t *ell_off;  /* nblk * 16: off - 128 * sum of the row's weights */
    int32_t *ell_M;    /* nblk * 16 */
    int32_t *ell_S;    /* nblk * 16 */
} sqz_csr8;

/* CSR of the analysed int8 layer li (rows = output channels, cols = K). 0 ok,
 * -1 OOM / too large. */
int sqz_csr8_build(sqz_csr8 *m, const sqz_i8_linear *li);
/* Adds the ELL copy of sqz_spmv8_vbmi. 0 ok, -1 OOM. */
int sqz_csr8_build_ell(sqz_csr8 *m);
void sqz_csr8_free(sqz_csr8 *m);

/* spmm8 (1x1 Conv): Y[r, p] = rq_r(acc), x[c] = X[c * xs + p] (int16 copies of
 * the int8 input; xs = sqz_spmm8_stride(P), the pads readable, any value),
 * p < P, for rows [r0, r1); spmv8 (Gemm): y[r] = rq_r(acc), x = one int8
 * activation row (cols values), tmp = sqz_spmv8_tmp_bytes(m) bytes of
 * 64-aligned scratch for the kernel's own copy of x. */
typedef void (*sqz_spmm8_fn)(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X,
                             int64_t xs, int64_t P, int8_t *Y);
static inline int64_t sqz_spmm8_stride(int64_t P) {
    return (P + 31) / 32 * 32;
}
typedef void (*sqz_spmv8_fn)(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x, void *tmp,
                             int8_t *y);
size_t sqz_spmv8_tmp_bytes(const sqz_csr8 *m);

void sqz_spmm8_ref(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                   int64_t P, int8_t *Y);
/* The scalar twin on the columns [p0, p1) only (ISA kernels' short-row path). */
void sqz_spmm8_ref_cols(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                        int64_t P, int64_t p0, int64_t p1, int8_t *Y);
void sqz_spmv8_ref(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x, void *tmp,
                   int8_t *y);
#if defined(__x86_64__) || defined(_M_X64)
void sqz_spmm8_avx2(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                    int64_t P, int8_t *Y);
void sqz_spmv8_avx2(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x, void *tmp,
                    int8_t *y);
void sqz_spmm8_avx512(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                      int64_t P, int8_t *Y);
void sqz_spmv8_avx512(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x, void *tmp,
                      int8_t *y);
void sqz_spmm8_vnni(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                    int64_t P, int8_t *Y);
/* needs m's ELL copy, AVX-512 VNNI and VBMI (sqz_spmv8_vbmi_ok) */
void sqz_spmv8_vbmi(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x, void *tmp,
                    int8_t *y);
int sqz_spmv8_vbmi_ok(void);
#endif
#if defined(__aarch64__)
void sqz_spmm8_neon(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                    int64_t P, int8_t *Y);
void sqz_spmv8_neon(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x, void *tmp,
                    int8_t *y);
#endif
/* y[i] = x[i], i < n (the int16 input copy of spmm8), per ISA. */
typedef void (*sqz_widen8_fn)(const int8_t *x, int16_t *y, int64_t n);
void sqz_widen8_ref(const int8_t *x, int16_t *y, int64_t n);
#if defined(__x86_64__) || defined(_M_X64)
void sqz_widen8_avx2(const int8_t *x, int16_t *y, int64_t n);
void sqz_widen8_avx512(const int8_t *x, int16_t *y, int64_t n);
#endif
sqz_widen8_fn sqz_widen8_best(void);
sqz_spmm8_fn sqz_spmm8_best(void);
sqz_spmv8_fn sqz_spmv8_best(void);

/* Highest weight density (non-zeros / size) at which the sparse kernel is
 * chosen for op (SQZ_OP_CONV or SQZ_OP_GEMM) with P columns (Conv: N*H*W
 * positions; Gemm: rows of A). */
double sqz_sparse_max_density(int op, int64_t P);

/* int8 twin of sqz_sparse_max_density (weights as stored, int8). */
double sqz_sparse_i8_max_density(int op, int64_t P);

extern const sqz_op_impl sqz_sparse_conv, sqz_sparse_gemm;
/* int8 (dtype-driven) 1x1 Conv / Gemm; first in the int8 dispatch table. */
extern const sqz_op_impl sqz_sparse_i8_conv, sqz_sparse_i8_gemm;

#ifdef __cplusplus
}
#endif
#endif
