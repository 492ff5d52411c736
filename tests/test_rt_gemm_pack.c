/* test_rt_gemm_pack.c - sqz_gemm_pack_b against its definition (panel j of
 * NR columns at j * NR * K, element (k, c) at k * NR + c = src[k rs + (j NR
 * + c) cs], columns past N zero) for transposed sources (rs 1, cs >= K: the
 * 4 x 4 register transposes on x86, the scalar loop elsewhere and for the
 * ragged columns and k), row-major and general strides; odd K, N and NR,
 * exact copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gemm.h"

static void check(int NR, int64_t K, int64_t N, int64_t rs, int64_t cs, uint32_t *rng) {
    const int64_t span = (K - 1) * rs + (N - 1) * cs + 1;
    float *src = malloc(sizeof(float) * (size_t)span);
    assert_non_null(src);
    for (int64_t i = 0; i < span; i++) {
        *rng = *rng * 1664525u + 1013904223u;
        src[i] = (float)(int32_t)(*rng >> 8) * 0x1p-20f;
    }
    sqz_gemm_kernel k;
    memset(&k, 0, sizeof k);
    k.nr = NR;
    const size_t nf = sqz_gemm_packed_b_floats(&k, K, N);
    const int64_t panels = (N + NR - 1) / NR;
    assert_true(nf >= (size_t)(panels * NR * K));
    float *got = malloc(sizeof(float) * nf), *want = malloc(sizeof(float) * nf);
    assert_true(got && want);
    memset(got, 0x7f, sizeof(float) * nf); /* every packed float must be written */
    memset(want, 0x7f, sizeof(float) * nf);
    for (int64_t j = 0; j < panels; j++)
        for (int64_t kk = 0; kk < K; kk++)
            for (int c = 0; c < NR; c++) {
                const int64_t n = j * NR + c;
                want[j * NR * K + kk * NR + c] = n < N ? src[kk * rs + n * cs] : 0.0f;
            }
    sqz_gemm_pack_b(&k, K, N, src, rs, cs, got);
    assert_memory_equal(got, want, sizeof(float) * (size_t)(panels * NR * K));
    free(src);
    free(got);
    free(want);
}

static void test_pack_b_shapes(void **state) {
    (void)state;
    const int nrs[] = {6, 8, 12, 16, 32};
    const int64_t ks[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 100};
    const int64_t ns[] = {1, 3, 4, 5, 7, 8, 12, 15, 16, 31, 32, 33, 45, 67};
    uint32_t rng = 99;
    for (size_t a = 0; a < sizeof nrs / sizeof nrs[0]; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++)
            for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++) {
                const int NR = nrs[a];
                const int64_t K = ks[b], N = ns[c];
                check(NR, K, N, 1, K, &rng);         /* a [N, K] weight (Gemm transB) */
                check(NR, K, N, 1, K + 3, &rng);     /* its rows padded */
                check(NR, K, N, N, 1, &rng);         /* row-major [K, N] */
                check(NR, K, N, 2 * N + 1, 2, &rng); /* general strides */
            }
    /* LeNet-300-100's first layer as the calibration sessions pack it */
    check(32, 784, 300, 1, 784, &rng);
    check(16, 784, 300, 1, 784, &rng);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_b_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
