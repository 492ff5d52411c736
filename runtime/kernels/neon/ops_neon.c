/* ops_neon.c - Conv / Gemm / MatMul impls for the NEON GEMM microkernel. */
#include "gemm.h"
#include "neon/ops_neon.h"

static int conv_prep(sqz_op_ctx *c) {
    return sqz_gemm_conv_prepare(c, &sqz_gemm_neon);
}
static int gemm_prep(sqz_op_ctx *c) {
    return sqz_gemm_gemm_prepare(c, &sqz_gemm_neon);
}
static int matmul_prep(sqz_op_ctx *c) {
    return sqz_gemm_matmul_prepare(c, &sqz_gemm_neon);
}

const sqz_op_impl sqz_neon_conv = {conv_prep, sqz_gemm_conv_run, sqz_gemm_op_release,
                                   sqz_gemm_op_macs};
const sqz_op_impl sqz_neon_gemm = {gemm_prep, sqz_gemm_gemm_run, sqz_gemm_op_release,
                                   sqz_gemm_op_macs};
const sqz_op_impl sqz_neon_matmul = {matmul_prep, sqz_gemm_matmul_run, sqz_gemm_op_release,
                                     sqz_gemm_op_macs};
