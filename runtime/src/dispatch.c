/* dispatch.c - candidate kernels per op for this CPU, best first.
 *
 * To register an optimized kernel family, add a line to the table below: the
 * op, a function telling whether this CPU can run it, and the impl. Order is
 * priority: specialised kernels (e.g. depthwise) before general ones. */
#include <stdlib.h>
#include <string.h>

#include "sqz/ops.h"
#if defined(__x86_64__) || defined(_M_X64)
#include "cpu.h"
#include "x86/ops_x86.h"
#include "x86/eltwise_x86.h"
#endif
#if defined(__aarch64__)
#include "cpu.h"
#include "neon/ops_neon.h"
#endif
#include "dwconv.h"
#include "int8_simd.h"
#include "fastops.h"
#include "sparse.h"
#include "winograd.h"

typedef struct fast_entry {
    int op;
    int (*cpu_ok)(void); /* NULL = always */
    const sqz_op_impl *impl;
} fast_entry;

static const fast_entry fast_table[] = {
    /* sparse (pruned) 1x1 Conv / Gemm: decline unless the weight is sparse enough */
    {SQZ_OP_CONV, NULL, &sqz_sparse_conv},
    {SQZ_OP_GEMM, NULL, &sqz_sparse_gemm},
    /* depthwise 3x3 / 5x5 (declines every other conv) */
    {SQZ_OP_CONV, sqz_dwconv_cpu_ok, &sqz_dwconv},
    /* Winograd 3x3 stride-1 convs (declines the rest, small planes, SQZ_WINOGRAD=0) */
    {SQZ_OP_CONV, NULL, &sqz_winograd_conv},
#if defined(__x86_64__) || defined(_M_X64)
    /* packed GEMM: Conv (1x1 direct, implicit im2col), Gemm, MatMul */
    {SQZ_OP_CONV, sqz_cpu_has_avx512, &sqz_x86_conv_avx512},
    {SQZ_OP_CONV, sqz_cpu_has_avx2_fma, &sqz_x86_conv_avx2},
    {SQZ_OP_GEMM, sqz_cpu_has_avx512, &sqz_x86_gemm_avx512},
    {SQZ_OP_GEMM, sqz_cpu_has_avx2_fma, &sqz_x86_gemm_avx2},
    {SQZ_OP_MATMUL, sqz_cpu_has_avx512, &sqz_x86_matmul_avx512},
    {SQZ_OP_MATMUL, sqz_cpu_has_avx2_fma, &sqz_x86_matmul_avx2},
    /* element-wise: vector exp for Sigmoid (SiLU / squeeze-excite nets) */
    {SQZ_OP_SIGMOID, sqz_cpu_has_avx512, &sqz_x86_sigmoid_avx512},
    {SQZ_OP_SIGMOID, sqz_cpu_has_avx2_fma, &sqz_x86_sigmoid_avx2},
#endif
#if defined(__aarch64__)
    /* packed GEMM (8 x 12 NEON microkernel) and the vector Sigmoid */
    {SQZ_OP_CONV, sqz_cpu_has_neon, &sqz_neon_conv},
    {SQZ_OP_GEMM, sqz_cpu_has_neon, &sqz_neon_gemm},
    {SQZ_OP_MATMUL, sqz_cpu_has_neon, &sqz_neon_matmul},
    {SQZ_OP_SIGMOID, sqz_cpu_has_neon, &sqz_neon_sigmoid},
#endif
    /* portable fast paths of the memory-bound ops (kernels/fastops.h) */
    {SQZ_OP_MAXPOOL, NULL, &sqz_fast_maxpool},
    {SQZ_OP_AVGPOOL, NULL, &sqz_fast_avgpool},
    {SQZ_OP_GLOBAL_AVGPOOL, NULL, &sqz_fast_global_avgpool},
    {SQZ_OP_REDUCE_MEAN, NULL, &sqz_fast_reduce_mean},
    {SQZ_OP_SLICE, NULL, &sqz_fast_slice},
    {SQZ_OP_TRANSPOSE, NULL, &sqz_fast_transpose},
    {SQZ_OP_ADD, NULL, &sqz_fast_add},
    {SQZ_OP_SUB, NULL, &sqz_fast_sub},
    {SQZ_OP_MUL, NULL, &sqz_fast_mul},
    {SQZ_OP_DIV, NULL, &sqz_fast_div},
#if defined(__x86_64__) || defined(_M_X64)
    {SQZ_OP_QUANTIZE_LINEAR, sqz_cpu_has_avx2_fma, &sqz_i8_quantize_avx2},
    {SQZ_OP_DEQUANTIZE_LINEAR, sqz_cpu_has_avx2_fma, &sqz_i8_dequantize_avx2},
#endif
    /* DequantizeLinear (i8 -> f32) as a 256-entry table */
    {SQZ_OP_DEQUANTIZE_LINEAR, NULL, &sqz_i8_lut_dequantize},
    {SQZ_OP_INVALID, NULL, NULL}, /* sentinel keeps the array non-empty */
};

