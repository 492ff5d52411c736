/* test_rt_gemm_big.c - the GEMM driver's large-product blocking (more rows
 * than one A block, B packed per run: column blocks of B packed once for all
 * k, C blocks kept over their k blocks; kernels/common/gemm.c, nc_of) against
 * a double-precision reference, for every microkernel this CPU has. The
 * shape crosses every block edge with odd remainders: M = 523 (row blocks
 * 256 + 256 + 11, past the 512-row A block), K = 1030 (k blocks 4 x 256 + 6),
 * N = 501 (column blocks of 1 MB / 4K floats rounded down to NR: 224 / 240 /
 * 248 columns for NR 32 / 16 / 8, so 2 full blocks and a partial one), at 1
 * and 2 threads, with A prepacked or strided, B row-major, transposed, or
 * given as row offsets, and C with a row stride past N. Checked rows: every
 * 7th and all within 9 of a row-block edge (the reference costs as much as
 * the product: the test must stay fast under ASan and qemu); every column
 * of a checked row, and the padding past N of every row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sqz/ops.h"
#include "gemm.h"
#include "testutil.h"
#if defined(__x86_64__) || defined(__aarch64__)
#include "cpu.h"
#endif

#define M_ 523
#define N_ 501
#define K_ 1030
#define LDC (N_ + 3)
#define GUARD 12345.0f

/* rows the reference is computed for (see above) */
static int checked_row(int64_t m) {
    static const int64_t edges[] = {0, 256, 512, M_};
    if (m % 7 == 0) return 1;
    for (int i = 0; i < 4; i++)
        if (m >= edges[i] - 9 && m < edges[i] + 9) return 1;
    return 0;
}

typedef struct shared {
    float *A, *B, *Bt, *S, *bias;
    int64_t *off;
    double *R; /* A.B + bias, before the activation */
} shared;

static float *falloc(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    assert_non_null(p);
    return p;
}

static float act_of(int act, double v) {
    float f = (float)v;
    if (act == SQZ_ACT_RELU) return f > 0.0f ? f : 0.0f;
    if (act == SQZ_ACT_SIGMOID) return 1.0f / (1.0f + expf(-f));
    return f;
}

/* kind: 0 B row-major, 1 B transposed source, 2 B as row offsets into S */
static void check(const sqz_gemm_kernel *k, const shared *s, int a_packed, int kind, int act,
                  int nt) {
    float *C = falloc((size_t)M_ * LDC), *pa = NULL;
    for (size_t i = 0; i < (size_t)M_ * LDC; i++) C[i] = GUARD;
    sqz_gemm_args g;
    memset(&g, 0, sizeof(g));
    g.kernel = k;
    g.M = M_;
    g.N = N_;
    g.K = K_;
    if (a_packed) {
        pa = falloc(sqz_gemm_packed_a_floats(k, M_, K_));
        sqz_gemm_pack_a(k, M_, K_, s->A, K_, 1, pa);
        g.a.packed = pa;
    } else {
        g.a.data = s->A;
        g.a.rs = K_;
        g.a.cs = 1;
    }
    if (kind == 0) {
        g.b.data = s->B;
        g.b.rs = N_;
        g.b.cs = 1;
    } else if (kind == 1) {
        g.b.data = s->Bt;
        g.b.rs = 1;
        g.b.cs = K_;
    } else {
        g.b.data = s->S;
        g.b.off = s->off;
    }
    g.c = C;
    g.ldc = LDC;
    g.bias = s->bias;
    g.act = act;
    g.num_threads = nt;
    size_t sb = sqz_gemm_scratch_bytes(&g);
    /* the large-product path keeps B for all k: its scratch outgrows one
     * k block's panel (guards that this shape still reaches the path) */
    assert_true(sb >= (size_t)K_ * 2 * (size_t)k->nr * sizeof(float));
    void *scratch = aligned_alloc(64, (sb + 63) / 64 * 64);
    assert_non_null(scratch);
    sqz_gemm(&g, scratch);
    for (int64_t m = 0; m < M_; m++)
        for (int64_t n = 0; n < LDC; n++) {
            float got = C[m * LDC + n];
            if (n < N_ && !checked_row(m)) continue;
            if (n >= N_) {
                if (got != GUARD)
                    fail_msg("%s: C[%lld][%lld] past N written", k->name, (long long)m,
                             (long long)n);
                continue;
            }
            float want = act_of(act, s->R[m * N_ + n]);
            double tol = 1e-5 + 1e-6 * (K_ + 8) * (1.0 + fabs((double)want));
            if (!(fabs((double)got - (double)want) <= tol))
                fail_msg("%s a_packed=%d kind=%d act=%d nt=%d: C[%lld][%lld] %g vs %g", k->name,
                         a_packed, kind, act, nt, (long long)m, (long long)n, (double)got,
                         (double)want);
        }
    free(scratch);
    free(pa);
    free(C);
}

