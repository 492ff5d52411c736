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
 * (a Gemm with M > 1 rows of A runs spmm over A^T, P = M, into Y^T: one
 * broadcast weight times a vector of M activations per non-zero);
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
    /* Optional ELL copy for sqz_spmv_perm_avx512 (sqz_csr_build_ell): rows
     * in blocks of 16 (one lane each), columns in segments of 32 (two
     * registers of x, picked by vpermt2ps instead of a gather). Block b,
     * segment s own steps [ell_step[b * nseg + s], ... + 1]); a step is 16
     * index bytes (column - 32 s) and 16 weights, lane j an entry of row
     * 16 b + j in that segment or a pad (weight 0). */
    int64_t nseg;
    int32_t *ell_step; /* nblk * nseg + 1 */
    uint8_t *ell_idx;  /* steps * 16 */
    float *ell_w;      /* steps * 16 */
} sqz_csr;

/* CSR of the [rows, cols] matrix W(r, c) = w[r * rs + c * cs], keeping the
 * non-zeros, values multiplied by scale. 0 ok, -1 OOM / too large. */
int sqz_csr_build(sqz_csr *m, const float *w, int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                  float scale);
void sqz_csr_free(sqz_csr *m);
/* Adds the ELL copy of sqz_spmv_perm_avx512. 0 ok, -1 OOM. */
int sqz_csr_build_ell(sqz_csr *m);

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
/* needs m's ELL copy */
void sqz_spmv_perm_avx512(const sqz_csr *m, int64_t r0, int64_t r1, const float *x,
                          const float *bias, float *y);
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
 * then the contract's requantization with row r's multiplier, zp_y and the fused
 * clamp [lo, hi]. Every row holds an even number of entries (a row with an
 * odd count gets a (its last column, 0) pad) so the x86 kernels can take
 * entries two at a time as int16 pairs (vpmaddwd); padding adds 0. Any
 * summation order gives the same int32 (the prepare-time overflow bound of
 * int8.h), so every ISA kernel is bit-identical to the scalar twin. */
/* One output row of the int8 block / quad ISA kernels: its blocks / quads
 * [q0, q1), b4_off and the row's float multiplier rq.s (see sqz_csr8). */
struct sqz_q4row {
    int32_t q0, q1, off;
    float s;
};

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
    float *ell_s;      /* nblk * 16: the rows' multipliers (rq.s) */
    /* Optional 1x4-block copy for spmm8b (built by sqz_csr8_build_b4): the
     * input channels in groups of 4 (4 g .. 4 g + 3); per row, the groups
     * holding at least one non-zero (b4_grp) and their 4 weights as one
     * int32 word (b4_w, byte t = channel 4 g + t, 0 where pruned). So one
     * u8 x s8 dot of 4 (vpdpbusd, sdot) does a whole block: unstructured
     * sparsity s keeps a fraction 1 - s^4 of the blocks (90%: 34%), a 1x4
     * block-pruned weight (sqz prune --pattern 1x4) only 1 - s. */
    int64_t ngrp;    /* ceil(cols / 4) */
    int64_t nblk4;   /* stored blocks */
    int32_t *b4_ptr; /* rows + 1 */
    int32_t *b4_grp; /* nblk4 */
    int32_t *b4_w;   /* nblk4 */
    int32_t *b4_off; /* rows: off - 128 * sum of the row's weights (u8 x + 128) */
    int64_t b4_xs;   /* stride b4_rec was made for (sqz_csr8_b4_stride), or 0 */
    /* the ISA kernels' copy: per block the byte offset b4_grp * 4 * b4_xs
     * and the weight word (2 int32); per row a struct sqz_q4row (above) */
    int32_t *b4_rec;
    struct sqz_q4row *b4_row;
    /* and the quad copy for spmm8q (same builder): each row's non-zeros four
     * at a time in CSR order, any columns (q4_col), weights as one int32
     * word (byte t: column q4_col[4 q + t]); a row's count is padded to a
     * multiple of 4 with (its last column, 0). The kernel interleaves the
     * four input rows per pixel (byte unpacks) for one vpdpbusd / sdot. */
    int64_t nq4;     /* stored quads */
    int32_t *q4_ptr; /* rows + 1 */
    int32_t *q4_col; /* 4 nq4 */
    int32_t *q4_w;   /* nq4 */
    int64_t q4_xs;   /* row stride q4_rec was made for (sqz_csr8_q4_stride), or 0 */
    /* the ISA kernels' copy: per quad 4 byte offsets q4_col * q4_xs and the
     * weight word (5 int32), per row its quads and requantization in one
     * record (fewer live pointers in the kernels' loops) */
    int32_t *q4_rec;
    struct sqz_q4row *q4_row;
} sqz_csr8;

/* CSR of the analysed int8 layer li (rows = output channels, cols = K). 0 ok,
 * -1 OOM / too large. */
int sqz_csr8_build(sqz_csr8 *m, const sqz_i8_linear *li);
/* Adds the ELL copy of sqz_spmv8_vbmi. 0 ok, -1 OOM. */
int sqz_csr8_build_ell(sqz_csr8 *m);
void sqz_csr8_free(sqz_csr8 *m);
/* Adds the 1x4-block copy of spmm8b and the quad copy of spmm8q. 0 ok,
 * -1 OOM. */