/* int8 kernels (dtype-driven: nodes on i8 data); bit-identical to the reference */
static const fast_entry fast_int8_table[] = {
    /* sparse (pruned) 1x1 Conv / Gemm: decline unless the weight is sparse enough */
    {SQZ_OP_CONV, NULL, &sqz_sparse_i8_conv},
    {SQZ_OP_GEMM, NULL, &sqz_sparse_i8_gemm},
#if defined(__x86_64__) || defined(_M_X64)
    /* depthwise first (declines every other conv), then the packed GEMM */
    {SQZ_OP_CONV, sqz_cpu_has_avx512_vnni, &sqz_i8_dwconv_vnni},
    {SQZ_OP_CONV, sqz_cpu_has_avx512, &sqz_i8_dwconv_avx512},
    {SQZ_OP_CONV, sqz_cpu_has_avx2_fma, &sqz_i8_dwconv_avx2},
    {SQZ_OP_CONV, sqz_cpu_has_avx512_vnni, &sqz_i8_conv_vnni},
    {SQZ_OP_CONV, sqz_cpu_has_avx2_fma, &sqz_i8_conv_avx2},
    {SQZ_OP_GEMM, sqz_cpu_has_avx512_vnni, &sqz_i8_gemm_vnni},
    {SQZ_OP_GEMM, sqz_cpu_has_avx2_fma, &sqz_i8_gemm_avx2},
    {SQZ_OP_MATMUL, sqz_cpu_has_avx512_vnni, &sqz_i8_matmul_vnni},
    {SQZ_OP_MATMUL, sqz_cpu_has_avx2_fma, &sqz_i8_matmul_avx2},
#endif
#if defined(__aarch64__)
    /* depthwise (smlal), then the packed GEMM: sdot if asimddp, else smlal */
    {SQZ_OP_CONV, sqz_cpu_has_neon, &sqz_i8_dwconv_neon},
    {SQZ_OP_CONV, sqz_cpu_has_neon_dot, &sqz_i8_conv_dot},
    {SQZ_OP_CONV, sqz_cpu_has_neon, &sqz_i8_conv_neon},
    {SQZ_OP_GEMM, sqz_cpu_has_neon_dot, &sqz_i8_gemm_dot},
    {SQZ_OP_GEMM, sqz_cpu_has_neon, &sqz_i8_gemm_neon},
    {SQZ_OP_MATMUL, sqz_cpu_has_neon_dot, &sqz_i8_matmul_dot},
    {SQZ_OP_MATMUL, sqz_cpu_has_neon, &sqz_i8_matmul_neon},
#endif
#if defined(__x86_64__) || defined(_M_X64)
    /* same-shape Add in vector integer arithmetic (a 64 KiB table misses L1) */
    {SQZ_OP_ADD, sqz_cpu_has_avx512, &sqz_i8_add_avx512},
    {SQZ_OP_ADD, sqz_cpu_has_avx2_fma, &sqz_i8_add_avx2},
#endif
    /* element-wise int8 as table lookups (built from the reference) */
    {SQZ_OP_ADD, NULL, &sqz_i8_lut_add},
    {SQZ_OP_RELU, NULL, &sqz_i8_lut_relu},
    {SQZ_OP_CLIP, NULL, &sqz_i8_lut_clip},
    {SQZ_OP_MAXPOOL, NULL, &sqz_i8_fast_maxpool},
    {SQZ_OP_CONCAT, NULL, &sqz_i8_lut_concat},
    {SQZ_OP_SIGMOID, NULL, &sqz_i8_lut_sigmoid},
    {SQZ_OP_HARD_SIGMOID, NULL, &sqz_i8_lut_hard_sigmoid},
    {SQZ_OP_HARD_SWISH, NULL, &sqz_i8_lut_hard_swish},
    {SQZ_OP_TANH, NULL, &sqz_i8_lut_tanh},
    /* Mul by a per-channel gate or same-shape operand; GlobalAveragePool */
    {SQZ_OP_MUL, NULL, &sqz_i8_fast_mul},
    {SQZ_OP_GLOBAL_AVGPOOL, NULL, &sqz_i8_fast_gap},
    {SQZ_OP_INVALID, NULL, NULL}, /* sentinel keeps the array non-empty */
};

static int force_ref = -1; /* -1: read SQZ_FORCE_REF on first use */

void sqz_set_force_reference(int on) {
    force_ref = on ? 1 : 0;
}

static int forced_reference(void) {
    if (force_ref < 0) {
        const char *e = getenv("SQZ_FORCE_REF");
        force_ref = e && e[0] != 0 && strcmp(e, "0") != 0;
    }
    return force_ref;
}

const sqz_op_impl *sqz_fast_silu(int x_input) {
    if (forced_reference() || x_input < 0 || x_input > 1) return NULL;
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512()) return &sqz_x86_silu_avx512[x_input];
    if (sqz_cpu_has_avx2_fma()) return &sqz_x86_silu_avx2[x_input];
#endif
    return NULL;
}

sqz_fast_row_fn sqz_fast_silu_row(void) {
    if (forced_reference()) return NULL;
#if defined(__x86_64__) || defined(_M_X64)
    if (sqz_cpu_has_avx512()) return sqz_x86_silu_avx512_n;
    if (sqz_cpu_has_avx2_fma()) return sqz_x86_silu_avx2_n;
#endif
    return NULL;
}

static int pick(const fast_entry *table, size_t n_table, int op, const sqz_op_impl **out, int max) {
    if (forced_reference()) return 0;
    int n = 0;
    for (size_t i = 0; i < n_table && n < max; i++) {
        const fast_entry *f = &table[i];
        if (f->op != op || !f->impl) continue;
        if (f->cpu_ok && !f->cpu_ok()) continue;
        out[n++] = f->impl;
    }
    return n;
}

int sqz_fast_ops(int op, const sqz_op_impl **out, int max) {
    return pick(fast_table, sizeof fast_table / sizeof fast_table[0], op, out, max);
}

int sqz_fast_ops_int8(int op, const sqz_op_impl **out, int max) {
    return pick(fast_int8_table, sizeof fast_int8_table / sizeof fast_int8_table[0], op, out, max);
}
