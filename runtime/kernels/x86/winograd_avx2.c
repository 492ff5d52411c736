/* winograd_avx2.c - the Winograd transforms (common/winograd_tf.h) compiled
 * for AVX2 over 16 lanes: the avx2 GEMM kernel's NR. */
#define WT_NR 16
#include "common/winograd_tf.h"

const sqz_wino_tf sqz_wino_tf_avx2 = {"avx2", 16, wt_input2, wt_input4, wt_output2, wt_output4};
