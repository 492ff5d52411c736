/* conv1x1.c - small-K 1x1 conv: packing, scalar twin, dispatch (see
 * conv1x1.h). */
#include "act1.h"
#include "conv1x1.h"

#include "cpu.h"
#include "sqz/ops.h"

size_t sqz_c1x1_floats(int64_t K, int64_t M) {
    return (size_t)((M + SQZ_C1X1_MB - 1) / SQZ_C1X1_MB) * (size_t)(K + 1) * SQZ_C1X1_MB;
}

void sqz_c1x1_pack(int64_t K, int64_t M, const float *W, const float *bias, float *dst) {
    for (int64_t g = 0; g < (M + SQZ_C1X1_MB - 1) / SQZ_C1X1_MB; g++)
        for (int64_t k = 0; k <= K; k++)
            for (int64_t j = 0; j < SQZ_C1X1_MB; j++) {
                int64_t m = g * SQZ_C1X1_MB + j;
                float v = 0.0f;
                if (m < M) v = k < K ? W[m * K + k] : (bias ? bias[m] : 0.0f);
                dst[(g * (K + 1) + k) * SQZ_C1X1_MB + j] = v;
            }
}

static float act1(const sqz_c1x1 *a, float v) {
    return sqz_act1(a->act, a->alpha, a->beta, v);
}

/* the twin: the same packed weights, the same order of the sums (k
 * ascending from the bias) */
void sqz_c1x1_scalar(const sqz_c1x1 *a, const float *x, float *y, int64_t p0, int64_t p1) {
    for (int64_t m = 0; m < a->M; m++) {
        const float *w = a->w + (m / SQZ_C1X1_MB) * (a->K + 1) * SQZ_C1X1_MB + m % SQZ_C1X1_MB;
        float b = w[a->K * SQZ_C1X1_MB];
        for (int64_t p = p0; p < p1; p++) {
            float acc = b;
            for (int64_t k = 0; k < a->K; k++) acc += w[k * SQZ_C1X1_MB] * x[k * a->in_ld + p];
            y[m * a->out_ld + p] = act1(a, acc);
        }
    }
}

sqz_c1x1_fn sqz_c1x1_best(void) {
#if defined(__x86_64__)
    if (sqz_cpu_has_avx512()) return sqz_c1x1_avx512;
#endif
    return NULL;
}
