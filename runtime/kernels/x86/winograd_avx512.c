/* winograd_avx512.c - the Winograd transforms (common/winograd_tf.h) compiled
 * for AVX512 over 32 lanes: the avx512 GEMM kernel's NR. */
#define WT_NR 32
#include "common/winograd_tf.h"

const sqz_wino_tf sqz_wino_tf_avx512 = {"avx512", 32, wt_input2, wt_input4, wt_output2, wt_output4};
