/* ops_x86.c - Conv / Gemm / MatMul impls for the x86 GEMM microkernels
 * (AVX-512 and AVX2 + FMA), registered in runtime/src/dispatch.c. */
#include "gemm.h"
#include "x86/ops_x86.h"

#define GEMM_IMPLS(ISA)                                                                            \
    static int conv_prep_##ISA(sqz_op_ctx *c) {                                                    \
        return sqz_gemm_conv_prepare(c, &sqz_gemm_##ISA);                                          \
    }                                                                                              \
    static int gemm_prep_##ISA(sqz_op_ctx *c) {                                                    \
        return sqz_gemm_gemm_prepare(c, &sqz_gemm_##ISA);                                          \
    }                                                                                              \
    static int matmul_prep_##ISA(sqz_op_ctx *c) {                                                  \
        return sqz_gemm_matmul_prepare(c, &sqz_gemm_##ISA);                                        \
    }                                                                                              \
    const sqz_op_impl sqz_x86_conv_##ISA = {conv_prep_##ISA, sqz_gemm_conv_run,                    \
                                            sqz_gemm_op_release, sqz_gemm_op_macs};                \
    const sqz_op_impl sqz_x86_gemm_##ISA = {gemm_prep_##ISA, sqz_gemm_gemm_run,                    \
                                            sqz_gemm_op_release, sqz_gemm_op_macs};                \
    const sqz_op_impl sqz_x86_matmul_##ISA = {matmul_prep_##ISA, sqz_gemm_matmul_run,              \
                                              sqz_gemm_op_release, sqz_gemm_op_macs};

GEMM_IMPLS(avx512)
GEMM_IMPLS(avx2)
