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

#include <stdint.h>

#include "sqz/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqz_csr {
    int64_t rows, cols, nnz;
    int32_t *rowptr; /* rows + 1 */
    int32_t *col;    /* nnz */
    float *val;      /* nnz */
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

/* The best kernels for this CPU (the scalar twins when no ISA kernel runs). */
sqz_spmm_fn sqz_spmm_best(void);
sqz_spmv_fn sqz_spmv_best(void);

/* Highest weight density (non-zeros / size) at which the sparse kernel is
 * chosen for op (SQZ_OP_CONV or SQZ_OP_GEMM) with P columns (Conv: N*H*W
 * positions; Gemm: rows of A). */
double sqz_sparse_max_density(int op, int64_t P);

extern const sqz_op_impl sqz_sparse_conv, sqz_sparse_gemm;

#ifdef __cplusplus
}
#endif
#endif
