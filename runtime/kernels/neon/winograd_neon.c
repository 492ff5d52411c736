/* winograd_neon.c - the Winograd transforms (common/winograd_tf.h) compiled
 * for aarch64 (NEON is baseline) over 12 lanes: the NEON GEMM kernel's NR. */
#define WT_NR 12
#include "common/winograd_tf.h"

const sqz_wino_tf sqz_wino_tf_neon = {"neon", 12, wt_input2, wt_input4, wt_output2, wt_output4};