int sqz_csr8_build_b4(sqz_csr8 *m);
/* Sets q4_rec / q4_row for input rows of stride xs (the ISA spmm8q kernels need it
 * for the xs they are given; without it they run the scalar twin). 0 ok,
 * -1 OOM or cols * xs beyond int32. */
int sqz_csr8_q4_stride(sqz_csr8 *m, int64_t xs);
/* The same for b4_rec / b4_row (spmm8b's xs). */
int sqz_csr8_b4_stride(sqz_csr8 *m, int64_t xs);

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
/* the same for 8 rows of A at once (x / y rows of stride xs / ys; tmp: 8 *
 * sqz_spmv8_tmp_bytes(m) rounded up to 64 each) */
void sqz_spmv8x8_vbmi(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x, int64_t xs,
                      void *tmp, int8_t *y, int64_t ys);
#endif
#if defined(__aarch64__)
void sqz_spmm8_neon(const sqz_csr8 *m, int64_t r0, int64_t r1, const int16_t *X, int64_t xs,
                    int64_t P, int8_t *Y);
void sqz_spmv8_neon(const sqz_csr8 *m, int64_t r0, int64_t r1, const int8_t *x, void *tmp,
                    int8_t *y);
#endif
/* spmm8b (1x4 blocks, 1x1 Conv): Y[r, p] = rq_r(acc) from XB, the input as
 * u8 x + 128 in groups of 4 channels: byte XB[(g * xs + p) * 4 + t] =
 * x[4 g + t][p] + 128 (xs = sqz_spmm8b_stride(P); channels >= cols and
 * pixels >= P readable, any value), built by a sqz_pack4_fn. Rows [r0, r1). */
typedef void (*sqz_spmm8b_fn)(const sqz_csr8 *m, int64_t r0, int64_t r1, const uint8_t *XB,
                              int64_t xs, int64_t P, int8_t *Y);
static inline int64_t sqz_spmm8b_stride(int64_t P) {
    return (P + 15) / 16 * 16;
}
/* XB of the [C, P] int8 input x (layout above; pads are 128, i.e. x = 0). */
typedef void (*sqz_pack4_fn)(const int8_t *x, int64_t C, int64_t P, int64_t xs, uint8_t *XB);
void sqz_spmm8b_ref(const sqz_csr8 *m, int64_t r0, int64_t r1, const uint8_t *XB, int64_t xs,
                    int64_t P, int8_t *Y);
void sqz_pack4_ref(const int8_t *x, int64_t C, int64_t P, int64_t xs, uint8_t *XB);
#if defined(__x86_64__) || defined(_M_X64)
void sqz_spmm8b_vnni(const sqz_csr8 *m, int64_t r0, int64_t r1, const uint8_t *XB, int64_t xs,
                     int64_t P, int8_t *Y);
void sqz_pack4_avx512(const int8_t *x, int64_t C, int64_t P, int64_t xs, uint8_t *XB);
#endif
/* spmm8q (quads, 1x1 Conv): Y[r, p] = rq_r(acc) from XU, the input as u8
 * x + 128, row c at XU + c * xs (xs = sqz_spmm8q_stride(P), pixels >= P
 * readable, any value), built by a sqz_tou8_fn. Rows [r0, r1). */
typedef void (*sqz_spmm8q_fn)(const sqz_csr8 *m, int64_t r0, int64_t r1, const uint8_t *XU,
                              int64_t xs, int64_t P, int8_t *Y);
static inline int64_t sqz_spmm8q_stride(int64_t P) {
    return (P + 63) / 64 * 64;
}
/* XU of the [C, P] int8 input (pads 128). */
typedef void (*sqz_tou8_fn)(const int8_t *x, int64_t C, int64_t P, int64_t xs, uint8_t *XU);
void sqz_spmm8q_ref(const sqz_csr8 *m, int64_t r0, int64_t r1, const uint8_t *XU, int64_t xs,
                    int64_t P, int8_t *Y);
void sqz_tou8_ref(const int8_t *x, int64_t C, int64_t P, int64_t xs, uint8_t *XU);
#if defined(__x86_64__) || defined(_M_X64)
void sqz_spmm8q_vnni(const sqz_csr8 *m, int64_t r0, int64_t r1, const uint8_t *XU, int64_t xs,
                     int64_t P, int8_t *Y);
void sqz_tou8_avx512(const int8_t *x, int64_t C, int64_t P, int64_t xs, uint8_t *XU);
#endif
/* The block / quad kernels for this CPU, NULL when it has none that beat
 * the CSR spmm8 (only x86 AVX-512 VNNI so far). */
sqz_spmm8b_fn sqz_spmm8b_best(void);
sqz_pack4_fn sqz_pack4_best(void);
sqz_spmm8q_fn sqz_spmm8q_best(void);
sqz_tou8_fn sqz_tou8_best(void);

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
/* Where the CPU has the block and quad kernels (sqz_spmm8b_best), an int8
 * 1x1 Conv of P positions goes sparse when the cheaper one's modelled cost
 * (sparse_i8.c) is at most this fraction of the dense kernel's; it replaces
 * the element-density test then. */
double sqz_sparse_i8_max_cost(int64_t P);

extern const sqz_op_impl sqz_sparse_conv, sqz_sparse_gemm;
/* int8 (dtype-driven) 1x1 Conv / Gemm; first in the int8 dispatch table. */
extern const sqz_op_impl sqz_sparse_i8_conv, sqz_sparse_i8_gemm;

#ifdef __cplusplus
}
#endif
#endif
