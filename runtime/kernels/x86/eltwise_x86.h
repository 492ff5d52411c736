/* x86/eltwise_x86.h - vectorised element-wise ops (x86). Sigmoid is the hot
 * spot of the SiLU / squeeze-excite nets (EfficientNet, MNASNet): libm expf
 * per element costs more than their depthwise convs. */
#ifndef SQZ_X86_ELTWISE_H
#define SQZ_X86_ELTWISE_H

#include "sqz/ops.h"

/* Sigmoid, AVX2 + FMA (eltwise_avx2.c); within a few ulp of 1 / (1 + expf(-x)). */
extern const sqz_op_impl sqz_x86_sigmoid_avx2;
/* y[i] = sigmoid(x[i]) for i < n (AVX2 + FMA CPUs only). */
void sqz_x86_sigmoid_avx2_n(const float *x, float *y, size_t n);

/* Sigmoid, AVX-512F (eltwise_avx512.c); same accuracy. */
extern const sqz_op_impl sqz_x86_sigmoid_avx512;
void sqz_x86_sigmoid_avx512_n(const float *x, float *y, size_t n);

/* SiLU = Mul(x, Sigmoid(x)) fused by the executor: [xi] reads x from input
 * xi of the Mul node (the other input, the sigmoid, is not read). */
extern const sqz_op_impl sqz_x86_silu_avx512[2], sqz_x86_silu_avx2[2];
void sqz_x86_silu_avx512_n(const float *x, float *y, size_t n);
void sqz_x86_silu_avx2_n(const float *x, float *y, size_t n);
/* shared by the SiLU impls (eltwise_avx2.c; no ISA-specific code) */
int sqz_x86_silu_prepare(sqz_op_ctx *ctx, int xi);
void sqz_x86_eltwise_split(void (*fn)(const float *, float *, size_t), const float *x, float *y,
                           size_t n, int num_threads);

#endif
