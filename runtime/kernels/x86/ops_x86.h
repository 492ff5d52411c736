/* ops_x86.h - x86 fast op impls (see runtime/src/dispatch.c). */
#ifndef SQZ_X86_OPS_X86_H
#define SQZ_X86_OPS_X86_H

#include "sqz/ops.h"

extern const sqz_op_impl sqz_x86_conv_avx512, sqz_x86_gemm_avx512, sqz_x86_matmul_avx512;
extern const sqz_op_impl sqz_x86_conv_avx2, sqz_x86_gemm_avx2, sqz_x86_matmul_avx2;

#endif
