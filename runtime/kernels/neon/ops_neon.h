/* ops_neon.h - aarch64 NEON fast op impls (registered in runtime/src/dispatch.c). */
#ifndef SQZ_NEON_OPS_NEON_H
#define SQZ_NEON_OPS_NEON_H

#include <stddef.h>

#include "sqz/ops.h"

/* Conv / Gemm / MatMul on the packed GEMM driver with the 8 x 12 NEON
 * microkernel (gemm_neon.c); same coverage as the x86 ones. */
extern const sqz_op_impl sqz_neon_conv, sqz_neon_gemm, sqz_neon_matmul;

/* Sigmoid (eltwise_neon.c); within a few ulp of 1 / (1 + expf(-x)). */
extern const sqz_op_impl sqz_neon_sigmoid;
/* y[i] = sigmoid(x[i]) for i < n. */
void sqz_neon_sigmoid_n(const float *x, float *y, size_t n);

#endif