static void test_gemm_big_blocks(void **state) {
    (void)state;
    shared s;
    tu_rng rng;
    tu_rng_seed(&rng, 70);
    s.A = falloc((size_t)M_ * K_);
    s.B = falloc((size_t)K_ * N_);
    s.Bt = falloc((size_t)K_ * N_);
    s.bias = falloc(M_);
    tu_fill_uniform(&rng, s.A, (size_t)M_ * K_, -1, 1);
    tu_fill_uniform(&rng, s.B, (size_t)K_ * N_, -1, 1);
    tu_fill_uniform(&rng, s.bias, M_, -1, 1);
    for (int64_t kk = 0; kk < K_; kk++)
        for (int64_t n = 0; n < N_; n++) s.Bt[n * K_ + kk] = s.B[kk * N_ + n];
    /* row offsets: B row k is S + off[k]; rows overlap and start anywhere */
    size_t span = (size_t)(5 * K_ + N_ + 64);
    s.S = falloc(span);
    s.off = malloc(K_ * sizeof(int64_t));
    assert_non_null(s.off);
    tu_fill_uniform(&rng, s.S, span, -1, 1);
    for (int64_t kk = 0; kk < K_; kk++) s.off[kk] = 5 * kk + (int64_t)(tu_rng_u32(&rng) % 60);
    s.R = malloc((size_t)M_ * N_ * sizeof(double));
    assert_non_null(s.R);
    double *R2 = malloc((size_t)M_ * N_ * sizeof(double));
    assert_non_null(R2);
    /* references for B and for the offset rows, k-outer (rows of B stream) */
    for (int64_t m = 0; m < M_; m++) {
        if (!checked_row(m)) continue;
        double *r = s.R + m * N_, *r2 = R2 + m * N_;
        for (int64_t n = 0; n < N_; n++) r[n] = r2[n] = s.bias[m];
        for (int64_t kk = 0; kk < K_; kk++) {
            double a = s.A[m * K_ + kk];
            const float *b = s.B + kk * N_, *b2 = s.S + s.off[kk];
            for (int64_t n = 0; n < N_; n++) {
                r[n] += a * b[n];
                r2[n] += a * b2[n];
            }
        }
    }
    const sqz_gemm_kernel *ks[4];
    int nk = 0;
    ks[nk++] = &sqz_gemm_scalar;
#if defined(__x86_64__)
    if (sqz_cpu_isa_hw() >= SQZ_ISA_AVX2) ks[nk++] = &sqz_gemm_avx2;
    if (sqz_cpu_isa_hw() >= SQZ_ISA_AVX512) ks[nk++] = &sqz_gemm_avx512;
#endif
#if defined(__aarch64__)
    if (sqz_cpu_has_neon()) ks[nk++] = &sqz_gemm_neon;
#endif
    for (int i = 0; i < nk; i++) {
        /* the scalar twin (slow in sanitizer builds) on the last one only */
        int all = i > 0;
        if (all) {
            check(ks[i], &s, 1, 0, SQZ_ACT_RELU, 1);
            check(ks[i], &s, 1, 0, SQZ_ACT_NONE, 2);
            check(ks[i], &s, 0, 1, SQZ_ACT_SIGMOID, 1);
        }
        double *keep = s.R;
        s.R = R2;
        check(ks[i], &s, 1, 2, SQZ_ACT_RELU, 2);
        s.R = keep;
        printf("[ INFO ] %s: large-product blocking checked (%d variants)\n", ks[i]->name,
               all ? 4 : 1);
    }
    free(R2);
    free(s.R);
    free(s.off);
    free(s.S);
    free(s.bias);
    free(s.Bt);
    free(s.B);
    free(s.A);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gemm_big_blocks)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
